/* The route table: which handler answers which method and path, and
 * everything derived from it (405 with its Allow list, 404, the metrics
 * label of a request).  Pure: no I/O, no allocation.
 *
 * A pattern is matched against a whole decoded path.  Its bytes must match
 * exactly, except "{name}", which captures one parameter: one or more bytes
 * up to the next '/' or ':' (or the end), so "/v1/boxes/{id}:stop" and
 * "/v1/boxes/{id}/exec/{eid}" both work.  A captured parameter never
 * contains '/' or ':'. */
#ifndef BOXER_ROUTE_H
#define BOXER_ROUTE_H

#include <stddef.h>

#include "httpparse.h"

#define ROUTE_MAX_PARAMS 4

struct route_params {
    size_t n;
    struct {
        const char *s; /* points into the matched path; not NUL-terminated */
        size_t len;
    } p[ROUTE_MAX_PARAMS];
};

struct http_conn;
typedef void (*route_fn)(void *app, struct http_conn *c, const struct http_request *req,
                         const struct route_params *params);

struct route {
    enum http_method method; /* HTTP_GET also answers HEAD */
    const char *pattern;
    route_fn handler;
    const char *label; /* the metrics label of every request to this path */
    int public;        /* 1: answered before the Host, Origin and token checks;
                        * 2: Host and Origin checked, no token (the web
                        * console's static files: the page asks for it) */
};

/* 1 when path matches pattern whole (params filled), else 0.  A pattern
 * with more than ROUTE_MAX_PARAMS parameters never matches. */
int route_match(const char *pattern, const char *path, struct route_params *params);

/* The entry for method and path (params filled), or NULL.  *same_path is
 * the first entry with this path whatever its method, or NULL: a NULL
 * answer then means 405, else 404. */
const struct route *route_find(const struct route *table, size_t n, enum http_method method,
                               const char *path, struct route_params *params,
                               const struct route **same_path);

/* The Allow value for path: the methods of the entries with this path, in
 * table order, GET followed by HEAD ("GET, HEAD, POST").  Truncated to cap. */
void route_allow(const struct route *table, size_t n, const char *path, char *out, size_t cap);

/* The first matching entry's label, else "other". */
const char *route_label(const struct route *table, size_t n, const char *path);

/* The distinct labels in table order (at most cap); returns how many. */
size_t route_labels(const struct route *table, size_t n, const char **out, size_t cap);

#endif
