/* Tests for the file store.  Every test works in its own directory under one
 * temp base made by main(), which main() removes after the run whatever the
 * outcome (tests run in forked children by default, so a failing or crashing
 * test cannot skip the cleanup).  Tests that plant symlinks pointing outside
 * the store only point writes and deletes at a sentinel directory of the
 * test's own, never at /etc. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_internal.h"
#include "util.h"

static char g_base[PATH_MAX]; /* on the same filesystem as the stores */
static char g_shm[PATH_MAX];  /* on tmpfs when available: cross-fs capture */

/* ---- helpers ---- */

struct tdir {
    char dir[PATH_MAX];  /* this test's private directory */
    char root[PATH_MAX]; /* the store root inside it */
};

/* snprintf into a PATH_MAX buffer that must not truncate. */
static void __attribute__((format(printf, 2, 3))) pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    ck_assert(n > 0 && n < PATH_MAX);
}

static struct store *mkstore(struct tdir *t)
{
    struct store *st = NULL;
    struct bx_err err;
    pathf(t->dir, "%s/t.XXXXXX", g_base);
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    pathf(t->root, "%s/files", t->dir);
    bx_err_clear(&err);
    ck_assert_msg(store_open(&st, t->root, &err) == 0, "store_open: %s", err.msg);
    ck_assert_ptr_nonnull(st);
    return st;
}

static void subpath(char *out, const char *a, const char *b)
{
    pathf(out, "%s/%s", a, b);
}

static int put(struct store *st, const char *path, const char *data, struct bx_err *err)
{
    struct store_upload *up = NULL;
    size_t len = strlen(data);
    bx_err_clear(err);
    if (store_upload_begin(st, &up, err) < 0)
        return -1;
    /* Two writes: the size must add up. */
    if (store_upload_write(up, data, len / 2, err) < 0 ||
        store_upload_write(up, data + len / 2, len - len / 2, err) < 0) {
        store_upload_abort(&up);
        return -1;
    }
    ck_assert_uint_eq(store_upload_size(up), len);
    return store_upload_commit(&up, path, err);
}

static void put_ok(struct store *st, const char *path, const char *data)
{
    struct bx_err err;
    ck_assert_msg(put(st, path, data, &err) == 0, "put %s: %s", path, err.msg);
}

static char *read_fd(int fd)
{
    static char buf[65536];
    ssize_t n = bx_read_full(fd, buf, sizeof(buf) - 1);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    return buf;
}

/* Reads a stored file through the store API; NULL when it fails. */
static char *get(struct store *st, const char *path, struct bx_err *err)
{
    int fd = -1;
    uint64_t size = 0;
    char *s;
    bx_err_clear(err);
    if (store_open_read(st, path, &fd, &size, err) < 0) {
        ck_assert_int_eq(fd, -1);
        return NULL;
    }
    s = read_fd(fd);
    ck_assert_uint_eq(size, strlen(s));
    close(fd);
    return s;
}

static void check_get(struct store *st, const char *path, const char *want)
{
    struct bx_err err;
    char *got = get(st, path, &err);
    ck_assert_msg(got != NULL, "get %s: %s", path, err.msg);
    ck_assert_str_eq(got, want);
}

static void check_get_fails(struct store *st, const char *path, int status)
{
    struct bx_err err;
    ck_assert_msg(get(st, path, &err) == NULL, "get %s should fail", path);
    ck_assert_msg(err.status == status, "get %s: status %d (%s), want %d", path, err.status,
                  err.msg, status);
}

static void write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bx_write_all(fd, data, strlen(data)), 0);
    close(fd);
}

static char *read_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *s;
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    s = read_fd(fd);
    close(fd);
    return s;
}

static int path_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Entries in a directory, "." and ".." aside; -1 if it cannot be opened. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* ---- store_normalize_path ---- */

struct norm_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    int for_upload;
    const char *want; /* NULL: rejected with 400 */
};

static const struct norm_case norm_cases[] = {
    {"a", 0, 1, "a"},
    {"a/b/c.txt", 0, 1, "a/b/c.txt"},
    {"./a", 0, 1, "a"},
    {"a//b", 0, 1, "a/b"},
    {"a///b//", 0, 1, "a/b"},
    {"a/./b", 0, 1, "a/b"},
    {"a/.", 0, 1, "a"},
    {"a/", 0, 1, "a"},
    {"./././a/./", 0, 1, "a"},
    {"output", 0, 0, "output"},
    {"output/x", 0, 0, "output/x"},
    {"./output//boxer-1/r.json", 0, 0, "output/boxer-1/r.json"},
    {"outputs/x", 0, 1, "outputs/x"},
    {"output.txt", 0, 1, "output.txt"},
    {"x/output", 0, 1, "x/output"},
    {"a/.tmp", 0, 1, "a/.tmp"},
    {".tmpx", 0, 1, ".tmpx"},
    {".hidden", 0, 1, ".hidden"},
    {"..a", 0, 1, "..a"},
    {"a..", 0, 1, "a.."},
    {"...", 0, 1, "..."},
    {"a b/c\\d", 0, 1, "a b/c\\d"},
    {"caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x93\xa6", 0, 1,
     "caf\xc3\xa9/\xe2\x82\xac/\xf0\x9f\x93\xa6"},
    {"caf\xc3\xa9/\xff", 0, 1, NULL},  /* not UTF-8: could not round-trip through JSON */
    {"\xc0\x80", 0, 1, NULL},          /* overlong NUL */
    {"a\xed\xa0\x80", 0, 1, NULL},     /* surrogate */
    {"a\xf4\x90\x80\x80", 0, 1, NULL}, /* above U+10FFFF */
    {"a\xe2\x82", 0, 1, NULL},         /* truncated */
    {"\x80\x61", 0, 1, NULL},          /* stray continuation byte, then "a" */
    {"ab\0", 2, 1, "ab"},              /* the length, not the NUL, ends the input */
    {"", 0, 1, NULL},
    {"", 0, 0, NULL},
    {".", 0, 1, NULL},
    {"./", 0, 1, NULL},
    {".//./", 0, 0, NULL},
    {"..", 0, 1, NULL},
    {"../a", 0, 1, NULL},
    {"a/..", 0, 1, NULL},
    {"a/../b", 0, 0, NULL},
    {"a/b/../../c", 0, 1, NULL},
    {"/abs", 0, 1, NULL},
    {"/", 0, 0, NULL},
    {"//a", 0, 1, NULL},
    {"output", 0, 1, NULL},
    {"output/", 0, 1, NULL},
    {"output/x", 0, 1, NULL},
    {"./output/x", 0, 1, NULL},
    {".//output", 0, 1, NULL},
    {".tmp", 0, 0, NULL},
    {".tmp/x", 0, 1, NULL},
    {"./.tmp/x", 0, 0, NULL},
    {"a\0b", 3, 1, NULL},
    {"a\0", 2, 0, NULL},
    {"a\nb", 0, 1, NULL},
    {"a\rb", 0, 1, NULL},
    {"a\tb", 0, 1, NULL},
    {"\x01", 0, 1, NULL},
    {"a\x1f", 0, 1, NULL},
    {"a\x7f", 0, 1, NULL},
};

START_TEST(test_normalize_table)
{
    for (size_t i = 0; i < BX_ARRAY_LEN(norm_cases); i++) {
        const struct norm_case *c = &norm_cases[i];
        size_t len = c->len ? c->len : strlen(c->in);
        char out[STORE_PATH_MAX + 1];
        struct bx_err err;
        int r;
        bx_err_clear(&err);
        memset(out, 'Z', sizeof(out));
        r = store_normalize_path(c->in, len, c->for_upload, out, &err);
        if (c->want) {
            ck_assert_msg(r == 0, "case %zu (%s) rejected: %s", i, c->in, err.msg);
            ck_assert_str_eq(out, c->want);
        } else {
            ck_assert_msg(r < 0, "case %zu (%s) accepted as %s", i, c->in, out);
            ck_assert_int_eq(err.status, 400);
            ck_assert_msg(err.msg[0] != '\0', "case %zu: no message", i);
            ck_assert_int_eq(out[0], '\0');
        }
    }
}
END_TEST

/* Builds a path of exactly len bytes: components of at most comp bytes. */
static void make_long_path(char *buf, size_t len, size_t comp)
{
    size_t i = 0, run = 0;
    ck_assert_uint_ne(len % (comp + 1), 0); /* never ends in a '/' */
    while (i < len) {
        if (run == comp) {
            buf[i++] = '/';
            run = 0;
            continue;
        }
        buf[i] = (char)('a' + (i % 26));
        i++;
        run++;
    }
    buf[len] = '\0';
}

START_TEST(test_normalize_lengths)
{
    static char in[STORE_PATH_MAX + 8];
    char out[STORE_PATH_MAX + 1];
    struct bx_err err;

    make_long_path(in, STORE_PATH_MAX, 200);
    ck_assert_uint_eq(strlen(in), 4096);
    ck_assert_int_eq(store_normalize_path(in, 4096, 1, out, &err), 0);
    ck_assert_str_eq(out, in);
    ck_assert_uint_eq(strlen(out), 4096);

    make_long_path(in, STORE_PATH_MAX + 1, 200);
    ck_assert_int_eq(store_normalize_path(in, 4097, 1, out, &err), -1);
    ck_assert_int_eq(err.status, 400);
    /* The raw length counts, even when normalizing would shorten it. */
    memcpy(in, "./", 2);
    ck_assert_int_eq(store_normalize_path(in, 4097, 0, out, &err), -1);

    memset(in, 'c', 255);
    in[255] = '\0';
    ck_assert_int_eq(store_normalize_path(in, 255, 1, out, &err), 0);
    ck_assert_uint_eq(strlen(out), 255);
    memcpy(in + 255, "/x", 3);
    ck_assert_int_eq(store_normalize_path(in, 257, 1, out, &err), 0);

    memset(in, 'c', 256);
    in[256] = '\0';
    ck_assert_int_eq(store_normalize_path(in, 256, 1, out, &err), -1);
    ck_assert_int_eq(err.status, 400);
    memcpy(in, "x/", 2);
    memset(in + 2, 'c', 256);
    ck_assert_int_eq(store_normalize_path(in, 258, 1, out, &err), -1);

    /* NULL input with a length and a NULL output buffer are refused, not read. */
    ck_assert_int_eq(store_normalize_path(NULL, 3, 1, out, &err), -1);
    ck_assert_int_eq(store_normalize_path("abc", 3, 1, NULL, &err), -1);
    /* A NULL err is allowed. */
    ck_assert_int_eq(store_normalize_path("..", 2, 1, out, NULL), -1);
}
END_TEST

/* ---- uploads and reads ---- */

START_TEST(test_roundtrip)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char p[PATH_MAX];
    struct stat sb;

    put_ok(st, "hello.txt", "hello world");
    put_ok(st, "workspace/deep/er/main.py", "print(1)\n");
    put_ok(st, "empty", "");
    check_get(st, "hello.txt", "hello world");
    check_get(st, "workspace/deep/er/main.py", "print(1)\n");
    check_get(st, "./workspace//deep/er/main.py", "print(1)\n");
    check_get(st, "empty", "");
    ck_assert_int_eq(store_exists(st, "hello.txt", &err), 1);
    ck_assert_int_eq(store_exists(st, "workspace/deep/er/main.py", &err), 1);
    ck_assert_int_eq(store_exists(st, "workspace/deep", &err), 0); /* a directory */
    ck_assert_int_eq(store_exists(st, "nope", &err), 0);
    ck_assert_int_eq(store_exists(st, "hello.txt/x", &err), 0);
    ck_assert_int_eq(store_exists(st, "../x", &err), -1);
    ck_assert_int_eq(err.status, 400);

    /* Modes: files 0644, directories 0755 (umask allowing). */
    subpath(p, t.root, "hello.txt");
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 07777, 0644);
    ck_assert_uint_eq(sb.st_size, 11);

    check_get_fails(st, "missing", 404);
    check_get_fails(st, "missing/x", 404);
    check_get_fails(st, "hello.txt/x", 404);
    check_get_fails(st, "workspace", 400);
    check_get_fails(st, "workspace/deep/", 400);
    check_get_fails(st, "a/../hello.txt", 400);
    check_get_fails(st, ".tmp", 400);

    /* Nothing is left in .tmp after commits. */
    subpath(p, t.root, ".tmp");
    ck_assert_int_eq(count_entries(p), 0);

    /* Committing to a bad path fails and frees the upload. */
    ck_assert_int_eq(put(st, "../escape", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(count_entries(p), 0);
    store_close(&st);
    ck_assert_ptr_null(st);
    store_close(&st); /* idempotent */
}
END_TEST

START_TEST(test_overwrite_atomic)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    int old_fd = -1, new_fd = -1;
    uint64_t size;

    put_ok(st, "data/f", "old content");
    ck_assert_int_eq(store_open_read(st, "data/f", &old_fd, &size, &err), 0);
    ck_assert_uint_eq(size, 11);
    put_ok(st, "data/f", "new");
    /* The reader that opened before the overwrite keeps the old file whole. */
    ck_assert_str_eq(read_fd(old_fd), "old content");
    ck_assert_int_eq(store_open_read(st, "data/f", &new_fd, &size, &err), 0);
    ck_assert_uint_eq(size, 3);
    ck_assert_str_eq(read_fd(new_fd), "new");
    close(old_fd);
    close(new_fd);
    store_close(&st);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct store_upload *up = NULL;
    struct bx_err err;
    char tmp[PATH_MAX];

    subpath(tmp, t.root, ".tmp");
    ck_assert_int_eq(store_upload_begin(st, &up, &err), 0);
    ck_assert_int_eq(store_upload_write(up, "partial", 7, &err), 0);
    ck_assert_uint_eq(store_upload_size(up), 7);
    ck_assert_int_eq(count_entries(tmp), 1); /* the temp file exists meanwhile */
    store_upload_abort(&up);
    ck_assert_ptr_null(up);
    store_upload_abort(&up); /* idempotent */
    ck_assert_int_eq(count_entries(tmp), 0);
    ck_assert_int_eq(count_entries(t.root), 1); /* only .tmp */
    store_close(&st);
}
END_TEST

START_TEST(test_tmp_cleaned_at_open)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char tmp[PATH_MAX], p[PATH_MAX];
    pid_t pid;
    int status;

    put_ok(st, "keep", "kept");
    /* A process that dies mid-upload leaves its temp file behind. */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store *st2 = NULL;
        struct store_upload *up = NULL;
        if (store_open(&st2, t.root, NULL) < 0 || store_upload_begin(st2, &up, NULL) < 0 ||
            store_upload_write(up, "x", 1, NULL) < 0)
            _exit(1);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    store_close(&st);
    subpath(tmp, t.root, ".tmp");
    ck_assert_int_eq(count_entries(tmp), 1);
    subpath(p, tmp, "junk");
    write_file(p, "junk", 0600);
    subpath(p, tmp, "dir");
    ck_assert_int_eq(mkdir(p, 0700), 0);
    subpath(p, tmp, "dir/inner");
    write_file(p, "junk", 0600);
    subpath(p, tmp, "link");
    ck_assert_int_eq(symlink(t.dir, p), 0); /* removed, not followed */
    ck_assert_int_eq(count_entries(tmp), 4);

    ck_assert_int_eq(store_open(&st, t.root, &err), 0);
    ck_assert_int_eq(count_entries(tmp), 0);
    check_get(st, "keep", "kept");
    ck_assert(path_exists(t.root));
    store_close(&st);
}
END_TEST

START_TEST(test_parent_is_file)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char tmp[PATH_MAX];

    put_ok(st, "a", "file");
    ck_assert_int_eq(put(st, "a/b", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_msg(strstr(err.msg, "path conflicts with an existing file") != NULL, "%s", err.msg);
    ck_assert_int_eq(put(st, "a/b/c/d", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    check_get(st, "a", "file");
    subpath(tmp, t.root, ".tmp");
    ck_assert_int_eq(count_entries(tmp), 0);
    store_close(&st);
}
END_TEST

START_TEST(test_directory_as_target)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char tmp[PATH_MAX], p[PATH_MAX];
    struct stat sb;

    put_ok(st, "d/x", "inner");
    ck_assert_int_eq(put(st, "d", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(put(st, "d/", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    /* An empty directory too (rename(2) fails differently for it). */
    subpath(p, t.root, "empty");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    ck_assert_int_eq(put(st, "empty", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(lstat(p, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
    check_get(st, "d/x", "inner");
    subpath(tmp, t.root, ".tmp");
    ck_assert_int_eq(count_entries(tmp), 0);
    store_close(&st);
}
END_TEST

START_TEST(test_link_into)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char dst[PATH_MAX], p[PATH_MAX];
    struct stat a, b;
    int dfd;

    put_ok(st, "in/f.txt", "linked");
    subpath(dst, t.dir, "bundle");
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dfd, 0);
    ck_assert_int_eq(store_link_into(st, "in/f.txt", dfd, "file-0", &err), 0);
    subpath(p, dst, "file-0");
    ck_assert_int_eq(stat(p, &a), 0);
    subpath(p, t.root, "in/f.txt");
    ck_assert_int_eq(stat(p, &b), 0);
    ck_assert_uint_eq(a.st_ino, b.st_ino);

    ck_assert_int_eq(store_link_into(st, "in/none", dfd, "file-1", &err), -1);
    ck_assert_int_eq(err.status, 404);
    ck_assert_int_eq(store_link_into(st, "none/none", dfd, "file-1", &err), -1);
    ck_assert_int_eq(err.status, 404);
    ck_assert_int_eq(store_link_into(st, "in", dfd, "file-1", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(store_link_into(st, "in/f.txt", dfd, "../up", &err), -1);
    ck_assert_int_eq(store_link_into(st, "in/f.txt", dfd, "..", &err), -1);
    ck_assert_int_eq(store_link_into(st, "in/f.txt", dfd, "", &err), -1);
    ck_assert_int_eq(count_entries(dst), 1);
    ck_assert_int_eq(count_entries(t.dir), 2); /* files, bundle: nothing else */
    close(dfd);
    store_close(&st);
}
END_TEST

START_TEST(test_planted_symlinks)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char outside[PATH_MAX], secret[PATH_MAX], p[PATH_MAX], dst[PATH_MAX];
    struct stat sb;
    int dfd;

    /* A sentinel directory outside the store, and links to it and to /etc. */
    subpath(outside, t.dir, "outside");
    ck_assert_int_eq(mkdir(outside, 0755), 0);
    subpath(secret, outside, "secret");
    write_file(secret, "S", 0644);
    subpath(p, t.root, "evil");
    ck_assert_int_eq(symlink(outside, p), 0);
    subpath(p, t.root, "etc");
    ck_assert_int_eq(symlink("/etc", p), 0);
    subpath(p, t.root, "pw");
    ck_assert_int_eq(symlink("/etc/passwd", p), 0);
    subpath(p, t.root, "sec");
    ck_assert_int_eq(symlink("../outside/secret", p), 0);
    subpath(p, t.root, "real");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    subpath(p, t.root, "real/up");
    ck_assert_int_eq(symlink("../../outside", p), 0);

    /* read */
    check_get_fails(st, "etc/passwd", 404);
    check_get_fails(st, "evil/secret", 404);
    check_get_fails(st, "real/up/secret", 404);
    check_get_fails(st, "evil", 400);
    check_get_fails(st, "pw", 400);
    check_get_fails(st, "sec", 400);
    /* exists */
    ck_assert_int_eq(store_exists(st, "etc/passwd", &err), 0);
    ck_assert_int_eq(store_exists(st, "evil/secret", &err), 0);
    ck_assert_int_eq(store_exists(st, "pw", &err), 0);
    ck_assert_int_eq(store_exists(st, "sec", &err), 0);
    ck_assert_int_eq(store_exists(st, "evil", &err), 0);
    /* link_into */
    subpath(dst, t.dir, "bundle");
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dfd, 0);
    ck_assert_int_eq(store_link_into(st, "etc/passwd", dfd, "a", &err), -1);
    ck_assert_int_eq(err.status, 404);
    ck_assert_int_eq(store_link_into(st, "evil/secret", dfd, "b", &err), -1);
    ck_assert_int_eq(err.status, 404);
    ck_assert_int_eq(store_link_into(st, "pw", dfd, "c", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(store_link_into(st, "sec", dfd, "d", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(count_entries(dst), 0);
    close(dfd);
    /* commit through a symlinked directory */
    ck_assert_int_eq(put(st, "evil/new", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(put(st, "evil/secret", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(put(st, "real/up/secret", "x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    /* delete through a symlinked directory: "missing", nothing touched */
    ck_assert_int_eq(store_delete(st, "evil/secret", &err), 0);
    ck_assert_int_eq(store_delete(st, "real/up/secret", &err), 0);
    /* delete of the link itself: refused (not a regular file), link kept */
    ck_assert_int_eq(store_delete(st, "sec", &err), -1);
    ck_assert_int_eq(err.status, 400);
    subpath(p, t.root, "sec");
    ck_assert_int_eq(lstat(p, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    /* commit over a symlinked file replaces the link, never writes through it */
    put_ok(st, "sec", "mine");
    ck_assert_int_eq(lstat(p, &sb), 0);
    ck_assert(S_ISREG(sb.st_mode));
    check_get(st, "sec", "mine");
    /* capture into a store whose output/ is a planted symlink */
    {
        char src[PATH_MAX];
        size_t files = 9, skipped = 9;
        int sfd;
        subpath(p, t.root, "output");
        ck_assert_int_eq(symlink(outside, p), 0);
        subpath(src, t.dir, "src");
        ck_assert_int_eq(mkdir(src, 0755), 0);
        subpath(p, src, "f");
        write_file(p, "out", 0644);
        sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(sfd, 0);
        ck_assert_int_eq(store_capture_output(st, "boxer-1", sfd, 10, 1000, &files, &skipped, &err),
                         -1);
        ck_assert_int_eq(err.status, 400);
        ck_assert_uint_eq(files, 0);
        close(sfd);
        check_get_fails(st, "output/boxer-1/f", 404);
        ck_assert_int_eq(store_delete_output(st, "boxer-1", &err), 0);
        ck_assert(path_exists(p)); /* the planted link is not followed nor removed */
    }
    /* nothing outside changed */
    ck_assert_int_eq(count_entries(outside), 1);
    ck_assert_str_eq(read_path(secret), "S");
    ck_assert_int_eq(stat("/etc/passwd", &sb), 0);
    store_close(&st);
}
END_TEST

START_TEST(test_special_files_in_store)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char p[PATH_MAX];

    /* A FIFO must be refused without blocking (the test would time out). */
    subpath(p, t.root, "fifo");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    check_get_fails(st, "fifo", 400);
    ck_assert_int_eq(store_exists(st, "fifo", &err), 0);
    ck_assert_int_eq(store_delete(st, "fifo", &err), -1);
    ck_assert_int_eq(err.status, 400);
    store_close(&st);
}
END_TEST

START_TEST(test_delete)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char p[PATH_MAX];

    put_ok(st, "a/b/c/f", "1");
    put_ok(st, "a/g", "2");
    put_ok(st, "top", "3");
    ck_assert_int_eq(store_delete(st, "a/b/c/f", &err), 0);
    ck_assert_int_eq(store_exists(st, "a/b/c/f", &err), 0);
    subpath(p, t.root, "a/b");
    ck_assert(!path_exists(p)); /* empty parents removed ... */
    subpath(p, t.root, "a");
    ck_assert(path_exists(p)); /* ... up to the first non-empty one */
    ck_assert_int_eq(store_delete(st, "a/g", &err), 0);
    ck_assert(!path_exists(p));
    ck_assert_int_eq(store_delete(st, "top", &err), 0);
    ck_assert(path_exists(t.root));             /* never the root */
    ck_assert_int_eq(count_entries(t.root), 1); /* .tmp stays */
    /* missing is not an error */
    ck_assert_int_eq(store_delete(st, "top", &err), 0);
    ck_assert_int_eq(store_delete(st, "x/y/z", &err), 0);
    /* bad paths and directories are */
    ck_assert_int_eq(store_delete(st, "../x", &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(store_delete(st, ".tmp", &err), -1);
    ck_assert_int_eq(err.status, 400);
    put_ok(st, "d/x", "1");
    ck_assert_int_eq(store_delete(st, "d", &err), -1);
    ck_assert_int_eq(err.status, 400);
    check_get(st, "d/x", "1");
    store_close(&st);
}
END_TEST

/* The deepest path the rules allow: 2047 directories.  Upload, read, usage
 * and delete must all cope (delete goes back up through ".."). */
START_TEST(test_deep_path)
{
    static char path[STORE_PATH_MAX + 1];
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    uint64_t bytes = 0, files = 0;
    size_t i;

    for (i = 0; i < 2047; i++)
        memcpy(path + 2 * i, "a/", 2);
    memcpy(path + 2 * i, "f", 2);
    ck_assert_uint_eq(strlen(path), 4095);
    put_ok(st, path, "deep");
    check_get(st, path, "deep");
    put_ok(st, "a/side", "side!");
    ck_assert_int_eq(store_usage(st, &bytes, &files, &err), 0);
    ck_assert_uint_eq(files, 2);
    ck_assert_uint_eq(bytes, 9);
    ck_assert_int_eq(store_delete(st, path, &err), 0);
    ck_assert_int_eq(store_exists(st, path, &err), 0);
    check_get(st, "a/side", "side!");
    ck_assert_int_eq(store_delete(st, "a/side", &err), 0);
    ck_assert_int_eq(count_entries(t.root), 1);
    store_close(&st);
}
END_TEST

START_TEST(test_usage)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct store_upload *up = NULL;
    struct bx_err err;
    uint64_t bytes = 99, files = 99;

    ck_assert_int_eq(store_usage(st, &bytes, &files, &err), 0);
    ck_assert_uint_eq(bytes, 0);
    ck_assert_uint_eq(files, 0);
    put_ok(st, "a", "12345");
    put_ok(st, "d/e/b", "123");
    put_ok(st, "d/c", "");
    put_ok(st, "z/y/x/w", "1234567890");
    /* An upload in progress (in .tmp) does not count. */
    ck_assert_int_eq(store_upload_begin(st, &up, &err), 0);
    ck_assert_int_eq(store_upload_write(up, "xxxxxxxx", 8, &err), 0);
    ck_assert_int_eq(store_usage(st, &bytes, &files, &err), 0);
    ck_assert_uint_eq(bytes, 18);
    ck_assert_uint_eq(files, 4);
    store_upload_abort(&up);
    store_close(&st);
}
END_TEST

/* The totals behind GET /metrics are kept on every change, without a walk,
 * and agree with one (issue 11 item 15). */
static void check_totals(struct store *st)
{
    uint64_t wb = 0, wf = 0, tb = 1, tf = 1;
    struct bx_err err;
    ck_assert_int_eq(store_usage(st, &wb, &wf, &err), 0);
    store_totals(st, &tb, &tf);
    ck_assert_uint_eq(tb, wb);
    ck_assert_uint_eq(tf, wf);
}

START_TEST(test_totals_kept)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct store_upload *up = NULL;
    struct store_report *rep;
    struct bx_err err;
    uint64_t b = 0, f = 0;
    char src[PATH_MAX], p[PATH_MAX];
    size_t files = 0, skipped = 0;
    int sfd;

    put_ok(st, "a", "12345");
    put_ok(st, "d/e/b", "123");
    check_totals(st);
    put_ok(st, "a", "1234567"); /* replaced: one file, two bytes more */
    check_totals(st);
    store_totals(st, &b, &f);
    ck_assert_uint_eq(b, 10);
    ck_assert_uint_eq(f, 2);
    ck_assert_int_eq(store_delete(st, "d/e/b", &err), 0);
    check_totals(st);
    /* The two-step commit a child does, reported back. */
    rep = store_report_new();
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(store_upload_begin(st, &up, &err), 0);
    ck_assert_int_eq(store_upload_write(up, "xyz", 3, &err), 0);
    ck_assert_int_eq(store_upload_commit_io(up, "n/new", rep, &err), 0);
    store_upload_finish(&up, rep->finished, rep);
    store_report_free(&rep);
    check_totals(st);
    /* A capture adds its files; deleting the output takes them away. */
    subpath(src, t.dir, "src");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    subpath(p, src, "o1");
    write_file(p, "out", 0644);
    subpath(p, src, "o2");
    write_file(p, "out2", 0644);
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(store_capture_output(st, "boxer-t", sfd, 10, 1000, &files, &skipped, &err), 0);
    close(sfd);
    ck_assert_uint_eq(files, 2);
    check_totals(st);
    ck_assert_int_eq(store_delete_output(st, "boxer-t", &err), 0);
    check_totals(st);
    store_totals(st, &b, &f);
    ck_assert_uint_eq(f, 2);
    store_close(&st);
    /* A restart counts again. */
    ck_assert_int_eq(store_open(&st, t.root, &err), 0);
    store_totals(st, &b, &f);
    ck_assert_uint_eq(b, 10);
    ck_assert_uint_eq(f, 2);
    store_close(&st);
}
END_TEST

/* persist=false deletion: hidden at once (a rename), purged later, empty
 * parents pruned; the totals follow (issue 11 items 12, 15). */
START_TEST(test_hide_purge)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char h1[STORE_HIDDEN_MAX], h2[STORE_HIDDEN_MAX], h3[STORE_HIDDEN_MAX];
    char src[PATH_MAX], p[PATH_MAX];
    size_t files = 0, skipped = 0;
    uint64_t b = 0, f = 0;
    int sfd;

    put_ok(st, "in/sub/x.txt", "12345");
    put_ok(st, "keep", "k");
    subpath(src, t.dir, "src");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    subpath(p, src, "o");
    write_file(p, "out", 0644);
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(store_capture_output(st, "boxer-h", sfd, 10, 1000, &files, &skipped, &err), 0);
    close(sfd);
    ck_assert_int_eq(store_hide(st, "in/sub/x.txt", h1, &err), 0);
    ck_assert_int_eq(store_hide_output(st, "boxer-h", h2, &err), 0);
    check_get_fails(st, "in/sub/x.txt", 404);
    check_get_fails(st, "output/boxer-h/o", 404);
    ck_assert_int_eq(store_hide(st, "in/sub/x.txt", h3, &err), 1); /* already gone */
    ck_assert_int_eq(store_hide_output(st, "boxer-nothing", h3, &err), 1);
    store_totals(st, &b, &f);
    ck_assert_uint_eq(f, 3); /* hidden ones still counted until purged */
    ck_assert_int_eq(store_purge(st, h1, &err), 0);
    ck_assert_int_eq(store_purge(st, h2, &err), 0);
    ck_assert_int_eq(store_purge(st, h2, &err), 0); /* missing */
    ck_assert_int_eq(store_purge(st, "../x", &err), -1);
    ck_assert_int_eq(store_prune(st, "in/sub/x.txt", &err), 0);
    subpath(p, t.root, "in");
    ck_assert(!path_exists(p));
    subpath(p, t.root, ".tmp");
    ck_assert_int_eq(count_entries(p), 0);
    check_totals(st);
    store_totals(st, &b, &f);
    ck_assert_uint_eq(f, 1);
    ck_assert_uint_eq(b, 1);
    store_close(&st);
}
END_TEST

/* store_max_bytes and the free-disk floor stop uploads with 507 (issue 11
 * item 11). */
START_TEST(test_disk_limits)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct store_upload *up = NULL, *up2 = NULL;
    struct bx_err err;

    put_ok(st, "a", "12345");
    store_set_limits(st, 0, 12);
    ck_assert_int_eq(store_upload_begin(st, &up, &err), 0);
    ck_assert_int_eq(store_upload_write(up, "1234", 4, &err), 0);
    /* A second upload in flight counts what the first has written. */
    ck_assert_int_eq(store_upload_begin(st, &up2, &err), 0);
    ck_assert_int_eq(store_upload_write(up2, "1234", 4, &err), -1);
    ck_assert_int_eq(err.status, 507);
    ck_assert_ptr_nonnull(strstr(err.msg, "store_max_bytes"));
    ck_assert_int_eq(store_upload_write(up2, "123", 3, &err), 0);
    store_upload_abort(&up2);
    ck_assert_int_eq(store_upload_write(up, "123", 3, &err), 0);
    ck_assert_int_eq(store_upload_commit(&up, "b", &err), 0);
    store_set_limits(st, 0, 0);
    /* The floor: on any real filesystem, writing more than it holds fails. */
    ck_assert_int_eq(store_check_disk(-1, t.root, 1, 0, "x", &err), 0);
    ck_assert_int_eq(store_check_disk(-1, t.root, 1, 1, "x", &err), 0);
    ck_assert_int_eq(store_check_disk(-1, t.root, UINT64_MAX / 2, 1, "upload", &err), -1);
    ck_assert_int_eq(err.status, 507);
    ck_assert_ptr_nonnull(strstr(err.msg, "min_free_disk_percent"));
    store_set_limits(st, 99, 0);
    ck_assert_int_eq(store_upload_begin(st, &up, &err), 0);
    /* Small pieces are gathered first; the check comes with the write. */
    ck_assert_int_eq(store_upload_write(up, "x", 1, &err), 0);
    ck_assert_int_eq(store_upload_commit(&up, "c", &err), -1); /* no disk is 99% free */
    ck_assert_int_eq(err.status, 507);
    ck_assert_int_eq(store_upload_begin(st, &up, &err), 0);
    {
        static char big[70000];
        ck_assert_int_eq(store_upload_write(up, big, sizeof(big), &err), -1);
        ck_assert_int_eq(err.status, 507);
    }
    store_upload_abort(&up);
    ck_assert_int_eq(count_entries(t.root), 3); /* a, b, .tmp */
    store_close(&st);
}
END_TEST

/* Every skipped entry of a capture is explained in the report (issue 11
 * item 13), in valid UTF-8 even when cut short. */
START_TEST(test_capture_report)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct store_report *rep = store_report_new();
    struct bx_err err;
    char src[PATH_MAX], p[PATH_MAX];
    int sfd, sawlink = 0, sawfifo = 0;

    ck_assert_ptr_nonnull(rep);
    subpath(src, t.dir, "src");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    subpath(p, src, "real");
    write_file(p, "r", 0644);
    subpath(p, src, "link");
    ck_assert_int_eq(symlink("/etc/passwd", p), 0);
    subpath(p, src, "fifo");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(store_capture(st, "boxer-r", sfd, 10, 1000, rep, &err), 0);
    ck_assert_uint_eq(rep->files, 1);
    ck_assert_uint_eq(rep->skipped, 2);
    ck_assert_uint_eq(rep->nmsgs, 2);
    for (uint32_t i = 0; i < rep->nmsgs; i++) {
        sawlink |= strstr(rep->msgs[i], "/output/link: symbolic link") != NULL;
        sawfifo |= strstr(rep->msgs[i], "/output/fifo: FIFO") != NULL;
    }
    ck_assert(sawlink && sawfifo);
    /* The store cap ends a capture with 507 (the first one moved "real"). */
    subpath(p, src, "real2");
    write_file(p, "r2", 0644);
    store_set_limits(st, 0, 1);
    ck_assert_int_eq(store_capture(st, "boxer-s", sfd, 10, 1000, rep, &err), -1);
    ck_assert_int_eq(err.status, 507);
    close(sfd);
    store_report_free(&rep);
    store_close(&st);
}
END_TEST

/* ---- output capture ---- */

static char g_long_name[256];

static void build_output_tree(const char *src)
{
    char p[PATH_MAX], q[PATH_MAX];

    ck_assert_int_eq(mkdir(src, 0755), 0);
    subpath(p, src, "top.txt");
    write_file(p, "top", 0644);
    subpath(p, src, "a");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    subpath(p, src, "a/b");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    subpath(p, src, "a/b/c.txt");
    write_file(p, "deep", 0600);
    subpath(p, src, "a/empty");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    subpath(p, src, "passwd-link");
    ck_assert_int_eq(symlink("/etc/passwd", p), 0);
    subpath(p, src, "a/etc-link");
    ck_assert_int_eq(symlink("/etc", p), 0);
    subpath(p, src, "h1");
    write_file(p, "hard", 0644);
    subpath(q, src, "a/h2");
    ck_assert_int_eq(link(p, q), 0);
    subpath(p, src, "fifo");
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    memset(g_long_name, 'L', 255);
    g_long_name[255] = '\0';
    subpath(p, src, g_long_name);
    write_file(p, "long", 0644);
    subpath(p, src, "new\nline");
    write_file(p, "nl", 0644);
    subpath(p, src, "bad\xffutf8");
    write_file(p, "bad", 0644);
    subpath(p, src, "caf\xc3\xa9");
    write_file(p, "utf8", 0644);
    subpath(p, src, "suid");
    write_file(p, "suid", 0644);
    ck_assert_int_eq(chmod(p, 04755), 0);
}

static void check_captured(struct store *st, const struct tdir *t, const char *id)
{
    char sp[STORE_PATH_MAX + 1], p[PATH_MAX];
    struct bx_err err;
    struct stat sb;

    pathf(sp, "output/%s/top.txt", id);
    check_get(st, sp, "top");
    pathf(sp, "output/%s/a/b/c.txt", id);
    check_get(st, sp, "deep");
    pathf(sp, "output/%s/%s", id, g_long_name);
    check_get(st, sp, "long");
    pathf(sp, "output/%s/suid", id);
    check_get(st, sp, "suid");
    pathf(p, "%s/output/%s/suid", t->root, id);
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 07777, 0644);
    ck_assert_uint_eq(sb.st_nlink, 1);
    pathf(sp, "output/%s/caf\xc3\xa9", id);
    check_get(st, sp, "utf8");
    /* Names no store path can express (control characters, not UTF-8)
     * would be captured but never downloadable: skipped. */
    pathf(p, "%s/output/%s/new\nline", t->root, id);
    ck_assert(!path_exists(p));
    pathf(p, "%s/output/%s/bad\xffutf8", t->root, id);
    ck_assert(!path_exists(p));
    /* Skipped kinds are absent. */
    pathf(sp, "output/%s/passwd-link", id);
    ck_assert_int_eq(store_exists(st, sp, &err), 0);
    pathf(p, "%s/output/%s/passwd-link", t->root, id);
    ck_assert(!path_exists(p));
    pathf(p, "%s/output/%s/a/etc-link", t->root, id);
    ck_assert(!path_exists(p));
    pathf(p, "%s/output/%s/h1", t->root, id);
    ck_assert(!path_exists(p));
    pathf(p, "%s/output/%s/a/h2", t->root, id);
    ck_assert(!path_exists(p));
    pathf(p, "%s/output/%s/fifo", t->root, id);
    ck_assert(!path_exists(p));
    /* Directories holding nothing captured are not created. */
    pathf(p, "%s/output/%s/a/empty", t->root, id);
    ck_assert(!path_exists(p));
    pathf(p, "%s/.tmp", t->root);
    ck_assert_int_eq(count_entries(p), 0);
}

static void capture_case(const char *srcbase)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char src[PATH_MAX], p[PATH_MAX];
    size_t files = 0, skipped = 0;
    uint64_t bytes = 0, nfiles = 0;
    int sfd;

    pathf(src, "%s/src-%s", srcbase, strrchr(t.dir, '/') + 1);
    build_output_tree(src);
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    bx_err_clear(&err);
    ck_assert_msg(
        store_capture_output(st, "boxer-0123-abcd", sfd, 100, 1 << 20, &files, &skipped, &err) == 0,
        "capture: %s", err.msg);
    ck_assert_uint_eq(files, 5);   /* top, c.txt, long name, UTF-8 name, suid */
    ck_assert_uint_eq(skipped, 7); /* 2 symlinks, 2 hard links, fifo, 2 bad names */
    check_captured(st, &t, "boxer-0123-abcd");
    ck_assert_int_eq(store_usage(st, &bytes, &nfiles, &err), 0);
    ck_assert_uint_eq(nfiles, 5);
    ck_assert_uint_eq(bytes, 3 + 4 + 4 + 4 + 4);
    /* The symlink targets were not touched. */
    subpath(p, src, "passwd-link");
    ck_assert(path_exists(p));

    ck_assert_int_eq(store_delete_output(st, "boxer-0123-abcd", &err), 0);
    /* output/ stays: a capture child may be about to create its exec dir
     * in it (issue 11 item 13). */
    pathf(p, "%s/output", t.root);
    ck_assert(path_exists(p));
    pathf(p, "%s/output/boxer-0123-abcd", t.root);
    ck_assert(!path_exists(p));
    ck_assert_int_eq(store_delete_output(st, "boxer-0123-abcd", &err), 0); /* missing */
    close(sfd);
    ck_assert_int_eq(bx_rm_rf_at(AT_FDCWD, src, &err), 0);
    store_close(&st);
}

START_TEST(test_capture_same_fs)
{
    capture_case(g_base);
}
END_TEST

START_TEST(test_capture_cross_fs)
{
    struct stat a, b;
    ck_assert_int_eq(stat(g_base, &a), 0);
    ck_assert_int_eq(stat(g_shm, &b), 0);
    if (a.st_dev == b.st_dev) {
        fprintf(stderr, "note: %s is on the same filesystem; copy path not exercised\n", g_shm);
        return;
    }
    capture_case(g_shm);
}
END_TEST

static int make_flat_src(const struct tdir *t, int n, const char *content)
{
    char src[PATH_MAX], p[PATH_MAX];
    int sfd;
    subpath(src, t->dir, "src");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    for (int i = 0; i < n; i++) {
        char name[16];
        pathf(name, "f%d", i);
        subpath(p, src, name);
        write_file(p, content, 0644);
    }
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    return sfd;
}

START_TEST(test_capture_bounds)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    size_t files = 0, skipped = 0;
    uint64_t bytes = 0, nfiles = 0;
    int sfd = make_flat_src(&t, 5, "0123456789");

    ck_assert_int_eq(store_capture_output(st, "r1", sfd, 2, 1000, &files, &skipped, &err), 0);
    ck_assert_uint_eq(files, 2);
    ck_assert_uint_eq(skipped, 3);
    ck_assert_int_eq(store_usage(st, &bytes, &nfiles, &err), 0);
    ck_assert_uint_eq(nfiles, 2);
    /* What is left over: 3 files of 10 bytes; only 2 fit in 25 bytes. */
    ck_assert_int_eq(store_capture_output(st, "r2", sfd, 100, 25, &files, &skipped, &err), 0);
    ck_assert_uint_eq(files, 2);
    ck_assert_uint_eq(skipped, 1);
    ck_assert_int_eq(store_usage(st, &bytes, &nfiles, &err), 0);
    ck_assert_uint_eq(nfiles, 4);
    ck_assert_uint_eq(bytes, 40);
    /* Zero budget: nothing captured, no directory created. */
    ck_assert_int_eq(store_capture_output(st, "r3", sfd, 0, 1000, &files, &skipped, &err), 0);
    ck_assert_uint_eq(files, 0);
    ck_assert_uint_eq(skipped, 1);
    ck_assert_int_eq(store_exists(st, "output/r3", &err), 0);
    {
        char p[PATH_MAX];
        pathf(p, "%s/output/r3", t.root);
        ck_assert(!path_exists(p));
    }
    close(sfd);
    store_close(&st);
}
END_TEST

START_TEST(test_capture_depth_bound)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    char src[PATH_MAX], p[PATH_MAX];
    size_t files = 0, skipped = 0;
    int sfd, dfd;

    /* 70 nested directories with a file at each level, built with *at calls
     * since the whole path would be long. */
    subpath(src, t.dir, "src");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    dfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dfd, 0);
    for (int i = 0; i < 70; i++) {
        int fd = openat(dfd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        int next;
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bx_write_all(fd, "x", 1), 0);
        close(fd);
        ck_assert_int_eq(mkdirat(dfd, "d", 0755), 0);
        next = openat(dfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(next, 0);
        close(dfd);
        dfd = next;
    }
    close(dfd);
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(store_capture_output(st, "deep", sfd, 1000, 1 << 20, &files, &skipped, &err),
                     0);
    /* Files at depths 0..64 are captured; the directory at depth 65 is skipped. */
    ck_assert_uint_eq(files, 65);
    ck_assert_uint_eq(skipped, 1);
    close(sfd);
    ck_assert_int_eq(store_delete_output(st, "deep", &err), 0);
    subpath(p, t.root, "output/deep");
    ck_assert(!path_exists(p));
    store_close(&st);
}
END_TEST

START_TEST(test_capture_bad_exec_id)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    struct bx_err err;
    size_t files = 0, skipped = 0;
    int sfd = make_flat_src(&t, 1, "x");
    static const char *bad[] = {
        "",    "../x",  "a/b",
        "..",  "Boxer", "a_b",
        "a.b", "a\nb",  "12345678901234567890123456789012345678901234567890123456789012345"};

    for (size_t i = 0; i < BX_ARRAY_LEN(bad); i++) {
        ck_assert_int_eq(store_capture_output(st, bad[i], sfd, 10, 100, &files, &skipped, &err),
                         -1);
        ck_assert_int_eq(err.status, 400);
        ck_assert_int_eq(store_delete_output(st, bad[i], &err), -1);
        ck_assert_int_eq(err.status, 400);
    }
    ck_assert_int_eq(store_capture_output(st, NULL, sfd, 10, 100, &files, &skipped, &err), -1);
    /* 64 characters is fine. */
    ck_assert_int_eq(
        store_capture_output(st, "1234567890123456789012345678901234567890123456789012345678901234",
                             sfd, 10, 100, &files, &skipped, &err),
        0);
    ck_assert_uint_eq(files, 1);
    close(sfd);
    store_close(&st);
}
END_TEST

/* The look that spares an empty /output its capture child: any entry
 * counts (an empty directory too: the capture decides what it keeps), and
 * the directory itself is opened without following a symlink. */
START_TEST(test_capture_has_entries)
{
    struct tdir t;
    struct store *st = mkstore(&t);
    char src[PATH_MAX], p[PATH_MAX], longname[256];
    int dfd;

    subpath(src, t.dir, "src");
    ck_assert_int_eq(mkdir(src, 0755), 0);
    dfd = open(t.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dfd, 0);
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 0);

    /* one entry of each kind, alone */
    subpath(p, src, "f");
    write_file(p, "x", 0644);
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 1);
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 0);
    subpath(p, src, "d");
    ck_assert_int_eq(mkdir(p, 0755), 0);
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 1);
    ck_assert_int_eq(rmdir(p), 0);
    subpath(p, src, "l");
    ck_assert_int_eq(symlink("/nonexistent", p), 0);
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 1);
    ck_assert_int_eq(unlink(p), 0);
    /* a name of NAME_MAX bytes: the largest record getdents64 returns */
    memset(longname, 'n', 255);
    longname[255] = '\0';
    subpath(p, src, longname);
    write_file(p, "", 0644);
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 1);
    ck_assert_int_eq(unlink(p), 0);
    /* many entries: still the first is enough */
    for (int i = 0; i < 500; i++) {
        char name[16];
        pathf(name, "m%d", i);
        subpath(p, src, name);
        write_file(p, "", 0644);
    }
    ck_assert_int_eq(store_capture_has_entries(dfd, "src"), 1);

    /* a symlink to a directory with entries is an error, not followed */
    subpath(p, t.dir, "link");
    ck_assert_int_eq(symlink(src, p), 0);
    errno = 0;
    ck_assert_int_eq(store_capture_has_entries(dfd, "link"), -1);
    ck_assert(errno == ELOOP || errno == ENOTDIR);
    errno = 0;
    ck_assert_int_eq(store_capture_has_entries(dfd, "missing"), -1);
    ck_assert_int_eq(errno, ENOENT);
    subpath(p, t.dir, "file");
    write_file(p, "x", 0644);
    errno = 0;
    ck_assert_int_eq(store_capture_has_entries(dfd, "file"), -1);
    ck_assert_int_eq(errno, ENOTDIR);
    close(dfd);
    store_close(&st);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_normalize_table);
    tcase_add_test(tc, test_normalize_lengths);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_overwrite_atomic);
    tcase_add_test(tc, test_abort_leaves_nothing);
    tcase_add_test(tc, test_tmp_cleaned_at_open);
    tcase_add_test(tc, test_parent_is_file);
    tcase_add_test(tc, test_directory_as_target);
    tcase_add_test(tc, test_link_into);
    tcase_add_test(tc, test_planted_symlinks);
    tcase_add_test(tc, test_special_files_in_store);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_deep_path);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_totals_kept);
    tcase_add_test(tc, test_disk_limits);
    tcase_add_test(tc, test_hide_purge);
    tcase_add_test(tc, test_capture_report);
    tcase_add_test(tc, test_capture_same_fs);
    tcase_add_test(tc, test_capture_cross_fs);
    tcase_add_test(tc, test_capture_bounds);
    tcase_add_test(tc, test_capture_depth_bound);
    tcase_add_test(tc, test_capture_bad_exec_id);
    tcase_add_test(tc, test_capture_has_entries);
    suite_add_tcase(s, tc);
    return s;
}

/* bx_rm_rf_at stops at 256 levels; a failed deep-path test can leave more,
 * so fall back to rm(1) rather than leave the temp tree behind. */
static void remove_tree(const char *path)
{
    struct bx_err err;
    pid_t pid;
    int status;

    if (bx_rm_rf_at(AT_FDCWD, path, &err) == 0)
        return;
    pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        fprintf(stderr, "cleanup %s failed: %s\n", path, err.msg);
}

int main(void)
{
    SRunner *sr;
    int failed;

    strcpy(g_base, "/tmp/boxer-test-store.XXXXXX");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        return 1;
    }
    strcpy(g_shm, "/dev/shm/boxer-test-store.XXXXXX");
    if (!mkdtemp(g_shm))
        strcpy(g_shm, g_base); /* no tmpfs: same-fs only */
    sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree(g_base);
    if (strcmp(g_shm, g_base) != 0)
        remove_tree(g_shm);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
