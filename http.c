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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "util.h"

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg);

/* ---- listening ---- */

static int parse_listen_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl,
                             struct bx_err *err)
{
    char host[128];
    const char *colon, *port_s;
    uint64_t port;
    size_t hlen;

    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "listen_addr %s: expected [v6]:port",
                              addr);
        hlen = (size_t)(close - addr - 1);
        if (hlen >= sizeof(host))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "listen_addr %s: host too long", addr);
        memcpy(host, addr + 1, hlen);
        host[hlen] = '\0';
        port_s = close + 2;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "listen_addr %s: expected host:port",
                              addr);
        hlen = (size_t)(colon - addr);
        if (hlen >= sizeof(host))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "listen_addr %s: host too long", addr);
        memcpy(host, addr, hlen);
        host[hlen] = '\0';
        port_s = colon + 1;
    }
    if (bx_parse_u64(port_s, strlen(port_s), 65535, &port) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "listen_addr %s: bad port", addr);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "listen_addr %s: bad IPv6 address",
                              addr);
        *sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0) {
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
        } else if (strcmp(host, "localhost") == 0) {
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "listen_addr %s: host must be an IP address or localhost", addr);
        }
        *sl = sizeof(*s4);
    }
    return 0;
}

static void set_accepting(struct http_server *s, int on)
{
    int ok = 1;
    if (s->listen_fd < 0 && s->unix_fd < 0)
        return;
    if (on && s->accept_paused) {
        if (s->listen_fd >= 0)
            ok &= loop_mod(s->loop, s->listen_fd, EPOLLIN, NULL) == 0;
        if (s->unix_fd >= 0)
            ok &= loop_mod(s->loop, s->unix_fd, EPOLLIN, NULL) == 0;
        if (ok)
            s->accept_paused = 0;
    } else if (!on && !s->accept_paused) {
        if (s->listen_fd >= 0)
            ok &= loop_mod(s->loop, s->listen_fd, 0, NULL) == 0;
        if (s->unix_fd >= 0)
            ok &= loop_mod(s->loop, s->unix_fd, 0, NULL) == 0;
        if (ok)
            s->accept_paused = 1;
    }
}

void conn_set_events(struct http_conn *c)
{
    uint32_t ev = 0;
    size_t cap_limit;

    if (c->dead)
        return;
    if (c->peer_eof) {
        ev = c->state == ST_WRITE && !c->stream_waiting && !c->chunk_idle ? EPOLLOUT : 0;
        if (ev != c->events && loop_mod(c->srv->loop, c->fd, ev, NULL) == 0)
            c->events = ev;
        return;
    }
    cap_limit = c->srv->cfg.max_header_bytes + 1 > IN_BODY_CAP ? c->srv->cfg.max_header_bytes + 1
                                                               : IN_BODY_CAP;
    switch (c->state) {
    case ST_HEAD:
    case ST_BODY:
    case ST_DRAIN:
        if (c->in_len < cap_limit)
            ev |= EPOLLIN;
        ev |= EPOLLRDHUP;
        break;
    case ST_WAIT:
        /* Watch for the client going away while its run is in flight; read
         * pipelined bytes only while there is room for them. */
        ev |= EPOLLRDHUP;
        if (c->in_len < cap_limit)
            ev |= EPOLLIN;
        break;
    case ST_WRITE:
        /* Waiting for answer buffer room there is nothing to write: a
         * level-triggered EPOLLOUT would spin. */
        if (!c->stream_waiting && !c->chunk_idle)
            ev |= EPOLLOUT;
        /* A pushed answer may be quiet for long: notice the client leave
         * (its producer then stops, a streamed run is cancelled). */
        if (c->chunk_mode)
            ev |= EPOLLRDHUP;
        break;
    case ST_UPGRADED:
        ev = upgraded_events(c);
        break;
    }
    if (ev != c->events) {
        if (loop_mod(c->srv->loop, c->fd, ev, NULL) == 0)
            c->events = ev;
    }
}

/* ---- per-address counts ---- */

static void peer_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

/* Unix-socket peers are counted per user id, under a key in 100::/64 (the
 * IPv6 discard prefix, never a TCP peer). */
static void unix_peer_key(int fd, unsigned char key[16])
{
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    memset(key, 0, 16);
    key[0] = 0x01;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
        memcpy(key + 12, &cred.uid, sizeof(cred.uid));
}

static size_t peer_bucket(const unsigned char key[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

/* Counts one more connection from key; NULL when that address is at its
 * limit (or out of memory). */
static struct peer *peer_get(struct http_server *s, const unsigned char key[16])
{
    size_t b = peer_bucket(key);
    struct peer *p;
    for (p = s->peers[b]; p; p = p->next)
        if (memcmp(p->addr, key, 16) == 0)
            break;
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL;
        memcpy(p->addr, key, 16);
        p->next = s->peers[b];
        s->peers[b] = p;
    }
    if (p->n >= s->cfg.max_connections_per_ip)
        return NULL;
    p->n++;
    return p;
}

static void peer_put(struct http_server *s, struct peer *p)
{
    struct peer **pp;
    if (!p || --p->n > 0)
        return;
    for (pp = &s->peers[peer_bucket(p->addr)]; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            free(p);
            return;
        }
    }
}

static int addr_is_loopback(const struct sockaddr_storage *ss)
{
    unsigned char key[16];
    static const unsigned char v6_lo[16] = {[15] = 1};
    peer_key(ss, key);
    if (memcmp(key, v6_lo, 16) == 0)
        return 1;
    return key[10] == 0xff && key[11] == 0xff && key[12] == 127 &&
           memcmp(key, "\0\0\0\0\0\0\0\0\0\0", 10) == 0;
}

/* An idle connection (no request begun) to give up for a new one: the one
 * nearest its timeout.  Idle clients are the cheapest to lose: they send
 * their next request on a new connection. */
static struct http_conn *idle_victim(struct http_server *s)
{
    struct http_conn *c, *best = NULL;
    int pending = 0;
    /* The list is newest first, and connections accepted in one loop
     * iteration share a deadline: on a tie the older one wins. */
    for (c = s->conns; c; c = c->next)
        if (!c->dead && c->state == ST_HEAD && c->in_len == 0 && !c->method[0] &&
            (!best || c->deadline <= best->deadline))
            best = c;
    /* One whose request already waits in the kernel is not idle: none is
     * given up this time rather than that one. */
    if (best && ioctl(best->fd, FIONREAD, &pending) == 0 && pending > 0)
        return NULL;
    return best;
}

/* The last eighth of the connection slots is a reserve: once the others are
 * taken, each new connection first closes an idle one, so a flood of idle
 * connections (or keep-alive clients) cannot lock out new requests such as
 * /healthz; the reserve itself is used only when nothing is idle. */
static size_t reserve_slots(const struct http_server *s)
{
    size_t r = s->cfg.max_connections / 8;
    return r ? r : 1;
}

static void on_accept(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct http_server *s = arg;
    (void)events;
    for (int i = 0; i < 64; i++) {
        struct http_conn *c;
        struct sockaddr_storage peer_ss, local_ss;
        socklen_t pl = sizeof(peer_ss), ll = sizeof(local_ss);
        unsigned char key[16];
        struct peer *p;
        int one = 1;
        int cfd = accept4(fd, (struct sockaddr *)&peer_ss, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: give up an idle connection so the one
                 * waiting gets its descriptor; with none idle, stop
                 * accepting instead of spinning on a readable listener (the
                 * client waits in the backlog) until a connection closes or
                 * the sweep retries. */
                struct http_conn *v = idle_victim(s);
                if (v) {
                    conn_close(v);
                    continue;
                }
                set_accepting(s, 0);
            }
            return;
        }
        if (fd == s->unix_fd)
            unix_peer_key(cfd, key);
        else
            peer_key(&peer_ss, key);
        p = peer_get(s, key);
        if (!p) {
            /* Over max_connections_per_ip: closed at once, before it costs
             * anything but the accept. */
            close(cfd);
            continue;
        }
        if (s->nconns >= s->cfg.max_connections - reserve_slots(s)) {
            struct http_conn *v = idle_victim(s);
            if (v)
                conn_close(v);
        }
        if (fd != s->unix_fd)
            setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c) {
            peer_put(s, p);
            close(cfd);
            set_accepting(s, 0);
            return;
        }
        c->srv = s;
        c->fd = cfd;
        c->peer = p;
        /* Whoever reaches the Unix socket is on this host and passed its
         * file permissions: treated like a loopback client. */
        c->on_loopback = fd == s->unix_fd ||
                         (getsockname(cfd, (struct sockaddr *)&local_ss, &ll) == 0 &&
                          addr_is_loopback(&local_ss));
        c->file_fd = -1;
        c->state = ST_HEAD;
        sbuf_init(&c->out, SIZE_MAX / 2);
        /* The first request head must arrive within header_timeout_ms of
         * the accept: an idle connection costs a slot. */
        c->deadline = loop_now_ms(l) + s->cfg.header_timeout_ms;
        c->events = EPOLLIN | EPOLLRDHUP;
        if (loop_add(l, cfd, c->events, conn_event, c, NULL) < 0) {
            peer_put(s, p);
            close(cfd);
            free(c);
            return;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        if (s->nconns >= s->cfg.max_connections) {
            set_accepting(s, 0);
            return;
        }
    }
}

/* ---- request state ---- */


/* Gives back what a streamed answer holds of answer_buffer_max; answers
 * waiting for room are resumed from the loop (never from inside this
 * connection's own processing). */
void stream_release(struct http_conn *c)
{
    struct http_server *s = c->srv;
    s->answer_bytes -= c->stream_held;
    c->stream_held = 0;
    if (c->stream_waiting) {
        c->stream_waiting = 0;
        s->stream_waiters--;
    }
    if (s->stream_waiters > 0 && !s->wake_timer)
        s->wake_timer = loop_timer_add(s->loop, 0, wake_waiters, s);
}

void request_reset(struct http_conn *c)
{
    free(c->path);
    c->path = NULL;
    free(c->log_path);
    c->log_path = NULL;
    c->method[0] = '\0';
    c->has_body = c->chunked = c->body_done = c->expect_continue = 0;
    c->body_left = c->body_seen = c->max_body = 0;
    c->ops = NULL;
    c->ctx = NULL;
    c->responded = 0;
    stream_release(c);
    c->fill = NULL;
    c->fill_arg = NULL;
    c->stream_left = 0;
    c->stream_armed = 0;
    c->chunk_mode = c->chunk_armed = c->chunk_ended = c->chunk_idle = 0;
    c->drain = NULL;
    c->drain_arg = NULL;
    /* A big answer's buffer is not kept for the next request. */
    if (c->out.cap > STREAM_PIECE)
        sbuf_free(&c->out);
    sbuf_reset(&c->out);
    c->out_off = 0;
    bx_close(&c->file_fd);
    c->file_left = 0;
    c->file_off = 0;
    c->status = 0;
    c->bytes_out = 0;
    c->done_cb = NULL;
    c->done_arg = NULL;
    c->is_head = 0;
    c->started_ms = 0;
    c->seq++;
}

static void consume_in(struct http_conn *c, size_t n)
{
    if (n >= c->in_len) {
        c->in_len = 0;
    } else {
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
    }
    c->scan_from = 0;
}

/* Releases the handler's context through on_abort, once. */
void abort_ctx(struct http_conn *c)
{
    const struct http_body_ops *ops = c->ops;
    void *ctx = c->ctx;
    c->ops = NULL;
    c->ctx = NULL;
    if (ops && ops->on_abort)
        ops->on_abort(ctx);
}

void log_request(struct http_conn *c, int status)
{
    uint64_t dur = bx_now_ms() - c->started_ms;
    if (c->srv->cfg.observe)
        c->srv->cfg.observe(c->srv->app, c->log_path ? c->log_path : "", status);
    bx_log_info("%s %s %d %" PRIu64 "B %" PRIu64 "ms",
            c->method[0] ? c->method : "-", c->log_path ? c->log_path : "-", status,
            c->bytes_out, dur);
}

/* ---- reading ---- */

static int grow_in(struct http_conn *c, size_t want)
{
    char *p;
    size_t cap = c->in_cap ? c->in_cap : IN_MIN_CAP;
    if (want <= c->in_cap)
        return 0;
    while (cap < want)
        cap *= 2;
    p = realloc(c->in, cap);
    if (!p)
        return -1;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Returns 1 progress, 0 would block, -1 error, -2 end of stream. */
static int read_some(struct http_conn *c)
{
    size_t limit = c->srv->cfg.max_header_bytes + 1 > IN_BODY_CAP ? c->srv->cfg.max_header_bytes + 1
                                                                  : IN_BODY_CAP;
    size_t room;
    ssize_t n;
    if (c->state == ST_BODY && limit < IN_BODY_READ)
        limit = IN_BODY_READ;
    if (c->in_len >= limit)
        return 0;
    if (c->in_cap - c->in_len < 1024 || c->in_cap == 0 ||
        (c->state == ST_BODY && c->in_cap < limit)) {
        size_t want = c->in_len + (c->state == ST_BODY ? IN_BODY_READ : IN_MIN_CAP);
        if (want > limit)
            want = limit;
        if (grow_in(c, want) < 0)
            return -1;
    }
    room = c->in_cap - c->in_len;
    if (room > limit - c->in_len)
        room = limit - c->in_len;
    for (;;) {
        n = recv(c->fd, c->in + c->in_len, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    if (n == 0)
        return -2;
    c->in_len += (size_t)n;
    return 1;
}

static void respond_err(struct http_conn *c, const struct bx_err *err)
{
    c->close_after = 1;
    http_respond_error(c, bx_err_http_status(err), err->msg[0] ? err->msg : "error");
}

static void handle_head(struct http_conn *c, const struct http_request *req, size_t head_len)
{
    struct bx_err err;
    size_t mlen = req->method_len < sizeof(c->method) - 1 ? req->method_len
                                                          : sizeof(c->method) - 1;
    size_t plen = 0;
    uint64_t seq = c->seq;

    bx_err_clear(&err);
    memcpy(c->method, req->method_str, mlen);
    c->method[mlen] = '\0';
    c->minor = req->minor_version;
    c->keep_alive = req->keep_alive;
    c->is_head = req->method == HTTP_HEAD;
    c->has_body = req->chunked || (req->has_content_length && req->content_length > 0);
    c->chunked = req->chunked;
    c->body_left = req->has_content_length ? req->content_length : 0;
    c->expect_continue = req->expect_continue;
    c->log_path = strndup(req->path, req->path_len);
    c->path = malloc(PATH_CAP);
    if (!c->path || !c->log_path) {
        consume_in(c, head_len);
        bx_err_set(&err, BX_E_INTERNAL, ENOMEM, "out of memory");
        respond_err(c, &err);
        return;
    }
    if (http_decode_path(req->path, req->path_len, c->path, PATH_CAP, &plen, &err) < 0) {
        consume_in(c, head_len);
        respond_err(c, &err);
        return;
    }
    c->srv->handler(c->srv->app, c, req);
    /* req points into c->in: drop the head only after the handler ran. */
    consume_in(c, head_len);
    if (c->seq == seq && !c->responded && !c->ops) {
        bx_err_set(&err, BX_E_INTERNAL, 0, "handler gave no answer");
        respond_err(c, &err);
    }
}

void http_accept_body(struct http_conn *c, uint64_t max_body, const struct http_body_ops *ops,
                      void *ctx)
{
    c->ops = ops;
    c->ctx = ctx;
    c->max_body = max_body;
    c->state = ST_BODY;
    c->body_started_ms = loop_now_ms(c->srv->loop);
    c->deadline = c->body_started_ms + c->srv->cfg.body_idle_timeout_ms;
    if (c->chunked)
        http_chunked_init(&c->ch);
    if (!c->has_body) {
        c->body_done = 1;
        return;
    }
    if (!c->chunked && c->body_left > max_body) {
        struct bx_err err;
        bx_err_set(&err, BX_E_TOO_LARGE, 0,
                   "request body of %" PRIu64 " bytes is over the limit of %" PRIu64, c->body_left,
                   max_body);
        c->state = ST_WAIT;
        abort_ctx(c);
        respond_err(c, &err);
        return;
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        /* Sent before any answer is queued; a short send here only delays
         * the client, which then sends its body anyway. */
        ssize_t n = send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
}

/* Feeds buffered bytes to the body handler.  Returns 1 when the body is
 * complete, 0 when more is needed, -1 after an error answer was queued. */
static int feed_body(struct http_conn *c)
{
    struct bx_err err;
    bx_err_clear(&err);
    if (c->body_done)
        return 1;
    if (c->chunked) {
        size_t consumed = 0, out_len = 0;
        int r;
        if (c->in_len == 0)
            return 0; /* the buffer may not even exist (released while idle) */
        r = http_chunked_decode(&c->ch, c->in, c->in_len, &consumed, c->in, &out_len, &err);
        if (r < 0) {
            abort_ctx(c);
            respond_err(c, &err);
            return -1;
        }
        if (out_len > 0) {
            c->body_seen += out_len;
            if (c->body_seen > c->max_body) {
                bx_err_set(&err, BX_E_TOO_LARGE, 0,
                           "request body is over the limit of %" PRIu64 " bytes", c->max_body);
                abort_ctx(c);
                respond_err(c, &err);
                return -1;
            }
            if (c->ops->on_data(c->ctx, c->in, out_len, &err) < 0) {
                abort_ctx(c);
                respond_err(c, &err);
                return -1;
            }
        }
        consume_in(c, consumed);
        if (r == 1)
            c->body_done = 1;
    } else {
        size_t n = c->in_len < c->body_left ? c->in_len : (size_t)c->body_left;
        if (n > 0) {
            if (c->ops->on_data(c->ctx, c->in, n, &err) < 0) {
                abort_ctx(c);
                respond_err(c, &err);
                return -1;
            }
            c->body_left -= n;
            c->body_seen += n;
            consume_in(c, n);
        }
        if (c->body_left == 0)
            c->body_done = 1;
    }
    return c->body_done;
}

void conn_process(struct http_conn *c)
{
    struct http_server *s = c->srv;
    c->in_process = 1;
    while (!c->dead) {
        if (c->state == ST_HEAD) {
            struct http_request req;
            struct http_limits lim = {s->cfg.max_request_line, s->cfg.max_header_bytes,
                                      s->cfg.max_headers};
            struct bx_err err;
            int r;
            if (c->in_len == 0)
                break;
            if (c->started_ms == 0) {
                c->started_ms = bx_now_ms();
                c->deadline = loop_now_ms(s->loop) + s->cfg.header_timeout_ms;
            }
            bx_err_clear(&err);
            r = http_parse_request(c->in, c->in_len, &lim, &c->scan_from, &req, &err);
            if (r == HTTP_PARSE_INCOMPLETE) {
                if (c->peer_eof)
                    conn_close(c);
                break;
            }
            if (r < 0) {
                c->in_len = 0;
                c->keep_alive = 0;
                respond_err(c, &err);
                continue;
            }
            handle_head(c, &req, (size_t)r);
            continue;
        }
        if (c->state == ST_BODY) {
            int r = feed_body(c);
            if (r < 0)
                continue;
            if (r == 0)
                break;
            c->state = ST_WAIT;
            {
                struct bx_err err;
                const struct http_body_ops *ops = c->ops;
                bx_err_clear(&err);
                if (ops->on_end(c->ctx, &err) < 0) {
                    abort_ctx(c);
                    respond_err(c, &err);
                }
            }
            continue;
        }
        if (c->state == ST_WAIT) {
            break;
        }
        if (c->state == ST_WRITE || c->state == ST_UPGRADED) {
            break;
        }
        if (c->state == ST_DRAIN) {
            c->drained += c->in_len;
            c->in_len = 0;
            if (c->drained > DRAIN_MAX_BYTES)
                conn_close(c);
            break;
        }
    }
    c->in_process = 0;
    if (c->dead) {
        conn_close(c);
        return;
    }
    if (c->state == ST_HEAD && s->shutting_down && c->in_len == 0) {
        conn_close(c);
        return;
    }
    if (c->in_len == 0 && c->in) {
        /* Nothing buffered: a connection that waits (idle keep-alive, a
         * trickling client, a run in flight) holds no input buffer, so
         * thousands of them cost little; the next read allocates again. */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
        s->freed_since_trim++;
    }
    conn_set_events(c);
}

static void conn_event(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct http_conn *c = arg;
    (void)l;
    (void)fd;
    /* Defer freeing until conn_process at the end: c stays valid here. */
    c->in_process = 1;
    if (c->state == ST_UPGRADED) {
        upgraded_event(c, events);
        goto out;
    }
    if (events & EPOLLERR) {
        conn_close(c);
        goto out;
    }
    if (c->state == ST_WAIT && (events & (EPOLLRDHUP | EPOLLHUP))) {
        /* The client left while its request was being served (a run in
         * flight): the handler's on_abort kills the work. */
        conn_close(c);
        goto out;
    }
    if (c->state == ST_WRITE && (events & EPOLLOUT)) {
        try_write(c);
        if (c->dead)
            goto out;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
        if (c->state == ST_WRITE) {
            if ((events & EPOLLHUP) || (c->chunk_mode && (events & EPOLLRDHUP)))
                conn_close(c);
        } else {
            int r = read_some(c);
            if (r == -2 && c->state == ST_HEAD && c->in_len > 0) {
                /* A client that sends its request and then shuts down its
                 * side (nc, some scripts) still gets its answer. */
                c->peer_eof = 1;
            } else if (r < 0) {
                conn_close(c);
            }
            else if (r > 0 && c->state == ST_BODY)
                c->deadline = loop_now_ms(c->srv->loop) + c->srv->cfg.body_idle_timeout_ms;
        }
    }
out:
    c->in_process = 0;
    conn_process(c);
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    loop_defer_cancel(s->loop, &c->up_task);
    request_reset(c);
    peer_put(s, c->peer);
    c->peer = NULL;
    sbuf_free(&c->out);
    free(c->in);
    free(c);
    s->freed_since_trim++;
    if (!s->shutting_down && s->nconns < s->cfg.max_connections)
        set_accepting(s, 1);
}

void conn_close(struct http_conn *c)
{
    if (!c->dead) {
        http_done_cb cb = c->done_cb;
        void *arg = c->done_arg;
        c->dead = 1;
        c->done_cb = NULL;
        loop_del(c->srv->loop, c->fd);
        bx_close(&c->fd);
        if (c->ops)
            abort_ctx(c);
        if (c->state == ST_UPGRADED)
            upgraded_gone(c);
        if (c->method[0] && c->state != ST_DRAIN)
            log_request(c, c->responded ? c->status : 499);
        if (cb)
            cb(arg, 0);
    }
    if (!c->in_process)
        conn_free(c);
}

/* Past the idle grace period, an answer must average HTTP_MIN_SEND_RATE: a
 * client that reads a byte now and then cannot hold its answer (and the
 * run's output behind it) forever. */
static int write_too_slow(const struct http_conn *c, uint64_t now)
{
    uint64_t taken = c->bytes_out, allowed;
    int queued = 0;
    /* Only what the client took counts, not what sits in our socket's send
     * queue: the kernel buffers megabytes for a client that reads nothing. */
    if (ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0)
        taken = (uint64_t)queued < taken ? taken - (uint64_t)queued : 0;
    allowed = c->srv->cfg.write_idle_timeout_ms + taken * 1000 / HTTP_MIN_SEND_RATE;
    return now - c->write_started_ms > allowed;
}

/* A client that stopped taking its answer: reset rather than close, so the
 * kernel discards the megabytes still queued for it at once instead of
 * keeping an orphaned socket that tries to deliver them. */
static void drop_writer(struct http_conn *c)
{
    struct linger lg = {1, 0};
    if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
        bx_log_error("SO_LINGER: %s", strerror(errno));
    conn_close(c);
}

/* Past the idle grace period, the body must average MIN_BODY_RATE. */
static int body_too_slow(const struct http_conn *c, uint64_t now)
{
    uint64_t allowed = c->srv->cfg.body_idle_timeout_ms + c->body_seen * 1000 / MIN_BODY_RATE;
    return now - c->body_started_ms > allowed;
}

/* After a burst of connections (thousands held open, then gone) their
 * buffers sit free in the middle of the heap, where free() does not return
 * them; malloc_trim does (madvise), so the resident size follows the load
 * back down. */
static void maybe_trim(struct http_server *s, uint64_t now)
{
    if (s->freed_since_trim == 0 || now - s->last_trim_ms < TRIM_MS)
        return;
    s->freed_since_trim = 0;
    s->last_trim_ms = now;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void sweep_conn_timeouts(struct loop *l, void *arg)
{
    struct http_server *s = arg;
    uint64_t now = loop_now_ms(l);
    struct http_conn *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->dead || c->state == ST_WAIT || c->stream_waiting || c->chunk_idle)
            continue;
        if (c->state == ST_UPGRADED) {
            /* no timeouts of its own; only a client that stops taking
             * what is queued for it */
            if (upgraded_stalled(c, now))
                drop_writer(c);
            continue;
        }
        if (c->state == ST_WRITE && write_too_slow(c, now)) {
            drop_writer(c);
            continue;
        }
        if (c->state == ST_BODY && body_too_slow(c, now)) {
            struct bx_err err;
            bx_err_set(&err, BX_E_TIMEOUT, 0, "request body arrives slower than %d bytes/s",
                       MIN_BODY_RATE);
            abort_ctx(c);
            respond_err(c, &err);
            continue;
        }
        if (now < c->deadline)
            continue;
        if (c->state == ST_BODY) {
            struct bx_err err;
            bx_err_set(&err, BX_E_TIMEOUT, 0, "timed out waiting for the request body");
            abort_ctx(c);
            respond_err(c, &err);
        } else if (c->state == ST_HEAD && c->in_len > 0) {
            struct bx_err err;
            bx_err_set(&err, BX_E_TIMEOUT, 0, "timed out waiting for the request head");
            c->in_len = 0;
            c->keep_alive = 0;
            if (!c->method[0])
                snprintf(c->method, sizeof(c->method), "-");
            respond_err(c, &err);
        } else if (c->state == ST_WRITE) {
            drop_writer(c);
        } else {
            conn_close(c);
        }
    }
    if (!s->shutting_down && s->accept_paused && s->nconns < s->cfg.max_connections)
        set_accepting(s, 1);
    /* Waiting answers are normally woken when room is released; this
     * catches a wake-up timer that could not be scheduled. */
    if (s->stream_waiters > 0 && !s->wake_timer)
        wake_waiters(l, s);
    maybe_trim(s, now);
    s->sweep_timer = loop_timer_add(l, SWEEP_MS, sweep_conn_timeouts, s);
}

/* Removes the socket file at path left by a server that is gone: only a
 * socket, and only when connecting to it is refused.  A live one (or
 * anything else at the path) is an error. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa, struct bx_err *err)
{
    struct stat st;
    int fd, rc;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return bx_err_sys(err, BX_E_INTERNAL, "listen_unix %s", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return bx_err_set(err, BX_E_BAD_REQUEST, EEXIST,
                          "listen_unix %s: exists and is not a socket", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "socket");
    do
        rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    while (rc < 0 && errno == EINTR);
    if (rc == 0 || errno == EAGAIN || errno == EINPROGRESS) {
        /* Accepted, or a full backlog: a server is there. */
        close(fd);
        return bx_err_set(err, BX_E_BAD_REQUEST, EADDRINUSE,
                          "listen_unix %s: another server is listening there", path);
    }
    if (errno != ECONNREFUSED) {
        bx_err_sys(err, BX_E_INTERNAL, "listen_unix %s: probing", path);
        close(fd);
        return -1;
    }
    close(fd);
    if (unlink(path) < 0 && errno != ENOENT)
        return bx_err_sys(err, BX_E_INTERNAL, "listen_unix %s: removing the stale socket", path);
    bx_log_info("listen_unix %s: removed a stale socket", path);
    return 0;
}

static int listen_unix_socket(struct http_server *s, const char *path, struct bx_err *err)
{
    struct sockaddr_un sa;
    struct stat st;
    mode_t old_mask;
    int fd, rc;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return bx_err_set(err, BX_E_BAD_REQUEST, ENAMETOOLONG, "listen_unix %s: path too long", path);
    memcpy(sa.sun_path, path, strlen(path));
    if (remove_stale_socket(path, &sa, err) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "socket");
    /* The file is born 0660 (owner and group may connect): setting the
     * mode after bind would leave a moment where the umask's mode applies.
     * Single-threaded here, so the process-wide umask change is safe. */
    old_mask = umask(0117);
    rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
    umask(old_mask);
    if (rc < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "bind %s", path);
        goto fail;
    }
    if (lstat(path, &st) < 0 || listen(fd, 1024) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "listen %s", path);
        unlink(path);
        goto fail;
    }
    s->unix_path = strdup(path);
    if (!s->unix_path) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        unlink(path);
        goto fail;
    }
    if (loop_add(s->loop, fd, EPOLLIN, on_accept, s, err) < 0) {
        unlink(path);
        free(s->unix_path);
        s->unix_path = NULL;
        goto fail;
    }
    s->unix_dev = st.st_dev;
    s->unix_ino = st.st_ino;
    s->unix_fd = fd;
    return 0;
fail:
    close(fd);
    return -1;
}

/* Stops listening on the Unix socket and removes its file, unless another
 * server has put its own there since. */
static void close_unix(struct http_server *s)
{
    struct stat st;
    if (s->unix_fd < 0)
        return;
    loop_del(s->loop, s->unix_fd);
    bx_close(&s->unix_fd);
    if (lstat(s->unix_path, &st) == 0 && st.st_dev == s->unix_dev && st.st_ino == s->unix_ino &&
        unlink(s->unix_path) < 0)
        bx_log_warn("listen_unix %s: unlink: %s", s->unix_path, strerror(errno));
    free(s->unix_path);
    s->unix_path = NULL;
}

int http_server_new(struct http_server **out, struct loop *l, const struct http_config *cfg,
                    http_handler handler, void *app, struct bx_err *err)
{
    struct http_server *s = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int one = 1;
    int fd = -1;
    int tcp = cfg->listen_addr && cfg->listen_addr[0];

    if (tcp && parse_listen_addr(cfg->listen_addr, &ss, &sl, err) < 0)
        return -1;
    s = calloc(1, sizeof(*s));
    if (!s)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    s->loop = l;
    s->cfg = *cfg;
    s->handler = handler;
    s->app = app;
    s->listen_fd = -1;
    s->unix_fd = -1;
    if (!tcp)
        goto unix_only;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "socket");
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "bind %s", cfg->listen_addr);
        goto fail;
    }
    if (listen(fd, 1024) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "listen");
        goto fail;
    }
    {
        struct sockaddr_storage bound;
        socklen_t bl = sizeof(bound);
        if (getsockname(fd, (struct sockaddr *)&bound, &bl) < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "getsockname");
            goto fail;
        }
        s->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    }
    if (loop_add(l, fd, EPOLLIN, on_accept, s, err) < 0)
        goto fail;
    s->listen_fd = fd;
    fd = -1;
unix_only:
    if (cfg->listen_unix && cfg->listen_unix[0] && listen_unix_socket(s, cfg->listen_unix, err) < 0)
        goto fail;
    s->sweep_timer = loop_timer_add(l, SWEEP_MS, sweep_conn_timeouts, s);
    if (!s->sweep_timer) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    bx_close(&fd);
    if (s->listen_fd >= 0) {
        loop_del(l, s->listen_fd);
        bx_close(&s->listen_fd);
    }
    close_unix(s);
    free(s);
    return -1;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

size_t http_server_conn_count(const struct http_server *s)
{
    return s->nconns;
}

void http_server_shutdown(struct http_server *s)
{
    struct http_conn *c, *next;
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    if (s->listen_fd >= 0) {
        loop_del(s->loop, s->listen_fd);
        bx_close(&s->listen_fd);
    }
    close_unix(s);
    for (c = s->conns; c; c = next) {
        next = c->next;
        if ((c->state == ST_HEAD && c->in_len == 0) || c->state == ST_DRAIN ||
            c->state == ST_UPGRADED)
            conn_close(c);
    }
}

void http_server_free(struct http_server **sp)
{
    struct http_server *s = *sp;
    if (!s)
        return;
    while (s->conns)
        conn_close(s->conns);
    if (s->listen_fd >= 0) {
        loop_del(s->loop, s->listen_fd);
        bx_close(&s->listen_fd);
    }
    close_unix(s);
    if (s->sweep_timer)
        loop_timer_cancel(s->loop, s->sweep_timer);
    if (s->wake_timer)
        loop_timer_cancel(s->loop, s->wake_timer);
    for (size_t b = 0; b < PEER_BUCKETS; b++)
        while (s->peers[b]) {
            struct peer *p = s->peers[b];
            s->peers[b] = p->next;
            free(p);
        }
    free(s);
    *sp = NULL;
}
