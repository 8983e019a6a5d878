/* The /v1 routes that are not about one box (BoxRun's wire API):
 * GET /v1/info and POST /v1/run.  /v1/run is the /run pipeline (run.c:
 * admission, image, sandbox, cleanup) with BoxRun's request and answer
 * (api_run.c: run_request_parse_boxrun, run_answer_new_boxrun), run as
 * root on a bounded writable root like a fresh box (run.h: v1_root). */
#ifndef BOXER_API_V1_H
#define BOXER_API_V1_H

#include "http.h"

struct box_mgr;
struct run_mgr;
struct config;

struct api_v1 {
    const struct config *cfg;
    struct box_mgr *boxes; /* NULL: no box counts */
    struct run_mgr *runs;
};

/* GET /v1/info: {"max_cpu", "max_memory_mb"} (BoxRun), plus ours:
 * "version", "boxes" (counts by status), "limits", "budget". */
void api_v1_info(const struct api_v1 *a, struct http_conn *c, const struct http_request *req);
/* POST /v1/run: answers later (the run), errors as the other /v1 routes. */
void api_v1_run(const struct api_v1 *a, struct http_conn *c, const struct http_request *req);

/* The error answer of every /v1 route (api_box.c's too):
 * {"code", "message", "error"} with status, Retry-After on 503 and 429. */
void respond_v1_error(struct http_conn *c, int status, const char *code, const char *msg);
/* 0 when req's body is JSON (Content-Type application/json); otherwise
 * answers 415 INVALID_REQUEST and returns -1.  Every /v1 POST with a body
 * takes only JSON, as /run does. */
int v1_require_json(struct http_conn *c, const struct http_request *req);
/* The same answer with the caller's headers (NULL: none) instead. */
void respond_v1_error_headers(struct http_conn *c, int status, const char *code, const char *msg,
                              const char *headers);

#endif
