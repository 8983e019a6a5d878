/* Streaming multipart/form-data parser (RFC 7578 / RFC 2046).
 *
 * Feed it the request body in pieces of any size (1 byte at a time works);
 * it calls back with part starts, data and ends, never buffering part data,
 * so memory does not grow with the upload.  Part headers are bounded
 * (MP_MAX_PART_HEADER bytes per part, MP_MAX_PARTS parts).  Preamble and
 * epilogue are ignored.  A body that ends before the closing boundary is an
 * error at mp_finish().  Errors: status 400 with a message.
 */
#ifndef BOXER_MULTIPART_H
#define BOXER_MULTIPART_H

#include <stddef.h>

#include "err.h"

#define MP_MAX_BOUNDARY 70
#define MP_MAX_PART_HEADER 8192
#define MP_MAX_PARTS 64
#define MP_MAX_NAME 255

struct mp_callbacks {
    /* name: the Content-Disposition `name` parameter (unquoted, may be empty);
     * has_filename says whether a filename parameter was present.  A callback
     * returning < 0 aborts parsing (mp_feed returns -1 and keeps the callback's
     * err, which it must have filled). */
    int (*on_part_begin)(void *ctx, const char *name, size_t name_len, int has_filename,
                         struct bx_err *err);
    int (*on_part_data)(void *ctx, const char *data, size_t len, struct bx_err *err);
    int (*on_part_end)(void *ctx, struct bx_err *err);
};

struct mp_parser;

/* Extracts the boundary from a Content-Type header value such as
 * `multipart/form-data; boundary="abc"` (quoted or token form, case-
 * insensitive media type and parameter name).  out must hold
 * MP_MAX_BOUNDARY + 1 bytes. */
int mp_boundary_from_content_type(const char *ct, size_t ct_len, char *out, size_t *out_len,
                                  struct bx_err *err);

int mp_new(struct mp_parser **out, const char *boundary, size_t boundary_len,
           const struct mp_callbacks *cb, void *ctx, struct bx_err *err);
int mp_feed(struct mp_parser *p, const char *data, size_t len, struct bx_err *err);
/* Call at end of body: error unless the closing boundary was seen. */
int mp_finish(struct mp_parser *p, struct bx_err *err);
void mp_free(struct mp_parser **p);

#endif
