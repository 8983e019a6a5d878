/* `boxer check-host [--config PATH]`: checks, with the server's own code
 * where it has one (config loading, cgroup setup, runsc probing, PATH
 * lookup), what this host lacks, one line per check:
 *
 *   ok      NAME: what was found
 *   warn    NAME: what is missing -- fix: what to do   (Boxer starts, a feature is off)
 *   missing NAME: what is missing -- fix: what to do   (Boxer cannot serve runs)
 *
 * and exits 1 when a required check is missing.  The systemd unit runs it
 * as ExecStartPre, so a host that cannot serve says why in the journal
 * instead of failing at the first run.  Programs run with an explicit argv
 * and environment, never through a shell. */
#include "check_host.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "config.h"
#include "err.h"
#include "proc.h"
#include "util.h"

enum ck_status { CK_OK, CK_WARN, CK_MISSING };

struct ck {
    int missing; /* required checks that failed */
};

/* One line: status, name, detail, and the fix when the check failed. */
static void report(struct ck *ck, enum ck_status st, const char *name, const char *fix,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void report(struct ck *ck, enum ck_status st, const char *name, const char *fix,
                   const char *fmt, ...)
{
    static const char *const word[] = {"ok", "warn", "missing"};
    va_list ap;

    printf("%-7s %s: ", word[st], name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (st != CK_OK && fix)
        printf(" -- fix: %s", fix);
    putchar('\n');
    if (st == CK_MISSING)
        ck->missing++;
}

/* Runs argv with the start-up probes' minimal environment; returns the
 * wait status (or -1) and, when out is given, the first line of stdout. */
static int run_tool(const char *path, char **argv, char *out, size_t cap)
{
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    struct bx_err err;
    int fd = -1, status;

    bx_err_clear(&err);
    if (out) {
        out[0] = '\0';
        /* A file, not a pipe: the child can never block on a full pipe
         * while we wait for it. */
        fd = memfd_create("boxer-check", MFD_CLOEXEC);
        if (fd < 0)
            return -1;
    }
    struct proc_spec spec = {.path = path, .argv = argv, .envp = envp,
                             .stdin_fd = -1, .stdout_fd = fd, .stderr_fd = -1};
    status = proc_run_sync(&spec, 20000, &err);
    if (out && status >= 0) {
        ssize_t n;
        do
            n = pread(fd, out, cap - 1, 0);
        while (n < 0 && errno == EINTR);
        out[n > 0 ? n : 0] = '\0';
        out[strcspn(out, "\n")] = '\0';
    }
    if (fd >= 0)
        close(fd);
    return status;
}

static int exited_ok(int status)
{
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* `runsc --root=<tmp> --platform=P list` succeeds: the probe the server
 * makes at start-up (an unknown platform fails at once). */
static int platform_works(const char *runsc, const char *platform, const char *root)
{
    char rootarg[4200], platarg[80];
    snprintf(rootarg, sizeof(rootarg), "--root=%s", root);
    snprintf(platarg, sizeof(platarg), "--platform=%s", platform);
    char *argv[] = {(char *)runsc, rootarg, platarg, "list", NULL};
    return exited_ok(run_tool(runsc, argv, NULL, 0));
}

static void check_runsc(struct ck *ck, const struct config *cfg)
{
    static const char install[] =
        "install gVisor's runsc (Debian 12: apt-get install -t bookworm-backports runsc) "
        "or set runsc_path";
    char runsc[4096], version[256], root[4096];
    const char *tmp = getenv("TMPDIR");

    if (cfg->runsc_path[0]) {
        if (access(cfg->runsc_path, X_OK) != 0) {
            report(ck, CK_MISSING, "runsc", install, "runsc_path %s: %s", cfg->runsc_path,
                   strerror(errno));
            return;
        }
        snprintf(runsc, sizeof(runsc), "%s", cfg->runsc_path);
    } else if (proc_find_in_path("runsc", getenv("PATH"), runsc, sizeof(runsc)) < 0 &&
               proc_find_in_path("runsc", NULL, runsc, sizeof(runsc)) < 0) {
        /* the server looks in PATH, then in the default directories */
        report(ck, CK_MISSING, "runsc", install, "not found in PATH nor in %s", BX_DEFAULT_PATH);
        return;
    }
    {
        char *argv[] = {runsc, "--version", NULL};
        if (!exited_ok(run_tool(runsc, argv, version, sizeof(version))) || !version[0]) {
            report(ck, CK_MISSING, "runsc", install, "%s --version fails", runsc);
            return;
        }
    }
    report(ck, CK_OK, "runsc", NULL, "%s (%s)", runsc, version);

    snprintf(root, sizeof(root), "%s/boxer-check-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        report(ck, CK_MISSING, "platform", "make TMPDIR (or /tmp) writable",
               "cannot make a directory for runsc's probe: %s", strerror(errno));
        return;
    }
    if (platform_works(runsc, cfg->platform, root)) {
        report(ck, CK_OK, "platform", NULL, "%s works", cfg->platform);
    } else if (strcmp(cfg->platform, "ptrace") != 0 && platform_works(runsc, "ptrace", root)) {
        /* the server falls back to ptrace with a warning */
        report(ck, CK_WARN, "platform",
               "install runsc from bookworm-backports (systrap), or set platform to ptrace",
               "%s does not work with this runsc; Boxer would fall back to ptrace (slower)",
               cfg->platform);
    } else {
        report(ck, CK_MISSING, "platform",
               "run Boxer as root where runsc can ptrace its sandboxes (no seccomp or "
               "container policy forbidding it)",
               "runsc works with neither %s nor ptrace", cfg->platform);
    }
    bx_rm_rf_at(AT_FDCWD, root, NULL);
}

/* The server's own cgroup set-up, under a base of our own that cg_free
 * removes again: cpu, memory and pids must be usable below the cgroup we
 * (and so the server, started the same way) run in. */
static void check_cgroups(struct ck *ck, const struct config *cfg)
{
    struct cg_ctx *cg = NULL;
    struct bx_err err;
    char base[64];

    if (cfg->ignore_cgroups) {
        report(ck, CK_WARN, "cgroups", "unset ignore_cgroups once the host has cgroups",
               "ignore_cgroups is set: cpu, memory and pids limits are not enforced");
        return;
    }
    bx_err_clear(&err);
    snprintf(base, sizeof(base), "boxer-check-%ld", (long)getpid());
    if (cg_init(&cg, "/sys/fs/cgroup", "/proc/self/cgroup", "/proc/self/mountinfo", base,
                &err) < 0) {
        report(ck, CK_MISSING, "cgroups",
               "run Boxer as root in a cgroup it may create children in with the cpu, memory "
               "and pids controllers (systemd: Delegate=yes), or set ignore_cgroups",
               "%s", err.msg);
        return;
    }
    {
        /* The description names our probe's base cgroups, gone once we
         * return: show the cgroups they were made in (the server's own
         * base goes there too). */
        char desc[2048], *at;
        size_t bl;
        snprintf(desc, sizeof(desc), "%s", cg_describe(cg));
        memmove(base + 1, base, strlen(base) + 1);
        base[0] = '/';
        bl = strlen(base);
        while ((at = strstr(desc, base)) != NULL)
            memmove(at, at + bl, strlen(at + bl) + 1);
        report(ck, CK_OK, "cgroups", NULL, "cpu, memory, pids usable under %s", desc);
    }
    cg_free(&cg);
}

static void check_loop(struct ck *ck)
{
    int fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        report(ck, CK_WARN, "loop", "modprobe loop (in a container: give it the host's /dev)",
               "/dev/loop-control: %s: boxes cannot have disks", strerror(errno));
        return;
    }
    close(fd);
    report(ck, CK_OK, "loop", NULL, "/dev/loop-control");
}

/* A program the server looks up in PATH (else the default directories). */
static void check_tool(struct ck *ck, const char *name, enum ck_status if_missing,
                       const char *lost, const char *fix)
{
    const char *path = getenv("PATH");
    char found[4096];

    if (proc_find_in_path(name, path && path[0] ? path : BX_DEFAULT_PATH, found,
                          sizeof(found)) < 0) {
        report(ck, if_missing, name, fix, "not found in PATH: %s", lost);
        return;
    }
    report(ck, CK_OK, name, NULL, "%s", found);
}

/* Free space where the home is (or will be: its nearest existing parent);
 * /readyz refuses work below min_free_disk_percent. */
static void check_disk(struct ck *ck, const struct config *cfg)
{
    char dir[4096];
    struct statvfs sv;
    char *slash;
    double total, avail, pct;

    snprintf(dir, sizeof(dir), "%s", cfg->home);
    while (statvfs(dir, &sv) < 0) {
        if (errno != ENOENT || !(slash = strrchr(dir, '/'))) {
            report(ck, CK_MISSING, "disk", "make the home's file system reachable",
                   "%s: %s", dir, strerror(errno));
            return;
        }
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    total = (double)sv.f_blocks * (double)sv.f_frsize;
    avail = (double)sv.f_bavail * (double)sv.f_frsize;
    pct = total > 0 ? 100.0 * avail / total : 0;
    if (pct <= (double)cfg->min_free_disk_percent) {
        report(ck, CK_MISSING, "disk", "free space there, or move home to a larger file system",
               "%.1f GiB free (%.0f%%) under %s, at or below min_free_disk_percent %llu",
               avail / 1073741824.0, pct, cfg->home,
               (unsigned long long)cfg->min_free_disk_percent);
        return;
    }
    report(ck, CK_OK, "disk", NULL, "%.1f GiB free (%.0f%%) under %s", avail / 1073741824.0,
           pct, cfg->home);
}

static void usage(FILE *f)
{
    fputs("usage: boxer check-host [--config PATH]\n"
          "  reports what this host lacks to run Boxer; exit 1 when a required check fails\n",
          f);
}

int check_host_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    struct config cfg;
    struct bx_err err;
    struct ck ck = {0};
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    bx_err_clear(&err);
    config_defaults(&cfg);
    if (config_load(&cfg, config_path, &err) < 0) {
        report(&ck, CK_MISSING, "config", "correct the configuration (see boxer(1))", "%s",
               err.msg);
        config_free(&cfg);
        fflush(stdout);
        return 1;
    }
    report(&ck, CK_OK, "config", NULL, "%s", cfg.source ? cfg.source : "(defaults)");
    check_runsc(&ck, &cfg);
    check_cgroups(&ck, &cfg);
    check_loop(&ck);
    check_tool(&ck, "skopeo", CK_MISSING, "images cannot be pulled",
               "apt-get install skopeo");
    check_tool(&ck, "umoci", CK_MISSING, "images cannot be unpacked", "apt-get install umoci");
    check_tool(&ck, "nft", CK_WARN, "network \"sandbox\" is unavailable",
               "apt-get install nftables");
    check_disk(&ck, &cfg);
    config_free(&cfg);
    if (fflush(stdout) != 0)
        return 1;
    return ck.missing ? 1 : 0;
}
