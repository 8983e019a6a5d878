/* Private to the image module (image.c, image_pull.c, image_disk.c): the
 * cache's, a pull's and a waiter's layout, and the helpers the pieces
 * share.  Not part of the contract in image.h.
 */
#ifndef BOXER_IMAGE_INTERNAL_H
#define BOXER_IMAGE_INTERNAL_H

#include <dirent.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cgroup.h"
#include "err.h"
#include "image.h"
#include "imgref.h"
#include "json.h"
#include "loop.h"
#include "proc.h"

#define HEX_LEN 64
#define REF_CANON_MAX (4 * IMGREF_MAX + 16)
#define META_MAX ((size_t)64 * 1024)             /* our refs/size/ready files */
#define IMAGE_JSON_MAX ((size_t)4 * 1024 * 1024) /* index, manifest, config */
#define STDERR_TAIL 4096
/* skopeo runs as this unprivileged uid/gid ("nobody") when Boxer is root. */
#define PULL_UID 65534
#define PULL_GID 65534

struct blob_use {
    struct blob_use *next;
    unsigned n;
    char hex[HEX_LEN + 1];
};

enum stage { STAGE_SKOPEO, STAGE_UMOCI, STAGE_SYNC };

struct pull {
    struct image_cache *ic;
    struct pull *next;
    char ref[REF_CANON_MAX];
    char key[HEX_LEN + 1];   /* sha256 of ref: the refs file name */
    char stale[HEX_LEN + 1]; /* ready digest of an expired tag, fallback on failure */
    char hex[HEX_LEN + 1];   /* manifest digest, known after skopeo */
    char tmpname[64];        /* tmp/<tmpname> */
    char *tmppath;           /* absolute, cwd of the children */
    char *dlpath;            /* tmppath/dl: skopeo's directory, owned by PULL_UID */
    char *src;               /* skopeo's source, docker://... */
    char *skenv[4];          /* skopeo's environment: PATH (shared), HOME, TMPDIR */
    int insecure;
    int launched;            /* 0 while queued (no directory, no child) */
    struct pull *qnext;      /* ic->queue, FIFO of pulls waiting for a slot */
    int tmpfd, dlfd;
    enum stage stage;
    struct proc *proc;
    struct cg_run *cg;      /* the current child's cgroup */
    uint64_t size_timer;    /* SIZE_CHECK_MS ticks while skopeo or umoci runs */
    uint64_t fs_avail0;     /* free bytes when umoci started */
    uint64_t last_walk_ms;
    int errfd;
    char tail[STDERR_TAIL]; /* last bytes of the current child's stderr */
    size_t tail_len;
    uint64_t timer;
    uint64_t started_ms;
    char *config_json; /* normalised image config, written as blobs/<hex>/config.json */
    size_t config_len;
    uint64_t size;
    struct image_wait *waiters;
};

struct image_wait {
    struct image_cache *ic;
    struct pull *pull; /* set while waiting on a pull, else in ic->due */
    struct image_wait *prev, *next;
    image_ready_cb cb;
    void *arg;
    uint64_t timer;
    struct image *img;
    struct bx_err err;
};

struct cg_retry {
    struct cg_retry *next;
    struct cg_run *cg;
    unsigned tries;
};

struct image_cache {
    struct loop *loop;
    const struct config *cfg;
    char *dir; /* <home>/images */
    int dirfd, refs_fd, blobs_fd, tmp_fd;
    char skopeo[PATH_MAX], umoci[PATH_MAX], sync_bin[PATH_MAX]; /* "" when not found */
    char *env[4];
    struct pull *pulls;              /* queued and running */
    struct pull *queue, *queue_tail; /* waiting for a slot, oldest first */
    unsigned active;                 /* running pulls */
    int pumping;
    struct cg_ctx *cg;               /* NULL: children run without cgroups */
    struct cg_retry *cg_retry;       /* cgroups still busy after their child died */
    uint64_t cg_retry_timer;
    struct image_wait *due;
    struct blob_use *uses;
    struct image_stats st;
};

/* image.c: small helpers and delivery.  Results reach waiters from the loop
 * (schedule), never inside the call that registered them. */
int image_is_hex64(const char *s, size_t len);
/* "sha256:<64 lower-case hex>" -> hex.  The hex is later used as a file
 * name, so nothing else may pass. */
int image_digest_to_hex(const char *d, size_t len, char hex[HEX_LEN + 1]);
int image_fsync_dir(int fd, const char *what, struct bx_err *err);
/* A fresh directory stream with its own offset (a dup would share it). */
DIR *image_dir_stream(int dirfd);
void image_free(struct image *img);
int image_blob_ready(struct image_cache *ic, const char *hex);
void image_blob_touch(struct image_cache *ic, const char *hex);
unsigned image_use_count(struct image_cache *ic, const char *hex);
int image_use_get(struct image_cache *ic, const char *hex);
void image_use_put(struct image_cache *ic, const char *hex);
void image_wait_link(struct image_wait **head, struct image_wait *w);
void image_wait_unlink(struct image_wait **head, struct image_wait *w);
int image_read_json_at(int dirfd, const char *path, size_t max, struct json_doc **doc,
                       struct bx_err *err);
const char *image_json_cstr(const struct json_value *v);
void image_deliver_now(struct image_wait *w);
/* Queues w's result (w->img or w->err) for delivery from the loop. */
int image_schedule(struct image_cache *ic, struct image_wait *w);

/* image_disk.c: refs files, blobs, eviction, the start-up sweep. */
struct ref_entry {
    char ref[REF_CANON_MAX];
    char hex[HEX_LEN + 1];
    int64_t pulled_at;
};

typedef int (*ref_fn)(struct image_cache *ic, const char *name, const struct ref_entry *e,
                      void *arg);

struct blob_info {
    char hex[HEX_LEN + 1];
    uint64_t size;
    struct timespec used;
};

/* Reads refs/<name>; the ref inside must hash to the file name, so a file can
 * never answer for another reference. */
int image_ref_read(struct image_cache *ic, const char *name, struct ref_entry *e);
int image_ref_write(struct image_cache *ic, const char *key, const char *ref, const char *hex,
                    struct bx_err *err);
int image_refs_foreach(struct image_cache *ic, ref_fn fn, void *arg, struct bx_err *err);
int image_ref_find_digest(struct image_cache *ic, const char *name, const struct ref_entry *e,
                          void *arg);
/* Removes tmp/<name>.  bx_rm_rf_at stops at 256 levels and an image can
 * unpack deeper trees (a hostile one on purpose, to leave garbage behind or
 * to make the start-up sweep fail), so a tree that is too deep is first cut
 * into pieces of HOIST_DEPTH levels, each removed the same way.  Synchronous:
 * a rootfs is a few thousand files, milliseconds of work. */
int image_tmp_remove(struct image_cache *ic, const char *name, int level);
/* Moves dirfd/name into tmp/ (atomic; tmp/ is emptied at start-up, so a
 * crash half-way through leaves nothing usable behind), then removes it. */
int image_discard_at(struct image_cache *ic, int dirfd, const char *name, struct bx_err *err);
/* Removes the refs to hex and the blob directory. */
int image_blob_remove(struct image_cache *ic, const char *hex, struct bx_err *err);
/* Builds a struct image from blobs/<hex>/config.json (our own normalised
 * file) and takes a use reference on the digest. */
int image_hand_out(struct image_cache *ic, const char *hex, struct image **out, struct bx_err *err);
int image_blob_info_read(struct image_cache *ic, const char *hex, struct blob_info *bi);
/* Least recently used first, skipping what is in use and what was just
 * pulled, until the ready blobs fit image_cache_max_bytes again. */
void image_evict(struct image_cache *ic, const char *keep);
/* Leftovers of a previous run: everything in tmp/, blob directories without
 * `ready` (or with a foreign name), refs files that are unreadable or point
 * at a missing blob. */
int image_sweep(struct image_cache *ic, struct bx_err *err);

/* image_pull.c: the pulls and their queue. */
void image_pull_free(struct pull *p);
/* Nobody waits for p any more: its children are killed, its cgroups and
 * partial files removed, and the next queued pull gets the slot. */
void image_pull_cancel(struct pull *p);
/* A new pull starts now when fewer than max_concurrent_pulls run (and none
 * waits before it), else it waits in FIFO order for a slot. */
int image_pull_start(struct image_cache *ic, const struct imgref *ref, const char *canon,
                     const char *key, const char *stale, struct pull **out, struct bx_err *err);

#endif
