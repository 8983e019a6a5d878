/* Tests for ws.c: SHA-1 and the handshake (RFC 6455's own example key), the
 * frame decoder (every stream decoded whole, split in two at every byte and
 * one byte at a time, each piece right before a guard page: the transcript
 * of callbacks and the verdict must not depend on the split), the limits,
 * and the encoder. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "guard.h"
#include "httpparse.h"
#include "sha1.h"
#include "util.h"
#include "ws.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: requirement failed: %s", __FILE__, __LINE__, #cond);              \
    } while (0)

/* ---- SHA-1 and accept ---- */

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

START_TEST(test_sha1)
{
    unsigned char d[SHA1_LEN];
    char h[41];
    char big[1000];
    sha1("abc", 3, d);
    hex(d, SHA1_LEN, h);
    ck_assert_str_eq(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1("", 0, d);
    hex(d, SHA1_LEN, h);
    ck_assert_str_eq(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    hex(d, SHA1_LEN, h);
    ck_assert_str_eq(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    memset(big, 'a', sizeof(big));
    sha1(big, sizeof(big), d);
    hex(d, SHA1_LEN, h);
    ck_assert_str_eq(h, "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}
END_TEST

START_TEST(test_accept_rfc_example)
{
    char acc[WS_ACCEPT_LEN + 1];
    ws_accept_value("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    ck_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

/* ---- handshake ---- */

static int handshake(const char *head, char *acc, struct bx_err *err)
{
    struct http_request req;
    struct http_limits lim = {8192, 32768, 64};
    size_t scan = 0;
    int r = http_parse_request(head, strlen(head), &lim, &scan, &req, err);
    REQUIRE(r > 0);
    return ws_handshake_check(&req, acc, err);
}

#define GOOD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static const struct {
    const char *head;
    int status; /* 0: accepted */
} hs_cases[] = {
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     0},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     0},
    /* no key, a bad key, two keys */
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400},
    /* versions */
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 8\r\n\r\n",
     426},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY "\r\n",
     426},
    /* not an upgrade */
    {"GET /a HTTP/1.1\r\nHost: x\r\n" GOOD_KEY "Sec-WebSocket-Version: 13\r\n\r\n", 426},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     426},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocketx\r\nConnection: Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     426},
    /* method, version, body */
    {"POST /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400},
    {"GET /a HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400},
    {"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" GOOD_KEY
     "Sec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\n",
     400},
};

START_TEST(test_handshake)
{
    char acc[WS_ACCEPT_LEN + 1] = "";
    struct bx_err err;
    int r = handshake(hs_cases[_i].head, acc, &err);
    if (hs_cases[_i].status == 0) {
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    } else {
        ck_assert_int_eq(r, -1);
        ck_assert_int_eq(err.status, hs_cases[_i].status);
    }
}
END_TEST

/* ---- decoder ---- */

/* Appends one client frame: b0 is FIN|RSV|opcode, masked unless nomask. */
static void frame(struct sbuf *sb, unsigned b0, const char *data, size_t len, int nomask)
{
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    unsigned char h[14];
    size_t n = 0;
    h[n++] = (unsigned char)b0;
    if (len < 126) {
        h[n++] = (unsigned char)((nomask ? 0 : 0x80) | len);
    } else if (len <= 0xFFFF) {
        h[n++] = (unsigned char)((nomask ? 0 : 0x80) | 126);
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = (unsigned char)((nomask ? 0 : 0x80) | 127);
        for (int i = 7; i >= 0; i--)
            h[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (!nomask) {
        memcpy(h + n, key, 4);
        n += 4;
    }
    REQUIRE(sbuf_append(sb, h, n) == 0);
    for (size_t i = 0; i < len; i++)
        REQUIRE(sbuf_putc(sb, (char)(data[i] ^ (nomask ? 0 : key[i & 3]))) == 0);
}

struct rec {
    struct sbuf out;
    int fail_text;
    int open;
    size_t bin_bytes;
};

static int r_bin(void *ctx, const char *d, size_t n, int fin)
{
    struct rec *r = ctx;
    /* pieces are merged: the transcript must not depend on the split */
    if (!r->open)
        REQUIRE(sbuf_append(&r->out, "B:", 2) == 0);
    r->bin_bytes += n;
    if (r->bin_bytes <= 1000)
        REQUIRE(sbuf_append(&r->out, d, n) == 0);
    r->open = !fin;
    if (fin) {
        if (r->bin_bytes > 1000)
            REQUIRE(sbuf_appendf(&r->out, "%zu bytes", r->bin_bytes) == 0);
        r->bin_bytes = 0;
        REQUIRE(sbuf_append(&r->out, "|", 1) == 0);
    }
    return 0;
}

static int r_text(void *ctx, const char *d, size_t n)
{
    struct rec *r = ctx;
    REQUIRE(d[n] == 0);
    if (r->fail_text)
        return -1;
    REQUIRE(sbuf_appendf(&r->out, "T:%.*s|", (int)n, d) == 0);
    return 0;
}

static int r_ping(void *ctx, const char *d, size_t n)
{
    struct rec *r = ctx;
    REQUIRE(n <= 125);
    REQUIRE(sbuf_appendf(&r->out, "P:%.*s|", (int)n, d) == 0);
    return 0;
}

static int r_pong(void *ctx, const char *d, size_t n)
{
    struct rec *r = ctx;
    REQUIRE(sbuf_appendf(&r->out, "O:%.*s|", (int)n, d) == 0);
    return 0;
}

static int r_close(void *ctx, int code, const char *d, size_t n)
{
    struct rec *r = ctx;
    REQUIRE(sbuf_appendf(&r->out, "C:%d:%.*s|", code, (int)n, d) == 0);
    return 0;
}

static const struct ws_callbacks rcb = {r_bin, r_text, r_ping, r_pong, r_close};

/* Decodes s fed in pieces (first piece `first` bytes, then `chunk`);
 * returns the transcript plus "=OK" or "=ERR<code>". */
static char *decode(const struct sbuf *s, size_t first, size_t chunk, uint64_t max_msg,
                    size_t max_text)
{
    struct ws_limits lim = {max_msg, max_text};
    struct ws_parser *p = NULL;
    struct rec r;
    struct bx_err err;
    size_t off = 0;
    int rc = 0;
    memset(&r, 0, sizeof(r));
    sbuf_init(&r.out, 1 << 24);
    REQUIRE(ws_parser_new(&p, &lim, &rcb, &r, &err) == 0);
    while (rc == 0 && off < s->len) {
        size_t n = off == 0 && first ? first : chunk;
        struct guard_buf g;
        char *piece;
        if (n > s->len - off)
            n = s->len - off;
        piece = guard_copy(&g, s->data + off, n);
        rc = ws_feed(p, piece, n, &err);
        guard_free(&g);
        off += n;
    }
    if (rc == 0)
        REQUIRE(sbuf_appendf(&r.out, "=OK") == 0);
    else
        REQUIRE(sbuf_appendf(&r.out, "=ERR%d", ws_close_code(p)) == 0);
    REQUIRE(sbuf_putc(&r.out, 0) == 0);
    ws_parser_free(&p);
    return sbuf_steal(&r.out, NULL);
}

/* Every split gives the same answer, which must be `want`. */
static void expect(const struct sbuf *s, const char *want)
{
    char *whole = decode(s, 0, s->len ? s->len : 1, 1 << 20, 4096);
    ck_assert_str_eq(whole, want);
    for (size_t k = 1; k < s->len; k++) {
        char *two = decode(s, k, s->len, 1 << 20, 4096);
        if (strcmp(two, whole) != 0)
            ck_abort_msg("split at %zu: %s != %s", k, two, whole);
        free(two);
    }
    {
        char *one = decode(s, 0, 1, 1 << 20, 4096);
        ck_assert_str_eq(one, whole);
        free(one);
    }
    free(whole);
}

#define FIN 0x80

START_TEST(test_frames_ok)
{
    struct sbuf s;
    char big[70000];
    sbuf_init(&s, 1 << 22);
    frame(&s, FIN | WS_OP_TEXT, "hello", 5, 0);
    frame(&s, FIN | WS_OP_BINARY, "\x05\x01\xff", 3, 0);
    frame(&s, FIN | WS_OP_PING, "pi", 2, 0);
    frame(&s, WS_OP_TEXT, "fr", 2, 0);
    frame(&s, FIN | WS_OP_PONG, "", 0, 0); /* control inside a fragmented message */
    frame(&s, WS_OP_CONT, "ag", 2, 0);
    frame(&s, FIN | WS_OP_CONT, "\xc3\xa9", 2, 0);
    frame(&s, WS_OP_BINARY, "ab", 2, 0);
    frame(&s, FIN | WS_OP_CONT, "", 0, 0);
    frame(&s, FIN | WS_OP_BINARY, "", 0, 0);
    frame(&s, FIN | WS_OP_TEXT, "", 0, 0);
    frame(&s, FIN | WS_OP_CLOSE, "\x03\xe8" "bye", 5, 0);
    frame(&s, FIN | WS_OP_TEXT, "ignored", 7, 0);
    expect(&s, "T:hello|B:\x05\x01\xff|P:pi|O:|T:frag\xc3\xa9|B:ab|B:|T:|C:1000:bye|=OK");
    sbuf_reset(&s);
    /* 16- and 64-bit lengths */
    memset(big, 'x', sizeof(big));
    frame(&s, FIN | WS_OP_BINARY, big, 300, 0);
    frame(&s, FIN | WS_OP_BINARY, big, 70000, 0);
    {
        char *r = decode(&s, 0, 4096, 1 << 20, 4096);
        ck_assert_str_eq(r + 2 + 300, "|B:70000 bytes|=OK");
        free(r);
    }
    sbuf_free(&s);
}
END_TEST

static void expect1(unsigned b0, const char *data, size_t len, int nomask, const char *want)
{
    struct sbuf s;
    sbuf_init(&s, 1 << 20);
    frame(&s, b0, data, len, nomask);
    expect(&s, want);
    sbuf_free(&s);
}

START_TEST(test_frames_bad)
{
    struct sbuf s;
    char big[200];
    memset(big, 'x', sizeof(big));
    expect1(FIN | WS_OP_TEXT, "hi", 2, 1, "=ERR1002");            /* unmasked */
    expect1(FIN | 0x40 | WS_OP_TEXT, "hi", 2, 0, "=ERR1002");     /* RSV1 */
    expect1(FIN | 0x10 | WS_OP_BINARY, "hi", 2, 0, "=ERR1002");   /* RSV3 */
    expect1(FIN | 0x3, "hi", 2, 0, "=ERR1002");                   /* reserved data opcode */
    expect1(FIN | 0xB, "hi", 2, 0, "=ERR1002");                   /* reserved control opcode */
    expect1(FIN | WS_OP_CONT, "hi", 2, 0, "=ERR1002");            /* continuation first */
    expect1(WS_OP_PING, "hi", 2, 0, "=ERR1002");                  /* fragmented control */
    expect1(FIN | WS_OP_PING, big, 126, 0, "=ERR1002");           /* control over 125 */
    expect1(FIN | WS_OP_CLOSE, "\x03", 1, 0, "=ERR1002");         /* 1-byte close */
    expect1(FIN | WS_OP_CLOSE, "\x03\xed", 2, 0, "=ERR1002");     /* code 1005 */
    expect1(FIN | WS_OP_CLOSE, "\x03\xe7", 2, 0, "=ERR1002");     /* code 999 */
    expect1(FIN | WS_OP_CLOSE, "\x13\x88", 2, 0, "=ERR1002");     /* code 5000 */
    expect1(FIN | WS_OP_CLOSE, "\x0f\xa0", 2, 0, "C:4000:|=OK");  /* code 4000 */
    expect1(FIN | WS_OP_CLOSE, "", 0, 0, "C:1005:|=OK");
    expect1(FIN | WS_OP_CLOSE, "\x03\xe8\xff", 3, 0, "=ERR1007"); /* reason not UTF-8 */
    expect1(FIN | WS_OP_TEXT, "a\xff", 2, 0, "=ERR1007");
    expect1(FIN | WS_OP_TEXT, "\xc0\xaf", 2, 0, "=ERR1007");      /* overlong */
    expect1(FIN | WS_OP_TEXT, "\xed\xa0\x80", 3, 0, "=ERR1007");  /* surrogate */
    expect1(FIN | WS_OP_TEXT, "\xf4\x90\x80\x80", 4, 0, "=ERR1007"); /* over U+10FFFF */
    expect1(FIN | WS_OP_TEXT, "\xe2\x82", 2, 0, "=ERR1007");      /* cut short */
    expect1(FIN | WS_OP_TEXT, "\xf0\x9f\x98\x80", 4, 0, "T:\xf0\x9f\x98\x80|=OK");
    /* a character split across fragments is fine; one left open is not */
    sbuf_init(&s, 1 << 20);
    frame(&s, WS_OP_TEXT, "\xe2", 1, 0);
    frame(&s, FIN | WS_OP_CONT, "\x82\xac", 2, 0);
    expect(&s, "T:\xe2\x82\xac|=OK");
    sbuf_reset(&s);
    frame(&s, WS_OP_TEXT, "a", 1, 0);
    frame(&s, FIN | WS_OP_TEXT, "b", 1, 0); /* new message inside a fragmented one */
    expect(&s, "=ERR1002");
    sbuf_reset(&s);
    /* a 64-bit length with its top bit set */
    {
        static const char h[] = "\x82\xff\x80\0\0\0\0\0\0\x01" "abcd";
        sbuf_append(&s, h, sizeof(h) - 1);
        expect(&s, "=ERR1002");
    }
    sbuf_free(&s);
}
END_TEST

START_TEST(test_limits)
{
    struct sbuf s;
    char big[5000];
    char *r;
    memset(big, 'x', sizeof(big));
    sbuf_init(&s, 1 << 20);
    /* text over max_text (4096), refused from the header alone */
    frame(&s, FIN | WS_OP_TEXT, big, 4097, 0);
    r = decode(&s, 0, 14, 1 << 20, 4096);
    ck_assert_str_eq(r, "=ERR1009");
    free(r);
    sbuf_reset(&s);
    /* text exactly at max_text passes */
    frame(&s, FIN | WS_OP_TEXT, big, 4096, 0);
    r = decode(&s, 0, 7, 1 << 20, 4096);
    ck_assert_int_eq(strlen(r), 2 + 4096 + 1 + 3);
    free(r);
    sbuf_reset(&s);
    /* a fragmented text message that adds up past max_text */
    frame(&s, WS_OP_TEXT, big, 3000, 0);
    frame(&s, FIN | WS_OP_CONT, big, 1097, 0);
    r = decode(&s, 0, 1, 1 << 20, 4096);
    ck_assert_str_eq(r, "=ERR1009");
    free(r);
    sbuf_reset(&s);
    /* binary: max_message over all fragments */
    frame(&s, WS_OP_BINARY, big, 3000, 0);
    frame(&s, FIN | WS_OP_CONT, big, 1001, 0);
    r = decode(&s, 0, 100, 4000, 4096);
    ck_assert_str_eq(r + strlen(r) - 8, "=ERR1009");
    free(r);
    sbuf_reset(&s);
    /* a huge announced length never waits for its payload */
    {
        static const char h[] = "\x82\xff\0\0\0\x01\0\0\0\0" "abcd";
        sbuf_append(&s, h, sizeof(h) - 1);
        r = decode(&s, 0, 1, 1 << 20, 4096);
        ck_assert_str_eq(r, "=ERR1009");
        free(r);
    }
    sbuf_free(&s);
}
END_TEST

START_TEST(test_callback_refuses)
{
    struct ws_limits lim = {1 << 20, 4096};
    struct ws_parser *p = NULL;
    struct rec r;
    struct bx_err err;
    struct sbuf s;
    memset(&r, 0, sizeof(r));
    sbuf_init(&r.out, 1 << 20);
    sbuf_init(&s, 1 << 20);
    r.fail_text = 1;
    frame(&s, FIN | WS_OP_TEXT, "x", 1, 0);
    ck_assert_int_eq(ws_parser_new(&p, &lim, &rcb, &r, &err), 0);
    ck_assert_int_eq(ws_feed(p, s.data, s.len, &err), -1);
    ck_assert_int_eq(ws_close_code(p), WS_CLOSE_INTERNAL);
    /* a failed parser stays failed */
    ck_assert_int_eq(ws_feed(p, s.data, 0, &err), -1);
    ws_parser_free(&p);
    sbuf_free(&s);
    sbuf_free(&r.out);
}
END_TEST

START_TEST(test_encoder)
{
    struct sbuf s;
    unsigned char h[10];
    char reason[300];
    sbuf_init(&s, 1 << 20);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    ck_assert_uint_eq(h[0], 0x82);
    ck_assert_uint_eq(h[1], 125);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    ck_assert_uint_eq(h[1], 126);
    ck_assert_uint_eq(h[2], 0);
    ck_assert_uint_eq(h[3], 126);
    ck_assert_uint_eq(ws_frame_header(h, WS_OP_BINARY, 65536), 10);
    ck_assert_uint_eq(h[1], 127);
    ck_assert_uint_eq(h[7], 1);
    ck_assert_int_eq(ws_frame_append(&s, WS_OP_TEXT, "hey", 3), 0);
    ck_assert_uint_eq(s.len, 5);
    ck_assert_int_eq(memcmp(s.data, "\x81\x03hey", 5), 0);
    sbuf_reset(&s);
    ck_assert_int_eq(ws_close_append(&s, 1009, "too big"), 0);
    ck_assert_int_eq(memcmp(s.data, "\x88\x09\x03\xf1too big", 11), 0);
    sbuf_reset(&s);
    /* a long reason is cut at a character boundary to fit 125 bytes */
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 122, "\xe2\x82\xac", 3);
    reason[299] = 0;
    ck_assert_int_eq(ws_close_append(&s, 1000, reason), 0);
    ck_assert_uint_eq((unsigned char)s.data[1], 124);
    ck_assert(ws_utf8_valid(s.data + 4, s.len - 4));
    sbuf_free(&s);
}
END_TEST

static Suite *ws_suite(void)
{
    Suite *s = suite_create("ws");
    TCase *t = tcase_create("ws");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_sha1);
    tcase_add_test(t, test_accept_rfc_example);
    tcase_add_loop_test(t, test_handshake, 0, (int)BX_ARRAY_LEN(hs_cases));
    tcase_add_test(t, test_frames_ok);
    tcase_add_test(t, test_frames_bad);
    tcase_add_test(t, test_limits);
    tcase_add_test(t, test_callback_refuses);
    tcase_add_test(t, test_encoder);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return check_main(ws_suite);
}
