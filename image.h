/* Image cache: pull with skopeo, unpack with umoci, keyed by manifest digest.
 *
 * On disk under <home>/images:
 *   refs/<sha256 of canonical ref>.json  {"ref", "digest", "pulled_at"}
 *   blobs/<digest hex>/rootfs/           the unpacked root filesystem (read-only use)
 *   blobs/<digest hex>/config.json       the image config (Env, WorkingDir, Entrypoint, Cmd, User)
 *   blobs/<digest hex>/size              disk usage of rootfs in bytes (for eviction, listing)
 *   blobs/<digest hex>/ready             written last, after fsync: the entry is usable;
 *                                        its mtime is the last use (LRU)
 *   tmp/                                 pulls in progress; emptied at start-up
 *   tmp/<pull>/dl/                       skopeo's directory (owned by uid 65534 when Boxer
 *                                        is root): policy.json (our signature policy, not
 *                                        /etc/containers'), auth.json, layout/
 * An entry without `ready` is incomplete and removed at start-up, as are refs
 * pointing at a missing blob.  Two references to one digest share a rootfs.
 *
 * Pulls never block the loop: skopeo, umoci and `sync -f` run as supervised
 * children under one pull_timeout_secs timer (started when the pull gets a
 * slot).  Concurrent requests for one reference share one pull; at most
 * max_concurrent_pulls run, the others wait in FIFO order.  A pull whose
 * last waiter cancels is stopped (children killed, files removed).  Each
 * of skopeo and umoci runs in a cgroup of its own (pull_memory_mb,
 * pull_pids_limit; see image_cache_set_cgroups) with RLIMIT_FSIZE at
 * image_max_bytes; skopeo runs as uid/gid 65534 in a private mount
 * namespace that shows it only its own directory (at /tmp), with a copy
 * of registry_auth_file.  The download and the unpacked tree are each
 * measured while they grow; past image_max_bytes the pull fails (500,
 * naming the limit) and everything is removed.  registry_mirrors, insecure_registries and
 * registry_auth_file are honoured.  A tag is trusted for tag_refresh_secs
 * (0: forever); when the refresh fails, the cached image is served.  A ref
 * pinned by digest never refreshes.  After each successful pull, when
 * image_cache_max_bytes > 0, the least recently used images not in use are
 * evicted until the cache fits.  Log lines go to stderr ("boxer: image: ").
 */
#ifndef BOXER_IMAGE_H
#define BOXER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "imgref.h"
#include "loop.h"
#include "util.h"

struct image_cache;
struct image_wait;

/* What a run needs from an image.  Valid while the caller holds it
 * (image_release). */
struct image {
    char digest[80];   /* "sha256:<hex>" */
    char *rootfs;      /* absolute path of the unpacked rootfs */
    char **env;        /* image config Env (NULL-terminated), may be empty */
    char *working_dir; /* image config WorkingDir, or NULL */
    char **entrypoint; /* NULL-terminated or NULL */
    char **cmd;        /* NULL-terminated or NULL */
    char *user;        /* image config User, or NULL */
};

/* err is NULL on success (img set), else img is NULL. */
typedef void (*image_ready_cb)(void *arg, struct image *img, const struct bx_err *err);

/* cfg must outlive the cache (its fields are read at each pull).  Finds
 * skopeo, umoci and sync in $PATH (a missing one is logged, and pulls that
 * need it fail with 500).  Children get only PATH, HOME and TMPDIR (both
 * <home>/images/tmp). */
int image_cache_new(struct image_cache **out, struct loop *l, const struct config *cfg,
                    struct bx_err *err);
/* Kills pulls in flight and drops their waiters without callbacks.  Images
 * handed out must be released before (image_release needs the cache). */
void image_cache_free(struct image_cache **ic);
struct cg_ctx;
/* The cgroups (cgroup.h) skopeo and umoci run in, one each per pull, below
 * Boxer's base; NULL (ignore_cgroups) runs them without. */
void image_cache_set_cgroups(struct image_cache *ic, struct cg_ctx *cg);

/* Gets the image for ref, pulling when needed; cb runs later from the loop
 * (never synchronously inside image_get), exactly once, unless cancelled.
 * Returns -1 (err set, no callback) only for immediate failures (invalid ref,
 * out of memory, skopeo could not be started for a pull that got a slot at
 * once; a queued pull that cannot start fails through cb).  Pull failures arrive in cb
 * as status 500 with the last line of the tool's stderr, or "image pull timed
 * out".  *w (may be NULL) is valid until cb runs or image_wait_cancel; the
 * callback must forget it.  The image passed to cb belongs to the caller
 * until image_release. */
int image_get(struct image_cache *ic, const struct imgref *ref, image_ready_cb cb, void *arg,
              struct image_wait **w, struct bx_err *err);
/* Detaches one waiter (no callback); the pull goes on for the others and
 * still fills the cache, and is stopped (children killed, partial files
 * removed) when it was the last.  Sets *w to NULL; NULL is a no-op. */
void image_wait_cancel(struct image_wait **w);
/* The cached image with this digest ("sha256:<hex>"), now (no pull, no
 * callback): for what must keep exactly the content it started from (a box
 * restarted after a Boxer restart).  404 when it is not in the cache.  The
 * image is the caller's until image_release, and counts as in use. */
int image_acquire_digest(struct image_cache *ic, const char *digest, struct image **out,
                         struct bx_err *err);
/* Marks the image no longer in use by the caller (for eviction/deletion)
 * and frees img. */
void image_release(struct image_cache *ic, struct image *img);

/* GET /images body, sorted by ref:
 * [{"ref","digest","size_bytes","last_used","pulled_at","in_use"}...]
 * (last_used, pulled_at: Unix seconds). */
int image_list_json(struct image_cache *ic, struct sbuf *out, struct bx_err *err);
/* DELETE /images?ref=R: 404 unknown, 409 in use or being pulled.  Removes
 * the ref, and the blob when no other ref points at it. */
int image_delete(struct image_cache *ic, const struct imgref *ref, struct bx_err *err);

/* Counters for /metrics. */
struct image_stats {
    uint64_t pulls_ok, pulls_failed, pull_ms_total;
    uint64_t cached_images;
};
void image_stats(struct image_cache *ic, struct image_stats *st);

#endif
