/* Cgroups for runs.  Boxer writes its limits itself rather than letting
 * runsc do it, so the same code serves pure-v2, hybrid and v1 hosts.
 *
 * Layout detection (cg_init): reads <proc_self_cgroup> (normally
 * /proc/self/cgroup) and the mounts under <fs_root> (normally /sys/fs/cgroup):
 *   - v2: fs_root is a cgroup2 mount with cpu, memory, pids in
 *         cgroup.controllers -> run cgroups at <fs_root><own>/boxer/<name>;
 *         if <own> has processes (no-internal-processes rule), Boxer first
 *         moves itself into <own>/boxer/supervisor... actually into a sibling
 *         leaf <own>/boxer-supervisor so <own>/boxer can enable controllers.
 *   - v1/hybrid: per-controller hierarchies <fs_root>/cpu, /memory, /pids
 *         (found via /proc/self/mountinfo or by the names), run cgroups at
 *         <fs_root>/<ctrl><own_in_ctrl>/boxer/<name> in each.
 * Never mounts, unmounts or moves a hierarchy.  Tests pass a fake fs_root
 * tree and a fake proc file; the pure parsing helpers are exposed for unit
 * tests.
 */
#ifndef BOXER_CGROUP_H
#define BOXER_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "err.h"

enum cg_layout { CG_NONE = 0, CG_V1, CG_HYBRID, CG_V2 };

struct cg_ctx;
struct cg_run;

struct cg_limits {
    double cpu_cores;      /* > 0 */
    uint64_t memory_bytes; /* > 0 */
    uint64_t pids_max;     /* > 0 */
};

struct cg_usage {
    uint64_t cpu_usec;
    uint64_t memory_peak_bytes;
    int oom_killed;
};

/* fs_root: "/sys/fs/cgroup"; proc_self_cgroup: "/proc/self/cgroup";
 * mountinfo: "/proc/self/mountinfo" (the fake tests give their own file).
 * Fails (500) when cgroups cannot be created under our own cgroup. */
int cg_init(struct cg_ctx **out, const char *fs_root, const char *proc_self_cgroup,
            const char *mountinfo, struct bx_err *err);
void cg_free(struct cg_ctx **ctx);
enum cg_layout cg_layout(const struct cg_ctx *ctx);
const char *cg_layout_name(enum cg_layout l);
/* A one-line description for the start-up log (layout and base paths). */
const char *cg_describe(const struct cg_ctx *ctx);

/* Creates the run's cgroup(s) named `name` (e.g. the exec id) and writes the
 * limits: v2 cpu.max "<quota> 100000", memory.max, memory.swap.max 0,
 * pids.max; v1 cpu.cfs_period_us 100000, cpu.cfs_quota_us, memory.limit_in_bytes,
 * memory.memsw.limit_in_bytes when present, pids.max. */
int cg_run_create(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim,
                  struct cg_run **out, struct bx_err *err);

/* fds (O_WRONLY|O_CLOEXEC) of every cgroup.procs file of the run, for a child
 * to join with write(fd, "0", 1) between fork and exec.  Returns count (<= max). */
int cg_run_procs_fds(struct cg_run *run, int *fds, int max, struct bx_err *err);
/* For v2: an O_DIRECTORY fd usable with clone3 CLONE_INTO_CGROUP, or -1. */
int cg_run_dirfd(struct cg_run *run);

int cg_run_usage(struct cg_run *run, struct cg_usage *u, struct bx_err *err);

/* Kills every process still in the run cgroup(s) (SIGKILL, waits until empty,
 * bounded), removes the directories and frees *run. */
int cg_run_destroy(struct cg_run **run, struct bx_err *err);

/* Removes stale run cgroups left by a previous crash (kills their procs). */
int cg_cleanup_stale(struct cg_ctx *ctx, struct bx_err *err);

/* Pure helpers (unit-tested). */
/* Finds in a /proc/self/cgroup text the path for a v1 controller (e.g.
 * "memory"; matches comma-separated lists like "cpu,cpuacct") or, with
 * controller NULL, the v2 "0::" line.  Writes it into out. */
int cg_parse_proc_cgroup(const char *text, const char *controller, char *out, size_t cap);
/* cpu_cores -> v2 "cpu.max" quota in microseconds per 100000 period. */
uint64_t cg_cpu_quota_us(double cpu_cores);

#endif
