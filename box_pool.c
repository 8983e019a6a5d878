/* Boxes made in advance (issue 16: warm_pool entries of kind "box").
 *
 * A run sandbox cannot become a box (runsc fixes root, mounts, hostname
 * and spec at `runsc create`, and a box differs in each), so this is a
 * second kind of pool: whole boxes made by the ordinary create path
 * (box.c) with an id drawn in advance, their disk made and mounted, the
 * sandbox created and started with the box init, all with the entry's
 * image, cpu, memory_mb, disk_size_gb and network.  Such a box is
 * `pooled`: it has no record on disk (box_store_save skips it, so after
 * a crash its directory, which has no box.json, is removed at the next
 * start, and restart_boxes never sees it), it is not listed, found or
 * counted as a box, and at shutdown its directory goes with its disk.
 * It holds its memory and pids in the budget runs and boxes share, as a
 * running box does; a box or run that does not fit makes ready ones give
 * way (box_pool_yield).
 *
 * A POST /v1/boxes whose image reference, cpu, memory_mb, disk_size_gb
 * and network equal an entry's, without volumes (bind mounts fixed at
 * create), adopts a ready one: the record fields (name, idle timeout) and
 * the exec-time defaults (env, workdir, user: box_exec.c reads them from
 * the box at each exec, nothing of them is in the sandbox's spec) are set,
 * the record is written and the box is a normal running box; a
 * replacement is made in the background.  A workdir other than the one
 * the box was made with must already exist in the image (a cold create
 * makes it before the sandbox starts; a directory made on the host under
 * a running sandbox's root is not reliably seen by it), else the create
 * goes cold. */
#include "box_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "imgref.h"
#include "log.h"
#include "run_internal.h"
#include "util.h"

#define BOX_POOL_RETRY_MS 5000 /* after a failed creation */
#define BOX_POOL_WAIT_MS 1000  /* the budget was full: look again */

static void pool_fill(struct loop *l, void *arg);

static void schedule(struct box_mgr *m)
{
    if (m->pool && !m->pool_stopping)
        loop_defer(m->p.loop, &m->pool_task, pool_fill, m);
}

static void on_retry(struct loop *l, void *arg)
{
    struct box_mgr *m = arg;
    (void)l;
    m->pool_retry_timer = 0;
    schedule(m);
}

static void arm_retry(struct box_mgr *m, uint64_t ms)
{
    if (!m->pool_retry_timer && !m->pool_stopping)
        m->pool_retry_timer = loop_timer_add(m->p.loop, ms, on_retry, m);
}

static struct box *ready_one(struct box_mgr *m)
{
    for (struct box *b = m->boxes; b; b = b->next)
        if (b->pooled && b->status == BOX_RUNNING && !b->cb && !b->removing)
            return b;
    return NULL;
}

/* The queue's head waits: ready boxes made in advance are deleted until
 * it fits (as the run pool's sandboxes, they never keep a run out). */
static void on_yield(struct loop *l, void *arg)
{
    struct box_mgr *m = arg;
    struct run_job *head;
    (void)l;
    if (m->pool_stopping || !m->p.runs || !(head = m->p.runs->queue_head))
        return;
    /* destroying one admits what fits at once (run_mgr_release): the
     * head is looked at again after each */
    while ((head = m->p.runs->queue_head) &&
           !run_mgr_fits(m->p.runs, head->cost_memory_mb, head->cost_pids)) {
        struct box *b = ready_one(m);
        if (!b)
            return;
        bx_log_info("box %s: pool: deleted to make room for a queued run", b->id);
        m->pool_yielded++;
        box_destroy_now(b);
    }
}

static void on_run_queued(void *arg)
{
    struct box_mgr *m = arg;
    if (!m->pool_stopping)
        loop_defer(m->p.loop, &m->pool_yield_task, on_yield, m);
}

int box_pool_init(struct box_mgr *m, struct bx_err *err)
{
    const struct config *cfg = m->p.cfg;
    size_t n = 0, k = 0;
    for (size_t i = 0; i < cfg->nwarm_pool; i++)
        n += config_pool_is_box(&cfg->warm_pool[i]) ? 1 : 0;
    if (!n)
        return 0;
    m->pool = calloc(n, sizeof(*m->pool));
    if (!m->pool)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    m->npool = n;
    for (size_t i = 0; i < cfg->nwarm_pool; i++) {
        const struct warm_pool_entry *w = &cfg->warm_pool[i];
        struct box_pool_entry *e;
        struct imgref ref;
        if (!config_pool_is_box(w))
            continue;
        e = &m->pool[k++];
        if (imgref_parse(w->image, strlen(w->image), &ref, err) < 0)
            return bx_err_wrap(err, "config: warm_pool[%zu].image", i);
        e->image = strdup(w->image);
        if (!e->image)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        /* the effective values of a create that gives these fields (box.c) */
        e->cpu = w->limits.cpu_cores > 0 ? w->limits.cpu_cores : cfg->box_defaults.cpu;
        if (e->cpu > cfg->max_limits.cpu_cores)
            e->cpu = cfg->max_limits.cpu_cores;
        e->memory_mb = w->limits.memory_mb ? w->limits.memory_mb : cfg->box_defaults.memory_mb;
        if (e->memory_mb > cfg->max_limits.memory_mb)
            e->memory_mb = cfg->max_limits.memory_mb;
        e->disk_gb = w->disk_size_gb ? w->disk_size_gb : cfg->box_defaults.disk_size_gb;
        if (e->disk_gb > cfg->max_disk_size_gb)
            return bx_err_set(err, BX_E_BAD_REQUEST, ERANGE,
                              "config: warm_pool[%zu].disk_size_gb is over max_disk_size_gb", i);
        e->network = w->network ? strcmp(w->network, "sandbox") == 0 : cfg->box_defaults.network;
        e->count = w->count;
    }
    if (m->p.runs && run_mgr_add_yielder(m->p.runs, on_run_queued, m, err) < 0)
        return -1;
    schedule(m);
    return 0;
}

void box_pool_free(struct box_mgr *m)
{
    m->pool_stopping = 1;
    if (m->pool && m->p.runs)
        run_mgr_remove_yielder(m->p.runs, on_run_queued, m);
    loop_defer_cancel(m->p.loop, &m->pool_yield_task);
    loop_defer_cancel(m->p.loop, &m->pool_task);
    if (m->pool_retry_timer)
        loop_timer_cancel(m->p.loop, m->pool_retry_timer);
    m->pool_retry_timer = 0;
    for (size_t i = 0; i < m->npool; i++)
        free(m->pool[i].image);
    free(m->pool);
    /* the pooled boxes themselves go with the others (box_mgr_free:
     * destroy_box removes their directories) */
    m->pool = NULL;
    m->npool = 0;
}

void box_pool_gone(struct box *b)
{
    struct box_mgr *m = b->m;
    if (!m->pool || b->pool_entry >= m->npool)
        return;
    if (m->pool[b->pool_entry].nalive)
        m->pool[b->pool_entry].nalive--;
    schedule(m);
}

static void on_made(void *arg, struct box *unused, const struct bx_err *err)
{
    struct box *b = arg;
    struct box_mgr *m = b->m;
    (void)unused;
    if (err) {
        struct bx_err e2;
        bx_log_warn("box %s: pool: making a box in advance failed: %s", b->id, err->msg);
        m->pool_failed++;
        bx_err_clear(&e2);
        /* deferred by box_remove (never inside this callback) */
        if (box_remove(b, 1, NULL, NULL, &e2) < 0)
            bx_log_error("box %s: pool: %s", b->id, e2.msg);
        /* not at once: a broken image would spin */
        arm_retry(m, BOX_POOL_RETRY_MS);
        return;
    }
    m->pool_created++;
    m->pool_create_ms_last = bx_now_ms() - b->pool_began_ms;
    m->pool_create_ms_sum += m->pool_create_ms_last;
}

static int make_one(struct box_mgr *m, size_t i)
{
    struct box_pool_entry *e = &m->pool[i];
    struct box_create_req req;
    struct bx_err err;
    struct box *b;
    memset(&req, 0, sizeof(req));
    bx_err_clear(&err);
    req.image = strdup(e->image);
    req.cpu = e->cpu;
    req.memory_mb = e->memory_mb;
    req.disk_size_gb = e->disk_gb;
    req.network = e->network;
    req.has_network = 1;
    b = req.image ? box_create_pooled(m, &req, i, on_made, &err) : NULL;
    box_create_req_free(&req);
    if (!b) {
        bx_log_warn("pool: a box of %s: %s", e->image, err.msg[0] ? err.msg : "out of memory");
        m->pool_failed++;
        arm_retry(m, BOX_POOL_RETRY_MS);
        return -1;
    }
    e->nalive++;
    return 0;
}

/* Makes what is missing, as far as the budget allows (runs and boxes
 * first: nothing is made while runs wait in the queue). */
static void pool_fill(struct loop *l, void *arg)
{
    struct box_mgr *m = arg;
    (void)l;
    if (!m->pool || m->pool_stopping || m->pool_retry_timer || !m->p.cgroups || !m->mkfs[0])
        return;
    for (size_t i = 0; i < m->npool; i++) {
        struct box_pool_entry *e = &m->pool[i];
        if (e->network && (!m->p.net || net_unavailable(m->p.net)))
            continue;
        while (e->nalive < e->count) {
            if (m->p.runs && (m->p.runs->queue_head ||
                              !run_mgr_fits(m->p.runs, e->memory_mb, box_host_pids_of(m)))) {
                arm_retry(m, BOX_POOL_WAIT_MS);
                return;
            }
            if (make_one(m, i) < 0)
                return;
        }
    }
}

static int same_ref(const struct imgref *a, const struct imgref *b)
{
    return strcmp(a->registry, b->registry) == 0 && strcmp(a->repository, b->repository) == 0 &&
           strcmp(a->tag, b->tag) == 0 && strcmp(a->digest, b->digest) == 0;
}

/* 1 when path (absolute) is a directory in b's root, no symlink followed. */
static int dir_in_root(const struct box *b, const char *path)
{
    char root[PATH_MAX + 16], comp[256];
    int fd, ok = 1;
    snprintf(root, sizeof(root), "%s/rootfs", b->dir);
    fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    for (const char *p = path; *p && ok;) {
        size_t n = 0;
        int next;
        while (*p == '/')
            p++;
        while (p[n] && p[n] != '/')
            n++;
        if (!n)
            break;
        if (n >= sizeof(comp) || (n == 2 && p[0] == '.' && p[1] == '.')) {
            ok = 0;
            break;
        }
        memcpy(comp, p, n);
        comp[n] = 0;
        p += n;
        next = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = next;
        if (fd < 0)
            ok = 0;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

static void on_adopted(struct loop *l, void *arg)
{
    (void)l;
    box_finish_op(arg);
}

struct box *box_pool_adopt(struct box_mgr *m, struct box_create_req *req, box_done_cb cb,
                           void *arg)
{
    const struct config *cfg = m->p.cfg;
    struct imgref ref;
    struct bx_err err;
    int known = 0;
    uint64_t nboxes = 0;
    struct box *b, **pp;

    bx_err_clear(&err);
    if (imgref_parse(req->image, strlen(req->image), &ref, &err) < 0)
        return NULL; /* the cold path reports it */
    for (b = m->boxes; b; b = b->next)
        if (!b->pooled && (b->status == BOX_CREATING || b->status == BOX_RUNNING ||
                           b->status == BOX_STOPPING))
            nboxes++;
    for (b = m->boxes; b; b = b->next) {
        struct box_pool_entry *e;
        struct imgref eref;
        if (!b->pooled || b->pool_entry >= m->npool)
            continue;
        e = &m->pool[b->pool_entry];
        if (imgref_parse(e->image, strlen(e->image), &eref, &err) < 0 || !same_ref(&eref, &ref))
            continue;
        known = 1;
        if (b->status != BOX_RUNNING || b->cb || b->removing || req->nvolumes ||
            req->network != e->network || req->cpu != e->cpu || req->memory_mb != e->memory_mb ||
            req->disk_size_gb != e->disk_gb)
            continue;
        if (req->workdir && strcmp(req->workdir, b->workdir) != 0 && !dir_in_root(b, req->workdir))
            continue;
        break;
    }
    /* at max_boxes the cold path answers 503 */
    if (!b || nboxes >= cfg->max_boxes) {
        if (known)
            m->pool_misses++;
        return NULL;
    }
    /* a box from now on */
    b->pooled = 0;
    if (m->pool[b->pool_entry].nalive)
        m->pool[b->pool_entry].nalive--;
    free(b->name);
    b->name = bx_steal_ptr(&req->name);
    bx_strv_free(&b->env);
    b->env = bx_steal_ptr(&req->env);
    if (req->workdir) {
        free(b->workdir);
        b->workdir = bx_steal_ptr(&req->workdir);
    }
    b->set_user = req->set_user;
    b->uid = req->uid;
    b->gid = req->gid;
    b->idle_secs = req->has_idle_timeout ? req->idle_timeout_secs : cfg->box_idle_timeout_secs;
    b->created = b->started = b->last_active = time(NULL);
    m->starts++;
    m->pool_hits++;
    /* newest first, as box_create links them */
    for (pp = &m->boxes; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    b->next = m->boxes;
    m->boxes = b;
    box_store_save(b);
    box_arm_idle(b);
    b->cb = cb;
    b->cb_arg = arg;
    loop_defer(m->p.loop, &b->task, on_adopted, b);
    schedule(m); /* the replacement */
    return b;
}

void box_pool_yield(struct box_mgr *m, uint64_t memory_mb, uint64_t pids)
{
    struct box *b;
    if (!m->p.runs)
        return;
    while (!run_mgr_fits(m->p.runs, memory_mb, pids) && (b = ready_one(m))) {
        bx_log_info("box %s: pool: deleted to make room", b->id);
        m->pool_yielded++;
        /* its cgroup is killed and its hold released at once */
        box_destroy_now(b);
    }
}
