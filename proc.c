#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

struct proc {
    struct loop *loop;
    pid_t pid;
    int pidfd;
    proc_exit_cb cb;
    void *arg;
    int exited;
    int orphaned;
    struct proc *next_waiting; /* children watched through SIGCHLD */
    struct proc *next_orphan;  /* killed children nobody waits for */
};

static int orphan_count;
/* Handles given up by proc_free before their child was reaped. */
static struct proc *orphans;
/* Children without a pidfd (pidfd_open missing: old kernels, valgrind),
 * reaped when proc_sigchld() runs. */
static struct proc *waiting;

static int sys_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* In a child: dies with Boxer.  A Boxer killed with SIGKILL runs no
 * cleanup, and a pull, unpack, sandbox or capture it started must not go on
 * writing into a home the next Boxer is cleaning up.  The parent may already
 * be gone by the time the child gets here: then it exits at once. */
static int die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return -1;
    if (getppid() != parent) {
        errno = ESRCH;
        return -1;
    }
    return 0;
}

/* In a child: its own OOM preference instead of Boxer's -1000 (raising
 * the value needs no privilege).  oom is the decimal text, made before fork. */
static int set_oom_score_adj(const char *oom)
{
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    size_t len = strlen(oom);
    ssize_t n;
    if (fd < 0)
        return -1;
    do {
        n = write(fd, oom, len);
    } while (n < 0 && errno == EINTR);
    close(fd);
    if (n != (ssize_t)len) {
        if (n >= 0)
            errno = EIO;
        return -1;
    }
    return 0;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const struct proc_spec *s, const char *oom, int errfd, pid_t parent)
{
    sigset_t none;
    int fds[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd};
    int err;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (die_with_parent(parent) < 0 || set_oom_score_adj(oom) < 0)
        goto fail;
    for (int i = 0; i < s->n_join_fds; i++) {
        if (write(s->join_fds[i], "0", 1) != 1)
            goto fail;
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0) {
            int nfd = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
            if (nfd < 0)
                goto fail;
            fds[i] = nfd;
        }
    }
    /* Move the stdio fds out of 0..2 first so dup2 cannot clobber one
     * with another. */
    for (int i = 0; i < 3; i++) {
        int nfd = fcntl(fds[i], F_DUPFD, 10);
        if (nfd < 0)
            goto fail;
        fds[i] = nfd;
    }
    for (int i = 0; i < 3; i++) {
        if (dup2(fds[i], i) < 0)
            goto fail;
    }
    /* Everything else Boxer has open is O_CLOEXEC; close what is left
     * anyway so no descriptor leaks into a sandbox runtime. */
    if ((errfd > 3 && syscall(SYS_close_range, 3u, (unsigned)errfd - 1, 0u) < 0) ||
        syscall(SYS_close_range, (unsigned)errfd + 1, ~0u, 0u) < 0) {
        for (int fd = 3; fd < 1024; fd++)
            if (fd != errfd)
                close(fd);
    }
    if (s->cwd_bind && s->cwd) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount(s->cwd, s->cwd_bind, NULL, MS_BIND, NULL) < 0 ||
            mount(NULL, s->cwd_bind, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) < 0 ||
            chdir(s->cwd_bind) < 0)
            goto fail;
    } else if (chdir(s->cwd ? s->cwd : "/") < 0) {
        goto fail;
    }
    if (s->fsize_limit) {
        struct rlimit rl = {(rlim_t)s->fsize_limit, (rlim_t)s->fsize_limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
            goto fail;
    }
    if (s->set_ids) {
        if (setgroups(0, NULL) < 0 || setresgid(s->gid, s->gid, s->gid) < 0 ||
            setresuid(s->uid, s->uid, s->uid) < 0)
            goto fail;
        /* A credential change clears the parent-death signal: set it
         * again, so an unprivileged child still dies with Boxer. */
        if (die_with_parent(parent) < 0)
            goto fail;
    }
    execve(s->path, s->argv, s->envp);
fail:
    err = errno;
    if (errfd >= 0) {
        ssize_t n = write(errfd, &err, sizeof(err));
        (void)n;
    }
    _exit(127);
}

/* Reaps p if it has exited; returns 1 when it did (p may be freed). */
static int try_reap(struct proc *p)
{
    int status = 0;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return 0;
    if (p->pidfd >= 0) {
        loop_del(p->loop, p->pidfd);
        bx_close(&p->pidfd);
    }
    p->exited = 1;
    if (p->orphaned) {
        for (struct proc **pp = &orphans; *pp; pp = &(*pp)->next_orphan) {
            if (*pp == p) {
                *pp = p->next_orphan;
                break;
            }
        }
        orphan_count--;
        free(p);
        return 1;
    }
    if (p->cb)
        p->cb(p->arg, status);
    return 1;
}

static void on_pidfd(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    try_reap(arg);
}

void proc_sigchld(void)
{
    struct proc **pp = &waiting;
    while (*pp) {
        struct proc *p = *pp;
        /* Unlink first: the exit callback may spawn or free children. */
        *pp = p->next_waiting;
        p->next_waiting = NULL;
        if (!try_reap(p)) {
            p->next_waiting = *pp;
            *pp = p;
            pp = &p->next_waiting;
        }
    }
}

/* Forks and execs; returns the child's pid once it has exec'd, or -1 with
 * err set (the child, if any, already reaped). */
static pid_t start_child(const struct proc_spec *spec, struct bx_err *err)
{
    int errpipe[2] = {-1, -1};
    int child_errno = 0;
    ssize_t n;
    pid_t pid;
    char oom[16];

    pid_t parent = getpid();

    if (spec->oom_score_adj < -1000 || spec->oom_score_adj > 1000)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "oom_score_adj %d out of range",
                          spec->oom_score_adj);
    snprintf(oom, sizeof(oom), "%d", spec->oom_score_adj);
    if (pipe2(errpipe, O_CLOEXEC) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "pipe2");
    pid = fork();
    if (pid < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fork %s", spec->path);
        bx_close(&errpipe[0]);
        bx_close(&errpipe[1]);
        return -1;
    }
    if (pid == 0) {
        close(errpipe[0]);
        child_exec(spec, oom, errpipe[1], parent);
    }
    bx_close(&errpipe[1]);
    /* Blocks only until the child execs (CLOEXEC closes the pipe) or fails. */
    do {
        n = read(errpipe[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    bx_close(&errpipe[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        waitpid(pid, NULL, 0);
        errno = child_errno;
        return bx_err_sys(err, BX_E_INTERNAL, "exec %s", spec->path);
    }
    return pid;
}

static void kill_and_reap(pid_t pid)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Watches p's exit from the loop (pidfd, else SIGCHLD); on failure the
 * child is killed and reaped. */
static int watch(struct proc *p, struct proc **out, struct bx_err *err)
{
    p->pidfd = sys_pidfd_open(p->pid);
    if (p->pidfd < 0 && errno == ENOSYS) {
        p->next_waiting = waiting;
        waiting = p;
        /* An exit before this point is still a pending SIGCHLD, seen
         * by the loop's signalfd on its next turn. */
        *out = p;
        return 0;
    }
    if (p->pidfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "pidfd_open");
        kill_and_reap(p->pid);
        return -1;
    }
    if (loop_add(p->loop, p->pidfd, EPOLLIN, on_pidfd, p, err) < 0) {
        kill_and_reap(p->pid);
        bx_close(&p->pidfd);
        return -1;
    }
    *out = p;
    return 0;
}

/* A proc not yet started (no pid, no pidfd) for the loop l; NULL with err
 * set when out of memory. */
static struct proc *proc_alloc(struct loop *l, proc_exit_cb cb, void *arg, struct bx_err *err)
{
    struct proc *p = calloc(1, sizeof(*p));
    if (!p) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    p->loop = l;
    p->pidfd = -1;
    p->cb = cb;
    p->arg = arg;
    return p;
}

int proc_spawn(struct loop *l, const struct proc_spec *spec, proc_exit_cb cb, void *arg,
               struct proc **out, struct bx_err *err)
{
    struct proc *p = proc_alloc(l, cb, arg, err);

    if (!p)
        return -1;
    p->pid = start_child(spec, err);
    if (p->pid < 0)
        goto fail;
    if (watch(p, out, err) < 0)
        goto fail;
    return 0;
fail:
    free(p);
    return -1;
}

/* Closes every descriptor from 3 up except those in keep (any order). */
static void close_all_but(const int *keep, int n)
{
    unsigned from = 3;
    for (;;) {
        unsigned next = ~0u;
        /* The smallest kept fd at or above `from`. */
        for (int i = 0; i < n; i++)
            if (keep[i] >= (int)from && (unsigned)keep[i] < next)
                next = (unsigned)keep[i];
        if (next > from && syscall(SYS_close_range, from, next - 1, 0u) < 0) {
            for (unsigned fd = from; fd < next && fd < 65536; fd++)
                close((int)fd);
        }
        if (next == ~0u)
            return;
        from = next + 1;
    }
}

int proc_fork(struct loop *l, const int *keep_fds, int n_keep, int (*fn)(void *fn_arg),
              void *fn_arg, proc_exit_cb cb, void *arg, struct proc **out, struct bx_err *err)
{
    struct proc *p = proc_alloc(l, cb, arg, err);
    pid_t parent = getpid();

    if (!p)
        return -1;
    p->pid = fork();
    if (p->pid < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fork");
        free(p);
        return -1;
    }
    if (p->pid == 0) {
        /* Boxer is single-threaded, so the copy of its memory is
         * consistent and fn may allocate.  Only the descriptors fn needs
         * stay open: a client socket held here would not close (no FIN)
         * when the parent closes it. */
        setsid();
        if (die_with_parent(parent) < 0 || set_oom_score_adj("0") < 0)
            _exit(127);
        close_all_but(keep_fds, n_keep);
        _exit(fn(fn_arg) & 0x7f);
    }
    if (watch(p, out, err) < 0) {
        free(p);
        return -1;
    }
    return 0;
}

pid_t proc_pid(const struct proc *p)
{
    return p->pid;
}

void proc_kill(struct proc *p, int sig)
{
    if (!p || p->exited)
        return;
    /* The child called setsid(): its pid is its process group. */
    kill(-p->pid, sig);
    kill(p->pid, sig);
}

void proc_free(struct proc **pp)
{
    struct proc *p = *pp;
    if (!p)
        return;
    *pp = NULL;
    if (p->exited) {
        free(p);
        return;
    }
    proc_kill(p, SIGKILL);
    p->orphaned = 1;
    p->cb = NULL;
    p->next_orphan = orphans;
    orphans = p;
    orphan_count++;
}

void proc_reap_orphans(void)
{
    while (orphans) {
        struct proc *p = orphans;
        orphans = p->next_orphan;
        /* Already SIGKILLed: this wait is short. */
        proc_kill(p, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        if (p->pidfd >= 0) {
            loop_del(p->loop, p->pidfd);
            bx_close(&p->pidfd);
        }
        for (struct proc **pp = &waiting; *pp; pp = &(*pp)->next_waiting) {
            if (*pp == p) {
                *pp = p->next_waiting;
                break;
            }
        }
        orphan_count--;
        free(p);
    }
}

int proc_orphans(void)
{
    return orphan_count;
}

int proc_run_sync(const struct proc_spec *spec, int timeout_ms, struct bx_err *err)
{
    struct pollfd pfd;
    int status = 0, pidfd, r;
    pid_t pid = start_child(spec, err);

    if (pid < 0)
        return -1;
    pidfd = sys_pidfd_open(pid);
    if (pidfd >= 0) {
        pfd.fd = pidfd;
        pfd.events = POLLIN;
        do {
            r = poll(&pfd, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        close(pidfd);
        if (r == 0) {
            kill_and_reap(pid);
            return bx_err_set(err, BX_E_INTERNAL, ETIMEDOUT, "%s timed out", spec->path);
        }
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return bx_err_sys(err, BX_E_INTERNAL, "waitpid");
    }
    return status;
}

int proc_find_in_path(const char *name, const char *path_env, char *out, size_t cap)
{
    const char *p = path_env ? path_env : BX_DEFAULT_PATH;
    if (strchr(name, '/')) {
        if (access(name, X_OK) != 0 || strlen(name) + 1 > cap)
            return -1;
        memcpy(out, name, strlen(name) + 1);
        return 0;
    }
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        if (dl > 0 && dl + 1 + strlen(name) + 1 <= cap) {
            memcpy(out, p, dl);
            out[dl] = '/';
            memcpy(out + dl + 1, name, strlen(name) + 1);
            if (access(out, X_OK) == 0)
                return 0;
        }
        p += dl + (colon ? 1 : 0);
    }
    return -1;
}
