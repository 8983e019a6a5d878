/* /v1/boxes routes (BoxRun v1 wire API); see api_box.h and DESIGN.md
 * "Boxes API (/v1)".  This slice serves: POST /v1/boxes, GET /v1/boxes,
 * GET /v1/boxes/{id}, POST /v1/boxes/{id}:stop, POST /v1/boxes/{id}:start,
 * DELETE /v1/boxes/{id}[?force=true], POST /v1/boxes/{id}/exec (with our
 * "wait": true) and GET /v1/boxes/{id}/exec/{eid}. */
#include "api_box.h"
#include "api_box_internal.h"
#include "api_term.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_run.h"
#include "api_stream.h"
#include "box.h"
#include "multipart.h"
#include "store.h"
#include "json.h"
#include "util.h"

#define API_BOX_MAX_BODY (1u << 20)

/* the route ops api_box_on_box serves, then create and gc */
enum op {
    OP_DELETE = API_BOX_DELETE,
    OP_STOP = API_BOX_STOP,
    OP_START = API_BOX_START,
    OP_EXEC = API_BOX_EXEC,
    OP_CREATE,
    OP_GC
};

struct abx {
    struct box_mgr *m;
    struct http_conn *conn;
    enum op op;
    char id[128];
    int extra, force;
    struct sbuf body;
    struct box *box;        /* waited-for box */
    struct box_exec *exec;  /* waited-for exec */
};

static void abx_free(struct abx *a)
{
    sbuf_free(&a->body);
    free(a);
}

void respond_box_err(struct http_conn *c, const struct bx_err *err)
{
    int status = bx_err_http_status(err);
    respond_v1_error(c, status, box_err_code(err), err->msg[0] ? err->msg : "internal error");
}

static void respond_box(struct http_conn *c, int status, const struct box *b, int extra)
{
    struct sbuf sb;
    struct json_writer w;
    sbuf_init(&sb, 1 << 20);
    json_w_init(&w, &sb);
    box_info_json(b, &w, extra);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "answer too large");
    else
        http_respond(c, status, "application/json", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}

/* ---- query ---- */

static const char *query_value(const struct http_request *req, const char *name, size_t *len);

int query_flag(const struct http_request *req, const char *name)
{
    size_t vl;
    const char *v = query_value(req, name, &vl);
    return v && (bx_str_eq(v, vl, "1") || bx_str_eq(v, vl, "true"));
}

/* The value of query parameter name (not decoded), or NULL. */
static const char *query_value(const struct http_request *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *q = req->query, *end = req->query ? req->query + req->query_len : NULL;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *e = amp ? amp : end;
        if ((size_t)(e - q) > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            *len = (size_t)(e - q) - nl - 1;
            return q + nl + 1;
        }
        q = amp ? amp + 1 : end;
    }
    return NULL;
}

/* ---- body parsing ---- */

static int get_str(const struct json_value *root, const char *key, char **out, struct bx_err *err)
{
    const struct json_value *v = json_get(root, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STRING || json_str_has_nul(v) || v->u.str.len > 4096)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must be a string", key);
    *out = strdup(v->u.str.s);
    if (!*out)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    return 0;
}

static int get_u64(const struct json_value *root, const char *key, uint64_t max, uint64_t *out,
                   struct bx_err *err)
{
    const struct json_value *v = json_get(root, key);
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_NUMBER || !v->u.num.is_int || v->u.num.i < 0 ||
        (uint64_t)v->u.num.i > max)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must be an integer from 0 to %llu", key,
                          (unsigned long long)max);
    *out = (uint64_t)v->u.num.i;
    return 0;
}

static int valid_env_key(const char *k, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (k[i] == '=' || k[i] == 0)
            return 0;
    return 1;
}

static int get_env(const struct json_value *root, char ***out, struct bx_err *err)
{
    const struct json_value *v = json_get(root, "env");
    char **env;
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_OBJECT)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "env must be an object of strings");
    if (v->u.obj.n > BOX_ENV_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "env has more than %d entries", BOX_ENV_MAX);
    env = calloc(v->u.obj.n + 1, sizeof(*env));
    if (!env)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const struct json_member *mb = &v->u.obj.members[i];
        if (!valid_env_key(mb->key, mb->key_len) || mb->value.type != JSON_STRING ||
            json_str_has_nul(&mb->value) || mb->value.u.str.len > 65536) {
            for (size_t j = 0; j < i; j++)
                free(env[j]);
            free(env);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "env: each key must be a name and each value a string");
        }
        if (asprintf(&env[i], "%s=%s", mb->key, mb->value.u.str.s) < 0) {
            for (size_t j = 0; j < i; j++)
                free(env[j]);
            free(env);
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        }
    }
    *out = env;
    return 0;
}

static int parse_body(struct abx *a, struct json_doc **doc, struct bx_err *err)
{
    const struct json_limits lim = {a->body.max, 16, 100000};
    if (json_parse(a->body.data ? a->body.data : "", a->body.len, &lim, doc, err) < 0)
        return -1;
    if (json_doc_root(*doc)->type != JSON_OBJECT) {
        json_doc_free(doc);
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "the body must be a JSON object");
    }
    return 0;
}

static int parse_volumes(const struct json_value *v, struct box_create_req *r, struct bx_err *err)
{
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "volumes must be a list");
    if (v->u.arr.n > BOX_VOLUMES_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "volumes: at most %d", BOX_VOLUMES_MAX);
    if (v->u.arr.n == 0)
        return 0;
    r->volumes = calloc(v->u.arr.n, sizeof(*r->volumes));
    if (!r->volumes)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    r->nvolumes = v->u.arr.n;
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *o = &v->u.arr.items[i], *ro;
        if (o->type != JSON_OBJECT)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "volumes[%zu] must be an object", i);
        if (get_str(o, "host_path", &r->volumes[i].host_path, err) < 0 ||
            get_str(o, "guest_path", &r->volumes[i].guest_path, err) < 0)
            return -1;
        ro = json_get(o, "readonly");
        if (ro && ro->type != JSON_NULL && ro->type != JSON_BOOL)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "volumes[%zu].readonly must be a boolean", i);
        r->volumes[i].readonly = ro && ro->type == JSON_BOOL && ro->u.boolean;
    }
    return 0;
}

static int parse_create(struct abx *a, struct box_create_req *r, struct bx_err *err)
{
    struct json_doc *doc = NULL;
    const struct json_value *root, *v;
    int ret = -1;
    if (parse_body(a, &doc, err) < 0)
        return -1;
    root = json_doc_root(doc);
    if (get_str(root, "image", &r->image, err) < 0 || get_str(root, "name", &r->name, err) < 0 ||
        get_str(root, "workdir", &r->workdir, err) < 0 || get_env(root, &r->env, err) < 0 ||
        get_u64(root, "memory_mb", UINT32_MAX, &r->memory_mb, err) < 0 ||
        get_u64(root, "disk_size_gb", 1u << 20, &r->disk_size_gb, err) < 0 ||
        get_u64(root, "idle_timeout_secs", 365ull * 86400, &r->idle_timeout_secs, err) < 0)
        goto out;
    v = json_get(root, "idle_timeout_secs");
    r->has_idle_timeout = v && v->type != JSON_NULL;
    v = json_get(root, "cpu");
    if (v && v->type != JSON_NULL) {
        if (v->type != JSON_NUMBER || !isfinite(v->u.num.d) || v->u.num.d <= 0) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cpu must be a positive number");
            goto out;
        }
        r->cpu = v->u.num.d;
    }
    v = json_get(root, "user");
    if (v && v->type != JSON_NULL) {
        if (api_parse_user(v, &r->uid, &r->gid, err) < 0)
            goto out;
        r->set_user = 1;
    }
    v = json_get(root, "network");
    r->has_network = v && v->type != JSON_NULL;
    if (v && v->type == JSON_BOOL) {
        r->network = v->u.boolean;
    } else if (v && v->type == JSON_STRING && (bx_str_eq(v->u.str.s, v->u.str.len, "none") ||
                                               bx_str_eq(v->u.str.s, v->u.str.len, "sandbox"))) {
        r->network = v->u.str.s[0] == 's';
    } else if (v && v->type != JSON_NULL) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "network must be true, false, \"none\" or \"sandbox\"");
        goto out;
    }
    v = json_get(root, "volumes");
    if (v && v->type != JSON_NULL && parse_volumes(v, r, err) < 0)
        goto out;
    if (!r->image) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "image is required");
        goto out;
    }
    ret = 0;
out:
    json_doc_free(&doc);
    return ret;
}

/* "uid" or "uid:gid", decimal: names would need the box's /etc/passwd,
 * which Boxer never reads from the host side. */
static int parse_user(const struct json_value *v, struct box_exec_req *r, struct bx_err *err)
{
    if (api_parse_user(v, &r->uid, &r->gid, err) < 0)
        return -1;
    r->set_user = 1;
    return 0;
}

static int parse_exec(struct abx *a, struct box_exec_req *r, int *wait, int *stream,
                      struct bx_err *err)
{
    struct json_doc *doc = NULL;
    const struct json_value *root, *v;
    int ret = -1;
    if (parse_body(a, &doc, err) < 0)
        return -1;
    root = json_doc_root(doc);
    v = json_get(root, "cmd");
    if (!v || v->type != JSON_ARRAY || v->u.arr.n == 0 || v->u.arr.n > BOX_ARGV_MAX) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must be a non-empty list of strings");
        goto out;
    }
    r->cmd = calloc(v->u.arr.n + 1, sizeof(*r->cmd));
    if (!r->cmd) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *s = &v->u.arr.items[i];
        if (s->type != JSON_STRING || json_str_has_nul(s) || s->u.str.len > 131072) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must be a non-empty list of strings");
            goto out;
        }
        r->cmd[i] = strdup(s->u.str.s);
        if (!r->cmd[i]) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
    }
    if (get_str(root, "workdir", &r->workdir, err) < 0 || get_env(root, &r->env, err) < 0 ||
        get_u64(root, "timeout_ms", UINT32_MAX, &r->timeout_ms, err) < 0)
        goto out;
    if (r->workdir && r->workdir[0] != '/') {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "workdir must be an absolute path");
        goto out;
    }
    v = json_get(root, "user");
    if (v && v->type != JSON_NULL && parse_user(v, r, err) < 0)
        goto out;
    if (api_term_parse_tty(root, r, err) < 0)
        goto out;
    v = json_get(root, "wait");
    if (v && v->type != JSON_NULL && v->type != JSON_BOOL) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "wait must be a boolean");
        goto out;
    }
    *wait = v && v->type == JSON_BOOL && v->u.boolean;
    v = json_get(root, "stream");
    if (v && v->type != JSON_NULL && v->type != JSON_BOOL) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "stream must be a boolean");
        goto out;
    }
    *stream = v && v->type == JSON_BOOL && v->u.boolean;
    v = json_get(root, "encoding");
    if (v && v->type != JSON_NULL) {
        if (v->type == JSON_STRING && strcmp(v->u.str.s, "base64") == 0 && !json_str_has_nul(v))
            r->base64 = 1;
        else if (!(v->type == JSON_STRING && strcmp(v->u.str.s, "utf-8") == 0 && !json_str_has_nul(v))) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "encoding must be \"utf-8\" or \"base64\"");
            goto out;
        }
    }
    if (api_box_parse_stdin(a->m, root, r, err) < 0)
        goto out;
    ret = 0;
out:
    json_doc_free(&doc);
    return ret;
}

/* ---- answers from box.c ---- */

static void on_box_done(void *arg, struct box *b, const struct bx_err *err)
{
    struct abx *a = arg;
    if (err)
        respond_box_err(a->conn, err);
    else if (a->op == OP_DELETE)
        http_respond(a->conn, 204, NULL, NULL, NULL, 0);
    else
        respond_box(a->conn, a->op == OP_CREATE ? 201 : 200, b, a->extra);
    abx_free(a);
}

void respond_exec(struct http_conn *c, int status, const struct box_exec *e, int extra)
{
    struct sbuf sb;
    struct json_writer w;
    sbuf_init(&sb, 16u << 20);
    json_w_init(&w, &sb);
    box_exec_json(e, &w, extra);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "answer too large");
    else
        http_respond(c, status, "application/json", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}

static void on_exec_done(void *arg, struct box_exec *e)
{
    struct abx *a = arg;
    respond_exec(a->conn, 200, e, 1);
    abx_free(a);
}

/* POST /v1/gc {"older_than": seconds}: removes the stopped boxes stopped
 * longer ago than that (0 or absent: every stopped box). */
static void gc_boxes(struct abx *a)
{
    struct json_doc *doc = NULL;
    struct bx_err err;
    uint64_t older = 0;
    char out[64];
    bx_err_clear(&err);
    if (a->body.len && (parse_body(a, &doc, &err) < 0 ||
             get_u64(json_doc_root(doc), "older_than", 100ull * 365 * 86400, &older, &err) < 0)) {
        json_doc_free(&doc);
        respond_box_err(a->conn, &err);
        return;
    }
    json_doc_free(&doc);
    snprintf(out, sizeof(out), "{\"removed\":%u}", box_gc(a->m, older));
    http_respond(a->conn, 200, "application/json", NULL, out, strlen(out));
}

/* ---- body ops ---- */

static int abx_on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct abx *a = ctx;
    if (a->op != OP_CREATE && a->op != OP_EXEC && a->op != OP_GC)
        return 0; /* the body of stop/start/delete is ignored */
    if (sbuf_append(&a->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG, "body too large");
    return 0;
}

static int abx_on_end(void *ctx, struct bx_err *unused)
{
    struct abx *a = ctx;
    struct bx_err err;
    struct box *b = NULL;
    int r = -1;
    (void)unused;
    bx_err_clear(&err);
    if (a->op == OP_GC) {
        gc_boxes(a);
        abx_free(a);
        return 0;
    }
    if (a->op != OP_CREATE) {
        b = box_find(a->m, a->id);
        if (!b) {
            respond_v1_error(a->conn, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box");
            abx_free(a);
            return 0;
        }
    }
    switch (a->op) {
    case OP_CREATE: {
        struct box_create_req cr;
        memset(&cr, 0, sizeof(cr));
        if (parse_create(a, &cr, &err) == 0)
            r = box_create(a->m, &cr, on_box_done, a, &a->box, &err);
        box_create_req_free(&cr);
        break;
    }
    case OP_GC:
        break;
    case OP_START:
        r = box_start(b, on_box_done, a, &err);
        a->box = b;
        break;
    case OP_STOP:
        r = box_stop(b, on_box_done, a, &err);
        a->box = b;
        break;
    case OP_DELETE:
        r = box_remove(b, a->force, on_box_done, a, &err);
        a->box = b;
        break;
    case OP_EXEC: {
        struct box_exec_req er;
        struct box_exec *e = NULL;
        int wait = 0, stream = 0;
        memset(&er, 0, sizeof(er));
        box_touch(b); /* an exec request is activity, even a refused one */
        if (parse_exec(a, &er, &wait, &stream, &err) == 0)
            r = box_exec(b, &er, wait && !stream ? on_exec_done : NULL, a, &e, &err);
        box_exec_req_free(&er);
        if (r == 0 && stream) {
            /* NDJSON in this one request: start, log..., exit. */
            struct exec_stream_opts o = {SEV_NDJSON, 0, 1, box_exec_base64(e),
                                         box_stream_keepalive_ms(a->m)};
            if (exec_stream_start(box_mgr_loop(a->m), a->conn, e, &o, &err) < 0)
                respond_box_err(a->conn, &err);
            abx_free(a);
            return 0;
        }
        if (r == 0 && !wait) {
            respond_exec(a->conn, 201, e, a->extra);
            abx_free(a);
            return 0;
        }
        a->exec = e;
        break;
    }
    }
    if (r < 0) {
        respond_box_err(a->conn, &err);
        abx_free(a);
    }
    return 0;
}

static void abx_on_abort(void *ctx)
{
    struct abx *a = ctx;
    /* The client left: the operation goes on, nobody is told. */
    if (a->exec)
        box_exec_forget(a->exec);
    else if (a->box)
        box_forget_waiter(a->box, a);
    abx_free(a);
}

static const struct http_body_ops abx_ops = {abx_on_data, abx_on_end, abx_on_abort};

static void start_async(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                        enum op op, const char *id, size_t id_len)
{
    struct abx *a;
    if (op == OP_CREATE || op == OP_EXEC || op == OP_GC) {
        /* Only a JSON body, as for /run. */
        if (v1_require_json(c, req) < 0)
            return;
    }
    a = calloc(1, sizeof(*a));
    if (!a) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    a->m = m;
    a->conn = c;
    a->op = op;
    a->extra = query_flag(req, "extra");
    a->force = query_flag(req, "force");
    memcpy(a->id, id, id_len);
    a->id[id_len] = 0;
    {
        /* an exec's stdin: room for it as base64 or lightly escaped text */
        size_t max = op == OP_EXEC ? API_BOX_MAX_BODY + 2 * box_stdin_limit(m) : API_BOX_MAX_BODY;
        sbuf_init(&a->body, max);
        http_accept_body(c, max, &abx_ops, a);
    }
}

static void list_boxes(struct box_mgr *m, struct http_conn *c, int extra);
static void list_boxes_query(struct box_mgr *m, struct http_conn *c, const struct http_request *req);
static void list_execs(struct http_conn *c, const struct box *b, int extra);

/* ---- one handler per route (boxer.c's route table dispatches) ---- */

/* 1 when boxes can be served, else answered. */
static int available(struct box_mgr *m, struct http_conn *c)
{
    if (m)
        return 1;
    respond_v1_error(c, BX_E_INTERNAL, "RUNTIME_ERROR", "boxes are not available");
    return 0;
}

/* Route parameter i into out as a string; -1 when it is too long to name
 * a box or an exec (no such box or exec, then). */
static int param(const struct route_params *p, size_t i, char *out, size_t cap)
{
    if (i >= p->n || p->p[i].len == 0 || p->p[i].len >= cap)
        return -1;
    memcpy(out, p->p[i].s, p->p[i].len);
    out[p->p[i].len] = 0;
    return 0;
}

/* The box named by the {id} parameter, or NULL (answered). */
static struct box *find_box(struct box_mgr *m, struct http_conn *c, const struct route_params *p)
{
    char id[sizeof(((struct abx *)0)->id)];
    struct box *b;
    if (!available(m, c))
        return NULL;
    b = param(p, 0, id, sizeof(id)) == 0 ? box_find(m, id) : NULL;
    if (!b)
        respond_v1_error(c, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box");
    return b;
}

/* Starts op (delete, stop, start, exec) on the box named by {id} (its
 * body is read first). */
void api_box_on_box(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                    const struct route_params *p, enum api_box_op op)
{
    char id[sizeof(((struct abx *)0)->id)];
    if (op < API_BOX_DELETE || op > API_BOX_EXEC) {
        http_respond_error(c, BX_E_INTERNAL, "not a box op");
        return;
    }
    if (!available(m, c))
        return;
    if (param(p, 0, id, sizeof(id)) < 0)
        respond_v1_error(c, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box");
    else
        start_async(m, c, req, (enum op)op, id, strlen(id));
}

void api_box_gc(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                const struct route_params *p)
{
    (void)p;
    if (available(m, c))
        start_async(m, c, req, OP_GC, "", 0);
}

void api_box_list(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                  const struct route_params *p)
{
    (void)p;
    if (available(m, c))
        list_boxes_query(m, c, req);
}

void api_box_create(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                    const struct route_params *p)
{
    (void)p;
    if (available(m, c))
        start_async(m, c, req, OP_CREATE, "", 0);
}

void api_box_get(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                 const struct route_params *p)
{
    struct box *b = find_box(m, c, p);
    if (b)
        respond_box(c, 200, b, query_flag(req, "extra"));
}

void api_box_execs(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                   const struct route_params *p)
{
    struct box *b = find_box(m, c, p);
    if (b)
        list_execs(c, b, query_flag(req, "extra"));
}

void api_box_exec_get(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                      const struct route_params *p)
{
    char eid[sizeof(((struct abx *)0)->id)];
    struct box_exec *e;
    struct box *b = find_box(m, c, p);
    if (!b)
        return;
    e = param(p, 1, eid, sizeof(eid)) == 0 ? box_exec_find(b, eid) : NULL;
    if (!e)
        respond_v1_error(c, BX_E_NOT_FOUND, "EXEC_NOT_FOUND", "no such exec");
    else
        respond_exec(c, 200, e, query_flag(req, "extra"));
}

/* GET /v1/boxes/{id}/exec/{eid}/events: SSE (BoxRun's) or NDJSON
 * (Accept: application/x-ndjson); ?after=N or Last-Event-ID resumes. */
void api_box_exec_events(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                         const struct route_params *p)
{
    char eid[sizeof(((struct abx *)0)->id)];
    struct box_exec *e;
    struct box *b = find_box(m, c, p);
    const struct http_header *h;
    struct exec_stream_opts o;
    struct bx_err err;
    const char *v;
    size_t vl = 0;
    if (!b)
        return;
    e = param(p, 1, eid, sizeof(eid)) == 0 ? box_exec_find(b, eid) : NULL;
    if (!e) {
        respond_v1_error(c, BX_E_NOT_FOUND, "EXEC_NOT_FOUND", "no such exec");
        return;
    }
    memset(&o, 0, sizeof(o));
    h = http_find_header(req, "Accept");
    o.format = h && memmem(h->value, h->value_len, "application/x-ndjson", 20) ? SEV_NDJSON : SEV_SSE;
    o.base64 = box_exec_base64(e);
    o.keepalive_ms = box_stream_keepalive_ms(m);
    v = query_value(req, "after", &vl);
    h = http_find_header(req, "Last-Event-ID");
    if (!v && h) {
        v = h->value;
        vl = h->value_len;
    }
    if (v && sev_parse_seq(v, vl, &o.after) < 0) {
        respond_v1_error(c, BX_E_BAD_REQUEST, "INVALID_REQUEST",
                         "after and Last-Event-ID must be an event id (a number)");
        return;
    }
    box_touch(b); /* a watcher is activity */
    bx_err_clear(&err);
    if (exec_stream_start(box_mgr_loop(m), c, e, &o, &err) < 0)
        respond_box_err(c, &err);
}

static void list_boxes(struct box_mgr *m, struct http_conn *c, int extra)
{
    struct sbuf sb;
    struct json_writer w;
    sbuf_init(&sb, 64u << 20);
    json_w_init(&w, &sb);
    json_w_arr_begin(&w);
    box_each(m, &w, extra);
    json_w_arr_end(&w);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "answer too large");
    else
        http_respond(c, 200, "application/json", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}

static void list_execs(struct http_conn *c, const struct box *b, int extra)
{
    struct sbuf sb;
    struct json_writer w;
    /* with ?extra=1 each exec carries its output: a bounded answer */
    sbuf_init(&sb, 64u << 20);
    json_w_init(&w, &sb);
    json_w_arr_begin(&w);
    box_each_exec(b, &w, extra);
    json_w_arr_end(&w);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "answer too large");
    else
        http_respond(c, 200, "application/json", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}

/* ---- files in and out (through the in-box helper: box_transfer) ---- */

enum xpart { XP_NONE, XP_FILE, XP_DEST, XP_OTHER };

struct xfer {
    struct box_mgr *m;
    struct http_conn *conn;
    char id[128];
    int put;
    int fd;                /* the content, host side (box_scratch_fd) */
    uint64_t size, limit;
    struct mp_parser *mp;
    enum xpart part;
    int have_file, have_dest;
    char dest[PATH_MAX + 1];
    size_t dest_len;
    struct sbuf body;      /* download: the JSON request */
    struct box_exec *exec; /* the running transfer */
};

static void xfer_free(struct xfer *x)
{
    mp_free(&x->mp);
    sbuf_free(&x->body);
    if (x->fd >= 0)
        close(x->fd);
    free(x);
}

static int xp_begin(void *ctx, const char *name, size_t len, int has_filename, struct bx_err *err)
{
    struct xfer *x = ctx;
    struct box *b;
    (void)has_filename;
    if (len == 4 && memcmp(name, "file", 4) == 0) {
        if (x->have_file)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "multipart: duplicate field file");
        b = box_find(x->m, x->id);
        if (!b)
            return bx_err_set(err, BX_E_NOT_FOUND, 0, "no such box");
        x->fd = box_scratch_fd(b, err);
        if (x->fd < 0)
            return -1;
        x->part = XP_FILE;
        x->have_file = 1;
    } else if (len == 4 && memcmp(name, "dest", 4) == 0) {
        if (x->have_dest)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "multipart: duplicate field dest");
        x->part = XP_DEST;
        x->have_dest = 1;
    } else {
        x->part = XP_OTHER;
    }
    return 0;
}

static int xp_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct xfer *x = ctx;
    if (x->part == XP_DEST) {
        if (len > sizeof(x->dest) - 1 - x->dest_len)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "dest is longer than %d bytes", PATH_MAX - 1);
        memcpy(x->dest + x->dest_len, data, len);
        x->dest_len += len;
    } else if (x->part == XP_FILE) {
        if (len > x->limit - x->size)
            return bx_err_set(err, BX_E_TOO_LARGE, 0, "file is larger than upload_limit_bytes (%llu)",
                              (unsigned long long)x->limit);
        /* The content waits on the host's disk: the same free-disk floor
         * as /files uploads, checked at every MiB (pieces may be 1 byte). */
        if ((x->size == 0 || (x->size + len) >> 20 != x->size >> 20) &&
            store_check_disk(x->fd, NULL, len + (1u << 20), box_min_free_disk_percent(x->m), "upload",
                             err) < 0)
            return -1;
        if (bx_write_all(x->fd, data, len) < 0)
            return bx_err_sys(err, errno == ENOSPC ? BX_E_UNAVAILABLE : BX_E_INTERNAL, "write upload");
        x->size += len;
    }
    return 0;
}

static int xp_end(void *ctx, struct bx_err *err)
{
    struct xfer *x = ctx;
    (void)err;
    x->part = XP_NONE;
    return 0;
}

static const struct mp_callbacks xfer_mp_cb = {xp_begin, xp_data, xp_end};

static void on_xfer_done(void *arg, struct box_exec *e)
{
    struct xfer *x = arg;
    char why[256];
    int code = box_exec_exit_code(e, why, sizeof(why));
    struct sbuf sb;
    struct json_writer w;
    struct stat st;

    x->exec = NULL;
    if (code == BOX_XFER_ABSENT && !x->put) {
        respond_v1_error(x->conn, BX_E_NOT_FOUND, "FILE_NOT_FOUND", why[0] ? why : "no such file");
    } else if (code == BOX_XFER_ABSENT) {
        respond_v1_error(x->conn, BX_E_BAD_REQUEST, "INVALID_REQUEST", why[0] ? why : "bad dest");
    } else if (code != 0) {
        respond_v1_error(x->conn, BX_E_INTERNAL, "RUNTIME_ERROR", why[0] ? why : "transfer failed");
    } else if (!x->put) {
        if (fstat(x->fd, &st) < 0 || lseek(x->fd, 0, SEEK_SET) < 0) {
            respond_v1_error(x->conn, BX_E_INTERNAL, "RUNTIME_ERROR", strerror(errno));
        } else {
            http_respond_file(x->conn, 200, "application/octet-stream", x->fd, (uint64_t)st.st_size);
            x->fd = -1; /* http owns it */
        }
    } else {
        sbuf_init(&sb, PATH_MAX * 7 + 64);
        json_w_init(&w, &sb);
        json_w_obj_begin(&w);
        json_w_key(&w, "ok");
        json_w_bool(&w, 1);
        json_w_key(&w, "dest");
        json_w_cstr(&w, x->dest);
        json_w_obj_end(&w);
        if (w.failed)
            http_respond_error(x->conn, BX_E_INTERNAL, "out of memory");
        else
            http_respond(x->conn, 200, "application/json", NULL, sb.data, sb.len);
        sbuf_free(&sb);
    }
    xfer_free(x);
}

static int xfer_on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct xfer *x = ctx;
    if (x->put)
        return mp_feed(x->mp, data, len, err);
    if (sbuf_append(&x->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG, "body too large");
    return 0;
}

static int xfer_on_end(void *ctx, struct bx_err *unused)
{
    struct xfer *x = ctx;
    struct bx_err err;
    struct box *b;
    (void)unused;
    bx_err_clear(&err);
    if (x->put) {
        if (mp_finish(x->mp, &err) < 0)
            goto fail;
        if (!x->have_file || !x->have_dest) {
            bx_err_set(&err, BX_E_BAD_REQUEST, 0, "missing field %s", x->have_file ? "dest" : "file");
            goto fail;
        }
        x->dest[x->dest_len] = 0;
        if (strlen(x->dest) != x->dest_len) {
            bx_err_set(&err, BX_E_BAD_REQUEST, 0, "dest contains a NUL byte");
            goto fail;
        }
    } else {
        struct json_doc *doc = NULL;
        const struct json_value *root;
        char *path = NULL;
        const struct json_limits lim = {API_BOX_MAX_BODY, 16, 100000};
        if (json_parse(x->body.data ? x->body.data : "", x->body.len, &lim, &doc, &err) < 0)
            goto fail;
        root = json_doc_root(doc);
        if (root->type != JSON_OBJECT) {
            json_doc_free(&doc);
            bx_err_set(&err, BX_E_BAD_REQUEST, 0, "body must be a JSON object");
            goto fail;
        }
        if (get_str(root, "path", &path, &err) < 0 || !path) {
            json_doc_free(&doc);
            if (!path && !err.status)
                bx_err_set(&err, BX_E_BAD_REQUEST, 0, "path is required");
            goto fail;
        }
        json_doc_free(&doc);
        snprintf(x->dest, sizeof(x->dest), "%s", path);
        if (strlen(path) >= sizeof(x->dest)) {
            free(path);
            bx_err_set(&err, BX_E_BAD_REQUEST, 0, "path is too long");
            goto fail;
        }
        free(path);
    }
    b = box_find(x->m, x->id);
    if (!b) {
        respond_v1_error(x->conn, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box");
        xfer_free(x);
        return 0;
    }
    if (!x->put && (x->fd = box_scratch_fd(b, &err)) < 0)
        goto fail;
    if (box_transfer(b, x->put, x->dest, x->fd, on_xfer_done, x, &x->exec, &err) < 0)
        goto fail;
    return 0;
fail:
    if (err.status == BX_E_NOT_FOUND)
        respond_v1_error(x->conn, BX_E_NOT_FOUND, "BOX_NOT_FOUND", err.msg);
    else
        respond_box_err(x->conn, &err);
    xfer_free(x);
    return 0;
}

static void xfer_on_abort(void *ctx)
{
    struct xfer *x = ctx;
    /* The client left: the transfer ends on its own, unobserved. */
    if (x->exec)
        box_exec_forget(x->exec);
    xfer_free(x);
}

static const struct http_body_ops xfer_ops = {xfer_on_data, xfer_on_end, xfer_on_abort};

/* op: API_BOX_UPLOAD or API_BOX_DOWNLOAD */
void api_box_xfer(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                  const struct route_params *p, enum api_box_op op)
{
    const struct http_header *ct = http_find_header(req, "Content-Type");
    char boundary[MP_MAX_BOUNDARY + 1];
    size_t blen = 0;
    struct bx_err err;
    struct xfer *x;
    struct box *b;
    int put = op == API_BOX_UPLOAD;

    if (!put && op != API_BOX_DOWNLOAD) {
        http_respond_error(c, BX_E_INTERNAL, "not a transfer op");
        return;
    }
    b = find_box(m, c, p);
    if (!b)
        return;
    box_touch(b); /* a file transfer is activity (idle stop) */
    bx_err_clear(&err);
    if (put ? !(ct && http_media_type_is(ct->value, ct->value_len, "multipart/form-data"))
            : !(ct && http_media_type_is(ct->value, ct->value_len, "application/json"))) {
        respond_v1_error(c, BX_E_UNSUPPORTED_MEDIA, "INVALID_REQUEST",
                         put ? "Content-Type must be multipart/form-data"
                             : "Content-Type must be application/json");
        return;
    }
    if (put && mp_boundary_from_content_type(ct->value, ct->value_len, boundary, &blen, &err) < 0) {
        respond_box_err(c, &err);
        return;
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        http_respond_error(c, BX_E_INTERNAL, "out of memory");
        return;
    }
    x->m = m;
    x->conn = c;
    x->put = put;
    x->fd = -1;
    x->limit = box_upload_limit(m);
    param(p, 0, x->id, sizeof(x->id));
    sbuf_init(&x->body, API_BOX_MAX_BODY);
    if (put && mp_new(&x->mp, boundary, blen, &xfer_mp_cb, x, &err) < 0) {
        xfer_free(x);
        respond_box_err(c, &err);
        return;
    }
    /* The file may be exactly upload_limit_bytes; the framing and dest
     * come on top. */
    http_accept_body(c, put ? x->limit + 64 * 1024 : API_BOX_MAX_BODY, &xfer_ops, x);
}

/* ---- GET /v1/boxes?status=... ---- */

static void list_boxes_query(struct box_mgr *m, struct http_conn *c, const struct http_request *req)
{
    static const char *const statuses[] = {"creating", "running", "stopped", "error"};
    const char *status = NULL;
    char v[16];
    size_t vl = 0;
    int found;
    struct bx_err err;
    struct sbuf sb;
    struct json_writer w;

    bx_err_clear(&err);
    found = req->query ? http_query_param(req->query, req->query_len, "status", v, sizeof(v), &vl, &err)
                       : 0;
    if (found == 0 || (found == 1 && vl == 0)) {
        list_boxes(m, c, query_flag(req, "extra"));
        return;
    }
    for (size_t i = 0; found == 1 && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (bx_str_eq(v, vl, statuses[i]))
            status = statuses[i];
    if (!status) {
        respond_v1_error(c, BX_E_BAD_REQUEST, "INVALID_REQUEST",
                         "status must be creating, running, stopped or error");
        return;
    }
    sbuf_init(&sb, 64u << 20);
    json_w_init(&w, &sb);
    json_w_arr_begin(&w);
    box_each_status(m, &w, query_flag(req, "extra"), status);
    json_w_arr_end(&w);
    if (w.failed)
        http_respond_error(c, BX_E_INTERNAL, "answer too large");
    else
        http_respond(c, 200, "application/json", NULL, sb.data, sb.len);
    sbuf_free(&sb);
}
