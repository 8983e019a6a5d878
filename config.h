/* Configuration: defaults, the JSON file (first found of --config PATH,
 * $BOXER_CONFIG, ~/.boxer/config.json), and validation.  An unknown field, a
 * wrong type or an impossible value is refused with a message naming the
 * field (e.g. "config: defaults.memory_mb: must be a positive integer"). */
#ifndef BOXER_CONFIG_H
#define BOXER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct run_limits {
    double cpu_cores;
    uint64_t memory_mb;
    uint64_t wall_clock_secs;
    uint64_t pids_limit;
    uint64_t nofile;
};

struct str_list {
    char **items;
    size_t n;
};

struct mirror {
    char *registry; /* "docker.io" */
    char *url;      /* "http://127.0.0.1:5000" */
};

struct config {
    char *source; /* file the config came from, or NULL for built-in defaults */
    char *home;
    char *runsc_path;
    char *platform;
    char *listen_addr;
    int ignore_cgroups;
    int runsc_debug;
    uint64_t output_limit_bytes;
    uint64_t upload_limit_bytes;
    struct run_limits defaults;
    struct run_limits max_limits;
    uint64_t pull_timeout_secs;
    uint64_t tag_refresh_secs;
    uint64_t image_cache_max_bytes; /* 0 = unlimited */
    struct mirror *mirrors;
    size_t nmirrors;
    struct str_list insecure_registries;
    struct str_list allowed_registries; /* empty: any registry */
    char *registry_auth_file;
    uint64_t output_files_limit_bytes;
    uint64_t output_files_max;
    uint64_t tmp_size_mb;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t keepalive_timeout_ms;
    uint64_t max_concurrent_runs;
    uint64_t max_queued_runs;
    uint64_t min_free_disk_percent; /* uploads, pulls, captures stop above this fill */
    uint64_t store_max_bytes;       /* 0 = no cap */
    struct str_list auth_tokens;
    int allow_host_network;
    char *sandbox_subnet;
    char *bridge_name;
    struct str_list dns_servers;
    struct str_list blocked_egress;
};

void config_defaults(struct config *cfg);
/* Parses JSON text over the current values (so call config_defaults first). */
int config_parse(struct config *cfg, const char *text, size_t len, struct bx_err *err);
/* Checks cross-field rules (defaults within max_limits, listen address...). */
int config_validate(const struct config *cfg, struct bx_err *err);
/* Finds and loads the config per the precedence rules, then validates. */
int config_load(struct config *cfg, const char *explicit_path, struct bx_err *err);
void config_free(struct config *cfg);

#endif
