/* Image cache: pull with skopeo, unpack with umoci, keyed by manifest digest.
 *
 * On disk under <home>/images:
 *   refs/<sha256 of canonical ref>.json  {"ref", "digest", "pulled_at"}
 *   blobs/<digest hex>/rootfs/           the unpacked root filesystem (read-only use)
 *   blobs/<digest hex>/config.json       the image config (Env, WorkingDir, Entrypoint, Cmd, User)
 *   blobs/<digest hex>/ready             written last, after fsync: the entry is usable
 *   tmp/                                 pulls in progress; emptied at start-up
 * An entry without `ready` is incomplete and removed at start-up.
 *
 * Pulls never block the loop: skopeo and umoci run as supervised children
 * with a timeout.  Concurrent requests for one reference share one pull.
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

int image_cache_new(struct image_cache **out, struct loop *l, const struct config *cfg,
                    struct bx_err *err);
void image_cache_free(struct image_cache **ic);

/* Gets the image for ref, pulling when needed; cb runs later from the loop
 * (never synchronously inside image_get).  *w lets the caller cancel. */
int image_get(struct image_cache *ic, const struct imgref *ref, image_ready_cb cb, void *arg,
              struct image_wait **w, struct bx_err *err);
void image_wait_cancel(struct image_wait **w);
/* Marks the image no longer in use by the caller (for eviction/deletion). */
void image_release(struct image_cache *ic, struct image *img);

/* GET /images body: [{"ref","digest","size_bytes","last_used"}...] */
int image_list_json(struct image_cache *ic, struct sbuf *out, struct bx_err *err);
/* DELETE /images?ref=R: 404 unknown, 409 in use. */
int image_delete(struct image_cache *ic, const struct imgref *ref, struct bx_err *err);

/* Counters for /metrics. */
struct image_stats {
    uint64_t pulls_ok, pulls_failed, pull_ms_total;
    uint64_t cached_images;
};
void image_stats(struct image_cache *ic, struct image_stats *st);

#endif
