/* cli_http.c: URL parsing and the response side (head, Content-Length,
 * chunked and read-to-close bodies, NDJSON lines, WebSocket frames), fed
 * from memory one byte per read and whole. */
#include <check.h>
#include <string.h>
#include <sys/types.h>

#include "cli_http.h"

struct src {
    const char *p;
    size_t n, pos, step;
};

static ssize_t rd(void *ctx, void *buf, size_t n)
{
    struct src *s = ctx;
    size_t k = s->n - s->pos;
    if (k > n)
        k = n;
    if (s->step && k > s->step)
        k = s->step;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    return (ssize_t)k;
}

/* The whole body of answer text, read with each step (1 byte, whole);
 * returns the status and body, or -1 on an error. */
static int body_of(const char *text, size_t len, struct sbuf *out)
{
    int status = -1;
    for (size_t step = 0; step <= 1; step++) {
        struct src s = {text, len, 0, step};
        struct cli_resp r;
        struct bx_err err;
        cli_resp_init(&r, rd, &s);
        sbuf_reset(out);
        if (cli_resp_head(&r, &err) < 0 || cli_resp_read_all(&r, out, &err) < 0)
            return -1;
        status = r.status;
    }
    return status;
}

START_TEST(urls)
{
    struct cli_target t;
    ck_assert_int_eq(cli_target_parse(&t, "http://127.0.0.1:8080", NULL), 0);
    ck_assert(!t.is_unix && t.port == 8080 && !strcmp(t.host, "127.0.0.1") && !t.prefix[0]);
    ck_assert_str_eq(t.hostport, "127.0.0.1:8080");
    ck_assert_int_eq(cli_target_parse(&t, "http://localhost/base/", NULL), 0);
    ck_assert(t.port == 80 && !strcmp(t.host, "127.0.0.1") && !strcmp(t.prefix, "/base"));
    ck_assert_str_eq(t.hostport, "localhost");
    ck_assert_int_eq(cli_target_parse(&t, "http://[::1]:9", NULL), 0);
    ck_assert(t.port == 9 && !strcmp(t.host, "::1"));
    ck_assert_int_eq(cli_target_parse(&t, "unix:///run/boxer.sock", NULL), 0);
    ck_assert(t.is_unix && !strcmp(t.path, "/run/boxer.sock") && !strcmp(t.hostport, "localhost"));
    ck_assert_int_eq(cli_target_parse(&t, "unix://relative", NULL), -1);
    ck_assert_int_eq(cli_target_parse(&t, "https://127.0.0.1", NULL), -1);
    ck_assert_int_eq(cli_target_parse(&t, "http://example.com", NULL), -1); /* no resolving */
    ck_assert_int_eq(cli_target_parse(&t, "http://127.0.0.1:0", NULL), -1);
    ck_assert_int_eq(cli_target_parse(&t, "http://127.0.0.1:65536", NULL), -1);
    ck_assert_int_eq(cli_target_parse(&t, "http://[::1", NULL), -1);
}
END_TEST

START_TEST(bodies)
{
    struct sbuf b;
    sbuf_init(&b, 1024);
    static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    ck_assert_int_eq(body_of(cl, sizeof(cl) - 1, &b), 200);
    ck_assert(b.len == 5 && !memcmp(b.data, "hello", 5));
    static const char ch[] = "HTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: y\r\n\r\n";
    ck_assert_int_eq(body_of(ch, sizeof(ch) - 1, &b), 404);
    ck_assert(b.len == 13 && !memcmp(b.data, "abc0123456789", 13));
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nto the end";
    ck_assert_int_eq(body_of(cont, sizeof(cont) - 1, &b), 200);
    ck_assert(b.len == 10 && !memcmp(b.data, "to the end", 10));
    static const char nc[] = "HTTP/1.1 204 No Content\r\n\r\n";
    ck_assert_int_eq(body_of(nc, sizeof(nc) - 1, &b), 204);
    ck_assert_int_eq((int)b.len, 0);
    /* cut short, bad chunk, conflicting lengths, not HTTP, too big */
    static const char *bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(body_of(bad[i], strlen(bad[i]), &b) == -1, "case %zu", i);
    sbuf_free(&b);
}
END_TEST

START_TEST(lines)
{
    static const char t[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "5\r\none\r\n\r\n8\r\ntwo-long\r\n6\r\n-line\n\r\n4\r\nlast\r\n0\r\n\r\n";
    struct src s = {t, sizeof(t) - 1, 0, 1};
    struct cli_resp r;
    struct sbuf l;
    int trunc;
    sbuf_init(&l, 64);
    cli_resp_init(&r, rd, &s);
    ck_assert_int_eq(cli_resp_head(&r, NULL), 0);
    ck_assert_int_eq(cli_resp_line(&r, &l, 8, &trunc, NULL), 1);
    ck_assert(!trunc && l.len == 3 && !memcmp(l.data, "one", 3)); /* CR dropped */
    ck_assert_int_eq(cli_resp_line(&r, &l, 8, &trunc, NULL), 1);
    ck_assert(trunc && l.len == 8 && !memcmp(l.data, "two-long", 8)); /* cut at the cap */
    ck_assert_int_eq(cli_resp_line(&r, &l, 8, &trunc, NULL), 1);
    ck_assert(!trunc && l.len == 4 && !memcmp(l.data, "last", 4)); /* no newline at the end */
    ck_assert_int_eq(cli_resp_line(&r, &l, 8, &trunc, NULL), 0);
    sbuf_free(&l);
}
END_TEST

START_TEST(head_limit)
{
    struct sbuf t, b;
    sbuf_init(&t, 1u << 20);
    sbuf_init(&b, 16);
    ck_assert_int_eq(sbuf_appendf(&t, "HTTP/1.1 200 OK\r\n"), 0);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(sbuf_appendf(&t, "X-Pad-%d: %04000d\r\n", i, 0), 0);
    ck_assert_int_eq(sbuf_appendf(&t, "\r\n"), 0);
    ck_assert_int_eq(body_of(t.data, t.len, &b), -1); /* 80 KB of head */
    sbuf_free(&t);
    sbuf_free(&b);
}
END_TEST

START_TEST(ws_frames)
{
    static const char t[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Sec-WebSocket-Accept: abc=\r\n\r\n"
                            "\x82\x02hi\x01\x01" "a\x80\x01" "b\x89\x00\x88\x02\x03\xe8"
                            "\x82\x85xxxx";
    struct src s = {t, sizeof(t) - 1, 0, 1};
    struct cli_resp r;
    struct sbuf p;
    int op, fin;
    sbuf_init(&p, 1024);
    cli_resp_init(&r, rd, &s);
    ck_assert_int_eq(cli_resp_head(&r, NULL), 0);
    ck_assert_int_eq(r.status, 101);
    ck_assert_str_eq(r.ws_accept, "abc=");
    ck_assert_int_eq(cli_ws_read_frame(&r, &op, &fin, &p, 16, NULL), 1);
    ck_assert(op == 2 && fin && p.len == 2 && !memcmp(p.data, "hi", 2));
    ck_assert_int_eq(cli_ws_read_frame(&r, &op, &fin, &p, 16, NULL), 1);
    ck_assert(op == 1 && !fin && p.len == 1);
    ck_assert_int_eq(cli_ws_read_frame(&r, &op, &fin, &p, 16, NULL), 1);
    ck_assert(op == 0 && fin && p.len == 1 && p.data[0] == 'b');
    ck_assert_int_eq(cli_ws_read_frame(&r, &op, &fin, &p, 16, NULL), 1);
    ck_assert(op == 9 && p.len == 0);
    ck_assert_int_eq(cli_ws_read_frame(&r, &op, &fin, &p, 16, NULL), 1);
    ck_assert(op == 8 && p.len == 2);
    ck_assert_int_eq(cli_ws_read_frame(&r, &op, &fin, &p, 16, NULL), -1); /* masked */
    sbuf_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_http");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, urls);
    tcase_add_test(tc, bodies);
    tcase_add_test(tc, lines);
    tcase_add_test(tc, head_limit);
    tcase_add_test(tc, ws_frames);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
