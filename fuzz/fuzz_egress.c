/* libFuzzer harness for net_parse_egress, the parser of one entry of a
 * run's "egress" list ("a.b.c.d[/len][:port]"): arbitrary bytes, not
 * NUL-terminated (an exact-size heap copy, so ASan flags any read past
 * the input).
 *
 * Whatever is accepted is at most NET_EGRESS_TEXT_MAX bytes, an aligned
 * network with a port of 0 (any) to 65535, and its canonical spelling
 * parses back to the same entry; a refusal leaves the output untouched. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_egress: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct net_egress e, again, untouched;
    char *text = malloc(size ? size : 1);
    char canon[64], a[16];

    CHECK(text != NULL);
    if (size)
        memcpy(text, data, size);
    memset(&e, 0x5a, sizeof(e));
    untouched = e;
    if (net_parse_egress(text, size, &e) == 0) {
        CHECK(size > 0 && size <= NET_EGRESS_TEXT_MAX);
        CHECK(memchr(text, '\0', size) == NULL);
        CHECK(e.prefix <= 32 && e.port <= 65535);
        CHECK(e.prefix == 32 || (e.addr & (0xffffffffu >> e.prefix)) == 0);
        net_format_ipv4(e.addr, a);
        if (e.port)
            snprintf(canon, sizeof(canon), "%s/%u:%u", a, e.prefix, e.port);
        else
            snprintf(canon, sizeof(canon), "%s/%u", a, e.prefix);
        CHECK(net_parse_egress(canon, strlen(canon), &again) == 0);
        CHECK(again.addr == e.addr && again.prefix == e.prefix && again.port == e.port);
    } else {
        CHECK(memcmp(&e, &untouched, sizeof(e)) == 0);
    }
    free(text);
    return 0;
}
