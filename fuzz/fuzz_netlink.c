/* libFuzzer harness for the rtnetlink answer parsers of net.c: the bytes
 * are a receive buffer (an exact-size heap copy, so ASan sees any read
 * past the end); every message the framing walker yields must lie inside
 * the buffer, and the link and error parsers must stay within it and
 * return NUL-terminated, printable strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_netlink: check failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_str(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK(s[i] >= 0x20 && s[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    const unsigned char *msg;
    size_t off = 0, mlen, prev = 0;
    int r, n = 0;
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    while ((r = net_nl_next(buf, size, &off, &msg, &mlen)) == 1) {
        struct net_link l;
        char text[64];
        int e;
        CHECK(msg >= buf && (size_t)(msg - buf) + mlen <= size);
        CHECK(off > prev && off <= size);
        prev = off;
        if (net_nl_parse_link(msg, mlen, &l) == 0) {
            CHECK(l.ifindex > 0);
            CHECK(l.name[0] != '\0');
            check_str(l.name, sizeof(l.name));
            check_str(l.kind, sizeof(l.kind));
            check_str(l.alias, sizeof(l.alias));
        }
        if (net_nl_parse_error(msg, mlen, &e, text, sizeof(text)) == 0) {
            CHECK(e <= 0 && e >= -4095);
            check_str(text, sizeof(text));
        }
        CHECK(++n <= (int)(size / 16) + 1);
    }
    CHECK(r == 0 || r == -1);
    free(buf);
    return 0;
}
