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
#include <stdarg.h>
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
#include "store.h"

#define HEX_LEN 64
#define REF_CANON_MAX (4 * IMGREF_MAX + 16)
#define META_MAX ((size_t)64 * 1024)             /* our refs/size/ready files */
#define IMAGE_JSON_MAX ((size_t)4 * 1024 * 1024) /* index, manifest, config */
#define IMAGE_JSON_VALUES 200000
#define STDERR_TAIL 4096
#define TREE_DEPTH_MAX 200
#define DEFAULT_PATH BX_DEFAULT_PATH
#define LAYOUT_TAG "img"
#define REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"
#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
/* skopeo runs as this unprivileged uid/gid ("nobody") when Boxer is root. */
#define PULL_UID 65534
#define PULL_GID 65534
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

/* ------------------------------------------------------------------ sha256 */
/* FIPS 180-4; only used to name refs files, never for verification (skopeo
 * verifies every blob against its digest). */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, hh;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

static void sha256_hex(const void *data, size_t len, char out[HEX_LEN + 1])
{
    static const char xd[] = "0123456789abcdef";
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    unsigned char tail[128];
    size_t rest = len % 64, tl;
    uint64_t bits = (uint64_t)len * 8;

    for (size_t off = 0; off + 64 <= len; off += 64)
        sha256_block(h, p + off);
    memset(tail, 0, sizeof(tail));
    if (rest)
        memcpy(tail, p + (len - rest), rest);
    tail[rest] = 0x80;
    tl = rest < 56 ? 64 : 128;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - (size_t)i] = (unsigned char)(bits >> (8 * i));
    sha256_block(h, tail);
    if (tl == 128)
        sha256_block(h, tail + 64);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) {
            unsigned char byte = (unsigned char)(h[i] >> (24 - 8 * j));
            out[8 * i + 2 * j] = xd[byte >> 4];
            out[8 * i + 2 * j + 1] = xd[byte & 15];
        }
    out[HEX_LEN] = '\0';
}

/* ------------------------------------------------------------------ types */

struct blob_use {
    struct blob_use *next;
    unsigned n;
    char hex[HEX_LEN + 1];
};

enum stage { STAGE_SKOPEO, STAGE_UMOCI, STAGE_SYNC };

struct pull {
    struct image_cache *ic;
    struct pull *next;
    char ref[REF_CANON_MAX];
    char key[HEX_LEN + 1];   /* sha256 of ref: the refs file name */
    char stale[HEX_LEN + 1]; /* ready digest of an expired tag, fallback on failure */
    char hex[HEX_LEN + 1];   /* manifest digest, known after skopeo */
    char tmpname[64];        /* tmp/<tmpname> */
    char *tmppath;           /* absolute, cwd of the children */
    char *dlpath;            /* tmppath/dl: skopeo's directory, owned by PULL_UID */
    char *src;               /* skopeo's source, docker://... */
    char *skenv[4];          /* skopeo's environment: PATH (shared), HOME, TMPDIR */
    int insecure;
    int launched;            /* 0 while queued (no directory, no child) */
    struct pull *qnext;      /* ic->queue, FIFO of pulls waiting for a slot */
    int tmpfd, dlfd;
    enum stage stage;
    struct proc *proc;
    struct cg_run *cg;      /* the current child's cgroup */
    uint64_t size_timer;    /* SIZE_CHECK_MS ticks while skopeo or umoci runs */
    uint64_t fs_avail0;     /* free bytes when umoci started */
    uint64_t last_walk_ms;
    int errfd;
    char tail[STDERR_TAIL]; /* last bytes of the current child's stderr */
    size_t tail_len;
    uint64_t timer;
    uint64_t started_ms;
    char *config_json; /* normalised image config, written as blobs/<hex>/config.json */
    size_t config_len;
    uint64_t size;
    struct image_wait *waiters;
};

struct image_wait {
    struct image_cache *ic;
    struct pull *pull; /* set while waiting on a pull, else in ic->due */
    struct image_wait *prev, *next;
    image_ready_cb cb;
    void *arg;
    uint64_t timer;
    struct image *img;
    struct bx_err err;
};

struct cg_retry {
    struct cg_retry *next;
    struct cg_run *cg;
    unsigned tries;
};

struct image_cache {
    struct loop *loop;
    const struct config *cfg;
    char *dir; /* <home>/images */
    int dirfd, refs_fd, blobs_fd, tmp_fd;
    char skopeo[PATH_MAX], umoci[PATH_MAX], sync_bin[PATH_MAX]; /* "" when not found */
    char *env[4];
    struct pull *pulls;              /* queued and running */
    struct pull *queue, *queue_tail; /* waiting for a slot, oldest first */
    unsigned active;                 /* running pulls */
    int pumping;
    struct cg_ctx *cg;               /* NULL: children run without cgroups */
    struct cg_retry *cg_retry;       /* cgroups still busy after their child died */
    uint64_t cg_retry_timer;
    struct image_wait *due;
    struct blob_use *uses;
    struct image_stats st;
};

/* ------------------------------------------------------------------ small helpers */

static void image_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void image_log(const char *fmt, ...)
{
    va_list ap;
    char line[1024];
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "boxer: image: %s\n", line);
}

static int is_hex64(const char *s, size_t len)
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
static int digest_to_hex(const char *d, size_t len, char hex[HEX_LEN + 1])
{
    if (len != 7 + HEX_LEN || memcmp(d, "sha256:", 7) != 0 || !is_hex64(d + 7, HEX_LEN))
        return -1;
    memcpy(hex, d + 7, HEX_LEN);
    hex[HEX_LEN] = '\0';
    return 0;
}

static int fsync_dir(int fd, const char *what, struct bx_err *err)
{
    if (fsync(fd) < 0 && errno != EINVAL)
        return bx_err_sys(err, 500, "fsync %s", what);
    return 0;
}

/* A fresh directory stream with its own offset (a dup would share it). */
static DIR *dir_stream(int dirfd)
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

static void free_strv(char ***pv)
{
    char **v = *pv;
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
    *pv = NULL;
}

static void image_free(struct image *img)
{
    if (!img)
        return;
    free(img->rootfs);
    free_strv(&img->env);
    free(img->working_dir);
    free_strv(&img->entrypoint);
    free_strv(&img->cmd);
    free(img->user);
    free(img);
}

static int blob_ready(struct image_cache *ic, const char *hex)
{
    char path[HEX_LEN + 8];
    struct stat st;
    snprintf(path, sizeof(path), "%s/ready", hex);
    return fstatat(ic->blobs_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static void blob_touch(struct image_cache *ic, const char *hex)
{
    char path[HEX_LEN + 8];
    snprintf(path, sizeof(path), "%s/ready", hex);
    if (utimensat(ic->blobs_fd, path, NULL, AT_SYMLINK_NOFOLLOW) < 0)
        image_log("cannot mark %s used: %s", hex, strerror(errno));
}

static struct blob_use *use_find(struct image_cache *ic, const char *hex)
{
    for (struct blob_use *u = ic->uses; u; u = u->next)
        if (strcmp(u->hex, hex) == 0)
            return u;
    return NULL;
}

static unsigned use_count(struct image_cache *ic, const char *hex)
{
    struct blob_use *u = use_find(ic, hex);
    return u ? u->n : 0;
}

static int use_get(struct image_cache *ic, const char *hex)
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

static void use_put(struct image_cache *ic, const char *hex)
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

static void wait_link(struct image_wait **head, struct image_wait *w)
{
    w->prev = NULL;
    w->next = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
}

static void wait_unlink(struct image_wait **head, struct image_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (*head == w)
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static int read_json_at(int dirfd, const char *path, size_t max, struct json_doc **doc,
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

static const char *json_cstr(const struct json_value *v)
{
    if (!v || v->type != JSON_STRING || json_str_has_nul(v))
        return NULL;
    return v->u.str.s;
}

/* ------------------------------------------------------------------ refs files */

struct ref_entry {
    char ref[REF_CANON_MAX];
    char hex[HEX_LEN + 1];
    int64_t pulled_at;
};

/* Reads refs/<name>; the ref inside must hash to the file name, so a file can
 * never answer for another reference. */
static int ref_read(struct image_cache *ic, const char *name, struct ref_entry *e)
{
    struct json_doc *doc = NULL;
    const struct json_value *root, *pa;
    const char *ref, *dg;
    char key[HEX_LEN + 1];
    int ret = -1;

    if (strlen(name) != HEX_LEN + 5 || strcmp(name + HEX_LEN, ".json") != 0 ||
        !is_hex64(name, HEX_LEN))
        return -1;
    if (read_json_at(ic->refs_fd, name, META_MAX, &doc, NULL) < 0)
        return -1;
    root = json_doc_root(doc);
    ref = json_cstr(json_get(root, "ref"));
    dg = json_cstr(json_get(root, "digest"));
    pa = json_get(root, "pulled_at");
    if (!ref || !dg || !pa || pa->type != JSON_NUMBER || !pa->u.num.is_int ||
        strlen(ref) >= sizeof(e->ref) || digest_to_hex(dg, strlen(dg), e->hex) < 0)
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

static int ref_write(struct image_cache *ic, const char *key, const char *ref, const char *hex,
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
    json_w_key(&w, "ref");
    json_w_cstr(&w, ref);
    json_w_key(&w, "digest");
    json_w_cstr(&w, dg);
    json_w_key(&w, "pulled_at");
    json_w_int(&w, (int64_t)time(NULL));
    json_w_obj_end(&w);
    if (w.failed) {
        bx_err_set(err, 500, ENOMEM, "writing image reference: out of memory");
        goto out;
    }
    snprintf(name, sizeof(name), "%s.json", key);
    if (bx_write_file_atomic_at(ic->refs_fd, name, sb.data, sb.len, 0600, err) < 0 ||
        fsync_dir(ic->refs_fd, "refs", err) < 0)
        goto out;
    ret = 0;
out:
    sbuf_free(&sb);
    return ret;
}

/* Calls fn for every valid refs entry; stops when fn returns non-zero. */
typedef int (*ref_fn)(struct image_cache *ic, const char *name, const struct ref_entry *e,
                      void *arg);

static int refs_foreach(struct image_cache *ic, ref_fn fn, void *arg, struct bx_err *err)
{
    DIR *d = dir_stream(ic->refs_fd);
    struct dirent *de;
    int ret = 0;
    if (!d)
        return bx_err_sys(err, 500, "open images/refs");
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct ref_entry e;
        if (ref_read(ic, de->d_name, &e) < 0)
            continue;
        if (fn(ic, de->d_name, &e, arg) != 0)
            break;
    }
    if (!de && errno != 0)
        ret = bx_err_sys(err, 500, "read images/refs");
    closedir(d);
    return ret;
}

static int ref_unlink_if_digest(struct image_cache *ic, const char *name, const struct ref_entry *e,
                                void *arg)
{
    if (strcmp(e->hex, (const char *)arg) == 0 && unlinkat(ic->refs_fd, name, 0) < 0 &&
        errno != ENOENT)
        image_log("cannot remove refs/%s: %s", name, strerror(errno));
    return 0;
}

static int ref_find_digest(struct image_cache *ic, const char *name, const struct ref_entry *e,
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
static int tmp_remove(struct image_cache *ic, const char *name, int level)
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
        bx_err_sys(&e, 500, "cutting up a deep tree");
        goto out;
    }
    if (bx_rm_rf_at(ic->tmp_fd, name, &e) < 0)
        goto out;
    ret = 0;
out:
    for (size_t i = 0; i < moved.n; i++)
        if (tmp_remove(ic, moved.v[i], level + 1) < 0)
            ret = -1;
    free(moved.v);
    if (ret < 0 && e.msg[0])
        image_log("cannot remove tmp/%s: %s", name, e.msg);
    return ret;
}

/* Moves dirfd/name into tmp/ (atomic; tmp/ is emptied at start-up, so a
 * crash half-way through leaves nothing usable behind), then removes it. */
static int discard_at(struct image_cache *ic, int dirfd, const char *name, struct bx_err *err)
{
    char uuid[37], gone[48];
    if (bx_uuid4(uuid, err) < 0)
        return -1;
    snprintf(gone, sizeof(gone), "gone-%s", uuid);
    if (renameat(dirfd, name, ic->tmp_fd, gone) < 0) {
        if (errno == ENOENT)
            return 0;
        return bx_err_sys(err, 500, "remove %s", name);
    }
    tmp_remove(ic, gone, 0);
    return 0;
}

/* Removes the refs to hex and the blob directory. */
static int blob_remove(struct image_cache *ic, const char *hex, struct bx_err *err)
{
    int was_ready = blob_ready(ic, hex);

    if (refs_foreach(ic, ref_unlink_if_digest, (void *)hex, err) < 0)
        return -1;
    fsync_dir(ic->refs_fd, "refs", NULL);
    if (discard_at(ic, ic->blobs_fd, hex, err) < 0)
        return -1;
    if (was_ready && ic->st.cached_images > 0)
        ic->st.cached_images--;
    fsync_dir(ic->blobs_fd, "blobs", NULL);
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
    char **strv;
    *out = NULL;
    if (!v || v->type == JSON_NULL) {
        if (nullable)
            return 0;
        strv = calloc(1, sizeof(*strv));
        if (!strv)
            return bx_err_set(err, 500, ENOMEM, "out of memory");
        *out = strv;
        return 0;
    }
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, 500, EINVAL, "not a list of strings");
    strv = calloc(v->u.arr.n + 1, sizeof(*strv));
    if (!strv)
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const char *s = json_cstr(&v->u.arr.items[i]);
        if (!s || !(strv[i] = strdup(s))) {
            free_strv(&strv);
            return bx_err_set(err, 500, EINVAL, "not a list of strings");
        }
    }
    *out = strv;
    return 0;
}

static int opt_str(const struct json_value *v, char **out, struct bx_err *err)
{
    const char *s;
    *out = NULL;
    if (!v || v->type == JSON_NULL)
        return 0;
    s = json_cstr(v);
    if (!s)
        return bx_err_set(err, 500, EINVAL, "not a string");
    if (!s[0])
        return 0;
    *out = strdup(s);
    return *out ? 0 : bx_err_set(err, 500, ENOMEM, "out of memory");
}

/* Builds a struct image from blobs/<hex>/config.json (our own normalised
 * file) and takes a use reference on the digest. */
static int hand_out(struct image_cache *ic, const char *hex, struct image **out, struct bx_err *err)
{
    struct json_doc *doc = NULL;
    const struct json_value *root;
    struct image *img = NULL;
    char path[HEX_LEN + 16];
    int ret = -1;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/config.json", hex);
    if (read_json_at(ic->blobs_fd, path, IMAGE_JSON_MAX, &doc, err) < 0)
        goto fail;
    root = json_doc_root(doc);
    img = calloc(1, sizeof(*img));
    if (!img) {
        bx_err_set(err, 500, ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(img->digest, sizeof(img->digest), "sha256:%s", hex);
    if (asprintf(&img->rootfs, "%s/blobs/%s/rootfs", ic->dir, hex) < 0) {
        img->rootfs = NULL;
        bx_err_set(err, 500, ENOMEM, "out of memory");
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
    if (use_get(ic, hex) < 0) {
        bx_err_set(err, 500, ENOMEM, "out of memory");
        goto fail;
    }
    blob_touch(ic, hex);
    *out = bx_steal_ptr(&img);
    ret = 0;
fail:
    if (ret < 0 && err)
        err->status = 500; /* our own files: never the client's fault */
    image_free(img);
    json_doc_free(&doc);
    return ret;
}

void image_release(struct image_cache *ic, struct image *img)
{
    char hex[HEX_LEN + 1];
    if (!img)
        return;
    if (ic && digest_to_hex(img->digest, strlen(img->digest), hex) == 0) {
        use_put(ic, hex);
        blob_touch(ic, hex);
    }
    image_free(img);
}

/* ------------------------------------------------------------------ eviction */

struct blob_info {
    char hex[HEX_LEN + 1];
    uint64_t size;
    struct timespec used;
};

static int blob_info_read(struct image_cache *ic, const char *hex, struct blob_info *bi)
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
static void evict(struct image_cache *ic, const char *keep)
{
    uint64_t max = ic->cfg->image_cache_max_bytes, total = 0;
    struct blob_info *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d;

    if (max == 0)
        return;
    d = dir_stream(ic->blobs_fd);
    if (!d) {
        image_log("eviction: cannot open blobs: %s", strerror(errno));
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (!is_hex64(de->d_name, strlen(de->d_name)))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct blob_info *nv = realloc(v, nc * sizeof(*nv));
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        if (blob_info_read(ic, de->d_name, &v[n]) == 0) {
            total = total + v[n].size < total ? UINT64_MAX : total + v[n].size;
            n++;
        }
    }
    closedir(d);
    if (total > max && n > 0) {
        qsort(v, n, sizeof(*v), blob_info_cmp);
        for (size_t i = 0; i < n && total > max; i++) {
            struct bx_err e;
            if (strcmp(v[i].hex, keep) == 0 || use_count(ic, v[i].hex) > 0)
                continue;
            bx_err_clear(&e);
            if (blob_remove(ic, v[i].hex, &e) < 0) {
                image_log("eviction of %s failed: %s", v[i].hex, e.msg);
                continue;
            }
            image_log("evicted sha256:%s (%llu bytes): cache over %llu bytes", v[i].hex,
                      (unsigned long long)v[i].size, (unsigned long long)max);
            total -= v[i].size;
        }
    }
    free(v);
}

/* ------------------------------------------------------------------ delivery */

static void deliver_now(struct image_wait *w)
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
    wait_unlink(&w->ic->due, w);
    deliver_now(w);
}

/* Queues w's result (w->img or w->err) for delivery from the loop. */
static int schedule(struct image_cache *ic, struct image_wait *w)
{
    w->pull = NULL;
    w->timer = loop_timer_add(ic->loop, 0, on_deliver, w);
    if (!w->timer)
        return -1;
    wait_link(&ic->due, w);
    return 0;
}

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
            image_log("giving up removing a pull cgroup: %s", e.msg);
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
        image_log("cannot remove the cgroup of a pull: %s", e.msg);
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
        return bx_err_set(err, 500, ENOENT, "%s not found in PATH", argv[0]);
    if (pipe2(fds, O_CLOEXEC) < 0)
        return bx_err_sys(err, 500, "pipe2");
    /* Only our end is non-blocking; the child keeps ordinary stdio. */
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
        bx_err_sys(err, 500, "fcntl");
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
            return bx_err_set(err, 500, ENOMEM, "out of memory");
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
    bx_err_set(&e, 500, EFBIG,
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

static void pull_free(struct pull *p)
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
        tmp_remove(ic, p->tmpname, 0);
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
static void pump(struct image_cache *ic)
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
        image_log("pull of %s starts after waiting %llu ms", p->ref,
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
static void pull_cancel(struct pull *p)
{
    struct image_cache *ic = p->ic;
    pull_unlink(p);
    image_log("pull of %s cancelled: no request waits for it any more%s", p->ref,
              p->launched ? "" : " (it was queued)");
    pull_free(p);
    pump(ic);
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
        image_log("pulled %s as sha256:%s in %llu ms", p->ref, hex,
                  (unsigned long long)(bx_now_ms() - p->started_ms));
    } else {
        ic->st.pulls_failed++;
        image_log("%s", ferr->msg);
        /* A tag past tag_refresh_secs whose registry is unreachable still
         * has a usable image: serve it rather than fail the run. */
        if (p->stale[0] && blob_ready(ic, p->stale)) {
            use_hex = p->stale;
            image_log("using the cached sha256:%s for %s", p->stale, p->ref);
        }
    }
    while ((w = p->waiters) != NULL) {
        wait_unlink(&p->waiters, w);
        if (use_hex) {
            if (hand_out(ic, use_hex, &w->img, &w->err) < 0)
                w->img = NULL;
        } else {
            w->err = *ferr;
        }
        if (schedule(ic, w) < 0)
            wait_link(&now, w);
    }
    if (hex)
        evict(ic, keep);
    pull_free(p);
    pump(ic);
    /* Only when no timer could be allocated: we are in a loop callback
     * here, never inside image_get, so a direct call keeps the contract. */
    while ((w = now) != NULL) {
        wait_unlink(&now, w);
        deliver_now(w);
    }
}

static void pull_fail(struct pull *p, struct bx_err *e)
{
    if (e->status != 507)
        e->status = 500;
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
        return bx_err_set(err, 500, EINVAL, "image config: %s is not a list of strings", key);
    json_w_arr_begin(w);
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *s = &v->u.arr.items[i];
        if (!json_cstr(s))
            return bx_err_set(err, 500, EINVAL, "image config: %s is not a list of strings", key);
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
    if (!json_cstr(v))
        return bx_err_set(err, 500, EINVAL, "image config: %s is not a string", key);
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
        bx_err_sys(err, 500, "open image layout");
        goto out;
    }
    if (read_json_at(lfd, "index.json", IMAGE_JSON_MAX, &index, err) < 0)
        goto out;
    ms = json_get(json_doc_root(index), "manifests");
    for (size_t i = 0; ms && ms->type == JSON_ARRAY && i < ms->u.arr.n; i++) {
        const struct json_value *m = &ms->u.arr.items[i];
        const char *name = json_cstr(json_get(json_get(m, "annotations"), REF_NAME_ANNOTATION));
        if (name && strcmp(name, LAYOUT_TAG) == 0) {
            const char *mt = json_cstr(json_get(m, "mediaType"));
            if (!mt || strcmp(mt, OCI_MANIFEST) != 0) {
                bx_err_set(err, 500, EINVAL, "unsupported manifest type %.100s",
                           mt ? mt : "(none)");
                goto out;
            }
            dg = json_cstr(json_get(m, "digest"));
            break;
        }
    }
    if (!dg || digest_to_hex(dg, strlen(dg), p->hex) < 0) {
        bx_err_set(err, 500, EINVAL, "image layout has no sha256 manifest for the pulled image");
        goto out;
    }
    snprintf(path, sizeof(path), "blobs/sha256/%s", p->hex);
    if (read_json_at(lfd, path, IMAGE_JSON_MAX, &manifest, err) < 0)
        goto out;
    cdg = json_cstr(json_get(json_get(json_doc_root(manifest), "config"), "digest"));
    if (!cdg || digest_to_hex(cdg, strlen(cdg), chex) < 0) {
        bx_err_set(err, 500, EINVAL, "image manifest has no sha256 config digest");
        goto out;
    }
    snprintf(path, sizeof(path), "blobs/sha256/%s", chex);
    if (read_json_at(lfd, path, IMAGE_JSON_MAX, &config, err) < 0)
        goto out;
    cfgv = json_doc_root(config);
    if (!cfgv || cfgv->type != JSON_OBJECT) {
        bx_err_set(err, 500, EINVAL, "image config is not a JSON object");
        goto out;
    }
    c = json_get(cfgv, "config"); /* absent: an image with no defaults */
    if (c && c->type != JSON_OBJECT && c->type != JSON_NULL) {
        bx_err_set(err, 500, EINVAL, "image config: config is not an object");
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
        bx_err_set(err, 500, E2BIG, "image config too large");
        goto out;
    }
    p->config_json = sbuf_steal(&sb, &p->config_len);
    ret = 0;
out:
    if (ret < 0 && err)
        err->status = 500;
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
        return bx_err_set(err, 500, ELOOP, "image filesystem nests deeper than %d directories",
                          TREE_DEPTH_MAX);
    }
    d = fdopendir(fd);
    if (!d) {
        bx_err_sys(err, 500, "read image filesystem");
        close(fd);
        return -1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        uint64_t b;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            ret = bx_err_sys(err, 500, "stat in image filesystem");
            break;
        }
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                ret = bx_err_sys(err, 500, "remove device node from image");
                break;
            }
            continue;
        }
        b = (uint64_t)st.st_blocks * 512u;
        *total = *total + b < *total ? UINT64_MAX : *total + b;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                ret = bx_err_sys(err, 500, "open directory in image filesystem");
                break;
            }
            if ((ret = tree_walk(sub, depth + 1, total, err)) < 0)
                break;
        }
    }
    if (ret == 0 && !de && errno != 0)
        ret = bx_err_sys(err, 500, "read image filesystem");
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

    if (!blob_ready(ic, p->hex)) {
        if (!p->config_json) {
            bx_err_set(err, 500, EINVAL, "internal: no image config");
            goto out;
        }
        if (mkdirat(p->tmpfd, "blob", 0700) < 0) {
            bx_err_sys(err, 500, "mkdir blob");
            goto out;
        }
        bfd = openat(p->tmpfd, "blob", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bfd < 0) {
            bx_err_sys(err, 500, "open blob");
            goto out;
        }
        if (renameat(p->tmpfd, "rootfs", bfd, "rootfs") < 0) {
            bx_err_sys(err, 500, "move rootfs");
            goto out;
        }
        if (bx_write_file_atomic_at(bfd, "config.json", p->config_json, p->config_len, 0600, err) <
                0 ||
            write_u64_file(bfd, "size", p->size, err) < 0 || fsync_dir(bfd, "blob", err) < 0)
            goto out;
        /* A directory without `ready` is a leftover of a failed install. */
        if (discard_at(ic, ic->blobs_fd, p->hex, err) < 0)
            goto out;
        if (renameat(p->tmpfd, "blob", ic->blobs_fd, p->hex) < 0) {
            bx_err_sys(err, 500, "install image");
            goto out;
        }
        if (fsync_dir(ic->blobs_fd, "blobs", err) < 0)
            goto out;
        n = snprintf(ready, sizeof(ready), "sha256:%s\n", p->hex);
        if (bx_write_file_atomic_at(bfd, "ready", ready, (size_t)n, 0600, err) < 0 ||
            fsync_dir(bfd, p->hex, err) < 0)
            goto out;
        ic->st.cached_images++;
    }
    if (ref_write(ic, p->key, p->ref, p->hex, err) < 0)
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
            bx_err_set(&e, 500, 0, "pulling %.300s: %s killed by signal %d%s%s", p->ref, tool,
                       WTERMSIG(status), line[0] ? ": " : "", line);
        else
            bx_err_set(&e, 500, 0, "pulling %.300s: %s failed (exit %d)%s%s", p->ref, tool,
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
        if (blob_ready(p->ic, p->hex)) {
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
            bx_err_sys(&e, 500, "open unpacked rootfs");
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
    bx_err_set(&e, 500, ETIMEDOUT, "image pull timed out after %llu s: %.300s",
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
            return bx_err_set(err, 500, EINVAL, "config registry_mirrors.%.100s: unusable URL",
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
        return bx_err_set(err, 400, ENAMETOOLONG, "image reference too long");
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
        bx_err_sys(err, 500, "chown auth.json");
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
        bx_err_sys(err, 500, "mkdir images/tmp/%s", p->tmpname);
        p->tmpname[0] = '\0';
        return -1;
    }
    p->tmpfd = openat(ic->tmp_fd, p->tmpname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->tmpfd < 0)
        return bx_err_sys(err, 500, "open images/tmp/%s", p->tmpname);
    if (mkdirat(p->tmpfd, "dl", 0700) < 0)
        return bx_err_sys(err, 500, "mkdir images/tmp/%s/dl", p->tmpname);
    p->dlfd = openat(p->tmpfd, "dl", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (p->dlfd < 0)
        return bx_err_sys(err, 500, "open images/tmp/%s/dl", p->tmpname);
    if (root && fchown(p->dlfd, PULL_UID, PULL_GID) < 0)
        return bx_err_sys(err, 500, "chown images/tmp/%s/dl", p->tmpname);
    if (asprintf(&p->tmppath, "%s/tmp/%s", ic->dir, p->tmpname) < 0) {
        p->tmppath = NULL;
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    }
    if (asprintf(&p->dlpath, "%s/dl", p->tmppath) < 0) {
        p->dlpath = NULL;
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    }
    /* HOME and TMPDIR in skopeo's own directory: it reads no ~/.docker or
     * ~/.config of any host user. */
    p->skenv[0] = ic->env[0];
    if (asprintf(&p->skenv[1], "HOME=%s", root ? PULL_BIND : p->dlpath) < 0) {
        p->skenv[1] = NULL;
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    }
    if (asprintf(&p->skenv[2], "TMPDIR=%s", root ? PULL_BIND : p->dlpath) < 0) {
        p->skenv[2] = NULL;
        return bx_err_set(err, 500, ENOMEM, "out of memory");
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
            return bx_err_set(err, 500, ENOMEM, "out of memory");
    }
    return 0;
}

/* A new pull starts now when fewer than max_concurrent_pulls run (and none
 * waits before it), else it waits in FIFO order for a slot. */
static int pull_start(struct image_cache *ic, const struct imgref *ref, const char *canon,
                      const char *key, const char *stale, struct pull **out, struct bx_err *err)
{
    struct pull *p;
    char src[REF_CANON_MAX + 600];

    p = calloc(1, sizeof(*p));
    if (!p)
        return bx_err_set(err, 500, ENOMEM, "out of memory");
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
        bx_err_set(err, 500, ENOMEM, "out of memory");
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
        image_log("pull of %s waits: %u of max_concurrent_pulls %u running", canon, ic->active,
                  max_pulls(ic));
    }
    *out = p;
    return 0;
fail:
    bx_err_wrap(err, "pulling %.300s", canon);
    pull_free(p);
    return -1;
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
        return bx_err_set(err, 400, EINVAL, "invalid image reference");
    sha256_hex(canon, strlen(canon), key);
    return 0;
}

static int ref_lookup(struct image_cache *ic, const char *canon, const char *key,
                      struct ref_entry *e)
{
    char name[HEX_LEN + 6];
    snprintf(name, sizeof(name), "%s.json", key);
    if (ref_read(ic, name, e) < 0 || strcmp(e->ref, canon) != 0)
        return -1;
    return 0;
}

/* A cache hit: the image is prepared now, delivered from the loop. */
static int hit(struct image_cache *ic, struct image_wait *w, const char *hex, struct bx_err *err)
{
    if (hand_out(ic, hex, &w->img, err) < 0)
        return -1;
    if (schedule(ic, w) < 0) {
        image_release(ic, w->img);
        w->img = NULL;
        return bx_err_set(err, 500, ENOMEM, "out of memory");
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
    image_log("cached %s unusable (%s); pulling again", canon, he.msg);
    if (use_count(ic, hex) == 0 && blob_remove(ic, hex, &he) < 0)
        image_log("cannot remove sha256:%s: %s", hex, he.msg);
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
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    w->ic = ic;
    w->cb = cb;
    w->arg = arg;

    p = pull_find(ic, canon);
    if (p)
        goto attach;
    if (ref_lookup(ic, canon, key, &e) == 0 && blob_ready(ic, e.hex)) {
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
    } else if (ref->digest[0] && digest_to_hex(ref->digest, strlen(ref->digest), hex) == 0 &&
               blob_ready(ic, hex)) {
        /* Pinned to content we already have (pulled under another name). */
        struct bx_err he;
        int r;
        bx_err_clear(&he);
        if (ref_write(ic, key, canon, hex, &he) < 0)
            image_log("cannot record %s: %s", canon, he.msg);
        r = try_hit(ic, w, hex, canon, err);
        if (r == 0)
            goto done;
        if (r < 0) {
            free(w);
            return -1;
        }
    }
    p = NULL;
    if (pull_start(ic, ref, canon, key, stale, &p, err) < 0 || !p) {
        free(w);
        return -1;
    }
attach:
    w->pull = p;
    wait_link(&p->waiters, w);
done:
    if (wout)
        *wout = w;
    return 0;
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
        wait_unlink(&p->waiters, w);
        if (!p->waiters)
            pull_cancel(p);
    } else {
        wait_unlink(&w->ic->due, w);
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
    if (!blob_ready(ic, e->hex))
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

    if (refs_foreach(ic, list_collect, &a, err) < 0)
        goto out;
    if (a.failed) {
        bx_err_set(err, 500, ENOMEM, "out of memory");
        goto out;
    }
    if (a.n > 1)
        qsort(a.v, a.n, sizeof(*a.v), list_item_cmp);
    json_w_init(&w, out);
    json_w_arr_begin(&w);
    for (size_t i = 0; i < a.n; i++) {
        struct blob_info bi;
        char dg[HEX_LEN + 8];
        if (blob_info_read(ic, a.v[i].hex, &bi) < 0)
            continue;
        snprintf(dg, sizeof(dg), "sha256:%s", a.v[i].hex);
        json_w_obj_begin(&w);
        json_w_key(&w, "ref");
        json_w_cstr(&w, a.v[i].ref);
        json_w_key(&w, "digest");
        json_w_cstr(&w, dg);
        json_w_key(&w, "size_bytes");
        json_w_uint(&w, bi.size);
        json_w_key(&w, "last_used");
        json_w_int(&w, (int64_t)bi.used.tv_sec);
        json_w_key(&w, "pulled_at");
        json_w_int(&w, a.v[i].pulled_at);
        json_w_key(&w, "in_use");
        json_w_bool(&w, use_count(ic, a.v[i].hex) > 0);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    if (w.failed) {
        bx_err_set(err, 500, E2BIG, "image list too large");
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
        return bx_err_set(err, 409, EBUSY, "image %.300s is being pulled", canon);
    if (ref_lookup(ic, canon, key, &e) < 0)
        return bx_err_set(err, 404, ENOENT, "image not found: %.300s", canon);
    if (use_count(ic, e.hex) > 0)
        return bx_err_set(err, 409, EBUSY, "image %.300s is in use", canon);
    snprintf(name, sizeof(name), "%s.json", key);
    if (unlinkat(ic->refs_fd, name, 0) < 0 && errno != ENOENT)
        return bx_err_sys(err, 500, "remove image reference");
    fsync_dir(ic->refs_fd, "refs", NULL);
    want[0] = e.hex;
    want[1] = NULL;
    if (refs_foreach(ic, ref_find_digest, want, err) < 0)
        return -1;
    if (!want[1] && blob_remove(ic, e.hex, err) < 0)
        return -1;
    image_log("deleted %s (sha256:%s%s)", canon, e.hex, want[1] ? ", still referenced" : "");
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
        return bx_err_sys(err, 500, "mkdir images/%s", name);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return bx_err_sys(err, 500, "open images/%s", name);
    return fd;
}

/* Leftovers of a previous run: everything in tmp/, blob directories without
 * `ready` (or with a foreign name), refs files that are unreadable or point
 * at a missing blob. */
static int sweep(struct image_cache *ic, struct bx_err *err)
{
    struct dirent *de;
    DIR *d;

    d = dir_stream(ic->tmp_fd);
    if (!d)
        return bx_err_sys(err, 500, "open images/tmp");
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        /* Not fatal: whatever resists is retried at the next start. */
        tmp_remove(ic, de->d_name, 0);
    }
    closedir(d);

    d = dir_stream(ic->blobs_fd);
    if (!d)
        return bx_err_sys(err, 500, "open images/blobs");
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (is_hex64(de->d_name, strlen(de->d_name)) && blob_ready(ic, de->d_name)) {
            ic->st.cached_images++;
            continue;
        }
        image_log("removing incomplete images/blobs/%s", de->d_name);
        if (discard_at(ic, ic->blobs_fd, de->d_name, err) < 0) {
            closedir(d);
            return bx_err_wrap(err, "cleaning images/blobs");
        }
    }
    closedir(d);

    d = dir_stream(ic->refs_fd);
    if (!d)
        return bx_err_sys(err, 500, "open images/refs");
    while ((de = readdir(d)) != NULL) {
        struct ref_entry e;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (ref_read(ic, de->d_name, &e) == 0 && blob_ready(ic, e.hex))
            continue;
        if (unlinkat(ic->refs_fd, de->d_name, 0) < 0 && errno != ENOENT &&
            bx_rm_rf_at(ic->refs_fd, de->d_name, NULL) < 0)
            image_log("cannot remove images/refs/%s: %s", de->d_name, strerror(errno));
    }
    closedir(d);
    return 0;
}

int image_cache_new(struct image_cache **out, struct loop *l, const struct config *cfg,
                    struct bx_err *err)
{
    struct image_cache *ic;
    const char *path_env = getenv("PATH");
    int root = -1, pfd = -1;

    *out = NULL;
    if (!cfg->home || cfg->home[0] != '/')
        return bx_err_set(err, 500, EINVAL, "home must be an absolute path");
    ic = calloc(1, sizeof(*ic));
    if (!ic)
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    ic->loop = l;
    ic->cfg = cfg;
    ic->dirfd = ic->refs_fd = ic->blobs_fd = ic->tmp_fd = -1;
    if (!path_env || !path_env[0])
        path_env = DEFAULT_PATH;
    if (asprintf(&ic->dir, "%s/images", cfg->home) < 0) {
        ic->dir = NULL;
        goto oom;
    }
    root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        bx_err_sys(err, 500, "open /");
        goto fail;
    }
    pfd = bx_mkdir_p_at(root, ic->dir + 1, 0700, 1, err);
    bx_close(&root);
    if (pfd < 0)
        goto fail;
    ic->dirfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bx_close(&pfd);
    if (ic->dirfd < 0) {
        bx_err_sys(err, 500, "open %s", ic->dir);
        goto fail;
    }
    if ((ic->refs_fd = open_subdir(ic->dirfd, "refs", err)) < 0 ||
        (ic->blobs_fd = open_subdir(ic->dirfd, "blobs", err)) < 0 ||
        (ic->tmp_fd = open_subdir(ic->dirfd, "tmp", err)) < 0)
        goto fail;
    if (sweep(ic, err) < 0)
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
        image_log("skopeo not found in PATH: images can only come from the cache");
    }
    if (proc_find_in_path("umoci", path_env, ic->umoci, sizeof(ic->umoci)) < 0) {
        ic->umoci[0] = '\0';
        image_log("umoci not found in PATH: images can only come from the cache");
    }
    if (proc_find_in_path("sync", path_env, ic->sync_bin, sizeof(ic->sync_bin)) < 0) {
        ic->sync_bin[0] = '\0';
        image_log("sync not found in PATH: unpacked images are not flushed before use");
    }
    *out = ic;
    return 0;
oom:
    bx_err_set(err, 500, ENOMEM, "out of memory");
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
            wait_unlink(&p->waiters, w);
            free(w);
        }
        pull_free(p);
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
        wait_unlink(&ic->due, w);
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
