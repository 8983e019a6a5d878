/* Unit tests for infeed.c: a command's stdin fed from the loop.  A reader
 * slower than the writer (a pipe smaller than the data) gets every byte in
 * order and then EOF; the buffer bound (413), writes after eof (409), and a
 * reader that went away (the rest dropped, still counted). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infeed.h"
#include "loop.h"

struct reader {
    struct loop *l;
    char *got;
    size_t n, cap;
    int eof;
};

/* Reads a little per wake-up: the feed must wait for room many times. */
static void on_read(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct reader *r = arg;
    char buf[1000];
    ssize_t n;
    (void)events;
    n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        ck_assert(r->n + (size_t)n <= r->cap);
        memcpy(r->got + r->n, buf, (size_t)n);
        r->n += (size_t)n;
        return;
    }
    if (n < 0 && errno == EAGAIN)
        return;
    r->eof = 1;
    loop_del(l, fd);
    loop_stop(l);
}

START_TEST(slow_reader_gets_everything_then_eof)
{
    struct loop *l = NULL;
    struct bx_err err;
    struct infeed f;
    struct reader r = {0};
    size_t len = 1u << 20;
    char *data = malloc(len);
    int rd = -1;
    bx_err_clear(&err);
    ck_assert_int_eq(loop_new(&l, &err), 0);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7 + i / 251);
    infeed_init(&f, l, len);
    ck_assert_int_eq(infeed_pipe(&f, &rd, &err), 0);
    ck_assert_int_eq(fcntl(rd, F_SETFL, O_NONBLOCK), 0);
    r.got = malloc(len);
    r.cap = len;
    ck_assert_int_eq(loop_add(l, rd, EPOLLIN, on_read, &r, &err), 0);
    ck_assert_int_eq(infeed_put(&f, data, len / 2, &err), 0);
    ck_assert_uint_eq(infeed_room(&f), len - (f.len - f.off));
    ck_assert_int_eq(infeed_put(&f, data + len / 2, len - len / 2, &err), 0);
    ck_assert_uint_eq(f.total, len);
    /* more than the room: 413, nothing taken */
    if (infeed_room(&f) < len) {
        ck_assert_int_eq(infeed_put(&f, data, infeed_room(&f) + 1, &err), -1);
        ck_assert_int_eq(err.status, BX_E_TOO_LARGE);
        ck_assert_uint_eq(f.total, len);
    }
    infeed_eof(&f);
    bx_err_clear(&err);
    ck_assert_int_eq(infeed_put(&f, "x", 1, &err), -1);
    ck_assert_int_eq(err.status, BX_E_CONFLICT);
    ck_assert_int_eq(loop_run(l, &err), 0);
    ck_assert(r.eof);
    ck_assert_uint_eq(r.n, len);
    ck_assert(memcmp(r.got, data, len) == 0);
    ck_assert_int_eq(f.fd, -1);
    ck_assert(!f.broken);
    infeed_free(&f);
    close(rd);
    loop_free(&l);
    free(r.got);
    free(data);
}
END_TEST

START_TEST(reader_gone_drops_the_rest)
{
    struct loop *l = NULL;
    struct bx_err err;
    struct infeed f;
    int rd = -1;
    char buf[100000];
    signal(SIGPIPE, SIG_IGN);
    memset(buf, 'a', sizeof(buf));
    bx_err_clear(&err);
    ck_assert_int_eq(loop_new(&l, &err), 0);
    infeed_init(&f, l, 1 << 20);
    ck_assert_int_eq(infeed_pipe(&f, &rd, &err), 0);
    close(rd);
    ck_assert_int_eq(infeed_put(&f, buf, sizeof(buf), &err), 0);
    ck_assert(f.broken);
    ck_assert_int_eq(f.fd, -1);
    ck_assert_int_eq(infeed_put(&f, buf, 10, &err), 0);
    ck_assert_uint_eq(f.total, sizeof(buf) + 10);
    infeed_eof(&f);
    infeed_free(&f);
    infeed_free(&f); /* twice is harmless */
    loop_free(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("infeed");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;
    tcase_add_test(tc, slow_reader_gets_everything_then_eof);
    tcase_add_test(tc, reader_gone_drops_the_rest);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
