/* The BoxRun v1 routes for boxes (/v1/boxes...), over box.c.  boxer.c
 * calls api_box_handle for every request whose path starts with
 * "/v1/boxes". */
#ifndef BOXER_API_BOX_H
#define BOXER_API_BOX_H

#include "http.h"

struct box_mgr;

/* Answers the request (now or later); always returns 0. */
int api_box_handle(struct box_mgr *m, struct http_conn *c, const struct http_request *req);

#endif
