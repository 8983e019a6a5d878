/* libFuzzer harness for run_multipart.c, the multipart POST /run body
 * (issue 17), on a real store in a temp directory made once.
 *
 * Input layout: 2 bytes split position (big endian, mod body length + 1),
 * then the body, whose boundary is "XyZ" (multipart.c's own harness,
 * fuzz_multipart, covers boundaries and framing).  The body is fed whole and
 * in two pieces at the split position: the verdict (status and message) and
 * what an accepted body decoded to (the inputs, their modes, part flags and
 * spooled sizes) must be the same both times.  Whatever is accepted has a
 * request, inputs in the store's normal form, outside output/, none twice,
 * every "part": true entry with its spooled file within upload_limit_bytes.
 * Refusals are 400 or 413 (507 only if the disk fills).  Once the decoder
 * and the request are freed, the store's .tmp must be empty: no spooled
 * file outlives its request.  Small limits (a 4 KiB request part, 256-byte
 * files) so both sides of each are reachable. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "oci.h"
#include "run.h"
#include "run_multipart.h"
#include "store.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CT "multipart/form-data; boundary=XyZ"
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_runmp: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct config cfg;
static struct store *st;
static char tmpdir[128];
static char dir[64] = "/tmp/fuzz_runmp.XXXXXX";

static void cleanup(void)
{
    struct bx_err err;
    store_close(&st);
    bx_rm_rf_at(AT_FDCWD, dir, &err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char root[96];
    struct bx_err err;
    (void)argc, (void)argv;
    config_defaults(&cfg);
    cfg.total_memory_mb = 100000;
    cfg.total_pids = 1000000;
    cfg.upload_limit_bytes = 256;
    cfg.max_request_body_bytes = 4096;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(root, sizeof(root), "%s/files", dir);
    snprintf(tmpdir, sizeof(tmpdir), "%s/.tmp", root);
    bx_err_clear(&err);
    CHECK(store_open(&st, root, &err) == 0);
    atexit(cleanup);
    return 0;
}

static int tmp_empty(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;
    CHECK(d != NULL);
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n == 0;
}

static void decode(const char *body, size_t len, size_t cut, struct sbuf *out)
{
    struct runmp *m = NULL;
    struct run_request *r = NULL;
    struct bx_err err;
    int rc;
    char *a = malloc(cut ? cut : 1), *b = malloc(len - cut ? len - cut : 1);

    CHECK(a && b);
    memcpy(a, body, cut);
    memcpy(b, body + cut, len - cut);
    bx_err_clear(&err);
    CHECK(runmp_new(&m, &cfg, st, CT, strlen(CT), &err) == 0);
    rc = runmp_feed(m, a, cut, &err);
    if (rc == 0)
        rc = runmp_feed(m, b, len - cut, &err);
    if (rc == 0)
        rc = runmp_finish(m, &r, &err);
    free(a);
    free(b);
    if (rc < 0) {
        CHECK(r == NULL);
        CHECK(err.status == 400 || err.status == 413 || err.status == 507);
        CHECK(sbuf_appendf(out, "ERR %d %s", err.status, err.msg) == 0);
    } else {
        CHECK(r != NULL && r->image && r->cmd && r->cmd[0]);
        CHECK(sbuf_appendf(out, "OK") == 0);
        for (size_t i = 0; i < r->ninputs; i++) {
            const struct oci_input *in = &r->inputs[i];
            char norm[STORE_PATH_MAX + 1];
            struct bx_err e2;
            CHECK(in->path && store_normalize_path(in->path, strlen(in->path), 1, norm, &e2) == 0);
            CHECK(strcmp(norm, in->path) == 0);
            CHECK(in->mode <= 0777);
            CHECK(!in->part == !in->spool);
            CHECK(!in->spool || store_upload_size(in->spool) <= cfg.upload_limit_bytes);
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(r->inputs[j].path, in->path) != 0);
            CHECK(sbuf_appendf(out, " %s %o %d %llu", in->path, in->mode, in->part,
                               (unsigned long long)store_upload_size(in->spool)) == 0);
        }
    }
    run_request_free(&r);
    runmp_free(&m);
    CHECK(tmp_empty());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sbuf whole, split;
    size_t cut, len;
    const char *body;

    if (size < 2)
        return 0;
    body = (const char *)data + 2;
    len = size - 2;
    cut = ((size_t)data[0] << 8 | data[1]) % (len + 1);
    sbuf_init(&whole, 1 << 20);
    sbuf_init(&split, 1 << 20);
    decode(body, len, len, &whole);
    decode(body, len, cut, &split);
    CHECK(whole.len == split.len && (!whole.len || memcmp(whole.data, split.data, whole.len) == 0));
    sbuf_free(&whole);
    sbuf_free(&split);
    return 0;
}
