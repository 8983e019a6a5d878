/* libFuzzer harness for b64dec.c: the input is a candidate base64 text.
 * The decoder never writes past b64_decoded_max, and whatever it accepts
 * re-encodes (standard alphabet) to the same text, padding aside: one
 * meaning per text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64dec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_b64dec: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    unsigned char *out = malloc(b64_decoded_max(size));
    char *enc;
    size_t k = 0, plain;
    long n;
    CHECK(in && out);
    memcpy(in, data, size);
    n = b64_decode(in, size, out);
    if (n >= 0) {
        CHECK((size_t)n <= b64_decoded_max(size));
        enc = malloc((size_t)n / 3 * 4 + 5);
        CHECK(enc);
        for (long i = 0; i < n; i += 3) {
            unsigned v = (unsigned)out[i] << 16;
            long left = n - i;
            if (left > 1)
                v |= (unsigned)out[i + 1] << 8;
            if (left > 2)
                v |= out[i + 2];
            enc[k++] = alpha[v >> 18];
            enc[k++] = alpha[(v >> 12) & 63];
            if (left > 1)
                enc[k++] = alpha[(v >> 6) & 63];
            if (left > 2)
                enc[k++] = alpha[v & 63];
        }
        plain = size;
        while (plain > 0 && in[plain - 1] == '=')
            plain--;
        CHECK(k == plain && memcmp(enc, in, k) == 0);
        free(enc);
    }
    free(in);
    free(out);
    return 0;
}
