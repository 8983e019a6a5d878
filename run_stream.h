/* POST /run with "stream": true (issue 14): an NDJSON answer of
 * {"type":"start","exec_id"}, the log events while the sandbox runs, and a
 * final {"type":"result","status":N, ...} carrying every field of the
 * answer a plain /run would give (status is that answer's HTTP status: a
 * timeout or an output limit ends the stream this way, the status line
 * having gone out long before).  A client that goes away cancels the run
 * as a plain /run's does; a slow one makes the sandbox block on its
 * writes (the pipes are not read while the client lags). */
#ifndef BOXER_RUN_STREAM_H
#define BOXER_RUN_STREAM_H

#include <stdint.h>

#include "err.h"
#include "http.h"
#include "run.h"

struct metrics;

struct run_stream_params {
    struct run_mgr *runs;
    struct loop *loop;
    struct metrics *metrics;
    uint64_t log_bytes;    /* the events kept between the pipes and the client */
    uint64_t keepalive_ms;
};

/* Submits *req (taken on success) and answers c with the stream.  On
 * failure nothing was answered (400 missing file, 503 queue full, ...). */
int run_stream_start(const struct run_stream_params *p, struct http_conn *c,
                     struct run_request **req, struct bx_err *err);

#endif
