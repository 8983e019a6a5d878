/* Private to the store module (store.c, store_upload.c, store_capture.c):
 * the handle's layout and the helpers the pieces share.  Not part of the
 * contract in store.h.
 */
#ifndef BOXER_STORE_INTERNAL_H
#define BOXER_STORE_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "store.h"

/* Names the store keeps for itself at its root. */
#define TMP_DIR ".tmp"
#define OUTPUT_DIR "output"

struct store {
    int rootfd; /* O_RDONLY|O_DIRECTORY: usable for *at calls and fsync */
    int tmpfd;  /* <root>/.tmp */
    dev_t dev;  /* walks never leave this filesystem */
    /* Totals, counted once by store_open and then kept by every change made
     * in this process (children report theirs: store_report_*). */
    uint64_t bytes, files;
    uint64_t pending; /* bytes written to uploads not committed yet */
    uint64_t min_free_percent, max_bytes;
};

/* ENOSPC/EDQUOT: 507, anything else 500. */
int store_space_status(int e);
/* Adds a change to the totals, clamped at zero. */
void store_account(struct store *st, int64_t dbytes, int64_t dfiles);
/* The store_max_bytes cap (507) for `more` bytes on top of `extra`. */
int store_check_cap(const struct store *st, uint64_t extra, uint64_t more, const char *what,
                    struct bx_err *err);
int store_is_dot_or_dotdot(const char *s);
/* A name store_normalize_path would keep as one component. */
int store_valid_component(const char *name, size_t n);
/* 400 unless `id` is a valid exec id. */
int store_check_exec_id(const char *id, struct bx_err *err);
/* An existing subdirectory, never through a symlink nor onto another
 * filesystem; the fd or -1 with errno set. */
int store_open_subdir(int dirfd, const char *name, dev_t dev);
/* Same, creating it (0755) when missing; anything else there is a 400. */
int store_mkdir_open(int dirfd, const char *name, dev_t dev, struct bx_err *err);
/* A fresh 0600 file in .tmp under a random name: its fd, its name in `name`. */
int store_create_tmp(struct store *st, const char *prefix, char *name, size_t name_sz,
                     struct bx_err *err);

/* Normalizes an already normalized path again into `out` (the guarantee
 * stays local to each public function). */
int store_check_path(const char *norm_path, char *out, struct bx_err *err);
/* Walks every component of a normalized path but the last from the root and
 * returns an fd of the directory holding it; copies the last component into
 * last.  With create, missing directories are made (400 on a conflicting
 * non-directory); without it, any component that is missing, not a
 * directory, a symlink or on another filesystem is 404. */
int store_walk_parent(struct store *st, const char *path, int create,
                      char last[STORE_COMPONENT_MAX + 1], struct bx_err *err);

/* Used by the unit tests only (Boxer deletes with store_hide and
 * store_purge, off the loop). */
/* Deletes a stored file; then removes parent directories left empty (never
 * the root).  Missing is not an error. */
int store_delete(struct store *st, const char *norm_path, struct bx_err *err);

/* Removes output/<exec_id> entirely.  Never output/ itself: a capture child
 * may be between opening it and creating its own output/<exec_id>. */
int store_delete_output(struct store *st, const char *exec_id, struct bx_err *err);

#endif
