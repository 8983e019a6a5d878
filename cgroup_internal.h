/* Private to the cgroup module (cgroup.c, cgroup_setup.c): the layout of
 * the context, and the helpers both halves use.  Not part of
 * the contract in cgroup.h.
 */
#ifndef BOXER_CGROUP_INTERNAL_H
#define BOXER_CGROUP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"
#include "err.h"

/* Controllers a hierarchy serves. */
#define CGC_CPU 1u
#define CGC_CPUACCT 2u
#define CGC_MEMORY 4u
#define CGC_PIDS 8u
#define CGC_CPUSET 16u

#define CG_MAX_HIER CG_MAX_PROCS_FDS
/* Where runsc (v1) reads cpuset.cpus below. */
#define CG_RUNSC_CPUSET_MOUNT "/sys/fs/cgroup/cpuset"
#define PROCS_FILE_MAX (1u * 1024u * 1024u)
#define SMALL_FILE_MAX (64u * 1024u)

struct cg_hier {
    unsigned ctrls; /* CGC_* served by this hierarchy */
    int own_fd;     /* O_RDONLY|O_DIRECTORY of <own>, to remove the base at exit */
    int base_fd;    /* O_RDONLY|O_DIRECTORY of <own>/boxer */
    char *base;     /* its path, for cg_describe */
};

/* The CPUs runs may be pinned to, and how many runs hold each.  Shared by
 * the context and its runs (a run may outlive the context), hence the
 * reference count; everything runs on one thread. */
struct cg_cpus {
    int refs;
    int n;         /* usable CPUs: id[0..n-1], ascending */
    unsigned next; /* where the next least-loaded scan starts */
    uint16_t id[CG_CPUS_MAX];
    uint32_t load[CG_CPUS_MAX];
    char *mems; /* v1: the memory nodes every run's cpuset gets */
    /* v1 with the cpuset hierarchy alone at /sys/fs/cgroup/cpuset: runs get
     * no cpuset cgroup; runsc reads their CPU count from a shadow of our own
     * cgroup there (runsc_ns.h).  The mount point and our cgroup below it
     * ("" or "/a/b"); NULL otherwise. */
    char *shadow_mount;
    char *shadow_rel;
};

struct cg_ctx {
    enum cg_layout layout;
    int nhier;
    struct cg_hier hier[CG_MAX_HIER];
    int moved_to_leaf;
    char *v2_rel;         /* v2: our cgroup below the cgroup2 mount ("" for its root) */
    struct cg_cpus *cpus; /* NULL without a usable cpuset controller */
    char cpuset_note[BX_ERR_MSG_MAX + 64]; /* why no cpuset, for cg_describe */
    char *describe;
    char base_name[CG_NAME_MAX + 1];
};

/* Whether `list` holds the exact token `word` (tokens split by `seps`, a
 * leading '+' ignored so "+cpu" written to a fake file still matches). */
int cg_has_token(const char *list, const char *word, const char *seps);
/* A run (or base) name: one safe path component of at most CG_NAME_MAX. */
int cg_valid_name(const char *name);
/* Writes a whole value to an existing cgroup file; never creates files (a
 * missing one is ENOENT so callers can treat optional knobs as optional). */
int cg_write_at(int dirfd, const char *file, const char *val, struct bx_err *err);
int cg_write_u64_at(int dirfd, const char *file, uint64_t v, struct bx_err *err);
/* Reads a file; *missing is set (and 0 returned) when it does not exist. */
int cg_read_at(int dirfd, const char *file, size_t max, char **out, int *missing,
               struct bx_err *err);
void cg_cpus_unref(struct cg_cpus **pc);

typedef int (*subdir_fn)(int dirfd, const char *name, void *arg, struct bx_err *err);

/* Calls fn for every subdirectory of dirfd (the child cgroups). */
int cg_for_each_subdir(int dirfd, subdir_fn fn, void *arg, struct bx_err *err);

/* The kill-wait-rmdir loop shared by destroy and stale cleanup.  dir_fd[i]
 * are the cgroups (set to -1 once removed), parent_fd[i]/name their
 * location.  Returns 0 when all are gone, REAP_BUSY (err EBUSY) when the
 * deadline passed first, -1 on other errors. */
#define REAP_BUSY (-2)
int cg_reap(int n, int v2, const int *parent_fd, int *dir_fd, const char *name, unsigned wait_ms,
            struct bx_err *err);

/* Used by the unit tests only. */
enum cg_layout cg_layout(const struct cg_ctx *ctx);
/* For v2: an O_RDONLY|O_DIRECTORY fd of the run cgroup usable with clone3
 * CLONE_INTO_CGROUP, owned by the run (do not close; valid until the run is
 * freed); -1 on v1/hybrid. */
int cg_run_dirfd(struct cg_run *run);

#endif
