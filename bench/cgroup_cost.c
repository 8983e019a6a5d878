/* What cgroup.c costs a run, measured on this host's real cgroupfs: for
 * each of N runs, setup (cg_run_create with limits, cpuset pinning included,
 * and opening the cgroup.procs fds the child joins through) and teardown
 * (cg_run_usage, then cg_run_destroy, which removes every directory).
 * Prints the median and the 90th percentile in microseconds.
 *
 *   cc -O2 -I. -o cgroup_cost bench/cgroup_cost.c cgroup.c util.c -lm
 *   ./cgroup_cost [N]
 *
 * Needs root.  Its cgroups live under <own cgroup>/boxer-bench-<pid> and are
 * gone when it exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[(int)(p * (n - 1))];
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    struct cg_ctx *ctx = NULL;
    struct bx_err err = {0};
    struct cg_limits lim = {1.0, 256u << 20, 32 + 4 * 64};
    char base[64];
    double *setup, *teardown, *total;
    int ret = 1;

    if (n < 1 || n > 100000)
        n = 100;
    setup = calloc((size_t)n, sizeof(double));
    teardown = calloc((size_t)n, sizeof(double));
    total = calloc((size_t)n, sizeof(double));
    if (!setup || !teardown || !total)
        return 1;
    snprintf(base, sizeof(base), "boxer-bench-%d", (int)getpid());
    if (cg_init(&ctx, "/sys/fs/cgroup", "/proc/self/cgroup", "/proc/self/mountinfo", base,
                &err) < 0) {
        fprintf(stderr, "cg_init: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "%s\n", cg_describe(ctx));
    for (int i = 0; i < n; i++) {
        struct cg_run *run = NULL;
        struct cg_usage u;
        int fds[CG_MAX_PROCS_FDS], nfds;
        char name[64];
        double t0, t1, t2;

        snprintf(name, sizeof(name), "boxer-bench-run-%d", i);
        t0 = now_us();
        if (cg_run_create(ctx, name, &lim, &run, &err) < 0) {
            fprintf(stderr, "create: %s\n", err.msg);
            goto out;
        }
        nfds = cg_run_procs_fds(run, fds, CG_MAX_PROCS_FDS, &err);
        if (nfds < 0) {
            fprintf(stderr, "procs fds: %s\n", err.msg);
            goto out;
        }
        for (int k = 0; k < nfds; k++)
            close(fds[k]);
        t1 = now_us();
        if (cg_run_usage(run, &u, &err) < 0 || cg_run_destroy(&run, &err) < 0) {
            fprintf(stderr, "usage/destroy: %s\n", err.msg);
            goto out;
        }
        t2 = now_us();
        setup[i] = t1 - t0;
        teardown[i] = t2 - t1;
        total[i] = t2 - t0;
    }
    printf("cgroup_runs=%d setup_median_us=%.0f teardown_median_us=%.0f total_median_us=%.0f "
           "total_p90_us=%.0f\n",
           n, pct(setup, n, 0.5), pct(teardown, n, 0.5), pct(total, n, 0.5),
           pct(total, n, 0.9));
    ret = 0;
out:
    cg_free(&ctx);
    free(setup);
    free(teardown);
    free(total);
    return ret;
}
