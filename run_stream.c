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
#include "stream_out.h"
#include "util.h"

#define RESULT_PIECE 65536

struct run_stream {
    struct stream_out out; /* out.final: the result event is complete */
    struct run_stream_params p;
    struct run_job *job; /* NULL once done (or cancelled) */
    struct run_result *res;
    struct run_answer *ans;
    int status;
    char exec_id[64];
    int base64;
    struct exec_log log;
    uint64_t at;
    int start_pending, result_started;
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

/* The next piece of the result event into st->out.ev; 0 when it is complete. */
static int produce_result(struct run_stream *st)
{
    size_t before;
    if (st->out.final)
        return 0;
    if (!st->ans) {
        /* not encodable (out of memory): say so in the same shape */
        st->out.final = 1;
        return sbuf_appendf(&st->out.ev,
                            "{\"type\":\"result\",\"status\":500,\"error\":\"could not encode the "
                            "run result\","
                            "\"exec_id\":\"%s\"}\n",
                            st->exec_id) == 0;
    }
    if (!st->result_started) {
        st->result_started = 1;
        if (sbuf_appendf(&st->out.ev, "{\"type\":\"result\",\"status\":%d,", st->status) < 0)
            return 0;
        before = st->out.ev.len;
        /* the answer's own '{' goes: its fields join ours */
        if (run_answer_fill(st->ans, &st->out.ev, 1) < 0 || st->out.ev.len != before + 1)
            return 0;
        st->out.ev.len = before;
    }
    before = st->out.ev.len;
    if (run_answer_fill(st->ans, &st->out.ev, RESULT_PIECE) < 0)
        return 0;
    if (st->out.ev.len - before < RESULT_PIECE) {
        st->out.final = 1;
        if (sbuf_putc(&st->out.ev, '\n') < 0)
            return 0;
    }
    return st->out.ev.len > 0;
}

static int run_stream_produce(void *arg)
{
    struct run_stream *st = arg;
    size_t i;
    if (st->start_pending) {
        st->start_pending = 0;
        return sev_start(&st->out.ev, st->exec_id) == 0;
    }
    for (;;) {
        const struct exec_event *e;
        uint64_t first = exec_log_first_seq(&st->log);
        if (st->at + 1 < first && st->at < exec_log_last_seq(&st->log)) {
            uint64_t dropped = first - (st->at + 1);
            st->at = first - 1;
            follow(st);
            return sev_truncated(&st->out.ev, SEV_NDJSON, dropped, first) == 0;
        }
        i = exec_log_index_after(&st->log, st->at);
        if (i >= st->log.n)
            break;
        e = exec_log_at(&st->log, i);
        st->at = e->seq;
        follow(st);
        if (e->len == 0)
            continue;
        return sev_log(&st->out.ev, SEV_NDJSON, e->seq, e->stream, e->data, e->len, st->base64) ==
               0;
    }
    if (st->res)
        return produce_result(st);
    return 0;
}

static void on_output(void *arg, int stream, const char *data, size_t len)
{
    struct run_stream *st = arg;
    exec_log_append(&st->log, stream, data, len);
    if (st->job && exec_log_bytes_after(&st->log, st->at) > lag_high(st))
        run_pause_output(st->job, 1);
    stream_out_pump(&st->out);
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
    stream_out_pump(&st->out);
}

static void run_stream_on_done(void *arg, int delivered)
{
    struct run_stream *st = arg;
    (void)delivered;
    /* The client left before the result: the run is cancelled and torn
     * down as a plain /run's is. */
    if (st->job)
        run_cancel(st->job);
    run_answer_free(&st->ans);
    if (st->res)
        run_result_release(st->p.runs, &st->res);
    exec_log_free(&st->log);
    stream_out_end(&st->out);
    free(st);
}

int run_stream_start(const struct run_stream_params *p, struct http_conn *c,
                     struct run_request **req, struct bx_err *err)
{
    struct run_stream *st = calloc(1, sizeof(*st));
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    st->p = *p;
    st->base64 = (*req)->base64;
    st->start_pending = 1;
    exec_log_init(&st->log, p->log_bytes);
    stream_out_init(&st->out, p->loop, SEV_NDJSON, p->keepalive_ms, run_stream_produce, st);
    if (run_submit(p->runs, req, stream_on_run_done, st, &st->job, err) < 0) {
        exec_log_free(&st->log);
        sbuf_free(&st->out.ev);
        free(st);
        return -1;
    }
    snprintf(st->exec_id, sizeof(st->exec_id), "%s", run_job_exec_id(st->job));
    run_set_output_hook(st->job, on_output, st);
    stream_out_begin(&st->out, c, "application/x-ndjson", run_stream_on_done, st);
    return 0;
}
