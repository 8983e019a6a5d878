/* The /run wire format: the request parser (POST /run body to struct
 * run_request) and the answer encoder (struct run_result to the JSON
 * answer).  openapi.c documents the same shapes. */
#define _GNU_SOURCE
#include "api_run.h"

#include "b64dec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "net.h"
#include "oci.h"
#include "run_outputs.h"
#include "store.h"

/* ---- request parsing ---- */

static int dup_string(const struct json_value *v, const char *field, size_t max, char **out,
                      struct bx_err *err)
{
    if (v->type != JSON_STRING)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must be a string", field);
    if (json_str_has_nul(v))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must not contain NUL bytes", field);
    if (v->u.str.len > max)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s is longer than %zu bytes", field, max);
    *out = strdup(v->u.str.s);
    if (!*out)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    return 0;
}

static int dup_string_array(const struct json_value *v, const char *field, size_t max_items,
                            int allow_empty, char ***out, size_t *count, struct bx_err *err)
{
    char **arr;
    char name[64];
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must be an array of strings", field);
    if (v->u.arr.n > max_items)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s has more than %zu entries", field,
                          max_items);
    if (!allow_empty && v->u.arr.n == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "%s must not be empty", field);
    arr = calloc(v->u.arr.n + 1, sizeof(char *));
    if (!arr)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        snprintf(name, sizeof(name), "%s[%zu]", field, i);
        if (dup_string(&v->u.arr.items[i], name, RUN_MAX_STRING, &arr[i], err) < 0) {
            bx_strv_free(&arr);
            return -1;
        }
    }
    *out = arr;
    if (count)
        *count = v->u.arr.n;
    return 0;
}

static int parse_limit_uint(const struct json_value *v, const char *name, uint64_t def,
                            uint64_t max, uint64_t *out, struct bx_err *err)
{
    if (!v || v->type == JSON_NULL) {
        *out = def;
        return 0;
    }
    if (v->type != JSON_NUMBER || !isfinite(v->u.num.d))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits.%s must be a number", name);
    if (v->u.num.d < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits.%s must not be negative", name);
    if (v->u.num.d == 0) {
        *out = def;
        return 0;
    }
    if (!v->u.num.is_int)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits.%s must be a whole number", name);
    if ((uint64_t)v->u.num.i > max)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "limits.%s is above the server maximum of %" PRIu64, name, max);
    *out = (uint64_t)v->u.num.i;
    return 0;
}

static int parse_run_limits(const struct json_value *v, const struct config *cfg,
                        struct run_limits *lim, struct bx_err *err)
{
    static const char *const known[] = {"cpu_cores", "memory_mb", "pids_limit",
                                        "wall_clock_secs", "nofile", NULL};
    const struct json_value *cpu;
    const struct json_member *bad;
    *lim = cfg->defaults;
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_OBJECT)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits must be an object");
    if (json_obj_check_keys(v, known, &bad) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits: unknown field %.64s",
                          bad->key);
    cpu = json_get(v, "cpu_cores");
    if (cpu && cpu->type != JSON_NULL) {
        if (cpu->type != JSON_NUMBER || !isfinite(cpu->u.num.d))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits.cpu_cores must be a number");
        if (cpu->u.num.d < 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "limits.cpu_cores must not be negative");
        if (cpu->u.num.d > 0) {
            if (cpu->u.num.d > cfg->max_limits.cpu_cores)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                                  "limits.cpu_cores is above the server maximum of %g",
                                  cfg->max_limits.cpu_cores);
            if (cpu->u.num.d < 0.01)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                                  "limits.cpu_cores must be at least 0.01");
            lim->cpu_cores = cpu->u.num.d;
        }
    }
    if (parse_limit_uint(json_get(v, "memory_mb"), "memory_mb", cfg->defaults.memory_mb,
                         cfg->max_limits.memory_mb, &lim->memory_mb, err) < 0 ||
        parse_limit_uint(json_get(v, "pids_limit"), "pids_limit", cfg->defaults.pids_limit,
                         cfg->max_limits.pids_limit, &lim->pids_limit, err) < 0 ||
        parse_limit_uint(json_get(v, "wall_clock_secs"), "wall_clock_secs",
                         cfg->defaults.wall_clock_secs, cfg->max_limits.wall_clock_secs,
                         &lim->wall_clock_secs, err) < 0 ||
        parse_limit_uint(json_get(v, "nofile"), "nofile", cfg->defaults.nofile,
                         cfg->max_limits.nofile, &lim->nofile, err) < 0)
        return -1;
    if (lim->memory_mb < 16)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits.memory_mb must be at least 16");
    /* A run larger than the budget all runs share could never be admitted:
     * refuse it now instead of queueing it forever. */
    if (lim->memory_mb > cfg->total_memory_mb)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "limits.memory_mb %" PRIu64 " is above total_memory_mb (%" PRIu64
                          "), the memory all runs of this server share",
                          lim->memory_mb, cfg->total_memory_mb);
    if (config_run_host_pids(lim->pids_limit) > cfg->total_pids)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "limits.pids_limit %" PRIu64 " needs %" PRIu64
                          " host tasks, above total_pids (%" PRIu64
                          "), the tasks all runs of this server share",
                          lim->pids_limit, config_run_host_pids(lim->pids_limit), cfg->total_pids);
    if (lim->nofile < 16)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits.nofile must be at least 16");
    return 0;
}

static int valid_env_entry(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return 0;
    for (const char *p = kv; p < eq; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* "egress": ["a.b.c.d[/len][:port]", ...], only with network sandbox
 * (absent or null: no per-run list).  Each entry goes through the pure
 * net_parse_egress; a refusal names the entry. */
static int parse_egress(const struct json_value *v, const struct config *cfg, struct run_request *r,
                        struct bx_err *err)
{
    if (!v || v->type == JSON_NULL)
        return 0;
    if (r->network != RUN_NET_SANDBOX)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "egress is only allowed with network sandbox");
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "egress must be an array of strings");
    if (v->u.arr.n > cfg->max_egress_rules)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "egress has %zu entries; this server allows at most %llu "
                          "(max_egress_rules)",
                          v->u.arr.n, (unsigned long long)cfg->max_egress_rules);
    /* One more than needed: calloc(0) may return NULL. */
    r->egress = calloc(v->u.arr.n + 1, sizeof(*r->egress));
    if (!r->egress)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    r->has_egress = 1;
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *e = &v->u.arr.items[i];
        if (e->type != JSON_STRING)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "egress[%zu] must be a string", i);
        if (net_parse_egress(e->u.str.s, e->u.str.len, &r->egress[i]) < 0) {
            /* Printable only: the entry is echoed in the answer. */
            char shown[NET_EGRESS_TEXT_MAX + 1];
            size_t k = 0;
            for (; k < e->u.str.len && k < NET_EGRESS_TEXT_MAX; k++)
                shown[k] = e->u.str.s[k] >= 0x20 && e->u.str.s[k] < 0x7f ? e->u.str.s[k] : '?';
            shown[k] = '\0';
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "egress[%zu]: \"%s%s\" is not an IPv4 address or network with an "
                              "optional port (a.b.c.d, a.b.c.d/len or either with :port)",
                              i, shown, e->u.str.len > NET_EGRESS_TEXT_MAX ? "..." : "");
        }
        r->negress = i + 1;
    }
    return 0;
}

uint64_t run_max_body(const struct config *cfg)
{
    /* issue 17: configurable (inputs travel in the body) */
    return cfg->max_request_body_bytes;
}

/* One "inputs" value: {"content", "encoding": "utf8"|"base64", "mode"};
 * in a multipart /run also {"part": true, "mode"}: the content is the file
 * part of the same name (run_multipart.c). */
static int parse_input(const char *key, size_t key_len, const struct json_value *v,
                       const struct config *cfg, int multipart, struct oci_input *in,
                       struct bx_err *err)
{
    static const char *const known[] = {"content", "encoding", "mode", "part", NULL};
    const struct json_member *bad;
    const struct json_value *c, *e, *m, *pt;
    char norm[STORE_PATH_MAX + 1];
    int b64 = 0;

    in->mode = 0644;
    /* like an upload's path: output/ is where the run's outputs go */
    if (store_normalize_path(key, key_len, 1, norm, err) < 0)
        return -1;
    if (!(in->path = strdup(norm)))
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    if (v->type != JSON_OBJECT)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "must be an object with content");
    if (json_obj_check_keys(v, known, &bad) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "unknown field %.64s", bad->key);
    m = json_get(v, "mode");
    if (m && m->type != JSON_NULL) {
        if (m->type != JSON_NUMBER || !m->u.num.is_int || m->u.num.i < 0 || m->u.num.i > 0777)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "mode must be an integer from 0 to 511 (0777)");
        in->mode = (unsigned)m->u.num.i;
    }
    pt = json_get(v, "part");
    if (pt && pt->type != JSON_NULL) {
        if (pt->type != JSON_BOOL || !pt->u.boolean)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "part must be true");
        if (!multipart)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "part: true needs a multipart/form-data /run carrying the file");
        if (json_get(v, "content") || json_get(v, "encoding"))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "part: true takes its content from the file part: no content "
                              "or encoding");
        in->part = 1;
        return 0;
    }
    c = json_get(v, "content");
    if (!c || c->type != JSON_STRING)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "content must be a string");
    e = json_get(v, "encoding");
    if (e && e->type != JSON_NULL) {
        if (e->type == JSON_STRING && bx_str_eq(e->u.str.s, e->u.str.len, "base64"))
            b64 = 1;
        else if (!(e->type == JSON_STRING && bx_str_eq(e->u.str.s, e->u.str.len, "utf8")))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "encoding must be \"utf8\" or \"base64\"");
    }
    if (!b64) {
        if (c->u.str.len > cfg->upload_limit_bytes)
            return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                              "content is larger than upload_limit_bytes (%llu)",
                              (unsigned long long)cfg->upload_limit_bytes);
        if (!(in->data = malloc(c->u.str.len ? c->u.str.len : 1)))
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        memcpy(in->data, c->u.str.s, c->u.str.len);
        in->len = c->u.str.len;
    } else {
        long n;
        if (b64_decoded_max(c->u.str.len) - 3 > cfg->upload_limit_bytes)
            return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                              "content is larger than upload_limit_bytes (%llu) decoded",
                              (unsigned long long)cfg->upload_limit_bytes);
        if (!(in->data = malloc(b64_decoded_max(c->u.str.len) + 1)))
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        n = b64_decode(c->u.str.s, c->u.str.len, (unsigned char *)in->data);
        if (n < 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "content is not valid base64");
        if ((uint64_t)n > cfg->upload_limit_bytes)
            return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                              "content is larger than upload_limit_bytes (%llu) decoded",
                              (unsigned long long)cfg->upload_limit_bytes);
        in->len = (size_t)n;
    }
    return 0;
}

/* "inputs" (issue 17): {"<path>": {...}}, with files at most RUN_MAX_FILES
 * mounts, no path twice (nor one of files). */
static int parse_inputs(const struct json_value *v, const struct config *cfg, int multipart,
                        struct run_request *r, struct bx_err *err)
{
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_OBJECT)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "inputs must be an object");
    if (v->u.obj.n + r->nfiles > RUN_MAX_FILES)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "inputs and files: at most %d entries together", RUN_MAX_FILES);
    r->inputs = calloc(v->u.obj.n + 1, sizeof(*r->inputs));
    if (!r->inputs)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const struct json_member *mb = &v->u.obj.members[i];
        struct oci_input *in = &r->inputs[i];
        r->ninputs = i + 1;
        if (parse_input(mb->key, mb->key_len, &mb->value, cfg, multipart, in, err) < 0)
            return bx_err_wrap(err, "inputs[\"%.100s\"]", in->path ? in->path : "");
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->inputs[j].path, in->path) == 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "inputs: %.100s given twice",
                                  in->path);
        for (size_t j = 0; j < r->nfiles; j++)
            if (strcmp(r->files[j], in->path) == 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                                  "inputs: %.100s is also in files", in->path);
    }
    return 0;
}

int api_parse_stdin(const struct json_value *root, uint64_t limit, char **data, size_t *len,
                    struct bx_err *err)
{
    const struct json_value *t = json_get(root, "stdin"), *b = json_get(root, "stdin_b64");
    if (t && t->type == JSON_NULL)
        t = NULL;
    if (b && b->type == JSON_NULL)
        b = NULL;
    if (t && b)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "give stdin or stdin_b64, not both");
    if (t) {
        if (t->type != JSON_STRING)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "stdin must be a string");
        if (t->u.str.len > limit)
            return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                              "stdin is larger than stdin_limit_bytes (%llu)",
                              (unsigned long long)limit);
        *data = malloc(t->u.str.len ? t->u.str.len : 1);
        if (!*data)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        memcpy(*data, t->u.str.s, t->u.str.len);
        *len = t->u.str.len;
    } else if (b) {
        long n;
        if (b->type != JSON_STRING)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "stdin_b64 must be a string");
        /* checked before decoding (no allocation for a huge text), and
         * exactly after (an unpadded tail decodes to up to 2 more bytes) */
        if (b64_decoded_max(b->u.str.len) - 3 > limit)
            return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                              "stdin_b64 is larger than stdin_limit_bytes (%llu) decoded",
                              (unsigned long long)limit);
        *data = malloc(b64_decoded_max(b->u.str.len));
        if (!*data)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        n = b64_decode(b->u.str.s, b->u.str.len, (unsigned char *)*data);
        if (n < 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "stdin_b64 is not valid base64");
        if ((uint64_t)n > limit)
            return bx_err_set(err, BX_E_TOO_LARGE, E2BIG,
                              "stdin_b64 is larger than stdin_limit_bytes (%llu) decoded",
                              (unsigned long long)limit);
        *len = (size_t)n;
    }
    return 0;
}

int run_request_parse(const char *body, size_t len, const struct config *cfg,
                      struct run_request **out, struct bx_err *err)
{
    return run_request_parse_ex(body, len, cfg, 0, out, err);
}

static int parse_request(const char *body, size_t len, const struct config *cfg, int multipart,
                         uint64_t max_bytes, struct run_request **out, struct bx_err *err);

int run_request_parse_ex(const char *body, size_t len, const struct config *cfg, int multipart,
                         struct run_request **out, struct bx_err *err)
{
    return parse_request(body, len, cfg, multipart, run_max_body(cfg), out, err);
}

/* max_bytes: the JSON document's bound (the /run body limit, or for
 * /v1/run's translation the buffer it was written into). */
static int parse_request(const char *body, size_t len, const struct config *cfg, int multipart,
                         uint64_t max_bytes, struct run_request **out, struct bx_err *err)
{
    static const char *const known[] = {"image", "cmd", "env", "cwd", "files", "limits",
                                        "network", "egress", "persist", "stream", "encoding",
                                        "stdin", "stdin_b64", "inputs", "return_outputs", NULL};
    struct json_limits jl = {max_bytes, 16, 3 * RUN_MAX_ARGS + 1024};
    struct json_doc *doc = NULL;
    const struct json_value *root, *v;
    const struct json_member *bad;
    struct run_request *r = NULL;
    int ret = -1;

    if (json_parse(body, len, &jl, &doc, err) < 0)
        goto out;
    root = json_doc_root(doc);
    if (root->type != JSON_OBJECT) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "request body must be a JSON object");
        goto out;
    }
    if (json_obj_check_keys(root, known, &bad) < 0) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "unknown field %.64s", bad->key);
        goto out;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    v = json_get(root, "image");
    if (!v || v->type == JSON_NULL) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "image is required");
        goto out;
    }
    if (dup_string(v, "image", IMGREF_MAX, &r->image, err) < 0)
        goto out;
    if (imgref_parse(r->image, strlen(r->image), &r->ref, err) < 0) {
        bx_err_wrap(err, "image");
        goto out;
    }
    if (cfg->allowed_registries.n > 0) {
        /* A client naming any host:port would make Boxer connect there; an
         * operator can pin the registries it trusts. */
        int allowed = 0;
        for (size_t i = 0; i < cfg->allowed_registries.n; i++)
            allowed |= strcmp(cfg->allowed_registries.items[i], r->ref.registry) == 0;
        if (!allowed) {
            bx_err_set(err, BX_E_BAD_REQUEST, EPERM,
                       "image: registry %s is not allowed on this server", r->ref.registry);
            goto out;
        }
    }
    v = json_get(root, "cmd");
    if (!v || v->type == JSON_NULL) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd is required");
        goto out;
    }
    if (dup_string_array(v, "cmd", RUN_MAX_ARGS, 0, &r->cmd, NULL, err) < 0)
        goto out;
    if (r->cmd[0][0] == '\0') {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd[0] must not be empty");
        goto out;
    }
    v = json_get(root, "env");
    if (v && v->type != JSON_NULL) {
        if (dup_string_array(v, "env", RUN_MAX_ENV, 1, &r->env, NULL, err) < 0)
            goto out;
        for (size_t i = 0; r->env[i]; i++) {
            if (!valid_env_entry(r->env[i])) {
                bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "env[%zu] must have the form KEY=VALUE",
                           i);
                goto out;
            }
        }
    }
    v = json_get(root, "cwd");
    if (v && v->type != JSON_NULL) {
        if (dup_string(v, "cwd", 4096, &r->cwd, err) < 0)
            goto out;
        if (r->cwd[0] == '\0') {
            free(r->cwd);
            r->cwd = NULL;
        } else if (r->cwd[0] != '/') {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cwd must be an absolute path");
            goto out;
        }
    }
    v = json_get(root, "files");
    if (v && v->type != JSON_NULL) {
        if (dup_string_array(v, "files", RUN_MAX_FILES, 1, &r->files, &r->nfiles, err) < 0)
            goto out;
        for (size_t i = 0; i < r->nfiles; i++) {
            char norm[STORE_PATH_MAX + 1];
            char *dup;
            if (store_normalize_path(r->files[i], strlen(r->files[i]), 0, norm, err) < 0) {
                bx_err_wrap(err, "files[%zu]", i);
                goto out;
            }
            dup = strdup(norm);
            if (!dup) {
                bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            free(r->files[i]);
            r->files[i] = dup;
        }
    }
    if (parse_run_limits(json_get(root, "limits"), cfg, &r->limits, err) < 0)
        goto out;
    if (api_parse_stdin(root, cfg->stdin_limit_bytes, &r->stdin_data, &r->stdin_len, err) < 0)
        goto out;
    v = json_get(root, "network");
    if (v && v->type != JSON_NULL) {
        if (v->type != JSON_STRING) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "network must be a string");
            goto out;
        }
        /* Whole strings only: "none\u0000junk", "sandboxx" and "" are 400. */
        if (bx_str_eq(v->u.str.s, v->u.str.len, "none")) {
            r->network = RUN_NET_NONE;
        } else if (bx_str_eq(v->u.str.s, v->u.str.len, "host")) {
            if (!cfg->allow_host_network) {
                bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                           "network host is not allowed on this server (allow_host_network)");
                goto out;
            }
            r->network = RUN_NET_HOST;
        } else if (bx_str_eq(v->u.str.s, v->u.str.len, "sandbox")) {
            r->network = RUN_NET_SANDBOX;
        } else {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "network must be one of none, sandbox, host");
            goto out;
        }
    }
    if (parse_egress(json_get(root, "egress"), cfg, r, err) < 0)
        goto out;
    v = json_get(root, "persist");
    if (v && v->type != JSON_NULL) {
        if (v->type != JSON_BOOL) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "persist must be true or false");
            goto out;
        }
        r->persist = v->u.boolean;
    }
    /* issue 14: NDJSON events instead of one answer */
    v = json_get(root, "stream");
    if (v && v->type != JSON_NULL) {
        if (v->type != JSON_BOOL) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "stream must be true or false");
            goto out;
        }
        r->stream = v->u.boolean;
    }
    v = json_get(root, "encoding");
    if (v && v->type != JSON_NULL) {
        if (v->type == JSON_STRING && bx_str_eq(v->u.str.s, v->u.str.len, "base64"))
            r->base64 = 1;
        else if (!(v->type == JSON_STRING && bx_str_eq(v->u.str.s, v->u.str.len, "utf-8"))) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "encoding must be \"utf-8\" or \"base64\"");
            goto out;
        }
    }
    /* issue 17: stateless runs */
    if (parse_inputs(json_get(root, "inputs"), cfg, multipart, r, err) < 0)
        goto out;
    v = json_get(root, "return_outputs");
    if (v && v->type != JSON_NULL) {
        if (v->type != JSON_BOOL) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "return_outputs must be true or false");
            goto out;
        }
        r->return_outputs = v->u.boolean;
        if (r->return_outputs && r->stream) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                       "return_outputs needs an answer, not a stream (stream: false)");
            goto out;
        }
    }
    *out = bx_steal_ptr(&r);
    ret = 0;
out:
    run_request_free(&r);
    json_doc_free(&doc);
    return ret;
}

/* ---- the answer ---- */

/* A /run answer is streamed (http_respond_stream) rather than built whole:
 * escaping can make stdout and stderr six times their size, and a client
 * that reads slowly would hold all of it.  `meta` is the JSON without the
 * contents of the big strings (stdout, stderr); each seg[i] says where in
 * meta (between the quotes) the escaped bytes of s go.  The bytes sent are
 * exactly those json_w_str would have produced. */
#define ANSWER_MAX_SEGS 4
struct run_answer {
    struct sbuf meta;
    size_t nseg;
    struct {
        size_t cut;
        const char *s;
        size_t len;
    } seg[ANSWER_MAX_SEGS];
    uint64_t total;
    size_t idx;      /* segment whose string comes next */
    size_t meta_off; /* meta bytes sent */
    size_t pos;      /* bytes of seg[idx].s escaped */
};

static void answer_str(struct json_writer *w, struct run_answer *ans, const char *s, size_t len)
{
    json_w_str(w, "", 0);
    if (w->failed)
        return;
    if (ans->nseg == ANSWER_MAX_SEGS) {
        w->failed = 1;
        return;
    }
    ans->seg[ans->nseg].cut = w->out->len - 1;
    ans->seg[ans->nseg].s = s ? s : "";
    ans->seg[ans->nseg].len = s ? len : 0;
    ans->nseg++;
}

uint64_t run_answer_len(const struct run_answer *ans)
{
    uint64_t n = ans->meta.len;
    for (size_t i = 0; i < ans->nseg; i++)
        n += json_escaped_len(ans->seg[i].s, ans->seg[i].len) - 2;
    return n;
}

int run_answer_fill(struct run_answer *a, struct sbuf *out, size_t want)
{
    size_t start = out->len;
    while (out->len - start < want) {
        size_t room = want - (out->len - start);
        size_t meta_end = a->idx < a->nseg ? a->seg[a->idx].cut : a->meta.len;
        if (a->meta_off < meta_end) {
            size_t n = meta_end - a->meta_off < room ? meta_end - a->meta_off : room;
            if (sbuf_append(out, a->meta.data + a->meta_off, n) < 0)
                return -1;
            a->meta_off += n;
            continue;
        }
        if (a->idx == a->nseg)
            break;
        if (json_escape_part(out, a->seg[a->idx].s, a->seg[a->idx].len, &a->pos, room) < 0)
            return -1;
        if (a->pos == a->seg[a->idx].len) {
            a->idx++;
            a->pos = 0;
        }
    }
    return 0;
}

void run_answer_free(struct run_answer **ap)
{
    if (!*ap)
        return;
    sbuf_free(&(*ap)->meta);
    free(*ap);
    *ap = NULL;
}

static void write_run_fields(struct json_writer *w, const struct run_result *res,
                             struct run_answer *ans)
{
    json_w_kv_cstr(w, "exec_id", res->exec_id);
    json_w_kv_int(w, "exit_code", res->exit_code);
    json_w_key(w, "stdout");
    answer_str(w, ans, res->out.data, res->out.len);
    json_w_key(w, "stderr");
    answer_str(w, ans, res->err.data, res->err.len);
    json_w_kv_uint(w, "wall_ms", res->wall_ms);
    json_w_kv_bool(w, "timed_out", res->outcome == RUN_TIMEOUT);
    if (res->have_usage) {
        json_w_kv_uint(w, "cpu_ms", res->cpu_ms);
        json_w_kv_uint(w, "memory_peak_bytes", res->memory_peak_bytes);
        json_w_kv_bool(w, "oom_killed", res->oom_killed);
    }
    if (res->outputs)
        run_outputs_json(res->outputs, w);
    if (res->output_errors) {
        /* Entries of /output that were not captured, and why. */
        json_w_key(w, "output_errors");
        json_w_arr_begin(w);
        for (size_t i = 0; res->output_errors[i]; i++)
            json_w_cstr(w, res->output_errors[i]);
        json_w_arr_end(w);
    }
}

int run_answer_new(const struct run_result *res, struct run_answer **out, int *status)
{
    struct run_answer *ans = calloc(1, sizeof(*ans));
    struct json_writer w;

    *out = NULL;
    *status = 200;
    if (!ans)
        return -1;
    /* Everything but stdout and stderr: a few KiB, plus return_outputs. */
    sbuf_init(&ans->meta, (1u << 20) + (res->outputs ? (size_t)res->outputs->json_bound : 0));
    json_w_init(&w, &ans->meta);
    json_w_obj_begin(&w);
    switch (res->outcome) {
    case RUN_OK:
        write_run_fields(&w, res, ans);
        break;
    case RUN_TIMEOUT:
        *status = BX_E_TIMEOUT;
        json_w_kv_cstr(&w, "error", "wall clock limit exceeded");
        write_run_fields(&w, res, ans);
        break;
    case RUN_OUTPUT_LIMIT:
        *status = BX_E_INSUFFICIENT_STORAGE;
        json_w_kv_cstr(&w, "error", "stdout or stderr exceeded output_limit_bytes");
        json_w_kv_cstr(&w, "exec_id", res->exec_id);
        break;
    case RUN_ERROR:
        *status = bx_err_http_status(&res->error);
        json_w_kv_cstr(&w, "error", res->error.msg[0] ? res->error.msg : "run failed");
        json_w_kv_cstr(&w, "exec_id", res->exec_id);
        break;
    }
    json_w_obj_end(&w);
    if (w.failed) {
        run_answer_free(&ans);
        return -2;
    }
    *out = ans;
    return 0;
}

int run_answer_new_boxrun(const struct run_result *res, int extra, struct run_answer **out)
{
    struct run_answer *ans = calloc(1, sizeof(*ans));
    struct json_writer w;

    *out = NULL;
    if (!ans)
        return -1;
    sbuf_init(&ans->meta, 1u << 20);
    json_w_init(&w, &ans->meta);
    json_w_obj_begin(&w);
    json_w_key(&w, "exit_code");
    if (res->outcome == RUN_OUTPUT_LIMIT)
        json_w_null(&w);
    else
        json_w_int(&w, res->exit_code);
    json_w_key(&w, "stdout");
    answer_str(&w, ans, res->out.data, res->out.len);
    json_w_key(&w, "stderr");
    answer_str(&w, ans, res->err.data, res->err.len);
    json_w_key(&w, "error_message");
    if (res->outcome == RUN_TIMEOUT)
        json_w_cstr(&w, "timed out (timeout_ms exceeded)");
    else if (res->outcome == RUN_OUTPUT_LIMIT)
        json_w_cstr(&w, "stdout or stderr exceeded output_limit_bytes");
    else
        json_w_null(&w);
    if (extra) {
        json_w_key(&w, "exec_id");
        json_w_cstr(&w, res->exec_id);
        json_w_key(&w, "wall_ms");
        json_w_uint(&w, res->wall_ms);
        json_w_key(&w, "timed_out");
        json_w_bool(&w, res->outcome == RUN_TIMEOUT);
        if (res->have_usage) {
            json_w_key(&w, "cpu_ms");
            json_w_uint(&w, res->cpu_ms);
            json_w_key(&w, "memory_peak_bytes");
            json_w_uint(&w, res->memory_peak_bytes);
            json_w_key(&w, "oom_killed");
            json_w_bool(&w, res->oom_killed);
        }
    }
    json_w_obj_end(&w);
    if (w.failed) {
        run_answer_free(&ans);
        return -2;
    }
    *out = ans;
    return 0;
}

/* ---- POST /v1/run (BoxRun's shape) ---- */

#define V1_BAD(...) bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, __VA_ARGS__)
#define V1_OVER(...) bx_err_set(err, BX_E_BAD_REQUEST, ERANGE, __VA_ARGS__)

static int v1_uint(const struct json_value *v, const char *name, uint64_t *out, struct bx_err *err)
{
    if (!v || v->type == JSON_NULL)
        return 0;
    if (v->type != JSON_NUMBER || !v->u.num.is_int || v->u.num.i < 0)
        return V1_BAD("%s must be a non-negative integer", name);
    *out = (uint64_t)v->u.num.i;
    return 0;
}

/* The /run body this request maps to, written into sb; the checks that
 * need BoxRun's field names are made here, the rest by run_request_parse. */
static int v1_translate(const struct json_value *root, const struct config *cfg, struct sbuf *sb,
                        uint64_t *wall_ms, struct bx_err *err)
{
    static const char *const known[] = {"image", "cmd", "cpu", "memory_mb", "network", "env",
                                        "volumes", "timeout_ms", "disk_size_gb", "stdin",
                                        "stdin_b64", "user", NULL};
    const struct json_member *bad;
    const struct json_value *image, *cmd, *v;
    double cpu = cfg->box_defaults.cpu;
    uint64_t mem = cfg->box_defaults.memory_mb, timeout_ms = 0, disk = 0;
    int network = cfg->box_defaults.network;
    struct json_writer w;

    if (json_obj_check_keys(root, known, &bad) < 0)
        return V1_BAD("unknown field %.64s", bad->key);
    image = json_get(root, "image");
    if (!image || image->type != JSON_STRING)
        return V1_BAD("image is required (a string)");
    cmd = json_get(root, "cmd");
    if (!cmd || cmd->type != JSON_ARRAY || cmd->u.arr.n == 0)
        return V1_BAD("cmd is required (a non-empty list of strings)");
    for (size_t i = 0; i < cmd->u.arr.n; i++)
        if (cmd->u.arr.items[i].type != JSON_STRING)
            return V1_BAD("cmd[%zu] must be a string", i);
    /* The defaults are clamped, never refused (a small host). */
    if (cpu > cfg->max_limits.cpu_cores)
        cpu = cfg->max_limits.cpu_cores;
    if (mem > cfg->max_limits.memory_mb)
        mem = cfg->max_limits.memory_mb;
    if (mem > cfg->total_memory_mb)
        mem = cfg->total_memory_mb;
    v = json_get(root, "cpu");
    if (v && v->type != JSON_NULL) {
        if (v->type != JSON_NUMBER || !isfinite(v->u.num.d) || v->u.num.d < 0.01)
            return V1_BAD("cpu must be a number of at least 0.01");
        if (v->u.num.d > cfg->max_limits.cpu_cores)
            return V1_OVER("cpu is over max_limits.cpu_cores (%g)", cfg->max_limits.cpu_cores);
        cpu = v->u.num.d;
    }
    v = json_get(root, "memory_mb");
    if (v && v->type != JSON_NULL) {
        if (v1_uint(v, "memory_mb", &mem, err) < 0)
            return -1;
        if (mem < 16)
            return V1_BAD("memory_mb must be at least 16");
        if (mem > cfg->max_limits.memory_mb)
            return V1_OVER("memory_mb is over max_limits.memory_mb (%" PRIu64 ")",
                           cfg->max_limits.memory_mb);
        if (mem > cfg->total_memory_mb)
            return V1_OVER("memory_mb is over total_memory_mb (%" PRIu64 ")", cfg->total_memory_mb);
    }
    if (v1_uint(json_get(root, "timeout_ms"), "timeout_ms", &timeout_ms, err) < 0 ||
        v1_uint(json_get(root, "disk_size_gb"), "disk_size_gb", &disk, err) < 0)
        return -1;
    if (timeout_ms > cfg->max_limits.wall_clock_secs * 1000)
        return V1_OVER("timeout_ms is over max_limits.wall_clock_secs (%" PRIu64 " s)",
                       cfg->max_limits.wall_clock_secs);
    if (disk > cfg->max_disk_size_gb)
        return V1_OVER("disk_size_gb is over max_disk_size_gb (%" PRIu64 ")", cfg->max_disk_size_gb);
    v = json_get(root, "network");
    if (v && v->type == JSON_BOOL)
        network = v->u.boolean;
    else if (v && v->type == JSON_STRING && (bx_str_eq(v->u.str.s, v->u.str.len, "none") ||
                                             bx_str_eq(v->u.str.s, v->u.str.len, "sandbox")))
        network = v->u.str.s[0] == 's';
    else if (v && v->type != JSON_NULL)
        return V1_BAD("network must be true, false, \"none\" or \"sandbox\"");
    v = json_get(root, "volumes");
    if (v && v->type != JSON_NULL && (v->type != JSON_ARRAY || v->u.arr.n > 0))
        return V1_BAD("volumes: not supported by /v1/run (create a box for volumes)");
    v = json_get(root, "env");
    if (v && v->type != JSON_NULL && v->type != JSON_OBJECT)
        return V1_BAD("env must be an object of strings");
    if (v && v->type == JSON_OBJECT && v->u.obj.n > RUN_MAX_ENV)
        return V1_BAD("env has more than %d entries", RUN_MAX_ENV);

    json_w_init(&w, sb);
    json_w_obj_begin(&w);
    json_w_key(&w, "image");
    json_w_str(&w, image->u.str.s, image->u.str.len);
    json_w_key(&w, "cmd");
    json_w_arr_begin(&w);
    for (size_t i = 0; i < cmd->u.arr.n; i++)
        json_w_str(&w, cmd->u.arr.items[i].u.str.s, cmd->u.arr.items[i].u.str.len);
    json_w_arr_end(&w);
    if (v && v->type == JSON_OBJECT) {
        json_w_key(&w, "env");
        json_w_arr_begin(&w);
        for (size_t i = 0; i < v->u.obj.n; i++) {
            const struct json_member *m = &v->u.obj.members[i];
            struct sbuf kv;
            if (m->value.type != JSON_STRING)
                return V1_BAD("env: each value must be a string");
            if (m->key_len == 0 || memchr(m->key, '=', m->key_len))
                return V1_BAD("env: each key must be a name without '='");
            sbuf_init(&kv, RUN_MAX_STRING + 1);
            if (sbuf_append(&kv, m->key, m->key_len) < 0 || sbuf_append(&kv, "=", 1) < 0 ||
                sbuf_append(&kv, m->value.u.str.s, m->value.u.str.len) < 0) {
                sbuf_free(&kv);
                return V1_BAD("env: an entry is longer than %u bytes", RUN_MAX_STRING);
            }
            json_w_str(&w, kv.data, kv.len);
            sbuf_free(&kv);
        }
        json_w_arr_end(&w);
    }
    json_w_key(&w, "limits");
    json_w_obj_begin(&w);
    json_w_key(&w, "cpu_cores");
    json_w_double(&w, cpu);
    json_w_key(&w, "memory_mb");
    json_w_uint(&w, mem);
    if (timeout_ms) {
        /* whole seconds for run_request_parse's bounds; the timer uses ms */
        json_w_key(&w, "wall_clock_secs");
        json_w_uint(&w, (timeout_ms + 999) / 1000);
    }
    json_w_obj_end(&w);
    json_w_key(&w, "network");
    json_w_cstr(&w, network ? "sandbox" : "none");
    json_w_obj_end(&w);
    if (w.failed)
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG, "request too large");
    *wall_ms = timeout_ms;
    return 0;
}

int api_parse_user(const struct json_value *v, uint32_t *uid, uint32_t *gid, struct bx_err *err)
{
    if (v->type != JSON_STRING || json_str_has_nul(v))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "user must be a string \"uid[:gid]\"");
    if (bx_parse_user(v->u.str.s, v->u.str.len, uid, gid) < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "user must be \"uid[:gid]\" with numeric ids");
    return 0;
}

/* BoxRun's ephemeral run is a fresh box for one command: root (or "user")
 * on a writable root.  The root's upper layer is a tmpfs (mounting one
 * costs nothing, where a sparse ext4 disk costs a mkfs, a loop device and
 * two mounts per run); its pages count against the run's memory cgroup,
 * so it is bounded by v1_run_root_mb and half of memory_mb (the command's
 * processes keep the other half), and by disk_size_gb when given.  Past
 * the bound writes get ENOSPC; the host disk is never touched. */
static int v1_root(const struct json_value *root, const struct config *cfg, struct run_request *r,
                   struct bx_err *err)
{
    const struct json_value *v = json_get(root, "user");
    uint64_t mb = cfg->v1_run_root_mb;
    r->v1_root = 1;
    r->uid = 0;
    r->gid = 0;
    if (v && v->type != JSON_NULL && api_parse_user(v, &r->uid, &r->gid, err) < 0)
        return -1;
    if (mb > r->limits.memory_mb / 2)
        mb = r->limits.memory_mb / 2;
    v = json_get(root, "disk_size_gb");
    /* checked (a whole number within max_disk_size_gb) by v1_translate */
    if (v && v->type == JSON_NUMBER && v->u.num.d >= 1 && mb > (uint64_t)v->u.num.d * 1024)
        mb = (uint64_t)v->u.num.d * 1024;
    r->root_bytes = mb << 20;
    return 0;
}

int run_request_parse_boxrun(const char *body, size_t len, const struct config *cfg,
                             struct run_request **out, struct bx_err *err)
{
    struct json_limits jl = {run_max_body(cfg), 16, 3 * RUN_MAX_ARGS + 1024};
    struct json_doc *doc = NULL;
    struct sbuf sb;
    uint64_t wall_ms = 0;
    int ret = -1;

    *out = NULL;
    /* The translation holds the request's strings re-escaped, which may
     * grow them up to six times (a raw DEL becomes \u007f): bounded by
     * this body, whose size max_request_body_bytes bounds (issue 17: no
     * fixed cap of its own). */
    sbuf_init(&sb, 6 * len + 4096);
    if (json_parse(body, len, &jl, &doc, err) < 0)
        goto out;
    if (json_doc_root(doc)->type != JSON_OBJECT) {
        V1_BAD("request body must be a JSON object");
        goto out;
    }
    if (v1_translate(json_doc_root(doc), cfg, &sb, &wall_ms, err) < 0)
        goto out;
    if (parse_request(sb.data, sb.len, cfg, 0, sb.max, out, err) < 0)
        goto out;
    (*out)->wall_clock_ms = wall_ms;
    /* stdin is taken from the request itself (not copied into the /run
     * body above, whose buffer is sized for everything else) */
    if (api_parse_stdin(json_doc_root(doc), cfg->stdin_limit_bytes, &(*out)->stdin_data,
                        &(*out)->stdin_len, err) < 0 ||
        v1_root(json_doc_root(doc), cfg, *out, err) < 0) {
        run_request_free(out);
        goto out;
    }
    ret = 0;
out:
    json_doc_free(&doc);
    sbuf_free(&sb);
    return ret;
}
