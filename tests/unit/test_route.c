/* route.c: the route matcher ({param} captures, ":verb" suffixes), the
 * table lookup behind 404/405, the Allow list and the metrics labels. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "guard.h"
#include "route.h"

/* Matches through a guard-page copy of the path: reading past its NUL
 * crashes.  The captures point into the copy: they are checked to lie
 * inside it, then moved to cap[] before the copy goes. */
static char cap[ROUTE_MAX_PARAMS][256];

static int match(const char *pattern, const char *path, struct route_params *p)
{
    struct guard_buf g;
    int r = route_match(pattern, guard_copy(&g, path, strlen(path) + 1), p);
    if (r && p)
        for (size_t i = 0; i < p->n; i++) {
            ck_assert(p->p[i].s >= g.data && p->p[i].s + p->p[i].len <= g.data + strlen(path));
            ck_assert_uint_lt(p->p[i].len, sizeof(cap[i]));
            memcpy(cap[i], p->p[i].s, p->p[i].len);
            p->p[i].s = cap[i];
        }
    guard_free(&g);
    return r;
}

static int param_is(const struct route_params *p, size_t i, const char *want)
{
    return i < p->n && p->p[i].len == strlen(want) && memcmp(p->p[i].s, want, p->p[i].len) == 0;
}

START_TEST(literal_paths_match_whole)
{
    struct route_params p;
    ck_assert_int_eq(match("/run", "/run", &p), 1);
    ck_assert_uint_eq(p.n, 0);
    ck_assert_int_eq(match("/run", "/runx", &p), 0);
    ck_assert_int_eq(match("/run", "/ru", &p), 0);
    ck_assert_int_eq(match("/run", "/run/", &p), 0);
    ck_assert_int_eq(match("/run", "", &p), 0);
    ck_assert_int_eq(match("/swagger/", "/swagger/", NULL), 1);
    ck_assert_int_eq(match("/swagger/", "/swagger", NULL), 0);
    ck_assert_int_eq(match("/swagger", "/swaggerX", NULL), 0);
    ck_assert_int_eq(match("/healthz", "/HEALTHZ", NULL), 0);
}
END_TEST

START_TEST(params_are_captured)
{
    struct route_params p;
    ck_assert_int_eq(match("/v1/boxes/{id}", "/v1/boxes/abc123", &p), 1);
    ck_assert_uint_eq(p.n, 1);
    ck_assert(param_is(&p, 0, "abc123"));
    ck_assert_int_eq(match("/v1/boxes/{id}/exec/{eid}", "/v1/boxes/b1/exec/e-2", &p), 1);
    ck_assert_uint_eq(p.n, 2);
    ck_assert(param_is(&p, 0, "b1"));
    ck_assert(param_is(&p, 1, "e-2"));
    ck_assert_int_eq(match("/v1/boxes/{id}/exec/{eid}/events", "/v1/boxes/b1/exec/e2/events", &p),
                     1);
    ck_assert(param_is(&p, 1, "e2"));
    /* an empty parameter, or one with a '/', never matches */
    ck_assert_int_eq(match("/v1/boxes/{id}", "/v1/boxes/", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}", "/v1/boxes/a/b", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}/exec/{eid}", "/v1/boxes//exec/e", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}/exec/{eid}", "/v1/boxes/b/exec/", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}/execs", "/v1/boxes/b/exec", &p), 0);
}
END_TEST

START_TEST(verb_suffixes)
{
    struct route_params p;
    ck_assert_int_eq(match("/v1/boxes/{id}:stop", "/v1/boxes/b7:stop", &p), 1);
    ck_assert(param_is(&p, 0, "b7"));
    ck_assert_int_eq(match("/v1/boxes/{id}/exec/{eid}:cancel", "/v1/boxes/b/exec/e9:cancel", &p),
                     1);
    ck_assert(param_is(&p, 0, "b"));
    ck_assert(param_is(&p, 1, "e9"));
    /* ':' ends a parameter: the plain route does not swallow the verb */
    ck_assert_int_eq(match("/v1/boxes/{id}", "/v1/boxes/b7:stop", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}:stop", "/v1/boxes/b7:start", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}:stop", "/v1/boxes/b7:stopx", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}:stop", "/v1/boxes/:stop", &p), 0);
    ck_assert_int_eq(match("/v1/boxes/{id}:stop", "/v1/boxes/b7", &p), 0);
}
END_TEST

START_TEST(bad_patterns_never_match)
{
    struct route_params p;
    ck_assert_int_eq(match("/a/{id", "/a/x", &p), 0);
    ck_assert_int_eq(match("/{a}/{b}/{c}/{d}/{e}", "/1/2/3/4/5", &p), 0);
    ck_assert_int_eq(match("/{a}/{b}/{c}/{d}", "/1/2/3/4", &p), 1);
    ck_assert_uint_eq(p.n, 4);
}
END_TEST

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
    {HTTP_GET, "/images", h, "/images", 0},
    {HTTP_DELETE, "/images", h, "/images", 0},
    {HTTP_GET, "/swagger", h, "/swagger", 0},
    {HTTP_GET, "/swagger/", h, "/swagger", 0},
    {HTTP_GET, "/v1/boxes/{id}", h, "/v1/boxes/{id}", 0},
    {HTTP_DELETE, "/v1/boxes/{id}", h, "/v1/boxes/{id}", 0},
    {HTTP_POST, "/v1/boxes/{id}:stop", h, "/v1/boxes/{id}:stop", 0},
};
#define N (sizeof(table) / sizeof(table[0]))

START_TEST(find_405_404)
{
    struct route_params p;
    const struct route *same, *r;

    r = route_find(table, N, HTTP_POST, "/files", &p, &same);
    ck_assert_ptr_eq(r, &table[2]);
    ck_assert_ptr_eq(same, &table[1]);
    /* HEAD is answered by the GET entry */
    ck_assert_ptr_eq(route_find(table, N, HTTP_HEAD, "/images", &p, &same), &table[4]);
    /* known path, other method: 405 */
    ck_assert_ptr_null(route_find(table, N, HTTP_PUT, "/images", &p, &same));
    ck_assert_ptr_eq(same, &table[4]);
    ck_assert_ptr_null(route_find(table, N, HTTP_GET, "/run", &p, &same));
    ck_assert_ptr_eq(same, &table[3]);
    /* unknown path: 404 */
    ck_assert_ptr_null(route_find(table, N, HTTP_GET, "/nope", &p, &same));
    ck_assert_ptr_null(same);
    r = route_find(table, N, HTTP_DELETE, "/v1/boxes/x1", &p, &same);
    ck_assert_ptr_eq(r, &table[9]);
    ck_assert(param_is(&p, 0, "x1"));
    r = route_find(table, N, HTTP_POST, "/v1/boxes/x1:stop", &p, &same);
    ck_assert_ptr_eq(r, &table[10]);
    ck_assert(param_is(&p, 0, "x1"));
}
END_TEST

START_TEST(allow_lists)
{
    char b[96];
    route_allow(table, N, "/healthz", b, sizeof(b));
    ck_assert_str_eq(b, "GET, HEAD");
    route_allow(table, N, "/files", b, sizeof(b));
    ck_assert_str_eq(b, "GET, HEAD, POST");
    route_allow(table, N, "/run", b, sizeof(b));
    ck_assert_str_eq(b, "POST");
    route_allow(table, N, "/images", b, sizeof(b));
    ck_assert_str_eq(b, "GET, HEAD, DELETE");
    route_allow(table, N, "/v1/boxes/q", b, sizeof(b));
    ck_assert_str_eq(b, "GET, HEAD, DELETE");
    route_allow(table, N, "/nope", b, sizeof(b));
    ck_assert_str_eq(b, "");
    /* too small: whole names only */
    route_allow(table, N, "/files", b, 12);
    ck_assert_str_eq(b, "GET, HEAD");
}
END_TEST

START_TEST(labels)
{
    const char *l[8];
    size_t n = route_labels(table, N, l, 8);
    ck_assert_uint_eq(n, 7);
    ck_assert_str_eq(l[0], "/healthz");
    ck_assert_str_eq(l[1], "/files");
    ck_assert_str_eq(l[2], "/run");
    ck_assert_str_eq(l[3], "/images");
    ck_assert_str_eq(l[4], "/swagger");
    ck_assert_str_eq(l[5], "/v1/boxes/{id}");
    ck_assert_str_eq(l[6], "/v1/boxes/{id}:stop");
    ck_assert_uint_eq(route_labels(table, N, l, 2), 2);
    ck_assert_str_eq(route_label(table, N, "/swagger/"), "/swagger");
    ck_assert_str_eq(route_label(table, N, "/swaggerX"), "other");
    ck_assert_str_eq(route_label(table, N, "/v1/boxes/abc"), "/v1/boxes/{id}");
    ck_assert_str_eq(route_label(table, N, "/v1/boxes/abc:stop"), "/v1/boxes/{id}:stop");
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("route");
    tcase_add_test(tc, literal_paths_match_whole);
    tcase_add_test(tc, params_are_captured);
    tcase_add_test(tc, verb_suffixes);
    tcase_add_test(tc, bad_patterns_never_match);
    tcase_add_test(tc, find_405_404);
    tcase_add_test(tc, allow_lists);
    tcase_add_test(tc, labels);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(route_suite);
}
