/* log.c: "boxer: " + message + "\n" in one write, the level threshold, and
 * long lines cut but still one whole line. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int fds[2];

static void setup(void)
{
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    bx_log_set_fd(fds[1]);
    bx_log_set_level(BX_LOG_INFO);
}

static void teardown(void)
{
    close(fds[0]);
    close(fds[1]);
}

/* Everything written so far, NUL-terminated; *len its size. */
static char *drain(size_t *len)
{
    static char buf[3 * BX_LOG_LINE_MAX];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    if (n < 0) {
        ck_assert_int_eq(errno, EAGAIN);
        n = 0;
    }
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

START_TEST(line_format)
{
    size_t len;
    bx_log_info("listening on %s (port %d)", "127.0.0.1:8080", 8080);
    ck_assert_str_eq(drain(&len), "boxer: listening on 127.0.0.1:8080 (port 8080)\n");
    bx_log_warn("WARNING: %s", "x");
    bx_log_error("%s: %s", "a", "b");
    ck_assert_str_eq(drain(&len), "boxer: WARNING: x\nboxer: a: b\n");
    bx_log_info("%s", "");
    ck_assert_str_eq(drain(&len), "boxer: \n");
}
END_TEST

START_TEST(threshold_drops_lower_levels)
{
    size_t len;
    bx_log_set_level(BX_LOG_WARN);
    bx_log_info("hidden");
    bx_log_warn("shown");
    bx_log_set_level(BX_LOG_ERROR);
    bx_log_warn("hidden");
    bx_log_error("also shown");
    ck_assert_str_eq(drain(&len), "boxer: shown\nboxer: also shown\n");
}
END_TEST

START_TEST(long_line_cut_whole)
{
    size_t len;
    char *big = malloc(3 * BX_LOG_LINE_MAX);
    char *out;
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 3 * BX_LOG_LINE_MAX - 1);
    big[3 * BX_LOG_LINE_MAX - 1] = '\0';
    bx_log_info("%s", big);
    out = drain(&len);
    ck_assert_uint_le(len, BX_LOG_LINE_MAX);
    ck_assert_uint_gt(len, BX_LOG_LINE_MAX - 16);
    ck_assert(strncmp(out, "boxer: xxx", 10) == 0);
    ck_assert_int_eq(out[len - 1], '\n');
    ck_assert_ptr_eq(strchr(out, '\n'), out + len - 1);
    free(big);
}
END_TEST

START_TEST(errno_preserved)
{
    size_t len;
    errno = ENOSPC;
    bx_log_error("disk");
    ck_assert_int_eq(errno, ENOSPC);
    /* A closed log fd loses the line, silently, errno kept. */
    bx_log_set_fd(-1);
    errno = EPERM;
    bx_log_error("lost");
    ck_assert_int_eq(errno, EPERM);
    ck_assert_str_eq(drain(&len), "boxer: disk\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    SRunner *sr;
    int failed;
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, line_format);
    tcase_add_test(tc, threshold_drops_lower_levels);
    tcase_add_test(tc, long_line_cut_whole);
    tcase_add_test(tc, errno_preserved);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
