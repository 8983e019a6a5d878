/* Warm pool (issue 16): see pool.h. */
#define _GNU_SOURCE
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "image.h"
#include "imgref.h"
#include "log.h"
#include "net.h"
#include "proc.h"
#include "run_internal.h"
#include "runsc_ns.h"

#define POOL_UPPER_BYTES (8u << 20) /* as run.c's RUN_UPPER_* */
#define POOL_UPPER_INODES 65536
#define POOL_OOM_SCORE_ADJ 500
#define POOL_UNPIN_POLL_MS 20
#define POOL_UNPIN_POLLS 1500
#define POOL_RETRY_MS 5000 /* after a failed creation */
#define POOL_DELETE_TIMEOUT_MS 15000
/* warm_pool_auto: automatic entries at most, and images followed toward one */
#define POOL_AUTO_MAX 16
#define POOL_CANDS 32
/* shutdown: `runsc delete` of this many sandboxes at once (each is ~1.7 s,
 * mostly waiting for the sandbox to die, little CPU) */
#define POOL_SHUTDOWN_PARALLEL 8

extern const unsigned char box_init_bin[] __attribute__((weak));
extern const unsigned long box_init_bin_len __attribute__((weak));

enum psb_state { PSB_IMAGE, PSB_CREATE, PSB_START, PSB_UNPIN, PSB_READY };

struct psb {
    struct pool *pool;
    struct psb *next;
    size_t entry;
    enum psb_state state;
    struct pool_sb sb;
    struct image_wait *iwait;
    struct proc *proc;
    uint64_t timer;
    unsigned polls;
    uint64_t began_ms;
    int dying; /* being destroyed: neither ready nor creating */
};

struct pentry {
    struct pool *pool;
    int used;      /* an entry (configured ones always are) */
    int automatic; /* made by warm_pool_auto; retired when idle */
    struct imgref ref;
    struct run_limits limits;
    enum run_network network;
    uint64_t count;
    uint64_t cost_memory_mb, cost_pids;
    size_t nready, ncreating;
    size_t nalive;         /* psbs of this entry, dying ones too: the slot is in use */
    uint64_t last_hit_ms;  /* automatic: since when idle (made or last hit) */
    uint64_t refresh_ms;   /* last check of a tag (tag_refresh_secs) */
    struct image_wait *refresh_wait;
};

/* An image (with limits and network) on its way to an automatic entry:
 * n pool-eligible cold runs so far, the last at last_ms. */
struct pcand {
    struct imgref ref;
    struct run_limits limits;
    enum run_network network;
    uint64_t n, last_ms;
};

struct pool {
    struct run_mgr *mgr;
    struct run_mgr_params rp;
    int runs_dirfd;
    const char *runs_dir;
    struct pentry *entries; /* configured ones first, then POOL_AUTO_MAX slots */
    size_t nentries;        /* slots: nconf + POOL_AUTO_MAX when warm_pool_auto */
    size_t nconf;
    uint64_t max_total;
    struct pcand cands[POOL_CANDS];
    struct psb *list;
    struct loop_task fill_task;
    struct loop_task yield_task;
    uint64_t retry_timer;
    uint64_t tick_timer; /* retirement of idle automatic entries, tag refresh */
    int stopping;
    size_t ncpus; /* Boxer's CPUs: fill only while runs leave one free */
    struct pool_stats st;
};

static void pool_fill(struct loop *l, void *arg);
static void arm_tick(struct pool *p);
static void pool_yield(void *arg);

static void schedule_fill(struct pool *p)
{
    if (!p->stopping)
        loop_defer(p->rp.loop, &p->fill_task, pool_fill, p);
}

int pool_new(struct pool **out, const struct pool_params *pp, struct bx_err *err)
{
    struct pool *p = calloc(1, sizeof(*p));
    const struct config *cfg = pp->mgr->p.cfg;
    if (!p)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    p->mgr = pp->mgr;
    p->rp = pp->mgr->p;
    {
        cpu_set_t cs;
        int n = sched_getaffinity(0, sizeof(cs), &cs) == 0 ? CPU_COUNT(&cs) : 1;
        p->ncpus = n > 0 ? (size_t)n : 1;
    }
    p->runs_dirfd = pp->runs_dirfd;
    p->runs_dir = pp->runs_dir;
    p->nconf = cfg->nwarm_pool;
    p->nentries = p->nconf + (cfg->warm_pool_auto ? POOL_AUTO_MAX : 0);
    p->max_total = config_warm_pool_max_total(cfg);
    p->entries = calloc(p->nentries + 1, sizeof(*p->entries));
    if (!p->entries) {
        free(p);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < p->nentries; i++)
        p->entries[i].pool = p;
    for (size_t i = 0; i < cfg->nwarm_pool; i++) {
        const struct warm_pool_entry *w = &cfg->warm_pool[i];
        struct pentry *e = &p->entries[i];
        if (config_pool_is_box(w))
            continue; /* boxes made in advance: box_pool.c */
        e->used = 1;
        if (imgref_parse(w->image, strlen(w->image), &e->ref, err) < 0) {
            free(p->entries);
            free(p);
            return bx_err_wrap(err, "config: warm_pool[%zu].image", i);
        }
        e->limits = cfg->defaults;
        if (w->limits.cpu_cores > 0)
            e->limits.cpu_cores = w->limits.cpu_cores;
        if (w->limits.memory_mb)
            e->limits.memory_mb = w->limits.memory_mb;
        if (w->limits.pids_limit)
            e->limits.pids_limit = w->limits.pids_limit;
        if (w->limits.nofile)
            e->limits.nofile = w->limits.nofile;
        e->network = w->network && strcmp(w->network, "sandbox") == 0 ? RUN_NET_SANDBOX
                                                                       : RUN_NET_NONE;
        e->count = w->count;
        e->cost_memory_mb = e->limits.memory_mb;
        e->cost_pids = config_run_host_pids(e->limits.pids_limit);
    }
    if (run_mgr_add_yielder(p->mgr, pool_yield, p, err) < 0) {
        free(p->entries);
        free(p);
        return -1;
    }
    *out = p;
    schedule_fill(p);
    return 0;
}

/* ---- one sandbox's life ---- */

static void psb_unlink(struct psb *s)
{
    struct psb **pp = &s->pool->list;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
}

static int runsc_argv(struct pool *p, const char *dir, enum run_network net, char *bufs[4],
                      char **argv, size_t cap)
{
    size_t a = 0;
    if (asprintf(&bufs[0], "--root=%s/state", dir) < 0 ||
        asprintf(&bufs[1], "--log=%s/runsc.log", dir) < 0 ||
        asprintf(&bufs[2], "--platform=%s", p->rp.platform) < 0 ||
        asprintf(&bufs[3], "--network=%s", net == RUN_NET_SANDBOX ? "sandbox" : "none") < 0)
        return -1;
    argv[a++] = (char *)p->rp.runsc;
    for (int i = 0; i < 4; i++)
        argv[a++] = bufs[i];
    if (p->rp.cfg->runsc_debug)
        argv[a++] = "--debug";
    for (size_t i = 0; p->rp.runsc_extra_flags[i] && a < cap - 8; i++)
        argv[a++] = (char *)p->rp.runsc_extra_flags[i];
    return (int)a;
}

/* s no longer counts as ready or creating (it is being destroyed). */
static void psb_uncount(struct psb *s)
{
    struct pentry *e = &s->pool->entries[s->entry];
    if (s->dying)
        return;
    s->dying = 1;
    if (s->state == PSB_READY)
        e->nready--;
    else
        e->ncreating--;
}

/* After `runsc delete`: the netns, cgroup, bundle and image reference,
 * then the budget hold. */
static void psb_rest(struct psb *s)
{
    struct pool *p = s->pool;
    struct pentry *e = &p->entries[s->entry];
    struct bx_err err;
    psb_uncount(s);
    net_run_free(&s->sb.net);
    if (s->sb.cg) {
        bx_err_clear(&err);
        if (cg_run_destroy(&s->sb.cg, &err) < 0 && s->sb.cg) {
            bx_log_warn("%s: pool: cgroup left for the next start: %s", s->sb.id, err.msg);
            cg_run_abandon(&s->sb.cg);
        }
    }
    oci_bundle_remove(&s->sb.b, p->runs_dirfd, s->sb.id);
    oci_bundle_free(&s->sb.b);
    if (s->sb.img)
        image_release(p->rp.images, s->sb.img);
    run_mgr_release(p->mgr, e->cost_memory_mb, e->cost_pids);
    e->nalive--;
    psb_unlink(s);
    free(s);
}

static void on_psb_deleted(void *arg, int status)
{
    struct psb *s = arg;
    proc_free(&s->proc);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bx_log_warn("%s: pool: runsc delete failed (status %d)", s->sb.id, status);
    psb_rest(s);
}

/* `runsc ... delete --force <id>` of s into argv (32 slots; bufs to free). */
static int delete_argv(struct psb *s, char *bufs[4], char **argv)
{
    struct pentry *e = &s->pool->entries[s->entry];
    int a = runsc_argv(s->pool, s->sb.b.dir, e->network, bufs, argv, 28);
    if (a <= 0)
        return -1;
    argv[a++] = "delete";
    argv[a++] = "--force";
    argv[a++] = s->sb.id;
    argv[a] = NULL;
    return a;
}

/* Kills and removes everything of s: `runsc delete` (1-2 s) in the
 * background when may_async (a failed creation, a retired entry, a moved
 * tag), blocking otherwise. */
static void psb_destroy(struct psb *s, int may_async)
{
    struct pool *p = s->pool;
    struct bx_err err;
    bx_err_clear(&err);
    psb_uncount(s);
    if (s->iwait)
        image_wait_cancel(&s->iwait);
    proc_free(&s->proc);
    if (s->timer) {
        loop_timer_cancel(p->rp.loop, s->timer);
        s->timer = 0;
    }
    if (s->state >= PSB_CREATE && s->sb.b.dir) {
        char *bufs[4] = {NULL, NULL, NULL, NULL};
        char *argv[32];
        char *envp[] = {"PATH=" BX_DEFAULT_PATH, NULL};
        int a = delete_argv(s, bufs, argv);
        int spawned = 0;
        if (a > 0) {
            struct proc_spec spec = {.path = p->rp.runsc, .argv = argv, .envp = envp,
                                     .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
            if (may_async &&
                proc_spawn(p->rp.loop, &spec, on_psb_deleted, s, &s->proc, &err) == 0)
                spawned = 1;
            else if (proc_run_sync(&spec, POOL_DELETE_TIMEOUT_MS, &err) < 0)
                bx_log_warn("%s: pool: runsc delete: %s", s->sb.id, err.msg);
        }
        for (int i = 0; i < 4; i++)
            free(bufs[i]);
        if (spawned)
            return;
    }
    psb_rest(s);
}

static void on_retry(struct loop *l, void *arg)
{
    struct pool *p = arg;
    (void)l;
    p->retry_timer = 0;
    schedule_fill(p);
}

static void psb_fail(struct psb *s, const struct bx_err *e)
{
    struct pool *p = s->pool;
    bx_log_warn("%s: pool: making a warm sandbox failed: %s", s->sb.id, e->msg);
    p->st.failed++;
    psb_destroy(s, 1);
    /* not at once: a broken image or runsc would spin */
    if (!p->retry_timer && !p->stopping)
        p->retry_timer = loop_timer_add(p->rp.loop, POOL_RETRY_MS, on_retry, p);
}

static void psb_ready(struct psb *s)
{
    struct pool *p = s->pool;
    struct pentry *e = &p->entries[s->entry];
    s->state = PSB_READY;
    e->ncreating--;
    e->nready++;
    p->st.created++;
    p->st.create_ms_last = bx_now_ms() - s->began_ms;
    p->st.create_ms_sum += p->st.create_ms_last;
}

static void pool_on_unpin(struct loop *l, void *arg)
{
    struct psb *s = arg;
    struct bx_err err;
    int r;
    s->timer = 0;
    bx_err_clear(&err);
    r = cg_run_unpin_started(s->sb.cg, &err);
    if (r < 0) {
        psb_fail(s, &err);
        return;
    }
    if (r == 0 && ++s->polls < POOL_UNPIN_POLLS) {
        s->timer = loop_timer_add(l, POOL_UNPIN_POLL_MS, pool_on_unpin, s);
        return;
    }
    psb_ready(s);
}

static int spawn_step(struct psb *s, const char *step, struct bx_err *err);

static void on_step_exit(void *arg, int status)
{
    struct psb *s = arg;
    struct bx_err err;
    bx_err_clear(&err);
    proc_free(&s->proc);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        bx_err_set(&err, BX_E_INTERNAL, 0, "runsc %s failed (status %d)",
                   s->state == PSB_CREATE ? "create" : "start", status);
        psb_fail(s, &err);
        return;
    }
    if (s->state == PSB_CREATE) {
        s->state = PSB_START;
        if (spawn_step(s, "start", &err) < 0)
            psb_fail(s, &err);
        return;
    }
    /* started: the sandbox has read its CPU count; unpin as run.c does */
    s->state = PSB_UNPIN;
    if (s->sb.cg && cg_run_cpu_list(s->sb.cg)) {
        s->timer = loop_timer_add(s->pool->rp.loop, 0, pool_on_unpin, s);
        if (s->timer)
            return;
    }
    psb_ready(s);
}

static int spawn_step(struct psb *s, const char *step, struct bx_err *err)
{
    struct pool *p = s->pool;
    struct pentry *e = &p->entries[s->entry];
    char *bufs[4] = {NULL, NULL, NULL, NULL};
    char *argv[32];
    char *envp[] = {"PATH=" BX_DEFAULT_PATH, NULL};
    int join_fds[8];
    int njoin = 0, ret = -1;
    int a = runsc_argv(p, s->sb.b.dir, e->network, bufs, argv, 28);
    struct proc_spec spec;
    struct runsc_ns_opts nso;

    if (a < 0) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    argv[a++] = (char *)step;
    if (strcmp(step, "create") == 0) {
        argv[a++] = "--bundle";
        argv[a++] = s->sb.b.dir;
    }
    argv[a++] = s->sb.id;
    argv[a] = NULL;
    if (s->sb.cg) {
        njoin = cg_run_procs_fds(s->sb.cg, join_fds, (int)BX_ARRAY_LEN(join_fds), err);
        if (njoin < 0) {
            njoin = 0;
            goto out;
        }
    }
    spec = (struct proc_spec){.path = p->rp.runsc,
                              .argv = argv,
                              .envp = envp,
                              .stdin_fd = -1,
                              .stdout_fd = -1,
                              .stderr_fd = -1,
                              .join_fds = join_fds,
                              .n_join_fds = njoin,
                              .cwd = s->sb.b.dir,
                              .oom_score_adj = POOL_OOM_SCORE_ADJ};
    runsc_ns_opts_for(&nso, s->sb.net != NULL, s->sb.cg);
    ret = runsc_spawn(p->rp.loop, &spec, &nso, on_step_exit, s, &s->proc, err);
out:
    for (int i = 0; i < njoin; i++)
        close(join_fds[i]);
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
    return ret;
}

static int write_init(struct psb *s, struct bx_err *err)
{
    int fd;
    if (!box_init_bin || !&box_init_bin_len || box_init_bin_len == 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOENT, "this build has no box init");
    fd = openat(s->sb.b.dirfd, "init", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0555);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "create init");
    if (bx_write_all(fd, box_init_bin, box_init_bin_len) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write init");
        close(fd);
        return -1;
    }
    if (close(fd) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "close init");
    return 0;
}

/* The entry's tag now names digest: its sandboxes made from another
 * digest are destroyed (in the background) and remade by the fill. */
static void drop_stale(struct pentry *e, const char *digest)
{
    struct pool *p = e->pool;
    size_t idx = (size_t)(e - p->entries);
    struct psb *next;
    for (struct psb *s = p->list; s; s = next) {
        next = s->next;
        if (s->entry != idx || s->dying || !s->sb.img || strcmp(s->sb.img->digest, digest) == 0)
            continue;
        bx_log_info("%s: pool: %s%s%s moved to %s: remade", s->sb.id, e->ref.repository,
                    e->ref.tag[0] ? ":" : "", e->ref.tag, digest);
        p->st.refreshed++;
        psb_destroy(s, 1);
    }
    schedule_fill(p);
}

static void pool_on_image(void *arg, struct image *img, const struct bx_err *ierr)
{
    struct psb *s = arg;
    struct pool *p = s->pool;
    struct pentry *e = &p->entries[s->entry];
    const struct config *cfg = p->rp.cfg;
    struct bx_err err;
    char init_path[PATH_MAX];
    char *args[] = {"/.boxer/init", NULL};
    struct oci_bundle_params bp;
    struct oci_bundle_spec os;

    s->iwait = NULL;
    bx_err_clear(&err);
    if (!img) {
        psb_fail(s, ierr);
        return;
    }
    s->sb.img = img;
    /* the tag was resolved again for this one (tag_refresh_secs): the
     * others of its entry must show the same content */
    if (!e->ref.digest[0])
        drop_stale(e, img->digest);
    if (p->rp.cgroups) {
        struct cg_limits cl = {e->limits.cpu_cores, e->limits.memory_mb << 20, e->cost_pids};
        if (cg_run_create_pinned(p->rp.cgroups, s->sb.id, &cl, &s->sb.cg, &err) < 0)
            goto fail;
    }
    bp = (struct oci_bundle_params){.parent_dirfd = p->runs_dirfd,
                                    .parent_dir = p->runs_dir,
                                    .name = s->sb.id,
                                    .image_rootfs = img->rootfs,
                                    .upper_bytes = POOL_UPPER_BYTES,
                                    .upper_inodes = POOL_UPPER_INODES,
                                    .output_bytes = cfg->output_files_limit_bytes,
                                    .output_inodes = cfg->output_files_max * 2 + 64,
                                    .store = p->rp.store};
    s->state = PSB_CREATE; /* from here psb_destroy runs `runsc delete` */
    if (oci_bundle_prepare(&s->sb.b, &bp, &err) < 0 || write_init(s, &err) < 0)
        goto fail;
    snprintf(init_path, sizeof(init_path), "%s/init", s->sb.b.dir);
    if (oci_bundle_add_mount(&s->sb.b, "/.boxer/init", init_path, 1, &err) < 0)
        goto fail;
    if (e->network == RUN_NET_SANDBOX) {
        if (net_run_setup(p->rp.net, s->sb.b.dir, s->sb.b.dirfd, s->sb.id, NULL, 0, 0, &s->sb.net,
                          &err) < 0 ||
            oci_bundle_add_mount(&s->sb.b, "/etc/resolv.conf", net_run_resolv_path(s->sb.net), 1,
                                 &err) < 0)
            goto fail;
    }
    os = (struct oci_bundle_spec){.args = args,
                                  .image_env = NULL,
                                  .cwd = "/",
                                  .hostname = s->sb.id,
                                  .nofile = e->limits.nofile,
                                  .nproc = e->limits.pids_limit,
                                  .tmp_size_mb = cfg->tmp_size_mb,
                                  .netns_path = s->sb.net ? net_run_netns_path(s->sb.net) : NULL,
                                  .cgroups_path = s->sb.cg ? cg_run_oci_path(s->sb.cg) : NULL};
    if (oci_bundle_write_spec(&s->sb.b, &os, &err) < 0 || spawn_step(s, "create", &err) < 0)
        goto fail;
    return;
fail:
    psb_fail(s, &err);
}

static int make_one(struct pool *p, size_t i)
{
    struct pentry *e = &p->entries[i];
    struct psb *s = calloc(1, sizeof(*s));
    char uuid[37];
    struct bx_err err;
    bx_err_clear(&err);
    if (!s || bx_uuid4(uuid, &err) < 0) {
        free(s);
        return -1;
    }
    s->pool = p;
    s->entry = i;
    s->state = PSB_IMAGE;
    s->began_ms = bx_now_ms();
    oci_bundle_init(&s->sb.b);
    /* as a cold run's: boxer-<node>-<uuid> (run.c) */
    snprintf(s->sb.id, sizeof(s->sb.id), "boxer-%s-%s", p->mgr->p.cfg->node_id, uuid);
    s->next = p->list;
    p->list = s;
    e->ncreating++;
    e->nalive++;
    run_mgr_hold(p->mgr, e->cost_memory_mb, e->cost_pids);
    if (image_get(p->rp.images, &e->ref, pool_on_image, s, &s->iwait, &err) < 0) {
        psb_fail(s, &err); /* sets the retry timer: fill stops */
        return -1;
    }
    return 0;
}

/* ---- automatic entries and tag refresh (a timer, off the hit path) ---- */

static int is_tag(const struct pentry *e)
{
    return !e->ref.digest[0];
}

/* Every tick_ms: automatic entries idle for warm_pool_auto_idle_secs are
 * retired; entries named by a tag are checked every tag_refresh_secs. */
static uint64_t tick_ms(const struct pool *p)
{
    const struct config *cfg = p->rp.cfg;
    uint64_t ms = 0;
    for (size_t i = 0; i < p->nentries; i++) {
        const struct pentry *e = &p->entries[i];
        uint64_t t = 0;
        if (!e->used)
            continue;
        if (e->automatic)
            t = cfg->warm_pool_auto_idle_secs * 1000 / 4;
        if (is_tag(e) && cfg->tag_refresh_secs &&
            (!t || cfg->tag_refresh_secs * 1000 < t))
            t = cfg->tag_refresh_secs * 1000;
        if (t && (!ms || t < ms))
            ms = t;
    }
    return ms && ms < 100 ? 100 : ms;
}

static void on_refresh_image(void *arg, struct image *img, const struct bx_err *ierr)
{
    struct pentry *e = arg;
    e->refresh_wait = NULL;
    if (!img) {
        bx_log_warn("pool: checking %s%s%s: %s", e->ref.repository, e->ref.tag[0] ? ":" : "",
                    e->ref.tag, ierr ? ierr->msg : "failed");
        return;
    }
    if (e->used)
        drop_stale(e, img->digest);
    image_release(e->pool->rp.images, img);
}

static void retire(struct pentry *e)
{
    struct pool *p = e->pool;
    size_t idx = (size_t)(e - p->entries);
    struct psb *next;
    bx_log_info("pool: %s%s%s: automatic entry retired (no hit for %llu s)", e->ref.repository,
                e->ref.tag[0] ? ":" : "", e->ref.tag,
                (unsigned long long)p->rp.cfg->warm_pool_auto_idle_secs);
    e->used = 0;
    if (e->refresh_wait)
        image_wait_cancel(&e->refresh_wait);
    p->st.auto_retired++;
    for (struct psb *s = p->list; s; s = next) {
        next = s->next;
        if (s->entry == idx && !s->dying)
            psb_destroy(s, 1);
    }
}

static void on_tick(struct loop *l, void *arg)
{
    struct pool *p = arg;
    const struct config *cfg = p->rp.cfg;
    uint64_t now = bx_now_ms();
    (void)l;
    p->tick_timer = 0;
    for (size_t i = 0; i < p->nentries; i++) {
        struct pentry *e = &p->entries[i];
        struct bx_err err;
        if (!e->used)
            continue;
        if (e->automatic && now - e->last_hit_ms >= cfg->warm_pool_auto_idle_secs * 1000) {
            retire(e);
            continue;
        }
        if (!is_tag(e) || !cfg->tag_refresh_secs || e->refresh_wait ||
            now - e->refresh_ms < cfg->tag_refresh_secs * 1000 || e->nready + e->ncreating == 0)
            continue;
        /* the image cache resolves the tag again once tag_refresh_secs
         * have passed (as for a cold run); a new digest is pulled, and
         * on_refresh_image drops what was made from the old one */
        e->refresh_ms = now;
        bx_err_clear(&err);
        if (image_get(p->rp.images, &e->ref, on_refresh_image, e, &e->refresh_wait, &err) < 0)
            bx_log_warn("pool: checking %s: %s", e->ref.repository, err.msg);
    }
    schedule_fill(p); /* re-arms the tick when still needed */
}

static void arm_tick(struct pool *p)
{
    uint64_t ms;
    if (p->tick_timer || p->stopping)
        return;
    ms = tick_ms(p);
    if (ms)
        p->tick_timer = loop_timer_add(p->rp.loop, ms, on_tick, p);
}

/* A cold run that a pool entry could have served (no inputs, no egress)
 * and that no entry has: one more towards an automatic entry. */
static void note_cold(struct pool *p, const struct run_request *req);

/* Makes what is missing, as far as the run budget allows (a sandbox in
 * the pool must never keep a run out: runs first, the pool gets what
 * is left). */
static void pool_fill(struct loop *l, void *arg)
{
    struct pool *p = arg;
    (void)l;
    uint64_t total = 0;
    if (p->stopping)
        return;
    arm_tick(p);
    if (p->retry_timer)
        return;
    for (size_t i = 0; i < p->nentries; i++)
        total += p->entries[i].nready + p->entries[i].ncreating;
    /* configured entries first (they come first), then automatic ones,
     * all together within warm_pool_max_total.  Not while runs occupy
     * every CPU: making a sandbox costs what a cold run costs, so filling
     * under saturation only slows the runs (bench/pool, concurrency 8 on 2
     * CPUs: 10.1-10.9 runs/s with the pool filling, 11.7-13.1 without);
     * each run's teardown kicks the fill again (pool_kick). */
    if (p->mgr->nactive >= p->ncpus)
        return;
    for (size_t i = 0; i < p->nentries; i++) {
        struct pentry *e = &p->entries[i];
        while (e->used && e->nready + e->ncreating < e->count && total < p->max_total &&
               !p->mgr->queue_head && run_mgr_fits(p->mgr, e->cost_memory_mb, e->cost_pids)) {
            if (make_one(p, i) < 0)
                return;
            total++;
        }
    }
}

void pool_kick(struct pool *p)
{
    if (p)
        schedule_fill(p);
}

/* ---- handing out ---- */

static int same_ref(const struct imgref *a, const struct imgref *b)
{
    return strcmp(a->registry, b->registry) == 0 && strcmp(a->repository, b->repository) == 0 &&
           strcmp(a->tag, b->tag) == 0 && strcmp(a->digest, b->digest) == 0;
}

static int same_key(const struct pentry *e, const struct imgref *ref,
                    const struct run_limits *l, enum run_network net)
{
    return same_ref(&e->ref, ref) && net == e->network && l->cpu_cores == e->limits.cpu_cores &&
           l->memory_mb == e->limits.memory_mb && l->pids_limit == e->limits.pids_limit &&
           l->nofile == e->limits.nofile;
}

static void note_cold(struct pool *p, const struct run_request *req)
{
    const struct config *cfg = p->rp.cfg;
    uint64_t now = bx_now_ms();
    struct pcand *c = NULL, *oldest = &p->cands[0];
    if (!cfg->warm_pool_auto || req->nfiles > 0 || req->has_egress)
        return;
    for (size_t i = 0; i < p->nentries; i++)
        if (p->entries[i].used &&
            same_key(&p->entries[i], &req->ref, &req->limits, req->network))
            return; /* an entry exists; it was just not ready */
    for (size_t i = 0; i < POOL_CANDS && !c; i++) {
        struct pcand *k = &p->cands[i];
        if (k->n && same_ref(&k->ref, &req->ref) && k->network == req->network &&
            k->limits.cpu_cores == req->limits.cpu_cores &&
            k->limits.memory_mb == req->limits.memory_mb &&
            k->limits.pids_limit == req->limits.pids_limit &&
            k->limits.nofile == req->limits.nofile)
            c = k;
        if (k->last_ms < oldest->last_ms)
            oldest = k;
    }
    /* "in a row": the streak ends when the image was idle as long as
     * would retire its entry */
    if (c && now - c->last_ms >= cfg->warm_pool_auto_idle_secs * 1000)
        c->n = 0;
    if (!c) {
        c = oldest; /* the least recently seen one gives way */
        memset(c, 0, sizeof(*c));
        c->ref = req->ref;
        c->limits = req->limits;
        c->network = req->network;
    }
    c->n++;
    c->last_ms = now;
    if (c->n < cfg->warm_pool_auto)
        return;
    for (size_t i = p->nconf; i < p->nentries; i++) {
        struct pentry *e = &p->entries[i];
        if (e->used || e->nalive)
            continue;
        e->used = 1;
        e->automatic = 1;
        e->ref = c->ref;
        e->limits = c->limits;
        e->network = c->network;
        e->count = 1; /* one hit at a time; its replacement follows each */
        e->cost_memory_mb = e->limits.memory_mb;
        e->cost_pids = config_run_host_pids(e->limits.pids_limit);
        e->last_hit_ms = now;
        e->refresh_ms = now;
        p->st.auto_created++;
        bx_log_info("pool: %s%s%s: automatic entry after %llu cold runs", e->ref.repository,
                    e->ref.tag[0] ? ":" : "", e->ref.tag, (unsigned long long)c->n);
        memset(c, 0, sizeof(*c));
        schedule_fill(p);
        return;
    }
    /* all POOL_AUTO_MAX slots taken: the streak stays, the next run retries */
}

struct pool_sb *pool_take(struct pool *p, const struct run_request *req)
{
    int image_known = 0;
    for (struct psb *s = p->list; s; s = s->next) {
        struct pentry *e = &p->entries[s->entry];
        if (!same_ref(&e->ref, &req->ref))
            continue;
        image_known = 1;
        /* Inputs are bind mounts that must exist at create; egress rules
         * are made with the netns: those runs go cold. */
        if (s->state != PSB_READY || s->dying || req->nfiles > 0 || req->ninputs > 0 ||
            req->has_egress ||
            req->network != e->network || req->limits.cpu_cores != e->limits.cpu_cores ||
            req->limits.memory_mb != e->limits.memory_mb ||
            req->limits.pids_limit != e->limits.pids_limit ||
            req->limits.nofile != e->limits.nofile)
            continue;
        {
            struct pool_sb *sb = malloc(sizeof(*sb));
            if (!sb)
                return NULL;
            *sb = s->sb;
            sb->entry = s->entry;
            psb_unlink(s);
            e->nready--;
            e->nalive--;
            run_mgr_release(p->mgr, e->cost_memory_mb, e->cost_pids);
            free(s);
            p->st.hits++;
            if (e->automatic) {
                p->st.auto_hits++;
                e->last_hit_ms = bx_now_ms();
            }
            schedule_fill(p); /* the replacement */
            return sb;
        }
    }
    if (image_known)
        p->st.misses++;
    note_cold(p, req);
    return NULL;
}

/* The queue's head waits: when the pool's budget holds are what keeps it
 * out, ready and creating sandboxes are deleted until it fits (a pool
 * sandbox never keeps a run out). */
static void on_yield(struct loop *l, void *arg)
{
    struct pool *p = arg;
    struct run_job *head = p->mgr->queue_head;
    uint64_t memory_mb, pids, mem_coming = 0, pids_coming = 0;
    struct psb *next;
    (void)l;
    if (!head || p->stopping)
        return;
    memory_mb = head->cost_memory_mb;
    pids = head->cost_pids;
    /* what sandboxes already being deleted will give back */
    for (struct psb *s = p->list; s; s = s->next)
        if (s->dying) {
            mem_coming += p->entries[s->entry].cost_memory_mb;
            pids_coming += p->entries[s->entry].cost_pids;
        }
    for (struct psb *s = p->list; s; s = next) {
        struct pentry *e = &p->entries[s->entry];
        next = s->next;
        if (run_mgr_fits(p->mgr, memory_mb > mem_coming ? memory_mb - mem_coming : 0,
                         pids > pids_coming ? pids - pids_coming : 0))
            return;
        if (s->dying)
            continue;
        mem_coming += e->cost_memory_mb;
        pids_coming += e->cost_pids;
        p->st.yielded++;
        bx_log_info("%s: pool: deleted to make room for a queued run", s->sb.id);
        /* the hold goes when `runsc delete` is done (psb_rest), which
         * starts the queued run; the fill waits while runs are queued */
        psb_destroy(s, 1);
    }
}

/* The run manager's yielder (run_mgr_add_yielder): from the loop, later. */
static void pool_yield(void *arg)
{
    struct pool *p = arg;
    if (!p->stopping)
        loop_defer(p->rp.loop, &p->yield_task, on_yield, p);
}

void pool_put_back(struct pool *p, struct pool_sb *sb)
{
    struct pentry *e = &p->entries[sb->entry];
    struct psb *s = calloc(1, sizeof(*s));
    if (!s) {
        /* cannot happen in practice; the crash sweep would get it */
        bx_log_error("%s: pool: out of memory putting a sandbox back", sb->id);
        free(sb);
        return;
    }
    s->pool = p;
    s->entry = sb->entry;
    s->state = PSB_READY;
    s->sb = *sb;
    s->next = p->list;
    p->list = s;
    e->nready++;
    e->nalive++;
    run_mgr_hold(p->mgr, e->cost_memory_mb, e->cost_pids);
    p->st.hits--;
    if (e->automatic)
        p->st.auto_hits--;
    free(sb);
}

void pool_sb_free(struct pool_sb **sb)
{
    free(*sb);
    *sb = NULL;
}

void pool_stats(const struct pool *p, struct pool_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!p)
        return;
    *st = p->st;
    st->max_total = p->max_total;
    for (size_t i = 0; i < p->nentries; i++) {
        if (p->entries[i].used) {
            st->entries++;
            st->auto_entries += p->entries[i].automatic ? 1 : 0;
        }
        st->ready += p->entries[i].nready;
        st->creating += p->entries[i].ncreating;
    }
}

/* Shutdown: `runsc delete` of every sandbox, POOL_SHUTDOWN_PARALLEL at a
 * time (one after the other took ~1.7 s each). */
static void delete_all(struct pool *p)
{
    size_t n = 0, k = 0;
    struct proc_spec *specs;
    char *(*bufs)[4];
    char *(*argvs)[32];
    int *statuses;
    char *envp[] = {"PATH=" BX_DEFAULT_PATH, NULL};
    struct psb **who;

    for (struct psb *s = p->list; s; s = s->next)
        n++;
    specs = calloc(n + 1, sizeof(*specs));
    bufs = calloc(n + 1, sizeof(*bufs));
    argvs = calloc(n + 1, sizeof(*argvs));
    statuses = calloc(n + 1, sizeof(*statuses));
    who = calloc(n + 1, sizeof(*who));
    if (!specs || !bufs || !argvs || !statuses || !who) {
        /* out of memory: one at a time, as before */
        while (p->list)
            psb_destroy(p->list, 0);
        goto out;
    }
    for (struct psb *s = p->list; s; s = s->next) {
        psb_uncount(s);
        if (s->iwait)
            image_wait_cancel(&s->iwait);
        proc_free(&s->proc); /* an async delete still running: again below */
        if (s->timer) {
            loop_timer_cancel(p->rp.loop, s->timer);
            s->timer = 0;
        }
        if (s->state < PSB_CREATE || !s->sb.b.dir)
            continue;
        if (delete_argv(s, bufs[k], argvs[k]) < 0)
            continue;
        specs[k] = (struct proc_spec){.path = p->rp.runsc, .argv = argvs[k], .envp = envp,
                                      .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
        who[k++] = s;
    }
    if (k)
        proc_run_sync_many(specs, k, POOL_SHUTDOWN_PARALLEL, POOL_DELETE_TIMEOUT_MS, statuses);
    for (size_t i = 0; i < k; i++) {
        if (statuses[i] < 0 || !WIFEXITED(statuses[i]) || WEXITSTATUS(statuses[i]) != 0)
            bx_log_warn("%s: pool: runsc delete failed (status %d)", who[i]->sb.id, statuses[i]);
    }
out:
    for (size_t i = 0; bufs && i < n; i++)
        for (int j = 0; j < 4; j++)
            free(bufs[i][j]);
    free(specs);
    free(bufs);
    free(argvs);
    free(statuses);
    free(who);
}

void pool_free(struct pool **pp)
{
    struct pool *p = *pp;
    if (!p)
        return;
    p->stopping = 1;
    run_mgr_remove_yielder(p->mgr, pool_yield, p);
    loop_defer_cancel(p->rp.loop, &p->fill_task);
    loop_defer_cancel(p->rp.loop, &p->yield_task);
    if (p->retry_timer)
        loop_timer_cancel(p->rp.loop, p->retry_timer);
    if (p->tick_timer)
        loop_timer_cancel(p->rp.loop, p->tick_timer);
    for (size_t i = 0; i < p->nentries; i++)
        if (p->entries[i].refresh_wait)
            image_wait_cancel(&p->entries[i].refresh_wait);
    delete_all(p);
    while (p->list)
        psb_rest(p->list);
    free(p->entries);
    free(p);
    *pp = NULL;
}
