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
api_box_fn api_box_execs;      /* GET /v1/boxes/{id}/execs */
api_box_fn api_box_exec_get;   /* GET /v1/boxes/{id}/exec/{eid} */
api_box_fn api_box_exec_events; /* GET /v1/boxes/{id}/exec/{eid}/events */
api_box_fn api_box_gc;         /* POST /v1/gc */

/* Routes that differ only in what they do to the box or exec they name:
 * one handler for each family, told which by op (boxer.c's ON_BOX_OP). */
enum api_box_op {
    API_BOX_DELETE = 1, /* DELETE /v1/boxes/{id}                  api_box_on_box */
    API_BOX_STOP,       /* POST /v1/boxes/{id}:stop                  "" */
    API_BOX_START,      /* POST /v1/boxes/{id}:start                 "" */
    API_BOX_EXEC,       /* POST /v1/boxes/{id}/exec                  "" */
    API_BOX_UPLOAD,     /* POST /v1/boxes/{id}/files/upload       api_box_xfer */
    API_BOX_DOWNLOAD,   /* POST /v1/boxes/{id}/files/download        "" */
    API_BOX_STDIN,      /* POST /v1/boxes/{id}/exec/{eid}/stdin   api_box_exec_ctl (issue 14) */
    API_BOX_SIGNAL,     /* POST /v1/boxes/{id}/exec/{eid}/signal     "" */
    API_BOX_CANCEL,     /* POST /v1/boxes/{id}/exec/{eid}:cancel     "" */
};
typedef void api_box_op_fn(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                           const struct route_params *p, enum api_box_op op);
api_box_op_fn api_box_on_box;
api_box_op_fn api_box_xfer;
api_box_op_fn api_box_exec_ctl;

#endif
