/* Tests for cgroup.c.
 *
 * Fake cgroupfs: a temp tree plus fake mountinfo and /proc/self/cgroup
 * files.  To keep cgroup.c free of test modes, this file emulates the two
 * kernel behaviours the code relies on by defining mkdirat() and unlinkat():
 * the linker binds cgroup.o's calls to these definitions, which forward to
 * the real syscalls and, inside the fake tree only, (a) give a new directory
 * the interface files cgroupfs would create, and (b) make rmdir of a cgroup
 * fail with EBUSY while its cgroup.procs lists a pid or it has child cgroups,
 * and otherwise remove the interface files with the directory.
 *
 * The last test uses the real cgroupfs of this host when run as root, and
 * fails (never skips) if it cannot. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "check_main.h"
#include "guard.h"
#include "cgroup_internal.h"
#include "util.h"

/* ---- fake cgroupfs ---- */

static char TOP[PATH_MAX];    /* temp dir: proc files and the tree */
static char T[PATH_MAX];      /* TOP/fs, the fake fs_root; "" disables the hooks */
static int fake_v2;           /* every dir is a v2 cgroup (else v1 by first component) */
static const char *fake_omit; /* an interface file new cgroups lack */
static int fake_no_memsw;     /* v1 memory without swap accounting */
static int fake_cpuset;       /* v2: cgroups have cpuset files */

static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
    static char bufs[16][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, PATH_MAX, fmt, ap);
    va_end(ap);
    return b;
}

static void put(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
    ck_assert_int_eq(bx_write_all(fd, s, strlen(s)), 0);
    close(fd);
}

/* File content (static buffer) or NULL when absent. */
static const char *get(const char *path)
{
    static char buf[4][8192];
    static int next;
    char *b = buf[next++ % 4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0)
        return NULL;
    n = bx_read_full(fd, b, sizeof(buf[0]) - 1);
    close(fd);
    ck_assert(n >= 0);
    b[n] = '\0';
    return b;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int fd_path(int dirfd, const char *name, char *out)
{
    char link[64];
    ssize_t n;
    if (name[0] == '/') {
        snprintf(out, PATH_MAX, "%s", name);
        return 0;
    }
    if (dirfd == AT_FDCWD) {
        if (!getcwd(out, PATH_MAX))
            return -1;
    } else {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
        n = readlink(link, out, PATH_MAX - 1);
        if (n < 0)
            return -1;
        out[n] = '\0';
    }
    if (strlen(out) + 1 + strlen(name) >= PATH_MAX)
        return -1;
    strcat(out, "/");
    strcat(out, name);
    return 0;
}

static int in_fake(const char *full)
{
    size_t n = strlen(T);
    return n > 0 && strncmp(full, T, n) == 0 && full[n] == '/';
}

static void fake_file(const char *dir, const char *name, const char *content)
{
    if (fake_omit && strcmp(fake_omit, name) == 0)
        return;
    put(P("%s/%s", dir, name), content);
}

/* The interface files cgroupfs gives a new cgroup directory. */
static void fake_populate(const char *dir)
{
    char first[PATH_MAX];
    const char *rest = dir + strlen(T) + 1;
    size_t fl = strcspn(rest, "/");
    fake_file(dir, "cgroup.procs", "");
    if (fake_v2) {
        fake_file(dir, "cgroup.type", "domain\n"); /* not in the root */
        fake_file(dir, "cgroup.controllers", "cpu memory pids\n");
        fake_file(dir, "cgroup.subtree_control", "");
        fake_file(dir, "cgroup.kill", "");
        fake_file(dir, "cpu.max", "max 100000\n");
        fake_file(dir, "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
        fake_file(dir, "memory.max", "max\n");
        fake_file(dir, "memory.swap.max", "max\n");
        fake_file(dir, "memory.current", "0\n");
        fake_file(dir, "memory.peak", "0\n");
        fake_file(dir, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
        fake_file(dir, "pids.max", "max\n");
        if (fake_cpuset) {
            fake_file(dir, "cpuset.cpus", "");
            fake_file(dir, "cpuset.cpus.effective", "0-3\n");
        }
        return;
    }
    memcpy(first, rest, fl);
    first[fl] = '\0';
    fake_file(dir, "tasks", "");
    if (strcmp(first, "cpu") == 0 || strcmp(first, "cpu,cpuacct") == 0) {
        fake_file(dir, "cpu.cfs_period_us", "100000\n");
        fake_file(dir, "cpu.cfs_quota_us", "-1\n");
    }
    if (strcmp(first, "cpuacct") == 0 || strcmp(first, "cpu,cpuacct") == 0)
        fake_file(dir, "cpuacct.usage", "0\n");
    if (strcmp(first, "memory") == 0) {
        fake_file(dir, "memory.limit_in_bytes", "9223372036854771712\n");
        if (!fake_no_memsw)
            fake_file(dir, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
        fake_file(dir, "memory.max_usage_in_bytes", "0\n");
        fake_file(dir, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
    }
    if (strcmp(first, "pids") == 0)
        fake_file(dir, "pids.max", "max\n");
    /* v1 without clone_children: a new cpuset starts empty. */
    if (strcmp(first, "cpuset") == 0) {
        fake_file(dir, "cpuset.cpus", "");
        fake_file(dir, "cpuset.mems", "");
        fake_file(dir, "cpuset.effective_cpus", "");
    }
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    char full[PATH_MAX];
    if (syscall(SYS_mkdirat, dirfd, path, mode) < 0)
        return -1;
    if (fd_path(dirfd, path, full) == 0 && in_fake(full))
        fake_populate(full);
    return 0;
}

static int has_subdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL)
        if (de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            found = 1;
    closedir(d);
    return found;
}

int unlinkat(int dirfd, const char *path, int flags)
{
    char full[PATH_MAX];
    if ((flags & AT_REMOVEDIR) && fd_path(dirfd, path, full) == 0 && in_fake(full)) {
        const char *procs = get(P("%s/cgroup.procs", full));
        if (procs) {
            DIR *d;
            struct dirent *de;
            if (procs[0] || has_subdir(full)) {
                errno = EBUSY;
                return -1;
            }
            d = opendir(full);
            while (d && (de = readdir(d)) != NULL)
                if (de->d_type == DT_REG)
                    ck_assert(unlink(P("%s/%s", full, de->d_name)) == 0);
            if (d)
                closedir(d);
        }
    }
    return (int)syscall(SYS_unlinkat, dirfd, path, flags);
}

/* mkdir -p of a fake cgroup path, populating like the kernel. */
static void fake_mkcg(const char *rel)
{
    char path[PATH_MAX];
    ck_assert(strlen(T) + 1 + strlen(rel) < sizeof(path));
    strcpy(path, T);
    strcat(path, "/");
    strcat(path, rel);
    for (char *s = path + strlen(T) + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (!exists(path))
                ck_assert_int_eq(mkdirat(AT_FDCWD, path, 0755), 0);
            *s = c;
            if (!c)
                break;
        }
    }
}

/* mountinfo escapes spaces and backslashes in paths as octal. */
static const char *esc(const char *s)
{
    static char bufs[4][PATH_MAX * 4];
    static int next;
    char *b = bufs[next++ % 4], *w = b;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\\' || *s == '\t' || *s == '\n')
            w += sprintf(w, "\\%03o", (unsigned char)*s);
        else
            *w++ = *s;
    }
    *w = '\0';
    return b;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fake_setup(void)
{
    char tmpl[] = "/tmp/cg test.XXXXXX"; /* a space: exercises mountinfo escapes */
    ck_assert(mkdtemp(tmpl) != NULL);
    snprintf(TOP, sizeof(TOP), "%s", tmpl);
    snprintf(T, sizeof(T), "%s/fs", tmpl);
    ck_assert_int_eq(mkdir(T, 0755), 0);
    fake_v2 = 0;
    fake_omit = NULL;
    fake_no_memsw = 0;
    fake_cpuset = 0;
}

static void fake_teardown(void)
{
    T[0] = '\0';
    if (TOP[0])
        nftw(TOP, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    TOP[0] = '\0';
}

static struct cg_ctx *fake_init(void)
{
    struct cg_ctx *ctx = NULL;
    struct bx_err err = {0};
    ck_assert_msg(
        cg_init(&ctx, P("%s/", T), P("%s/cgroup", TOP), P("%s/mountinfo", TOP), NULL, &err) == 0,
        "%s", err.msg);
    return ctx;
}

/* This machine's layout: v1 hierarchies, memory nested, empty cgroup2. */
static void hybrid_init_files(void)
{
    FILE *f;
    put(P("%s/cgroup", TOP), "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n"
                             "5:devices:/\n4:memory:/process_api/abc\n3:cpuset:/\n"
                             "2:cpuacct:/\n1:cpu:/\n0::/\n");
    f = fopen(P("%s/mountinfo", TOP), "w");
    ck_assert(f != NULL);
    /* A decoy whose mount point only shares a string prefix with the root
     * comes first, and one outside it last: both must be ignored. */
    fprintf(f, "30 1 0:27 / %s-decoy/memory rw - cgroup cgroup rw,memory\n", esc(T));
    fprintf(f, "31 23 0:28 / %s rw,relatime - tmpfs tmpfs rw,mode=755\n", esc(T));
    fprintf(f, "32 31 0:29 / %s/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n", esc(T));
    fprintf(f, "33 31 0:30 / %s/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n", esc(T));
    fprintf(f, "34 31 0:31 / %s/cpuset rw,relatime - cgroup cgroup rw,cpuset\n", esc(T));
    fprintf(f, "35 31 0:32 / %s/memory rw,relatime - cgroup cgroup rw,memory\n", esc(T));
    fprintf(f, "39 31 0:36 / %s/pids rw,relatime - cgroup cgroup rw,pids\n", esc(T));
    fprintf(f, "40 31 0:37 / %s/systemd rw,relatime - cgroup cgroup rw,name=systemd\n", esc(T));
    fprintf(f, "41 31 0:38 / %s/unified rw,relatime - cgroup2 cgroup2 rw\n", esc(T));
    fprintf(f, "42 1 0:39 / /elsewhere/pids rw - cgroup cgroup rw,pids\n");
    fclose(f);
    fake_mkcg("cpu");
    fake_mkcg("cpuacct");
    fake_mkcg("cpuset");
    put(P("%s/cpuset/cpuset.cpus", T), "0-3\n");
    put(P("%s/cpuset/cpuset.mems", T), "0\n");
    fake_mkcg("memory/process_api/abc");
    fake_mkcg("pids");
    fake_mkcg("systemd");
    ck_assert_int_eq(mkdir(P("%s/unified", T), 0755), 0);
    put(P("%s/unified/cgroup.controllers", T), "hugetlb\n");
    put(P("%s/unified/cgroup.subtree_control", T), "");
    put(P("%s/unified/cgroup.procs", T), "1\n");
}

static struct cg_ctx *hybrid_init(void)
{
    hybrid_init_files();
    return fake_init();
}

/* ---- pure helpers ---- */

static int parse_guarded(const char *text, const char *ctrl, char *out, size_t cap)
{
    struct guard_buf g;
    char *copy = guard_copy(&g, text, strlen(text) + 1);
    int r = cg_parse_proc_cgroup(copy, ctrl, out, cap);
    guard_free(&g);
    return r;
}

START_TEST(test_parse_proc_cgroup)
{
    char out[256];
    const char *hybrid = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/8d92\n"
                         "3:cpuset:/cs\n2:cpuacct:/\n1:cpu:/c\n0::/\n";
    const char *v1 = "12:cpu,cpuacct:/system.slice/boxer.service\n"
                     "11:memory:/system.slice/boxer.service\n10:pids:/system.slice\n";
    const char *v2 = "0::/system.slice/boxer.service";

    ck_assert_int_eq(parse_guarded(hybrid, "memory", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/process_api/8d92");
    ck_assert_int_eq(parse_guarded(hybrid, "cpu", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/c"); /* not cpuset's line */
    ck_assert_int_eq(parse_guarded(hybrid, "cpuset", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/cs");
    ck_assert_int_eq(parse_guarded(hybrid, "pids", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/");
    ck_assert_int_eq(parse_guarded(hybrid, NULL, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/");
    ck_assert_int_eq(parse_guarded(hybrid, "name=systemd", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/");
    ck_assert_int_eq(parse_guarded(hybrid, "systemd", out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded(hybrid, "blkio", out, sizeof(out)), -1);

    ck_assert_int_eq(parse_guarded(v1, "cpuacct", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/system.slice/boxer.service");
    ck_assert_int_eq(parse_guarded(v1, "cpu", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/system.slice/boxer.service");
    ck_assert_int_eq(parse_guarded(v1, "pids", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/system.slice");
    ck_assert_int_eq(parse_guarded(v1, NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded(v1, "cpuac", out, sizeof(out)), -1);

    ck_assert_int_eq(parse_guarded(v2, NULL, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/system.slice/boxer.service");
    ck_assert_int_eq(parse_guarded(v2, "memory", out, sizeof(out)), -1);
    /* A path with ':' keeps everything after the second colon. */
    ck_assert_int_eq(parse_guarded("0::/a:b\n", NULL, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/a:b");

    /* Too small: the path plus NUL must fit. */
    ck_assert_int_eq(parse_guarded(v2, NULL, out, 27), -1);
    ck_assert_int_eq(parse_guarded(v2, NULL, out, 28), 0);
    /* Malformed or unsafe paths and lines. */
    ck_assert_int_eq(parse_guarded("0::relative\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::/a/../b\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::/a/./b\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::/..\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::/a//b\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::/a/\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("garbage\n:\n::\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("1:memory\n", "memory", out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("10::/x\n", NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(parse_guarded("0::/..a/b..\n", NULL, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/..a/b..");
}
END_TEST

START_TEST(test_cpu_quota)
{
    ck_assert_uint_eq(cg_cpu_quota_us(0.5), 50000);
    ck_assert_uint_eq(cg_cpu_quota_us(1.5), 150000);
    ck_assert_uint_eq(cg_cpu_quota_us(1.0), 100000);
    ck_assert_uint_eq(cg_cpu_quota_us(2.0), 200000);
    ck_assert_uint_eq(cg_cpu_quota_us(0.0123456), 1235);
    ck_assert_uint_eq(cg_cpu_quota_us(0.0123449), 1234);
    ck_assert_uint_eq(cg_cpu_quota_us(0.01), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(0.00999), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(0.001), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(1e-12), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(0.0), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(-3.0), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(NAN), 1000);
    ck_assert_uint_eq(cg_cpu_quota_us(1024.0), 102400000);
    ck_assert_uint_eq(cg_cpu_quota_us(1e9), 102400000);
    ck_assert_uint_eq(cg_cpu_quota_us(INFINITY), 102400000);
    ck_assert_str_eq(cg_layout_name(CG_V2), "v2");
    ck_assert_str_eq(cg_layout_name(CG_HYBRID), "hybrid");
    ck_assert_str_eq(cg_layout_name(CG_V1), "v1");
    ck_assert_str_eq(cg_layout_name(CG_NONE), "none");
}
END_TEST

static int cpus_guarded(const char *text, uint16_t *out, int max)
{
    struct guard_buf g;
    char *copy = guard_copy(&g, text, strlen(text) + 1);
    int r = cg_parse_cpu_list(copy, out, max);
    guard_free(&g);
    return r;
}

START_TEST(test_cpu_list)
{
    uint16_t ids[16];
    const char *bad[] = {"-",
                         "1-",
                         "-1",
                         "3-1",
                         "1,,2",
                         "1,",
                         ",1",
                         "1 2",
                         "a",
                         "0x1",
                         "1-2-3",
                         "2,1",
                         "0-3,3",
                         "1,1",
                         "65536",
                         "0-65536",
                         "99999999999999999999",
                         "1\n2",
                         "+1",
                         "1;2"};
    ck_assert_int_eq(cpus_guarded("", ids, 16), 0);
    ck_assert_int_eq(cpus_guarded("\n", ids, 16), 0);
    ck_assert_int_eq(cpus_guarded("0\n", ids, 16), 1);
    ck_assert_uint_eq(ids[0], 0);
    ck_assert_int_eq(cpus_guarded("0-3,8,10-11\n", ids, 16), 7);
    ck_assert_uint_eq(ids[0], 0);
    ck_assert_uint_eq(ids[3], 3);
    ck_assert_uint_eq(ids[4], 8);
    ck_assert_uint_eq(ids[5], 10);
    ck_assert_uint_eq(ids[6], 11);
    ck_assert_int_eq(cpus_guarded("65535", ids, 16), 1);
    ck_assert_uint_eq(ids[0], 65535);
    /* Stores at most max, still validates the rest. */
    ck_assert_int_eq(cpus_guarded("0-100", ids, 4), 4);
    ck_assert_uint_eq(ids[3], 3);
    ck_assert_int_eq(cpus_guarded("0-100,2", ids, 4), -1);
    ck_assert_int_eq(cpus_guarded("0-65535", ids, 16), 16);
    for (size_t i = 0; i < BX_ARRAY_LEN(bad); i++)
        ck_assert_msg(cpus_guarded(bad[i], ids, 16) == -1, "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(cg_parse_cpu_list(NULL, ids, 16), -1);

    ck_assert_int_eq(cg_cpu_count(0.01), 1);
    ck_assert_int_eq(cg_cpu_count(0.5), 1);
    ck_assert_int_eq(cg_cpu_count(1.0), 1);
    ck_assert_int_eq(cg_cpu_count(0.1 * 10), 1);
    ck_assert_int_eq(cg_cpu_count(1.0001), 2);
    ck_assert_int_eq(cg_cpu_count(2.5), 3);
    ck_assert_int_eq(cg_cpu_count(0.0), 1);
    ck_assert_int_eq(cg_cpu_count(-1.0), 1);
    ck_assert_int_eq(cg_cpu_count(NAN), 1);
    ck_assert_int_eq(cg_cpu_count(INFINITY), CG_CPUS_MAX);
    ck_assert_int_eq(cg_cpu_count(1e12), CG_CPUS_MAX);
}
END_TEST

/* ---- hybrid fake (this machine's layout) ---- */

static const char *MEMB = "memory/process_api/abc/boxer";

START_TEST(test_hybrid_init_and_create)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *run = NULL;
    struct cg_limits lim = {0.5, 64u << 20, 32};
    struct bx_err err = {0};
    int fds[CG_MAX_PROCS_FDS];
    int n;

    ck_assert_int_eq(cg_layout(ctx), CG_HYBRID);
    ck_assert_msg(strstr(cg_describe(ctx), "hybrid") != NULL, "%s", cg_describe(ctx));
    ck_assert_msg(strstr(cg_describe(ctx), P("memory=%s/%s", T, MEMB)) != NULL, "%s",
                  cg_describe(ctx));
    ck_assert_msg(strstr(cg_describe(ctx), P("cpu=%s/cpu/boxer", T)) != NULL, "%s",
                  cg_describe(ctx));
    ck_assert(exists(P("%s/cpu/boxer", T)));
    ck_assert(exists(P("%s/cpuacct/boxer", T)));
    ck_assert(exists(P("%s/%s", T, MEMB)));
    ck_assert(exists(P("%s/pids/boxer", T)));
    /* The new v1 cpuset base got its parent's CPUs and memory nodes. */
    ck_assert_str_eq(get(P("%s/cpuset/boxer/cpuset.cpus", T)), "0-3");
    ck_assert_str_eq(get(P("%s/cpuset/boxer/cpuset.mems", T)), "0");
    ck_assert_msg(strstr(cg_describe(ctx), "of 4 CPUs") != NULL, "%s", cg_describe(ctx));
    ck_assert(!exists(P("%s/systemd/boxer", T)));
    ck_assert(!exists(P("%s/unified/boxer", T)));
    ck_assert(!exists(P("%s/memory/boxer", T)));

    ck_assert_msg(cg_run_create(ctx, "boxer-1234", &lim, &run, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(get(P("%s/cpu/boxer/boxer-1234/cpu.cfs_period_us", T)), "100000");
    ck_assert_str_eq(get(P("%s/cpu/boxer/boxer-1234/cpu.cfs_quota_us", T)), "50000");
    ck_assert_str_eq(get(P("%s/%s/boxer-1234/memory.limit_in_bytes", T, MEMB)), "67108864");
    ck_assert_str_eq(get(P("%s/%s/boxer-1234/memory.memsw.limit_in_bytes", T, MEMB)), "67108864");
    ck_assert_str_eq(get(P("%s/pids/boxer/boxer-1234/pids.max", T)), "32");
    ck_assert(exists(P("%s/cpuacct/boxer/boxer-1234", T)));
    /* 0.5 cores: one CPU, so nproc in the sandbox says 1. */
    ck_assert_str_eq(get(P("%s/cpuset/boxer/boxer-1234/cpuset.cpus", T)), "0");
    ck_assert_str_eq(get(P("%s/cpuset/boxer/boxer-1234/cpuset.mems", T)), "0");
    ck_assert_str_eq(cg_run_cpu_list(run), "0");
    ck_assert_int_eq(cg_run_dirfd(run), -1);
    ck_assert_str_eq(cg_run_oci_path(run), ".");

    /* One fd per hierarchy, each pointing at the run's tasks file (v1: a
     * thread joining through it needs no RCU grace period). */
    ck_assert_int_eq(cg_run_procs_fds(run, fds, 4, &err), -1);
    n = cg_run_procs_fds(run, fds, CG_MAX_PROCS_FDS, &err);
    ck_assert_int_eq(n, 5);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        int fl = fcntl(fds[i], F_GETFD);
        ck_assert(fl >= 0 && (fl & FD_CLOEXEC));
        ck_assert_int_eq((fcntl(fds[i], F_GETFL) & O_ACCMODE), O_WRONLY);
        ck_assert_int_eq(fd_path(fds[i], "x", path), 0);
        path[strlen(path) - 2] = '\0';
        ck_assert_msg(strstr(path, "/boxer/boxer-1234/tasks") != NULL, "%s", path);
        close(fds[i]);
    }

    /* The same name twice is refused and leaves the first run intact. */
    {
        struct cg_run *dup = NULL;
        ck_assert_int_eq(cg_run_create(ctx, "boxer-1234", &lim, &dup, &err), -1);
        ck_assert_int_eq(err.sys_errno, EEXIST);
        ck_assert_ptr_null(dup);
        ck_assert_str_eq(get(P("%s/cpu/boxer/boxer-1234/cpu.cfs_quota_us", T)), "50000");
    }

    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    ck_assert_ptr_null(run);
    ck_assert(!exists(P("%s/cpu/boxer/boxer-1234", T)));
    ck_assert(!exists(P("%s/cpuacct/boxer/boxer-1234", T)));
    ck_assert(!exists(P("%s/%s/boxer-1234", T, MEMB)));
    ck_assert(!exists(P("%s/pids/boxer/boxer-1234", T)));
    ck_assert(!exists(P("%s/cpuset/boxer/boxer-1234", T)));
    ck_assert(exists(P("%s/pids/boxer", T)));
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0); /* NULL is a no-op */
    cg_free(&ctx);
    ck_assert_ptr_null(ctx);
    /* A stopped Boxer leaves no cgroup behind. */
    ck_assert(!exists(P("%s/cpu/boxer", T)));
    ck_assert(!exists(P("%s/cpuacct/boxer", T)));
    ck_assert(!exists(P("%s/%s", T, MEMB)));
    ck_assert(!exists(P("%s/pids/boxer", T)));
    ck_assert(!exists(P("%s/cpuset/boxer", T)));
    ck_assert(exists(P("%s/pids", T)));
}
END_TEST

/* The budget of all runs goes on the base cgroup only, never on our own
 * cgroup or anything above it. */
START_TEST(test_base_limits_hybrid)
{
    struct cg_ctx *ctx;
    struct bx_err err = {0};

    fake_no_memsw = _i;
    ctx = hybrid_init();
    ck_assert_msg(cg_set_base_limits(ctx, 300u << 20, 1000, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(get(P("%s/%s/memory.limit_in_bytes", T, MEMB)), "314572800");
    if (!fake_no_memsw)
        ck_assert_str_eq(get(P("%s/%s/memory.memsw.limit_in_bytes", T, MEMB)), "314572800");
    else
        ck_assert(!exists(P("%s/%s/memory.memsw.limit_in_bytes", T, MEMB)));
    ck_assert_str_eq(get(P("%s/pids/boxer/pids.max", T)), "1000");
    /* Our own cgroups and the hierarchy roots are untouched. */
    ck_assert_str_eq(get(P("%s/memory/process_api/abc/memory.limit_in_bytes", T)),
                     "9223372036854771712\n");
    ck_assert_str_eq(get(P("%s/pids/pids.max", T)), "max\n");
    ck_assert(!exists(P("%s/cpu/boxer/pids.max", T)));
    /* Raised again (a restart with a larger budget). */
    ck_assert_msg(cg_set_base_limits(ctx, 1u << 30, 5000, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(get(P("%s/%s/memory.limit_in_bytes", T, MEMB)), "1073741824");
    ck_assert_str_eq(get(P("%s/pids/boxer/pids.max", T)), "5000");
    ck_assert_int_eq(cg_set_base_limits(ctx, 0, 5000, &err), -1);
    ck_assert_int_eq(cg_set_base_limits(NULL, 1, 1, &err), -1);
    cg_free(&ctx);
    fake_no_memsw = 0;
}
END_TEST

START_TEST(test_bad_names_and_limits)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *run = NULL;
    struct cg_limits ok = {1.0, 1u << 20, 8};
    struct bx_err err = {0};
    const char *bad[] = {"", ".", "..", ".hidden", "../x", "a/b", "a b", "a\nb", "x*"};
    char longname[CG_NAME_MAX + 2];

    for (size_t i = 0; i < BX_ARRAY_LEN(bad); i++) {
        ck_assert_int_eq(cg_run_create(ctx, bad[i], &ok, &run, &err), -1);
        ck_assert_int_eq(err.status, 500);
        ck_assert_ptr_null(run);
    }
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(cg_run_create(ctx, longname, &ok, &run, &err), -1);
    longname[CG_NAME_MAX] = '\0';
    ck_assert_int_eq(cg_run_create(ctx, longname, &ok, &run, &err), 0);
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);

    {
        struct cg_limits l[] = {{0.0, 1, 1},      {-1.0, 1, 1}, {NAN, 1, 1},
                                {INFINITY, 1, 1}, {1.0, 0, 1},  {1.0, 1, 0}};
        for (size_t i = 0; i < BX_ARRAY_LEN(l); i++) {
            ck_assert_int_eq(cg_run_create(ctx, "r", &l[i], &run, &err), -1);
            ck_assert_int_eq(err.status, 400);
        }
    }
    ck_assert_int_eq(cg_run_create(ctx, "r", NULL, &run, &err), -1);
    ck_assert(!exists(P("%s/cpu/boxer/r", T)));
    cg_free(&ctx);
}
END_TEST

START_TEST(test_create_failure_leaves_nothing)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.0, 1u << 20, 8};
    struct bx_err err = {0};

    /* pids is the last hierarchy written: everything before must go. */
    fake_omit = "pids.max";
    ck_assert_int_eq(cg_run_create(ctx, "half", &lim, &run, &err), -1);
    ck_assert_ptr_null(run);
    ck_assert_msg(strstr(err.msg, "pids.max") != NULL, "%s", err.msg);
    ck_assert(!exists(P("%s/cpu/boxer/half", T)));
    ck_assert(!exists(P("%s/cpuacct/boxer/half", T)));
    ck_assert(!exists(P("%s/%s/half", T, MEMB)));
    ck_assert(!exists(P("%s/pids/boxer/half", T)));

    /* Without swap accounting memsw is skipped, not an error. */
    fake_omit = NULL;
    fake_no_memsw = 1;
    ck_assert_msg(cg_run_create(ctx, "noswap", &lim, &run, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(get(P("%s/%s/noswap/memory.limit_in_bytes", T, MEMB)), "1048576");
    ck_assert(!exists(P("%s/%s/noswap/memory.memsw.limit_in_bytes", T, MEMB)));
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    cg_free(&ctx);
}
END_TEST

START_TEST(test_hybrid_usage)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.0, 1u << 20, 8};
    struct bx_err err = {0};
    struct cg_usage u;
    char *oc;

    oc = strdup(P("%s/%s/u/memory.oom_control", T, MEMB));
    ck_assert_int_eq(cg_run_create(ctx, "u", &lim, &run, &err), 0);
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_uint_eq(u.cpu_usec, 0);
    ck_assert_uint_eq(u.memory_peak_bytes, 0);
    ck_assert_int_eq(u.oom_killed, 0);

    put(P("%s/cpuacct/boxer/u/cpuacct.usage", T), "123456789\n");
    put(P("%s/%s/u/memory.max_usage_in_bytes", T, MEMB), "5242880\n");
    put(oc, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_uint_eq(u.cpu_usec, 123456);
    ck_assert_uint_eq(u.memory_peak_bytes, 5242880);
    ck_assert_int_eq(u.oom_killed, 1);

    /* Older kernels: no oom_kill counter, under_oom decides. */
    put(oc, "oom_kill_disable 0\nunder_oom 1\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_int_eq(u.oom_killed, 1);
    /* The counter wins over under_oom when present. */
    put(oc, "oom_kill_disable 0\nunder_oom 1\noom_kill 0\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_int_eq(u.oom_killed, 0);

    put(oc, "oom_kill_disable 0\nunder_oom 0\noom_kill x\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), -1);
    put(oc, "oom_kill 0\n");
    put(P("%s/cpuacct/boxer/u/cpuacct.usage", T), "12 34\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), -1);
    ck_assert_int_eq(err.status, 500);
    put(P("%s/cpuacct/boxer/u/cpuacct.usage", T), "-1\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), -1);
    put(P("%s/cpuacct/boxer/u/cpuacct.usage", T), "18446744073709551616\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), -1);
    put(P("%s/cpuacct/boxer/u/cpuacct.usage", T), "999\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_uint_eq(u.cpu_usec, 0);

    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    free(oc);
    cg_free(&ctx);
}
END_TEST

static pid_t spawn_sleeper(void)
{
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;)
            pause();
    }
    return pid;
}

static int reap_status(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return st;
}

START_TEST(test_hybrid_destroy_kills)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.0, 1u << 20, 8};
    struct bx_err err = {0};
    pid_t child = spawn_sleeper();
    uint64_t t0;
    int st;

    ck_assert_int_eq(cg_run_create(ctx, "k", &lim, &run, &err), 0);
    /* The fake kernel lists the child in the pids hierarchy only, plus a
     * pid that does not exist (nothing must happen to it). */
    put(P("%s/pids/boxer/k/cgroup.procs", T), P("%d\n4194303\n", (int)child));
    t0 = bx_now_ms();
    ck_assert_int_eq(cg_run_destroy(&run, &err), -1);
    ck_assert_uint_ge(bx_now_ms() - t0, CG_DESTROY_WAIT_MS);
    ck_assert_uint_lt(bx_now_ms() - t0, CG_DESTROY_WAIT_MS + 800);
    ck_assert_ptr_nonnull(run); /* busy: kept for a retry */
    ck_assert_int_eq(err.sys_errno, EBUSY);
    st = reap_status(child);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* The "kernel" drops exited tasks; the retry then removes everything,
     * including the hierarchies that were already empty. */
    put(P("%s/pids/boxer/k/cgroup.procs", T), "");
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    ck_assert_ptr_null(run);
    ck_assert(!exists(P("%s/pids/boxer/k", T)));
    ck_assert(!exists(P("%s/cpu/boxer/k", T)));
    cg_free(&ctx);
}
END_TEST

START_TEST(test_destroy_never_kills_self)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.0, 1u << 20, 8};
    struct bx_err err = {0};

    ck_assert_int_eq(cg_run_create(ctx, "self", &lim, &run, &err), 0);
    put(P("%s/cpu/boxer/self/cgroup.procs", T), P("%d\n", (int)getpid()));
    ck_assert_int_eq(cg_run_destroy(&run, &err), -1); /* we are still alive */
    ck_assert_int_eq(err.sys_errno, EBUSY);
    put(P("%s/cpu/boxer/self/cgroup.procs", T), "");
    /* Garbage in cgroup.procs is a hard error; the run is freed. */
    put(P("%s/cpu/boxer/self/cgroup.procs", T), "12abc\n");
    ck_assert_int_eq(cg_run_destroy(&run, &err), -1);
    ck_assert_ptr_null(run);
    put(P("%s/cpu/boxer/self/cgroup.procs", T), "");
    cg_free(&ctx);
}
END_TEST

START_TEST(test_cleanup_stale)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *a = NULL, *b = NULL;
    struct cg_limits lim = {1.0, 1u << 20, 8};
    struct bx_err err = {0};
    pid_t child = spawn_sleeper();
    int st;

    ck_assert_int_eq(cg_run_create(ctx, "a", &lim, &a, &err), 0);
    ck_assert_int_eq(cg_run_create(ctx, "b", &lim, &b, &err), 0);
    cg_run_abandon(&a); /* as if Boxer had crashed */
    cg_run_abandon(&b);
    ck_assert_ptr_null(a);
    fake_mkcg("memory/process_api/abc/boxer/a/nested/deeper");
    put(P("%s/pids/boxer/b/cgroup.procs", T), P("%d\n", (int)child));
    ck_assert(exists(P("%s/%s/a/nested/deeper", T, MEMB)));

    ck_assert_int_eq(cg_cleanup_stale(ctx, &err), -1);
    ck_assert_int_eq(err.sys_errno, EBUSY);
    st = reap_status(child);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* "a" went completely (nested too), in spite of "b" being busy. */
    ck_assert(!exists(P("%s/%s/a", T, MEMB)));
    ck_assert(!exists(P("%s/cpu/boxer/a", T)));
    ck_assert(exists(P("%s/pids/boxer/b", T)));

    put(P("%s/pids/boxer/b/cgroup.procs", T), "");
    ck_assert_msg(cg_cleanup_stale(ctx, &err) == 0, "%s", err.msg);
    ck_assert(!exists(P("%s/pids/boxer/b", T)));
    ck_assert(!exists(P("%s/cpu/boxer/b", T)));
    ck_assert(exists(P("%s/pids/boxer", T)));
    ck_assert(exists(P("%s/%s", T, MEMB)));
    ck_assert_int_eq(cg_cleanup_stale(ctx, &err), 0);
    cg_free(&ctx);
}
END_TEST

START_TEST(test_cpu_pinning_spreads)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    struct cg_limits one = {1.0, 1u << 20, 8}, two = {1.5, 1u << 20, 8}, all = {64.0, 1u << 20, 8};
    struct bx_err err = {0};

    /* Runs take the least-loaded CPUs, so concurrent one-core runs do not
     * share a CPU while another is idle. */
    ck_assert_int_eq(cg_run_create(ctx, "a", &one, &a, &err), 0);
    ck_assert_int_eq(cg_run_create(ctx, "b", &one, &b, &err), 0);
    ck_assert_int_eq(cg_run_create(ctx, "c", &two, &c, &err), 0);
    ck_assert_str_eq(cg_run_cpu_list(a), "0");
    ck_assert_str_eq(cg_run_cpu_list(b), "1");
    ck_assert_str_eq(cg_run_cpu_list(c), "2-3");
    ck_assert_str_eq(get(P("%s/cpuset/boxer/c/cpuset.cpus", T)), "2-3");
    /* Every CPU has one run now: the next one-core run shares, round robin. */
    ck_assert_int_eq(cg_run_create(ctx, "d", &one, &d, &err), 0);
    ck_assert_str_eq(cg_run_cpu_list(d), "0");
    ck_assert_int_eq(cg_run_destroy(&d, &err), 0);
    /* When b ends, its CPU is the least loaded again. */
    ck_assert_int_eq(cg_run_destroy(&b, &err), 0);
    ck_assert_int_eq(cg_run_create(ctx, "b2", &one, &b, &err), 0);
    ck_assert_str_eq(cg_run_cpu_list(b), "1");
    /* More cores than CPUs: all of them. */
    ck_assert_int_eq(cg_run_create(ctx, "all", &all, &d, &err), 0);
    ck_assert_str_eq(cg_run_cpu_list(d), "0-3");
    ck_assert_str_eq(get(P("%s/cpuset/boxer/all/cpuset.cpus", T)), "0-3");
    /* A run may outlive the context that made it. */
    cg_free(&ctx);
    ck_assert_int_eq(cg_run_destroy(&a, &err), 0);
    ck_assert_int_eq(cg_run_destroy(&b, &err), 0);
    ck_assert_int_eq(cg_run_destroy(&c, &err), 0);
    ck_assert_int_eq(cg_run_destroy(&d, &err), 0);
    ck_assert(!exists(P("%s/cpuset/boxer/all", T)));
}
END_TEST

static pid_t spawn_named(const char *argv0)
{
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sleep", argv0, "100", (char *)NULL);
        _exit(127);
    }
    /* until the exec is visible in /proc */
    for (int i = 0; i < 200; i++) {
        const char *c = get(P("/proc/%d/cmdline", (int)pid));
        if (c && strcmp(c, argv0) == 0)
            break;
        usleep(5000);
    }
    return pid;
}

START_TEST(test_unpin_once_sandbox_started)
{
    struct cg_ctx *ctx = hybrid_init();
    struct cg_run *a = NULL, *b = NULL;
    struct cg_limits one = {1.0, 1u << 20, 8};
    struct bx_err err = {0};
    pid_t runsc = spawn_named("runsc"), sandbox = spawn_named("runsc-sandbox");

    ck_assert_int_eq(cg_run_create(ctx, "a", &one, &a, &err), 0);
    ck_assert_str_eq(get(P("%s/cpuset/boxer/a/cpuset.cpus", T)), "0");
    /* Only runsc so far: it has not read the CPU count yet, stay pinned. */
    ck_assert_int_eq(cg_run_unpin_started(a, &err), 0);
    put(P("%s/cpuset/boxer/a/cgroup.procs", T), P("%d\n", (int)runsc));
    ck_assert_int_eq(cg_run_unpin_started(a, &err), 0);
    ck_assert_str_eq(get(P("%s/cpuset/boxer/a/cpuset.cpus", T)), "0");
    /* The sandbox exists: every usable CPU, and CPU 0 is free again. */
    put(P("%s/cpuset/boxer/a/cgroup.procs", T), P("%d\n4194303\n%d\n", (int)runsc, (int)sandbox));
    ck_assert_int_eq(cg_run_unpin_started(a, &err), 1);
    ck_assert_str_eq(get(P("%s/cpuset/boxer/a/cpuset.cpus", T)), "0-3");
    ck_assert_str_eq(cg_run_cpu_list(a), "0"); /* what the sandbox sees */
    ck_assert_int_eq(cg_run_unpin_started(a, &err), 1);
    ck_assert_int_eq(cg_run_create(ctx, "b", &one, &b, &err), 0);
    ck_assert_str_eq(cg_run_cpu_list(b), "1"); /* round robin, no load left on 0 */
    put(P("%s/cpuset/boxer/b/cgroup.procs", T), "12x\n");
    ck_assert_int_eq(cg_run_unpin_started(b, &err), -1);
    put(P("%s/cpuset/boxer/b/cgroup.procs", T), "");

    kill(runsc, SIGKILL);
    kill(sandbox, SIGKILL);
    reap_status(runsc);
    reap_status(sandbox);
    put(P("%s/cpuset/boxer/a/cgroup.procs", T), "");
    ck_assert_int_eq(cg_run_destroy(&a, &err), 0);
    ck_assert_int_eq(cg_run_destroy(&b, &err), 0);
    cg_free(&ctx);
}
END_TEST

START_TEST(test_cpuset_optional_and_base_kept_when_busy)
{
    struct cg_ctx *ctx = NULL;
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.0, 1u << 20, 8};
    struct bx_err err = {0};
    int fds[CG_MAX_PROCS_FDS];

    /* A cpuset hierarchy we cannot use (our own cpuset is empty) is left
     * out with a note, and its base does not stay behind. */
    hybrid_init_files();
    put(P("%s/cpuset/cpuset.cpus", T), "");
    ctx = fake_init();
    ck_assert_msg(strstr(cg_describe(ctx), "cpuset not usable") != NULL, "%s", cg_describe(ctx));
    ck_assert_msg(strstr(cg_describe(ctx), "sandboxes see every host CPU") != NULL, "%s",
                  cg_describe(ctx));
    ck_assert(!exists(P("%s/cpuset/boxer", T)));
    ck_assert_int_eq(cg_run_create(ctx, "r", &lim, &run, &err), 0);
    ck_assert_ptr_null(cg_run_cpu_list(run));
    ck_assert_int_eq(cg_run_unpin_started(run, &err), 1); /* nothing pinned */
    ck_assert_int_eq(cg_run_unpin_started(NULL, &err), 1);
    ck_assert_int_eq(cg_run_procs_fds(run, fds, CG_MAX_PROCS_FDS, &err), 4);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    /* A run that would not die keeps its base at exit (EBUSY); the next
     * start removes it. */
    put(P("%s/pids/boxer/r/cgroup.procs", T), "4194303\n");
    cg_run_abandon(&run);
    cg_free(&ctx);
    ck_assert(exists(P("%s/pids/boxer/r", T)));
    ck_assert(exists(P("%s/cpu/boxer/r", T)));
    put(P("%s/pids/boxer/r/cgroup.procs", T), "");
    ctx = fake_init();
    ck_assert_int_eq(cg_cleanup_stale(ctx, &err), 0);
    ck_assert(!exists(P("%s/pids/boxer/r", T)));
    ck_assert(!exists(P("%s/cpu/boxer/r", T)));
    cg_free(&ctx);
    ck_assert(!exists(P("%s/pids/boxer", T)));
    ck_assert(!exists(P("%s/cpu/boxer", T)));
}
END_TEST

/* ---- pure v1 with co-mounted cpu,cpuacct and a bind-mounted subtree ---- */

START_TEST(test_v1_comounted)
{
    struct cg_ctx *ctx = NULL;
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.5, 128u << 20, 64};
    struct bx_err err = {0};
    struct cg_usage u;
    int fds[CG_MAX_PROCS_FDS];
    const char *root = T;
    FILE *f;

    put(P("%s/cgroup", TOP), "5:pids:/docker/c1\n4:memory:/docker/c1/inner\n"
                             "2:cpu,cpuacct:/docker/c1\n1:name=systemd:/docker/c1\n");
    f = fopen(P("%s/mountinfo", TOP), "w");
    ck_assert(f != NULL);
    /* Docker-style: the container sees only its subtree of each hierarchy,
     * so the mount root is /docker/c1 and must be stripped. */
    fprintf(f, "50 40 0:40 /docker/c1 %s/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n",
            esc(root));
    fprintf(f, "51 40 0:41 /docker/c1 %s/memory ro,nosuid - cgroup cgroup rw,memory\n", esc(root));
    fprintf(f, "52 40 0:42 /docker/c1 %s/pids ro,nosuid - cgroup cgroup rw,pids\n", esc(root));
    fprintf(f, "53 40 0:43 /docker/other %s/othermem ro - cgroup cgroup rw,memory\n", esc(root));
    fclose(f);
    fake_mkcg("cpu,cpuacct");
    fake_mkcg("memory/inner");
    fake_mkcg("pids");

    ctx = fake_init();
    ck_assert_int_eq(cg_layout(ctx), CG_V1);
    ck_assert_msg(strstr(cg_describe(ctx), P("cpu,cpuacct=%s/cpu,cpuacct/boxer", root)) != NULL,
                  "%s", cg_describe(ctx));
    ck_assert(exists(P("%s/memory/inner/boxer", root)));
    ck_assert(!exists(P("%s/memory/boxer", root)));

    ck_assert_msg(cg_run_create(ctx, "r", &lim, &run, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(get(P("%s/cpu,cpuacct/boxer/r/cpu.cfs_quota_us", root)), "150000");
    ck_assert_str_eq(get(P("%s/memory/inner/boxer/r/memory.limit_in_bytes", root)), "134217728");
    ck_assert_str_eq(get(P("%s/pids/boxer/r/pids.max", root)), "64");
    ck_assert_int_eq(cg_run_procs_fds(run, fds, CG_MAX_PROCS_FDS, &err), 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    put(P("%s/cpu,cpuacct/boxer/r/cpuacct.usage", root), "7000\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_uint_eq(u.cpu_usec, 7);
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    ck_assert(!exists(P("%s/cpu,cpuacct/boxer/r", root)));
    cg_free(&ctx);
}
END_TEST

START_TEST(test_v1_missing_controller)
{
    struct cg_ctx *ctx = NULL;
    struct bx_err err = {0};
    const char *root = T;
    put(P("%s/cgroup", TOP), "2:cpu:/\n1:memory:/\n0::/\n");
    put(P("%s/mountinfo", TOP), P("1 0 0:1 / %s/cpu rw - cgroup cgroup rw,cpu\n"
                                  "2 0 0:2 / %s/memory rw - cgroup cgroup rw,memory\n"
                                  "3 0 0:3 / %s/pids rw - cgroup cgroup rw,pids\n",
                                  esc(root), esc(root), esc(root)));
    fake_mkcg("cpu");
    fake_mkcg("memory");
    fake_mkcg("pids");
    /* pids is mounted but our /proc/self/cgroup has no pids line. */
    ck_assert_int_eq(cg_init(&ctx, root, P("%s/cgroup", TOP), P("%s/mountinfo", TOP), NULL, &err),
                     -1);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(err.status, 500);
    ck_assert_msg(strstr(err.msg, "cpu, memory and pids") != NULL, "%s", err.msg);
    ck_assert(!exists(P("%s/cpu/boxer", root)));
    /* Missing files are errors too. */
    ck_assert_int_eq(cg_init(&ctx, root, P("%s/nope", TOP), P("%s/mountinfo", TOP), NULL, &err),
                     -1);
    ck_assert_int_eq(cg_init(&ctx, root, P("%s/cgroup", TOP), P("%s/nope", TOP), NULL, &err), -1);
    ck_assert_ptr_null(ctx);
}
END_TEST

/* ---- pure v2 ---- */

static const char *OWN2 = "system.slice/boxer.service";

static void v2_tree(const char *own_procs, const char *own_subtree, const char *own_ctrls)
{
    const char *root = T;
    fake_v2 = 1;
    put(P("%s/cgroup", TOP), "0::/system.slice/boxer.service\n");
    put(P("%s/mountinfo", TOP),
        P("24 1 0:21 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
          "25 1 0:21 / %s rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
          "rw,nsdelegate,memory_recursiveprot\n",
          esc(root)));
    put(P("%s/cgroup.controllers", root), "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(P("%s/cgroup.subtree_control", root), "cpu memory pids\n");
    put(P("%s/cgroup.procs", root), "1\n");
    fake_mkcg(OWN2);
    put(P("%s/%s/cgroup.procs", root, OWN2), own_procs);
    put(P("%s/%s/cgroup.subtree_control", root, OWN2), own_subtree);
    put(P("%s/%s/cgroup.controllers", root, OWN2), own_ctrls);
}

static int v2_init(struct cg_ctx **ctx, struct bx_err *err)
{
    return cg_init(ctx, T, P("%s/cgroup", TOP), P("%s/mountinfo", TOP), NULL, err);
}

START_TEST(test_v2_moves_self_into_leaf)
{
    struct cg_ctx *ctx = NULL;
    struct bx_err err = {0};

    v2_tree("4242\n", "", "cpu memory pids\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cg_layout(ctx), CG_V2);
    /* Boxer (only Boxer: "0" is the writer) moved to the sibling leaf, then
     * controllers were enabled for <own> and <own>/boxer. */
    ck_assert_str_eq(get(P("%s/%s/boxer-supervisor/cgroup.procs", T, OWN2)), "0");
    ck_assert_str_eq(get(P("%s/%s/cgroup.subtree_control", T, OWN2)), "+cpu +memory +pids");
    ck_assert_str_eq(get(P("%s/%s/boxer/cgroup.subtree_control", T, OWN2)), "+cpu +memory +pids");
    ck_assert_msg(strstr(cg_describe(ctx), "boxer-supervisor") != NULL, "%s", cg_describe(ctx));
    ck_assert_msg(strstr(cg_describe(ctx), P("v2: %s/%s/boxer", T, OWN2)) != NULL, "%s",
                  cg_describe(ctx));
    cg_free(&ctx);
}
END_TEST

START_TEST(test_v2_no_move_when_empty_or_enabled)
{
    struct cg_ctx *ctx = NULL;
    struct bx_err err = {0};

    /* Empty own cgroup: enable without moving. */
    v2_tree("", "", "cpu memory pids\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert(!exists(P("%s/%s/boxer-supervisor", T, OWN2)));
    ck_assert_str_eq(get(P("%s/%s/cgroup.subtree_control", T, OWN2)), "+cpu +memory +pids");
    ck_assert(strstr(cg_describe(ctx), "supervisor") == NULL);
    cg_free(&ctx);

    /* Already enabled: <own> is left alone. */
    put(P("%s/%s/cgroup.subtree_control", T, OWN2), "cpu io memory pids\n");
    put(P("%s/%s/cgroup.procs", T, OWN2), "77\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert(!exists(P("%s/%s/boxer-supervisor", T, OWN2)));
    ck_assert_str_eq(get(P("%s/%s/cgroup.subtree_control", T, OWN2)), "cpu io memory pids\n");
    cg_free(&ctx);

    /* The root cgroup may have processes and children with controllers.
     * (Without cpuset here: the fake keeps only the last write.) */
    put(P("%s/cgroup", TOP), "0::/\n");
    put(P("%s/cgroup.subtree_control", T), "");
    put(P("%s/cgroup.controllers", T), "cpu io memory pids\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert(!exists(P("%s/boxer-supervisor", T)));
    ck_assert_str_eq(get(P("%s/cgroup.subtree_control", T)), "+cpu +memory +pids");
    ck_assert_str_eq(get(P("%s/boxer/cgroup.subtree_control", T)), "+cpu +memory +pids");
    ck_assert_msg(strstr(cg_describe(ctx), P("v2: %s/boxer", T)) != NULL, "%s", cg_describe(ctx));
    ck_assert_msg(strstr(cg_describe(ctx), "no cpuset controller delegated: sandboxes see every") !=
                      NULL,
                  "%s", cg_describe(ctx));
    {
        struct cg_run *run = NULL;
        struct cg_limits lim = {1.0, 1u << 20, 8};
        ck_assert_int_eq(cg_run_create(ctx, "x", &lim, &run, &err), 0);
        ck_assert_str_eq(cg_run_oci_path(run), "/boxer/x");
        ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    }
    cg_free(&ctx);
    put(P("%s/cgroup", TOP), "0::/system.slice/boxer.service\n");

    /* Controllers not delegated to us and no v1: no usable layout. */
    put(P("%s/%s/cgroup.controllers", T, OWN2), "cpu memory\n");
    ck_assert_int_eq(v2_init(&ctx, &err), -1);
    ck_assert_int_eq(err.status, 500);
}
END_TEST

START_TEST(test_v2_create_usage_destroy)
{
    struct cg_ctx *ctx = NULL;
    struct cg_run *run = NULL;
    struct cg_limits lim = {1.5, 128u << 20, 64};
    struct bx_err err = {0};
    struct cg_usage u;
    int fds[CG_MAX_PROCS_FDS];
    const char *R;
    pid_t child;
    int st;

    v2_tree("", "cpu memory pids\n", "cpu memory pids\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert_msg(cg_run_create(ctx, "boxer-r", &lim, &run, &err) == 0, "%s", err.msg);
    R = strdup(P("%s/%s/boxer/boxer-r", T, OWN2));
    ck_assert_str_eq(get(P("%s/cpu.max", R)), "150000 100000");
    ck_assert_str_eq(get(P("%s/memory.max", R)), "134217728");
    ck_assert_str_eq(get(P("%s/memory.swap.max", R)), "0");
    ck_assert_str_eq(get(P("%s/pids.max", R)), "64");
    ck_assert_int_ge(cg_run_dirfd(run), 0);
    ck_assert_str_eq(cg_run_oci_path(run), "/system.slice/boxer.service/boxer/boxer-r");
    {
        char path[PATH_MAX];
        ck_assert_int_eq(fd_path(cg_run_dirfd(run), "cpu.max", path), 0);
        ck_assert_str_eq(path, P("%s/cpu.max", R));
        ck_assert_int_eq(fcntl(cg_run_dirfd(run), F_GETFL) & O_ACCMODE, O_RDONLY);
    }
    ck_assert_int_eq(cg_run_procs_fds(run, fds, 1, &err), 1);
    close(fds[0]);

    put(P("%s/cpu.stat", R), "usage_usec 4242\nuser_usec 4000\nsystem_usec 242\n");
    put(P("%s/memory.peak", R), "999\n");
    put(P("%s/memory.current", R), "500\n");
    put(P("%s/memory.events", R), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_uint_eq(u.cpu_usec, 4242);
    ck_assert_uint_eq(u.memory_peak_bytes, 999);
    ck_assert_int_eq(u.oom_killed, 1);
    unlink(P("%s/memory.peak", R)); /* before 5.19 */
    put(P("%s/memory.events", R), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n");
    ck_assert_int_eq(cg_run_usage(run, &u, &err), 0);
    ck_assert_uint_eq(u.memory_peak_bytes, 500);
    ck_assert_int_eq(u.oom_killed, 0);
    put(P("%s/memory.peak", R), "0\n");

    /* With cgroup.kill the kernel kills; Boxer writes "1" and waits. */
    child = spawn_sleeper();
    put(P("%s/cgroup.procs", R), P("%d\n", (int)child));
    ck_assert_int_eq(cg_run_destroy(&run, &err), -1);
    ck_assert_ptr_nonnull(run);
    ck_assert_str_eq(get(P("%s/cgroup.kill", R)), "1");
    ck_assert_int_eq(kill(child, 0), 0); /* the fake kernel did not kill */
    kill(child, SIGKILL);
    reap_status(child);
    put(P("%s/cgroup.procs", R), "");
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    ck_assert(!exists(R));

    /* Without cgroup.kill (before 5.14) Boxer kills pid by pid, including
     * processes of nested cgroups. */
    fake_omit = "cgroup.kill";
    ck_assert_int_eq(cg_run_create(ctx, "boxer-r", &lim, &run, &err), 0);
    fake_mkcg(P("%s/boxer/boxer-r/sub", OWN2));
    child = spawn_sleeper();
    put(P("%s/sub/cgroup.procs", R), P("%d\n", (int)child));
    ck_assert_int_eq(cg_run_destroy(&run, &err), -1);
    st = reap_status(child);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    put(P("%s/sub/cgroup.procs", R), "");
    ck_assert_int_eq(cg_run_destroy(&run, &err), 0);
    ck_assert(!exists(R));
    ck_assert(exists(P("%s/%s/boxer", T, OWN2)));
    free((void *)R);
    cg_free(&ctx);
}
END_TEST

START_TEST(test_v2_base_limits)
{
    struct cg_ctx *ctx = NULL;
    struct bx_err err = {0};

    v2_tree("", "cpu memory pids\n", "cpu memory pids\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert_msg(cg_set_base_limits(ctx, 300u << 20, 1000, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(get(P("%s/%s/boxer/memory.max", T, OWN2)), "314572800");
    ck_assert_str_eq(get(P("%s/%s/boxer/memory.swap.max", T, OWN2)), "0");
    ck_assert_str_eq(get(P("%s/%s/boxer/pids.max", T, OWN2)), "1000");
    ck_assert_str_eq(get(P("%s/%s/memory.max", T, OWN2)), "max\n");
    ck_assert_str_eq(get(P("%s/%s/pids.max", T, OWN2)), "max\n");
    cg_free(&ctx);
}
END_TEST

START_TEST(test_v2_cpuset)
{
    struct cg_ctx *ctx = NULL;
    struct cg_run *a = NULL, *b = NULL;
    struct cg_limits lim = {2.0, 1u << 20, 8};
    struct bx_err err = {0};

    /* cpu, memory and pids are enabled already, cpuset is not: Boxer moves
     * into its leaf and enables it too. */
    fake_cpuset = 1;
    v2_tree("4242\n", "cpu memory pids\n", "cpuset cpu memory pids\n");
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert(exists(P("%s/%s/boxer-supervisor", T, OWN2)));
    ck_assert_str_eq(get(P("%s/%s/cgroup.subtree_control", T, OWN2)), "+cpuset");
    ck_assert_str_eq(get(P("%s/%s/boxer/cgroup.subtree_control", T, OWN2)), "+cpuset");
    ck_assert_msg(strstr(cg_describe(ctx), "of 4 CPUs") != NULL, "%s", cg_describe(ctx));
    ck_assert_int_eq(cg_run_create(ctx, "a", &lim, &a, &err), 0);
    ck_assert_int_eq(cg_run_create(ctx, "b", &lim, &b, &err), 0);
    ck_assert_str_eq(get(P("%s/%s/boxer/a/cpuset.cpus", T, OWN2)), "0-1");
    ck_assert_str_eq(get(P("%s/%s/boxer/b/cpuset.cpus", T, OWN2)), "2-3");
    ck_assert_int_eq(cg_run_destroy(&a, &err), 0);
    ck_assert_int_eq(cg_run_destroy(&b, &err), 0);
    cg_free(&ctx);
    ck_assert(!exists(P("%s/%s/boxer", T, OWN2)));

    /* cpuset delegated but its files unreadable: runs go on without it. */
    fake_omit = "cpuset.cpus.effective";
    ck_assert_msg(v2_init(&ctx, &err) == 0, "%s", err.msg);
    ck_assert_msg(strstr(cg_describe(ctx), "cpuset not usable") != NULL, "%s", cg_describe(ctx));
    ck_assert_int_eq(cg_run_create(ctx, "a", &lim, &a, &err), 0);
    ck_assert_ptr_null(cg_run_cpu_list(a));
    ck_assert_str_eq(get(P("%s/%s/boxer/a/cpuset.cpus", T, OWN2)), "");
    ck_assert_int_eq(cg_run_destroy(&a, &err), 0);
    cg_free(&ctx);
}
END_TEST

/* ---- the real cgroupfs of this host ---- */

static int read_byte(int fd, char *c, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return read(fd, c, 1) == 1 ? 0 : -1;
}

/* Child: join the run via the procs fds, report, burn CPU, touch memory. */
static void real_child(const int *fds, int n, int wfd, size_t touch, int spin_ms)
{
    uint64_t end;
    char *mem;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 0; i < n; i++)
        if (write(fds[i], "0", 1) != 1)
            _exit(90);
    if (write(wfd, "j", 1) != 1)
        _exit(91);
    end = bx_now_ms() + (uint64_t)spin_ms;
    while (bx_now_ms() < end)
        ;
    mem = malloc(touch);
    if (!mem)
        _exit(92);
    for (size_t i = 0; i < touch; i += 4096)
        mem[i] = 1;
    if (write(wfd, "d", 1) != 1)
        _exit(93);
    for (;;)
        pause();
}

/* The run's directories, from the procs fds (one per hierarchy). */
static int run_dirs(struct cg_run *run, char dirs[][PATH_MAX], int *fds)
{
    struct bx_err err = {0};
    int n = cg_run_procs_fds(run, fds, CG_MAX_PROCS_FDS, &err);
    ck_assert_msg(n > 0, "procs fds: %s", err.msg);
    for (int i = 0; i < n; i++) {
        char *slash;
        ck_assert_int_eq(fd_path(fds[i], "x", dirs[i]), 0);
        slash = strrchr(dirs[i], '/');
        *slash = '\0';
        slash = strrchr(dirs[i], '/');
        *slash = '\0';
    }
    return n;
}

static const char *file_in(char dirs[][PATH_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (exists(P("%s/%s", dirs[i], name)))
            return get(P("%s/%s", dirs[i], name));
    ck_abort_msg("no %s in the run cgroups", name);
    return NULL;
}

static void destroy_real(struct cg_run **run)
{
    struct bx_err err = {0};
    for (int i = 0; i < 50 && *run; i++) {
        if (cg_run_destroy(run, &err) == 0)
            return;
        ck_assert_msg(*run != NULL, "destroy failed: %s", err.msg);
        usleep(20000);
    }
    ck_abort_msg("run cgroup never emptied: %s", err.msg);
}

/* Existing <mount><own>/boxer candidates before cg_init, so the test only
 * removes base directories it made itself. */
static int snapshot_bases(char out[][PATH_MAX], int max)
{
    char *mi = NULL, *pcg = NULL;
    int n = 0;
    ck_assert(bx_read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 22, &mi, NULL, NULL) == 0);
    ck_assert(bx_read_file_at(AT_FDCWD, "/proc/self/cgroup", 1 << 16, &pcg, NULL, NULL) == 0);
    for (char *l = strtok(mi, "\n"); l; l = strtok(NULL, "\n")) {
        char mp[PATH_MAX], *fs = strstr(l, " - cgroup");
        if (!fs || sscanf(l, "%*s %*s %*s %*s %4095s", mp) != 1)
            continue;
        for (const char *c = pcg; *c;) {
            const char *eol = strchr(c, '\n');
            const char *p = strchr(c, ':');
            p = p ? strchr(p + 1, ':') : NULL;
            if (p && (!eol || p < eol) && n < max) {
                int len = (int)((eol ? eol : c + strlen(c)) - p - 1);
                const char *cand = P("%s%.*s/boxer", mp, len, p + 1);
                if (exists(cand))
                    snprintf(out[n++], PATH_MAX, "%s", cand);
            }
            c = eol ? eol + 1 : c + strlen(c);
        }
    }
    free(mi);
    free(pcg);
    return n;
}

START_TEST(test_real_host)
{
    struct cg_ctx *ctx = NULL;
    struct cg_run *run = NULL;
    struct bx_err err = {0};
    struct cg_limits lim = {0.5, 64u << 20, 16};
    struct cg_usage u;
    char dirs[CG_MAX_PROCS_FDS][PATH_MAX], before[64][PATH_MAX], uuid[37], name[64];
    int fds[CG_MAX_PROCS_FDS], n, nbefore, pfd[2], st;
    char c;
    pid_t child;
    enum cg_layout layout;

    if (geteuid() != 0) {
        fprintf(stderr, "test_real_host: not root, real cgroupfs not exercised\n");
        return;
    }
    nbefore = snapshot_bases(before, 64);
    ck_assert_msg(cg_init(&ctx, "/sys/fs/cgroup", "/proc/self/cgroup", "/proc/self/mountinfo", NULL,
                          &err) == 0,
                  "real cgroupfs unusable: %s", err.msg);
    layout = cg_layout(ctx);
    fprintf(stderr, "test_real_host: %s\n", cg_describe(ctx));
    ck_assert(layout != CG_NONE);

    ck_assert_int_eq(bx_uuid4(uuid, NULL), 0);
    snprintf(name, sizeof(name), "unit-%d-%.8s", (int)getpid(), uuid);
    ck_assert_msg(cg_run_create(ctx, name, &lim, &run, &err) == 0, "create: %s", err.msg);
    n = run_dirs(run, dirs, fds);
    if (layout == CG_V2) {
        ck_assert_str_eq(file_in(dirs, n, "cpu.max"), "50000 100000\n");
        ck_assert_str_eq(file_in(dirs, n, "memory.max"), "67108864\n");
        ck_assert_str_eq(file_in(dirs, n, "pids.max"), "16\n");
        if (exists(P("%s/memory.swap.max", dirs[0])))
            ck_assert_str_eq(file_in(dirs, n, "memory.swap.max"), "0\n");
    } else {
        ck_assert_str_eq(file_in(dirs, n, "cpu.cfs_period_us"), "100000\n");
        ck_assert_str_eq(file_in(dirs, n, "cpu.cfs_quota_us"), "50000\n");
        ck_assert_str_eq(file_in(dirs, n, "memory.limit_in_bytes"), "67108864\n");
        ck_assert_str_eq(file_in(dirs, n, "pids.max"), "16\n");
    }
    /* 0.5 cores: pinned to one CPU where a cpuset controller exists. */
    if (cg_run_cpu_list(run)) {
        uint16_t ids[4];
        ck_assert_int_eq(cg_parse_cpu_list(cg_run_cpu_list(run), ids, 4), 1);
        ck_assert_str_eq(file_in(dirs, n, "cpuset.cpus"), P("%s\n", cg_run_cpu_list(run)));
    }

    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    child = fork();
    ck_assert(child >= 0);
    if (child == 0)
        real_child(fds, n, pfd[1], 16u << 20, 300);
    close(pfd[1]);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ck_assert_msg(read_byte(pfd[0], &c, 10000) == 0 && c == 'j', "child did not join");
    {
        const char *pc = get(P("/proc/%d/cgroup", (int)child));
        ck_assert_msg(pc && strstr(pc, P("/boxer/%s\n", name)), "child cgroups: %s", pc);
        /* The whole (single-threaded) process is in every hierarchy's run
         * cgroup, though on v1 it joined through "tasks". */
        for (int i = 0; i < n; i++) {
            const char *procs = get(P("%s/cgroup.procs", dirs[i]));
            char line[32];
            snprintf(line, sizeof(line), "%d\n", (int)child);
            ck_assert_msg(procs && (strncmp(procs, line, strlen(line)) == 0 ||
                                    strstr(procs, P("\n%d\n", (int)child))),
                          "%s: %s", dirs[i], procs);
        }
    }
    ck_assert_msg(read_byte(pfd[0], &c, 10000) == 0 && c == 'd', "child did not finish work");
    ck_assert_msg(cg_run_usage(run, &u, &err) == 0, "usage: %s", err.msg);
    fprintf(stderr, "test_real_host: cpu_usec=%llu peak=%llu oom=%d\n",
            (unsigned long long)u.cpu_usec, (unsigned long long)u.memory_peak_bytes, u.oom_killed);
    /* 300 ms of spinning under a 0.5-core quota: at least ~100 ms of CPU,
     * and clearly less than the 300 ms it would get unthrottled (quota per
     * 100 ms period, plus one period of slack). */
    ck_assert_uint_ge(u.cpu_usec, 50000);
    ck_assert_uint_le(u.cpu_usec, 260000);
    ck_assert_uint_ge(u.memory_peak_bytes, 16u << 20);
    ck_assert_int_eq(u.oom_killed, 0);

    destroy_real(&run);
    st = reap_status(child);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    for (int i = 0; i < n; i++)
        ck_assert_msg(!exists(dirs[i]), "%s remains", dirs[i]);
    close(pfd[0]);

    /* A run that exceeds its memory limit is OOM-killed and says so. */
    lim.memory_bytes = 32u << 20;
    lim.cpu_cores = 1.0;
    snprintf(name, sizeof(name), "unit-%d-%.8s-oom", (int)getpid(), uuid);
    ck_assert_msg(cg_run_create(ctx, name, &lim, &run, &err) == 0, "create: %s", err.msg);
    n = run_dirs(run, dirs, fds);
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    child = fork();
    ck_assert(child >= 0);
    if (child == 0)
        real_child(fds, n, pfd[1], 256u << 20, 0);
    close(pfd[1]);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    st = reap_status(child);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
    ck_assert_msg(cg_run_usage(run, &u, &err) == 0, "usage: %s", err.msg);
    ck_assert_int_eq(u.oom_killed, 1);
    ck_assert_uint_ge(u.memory_peak_bytes, 30u << 20);
    close(pfd[0]);
    destroy_real(&run);
    for (int i = 0; i < n; i++)
        ck_assert_msg(!exists(dirs[i]), "%s remains", dirs[i]);

    /* Remove the base directories this test created (if nothing else uses
     * them); bases that existed before belong to someone else. */
    for (int i = 0; i < n; i++) {
        char *slash = strrchr(dirs[i], '/');
        int pre = 0;
        *slash = '\0';
        for (int j = 0; j < nbefore; j++)
            pre |= strcmp(before[j], dirs[i]) == 0;
        if (!pre)
            rmdir(dirs[i]);
    }
    cg_free(&ctx);
}
END_TEST

static Suite *cgroup_suite(void)
{
    Suite *s = suite_create("cgroup");
    TCase *pure = tcase_create("pure");
    TCase *fake = tcase_create("fake");
    TCase *real = tcase_create("real");

    tcase_add_test(pure, test_parse_proc_cgroup);
    tcase_add_test(pure, test_cpu_quota);
    tcase_add_test(pure, test_cpu_list);
    suite_add_tcase(s, pure);

    tcase_add_checked_fixture(fake, fake_setup, fake_teardown);
    tcase_set_timeout(fake, 30);
    tcase_add_test(fake, test_hybrid_init_and_create);
    tcase_add_loop_test(fake, test_base_limits_hybrid, 0, 2);
    tcase_add_test(fake, test_v2_base_limits);
    tcase_add_test(fake, test_bad_names_and_limits);
    tcase_add_test(fake, test_create_failure_leaves_nothing);
    tcase_add_test(fake, test_hybrid_usage);
    tcase_add_test(fake, test_hybrid_destroy_kills);
    tcase_add_test(fake, test_destroy_never_kills_self);
    tcase_add_test(fake, test_cleanup_stale);
    tcase_add_test(fake, test_cpu_pinning_spreads);
    tcase_add_test(fake, test_unpin_once_sandbox_started);
    tcase_add_test(fake, test_cpuset_optional_and_base_kept_when_busy);
    tcase_add_test(fake, test_v1_comounted);
    tcase_add_test(fake, test_v1_missing_controller);
    tcase_add_test(fake, test_v2_moves_self_into_leaf);
    tcase_add_test(fake, test_v2_no_move_when_empty_or_enabled);
    tcase_add_test(fake, test_v2_create_usage_destroy);
    tcase_add_test(fake, test_v2_cpuset);
    suite_add_tcase(s, fake);

    tcase_set_timeout(real, 60);
    tcase_add_test(real, test_real_host);
    suite_add_tcase(s, real);
    return s;
}

int main(void)
{
    return check_main(cgroup_suite);
}
