#include "infeed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void infeed_init(struct infeed *f, struct loop *l, size_t max_pending)
{
    memset(f, 0, sizeof(*f));
    f->loop = l;
    f->fd = -1;
    f->max = max_pending;
}

static void drop(struct infeed *f)
{
    if (f->fd >= 0) {
        if (f->watching)
            loop_del(f->loop, f->fd);
        bx_close(&f->fd);
    }
    f->watching = 0;
    free(f->buf);
    f->buf = NULL;
    f->off = f->len = f->cap = 0;
}

void infeed_free(struct infeed *f)
{
    drop(f);
}

static void flush(struct infeed *f);

static void on_writable(struct loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    flush(arg);
}

/* Writes what the pipe takes; watches for room while bytes are left. */
static void flush(struct infeed *f)
{
    if (f->fd < 0)
        return;
    while (f->off < f->len) {
        ssize_t n = write(f->fd, f->buf + f->off, f->len - f->off);
        if (n > 0) {
            f->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        /* EPIPE (the command closed its stdin or ended) or another error */
        f->broken = 1;
        drop(f);
        return;
    }
    if (f->off == f->len) {
        f->off = f->len = 0;
        if (f->eof) {
            drop(f);
            return;
        }
        if (f->watching) {
            loop_del(f->loop, f->fd);
            f->watching = 0;
        }
        /* a drained buffer of a long interactive exec gives its memory back */
        if (f->cap > 65536) {
            free(f->buf);
            f->buf = NULL;
            f->cap = 0;
        }
        return;
    }
    if (!f->watching) {
        struct bx_err err;
        if (loop_add(f->loop, f->fd, EPOLLOUT, on_writable, f, &err) < 0) {
            /* cannot wait for room: give the input up rather than spin */
            f->broken = 1;
            drop(f);
            return;
        }
        f->watching = 1;
    }
}

int infeed_pipe(struct infeed *f, int *child_end, struct bx_err *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "pipe2");
    if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0) {
        close(p[0]);
        close(p[1]);
        return bx_err_sys(err, BX_E_INTERNAL, "fcntl");
    }
    f->fd = p[1];
    *child_end = p[0];
    return 0;
}

size_t infeed_room(const struct infeed *f)
{
    size_t pending = f->len - f->off;
    return f->max > pending ? f->max - pending : 0;
}

int infeed_put(struct infeed *f, const void *data, size_t len, struct bx_err *err)
{
    if (f->eof)
        return bx_err_set(err, BX_E_CONFLICT, EPIPE, "stdin is already closed");
    if (len > infeed_room(f))
        return bx_err_set(err, BX_E_TOO_LARGE, E2BIG, "stdin buffer is full");
    f->total += len;
    if (len == 0 || f->fd < 0)
        return 0; /* broken: the command no longer reads */
    if (f->len + len > f->cap) {
        size_t pending = f->len - f->off, cap;
        char *nb;
        if (f->off > 0) {
            memmove(f->buf, f->buf + f->off, pending);
            f->off = 0;
            f->len = pending;
        }
        cap = f->cap ? f->cap : 4096;
        while (cap < pending + len)
            cap *= 2;
        if (cap != f->cap) {
            nb = realloc(f->buf, cap);
            if (!nb) {
                f->total -= len;
                return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            }
            f->buf = nb;
            f->cap = cap;
        }
    }
    memcpy(f->buf + f->len, data, len);
    f->len += len;
    flush(f);
    return 0;
}

void infeed_eof(struct infeed *f)
{
    f->eof = 1;
    if (f->off == f->len)
        drop(f);
}
