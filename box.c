/* Persistent boxes: see box.h. */
#include "box_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdarg.h>
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
#include "run.h"
#include "runsc_ns.h"
#include "util.h"

static void bg_free(struct bgproc *g)
{
    struct bx_err err;
    proc_free(&g->p);
    if (g->rm_dir && bx_rm_rf_at(AT_FDCWD, g->rm_dir, &err) < 0)
        bx_log_error("%s", err.msg);
    free(g->rm_dir);
    free(g);
}

const char *box_status_name(enum box_status s)
{
    switch (s) {
    case BOX_CREATING:
        return "creating";
    case BOX_RUNNING:
    case BOX_STOPPING:
        return "running";
    case BOX_STOPPED:
        return "stopped";
    default:
        return "error";
    }
}

void box_volumes_free(struct box_volume **v, size_t n)
{
    for (size_t i = 0; *v && i < n; i++) {
        free((*v)[i].host_path);
        free((*v)[i].guest_path);
    }
    free(*v);
    *v = NULL;
}

void box_create_req_free(struct box_create_req *r)
{
    box_volumes_free(&r->volumes, r->nvolumes);
    free(r->image);
    free(r->name);
    bx_strv_free(&r->env);
    free(r->workdir);
    memset(r, 0, sizeof(*r));
}

void box_exec_req_free(struct box_exec_req *r)
{
    bx_strv_free(&r->cmd);
    bx_strv_free(&r->env);
    free(r->workdir);
    free(r->stdin_data);
    memset(r, 0, sizeof(*r));
}

int random_id(const char *prefix, char *out, size_t cap, struct bx_err *err)
{
    char u[37], s[24];
    size_t n = 0;
    if (bx_uuid4(u, err) < 0)
        return -1;
    for (size_t i = 0; u[i] && n < 16; i++)
        if (u[i] != '-')
            s[n++] = u[i];
    s[n] = 0;
    snprintf(out, cap, "%s%s", prefix, s);
    return 0;
}

/* ---- callbacks to the waiting caller ---- */

static void finish_op(struct box *b, const struct bx_err *err)
{
    box_done_cb cb = b->cb;
    void *arg = b->cb_arg;
    b->cb = NULL;
    b->cb_arg = NULL;
    if (cb)
        cb(arg, err ? NULL : b, err);
}

void box_forget_waiter(struct box *b, void *arg)
{
    if (b && b->cb_arg == arg) {
        b->cb = NULL;
        b->cb_arg = NULL;
    }
}

/* ---- background children (runsc delete) ---- */

static void bg_on_exit(void *arg, int status)
{
    struct bgproc *g = arg, **pp;
    (void)status;
    for (pp = &g->m->bg; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    bg_free(g);
}

/* log_name: runsc's --log file in the box directory; NULL: runsc-<cmd>.log */
int box_spawn_runsc(struct box *b, const char *const *args, const char *log_name, int out_fd,
                       int err_fd, int join_cg, proc_exit_cb cb, void *arg, struct proc **pp,
                       struct bx_err *err)
{
    return box_spawn_runsc_io(b, args, log_name, -1, out_fd, err_fd, join_cg, cb, arg, pp, err);
}

int box_spawn_runsc_io(struct box *b, const char *const *args, const char *log_name, int in_fd,
                       int out_fd, int err_fd, int join_cg, proc_exit_cb cb, void *arg,
                       struct proc **pp, struct bx_err *err)
{
    struct box_mgr *m = b->m;
    char root_arg[PATH_MAX + 16], log_arg[PATH_MAX + 64], platform_arg[64];
    char *argv[32];
    char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    int join_fds[CG_MAX_PROCS_FDS];
    int njoin = 0, ret;
    size_t a = 0;
    struct proc_spec spec;

    snprintf(root_arg, sizeof(root_arg), "--root=%s/state", b->dir);
    if (log_name)
        snprintf(log_arg, sizeof(log_arg), "--log=%s/%.40s", b->dir, log_name);
    else
        snprintf(log_arg, sizeof(log_arg), "--log=%s/runsc-%s.log", b->dir, args[0]);
    snprintf(platform_arg, sizeof(platform_arg), "--platform=%s", m->p.platform);
    argv[a++] = (char *)m->p.runsc;
    argv[a++] = root_arg;
    argv[a++] = log_arg;
    argv[a++] = platform_arg;
    argv[a++] = b->net ? "--network=sandbox" : "--network=none";
    argv[a++] = "--overlay2=none";
    if (m->p.cfg->runsc_debug)
        argv[a++] = "--debug";
    for (size_t i = 0; args[i] && a < BX_ARRAY_LEN(argv) - 1; i++)
        argv[a++] = (char *)args[i];
    argv[a] = NULL;
    if (join_cg && b->cg) {
        njoin = cg_run_procs_fds(b->cg, join_fds, (int)BX_ARRAY_LEN(join_fds), err);
        if (njoin < 0)
            return -1;
    }
    spec = (struct proc_spec){.path = m->p.runsc,
                              .argv = argv,
                              .envp = envp,
                              .stdin_fd = in_fd,
                              .stdout_fd = out_fd,
                              .stderr_fd = err_fd,
                              .join_fds = join_fds,
                              .n_join_fds = njoin,
                              .cwd = b->dir};
    if (strcmp(args[0], "create") == 0 || strcmp(args[0], "start") == 0) {
        /* runsc_ns.h: create/start must not see /proc/sys/net (a box's
         * cgroup is made pinned, so there is no cpuset shadow for it) */
        struct runsc_ns_opts nso;
        runsc_ns_opts_for(&nso, b->net != NULL, b->cg);
        ret = runsc_spawn(m->p.loop, &spec, &nso, cb, arg, pp, err);
    } else {
        ret = proc_spawn(m->p.loop, &spec, cb, arg, pp, err);
    }
    for (int i = 0; i < njoin; i++)
        close(join_fds[i]);
    return ret;
}

static void bg_runsc(struct box *b, const char *const *args)
{
    struct bgproc *g = calloc(1, sizeof(*g));
    struct bx_err err;
    if (!g)
        return;
    g->m = b->m;
    snprintf(g->box_id, sizeof(g->box_id), "%s", b->id);
    if (box_spawn_runsc(b, args, NULL, -1, -1, 0, bg_on_exit, g, &g->p, &err) < 0) {
        bx_log_error("box %s: %s", b->id, err.msg);
        free(g);
        return;
    }
    g->next = b->m->bg;
    b->m->bg = g;
}

/* ---- start ---- */

static uint64_t box_host_pids(const struct box_mgr *m);
static void start_failed(struct box *b, const struct bx_err *err);
static void stop_teardown(struct loop *l, void *arg);

/* ---- idle stop ---- */

static void on_idle_timer(struct loop *l, void *arg);

/* A timer for the next check, secs from now (0 secs: never). */
static void arm_idle(struct box *b, uint64_t secs)
{
    if (b->idle_timer)
        loop_timer_cancel(b->m->p.loop, b->idle_timer);
    b->idle_timer = secs ? loop_timer_add(b->m->p.loop, secs * 1000, on_idle_timer, b) : 0;
}

/* 1 when an exec is still going; else *last is the latest activity: the
 * last touch or the end of the last exec (a long exec is activity until
 * it ends). */
int box_exec_running(const struct box *b, time_t *last)
{
    *last = b->last_active;
    for (const struct box_exec *e = b->execs; e; e = e->next) {
        if (e->running)
            return 1;
        if (e->finished > *last)
            *last = e->finished;
    }
    return 0;
}

static void on_idle_timer(struct loop *l, void *arg)
{
    struct box *b = arg;
    struct bx_err err;
    time_t now = time(NULL), last;
    (void)l;
    b->idle_timer = 0;
    if (b->status != BOX_RUNNING || b->cb || b->removing || !b->idle_secs)
        return;
    /* Activity since the timer was set, or an exec still going: check
     * again when the box would be idle long enough. */
    if (box_exec_running(b, &last)) {
        arm_idle(b, b->idle_secs);
        return;
    }
    if (now < last + (time_t)b->idle_secs) {
        arm_idle(b, (uint64_t)(last + (time_t)b->idle_secs - now));
        return;
    }
    bx_log_info("box %s: idle for %llu s, stopping it", b->id, (unsigned long long)b->idle_secs);
    bx_err_clear(&err);
    if (box_stop(b, NULL, NULL, &err) < 0)
        bx_log_error("box %s: idle stop: %s", b->id, err.msg);
}

void box_touch(struct box *b)
{
    b->last_active = time(NULL);
}

static void on_wait_exit(void *arg, int status)
{
    struct box *b = arg;
    (void)status;
    proc_free(&b->waitp);
    /* The sandbox ended.  During a stop this ends the grace period. */
    if (b->status == BOX_STOPPING && b->grace_timer) {
        loop_timer_cancel(b->m->p.loop, b->grace_timer);
        b->grace_timer = 0;
        stop_teardown(b->m->p.loop, b);
    } else if (b->status == BOX_RUNNING) {
        /* It ended by itself (its init was killed from inside, the sandbox
         * crashed): the same teardown as a stop, so the state is honest
         * and the box can be started again. */
        bx_log_info("box %s: its sandbox ended, box stopped", b->id);
        b->status = BOX_STOPPING;
        stop_teardown(b->m->p.loop, b);
    }
}

/* Ends the start step (b->step) that exited with status: 1 when it failed
 * (the start then fails with the message fmt), else 0. */
static int step_failed(struct box *b, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int step_failed(struct box *b, int status, const char *fmt, ...)
{
    struct bx_err err;
    va_list ap;
    proc_free(&b->step);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    bx_err_clear(&err);
    err.status = BX_E_INTERNAL;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
    va_end(ap);
    start_failed(b, &err);
    return 1;
}

static void on_started(void *arg, int status)
{
    struct box *b = arg;
    struct bx_err err;
    const char *wait_args[] = {"wait", b->cid, NULL};
    if (step_failed(b, status, "runsc start failed (see %s/runsc-start.log)", b->dir))
        return;
    if (box_spawn_runsc(b, wait_args, NULL, -1, -1, 0, on_wait_exit, b, &b->waitp, &err) < 0) {
        start_failed(b, &err);
        return;
    }
    b->status = BOX_RUNNING;
    if (!b->pooled) /* counted when a create adopts it */
        b->m->starts++;
    b->started = time(NULL);
    /* A start is activity, unless Boxer's restart made it (the idle timer
     * still counts from here: a restarted box gets idle_secs) */
    if (!b->keep_active)
        b->last_active = b->started;
    b->keep_active = 0;
    arm_idle(b, b->idle_secs);
    box_store_save(b);
    finish_op(b, NULL);
}

static void on_created(void *arg, int status)
{
    struct box *b = arg;
    struct bx_err err;
    const char *args[] = {"start", b->cid, NULL};
    if (step_failed(b, status, "runsc create failed (see %s/runsc-create.log)", b->dir))
        return;
    if (box_spawn_runsc(b, args, NULL, -1, -1, 0, on_started, b, &b->step, &err) < 0)
        start_failed(b, &err);
}

static void launch(struct box *b)
{
    struct bx_err err;
    char bundle[PATH_MAX + 16], name[CG_NAME_MAX];
    const char *args[] = {"create", "--bundle", bundle, b->cid, NULL};
    struct cg_limits cl = {b->cpu, b->memory_mb << 20, box_host_pids(b->m)};

    bx_err_clear(&err);
    b->gen++;
    snprintf(b->cid, sizeof(b->cid), "%s-%u", b->id, b->gen);
    /* The generation is on disk before its sandbox exists. */
    box_store_save(b);
    snprintf(bundle, sizeof(bundle), "%s", b->dir);
    snprintf(name, sizeof(name), "%s", b->cid);
    if (attach_and_mount(b, &err) < 0 || mount_root(b, &err) < 0)
        goto fail;
    if (b->workdir[0] == '/' && b->workdir[1]) {
        char root[PATH_MAX + 16];
        snprintf(root, sizeof(root), "%s/rootfs", b->dir);
        int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
            bx_err_sys(&err, BX_E_INTERNAL, "open %s", root);
            goto fail;
        }
        /* Boxer's own path rules: no symlink is followed. */
        int r = bx_mkdir_p_at(rfd, b->workdir + 1, 0755, 0, &err);
        close(rfd);
        if (r < 0)
            goto fail;
    }
    if (write_init(b, &err) < 0)
        goto fail;
    if (cg_run_create_pinned(b->m->p.cgroups, name, &cl, &b->cg, &err) < 0)
        goto fail;
    if (box_net_setup(b, &err) < 0 || box_write_spec(b, &err) < 0)
        goto fail;
    if (box_spawn_runsc(b, args, NULL, -1, -1, 1, on_created, b, &b->step, &err) < 0)
        goto fail;
    return;
fail:
    start_failed(b, &err);
}

static void on_mkfs(void *arg, int status)
{
    struct box *b = arg;
    if (step_failed(b, status, "mkfs.ext4 failed (status %d)", status))
        return;
    launch(b);
}

static void prepare_disk(struct box *b)
{
    struct bx_err err;
    char img[PATH_MAX + 16];
    int fd;

    snprintf(img, sizeof(img), "%s/disk.img", b->dir);
    fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        launch(b);
        return;
    }
    if (fd < 0) {
        bx_err_sys(&err, BX_E_INTERNAL, "create %s", img);
        goto fail;
    }
    /* Sparse: only what the box writes takes host disk. */
    if (ftruncate(fd, (off_t)(b->disk_gb << 30)) < 0) {
        bx_err_sys(&err, BX_E_INTERNAL, "ftruncate %s", img);
        close(fd);
        unlink(img);
        goto fail;
    }
    close(fd);
    {
        char *argv[] = {b->m->mkfs, "-F", "-q", "-m", "0", "--", img, NULL};
        char *envp[] = {NULL};
        struct proc_spec spec = {.path = b->m->mkfs,
                                 .argv = argv,
                                 .envp = envp,
                                 .stdin_fd = -1,
                                 .stdout_fd = -1,
                                 .stderr_fd = -1,
                                 .cwd = b->dir};
        if (proc_spawn(b->m->p.loop, &spec, on_mkfs, b, &b->step, &err) < 0) {
            unlink(img);
            goto fail;
        }
    }
    return;
fail:
    start_failed(b, &err);
}

static void on_box_image(void *arg, struct image *img, const struct bx_err *ierr)
{
    struct box *b = arg;
    b->iwait = NULL;
    if (!img) {
        struct bx_err e = *ierr;
        /* BoxRun's IMAGE_PULL_FAILED (502) for whatever kept the image
         * away, but a request error stays a 400. */
        if (e.status != BX_E_BAD_REQUEST)
            e.status = BX_E_BAD_GATEWAY;
        start_failed(b, &e);
        return;
    }
    b->img = img;
    if (!b->digest[0]) {
        snprintf(b->digest, sizeof(b->digest), "%s", img->digest);
        box_store_save(b);
    }
    prepare_disk(b);
}

static void deferred_disk(struct loop *l, void *arg)
{
    (void)l;
    prepare_disk(arg);
}

/* Host tasks of one box's cgroup (box_defaults.pids_limit as /run counts
 * it), never more than the whole budget. */
static uint64_t box_host_pids(const struct box_mgr *m)
{
    uint64_t p = config_run_host_pids(m->p.cfg->box_defaults.pids_limit);
    return p < m->p.cfg->total_pids ? p : m->p.cfg->total_pids;
}

/* From the start of a start until the sandbox is gone, the box holds its
 * memory_mb and host tasks of the budget /run admission uses. */
static void hold_budget(struct box *b)
{
    if (b->held)
        return;
    b->held = 1;
    b->held_memory_mb = b->memory_mb;
    b->held_pids = box_host_pids(b->m);
    if (b->m->p.runs)
        run_mgr_hold(b->m->p.runs, b->held_memory_mb, b->held_pids);
}

static void release_budget(struct box *b)
{
    if (!b->held)
        return;
    b->held = 0;
    if (b->m->p.runs)
        run_mgr_release(b->m->p.runs, b->held_memory_mb, b->held_pids);
}

int box_begin_start(struct box *b, struct bx_err *err)
{
    struct imgref ref;
    b->status = BOX_CREATING;
    b->error_code[0] = b->error_msg[0] = 0;
    if (b->img) {
        hold_budget(b);
        /* Never inside the caller's call. */
        loop_defer(b->m->p.loop, &b->task, deferred_disk, b);
        return 0;
    }
    if (imgref_parse(b->image, strlen(b->image), &ref, err) < 0)
        return -1;
    if (b->digest[0]) {
        /* The content the box was made from, not what the tag says now
         * (pulled by digest when the cache lost it). */
        if ((size_t)snprintf(ref.digest, sizeof(ref.digest), "%s", b->digest) >= sizeof(ref.digest))
            return bx_err_set(err, BX_E_INTERNAL, EINVAL, "bad image digest");
        ref.tag[0] = 0;
    }
    if (image_get(b->m->p.images, &ref, on_box_image, b, &b->iwait, err) < 0)
        return -1;
    hold_budget(b);
    return 0;
}

static void release_sandbox(struct box *b)
{
    struct bx_err err;
    proc_free(&b->step);
    proc_free(&b->waitp);
    if (b->cg && cg_run_destroy(&b->cg, &err) < 0 && b->cg)
        cg_run_abandon(&b->cg);
    unmount_all(b);
    if (b->cid[0]) {
        const char *args[] = {"delete", "--force", b->cid, NULL};
        bg_runsc(b, args);
        b->cid[0] = 0;
    }
}

static void start_failed(struct box *b, const struct bx_err *err)
{
    bx_log_error("box %s: start failed: %s", b->id, err->msg);
    b->keep_active = 0;
    release_sandbox(b);
    release_budget(b);
    b->status = BOX_ERROR;
    snprintf(b->error_code, sizeof(b->error_code), "%s", box_err_code(err));
    snprintf(b->error_msg, sizeof(b->error_msg), "%s", err->msg);
    box_store_save(b);
    finish_op(b, err);
}

/* ---- stop, remove ---- */

static void destroy_box(struct box *b);

static void stop_done(struct box *b)
{
    /* a pooled box whose sandbox ended is not kept: its entry remakes one */
    if (b->pooled)
        b->removing = 1;
    unmount_all(b);
    {
        const char *args[] = {"delete", "--force", b->cid, NULL};
        bg_runsc(b, args);
        b->cid[0] = 0;
    }
    b->status = BOX_STOPPED;
    b->stopped = time(NULL);
    b->m->stops++;
    release_budget(b);
    if (!b->removing)
        box_store_save(b);
    if (b->removing) {
        box_done_cb cb = b->cb;
        void *arg = b->cb_arg;
        destroy_box(b);
        if (cb)
            cb(arg, NULL, NULL);
        return;
    }
    finish_op(b, NULL);
}

static void cg_retry(struct loop *l, void *arg)
{
    struct box *b = arg;
    struct bx_err err;
    (void)l;
    b->cg_timer = 0;
    if (!b->cg || cg_run_destroy(&b->cg, &err) == 0 || !b->cg) {
        stop_done(b);
        return;
    }
    if (++b->cg_tries >= BOX_CG_RETRIES) {
        bx_log_error("box %s: cgroup not empty, abandoned", b->id);
        cg_run_abandon(&b->cg);
        stop_done(b);
        return;
    }
    b->cg_timer = loop_timer_add(b->m->p.loop, BOX_CG_RETRY_MS, cg_retry, b);
}

static void stop_teardown(struct loop *l, void *arg)
{
    struct box *b = arg;
    (void)l;
    b->grace_timer = 0;
    proc_free(&b->step);
    proc_free(&b->waitp);
    /* The cgroup holds the sandbox, its gofer and every runsc exec:
     * destroying it kills whatever did not leave on TERM. */
    b->cg_tries = 0;
    cg_retry(b->m->p.loop, b);
}

static void on_kill_sent(void *arg, int status)
{
    struct box *b = arg;
    (void)status;
    proc_free(&b->step);
}

static int begin_stop(struct box *b, struct bx_err *err)
{
    const char *args[] = {"kill", "--all", b->cid, "TERM", NULL};
    b->status = BOX_STOPPING;
    arm_idle(b, 0);
    /* Execs still running end with the box. */
    b->grace_timer =
        loop_timer_add(b->m->p.loop, b->m->p.cfg->box_stop_grace_secs * 1000, stop_teardown, b);
    if (box_spawn_runsc(b, args, NULL, -1, -1, 0, on_kill_sent, b, &b->step, err) < 0) {
        /* No TERM: go straight to the kill. */
        loop_timer_cancel(b->m->p.loop, b->grace_timer);
        b->grace_timer = loop_timer_add(b->m->p.loop, 0, stop_teardown, b);
    }
    if (!b->waitp) {
        loop_timer_cancel(b->m->p.loop, b->grace_timer);
        b->grace_timer = loop_timer_add(b->m->p.loop, 0, stop_teardown, b);
    }
    return 0;
}

static int busy(const struct box *b, struct bx_err *err)
{
    if (b->cb || b->status == BOX_CREATING || b->status == BOX_STOPPING || b->removing)
        return bx_err_set(err, BX_E_CONFLICT, EBUSY, "box %s is busy (starting or stopping)", b->id);
    return 0;
}

/* max_boxes running boxes; their memory_mb and host tasks (box_host_pids)
 * come out of the budget /run admission uses too (total_memory_mb,
 * total_pids, run_mgr_fits): beyond, 503 RESOURCE_EXCEEDED. */
static int admit_box(struct box_mgr *m, uint64_t memory_mb, struct bx_err *err)
{
    uint64_t n = 0, mem = memory_mb;
    for (const struct box *o = m->boxes; o; o = o->next)
        if (!o->pooled &&
            (o->status == BOX_CREATING || o->status == BOX_RUNNING || o->status == BOX_STOPPING)) {
            n++;
            mem += o->memory_mb;
        }
    if (n >= m->p.cfg->max_boxes)
        return bx_err_set(err, BX_E_UNAVAILABLE, EAGAIN,
                          "max_boxes (%llu) boxes are running: stop or remove one, or retry later",
                          (unsigned long long)m->p.cfg->max_boxes);
    /* boxes made in advance give way (their holds go at once) */
    if (m->p.runs && !run_mgr_fits(m->p.runs, memory_mb, box_host_pids(m)))
        box_pool_yield(m, memory_mb, box_host_pids(m));
    if (m->p.runs ? !run_mgr_fits(m->p.runs, memory_mb, box_host_pids(m))
                  : mem > m->p.cfg->total_memory_mb)
        return bx_err_set(err, BX_E_UNAVAILABLE, EAGAIN,
                          "running boxes and runs use the memory or pids budget "
                          "(total_memory_mb %llu MB, total_pids %llu): stop a box or retry later",
                          (unsigned long long)m->p.cfg->total_memory_mb,
                          (unsigned long long)m->p.cfg->total_pids);
    return 0;
}

int box_start(struct box *b, box_done_cb cb, void *arg, struct bx_err *err)
{
    if (busy(b, err) < 0)
        return -1;
    if (b->status == BOX_RUNNING)
        return bx_err_set(err, BX_E_CONFLICT, EALREADY, "box %s is already running", b->id);
    if (admit_box(b->m, b->memory_mb, err) < 0)
        return -1;
    if (box_begin_start(b, err) < 0) {
        b->status = BOX_ERROR;
        return -1;
    }
    b->cb = cb;
    b->cb_arg = arg;
    return 0;
}

int box_stop(struct box *b, box_done_cb cb, void *arg, struct bx_err *err)
{
    if (busy(b, err) < 0)
        return -1;
    if (b->status != BOX_RUNNING)
        return bx_err_set(err, BX_E_CONFLICT, ENOTCONN, "box %s is not running", b->id);
    if (begin_stop(b, err) < 0)
        return -1;
    b->cb = cb;
    b->cb_arg = arg;
    return 0;
}

size_t box_stop_all(struct box_mgr *m)
{
    size_t n = 0;
    for (struct box *b = m->boxes; b; b = b->next) {
        struct bx_err err;
        bx_err_clear(&err);
        if (b->status != BOX_RUNNING || b->pooled || busy(b, &err) < 0)
            continue;
        /* restart_boxes still starts it at the next start */
        b->drained = 1;
        if (box_stop(b, NULL, NULL, &err) < 0) {
            b->drained = 0;
            bx_log_error("box %s: stop: %s", b->id, err.msg);
        } else {
            n++;
        }
    }
    return n;
}

static void deferred_removed(struct loop *l, void *arg);

int box_remove(struct box *b, int force, box_done_cb cb, void *arg, struct bx_err *err)
{
    if (busy(b, err) < 0)
        return -1;
    if (b->status == BOX_RUNNING && !force)
        return bx_err_set(err, BX_E_CONFLICT, EALREADY,
                          "box %s is running: stop it first or pass force=true", b->id);
    b->removing = 1;
    b->cb = cb;
    b->cb_arg = arg;
    /* A crash from here on finishes the removal at the next start. */
    box_store_save(b);
    if (b->status == BOX_RUNNING)
        return begin_stop(b, err);
    loop_defer(b->m->p.loop, &b->task, deferred_removed, b);
    return 0;
}

static void deferred_removed(struct loop *l, void *arg)
{
    struct box *b = arg;
    box_done_cb cb = b->cb;
    void *cb_arg = b->cb_arg;
    (void)l;
    destroy_box(b);
    if (cb)
        cb(cb_arg, NULL, NULL);
}

void exec_free(struct box_exec *e)
{
    exec_watchers_gone(e);
    if (e->safety_timer)
        loop_timer_cancel(e->box->m->p.loop, e->safety_timer);
    if (e->proc)
        proc_free(&e->proc);
    exec_control_free(e);
    if (e->out_fd >= 0) {
        loop_del(e->box->m->p.loop, e->out_fd);
        bx_close(&e->out_fd);
    }
    if (e->err_fd >= 0) {
        loop_del(e->box->m->p.loop, e->err_fd);
        bx_close(&e->err_fd);
    }
    bx_strv_free(&e->cmd);
    bx_strv_free(&e->env);
    free(e->workdir);
    exec_log_free(&e->log);
    free(e);
}

/* Frees the box and deletes its directory (the sandbox is gone). */
static void destroy_box(struct box *b)
{
    struct box_mgr *m = b->m;
    struct box **pp;
    struct bx_err err;

    /* a pooled box has no record to keep: its directory goes (disk too) */
    if (b->pooled) {
        b->removing = 1;
        box_pool_gone(b);
    }
    for (pp = &m->boxes; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    loop_defer_cancel(m->p.loop, &b->task);
    if (b->grace_timer)
        loop_timer_cancel(m->p.loop, b->grace_timer);
    if (b->idle_timer)
        loop_timer_cancel(m->p.loop, b->idle_timer);
    if (b->cg_timer)
        loop_timer_cancel(m->p.loop, b->cg_timer);
    if (b->iwait)
        image_wait_cancel(&b->iwait);
    release_sandbox(b);
    release_budget(b);
    while (b->execs) {
        struct box_exec *e = b->execs;
        b->execs = e->next;
        if (e->running && (e->cb || e->watchers)) {
            /* Its waiter is answered: the box went away under it. */
            box_exec_cb cb = e->cb;
            void *cb_arg = e->cb_arg;
            e->cb = NULL;
            e->running = 0;
            e->failed = 1;
            e->exit_code = 137;
            e->finished = time(NULL);
            snprintf(e->error, sizeof(e->error), "the box was removed");
            if (cb)
                cb(cb_arg, e);
        }
        exec_free(e);
    }
    if (b->img)
        image_release(m->p.images, b->img);
    if (b->removing) {
        struct bgproc *last = NULL;
        /* the newest runsc of this box (the list is newest first) */
        for (struct bgproc *g = m->bg; g && !last; g = g->next)
            if (strcmp(g->box_id, b->id) == 0 && !g->rm_dir)
                last = g;
        if (last && (last->rm_dir = strdup(b->dir)) != NULL)
            ; /* removed when that runsc is done */
        else if (bx_rm_rf_at(AT_FDCWD, b->dir, &err) < 0)
            bx_log_error("box %s: %s", b->id, err.msg);
    }
    free(b->name);
    free(b->image);
    free(b->workdir);
    box_volumes_free(&b->volumes, b->nvolumes);
    bx_strv_free(&b->env);
    free(b);
}

/* ---- create, find, manager ---- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

struct box *box_find(struct box_mgr *m, const char *id_or_name)
{
    for (struct box *b = m->boxes; b; b = b->next)
        if (b->pooled)
            continue;
        else if (strcmp(b->id, id_or_name) == 0 || (b->name && strcmp(b->name, id_or_name) == 0))
            return b;
    return NULL;
}

static int create_box(struct box_mgr *m, struct box_create_req *req, int pooled, size_t entry,
                      box_done_cb cb, void *arg, struct box **out, struct bx_err *err);

int box_create(struct box_mgr *m, struct box_create_req *req, box_done_cb cb, void *arg,
               struct box **out, struct bx_err *err)
{
    return create_box(m, req, 0, 0, cb, arg, out, err);
}

/* A box made in advance for warm_pool entry `entry` (box_pool.c). */
struct box *box_create_pooled(struct box_mgr *m, struct box_create_req *req, size_t entry,
                              box_done_cb cb, struct bx_err *err)
{
    struct box *b = NULL;
    if (create_box(m, req, 1, entry, cb, NULL, &b, err) < 0)
        return NULL;
    return b;
}

static int create_box(struct box_mgr *m, struct box_create_req *req, int pooled, size_t entry,
                      box_done_cb cb, void *arg, struct box **out, struct bx_err *err)
{
    const struct config *cfg = m->p.cfg;
    struct box *b;
    char prefix[48];

    if (!m->p.cgroups)
        return bx_err_set(err, BX_E_INTERNAL, ENOTSUP, "boxes need cgroups (ignore_cgroups is set)");
    if (!m->mkfs[0])
        return bx_err_set(err, BX_E_INTERNAL, ENOENT, "mkfs.ext4 not found (install e2fsprogs)");
    if (!req->image || !req->image[0])
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "image is required");
    if (req->name && !valid_name(req->name))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "name must match [a-z0-9][a-z0-9_.-]{0,62}");
    if (req->name && box_find(m, req->name))
        return bx_err_set(err, BX_E_CONFLICT, EEXIST, "a box named %s exists", req->name);
    if (req->workdir && (req->workdir[0] != '/' || strlen(req->workdir) > 1024))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "workdir must be an absolute path");
    if (req->cpu < 0 || req->cpu > cfg->max_limits.cpu_cores)
        return bx_err_set(err, BX_E_BAD_REQUEST, ERANGE, "cpu is over max_limits.cpu_cores (%g)",
                          cfg->max_limits.cpu_cores);
    if (req->memory_mb > cfg->max_limits.memory_mb)
        return bx_err_set(err, BX_E_BAD_REQUEST, ERANGE,
                          "memory_mb is over max_limits.memory_mb (%llu)",
                          (unsigned long long)cfg->max_limits.memory_mb);
    if (req->disk_size_gb > cfg->max_disk_size_gb)
        return bx_err_set(err, BX_E_BAD_REQUEST, ERANGE,
                          "disk_size_gb is over max_disk_size_gb (%llu)",
                          (unsigned long long)cfg->max_disk_size_gb);
    if (box_check_volumes(m->p.cfg, req->volumes, req->nvolumes, err) < 0)
        return -1;
    /* Absent (or null) network: the operator's box_defaults.network. */
    if (!req->has_network)
        req->network = cfg->box_defaults.network;
    if (req->network && (!m->p.net || net_unavailable(m->p.net)))
        return bx_err_set(err, BX_E_INTERNAL, ENOTSUP, "the sandbox network is unavailable: %s",
                          m->p.net ? net_unavailable(m->p.net) : "not configured");
    /* The effective values (as below), which a box made in advance must
     * have been made with. */
    if (req->cpu <= 0)
        req->cpu = cfg->box_defaults.cpu;
    if (req->cpu > cfg->max_limits.cpu_cores)
        req->cpu = cfg->max_limits.cpu_cores;
    if (!req->memory_mb)
        req->memory_mb = cfg->box_defaults.memory_mb;
    if (req->memory_mb > cfg->max_limits.memory_mb)
        req->memory_mb = cfg->max_limits.memory_mb;
    if (!req->disk_size_gb)
        req->disk_size_gb = cfg->box_defaults.disk_size_gb;
    if (!pooled && m->npool) {
        b = box_pool_adopt(m, req, cb, arg);
        if (b) {
            *out = b;
            return 0;
        }
    }
    /* the pool checks the budget itself (it only fills what is free) */
    if (!pooled && admit_box(m, req->memory_mb, err) < 0)
        return -1;
    b = calloc(1, sizeof(*b));
    if (!b)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    b->m = m;
    b->pool_entry = entry;
    b->pool_began_ms = bx_now_ms();
    /* The node in the id lets a balancer route the box's requests. */
    snprintf(prefix, sizeof(prefix), "box_%s_", cfg->node_id);
    if (random_id(prefix, b->id, sizeof(b->id), err) < 0) {
        free(b);
        return -1;
    }
    /* The defaults are clamped to max_limits (a small host), never refused. */
    b->cpu = req->cpu > 0 ? req->cpu : cfg->box_defaults.cpu;
    if (b->cpu > cfg->max_limits.cpu_cores)
        b->cpu = cfg->max_limits.cpu_cores;
    b->memory_mb = req->memory_mb ? req->memory_mb : cfg->box_defaults.memory_mb;
    if (b->memory_mb > cfg->max_limits.memory_mb)
        b->memory_mb = cfg->max_limits.memory_mb;
    b->disk_gb = req->disk_size_gb ? req->disk_size_gb : cfg->box_defaults.disk_size_gb;
    b->idle_secs = req->has_idle_timeout ? req->idle_timeout_secs : cfg->box_idle_timeout_secs;
    if (pooled)
        b->idle_secs = 0; /* set when a create adopts it */
    if ((size_t)snprintf(b->dir, sizeof(b->dir), "%s/%s", m->home_boxes, b->id) >=
        sizeof(b->dir)) {
        free(b);
        return bx_err_set(err, BX_E_INTERNAL, ENAMETOOLONG, "home is too long for boxes");
    }
    if (mkdir(b->dir, 0700) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", b->dir);
        free(b);
        return -1;
    }
    {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s/disk", b->dir);
        int r1 = mkdir(p, 0700);
        snprintf(p, sizeof(p), "%s/rootfs", b->dir);
        int r2 = mkdir(p, 0755);
        snprintf(p, sizeof(p), "%s/state", b->dir);
        int r3 = mkdir(p, 0700);
        if (r1 < 0 || r2 < 0 || r3 < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "mkdir under %s", b->dir);
            bx_rm_rf_at(AT_FDCWD, b->dir, NULL);
            free(b);
            return -1;
        }
    }
    b->image = bx_steal_ptr(&req->image);
    b->name = bx_steal_ptr(&req->name);
    b->env = bx_steal_ptr(&req->env);
    b->network = req->network;
    b->set_user = req->set_user;
    b->uid = req->uid;
    b->gid = req->gid;
    b->volumes = bx_steal_ptr(&req->volumes);
    b->nvolumes = req->nvolumes;
    req->nvolumes = 0;
    b->workdir = req->workdir ? bx_steal_ptr(&req->workdir) : strdup(cfg->box_defaults.workdir);
    b->created = time(NULL);
    b->next = m->boxes;
    m->boxes = b;
    if (!b->workdir || box_begin_start(b, err) < 0) {
        if (!b->workdir)
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        b->removing = 1;
        destroy_box(b);
        return -1;
    }
    /* from here on a failure reaches cb (box_pool.c counts the box) */
    b->pooled = pooled;
    b->cb = cb;
    b->cb_arg = pooled ? b : arg;
    box_store_save(b);
    *out = b;
    return 0;
}

void box_destroy_now(struct box *b)
{
    destroy_box(b);
}

void box_finish_op(struct box *b)
{
    finish_op(b, NULL);
}

uint64_t box_host_pids_of(const struct box_mgr *m)
{
    return box_host_pids(m);
}

void box_arm_idle(struct box *b)
{
    arm_idle(b, b->idle_secs);
}

int box_mgr_new(struct box_mgr **out, const struct box_mgr_params *p, struct bx_err *err)
{
    struct box_mgr *m = calloc(1, sizeof(*m));
    if (!m)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    m->p = *p;
    snprintf(m->home_boxes, sizeof(m->home_boxes), "%s/boxes", p->cfg->home);
    if (bx_mkdir_p_at(AT_FDCWD, m->home_boxes, 0700, 0, err) < 0) {
        free(m);
        return -1;
    }
    if (proc_find_in_path("mkfs.ext4", "/usr/sbin:/sbin:/usr/bin:/bin", m->mkfs,
                          sizeof(m->mkfs)) < 0)
        m->mkfs[0] = 0;
    /* box_recover swept the old sandboxes before cgroups were cleaned. */
    if (box_store_load_all(m, err) < 0 || box_pool_init(m, err) < 0) {
        box_mgr_free(&m);
        return -1;
    }
    *out = m;
    return 0;
}

void box_mgr_free(struct box_mgr **mp)
{
    struct box_mgr *m = *mp;
    if (!m)
        return;
    /* Disks and records stay (a box running now starts again with the next
     * Boxer, see box_store.c); sandboxes and mounts go.  No queued run is
     * admitted by the budget they give back: the server is stopping. */
    box_pool_free(m);
    m->p.runs = NULL;
    while (m->boxes) {
        struct box *b = m->boxes;
        time_t last;
        /* activity the record does not have yet (file transfers, attach) */
        (void)box_exec_running(b, &last);
        if (!b->removing && !b->pooled && last > b->saved_active)
            box_store_save(b);
        b->cb = NULL;
        b->removing = 0;
        destroy_box(b);
    }
    while (m->bg) {
        struct bgproc *g = m->bg;
        m->bg = g->next;
        bg_free(g);
    }
    free(m);
    *mp = NULL;
}

void box_stats(const struct box_mgr *m, struct box_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->starts = m->starts;
    st->stops = m->stops;
    st->execs_started = m->execs_started;
    memcpy(st->execs_by_outcome, m->execs_by_outcome, sizeof(st->execs_by_outcome));
    st->exec_hist = m->exec_hist;
    st->pool_hits = m->pool_hits;
    st->pool_misses = m->pool_misses;
    st->pool_created = m->pool_created;
    st->pool_failed = m->pool_failed;
    st->pool_yielded = m->pool_yielded;
    st->pool_create_ms_last = m->pool_create_ms_last;
    st->pool_create_ms_sum = m->pool_create_ms_sum;
    for (const struct box *b = m->boxes; b; b = b->next) {
        if (b->pooled) {
            if (b->status == BOX_RUNNING)
                st->pool_ready++;
            else if (b->status == BOX_CREATING)
                st->pool_creating++;
            continue;
        }
        switch (b->status) {
        case BOX_CREATING:
            st->creating++;
            break;
        case BOX_RUNNING:
        case BOX_STOPPING:
            st->running++;
            break;
        case BOX_STOPPED:
            st->stopped++;
            break;
        default:
            st->error++;
        }
        if (b->held) {
            st->memory_mb += b->held_memory_mb;
            st->pids += b->held_pids;
        }
        for (const struct box_exec *e = b->execs; e; e = e->next)
            if (e->running && !e->hidden)
                st->execs_running++;
    }
}

const struct config *box_mgr_config(const struct box_mgr *m)
{
    return m->p.cfg;
}

unsigned box_gc(struct box_mgr *m, uint64_t older_than)
{
    time_t now = time(NULL);
    unsigned n = 0;
    for (struct box *b = m->boxes; b; b = b->next) {
        struct bx_err err;
        if (b->status != BOX_STOPPED || b->pooled || b->cb || b->removing || !b->stopped ||
            (uint64_t)(now - b->stopped) <= older_than)
            continue;
        bx_err_clear(&err);
        /* Deferred: the list is not changed under this walk. */
        if (box_remove(b, 0, NULL, NULL, &err) == 0)
            n++;
        else
            bx_log_error("box %s: gc: %s", b->id, err.msg);
    }
    return n;
}
