/* JSON: a strict, bounded whole-buffer parser into a small tree, and a
 * writer that produces valid JSON for any byte string.
 *
 * Parser rules (RFC 8259 strict): one value, optional surrounding whitespace,
 * nothing after it; nesting at most lim->max_depth; at most lim->max_values
 * values in total; strings must be valid UTF-8 (no overlongs, no surrogate
 * code points encoded directly), all escapes incl. \u surrogate pairs decoded
 * (a lone surrogate escape is an error); strings are stored decoded and
 * NUL-terminated, with their true length (they may contain U+0000 via \u0000:
 * callers that need C strings check json_str_has_nul / length); duplicate
 * keys in one object are an error; numbers follow the JSON grammar, an
 * integer without fraction/exponent that fits int64 has is_int set.
 * Errors: status 400, message says what and at which byte offset, e.g.
 * "invalid JSON at byte 17: unterminated string".
 */
#ifndef BOXER_JSON_H
#define BOXER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_member;

struct json_value {
    enum json_type type;
    union {
        int boolean;
        struct {
            double d;       /* always set */
            int64_t i;      /* set when is_int */
            int is_int;
        } num;
        struct {
            char *s; /* decoded, NUL-terminated */
            size_t len;
        } str;
        struct {
            struct json_value *items;
            size_t n;
        } arr;
        struct {
            struct json_member *members;
            size_t n;
        } obj;
    } u;
};

struct json_member {
    char *key; /* decoded, NUL-terminated */
    size_t key_len;
    struct json_value value;
};

struct json_limits {
    size_t max_bytes;  /* input longer than this: 413 */
    int max_depth;     /* e.g. 32 */
    size_t max_values; /* total values, e.g. 200000 */
};

struct json_doc; /* owns every value and string (arena) */

int json_parse(const char *buf, size_t len, const struct json_limits *lim, struct json_doc **out,
               struct bx_err *err);
const struct json_value *json_doc_root(const struct json_doc *doc);
void json_doc_free(struct json_doc **doc);

/* Object member lookup by exact key; NULL when absent or v is not an object. */
const struct json_value *json_get(const struct json_value *obj, const char *key);
/* The one way to match an object's keys against the fields a parser knows
 * (config.c; the /run request parser).  Keys are decoded and may hold a NUL
 * (from \u0000): compared as C strings, "home\0x" would pass for "home", so
 * a key matches only when it is exactly `name`, length included.  A key
 * that matches no known name (one with a NUL never does) is an unknown
 * field, refused with a 400 in the caller's wording. */
bool json_key_is(const struct json_member *m, const char *name);
/* For parsers that check every key before reading any: 0 when each key of
 * obj is one of names (NULL-terminated), else -1 with *bad set to the first
 * member that is not.  Sets no error: each API words its own 400, e.g.
 *     if (json_obj_check_keys(v, known, &bad) < 0)
 *         return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "limits: unknown field %.64s", bad->key);
 * Parsers that go through the members in order (config.c, whose first bad
 * member in document order is the one reported) use json_key_is. */
int json_obj_check_keys(const struct json_value *obj, const char *const *names,
                        const struct json_member **bad);
/* 1 when the decoded string contains a NUL byte. */
int json_str_has_nul(const struct json_value *v);

/* Writer.  Appends to an sbuf; commas and nesting are tracked so callers only
 * say what comes next.  On any failure (sbuf limit, misuse) `failed` is set
 * and later calls do nothing; check it once at the end. */
#define JSON_WRITER_MAX_DEPTH 32
struct json_writer {
    struct sbuf *out;
    int depth;
    int failed;
    unsigned char need_comma[JSON_WRITER_MAX_DEPTH + 1];
    unsigned char after_key;
};

void json_w_init(struct json_writer *w, struct sbuf *out);
void json_w_obj_begin(struct json_writer *w);
void json_w_obj_end(struct json_writer *w);
void json_w_arr_begin(struct json_writer *w);
void json_w_arr_end(struct json_writer *w);
void json_w_key(struct json_writer *w, const char *key);
/* Any bytes: invalid UTF-8 sequences become U+FFFD, control characters and
 * '"' '\\' are escaped, U+2028/U+2029 escaped; output is always valid JSON. */
void json_w_str(struct json_writer *w, const char *s, size_t len);
void json_w_cstr(struct json_writer *w, const char *s);
void json_w_int(struct json_writer *w, int64_t v);
void json_w_uint(struct json_writer *w, uint64_t v);
void json_w_double(struct json_writer *w, double v); /* non-finite written as null */
void json_w_bool(struct json_writer *w, int v);
void json_w_null(struct json_writer *w);
/* An object member in one call: json_w_key(w, key) then the value, so an
 * object written field by field reads one line a field.  Same output, same
 * failure rules as the two calls. */
void json_w_kv_cstr(struct json_writer *w, const char *key, const char *s);
void json_w_kv_int(struct json_writer *w, const char *key, int64_t v);
void json_w_kv_uint(struct json_writer *w, const char *key, uint64_t v);
void json_w_kv_double(struct json_writer *w, const char *key, double v);
void json_w_kv_bool(struct json_writer *w, const char *key, int v);

/* Appends the escaped JSON string (with quotes) for any bytes to sb. */
int json_escape_to(struct sbuf *sb, const char *s, size_t len);
/* The same escaping in parts, for answers streamed as the socket drains:
 * appends the escaped form of s[*pos..len) (without the quotes) and stops at
 * a character boundary once about `limit` bytes were appended (at most
 * limit + 6); *pos advances.  The parts concatenated are exactly what
 * json_escape_to writes between the quotes. */
int json_escape_part(struct sbuf *sb, const char *s, size_t len, size_t *pos, size_t limit);
/* Length of json_escape_to's output for s (quotes included). */
size_t json_escaped_len(const char *s, size_t len);

#endif
