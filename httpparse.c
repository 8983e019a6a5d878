#include "httpparse.h"

#include <string.h>

#include "util.h"

/* Everything here runs on bytes a hostile client chose.  Two rules keep it
 * safe: no function ever reads outside [buf, buf + len) (all loops are bounded
 * by an end pointer computed from a length the caller vouched for), and every
 * count or length has a hard cap checked before it can grow. */

#define DEFAULT_MAX_REQUEST_LINE 8192
#define DEFAULT_MAX_HEADER_BYTES 32768
/* Keeps `limit + 2` style arithmetic far away from SIZE_MAX. */
#define MAX_SANE_LIMIT ((size_t)1 << 30)

#define CHUNK_MAX_DIGITS 16 /* 16 hex digits fill a uint64_t: no overflow possible */
#define CHUNK_MAX_EXT 1024
#define CHUNK_MAX_TRAILER 8192

/* ---- character classes (ASCII only, locale independent) ---- */

/* tchar and lower-casing: bx_is_tchar, bx_ascii_lower (util.h). */

/* field-content: visible ASCII, SP, HTAB and obs-text; every other control
 * character (CR, LF, NUL, DEL...) is refused so nothing downstream ever sees
 * a line break or terminator hidden inside a value. */
static int is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int http_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Case-insensitive comparison of [s, s+len) with the NUL-terminated lit. */
static int ieq(const char *s, size_t len, const char *lit)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (lit[i] == '\0' || bx_ascii_lower((unsigned char)s[i]) != bx_ascii_lower((unsigned char)lit[i]))
            return 0;
    }
    return lit[i] == '\0';
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Next element of a comma-separated list (RFC 9110 #rule) in [*p, end),
 * trimmed of OWS; empty elements are returned as empty.  *p becomes NULL
 * after the last element; returns 0 once the list is exhausted. */
static int list_next(const char **p, const char *end, const char **elem, size_t *elem_len)
{
    const char *s = *p, *e;
    if (!s)
        return 0;
    e = memchr(s, ',', (size_t)(end - s));
    *p = e ? e + 1 : NULL;
    if (!e)
        e = end;
    while (s < e && is_ows(*s))
        s++;
    while (e > s && is_ows(e[-1]))
        e--;
    *elem = s;
    *elem_len = (size_t)(e - s);
    return 1;
}

/* ---- request head ---- */

struct limits {
    size_t max_request_line;
    size_t max_header_bytes;
    size_t max_headers;
};

static void get_limits(const struct http_limits *lim, struct limits *l)
{
    l->max_request_line =
        lim && lim->max_request_line ? lim->max_request_line : DEFAULT_MAX_REQUEST_LINE;
    l->max_header_bytes =
        lim && lim->max_header_bytes ? lim->max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    l->max_headers = lim && lim->max_headers ? lim->max_headers : HTTP_MAX_HEADERS;
    if (l->max_header_bytes > MAX_SANE_LIMIT)
        l->max_header_bytes = MAX_SANE_LIMIT;
    if (l->max_request_line > l->max_header_bytes)
        l->max_request_line = l->max_header_bytes;
    if (l->max_headers > HTTP_MAX_HEADERS)
        l->max_headers = HTTP_MAX_HEADERS;
}

static enum http_method method_of(const char *m, size_t len)
{
    static const struct {
        const char *name;
        enum http_method method;
    } methods[] = {
        {"GET", HTTP_GET},     {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
        {"PUT", HTTP_PUT},     {"DELETE", HTTP_DELETE}, {"OPTIONS", HTTP_OPTIONS},
        {"PATCH", HTTP_PATCH},
    };
    /* Methods are case-sensitive (RFC 9110 9.1): "get" is HTTP_OTHER. */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, m, len) == 0)
            return methods[i].method;
    }
    return HTTP_OTHER;
}

/* Finds the line starting at p inside the complete head; the line excludes
 * its CRLF.  The head always ends with CRLFCRLF, so a line end exists. */
static int next_line(const char *p, const char *end, const char **line_end, const char **next,
                     struct bx_err *err)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    /* The scan already refused bare LF, but the full parse re-checks rather
     * than trusting that the caller's *scan_from matched this buffer. */
    if (!nl || nl == p || nl[-1] != '\r')
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed line ending in request head");
    *line_end = nl - 1;
    *next = nl + 1;
    return 0;
}

static int parse_request_line(const char *p, const char *le, const struct limits *l,
                              struct http_request *req, struct bx_err *err)
{
    const char *m = p, *t, *v;

    if ((size_t)(le - p) > l->max_request_line)
        return bx_err_set(err, BX_E_URI_TOO_LONG, 0, "request line longer than %zu bytes", l->max_request_line);

    while (p < le && bx_is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == le || *p != ' ')
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed request method");
    req->method_str = m;
    req->method_len = (size_t)(p - m);
    req->method = method_of(m, req->method_len);

    t = ++p;
    /* Visible ASCII only: no SP (it delimits), no controls, no bytes >= 0x7f,
     * and no '#' (clients never send a fragment; one would make the path mean
     * different things to different consumers). */
    while (p < le && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f && *p != '#')
        p++;
    if (p == t || p == le || *p != ' ')
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed request target");
    req->target = t;
    req->target_len = (size_t)(p - t);
    if (req->target_len == 1 && t[0] == '*') {
        if (req->method != HTTP_OPTIONS)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "asterisk request target is only for OPTIONS");
        req->path = t;
        req->path_len = 1;
    } else if (t[0] == '/') {
        const char *q = memchr(t, '?', req->target_len);
        req->path = t;
        if (q) {
            req->path_len = (size_t)(q - t);
            req->query = q + 1;
            req->query_len = (size_t)(p - (q + 1));
        } else {
            req->path_len = req->target_len;
        }
    } else {
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "request target must be an absolute path");
    }

    v = ++p;
    if (le - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed HTTP version");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return bx_err_set(err, BX_E_HTTP_VERSION, 0, "HTTP version not supported");
    req->minor_version = v[7] - '0';
    return 0;
}

static int parse_header_line(const char *p, const char *le, struct http_header *h,
                             struct bx_err *err)
{
    const char *n = p, *vs, *ve;

    /* A line starting with whitespace is obsolete line folding; accepting it
     * (or ignoring it) would let two parsers disagree on header values. */
    if (is_ows(*p))
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "obsolete line folding in header");
    while (p < le && bx_is_tchar((unsigned char)*p))
        p++;
    /* Whitespace between name and colon is refused (RFC 9112 5.1): a classic
     * smuggling trick ("Transfer-Encoding : chunked"). */
    if (p == n || p == le || *p != ':')
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed header field name");
    h->name = n;
    h->name_len = (size_t)(p - n);

    vs = p + 1;
    for (const char *q = vs; q < le; q++) {
        if (!is_field_byte((unsigned char)*q))
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "control character in header value");
    }
    ve = le;
    while (vs < ve && is_ows(*vs))
        vs++;
    while (ve > vs && is_ows(ve[-1]))
        ve--;
    h->value = vs;
    h->value_len = (size_t)(ve - vs);
    return 0;
}

static int parse_content_length(const struct http_header *h, int *have, uint64_t *cl,
                                struct bx_err *err)
{
    const char *p = h->value, *end = h->value + h->value_len, *e;
    size_t elen;

    /* "Content-Length: 5, 5" and repeated headers are tolerated only when
     * every value is identical (RFC 9110 8.6); any disagreement is an
     * ambiguity a smuggler could exploit, so it is a hard error. */
    while (list_next(&p, end, &e, &elen)) {
        uint64_t v;
        if (elen == 0 || elen > 19 || bx_parse_u64(e, elen, UINT64_MAX, &v) < 0)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "invalid Content-Length");
        if (*have && v != *cl)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "conflicting Content-Length values");
        *have = 1;
        *cl = v;
    }
    return 0;
}

/* Host = uri-host [ ":" port ]: reg-name, IPv4 or an IP-literal in brackets.
 * Checking the character set keeps '/', '@', '\' and friends out of a value
 * that may be echoed into URLs. */
static int host_ok(const char *s, size_t len)
{
    static const char extra[] = "-._~!$&'()*+,;=:[]%";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (!memchr(extra, c, sizeof(extra) - 1))
            return 0;
    }
    return 1;
}

static int apply_framing(struct http_request *req, struct bx_err *err)
{
    size_t hosts = 0, tes = 0;
    int conn_close = 0, conn_keep = 0;

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        const char *p, *end, *e;
        size_t elen;

        if (ieq(h->name, h->name_len, "content-length")) {
            if (parse_content_length(h, &req->has_content_length, &req->content_length, err) < 0)
                return -1;
        } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
            if (++tes > 1)
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "repeated Transfer-Encoding header");
            if (h->value_len == 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "empty Transfer-Encoding");
            /* Exactly "chunked": anything stacked on it ("chunked, gzip",
             * "gzip, chunked") leaves the body length ambiguous to us. */
            if (!ieq(h->value, h->value_len, "chunked"))
                return bx_err_set(err, BX_E_NOT_IMPLEMENTED, 0, "unsupported transfer coding");
            req->chunked = 1;
        } else if (ieq(h->name, h->name_len, "host")) {
            if (++hosts > 1)
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "repeated Host header");
            if (!host_ok(h->value, h->value_len))
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "invalid Host header");
        } else if (ieq(h->name, h->name_len, "connection")) {
            p = h->value;
            end = h->value + h->value_len;
            while (list_next(&p, end, &e, &elen)) {
                if (ieq(e, elen, "close"))
                    conn_close = 1;
                else if (ieq(e, elen, "keep-alive"))
                    conn_keep = 1;
            }
        } else if (ieq(h->name, h->name_len, "content_length") ||
                   ieq(h->name, h->name_len, "transfer_encoding")) {
            /* Some proxies fold '_' into '-': they would frame the body by a
             * header we ignore, so refuse the look-alike outright. */
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "ambiguous framing header name");
        } else if (ieq(h->name, h->name_len, "expect")) {
            if (!ieq(h->value, h->value_len, "100-continue"))
                return bx_err_set(err, BX_E_EXPECTATION_FAILED, 0, "unsupported expectation");
            /* An HTTP/1.0 client cannot understand an interim 100 response
             * (RFC 9110 10.1.1), so the expectation is ignored there. */
            if (req->minor_version >= 1)
                req->expect_continue = 1;
        }
    }

    /* Both framings present is the textbook request-smuggling setup. */
    if (req->chunked && req->has_content_length)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "both Content-Length and Transfer-Encoding present");
    /* HTTP/1.0 has no chunked coding: treat it as faulty framing (RFC 9112 6.1). */
    if (req->chunked && req->minor_version == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "Transfer-Encoding in an HTTP/1.0 request");
    if (req->minor_version >= 1 && hosts != 1)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "HTTP/1.1 request without Host header");

    req->keep_alive = req->minor_version >= 1;
    if (conn_keep)
        req->keep_alive = 1;
    if (conn_close)
        req->keep_alive = 0;
    return 0;
}

/* Parses a complete head [buf, buf + head_len), which ends with CRLFCRLF. */
static int parse_head(const char *buf, size_t head_len, const struct limits *l,
                      struct http_request *req, struct bx_err *err)
{
    const char *p = buf, *end = buf + head_len, *le, *next;

    memset(req, 0, sizeof(*req));
    if (next_line(p, end, &le, &next, err) < 0)
        return -1;
    if (parse_request_line(p, le, l, req, err) < 0)
        return -1;
    p = next;
    for (;;) {
        if (next_line(p, end, &le, &next, err) < 0)
            return -1;
        if (le == p)
            break; /* the empty line ending the head */
        if (req->num_headers >= l->max_headers)
            return bx_err_set(err, BX_E_HEADERS_TOO_LARGE, 0, "more than %zu header fields", l->max_headers);
        if (parse_header_line(p, le, &req->headers[req->num_headers], err) < 0)
            return -1;
        req->num_headers++;
        p = next;
    }
    if (next != end)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "malformed request head");
    return apply_framing(req, err);
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       size_t *scan_from, struct http_request *req, struct bx_err *err)
{
    struct limits l;
    size_t start = scan_from ? *scan_from : 0;
    size_t stop, rl_probe;

    get_limits(lim, &l);
    if (start > len)
        start = 0;
    /* Never look further than the largest head allowed: a head that has not
     * ended by then is refused whatever follows. */
    stop = len < l.max_header_bytes ? len : l.max_header_bytes;
    /* Index of the last byte that may end a request line of the maximum
     * length (its LF).  Reaching it without having seen any LF means the
     * request line is too long, whether or not the rest ever arrives. */
    rl_probe = l.max_request_line + 1;

    /* Only bytes from `start` on are new; bytes before it were checked by an
     * earlier call.  Each index is visited once over all calls, so a client
     * trickling bytes costs O(n) in total.  Errors are reported by the first
     * offending index, so the outcome does not depend on how the input was
     * split across calls. */
    for (size_t i = start; i < stop; i++) {
        char c = buf[i];
        if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r')
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "bare LF in request head");
            if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
                int rc = parse_head(buf, i + 1, &l, req, err);
                if (rc < 0)
                    return HTTP_PARSE_ERROR;
                if (scan_from)
                    *scan_from = 0; /* ready for the next head once the caller drops this one */
                return (int)(i + 1);
            }
        } else if (c == '\0') {
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "NUL byte in request head");
        }
        /* Runs once per request: only one call's range contains rl_probe. */
        if (i == rl_probe && !memchr(buf, '\n', rl_probe + 1))
            return bx_err_set(err, BX_E_URI_TOO_LONG, 0, "request line longer than %zu bytes",
                              l.max_request_line);
    }
    if (stop == l.max_header_bytes)
        return bx_err_set(err, BX_E_HEADERS_TOO_LARGE, 0, "request head larger than %zu bytes", l.max_header_bytes);
    if (scan_from)
        *scan_from = stop;
    return HTTP_PARSE_INCOMPLETE;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        if (ieq(req->headers[i].name, req->headers[i].name_len, name))
            return &req->headers[i];
    }
    return NULL;
}

/* ---- browser safety ---- */

static int lower_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

int http_media_type_is(const char *value, size_t len, const char *type)
{
    size_t tl = strlen(type);
    if (!value || len < tl || !lower_eq(value, type, tl))
        return 0;
    value += tl;
    len -= tl;
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    return len == 0 || *value == ';';
}

/* 1 when s[0..len) is ":" followed by 1 to 5 digits. */
static int is_port_suffix(const char *s, size_t len)
{
    if (len < 2 || len > 6 || s[0] != ':')
        return 0;
    for (size_t i = 1; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int http_host_is_loopback(const char *host, size_t len)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    if (!host)
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t nl = strlen(names[i]);
        if (len >= nl && lower_eq(host, names[i], nl) &&
            (len == nl || is_port_suffix(host + nl, len - nl)))
            return 1;
    }
    return 0;
}

int http_host_listed(const char *host, size_t len, char *const *allowed, size_t n)
{
    if (!host || len == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t el = strlen(allowed[i]);
        if (len >= el && lower_eq(host, allowed[i], el) &&
            (len == el || is_port_suffix(host + el, len - el)))
            return 1;
    }
    return 0;
}

int http_origin_allowed(const char *origin, size_t olen, const char *host, size_t hlen,
                        char *const *allowed, size_t n)
{
    if (!origin)
        return 0;
    if (host && hlen > 0 && olen == 7 + hlen && lower_eq(origin, "http://", 7) &&
        lower_eq(origin + 7, host, hlen))
        return 1;
    for (size_t i = 0; i < n; i++)
        if (strlen(allowed[i]) == olen && lower_eq(origin, allowed[i], olen))
            return 1;
    return 0;
}

/* ---- chunked transfer coding ---- */

enum {
    CH_SIZE = 0,      /* hex digits of the chunk size */
    CH_EXT,           /* ";ext..." up to CR */
    CH_SIZE_LF,       /* LF after the size line */
    CH_DATA,          /* chunk payload */
    CH_DATA_CR,       /* CR after the payload */
    CH_DATA_LF,       /* LF after the payload */
    CH_TRAILER_START, /* start of a trailer line or the final CRLF */
    CH_TRAILER_LINE,  /* inside a trailer field line */
    CH_TRAILER_LF,    /* LF ending a trailer line */
    CH_FINAL_LF,      /* LF of the final empty line */
    CH_DONE,
    CH_ERROR
};

void http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

/* out must hold in_len bytes (the decoded payload is never longer than the
 * input) and be either `in` itself or disjoint from it: the payload only moves
 * towards the front, so memmove is correct for the in-place case. */
int http_chunked_decode(struct http_chunked *c, const char *in, size_t in_len, size_t *consumed,
                        char *out, size_t *out_len, struct bx_err *err)
{
    size_t i = 0, o = 0;
    const char *why = NULL;

    if (c->state == CH_DONE) {
        *consumed = 0;
        *out_len = 0;
        return 1;
    }
    if (c->state == CH_ERROR) {
        *consumed = 0;
        *out_len = 0;
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "chunked body: decoder already failed");
    }

    while (i < in_len) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = http_hexval(ch);
            if (v >= 0) {
                if (c->digits >= CHUNK_MAX_DIGITS) {
                    why = "chunk size too long";
                    goto fail;
                }
                c->remaining = (c->remaining << 4) | (uint64_t)v;
                c->digits++;
            } else if (c->digits == 0) {
                why = "missing chunk size";
                goto fail;
            } else if (ch == ';') {
                c->line_len = 0;
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                why = "malformed chunk size";
                goto fail;
            }
            i++;
            break;
        }
        case CH_EXT:
            /* Extensions are ignored, but only up to a bound and only if
             * they contain no control characters (a bare LF here would be
             * read as a line end by a laxer parser). */
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (!is_field_byte(ch) || ++c->line_len > CHUNK_MAX_EXT) {
                why = "malformed or oversized chunk extension";
                goto fail;
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                why = "chunk size line not ended by CRLF";
                goto fail;
            }
            i++;
            c->digits = 0;
            if (c->remaining == 0) {
                c->trailer_len = 0;
                c->state = CH_TRAILER_START;
            } else {
                c->state = CH_DATA;
            }
            break;
        case CH_DATA: {
            size_t avail = in_len - i;
            size_t n = c->remaining < avail ? (size_t)c->remaining : avail;
            memmove(out + o, in + i, n);
            o += n;
            i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (ch != (c->state == CH_DATA_CR ? '\r' : '\n')) {
                why = "chunk data not followed by CRLF";
                goto fail;
            }
            i++;
            c->state = c->state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            break;
        case CH_TRAILER_START:
        case CH_TRAILER_LINE:
        case CH_TRAILER_LF:
        case CH_FINAL_LF:
            /* Trailer fields are discarded; they are still bounded and must
             * look like field lines so garbage is not silently swallowed. */
            if (++c->trailer_len > CHUNK_MAX_TRAILER) {
                why = "chunked trailer too large";
                goto fail;
            }
            if (c->state == CH_TRAILER_START) {
                if (ch == '\r') {
                    c->state = CH_FINAL_LF;
                } else if (bx_is_tchar(ch)) {
                    c->state = CH_TRAILER_LINE;
                } else {
                    why = "malformed chunked trailer";
                    goto fail;
                }
            } else if (c->state == CH_TRAILER_LINE) {
                if (ch == '\r') {
                    c->state = CH_TRAILER_LF;
                } else if (!is_field_byte(ch)) {
                    why = "control character in chunked trailer";
                    goto fail;
                }
            } else if (ch != '\n') {
                why = "chunked trailer line not ended by CRLF";
                goto fail;
            } else if (c->state == CH_TRAILER_LF) {
                c->state = CH_TRAILER_START;
            } else {
                /* Stop right after the final CRLF: what follows belongs to the
                 * next pipelined request, not to this body. */
                c->state = CH_DONE;
                *consumed = i + 1;
                *out_len = o;
                return 1;
            }
            i++;
            break;
        default:
            why = "chunked decoder in an invalid state";
            goto fail;
        }
    }
    *consumed = i;
    *out_len = o;
    return 0;

fail:
    c->state = CH_ERROR;
    *consumed = i;
    *out_len = o;
    return bx_err_set(err, BX_E_BAD_REQUEST, 0, "chunked body: %s", why);
}

/* ---- percent decoding ---- */

/* Decodes [s, s+len) into out (cap bytes incl. the NUL).  Strict: every '%'
 * takes exactly two hex digits, and a NUL byte (raw or %00) is refused so a
 * decoded name can never be truncated by a C string function later. */
static int pct_decode(const char *s, size_t len, int plus_is_space, char *out, size_t cap,
                      size_t *out_len, struct bx_err *err)
{
    size_t o = 0;

    if (cap == 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, 0, "no room to decode");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = http_hexval((unsigned char)s[i + 1])) < 0 ||
                (lo = http_hexval((unsigned char)s[i + 2])) < 0)
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "invalid percent-escape");
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "NUL byte in decoded value");
        if (o + 1 >= cap)
            return bx_err_set(err, BX_E_BAD_REQUEST, 0, "decoded value longer than %zu bytes", cap - 1);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return 0;
}

int http_query_param(const char *query, size_t query_len, const char *name, char *out, size_t cap,
                     size_t *out_len, struct bx_err *err)
{
    const char *p, *end, *val = NULL;
    size_t val_len = 0, name_len = strlen(name);

    if (!query)
        return 0;
    p = query;
    end = query + query_len;
    while (p) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        if ((size_t)(ne - p) == name_len && memcmp(p, name, name_len) == 0) {
            /* Two values for one name would let a front end and Boxer act on
             * different ones; refuse instead of picking. */
            if (val)
                return bx_err_set(err, BX_E_BAD_REQUEST, 0, "repeated query parameter %s", name);
            val = eq ? eq + 1 : pe;
            val_len = (size_t)(pe - val);
        }
        p = amp ? amp + 1 : NULL;
    }
    if (!val)
        return 0;
    if (pct_decode(val, val_len, 1, out, cap, out_len, err) < 0)
        return bx_err_wrap(err, "query parameter %s", name);
    return 1;
}

int http_query_next(const char *query, size_t query_len, size_t *pos, const char *name, char *out,
                    size_t cap, size_t *out_len, struct bx_err *err)
{
    size_t name_len = strlen(name);
    if (!query)
        return 0;
    while (*pos < query_len) {
        const char *p = query + *pos, *end = query + query_len;
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq ? eq : pe;
        *pos = amp ? (size_t)(amp + 1 - query) : query_len;
        if ((size_t)(ne - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *val = eq ? eq + 1 : pe;
            if (pct_decode(val, (size_t)(pe - val), 1, out, cap, out_len, err) < 0)
                return bx_err_wrap(err, "query parameter %s", name);
            return 1;
        }
    }
    return 0;
}

int http_decode_path(const char *path, size_t len, char *out, size_t cap, size_t *out_len,
                     struct bx_err *err)
{
    if (pct_decode(path, len, 0, out, cap, out_len, err) < 0)
        return bx_err_wrap(err, "path");
    return 0;
}
