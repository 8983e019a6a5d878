#define _GNU_SOURCE
#include "metrics.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define NSTATUS 600

/* Run duration buckets, seconds. */
static const double buckets[] = {0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))
_Static_assert(NBUCKETS == METRICS_NBUCKETS, "METRICS_NBUCKETS follows buckets[]");

/* Routes are a fixed set (the route table's labels, then "other"), so
 * request counters are a small fixed table: no label value ever comes from
 * a client. */
struct metrics {
    const char *routes[METRICS_MAX_ROUTES + 1];
    size_t nroutes;
    uint64_t requests[METRICS_MAX_ROUTES + 1][NSTATUS];
    uint64_t run_buckets[NBUCKETS];
    uint64_t run_count;
    uint64_t run_ms_sum;
};

int metrics_new(struct metrics **out, const char *const *routes, size_t n)
{
    if (n > METRICS_MAX_ROUTES) {
        *out = NULL;
        return -1;
    }
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return -1;
    for (size_t i = 0; i < n; i++)
        (*out)->routes[i] = routes[i];
    (*out)->routes[n] = "other";
    (*out)->nroutes = n + 1;
    return 0;
}

void metrics_free(struct metrics **m)
{
    free(*m);
    *m = NULL;
}

void metrics_observe_request(struct metrics *m, const char *route, int status)
{
    size_t r = m->nroutes - 1;
    for (size_t i = 0; i < m->nroutes - 1; i++)
        if (strcmp(route, m->routes[i]) == 0)
            r = i;
    if (status < 100 || status >= NSTATUS)
        status = 0;
    m->requests[r][status]++;
}

void metrics_observe_run(struct metrics *m, uint64_t wall_ms)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        if ((double)wall_ms / 1000.0 <= buckets[i])
            m->run_buckets[i]++;
    m->run_count++;
    m->run_ms_sum += wall_ms;
}

void metrics_hist_observe(struct metrics_hist *h, uint64_t ms)
{
    for (size_t i = 0; i < NBUCKETS; i++)
        if ((double)ms / 1000.0 <= buckets[i])
            h->le[i]++;
    h->count++;
    h->ms_sum += ms;
}

static void family(struct sbuf *o, const char *name, const char *type, const char *help)
{
    sbuf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct sbuf *o)
{
    if (g->node_id) {
        /* node_id is [a-z0-9-] (config_validate): no escaping needed */
        family(o, "boxer_node_info", "gauge", "The node's id (config node_id), always 1.");
        sbuf_appendf(o, "boxer_node_info{node_id=\"%s\"} 1\n", g->node_id);
        family(o, "boxer_ready", "gauge", "1 while GET /readyz answers 200.");
        sbuf_appendf(o, "boxer_ready %" PRIu64 "\n", g->ready);
        family(o, "boxer_draining", "gauge", "1 once SIGTERM started a drain.");
        sbuf_appendf(o, "boxer_draining %" PRIu64 "\n", g->draining);
    }
    family(o, "boxer_http_requests_total", "counter", "HTTP requests by route and status.");
    for (size_t r = 0; r < m->nroutes; r++)
        for (int s = 0; s < NSTATUS; s++)
            if (m->requests[r][s])
                sbuf_appendf(o, "boxer_http_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64
                                "\n",
                             m->routes[r], s, m->requests[r][s]);
    family(o, "boxer_runs_total", "counter", "Finished runs by outcome.");
    sbuf_appendf(o,
                 "boxer_runs_total{outcome=\"ok\"} %" PRIu64 "\n"
                 "boxer_runs_total{outcome=\"nonzero\"} %" PRIu64 "\n"
                 "boxer_runs_total{outcome=\"timeout\"} %" PRIu64 "\n"
                 "boxer_runs_total{outcome=\"oom\"} %" PRIu64 "\n"
                 "boxer_runs_total{outcome=\"output_limit\"} %" PRIu64 "\n"
                 "boxer_runs_total{outcome=\"error\"} %" PRIu64 "\n",
                 g->runs_ok, g->runs_nonzero, g->runs_timeout, g->runs_oom, g->runs_output_limit,
                 g->runs_error);
    family(o, "boxer_run_duration_seconds", "histogram", "Wall time of finished runs.");
    for (size_t i = 0; i < NBUCKETS; i++)
        sbuf_appendf(o, "boxer_run_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", buckets[i],
                     m->run_buckets[i]);
    sbuf_appendf(o,
                 "boxer_run_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                 "boxer_run_duration_seconds_sum %.3f\n"
                 "boxer_run_duration_seconds_count %" PRIu64 "\n",
                 m->run_count, (double)m->run_ms_sum / 1000.0, m->run_count);
    family(o, "boxer_runs_in_flight", "gauge", "Sandboxes running now.");
    sbuf_appendf(o, "boxer_runs_in_flight %" PRIu64 "\n", g->runs_in_flight);
    family(o, "boxer_runs_queued", "gauge", "Runs waiting for a slot.");
    sbuf_appendf(o, "boxer_runs_queued %" PRIu64 "\n", g->runs_queued);
    family(o, "boxer_runs_pending_teardowns", "gauge",
           "Answered runs whose sandbox leftovers are still being removed.");
    sbuf_appendf(o, "boxer_runs_pending_teardowns %" PRIu64 "\n", g->runs_pending_teardowns);
    family(o, "boxer_pool_ready", "gauge", "Warm pool sandboxes ready for a run.");
    sbuf_appendf(o, "boxer_pool_ready %" PRIu64 "\n", g->pool_ready);
    family(o, "boxer_pool_creating", "gauge", "Warm pool sandboxes being made.");
    sbuf_appendf(o, "boxer_pool_creating %" PRIu64 "\n", g->pool_creating);
    family(o, "boxer_pool_hits_total", "counter", "Runs served by a warm sandbox.");
    sbuf_appendf(o, "boxer_pool_hits_total %" PRIu64 "\n", g->pool_hits);
    family(o, "boxer_pool_misses_total", "counter",
           "Runs of a pooled image that went cold (none ready, or not matching).");
    sbuf_appendf(o, "boxer_pool_misses_total %" PRIu64 "\n", g->pool_misses);
    family(o, "boxer_pool_created_total", "counter", "Warm sandboxes made ready.");
    sbuf_appendf(o, "boxer_pool_created_total %" PRIu64 "\n", g->pool_created);
    family(o, "boxer_pool_failed_total", "counter", "Warm sandboxes that could not be made.");
    sbuf_appendf(o, "boxer_pool_failed_total %" PRIu64 "\n", g->pool_failed);
    family(o, "boxer_pool_create_seconds_total", "counter",
           "Time from the start of a warm sandbox to ready, summed.");
    sbuf_appendf(o, "boxer_pool_create_seconds_total %.3f\n", (double)g->pool_create_ms_sum / 1000.0);
    family(o, "boxer_pool_create_seconds_last", "gauge",
           "Time the last warm sandbox took to become ready.");
    sbuf_appendf(o, "boxer_pool_create_seconds_last %.3f\n", (double)g->pool_create_ms_last / 1000.0);
    family(o, "boxer_pool_entries", "gauge", "Warm pool entries, configured and automatic.");
    sbuf_appendf(o, "boxer_pool_entries %" PRIu64 "\n", g->pool_entries);
    family(o, "boxer_pool_max_total", "gauge",
           "Ready and creating warm sandboxes allowed over all entries (warm_pool_max_total).");
    sbuf_appendf(o, "boxer_pool_max_total %" PRIu64 "\n", g->pool_max_total);
    family(o, "boxer_pool_auto_entries", "gauge",
           "Warm pool entries made by warm_pool_auto for images run cold repeatedly.");
    sbuf_appendf(o, "boxer_pool_auto_entries %" PRIu64 "\n", g->pool_auto_entries);
    family(o, "boxer_pool_auto_created_total", "counter", "Automatic warm pool entries made.");
    sbuf_appendf(o, "boxer_pool_auto_created_total %" PRIu64 "\n", g->pool_auto_created);
    family(o, "boxer_pool_auto_retired_total", "counter",
           "Automatic warm pool entries retired after warm_pool_auto_idle_secs without a hit.");
    sbuf_appendf(o, "boxer_pool_auto_retired_total %" PRIu64 "\n", g->pool_auto_retired);
    family(o, "boxer_pool_auto_hits_total", "counter", "Runs served by an automatic entry.");
    sbuf_appendf(o, "boxer_pool_auto_hits_total %" PRIu64 "\n", g->pool_auto_hits);
    family(o, "boxer_pool_refreshed_total", "counter",
           "Warm sandboxes destroyed and remade because their image tag moved.");
    sbuf_appendf(o, "boxer_pool_refreshed_total %" PRIu64 "\n", g->pool_refreshed);
    family(o, "boxer_box_pool_ready", "gauge", "Boxes made in advance, ready for a create.");
    sbuf_appendf(o, "boxer_box_pool_ready %" PRIu64 "\n", g->box_pool_ready);
    family(o, "boxer_box_pool_creating", "gauge", "Boxes being made in advance.");
    sbuf_appendf(o, "boxer_box_pool_creating %" PRIu64 "\n", g->box_pool_creating);
    family(o, "boxer_box_pool_hits_total", "counter", "Box creates that adopted a box made in advance.");
    sbuf_appendf(o, "boxer_box_pool_hits_total %" PRIu64 "\n", g->box_pool_hits);
    family(o, "boxer_box_pool_misses_total", "counter",
           "Box creates of a pooled image that went cold (none ready, or not matching).");
    sbuf_appendf(o, "boxer_box_pool_misses_total %" PRIu64 "\n", g->box_pool_misses);
    family(o, "boxer_box_pool_created_total", "counter", "Boxes made ready in advance.");
    sbuf_appendf(o, "boxer_box_pool_created_total %" PRIu64 "\n", g->box_pool_created);
    family(o, "boxer_box_pool_failed_total", "counter", "Boxes in advance that could not be made.");
    sbuf_appendf(o, "boxer_box_pool_failed_total %" PRIu64 "\n", g->box_pool_failed);
    family(o, "boxer_box_pool_create_seconds_total", "counter",
           "Time spent making boxes in advance (image to started sandbox).");
    sbuf_appendf(o, "boxer_box_pool_create_seconds_total %.3f\n",
                 (double)g->box_pool_create_ms_sum / 1000.0);
    family(o, "boxer_box_pool_yielded_total", "counter",
           "Boxes made in advance deleted because their budget hold kept a run or box out.");
    sbuf_appendf(o, "boxer_box_pool_yielded_total %" PRIu64 "\n", g->box_pool_yielded);
    family(o, "boxer_box_pool_create_seconds_last", "gauge",
           "Time the last box made in advance took.");
    sbuf_appendf(o, "boxer_box_pool_create_seconds_last %.3f\n",
                 (double)g->box_pool_create_ms_last / 1000.0);
    family(o, "boxer_pool_yielded_total", "counter",
           "Warm sandboxes deleted because their budget hold kept a queued run out.");
    sbuf_appendf(o, "boxer_pool_yielded_total %" PRIu64 "\n", g->pool_yielded);
    family(o, "boxer_image_pulls_total", "counter", "Image pulls by result.");
    sbuf_appendf(o,
                 "boxer_image_pulls_total{result=\"ok\"} %" PRIu64 "\n"
                 "boxer_image_pulls_total{result=\"failed\"} %" PRIu64 "\n",
                 g->pulls_ok, g->pulls_failed);
    family(o, "boxer_image_pull_seconds_total", "counter", "Time spent pulling images.");
    sbuf_appendf(o, "boxer_image_pull_seconds_total %.3f\n", (double)g->pull_ms_total / 1000.0);
    family(o, "boxer_images_cached", "gauge", "Images in the cache.");
    sbuf_appendf(o, "boxer_images_cached %" PRIu64 "\n", g->images_cached);
    family(o, "boxer_store_bytes", "gauge", "Bytes in the file store.");
    sbuf_appendf(o, "boxer_store_bytes %" PRIu64 "\n", g->store_bytes);
    family(o, "boxer_store_files", "gauge", "Files in the file store.");
    sbuf_appendf(o, "boxer_store_files %" PRIu64 "\n", g->store_files);
    family(o, "boxer_boxes", "gauge", "Boxes by status (a stopping box is running).");
    sbuf_appendf(o,
                 "boxer_boxes{status=\"creating\"} %" PRIu64 "\n"
                 "boxer_boxes{status=\"running\"} %" PRIu64 "\n"
                 "boxer_boxes{status=\"stopped\"} %" PRIu64 "\n"
                 "boxer_boxes{status=\"error\"} %" PRIu64 "\n",
                 g->boxes_creating, g->boxes_running, g->boxes_stopped, g->boxes_error);
    family(o, "boxer_box_starts_total", "counter", "Box sandboxes started (create, start, restart).");
    sbuf_appendf(o, "boxer_box_starts_total %" PRIu64 "\n", g->box_starts);
    family(o, "boxer_box_stops_total", "counter",
           "Box sandboxes stopped (stop, idle stop, removal, a sandbox that ended).");
    sbuf_appendf(o, "boxer_box_stops_total %" PRIu64 "\n", g->box_stops);
    family(o, "boxer_box_execs_started_total", "counter", "Execs started in boxes.");
    sbuf_appendf(o, "boxer_box_execs_started_total %" PRIu64 "\n", g->execs_started);
    family(o, "boxer_box_execs_finished_total", "counter", "Execs in boxes that have ended.");
    sbuf_appendf(o, "boxer_box_execs_finished_total %" PRIu64 "\n", g->execs_finished);
    family(o, "boxer_box_execs_running", "gauge", "Execs running in boxes now.");
    sbuf_appendf(o, "boxer_box_execs_running %" PRIu64 "\n", g->execs_running);
    family(o, "boxer_box_execs_total", "counter", "Execs in boxes that have ended, by outcome.");
    static const char *const outcomes[METRICS_EXEC_OUTCOMES] = {"succeeded", "failed",
                                                                "timed_out", "canceled"};
    for (size_t i = 0; i < METRICS_EXEC_OUTCOMES; i++)
        sbuf_appendf(o, "boxer_box_execs_total{outcome=\"%s\"} %" PRIu64 "\n", outcomes[i],
                     g->execs_by_outcome[i]);
    family(o, "boxer_box_exec_duration_seconds", "histogram", "Wall time of ended box execs.");
    for (size_t i = 0; i < NBUCKETS; i++)
        sbuf_appendf(o, "boxer_box_exec_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                     buckets[i], g->exec_hist.le[i]);
    sbuf_appendf(o,
                 "boxer_box_exec_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                 "boxer_box_exec_duration_seconds_sum %.3f\n"
                 "boxer_box_exec_duration_seconds_count %" PRIu64 "\n",
                 g->exec_hist.count, (double)g->exec_hist.ms_sum / 1000.0, g->exec_hist.count);
    family(o, "boxer_http_connections", "gauge", "Open client connections.");
    sbuf_appendf(o, "boxer_http_connections %" PRIu64 "\n", g->connections);
    family(o, "process_open_fds", "gauge", "Open file descriptors.");
    sbuf_appendf(o, "process_open_fds %" PRIu64 "\n", g->open_fds);
    family(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    return sbuf_appendf(o, "process_resident_memory_bytes %" PRIu64 "\n", g->rss_bytes);
}
