/* The file store: uploads, written to a file under .tmp while they arrive
 * and renamed into place on commit.  See store.h for the contract.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"
#include "util.h"

struct store_upload {
    struct store *st;
    int fd;
    uint64_t size; /* accepted, buffered or written */
    char name[48]; /* under .tmp */
    /* The multipart parser hands data over in pieces as small as one byte
     * (every CR could start a boundary): gathered here, so the loop makes
     * a write (and a free-disk check) per UPLOAD_BUF, not per piece. */
    char *buf;
    size_t blen;
};

#define UPLOAD_BUF 65536

/* ---- uploads ---- */

int store_upload_begin(struct store *st, struct store_upload **up, struct bx_err *err)
{
    struct store_upload *u;
    if (!st || !up)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_upload_begin: bad arguments");
    *up = NULL;
    u = calloc(1, sizeof(*u));
    if (!u)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    u->st = st;
    u->fd = store_create_tmp(st, "up", u->name, sizeof(u->name), err);
    if (u->fd < 0) {
        free(u);
        return -1;
    }
    *up = u;
    return 0;
}

/* Writes data to the temp file.  The free-disk floor is checked before
 * every write, so an upload stops at the bound, not after it: the disk may
 * fill from elsewhere while it streams. */
static int upload_put(struct store_upload *up, const void *data, size_t len, struct bx_err *err)
{
    if (len == 0)
        return 0;
    if (store_check_disk(up->st->rootfd, NULL, len, up->st->min_free_percent, "upload", err) < 0)
        return -1;
    if (bx_write_all(up->fd, data, len) < 0)
        return bx_err_sys(err, store_space_status(errno), "write upload");
    return 0;
}

static int upload_flush(struct store_upload *up, struct bx_err *err)
{
    int r = upload_put(up, up->buf, up->blen, err);
    up->blen = 0;
    return r;
}

int store_upload_write(struct store_upload *up, const void *data, size_t len, struct bx_err *err)
{
    if (!up || up->fd < 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_upload_write: no upload");
    if (len == 0)
        return 0;
    /* Buffered bytes count against the cap at once (pending). */
    if (store_check_cap(up->st, 0, len, "upload", err) < 0)
        return -1;
    if (!up->buf && !(up->buf = malloc(UPLOAD_BUF)))
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    if (up->blen + len > UPLOAD_BUF && upload_flush(up, err) < 0)
        return -1;
    if (len >= UPLOAD_BUF) {
        if (upload_put(up, data, len, err) < 0)
            return -1;
    } else {
        memcpy(up->buf + up->blen, data, len);
        up->blen += len;
    }
    up->size += len;
    up->st->pending += len;
    return 0;
}

uint64_t store_upload_size(const struct store_upload *up)
{
    return up ? up->size : 0;
}

void store_upload_abort(struct store_upload **up)
{
    struct store_upload *u;
    if (!up || !*up)
        return;
    u = *up;
    bx_close(&u->fd);
    free(u->buf);
    if (u->name[0])
        unlinkat(u->st->tmpfd, u->name, 0);
    u->st->pending = u->size > u->st->pending ? 0 : u->st->pending - u->size;
    free(u);
    *up = NULL;
}

void store_upload_finish(struct store_upload **up, int committed, const struct store_report *rep)
{
    if (!up || !*up)
        return;
    /* Deltas are zero unless the child's rename happened; the temp name is
     * unlinked either way (ENOENT once renamed away). */
    if (committed)
        store_report_apply((*up)->st, rep);
    store_upload_abort(up);
}

int store_upload_fds(const struct store_upload *up, int *fds, int cap)
{
    int n = store_fds(up->st, fds, cap);
    if (n < cap)
        fds[n++] = up->fd;
    return n;
}

int store_upload_seal(struct store_upload *up, struct bx_err *err)
{
    int r;
    if (!up || up->fd < 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_upload_seal: no upload");
    r = upload_flush(up, err);
    free(up->buf);
    up->buf = NULL;
    bx_close(&up->fd);
    return r;
}

int store_upload_link(const struct store_upload *up, int dst_dirfd, const char *dst_name,
                      struct bx_err *err)
{
    if (!up || !up->name[0] || up->fd >= 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_upload_link: not a sealed upload");
    /* No AT_SYMLINK_FOLLOW: the temp name is ours (O_EXCL, O_NOFOLLOW). */
    if (linkat(up->st->tmpfd, up->name, dst_dirfd, dst_name, 0) < 0)
        return bx_err_sys(err, store_space_status(errno), "link spooled input");
    return 0;
}

int store_upload_commit_io(struct store_upload *u, const char *norm_path, struct store_report *rep,
                           struct bx_err *err)
{
    char path[STORE_PATH_MAX + 1];
    char last[STORE_COMPONENT_MAX + 1];
    struct store *st;
    struct stat sb;
    int dirfd = -1;
    int ret = -1;

    if (!u || u->fd < 0 || !rep)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_upload_commit: no upload");
    st = u->st;
    rep->dbytes = rep->dfiles = 0;
    rep->replaced_bytes = 0;
    if (store_check_path(norm_path, path, err) < 0)
        goto out;
    if (upload_flush(u, err) < 0)
        goto out;
    /* Data first: after the rename the name must never point at a file whose
     * blocks are not on disk yet. */
    if (fsync(u->fd) < 0) {
        bx_err_sys(err, store_space_status(errno), "fsync upload");
        goto out;
    }
    if (fchmod(u->fd, 0644) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "chmod upload");
        goto out;
    }
    dirfd = store_walk_parent(st, path, 1, last, err);
    if (dirfd < 0)
        goto out;
    /* What the rename replaces leaves the totals. */
    if (fstatat(dirfd, last, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode)) {
        rep->replaced_bytes = (uint64_t)sb.st_size;
        rep->dfiles = -1;
    }
    /* rename(2) never follows a symlink at the target (it replaces the link
     * itself) and refuses to put a file over a directory (EISDIR). */
    if (renameat(st->tmpfd, u->name, dirfd, last) < 0) {
        rep->dfiles = 0;
        rep->replaced_bytes = 0;
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
            bx_err_set(err, BX_E_BAD_REQUEST, errno, "a directory exists at %s", path);
        else
            bx_err_sys(err, store_space_status(errno), "rename upload into place");
        goto out;
    }
    u->name[0] = '\0';
    rep->dbytes = (int64_t)u->size - (int64_t)rep->replaced_bytes;
    rep->dfiles += 1;
    if (fsync(dirfd) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fsync directory");
        goto out;
    }
    ret = 0;
out:
    rep->finished = 1;
    bx_close(&dirfd);
    return ret;
}

int store_upload_commit(struct store_upload **up, const char *norm_path, struct bx_err *err)
{
    struct store_report rep;
    int ret;

    if (!up || !*up)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_upload_commit: no upload");
    memset(&rep, 0, sizeof(rep));
    ret = store_upload_commit_io(*up, norm_path, &rep, err);
    /* In this process commit_io cleared the name itself once renamed. */
    store_report_apply((*up)->st, &rep);
    store_upload_abort(up);
    return ret;
}
