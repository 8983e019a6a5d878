/* Persistent boxes as JSON (the box and exec records of the /v1 API) and
 * the error codes of box failures: see box.h. */
#include "box_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "json.h"

static void w_time(struct json_writer *w, const char *key, time_t t)
{
    char buf[32];
    struct tm tm;
    json_w_key(w, key);
    if (!t || !gmtime_r(&t, &tm)) {
        json_w_null(w);
        return;
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_w_cstr(w, buf);
}

static void w_env_obj(struct json_writer *w, const char *key, char *const *env)
{
    json_w_key(w, key);
    if (!env) {
        json_w_null(w);
        return;
    }
    json_w_obj_begin(w);
    for (size_t i = 0; env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq)
            continue;
        char k[256];
        size_t kl = (size_t)(eq - env[i]);
        if (kl >= sizeof(k))
            continue;
        memcpy(k, env[i], kl);
        k[kl] = 0;
        json_w_kv_cstr(w, k, eq + 1);
    }
    json_w_obj_end(w);
}

static void w_str_or_null(struct json_writer *w, const char *key, const char *s)
{
    json_w_key(w, key);
    if (s && s[0])
        json_w_cstr(w, s);
    else
        json_w_null(w);
}

void box_info_json(const struct box *b, struct json_writer *w, int extra)
{
    json_w_obj_begin(w);
    json_w_kv_cstr(w, "id", b->id);
    w_str_or_null(w, "name", b->name);
    json_w_kv_cstr(w, "status", box_status_name(b->status));
    json_w_kv_cstr(w, "image", b->image);
    json_w_kv_double(w, "cpu", b->cpu);
    json_w_kv_uint(w, "memory_mb", b->memory_mb);
    json_w_kv_uint(w, "disk_size_gb", b->disk_gb);
    json_w_kv_bool(w, "network", b->network);
    json_w_kv_cstr(w, "workdir", b->workdir);
    w_env_obj(w, "env", b->env);
    json_w_key(w, "volumes");
    if (!b->nvolumes) {
        json_w_null(w);
    } else {
        json_w_arr_begin(w);
        for (size_t i = 0; i < b->nvolumes; i++) {
            json_w_obj_begin(w);
            json_w_kv_cstr(w, "host_path", b->volumes[i].host_path);
            json_w_kv_cstr(w, "guest_path", b->volumes[i].guest_path);
            json_w_kv_bool(w, "readonly", b->volumes[i].readonly);
            json_w_obj_end(w);
        }
        json_w_arr_end(w);
    }
    w_str_or_null(w, "error_code", b->error_code);
    w_str_or_null(w, "error_message", b->error_msg);
    w_time(w, "created_at", b->created);
    w_time(w, "started_at", b->started);
    w_time(w, "stopped_at", b->stopped);
    if (extra) {
        char img[PATH_MAX];
        struct stat st;
        time_t last;
        w_str_or_null(w, "image_digest", b->digest);
        /* The blocks the sparse image really holds: a stat, no mount, so a
         * stopped box has it too. */
        json_w_key(w, "disk_used_bytes");
        if (snprintf(img, sizeof(img), "%s/disk.img", b->dir) < (int)sizeof(img) &&
            stat(img, &st) == 0)
            json_w_uint(w, (uint64_t)st.st_blocks * 512u);
        else
            json_w_null(w);
        (void)box_exec_running(b, &last);
        w_time(w, "last_active_at", last);
        w_str_or_null(w, "node", b->m->p.cfg->node_id);
        /* the box's "user" (null: root); not one of BoxRun's keys */
        json_w_key(w, "user");
        if (b->set_user) {
            char user[32];
            snprintf(user, sizeof(user), "%" PRIu32 ":%" PRIu32, b->uid, b->gid);
            json_w_cstr(w, user);
        } else {
            json_w_null(w);
        }
    }
    json_w_obj_end(w);
}

static void each_rev(const struct box *b, struct json_writer *w, int extra)
{
    /* The list is newest first and short (recursion depth = boxes). */
    if (!b)
        return;
    each_rev(b->next, w, extra);
    if (!b->pooled) /* made in advance: not a box (yet) */
        box_info_json(b, w, extra);
}

void box_each(struct box_mgr *m, struct json_writer *w, int extra)
{
    each_rev(m->boxes, w, extra);
}

static void each_rev_status(const struct box *b, struct json_writer *w, int extra,
                            const char *status)
{
    /* as each_rev */
    if (!b)
        return;
    each_rev_status(b->next, w, extra, status);
    if (!b->pooled && strcmp(box_status_name(b->status), status) == 0)
        box_info_json(b, w, extra);
}

void box_each_status(struct box_mgr *m, struct json_writer *w, int extra, const char *status)
{
    each_rev_status(m->boxes, w, extra, status);
}

static void each_exec_rev(const struct box_exec *e, struct json_writer *w, int extra)
{
    /* newest first, at most max_execs_per_box (plus running ones) deep */
    if (!e)
        return;
    each_exec_rev(e->next, w, extra);
    if (!e->hidden)
        box_exec_json(e, w, extra);
}

void box_each_exec(const struct box *b, struct json_writer *w, int extra)
{
    each_exec_rev(b->execs, w, extra);
}

struct box_exec *box_exec_find(struct box *b, const char *exec_id)
{
    for (struct box_exec *e = b->execs; e; e = e->next)
        if (!e->hidden && strcmp(e->id, exec_id) == 0)
            return e;
    return NULL;
}

void box_exec_json(const struct box_exec *e, struct json_writer *w, int extra)
{
    json_w_obj_begin(w);
    json_w_kv_cstr(w, "id", e->id);
    json_w_kv_cstr(w, "box_id", e->box->id);
    json_w_kv_cstr(w, "status",
                   e->canceled  ? "canceled"
                   : e->running ? "running"
                   : e->failed  ? "failed"
                                : "succeeded");
    box_w_strv(w, "cmd", e->cmd);
    w_env_obj(w, "env", e->env);
    w_str_or_null(w, "workdir", e->workdir);
    json_w_key(w, "timeout_ms");
    if (e->timeout_ms)
        json_w_uint(w, e->timeout_ms);
    else
        json_w_null(w);
    json_w_key(w, "exit_code");
    if (e->running)
        json_w_null(w);
    else
        json_w_int(w, e->exit_code);
    w_str_or_null(w, "error_message", e->error);
    w_time(w, "created_at", e->created);
    w_time(w, "finished_at", e->finished);
    if (extra) {
        struct sbuf sb;
        /* The log's kept tail of each stream (its bytes are bounded). */
        sbuf_init(&sb, (size_t)e->log.max + 1);
        for (int s = EXEC_STDOUT; s <= EXEC_STDERR; s++) {
            sbuf_reset(&sb);
            json_w_key(w, s == EXEC_STDOUT ? "stdout" : "stderr");
            if (exec_log_text(&e->log, s, &sb) < 0)
                w->failed = 1;
            json_w_str(w, sb.data ? sb.data : "", sb.len);
        }
        sbuf_free(&sb);
        json_w_kv_uint(w, "wall_ms", e->wall_ms);
        json_w_kv_bool(w, "timed_out", e->timed_out);
        json_w_kv_bool(w, "truncated", exec_log_truncated(&e->log));
    }
    json_w_obj_end(w);
}

const char *box_err_code(const struct bx_err *err)
{
    switch (err->status) {
    case BX_E_BAD_REQUEST:
        return err->sys_errno == ERANGE ? "RESOURCE_EXCEEDED" : "INVALID_REQUEST";
    case BX_E_UNAVAILABLE:
        return "RESOURCE_EXCEEDED";
    case BX_E_NOT_FOUND:
        return "BOX_NOT_FOUND";
    case BX_E_TOO_LARGE:
        return "INVALID_REQUEST";
    case BX_E_TOO_MANY_REQUESTS:
        return "STDIN_BUFFER_FULL";
    case BX_E_CONFLICT:
        /* issue 14: an exec's input and control */
        if (err->sys_errno == ESRCH)
            return "EXEC_ALREADY_FINISHED";
        if (err->sys_errno == EPIPE)
            return "STDIN_CLOSED";
        if (err->sys_errno == ERANGE)
            return "STDIN_OFFSET_GAP";
        return err->sys_errno == ENOTCONN  ? "BOX_NOT_RUNNING"
               : err->sys_errno == EEXIST ? "NAME_ALREADY_EXISTS"
                                          : "BOX_ALREADY_RUNNING";
    case BX_E_BAD_GATEWAY:
        return "IMAGE_PULL_FAILED";
    default:
        return "RUNTIME_ERROR";
    }
}
