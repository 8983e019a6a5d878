/* Child processes supervised by the event loop (skopeo, umoci, runsc).
 *
 * A child gets an explicit argv and environment (never a shell), its stdio
 * from the caller's fds (or /dev/null), a fresh session so the whole group
 * can be signalled, and optionally joins cgroups before exec (so it is
 * accounted from its first instruction).  Its exit is seen through a pidfd
 * in the loop, never through SIGCHLD handlers.  proc_free() on a child that
 * is still running kills its group and reaps it in the background, so no
 * path leaves a zombie or an orphan.  Every child has PR_SET_PDEATHSIG
 * SIGKILL: if Boxer itself is killed, its direct children die with it. */
#ifndef BOXER_PROC_H
#define BOXER_PROC_H

#include <sys/types.h>

#include "err.h"
#include "loop.h"

struct proc;

struct proc_spec {
    const char *path;   /* absolute path of the program */
    char *const *argv;  /* NULL-terminated */
    char *const *envp;  /* NULL-terminated, explicit and minimal */
    int stdin_fd;       /* -1: /dev/null */
    int stdout_fd;      /* -1: /dev/null */
    int stderr_fd;      /* -1: /dev/null */
    const int *join_fds; /* cgroup.procs fds the child writes "0" to before exec */
    int n_join_fds;
    const char *cwd;    /* NULL: "/" */
    /* Written to the child's /proc/self/oom_score_adj before exec (-1000 ..
     * 1000; 0 by default): Boxer protects itself with -1000, which children
     * must not inherit, and sandboxes ask for a positive value so the OOM
     * killer prefers them. */
    int oom_score_adj;
    /* Optional, zero means unset: RLIMIT_FSIZE (a bigger write fails with
     * EFBIG or SIGXFSZ), and uid/gid the child switches to (with no
     * supplementary groups) after joining its cgroups and entering cwd,
     * so cwd may lie below directories that uid cannot search. */
    unsigned long long fsize_limit;
    /* When set (needs root): the child enters a private mount namespace
     * where cwd is bind-mounted (nosuid, nodev) at this existing directory,
     * and starts there; for a child that must not see the path to cwd. */
    const char *cwd_bind;
    int set_ids;
    uid_t uid;
    gid_t gid;
};

/* status is a wait status (WIFEXITED...). */
typedef void (*proc_exit_cb)(void *arg, int status);

/* Callbacks: cb runs from the loop when the child has exited, never inside
 * proc_spawn or proc_fork (a child that exits at once is still seen through
 * its pidfd or SIGCHLD on a later turn).  When they return -1 no child is
 * left and cb never runs. */

int proc_spawn(struct loop *l, const struct proc_spec *spec, proc_exit_cb cb, void *arg,
               struct proc **out, struct bx_err *err);
/* Runs fn(fn_arg) in a forked child (oom_score_adj 0), without exec, for blocking work that
 * must stay off the loop (copying a run's /output into the store).  The
 * child starts a new session, dies with Boxer, and closes every descriptor
 * but 0..2 and keep_fds before fn runs; its exit status is fn's return value
 * (0..127).  cb and proc_free behave as for proc_spawn. */
int proc_fork(struct loop *l, const int *keep_fds, int n_keep, int (*fn)(void *fn_arg),
              void *fn_arg, proc_exit_cb cb, void *arg, struct proc **out, struct bx_err *err);
pid_t proc_pid(const struct proc *p);
/* Sends sig to the child's process group (and the child). */
void proc_kill(struct proc *p, int sig);
/* Frees the handle; a child still running is SIGKILLed and reaped later by
 * the loop, and its callback is never called. */
void proc_free(struct proc **p);
/* Reaps children that have no pidfd (kernels or tools without pidfd_open);
 * the owner of SIGCHLD (boxer.c's signalfd) calls it on every SIGCHLD. */
void proc_sigchld(void);
/* Number of children still being reaped in the background (for shutdown). */
int proc_orphans(void);
/* At shutdown, once the loop has stopped: kills and reaps every child given
 * up by proc_free, so none is left a zombie and no handle leaks.  Call
 * before the loop is freed. */
void proc_reap_orphans(void);

/* Runs a program to completion outside the loop (start-up probes only):
 * returns its wait status, or -1 (err set) when it cannot run or exceeds
 * timeout_ms (then it is killed). */
int proc_run_sync(const struct proc_spec *spec, int timeout_ms, struct bx_err *err);

/* Finds an executable by name in a PATH string; writes the absolute path. */
int proc_find_in_path(const char *name, const char *path_env, char *out, size_t cap);

#endif
