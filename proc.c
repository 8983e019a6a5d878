#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

/* ---- spares ---- */

/* What proc_spare_spawn hands a spare: this header, then NUL-terminated
 * strings (path, cwd if SPARE_CWD, cwd_bind if SPARE_CWD_BIND, argv, envp)
 * and, as SCM_RIGHTS, the stdio fds marked in `given`, in order. */
#define SPARE_MSG_MAX 65536
#define SPARE_JOIN_MAX 8
#define SPARE_CWD 1u
#define SPARE_CWD_BIND 2u

struct spare_hdr {
    uint64_t fsize_limit;
    uint32_t nargv, nenv, flags, uid, gid;
    int32_t oom, set_ids;
    int32_t given[3];
};

struct proc_spare {
    struct proc *p; /* watched: a spare killed with its cgroup is reaped */
    int sock;       /* SOCK_SEQPACKET to the spare */
    int dead;
};

/* One string of a message at *off (NUL within len); NULL when malformed. */
static char *msg_str(char *buf, size_t len, size_t *off)
{
    char *s = buf + *off;
    char *nul;
    if (*off >= len)
        return NULL;
    nul = memchr(s, 0, len - *off);
    if (!nul)
        return NULL;
    *off = (size_t)(nul - buf) + 1;
    return s;
}

/* In the spare: joins, waits for its spec, then goes on as child_exec. */
static void spare_child(int sock, const int *join_fds, int n_join, pid_t parent)
{
    static char buf[SPARE_MSG_MAX];
    union {
        char space[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    int keep[SPARE_JOIN_MAX + 1];
    struct spare_hdr h;
    struct iovec iov = {buf, sizeof(buf)};
    struct msghdr msg = {0};
    struct cmsghdr *c;
    struct proc_spec s = {0};
    int fds[3] = {-1, -1, -1}, nfds = 0, k = 0;
    char **argv, **envp;
    char oom[16];
    size_t off = sizeof(h);
    sigset_t none;
    ssize_t n;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    if (die_with_parent(parent) < 0 || n_join > SPARE_JOIN_MAX)
        _exit(127);
    /* what ps shows for it in a box's cgroup until it execs */
    prctl(PR_SET_NAME, "boxer-spare");
    keep[0] = sock;
    for (int i = 0; i < n_join; i++)
        keep[1 + i] = join_fds[i];
    /* A client socket held here would not close when the parent closes it. */
    close_all_but(keep, n_join + 1);
    for (int i = 0; i < n_join; i++) {
        if (write(join_fds[i], "0", 1) != 1)
            _exit(127);
        close(join_fds[i]);
    }
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof(ctl.space);
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) /* freed unused */
        _exit(0);
    for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (nfds > 3)
                _exit(127);
            memcpy(fds, CMSG_DATA(c), (size_t)nfds * sizeof(int));
        }
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < sizeof(h))
        _exit(127);
    memcpy(&h, buf, sizeof(h));
    if (h.nargv < 1 || h.nargv > SPARE_MSG_MAX / 2 || h.nenv > SPARE_MSG_MAX / 2)
        _exit(127);
    argv = calloc(h.nargv + 1, sizeof(*argv));
    envp = calloc(h.nenv + 1, sizeof(*envp));
    if (!argv || !envp || !(s.path = msg_str(buf, (size_t)n, &off)))
        _exit(127);
    if ((h.flags & SPARE_CWD) && !(s.cwd = msg_str(buf, (size_t)n, &off)))
        _exit(127);
    if ((h.flags & SPARE_CWD_BIND) && !(s.cwd_bind = msg_str(buf, (size_t)n, &off)))
        _exit(127);
    for (uint32_t i = 0; i < h.nargv; i++)
        if (!(argv[i] = msg_str(buf, (size_t)n, &off)))
            _exit(127);
    for (uint32_t i = 0; i < h.nenv; i++)
        if (!(envp[i] = msg_str(buf, (size_t)n, &off)))
            _exit(127);
    s.argv = argv;
    s.envp = envp;
    s.stdin_fd = s.stdout_fd = s.stderr_fd = -1;
    for (int i = 0; i < 3; i++) {
        if (!h.given[i])
            continue;
        if (k >= nfds)
            _exit(127);
        *(i == 0 ? &s.stdin_fd : i == 1 ? &s.stdout_fd : &s.stderr_fd) = fds[k++];
    }
    s.fsize_limit = h.fsize_limit;
    s.set_ids = h.set_ids;
    s.uid = h.uid;
    s.gid = h.gid;
    snprintf(oom, sizeof(oom), "%d", (int)h.oom);
    /* Taken: from here on an EOF means exec'd, an int the errno. */
    if (send(sock, "R", 1, MSG_NOSIGNAL) != 1)
        _exit(127);
    child_exec(&s, oom, sock, parent);
}

static void spare_on_exit(void *arg, int status)
{
    struct proc_spare *s = arg;
    (void)status;
    s->dead = 1;
}

int proc_spare_new(struct loop *l, const int *join_fds, int n_join_fds, struct proc_spare **out,
                   struct bx_err *err)
{
    struct proc_spare *s;
    int sv[2];
    pid_t parent = getpid();

    *out = NULL;
    if (n_join_fds < 0 || n_join_fds > SPARE_JOIN_MAX)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "too many join fds");
    s = calloc(1, sizeof(*s));
    if (!s)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    s->sock = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        free(s);
        return bx_err_sys(err, BX_E_INTERNAL, "socketpair");
    }
    s->p = proc_alloc(l, spare_on_exit, s, err);
    if (!s->p)
        goto fail;
    s->p->pid = fork();
    if (s->p->pid < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fork");
        goto fail;
    }
    if (s->p->pid == 0) {
        close(sv[0]);
        spare_child(sv[1], join_fds, n_join_fds, parent);
    }
    bx_close(&sv[1]);
    s->sock = sv[0];
    if (watch(s->p, &s->p, err) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    free(s->p);
    bx_close(&sv[0]);
    bx_close(&sv[1]);
    free(s);
    return -1;
}

void proc_spare_free(struct proc_spare **sp)
{
    struct proc_spare *s = *sp;
    if (!s)
        return;
    *sp = NULL;
    proc_free(&s->p);
    bx_close(&s->sock);
    free(s);
}

/* Appends str and its NUL to buf; -1 when it does not fit. */
static int msg_put(char *buf, size_t *len, const char *str)
{
    size_t n = strlen(str) + 1;
    if (n > SPARE_MSG_MAX - *len)
        return -1;
    memcpy(buf + *len, str, n);
    *len += n;
    return 0;
}

/* Builds the message of spec in buf; -1 when it is too large. */
static int spare_msg(const struct proc_spec *spec, char *buf, size_t *len)
{
    struct spare_hdr h = {0};
    *len = sizeof(h);
    h.fsize_limit = spec->fsize_limit;
    h.uid = (uint32_t)spec->uid;
    h.gid = (uint32_t)spec->gid;
    h.oom = spec->oom_score_adj;
    h.set_ids = spec->set_ids;
    h.given[0] = spec->stdin_fd >= 0;
    h.given[1] = spec->stdout_fd >= 0;
    h.given[2] = spec->stderr_fd >= 0;
    if (msg_put(buf, len, spec->path) < 0)
        return -1;
    if (spec->cwd) {
        h.flags |= SPARE_CWD;
        if (msg_put(buf, len, spec->cwd) < 0)
            return -1;
    }
    if (spec->cwd_bind) {
        h.flags |= SPARE_CWD_BIND;
        if (msg_put(buf, len, spec->cwd_bind) < 0)
            return -1;
    }
    for (; spec->argv[h.nargv]; h.nargv++)
        if (msg_put(buf, len, spec->argv[h.nargv]) < 0)
            return -1;
    for (; spec->envp && spec->envp[h.nenv]; h.nenv++)
        if (msg_put(buf, len, spec->envp[h.nenv]) < 0)
            return -1;
    memcpy(buf, &h, sizeof(h));
    return 0;
}

int proc_spare_spawn(struct loop *l, struct proc_spare **sp, const struct proc_spec *spec,
                     proc_exit_cb cb, void *arg, struct proc **out, struct bx_err *err)
{
    struct proc_spare *s = *sp;
    union {
        char space[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = {0};
    struct iovec iov;
    struct cmsghdr *c;
    int fds[3], nfds = 0, child_errno = 0;
    char *buf = NULL;
    size_t len = 0;
    char ack = 0;
    ssize_t n;

    *sp = NULL;
    if (!s || s->dead || !spec->argv || !spec->argv[0])
        goto fallback;
    if (spec->oom_score_adj < -1000 || spec->oom_score_adj > 1000) {
        proc_spare_free(&s);
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "oom_score_adj %d out of range",
                          spec->oom_score_adj);
    }
    buf = malloc(SPARE_MSG_MAX);
    if (!buf || spare_msg(spec, buf, &len) < 0)
        goto fallback;
    if (spec->stdin_fd >= 0)
        fds[nfds++] = spec->stdin_fd;
    if (spec->stdout_fd >= 0)
        fds[nfds++] = spec->stdout_fd;
    if (spec->stderr_fd >= 0)
        fds[nfds++] = spec->stderr_fd;
    iov.iov_base = buf;
    iov.iov_len = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds) {
        msg.msg_control = ctl.space;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    do {
        n = sendmsg(s->sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len)
        goto fallback; /* the spare is gone */
    /* Blocks until the spare has joined (if it still had not) and exec'd,
     * as start_child does. */
    do {
        n = recv(s->sock, &ack, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || ack != 'R')
        goto fallback; /* died before it took the spec */
    do {
        n = recv(s->sock, &child_errno, sizeof(child_errno), 0);
    } while (n < 0 && errno == EINTR);
    free(buf);
    if (n != 0) {
        proc_spare_free(&s);
        errno = n == (ssize_t)sizeof(child_errno) ? child_errno : EIO;
        return bx_err_sys(err, BX_E_INTERNAL, "exec %s", spec->path);
    }
    s->p->cb = cb;
    s->p->arg = arg;
    *out = s->p;
    s->p = NULL;
    proc_spare_free(&s);
    return 0;
fallback:
    free(buf);
    proc_spare_free(&s);
    return proc_spawn(l, spec, cb, arg, out, err);
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
