/* Cgroup creation, limits, usage and cleanup for runs; see cgroup.h.
 *
 * Every file below a hierarchy is reached through directory fds opened with
 * O_NOFOLLOW, so a path is resolved once (in cg_init, from kernel-provided
 * mountinfo and /proc/self/cgroup) and never again from strings.  Run names
 * are validated to a single safe path component before use. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

#define CG_PERIOD_US 100000u
#define KILL_BATCH 1024
#define TREE_DEPTH_MAX 16

struct cg_run {
    int v2;
    int nhier;
    unsigned ctrls[CG_MAX_HIER];
    int parent_fd[CG_MAX_HIER]; /* dup of the ctx base fd */
    int dir_fd[CG_MAX_HIER];    /* the run cgroup, -1 once removed */
    char name[CG_NAME_MAX + 1];
    char *oci_path;       /* linux.cgroupsPath for runsc, see cg_run_oci_path */
    struct cg_cpus *cpus; /* reference held while the run pins CPUs */
    uint16_t *picked;     /* indices into cpus->id this run holds */
    int npicked;
    char *cpu_list; /* the cpuset.cpus value written, e.g. "0-1" */
    int shadow;     /* no cpuset cgroup: runsc reads cpu_list from a shadow */
};

/* ---- small helpers ---- */

static int is_sep(char c, const char *seps)
{
    return c != '\0' && strchr(seps, c) != NULL;
}

/* Whether `list` holds the exact token `word` (tokens split by `seps`, a
 * leading '+' ignored so "+cpu" written to a fake file still matches). */
int cg_has_token(const char *list, const char *word, const char *seps)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p) {
        const char *start;
        while (is_sep(*p, seps))
            p++;
        if (*p == '+')
            p++;
        start = p;
        while (*p && !is_sep(*p, seps))
            p++;
        if ((size_t)(p - start) == wl && memcmp(start, word, wl) == 0)
            return 1;
    }
    return 0;
}

int cg_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CG_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Writes a whole value to an existing cgroup file (O_TRUNC, as a shell's
 * "echo v > file" does, which cgroupfs accepts).  Never creates files:
 * cgroupfs provides them, and a missing one is reported as ENOENT so callers
 * can treat optional knobs as optional. */
int cg_write_at(int dirfd, const char *file, const char *val, struct bx_err *err)
{
    int fd = openat(dirfd, file, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", file);
    if (bx_write_all(fd, val, strlen(val)) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write \"%s\" to %s", val, file);
        bx_close(&fd);
        return -1;
    }
    if (close(fd) < 0 && errno != EINTR)
        return bx_err_sys(err, BX_E_INTERNAL, "close %s", file);
    return 0;
}

int cg_write_u64_at(int dirfd, const char *file, uint64_t v, struct bx_err *err)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return cg_write_at(dirfd, file, buf, err);
}

/* Reads a file; *missing is set (and 0 returned) when it does not exist. */
int cg_read_at(int dirfd, const char *file, size_t max, char **out, int *missing,
               struct bx_err *err)
{
    struct bx_err e;
    *out = NULL;
    *missing = 0;
    if (bx_read_file_at(dirfd, file, max, out, NULL, &e) == 0)
        return 0;
    if (e.sys_errno == ENOENT) {
        *missing = 1;
        return 0;
    }
    if (err)
        *err = e;
    return -1;
}

/* Strict unsigned value of a whole single-value file ("123\n"). */
static int parse_value(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        n--;
    return bx_parse_u64(s, n, UINT64_MAX, out);
}

/* Finds "key <u64>" in a flat-keyed file (cpu.stat, memory.events,
 * memory.oom_control).  Returns 0 found, 1 absent, -1 malformed value. */
static int stat_find_key(const char *text, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > kl && memcmp(p, key, kl) == 0 && p[kl] == ' ')
            return bx_parse_u64(p + kl + 1, ll - kl - 1, UINT64_MAX, out) < 0 ? -1 : 0;
        p += ll + (eol ? 1 : 0);
    }
    return 1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    nanosleep(&ts, NULL); /* a short sleep on EINTR is harmless */
}

/* ---- pure helpers ---- */

uint64_t cg_cpu_quota_us(double cpu_cores)
{
    double q;
    if (!(cpu_cores > 0.0))
        return 1000;
    if (cpu_cores > 1024.0)
        cpu_cores = 1024.0;
    /* Positive and at most 1.024e8 here, so truncating q rounds half up. */
    q = cpu_cores * (double)CG_PERIOD_US + 0.5;
    if (q < 1000.0)
        return 1000;
    return (uint64_t)q;
}

int cg_parse_cpu_list(const char *text, uint16_t *out, int max)
{
    const char *p = text;
    long prev = -1;
    int n = 0;

    if (!text || max < 0)
        return -1;
    while (*p == ' ' || *p == '\n')
        p++;
    while (*p && *p != '\n') {
        uint64_t lo, hi;
        const char *s = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (bx_parse_u64(s, (size_t)(p - s), CG_CPU_ID_MAX, &lo) < 0)
            return -1;
        hi = lo;
        if (*p == '-') {
            s = ++p;
            while (*p >= '0' && *p <= '9')
                p++;
            if (bx_parse_u64(s, (size_t)(p - s), CG_CPU_ID_MAX, &hi) < 0 || hi < lo)
                return -1;
        }
        /* Strictly ascending, as the kernel prints it: no duplicates to
         * count twice, and a bounded amount of work per byte of input. */
        if ((long)lo <= prev)
            return -1;
        for (uint64_t c = lo; c <= hi && n < max; c++)
            out[n++] = (uint16_t)c;
        prev = (long)hi;
        if (*p == ',') {
            p++;
            if (*p < '0' || *p > '9')
                return -1;
        } else if (*p && *p != '\n') {
            return -1;
        }
    }
    while (*p == '\n' || *p == ' ')
        p++;
    return *p ? -1 : n;
}

int cg_cpu_count(double cpu_cores)
{
    if (!(cpu_cores > 0.0))
        return 1;
    if (cpu_cores >= (double)CG_CPUS_MAX)
        return CG_CPUS_MAX;
    /* ceil, but 1.0000000001 (a float artefact of e.g. 0.1 * 10) is 1. */
    return (int)ceil(cpu_cores - 1e-9);
}

/* ---- CPU pinning ---- */

void cg_cpus_unref(struct cg_cpus **pc)
{
    struct cg_cpus *c = *pc;
    if (c && --c->refs == 0) {
        free(c->mems);
        free(c->shadow_mount);
        free(c->shadow_rel);
        free(c);
    }
    *pc = NULL;
}

/* Picks `want` of the least-loaded CPUs, scanning from a rotating start so
 * that runs of equal load spread over the machine.  Passes go up one load
 * level at a time, so the work is O(CPUs x load levels). */
static void cpus_pick(struct cg_cpus *c, int want, uint16_t *picked, uint8_t *taken)
{
    uint32_t level = UINT32_MAX;
    unsigned start = c->next % (unsigned)c->n;
    int got = 0;
    memset(taken, 0, (size_t)c->n);
    for (int i = 0; i < c->n; i++)
        if (c->load[i] < level)
            level = c->load[i];
    while (got < want) {
        uint32_t nextlevel = UINT32_MAX;
        for (int k = 0; k < c->n && got < want; k++) {
            int i = (int)((start + (unsigned)k) % (unsigned)c->n);
            if (taken[i])
                continue;
            if (c->load[i] == level) {
                taken[i] = 1;
                picked[got++] = (uint16_t)i;
                c->next = (unsigned)(i + 1) % (unsigned)c->n;
            } else if (c->load[i] > level && c->load[i] < nextlevel) {
                nextlevel = c->load[i];
            }
        }
        if (nextlevel == UINT32_MAX)
            break;
        level = nextlevel;
    }
    for (int k = 0; k < got; k++)
        c->load[picked[k]]++;
}

/* The picked CPUs as a kernel list ("0-1,4"), ascending. */
static char *cpus_format(const struct cg_cpus *c, const uint8_t *taken)
{
    struct sbuf sb;
    sbuf_init(&sb, (size_t)c->n * 12 + 16);
    for (int i = 0; i < c->n; i++) {
        int j = i;
        if (!taken[i])
            continue;
        while (j + 1 < c->n && taken[j + 1] && c->id[j + 1] == c->id[j] + 1)
            j++;
        if (sbuf_appendf(&sb, "%s%u", sb.len ? "," : "", (unsigned)c->id[i]) < 0 ||
            (j > i && sbuf_appendf(&sb, "-%u", (unsigned)c->id[j]) < 0)) {
            sbuf_free(&sb);
            return NULL;
        }
        i = j;
    }
    return sbuf_steal(&sb, NULL);
}

/* Every usable CPU as a kernel list. */
static char *cpus_format_all(const struct cg_cpus *c)
{
    uint8_t *all = malloc((size_t)c->n);
    char *s;
    if (!all)
        return NULL;
    memset(all, 1, (size_t)c->n);
    s = cpus_format(c, all);
    free(all);
    return s;
}

static int run_pin_cpus(struct cg_run *run, struct cg_cpus *c, double cores, struct bx_err *err)
{
    int want = cg_cpu_count(cores);
    uint8_t *taken;
    if (want > c->n)
        want = c->n;
    run->picked = calloc((size_t)want, sizeof(*run->picked));
    taken = malloc((size_t)c->n);
    if (!run->picked || !taken) {
        free(taken);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    cpus_pick(c, want, run->picked, taken);
    run->npicked = want;
    run->cpus = c;
    c->refs++;
    run->cpu_list = cpus_format(c, taken);
    free(taken);
    if (!run->cpu_list)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    return 0;
}

static void run_unpin_cpus(struct cg_run *run)
{
    if (!run->cpus)
        return;
    for (int k = 0; k < run->npicked; k++)
        if (run->cpus->load[run->picked[k]] > 0)
            run->cpus->load[run->picked[k]]--;
    cg_cpus_unref(&run->cpus);
}
/* ---- killing and removal ---- */

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads up to max pids of dirfd's cgroup.procs; returns how many the file
 * lists in total (may exceed max), or -1.  A vanished cgroup lists none. */
static long read_pids(int dirfd, pid_t *pids, size_t max, size_t *n, struct bx_err *err)
{
    char *text = NULL;
    int missing;
    long total = 0;
    *n = 0;
    if (cg_read_at(dirfd, "cgroup.procs", PROCS_FILE_MAX, &text, &missing, err) < 0)
        return -1;
    if (missing)
        return 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        uint64_t v;
        if (ll > 0) {
            if (bx_parse_u64(p, ll, INT_MAX, &v) < 0 || v == 0) {
                free(text);
                return bx_err_set(err, BX_E_INTERNAL, EINVAL, "bad pid in cgroup.procs");
            }
            if (*n < max)
                pids[(*n)++] = (pid_t)v;
            total++;
        }
        p += ll + (eol ? 1 : 0);
    }
    free(text);
    return total;
}

/* One kill pass over one cgroup.  A pid read from cgroup.procs may be
 * recycled by an unrelated process at any moment, so each pid is first
 * pinned with a pidfd and only signalled if cgroup.procs still lists it
 * afterwards: then the process holding that pid when the pidfd was opened is
 * either still that member, or dead (the signal then fails with ESRCH).
 * Boxer's own pid is never signalled.  Returns the number of processes the
 * cgroup held, or -1. */
static long kill_pass(int dirfd, int signal_them, struct bx_err *err)
{
    pid_t pids[KILL_BATCH], again[KILL_BATCH];
    int pfd[KILL_BATCH];
    size_t n = 0, n2 = 0;
    long total;
    pid_t self = getpid();

    total = read_pids(dirfd, pids, KILL_BATCH, &n, err);
    if (total <= 0 || !signal_them)
        return total;
    for (size_t i = 0; i < n; i++) {
        pfd[i] = -1;
        if (pids[i] == self)
            continue;
        pfd[i] = (int)syscall(SYS_pidfd_open, pids[i], 0);
        if (pfd[i] < 0 && errno == ENOSYS)
            pfd[i] = -2; /* pre-5.3 kernel: fall back to kill() below */
    }
    if (read_pids(dirfd, again, KILL_BATCH, &n2, err) < 0) {
        total = -1;
        goto out;
    }
    qsort(again, n2, sizeof(again[0]), cmp_pid);
    for (size_t i = 0; i < n; i++) {
        if (pfd[i] == -1 || !bsearch(&pids[i], again, n2, sizeof(again[0]), cmp_pid))
            continue;
        if (pfd[i] >= 0)
            syscall(SYS_pidfd_send_signal, pfd[i], SIGKILL, NULL, 0);
        else
            kill(pids[i], SIGKILL);
    }
out:
    for (size_t i = 0; i < n; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    return total;
}

/* Calls fn for every subdirectory of dirfd (the child cgroups). */
int cg_for_each_subdir(int dirfd, subdir_fn fn, void *arg, struct bx_err *err)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *de;
    int ret = 0;

    if (dfd < 0)
        return errno == ENOENT ? 0 : bx_err_sys(err, BX_E_INTERNAL, "open cgroup dir");
    d = fdopendir(dfd);
    if (!d) {
        bx_close(&dfd);
        return bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        int isdir = de->d_type == DT_DIR;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            isdir = S_ISDIR(st.st_mode);
        }
        if (isdir && (ret = fn(dirfd, de->d_name, arg, err)) < 0)
            break;
    }
    if (ret == 0 && errno != 0 && errno != ENOENT)
        ret = bx_err_sys(err, BX_E_INTERNAL, "readdir cgroup dir");
    closedir(d);
    return ret;
}

struct kill_arg {
    int depth;
    int signal_them;
    long total;
};

static int kill_tree(int dirfd, struct kill_arg *ka, struct bx_err *err);

static int kill_child(int dirfd, const char *name, void *arg, struct bx_err *err)
{
    struct kill_arg *ka = arg;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    int ret;
    if (fd < 0)
        return errno == ENOENT ? 0 : bx_err_sys(err, BX_E_INTERNAL, "open cgroup %s", name);
    ka->depth++;
    ret = kill_tree(fd, ka, err);
    ka->depth--;
    bx_close(&fd);
    return ret;
}

/* Kills (or, signal_them 0, only counts) the processes of a cgroup and all
 * its descendants; the depth cap bounds recursion on a hostile tree. */
static int kill_tree(int dirfd, struct kill_arg *ka, struct bx_err *err)
{
    long n;
    if (ka->depth > TREE_DEPTH_MAX)
        return bx_err_set(err, BX_E_INTERNAL, ELOOP, "cgroup tree too deep");
    n = kill_pass(dirfd, ka->signal_them, err);
    if (n < 0)
        return -1;
    ka->total += n;
    return cg_for_each_subdir(dirfd, kill_child, ka, err);
}

static int rmdir_tree(int parent, const char *name, int depth, struct bx_err *err);

static int rmdir_child(int dirfd, const char *name, void *arg, struct bx_err *err)
{
    return rmdir_tree(dirfd, name, *(int *)arg + 1, err);
}

/* Removes a cgroup and its child cgroups bottom-up.  cgroupfs removes the
 * interface files with the directory; a missing directory is fine. */
static int rmdir_tree(int parent, const char *name, int depth, struct bx_err *err)
{
    int fd;
    if (depth > TREE_DEPTH_MAX)
        return bx_err_set(err, BX_E_INTERNAL, ELOOP, "cgroup tree too deep");
    fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : bx_err_sys(err, BX_E_INTERNAL, "open cgroup %s", name);
    if (cg_for_each_subdir(fd, rmdir_child, &depth, err) < 0) {
        bx_close(&fd);
        return -1;
    }
    bx_close(&fd);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return bx_err_sys(err, BX_E_INTERNAL, "rmdir cgroup %s", name);
    return 0;
}

/* The kill-wait-rmdir loop shared by destroy and stale cleanup.  dir_fd[i]
 * are the cgroups (set to -1 once removed), parent_fd[i]/name their
 * location.  Returns 0 when all are gone, REAP_BUSY (err EBUSY) when the
 * deadline passed first, -1 on other errors. */
int cg_reap(int n, int v2, const int *parent_fd, int *dir_fd, const char *name, unsigned wait_ms,
            struct bx_err *err)
{
    uint64_t deadline = bx_now_ms() + wait_ms;
    for (;;) {
        long total = 0;
        int busy = 0;
        for (int i = 0; i < n; i++) {
            struct kill_arg ka = {0, 1, 0};
            struct bx_err e;
            if (dir_fd[i] < 0)
                continue;
            /* cgroup.kill (5.14+) kills the whole subtree atomically, so
             * forks racing with the kill cannot escape it; it is written on
             * every pass while anything is left. */
            if (v2) {
                if (cg_write_at(dir_fd[i], "cgroup.kill", "1", &e) == 0)
                    ka.signal_them = 0;
                else if (e.sys_errno != ENOENT)
                    return bx_err_set(err, BX_E_INTERNAL, e.sys_errno, "%s: %s", name, e.msg);
            }
            if (kill_tree(dir_fd[i], &ka, err) < 0)
                return bx_err_wrap(err, "kill processes of cgroup %s", name);
            total += ka.total;
        }
        if (total == 0) {
            for (int i = 0; i < n; i++) {
                struct bx_err e;
                if (dir_fd[i] < 0)
                    continue;
                if (rmdir_tree(parent_fd[i], name, 0, &e) == 0) {
                    bx_close(&dir_fd[i]);
                } else if (e.sys_errno == EBUSY || e.sys_errno == ENOTEMPTY) {
                    busy = 1;
                } else {
                    if (err)
                        *err = e;
                    return -1;
                }
            }
            if (!busy)
                return 0;
        }
        if (bx_now_ms() >= deadline) {
            bx_err_set(err, BX_E_INTERNAL, EBUSY, "cgroup %s still has %ld process(es) after SIGKILL", name,
                       total);
            errno = EBUSY;
            return REAP_BUSY;
        }
        sleep_ms(5);
    }
}

/* ---- runs ---- */

static void run_free(struct cg_run *run)
{
    for (int i = 0; i < CG_MAX_HIER; i++) {
        bx_close(&run->parent_fd[i]);
        bx_close(&run->dir_fd[i]);
    }
    run_unpin_cpus(run);
    free(run->picked);
    free(run->cpu_list);
    free(run->oci_path);
    free(run);
}

static int write_limits(int dirfd, unsigned ctrls, int v2, const struct cg_limits *lim,
                        const struct cg_run *run, struct bx_err *err)
{
    uint64_t quota = cg_cpu_quota_us(lim->cpu_cores);
    struct bx_err e;
    char buf[64];

    /* runsc sizes the sandbox (nproc, /proc/cpuinfo, sched_getaffinity)
     * from cpuset.cpus of the cgroup it starts in; v1 needs the memory
     * nodes too before a task may join. */
    if ((ctrls & CGC_CPUSET) && run->cpu_list) {
        if (!v2 && cg_write_at(dirfd, "cpuset.mems", run->cpus->mems, err) < 0)
            return -1;
        if (cg_write_at(dirfd, "cpuset.cpus", run->cpu_list, err) < 0)
            return -1;
    }
    if (v2) {
        snprintf(buf, sizeof(buf), "%llu %u", (unsigned long long)quota, CG_PERIOD_US);
        if (cg_write_at(dirfd, "cpu.max", buf, err) < 0 ||
            cg_write_u64_at(dirfd, "memory.max", lim->memory_bytes, err) < 0 ||
            cg_write_u64_at(dirfd, "pids.max", lim->pids_max, err) < 0)
            return -1;
        /* Absent without swap accounting: then there is no swap to limit. */
        if (cg_write_at(dirfd, "memory.swap.max", "0", &e) < 0 && e.sys_errno != ENOENT) {
            if (err)
                *err = e;
            return -1;
        }
        return 0;
    }
    if (ctrls & CGC_CPU) {
        if (cg_write_u64_at(dirfd, "cpu.cfs_period_us", CG_PERIOD_US, err) < 0 ||
            cg_write_u64_at(dirfd, "cpu.cfs_quota_us", quota, err) < 0)
            return -1;
    }
    if (ctrls & CGC_MEMORY) {
        if (cg_write_u64_at(dirfd, "memory.limit_in_bytes", lim->memory_bytes, err) < 0)
            return -1;
        /* memsw (memory + swap) equal to the memory limit means no swap;
         * absent when the kernel does not account swap. */
        if (cg_write_u64_at(dirfd, "memory.memsw.limit_in_bytes", lim->memory_bytes, &e) < 0 &&
            e.sys_errno != ENOENT) {
            if (err)
                *err = e;
            return -1;
        }
    }
    if (ctrls & CGC_PIDS) {
        if (cg_write_u64_at(dirfd, "pids.max", lim->pids_max, err) < 0)
            return -1;
    }
    return 0;
}

static int run_create(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim, int pin,
                      struct cg_run **out, struct bx_err *err)
{
    struct cg_run *run = NULL;
    int ret = -1;

    *out = NULL;
    if (!ctx || ctx->nhier == 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "cgroups are not initialised");
    if (!name || !cg_valid_name(name))
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "invalid run cgroup name");
    if (!lim || !(lim->cpu_cores > 0.0) || !isfinite(lim->cpu_cores) || lim->memory_bytes == 0 ||
        lim->pids_max == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits must be positive");
    run = calloc(1, sizeof(*run));
    if (!run)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    for (int i = 0; i < CG_MAX_HIER; i++) {
        run->parent_fd[i] = -1;
        run->dir_fd[i] = -1;
    }
    run->v2 = ctx->layout == CG_V2;
    snprintf(run->name, sizeof(run->name), "%s", name);
    if (run->v2 ? asprintf(&run->oci_path, "%s/%s/%s", ctx->v2_rel ? ctx->v2_rel : "",
                           ctx->base_name, name) < 0
                : !(run->oci_path = strdup("."))) {
        run->oci_path = NULL;
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (ctx->cpus && run_pin_cpus(run, ctx->cpus, lim->cpu_cores, err) < 0)
        goto out;
    run->shadow = ctx->cpus && ctx->cpus->shadow_mount && !pin;
    for (int h = 0; h < ctx->nhier; h++) {
        int i = run->nhier;
        /* With the shadow, the cpuset hierarchy only ever served runsc's
         * CPU count: runs stay in our own cpuset cgroup. */
        if (run->shadow && ctx->hier[h].ctrls == CGC_CPUSET)
            continue;
        run->ctrls[i] = ctx->hier[h].ctrls;
        run->parent_fd[i] = fcntl(ctx->hier[h].base_fd, F_DUPFD_CLOEXEC, 0);
        if (run->parent_fd[i] < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "dup");
            goto out;
        }
        run->nhier = i + 1;
        /* mkdir must create it: an existing cgroup of that name is not ours
         * to reuse (it may hold another run's processes). */
        if (mkdirat(run->parent_fd[i], name, 0755) < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "create cgroup %s/%s", ctx->hier[h].base, name);
            goto out;
        }
        run->dir_fd[i] =
            openat(run->parent_fd[i], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (run->dir_fd[i] < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "open cgroup %s/%s", ctx->hier[h].base, name);
            unlinkat(run->parent_fd[i], name, AT_REMOVEDIR);
            goto out;
        }
        if (write_limits(run->dir_fd[i], run->ctrls[i], run->v2, lim, run, err) < 0) {
            bx_err_wrap(err, "cgroup %s/%s", ctx->hier[h].base, name);
            goto out;
        }
    }
    *out = bx_steal_ptr(&run);
    ret = 0;
out:
    if (run) {
        /* Nothing has joined yet: the directories are empty. */
        for (int i = 0; i < run->nhier; i++)
            if (run->dir_fd[i] >= 0)
                rmdir_tree(run->parent_fd[i], run->name, 0, NULL);
        run_free(run);
    }
    return ret;
}

int cg_run_create(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim,
                  struct cg_run **out, struct bx_err *err)
{
    return run_create(ctx, name, lim, 0, out, err);
}

int cg_run_create_pinned(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim,
                         struct cg_run **out, struct bx_err *err)
{
    return run_create(ctx, name, lim, 1, out, err);
}

int cg_run_procs_fds(struct cg_run *run, int *fds, int max, struct bx_err *err)
{
    int n = 0;
    if (!run || max < run->nhier)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "room for %d cgroup fds needed", run ? run->nhier : 0);
    for (int i = 0; i < run->nhier; i++) {
        if (run->dir_fd[i] < 0)
            continue;
        /* v1: "tasks".  Writing "0" there moves only the writing thread,
         * which the kernel (5.19+) does without taking
         * cgroup_threadgroup_rwsem for writing; cgroup.procs takes it, and
         * that waits for an RCU grace period: 5-15 ms per join measured
         * here, against 0.2 ms.  The child that writes is single-threaded
         * (between fork and exec), so the thread is the whole process.
         * v2 has no such file for domain cgroups. */
        const char *file = run->v2 ? "cgroup.procs" : "tasks";
        fds[n] = openat(run->dir_fd[i], file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fds[n] < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "open %s of %s", file, run->name);
            while (n > 0)
                bx_close(&fds[--n]);
            return -1;
        }
        n++;
    }
    return n;
}

const char *cg_run_oci_path(const struct cg_run *run)
{
    return run ? run->oci_path : NULL;
}

const char *cg_run_cpu_list(const struct cg_run *run)
{
    return run && !run->shadow ? run->cpu_list : NULL;
}

int cg_run_cpuset_shadow(const struct cg_run *run, const char **mount, const char **rel,
                         const char **cpus)
{
    if (!run || !run->shadow || !run->cpu_list)
        return 0;
    *mount = run->cpus->shadow_mount;
    *rel = run->cpus->shadow_rel;
    *cpus = run->cpu_list;
    return 1;
}

/* Whether a process of the cgroup (dirfd) runs argv[0] "runsc-sandbox",
 * the name runsc gives the sandbox it starts after reading cpuset.cpus.
 * A pid that exits and is reused meanwhile can at worst unpin a run early,
 * which only widens what a sandbox that has not booted yet may see. */
static int has_sandbox_process(int dirfd, struct bx_err *err)
{
    static const char want[] = "runsc-sandbox"; /* with its NUL */
    char *procs = NULL;
    int missing, found = 0;
    if (cg_read_at(dirfd, "cgroup.procs", PROCS_FILE_MAX, &procs, &missing, err) < 0)
        return -1;
    for (char *p = procs; p && *p && !found;) {
        char path[64], buf[sizeof(want)];
        uint64_t pid;
        size_t n = strspn(p, "0123456789");
        int fd;
        if (n == 0 || bx_parse_u64(p, n, INT_MAX, &pid) < 0) {
            free(procs);
            return bx_err_set(err, BX_E_INTERNAL, EINVAL, "bad cgroup.procs");
        }
        p += n;
        p += strspn(p, "\n");
        snprintf(path, sizeof(path), "/proc/%llu/cmdline", (unsigned long long)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        found = bx_read_full(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
                memcmp(buf, want, sizeof(want)) == 0;
        close(fd);
    }
    free(procs);
    return found;
}

int cg_run_unpin_started(struct cg_run *run, struct bx_err *err)
{
    int r;
    char *all;
    if (!run || !run->cpus)
        return 1;
    for (int i = 0; i < run->nhier; i++) {
        if (!(run->ctrls[i] & CGC_CPUSET) || run->dir_fd[i] < 0)
            continue;
        r = has_sandbox_process(run->dir_fd[i], err);
        if (r <= 0)
            return r;
        all = cpus_format_all(run->cpus);
        if (!all)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        r = cg_write_at(run->dir_fd[i], "cpuset.cpus", all, err);
        free(all);
        if (r < 0)
            return -1;
        run_unpin_cpus(run);
        return 1;
    }
    return 1;
}

int cg_run_dirfd(struct cg_run *run)
{
    return run && run->v2 ? run->dir_fd[0] : -1;
}

/* Reads one numeric value: whole-file (key NULL) or "key N" line.  A
 * missing file or key leaves *v untouched and returns 1. */
static int read_num(int dirfd, const char *file, const char *key, uint64_t *v, struct bx_err *err)
{
    char *text = NULL;
    int missing, r;
    if (cg_read_at(dirfd, file, SMALL_FILE_MAX, &text, &missing, err) < 0)
        return -1;
    if (missing)
        return 1;
    r = key ? stat_find_key(text, key, v) : (parse_value(text, v) < 0 ? -1 : 0);
    free(text);
    if (r < 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "cannot parse %s%s%s", file, key ? " " : "",
                          key ? key : "");
    return r;
}

int cg_run_usage(struct cg_run *run, struct cg_usage *u, struct bx_err *err)
{
    uint64_t v;
    int r;

    memset(u, 0, sizeof(*u));
    if (!run)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "no run cgroup");
    if (run->v2) {
        int fd = run->dir_fd[0];
        if (fd < 0)
            return bx_err_set(err, BX_E_INTERNAL, ENOENT, "cgroup %s is gone", run->name);
        if (read_num(fd, "cpu.stat", "usage_usec", &u->cpu_usec, err) < 0)
            return -1;
        r = read_num(fd, "memory.peak", NULL, &u->memory_peak_bytes, err);
        if (r > 0)
            r = read_num(fd, "memory.current", NULL, &u->memory_peak_bytes, err);
        if (r < 0)
            return -1;
        v = 0;
        if (read_num(fd, "memory.events", "oom_kill", &v, err) < 0)
            return -1;
        u->oom_killed = v > 0;
        return 0;
    }
    for (int i = 0; i < run->nhier; i++) {
        int fd = run->dir_fd[i];
        if (fd < 0)
            return bx_err_set(err, BX_E_INTERNAL, ENOENT, "cgroup %s is gone", run->name);
        if (run->ctrls[i] & CGC_CPUACCT) {
            v = 0;
            if (read_num(fd, "cpuacct.usage", NULL, &v, err) < 0)
                return -1;
            u->cpu_usec = v / 1000u;
        }
        if (run->ctrls[i] & CGC_MEMORY) {
            if (read_num(fd, "memory.max_usage_in_bytes", NULL, &u->memory_peak_bytes, err) < 0)
                return -1;
            /* "oom_kill N" (4.13+) counts kills; older kernels only say
             * whether the group is under OOM right now. */
            v = 0;
            r = read_num(fd, "memory.oom_control", "oom_kill", &v, err);
            if (r < 0)
                return -1;
            if (r > 0 && read_num(fd, "memory.oom_control", "under_oom", &v, err) < 0)
                return -1;
            u->oom_killed = v > 0;
        }
    }
    return 0;
}

int cg_run_destroy(struct cg_run **prun, struct bx_err *err)
{
    struct cg_run *run = prun ? *prun : NULL;
    int r;
    if (!run)
        return 0;
    r = cg_reap(run->nhier, run->v2, run->parent_fd, run->dir_fd, run->name, CG_DESTROY_WAIT_MS,
                err);
    if (r == REAP_BUSY)
        return -1; /* *run kept: the caller retries later */
    run_free(run);
    *prun = NULL;
    return r < 0 ? -1 : 0;
}

void cg_run_abandon(struct cg_run **prun)
{
    if (prun && *prun) {
        run_free(*prun);
        *prun = NULL;
    }
}
