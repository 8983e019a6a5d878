/* Exec input and control routes (issue 14): POST
 * /v1/boxes/{id}/exec/{eid}/stdin, .../signal and .../{eid}:cancel, and the
 * stdin fields of an exec request.  The work is box_exec.c's
 * (box_exec_stdin, box_exec_signal, box_exec_cancel). */
#include "api_box.h"
#include "api_box_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "box.h"
#include "util.h"

#define CTL_MAX_BODY (64u << 10) /* a signal's JSON */

int api_box_parse_stdin(struct box_mgr *m, const struct json_value *root, struct box_exec_req *r,
                        struct bx_err *err)
{
    const struct json_value *o = json_get(root, "stdin_open");
    if (o && o->type != JSON_NULL && o->type != JSON_BOOL)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "stdin_open must be a boolean");
    r->stdin_open = o && o->type == JSON_BOOL && o->u.boolean;
    return api_parse_stdin(root, box_stdin_limit(m), &r->stdin_data, &r->stdin_len, err);
}

/* The fixed table of signals a client may name (with or without "SIG"). */
static const struct {
    const char *name;
    int sig;
} signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"KILL", SIGKILL},
               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM},   {"ALRM", SIGALRM},
               {"PIPE", SIGPIPE}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},   {"TSTP", SIGTSTP},
               {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"WINCH", SIGWINCH}, {"ABRT", SIGABRT}};

enum ctl_op { CTL_STDIN = API_BOX_STDIN, CTL_SIGNAL = API_BOX_SIGNAL, CTL_CANCEL = API_BOX_CANCEL };

struct ctl {
    struct box_mgr *m;
    struct http_conn *conn;
    enum ctl_op op;
    char id[128], eid[64];
    int extra, has_offset, eof;
    uint64_t offset;
    struct sbuf body;
};

static void ctl_free(struct ctl *x)
{
    sbuf_free(&x->body);
    free(x);
}

static int parse_signal(const struct ctl *x, int *sig, struct bx_err *err)
{
    const struct json_limits lim = {CTL_MAX_BODY, 8, 1000};
    struct json_doc *doc = NULL;
    const struct json_value *v;
    int ret = -1;
    if (json_parse(x->body.data ? x->body.data : "", x->body.len, &lim, &doc, err) < 0)
        return -1;
    v = json_get(json_doc_root(doc), "signal");
    if (v && v->type == JSON_STRING) {
        const char *n = v->u.str.s;
        size_t len = v->u.str.len;
        if (len > 3 && strncmp(n, "SIG", 3) == 0) {
            n += 3;
            len -= 3;
        }
        for (size_t i = 0; i < BX_ARRAY_LEN(signals); i++)
            if (bx_str_eq(n, len, signals[i].name)) {
                *sig = signals[i].sig;
                ret = 0;
            }
    }
    if (ret < 0)
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                   "signal must be one of HUP, INT, QUIT, KILL, USR1, USR2, TERM, ALRM, PIPE, "
                   "CONT, STOP, TSTP, TTIN, TTOU, WINCH, ABRT");
    json_doc_free(&doc);
    return ret;
}

/* The body is in: the box and the exec are looked up now (either may have
 * gone while it arrived). */
static void ctl_run(struct ctl *x)
{
    struct bx_err err;
    struct box *b = box_find(x->m, x->id);
    struct box_exec *e = b ? box_exec_find(b, x->eid) : NULL;
    uint64_t total = 0;
    int sig = 0, r = -1;
    bx_err_clear(&err);
    if (!b) {
        respond_v1_error(x->conn, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box");
        return;
    }
    if (!e) {
        respond_v1_error(x->conn, BX_E_NOT_FOUND, "EXEC_NOT_FOUND", "no such exec");
        return;
    }
    switch (x->op) {
    case CTL_STDIN:
        r = box_exec_stdin(e, x->body.data ? x->body.data : "", x->body.len, x->has_offset,
                           x->offset, x->eof, &total, &err);
        if (r == 0) {
            char out[64];
            snprintf(out, sizeof(out), "{\"offset\":%llu}", (unsigned long long)total);
            http_respond(x->conn, 200, "application/json", NULL, out, strlen(out));
        }
        break;
    case CTL_SIGNAL:
        r = parse_signal(x, &sig, &err);
        if (r == 0)
            r = box_exec_signal(e, sig, &err);
        if (r == 0)
            http_respond(x->conn, 200, "application/json", NULL, "{\"ok\":true}", 11);
        break;
    case CTL_CANCEL:
        r = box_exec_cancel(e, &err);
        if (r == 0)
            respond_exec(x->conn, 200, e, x->extra);
        break;
    }
    if (r < 0)
        respond_box_err(x->conn, &err);
}

static int ctl_on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct ctl *x = ctx;
    if (x->op == CTL_CANCEL)
        return 0; /* no body expected: ignored */
    if (sbuf_append(&x->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG, "body too large");
    return 0;
}

static int ctl_on_end(void *ctx, struct bx_err *unused)
{
    struct ctl *x = ctx;
    (void)unused;
    ctl_run(x);
    ctl_free(x);
    return 0;
}

static void ctl_on_abort(void *ctx)
{
    ctl_free(ctx);
}

static const struct http_body_ops ctl_ops = {ctl_on_data, ctl_on_end, ctl_on_abort};

/* Route parameter i into out; -1 when absent or too long to name anything. */
static int ctl_param(const struct route_params *p, size_t i, char *out, size_t cap)
{
    if (i >= p->n || p->p[i].len == 0 || p->p[i].len >= cap)
        return -1;
    memcpy(out, p->p[i].s, p->p[i].len);
    out[p->p[i].len] = 0;
    return 0;
}

/* api_op: API_BOX_STDIN, API_BOX_SIGNAL or API_BOX_CANCEL */
void api_box_exec_ctl(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                      const struct route_params *p, enum api_box_op api_op)
{
    struct ctl *x;
    struct bx_err err;
    char val[32];
    size_t vlen = 0, max = CTL_MAX_BODY;
    int r;
    enum ctl_op op = (enum ctl_op)api_op;
    if (op != CTL_STDIN && op != CTL_SIGNAL && op != CTL_CANCEL) {
        http_respond_error(c, BX_E_INTERNAL, "not an exec control op");
        return;
    }
    if (!m) {
        respond_v1_error(c, BX_E_INTERNAL, "RUNTIME_ERROR", "boxes are not available");
        return;
    }
    bx_err_clear(&err);
    if (op == CTL_SIGNAL) {
        /* JSON only, as every /v1 POST with a JSON body */
        if (v1_require_json(c, req) < 0)
            return;
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    x->m = m;
    x->conn = c;
    x->op = op;
    x->extra = query_flag(req, "extra");
    if (ctl_param(p, 0, x->id, sizeof(x->id)) < 0) {
        respond_v1_error(c, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box");
        free(x);
        return;
    }
    if (ctl_param(p, 1, x->eid, sizeof(x->eid)) < 0) {
        respond_v1_error(c, BX_E_NOT_FOUND, "EXEC_NOT_FOUND", "no such exec");
        free(x);
        return;
    }
    if (op == CTL_STDIN) {
        /* the raw body, bounded by the exec's input buffer (413 above) */
        max = box_stdin_buffer(m);
        x->eof = query_flag(req, "eof");
        r = http_query_param(req->query, req->query ? req->query_len : 0, "offset", val,
                             sizeof(val), &vlen, &err);
        if (r < 0 || (r == 1 && bx_parse_u64(val, vlen, UINT64_MAX / 2, &x->offset) < 0)) {
            respond_v1_error(c, BX_E_BAD_REQUEST, "INVALID_REQUEST",
                             "offset must be a byte offset (a non-negative integer)");
            free(x);
            return;
        }
        x->has_offset = r == 1;
    }
    sbuf_init(&x->body, max);
    http_accept_body(c, max, &ctl_ops, x);
}

