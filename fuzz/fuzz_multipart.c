/* libFuzzer harness for the multipart parser.
 *
 * Input layout:
 *   byte 0            boundary length - 1 (mod 70)
 *   next len bytes    the boundary (bytes that are not bchars are mapped onto
 *                     bchars, so seeds can spell the boundary literally)
 *   2 bytes           split position (big endian, mod body length + 1)
 *   1 byte            chunk size for a third, chunked feed (mod 17, 0 = 1 byte)
 *   rest              the body
 * The body is fed whole, in two pieces at the split position and in chunks;
 * the callbacks' output and the verdict must be the same every time (abort if
 * not).  Each piece is an exact-size heap copy so ASan sees any over-read.
 * Byte-at-a-time feeding also checks that part data is never held back by
 * more than a delimiter's length.  The whole input is also tried as a
 * Content-Type value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"
#include "util.h"

static const char bchars[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";

struct rec {
    struct sbuf out;
    int in_part;
    size_t part_data;  /* data bytes delivered in the current part */
    size_t fed;        /* body bytes fed so far (updated by the driver) */
    size_t part_start; /* `fed` when the part began (byte-at-a-time mode only) */
};

static void need(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_multipart: invariant broken: %s\n", what);
        abort();
    }
}

static int rec_begin(void *ctx, const char *name, size_t name_len, int has_filename,
                     struct bx_err *err)
{
    struct rec *r = ctx;
    (void)err;
    need(name_len <= MP_MAX_NAME && name[name_len] == '\0', "name bounded and terminated");
    need(!r->in_part, "begin inside a part");
    r->in_part = 1;
    r->part_data = 0;
    r->part_start = r->fed;
    need(sbuf_appendf(&r->out, "{B %zu ", name_len) == 0, "oom");
    need(sbuf_append(&r->out, name, name_len) == 0, "oom");
    need(sbuf_appendf(&r->out, " %d}", has_filename) == 0, "oom");
    return 0;
}

static int rec_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct rec *r = ctx;
    (void)err;
    need(len > 0, "empty data callback");
    need(r->in_part, "data outside a part");
    r->part_data += len;
    need(sbuf_append(&r->out, data, len) == 0, "oom");
    return 0;
}

static int rec_end(void *ctx, struct bx_err *err)
{
    struct rec *r = ctx;
    (void)err;
    need(r->in_part, "end outside a part");
    r->in_part = 0;
    need(sbuf_append(&r->out, "{E}", 3) == 0, "oom");
    return 0;
}

static const struct mp_callbacks cbs = {rec_begin, rec_data, rec_end};

/* Feeds body in pieces of `chunk` bytes (after a first piece of `first`
 * bytes when first != 0); leaves the transcript and verdict in r->out. */
static void run(struct rec *r, const char *boundary, size_t blen, const uint8_t *body, size_t n,
                size_t first, size_t chunk)
{
    struct mp_parser *p = NULL;
    struct bx_err err;
    size_t off = 0;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    sbuf_init(&r->out, 1 << 26);
    bx_err_clear(&err);
    need(mp_new(&p, boundary, blen, &cbs, r, &err) == 0, "mp_new refused a valid boundary");
    while (rc == 0 && off < n) {
        size_t len = off == 0 && first ? first : chunk;
        char *piece;
        if (len > n - off)
            len = n - off;
        piece = malloc(len);
        need(piece != NULL, "oom");
        memcpy(piece, body + off, len);
        rc = mp_feed(p, piece, len, &err);
        free(piece);
        off += len;
        r->fed = off;
        /* Only a delimiter prefix (at most blen + 4 bytes) may be held back;
         * the part's own bytes before that must all have been delivered. */
        if (rc == 0 && chunk == 1 && r->in_part && off - r->part_start > blen + 4)
            need(r->part_data >= off - r->part_start - (blen + 4), "part data held back");
    }
    if (rc == 0)
        rc = mp_finish(p, &err);
    if (rc == 0)
        need(sbuf_appendf(&r->out, "|OK") == 0, "oom");
    else
        need(sbuf_appendf(&r->out, "|ERR %d %s", err.status, err.msg) == 0, "oom");
    need(rc == 0 || err.status == 400, "error status");
    mp_free(&p);
}

static void same(const struct rec *a, const struct rec *b, const char *what)
{
    if (a->out.len != b->out.len || memcmp(a->out.data, b->out.data, a->out.len) != 0) {
        fprintf(stderr, "fuzz_multipart: %s differs from whole feed\n", what);
        abort();
    }
}

static void try_content_type(const uint8_t *data, size_t size)
{
    char out[MP_MAX_BOUNDARY + 1];
    size_t out_len = 0;
    struct bx_err err;

    if (mp_boundary_from_content_type((const char *)data, size, out, &out_len, &err) == 0) {
        struct mp_parser *p = NULL;
        need(out_len >= 1 && out_len <= MP_MAX_BOUNDARY && out[out_len] == '\0', "boundary bounds");
        need(mp_new(&p, out, out_len, &cbs, NULL, &err) == 0, "extracted boundary refused");
        mp_free(&p);
    } else {
        need(err.status == 400, "content-type error status");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char boundary[MP_MAX_BOUNDARY];
    size_t blen, split, chunk, n;
    const uint8_t *body;
    struct rec whole, r;

    try_content_type(data, size);
    if (size < 1)
        return 0;
    blen = 1 + data[0] % MP_MAX_BOUNDARY;
    if (size < 1 + blen + 3)
        return 0;
    for (size_t i = 0; i < blen; i++) {
        uint8_t c = data[1 + i];
        boundary[i] =
            c && memchr(bchars, c, sizeof(bchars) - 1) ? (char)c : bchars[c % (sizeof(bchars) - 1)];
    }
    if (boundary[blen - 1] == ' ')
        boundary[blen - 1] = 'x';
    split = (size_t)data[1 + blen] << 8 | data[2 + blen];
    chunk = data[3 + blen] % 17;
    if (chunk == 0)
        chunk = 1;
    body = data + 4 + blen;
    n = size - 4 - blen;
    split %= n + 1;

    run(&whole, boundary, blen, body, n, 0, n ? n : 1);
    run(&r, boundary, blen, body, n, split, n ? n : 1);
    same(&whole, &r, "two-piece feed");
    sbuf_free(&r.out);
    run(&r, boundary, blen, body, n, 0, chunk);
    same(&whole, &r, "chunked feed");
    sbuf_free(&r.out);
    if (n <= 2048) {
        run(&r, boundary, blen, body, n, 0, 1);
        same(&whole, &r, "byte-at-a-time feed");
        sbuf_free(&r.out);
    }
    sbuf_free(&whole.out);
    return 0;
}
