/* libFuzzer harness for config.c: arbitrary bytes as a config file.
 *
 * config_defaults + config_parse + config_validate + config_free, the way
 * config_load uses them.  config_parse writes over the current values, so a
 * parse that fails half-way leaves some fields replaced: config_free must
 * still release everything (run with leak detection, libFuzzer's default).
 * Whatever is accepted must hold the bounds the rest of Boxer relies on;
 * every refusal must be a 400 (413 only above the size cap) whose message
 * starts with "config". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_err(const struct bx_err *err)
{
    CHECK(err->status == 400 || err->status == 413);
    CHECK(strncmp(err->msg, "config", 6) == 0);
    CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
}

static void check_list(const struct str_list *l)
{
    CHECK(l->n <= 1024);
    CHECK(l->n == 0 || l->items != NULL);
    for (size_t i = 0; i < l->n; i++)
        CHECK(l->items[i] != NULL && l->items[i][0] != '\0');
    /* Lists are NULL-terminated for callers that walk them as argv. */
    CHECK(l->items == NULL || l->items[l->n] == NULL);
}

static void check_limits(const struct run_limits *l)
{
    CHECK(isfinite(l->cpu_cores) && l->cpu_cores > 0 && l->cpu_cores <= 1024);
    CHECK(l->memory_mb >= 1 && l->memory_mb <= (1u << 30));
    CHECK(l->wall_clock_secs >= 1 && l->wall_clock_secs <= 30u * 86400);
    CHECK(l->pids_limit >= 1 && l->pids_limit <= (1u << 22));
    CHECK(l->nofile >= 1 && l->nofile <= (1u << 20));
}

/* What an accepted parse guarantees, validated or not. */
static void check_parsed(const struct config *c)
{
    CHECK(c->home && c->runsc_path && c->platform && c->listen_addr);
    CHECK(c->sandbox_subnet && c->bridge_name);
    CHECK(c->home[0] != '~' || (c->home[1] != '/' && c->home[1] != '\0'));
    CHECK(c->ignore_cgroups == 0 || c->ignore_cgroups == 1);
    CHECK(c->runsc_debug == 0 || c->runsc_debug == 1);
    CHECK(c->allow_host_network == 0 || c->allow_host_network == 1);
    CHECK(c->output_limit_bytes <= (1ull << 32));
    CHECK(c->upload_limit_bytes <= (1ull << 40));
    CHECK(c->pull_timeout_secs <= 86400);
    CHECK(c->tag_refresh_secs <= 365ull * 86400);
    CHECK(c->image_cache_max_bytes <= (1ull << 50));
    CHECK(c->output_files_max <= 10000000);
    CHECK(c->max_concurrent_runs <= 4096);
    CHECK(c->max_queued_runs <= 1000000); /* 0: no waiting queue */
    CHECK(c->header_timeout_ms <= 3600000 && c->body_timeout_ms <= 3600000 &&
          c->keepalive_timeout_ms <= 3600000);
    check_limits(&c->defaults);
    check_limits(&c->max_limits);
    CHECK(c->nmirrors <= 256);
    CHECK(c->nmirrors == 0 || c->mirrors != NULL);
    for (size_t i = 0; i < c->nmirrors; i++) {
        const struct mirror *m = &c->mirrors[i];
        CHECK(m->registry && m->url && m->registry[0] != '\0');
        CHECK(strncmp(m->url, "http://", 7) == 0 || strncmp(m->url, "https://", 8) == 0);
        CHECK(strpbrk(m->url, " \t\r\n") == NULL);
    }
    check_list(&c->insecure_registries);
    check_list(&c->allowed_registries);
    check_list(&c->auth_tokens);
    check_list(&c->dns_servers);
    check_list(&c->blocked_egress);
}

static void check_validated(const struct config *c)
{
    const char *colon = strrchr(c->listen_addr, ':');
    CHECK(c->home[0] == '/');
    CHECK(strcmp(c->platform, "systrap") == 0 || strcmp(c->platform, "ptrace") == 0 ||
          strcmp(c->platform, "kvm") == 0);
    CHECK(colon != NULL && strpbrk(c->listen_addr, " \t\r\n/") == NULL);
    CHECK(c->runsc_path[0] == '\0' || c->runsc_path[0] == '/');
    CHECK(c->output_limit_bytes > 0 && c->upload_limit_bytes > 0);
    CHECK(c->max_concurrent_runs > 0 && c->tmp_size_mb > 0);
    CHECK(c->output_files_limit_bytes >= (1u << 20));
    CHECK(c->defaults.cpu_cores <= c->max_limits.cpu_cores);
    CHECK(c->defaults.memory_mb <= c->max_limits.memory_mb);
    CHECK(c->defaults.wall_clock_secs <= c->max_limits.wall_clock_secs);
    CHECK(c->defaults.pids_limit <= c->max_limits.pids_limit);
    CHECK(c->defaults.nofile <= c->max_limits.nofile);
    CHECK(c->total_memory_mb >= c->defaults.memory_mb);
    CHECK(c->total_pids >= config_run_host_pids(c->defaults.pids_limit));
    CHECK(c->registry_auth_file == NULL || c->registry_auth_file[0] == '/');
    /* Network names and addresses end up in netlink messages and nft rules. */
    CHECK(strchr(c->sandbox_subnet, '/') != NULL);
    CHECK(strlen(c->bridge_name) >= 1 && strlen(c->bridge_name) <= 15);
    CHECK(strspn(c->bridge_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789_-.") == strlen(c->bridge_name));
    CHECK(c->dns_servers.n <= 3 && c->blocked_egress.n <= 256);
}

static int parse_and_validate(const char *text, size_t size, struct config *cfg)
{
    struct bx_err err;
    int rc;

    config_defaults(cfg);
    bx_err_clear(&err);
    rc = config_parse(cfg, text, size, &err);
    if (rc == 0) {
        check_parsed(cfg);
    } else {
        CHECK(rc == -1);
        check_err(&err);
    }
    /* A half-applied parse still leaves a config whose every field is
     * usable, so validating it must not crash either. */
    bx_err_clear(&err);
    if (config_validate(cfg, &err) == 0) {
        check_validated(cfg);
    } else {
        CHECK(err.status == 400);
        check_err(&err);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config a, b;
    int rc;
    /* An exact-size heap copy: ASan flags any read past the input. */
    char *text = malloc(size ? size : 1);

    CHECK(text != NULL);
    if (size)
        memcpy(text, data, size);
    rc = parse_and_validate(text, size, &a);
    if (rc == 0) {
        /* Parsing the same file over an already parsed config (every string
         * and list replaced, the old ones freed) gives the same answer. */
        struct bx_err err;
        bx_err_clear(&err);
        CHECK(config_parse(&a, text, size, &err) == 0);
        check_parsed(&a);
        CHECK(parse_and_validate(text, size, &b) == 0);
        CHECK(strcmp(a.home, b.home) == 0 && strcmp(a.listen_addr, b.listen_addr) == 0);
        CHECK(a.nmirrors == b.nmirrors && a.auth_tokens.n == b.auth_tokens.n &&
              a.allowed_registries.n == b.allowed_registries.n);
        CHECK(memcmp(&a.defaults, &b.defaults, sizeof(a.defaults)) == 0);
        config_free(&b);
    }
    config_free(&a);
    CHECK(a.home == NULL && a.mirrors == NULL && a.auth_tokens.items == NULL);
    free(text);
    return 0;
}
