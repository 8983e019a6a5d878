/* err.c: the error contract's functions and the one error-to-HTTP mapping. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "err.h"

START_TEST(http_status_mapping)
{
    struct bx_err e;
    bx_err_clear(&e);
    ck_assert_int_eq(bx_err_http_status(&e), BX_E_INTERNAL);
    bx_err_set(&e, BX_E_BAD_REQUEST, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 400);
    bx_err_set(&e, BX_E_INSUFFICIENT_STORAGE, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 507);
    bx_err_set(&e, 599, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 599);
    /* anything that is not an HTTP error status is internal */
    bx_err_set(&e, 399, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 500);
    bx_err_set(&e, 200, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 500);
    bx_err_set(&e, 600, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 500);
    bx_err_set(&e, -1, 0, "x");
    ck_assert_int_eq(bx_err_http_status(&e), 500);
}
END_TEST

START_TEST(set_sys_wrap)
{
    struct bx_err e;
    ck_assert_int_eq(bx_err_set(&e, BX_E_NOT_FOUND, ENOENT, "no %s", "thing"), -1);
    ck_assert_int_eq(e.status, 404);
    ck_assert_int_eq(e.sys_errno, ENOENT);
    ck_assert_str_eq(e.msg, "no thing");
    ck_assert_int_eq(bx_err_wrap(&e, "ctx %d", 1), -1);
    ck_assert_str_eq(e.msg, "ctx 1: no thing");
    ck_assert_int_eq(e.status, 404);
    errno = EACCES;
    ck_assert_int_eq(bx_err_sys(&e, BX_E_INTERNAL, "open %s", "f"), -1);
    ck_assert_int_eq(e.sys_errno, EACCES);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_str_eq(e.msg, "open f: Permission denied");
    /* a NULL err is allowed everywhere */
    ck_assert_int_eq(bx_err_set(NULL, 400, 0, "x"), -1);
    ck_assert_int_eq(bx_err_wrap(NULL, "x"), -1);
    bx_err_clear(NULL);
}
END_TEST

static Suite *err_suite(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("err");
    tcase_add_test(tc, http_status_mapping);
    tcase_add_test(tc, set_sys_wrap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(err_suite);
}
