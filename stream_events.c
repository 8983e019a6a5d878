/* SSE and NDJSON event writers: see stream_events.h. */
#include "stream_events.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sev_base64(struct sbuf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    char q[4];
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = b64[v >> 18];
        q[1] = b64[(v >> 12) & 63];
        q[2] = b64[(v >> 6) & 63];
        q[3] = b64[v & 63];
        if (sbuf_append(out, q, 4) < 0)
            return -1;
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        q[0] = b64[v >> 18];
        q[1] = b64[(v >> 12) & 63];
        q[2] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        q[3] = '=';
        if (sbuf_append(out, q, 4) < 0)
            return -1;
    }
    return 0;
}

/* Runs a writer; on failure out is cut back to where it was. */
#define ATOMIC(out, expr)                                                                          \
    do {                                                                                           \
        size_t before_ = (out)->len;                                                               \
        if ((expr) < 0) {                                                                          \
            (out)->len = before_;                                                                  \
            if ((out)->data)                                                                       \
                (out)->data[before_] = 0;                                                          \
            return -1;                                                                             \
        }                                                                                          \
        return 0;                                                                                  \
    } while (0)

static int w_data(struct sbuf *out, const char *data, size_t len, int base64)
{
    if (!base64)
        return json_escape_to(out, data, len);
    if (sbuf_putc(out, '"') < 0 || sev_base64(out, data, len) < 0)
        return -1;
    return sbuf_putc(out, '"');
}

static int log_ev(struct sbuf *out, enum sev_format f, uint64_t seq, int stream,
                  const char *data, size_t len, int base64)
{
    const char *sname = stream ? "stderr" : "stdout";
    if (f == SEV_SSE) {
        if (sbuf_appendf(out, "event: log\nid: %" PRIu64 "\ndata: {\"stream\":\"%s\",\"data\":", seq,
                         sname) < 0 ||
            w_data(out, data, len, base64) < 0)
            return -1;
        return sbuf_appendf(out, ",\"seq\":%" PRIu64 "}\n\n", seq);
    }
    if (sbuf_appendf(out, "{\"type\":\"log\",\"stream\":\"%s\",\"data\":", sname) < 0 ||
        w_data(out, data, len, base64) < 0)
        return -1;
    return sbuf_appendf(out, ",\"seq\":%" PRIu64 "}\n", seq);
}

int sev_log(struct sbuf *out, enum sev_format f, uint64_t seq, int stream, const char *data,
            size_t len, int base64)
{
    ATOMIC(out, log_ev(out, f, seq, stream, data, len, base64));
}

static int exit_ev(struct sbuf *out, enum sev_format f, uint64_t seq, const struct sev_exit *x)
{
    if (f == SEV_SSE)
        /* BoxRun's exact shape: data is JSON text inside the JSON. */
        return sbuf_appendf(out,
                            "event: exit\nid: %" PRIu64 "\ndata: {\"stream\":null,\"data\":"
                            "\"{\\\"exit_code\\\": %d}\",\"seq\":%" PRIu64 "}\n\n",
                            seq, x->exit_code, seq);
    if (sbuf_appendf(out, "{\"type\":\"exit\",\"exit_code\":%d,\"status\":", x->exit_code) < 0 ||
        json_escape_to(out, x->status ? x->status : "", x->status ? strlen(x->status) : 0) < 0)
        return -1;
    return sbuf_appendf(out, ",\"timed_out\":%s,\"wall_ms\":%" PRIu64 ",\"seq\":%" PRIu64 "}\n",
                        x->timed_out ? "true" : "false", x->wall_ms, seq);
}

int sev_exit(struct sbuf *out, enum sev_format f, uint64_t seq, const struct sev_exit *x)
{
    ATOMIC(out, exit_ev(out, f, seq, x));
}

int sev_truncated(struct sbuf *out, enum sev_format f, uint64_t dropped, uint64_t first_seq)
{
    if (f == SEV_SSE)
        /* BoxRun's event shape (stream, data, seq), so a client that builds
         * its event objects from every data line still can; seq is the last
         * dropped event's. */
        ATOMIC(out, sbuf_appendf(out,
                                 "event: truncated\ndata: {\"stream\":null,\"data\":\"{\\\"dropped\\\": %" PRIu64
                                 ", \\\"first_seq\\\": %" PRIu64 "}\",\"seq\":%" PRIu64 "}\n\n",
                                 dropped, first_seq, first_seq - 1));
    ATOMIC(out, sbuf_appendf(out,
                             "{\"type\":\"truncated\",\"dropped\":%" PRIu64 ",\"first_seq\":%" PRIu64
                             "}\n",
                             dropped, first_seq));
}

int sev_keepalive(struct sbuf *out, enum sev_format f)
{
    const char *k = f == SEV_SSE ? ": keepalive\n\n" : "{\"type\":\"keepalive\"}\n";
    ATOMIC(out, sbuf_append(out, k, strlen(k)));
}

static int start_ev(struct sbuf *out, const char *id)
{
    if (sbuf_append(out, "{\"type\":\"start\",\"exec_id\":", 26) < 0 ||
        json_escape_to(out, id, strlen(id)) < 0 || sbuf_append(out, ",\"id\":", 6) < 0 ||
        json_escape_to(out, id, strlen(id)) < 0)
        return -1;
    return sbuf_append(out, "}\n", 2);
}

int sev_start(struct sbuf *out, const char *exec_id)
{
    ATOMIC(out, start_ev(out, exec_id));
}

int sev_parse_seq(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}
