/* What run.c and its pieces (run_discard.c) share; not for other modules. */
#ifndef BOXER_RUN_INTERNAL_H
#define BOXER_RUN_INTERNAL_H

#include "run.h"
#include "store.h"

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

void discard_start(struct run_mgr *m, char ***files, const char *exec_id);
int discard_work(void *arg);
void discard_free(struct discard *d);

#endif
