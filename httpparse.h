/* HTTP/1.x request parsing, allocation-free (picohttpparser in spirit).
 *
 * http_parse_request() looks at the bytes received so far and either finds a
 * complete request head (returns bytes consumed, > 0), needs more
 * (HTTP_PARSE_INCOMPLETE), or rejects it (HTTP_PARSE_ERROR with err->status
 * 400, 414 request line/URI too long, 431 headers too many/too large, 505
 * version, 501 unsupported transfer-coding).  All strings in the result point
 * into the caller's buffer.  `*scan_from` (caller-owned, start at 0) makes
 * repeated calls rescan only new bytes for the end of the head, so a client
 * that sends one byte at a time costs O(n) in total, not O(n^2).
 *
 * The parser also interprets the framing headers: Content-Length (strict
 * digits; repeated values must be identical; ranges checked),
 * Transfer-Encoding (only "chunked" accepted; both CL and TE present is an
 * error: no request smuggling), Connection (close / keep-alive tokens),
 * Expect (100-continue; other expectations are 417), and Host is required for
 * HTTP/1.1.  Obsolete line folding, whitespace before the colon, control
 * characters in names or values, and bare LF line ends are errors.
 */
#ifndef BOXER_HTTPPARSE_H
#define BOXER_HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define HTTP_PARSE_INCOMPLETE (-2)
#define HTTP_PARSE_ERROR (-1)

#define HTTP_MAX_HEADERS 64

struct http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading/trailing spaces and tabs trimmed */
    size_t value_len;
};

enum http_method {
    HTTP_OTHER = 0,
    HTTP_GET,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
    HTTP_OPTIONS,
    HTTP_PATCH
};

struct http_request {
    enum http_method method;
    const char *method_str;
    size_t method_len;
    const char *target; /* raw request-target: origin-form "/path?query" */
    size_t target_len;
    const char *path; /* raw (undecoded) path part of target */
    size_t path_len;
    const char *query; /* raw query without '?', or NULL */
    size_t query_len;
    int minor_version; /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t num_headers;
    /* framing, derived from the headers */
    int has_content_length;
    uint64_t content_length;
    int chunked;
    int keep_alive; /* default per version, adjusted by Connection */
    int expect_continue;
};

struct http_limits {
    size_t max_request_line; /* method + target + version, e.g. 8192 -> 414 */
    size_t max_header_bytes; /* whole head incl. request line, e.g. 32768 -> 431 */
    size_t max_headers;      /* <= HTTP_MAX_HEADERS -> 431 */
};

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       size_t *scan_from, struct http_request *req, struct bx_err *err);

/* Case-insensitive header lookup; returns the first match or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* Browser safety (pure, for the routing checks).
 *
 * http_media_type_is: 1 when a Content-Type value names `type` (compared
 * case-insensitively, e.g. "application/json"), optionally followed by
 * parameters (";charset=utf-8"); "application/jsonx" does not match.
 *
 * http_host_is_loopback: 1 when a Host header value names the loopback:
 * "localhost", "127.0.0.1" or "[::1]", each with or without ":port".
 *
 * http_host_listed: 1 when the Host value equals an entry (case-insensitive);
 * an entry without a port also matches the host with any ":port".
 *
 * http_origin_allowed: 1 when an Origin value is the server's own origin
 * ("http://" + host) or equals an entry of `allowed` (case-insensitive). */
int http_media_type_is(const char *value, size_t len, const char *type);
int http_host_is_loopback(const char *host, size_t len);
int http_host_listed(const char *host, size_t len, char *const *allowed, size_t n);
int http_origin_allowed(const char *origin, size_t olen, const char *host, size_t hlen,
                        char *const *allowed, size_t n);

/* Incremental chunked transfer-coding decoder.  Feed raw bytes; it writes the
 * decoded payload to out (decoding may be done in place: out == in is fine)
 * and reports how much input it consumed.  Chunk-size lines are bounded (16
 * hex digits max, extensions at most 1024 bytes), trailers are skipped but
 * bounded (8192 bytes).  Returns 1 when the terminating chunk and trailers
 * were consumed (done), 0 when more input is needed, -1 on malformed input
 * (err 400). */
struct http_chunked {
    int state;
    uint64_t remaining;
    size_t line_len;
    size_t trailer_len;
    int digits;
};

void http_chunked_init(struct http_chunked *c);
int http_chunked_decode(struct http_chunked *c, const char *in, size_t in_len, size_t *consumed,
                        char *out, size_t *out_len, struct bx_err *err);

/* Finds query parameter `name` in a raw query string and percent-decodes its
 * value ('+' means space) into out (cap bytes incl. NUL).  Returns 1 found,
 * 0 absent, -1 error: bad escape, decoded NUL byte (%00), or too long (400). */
int http_query_param(const char *query, size_t query_len, const char *name, char *out,
                     size_t cap, size_t *out_len, struct bx_err *err);

/* The values of a parameter that may repeat (in order): from *pos (start
 * at 0), the next `name` decoded as http_query_param does; *pos moves past
 * it.  1 found, 0 no more, -1 error (400). */
int http_query_next(const char *query, size_t query_len, size_t *pos, const char *name, char *out,
                    size_t cap, size_t *out_len, struct bx_err *err);

/* Percent-decodes a path; rejects %00, bad escapes, and results over cap. */
int http_decode_path(const char *path, size_t len, char *out, size_t cap, size_t *out_len,
                     struct bx_err *err);

#endif
