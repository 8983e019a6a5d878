/* The bounded event log of an exec's output: see exec_log.h. */
#include "exec_log.h"

#include <stdlib.h>
#include <string.h>

void exec_log_init(struct exec_log *l, uint64_t max)
{
    memset(l, 0, sizeof(*l));
    l->max = max;
    l->next_seq = 1;
}

static struct exec_event *slot(const struct exec_log *l, size_t i)
{
    return &l->ev[(l->head + i) % l->cap];
}

void exec_log_free(struct exec_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(slot(l, i)->data);
    free(l->ev);
    l->ev = NULL;
    l->cap = l->n = l->head = 0;
    l->bytes = 0;
}

static void drop_oldest(struct exec_log *l)
{
    struct exec_event *e = slot(l, 0);
    l->bytes -= e->len + EXEC_LOG_OVERHEAD;
    l->cut_bytes += e->len;
    l->dropped++;
    free(e->data);
    e->data = NULL;
    l->head = (l->head + 1) % l->cap;
    l->n--;
}

static int grow(struct exec_log *l)
{
    size_t ncap = l->cap ? l->cap * 2 : 16;
    struct exec_event *nev = calloc(ncap, sizeof(*nev));
    if (!nev)
        return -1;
    for (size_t i = 0; i < l->n; i++)
        nev[i] = *slot(l, i);
    free(l->ev);
    l->ev = nev;
    l->cap = ncap;
    l->head = 0;
    return 0;
}

/* One event of a's then b's bytes. */
static int add_event(struct exec_log *l, int stream, const unsigned char *a, size_t alen,
                     const char *b, size_t blen)
{
    size_t total = alen + blen, keep = total, skip;
    struct exec_event *e;
    char *data;
    if (total == 0)
        return 0;
    /* Bigger than the whole log: its tail is what a reader wants most. */
    if ((uint64_t)keep + EXEC_LOG_OVERHEAD > l->max)
        keep = l->max > EXEC_LOG_OVERHEAD ? (size_t)(l->max - EXEC_LOG_OVERHEAD) : 1;
    skip = total - keep;
    while (l->n > 0 && l->bytes + keep + EXEC_LOG_OVERHEAD > l->max)
        drop_oldest(l);
    if ((l->n == l->cap && grow(l) < 0) || !(data = malloc(keep))) {
        l->cut_bytes += total;
        return -1;
    }
    /* copy the last `keep` bytes of a||b */
    {
        size_t o = 0;
        if (skip < alen) {
            memcpy(data, a + skip, alen - skip);
            o = alen - skip;
            memcpy(data + o, b, blen);
        } else {
            memcpy(data, b + (skip - alen), keep);
        }
    }
    l->cut_bytes += skip;
    e = slot(l, l->n);
    e->seq = l->next_seq++;
    e->stream = stream;
    e->len = keep;
    e->data = data;
    l->total += keep + EXEC_LOG_OVERHEAD;
    e->cum = l->total;
    l->n++;
    l->bytes += keep + EXEC_LOG_OVERHEAD;
    return 0;
}

/* Length of an incomplete UTF-8 sequence at the end of s (0 when none). */
static size_t utf8_tail(const unsigned char *s, size_t len)
{
    size_t back = len < 4 ? len : 3;
    for (size_t k = 1; k <= back; k++) {
        unsigned char c = s[len - k];
        size_t need;
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: look further back */
        need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

int exec_log_append(struct exec_log *l, int stream, const char *data, size_t len)
{
    unsigned char *carry = l->carry[stream];
    size_t clen = l->carry_len[stream], tail;
    int r;
    if (len == 0)
        return 0;
    /* The held-back bytes and the new ones, considered together. */
    if (clen + len <= 4) {
        unsigned char tmp[8];
        memcpy(tmp, carry, clen);
        memcpy(tmp + clen, data, len);
        tail = utf8_tail(tmp, clen + len);
        r = add_event(l, stream, tmp, clen + len - tail, "", 0);
        memcpy(carry, tmp + clen + len - tail, tail);
        l->carry_len[stream] = tail;
        return r;
    }
    tail = utf8_tail((const unsigned char *)data, len);
    r = add_event(l, stream, carry, clen, data, len - tail);
    memcpy(carry, data + len - tail, tail);
    l->carry_len[stream] = tail;
    return r;
}

int exec_log_flush(struct exec_log *l)
{
    int r = 0;
    for (int s = 0; s < 2; s++) {
        if (l->carry_len[s] && add_event(l, s, l->carry[s], l->carry_len[s], "", 0) < 0)
            r = -1;
        l->carry_len[s] = 0;
    }
    return r;
}

const struct exec_event *exec_log_at(const struct exec_log *l, size_t i)
{
    return i < l->n ? slot(l, i) : NULL;
}

size_t exec_log_index_after(const struct exec_log *l, uint64_t after)
{
    uint64_t first;
    if (l->n == 0)
        return 0;
    first = slot(l, 0)->seq;
    /* Seqs of kept events are consecutive. */
    if (after < first)
        return 0;
    if (after - first + 1 >= l->n)
        return l->n;
    return (size_t)(after - first + 1);
}

uint64_t exec_log_first_seq(const struct exec_log *l)
{
    return l->n ? slot(l, 0)->seq : l->next_seq;
}

uint64_t exec_log_last_seq(const struct exec_log *l)
{
    return l->next_seq - 1;
}

uint64_t exec_log_bytes_after(const struct exec_log *l, uint64_t after)
{
    size_t i = exec_log_index_after(l, after);
    if (i >= l->n)
        return 0;
    /* everything from event i on: the running total before it */
    return l->total - (slot(l, i)->cum - slot(l, i)->len - EXEC_LOG_OVERHEAD);
}

int exec_log_truncated(const struct exec_log *l)
{
    return l->dropped > 0 || l->cut_bytes > 0;
}

void exec_log_mark_truncated(struct exec_log *l)
{
    if (!exec_log_truncated(l))
        l->cut_bytes = 1;
}

int exec_log_text(const struct exec_log *l, int stream, struct sbuf *out)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct exec_event *e = slot(l, i);
        if (e->stream == stream && sbuf_append(out, e->data, e->len) < 0)
            return -1;
    }
    return 0;
}

size_t exec_log_stream_len(const struct exec_log *l, int stream)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (slot(l, i)->stream == stream)
            n += slot(l, i)->len;
    return n;
}

void exec_log_remove_stream(struct exec_log *l, int stream)
{
    for (size_t i = 0; i < l->n; i++) {
        struct exec_event *e = slot(l, i);
        if (e->stream != stream || e->len == 0)
            continue;
        /* Emptied, not removed: the seqs of kept events stay consecutive,
         * and the running totals of later events stay as they were. */
        l->bytes -= e->len;
        e->len = 0;
    }
    l->carry_len[stream] = 0;
}
