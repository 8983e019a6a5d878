/* Warm pool (issue 16): sandboxes made in advance for POST /run.
 *
 * For each warm_pool entry, `count` sandboxes of its image, limits and
 * network are kept ready: bundle, cgroup and netns as for a run (under
 * <home>/runs/<exec id>, so the crash sweep of run_recover and the stale
 * cgroup cleanup cover them), `runsc create` + `runsc start` of a
 * placeholder PID 1 (the box init, bind-mounted read-only at
 * /.boxer/init), the hostname being the exec id the run will get.  A run
 * that matches (pool_take) adopts the whole sandbox, runs its command
 * with `runsc exec` and tears it down after its answer like any run
 * (run.c, `runsc delete --force` first); the pool then makes a
 * replacement.  A sandbox serves exactly one run.  Ready and creating
 * sandboxes hold their memory and pids in the run budget (run_mgr_hold).
 *
 * warm_pool_auto adds entries (count 1) for images run cold repeatedly and
 * retires them after warm_pool_auto_idle_secs without a hit; all entries
 * together hold at most warm_pool_max_total sandboxes.  Entries named by a
 * tag are re-resolved every tag_refresh_secs (a timer, not the hit path)
 * and sandboxes of a digest the tag no longer names are remade.
 */
#ifndef BOXER_POOL_H
#define BOXER_POOL_H

#include <stdint.h>

#include "err.h"
#include "oci.h"

struct pool;
struct run_mgr;
struct run_request;
struct cg_run;
struct net_run;
struct image;

/* A ready sandbox handed to a run: the run owns all of it. */
struct pool_sb {
    char id[64]; /* the exec id and hostname */
    struct oci_bundle b;
    struct cg_run *cg;
    struct net_run *net;
    struct image *img;
    size_t entry; /* pool.c's: the warm_pool entry it was made for */
};

struct pool_params {
    struct run_mgr *mgr; /* budget holds; run.c's params for the rest */
    int runs_dirfd;
    const char *runs_dir;
};

/* The pool registers with the run manager (run_mgr_add_yielder): when runs
 * are queued and the pool's budget holds are what keeps the first one out,
 * ready and creating sandboxes are deleted until it fits (a pool sandbox
 * never keeps a run out); from the loop, later. */
int pool_new(struct pool **out, const struct pool_params *p, struct bx_err *err);
/* Destroys every sandbox it holds, blocking (shutdown). */
void pool_free(struct pool **p);
/* A ready sandbox made for exactly what req asks (image reference, limits,
 * network, no inputs), or NULL (counted as a miss when an entry has the
 * image).  Its budget hold is released: the run admits its own cost. */
struct pool_sb *pool_take(struct pool *p, const struct run_request *req);
/* Back into the pool (the run could not be admitted after all). */
void pool_put_back(struct pool *p, struct pool_sb *sb);
/* Frees the handle only (run.c has adopted its parts). */
void pool_sb_free(struct pool_sb **sb);
/* Budget was freed: make what is missing (from the loop, later). */
void pool_kick(struct pool *p);

struct pool_stats {
    uint64_t ready, creating, hits, misses, created, failed;
    uint64_t create_ms_last, create_ms_sum;
    /* entries: configured + automatic in use; refreshed: sandboxes remade
     * because their tag moved */
    uint64_t entries, auto_entries, auto_created, auto_retired, auto_hits, refreshed;
    uint64_t yielded; /* deleted to make room for a queued run (on_yield) */
    uint64_t max_total;
};
void pool_stats(const struct pool *p, struct pool_stats *st);

#endif
