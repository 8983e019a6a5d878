/* The multipart POST /run body (issue 17): multipart.c's incremental parser
 * below, the request part and the spooled file parts above.  See
 * run_multipart.h for the contract. */
#include "run_multipart.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "multipart.h"
#include "oci.h"
#include "store.h"
#include "util.h"

enum runmp_part { RP_NONE, RP_REQUEST, RP_FILE };

struct runmp {
    const struct config *cfg;
    struct store *st;
    struct mp_parser *mp;
    enum runmp_part part;
    unsigned nparts;
    struct sbuf body;         /* the request part while it arrives */
    struct run_request *req;  /* once the request part ended */
    size_t cur;               /* req->inputs index of the file part in progress */
};

/* A part name as text for an error message: printable ASCII, else '?'. */
static void shown(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (; k < n && k + 4 < cap; k++)
        out[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
    if (k < n && cap >= 4)
        memcpy(out + k, "...", 3), k += 3;
    out[k] = '\0';
}

/* The inputs entry the file part `norm` fills: an existing {"part": true}
 * one, or a new one (mode 0644).  Refuses what "inputs" would refuse. */
static int file_slot(struct runmp *m, const char *norm, size_t *idx, struct bx_err *err)
{
    struct run_request *r = m->req;
    struct oci_input *nv;

    for (size_t j = 0; j < r->nfiles; j++)
        if (strcmp(r->files[j], norm) == 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "part %.100s: also in files", norm);
    for (size_t j = 0; j < r->ninputs; j++) {
        struct oci_input *in = &r->inputs[j];
        if (strcmp(in->path, norm) != 0)
            continue;
        if (!in->part)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "part %.100s: also in inputs with content", norm);
        if (in->spool)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "part %.100s: given twice", norm);
        *idx = j;
        return 0;
    }
    if (r->ninputs + r->nfiles + 1 > RUN_MAX_FILES)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "inputs, files and parts: at most %d entries together", RUN_MAX_FILES);
    /* one spare slot, as parse_inputs leaves (calloc(n + 1)) */
    nv = realloc(r->inputs, (r->ninputs + 2) * sizeof(*nv));
    if (!nv)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    r->inputs = nv;
    memset(&nv[r->ninputs], 0, 2 * sizeof(*nv));
    nv[r->ninputs].path = strdup(norm);
    if (!nv[r->ninputs].path)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    nv[r->ninputs].mode = 0644;
    nv[r->ninputs].part = 1;
    *idx = r->ninputs++;
    return 0;
}

static int on_begin(void *ctx, const char *name, size_t name_len, int has_filename,
                    struct bx_err *err)
{
    struct runmp *m = ctx;
    char norm[STORE_PATH_MAX + 1], nm[80];
    int is_request = bx_str_eq(name, name_len, "request");

    (void)has_filename; /* the name is the path; a filename is the client's own */
    if (m->nparts++ == 0) {
        if (!is_request) {
            shown(name, name_len, nm, sizeof(nm));
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "multipart /run: the first part must be \"request\" (the /run "
                              "JSON), not \"%s\"",
                              nm);
        }
        m->part = RP_REQUEST;
        return 0;
    }
    if (is_request)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "multipart /run: more than one request part");
    if (store_normalize_path(name, name_len, 1, norm, err) < 0) {
        shown(name, name_len, nm, sizeof(nm));
        return bx_err_wrap(err, "part \"%s\"", nm);
    }
    if (file_slot(m, norm, &m->cur, err) < 0)
        return -1;
    if (store_upload_begin(m->st, &m->req->inputs[m->cur].spool, err) < 0)
        return -1;
    m->part = RP_FILE;
    return 0;
}

/* 413 "<kind><what> <why> (<limit>)" (each call on one line: fuzz/limits.txt) */
static int too_large(struct bx_err *err, const char *kind, const char *what, const char *why,
                     uint64_t limit)
{
    return bx_err_set(err, BX_E_TOO_LARGE, E2BIG, "%s%.100s %s (%" PRIu64 ")", kind, what, why,
                      limit);
}

static int on_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct runmp *m = ctx;
    if (m->part == RP_REQUEST) {
        if (sbuf_append(&m->body, data, len) < 0)
            return too_large(err, "the request part", "", "is larger than max_request_body_bytes",
                             run_max_body(m->cfg));
    } else if (m->part == RP_FILE) {
        struct oci_input *in = &m->req->inputs[m->cur];
        uint64_t lim = m->cfg->upload_limit_bytes;
        if (len > lim - store_upload_size(in->spool))
            return too_large(err, "part ", in->path, "is larger than upload_limit_bytes", lim);
        if (store_upload_write(in->spool, data, len, err) < 0)
            return bx_err_wrap(err, "part %.100s", in->path);
    }
    return 0;
}

static int on_end(void *ctx, struct bx_err *err)
{
    struct runmp *m = ctx;
    enum runmp_part was = m->part;

    m->part = RP_NONE;
    if (was == RP_REQUEST) {
        int r = run_request_parse_ex(m->body.data ? m->body.data : "", m->body.len, m->cfg, 1,
                                     &m->req, err);
        sbuf_free(&m->body);
        return r < 0 ? bx_err_wrap(err, "request part") : 0;
    }
    if (was == RP_FILE) {
        /* no descriptor or buffer held while the request waits for its run */
        if (store_upload_seal(m->req->inputs[m->cur].spool, err) < 0)
            return bx_err_wrap(err, "part %.100s", m->req->inputs[m->cur].path);
    }
    return 0;
}

static const struct mp_callbacks runmp_cb = {on_begin, on_data, on_end};

int runmp_new(struct runmp **out, const struct config *cfg, struct store *st, const char *ct,
              size_t ct_len, struct bx_err *err)
{
    char boundary[MP_MAX_BOUNDARY + 1];
    size_t blen = 0;
    struct runmp *m;

    *out = NULL;
    if (!st)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "runmp_new: no store");
    if (mp_boundary_from_content_type(ct, ct_len, boundary, &blen, err) < 0)
        return -1;
    m = calloc(1, sizeof(*m));
    if (!m)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    m->cfg = cfg;
    m->st = st;
    sbuf_init(&m->body, run_max_body(cfg));
    if (mp_new(&m->mp, boundary, blen, &runmp_cb, m, err) < 0) {
        runmp_free(&m);
        return -1;
    }
    *out = m;
    return 0;
}

int runmp_feed(struct runmp *m, const char *data, size_t len, struct bx_err *err)
{
    return mp_feed(m->mp, data, len, err);
}

int runmp_finish(struct runmp *m, struct run_request **out, struct bx_err *err)
{
    *out = NULL;
    if (mp_finish(m->mp, err) < 0)
        return -1;
    if (!m->req)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "multipart /run: no request part (the /run JSON, named \"request\")");
    for (size_t i = 0; i < m->req->ninputs; i++)
        if (m->req->inputs[i].part && !m->req->inputs[i].spool)
            return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                              "inputs[\"%.100s\"]: part: true, but the body has no part of "
                              "that name",
                              m->req->inputs[i].path);
    *out = bx_steal_ptr(&m->req);
    return 0;
}

void runmp_free(struct runmp **mp)
{
    struct runmp *m = *mp;
    if (!m)
        return;
    mp_free(&m->mp);
    sbuf_free(&m->body);
    run_request_free(&m->req); /* removes the spooled files */
    free(m);
    *mp = NULL;
}
