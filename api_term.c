/* Terminal sessions over WebSocket; see api_term.h.
 *
 * One session joins three things: the upgraded connection (http_upgrade),
 * the frame decoder (ws.c) and the shell's exec record with its pty master
 * (box_term.c).  Flow control both ways: past TERM_OUT_HIGH bytes queued
 * for the client the master is not read (the shell blocks on its
 * terminal), and while the pty does not take the client's input the
 * connection is not read.  The session ends when the shell ends (exit
 * message, close), when the client closes or goes away (the shell is
 * left: its runsc exec client is killed and the master closed, so it
 * reads EOF), or when the box stops or is removed (the exec ends). */
#include "api_term.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_v1.h"
#include "attach_req.h"
#include "box.h"
#include "box_term.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "util.h"
#include "ws.h"
#include "wsauth.h"

#define TERM_OUT_HIGH (256 * 1024)  /* queued for the client: stop reading the pty */
#define TERM_OUT_PAUSE (1 << 20)    /* queued (pongs...): stop reading the client too */
#define TERM_READ 32768             /* pty bytes per frame */
#define TERM_IN_MAX (1 << 20)       /* client input the pty has not taken */
#define TERM_MSG_MAX (1 << 20)      /* one binary message from the client */
#define TERM_TEXT_MAX 4096          /* one control message */
#define TERM_PARAM_MAX 400          /* any query value, before its own checks */

struct term {
    struct box_mgr *m;
    struct loop *loop;
    struct http_conn *c;  /* NULL once closed or gone */
    struct box_exec *e;   /* NULL once ended or left */
    int master;
    int in_loop;          /* master registered */
    uint32_t events;
    struct ws_parser *ws;
    struct sbuf to_pty;
    int out_blocked;
    long out_queued;      /* bytes queued for the client at the last send */
    int closing;          /* set by a decoder callback: close after the feed */
    int close_code;
    char why[124];
};

static void term_free(struct term *t)
{
    if (t->in_loop)
        loop_del(t->loop, t->master);
    bx_close(&t->master);
    ws_parser_free(&t->ws);
    sbuf_free(&t->to_pty);
    free(t);
}

static void pty_set_events(struct term *t)
{
    uint32_t ev = 0;
    if (!t->in_loop)
        return;
    if (!t->out_blocked && t->c)
        ev |= EPOLLIN;
    if (t->to_pty.len > 0)
        ev |= EPOLLOUT;
    if (ev != t->events && loop_mod(t->loop, t->master, ev, NULL) == 0)
        t->events = ev;
}

/* The client is not read while the pty has not taken its last input, nor
 * while it leaves a lot of our answers (pongs) unread: what it makes us
 * queue stays bounded. */
static void client_pause(struct term *t)
{
    if (t->c)
        http_upgraded_pause(t->c, t->to_pty.len > 0 || t->out_queued > TERM_OUT_PAUSE);
}

static void send_frame(struct term *t, int op, const void *data, size_t len)
{
    /* one call per frame: a frame is queued whole or not at all */
    char buf[10 + TERM_READ];
    size_t h;
    long queued;
    if (!t->c || len > TERM_READ)
        return;
    h = ws_frame_header((unsigned char *)buf, op, len);
    if (len)
        memcpy(buf + h, data, len);
    queued = http_upgraded_send(t->c, buf, h + len);
    if (queued < 0)
        return;
    t->out_queued = queued;
    if (queued > TERM_OUT_HIGH && !t->out_blocked) {
        t->out_blocked = 1;
        pty_set_events(t);
    }
}

/* Sends a close frame and lets the connection go (after the flush); the
 * shell, if still running, is left. */
static void close_session(struct term *t, int code, const char *why)
{
    struct sbuf sb;
    if (t->c) {
        sbuf_init(&sb, 256);
        if (ws_close_append(&sb, code, why) == 0)
            http_upgraded_send(t->c, sb.data, sb.len);
        sbuf_free(&sb);
        http_upgraded_close(t->c);
        t->c = NULL;
    }
    if (t->e) {
        box_term_end(t->e);
        t->e = NULL;
    }
    term_free(t);
}

/* Reads what the pty has (at most max bytes) into frames.  0, or -1 when
 * the pty has no writer any more. */
static int pty_read(struct term *t, size_t max)
{
    char buf[TERM_READ];
    size_t got = 0;
    while (got < max && !t->out_blocked) {
        ssize_t n = read(t->master, buf, sizeof(buf));
        if (n > 0) {
            send_frame(t, WS_OP_BINARY, buf, (size_t)n);
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        return -1; /* EIO: every replica is closed */
    }
    return 0;
}

static int pty_flush_input(struct term *t)
{
    while (t->to_pty.len > 0) {
        ssize_t n = write(t->master, t->to_pty.data, t->to_pty.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return -1;
        memmove(t->to_pty.data, t->to_pty.data + n, t->to_pty.len - (size_t)n);
        t->to_pty.len -= (size_t)n;
    }
    return 0;
}

static void on_pty(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct term *t = arg;
    (void)l;
    (void)fd;
    if (events & EPOLLOUT) {
        if (pty_flush_input(t) < 0)
            t->to_pty.len = 0;
        if (t->to_pty.len == 0)
            client_pause(t);
    }
    if ((events & (EPOLLHUP | EPOLLERR)) && t->out_blocked) {
        /* A hung-up master is reported whatever the events asked: while
         * the client is behind, stop watching it (the exit reads the
         * rest). */
        loop_del(t->loop, t->master);
        t->in_loop = 0;
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (pty_read(t, 4 * TERM_READ) < 0) {
            /* The shell's side is closed; its exit (the runsc exec client
             * ending) ends the session.  A hung-up master is reported
             * whatever the events asked: stop watching it. */
            loop_del(t->loop, t->master);
            t->in_loop = 0;
            return;
        }
    }
    pty_set_events(t);
}

/* ---- the shell ended ---- */

static void on_exec_end(void *arg, struct box_exec *e)
{
    struct term *t = arg;
    char why[256];
    char msg[64];
    int code = box_exec_exit_code(e, why, sizeof(why));
    t->e = NULL;
    /* What the shell wrote last is still in the pty. */
    t->out_blocked = 0;
    if (t->master >= 0)
        pty_read(t, 1 << 20);
    snprintf(msg, sizeof(msg), "{\"type\":\"exit\",\"code\":%d}", code);
    send_frame(t, WS_OP_TEXT, msg, strlen(msg));
    close_session(t, WS_CLOSE_NORMAL, "");
}

/* ---- frames from the client ---- */

static int on_binary(void *arg, const char *data, size_t len, int fin)
{
    struct term *t = arg;
    (void)fin;
    if (!t->e || len == 0)
        return 0; /* the shell is gone: its exit message is on the way */
    if (t->to_pty.len == 0) {
        while (len > 0) {
            ssize_t n = write(t->master, data, len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            data += n;
            len -= (size_t)n;
        }
    }
    if (len > 0) {
        if (sbuf_append(&t->to_pty, data, len) < 0) {
            snprintf(t->why, sizeof(t->why), "terminal input backlog over %d bytes", TERM_IN_MAX);
            ws_fail(t->ws, WS_CLOSE_TOO_BIG);
            return -1;
        }
        /* the pty is full: read no more from the client until it drains */
        client_pause(t);
        pty_set_events(t);
    }
    box_term_touch(t->e);
    return 0;
}

static int bad_control(struct term *t, const char *why)
{
    snprintf(t->why, sizeof(t->why), "%s", why);
    ws_fail(t->ws, WS_CLOSE_UNSUPPORTED);
    return -1;
}

static int term_on_text(void *arg, const char *data, size_t len)
{
    struct term *t = arg;
    struct json_limits lim = {TERM_TEXT_MAX, 4, 16};
    struct json_doc *doc = NULL;
    const struct json_value *root, *type, *rows, *cols;
    struct bx_err err;
    int ret = 0;

    if (json_parse(data, len, &lim, &doc, &err) < 0)
        return bad_control(t, "control message: invalid JSON");
    root = json_doc_root(doc);
    type = json_get(root, "type");
    if (!type || type->type != JSON_STRING) {
        ret = bad_control(t, "control message: type missing");
    } else if (bx_str_eq(type->u.str.s, type->u.str.len, "resize")) {
        rows = json_get(root, "rows");
        cols = json_get(root, "cols");
        if (!rows || !cols || rows->type != JSON_NUMBER || cols->type != JSON_NUMBER ||
            !rows->u.num.is_int || !cols->u.num.is_int || rows->u.num.i < 1 ||
            cols->u.num.i < 1 || rows->u.num.i > BOX_TERM_DIM_MAX ||
            cols->u.num.i > BOX_TERM_DIM_MAX) {
            ret = bad_control(t, "resize: rows and cols must be integers from 1 to 1000");
        } else if (t->e && box_term_resize(t->e, t->master, (unsigned)rows->u.num.i,
                                           (unsigned)cols->u.num.i, &err) < 0) {
            bx_log_error("terminal resize: %s", err.msg);
        }
    } else {
        ret = bad_control(t, "control message: unknown type");
    }
    json_doc_free(&doc);
    return ret;
}

static int on_ping(void *arg, const char *data, size_t len)
{
    send_frame(arg, WS_OP_PONG, data, len);
    return 0;
}

static int on_close_frame(void *arg, int code, const char *reason, size_t len)
{
    struct term *t = arg;
    (void)reason;
    (void)len;
    /* echo the code (RFC 6455 5.5.1); the session ends after the feed */
    t->closing = 1;
    t->close_code = code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code;
    return 0;
}

static const struct ws_callbacks term_ws_cb = {on_binary, term_on_text, on_ping, NULL,
                                               on_close_frame};

/* ---- the connection ---- */

static int conn_data(void *arg, char *data, size_t len)
{
    struct term *t = arg;
    struct bx_err err;
    if (ws_feed(t->ws, data, len, &err) < 0) {
        close_session(t, ws_close_code(t->ws), t->why[0] ? t->why : err.msg);
        return 0;
    }
    if (t->closing)
        close_session(t, t->close_code, "");
    else
        client_pause(t);
    return 0;
}

static void conn_drain(void *arg)
{
    struct term *t = arg;
    t->out_queued = 0;
    client_pause(t);
    if (t->out_blocked) {
        t->out_blocked = 0;
        pty_set_events(t);
    }
}

static void conn_gone(void *arg)
{
    struct term *t = arg;
    t->c = NULL;
    if (t->e) {
        box_term_end(t->e);
        t->e = NULL;
    }
    term_free(t);
}

static const struct http_upgrade_ops term_conn_ops = {conn_data, conn_drain, conn_gone};

/* ---- the handler ---- */

static int query_str(const struct http_request *req, const char *name, char *out,
                     size_t cap, const char *dflt, struct bx_err *err)
{
    size_t len = 0;
    int r = http_query_param(req->query, req->query ? req->query_len : 0, name, out, cap, &len,
                             err);
    if (r < 0)
        return bx_err_wrap(err, "%s", name);
    if (r == 0)
        snprintf(out, cap, "%s", dflt);
    return 0;
}

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int query_dim(const struct http_request *req, const char *name, unsigned dflt,
                     unsigned *out, struct bx_err *err)
{
    char v[TERM_PARAM_MAX + 1];
    uint64_t n;
    if (query_str(req, name, v, sizeof(v), "", err) < 0)
        return -1;
    if (!v[0]) {
        *out = dflt;
        return 0;
    }
    if (bx_parse_u64(v, strlen(v), BOX_TERM_DIM_MAX, &n) < 0 || n == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must be an integer from 1 to %d",
                          name, BOX_TERM_DIM_MAX);
    *out = (unsigned)n;
    return 0;
}

static int parse_query(const struct http_request *req, char *shell, char *term,
                       struct box_term_req *r, struct attach_req *ar, struct bx_err *err)
{
    size_t slen;
    if (attach_req_parse(req->query, req->query ? req->query_len : 0, ar, err) < 0)
        return -1;
    if (ar->cmd && http_query_param(req->query, req->query_len, "shell", shell,
                                    TERM_PARAM_MAX + 1, &slen, err) != 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "give either shell or cmd, not both");
    r->cmd = ar->cmd;
    r->env = ar->env;
    r->workdir = ar->workdir;
    r->set_user = ar->set_user;
    r->uid = ar->uid;
    r->gid = ar->gid;
    if (query_str(req, "shell", shell, TERM_PARAM_MAX + 1, "/bin/bash", err) < 0 ||
        query_str(req, "term", term, TERM_PARAM_MAX + 1, "xterm-256color", err) < 0 ||
        query_dim(req, "cols", 80, &r->cols, err) < 0 ||
        query_dim(req, "rows", 24, &r->rows, err) < 0)
        return -1;
    if (shell[0] != '/' || strlen(shell) > BOX_TERM_STR_MAX || !printable(shell))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "shell must be an absolute path of at most %d bytes", BOX_TERM_STR_MAX);
    if (!term[0] || strlen(term) > 64 || strspn(term, "abcdefghijklmnopqrstuvwxyz"
                                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                      "0123456789.+-_") != strlen(term))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "term must be 1 to 64 letters, digits or . + - _");
    r->shell = shell;
    r->term = term;
    return 0;
}

void api_box_attach(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                    const struct route_params *p)
{
    char accept[WS_ACCEPT_LEN + 1], hdr[160], id[128];
    char shell[TERM_PARAM_MAX + 1], term[TERM_PARAM_MAX + 1];
    struct box_term_req tr;
    struct attach_req ar;
    struct ws_limits lim = {TERM_MSG_MAX, TERM_TEXT_MAX};
    struct bx_err err;
    struct term *t;
    struct box *b;

    bx_err_clear(&err);
    if (!m) {
        respond_v1_error_headers(c, BX_E_INTERNAL, "RUNTIME_ERROR", "boxes are not available",
                                 NULL);
        return;
    }
    if (ws_handshake_check(req, accept, &err) < 0) {
        respond_v1_error_headers(
            c, err.status, "INVALID_REQUEST", err.msg,
            err.status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    memset(&tr, 0, sizeof(tr));
    if (parse_query(req, shell, term, &tr, &ar, &err) < 0) {
        respond_v1_error_headers(c, bx_err_http_status(&err),
                                 err.status == BX_E_BAD_REQUEST ? "INVALID_REQUEST"
                                                                : "RUNTIME_ERROR",
                                 err.msg, NULL);
        attach_req_free(&ar);
        return;
    }
    b = NULL;
    if (p->n >= 1 && p->p[0].len > 0 && p->p[0].len < sizeof(id)) {
        memcpy(id, p->p[0].s, p->p[0].len);
        id[p->p[0].len] = 0;
        b = box_find(m, id);
    }
    if (!b) {
        respond_v1_error_headers(c, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box", NULL);
        attach_req_free(&ar);
        return;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        respond_v1_error_headers(c, BX_E_INTERNAL, "RUNTIME_ERROR", "out of memory", NULL);
        attach_req_free(&ar);
        return;
    }
    t->m = m;
    t->master = -1;
    sbuf_init(&t->to_pty, TERM_IN_MAX);
    if (ws_parser_new(&t->ws, &lim, &term_ws_cb, t, &err) < 0 ||
        box_term_start(b, &tr, on_exec_end, t, &t->e, &t->master, &err) < 0) {
        respond_v1_error_headers(c, bx_err_http_status(&err), box_err_code(&err), err.msg, NULL);
        attach_req_free(&ar);
        term_free(t);
        return;
    }
    attach_req_free(&ar); /* written into the process JSON by now */
    t->loop = box_term_loop(m);
    if (loop_add(t->loop, t->master, EPOLLIN, on_pty, t, &err) < 0) {
        box_term_end(t->e);
        respond_v1_error_headers(c, BX_E_INTERNAL, "RUNTIME_ERROR", err.msg, NULL);
        term_free(t);
        return;
    }
    t->in_loop = 1;
    t->events = EPOLLIN;
    t->c = c;
    {
        /* The web console offers "boxer" (and its token, wsauth.h): a
         * browser fails the handshake unless one offered is selected. */
        const struct http_header *proto = http_find_header(req, "Sec-WebSocket-Protocol");
        struct wsauth wa;
        memset(&wa, 0, sizeof(wa));
        if (proto)
            wsauth_parse(proto->value, proto->value_len, &wa);
        snprintf(hdr, sizeof(hdr),
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s",
                 accept, wa.offers_boxer ? "Sec-WebSocket-Protocol: boxer\r\n" : "");
    }
    http_upgrade(c, hdr, &term_conn_ops, t);
}

/* ---- execs with a terminal ---- */

static int dim(const struct json_value *o, const char *key, unsigned *out, struct bx_err *err)
{
    const struct json_value *v = json_get(o, key);
    if (!v || v->type != JSON_NUMBER || !v->u.num.is_int || v->u.num.i < 1 ||
        v->u.num.i > BOX_TERM_DIM_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "%s must be an integer from 1 to %d", key, BOX_TERM_DIM_MAX);
    *out = (unsigned)v->u.num.i;
    return 0;
}

int api_term_parse_tty(const struct json_value *root, struct box_exec_req *r,
                       struct bx_err *err)
{
    const struct json_value *v = json_get(root, "tty");
    static const char *const keys[] = {"rows", "cols", NULL};
    const struct json_member *bad;
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_OBJECT)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "tty must be {\"rows\": R, \"cols\": C}");
    if (json_obj_check_keys(v, keys, &bad) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "tty: unknown field %.64s", bad->key);
    if (dim(v, "rows", &r->tty_rows, err) < 0 || dim(v, "cols", &r->tty_cols, err) < 0)
        return bx_err_wrap(err, "tty");
    return 0;
}

#define RESIZE_MAX_BODY 4096

struct resize {
    struct box_mgr *m;
    struct http_conn *c;
    char id[128], eid[128];
    struct sbuf body;
};

static int rs_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct resize *r = ctx;
    if (sbuf_append(&r->body, data, len) < 0)
        return bx_err_set(err, BX_E_TOO_LARGE, 0, "body over %d bytes", RESIZE_MAX_BODY);
    return 0;
}

static void rs_free(struct resize *r)
{
    sbuf_free(&r->body);
    free(r);
}

static int rs_end(void *ctx, struct bx_err *unused)
{
    struct resize *r = ctx;
    struct json_limits lim = {RESIZE_MAX_BODY, 4, 16};
    struct json_doc *doc = NULL;
    const struct json_value *root;
    struct bx_err err;
    struct box *b;
    struct box_exec *e = NULL;
    unsigned rows = 0, cols = 0;
    (void)unused;
    bx_err_clear(&err);
    b = box_find(r->m, r->id);
    if (b)
        e = box_exec_find(b, r->eid);
    if (!b) {
        respond_v1_error_headers(r->c, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box", NULL);
    } else if (!e) {
        respond_v1_error_headers(r->c, BX_E_NOT_FOUND, "EXEC_NOT_FOUND", "no such exec", NULL);
    } else if (json_parse(r->body.data ? r->body.data : "", r->body.len, &lim, &doc, &err) < 0 ||
               dim(json_doc_root(doc), "rows", &rows, &err) < 0 ||
               dim(json_doc_root(doc), "cols", &cols, &err) < 0) {
        respond_v1_error_headers(r->c, BX_E_BAD_REQUEST, "INVALID_REQUEST", err.msg, NULL);
    } else if (box_term_exec_resize(e, rows, cols, &err) < 0) {
        respond_v1_error_headers(r->c, bx_err_http_status(&err),
                                 err.status == BX_E_CONFLICT      ? "EXEC_ALREADY_FINISHED"
                                 : err.status == BX_E_BAD_REQUEST ? "INVALID_REQUEST"
                                                                  : "RUNTIME_ERROR",
                                 err.msg, NULL);
    } else {
        struct sbuf sb;
        struct json_writer w;
        root = NULL;
        sbuf_init(&sb, 1 << 24);
        json_w_init(&w, &sb);
        box_exec_json(e, &w, 0);
        if (w.failed)
            respond_v1_error_headers(r->c, BX_E_INTERNAL, "RUNTIME_ERROR", "out of memory", NULL);
        else
            http_respond(r->c, 200, "application/json", NULL, sb.data, sb.len);
        sbuf_free(&sb);
        (void)root;
    }
    json_doc_free(&doc);
    rs_free(r);
    return 0;
}

static void rs_abort(void *ctx)
{
    rs_free(ctx);
}

static const struct http_body_ops resize_ops = {rs_data, rs_end, rs_abort};

void api_box_exec_resize(struct box_mgr *m, struct http_conn *c, const struct http_request *req,
                         const struct route_params *p)
{
    struct resize *r;
    (void)req;
    if (!m) {
        respond_v1_error_headers(c, BX_E_INTERNAL, "RUNTIME_ERROR", "boxes are not available",
                                 NULL);
        return;
    }
    if (p->n < 2 || p->p[0].len == 0 || p->p[0].len >= sizeof(r->id) || p->p[1].len == 0 ||
        p->p[1].len >= sizeof(r->eid)) {
        respond_v1_error_headers(c, BX_E_NOT_FOUND, "BOX_NOT_FOUND", "no such box", NULL);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        respond_v1_error_headers(c, BX_E_INTERNAL, "RUNTIME_ERROR", "out of memory", NULL);
        return;
    }
    r->m = m;
    r->c = c;
    memcpy(r->id, p->p[0].s, p->p[0].len);
    memcpy(r->eid, p->p[1].s, p->p[1].len);
    sbuf_init(&r->body, RESIZE_MAX_BODY);
    http_accept_body(c, RESIZE_MAX_BODY, &resize_ops, r);
}
