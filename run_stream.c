/* Streamed /run answers: see run_stream.h. */
#include "run_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "exec_log.h"
#include "loop.h"
#include "metrics.h"
#include "stream_events.h"
#include "util.h"

#define EV_MAX (1u << 20)
#define RESULT_PIECE 65536

struct run_stream {
    struct run_stream_params p;
    struct http_conn *conn;
    struct run_job *job; /* NULL once done (or cancelled) */
    struct run_result *res;
    struct run_answer *ans;
    int status;
    char exec_id[64];
    int base64;
    struct exec_log log;
    uint64_t at;
    int start_pending, result_started, result_done, ended;
    struct sbuf ev;
    size_t ev_off;
    uint64_t ka_timer, last_write_ms;
    struct loop_task first;
};

/* The client may lag this far behind the newest event before the pipes
 * stop being read (resumed below half of it). */
static uint64_t lag_high(const struct run_stream *st)
{
    uint64_t h = st->log.max / 2;
    return h < (256u << 10) ? h : (256u << 10);
}

static void follow(struct run_stream *st)
{
    if (st->job && exec_log_bytes_after(&st->log, st->at) <= lag_high(st) / 2)
        run_pause_output(st->job, 0);
}

/* The next piece of the result event into st->ev; 0 when it is complete. */
static int produce_result(struct run_stream *st)
{
    size_t before;
    if (st->result_done)
        return 0;
    if (!st->ans) {
        /* not encodable (out of memory): say so in the same shape */
        st->result_done = 1;
        return sbuf_appendf(&st->ev,
                            "{\"type\":\"result\",\"status\":500,\"error\":\"could not encode the run result\","
                            "\"exec_id\":\"%s\"}\n",
                            st->exec_id) == 0;
    }
    if (!st->result_started) {
        st->result_started = 1;
        if (sbuf_appendf(&st->ev, "{\"type\":\"result\",\"status\":%d,", st->status) < 0)
            return 0;
        before = st->ev.len;
        /* the answer's own '{' goes: its fields join ours */
        if (run_answer_fill(st->ans, &st->ev, 1) < 0 || st->ev.len != before + 1)
            return 0;
        st->ev.len = before;
    }
    before = st->ev.len;
    if (run_answer_fill(st->ans, &st->ev, RESULT_PIECE) < 0)
        return 0;
    if (st->ev.len - before < RESULT_PIECE) {
        st->result_done = 1;
        if (sbuf_putc(&st->ev, '\n') < 0)
            return 0;
    }
    return st->ev.len > 0;
}

static int run_stream_produce(struct run_stream *st)
{
    size_t i;
    if (st->start_pending) {
        st->start_pending = 0;
        return sev_start(&st->ev, st->exec_id) == 0;
    }
    for (;;) {
        const struct exec_event *e;
        uint64_t first = exec_log_first_seq(&st->log);
        if (st->at + 1 < first && st->at < exec_log_last_seq(&st->log)) {
            uint64_t dropped = first - (st->at + 1);
            st->at = first - 1;
            follow(st);
            return sev_truncated(&st->ev, SEV_NDJSON, dropped, first) == 0;
        }
        i = exec_log_index_after(&st->log, st->at);
        if (i >= st->log.n)
            break;
        e = exec_log_at(&st->log, i);
        st->at = e->seq;
        follow(st);
        if (e->len == 0)
            continue;
        return sev_log(&st->ev, SEV_NDJSON, e->seq, e->stream, e->data, e->len, st->base64) == 0;
    }
    if (st->res)
        return produce_result(st);
    return 0;
}

static void run_stream_pump(struct run_stream *st)
{
    if (st->ended)
        return;
    for (;;) {
        if (st->ev_off < st->ev.len) {
            size_t room = http_chunk_room(st->conn), n = st->ev.len - st->ev_off;
            if (room == 0)
                return;
            if (n > room)
                n = room;
            if (http_chunk_write(st->conn, st->ev.data + st->ev_off, n) < 0)
                return;
            st->ev_off += n;
            st->last_write_ms = loop_now_ms(st->p.loop);
            continue;
        }
        sbuf_reset(&st->ev);
        st->ev_off = 0;
        if (!run_stream_produce(st))
            break;
    }
    if (st->result_done) {
        st->ended = 1;
        http_chunk_end(st->conn);
    }
}

static void run_stream_first_pump(struct loop *l, void *arg)
{
    (void)l;
    run_stream_pump(arg);
}

static void run_stream_on_drain(void *arg)
{
    run_stream_pump(arg);
}

static void on_output(void *arg, int stream, const char *data, size_t len)
{
    struct run_stream *st = arg;
    exec_log_append(&st->log, stream, data, len);
    if (st->job && exec_log_bytes_after(&st->log, st->at) > lag_high(st))
        run_pause_output(st->job, 1);
    run_stream_pump(st);
}

static void stream_on_run_done(void *arg, struct run_result *res)
{
    struct run_stream *st = arg;
    st->job = NULL;
    exec_log_flush(&st->log);
    st->res = res;
    if (res->outcome != RUN_ERROR)
        metrics_observe_run(st->p.metrics, res->wall_ms);
    if (run_answer_new(res, &st->ans, &st->status) < 0)
        st->ans = NULL;
    run_stream_pump(st);
}

static void run_stream_on_keepalive(struct loop *l, void *arg)
{
    struct run_stream *st = arg;
    uint64_t now = loop_now_ms(l);
    st->ka_timer = 0;
    if (!st->ended && st->ev_off >= st->ev.len && now - st->last_write_ms >= st->p.keepalive_ms) {
        sbuf_reset(&st->ev);
        st->ev_off = 0;
        if (sev_keepalive(&st->ev, SEV_NDJSON) == 0)
            run_stream_pump(st);
        st->last_write_ms = now;
    }
    if (!st->ended) {
        uint64_t due = st->last_write_ms + st->p.keepalive_ms;
        st->ka_timer = loop_timer_add(l, due > now ? due - now : st->p.keepalive_ms, run_stream_on_keepalive, st);
    }
}

static void run_stream_on_done(void *arg, int delivered)
{
    struct run_stream *st = arg;
    (void)delivered;
    if (st->ka_timer)
        loop_timer_cancel(st->p.loop, st->ka_timer);
    loop_defer_cancel(st->p.loop, &st->first);
    /* The client left before the result: the run is cancelled and torn
     * down as a plain /run's is. */
    if (st->job)
        run_cancel(st->job);
    run_answer_free(&st->ans);
    if (st->res)
        run_result_release(st->p.runs, &st->res);
    exec_log_free(&st->log);
    sbuf_free(&st->ev);
    free(st);
}

int run_stream_start(const struct run_stream_params *p, struct http_conn *c,
                     struct run_request **req, struct bx_err *err)
{
    struct run_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    st->p = *p;
    st->conn = c;
    st->base64 = (*req)->base64;
    st->start_pending = 1;
    exec_log_init(&st->log, p->log_bytes);
    sbuf_init(&st->ev, EV_MAX);
    if (run_submit(p->runs, req, stream_on_run_done, st, &st->job, err) < 0) {
        exec_log_free(&st->log);
        sbuf_free(&st->ev);
        free(st);
        return -1;
    }
    snprintf(st->exec_id, sizeof(st->exec_id), "%s", run_job_exec_id(st->job));
    run_set_output_hook(st->job, on_output, st);
    st->last_write_ms = loop_now_ms(p->loop);
    st->ka_timer = loop_timer_add(p->loop, p->keepalive_ms, run_stream_on_keepalive, st);
    loop_defer(p->loop, &st->first, run_stream_first_pump, st);
    http_on_done(c, run_stream_on_done, st);
    http_respond_chunked(c, 200, "application/x-ndjson",
                         "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n", run_stream_on_drain, st);
    return 0;
}
