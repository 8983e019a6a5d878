#define _GNU_SOURCE
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* ---- crash recovery ---- */

/* Kills processes whose command line names a path under runs_dir: runsc,
 * its gofer and sandbox carry --root=<runs_dir>/<id>/state. */
static void kill_stale_processes(const char *runs_dir)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t rl = strlen(runs_dir);
    pid_t self = getpid();
    if (!d)
        return;
    while ((de = readdir(d)) != NULL) {
        char path[64], buf[8192];
        int fd;
        ssize_t n;
        long pid = strtol(de->d_name, NULL, 10);
        if (pid <= 1 || pid == self)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        n = bx_read_full(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n] = '\0';
        for (char *p = strstr(buf, runs_dir); p; p = strstr(p + 1, runs_dir)) {
            if (p[rl] == '/') {
                kill((pid_t)pid, SIGKILL);
                break;
            }
        }
    }
    closedir(d);
}

/* /proc/self/mountinfo writes ' ', '\t', '\n' and '\\' in paths as \ooo:
 * decodes a field in place. */
static void mountinfo_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* A crash can leave any number of mounts below runs/ (three per run, more
 * when runs were stacked by crashes during recovery), and bx_rm_rf_at
 * refuses to cross a mount, so recovery unmounts until mountinfo lists none.
 * One pass holds at most UNMOUNT_PASS_MAX paths; the passes are bounded
 * (64 x 4096 is above the kernel's default fs.mount-max of 100000) and stop
 * as soon as a pass detaches nothing. */
#define UNMOUNT_PASS_MAX 4096
#define UNMOUNT_PASSES_MAX 64

/* Lazily unmounts the mounts below runs_dir that mountinfo lists now, the
 * most recent first (children and overmounts before what they cover).
 * Returns how many were listed (0: none left) or -1; *detached counts the
 * unmounts that worked. */
static long unmount_pass(const char *runs_dir, size_t *detached, struct bx_err *err)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    size_t rl = strlen(runs_dir), nt = 0, tcap = 0, lcap = 0;
    char **targets = NULL, *line = NULL;
    long found = -1, listed = 0;

    if (!f)
        return bx_err_sys(err, BX_E_INTERNAL, "open /proc/self/mountinfo");
    while (getline(&line, &lcap, f) > 0) {
        /* fields: id parent major:minor root mountpoint ... */
        char *mp = line;
        for (int i = 0; i < 4 && mp; i++) {
            mp = strchr(mp, ' ');
            if (mp)
                mp++;
        }
        if (!mp)
            continue;
        mp[strcspn(mp, " \n")] = '\0';
        mountinfo_unescape(mp);
        if (strncmp(mp, runs_dir, rl) != 0 || mp[rl] != '/')
            continue;
        listed++;
        if (nt == UNMOUNT_PASS_MAX) /* the next pass takes the rest */
            continue;
        if (nt == tcap) {
            size_t ncap = tcap ? tcap * 2 : 64;
            char **nv = realloc(targets, ncap * sizeof(*nv));
            if (!nv) {
                bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            targets = nv;
            tcap = ncap;
        }
        targets[nt] = strdup(mp);
        if (!targets[nt]) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        nt++;
    }
    if (ferror(f)) {
        bx_err_set(err, BX_E_INTERNAL, EIO, "read /proc/self/mountinfo");
        goto out;
    }
    for (size_t i = nt; i-- > 0;) {
        /* EINVAL/ENOENT: already gone with a parent detached before it. */
        if (umount2(targets[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
            (*detached)++;
    }
    found = listed;
out:
    for (size_t i = 0; i < nt; i++)
        free(targets[i]);
    free(targets);
    free(line);
    fclose(f);
    return found;
}

/* Mounts that cannot be unmounted (a mount point deleted from another
 * namespace: "(deleted)") are reported; if one is in the way, the removal
 * that follows fails naming it. */
static int unmount_stale(const char *runs_dir, struct bx_err *err)
{
    long found = 0;
    for (int pass = 0; pass < UNMOUNT_PASSES_MAX; pass++) {
        size_t detached = 0;
        found = unmount_pass(runs_dir, &detached, err);
        if (found <= 0)
            return (int)found;
        if (detached == 0)
            break;
    }
    bx_log_warn("warning: %ld stale mounts below %s could not be unmounted", found,
            runs_dir);
    return 0;
}

int recover_sweep_dir(const char *dir, struct bx_err *err)
{
    char *real;
    int ret;
    kill_stale_processes(dir);
    /* mountinfo names mount points by their canonical path. */
    real = realpath(dir, NULL);
    if (!real)
        return errno == ENOENT ? 0 : bx_err_sys(err, BX_E_INTERNAL, "realpath %s", dir);
    ret = unmount_stale(real, err);
    free(real);
    return ret;
}

int run_recover(const struct config *cfg, struct bx_err *err)
{
    char *runs_dir = NULL, *real = NULL;
    int fd = -1;
    DIR *d = NULL;
    struct dirent *de;
    int ret = -1;

    if (asprintf(&runs_dir, "%s/runs", cfg->home) < 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    fd = open(runs_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        ret = errno == ENOENT ? 0 : bx_err_sys(err, BX_E_INTERNAL, "open %s", runs_dir);
        goto out;
    }
    kill_stale_processes(runs_dir);
    /* mountinfo names mount points by their canonical path. */
    real = realpath(runs_dir, NULL);
    if (!real) {
        bx_err_sys(err, BX_E_INTERNAL, "realpath %s", runs_dir);
        goto out;
    }
    if (unmount_stale(real, err) < 0)
        goto out;
    d = fdopendir(fd);
    if (!d) {
        bx_err_sys(err, BX_E_INTERNAL, "fdopendir");
        goto out;
    }
    fd = -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        bx_log_info("removing stale run %s", de->d_name);
        if (bx_rm_rf_at(dirfd(d), de->d_name, err) < 0)
            goto out;
    }
    ret = 0;
out:
    if (d)
        closedir(d);
    bx_close(&fd);
    free(real);
    free(runs_dir);
    return ret;
}
