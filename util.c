#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void bx_close(int *fdp)
{
    if (fdp && *fdp >= 0) {
        int saved = errno;
        close(*fdp);
        *fdp = -1;
        errno = saved;
    }
}

int bx_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t bx_read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int bx_read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *out_len,
                    struct bx_err *err)
{
    int fd = -1;
    char *buf = NULL;
    ssize_t n;
    int ret = -1;

    fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        bx_err_sys(err, errno == ENOENT ? BX_E_NOT_FOUND : BX_E_INTERNAL, "open %s", path);
        goto out;
    }
    buf = malloc(max + 1);
    if (!buf) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    n = bx_read_full(fd, buf, max + 1);
    if (n < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "read %s", path);
        goto out;
    }
    if ((size_t)n > max) {
        bx_err_set(err, BX_E_TOO_LARGE, 0, "%s is larger than %zu bytes", path, max);
        goto out;
    }
    buf[n] = '\0';
    *out = bx_steal_ptr(&buf);
    if (out_len)
        *out_len = (size_t)n;
    ret = 0;
out:
    free(buf);
    bx_close(&fd);
    return ret;
}

int bx_write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len,
                            mode_t mode, struct bx_err *err)
{
    char tmp[PATH_MAX];
    int fd = -1;
    int ret = -1;
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", name, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return bx_err_set(err, BX_E_INTERNAL, ENAMETOOLONG, "name too long: %s", name);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "create %s", tmp);
        goto out;
    }
    if (bx_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write %s", tmp);
        goto out;
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "rename %s", tmp);
        goto out;
    }
    ret = 0;
out:
    bx_close(&fd);
    if (ret < 0)
        unlinkat(dirfd, tmp, 0);
    return ret;
}

void sbuf_init(struct sbuf *sb, size_t max)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->max = max;
}

static int sbuf_reserve(struct sbuf *sb, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > sb->max || sb->len > sb->max - extra)
        return -1;
    need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > sb->max + 1)
        cap = sb->max + 1;
    p = realloc(sb->data, cap);
    if (!p)
        return -1;
    sb->data = p;
    sb->cap = cap;
    return 0;
}

int sbuf_append(struct sbuf *sb, const void *data, size_t len)
{
    if (sbuf_reserve(sb, len) < 0)
        return -1;
    if (len)
        memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
    return 0;
}

int sbuf_putc(struct sbuf *sb, char c)
{
    return sbuf_append(sb, &c, 1);
}

int sbuf_appendf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int n;
    char small[256];
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return sbuf_append(sb, small, (size_t)n);
    if (sbuf_reserve(sb, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
    return 0;
}

void sbuf_reset(struct sbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

void sbuf_free(struct sbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

char *sbuf_steal(struct sbuf *sb, size_t *len)
{
    char *p = sb->data;
    if (len)
        *len = sb->len;
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    return p;
}

int bx_str_eq(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && (n == 0 || memcmp(s, lit, n) == 0);
}

int str_list_reserve(struct str_list *l, size_t more)
{
    size_t want;
    char **nv;
    if (more > SIZE_MAX / sizeof(char *) - l->n - 1) {
        errno = ENOMEM;
        return -1;
    }
    want = l->n + more + 1;
    if (l->items && want <= l->cap)
        return 0;
    nv = realloc(l->items, want * sizeof(char *));
    if (!nv)
        return -1;
    nv[l->n] = NULL;
    l->items = nv;
    l->cap = want;
    return 0;
}

int str_list_push(struct str_list *l, const char *s)
{
    char *dup;
    /* Doubling keeps a long argv or env linear to build. */
    if ((!l->items || l->n + 2 > l->cap) && str_list_reserve(l, l->cap > 8 ? l->cap : 8) < 0)
        return -1;
    dup = strdup(s);
    if (!dup)
        return -1;
    l->items[l->n++] = dup;
    l->items[l->n] = NULL;
    return 0;
}

void str_list_free(struct str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
    l->cap = 0;
}

void bx_strv_free(char ***vp)
{
    char **v = *vp;
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
    *vp = NULL;
}

int bx_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

unsigned char bx_ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

int bx_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int bx_parse_user(const char *s, size_t len, uint32_t *uid, uint32_t *gid)
{
    const char *colon = memchr(s, ':', len);
    size_t ulen = colon ? (size_t)(colon - s) : len;
    uint64_t u, g;
    if (bx_parse_u64(s, ulen, UINT32_MAX - 1, &u) < 0)
        return -1;
    g = u;
    if (colon && bx_parse_u64(colon + 1, len - ulen - 1, UINT32_MAX - 1, &g) < 0)
        return -1;
    *uid = (uint32_t)u;
    *gid = (uint32_t)g;
    return 0;
}

int bx_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    uint64_t mag;
    int neg = 0;
    if (len > 0 && s[0] == '-') {
        neg = 1;
        s++;
        len--;
    }
    if (bx_parse_u64(s, len, (uint64_t)INT64_MAX + (neg ? 1u : 0u), &mag) < 0)
        return -1;
    if (neg) {
        int64_t v = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
        if (v < min || v > max)
            return -1;
        *out = v;
    } else {
        if ((int64_t)mag < min || (int64_t)mag > max)
            return -1;
        *out = (int64_t)mag;
    }
    return 0;
}

/* Recursion depth is bounded by what the tree holds; trees we remove are
 * ours (store, bundles, images) or capped by the per-run output limits. */
static int rm_tree_fd(int dirfd, dev_t dev, int depth, struct bx_err *err)
{
    DIR *d;
    struct dirent *de;
    int ret = 0;
    int dupfd;

    if (depth > 256)
        return bx_err_set(err, BX_E_INTERNAL, ELOOP, "directory tree too deep to remove");
    dupfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "dup");
    d = fdopendir(dupfd);
    if (!d) {
        close(dupfd);
        return bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            ret = bx_err_sys(err, BX_E_INTERNAL, "stat %s", de->d_name);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int sub;
            if (st.st_dev != dev) {
                ret = bx_err_set(err, BX_E_INTERNAL, EXDEV, "refusing to remove across a mount: %s",
                                 de->d_name);
                break;
            }
            sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                ret = bx_err_sys(err, BX_E_INTERNAL, "open %s", de->d_name);
                break;
            }
            ret = rm_tree_fd(sub, dev, depth + 1, err);
            close(sub);
            if (ret < 0)
                break;
            if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                ret = bx_err_sys(err, BX_E_INTERNAL, "rmdir %s", de->d_name);
                break;
            }
        } else if (unlinkat(dirfd, de->d_name, 0) < 0 && errno != ENOENT) {
            ret = bx_err_sys(err, BX_E_INTERNAL, "unlink %s", de->d_name);
            break;
        }
    }
    if (ret == 0 && errno != 0)
        ret = bx_err_sys(err, BX_E_INTERNAL, "readdir");
    closedir(d);
    return ret;
}

int bx_rm_rf_at(int dirfd, const char *name, struct bx_err *err)
{
    struct stat st;
    int fd, ret;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return bx_err_sys(err, BX_E_INTERNAL, "stat %s", name);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
            return bx_err_sys(err, BX_E_INTERNAL, "unlink %s", name);
        return 0;
    }
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", name);
    ret = rm_tree_fd(fd, st.st_dev, 0, err);
    close(fd);
    if (ret < 0)
        return bx_err_wrap(err, "remove %s", name);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return bx_err_sys(err, BX_E_INTERNAL, "rmdir %s", name);
    return 0;
}

int bx_mkdir_p_at(int dirfd, const char *relpath, mode_t mode, int want_fd, struct bx_err *err)
{
    char comp[NAME_MAX + 1];
    const char *p = relpath;
    int cur = relpath[0] == '/'    ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
              : dirfd == AT_FDCWD ? open(".", O_PATH | O_DIRECTORY | O_CLOEXEC)
                                  : fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "dup");
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        int next;
        if (n == 0 || (n == 1 && p[0] == '.')) {
            p += n + (slash ? 1 : 0);
            continue;
        }
        if (n > NAME_MAX || (n == 2 && p[0] == '.' && p[1] == '.')) {
            close(cur);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "bad path component in %s", relpath);
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        if (mkdirat(cur, comp, mode) < 0 && errno != EEXIST) {
            bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", comp);
            close(cur);
            return -1;
        }
        next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            bx_err_sys(err, errno == ENOTDIR || errno == ELOOP ? BX_E_BAD_REQUEST : BX_E_INTERNAL, "open dir %s", comp);
            close(cur);
            return -1;
        }
        close(cur);
        cur = next;
        p += n + (slash ? 1 : 0);
    }
    if (want_fd)
        return cur;
    close(cur);
    return 0;
}

int bx_uuid4(char out[37], struct bx_err *err)
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return bx_err_sys(err, BX_E_INTERNAL, "getrandom");
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

uint64_t bx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
