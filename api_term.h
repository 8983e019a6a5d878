/* GET /v1/boxes/{id}/attach: a shell on a pseudo-terminal in the box over
 * a WebSocket (ws.c, http_upgrade, box_term.c).
 *
 * Query: shell (absolute path, default /bin/bash; /bin/sh when the box
 * lacks it), cols and rows (1..1000, default 80x24), term (TERM, default
 * xterm-256color).  Binary frames carry terminal bytes both ways; text
 * frames carry JSON control messages: from the client
 * {"type":"resize","cols":C,"rows":R}, from the server
 * {"type":"exit","code":N} when the shell has ended, followed by a close
 * (1000).  A bad control message closes with 1003; protocol violations
 * with 1002, 1007 or 1009 (ws.h). */
#ifndef BOXER_API_TERM_H
#define BOXER_API_TERM_H

#include "api_box.h"

api_box_fn api_box_attach;      /* GET /v1/boxes/{id}/attach */
api_box_fn api_box_exec_resize; /* POST /v1/boxes/{id}/exec/{eid}/resize */

struct json_value;
struct box_exec_req;
/* The exec request's "tty": {"rows": R, "cols": C} (1..1000 each), or
 * absent/null: no terminal.  400 otherwise. */
int api_term_parse_tty(const struct json_value *root, struct box_exec_req *r,
                       struct bx_err *err);

#endif
