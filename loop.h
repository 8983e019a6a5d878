/* One epoll loop for the whole process (redis ae.c in spirit): per-fd state
 * in an array indexed by fd, one-shot timers in a min-heap, deferred tasks in
 * a FIFO, and a check before each fd callback that the registration the
 * event was queued for is still the current one, since a callback may close
 * other fds or itself, and the kernel may hand the same number to a new fd
 * within one epoll_wait batch.
 *
 * The rule every module follows: no callback ever runs synchronously inside
 * the call that registered it (a caller still inside that call may touch
 * state the callback frees).  A completion that is known at once is handed
 * to loop_defer() and runs from the loop. */
#ifndef BOXER_LOOP_H
#define BOXER_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

#include "err.h"

struct loop;

typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(struct loop *l, void *arg);
typedef void (*loop_task_cb)(struct loop *l, void *arg);

/* A deferred call, embedded in its owner (so deferring can never fail for
 * lack of memory).  Zero-initialise it; it must stay valid until it has run
 * or loop_defer_cancel() took it back. */
struct loop_task {
    struct loop_task *next, *prev;
    loop_task_cb cb;
    void *arg;
    uint64_t seq;
    int queued;
};

int loop_new(struct loop **out, struct bx_err *err);
void loop_free(struct loop **lp);

/* events are EPOLLIN/EPOLLOUT/...; level-triggered. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg,
             struct bx_err *err);
int loop_mod(struct loop *l, int fd, uint32_t events, struct bx_err *err);
/* Safe to call from inside any callback, including the fd's own. */
void loop_del(struct loop *l, int fd);

/* One-shot timer after delay_ms.  Returns an id > 0, or 0 when out of memory. */
uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_cb cb, void *arg);
/* Cancelling an id that already fired or was cancelled is a no-op. */
void loop_timer_cancel(struct loop *l, uint64_t id);

/* Queues cb(arg) to run from the loop, after the current callback (or the
 * caller, outside the loop) has returned: never inside loop_defer().  Tasks
 * run in FIFO order, before the loop next waits; a task deferred by a task
 * runs in the next turn (after pending I/O), so tasks cannot starve fds.
 * Deferring a task that is already queued moves nothing (it runs once, with
 * the new cb and arg). */
void loop_defer(struct loop *l, struct loop_task *t, loop_task_cb cb, void *arg);
/* Takes a queued task back; a task not queued (never, already run or
 * cancelled) is a no-op.  Tasks still queued when the loop is freed never
 * run: their owners cancel them when they are freed. */
void loop_defer_cancel(struct loop *l, struct loop_task *t);
/* Whether t is queued. */
int loop_deferred(const struct loop_task *t);

/* Runs until loop_stop(); returns 0, or -1 on an epoll failure. */
int loop_run(struct loop *l, struct bx_err *err);
void loop_stop(struct loop *l);

uint64_t loop_now_ms(struct loop *l);

#endif
