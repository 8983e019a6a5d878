/* Connections taken over after 101 (see http.h, http_upgrade).
 *
 * An upgraded connection keeps its place in the server's list, so it is
 * counted against max_connections and closed by http_server_shutdown, but
 * http.c's request machinery only dispatches its events here.  Input is
 * read into a stack buffer and handed to on_data at once (nothing is held
 * here; the application pauses reading when it cannot take more); output
 * is queued in c->out and sent as the socket drains.  The hand-over (the
 * 101 logged, bytes that followed the head delivered) runs as a deferred
 * task, so no callback runs inside http_upgrade or inside the handler. */
#define _GNU_SOURCE
#include "http_internal.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define UP_READ_BUF 65536

uint32_t upgraded_events(const struct http_conn *c)
{
    uint32_t ev = 0;
    if (!c->up_started)
        return c->out_off < c->out.len ? EPOLLOUT : 0;
    if (!c->up_paused && !c->up_closing)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (c->out_off < c->out.len)
        ev |= EPOLLOUT;
    return ev;
}

/* The connection is closing (http.c's conn_close): tell the application
 * once, unless it closed first. */
void upgraded_gone(struct http_conn *c)
{
    const struct http_upgrade_ops *ops = c->up_ops;
    void *arg = c->up_arg;
    c->up_ops = NULL;
    c->up_arg = NULL;
    if (ops && ops->on_close)
        ops->on_close(arg);
}

int upgraded_stalled(const struct http_conn *c, uint64_t now)
{
    return c->out_off < c->out.len && now > c->deadline;
}

/* Sends what is queued.  0 done or waiting for room, -1 broken. */
static int up_flush(struct http_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->out_off += (size_t)n;
        c->bytes_out += (uint64_t)n;
        c->deadline = loop_now_ms(c->srv->loop) + c->srv->cfg.write_idle_timeout_ms;
    }
    /* all sent: a big burst's buffer is not kept */
    if (c->out.cap > STREAM_PIECE)
        sbuf_free(&c->out);
    sbuf_reset(&c->out);
    c->out_off = 0;
    return 0;
}

static void up_finish_close(struct http_conn *c)
{
    if (!c->up_started) {
        /* closed before the hand-over ran: the 101 is still logged once */
        c->up_started = 1;
        log_request(c, 101);
    }
    /* Lingering close, as http_send.c's: the client's last bytes (its
     * close frame) must not turn into a reset that destroys ours. */
    shutdown(c->fd, SHUT_WR);
    c->state = ST_DRAIN;
    c->drained = 0;
    c->method[0] = '\0';
    c->deadline = loop_now_ms(c->srv->loop) + DRAIN_MS;
}

static void up_deliver(struct http_conn *c, char *data, size_t len)
{
    if (c->up_ops && c->up_ops->on_data(c->up_arg, data, len) < 0)
        conn_close(c);
}

/* Deferred from http_upgrade: the 101 is logged, then the bytes that came
 * with or after the head go to the application. */
static void up_start(struct loop *l, void *arg)
{
    struct http_conn *c = arg;
    (void)l;
    c->in_process = 1;
    c->up_started = 1;
    log_request(c, 101);
    c->method[0] = '\0'; /* logged once: conn_close does not log it again */
    if (c->in_len > 0) {
        /* keep the buffer while the application works on it */
        char *in = c->in;
        size_t n = c->in_len;
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        up_deliver(c, in, n);
        free(in);
    }
    c->in_process = 0;
    conn_process(c);
}

void upgraded_event(struct http_conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (events & EPOLLOUT) {
        int had = c->out_off < c->out.len;
        if (up_flush(c) < 0) {
            conn_close(c);
            return;
        }
        if (had && c->out_off == c->out.len) {
            if (c->up_closing) {
                up_finish_close(c);
                return;
            }
            if (c->up_started && c->up_ops && c->up_ops->on_drain)
                c->up_ops->on_drain(c->up_arg);
            if (c->dead)
                return;
        }
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && c->up_started && !c->up_closing) {
        char buf[UP_READ_BUF];
        ssize_t n;
        if (c->up_paused) {
            /* not reading: only a hang-up is of interest */
            if (events & (EPOLLHUP | EPOLLRDHUP))
                conn_close(c);
            return;
        }
        do
            n = recv(c->fd, buf, sizeof(buf), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        up_deliver(c, buf, (size_t)n);
    }
}

void http_upgrade(struct http_conn *c, const char *extra_headers,
                  const struct http_upgrade_ops *ops, void *arg)
{
    if (c->responded || c->dead)
        return;
    c->responded = 1;
    c->status = 101;
    c->keep_alive = 0;
    sbuf_reset(&c->out);
    c->out_off = 0;
    if (sbuf_appendf(&c->out, "HTTP/1.1 101 Switching Protocols\r\nServer: boxer\r\n%s\r\n",
                     extra_headers ? extra_headers : "") < 0) {
        conn_close(c);
        return;
    }
    c->up_ops = ops;
    c->up_arg = arg;
    c->state = ST_UPGRADED;
    c->write_started_ms = loop_now_ms(c->srv->loop);
    c->deadline = c->write_started_ms + c->srv->cfg.write_idle_timeout_ms;
    loop_defer(c->srv->loop, &c->up_task, up_start, c);
    if (up_flush(c) < 0) {
        conn_close(c);
        return;
    }
    if (!c->in_process)
        conn_set_events(c);
}

long http_upgraded_send(struct http_conn *c, const void *data, size_t len)
{
    int was_empty;
    if (c->dead || c->state != ST_UPGRADED || c->up_closing)
        return -1;
    was_empty = c->out_off == c->out.len;
    if (len && sbuf_append(&c->out, data, len) < 0)
        return -1;
    if (was_empty)
        c->deadline = loop_now_ms(c->srv->loop) + c->srv->cfg.write_idle_timeout_ms;
    /* Sending here calls nothing back; a broken socket is noticed by the
     * loop (EPOLLERR/HUP) and closed from there. */
    if (up_flush(c) == 0 && !c->in_process)
        conn_set_events(c);
    else if (!c->in_process)
        conn_set_events(c);
    return (long)(c->out.len - c->out_off);
}

void http_upgraded_pause(struct http_conn *c, int paused)
{
    if (c->dead || c->state != ST_UPGRADED)
        return;
    c->up_paused = paused;
    if (!c->in_process)
        conn_set_events(c);
}

void http_upgraded_close(struct http_conn *c)
{
    if (c->dead || c->state != ST_UPGRADED)
        return;
    c->up_ops = NULL;
    c->up_arg = NULL;
    c->up_closing = 1;
    loop_defer_cancel(c->srv->loop, &c->up_task);
    if (c->out_off == c->out.len && c->up_started) {
        up_finish_close(c);
    } else if (c->out_off == c->out.len) {
        /* not even started: nothing to send */
        up_finish_close(c);
    }
    if (!c->in_process)
        conn_set_events(c);
}
