/* What boxer.c (main, start-up, the route table, auth, signals) and
 * boxer_routes.c (the handlers of the original API) share; nothing else
 * includes it. */
#ifndef BOXER_BOXER_INTERNAL_H
#define BOXER_BOXER_INTERNAL_H

#include <stdint.h>

#include "config.h"
#include "http.h"
#include "store.h"
#include "util.h"

struct app {
    struct config cfg;
    struct loop *loop;
    struct http_server *http;
    struct store *store;
    struct image_cache *images;
    struct cg_ctx *cgroups;
    struct net *net;
    struct run_mgr *runs;
    struct box_mgr *boxes;
    struct ui_node *node; /* GET /v1/node */
    struct metrics *metrics;
    struct upload_ctx *committing; /* uploads whose commit child runs */
    struct str_list tokens; /* auth_tokens plus $BOXER_TOKEN; empty: no auth */
    char runsc[4096];
    char platform[16];
    int sigfd;
    int stopping;
    uint64_t stop_deadline;
    int draining;            /* SIGTERM: no new runs or boxes (issue 17) */
    uint64_t drain_deadline; /* runs in flight, then boxes, until then */
};

enum upload_part { PART_NONE, PART_PATH, PART_FILE, PART_OTHER };

struct upload_ctx {
    struct app *app;
    struct http_conn *conn;  /* NULL once the client is gone */
    struct upload_ctx *next; /* app->committing */
    struct proc *commit;     /* the child fsyncing and renaming it */
    struct store_report *rep;
    struct mp_parser *mp;
    struct store_upload *up;
    enum upload_part part;
    int have_path, have_file;
    char path[STORE_PATH_MAX + 2];
    size_t path_len;
    int path_too_long;
};

/* boxer_routes.c: the handlers boxer.c's route table dispatches to */
/* 405 with its Allow: header (allow lists the path's methods). */
void route_method_not_allowed(struct http_conn *c, const char *allow);
/* GET /healthz: always {"ok":true}. */
void route_healthz(struct http_conn *c);
/* GET /readyz: 200 when the node takes new work, else 503 and why. */
void route_readyz(struct app *a, struct http_conn *c);
/* POST /files: a multipart upload into the store. */
void route_upload(struct app *a, struct http_conn *c, const struct http_request *req);
/* GET /files?path=: a stored file. */
void route_download(struct app *a, struct http_conn *c, const struct http_request *req);
/* GET /swagger...: the OpenAPI document and its page. */
void route_swagger(struct http_conn *c, const char *path);
/* POST /run: one command in a fresh sandbox, answered when it ends. */
void route_run(struct app *a, struct http_conn *c);
/* POST /run as multipart/form-data (issue 17): a request part, then file
 * parts streamed to disk (run_multipart.c); ct is the Content-Type. */
void route_run_multipart(struct app *a, struct http_conn *c, const struct http_header *ct);
/* GET /images: the cached images. */
void route_images_list(struct app *a, struct http_conn *c);
/* DELETE /images?ref=: evicts a cached image. */
void route_images_delete(struct app *a, struct http_conn *c, const struct http_request *req);
/* GET /metrics: the Prometheus text format. */
void route_metrics(struct app *a, struct http_conn *c);
/* Frees an upload (its parser and half-written file); NULL is a no-op. */
void upload_ctx_free(struct upload_ctx *u);

#endif
