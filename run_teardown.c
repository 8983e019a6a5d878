/* The job's end: run_job_teardown (timers, pipes, usage), the /output capture
 * child and return_outputs, then, after the answer, the removal of the
 * sandbox's leftovers (warm sandbox, netns, cgroup, run dir). */
#define _GNU_SOURCE
#include "run_internal.h"
#include "run_outputs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "image.h"
#include "log.h"
#include "net.h"
#include "oci.h"
#include "proc.h"
#include "infeed.h"
#include "pool.h"

static void cleanup_work(struct run_job *job, int may_fork);

/* A cgroup that is not empty yet (processes still dying) is retried from a
 * timer; the run itself does not wait for it. */
struct cg_reaper {
    struct cg_run *cg;
    int tries;
    char name[64];
};

static void reap_cgroup(struct loop *l, void *arg)
{
    struct cg_reaper *r = arg;
    struct bx_err err;
    bx_err_clear(&err);
    if (cg_run_destroy(&r->cg, &err) < 0 && r->cg) {
        if (++r->tries < 50 && loop_timer_add(l, 100, reap_cgroup, r))
            return;
        bx_log_error("%s: cgroup not empty after retries; left for the next start",
                r->name);
        cg_run_abandon(&r->cg);
    } else if (err.msg[0]) {
        bx_log_error("%s: cgroup cleanup: %s", r->name, err.msg);
    }
    free(r);
}

static void destroy_cgroup(struct run_mgr *m, struct cg_run **cg, const char *name)
{
    struct bx_err err;
    struct cg_reaper *r;
    bx_err_clear(&err);
    if (cg_run_destroy(cg, &err) == 0)
        return;
    if (!*cg) {
        bx_log_error("%s: cgroup cleanup: %s", name, err.msg);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r || !loop_timer_add(m->p.loop, 100, reap_cgroup, r)) {
        free(r);
        cg_run_abandon(cg);
        return;
    }
    r->cg = bx_steal_ptr(cg);
    snprintf(r->name, sizeof(r->name), "%s", name);
}

static int start_capture(struct run_job *job);

void run_job_teardown(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    struct bx_err err;
    bx_err_clear(&err);
    loop_defer_cancel(m->p.loop, &job->start_task);
    if (job->iwait)
        image_wait_cancel(&job->iwait);
    if (job->wall_timer) {
        loop_timer_cancel(m->p.loop, job->wall_timer);
        job->wall_timer = 0;
    }
    if (job->drain_timer) {
        loop_timer_cancel(m->p.loop, job->drain_timer);
        job->drain_timer = 0;
    }
    if (job->unpin_timer) {
        loop_timer_cancel(m->p.loop, job->unpin_timer);
        job->unpin_timer = 0;
    }
    run_close_pipe(job, &job->out_fd);
    run_close_pipe(job, &job->err_fd);
    infeed_free(&job->in);
    if (job->proc) {
        proc_free(&job->proc); /* kills and reaps in the background if still alive */
    }
    /* The netns (bind-mounted in the run dir) and the cgroup go after the
     * answer (run_cleanup_start); the usage is read now, for the answer. */
    if (job->cg) {
        struct cg_usage u;
        if (cg_run_usage(job->cg, &u, NULL) == 0) {
            job->res->have_usage = 1;
            job->res->cpu_ms = u.cpu_usec / 1000;
            job->res->memory_peak_bytes = u.memory_peak_bytes;
            job->res->oom_killed = u.oom_killed;
            /* The kernel's OOM killer usually takes the sandbox (sentry)
             * itself, and runsc then reports a failure of its own (exit
             * 128 "sandbox failed to start", or killed): the memory limit
             * ended the command, which answers 200 with exit code 137. */
            if (u.oom_killed && job->exited && job->res->outcome == RUN_ERROR) {
                job->res->outcome = RUN_OK;
                job->res->exit_code = 137;
                bx_err_clear(&job->res->error);
            }
        }
    }
    /* Capturing /output creates a file in the store per output file (up to
     * output_files_max): seconds of blocking I/O that must not stall the
     * loop, so a child does it and on_capture_exit finishes the teardown
     * (when /output has anything in it: see start_capture). */
    if (job->b.output_mounted && !job->cancelled && job->res->outcome != RUN_ERROR &&
        start_capture(job) == 0)
        return;
}

/* Empties the run's /output tmpfs (best effort).  Freeing a tmpfs that
 * still holds output_files_max files takes umount2 100 ms and more, on the
 * loop; emptied here, in the capture child, the unmount is cheap. */
static void empty_dir(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    if (!d) {
        bx_close(&fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        bx_rm_rf_at(dirfd, de->d_name, NULL);
    }
    closedir(d);
}

/* Runs in the capture child (proc_fork): plain blocking code.  Everything
 * the parent needs comes back in job->capture_rep (shared memory). */
static int capture_child(void *arg)
{
    struct run_job *job = arg;
    struct run_mgr *m = job->mgr;
    struct store_report *rep = job->capture_rep;
    int ret = 0;
    bx_err_clear(&rep->err);
    store_report_begin(m->p.store, rep);
    if (store_capture(m->p.store, job->res->exec_id, job->capture_fd, m->p.cfg->output_files_max,
                      m->p.cfg->output_files_limit_bytes, rep, &rep->err) < 0) {
        if (rep->err.status == 0)
            rep->err.status = BX_E_INTERNAL;
        ret = 1;
    }
    store_report_end(m->p.store, rep);
    empty_dir(job->capture_fd);
    return ret;
}

/* What the capture reported goes into the answer, never only into the
 * log: skipped entries as output_errors, a failure as the run's error. */
static void capture_result(struct run_job *job, int status, int in_child)
{
    struct run_result *res = job->res;
    struct store_report *rep = job->capture_rep;
    size_t n = 0;

    if (in_child)
        store_report_apply(job->mgr->p.store, rep);
    if (!rep->finished || rep->err.status != 0) {
        struct bx_err e;
        if (rep->finished)
            bx_err_set(&e, rep->err.status == BX_E_INSUFFICIENT_STORAGE ? BX_E_INSUFFICIENT_STORAGE : BX_E_INTERNAL, rep->err.sys_errno,
                       "capturing /output: %s", rep->err.msg);
        else
            bx_err_set(&e, BX_E_INTERNAL, 0, "capturing /output: the capture process died (status %d)",
                       status);
        bx_log_error("%s: %s", res->exec_id, e.msg);
        res->outcome = RUN_ERROR;
        res->error = e;
        /* Half an output tree is not an answer: it goes, persist or not. */
        res->drop_outputs = 1;
        return;
    }
    if (rep->nmsgs == 0)
        return;
    res->output_errors = calloc(rep->nmsgs + 2, sizeof(char *));
    if (!res->output_errors)
        return;
    for (uint32_t i = 0; i < rep->nmsgs && i < STORE_REPORT_MSGS; i++) {
        rep->msgs[i][STORE_REPORT_MSG_MAX - 1] = '\0';
        if ((res->output_errors[n] = strdup(rep->msgs[i])) != NULL)
            n++;
    }
    if (rep->msgs_dropped > 0 &&
        asprintf(&res->output_errors[n], "and %u more entries not captured", rep->msgs_dropped) >=
            0)
        n++;
    res->output_errors[n] = NULL;
}

/* return_outputs (issue 17): the captured files into the answer, up to
 * max_inline_output_bytes; past it they stay in the store (even without
 * persist) and the answer names them. */
static void collect_outputs(struct run_job *job)
{
    struct run_result *res = job->res;
    struct bx_err err;
    int dfd;
    if (!job->req->return_outputs || res->outcome == RUN_ERROR || res->drop_outputs)
        return;
    bx_err_clear(&err);
    dfd = store_open_output_dir(job->mgr->p.store, res->exec_id);
    if (dfd == -2) {
        /* nothing was written to /output */
        if (run_outputs_collect(-1, res->exec_id, 0, &res->outputs, &err) < 0)
            bx_log_error("%s: return_outputs: %s", res->exec_id, err.msg);
        return;
    }
    if (dfd < 0 || run_outputs_collect(dfd, res->exec_id, job->mgr->p.cfg->max_inline_output_bytes,
                                       &res->outputs, &err) < 0) {
        bx_log_error("%s: return_outputs: %s", res->exec_id, dfd < 0 ? strerror(errno) : err.msg);
        res->keep_outputs = 1; /* the client gets them through /files */
    } else if (res->outputs->nleft) {
        res->keep_outputs = 1;
    }
    if (dfd >= 0)
        close(dfd);
}

static void on_capture_exit(void *arg, int status)
{
    struct run_job *job = arg;
    proc_free(&job->capture);
    capture_result(job, status, 1);
    collect_outputs(job);
    store_report_free(&job->capture_rep);
    /* A client that left while its outputs were being copied is handled
     * by run_job_complete: nobody can know this exec id any more. */
    run_job_complete(job);
}

/* 0: the capture child runs; -1: capture done (or failed, or nothing to
 * capture) synchronously. */
static int start_capture(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    struct bx_err err;
    int keep[3];
    int n, r;
    bx_err_clear(&err);
    /* Most runs leave /output empty: a look here (an open and a getdents64
     * or two, stopping at the first entry, however many there are) spares
     * them the child, whose fork and exit the answer would wait for (about
     * 1 ms).  Nothing to capture gives what a capture of nothing gives: no
     * output/<exec_id> (so captured stays 0: nothing to discard), no
     * output_errors, and for return_outputs an empty object.  An error
     * here leaves the decision to the capture's own open below. */
    if (store_capture_has_entries(job->b.dirfd, "output") == 0) {
        collect_outputs(job);
        return -1;
    }
    job->capture_fd =
        openat(job->b.dirfd, "output", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    job->capture_rep = store_report_new();
    if (job->capture_fd < 0 || !job->capture_rep) {
        bx_err_set(&job->res->error, BX_E_INTERNAL, errno, "capturing /output: %s",
                   job->capture_fd < 0 ? "cannot open it" : "out of memory");
        job->res->outcome = RUN_ERROR;
        bx_close(&job->capture_fd);
        store_report_free(&job->capture_rep);
        return -1;
    }
    job->res->captured = 1;
    n = store_fds(m->p.store, keep, 2);
    keep[n++] = job->capture_fd;
    r = proc_fork(m->p.loop, keep, n, capture_child, job, on_capture_exit, job, &job->capture,
                  &err);
    if (r < 0) {
        bx_log_warn("%s: %s; capturing /output in the loop", job->res->exec_id,
                err.msg);
        capture_child(job);
        capture_result(job, 0, 0);
        collect_outputs(job);
        store_report_free(&job->capture_rep);
    }
    bx_close(&job->capture_fd);
    return r;
}

/* `runsc <global flags> <what> ... <id>` for a warm run's sandbox: kill
 * (every process, SIGKILL) or delete --force. */
static int warm_argv(struct run_job *job, const char *what, char bufs[4][PATH_MAX + 16],
                     char **argv)
{
    struct run_mgr *m = job->mgr;
    size_t a = 0;
    snprintf(bufs[0], sizeof(bufs[0]), "--root=%s/state", job->b.dir);
    snprintf(bufs[1], sizeof(bufs[1]), "--log=%s/runsc.log", job->b.dir);
    snprintf(bufs[2], sizeof(bufs[2]), "--platform=%s", m->p.platform);
    argv[a++] = (char *)m->p.runsc;
    for (int i = 0; i < 3; i++)
        argv[a++] = bufs[i];
    for (size_t i = 0; m->p.runsc_extra_flags[i] && a < 20; i++)
        argv[a++] = (char *)m->p.runsc_extra_flags[i];
    argv[a++] = (char *)what;
    if (strcmp(what, "kill") == 0) {
        argv[a++] = "--all";
        argv[a++] = job->name;
        argv[a++] = "KILL";
    } else {
        argv[a++] = "--force";
        argv[a++] = job->name;
    }
    argv[a] = NULL;
    return (int)a;
}

int run_warm_runsc(struct run_job *job, const char *what, proc_exit_cb cb, struct proc **out,
                   struct bx_err *err)
{
    char bufs[4][PATH_MAX + 16];
    char *argv[32];
    char *envp[] = {"PATH=" BX_DEFAULT_PATH, NULL};
    struct proc_spec spec = {.path = job->mgr->p.runsc, .argv = argv, .envp = envp,
                             .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    warm_argv(job, what, bufs, argv);
    return proc_spawn(job->mgr->p.loop, &spec, cb, job, out, err);
}

static void warm_delete_sync(struct run_job *job)
{
    char bufs[4][PATH_MAX + 16];
    char *argv[32];
    char *envp[] = {"PATH=" BX_DEFAULT_PATH, NULL};
    struct proc_spec spec = {.path = job->mgr->p.runsc, .argv = argv, .envp = envp,
                             .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    struct bx_err err;
    bx_err_clear(&err);
    warm_argv(job, "delete", bufs, argv);
    if (proc_run_sync(&spec, 15000, &err) < 0)
        bx_log_warn("%s: runsc delete: %s", job->name, err.msg);
}

/* ---- after the answer ---- */

/* Issue 16: the answer does not wait for the sandbox's leftovers to go.
 * run_job_complete hands the result over and moves the job to m->teardowns;
 * a timer (1 ms, so the answer, which http writes on the next turn, goes
 * first) removes the netns and the cgroup in the loop (a few syscalls)
 * and forks a child for the unmounts and the run dir's removal.  At most
 * max_pending_teardowns jobs are in there: admission (fits) waits for a
 * slot, so a burst cannot pile up teardown work.  A crash in between
 * leaves what a crash during a run leaves, and the start-up sweep
 * (run_recover, cg_cleanup_stale, the netns sweep) removes it. */
static void cleanup_done(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    if (job->img) {
        /* after the rootfs overlay is gone: the image may be evicted now */
        image_release(m->p.images, job->img);
        job->img = NULL;
    }
    run_list_remove(&m->teardowns, job);
    m->nteardowns--;
    run_job_free(job);
    run_start_next(m);
    pool_kick(m->pool); /* budget and a teardown slot came free */
}

static int cleanup_child(void *arg)
{
    struct run_job *job = arg;
    oci_bundle_remove(&job->b, job->mgr->runs_dirfd, job->name);
    return 0;
}

static void on_cleanup_exit(void *arg, int status)
{
    struct run_job *job = arg;
    proc_free(&job->cleanup);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bx_log_warn("%s: removing the run dir: the child ended with status %d", job->name,
                    status);
    /* The child unmounted and removed on its copy; only the fd is ours. */
    job->b.output_mounted = job->b.rootfs_mounted = job->b.ovl_mounted = 0;
    bx_close(&job->b.dirfd);
    cleanup_done(job);
}

/* The loop-side part, then the child (or everything here, blocking, when
 * no child can be had or Boxer stops). */
static void on_warm_deleted(void *arg, int status)
{
    struct run_job *job = arg;
    proc_free(&job->cleanup);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bx_log_warn("%s: runsc delete failed (status %d)", job->name, status);
    job->warm_deleted = 1;
    cleanup_work(job, 1);
}

static void cleanup_work(struct run_job *job, int may_fork)
{
    struct run_mgr *m = job->mgr;
    struct bx_err err;
    int keep[2];
    int n = 0;
    bx_err_clear(&err);
    proc_free(&job->killer);
    /* A warm sandbox is still there (its placeholder init): gone first,
     * before its netns, cgroup and rootfs (1-2 s, hence here). */
    if (job->warm && !job->warm_deleted) {
        if (may_fork && run_warm_runsc(job, "delete", on_warm_deleted, &job->cleanup, &err) == 0)
            return;
        if (may_fork)
            bx_log_warn("%s: %s; deleting the sandbox in the loop", job->name, err.msg);
        job->warm_deleted = 1;
        warm_delete_sync(job);
    }
    /* Before the run dir goes: the netns is bind-mounted in it. */
    net_run_free(&job->net);
    if (job->cg)
        destroy_cgroup(m, &job->cg, job->name);
    if (job->b.dirfd < 0 && !job->b.output_mounted && !job->b.rootfs_mounted &&
        !job->b.ovl_mounted) {
        cleanup_done(job);
        return;
    }
    keep[n++] = m->runs_dirfd;
    if (job->b.dirfd >= 0)
        keep[n++] = job->b.dirfd;
    if (may_fork && proc_fork(m->p.loop, keep, n, cleanup_child, job, on_cleanup_exit, job,
                              &job->cleanup, &err) == 0)
        return;
    if (may_fork)
        bx_log_warn("%s: %s; removing the run dir in the loop", job->name, err.msg);
    oci_bundle_remove(&job->b, m->runs_dirfd, job->name);
    cleanup_done(job);
}

static void on_cleanup_timer(struct loop *l, void *arg)
{
    struct run_job *job = arg;
    (void)l;
    job->cleanup_timer = 0;
    cleanup_work(job, 1);
}

void run_cleanup_start(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    run_list_push(&m->teardowns, job);
    m->nteardowns++;
    if (!m->stopping) {
        job->cleanup_timer = loop_timer_add(m->p.loop, 1, on_cleanup_timer, job);
        if (job->cleanup_timer)
            return;
    }
    cleanup_work(job, 0);
}

/* Shutdown: whatever is pending is finished here, blocking. */
void run_cleanup_now(struct run_job *job)
{
    if (job->cleanup_timer) {
        loop_timer_cancel(job->mgr->p.loop, job->cleanup_timer);
        job->cleanup_timer = 0;
    }
    if (job->cleanup && (!job->warm || job->warm_deleted)) {
        proc_free(&job->cleanup); /* killed: redone here */
        oci_bundle_remove(&job->b, job->mgr->runs_dirfd, job->name);
        cleanup_done(job);
        return;
    }
    proc_free(&job->cleanup); /* a runsc delete: redone, blocking */
    cleanup_work(job, 0);
}
