/* libFuzzer harness for stream_events.c (the SSE and NDJSON writers) and
 * exec_log.c (the bounded event log they read).
 *
 * Input: byte 0 picks the format and base64, bytes 1-8 a seq, the rest is
 * the data of one log event (also the exec id and exit status text).
 * Checks: an SSE event is lines of "event: ", "id: ", "data: " or ": "
 * ended by one blank line, with no raw CR and one data line whose JSON
 * parses (json.c); an NDJSON event is one line whose JSON parses to an
 * object; base64 data decodes back to the input bytes.  Then the data is
 * cut into appends (lengths from its bytes) into a small log: its charged
 * bytes stay under the bound, the seqs of the kept events are
 * consecutive, and the bytes are the tail of what went in. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_log.h"
#include "json.h"
#include "stream_events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_events: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void json_ok(const char *s, size_t len, int want_object)
{
    struct json_doc *doc = NULL;
    struct bx_err err;
    CHECK(json_parse(s, len, NULL, &doc, &err) == 0);
    if (want_object)
        CHECK(json_doc_root(doc)->type == JSON_OBJECT);
    json_doc_free(&doc);
}

static int b64v(char c)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(t, c) : NULL;
    return p ? (int)(p - t) : -1;
}

/* The "data" string of a log event decodes to want. */
static void base64_back(const char *json, size_t len, const uint8_t *want, size_t wlen)
{
    const char *p = memmem(json, len, "\"data\":\"", 8), *end;
    size_t n = 0;
    CHECK(p);
    p += 8;
    end = memchr(p, '"', len - (size_t)(p - json));
    CHECK(end && (size_t)(end - p) % 4 == 0 && (size_t)(end - p) / 4 == (wlen + 2) / 3);
    for (; p < end; p += 4) {
        int v[4];
        for (int i = 0; i < 4; i++)
            v[i] = p[i] == '=' ? 0 : b64v(p[i]);
        CHECK(v[0] >= 0 && v[1] >= 0 && v[2] >= 0 && v[3] >= 0);
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t b[3] = {(uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
        for (int i = 0; i < 3 && n < wlen; i++)
            CHECK(b[i] == want[n++]);
    }
    CHECK(n == wlen);
}

static void check_event(const struct sbuf *sb, enum sev_format f)
{
    CHECK(sb->len > 0 && !memchr(sb->data, '\r', sb->len));
    if (f == SEV_NDJSON) {
        CHECK(sb->data[sb->len - 1] == '\n');
        CHECK(memchr(sb->data, '\n', sb->len) == sb->data + sb->len - 1);
        json_ok(sb->data, sb->len - 1, 1);
        return;
    }
    CHECK(sb->len >= 2 && sb->data[sb->len - 1] == '\n' && sb->data[sb->len - 2] == '\n');
    {
        const char *p = sb->data, *end = sb->data + sb->len - 1; /* the blank line's \n */
        int ndata = 0;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l;
            CHECK(nl);
            l = (size_t)(nl - p);
            CHECK(l > 0); /* one blank line only, at the end */
            if (l >= 6 && memcmp(p, "data: ", 6) == 0) {
                json_ok(p + 6, l - 6, 1);
                ndata++;
            } else {
                CHECK((l >= 7 && memcmp(p, "event: ", 7) == 0) || (l >= 4 && memcmp(p, "id: ", 4) == 0) ||
                      (l >= 2 && memcmp(p, ": ", 2) == 0));
            }
            p = nl + 1;
        }
        CHECK(ndata <= 1);
    }
}

static void fuzz_log(const uint8_t *d, size_t n)
{
    struct exec_log l;
    size_t pos = 0;
    uint64_t in = 0;
    exec_log_init(&l, 300 + (n ? d[0] : 0));
    while (pos < n) {
        size_t len = d[pos] % 97, stream = d[pos] & 1;
        pos++;
        if (len > n - pos)
            len = n - pos;
        CHECK(exec_log_append(&l, (int)stream, (const char *)d + pos, len) == 0);
        in += len;
        pos += len;
        CHECK(l.bytes <= l.max);
        for (size_t i = 1; i < l.n; i++)
            CHECK(exec_log_at(&l, i)->seq == exec_log_at(&l, i - 1)->seq + 1);
        if (l.n)
            CHECK(exec_log_at(&l, l.n - 1)->seq == exec_log_last_seq(&l));
        CHECK(exec_log_index_after(&l, exec_log_last_seq(&l)) == l.n);
        CHECK(exec_log_bytes_after(&l, 0) == l.bytes);
    }
    CHECK(exec_log_flush(&l) == 0);
    {
        size_t kept = exec_log_stream_len(&l, 0) + exec_log_stream_len(&l, 1);
        CHECK(kept + l.cut_bytes == in);
    }
    exec_log_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbuf sb;
    enum sev_format f;
    int b64;
    uint64_t seq = 0;
    const uint8_t *d;
    size_t n;
    char *text;
    if (size < 9)
        return 0;
    f = data[0] & 1 ? SEV_NDJSON : SEV_SSE;
    b64 = (data[0] >> 1) & 1;
    memcpy(&seq, data + 1, 8);
    d = data + 9;
    n = size - 9;
    sbuf_init(&sb, 1 << 20);

    CHECK(sev_log(&sb, f, seq, data[0] >> 2 & 1, (const char *)d, n, b64) == 0);
    check_event(&sb, f);
    if (b64)
        base64_back(sb.data, sb.len, d, n);
    sbuf_reset(&sb);

    text = malloc(n + 1);
    CHECK(text);
    memcpy(text, d, n);
    text[n] = 0;
    {
        struct sev_exit x = {(int)(seq & 0xffff) - 300, text, (int)(seq >> 63), seq >> 1};
        CHECK(sev_exit(&sb, f, seq, &x) == 0);
        check_event(&sb, f);
        sbuf_reset(&sb);
    }
    CHECK(sev_truncated(&sb, f, seq, seq ^ 0x5555) == 0);
    check_event(&sb, f);
    sbuf_reset(&sb);
    if (f == SEV_NDJSON) {
        CHECK(sev_start(&sb, text) == 0);
        check_event(&sb, f);
        sbuf_reset(&sb);
    }
    CHECK(sev_keepalive(&sb, f) == 0);
    if (f == SEV_NDJSON)
        check_event(&sb, f);
    else
        CHECK(sb.len == 13 && memcmp(sb.data, ": keepalive\n\n", 13) == 0);
    {
        uint64_t v;
        if (sev_parse_seq(text, strlen(text), &v) == 0)
            CHECK(strlen(text) <= 19);
    }
    free(text);
    sbuf_free(&sb);
    fuzz_log(d, n);
    return 0;
}
