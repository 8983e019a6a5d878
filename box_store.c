/* Box records (issue 13): <home>/boxes/<id>/box.json holds everything a
 * restarted Boxer needs to serve the box again (BoxInfo's fields, the image
 * digest, limits, env, the sandbox generation, a removal in progress).  It
 * is rewritten atomically (temp file, fsync, rename) on every state change,
 * so a crash leaves the old record or the new one, never a torn one. */
#include "box_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
    time_t last;
    struct sbuf sb;
    struct json_writer w;
    struct bx_err err;
    int ret = -1;

    /* A box made in advance has no record: after a crash, the directory
     * without one is removed at the next start (load_one). */
    if (b->pooled)
        return 0;
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
    /* The last activity as BoxInfo shows it (touches and exec ends).  It is
     * written with the record, never on its own: an exec's end is in its
     * own record already, and a file transfer or attach since the last
     * write is saved at shutdown (box_mgr_free) or lost with a kill -9. */
    (void)box_exec_running(b, &last);
    w_u(&w, "last_active_at", (uint64_t)last);
    json_w_key(&w, "network");
    json_w_bool(&w, b->network != 0);
    if (b->set_user) {
        char user[32];
        snprintf(user, sizeof(user), "%" PRIu32 ":%" PRIu32, b->uid, b->gid);
        w_s(&w, "user", user);
    }
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
    else
        b->saved_active = last;
    sbuf_free(&sb);
    return ret;
}

/* ---- exec records ---- */

#define EXEC_DIR "execs"
/* cmd, env, workdir and a message: the exec request is bounded well below */
#define EXEC_RECORD_MAX (4u << 20)
/* per stream: config.c's bound of exec_output_bytes */
#define EXEC_OUTPUT_FILE_MAX (1ull << 30)

/* <box dir>/execs, made when missing (boxes from before exec records). */
static int open_exec_dir(struct box *b, int create)
{
    char p[PATH_MAX + 16];
    int fd;
    snprintf(p, sizeof(p), "%s/" EXEC_DIR, b->dir);
    fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -1;
        fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    return fd;
}

/* Temp file and rename, no fsync: an exec must not wait for the disk, and
 * what a crash of Boxer leaves in the page cache is read back anyway. */
static int put_file(int dfd, const char *name, const char *a, size_t alen, const char *b2,
                    size_t blen)
{
    char tmp[96];
    int fd, ret = -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    if ((alen && bx_write_all(fd, a, alen) < 0) || (blen && bx_write_all(fd, b2, blen) < 0))
        goto out;
    if (close(fd) < 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (renameat(dfd, tmp, dfd, name) < 0)
        goto out;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (ret < 0) {
        int saved = errno;
        unlinkat(dfd, tmp, 0);
        errno = saved;
    }
    return ret;
}

void box_store_save_exec(struct box_exec *e)
{
    struct box *b = e->box;
    struct sbuf sb, so, se;
    struct json_writer w;
    char name[96];
    int dfd;

    if (e->hidden)
        return;
    /* the kept output of each stream, raw (the log's tail; bounded) */
    sbuf_init(&so, (size_t)e->log.max + 1);
    sbuf_init(&se, (size_t)e->log.max + 1);
    if (!e->running && (exec_log_text(&e->log, EXEC_STDOUT, &so) < 0 ||
                        exec_log_text(&e->log, EXEC_STDERR, &se) < 0)) {
        bx_log_error("box %s: exec %s: out of memory for its output", b->id, e->id);
        sbuf_free(&so);
        sbuf_free(&se);
        return;
    }
    if (!e->order_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e->order_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    dfd = open_exec_dir(b, 1);
    if (dfd < 0) {
        bx_log_error("box %s: exec %s: its record: %s", b->id, e->id, strerror(errno));
        sbuf_free(&so);
        sbuf_free(&se);
        return;
    }
    sbuf_init(&sb, EXEC_RECORD_MAX);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    w_s(&w, "id", e->id);
    box_w_strv(&w, "cmd", e->cmd);
    if (e->env) /* absent: no env given (ExecInfo says null, not {}) */
        box_w_strv(&w, "env", e->env);
    w_s(&w, "workdir", e->workdir);
    w_u(&w, "timeout_ms", e->timeout_ms);
    json_w_key(&w, "running");
    json_w_bool(&w, e->running);
    json_w_key(&w, "failed");
    json_w_bool(&w, e->failed);
    json_w_key(&w, "exit_code");
    json_w_int(&w, e->exit_code);
    w_s(&w, "error_message", e->error);
    w_u(&w, "created_at", (uint64_t)e->created);
    w_u(&w, "finished_at", (uint64_t)e->finished);
    w_u(&w, "wall_ms", e->wall_ms);
    json_w_key(&w, "timed_out");
    json_w_bool(&w, e->timed_out);
    w_u(&w, "order_ns", e->order_ns);
    /* The output is in <id>.out as it was (it need not be UTF-8). */
    json_w_key(&w, "canceled");
    json_w_bool(&w, e->canceled);
    json_w_key(&w, "truncated");
    json_w_bool(&w, exec_log_truncated(&e->log));
    w_u(&w, "stdout_bytes", so.len);
    w_u(&w, "stderr_bytes", se.len);
    json_w_obj_end(&w);
    if (w.failed) {
        bx_log_error("box %s: exec %s: its record is too large", b->id, e->id);
        goto out;
    }
    /* The output first: the record, renamed last, says how much of it
     * belongs to this exec. */
    snprintf(name, sizeof(name), "%s.out", e->id);
    if (!e->running &&
        put_file(dfd, name, so.data, so.len, se.data, se.len) < 0) {
        bx_log_error("box %s: exec %s: writing its output: %s", b->id, e->id, strerror(errno));
        goto out;
    }
    snprintf(name, sizeof(name), "%s.json", e->id);
    if (put_file(dfd, name, sb.data, sb.len, NULL, 0) < 0)
        bx_log_error("box %s: exec %s: writing its record: %s", b->id, e->id, strerror(errno));
out:
    sbuf_free(&sb);
    sbuf_free(&so);
    sbuf_free(&se);
    close(dfd);
}

void box_store_drop_exec(struct box_exec *e)
{
    char name[96];
    int dfd;
    if (e->hidden || (dfd = open_exec_dir(e->box, 0)) < 0)
        return;
    snprintf(name, sizeof(name), "%s.json", e->id);
    unlinkat(dfd, name, 0);
    snprintf(name, sizeof(name), "%s.out", e->id);
    unlinkat(dfd, name, 0);
    close(dfd);
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
static int store_get_bool(const struct json_value *o, const char *k)
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
        b->volumes[i].readonly = store_get_bool(e, "readonly");
    }
    bx_err_clear(&err);
    if (box_check_volumes(b->m->p.cfg, b->volumes, b->nvolumes, &err) < 0) {
        bx_log_warn("box %s: %s", b->id, err.msg);
        return -1;
    }
    return 0;
}

/* The record's "user" ("uid:gid", written by box_store_save): a box whose
 * user cannot be read is never run as root instead. */
static int get_user(const struct json_value *o, struct box *b)
{
    const struct json_value *v = json_get(o, "user");
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_STRING || bx_parse_user(v->u.str.s, v->u.str.len, &b->uid, &b->gid) < 0) {
        bx_log_warn("box %s: its record's user is not \"uid:gid\"", b->id);
        return -1;
    }
    b->set_user = 1;
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
    b->last_active = (time_t)get_u(o, "last_active_at");
    b->saved_active = b->last_active;
    b->network = store_get_bool(o, "network");
    if (get_user(o, b) < 0) {
        b->restarting = 0;
        b->status = BOX_ERROR;
        snprintf(b->error_code, sizeof(b->error_code), "%s", "INVALID_REQUEST");
        snprintf(b->error_msg, sizeof(b->error_msg), "%s", "its user is unreadable");
        return b;
    }
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

/* ---- exec records: load ---- */

static int64_t get_i(const struct json_value *o, const char *k, int64_t dflt)
{
    const struct json_value *v = json_get(o, k);
    return v && v->type == JSON_NUMBER && v->u.num.is_int ? v->u.num.i : dflt;
}

/* 1 when name is <exec id><suffix> with an id this code makes:
 * exec_<node>_<hex> (issue 17) or the older exec_<hex>. */
static int exec_file_name(const char *name, const char *suffix, char id[EXEC_ID_MAX])
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n <= sl || n - sl >= EXEC_ID_MAX || strncmp(name, "exec_", 5) != 0 ||
        strcmp(name + n - sl, suffix) != 0)
        return 0;
    for (size_t i = 5; i < n - sl; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'z') ||
              name[i] == '-' || name[i] == '_'))
            return 0;
    memcpy(id, name, n - sl);
    id[n - sl] = 0;
    return 1;
}

/* The exec of <dfd>/<id>.json and its output; NULL (logged) when unreadable. */
static struct box_exec *exec_from_record(struct box *b, int dfd, const char *id)
{
    struct json_limits lim = {EXEC_RECORD_MAX, 8, 200000};
    struct json_doc *doc = NULL;
    const struct json_value *o;
    struct box_exec *e = NULL;
    struct bx_err err;
    char name[96], *text = NULL, *out = NULL;
    size_t len = 0, olen = 0;
    uint64_t max = box_exec_output_max(b->m), nout, nerr;

    bx_err_clear(&err);
    snprintf(name, sizeof(name), "%s.json", id);
    if (bx_read_file_at(dfd, name, EXEC_RECORD_MAX, &text, &len, &err) < 0 ||
        json_parse(text, len, &lim, &doc, &err) < 0 || json_doc_root(doc)->type != JSON_OBJECT) {
        bx_log_error("box %s: exec %s: its record is unreadable: %s", b->id, id, err.msg);
        goto out;
    }
    o = json_doc_root(doc);
    e = calloc(1, sizeof(*e));
    if (!e)
        goto out;
    e->box = b;
    e->out_fd = e->err_fd = -1;
    exec_log_init(&e->log, max);
    infeed_init(&e->in, b->m->p.loop, 0);
    memcpy(e->id, id, strlen(id) + 1);
    if (get_strv(o, "cmd", &e->cmd) < 0 || get_strv(o, "env", &e->env) < 0 ||
        dup_opt(&e->workdir, get_s(o, "workdir")) < 0 || !e->cmd || !e->cmd[0]) {
        bx_log_error("box %s: exec %s: its record is unreadable", b->id, id);
        exec_free(e);
        e = NULL;
        goto out;
    }
    e->timeout_ms = get_u(o, "timeout_ms");
    e->exit_code = (int)get_i(o, "exit_code", -1);
    e->failed = store_get_bool(o, "failed");
    e->timed_out = store_get_bool(o, "timed_out");
    e->canceled = store_get_bool(o, "canceled");
    e->created = (time_t)get_u(o, "created_at");
    e->finished = (time_t)get_u(o, "finished_at");
    e->wall_ms = get_u(o, "wall_ms");
    e->order_ns = get_u(o, "order_ns");
    if (get_s(o, "error_message"))
        snprintf(e->error, sizeof(e->error), "%s", get_s(o, "error_message"));
    if (store_get_bool(o, "running")) {
        /* It was running when Boxer went away, and its sandbox with it. */
        e->failed = 1;
        e->exit_code = 137;
        e->finished = time(NULL);
        snprintf(e->error, sizeof(e->error), "%s",
                 "Boxer restarted while this exec was running: its processes were killed");
        box_store_save_exec(e);
        goto out;
    }
    nout = get_u(o, "stdout_bytes");
    nerr = get_u(o, "stderr_bytes");
    snprintf(name, sizeof(name), "%s.out", id);
    /* (each stream was at most exec_output_bytes when written; a smaller
     * exec_output_bytes now keeps the tail, as the log does) */
    if ((nout || nerr) && nout <= EXEC_OUTPUT_FILE_MAX && nerr <= EXEC_OUTPUT_FILE_MAX &&
        bx_read_file_at(dfd, name, (size_t)(nout + nerr), &out, &olen, &err) == 0 &&
        olen == nout + nerr) {
        /* Back into the log as one event per stream (the order between the
         * streams and the seqs of the first life are not kept); the log
         * keeps the tail when exec_output_bytes is smaller now. */
        if ((nout && exec_log_append(&e->log, EXEC_STDOUT, out, (size_t)nout) < 0) ||
            (nerr && exec_log_append(&e->log, EXEC_STDERR, out + nout, (size_t)nerr) < 0) ||
            exec_log_flush(&e->log) < 0)
            bx_log_error("box %s: exec %s: out of memory for its output", b->id, id);
        if (store_get_bool(o, "truncated"))
            exec_log_mark_truncated(&e->log);
    } else if (nout || nerr) {
        bx_log_warn("box %s: exec %s: its output is lost", b->id, id);
    }
out:
    free(out);
    json_doc_free(&doc);
    free(text);
    return e;
}

static int by_order_desc(const void *a, const void *b)
{
    const struct box_exec *x = *(struct box_exec *const *)a, *y = *(struct box_exec *const *)b;
    return x->order_ns < y->order_ns ? 1 : x->order_ns > y->order_ns ? -1 : 0;
}

/* The box's kept exec records, newest first, at most max_execs_per_box;
 * files of others (older ones, temp files, output without a record) go. */
static void load_execs(struct box *b)
{
    struct box_exec **v = NULL;
    char (*ids)[EXEC_ID_MAX] = NULL;
    size_t n = 0, nids = 0, cap = 0, keep;
    struct dirent *de;
    char id[EXEC_ID_MAX];
    DIR *d;
    int dfd = open_exec_dir(b, 0);

    if (dfd < 0)
        return;
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    /* The names first: loading rewrites the records of execs that were
     * running, which a readdir going on could see twice. */
    while ((de = readdir(d)) != NULL) {
        if (!exec_file_name(de->d_name, ".json", id))
            continue;
        if (nids == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char(*ni)[EXEC_ID_MAX] = realloc(ids, nc * sizeof(*ni));
            if (!ni)
                break;
            ids = ni;
            cap = nc;
        }
        memcpy(ids[nids++], id, sizeof(id));
    }
    v = nids ? calloc(nids, sizeof(*v)) : NULL;
    for (size_t i = 0; v && i < nids; i++) {
        struct box_exec *e = exec_from_record(b, dirfd(d), ids[i]);
        if (e)
            v[n++] = e;
    }
    free(ids);
    if (n)
        qsort(v, n, sizeof(*v), by_order_desc);
    keep = n < box_execs_kept(b->m) ? n : (size_t)box_execs_kept(b->m);
    for (size_t i = n; i-- > 0;) {
        if (i >= keep) {
            box_store_drop_exec(v[i]);
            exec_free(v[i]);
            continue;
        }
        v[i]->next = b->execs;
        b->execs = v[i];
    }
    free(v);
    /* what no kept record owns */
    rewinddir(d);
    while ((de = readdir(d)) != NULL) {
        int owned = 0;
        if (de->d_name[0] == '.')
            continue;
        if (exec_file_name(de->d_name, ".json", id) || exec_file_name(de->d_name, ".out", id))
            for (struct box_exec *e = b->execs; e && !owned; e = e->next)
                owned = strcmp(e->id, id) == 0;
        if (!owned)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
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
    load_execs(b);
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
        b->keep_active = 1;
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
