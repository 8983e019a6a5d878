/* libFuzzer harness for cli_http.c's response side: what a hostile server
 * can send the command-line client.  Byte 0 picks how the input is handed
 * out (reads of 1..64 bytes or whole) and whether the body is read as
 * NDJSON lines (a 64-byte line cap, as the client's 4 MiB cap but small)
 * or as raw bytes; byte 1 picks the raw read size.  The rest is the answer:
 * status line, headers, a Content-Length, chunked or read-to-close body,
 * or after a 101 the WebSocket frames `exec -it` reads (4096-byte cap).
 * Checks: the decoder never hands out more body bytes than it was given,
 * kept lines never exceed the cap, and everything ends (no byte is read
 * twice: the total read equals at most the input). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_cliresp: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct src {
    const uint8_t *p;
    size_t n, pos, step, handed;
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
    s->handed += k;
    return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cli_resp *r;
    struct src s;
    struct bx_err err;
    uint8_t mode, rsz;

    if (size < 2)
        return 0;
    mode = data[0];
    rsz = data[1];
    memset(&s, 0, sizeof(s));
    s.p = data + 2;
    s.n = size - 2;
    s.step = (mode & 0x40) ? 0 : (size_t)(mode & 0x3f) + 1;
    r = malloc(sizeof(*r));
    CHECK(r);
    cli_resp_init(r, rd, &s);
    bx_err_clear(&err);
    if (cli_resp_head(r, &err) == 0) {
        CHECK(r->status == 101 || (r->status >= 200 && r->status <= 599));
        size_t body = 0;
        if (r->status == 101) {
            /* After a 101: WebSocket frames of the server (exec -it). */
            struct sbuf pl;
            int op, fin;
            sbuf_init(&pl, 8192);
            while (cli_ws_read_frame(r, &op, &fin, &pl, 4096, &err) == 1) {
                CHECK(pl.len <= 4096);
                CHECK(op <= 2 || (op >= 8 && op <= 10 && pl.len <= 125 && fin));
                body += pl.len;
            }
            sbuf_free(&pl);
        } else if (mode & 0x80) {
            struct sbuf line;
            int trunc, lr;
            sbuf_init(&line, 1u << 20);
            while ((lr = cli_resp_line(r, &line, 64, &trunc, &err)) == 1) {
                CHECK(line.len <= 64);
                body += line.len;
            }
            sbuf_free(&line);
        } else {
            char buf[256];
            size_t want = (size_t)rsz % sizeof(buf) + 1;
            ssize_t n;
            while ((n = cli_resp_read(r, buf, want, &err)) > 0) {
                CHECK((size_t)n <= want);
                body += (size_t)n;
            }
            CHECK(n == 0 || n == -1);
        }
        CHECK(body <= s.n);
    }
    CHECK(s.handed <= s.n);
    free(r);
    return 0;
}
