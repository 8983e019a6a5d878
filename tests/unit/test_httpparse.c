/* Tests for httpparse.c.  Every input is copied right before an unreadable
 * page (guard.h), so a read past the end crashes the test. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "guard.h"
#include "httpparse.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

struct input {
    const char *s;
    size_t len;
};

/* Parses a guarded copy; the request's pointers stay valid until guard_free. */
static int parse_guarded(struct guard_buf *g, const char *s, size_t len,
                         const struct http_limits *lim, struct http_request *req,
                         struct bx_err *err)
{
    size_t scan = 0;
    char *b = guard_copy(g, s, len);
    bx_err_clear(err);
    return http_parse_request(b, len, lim, &scan, req, err);
}

/* ---- good heads ---- */

static const struct input good_heads[] = {
    {S("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")},
    {S("GET /files?path=a%2Fb.txt HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")},
    {S("POST /run HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nContent-Type: "
       "application/json\r\n\r\n")},
    {S("POST /files HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")},
    {S("POST /files HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD \r\n\r\n")},
    {S("GET / HTTP/1.0\r\n\r\n")},
    {S("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")},
    {S("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n\r\n")},
    {S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")},
    {S("GET /a?b?c=d HTTP/1.1\r\nHost: h\r\n\r\n")},
    {S("GET /? HTTP/1.1\r\nHost: h\r\n\r\n")},
    {S("POST /run HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n")},
    {S("POST /run HTTP/1.1\r\nHost: h\r\nContent-Length: 5 , 5\r\n\r\n")},
    {S("POST /run HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")},
    {S("POST /run HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n")},
    {S("PUT /run HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Tab:\tv\tw\t\r\n\r\n")},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9\r\n\r\n")},
    {S("GET / HTTP/1.1\r\nHost:\r\n\r\n")},
    {S("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")},
    {S("M-SEARCH!#$%&'*+.^_`|~09 /x HTTP/1.1\r\nHost: h\r\n\r\n")},
    {S("GET /a/b;c=d/%41~!$&'()*+,;=:@[]{}|^`\"<>\\ HTTP/1.1\r\nHost: h\r\n\r\n")},
    {S("DELETE /x HTTP/1.1\r\nhOsT: h\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n")},
};

START_TEST(test_good_heads)
{
    for (size_t i = 0; i < sizeof(good_heads) / sizeof(good_heads[0]); i++) {
        struct guard_buf g = {0};
        struct http_request req;
        struct bx_err err;
        int rc = parse_guarded(&g, good_heads[i].s, good_heads[i].len, NULL, &req, &err);
        ck_assert_msg(rc == (int)good_heads[i].len, "head %zu: rc %d (%d %s)", i, rc, err.status,
                      err.msg);
        guard_free(&g);
    }
}
END_TEST

START_TEST(test_fields)
{
    struct guard_buf g = {0};
    struct http_request req;
    struct bx_err err;
    const struct http_header *h;
    static const char head[] = "POST /files?path=a%20b&x HTTP/1.1\r\n"
                               "Host:  example.com:80 \r\n"
                               "Content-Length: 42\r\n"
                               "X-Thing:\t spaced value \t\r\n"
                               "Expect: 100-Continue\r\n\r\n";
    int rc = parse_guarded(&g, S(head), NULL, &req, &err);
    ck_assert_int_eq(rc, (int)strlen(head));
    ck_assert_int_eq(req.method, HTTP_POST);
    ck_assert_uint_eq(req.method_len, 4);
    ck_assert(memcmp(req.method_str, "POST", 4) == 0);
    ck_assert_uint_eq(req.target_len, strlen("/files?path=a%20b&x"));
    ck_assert(memcmp(req.path, "/files", req.path_len) == 0 && req.path_len == 6);
    ck_assert_ptr_nonnull(req.query);
    ck_assert_uint_eq(req.query_len, strlen("path=a%20b&x"));
    ck_assert(memcmp(req.query, "path=a%20b&x", req.query_len) == 0);
    ck_assert_int_eq(req.minor_version, 1);
    ck_assert_uint_eq(req.num_headers, 4);
    ck_assert_int_eq(req.has_content_length, 1);
    ck_assert_uint_eq(req.content_length, 42);
    ck_assert_int_eq(req.chunked, 0);
    ck_assert_int_eq(req.keep_alive, 1);
    ck_assert_int_eq(req.expect_continue, 1);
    h = http_find_header(&req, "x-THING");
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(h->value_len, strlen("spaced value"));
    ck_assert(memcmp(h->value, "spaced value", h->value_len) == 0);
    h = http_find_header(&req, "host");
    ck_assert_ptr_nonnull(h);
    ck_assert(h->value_len == 14 && memcmp(h->value, "example.com:80", 14) == 0);
    ck_assert_ptr_null(http_find_header(&req, "x-thin"));
    ck_assert_ptr_null(http_find_header(&req, "x-thingy"));
    guard_free(&g);

    rc = parse_guarded(&g, S("GET /plain HTTP/1.0\r\n\r\n"), NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.method, HTTP_GET);
    ck_assert_ptr_null(req.query);
    ck_assert_uint_eq(req.path_len, 6);
    ck_assert_int_eq(req.minor_version, 0);
    ck_assert_int_eq(req.keep_alive, 0);
    ck_assert_int_eq(req.has_content_length, 0);
    guard_free(&g);

    rc = parse_guarded(&g, S("GET /? HTTP/1.1\r\nHost: h\r\n\r\n"), NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_ptr_nonnull(req.query);
    ck_assert_uint_eq(req.query_len, 0);
    guard_free(&g);

    rc = parse_guarded(&g, S("get / HTTP/1.1\r\nHost: h\r\n\r\n"), NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.method, HTTP_OTHER);
    guard_free(&g);

    rc = parse_guarded(&g, S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.method, HTTP_OPTIONS);
    ck_assert(req.path_len == 1 && req.path[0] == '*');
    guard_free(&g);

    /* keep-alive rules */
    rc = parse_guarded(&g, S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.keep_alive, 1);
    guard_free(&g);
    rc = parse_guarded(&g, S("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n"), NULL,
                       &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.keep_alive, 0);
    guard_free(&g);
    rc = parse_guarded(&g,
                       S("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
                       NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.keep_alive, 0);
    guard_free(&g);
    rc = parse_guarded(&g, S("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n"), NULL, &req,
                       &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.keep_alive, 1);
    guard_free(&g);

    /* chunked framing and expect in 1.0 (ignored there) */
    rc = parse_guarded(&g, S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
                       NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.chunked, 1);
    ck_assert_int_eq(req.has_content_length, 0);
    guard_free(&g);
    rc = parse_guarded(&g, S("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), NULL, &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_int_eq(req.expect_continue, 0);
    guard_free(&g);

    /* largest Content-Length (19 digits) */
    rc = parse_guarded(
        &g, S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n"), NULL,
        &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert(req.content_length == 9999999999999999999ULL);
    guard_free(&g);
}
END_TEST

/* ---- bad heads ---- */

static const struct {
    const char *s;
    size_t len;
    int status;
} bad_heads[] = {
    /* request line */
    {S("\r\n\r\n"), 400},
    {S("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /  HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 400},
    {S(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\n\r\n"), 400}, /* no Host in 1.1 */
    {S("GET HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /\r\nHost: h\r\n\r\n"), 400},
    {S("GET / \r\nHost: h\r\n\r\n"), 400},
    {S("GET x HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET / http/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/11\r\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.x\r\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\rHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505},
    {S("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505},
    {S("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), 505},
    {S("GET / HTTP/3.1\r\nHost: h\r\n\r\n"), 505},
    /* line endings and NUL */
    {S("GET / HTTP/1.1\nHost: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\n\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"), 400},
    {S("GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n"), 400},
    {S("\0"), 400},
    {S("\n"), 400},
    /* header syntax */
    {S("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tfolded\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nBad(Name): v\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX\x80: v\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1b[31m\r\n\r\n"), 400},
    /* Host */
    {S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400},
    {S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"), 400},
    {S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    /* Content-Length */
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5.0\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000000000000000\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ,5\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5, 7\r\n\r\n"), 400},
    /* smuggling: Transfer-Encoding */
    {S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
     400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 501},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 501},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"), 501},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), 501},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n"), 501},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n"),
     400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"), 400},
    {S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0b"
       "chunked\r\n\r\n"),
     400},
    {S("POST / HTTP/1.1\r\nHost: h\r\n Transfer-Encoding: chunked\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\nContent-Length: 3\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n\r\n"), 400},
    {S("POST / HTTP/1.1\r\nHost: h\r\ncontent_length: 5\r\n\r\n"), 400},
    /* Expect */
    {S("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n"), 417},
    {S("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"), 417},
    {S("POST / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n"), 417},
};

START_TEST(test_bad_heads)
{
    for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
        struct guard_buf g = {0};
        struct http_request req;
        struct bx_err err;
        int rc = parse_guarded(&g, bad_heads[i].s, bad_heads[i].len, NULL, &req, &err);
        ck_assert_msg(rc == HTTP_PARSE_ERROR && err.status == bad_heads[i].status,
                      "bad head %zu: rc %d status %d (want %d) %s", i, rc, err.status,
                      bad_heads[i].status, err.msg);
        ck_assert(err.msg[0] != '\0');
        guard_free(&g);
    }
}
END_TEST

/* Feeds each prefix (1..len bytes) in its own guarded copy, keeping
 * *scan_from across calls as a server would.  Returns the final result. */
static int feed_bytewise(const char *s, size_t len, const struct http_limits *lim,
                         struct bx_err *err)
{
    size_t scan = 0;
    int rc = HTTP_PARSE_INCOMPLETE;
    struct http_request req;
    for (size_t k = 1; k <= len; k++) {
        struct guard_buf g = {0};
        char *b = guard_copy(&g, s, k);
        bx_err_clear(err);
        rc = http_parse_request(b, k, lim, &scan, &req, err);
        guard_free(&g);
        if (rc != HTTP_PARSE_INCOMPLETE)
            return rc;
        /* Every byte seen once: the next call starts where this one ended. */
        ck_assert_uint_eq(scan, k);
    }
    return rc;
}

START_TEST(test_incremental)
{
    for (size_t i = 0; i < sizeof(good_heads) / sizeof(good_heads[0]); i++) {
        struct bx_err err;
        int rc = feed_bytewise(good_heads[i].s, good_heads[i].len, NULL, &err);
        ck_assert_msg(rc == (int)good_heads[i].len, "head %zu: rc %d", i, rc);
    }
    /* Bad heads fail the same way however they are split. */
    for (size_t i = 0; i < sizeof(bad_heads) / sizeof(bad_heads[0]); i++) {
        struct bx_err err;
        int rc = feed_bytewise(bad_heads[i].s, bad_heads[i].len, NULL, &err);
        ck_assert_msg(rc == HTTP_PARSE_ERROR && err.status == bad_heads[i].status,
                      "bad head %zu bytewise: rc %d status %d", i, rc, err.status);
    }
}
END_TEST

START_TEST(test_incomplete)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for (size_t k = 0; k < strlen(head); k++) {
        struct guard_buf g = {0};
        struct http_request req;
        struct bx_err err;
        int rc = parse_guarded(&g, head, k, NULL, &req, &err);
        ck_assert_int_eq(rc, HTTP_PARSE_INCOMPLETE);
        guard_free(&g);
    }
}
END_TEST

START_TEST(test_pipelined)
{
    static const char two[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                              "POST /b?q HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
                              "GET /c";
    size_t first = strlen("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t second = strlen("POST /b?q HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    struct guard_buf g = {0};
    struct http_request req;
    struct bx_err err;
    size_t scan = 0;
    char *b = guard_copy(&g, S(two));
    size_t len = sizeof(two) - 1;
    int rc = http_parse_request(b, len, NULL, &scan, &req, &err);
    ck_assert_int_eq(rc, (int)first);
    ck_assert(req.path_len == 2 && memcmp(req.path, "/a", 2) == 0);
    ck_assert_uint_eq(scan, 0);
    rc = http_parse_request(b + first, len - first, NULL, &scan, &req, &err);
    ck_assert_int_eq(rc, (int)second);
    ck_assert_int_eq(req.method, HTTP_POST);
    ck_assert(req.path_len == 2 && memcmp(req.path, "/b", 2) == 0);
    ck_assert(req.query_len == 1 && req.query[0] == 'q');
    rc = http_parse_request(b + first + second, len - first - second, NULL, &scan, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_INCOMPLETE);
    guard_free(&g);

    /* A body right after the head is never looked at, whatever it holds. */
    static const char body[] =
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n\0\n\r\x01 x";
    rc = parse_guarded(&g, S(body), NULL, &req, &err);
    ck_assert_int_eq(rc, (int)(sizeof(body) - 1 - 6));
    guard_free(&g);
}
END_TEST

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_request_line_limit)
{
    struct http_limits lim = {.max_request_line = 64, .max_header_bytes = 1024, .max_headers = 8};
    struct bx_err err;
    struct http_request req;
    struct guard_buf g = {0};
    char buf[2048];
    int rc;
    /* Request line of exactly 64 bytes: accepted. */
    char *a = repeat('a', 64 - strlen("GET / HTTP/1.1"));
    int n = snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", a);
    rc = parse_guarded(&g, buf, (size_t)n, &lim, &req, &err);
    ck_assert_int_eq(rc, n);
    ck_assert_uint_eq(req.method_len + req.target_len + 10, 64);
    guard_free(&g);
    free(a);
    /* 65 bytes: 414. */
    a = repeat('a', 65 - strlen("GET / HTTP/1.1"));
    n = snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", a);
    rc = parse_guarded(&g, buf, (size_t)n, &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 414);
    guard_free(&g);
    ck_assert_int_eq(feed_bytewise(buf, (size_t)n, &lim, &err), HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 414);
    free(a);

    /* Detected early: 66 bytes without any line end are enough, 65 are not
     * (the 65th and 66th could still be CRLF). */
    a = repeat('a', 200);
    memcpy(a, "GET /", 5);
    rc = parse_guarded(&g, a, 65, &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_INCOMPLETE);
    guard_free(&g);
    rc = parse_guarded(&g, a, 66, &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 414);
    guard_free(&g);
    rc = parse_guarded(&g, a, 200, &lim, &req, &err);
    ck_assert_int_eq(err.status, 414);
    guard_free(&g);
    /* ...and byte by byte it fails exactly at byte 66. */
    {
        size_t scan = 0;
        for (size_t k = 1; k <= 200; k++) {
            guard_copy(&g, a, k);
            rc = http_parse_request(g.data, k, &lim, &scan, &req, &err);
            guard_free(&g);
            if (k < 66) {
                ck_assert_int_eq(rc, HTTP_PARSE_INCOMPLETE);
            } else {
                ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
                ck_assert_int_eq(err.status, 414);
                break;
            }
        }
    }
    free(a);
}
END_TEST

START_TEST(test_header_limits)
{
    struct http_limits lim = {.max_request_line = 64, .max_header_bytes = 256, .max_headers = 4};
    struct bx_err err;
    struct http_request req;
    struct guard_buf g = {0};
    char buf[4096];
    int rc, n;

    /* Head of exactly max_header_bytes: accepted; one more byte: 431. */
    static const char pre[] = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    size_t fill = 256 - strlen(pre) - 4;
    char *v = repeat('v', fill);
    n = snprintf(buf, sizeof(buf), "%s%s\r\n\r\n", pre, v);
    ck_assert_int_eq(n, 256);
    rc = parse_guarded(&g, buf, (size_t)n, &lim, &req, &err);
    ck_assert_int_eq(rc, 256);
    guard_free(&g);
    free(v);
    v = repeat('v', fill + 1);
    n = snprintf(buf, sizeof(buf), "%s%s\r\n\r\n", pre, v);
    rc = parse_guarded(&g, buf, (size_t)n, &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 431);
    guard_free(&g);
    ck_assert_int_eq(feed_bytewise(buf, (size_t)n, &lim, &err), HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 431);
    free(v);

    /* Early: 256 bytes with no end of head yet is already too much. */
    v = repeat('v', 1000);
    n = snprintf(buf, sizeof(buf), "%s%s", pre, v);
    rc = parse_guarded(&g, buf, 255, &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_INCOMPLETE);
    guard_free(&g);
    rc = parse_guarded(&g, buf, 256, &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 431);
    guard_free(&g);
    rc = parse_guarded(&g, buf, (size_t)n, &lim, &req, &err);
    ck_assert_int_eq(err.status, 431);
    guard_free(&g);
    free(v);

    /* Header count: 4 accepted, 5 refused. */
    rc = parse_guarded(&g, S("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), &lim,
                       &req, &err);
    ck_assert_int_gt(rc, 0);
    ck_assert_uint_eq(req.num_headers, 4);
    guard_free(&g);
    rc = parse_guarded(&g, S("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
                       &lim, &req, &err);
    ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
    ck_assert_int_eq(err.status, 431);
    guard_free(&g);

    /* max_headers above HTTP_MAX_HEADERS is clamped to the array size. */
    {
        struct http_limits big = {
            .max_request_line = 8192, .max_header_bytes = 65536, .max_headers = 1000};
        size_t off = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\n");
        for (int i = 1; i < HTTP_MAX_HEADERS; i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X%d: v\r\n", i);
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\r\n");
        rc = parse_guarded(&g, buf, off, &big, &req, &err);
        ck_assert_int_eq(rc, (int)off);
        ck_assert_uint_eq(req.num_headers, HTTP_MAX_HEADERS);
        guard_free(&g);
        off -= 2;
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "Y: v\r\n\r\n");
        rc = parse_guarded(&g, buf, off, &big, &req, &err);
        ck_assert_int_eq(rc, HTTP_PARSE_ERROR);
        ck_assert_int_eq(err.status, 431);
        guard_free(&g);
    }
}
END_TEST

/* ---- chunked ---- */

static const struct {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
    size_t consumed; /* bytes of `in` that belong to the body */
} good_chunked[] = {
    {S("0\r\n\r\n"), S(""), 5},
    {S("5\r\nhello\r\n0\r\n\r\n"), S("hello"), 15},
    {S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), S("hello world"), 26},
    {S("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"), S("0123456789abcdefghij"), 35},
    {S("0005\r\n\r\n\0\n\r\r\n0\r\n\r\n"), S("\r\n\0\n\r"), 18},
    {S("3;name=value;x=\"q d\"\r\nabc\r\n0;last\r\n\r\n"), S("abc"), 37},
    {S("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nOther: x y\r\n\r\nnext"), S("abc"), 39},
    {S("1\r\nx\r\n0000000000000000\r\n\r\n"), S("x"), 26},
};

/* Runs the decoder over [in, in+len) split at `split` (each part in its own
 * guarded copy); in_place decodes into the input buffer itself. */
static int chunked_split(const char *in, size_t len, size_t split, int in_place, char *out,
                         size_t *out_len, size_t *consumed, struct bx_err *err)
{
    struct http_chunked c;
    size_t parts[2][2] = {{0, split}, {split, len - split}};
    int rc = 0;
    http_chunked_init(&c);
    *out_len = 0;
    *consumed = 0;
    for (int p = 0; p < 2; p++) {
        struct guard_buf g = {0};
        char tmp[256];
        size_t cons = 0, olen = 0;
        char *b = guard_copy(&g, in + parts[p][0], parts[p][1]);
        ck_assert_uint_le(parts[p][1], sizeof(tmp));
        rc = http_chunked_decode(&c, b, parts[p][1], &cons, in_place ? b : tmp, &olen, err);
        ck_assert_uint_le(cons, parts[p][1]);
        ck_assert_uint_le(olen, cons);
        memcpy(out + *out_len, in_place ? b : tmp, olen);
        *out_len += olen;
        *consumed += cons;
        guard_free(&g);
        if (rc != 0)
            return rc;
        ck_assert_uint_eq(cons, parts[p][1]);
    }
    return rc;
}

START_TEST(test_chunked_good)
{
    for (size_t i = 0; i < sizeof(good_chunked) / sizeof(good_chunked[0]); i++) {
        size_t len = good_chunked[i].in_len;
        for (size_t split = 0; split <= len; split++) {
            for (int in_place = 0; in_place < 2; in_place++) {
                char out[256];
                size_t out_len, consumed;
                struct bx_err err;
                int rc = chunked_split(good_chunked[i].in, len, split, in_place, out, &out_len,
                                       &consumed, &err);
                ck_assert_msg(rc == 1, "chunked %zu split %zu: rc %d", i, split, rc);
                ck_assert_uint_eq(consumed, good_chunked[i].consumed);
                ck_assert_uint_eq(out_len, good_chunked[i].out_len);
                ck_assert(memcmp(out, good_chunked[i].out, out_len) == 0);
            }
        }
        /* one byte per call */
        {
            struct http_chunked c;
            char out[256];
            size_t out_len = 0, total = 0;
            int rc = 0;
            http_chunked_init(&c);
            for (size_t k = 0; k < len && rc == 0; k++) {
                struct guard_buf g = {0};
                size_t cons, olen;
                char *b = guard_copy(&g, good_chunked[i].in + k, 1);
                rc = http_chunked_decode(&c, b, 1, &cons, out + out_len, &olen, NULL);
                ck_assert_uint_eq(cons, 1);
                out_len += olen;
                total += cons;
                guard_free(&g);
            }
            ck_assert_int_eq(rc, 1);
            ck_assert_uint_eq(total, good_chunked[i].consumed);
            ck_assert_uint_eq(out_len, good_chunked[i].out_len);
            ck_assert(memcmp(out, good_chunked[i].out, out_len) == 0);
            /* done stays done and consumes nothing more */
            {
                size_t cons = 99, olen = 99;
                ck_assert_int_eq(http_chunked_decode(&c, "0\r\n\r\n", 5, &cons, out, &olen, NULL),
                                 1);
                ck_assert_uint_eq(cons, 0);
                ck_assert_uint_eq(olen, 0);
            }
        }
    }
}
END_TEST

static const struct input bad_chunked[] = {
    {S("\r\n")},
    {S("x\r\n")},
    {S("-1\r\n")},
    {S("+1\r\nx\r\n0\r\n\r\n")},
    {S("0x1\r\nx\r\n0\r\n\r\n")},
    {S(" 1\r\nx\r\n0\r\n\r\n")},
    {S("1 \r\nx\r\n0\r\n\r\n")},
    {S("1\nx\r\n0\r\n\r\n")},
    {S("1\r\r\nx\r\n0\r\n\r\n")},
    {S("1\r\nxy\r\n0\r\n\r\n")},
    {S("1\r\nx\n0\r\n\r\n")},
    {S("1\r\nx\r0\r\n\r\n")},
    {S("1\r\nx0\r\n\r\n")},
    {S("0\r\n\n")},
    {S("0\r\n\r\r")},
    {S("0\r\nX: a\nb\r\n\r\n")},
    {S("0\r\nX: a\0\r\n\r\n")},
    {S("0\r\n folded\r\n\r\n")},
    {S("0\r\n:x\r\n\r\n")},
    {S("1;a\nb\r\nx\r\n0\r\n\r\n")},
    {S("1;a\0\r\nx\r\n0\r\n\r\n")},
    {S("10000000000000000\r\n")},      /* 17 digits */
    {S("00000000000000001\r\nx\r\n")}, /* 17 digits, even with leading zeros */
};

START_TEST(test_chunked_bad)
{
    for (size_t i = 0; i < sizeof(bad_chunked) / sizeof(bad_chunked[0]); i++) {
        size_t len = bad_chunked[i].len;
        for (size_t split = 0; split <= len; split++) {
            char out[256];
            size_t out_len, consumed;
            struct bx_err err = {0};
            int rc = chunked_split(bad_chunked[i].s, len, split, split & 1, out, &out_len,
                                   &consumed, &err);
            ck_assert_msg(rc == -1, "bad chunked %zu split %zu: rc %d", i, split, rc);
            ck_assert_int_eq(err.status, 400);
        }
    }
}
END_TEST

static int chunked_whole(const char *in, size_t len, char *out, size_t *out_len, size_t *consumed,
                         struct bx_err *err)
{
    struct http_chunked c;
    struct guard_buf g = {0};
    int rc;
    char *b = guard_copy(&g, in, len);
    http_chunked_init(&c);
    rc = http_chunked_decode(&c, b, len, consumed, out, out_len, err);
    guard_free(&g);
    return rc;
}

static char *rep(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

START_TEST(test_chunked_limits)
{
    static char in[20000], out[20000], fill[9000];
    size_t out_len, consumed;
    struct bx_err err;
    int n;

    /* 16 hex digits: the largest size is accepted and then needs data. */
    ck_assert_int_eq(chunked_whole(S("FFFFFFFFFFFFFFFF\r\nabc"), out, &out_len, &consumed, &err),
                     0);
    ck_assert_uint_eq(out_len, 3);
    ck_assert_int_eq(chunked_whole(S("fFfFfFfFfFfFfFfF0\r\n"), out, &out_len, &consumed, &err), -1);

    /* extensions: 1024 bytes fine, 1025 not (the ';' is not counted) */
    n = snprintf(in, sizeof(in), "1;%s\r\nx\r\n0\r\n\r\n", rep(fill, 'e', 1024));
    ck_assert_int_eq(chunked_whole(in, (size_t)n, out, &out_len, &consumed, &err), 1);
    n = snprintf(in, sizeof(in), "1;%s\r\nx\r\n0\r\n\r\n", rep(fill, 'e', 1025));
    ck_assert_int_eq(chunked_whole(in, (size_t)n, out, &out_len, &consumed, &err), -1);
    ck_assert_int_eq(err.status, 400);

    /* trailers: 8192 bytes incl. the final CRLF fine, one more not */
    n = snprintf(in, sizeof(in), "0\r\nX: %s\r\n\r\n", rep(fill, 't', 8192 - 7));
    ck_assert_int_eq(chunked_whole(in, (size_t)n, out, &out_len, &consumed, &err), 1);
    ck_assert_uint_eq(consumed, (size_t)n);
    n = snprintf(in, sizeof(in), "0\r\nX: %s\r\n\r\n", rep(fill, 't', 8192 - 6));
    ck_assert_int_eq(chunked_whole(in, (size_t)n, out, &out_len, &consumed, &err), -1);

    /* Endless trailer lines are bounded too. */
    {
        size_t off = (size_t)snprintf(in, sizeof(in), "0\r\n");
        while (off + 6 < sizeof(in))
            off += (size_t)snprintf(in + off, sizeof(in) - off, "A: b\r\n");
        ck_assert_int_eq(chunked_whole(in, off, out, &out_len, &consumed, &err), -1);
        ck_assert_uint_le(consumed, 8192 + 3);
    }

    /* A failed decoder stays failed. */
    {
        struct http_chunked c;
        http_chunked_init(&c);
        ck_assert_int_eq(http_chunked_decode(&c, "z", 1, &consumed, out, &out_len, NULL), -1);
        ck_assert_int_eq(http_chunked_decode(&c, "0\r\n\r\n", 5, &consumed, out, &out_len, &err),
                         -1);
        ck_assert_uint_eq(consumed, 0);
    }
}
END_TEST

/* ---- percent decoding ---- */

static const struct {
    const char *query;
    const char *name;
    size_t cap;
    int rc;
    const char *value;
} query_cases[] = {
    {"path=a.txt", "path", 64, 1, "a.txt"},
    {"x=1&path=dir%2Ffile+name.txt&y=2", "path", 64, 1, "dir/file name.txt"},
    {"path=%41%62%63", "path", 64, 1, "Abc"},
    {"path=%e2%82%ac", "path", 64, 1, "\xe2\x82\xac"},
    {"path=a%2Bb", "path", 64, 1, "a+b"},
    {"path=", "path", 64, 1, ""},
    {"path", "path", 64, 1, ""},
    {"a=1&path&b=2", "path", 64, 1, ""},
    {"path=a=b", "path", 64, 1, "a=b"},
    {"&&path=x&&", "path", 64, 1, "x"},
    {"", "path", 64, 0, NULL},
    {"paths=x", "path", 64, 0, NULL},
    {"pat=x", "path", 64, 0, NULL},
    {"xpath=x", "path", 64, 0, NULL},
    {"Path=x", "path", 64, 0, NULL},
    {"p%61th=x", "path", 64, 0, NULL}, /* names match raw, undecoded */
    {"a=%zz&path=ok", "path", 64, 1, "ok"},
    {"path=%00", "path", 64, -1, NULL},
    {"path=a%00b", "path", 64, -1, NULL},
    {"path=%0", "path", 64, -1, NULL},
    {"path=%", "path", 64, -1, NULL},
    {"path=%g1", "path", 64, -1, NULL},
    {"path=%1g", "path", 64, -1, NULL},
    {"path=%%41", "path", 64, -1, NULL},
    {"path=%+1", "path", 64, -1, NULL},
    {"path=a&path=b", "path", 64, -1, NULL},
    {"path=abc", "path", 4, 1, "abc"},
    {"path=abcd", "path", 4, -1, NULL},
    {"path=%41%41%41%41", "path", 4, -1, NULL},
    {"path=", "path", 1, 1, ""},
    {"path=", "path", 0, -1, NULL},
};

START_TEST(test_query_param)
{
    for (size_t i = 0; i < sizeof(query_cases) / sizeof(query_cases[0]); i++) {
        struct guard_buf g = {0};
        struct bx_err err = {0};
        char out[64];
        size_t out_len = 999;
        size_t qlen = strlen(query_cases[i].query);
        char *q = guard_copy(&g, query_cases[i].query, qlen);
        int rc =
            http_query_param(q, qlen, query_cases[i].name, out, query_cases[i].cap, &out_len, &err);
        ck_assert_msg(rc == query_cases[i].rc, "query %zu (%s): rc %d", i, query_cases[i].query,
                      rc);
        if (rc == 1) {
            ck_assert_uint_eq(out_len, strlen(query_cases[i].value));
            ck_assert(memcmp(out, query_cases[i].value, out_len + 1) == 0);
        } else if (rc < 0) {
            ck_assert_int_eq(err.status, 400);
        }
        guard_free(&g);
    }
    /* A raw NUL inside the value is refused too. */
    {
        struct guard_buf g = {0};
        struct bx_err err = {0};
        char out[64];
        size_t out_len;
        char *q = guard_copy(&g, S("path=a\0b"));
        ck_assert_int_eq(http_query_param(q, 8, "path", out, sizeof(out), &out_len, &err), -1);
        ck_assert_int_eq(err.status, 400);
        guard_free(&g);
    }
    /* No query at all. */
    {
        char out[8];
        size_t out_len;
        ck_assert_int_eq(http_query_param(NULL, 0, "path", out, sizeof(out), &out_len, NULL), 0);
    }
}
END_TEST

static const struct {
    const char *path;
    size_t cap;
    int rc;
    const char *value;
} path_cases[] = {
    {"/files", 64, 0, "/files"},
    {"/a%20b", 64, 0, "/a b"},
    {"/a+b", 64, 0, "/a+b"}, /* '+' is literal in paths */
    {"/%7e%7E", 64, 0, "/~~"},
    {"/a%2fb", 64, 0, "/a/b"},
    {"/%00", 64, -1, NULL},
    {"/%0", 64, -1, NULL},
    {"/%", 64, -1, NULL},
    {"/%xy", 64, -1, NULL},
    {"/abc", 5, 0, "/abc"},
    {"/abcd", 5, -1, NULL},
    {"", 1, 0, ""},
};

START_TEST(test_decode_path)
{
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        struct guard_buf g = {0};
        struct bx_err err = {0};
        char out[64];
        size_t out_len = 999;
        size_t len = strlen(path_cases[i].path);
        char *p = guard_copy(&g, path_cases[i].path, len);
        int rc = http_decode_path(p, len, out, path_cases[i].cap, &out_len, &err);
        ck_assert_msg(rc == path_cases[i].rc, "path %zu (%s): rc %d", i, path_cases[i].path, rc);
        if (rc == 0) {
            ck_assert_uint_eq(out_len, strlen(path_cases[i].value));
            ck_assert_str_eq(out, path_cases[i].value);
        } else {
            ck_assert_int_eq(err.status, 400);
        }
        guard_free(&g);
    }
    {
        struct guard_buf g = {0};
        char out[8];
        size_t out_len;
        char *p = guard_copy(&g, S("/a\0"));
        ck_assert_int_eq(http_decode_path(p, 3, out, sizeof(out), &out_len, NULL), -1);
        guard_free(&g);
    }
}
END_TEST

START_TEST(test_media_type)
{
    static const char *const json_ok[] = {"application/json", "Application/JSON",
                                          "application/json; charset=utf-8",
                                          "application/json;charset=UTF-8",
                                          "application/json ;x=y"};
    static const char *const json_bad[] = {"", "text/plain", "application/jsonx",
                                           "application/json-seq", "application/js",
                                           "text/plain; application/json",
                                           "multipart/form-data; boundary=x"};
    for (size_t i = 0; i < BX_ARRAY_LEN(json_ok); i++)
        ck_assert_msg(http_media_type_is(json_ok[i], strlen(json_ok[i]), "application/json"),
                      "%s", json_ok[i]);
    for (size_t i = 0; i < BX_ARRAY_LEN(json_bad); i++)
        ck_assert_msg(!http_media_type_is(json_bad[i], strlen(json_bad[i]), "application/json"),
                      "%s", json_bad[i]);
    ck_assert(http_media_type_is("multipart/form-data; boundary=x", 31, "multipart/form-data"));
    ck_assert(!http_media_type_is(NULL, 0, "application/json"));
    /* The length is honoured: a value cut before its end does not match. */
    ck_assert(!http_media_type_is("application/json", 11, "application/json"));
}
END_TEST

START_TEST(test_host_loopback)
{
    static const char *const ok[] = {"localhost", "LOCALHOST", "localhost:8080", "127.0.0.1",
                                     "127.0.0.1:1", "[::1]", "[::1]:65535"};
    static const char *const bad[] = {"", "evil.example", "evil.example:8080",
                                      "localhost.evil.example", "localhostx", "127.0.0.1.nip.io",
                                      "127.0.0.10", "127.0.0.1:", "127.0.0.1:80x",
                                      "127.0.0.1:1234567", "[::1", "::1", "x", "localhost:8080:1",
                                      "0.0.0.0", "10.0.0.1"};
    for (size_t i = 0; i < BX_ARRAY_LEN(ok); i++)
        ck_assert_msg(http_host_is_loopback(ok[i], strlen(ok[i])), "%s", ok[i]);
    for (size_t i = 0; i < BX_ARRAY_LEN(bad); i++)
        ck_assert_msg(!http_host_is_loopback(bad[i], strlen(bad[i])), "%s", bad[i]);
    ck_assert(!http_host_is_loopback(NULL, 0));
}
END_TEST

START_TEST(test_host_listed)
{
    char *list[] = {"boxer.lan", "ci.example:9000"};
    ck_assert(http_host_listed("boxer.lan", 9, list, 2));
    ck_assert(http_host_listed("BOXER.LAN:8080", 14, list, 2));
    ck_assert(http_host_listed("ci.example:9000", 15, list, 2));
    ck_assert(!http_host_listed("ci.example:9001", 15, list, 2));
    ck_assert(!http_host_listed("ci.example", 10, list, 2));
    ck_assert(!http_host_listed("boxer.lan.evil", 14, list, 2));
    ck_assert(!http_host_listed("xboxer.lan", 10, list, 2));
    ck_assert(!http_host_listed("", 0, list, 2));
    ck_assert(!http_host_listed(NULL, 0, list, 2));
    ck_assert(!http_host_listed("boxer.lan", 9, list, 0));
}
END_TEST

START_TEST(test_origin_allowed)
{
    char *list[] = {"https://app.example", "http://tool.local:3000"};
    /* Same origin: http:// plus the Host header. */
    ck_assert(http_origin_allowed("http://127.0.0.1:8080", 21, "127.0.0.1:8080", 14, NULL, 0));
    ck_assert(http_origin_allowed("http://localhost:8080", 21, "LOCALHOST:8080", 14, NULL, 0));
    ck_assert(!http_origin_allowed("http://127.0.0.1:8081", 21, "127.0.0.1:8080", 14, NULL, 0));
    ck_assert(!http_origin_allowed("https://127.0.0.1:8080", 22, "127.0.0.1:8080", 14, NULL, 0));
    ck_assert(!http_origin_allowed("http://evil.example", 19, "127.0.0.1:8080", 14, NULL, 0));
    ck_assert(!http_origin_allowed("null", 4, "127.0.0.1:8080", 14, NULL, 0));
    ck_assert(!http_origin_allowed("http://", 7, "", 0, NULL, 0));
    ck_assert(!http_origin_allowed("http://127.0.0.1:8080/", 22, "127.0.0.1:8080", 14, NULL, 0));
    /* Listed ones, whole strings only. */
    ck_assert(http_origin_allowed("https://app.example", 19, "127.0.0.1:8080", 14, list, 2));
    ck_assert(http_origin_allowed("http://tool.local:3000", 22, NULL, 0, list, 2));
    ck_assert(!http_origin_allowed("https://app.example.evil", 24, "h", 1, list, 2));
    ck_assert(!http_origin_allowed("https://app.exampl", 18, "h", 1, list, 2));
    ck_assert(!http_origin_allowed(NULL, 0, "h", 1, list, 2));
}
END_TEST

static Suite *httpparse_suite(void)
{
    Suite *s = suite_create("httpparse");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_good_heads);
    tcase_add_test(tc, test_fields);
    tcase_add_test(tc, test_bad_heads);
    tcase_add_test(tc, test_incremental);
    tcase_add_test(tc, test_incomplete);
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_request_line_limit);
    tcase_add_test(tc, test_header_limits);
    tcase_add_test(tc, test_chunked_good);
    tcase_add_test(tc, test_chunked_bad);
    tcase_add_test(tc, test_chunked_limits);
    tcase_add_test(tc, test_query_param);
    tcase_add_test(tc, test_decode_path);
    tcase_add_test(tc, test_media_type);
    tcase_add_test(tc, test_host_loopback);
    tcase_add_test(tc, test_host_listed);
    tcase_add_test(tc, test_origin_allowed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(httpparse_suite);
}
