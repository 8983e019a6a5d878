/* What run.c and its pieces (run_discard.c, run_teardown.c) share; not for
 * other modules. */
#ifndef BOXER_RUN_INTERNAL_H
#define BOXER_RUN_INTERNAL_H

#include "run.h"
#include "store.h"
#include "infeed.h"
#include "proc.h"

struct run_mgr {
    struct run_mgr_params p;
    char *runs_dir;
    int runs_dirfd;
    struct run_job *queue_head, *queue_tail;
    size_t nqueued;
    struct run_job *active;
    size_t nactive;
    uint64_t used_memory_mb; /* sum of the admitted jobs' costs */
    uint64_t used_pids;
    uint64_t held_memory_mb, held_pids; /* run_mgr_hold: running boxes */
    int stopping; /* run_mgr_free: admit nothing more */
    struct run_stats stats;
    struct discard *discards; /* deletions of persist=false files under way */
    /* Answered runs whose sandbox leftovers (netns, cgroup, mounts, run
     * dir) are still being removed; admission waits while there are
     * max_pending_teardowns of them. */
    struct run_job *teardowns;
    size_t nteardowns;
    struct pool *pool; /* warm_pool (pool.c), NULL when none is configured */
    /* run_mgr_add_yielder: the warm pool (pool.c), boxes made in advance
     * (box_pool.c); called in the order they were added */
    struct run_yielder {
        void (*fn)(void *arg);
        void *arg;
    } yielders[RUN_MGR_MAX_YIELDERS];
    size_t nyielders;
};

/* JOB_STARTING: admitted (counted in the budget), its start deferred to the
 * loop (start_task), so that run_submit never completes a job inside itself.
 * JOB_CAPTURE: the sandbox is gone, a child copies /output into the store. */
enum job_state { JOB_QUEUED, JOB_STARTING, JOB_IMAGE, JOB_RUNNING, JOB_CAPTURE, JOB_DONE };

struct run_job {
    struct run_mgr *mgr;
    struct run_job *next; /* queue / active list */
    struct run_job *prev;
    enum job_state state;
    struct run_request *req;
    struct run_result *res;
    run_done_cb cb;
    void *cb_arg;
    int cancelled;
    const struct run_sink *sink;
    struct loop_task start_task;
    uint64_t cost_memory_mb; /* what the job holds of the budget while admitted */
    uint64_t cost_pids;

    struct image_wait *iwait;
    struct image *img;
    struct oci_bundle b; /* <home>/runs/<exec_id> */
    struct cg_run *cg;
    struct net_run *net;
    struct proc *proc;
    struct proc *capture; /* the /output capture child (JOB_CAPTURE) */
    struct store_report *capture_rep; /* what it captured, skipped, or why it failed */
    int capture_fd;       /* <run dir>/output, for the capture child */
    int out_fd, err_fd;
    int exited;
    int wstatus;
    uint64_t started_ms;
    uint64_t wall_timer;
    uint64_t drain_timer;
    uint64_t unpin_timer; /* polls cg_run_unpin_started */
    unsigned unpin_polls;
    int killed;
    run_output_cb out_cb; /* streamed runs (streamed_sink) */
    void *out_arg;
    int paused;
    struct infeed in; /* the command's stdin when the request gave one (issue 14) */
    char name[64];        /* the exec id, kept after the result is handed over */
    uint64_t cleanup_timer; /* the teardown after the answer (run_cleanup_start) */
    struct proc *cleanup; /* the child unmounting and removing the run dir */
    /* issue 16: the run adopted a warm pool sandbox (pool.c): its command
     * goes in with `runsc exec`, a kill is `runsc kill --all`, and the
     * teardown starts with `runsc delete --force` */
    int warm;
    int warm_deleted;
    struct proc *killer;
};

/* A persist=false deletion running in a child (see run_result_release). */
struct discard {
    struct run_mgr *mgr;
    struct discard *next;
    struct proc *proc;
    struct store_report *rep;
    char **files;                     /* inputs hidden, whose empty parents go, or NULL */
    char exec_id[64];                 /* whose outputs were hidden, or "" */
    char (*hidden)[STORE_HIDDEN_MAX]; /* what store_hide* moved into .tmp */
    size_t nhidden;
};

/* run.c */
/* Removes an fd from the loop and closes it (no-op when already -1). */
void run_close_pipe(struct run_job *job, int *fdp);
/* Hands the result to the client and the job over to run_cleanup_start. */
void run_job_complete(struct run_job *job);
/* Unlinks a job from a doubly linked list (queue, active, teardowns). */
void run_list_remove(struct run_job **head, struct run_job *job);
/* Pushes a job at the head of a doubly linked list. */
void run_list_push(struct run_job **head, struct run_job *job);
/* Frees a job that holds nothing in the loop any more. */
void run_job_free(struct run_job *job);
/* Admits and starts queued jobs while the budget allows. */
void run_start_next(struct run_mgr *m);

/* run_teardown.c */
/* Stops the job's timers, pipes and process, reads usage, starts capture. */
void run_job_teardown(struct run_job *job);
/* `runsc kill --all` or `runsc delete --force` of a warm run's sandbox. */
int run_warm_runsc(struct run_job *job, const char *what, proc_exit_cb cb, struct proc **out,
                   struct bx_err *err);
/* After the answer: moves the job to m->teardowns and removes its leftovers. */
void run_cleanup_start(struct run_job *job);
/* Shutdown: finishes a pending teardown here, blocking. */
void run_cleanup_now(struct run_job *job);

/* run_discard.c */
void discard_start(struct run_mgr *m, char ***files, const char *exec_id);
int discard_work(void *arg);
void discard_free(struct discard *d);

#endif
