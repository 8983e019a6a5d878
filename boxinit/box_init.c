/* PID 1 of a box (built static with musl, embedded into boxer, bind-mounted
 * read-only at /.boxer/init).  A box's processes are started by `runsc exec`
 * and re-parented to PID 1 when their parent dies: without a reaper they
 * would stay zombies for the life of the box.  So this program only reaps,
 * and leaves on SIGTERM after a sync (the box is being stopped; runsc then
 * ends the sandbox).  It relies on nothing in the image.
 *
 * The same binary is the exec helper for an exec with a timeout:
 *   /.boxer/init --exec <timeout_ms> -- <program> [args...]
 * runs the program in the helper's own process group (runsc made the helper
 * its leader) and, past the timeout, kills that whole group, itself
 * included (killing the `runsc exec` client on the host would leave the
 * command running in the box): runsc then reports 137.  Otherwise it exits
 * with the program's code, or 128+N for signal N; 127 (126) when the
 * program cannot be found (run).  A signal sent to the group (see --kill)
 * reaches the program; the helper itself catches the usual ones and goes on
 * waiting.
 *
 * And the signal helper of the exec API (issue 14):
 *   /.boxer/init --kill <pid> <signal number>...
 * sends each signal to the process group led by <pid> (the process `runsc
 * exec` started: the command, or the timeout helper above), or to <pid>
 * alone when it leads no group.  Exit 0, 3 when <pid> is gone.
 *
 * And the file helper, for files in and out of a box:
 *   /.boxer/init --put <path>   stdin to <path> (parents made, 0755)
 *   /.boxer/init --get <path>   <path> to stdout
 * The path is walked here, inside the sandbox, so a symlink the box made
 * resolves in the box's own filesystem, never on the host.  Exit 0, 2 when
 * <path> is absent or not a regular file (--get) or cannot be made (--put),
 * 1 on an I/O error; the reason goes to stderr.
 *
 * And the terminal shell starter:
 *   /.boxer/init --shell <path>
 * becomes <path> when the box has it as an executable, else /bin/sh (a
 * shell the image lacks falls back without runsc's own error reaching the
 * terminal); 127 when neither exists.
 *
 * And the terminal command starter (issue 15):
 *   /.boxer/init --run -- <cmd> [args...]
 * becomes <cmd> (PATH lookup) in this same process, so it stays the
 * terminal's foreground process; 127 with a message when it is missing,
 * 126 when it cannot be run (runsc's own failure would be an unclear 128). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig)
{
    (void)sig;
}

/* What a client may send to an exec's group (the API's table): the helper
 * survives them; the program gets them with their default meaning (exec
 * resets caught signals to their default). */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM,
                                SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU, SIGWINCH, SIGCONT, SIGABRT};

static int kill_helper(int argc, char **argv)
{
    char *end;
    long pid = strtol(argv[2], &end, 10), pg;
    if (*end || pid <= 0)
        return 2;
    pg = getpgid((pid_t)pid);
    if (pg < 0)
        return 3;
    for (int i = 3; i < argc; i++) {
        long sig = strtol(argv[i], &end, 10);
        if (*end || sig <= 0 || sig > 64)
            return 2;
        if (kill(pg == pid ? -(pid_t)pid : (pid_t)pid, (int)sig) < 0)
            return errno == ESRCH ? 3 : 1;
    }
    return 0;
}

static int exec_helper(long long timeout_ms, char **argv)
{
    sigset_t set;
    struct sigaction sa;
    struct timespec now, deadline, left;
    pid_t pid;
    int status;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return 126;
    /* Lead a group holding the program, so one kill reaches both. */
    if (getpgrp() != getpid())
        setpgid(0, 0);
    sa.sa_handler = on_signal;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        sigaction(forwarded[i], &sa, NULL);
    pid = fork();
    if (pid < 0) {
        perror("boxer exec helper: fork");
        return 126;
    }
    if (pid == 0) {
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        execvp(argv[0], argv);
        fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = deadline.tv_sec - now.tv_sec;
        left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) {
            left.tv_sec--;
            left.tv_nsec += 1000000000L;
        }
        if (left.tv_sec < 0) {
            kill(0, SIGKILL); /* the group, this helper included */
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return 137;
        }
        sigtimedwait(&set, NULL, &left);
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int copy_fd(int in, int out)
{
    static char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            off += w;
        }
    }
}

/* mkdir -p of path's parent directories. */
static void make_parents(char *path)
{
    for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        (void)mkdir(path, 0755); /* EEXIST, or the open below says why */
        *s = '/';
    }
}

static int file_put(char *path)
{
    int fd;
    if (path[0] != '/') {
        fprintf(stderr, "%s: not an absolute path\n", path);
        return 2;
    }
    make_parents(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 2;
    }
    if (copy_fd(0, fd) < 0 || close(fd) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static int file_get(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == ENXIO ? 2 : 1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: not a regular file\n", path);
        close(fd);
        return 2;
    }
    if (copy_fd(fd, 1) < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        close(fd);
        return 1;
    }
    close(fd);
    return 0;
}

static int run(char **argv)
{
    int e;
    execvp(argv[0], argv);
    e = errno;
    fprintf(stderr, "boxer: %s: %s\n", argv[0], strerror(e));
    return e == ENOENT || e == ENOTDIR ? 127 : 126;
}

static int shell(char *path)
{
    char *sh[] = {"/bin/sh", NULL};
    char *want[] = {path, NULL};
    if (access(path, X_OK) == 0)
        execv(path, want);
    execv(sh[0], sh);
    fprintf(stderr, "boxer: no shell: %s and /bin/sh: %s\n", path, strerror(errno));
    return 127;
}

int main(int argc, char **argv)
{
    sigset_t set;
    struct sigaction sa;
    int sig;

    if (argc >= 5 && strcmp(argv[1], "--exec") == 0 && strcmp(argv[3], "--") == 0) {
        char *end;
        long long ms = strtoll(argv[2], &end, 10);
        if (*end || ms <= 0)
            return 126;
        return exec_helper(ms, argv + 4);
    }
    if (argc >= 4 && strcmp(argv[1], "--kill") == 0)
        return kill_helper(argc, argv);
    if (argc == 3 && strcmp(argv[1], "--put") == 0)
        return file_put(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--get") == 0)
        return file_get(argv[2]);
    if (argc >= 4 && strcmp(argv[1], "--run") == 0 && strcmp(argv[2], "--") == 0)
        return run(argv + 3);
    if (argc == 3 && strcmp(argv[1], "--shell") == 0)
        return shell(argv[2]);
    /* A PID 1 drops signals whose disposition is the default: give them a
     * (never run: they stay blocked) handler so sigwait sees them. */
    sa.sa_handler = on_signal;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGCHLD, &sa, NULL) < 0)
        return 1;

    /* Every signal we care about is taken synchronously: no handler runs
     * between the reaping calls. */
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return 1;
    for (;;) {
        /* Reap everything already dead before sleeping (a SIGCHLD can stand
         * for many children). */
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            /* gVisor keeps file data written in the box in the sentry's
             * own cache; Boxer ends the sandbox (cgroup kill) as soon as
             * this process has exited, which could lose what was not yet
             * written back to the box's disk.  sync first. */
            sync();
            return 0;
        }
    }
}
