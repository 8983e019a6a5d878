/* Configuration: defaults, the JSON file (first found of --config PATH,
 * $BOXER_CONFIG, ~/.boxer/config.json), and validation.  An unknown field, a
 * wrong type or an impossible value is refused with a message naming the
 * field (e.g. "config: defaults.memory_mb: must be a positive integer"). */
#ifndef BOXER_CONFIG_H
#define BOXER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

struct run_limits {
    double cpu_cores;
    uint64_t memory_mb;
    uint64_t wall_clock_secs;
    uint64_t pids_limit;
    uint64_t nofile;
};

/* Boxes (issue 13): what a create without the field gets. */
struct box_defaults {
    double cpu;
    uint64_t memory_mb;
    uint64_t disk_size_gb;
    bool network;
    char *workdir;
    /* Processes of one box, as /run's pids_limit: its cgroup gets
     * config_run_host_pids() of it (at most total_pids), and a running box
     * holds that much of total_pids. */
    uint64_t pids_limit;
};

/* issue 16: one warm_pool entry: count sandboxes of image kept ready,
 * made with these limits (a field left 0 takes "defaults") and network
 * ("none", the default, or "sandbox"). */
struct warm_pool_entry {
    char *image;
    uint64_t count;
    struct run_limits limits;
    char *network;
    /* "run" (NULL: the default, pool.c) or "box": boxes made in advance
     * for POST /v1/boxes (box_pool.c); limits.cpu_cores / memory_mb and
     * disk_size_gb left 0 take box_defaults, network absent too. */
    char *kind;
    uint64_t disk_size_gb;
};
/* A warm_pool entry of kind "box". */
int config_pool_is_box(const struct warm_pool_entry *w);

struct mirror {
    char *registry; /* "docker.io" */
    char *url;      /* "http://127.0.0.1:5000" */
};

struct config {
    char *source; /* file the config came from, or NULL for built-in defaults */
    char *home;
    char *runsc_path;
    char *platform;
    char *listen_addr; /* "" = no TCP listener (listen_unix must be set) */
    /* Unix socket path; "" = none.  NULL until parsed: then <home>/boxer.sock
     * when home is the default ~/.boxer, "" otherwise (a test or second
     * instance with its own home must not take the user's socket). */
    char *listen_unix;
    bool ignore_cgroups;
    bool runsc_debug;
    uint64_t output_limit_bytes;
    uint64_t upload_limit_bytes;
    struct run_limits defaults;
    struct run_limits max_limits;
    uint64_t pull_timeout_secs;
    uint64_t tag_refresh_secs;
    uint64_t image_cache_max_bytes; /* 0 = unlimited */
    uint64_t max_concurrent_pulls;  /* pulls beyond wait in FIFO order */
    uint64_t image_max_bytes;       /* per image: compressed download, and unpacked tree */
    uint64_t pull_memory_mb;        /* memory limit of each skopeo/umoci cgroup */
    uint64_t pull_pids_limit;       /* pids limit of each skopeo/umoci cgroup */
    struct mirror *mirrors;
    size_t nmirrors;
    struct str_list insecure_registries;
    struct str_list allowed_registries; /* empty: any registry */
    struct str_list volume_roots;       /* host dirs box volumes may come from; empty: none */
    char *registry_auth_file;
    uint64_t output_files_limit_bytes;
    uint64_t output_files_max;
    uint64_t tmp_size_mb;
    /* /v1/run's writable root: the tmpfs under its overlay holds at most
     * this (and at most half the run's memory_mb, whose cgroup it counts
     * against) */
    uint64_t v1_run_root_mb;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t keepalive_timeout_ms;
    uint64_t max_concurrent_runs;
    uint64_t max_queued_runs;
    /* issue 16: answered runs whose leftovers are still being removed;
     * beyond that admission waits */
    uint64_t max_pending_teardowns;
    struct warm_pool_entry *warm_pool; /* issue 16 (pool.c); empty: no pool */
    size_t nwarm_pool;
    /* issue 16: an image (with the same limits and network) that gets this
     * many pool-eligible cold /runs, each within warm_pool_auto_idle_secs
     * of the last, gets a pool entry of its own (count 1); 0: off */
    uint64_t warm_pool_auto;
    /* such an automatic entry with no hit for this long is retired */
    uint64_t warm_pool_auto_idle_secs;
    /* ready + creating pool sandboxes over all entries; 0: derived
     * (config_warm_pool_max_total) */
    uint64_t warm_pool_max_total;
    /* The budget all admitted runs share (memory.max / pids.max of Boxer's
     * base cgroup, and the sum of admitted runs' limits); see
     * config_run_host_pids for what a run's pids_limit costs. */
    uint64_t total_memory_mb;
    uint64_t total_pids;
    uint64_t min_free_disk_percent; /* uploads, pulls, captures stop above this fill */
    uint64_t store_max_bytes;       /* 0 = no cap */
    struct str_list auth_tokens;
    bool allow_unauthenticated;        /* a non-loopback listener without tokens */
    struct str_list allowed_origins;   /* Origin values accepted besides our own */
    struct str_list allowed_hosts;     /* Host values accepted on loopback besides loopback */
    uint64_t write_timeout_ms;         /* answer idle time; then a minimum send rate */
    uint64_t answer_buffer_max_bytes;  /* memory for streamed /run answers, all together */
    uint64_t max_connections_per_ip;
    bool allow_host_network;
    char *sandbox_subnet;
    char *bridge_name;
    struct str_list dns_servers;
    struct str_list blocked_egress;
    bool allow_private_egress; /* sandboxes may reach private networks and the host's LAN */
    uint64_t max_egress_rules; /* entries in one run's egress list */
    /* Boxes */
    struct box_defaults box_defaults;
    uint64_t max_disk_size_gb;
    uint64_t box_stop_grace_secs;
    uint64_t box_idle_timeout_secs; /* 0: never */
    uint64_t max_boxes;             /* running boxes */
    uint64_t max_execs_per_box;     /* exec records kept per box */
    uint64_t exec_output_bytes;     /* one exec's output event log (both streams) */
    uint64_t stream_keepalive_secs; /* silence before a keepalive on event streams */
    bool restart_boxes;             /* boxes running at a restart start again */
    uint64_t stdin_limit_bytes;       /* "stdin"/"stdin_b64" of /run and of an exec */
    uint64_t exec_stdin_buffer_bytes; /* input of a stdin_open exec not yet written */
    /* issue 17: scale-out */
    char *node_id; /* in box, exec and run ids: [a-z0-9-], 1..NODE_ID_MAX */
    uint64_t drain_timeout_secs;     /* SIGTERM: runs in flight finish within */
    uint64_t max_request_body_bytes; /* a /run body (inputs, stdin included) */
    uint64_t max_inline_output_bytes; /* return_outputs: /output files in the answer */
};

/* A node id fits a run's exec id ("boxer-<node>-<uuid>": 6 + 20 + 1 + 36) in a 63-byte
 * sandbox host name. */
#define NODE_ID_MAX 20
/* 1 when s is a usable node_id: 1..NODE_ID_MAX of [a-z0-9-], starting with
 * a letter or digit. */
int config_node_id_ok(const char *s);

/* Host tasks a run with this pids_limit may use (its pids cgroup limit):
 * gVisor's sentry, gofer and systrap stubs are host tasks too (about 25 for
 * one process, 3-4 per further process). */
uint64_t config_run_host_pids(uint64_t pids_limit);

/* Defaults derived from the host: max_concurrent_runs 2 x CPUs,
 * max_limits.memory_mb half of RAM, total_memory_mb three quarters of RAM,
 * total_pids half of kernel.pid_max (at most 4194304), and
 * max_limits.pids_limit at most what total_pids holds for one run. */
void config_defaults(struct config *cfg);
/* Parses JSON text over the current values (so call config_defaults first). */
int config_parse(struct config *cfg, const char *text, size_t len, struct bx_err *err);
/* Checks cross-field rules (defaults within max_limits, listen address...). */
int config_validate(const struct config *cfg, struct bx_err *err);
/* Finds and loads the config per the precedence rules, then validates. */
int config_load(struct config *cfg, const char *explicit_path, struct bx_err *err);
void config_free(struct config *cfg);

/* warm_pool_max_total, or when 0: what a quarter of total_memory_mb holds
 * of default-sized runs (at least 1), and never below the sum of the
 * configured warm_pool counts. */
uint64_t config_warm_pool_max_total(const struct config *cfg);

#endif
