/* The command of a terminal session (GET /v1/boxes/{id}/attach, issue 15):
 *   ?cmd=ARG            repeated, one per argv element, in order
 *   &env=K%3DV          repeated, K=V added to the process's environment
 *   &workdir=/path      absolute
 *   &user=uid[:gid]     numeric
 * Query parameters (not a first WebSocket message) so that a bad command is
 * a plain 400 before the upgrade, like the route's other parameters.  The
 * argv goes to runsc as a list: no shell ever sees it. */
#ifndef BOXER_ATTACH_REQ_H
#define BOXER_ATTACH_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ATTACH_ARGS_MAX 256    /* cmd values */
#define ATTACH_ENV_MAX 64      /* env values */
#define ATTACH_VALUE_MAX 4096  /* one decoded value */
#define ATTACH_BYTES_MAX 8192  /* cmd + env + workdir, decoded, with NULs */

struct attach_req {
    char **cmd; /* NULL-terminated; NULL when no cmd was given (the shell) */
    char **env; /* "K=V", NULL-terminated, or NULL */
    char *workdir;
    int set_user;
    uint32_t uid, gid;
};

/* Parses query (query_len bytes, may be NULL); 400 with a message on bad
 * input.  *r is zeroed first; attach_req_free after, also on failure. */
int attach_req_parse(const char *query, size_t query_len, struct attach_req *r,
                     struct bx_err *err);
void attach_req_free(struct attach_req *r);

#endif
