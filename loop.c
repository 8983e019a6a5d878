#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct fd_slot {
    loop_fd_cb cb;
    void *arg;
    uint32_t events;
    uint32_t gen; /* of this registration; events carry it (see ev_data) */
    int active;
};

struct timer {
    uint64_t when;
    uint64_t id;
    loop_timer_cb cb;
    void *arg;
};

struct loop {
    int epfd;
    struct fd_slot *slots;
    size_t nslots;
    struct timer *heap;
    size_t nheap;
    size_t capheap;
    uint64_t next_id;
    uint64_t now;
    int stop;
    uint32_t next_gen;
    struct loop_task *task_head, *task_tail;
    uint64_t task_seq;
};

/* An event names the fd and the registration it was queued for: a number
 * closed and reused by an earlier callback of the same epoll_wait batch
 * gets a new generation, so the stale event is dropped instead of being
 * delivered to the new owner. */
static uint64_t ev_data(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

int loop_new(struct loop **out, struct bx_err *err)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "epoll_create1");
        free(l);
        return -1;
    }
    l->now = bx_now_ms();
    *out = l;
    return 0;
}

void loop_free(struct loop **lp)
{
    struct loop *l = *lp;
    if (!l)
        return;
    bx_close(&l->epfd);
    free(l->slots);
    free(l->heap);
    free(l);
    *lp = NULL;
}

static int grow_slots(struct loop *l, int fd)
{
    size_t want = (size_t)fd + 1, n;
    struct fd_slot *s;
    if (want <= l->nslots)
        return 0;
    n = l->nslots ? l->nslots : 64;
    while (n < want)
        n *= 2;
    s = realloc(l->slots, n * sizeof(*s));
    if (!s)
        return -1;
    memset(s + l->nslots, 0, (n - l->nslots) * sizeof(*s));
    l->slots = s;
    l->nslots = n;
    return 0;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg,
             struct bx_err *err)
{
    struct epoll_event ev = {.events = events};
    uint32_t gen;
    if (fd < 0 || grow_slots(l, fd) < 0)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "cannot track fd %d", fd);
    gen = ++l->next_gen;
    if (gen == 0) /* wrapped: 0 is never a live generation */
        gen = ++l->next_gen;
    ev.data.u64 = ev_data(fd, gen);
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "epoll_ctl add");
    l->slots[fd] =
        (struct fd_slot){.cb = cb, .arg = arg, .events = events, .gen = gen, .active = 1};
    return 0;
}

int loop_mod(struct loop *l, int fd, uint32_t events, struct bx_err *err)
{
    struct epoll_event ev = {.events = events};
    if (fd < 0 || (size_t)fd >= l->nslots || !l->slots[fd].active)
        return bx_err_set(err, BX_E_INTERNAL, EBADF, "fd %d not registered", fd);
    if (l->slots[fd].events == events)
        return 0;
    ev.data.u64 = ev_data(fd, l->slots[fd].gen);
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "epoll_ctl mod");
    l->slots[fd].events = events;
    return 0;
}

void loop_del(struct loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nslots || !l->slots[fd].active)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(&l->slots[fd], 0, sizeof(l->slots[fd]));
}

static int timer_less(const struct timer *a, const struct timer *b)
{
    return a->when < b->when || (a->when == b->when && a->id < b->id);
}

static void heap_swap(struct timer *h, size_t a, size_t b)
{
    struct timer t = h[a];
    h[a] = h[b];
    h[b] = t;
}

static void heap_up(struct timer *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_less(&h[i], &h[p]))
            break;
        heap_swap(h, i, p);
        i = p;
    }
}

static void heap_down(struct timer *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && timer_less(&h[l], &h[m]))
            m = l;
        if (r < n && timer_less(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(h, i, m);
        i = m;
    }
}

static void heap_remove_at(struct loop *l, size_t i)
{
    l->nheap--;
    if (i == l->nheap)
        return;
    l->heap[i] = l->heap[l->nheap];
    heap_down(l->heap, l->nheap, i);
    heap_up(l->heap, i);
}

uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_cb cb, void *arg)
{
    if (l->nheap == l->capheap) {
        size_t n = l->capheap ? l->capheap * 2 : 64;
        struct timer *h = realloc(l->heap, n * sizeof(*h));
        if (!h)
            return 0;
        l->heap = h;
        l->capheap = n;
    }
    l->heap[l->nheap] = (struct timer){
        .when = bx_now_ms() + delay_ms, .id = ++l->next_id, .cb = cb, .arg = arg};
    heap_up(l->heap, l->nheap);
    l->nheap++;
    return l->next_id;
}

/* Linear search: timers are few (one per run, one per pull, one sweep). */
void loop_timer_cancel(struct loop *l, uint64_t id)
{
    for (size_t i = 0; i < l->nheap; i++) {
        if (l->heap[i].id == id) {
            heap_remove_at(l, i);
            return;
        }
    }
}

/* ---- deferred tasks: an intrusive FIFO ---- */

void loop_defer(struct loop *l, struct loop_task *t, loop_task_cb cb, void *arg)
{
    t->cb = cb;
    t->arg = arg;
    if (t->queued)
        return;
    t->queued = 1;
    t->seq = ++l->task_seq;
    t->next = NULL;
    t->prev = l->task_tail;
    if (l->task_tail)
        l->task_tail->next = t;
    else
        l->task_head = t;
    l->task_tail = t;
}

void loop_defer_cancel(struct loop *l, struct loop_task *t)
{
    if (!t->queued)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        l->task_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->task_tail = t->prev;
    t->next = t->prev = NULL;
    t->queued = 0;
}

int loop_deferred(const struct loop_task *t)
{
    return t->queued;
}

/* Runs the tasks queued before this call; those they queue wait for the
 * next turn.  A task may cancel or free any other task (it is unlinked
 * from the queue first, so nothing here touches it afterwards). */
static void run_deferred(struct loop *l)
{
    uint64_t last = l->task_seq;
    while (l->task_head && l->task_head->seq <= last) {
        struct loop_task *t = l->task_head;
        loop_defer_cancel(l, t);
        t->cb(l, t->arg);
    }
}

uint64_t loop_now_ms(struct loop *l)
{
    return l->now;
}

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

static void run_due_timers(struct loop *l)
{
    l->now = bx_now_ms();
    while (l->nheap > 0 && l->heap[0].when <= l->now) {
        struct timer t = l->heap[0];
        heap_remove_at(l, 0);
        t.cb(l, t.arg);
    }
}

int loop_run(struct loop *l, struct bx_err *err)
{
    struct epoll_event evs[256];
    l->stop = 0;
    while (!l->stop) {
        int timeout = -1, n;
        run_deferred(l);
        if (l->stop)
            break;
        l->now = bx_now_ms();
        if (l->task_head) {
            timeout = 0; /* tasks queued by tasks: poll, then run them */
        } else if (l->nheap > 0) {
            uint64_t when = l->heap[0].when;
            timeout = when <= l->now ? 0 : (int)(when - l->now > 60000 ? 60000 : when - l->now);
        }
        n = epoll_wait(l->epfd, evs, (int)BX_ARRAY_LEN(evs), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return bx_err_sys(err, BX_E_INTERNAL, "epoll_wait");
        }
        l->now = bx_now_ms();
        for (int i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            struct fd_slot *s;
            /* An earlier callback in this batch may have removed this fd,
             * or removed it and registered a new fd under the same number:
             * only dispatch to the registration the event was queued for. */
            if (fd < 0 || (size_t)fd >= l->nslots || !l->slots[fd].active ||
                l->slots[fd].gen != gen)
                continue;
            s = &l->slots[fd];
            s->cb(l, fd, evs[i].events, s->arg);
        }
        run_due_timers(l);
    }
    return 0;
}
