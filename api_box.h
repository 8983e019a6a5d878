/* The BoxRun v1 routes for boxes (/v1/boxes...), over box.c: one handler
 * per route, each listed in boxer.c's route table (which answers 404 and
 * 405 for the paths and methods it does not list). */
#ifndef BOXER_API_BOX_H
#define BOXER_API_BOX_H

#include "http.h"
#include "route.h"

struct box_mgr;

/* Answers the request, now or later; p holds the pattern's {id} and {eid}. */
typedef void api_box_fn(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                        const struct route_params *p);

api_box_fn api_box_list;       /* GET /v1/boxes */
api_box_fn api_box_create;     /* POST /v1/boxes */
api_box_fn api_box_get;        /* GET /v1/boxes/{id} */
api_box_fn api_box_delete;     /* DELETE /v1/boxes/{id} */
api_box_fn api_box_stop;       /* POST /v1/boxes/{id}:stop */
api_box_fn api_box_start;      /* POST /v1/boxes/{id}:start */
api_box_fn api_box_exec;       /* POST /v1/boxes/{id}/exec */
api_box_fn api_box_execs;      /* GET /v1/boxes/{id}/execs */
api_box_fn api_box_exec_get;   /* GET /v1/boxes/{id}/exec/{eid} */
api_box_fn api_box_exec_events; /* GET /v1/boxes/{id}/exec/{eid}/events */
api_box_fn api_box_exec_stdin;  /* POST /v1/boxes/{id}/exec/{eid}/stdin (issue 14) */
api_box_fn api_box_exec_signal; /* POST /v1/boxes/{id}/exec/{eid}/signal */
api_box_fn api_box_exec_cancel; /* POST /v1/boxes/{id}/exec/{eid}:cancel */
api_box_fn api_box_gc;         /* POST /v1/gc */
api_box_fn api_box_upload;     /* POST /v1/boxes/{id}/files/upload */
api_box_fn api_box_download;   /* POST /v1/boxes/{id}/files/download */

#endif
