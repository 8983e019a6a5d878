/* libFuzzer harness for wsauth.c: the input is a Sec-WebSocket-Protocol
 * value.  The parser never reads past it, and a token it accepts is the
 * hex of its bytes as found in the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wsauth: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy, so ASan sees any read past the value */
    char *in = malloc(size ? size : 1);
    struct wsauth w;
    if (!in)
        return 0;
    memcpy(in, data, size);
    wsauth_parse(in, size, &w);
    CHECK(w.token_len <= WSAUTH_TOKEN_MAX);
    CHECK(w.has_token || w.token_len == 0);
    if (w.has_token) {
        char hex[2 * WSAUTH_TOKEN_MAX + 1];
        char *z = malloc(size + 1);
        CHECK(z != NULL);
        memcpy(z, in, size);
        z[size] = 0;
        for (size_t i = 0; i < w.token_len; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)w.token[i]);
        /* case-insensitively present after a "boxer.bearer." */
        for (size_t i = 0; i < size; i++)
            if (z[i] >= 'A' && z[i] <= 'F')
                z[i] = (char)(z[i] - 'A' + 'a');
        /* memmem: the value may hold NUL bytes */
        CHECK(memmem(z, size, "boxer.bearer.", 13) != NULL);
        CHECK(memmem(z, size, hex, 2 * w.token_len) != NULL);
        free(z);
    }
    free(in);
    return 0;
}
