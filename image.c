/* Image cache: see image.h for the on-disk layout and the contract.
 *
 * A pull is a small state machine driven by the loop:
 *   skopeo copy (registry -> OCI layout in tmp/<pull>/layout)
 *   -> read index.json, manifest and config (bounded, strict JSON)
 *   -> umoci raw unpack (layout -> tmp/<pull>/rootfs)   [skipped when the digest is ready]
 *   -> size walk, `sync -f` (durability before `ready`)  [skipped likewise]
 *   -> install: rename into blobs/<hex>/, config.json, size, then `ready`; refs/<key>.json
 * Every stage is a supervised child with stderr on a non-blocking pipe, and one
 * timer bounds the whole pull.  Waiters attach to the pull by canonical
 * reference (single flight) and get their result through a zero-delay timer, so
 * image_get never calls back synchronously and a callback may do anything
 * (including image_get or image_wait_cancel on other waiters).
 *
 * Trust: the reference is already validated by imgref (no leading '-', no
 * "..", no spaces), and we also pass "--" before skopeo's positional
 * arguments.  Everything skopeo writes is below our own tmp directory, and
 * umoci unpacks with path-traversal protection; our own walk of the unpacked
 * tree never follows symlinks.  The registry's JSON is parsed with size,
 * depth and value-count limits.
 */
#define _GNU_SOURCE
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

#include "cgroup.h"
#include "json.h"
#include "proc.h"
#include "image_internal.h"
#include "log.h"
#include "sha256.h"
#include "store.h"

#define IMAGE_JSON_VALUES 200000

/* ------------------------------------------------------------------ small helpers */

int image_is_hex64(const char *s, size_t len)
{
    if (len != HEX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* "sha256:<64 lower-case hex>" -> hex.  The hex is later used as a file
 * name, so nothing else may pass. */
int image_digest_to_hex(const char *d, size_t len, char hex[HEX_LEN + 1])
{
    if (len != 7 + HEX_LEN || memcmp(d, "sha256:", 7) != 0 || !image_is_hex64(d + 7, HEX_LEN))
        return -1;
    memcpy(hex, d + 7, HEX_LEN);
    hex[HEX_LEN] = '\0';
    return 0;
}

int image_fsync_dir(int fd, const char *what, struct bx_err *err)
{
    if (fsync(fd) < 0 && errno != EINVAL)
        return bx_err_sys(err, BX_E_INTERNAL, "fsync %s", what);
    return 0;
}

/* A fresh directory stream with its own offset (a dup would share it). */
DIR *image_dir_stream(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    if (fd < 0)
        return NULL;
    d = fdopendir(fd);
    if (!d)
        bx_close(&fd);
    return d;
}

void image_free(struct image *img)
{
    if (!img)
        return;
    free(img->rootfs);
    bx_strv_free(&img->env);
    free(img->working_dir);
    bx_strv_free(&img->entrypoint);
    bx_strv_free(&img->cmd);
    free(img->user);
    free(img);
}

int image_blob_ready(struct image_cache *ic, const char *hex)
{
    char path[HEX_LEN + 8];
    struct stat st;
    snprintf(path, sizeof(path), "%s/ready", hex);
    return fstatat(ic->blobs_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

void image_blob_touch(struct image_cache *ic, const char *hex)
{
    char path[HEX_LEN + 8];
    snprintf(path, sizeof(path), "%s/ready", hex);
    if (utimensat(ic->blobs_fd, path, NULL, AT_SYMLINK_NOFOLLOW) < 0)
        bx_log_warn("image: cannot mark %s used: %s", hex, strerror(errno));
}

static struct blob_use *use_find(struct image_cache *ic, const char *hex)
{
    for (struct blob_use *u = ic->uses; u; u = u->next)
        if (strcmp(u->hex, hex) == 0)
            return u;
    return NULL;
}

unsigned image_use_count(struct image_cache *ic, const char *hex)
{
    struct blob_use *u = use_find(ic, hex);
    return u ? u->n : 0;
}

int image_use_get(struct image_cache *ic, const char *hex)
{
    struct blob_use *u = use_find(ic, hex);
    if (!u) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return -1;
        memcpy(u->hex, hex, HEX_LEN + 1);
        u->next = ic->uses;
        ic->uses = u;
    }
    u->n++;
    return 0;
}

void image_use_put(struct image_cache *ic, const char *hex)
{
    for (struct blob_use **pp = &ic->uses; *pp; pp = &(*pp)->next) {
        struct blob_use *u = *pp;
        if (strcmp(u->hex, hex) != 0)
            continue;
        if (u->n > 0)
            u->n--;
        if (u->n == 0) {
            *pp = u->next;
            free(u);
        }
        return;
    }
}

void image_wait_link(struct image_wait **head, struct image_wait *w)
{
    w->prev = NULL;
    w->next = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
}

void image_wait_unlink(struct image_wait **head, struct image_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (*head == w)
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

int image_read_json_at(int dirfd, const char *path, size_t max, struct json_doc **doc,
                       struct bx_err *err)
{
    struct json_limits lim = {max, 32, IMAGE_JSON_VALUES};
    char *buf = NULL;
    size_t len = 0;
    int r;
    if (bx_read_file_at(dirfd, path, max, &buf, &len, err) < 0)
        return -1;
    r = json_parse(buf, len, &lim, doc, err);
    free(buf);
    if (r < 0)
        bx_err_wrap(err, "%s", path);
    return r;
}

const char *image_json_cstr(const struct json_value *v)
{
    if (!v || v->type != JSON_STRING || json_str_has_nul(v))
        return NULL;
    return v->u.str.s;
}

/* ------------------------------------------------------------------ delivery */

void image_deliver_now(struct image_wait *w)
{
    image_ready_cb cb = w->cb;
    void *arg = w->arg;
    struct image *img = w->img;
    struct bx_err e = w->err;
    free(w);
    cb(arg, img, img ? NULL : &e);
}

static void on_deliver(struct loop *l, void *arg)
{
    struct image_wait *w = arg;
    (void)l;
    image_wait_unlink(&w->ic->due, w);
    image_deliver_now(w);
}

/* Queues w's result (w->img or w->err) for delivery from the loop. */
int image_schedule(struct image_cache *ic, struct image_wait *w)
{
    w->pull = NULL;
    w->timer = loop_timer_add(ic->loop, 0, on_deliver, w);
    if (!w->timer)
        return -1;
    image_wait_link(&ic->due, w);
    return 0;
}

/* ------------------------------------------------------------------ public */

static struct pull *pull_find(struct image_cache *ic, const char *canon)
{
    for (struct pull *p = ic->pulls; p; p = p->next)
        if (strcmp(p->ref, canon) == 0)
            return p;
    return NULL;
}

static int canon_ref(const struct imgref *ref, char *canon, size_t cap, char key[HEX_LEN + 1],
                     struct bx_err *err)
{
    if (!ref->registry[0] || !ref->repository[0] || imgref_format(ref, canon, cap) < 0 ||
        canon[0] == '-')
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "invalid image reference");
    sha256_hex(canon, strlen(canon), key);
    return 0;
}

static int ref_lookup(struct image_cache *ic, const char *canon, const char *key,
                      struct ref_entry *e)
{
    char name[HEX_LEN + 6];
    snprintf(name, sizeof(name), "%s.json", key);
    if (image_ref_read(ic, name, e) < 0 || strcmp(e->ref, canon) != 0)
        return -1;
    return 0;
}

/* A cache hit: the image is prepared now, delivered from the loop. */
static int hit(struct image_cache *ic, struct image_wait *w, const char *hex, struct bx_err *err)
{
    if (image_hand_out(ic, hex, &w->img, err) < 0)
        return -1;
    if (image_schedule(ic, w) < 0) {
        image_release(ic, w->img);
        w->img = NULL;
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    return 0;
}

/* 0: delivered later; 1: the cached entry is unusable (removed when nobody
 * uses it), pull instead; -1: out of memory, err set. */
static int try_hit(struct image_cache *ic, struct image_wait *w, const char *hex, const char *canon,
                   struct bx_err *err)
{
    struct bx_err he;
    bx_err_clear(&he);
    if (hit(ic, w, hex, &he) == 0)
        return 0;
    if (he.sys_errno == ENOMEM) {
        if (err)
            *err = he;
        return -1;
    }
    bx_log_warn("image: cached %s unusable (%s); pulling again", canon, he.msg);
    if (image_use_count(ic, hex) == 0 && image_blob_remove(ic, hex, &he) < 0)
        bx_log_warn("image: cannot remove sha256:%s: %s", hex, he.msg);
    return 1;
}

int image_get(struct image_cache *ic, const struct imgref *ref, image_ready_cb cb, void *arg,
              struct image_wait **wout, struct bx_err *err)
{
    char canon[REF_CANON_MAX], key[HEX_LEN + 1], stale[HEX_LEN + 1] = "", hex[HEX_LEN + 1];
    struct image_wait *w;
    struct ref_entry e;
    struct pull *p;

    if (wout)
        *wout = NULL;
    if (canon_ref(ref, canon, sizeof(canon), key, err) < 0)
        return -1;
    w = calloc(1, sizeof(*w));
    if (!w)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    w->ic = ic;
    w->cb = cb;
    w->arg = arg;

    p = pull_find(ic, canon);
    if (p)
        goto attach;
    if (ref_lookup(ic, canon, key, &e) == 0 && image_blob_ready(ic, e.hex)) {
        int64_t now = (int64_t)time(NULL);
        uint64_t refresh = ic->cfg->tag_refresh_secs;
        /* A digest names immutable content; a tag is trusted for
         * tag_refresh_secs (0: forever).  A clock that went backwards
         * counts as fresh. */
        if (ref->digest[0] || refresh == 0 || now < e.pulled_at ||
            (uint64_t)(now - e.pulled_at) < refresh) {
            int r = try_hit(ic, w, e.hex, canon, err);
            if (r == 0)
                goto done;
            if (r < 0) {
                free(w);
                return -1;
            }
        } else {
            memcpy(stale, e.hex, sizeof(stale));
        }
    } else if (ref->digest[0] && image_digest_to_hex(ref->digest, strlen(ref->digest), hex) == 0 &&
               image_blob_ready(ic, hex)) {
        /* Pinned to content we already have (pulled under another name). */
        struct bx_err he;
        int r;
        bx_err_clear(&he);
        if (image_ref_write(ic, key, canon, hex, &he) < 0)
            bx_log_warn("image: cannot record %s: %s", canon, he.msg);
        r = try_hit(ic, w, hex, canon, err);
        if (r == 0)
            goto done;
        if (r < 0) {
            free(w);
            return -1;
        }
    }
    p = NULL;
    if (image_pull_start(ic, ref, canon, key, stale, &p, err) < 0 || !p) {
        free(w);
        return -1;
    }
attach:
    w->pull = p;
    image_wait_link(&p->waiters, w);
done:
    if (wout)
        *wout = w;
    return 0;
}

int image_acquire_digest(struct image_cache *ic, const char *digest, struct image **out,
                         struct bx_err *err)
{
    char hex[HEX_LEN + 1];
    *out = NULL;
    if (image_digest_to_hex(digest, strlen(digest), hex) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "invalid image digest");
    if (!image_blob_ready(ic, hex))
        return bx_err_set(err, BX_E_NOT_FOUND, ENOENT, "image %s is not cached", digest);
    return image_hand_out(ic, hex, out, err);
}

void image_wait_cancel(struct image_wait **wp)
{
    struct image_wait *w = wp ? *wp : NULL;
    if (!w)
        return;
    *wp = NULL;
    if (w->pull) {
        /* The pull goes on for the others; with none left it is stopped,
         * so requests that went away hold no skopeo, slot or disk. */
        struct pull *p = w->pull;
        image_wait_unlink(&p->waiters, w);
        if (!p->waiters)
            image_pull_cancel(p);
    } else {
        image_wait_unlink(&w->ic->due, w);
        loop_timer_cancel(w->ic->loop, w->timer);
        image_release(w->ic, w->img);
    }
    free(w);
}

struct list_item {
    char ref[REF_CANON_MAX];
    char hex[HEX_LEN + 1];
    int64_t pulled_at;
};

struct list_acc {
    struct list_item *v;
    size_t n, cap;
    int failed;
};

static int list_collect(struct image_cache *ic, const char *name, const struct ref_entry *e,
                        void *arg)
{
    struct list_acc *a = arg;
    (void)name;
    if (!image_blob_ready(ic, e->hex))
        return 0;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        struct list_item *nv = realloc(a->v, nc * sizeof(*nv));
        if (!nv) {
            a->failed = 1;
            return 1;
        }
        a->v = nv;
        a->cap = nc;
    }
    memcpy(a->v[a->n].ref, e->ref, sizeof(e->ref));
    memcpy(a->v[a->n].hex, e->hex, sizeof(e->hex));
    a->v[a->n].pulled_at = e->pulled_at;
    a->n++;
    return 0;
}

static int list_item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct list_item *)a)->ref, ((const struct list_item *)b)->ref);
}

int image_list_json(struct image_cache *ic, struct sbuf *out, struct bx_err *err)
{
    struct list_acc a = {NULL, 0, 0, 0};
    struct json_writer w;
    int ret = -1;

    if (image_refs_foreach(ic, list_collect, &a, err) < 0)
        goto out;
    if (a.failed) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (a.n > 1)
        qsort(a.v, a.n, sizeof(*a.v), list_item_cmp);
    json_w_init(&w, out);
    json_w_arr_begin(&w);
    for (size_t i = 0; i < a.n; i++) {
        struct blob_info bi;
        char dg[HEX_LEN + 8];
        if (image_blob_info_read(ic, a.v[i].hex, &bi) < 0)
            continue;
        snprintf(dg, sizeof(dg), "sha256:%s", a.v[i].hex);
        json_w_obj_begin(&w);
        json_w_kv_cstr(&w, "ref", a.v[i].ref);
        json_w_kv_cstr(&w, "digest", dg);
        json_w_kv_uint(&w, "size_bytes", bi.size);
        json_w_kv_int(&w, "last_used", (int64_t)bi.used.tv_sec);
        json_w_kv_int(&w, "pulled_at", a.v[i].pulled_at);
        json_w_kv_bool(&w, "in_use", image_use_count(ic, a.v[i].hex) > 0);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    if (w.failed) {
        bx_err_set(err, BX_E_INTERNAL, E2BIG, "image list too large");
        goto out;
    }
    ret = 0;
out:
    free(a.v);
    return ret;
}

int image_delete(struct image_cache *ic, const struct imgref *ref, struct bx_err *err)
{
    char canon[REF_CANON_MAX], key[HEX_LEN + 1], name[HEX_LEN + 6];
    const char *want[2];
    struct ref_entry e;

    if (canon_ref(ref, canon, sizeof(canon), key, err) < 0)
        return -1;
    if (pull_find(ic, canon))
        return bx_err_set(err, BX_E_CONFLICT, EBUSY, "image %.300s is being pulled", canon);
    if (ref_lookup(ic, canon, key, &e) < 0)
        return bx_err_set(err, BX_E_NOT_FOUND, ENOENT, "image not found: %.300s", canon);
    if (image_use_count(ic, e.hex) > 0)
        return bx_err_set(err, BX_E_CONFLICT, EBUSY,
                          "image %.300s is in use by a run or by a box (a stopped box keeps "
                          "its image until it is removed)",
                          canon);
    snprintf(name, sizeof(name), "%s.json", key);
    if (unlinkat(ic->refs_fd, name, 0) < 0 && errno != ENOENT)
        return bx_err_sys(err, BX_E_INTERNAL, "remove image reference");
    image_fsync_dir(ic->refs_fd, "refs", NULL);
    want[0] = e.hex;
    want[1] = NULL;
    if (image_refs_foreach(ic, image_ref_find_digest, want, err) < 0)
        return -1;
    if (!want[1] && image_blob_remove(ic, e.hex, err) < 0)
        return -1;
    bx_log_info("image: deleted %s (sha256:%s%s)", canon, e.hex, want[1] ? ", still referenced" : "");
    return 0;
}

void image_stats(struct image_cache *ic, struct image_stats *st)
{
    *st = ic->st;
}

/* ------------------------------------------------------------------ start-up */

static int open_subdir(int dirfd, const char *name, struct bx_err *err)
{
    int fd;
    if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir images/%s", name);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/%s", name);
    return fd;
}

int image_cache_new(struct image_cache **out, struct loop *l, const struct config *cfg,
                    struct bx_err *err)
{
    struct image_cache *ic;
    const char *path_env = getenv("PATH");
    int root = -1, pfd = -1;

    *out = NULL;
    if (!cfg->home || cfg->home[0] != '/')
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "home must be an absolute path");
    ic = calloc(1, sizeof(*ic));
    if (!ic)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    ic->loop = l;
    ic->cfg = cfg;
    ic->dirfd = ic->refs_fd = ic->blobs_fd = ic->tmp_fd = -1;
    if (!path_env || !path_env[0])
        path_env = BX_DEFAULT_PATH;
    if (asprintf(&ic->dir, "%s/images", cfg->home) < 0) {
        ic->dir = NULL;
        goto oom;
    }
    root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open /");
        goto fail;
    }
    pfd = bx_mkdir_p_at(root, ic->dir + 1, 0700, 1, err);
    bx_close(&root);
    if (pfd < 0)
        goto fail;
    ic->dirfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bx_close(&pfd);
    if (ic->dirfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open %s", ic->dir);
        goto fail;
    }
    if ((ic->refs_fd = open_subdir(ic->dirfd, "refs", err)) < 0 ||
        (ic->blobs_fd = open_subdir(ic->dirfd, "blobs", err)) < 0 ||
        (ic->tmp_fd = open_subdir(ic->dirfd, "tmp", err)) < 0)
        goto fail;
    if (image_sweep(ic, err) < 0)
        goto fail;
    /* The children's whole environment: no proxy, registry or auth variables
     * leak in from ours; HOME and TMPDIR point into tmp/ (emptied at
     * start-up), so skopeo reads no ~/.docker or ~/.config of the host user. */
    if (asprintf(&ic->env[0], "PATH=%s", path_env) < 0) {
        ic->env[0] = NULL;
        goto oom;
    }
    if (asprintf(&ic->env[1], "HOME=%s/tmp", ic->dir) < 0) {
        ic->env[1] = NULL;
        goto oom;
    }
    if (asprintf(&ic->env[2], "TMPDIR=%s/tmp", ic->dir) < 0) {
        ic->env[2] = NULL;
        goto oom;
    }
    if (proc_find_in_path("skopeo", path_env, ic->skopeo, sizeof(ic->skopeo)) < 0) {
        ic->skopeo[0] = '\0';
        bx_log_warn("image: skopeo not found in PATH: images can only come from the cache");
    }
    if (proc_find_in_path("umoci", path_env, ic->umoci, sizeof(ic->umoci)) < 0) {
        ic->umoci[0] = '\0';
        bx_log_warn("image: umoci not found in PATH: images can only come from the cache");
    }
    if (proc_find_in_path("sync", path_env, ic->sync_bin, sizeof(ic->sync_bin)) < 0) {
        ic->sync_bin[0] = '\0';
        bx_log_warn("image: sync not found in PATH: unpacked images are not flushed before use");
    }
    *out = ic;
    return 0;
oom:
    bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
fail:
    bx_close(&root);
    bx_close(&pfd);
    image_cache_free(&ic);
    return -1;
}

/* Pulls in flight are killed (their tmp directories removed), waiters are
 * dropped without callbacks.  Images handed out must not be released after
 * this. */
void image_cache_set_cgroups(struct image_cache *ic, struct cg_ctx *cg)
{
    ic->cg = cg;
}

void image_cache_free(struct image_cache **icp)
{
    struct image_cache *ic = icp ? *icp : NULL;
    struct image_wait *w;
    struct pull *p;

    if (!ic)
        return;
    *icp = NULL;
    while ((p = ic->pulls) != NULL) {
        ic->pulls = p->next;
        while ((w = p->waiters) != NULL) {
            image_wait_unlink(&p->waiters, w);
            free(w);
        }
        image_pull_free(p);
    }
    if (ic->cg_retry_timer)
        loop_timer_cancel(ic->loop, ic->cg_retry_timer);
    while (ic->cg_retry) {
        struct cg_retry *r = ic->cg_retry;
        ic->cg_retry = r->next;
        cg_run_abandon(&r->cg); /* removed by cg_cleanup_stale at the next start */
        free(r);
    }
    while ((w = ic->due) != NULL) {
        image_wait_unlink(&ic->due, w);
        loop_timer_cancel(ic->loop, w->timer);
        image_free(w->img);
        free(w);
    }
    while (ic->uses) {
        struct blob_use *u = ic->uses;
        ic->uses = u->next;
        free(u);
    }
    for (size_t i = 0; i < BX_ARRAY_LEN(ic->env); i++)
        free(ic->env[i]);
    free(ic->dir);
    bx_close(&ic->dirfd);
    bx_close(&ic->refs_fd);
    bx_close(&ic->blobs_fd);
    bx_close(&ic->tmp_fd);
    free(ic);
}
