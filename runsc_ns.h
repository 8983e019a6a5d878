/* The private mount namespace runsc is started in, when what runsc reads
 * from the host must differ from what Boxer sees.  Two reasons, each
 * optional:
 *
 * - /proc/sys/net hidden: runsc 2024-07 decides it runs in the root network
 *   namespace when /proc/sys/net/core/rmem_default exists in the run's
 *   netns, which it does on kernels where that sysctl is per namespace, and
 *   then refuses --network=sandbox.  An empty read-only tmpfs there.
 *
 * - the CPU count: runsc sizes the sandbox (nproc, /proc/cpuinfo,
 *   sched_getaffinity inside: its --cpu-num) from cpuset.cpus of the
 *   cgroup it starts in, read just before it starts the sandbox.  Pinning
 *   the real cgroup to ceil(cpu_cores) CPUs for that long would run all of
 *   runsc's own start-up (and the gofer's) on those CPUs: ~10 % of a cold
 *   run (bench/cg_hier).  Instead runsc reads a small tmpfs over the v1
 *   cpuset hierarchy holding only its own cgroup's directory with that
 *   cpuset.cpus, and writable empty cgroup.procs and tasks files for its
 *   joins, which then move nothing: runsc, the gofer and the sandbox stay
 *   in Boxer's own cpuset cgroup on every CPU, where the CFS quota of
 *   cpu_cores bounds them as before.  cgroup_setup.c decides when this
 *   applies (cg_run_cpuset_shadow); cold runs only, see
 *   cg_run_create_pinned.
 *
 * The namespace is a fresh copy of Boxer's, made for one spawn (so it sees
 * the run's mounts, which are made just before), slave to it so nothing
 * made there propagates back; it goes away with runsc and its children.
 * Boxer is single-threaded, which setns(CLONE_NEWNS) requires. */
#ifndef BOXER_RUNSC_NS_H
#define BOXER_RUNSC_NS_H

#include "cgroup.h"
#include "err.h"
#include "loop.h"
#include "proc.h"

struct runsc_ns_opts {
    int hide_proc_sys_net;
    /* Both set, or both NULL: the cpuset hierarchy's mount point (must be
     * /sys/fs/cgroup/cpuset, where runsc looks), the own cgroup below it
     * ("" or "/a/b", no "." or ".." components) and the cpuset.cpus value
     * runsc is to read there. */
    const char *cpuset_mount;
    const char *cpuset_rel;
    const char *cpuset_cpus;
};

/* The options for a runsc that starts a sandbox with the run's cgroups
 * cg (may be NULL) and, when hide_net, --network=sandbox. */
void runsc_ns_opts_for(struct runsc_ns_opts *o, int hide_net, const struct cg_run *cg);

/* proc_spawn(), in such a namespace when o asks for either; plainly
 * otherwise. */
int runsc_spawn(struct loop *l, const struct proc_spec *spec, const struct runsc_ns_opts *o,
                proc_exit_cb cb, void *arg, struct proc **out, struct bx_err *err);

#endif
