/* libFuzzer harness for cli_hosts.c: a hosts file the client reads for
 * --url host names.  Byte 0 (mod 4) picks the name looked up ("boxer",
 * "Boxer.Example", "v6", "x"); the rest is the file's text.  Checks: a
 * found address is numeric (inet_pton takes it) and NUL-terminated within
 * the cap; the lookup never reads past the text (ASan). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_clihosts: check failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"boxer", "Boxer.Example", "v6", "x"};
    char addr[48];
    const char *name;
    char *text;
    struct in_addr a4;
    struct in6_addr a6;

    if (size < 1)
        return 0;
    name = names[data[0] % 4];
    /* an exact-size copy: ASan sees any read past the end */
    text = malloc(size - 1 ? size - 1 : 1);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    memset(addr, 'Z', sizeof(addr));
    if (cli_hosts_lookup(text, size - 1, name, addr, sizeof(addr)) == 1) {
        CHECK(memchr(addr, 0, sizeof(addr)) != NULL);
        CHECK(inet_pton(AF_INET, addr, &a4) == 1 || inet_pton(AF_INET6, addr, &a6) == 1);
    }
    free(text);
    return 0;
}
