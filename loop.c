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
};

int loop_new(struct loop **out, struct bx_err *err)
{
    struct loop *l = calloc(1, sizeof(*l));
    if (!l)
        return bx_err_set(err, 500, ENOMEM, "out of memory");
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        bx_err_sys(err, 500, "epoll_create1");
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
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (fd < 0 || grow_slots(l, fd) < 0)
        return bx_err_set(err, 500, ENOMEM, "cannot track fd %d", fd);
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return bx_err_sys(err, 500, "epoll_ctl add");
    l->slots[fd] = (struct fd_slot){.cb = cb, .arg = arg, .events = events, .active = 1};
    return 0;
}

int loop_mod(struct loop *l, int fd, uint32_t events, struct bx_err *err)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (fd < 0 || (size_t)fd >= l->nslots || !l->slots[fd].active)
        return bx_err_set(err, 500, EBADF, "fd %d not registered", fd);
    if (l->slots[fd].events == events)
        return 0;
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return bx_err_sys(err, 500, "epoll_ctl mod");
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
        l->now = bx_now_ms();
        if (l->nheap > 0) {
            uint64_t when = l->heap[0].when;
            timeout = when <= l->now ? 0 : (int)(when - l->now > 60000 ? 60000 : when - l->now);
        }
        n = epoll_wait(l->epfd, evs, (int)BX_ARRAY_LEN(evs), timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return bx_err_sys(err, 500, "epoll_wait");
        }
        l->now = bx_now_ms();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            struct fd_slot *s;
            /* An earlier callback in this batch may have removed (and even
             * reused) this fd; only dispatch what is still registered. */
            if (fd < 0 || (size_t)fd >= l->nslots || !l->slots[fd].active)
                continue;
            s = &l->slots[fd];
            s->cb(l, fd, evs[i].events, s->arg);
        }
        run_due_timers(l);
    }
    return 0;
}
