/* JSON parser (the writer is in json_write.c).
 *
 * The parser is iterative: nesting is tracked in an explicit frame stack
 * bounded by lim->max_depth, so a hostile document cannot exhaust the C
 * stack whatever limit the caller picks.  Children of every open container
 * are collected on one scratch stack (bounded by lim->max_values) and copied
 * into the document arena in one piece when the container closes, so arrays
 * and objects end up as plain C arrays.  Every read is checked against the
 * end of the input: nothing relies on a NUL terminator.
 *
 * Error offsets are 0-based byte offsets into the input.
 */
#include "json.h"
#include "json_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

#define ARENA_MIN_BLOCK ((size_t)1024)
#define ARENA_MAX_BLOCK ((size_t)4 << 20)

struct arena_block {
    struct arena_block *next;
    size_t cap;
    size_t used;
    max_align_t data[]; /* max_align_t so the first allocation is aligned */
};

struct json_doc {
    struct arena_block *blocks; /* head: the block bump allocation uses */
    size_t next_size;
    struct json_value root;
};

static const struct json_limits json_default_limits = {
    .max_bytes = (size_t)10 << 20,
    .max_depth = 32,
    .max_values = 200000,
};

/* Returns `size` bytes aligned to `align` (a power of two), NULL when out of
 * memory.  Requests bigger than the growing block size get a block of their
 * own, linked behind the head so the head's free space is not abandoned. */
static void *arena_alloc(struct json_doc *d, size_t size, size_t align)
{
    struct arena_block *b = d->blocks, *nb;
    size_t cap;

    if (b) {
        size_t off = (b->used + align - 1) & ~(align - 1);
        if (off <= b->cap && size <= b->cap - off) {
            b->used = off + size;
            return (char *)b->data + off;
        }
    }
    cap = size > d->next_size ? size : d->next_size;
    if (cap > SIZE_MAX - sizeof(*nb))
        return NULL;
    nb = malloc(sizeof(*nb) + cap);
    if (!nb)
        return NULL;
    nb->cap = cap;
    nb->used = size;
    if (size > d->next_size && b) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        d->blocks = nb;
        if (d->next_size < ARENA_MAX_BLOCK)
            d->next_size *= 2;
    }
    return nb->data;
}

/* Gives back the unused tail of the most recent allocation `p` (of `had`
 * bytes, now needing only `need`) when it sits at the end of the head block. */
static void arena_trim(struct json_doc *d, void *p, size_t had, size_t need)
{
    struct arena_block *b = d->blocks;
    if (b && (char *)p + had == (char *)b->data + b->used)
        b->used -= had - need;
}

/* ---- UTF-8 ---- */

/* Decodes one sequence at s[0..n), n >= 1, following the well-formed byte
 * sequences of Unicode table 3-7.  Returns the sequence length when *e is
 * U8_OK; otherwise the length of the maximal subpart (the longest prefix of
 * a well-formed sequence, at least 1) that a replacement character stands
 * for.  Never reads beyond s[n-1]. */
size_t json_utf8_next(const unsigned char *s, size_t n, uint32_t *cp, enum utf8_err *e)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need, i;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        *e = U8_OK;
        return 1;
    }
    if (c < 0xC2) {
        *e = c < 0xC0 ? U8_CONT : U8_OVERLONG;
        return 1;
    }
    if (c < 0xE0) {
        need = 1;
        v = c & 0x1Fu;
    } else if (c < 0xF0) {
        need = 2;
        v = c & 0x0Fu;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 3;
        v = c & 0x07u;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *e = c < 0xF8 ? U8_TOOBIG : U8_BADBYTE;
        return 1;
    }
    for (i = 1; i <= need; i++) {
        unsigned char b;
        if (i >= n) {
            *e = U8_TRUNC;
            return i;
        }
        b = s[i];
        if (b < 0x80 || b > 0xBF) {
            *e = U8_TRUNC;
            return i;
        }
        if (i == 1 && (b < lo || b > hi)) {
            /* A continuation byte outside the lead's range: the lead alone
             * is the maximal subpart. */
            if (c == 0xE0 || c == 0xF0)
                *e = U8_OVERLONG;
            else if (c == 0xED)
                *e = U8_SURROGATE;
            else
                *e = U8_TOOBIG;
            return 1;
        }
        v = v << 6 | (b & 0x3Fu);
    }
    *cp = v;
    *e = U8_OK;
    return need + 1;
}

static const char *utf8_err_str(enum utf8_err e)
{
    switch (e) {
    case U8_CONT:
        return "unexpected continuation byte";
    case U8_BADBYTE:
        return "invalid byte";
    case U8_OVERLONG:
        return "overlong encoding";
    case U8_SURROGATE:
        return "surrogate code point encoded directly";
    case U8_TOOBIG:
        return "code point above U+10FFFF";
    case U8_TRUNC:
        return "truncated sequence";
    case U8_OK:
        break;
    }
    return "ok";
}

static size_t utf8_put(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- parser ---- */

struct scratch_ent {
    struct json_member m; /* key unused for array children */
    size_t key_off;
};

struct frame {
    size_t base; /* first scratch entry of this container */
    int is_obj;
};

struct parser {
    const unsigned char *buf, *p, *end;
    const struct json_limits *lim;
    struct json_doc *doc;
    struct bx_err *err;
    size_t nvalues;
    struct scratch_ent *scr;
    size_t nscr, capscr;
    struct frame *frames;
    size_t nframes, capframes;
    const struct scratch_ent **sortv;
    size_t capsort;
    char *numbuf;
    size_t capnum;
};

static int perr(struct parser *ps, const unsigned char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct parser *ps, const unsigned char *at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return bx_err_set(ps->err, BX_E_BAD_REQUEST, 0, "invalid JSON at byte %zu: %s", (size_t)(at - ps->buf), msg);
}

static int oom(struct parser *ps)
{
    return bx_err_set(ps->err, BX_E_INTERNAL, ENOMEM, "out of memory parsing JSON");
}

/* Grows a heap array to hold at least `need` elements; NULL on overflow or
 * out of memory (the old array stays valid and owned by the caller). */
static void *grow_array(void *arr, size_t *cap, size_t need, size_t elsize)
{
    size_t n = *cap ? *cap : 16;
    void *p;
    if (need <= *cap)
        return arr;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return NULL;
        n *= 2;
    }
    if (n > SIZE_MAX / elsize)
        return NULL;
    p = realloc(arr, n * elsize);
    if (!p)
        return NULL;
    *cap = n;
    return p;
}

/* Describes the byte at `at` for an error message without echoing raw
 * control or non-ASCII bytes. */
static const char *describe(const struct parser *ps, const unsigned char *at, char buf[16])
{
    if (at >= ps->end)
        return "end of input";
    if (*at > 0x20 && *at < 0x7F)
        snprintf(buf, 16, "'%c'", *at);
    else
        snprintf(buf, 16, "byte 0x%02x", *at);
    return buf;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const unsigned char *s, uint32_t *out)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        unsigned char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Parses the string whose opening quote is at ps->p into the arena. */
static int parse_string(struct parser *ps, char **out, size_t *out_len)
{
    const unsigned char *open = ps->p, *q = ps->p + 1, *s, *close;
    unsigned char *dst, *o;
    size_t span;

    /* Pass 1: find the closing quote so the decoded copy can be sized (it is
     * never longer than the raw span: every escape shrinks or keeps size). */
    while (q < ps->end && *q != '"') {
        if (*q < 0x20)
            return perr(ps, q, "control character 0x%02x in string", *q);
        if (*q == '\\') {
            if (ps->end - q < 2) {
                q = ps->end;
                break;
            }
            q++;
        }
        q++;
    }
    if (q >= ps->end)
        return perr(ps, open, "unterminated string");
    close = q;
    span = (size_t)(close - (open + 1));
    dst = arena_alloc(ps->doc, span + 1, 1);
    if (!dst)
        return oom(ps);

    /* Pass 2: validate and decode; every read stays below `close`. */
    o = dst;
    s = open + 1;
    while (s < close) {
        unsigned char c = *s;
        if (c == '\\') {
            uint32_t cp, lo;
            c = s[1]; /* pass 1 guaranteed a byte after every backslash */
            switch (c) {
            case '"':
            case '\\':
            case '/':
                *o++ = c;
                break;
            case 'b':
                *o++ = '\b';
                break;
            case 'f':
                *o++ = '\f';
                break;
            case 'n':
                *o++ = '\n';
                break;
            case 'r':
                *o++ = '\r';
                break;
            case 't':
                *o++ = '\t';
                break;
            case 'u':
                if (close - s < 6 || hex4(s + 2, &cp) < 0)
                    return perr(ps, s, "invalid \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return perr(ps, s, "lone surrogate escape \\u%04X", (unsigned)cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (close - s < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) < 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return perr(ps, s, "lone surrogate escape \\u%04X", (unsigned)cp);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s += 6;
                }
                o += utf8_put(o, cp);
                s += 4;
                break;
            default:
                return perr(ps, s, "invalid escape %s", describe(ps, s + 1, (char[16]){0}));
            }
            s += 2;
        } else if (c < 0x80) {
            *o++ = c;
            s++;
        } else {
            uint32_t cp;
            enum utf8_err e;
            size_t n = json_utf8_next(s, (size_t)(close - s), &cp, &e);
            if (e != U8_OK)
                return perr(ps, s, "invalid UTF-8 in string: %s", utf8_err_str(e));
            memcpy(o, s, n);
            o += n;
            s += n;
        }
    }
    *o = '\0';
    arena_trim(ps->doc, dst, span + 1, (size_t)(o - dst) + 1);
    *out = (char *)dst;
    *out_len = (size_t)(o - dst);
    ps->p = close + 1;
    return 0;
}

static int parse_number(struct parser *ps, struct json_value *v)
{
    const unsigned char *start = ps->p, *q = ps->p, *end = ps->end;
    int neg = 0, is_int = 1, overflow = 0;
    uint64_t mag = 0;
    size_t toklen;

    if (*q == '-') {
        neg = 1;
        q++;
    }
    if (q == end || !is_digit(*q))
        return perr(ps, q, "expected digit in number, got %s", describe(ps, q, (char[16]){0}));
    if (*q == '0') {
        q++;
        if (q < end && is_digit(*q))
            return perr(ps, q - 1, "leading zero in number");
    } else {
        while (q < end && is_digit(*q)) {
            unsigned d = (unsigned)(*q - '0');
            /* Accumulates only while it fits: no wrap-around, no UB. */
            if (mag > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                mag = mag * 10 + d;
            q++;
        }
    }
    if (q < end && *q == '.') {
        is_int = 0;
        q++;
        if (q == end || !is_digit(*q))
            return perr(ps, q, "expected digit after decimal point, got %s",
                        describe(ps, q, (char[16]){0}));
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        is_int = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q == end || !is_digit(*q))
            return perr(ps, q, "expected digit in exponent, got %s",
                        describe(ps, q, (char[16]){0}));
        while (q < end && is_digit(*q))
            q++;
    }
    toklen = (size_t)(q - start);
    ps->p = q;

    v->type = JSON_NUMBER;
    v->u.num.is_int = 0;
    v->u.num.i = 0;
    if (is_int && !overflow) {
        if (!neg && mag <= (uint64_t)INT64_MAX) {
            v->u.num.is_int = 1;
            v->u.num.i = (int64_t)mag;
        } else if (neg && mag <= (uint64_t)INT64_MAX + 1) {
            v->u.num.is_int = 1;
            /* -(mag - 1) - 1 stays in range for mag == 2^63. */
            v->u.num.i = mag ? -(int64_t)(mag - 1) - 1 : 0;
        }
    }
    if (v->u.num.is_int) {
        /* Exact conversion rounded to nearest, same result strtod gives. */
        v->u.num.d = (double)v->u.num.i;
        if (neg && mag == 0)
            v->u.num.d = -0.0;
        return 0;
    }

    {
        /* strtod needs a NUL terminator the input does not have: convert a
         * bounded copy of exactly the validated token.  The token matches
         * the JSON grammar, a subset of what strtod accepts, so strtod
         * consumes all of it; underflow to 0 or a subnormal is accepted,
         * overflow to infinity is refused below.  Boxer never calls
         * setlocale(), so the decimal point is '.'. */
        char small[64], *nb = small, *endp;
        double d;
        if (toklen >= sizeof(small)) {
            void *g = grow_array(ps->numbuf, &ps->capnum, toklen + 1, 1);
            if (!g)
                return oom(ps);
            ps->numbuf = g;
            nb = ps->numbuf;
        }
        memcpy(nb, start, toklen);
        nb[toklen] = '\0';
        d = strtod(nb, &endp);
        if (endp != nb + toklen)
            return perr(ps, start, "invalid number");
        if (!isfinite(d))
            return perr(ps, start, "number out of range");
        v->u.num.d = d;
    }
    return 0;
}

static int parse_literal(struct parser *ps, struct json_value *v)
{
    static const struct {
        const char *s;
        size_t n;
        enum json_type t;
        int b;
    } lits[] = {
        {"true", 4, JSON_BOOL, 1},
        {"false", 5, JSON_BOOL, 0},
        {"null", 4, JSON_NULL, 0},
    };
    size_t i, avail = (size_t)(ps->end - ps->p);
    for (i = 0; i < BX_ARRAY_LEN(lits); i++) {
        if (*ps->p != (unsigned char)lits[i].s[0])
            continue;
        if (avail < lits[i].n || memcmp(ps->p, lits[i].s, lits[i].n) != 0)
            return perr(ps, ps->p, "invalid literal, expected '%s'", lits[i].s);
        v->type = lits[i].t;
        if (lits[i].t == JSON_BOOL)
            v->u.boolean = lits[i].b;
        ps->p += lits[i].n;
        return 0;
    }
    return perr(ps, ps->p, "unexpected %s, expected a value", describe(ps, ps->p, (char[16]){0}));
}

static int parse_scalar(struct parser *ps, struct json_value *v)
{
    unsigned char c = *ps->p;
    memset(v, 0, sizeof(*v));
    if (c == '"') {
        v->type = JSON_STRING;
        return parse_string(ps, &v->u.str.s, &v->u.str.len);
    }
    if (c == '-' || is_digit(c))
        return parse_number(ps, v);
    return parse_literal(ps, v);
}

static int push_scratch(struct parser *ps, struct scratch_ent **out)
{
    void *g = grow_array(ps->scr, &ps->capscr, ps->nscr + 1, sizeof(*ps->scr));
    if (!g)
        return oom(ps);
    ps->scr = g;
    *out = &ps->scr[ps->nscr++];
    memset(*out, 0, sizeof(**out));
    return 0;
}

/* Parses `"key" :` and opens a scratch entry for the member. */
static int parse_key(struct parser *ps)
{
    struct scratch_ent *ent;
    char *key;
    size_t key_len, key_off;

    skip_ws(ps);
    if (ps->p == ps->end || *ps->p != '"')
        return perr(ps, ps->p, "expected string key, got %s", describe(ps, ps->p, (char[16]){0}));
    key_off = (size_t)(ps->p - ps->buf);
    if (parse_string(ps, &key, &key_len) < 0)
        return -1;
    skip_ws(ps);
    if (ps->p == ps->end || *ps->p != ':')
        return perr(ps, ps->p, "expected ':' after key, got %s",
                    describe(ps, ps->p, (char[16]){0}));
    ps->p++;
    if (push_scratch(ps, &ent) < 0)
        return -1;
    ent->m.key = key;
    ent->m.key_len = key_len;
    ent->key_off = key_off;
    return 0;
}

static int key_cmp(const struct scratch_ent *a, const struct scratch_ent *b)
{
    size_t n = a->m.key_len < b->m.key_len ? a->m.key_len : b->m.key_len;
    int c = memcmp(a->m.key, b->m.key, n);
    if (c)
        return c;
    if (a->m.key_len != b->m.key_len)
        return a->m.key_len < b->m.key_len ? -1 : 1;
    return 0;
}

static int key_sort_cmp(const void *x, const void *y)
{
    const struct scratch_ent *a = *(const struct scratch_ent *const *)x;
    const struct scratch_ent *b = *(const struct scratch_ent *const *)y;
    int c = key_cmp(a, b);
    if (c)
        return c;
    /* Ties by document order, so the later duplicate is found. */
    return a < b ? -1 : a > b;
}

static int dup_error(struct parser *ps, const struct scratch_ent *e)
{
    char name[68];
    size_t i, n = e->m.key_len < 64 ? e->m.key_len : 64;
    /* Only printable ASCII reaches the message; the key is client data. */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)e->m.key[i];
        name[i] = c >= 0x20 && c < 0x7F && c != '"' && c != '\\' ? (char)c : '?';
    }
    if (n < e->m.key_len) {
        memcpy(name + n, "...", 3);
        n += 3;
    }
    name[n] = '\0';
    return perr(ps, ps->buf + e->key_off, "duplicate key \"%s\"", name);
}

/* Finds the first member (in document order) whose key already appeared
 * earlier in the same object.  Sorting keeps this O(n log n) on a hostile
 * object with many keys; small objects are compared pairwise. */
static int check_dups(struct parser *ps, const struct scratch_ent *m, size_t n)
{
    const struct scratch_ent *first = NULL;
    size_t i, j;

    if (n < 2)
        return 0;
    if (n <= 16) {
        for (j = 1; j < n; j++)
            for (i = 0; i < j; i++)
                if (key_cmp(&m[i], &m[j]) == 0)
                    return dup_error(ps, &m[j]);
        return 0;
    }
    {
        void *g = grow_array(ps->sortv, &ps->capsort, n, sizeof(*ps->sortv));
        if (!g)
            return oom(ps);
        ps->sortv = g;
    }
    for (i = 0; i < n; i++)
        ps->sortv[i] = &m[i];
    qsort(ps->sortv, n, sizeof(*ps->sortv), key_sort_cmp);
    for (i = 1; i < n; i++)
        if (key_cmp(ps->sortv[i - 1], ps->sortv[i]) == 0 && (!first || ps->sortv[i] < first))
            first = ps->sortv[i];
    return first ? dup_error(ps, first) : 0;
}

/* Turns the scratch entries of the innermost container into its value. */
static int close_container(struct parser *ps, struct json_value *v)
{
    struct frame *f = &ps->frames[ps->nframes - 1];
    const struct scratch_ent *ents = ps->scr + f->base;
    size_t i, n = ps->nscr - f->base;

    memset(v, 0, sizeof(*v));
    if (f->is_obj) {
        struct json_member *mem;
        if (check_dups(ps, ents, n) < 0)
            return -1;
        v->type = JSON_OBJECT;
        if (n) {
            /* n*sizeof cannot overflow: the scratch array of n larger
             * entries was allocated. */
            mem = arena_alloc(ps->doc, n * sizeof(*mem), alignof(struct json_member));
            if (!mem)
                return oom(ps);
            for (i = 0; i < n; i++)
                mem[i] = ents[i].m;
            v->u.obj.members = mem;
            v->u.obj.n = n;
        }
    } else {
        struct json_value *items;
        v->type = JSON_ARRAY;
        if (n) {
            items = arena_alloc(ps->doc, n * sizeof(*items), alignof(struct json_value));
            if (!items)
                return oom(ps);
            for (i = 0; i < n; i++)
                items[i] = ents[i].m.value;
            v->u.arr.items = items;
            v->u.arr.n = n;
        }
    }
    ps->nscr = f->base;
    ps->nframes--;
    return 0;
}

static int parse_doc(struct parser *ps, struct json_value *root)
{
    size_t max_depth = ps->lim->max_depth > 0 ? (size_t)ps->lim->max_depth : 0;
    struct json_value v;
    int have = 0;

    for (;;) {
        if (!have) {
            unsigned char c;
            skip_ws(ps);
            if (ps->p == ps->end)
                return perr(ps, ps->p,
                            ps->nframes ? "unexpected end of input, expected a value"
                                        : "empty document");
            if (ps->nvalues >= ps->lim->max_values)
                return perr(ps, ps->p, "more than %zu values", ps->lim->max_values);
            ps->nvalues++;
            c = *ps->p;
            if (c == '[' || c == '{') {
                int is_obj = c == '{';
                if (ps->nframes >= max_depth)
                    return perr(ps, ps->p, "nesting deeper than %zu", max_depth);
                ps->p++;
                skip_ws(ps);
                if (ps->p < ps->end && *ps->p == (is_obj ? '}' : ']')) {
                    ps->p++;
                    memset(&v, 0, sizeof(v));
                    v.type = is_obj ? JSON_OBJECT : JSON_ARRAY;
                    have = 1;
                } else {
                    void *g = grow_array(ps->frames, &ps->capframes, ps->nframes + 1,
                                         sizeof(*ps->frames));
                    if (!g)
                        return oom(ps);
                    ps->frames = g;
                    ps->frames[ps->nframes].base = ps->nscr;
                    ps->frames[ps->nframes].is_obj = is_obj;
                    ps->nframes++;
                    if (is_obj && parse_key(ps) < 0)
                        return -1;
                    continue;
                }
            } else {
                if (parse_scalar(ps, &v) < 0)
                    return -1;
                have = 1;
            }
        }

        /* A complete value v: attach it to the innermost container. */
        {
            struct frame *f;
            unsigned char close;
            if (ps->nframes == 0) {
                *root = v;
                return 0;
            }
            f = &ps->frames[ps->nframes - 1];
            close = f->is_obj ? '}' : ']';
            if (f->is_obj) {
                ps->scr[ps->nscr - 1].m.value = v;
            } else {
                struct scratch_ent *ent;
                if (push_scratch(ps, &ent) < 0)
                    return -1;
                ent->m.value = v;
            }
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                if (f->is_obj && parse_key(ps) < 0)
                    return -1;
                have = 0;
            } else if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                if (close_container(ps, &v) < 0)
                    return -1;
            } else {
                return perr(ps, ps->p, "expected ',' or '%c', got %s", close,
                            describe(ps, ps->p, (char[16]){0}));
            }
        }
    }
}

int json_parse(const char *buf, size_t len, const struct json_limits *lim, struct json_doc **out,
               struct bx_err *err)
{
    struct parser ps;
    struct json_doc *doc = NULL;
    struct json_value root;
    int rc;

    if (!out)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "json_parse: no output pointer");
    *out = NULL;
    if (!buf && len)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "json_parse: NULL buffer");
    if (!buf)
        buf = ""; /* len == 0: avoids arithmetic on a NULL pointer */
    if (!lim)
        lim = &json_default_limits;
    if (len > lim->max_bytes)
        return bx_err_set(err, BX_E_TOO_LARGE, 0, "JSON document of %zu bytes exceeds the limit of %zu bytes",
                          len, lim->max_bytes);

    doc = calloc(1, sizeof(*doc));
    if (!doc)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory parsing JSON");
    /* Roughly the tree size of a typical document, so small ones need a
     * single block; later blocks double up to ARENA_MAX_BLOCK. */
    doc->next_size = len < ARENA_MIN_BLOCK / 2   ? ARENA_MIN_BLOCK
                     : len < ARENA_MAX_BLOCK / 2 ? len * 2
                                                 : ARENA_MAX_BLOCK;

    memset(&ps, 0, sizeof(ps));
    ps.buf = (const unsigned char *)buf;
    ps.p = ps.buf;
    ps.end = ps.buf + len;
    ps.lim = lim;
    ps.doc = doc;
    ps.err = err;

    rc = parse_doc(&ps, &root);
    if (rc == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            rc = perr(&ps, ps.p, "unexpected %s after the JSON value",
                      describe(&ps, ps.p, (char[16]){0}));
    }
    free(ps.scr);
    free(ps.frames);
    free(ps.sortv);
    free(ps.numbuf);
    if (rc < 0) {
        json_doc_free(&doc);
        return -1;
    }
    doc->root = root;
    *out = doc;
    return 0;
}

const struct json_value *json_doc_root(const struct json_doc *doc)
{
    return doc ? &doc->root : NULL;
}

void json_doc_free(struct json_doc **doc)
{
    struct arena_block *b, *next;
    if (!doc || !*doc)
        return;
    for (b = (*doc)->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
    free(*doc);
    *doc = NULL;
}

const struct json_value *json_get(const struct json_value *obj, const char *key)
{
    size_t i, n;
    if (!obj || !key || obj->type != JSON_OBJECT)
        return NULL;
    n = strlen(key);
    for (i = 0; i < obj->u.obj.n; i++) {
        const struct json_member *m = &obj->u.obj.members[i];
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return &m->value;
    }
    return NULL;
}

int json_str_has_nul(const struct json_value *v)
{
    if (!v || v->type != JSON_STRING)
        return 0;
    return memchr(v->u.str.s, '\0', v->u.str.len) != NULL;
}

bool json_key_is(const struct json_member *m, const char *name)
{
    size_t n = strlen(name);
    return m->key_len == n && memcmp(m->key, name, n) == 0;
}

int json_obj_check_keys(const struct json_value *obj, const char *const *names,
                        const struct json_member **bad)
{
    for (size_t i = 0; obj->type == JSON_OBJECT && i < obj->u.obj.n; i++) {
        const struct json_member *m = &obj->u.obj.members[i];
        bool known = false;
        for (size_t k = 0; names[k] && !known; k++)
            known = json_key_is(m, names[k]);
        if (!known) {
            if (bad)
                *bad = m;
            return -1;
        }
    }
    return 0;
}
