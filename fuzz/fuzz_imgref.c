/* libFuzzer harness for imgref.c: parse arbitrary bytes (from an exact-size
 * heap copy, so ASan sees any read past the end); when accepted, the
 * canonical form must be safe to hand to skopeo/umoci as an argument,
 * parse back to the same fields, and format identically. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_imgref: check failed: %s (line %d)\n", #cond, __LINE__);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_terminated(const char *f, size_t size)
{
    CHECK(memchr(f, '\0', size) != NULL);
}

/* No component of a repository path may be empty, "." or "..", nor start
 * with '-' or '.'. */
static void check_repository(const char *repo)
{
    const char *p = repo;
    CHECK(*p != '\0');
    for (;;) {
        size_t n = strcspn(p, "/");
        CHECK(n > 0);
        CHECK(p[0] != '-' && p[0] != '.');
        CHECK(!(n == 2 && p[0] == '.' && p[1] == '.'));
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imgref r, back;
    struct bx_err err;
    char out[IMGREF_MAX + 1], again[IMGREF_MAX + 1];
    char *copy = malloc(size ? size : 1);
    int n;

    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    bx_err_clear(&err);
    if (imgref_parse(copy, size, &r, &err) < 0) {
        CHECK(err.status == 400);
        CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        free(copy);
        return 0;
    }
    free(copy);

    check_terminated(r.registry, sizeof(r.registry));
    check_terminated(r.repository, sizeof(r.repository));
    check_terminated(r.tag, sizeof(r.tag));
    check_terminated(r.digest, sizeof(r.digest));
    CHECK(r.registry[0] != '\0');
    CHECK(r.tag[0] != '\0' || r.digest[0] != '\0');
    CHECK(r.tag[0] != '-' && r.tag[0] != '.');
    CHECK(r.digest[0] == '\0' || strncmp(r.digest, "sha256:", 7) == 0);
    check_repository(r.repository);

    /* Every accepted reference formats into IMGREF_MAX + 1 bytes. */
    n = imgref_format(&r, out, sizeof(out));
    CHECK(n > 0);
    CHECK((size_t)n == strlen(out));
    CHECK(out[0] != '-');
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c > 0x20 && c < 0x7f);
    }
    /* Exactly n + 1 bytes are needed: one less must fail and leave "". */
    if (n > 0) {
        char small[IMGREF_MAX + 1];
        CHECK(imgref_format(&r, small, (size_t)n) < 0);
        CHECK(small[0] == '\0');
    }

    CHECK(imgref_parse(out, (size_t)n, &back, &err) == 0);
    CHECK(strcmp(back.registry, r.registry) == 0);
    CHECK(strcmp(back.repository, r.repository) == 0);
    CHECK(strcmp(back.tag, r.tag) == 0);
    CHECK(strcmp(back.digest, r.digest) == 0);
    CHECK(imgref_format(&back, again, sizeof(again)) == n);
    CHECK(strcmp(again, out) == 0);
    return 0;
}
