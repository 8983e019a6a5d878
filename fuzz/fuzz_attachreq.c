/* libFuzzer harness for attach_req.c: the query of GET
 * /v1/boxes/{id}/attach (cmd, env, workdir, user).  The whole input is the
 * raw query (no request-line cap here, so the 8192-byte total is reached).
 * Checks: on success the lists are NULL-terminated and within their counts,
 * the program is non-empty, every env entry is K=V with a non-empty K, the
 * workdir is absolute and the kept bytes stay within ATTACH_BYTES_MAX; on
 * failure the status is 400 (or 500 for memory); nothing leaks (ASan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_attachreq: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct attach_req r;
    struct bx_err err;
    size_t bytes = 0, n;

    bx_err_clear(&err);
    if (attach_req_parse(size ? (const char *)data : NULL, size, &r, &err) < 0) {
        CHECK(err.status == BX_E_BAD_REQUEST || err.status == BX_E_INTERNAL);
        CHECK(err.msg[0]);
        attach_req_free(&r);
        return 0;
    }
    n = 0;
    for (char **p = r.cmd; p && *p; p++, n++)
        bytes += strlen(*p) + 1;
    CHECK(n <= ATTACH_ARGS_MAX);
    CHECK(!r.cmd || (n > 0 && r.cmd[0][0]));
    n = 0;
    for (char **p = r.env; p && *p; p++, n++) {
        const char *eq = strchr(*p, '=');
        CHECK(eq && eq != *p);
        bytes += strlen(*p) + 1;
    }
    CHECK(n <= ATTACH_ENV_MAX);
    if (r.workdir) {
        CHECK(r.workdir[0] == '/');
        bytes += strlen(r.workdir) + 1;
    }
    CHECK(bytes <= ATTACH_BYTES_MAX);
    attach_req_free(&r);
    return 0;
}
