/* boxer: main, configuration, routes and wiring.  This is the one place where
 * module errors become HTTP answers (respond_bx_err). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api_run.h"
#include "cgroup.h"
#include "config.h"
#include "http.h"
#include "image.h"
#include "imgref.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "multipart.h"
#include "net.h"
#include "openapi.h"
#include "api_box.h"
#include "api_box_internal.h"
#include "api_v1.h"
#include "run_stream.h"
#include "api_term.h"
#include "box.h"
#include "cli.h"
#include "proc.h"
#include "route.h"
#include "ui.h"
#include "wsauth.h"
#include "run.h"
#include "store.h"
#include "util.h"

#define SHUTDOWN_GRACE_MS 10000

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

/* ---- the one error-to-HTTP mapping ---- */

static void respond_bx_err(struct http_conn *c, const struct bx_err *err)
{
    http_respond_error(c, bx_err_http_status(err), err->msg[0] ? err->msg : "internal error");
}

static void respond_json(struct http_conn *c, int status, struct sbuf *body)
{
    http_respond(c, status, "application/json", NULL, body->data, body->len);
}

static void route_method_not_allowed(struct http_conn *c, const char *allow)
{
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    http_respond_error_with_headers(c, BX_E_METHOD_NOT_ALLOWED, hdr, "method not allowed");
}

/* ---- GET /healthz ---- */

static void route_healthz(struct http_conn *c)
{
    static const char ok[] = "{\"ok\":true}";
    http_respond(c, 200, "application/json", NULL, ok, sizeof(ok) - 1);
}

/* ---- GET /readyz (issue 17) ---- */

/* 1 when this node takes new work; else 0 and why (for a balancer's health
 * check and its operator): draining, the run queue full, the disk below
 * min_free_disk_percent, or no memory left for a default run. */
static int node_ready(struct app *a, char *why, size_t cap)
{
    struct run_stats rs;
    struct bx_err err;
    uint64_t held;
    if (a->draining || a->stopping) {
        snprintf(why, cap, "draining: not accepting new runs or boxes");
        return 0;
    }
    run_stats(a->runs, &rs);
    if (rs.running >= a->cfg.max_concurrent_runs && rs.queued >= a->cfg.max_queued_runs) {
        snprintf(why, cap, "run queue full: %" PRIu64 " running, %" PRIu64 " queued",
                 rs.running, rs.queued);
        return 0;
    }
    held = rs.runs_memory_mb + rs.held_memory_mb;
    if (held >= a->cfg.total_memory_mb ||
        a->cfg.total_memory_mb - held < a->cfg.defaults.memory_mb) {
        snprintf(why, cap,
                 "memory budget exhausted: %" PRIu64 " of total_memory_mb %" PRIu64
                 " MiB held by runs and boxes",
                 held, a->cfg.total_memory_mb);
        return 0;
    }
    bx_err_clear(&err);
    if (store_check_disk(-1, a->cfg.home, 0, a->cfg.min_free_disk_percent, "disk", &err) < 0) {
        snprintf(why, cap, "%s", err.msg);
        return 0;
    }
    return 1;
}

static void route_readyz(struct app *a, struct http_conn *c)
{
    char why[BX_ERR_MSG_MAX];
    struct sbuf sb;
    struct json_writer w;
    int ready = node_ready(a, why, sizeof(why));
    sbuf_init(&sb, 4096 + sizeof(why));
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    json_w_key(&w, "ready");
    json_w_bool(&w, ready);
    json_w_key(&w, "node_id");
    json_w_cstr(&w, a->cfg.node_id);
    if (!ready) {
        json_w_key(&w, "reason");
        json_w_cstr(&w, why);
    }
    json_w_obj_end(&w);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
    else
        http_respond(c, ready ? 200 : 503, "application/json", ready ? NULL : "Retry-After: 5\r\n",
                     sb.data, sb.len);
    sbuf_free(&sb);
}

/* ---- POST /files ---- */

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

static void upload_ctx_free(struct upload_ctx *u)
{
    if (!u)
        return;
    mp_free(&u->mp);
    store_upload_abort(&u->up);
    store_report_free(&u->rep);
    free(u);
}

static void committing_remove(struct upload_ctx *u)
{
    for (struct upload_ctx **pp = &u->app->committing; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
}

static int up_part_begin(void *ctx, const char *name, size_t name_len, int has_filename,
                         struct bx_err *err)
{
    struct upload_ctx *u = ctx;
    (void)has_filename;
    if (name_len == 4 && memcmp(name, "path", 4) == 0) {
        if (u->have_path)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "multipart: duplicate field path");
        u->part = PART_PATH;
        u->have_path = 1;
    } else if (name_len == 4 && memcmp(name, "file", 4) == 0) {
        if (u->have_file)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "multipart: duplicate field file");
        u->part = PART_FILE;
        u->have_file = 1;
        if (store_upload_begin(u->app->store, &u->up, err) < 0)
            return -1;
    } else {
        u->part = PART_OTHER;
    }
    return 0;
}

static int up_part_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct upload_ctx *u = ctx;
    if (u->part == PART_PATH) {
        if (len > sizeof(u->path) - 1 - u->path_len) {
            u->path_too_long = 1;
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "path is longer than %d bytes",
                              STORE_PATH_MAX);
        }
        memcpy(u->path + u->path_len, data, len);
        u->path_len += len;
    } else if (u->part == PART_FILE) {
        if (len > u->app->cfg.upload_limit_bytes - store_upload_size(u->up))
            return bx_err_set(err, BX_E_TOO_LARGE, 0,
                              "file is larger than upload_limit_bytes (%" PRIu64 ")",
                              u->app->cfg.upload_limit_bytes);
        return store_upload_write(u->up, data, len, err);
    }
    return 0;
}

static int up_part_end(void *ctx, struct bx_err *err)
{
    struct upload_ctx *u = ctx;
    (void)err;
    u->part = PART_NONE;
    return 0;
}

static const struct mp_callbacks upload_mp_cb = {up_part_begin, up_part_data, up_part_end};

static int up_on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct upload_ctx *u = ctx;
    return mp_feed(u->mp, data, len, err);
}

static void up_answer(struct upload_ctx *u, const char *norm)
{
    struct sbuf body;
    struct json_writer w;

    sbuf_init(&body, STORE_PATH_MAX * 7 + 64);
    json_w_init(&w, &body);
    json_w_obj_begin(&w);
    json_w_key(&w, "path");
    json_w_cstr(&w, norm);
    json_w_obj_end(&w);
    if (w.failed)
        http_respond_error(u->conn, BX_E_INTERNAL, "out of memory");
    else
        respond_json(u->conn, 200, &body);
    sbuf_free(&body);
}

/* In the commit child: the fsyncs and the rename, off the loop. */
static int up_commit_child(void *arg)
{
    struct upload_ctx *u = arg;
    bx_err_clear(&u->rep->err);
    if (store_upload_commit_io(u->up, u->path, u->rep, &u->rep->err) < 0) {
        if (u->rep->err.status == 0)
            u->rep->err.status = BX_E_INTERNAL;
        return 1;
    }
    return 0;
}

static void up_on_commit_exit(void *arg, int status)
{
    struct upload_ctx *u = arg;
    struct bx_err e;

    proc_free(&u->commit);
    committing_remove(u);
    store_upload_finish(&u->up, u->rep->finished, u->rep);
    if (u->conn) {
        if (u->rep->finished && u->rep->err.status == 0) {
            up_answer(u, u->path);
        } else {
            if (u->rep->finished)
                e = u->rep->err;
            else
                bx_err_set(&e, BX_E_INTERNAL, 0, "upload commit process died (status %d)", status);
            respond_bx_err(u->conn, &e);
        }
    }
    upload_ctx_free(u);
}

static int up_on_end(void *ctx, struct bx_err *err)
{
    struct upload_ctx *u = ctx;
    char norm[STORE_PATH_MAX + 1];
    int keep[4], n;

    if (mp_finish(u->mp, err) < 0)
        return -1;
    if (!u->have_path)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "missing field path");
    if (!u->have_file)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "missing field file");
    if (store_normalize_path(u->path, u->path_len, 1, norm, err) < 0)
        return -1;
    /* u->path becomes the normalized path (never longer), for the child. */
    memcpy(u->path, norm, strlen(norm) + 1);
    mp_free(&u->mp);
    /* fsync of up to upload_limit_bytes can take seconds: a child does it,
     * and the answer waits for it (the file is durable when we say 200). */
    u->rep = store_report_new();
    n = u->rep ? store_upload_fds(u->up, keep, 4) : 0;
    if (!u->rep || proc_fork(u->app->loop, keep, n, up_commit_child, u, up_on_commit_exit, u,
                             &u->commit, err) < 0) {
        store_report_free(&u->rep);
        if (store_upload_commit(&u->up, norm, err) < 0)
            return -1;
        up_answer(u, norm);
        upload_ctx_free(u);
        return 0;
    }
    u->next = u->app->committing;
    u->app->committing = u;
    return 0;
}

static void up_on_abort(void *ctx)
{
    struct upload_ctx *u = ctx;
    /* The client left during the commit: the commit still finishes (or
     * not) on its own; only the answer is dropped. */
    if (u->commit) {
        u->conn = NULL;
        return;
    }
    upload_ctx_free(u);
}

static const struct http_body_ops upload_ops = {up_on_data, up_on_end, up_on_abort};

static void route_upload(struct app *a, struct http_conn *c, const struct http_request *req)
{
    const struct http_header *ct = http_find_header(req, "Content-Type");
    char boundary[MP_MAX_BOUNDARY + 1];
    size_t blen = 0;
    struct bx_err err;
    struct upload_ctx *u;

    bx_err_clear(&err);
    if (!ct || !http_media_type_is(ct->value, ct->value_len, "multipart/form-data")) {
        http_respond_error(c, BX_E_UNSUPPORTED_MEDIA, "Content-Type must be multipart/form-data");
        return;
    }
    if (mp_boundary_from_content_type(ct->value, ct->value_len, boundary, &blen, &err) < 0) {
        respond_bx_err(c, &err);
        return;
    }
    u = calloc(1, sizeof(*u));
    if (!u) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    u->app = a;
    u->conn = c;
    if (mp_new(&u->mp, boundary, blen, &upload_mp_cb, u, &err) < 0) {
        upload_ctx_free(u);
        respond_bx_err(c, &err);
        return;
    }
    /* The file may be exactly upload_limit_bytes; the multipart framing and
     * the path field come on top, bounded separately. */
    http_accept_body(c, a->cfg.upload_limit_bytes + 64 * 1024, &upload_ops, u);
}

/* ---- GET /files ---- */

static void route_download(struct app *a, struct http_conn *c, const struct http_request *req)
{
    char raw[STORE_PATH_MAX * 3 + 1];
    char norm[STORE_PATH_MAX + 1];
    size_t len = 0;
    struct bx_err err;
    int fd = -1;
    uint64_t size = 0;
    int r;

    bx_err_clear(&err);
    r = http_query_param(req->query, req->query ? req->query_len : 0, "path", raw, sizeof(raw),
                         &len, &err);
    if (r < 0) {
        respond_bx_err(c, &err);
        return;
    }
    if (r == 0) {
        http_respond_error(c, BX_E_BAD_REQUEST, "missing query parameter path");
        return;
    }
    if (store_normalize_path(raw, len, 0, norm, &err) < 0 ||
        store_open_read(a->store, norm, &fd, &size, &err) < 0) {
        respond_bx_err(c, &err);
        return;
    }
    http_respond_file(c, 200, "application/octet-stream", fd, size);
}

/* ---- GET /swagger ---- */

static void route_swagger(struct http_conn *c, const char *path)
{
    if (strcmp(path, "/swagger/openapi.json") == 0) {
        http_respond(c, 200, "application/json", NULL, boxer_openapi_json,
                     strlen(boxer_openapi_json));
        return;
    }
    http_respond(c, 200, "text/html; charset=utf-8", NULL, boxer_swagger_html,
                 strlen(boxer_swagger_html));
}


/* ---- POST /run ---- */

struct run_ctx {
    struct app *app;
    struct http_conn *conn;
    struct sbuf body;
    struct run_job *job;
};

static void run_ctx_free(struct run_ctx *r)
{
    if (!r)
        return;
    sbuf_free(&r->body);
    free(r);
}

/* persist=false: the inputs and the captured outputs go once the answer has
 * been written (or the client is gone). */
struct cleanup_ctx {
    struct app *app;
    struct run_result *res;
    struct run_answer *ans;
};

static void on_run_answer_done(void *arg, int delivered)
{
    struct cleanup_ctx *cc = arg;
    (void)delivered;
    run_answer_free(&cc->ans);
    run_result_release(cc->app->runs, &cc->res);
    free(cc);
}

static int on_answer_fill(void *arg, struct sbuf *out, size_t want)
{
    struct cleanup_ctx *cc = arg;
    return run_answer_fill(cc->ans, out, want);
}

static void on_run_done(void *arg, struct run_result *res)
{
    struct run_ctx *r = arg;
    struct http_conn *c = r->conn;
    struct app *a = r->app;
    struct cleanup_ctx *cc = calloc(1, sizeof(*cc));
    struct run_answer *ans = NULL;
    int status = 200;
    int rc;

    run_ctx_free(r);
    if (res->outcome != RUN_ERROR)
        metrics_observe_run(a->metrics, res->wall_ms);
    rc = cc ? run_answer_new(res, &ans, &status) : -1;
    if (rc == -1) {
        free(cc);
        run_result_release(a->runs, &res);
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    cc->app = a;
    cc->res = res;
    cc->ans = ans;
    http_on_done(c, on_run_answer_done, cc);
    if (rc < 0)
        http_respond_error(c, BX_E_INTERNAL, "could not encode the run result");
    else
        http_respond_stream(c, status, "application/json", run_answer_len(ans), on_answer_fill,
                            cc);
}

static int run_on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct run_ctx *r = ctx;
    if (sbuf_append(&r->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, 0, "request body is larger than %llu bytes",
                          (unsigned long long)run_max_body(&r->app->cfg));
    return 0;
}

static int run_on_end(void *ctx, struct bx_err *err)
{
    struct run_ctx *r = ctx;
    struct run_request *req = NULL;
    if (run_request_parse(r->body.data ? r->body.data : "", r->body.len, &r->app->cfg, &req,
                          err) < 0)
        return -1;
    sbuf_free(&r->body);
    if (req->stream) {
        /* NDJSON events (run_stream.c): answered now, the stream owns the run. */
        struct run_stream_params sp = {r->app->runs, r->app->loop, r->app->metrics,
                                       r->app->cfg.exec_output_bytes,
                                       r->app->cfg.stream_keepalive_secs * 1000};
        if (run_stream_start(&sp, r->conn, &req, err) < 0) {
            run_request_free(&req);
            return -1;
        }
        run_ctx_free(r);
        return 0;
    }
    if (run_submit(r->app->runs, &req, on_run_done, r, &r->job, err) < 0) {
        run_request_free(&req);
        return -1;
    }
    return 0;
}

static void run_on_abort(void *ctx)
{
    struct run_ctx *r = ctx;
    if (r->job)
        run_cancel(r->job);
    run_ctx_free(r);
}

static const struct http_body_ops run_ops = {run_on_data, run_on_end, run_on_abort};

static void route_run(struct app *a, struct http_conn *c)
{
    struct run_ctx *r = calloc(1, sizeof(*r));
    if (!r) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    r->app = a;
    r->conn = c;
    sbuf_init(&r->body, run_max_body(&a->cfg));
    http_accept_body(c, run_max_body(&a->cfg), &run_ops, r);
}

/* ---- /images ---- */

static void route_images_list(struct app *a, struct http_conn *c)
{
    struct bx_err err;
    struct sbuf body;

    bx_err_clear(&err);
    sbuf_init(&body, 64u << 20);
    if (image_list_json(a->images, &body, &err) < 0)
        respond_bx_err(c, &err);
    else
        respond_json(c, 200, &body);
    sbuf_free(&body);
}

static void route_images_delete(struct app *a, struct http_conn *c, const struct http_request *req)
{
    struct bx_err err;
    char raw[IMGREF_MAX * 3 + 1];
    size_t len = 0;
    struct imgref ref;
    int r;

    bx_err_clear(&err);
    r = http_query_param(req->query, req->query ? req->query_len : 0, "ref", raw, sizeof(raw),
                         &len, &err);
    if (r == 0)
        bx_err_set(&err, BX_E_BAD_REQUEST, 0, "missing query parameter ref");
    if (r <= 0 || imgref_parse(raw, len, &ref, &err) < 0 ||
        image_delete(a->images, &ref, &err) < 0) {
        respond_bx_err(c, &err);
        return;
    }
    http_respond(c, 200, "application/json", NULL, "{\"deleted\":true}", 16);
}


/* ---- GET /metrics ---- */

static uint64_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    uint64_t n = 0;
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the one opendir holds */
}

static uint64_t rss_bytes(void)
{
    char *text = NULL;
    uint64_t kb = 0;
    if (bx_read_file_at(AT_FDCWD, "/proc/self/status", 65536, &text, NULL, NULL) == 0) {
        const char *p = strstr(text, "\nVmRSS:");
        if (p)
            kb = strtoull(p + 7, NULL, 10);
        free(text);
    }
    return kb * 1024;
}

static void route_metrics(struct app *a, struct http_conn *c)
{
    struct metrics_gauges g;
    struct run_stats rs;
    struct image_stats is;
    struct sbuf body;

    memset(&g, 0, sizeof(g));
    run_stats(a->runs, &rs);
    image_stats(a->images, &is);
    g.runs_in_flight = rs.running;
    g.runs_queued = rs.queued;
    g.runs_pending_teardowns = rs.pending_teardowns;
    g.pool_ready = rs.pool_ready;
    g.pool_creating = rs.pool_creating;
    g.pool_hits = rs.pool_hits;
    g.pool_misses = rs.pool_misses;
    g.pool_created = rs.pool_created;
    g.pool_failed = rs.pool_failed;
    g.pool_create_ms_last = rs.pool_create_ms_last;
    g.pool_create_ms_sum = rs.pool_create_ms_sum;
    g.runs_ok = rs.ok;
    g.runs_nonzero = rs.nonzero;
    g.runs_timeout = rs.timeout;
    g.runs_oom = rs.oom;
    g.runs_output_limit = rs.output_limit;
    g.runs_error = rs.error;
    g.pulls_ok = is.pulls_ok;
    g.pulls_failed = is.pulls_failed;
    g.pull_ms_total = is.pull_ms_total;
    g.images_cached = is.cached_images;
    /* Counters, not a walk: a big store must not stall the loop. */
    store_totals(a->store, &g.store_bytes, &g.store_files);
    g.open_fds = count_fds();
    g.rss_bytes = rss_bytes();
    g.connections = http_server_conn_count(a->http);
    g.node_id = a->cfg.node_id;
    {
        char why[BX_ERR_MSG_MAX];
        g.ready = (uint64_t)node_ready(a, why, sizeof(why));
    }
    g.draining = (uint64_t)a->draining;
    if (a->boxes) {
        struct box_stats bs;
        box_stats(a->boxes, &bs);
        g.boxes_creating = bs.creating;
        g.boxes_running = bs.running;
        g.boxes_stopped = bs.stopped;
        g.boxes_error = bs.error;
        g.box_starts = bs.starts;
        g.box_stops = bs.stops;
        g.execs_started = bs.execs_started;
        g.execs_running = bs.execs_running;
        g.execs_finished =
            bs.execs_started > bs.execs_running ? bs.execs_started - bs.execs_running : 0;
    }
    sbuf_init(&body, 1u << 20);
    if (metrics_render(a->metrics, &g, &body) < 0)
        http_respond_error(c, BX_E_INTERNAL, "metrics too large");
    else
        http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, body.data,
                     body.len);
    sbuf_free(&body);
}

/* ---- the route table ---- */

static void on_healthz(void *app, struct http_conn *c, const struct http_request *req,
                       const struct route_params *p)
{
    (void)app, (void)req, (void)p;
    route_healthz(c);
}

static void on_readyz(void *app, struct http_conn *c, const struct http_request *req,
                      const struct route_params *p)
{
    (void)req, (void)p;
    route_readyz(app, c);
}

static void on_download(void *app, struct http_conn *c, const struct http_request *req,
                        const struct route_params *p)
{
    (void)p;
    route_download(app, c, req);
}

static void on_upload(void *app, struct http_conn *c, const struct http_request *req,
                      const struct route_params *p)
{
    (void)p;
    route_upload(app, c, req);
}

static void on_run(void *app, struct http_conn *c, const struct http_request *req,
                   const struct route_params *p)
{
    const struct http_header *ct = http_find_header(req, "Content-Type");
    (void)p;
    /* Only a JSON body: a page may send text/plain across origins
     * without asking (no CORS preflight), never application/json. */
    if (!(ct && http_media_type_is(ct->value, ct->value_len, "application/json")))
        http_respond_error(c, BX_E_UNSUPPORTED_MEDIA, "Content-Type must be application/json");
    else
        route_run(app, c);
}

static void on_images_list(void *app, struct http_conn *c, const struct http_request *req,
                           const struct route_params *p)
{
    (void)req, (void)p;
    route_images_list(app, c);
}

static void on_images_delete(void *app, struct http_conn *c, const struct http_request *req,
                             const struct route_params *p)
{
    (void)p;
    route_images_delete(app, c, req);
}

static void on_metrics(void *app, struct http_conn *c, const struct http_request *req,
                       const struct route_params *p)
{
    (void)req, (void)p;
    route_metrics(app, c);
}

static void on_swagger(void *app, struct http_conn *c, const struct http_request *req,
                       const struct route_params *p)
{
    (void)app, (void)req, (void)p;
    route_swagger(c, http_conn_path(c));
}

/* /v1/boxes...: api_box.c's handler for the route, on the app's boxes. */
#define ON_BOX(fn)                                                                           \
    static void on_##fn(void *app, struct http_conn *c, const struct http_request *req,     \
                        const struct route_params *p)                                       \
    {                                                                                        \
        fn(((struct app *)app)->boxes, c, req, p);                                          \
    }
/* the same for the routes one api_box.c handler serves with an op */
#define ON_BOX_OP(name, fn, op)                                                              \
    static void on_##name(void *app, struct http_conn *c, const struct http_request *req,   \
                          const struct route_params *p)                                     \
    {                                                                                        \
        fn(((struct app *)app)->boxes, c, req, p, op);                                       \
    }
ON_BOX(api_box_list)
ON_BOX(api_box_create)
ON_BOX(api_box_get)
ON_BOX_OP(api_box_delete, api_box_on_box, API_BOX_DELETE)
ON_BOX_OP(api_box_stop, api_box_on_box, API_BOX_STOP)
ON_BOX_OP(api_box_start, api_box_on_box, API_BOX_START)
ON_BOX_OP(api_box_exec, api_box_on_box, API_BOX_EXEC)
ON_BOX(api_box_execs)
ON_BOX(api_box_exec_get)
ON_BOX(api_box_exec_events)
ON_BOX_OP(api_box_exec_stdin, api_box_exec_ctl, API_BOX_STDIN)
ON_BOX_OP(api_box_exec_signal, api_box_exec_ctl, API_BOX_SIGNAL)
ON_BOX_OP(api_box_exec_cancel, api_box_exec_ctl, API_BOX_CANCEL)
ON_BOX(api_box_gc)
ON_BOX_OP(api_box_upload, api_box_xfer, API_BOX_UPLOAD)
ON_BOX_OP(api_box_download, api_box_xfer, API_BOX_DOWNLOAD)
ON_BOX(api_box_attach)
ON_BOX(api_box_exec_resize)

/* GET /v1/info, POST /v1/run (api_v1.c) */
static void on_api_v1(void *app, struct http_conn *c, const struct http_request *req, int run)
{
    struct app *a = app;
    struct api_v1 v = {&a->cfg, a->boxes, a->runs};
    if (run)
        api_v1_run(&v, c, req);
    else
        api_v1_info(&v, c, req);
}

static void on_api_v1_info(void *app, struct http_conn *c, const struct http_request *req,
                           const struct route_params *p)
{
    (void)p;
    on_api_v1(app, c, req, 0);
}

static void on_api_v1_run(void *app, struct http_conn *c, const struct http_request *req,
                          const struct route_params *p)
{
    (void)p;
    on_api_v1(app, c, req, 1);
}

/* The web console (ui.c) */
static void on_ui(void *app, struct http_conn *c, const struct http_request *req,
                  const struct route_params *p)
{
    (void)app, (void)req, (void)p;
    ui_serve(c, http_conn_path(c));
}

static void on_ui_root(void *app, struct http_conn *c, const struct http_request *req,
                       const struct route_params *p)
{
    (void)app, (void)req, (void)p;
    ui_redirect(c);
}

static void on_node(void *app, struct http_conn *c, const struct http_request *req,
                    const struct route_params *p)
{
    (void)req, (void)p;
    ui_node_json(((struct app *)app)->node, c);
}

/* Every route, once: dispatch, 405 and its Allow list, 404 and the metrics
 * labels (in this order on /metrics) all come from here. */
static const struct route routes[] = {
    {HTTP_GET, "/healthz", on_healthz, "/healthz", 1},
    {HTTP_GET, "/readyz", on_readyz, "/readyz", 1},
    {HTTP_GET, "/files", on_download, "/files", 0},
    {HTTP_POST, "/files", on_upload, "/files", 0},
    {HTTP_POST, "/run", on_run, "/run", 0},
    {HTTP_GET, "/images", on_images_list, "/images", 0},
    {HTTP_DELETE, "/images", on_images_delete, "/images", 0},
    {HTTP_GET, "/metrics", on_metrics, "/metrics", 0},
    {HTTP_GET, "/swagger", on_swagger, "/swagger", 0},
    {HTTP_GET, "/swagger/", on_swagger, "/swagger", 0},
    {HTTP_GET, "/swagger/index.html", on_swagger, "/swagger", 0},
    {HTTP_GET, "/swagger/openapi.json", on_swagger, "/swagger", 0},
    {HTTP_GET, "/v1/boxes", on_api_box_list, "/v1/boxes", 0},
    {HTTP_POST, "/v1/boxes", on_api_box_create, "/v1/boxes", 0},
    {HTTP_GET, "/v1/boxes/", on_api_box_list, "/v1/boxes", 0},
    {HTTP_POST, "/v1/boxes/", on_api_box_create, "/v1/boxes", 0},
    {HTTP_GET, "/v1/boxes/{id}", on_api_box_get, "/v1/boxes/{id}", 0},
    {HTTP_DELETE, "/v1/boxes/{id}", on_api_box_delete, "/v1/boxes/{id}", 0},
    {HTTP_POST, "/v1/boxes/{id}:stop", on_api_box_stop, "/v1/boxes/{id}:stop", 0},
    {HTTP_POST, "/v1/boxes/{id}:start", on_api_box_start, "/v1/boxes/{id}:start", 0},
    {HTTP_POST, "/v1/boxes/{id}/exec", on_api_box_exec, "/v1/boxes/{id}/exec", 0},
    {HTTP_GET, "/v1/boxes/{id}/execs", on_api_box_execs, "/v1/boxes/{id}/execs", 0},
    {HTTP_GET, "/v1/boxes/{id}/exec/{eid}", on_api_box_exec_get, "/v1/boxes/{id}/exec/{eid}", 0},
    {HTTP_GET, "/v1/boxes/{id}/exec/{eid}/events", on_api_box_exec_events, "/v1/boxes/{id}/exec/{eid}/events", 0},
    {HTTP_POST, "/v1/boxes/{id}/exec/{eid}/stdin", on_api_box_exec_stdin, "/v1/boxes/{id}/exec/{eid}/stdin", 0},
    {HTTP_POST, "/v1/boxes/{id}/exec/{eid}/signal", on_api_box_exec_signal, "/v1/boxes/{id}/exec/{eid}/signal", 0},
    {HTTP_POST, "/v1/boxes/{id}/exec/{eid}:cancel", on_api_box_exec_cancel, "/v1/boxes/{id}/exec/{eid}:cancel", 0},
    {HTTP_POST, "/v1/gc", on_api_box_gc, "/v1/gc", 0},
    {HTTP_POST, "/v1/boxes/{id}/files/upload", on_api_box_upload, "/v1/boxes/{id}/files/upload", 0},
    {HTTP_POST, "/v1/boxes/{id}/files/download", on_api_box_download, "/v1/boxes/{id}/files/download", 0},
    {HTTP_GET, "/v1/info", on_api_v1_info, "/v1/info", 0},
    {HTTP_POST, "/v1/run", on_api_v1_run, "/v1/run", 0},
    {HTTP_GET, "/v1/boxes/{id}/attach", on_api_box_attach, "/v1/boxes/{id}/attach", 0},
    {HTTP_POST, "/v1/boxes/{id}/exec/{eid}/resize", on_api_box_exec_resize, "/v1/boxes/{id}/exec/{eid}/resize", 0},
    {HTTP_GET, "/v1/node", on_node, "/v1/node", 0},
    {HTTP_GET, "/", on_ui_root, "/ui", 2},
    {HTTP_GET, "/ui", on_ui, "/ui", 2},
    {HTTP_GET, "/ui/", on_ui, "/ui", 2},
    {HTTP_GET, "/ui/{file}", on_ui, "/ui", 2},
    {HTTP_GET, "/ui/vendor/{file}", on_ui, "/ui", 2},
};

static void observe_request(void *arg, const char *path, int status)
{
    struct app *a = arg;
    metrics_observe_request(a->metrics, route_label(routes, BX_ARRAY_LEN(routes), path), status);
}

/* ---- authentication ---- */

/* Time depends only on the configured token's length, never on where the
 * presented one differs. */
static int token_equal(const char *given, size_t glen, const char *token)
{
    size_t tlen = strlen(token);
    unsigned diff = glen != tlen;
    for (size_t i = 0; i < tlen; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

static int authorized(const struct app *a, const struct http_request *req)
{
    const struct http_header *h;
    const char *given;
    size_t glen;
    struct wsauth ws;
    int ok = 0;
    if (a->tokens.n == 0)
        return 1;
    h = http_find_header(req, "Authorization");
    if (h) {
        if (h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
            return 0;
        given = h->value + 7;
        glen = h->value_len - 7;
    } else {
        /* A browser's WebSocket cannot send Authorization: the console
         * offers the token as a subprotocol (wsauth.h). */
        h = http_find_header(req, "Sec-WebSocket-Protocol");
        if (!h)
            return 0;
        wsauth_parse(h->value, h->value_len, &ws);
        if (!ws.has_token)
            return 0;
        given = ws.token;
        glen = ws.token_len;
    }
    /* Check every token, so timing does not tell which one matched. */
    for (size_t i = 0; i < a->tokens.n; i++)
        ok |= token_equal(given, glen, a->tokens.items[i]);
    return ok;
}

static int load_tokens(struct app *a, struct bx_err *err)
{
    const char *env = getenv("BOXER_TOKEN");
    size_t n = a->cfg.auth_tokens.n + (env && *env ? 1 : 0);
    a->tokens.items = calloc(n + 1, sizeof(char *));
    if (!a->tokens.items)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t i = 0; i < a->cfg.auth_tokens.n; i++)
        a->tokens.items[a->tokens.n++] = a->cfg.auth_tokens.items[i];
    if (env && *env)
        a->tokens.items[a->tokens.n++] = (char *)env;
    return 0;
}

/* "" (no TCP listener, the Unix socket only) counts as loopback: only
 * this host's users who may open the socket file reach it. */
static int listens_on_loopback(const char *addr)
{
    return addr[0] == '\0' || strncmp(addr, "127.", 4) == 0 || strncmp(addr, "localhost:", 10) == 0 ||
           strncmp(addr, "[::1]:", 6) == 0;
}

/* ---- routing ---- */

/* A web page must not reach the API (issue 11): a request with a foreign
 * Origin is refused, and on a loopback connection the Host must name the
 * loopback, so a DNS-rebound name (evil.example -> 127.0.0.1) gets nothing.
 * Returns 0 when an answer was given. */
static int browser_safe(const struct app *a, struct http_conn *c, const struct http_request *req)
{
    const struct http_header *host = http_find_header(req, "Host");
    const struct http_header *origin = http_find_header(req, "Origin");
    const char *hv = host ? host->value : NULL;
    size_t hl = host ? host->value_len : 0;

    if (http_conn_on_loopback(c) && !http_host_is_loopback(hv, hl) &&
        !http_host_listed(hv, hl, a->cfg.allowed_hosts.items, a->cfg.allowed_hosts.n)) {
        http_respond_error(c, BX_E_MISDIRECTED,
                           "Host must name the loopback (localhost, 127.0.0.1, [::1]) "
                           "or be listed in allowed_hosts");
        return 0;
    }
    if (origin && !http_origin_allowed(origin->value, origin->value_len, hv, hl,
                                       a->cfg.allowed_origins.items, a->cfg.allowed_origins.n)) {
        http_respond_error(c, BX_E_FORBIDDEN,
                           "cross-origin requests are refused (see allowed_origins)");
        return 0;
    }
    return 1;
}

/* New work a draining node refuses (issue 17): runs, box creates, starts
 * and execs.  Everything else (reads, stop, remove, exec control, outputs)
 * keeps working until the end. */
static int drain_refuses(const struct route *rt)
{
    return rt->handler == on_run || rt->handler == on_api_v1_run ||
           rt->handler == on_api_box_create || rt->handler == on_api_box_start ||
           rt->handler == on_api_box_exec;
}

static void handle_request(void *arg, struct http_conn *c, const struct http_request *req)
{
    struct app *a = arg;
    const char *path = http_conn_path(c);
    struct route_params params;
    const struct route *same_path;
    const struct route *rt =
        route_find(routes, BX_ARRAY_LEN(routes), req->method, path, &params, &same_path);
    char allow[96];

    /* /healthz tells nothing and must answer monitors whatever their Host. */
    if (!(same_path && same_path->public == 1)) {
        if (!browser_safe(a, c, req))
            return;
        if (!(same_path && same_path->public == 2) && !authorized(a, req)) {
            http_respond_error_with_headers(c, BX_E_UNAUTHORIZED, "WWW-Authenticate: Bearer\r\n",
                                            "missing or wrong bearer token");
            return;
        }
    }
    if (rt && a->draining && drain_refuses(rt)) {
        /* Retried elsewhere by a balancer (haproxy retry-on 503). */
        if (strncmp(path, "/v1/", 4) == 0)
            respond_v1_error(c, BX_E_UNAVAILABLE, "RESOURCE_EXCEEDED",
                             "this node is draining: retry on another node");
        else
            http_respond_error_with_headers(c, BX_E_UNAVAILABLE, "Retry-After: 5\r\n",
                                            "this node is draining: retry on another node");
    } else if (rt) {
        rt->handler(a, c, req, &params);
    } else if (same_path) {
        route_allow(routes, BX_ARRAY_LEN(routes), path, allow, sizeof(allow));
        route_method_not_allowed(c, allow);
    } else {
        http_respond_error(c, BX_E_NOT_FOUND, "not found");
    }
}

/* ---- signals and shutdown ---- */

static void check_stopped(struct loop *l, void *arg)
{
    struct app *a = arg;
    if (http_server_conn_count(a->http) == 0 || bx_now_ms() >= a->stop_deadline) {
        loop_stop(l);
        return;
    }
    loop_timer_add(l, 50, check_stopped, a);
}

/* At once (SIGINT, a second SIGTERM, or the end of a drain): requests in
 * flight get SHUTDOWN_GRACE_MS, then the loop stops (as before issue 17). */
static void stop_now(struct app *a, unsigned signo)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    bx_log_info("signal %u, finishing in-flight requests (at most %d ms)", signo,
                SHUTDOWN_GRACE_MS);
    http_server_shutdown(a->http);
    a->stop_deadline = bx_now_ms() + SHUTDOWN_GRACE_MS;
    loop_timer_add(a->loop, 0, check_stopped, a);
}

/* The drain's second step: running boxes stop cleanly (TERM, then
 * box_stop_grace_secs; disks kept), then Boxer stops. */
static void drain_boxes_tick(struct loop *l, void *arg)
{
    struct app *a = arg;
    struct box_stats bs;
    memset(&bs, 0, sizeof(bs));
    if (a->stopping)
        return;
    if (a->boxes)
        box_stats(a->boxes, &bs);
    if (bs.running + bs.creating == 0 || bx_now_ms() >= a->drain_deadline) {
        bx_log_info("drained");
        stop_now(a, SIGTERM);
        return;
    }
    /* a create or start that was under way when the drain began */
    box_stop_all(a->boxes);
    loop_timer_add(l, 100, drain_boxes_tick, a);
}

/* The drain's first step: runs (queued ones too) and box execs in flight
 * finish, for at most drain_timeout_secs. */
static void drain_tick(struct loop *l, void *arg)
{
    struct app *a = arg;
    struct run_stats rs;
    struct box_stats bs;
    memset(&bs, 0, sizeof(bs));
    if (a->stopping)
        return;
    run_stats(a->runs, &rs);
    if (a->boxes)
        box_stats(a->boxes, &bs);
    if (rs.running + rs.queued + bs.execs_running > 0 && bx_now_ms() < a->drain_deadline) {
        loop_timer_add(l, 50, drain_tick, a);
        return;
    }
    if (rs.running + rs.queued + bs.execs_running > 0)
        bx_log_warn("drain_timeout_secs reached with %" PRIu64 " runs and %" PRIu64
                    " execs in flight",
                    rs.running + rs.queued, bs.execs_running);
    if (a->boxes && box_stop_all(a->boxes) > 0)
        bx_log_info("draining: stopping the running boxes");
    /* A box stop ends within its grace plus the teardown. */
    a->drain_deadline = bx_now_ms() + (a->cfg.box_stop_grace_secs + 15) * 1000;
    loop_timer_add(l, 0, drain_boxes_tick, a);
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct app *a = arg;
    struct signalfd_siginfo si;
    ssize_t n;
    (void)events;
    n = read(fd, &si, sizeof(si));
    if (n != (ssize_t)sizeof(si))
        return;
    if (si.ssi_signo == SIGCHLD) {
        proc_sigchld();
        return;
    }
    if (a->stopping)
        return;
    if (si.ssi_signo != SIGTERM || a->draining) {
        stop_now(a, si.ssi_signo);
        return;
    }
    /* SIGTERM (issue 17): drain.  /readyz says 503 at once, so a balancer
     * stops sending; new runs and boxes get 503 with Retry-After. */
    a->draining = 1;
    a->drain_deadline = bx_now_ms() + a->cfg.drain_timeout_secs * 1000;
    bx_log_info("SIGTERM: draining (runs in flight finish within %" PRIu64
                " s, then boxes stop; SIGINT or another SIGTERM stops at once)",
                a->cfg.drain_timeout_secs);
    loop_timer_add(l, 0, drain_tick, a);
}

static int setup_signals(struct app *a, struct bx_err *err)
{
    sigset_t set;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "sigprocmask");
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "signalfd");
    return loop_add(a->loop, a->sigfd, EPOLLIN, on_signal, a, err);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Under memory pressure the kernel must pick a sandbox, never Boxer: a
 * killed Boxer loses every run in flight and its clients' answers.  Its
 * children (runsc, skopeo, umoci, captures) do not inherit this: proc.c
 * gives each its own value before exec. */
static void protect_from_oom(void)
{
    static const char val[] = "-1000";
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || bx_write_all(fd, val, sizeof(val) - 1) < 0)
        bx_log_warn("WARNING: cannot set oom_score_adj -1000 (%s): the OOM killer "
                        "may pick Boxer instead of a sandbox",
                strerror(errno));
    if (fd >= 0)
        close(fd);
}

static size_t max_connections(void)
{
    struct rlimit rl;
    /* Keep a reserve of descriptors for runs, pulls and the store so a flood
     * of connections cannot starve them. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 512)
        return (size_t)(rl.rlim_cur - 256) / 1;
    return 256;
}


/* Finds runsc and the platform to use: the configured one when the
 * installed runsc knows it, else ptrace with a warning (bookworm's 2022
 * runsc has no systrap).  kvm is never chosen on our own: it hangs on
 * virtual machines without nested virtualisation. */
static int probe_runsc(struct app *a, struct bx_err *err)
{
    char root[4096], plat[64];
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    const char *want = a->cfg.platform;
    int status;

    if (a->cfg.runsc_path[0]) {
        if (access(a->cfg.runsc_path, X_OK) != 0)
            return bx_err_sys(err, BX_E_INTERNAL, "runsc_path %s", a->cfg.runsc_path);
        snprintf(a->runsc, sizeof(a->runsc), "%s", a->cfg.runsc_path);
    } else if (proc_find_in_path("runsc", getenv("PATH"), a->runsc, sizeof(a->runsc)) < 0 &&
               proc_find_in_path("runsc", NULL, a->runsc, sizeof(a->runsc)) < 0) {
        return bx_err_set(err, BX_E_INTERNAL, ENOENT, "runsc not found in PATH (set runsc_path)");
    }
    snprintf(root, sizeof(root), "--root=%s/runs/.probe", a->cfg.home);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *argv[] = {a->runsc, root, plat, "list", NULL};
        struct proc_spec spec = {.path = a->runsc, .argv = argv, .envp = envp,
                                 .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
        snprintf(plat, sizeof(plat), "--platform=%s", want);
        status = proc_run_sync(&spec, 20000, err);
        if (status < 0)
            return -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            snprintf(a->platform, sizeof(a->platform), "%s", want);
            if (attempt > 0)
                bx_log_warn("WARNING: runsc %s does not support platform %s; "
                                "falling back to ptrace (slower)",
                        a->runsc, a->cfg.platform);
            return 0;
        }
        want = "ptrace";
    }
    return bx_err_set(err, BX_E_INTERNAL, 0, "runsc %s does not work with platform %s or ptrace",
                      a->runsc, a->cfg.platform);
}

static int setup_runs(struct app *a, struct bx_err *err)
{
    struct run_mgr_params rp;
    char probe[4096];

    if (run_recover(&a->cfg, err) < 0)
        return bx_err_wrap(err, "recovering runs");
    if (box_recover(&a->cfg, err) < 0)
        return bx_err_wrap(err, "recovering boxes");
    if (probe_runsc(a, err) < 0)
        return -1;
    snprintf(probe, sizeof(probe), "%s/runs/.probe", a->cfg.home);
    bx_rm_rf_at(AT_FDCWD, probe, NULL);
    if (!a->cfg.ignore_cgroups) {
        /* One directory per home: Boxers sharing a cgroup (tests, several
         * instances on a host) never sweep each other's runs. */
        char base[32];
        uint32_t h = 2166136261u;
        for (const char *p = a->cfg.home; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        snprintf(base, sizeof(base), "boxer-%08x", h);
        if (cg_init(&a->cgroups, "/sys/fs/cgroup", "/proc/self/cgroup", "/proc/self/mountinfo",
                    base, err) < 0)
            return bx_err_wrap(err, "cgroups (set ignore_cgroups to run without limits)");
        if (cg_cleanup_stale(a->cgroups, err) < 0)
            return bx_err_wrap(err, "removing stale cgroups");
        bx_log_info("%s", cg_describe(a->cgroups));
        /* The kernel's bound on all runs together, behind run.c's
         * admission against the same budget. */
        if (cg_set_base_limits(a->cgroups, a->cfg.total_memory_mb << 20, a->cfg.total_pids,
                               err) < 0)
            return bx_err_wrap(err, "total_memory_mb / total_pids on the base cgroup");
        bx_log_info("runs share total_memory_mb %llu, total_pids %llu",
                (unsigned long long)a->cfg.total_memory_mb,
                (unsigned long long)a->cfg.total_pids);
    } else {
        bx_log_warn("WARNING: ignore_cgroups is set: cpu, memory and pids limits "
                        "are NOT enforced");
    }
    if (image_cache_new(&a->images, a->loop, &a->cfg, err) < 0)
        return bx_err_wrap(err, "image cache");
    image_cache_set_cgroups(a->images, a->cgroups);
    /* A bad network config stops start-up; a host that cannot do the
     * sandbox network (no nft...) only loses network "sandbox". */
    if (net_new(&a->net, &a->cfg, a->loop, err) < 0)
        return -1;
    {
        struct bx_err nerr;
        bx_err_clear(&nerr);
        if (net_start(a->net, &nerr) < 0)
            bx_log_warn("WARNING: network \"sandbox\" unavailable: %s", nerr.msg);
        else
            bx_log_info("network sandbox: %s", net_describe(a->net));
    }
    memset(&rp, 0, sizeof(rp));
    rp.loop = a->loop;
    rp.cfg = &a->cfg;
    rp.store = a->store;
    rp.images = a->images;
    rp.cgroups = a->cgroups;
    rp.net = a->net;
    rp.runsc = a->runsc;
    rp.platform = a->platform;
    /* Without our cgroups runsc must not make its own: it would create
     * them, unlimited, at the root of each hierarchy. */
    if (!a->cgroups)
        rp.runsc_extra_flags[0] = "--ignore-cgroups";
    if (run_mgr_new(&a->runs, &rp, err) < 0)
        return -1;
    {
        struct box_mgr_params bp = {a->loop, &a->cfg, a->images, a->cgroups, a->runsc,
                                    a->platform, a->net, a->runs};
        struct ui_node_params np = {a->loop, &a->cfg, a->runs, NULL, a->images, a->runsc,
                                    a->platform};
        if (box_mgr_new(&a->boxes, &bp, err) < 0)
            return -1;
        np.boxes = a->boxes;
        return ui_node_new(&a->node, &np, err);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: boxer [serve] [--config PATH]\n"
               "       boxer run|exec|box|images|health ...   (the client: boxer help, boxer(1))\n"
               "\n"
               "Sandboxed container execution service: runs commands in container images\n"
               "under gVisor (runsc) with hard limits, over a small HTTP API.\n"
               "\n"
               "  -c, --config PATH   configuration file (else $BOXER_CONFIG, else\n"
               "                      ~/.boxer/config.json, else built-in defaults)\n"
               "  -h, --help          this help\n"
               "  -V, --version       print the version\n");
}

static int make_dirs(struct app *a, struct bx_err *err)
{
    if (bx_mkdir_p_at(AT_FDCWD, a->cfg.home, 0700, 0, err) < 0)
        return bx_err_wrap(err, "home %s", a->cfg.home);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    struct app a;
    struct bx_err err;
    struct http_config hc;
    char *files_root = NULL;
    int opt, rc = 1;

    /* `boxer run ...` and the other subcommands are the client (cli.c);
     * `boxer serve [opts]`, or options alone as before, start the server. */
    if (argc > 1 && cli_is_client(argv[1]))
        return cli_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    memset(&a, 0, sizeof(a));
    a.sigfd = -1;
    bx_err_clear(&err);
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("boxer %s\n", BOXER_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    /* Keep 0..2 occupied so no socket or pipe we open later lands there
     * and gets written to by a stray stdio call or dup2'd over in a child. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            return 1;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    config_defaults(&a.cfg);
    if (config_load(&a.cfg, config_path, &err) < 0) {
        bx_log_error("%s", err.msg);
        goto out;
    }
    raise_nofile();
    protect_from_oom();
    if (make_dirs(&a, &err) < 0)
        goto fail;
    if (asprintf(&files_root, "%s/files", a.cfg.home) < 0) {
        bx_err_set(&err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    if (store_open(&a.store, files_root, &err) < 0)
        goto fail;
    store_set_limits(a.store, a.cfg.min_free_disk_percent, a.cfg.store_max_bytes);
    if (loop_new(&a.loop, &err) < 0 || load_tokens(&a, &err) < 0)
        goto fail;
    if (a.tokens.n == 0 && !listens_on_loopback(a.cfg.listen_addr) &&
        !a.cfg.allow_unauthenticated) {
        bx_err_set(&err, BX_E_BAD_REQUEST, EINVAL,
                   "refusing to listen on %s without auth_tokens or BOXER_TOKEN: anyone who can "
                   "reach it could run code here (set allow_unauthenticated: true to do it "
                   "anyway)",
                   a.cfg.listen_addr);
        goto fail;
    }
    {
        const char *labels[METRICS_MAX_ROUTES];
        size_t nl = route_labels(routes, BX_ARRAY_LEN(routes), labels, BX_ARRAY_LEN(labels));
        if (metrics_new(&a.metrics, labels, nl) < 0) {
            bx_err_set(&err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (setup_signals(&a, &err) < 0)
        goto fail;
    if (setup_runs(&a, &err) < 0)
        goto fail;
    hc = (struct http_config){.listen_addr = a.cfg.listen_addr,
                              .listen_unix = a.cfg.listen_unix,
                              .max_request_line = 8192,
                              .max_header_bytes = 32768,
                              .max_headers = 64,
                              .header_timeout_ms = (uint32_t)a.cfg.header_timeout_ms,
                              .body_idle_timeout_ms = (uint32_t)a.cfg.body_timeout_ms,
                              .keepalive_timeout_ms = (uint32_t)a.cfg.keepalive_timeout_ms,
                              .write_idle_timeout_ms = (uint32_t)a.cfg.write_timeout_ms,
                              .max_connections = max_connections(),
                              .max_connections_per_ip = (size_t)a.cfg.max_connections_per_ip,
                              .answer_buffer_max = (size_t)a.cfg.answer_buffer_max_bytes,
                              .observe = observe_request};
    if (http_server_new(&a.http, a.loop, &hc, handle_request, &a, &err) < 0)
        goto fail;
    bx_log_info("version %s listening on %s (port %d) unix %s home %s runsc %s platform %s "
                "config %s",
            BOXER_VERSION, a.cfg.listen_addr[0] ? a.cfg.listen_addr : "(no TCP)",
            http_server_port(a.http), a.cfg.listen_unix[0] ? a.cfg.listen_unix : "(none)",
            a.cfg.home, a.runsc,
            a.platform, a.cfg.source ? a.cfg.source : "(built-in defaults)");
    if (a.tokens.n == 0 && !listens_on_loopback(a.cfg.listen_addr))
        bx_log_warn("WARNING: listening on %s without auth_tokens or BOXER_TOKEN: "
                        "anyone who can reach this address can run code here",
                a.cfg.listen_addr);
    if (loop_run(a.loop, &err) < 0)
        goto fail;
    bx_log_info("stopped");
    rc = 0;
    goto out;
fail:
    bx_log_error("%s", err.msg);
out:
    if (a.http)
        http_server_free(&a.http);
    /* Commits still running at the end: killed (a half-done one leaves only
     * a .tmp file, removed at the next start). */
    while (a.committing) {
        struct upload_ctx *u = a.committing;
        a.committing = u->next;
        proc_free(&u->commit);
        store_upload_finish(&u->up, 0, NULL);
        upload_ctx_free(u);
    }
    ui_node_free(a.node);
    box_mgr_free(&a.boxes);
    run_mgr_free(&a.runs);
    net_free(&a.net);
    image_cache_free(&a.images);
    proc_reap_orphans();
    cg_free(&a.cgroups);
    metrics_free(&a.metrics);
    free(a.tokens.items);
    if (a.loop && a.sigfd >= 0)
        loop_del(a.loop, a.sigfd);
    bx_close(&a.sigfd);
    store_close(&a.store);
    loop_free(&a.loop);
    free(files_root);
    config_free(&a.cfg);
    return rc;
}
