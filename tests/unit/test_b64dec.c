#include <check.h>
#include <string.h>

#include "b64dec.h"

static long dec(const char *s, unsigned char *out)
{
    return b64_decode(s, strlen(s), out);
}

START_TEST(valid)
{
    unsigned char out[64];
    ck_assert_int_eq(dec("", out), 0);
    ck_assert_int_eq(dec("aGVsbG8=", out), 5);
    ck_assert(memcmp(out, "hello", 5) == 0);
    ck_assert_int_eq(dec("aGVsbG8", out), 5);
    ck_assert_int_eq(dec("AAEC/w==", out), 4);
    ck_assert(memcmp(out, "\0\1\2\377", 4) == 0);
    ck_assert_int_eq(dec("+/+/", out), 3);
}
END_TEST

START_TEST(invalid)
{
    unsigned char out[64];
    ck_assert_int_eq(dec("a", out), -1);        /* one symbol is no byte */
    ck_assert_int_eq(dec("a===", out), -1);     /* three pads */
    ck_assert_int_eq(dec("aGVsbG9=", out), -1); /* non-zero unused bits */
    ck_assert_int_eq(dec("aGV sbG8=", out), -1);
    ck_assert_int_eq(dec("aG=sbG8=", out), -1); /* pad in the middle */
    ck_assert_int_eq(dec("aGVsbG8==", out), -1);
    ck_assert_int_eq(dec("aGVs-G8=", out), -1); /* url alphabet */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("b64dec");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, valid);
    tcase_add_test(tc, invalid);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
