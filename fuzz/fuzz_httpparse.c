/* libFuzzer harness for httpparse.c.
 *
 * The input is used four ways:
 *   1. as a request head, parsed whole and then fed in two pieces with the
 *      *scan_from mechanism: both must give the same answer, and a success
 *      must hand back pointers inside the head;
 *   2. the parsed path and query go through the percent decoders;
 *   3. as a chunked body, decoded whole, split at a position taken from the
 *      input, in place, and one byte at a time: all must agree;
 *   4. as a raw query string / path for the decoders;
 *   5. as Host / Origin / Content-Type values for the browser-safety
 *      matchers.
 * libFuzzer's buffer is exactly `size` bytes long, so ASan catches any read
 * past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static int in_range(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

/* A successful decode is NUL-terminated, fits cap and holds no NUL. */
static void check_decoded(const char *out, size_t cap, size_t out_len)
{
    check(out_len < cap);
    check(out[out_len] == '\0');
    check(memchr(out, '\0', out_len) == NULL);
}

static void fuzz_head(const char *data, size_t size)
{
    /* Small limits so the limit paths are reached by short inputs. */
    static const struct http_limits small = {
        .max_request_line = 40, .max_header_bytes = 200, .max_headers = 6};
    const struct http_limits *lims[2] = {NULL, &small};

    for (int li = 0; li < 2; li++) {
        struct http_request req, req2;
        struct bx_err err = {0}, err2 = {0};
        size_t scan = 0, scan2 = 0;
        size_t split = size ? (unsigned char)data[0] % (size + 1) : 0;
        int rc = http_parse_request(data, size, lims[li], &scan, &req, &err);
        int rc2;

        check(rc == HTTP_PARSE_INCOMPLETE || rc == HTTP_PARSE_ERROR ||
              (rc > 0 && (size_t)rc <= size));
        if (rc == HTTP_PARSE_ERROR)
            check(err.status == 400 || err.status == 414 || err.status == 431 ||
                  err.status == 417 || err.status == 501 || err.status == 505);
        if (rc == HTTP_PARSE_INCOMPLETE)
            check(scan <= size);

        /* Same input in two calls: the answer must not depend on the split. */
        rc2 = http_parse_request(data, split, lims[li], &scan2, &req2, &err2);
        if (rc2 == HTTP_PARSE_INCOMPLETE) {
            check(scan2 <= split);
            rc2 = http_parse_request(data, size, lims[li], &scan2, &req2, &err2);
        } else {
            /* Finished early: then the whole input must have finished the same way. */
            check(rc == rc2);
        }
        check(rc == rc2);
        if (rc == HTTP_PARSE_ERROR)
            check(err.status == err2.status);

        if (rc > 0) {
            size_t head = (size_t)rc;
            char out[256];
            size_t out_len = (size_t)-1;
            int drc;
            check(head >= 4 && memcmp(data + head - 4, "\r\n\r\n", 4) == 0);
            check(memmem(data, head - 1, "\r\n\r\n", 4) == NULL);
            check(req.minor_version == 0 || req.minor_version == 1);
            check(in_range(req.method_str, req.method_len, data, head));
            check(in_range(req.target, req.target_len, data, head));
            check(in_range(req.path, req.path_len, data, head));
            check(req.path_len > 0 && (req.path[0] == '/' || req.path[0] == '*'));
            check(req.num_headers <= HTTP_MAX_HEADERS);
            check(!(req.chunked && req.has_content_length));
            for (size_t i = 0; i < req.num_headers; i++) {
                check(in_range(req.headers[i].name, req.headers[i].name_len, data, head));
                check(in_range(req.headers[i].value, req.headers[i].value_len, data, head));
                check(memchr(req.headers[i].value, '\r', req.headers[i].value_len) == NULL);
            }
            check(memcmp(&req, &req2, sizeof(req)) == 0);
            if (req.query) {
                check(in_range(req.query, req.query_len, data, head));
                drc = http_query_param(req.query, req.query_len, "path", out, sizeof(out), &out_len,
                                       &err);
                check(drc >= -1 && drc <= 1);
                if (drc == 1)
                    check_decoded(out, sizeof(out), out_len);
            }
            out_len = (size_t)-1;
            drc = http_decode_path(req.path, req.path_len, out, sizeof(out), &out_len, &err);
            check(drc == 0 || drc == -1);
            if (drc == 0)
                check_decoded(out, sizeof(out), out_len);
        }
    }
}

struct chunk_result {
    int rc;
    size_t consumed;
    size_t out_len;
};

/* Feeds data in pieces of at most `step` bytes (0: all at once), stopping at
 * the first non-zero answer, as a server would. */
static struct chunk_result decode_pieces(const char *data, size_t size, size_t first, size_t step,
                                         int in_place, char *out)
{
    struct http_chunked c;
    struct chunk_result r = {0, 0, 0};
    char *work = malloc(size ? size : 1);
    size_t pos = 0;
    int first_call = 1;

    check(work != NULL);
    if (size)
        memcpy(work, data, size);
    http_chunked_init(&c);
    for (;;) {
        size_t n = first_call ? first : (step ? step : size - pos);
        size_t cons = 0, olen = 0;
        char *dst = in_place ? work + pos : out + r.out_len;
        first_call = 0;
        if (n > size - pos)
            n = size - pos;
        r.rc = http_chunked_decode(&c, work + pos, n, &cons, dst, &olen, NULL);
        check(cons <= n && olen <= cons);
        if (in_place)
            memmove(out + r.out_len, dst, olen);
        r.out_len += olen;
        pos += cons;
        r.consumed = pos;
        if (r.rc != 0)
            break;
        check(cons == n);
        if (pos >= size)
            break;
    }
    free(work);
    return r;
}

static void fuzz_chunked(const char *data, size_t size)
{
    size_t split;
    char *a, *b;
    struct chunk_result whole, piece;

    if (size < 2)
        return;
    split = ((size_t)(unsigned char)data[0] << 8 | (unsigned char)data[1]) % (size - 1);
    data += 2;
    size -= 2;
    a = malloc(size + 1);
    b = malloc(size + 1);
    check(a && b);

    whole = decode_pieces(data, size, size, 0, 0, a);
    check(whole.rc >= -1 && whole.rc <= 1);
    check(whole.out_len <= whole.consumed && whole.consumed <= size);

    piece = decode_pieces(data, size, split, 0, 0, b);
    check(piece.rc == whole.rc && piece.consumed == whole.consumed &&
          piece.out_len == whole.out_len && memcmp(a, b, whole.out_len) == 0);

    piece = decode_pieces(data, size, split, 0, 1, b);
    check(piece.rc == whole.rc && piece.consumed == whole.consumed &&
          piece.out_len == whole.out_len && memcmp(a, b, whole.out_len) == 0);

    if (size <= 4096) {
        piece = decode_pieces(data, size, 1, 1, 0, b);
        check(piece.rc == whole.rc && piece.consumed == whole.consumed &&
              piece.out_len == whole.out_len && memcmp(a, b, whole.out_len) == 0);
    }
    free(a);
    free(b);
}

static void fuzz_decoders(const char *data, size_t size)
{
    char out[64];
    size_t out_len = (size_t)-1;
    size_t cap = size ? (unsigned char)data[0] % (sizeof(out) + 1) : 0;
    int rc;

    rc = http_query_param(data, size, "path", out, cap, &out_len, NULL);
    check(rc >= -1 && rc <= 1);
    if (rc == 1)
        check_decoded(out, cap, out_len);
    out_len = (size_t)-1;
    rc = http_decode_path(data, size, out, cap, &out_len, NULL);
    check(rc == 0 || rc == -1);
    if (rc == 0)
        check_decoded(out, cap, out_len);
}

/* The browser-safety matchers on arbitrary values: never read past len, and
 * agree with simple restatements of their rules. */
static void fuzz_browser(const char *data, size_t size)
{
    char *list[2] = {"boxer.lan", "http://app.example:3000"};
    size_t half = size / 2;
    int lo = http_host_is_loopback(data, size);
    check(lo == 0 || lo == 1);
    if (lo)
        check(size >= 5 && (data[0] == 'l' || data[0] == 'L' || data[0] == '1' ||
                            data[0] == '['));
    (void)http_media_type_is(data, size, "application/json");
    (void)http_host_listed(data, size, list, 1);
    /* Same origin: "http://" + host, whatever the bytes. */
    if (size > 7 && memcmp(data, "http://", 7) == 0)
        check(http_origin_allowed(data, size, data + 7, size - 7, NULL, 0));
    (void)http_origin_allowed(data, half, data + half, size - half, list, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    fuzz_head(d, size);
    fuzz_chunked(d, size);
    fuzz_decoders(d, size);
    fuzz_browser(d, size);
    return 0;
}
