/* Cgroups for runs.  Boxer writes its limits itself rather than letting
 * runsc do it, so the same code serves pure-v2, hybrid and v1 hosts.
 *
 * Layout detection (cg_init; cg_describe() names the layout for the start-up
 * log) parses <mountinfo> (normally
 * /proc/self/mountinfo): only mounts of type "cgroup"/"cgroup2" whose mount
 * point is <fs_root> or below it are considered; v1 hierarchies are told
 * apart by the controller names in their super options ("cpu", "cpuacct",
 * "memory", "pids"; co-mounted "cpu,cpuacct" is one hierarchy), never by
 * directory names.  Our own cgroup comes from <proc_self_cgroup> (normally
 * /proc/self/cgroup) and is mapped into a mount through the mount's root
 * field (so bind-mounted subtrees and cgroup namespaces work).
 *   - V2: a cgroup2 mount holds our own cgroup <own> and <own>'s
 *         cgroup.controllers lists cpu, memory and pids.  Run cgroups live at
 *         <mnt><own>/boxer/<name>.  cg_init enables "+cpu +memory +pids" in
 *         <own>/cgroup.subtree_control (when not already enabled) and in
 *         <own>/boxer/cgroup.subtree_control.  Because of the
 *         no-internal-processes rule, when <own> must get controllers enabled
 *         and still has processes (and is not the root cgroup, which is
 *         exempt), cg_init first moves Boxer's own process (only Boxer,
 *         never other processes) into the sibling leaf
 *         <own>/boxer-supervisor.  If other processes share <own>, enabling
 *         fails (500) and Boxer must be started in a cgroup of its own
 *         (e.g. systemd Delegate=yes).  cg_describe() mentions the move.
 *   - V1 / HYBRID: per-controller v1 hierarchies hold cpu, memory and pids
 *         (cpuacct optional, used for CPU usage; cpuset optional, see
 *         below); HYBRID when a cgroup2 mount also exists under fs_root.
 *         Run cgroups live at <mnt_ctrl><own_in_ctrl>/boxer/<name> in every
 *         such hierarchy.  <own>/boxer in a v1 cpuset hierarchy gets
 *         <own>'s cpuset.cpus and cpuset.mems when empty (a new v1 cpuset
 *         accepts no task before both are set).
 * CPU count inside the sandbox: runsc (2024-07) passes the sandbox
 * "--cpu-num <number of CPUs in cpuset.cpus of its cgroup>", which is what
 * nproc, sched_getaffinity and /proc/cpuinfo show (its --cpu-num-from-quota
 * never goes below 2, and spec linux.resources.cpu.cpus is ignored for a
 * pre-created cgroup).  So when a cpuset controller is usable (a v1 cpuset
 * hierarchy; v2: "cpuset" in <own>'s cgroup.controllers, enabled like the
 * others) every run gets a cpuset of ceil(cpu_cores) CPUs (at least 1, at
 * most all usable ones), the least-loaded ones at creation, and the
 * sandbox is pinned to them.  Without one, cg_describe() says that
 * sandboxes see every host CPU; nothing else changes.
 * V2 is preferred when both would work.  Never mounts, unmounts or moves a
 * hierarchy.  Tests pass a fake fs_root tree and fake proc files; the pure
 * parsing helpers are exposed for unit tests.
 *
 * Several Boxer instances in the same cgroup share <own>/boxer: names must be
 * unique across them and cg_cleanup_stale() of one kills the other's runs.
 *
 * Nothing here logs; errors follow err.h (500 for host failures, 400 for bad
 * limits).
 */
#ifndef BOXER_CGROUP_H
#define BOXER_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

enum cg_layout { CG_NONE = 0, CG_V1, CG_HYBRID, CG_V2 };

/* A run name: 1..CG_NAME_MAX of [A-Za-z0-9._-], not starting with '.'. */
#define CG_NAME_MAX 128
/* Most cgroup.procs fds a run can need (one per v1 hierarchy: cpu, cpuacct,
 * memory, pids, cpuset). */
#define CG_MAX_PROCS_FDS 5
/* CPUs a run may be pinned to: the first CG_CPUS_MAX usable ones. */
#define CG_CPUS_MAX 8192
#define CG_CPU_ID_MAX 65535

struct cg_ctx;
struct cg_run;

struct cg_limits {
    double cpu_cores;      /* > 0, finite */
    uint64_t memory_bytes; /* > 0 */
    uint64_t pids_max;     /* > 0 */
};

struct cg_usage {
    uint64_t cpu_usec;          /* 0 when no CPU accounting is available */
    uint64_t memory_peak_bytes; /* v2 without memory.peak: current usage */
    int oom_killed;             /* 1 when the kernel OOM-killed in the run */
};

/* fs_root: "/sys/fs/cgroup"; proc_self_cgroup: "/proc/self/cgroup";
 * mountinfo: "/proc/self/mountinfo" (the fake tests give their own files).
 * Creates <own>/boxer in each hierarchy; cg_free() removes it again when
 * it is empty.  Fails (500) when cgroups cannot be created under our own
 * cgroup. */
/* base_name: the directory under our own cgroup that holds this instance's
 * run cgroups (e.g. "boxer-<hash of home>"), so Boxers sharing a cgroup never
 * clean up each other's runs; NULL means "boxer". */
int cg_init(struct cg_ctx **out, const char *fs_root, const char *proc_self_cgroup,
            const char *mountinfo, const char *base_name, struct bx_err *err);
void cg_free(struct cg_ctx **ctx);
const char *cg_layout_name(enum cg_layout l);
/* A one-line description for the start-up log (layout and base paths);
 * owned by ctx. */
const char *cg_describe(const struct cg_ctx *ctx);

/* The budget of all runs together: writes memory and pids limits on the
 * base cgroup <own>/<base_name> (never on <own> or anything above it):
 * v2 memory.max, memory.swap.max 0 (when the file exists) and pids.max;
 * v1 memory.limit_in_bytes, memory.memsw.limit_in_bytes (when present; the
 * two are written in the order the kernel accepts whatever was there
 * before) and pids.max.  Run cgroups nest below it, so the kernel bounds
 * their sum even if accounting elsewhere were wrong. */
int cg_set_base_limits(struct cg_ctx *ctx, uint64_t memory_bytes, uint64_t pids_max,
                       struct bx_err *err);

/* Creates the run's cgroup(s) named `name` (e.g. the exec id) and writes the
 * limits: v2 cpu.max "<quota> 100000", memory.max, memory.swap.max 0 (when
 * the file exists), pids.max; v1 cpu.cfs_period_us 100000, cpu.cfs_quota_us,
 * memory.limit_in_bytes, memory.memsw.limit_in_bytes when present, pids.max;
 * with a cpuset controller cpuset.cpus (v1: and cpuset.mems), see above.
 * A name that already exists is an error (EEXIST).  On failure nothing is
 * left behind.  The run does not borrow ctx: it may outlive it. */
int cg_run_create(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim,
                  struct cg_run **out, struct bx_err *err);
/* The same, but always with a real cpuset where there is one, never the
 * shadow of cg_run_cpuset_shadow: for pool and box sandboxes, whose later
 * `runsc exec`s measured ~10 ms slower (bench/pool: a warm hit 94-98 ms
 * against 74-78) when the sandbox was made through the shadow. */
int cg_run_create_pinned(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim,
                         struct cg_run **out, struct bx_err *err);

/* Opens fds (O_WRONLY|O_CLOEXEC, owned by the caller) of the run's
 * membership file in every hierarchy (v2 cgroup.procs, v1 tasks), for a
 * single-threaded child to join with write(fd, "0", 1) on each between fork
 * and exec (v1's tasks moves only the writing thread; see cgroup.c).  Returns the count (<= max, at most CG_MAX_PROCS_FDS), or -1
 * when max is too small. */
int cg_run_procs_fds(struct cg_run *run, int *fds, int max, struct bx_err *err);
/* The CPUs the run was pinned to at creation ("0", "2-3"): what its
 * sandbox sees; NULL when the run is not pinned (no cpuset controller, or
 * runsc reads the count from a shadow, below). */
const char *cg_run_cpu_list(const struct cg_run *run);
/* v1 with the cpuset hierarchy mounted alone at /sys/fs/cgroup/cpuset:
 * the run has no cpuset cgroup and is never pinned.  runsc is to be
 * started with a shadow of our own cpuset cgroup that says `cpus`
 * (runsc_ns.h), so the sandbox is still sized to ceil(cpu_cores) CPUs.
 * Returns 1 and fills the strings (owned by the run) then, else 0. */
int cg_run_cpuset_shadow(const struct cg_run *run, const char **mount, const char **rel,
                         const char **cpus);
/* The pinning only tells runsc the CPU count; once runsc has started the
 * sandbox (a process with argv[0] "runsc-sandbox" is in the run's cpuset
 * cgroup) that count is fixed, so this widens the run's cpuset.cpus to every
 * usable CPU (the host scheduler can then balance runs; the quota still
 * bounds each) and gives back its CPUs for the placement of later runs.
 * Call it from a timer after spawning runsc.  Returns 1 when the run is not
 * pinned (any more, or never was), 0 while the sandbox has not started,
 * -1 on error. */
int cg_run_unpin_started(struct cg_run *run, struct bx_err *err);

/* The OCI spec's linux.cgroupsPath to give runsc (owned by the run) so that
 * runsc uses this run's cgroup as a pre-created one: it then creates,
 * changes and removes nothing, keeps the sandbox in it, and sizes the
 * sandbox's /proc/meminfo MemTotal from its memory limit.  Valid only when
 * runsc is exec'd by a child that already joined the run (see
 * cg_run_procs_fds / CLONE_INTO_CGROUP):
 *   - v1/hybrid: "." (runsc resolves a relative path against its own cgroup
 *     in each hierarchy; an absolute one would name the same path in every
 *     hierarchy, which is wrong where our cgroups differ per controller);
 *   - v2: "<own>/boxer/<name>", absolute below the cgroup2 mount (runsc
 *     resolves a relative v2 path against the PARENT of its own cgroup).
 * Never leave linux.cgroupsPath empty without --ignore-cgroups: runsc
 * 20240729 then uses "/<container id>" at the hierarchy roots and moves the
 * sandbox out of the run's limits. */
const char *cg_run_oci_path(const struct cg_run *run);

int cg_run_usage(struct cg_run *run, struct cg_usage *u, struct bx_err *err);

/* Kills every process still in the run cgroup(s) and their descendants
 * (v2: cgroup.kill when present; otherwise SIGKILL through a pidfd to each
 * pid that cgroup.procs still lists after the pidfd was opened, so a recycled
 * pid is never hit), then removes the directories.  Runs on the event loop,
 * so it waits at most CG_DESTROY_WAIT_MS.  Contract:
 *   0:                      removed; *run freed and set NULL.
 *   -1 with *run != NULL:   not empty yet (err->sys_errno == EBUSY, errno
 *                           EBUSY); the kill was sent; call again later
 *                           (e.g. from a timer) or give up with
 *                           cg_run_abandon().
 *   -1 with *run == NULL:   permanent failure; *run was freed; leftovers are
 *                           removed by the next cg_cleanup_stale(). */
#define CG_DESTROY_WAIT_MS 200
int cg_run_destroy(struct cg_run **run, struct bx_err *err);
/* Frees *run without touching the cgroups (left for cg_cleanup_stale). */
void cg_run_abandon(struct cg_run **run);

/* Removes every child of <own>/boxer in each hierarchy (a previous crash's
 * runs), killing their processes first; waits at most CG_STALE_WAIT_MS.
 * Never kills Boxer itself.  For start-up, not for the event loop. */
#define CG_STALE_WAIT_MS 2000
int cg_cleanup_stale(struct cg_ctx *ctx, struct bx_err *err);

/* Pure helpers (unit-tested). */
/* Finds in a /proc/self/cgroup text the path for a v1 controller (e.g.
 * "memory"; matches comma-separated lists like "cpu,cpuacct"; named
 * hierarchies like "name=systemd" only by their full name) or, with
 * controller NULL, the v2 "0::" line.  Writes the NUL-terminated path into
 * out.  Returns 0, or -1 when absent, malformed (not absolute, "." or ".."
 * components) or longer than cap - 1. */
int cg_parse_proc_cgroup(const char *text, const char *controller, char *out, size_t cap);
/* cpu_cores -> quota in microseconds per 100000 us period, rounded to the
 * nearest microsecond, at least 1000 (the kernel minimum), at most 1024
 * cores' worth; NaN and non-positive values give the minimum. */
uint64_t cg_cpu_quota_us(double cpu_cores);
/* CPUs a run of cpu_cores gets: ceil (ignoring float noise below 1e-9), at
 * least 1 (also for NaN and non-positive values), at most CG_CPUS_MAX. */
int cg_cpu_count(double cpu_cores);
/* Parses a kernel CPU list ("0-3,8,10-11\n"; "" or "\n" is empty) into
 * ascending ids, storing at most max of them.  Ids above CG_CPU_ID_MAX,
 * descending or overlapping entries and any other byte are refused (-1).
 * Returns the number stored. */
int cg_parse_cpu_list(const char *text, uint16_t *out, int max);

#endif
