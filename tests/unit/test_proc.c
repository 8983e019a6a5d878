/* Unit tests for proc.c with real children: the exit status arrives
 * through the loop and never inside proc_spawn, stdio comes from the given
 * fds (or /dev/null), join fds get "0" before exec, oom_score_adj is set
 * (and bounded), set_ids switches uid/gid after entering cwd, and every
 * failure before exec is reported by proc_spawn with the child's errno. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "proc.h"

struct exit_rec {
    struct loop *loop;
    int called;
    int status;
};

static void on_exit_cb(void *arg, int status)
{
    struct exit_rec *r = arg;
    r->called++;
    r->status = status;
    loop_stop(r->loop);
}

static void on_timeout(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

/* A loop for one test; with r, the child's exit stops it. */
static struct loop *make_loop(struct exit_rec *r)
{
    struct loop *l = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(loop_new(&l, &err), 0);
    if (r)
        r->loop = l;
    return l;
}

/* Runs l until r's child has exited (10 s at most): called back once. */
static void wait_exit(struct loop *l, struct exit_rec *r)
{
    struct bx_err err;
    bx_err_clear(&err);
    loop_timer_add(l, 10000, on_timeout, NULL);
    ck_assert_int_eq(loop_run(l, &err), 0);
    ck_assert_int_eq(r->called, 1);
}

static char *sh_envp[] = {"PATH=/usr/bin:/bin", NULL};

static struct proc_spec sh_spec(char **argv)
{
    return (struct proc_spec){.path = "/bin/sh",
                              .argv = argv,
                              .envp = sh_envp,
                              .stdin_fd = -1,
                              .stdout_fd = -1,
                              .stderr_fd = -1};
}

/* Spawns spec, runs the loop until the child exits (10 s at most) and
 * returns its wait status. */
static int run_child(const struct proc_spec *spec)
{
    struct exit_rec r = {0};
    struct loop *l = make_loop(&r);
    struct proc *p = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_msg(proc_spawn(l, spec, on_exit_cb, &r, &p, &err) == 0, "%s", err.msg);
    /* Never called back inside proc_spawn, even for a child that exits at once. */
    ck_assert_int_eq(r.called, 0);
    ck_assert_int_gt(proc_pid(p), 0);
    wait_exit(l, &r);
    proc_free(&p);
    ck_assert_ptr_null(p);
    loop_free(&l);
    return r.status;
}

/* What the child wrote to stdout (run with stdout on a pipe). */
static void run_capture(struct proc_spec *spec, char *out, size_t cap, int *status)
{
    int p[2];
    ssize_t n;
    size_t len = 0;
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    spec->stdout_fd = p[1];
    *status = run_child(spec);
    close(p[1]);
    while (len + 1 < cap && (n = read(p[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(p[0]);
}

START_TEST(test_exit_status)
{
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    struct proc_spec s = sh_spec(argv);
    int st = run_child(&s);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 3);
}
END_TEST

START_TEST(test_killed_status)
{
    char *argv[] = {"sh", "-c", "kill -9 $$", NULL};
    struct proc_spec s = sh_spec(argv);
    int st = run_child(&s);
    ck_assert(WIFSIGNALED(st));
    ck_assert_int_eq(WTERMSIG(st), SIGKILL);
}
END_TEST

START_TEST(test_stdio_fds)
{
    char *argv[] = {"sh", "-c", "read x; echo \"out:$x\"; echo err >&2", NULL};
    struct proc_spec s = sh_spec(argv);
    int in[2], errp[2], st;
    char out[128], errbuf[64];
    ssize_t n;
    ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(errp, O_CLOEXEC), 0);
    ck_assert_int_eq(write(in[1], "hello\n", 6), 6);
    close(in[1]);
    s.stdin_fd = in[0];
    s.stderr_fd = errp[1];
    run_capture(&s, out, sizeof(out), &st);
    close(in[0]);
    close(errp[1]);
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    ck_assert_str_eq(out, "out:hello\n");
    n = read(errp[0], errbuf, sizeof(errbuf) - 1);
    ck_assert_int_eq(n, 4);
    errbuf[n] = '\0';
    ck_assert_str_eq(errbuf, "err\n");
    close(errp[0]);
}
END_TEST

START_TEST(test_unset_stdio_is_dev_null_and_no_fd_leaks)
{
    /* fd 0 and 2 are /dev/null; nothing but 0..2 (and the fd ls opens
     * for the listing) is open in the child. */
    char *argv[] = {"sh", "-c",
                    "readlink /proc/self/fd/0; readlink /proc/self/fd/2; "
                    "ls /proc/self/fd | sort -n | tr '\\n' ' '",
                    NULL};
    struct proc_spec s = sh_spec(argv);
    int leak = open("/dev/null", O_RDONLY); /* not O_CLOEXEC on purpose */
    int st;
    char out[256];
    ck_assert_int_ge(leak, 3);
    run_capture(&s, out, sizeof(out), &st);
    close(leak);
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    ck_assert_str_eq(out, "/dev/null\n/dev/null\n0 1 2 3 ");
}
END_TEST

START_TEST(test_cwd_and_env)
{
    char *argv[] = {"sh", "-c", "pwd; echo $PATH", NULL};
    struct proc_spec s = sh_spec(argv);
    int st;
    char out[256];
    s.cwd = "/tmp";
    run_capture(&s, out, sizeof(out), &st);
    ck_assert_str_eq(out, "/tmp\n/usr/bin:/bin\n");
    s.cwd = NULL; /* "/" */
    run_capture(&s, out, sizeof(out), &st);
    ck_assert_str_eq(out, "/\n/usr/bin:/bin\n");
}
END_TEST

START_TEST(test_join_fds_get_zero_before_exec)
{
    char *argv[] = {"sh", "-c", "exit 0", NULL};
    struct proc_spec s = sh_spec(argv);
    int a[2], b[2], fds[2];
    char buf[8];
    ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
    fds[0] = a[1];
    fds[1] = b[1];
    s.join_fds = fds;
    s.n_join_fds = 2;
    ck_assert_int_eq(WEXITSTATUS(run_child(&s)), 0);
    close(a[1]);
    close(b[1]);
    ck_assert_int_eq(read(a[0], buf, sizeof(buf)), 1);
    ck_assert_int_eq(buf[0], '0');
    ck_assert_int_eq(read(b[0], buf, sizeof(buf)), 1);
    ck_assert_int_eq(buf[0], '0');
    close(a[0]);
    close(b[0]);
}
END_TEST

/* A join fd that cannot be written (a cgroup the child may not enter):
 * no exec, proc_spawn fails with the child's errno, no callback. */
START_TEST(test_join_fd_failure_reported)
{
    char *argv[] = {"sh", "-c", "exit 0", NULL};
    struct proc_spec s = sh_spec(argv);
    struct loop *l = make_loop(NULL);
    struct proc *p = NULL;
    struct exit_rec r = {0};
    struct bx_err err;
    int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
    bx_err_clear(&err);
    s.join_fds = &ro;
    s.n_join_fds = 1;
    ck_assert_int_eq(proc_spawn(l, &s, on_exit_cb, &r, &p, &err), -1);
    ck_assert_int_eq(err.status, 500);
    ck_assert_int_eq(err.sys_errno, EBADF);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(r.called, 0);
    close(ro);
    loop_free(&l);
}
END_TEST

START_TEST(test_exec_failure_reported)
{
    char *argv[] = {"nope", NULL};
    struct proc_spec s = sh_spec(argv);
    struct loop *l = make_loop(NULL);
    struct proc *p = NULL;
    struct exit_rec r = {0};
    struct bx_err err;
    bx_err_clear(&err);
    s.path = "/nonexistent/nope";
    ck_assert_int_eq(proc_spawn(l, &s, on_exit_cb, &r, &p, &err), -1);
    ck_assert_int_eq(err.sys_errno, ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/nope"));
    ck_assert_int_eq(r.called, 0);
    loop_free(&l);
}
END_TEST

START_TEST(test_oom_score_adj)
{
    char *argv[] = {"sh", "-c", "cat /proc/self/oom_score_adj", NULL};
    struct proc_spec s = sh_spec(argv);
    struct loop *l = NULL;
    struct proc *p = NULL;
    struct bx_err err;
    int st;
    char out[32];
    s.oom_score_adj = 500;
    run_capture(&s, out, sizeof(out), &st);
    ck_assert_str_eq(out, "500\n");
    s.oom_score_adj = 0; /* not inherited from the parent */
    run_capture(&s, out, sizeof(out), &st);
    ck_assert_str_eq(out, "0\n");
    /* Out of range: refused before any fork. */
    l = make_loop(NULL);
    bx_err_clear(&err);
    s.oom_score_adj = 1001;
    ck_assert_int_eq(proc_spawn(l, &s, on_exit_cb, NULL, &p, &err), -1);
    ck_assert_int_eq(err.sys_errno, EINVAL);
    s.oom_score_adj = -1001;
    ck_assert_int_eq(proc_spawn(l, &s, on_exit_cb, NULL, &p, &err), -1);
    ck_assert_ptr_null(p);
    loop_free(&l);
}
END_TEST

START_TEST(test_set_ids_after_cwd)
{
    /* cwd below a directory only root may search: entered before the ids
     * change, as proc.h promises. */
    char dir[] = "/tmp/test_proc.XXXXXX";
    char sub[64];
    char *argv[] = {"sh", "-c", "id -u; id -g; id -G; pwd", NULL};
    struct proc_spec s = sh_spec(argv);
    int st;
    char out[256], want[128];
    if (geteuid() != 0)
        ck_abort_msg("test_proc needs root (set_ids)");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0700), 0);
    snprintf(sub, sizeof(sub), "%s/w", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    s.cwd = sub;
    s.set_ids = 1;
    s.uid = 65534;
    s.gid = 65533;
    run_capture(&s, out, sizeof(out), &st);
    rmdir(sub);
    rmdir(dir);
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    snprintf(want, sizeof(want), "65534\n65533\n65533\n%s\n", sub);
    ck_assert_str_eq(out, want);
}
END_TEST

/* In a child that is no longer root: set_ids to root must fail, reported
 * by proc_run_sync with EPERM (exit 0 when it was). */
static int set_ids_unprivileged(void *arg)
{
    char *argv[] = {"sh", "-c", "exit 0", NULL};
    struct proc_spec s = sh_spec(argv);
    struct bx_err err;
    (void)arg;
    bx_err_clear(&err);
    /* Dumpable again, so /proc/self stays ours (oom_score_adj). */
    if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0 ||
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return 10;
    s.set_ids = 1;
    s.uid = 0;
    s.gid = 0;
    if (proc_run_sync(&s, 5000, &err) != -1)
        return 11;
    return err.sys_errno == EPERM ? 0 : 12;
}

START_TEST(test_set_ids_failure_reported)
{
    struct exit_rec r = {0};
    struct loop *l = make_loop(&r);
    struct proc *p = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(proc_fork(l, NULL, 0, set_ids_unprivileged, NULL, on_exit_cb, &r, &p, &err),
                     0);
    ck_assert_int_eq(r.called, 0);
    wait_exit(l, &r);
    ck_assert(WIFEXITED(r.status));
    ck_assert_int_eq(WEXITSTATUS(r.status), 0);
    proc_free(&p);
    loop_free(&l);
}
END_TEST

START_TEST(test_free_running_child_no_callback)
{
    char *argv[] = {"sh", "-c", "sleep 30", NULL};
    struct proc_spec s = sh_spec(argv);
    struct exit_rec r = {0};
    struct loop *l = make_loop(&r);
    struct proc *p = NULL;
    struct bx_err err;
    pid_t pid;
    bx_err_clear(&err);
    ck_assert_int_eq(proc_spawn(l, &s, on_exit_cb, &r, &p, &err), 0);
    pid = proc_pid(p);
    proc_free(&p); /* killed, reaped later, never called back */
    proc_reap_orphans();
    ck_assert_int_eq(proc_orphans(), 0);
    ck_assert_int_eq(kill(pid, 0), -1);
    ck_assert_int_eq(errno, ESRCH);
    ck_assert_int_eq(r.called, 0);
    loop_free(&l);
}
END_TEST

START_TEST(test_find_in_path)
{
    char out[256];
    ck_assert_int_eq(proc_find_in_path("sh", "/nonexistent:/bin", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/bin/sh");
    ck_assert_int_eq(proc_find_in_path("no-such-tool-x", "/bin:/usr/bin", out, sizeof(out)), -1);
}
END_TEST

static Suite *proc_suite(void)
{
    Suite *s = suite_create("proc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_exit_status);
    tcase_add_test(tc, test_killed_status);
    tcase_add_test(tc, test_stdio_fds);
    tcase_add_test(tc, test_unset_stdio_is_dev_null_and_no_fd_leaks);
    tcase_add_test(tc, test_cwd_and_env);
    tcase_add_test(tc, test_join_fds_get_zero_before_exec);
    tcase_add_test(tc, test_join_fd_failure_reported);
    tcase_add_test(tc, test_exec_failure_reported);
    tcase_add_test(tc, test_oom_score_adj);
    tcase_add_test(tc, test_set_ids_after_cwd);
    tcase_add_test(tc, test_set_ids_failure_reported);
    tcase_add_test(tc, test_free_running_child_no_callback);
    tcase_add_test(tc, test_find_in_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(proc_suite);
}
