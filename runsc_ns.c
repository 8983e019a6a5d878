/* runsc's private mount namespace; see runsc_ns.h. */
#include "runsc_ns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct ns_guard {
    int mnt_fd;
    int cwd_fd;
};

static void ns_leave(struct ns_guard *g)
{
    if (g->mnt_fd >= 0 && setns(g->mnt_fd, CLONE_NEWNS) < 0)
        bx_log_error("ERROR: cannot return to the original mount namespace: %s", strerror(errno));
    if (g->cwd_fd >= 0 && fchdir(g->cwd_fd) < 0)
        bx_log_warn("fchdir: %s", strerror(errno));
    bx_close(&g->mnt_fd);
    bx_close(&g->cwd_fd);
}

/* An empty file of the fake cgroup directory, with an optional content. */
static int put_file(int dirfd, const char *name, const char *text, struct bx_err *err)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "create %s", name);
    if (text && bx_write_all(fd, text, strlen(text)) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "write %s", name);
        bx_close(&fd);
        return -1;
    }
    if (close(fd) < 0 && errno != EINTR)
        return bx_err_sys(err, BX_E_INTERNAL, "close %s", name);
    return 0;
}

/* The tmpfs over the cpuset hierarchy with rel's directory in it; see
 * runsc_ns.h.  rel comes from the kernel (/proc/self/cgroup below the
 * mount's root); bx_mkdir_p_at refuses ".." and symlinks all the same. */
static int shadow_cpuset(const struct runsc_ns_opts *o, struct bx_err *err)
{
    char cpus[256];
    int mntfd, dirfd, ret = -1;

    if (snprintf(cpus, sizeof(cpus), "%s\n", o->cpuset_cpus) >= (int)sizeof(cpus))
        return bx_err_set(err, BX_E_INTERNAL, E2BIG, "cpuset.cpus value too long");
    if (mount("tmpfs", o->cpuset_mount, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=64k,nr_inodes=256,mode=0755") < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "mount tmpfs on %s", o->cpuset_mount);
    mntfd = open(o->cpuset_mount, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (mntfd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "open %s", o->cpuset_mount);
    /* relative to the tmpfs: a leading "/" would make it start at "/" */
    dirfd = bx_mkdir_p_at(mntfd, o->cpuset_rel + strspn(o->cpuset_rel, "/"), 0755, 1, err);
    bx_close(&mntfd);
    if (dirfd < 0)
        return -1;
    if (put_file(dirfd, "cpuset.cpus", cpus, err) < 0 || put_file(dirfd, "cgroup.procs", NULL, err) < 0 ||
        put_file(dirfd, "tasks", NULL, err) < 0)
        goto out;
    ret = 0;
out:
    bx_close(&dirfd);
    return ret;
}

static int ns_enter(struct ns_guard *g, const struct runsc_ns_opts *o, struct bx_err *err)
{
    g->mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    g->cwd_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (g->mnt_fd < 0 || g->cwd_fd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "saving mount namespace");
        bx_close(&g->mnt_fd);
        bx_close(&g->cwd_fd);
        return -1;
    }
    if (unshare(CLONE_NEWNS) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "unshare mount namespace");
        bx_close(&g->mnt_fd);
        bx_close(&g->cwd_fd);
        return -1;
    }
    /* Slave first: the tmpfs mounts below must never propagate back to the
     * host (on a host with shared mounts a fresh namespace shares peer
     * groups). */
    if (mount("none", "/", "none", MS_REC | MS_SLAVE, NULL) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "making runsc's mount namespace a slave");
        goto fail;
    }
    if (o->hide_proc_sys_net &&
        mount("tmpfs", "/proc/sys/net", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,mode=0555") < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "masking /proc/sys/net for runsc");
        goto fail;
    }
    if (o->cpuset_mount && shadow_cpuset(o, err) < 0) {
        bx_err_wrap(err, "runsc's view of cpuset.cpus");
        goto fail;
    }
    return 0;
fail:
    ns_leave(g);
    return -1;
}

void runsc_ns_opts_for(struct runsc_ns_opts *o, int hide_net, const struct cg_run *cg)
{
    *o = (struct runsc_ns_opts){.hide_proc_sys_net = hide_net};
    if (!cg_run_cpuset_shadow(cg, &o->cpuset_mount, &o->cpuset_rel, &o->cpuset_cpus))
        o->cpuset_mount = o->cpuset_rel = o->cpuset_cpus = NULL;
}

int runsc_spawn(struct loop *l, const struct proc_spec *spec, const struct runsc_ns_opts *o,
                proc_exit_cb cb, void *arg, struct proc **out, struct bx_err *err)
{
    struct ns_guard g;
    int r;
    if (!o || (!o->hide_proc_sys_net && !o->cpuset_mount))
        return proc_spawn(l, spec, cb, arg, out, err);
    if (ns_enter(&g, o, err) < 0)
        return -1;
    r = proc_spawn(l, spec, cb, arg, out, err);
    ns_leave(&g);
    return r;
}
