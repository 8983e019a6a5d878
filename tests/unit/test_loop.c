/* Unit tests for loop.c: deferred tasks (never run inside loop_defer, FIFO,
 * cancellable, tasks queued by tasks wait for the next turn so fds are not
 * starved, a pending task keeps the loop from blocking) and the generation
 * tag on fd registrations (an event queued for an fd that an earlier
 * callback of the same epoll_wait batch closed and whose number it reused
 * is not delivered to the new owner). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "loop.h"

static struct loop *new_loop(void)
{
    struct loop *l = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(loop_new(&l, &err), 0);
    return l;
}

static void run_loop(struct loop *l)
{
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(loop_run(l, &err), 0);
}

/* ---- deferred tasks ---- */

struct rec {
    char log[64];
    size_t n;
};

struct tagged {
    struct rec *rec;
    char tag;
    int stop;
};

static void record(struct loop *l, void *arg)
{
    struct tagged *t = arg;
    ck_assert_uint_lt(t->rec->n, sizeof(t->rec->log) - 1);
    t->rec->log[t->rec->n++] = t->tag;
    if (t->stop)
        loop_stop(l);
}

/* Three tasks deferred in order, recording a, b, c; c stops the loop. */
struct abc {
    struct rec rec;
    struct tagged a, b, c;
    struct loop_task ta, tb, tc;
};

static void defer_abc(struct loop *l, struct abc *x)
{
    memset(x, 0, sizeof(*x));
    x->a = (struct tagged){&x->rec, 'a', 0};
    x->b = (struct tagged){&x->rec, 'b', 0};
    x->c = (struct tagged){&x->rec, 'c', 1};
    loop_defer(l, &x->ta, record, &x->a);
    loop_defer(l, &x->tb, record, &x->b);
    loop_defer(l, &x->tc, record, &x->c);
}

START_TEST(test_defer_runs_later_in_order)
{
    struct loop *l = new_loop();
    struct abc x;

    defer_abc(l, &x);
    /* Deferring again while queued neither duplicates nor reorders. */
    loop_defer(l, &x.ta, record, &x.a);
    ck_assert_uint_eq(x.rec.n, 0); /* nothing ran inside loop_defer */
    ck_assert(loop_deferred(&x.ta) && loop_deferred(&x.tb) && loop_deferred(&x.tc));
    run_loop(l); /* would block forever if pending tasks did not poll */
    ck_assert_str_eq(x.rec.log, "abc");
    ck_assert(!loop_deferred(&x.ta) && !loop_deferred(&x.tb) && !loop_deferred(&x.tc));
    loop_free(&l);
}
END_TEST

START_TEST(test_defer_cancel)
{
    struct loop *l = new_loop();
    struct abc x;

    defer_abc(l, &x);
    loop_defer_cancel(l, &x.tb);
    loop_defer_cancel(l, &x.tb); /* twice: a no-op */
    ck_assert(!loop_deferred(&x.tb));
    run_loop(l);
    ck_assert_str_eq(x.rec.log, "ac");
    /* Cancelling a task that already ran is a no-op. */
    loop_defer_cancel(l, &x.ta);
    /* A cancelled task can be queued again. */
    x.c.stop = 1;
    loop_defer(l, &x.tb, record, &x.b);
    loop_defer(l, &x.tc, record, &x.c);
    run_loop(l);
    ck_assert_str_eq(x.rec.log, "acbc");
    loop_free(&l);
}
END_TEST

/* A task that cancels the task queued after it (e.g. its owner is freed). */
struct canceller {
    struct loop_task *victim;
    struct rec *rec;
};

static void cancel_other(struct loop *l, void *arg)
{
    struct canceller *c = arg;
    loop_defer_cancel(l, c->victim);
    c->rec->log[c->rec->n++] = 'x';
}

START_TEST(test_defer_cancel_from_task)
{
    struct loop *l = new_loop();
    struct rec rec = {{0}, 0};
    struct loop_task tx = {0}, tv = {0}, ts = {0};
    struct tagged v = {&rec, 'v', 0}, s = {&rec, 's', 1};
    struct canceller cx = {&tv, &rec};

    loop_defer(l, &tx, cancel_other, &cx);
    loop_defer(l, &tv, record, &v);
    loop_defer(l, &ts, record, &s);
    run_loop(l);
    ck_assert_str_eq(rec.log, "xs");
    loop_free(&l);
}
END_TEST

/* A task queued by a task runs in the next turn, after the fd events that
 * are ready: a task that keeps re-queueing itself cannot starve I/O. */
struct fairness {
    struct loop_task self;
    int fd_seen;
    int turns;
    int fd_seen_at_turn;
};

static void on_readable(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct fairness *f = arg;
    char b;
    (void)events;
    ck_assert_int_eq(read(fd, &b, 1), 1);
    loop_del(l, fd);
    f->fd_seen = 1;
    f->fd_seen_at_turn = f->turns;
}

static void requeue(struct loop *l, void *arg)
{
    struct fairness *f = arg;
    f->turns++;
    if (f->fd_seen || f->turns > 1000) {
        loop_stop(l);
        return;
    }
    loop_defer(l, &f->self, requeue, f);
}

START_TEST(test_defer_does_not_starve_fds)
{
    struct loop *l = new_loop();
    struct fairness f;
    struct bx_err err;
    int p[2];

    memset(&f, 0, sizeof(f));
    bx_err_clear(&err);
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(loop_add(l, p[0], EPOLLIN, on_readable, &f, &err), 0);
    loop_defer(l, &f.self, requeue, &f);
    run_loop(l);
    ck_assert_int_eq(f.fd_seen, 1);
    /* The fd was served right after the first task turn. */
    ck_assert_int_eq(f.fd_seen_at_turn, 1);
    close(p[0]);
    close(p[1]);
    loop_free(&l);
}
END_TEST

/* A task deferred from a timer or fd callback runs before the loop blocks
 * again (no timer pending, no fd ready: it would otherwise wait forever). */
static void defer_from_timer(struct loop *l, void *arg)
{
    struct fairness *f = arg;
    f->turns = 0;
    loop_defer(l, &f->self, requeue, f);
    f->fd_seen = 1; /* requeue stops at once */
}

START_TEST(test_defer_from_timer_does_not_block)
{
    struct loop *l = new_loop();
    struct fairness f;
    memset(&f, 0, sizeof(f));
    ck_assert_uint_gt(loop_timer_add(l, 1, defer_from_timer, &f), 0);
    run_loop(l);
    ck_assert_int_eq(f.turns, 1);
    loop_free(&l);
}
END_TEST

/* ---- stale events after fd reuse within one epoll_wait batch ---- */

static void count_and_stop(struct loop *l, int fd, uint32_t events, void *arg)
{
    int *n = arg;
    char b;
    (void)events;
    if (read(fd, &b, 1) == 1)
        (*n)++;
    loop_stop(l);
}


struct reuse {
    int fds[2];      /* two readable pipe read ends, both registered */
    int empty_r;     /* read end of an empty pipe: what the reused number becomes */
    int first;       /* index of the callback that ran first, -1 before */
    int reused_fd;   /* the number that now names the empty pipe */
    int stale_calls; /* events the new owner got */
    uint32_t stale_events;
};

static void new_owner(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct reuse *r = arg;
    char buf[16];
    (void)l;
    (void)fd;
    r->stale_calls++;
    r->stale_events = events;
    /* Nothing was written to the empty pipe: a read would block. */
    ck_assert_int_lt(read(fd, buf, sizeof(buf)), 0);
}

static void old_owner(struct loop *l, int fd, uint32_t events, void *arg)
{
    struct reuse *r = arg;
    struct bx_err err;
    int me = fd == r->fds[0] ? 0 : 1;
    int other = r->fds[1 - me];
    (void)events;
    bx_err_clear(&err);
    loop_stop(l);
    if (r->first >= 0)
        return; /* only reached if the other one did not close me */
    r->first = me;
    /* Close the other fd (its event is already in this batch) and give its
     * number to a new fd with a new owner. */
    loop_del(l, other);
    ck_assert_int_eq(close(other), 0);
    ck_assert_int_eq(dup3(r->empty_r, other, O_CLOEXEC), other);
    r->reused_fd = other;
    ck_assert_int_eq(loop_add(l, other, EPOLLIN, new_owner, r, &err), 0);
}

START_TEST(test_stale_event_not_delivered_after_fd_reuse)
{
    struct loop *l = new_loop();
    struct reuse r;
    struct bx_err err;
    int p1[2], p2[2], pe[2];
    bx_err_clear(&err);
    memset(&r, 0, sizeof(r));
    r.first = -1;
    ck_assert_int_eq(pipe2(p1, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(pipe2(p2, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(write(p1[1], "a", 1), 1);
    ck_assert_int_eq(write(p2[1], "b", 1), 1);
    r.fds[0] = p1[0];
    r.fds[1] = p2[0];
    r.empty_r = pe[0];
    ck_assert_int_eq(loop_add(l, p1[0], EPOLLIN, old_owner, &r, &err), 0);
    ck_assert_int_eq(loop_add(l, p2[0], EPOLLIN, old_owner, &r, &err), 0);
    /* Both fds are ready: one epoll_wait batch holds both events. */
    run_loop(l);
    ck_assert_int_ge(r.first, 0);
    ck_assert_msg(r.stale_calls == 0,
                  "the new owner of fd %d got the closed fd's event (events %#x)", r.reused_fd,
                  r.stale_events);

    /* A new registration of that number gets its own events. */
    loop_del(l, r.reused_fd);
    {
        int n = 0;
        ck_assert_int_eq(loop_add(l, r.reused_fd, EPOLLIN, count_and_stop, &n, &err), 0);
        ck_assert_int_eq(write(pe[1], "c", 1), 1);
        run_loop(l);
        ck_assert_int_eq(n, 1);
    }
    close(p1[0]); /* one of these two is now the reused number */
    close(p2[0]);
    close(p1[1]);
    close(p2[1]);
    close(pe[0]);
    close(pe[1]);
    loop_free(&l);
}
END_TEST

/* A live registration still gets its events, also after loop_mod (which
 * must keep the generation). */
START_TEST(test_events_delivered_after_mod)
{
    struct loop *l = new_loop();
    struct bx_err err;
    int p[2], n = 0;

    bx_err_clear(&err);
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(loop_add(l, p[0], EPOLLIN | EPOLLRDHUP, count_and_stop, &n, &err), 0);
    ck_assert_int_eq(loop_mod(l, p[0], EPOLLIN, &err), 0);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    run_loop(l);
    ck_assert_int_eq(n, 1);
    /* Removed and added again under the same number: a new generation,
     * events still arrive. */
    loop_del(l, p[0]);
    ck_assert_int_eq(loop_add(l, p[0], EPOLLIN, count_and_stop, &n, &err), 0);
    ck_assert_int_eq(write(p[1], "y", 1), 1);
    run_loop(l);
    ck_assert_int_eq(n, 2);
    close(p[0]);
    close(p[1]);
    loop_free(&l);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_defer_runs_later_in_order);
    tcase_add_test(tc, test_defer_cancel);
    tcase_add_test(tc, test_defer_cancel_from_task);
    tcase_add_test(tc, test_defer_does_not_starve_fds);
    tcase_add_test(tc, test_defer_from_timer_does_not_block);
    tcase_add_test(tc, test_stale_event_not_delivered_after_fd_reuse);
    tcase_add_test(tc, test_events_delivered_after_mod);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(loop_suite);
}
