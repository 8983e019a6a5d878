/* boxer: main, configuration, the route table, authentication and wiring;
 * the handlers of the original API are in boxer_routes.c. */
#define _GNU_SOURCE
#include "boxer_internal.h"

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
     * without asking (no CORS preflight), never application/json.
     * multipart/form-data (issue 17) is as exposed as POST /files: the
     * Origin and Host checks before any route are what guard both. */
    if (ct && http_media_type_is(ct->value, ct->value_len, "multipart/form-data"))
        route_run_multipart(app, c, ct);
    else if (!(ct && http_media_type_is(ct->value, ct->value_len, "application/json")))
        http_respond_error(c, BX_E_UNSUPPORTED_MEDIA,
                           "Content-Type must be application/json or multipart/form-data");
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
