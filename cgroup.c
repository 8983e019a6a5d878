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

#include "util.h"

#define CGC_CPU 1u
#define CGC_CPUACCT 2u
#define CGC_MEMORY 4u
#define CGC_PIDS 8u
#define CGC_CPUSET 16u
#define CGC_REQUIRED (CGC_CPU | CGC_MEMORY | CGC_PIDS)

#define CG_MAX_HIER CG_MAX_PROCS_FDS
#define CG_PERIOD_US 100000u
#define CG_SUPERVISOR "boxer-supervisor"
#define CG_V2_ENABLE "+cpu +memory +pids"

#define PROC_CGROUP_MAX (64u * 1024u)
#define MOUNTINFO_MAX (8u * 1024u * 1024u)
#define PROCS_FILE_MAX (1u * 1024u * 1024u)
#define SMALL_FILE_MAX (64u * 1024u)
#define KILL_BATCH 1024
#define TREE_DEPTH_MAX 16
#define MI_FIELDS_MAX 64

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
};

/* ---- small helpers ---- */

static int is_sep(char c, const char *seps)
{
    return c != '\0' && strchr(seps, c) != NULL;
}

/* Whether `list` holds the exact token `word` (tokens split by `seps`, a
 * leading '+' ignored so "+cpu" written to a fake file still matches). */
static int has_token(const char *list, const char *word, const char *seps)
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

static int valid_name(const char *name)
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
static int write_at(int dirfd, const char *file, const char *val, struct bx_err *err)
{
    int fd = openat(dirfd, file, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return bx_err_sys(err, 500, "open %s", file);
    if (bx_write_all(fd, val, strlen(val)) < 0) {
        bx_err_sys(err, 500, "write \"%s\" to %s", val, file);
        bx_close(&fd);
        return -1;
    }
    if (close(fd) < 0 && errno != EINTR)
        return bx_err_sys(err, 500, "close %s", file);
    return 0;
}

static int write_u64_at(int dirfd, const char *file, uint64_t v, struct bx_err *err)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return write_at(dirfd, file, buf, err);
}

/* Reads a file; *missing is set (and 0 returned) when it does not exist. */
static int read_at(int dirfd, const char *file, size_t max, char **out, int *missing,
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
static int find_key(const char *text, const char *key, uint64_t *out)
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

static void cpus_unref(struct cg_cpus **pc)
{
    struct cg_cpus *c = *pc;
    if (c && --c->refs == 0) {
        free(c->mems);
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
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    }
    cpus_pick(c, want, run->picked, taken);
    run->npicked = want;
    run->cpus = c;
    c->refs++;
    run->cpu_list = cpus_format(c, taken);
    free(taken);
    if (!run->cpu_list)
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    return 0;
}

static void run_unpin_cpus(struct cg_run *run)
{
    if (!run->cpus)
        return;
    for (int k = 0; k < run->npicked; k++)
        if (run->cpus->load[run->picked[k]] > 0)
            run->cpus->load[run->picked[k]]--;
    cpus_unref(&run->cpus);
}

/* An own-cgroup path must be absolute with no empty, "." or ".." component
 * (a trailing "/" only for the root) so it can be opened component-wise
 * below a mount point without escaping it. */
static int valid_cgroup_path(const char *p, size_t n)
{
    size_t i = 1;
    if (n == 0 || p[0] != '/')
        return 0;
    if (n == 1)
        return 1;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        if (j == i)
            return 0;
        if ((j - i == 1 && p[i] == '.') || (j - i == 2 && p[i] == '.' && p[i + 1] == '.'))
            return 0;
        if (j == n)
            break;
        i = j + 1;
        if (i == n)
            return 0; /* trailing slash */
    }
    return 1;
}

int cg_parse_proc_cgroup(const char *text, const char *controller, char *out, size_t cap)
{
    const char *p = text;
    if (!text || !out || cap == 0)
        return -1;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        const char *c1 = memchr(p, ':', ll);
        const char *c2 = c1 ? memchr(c1 + 1, ':', ll - (size_t)(c1 + 1 - p)) : NULL;
        if (c1 && c2) {
            const char *ctrl = c1 + 1;
            size_t cl = (size_t)(c2 - ctrl);
            const char *path = c2 + 1;
            size_t pl = ll - (size_t)(path - p);
            int match = 0;
            if (!controller) {
                match = cl == 0 && c1 - p == 1 && p[0] == '0';
            } else if (cl > 0) {
                size_t wl = strlen(controller);
                const char *t = ctrl;
                while (t < c2) {
                    const char *comma = memchr(t, ',', (size_t)(c2 - t));
                    const char *te = comma ? comma : c2;
                    if ((size_t)(te - t) == wl && memcmp(t, controller, wl) == 0)
                        match = 1;
                    t = te + 1;
                }
            }
            if (match) {
                if (!valid_cgroup_path(path, pl) || pl >= cap)
                    return -1;
                memcpy(out, path, pl);
                out[pl] = '\0';
                return 0;
            }
        }
        p += ll + (eol ? 1 : 0);
    }
    return -1;
}

/* ---- mountinfo ---- */

struct mnt {
    const char *root;  /* root of the mount within its hierarchy */
    const char *point; /* mount point */
    int v2;
    unsigned ctrls; /* v1 controllers from the super options */
};

/* Decodes the kernel's \ooo escapes in place; refuses a decoded NUL. */
static int unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            int v = (r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0');
            if (v == 0)
                return -1;
            *w++ = (char)v;
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return 0;
}

static unsigned v1_ctrls(const char *superopts)
{
    unsigned c = 0;
    if (has_token(superopts, "cpu", ","))
        c |= CGC_CPU;
    if (has_token(superopts, "cpuacct", ","))
        c |= CGC_CPUACCT;
    if (has_token(superopts, "memory", ","))
        c |= CGC_MEMORY;
    if (has_token(superopts, "pids", ","))
        c |= CGC_PIDS;
    if (has_token(superopts, "cpuset", ","))
        c |= CGC_CPUSET;
    return c;
}

static int under_root(const char *point, const char *fsroot)
{
    size_t n = strlen(fsroot);
    return strncmp(point, fsroot, n) == 0 && (point[n] == '\0' || point[n] == '/');
}

/* Parses mountinfo in place (the buffer is modified) and keeps the cgroup
 * mounts under fsroot.  Lines that do not parse are skipped: the file comes
 * from the kernel, and a line we cannot read is a mount we do not use. */
static int parse_mountinfo(char *text, const char *fsroot, struct mnt *m, int max)
{
    int n = 0;
    char *p = text;
    while (*p && n < max) {
        char *eol = strchr(p, '\n');
        char *f[MI_FIELDS_MAX];
        int nf = 0, dash = -1;
        char *s;
        if (eol)
            *eol = '\0';
        s = p;
        p = eol ? eol + 1 : p + strlen(p);
        while (*s && nf < MI_FIELDS_MAX) {
            f[nf++] = s;
            while (*s && *s != ' ')
                s++;
            if (*s)
                *s++ = '\0';
        }
        for (int i = 6; i < nf; i++) {
            if (strcmp(f[i], "-") == 0) {
                dash = i;
                break;
            }
        }
        if (dash < 0 || dash + 3 >= nf)
            continue;
        if (strcmp(f[dash + 1], "cgroup") != 0 && strcmp(f[dash + 1], "cgroup2") != 0)
            continue;
        if (unescape(f[3]) < 0 || unescape(f[4]) < 0 || f[3][0] != '/' || f[4][0] != '/')
            continue;
        if (!under_root(f[4], fsroot))
            continue;
        m[n].root = f[3];
        m[n].point = f[4];
        m[n].v2 = strcmp(f[dash + 1], "cgroup2") == 0;
        m[n].ctrls = m[n].v2 ? 0 : v1_ctrls(f[dash + 3]);
        n++;
    }
    return n;
}

/* The part of our cgroup path below the mount's root ("" or "/a/b"), or
 * NULL when the mount does not contain our cgroup. */
static const char *rel_in_mount(const char *mroot, const char *own)
{
    size_t n = strlen(mroot);
    if (strcmp(mroot, "/") == 0)
        return strcmp(own, "/") == 0 ? "" : own;
    if (strncmp(own, mroot, n) == 0 && (own[n] == '\0' || own[n] == '/'))
        return own + n;
    return NULL;
}

/* Opens <point><rel> as a directory (rel "" or "/a/b", validated). */
static int open_own(const char *point, const char *rel, struct bx_err *err)
{
    int mfd, fd;
    mfd = open(point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0)
        return bx_err_sys(err, 500, "open cgroup mount %s", point);
    if (rel[0] == '\0')
        return mfd;
    fd = openat(mfd, rel + 1, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        bx_err_sys(err, 500, "open own cgroup %s%s", point, rel);
    bx_close(&mfd);
    return fd;
}

/* mkdir name under dirfd (existing is fine) and opens it. */
static int mkdir_open(int dirfd, const char *name, struct bx_err *err)
{
    int fd;
    if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
        return bx_err_sys(err, 500, "mkdir %s", name);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return bx_err_sys(err, 500, "open %s", name);
    return fd;
}

static int procs_nonempty(const char *text)
{
    for (const char *p = text; *p; p++)
        if (*p >= '0' && *p <= '9')
            return 1;
    return 0;
}

/* v2 cpuset: optional.  Enabled for <own> (already done when possible by
 * setup_v2) and <own>/boxer; the CPUs are <own>/boxer's effective ones. */
static void setup_cpuset_v2(struct cg_ctx *ctx, int basefd)
{
    struct bx_err e;
    char *eff = NULL;
    int missing = 0, n;

    if (write_at(basefd, "cgroup.subtree_control", "+cpuset", &e) < 0 ||
        read_at(basefd, "cpuset.cpus.effective", SMALL_FILE_MAX, &eff, &missing, &e) < 0 ||
        missing) {
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "cpuset not usable: %s",
                 missing ? "no cpuset.cpus.effective" : e.msg);
        goto out;
    }
    ctx->cpus = calloc(1, sizeof(*ctx->cpus));
    if (!ctx->cpus) {
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "cpuset: out of memory");
        goto out;
    }
    n = cg_parse_cpu_list(eff, ctx->cpus->id, CG_CPUS_MAX);
    if (n <= 0) {
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note),
                 "cpuset not usable: bad cpuset.cpus.effective");
        free(ctx->cpus);
        ctx->cpus = NULL;
        goto out;
    }
    ctx->cpus->n = n;
    ctx->cpus->refs = 1;
    ctx->hier[0].ctrls |= CGC_CPUSET;
out:
    free(eff);
}

/* Prepares <own>/boxer on a v2 mount.  See cgroup.h for the leaf move. */
static int setup_v2(struct cg_ctx *ctx, int ownfd, int have_cpuset, struct bx_err *err)
{
    char *sub = NULL, *procs = NULL;
    int missing, ret = -1, leaf = -1, want_cpuset;
    struct bx_err e;
    struct stat st;

    if (read_at(ownfd, "cgroup.subtree_control", SMALL_FILE_MAX, &sub, &missing, err) < 0)
        goto out;
    if (missing) {
        bx_err_set(err, 500, ENOENT, "no cgroup.subtree_control in our own cgroup");
        goto out;
    }
    if (!have_cpuset)
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "no cpuset controller delegated");
    want_cpuset = have_cpuset && !has_token(sub, "cpuset", " \n");
    if (!has_token(sub, "cpu", " \n") || !has_token(sub, "memory", " \n") ||
        !has_token(sub, "pids", " \n") || want_cpuset) {
        if (read_at(ownfd, "cgroup.procs", PROCS_FILE_MAX, &procs, &missing, err) < 0)
            goto out;
        /* No internal processes: only a cgroup without processes may
         * enable controllers for its children, so Boxer leaves <own> for a
         * leaf of its own.  Only our process is moved.  The root cgroup is
         * exempt from the rule; it is the one without cgroup.type. */
        if (!missing && procs_nonempty(procs) &&
            fstatat(ownfd, "cgroup.type", &st, AT_SYMLINK_NOFOLLOW) == 0) {
            leaf = mkdir_open(ownfd, CG_SUPERVISOR, err);
            if (leaf < 0 || write_at(leaf, "cgroup.procs", "0", err) < 0) {
                bx_err_wrap(err, "move Boxer into %s", CG_SUPERVISOR);
                goto out;
            }
            ctx->moved_to_leaf = 1;
        }
        if (write_at(ownfd, "cgroup.subtree_control", CG_V2_ENABLE, &e) < 0) {
            if (e.sys_errno == EBUSY)
                bx_err_set(err, 500, EBUSY,
                           "cannot enable cpu, memory, pids controllers in our own cgroup: "
                           "other processes share it; start Boxer in a cgroup of its own");
            else if (err)
                *err = e;
            goto out;
        }
        /* Optional: without it sandboxes see all CPUs (cg_describe says so). */
        if (want_cpuset && write_at(ownfd, "cgroup.subtree_control", "+cpuset", &e) < 0)
            snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "cpuset not enabled: %s", e.msg);
    }
    ctx->hier[0].base_fd = mkdir_open(ownfd, ctx->base_name, err);
    if (ctx->hier[0].base_fd < 0)
        goto out;
    if (write_at(ctx->hier[0].base_fd, "cgroup.subtree_control", CG_V2_ENABLE, err) < 0)
        goto out;
    ctx->hier[0].ctrls = CGC_REQUIRED | CGC_CPUACCT;
    ctx->nhier = 1;
    if (!ctx->cpuset_note[0])
        setup_cpuset_v2(ctx, ctx->hier[0].base_fd);
    ret = 0;
out:
    bx_close(&leaf);
    free(sub);
    free(procs);
    return ret;
}

static char *join_path(const char *point, const char *rel, const char *leaf)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s/%s", point, rel, leaf) < 0)
        return NULL;
    return s;
}

static int try_v2(struct cg_ctx *ctx, const struct mnt *m, int nm, const char *pcg, int *done,
                  struct bx_err *err)
{
    char own[PATH_MAX];
    char *ctrls = NULL;
    int ownfd = -1, missing, ret = -1;

    *done = 0;
    if (cg_parse_proc_cgroup(pcg, NULL, own, sizeof(own)) < 0)
        return 0;
    for (int i = 0; i < nm; i++) {
        const char *rel;
        if (!m[i].v2 || !(rel = rel_in_mount(m[i].root, own)))
            continue;
        ownfd = open_own(m[i].point, rel, NULL);
        if (ownfd < 0)
            continue; /* cannot see our v2 cgroup here: try v1 */
        if (read_at(ownfd, "cgroup.controllers", SMALL_FILE_MAX, &ctrls, &missing, err) < 0)
            goto out;
        if (missing || !has_token(ctrls, "cpu", " \n") || !has_token(ctrls, "memory", " \n") ||
            !has_token(ctrls, "pids", " \n")) {
            ret = 0; /* no usable controllers here: not a v2 host */
            goto out;
        }
        if (setup_v2(ctx, ownfd, has_token(ctrls, "cpuset", " \n"), err) < 0) {
            bx_err_wrap(err, "cgroup v2 at %s%s", m[i].point, rel);
            goto out;
        }
        ctx->hier[0].base = join_path(m[i].point, rel, ctx->base_name);
        ctx->v2_rel = strdup(rel);
        if (!ctx->hier[0].base || !ctx->v2_rel) {
            bx_err_set(err, 500, ENOMEM, "out of memory");
            goto out;
        }
        ctx->hier[0].own_fd = bx_steal_fd(&ownfd);
        ctx->layout = CG_V2;
        *done = 1;
        ret = 0;
        goto out;
    }
    ret = 0;
out:
    free(ctrls);
    bx_close(&ownfd);
    return ret;
}

static const struct {
    unsigned bit;
    const char *name;
} ctrl_names[] = {{CGC_CPU, "cpu"},
                  {CGC_CPUACCT, "cpuacct"},
                  {CGC_MEMORY, "memory"},
                  {CGC_PIDS, "pids"},
                  {CGC_CPUSET, "cpuset"}};

static char *trimmed(const char *s)
{
    size_t n;
    while (*s == ' ' || *s == '\n')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n'))
        n--;
    return strndup(s, n);
}

/* A new v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems
 * (unless cgroup.clone_children is set) and accepts no task until both are
 * set, so <own>/boxer gets <own>'s values; runs then take subsets. */
static int setup_cpuset_v1(struct cg_ctx *ctx, const struct cg_hier *hr, struct bx_err *err)
{
    static const char *const files[] = {"cpuset.mems", "cpuset.cpus"};
    char *val[2] = {NULL, NULL};
    char *text = NULL;
    int missing, ret = -1, n;

    for (int f = 0; f < 2; f++) {
        if (read_at(hr->base_fd, files[f], SMALL_FILE_MAX, &text, &missing, err) < 0)
            goto out;
        if (missing) {
            bx_err_set(err, 500, ENOENT, "no %s", files[f]);
            goto out;
        }
        val[f] = trimmed(text);
        free(text);
        text = NULL;
        if (!val[f])
            goto oom;
        if (val[f][0])
            continue;
        free(val[f]);
        val[f] = NULL;
        if (read_at(hr->own_fd, files[f], SMALL_FILE_MAX, &text, &missing, err) < 0)
            goto out;
        if (missing) {
            bx_err_set(err, 500, ENOENT, "no %s in our own cgroup", files[f]);
            goto out;
        }
        val[f] = trimmed(text);
        free(text);
        text = NULL;
        if (!val[f])
            goto oom;
        if (!val[f][0] || write_at(hr->base_fd, files[f], val[f], err) < 0) {
            if (!val[f][0])
                bx_err_set(err, 500, ENOSPC, "our own cgroup has an empty %s", files[f]);
            goto out;
        }
    }
    ctx->cpus = calloc(1, sizeof(*ctx->cpus));
    if (!ctx->cpus)
        goto oom;
    ctx->cpus->refs = 1;
    ctx->cpus->mems = bx_steal_ptr(&val[0]);
    n = cg_parse_cpu_list(val[1], ctx->cpus->id, CG_CPUS_MAX);
    if (n <= 0) {
        cpus_unref(&ctx->cpus);
        bx_err_set(err, 500, EINVAL, "cannot parse cpuset.cpus \"%.32s\"", val[1]);
        goto out;
    }
    ctx->cpus->n = n;
    ret = 0;
    goto out;
oom:
    bx_err_set(err, 500, ENOMEM, "out of memory");
out:
    free(text);
    free(val[0]);
    free(val[1]);
    return ret;
}

static void hier_close(struct cg_hier *hr)
{
    bx_close(&hr->own_fd);
    bx_close(&hr->base_fd);
    free(hr->base);
    hr->base = NULL;
}

static int try_v1(struct cg_ctx *ctx, const struct mnt *m, int nm, const char *pcg,
                  struct bx_err *err)
{
    int midx[BX_ARRAY_LEN(ctrl_names)];
    const char *rels[BX_ARRAY_LEN(ctrl_names)];
    char own[BX_ARRAY_LEN(ctrl_names)][PATH_MAX];
    unsigned found = 0;
    int ownfd = -1;

    for (size_t w = 0; w < BX_ARRAY_LEN(ctrl_names); w++) {
        midx[w] = -1;
        rels[w] = NULL;
    }

    for (size_t w = 0; w < BX_ARRAY_LEN(ctrl_names); w++) {
        if (cg_parse_proc_cgroup(pcg, ctrl_names[w].name, own[w], sizeof(own[w])) < 0)
            continue;
        for (int i = 0; i < nm; i++) {
            const char *rel;
            if (m[i].v2 || !(m[i].ctrls & ctrl_names[w].bit) ||
                !(rel = rel_in_mount(m[i].root, own[w])))
                continue;
            midx[w] = i;
            rels[w] = rel;
            found |= ctrl_names[w].bit;
            break;
        }
    }
    if ((found & CGC_REQUIRED) != CGC_REQUIRED)
        return bx_err_set(err, 500, ENOENT,
                          "no usable cgroup hierarchy with cpu, memory and pids controllers "
                          "holding our own cgroup (found:%s%s%s)",
                          found & CGC_CPU ? " cpu" : "", found & CGC_MEMORY ? " memory" : "",
                          found & CGC_PIDS ? " pids" : "");
    /* One hierarchy per distinct mount (co-mounted cpu,cpuacct is one). */
    for (size_t w = 0; w < BX_ARRAY_LEN(ctrl_names); w++) {
        int h;
        if (midx[w] < 0)
            continue;
        for (size_t v = 0; v < w; v++) {
            if (midx[v] == midx[w]) {
                for (h = 0; h < ctx->nhier; h++)
                    if (ctx->hier[h].ctrls & ctrl_names[v].bit)
                        ctx->hier[h].ctrls |= ctrl_names[w].bit;
                goto next;
            }
        }
        h = ctx->nhier;
        ownfd = open_own(m[midx[w]].point, rels[w], err);
        if (ownfd < 0)
            return -1;
        ctx->hier[h].own_fd = ownfd;
        ctx->hier[h].base_fd = mkdir_open(ownfd, ctx->base_name, err);
        ctx->nhier++; /* from here on cg_free closes and removes it */
        if (ctx->hier[h].base_fd < 0)
            return bx_err_wrap(err, "cgroup %s at %s%s", ctrl_names[w].name, m[midx[w]].point,
                               rels[w]);
        ctx->hier[h].ctrls = ctrl_names[w].bit;
        ctx->hier[h].base = join_path(m[midx[w]].point, rels[w], ctx->base_name);
        if (!ctx->hier[h].base)
            return bx_err_set(err, 500, ENOMEM, "out of memory");
    next:;
    }
    if (!(found & CGC_CPUSET))
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "no cpuset hierarchy");
    for (int h = 0; h < ctx->nhier; h++) {
        struct bx_err e;
        if (!(ctx->hier[h].ctrls & CGC_CPUSET) || setup_cpuset_v1(ctx, &ctx->hier[h], &e) == 0)
            continue;
        /* Co-mounted with a controller we need, the hierarchy cannot do
         * without cpus and mems: tasks could not join it. */
        if (ctx->hier[h].ctrls != CGC_CPUSET) {
            if (err)
                *err = e;
            return bx_err_wrap(err, "cpuset at %s", ctx->hier[h].base);
        }
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "cpuset not usable: %s", e.msg);
        unlinkat(ctx->hier[h].own_fd, ctx->base_name, AT_REMOVEDIR);
        hier_close(&ctx->hier[h]);
        ctx->hier[h] = ctx->hier[ctx->nhier - 1];
        ctx->hier[ctx->nhier - 1] = (struct cg_hier){0, -1, -1, NULL};
        ctx->nhier--;
        break;
    }
    return 0;
}

static int build_describe(struct cg_ctx *ctx)
{
    struct sbuf sb;
    sbuf_init(&sb, 16384);
    if (sbuf_appendf(&sb, "cgroups %s:", cg_layout_name(ctx->layout)) < 0)
        goto fail;
    for (int h = 0; h < ctx->nhier; h++) {
        unsigned c = ctx->hier[h].ctrls;
        if (ctx->layout == CG_V2) {
            if (sbuf_appendf(&sb, " %s", ctx->hier[h].base) < 0)
                goto fail;
            continue;
        }
        if (sbuf_putc(&sb, ' ') < 0)
            goto fail;
        for (size_t k = 0; k < BX_ARRAY_LEN(ctrl_names); k++)
            if ((c & ctrl_names[k].bit) &&
                sbuf_appendf(&sb, "%s%s", (c & (ctrl_names[k].bit - 1u)) ? "," : "",
                             ctrl_names[k].name) < 0)
                goto fail;
        if (sbuf_appendf(&sb, "=%s", ctx->hier[h].base) < 0)
            goto fail;
    }
    if (ctx->moved_to_leaf && sbuf_appendf(&sb, " (moved Boxer into ../%s)", CG_SUPERVISOR) < 0)
        goto fail;
    if (ctx->cpus &&
        sbuf_appendf(&sb, "; runs pinned to ceil(cpu_cores) of %d CPUs", ctx->cpus->n) < 0)
        goto fail;
    if (!ctx->cpus && sbuf_appendf(&sb, "; %s: sandboxes see every host CPU",
                                   ctx->cpuset_note[0] ? ctx->cpuset_note : "no cpuset") < 0)
        goto fail;
    ctx->describe = sbuf_steal(&sb, NULL);
    return 0;
fail:
    sbuf_free(&sb);
    return -1;
}

int cg_init(struct cg_ctx **out, const char *fs_root, const char *proc_self_cgroup,
            const char *mountinfo, const char *base_name, struct bx_err *err)
{
    struct cg_ctx *ctx = NULL;
    char *pcg = NULL, *mi = NULL, *root = NULL;
    struct mnt m[64];
    int nm, ret = -1, done = 0, have_v2 = 0;
    size_t rl;

    *out = NULL;
    ctx = calloc(1, sizeof(*ctx));
    root = strdup(fs_root);
    if (!ctx || !root) {
        bx_err_set(err, 500, ENOMEM, "out of memory");
        goto out;
    }
    for (int h = 0; h < CG_MAX_HIER; h++) {
        ctx->hier[h].own_fd = -1;
        ctx->hier[h].base_fd = -1;
    }
    if (!base_name)
        base_name = "boxer";
    if (!valid_name(base_name)) {
        bx_err_set(err, 500, EINVAL, "bad cgroup base name %s", base_name);
        goto out;
    }
    snprintf(ctx->base_name, sizeof(ctx->base_name), "%s", base_name);
    rl = strlen(root);
    while (rl > 0 && root[rl - 1] == '/')
        root[--rl] = '\0';
    if (root[0] != '/' && rl > 0) {
        bx_err_set(err, 500, EINVAL, "cgroup root must be absolute: %s", fs_root);
        goto out;
    }
    if (bx_read_file_at(AT_FDCWD, proc_self_cgroup, PROC_CGROUP_MAX, &pcg, NULL, err) < 0 ||
        bx_read_file_at(AT_FDCWD, mountinfo, MOUNTINFO_MAX, &mi, NULL, err) < 0) {
        bx_err_wrap(err, "cgroups");
        goto out;
    }
    nm = parse_mountinfo(mi, root, m, (int)BX_ARRAY_LEN(m));
    for (int i = 0; i < nm; i++)
        have_v2 |= m[i].v2;
    if (have_v2 && try_v2(ctx, m, nm, pcg, &done, err) < 0)
        goto out;
    if (!done) {
        if (try_v1(ctx, m, nm, pcg, err) < 0) {
            bx_err_wrap(err, "cgroups under %s", rl ? root : "/");
            goto out;
        }
        ctx->layout = have_v2 ? CG_HYBRID : CG_V1;
    }
    if (build_describe(ctx) < 0) {
        bx_err_set(err, 500, ENOMEM, "out of memory");
        goto out;
    }
    *out = bx_steal_ptr(&ctx);
    ret = 0;
out:
    cg_free(&ctx);
    free(pcg);
    free(mi);
    free(root);
    return ret;
}

void cg_free(struct cg_ctx **pctx)
{
    struct cg_ctx *ctx = pctx ? *pctx : NULL;
    if (!ctx)
        return;
    for (int h = 0; h < CG_MAX_HIER; h++) {
        /* The base goes with us when it is empty, so a stopped Boxer leaves
         * no cgroup behind; one still holding a run that would not die
         * stays (EBUSY) for the next start's cg_cleanup_stale. */
        if (h < ctx->nhier && ctx->hier[h].base_fd >= 0 && ctx->hier[h].own_fd >= 0)
            unlinkat(ctx->hier[h].own_fd, ctx->base_name, AT_REMOVEDIR);
        hier_close(&ctx->hier[h]);
    }
    cpus_unref(&ctx->cpus);
    free(ctx->describe);
    free(ctx->v2_rel);
    free(ctx);
    *pctx = NULL;
}

enum cg_layout cg_layout(const struct cg_ctx *ctx)
{
    return ctx ? ctx->layout : CG_NONE;
}

const char *cg_layout_name(enum cg_layout l)
{
    switch (l) {
    case CG_V1:
        return "v1";
    case CG_HYBRID:
        return "hybrid";
    case CG_V2:
        return "v2";
    case CG_NONE:
        break;
    }
    return "none";
}

const char *cg_describe(const struct cg_ctx *ctx)
{
    return ctx && ctx->describe ? ctx->describe : "cgroups: none";
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
    if (read_at(dirfd, "cgroup.procs", PROCS_FILE_MAX, &text, &missing, err) < 0)
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
                return bx_err_set(err, 500, EINVAL, "bad pid in cgroup.procs");
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

typedef int (*subdir_fn)(int dirfd, const char *name, void *arg, struct bx_err *err);

/* Calls fn for every subdirectory of dirfd (the child cgroups). */
static int for_each_subdir(int dirfd, subdir_fn fn, void *arg, struct bx_err *err)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *de;
    int ret = 0;

    if (dfd < 0)
        return errno == ENOENT ? 0 : bx_err_sys(err, 500, "open cgroup dir");
    d = fdopendir(dfd);
    if (!d) {
        bx_close(&dfd);
        return bx_err_sys(err, 500, "fdopendir");
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
        ret = bx_err_sys(err, 500, "readdir cgroup dir");
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
        return errno == ENOENT ? 0 : bx_err_sys(err, 500, "open cgroup %s", name);
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
        return bx_err_set(err, 500, ELOOP, "cgroup tree too deep");
    n = kill_pass(dirfd, ka->signal_them, err);
    if (n < 0)
        return -1;
    ka->total += n;
    return for_each_subdir(dirfd, kill_child, ka, err);
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
        return bx_err_set(err, 500, ELOOP, "cgroup tree too deep");
    fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : bx_err_sys(err, 500, "open cgroup %s", name);
    if (for_each_subdir(fd, rmdir_child, &depth, err) < 0) {
        bx_close(&fd);
        return -1;
    }
    bx_close(&fd);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return bx_err_sys(err, 500, "rmdir cgroup %s", name);
    return 0;
}

#define REAP_BUSY (-2)

/* The kill-wait-rmdir loop shared by destroy and stale cleanup.  dir_fd[i]
 * are the cgroups (set to -1 once removed), parent_fd[i]/name their
 * location.  Returns 0 when all are gone, REAP_BUSY (err EBUSY) when the
 * deadline passed first, -1 on other errors. */
static int reap(int n, int v2, const int *parent_fd, int *dir_fd, const char *name,
                unsigned wait_ms, struct bx_err *err)
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
                if (write_at(dir_fd[i], "cgroup.kill", "1", &e) == 0)
                    ka.signal_them = 0;
                else if (e.sys_errno != ENOENT)
                    return bx_err_set(err, 500, e.sys_errno, "%s: %s", name, e.msg);
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
            bx_err_set(err, 500, EBUSY, "cgroup %s still has %ld process(es) after SIGKILL", name,
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
        if (!v2 && write_at(dirfd, "cpuset.mems", run->cpus->mems, err) < 0)
            return -1;
        if (write_at(dirfd, "cpuset.cpus", run->cpu_list, err) < 0)
            return -1;
    }
    if (v2) {
        snprintf(buf, sizeof(buf), "%llu %u", (unsigned long long)quota, CG_PERIOD_US);
        if (write_at(dirfd, "cpu.max", buf, err) < 0 ||
            write_u64_at(dirfd, "memory.max", lim->memory_bytes, err) < 0 ||
            write_u64_at(dirfd, "pids.max", lim->pids_max, err) < 0)
            return -1;
        /* Absent without swap accounting: then there is no swap to limit. */
        if (write_at(dirfd, "memory.swap.max", "0", &e) < 0 && e.sys_errno != ENOENT) {
            if (err)
                *err = e;
            return -1;
        }
        return 0;
    }
    if (ctrls & CGC_CPU) {
        if (write_u64_at(dirfd, "cpu.cfs_period_us", CG_PERIOD_US, err) < 0 ||
            write_u64_at(dirfd, "cpu.cfs_quota_us", quota, err) < 0)
            return -1;
    }
    if (ctrls & CGC_MEMORY) {
        if (write_u64_at(dirfd, "memory.limit_in_bytes", lim->memory_bytes, err) < 0)
            return -1;
        /* memsw (memory + swap) equal to the memory limit means no swap;
         * absent when the kernel does not account swap. */
        if (write_u64_at(dirfd, "memory.memsw.limit_in_bytes", lim->memory_bytes, &e) < 0 &&
            e.sys_errno != ENOENT) {
            if (err)
                *err = e;
            return -1;
        }
    }
    if (ctrls & CGC_PIDS) {
        if (write_u64_at(dirfd, "pids.max", lim->pids_max, err) < 0)
            return -1;
    }
    return 0;
}

/* Optional knob: ENOENT (no swap accounting) is not an error. */
static int write_optional(int dirfd, const char *file, uint64_t v, struct bx_err *err)
{
    struct bx_err e;
    bx_err_clear(&e);
    if (write_u64_at(dirfd, file, v, &e) < 0 && e.sys_errno != ENOENT) {
        if (err)
            *err = e;
        return -1;
    }
    return 0;
}

int cg_set_base_limits(struct cg_ctx *ctx, uint64_t memory_bytes, uint64_t pids_max,
                       struct bx_err *err)
{
    if (!ctx || ctx->nhier == 0)
        return bx_err_set(err, 500, EINVAL, "cgroups are not initialised");
    if (memory_bytes == 0 || pids_max == 0)
        return bx_err_set(err, 500, EINVAL, "base limits must be positive");
    for (int i = 0; i < ctx->nhier; i++) {
        const struct cg_hier *h = &ctx->hier[i];
        int fd = h->base_fd;
        if (ctx->layout == CG_V2) {
            if (write_u64_at(fd, "memory.max", memory_bytes, err) < 0 ||
                write_optional(fd, "memory.swap.max", 0, err) < 0 ||
                write_u64_at(fd, "pids.max", pids_max, err) < 0)
                goto fail;
            continue;
        }
        if (h->ctrls & CGC_MEMORY) {
            /* v1 wants memsw >= limit at every step: lower memsw first when
             * it is above the new value (that first write fails, harmlessly,
             * when the current limit is above it), then the limit, then
             * memsw for good. */
            struct bx_err ignored;
            write_u64_at(fd, "memory.memsw.limit_in_bytes", memory_bytes, &ignored);
            if (write_u64_at(fd, "memory.limit_in_bytes", memory_bytes, err) < 0 ||
                write_optional(fd, "memory.memsw.limit_in_bytes", memory_bytes, err) < 0)
                goto fail;
        }
        if ((h->ctrls & CGC_PIDS) && write_u64_at(fd, "pids.max", pids_max, err) < 0)
            goto fail;
        continue;
    fail:
        return bx_err_wrap(err, "cgroup %s", h->base);
    }
    return 0;
}

int cg_run_create(struct cg_ctx *ctx, const char *name, const struct cg_limits *lim,
                  struct cg_run **out, struct bx_err *err)
{
    struct cg_run *run = NULL;
    int ret = -1;

    *out = NULL;
    if (!ctx || ctx->nhier == 0)
        return bx_err_set(err, 500, EINVAL, "cgroups are not initialised");
    if (!name || !valid_name(name))
        return bx_err_set(err, 500, EINVAL, "invalid run cgroup name");
    if (!lim || !(lim->cpu_cores > 0.0) || !isfinite(lim->cpu_cores) || lim->memory_bytes == 0 ||
        lim->pids_max == 0)
        return bx_err_set(err, 400, EINVAL, "limits must be positive");
    run = calloc(1, sizeof(*run));
    if (!run)
        return bx_err_set(err, 500, ENOMEM, "out of memory");
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
        bx_err_set(err, 500, ENOMEM, "out of memory");
        goto out;
    }
    if (ctx->cpus && run_pin_cpus(run, ctx->cpus, lim->cpu_cores, err) < 0)
        goto out;
    for (int i = 0; i < ctx->nhier; i++) {
        run->ctrls[i] = ctx->hier[i].ctrls;
        run->parent_fd[i] = fcntl(ctx->hier[i].base_fd, F_DUPFD_CLOEXEC, 0);
        if (run->parent_fd[i] < 0) {
            bx_err_sys(err, 500, "dup");
            goto out;
        }
        run->nhier = i + 1;
        /* mkdir must create it: an existing cgroup of that name is not ours
         * to reuse (it may hold another run's processes). */
        if (mkdirat(run->parent_fd[i], name, 0755) < 0) {
            bx_err_sys(err, 500, "create cgroup %s/%s", ctx->hier[i].base, name);
            goto out;
        }
        run->dir_fd[i] =
            openat(run->parent_fd[i], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (run->dir_fd[i] < 0) {
            bx_err_sys(err, 500, "open cgroup %s/%s", ctx->hier[i].base, name);
            unlinkat(run->parent_fd[i], name, AT_REMOVEDIR);
            goto out;
        }
        if (write_limits(run->dir_fd[i], run->ctrls[i], run->v2, lim, run, err) < 0) {
            bx_err_wrap(err, "cgroup %s/%s", ctx->hier[i].base, name);
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

int cg_run_procs_fds(struct cg_run *run, int *fds, int max, struct bx_err *err)
{
    int n = 0;
    if (!run || max < run->nhier)
        return bx_err_set(err, 500, EINVAL, "room for %d cgroup fds needed", run ? run->nhier : 0);
    for (int i = 0; i < run->nhier; i++) {
        if (run->dir_fd[i] < 0)
            continue;
        fds[n] = openat(run->dir_fd[i], "cgroup.procs", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fds[n] < 0) {
            bx_err_sys(err, 500, "open cgroup.procs of %s", run->name);
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
    return run ? run->cpu_list : NULL;
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
    if (read_at(dirfd, "cgroup.procs", PROCS_FILE_MAX, &procs, &missing, err) < 0)
        return -1;
    for (char *p = procs; p && *p && !found;) {
        char path[64], buf[sizeof(want)];
        uint64_t pid;
        size_t n = strspn(p, "0123456789");
        int fd;
        if (n == 0 || bx_parse_u64(p, n, INT_MAX, &pid) < 0) {
            free(procs);
            return bx_err_set(err, 500, EINVAL, "bad cgroup.procs");
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
            return bx_err_set(err, 500, ENOMEM, "out of memory");
        r = write_at(run->dir_fd[i], "cpuset.cpus", all, err);
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
    if (read_at(dirfd, file, SMALL_FILE_MAX, &text, &missing, err) < 0)
        return -1;
    if (missing)
        return 1;
    r = key ? find_key(text, key, v) : (parse_value(text, v) < 0 ? -1 : 0);
    free(text);
    if (r < 0)
        return bx_err_set(err, 500, EINVAL, "cannot parse %s%s%s", file, key ? " " : "",
                          key ? key : "");
    return r;
}

int cg_run_usage(struct cg_run *run, struct cg_usage *u, struct bx_err *err)
{
    uint64_t v;
    int r;

    memset(u, 0, sizeof(*u));
    if (!run)
        return bx_err_set(err, 500, EINVAL, "no run cgroup");
    if (run->v2) {
        int fd = run->dir_fd[0];
        if (fd < 0)
            return bx_err_set(err, 500, ENOENT, "cgroup %s is gone", run->name);
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
            return bx_err_set(err, 500, ENOENT, "cgroup %s is gone", run->name);
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
    r = reap(run->nhier, run->v2, run->parent_fd, run->dir_fd, run->name, CG_DESTROY_WAIT_MS, err);
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

struct stale_arg {
    int v2;
    uint64_t deadline;
    int failed;
    struct bx_err first;
};

static int stale_one(int basefd, const char *name, void *arg, struct bx_err *err)
{
    struct stale_arg *sa = arg;
    int fd = openat(basefd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    uint64_t now = bx_now_ms();
    struct bx_err e;
    (void)err;
    if (fd < 0)
        return 0;
    if (reap(1, sa->v2, &basefd, &fd, name, sa->deadline > now ? (unsigned)(sa->deadline - now) : 0,
             &e) != 0 &&
        !sa->failed) {
        sa->failed = 1;
        sa->first = e;
    }
    bx_close(&fd);
    return 0; /* keep going: clean up as much as possible */
}

int cg_cleanup_stale(struct cg_ctx *ctx, struct bx_err *err)
{
    struct stale_arg sa;
    if (!ctx)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.v2 = ctx->layout == CG_V2;
    sa.deadline = bx_now_ms() + CG_STALE_WAIT_MS;
    for (int h = 0; h < ctx->nhier; h++) {
        if (for_each_subdir(ctx->hier[h].base_fd, stale_one, &sa, err) < 0)
            return bx_err_wrap(err, "clean up %s", ctx->hier[h].base);
    }
    if (sa.failed) {
        if (err)
            *err = sa.first;
        return bx_err_wrap(err, "clean up stale cgroups");
    }
    return 0;
}
