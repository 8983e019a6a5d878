/* libFuzzer harness for run_request_parse_boxrun: arbitrary bytes as a
 * POST /v1/run body (BoxRun's run), against a config from config_defaults
 * with fixed limits.  Bit 0 of the input's length turns box_defaults.network
 * on, so seeds stay plain JSON.
 *
 * Whatever is accepted must be the /run request the fields map to: cmd
 * non-empty, env entries KEY=VALUE, every limit within its bound (cpu and
 * memory from the body or box_defaults, clamped), the wall clock in ms
 * exactly timeout_ms (0: none), network none or sandbox (never host), no
 * files, no egress, not persisted.  Every refusal is a 400 (413 only for a
 * body above max_request_body_bytes; its translation is sized from the body,
 * issue 17), leaves *out NULL, and a
 * RESOURCE_EXCEEDED one (ERANGE) names a BoxRun field.  Leak detection
 * (libFuzzer's default) covers the error paths' cleanup. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "config.h"
#include "json.h"
#include "run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_v1run: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct config cfg;

/* timeout_ms of the body as the parser must have read it (0: absent). */
static uint64_t body_timeout(const char *body, size_t size)
{
    static const struct json_limits jl = {RUN_MAX_BODY, 16, 3 * RUN_MAX_ARGS + 1024};
    struct json_doc *doc = NULL;
    struct bx_err err;
    const struct json_value *v;
    uint64_t t = 0;
    CHECK(json_parse(body, size, &jl, &doc, &err) == 0);
    v = json_get(json_doc_root(doc), "timeout_ms");
    if (v && v->type == JSON_NUMBER) {
        CHECK(v->u.num.is_int && v->u.num.i >= 0);
        t = (uint64_t)v->u.num.i;
    }
    json_doc_free(&doc);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run_request *r = NULL;
    struct bx_err err;
    char *body = malloc(size ? size : 1);

    if (!cfg.home) {
        config_defaults(&cfg);
        cfg.max_limits = (struct run_limits){4.0, 8192, 3600, 4096, 65536};
        cfg.total_memory_mb = 6144;
        cfg.total_pids = 12000;
        cfg.max_disk_size_gb = 64;
        cfg.box_defaults.cpu = 2.0;
        cfg.box_defaults.memory_mb = 1024;
    }
    cfg.box_defaults.network = (size & 1) != 0;
    CHECK(body != NULL);
    if (size)
        memcpy(body, data, size);
    bx_err_clear(&err);
    if (run_request_parse_boxrun(body, size, &cfg, &r, &err) == 0) {
        const struct run_limits *l = &r->limits;
        size_t n = 0;
        CHECK(r != NULL && r->image && r->image[0]);
        CHECK(r->cmd && r->cmd[0] && r->cmd[0][0]);
        while (r->cmd[n])
            n++;
        CHECK(n >= 1 && n <= RUN_MAX_ARGS);
        for (size_t i = 0; r->env && r->env[i]; i++) {
            const char *eq = strchr(r->env[i], '=');
            CHECK(eq && eq != r->env[i]);
        }
        CHECK(isfinite(l->cpu_cores) && l->cpu_cores >= 0.01 &&
              l->cpu_cores <= cfg.max_limits.cpu_cores);
        CHECK(l->memory_mb >= 16 && l->memory_mb <= cfg.max_limits.memory_mb &&
              l->memory_mb <= cfg.total_memory_mb);
        CHECK(l->wall_clock_secs >= 1 && l->wall_clock_secs <= cfg.max_limits.wall_clock_secs);
        CHECK(r->wall_clock_ms == body_timeout(body, size));
        CHECK(r->wall_clock_ms <= l->wall_clock_secs * 1000);
        CHECK(r->network == RUN_NET_NONE || r->network == RUN_NET_SANDBOX);
        CHECK(r->files == NULL && r->nfiles == 0 && !r->has_egress && !r->persist);
        CHECK(r->cwd == NULL);
        run_request_free(&r);
        CHECK(r == NULL);
    } else {
        CHECK(r == NULL);
        CHECK(err.status == 400 || err.status == 413);
        CHECK(err.status == 400 || size > RUN_MAX_BODY / 8);
        CHECK(err.msg[0] != '\0');
        if (err.sys_errno == ERANGE && err.status == 400)
            CHECK(strstr(err.msg, "cpu") || strstr(err.msg, "memory_mb") ||
                  strstr(err.msg, "timeout_ms") || strstr(err.msg, "disk_size_gb"));
    }
    free(body);
    return 0;
}
