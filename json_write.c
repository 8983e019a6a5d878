/* JSON writer: escaping and the streaming json_writer (json.h). */
#include "json.h"
#include "json_internal.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writer ---- */

/* One unit of the escaping at p: returns NULL when the *adv bytes at p are
 * copied as they are, else their replacement (ubuf may hold it). */
static const char *escape_unit(const unsigned char *p, const unsigned char *end, size_t *adv,
                               char ubuf[8])
{
    unsigned char c = *p;
    *adv = 1;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\')
        return NULL;
    if (c >= 0x80) {
        uint32_t cp = 0;
        enum utf8_err e;
        *adv = json_utf8_next(p, (size_t)(end - p), &cp, &e);
        if (e == U8_OK && cp != 0x2028 && cp != 0x2029)
            return NULL;
        /* Each maximal invalid subpart becomes one U+FFFD; U+2028 and
         * U+2029 are escaped because JavaScript treats them as line
         * terminators. */
        return e != U8_OK ? "\xEF\xBF\xBD" : cp == 0x2028 ? "\\u2028" : "\\u2029";
    }
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        snprintf(ubuf, 8, "\\u%04x", c);
        return ubuf;
    }
}

int json_escape_to(struct sbuf *sb, const char *s, size_t len)
{
    size_t pos = 0;
    if (!sb || (!s && len))
        return -1;
    if (len == 0)
        return sbuf_append(sb, "\"\"", 2);
    if (sbuf_putc(sb, '"') < 0 || json_escape_part(sb, s, len, &pos, SIZE_MAX) < 0)
        return -1;
    return sbuf_putc(sb, '"');
}

int json_escape_part(struct sbuf *sb, const char *s, size_t len, size_t *pos, size_t limit)
{
    const unsigned char *p, *end, *run;
    size_t start = sb->len;

    if (!s || *pos > len)
        return *pos == len || len == 0 ? 0 : -1;
    p = (const unsigned char *)s + *pos;
    end = (const unsigned char *)s + len;
    run = p;
    while (p < end) {
        char ubuf[8];
        size_t adv, made = sb->len - start + (size_t)(p - run);
        const unsigned char *stop;
        const char *rep;
        if (made >= limit)
            break;
        /* Plain ASCII (most output) in a tight loop: one compare chain a
         * byte instead of a call and the limit sum (was most of the CPU of
         * a streamed 100 MB exec, bench/stream). */
        stop = (size_t)(end - p) > limit - made ? p + (limit - made) : end;
        while (p < stop && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p == stop)
            continue;
        rep = escape_unit(p, end, &adv, ubuf);
        if (!rep) {
            p += adv;
            continue;
        }
        if (sbuf_append(sb, run, (size_t)(p - run)) < 0 || sbuf_append(sb, rep, strlen(rep)) < 0)
            return -1;
        p += adv;
        run = p;
    }
    if (sbuf_append(sb, run, (size_t)(p - run)) < 0)
        return -1;
    *pos = (size_t)(p - (const unsigned char *)s);
    return 0;
}

size_t json_escaped_len(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t n = 2;
    while (p < end) {
        char ubuf[8];
        size_t adv;
        const char *rep = escape_unit(p, end, &adv, ubuf);
        n += rep ? strlen(rep) : adv;
        p += adv;
    }
    return n;
}

/* need_comma[] per level: W_VALUE once a value (or key) was written there,
 * W_OBJ when the level is an object.  Level 0 is the top level, which takes
 * exactly one value. */
#define W_VALUE 1u
#define W_OBJ 2u

static void w_fail(struct json_writer *w)
{
    w->failed = 1;
}

static int w_put(struct json_writer *w, const char *s, size_t n)
{
    if (sbuf_append(w->out, s, n) < 0) {
        w_fail(w);
        return -1;
    }
    return 0;
}

static int w_ok(struct json_writer *w)
{
    if (w->failed)
        return 0;
    if (!w->out || w->depth < 0 || w->depth > JSON_WRITER_MAX_DEPTH) {
        w_fail(w);
        return 0;
    }
    return 1;
}

/* Checks that a value may come next here and writes the separating comma. */
static int w_before_value(struct json_writer *w)
{
    unsigned char *st;
    if (!w_ok(w))
        return -1;
    st = &w->need_comma[w->depth];
    if (*st & W_OBJ) {
        if (!w->after_key) {
            w_fail(w);
            return -1;
        }
        w->after_key = 0;
        return 0;
    }
    if (w->depth == 0 && (*st & W_VALUE)) {
        w_fail(w);
        return -1;
    }
    if ((*st & W_VALUE) && w_put(w, ",", 1) < 0)
        return -1;
    *st |= W_VALUE;
    return 0;
}

void json_w_init(struct json_writer *w, struct sbuf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

static void w_begin(struct json_writer *w, int is_obj)
{
    if (w_before_value(w) < 0)
        return;
    if (w->depth >= JSON_WRITER_MAX_DEPTH) {
        w_fail(w);
        return;
    }
    if (w_put(w, is_obj ? "{" : "[", 1) < 0)
        return;
    w->depth++;
    w->need_comma[w->depth] = is_obj ? W_OBJ : 0;
    w->after_key = 0;
}

static void w_end(struct json_writer *w, int is_obj)
{
    unsigned char st;
    if (!w_ok(w))
        return;
    st = w->need_comma[w->depth];
    if (w->depth == 0 || !(st & W_OBJ) != !is_obj || w->after_key) {
        w_fail(w);
        return;
    }
    if (w_put(w, is_obj ? "}" : "]", 1) < 0)
        return;
    w->depth--;
}

void json_w_obj_begin(struct json_writer *w)
{
    w_begin(w, 1);
}

void json_w_obj_end(struct json_writer *w)
{
    w_end(w, 1);
}

void json_w_arr_begin(struct json_writer *w)
{
    w_begin(w, 0);
}

void json_w_arr_end(struct json_writer *w)
{
    w_end(w, 0);
}

void json_w_key(struct json_writer *w, const char *key)
{
    unsigned char *st;
    if (!w_ok(w))
        return;
    st = &w->need_comma[w->depth];
    if (!key || !(*st & W_OBJ) || w->after_key) {
        w_fail(w);
        return;
    }
    if ((*st & W_VALUE) && w_put(w, ",", 1) < 0)
        return;
    if (json_escape_to(w->out, key, strlen(key)) < 0 || sbuf_putc(w->out, ':') < 0) {
        w_fail(w);
        return;
    }
    *st |= W_VALUE;
    w->after_key = 1;
}

void json_w_str(struct json_writer *w, const char *s, size_t len)
{
    if (!s && len) {
        w_fail(w);
        return;
    }
    if (w_before_value(w) < 0)
        return;
    if (json_escape_to(w->out, s, len) < 0)
        w_fail(w);
}

void json_w_cstr(struct json_writer *w, const char *s)
{
    if (!s) {
        w_fail(w);
        return;
    }
    json_w_str(w, s, strlen(s));
}

void json_w_int(struct json_writer *w, int64_t v)
{
    if (w_before_value(w) < 0)
        return;
    if (sbuf_appendf(w->out, "%" PRId64, v) < 0)
        w_fail(w);
}

void json_w_uint(struct json_writer *w, uint64_t v)
{
    if (w_before_value(w) < 0)
        return;
    if (sbuf_appendf(w->out, "%" PRIu64, v) < 0)
        w_fail(w);
}

void json_w_double(struct json_writer *w, double v)
{
    char tmp[40];
    int prec;
    if (w_before_value(w) < 0)
        return;
    if (!isfinite(v)) {
        w_put(w, "null", 4);
        return;
    }
    /* The shortest %g form that reads back as the same double; %.17g always
     * does.  %g output of a finite value is valid JSON number syntax
     * ("1e+300", "-0", "0.1"); Boxer never calls setlocale(). */
    for (prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    w_put(w, tmp, strlen(tmp));
}

void json_w_bool(struct json_writer *w, int v)
{
    if (w_before_value(w) < 0)
        return;
    if (v)
        w_put(w, "true", 4);
    else
        w_put(w, "false", 5);
}

void json_w_null(struct json_writer *w)
{
    if (w_before_value(w) < 0)
        return;
    w_put(w, "null", 4);
}

/* ---- members: key and value in one call ---- */

void json_w_kv_cstr(struct json_writer *w, const char *key, const char *s)
{
    json_w_key(w, key);
    json_w_cstr(w, s);
}

void json_w_kv_int(struct json_writer *w, const char *key, int64_t v)
{
    json_w_key(w, key);
    json_w_int(w, v);
}

void json_w_kv_uint(struct json_writer *w, const char *key, uint64_t v)
{
    json_w_key(w, key);
    json_w_uint(w, v);
}

void json_w_kv_double(struct json_writer *w, const char *key, double v)
{
    json_w_key(w, key);
    json_w_double(w, v);
}

void json_w_kv_bool(struct json_writer *w, const char *key, int v)
{
    json_w_key(w, key);
    json_w_bool(w, v);
}
