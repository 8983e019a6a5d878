/* Image pulls: the supervised children (skopeo copy, umoci raw unpack,
 * sync) with their cgroups and stderr, the size bound while they run, the
 * stages from layout to installed blob, and the queue of pulls waiting for
 * a slot.  See image.c for the overview. */
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image_internal.h"
#include "log.h"
#include "sha256.h"
#include "store.h"

#define TREE_DEPTH_MAX 200
#define LAYOUT_TAG "img"
#define REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"
#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
/* skopeo's view of its download directory (tmp/<pull>/dl), bind-mounted
 * in its own mount namespace: the real path lies below Boxer's 0700 home,
 * which PULL_UID cannot search. */
#define PULL_BIND "/tmp"
#define AUTH_FILE_MAX ((size_t)1 << 20)
/* How often a running pull's disk use is checked against image_max_bytes. */
#define SIZE_CHECK_MS 250
/* While umoci unpacks, the tree is walked (at most this often) only once
 * the file system's free space dropped by more than the limit. */
#define SIZE_WALK_MIN_MS 1000
#define CG_RETRY_MS 500

/* ------------------------------------------------------------------ children */

static void tail_add(struct pull *p, const char *b, size_t n)
{
    if (n >= STDERR_TAIL) {
        memcpy(p->tail, b + (n - STDERR_TAIL), STDERR_TAIL);
        p->tail_len = STDERR_TAIL;
        return;
    }
    if (p->tail_len + n > STDERR_TAIL) {
        size_t drop = p->tail_len + n - STDERR_TAIL;
        memmove(p->tail, p->tail + drop, p->tail_len - drop);
        p->tail_len -= drop;
    }
    memcpy(p->tail + p->tail_len, b, n);
    p->tail_len += n;
}

/* Reads what the pipe holds now, at most `rounds` reads.  Returns 1 at EOF
 * or on an error (the fd is done), 0 otherwise. */
static int drain_stderr(struct pull *p, int rounds)
{
    char buf[4096];
    while (rounds-- > 0) {
        ssize_t n = read(p->errfd, buf, sizeof(buf));
        if (n > 0) {
            tail_add(p, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : 1;
    }
    return 0;
}

static void close_stderr(struct pull *p)
{
    if (p->errfd >= 0) {
        loop_del(p->ic->loop, p->errfd);
        bx_close(&p->errfd);
    }
}

static void on_child_stderr(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct pull *p = arg;
    (void)l;
    (void)events;
    if (fd != p->errfd)
        return;
    if (drain_stderr(p, 16))
        close_stderr(p);
}

/* The last non-empty line of the child's stderr, made printable.  skopeo's
 * logrus lines (time=... level=fatal msg="...") are reduced to the msg. */
static void last_line(const struct pull *p, char *out, size_t cap)
{
    size_t end = p->tail_len, start, o = 0;
    const char *s, *m;
    size_t len;

    while (end > 0 && (p->tail[end - 1] == '\n' || p->tail[end - 1] == '\r' ||
                       p->tail[end - 1] == ' ' || p->tail[end - 1] == '\t'))
        end--;
    start = end;
    while (start > 0 && p->tail[start - 1] != '\n')
        start--;
    s = p->tail + start;
    len = end - start;
    m = memmem(s, len, "msg=\"", 5);
    if (m) {
        len -= (size_t)(m + 5 - s);
        s = m + 5;
        if (len > 0 && s[len - 1] == '"')
            len--;
    }
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (m && c == '\\' && i + 1 < len && s[i + 1] == '"')
            continue; /* logrus quoting: \" -> " */
        out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (cap)
        out[o] = '\0';
}

static void on_child_exit(void *arg, int status);
static void on_size_tick(struct loop *l, void *arg);

static const char *stage_name(enum stage st)
{
    return st == STAGE_SKOPEO ? "skopeo" : st == STAGE_UMOCI ? "umoci" : "sync";
}

/* ------------------------------------------------------------------ pull cgroups */

/* config_validate makes it positive; 0 (a hand-made config) is no bound. */
static uint64_t image_max(const struct image_cache *ic)
{
    return ic->cfg->image_max_bytes ? ic->cfg->image_max_bytes : UINT64_MAX;
}

static void on_cg_retry(struct loop *l, void *arg)
{
    struct image_cache *ic = arg;
    struct cg_retry **pp = &ic->cg_retry;
    (void)l;
    ic->cg_retry_timer = 0;
    while (*pp) {
        struct cg_retry *r = *pp;
        struct bx_err e;
        bx_err_clear(&e);
        if (cg_run_destroy(&r->cg, &e) < 0 && r->cg && ++r->tries < 20) {
            pp = &r->next;
            continue;
        }
        if (r->cg || e.msg[0]) {
            /* Left for cg_cleanup_stale at the next start. */
            bx_log_warn("image: giving up removing a pull cgroup: %s", e.msg);
            cg_run_abandon(&r->cg);
        }
        *pp = r->next;
        free(r);
    }
    if (ic->cg_retry)
        ic->cg_retry_timer = loop_timer_add(ic->loop, CG_RETRY_MS, on_cg_retry, ic);
}

/* Kills whatever is left in the current child's cgroup and removes it;
 * one still busy (a process not yet gone after SIGKILL) is retried from a
 * timer. */
static void pull_cg_drop(struct pull *p)
{
    struct image_cache *ic = p->ic;
    struct cg_retry *r;
    struct bx_err e;

    if (!p->cg)
        return;
    bx_err_clear(&e);
    if (cg_run_destroy(&p->cg, &e) == 0)
        return;
    if (!p->cg) {
        bx_log_warn("image: cannot remove the cgroup of a pull: %s", e.msg);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        cg_run_abandon(&p->cg);
        return;
    }
    r->cg = bx_steal_ptr(&p->cg);
    r->next = ic->cg_retry;
    ic->cg_retry = r;
    if (!ic->cg_retry_timer)
        ic->cg_retry_timer = loop_timer_add(ic->loop, CG_RETRY_MS, on_cg_retry, ic);
}

/* skopeo and umoci each run in a cgroup of their own (memory and pids
 * limits from the config; CPU not limited below the host's count), named
 * after the pull so cg_cleanup_stale removes leftovers of a crash. */
static int pull_cg_create(struct pull *p, enum stage st, int *fds, int max, struct bx_err *err)
{
    struct image_cache *ic = p->ic;
    const struct config *cfg = ic->cfg;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct cg_limits lim;
    char name[CG_NAME_MAX + 1];
    int n;

    if (!ic->cg || st == STAGE_SYNC)
        return 0;
    lim.cpu_cores = cores > 0 ? (double)cores : 1.0;
    lim.memory_bytes = (cfg->pull_memory_mb ? cfg->pull_memory_mb : 1024) << 20;
    lim.pids_max = cfg->pull_pids_limit ? cfg->pull_pids_limit : 512;
    snprintf(name, sizeof(name), "%s-%s", p->tmpname, stage_name(st));
    if (cg_run_create(ic->cg, name, &lim, &p->cg, err) < 0)
        return bx_err_wrap(err, "cgroup for %s", stage_name(st));
    n = cg_run_procs_fds(p->cg, fds, max, err);
    if (n < 0)
        pull_cg_drop(p);
    return n;
}

static int spawn_stage(struct pull *p, enum stage st, const char *path, const char **argv,
                       struct bx_err *err)
{
    struct image_cache *ic = p->ic;
    struct proc_spec spec;
    int fds[2] = {-1, -1}, join[CG_MAX_PROCS_FDS], njoin = 0;

    if (!path[0])
        return bx_err_set(err, BX_E_INTERNAL, ENOENT, "%s not found in PATH", argv[0]);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "pipe2");
    /* Only our end is non-blocking; the child keeps ordinary stdio. */
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fcntl");
        goto fail;
    }
    njoin = pull_cg_create(p, st, join, (int)BX_ARRAY_LEN(join), err);
    if (njoin < 0) {
        njoin = 0;
        goto fail;
    }
    memset(&spec, 0, sizeof(spec));
    spec.path = path;
    spec.argv = (char *const *)argv;
    spec.envp = ic->env;
    spec.stdin_fd = -1;
    spec.stdout_fd = -1;
    spec.stderr_fd = fds[1];
    spec.cwd = p->tmppath;
    spec.join_fds = join;
    spec.n_join_fds = njoin;
    if (st != STAGE_SYNC) {
        /* No single file may outgrow the whole image: a huge layer (or a
         * decompression bomb) stops at its first write past the limit,
         * whatever the size timer has seen so far. */
        spec.fsize_limit = image_max(ic);
    }
    if (st == STAGE_SKOPEO) {
        /* skopeo talks to the network and parses what registries send:
         * it runs as nobody, sees its own directory (and nothing of our
         * home) at PULL_BIND, and can write nowhere else we care about. */
        spec.cwd = p->dlpath;
        spec.envp = p->skenv;
        if (geteuid() == 0) {
            spec.cwd_bind = PULL_BIND;
            spec.set_ids = 1;
            spec.uid = PULL_UID;
            spec.gid = PULL_GID;
        }
    }
    p->stage = st;
    p->tail_len = 0;
    if (proc_spawn(ic->loop, &spec, on_child_exit, p, &p->proc, err) < 0)
        goto fail;
    bx_close(&fds[1]);
    for (int i = 0; i < njoin; i++)
        bx_close(&join[i]);
    njoin = 0;
    if (loop_add(ic->loop, fds[0], EPOLLIN, on_child_stderr, p, err) < 0) {
        proc_free(&p->proc);
        goto fail;
    }
    p->errfd = fds[0];
    if (st != STAGE_SYNC && !p->size_timer) {
        p->size_timer = loop_timer_add(ic->loop, SIZE_CHECK_MS, on_size_tick, p);
        if (!p->size_timer) {
            proc_free(&p->proc);
            close_stderr(p);
            pull_cg_drop(p);
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        }
    }
    return 0;
fail:
    for (int i = 0; i < njoin; i++)
        bx_close(&join[i]);
    pull_cg_drop(p);
    bx_close(&fds[0]);
    bx_close(&fds[1]);
    return -1;
}

/* ------------------------------------------------------------------ pull: size bound */

/* Disk use (st_blocks) of the tree at fd (owned), without following
 * anything; entries that vanish meanwhile (the tree is being written) are
 * skipped, and nesting is capped. */
static uint64_t du_fd(int fd, int depth)
{
    uint64_t total = 0;
    struct dirent *de;
    DIR *d;

    if (depth > TREE_DEPTH_MAX) {
        close(fd);
        return 0;
    }
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        uint64_t b;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        b = (uint64_t)st.st_blocks * 512u;
        total = total + b < total ? UINT64_MAX : total + b;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                b = du_fd(sub, depth + 1);
                total = total + b < total ? UINT64_MAX : total + b;
            }
        }
    }
    closedir(d);
    return total;
}

static uint64_t du_at(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? 0 : du_fd(fd, 0);
}

static void pull_fail(struct pull *p, struct bx_err *e);

static void fail_too_big(struct pull *p, const char *what)
{
    struct bx_err e;
    bx_err_set(&e, BX_E_INTERNAL, EFBIG,
               "pulling %.300s: the image's %s is larger than image_max_bytes (%llu bytes)", p->ref,
               what, (unsigned long long)image_max(p->ic));
    pull_fail(p, &e);
}

static uint64_t fs_avail(int fd)
{
    struct statvfs sv;
    if (fstatvfs(fd, &sv) < 0)
        return 0;
    return (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
}

/* While skopeo downloads, its directory (a few blobs) is measured on every
 * tick.  While umoci unpacks, a walk of the tree would cost more, so it
 * only happens once the file system lost more than the limit since umoci
 * started (other writers can only make that happen sooner). */
static void on_size_tick(struct loop *l, void *arg)
{
    struct pull *p = arg;
    uint64_t max = image_max(p->ic), now = bx_now_ms();
    (void)l;
    p->size_timer = 0;
    if (!p->proc)
        return;
    if (p->stage == STAGE_SKOPEO) {
        if (du_at(p->dlfd, ".") > max) {
            fail_too_big(p, "download");
            return;
        }
    } else if (p->stage == STAGE_UMOCI) {
        uint64_t avail = fs_avail(p->tmpfd);
        if (p->fs_avail0 > avail && p->fs_avail0 - avail > max &&
            now - p->last_walk_ms >= SIZE_WALK_MIN_MS) {
            p->last_walk_ms = now;
            if (du_at(p->tmpfd, "rootfs") > max) {
                fail_too_big(p, "unpacked filesystem");
                return;
            }
        }
    } else {
        return;
    }
    p->size_timer = loop_timer_add(p->ic->loop, SIZE_CHECK_MS, on_size_tick, p);
}

/* ------------------------------------------------------------------ pull: finish */

void image_pull_free(struct pull *p)
{
    struct image_cache *ic = p->ic;
    if (p->timer)
        loop_timer_cancel(ic->loop, p->timer);
    if (p->size_timer)
        loop_timer_cancel(ic->loop, p->size_timer);
    /* The child's group first, then whatever else is in its cgroup. */
    proc_free(&p->proc);
    pull_cg_drop(p);
    close_stderr(p);
    bx_close(&p->dlfd);
    bx_close(&p->tmpfd);
    if (p->tmpname[0])
        image_tmp_remove(ic, p->tmpname, 0);
    free(p->tmppath);
    free(p->dlpath);
    free(p->src);
    free(p->skenv[1]);
    free(p->skenv[2]);
    free(p->config_json);
    free(p);
}

static unsigned max_pulls(const struct image_cache *ic)
{
    return ic->cfg->max_concurrent_pulls ? (unsigned)ic->cfg->max_concurrent_pulls : 2;
}

static void queue_remove(struct image_cache *ic, struct pull *p)
{
    struct pull *prev = NULL;
    for (struct pull *q = ic->queue; q; prev = q, q = q->qnext) {
        if (q != p)
            continue;
        if (prev)
            prev->qnext = q->qnext;
        else
            ic->queue = q->qnext;
        if (ic->queue_tail == p)
            ic->queue_tail = prev;
        p->qnext = NULL;
        return;
    }
}

/* Takes p out of the cache's lists (and its slot, when it had one). */
static void pull_unlink(struct pull *p)
{
    struct image_cache *ic = p->ic;
    for (struct pull **pp = &ic->pulls; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (!p->launched)
        queue_remove(ic, p);
    else if (ic->active > 0)
        ic->active--;
}

static int pull_launch(struct pull *p, struct bx_err *err);

/* Starts queued pulls while slots are free, oldest first.  A pull that
 * cannot start fails through its waiters' callbacks (from the loop). */
static void pull_pump(struct image_cache *ic)
{
    if (ic->pumping)
        return;
    ic->pumping = 1;
    while (ic->queue && ic->active < max_pulls(ic)) {
        struct pull *p = ic->queue;
        struct bx_err e;
        queue_remove(ic, p);
        p->launched = 1;
        ic->active++;
        bx_log_info("image: pull of %s starts after waiting %llu ms", p->ref,
                  (unsigned long long)(bx_now_ms() - p->started_ms));
        bx_err_clear(&e);
        if (pull_launch(p, &e) < 0) {
            bx_err_wrap(&e, "pulling %.300s", p->ref);
            pull_fail(p, &e);
        }
    }
    ic->pumping = 0;
}

/* Nobody waits for p any more: its children are killed, its cgroups and
 * partial files removed, and the next queued pull gets the slot. */
void image_pull_cancel(struct pull *p)
{
    struct image_cache *ic = p->ic;
    pull_unlink(p);
    bx_log_info("image: pull of %s cancelled: no request waits for it any more%s", p->ref,
              p->launched ? "" : " (it was queued)");
    image_pull_free(p);
    pull_pump(ic);
}

/* Ends a pull: hex is the installed digest, or NULL with ferr on failure.
 * Every waiter gets its result through the loop. */
static void pull_finish(struct pull *p, const char *hex, const struct bx_err *ferr)
{
    struct image_cache *ic = p->ic;
    struct image_wait *now = NULL, *w;
    const char *use_hex = hex;
    char keep[HEX_LEN + 1] = "";

    pull_unlink(p);
    ic->st.pull_ms_total += bx_now_ms() - p->started_ms;
    if (hex) {
        ic->st.pulls_ok++;
        memcpy(keep, hex, HEX_LEN + 1);
        bx_log_info("image: pulled %s as sha256:%s in %llu ms", p->ref, hex,
                  (unsigned long long)(bx_now_ms() - p->started_ms));
    } else {
        ic->st.pulls_failed++;
        bx_log_warn("image: %s", ferr->msg);
        /* A tag past tag_refresh_secs whose registry is unreachable still
         * has a usable image: serve it rather than fail the run. */
        if (p->stale[0] && image_blob_ready(ic, p->stale)) {
            use_hex = p->stale;
            bx_log_info("image: using the cached sha256:%s for %s", p->stale, p->ref);
        }
    }
    while ((w = p->waiters) != NULL) {
        image_wait_unlink(&p->waiters, w);
        if (use_hex) {
            if (image_hand_out(ic, use_hex, &w->img, &w->err) < 0)
                w->img = NULL;
        } else {
            w->err = *ferr;
        }
        if (image_schedule(ic, w) < 0)
            image_wait_link(&now, w);
    }
    if (hex)
        image_evict(ic, keep);
    image_pull_free(p);
    pull_pump(ic);
    /* Only when no timer could be allocated: we are in a loop callback
     * here, never inside image_get, so a direct call keeps the contract. */
    while ((w = now) != NULL) {
        image_wait_unlink(&now, w);
        image_deliver_now(w);
    }
}

static void pull_fail(struct pull *p, struct bx_err *e)
{
    if (e->status != BX_E_INSUFFICIENT_STORAGE)
        e->status = BX_E_INTERNAL;
    pull_finish(p, NULL, e);
}

/* The free-disk floor (min_free_disk_percent) holds for pulls too: checked
 * before the download and after each stage; a pull that crossed it fails
 * with 507 and what it wrote is removed with its tmp directory. */
static int pull_disk_check(const struct pull *p, struct bx_err *err)
{
    return store_check_disk(-1, p->ic->cfg->home, 0, p->ic->cfg->min_free_disk_percent,
                            "pulling an image", err);
}

/* ------------------------------------------------------------------ pull: stages */

static int put_strv(struct json_writer *w, const char *key, const struct json_value *v,
                    int nullable, struct bx_err *err)
{
    json_w_key(w, key);
    if (!v || v->type == JSON_NULL) {
        if (nullable) {
            json_w_null(w);
        } else {
            json_w_arr_begin(w);
            json_w_arr_end(w);
        }
        return 0;
    }
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "image config: %s is not a list of strings", key);
    json_w_arr_begin(w);
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *s = &v->u.arr.items[i];
        if (!image_json_cstr(s))
            return bx_err_set(err, BX_E_INTERNAL, EINVAL, "image config: %s is not a list of strings", key);
        json_w_str(w, s->u.str.s, s->u.str.len);
    }
    json_w_arr_end(w);
    return 0;
}

static int put_str(struct json_writer *w, const char *key, const struct json_value *v,
                   struct bx_err *err)
{
    json_w_key(w, key);
    if (!v || v->type == JSON_NULL) {
        json_w_null(w);
        return 0;
    }
    if (!image_json_cstr(v))
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "image config: %s is not a string", key);
    json_w_str(w, v->u.str.s, v->u.str.len);
    return 0;
}

/* From the layout skopeo wrote: the manifest digest of tag "img" and the
 * parts of the image config a run needs, normalised into p->config_json. */
static int read_layout(struct pull *p, struct bx_err *err)
{
    struct json_doc *index = NULL, *manifest = NULL, *config = NULL;
    const struct json_value *ms, *cfgv, *c;
    const char *dg = NULL, *cdg;
    char chex[HEX_LEN + 1], path[HEX_LEN + 16];
    struct json_writer w;
    struct sbuf sb;
    int lfd = -1, ret = -1;

    sbuf_init(&sb, IMAGE_JSON_MAX);
    lfd = openat(p->tmpfd, "dl/layout", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open image layout");
        goto out;
    }
    if (image_read_json_at(lfd, "index.json", IMAGE_JSON_MAX, &index, err) < 0)
        goto out;
    ms = json_get(json_doc_root(index), "manifests");
    for (size_t i = 0; ms && ms->type == JSON_ARRAY && i < ms->u.arr.n; i++) {
        const struct json_value *m = &ms->u.arr.items[i];
        const char *name =
            image_json_cstr(json_get(json_get(m, "annotations"), REF_NAME_ANNOTATION));
        if (name && strcmp(name, LAYOUT_TAG) == 0) {
            const char *mt = image_json_cstr(json_get(m, "mediaType"));
            if (!mt || strcmp(mt, OCI_MANIFEST) != 0) {
                bx_err_set(err, BX_E_INTERNAL, EINVAL, "unsupported manifest type %.100s",
                           mt ? mt : "(none)");
                goto out;
            }
            dg = image_json_cstr(json_get(m, "digest"));
            break;
        }
    }
    if (!dg || image_digest_to_hex(dg, strlen(dg), p->hex) < 0) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "image layout has no sha256 manifest for the pulled image");
        goto out;
    }
    snprintf(path, sizeof(path), "blobs/sha256/%s", p->hex);
    if (image_read_json_at(lfd, path, IMAGE_JSON_MAX, &manifest, err) < 0)
        goto out;
    cdg = image_json_cstr(json_get(json_get(json_doc_root(manifest), "config"), "digest"));
    if (!cdg || image_digest_to_hex(cdg, strlen(cdg), chex) < 0) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "image manifest has no sha256 config digest");
        goto out;
    }
    snprintf(path, sizeof(path), "blobs/sha256/%s", chex);
    if (image_read_json_at(lfd, path, IMAGE_JSON_MAX, &config, err) < 0)
        goto out;
    cfgv = json_doc_root(config);
    if (!cfgv || cfgv->type != JSON_OBJECT) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "image config is not a JSON object");
        goto out;
    }
    c = json_get(cfgv, "config"); /* absent: an image with no defaults */
    if (c && c->type != JSON_OBJECT && c->type != JSON_NULL) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "image config: config is not an object");
        goto out;
    }
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    if (put_strv(&w, "Env", json_get(c, "Env"), 0, err) < 0 ||
        put_strv(&w, "Entrypoint", json_get(c, "Entrypoint"), 1, err) < 0 ||
        put_strv(&w, "Cmd", json_get(c, "Cmd"), 1, err) < 0 ||
        put_str(&w, "WorkingDir", json_get(c, "WorkingDir"), err) < 0 ||
        put_str(&w, "User", json_get(c, "User"), err) < 0)
        goto out;
    json_w_obj_end(&w);
    if (w.failed) {
        bx_err_set(err, BX_E_INTERNAL, E2BIG, "image config too large");
        goto out;
    }
    p->config_json = sbuf_steal(&sb, &p->config_len);
    ret = 0;
out:
    if (ret < 0 && err)
        err->status = BX_E_INTERNAL;
    sbuf_free(&sb);
    json_doc_free(&index);
    json_doc_free(&manifest);
    json_doc_free(&config);
    bx_close(&lfd);
    return ret;
}

/* Disk usage of the unpacked tree (st_blocks, hard links counted per name).
 * The tree is untrusted: nothing is followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW)
 * and depth is capped.  Device nodes are deleted: an image has no business
 * shipping them (the runtime provides /dev) and a root-owned device node in
 * our cache is a hazard on the host.  Takes ownership of fd. */
static int tree_walk(int fd, int depth, uint64_t *total, struct bx_err *err)
{
    struct dirent *de;
    DIR *d;
    int ret = 0;

    if (depth > TREE_DEPTH_MAX) {
        close(fd);
        return bx_err_set(err, BX_E_INTERNAL, ELOOP, "image filesystem nests deeper than %d directories",
                          TREE_DEPTH_MAX);
    }
    d = fdopendir(fd);
    if (!d) {
        bx_err_sys(err, BX_E_INTERNAL, "read image filesystem");
        close(fd);
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        uint64_t b;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            ret = bx_err_sys(err, BX_E_INTERNAL, "stat in image filesystem");
            break;
        }
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                ret = bx_err_sys(err, BX_E_INTERNAL, "remove device node from image");
                break;
            }
            continue;
        }
        b = (uint64_t)st.st_blocks * 512u;
        *total = *total + b < *total ? UINT64_MAX : *total + b;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                ret = bx_err_sys(err, BX_E_INTERNAL, "open directory in image filesystem");
                break;
            }
            if ((ret = tree_walk(sub, depth + 1, total, err)) < 0)
                break;
        }
    }
    if (ret == 0 && !de && errno != 0)
        ret = bx_err_sys(err, BX_E_INTERNAL, "read image filesystem");
    closedir(d);
    return ret;
}

static int write_u64_file(int dirfd, const char *name, uint64_t v, struct bx_err *err)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)v);
    return bx_write_file_atomic_at(dirfd, name, buf, (size_t)n, 0600, err);
}

/* Moves tmp/<pull>/rootfs into blobs/<hex>/ with config.json and size, then
 * writes `ready` last; finally the refs entry.  When the digest is already
 * ready (another reference, or another pull that finished first), the new
 * rootfs is simply dropped with the tmp directory. */
static int install(struct pull *p, struct bx_err *err)
{
    struct image_cache *ic = p->ic;
    char ready[HEX_LEN + 16];
    int bfd = -1, ret = -1, n;

    if (!image_blob_ready(ic, p->hex)) {
        if (!p->config_json) {
            bx_err_set(err, BX_E_INTERNAL, EINVAL, "internal: no image config");
            goto out;
        }
        if (mkdirat(p->tmpfd, "blob", 0700) < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "mkdir blob");
            goto out;
        }
        bfd = openat(p->tmpfd, "blob", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bfd < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "open blob");
            goto out;
        }
        if (renameat(p->tmpfd, "rootfs", bfd, "rootfs") < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "move rootfs");
            goto out;
        }
        if (bx_write_file_atomic_at(bfd, "config.json", p->config_json, p->config_len, 0600, err) <
                0 ||
            write_u64_file(bfd, "size", p->size, err) < 0 || image_fsync_dir(bfd, "blob", err) < 0)
            goto out;
        /* A directory without `ready` is a leftover of a failed install. */
        if (image_discard_at(ic, ic->blobs_fd, p->hex, err) < 0)
            goto out;
        if (renameat(p->tmpfd, "blob", ic->blobs_fd, p->hex) < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "install image");
            goto out;
        }
        if (image_fsync_dir(ic->blobs_fd, "blobs", err) < 0)
            goto out;
        n = snprintf(ready, sizeof(ready), "sha256:%s\n", p->hex);
        if (bx_write_file_atomic_at(bfd, "ready", ready, (size_t)n, 0600, err) < 0 ||
            image_fsync_dir(bfd, p->hex, err) < 0)
            goto out;
        ic->st.cached_images++;
    }
    if (image_ref_write(ic, p->key, p->ref, p->hex, err) < 0)
        goto out;
    ret = 0;
out:
    bx_close(&bfd);
    return ret;
}

static void install_and_finish(struct pull *p)
{
    struct bx_err e;
    char hex[HEX_LEN + 1];
    bx_err_clear(&e);
    if (install(p, &e) < 0) {
        bx_err_wrap(&e, "pulling %s: caching the image", p->ref);
        pull_fail(p, &e);
        return;
    }
    memcpy(hex, p->hex, sizeof(hex));
    pull_finish(p, hex, NULL);
}

static int start_umoci(struct pull *p, struct bx_err *err)
{
    const char *argv[8];
    int n = 0;
    argv[n++] = "umoci";
    argv[n++] = "raw";
    argv[n++] = "unpack";
    if (geteuid() != 0)
        argv[n++] = "--rootless";
    argv[n++] = "--image";
    argv[n++] = "dl/layout:" LAYOUT_TAG; /* relative to the child's cwd, tmp/<pull> */
    argv[n++] = "rootfs";
    argv[n] = NULL;
    p->fs_avail0 = fs_avail(p->tmpfd);
    p->last_walk_ms = 0;
    return spawn_stage(p, STAGE_UMOCI, p->ic->umoci, argv, err);
}

/* `sync -f` flushes the file system holding the new rootfs in a child, so
 * `ready` never describes files still in the page cache only, and the loop
 * never waits for the disk. */
static int start_sync(struct pull *p, struct bx_err *err)
{
    const char *argv[] = {"sync", "-f", "rootfs", NULL};
    return spawn_stage(p, STAGE_SYNC, p->ic->sync_bin, argv, err);
}

static void on_child_exit(void *arg, int status)
{
    struct pull *p = arg;
    struct bx_err e;
    const char *tool = stage_name(p->stage);

    bx_err_clear(&e);
    proc_free(&p->proc);
    /* Nothing the tool left behind (a hostile registry's doing) runs on
     * while the next stage reads its output. */
    pull_cg_drop(p);
    if (p->size_timer) {
        loop_timer_cancel(p->ic->loop, p->size_timer);
        p->size_timer = 0;
    }
    if (p->errfd >= 0) {
        drain_stderr(p, 64);
        close_stderr(p);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[400];
        last_line(p, line, sizeof(line));
        /* RLIMIT_FSIZE: SIGXFSZ, or EFBIG where the tool ignores it (Go). */
        if (p->stage != STAGE_SYNC &&
            ((WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) ||
             memmem(p->tail, p->tail_len, "file too large", 14))) {
            fail_too_big(p, p->stage == STAGE_SKOPEO ? "download" : "unpacked filesystem");
            return;
        }
        if (WIFSIGNALED(status))
            bx_err_set(&e, BX_E_INTERNAL, 0, "pulling %.300s: %s killed by signal %d%s%s", p->ref, tool,
                       WTERMSIG(status), line[0] ? ": " : "", line);
        else
            bx_err_set(&e, BX_E_INTERNAL, 0, "pulling %.300s: %s failed (exit %d)%s%s", p->ref, tool,
                       WEXITSTATUS(status), line[0] ? ": " : "", line);
        pull_fail(p, &e);
        return;
    }
    if (pull_disk_check(p, &e) < 0) {
        bx_err_wrap(&e, "pulling %.300s", p->ref);
        pull_fail(p, &e);
        return;
    }
    switch (p->stage) {
    case STAGE_SKOPEO:
        if (du_at(p->dlfd, ".") > image_max(p->ic)) {
            fail_too_big(p, "download");
            return;
        }
        if (read_layout(p, &e) < 0) {
            bx_err_wrap(&e, "pulling %.300s", p->ref);
            pull_fail(p, &e);
            return;
        }
        /* Same content already unpacked: share that rootfs. */
        if (image_blob_ready(p->ic, p->hex)) {
            install_and_finish(p);
            return;
        }
        if (start_umoci(p, &e) < 0) {
            bx_err_wrap(&e, "pulling %.300s", p->ref);
            pull_fail(p, &e);
        }
        return;
    case STAGE_UMOCI: {
        int fd = openat(p->tmpfd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        p->size = 0;
        if (fd < 0) {
            bx_err_sys(&e, BX_E_INTERNAL, "open unpacked rootfs");
        } else if (tree_walk(fd, 0, &p->size, &e) == 0) {
            if (p->size > image_max(p->ic)) {
                fail_too_big(p, "unpacked filesystem");
                return;
            }
            if (!p->ic->sync_bin[0]) {
                install_and_finish(p);
                return;
            }
            if (start_sync(p, &e) == 0)
                return;
        }
        bx_err_wrap(&e, "pulling %.300s", p->ref);
        pull_fail(p, &e);
        return;
    }
    case STAGE_SYNC:
        install_and_finish(p);
        return;
    }
}

static void on_pull_timeout(struct loop *l, void *arg)
{
    struct pull *p = arg;
    struct bx_err e;
    (void)l;
    p->timer = 0;
    bx_err_set(&e, BX_E_INTERNAL, ETIMEDOUT, "image pull timed out after %llu s: %.300s",
               (unsigned long long)p->ic->cfg->pull_timeout_secs, p->ref);
    pull_fail(p, &e);
}

/* ------------------------------------------------------------------ pull: start */

static int listed(const struct str_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i] && strcmp(l->items[i], s) == 0)
            return 1;
    return 0;
}

/* The host (and optional path prefix) of a mirror URL, e.g.
 * "http://127.0.0.1:5000/" -> "127.0.0.1:5000".  The config is the
 * operator's, but the result lands in skopeo's argv, so it is still held
 * to a strict alphabet. */
static int mirror_host(const char *url, char *out, size_t cap, int *plain_http)
{
    const char *h;
    size_t len;
    if (strncmp(url, "http://", 7) == 0) {
        h = url + 7;
        *plain_http = 1;
    } else if (strncmp(url, "https://", 8) == 0) {
        h = url + 8;
        *plain_http = 0;
    } else {
        return -1;
    }
    len = strlen(h);
    while (len > 0 && h[len - 1] == '/')
        len--;
    if (len == 0 || len >= cap || h[0] == '-' || h[0] == '/' || memmem(h, len, "..", 2) ||
        memmem(h, len, "//", 2))
        return -1;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == ':' || c == '/' || c == '[' || c == ']'))
            return -1;
    }
    memcpy(out, h, len);
    out[len] = '\0';
    return 0;
}

static int pull_source(struct image_cache *ic, const struct imgref *ref, char *src, size_t cap,
                       int *insecure, struct bx_err *err)
{
    const struct config *cfg = ic->cfg;
    char mhost[512];
    const char *host = ref->registry;
    int n;

    *insecure = 0;
    for (size_t i = 0; i < cfg->nmirrors; i++) {
        if (!cfg->mirrors[i].registry || strcmp(cfg->mirrors[i].registry, ref->registry) != 0)
            continue;
        if (!cfg->mirrors[i].url ||
            mirror_host(cfg->mirrors[i].url, mhost, sizeof(mhost), insecure) < 0)
            return bx_err_set(err, BX_E_INTERNAL, EINVAL, "config registry_mirrors.%.100s: unusable URL",
                              ref->registry);
        host = mhost;
        break;
    }
    if (listed(&cfg->insecure_registries, ref->registry) || listed(&cfg->insecure_registries, host))
        *insecure = 1;
    /* containers/image refuses a tag together with a digest: the digest
     * alone names the content. */
    if (ref->digest[0])
        n = snprintf(src, cap, "docker://%s/%s@%s", host, ref->repository, ref->digest);
    else
        n = snprintf(src, cap, "docker://%s/%s:%s", host, ref->repository,
                     ref->tag[0] ? ref->tag : "latest");
    if (n < 0 || (size_t)n >= cap)
        return bx_err_set(err, BX_E_BAD_REQUEST, ENAMETOOLONG, "image reference too long");
    return 0;
}

/* skopeo's own signature policy, so the pull does not depend on (or
 * break because of) the host's /etc/containers/policy.json.  Accepting
 * unsigned images is deliberate: the registry (or the configured mirror) is
 * the operator's trust boundary, and skopeo still verifies every manifest
 * and blob against its digest. */
static const char skopeo_policy[] = "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}\n";

/* Copies registry_auth_file into skopeo's directory, readable by PULL_UID
 * only (the original may be readable by root alone); it goes with the
 * pull's directory. */
static int copy_auth_file(struct pull *p, int root, struct bx_err *err)
{
    const char *path = p->ic->cfg->registry_auth_file;
    char *buf = NULL;
    size_t len = 0;
    int ret = -1;

    if (bx_read_file_at(AT_FDCWD, path, AUTH_FILE_MAX, &buf, &len, err) < 0) {
        bx_err_wrap(err, "registry_auth_file %.200s", path);
        goto out;
    }
    if (bx_write_file_atomic_at(p->dlfd, "auth.json", buf, len, 0600, err) < 0)
        goto out;
    if (root && fchownat(p->dlfd, "auth.json", PULL_UID, PULL_GID, AT_SYMLINK_NOFOLLOW) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "chown auth.json");
        goto out;
    }
    ret = 0;
out:
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
    return ret;
}

/* Gives a queued pull its directory and starts skopeo:
 *   tmp/<pull>/      root, 0700: umoci's rootfs/, install's blob/
 *   tmp/<pull>/dl/   PULL_UID, 0700: skopeo's cwd (PULL_BIND in its view),
 *                    policy.json, auth.json, layout/ */
static int pull_launch(struct pull *p, struct bx_err *err)
{
    struct image_cache *ic = p->ic;
    const char *argv[16];
    char uuid[37];
    int n = 0, root = geteuid() == 0;

    p->started_ms = bx_now_ms();
    /* Too little disk already: fail before anything is written (507). */
    if (pull_disk_check(p, err) < 0)
        return -1;
    if (bx_uuid4(uuid, err) < 0)
        return -1;
    snprintf(p->tmpname, sizeof(p->tmpname), "pull-%s", uuid);
    if (mkdirat(ic->tmp_fd, p->tmpname, 0700) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "mkdir images/tmp/%s", p->tmpname);
        p->tmpname[0] = '\0';
        return -1;
    }
    p->tmpfd = openat(ic->tmp_fd, p->tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->tmpfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/tmp/%s", p->tmpname);
    if (mkdirat(p->tmpfd, "dl", 0700) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir images/tmp/%s/dl", p->tmpname);
    p->dlfd = openat(p->tmpfd, "dl", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->dlfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/tmp/%s/dl", p->tmpname);
    if (root && fchown(p->dlfd, PULL_UID, PULL_GID) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "chown images/tmp/%s/dl", p->tmpname);
    if (asprintf(&p->tmppath, "%s/tmp/%s", ic->dir, p->tmpname) < 0) {
        p->tmppath = NULL;
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (asprintf(&p->dlpath, "%s/dl", p->tmppath) < 0) {
        p->dlpath = NULL;
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    /* HOME and TMPDIR in skopeo's own directory: it reads no ~/.docker or
     * ~/.config of any host user. */
    p->skenv[0] = ic->env[0];
    if (asprintf(&p->skenv[1], "HOME=%s", root ? PULL_BIND : p->dlpath) < 0) {
        p->skenv[1] = NULL;
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (asprintf(&p->skenv[2], "TMPDIR=%s", root ? PULL_BIND : p->dlpath) < 0) {
        p->skenv[2] = NULL;
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (bx_write_file_atomic_at(p->dlfd, "policy.json", skopeo_policy, sizeof(skopeo_policy) - 1,
                                0644, err) < 0)
        return -1;
    argv[n++] = "skopeo";
    argv[n++] = "--policy";
    argv[n++] = "policy.json"; /* relative to skopeo's cwd, like everything it is given */
    argv[n++] = "copy";
    if (p->insecure)
        argv[n++] = "--src-tls-verify=false";
    if (ic->cfg->registry_auth_file && ic->cfg->registry_auth_file[0]) {
        if (copy_auth_file(p, root, err) < 0)
            return -1;
        argv[n++] = "--authfile";
        argv[n++] = "auth.json";
    }
    /* imgref already refuses a leading '-'; "--" makes sure anyway that the
     * source is never read as an option (skopeo 1.9 honours it). */
    argv[n++] = "--";
    argv[n++] = p->src;
    argv[n++] = "oci:layout:" LAYOUT_TAG;
    argv[n] = NULL;
    if (spawn_stage(p, STAGE_SKOPEO, ic->skopeo, argv, err) < 0)
        return -1;
    if (ic->cfg->pull_timeout_secs > 0) {
        p->timer = loop_timer_add(ic->loop, ic->cfg->pull_timeout_secs * 1000u, on_pull_timeout, p);
        if (!p->timer)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    return 0;
}

/* A new pull starts now when fewer than max_concurrent_pulls run (and none
 * waits before it), else it waits in FIFO order for a slot. */
int image_pull_start(struct image_cache *ic, const struct imgref *ref, const char *canon,
                     const char *key, const char *stale, struct pull **out, struct bx_err *err)
{
    struct pull *p;
    char src[REF_CANON_MAX + 600];

    p = calloc(1, sizeof(*p));
    if (!p)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    p->ic = ic;
    p->tmpfd = -1;
    p->dlfd = -1;
    p->errfd = -1;
    p->started_ms = bx_now_ms();
    snprintf(p->ref, sizeof(p->ref), "%s", canon);
    memcpy(p->key, key, HEX_LEN + 1);
    snprintf(p->stale, sizeof(p->stale), "%s", stale);
    if (pull_source(ic, ref, src, sizeof(src), &p->insecure, err) < 0)
        goto fail;
    p->src = strdup(src);
    if (!p->src) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    if (ic->active < max_pulls(ic) && !ic->queue) {
        p->launched = 1;
        ic->active++;
        p->next = ic->pulls;
        ic->pulls = p;
        if (pull_launch(p, err) < 0) {
            pull_unlink(p);
            goto fail;
        }
    } else {
        p->next = ic->pulls;
        ic->pulls = p;
        if (ic->queue_tail)
            ic->queue_tail->qnext = p;
        else
            ic->queue = p;
        ic->queue_tail = p;
        bx_log_info("image: pull of %s waits: %u of max_concurrent_pulls %u running", canon, ic->active,
                  max_pulls(ic));
    }
    *out = p;
    return 0;
fail:
    bx_err_wrap(err, "pulling %.300s", canon);
    image_pull_free(p);
    return -1;
}
