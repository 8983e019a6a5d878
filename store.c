/* The file store.  See store.h for the contract.
 *
 * How client paths reach the filesystem: a client path is first normalized
 * (store_normalize_path: no "..", no absolute paths, no control bytes, no
 * empty or "." components, bounded lengths).  The normalized path is never
 * handed to a syscall as a whole: it is walked one component at a time from
 * the root directory fd, each directory opened with
 * O_DIRECTORY|O_NOFOLLOW and checked to be on the root's filesystem, and the
 * last component is only ever used as a name relative to its parent fd
 * (fstatat/openat/renameat/linkat/unlinkat, none of which follow a final
 * symlink with the flags used here).  Without ".." and without symlinks a
 * walk can only go down, so nothing can lead it outside the root.
 *
 * Every public function that takes a "normalized" path normalizes it again:
 * it is cheap and keeps the guarantee local to this file.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store_internal.h"
#include "util.h"

#define EXEC_ID_MAX 64
/* The usage walk keeps one directory open at a time, so it is only bounded
 * to stay finite on a corrupted tree; normalized paths need at most 2048. */
#define USAGE_MAX_DEPTH 4096

/* ENOSPC/EDQUOT are nobody's bug but still worth telling apart. */
int store_space_status(int e)
{
    return e == ENOSPC || e == EDQUOT ? BX_E_INSUFFICIENT_STORAGE : BX_E_INTERNAL;
}

static int usage_walk(struct store *st, int fd, int at_root, uint64_t *bytes, uint64_t *files,
                      struct bx_err *err);

void store_account(struct store *st, int64_t dbytes, int64_t dfiles)
{
    /* Clamped: a count that went wrong (a child killed half-way) must not
     * wrap around to 2^64. */
    if (dbytes < 0)
        st->bytes = (uint64_t)-dbytes > st->bytes ? 0 : st->bytes - (uint64_t)-dbytes;
    else
        st->bytes += (uint64_t)dbytes;
    if (dfiles < 0)
        st->files = (uint64_t)-dfiles > st->files ? 0 : st->files - (uint64_t)-dfiles;
    else
        st->files += (uint64_t)dfiles;
}

int store_check_disk(int fd, const char *path, uint64_t more, uint64_t min_free_percent,
                     const char *what, struct bx_err *err)
{
    struct statvfs sv;
    uint64_t frsize, total, avail, floor;
    int r;

    if (min_free_percent == 0)
        return 0;
    do {
        r = fd >= 0 ? fstatvfs(fd, &sv) : statvfs(path, &sv);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "%s: statvfs", what);
    frsize = sv.f_frsize ? (uint64_t)sv.f_frsize : (uint64_t)sv.f_bsize;
    total = (uint64_t)sv.f_blocks * frsize;
    avail = (uint64_t)sv.f_bavail * frsize;
    floor = total / 100 * min_free_percent + total % 100 * min_free_percent / 100;
    if (avail < floor || avail - floor < more)
        return bx_err_set(err, BX_E_INSUFFICIENT_STORAGE, ENOSPC,
                          "%s: not enough disk space: it would leave less than %" PRIu64
                          "%% of the disk free (min_free_disk_percent; %" PRIu64
                          " bytes free, %" PRIu64 " needed)",
                          what, min_free_percent, avail, more);
    return 0;
}

/* The store_max_bytes cap for `more` new bytes on top of `extra` already
 * on the way (uploads in progress, a capture's earlier files). */
int store_check_cap(const struct store *st, uint64_t extra, uint64_t more, const char *what,
                    struct bx_err *err)
{
    uint64_t used = st->bytes + st->pending + extra;
    if (st->max_bytes == 0)
        return 0;
    if (used > st->max_bytes || st->max_bytes - used < more)
        return bx_err_set(err, BX_E_INSUFFICIENT_STORAGE, ENOSPC,
                          "%s: the store is full (store_max_bytes %" PRIu64 ", %" PRIu64
                          " bytes used)",
                          what, st->max_bytes, used);
    return 0;
}

void store_set_limits(struct store *st, uint64_t min_free_percent, uint64_t max_bytes)
{
    st->min_free_percent = min_free_percent;
    st->max_bytes = max_bytes;
}

void store_totals(const struct store *st, uint64_t *bytes, uint64_t *files)
{
    if (bytes)
        *bytes = st->bytes;
    if (files)
        *files = st->files;
}

int store_is_dot_or_dotdot(const char *s)
{
    return s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'));
}

/* ---- path rules ---- */

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
 * Store paths travel back to clients inside JSON strings: a name that is
 * not UTF-8 would come back altered and could never be named again. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1fu;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0fu;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return 0; /* continuation byte, 0xc0/0xc1, 0xf5..0xff */
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int store_normalize_path(const char *in, size_t in_len, int for_upload, char *out,
                         struct bx_err *err)
{
    size_t i = 0, o = 0;

    if (!out)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "no output buffer for path");
    out[0] = '\0';
    if (!in || in_len == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "empty path");
    if (in_len > STORE_PATH_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, ENAMETOOLONG, "path is longer than %d bytes", STORE_PATH_MAX);
    if (in[0] == '/')
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "absolute paths are not allowed");
    /* Checked over the whole length first: a NUL inside the length would
     * otherwise silently truncate the path at the syscall boundary. */
    for (i = 0; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "path contains a NUL byte");
        if (c < 0x20 || c == 0x7f)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "path contains a control character");
    }
    if (!valid_utf8((const unsigned char *)in, in_len))
        return bx_err_set(err, BX_E_BAD_REQUEST, EILSEQ, "path is not valid UTF-8");
    i = 0;
    while (i < in_len) {
        size_t start = i, n;
        while (i < in_len && in[i] != '/')
            i++;
        n = i - start;
        if (i < in_len)
            i++;
        if (n == 0 || (n == 1 && in[start] == '.'))
            continue;
        if (n == 2 && in[start] == '.' && in[start + 1] == '.') {
            out[0] = '\0';
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "'..' is not allowed in paths");
        }
        if (n > STORE_COMPONENT_MAX) {
            out[0] = '\0';
            return bx_err_set(err, BX_E_BAD_REQUEST, ENAMETOOLONG, "path component longer than %d bytes",
                              STORE_COMPONENT_MAX);
        }
        if (o == 0) {
            if (n == sizeof(TMP_DIR) - 1 && memcmp(in + start, TMP_DIR, n) == 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "path uses the reserved name .tmp");
            if (for_upload && n == sizeof(OUTPUT_DIR) - 1 && memcmp(in + start, OUTPUT_DIR, n) == 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "the output/ prefix is reserved");
        } else {
            out[o++] = '/';
        }
        /* o + n never exceeds in_len: every byte written was read once. */
        memcpy(out + o, in + start, n);
        o += n;
    }
    if (o == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "path is empty after normalization");
    out[o] = '\0';
    return 0;
}

/* A name store_normalize_path would keep as one component. */
int store_valid_component(const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/')
            return 0;
    }
    return valid_utf8((const unsigned char *)name, n);
}

int store_check_path(const char *norm_path, char *out, struct bx_err *err)
{
    if (!norm_path)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "missing path");
    return store_normalize_path(norm_path, strnlen(norm_path, STORE_PATH_MAX + 1), 0, out, err);
}

/* exec ids become a directory name, so they get their own tight alphabet. */
int store_check_exec_id(const char *id, struct bx_err *err)
{
    size_t n;
    if (!id)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "missing exec id");
    n = strnlen(id, EXEC_ID_MAX + 1);
    if (n == 0 || n > EXEC_ID_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "bad exec id length");
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "bad character in exec id");
    }
    return 0;
}

/* ---- directory walking ---- */

/* Opens an existing subdirectory: never through a symlink (O_NOFOLLOW makes
 * a symlink fail with ELOOP or ENOTDIR), never onto another filesystem
 * (EXDEV).  Returns the fd or -1 with errno set. */
int store_open_subdir(int dirfd, const char *name, dev_t dev)
{
    struct stat sb;
    int fd;
    do {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) < 0) {
        bx_close(&fd);
        return -1;
    }
    if (sb.st_dev != dev) {
        bx_close(&fd);
        errno = EXDEV;
        return -1;
    }
    return fd;
}

/* Opens, creating if missing (0755), a subdirectory.  Anything already there
 * that is not a plain directory on our filesystem is a conflict (400). */
int store_mkdir_open(int dirfd, const char *name, dev_t dev, struct bx_err *err)
{
    int created = 0;
    int fd = store_open_subdir(dirfd, name, dev);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(dirfd, name, 0755) == 0)
            created = 1;
        else if (errno != EEXIST)
            return bx_err_sys(err, store_space_status(errno), "mkdir %s", name);
        fd = store_open_subdir(dirfd, name, dev);
    }
    if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP || errno == EXDEV)
            return bx_err_set(err, BX_E_BAD_REQUEST, errno, "path conflicts with an existing file");
        return bx_err_sys(err, BX_E_INTERNAL, "open directory %s", name);
    }
    /* The new entry must survive a crash before anything is renamed under it. */
    if (created && fsync(dirfd) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fsync directory");
        bx_close(&fd);
        return -1;
    }
    return fd;
}

/* Walks every component of a normalized path but the last from the root and
 * returns an fd of the directory holding it; copies the last component into
 * last.  With create, missing directories are made (400 on a conflicting
 * non-directory); without it, any component that is missing, not a
 * directory, a symlink or on another filesystem is 404. */
int store_walk_parent(struct store *st, const char *path, int create,
                      char last[STORE_COMPONENT_MAX + 1], struct bx_err *err)
{
    char comp[STORE_COMPONENT_MAX + 1];
    const char *p = path;
    int cur = fcntl(st->rootfd, F_DUPFD_CLOEXEC, 0);

    if (cur < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "dup");
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        int next;
        /* Normalized: every component is 1..255 bytes. */
        if (n == 0 || n > STORE_COMPONENT_MAX) {
            bx_close(&cur);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "bad path");
        }
        if (!slash) {
            memcpy(last, p, n);
            last[n] = '\0';
            return cur;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        if (create) {
            next = store_mkdir_open(cur, comp, st->dev, err);
        } else {
            next = store_open_subdir(cur, comp, st->dev);
            if (next < 0) {
                if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV)
                    bx_err_set(err, BX_E_NOT_FOUND, errno, "file not found");
                else
                    bx_err_sys(err, BX_E_INTERNAL, "open directory");
            }
        }
        bx_close(&cur);
        if (next < 0)
            return -1;
        cur = next;
        p = slash + 1;
    }
}

/* Stats the final component without following it.  0 and *sb filled when
 * it exists; 1 when it does not; -1 on error. */
static int stat_last(int dirfd, const char *name, struct stat *sb, struct bx_err *err)
{
    if (fstatat(dirfd, name, sb, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno == ENOENT || errno == ENOTDIR)
        return 1;
    return bx_err_sys(err, BX_E_INTERNAL, "stat");
}

static int check_regular(const struct store *st, const struct stat *sb, struct bx_err *err)
{
    if (S_ISDIR(sb->st_mode))
        return bx_err_set(err, BX_E_BAD_REQUEST, EISDIR, "path is a directory");
    if (!S_ISREG(sb->st_mode) || sb->st_dev != st->dev)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "path is not a regular file");
    return 0;
}

/* ---- open/close ---- */

/* The root comes from the operator's config, not from a client, so it is
 * created with plain mkdir and may itself be (or sit under) a symlink. */
static int mkdir_trusted(const char *path, struct bx_err *err)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return bx_err_set(err, BX_E_INTERNAL, ENAMETOOLONG, "bad store root path");
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", buf);
        buf[i] = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", path);
    return 0;
}

int store_open(struct store **out, const char *root_path, struct bx_err *err)
{
    struct store *st = NULL;
    struct stat sb;
    int ret = -1;

    if (!out || !root_path)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_open: bad arguments");
    *out = NULL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    st->rootfd = -1;
    st->tmpfd = -1;
    if (mkdir_trusted(root_path, err) < 0)
        goto out;
    st->rootfd = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->rootfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open store root %s", root_path);
        goto out;
    }
    if (fstat(st->rootfd, &sb) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "stat store root");
        goto out;
    }
    st->dev = sb.st_dev;
    /* Whatever is in .tmp is a crash leftover: no upload survives a restart.
     * bx_rm_rf_at never follows symlinks, so a planted .tmp symlink is just
     * unlinked. */
    if (bx_rm_rf_at(st->rootfd, TMP_DIR, err) < 0) {
        bx_err_wrap(err, "clean store .tmp");
        goto out;
    }
    if (mkdirat(st->rootfd, TMP_DIR, 0700) < 0 && errno != EEXIST) {
        bx_err_sys(err, BX_E_INTERNAL, "mkdir store .tmp");
        goto out;
    }
    st->tmpfd = store_open_subdir(st->rootfd, TMP_DIR, st->dev);
    if (st->tmpfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open store .tmp");
        goto out;
    }
    if (store_usage(st, &st->bytes, &st->files, err) < 0) {
        bx_err_wrap(err, "count the store");
        goto out;
    }
    *out = bx_steal_ptr(&st);
    ret = 0;
out:
    store_close(&st);
    return ret;
}

void store_close(struct store **stp)
{
    struct store *st;
    if (!stp || !*stp)
        return;
    st = *stp;
    bx_close(&st->rootfd);
    bx_close(&st->tmpfd);
    free(st);
    *stp = NULL;
}

/* Creates a fresh 0600 file in .tmp under a random name (O_EXCL: never an
 * existing file, never through a symlink). */
int store_create_tmp(struct store *st, const char *prefix, char *name, size_t name_sz,
                     struct bx_err *err)
{
    for (int tries = 0; tries < 8; tries++) {
        char uuid[37];
        int fd, n;
        if (bx_uuid4(uuid, err) < 0)
            return -1;
        n = snprintf(name, name_sz, "%s-%s", prefix, uuid);
        if (n < 0 || (size_t)n >= name_sz)
            return bx_err_set(err, BX_E_INTERNAL, ENAMETOOLONG, "temp name too long");
        fd = openat(st->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST && errno != EINTR)
            return bx_err_sys(err, store_space_status(errno), "create temp file");
    }
    return bx_err_set(err, BX_E_INTERNAL, EEXIST, "could not create a unique temp file");
}

/* ---- reading ---- */

/* The parent directory of the regular store file at norm_path (checked
 * into path, its name in last, its stat in *sb).  Returns the parent's fd,
 * or -1 with err set (404 when the file is absent). */
static int open_parent_of_file(struct store *st, const char *norm_path,
                               char path[STORE_PATH_MAX + 1], char last[STORE_COMPONENT_MAX + 1],
                               struct stat *sb, struct bx_err *err)
{
    int dirfd, r;
    if (store_check_path(norm_path, path, err) < 0)
        return -1;
    dirfd = store_walk_parent(st, path, 0, last, err);
    if (dirfd < 0)
        return -1;
    r = stat_last(dirfd, last, sb, err);
    if (r > 0)
        bx_err_set(err, BX_E_NOT_FOUND, ENOENT, "file not found: %s", path);
    if (r != 0 || check_regular(st, sb, err) < 0) {
        bx_close(&dirfd);
        return -1;
    }
    return dirfd;
}

int store_open_read(struct store *st, const char *norm_path, int *fd_out, uint64_t *size_out,
                    struct bx_err *err)
{
    char path[STORE_PATH_MAX + 1];
    char last[STORE_COMPONENT_MAX + 1];
    struct stat sb, sb2;
    int dirfd = -1, fd = -1, ret = -1;

    if (!st || !fd_out)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_open_read: bad arguments");
    *fd_out = -1;
    /* Looking before opening keeps open(2) away from FIFOs (it would block)
     * and devices (opening can have side effects).  Only this process writes
     * the store, so the entry cannot change between the two calls; the fstat
     * after the open checks it anyway. */
    dirfd = open_parent_of_file(st, norm_path, path, last, &sb, err);
    if (dirfd < 0)
        return -1;
    do {
        fd = openat(dirfd, last, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        if (errno == ENOENT)
            bx_err_set(err, BX_E_NOT_FOUND, errno, "file not found: %s", path);
        else if (errno == ELOOP)
            bx_err_set(err, BX_E_BAD_REQUEST, errno, "path is not a regular file");
        else
            bx_err_sys(err, BX_E_INTERNAL, "open %s", path);
        goto out;
    }
    if (fstat(fd, &sb2) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "stat %s", path);
        goto out;
    }
    if (check_regular(st, &sb2, err) < 0)
        goto out;
    *fd_out = bx_steal_fd(&fd);
    if (size_out)
        *size_out = (uint64_t)sb2.st_size;
    ret = 0;
out:
    bx_close(&fd);
    bx_close(&dirfd);
    return ret;
}

/* The parent directory of norm_path (checked into path, last component in
 * last) for a lookup that treats a missing parent as an absent file:
 * returns its fd, PARENT_ABSENT, or -1 with err set. */
#define PARENT_ABSENT (-2)
static int open_parent_lookup(struct store *st, const char *norm_path,
                              char path[STORE_PATH_MAX + 1], char last[STORE_COMPONENT_MAX + 1],
                              struct bx_err *err)
{
    struct bx_err e2;
    int dirfd;
    if (store_check_path(norm_path, path, err) < 0)
        return -1;
    bx_err_clear(&e2);
    dirfd = store_walk_parent(st, path, 0, last, &e2);
    if (dirfd >= 0)
        return dirfd;
    if (e2.status == BX_E_NOT_FOUND)
        return PARENT_ABSENT;
    if (err)
        *err = e2;
    return -1;
}

int store_exists(struct store *st, const char *norm_path, struct bx_err *err)
{
    char path[STORE_PATH_MAX + 1];
    char last[STORE_COMPONENT_MAX + 1];
    struct stat sb;
    int dirfd, r;

    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_exists: no store");
    dirfd = open_parent_lookup(st, norm_path, path, last, err);
    if (dirfd == PARENT_ABSENT)
        return 0;
    if (dirfd < 0)
        return -1;
    r = stat_last(dirfd, last, &sb, err);
    bx_close(&dirfd);
    if (r < 0)
        return -1;
    return r == 0 && S_ISREG(sb.st_mode) && sb.st_dev == st->dev ? 1 : 0;
}

static int check_name(const char *name)
{
    size_t n;
    if (!name)
        return -1;
    n = strnlen(name, NAME_MAX + 1);
    if (n == 0 || n > NAME_MAX || strchr(name, '/') || store_is_dot_or_dotdot(name))
        return -1;
    return 0;
}

int store_link_into(struct store *st, const char *norm_path, int dst_dirfd, const char *dst_name,
                    struct bx_err *err)
{
    char path[STORE_PATH_MAX + 1];
    char last[STORE_COMPONENT_MAX + 1];
    struct stat sb;
    int dirfd = -1, ret = -1;

    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_link_into: no store");
    if (check_name(dst_name) < 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_link_into: bad destination name");
    dirfd = open_parent_of_file(st, norm_path, path, last, &sb, err);
    if (dirfd < 0)
        return -1;
    /* No AT_SYMLINK_FOLLOW: linkat links the entry itself, never a target. */
    if (linkat(dirfd, last, dst_dirfd, dst_name, 0) < 0) {
        if (errno == ENOENT)
            bx_err_set(err, BX_E_NOT_FOUND, errno, "file not found: %s", path);
        else
            bx_err_sys(err, BX_E_INTERNAL, "link %s", path);
        goto out;
    }
    ret = 0;
out:
    bx_close(&dirfd);
    return ret;
}

int store_open_output_dir(struct store *st, const char *exec_id)
{
    int outfd, sub, e;
    if (store_check_exec_id(exec_id, NULL) < 0) {
        errno = EINVAL;
        return -1;
    }
    outfd = store_open_subdir(st->rootfd, OUTPUT_DIR, st->dev);
    if (outfd < 0)
        return errno == ENOENT ? -2 : -1;
    sub = store_open_subdir(outfd, exec_id, st->dev);
    e = errno;
    close(outfd);
    errno = e;
    if (sub < 0)
        return errno == ENOENT ? -2 : -1;
    return sub;
}

/* ---- deletion ---- */

struct dir_id {
    dev_t dev;
    ino_t ino;
};

static int same_dir(int fd, const struct dir_id *id)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_dev == id->dev &&
           sb.st_ino == id->ino;
}

static int delete_impl(struct store *st, const char *norm_path, int prune_only, struct bx_err *err);

int store_delete(struct store *st, const char *norm_path, struct bx_err *err)
{
    return delete_impl(st, norm_path, 0, err);
}

int store_prune(struct store *st, const char *norm_path, struct bx_err *err)
{
    return delete_impl(st, norm_path, 1, err);
}

/* prune_only: the file itself is already gone (store_hide); only the
 * parent directories it left empty are removed. */
static int delete_impl(struct store *st, const char *norm_path, int prune_only, struct bx_err *err)
{
    char path[STORE_PATH_MAX + 1];
    char comp[STORE_COMPONENT_MAX + 1];
    struct dir_id *ids = NULL;
    const char *starts[STORE_PATH_MAX / 2 + 1];
    size_t lens[STORE_PATH_MAX / 2 + 1];
    size_t ncomp = 0, depth;
    struct stat sb;
    int cur = -1, ret = -1;

    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_delete: no store");
    if (store_check_path(norm_path, path, err) < 0)
        return -1;
    for (const char *p = path;;) {
        const char *slash = strchr(p, '/');
        starts[ncomp] = p;
        lens[ncomp] = slash ? (size_t)(slash - p) : strlen(p);
        ncomp++;
        if (!slash)
            break;
        p = slash + 1;
    }
    /* ids[k] identifies the directory at depth k (0 = root), so that going
     * back up through ".." can be checked against where we came from. */
    ids = calloc(ncomp, sizeof(*ids));
    if (!ids)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    cur = fcntl(st->rootfd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0 || fstat(cur, &sb) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "dup");
        goto out;
    }
    ids[0].dev = sb.st_dev;
    ids[0].ino = sb.st_ino;
    for (depth = 0; depth + 1 < ncomp; depth++) {
        int next;
        memcpy(comp, starts[depth], lens[depth]);
        comp[lens[depth]] = '\0';
        next = store_open_subdir(cur, comp, st->dev);
        if (next < 0) {
            if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV)
                ret = 0; /* missing is not an error */
            else
                bx_err_sys(err, BX_E_INTERNAL, "open directory");
            goto out;
        }
        bx_close(&cur);
        cur = next;
        if (fstat(cur, &sb) < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "stat directory");
            goto out;
        }
        ids[depth + 1].dev = sb.st_dev;
        ids[depth + 1].ino = sb.st_ino;
    }
    memcpy(comp, starts[ncomp - 1], lens[ncomp - 1]);
    comp[lens[ncomp - 1]] = '\0';
    if (prune_only)
        goto prune;
    if (fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            ret = 0;
        else
            bx_err_sys(err, BX_E_INTERNAL, "stat %s", path);
        goto out;
    }
    if (check_regular(st, &sb, err) < 0)
        goto out;
    if (unlinkat(cur, comp, 0) < 0) {
        if (errno == ENOENT)
            ret = 0;
        else
            bx_err_sys(err, BX_E_INTERNAL, "delete %s", path);
        goto out;
    }
    store_account(st, -(int64_t)sb.st_size, -1);
    if (fsync(cur) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fsync directory");
        goto out;
    }
prune:
    /* Remove parents left empty, bottom up.  Going up through ".." keeps
     * this O(depth) with one fd open; each step is verified against the
     * inode recorded on the way down, so it can never climb anywhere else,
     * and it stops before depth 0: the root is never removed. */
    for (depth = ncomp - 1; depth > 0; depth--) {
        int up = store_open_subdir(cur, "..", st->dev);
        if (up < 0 || !same_dir(up, &ids[depth - 1])) {
            bx_close(&up);
            break;
        }
        memcpy(comp, starts[depth - 1], lens[depth - 1]);
        comp[lens[depth - 1]] = '\0';
        if (fstatat(up, comp, &sb, AT_SYMLINK_NOFOLLOW) < 0 || sb.st_dev != ids[depth].dev ||
            sb.st_ino != ids[depth].ino) {
            bx_close(&up);
            break;
        }
        bx_close(&cur);
        cur = up;
        if (unlinkat(cur, comp, AT_REMOVEDIR) < 0) {
            if (errno == ENOTEMPTY || errno == EEXIST || errno == EBUSY)
                break;
            bx_err_sys(err, BX_E_INTERNAL, "remove directory");
            goto out;
        }
        if (fsync(cur) < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "fsync directory");
            goto out;
        }
    }
    ret = 0;
out:
    bx_close(&cur);
    free(ids);
    return ret;
}

int store_delete_output(struct store *st, const char *exec_id, struct bx_err *err)
{
    int outfd;
    int ret;

    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_delete_output: no store");
    if (store_check_exec_id(exec_id, err) < 0)
        return -1;
    outfd = store_open_subdir(st->rootfd, OUTPUT_DIR, st->dev);
    if (outfd < 0) {
        /* Absent, or something that is not our directory (never followed):
         * either way there is no output of ours to delete. */
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV)
            return 0;
        return bx_err_sys(err, BX_E_INTERNAL, "open output directory");
    }
    /* Counted first, so the totals lose exactly what goes. */
    {
        int sub = store_open_subdir(outfd, exec_id, st->dev);
        if (sub >= 0) {
            uint64_t nbytes = 0, nfiles = 0;
            if (usage_walk(st, sub, 0, &nbytes, &nfiles, NULL) == 0)
                store_account(st, -(int64_t)nbytes, -(int64_t)nfiles);
        }
    }
    ret = bx_rm_rf_at(outfd, exec_id, err);
    bx_close(&outfd);
    if (ret < 0)
        return bx_err_wrap(err, "delete output %s", exec_id);
    /* output/ itself stays, even empty: a capture child of another run may
     * have it open and be about to create its output/<exec_id> in it. */
    return 0;
}

/* ---- hiding, then purging in a child ---- */

static int hide_name(struct store *st, char hidden[STORE_HIDDEN_MAX], struct bx_err *err)
{
    char uuid[37];
    (void)st;
    if (bx_uuid4(uuid, err) < 0)
        return -1;
    snprintf(hidden, STORE_HIDDEN_MAX, "del-%s", uuid);
    return 0;
}

int store_hide(struct store *st, const char *norm_path, char hidden[STORE_HIDDEN_MAX],
               struct bx_err *err)
{
    char path[STORE_PATH_MAX + 1];
    char last[STORE_COMPONENT_MAX + 1];
    struct stat sb;
    int dirfd, r, ret = -1;

    hidden[0] = '\0';
    dirfd = open_parent_lookup(st, norm_path, path, last, err);
    if (dirfd == PARENT_ABSENT)
        return 1;
    if (dirfd < 0)
        return -1;
    r = stat_last(dirfd, last, &sb, err);
    if (r != 0) {
        ret = r < 0 ? -1 : 1;
        goto out;
    }
    if (check_regular(st, &sb, err) < 0 || hide_name(st, hidden, err) < 0)
        goto out;
    /* A rename within one filesystem: metadata only, no fsync needed for
     * every later request to see the file gone. */
    if (renameat(dirfd, last, st->tmpfd, hidden) < 0) {
        ret = errno == ENOENT ? 1 : bx_err_sys(err, BX_E_INTERNAL, "hide %s", path);
        hidden[0] = '\0';
        goto out;
    }
    ret = 0;
out:
    if (ret != 0)
        hidden[0] = '\0';
    bx_close(&dirfd);
    return ret;
}

int store_hide_output(struct store *st, const char *exec_id, char hidden[STORE_HIDDEN_MAX],
                      struct bx_err *err)
{
    int outfd, ret = 0;
    hidden[0] = '\0';
    if (store_check_exec_id(exec_id, err) < 0)
        return -1;
    outfd = store_open_subdir(st->rootfd, OUTPUT_DIR, st->dev);
    if (outfd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV
                   ? 1
                   : bx_err_sys(err, BX_E_INTERNAL, "open output directory");
    if (hide_name(st, hidden, err) < 0) {
        ret = -1;
    } else if (renameat(outfd, exec_id, st->tmpfd, hidden) < 0) {
        ret = errno == ENOENT ? 1 : bx_err_sys(err, BX_E_INTERNAL, "hide output %s", exec_id);
        hidden[0] = '\0';
    }
    bx_close(&outfd);
    return ret;
}

int store_purge(struct store *st, const char *hidden, struct bx_err *err)
{
    struct stat sb;
    if (!hidden || strncmp(hidden, "del-", 4) != 0 || strchr(hidden, '/'))
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_purge: bad name");
    if (fstatat(st->tmpfd, hidden, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : bx_err_sys(err, BX_E_INTERNAL, "stat hidden entry");
    if (S_ISDIR(sb.st_mode)) {
        int sub = store_open_subdir(st->tmpfd, hidden, st->dev);
        if (sub >= 0) {
            uint64_t nbytes = 0, nfiles = 0;
            if (usage_walk(st, sub, 0, &nbytes, &nfiles, NULL) == 0)
                store_account(st, -(int64_t)nbytes, -(int64_t)nfiles);
        }
        return bx_rm_rf_at(st->tmpfd, hidden, err);
    }
    if (unlinkat(st->tmpfd, hidden, 0) < 0 && errno != ENOENT)
        return bx_err_sys(err, BX_E_INTERNAL, "delete hidden entry");
    if (S_ISREG(sb.st_mode))
        store_account(st, -(int64_t)sb.st_size, -1);
    return 0;
}

int store_fds(const struct store *st, int *fds, int cap)
{
    int n = 0;
    if (n < cap)
        fds[n++] = st->rootfd;
    if (n < cap)
        fds[n++] = st->tmpfd;
    return n;
}

/* ---- usage ---- */

struct usage_frame {
    struct dir_id id;
    long pos; /* telldir position to resume at after coming back up */
};

/* Iterative walk with a single directory open at a time: a store tree may
 * be ~2048 levels deep (4096-byte paths), more than we want to hold in fds.
 * Coming back up goes through ".." and is checked against the recorded
 * inode; readdir resumes with seekdir. */
int store_usage(struct store *st, uint64_t *bytes, uint64_t *files, struct bx_err *err)
{
    int fd;
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_usage: no store");
    fd = openat(st->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open store root");
    return usage_walk(st, fd, 1, bytes, files, err);
}

/* Counts regular files and their bytes below the directory fd (taken over:
 * always closed).  at_root: fd is the store root, whose .tmp is skipped. */
static int usage_walk(struct store *st, int fd, int at_root, uint64_t *bytes, uint64_t *files,
                      struct bx_err *err)
{
    struct usage_frame *fr = NULL;
    size_t depth = 0, cap = 64;
    uint64_t nbytes = 0, nfiles = 0;
    struct stat sb;
    DIR *d = NULL;
    int ret = -1;

    fr = calloc(cap, sizeof(*fr));
    if (!fr) {
        bx_close(&fd);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (fstat(fd, &sb) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open store root");
        goto out;
    }
    fr[0].id.dev = sb.st_dev;
    fr[0].id.ino = sb.st_ino;
    d = fdopendir(fd);
    if (!d) {
        bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
        goto out;
    }
    fd = -1;
    for (;;) {
        struct dirent *de;
        errno = 0;
        de = readdir(d);
        if (!de) {
            int up;
            if (errno != 0) {
                bx_err_sys(err, BX_E_INTERNAL, "read store directory");
                goto out;
            }
            if (depth == 0)
                break;
            up = store_open_subdir(dirfd(d), "..", st->dev);
            if (up < 0 || !same_dir(up, &fr[depth - 1].id)) {
                bx_close(&up);
                bx_err_set(err, BX_E_INTERNAL, EAGAIN, "store changed during usage walk");
                goto out;
            }
            closedir(d);
            d = fdopendir(up);
            if (!d) {
                bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
                bx_close(&up);
                goto out;
            }
            depth--;
            seekdir(d, fr[depth].pos);
            continue;
        }
        if (store_is_dot_or_dotdot(de->d_name))
            continue;
        if (at_root && depth == 0 && strcmp(de->d_name, TMP_DIR) == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            bx_err_sys(err, BX_E_INTERNAL, "stat store entry");
            goto out;
        }
        if (S_ISREG(sb.st_mode)) {
            nbytes += (uint64_t)sb.st_size;
            nfiles++;
        } else if (S_ISDIR(sb.st_mode) && sb.st_dev == st->dev && depth + 1 < USAGE_MAX_DEPTH) {
            struct stat sb2;
            int sub = store_open_subdir(dirfd(d), de->d_name, st->dev);
            if (sub < 0)
                continue;
            if (fstat(sub, &sb2) < 0 || sb2.st_ino != sb.st_ino) {
                bx_close(&sub);
                continue;
            }
            if (depth + 1 >= cap) {
                struct usage_frame *nf = reallocarray(fr, cap * 2, sizeof(*fr));
                if (!nf) {
                    bx_close(&sub);
                    bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
                    goto out;
                }
                fr = nf;
                cap *= 2;
            }
            fr[depth].pos = telldir(d);
            fr[depth + 1].id.dev = sb2.st_dev;
            fr[depth + 1].id.ino = sb2.st_ino;
            fr[depth + 1].pos = 0;
            closedir(d);
            d = fdopendir(sub);
            if (!d) {
                bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
                bx_close(&sub);
                goto out;
            }
            depth++;
        }
    }
    if (bytes)
        *bytes = nbytes;
    if (files)
        *files = nfiles;
    ret = 0;
out:
    if (d)
        closedir(d);
    bx_close(&fd);
    free(fr);
    return ret;
}
