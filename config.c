#define _GNU_SOURCE
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

#define CONFIG_MAX_BYTES (1u << 20)
#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static char *home_dir_join(const char *suffix)
{
    const char *h = getenv("HOME");
    char *out = NULL;
    if (!h || !*h)
        h = "/root";
    if (asprintf(&out, "%s%s", h, suffix) < 0)
        return NULL;
    return out;
}

uint64_t config_run_host_pids(uint64_t pids_limit)
{
    return 32 + 4 * pids_limit;
}

/* kernel.pid_max bounds every task on the host (threads included); 32768
 * when it cannot be read (the kernel's own default). */
static uint64_t host_pid_max(void)
{
    char *text = NULL;
    size_t len = 0;
    uint64_t v = 0;
    if (bx_read_file_at(AT_FDCWD, "/proc/sys/kernel/pid_max", 64, &text, &len, NULL) == 0) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            len--;
        if (bx_parse_u64(text, len, 1ull << 32, &v) < 0)
            v = 0;
    }
    free(text);
    return v >= 301 ? v : 32768;
}

int config_node_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NODE_ID_MAX || s[0] == '-')
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* The host name up to its first dot, lower-cased; config_validate refuses
 * it (naming node_id) when it is not a usable node id, rather than
 * inventing one that could clash with another node's. */
static char *default_node_id(void)
{
    char h[256];
    if (gethostname(h, sizeof(h)) < 0)
        h[0] = '\0';
    h[sizeof(h) - 1] = '\0';
    h[strcspn(h, ".")] = '\0';
    /* A default must never stop Boxer from starting: whatever the host is
     * called, make it a valid id (other characters become '-', at most
     * NODE_ID_MAX, no leading '-', "node" when nothing is left).  Only an
     * explicit node_id is refused. */
    for (char *p = h; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            *p = '-';
    }
    h[NODE_ID_MAX] = '\0';
    {
        const char *start = h + strspn(h, "-");
        return strdup(*start ? start : "node");
    }
}

void config_defaults(struct config *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES);
    long psize = sysconf(_SC_PAGESIZE);
    uint64_t ram_mb = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize >> 20 : 1024;
    uint64_t pid_max = host_pid_max();

    memset(cfg, 0, sizeof(*cfg));
    if (cores < 1)
        cores = 1;
    cfg->home = home_dir_join("/.boxer");
    cfg->runsc_path = strdup("");
    cfg->platform = strdup("systrap");
    cfg->listen_addr = strdup("127.0.0.1:8080");
    cfg->output_limit_bytes = 10485760;
    cfg->upload_limit_bytes = 10485760;
    cfg->defaults = (struct run_limits){1.0, 256, 30, 64, 256};
    cfg->max_limits =
        (struct run_limits){(double)cores, ram_mb / 2 ? ram_mb / 2 : 1, 3600, 4096, 65536};
    cfg->pull_timeout_secs = 600;
    cfg->tag_refresh_secs = 0;
    cfg->image_cache_max_bytes = 0;
    cfg->max_concurrent_pulls = 2;
    cfg->image_max_bytes = 8ull << 30;
    cfg->pull_memory_mb = 1024;
    cfg->pull_pids_limit = 512;
    cfg->registry_auth_file = NULL;
    cfg->output_files_limit_bytes = 100u << 20;
    cfg->output_files_max = 10000;
    cfg->tmp_size_mb = 64;
    cfg->v1_run_root_mb = 512;
    cfg->header_timeout_ms = 10000;
    cfg->body_timeout_ms = 30000;
    cfg->keepalive_timeout_ms = 60000;
    cfg->write_timeout_ms = 30000;
    cfg->answer_buffer_max_bytes = 16u << 20;
    cfg->max_connections_per_ip = 256;
    cfg->max_concurrent_runs = 2 * (uint64_t)cores;
    cfg->max_queued_runs = 64;
    cfg->max_pending_teardowns = 2 * (uint64_t)cores;
    /* off: a pool sandbox holds memory and budget; the operator opts in */
    cfg->warm_pool_auto = 0;
    cfg->warm_pool_auto_idle_secs = 300;
    cfg->warm_pool_max_total = 0;
    /* Runs together leave a quarter of RAM and half of the pid space to the
     * host (and Boxer): a host OOM or a pid_max exhaustion caused by runs
     * would take down far more than the runs. */
    cfg->total_memory_mb = ram_mb >= 4 ? ram_mb / 4 * 3 : 1;
    cfg->total_pids = pid_max / 2 > (1u << 22) ? (1u << 22) : pid_max / 2;
    /* One run at the maximum must fit the budget. */
    if (config_run_host_pids(cfg->max_limits.pids_limit) > cfg->total_pids)
        cfg->max_limits.pids_limit =
            cfg->total_pids > 32 + 4 * 16 ? (cfg->total_pids - 32) / 4 : 16;
    cfg->min_free_disk_percent = 5;
    cfg->store_max_bytes = 0;
    cfg->sandbox_subnet = strdup("10.88.0.0/16");
    cfg->bridge_name = strdup("boxer0");
    cfg->allow_private_egress = 0;
    cfg->max_egress_rules = 16;
    cfg->box_defaults = (struct box_defaults){2.0, 1024, 8, false, strdup("/root"), 256};
    if (config_run_host_pids(cfg->box_defaults.pids_limit) > cfg->total_pids)
        cfg->box_defaults.pids_limit = cfg->max_limits.pids_limit;
    cfg->max_disk_size_gb = 64;
    cfg->box_stop_grace_secs = 10;
    cfg->box_idle_timeout_secs = 3600;
    /* As many default-sized boxes as the run memory budget holds. */
    cfg->max_boxes = cfg->total_memory_mb / cfg->box_defaults.memory_mb;
    if (cfg->max_boxes < 1)
        cfg->max_boxes = 1;
    cfg->max_execs_per_box = 100;
    cfg->exec_output_bytes = 1u << 20;
    cfg->stream_keepalive_secs = 15;
    cfg->restart_boxes = true;
    cfg->stdin_limit_bytes = 10u << 20;
    cfg->exec_stdin_buffer_bytes = 1u << 20;
    cfg->node_id = default_node_id();
    cfg->drain_timeout_secs = 30;
    cfg->max_request_body_bytes = 64u << 20;
    cfg->max_inline_output_bytes = 16u << 20;
}

void config_free(struct config *cfg)
{
    free(cfg->source);
    free(cfg->home);
    free(cfg->runsc_path);
    free(cfg->platform);
    free(cfg->listen_addr);
    free(cfg->listen_unix);
    for (size_t i = 0; i < cfg->nmirrors; i++) {
        free(cfg->mirrors[i].registry);
        free(cfg->mirrors[i].url);
    }
    free(cfg->mirrors);
    for (size_t i = 0; i < cfg->nwarm_pool; i++) {
        free(cfg->warm_pool[i].image);
        free(cfg->warm_pool[i].network);
        free(cfg->warm_pool[i].kind);
    }
    free(cfg->warm_pool);
    str_list_free(&cfg->insecure_registries);
    str_list_free(&cfg->allowed_registries);
    str_list_free(&cfg->volume_roots);
    free(cfg->registry_auth_file);
    str_list_free(&cfg->auth_tokens);
    str_list_free(&cfg->allowed_origins);
    str_list_free(&cfg->allowed_hosts);
    free(cfg->sandbox_subnet);
    free(cfg->bridge_name);
    str_list_free(&cfg->dns_servers);
    str_list_free(&cfg->blocked_egress);
    free(cfg->box_defaults.workdir);
    free(cfg->node_id);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- the fields: one table per JSON object, one reader per type ---- */

enum field_type {
    F_STRING,   /* char *, replaced */
    F_BOOL,     /* bool */
    F_UINT,     /* uint64_t in [allow_zero ? 0 : 1, max] */
    F_CORES,    /* double in (0, max] */
    F_STR_LIST, /* struct str_list of non-empty strings, replaced */
    F_LIMITS,   /* struct run_limits: the nested object of limits_fields */
    F_MIRRORS,  /* the registry_mirrors object (cfg->mirrors, cfg->nmirrors) */
    F_BOXDEF,   /* struct box_defaults: the nested object of box_default_fields */
    F_POOL,     /* the warm_pool array (cfg->warm_pool, cfg->nwarm_pool) */
};

struct field {
    const char *name;
    enum field_type type;
    size_t offset;   /* in struct config, or in struct run_limits for limits_fields */
    uint64_t max;    /* F_UINT, F_CORES */
    bool allow_zero; /* F_UINT: 0 is meaningful (unlimited, none, off) */
};

/* clang-format off */
#define CFG(name, type, max, zero) {#name, type, offsetof(struct config, name), max, zero}
#define CFG_STRING(name) CFG(name, F_STRING, 0, false)
#define CFG_BOOL(name) CFG(name, F_BOOL, 0, false)
#define CFG_UINT(name, max, allow_zero) CFG(name, F_UINT, max, allow_zero)
#define CFG_STR_LIST(name) CFG(name, F_STR_LIST, 0, false)
#define LIM(name, type, max) {#name, type, offsetof(struct run_limits, name), max, false}
/* clang-format on */

/* Every top-level field.  allow_zero is set where 0 means something
 * (unlimited, no queue, no refresh); config_validate adds the rules that
 * span fields or need a larger minimum. */
static const struct field config_fields[] = {
    CFG_STRING(home),
    CFG_STRING(runsc_path),
    CFG_STRING(platform),
    CFG_STRING(listen_addr),
    CFG_STRING(listen_unix),
    CFG_BOOL(ignore_cgroups),
    CFG_BOOL(runsc_debug),
    CFG_UINT(output_limit_bytes, 1ull << 32, false),
    CFG_UINT(upload_limit_bytes, 1ull << 40, false),
    CFG(defaults, F_LIMITS, 0, false),
    CFG(max_limits, F_LIMITS, 0, false),
    CFG_UINT(pull_timeout_secs, 86400, false),
    CFG_UINT(tag_refresh_secs, 365ull * 86400, true),
    CFG_UINT(image_cache_max_bytes, 1ull << 50, true),
    CFG_UINT(max_concurrent_pulls, 64, false),
    CFG_UINT(image_max_bytes, 1ull << 50, false),
    CFG_UINT(pull_memory_mb, 1u << 20, false),
    CFG_UINT(pull_pids_limit, 1u << 22, false),
    {"registry_mirrors", F_MIRRORS, 0, 0, false},
    CFG_STR_LIST(insecure_registries),
    CFG_STR_LIST(allowed_registries),
    CFG_STR_LIST(volume_roots),
    CFG_STRING(registry_auth_file),
    CFG_UINT(output_files_limit_bytes, 1ull << 40, false),
    CFG_UINT(output_files_max, 10000000, false),
    CFG_UINT(tmp_size_mb, 1u << 20, false),
    CFG_UINT(v1_run_root_mb, 1u << 20, false),
    CFG_UINT(header_timeout_ms, 3600000, false),
    CFG_UINT(body_timeout_ms, 3600000, false),
    CFG_UINT(keepalive_timeout_ms, 3600000, false),
    CFG_UINT(max_concurrent_runs, 4096, false),
    CFG_UINT(max_queued_runs, 1000000, true),
    CFG_UINT(max_pending_teardowns, 4096, false),
    {"warm_pool", F_POOL, 0, 0, false},
    CFG_UINT(warm_pool_auto, 1000, true),
    CFG_UINT(warm_pool_auto_idle_secs, 30ull * 86400, false),
    CFG_UINT(warm_pool_max_total, 4096, true),
    CFG_UINT(total_memory_mb, 1ull << 40, false),
    CFG_UINT(total_pids, 1u << 22, false),
    CFG_UINT(min_free_disk_percent, 99, true),
    CFG_UINT(store_max_bytes, 1ull << 50, true),
    CFG_STR_LIST(auth_tokens),
    CFG_BOOL(allow_unauthenticated),
    CFG_STR_LIST(allowed_origins),
    CFG_STR_LIST(allowed_hosts),
    CFG_UINT(write_timeout_ms, 3600000, false),
    CFG_UINT(answer_buffer_max_bytes, 1ull << 40, false),
    CFG_UINT(max_connections_per_ip, 1u << 24, false),
    CFG_BOOL(allow_host_network),
    CFG_STRING(sandbox_subnet),
    CFG_STRING(bridge_name),
    CFG_STR_LIST(dns_servers),
    CFG_STR_LIST(blocked_egress),
    CFG_BOOL(allow_private_egress),
    CFG_UINT(max_egress_rules, 1024, true),
    CFG(box_defaults, F_BOXDEF, 0, false),
    CFG_UINT(max_disk_size_gb, 1024, false),
    CFG_UINT(box_stop_grace_secs, 3600, true),
    CFG_UINT(box_idle_timeout_secs, 365ull * 86400, true),
    CFG_UINT(max_boxes, 100000, false),
    CFG_UINT(max_execs_per_box, 100000, false),
    CFG_UINT(exec_output_bytes, 1ull << 30, false),
    CFG_UINT(stream_keepalive_secs, 3600, false),
    CFG_BOOL(restart_boxes),
    /* issue 14: stdin of /run and execs, interactive input */
    CFG_UINT(stdin_limit_bytes, 256ull << 20, false),
    CFG_UINT(exec_stdin_buffer_bytes, 256ull << 20, false),
    /* issue 17: scale-out */
    CFG_STRING(node_id),
    CFG_UINT(drain_timeout_secs, 86400, true),
    CFG_UINT(max_request_body_bytes, 1ull << 32, false),
    CFG_UINT(max_inline_output_bytes, 1ull << 31, true),
};

#define BOXDEF(name, type, max, zero) {#name, type, offsetof(struct box_defaults, name), max, zero}
/* "box_defaults": BoxRun's create defaults. */
static const struct field box_default_fields[] = {
    BOXDEF(cpu, F_CORES, 1024, false),
    BOXDEF(memory_mb, F_UINT, 1u << 30, false),
    BOXDEF(disk_size_gb, F_UINT, 1024, false),
    BOXDEF(network, F_BOOL, 0, false),
    BOXDEF(workdir, F_STRING, 0, false),
    BOXDEF(pids_limit, F_UINT, 1u << 20, false),
};

/* "defaults" and "max_limits": every limit is positive. */
static const struct field limits_fields[] = {
    LIM(cpu_cores, F_CORES, 1024),
    LIM(memory_mb, F_UINT, 1u << 30),
    LIM(wall_clock_secs, F_UINT, 30u * 86400),
    LIM(pids_limit, F_UINT, 1u << 22),
    LIM(nofile, F_UINT, 1u << 20),
};

#define POOL(name, type, max) {#name, type, offsetof(struct warm_pool_entry, name), max, false}
/* One warm_pool entry. */
static const struct field pool_fields[] = {
    POOL(image, F_STRING, 0),
    POOL(count, F_UINT, 64),
    POOL(limits, F_LIMITS, 0),
    POOL(network, F_STRING, 0),
    POOL(kind, F_STRING, 0),
    POOL(disk_size_gb, F_UINT, 1u << 20),
};

int config_pool_is_box(const struct warm_pool_entry *w)
{
    return w->kind && strcmp(w->kind, "box") == 0;
}

static int get_string(const struct json_value *v, const char *field, char **dst,
                      struct bx_err *err)
{
    char *s;
    if (v->type != JSON_STRING)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be a string", field);
    if (json_str_has_nul(v))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must not contain NUL", field);
    s = strdup(v->u.str.s);
    if (!s)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    free(*dst);
    *dst = s;
    return 0;
}

static int cfg_get_bool(const struct json_value *v, const char *field, bool *dst,
                        struct bx_err *err)
{
    if (v->type != JSON_BOOL)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be true or false", field);
    *dst = v->u.boolean != 0;
    return 0;
}

/* Non-negative integer; allow_zero decides whether 0 is meaningful. */
static int get_uint(const struct json_value *v, const char *field, bool allow_zero, uint64_t max,
                    uint64_t *dst, struct bx_err *err)
{
    if (v->type != JSON_NUMBER || !v->u.num.is_int)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be an integer", field);
    if (v->u.num.i < 0 || (!allow_zero && v->u.num.i == 0))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be %s", field,
                          allow_zero ? "zero or positive" : "positive");
    if ((uint64_t)v->u.num.i > max)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be at most %llu", field,
                          (unsigned long long)max);
    *dst = (uint64_t)v->u.num.i;
    return 0;
}

static int get_cores(const struct json_value *v, const char *field, uint64_t max, double *dst,
                     struct bx_err *err)
{
    if (v->type != JSON_NUMBER || !isfinite(v->u.num.d) || v->u.num.d <= 0 ||
        v->u.num.d > (double)max)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be a positive number (at most %llu)",
                          field, (unsigned long long)max);
    *dst = v->u.num.d;
    return 0;
}

static int get_str_list(const struct json_value *v, const char *field, struct str_list *dst,
                        struct bx_err *err)
{
    struct str_list l = {0};
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be an array of strings", field);
    if (v->u.arr.n > 1024)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: too many entries", field);
    if (str_list_reserve(&l, v->u.arr.n) < 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *e = &v->u.arr.items[i];
        if (e->type != JSON_STRING || json_str_has_nul(e) || e->u.str.len == 0) {
            str_list_free(&l);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s[%zu]: must be a non-empty string",
                              field, i);
        }
        if (str_list_push(&l, e->u.str.s) < 0) {
            str_list_free(&l);
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
        }
    }
    str_list_free(dst);
    *dst = l;
    return 0;
}

static int parse_object(void *base, const struct field *fields, size_t nfields,
                        const struct json_value *obj, const char *prefix, struct config *cfg,
                        struct bx_err *err);

static int parse_mirrors(struct config *cfg, const struct json_value *v, struct bx_err *err)
{
    struct mirror *ms;
    if (v->type != JSON_OBJECT)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: registry_mirrors: must be an object of registry -> URL");
    if (v->u.obj.n > 256)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: registry_mirrors: too many entries");
    ms = calloc(v->u.obj.n + 1, sizeof(*ms));
    if (!ms)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    for (size_t i = 0; i < v->u.obj.n; i++) {
        const struct json_member *m = &v->u.obj.members[i];
        const char *url = m->value.type == JSON_STRING ? m->value.u.str.s : "";
        if (m->value.type != JSON_STRING || json_str_has_nul(&m->value) ||
            (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
            strpbrk(url, " \t\r\n") || m->key_len == 0 || strlen(m->key) != m->key_len) {
            for (size_t j = 0; j < i; j++) {
                free(ms[j].registry);
                free(ms[j].url);
            }
            free(ms);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: registry_mirrors.%.100s: must be an http:// or https:// URL",
                              m->key);
        }
        ms[i].registry = strdup(m->key);
        ms[i].url = strdup(url);
    }
    for (size_t i = 0; i < cfg->nmirrors; i++) {
        free(cfg->mirrors[i].registry);
        free(cfg->mirrors[i].url);
    }
    free(cfg->mirrors);
    cfg->mirrors = ms;
    cfg->nmirrors = v->u.obj.n;
    for (size_t i = 0; i < cfg->nmirrors; i++)
        if (!ms[i].registry || !ms[i].url)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    return 0;
}

static void free_pool(struct warm_pool_entry *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ps[i].image);
        free(ps[i].network);
        free(ps[i].kind);
    }
    free(ps);
}

/* "warm_pool": [{"image", "count", "limits", "network"}...], replaced as
 * a whole. */
static int parse_warm_pool(struct config *cfg, const struct json_value *v, struct bx_err *err)
{
    struct warm_pool_entry *ps;
    char name[48];
    if (v->type != JSON_ARRAY)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: warm_pool: must be an array");
    if (v->u.arr.n > 64)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: warm_pool: too many entries");
    ps = calloc(v->u.arr.n + 1, sizeof(*ps));
    if (!ps)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    for (size_t i = 0; i < v->u.arr.n; i++) {
        const struct json_value *e = &v->u.arr.items[i];
        snprintf(name, sizeof(name), "warm_pool[%zu]", i);
        if (e->type != JSON_OBJECT) {
            free_pool(ps, v->u.arr.n);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be an object", name);
        }
        if (parse_object(&ps[i], pool_fields, BX_ARRAY_LEN(pool_fields), e, name, cfg, err) < 0) {
            free_pool(ps, v->u.arr.n);
            return -1;
        }
        if (!ps[i].image || !ps[i].image[0] || ps[i].count == 0 ||
            (ps[i].network && strcmp(ps[i].network, "none") != 0 &&
             strcmp(ps[i].network, "sandbox") != 0)) {
            free_pool(ps, v->u.arr.n);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: %s: needs image and count (1-64); network is \"none\" or "
                              "\"sandbox\"",
                              name);
        }
        if ((ps[i].kind && strcmp(ps[i].kind, "run") != 0 && strcmp(ps[i].kind, "box") != 0) ||
            (!config_pool_is_box(&ps[i]) && ps[i].disk_size_gb) ||
            (config_pool_is_box(&ps[i]) && (ps[i].limits.pids_limit || ps[i].limits.nofile))) {
            free_pool(ps, v->u.arr.n);
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: %s: kind is \"run\" or \"box\"; disk_size_gb only with "
                              "\"box\", whose limits are cpu_cores and memory_mb",
                              name);
        }
    }
    free_pool(cfg->warm_pool, cfg->nwarm_pool);
    cfg->warm_pool = ps;
    cfg->nwarm_pool = v->u.arr.n;
    return 0;
}

/* One value into its field, named `name` in errors ("defaults.memory_mb"). */
static int parse_field(void *base, const struct field *f, const struct json_value *v,
                       const char *name, struct config *cfg, struct bx_err *err)
{
    void *dst = (char *)base + f->offset;
    switch (f->type) {
    case F_STRING:
        return get_string(v, name, dst, err);
    case F_BOOL:
        return cfg_get_bool(v, name, dst, err);
    case F_UINT:
        return get_uint(v, name, f->allow_zero, f->max, dst, err);
    case F_CORES:
        return get_cores(v, name, f->max, dst, err);
    case F_STR_LIST:
        return get_str_list(v, name, dst, err);
    case F_LIMITS:
        if (v->type != JSON_OBJECT)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be an object", name);
        return parse_object(dst, limits_fields, BX_ARRAY_LEN(limits_fields), v, name, cfg, err);
    case F_MIRRORS:
        return parse_mirrors(cfg, v, err);
    case F_POOL:
        return parse_warm_pool(cfg, v, err);
    case F_BOXDEF:
        if (v->type != JSON_OBJECT)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %s: must be an object", name);
        return parse_object(dst, box_default_fields, BX_ARRAY_LEN(box_default_fields), v, name,
                            cfg, err);
    }
    return bx_err_set(err, BX_E_INTERNAL, EINVAL, "config: %s: no reader", name);
}

/* The members of obj, in document order, into the fields of `base` the table
 * names; the first unknown key (json_key_is: one with a NUL inside is
 * unknown) or bad value stops the parse.  prefix is NULL at the top level. */
static int parse_object(void *base, const struct field *fields, size_t nfields,
                        const struct json_value *obj, const char *prefix, struct config *cfg,
                        struct bx_err *err)
{
    char nested[64];
    for (size_t i = 0; i < obj->u.obj.n; i++) {
        const struct json_member *m = &obj->u.obj.members[i];
        const struct field *f = NULL;
        const char *name = m->key;
        if (prefix) {
            snprintf(nested, sizeof(nested), "%s.%.40s", prefix, m->key);
            name = nested;
        }
        for (size_t k = 0; k < nfields && !f; k++)
            if (json_key_is(m, fields[k].name))
                f = &fields[k];
        if (!f)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: %.100s: unknown field", name);
        if (parse_field(base, f, &m->value, name, cfg, err) < 0)
            return -1;
    }
    return 0;
}

static int expand_home(char **p, struct bx_err *err)
{
    if ((*p)[0] == '~' && ((*p)[1] == '/' || (*p)[1] == '\0')) {
        char *x = home_dir_join(*p + 1);
        if (!x)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
        free(*p);
        *p = x;
    }
    return 0;
}

/* listen_unix left unset: the socket lives in the home only when that is
 * the user's default home, the one clients look in (~/.boxer/boxer.sock). */
static int resolve_listen_unix(struct config *cfg, struct bx_err *err)
{
    char *def;
    if (cfg->listen_unix)
        return 0;
    def = home_dir_join("/.boxer");
    if (!def)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    /* A default never stops start-up: a home too long for sun_path gets
     * no socket. */
    if (cfg->home && strcmp(cfg->home, def) == 0 &&
        strlen(cfg->home) + sizeof("/boxer.sock") <= SUN_PATH_MAX) {
        free(def);
        if (asprintf(&cfg->listen_unix, "%s/boxer.sock", cfg->home) < 0)
            cfg->listen_unix = NULL;
    } else {
        free(def);
        cfg->listen_unix = strdup("");
    }
    if (!cfg->listen_unix)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "config: out of memory");
    return 0;
}

int config_parse(struct config *cfg, const char *text, size_t len, struct bx_err *err)
{
    struct json_limits lim = {CONFIG_MAX_BYTES, 16, 100000};
    struct json_doc *doc = NULL;
    const struct json_value *root;
    int ret = -1;

    if (json_parse(text, len, &lim, &doc, err) < 0) {
        bx_err_wrap(err, "config");
        goto out;
    }
    root = json_doc_root(doc);
    if (root->type != JSON_OBJECT) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: must be a JSON object");
        goto out;
    }
    if (parse_object(cfg, config_fields, BX_ARRAY_LEN(config_fields), root, NULL, cfg, err) < 0)
        goto out;
    if (expand_home(&cfg->home, err) < 0)
        goto out;
    if (cfg->listen_unix && expand_home(&cfg->listen_unix, err) < 0)
        goto out;
    if (resolve_listen_unix(cfg, err) < 0)
        goto out;
    ret = 0;
out:
    json_doc_free(&doc);
    return ret;
}

static int limit_within(const char *name, double v, double max, struct bx_err *err)
{
    if (v > max)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: defaults.%s: above max_limits.%s", name,
                          name);
    return 0;
}

/* An IPv4 network "a.b.c.d/len" (or, with allow_bare, a single address)
 * with prefix in [min_len, 30] and no host bits set: the networking code
 * formats these back from integers, so only exact values pass. */
static int ipv4_net_ok(const char *s, int allow_bare, unsigned min_len)
{
    char addr[INET_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t al = slash ? (size_t)(slash - s) : strlen(s);
    uint64_t len = 32;
    struct in_addr in;
    uint32_t a, mask;

    if (al == 0 || al >= sizeof(addr))
        return 0;
    memcpy(addr, s, al);
    addr[al] = '\0';
    if (inet_pton(AF_INET, addr, &in) != 1)
        return 0;
    if (slash) {
        if (bx_parse_u64(slash + 1, strlen(slash + 1), 32, &len) < 0)
            return 0;
    } else if (!allow_bare) {
        return 0;
    }
    if (len < min_len || (!allow_bare && len > 30))
        return 0;
    a = ntohl(in.s_addr);
    mask = len == 0 ? 0 : ~0u << (32 - len);
    return (a & ~mask) == 0;
}

/* Interface names end up in nft rules and netlink messages: a small
 * charset keeps both unambiguous. */
static int bridge_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || !isalpha((unsigned char)s[0]) || strncmp(s, "bxv", 3) == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

static int validate_network(const struct config *cfg, struct bx_err *err)
{
    struct in_addr in;
    if (!ipv4_net_ok(cfg->sandbox_subnet, 0, 8))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: sandbox_subnet: \"%.64s\" is not an IPv4 network like "
                          "10.88.0.0/16 (prefix /8 to /30, host bits zero)",
                          cfg->sandbox_subnet);
    if (!bridge_name_ok(cfg->bridge_name))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: bridge_name: must be 1 to 15 letters, digits, '_', '-' or "
                          "'.', start with a letter and not with \"bxv\"");
    if (cfg->dns_servers.n > 3)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: dns_servers: at most 3 servers");
    for (size_t i = 0; i < cfg->dns_servers.n; i++)
        if (inet_pton(AF_INET, cfg->dns_servers.items[i], &in) != 1)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: dns_servers[%zu]: \"%.64s\" is not an IPv4 address", i,
                              cfg->dns_servers.items[i]);
    if (cfg->blocked_egress.n > 256)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: blocked_egress: at most 256 entries");
    for (size_t i = 0; i < cfg->blocked_egress.n; i++)
        if (!ipv4_net_ok(cfg->blocked_egress.items[i], 1, 0))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: blocked_egress[%zu]: \"%.64s\" is not an IPv4 address "
                              "or network (a.b.c.d/len, host bits zero)",
                              i, cfg->blocked_egress.items[i]);
    return 0;
}

/* An origin as browsers send it: scheme "://" host[:port], nothing after. */
static int origin_ok(const char *s)
{
    const char *rest = strstr(s, "://");
    if (!rest || rest == s || rest[3] == '\0')
        return 0;
    for (const char *p = s; p < rest; p++)
        if (!isalpha((unsigned char)*p))
            return 0;
    return strpbrk(rest + 3, " \t\r\n/?#") == NULL;
}

int config_validate(const struct config *cfg, struct bx_err *err)
{
    const char *la = cfg->listen_addr;
    const char *colon = strrchr(la, ':');
    uint64_t port;

    if (!cfg->home || cfg->home[0] != '/')
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: home: must be an absolute path");
    if (strcmp(cfg->platform, "systrap") != 0 && strcmp(cfg->platform, "ptrace") != 0 &&
        strcmp(cfg->platform, "kvm") != 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: platform: must be systrap, ptrace or kvm");
    if (la[0] && (!colon || bx_parse_u64(colon + 1, strlen(colon + 1), 65535, &port) < 0 ||
                  strpbrk(la, " \t\r\n/")))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: listen_addr: \"%.100s\" is not host:port (e.g. :8080, "
                          "127.0.0.1:8080, [::1]:8080)",
                          la);
    if (cfg->listen_unix && cfg->listen_unix[0] &&
        (cfg->listen_unix[0] != '/' || strlen(cfg->listen_unix) >= SUN_PATH_MAX))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: listen_unix: must be an absolute path of at most %zu bytes",
                          SUN_PATH_MAX - 1);
    if (!la[0] && !(cfg->listen_unix && cfg->listen_unix[0]))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: listen_addr: empty (no TCP) needs listen_unix set");
    if (cfg->runsc_path[0] && cfg->runsc_path[0] != '/')
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: runsc_path: must be an absolute path");
    for (size_t i = 0; i < cfg->volume_roots.n; i++)
        if (cfg->volume_roots.items[i][0] != '/' || strcmp(cfg->volume_roots.items[i], "/") == 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: volume_roots[%zu]: must be an absolute path other than /", i);
    if (cfg->output_limit_bytes == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: output_limit_bytes: must be positive");
    if (cfg->upload_limit_bytes == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: upload_limit_bytes: must be positive");
    if (cfg->max_concurrent_runs == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: max_concurrent_runs: must be positive");
    if (cfg->output_files_limit_bytes < (1u << 20))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: output_files_limit_bytes: must be at least 1048576");
    if (cfg->tmp_size_mb == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: tmp_size_mb: must be positive");
    if (cfg->v1_run_root_mb < 8)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: v1_run_root_mb: must be at least 8");
    /* Go's runtime alone needs tens of MiB and a dozen threads: smaller
     * limits would only make every pull fail. */
    if (cfg->pull_memory_mb < 64)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: pull_memory_mb: must be at least 64");
    if (cfg->pull_pids_limit < 16)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: pull_pids_limit: must be at least 16");
    if (!cfg->box_defaults.workdir || cfg->box_defaults.workdir[0] != '/' ||
        strlen(cfg->box_defaults.workdir) > 1024)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: box_defaults.workdir: must be an absolute path");
    if (cfg->box_defaults.disk_size_gb > cfg->max_disk_size_gb)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: box_defaults.disk_size_gb: must be at most max_disk_size_gb");
    if (limit_within("cpu_cores", cfg->defaults.cpu_cores, cfg->max_limits.cpu_cores, err) < 0 ||
        limit_within("memory_mb", (double)cfg->defaults.memory_mb,
                     (double)cfg->max_limits.memory_mb, err) < 0 ||
        limit_within("wall_clock_secs", (double)cfg->defaults.wall_clock_secs,
                     (double)cfg->max_limits.wall_clock_secs, err) < 0 ||
        limit_within("pids_limit", (double)cfg->defaults.pids_limit,
                     (double)cfg->max_limits.pids_limit, err) < 0 ||
        limit_within("nofile", (double)cfg->defaults.nofile, (double)cfg->max_limits.nofile,
                     err) < 0)
        return -1;
    /* A default run must fit the budget, or every run without limits
     * would be refused. */
    if (cfg->total_memory_mb < cfg->defaults.memory_mb)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: total_memory_mb: %llu is below defaults.memory_mb (%llu)",
                          (unsigned long long)cfg->total_memory_mb,
                          (unsigned long long)cfg->defaults.memory_mb);
    if (cfg->total_pids < config_run_host_pids(cfg->defaults.pids_limit))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: total_pids: %llu is below the %llu host tasks a run with "
                          "defaults.pids_limit %llu needs (32 + 4 per pid)",
                          (unsigned long long)cfg->total_pids,
                          (unsigned long long)config_run_host_pids(cfg->defaults.pids_limit),
                          (unsigned long long)cfg->defaults.pids_limit);
    if (cfg->write_timeout_ms == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: write_timeout_ms: must be positive");
    {
        uint64_t sum = 0;
        for (size_t i = 0; i < cfg->nwarm_pool; i++)
            sum += config_pool_is_box(&cfg->warm_pool[i]) ? 0 : cfg->warm_pool[i].count;
        if (cfg->warm_pool_max_total && cfg->warm_pool_max_total < sum)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: warm_pool_max_total: %llu is below the sum of the "
                              "warm_pool counts (%llu)",
                              (unsigned long long)cfg->warm_pool_max_total,
                              (unsigned long long)sum);
    }
    if (cfg->answer_buffer_max_bytes < 65536)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: answer_buffer_max_bytes: must be at least 65536");
    if (cfg->max_connections_per_ip == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: max_connections_per_ip: must be positive");
    for (size_t i = 0; i < cfg->allowed_origins.n; i++)
        if (!origin_ok(cfg->allowed_origins.items[i]))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: allowed_origins[%zu]: \"%.64s\" is not an origin like "
                              "http://app.example:3000 (scheme://host[:port], no path)",
                              i, cfg->allowed_origins.items[i]);
    for (size_t i = 0; i < cfg->allowed_hosts.n; i++)
        if (strpbrk(cfg->allowed_hosts.items[i], " \t\r\n/"))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "config: allowed_hosts[%zu]: \"%.64s\" is not a host[:port]", i,
                              cfg->allowed_hosts.items[i]);
    if (cfg->registry_auth_file && cfg->registry_auth_file[0] != '/')
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: registry_auth_file: must be an absolute path");
    /* api_run.h's RUN_MAX_BODY: a plain /run must always fit. */
    if (cfg->max_request_body_bytes < (4u << 20))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: max_request_body_bytes: must be at least 4194304");
    if (!config_node_id_ok(cfg->node_id))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "config: node_id: \"%.64s\" must be 1..%d of [a-z0-9-], not starting "
                          "with '-' (the default is the host name; set node_id)",
                          cfg->node_id ? cfg->node_id : "", NODE_ID_MAX);
    return validate_network(cfg, err);
}

int config_load(struct config *cfg, const char *explicit_path, struct bx_err *err)
{
    const char *path = explicit_path;
    char *home_cfg = NULL;
    char *text = NULL;
    size_t len = 0;
    int ret = -1;

    if (!path || !*path)
        path = getenv("BOXER_CONFIG");
    if (!path || !*path) {
        home_cfg = home_dir_join("/.boxer/config.json");
        if (home_cfg && access(home_cfg, F_OK) == 0)
            path = home_cfg;
        else
            path = NULL;
    }
    if (!path && resolve_listen_unix(cfg, err) < 0)
        goto out;
    if (path) {
        if (bx_read_file_at(AT_FDCWD, path, CONFIG_MAX_BYTES, &text, &len, err) < 0) {
            bx_err_wrap(err, "config %s", path);
            goto out;
        }
        if (config_parse(cfg, text, len, err) < 0) {
            bx_err_wrap(err, "%s", path);
            goto out;
        }
        free(cfg->source);
        cfg->source = strdup(path);
    }
    if (config_validate(cfg, err) < 0) {
        if (path)
            bx_err_wrap(err, "%s", path);
        goto out;
    }
    ret = 0;
out:
    free(text);
    free(home_cfg);
    return ret;
}

uint64_t config_warm_pool_max_total(const struct config *cfg)
{
    uint64_t sum = 0, n;
    if (cfg->warm_pool_max_total)
        return cfg->warm_pool_max_total;
    for (size_t i = 0; i < cfg->nwarm_pool; i++)
        sum += config_pool_is_box(&cfg->warm_pool[i]) ? 0 : cfg->warm_pool[i].count;
    n = cfg->defaults.memory_mb ? cfg->total_memory_mb / 4 / cfg->defaults.memory_mb : 1;
    if (n < 1)
        n = 1;
    return n > sum ? n : sum;
}
