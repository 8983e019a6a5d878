/* Exec output streams over HTTP: see api_stream.h. */
#include "api_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "exec_log.h"
#include "loop.h"
#include "util.h"

/* One encoded event may be far bigger than what the connection takes at
 * once (a 64 KiB read escapes to up to 6 times that): it waits here and
 * goes out in pieces. */
#define EV_MAX (1u << 20)

struct exec_stream {
    struct loop *loop;
    struct http_conn *conn;
    struct box_exec *e; /* NULL once the record went (gone) */
    struct box_exec_watch *watch;
    struct exec_stream_opts o;
    uint64_t at;        /* last seq encoded */
    int start_pending, exit_sent, ended;
    struct sbuf ev;     /* the event being sent */
    size_t ev_off;
    uint64_t ka_timer, last_write_ms;
    struct loop_task first; /* the first pump, from the loop */
    /* the exit of a record that went away under the stream */
    int gone, gone_code, gone_timed_out;
    uint64_t gone_seq, gone_wall_ms;
};

static void exec_stream_pump(struct exec_stream *st);

/* Puts the next event into st->ev; 0 when there is none yet. */
static int exec_stream_produce(struct exec_stream *st)
{
    const struct exec_log *log;
    size_t i;
    if (st->start_pending) {
        st->start_pending = 0;
        if (st->e)
            return sev_start(&st->ev, box_exec_id(st->e)) == 0;
    }
    if (st->exit_sent)
        return 0;
    if (st->gone) {
        struct sev_exit x = {st->gone_code, "failed", st->gone_timed_out, st->gone_wall_ms};
        st->exit_sent = 1;
        return sev_exit(&st->ev, st->o.format, st->gone_seq, &x) == 0;
    }
    log = box_exec_log(st->e);
    for (;;) {
        const struct exec_event *ev;
        uint64_t first = exec_log_first_seq(log);
        if (st->at + 1 < first && st->at < exec_log_last_seq(log)) {
            /* Events this reader never got were dropped from the full log:
             * said once, never skipped silently. */
            uint64_t dropped = first - (st->at + 1);
            st->at = first - 1;
            box_exec_watch_at(st->watch, st->at);
            return sev_truncated(&st->ev, st->o.format, dropped, first) == 0;
        }
        i = exec_log_index_after(log, st->at);
        if (i >= log->n)
            break;
        ev = exec_log_at(log, i);
        st->at = ev->seq;
        box_exec_watch_at(st->watch, st->at);
        if (ev->len == 0)
            continue;
        if (sev_log(&st->ev, st->o.format, ev->seq, ev->stream, ev->data, ev->len, st->o.base64) < 0)
            return 0;
        return 1;
    }
    if (!box_exec_is_running(st->e)) {
        struct sev_exit x;
        x.exit_code = box_exec_result(st->e, &x.status, &x.timed_out, &x.wall_ms);
        st->exit_sent = 1;
        return sev_exit(&st->ev, st->o.format, exec_log_last_seq(log) + 1, &x) == 0;
    }
    return 0;
}

/* Moves what the connection takes now; ends the answer after the exit. */
static void exec_stream_pump(struct exec_stream *st)
{
    if (st->ended)
        return;
    for (;;) {
        if (st->ev_off < st->ev.len) {
            size_t room = http_chunk_room(st->conn), n = st->ev.len - st->ev_off;
            if (room == 0)
                return; /* drain() calls again */
            if (n > room)
                n = room;
            if (http_chunk_write(st->conn, st->ev.data + st->ev_off, n) < 0)
                return;
            st->ev_off += n;
            st->last_write_ms = loop_now_ms(st->loop);
            continue;
        }
        sbuf_reset(&st->ev);
        st->ev_off = 0;
        if (!exec_stream_produce(st))
            break;
    }
    if (st->exit_sent) {
        st->ended = 1;
        http_chunk_end(st->conn);
    }
}

static void exec_stream_first_pump(struct loop *l, void *arg)
{
    (void)l;
    exec_stream_pump(arg);
}

static void exec_stream_on_drain(void *arg)
{
    exec_stream_pump(arg);
}

static void on_watch(void *arg, int gone)
{
    struct exec_stream *st = arg;
    if (gone) {
        /* The record is freed after this call: keep what the exit needs. */
        const char *status;
        st->gone = 1;
        st->gone_code = box_exec_result(st->e, &status, &st->gone_timed_out, &st->gone_wall_ms);
        st->gone_seq = exec_log_last_seq(box_exec_log(st->e)) + 1;
        st->watch = NULL;
        st->e = NULL;
        /* An event in flight points at nothing of the record: it was
         * copied into st->ev. */
    }
    exec_stream_pump(st);
}

static void exec_stream_on_keepalive(struct loop *l, void *arg)
{
    struct exec_stream *st = arg;
    uint64_t now = loop_now_ms(l);
    st->ka_timer = 0;
    if (!st->ended && st->ev_off >= st->ev.len && now - st->last_write_ms >= st->o.keepalive_ms) {
        sbuf_reset(&st->ev);
        st->ev_off = 0;
        if (sev_keepalive(&st->ev, st->o.format) == 0)
            exec_stream_pump(st);
        st->last_write_ms = now;
    }
    if (!st->ended) {
        uint64_t due = st->last_write_ms + st->o.keepalive_ms;
        st->ka_timer = loop_timer_add(l, due > now ? due - now : st->o.keepalive_ms, exec_stream_on_keepalive, st);
    }
}

static void exec_stream_on_done(void *arg, int delivered)
{
    struct exec_stream *st = arg;
    (void)delivered;
    /* The client left or has it all: the exec goes on either way (its log
     * keeps the tail for a later reader). */
    if (st->ka_timer)
        loop_timer_cancel(st->loop, st->ka_timer);
    loop_defer_cancel(st->loop, &st->first);
    box_exec_unwatch(&st->watch);
    sbuf_free(&st->ev);
    free(st);
}

int exec_stream_start(struct loop *l, struct http_conn *c, struct box_exec *e,
                      const struct exec_stream_opts *o, struct bx_err *err)
{
    struct exec_stream *st = calloc(1, sizeof(*st));
    const char *ctype = o->format == SEV_SSE ? "text/event-stream" : "application/x-ndjson";
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    st->loop = l;
    st->conn = c;
    st->e = e;
    st->o = *o;
    st->at = o->after;
    st->start_pending = o->start_event;
    sbuf_init(&st->ev, EV_MAX);
    st->watch = box_exec_watch(e, on_watch, st, err);
    if (!st->watch) {
        sbuf_free(&st->ev);
        free(st);
        return -1;
    }
    box_exec_watch_at(st->watch, st->at);
    st->last_write_ms = loop_now_ms(l);
    st->ka_timer = loop_timer_add(l, o->keepalive_ms, exec_stream_on_keepalive, st);
    http_on_done(c, exec_stream_on_done, st);
    /* no-cache and no proxy buffering: events are wanted as they come */
    /* The replay starts from the loop: the answer below may end (a client
     * already gone) inside http_respond_chunked, freeing st. */
    loop_defer(l, &st->first, exec_stream_first_pump, st);
    http_respond_chunked(c, 200, ctype, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
                         exec_stream_on_drain, st);
    return 0;
}
