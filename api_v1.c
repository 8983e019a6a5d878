/* GET /v1/info and POST /v1/run: see api_v1.h. */
#include "api_v1.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "box.h"
#include "config.h"
#include "json.h"
#include "run.h"
#include "util.h"

void respond_v1_error_headers(struct http_conn *c, int status, const char *code, const char *msg,
                              const char *headers)
{
    struct sbuf sb;
    struct json_writer w;
    sbuf_init(&sb, 1 << 16);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    json_w_key(&w, "code");
    json_w_cstr(&w, code);
    json_w_key(&w, "message");
    json_w_cstr(&w, msg);
    json_w_key(&w, "error");
    json_w_cstr(&w, msg);
    json_w_obj_end(&w);
    if (w.failed)
        http_respond_error(c, status, msg);
    else
        http_respond(c, status, "application/json", headers, sb.data, sb.len);
    sbuf_free(&sb);
}

void respond_v1_error(struct http_conn *c, int status, const char *code, const char *msg)
{
    /* Every "try later" answer says when. */
    const char *hdr = status == BX_E_UNAVAILABLE         ? "Retry-After: 5\r\n"
                      : status == BX_E_TOO_MANY_REQUESTS ? "Retry-After: 1\r\n"
                                                         : NULL;
    respond_v1_error_headers(c, status, code, msg, hdr);
}

int v1_require_json(struct http_conn *c, const struct http_request *req)
{
    /* A page may send text/plain across origins without asking (no CORS
     * preflight), never application/json. */
    const struct http_header *ct = http_find_header(req, "Content-Type");
    if (ct && http_media_type_is(ct->value, ct->value_len, "application/json"))
        return 0;
    respond_v1_error(c, BX_E_UNSUPPORTED_MEDIA, "INVALID_REQUEST",
                     "Content-Type must be application/json");
    return -1;
}

static const char *v1_code(const struct bx_err *err, int image_failed)
{
    switch (err->status) {
    case BX_E_BAD_REQUEST:
        return err->sys_errno == ERANGE ? "RESOURCE_EXCEEDED" : "INVALID_REQUEST";
    case BX_E_TOO_LARGE:
    case BX_E_UNSUPPORTED_MEDIA:
        return "INVALID_REQUEST";
    case BX_E_UNAVAILABLE:
        return "RESOURCE_EXCEEDED";
    case BX_E_TIMEOUT:
        return "TIMEOUT";
    default:
        return image_failed ? "IMAGE_PULL_FAILED" : "RUNTIME_ERROR";
    }
}

static void v1_bx_error(struct http_conn *c, const struct bx_err *err, int image_failed)
{
    int status = bx_err_http_status(err);
    /* BoxRun's IMAGE_PULL_FAILED is a 502 (as for boxes); /run keeps 500. */
    if (image_failed && status >= 500)
        status = BX_E_BAD_GATEWAY;
    respond_v1_error(c, status, v1_code(err, image_failed),
                     err->msg[0] ? err->msg : "internal error");
}

static int query_extra(const struct http_request *req)
{
    char v[8];
    size_t n = 0;
    struct bx_err err;
    if (!req->query ||
        http_query_param(req->query, req->query_len, "extra", v, sizeof(v), &n, &err) != 1)
        return 0;
    return bx_str_eq(v, n, "1") || bx_str_eq(v, n, "true");
}

/* ---- GET /v1/info ---- */

void api_v1_info(const struct api_v1 *a, struct http_conn *c, const struct http_request *req)
{
    const struct config *cfg = a->cfg;
    struct box_stats bs;
    struct run_stats rs;
    struct sbuf sb;
    struct json_writer w;

    (void)req;
    memset(&bs, 0, sizeof(bs));
    if (a->boxes)
        box_stats(a->boxes, &bs);
    run_stats(a->runs, &rs);
    sbuf_init(&sb, 1 << 16);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    /* BoxRun's: what one box may ask for */
    json_w_key(&w, "max_cpu");
    json_w_double(&w, cfg->max_limits.cpu_cores);
    json_w_key(&w, "max_memory_mb");
    json_w_uint(&w, cfg->max_limits.memory_mb);
    /* ours */
    json_w_key(&w, "version");
    json_w_cstr(&w, BOXER_VERSION);
    json_w_key(&w, "node_id");
    json_w_cstr(&w, cfg->node_id ? cfg->node_id : "");
    json_w_key(&w, "boxes");
    json_w_obj_begin(&w);
    json_w_key(&w, "total");
    json_w_uint(&w, bs.creating + bs.running + bs.stopped + bs.error);
    json_w_key(&w, "creating");
    json_w_uint(&w, bs.creating);
    json_w_key(&w, "running");
    json_w_uint(&w, bs.running);
    json_w_key(&w, "stopped");
    json_w_uint(&w, bs.stopped);
    json_w_key(&w, "error");
    json_w_uint(&w, bs.error);
    json_w_obj_end(&w);
    json_w_key(&w, "limits");
    json_w_obj_begin(&w);
    json_w_key(&w, "max_boxes");
    json_w_uint(&w, cfg->max_boxes);
    json_w_key(&w, "max_disk_size_gb");
    json_w_uint(&w, cfg->max_disk_size_gb);
    json_w_key(&w, "max_wall_clock_secs");
    json_w_uint(&w, cfg->max_limits.wall_clock_secs);
    json_w_key(&w, "max_concurrent_runs");
    json_w_uint(&w, cfg->max_concurrent_runs);
    json_w_key(&w, "total_memory_mb");
    json_w_uint(&w, cfg->total_memory_mb);
    json_w_key(&w, "total_pids");
    json_w_uint(&w, cfg->total_pids);
    json_w_key(&w, "box_pids_limit");
    json_w_uint(&w, cfg->box_defaults.pids_limit);
    json_w_obj_end(&w);
    /* What of total_memory_mb / total_pids is held now */
    json_w_key(&w, "budget");
    json_w_obj_begin(&w);
    json_w_key(&w, "boxes_memory_mb");
    json_w_uint(&w, rs.held_memory_mb);
    json_w_key(&w, "boxes_pids");
    json_w_uint(&w, rs.held_pids);
    json_w_key(&w, "runs_memory_mb");
    json_w_uint(&w, rs.runs_memory_mb);
    json_w_key(&w, "runs_pids");
    json_w_uint(&w, rs.runs_pids);
    json_w_key(&w, "runs_running");
    json_w_uint(&w, rs.running);
    json_w_key(&w, "runs_queued");
    json_w_uint(&w, rs.queued);
    json_w_obj_end(&w);
    json_w_obj_end(&w);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
    else
        http_respond(c, 200, "application/json", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}

/* ---- POST /v1/run ---- */

struct v1run {
    struct run_mgr *runs;
    const struct config *cfg;
    struct http_conn *conn;
    int extra;
    struct sbuf body;
    struct run_job *job;
    /* the answer, streamed (as /run's) */
    struct run_result *res;
    struct run_answer *ans;
};

static void v1run_free(struct v1run *r)
{
    sbuf_free(&r->body);
    run_answer_free(&r->ans);
    if (r->res)
        run_result_release(r->runs, &r->res);
    free(r);
}

static void v1run_answered(void *arg, int delivered)
{
    (void)delivered;
    v1run_free(arg);
}

static int v1run_fill(void *arg, struct sbuf *out, size_t want)
{
    struct v1run *r = arg;
    return run_answer_fill(r->ans, out, want);
}

static void v1run_done(void *arg, struct run_result *res)
{
    struct v1run *r = arg;
    struct http_conn *c = r->conn;
    int rc;

    r->job = NULL;
    r->res = res;
    if (res->outcome == RUN_ERROR) {
        v1_bx_error(c, &res->error, res->image_failed);
        v1run_free(r);
        return;
    }
    rc = run_answer_new_boxrun(res, r->extra, &r->ans);
    if (rc < 0) {
        http_respond_error(c, BX_E_INTERNAL,
                           rc == -1 ? "out of memory" : "could not encode the run result");
        v1run_free(r);
        return;
    }
    /* r (the result the answer points into) lives until the answer is
     * written or the client is gone. */
    http_on_done(c, v1run_answered, r);
    http_respond_stream(c, 200, "application/json", run_answer_len(r->ans), v1run_fill, r);
}

static int v1run_on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct v1run *r = ctx;
    if (sbuf_append(&r->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                          "request body is larger than max_request_body_bytes (%llu)",
                          (unsigned long long)run_max_body(r->cfg));
    return 0;
}

static int v1run_on_end(void *ctx, struct bx_err *unused)
{
    struct v1run *r = ctx;
    struct run_request *req = NULL;
    struct bx_err err;

    (void)unused;
    bx_err_clear(&err);
    if (run_request_parse_boxrun(r->body.data ? r->body.data : "", r->body.len, r->cfg, &req,
                                 &err) < 0) {
        v1_bx_error(r->conn, &err, 0);
        v1run_free(r);
        return 0;
    }
    sbuf_free(&r->body);
    if (run_submit(r->runs, &req, v1run_done, r, &r->job, &err) < 0) {
        run_request_free(&req);
        v1_bx_error(r->conn, &err, 0);
        v1run_free(r);
    }
    return 0;
}

static void v1run_on_abort(void *ctx)
{
    struct v1run *r = ctx;
    /* The client left before the run ended: the sandbox goes. */
    if (r->job)
        run_cancel(r->job);
    v1run_free(r);
}

static const struct http_body_ops v1run_ops = {v1run_on_data, v1run_on_end, v1run_on_abort};

void api_v1_run(const struct api_v1 *a, struct http_conn *c, const struct http_request *req)
{
    struct v1run *r;

    if (v1_require_json(c, req) < 0)
        return;
    r = calloc(1, sizeof(*r));
    if (!r) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    r->runs = a->runs;
    r->cfg = a->cfg;
    r->conn = c;
    r->extra = query_extra(req);
    /* room for a stdin of stdin_limit_bytes, as /run */
    sbuf_init(&r->body, run_max_body(a->cfg));
    http_accept_body(c, run_max_body(a->cfg), &v1run_ops, r);
}
