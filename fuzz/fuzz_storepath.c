/* libFuzzer harness for store_normalize_path: arbitrary bytes (NUL, control
 * bytes, long runs of '/', '.', "..") for both for_upload values.  Whatever
 * is accepted must satisfy the invariants the rest of the store relies on
 * when it walks the result one component at a time. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static void check_output(const char *out, size_t in_len, int for_upload)
{
    size_t len = strlen(out);
    const char *p = out;
    char again[STORE_PATH_MAX + 1];
    struct bx_err err;
    size_t ncomp = 0;

    if (len == 0 || len > STORE_PATH_MAX || len > in_len)
        abort();
    if (out[0] == '/' || out[len - 1] == '/' || strstr(out, "//"))
        abort();
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f)
            abort();
    }
    /* Every component: 1..255 bytes, not "." nor "..". */
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n > STORE_COMPONENT_MAX)
            abort();
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            abort();
        if (ncomp == 0) {
            if (n == 4 && memcmp(p, ".tmp", 4) == 0)
                abort();
            if (for_upload && n == 6 && memcmp(p, "output", 6) == 0)
                abort();
        }
        ncomp++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (strstr(out, "./") == out || strstr(out, "/./") || strstr(out, "/../") ||
        strncmp(out, "../", 3) == 0)
        abort();
    /* Idempotent: the output is already in normal form. */
    memset(again, 'Z', sizeof(again));
    if (store_normalize_path(out, len, for_upload, again, &err) != 0)
        abort();
    if (strcmp(again, out) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[STORE_PATH_MAX + 1];
    struct bx_err err;
    /* An exact-size heap copy: ASan flags any read past the input. */
    char *in = malloc(size ? size : 1);

    if (!in)
        return 0;
    if (size)
        memcpy(in, data, size);
    for (int for_upload = 0; for_upload <= 1; for_upload++) {
        memset(out, 'Z', sizeof(out));
        bx_err_clear(&err);
        if (store_normalize_path(in, size, for_upload, out, &err) == 0) {
            check_output(out, size, for_upload);
        } else {
            if (err.status != 400 || err.msg[0] == '\0' || out[0] != '\0')
                abort();
        }
    }
    /* Accepted for upload implies accepted for download, with the same result. */
    {
        char up[STORE_PATH_MAX + 1], down[STORE_PATH_MAX + 1];
        if (store_normalize_path(in, size, 1, up, NULL) == 0 &&
            (store_normalize_path(in, size, 0, down, NULL) != 0 || strcmp(up, down) != 0))
            abort();
    }
    free(in);
    return 0;
}
