/* Unit tests for imgref.c.  Every input is parsed from a copy that ends
 * right before an unreadable page (tests/unit/guard.h), so a read past the
 * end of the reference crashes the test; accepted references are also
 * formatted and parsed again. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "imgref.h"
#include "tests/unit/guard.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Parses s[0..len) from a guard-page copy. */
static int parse_guarded(const char *s, size_t len, struct imgref *r, struct bx_err *err)
{
    struct guard_buf g = {0};
    char *copy = guard_copy(&g, s, len);
    int rc;
    bx_err_clear(err);
    rc = imgref_parse(copy, len, r, err);
    guard_free(&g);
    return rc;
}

/* Formats r, checks the canonical string parses back to the same fields and
 * formats identically; returns the formatted length. */
static int roundtrip(const struct imgref *r, char *buf, size_t cap)
{
    struct imgref back;
    struct bx_err err;
    char again[IMGREF_MAX + 1];
    int n = imgref_format(r, buf, cap);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(buf), (size_t)n);
    ck_assert_int_le(n, IMGREF_MAX);
    ck_assert_msg(parse_guarded(buf, (size_t)n, &back, &err) == 0, "re-parse of %s: %s", buf,
                  err.msg);
    ck_assert_str_eq(back.registry, r->registry);
    ck_assert_str_eq(back.repository, r->repository);
    ck_assert_str_eq(back.tag, r->tag);
    ck_assert_str_eq(back.digest, r->digest);
    ck_assert_int_eq(imgref_format(&back, again, sizeof(again)), n);
    ck_assert_str_eq(again, buf);
    return n;
}

struct valid_case {
    const char *in;
    const char *registry, *repository, *tag, *digest;
    const char *canonical;
};

static const struct valid_case valid[] = {
    {"busybox", "docker.io", "library/busybox", "latest", "", "docker.io/library/busybox:latest"},
    {"python:3.12-slim", "docker.io", "library/python", "3.12-slim", "",
     "docker.io/library/python:3.12-slim"},
    {"127.0.0.1:5000/library/busybox:latest", "127.0.0.1:5000", "library/busybox", "latest", "",
     "127.0.0.1:5000/library/busybox:latest"},
    {"localhost/foo", "localhost", "foo", "latest", "", "localhost/foo:latest"},
    {"localhost:5000/foo", "localhost:5000", "foo", "latest", "", "localhost:5000/foo:latest"},
    {"registry.example.com:443/a/b/c:v1", "registry.example.com:443", "a/b/c", "v1", "",
     "registry.example.com:443/a/b/c:v1"},
    {"foo@sha256:" D64, "docker.io", "library/foo", "", "sha256:" D64,
     "docker.io/library/foo@sha256:" D64},
    {"foo:tag@sha256:" D64, "docker.io", "library/foo", "tag", "sha256:" D64,
     "docker.io/library/foo:tag@sha256:" D64},
    {"[::1]:5000/foo", "[::1]:5000", "foo", "latest", "", "[::1]:5000/foo:latest"},
    {"[::1]/foo:x", "[::1]", "foo", "x", "", "[::1]/foo:x"},
    {"[2001:db8::ff00:42:8329]:65535/a/b", "[2001:db8::ff00:42:8329]:65535", "a/b", "latest", "",
     "[2001:db8::ff00:42:8329]:65535/a/b:latest"},
    {"docker.io/busybox", "docker.io", "library/busybox", "latest", "",
     "docker.io/library/busybox:latest"},
    {"index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", "",
     "docker.io/library/busybox:1"},
    {"docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "",
     "docker.io/library/busybox:latest"},
    {"user/repo", "docker.io", "user/repo", "latest", "", "docker.io/user/repo:latest"},
    {"a.b/c", "a.b", "c", "latest", "", "a.b/c:latest"},
    {"host:1/c", "host:1", "c", "latest", "", "host:1/c:latest"},
    {"Registry.Example.COM/x", "Registry.Example.COM", "x", "latest", "",
     "Registry.Example.COM/x:latest"},
    {"a-b.c-d/e", "a-b.c-d", "e", "latest", "", "a-b.c-d/e:latest"},
    {"foo.bar", "docker.io", "library/foo.bar", "latest", "", "docker.io/library/foo.bar:latest"},
    {"a_b__c---d.e", "docker.io", "library/a_b__c---d.e", "latest", "",
     "docker.io/library/a_b__c---d.e:latest"},
    {"0/1", "docker.io", "0/1", "latest", "", "docker.io/0/1:latest"},
    {"foo:_", "docker.io", "library/foo", "_", "", "docker.io/library/foo:_"},
    {"foo:V1.0-RC_1..x--", "docker.io", "library/foo", "V1.0-RC_1..x--", "",
     "docker.io/library/foo:V1.0-RC_1..x--"},
    /* No '/', so the ':' starts a tag: Docker reads this the same way. */
    {"localhost:5000", "docker.io", "library/localhost", "5000", "",
     "docker.io/library/localhost:5000"},
};

START_TEST(test_valid)
{
    const struct valid_case *c = &valid[_i];
    struct imgref r;
    struct bx_err err;
    char buf[IMGREF_MAX + 1];
    ck_assert_msg(parse_guarded(c->in, strlen(c->in), &r, &err) == 0, "%s: %s", c->in, err.msg);
    ck_assert_str_eq(r.registry, c->registry);
    ck_assert_str_eq(r.repository, c->repository);
    ck_assert_str_eq(r.tag, c->tag);
    ck_assert_str_eq(r.digest, c->digest);
    roundtrip(&r, buf, sizeof(buf));
    ck_assert_str_eq(buf, c->canonical);
}
END_TEST

static const char *const invalid[] = {
    "",
    "Busybox",
    "library/BusyBox",
    "localhost/Foo",
    "foo bar",
    " foo",
    "foo ",
    "foo:tag ",
    "-foo",
    "foo/-bar",
    "foo-",
    "foo.",
    ".foo",
    "_foo",
    "foo/.bar",
    "..",
    "../foo",
    "foo/../bar",
    "foo/./bar",
    "a..b",
    "a._b",
    "a___b",
    "a//b",
    "/foo",
    "foo/",
    "localhost/foo/",
    "localhost/",
    "localhost:5000/",
    ":tag",
    ":",
    "@sha256:" D64,
    "foo:",
    "foo:-tag",
    "foo:.tag",
    "foo:t/g",
    "foo:t:g",
    "foo@",
    "foo@sha256:",
    "foo@sha256:" D64 "0",
    "foo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
    "foo@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
    "foo@sha256:g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "foo@sha512:" D64 D64,
    "foo@md5:0123456789abcdef0123456789abcdef",
    "foo@sha256:" D64 "@sha256:" D64,
    "foo@" D64,
    "foo:tag@",
    "localhost:0/foo",
    "localhost:65536/foo",
    "localhost:99999999999999999999999/foo",
    "localhost:05000/foo",
    "localhost:/foo",
    "localhost:-1/foo",
    "localhost:5000x/foo",
    "local_host.com/foo",
    "-host.com/foo",
    "host-.com/foo",
    "host..com/foo",
    ".host.com/foo",
    "host.com./foo",
    "[::1/foo",
    "[]/foo",
    "[::1]x/foo",
    "[::1]:/foo",
    "[::1]:0/foo",
    "[fe80::1%eth0]/foo",
    "[1.2.3.4]/foo",
    "[::g]/foo",
    "[::1]",
    "[::1]:5000",
    "foo\tbar",
    "foo\nbar",
    "foo\rbar",
    "foo\x7f",
    "foo\x1b[31m",
    "caf\xc3\xa9",
    "foo;rm -rf /",
    "foo$(id)",
    "foo|bar",
    "foo\\bar",
    "foo%2fbar",
    "foo,bar",
    "foo*",
    "--help",
    "-v",
};

START_TEST(test_invalid)
{
    const char *in = invalid[_i];
    struct imgref r;
    struct bx_err err;
    memset(&r, 0x5a, sizeof(r));
    ck_assert_msg(parse_guarded(in, strlen(in), &r, &err) < 0, "accepted '%s'", in);
    ck_assert_int_eq(err.status, 400);
    ck_assert_msg(strncmp(err.msg, "invalid image reference: ", 25) == 0, "%s", err.msg);
    /* The output is untouched on failure. */
    for (size_t i = 0; i < sizeof(r); i++)
        ck_assert_int_eq(((unsigned char *)&r)[i], 0x5a);
}
END_TEST

START_TEST(test_error_messages)
{
    struct imgref r;
    struct bx_err err;
    ck_assert_int_lt(parse_guarded("Foo", 3, &r, &err), 0);
    ck_assert_str_eq(err.msg, "invalid image reference: repository name must be lower case");
    ck_assert_int_lt(parse_guarded("foo\n", 4, &r, &err), 0);
    ck_assert_str_eq(err.msg, "invalid image reference: contains whitespace, control or "
                              "non-ASCII characters");
    ck_assert_int_lt(parse_guarded("h:0/foo", 7, &r, &err), 0);
    ck_assert_str_eq(err.msg, "invalid image reference: registry port must be 1-65535");
    /* The message never echoes the client's bytes. */
    ck_assert_int_lt(parse_guarded("foo:\x1b]0;evil\x07", 12, &r, &err), 0);
    ck_assert_ptr_null(strchr(err.msg, '\x1b'));
    ck_assert_ptr_null(strstr(err.msg, "evil"));
}
END_TEST

/* Every byte outside [!-~] is refused wherever it appears, NUL included. */
START_TEST(test_control_bytes_everywhere)
{
    static const char base[] = "localhost:5000/a/b:tag@sha256:" D64;
    const size_t n = sizeof(base) - 1;
    char buf[sizeof(base)];
    struct imgref r;
    struct bx_err err;
    ck_assert_int_eq(parse_guarded(base, n, &r, &err), 0);
    for (int c = 0; c < 256; c++) {
        if (c > 0x20 && c < 0x7f)
            continue;
        for (size_t pos = 0; pos < n; pos++) {
            memcpy(buf, base, n);
            buf[pos] = (char)c;
            ck_assert_msg(parse_guarded(buf, n, &r, &err) < 0, "byte %#x at %zu accepted", c, pos);
            ck_assert_int_eq(err.status, 400);
        }
    }
}
END_TEST

/* The length is what the caller says: a NUL or anything after len is not
 * part of the reference, and bytes before len are all checked. */
START_TEST(test_explicit_length)
{
    struct imgref r;
    struct bx_err err;
    ck_assert_int_eq(parse_guarded("busybox:1.36 trailing", 12, &r, &err), 0);
    ck_assert_str_eq(r.tag, "1.36");
    ck_assert_int_lt(parse_guarded("busybox\0:x", 10, &r, &err), 0);
    ck_assert_int_lt(imgref_parse(NULL, 0, &r, &err), 0);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_lt(imgref_parse(NULL, 3, &r, &err), 0);
    ck_assert_int_lt(imgref_parse("foo", 3, NULL, &err), 0);
    ck_assert_int_eq(imgref_parse("foo", 3, &r, NULL), 0); /* NULL err is allowed */
    ck_assert_int_lt(imgref_parse("FOO", 3, &r, NULL), 0);
}
END_TEST

static void fill(char *dst, char c, size_t n)
{
    memset(dst, c, n);
    dst[n] = '\0';
}

START_TEST(test_lengths)
{
    char in[1024], name[512], tag[256], out[IMGREF_MAX + 1];
    struct imgref r;
    struct bx_err err;

    /* Tags: 128 ok, 129 refused. */
    fill(tag, 't', 128);
    snprintf(in, sizeof(in), "foo:%s", tag);
    ck_assert_int_eq(parse_guarded(in, strlen(in), &r, &err), 0);
    ck_assert_str_eq(r.tag, tag);
    fill(tag, 't', 129);
    snprintf(in, sizeof(in), "foo:%s", tag);
    ck_assert_int_lt(parse_guarded(in, strlen(in), &r, &err), 0);
    ck_assert_str_eq(err.msg, "invalid image reference: tag longer than 128 characters");

    /* Input of 255 bytes whose canonical form is itself: ok; 256: refused. */
    fill(name, 'a', 255 - strlen("localhost/") - strlen(":t"));
    snprintf(in, sizeof(in), "localhost/%s:t", name);
    ck_assert_uint_eq(strlen(in), 255);
    ck_assert_int_eq(parse_guarded(in, strlen(in), &r, &err), 0);
    ck_assert_int_eq(roundtrip(&r, out, sizeof(out)), 255);
    ck_assert_str_eq(out, in);
    snprintf(in, sizeof(in), "localhost/%sa:t", name);
    ck_assert_int_lt(parse_guarded(in, strlen(in), &r, &err), 0);
    ck_assert_str_eq(err.msg, "invalid image reference: longer than 255 bytes");

    /* Short input whose canonical form grows past 255: refused, so every
     * accepted reference formats into IMGREF_MAX + 1 bytes. */
    fill(name, 'a', 255 - strlen("docker.io/library/") - strlen(":latest"));
    ck_assert_int_eq(parse_guarded(name, strlen(name), &r, &err), 0);
    ck_assert_int_eq(roundtrip(&r, out, sizeof(out)), 255);
    fill(name, 'a', 256 - strlen("docker.io/library/") - strlen(":latest"));
    ck_assert_int_lt(parse_guarded(name, strlen(name), &r, &err), 0);
    ck_assert_str_eq(err.msg, "invalid image reference: canonical form longer than 255 bytes");
    fill(in, 'x', 1000);
    ck_assert_int_lt(parse_guarded(in, strlen(in), &r, &err), 0);

    /* Host labels: 63 ok, 64 refused. */
    fill(name, 'h', 63);
    snprintf(in, sizeof(in), "%s.com/x", name);
    ck_assert_int_eq(parse_guarded(in, strlen(in), &r, &err), 0);
    fill(name, 'h', 64);
    snprintf(in, sizeof(in), "%s.com/x", name);
    ck_assert_int_lt(parse_guarded(in, strlen(in), &r, &err), 0);
}
END_TEST

START_TEST(test_ports)
{
    static const char *const ok[] = {"h.c:1/x", "h.c:9/x", "h.c:10/x", "h.c:65535/x",
                                     "localhost:443/x"};
    static const char *const no[] = {"h.c:0/x",  "h.c:65536/x", "h.c:00/x",        "h.c:01/x",
                                     "h.c:+1/x", "h.c:1:2/x",   "h.c:4294967297/x"};
    struct imgref r;
    struct bx_err err;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(parse_guarded(ok[i], strlen(ok[i]), &r, &err) == 0, "%s", ok[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(parse_guarded(no[i], strlen(no[i]), &r, &err) < 0, "%s", no[i]);
}
END_TEST

START_TEST(test_format_small_buffer)
{
    struct imgref r;
    struct bx_err err;
    char buf[64];
    const char *want = "docker.io/library/busybox:latest";
    size_t n = strlen(want);
    ck_assert_int_eq(parse_guarded("busybox", 7, &r, &err), 0);
    memset(buf, 'Z', sizeof(buf));
    ck_assert_int_lt(imgref_format(&r, buf, n), 0);
    ck_assert_str_eq(buf, ""); /* never a truncated reference */
    ck_assert_int_eq(buf[n], 'Z');
    ck_assert_int_eq(imgref_format(&r, buf, n + 1), (int)n);
    ck_assert_str_eq(buf, want);
    ck_assert_int_lt(imgref_format(&r, buf, 0), 0);
    ck_assert_int_lt(imgref_format(&r, NULL, 10), 0);
    ck_assert_int_lt(imgref_format(NULL, buf, sizeof(buf)), 0);
}
END_TEST

/* A struct filled by hand never formats into something that is not the
 * canonical reference of exactly those fields. */
START_TEST(test_format_refuses_bad_structs)
{
    struct imgref r;
    char buf[2 * IMGREF_MAX];
    struct {
        const char *registry, *repository, *tag, *digest;
    } cases[] = {
        {"docker.io", "busybox", "latest", ""},         /* not canonical: library/ */
        {"docker.io", "library/busybox", "", ""},       /* no tag nor digest */
        {"index.docker.io", "library/x", "latest", ""}, /* not canonical */
        {"", "library/busybox", "latest", ""},
        {"docker.io", "", "latest", ""},
        {"-o", "x", "latest", ""},
        {"docker.io", "library/x", "--help", ""},
        {"docker.io", "library/x", "latest", "sha256:abc"},
        {"docker.io", "library/x y", "latest", ""},
        {"docker.io", "library/x", "a b", ""},
        {"docker.io", "library/x:y", "latest", ""},
        {"docker.io", "library/x", "latest@sha256:" D64, ""},
        {"localhost/x", "y", "latest", ""},
        {"docker.io", "../../etc", "latest", ""},
        {"docker.io", "library/x", "latest", "sha256:" D64 "\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&r, 0, sizeof(r));
        strcpy(r.registry, cases[i].registry);
        strcpy(r.repository, cases[i].repository);
        strcpy(r.tag, cases[i].tag);
        strcpy(r.digest, cases[i].digest);
        memset(buf, 'Z', sizeof(buf));
        ck_assert_msg(imgref_format(&r, buf, sizeof(buf)) < 0, "case %zu formatted as %s", i, buf);
        ck_assert_str_eq(buf, "");
    }
    /* Fields without a terminating NUL. */
    memset(&r, 0, sizeof(r));
    strcpy(r.registry, "docker.io");
    memset(r.repository, 'a', sizeof(r.repository));
    strcpy(r.tag, "latest");
    ck_assert_int_lt(imgref_format(&r, buf, sizeof(buf)), 0);
    memset(&r, 'a', sizeof(r));
    ck_assert_int_lt(imgref_format(&r, buf, sizeof(buf)), 0);
}
END_TEST

static Suite *imgref_suite(void)
{
    Suite *s = suite_create("imgref");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_valid, 0, (int)(sizeof(valid) / sizeof(valid[0])));
    tcase_add_loop_test(tc, test_invalid, 0, (int)(sizeof(invalid) / sizeof(invalid[0])));
    tcase_add_test(tc, test_error_messages);
    tcase_add_test(tc, test_control_bytes_everywhere);
    tcase_add_test(tc, test_explicit_length);
    tcase_add_test(tc, test_lengths);
    tcase_add_test(tc, test_ports);
    tcase_add_test(tc, test_format_small_buffer);
    tcase_add_test(tc, test_format_refuses_bad_structs);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(imgref_suite);
}
