/* Image cache on disk: refs files, blobs and their removal, eviction of
 * unused blobs, and the start-up sweep of what a previous run left behind.
 * See image.h for the layout and image.c for the overview. */
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

/* ------------------------------------------------------------------ refs files */

/* Reads refs/<name>; the ref inside must hash to the file name, so a file can
 * never answer for another reference. */
int image_ref_read(struct image_cache *ic, const char *name, struct ref_entry *e)
{
    struct json_doc *doc = NULL;
    const struct json_value *root, *pa;
    const char *ref, *dg;
    char key[HEX_LEN + 1];
    int ret = -1;

    if (strlen(name) != HEX_LEN + 5 || strcmp(name + HEX_LEN, ".json") != 0 ||
        !image_is_hex64(name, HEX_LEN))
        return -1;
    if (image_read_json_at(ic->refs_fd, name, META_MAX, &doc, NULL) < 0)
        return -1;
    root = json_doc_root(doc);
    ref = image_json_cstr(json_get(root, "ref"));
    dg = image_json_cstr(json_get(root, "digest"));
    pa = json_get(root, "pulled_at");
    if (!ref || !dg || !pa || pa->type != JSON_NUMBER || !pa->u.num.is_int ||
        strlen(ref) >= sizeof(e->ref) || image_digest_to_hex(dg, strlen(dg), e->hex) < 0)
        goto out;
    sha256_hex(ref, strlen(ref), key);
    if (memcmp(key, name, HEX_LEN) != 0)
        goto out;
    memcpy(e->ref, ref, strlen(ref) + 1);
    e->pulled_at = pa->u.num.i;
    ret = 0;
out:
    json_doc_free(&doc);
    return ret;
}

int image_ref_write(struct image_cache *ic, const char *key, const char *ref, const char *hex,
                    struct bx_err *err)
{
    struct sbuf sb;
    struct json_writer w;
    char name[HEX_LEN + 6], dg[HEX_LEN + 8];
    int ret = -1;

    sbuf_init(&sb, META_MAX);
    snprintf(dg, sizeof(dg), "sha256:%s", hex);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    json_w_kv_cstr(&w, "ref", ref);
    json_w_kv_cstr(&w, "digest", dg);
    json_w_kv_int(&w, "pulled_at", (int64_t)time(NULL));
    json_w_obj_end(&w);
    if (w.failed) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "writing image reference: out of memory");
        goto out;
    }
    snprintf(name, sizeof(name), "%s.json", key);
    if (bx_write_file_atomic_at(ic->refs_fd, name, sb.data, sb.len, 0600, err) < 0 ||
        image_fsync_dir(ic->refs_fd, "refs", err) < 0)
        goto out;
    ret = 0;
out:
    sbuf_free(&sb);
    return ret;
}

/* Calls fn for every valid refs entry; stops when fn returns non-zero. */
int image_refs_foreach(struct image_cache *ic, ref_fn fn, void *arg, struct bx_err *err)
{
    DIR *d = image_dir_stream(ic->refs_fd);
    struct dirent *de;
    int ret = 0;
    if (!d)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/refs");
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct ref_entry e;
        if (image_ref_read(ic, de->d_name, &e) < 0)
            continue;
        if (fn(ic, de->d_name, &e, arg) != 0)
            break;
    }
    if (!de && errno != 0)
        ret = bx_err_sys(err, BX_E_INTERNAL, "read images/refs");
    closedir(d);
    return ret;
}

static int ref_unlink_if_digest(struct image_cache *ic, const char *name, const struct ref_entry *e,
                                void *arg)
{
    if (strcmp(e->hex, (const char *)arg) == 0 && unlinkat(ic->refs_fd, name, 0) < 0 &&
        errno != ENOENT)
        bx_log_warn("image: cannot remove refs/%s: %s", name, strerror(errno));
    return 0;
}

int image_ref_find_digest(struct image_cache *ic, const char *name, const struct ref_entry *e,
                          void *arg)
{
    const char **want = arg;
    (void)ic;
    (void)name;
    if (strcmp(e->hex, want[0]) == 0) {
        want[1] = "found";
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ blobs */

/* ------------------------------------------------------------------ removal */

#define HOIST_DEPTH 128

struct names {
    char (*v)[48];
    size_t n, cap;
};

/* Moves every directory HOIST_DEPTH levels below fd (owned) into tmp/ as
 * "deep-<uuid>" and records the new names. */
static int hoist_deep(struct image_cache *ic, int fd, int depth, struct names *moved)
{
    struct dirent *de;
    DIR *d = fdopendir(fd);
    int ret = 0;

    if (!d) {
        close(fd);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (depth + 1 >= HOIST_DEPTH) {
            char uuid[37];
            if (moved->n == moved->cap) {
                size_t nc = moved->cap ? moved->cap * 2 : 8;
                char(*nv)[48] = realloc(moved->v, nc * sizeof(*nv));
                if (!nv) {
                    ret = -1;
                    break;
                }
                moved->v = nv;
                moved->cap = nc;
            }
            if (bx_uuid4(uuid, NULL) < 0) {
                ret = -1;
                break;
            }
            snprintf(moved->v[moved->n], sizeof(moved->v[0]), "deep-%s", uuid);
            if (renameat(dirfd(d), de->d_name, ic->tmp_fd, moved->v[moved->n]) < 0) {
                ret = -1;
                break;
            }
            moved->n++;
        } else {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || hoist_deep(ic, sub, depth + 1, moved) < 0) {
                ret = -1;
                break;
            }
        }
    }
    closedir(d);
    return ret;
}

/* Removes tmp/<name>.  bx_rm_rf_at stops at 256 levels and an image can
 * unpack deeper trees (a hostile one on purpose, to leave garbage behind or
 * to make the start-up sweep fail), so a tree that is too deep is first cut
 * into pieces of HOIST_DEPTH levels, each removed the same way.  Synchronous:
 * a rootfs is a few thousand files, milliseconds of work. */
int image_tmp_remove(struct image_cache *ic, const char *name, int level)
{
    struct names moved = {NULL, 0, 0};
    struct bx_err e;
    int fd, ret = -1;

    bx_err_clear(&e);
    if (bx_rm_rf_at(ic->tmp_fd, name, &e) == 0)
        return 0;
    if (e.sys_errno != ELOOP || level > 64)
        goto out;
    fd = openat(ic->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || hoist_deep(ic, fd, 0, &moved) < 0) {
        bx_err_sys(&e, BX_E_INTERNAL, "cutting up a deep tree");
        goto out;
    }
    if (bx_rm_rf_at(ic->tmp_fd, name, &e) < 0)
        goto out;
    ret = 0;
out:
    for (size_t i = 0; i < moved.n; i++)
        if (image_tmp_remove(ic, moved.v[i], level + 1) < 0)
            ret = -1;
    free(moved.v);
    if (ret < 0 && e.msg[0])
        bx_log_warn("image: cannot remove tmp/%s: %s", name, e.msg);
    return ret;
}

/* Moves dirfd/name into tmp/ (atomic; tmp/ is emptied at start-up, so a
 * crash half-way through leaves nothing usable behind), then removes it. */
int image_discard_at(struct image_cache *ic, int dirfd, const char *name, struct bx_err *err)
{
    char uuid[37], gone[48];
    if (bx_uuid4(uuid, err) < 0)
        return -1;
    snprintf(gone, sizeof(gone), "gone-%s", uuid);
    if (renameat(dirfd, name, ic->tmp_fd, gone) < 0) {
        if (errno == ENOENT)
            return 0;
        return bx_err_sys(err, BX_E_INTERNAL, "remove %s", name);
    }
    image_tmp_remove(ic, gone, 0);
    return 0;
}

/* Removes the refs to hex and the blob directory. */
int image_blob_remove(struct image_cache *ic, const char *hex, struct bx_err *err)
{
    int was_ready = image_blob_ready(ic, hex);

    if (image_refs_foreach(ic, ref_unlink_if_digest, (void *)hex, err) < 0)
        return -1;
    image_fsync_dir(ic->refs_fd, "refs", NULL);
    if (image_discard_at(ic, ic->blobs_fd, hex, err) < 0)
        return -1;
    if (was_ready && ic->st.cached_images > 0)
        ic->st.cached_images--;
    image_fsync_dir(ic->blobs_fd, "blobs", NULL);
    return 0;
}

static int read_u64_file(int dirfd, const char *path, uint64_t *out)
{
    char *buf = NULL;
    size_t len = 0;
    int r;
    if (bx_read_file_at(dirfd, path, 32, &buf, &len, NULL) < 0)
        return -1;
    while (len > 0 && buf[len - 1] == '\n')
        len--;
    r = bx_parse_u64(buf, len, UINT64_MAX, out);
    free(buf);
    return r;
}

static int strv_from_json(const struct json_value *v, int nullable, char ***out, struct bx_err *err)
{
    struct str_list l = {0};
    *out = NULL;
    if ((!v || v->type == JSON_NULL) && nullable)
        return 0;
    if (v && v->type != JSON_NULL && v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "not a list of strings");
    /* Reserving allocates even for 0: an absent list is an empty array. */
    if (str_list_reserve(&l, v && v->type == JSON_ARRAY ? v->u.arr.n : 0) < 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t i = 0; v && v->type == JSON_ARRAY && i < v->u.arr.n; i++) {
        const char *s = image_json_cstr(&v->u.arr.items[i]);
        if (!s || str_list_push(&l, s) < 0) {
            str_list_free(&l);
            return bx_err_set(err, BX_E_INTERNAL, EINVAL, "not a list of strings");
        }
    }
    *out = l.items;
    return 0;
}

static int opt_str(const struct json_value *v, char **out, struct bx_err *err)
{
    const char *s;
    *out = NULL;
    if (!v || v->type == JSON_NULL)
        return 0;
    s = image_json_cstr(v);
    if (!s)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "not a string");
    if (!s[0])
        return 0;
    *out = strdup(s);
    return *out ? 0 : bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
}

/* Builds a struct image from blobs/<hex>/config.json (our own normalised
 * file) and takes a use reference on the digest. */
int image_hand_out(struct image_cache *ic, const char *hex, struct image **out, struct bx_err *err)
{
    struct json_doc *doc = NULL;
    const struct json_value *root;
    struct image *img = NULL;
    char path[HEX_LEN + 16];
    int ret = -1;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/config.json", hex);
    if (image_read_json_at(ic->blobs_fd, path, IMAGE_JSON_MAX, &doc, err) < 0)
        goto fail;
    root = json_doc_root(doc);
    img = calloc(1, sizeof(*img));
    if (!img) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(img->digest, sizeof(img->digest), "sha256:%s", hex);
    if (asprintf(&img->rootfs, "%s/blobs/%s/rootfs", ic->dir, hex) < 0) {
        img->rootfs = NULL;
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    if (strv_from_json(json_get(root, "Env"), 0, &img->env, err) < 0 ||
        strv_from_json(json_get(root, "Entrypoint"), 1, &img->entrypoint, err) < 0 ||
        strv_from_json(json_get(root, "Cmd"), 1, &img->cmd, err) < 0 ||
        opt_str(json_get(root, "WorkingDir"), &img->working_dir, err) < 0 ||
        opt_str(json_get(root, "User"), &img->user, err) < 0) {
        bx_err_wrap(err, "image %.20s config", hex);
        goto fail;
    }
    if (image_use_get(ic, hex) < 0) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    image_blob_touch(ic, hex);
    *out = bx_steal_ptr(&img);
    ret = 0;
fail:
    if (ret < 0 && err)
        err->status = BX_E_INTERNAL; /* our own files: never the client's fault */
    image_free(img);
    json_doc_free(&doc);
    return ret;
}

void image_release(struct image_cache *ic, struct image *img)
{
    char hex[HEX_LEN + 1];
    if (!img)
        return;
    if (ic && image_digest_to_hex(img->digest, strlen(img->digest), hex) == 0) {
        image_use_put(ic, hex);
        image_blob_touch(ic, hex);
    }
    image_free(img);
}

/* ------------------------------------------------------------------ eviction */

int image_blob_info_read(struct image_cache *ic, const char *hex, struct blob_info *bi)
{
    char path[HEX_LEN + 8];
    struct stat st;
    snprintf(path, sizeof(path), "%s/ready", hex);
    if (fstatat(ic->blobs_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return -1;
    memcpy(bi->hex, hex, HEX_LEN + 1);
    bi->used = st.st_mtim;
    snprintf(path, sizeof(path), "%s/size", hex);
    if (read_u64_file(ic->blobs_fd, path, &bi->size) < 0)
        bi->size = 0;
    return 0;
}

static int blob_info_cmp(const void *a, const void *b)
{
    const struct blob_info *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    if (x->used.tv_nsec != y->used.tv_nsec)
        return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
    return strcmp(x->hex, y->hex);
}

/* Least recently used first, skipping what is in use and what was just
 * pulled, until the ready blobs fit image_cache_max_bytes again. */
void image_evict(struct image_cache *ic, const char *keep)
{
    uint64_t max = ic->cfg->image_cache_max_bytes, total = 0;
    struct blob_info *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d;

    if (max == 0)
        return;
    d = image_dir_stream(ic->blobs_fd);
    if (!d) {
        bx_log_warn("image: eviction: cannot open blobs: %s", strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (!image_is_hex64(de->d_name, strlen(de->d_name)))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct blob_info *nv = realloc(v, nc * sizeof(*nv));
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        if (image_blob_info_read(ic, de->d_name, &v[n]) == 0) {
            total = total + v[n].size < total ? UINT64_MAX : total + v[n].size;
            n++;
        }
    }
    closedir(d);
    if (total > max && n > 0) {
        qsort(v, n, sizeof(*v), blob_info_cmp);
        for (size_t i = 0; i < n && total > max; i++) {
            struct bx_err e;
            if (strcmp(v[i].hex, keep) == 0 || image_use_count(ic, v[i].hex) > 0)
                continue;
            bx_err_clear(&e);
            if (image_blob_remove(ic, v[i].hex, &e) < 0) {
                bx_log_warn("image: eviction of %s failed: %s", v[i].hex, e.msg);
                continue;
            }
            bx_log_info("image: evicted sha256:%s (%llu bytes): cache over %llu bytes", v[i].hex,
                      (unsigned long long)v[i].size, (unsigned long long)max);
            total -= v[i].size;
        }
    }
    free(v);
}

/* Leftovers of a previous run: everything in tmp/, blob directories without
 * `ready` (or with a foreign name), refs files that are unreadable or point
 * at a missing blob. */
int image_sweep(struct image_cache *ic, struct bx_err *err)
{
    struct dirent *de;
    DIR *d;

    d = image_dir_stream(ic->tmp_fd);
    if (!d)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/tmp");
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        /* Not fatal: whatever resists is retried at the next start. */
        image_tmp_remove(ic, de->d_name, 0);
    }
    closedir(d);

    d = image_dir_stream(ic->blobs_fd);
    if (!d)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/blobs");
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (image_is_hex64(de->d_name, strlen(de->d_name)) && image_blob_ready(ic, de->d_name)) {
            ic->st.cached_images++;
            continue;
        }
        bx_log_info("image: removing incomplete images/blobs/%s", de->d_name);
        if (image_discard_at(ic, ic->blobs_fd, de->d_name, err) < 0) {
            closedir(d);
            return bx_err_wrap(err, "cleaning images/blobs");
        }
    }
    closedir(d);

    d = image_dir_stream(ic->refs_fd);
    if (!d)
        return bx_err_sys(err, BX_E_INTERNAL, "open images/refs");
    while ((de = readdir(d)) != NULL) {
        struct ref_entry e;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (image_ref_read(ic, de->d_name, &e) == 0 && image_blob_ready(ic, e.hex))
            continue;
        if (unlinkat(ic->refs_fd, de->d_name, 0) < 0 && errno != ENOENT &&
            bx_rm_rf_at(ic->refs_fd, de->d_name, NULL) < 0)
            bx_log_warn("image: cannot remove images/refs/%s: %s", de->d_name, strerror(errno));
    }
    closedir(d);
    return 0;
}
