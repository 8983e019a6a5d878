/* What api_box.c and its pieces (api_box_ctl.c) share; not for other
 * modules. */
#ifndef BOXER_API_BOX_INTERNAL_H
#define BOXER_API_BOX_INTERNAL_H

#include "api_v1.h"
#include "err.h"
#include "http.h"
#include "json.h"

struct box_mgr;
struct box_exec;
struct box_exec_req;

/* api_box.c */
void respond_box_err(struct http_conn *c, const struct bx_err *err);
void respond_exec(struct http_conn *c, int status, const struct box_exec *e, int extra);
/* 1 when the query has name=1 or name=true. */
int query_flag(const struct http_request *req, const char *name);

/* api_box_ctl.c (issue 14): "stdin"/"stdin_b64"/"stdin_open" of an exec
 * request into r (413 over stdin_limit_bytes, 400 bad value). */
int api_box_parse_stdin(struct box_mgr *m, const struct json_value *root, struct box_exec_req *r,
                        struct bx_err *err);

#endif
