#define _GNU_SOURCE
#include "run_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "oci.h"
#include "proc.h"
#include "store.h"
#include "util.h"

/* ---- persist=false: deleting what a run leaves in the store ---- */

/* Plain blocking code: in a discard child, or inline as a fallback. */
int discard_work(void *arg)
{
    struct discard *d = arg;
    struct store *st = d->mgr->p.store;
    struct bx_err err;
    int ret = 0;
    if (d->rep)
        store_report_begin(st, d->rep);
    for (size_t i = 0; i < d->nhidden; i++) {
        bx_err_clear(&err);
        if (store_purge(st, d->hidden[i], &err) < 0) {
            bx_log_error("%s: deleting persist=false files: %s",
                    d->exec_id[0] ? d->exec_id : "run", err.msg);
            ret = 1;
        }
    }
    for (size_t i = 0; d->files && d->files[i]; i++) {
        bx_err_clear(&err);
        if (store_prune(st, d->files[i], &err) < 0)
            ret = 1;
    }
    if (d->rep)
        store_report_end(st, d->rep);
    return ret;
}

void discard_free(struct discard *d)
{
    store_report_free(&d->rep);
    bx_strv_free(&d->files);
    free(d->hidden);
    free(d);
}

static void discard_unlink(struct discard *d)
{
    for (struct discard **pp = &d->mgr->discards; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
}

static void on_discard_exit(void *arg, int status)
{
    struct discard *d = arg;
    (void)status;
    proc_free(&d->proc);
    /* Whatever the child got done, its report says (a child that died
     * half-way leaves the totals a little high until the next start). */
    store_report_apply(d->mgr->p.store, d->rep);
    discard_unlink(d);
    discard_free(d);
}

/* Deletes files (taken over) and, with exec_id, output/<exec_id>.  They
 * are hidden at once, here (a rename each: gone for every later request,
 * as "deleted once the answer is written" promises); the deletion itself,
 * up to output_files_max files and a fsync per directory, is too slow for
 * the loop, so a child does it, like the /output capture. */
void discard_start(struct run_mgr *m, char ***files, const char *exec_id)
{
    struct bx_err err;
    struct discard *d;
    size_t nfiles = 0;
    int keep[2], n;

    if ((!files || !*files || !**files) && !exec_id)
        return;
    while (files && *files && (*files)[nfiles])
        nfiles++;
    d = calloc(1, sizeof(*d));
    if (d)
        d->hidden = calloc(nfiles + 1, sizeof(*d->hidden));
    if (!d || !d->hidden) {
        free(d);
        bx_log_error("out of memory deleting persist=false files");
        return;
    }
    d->mgr = m;
    if (files)
        d->files = bx_steal_ptr(files);
    if (exec_id)
        snprintf(d->exec_id, sizeof(d->exec_id), "%s", exec_id);
    for (size_t i = 0; i <= nfiles; i++) {
        int r;
        bx_err_clear(&err);
        if (i < nfiles)
            r = store_hide(m->p.store, d->files[i], d->hidden[d->nhidden], &err);
        else
            r = exec_id ? store_hide_output(m->p.store, exec_id, d->hidden[d->nhidden], &err) : 1;
        if (r == 0)
            d->nhidden++;
        else if (r < 0)
            bx_log_error("%s: hiding persist=false files: %s",
                    exec_id ? exec_id : "run", err.msg);
    }
    if (d->nhidden == 0) {
        discard_free(d); /* nothing was there */
        return;
    }
    bx_err_clear(&err);
    d->rep = store_report_new();
    n = store_fds(m->p.store, keep, 2);
    if (d->rep &&
        proc_fork(m->p.loop, keep, n, discard_work, d, on_discard_exit, d, &d->proc, &err) == 0) {
        d->next = m->discards;
        m->discards = d;
        return;
    }
    bx_log_warn("%s; deleting persist=false files in the loop",
            d->rep ? err.msg : "out of memory");
    /* In this process the store's totals follow by themselves. */
    store_report_free(&d->rep);
    discard_work(d);
    discard_free(d);
}

