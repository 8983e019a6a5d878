#define _GNU_SOURCE
#include "run_internal.h"
#include "run_outputs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

/* The tmpfs under each run's rootfs overlay: what runsc creates there
 * (mount points) is all it holds. */
#define RUN_UPPER_BYTES (8u << 20)
#define RUN_UPPER_INODES 65536
#define DRAIN_AFTER_EXIT_MS 2000
#define READ_CHUNK 65536
#define RUNSC_OOM_SCORE_ADJ 500

void run_request_free(struct run_request **rp)
{
    struct run_request *r = *rp;
    if (!r)
        return;
    free(r->image);
    bx_strv_free(&r->cmd);
    bx_strv_free(&r->env);
    free(r->cwd);
    bx_strv_free(&r->files);
    free(r->egress);
    free(r->stdin_data);
    for (size_t i = 0; r->inputs && i < r->ninputs; i++) {
        free(r->inputs[i].path);
        free(r->inputs[i].data);
    }
    free(r->inputs);
    free(r);
    *rp = NULL;
}

/* ---- output sinks ---- */

/* Where a sandbox's stdout and stderr go.  The buffered sink below keeps
 * them for the JSON answer; a streaming sink would forward them instead. */
struct run_sink {
    /* < 0: stop the run (limit reached). */
    int (*write)(struct run_job *job, int stream, const char *data, size_t len);
};

/* ---- manager and jobs ---- */

/* JOB_STARTING: admitted (counted in the budget), its start deferred to the
 * loop (start_task), so that run_submit never completes a job inside itself.
 * JOB_CAPTURE: the sandbox is gone, a child copies /output into the store. */
enum job_state { JOB_QUEUED, JOB_STARTING, JOB_IMAGE, JOB_RUNNING, JOB_CAPTURE, JOB_DONE };

struct run_job {
    struct run_mgr *mgr;
    struct run_job *next; /* queue / active list */
    struct run_job *prev;
    enum job_state state;
    struct run_request *req;
    struct run_result *res;
    run_done_cb cb;
    void *cb_arg;
    int cancelled;
    const struct run_sink *sink;
    struct loop_task start_task;
    uint64_t cost_memory_mb; /* what the job holds of the budget while admitted */
    uint64_t cost_pids;

    struct image_wait *iwait;
    struct image *img;
    struct oci_bundle b; /* <home>/runs/<exec_id> */
    struct cg_run *cg;
    struct net_run *net;
    struct proc *proc;
    struct proc *capture; /* the /output capture child (JOB_CAPTURE) */
    struct store_report *capture_rep; /* what it captured, skipped, or why it failed */
    int capture_fd;       /* <run dir>/output, for the capture child */
    int out_fd, err_fd;
    int exited;
    int wstatus;
    uint64_t started_ms;
    uint64_t wall_timer;
    uint64_t drain_timer;
    uint64_t unpin_timer; /* polls cg_run_unpin_started */
    unsigned unpin_polls;
    int killed;
    run_output_cb out_cb; /* streamed runs (streamed_sink) */
    void *out_arg;
    int paused;
    struct infeed in; /* the command's stdin when the request gave one (issue 14) */
    char name[64];        /* the exec id, kept after the result is handed over */
    uint64_t cleanup_timer; /* the teardown after the answer (cleanup_start) */
    struct proc *cleanup; /* the child unmounting and removing the run dir */
    /* issue 16: the run adopted a warm pool sandbox (pool.c): its command
     * goes in with `runsc exec`, a kill is `runsc kill --all`, and the
     * teardown starts with `runsc delete --force` */
    int warm;
    int warm_deleted;
    struct proc *killer;
};


static void job_start(struct loop *l, void *arg);
static void job_finish(struct run_job *job);
static void job_complete(struct run_job *job);
static void cleanup_start(struct run_job *job);
static void cleanup_now(struct run_job *job);
static void warm_start(struct run_job *job);
static void cleanup_work(struct run_job *job, int may_fork);
static int warm_runsc(struct run_job *job, const char *what, proc_exit_cb cb,
                      struct proc **out, struct bx_err *err);

static int buffered_write(struct run_job *job, int stream, const char *data, size_t len)
{
    struct sbuf *sb = stream == 1 ? &job->res->out : &job->res->err;
    if (sbuf_append(sb, data, len) < 0) {
        /* Keep what fits, so a 507 answer could still show the start. */
        size_t room = sb->max > sb->len ? sb->max - sb->len : 0;
        if (room > 0)
            sbuf_append(sb, data, room);
        return -1;
    }
    return 0;
}

static const struct run_sink buffered_sink = {buffered_write};

/* A streamed run: the result keeps its buffers (the final event carries
 * them as the answer would), and the client sees every read at once. */
static int streamed_write(struct run_job *job, int stream, const char *data, size_t len)
{
    if (job->out_cb)
        job->out_cb(job->out_arg, stream - 1, data, len);
    return buffered_write(job, stream, data, len);
}

static const struct run_sink streamed_sink = {streamed_write};

void run_set_output_hook(struct run_job *job, run_output_cb cb, void *arg)
{
    job->out_cb = cb;
    job->out_arg = arg;
    job->sink = cb ? &streamed_sink : &buffered_sink;
}

void run_pause_output(struct run_job *job, int paused)
{
    struct loop *l = job->mgr->p.loop;
    if (job->paused == paused)
        return;
    job->paused = paused;
    if (job->out_fd >= 0)
        loop_mod(l, job->out_fd, paused ? 0 : EPOLLIN, NULL);
    if (job->err_fd >= 0)
        loop_mod(l, job->err_fd, paused ? 0 : EPOLLIN, NULL);
}

const char *run_job_exec_id(const struct run_job *job)
{
    return job->res->exec_id;
}

int run_mgr_new(struct run_mgr **out, const struct run_mgr_params *p, struct bx_err *err)
{
    struct run_mgr *m = calloc(1, sizeof(*m));
    if (!m)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    m->p = *p;
    m->runs_dirfd = -1;
    if (asprintf(&m->runs_dir, "%s/runs", p->cfg->home) < 0) {
        free(m);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    m->runs_dirfd = bx_mkdir_p_at(AT_FDCWD, m->runs_dir, 0700, 1, err);
    if (m->runs_dirfd < 0) {
        free(m->runs_dir);
        free(m);
        return -1;
    }
    if (p->cfg->nwarm_pool > 0) {
        struct pool_params pp = {.mgr = m, .runs_dirfd = m->runs_dirfd, .runs_dir = m->runs_dir};
        if (pool_new(&m->pool, &pp, err) < 0) {
            bx_close(&m->runs_dirfd);
            free(m->runs_dir);
            free(m);
            return -1;
        }
    }
    *out = m;
    return 0;
}

static void list_remove(struct run_job **head, struct run_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        *head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->next = job->prev = NULL;
}

static void list_push(struct run_job **head, struct run_job *job)
{
    job->prev = NULL;
    job->next = *head;
    if (*head)
        (*head)->prev = job;
    *head = job;
}

void run_result_free(struct run_result **rp)
{
    struct run_result *r = *rp;
    if (!r)
        return;
    sbuf_free(&r->out);
    sbuf_free(&r->err);
    bx_strv_free(&r->files);
    bx_strv_free(&r->output_errors);
    run_outputs_free(&r->outputs);
    free(r);
    *rp = NULL;
}

void run_result_release(struct run_mgr *m, struct run_result **rp)
{
    struct run_result *r = *rp;
    if (!r)
        return;
    if (!r->persist || r->drop_outputs)
        discard_start(m, r->persist ? NULL : &r->files,
                      r->captured && (!r->keep_outputs || r->drop_outputs) ? r->exec_id : NULL);
    run_result_free(rp);
}

static void job_free(struct run_job *job)
{
    infeed_free(&job->in);
    run_request_free(&job->req);
    run_result_free(&job->res);
    oci_bundle_free(&job->b);
    free(job);
}

/* Admission: a free slot (max_concurrent_runs) and room in the budget all
 * runs share (total_memory_mb, total_pids) for the job's limits. */
static int fits(const struct run_mgr *m, uint64_t memory_mb, uint64_t pids)
{
    const struct config *cfg = m->p.cfg;
    return m->nactive < cfg->max_concurrent_runs &&
           m->nteardowns < cfg->max_pending_teardowns &&
           m->used_memory_mb + m->held_memory_mb + memory_mb <= cfg->total_memory_mb &&
           m->used_pids + m->held_pids + pids <= cfg->total_pids;
}

static int admissible(const struct run_mgr *m, const struct run_job *job)
{
    return fits(m, job->cost_memory_mb, job->cost_pids);
}

/* Makes the job active and holds its share of the budget (given back in
 * job_complete).  The start runs from the loop: job_start may complete the
 * job at once (an image that cannot be pulled), and its callback must never
 * run inside run_submit (the caller may free what the callback frees, and
 * then touch it). */
static void admit(struct run_mgr *m, struct run_job *job)
{
    list_push(&m->active, job);
    m->nactive++;
    m->used_memory_mb += job->cost_memory_mb;
    m->used_pids += job->cost_pids;
    job->state = JOB_STARTING;
    loop_defer(m->p.loop, &job->start_task, job_start, job);
}

int run_submit(struct run_mgr *m, struct run_request **reqp, run_done_cb cb, void *arg,
               struct run_job **out, struct bx_err *err)
{
    struct run_job *job;
    struct run_request *req = *reqp;
    struct pool_sb *warm = NULL;
    char uuid[37];
    int start_now;

    /* Every listed file must exist before anything starts. */
    for (size_t i = 0; i < req->nfiles; i++) {
        int r = store_exists(m->p.store, req->files[i], err);
        if (r < 0)
            return -1;
        if (r == 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, ENOENT, "file not found: %s", req->files[i]);
    }
    if (req->network == RUN_NET_SANDBOX && net_unavailable(m->p.net))
        return bx_err_set(err, BX_E_INTERNAL, 0, "network sandbox is unavailable on this server: %s",
                          net_unavailable(m->p.net));
    /* issue 16: a ready warm sandbox made for exactly this (its budget
     * hold is given back, so the job's own cost fits where it did) */
    if (m->pool && !m->queue_head && !m->stopping) {
        warm = pool_take(m->pool, req);
        if (warm && !fits(m, req->limits.memory_mb, config_run_host_pids(req->limits.pids_limit))) {
            pool_put_back(m->pool, warm);
            warm = NULL;
        }
    }
    /* FIFO: nobody overtakes a queued job, even one that fits now. */
    start_now = !m->queue_head && fits(m, req->limits.memory_mb,
                                       config_run_host_pids(req->limits.pids_limit));
    if (!start_now && m->nqueued >= m->p.cfg->max_queued_runs)
        return bx_err_set(err, BX_E_UNAVAILABLE, EBUSY, "too many runs in flight; retry later");
    job = calloc(1, sizeof(*job));
    if (!job) {
        if (warm)
            pool_put_back(m->pool, warm);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    infeed_init(&job->in, m->p.loop, 0);
    job->res = calloc(1, sizeof(*job->res));
    if (!job->res || bx_uuid4(uuid, err) < 0) {
        free(job->res);
        free(job);
        if (warm)
            pool_put_back(m->pool, warm);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    job->mgr = m;
    oci_bundle_init(&job->b);
    job->capture_fd = -1;
    job->out_fd = job->err_fd = -1;
    job->sink = &buffered_sink;
    job->cb = cb;
    job->cb_arg = arg;
    job->req = bx_steal_ptr(reqp);
    /* boxer-<node>-<uuid> (issue 17): a balancer can route the outputs'
     * /files requests to the node that holds them. */
    snprintf(job->res->exec_id, sizeof(job->res->exec_id), "boxer-%s-%s", m->p.cfg->node_id, uuid);
    if (warm) {
        /* The run takes the whole sandbox now: whatever happens next
         * (cancel, shutdown), the run's teardown destroys it.  Its exec
         * id is the one the sandbox was made with (its hostname). */
        snprintf(job->res->exec_id, sizeof(job->res->exec_id), "%s", warm->id);
        job->b = warm->b;
        job->cg = warm->cg;
        job->net = warm->net;
        job->img = warm->img;
        job->warm = 1;
        pool_sb_free(&warm);
    }
    snprintf(job->name, sizeof(job->name), "%s", job->res->exec_id);
    sbuf_init(&job->res->out, m->p.cfg->output_limit_bytes);
    sbuf_init(&job->res->err, m->p.cfg->output_limit_bytes);
    job->res->persist = job->req->persist;
    job->state = JOB_QUEUED;
    job->started_ms = bx_now_ms();
    job->cost_memory_mb = job->req->limits.memory_mb;
    job->cost_pids = config_run_host_pids(job->req->limits.pids_limit);
    if (start_now) {
        admit(m, job);
    } else {
        /* FIFO: append at the tail. */
        job->prev = m->queue_tail;
        if (m->queue_tail)
            m->queue_tail->next = job;
        else
            m->queue_head = job;
        m->queue_tail = job;
        m->nqueued++;
    }
    if (out)
        *out = job;
    return 0;
}

static void start_next(struct run_mgr *m)
{
    while (!m->stopping && m->queue_head && admissible(m, m->queue_head)) {
        struct run_job *job = m->queue_head;
        m->queue_head = job->next;
        if (m->queue_head)
            m->queue_head->prev = NULL;
        else
            m->queue_tail = NULL;
        job->next = job->prev = NULL;
        m->nqueued--;
        job->started_ms = bx_now_ms();
        admit(m, job);
    }
}

void run_mgr_hold(struct run_mgr *m, uint64_t memory_mb, uint64_t pids)
{
    m->held_memory_mb += memory_mb;
    m->held_pids += pids;
}

void run_mgr_release(struct run_mgr *m, uint64_t memory_mb, uint64_t pids)
{
    m->held_memory_mb -= memory_mb < m->held_memory_mb ? memory_mb : m->held_memory_mb;
    m->held_pids -= pids < m->held_pids ? pids : m->held_pids;
    /* admit() defers each start: nothing is called back from here */
    start_next(m);
}

int run_mgr_fits(const struct run_mgr *m, uint64_t memory_mb, uint64_t pids)
{
    const struct config *cfg = m->p.cfg;
    return m->used_memory_mb + m->held_memory_mb + memory_mb <= cfg->total_memory_mb &&
           m->used_pids + m->held_pids + pids <= cfg->total_pids;
}

static void job_fail(struct run_job *job, const struct bx_err *e)
{
    job->res->outcome = RUN_ERROR;
    job->res->error = *e;
    job_finish(job);
}

/* ---- bundle ---- */

/* Network "sandbox": the run's netns, veth and address, and its
 * resolv.conf bound read-only over the image's. */
static int setup_network(struct run_job *job, struct bx_err *err)
{
    if (job->req->network != RUN_NET_SANDBOX)
        return 0;
    if (net_run_setup(job->mgr->p.net, job->b.dir, job->b.dirfd, job->res->exec_id,
                      job->req->egress, job->req->negress, job->req->has_egress, &job->net,
                      err) < 0)
        return -1;
    return oci_bundle_add_mount(&job->b, "/etc/resolv.conf", net_run_resolv_path(job->net), 1, err);
}

/* The run's bundle: its overlay of the image, its inputs, its /output. */
static int prepare_bundle(struct run_job *job, struct bx_err *err)
{
    struct run_mgr *m = job->mgr;
    const struct config *cfg = m->p.cfg;
    struct oci_bundle_params bp = {.parent_dirfd = m->runs_dirfd,
                                   .parent_dir = m->runs_dir,
                                   .name = job->res->exec_id,
                                   .image_rootfs = job->img->rootfs,
                                   .upper_bytes = RUN_UPPER_BYTES,
                                   .upper_inodes = RUN_UPPER_INODES,
                                   .output_bytes = cfg->output_files_limit_bytes,
                                   .output_inodes = cfg->output_files_max * 2 + 64,
                                   .store = m->p.store,
                                   .files = job->req->files,
                                   .nfiles = job->req->nfiles,
                                   .inputs = job->req->inputs,
                                   .ninputs = job->req->ninputs};
    uint64_t in_bytes = 0;
    for (size_t i = 0; i < job->req->ninputs; i++)
        in_bytes += job->req->inputs[i].len;
    /* inline inputs land on the home's disk (issue 17): 507 as uploads */
    if (in_bytes && store_check_disk(m->runs_dirfd, NULL, in_bytes, cfg->min_free_disk_percent,
                                     "inputs", err) < 0)
        return -1;
    return oci_bundle_prepare(&job->b, &bp, err);
}

static int write_spec(struct run_job *job, struct bx_err *err)
{
    struct run_request *req = job->req;
    struct oci_bundle_spec s = {.args = req->cmd,
                                .env = req->env,
                                .image_env = job->img->env,
                                .cwd = req->cwd,
                                .image_workdir = job->img->working_dir,
                                .hostname = job->res->exec_id,
                                .nofile = req->limits.nofile,
                                .nproc = req->limits.pids_limit,
                                .tmp_size_mb = job->mgr->p.cfg->tmp_size_mb,
                                .netns_path = job->net ? net_run_netns_path(job->net) : NULL,
                                .host_network = req->network == RUN_NET_HOST,
                                .cgroups_path = job->cg ? cg_run_oci_path(job->cg) : NULL};
    return oci_bundle_write_spec(&job->b, &s, err);
}

/* ---- supervision ---- */

static void close_pipe(struct run_job *job, int *fdp)
{
    if (*fdp >= 0) {
        loop_del(job->mgr->p.loop, *fdp);
        bx_close(fdp);
    }
}

static void maybe_complete(struct run_job *job)
{
    if (job->state != JOB_RUNNING)
        return;
    if (job->exited && job->out_fd < 0 && job->err_fd < 0)
        job_finish(job);
}

static void on_killer_exit(void *arg, int status)
{
    struct run_job *job = arg;
    proc_free(&job->killer);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* the sandbox outlives the command otherwise: the client goes */
        bx_log_warn("%s: runsc kill failed (status %d)", job->name, status);
        if (job->proc)
            proc_kill(job->proc, SIGKILL);
    }
}

static void kill_sandbox(struct run_job *job)
{
    struct bx_err err;
    if (job->killed)
        return;
    job->killed = 1;
    /* Killing a `runsc exec` client leaves its command running inside:
     * a warm run ends the whole single-use sandbox instead (its init
     * too), and the exec client then returns. */
    bx_err_clear(&err);
    if (job->warm && job->proc && !job->exited && !job->mgr->stopping &&
        warm_runsc(job, "kill", on_killer_exit, &job->killer, &err) == 0)
        return;
    if (job->proc)
        proc_kill(job->proc, SIGKILL);
}

static void on_pipe(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct run_job *job = arg;
    int stream = fd == job->out_fd ? 1 : 2;
    int *fdp = stream == 1 ? &job->out_fd : &job->err_fd;
    char buf[READ_CHUNK];
    (void)l;
    /* A bounded number of reads per wake-up keeps one chatty sandbox from
     * starving the loop; level-triggered epoll brings us back. */
    for (int i = 0; i < 16; i++) {
        ssize_t n;
        /* Paused for a slow client; a hung-up pipe is read all the same
         * (it holds a bounded amount, and nothing else would read it). */
        if (job->paused && !(events & (EPOLLHUP | EPOLLERR)))
            return;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close_pipe(job, fdp);
            maybe_complete(job);
            return;
        }
        /* After a limit is hit the rest is read and dropped, so the sandbox
         * never blocks on a full pipe while it is being killed. */
        if ((job->res->outcome == RUN_OK || job->res->outcome == RUN_TIMEOUT) &&
            job->sink->write(job, stream, buf, (size_t)n) < 0) {
            job->res->outcome = RUN_OUTPUT_LIMIT;
            kill_sandbox(job);
        }
    }
}

static void on_drain_timeout(struct loop *l, void *arg)
{
    struct run_job *job = arg;
    (void)l;
    job->drain_timer = 0;
    /* Something still holds the pipes open after runsc exited: stop
     * waiting; whatever was read is the output. */
    close_pipe(job, &job->out_fd);
    close_pipe(job, &job->err_fd);
    maybe_complete(job);
}

static void job_on_exit(void *arg, int status)
{
    struct run_job *job = arg;
    job->exited = 1;
    job->wstatus = status;
    infeed_free(&job->in); /* nobody reads it any more */
    if (job->wall_timer) {
        loop_timer_cancel(job->mgr->p.loop, job->wall_timer);
        job->wall_timer = 0;
    }
    if (job->out_fd >= 0 || job->err_fd >= 0)
        job->drain_timer = loop_timer_add(job->mgr->p.loop, DRAIN_AFTER_EXIT_MS,
                                          on_drain_timeout, job);
    maybe_complete(job);
}

static void on_wall_clock(struct loop *l, void *arg)
{
    struct run_job *job = arg;
    (void)l;
    job->wall_timer = 0;
    if (job->res->outcome == RUN_OK) {
        job->res->outcome = RUN_TIMEOUT;
        /* The command is killed with SIGKILL: 128 + 9, as for any command
         * a signal ends (collect_exit keeps it, the outcome not being OK). */
        job->res->exit_code = 128 + SIGKILL;
    }
    kill_sandbox(job);
}

/* The run's cpuset pins the sandbox only until runsc has read its CPU
 * count from it; then the run may use any CPU (within its quota). */
#define UNPIN_POLL_MS 20
#define UNPIN_POLLS 1500
static void on_unpin(struct loop *l, void *arg)
{
    struct run_job *job = arg;
    struct bx_err err;
    int r;
    job->unpin_timer = 0;
    bx_err_clear(&err);
    r = job->cg ? cg_run_unpin_started(job->cg, &err) : 1;
    if (r < 0)
        bx_log_warn("%s: unpinning CPUs: %s", job->res->exec_id, err.msg);
    else if (r == 0 && ++job->unpin_polls < UNPIN_POLLS)
        job->unpin_timer = loop_timer_add(l, UNPIN_POLL_MS, on_unpin, job);
}

static int spawn_runsc(struct run_job *job, struct bx_err *err)
{
    struct run_mgr *m = job->mgr;
    const struct config *cfg = m->p.cfg;
    char root_arg[PATH_MAX + 16], log_arg[PATH_MAX + 16], bundle[PATH_MAX];
    char platform_arg[64], net_arg[32];
    char *argv[32];
    char *envp[] = {"PATH=" BX_DEFAULT_PATH, NULL};
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, in_child = -1;
    int join_fds[8];
    int njoin = 0;
    size_t a = 0;
    int ret = -1;
    struct proc_spec spec;

    snprintf(root_arg, sizeof(root_arg), "--root=%s/state", job->b.dir);
    snprintf(log_arg, sizeof(log_arg), "--log=%s/runsc.log", job->b.dir);
    snprintf(bundle, sizeof(bundle), "%s", job->b.dir);
    snprintf(platform_arg, sizeof(platform_arg), "--platform=%s", m->p.platform);
    /* sandbox: gVisor's own network stack on the run's veth (netns from the
     * spec); none: loopback only; host: the host's stack, no namespace. */
    snprintf(net_arg, sizeof(net_arg), "--network=%s",
             job->req->network == RUN_NET_HOST      ? "host"
             : job->req->network == RUN_NET_SANDBOX ? "sandbox"
                                                    : "none");
    argv[a++] = (char *)m->p.runsc;
    argv[a++] = root_arg;
    argv[a++] = log_arg;
    argv[a++] = platform_arg;
    argv[a++] = net_arg;
    if (cfg->runsc_debug)
        argv[a++] = "--debug";
    for (size_t i = 0; m->p.runsc_extra_flags[i] && a < 24; i++)
        argv[a++] = (char *)m->p.runsc_extra_flags[i];
    if (job->warm) {
        snprintf(bundle, sizeof(bundle), "%s/process.json", job->b.dir);
        argv[a++] = "exec";
        argv[a++] = "--process";
        argv[a++] = bundle;
    } else {
        argv[a++] = "run";
        argv[a++] = "--bundle";
        argv[a++] = bundle;
    }
    argv[a++] = job->res->exec_id;
    argv[a] = NULL;

    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "pipe2");
        goto out;
    }
    /* Only our ends are non-blocking: the sandbox writes to blocking pipes. */
    if (fcntl(outp[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(errp[0], F_SETFL, O_NONBLOCK) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fcntl");
        goto out;
    }
    fcntl(outp[0], F_SETPIPE_SZ, 1 << 20);
    /* stdin: fed from the loop as the command reads (infeed.h) */
    if (job->req->stdin_data) {
        infeed_init(&job->in, m->p.loop, job->req->stdin_len);
        if (infeed_pipe(&job->in, &in_child, err) < 0)
            goto out;
    }
    if (job->cg) {
        njoin = cg_run_procs_fds(job->cg, join_fds, (int)BX_ARRAY_LEN(join_fds), err);
        if (njoin < 0)
            goto out;
    }
    spec = (struct proc_spec){.path = m->p.runsc,
                              .argv = argv,
                              .envp = envp,
                              .stdin_fd = in_child,
                              .stdout_fd = outp[1],
                              .stderr_fd = errp[1],
                              .join_fds = join_fds,
                              .n_join_fds = njoin,
                              .cwd = job->b.dir,
                              /* Under memory pressure the kernel kills a
                               * sandbox (runsc, its sentry and gofer
                               * inherit this) before anything else. */
                              .oom_score_adj = RUNSC_OOM_SCORE_ADJ};
    if (job->net) {
        /* See net.h: runsc must not see /proc/sys/net (a private mount
         * namespace for it alone; Boxer switches back right after fork). */
        struct net_nsguard g;
        if (net_runsc_ns_enter(&g, err) < 0)
            goto out;
        ret = proc_spawn(m->p.loop, &spec, job_on_exit, job, &job->proc, err);
        net_runsc_ns_leave(&g);
        if (ret < 0)
            goto out;
        ret = -1;
    } else if (proc_spawn(m->p.loop, &spec, job_on_exit, job, &job->proc, err) < 0) {
        goto out;
    }
    if (job->cg && cg_run_cpu_list(job->cg) && !job->warm)
        job->unpin_timer = loop_timer_add(m->p.loop, UNPIN_POLL_MS, on_unpin, job);
    if (job->req->stdin_data) {
        bx_close(&in_child);
        if (infeed_put(&job->in, job->req->stdin_data, job->req->stdin_len, err) < 0) {
            kill_sandbox(job);
            goto out;
        }
        infeed_eof(&job->in);
        free(job->req->stdin_data); /* the feed has its copy */
        job->req->stdin_data = NULL;
    }
    job->out_fd = bx_steal_fd(&outp[0]);
    job->err_fd = bx_steal_fd(&errp[0]);
    if (loop_add(m->p.loop, job->out_fd, EPOLLIN, on_pipe, job, err) < 0 ||
        loop_add(m->p.loop, job->err_fd, EPOLLIN, on_pipe, job, err) < 0) {
        kill_sandbox(job);
        goto out;
    }
    ret = 0;
out:
    for (int i = 0; i < njoin; i++)
        close(join_fds[i]);
    bx_close(&outp[0]);
    bx_close(&outp[1]);
    bx_close(&errp[0]);
    bx_close(&errp[1]);
    bx_close(&in_child);
    return ret;
}

/* issue 16: the command into the warm sandbox the job adopted: the
 * process as the spec of a cold run would have it (env, cwd, uid,
 * rlimits), run by `runsc exec`. */
static void warm_start(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    struct run_request *req = job->req;
    struct bx_err err;
    struct oci_bundle_spec s = {.args = req->cmd,
                                .env = req->env,
                                .image_env = job->img->env,
                                .cwd = req->cwd,
                                .image_workdir = job->img->working_dir,
                                .nofile = req->limits.nofile,
                                .nproc = req->limits.pids_limit};
    bx_err_clear(&err);
    if (oci_bundle_write_process(&job->b, &s, "process.json", &err) < 0)
        goto fail;
    job->state = JOB_RUNNING;
    job->started_ms = bx_now_ms();
    if (spawn_runsc(job, &err) < 0)
        goto fail;
    job->wall_timer = loop_timer_add(m->p.loop,
                                     job->req->wall_clock_ms ? job->req->wall_clock_ms
                                                             : job->req->limits.wall_clock_secs * 1000,
                                     on_wall_clock, job);
    return;
fail:
    job->state = JOB_IMAGE;
    job_fail(job, &err);
}

static void on_image(void *arg, struct image *img, const struct bx_err *ierr)
{
    struct run_job *job = arg;
    struct run_mgr *m = job->mgr;
    struct bx_err err;

    job->iwait = NULL;
    bx_err_clear(&err);
    if (!img) {
        job->res->image_failed = 1;
        job_fail(job, ierr);
        return;
    }
    job->img = img;
    if (m->p.cgroups) {
        /* The host pids limit leaves room for gVisor's own tasks (see
         * config_run_host_pids); it is what the job holds of total_pids. */
        struct cg_limits cl = {job->req->limits.cpu_cores, job->req->limits.memory_mb << 20,
                               job->cost_pids};
        if (cg_run_create(m->p.cgroups, job->res->exec_id, &cl, &job->cg, &err) < 0)
            goto fail;
    }
    if (prepare_bundle(job, &err) < 0 || setup_network(job, &err) < 0 || write_spec(job, &err) < 0)
        goto fail;
    job->state = JOB_RUNNING;
    job->started_ms = bx_now_ms();
    if (spawn_runsc(job, &err) < 0)
        goto fail;
    job->wall_timer = loop_timer_add(m->p.loop,
                                     job->req->wall_clock_ms ? job->req->wall_clock_ms
                                                             : job->req->limits.wall_clock_secs * 1000,
                                     on_wall_clock, job);
    return;
fail:
    job->state = JOB_IMAGE;
    job_fail(job, &err);
}

static void job_start(struct loop *l, void *arg)
{
    struct run_job *job = arg;
    struct bx_err err;
    (void)l;
    bx_err_clear(&err);
    if (job->warm) {
        warm_start(job);
        return;
    }
    job->state = JOB_IMAGE;
    if (image_get(job->mgr->p.images, &job->req->ref, on_image, job, &job->iwait, &err) < 0)
        job_fail(job, &err);
}

/* The last error line runsc wrote to its log, if any. */
static int runsc_log_error(struct run_job *job, char *out, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    char *line, *save = NULL, *last = NULL;
    int found = 0;
    if (job->b.dirfd < 0 ||
        bx_read_file_at(job->b.dirfd, "runsc.log", 1u << 20, &text, &len, NULL) < 0)
        return 0;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, "\"level\":\"error\"") || strstr(line, "level=error") ||
            strncmp(line, "E", 1) == 0)
            last = line;
    if (last) {
        char *msg = strstr(last, "\"msg\":\"");
        if (msg) {
            char *end;
            msg += 7;
            end = strstr(msg, "\",\"");
            if (end)
                *end = '\0';
            snprintf(out, cap, "%s", msg);
        } else {
            snprintf(out, cap, "%s", last);
        }
        found = 1;
    }
    free(text);
    return found;
}

static void collect_exit(struct run_job *job)
{
    struct run_result *res = job->res;
    char msg[512];
    if (res->outcome != RUN_OK || !job->exited)
        return;
    if (WIFEXITED(job->wstatus)) {
        res->exit_code = WEXITSTATUS(job->wstatus);
        /* runsc exits 128 when it could not start the command at all; its
         * log says why.  A missing executable is the command's failure
         * (exit 127, like a shell); anything else is the runtime's (500). */
        /* runsc exec (a warm run) says "executing command" where runsc
         * run says "running container". */
        if (res->exit_code == 128 && runsc_log_error(job, msg, sizeof(msg)) &&
            (strstr(msg, "running container") ||
             (job->warm && strstr(msg, "executing command")))) {
            if (strstr(msg, "executable") || strstr(msg, "no such file")) {
                res->exit_code = 127;
                sbuf_appendf(&res->err, "boxer: %s\n", msg);
            } else {
                res->outcome = RUN_ERROR;
                bx_err_set(&res->error, BX_E_INTERNAL, 0, "sandbox failed to start: %s", msg);
            }
        }
    } else if (WIFSIGNALED(job->wstatus)) {
        res->outcome = RUN_ERROR;
        bx_err_set(&res->error, BX_E_INTERNAL, 0, "runsc was killed by signal %d", WTERMSIG(job->wstatus));
    }
}

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

static void teardown(struct run_job *job)
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
    close_pipe(job, &job->out_fd);
    close_pipe(job, &job->err_fd);
    infeed_free(&job->in);
    if (job->proc) {
        proc_free(&job->proc); /* kills and reaps in the background if still alive */
    }
    /* The netns (bind-mounted in the run dir) and the cgroup go after the
     * answer (cleanup_start); the usage is read now, for the answer. */
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
     * loop, so a child does it and on_capture_exit finishes the teardown. */
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
     * by job_complete: nobody can know this exec id any more. */
    job_complete(job);
}

/* 0: the capture child runs; -1: capture done (or failed) synchronously. */
static int start_capture(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    struct bx_err err;
    int keep[3];
    int n, r;
    bx_err_clear(&err);
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

static int warm_runsc(struct run_job *job, const char *what, proc_exit_cb cb,
                      struct proc **out, struct bx_err *err)
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
 * job_complete hands the result over and moves the job to m->teardowns;
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
    list_remove(&m->teardowns, job);
    m->nteardowns--;
    job_free(job);
    start_next(m);
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
        if (may_fork && warm_runsc(job, "delete", on_warm_deleted, &job->cleanup, &err) == 0)
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

static void cleanup_start(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    list_push(&m->teardowns, job);
    m->nteardowns++;
    if (!m->stopping) {
        job->cleanup_timer = loop_timer_add(m->p.loop, 1, on_cleanup_timer, job);
        if (job->cleanup_timer)
            return;
    }
    cleanup_work(job, 0);
}

/* Shutdown: whatever is pending is finished here, blocking. */
static void cleanup_now(struct run_job *job)
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

static void count_outcome(struct run_mgr *m, const struct run_result *r)
{
    switch (r->outcome) {
    case RUN_OK:
        if (r->oom_killed)
            m->stats.oom++;
        else if (r->exit_code == 0)
            m->stats.ok++;
        else
            m->stats.nonzero++;
        break;
    case RUN_TIMEOUT:
        m->stats.timeout++;
        break;
    case RUN_OUTPUT_LIMIT:
        m->stats.output_limit++;
        break;
    case RUN_ERROR:
        m->stats.error++;
        break;
    }
}

static void job_finish(struct run_job *job)
{
    if (job->state == JOB_DONE || job->state == JOB_CAPTURE)
        return;
    collect_exit(job);
    if (job->state == JOB_RUNNING) {
        job->res->wall_ms = bx_now_ms() - job->started_ms;
        if (job->res->wall_ms == 0)
            job->res->wall_ms = 1;
    }
    teardown(job);
    if (job->capture) {
        job->state = JOB_CAPTURE; /* on_capture_exit completes the job */
        return;
    }
    job_complete(job);
}

static void job_complete(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    struct run_result *res;
    job->state = JOB_DONE;
    if (job->res->oom_killed && job->res->outcome == RUN_OK && job->res->exit_code != 137)
        job->res->exit_code = 137;
    list_remove(&m->active, job);
    m->nactive--;
    m->used_memory_mb -= job->cost_memory_mb;
    m->used_pids -= job->cost_pids;
    count_outcome(m, job->res);
    res = bx_steal_ptr(&job->res);
    res->files = job->req->files;
    job->req->files = NULL;
    if (!job->cancelled && job->cb) {
        job->cb(job->cb_arg, res);
    } else {
        /* Nobody will ever learn this exec id: its outputs go whatever
         * persist says, its inputs when persist is false. */
        res->drop_outputs = 1;
        run_result_release(m, &res);
    }
    /* The budget and the slot are free again; the teardown slot is held
     * until the leftovers are gone. */
    cleanup_start(job);
    start_next(m);
}

void run_cancel(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    job->cancelled = 1;
    if (job->state == JOB_QUEUED) {
        if (job->prev)
            job->prev->next = job->next;
        else
            m->queue_head = job->next;
        if (job->next)
            job->next->prev = job->prev;
        else
            m->queue_tail = job->prev;
        m->nqueued--;
        if (!job->req->persist)
            discard_start(m, &job->req->files, NULL);
        job_free(job);
        /* A large job at the head may have held back smaller ones that
         * fit the budget now. */
        start_next(m);
        return;
    }
    if (job->state == JOB_RUNNING && !job->exited) {
        /* Finish once runsc is reaped, so nothing is torn down under a live
         * sandbox. */
        kill_sandbox(job);
        return;
    }
    job_finish(job);
}

void run_stats(const struct run_mgr *m, struct run_stats *st)
{
    *st = m->stats;
    st->running = m->nactive;
    st->queued = m->nqueued;
    st->runs_memory_mb = m->used_memory_mb;
    st->runs_pids = m->used_pids;
    st->held_memory_mb = m->held_memory_mb;
    st->held_pids = m->held_pids;
    st->pending_teardowns = m->nteardowns;
    {
        struct pool_stats ps;
        pool_stats(m->pool, &ps);
        st->pool_ready = ps.ready;
        st->pool_creating = ps.creating;
        st->pool_hits = ps.hits;
        st->pool_misses = ps.misses;
        st->pool_created = ps.created;
        st->pool_failed = ps.failed;
        st->pool_create_ms_last = ps.create_ms_last;
        st->pool_create_ms_sum = ps.create_ms_sum;
    }
}

void run_mgr_free(struct run_mgr **mp)
{
    struct run_mgr *m = *mp;
    if (!m)
        return;
    m->stopping = 1;
    pool_free(&m->pool); /* its ready sandboxes, blocking */
    while (m->queue_head)
        run_cancel(m->queue_head);
    while (m->active) {
        struct run_job *job = m->active;
        job->cancelled = 1;
        if (job->state == JOB_CAPTURE) {
            proc_free(&job->capture); /* killed */
            store_report_free(&job->capture_rep);
            job_complete(job);
            continue;
        }
        kill_sandbox(job);
        job->exited = 1;
        job_finish(job);
    }
    while (m->teardowns)
        cleanup_now(m->teardowns);
    /* Deletions still running are finished here, blocking: persist=false
     * files must not outlive a clean stop. */
    while (m->discards) {
        struct discard *d = m->discards;
        m->discards = d->next;
        proc_free(&d->proc);
        store_report_free(&d->rep);
        discard_work(d);
        discard_free(d);
    }
    bx_close(&m->runs_dirfd);
    free(m->runs_dir);
    free(m);
    *mp = NULL;
}
