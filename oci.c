#define _GNU_SOURCE
#include "oci.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "store.h"

static void spec_strv(struct json_writer *w, char *const *v)
{
    json_w_arr_begin(w);
    for (size_t i = 0; v && v[i]; i++)
        json_w_cstr(w, v[i]);
    json_w_arr_end(w);
}

static void w_rlimit(struct json_writer *w, const char *type, uint64_t v)
{
    json_w_obj_begin(w);
    json_w_key(w, "type");
    json_w_cstr(w, type);
    json_w_key(w, "hard");
    json_w_uint(w, v);
    json_w_key(w, "soft");
    json_w_uint(w, v);
    json_w_obj_end(w);
}

static void spec_mount(struct json_writer *w, const char *dest, const char *type, const char *source,
                    const char *const *options)
{
    json_w_obj_begin(w);
    json_w_key(w, "destination");
    json_w_cstr(w, dest);
    json_w_key(w, "type");
    json_w_cstr(w, type);
    json_w_key(w, "source");
    json_w_cstr(w, source);
    json_w_key(w, "options");
    json_w_arr_begin(w);
    for (size_t i = 0; options[i]; i++)
        json_w_cstr(w, options[i]);
    json_w_arr_end(w);
    json_w_obj_end(w);
}

const char *const oci_box_caps[] = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",  "CAP_SETGID",       "CAP_SETUID",           "CAP_SETFCAP",
    "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE", NULL};

void oci_w_process(struct json_writer *w, const struct oci_process *p)
{
    static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
                                       "ambient", NULL};
    json_w_obj_begin(w);
    json_w_key(w, "terminal");
    json_w_bool(w, p->terminal != 0);
    json_w_key(w, "user");
    json_w_obj_begin(w);
    json_w_key(w, "uid");
    json_w_uint(w, p->uid);
    json_w_key(w, "gid");
    json_w_uint(w, p->gid);
    json_w_obj_end(w);
    json_w_key(w, "args");
    spec_strv(w, p->args);
    json_w_key(w, "env");
    spec_strv(w, p->env);
    json_w_key(w, "cwd");
    json_w_cstr(w, p->cwd);
    /* Inheritable and ambient stay empty: an exec'd program gains nothing. */
    if (!p->caps_absent) {
        json_w_key(w, "capabilities");
        json_w_obj_begin(w);
    }
    for (size_t i = 0; !p->caps_absent && sets[i]; i++) {
        int give = p->caps && strcmp(sets[i], "inheritable") != 0 && strcmp(sets[i], "ambient") != 0;
        json_w_key(w, sets[i]);
        json_w_arr_begin(w);
        for (size_t c = 0; give && p->caps[c]; c++)
            json_w_cstr(w, p->caps[c]);
        json_w_arr_end(w);
    }
    if (!p->caps_absent)
        json_w_obj_end(w);
    json_w_key(w, "noNewPrivileges");
    json_w_bool(w, 1);
    json_w_key(w, "rlimits");
    json_w_arr_begin(w);
    w_rlimit(w, "RLIMIT_NOFILE", p->nofile);
    /* gVisor counts tasks of the sandbox user against RLIMIT_NPROC (runsc
     * ignores linux.resources.pids), so this is what bounds processes and
     * threads inside; the host pids cgroup bounds the sandbox's own tasks. */
    if (p->nproc)
        w_rlimit(w, "RLIMIT_NPROC", p->nproc);
    json_w_arr_end(w);
    json_w_obj_end(w);
}

int oci_build_spec(const struct oci_params *p, struct sbuf *out, struct bx_err *err)
{
    static const char *const proc_opts[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const no_opts[] = {NULL};
    static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                           NULL};
    static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
    static const char *const ro_bind[] = {"rbind", "ro", "nosuid", "nodev", NULL};
    static const char *const rw_bind[] = {"rbind", "rw", "nosuid", "nodev", NULL};
    static const char *const ns_types[] = {"pid", "ipc", "uts", "mount", NULL};
    char tmp_size[64];
    const char *tmp_opts[] = {"nosuid", "nodev", "mode=1777", tmp_size, NULL};
    struct oci_process proc = {.args = p->args,
                               .env = p->env,
                               .cwd = p->cwd,
                               .uid = p->uid,
                               .gid = p->gid,
                               .caps = p->caps,
                               .nofile = p->nofile,
                               .nproc = p->nproc};
    struct json_writer w;

    if (!p->args || !p->args[0])
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must not be empty");
    snprintf(tmp_size, sizeof(tmp_size), "size=%llum", (unsigned long long)p->tmp_size_mb);
    json_w_init(&w, out);
    json_w_obj_begin(&w);
    json_w_key(&w, "ociVersion");
    json_w_cstr(&w, "1.0.2");

    json_w_key(&w, "process");
    oci_w_process(&w, &proc);

    json_w_key(&w, "root");
    json_w_obj_begin(&w);
    json_w_key(&w, "path");
    json_w_cstr(&w, p->rootfs);
    json_w_key(&w, "readonly");
    json_w_bool(&w, !p->root_writable);
    json_w_obj_end(&w);

    json_w_key(&w, "hostname");
    json_w_cstr(&w, p->hostname);

    json_w_key(&w, "mounts");
    json_w_arr_begin(&w);
    spec_mount(&w, "/proc", "proc", "proc", p->plain_proc ? no_opts : proc_opts);
    spec_mount(&w, "/dev", "tmpfs", "tmpfs", dev_opts);
    spec_mount(&w, "/sys", "sysfs", "sysfs", sys_opts);
    if (p->tmp_size_mb)
        spec_mount(&w, "/tmp", "tmpfs", "tmpfs", tmp_opts);
    for (size_t i = 0; i < p->nmounts; i++)
        spec_mount(&w, p->mounts[i].destination, "bind", p->mounts[i].source,
                   p->mounts[i].options    ? p->mounts[i].options
                   : p->mounts[i].readonly ? ro_bind
                                           : rw_bind);
    json_w_arr_end(&w);

    json_w_key(&w, "linux");
    json_w_obj_begin(&w);
    if (p->cgroups_path) {
        json_w_key(&w, "cgroupsPath");
        json_w_cstr(&w, p->cgroups_path);
    }
    json_w_key(&w, "namespaces");
    json_w_arr_begin(&w);
    for (size_t i = 0; ns_types[i]; i++) {
        json_w_obj_begin(&w);
        json_w_key(&w, "type");
        json_w_cstr(&w, ns_types[i]);
        json_w_obj_end(&w);
    }
    if (!p->host_network) {
        json_w_obj_begin(&w);
        json_w_key(&w, "type");
        json_w_cstr(&w, "network");
        if (p->netns_path) {
            json_w_key(&w, "path");
            json_w_cstr(&w, p->netns_path);
        }
        json_w_obj_end(&w);
    }
    json_w_arr_end(&w);
    if (!p->plain_proc) {
        /* Hide host paths that gVisor would otherwise expose through /proc. */
        json_w_key(&w, "maskedPaths");
        json_w_arr_begin(&w);
        json_w_cstr(&w, "/proc/kcore");
        json_w_cstr(&w, "/proc/keys");
        json_w_cstr(&w, "/proc/timer_list");
        json_w_arr_end(&w);
    }
    json_w_obj_end(&w); /* linux */
    json_w_obj_end(&w);
    if (w.failed)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "OCI spec too large");
    return 0;
}

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : 0;
}

/* Index of the entry with the same key, or -1. */
static long find_key(char **v, size_t n, const char *kv)
{
    size_t kl = key_len(kv);
    for (size_t i = 0; i < n; i++)
        if (key_len(v[i]) == kl && strncmp(v[i], kv, kl) == 0)
            return (long)i;
    return -1;
}

int oci_merge_env(char *const *image_env, char *const *req_env, char ***out, struct bx_err *err)
{
    struct str_list v = {0};
    char *const *lists[2] = {image_env, req_env};

    if (str_list_push(&v, "PATH=" OCI_DEFAULT_PATH) < 0)
        goto oom;
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; lists[l] && lists[l][i]; i++) {
            const char *kv = lists[l][i];
            long at;
            if (key_len(kv) == 0)
                continue;
            at = find_key(v.items, v.n, kv);
            if (at >= 0) {
                char *dup = strdup(kv);
                if (!dup)
                    goto oom;
                free(v.items[at]);
                v.items[at] = dup;
            } else if (str_list_push(&v, kv) < 0) {
                goto oom;
            }
        }
    }
    if (find_key(v.items, v.n, "HOME=") < 0 && str_list_push(&v, "HOME=/tmp") < 0)
        goto oom;
    *out = v.items; /* non-NULL and NULL-terminated: PATH was pushed */
    return 0;
oom:
    str_list_free(&v);
    return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
}

/* ---- bundles ---- */

static int mount_output(struct oci_bundle *b, const struct oci_bundle_params *p, struct bx_err *err)
{
    char opts[128];
    char path[PATH_MAX];
    /* A per-run tmpfs bounds what a sandbox can write to /output, in bytes
     * and in inodes, so it cannot fill the host disk while it runs. */
    snprintf(opts, sizeof(opts), "size=%" PRIu64 ",nr_inodes=%" PRIu64 ",mode=0777",
             p->output_bytes, p->output_inodes);
    if (mkdirat(b->dirfd, "output", 0700) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir output");
    snprintf(path, sizeof(path), "%s/output", b->dir);
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mount output tmpfs");
    b->output_mounted = 1;
    return 0;
}

/* runsc creates missing mount points (the listed files' paths, /output)
 * in the rootfs on the host, as root.  In the image's shared rootfs that
 * would let one request plant empty files and directories (say an empty
 * executable /usr/local/bin/python3) in every later run of the image.  So
 * each run gets an overlay: the shared rootfs is its read-only lower layer,
 * whatever runsc creates lands in a per-run upper layer.  The upper layer
 * lives on a small tmpfs of its own: bounded, and usable wherever home is
 * (an overlayfs home, as in a container, cannot hold an upper layer).  The
 * layers are named through /proc/self/fd, so no path needs escaping in the
 * options. */
static int mount_rootfs(struct oci_bundle *b, const struct oci_bundle_params *p, struct bx_err *err)
{
    char opts[160];
    char path[PATH_MAX];
    int ovl = -1, lower = -1, upper = -1, work = -1, ret = -1;

    if (mkdirat(b->dirfd, "rootfs", 0755) < 0 || mkdirat(b->dirfd, "ovl", 0700) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir rootfs overlay dirs");
    snprintf(path, sizeof(path), "%s/ovl", b->dir);
    snprintf(opts, sizeof(opts), "size=%" PRIu64 ",nr_inodes=%" PRIu64 ",mode=0700", p->upper_bytes,
             p->upper_inodes);
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mount overlay tmpfs");
    b->ovl_mounted = 1;
    ovl = openat(b->dirfd, "ovl", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (ovl < 0 || mkdirat(ovl, "upper", 0755) < 0 || mkdirat(ovl, "work", 0700) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "mkdir overlay layers");
        goto out;
    }
    lower = open(p->image_rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    upper = openat(ovl, "upper", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    work = openat(ovl, "work", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (lower < 0 || upper < 0 || work < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open rootfs overlay dirs");
        goto out;
    }
    snprintf(opts, sizeof(opts),
             "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d", lower,
             upper, work);
    snprintf(path, sizeof(path), "%s/rootfs", b->dir);
    if (mount("overlay", path, "overlay", MS_NOSUID | MS_NODEV, opts) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "mount rootfs overlay");
        goto out;
    }
    b->rootfs_mounted = 1;
    ret = 0;
out:
    bx_close(&ovl);
    bx_close(&lower);
    bx_close(&upper);
    bx_close(&work);
    return ret;
}

void oci_bundle_init(struct oci_bundle *b)
{
    memset(b, 0, sizeof(*b));
    b->dirfd = -1;
}

/* Takes dst and src (malloc'd) whatever happens. */
static int add_mount(struct oci_bundle *b, char *dst, char *src, int readonly, struct bx_err *err)
{
    if (!dst || !src) {
        free(dst);
        free(src);
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (b->nmounts == b->mounts_cap) {
        size_t nc = b->mounts_cap ? b->mounts_cap * 2 : 8;
        struct oci_mount *nm = realloc(b->mounts, nc * sizeof(*nm));
        if (!nm) {
            free(dst);
            free(src);
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
        }
        b->mounts = nm;
        b->mounts_cap = nc;
    }
    b->mounts[b->nmounts++] = (struct oci_mount){dst, src, readonly, NULL};
    return 0;
}

int oci_bundle_add_mount(struct oci_bundle *b, const char *destination, const char *source,
                         int readonly, struct bx_err *err)
{
    return add_mount(b, strdup(destination), strdup(source), readonly, err);
}

/* An inline input: a new file in the run's inputs directory, owned by the
 * sandbox user with the requested permission bits. */
static int write_input(int dirfd, const char *name, const struct oci_input *in,
                       struct bx_err *err)
{
    int fd, ret = -1;
    if (in->spool) {
        /* A spooled part: a hard link of the file already on disk (no copy
         * in the loop); chown and chmod below go to the same inode. */
        if (store_upload_link(in->spool, dirfd, name, err) < 0)
            return bx_err_wrap(err, "input %s", in->path);
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    } else {
        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "create input %s", in->path);
    if (!in->spool && bx_write_all(fd, in->data, in->len) < 0) {
        bx_err_sys(err, errno == ENOSPC ? BX_E_INSUFFICIENT_STORAGE : BX_E_INTERNAL,
                   "write input %s", in->path);
        goto out;
    }
    if (fchown(fd, OCI_SANDBOX_UID, OCI_SANDBOX_UID) < 0 || fchmod(fd, in->mode & 0777) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "chown/chmod input %s", in->path);
        goto out;
    }
    ret = 0;
out:
    close(fd);
    return ret;
}

int oci_bundle_prepare(struct oci_bundle *b, const struct oci_bundle_params *p, struct bx_err *err)
{
    int inputs = -1;
    int ret = -1;

    if (asprintf(&b->dir, "%s/%s", p->parent_dir, p->name) < 0) {
        b->dir = NULL;
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (mkdirat(p->parent_dirfd, p->name, 0711) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir run dir");
    b->dirfd = openat(p->parent_dirfd, p->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (b->dirfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open run dir");
    if (mkdirat(b->dirfd, "state", 0700) < 0 || mkdirat(b->dirfd, "inputs", 0711) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir run dirs");
    if (mount_output(b, p, err) < 0 || mount_rootfs(b, p, err) < 0)
        return -1;
    inputs = openat(b->dirfd, "inputs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (inputs < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open inputs");
        goto out;
    }
    for (size_t i = 0; i < p->nfiles; i++) {
        char name[32];
        char *src = NULL, *dst = NULL;
        /* A hard link, not the store path: the sandbox sees a file whose
         * name we chose, and a later change in the store cannot redirect it. */
        snprintf(name, sizeof(name), "%zu", i);
        if (store_link_into(p->store, p->files[i], inputs, name, err) < 0) {
            if (err && err->status == BX_E_NOT_FOUND)
                bx_err_set(err, BX_E_BAD_REQUEST, ENOENT, "file not found: %s", p->files[i]);
            goto out;
        }
        if (asprintf(&src, "%s/inputs/%s", b->dir, name) < 0)
            src = NULL;
        if (asprintf(&dst, "/%s", p->files[i]) < 0)
            dst = NULL;
        if (add_mount(b, dst, src, 1, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < p->ninputs; i++) {
        char name[32];
        char *src = NULL, *dst = NULL;
        snprintf(name, sizeof(name), "in%zu", i);
        if (write_input(inputs, name, &p->inputs[i], err) < 0)
            goto out;
        if (asprintf(&src, "%s/inputs/%s", b->dir, name) < 0)
            src = NULL;
        if (asprintf(&dst, "/%s", p->inputs[i].path) < 0)
            dst = NULL;
        if (add_mount(b, dst, src, 1, err) < 0)
            goto out;
    }
    {
        char *src = NULL;
        if (asprintf(&src, "%s/output", b->dir) < 0)
            src = NULL;
        if (add_mount(b, strdup("/output"), src, 0, err) < 0)
            goto out;
    }
    ret = 0;
out:
    bx_close(&inputs);
    return ret;
}

/* A bundle file only runsc reads, right after, in a run directory that a
 * crash leaves to the sweep: no fsync (it cost a run 0.3-3 ms on the
 * critical path), no temp file and rename (runsc reads it only after
 * this returns). */
static int write_scratch_at(int dirfd, const char *name, const struct sbuf *sb,
                            struct bx_err *err)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "create %s", name);
    if (bx_write_all(fd, sb->data, sb->len) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write %s", name);
        close(fd);
        unlinkat(dirfd, name, 0);
        return -1;
    }
    if (close(fd) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "close %s", name);
        unlinkat(dirfd, name, 0);
        return -1;
    }
    return 0;
}

int oci_bundle_write_process(const struct oci_bundle *b, const struct oci_bundle_spec *s,
                             const char *name, struct bx_err *err)
{
    struct oci_process op;
    struct sbuf out;
    struct json_writer w;
    char **env = NULL;
    const char *cwd =
        s->cwd ? s->cwd : (s->image_workdir && s->image_workdir[0] == '/' ? s->image_workdir : "/");
    int ret = -1;

    if (!s->args || !s->args[0])
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "cmd must not be empty");
    sbuf_init(&out, 64u << 20);
    if (oci_merge_env(s->image_env, s->env, &env, err) < 0)
        goto out;
    /* the process a cold run's spec would have (no capabilities) */
    op = (struct oci_process){.args = s->args,
                              .env = env,
                              .cwd = cwd,
                              .uid = OCI_SANDBOX_UID,
                              .gid = OCI_SANDBOX_UID,
                              .nofile = s->nofile,
                              .nproc = s->nproc};
    json_w_init(&w, &out);
    oci_w_process(&w, &op);
    if (w.failed) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "process too large");
        goto out;
    }
    if (write_scratch_at(b->dirfd, name, &out, err) < 0)
        goto out;
    ret = 0;
out:
    bx_strv_free(&env);
    sbuf_free(&out);
    return ret;
}

int oci_bundle_write_spec(const struct oci_bundle *b, const struct oci_bundle_spec *s,
                          struct bx_err *err)
{
    struct oci_params op;
    struct sbuf spec;
    char **env = NULL;
    char rootfs[PATH_MAX];
    const char *cwd =
        s->cwd ? s->cwd : (s->image_workdir && s->image_workdir[0] == '/' ? s->image_workdir : "/");
    int ret = -1;

    sbuf_init(&spec, 64u << 20);
    if (oci_merge_env(s->image_env, s->env, &env, err) < 0)
        goto out;
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", b->dir);
    op = (struct oci_params){.rootfs = rootfs,
                             .args = s->args,
                             .env = env,
                             .cwd = cwd,
                             .hostname = s->hostname,
                             .uid = s->set_user ? s->uid : OCI_SANDBOX_UID,
                             .gid = s->set_user ? s->gid : OCI_SANDBOX_UID,
                             .caps = s->set_user ? s->caps : NULL,
                             .root_writable = s->root_writable,
                             .nofile = s->nofile,
                             .nproc = s->nproc,
                             .tmp_size_mb = s->tmp_size_mb,
                             .mounts = b->mounts,
                             .nmounts = b->nmounts,
                             .netns_path = s->netns_path,
                             .host_network = s->host_network,
                             .cgroups_path = s->cgroups_path};
    if (oci_build_spec(&op, &spec, err) < 0)
        goto out;
    if (write_scratch_at(b->dirfd, "config.json", &spec, err) < 0)
        goto out;
    ret = 0;
out:
    bx_strv_free(&env);
    sbuf_free(&spec);
    return ret;
}

static void unmount_one(struct oci_bundle *b, int *mounted, const char *sub, const char *log_name)
{
    char path[PATH_MAX];
    if (!*mounted)
        return;
    snprintf(path, sizeof(path), "%s/%s", b->dir, sub);
    if (umount2(path, MNT_DETACH) < 0)
        bx_log_warn("%s: umount %s: %s", log_name, sub, strerror(errno));
    *mounted = 0;
}

void oci_bundle_remove(struct oci_bundle *b, int parent_dirfd, const char *name)
{
    struct bx_err err;
    bx_err_clear(&err);
    unmount_one(b, &b->output_mounted, "output", name);
    unmount_one(b, &b->rootfs_mounted, "rootfs", name);
    unmount_one(b, &b->ovl_mounted, "ovl", name);
    if (b->dirfd >= 0) {
        bx_close(&b->dirfd);
        if (bx_rm_rf_at(parent_dirfd, name, &err) < 0)
            bx_log_warn("%s: removing run dir: %s", name, err.msg);
    }
}

void oci_bundle_free(struct oci_bundle *b)
{
    for (size_t i = 0; i < b->nmounts; i++) {
        free((char *)b->mounts[i].destination);
        free((char *)b->mounts[i].source);
    }
    free(b->mounts);
    free(b->dir);
    oci_bundle_init(b);
}
