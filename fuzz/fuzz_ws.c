/* libFuzzer harness for the WebSocket frame decoder and handshake check.
 *
 * Input layout:
 *   byte 0     chunk size for a chunked feed (mod 17, 0 = 1 byte)
 *   bytes 1-2  split position (big endian, mod stream length + 1)
 *   rest       the client's byte stream
 * The stream is decoded whole, in two pieces and in chunks (and one byte at
 * a time when short); the transcript of callbacks and the verdict (close
 * code) must be the same every time (abort if not).  Each piece is an
 * exact-size heap copy so ASan sees any over-read.  Callbacks check the
 * decoder's promises: text is valid UTF-8 and NUL-terminated, control
 * payloads at most 125 bytes, close codes valid.  Limits are small (1 KiB
 * text, 4 KiB messages) so the fuzzer reaches both sides.  The whole input
 * is also tried as a request head for ws_handshake_check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"
#include "util.h"
#include "ws.h"

static void need(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_ws: invariant broken: %s\n", what);
        abort();
    }
}

struct rec {
    struct sbuf out;
    int open;
};

static int r_bin(void *ctx, const char *d, size_t n, int fin)
{
    struct rec *r = ctx;
    if (!r->open)
        need(sbuf_append(&r->out, "B", 1) == 0, "oom");
    need(sbuf_append(&r->out, d, n) == 0, "oom");
    r->open = !fin;
    if (fin)
        need(sbuf_append(&r->out, "|", 1) == 0, "oom");
    return 0;
}

static int r_text(void *ctx, const char *d, size_t n)
{
    struct rec *r = ctx;
    need(d[n] == 0, "text terminated");
    need(n <= 1024, "text within max_text");
    need(ws_utf8_valid(d, n), "text is UTF-8");
    need(!r->open, "text inside a binary message");
    need(sbuf_append(&r->out, "T", 1) == 0 && sbuf_append(&r->out, d, n) == 0, "oom");
    return 0;
}

static int r_ctl(struct rec *r, char tag, const char *d, size_t n)
{
    need(n <= WS_CONTROL_MAX, "control payload within 125 bytes");
    need(sbuf_putc(&r->out, tag) == 0 && sbuf_append(&r->out, d, n) == 0, "oom");
    return 0;
}

static int r_ping(void *ctx, const char *d, size_t n)
{
    return r_ctl(ctx, 'P', d, n);
}

static int r_pong(void *ctx, const char *d, size_t n)
{
    return r_ctl(ctx, 'O', d, n);
}

static int r_close(void *ctx, int code, const char *d, size_t n)
{
    struct rec *r = ctx;
    need(code == WS_CLOSE_NO_STATUS || (code >= 1000 && code < 5000), "close code range");
    need(ws_utf8_valid(d, n), "close reason is UTF-8");
    need(sbuf_appendf(&r->out, "C%d", code) == 0, "oom");
    return r_ctl(r, ':', d, n);
}

static const struct ws_callbacks cbs = {r_bin, r_text, r_ping, r_pong, r_close};

static void run(struct sbuf *out, const uint8_t *s, size_t n, size_t first, size_t chunk)
{
    struct ws_limits lim = {4096, 1024};
    struct ws_parser *p = NULL;
    struct rec r;
    struct bx_err err;
    size_t off = 0;
    int rc = 0;
    memset(&r, 0, sizeof(r));
    sbuf_init(&r.out, 1 << 26);
    need(ws_parser_new(&p, &lim, &cbs, &r, &err) == 0, "oom");
    while (rc == 0 && off < n) {
        size_t len = off == 0 && first ? first : chunk;
        char *piece;
        if (len > n - off)
            len = n - off;
        piece = malloc(len ? len : 1);
        need(piece != NULL, "oom");
        memcpy(piece, s + off, len);
        rc = ws_feed(p, piece, len, &err);
        free(piece);
        off += len;
    }
    if (rc == 0) {
        need(sbuf_appendf(&r.out, "=OK%d", ws_closed(p)) == 0, "oom");
    } else {
        int code = ws_close_code(p);
        need(code == 1002 || code == 1007 || code == 1009, "close code of a failure");
        need(sbuf_appendf(&r.out, "=ERR%d", code) == 0, "oom");
    }
    ws_parser_free(&p);
    *out = r.out;
}

static void same(const struct sbuf *a, const struct sbuf *b, const char *what)
{
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0) {
        fprintf(stderr, "fuzz_ws: %s differs from whole feed\n", what);
        abort();
    }
}

static void try_handshake(const uint8_t *data, size_t size)
{
    struct http_request req;
    struct http_limits lim = {8192, 32768, 64};
    size_t scan = 0;
    struct bx_err err;
    char acc[WS_ACCEPT_LEN + 1];
    if (http_parse_request((const char *)data, size, &lim, &scan, &req, &err) <= 0)
        return;
    if (ws_handshake_check(&req, acc, &err) == 0)
        need(strlen(acc) == WS_ACCEPT_LEN, "accept length");
    else
        need(err.status == 400 || err.status == 426, "handshake error status");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chunk, split, n;
    const uint8_t *s;
    struct sbuf whole, r;

    try_handshake(data, size);
    if (size < 3)
        return 0;
    chunk = data[0] % 17;
    if (chunk == 0)
        chunk = 1;
    split = (size_t)data[1] << 8 | data[2];
    s = data + 3;
    n = size - 3;
    split %= n + 1;
    run(&whole, s, n, 0, n ? n : 1);
    run(&r, s, n, split, n ? n : 1);
    same(&whole, &r, "two-piece feed");
    sbuf_free(&r);
    run(&r, s, n, 0, chunk);
    same(&whole, &r, "chunked feed");
    sbuf_free(&r);
    if (n <= 4096) {
        run(&r, s, n, 0, 1);
        same(&whole, &r, "byte-at-a-time feed");
        sbuf_free(&r);
    }
    sbuf_free(&whole);
    return 0;
}
