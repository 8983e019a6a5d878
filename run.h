/* Runs: admission (a bounded FIFO queue) and the supervision of one runsc
 * sandbox per run on the event loop.  The request comes parsed and
 * validated from the API (api_run.c for POST /run).
 *
 * Admission: a run starts when a slot is free (max_concurrent_runs) and its
 * memory_mb and host tasks (config_run_host_pids of its pids_limit) fit
 * what the admitted runs leave of total_memory_mb and total_pids; else it
 * waits in the FIFO queue (nobody overtakes), and 503 when the queue is
 * full.  A run that could never fit is refused at parse time (400,
 * run_request_parse in api_run.c).
 *
 * The life of a run: queued -> image -> prepared (bundle, cgroup, /output
 * tmpfs) -> running (runsc; stdout/stderr read by the loop into bounded
 * buffers; a wall-clock timer) -> finished (usage read, outputs captured,
 * everything torn down) -> the done callback gets the result.
 *
 * Where output goes (struct run_sink) and how a sandbox is supervised are
 * kept apart, so streaming output to a client or keeping a sandbox alive
 * for further commands can be added as new sinks and new lifetimes.
 */
#ifndef BOXER_RUN_H
#define BOXER_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "imgref.h"
#include "loop.h"
#include "oci.h"
#include "store.h"
#include "util.h"

struct image_cache;
struct cg_ctx;
struct net;
struct run_mgr;
struct run_job;


enum run_network { RUN_NET_NONE = 0, RUN_NET_SANDBOX, RUN_NET_HOST };

struct net_egress;

struct run_request {
    char *image;
    struct imgref ref;
    char **cmd; /* NULL-terminated */
    char **env; /* NULL-terminated "K=V" */
    char *cwd;  /* NULL: the image's WorkingDir, else "/" */
    char **files; /* NULL-terminated, normalized store paths */
    size_t nfiles;
    struct run_limits limits;
    enum run_network network;
    /* network sandbox only: when has_egress, only these destinations
     * (plus DNS) are reachable; at most cfg->max_egress_rules. */
    int has_egress;
    struct net_egress *egress;
    size_t negress;
    int persist;
    /* /v1/run's timeout_ms: the wall clock in ms when set (else
     * limits.wall_clock_secs, which stays its whole-second ceiling). */
    uint64_t wall_clock_ms;
    int stream; /* "stream": true: NDJSON events (run_stream.c) */
    int base64; /* "encoding": "base64" (streamed runs) */
    /* issue 14: "stdin"/"stdin_b64", written to the command's stdin, which
     * is then closed (without them the command reads /dev/null) */
    char *stdin_data;
    size_t stdin_len;
    /* issue 17: stateless runs */
    struct oci_input *inputs; /* "inputs", bound like files */
    size_t ninputs;
    int return_outputs; /* captured /output files in the answer */
    /* /v1/run (BoxRun's ephemeral run): the command runs as uid:gid (0
     * unless the request's "user" says otherwise; uid 0 gets the box
     * capability set, oci_box_caps) on a writable root whose upper layer
     * is a tmpfs of root_bytes (ENOSPC past it).  Never a warm sandbox. */
    int v1_root;
    uint32_t uid, gid;
    uint64_t root_bytes;
};

void run_request_free(struct run_request **r);

enum run_outcome {
    RUN_OK = 0,        /* finished, exit_code valid */
    RUN_TIMEOUT,       /* wall clock exceeded (408) */
    RUN_OUTPUT_LIMIT,  /* stdout or stderr over output_limit_bytes (507) */
    RUN_ERROR          /* could not run: error holds status and message */
};

struct run_result {
    char exec_id[64];
    enum run_outcome outcome;
    int exit_code;
    struct sbuf out;
    struct sbuf err;
    uint64_t wall_ms;
    int have_usage;
    uint64_t cpu_ms;
    uint64_t memory_peak_bytes;
    int oom_killed;
    struct bx_err error;
    /* NULL-terminated: entries of /output that were not captured, and why
     * (the answer's output_errors); NULL when there are none. */
    char **output_errors;
    /* what persist=false must delete after the answer (run_result_release) */
    int persist;
    int drop_outputs; /* outputs go even with persist (a failed capture) */
    int captured;     /* a capture ran: output/<exec_id> may exist */
    int image_failed; /* RUN_ERROR because the image could not be had */
    char **files;
    struct run_outputs *outputs; /* return_outputs (run_outputs.h) */
    int keep_outputs; /* some outputs were not inlined: they stay in the store */
};

typedef void (*run_done_cb)(void *arg, struct run_result *res);

struct run_mgr_params {
    struct loop *loop;
    const struct config *cfg;
    struct store *store;
    struct image_cache *images;
    struct cg_ctx *cgroups; /* NULL when ignore_cgroups */
    struct net *net;        /* the sandbox network; outlives the manager */
    const char *runsc;      /* absolute path */
    const char *platform;
    const char *runsc_extra_flags[8]; /* NULL-terminated extra global flags */
};

int run_mgr_new(struct run_mgr **out, const struct run_mgr_params *p, struct bx_err *err);
/* Kills every run still going and waits for nothing: call at shutdown. */
void run_mgr_free(struct run_mgr **m);
/* Removes what a crashed predecessor left under <home>/runs. */
int run_recover(const struct config *cfg, struct bx_err *err);
/* The sweep of run_recover for another directory (boxes): kills the
 * processes naming a path below dir, unmounts every mount below it. */
int recover_sweep_dir(const char *dir, struct bx_err *err);

/* Queues a run.  Takes ownership of *req (sets it NULL) on success only.
 * Returns -1 (400 missing file, 500 network unavailable, 503 queue full)
 * before anything is registered: then cb is never called.  Otherwise cb is
 * called exactly once unless run_cancel() came first, always later from
 * the loop and never inside run_submit, even when the run fails at once
 * (e.g. skopeo cannot be started): the caller may still use *job and its
 * own context after run_submit returns. */
int run_submit(struct run_mgr *m, struct run_request **req, run_done_cb cb, void *arg,
               struct run_job **job, struct bx_err *err);
/* The client went away: kill the sandbox, tear down, never call back. */
void run_cancel(struct run_job *job);
void run_result_free(struct run_result **res);

/* Streamed runs (issue 14): cb(arg, stream 0|1, data, len) gets every read
 * of the sandbox's stdout and stderr as it comes, besides the result's
 * buffers (called from the loop, never after the done callback or a
 * cancel).  run_pause_output stops (1) or resumes (0) the reading of the
 * pipes: the sandbox blocks on its writes while a client is slow. */
typedef void (*run_output_cb)(void *arg, int stream, const char *data, size_t len);
void run_set_output_hook(struct run_job *job, run_output_cb cb, void *arg);
void run_pause_output(struct run_job *job, int paused);
const char *run_job_exec_id(const struct run_job *job);
/* The end of every run, answered or not: with persist=false its inputs and
 * outputs are deleted (in a child: up to output_files_max files), then res
 * is freed.  The deletion is never called back; a shutdown finishes it. */
void run_result_release(struct run_mgr *m, struct run_result **res);

/* Budget held outside the runs (running boxes, box.c): admitted runs plus
 * this must fit total_memory_mb and total_pids.  A release lets queued
 * runs start (from the loop, never inside this call). */
void run_mgr_hold(struct run_mgr *m, uint64_t memory_mb, uint64_t pids);
void run_mgr_release(struct run_mgr *m, uint64_t memory_mb, uint64_t pids);
/* Other holders of the budget (the warm pool's sandboxes, boxes made in
 * advance) register here: each fn is called when the queue's head waits, so
 * that they may give way; fn must defer its work (never run it inside the
 * call).  -1 (err) when RUN_MGR_MAX_YIELDERS are registered.  Removal takes
 * the same fn and arg; one not registered is ignored. */
#define RUN_MGR_MAX_YIELDERS 4
int run_mgr_add_yielder(struct run_mgr *m, void (*fn)(void *arg), void *arg,
                        struct bx_err *err);
void run_mgr_remove_yielder(struct run_mgr *m, void (*fn)(void *arg), void *arg);
/* 1 when memory_mb and pids fit what the admitted runs and the holds leave
 * of the budget. */
int run_mgr_fits(const struct run_mgr *m, uint64_t memory_mb, uint64_t pids);

struct run_stats {
    uint64_t running, queued;
    /* of total_memory_mb / total_pids: held by admitted runs, by boxes */
    uint64_t runs_memory_mb, runs_pids, held_memory_mb, held_pids;
    uint64_t ok, nonzero, timeout, oom, output_limit, error;
    uint64_t pending_teardowns; /* answered runs whose leftovers are being removed */
    /* warm_pool (pool.h) */
    uint64_t pool_ready, pool_creating, pool_hits, pool_misses, pool_created, pool_failed;
    uint64_t pool_create_ms_last, pool_create_ms_sum;
    uint64_t pool_entries, pool_auto_entries, pool_auto_created, pool_auto_retired,
        pool_auto_hits, pool_refreshed, pool_max_total, pool_yielded;
};
void run_stats(const struct run_mgr *m, struct run_stats *st);

#endif
