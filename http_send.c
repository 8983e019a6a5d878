#define _GNU_SOURCE
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

/* ---- writing ---- */

/* Produces the next piece of a streamed answer into the (sent) out buffer.
 * Returns 1 produced, 0 waiting (not armed yet, or no buffer room), -1 the
 * producer failed or broke its length promise. */
static int stream_refill(struct http_conn *c)
{
    struct http_server *s = c->srv;
    size_t piece = STREAM_PIECE, avail;
    size_t before;

    if (!c->stream_armed)
        return 0;
    s->answer_bytes -= c->stream_held;
    c->stream_held = 0;
    sbuf_reset(&c->out);
    c->out_off = 0;
    avail = s->cfg.answer_buffer_max > s->answer_bytes ? s->cfg.answer_buffer_max - s->answer_bytes
                                                        : 0;
    while (piece > avail && piece > STREAM_PIECE_MIN)
        piece /= 2;
    if (piece > avail) {
        /* Every answer's bytes are spoken for: hold nothing while waiting. */
        sbuf_free(&c->out);
        if (!c->stream_waiting) {
            c->stream_waiting = 1;
            c->wait_since = loop_now_ms(s->loop);
            s->stream_waiters++;
        }
        return 0;
    }
    if (c->stream_waiting) {
        /* Time spent waiting for room does not count against the client. */
        c->stream_waiting = 0;
        s->stream_waiters--;
        c->write_started_ms += loop_now_ms(s->loop) - c->wait_since;
        c->deadline = loop_now_ms(s->loop) + s->cfg.write_idle_timeout_ms;
    }
    if (c->out.cap > piece)
        sbuf_free(&c->out);
    before = c->out.len;
    if (c->fill(c->fill_arg, &c->out, piece - 32) < 0 || c->out.len == before ||
        c->out.len > c->stream_left)
        return -1;
    c->stream_left -= c->out.len;
    c->stream_held = c->out.cap;
    s->answer_bytes += c->stream_held;
    return 1;
}

/* After send or sendfile failed (errno): 1 try again (EINTR), 0 wait
 * for room (EAGAIN), -1 the connection is broken. */
static int send_failed(void)
{
    if (errno == EINTR)
        return 1;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
}

/* A pushed answer sent all it had: give its room back, then ask the
 * producer for more.  Returns 2 more was queued (or the end), 1 the answer
 * is complete, 0 waiting for the producer. */
static int chunk_after_sent(struct http_conn *c)
{
    sbuf_reset(&c->out);
    c->out_off = 0;
    stream_release(c);
    if (c->chunk_ended)
        return 1;
    if (!c->chunk_idle) {
        c->chunk_idle = 1;
        c->idle_since = loop_now_ms(c->srv->loop);
    }
    if (c->chunk_armed && c->drain)
        c->drain(c->drain_arg);
    return c->out.len > 0 || c->chunk_ended ? 2 : 0;
}

static int flush_out(struct http_conn *c)
{
    for (;;) {
        int r;
        while (c->out_off < c->out.len) {
            ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                             MSG_NOSIGNAL);
            if (n < 0) {
                r = send_failed();
                if (r > 0)
                    continue;
                return r;
            }
            c->out_off += (size_t)n;
            c->bytes_out += (uint64_t)n;
            c->deadline = loop_now_ms(c->srv->loop) + c->srv->cfg.write_idle_timeout_ms;
        }
        if (c->chunk_mode) {
            r = chunk_after_sent(c);
            if (r == 2)
                continue;
            return r;
        }
        if (!c->fill || c->stream_left == 0)
            break;
        r = stream_refill(c);
        if (r <= 0)
            return r;
    }
    while (c->file_left > 0) {
        size_t chunk = c->file_left > (1u << 20) ? (1u << 20) : (size_t)c->file_left;
        ssize_t n = sendfile(c->fd, c->file_fd, &c->file_off, chunk);
        if (n < 0) {
            int r = send_failed();
            if (r > 0)
                continue;
            return r;
        }
        if (n == 0)
            return -1; /* file shrank under us: the length we promised is wrong */
        c->file_left -= (uint64_t)n;
        c->bytes_out += (uint64_t)n;
        c->deadline = loop_now_ms(c->srv->loop) + c->srv->cfg.write_idle_timeout_ms;
    }
    return 1;
}

static void start_drain(struct http_conn *c)
{
    /* Lingering close: tell the client we are done writing, then swallow
     * what it still sends for a moment so the kernel does not answer its
     * late bytes with a reset that destroys our response in flight. */
    shutdown(c->fd, SHUT_WR);
    c->state = ST_DRAIN;
    c->drained = 0;
    c->deadline = loop_now_ms(c->srv->loop) + DRAIN_MS;
}

static void finish_response(struct http_conn *c)
{
    http_done_cb cb = c->done_cb;
    void *arg = c->done_arg;
    c->done_cb = NULL;
    log_request(c, c->status);
    if (cb)
        cb(arg, 1);
    if (c->peer_eof) {
        request_reset(c);
        conn_close(c);
        return;
    }
    if (c->close_after || !c->keep_alive || c->srv->shutting_down) {
        request_reset(c);
        start_drain(c);
        return;
    }
    request_reset(c);
    c->state = ST_HEAD;
    c->deadline = loop_now_ms(c->srv->loop) + c->srv->cfg.keepalive_timeout_ms;
}

void try_write(struct http_conn *c)
{
    int r = flush_out(c);
    if (r < 0) {
        conn_close(c);
        return;
    }
    if (r == 1)
        finish_response(c);
    else if (!c->in_process)
        conn_set_events(c); /* entered or left the wait for answer room */
}

/* Resumes streamed answers that waited for answer_buffer_max room. */
void wake_waiters(struct loop *l, void *arg)
{
    struct http_server *s = arg;
    struct http_conn *c, *next;
    (void)l;
    s->wake_timer = 0;
    for (c = s->conns; c && s->stream_waiters > 0; c = next) {
        next = c->next;
        if (c->dead || !c->stream_waiting)
            continue;
        if (s->answer_bytes + STREAM_PIECE_MIN > s->cfg.answer_buffer_max)
            break;
        /* in_process defers freeing, so next stays valid unless c itself
         * is freed, which conn_process does at the end. */
        c->in_process = 1;
        try_write(c);
        c->in_process = 0;
        conn_process(c);
    }
}

static void begin_response(struct http_conn *c, int status, const char *content_type,
                           const char *extra_headers, uint64_t body_len)
{
    int conn_close_hdr;
    if (c->responded)
        return;
    c->responded = 1;
    c->status = status;
    /* A body we did not read leaves the stream out of sync: close after. */
    if (c->has_body && !c->body_done)
        c->close_after = 1;
    if (c->srv->shutting_down)
        c->close_after = 1;
    conn_close_hdr = c->close_after || !c->keep_alive;
    sbuf_reset(&c->out);
    c->out_off = 0;
    sbuf_appendf(&c->out, "HTTP/1.1 %d %s\r\nServer: boxer\r\n", status, reason_phrase(status));
    if (content_type)
        sbuf_appendf(&c->out, "Content-Type: %s\r\n", content_type);
    if (c->chunk_mode == 1)
        sbuf_appendf(&c->out, "Transfer-Encoding: chunked\r\n");
    else if (!c->chunk_mode)
        sbuf_appendf(&c->out, "Content-Length: %" PRIu64 "\r\n", body_len);
    if (conn_close_hdr)
        sbuf_appendf(&c->out, "Connection: close\r\n");
    else if (c->minor == 0)
        sbuf_appendf(&c->out, "Connection: keep-alive\r\n");
    if (extra_headers)
        sbuf_appendf(&c->out, "%s", extra_headers);
    sbuf_appendf(&c->out, "\r\n");
}

static void after_response_queued(struct http_conn *c)
{
    int outer = !c->in_process;
    /* The handler may answer while it is still receiving the body (an
     * error); the rest of the body is then not wanted. */
    if (c->state == ST_BODY) {
        abort_ctx(c);
    } else {
        /* Answering after on_end hands the context back to the handler. */
        c->ops = NULL;
        c->ctx = NULL;
    }
    c->state = ST_WRITE;
    c->write_started_ms = loop_now_ms(c->srv->loop);
    c->deadline = c->write_started_ms + c->srv->cfg.write_idle_timeout_ms;
    /* in_process defers freeing, so c stays valid until conn_process. */
    c->in_process = 1;
    try_write(c);
    if (outer) {
        c->in_process = 0;
        conn_process(c);
    } else if (!c->dead) {
        conn_set_events(c);
    }
}

void http_respond(struct http_conn *c, int status, const char *content_type,
                  const char *extra_headers, const void *body, size_t len)
{
    if (c->responded || c->dead)
        return;
    begin_response(c, status, content_type, extra_headers, len);
    if (!c->is_head && len > 0 && sbuf_append(&c->out, body, len) < 0) {
        conn_close(c);
        return;
    }
    after_response_queued(c);
}

void http_respond_error_with_headers(struct http_conn *c, int status, const char *extra_headers,
                                     const char *msg)
{
    struct sbuf b;
    /* Every "try later" answer says when. */
    if (status == BX_E_UNAVAILABLE && !extra_headers)
        extra_headers = "Retry-After: 1\r\n";
    sbuf_init(&b, 4096 + 64);
    if (sbuf_append(&b, "{\"error\":", 9) < 0 || json_escape_to(&b, msg, strlen(msg)) < 0 ||
        sbuf_append(&b, "}", 1) < 0) {
        sbuf_reset(&b);
        sbuf_append(&b, "{\"error\":\"internal error\"}", 26);
    }
    http_respond(c, status, "application/json", extra_headers, b.data, b.len);
    sbuf_free(&b);
}

void http_respond_error(struct http_conn *c, int status, const char *msg)
{
    http_respond_error_with_headers(c, status, NULL, msg);
}

void http_respond_file(struct http_conn *c, int status, const char *content_type, int fd,
                       uint64_t size)
{
    if (c->responded || c->dead) {
        close(fd);
        return;
    }
    begin_response(c, status, content_type, NULL, size);
    if (c->is_head) {
        close(fd);
    } else {
        c->file_fd = fd;
        c->file_left = size;
        c->file_off = 0;
    }
    after_response_queued(c);
}

void http_respond_stream(struct http_conn *c, int status, const char *content_type,
                         uint64_t body_len, http_fill_cb fill, void *arg)
{
    int outer = !c->in_process;
    if (c->responded || c->dead)
        return;
    begin_response(c, status, content_type, NULL, body_len);
    if (!c->is_head && body_len > 0) {
        c->fill = fill;
        c->fill_arg = arg;
        c->stream_left = body_len;
        /* Armed after this call: fill must not run inside it. */
        c->stream_armed = 0;
    }
    /* in_process defers freeing, so c stays valid until conn_process. */
    c->in_process = 1;
    after_response_queued(c);
    if (!c->dead && c->fill)
        c->stream_armed = 1;
    if (outer) {
        c->in_process = 0;
        conn_process(c);
    }
}

void http_respond_chunked(struct http_conn *c, int status, const char *content_type,
                          const char *extra_headers, http_drain_cb drain, void *arg)
{
    int outer = !c->in_process;
    if (c->responded || c->dead)
        return;
    /* HTTP/1.0 knows no chunks: the body ends with the connection. */
    c->chunk_mode = c->minor == 0 ? 2 : 1;
    if (c->chunk_mode == 2)
        c->close_after = 1;
    begin_response(c, status, content_type, extra_headers, 0);
    c->drain = drain;
    c->drain_arg = arg;
    c->chunk_armed = 0;
    if (c->is_head)
        c->chunk_ended = 1;
    c->in_process = 1;
    after_response_queued(c);
    if (!c->dead)
        c->chunk_armed = 1;
    if (outer) {
        c->in_process = 0;
        conn_process(c);
    }
}

size_t http_chunk_room(struct http_conn *c)
{
    struct http_server *s = c->srv;
    size_t used;
    if (c->dead || !c->chunk_mode || c->chunk_ended || !c->responded)
        return 0;
    if (!c->stream_held) {
        if (s->answer_bytes + STREAM_PIECE > s->cfg.answer_buffer_max) {
            /* woken (drain) by wake_waiters when room is given back */
            if (!c->stream_waiting) {
                c->stream_waiting = 1;
                c->wait_since = loop_now_ms(s->loop);
                s->stream_waiters++;
            }
            return 0;
        }
        if (c->stream_waiting) {
            c->stream_waiting = 0;
            s->stream_waiters--;
        }
        c->stream_held = STREAM_PIECE;
        s->answer_bytes += STREAM_PIECE;
    }
    used = c->out.len + 16; /* a chunk's size line and CRLF */
    return used < STREAM_PIECE ? STREAM_PIECE - used : 0;
}

/* The producer has something again: the time it had nothing does not
 * count against the client. */
static void chunk_wake(struct http_conn *c)
{
    uint64_t now = loop_now_ms(c->srv->loop);
    if (c->chunk_idle) {
        c->chunk_idle = 0;
        c->write_started_ms += now - c->idle_since;
        c->deadline = now + c->srv->cfg.write_idle_timeout_ms;
    }
    if (!c->in_process)
        conn_set_events(c);
}

int http_chunk_write(struct http_conn *c, const void *data, size_t len)
{
    size_t before = c->out.len;
    if (c->dead || !c->chunk_mode || c->chunk_ended || !c->responded)
        return -1;
    if (len == 0)
        return 0;
    if (c->out.len + len + 16 > 2 * STREAM_PIECE)
        return -1;
    if ((c->chunk_mode == 1 && sbuf_appendf(&c->out, "%zx\r\n", len) < 0) ||
        sbuf_append(&c->out, data, len) < 0 ||
        (c->chunk_mode == 1 && sbuf_append(&c->out, "\r\n", 2) < 0)) {
        c->out.len = before;
        return -1;
    }
    chunk_wake(c);
    return 0;
}

void http_chunk_end(struct http_conn *c)
{
    if (c->dead || !c->chunk_mode || c->chunk_ended || !c->responded)
        return;
    c->chunk_ended = 1;
    /* Out of memory for the last chunk: the client sees a cut answer (no
     * callback may run in here, so no close now). */
    if (c->chunk_mode == 1 && sbuf_append(&c->out, "0\r\n\r\n", 5) < 0)
        c->close_after = 1;
    chunk_wake(c);
}

int http_conn_on_loopback(const struct http_conn *c)
{
    return c->on_loopback;
}

void http_on_done(struct http_conn *c, http_done_cb cb, void *arg)
{
    c->done_cb = cb;
    c->done_arg = arg;
}

const char *http_conn_path(const struct http_conn *c)
{
    return c->path ? c->path : "";
}

const char *http_conn_method(const struct http_conn *c)
{
    return c->method;
}

