/* One chunked event stream out to an HTTP client, the part the exec event
 * stream (api_stream.c) and the streamed /run answer (run_stream.c) share:
 * encoded events go out as the connection takes them (a big one in
 * pieces), a keepalive after silence, the first pump from the loop, and the
 * end of the answer once the final event is out.  The owner embeds a
 * struct stream_out, encodes its events into ev from its produce callback
 * and keeps its own http_on_done callback (which calls stream_out_end). */
#ifndef BOXER_STREAM_OUT_H
#define BOXER_STREAM_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "loop.h"
#include "stream_events.h"
#include "util.h"

/* Appends the owner's next event to so->ev; 0 when there is none yet. */
typedef int (*stream_out_produce_cb)(void *owner);

struct stream_out {
    struct loop *loop;
    struct http_conn *conn;
    enum sev_format format; /* of the keepalives */
    uint64_t keepalive_ms;
    stream_out_produce_cb produce;
    void *owner;
    int final;      /* the owner queued its last event: the answer ends after it */
    int ended;      /* the chunked answer was ended */
    struct sbuf ev; /* the event being sent */
    size_t ev_off;
    uint64_t ka_timer, last_write_ms;
    struct loop_task first; /* the first pump, from the loop */
};

void stream_out_init(struct stream_out *so, struct loop *l, enum sev_format f,
                     uint64_t keepalive_ms, stream_out_produce_cb produce, void *owner);
/* Starts the keepalive timer, registers done (the owner's) on c and answers
 * 200 chunked with ctype, no-cache and no proxy buffering.  The first pump
 * runs from the loop: the answer may end (a client already gone) inside
 * http_respond_chunked, which calls done. */
void stream_out_begin(struct stream_out *so, struct http_conn *c, const char *ctype,
                      http_done_cb done, void *done_arg);
/* Moves what the connection takes now; ends the answer after the final
 * event.  Call it whenever the owner has something new. */
void stream_out_pump(struct stream_out *so);
/* From the owner's done callback: cancels the timer and the first pump and
 * frees the event buffer. */
void stream_out_end(struct stream_out *so);

#endif
