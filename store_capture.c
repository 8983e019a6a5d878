/* The file store: the /output capture (run in a forked child after a run)
 * and the shared report through which forked helpers tell the parent what
 * they changed.  See store.h for the contract and store.c for how client
 * paths reach the filesystem.
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
#include <unistd.h>

#include "store_internal.h"
#include "util.h"

/* Capture bounds: a sandbox controls the tree it leaves in /output, so the
 * walk is bounded in depth (and so in open fds: two per level) and in the
 * number of entries it looks at, whatever max_files says. */
#define CAPTURE_MAX_DEPTH 64
#define CAPTURE_MAX_ENTRIES 100000
#define COPY_BUF 65536

struct store_report *store_report_new(void)
{
    void *p = mmap(NULL, sizeof(struct store_report), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    return p; /* zero-filled by the kernel */
}

void store_report_free(struct store_report **rep)
{
    if (!rep || !*rep)
        return;
    munmap(*rep, sizeof(**rep));
    *rep = NULL;
}

void store_report_begin(const struct store *st, struct store_report *rep)
{
    /* Stashed in the delta fields, turned into differences by _end. */
    rep->dbytes = (int64_t)st->bytes;
    rep->dfiles = (int64_t)st->files;
}

void store_report_end(const struct store *st, struct store_report *rep)
{
    rep->dbytes = (int64_t)st->bytes - rep->dbytes;
    rep->dfiles = (int64_t)st->files - rep->dfiles;
    rep->finished = 1;
}

void store_report_apply(struct store *st, const struct store_report *rep)
{
    /* A child that died before store_report_end left a snapshot, not a
     * difference, in the delta fields. */
    if (rep && rep->finished)
        store_account(st, rep->dbytes, rep->dfiles);
}

/* ---- output capture ---- */

/* A destination directory, created only when a file is about to land in it,
 * so a sandbox cannot make the store hold empty directory trees. */
struct cap_dir {
    struct cap_dir *parent;
    char name[STORE_COMPONENT_MAX + 1];
    int fd;
    int owned;
    int top;         /* output/<exec_id>: the sandbox's /output */
    size_t path_len; /* length of this directory's store path */
};

struct cap_ctx {
    struct store *st;
    dev_t src_dev;
    size_t max_files;
    uint64_t max_bytes;
    size_t files;
    uint64_t bytes;
    size_t skipped;
    size_t visited;
    int stop;
    struct store_report *rep; /* where skipped entries are explained */
    const char *why;          /* cap_file: why it returned 0 */
};

/* Appends at most max bytes of str (valid UTF-8) to buf, never cutting a
 * character in two: the message travels back in JSON. */
static void append_utf8(char *buf, size_t cap, const char *str, size_t max)
{
    size_t len = strlen(buf), n = strlen(str);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)str[n] & 0xc0) == 0x80)
            n--;
    }
    if (len + n + 1 > cap)
        n = len + 1 < cap ? cap - len - 1 : 0;
    while (n > 0 && ((unsigned char)str[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf + len, str, n);
    buf[len + n] = '\0';
}

/* "/output/<dir path>" for d: what the sandbox called it. */
static void cap_dir_path(const struct cap_dir *d, char *buf, size_t cap)
{
    if (!d || d->top) {
        buf[0] = '\0';
        append_utf8(buf, cap, "/output", cap);
        return;
    }
    cap_dir_path(d->parent, buf, cap);
    append_utf8(buf, cap, "/", 1);
    append_utf8(buf, cap, d->name, 60);
}

/* Counts a skipped entry and says why in the report.  name NULL: the name
 * itself cannot be shown (not UTF-8, control characters). */
static void cap_skip(struct cap_ctx *c, const struct cap_dir *dir, const char *name,
                     const char *why)
{
    struct store_report *r = c->rep;
    char *m;
    c->skipped++;
    if (!r)
        return;
    if (r->nmsgs >= STORE_REPORT_MSGS) {
        r->msgs_dropped++;
        return;
    }
    m = r->msgs[r->nmsgs];
    cap_dir_path(dir, m, 110);
    if (name) {
        append_utf8(m, STORE_REPORT_MSG_MAX, "/", 1);
        append_utf8(m, STORE_REPORT_MSG_MAX, name, 40);
        append_utf8(m, STORE_REPORT_MSG_MAX, ": ", 2);
    } else {
        append_utf8(m, STORE_REPORT_MSG_MAX, ": an entry ", 11);
    }
    append_utf8(m, STORE_REPORT_MSG_MAX, why, STORE_REPORT_MSG_MAX);
    r->nmsgs++;
}

static int cap_ensure_dir(struct cap_ctx *c, struct cap_dir *d, struct bx_err *err)
{
    if (d->fd >= 0)
        return 0;
    if (!d->parent || cap_ensure_dir(c, d->parent, err) < 0)
        return -1;
    d->fd = store_mkdir_open(d->parent->fd, d->name, c->st->dev, err);
    if (d->fd < 0)
        return -1;
    d->owned = 1;
    return 0;
}

static void cap_close_dir(struct cap_dir *d)
{
    if (d->owned)
        bx_close(&d->fd);
    d->fd = -1;
}

/* Copies at most limit bytes from in to out; returns bytes copied, or
 * limit + 1 if there was more, or -1 (errno set). */
static int64_t copy_bounded(int in, int out, uint64_t limit)
{
    char *buf = NULL;
    uint64_t done = 0;
    int use_cfr = 1;

    for (;;) {
        uint64_t want = limit - done + 1; /* one more than allowed detects "too big" */
        ssize_t n;
        if (want > COPY_BUF)
            want = COPY_BUF;
        if (use_cfr) {
            n = copy_file_range(in, NULL, out, NULL, (size_t)want, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                          errno == EOPNOTSUPP || errno == EBADF)) {
                /* Both offsets are the fds' own, so the plain loop resumes
                 * exactly where copy_file_range stopped. */
                use_cfr = 0;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
        } else {
            if (!buf && !(buf = malloc(COPY_BUF))) {
                errno = ENOMEM;
                break;
            }
            n = read(in, buf, (size_t)want);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            if (n > 0 && bx_write_all(out, buf, (size_t)n) < 0)
                break;
        }
        if (n == 0) {
            free(buf);
            return (int64_t)done;
        }
        done += (uint64_t)n;
        if (done > limit) {
            free(buf);
            return (int64_t)limit + 1;
        }
    }
    free(buf);
    return -1;
}

/* Copy path (source on another filesystem): into .tmp, then renamed into
 * place, so the store never shows a partial file.  Durability comes from one
 * syncfs at the end of the capture, not from a fsync per file (thousands of
 * them would take minutes).  Returns bytes copied,
 * 1 + remaining budget if the file turned out too big (caller skips it), or
 * -1 with err set. */
static int64_t cap_copy(struct cap_ctx *c, int srcfd, struct cap_dir *dst, const char *name,
                        struct bx_err *err)
{
    char tmpname[48];
    uint64_t limit = c->max_bytes - c->bytes;
    int64_t n;
    int out;

    /* Keeps limit + 1 representable in the int64_t return. */
    if (limit > (uint64_t)INT64_MAX - 1)
        limit = (uint64_t)INT64_MAX - 1;
    out = store_create_tmp(c->st, "cp", tmpname, sizeof(tmpname), err);

    if (out < 0)
        return -1;
    n = copy_bounded(srcfd, out, limit);
    if (n < 0) {
        bx_err_sys(err, store_space_status(errno), "copy output file %s", name);
        goto fail;
    }
    if ((uint64_t)n > limit)
        goto fail_quiet;
    if (fchmod(out, 0644) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "chmod output file %s", name);
        goto fail;
    }
    if (renameat(c->st->tmpfd, tmpname, dst->fd, name) < 0) {
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST) {
            n = (int64_t)limit + 1; /* a directory is in the way: skip */
            goto fail_quiet;
        }
        bx_err_sys(err, BX_E_INTERNAL, "rename output file %s", name);
        goto fail;
    }
    bx_close(&out);
    return n;
fail_quiet:
    bx_close(&out);
    unlinkat(c->st->tmpfd, tmpname, 0);
    return (int64_t)limit + 1;
fail:
    bx_close(&out);
    unlinkat(c->st->tmpfd, tmpname, 0);
    return -1;
}

/* Captures one regular file.  Returns 1 captured, 0 skipped, -1 error. */
static int cap_file(struct cap_ctx *c, int srcdir, const char *name, struct cap_dir *dst,
                    struct bx_err *err)
{
    struct stat sb, sb2;
    int fd = -1, ret = -1, move = 1;
    uint64_t size;

    /* O_NOFOLLOW: a symlink swapped in fails; O_NONBLOCK: a FIFO swapped in
     * cannot block us; it is meaningless for the regular file we expect. */
    do {
        fd = openat(srcdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    c->why = "changed while it was captured, not captured";
    if (fd < 0)
        return 0;
    /* The checks that matter are made on the open file, not on the name. */
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1 || sb.st_dev != c->src_dev) {
        ret = 0;
        goto out;
    }
    size = (uint64_t)sb.st_size;
    if (c->files >= c->max_files) {
        c->why = "not captured: output_files_max reached";
        ret = 0;
        goto out;
    }
    if (size > c->max_bytes - c->bytes) {
        c->why = "not captured: output_files_limit_bytes reached";
        ret = 0;
        goto out;
    }
    /* The operator's disk bounds end the capture (507), unlike the
     * per-run bounds above, which only skip. */
    if (store_check_cap(c->st, c->bytes, size, "capturing /output", err) < 0 ||
        store_check_disk(c->st->rootfd, NULL, size, c->st->min_free_percent, "capturing /output",
                         err) < 0)
        goto out;
    if (cap_ensure_dir(c, dst, err) < 0)
        goto out;
    /* A moved file keeps its inode: give it our owner and a plain mode so no
     * set-id bit or foreign owner enters the store.  If that is refused,
     * copy instead (the copy is created by us, 0644). */
    if (fchown(fd, geteuid(), getegid()) < 0 || fchmod(fd, 0644) < 0)
        move = 0;
    if (move && renameat(srcdir, name, dst->fd, name) == 0) {
        /* If the name was swapped between our open and the rename, what
         * landed is not the file we checked: take it out again. */
        if (fstatat(dst->fd, name, &sb2, AT_SYMLINK_NOFOLLOW) < 0 || sb2.st_ino != sb.st_ino ||
            sb2.st_dev != sb.st_dev || !S_ISREG(sb2.st_mode) || sb2.st_nlink != 1 ||
            (uint64_t)sb2.st_size > c->max_bytes - c->bytes) {
            unlinkat(dst->fd, name, 0);
            ret = 0;
            goto out;
        }
        size = (uint64_t)sb2.st_size;
    } else if (!move || errno == EXDEV) {
        int64_t n = cap_copy(c, fd, dst, name, err);
        if (n < 0)
            goto out;
        if ((uint64_t)n > c->max_bytes - c->bytes) {
            ret = 0;
            goto out;
        }
        size = (uint64_t)n;
    } else if (errno == ENOENT || errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST) {
        ret = 0; /* vanished, or a directory is in the way */
        goto out;
    } else {
        bx_err_sys(err, BX_E_INTERNAL, "move output file %s", name);
        goto out;
    }
    c->files++;
    c->bytes += size;
    ret = 1;
out:
    bx_close(&fd);
    return ret;
}

static int cap_walk(struct cap_ctx *c, DIR *src, struct cap_dir *dst, int depth, struct bx_err *err)
{
    struct dirent *de;
    int sfd = dirfd(src);

    while (!c->stop) {
        struct stat sb;
        size_t nlen;
        errno = 0;
        de = readdir(src);
        if (!de) {
            if (errno != 0)
                return bx_err_sys(err, BX_E_INTERNAL, "read output directory");
            return 0;
        }
        if (store_is_dot_or_dotdot(de->d_name))
            continue;
        if (++c->visited > CAPTURE_MAX_ENTRIES) {
            cap_skip(c, dst, NULL,
                     "and everything after it were not captured: more than "
                     "100000 entries");
            c->stop = 1;
            break;
        }
        /* lstat semantics: a symlink is seen as a symlink and skipped. */
        if (fstatat(sfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            return bx_err_sys(err, BX_E_INTERNAL, "stat output entry");
        }
        nlen = strlen(de->d_name);
        /* Keep every captured file addressable by a store path: a name the
         * path rules refuse (control characters, not UTF-8) could never be
         * downloaded. */
        if (nlen > STORE_COMPONENT_MAX || dst->path_len + 1 + nlen > STORE_PATH_MAX ||
            !store_valid_component(de->d_name, nlen)) {
            cap_skip(c, dst, NULL,
                     "was not captured: its name is too long, not UTF-8 or has control "
                     "characters");
            continue;
        }
        if (S_ISDIR(sb.st_mode)) {
            struct cap_dir sub;
            struct stat sb2;
            DIR *subdir;
            int fd, r;
            if (sb.st_dev != c->src_dev || depth + 1 > CAPTURE_MAX_DEPTH) {
                cap_skip(c, dst, de->d_name,
                         "directory not captured: another filesystem or nested deeper than 64");
                continue;
            }
            fd = store_open_subdir(sfd, de->d_name, c->src_dev);
            if (fd < 0) {
                cap_skip(c, dst, de->d_name, "directory could not be opened, not captured");
                continue;
            }
            if (fstat(fd, &sb2) < 0 || sb2.st_ino != sb.st_ino) {
                bx_close(&fd);
                cap_skip(c, dst, de->d_name, "changed while it was captured, not captured");
                continue;
            }
            subdir = fdopendir(fd);
            if (!subdir) {
                bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
                bx_close(&fd);
                return -1;
            }
            memset(&sub, 0, sizeof(sub));
            sub.parent = dst;
            memcpy(sub.name, de->d_name, nlen + 1);
            sub.fd = -1;
            sub.path_len = dst->path_len + 1 + nlen;
            r = cap_walk(c, subdir, &sub, depth + 1, err);
            closedir(subdir);
            cap_close_dir(&sub);
            if (r < 0)
                return -1;
        } else if (S_ISREG(sb.st_mode) && sb.st_nlink == 1 && sb.st_dev == c->src_dev) {
            int r = cap_file(c, sfd, de->d_name, dst, err);
            if (r < 0)
                return -1;
            if (r == 0)
                cap_skip(c, dst, de->d_name, c->why);
        } else {
            cap_skip(c, dst, de->d_name,
                     S_ISLNK(sb.st_mode)    ? "symbolic link, not captured"
                     : S_ISREG(sb.st_mode)  ? "hard link (or on another filesystem), not captured"
                     : S_ISFIFO(sb.st_mode) ? "FIFO, not captured"
                     : S_ISSOCK(sb.st_mode) ? "socket, not captured"
                                            : "device or special file, not captured");
        }
    }
    return 0;
}

int store_capture_has_entries(int dirfd, const char *name)
{
    /* Room for the largest record (NAME_MAX name): every call that is not
     * the end returns at least one entry, and a directory has one . and
     * one .., so this reads at most three times whatever the sandbox left. */
    char buf[2048] __attribute__((aligned(8)));
    int fd, ret = -1;

    do {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = getdents64(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n == 0 ? 0 : -1;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *de = (const struct dirent64 *)(void *)(buf + off);
            if (!store_is_dot_or_dotdot(de->d_name)) {
                ret = 1;
                goto out;
            }
            off += de->d_reclen;
        }
    }
out:
    if (ret < 0) {
        int e = errno;
        close(fd);
        errno = e;
    } else {
        close(fd);
    }
    return ret;
}

int store_capture_output(struct store *st, const char *exec_id, int src_dirfd, size_t max_files,
                         uint64_t max_bytes, size_t *files_out, size_t *skipped_out,
                         struct bx_err *err)
{
    struct store_report rep;
    int ret;
    memset(&rep, 0, sizeof(rep));
    ret = store_capture(st, exec_id, src_dirfd, max_files, max_bytes, &rep, err);
    if (files_out)
        *files_out = (size_t)rep.files;
    if (skipped_out)
        *skipped_out = (size_t)rep.skipped;
    return ret;
}

int store_capture(struct store *st, const char *exec_id, int src_dirfd, size_t max_files,
                  uint64_t max_bytes, struct store_report *rep, struct bx_err *err)
{
    struct cap_ctx c;
    struct cap_dir root, out, exec;
    struct stat sb;
    DIR *src = NULL;
    int fd = -1, ret = -1;

    if (!st || !rep)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "store_capture_output: no store");
    rep->files = rep->bytes = rep->skipped = 0;
    rep->nmsgs = rep->msgs_dropped = 0;
    if (store_check_exec_id(exec_id, err) < 0)
        return -1;
    memset(&c, 0, sizeof(c));
    memset(&root, 0, sizeof(root));
    memset(&out, 0, sizeof(out));
    memset(&exec, 0, sizeof(exec));
    c.st = st;
    c.max_files = max_files;
    c.max_bytes = max_bytes;
    c.rep = rep;
    root.fd = st->rootfd; /* not owned */
    out.parent = &root;
    out.fd = -1;
    memcpy(out.name, OUTPUT_DIR, sizeof(OUTPUT_DIR));
    out.path_len = sizeof(OUTPUT_DIR) - 1;
    exec.parent = &out;
    exec.fd = -1;
    exec.top = 1;
    memcpy(exec.name, exec_id, strlen(exec_id) + 1);
    exec.path_len = out.path_len + 1 + strlen(exec_id);

    if (fstat(src_dirfd, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return bx_err_set(err, BX_E_INTERNAL, ENOTDIR, "output source is not a directory");
    c.src_dev = sb.st_dev;
    /* A fresh open file description: readdir must not share (and move) the
     * caller's file offset. */
    do {
        fd = openat(src_dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open output source");
    src = fdopendir(fd);
    if (!src) {
        bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
        bx_close(&fd);
        return -1;
    }
    ret = cap_walk(&c, src, &exec, 0, err);
    closedir(src);
    cap_close_dir(&exec);
    cap_close_dir(&out);
    cap_close_dir(&root);
    /* Files and directory entries, all at once: the run's answer, which
     * names these files, is sent only after this. */
    if (ret == 0 && c.files > 0 && syncfs(st->rootfd) < 0)
        ret = bx_err_sys(err, store_space_status(errno), "syncfs");
    if (ret < 0)
        bx_err_wrap(err, "capture output");
    /* What landed is in the store whether or not the capture finished. */
    store_account(st, (int64_t)c.bytes, (int64_t)c.files);
    rep->files = c.files;
    rep->bytes = c.bytes;
    rep->skipped = c.skipped;
    return ret;
}
