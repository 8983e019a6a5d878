/* A box's disk, mounts, OCI spec and init binary: see box.h. */
#include "box_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "image.h"
#include "imgref.h"
#include "json.h"
#include "log.h"
#include "oci.h"
#include "proc.h"
#include "util.h"

/* Embedded by the Makefile (boxinit/); weak so that unit tests and fuzzers
 * link box.o without it (boxes then fail to start with a 500). */
extern const unsigned char box_init_bin[] __attribute__((weak));
extern const unsigned long box_init_bin_len __attribute__((weak));

/* ---- disk, mounts ---- */

int attach_and_mount(struct box *b, struct bx_err *err)
{
    char img[PATH_MAX + 16], mnt[PATH_MAX + 16], dev[64];
    int ctl = -1, lfd = -1, ffd = -1, ret = -1;

    snprintf(img, sizeof(img), "%s/disk.img", b->dir);
    snprintf(mnt, sizeof(mnt), "%s/disk", b->dir);
    ffd = open(img, O_RDWR | O_CLOEXEC);
    if (ffd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", img);
    ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open /dev/loop-control");
        goto out;
    }
    /* Another program may take the free device between the two calls:
     * EBUSY means try the next one. */
    for (int tries = 0;; tries++) {
        long n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "LOOP_CTL_GET_FREE");
            goto out;
        }
        snprintf(dev, sizeof(dev), "/dev/loop%ld", n);
        lfd = open(dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0) {
            bx_err_sys(err, BX_E_INTERNAL, "open %s", dev);
            goto out;
        }
        struct loop_config lc;
        memset(&lc, 0, sizeof(lc));
        lc.fd = (unsigned)ffd;
        lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (ioctl(lfd, LOOP_CONFIGURE, &lc) == 0)
            break;
        if (errno != EBUSY || tries >= 20) {
            bx_err_sys(err, BX_E_INTERNAL, "LOOP_CONFIGURE %s", dev);
            goto out;
        }
        bx_close(&lfd);
    }
    if (mount(dev, mnt, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "mount %s", dev);
        goto out;
    }
    /* Autoclear: the device goes with the last unmount once lfd is closed. */
    b->disk_mounted = 1;
    ret = 0;
out:
    bx_close(&lfd);
    bx_close(&ctl);
    bx_close(&ffd);
    return ret;
}

int mount_root(struct box *b, struct bx_err *err)
{
    char upper[PATH_MAX + 16], work[PATH_MAX + 16], root[PATH_MAX + 16];
    struct sbuf opts;
    int ret = -1;

    snprintf(upper, sizeof(upper), "%s/disk/upper", b->dir);
    snprintf(work, sizeof(work), "%s/disk/work", b->dir);
    snprintf(root, sizeof(root), "%s/rootfs", b->dir);
    if ((mkdir(upper, 0755) < 0 && errno != EEXIST) || (mkdir(work, 0700) < 0 && errno != EEXIST))
        return bx_err_sys(err, BX_E_INTERNAL, "mkdir %s", upper);
    /* overlayfs splits its options on ',' and ':' */
    if (strpbrk(b->img->rootfs, ",:") || strpbrk(b->dir, ",:"))
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "paths with ',' or ':' cannot be overlay layers");
    sbuf_init(&opts, 3 * PATH_MAX + 64);
    if (sbuf_appendf(&opts, "lowerdir=%s,upperdir=%s,workdir=%s", b->img->rootfs, upper, work) <
        0) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "overlay options too long");
        goto out;
    }
    if (mount("overlay", root, "overlay", MS_NOSUID | MS_NODEV, opts.data) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "mount overlay");
        goto out;
    }
    b->root_mounted = 1;
    ret = 0;
out:
    sbuf_free(&opts);
    return ret;
}

/* The box's netns, veth and address, made at every start (the same as a
 * `network: "sandbox"` run's, egress rules included) and undone at every
 * stop with the mounts (unmount_all). */
int box_net_setup(struct box *b, struct bx_err *err)
{
    char id[96];
    const char *rnd = strrchr(b->id, '_');
    int dfd, r;
    if (!b->network)
        return 0;
    if (!b->m->p.net || net_unavailable(b->m->p.net))
        return bx_err_set(err, BX_E_INTERNAL, ENOTSUP, "the sandbox network is unavailable");
    dfd = open(b->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", b->dir);
    /* net names the veth after the hex after the first '-': the random
     * part, never the node id of box_<node>_<random> (issue 17). */
    snprintf(id, sizeof(id), "box-%s", rnd ? rnd + 1 : b->id);
    r = net_run_setup(b->m->p.net, b->dir, dfd, id, NULL, 0, 0, &b->net, err);
    close(dfd);
    return r;
}

/* A busy mount is detached lazily, and said: it lives on until its last
 * user is gone. */
static void box_umount(struct box *b, const char *p)
{
    if (umount2(p, 0) == 0)
        return;
    bx_log_warn("box %s: umount %s: %s; detaching it", b->id, p, strerror(errno));
    if (umount2(p, MNT_DETACH) < 0)
        bx_log_error("box %s: umount %s: %s", b->id, p, strerror(errno));
}

void unmount_all(struct box *b)
{
    char p[PATH_MAX + 16];
    net_run_free(&b->net);
    if (b->root_mounted) {
        snprintf(p, sizeof(p), "%s/rootfs", b->dir);
        box_umount(b, p);
        b->root_mounted = 0;
    }
    if (b->disk_mounted) {
        snprintf(p, sizeof(p), "%s/disk", b->dir);
        box_umount(b, p);
        b->disk_mounted = 0;
    }
}

/* ---- the spec ---- */

void box_w_strv(struct json_writer *w, const char *key, char *const *v)
{
    json_w_key(w, key);
    json_w_arr_begin(w);
    for (size_t i = 0; v && v[i]; i++)
        json_w_cstr(w, v[i]);
    json_w_arr_end(w);
}

void w_process(struct json_writer *w, const struct box *b, char *const *args, char *const *env,
               const char *cwd, uint32_t uid, uint32_t gid, int terminal)
{
    /* Another user gets no effective capabilities, as under Docker. */
    struct oci_process p = {.args = args,
                            .env = env,
                            .cwd = cwd,
                            .uid = uid,
                            .gid = gid,
                            .caps = oci_box_caps,
                            .caps_absent = uid != 0,
                            .nofile = BOX_NOFILE,
                            .nproc = b->m->p.cfg->box_defaults.pids_limit,
                            .terminal = terminal};
    oci_w_process(w, &p);
}

static int write_json_file(struct box *b, const char *name, struct sbuf *sb, struct bx_err *err)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s", b->dir, name);
    return bx_write_file_atomic_at(AT_FDCWD, p, sb->data, sb->len, 0600, err);
}

/* A file only runsc reads, right away, and removed after: no fsync and no
 * rename (an exec must cost little more than runsc exec itself). */
int write_scratch_file(struct box *b, const char *name, struct sbuf *sb,
                              struct bx_err *err)
{
    char p[PATH_MAX + 64];
    int fd;
    snprintf(p, sizeof(p), "%s/%s", b->dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "create %s", p);
    if (bx_write_all(fd, sb->data, sb->len) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write %s", p);
        close(fd);
        unlink(p);
        return -1;
    }
    if (close(fd) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "close %s", p);
        unlink(p);
        return -1;
    }
    return 0;
}

/* ---- volumes ---- */

/* 1 when path is root or lies under it (both resolved). */
static int path_under(const char *path, const char *root)
{
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == 0 || path[n] == '/');
}

/* An absolute path of plain components, away from what the box's spec
 * mounts itself. */
static int valid_guest_path(const char *p)
{
    static const char *const reserved[] = {"/proc", "/dev", "/sys", "/.boxer"};
    const char *s = p;
    if (p[0] != '/' || strlen(p) > 1024 || strcmp(p, "/") == 0)
        return 0;
    while (*s) {
        const char *c = s + 1, *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        s = c + len;
    }
    for (size_t i = 0; i < BX_ARRAY_LEN(reserved); i++)
        if (path_under(p, reserved[i]))
            return 0;
    return 1;
}

/* Each host_path is resolved (realpath: every symlink followed) and must
 * then lie under a resolved volume root, so a link inside a root cannot
 * point out of it; host_path becomes the resolved path, which runsc
 * mounts.  The roots are the operator's: what changes under them between
 * this check and the mount is theirs. */
int box_check_volumes(const struct config *cfg, struct box_volume *v, size_t n, struct bx_err *err)
{
    if (n > BOX_VOLUMES_MAX)
        return bx_err_set(err, BX_E_BAD_REQUEST, E2BIG, "volumes: at most %d", BOX_VOLUMES_MAX);
    for (size_t i = 0; i < n; i++) {
        char *real;
        int ok = 0;
        if (!v[i].host_path || v[i].host_path[0] != '/')
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "volumes[%zu].host_path must be an absolute path", i);
        if (!v[i].guest_path || !valid_guest_path(v[i].guest_path))
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "volumes[%zu].guest_path must be an absolute path outside /proc, /dev, /sys, /.boxer", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j].guest_path, v[i].guest_path) == 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "volumes[%zu].guest_path is used twice", i);
        real = realpath(v[i].host_path, NULL);
        if (!real)
            return bx_err_set(err, BX_E_BAD_REQUEST, errno, "volumes[%zu].host_path: %s", i, strerror(errno));
        for (size_t r = 0; r < cfg->volume_roots.n && !ok; r++) {
            char *root = realpath(cfg->volume_roots.items[r], NULL);
            ok = root && path_under(real, root);
            free(root);
        }
        if (!ok) {
            free(real);
            return bx_err_set(err, BX_E_BAD_REQUEST, EPERM,
                              "volumes[%zu].host_path is not under a configured volume_roots entry", i);
        }
        free(v[i].host_path);
        v[i].host_path = real;
    }
    return 0;
}

/* oci_build_spec's hardened spec, with what a box differs in: a writable
 * root (its overlay), root with Docker's default capabilities, Boxer's init
 * as PID 1, no /tmp tmpfs and no /output (both are on the box's disk). */
int box_write_spec(struct box *b, struct bx_err *err)
{
    static const char *const init_o[] = {"rbind", "ro", NULL};
    char *args[] = {"/.boxer/init", NULL};
    char *env[] = {"PATH=" OCI_DEFAULT_PATH, NULL};
    char root[PATH_MAX + 16], init[PATH_MAX + 16];
    struct oci_mount mounts[BOX_VOLUMES_MAX + 2];
    size_t n = 0;
    struct oci_params p;
    struct sbuf sb;
    int ret;

    if (b->nvolumes > BOX_VOLUMES_MAX)
        return bx_err_set(err, BX_E_INTERNAL, E2BIG, "too many volumes");
    snprintf(root, sizeof(root), "%s/rootfs", b->dir);
    snprintf(init, sizeof(init), "%s/init", b->dir);
    mounts[n++] = (struct oci_mount){"/.boxer/init", init, 1, init_o};
    if (b->net)
        mounts[n++] = (struct oci_mount){"/etc/resolv.conf", net_run_resolv_path(b->net), 1, init_o};
    for (size_t i = 0; i < b->nvolumes; i++)
        mounts[n++] = (struct oci_mount){b->volumes[i].guest_path, b->volumes[i].host_path,
                                         b->volumes[i].readonly, NULL};
    p = (struct oci_params){.rootfs = root,
                            .args = args,
                            .env = env,
                            .cwd = "/",
                            .hostname = b->id,
                            .uid = 0,
                            .gid = 0,
                            .nofile = BOX_NOFILE,
                            .nproc = b->m->p.cfg->box_defaults.pids_limit,
                            .mounts = mounts,
                            .nmounts = n,
                            .netns_path = b->net ? net_run_netns_path(b->net) : NULL,
                            .cgroups_path = b->cg ? cg_run_oci_path(b->cg) : NULL,
                            .root_writable = 1,
                            .caps = oci_box_caps,
                            .plain_proc = 1};
    sbuf_init(&sb, 1 << 20);
    ret = oci_build_spec(&p, &sb, err);
    if (ret == 0)
        ret = write_json_file(b, "config.json", &sb, err);
    sbuf_free(&sb);
    return ret;
}

int write_init(struct box *b, struct bx_err *err)
{
    char p[PATH_MAX + 16];
    int fd;
    if (!box_init_bin || !&box_init_bin_len || box_init_bin_len == 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOENT, "this build has no box init");
    snprintf(p, sizeof(p), "%s/init", b->dir);
    unlink(p);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0555);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "create %s", p);
    if (bx_write_all(fd, box_init_bin, box_init_bin_len) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write %s", p);
        close(fd);
        return -1;
    }
    if (close(fd) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "close %s", p);
    return 0;
}

