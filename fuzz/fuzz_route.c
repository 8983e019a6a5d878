/* libFuzzer harness for route.c.  The input is "pattern\0path" (no NUL:
 * the whole input is a path matched against a fixed table shaped like the
 * server's and the Boxes API's).  Each string is an exact-size heap copy,
 * so ASan sees any read past its NUL.
 *
 * A match must be exact: every capture lies inside the path, is non-empty,
 * holds no '/' or ':', and putting the captures back into the pattern gives
 * the path again.  route_find, route_allow and route_label must agree with
 * route_match, and route_allow's answer stays within its buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_route: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void h(void *app, struct http_conn *c, const struct http_request *req,
              const struct route_params *p)
{
    (void)app, (void)c, (void)req, (void)p;
}

static const struct route table[] = {
    {HTTP_GET, "/healthz", h, "/healthz", 1},
    {HTTP_GET, "/files", h, "/files", 0},
    {HTTP_POST, "/files", h, "/files", 0},
    {HTTP_POST, "/run", h, "/run", 0},
    {HTTP_GET, "/swagger/", h, "/swagger", 0},
    {HTTP_GET, "/v1/boxes", h, "/v1/boxes", 0},
    {HTTP_GET, "/v1/boxes/{id}", h, "/v1/boxes/{id}", 0},
    {HTTP_DELETE, "/v1/boxes/{id}", h, "/v1/boxes/{id}", 0},
    {HTTP_POST, "/v1/boxes/{id}:stop", h, "/v1/boxes/{id}:stop", 0},
    {HTTP_GET, "/v1/boxes/{id}/exec/{eid}", h, "/v1/boxes/{id}/exec/{eid}", 0},
    {HTTP_POST, "/v1/boxes/{id}/exec/{eid}:cancel", h, "/v1/boxes/{id}/exec/{eid}:cancel", 0},
};
#define N (sizeof(table) / sizeof(table[0]))

/* The pattern with each {name} replaced by its capture must be the path. */
static void check_match(const char *pattern, const char *path, const struct route_params *p)
{
    size_t plen = strlen(path), k = 0, pos = 0;
    CHECK(p->n <= ROUTE_MAX_PARAMS);
    for (size_t i = 0; i < p->n; i++) {
        CHECK(p->p[i].len > 0);
        CHECK(p->p[i].s >= path && p->p[i].s + p->p[i].len <= path + plen);
        CHECK(memchr(p->p[i].s, '/', p->p[i].len) == NULL);
        CHECK(memchr(p->p[i].s, ':', p->p[i].len) == NULL);
    }
    for (const char *q = pattern; *q;) {
        if (*q == '{') {
            const char *close = strchr(q, '}');
            CHECK(close && k < p->n);
            CHECK(p->p[k].s == path + pos);
            pos += p->p[k].len;
            k++;
            q = close + 1;
        } else {
            CHECK(pos < plen && path[pos] == *q);
            pos++;
            q++;
        }
    }
    CHECK(k == p->n && pos == plen);
}

static void check_table(const char *path)
{
    static const enum http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_DELETE,
                                               HTTP_PUT};
    struct route_params p;
    const struct route *same, *r;
    int any = 0;
    char allow[96];

    for (size_t i = 0; i < N; i++) {
        if (route_match(table[i].pattern, path, &p)) {
            check_match(table[i].pattern, path, &p);
            any = 1;
        }
    }
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        r = route_find(table, N, methods[m], path, &p, &same);
        CHECK(!r || same);
        CHECK(!!same == any);
        if (r)
            check_match(r->pattern, path, &p);
    }
    memset(allow, 'x', sizeof(allow));
    route_allow(table, N, path, allow, sizeof(allow));
    CHECK(memchr(allow, '\0', sizeof(allow)) != NULL);
    CHECK((allow[0] != '\0') == any);
    CHECK(strcmp(route_label(table, N, path), "other") != 0 || !any);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    struct route_params p;

    if (!nul) {
        char *path = malloc(size + 1);
        if (!path)
            return 0;
        memcpy(path, data, size);
        path[size] = '\0';
        check_table(path);
        free(path);
        return 0;
    }
    {
        size_t plen = (size_t)(nul - data), rlen = size - plen - 1;
        char *pattern = malloc(plen + 1), *path = malloc(rlen + 1);
        if (pattern && path) {
            memcpy(pattern, data, plen);
            pattern[plen] = '\0';
            memcpy(path, nul + 1, rlen);
            path[rlen] = '\0';
            if (route_match(pattern, path, &p))
                check_match(pattern, path, &p);
        }
        free(pattern);
        free(path);
    }
    return 0;
}
