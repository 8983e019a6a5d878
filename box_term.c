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
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s.json", e->box->dir, e->id);
    unlink(p);
    snprintf(p, sizeof(p), "%s/%s.log", e->box->dir, e->id);
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

/* The process JSON of runsc exec: w_process's, plus the terminal. */
static int write_process(struct box *b, struct box_exec *e, const struct box_term_req *req,
                         struct bx_err *err)
{
    char *home[] = {"HOME=/root", NULL};
    char termvar[BOX_TERM_STR_MAX + 8];
    char *tenv[] = {termvar, NULL};
    char *args[] = {"/.boxer/init", "--shell", (char *)req->shell, NULL};
    char **env1 = NULL, **env2 = NULL, **env3 = NULL;
    char pname[64];
    struct sbuf sb;
    struct json_writer w;
    int ret = -1;

    snprintf(termvar, sizeof(termvar), "TERM=%s", req->term);
    sbuf_init(&sb, 1 << 20);
    /* image Env < box env < TERM */
    if (oci_merge_env(home, b->img ? b->img->env : NULL, &env1, err) < 0 ||
        oci_merge_env(env1, b->env, &env2, err) < 0 || oci_merge_env(env2, tenv, &env3, err) < 0)
        goto out;
    json_w_init(&w, &sb);
    w_process(&w, args, env3, b->workdir, 0, 0);
    /* w_process closed the object: reopen it for the terminal fields (its
     * last byte is that '}'). */
    if (w.failed || sb.len == 0 || sb.data[sb.len - 1] != '}') {
        bx_err_set(err, BX_E_INTERNAL, E2BIG, "terminal process too large");
        goto out;
    }
    sb.len--;
    if (sbuf_appendf(&sb, ",\"terminal\":true,\"consoleSize\":{\"height\":%u,\"width\":%u}}",
                     req->rows, req->cols) < 0) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
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

int box_term_start(struct box *b, const struct box_term_req *req, box_exec_cb cb, void *arg,
                   struct box_exec **out, int *master, struct bx_err *err)
{
    struct box_exec *e;
    int mfd = -1, rfd = -1;
    char pname[64];

    if (b->status != BOX_RUNNING || b->removing)
        return bx_err_set(err, BX_E_CONFLICT, ENOTCONN, "box %s is not running", b->id);
    if (!req->shell || req->shell[0] != '/' || strlen(req->shell) > BOX_TERM_STR_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "shell must be an absolute path");
    e = calloc(1, sizeof(*e));
    if (!e)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    e->box = b;
    e->out_fd = e->err_fd = -1;
    sbuf_init(&e->out, 0);
    sbuf_init(&e->err, 0);
    if (random_id("exec_", e->id, sizeof(e->id), err) < 0)
        goto fail;
    if (write_process(b, e, req, err) < 0)
        goto fail;
    if (open_pty(&mfd, &rfd, err) < 0 || set_winsize(mfd, req->rows, req->cols, err) < 0)
        goto fail;
    snprintf(pname, sizeof(pname), "%s.json", e->id);
    {
        char ppath[PATH_MAX + 80], lname[64];
        const char *args[] = {"exec", "--process", ppath, b->cid, NULL};
        snprintf(ppath, sizeof(ppath), "%s/%s", b->dir, pname);
        snprintf(lname, sizeof(lname), "%s.log", e->id);
        if (box_spawn_runsc_io(b, args, lname, rfd, rfd, rfd, 1, term_on_exit, e, &e->proc,
                               err) < 0)
            goto fail;
    }
    bx_close(&rfd);
    e->running = 1;
    e->hidden = 1;
    e->exit_code = -1;
    e->created = time(NULL);
    e->started_ms = bx_now_ms();
    e->cb = cb;
    e->cb_arg = arg;
    e->next = b->execs;
    b->execs = e;
    box_touch(b);
    *out = e;
    *master = mfd;
    return 0;
fail:
    bx_close(&mfd);
    bx_close(&rfd);
    term_unlink(e);
    exec_free(e);
    return -1;
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
