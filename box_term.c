/* Terminals in a box; see box_term.h. */
#include "box_internal.h"
#include "box_term.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "oci.h"
#include "proc.h"
#include "util.h"

static void term_unlink(struct box_exec *e)
{
    char p[PATH_MAX + 80];
    snprintf(p, sizeof(p), "%s/%s.json", e->box->dir, e->id);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s.log", e->box->dir, e->id);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s.pid", e->box->dir, e->id);
    unlink(p);
}

static void term_on_exit(void *arg, int status)
{
    struct box_exec *e = arg;
    box_exec_cb cb = e->cb;
    void *cb_arg = e->cb_arg;
    proc_free(&e->proc);
    e->running = 0;
    e->finished = time(NULL);
    e->wall_ms = bx_now_ms() - e->started_ms;
    if (WIFEXITED(status))
        e->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        e->exit_code = 128 + WTERMSIG(status);
    e->failed = e->exit_code != 0;
    if (e->exit_code == 128)
        snprintf(e->error, sizeof(e->error), "runsc could not start the terminal");
    term_unlink(e);
    e->cb = NULL;
    e->cb_arg = NULL;
    box_touch(e->box);
    if (cb)
        cb(cb_arg, e);
}

static int set_winsize(int master, unsigned rows, unsigned cols, struct bx_err *err)
{
    struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
    if (rows == 0 || cols == 0 || rows > BOX_TERM_DIM_MAX || cols > BOX_TERM_DIM_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "rows and cols must be 1 to %d",
                          BOX_TERM_DIM_MAX);
    if (ioctl(master, TIOCSWINSZ, &ws) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "TIOCSWINSZ");
    return 0;
}

/* The process JSON of runsc exec: w_process's, plus the terminal.  env:
 * pre < image Env < box env < post. */
static int write_process(struct box *b, struct box_exec *e, char *const *args,
                         char *const *pre, char *const *post, const char *cwd, uint32_t uid,
                         uint32_t gid, unsigned rows, unsigned cols, struct bx_err *err)
{
    char **env1 = NULL, **env2 = NULL, **env3 = NULL;
    char pname[96];
    struct sbuf sb;
    struct json_writer w;
    int ret = -1;

    sbuf_init(&sb, 1 << 20);
    if (oci_merge_env(pre, b->img ? b->img->env : NULL, &env1, err) < 0 ||
        oci_merge_env(env1, b->env, &env2, err) < 0 || oci_merge_env(env2, post, &env3, err) < 0)
        goto out;
    json_w_init(&w, &sb);
    w_process(&w, b, args, env3, cwd, uid, gid, 1);
    /* w_process closed the object: reopen it for the console size (its
     * last byte is that '}'). */
    if (w.failed || sb.len == 0 || sb.data[sb.len - 1] != '}') {
        bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "exec too large");
        goto out;
    }
    sb.len--;
    if (sbuf_appendf(&sb, ",\"consoleSize\":{\"height\":%u,\"width\":%u}}",
                     rows, cols) < 0) {
        bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "exec too large");
        goto out;
    }
    snprintf(pname, sizeof(pname), "%s.json", e->id);
    ret = write_scratch_file(b, pname, &sb, err);
out:
    bx_strv_free(&env1);
    bx_strv_free(&env2);
    bx_strv_free(&env3);
    sbuf_free(&sb);
    return ret;
}

static int open_pty(int *master, int *replica, struct bx_err *err)
{
    int unlock = 0;
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*master < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "posix_openpt");
    if (ioctl(*master, TIOCSPTLCK, &unlock) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "unlockpt");
        bx_close(master);
        return -1;
    }
    /* The replica through the master (no path lookup in /dev/pts). */
    *replica = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*replica < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "TIOCGPTPEER");
        bx_close(master);
        return -1;
    }
    if (fcntl(*master, F_SETFL, O_NONBLOCK) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fcntl");
        bx_close(master);
        bx_close(replica);
        return -1;
    }
    return 0;
}

static struct box_exec *new_record(struct box *b, size_t out_max, struct bx_err *err)
{
    struct box_exec *e = calloc(1, sizeof(*e));
    if (!e) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    e->box = b;
    e->out_fd = e->err_fd = -1;
    exec_log_init(&e->log, out_max);
    /* no stdin: an empty feed, so exec_free's release is a no-op */
    infeed_init(&e->in, b->m->p.loop, 0);
    if (random_id("exec_", e->id, sizeof(e->id), err) < 0) {
        exec_free(e);
        return NULL;
    }
    return e;
}

/* Opens the pty and starts runsc exec on its replica (the process JSON is
 * written); *master on success. */
static int spawn_on_pty(struct box *b, struct box_exec *e, unsigned rows, unsigned cols,
                        proc_exit_cb on_exit, int *master, struct bx_err *err)
{
    int mfd = -1, rfd = -1;
    char ppath[PATH_MAX + 80], pidpath[PATH_MAX + 80], lname[96];
    /* the pid file lets :cancel and /signal reach the command's group
     * (box_exec.c's sig_kick), as for execs without a terminal */
    const char *args[] = {"exec", "--process", ppath, "--internal-pid-file", pidpath, b->cid, NULL};

    if (open_pty(&mfd, &rfd, err) < 0 || set_winsize(mfd, rows, cols, err) < 0)
        goto fail;
    snprintf(ppath, sizeof(ppath), "%s/%s.json", b->dir, e->id);
    snprintf(pidpath, sizeof(pidpath), "%s/%s.pid", b->dir, e->id);
    snprintf(lname, sizeof(lname), "%s.log", e->id);
    if (box_spawn_runsc_io(b, args, lname, rfd, rfd, rfd, 1, on_exit, e, &e->proc, err) < 0)
        goto fail;
    bx_close(&rfd);
    *master = mfd;
    return 0;
fail:
    bx_close(&mfd);
    bx_close(&rfd);
    return -1;
}

static void link_record(struct box *b, struct box_exec *e, box_exec_cb cb, void *arg)
{
    e->running = 1;
    e->exit_code = -1;
    e->created = time(NULL);
    e->started_ms = bx_now_ms();
    e->cb = cb;
    e->cb_arg = arg;
    e->next = b->execs;
    b->execs = e;
    box_trim_execs(b);
    box_touch(b);
}

int box_term_start(struct box *b, const struct box_term_req *req, box_exec_cb cb, void *arg,
                   struct box_exec **out, int *master, struct bx_err *err)
{
    struct box_exec *e;
    char termvar[BOX_TERM_STR_MAX + 8];
    char *home[] = {"HOME=/root", NULL};
    char *args[] = {"/.boxer/init", "--shell", (char *)req->shell, NULL};
    char **run = NULL, **post = NULL;
    size_t n = 0, nenv = 0;
    int ret = -1;

    if (b->status != BOX_RUNNING || b->removing)
        return bx_err_set(err, BX_E_CONFLICT, ENOTCONN, "box %s is not running", b->id);
    if (!req->cmd && (!req->shell || req->shell[0] != '/' || strlen(req->shell) > BOX_TERM_STR_MAX))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "shell must be an absolute path");
    if (req->cmd && (!req->cmd[0] || !req->cmd[0][0]))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must be a non-empty list");
    while (req->cmd && req->cmd[n])
        n++;
    while (req->env && req->env[nenv])
        nenv++;
    /* The command through the helper, in the same process (execvp): it
     * stays the terminal's foreground process and a missing program is
     * 127 with a message, not runsc's 128. */
    run = calloc(n + 4, sizeof(*run));
    post = calloc(nenv + 2, sizeof(*post));
    if (!run || !post) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    run[0] = "/.boxer/init";
    run[1] = "--run";
    run[2] = "--";
    for (size_t i = 0; i < n; i++)
        run[3 + i] = req->cmd[i];
    snprintf(termvar, sizeof(termvar), "TERM=%s", req->term);
    post[0] = termvar; /* the caller's env may override TERM */
    for (size_t i = 0; i < nenv; i++)
        post[1 + i] = req->env[i];
    e = new_record(b, 0, err);
    if (!e)
        goto out;
    if (write_process(b, e, req->cmd ? run : args, home, post,
                      req->workdir ? req->workdir : b->workdir, req->set_user ? req->uid : b->uid,
                      req->set_user ? req->gid : b->gid, req->rows, req->cols, err) < 0 ||
        spawn_on_pty(b, e, req->rows, req->cols, term_on_exit, master, err) < 0) {
        term_unlink(e);
        exec_free(e);
        goto out;
    }
    e->hidden = 1;
    e->tty = 1;
    link_record(b, e, cb, arg);
    *out = e;
    ret = 0;
out:
    free(run);
    free(post);
    return ret;
}

/* ---- execs with "tty" ---- */

static void tty_drain(struct box_exec *e)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(e->out_fd, buf, sizeof(buf));
        if (n > 0) {
            /* the log keeps the tail, as for piped execs; event streams
             * (GET .../events) see the terminal bytes as stdout */
            exec_log_append(&e->log, EXEC_STDOUT, buf, (size_t)n);
            exec_notify(e);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        /* EIO: no replica is open any more (the process and runsc ended) */
        loop_del(e->box->m->p.loop, e->out_fd);
        bx_close(&e->out_fd);
        return;
    }
}

static void tty_on_master(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    tty_drain(arg);
}

static void tty_on_exit(void *arg, int status)
{
    struct box_exec *e = arg;
    box_exec_cb cb = e->cb;
    void *cb_arg = e->cb_arg;
    proc_free(&e->proc);
    /* What the command wrote last is still in the pty; a background child
     * may hold the replica, so the exec ends now, not at EIO. */
    if (e->out_fd >= 0) {
        tty_drain(e);
        if (e->out_fd >= 0) {
            loop_del(e->box->m->p.loop, e->out_fd);
            bx_close(&e->out_fd);
        }
    }
    if (e->safety_timer) {
        loop_timer_cancel(e->box->m->p.loop, e->safety_timer);
        e->safety_timer = 0;
    }
    e->running = 0;
    e->finished = time(NULL);
    e->wall_ms = bx_now_ms() - e->started_ms;
    if (WIFEXITED(status))
        e->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        e->exit_code = 128 + WTERMSIG(status);
    if (e->exit_code == 128) {
        /* runsc could not start the command; its message went to the
         * terminal, which is the exec's output */
        snprintf(e->error, sizeof(e->error), "runsc could not start the command");
        struct sbuf text;
        sbuf_init(&text, (size_t)e->log.max + 1);
        if (exec_log_text(&e->log, EXEC_STDOUT, &text) == 0 && text.len &&
            memmem(text.data, text.len, "failed to load", 14))
            e->exit_code = 127;
        else
            e->exit_code = 126;
        sbuf_free(&text);
    }
    box_exec_settle(e);
    term_unlink(e);
    exec_notify(e);
    e->cb = NULL;
    e->cb_arg = NULL;
    if (cb)
        cb(cb_arg, e);
}

int box_term_exec(struct box *b, struct box_exec_req *req, box_exec_cb cb, void *arg,
                  struct box_exec **out, struct bx_err *err)
{
    struct box_exec *e;
    char *pre[] = {"HOME=/root", "TERM=xterm", NULL};
    char ms[EXEC_MS_MAX];
    char **wrapped = NULL;
    int master = -1;

    if (b->status != BOX_RUNNING || b->removing)
        return bx_err_set(err, BX_E_CONFLICT, ENOTCONN, "box %s is not running", b->id);
    if (!req->cmd || !req->cmd[0])
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must be a non-empty list");
    e = new_record(b, b->m->p.cfg->exec_output_bytes, err);
    if (!e)
        return -1;
    if (box_exec_wrap_timeout(req, ms, &wrapped, err) < 0)
        goto fail;
    if (write_process(b, e, wrapped ? wrapped : req->cmd, pre, req->env,
                      req->workdir && req->workdir[0] ? req->workdir : b->workdir,
                      req->set_user ? req->uid : b->uid, req->set_user ? req->gid : b->gid, req->tty_rows,
                      req->tty_cols, err) < 0 ||
        spawn_on_pty(b, e, req->tty_rows, req->tty_cols, tty_on_exit, &master, err) < 0)
        goto fail;
    e->out_fd = master;
    if (loop_add(b->m->p.loop, e->out_fd, EPOLLIN, tty_on_master, e, err) < 0)
        goto fail; /* exec_free kills the child and closes the master */
    free(wrapped);
    e->cmd = bx_steal_ptr(&req->cmd);
    e->env = bx_steal_ptr(&req->env);
    e->workdir = bx_steal_ptr(&req->workdir);
    e->timeout_ms = req->timeout_ms;
    e->base64 = req->base64; /* "encoding": "base64" holds for a tty exec too */
    e->tty = 1;
    if (e->timeout_ms)
        e->safety_timer =
            loop_timer_add(b->m->p.loop, e->timeout_ms + BOX_EXEC_SAFETY_MS, exec_safety, e);
    link_record(b, e, cb, arg);
    /* an exec of the API like box_exec_start's: counted when it starts as
     * it is when it ends (box_exec_settle); attach sessions are neither */
    b->m->execs_started++;
    *out = e;
    return 0;
fail:
    free(wrapped);
    term_unlink(e);
    exec_free(e);
    return -1;
}

int box_term_exec_resize(struct box_exec *e, unsigned rows, unsigned cols, struct bx_err *err)
{
    if (!e->tty)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "exec %s has no terminal (tty)", e->id);
    if (!e->running || e->out_fd < 0)
        return bx_err_set(err, BX_E_CONFLICT, EALREADY, "exec %s has finished", e->id);
    return box_term_resize(e, e->out_fd, rows, cols, err);
}

int box_term_resize(struct box_exec *e, int master, unsigned rows, unsigned cols,
                    struct bx_err *err)
{
    if (!e->running || !e->proc)
        return bx_err_set(err, BX_E_CONFLICT, 0, "the terminal has ended");
    if (set_winsize(master, rows, cols, err) < 0)
        return -1;
    /* runsc exec forwards the signal to the process in the box, whose
     * terminal (the replica) now has the new size. */
    kill(proc_pid(e->proc), SIGWINCH);
    box_touch(e->box);
    return 0;
}

void box_term_end(struct box_exec *e)
{
    box_exec_forget(e);
    if (e->proc)
        proc_kill(e->proc, SIGKILL);
}

struct loop *box_term_loop(struct box_mgr *m)
{
    return m->p.loop;
}

void box_term_touch(struct box_exec *e)
{
    box_touch(e->box);
}
