/* libFuzzer harness for run_request_parse: arbitrary bytes as a POST /run
 * body, against a config from config_defaults with fixed max_limits (so a
 * crash reproduces on any machine).  The input's length picks whether the
 * operator allows host networking (bit 0) and whether registries are pinned
 * by allowed_registries (bit 1), so seeds stay plain JSON.
 *
 * Whatever is accepted must be safe to hand to the OCI spec builder and the
 * store without further checks: C strings without NUL, cmd non-empty, env
 * entries KEY=VALUE, cwd absolute, files already in the store's normal form,
 * every limit between its floor and the server maximum, an egress list only
 * with network sandbox and within max_egress_rules, and an accepted
 * "network" is exactly the name of the mode chosen (no prefix, no NUL),
 * inputs (issue 17) with normal paths and bounded contents.  Every refusal is a
 * 400 (413 only above run_max_body, or for a stdin over stdin_limit_bytes)
 * and leaves *out NULL.  Leak detection
 * (libFuzzer's default) covers the error paths' cleanup. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "config.h"
#include "json.h"
#include "net.h"
#include "run.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_runreq: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct config cfg;
static char *allowed[] = {"docker.io", "127.0.0.1:5000", NULL};

static size_t strv_len(char **v, size_t max)
{
    size_t n = 0;
    CHECK(v != NULL);
    while (v[n]) {
        n++;
        CHECK(n <= max);
    }
    return n;
}

static void check_limits(const struct run_limits *l)
{
    CHECK(isfinite(l->cpu_cores) && l->cpu_cores >= 0.01 &&
          l->cpu_cores <= cfg.max_limits.cpu_cores);
    CHECK(l->memory_mb >= 16 && l->memory_mb <= cfg.max_limits.memory_mb);
    CHECK(l->wall_clock_secs >= 1 && l->wall_clock_secs <= cfg.max_limits.wall_clock_secs);
    CHECK(l->pids_limit >= 1 && l->pids_limit <= cfg.max_limits.pids_limit);
    CHECK(l->nofile >= 16 && l->nofile <= cfg.max_limits.nofile);
    CHECK(l->memory_mb <= cfg.total_memory_mb);
    CHECK(config_run_host_pids(l->pids_limit) <= cfg.total_pids);
}

static void check_request(const struct run_request *r)
{
    char canon[IMGREF_MAX * 4 + 8];
    size_t n;

    CHECK(r->image != NULL && r->image[0] != '\0' && strlen(r->image) <= IMGREF_MAX);
    CHECK(r->ref.repository[0] != '\0' && r->ref.registry[0] != '\0');
    CHECK(r->ref.tag[0] != '\0' || r->ref.digest[0] != '\0');
    CHECK(imgref_format(&r->ref, canon, sizeof(canon)) >= 0);

    n = strv_len(r->cmd, RUN_MAX_ARGS);
    CHECK(n >= 1 && r->cmd[0][0] != '\0');
    for (size_t i = 0; i < n; i++)
        CHECK(strlen(r->cmd[i]) <= RUN_MAX_STRING);

    if (r->env) {
        n = strv_len(r->env, RUN_MAX_ENV);
        for (size_t i = 0; i < n; i++) {
            const char *eq = strchr(r->env[i], '=');
            CHECK(eq != NULL && eq != r->env[i]);
            for (const char *p = r->env[i]; p < eq; p++)
                CHECK((unsigned char)*p > ' ' && *p != 0x7f);
        }
    }

    CHECK(r->cwd == NULL || (r->cwd[0] == '/' && strlen(r->cwd) <= 4096));

    if (r->files) {
        CHECK(strv_len(r->files, RUN_MAX_FILES) == r->nfiles);
        for (size_t i = 0; i < r->nfiles; i++) {
            /* Already normal: normalizing again is the identity. */
            char again[STORE_PATH_MAX + 1];
            CHECK(store_normalize_path(r->files[i], strlen(r->files[i]), 0, again, NULL) == 0);
            CHECK(strcmp(again, r->files[i]) == 0);
        }
    } else {
        CHECK(r->nfiles == 0);
    }

    check_limits(&r->limits);
    CHECK(r->network == RUN_NET_NONE || r->network == RUN_NET_SANDBOX ||
          (r->network == RUN_NET_HOST && cfg.allow_host_network));
    if (cfg.allowed_registries.n)
        CHECK(strcmp(r->ref.registry, "docker.io") == 0 ||
              strcmp(r->ref.registry, "127.0.0.1:5000") == 0);
    CHECK(r->persist == 0 || r->persist == 1);
    /* stdin (issue 14): decoded, within stdin_limit_bytes */
    CHECK(r->stdin_len <= cfg.stdin_limit_bytes);
    CHECK(r->stdin_data != NULL || r->stdin_len == 0);
    /* An egress list only with network sandbox, within max_egress_rules,
     * each entry an aligned network and a port of 0 (any) to 65535. */
    if (r->has_egress) {
        CHECK(r->network == RUN_NET_SANDBOX && r->egress != NULL);
        CHECK(r->negress <= cfg.max_egress_rules);
        for (size_t i = 0; i < r->negress; i++) {
            const struct net_egress *e = &r->egress[i];
            CHECK(e->prefix <= 32 && e->port <= 65535);
            CHECK(e->prefix == 32 || (e->addr & (0xffffffffu >> e->prefix)) == 0);
        }
    } else {
        CHECK(r->egress == NULL && r->negress == 0);
    }
    /* inputs (issue 17): upload-normal paths (never output/), no path
     * twice nor also in files, decoded within upload_limit_bytes, mode
     * bits only; return_outputs never with a stream */
    CHECK(r->ninputs + r->nfiles <= RUN_MAX_FILES);
    CHECK(r->inputs != NULL || r->ninputs == 0);
    for (size_t i = 0; i < r->ninputs; i++) {
        const struct oci_input *in = &r->inputs[i];
        char again[STORE_PATH_MAX + 1];
        CHECK(in->path != NULL && in->data != NULL);
        CHECK(store_normalize_path(in->path, strlen(in->path), 1, again, NULL) == 0);
        CHECK(strcmp(again, in->path) == 0);
        CHECK(in->len <= cfg.upload_limit_bytes && in->mode <= 0777);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(r->inputs[j].path, in->path) != 0);
        for (size_t j = 0; j < r->nfiles; j++)
            CHECK(strcmp(r->files[j], in->path) != 0);
    }
    CHECK(r->return_outputs == 0 || (r->return_outputs == 1 && !r->stream));
}

/* Independent of run.c's comparison: re-parse the body and compare bytes. */
static void check_network(const char *body, size_t size, const struct run_request *r)
{
    const struct json_limits jl = {run_max_body(&cfg), 16, 3 * RUN_MAX_ARGS + 1024};
    struct json_doc *doc = NULL;
    struct bx_err err;
    const struct json_value *v;

    CHECK(json_parse(body, size, &jl, &doc, &err) == 0);
    v = json_get(json_doc_root(doc), "network");
    if (v && v->type != JSON_NULL) {
        const char *want = r->network == RUN_NET_NONE      ? "none"
                           : r->network == RUN_NET_SANDBOX ? "sandbox"
                                                           : "host";
        CHECK(v->type == JSON_STRING && v->u.str.len == strlen(want) &&
              memcmp(v->u.str.s, want, v->u.str.len) == 0);
    } else {
        CHECK(r->network == RUN_NET_NONE);
    }
    json_doc_free(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run_request *r = NULL;
    struct bx_err err;
    /* An exact-size heap copy: ASan flags any read past the input. */
    char *body = malloc(size ? size : 1);

    if (!cfg.home) {
        config_defaults(&cfg);
        cfg.max_limits = (struct run_limits){4.0, 8192, 3600, 4096, 65536};
        /* Fixed too, and below max_limits so the budget refusal is reached. */
        cfg.total_memory_mb = 6144;
        cfg.total_pids = 12000;
        /* a small stdin bound keeps the body limit (RUN_MAX_BODY + 2 KiB)
         * within the harness's max_len, so both sides are reached */
        cfg.stdin_limit_bytes = 1024;
        /* issue 17: the body limit is max_request_body_bytes; kept as
         * before (RUN_MAX_BODY + 2 KiB) so both sides stay reachable, and
         * a small upload_limit_bytes bounds each input */
        cfg.max_request_body_bytes = RUN_MAX_BODY + 2048;
        cfg.upload_limit_bytes = 1024;
    }
    cfg.allow_host_network = (int)(size & 1);
    /* Points at static strings: never passed to config_free. */
    cfg.allowed_registries.items = size & 2 ? allowed : NULL;
    cfg.allowed_registries.n = size & 2 ? 2 : 0;
    CHECK(body != NULL);
    if (size)
        memcpy(body, data, size);
    bx_err_clear(&err);
    if (run_request_parse(body, size, &cfg, &r, &err) == 0) {
        CHECK(r != NULL);
        check_request(r);
        check_network(body, size, r);
        run_request_free(&r);
        CHECK(r == NULL);
    } else {
        CHECK(r == NULL);
        /* 413: the whole body, a stdin over stdin_limit_bytes, an input
         * over upload_limit_bytes */
        CHECK(err.status == 400 ||
              (err.status == 413 &&
               (size > run_max_body(&cfg) || strstr(err.msg, "stdin_limit_bytes") ||
                strstr(err.msg, "upload_limit_bytes"))));
        CHECK(err.msg[0] != '\0');
    }
    free(body);
    return 0;
}
