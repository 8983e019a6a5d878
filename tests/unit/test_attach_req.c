/* attach_req.c: the command parameters of GET /v1/boxes/{id}/attach, and
 * httpparse's http_query_next under them. */
#include <check.h>
#include <string.h>

#include "attach_req.h"
#include "httpparse.h"

static int parse(const char *q, struct attach_req *r, struct bx_err *err)
{
    bx_err_clear(err);
    return attach_req_parse(q, q ? strlen(q) : 0, r, err);
}

START_TEST(query_next)
{
    const char *q = "cmd=a&x=1&cmd=b+c&cmd&cmd=%2F&cm=no";
    char v[16];
    size_t pos = 0, len;
    struct bx_err err;
    const char *want[] = {"a", "b c", "", "/"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(http_query_next(q, strlen(q), &pos, "cmd", v, sizeof(v), &len, &err), 1);
        ck_assert_str_eq(v, want[i]);
        ck_assert_uint_eq(len, strlen(want[i]));
    }
    ck_assert_int_eq(http_query_next(q, strlen(q), &pos, "cmd", v, sizeof(v), &len, &err), 0);
    pos = 0;
    ck_assert_int_eq(http_query_next(NULL, 0, &pos, "cmd", v, sizeof(v), &len, &err), 0);
    pos = 0;
    ck_assert_int_eq(http_query_next("cmd=%zz", 7, &pos, "cmd", v, sizeof(v), &len, &err), -1);
    pos = 0;
    ck_assert_int_eq(
        http_query_next("cmd=0123456789abcdefg", 21, &pos, "cmd", v, sizeof(v), &len, &err), -1);
}
END_TEST

START_TEST(commands)
{
    struct attach_req r;
    struct bx_err err;
    ck_assert_int_eq(parse(NULL, &r, &err), 0);
    ck_assert_ptr_null(r.cmd);
    ck_assert_ptr_null(r.env);
    ck_assert_ptr_null(r.workdir);
    ck_assert_int_eq(r.set_user, 0);
    attach_req_free(&r);

    ck_assert_int_eq(parse("cols=80&cmd=sh&cmd=-c&cmd=echo%20%24HOME%3B%26&cmd=&env=A%3D1%3D2&"
                           "env=B%3D&workdir=%2Ftmp%2Fx&user=1000",
                           &r, &err),
                     0);
    ck_assert_str_eq(r.cmd[0], "sh");
    ck_assert_str_eq(r.cmd[1], "-c");
    ck_assert_str_eq(r.cmd[2], "echo $HOME;&");
    ck_assert_str_eq(r.cmd[3], ""); /* empty arguments are arguments */
    ck_assert_ptr_null(r.cmd[4]);
    ck_assert_str_eq(r.env[0], "A=1=2");
    ck_assert_str_eq(r.env[1], "B=");
    ck_assert_ptr_null(r.env[2]);
    ck_assert_str_eq(r.workdir, "/tmp/x");
    ck_assert_int_eq(r.set_user, 1);
    ck_assert_uint_eq(r.uid, 1000);
    ck_assert_uint_eq(r.gid, 1000);
    attach_req_free(&r);

    ck_assert_int_eq(parse("user=5%3A6", &r, &err), 0);
    ck_assert_uint_eq(r.uid, 5);
    ck_assert_uint_eq(r.gid, 6);
    attach_req_free(&r);
}
END_TEST

static void refused(const char *q, const char *why)
{
    struct attach_req r;
    struct bx_err err;
    ck_assert_int_eq(parse(q, &r, &err), -1);
    ck_assert_int_eq(err.status, BX_E_BAD_REQUEST);
    ck_assert_msg(strstr(err.msg, why), "%s: %s", q, err.msg);
    attach_req_free(&r);
}

START_TEST(refusals)
{
    static char big[20000];
    size_t n;
    refused("cmd=", "empty");
    refused("cmd=a%00", "NUL");
    refused("cmd=%4", "");
    refused("cmd=x&env=noeq", "K=V");
    refused("cmd=x&env=%3Dv", "K=V");
    refused("workdir=rel", "absolute");
    refused("workdir=%2Fa%0Ab", "absolute");
    refused("workdir=/a&workdir=/b", "repeated");
    refused("user=root", "numeric");
    refused("user=1%3A", "numeric");
    refused("user=4294967295", "numeric");
    refused("user=1&user=2", "repeated");

    /* 256 values pass, 257 do not */
    strcpy(big, "cmd=a");
    for (int i = 1; i < ATTACH_ARGS_MAX; i++)
        strcat(big, "&cmd=a");
    {
        struct attach_req r;
        struct bx_err err;
        ck_assert_int_eq(parse(big, &r, &err), 0);
        attach_req_free(&r);
    }
    strcat(big, "&cmd=a");
    refused(big, "more than 256 cmd");

    strcpy(big, "cmd=a");
    for (int i = 0; i <= ATTACH_ENV_MAX; i++)
        strcat(big, "&env=K%3Dv");
    refused(big, "more than 64 env");

    /* one value over 4096 bytes */
    strcpy(big, "cmd=");
    n = strlen(big);
    memset(big + n, 'x', ATTACH_VALUE_MAX + 1);
    big[n + ATTACH_VALUE_MAX + 1] = 0;
    refused(big, "over 4096 bytes");
    big[n + ATTACH_VALUE_MAX] = 0; /* exactly 4096: fine */
    {
        struct attach_req r;
        struct bx_err err;
        ck_assert_int_eq(parse(big, &r, &err), 0);
        attach_req_free(&r);
    }

    /* the total: three values of 3000 bytes */
    strcpy(big, "cmd=");
    for (int k = 0; k < 3; k++) {
        n = strlen(big);
        memset(big + n, 'y', 3000);
        strcpy(big + n + 3000, k < 2 ? "&cmd=" : "");
    }
    refused(big, "over 8192 bytes");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attach_req");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, query_next);
    tcase_add_test(tc, commands);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
