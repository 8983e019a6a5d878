/* Exec output streams over HTTP (issue 14): GET /v1/boxes/{id}/exec/{eid}/events
 * (SSE or NDJSON) and POST /v1/boxes/{id}/exec with "stream": true (NDJSON
 * with a start event).  A stream replays the exec's kept events after
 * `after`, then follows live ones, and ends with the exit event; it pushes
 * as the client takes (http_respond_chunked), and its position tells the
 * exec when to stop reading the command's pipes. */
#ifndef BOXER_API_STREAM_H
#define BOXER_API_STREAM_H

#include <stdint.h>

#include "err.h"
#include "http.h"
#include "stream_events.h"

struct box_exec;
struct loop;

struct exec_stream_opts {
    enum sev_format format;
    uint64_t after;       /* events with a greater seq are sent */
    int start_event;      /* NDJSON "start" first (POST .../exec) */
    int base64;
    uint64_t keepalive_ms;
};

/* Answers c with the stream (200); on failure nothing was answered. */
int exec_stream_start(struct loop *l, struct http_conn *c, struct box_exec *e,
                      const struct exec_stream_opts *o, struct bx_err *err);

#endif
