/* One epoll loop for the whole process (redis ae.c in spirit): per-fd state
 * in an array indexed by fd, one-shot timers in a min-heap, and a check after
 * each callback that the fd is still registered, since a callback may close
 * other fds or itself. */
#ifndef BOXER_LOOP_H
#define BOXER_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

#include "err.h"

struct loop;

typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(struct loop *l, void *arg);

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

/* Runs until loop_stop(); returns 0, or -1 on an epoll failure. */
int loop_run(struct loop *l, struct bx_err *err);
void loop_stop(struct loop *l);

uint64_t loop_now_ms(struct loop *l);

#endif
