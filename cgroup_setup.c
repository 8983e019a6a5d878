/* Cgroup set-up at start: the own cgroup from /proc/self/cgroup, the
 * layout detected from mountinfo (v2, v1 or hybrid; see cgroup.h), the
 * base cgroup with its limits, and the removal of run cgroups a previous
 * Boxer left behind.  Runs' own cgroups are in cgroup.c. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_internal.h"
#include "util.h"

#define CGC_REQUIRED (CGC_CPU | CGC_MEMORY | CGC_PIDS)
#define CG_SUPERVISOR "boxer-supervisor"
#define CG_V2_ENABLE "+cpu +memory +pids"
#define PROC_CGROUP_MAX (64u * 1024u)
#define MOUNTINFO_MAX (8u * 1024u * 1024u)
#define MI_FIELDS_MAX 64

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
    if (cg_has_token(superopts, "cpu", ","))
        c |= CGC_CPU;
    if (cg_has_token(superopts, "cpuacct", ","))
        c |= CGC_CPUACCT;
    if (cg_has_token(superopts, "memory", ","))
        c |= CGC_MEMORY;
    if (cg_has_token(superopts, "pids", ","))
        c |= CGC_PIDS;
    if (cg_has_token(superopts, "cpuset", ","))
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
        return bx_err_sys(err, BX_E_INTERNAL, "open cgroup mount %s", point);
    if (rel[0] == '\0')
        return mfd;
    fd = openat(mfd, rel + 1, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        bx_err_sys(err, BX_E_INTERNAL, "open own cgroup %s%s", point, rel);
    bx_close(&mfd);
    return fd;
}

/* mkdir name under dirfd (existing is fine) and opens it. */
static int mkdir_open(int dirfd, const char *name, struct bx_err *err)
{
    int fd;
    if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", name);
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", name);
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

    if (cg_write_at(basefd, "cgroup.subtree_control", "+cpuset", &e) < 0 ||
        cg_read_at(basefd, "cpuset.cpus.effective", SMALL_FILE_MAX, &eff, &missing, &e) < 0 ||
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

    if (cg_read_at(ownfd, "cgroup.subtree_control", SMALL_FILE_MAX, &sub, &missing, err) < 0)
        goto out;
    if (missing) {
        bx_err_set(err, BX_E_INTERNAL, ENOENT, "no cgroup.subtree_control in our own cgroup");
        goto out;
    }
    if (!have_cpuset)
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "no cpuset controller delegated");
    want_cpuset = have_cpuset && !cg_has_token(sub, "cpuset", " \n");
    if (!cg_has_token(sub, "cpu", " \n") || !cg_has_token(sub, "memory", " \n") ||
        !cg_has_token(sub, "pids", " \n") || want_cpuset) {
        if (cg_read_at(ownfd, "cgroup.procs", PROCS_FILE_MAX, &procs, &missing, err) < 0)
            goto out;
        /* No internal processes: only a cgroup without processes may
         * enable controllers for its children, so Boxer leaves <own> for a
         * leaf of its own.  Only our process is moved.  The root cgroup is
         * exempt from the rule; it is the one without cgroup.type. */
        if (!missing && procs_nonempty(procs) &&
            fstatat(ownfd, "cgroup.type", &st, AT_SYMLINK_NOFOLLOW) == 0) {
            leaf = mkdir_open(ownfd, CG_SUPERVISOR, err);
            if (leaf < 0 || cg_write_at(leaf, "cgroup.procs", "0", err) < 0) {
                bx_err_wrap(err, "move Boxer into %s", CG_SUPERVISOR);
                goto out;
            }
            ctx->moved_to_leaf = 1;
        }
        if (cg_write_at(ownfd, "cgroup.subtree_control", CG_V2_ENABLE, &e) < 0) {
            if (e.sys_errno == EBUSY)
                bx_err_set(err, BX_E_INTERNAL, EBUSY,
                           "cannot enable cpu, memory, pids controllers in our own cgroup: "
                           "other processes share it; start Boxer in a cgroup of its own");
            else if (err)
                *err = e;
            goto out;
        }
        /* Optional: without it sandboxes see all CPUs (cg_describe says so). */
        if (want_cpuset && cg_write_at(ownfd, "cgroup.subtree_control", "+cpuset", &e) < 0)
            snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "cpuset not enabled: %s", e.msg);
    }
    ctx->hier[0].base_fd = mkdir_open(ownfd, ctx->base_name, err);
    if (ctx->hier[0].base_fd < 0)
        goto out;
    if (cg_write_at(ctx->hier[0].base_fd, "cgroup.subtree_control", CG_V2_ENABLE, err) < 0)
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
        if (cg_read_at(ownfd, "cgroup.controllers", SMALL_FILE_MAX, &ctrls, &missing, err) < 0)
            goto out;
        if (missing || !cg_has_token(ctrls, "cpu", " \n") ||
            !cg_has_token(ctrls, "memory", " \n") || !cg_has_token(ctrls, "pids", " \n")) {
            ret = 0; /* no usable controllers here: not a v2 host */
            goto out;
        }
        if (setup_v2(ctx, ownfd, cg_has_token(ctrls, "cpuset", " \n"), err) < 0) {
            bx_err_wrap(err, "cgroup v2 at %s%s", m[i].point, rel);
            goto out;
        }
        ctx->hier[0].base = join_path(m[i].point, rel, ctx->base_name);
        ctx->v2_rel = strdup(rel);
        if (!ctx->hier[0].base || !ctx->v2_rel) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
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

/* The trimmed content of dirfd/file into *out; missing is an error naming
 * the file (+ where).  Returns 0 or -1. */
static int read_trimmed(int dirfd, const char *file, const char *where, char **out,
                        struct bx_err *err)
{
    char *text = NULL;
    int missing;
    *out = NULL;
    if (cg_read_at(dirfd, file, SMALL_FILE_MAX, &text, &missing, err) < 0)
        return -1;
    if (missing)
        return bx_err_set(err, BX_E_INTERNAL, ENOENT, "no %s%s", file, where);
    *out = trimmed(text);
    free(text);
    if (!*out)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    return 0;
}

/* A new v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems
 * (unless cgroup.clone_children is set) and accepts no task until both are
 * set, so <own>/boxer gets <own>'s values; runs then take subsets. */
static int setup_cpuset_v1(struct cg_ctx *ctx, const struct cg_hier *hr, struct bx_err *err)
{
    static const char *const files[] = {"cpuset.mems", "cpuset.cpus"};
    char *val[2] = {NULL, NULL};
    int ret = -1, n;

    for (int f = 0; f < 2; f++) {
        if (read_trimmed(hr->base_fd, files[f], "", &val[f], err) < 0)
            goto out;
        if (val[f][0])
            continue;
        free(val[f]);
        val[f] = NULL;
        if (read_trimmed(hr->own_fd, files[f], " in our own cgroup", &val[f], err) < 0)
            goto out;
        if (!val[f][0] || cg_write_at(hr->base_fd, files[f], val[f], err) < 0) {
            if (!val[f][0])
                bx_err_set(err, BX_E_INTERNAL, ENOSPC, "our own cgroup has an empty %s", files[f]);
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
        cg_cpus_unref(&ctx->cpus);
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "cannot parse cpuset.cpus \"%.32s\"", val[1]);
        goto out;
    }
    ctx->cpus->n = n;
    ret = 0;
    goto out;
oom:
    bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
out:
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
        return bx_err_set(err, BX_E_INTERNAL, ENOENT,
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
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    next:;
    }
    if (!(found & CGC_CPUSET))
        snprintf(ctx->cpuset_note, sizeof(ctx->cpuset_note), "no cpuset hierarchy");
    for (int h = 0; h < ctx->nhier; h++) {
        struct bx_err e;
        if (!(ctx->hier[h].ctrls & CGC_CPUSET))
            continue;
        if (setup_cpuset_v1(ctx, &ctx->hier[h], &e) == 0) {
            size_t w = 0;
            while (ctrl_names[w].bit != CGC_CPUSET)
                w++;
            /* runsc looks for the hierarchy at /sys/fs/cgroup/cpuset. */
            if (ctx->hier[h].ctrls == CGC_CPUSET &&
                strcmp(m[midx[w]].point, CG_RUNSC_CPUSET_MOUNT) == 0 &&
                (!(ctx->cpus->shadow_mount = strdup(CG_RUNSC_CPUSET_MOUNT)) ||
                 !(ctx->cpus->shadow_rel = strdup(rels[w]))))
                return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            continue;
        }
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
    if (ctx->cpus && ctx->cpus->shadow_mount &&
        sbuf_appendf(&sb, "; runsc shown ceil(cpu_cores) of %d CPUs in a shadow of cpuset.cpus",
                     ctx->cpus->n) < 0)
        goto fail;
    if (ctx->cpus && !ctx->cpus->shadow_mount &&
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
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    for (int h = 0; h < CG_MAX_HIER; h++) {
        ctx->hier[h].own_fd = -1;
        ctx->hier[h].base_fd = -1;
    }
    if (!base_name)
        base_name = "boxer";
    if (!cg_valid_name(base_name)) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "bad cgroup base name %s", base_name);
        goto out;
    }
    snprintf(ctx->base_name, sizeof(ctx->base_name), "%s", base_name);
    rl = strlen(root);
    while (rl > 0 && root[rl - 1] == '/')
        root[--rl] = '\0';
    if (root[0] != '/' && rl > 0) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "cgroup root must be absolute: %s", fs_root);
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
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
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
    cg_cpus_unref(&ctx->cpus);
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

/* Optional knob: ENOENT (no swap accounting) is not an error. */
static int write_optional(int dirfd, const char *file, uint64_t v, struct bx_err *err)
{
    struct bx_err e;
    bx_err_clear(&e);
    if (cg_write_u64_at(dirfd, file, v, &e) < 0 && e.sys_errno != ENOENT) {
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
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "cgroups are not initialised");
    if (memory_bytes == 0 || pids_max == 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "base limits must be positive");
    for (int i = 0; i < ctx->nhier; i++) {
        const struct cg_hier *h = &ctx->hier[i];
        int fd = h->base_fd;
        if (ctx->layout == CG_V2) {
            if (cg_write_u64_at(fd, "memory.max", memory_bytes, err) < 0 ||
                write_optional(fd, "memory.swap.max", 0, err) < 0 ||
                cg_write_u64_at(fd, "pids.max", pids_max, err) < 0)
                goto fail;
            continue;
        }
        if (h->ctrls & CGC_MEMORY) {
            /* v1 wants memsw >= limit at every step: lower memsw first when
             * it is above the new value (that first write fails, harmlessly,
             * when the current limit is above it), then the limit, then
             * memsw for good. */
            struct bx_err ignored;
            cg_write_u64_at(fd, "memory.memsw.limit_in_bytes", memory_bytes, &ignored);
            if (cg_write_u64_at(fd, "memory.limit_in_bytes", memory_bytes, err) < 0 ||
                write_optional(fd, "memory.memsw.limit_in_bytes", memory_bytes, err) < 0)
                goto fail;
        }
        if ((h->ctrls & CGC_PIDS) && cg_write_u64_at(fd, "pids.max", pids_max, err) < 0)
            goto fail;
        continue;
    fail:
        return bx_err_wrap(err, "cgroup %s", h->base);
    }
    return 0;
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
    if (cg_reap(1, sa->v2, &basefd, &fd, name,
                sa->deadline > now ? (unsigned)(sa->deadline - now) : 0, &e) != 0 &&
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
        if (cg_for_each_subdir(ctx->hier[h].base_fd, stale_one, &sa, err) < 0)
            return bx_err_wrap(err, "clean up %s", ctx->hier[h].base);
    }
    if (sa.failed) {
        if (err)
            *err = sa.first;
        return bx_err_wrap(err, "clean up stale cgroups");
    }
    return 0;
}
