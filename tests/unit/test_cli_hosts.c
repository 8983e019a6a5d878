/* cli_hosts.c: host names from a hosts file for the client's --url, and
 * cli_target_parse_hosts using it. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_hosts.h"
#include "cli_http.h"

static const char HOSTS[] =
    "# comment line boxer.example\n"
    "127.0.0.1\tlocalhost\n"
    "\n"
    "   10.1.2.3   Boxer.Example  boxer   # trailing comment other.example\n"
    "10.9.9.9 boxer.example\n" /* later line: the first wins */
    "fe80::1%eth0 zoned.example\n"
    "not-an-address named.example\n"
    "2001:db8::7 v6.example v6\r\n"
    "10.0.0.1 \t tabbed.example\n"
    "10.0.0.2 last.example"; /* no final newline */

static int look(const char *name, char *addr)
{
    return cli_hosts_lookup(HOSTS, strlen(HOSTS), name, addr, 64);
}

START_TEST(lookup)
{
    char a[64];
    ck_assert_int_eq(look("boxer.example", a), 1);
    ck_assert_str_eq(a, "10.1.2.3");
    ck_assert_int_eq(look("BOXER", a), 1); /* case-insensitive, aliases */
    ck_assert_str_eq(a, "10.1.2.3");
    ck_assert_int_eq(look("v6", a), 1);
    ck_assert_str_eq(a, "2001:db8::7");
    ck_assert_int_eq(look("tabbed.example", a), 1);
    ck_assert_str_eq(a, "10.0.0.1");
    ck_assert_int_eq(look("last.example", a), 1);
    ck_assert_str_eq(a, "10.0.0.2");
    ck_assert_int_eq(look("other.example", a), 0); /* in a comment */
    ck_assert_int_eq(look("comment", a), 0);
    ck_assert_int_eq(look("zoned.example", a), 0);
    ck_assert_int_eq(look("named.example", a), 0);
    ck_assert_int_eq(look("boxer.ex", a), 0);      /* whole names only */
    ck_assert_int_eq(look("10.1.2.3", a), 0);      /* an address is not a name */
    ck_assert_int_eq(cli_hosts_lookup(HOSTS, strlen(HOSTS), "boxer", a, 5), 0); /* cap */
    ck_assert_int_eq(cli_hosts_lookup(NULL, 0, "boxer", a, 64), 0);
}
END_TEST

START_TEST(long_lines)
{
    /* a line over CLI_HOSTS_LINE_MAX is skipped whole; the next one counts */
    size_t pad = CLI_HOSTS_LINE_MAX + 10;
    char *t = malloc(pad + 64);
    char a[64];
    strcpy(t, "10.0.0.5 far.example");
    memset(t + strlen(t), ' ', pad);
    strcpy(t + pad, "\n10.0.0.6 far.example\n");
    ck_assert_int_eq(cli_hosts_lookup(t, strlen(t), "far.example", a, sizeof(a)), 1);
    ck_assert_str_eq(a, "10.0.0.6");
    free(t);
}
END_TEST

START_TEST(names)
{
    char big[300];
    ck_assert(cli_hosts_name_ok("boxer-1.example_x"));
    ck_assert(!cli_hosts_name_ok(""));
    ck_assert(!cli_hosts_name_ok("a b"));
    ck_assert(!cli_hosts_name_ok("a%2e"));
    memset(big, 'a', 254);
    big[254] = 0;
    ck_assert(!cli_hosts_name_ok(big));
    big[253] = 0;
    ck_assert(cli_hosts_name_ok(big));
}
END_TEST

START_TEST(target_with_file)
{
    char path[] = "/tmp/test_cli_hosts_XXXXXX";
    int fd = mkstemp(path);
    struct cli_target t;
    struct bx_err err;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, HOSTS, strlen(HOSTS)), (ssize_t)strlen(HOSTS));
    close(fd);
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://boxer.example:8123/p", path, &err), 0);
    ck_assert_str_eq(t.host, "10.1.2.3");
    ck_assert_str_eq(t.hostport, "boxer.example:8123"); /* the Host header keeps the name */
    ck_assert_uint_eq(t.port, 8123);
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://v6.example/", path, &err), 0);
    ck_assert_str_eq(t.host, "2001:db8::7");
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://127.0.0.1:9", path, &err), 0);
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://localhost:9", path, &err), 0);
    ck_assert_str_eq(t.host, "127.0.0.1");
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://missing.example:9", path, &err), -1);
    ck_assert_msg(strstr(err.msg, "use an IP address") && !strchr(err.msg, '\n'), "%s", err.msg);
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://bad%name:9", path, &err), -1);
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://boxer.example:9", NULL, &err), -1);
    unlink(path);
    ck_assert_int_eq(cli_target_parse_hosts(&t, "http://boxer.example:9", path, &err), -1);
    ck_assert_msg(strstr(err.msg, "cannot look"), "%s", err.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_hosts");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, lookup);
    tcase_add_test(tc, long_lines);
    tcase_add_test(tc, names);
    tcase_add_test(tc, target_with_file);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
