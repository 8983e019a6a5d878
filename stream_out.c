/* Chunked event streams out to an HTTP client: see stream_out.h. */
#include "stream_out.h"

/* One encoded event may be far bigger than what the connection takes at
 * once (a 64 KiB read escapes to up to 6 times that): it waits here and
 * goes out in pieces. */
#define EV_MAX (1u << 20)

void stream_out_init(struct stream_out *so, struct loop *l, enum sev_format f,
                     uint64_t keepalive_ms, stream_out_produce_cb produce, void *owner)
{
    so->loop = l;
    so->conn = NULL;
    so->format = f;
    so->keepalive_ms = keepalive_ms;
    so->produce = produce;
    so->owner = owner;
    so->final = so->ended = 0;
    sbuf_init(&so->ev, EV_MAX);
    so->ev_off = 0;
    so->ka_timer = so->last_write_ms = 0;
}

void stream_out_pump(struct stream_out *so)
{
    if (so->ended)
        return;
    for (;;) {
        if (so->ev_off < so->ev.len) {
            size_t room = http_chunk_room(so->conn), n = so->ev.len - so->ev_off;
            if (room == 0)
                return; /* on_drain calls again */
            if (n > room)
                n = room;
            if (http_chunk_write(so->conn, so->ev.data + so->ev_off, n) < 0)
                return;
            so->ev_off += n;
            so->last_write_ms = loop_now_ms(so->loop);
            continue;
        }
        sbuf_reset(&so->ev);
        so->ev_off = 0;
        if (!so->produce(so->owner))
            break;
    }
    if (so->final) {
        so->ended = 1;
        http_chunk_end(so->conn);
    }
}

static void so_first_pump(struct loop *l, void *arg)
{
    (void)l;
    stream_out_pump(arg);
}

static void so_on_drain(void *arg)
{
    stream_out_pump(arg);
}

static void so_on_keepalive(struct loop *l, void *arg)
{
    struct stream_out *so = arg;
    uint64_t now = loop_now_ms(l);
    so->ka_timer = 0;
    if (!so->ended && so->ev_off >= so->ev.len && now - so->last_write_ms >= so->keepalive_ms) {
        sbuf_reset(&so->ev);
        so->ev_off = 0;
        if (sev_keepalive(&so->ev, so->format) == 0)
            stream_out_pump(so);
        so->last_write_ms = now;
    }
    if (!so->ended) {
        uint64_t due = so->last_write_ms + so->keepalive_ms;
        so->ka_timer =
            loop_timer_add(l, due > now ? due - now : so->keepalive_ms, so_on_keepalive, so);
    }
}

void stream_out_begin(struct stream_out *so, struct http_conn *c, const char *ctype,
                      http_done_cb done, void *done_arg)
{
    so->conn = c;
    so->last_write_ms = loop_now_ms(so->loop);
    so->ka_timer = loop_timer_add(so->loop, so->keepalive_ms, so_on_keepalive, so);
    loop_defer(so->loop, &so->first, so_first_pump, so);
    http_on_done(c, done, done_arg);
    /* no-cache and no proxy buffering: events are wanted as they come */
    http_respond_chunked(c, 200, ctype, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
                         so_on_drain, so);
}

void stream_out_end(struct stream_out *so)
{
    if (so->ka_timer)
        loop_timer_cancel(so->loop, so->ka_timer);
    so->ka_timer = 0;
    loop_defer_cancel(so->loop, &so->first);
    sbuf_free(&so->ev);
}
