#define _GNU_SOURCE
#include "metrics.h"

#include <inttypes.h>
#include <stddef.h>
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

/* A family of one sample without labels whose value is a uint64_t of
 * struct metrics_gauges: as is, or (ms) milliseconds shown as seconds.
 * The tables below keep the order of the families in the output. */
struct scalar {
    const char *name, *type, *help;
    size_t off;
    int ms;
};
#define G(field) offsetof(struct metrics_gauges, field), 0
#define G_MS(field) offsetof(struct metrics_gauges, field), 1

static const struct scalar node_scalars[] = {
    {"boxer_ready", "gauge", "1 while GET /readyz answers 200.", G(ready)},
    {"boxer_draining", "gauge", "1 once SIGTERM started a drain.", G(draining)},
};

static const struct scalar runs_and_pools[] = {
    {"boxer_runs_in_flight", "gauge", "Sandboxes running now.", G(runs_in_flight)},
    {"boxer_runs_queued", "gauge", "Runs waiting for a slot.", G(runs_queued)},
    {"boxer_runs_pending_teardowns", "gauge",
     "Answered runs whose sandbox leftovers are still being removed.", G(runs_pending_teardowns)},
    {"boxer_pool_ready", "gauge", "Warm pool sandboxes ready for a run.", G(pool_ready)},
    {"boxer_pool_creating", "gauge", "Warm pool sandboxes being made.", G(pool_creating)},
    {"boxer_pool_hits_total", "counter", "Runs served by a warm sandbox.", G(pool_hits)},
    {"boxer_pool_misses_total", "counter",
     "Runs of a pooled image that went cold (none ready, or not matching).", G(pool_misses)},
    {"boxer_pool_created_total", "counter", "Warm sandboxes made ready.", G(pool_created)},
    {"boxer_pool_failed_total", "counter", "Warm sandboxes that could not be made.",
     G(pool_failed)},
    {"boxer_pool_create_seconds_total", "counter",
     "Time from the start of a warm sandbox to ready, summed.", G_MS(pool_create_ms_sum)},
    {"boxer_pool_create_seconds_last", "gauge", "Time the last warm sandbox took to become ready.",
     G_MS(pool_create_ms_last)},
    {"boxer_pool_entries", "gauge", "Warm pool entries, configured and automatic.",
     G(pool_entries)},
    {"boxer_pool_max_total", "gauge",
     "Ready and creating warm sandboxes allowed over all entries (warm_pool_max_total).",
     G(pool_max_total)},
    {"boxer_pool_auto_entries", "gauge",
     "Warm pool entries made by warm_pool_auto for images run cold repeatedly.",
     G(pool_auto_entries)},
    {"boxer_pool_auto_created_total", "counter", "Automatic warm pool entries made.",
     G(pool_auto_created)},
    {"boxer_pool_auto_retired_total", "counter",
     "Automatic warm pool entries retired after warm_pool_auto_idle_secs without a hit.",
     G(pool_auto_retired)},
    {"boxer_pool_auto_hits_total", "counter", "Runs served by an automatic entry.",
     G(pool_auto_hits)},
    {"boxer_pool_refreshed_total", "counter",
     "Warm sandboxes destroyed and remade because their image tag moved.", G(pool_refreshed)},
    {"boxer_box_pool_ready", "gauge", "Boxes made in advance, ready for a create.",
     G(box_pool_ready)},
    {"boxer_box_pool_creating", "gauge", "Boxes being made in advance.", G(box_pool_creating)},
    {"boxer_box_pool_hits_total", "counter", "Box creates that adopted a box made in advance.",
     G(box_pool_hits)},
    {"boxer_box_pool_misses_total", "counter",
     "Box creates of a pooled image that went cold (none ready, or not matching).",
     G(box_pool_misses)},
    {"boxer_box_pool_created_total", "counter", "Boxes made ready in advance.",
     G(box_pool_created)},
    {"boxer_box_pool_failed_total", "counter", "Boxes in advance that could not be made.",
     G(box_pool_failed)},
    {"boxer_box_pool_create_seconds_total", "counter",
     "Time spent making boxes in advance (image to started sandbox).",
     G_MS(box_pool_create_ms_sum)},
    {"boxer_box_pool_yielded_total", "counter",
     "Boxes made in advance deleted because their budget hold kept a run or box out.",
     G(box_pool_yielded)},
    {"boxer_box_pool_create_seconds_last", "gauge", "Time the last box made in advance took.",
     G_MS(box_pool_create_ms_last)},
    {"boxer_pool_yielded_total", "counter",
     "Warm sandboxes deleted because their budget hold kept a queued run out.", G(pool_yielded)},
};

static const struct scalar images_store[] = {
    {"boxer_image_pull_seconds_total", "counter", "Time spent pulling images.",
     G_MS(pull_ms_total)},
    {"boxer_images_cached", "gauge", "Images in the cache.", G(images_cached)},
    {"boxer_store_bytes", "gauge", "Bytes in the file store.", G(store_bytes)},
    {"boxer_store_files", "gauge", "Files in the file store.", G(store_files)},
};

static const struct scalar boxes_and_execs[] = {
    {"boxer_box_starts_total", "counter", "Box sandboxes started (create, start, restart).",
     G(box_starts)},
    {"boxer_box_stops_total", "counter",
     "Box sandboxes stopped (stop, idle stop, removal, a sandbox that ended).", G(box_stops)},
    {"boxer_box_execs_started_total", "counter", "Execs started in boxes.", G(execs_started)},
    {"boxer_box_execs_finished_total", "counter", "Execs in boxes that have ended.",
     G(execs_finished)},
    {"boxer_box_execs_running", "gauge", "Execs running in boxes now.", G(execs_running)},
};

static const struct scalar connections_process[] = {
    {"boxer_http_connections", "gauge", "Open client connections.", G(connections)},
    {"process_open_fds", "gauge", "Open file descriptors.", G(open_fds)},
    {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", G(rss_bytes)},
};

#undef G
#undef G_MS

/* Returns what the last append returned (as metrics_render does). */
static int render_scalars(struct sbuf *o, const struct metrics_gauges *g, const struct scalar *t,
                          size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, (const char *)g + t[i].off, sizeof(v));
        family(o, t[i].name, t[i].type, t[i].help);
        if (t[i].ms)
            r = sbuf_appendf(o, "%s %.3f\n", t[i].name, (double)v / 1000.0);
        else
            r = sbuf_appendf(o, "%s %" PRIu64 "\n", t[i].name, v);
    }
    return r;
}

int metrics_render(const struct metrics *m, const struct metrics_gauges *g, struct sbuf *o)
{
    if (g->node_id) {
        /* node_id is [a-z0-9-] (config_validate): no escaping needed */
        family(o, "boxer_node_info", "gauge", "The node's id (config node_id), always 1.");
        sbuf_appendf(o, "boxer_node_info{node_id=\"%s\"} 1\n", g->node_id);
        render_scalars(o, g, node_scalars, BX_ARRAY_LEN(node_scalars));
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
    render_scalars(o, g, runs_and_pools, BX_ARRAY_LEN(runs_and_pools));
    family(o, "boxer_image_pulls_total", "counter", "Image pulls by result.");
    sbuf_appendf(o,
                 "boxer_image_pulls_total{result=\"ok\"} %" PRIu64 "\n"
                 "boxer_image_pulls_total{result=\"failed\"} %" PRIu64 "\n",
                 g->pulls_ok, g->pulls_failed);
    render_scalars(o, g, images_store, BX_ARRAY_LEN(images_store));
    family(o, "boxer_boxes", "gauge", "Boxes by status (a stopping box is running).");
    sbuf_appendf(o,
                 "boxer_boxes{status=\"creating\"} %" PRIu64 "\n"
                 "boxer_boxes{status=\"running\"} %" PRIu64 "\n"
                 "boxer_boxes{status=\"stopped\"} %" PRIu64 "\n"
                 "boxer_boxes{status=\"error\"} %" PRIu64 "\n",
                 g->boxes_creating, g->boxes_running, g->boxes_stopped, g->boxes_error);
    render_scalars(o, g, boxes_and_execs, BX_ARRAY_LEN(boxes_and_execs));
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
    return render_scalars(o, g, connections_process, BX_ARRAY_LEN(connections_process));
}
