/* The handlers of the original API (/healthz, /readyz, /files, /swagger,
 * /run, /images, /metrics) that boxer.c's route table dispatches to.  This
 * is the one place where module errors become HTTP answers
 * (respond_bx_err). */
#define _GNU_SOURCE
#include "boxer_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
#include "box.h"
#include "proc.h"
#include "run.h"
#include "run_multipart.h"
#include "run_stream.h"
#include "store.h"
#include "util.h"

/* ---- the one error-to-HTTP mapping ---- */

static void respond_bx_err(struct http_conn *c, const struct bx_err *err)
{
    http_respond_error(c, bx_err_http_status(err), err->msg[0] ? err->msg : "internal error");
}

static void respond_json(struct http_conn *c, int status, struct sbuf *body)
{
    http_respond(c, status, "application/json", NULL, body->data, body->len);
}

void route_method_not_allowed(struct http_conn *c, const char *allow)
{
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    http_respond_error_with_headers(c, BX_E_METHOD_NOT_ALLOWED, hdr, "method not allowed");
}

/* ---- GET /healthz ---- */

void route_healthz(struct http_conn *c)
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

void route_readyz(struct app *a, struct http_conn *c)
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

void upload_ctx_free(struct upload_ctx *u)
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

void route_upload(struct app *a, struct http_conn *c, const struct http_request *req)
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

void route_download(struct app *a, struct http_conn *c, const struct http_request *req)
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

void route_swagger(struct http_conn *c, const char *path)
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
    struct runmp *mp; /* a multipart /run: its decoder instead of body */
    struct run_job *job;
};

static void run_ctx_free(struct run_ctx *r)
{
    if (!r)
        return;
    sbuf_free(&r->body);
    runmp_free(&r->mp);
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

static void route_run_on_done(void *arg, struct run_result *res)
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
    if (r->mp)
        return runmp_feed(r->mp, data, len, err);
    if (sbuf_append(&r->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, 0, "request body is larger than %llu bytes",
                          (unsigned long long)run_max_body(&r->app->cfg));
    return 0;
}

static int run_on_end(void *ctx, struct bx_err *err)
{
    struct run_ctx *r = ctx;
    struct run_request *req = NULL;
    if (r->mp) {
        int rc = runmp_finish(r->mp, &req, err);
        /* the parser goes now; the spooled files travel in req */
        runmp_free(&r->mp);
        if (rc < 0)
            return -1;
    } else if (run_request_parse(r->body.data ? r->body.data : "", r->body.len, &r->app->cfg,
                                 &req, err) < 0) {
        return -1;
    }
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
    if (run_submit(r->app->runs, &req, route_run_on_done, r, &r->job, err) < 0) {
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

void route_run(struct app *a, struct http_conn *c)
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

void route_run_multipart(struct app *a, struct http_conn *c, const struct http_header *ct)
{
    struct run_ctx *r = calloc(1, sizeof(*r));
    struct bx_err err;

    bx_err_clear(&err);
    if (!r) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    r->app = a;
    r->conn = c;
    sbuf_init(&r->body, 0);
    if (runmp_new(&r->mp, &a->cfg, a->store, ct->value, ct->value_len, &err) < 0) {
        run_ctx_free(r);
        respond_bx_err(c, &err);
        return;
    }
    /* The whole body, files included, within max_request_body_bytes; each
     * file within upload_limit_bytes (run_multipart.c); streamed, not held. */
    http_accept_body(c, run_max_body(&a->cfg), &run_ops, r);
}

/* ---- /images ---- */

void route_images_list(struct app *a, struct http_conn *c)
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

void route_images_delete(struct app *a, struct http_conn *c, const struct http_request *req)
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

void route_metrics(struct app *a, struct http_conn *c)
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
    g.pool_entries = rs.pool_entries;
    g.pool_auto_entries = rs.pool_auto_entries;
    g.pool_auto_created = rs.pool_auto_created;
    g.pool_auto_retired = rs.pool_auto_retired;
    g.pool_auto_hits = rs.pool_auto_hits;
    g.pool_refreshed = rs.pool_refreshed;
    g.pool_max_total = rs.pool_max_total;
    g.pool_yielded = rs.pool_yielded;
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
        memcpy(g.execs_by_outcome, bs.execs_by_outcome, sizeof(g.execs_by_outcome));
        g.exec_hist = bs.exec_hist;
        g.box_pool_ready = bs.pool_ready;
        g.box_pool_creating = bs.pool_creating;
        g.box_pool_hits = bs.pool_hits;
        g.box_pool_misses = bs.pool_misses;
        g.box_pool_created = bs.pool_created;
        g.box_pool_failed = bs.pool_failed;
        g.box_pool_yielded = bs.pool_yielded;
        g.box_pool_create_ms_last = bs.pool_create_ms_last;
        g.box_pool_create_ms_sum = bs.pool_create_ms_sum;
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
