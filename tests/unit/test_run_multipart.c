/* run_multipart.c: the multipart POST /run body (issue 17) on a real store
 * in a temp directory.  Every body is fed whole, split in two at every byte
 * and one byte at a time; the request, the inputs, the spooled files' bytes
 * and every verdict must be the same each time, and nothing may stay in the
 * store's .tmp once the decoder (or the request) is freed. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_run.h"
#include "check_main.h"
#include "config.h"
#include "guard.h"
#include "oci.h"
#include "run.h"
#include "run_multipart.h"
#include "store.h"
#include "util.h"

#define CT "multipart/form-data; boundary=XyZ"

static struct config cfg;
static struct store *st;
static char dir[64], root[128], tmpdir[256];

static void setup(void)
{
    struct bx_err err;
    config_defaults(&cfg);
    cfg.total_memory_mb = 100000;
    cfg.total_pids = 1000000;
    cfg.upload_limit_bytes = 64;
    snprintf(dir, sizeof(dir), "/tmp/boxer-runmp.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(root, sizeof(root), "%s/files", dir);
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", root);
    bx_err_clear(&err);
    ck_assert_msg(store_open(&st, root, &err) == 0, "store_open: %s", err.msg);
}

static void teardown(void)
{
    struct bx_err err;
    store_close(&st);
    bx_rm_rf_at(AT_FDCWD, dir, &err);
    config_free(&cfg);
}

static int tmp_entries(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* What a body decoded to, as text: the verdict, or the request's inputs
 * with their modes and the bytes of their spooled files. */
static void describe(const char *body, size_t len, const size_t *cuts, size_t ncuts,
                     struct sbuf *out)
{
    struct runmp *m = NULL;
    struct run_request *r = NULL;
    struct bx_err err;
    size_t at = 0;
    int rc = 0;

    bx_err_clear(&err);
    ck_assert_int_eq(runmp_new(&m, &cfg, st, CT, strlen(CT), &err), 0);
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        struct guard_buf g;
        /* an exact-size copy: ASan sees any read past the piece */
        rc = runmp_feed(m, guard_copy(&g, body + at, end - at), end - at, &err);
        guard_free(&g);
        at = end;
    }
    if (rc == 0)
        rc = runmp_finish(m, &r, &err);
    if (rc < 0) {
        ck_assert_ptr_null(r);
        ck_assert_int_eq(sbuf_appendf(out, "ERR %d %s", err.status, err.msg), 0);
    } else {
        int linkdir;
        char ld[PATH_MAX];
        snprintf(ld, sizeof(ld), "%s/l", dir);
        ck_assert_int_eq(mkdir(ld, 0700), 0);
        linkdir = open(ld, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(linkdir, 0);
        ck_assert_int_eq(sbuf_appendf(out, "OK %s %s;", r->image, r->cmd[0]), 0);
        for (size_t i = 0; i < r->ninputs; i++) {
            struct oci_input *in = &r->inputs[i];
            ck_assert_int_eq(sbuf_appendf(out, " %s %o %d ", in->path, in->mode, in->part), 0);
            if (in->spool) {
                char name[32], data[256];
                int fd;
                ssize_t n;
                snprintf(name, sizeof(name), "%zu", i);
                ck_assert_int_eq(store_upload_link(in->spool, linkdir, name, &err), 0);
                fd = openat(linkdir, name, O_RDONLY | O_CLOEXEC);
                ck_assert_int_ge(fd, 0);
                n = read(fd, data, sizeof(data));
                ck_assert_int_ge(n, 0);
                close(fd);
                ck_assert_int_eq(sbuf_append(out, "[", 1), 0);
                ck_assert_int_eq(sbuf_append(out, data, (size_t)n), 0);
                ck_assert_int_eq(sbuf_append(out, "]", 1), 0);
            } else {
                ck_assert_int_eq(sbuf_append(out, in->data, in->len), 0);
            }
        }
        close(linkdir);
        ck_assert_int_eq(bx_rm_rf_at(AT_FDCWD, ld, &err), 0);
    }
    run_request_free(&r);
    runmp_free(&m);
    /* every spooled file went with the request or the decoder */
    ck_assert_int_eq(tmp_entries(), 0);
}

/* Checks the body whole, at every split and a byte at a time; returns the
 * description (caller frees). */
static char *check_splits(const char *body)
{
    size_t len = strlen(body);
    struct sbuf whole, other;
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));

    ck_assert_ptr_nonnull(cuts);
    sbuf_init(&whole, 1 << 20);
    describe(body, len, NULL, 0, &whole);
    for (size_t a = 0; a <= len; a++) {
        sbuf_init(&other, 1 << 20);
        describe(body, len, &a, 1, &other);
        ck_assert_msg(other.len == whole.len && memcmp(other.data, whole.data, whole.len) == 0,
                      "split at %zu: %.*s\nwhole: %.*s", a, (int)other.len, other.data,
                      (int)whole.len, whole.data);
        sbuf_free(&other);
    }
    for (size_t a = 0; a < len; a++)
        cuts[a] = a + 1;
    sbuf_init(&other, 1 << 20);
    describe(body, len, cuts, len ? len - 1 : 0, &other);
    ck_assert_msg(other.len == whole.len && memcmp(other.data, whole.data, whole.len) == 0,
                  "byte at a time: %.*s", (int)other.len, other.data);
    sbuf_free(&other);
    free(cuts);
    ck_assert_int_eq(sbuf_putc(&whole, '\0'), 0);
    return sbuf_steal(&whole, NULL);
}

#define REQ(json) "--XyZ\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n" json "\r\n"
#define PART(name, data)                                                                      \
    "--XyZ\r\nContent-Disposition: form-data; name=\"" name "\"; filename=\"f\"\r\n"          \
    "Content-Type: application/octet-stream\r\n\r\n" data "\r\n"
#define END "--XyZ--\r\n"
#define RUN "{\"image\": \"busybox\", \"cmd\": [\"sh\"]"

START_TEST(good_bodies)
{
    char *d = check_splits(
        "preamble\r\n" REQ(RUN ", \"inputs\": {\"w/run.sh\": {\"part\": true, \"mode\": 493},"
                           " \"inline\": {\"content\": \"hi\"}}}")
            PART("./d//y.bin", "a\r\n--XyY\r\n-\r") PART("w/run.sh", "#!/bin/sh\n")
                PART("empty", "") END "epilogue");
    ck_assert_str_eq(d, "OK busybox sh; w/run.sh 755 1 [#!/bin/sh\n] inline 644 0 hi"
                        " d/y.bin 644 1 [a\r\n--XyY\r\n-\r] empty 644 1 []");
    free(d);
    /* a request alone */
    d = check_splits(REQ(RUN "}") END);
    ck_assert_str_eq(d, "OK busybox sh;");
    free(d);
}
END_TEST

START_TEST(refusals)
{
    static const struct {
        const char *body, *want;
    } cases[] = {
        {PART("x", "a") REQ(RUN "}") END, "ERR 400 multipart /run: the first part must be"},
        {REQ(RUN "}") PART("request", "{}") END, "ERR 400 multipart /run: more than one request"},
        {END, "ERR 400 multipart /run: no request part"},
        {REQ(RUN "}") PART("x", "a"), "ERR 400 malformed multipart body: body ended before"},
        {REQ(RUN "}") PART("../x", "a") END, "ERR 400 part \"../x\": '..' is not allowed"},
        {REQ(RUN "}") PART("output/x", "a") END, "ERR 400 part \"output/x\""},
        {REQ(RUN "}") PART("x", "a") PART("./x", "b") END, "ERR 400 part x: given twice"},
        {REQ(RUN ", \"files\": [\"x\"]}") PART("x", "a") END, "ERR 400 part x: also in files"},
        {REQ(RUN ", \"inputs\": {\"x\": {\"content\": \"\"}}}") PART("x", "a") END,
         "ERR 400 part x: also in inputs with content"},
        {REQ(RUN ", \"inputs\": {\"x\": {\"part\": true}}}") END,
         "ERR 400 inputs[\"x\"]: part: true, but the body has no part"},
        {REQ(RUN ", \"inputs\": {\"x\": {\"part\": false}}}") END, "ERR 400 request part: inputs"},
        {REQ("{\"image\": \"busybox\"}") PART("x", "a") END,
         "ERR 400 request part: cmd is required"},
        {REQ(RUN "}") PART("x", "0123456789012345678901234567890123456789012345678901234567890123"
                                "4") END,
         "ERR 413 part x is larger than upload_limit_bytes (64)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *d = check_splits(cases[i].body);
        ck_assert_msg(strncmp(d, cases[i].want, strlen(cases[i].want)) == 0, "case %zu: %s", i,
                      d);
        free(d);
    }
}
END_TEST

START_TEST(bad_content_type)
{
    struct runmp *m = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(runmp_new(&m, &cfg, st, "multipart/form-data", 19, &err), -1);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(runmp_new(&m, &cfg, st, "multipart/form-data; boundary=a\r", 32, &err), -1);
    ck_assert_int_eq(err.status, 400);
}
END_TEST

START_TEST(part_true_needs_multipart)
{
    struct run_request *r = NULL;
    struct bx_err err;
    const char *b = RUN ", \"inputs\": {\"x\": {\"part\": true}}}";
    bx_err_clear(&err);
    ck_assert_int_eq(run_request_parse(b, strlen(b), &cfg, &r, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "multipart"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("run_multipart");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, good_bodies);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, bad_content_type);
    tcase_add_test(tc, part_true_needs_multipart);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(suite);
}
