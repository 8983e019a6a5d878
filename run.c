#define _GNU_SOURCE
#include "run_internal.h"
#include "run_outputs.h"

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
#include "runsc_ns.h"
#include "store.h"

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
        /* a spooled part's temp file goes with the request, however it ends */
        store_upload_abort(&r->inputs[i].spool);
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

static void job_start(struct loop *l, void *arg);
static void job_finish(struct run_job *job);
static void warm_start(struct run_job *job);

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
    if (p->cfg->nwarm_pool > 0 || p->cfg->warm_pool_auto > 0) {
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

void run_list_remove(struct run_job **head, struct run_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        *head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->next = job->prev = NULL;
}

void run_list_push(struct run_job **head, struct run_job *job)
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

void run_job_free(struct run_job *job)
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
 * run_job_complete).  The start runs from the loop: job_start may complete the
 * job at once (an image that cannot be pulled), and its callback must never
 * run inside run_submit (the caller may free what the callback frees, and
 * then touch it). */
static void admit(struct run_mgr *m, struct run_job *job)
{
    run_list_push(&m->active, job);
    m->nactive++;
    m->used_memory_mb += job->cost_memory_mb;
    m->used_pids += job->cost_pids;
    job->state = JOB_STARTING;
    loop_defer(m->p.loop, &job->start_task, job_start, job);
}

/* The queue's head waits: every other holder of the budget may give way
 * (each defers its work: nothing of it runs inside this call). */
static void yield_all(struct run_mgr *m)
{
    for (size_t i = 0; i < m->nyielders; i++)
        m->yielders[i].fn(m->yielders[i].arg);
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
    if (m->pool && !m->queue_head && !m->stopping && !req->v1_root) {
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
        yield_all(m);
    }
    if (out)
        *out = job;
    return 0;
}

void run_start_next(struct run_mgr *m)
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
    if (m->queue_head && !m->stopping)
        yield_all(m); /* their holds may be what the head waits for */
}

int run_mgr_add_yielder(struct run_mgr *m, void (*fn)(void *arg), void *arg,
                        struct bx_err *err)
{
    if (m->nyielders >= RUN_MGR_MAX_YIELDERS)
        return bx_err_set(err, BX_E_INTERNAL, ENOSPC, "run manager: too many yielders");
    m->yielders[m->nyielders].fn = fn;
    m->yielders[m->nyielders].arg = arg;
    m->nyielders++;
    return 0;
}

void run_mgr_remove_yielder(struct run_mgr *m, void (*fn)(void *arg), void *arg)
{
    for (size_t i = 0; i < m->nyielders; i++)
        if (m->yielders[i].fn == fn && m->yielders[i].arg == arg) {
            /* shift down: the others keep their order */
            memmove(&m->yielders[i], &m->yielders[i + 1],
                    (m->nyielders - i - 1) * sizeof(m->yielders[0]));
            m->nyielders--;
            return;
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
    run_start_next(m);
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
                                   .upper_bytes = job->req->v1_root ? job->req->root_bytes
                                                                    : RUN_UPPER_BYTES,
                                   /* one inode per 4 KiB of a writable root */
                                   .upper_inodes = job->req->v1_root
                                                       ? job->req->root_bytes / 4096 + RUN_UPPER_INODES
                                                       : RUN_UPPER_INODES,
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
                                .cgroups_path = job->cg ? cg_run_oci_path(job->cg) : NULL,
                                .set_user = req->v1_root,
                                .uid = req->uid,
                                .gid = req->gid,
                                .caps = req->uid == 0 ? oci_box_caps : NULL,
                                .root_writable = req->v1_root};
    return oci_bundle_write_spec(&job->b, &s, err);
}

/* ---- supervision ---- */

void run_close_pipe(struct run_job *job, int *fdp)
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

static void run_on_killer_exit(void *arg, int status)
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
        run_warm_runsc(job, "kill", run_on_killer_exit, &job->killer, &err) == 0)
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
            run_close_pipe(job, fdp);
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
    run_close_pipe(job, &job->out_fd);
    run_close_pipe(job, &job->err_fd);
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
static void run_on_unpin(struct loop *l, void *arg)
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
        job->unpin_timer = loop_timer_add(l, UNPIN_POLL_MS, run_on_unpin, job);
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
    struct runsc_ns_opts nso;

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
    /* A writable root is the host overlay on its bounded tmpfs, as a box's
     * is on its disk: the gofer writes there (ENOSPC at the bound), not
     * into a sentry overlay or filestore that no size bounds. */
    if (job->req->v1_root)
        argv[a++] = "--overlay2=none";
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
    /* runsc_ns.h: with networking runsc must not see /proc/sys/net, and
     * it may read the run's CPU count from a shadow of cpuset.cpus (not
     * for an exec into a warm sandbox, whose count is fixed). */
    runsc_ns_opts_for(&nso, job->net != NULL, job->warm ? NULL : job->cg);
    if (runsc_spawn(m->p.loop, &spec, &nso, job_on_exit, job, &job->proc, err) < 0)
        goto out;
    if (job->cg && cg_run_cpu_list(job->cg) && !job->warm)
        job->unpin_timer = loop_timer_add(m->p.loop, UNPIN_POLL_MS, run_on_unpin, job);
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

/* The command runs (runsc is spawned) under its wall-clock timer. */
static int job_launch(struct run_job *job, struct bx_err *err)
{
    job->state = JOB_RUNNING;
    job->started_ms = bx_now_ms();
    if (spawn_runsc(job, err) < 0)
        return -1;
    job->wall_timer = loop_timer_add(
        job->mgr->p.loop,
        job->req->wall_clock_ms ? job->req->wall_clock_ms : job->req->limits.wall_clock_secs * 1000,
        on_wall_clock, job);
    return 0;
}

/* issue 16: the command into the warm sandbox the job adopted: the
 * process as the spec of a cold run would have it (env, cwd, uid,
 * rlimits), run by `runsc exec`. */
static void warm_start(struct run_job *job)
{
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
    if (job_launch(job, &err) < 0)
        goto fail;
    return;
fail:
    job->state = JOB_IMAGE;
    job_fail(job, &err);
}

static void run_on_image(void *arg, struct image *img, const struct bx_err *ierr)
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
    if (job_launch(job, &err) < 0)
        goto fail;
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
    if (image_get(job->mgr->p.images, &job->req->ref, run_on_image, job, &job->iwait, &err) < 0)
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
    run_job_teardown(job);
    if (job->capture) {
        job->state = JOB_CAPTURE; /* on_capture_exit completes the job */
        return;
    }
    run_job_complete(job);
}

void run_job_complete(struct run_job *job)
{
    struct run_mgr *m = job->mgr;
    struct run_result *res;
    job->state = JOB_DONE;
    if (job->res->oom_killed && job->res->outcome == RUN_OK && job->res->exit_code != 137)
        job->res->exit_code = 137;
    run_list_remove(&m->active, job);
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
    run_cleanup_start(job);
    run_start_next(m);
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
        run_job_free(job);
        /* A large job at the head may have held back smaller ones that
         * fit the budget now. */
        run_start_next(m);
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
        st->pool_entries = ps.entries;
        st->pool_auto_entries = ps.auto_entries;
        st->pool_auto_created = ps.auto_created;
        st->pool_auto_retired = ps.auto_retired;
        st->pool_auto_hits = ps.auto_hits;
        st->pool_refreshed = ps.refreshed;
        st->pool_max_total = ps.max_total;
        st->pool_yielded = ps.yielded;
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
            run_job_complete(job);
            continue;
        }
        kill_sandbox(job);
        job->exited = 1;
        job_finish(job);
    }
    while (m->teardowns)
        run_cleanup_now(m->teardowns);
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
