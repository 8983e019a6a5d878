/* Counters for GET /metrics, rendered in the Prometheus text exposition
 * format (version 0.0.4).  Only boxer.c feeds and renders them. */
#ifndef BOXER_METRICS_H
#define BOXER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct metrics;

/* A duration histogram on the run duration buckets (metrics.c), for a
 * counter kept outside struct metrics (the box execs of box_mgr). */
#define METRICS_NBUCKETS 10
struct metrics_hist {
    uint64_t le[METRICS_NBUCKETS]; /* cumulative, as rendered */
    uint64_t count, ms_sum;
};
void metrics_hist_observe(struct metrics_hist *h, uint64_t ms);

/* Box exec outcomes, the label values of boxer_box_execs_total. */
enum { METRICS_EXEC_SUCCEEDED, METRICS_EXEC_FAILED, METRICS_EXEC_TIMED_OUT,
       METRICS_EXEC_CANCELED, METRICS_EXEC_OUTCOMES };

struct metrics_gauges {
    uint64_t runs_in_flight, runs_queued;
    uint64_t runs_ok, runs_nonzero, runs_timeout, runs_oom, runs_output_limit, runs_error;
    uint64_t pulls_ok, pulls_failed, pull_ms_total, images_cached;
    uint64_t store_bytes, store_files;
    uint64_t open_fds, rss_bytes;
    uint64_t connections;
    /* boxes (box_stats) */
    uint64_t boxes_creating, boxes_running, boxes_stopped, boxes_error;
    uint64_t box_starts, box_stops;
    uint64_t execs_started, execs_running, execs_finished;
    uint64_t execs_by_outcome[METRICS_EXEC_OUTCOMES];
    struct metrics_hist exec_hist;
    uint64_t runs_pending_teardowns; /* issue 16: answered, leftovers being removed */
    /* issue 16: warm_pool */
    uint64_t pool_ready, pool_creating, pool_hits, pool_misses, pool_created, pool_failed;
    uint64_t pool_create_ms_last, pool_create_ms_sum;
    uint64_t pool_entries, pool_auto_entries, pool_auto_created, pool_auto_retired,
        pool_auto_hits, pool_refreshed, pool_max_total, pool_yielded;
    /* warm_pool entries of kind "box" (box_pool.c) */
    uint64_t box_pool_ready, box_pool_creating, box_pool_hits, box_pool_misses,
        box_pool_created, box_pool_failed, box_pool_create_ms_last, box_pool_create_ms_sum,
        box_pool_yielded;
    /* issue 17: the node (NULL: not rendered), and whether it takes work */
    const char *node_id;
    uint64_t ready, draining;
};

#define METRICS_MAX_ROUTES 32

/* routes: the route labels (static strings, at most METRICS_MAX_ROUTES),
 * in the order they are rendered; "other" comes last. */
int metrics_new(struct metrics **out, const char *const *routes, size_t n);
void metrics_free(struct metrics **m);
/* route: one of the server's routes, or "other". */
void metrics_observe_request(struct metrics *m, const char *route, int status);
void metrics_observe_run(struct metrics *m, uint64_t wall_ms);
int metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct sbuf *out);

#endif
