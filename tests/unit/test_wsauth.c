#include <check.h>
#include <string.h>

#include "wsauth.h"

static void parse(const char *s, struct wsauth *w)
{
    wsauth_parse(s, strlen(s), w);
}

START_TEST(offers)
{
    struct wsauth w;
    parse("boxer, boxer.bearer.746f6b", &w);
    ck_assert(w.offers_boxer && w.has_token);
    ck_assert_uint_eq(w.token_len, 3);
    ck_assert(memcmp(w.token, "tok", 3) == 0);
    parse(" boxer.bearer.4142 ,\tboxer\t", &w);
    ck_assert(w.offers_boxer && w.has_token && w.token_len == 2 && memcmp(w.token, "AB", 2) == 0);
    parse("boxer", &w);
    ck_assert(w.offers_boxer && !w.has_token && w.token_len == 0);
    parse("", &w);
    ck_assert(!w.offers_boxer && !w.has_token);
    parse("boxers,xboxer,chat", &w);
    ck_assert(!w.offers_boxer && !w.has_token);
    /* the first well-formed bearer counts */
    parse("boxer.bearer.zz,boxer.bearer.41,boxer.bearer.42", &w);
    ck_assert(w.has_token && w.token_len == 1 && w.token[0] == 'A');
}
END_TEST

START_TEST(malformed)
{
    struct wsauth w;
    char big[13 + 2 * WSAUTH_TOKEN_MAX + 3];
    parse("boxer.bearer.", &w);
    ck_assert(!w.has_token);
    parse("boxer.bearer.414", &w); /* odd */
    ck_assert(!w.has_token && w.token_len == 0);
    parse("boxer.bearer.4g", &w);
    ck_assert(!w.has_token);
    parse("boxer.bearer.41 42", &w);
    ck_assert(!w.has_token);
    memcpy(big, "boxer.bearer.", 13);
    memset(big + 13, 'a', 2 * WSAUTH_TOKEN_MAX);
    big[13 + 2 * WSAUTH_TOKEN_MAX] = 0;
    parse(big, &w);
    ck_assert(w.has_token && w.token_len == WSAUTH_TOKEN_MAX);
    strcpy(big + 13 + 2 * WSAUTH_TOKEN_MAX, "aa");
    parse(big, &w);
    ck_assert(!w.has_token);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wsauth");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, offers);
    tcase_add_test(tc, malformed);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
