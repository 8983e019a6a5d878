/* Box records (issue 13): <home>/boxes/<id>/box.json holds everything a
 * restarted Boxer needs to serve the box again (BoxInfo's fields, the image
 * digest, limits, env, the sandbox generation, a removal in progress).  It
 * is rewritten atomically (temp file, fsync, rename) on every state change,
 * so a crash leaves the old record or the new one, never a torn one. */
#include "box_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "run.h"

#define BOX_RECORD "box.json"
#define BOX_RECORD_MAX (4u << 20)

static void w_s(struct json_writer *w, const char *k, const char *v)
{
    json_w_key(w, k);
    if (v)
        json_w_cstr(w, v);
    else
        json_w_null(w);
}

static void w_u(struct json_writer *w, const char *k, uint64_t v)
{
    json_w_key(w, k);
    json_w_uint(w, v);
}

int box_store_save(struct box *b)
{
    struct sbuf sb;
    struct json_writer w;
    struct bx_err err;
    int ret = -1;

    sbuf_init(&sb, BOX_RECORD_MAX);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    w_s(&w, "id", b->id);
    w_s(&w, "name", b->name);
    w_s(&w, "image", b->image);
    w_s(&w, "image_digest", b->digest[0] ? b->digest : NULL);
    json_w_key(&w, "cpu");
    json_w_double(&w, b->cpu);
    w_u(&w, "memory_mb", b->memory_mb);
    w_u(&w, "disk_size_gb", b->disk_gb);
    w_s(&w, "workdir", b->workdir);
    box_w_strv(&w, "env", b->env);
    /* STOPPING is still running: a crash during a stop restarts the box,
     * as a crash of a running box does. */
    /* A box the drain stopped (issue 17) was running when Boxer stopped:
     * restart_boxes starts it again, as after any other stop of Boxer. */
    w_s(&w, "status", b->drained && b->status == BOX_STOPPED ? "running"
                                                              : box_status_name(b->status));
    w_s(&w, "error_code", b->error_code);
    w_s(&w, "error_message", b->error_msg);
    w_u(&w, "created_at", (uint64_t)b->created);
    w_u(&w, "started_at", (uint64_t)b->started);
    w_u(&w, "stopped_at", (uint64_t)b->stopped);
    w_u(&w, "generation", b->gen);
    w_u(&w, "idle_timeout_secs", b->idle_secs);
    json_w_key(&w, "network");
    json_w_bool(&w, b->network != 0);
    json_w_key(&w, "volumes");
    json_w_arr_begin(&w);
    for (size_t i = 0; i < b->nvolumes; i++) {
        json_w_obj_begin(&w);
        w_s(&w, "host_path", b->volumes[i].host_path);
        w_s(&w, "guest_path", b->volumes[i].guest_path);
        json_w_key(&w, "readonly");
        json_w_bool(&w, b->volumes[i].readonly != 0);
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    json_w_key(&w, "removing");
    json_w_bool(&w, b->removing);
    json_w_obj_end(&w);
    bx_err_clear(&err);
    if (w.failed)
        bx_err_set(&err, BX_E_INTERNAL, E2BIG, "record too large");
    else {
        int dfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
            bx_err_sys(&err, BX_E_INTERNAL, "open %s", b->dir);
        else {
            ret = bx_write_file_atomic_at(dfd, BOX_RECORD, sb.data, sb.len, 0600, &err);
            close(dfd);
        }
    }
    if (ret < 0)
        bx_log_error("box %s: saving its record: %s", b->id, err.msg);
    sbuf_free(&sb);
    return ret;
}

int box_recover(const struct config *cfg, struct bx_err *err)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/boxes", cfg->home) >= sizeof(dir))
        return bx_err_set(err, BX_E_INTERNAL, ENAMETOOLONG, "home is too long for boxes");
    return recover_sweep_dir(dir, err);
}

/* ---- load ---- */

static const char *get_s(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return v && v->type == JSON_STRING && !json_str_has_nul(v) ? v->u.str.s : NULL;
}

static uint64_t get_u(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return v && v->type == JSON_NUMBER && v->u.num.is_int && v->u.num.i > 0 ? (uint64_t)v->u.num.i
                                                                          : 0;
}

static int dup_opt(char **dst, const char *s)
{
    if (!s)
        return 0;
    *dst = strdup(s);
    return *dst ? 0 : -1;
}

static int get_strv(const struct json_value *o, const char *k, char ***out)
{
    const struct json_value *v = json_get(o, k);
    char **r;
    if (!v || v->type != JSON_ARRAY)
        return 0;
    r = calloc(v->u.arr.n + 1, sizeof(*r));
    if (!r)
        return -1;
    for (size_t i = 0, n = 0; i < v->u.arr.n; i++) {
        const struct json_value *s = &v->u.arr.items[i];
        if (s->type != JSON_STRING || json_str_has_nul(s))
            continue;
        if (!(r[n++] = strdup(s->u.str.s))) {
            for (size_t j = 0; j < n; j++)
                free(r[j]);
            free(r);
            return -1;
        }
    }
    *out = r;
    return 0;
}

/* The box of one record; NULL (logged) when it cannot be served. */
static int get_bool(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return v && v->type == JSON_BOOL && v->u.boolean;
}

/* The record's volumes, checked against today's volume_roots. */
static int get_volumes(const struct json_value *o, struct box *b)
{
    const struct json_value *v = json_get(o, "volumes");
    struct bx_err err;
    if (!v || v->type != JSON_ARRAY || v->u.arr.n == 0)
        return 0;
    b->volumes = calloc(v->u.arr.n, sizeof(*b->volumes));
    if (!b->volumes)
        return -1;
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *e = &v->u.arr.items[i];
        const char *hp = get_s(e, "host_path"), *gp = get_s(e, "guest_path");
        b->nvolumes = i + 1;
        if (!hp || !gp || dup_opt(&b->volumes[i].host_path, hp) < 0 ||
            dup_opt(&b->volumes[i].guest_path, gp) < 0)
            return -1;
        b->volumes[i].readonly = get_bool(e, "readonly");
    }
    bx_err_clear(&err);
    if (box_check_volumes(b->m->p.cfg, b->volumes, b->nvolumes, &err) < 0) {
        bx_log_warn("box %s: %s", b->id, err.msg);
        return -1;
    }
    return 0;
}

static struct box *box_from_record(struct box_mgr *m, const char *id, const struct json_value *o)
{
    struct box *b = calloc(1, sizeof(*b));
    const char *st = get_s(o, "status"), *image = get_s(o, "image");
    const struct json_value *cpu = json_get(o, "cpu"), *rm = json_get(o, "removing");
    if (!b)
        return NULL;
    b->m = m;
    /* load_one checked that id fits */
    memcpy(b->id, id, strlen(id) + 1);
    if ((size_t)snprintf(b->dir, sizeof(b->dir), "%s/%s", m->home_boxes, id) >= sizeof(b->dir)) {
        free(b);
        return NULL;
    }
    b->removing = rm && rm->type == JSON_BOOL && rm->u.boolean;
    if (!image || !st || dup_opt(&b->image, image) < 0 || dup_opt(&b->name, get_s(o, "name")) < 0 ||
        dup_opt(&b->workdir, get_s(o, "workdir") ? get_s(o, "workdir") : "/root") < 0 ||
        get_strv(o, "env", &b->env) < 0) {
        bx_log_error("box %s: its record is unreadable", id);
        free(b->image);
        free(b->name);
        free(b->workdir);
        free(b);
        return NULL;
    }
    b->cpu = cpu && cpu->type == JSON_NUMBER && cpu->u.num.d > 0 ? cpu->u.num.d
                                                                 : m->p.cfg->box_defaults.cpu;
    b->memory_mb = get_u(o, "memory_mb");
    if (!b->memory_mb)
        b->memory_mb = m->p.cfg->box_defaults.memory_mb;
    b->disk_gb = get_u(o, "disk_size_gb");
    if (!b->disk_gb)
        b->disk_gb = m->p.cfg->box_defaults.disk_size_gb;
    b->created = (time_t)get_u(o, "created_at");
    b->started = (time_t)get_u(o, "started_at");
    b->stopped = (time_t)get_u(o, "stopped_at");
    b->gen = (unsigned)get_u(o, "generation");
    b->idle_secs = get_u(o, "idle_timeout_secs");
    b->network = get_bool(o, "network");
    if (get_s(o, "image_digest") && strlen(get_s(o, "image_digest")) < sizeof(b->digest))
        snprintf(b->digest, sizeof(b->digest), "%s", get_s(o, "image_digest"));
    if (get_volumes(o, b) < 0) {
        /* The operator may have narrowed volume_roots since: such a box is
         * not started again with the old mounts. */
        b->restarting = 0;
        b->status = BOX_ERROR;
        snprintf(b->error_code, sizeof(b->error_code), "%s", "INVALID_REQUEST");
        snprintf(b->error_msg, sizeof(b->error_msg), "%s",
                 "its volumes are unreadable or no longer under volume_roots");
        return b;
    }
    if (get_s(o, "error_code"))
        snprintf(b->error_code, sizeof(b->error_code), "%s", get_s(o, "error_code"));
    if (get_s(o, "error_message"))
        snprintf(b->error_msg, sizeof(b->error_msg), "%s", get_s(o, "error_message"));
    if (strcmp(st, "running") == 0 || strcmp(st, "creating") == 0) {
        b->restarting = 1;
        b->status = BOX_STOPPED;
    } else if (strcmp(st, "stopped") == 0) {
        b->status = BOX_STOPPED;
    } else {
        b->status = BOX_ERROR;
    }
    return b;
}

/* Loads <home>/boxes/<id>/box.json; 1 when the box was added, 0 when the
 * directory was removed or skipped. */
static int load_one(struct box_mgr *m, int dfd, const char *id)
{
    struct json_limits lim = {BOX_RECORD_MAX, 16, 200000};
    struct json_doc *doc = NULL;
    struct bx_err err;
    char *text = NULL, path[PATH_MAX + 32];
    size_t len = 0;
    struct box *b = NULL;

    bx_err_clear(&err);
    if (strlen(id) >= sizeof(b->id) || strncmp(id, "box_", 4) != 0)
        return 0;
    snprintf(path, sizeof(path), "%s/" BOX_RECORD, id);
    if (bx_read_file_at(dfd, path, BOX_RECORD_MAX, &text, &len, &err) < 0) {
        /* A crash between mkdir and the first record: nothing to keep. */
        bx_log_info("box %s: no record, removing its directory", id);
        if (bx_rm_rf_at(dfd, id, &err) < 0)
            bx_log_error("box %s: %s", id, err.msg);
        return 0;
    }
    if (json_parse(text, len, &lim, &doc, &err) == 0 &&
        json_doc_root(doc)->type == JSON_OBJECT)
        b = box_from_record(m, id, json_doc_root(doc));
    else
        bx_log_error("box %s: its record is unreadable: %s", id, err.msg);
    json_doc_free(&doc);
    free(text);
    if (!b)
        return 0;
    if (b->removing) {
        /* A removal cut short by a crash: finish it. */
        bx_log_info("box %s: finishing its removal", id);
        if (bx_rm_rf_at(dfd, id, &err) < 0)
            bx_log_error("box %s: %s", id, err.msg);
        free(b->image);
        free(b->name);
        free(b->workdir);
        if (b->env)
            for (size_t i = 0; b->env[i]; i++)
                free(b->env[i]);
        free(b->env);
        free(b);
        return 0;
    }
    /* The box holds its image from now on, stopped or not: the cache may
     * not evict it nor DELETE /images remove it (a start needs it). */
    if (b->digest[0] && m->p.images &&
        image_acquire_digest(m->p.images, b->digest, &b->img, &err) < 0)
        bx_log_warn("box %s: %s (pulled by digest at its next start)", id, err.msg);
    /* The old sandbox's runsc state is meaningless now (its processes are
     * gone): a fresh state directory for the next start. */
    snprintf(path, sizeof(path), "%s/state", id);
    if (bx_rm_rf_at(dfd, path, &err) < 0 || mkdirat(dfd, path, 0700) < 0)
        bx_log_error("box %s: resetting its runsc state: %s", id, err.msg[0] ? err.msg : strerror(errno));
    b->next = m->boxes;
    m->boxes = b;
    return 1;
}

/* Newest first, as box_create links them. */
static void sort_boxes(struct box_mgr *m)
{
    struct box *sorted = NULL;
    while (m->boxes) {
        struct box *b = m->boxes, **pp = &sorted;
        m->boxes = b->next;
        while (*pp && (*pp)->created > b->created)
            pp = &(*pp)->next;
        b->next = *pp;
        *pp = b;
    }
    m->boxes = sorted;
}

int box_store_load_all(struct box_mgr *m, struct bx_err *err)
{
    DIR *d;
    struct dirent *de;
    int dfd = open(m->home_boxes, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    unsigned n = 0, restarted = 0;

    if (dfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", m->home_boxes);
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return bx_err_sys(err, BX_E_INTERNAL, "fdopendir %s", m->home_boxes);
    }
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n += (unsigned)load_one(m, dirfd(d), de->d_name);
    closedir(d);
    sort_boxes(m);
    for (struct box *b = m->boxes; b; b = b->next) {
        struct bx_err serr;
        if (!b->restarting)
            continue;
        b->restarting = 0;
        if (!m->p.cfg->restart_boxes) {
            b->stopped = time(NULL);
            box_store_save(b);
            continue;
        }
        bx_err_clear(&serr);
        if (box_begin_start(b, &serr) < 0) {
            b->status = BOX_ERROR;
            snprintf(b->error_code, sizeof(b->error_code), "%s", box_err_code(&serr));
            snprintf(b->error_msg, sizeof(b->error_msg), "%s", serr.msg);
            box_store_save(b);
            continue;
        }
        restarted++;
    }
    if (n)
        bx_log_info("boxes: %u loaded, %u started again", n, restarted);
    return 0;
}
