/* Exec output streams over HTTP: see api_stream.h. */
#include "api_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "box.h"
#include "exec_log.h"
#include "loop.h"
#include "stream_out.h"
#include "util.h"

struct exec_stream {
    struct stream_out out; /* out.final: the exit event is queued */
    struct box_exec *e; /* NULL once the record went (gone) */
    struct box_exec_watch *watch;
    struct exec_stream_opts o;
    uint64_t at;        /* last seq encoded */
    int start_pending;
    /* the exit of a record that went away under the stream */
    int gone, gone_code, gone_timed_out;
    uint64_t gone_seq, gone_wall_ms;
};

/* Puts the next event into st->out.ev; 0 when there is none yet. */
static int exec_stream_produce(void *arg)
{
    struct exec_stream *st = arg;
    const struct exec_log *log;
    size_t i;
    if (st->start_pending) {
        st->start_pending = 0;
        if (st->e)
            return sev_start(&st->out.ev, box_exec_id(st->e)) == 0;
    }
    if (st->out.final)
        return 0;
    if (st->gone) {
        struct sev_exit x = {st->gone_code, "failed", st->gone_timed_out, st->gone_wall_ms};
        st->out.final = 1;
        return sev_exit(&st->out.ev, st->o.format, st->gone_seq, &x) == 0;
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
            return sev_truncated(&st->out.ev, st->o.format, dropped, first) == 0;
        }
        i = exec_log_index_after(log, st->at);
        if (i >= log->n)
            break;
        ev = exec_log_at(log, i);
        st->at = ev->seq;
        box_exec_watch_at(st->watch, st->at);
        if (ev->len == 0)
            continue;
        if (sev_log(&st->out.ev, st->o.format, ev->seq, ev->stream, ev->data, ev->len,
                    st->o.base64) < 0)
            return 0;
        return 1;
    }
    if (!box_exec_is_running(st->e)) {
        struct sev_exit x;
        x.exit_code = box_exec_result(st->e, &x.status, &x.timed_out, &x.wall_ms);
        st->out.final = 1;
        return sev_exit(&st->out.ev, st->o.format, exec_log_last_seq(log) + 1, &x) == 0;
    }
    return 0;
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
         * copied into st->out.ev. */
    }
    stream_out_pump(&st->out);
}

static void exec_stream_on_done(void *arg, int delivered)
{
    struct exec_stream *st = arg;
    (void)delivered;
    /* The client left or has it all: the exec goes on either way (its log
     * keeps the tail for a later reader). */
    box_exec_unwatch(&st->watch);
    stream_out_end(&st->out);
    free(st);
}

int exec_stream_start(struct loop *l, struct http_conn *c, struct box_exec *e,
                      const struct exec_stream_opts *o, struct bx_err *err)
{
    struct exec_stream *st = calloc(1, sizeof(*st));
    const char *ctype = o->format == SEV_SSE ? "text/event-stream" : "application/x-ndjson";
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    st->e = e;
    st->o = *o;
    st->at = o->after;
    st->start_pending = o->start_event;
    stream_out_init(&st->out, l, o->format, o->keepalive_ms, exec_stream_produce, st);
    st->watch = box_exec_watch(e, on_watch, st, err);
    if (!st->watch) {
        sbuf_free(&st->out.ev);
        free(st);
        return -1;
    }
    box_exec_watch_at(st->watch, st->at);
    /* The replay starts from the loop (stream_out_begin). */
    stream_out_begin(&st->out, c, ctype, exec_stream_on_done, st);
    return 0;
}
