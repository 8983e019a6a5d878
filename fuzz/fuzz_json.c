/* libFuzzer harness for json.c.
 *
 * 1. Parse the input with limits.  When it parses, write the tree back out
 *    with the writer, re-parse that (must succeed), check the two trees are
 *    equal, and check that writing the second tree gives the same bytes.
 * 2. Feed the raw input to json_w_str: the output must parse as one JSON
 *    string, equal to the input when the input is valid UTF-8 (checked by an
 *    independent validator below).
 * Any violation aborts, which libFuzzer reports as a crash. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Plain validator, written independently of json.c: decode, then reject
 * overlongs, surrogates and values past U+10FFFF by code point range. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len, k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static int has_nul_key(const struct json_value *v)
{
    size_t i;
    if (v->type == JSON_ARRAY) {
        for (i = 0; i < v->u.arr.n; i++)
            if (has_nul_key(&v->u.arr.items[i]))
                return 1;
    } else if (v->type == JSON_OBJECT) {
        for (i = 0; i < v->u.obj.n; i++)
            if (strlen(v->u.obj.members[i].key) != v->u.obj.members[i].key_len ||
                has_nul_key(&v->u.obj.members[i].value))
                return 1;
    }
    return 0;
}

static void write_value(struct json_writer *w, const struct json_value *v)
{
    size_t i;
    switch (v->type) {
    case JSON_NULL:
        json_w_null(w);
        break;
    case JSON_BOOL:
        json_w_bool(w, v->u.boolean);
        break;
    case JSON_NUMBER:
        /* "-0" parses as the integer 0 with d == -0.0: keep its sign. */
        if (v->u.num.is_int && !(v->u.num.i == 0 && signbit(v->u.num.d)))
            json_w_int(w, v->u.num.i);
        else
            json_w_double(w, v->u.num.d);
        break;
    case JSON_STRING:
        json_w_str(w, v->u.str.s, v->u.str.len);
        break;
    case JSON_ARRAY:
        json_w_arr_begin(w);
        for (i = 0; i < v->u.arr.n; i++)
            write_value(w, &v->u.arr.items[i]);
        json_w_arr_end(w);
        break;
    case JSON_OBJECT:
        json_w_obj_begin(w);
        for (i = 0; i < v->u.obj.n; i++) {
            json_w_key(w, v->u.obj.members[i].key);
            write_value(w, &v->u.obj.members[i].value);
        }
        json_w_obj_end(w);
        break;
    }
}

static void check_equal(const struct json_value *a, const struct json_value *b)
{
    size_t i;
    CHECK(a->type == b->type);
    switch (a->type) {
    case JSON_NULL:
        break;
    case JSON_BOOL:
        CHECK(!a->u.boolean == !b->u.boolean);
        break;
    case JSON_NUMBER:
        /* "1.0" comes back as the integer 1: compare the double always, the
         * integer when both have one. */
        CHECK(isfinite(a->u.num.d));
        CHECK(a->u.num.d == b->u.num.d);
        if (a->u.num.is_int) {
            /* "-0" is the integer 0 and is written as 0. */
            CHECK(b->u.num.is_int);
            CHECK(a->u.num.i == b->u.num.i);
            CHECK((double)a->u.num.i == a->u.num.d);
        } else {
            CHECK(!signbit(a->u.num.d) == !signbit(b->u.num.d));
        }
        break;
    case JSON_STRING:
        CHECK(a->u.str.len == b->u.str.len);
        CHECK(memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0);
        CHECK(a->u.str.s[a->u.str.len] == '\0');
        CHECK(valid_utf8((const unsigned char *)a->u.str.s, a->u.str.len));
        break;
    case JSON_ARRAY:
        CHECK(a->u.arr.n == b->u.arr.n);
        for (i = 0; i < a->u.arr.n; i++)
            check_equal(&a->u.arr.items[i], &b->u.arr.items[i]);
        break;
    case JSON_OBJECT:
        CHECK(a->u.obj.n == b->u.obj.n);
        for (i = 0; i < a->u.obj.n; i++) {
            const struct json_member *ma = &a->u.obj.members[i], *mb = &b->u.obj.members[i];
            CHECK(ma->key_len == mb->key_len);
            CHECK(memcmp(ma->key, mb->key, ma->key_len) == 0);
            CHECK(valid_utf8((const unsigned char *)ma->key, ma->key_len));
            CHECK(json_get(a, ma->key) != NULL);
            check_equal(&ma->value, &mb->value);
        }
        break;
    }
}

static void write_doc(const struct json_value *root, struct sbuf *sb)
{
    struct json_writer w;
    sbuf_init(sb, (size_t)256 << 20);
    json_w_init(&w, sb);
    write_value(&w, root);
    CHECK(!w.failed);
    CHECK(w.depth == 0);
}

static void roundtrip_tree(const struct json_value *root)
{
    static const struct json_limits relim = {SIZE_MAX, JSON_WRITER_MAX_DEPTH, SIZE_MAX};
    struct sbuf out1, out2;
    struct json_doc *doc2 = NULL;
    struct bx_err err;

    if (has_nul_key(root)) /* json_w_key takes C strings: not representable */
        return;
    write_doc(root, &out1);
    if (json_parse(out1.data, out1.len, &relim, &doc2, &err) != 0) {
        fprintf(stderr, "re-parse failed: %s\n%.*s\n", err.msg, (int)out1.len, out1.data);
        abort();
    }
    check_equal(root, json_doc_root(doc2));
    write_doc(json_doc_root(doc2), &out2);
    CHECK(out1.len == out2.len && memcmp(out1.data, out2.data, out1.len) == 0);
    json_doc_free(&doc2);
    sbuf_free(&out1);
    sbuf_free(&out2);
}

static void roundtrip_string(const uint8_t *data, size_t size)
{
    static const struct json_limits slim = {SIZE_MAX, 1, 1};
    struct sbuf sb;
    struct json_writer w;
    struct json_doc *doc = NULL;
    struct bx_err err;
    const struct json_value *v;

    sbuf_init(&sb, (size_t)256 << 20);
    json_w_init(&w, &sb);
    json_w_str(&w, (const char *)data, size);
    CHECK(!w.failed);
    if (json_parse(sb.data, sb.len, &slim, &doc, &err) != 0) {
        fprintf(stderr, "escaped string does not parse: %s\n", err.msg);
        abort();
    }
    v = json_doc_root(doc);
    CHECK(v->type == JSON_STRING);
    CHECK(v->u.str.len <= size * 3);
    CHECK(valid_utf8((const unsigned char *)v->u.str.s, v->u.str.len));
    if (valid_utf8(data, size)) {
        CHECK(v->u.str.len == size);
        CHECK(memcmp(v->u.str.s, data, size) == 0);
    }
    /* No raw U+2028/U+2029 and no raw control characters in the output. */
    CHECK(memmem(sb.data, sb.len, "\xe2\x80\xa8", 3) == NULL);
    CHECK(memmem(sb.data, sb.len, "\xe2\x80\xa9", 3) == NULL);
    {
        size_t i;
        for (i = 0; i < sb.len; i++)
            CHECK((unsigned char)sb.data[i] >= 0x20);
    }
    /* The streamed /run answer escapes in parts: any part size must give
     * the same bytes, and json_escaped_len their length. */
    CHECK(json_escaped_len((const char *)data, size) == sb.len);
    {
        struct sbuf parts;
        size_t pos = 0, limit = size ? (size_t)data[0] % 64 + 1 : 1;
        sbuf_init(&parts, (size_t)256 << 20);
        CHECK(sbuf_putc(&parts, '"') == 0);
        while (pos < size) {
            size_t before = parts.len, was = pos;
            CHECK(json_escape_part(&parts, (const char *)data, size, &pos, limit) == 0);
            CHECK(pos > was && pos <= size);
            CHECK(parts.len - before <= limit + 6);
        }
        CHECK(sbuf_putc(&parts, '"') == 0);
        CHECK(parts.len == sb.len && memcmp(parts.data, sb.data, sb.len) == 0);
        sbuf_free(&parts);
    }
    json_doc_free(&doc);
    sbuf_free(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small caps keep every input cheap (a 1 MiB document costs ~150 ms
     * here): the cap branches are the same code at any size, and the
     * product's own caps (1 MiB config, 4 MiB /run body, their value
     * counts) are reached by fuzz_config and fuzz_runreq. */
    static const struct json_limits lim = {64 << 10, JSON_WRITER_MAX_DEPTH, 4096};
    struct json_doc *doc = NULL;
    struct bx_err err;

    if (json_parse((const char *)data, size, &lim, &doc, &err) == 0) {
        roundtrip_tree(json_doc_root(doc));
        json_doc_free(&doc);
    } else {
        CHECK(doc == NULL);
        CHECK(err.status == (size > lim.max_bytes ? 413 : 400));
        CHECK(strncmp(err.msg, "invalid JSON at byte ", 21) == 0 || err.status == 413);
    }
    roundtrip_string(data, size);
    return 0;
}
