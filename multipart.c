/* Streaming multipart/form-data parser (RFC 7578 / RFC 2046).
 *
 * The body is a byte stream scanned once (memmem for the delimiter in part
 * data, byte by byte elsewhere); the parser never looks back into bytes of an
 * earlier feed.  The only bytes it
 * holds back across feeds are a partial match of the delimiter
 * "\r\n--" boundary, and those need no buffer of their own: a partial match
 * is by definition a prefix of the delimiter, so `match` (its length) is
 * enough to replay it as data if the match fails.
 *
 * Why the delimiter matcher needs no KMP table: boundaries are validated to
 * RFC 2046 bchars, which exclude CR, so '\r' occurs in the delimiter only at
 * position 0.  After a mismatch, no proper suffix of the matched prefix can
 * start a new match (it would have to begin with '\r'); the only possible
 * restart is the mismatching byte itself when it is '\r'.
 *
 * The very first delimiter may lack its leading CRLF ("--boundary" at the
 * start of the body), so the parser starts as if "\r\n" had just been seen.
 *
 * Part headers are kept one line at a time in a fixed buffer; the bytes of a
 * part's header block (its lines with their CRLFs and the closing blank line)
 * are counted against MP_MAX_PART_HEADER, so a line can never outgrow the
 * buffer.  Transport padding after a boundary is bounded by the same number.
 * Everything the parser owns is allocated once in mp_new; names are passed
 * to callbacks as bytes (NUL-free, no CTLs, possibly non-UTF-8).
 */
#include "multipart.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "util.h"

enum mp_state {
    ST_PREAMBLE,    /* before the first delimiter; bytes are dropped */
    ST_DATA,        /* inside a part's content */
    ST_AFTER_DELIM, /* right after a delimiter: "--" or padding + CRLF */
    ST_DASH2,       /* saw the first '-' of the closing "--" */
    ST_PAD,         /* in transport padding after a delimiter */
    ST_PAD_LF,      /* saw CR after a delimiter, want LF */
    ST_HEADERS,     /* inside a part header line */
    ST_HEADER_LF,   /* saw CR in the header block, want LF */
    ST_EPILOGUE,    /* closing delimiter seen; rest ignored */
    ST_FAILED,      /* an error was reported; the parser is dead */
};

#define MP_DELIM_MAX (4 + MP_MAX_BOUNDARY)

struct mp_parser {
    struct mp_callbacks cb;
    void *ctx;
    enum mp_state state;
    size_t match; /* delimiter bytes matched and held back */
    size_t delim_len;
    unsigned parts;
    size_t hdr_used; /* header-block bytes of the current part */
    size_t line_len;
    int have_cd;
    int has_filename;
    size_t name_len;
    char delim[MP_DELIM_MAX];
    char name[MP_MAX_NAME + 1];
    char line[MP_MAX_PART_HEADER];
};

/* ---- character classes and a small cursor for header values ---- */

/* RFC 2046 bchars, space included (it may not be last). */
static int is_bchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("'()+_,-./:=? ", c) != NULL;
}

static int ci_equal(const char *s, size_t n, const char *lit)
{
    size_t i;
    if (strlen(lit) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (bx_ascii_lower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

struct cur {
    const char *s;
    size_t n;
    size_t i;
};

static void skip_ows(struct cur *c)
{
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t'))
        c->i++;
}

static int take_token(struct cur *c, const char **tok, size_t *tok_len)
{
    size_t start = c->i;
    while (c->i < c->n && bx_is_tchar((unsigned char)c->s[c->i]))
        c->i++;
    *tok = c->s + start;
    *tok_len = c->i - start;
    return *tok_len > 0 ? 0 : -1;
}

/* Parses a token or quoted-string value.  Up to `max` unescaped bytes go to
 * out (if not NULL); longer values set *too_long but still parse, so a value
 * never overflows out whatever the input.  Returns 0 or -1 on bad syntax. */
static int take_value(struct cur *c, char *out, size_t max, size_t *out_len, int *too_long)
{
    size_t len = 0;
    *too_long = 0;
    if (c->i < c->n && c->s[c->i] == '"') {
        c->i++;
        for (;;) {
            unsigned char ch;
            if (c->i >= c->n)
                return -1; /* unterminated */
            ch = (unsigned char)c->s[c->i++];
            if (ch == '"')
                break;
            if (ch == '\\') {
                if (c->i >= c->n)
                    return -1;
                ch = (unsigned char)c->s[c->i++];
            }
            /* No CTLs except HTAB, inside quotes or escaped. */
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return -1;
            if (len < max) {
                if (out)
                    out[len] = (char)ch;
                len++;
            } else {
                *too_long = 1;
            }
        }
    } else {
        const char *tok;
        size_t tok_len, k;
        if (take_token(c, &tok, &tok_len) < 0)
            return -1;
        for (k = 0; k < tok_len; k++) {
            if (len < max) {
                if (out)
                    out[len] = tok[k];
                len++;
            } else {
                *too_long = 1;
            }
        }
    }
    *out_len = len;
    return 0;
}

/* Moves to the next `; name=` of a parameter list and returns 1 with the
 * name, 0 at the end of the list (a trailing ';' is tolerated), -1 on bad
 * syntax.  The cursor is left on the value. */
static int next_param(struct cur *c, const char **pname, size_t *pname_len)
{
    skip_ows(c);
    if (c->i == c->n)
        return 0;
    if (c->s[c->i] != ';')
        return -1;
    c->i++;
    skip_ows(c);
    if (c->i == c->n)
        return 0;
    if (take_token(c, pname, pname_len) < 0)
        return -1;
    if (c->i >= c->n || c->s[c->i] != '=')
        return -1;
    c->i++;
    return 1;
}

static int boundary_valid(const char *b, size_t len)
{
    size_t i;
    if (len < 1 || len > MP_MAX_BOUNDARY || b[len - 1] == ' ')
        return 0;
    for (i = 0; i < len; i++)
        if (!is_bchar((unsigned char)b[i]))
            return 0;
    return 1;
}

int mp_boundary_from_content_type(const char *ct, size_t ct_len, char *out, size_t *out_len,
                                  struct bx_err *err)
{
    struct cur c = {ct, ct_len, 0};
    const char *type, *sub, *pn;
    size_t type_len, sub_len, pn_len, blen = 0;
    int found = 0, too_long, r;
    char val[MP_MAX_BOUNDARY + 1];

    if (!ct)
        c.n = 0;
    skip_ows(&c);
    if (take_token(&c, &type, &type_len) < 0 || c.i >= c.n || c.s[c.i] != '/')
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "Content-Type must be multipart/form-data");
    c.i++;
    if (take_token(&c, &sub, &sub_len) < 0 || !ci_equal(type, type_len, "multipart") ||
        !ci_equal(sub, sub_len, "form-data"))
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "Content-Type must be multipart/form-data");
    while ((r = next_param(&c, &pn, &pn_len)) == 1) {
        int is_boundary = ci_equal(pn, pn_len, "boundary");
        size_t vlen;
        if (take_value(&c, is_boundary ? val : NULL, MP_MAX_BOUNDARY, &vlen, &too_long) < 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed Content-Type parameters");
        if (!is_boundary)
            continue;
        if (found)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "Content-Type has more than one boundary");
        found = 1;
        if (too_long)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "multipart boundary longer than %d characters",
                              MP_MAX_BOUNDARY);
        blen = vlen;
    }
    if (r < 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed Content-Type parameters");
    if (!found)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "multipart/form-data Content-Type without a boundary");
    if (!boundary_valid(val, blen))
        return bx_err_set(err, BX_E_BAD_REQUEST, 0,
                          "invalid multipart boundary (1 to %d RFC 2046 characters, "
                          "not ending in a space)",
                          MP_MAX_BOUNDARY);
    memcpy(out, val, blen);
    out[blen] = '\0';
    *out_len = blen;
    return 0;
}

int mp_new(struct mp_parser **out, const char *boundary, size_t boundary_len,
           const struct mp_callbacks *cb, void *ctx, struct bx_err *err)
{
    struct mp_parser *p;

    *out = NULL;
    /* The delimiter matcher relies on the boundary holding no CR (see top). */
    if (!boundary || !boundary_valid(boundary, boundary_len))
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "invalid multipart boundary");
    p = calloc(1, sizeof(*p));
    if (!p)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory for multipart parser");
    if (cb)
        p->cb = *cb;
    p->ctx = ctx;
    memcpy(p->delim, "\r\n--", 4);
    memcpy(p->delim + 4, boundary, boundary_len);
    p->delim_len = 4 + boundary_len;
    p->state = ST_PREAMBLE;
    p->match = 2; /* allow "--boundary" at the very start of the body */
    *out = p;
    return 0;
}

void mp_free(struct mp_parser **p)
{
    if (p && *p) {
        free(*p);
        *p = NULL;
    }
}

/* Records the failure so later calls cannot resume a half-parsed body. */
static int mp_fail(struct mp_parser *p, struct bx_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int mp_fail(struct mp_parser *p, struct bx_err *err, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    p->state = ST_FAILED;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed multipart body: %s", msg);
}

/* A failing callback keeps its own err (the header contract). */
static int emit_data(struct mp_parser *p, const char *d, size_t n, struct bx_err *err)
{
    if (n == 0 || p->state != ST_DATA || !p->cb.on_part_data)
        return 0;
    if (p->cb.on_part_data(p->ctx, d, n, err) < 0) {
        p->state = ST_FAILED;
        return -1;
    }
    return 0;
}

/* A whole delimiter was matched ending at buf[i - 1]: the part in progress
 * (if any) ends and the headers of the next one follow.  Returns i, the
 * bytes consumed, or -1. */
static ssize_t delim_seen(struct mp_parser *p, size_t i, struct bx_err *err)
{
    int was_data = p->state == ST_DATA;
    p->match = 0;
    p->state = ST_AFTER_DELIM;
    p->hdr_used = 0;
    if (was_data && p->cb.on_part_end && p->cb.on_part_end(p->ctx, err) < 0) {
        p->state = ST_FAILED;
        return -1;
    }
    return (ssize_t)i;
}

/* Scans preamble or part data until a whole delimiter or the end of buf.
 * Returns the bytes consumed or -1. */
static ssize_t scan_body(struct mp_parser *p, const char *buf, size_t n, struct bx_err *err)
{
    size_t i = 0, run = 0; /* buf[run, i) is data not yet delivered */

    while (i < n) {
        if (p->match == 0) {
            /* The first whole delimiter in the rest of the feed, else a
             * delimiter prefix the feed ends in; everything before it is
             * data, handed over in one piece.  memmem skips ahead by up to
             * the delimiter's length; stopping at every CR (one per 256
             * bytes of random data) cost two callbacks per CR, then an
             * eighth of an upload's CPU in memchr alone. */
            const char *d = memmem(buf + i, n - i, p->delim, p->delim_len);
            size_t k = 0;
            if (d) {
                i = (size_t)(d - buf);
                k = p->delim_len;
            } else {
                /* Only a CR in the last delim_len - 1 bytes can start a
                 * proper prefix, and at most one does (the delimiter has
                 * no CR past position 0). */
                size_t j = n - i > p->delim_len - 1 ? n - (p->delim_len - 1) : i;
                const char *cr;
                for (; j < n && (cr = memchr(buf + j, '\r', n - j)) != NULL;
                     j = (size_t)(cr - buf) + 1) {
                    size_t at = (size_t)(cr - buf);
                    if (memcmp(cr, p->delim, n - at) == 0) {
                        k = n - at;
                        break;
                    }
                }
                if (k == 0) {
                    i = n;
                    break;
                }
                i = n - k;
            }
            /* The data before it goes; a prefix is held back (match). */
            if (emit_data(p, buf + run, i - run, err) < 0)
                return -1;
            p->match = k;
            i += k;
            run = i;
            if (p->match == p->delim_len)
                return delim_seen(p, i, err);
            continue;
        }
        if (buf[i] == p->delim[p->match]) {
            p->match++;
            run = ++i;
            if (p->match == p->delim_len)
                return delim_seen(p, i, err);
            continue;
        }
        /* Mismatch: the held-back prefix was data after all.  buf[i] is not
         * consumed; the next round looks at it with match == 0. */
        if (emit_data(p, p->delim, p->match, err) < 0)
            return -1;
        p->match = 0;
        run = i;
    }
    if (emit_data(p, buf + run, i - run, err) < 0)
        return -1;
    return (ssize_t)i;
}

static int parse_disposition(struct mp_parser *p, const char *v, size_t n, struct bx_err *err)
{
    struct cur c = {v, n, 0};
    const char *type, *pn;
    size_t type_len, pn_len, vlen;
    int r, too_long, seen_name = 0;

    if (take_token(&c, &type, &type_len) < 0 || !ci_equal(type, type_len, "form-data"))
        return mp_fail(p, err, "part Content-Disposition is not form-data");
    while ((r = next_param(&c, &pn, &pn_len)) == 1) {
        if (ci_equal(pn, pn_len, "name")) {
            if (seen_name)
                return mp_fail(p, err, "part has more than one name parameter");
            seen_name = 1;
            if (take_value(&c, p->name, MP_MAX_NAME, &vlen, &too_long) < 0)
                return mp_fail(p, err, "malformed Content-Disposition");
            if (too_long)
                return mp_fail(p, err, "part name longer than %d bytes", MP_MAX_NAME);
            p->name_len = vlen;
            p->name[vlen] = '\0';
        } else {
            int is_filename = ci_equal(pn, pn_len, "filename");
            if (is_filename && p->has_filename)
                return mp_fail(p, err, "part has more than one filename parameter");
            /* Values we do not keep are parsed for syntax only (out NULL). */
            if (take_value(&c, NULL, (size_t)-1, &vlen, &too_long) < 0)
                return mp_fail(p, err, "malformed Content-Disposition");
            if (is_filename)
                p->has_filename = 1;
        }
    }
    if (r < 0)
        return mp_fail(p, err, "malformed Content-Disposition");
    if (!seen_name)
        return mp_fail(p, err, "part Content-Disposition has no name");
    return 0;
}

static int header_line(struct mp_parser *p, struct bx_err *err)
{
    const char *l = p->line, *colon;
    size_t n = p->line_len, name_len, vs, ve;

    if (l[0] == ' ' || l[0] == '\t')
        return mp_fail(p, err, "folded part header lines are not supported");
    colon = memchr(l, ':', n);
    if (!colon)
        return mp_fail(p, err, "part header line without ':'");
    name_len = (size_t)(colon - l);
    if (name_len == 0)
        return mp_fail(p, err, "empty part header name");
    for (size_t i = 0; i < name_len; i++)
        if (!bx_is_tchar((unsigned char)l[i]))
            return mp_fail(p, err, "invalid character in part header name");
    if (!ci_equal(l, name_len, "content-disposition"))
        return 0; /* Content-Type and the rest carry nothing we use */
    if (p->have_cd)
        return mp_fail(p, err, "part has more than one Content-Disposition");
    p->have_cd = 1;
    vs = name_len + 1;
    ve = n;
    while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
        vs++;
    while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
        ve--;
    return parse_disposition(p, l + vs, ve - vs, err);
}

static int headers_done(struct mp_parser *p, struct bx_err *err)
{
    if (!p->have_cd)
        return mp_fail(p, err, "part without Content-Disposition: form-data");
    p->state = ST_DATA;
    p->match = 0;
    if (p->cb.on_part_begin &&
        p->cb.on_part_begin(p->ctx, p->name, p->name_len, p->has_filename, err) < 0) {
        p->state = ST_FAILED;
        return -1;
    }
    return 0;
}

/* One byte of the framing between a delimiter and the part data. */
static int step(struct mp_parser *p, unsigned char c, struct bx_err *err)
{
    if (++p->hdr_used > MP_MAX_PART_HEADER)
        return mp_fail(p, err, "part headers exceed %d bytes", MP_MAX_PART_HEADER);
    switch (p->state) {
    case ST_AFTER_DELIM:
    case ST_PAD:
        if (c == '-' && p->state == ST_AFTER_DELIM) {
            p->state = ST_DASH2;
            return 0;
        }
        p->state = ST_PAD; /* optional transport padding, then CRLF */
        if (c == ' ' || c == '\t')
            return 0;
        if (c != '\r')
            return mp_fail(p, err, "junk after a boundary");
        p->state = ST_PAD_LF;
        return 0;
    case ST_DASH2:
        if (c != '-')
            return mp_fail(p, err, "junk after a boundary");
        p->state = ST_EPILOGUE;
        return 0;
    case ST_PAD_LF:
        if (c != '\n')
            return mp_fail(p, err, "boundary line not ended by CRLF");
        if (++p->parts > MP_MAX_PARTS)
            return mp_fail(p, err, "more than %d parts", MP_MAX_PARTS);
        p->state = ST_HEADERS;
        p->hdr_used = 0; /* the budget now covers the header block alone */
        p->line_len = 0;
        p->have_cd = 0;
        p->has_filename = 0;
        p->name_len = 0;
        p->name[0] = '\0';
        return 0;
    case ST_HEADERS:
        if (c == '\r') {
            p->state = ST_HEADER_LF;
            return 0;
        }
        /* No CTLs (bare LF included) except HTAB in a header line. */
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return mp_fail(p, err, "control character in a part header");
        /* Cannot overflow: line_len < hdr_used <= MP_MAX_PART_HEADER. */
        p->line[p->line_len++] = (char)c;
        return 0;
    case ST_HEADER_LF:
        if (c != '\n')
            return mp_fail(p, err, "part header line not ended by CRLF");
        if (p->line_len == 0)
            return headers_done(p, err);
        if (header_line(p, err) < 0)
            return -1;
        p->line_len = 0;
        p->state = ST_HEADERS;
        return 0;
    default: /* mp_feed hands only framing states to step() */
        return mp_fail(p, err, "internal parser state");
    }
}

int mp_feed(struct mp_parser *p, const char *data, size_t len, struct bx_err *err)
{
    size_t i = 0;

    if (p->state == ST_FAILED)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed multipart body: parser already failed");
    while (i < len) {
        switch (p->state) {
        case ST_PREAMBLE:
        case ST_DATA: {
            ssize_t used = scan_body(p, data + i, len - i, err);
            if (used < 0)
                return -1;
            i += (size_t)used;
            break;
        }
        case ST_EPILOGUE:
            return 0; /* the epilogue is ignored */
        default:
            if (step(p, (unsigned char)data[i], err) < 0)
                return -1;
            i++;
            break;
        }
    }
    return 0;
}

int mp_finish(struct mp_parser *p, struct bx_err *err)
{
    if (p->state == ST_FAILED)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed multipart body: parser already failed");
    if (p->state != ST_EPILOGUE) {
        p->state = ST_FAILED;
        return bx_err_set(err, BX_E_BAD_REQUEST, 0,
                          "malformed multipart body: body ended before the closing boundary");
    }
    return 0;
}
