/* Commands run in a box (runsc exec): see box.h. */
#include "box_internal.h"
#include "box_term.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "image.h"
#include "imgref.h"
#include "json.h"
#include "log.h"
#include "oci.h"
#include "proc.h"
#include "util.h"

/* ---- exec ---- */

struct box_exec_watch {
    struct box_exec_watch *next;
    struct box_exec *e;
    uint64_t at; /* the watcher has taken the events up to this seq */
    box_watch_cb cb;
    void *arg;
};

/* A watcher this far behind the newest event (charged log bytes) stops the
 * reading of the pipes; below the low mark reading resumes.  Both well
 * under the log's size, so a watcher that keeps up loses nothing. */
static uint64_t watch_high(const struct box_exec *e)
{
    uint64_t h = e->log.max / 2;
    return h < (256u << 10) ? h : (256u << 10);
}

static int watchers_lag(const struct box_exec *e, uint64_t mark)
{
    for (const struct box_exec_watch *w = e->watchers; w; w = w->next)
        if (exec_log_bytes_after(&e->log, w->at) > mark)
            return 1;
    return 0;
}

static void exec_set_reading(struct box_exec *e, int on)
{
    struct loop *l = e->box->m->p.loop;
    if (e->paused == !on)
        return;
    e->paused = !on;
    if (e->out_fd >= 0)
        loop_mod(l, e->out_fd, on ? EPOLLIN : 0, NULL);
    if (e->err_fd >= 0)
        loop_mod(l, e->err_fd, on ? EPOLLIN : 0, NULL);
}

static void exec_notify_now(struct loop *l, void *arg)
{
    struct box_exec *e = arg;
    struct box_exec_watch *w, *next;
    (void)l;
    /* a watcher's cb may remove that watcher (and only it) */
    for (w = e->watchers; w; w = next) {
        next = w->next;
        w->cb(w->arg, 0);
    }
}

void exec_notify(struct box_exec *e)
{
    if (e->watchers)
        loop_defer(e->box->m->p.loop, &e->notify, exec_notify_now, e);
}

/* force: read everything (the command ended, or the pipe hung up), even
 * while paused: a pipe holds a bounded amount. */
static void exec_drain(struct box_exec *e, int *fd, int stream, int force)
{
    char buf[65536];
    int added = 0;
    for (;;) {
        ssize_t n;
        if (e->paused && !force)
            break;
        n = read(*fd, buf, sizeof(buf));
        if (n > 0) {
            exec_log_append(&e->log, stream, buf, (size_t)n);
            added = 1;
            if (e->watchers && watchers_lag(e, watch_high(e)))
                exec_set_reading(e, 0);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        /* EOF or error */
        loop_del(e->box->m->p.loop, *fd);
        bx_close(fd);
        break;
    }
    if (added)
        exec_notify(e);
}

static void exec_on_pipe(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct box_exec *e = arg;
    int force = (events & (EPOLLHUP | EPOLLERR)) != 0;
    (void)l;
    if (fd == e->out_fd)
        exec_drain(e, &e->out_fd, EXEC_STDOUT, force);
    else if (fd == e->err_fd)
        exec_drain(e, &e->err_fd, EXEC_STDERR, force);
}

struct box_exec_watch *box_exec_watch(struct box_exec *e, box_watch_cb cb, void *arg,
                                      struct bx_err *err)
{
    struct box_exec_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    w->e = e;
    w->cb = cb;
    w->arg = arg;
    w->next = e->watchers;
    e->watchers = w;
    return w;
}

void box_exec_unwatch(struct box_exec_watch **wp)
{
    struct box_exec_watch *w = *wp;
    struct box_exec *e;
    if (!w)
        return;
    *wp = NULL;
    e = w->e;
    for (struct box_exec_watch **pp = &e->watchers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    free(w);
    if (!e->watchers)
        loop_defer_cancel(e->box->m->p.loop, &e->notify);
    if (e->paused && !watchers_lag(e, watch_high(e) / 2))
        exec_set_reading(e, 1);
}

void box_exec_watch_at(struct box_exec_watch *w, uint64_t seq)
{
    struct box_exec *e = w->e;
    w->at = seq;
    if (e->paused && !watchers_lag(e, watch_high(e) / 2))
        exec_set_reading(e, 1);
}

/* The record goes: every watcher is told, while e can still be read. */
void exec_watchers_gone(struct box_exec *e)
{
    loop_defer_cancel(e->box->m->p.loop, &e->notify);
    while (e->watchers) {
        struct box_exec_watch *w = e->watchers;
        e->watchers = w->next;
        w->cb(w->arg, 1);
        free(w);
    }
}

const struct exec_log *box_exec_log(const struct box_exec *e)
{
    return &e->log;
}

const char *box_exec_id(const struct box_exec *e)
{
    return e->id;
}

int box_exec_is_running(const struct box_exec *e)
{
    return e->running;
}

int box_exec_base64(const struct box_exec *e)
{
    return e->base64;
}

int box_exec_result(const struct box_exec *e, const char **status, int *timed_out,
                    uint64_t *wall_ms)
{
    *status = e->running ? "running" : e->failed ? "failed" : "succeeded";
    *timed_out = e->timed_out;
    *wall_ms = e->wall_ms;
    return e->exit_code;
}

void box_exec_count_end(const struct box_exec *e)
{
    struct box_mgr *m = e->box->m;
    int o = e->canceled ? METRICS_EXEC_CANCELED
          : e->timed_out ? METRICS_EXEC_TIMED_OUT
          : e->failed ? METRICS_EXEC_FAILED : METRICS_EXEC_SUCCEEDED;
    if (e->hidden)
        return;
    m->execs_by_outcome[o]++;
    metrics_hist_observe(&m->exec_hist, e->wall_ms);
}

static void exec_unlink_files(struct box_exec *e)
{
    char p[PATH_MAX + 96];
    snprintf(p, sizeof(p), "%s/%s.json", e->box->dir, e->id);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s.log", e->box->dir, e->id);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s.pid", e->box->dir, e->id);
    unlink(p);
}

static void exec_control_end(struct box_exec *e);

/* runsc exits 128 both for a command killed by signal 0 (impossible) and
 * when it could not start the command at all (missing program, bad
 * workdir): its log then holds an "error" entry.  Such a failure is not
 * the command's status: error_message says what happened, exit code 127
 * for a missing program (as a shell says), 126 otherwise.  runsc's message
 * went to the same stderr pipe (the process never ran), so stderr is
 * cleared. */
static void exec_runsc_failure(struct box_exec *e)
{
    char p[PATH_MAX + 96];
    char *text = NULL, *msg, *end;
    size_t len = 0;
    snprintf(p, sizeof(p), "%s/%s.log", e->box->dir, e->id);
    if (bx_read_file_at(AT_FDCWD, p, 1u << 20, &text, &len, NULL) < 0)
        return;
    msg = strstr(text, "\"level\":\"error\"") ? strstr(text, "{\"msg\":\"") : NULL;
    if (msg) {
        msg += 8;
        end = strstr(msg, "\",\"level\"");
        if (end) {
            size_t n = 0;
            /* undo the JSON escapes of quotes and backslashes */
            for (const char *q = msg; q < end && n + 1 < sizeof(e->error); q++) {
                if (*q == '\\' && q + 1 < end && (q[1] == '"' || q[1] == '\\'))
                    q++;
                e->error[n++] = *q;
            }
            e->error[n] = 0;
            e->exit_code = strstr(e->error, "failed to load") ? 127 : 126;
            exec_log_remove_stream(&e->log, EXEC_STDERR);
        }
    }
    free(text);
}

static void exec_on_exit(void *arg, int status)
{
    struct box_exec *e = arg;
    box_exec_cb cb;
    void *cb_arg;
    proc_free(&e->proc);
    /* What the command wrote before it ended is in the pipes; a background
     * child may keep them open, so the exec ends now, not at EOF. */
    if (e->out_fd >= 0) {
        exec_drain(e, &e->out_fd, EXEC_STDOUT, 1);
        if (e->out_fd >= 0) {
            loop_del(e->box->m->p.loop, e->out_fd);
            bx_close(&e->out_fd);
        }
    }
    if (e->err_fd >= 0) {
        exec_drain(e, &e->err_fd, EXEC_STDERR, 1);
        if (e->err_fd >= 0) {
            loop_del(e->box->m->p.loop, e->err_fd);
            bx_close(&e->err_fd);
        }
    }
    exec_log_flush(&e->log);
    e->running = 0;
    e->finished = time(NULL);
    e->wall_ms = bx_now_ms() - e->started_ms;
    if (WIFEXITED(status))
        e->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        e->exit_code = 128 + WTERMSIG(status);
    if (e->safety_timer) {
        loop_timer_cancel(e->box->m->p.loop, e->safety_timer);
        e->safety_timer = 0;
    }
    if (e->exit_code == 128)
        exec_runsc_failure(e);
    exec_unlink_files(e);
    box_exec_settle(e);
    exec_control_end(e);
    box_store_save_exec(e);
    exec_notify(e);
    cb = e->cb;
    cb_arg = e->cb_arg;
    e->cb = NULL;
    e->cb_arg = NULL;
    if (cb)
        cb(cb_arg, e);
}

/* The helper did not end the exec in time (the box is overloaded, or the
 * helper itself is stuck): end the client; the box keeps whatever is left. */
void box_exec_settle(struct box_exec *e)
{
    /* The helper in the box exits 137 after killing the command's group at
     * the deadline; the safety timer marks timed_out itself. */
    if (e->timeout_ms && e->exit_code == 137 && e->wall_ms >= e->timeout_ms)
        e->timed_out = 1;
    if (e->timed_out) {
        e->exit_code = 137;
        snprintf(e->error, sizeof(e->error), "timed out after %llu ms",
                 (unsigned long long)e->timeout_ms);
    }
    e->failed = e->exit_code != 0;
    box_exec_count_end(e);
}

void exec_safety(struct loop *l, void *arg)
{
    struct box_exec *e = arg;
    (void)l;
    e->safety_timer = 0;
    e->timed_out = 1;
    if (e->proc)
        proc_kill(e->proc, SIGKILL);
}

void box_exec_forget(struct box_exec *e)
{
    e->cb = NULL;
    e->cb_arg = NULL;
}

void box_trim_execs(struct box *b)
{
    unsigned n = 0;
    for (struct box_exec **pp = &b->execs; *pp;) {
        struct box_exec *e = *pp;
        /* a file transfer's record goes once its waiter was answered */
        if ((e->hidden || ++n > box_execs_kept(b->m)) && !e->running && !e->cb && !e->watchers) {
            *pp = e->next;
            box_store_drop_exec(e);
            exec_free(e);
            continue;
        }
        pp = &e->next;
    }
}

/* in_fd/out_fd: runsc's stdin/stdout (-1: /dev/null / a pipe into the
 * exec's output buffer); hidden: a file transfer, not listed as an exec. */
int box_exec_wrap_timeout(const struct box_exec_req *req, char ms[EXEC_MS_MAX], char ***wrapped,
                          struct bx_err *err)
{
    size_t n = 0;

    *wrapped = NULL;
    if (!req->timeout_ms)
        return 0;
    /* The in-box helper owns the timeout: it can kill the command's
     * whole process group, which nothing on the host can. */
    while (req->cmd[n])
        n++;
    *wrapped = calloc(n + 5, sizeof(**wrapped));
    if (!*wrapped)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    snprintf(ms, EXEC_MS_MAX, "%llu", (unsigned long long)req->timeout_ms);
    (*wrapped)[0] = "/.boxer/init";
    (*wrapped)[1] = "--exec";
    (*wrapped)[2] = ms;
    (*wrapped)[3] = "--";
    for (size_t i = 0; i < n; i++)
        (*wrapped)[4 + i] = req->cmd[i];
    return 0;
}

static int exec_io(struct box *b, struct box_exec_req *req, int in_fd, int out_fd, int hidden,
                   box_exec_cb cb, void *arg, struct box_exec **out, struct bx_err *err)
{
    struct box_exec *e;
    char **env1 = NULL, **env2 = NULL, **env3 = NULL;
    char *home[] = {"HOME=/root", NULL};
    char **wrapped = NULL;
    char ms[EXEC_MS_MAX];
    char pname[96];
    struct sbuf sb;
    struct json_writer w;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    int ret = -1;

    if (b->status != BOX_RUNNING || b->removing)
        return bx_err_set(err, BX_E_CONFLICT, ENOTCONN, "box %s is not running", b->id);
    if (!req->cmd || !req->cmd[0])
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must be a non-empty list");
    e = calloc(1, sizeof(*e));
    if (!e)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    e->box = b;
    e->out_fd = e->err_fd = -1;
    exec_log_init(&e->log, box_exec_output_max(b->m));
    infeed_init(&e->in, b->m->p.loop, 0);
    sbuf_init(&sb, 1 << 20);
    snprintf(pname, sizeof(pname), "exec_%s_", b->m->p.cfg->node_id);
    if (random_id(pname, e->id, sizeof(e->id), err) < 0)
        goto fail;
    /* image Env < box env < exec env; HOME is root's unless someone says. */
    if (oci_merge_env(home, b->img ? b->img->env : NULL, &env1, err) < 0 ||
        oci_merge_env(env1, b->env, &env2, err) < 0 || oci_merge_env(env2, req->env, &env3, err) < 0)
        goto fail;
    if (box_exec_wrap_timeout(req, ms, &wrapped, err) < 0)
        goto fail;
    json_w_init(&w, &sb);
    w_process(&w, b, wrapped ? wrapped : req->cmd, env3,
              req->workdir && req->workdir[0] ? req->workdir : b->workdir,
              req->set_user ? req->uid : b->uid, req->set_user ? req->gid : b->gid, 0);
    if (w.failed) {
        bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "exec too large");
        goto fail;
    }
    snprintf(pname, sizeof(pname), "%s.json", e->id);
    if (write_scratch_file(b, pname, &sb, err) < 0)
        goto fail;
    if ((out_fd < 0 && pipe2(outp, O_CLOEXEC) < 0) || pipe2(errp, O_CLOEXEC) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "pipe2");
        goto fail;
    }
    if ((out_fd < 0 && fcntl(outp[0], F_SETFL, O_NONBLOCK) < 0) ||
        fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fcntl");
        goto fail;
    }
    {
        char ppath[PATH_MAX + 112], lname[96], pidpath[PATH_MAX + 112];
        snprintf(ppath, sizeof(ppath), "%s/%s", b->dir, pname);
        snprintf(lname, sizeof(lname), "%s.log", e->id);
        /* the pid in the box, for signals and cancel (issue 14) */
        snprintf(pidpath, sizeof(pidpath), "%s/%s.pid", b->dir, e->id);
        const char *args[] = {"exec", "--process", ppath, "--internal-pid-file", pidpath,
                              b->cid, NULL};
        if (box_spawn_runsc_io(b, args, lname, in_fd, out_fd >= 0 ? out_fd : outp[1], errp[1], 1,
                               exec_on_exit, e, &e->proc, err) < 0)
            goto fail;
        /* removed when the exec ends (exec_unlink_files) */
    }
    e->out_fd = bx_steal_fd(&outp[0]);
    e->err_fd = bx_steal_fd(&errp[0]);
    if ((e->out_fd >= 0 && loop_add(b->m->p.loop, e->out_fd, EPOLLIN, exec_on_pipe, e, err) < 0) ||
        loop_add(b->m->p.loop, e->err_fd, EPOLLIN, exec_on_pipe, e, err) < 0) {
        /* exec_free kills the child; loop_del of an fd never added is harmless */
        goto fail;
    }
    e->cmd = bx_steal_ptr(&req->cmd);
    e->env = bx_steal_ptr(&req->env);
    e->workdir = bx_steal_ptr(&req->workdir);
    e->timeout_ms = req->timeout_ms;
    e->base64 = req->base64;
    e->running = 1;
    e->hidden = hidden;
    e->exit_code = -1;
    e->created = time(NULL);
    e->started_ms = bx_now_ms();
    if (e->timeout_ms)
        e->safety_timer = loop_timer_add(b->m->p.loop, e->timeout_ms + BOX_EXEC_SAFETY_MS,
                                         exec_safety, e);
    e->cb = cb;
    e->cb_arg = arg;
    e->next = b->execs;
    b->execs = e;
    if (!hidden)
        b->m->execs_started++; /* box_stats */
    box_trim_execs(b);
    box_store_save_exec(e);
    *out = e;
    ret = 0;
    e = NULL;
fail:
    if (e) {
        exec_unlink_files(e);
        exec_free(e);
    }
    free(wrapped);
    bx_strv_free(&env1);
    bx_strv_free(&env2);
    bx_strv_free(&env3);
    sbuf_free(&sb);
    bx_close(&outp[0]);
    bx_close(&outp[1]);
    bx_close(&errp[0]);
    bx_close(&errp[1]);
    return ret;
}


int box_exec(struct box *b, struct box_exec_req *req, box_exec_cb cb, void *arg,
             struct box_exec **out, struct bx_err *err)
{
    if (req->tty_rows)
        return box_term_exec(b, req, cb, arg, out, err);
    struct infeed in;
    int child_in = -1, r;
    char *data;
    size_t len;
    int open_in;

    if (!req->stdin_data && !req->stdin_open)
        return exec_io(b, req, -1, -1, 0, cb, arg, out, err);
    /* stdin through a pipe the loop feeds (infeed.h) */
    infeed_init(&in, b->m->p.loop, 0);
    if (infeed_pipe(&in, &child_in, err) < 0)
        return -1;
    data = bx_steal_ptr(&req->stdin_data);
    len = req->stdin_len;
    open_in = req->stdin_open;
    r = exec_io(b, req, child_in, -1, 0, cb, arg, out, err);
    bx_close(&child_in);
    if (r < 0) {
        infeed_free(&in);
        free(data);
        return -1;
    }
    /* Moved before anything is queued: nothing refers to &in yet. */
    (*out)->in = in;
    /* the initial stdin always fits, even when larger than the buffer */
    (*out)->in.max = open_in && b->m->p.cfg->exec_stdin_buffer_bytes > len
                         ? b->m->p.cfg->exec_stdin_buffer_bytes
                         : len;
    (*out)->stdin_open = open_in;
    if (len > 0 && infeed_put(&(*out)->in, data, len, err) < 0) {
        /* cannot happen within max; the command then sees EOF at once */
        bx_log_warn("%s: stdin: %s", (*out)->id, err->msg);
        bx_err_clear(err);
    }
    free(data);
    if (!open_in)
        infeed_eof(&(*out)->in);
    return 0;
}

/* ---- files in and out ---- */

int box_scratch_fd(struct box *b, struct bx_err *err)
{
    /* Anonymous (O_TMPFILE): nothing to clean up after a crash. */
    int fd = open(b->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open scratch file");
    return fd;
}

int box_transfer(struct box *b, int put, const char *path, int fd, box_exec_cb cb, void *arg,
                 struct box_exec **out, struct bx_err *err)
{
    struct box_exec_req req;
    char *cmd[4];
    int r;

    if (!path || path[0] != '/' || strlen(path) >= PATH_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "path must be an absolute path in the box");
    if (lseek(fd, 0, SEEK_SET) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "lseek");
    cmd[0] = strdup("/.boxer/init");
    cmd[1] = strdup(put ? "--put" : "--get");
    cmd[2] = strdup(path);
    cmd[3] = NULL;
    memset(&req, 0, sizeof(req));
    req.workdir = strdup("/");
    if (!cmd[0] || !cmd[1] || !cmd[2] || !req.workdir) {
        free(cmd[0]);
        free(cmd[1]);
        free(cmd[2]);
        free(req.workdir);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    req.cmd = calloc(4, sizeof(char *));
    if (!req.cmd) {
        free(cmd[0]);
        free(cmd[1]);
        free(cmd[2]);
        free(req.workdir);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    memcpy(req.cmd, cmd, sizeof(cmd));
    /* root, as the box's execs are: the box's own permissions apply */
    r = exec_io(b, &req, put ? fd : -1, put ? -1 : fd, 1, cb, arg, out, err);
    box_exec_req_free(&req);
    return r;
}

int box_exec_exit_code(const struct box_exec *e, char *why, size_t cap)
{
    if (e->error[0]) {
        snprintf(why, cap, "%s", e->error);
    } else {
        struct sbuf sb;
        sbuf_init(&sb, box_exec_output_max(e->box->m));
        exec_log_text(&e->log, EXEC_STDERR, &sb);
        snprintf(why, cap, "%.*s", (int)(sb.len < cap ? sb.len : cap - 1), sb.data ? sb.data : "");
        sbuf_free(&sb);
    }
    /* one line: the helper's message ends with a newline */
    why[strcspn(why, "\n")] = 0;
    return e->exit_code;
}

uint64_t box_upload_limit(const struct box_mgr *m)
{
    return m->p.cfg->upload_limit_bytes;
}

struct loop *box_mgr_loop(const struct box_mgr *m)
{
    return m->p.loop;
}

uint64_t box_stream_keepalive_ms(const struct box_mgr *m)
{
    return m->p.cfg->stream_keepalive_secs * 1000;
}

uint64_t box_min_free_disk_percent(const struct box_mgr *m)
{
    return m->p.cfg->min_free_disk_percent;
}

/* ---- input and control (issue 14) ---- */

uint64_t box_stdin_limit(const struct box_mgr *m)
{
    return m->p.cfg->stdin_limit_bytes;
}

uint64_t box_stdin_buffer(const struct box_mgr *m)
{
    return m->p.cfg->exec_stdin_buffer_bytes;
}

int box_exec_stdin(struct box_exec *e, const void *data, size_t len, int has_offset,
                   uint64_t offset, int eof, uint64_t *total, struct bx_err *err)
{
    const char *p = data;
    if (!e->running)
        return bx_err_set(err, BX_E_CONFLICT, ESRCH, "exec %s has already finished", e->id);
    *total = e->in.total;
    /* a retry of a write that gave eof, already applied */
    if (!e->stdin_open && e->in.eof && has_offset && offset <= e->in.total &&
        e->in.total - offset >= len)
        return 0;
    if (!e->stdin_open)
        return bx_err_set(err, BX_E_CONFLICT, EPIPE,
                          "stdin of exec %s is closed (not started with stdin_open, or eof given)",
                          e->id);
    if (e->in.broken)
        return bx_err_set(err, BX_E_CONFLICT, EPIPE, "exec %s closed its stdin", e->id);
    box_touch(e->box);
    if (has_offset) {
        /* A retried write: what was already received is skipped. */
        if (offset > e->in.total)
            return bx_err_set(err, BX_E_CONFLICT, ERANGE,
                              "offset %llu is past the %llu bytes received", (unsigned long long)offset,
                              (unsigned long long)e->in.total);
        if (e->in.total - offset >= len) {
            len = 0;
        } else {
            p += e->in.total - offset;
            len -= (size_t)(e->in.total - offset);
        }
    }
    if (len > e->in.max)
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                          "more than exec_stdin_buffer_bytes (%zu) at once", e->in.max);
    if (len > infeed_room(&e->in))
        return bx_err_set(err, BX_E_TOO_MANY_REQUESTS, EAGAIN,
                          "stdin buffer is full (%zu bytes not yet read by the command): retry "
                          "with offset %llu",
                          e->in.max - infeed_room(&e->in), (unsigned long long)e->in.total);
    if (infeed_put(&e->in, p, len, err) < 0)
        return -1;
    if (eof) {
        e->stdin_open = 0;
        infeed_eof(&e->in);
    }
    *total = e->in.total;
    return 0;
}

/* Signals reach the command's process group through the in-box helper
 * (`/.boxer/init --kill <pid> <sig>...`, run by `runsc exec`): signalling
 * the `runsc exec` client does not reach into the box, and `runsc kill
 * --pid` signals one process, not the group (RUNSC-NOTES).  The pid is the
 * one runsc wrote to <id>.pid: the process it started, leader of its own
 * process group (or the timeout helper, whose group holds the command). */
static void kill_files(struct box_exec *e, int unlink_them, char *json, size_t jcap)
{
    snprintf(json, jcap, "%s/%s.kill.json", e->box->dir, e->id);
    if (unlink_them) {
        char p[PATH_MAX + 96];
        unlink(json);
        snprintf(p, sizeof(p), "%s/%s.kill.log", e->box->dir, e->id);
        unlink(p);
    }
}

static void sig_kick(struct box_exec *e);

static void exec_on_killer_exit(void *arg, int status)
{
    struct box_exec *e = arg;
    char json[PATH_MAX + 96];
    proc_free(&e->killer);
    kill_files(e, 1, json, sizeof(json));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bx_log_warn("%s: delivering a signal: helper status %d", e->id, status);
    sig_kick(e);
}

static void on_sig_timer(struct loop *l, void *arg)
{
    struct box_exec *e = arg;
    (void)l;
    e->sig_timer = 0;
    sig_kick(e);
}

#define SIG_POLL_MS 20
#define SIG_POLLS 500

static void sig_kick(struct box_exec *e)
{
    struct box *b = e->box;
    char p[PATH_MAX + 96], json[PATH_MAX + 96], lname[80], pid[24], nums[16][8];
    char *argv[3 + 16 + 1];
    char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    char *text = NULL;
    size_t len = 0, a = 0;
    uint64_t v;
    struct sbuf sb;
    struct json_writer w;
    struct bx_err err;

    if (!e->running || e->nsigs == 0 || e->killer || e->sig_timer)
        return;
    snprintf(p, sizeof(p), "%s/%s.pid", b->dir, e->id);
    if (bx_read_file_at(AT_FDCWD, p, 64, &text, &len, NULL) < 0 || len == 0 ||
        bx_parse_u64(text, strcspn(text, "\n"), INT32_MAX, &v) < 0 || v == 0) {
        free(text);
        /* runsc writes the file right after starting the process */
        if (++e->sig_polls > SIG_POLLS) {
            bx_log_warn("%s: no pid from runsc: %u signal(s) dropped", e->id, e->nsigs);
            e->nsigs = 0;
            return;
        }
        e->sig_timer = loop_timer_add(b->m->p.loop, SIG_POLL_MS, on_sig_timer, e);
        return;
    }
    free(text);
    snprintf(pid, sizeof(pid), "%llu", (unsigned long long)v);
    argv[a++] = "/.boxer/init";
    argv[a++] = "--kill";
    argv[a++] = pid;
    for (unsigned i = 0; i < e->nsigs; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%d", e->sigs[i]);
        argv[a++] = nums[i];
    }
    argv[a] = NULL;
    e->nsigs = 0;
    bx_err_clear(&err);
    sbuf_init(&sb, 1 << 16);
    json_w_init(&w, &sb);
    w_process(&w, e->box, argv, env, "/", 0, 0, 0);
    kill_files(e, 1, json, sizeof(json));
    snprintf(lname, sizeof(lname), "%s.kill.log", e->id);
    {
        const char *args[] = {"exec", "--process", json, b->cid, NULL};
        if (w.failed || write_scratch_file(b, strrchr(json, '/') + 1, &sb, &err) < 0 ||
            box_spawn_runsc_io(b, args, lname, -1, -1, -1, 1, exec_on_killer_exit, e, &e->killer,
                               &err) < 0) {
            bx_log_warn("%s: delivering a signal: %s", e->id, w.failed ? "too large" : err.msg);
            kill_files(e, 1, json, sizeof(json));
        }
    }
    sbuf_free(&sb);
}

int box_exec_signal(struct box_exec *e, int sig, struct bx_err *err)
{
    if (!e->running)
        return bx_err_set(err, BX_E_CONFLICT, ESRCH, "exec %s has already finished", e->id);
    if (e->nsigs >= BX_ARRAY_LEN(e->sigs))
        return bx_err_set(err, BX_E_TOO_MANY_REQUESTS, EAGAIN,
                          "too many signals waiting for delivery");
    box_touch(e->box);
    e->sigs[e->nsigs++] = sig;
    sig_kick(e);
    return 0;
}

int box_exec_cancel(struct box_exec *e, struct bx_err *err)
{
    if (!e->running || e->canceled)
        return bx_err_set(err, BX_E_CONFLICT, ESRCH, "exec %s has already finished", e->id);
    box_touch(e->box);
    /* KILL jumps the queue: what was waiting no longer matters */
    e->sigs[0] = SIGKILL;
    e->nsigs = 1;
    e->canceled = 1;
    e->stdin_open = 0;
    infeed_free(&e->in);
    snprintf(e->error, sizeof(e->error), "canceled");
    sig_kick(e);
    return 0;
}

/* The exec ended: its input goes, signals not yet delivered are moot (a
 * killer already running finishes on its own). */
static void exec_control_end(struct box_exec *e)
{
    infeed_free(&e->in);
    e->stdin_open = 0;
    e->nsigs = 0;
    if (e->sig_timer) {
        loop_timer_cancel(e->box->m->p.loop, e->sig_timer);
        e->sig_timer = 0;
    }
}

void exec_control_free(struct box_exec *e)
{
    char json[PATH_MAX + 96];
    exec_control_end(e);
    if (e->killer) {
        proc_free(&e->killer);
        kill_files(e, 1, json, sizeof(json));
    }
}
