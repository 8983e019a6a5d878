/* util.c: bx_str_eq, the one comparison for enum-like values (run request
 * "network", ...): counted strings that may hold NULs must match a literal
 * whole, never as a prefix. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
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

/* str_list: copies, NULL-terminated after every push and after a reserve,
 * freed whole (run under valgrind/ASan for the leaks). */
START_TEST(str_list_push_reserve_free)
{
    struct str_list l = {0};
    char buf[16];
    char **v;
    ck_assert_int_eq(str_list_reserve(&l, 0), 0);
    ck_assert_ptr_nonnull(l.items);
    ck_assert_ptr_null(l.items[0]);
    ck_assert_uint_eq(l.n, 0);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof(buf), "s%d", i);
        ck_assert_int_eq(str_list_push(&l, buf), 0);
        ck_assert_uint_eq(l.n, (size_t)i + 1);
        ck_assert_ptr_null(l.items[l.n]);
        ck_assert_uint_lt(l.n, l.cap);
    }
    ck_assert_str_eq(l.items[0], "s0");
    ck_assert_str_eq(l.items[99], "s99");
    ck_assert_ptr_ne(l.items[5], buf); /* a copy */
    ck_assert_int_eq(str_list_reserve(&l, 1000), 0);
    ck_assert_uint_ge(l.cap, 1101);
    ck_assert_uint_eq(l.n, 100);
    ck_assert_ptr_null(l.items[100]);
    ck_assert_int_eq(str_list_reserve(&l, SIZE_MAX / 2), -1);
    ck_assert_uint_eq(l.n, 100);
    str_list_free(&l);
    ck_assert_ptr_null(l.items);
    ck_assert_uint_eq(l.n + l.cap, 0);
    str_list_free(&l); /* twice is fine */
    /* A first push on an empty list; the array taken out is freed as argv. */
    ck_assert_int_eq(str_list_push(&l, "PATH=" BX_DEFAULT_PATH), 0);
    ck_assert_int_eq(str_list_push(&l, ""), 0);
    ck_assert_str_eq(l.items[0],
                     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    ck_assert_str_eq(l.items[1], "");
    ck_assert_ptr_null(l.items[2]);
    v = bx_steal_ptr(&l.items);
    l.n = l.cap = 0;
    bx_strv_free(&v);
    ck_assert_ptr_null(v);
    bx_strv_free(&v);
}
END_TEST

/* The ASCII classes httpparse and multipart share: every byte, checked
 * against the RFC 9110 tchar list and plain ASCII case folding. */
START_TEST(ascii_tchar_and_lower)
{
    const char *tchars = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int want = alnum || (c != 0 && strchr(tchars, c) != NULL);
        ck_assert_int_eq(bx_is_tchar((unsigned char)c), want);
        ck_assert_uint_eq(bx_ascii_lower((unsigned char)c),
                          c >= 'A' && c <= 'Z' ? (unsigned)(c + 32) : (unsigned)c);
    }
}
END_TEST

/* "uid" or "uid:gid", numeric, each below UINT32_MAX (a box's user) */
START_TEST(parse_user)
{
    static const char *const bad[] = {"", ":", "1:", ":1", "-1", "+1", " 1", "1 ", "a",
                                      "1:2:3", "4294967295", "1:4294967295",
                                      "99999999999999999999", "1:x"};
    uint32_t u = 5, g = 5;
    ck_assert_int_eq(bx_parse_user("1000", 4, &u, &g), 0);
    ck_assert_uint_eq(u, 1000);
    ck_assert_uint_eq(g, 1000);
    ck_assert_int_eq(bx_parse_user("0:4294967294", 12, &u, &g), 0);
    ck_assert_uint_eq(u, 0);
    ck_assert_uint_eq(g, 4294967294u);
    /* counted: what follows len is not read */
    ck_assert_int_eq(bx_parse_user("7:8:9", 3, &u, &g), 0);
    ck_assert_uint_eq(u, 7);
    ck_assert_uint_eq(g, 8);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u = g = 5;
        ck_assert_msg(bx_parse_user(bad[i], strlen(bad[i]), &u, &g) == -1, "%s", bad[i]);
        ck_assert_uint_eq(u, 5);
        ck_assert_uint_eq(g, 5);
    }
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, str_eq_whole_strings_only);
    tcase_add_test(tc, str_list_push_reserve_free);
    tcase_add_test(tc, ascii_tchar_and_lower);
    tcase_add_test(tc, parse_user);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(util_suite);
}
