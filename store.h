/* The file store: a directory tree under <home>/files holding uploaded inputs
 * and captured outputs (output/<exec_id>/...).
 *
 * Safety: every access resolves the client path one component at a time from
 * the root directory fd with O_NOFOLLOW (or openat2 RESOLVE_BENEATH|
 * RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), so nothing in the store, even
 * a symlink planted by some other means, can lead outside it.  The store
 * itself only ever creates regular files and directories.
 *
 * Writes are atomic: data goes to a temp file in <root>/.tmp (same
 * filesystem), is fsynced, then renamed into place; the parent directory is
 * fsynced.  Readers never see partial files; a crash leaves only .tmp
 * entries, which store_open() removes.  The name ".tmp" at the top level is
 * therefore reserved, like "output/".
 */
#ifndef BOXER_STORE_H
#define BOXER_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define STORE_PATH_MAX 4096
#define STORE_COMPONENT_MAX 255

struct store;
struct store_upload;

/* What a forked store helper (an /output capture, an upload commit, a bulk
 * deletion) hands back to the parent.  It lives in a shared anonymous
 * mapping (store_report_new) that the child fills before it exits; the
 * parent reads it once the child is reaped.  Fixed size: no pointers. */
#define STORE_REPORT_MSGS 32
#define STORE_REPORT_MSG_MAX 200
struct store_report {
    int finished;                   /* the child got to the end (else it died) */
    struct bx_err err;              /* status 0: success */
    int64_t dbytes, dfiles;         /* change of the store's totals (store_report_apply) */
    uint64_t replaced_bytes;        /* upload commit: size of the file it replaced */
    uint64_t files, bytes, skipped; /* capture: captured and skipped entries */
    uint32_t nmsgs, msgs_dropped;   /* capture: why entries were skipped */
    char msgs[STORE_REPORT_MSGS][STORE_REPORT_MSG_MAX];
};

/* Opens (creating if needed, mode 0700) the store rooted at root_path,
 * removes leftovers in .tmp and counts what the store holds (one walk, at
 * start-up only: afterwards the totals are kept up to date by every call
 * below, see store_totals). */
int store_open(struct store **out, const char *root_path, struct bx_err *err);
void store_close(struct store **st);

/* Disk bounds (config min_free_disk_percent, store_max_bytes; 0 = none).
 * Uploads and captures that would cross either fail with 507. */
void store_set_limits(struct store *st, uint64_t min_free_percent, uint64_t max_bytes);

/* The one free-disk check, shared by uploads, captures and image pulls:
 * 507 when writing `more` bytes to the filesystem of fd (or, with fd < 0,
 * of path) would leave less than min_free_percent of it free (0: never).
 * what names the operation in the message. */
int store_check_disk(int fd, const char *path, uint64_t more, uint64_t min_free_percent,
                     const char *what, struct bx_err *err);

/* Bytes and regular files in the store, maintained on every write and
 * delete (no walk: cheap enough for every GET /metrics). */
void store_totals(const struct store *st, uint64_t *bytes, uint64_t *files);

/* Forked helpers: store_report_new maps a zeroed report shared with a child
 * (NULL when out of memory); store_report_begin, in the child before any
 * store call, records the totals, and store_report_end computes what the
 * child's calls changed; the parent adds that with store_report_apply
 * (nothing if the child died before store_report_end). */
struct store_report *store_report_new(void);
void store_report_free(struct store_report **rep);
void store_report_begin(const struct store *st, struct store_report *rep);
void store_report_end(const struct store *st, struct store_report *rep);
void store_report_apply(struct store *st, const struct store_report *rep);

/* Validates and normalizes a client path into out (STORE_PATH_MAX+1 bytes).
 * Rejects (400): empty, absolute, NUL byte, any ".." component, a component
 * over 255 bytes, a whole path over 4096 bytes, control characters, bytes
 * that are not strict UTF-8 (the path travels back in JSON), paths that
 * normalize to nothing ("." or "./"), and the reserved top-level ".tmp".  With
 * for_upload, also the reserved "output" top-level directory ("output" or
 * "output/..."). Normalizes "a//b" -> "a/b", "./a" -> "a", "a/./b" -> "a/b",
 * drops a trailing "/".  Pure function: no filesystem access. */
int store_normalize_path(const char *in, size_t in_len, int for_upload, char *out,
                         struct bx_err *err);

/* Upload: begin creates a temp file; write appends (the caller enforces the
 * size limit); commit needs the normalized path, creates parent directories
 * (refusing any component that exists as a non-directory: 400), fsyncs and
 * renames atomically over any existing file (a directory at the target: 400).
 * abort removes the temp file.  commit and abort free *up. */
int store_upload_begin(struct store *st, struct store_upload **up, struct bx_err *err);
int store_upload_write(struct store_upload *up, const void *data, size_t len,
                       struct bx_err *err);
uint64_t store_upload_size(const struct store_upload *up);
int store_upload_commit(struct store_upload **up, const char *norm_path, struct bx_err *err);
void store_upload_abort(struct store_upload **up);
/* The commit in two halves, so its fsyncs can run in a child (boxer.c):
 * store_upload_commit_io does the blocking part (fsync, directories,
 * rename) and changes nothing the parent sees but the filesystem;
 * store_upload_finish then, in the parent, adds what the child reported
 * (committed = 1: rep was filled by a child that finished), removes the
 * temp file if it is still there, and frees *up.  store_upload_fds lists
 * the descriptors the child needs (at most 3). */
int store_upload_commit_io(struct store_upload *up, const char *norm_path, struct store_report *rep,
                           struct bx_err *err);
void store_upload_finish(struct store_upload **up, int committed, const struct store_report *rep);
int store_upload_fds(const struct store_upload *up, int *fds, int cap);
/* A multipart /run's file parts (issue 17) are spooled as uploads that are
 * never committed to a store path.  seal writes what is buffered and closes
 * the file (a request holds no descriptor per part while it waits for its
 * run); link then hard-links the sealed temp file as dst_name in dst_dirfd
 * (the run's inputs directory, same filesystem as the store), and abort
 * (or run_request_free) removes the temp name and the pending bytes. */
int store_upload_seal(struct store_upload *up, struct bx_err *err);
int store_upload_link(const struct store_upload *up, int dst_dirfd, const char *dst_name,
                      struct bx_err *err);

/* Opens a stored regular file for reading (O_RDONLY|O_CLOEXEC), returns its
 * fd and size.  404 when absent, 400 when it is a directory or not a
 * regular file. */
int store_open_read(struct store *st, const char *norm_path, int *fd_out, uint64_t *size_out,
                    struct bx_err *err);

/* 1 if a regular file exists at the path, 0 if not, -1 on error. */
int store_exists(struct store *st, const char *norm_path, struct bx_err *err);
/* issue 17: output/<exec_id> opened as a directory (never through a
 * symlink, never onto another filesystem); -2 when it does not exist, -1
 * with errno on another failure. */
int store_open_output_dir(struct store *st, const char *exec_id);

/* Hard-links the stored file into dst_dirfd/dst_name (same filesystem), for
 * bind-mounting into a sandbox without exposing the store's path.  404 when
 * absent. */
int store_link_into(struct store *st, const char *norm_path, int dst_dirfd, const char *dst_name,
                    struct bx_err *err);

/* Captures a run's /output: walks src_dirfd (without following symlinks and
 * without crossing mounts) and moves, or copies where rename fails with
 * EXDEV, every regular file with st_nlink == 1 into output/<exec_id>/ keeping
 * subdirectories.  Skips symlinks, hard-linked files, devices, FIFOs,
 * sockets, and names no store path can express (control characters, not
 * UTF-8, too long).  Stops adding after max_files files or max_bytes bytes
 * (the rest is skipped, not an error).  *files_out and *skipped_out report
 * counts.  Each file appears whole (temp file, then rename); everything is
 * made durable by one syncfs before returning, not by a fsync per file.
 * This is blocking I/O proportional to the number of files: run it off the
 * event loop (run.c uses a proc_fork child). */
int store_capture_output(struct store *st, const char *exec_id, int src_dirfd, size_t max_files,
                         uint64_t max_bytes, size_t *files_out, size_t *skipped_out,
                         struct bx_err *err);
/* The same, reporting into rep (counts, and a line per skipped entry
 * naming it and why, at most STORE_REPORT_MSGS), and bounded by the disk
 * limits of store_set_limits: a file that would cross the free-disk floor
 * or store_max_bytes fails the capture with 507. */
int store_capture(struct store *st, const char *exec_id, int src_dirfd, size_t max_files,
                  uint64_t max_bytes, struct store_report *rep, struct bx_err *err);

/* Whether the directory name in dirfd (a capture's source, e.g. a run's
 * /output) has an entry other than . and ..: 1 yes, 0 empty, -1 error
 * (errno set).  Opened like the capture opens it (O_NOFOLLOW: a symlink
 * is an error, never followed) and read only up to its first entry, so it
 * costs the same few syscalls however big the tree: cheap enough for the
 * event loop, where a capture is not. */
int store_capture_has_entries(int dirfd, const char *name);

/* The descriptors the store works through (at most 2 are written), for a
 * forked helper that closes every other descriptor before it calls
 * store_capture_output.  Returns how many. */
int store_fds(const struct store *st, int *fds, int cap);

/* Deleting without blocking the loop: store_hide (a stored file) and
 * store_hide_output (output/<exec_id>) rename the entry into .tmp under a
 * fresh name written to hidden, so it is gone for every later request at
 * once (a rename: no fsync); 1 when there was nothing to hide.
 * store_purge(hidden), blocking (in a child), deletes it and takes it off
 * the totals; store_prune removes the parent directories a hidden file
 * left empty.  A crash in between leaves only .tmp entries, removed by the
 * next store_open. */
#define STORE_HIDDEN_MAX 48
int store_hide(struct store *st, const char *norm_path, char hidden[STORE_HIDDEN_MAX],
               struct bx_err *err);
int store_hide_output(struct store *st, const char *exec_id, char hidden[STORE_HIDDEN_MAX],
                      struct bx_err *err);
int store_purge(struct store *st, const char *hidden, struct bx_err *err);
int store_prune(struct store *st, const char *norm_path, struct bx_err *err);

/* Walks the whole store and counts it (store_open's start-up count; also
 * for tests, which compare it with store_totals). */
int store_usage(struct store *st, uint64_t *bytes, uint64_t *files, struct bx_err *err);

#endif
