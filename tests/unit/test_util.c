/* util.c: bx_str_eq, the one comparison for enum-like values (run request
 * "network", ...): counted strings that may hold NULs must match a literal
 * whole, never as a prefix. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "util.h"

/* Compares through a guard-page copy: reading past len crashes. */
static int eq(const char *s, size_t len, const char *lit)
{
    struct guard_buf g;
    int r = bx_str_eq(guard_copy(&g, s, len), len, lit);
    guard_free(&g);
    return r;
}

START_TEST(str_eq_whole_strings_only)
{
    ck_assert_int_eq(eq("none", 4, "none"), 1);
    ck_assert_int_eq(eq("sandbox", 7, "sandbox"), 1);
    ck_assert_int_eq(eq("", 0, ""), 1);
    /* The literal followed by more: a NUL inside, or any byte. */
    ck_assert_int_eq(eq("none\0junk", 9, "none"), 0);
    ck_assert_int_eq(eq("none\0", 5, "none"), 0);
    ck_assert_int_eq(eq("sandboxx", 8, "sandbox"), 0);
    /* A prefix of the literal, or nothing. */
    ck_assert_int_eq(eq("non", 3, "none"), 0);
    ck_assert_int_eq(eq("", 0, "none"), 0);
    ck_assert_int_eq(eq("none", 4, ""), 0);
    /* Same length, different bytes; case matters. */
    ck_assert_int_eq(eq("nonE", 4, "none"), 0);
    ck_assert_int_eq(eq("NONE", 4, "none"), 0);
    ck_assert_int_eq(eq("host", 4, "none"), 0);
    /* A zero length never reads s. */
    ck_assert_int_eq(bx_str_eq(NULL, 0, ""), 1);
    ck_assert_int_eq(bx_str_eq(NULL, 0, "none"), 0);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, str_eq_whole_strings_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
