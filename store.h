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

/* Opens (creating if needed, mode 0700) the store rooted at root_path and
 * removes leftovers in .tmp. */
int store_open(struct store **out, const char *root_path, struct bx_err *err);
void store_close(struct store **st);

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

/* Opens a stored regular file for reading (O_RDONLY|O_CLOEXEC), returns its
 * fd and size.  404 when absent, 400 when it is a directory or not a
 * regular file. */
int store_open_read(struct store *st, const char *norm_path, int *fd_out, uint64_t *size_out,
                    struct bx_err *err);

/* 1 if a regular file exists at the path, 0 if not, -1 on error. */
int store_exists(struct store *st, const char *norm_path, struct bx_err *err);

/* Hard-links the stored file into dst_dirfd/dst_name (same filesystem), for
 * bind-mounting into a sandbox without exposing the store's path.  404 when
 * absent. */
int store_link_into(struct store *st, const char *norm_path, int dst_dirfd, const char *dst_name,
                    struct bx_err *err);

/* Deletes a stored file; then removes parent directories left empty (never
 * the root).  Missing is not an error. */
int store_delete(struct store *st, const char *norm_path, struct bx_err *err);

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

/* The descriptors the store works through (at most 2 are written), for a
 * forked helper that closes every other descriptor before it calls
 * store_capture_output.  Returns how many. */
int store_fds(const struct store *st, int *fds, int cap);

/* Removes output/<exec_id> entirely. */
int store_delete_output(struct store *st, const char *exec_id, struct bx_err *err);

/* Totals for metrics. */
int store_usage(struct store *st, uint64_t *bytes, uint64_t *files, struct bx_err *err);

#endif
