/* Commands run in a box (runsc exec): see box.h. */
#include "box_internal.h"

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
#include "oci.h"
#include "proc.h"
#include "util.h"

/* ---- exec ---- */

static void exec_drain(struct box_exec *e, int *fd, struct sbuf *sb)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(*fd, buf, sizeof(buf));
        if (n > 0) {
            size_t room = sb->max > sb->len ? sb->max - sb->len : 0;
            sbuf_append(sb, buf, (size_t)n < room ? (size_t)n : room);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        /* EOF or error */
        loop_del(e->box->m->p.loop, *fd);
        bx_close(fd);
        return;
    }
}

static void exec_on_pipe(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct box_exec *e = arg;
    (void)l;
    (void)events;
    if (fd == e->out_fd)
        exec_drain(e, &e->out_fd, &e->out);
    else if (fd == e->err_fd)
        exec_drain(e, &e->err_fd, &e->err);
}

static void exec_unlink_files(struct box_exec *e)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s.json", e->box->dir, e->id);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s.log", e->box->dir, e->id);
    unlink(p);
}

/* runsc exits 128 both for a command killed by signal 0 (impossible) and
 * when it could not start the command at all (missing program, bad
 * workdir): its log then holds an "error" entry.  Such a failure is not
 * the command's status: error_message says what happened, exit code 127
 * for a missing program (as a shell says), 126 otherwise.  runsc's message
 * went to the same stderr pipe (the process never ran), so stderr is
 * cleared. */
static void exec_runsc_failure(struct box_exec *e)
{
    char p[PATH_MAX + 64];
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
            sbuf_reset(&e->err);
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
        exec_drain(e, &e->out_fd, &e->out);
        if (e->out_fd >= 0) {
            loop_del(e->box->m->p.loop, e->out_fd);
            bx_close(&e->out_fd);
        }
    }
    if (e->err_fd >= 0) {
        exec_drain(e, &e->err_fd, &e->err);
        if (e->err_fd >= 0) {
            loop_del(e->box->m->p.loop, e->err_fd);
            bx_close(&e->err_fd);
        }
    }
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
    box_store_save_exec(e);
    cb = e->cb;
    cb_arg = e->cb_arg;
    e->cb = NULL;
    e->cb_arg = NULL;
    if (cb)
        cb(cb_arg, e);
}

/* The helper did not end the exec in time (the box is overloaded, or the
 * helper itself is stuck): end the client; the box keeps whatever is left. */
static void exec_safety(struct loop *l, void *arg)
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

static void trim_execs(struct box *b)
{
    unsigned n = 0;
    for (struct box_exec **pp = &b->execs; *pp;) {
        struct box_exec *e = *pp;
        /* a file transfer's record goes once its waiter was answered */
        if ((e->hidden || ++n > box_execs_kept(b->m)) && !e->running && !e->cb) {
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
static int exec_io(struct box *b, struct box_exec_req *req, int in_fd, int out_fd, int hidden,
                   box_exec_cb cb, void *arg, struct box_exec **out, struct bx_err *err)
{
    struct box_exec *e;
    char **env1 = NULL, **env2 = NULL, **env3 = NULL;
    char *home[] = {"HOME=/root", NULL};
    char **wrapped = NULL;
    char ms[24];
    char pname[64];
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
    sbuf_init(&e->out, box_exec_output_max(b->m));
    sbuf_init(&e->err, box_exec_output_max(b->m));
    sbuf_init(&sb, 1 << 20);
    if (random_id("exec_", e->id, sizeof(e->id), err) < 0)
        goto fail;
    /* image Env < box env < exec env; HOME is root's unless someone says. */
    if (oci_merge_env(home, b->img ? b->img->env : NULL, &env1, err) < 0 ||
        oci_merge_env(env1, b->env, &env2, err) < 0 || oci_merge_env(env2, req->env, &env3, err) < 0)
        goto fail;
    if (req->timeout_ms) {
        /* The in-box helper owns the timeout: it can kill the command's
         * whole process group, which nothing on the host can. */
        size_t n = 0;
        while (req->cmd[n])
            n++;
        wrapped = calloc(n + 5, sizeof(*wrapped));
        if (!wrapped) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto fail;
        }
        snprintf(ms, sizeof(ms), "%llu", (unsigned long long)req->timeout_ms);
        wrapped[0] = "/.boxer/init";
        wrapped[1] = "--exec";
        wrapped[2] = ms;
        wrapped[3] = "--";
        for (size_t i = 0; i < n; i++)
            wrapped[4 + i] = req->cmd[i];
    }
    json_w_init(&w, &sb);
    w_process(&w, wrapped ? wrapped : req->cmd, env3, req->workdir && req->workdir[0] ? req->workdir : b->workdir,
              req->set_user ? req->uid : 0, req->set_user ? req->gid : 0);
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
        char ppath[PATH_MAX + 80], lname[64];
        snprintf(ppath, sizeof(ppath), "%s/%s", b->dir, pname);
        snprintf(lname, sizeof(lname), "%s.log", e->id);
        const char *args[] = {"exec", "--process", ppath, b->cid, NULL};
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
    trim_execs(b);
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
    return exec_io(b, req, -1, -1, 0, cb, arg, out, err);
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
    if (e->error[0])
        snprintf(why, cap, "%s", e->error);
    else
        snprintf(why, cap, "%.*s", (int)(e->err.len < cap ? e->err.len : cap - 1),
                 e->err.data ? e->err.data : "");
    /* one line: the helper's message ends with a newline */
    why[strcspn(why, "\n")] = 0;
    return e->exit_code;
}

uint64_t box_upload_limit(const struct box_mgr *m)
{
    return m->p.cfg->upload_limit_bytes;
}

uint64_t box_min_free_disk_percent(const struct box_mgr *m)
{
    return m->p.cfg->min_free_disk_percent;
}
