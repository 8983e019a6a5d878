/* Unit tests for json.c.  Every parse goes through parse_both(), which parses
 * the input in place and again from a copy that ends right before an
 * unreadable page, and checks both give the same answer: any read past the
 * end of the input crashes the test. */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "json.h"
#include "tests/unit/guard.h"

static const struct json_limits lim_default = {
    .max_bytes = 1 << 20,
    .max_depth = 32,
    .max_values = 200000,
};

/* Parses s[0..len) directly and from a guard-page copy; returns the guard
 * result (doc owned by the caller when 0). */
static int parse_both(const char *s, size_t len, const struct json_limits *lim,
                      struct json_doc **doc, struct bx_err *err)
{
    struct guard_buf g = {0};
    struct json_doc *d1 = NULL;
    struct bx_err e1;
    int rc1, rc2;
    char *copy = guard_copy(&g, s, len);

    bx_err_clear(&e1);
    bx_err_clear(err);
    rc1 = json_parse(s, len, lim, &d1, &e1);
    rc2 = json_parse(copy, len, lim, doc, err);
    guard_free(&g); /* the doc must not point into the input */
    ck_assert_int_eq(rc1, rc2);
    if (rc2 < 0) {
        ck_assert_ptr_null(*doc);
        ck_assert_int_eq(e1.status, err->status);
        ck_assert_str_eq(e1.msg, err->msg);
    } else {
        ck_assert_ptr_nonnull(*doc);
    }
    json_doc_free(&d1);
    return rc2;
}

static struct json_doc *parse_ok(const char *s, size_t len)
{
    struct json_doc *doc = NULL;
    struct bx_err err;
    int rc = parse_both(s, len, &lim_default, &doc, &err);
    ck_assert_msg(rc == 0, "parse of '%.*s' failed: %s", (int)len, s, err.msg);
    return doc;
}

#define PARSE_OK(lit) parse_ok((lit), sizeof(lit) - 1)

/* ---- valid documents ---- */

START_TEST(test_scalars)
{
    struct json_doc *doc;
    const struct json_value *v;

    doc = PARSE_OK("null");
    ck_assert_int_eq(json_doc_root(doc)->type, JSON_NULL);
    json_doc_free(&doc);
    ck_assert_ptr_null(doc);

    doc = PARSE_OK(" \t\r\ntrue\n");
    v = json_doc_root(doc);
    ck_assert_int_eq(v->type, JSON_BOOL);
    ck_assert_int_eq(v->u.boolean, 1);
    json_doc_free(&doc);

    doc = PARSE_OK("false");
    v = json_doc_root(doc);
    ck_assert_int_eq(v->type, JSON_BOOL);
    ck_assert_int_eq(v->u.boolean, 0);
    json_doc_free(&doc);

    doc = PARSE_OK("\"hi\"");
    v = json_doc_root(doc);
    ck_assert_int_eq(v->type, JSON_STRING);
    ck_assert_uint_eq(v->u.str.len, 2);
    ck_assert_str_eq(v->u.str.s, "hi");
    json_doc_free(&doc);

    doc = PARSE_OK("\"\"");
    v = json_doc_root(doc);
    ck_assert_int_eq(v->type, JSON_STRING);
    ck_assert_uint_eq(v->u.str.len, 0);
    ck_assert_str_eq(v->u.str.s, "");
    json_doc_free(&doc);

    json_doc_free(&doc); /* NULL is fine */
    json_doc_free(NULL);
    ck_assert_ptr_null(json_doc_root(NULL));
}
END_TEST

static void check_num(const char *s, int is_int, int64_t i, double d)
{
    struct json_doc *doc = parse_ok(s, strlen(s));
    const struct json_value *v = json_doc_root(doc);
    ck_assert_int_eq(v->type, JSON_NUMBER);
    ck_assert_msg(v->u.num.is_int == is_int, "%s: is_int %d", s, v->u.num.is_int);
    if (is_int)
        ck_assert_msg(v->u.num.i == i, "%s: i %lld", s, (long long)v->u.num.i);
    ck_assert_msg(v->u.num.d == d && !signbit(v->u.num.d) == !signbit(d), "%s: d %.17g", s,
                  v->u.num.d);
    json_doc_free(&doc);
}

START_TEST(test_numbers)
{
    check_num("0", 1, 0, 0.0);
    check_num("-0", 1, 0, -0.0);
    check_num("7", 1, 7, 7.0);
    check_num("-42", 1, -42, -42.0);
    check_num("1.5", 0, 0, 1.5);
    check_num("-0.25", 0, 0, -0.25);
    check_num("1.0", 0, 0, 1.0);
    check_num("1e3", 0, 0, 1000.0);
    check_num("1E-2", 0, 0, 0.01);
    check_num("123.456e+7", 0, 0, 123.456e7);
    check_num("-0.0", 0, 0, -0.0);
    check_num("0e0", 0, 0, 0.0);
    check_num("1e-400", 0, 0, 0.0); /* underflow is fine; overflow is refused */
    check_num("2.2250738585072014e-308", 0, 0, 2.2250738585072014e-308);
    check_num("1.7976931348623157e308", 0, 0, 1.7976931348623157e308);
}
END_TEST

START_TEST(test_int_boundaries)
{
    check_num("9223372036854775807", 1, INT64_MAX, 9223372036854775807.0);
    check_num("-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0);
    check_num("9223372036854775806", 1, INT64_MAX - 1, 9223372036854775806.0);
    check_num("-9223372036854775807", 1, INT64_MIN + 1, -9223372036854775807.0);
    /* Past int64: a double, not is_int. */
    check_num("9223372036854775808", 0, 0, 9223372036854775808.0);
    check_num("-9223372036854775809", 0, 0, -9223372036854775809.0);
    check_num("18446744073709551615", 0, 0, 18446744073709551615.0);
    check_num("18446744073709551616", 0, 0, 18446744073709551616.0);
    check_num("99999999999999999999999", 0, 0, 99999999999999999999999.0);
    check_num("-99999999999999999999999", 0, 0, -99999999999999999999999.0);
    check_num("9223372036854775807.0", 0, 0, 9223372036854775807.0);
    check_num("1e2", 0, 0, 100.0);
}
END_TEST

START_TEST(test_long_number)
{
    /* A number token far longer than any stack buffer, ending exactly at the
     * guard page. */
    size_t n = 100000, i;
    char *s = malloc(n + 8);
    struct json_doc *doc;
    const struct json_value *v;
    ck_assert_ptr_nonnull(s);
    s[0] = '0';
    s[1] = '.';
    for (i = 2; i < n; i++)
        s[i] = (char)('0' + i % 10);
    doc = parse_ok(s, n);
    v = json_doc_root(doc);
    ck_assert_int_eq(v->u.num.is_int, 0);
    ck_assert(fabs(v->u.num.d - 0.23456789012345678) < 1e-15);
    json_doc_free(&doc);

    /* A long integer overflows to a double. */
    memset(s, '9', n);
    doc = parse_ok(s, 300);
    v = json_doc_root(doc);
    ck_assert_int_eq(v->u.num.is_int, 0);
    ck_assert(v->u.num.d > 9e299 && isfinite(v->u.num.d));
    json_doc_free(&doc);
    free(s);
}
END_TEST

START_TEST(test_strings)
{
    struct json_doc *doc;
    const struct json_value *v;

    doc = PARSE_OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\"");
    v = json_doc_root(doc);
    ck_assert_int_eq(v->type, JSON_STRING);
    ck_assert_str_eq(v->u.str.s, "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac");
    ck_assert_uint_eq(v->u.str.len, strlen(v->u.str.s));
    ck_assert_int_eq(json_str_has_nul(v), 0);
    json_doc_free(&doc);

    doc = PARSE_OK("\"a\\u0000b\"");
    v = json_doc_root(doc);
    ck_assert_uint_eq(v->u.str.len, 3);
    ck_assert_mem_eq(v->u.str.s, "a\0b", 4);
    ck_assert_int_eq(json_str_has_nul(v), 1);
    json_doc_free(&doc);

    /* Raw UTF-8 at the edges of each range, and DEL, pass through. */
    doc = PARSE_OK("\"\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                   "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
    v = json_doc_root(doc);
    ck_assert_str_eq(v->u.str.s, "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
                                 "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
    json_doc_free(&doc);

    /* \u escapes encoding to 1, 2 and 3 bytes, and the surrogate range's
     * neighbours. */
    doc = PARSE_OK("\"\\u007f\\u0080\\u07FF\\u0800\\uD7FF\\uE000\\uFFFF\"");
    v = json_doc_root(doc);
    ck_assert_str_eq(v->u.str.s, "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
                                 "\xef\xbf\xbf");
    json_doc_free(&doc);
}
END_TEST

START_TEST(test_surrogate_pairs)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
        {"\"\\uD800\\uDC00\"", "\xf0\x90\x80\x80"},
        {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf"},
        {"\"\\uD834\\uDD1E\"", "\xf0\x9d\x84\x9e"},
        {"\"x\\ud83d\\ude00y\\ud83d\\ude01\"", "x\xf0\x9f\x98\x80y\xf0\x9f\x98\x81"},
    };
    size_t i;
    for (i = 0; i < BX_ARRAY_LEN(cases); i++) {
        struct json_doc *doc = parse_ok(cases[i].in, strlen(cases[i].in));
        ck_assert_str_eq(json_doc_root(doc)->u.str.s, cases[i].out);
        json_doc_free(&doc);
    }
}
END_TEST

START_TEST(test_containers)
{
    const char *s = " { \"a\" : [ 1 , 2.5 , \"x\" , null , true , false , [ ] , { } ] ,"
                    " \"b\" : { \"c\" : { \"d\" : [ [ ] ] } } , \"\" : 0 } ";
    struct json_doc *doc = parse_ok(s, strlen(s));
    const struct json_value *r = json_doc_root(doc), *a, *b, *d;

    ck_assert_int_eq(r->type, JSON_OBJECT);
    ck_assert_uint_eq(r->u.obj.n, 3);
    ck_assert_str_eq(r->u.obj.members[0].key, "a");
    ck_assert_str_eq(r->u.obj.members[1].key, "b");
    ck_assert_str_eq(r->u.obj.members[2].key, "");
    ck_assert_uint_eq(r->u.obj.members[2].key_len, 0);

    a = json_get(r, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->type, JSON_ARRAY);
    ck_assert_uint_eq(a->u.arr.n, 8);
    ck_assert_int_eq(a->u.arr.items[0].u.num.i, 1);
    ck_assert(a->u.arr.items[1].u.num.d == 2.5);
    ck_assert_str_eq(a->u.arr.items[2].u.str.s, "x");
    ck_assert_int_eq(a->u.arr.items[3].type, JSON_NULL);
    ck_assert_int_eq(a->u.arr.items[4].u.boolean, 1);
    ck_assert_int_eq(a->u.arr.items[5].u.boolean, 0);
    ck_assert_int_eq(a->u.arr.items[6].type, JSON_ARRAY);
    ck_assert_uint_eq(a->u.arr.items[6].u.arr.n, 0);
    ck_assert_int_eq(a->u.arr.items[7].type, JSON_OBJECT);
    ck_assert_uint_eq(a->u.arr.items[7].u.obj.n, 0);

    b = json_get(r, "b");
    d = json_get(json_get(b, "c"), "d");
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->type, JSON_ARRAY);
    ck_assert_uint_eq(d->u.arr.n, 1);
    ck_assert_int_eq(d->u.arr.items[0].type, JSON_ARRAY);

    ck_assert_ptr_nonnull(json_get(r, ""));
    ck_assert_ptr_null(json_get(r, "zz"));
    ck_assert_ptr_null(json_get(a, "a")); /* not an object */
    ck_assert_ptr_null(json_get(NULL, "a"));
    json_doc_free(&doc);

    doc = PARSE_OK("[]");
    ck_assert_int_eq(json_doc_root(doc)->type, JSON_ARRAY);
    ck_assert_uint_eq(json_doc_root(doc)->u.arr.n, 0);
    json_doc_free(&doc);

    doc = PARSE_OK("{\"k\\u0000x\":1,\"k\":2}");
    r = json_doc_root(doc);
    ck_assert_uint_eq(r->u.obj.members[0].key_len, 3);
    /* Lookup by C string matches the exact key only. */
    ck_assert_int_eq(json_get(r, "k")->u.num.i, 2);
    json_doc_free(&doc);
}
END_TEST

START_TEST(test_big_array)
{
    /* Many values across several arena blocks. */
    size_t n = 50000, i;
    int rc = 0;
    struct sbuf sb;
    struct json_doc *doc;
    const struct json_value *r;
    sbuf_init(&sb, 1 << 22);
    ck_assert_int_eq(sbuf_putc(&sb, '['), 0);
    for (i = 0; i < n; i++)
        rc |= sbuf_appendf(&sb, "%s{\"k%zu\":\"v%zu\"}", i ? "," : "", i, i);
    rc |= sbuf_putc(&sb, ']');
    ck_assert_int_eq(rc, 0);
    doc = parse_ok(sb.data, sb.len);
    r = json_doc_root(doc);
    ck_assert_uint_eq(r->u.arr.n, n);
    for (i = 0; i < n; i += 997) {
        char k[32], v[32];
        snprintf(k, sizeof(k), "k%zu", i);
        snprintf(v, sizeof(v), "v%zu", i);
        ck_assert_str_eq(json_get(&r->u.arr.items[i], k)->u.str.s, v);
    }
    json_doc_free(&doc);
    sbuf_free(&sb);
}
END_TEST

/* ---- invalid documents ---- */

struct bad_case {
    const char *in;
    size_t len;
    const char *want;
};

#define BAD(lit, want)                                                                             \
    {                                                                                              \
        (lit), sizeof(lit) - 1, (want)                                                             \
    }

static const struct bad_case bad_cases[] = {
    BAD("", "at byte 0: empty document"),
    BAD("   ", "at byte 3: empty document"),
    BAD("[", "at byte 1: unexpected end of input, expected a value"),
    BAD("[1", "at byte 2: expected ',' or ']', got end of input"),
    BAD("[1,]", "at byte 3: unexpected ']', expected a value"),
    BAD("[1,,2]", "at byte 3: unexpected ','"),
    BAD("[1 2]", "at byte 3: expected ',' or ']', got '2'"),
    BAD("[1}", "at byte 2: expected ',' or ']', got '}'"),
    BAD("[}", "at byte 1: unexpected '}'"),
    BAD("]", "at byte 0: unexpected ']'"),
    BAD("{", "at byte 1: expected string key, got end of input"),
    BAD("{]", "at byte 1: expected string key, got ']'"),
    BAD("{1:2}", "at byte 1: expected string key"),
    BAD("{'a':1}", "at byte 1: expected string key, got '''"),
    BAD("{\"a\":1,}", "at byte 7: expected string key, got '}'"),
    BAD("{\"a\" 1}", "at byte 5: expected ':' after key, got '1'"),
    BAD("{\"a\"", "at byte 4: expected ':' after key, got end of input"),
    BAD("{\"a\":}", "at byte 5: unexpected '}', expected a value"),
    BAD("{\"a\":1", "at byte 6: expected ',' or '}', got end of input"),
    BAD("{\"a\":1]", "at byte 6: expected ',' or '}', got ']'"),
    BAD("{\"a\":1 \"b\":2}", "at byte 7: expected ',' or '}'"),
    BAD("1 2", "at byte 2: unexpected '2' after the JSON value"),
    BAD("{} x", "at byte 3: unexpected 'x' after the JSON value"),
    BAD("[1]\0", "at byte 3: unexpected byte 0x00 after the JSON value"),
    BAD("\0", "at byte 0: unexpected byte 0x00, expected a value"),
    BAD("\xef\xbb\xbf{}", "at byte 0: unexpected byte 0xef"),
    BAD("\v1", "at byte 0: unexpected byte 0x0b"),
    BAD("\f1", "at byte 0: unexpected byte 0x0c"),
    BAD("[1,\xa0"
        "2]",
        "at byte 3: unexpected byte 0xa0"),
    /* numbers */
    BAD("01", "at byte 0: leading zero in number"),
    BAD("-01", "at byte 1: leading zero in number"),
    BAD("00", "at byte 0: leading zero"),
    BAD("[007]", "at byte 1: leading zero"),
    BAD("-", "at byte 1: expected digit in number, got end of input"),
    BAD("-a", "at byte 1: expected digit in number, got 'a'"),
    BAD("--1", "at byte 1: expected digit in number"),
    BAD("1.", "at byte 2: expected digit after decimal point"),
    BAD("1.e3", "at byte 2: expected digit after decimal point"),
    BAD(".5", "at byte 0: unexpected '.', expected a value"),
    BAD("+1", "at byte 0: unexpected '+'"),
    BAD("1e", "at byte 2: expected digit in exponent"),
    BAD("1e+", "at byte 3: expected digit in exponent"),
    BAD("1E-x", "at byte 3: expected digit in exponent, got 'x'"),
    BAD("0x10", "at byte 1: unexpected 'x' after the JSON value"),
    BAD("1e400", "at byte 0: number out of range"),
    BAD("[-1.5e99999]", "at byte 1: number out of range"),
    BAD("Infinity", "unexpected 'I', expected a value"),
    BAD("NaN", "unexpected 'N', expected a value"),
    BAD("[-Infinity]", "at byte 2: expected digit in number"),
    /* literals */
    BAD("tru", "at byte 0: invalid literal, expected 'true'"),
    BAD("nul", "invalid literal, expected 'null'"),
    BAD("[fals]", "at byte 1: invalid literal, expected 'false'"),
    BAD("trUe", "invalid literal"),
    BAD("True", "unexpected 'T'"),
    BAD("truex", "at byte 4: unexpected 'x' after the JSON value"),
    BAD("nulll", "at byte 4: unexpected 'l' after"),
    /* strings */
    BAD("\"abc", "at byte 0: unterminated string"),
    BAD("[\"abc\\", "at byte 1: unterminated string"),
    BAD("\"abc\\\"", "at byte 0: unterminated string"),
    BAD("\"a\nb\"", "at byte 2: control character 0x0a in string"),
    BAD("\"a\x01\"", "at byte 2: control character 0x01 in string"),
    BAD("\"\x1f\"", "control character 0x1f"),
    BAD("\"\t\"", "control character 0x09"),
    BAD("\"a\0b\"", "at byte 2: control character 0x00 in string"),
    BAD("\"a\\x\"", "at byte 2: invalid escape 'x'"),
    BAD("\"\\U0041\"", "at byte 1: invalid escape 'U'"),
    BAD("\"\\'\"", "invalid escape '''"),
    BAD("\"\\\x01\"", "at byte 1: invalid escape byte 0x01"),
    BAD("\"\\u12\"", "at byte 1: invalid \\u escape"),
    BAD("\"\\u12G4\"", "at byte 1: invalid \\u escape"),
    BAD("\"\\u\"", "invalid \\u escape"),
    BAD("\"\\u-123\"", "invalid \\u escape"),
    BAD("\"\\ud800\"", "at byte 1: lone surrogate escape \\uD800"),
    BAD("\"\\udc00\"", "at byte 1: lone surrogate escape \\uDC00"),
    BAD("\"ab\\uDFFF\\uD800\"", "at byte 3: lone surrogate escape \\uDFFF"),
    BAD("\"\\ud800\\u0041\"", "lone surrogate escape \\uD800"),
    BAD("\"\\ud800\\ud800\"", "lone surrogate"),
    BAD("\"\\ud800\\n\"", "lone surrogate"),
    BAD("\"\\ud800x\"", "lone surrogate"),
    BAD("\"\\ud800\\udc0\"", "lone surrogate"),
    BAD("\"\\udbff\\ue000\"", "lone surrogate"),
    BAD("\"\\ud83d\\ude00\\ud83d\"", "at byte 13: lone surrogate escape \\uD83D"),
    /* UTF-8 */
    BAD("\"\xc0\xaf\"", "at byte 1: invalid UTF-8 in string: overlong encoding"),
    BAD("\"\xc1\xbf\"", "overlong encoding"),
    BAD("\"ab\xe0\x80\xaf\"", "at byte 3: invalid UTF-8 in string: overlong encoding"),
    BAD("\"\xe0\x9f\xbf\"", "overlong encoding"),
    BAD("\"\xf0\x80\x80\xaf\"", "overlong encoding"),
    BAD("\"\xf0\x8f\xbf\xbf\"", "overlong encoding"),
    BAD("\"\xed\xa0\x80\"", "surrogate code point encoded directly"),
    BAD("\"\xed\xbf\xbf\"", "surrogate code point encoded directly"),
    BAD("\"\xed\xa0\xbd\xed\xb8\x80\"", "surrogate code point encoded directly"),
    BAD("\"\xf4\x90\x80\x80\"", "code point above U+10FFFF"),
    BAD("\"\xf5\x80\x80\x80\"", "code point above U+10FFFF"),
    BAD("\"\xf7\xbf\xbf\xbf\"", "code point above U+10FFFF"),
    BAD("\"\xf8\x88\x80\x80\x80\"", "invalid UTF-8 in string: invalid byte"),
    BAD("\"\xfc\x84\x80\x80\x80\x80\"", "invalid byte"),
    BAD("\"\xfe\"", "invalid byte"),
    BAD("\"\xff\"", "invalid byte"),
    BAD("\"\x80\"", "at byte 1: invalid UTF-8 in string: unexpected continuation byte"),
    BAD("\"\xc3\xa9\xbf\"", "at byte 3: invalid UTF-8 in string: unexpected continuation"),
    BAD("\"\xc3\"", "at byte 1: invalid UTF-8 in string: truncated sequence"),
    BAD("\"\xe2\x82\"", "truncated sequence"),
    BAD("\"\xf0\x9f\x98\"", "truncated sequence"),
    BAD("\"\xe2\x82x\"", "truncated sequence"),
    BAD("\"\xc3\\n\"", "truncated sequence"),
    BAD("\"\xe2\x82", "unterminated string"),
    BAD("{\"\xc3\x28\":1}", "at byte 2: invalid UTF-8 in string: truncated"),
    /* duplicate keys */
    BAD("{\"a\":1,\"a\":2}", "at byte 7: duplicate key \"a\""),
    BAD("{\"a\":1,\"b\":2,\"\\u0061\":3}", "at byte 13: duplicate key \"a\""),
    BAD("{\"x\":{\"a\":1,\"b\":{},\"a\":[]}}", "at byte 19: duplicate key \"a\""),
    BAD("{\"\":1,\"\":2}", "at byte 6: duplicate key \"\""),
    BAD("{\"a\\u0000\":1,\"a\\u0000\":2}", "duplicate key \"a?\""),
};

START_TEST(test_invalid)
{
    const struct bad_case *c = &bad_cases[_i];
    struct json_doc *doc = NULL;
    struct bx_err err;
    int rc = parse_both(c->in, c->len, &lim_default, &doc, &err);
    ck_assert_msg(rc < 0, "case %d: '%.*s' parsed", _i, (int)c->len, c->in);
    ck_assert_int_eq(err.status, 400);
    ck_assert_msg(strncmp(err.msg, "invalid JSON at byte ", 21) == 0, "case %d: %s", _i, err.msg);
    ck_assert_msg(strstr(err.msg, c->want) != NULL, "case %d: want '%s' in '%s'", _i, c->want,
                  err.msg);
}
END_TEST

START_TEST(test_bad_args)
{
    struct json_doc *doc = (struct json_doc *)&doc; /* must be reset to NULL */
    struct bx_err err;
    ck_assert_int_eq(json_parse(NULL, 3, &lim_default, &doc, &err), -1);
    ck_assert_ptr_null(doc);
    ck_assert_int_eq(err.status, 500);
    ck_assert_int_eq(json_parse(NULL, 0, &lim_default, &doc, &err), -1);
    ck_assert_str_eq(err.msg, "invalid JSON at byte 0: empty document");
    ck_assert_int_eq(json_parse("1", 1, &lim_default, NULL, NULL), -1);
    ck_assert_int_eq(json_parse("x", 1, NULL, &doc, NULL), -1); /* NULL err is allowed */
    /* NULL limits: defaults. */
    ck_assert_int_eq(json_parse("[1]", 3, NULL, &doc, &err), 0);
    json_doc_free(&doc);
}
END_TEST

/* ---- limits ---- */

/* json_key_is / json_obj_check_keys: a key matches a known name only when
 * it is exactly that name; a NUL inside (from \u0000) never passes for the
 * prefix before it. */
START_TEST(test_key_checks)
{
    static const char *const known[] = {"image", "cmd", "limits", NULL};
    static const char *const none[] = {NULL};
    const char *txt = "{\"image\": 1, \"cmd\": 2, \"im\\u0000age\": 3, \"image\\u0000\": 4,"
                      " \"imag\": 5, \"images\": 6, \"IMAGE\": 7, \"\": 8}";
    struct json_doc *doc = parse_ok(txt, strlen(txt));
    const struct json_value *root = json_doc_root(doc);
    const struct json_member *m = root->u.obj.members;
    const struct json_member *bad = NULL;
    ck_assert_uint_eq(root->u.obj.n, 8);
    ck_assert(json_key_is(&m[0], "image"));
    ck_assert(!json_key_is(&m[0], "imag"));
    ck_assert(!json_key_is(&m[0], "images"));
    ck_assert(json_key_is(&m[1], "cmd"));
    ck_assert(!json_key_is(&m[2], "im"));
    ck_assert(!json_key_is(&m[3], "image"));
    ck_assert(!json_key_is(&m[4], "image"));
    ck_assert(!json_key_is(&m[5], "image"));
    ck_assert(!json_key_is(&m[6], "image"));
    ck_assert(json_key_is(&m[7], ""));
    ck_assert(!json_key_is(&m[7], "image"));
    /* The first member that is not known is reported. */
    ck_assert_int_eq(json_obj_check_keys(root, known, &bad), -1);
    ck_assert_ptr_eq(bad, &m[2]);
    ck_assert_int_eq(json_obj_check_keys(root, known, NULL), -1);
    json_doc_free(&doc);

    txt = "{\"limits\": {}, \"cmd\": [], \"image\": \"x\"}";
    doc = parse_ok(txt, strlen(txt));
    root = json_doc_root(doc);
    bad = NULL;
    ck_assert_int_eq(json_obj_check_keys(root, known, &bad), 0);
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(json_obj_check_keys(root, none, &bad), -1);
    ck_assert_ptr_eq(bad, &root->u.obj.members[0]);
    json_doc_free(&doc);

    txt = "{\"image\\u0000\": 1}";
    doc = parse_ok(txt, strlen(txt));
    ck_assert_int_eq(json_obj_check_keys(json_doc_root(doc), known, &bad), -1);
    json_doc_free(&doc);

    doc = parse_ok("{}", 2);
    ck_assert_int_eq(json_obj_check_keys(json_doc_root(doc), none, &bad), 0);
    json_doc_free(&doc);
}
END_TEST

static char *nested(int depth, const char *open, const char *close, const char *inner)
{
    struct sbuf sb;
    int i, rc = 0;
    /* One assertion at the end: Check assertions are slow in tight loops. */
    sbuf_init(&sb, (size_t)64 << 20);
    for (i = 0; i < depth; i++)
        rc |= sbuf_append(&sb, open, strlen(open));
    rc |= sbuf_append(&sb, inner, strlen(inner));
    for (i = 0; i < depth; i++)
        rc |= sbuf_append(&sb, close, strlen(close));
    ck_assert_int_eq(rc, 0);
    return sbuf_steal(&sb, NULL);
}

START_TEST(test_depth_limit)
{
    struct json_limits lim = lim_default;
    struct json_doc *doc = NULL;
    struct bx_err err;
    char *s;

    lim.max_depth = 5;
    s = nested(5, "[", "]", "1");
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), 0);
    json_doc_free(&doc);
    free(s);

    s = nested(6, "[", "]", "");
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.msg, "invalid JSON at byte 5: nesting deeper than 5");
    free(s);

    s = nested(5, "{\"a\":", "}", "{}");
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), -1);
    ck_assert_pstr_eq(err.msg, "invalid JSON at byte 25: nesting deeper than 5");
    free(s);

    s = nested(4, "{\"a\":[", "]}", "");
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), -1);
    ck_assert(strstr(err.msg, "nesting deeper than 5") != NULL);
    free(s);

    /* Scalars only. */
    lim.max_depth = 0;
    ck_assert_int_eq(parse_both("[]", 2, &lim, &doc, &err), -1);
    ck_assert_int_eq(parse_both("1", 1, &lim, &doc, &err), 0);
    json_doc_free(&doc);

    /* The parser is iterative: a huge limit and a huge depth do not touch
     * the C stack. */
    lim.max_depth = INT_MAX;
    lim.max_values = SIZE_MAX;
    lim.max_bytes = SIZE_MAX;
    s = nested(1000000, "[", "]", "");
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), 0);
    json_doc_free(&doc);
    free(s);
    s = nested(300000, "{\"\":", "}", "0");
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), 0);
    json_doc_free(&doc);
    free(s);
}
END_TEST

START_TEST(test_values_limit)
{
    const char *s = "[1,[2,3],{\"a\":4,\"b\":[]},\"x\"]"; /* 9 values */
    struct json_limits lim = lim_default;
    struct json_doc *doc = NULL;
    struct bx_err err;

    lim.max_values = 9;
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), 0);
    json_doc_free(&doc);
    lim.max_values = 8;
    ck_assert_int_eq(parse_both(s, strlen(s), &lim, &doc, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.msg, "invalid JSON at byte 24: more than 8 values");
    lim.max_values = 0;
    ck_assert_int_eq(parse_both("1", 1, &lim, &doc, &err), -1);
    ck_assert_str_eq(err.msg, "invalid JSON at byte 0: more than 0 values");
}
END_TEST

START_TEST(test_max_bytes)
{
    struct json_limits lim = lim_default;
    struct json_doc *doc = NULL;
    struct bx_err err;

    lim.max_bytes = 5;
    ck_assert_int_eq(parse_both("[1,2]", 5, &lim, &doc, &err), 0);
    json_doc_free(&doc);
    ck_assert_int_eq(parse_both("[1,2] ", 6, &lim, &doc, &err), -1);
    ck_assert_int_eq(err.status, 413);
    ck_assert(strstr(err.msg, "6 bytes") != NULL);
    /* Size is checked before syntax. */
    ck_assert_int_eq(parse_both("garbage", 7, &lim, &doc, &err), -1);
    ck_assert_int_eq(err.status, 413);
    lim.max_bytes = 0;
    ck_assert_int_eq(parse_both("1", 1, &lim, &doc, &err), -1);
    ck_assert_int_eq(err.status, 413);
}
END_TEST

START_TEST(test_duplicate_keys_large)
{
    /* Past the pairwise threshold the sorted check runs; it must report the
     * first key (in document order) that repeats an earlier one. */
    struct sbuf sb;
    struct json_doc *doc = NULL;
    struct bx_err err;
    char want[128];
    int rc = 0;
    size_t i, off = 0, n = 2000;

    sbuf_init(&sb, 1 << 20);
    ck_assert_int_eq(sbuf_putc(&sb, '{'), 0);
    for (i = 0; i < n; i++)
        rc |= sbuf_appendf(&sb, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    rc |= sbuf_putc(&sb, '}');
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(parse_both(sb.data, sb.len, &lim_default, &doc, &err), 0);
    ck_assert_uint_eq(json_doc_root(doc)->u.obj.n, n);
    ck_assert_int_eq(json_get(json_doc_root(doc), "k1234")->u.num.i, 1234);
    json_doc_free(&doc);

    sb.len--; /* drop '}' */
    ck_assert_int_eq(sbuf_putc(&sb, ','), 0);
    off = sb.len;
    ck_assert_int_eq(sbuf_appendf(&sb, "\"k7\":0,\"k1999\":1,\"k1999\":2}"), 0);
    /* k7 and k1999 both repeat.  k7's repeat comes first in the document
     * although "k1999" sorts first: the report follows document order. */
    ck_assert_int_eq(parse_both(sb.data, sb.len, &lim_default, &doc, &err), -1);
    snprintf(want, sizeof(want), "invalid JSON at byte %zu: duplicate key \"k7\"", off);
    ck_assert_str_eq(err.msg, want);
    sbuf_free(&sb);

    /* Keys that differ only after an embedded NUL, or by a trailing NUL,
     * are distinct. */
    sbuf_init(&sb, 1 << 20);
    ck_assert_int_eq(sbuf_putc(&sb, '{'), 0);
    for (i = 0; i < 40; i++)
        ck_assert_int_eq(sbuf_appendf(&sb, "\"a\\u0000%zu\":0,", i), 0);
    ck_assert_int_eq(sbuf_appendf(&sb, "\"a\":1,\"a\\u0000\":2}"), 0);
    ck_assert_int_eq(parse_both(sb.data, sb.len, &lim_default, &doc, &err), 0);
    json_doc_free(&doc);
    sbuf_free(&sb);

    /* The same key in sibling and nested objects is fine. */
    doc = PARSE_OK("[{\"a\":1},{\"a\":{\"a\":2}}]");
    json_doc_free(&doc);
}
END_TEST

/* ---- writer ---- */

static const char *w_done(struct json_writer *w)
{
    ck_assert_int_eq(w->failed, 0);
    ck_assert_int_eq(w->depth, 0);
    return w->out->data;
}

START_TEST(test_writer_structure)
{
    struct sbuf sb;
    struct json_writer w;
    struct json_doc *doc;

    sbuf_init(&sb, 4096);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    json_w_key(&w, "a");
    json_w_int(&w, -5);
    json_w_key(&w, "b");
    json_w_arr_begin(&w);
    json_w_null(&w);
    json_w_bool(&w, 1);
    json_w_bool(&w, 0);
    json_w_arr_begin(&w);
    json_w_arr_end(&w);
    json_w_obj_begin(&w);
    json_w_obj_end(&w);
    json_w_cstr(&w, "x\"y");
    json_w_uint(&w, UINT64_MAX);
    json_w_int(&w, INT64_MIN);
    json_w_arr_end(&w);
    json_w_key(&w, "q\n");
    json_w_double(&w, 0.5);
    json_w_obj_end(&w);
    ck_assert_str_eq(w_done(&w), "{\"a\":-5,\"b\":[null,true,false,[],{},\"x\\\"y\","
                                 "18446744073709551615,-9223372036854775808],\"q\\n\":0.5}");
    doc = parse_ok(sb.data, sb.len);
    json_doc_free(&doc);
    sbuf_free(&sb);

    sbuf_init(&sb, 4096);
    json_w_init(&w, &sb);
    json_w_str(&w, "", 0);
    ck_assert_str_eq(w_done(&w), "\"\"");
    sbuf_free(&sb);
}
END_TEST

/* The member helpers write exactly what json_w_key plus the value call do,
 * and fail the same way (a member outside an object). */
START_TEST(test_writer_members)
{
    struct sbuf sb;
    struct json_writer w;

    sbuf_init(&sb, 4096);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    json_w_kv_cstr(&w, "s", "x\"y");
    json_w_kv_int(&w, "i", INT64_MIN);
    json_w_kv_uint(&w, "u", UINT64_MAX);
    json_w_kv_double(&w, "d", 0.5);
    json_w_kv_bool(&w, "t", 1);
    json_w_kv_bool(&w, "f", 0);
    json_w_obj_end(&w);
    ck_assert_str_eq(w_done(&w), "{\"s\":\"x\\\"y\",\"i\":-9223372036854775808,"
                                 "\"u\":18446744073709551615,\"d\":0.5,\"t\":true,\"f\":false}");
    sbuf_free(&sb);

    sbuf_init(&sb, 4096);
    json_w_init(&w, &sb);
    json_w_arr_begin(&w);
    json_w_kv_uint(&w, "u", 1);
    ck_assert(w.failed);
    sbuf_free(&sb);

    sbuf_init(&sb, 4096);
    json_w_init(&w, &sb);
    json_w_obj_begin(&w);
    json_w_kv_cstr(&w, "s", NULL);
    ck_assert(w.failed);
    sbuf_free(&sb);
}
END_TEST

START_TEST(test_writer_doubles)
{
    static const struct {
        double d;
        const char *out;
    } cases[] = {
        {0.1, "0.1"},   {-0.0, "-0"},  {1e300, "1e+300"},  {1.5e-7, "1.5e-07"},
        {100.0, "100"}, {NAN, "null"}, {INFINITY, "null"}, {-INFINITY, "null"},
    };
    static const double rt[] = {1.0 / 3,
                                5e-324,
                                1.7976931348623157e308,
                                2.2250738585072014e-308,
                                0.30000000000000004,
                                -123456.789e-300};
    size_t i;
    for (i = 0; i < BX_ARRAY_LEN(cases); i++) {
        struct sbuf sb;
        struct json_writer w;
        sbuf_init(&sb, 100);
        json_w_init(&w, &sb);
        json_w_double(&w, cases[i].d);
        ck_assert_str_eq(w_done(&w), cases[i].out);
        sbuf_free(&sb);
    }
    for (i = 0; i < BX_ARRAY_LEN(rt); i++) {
        struct sbuf sb;
        struct json_writer w;
        struct json_doc *doc;
        sbuf_init(&sb, 100);
        json_w_init(&w, &sb);
        json_w_double(&w, rt[i]);
        doc = parse_ok(w_done(&w), sb.len);
        ck_assert(json_doc_root(doc)->u.num.d == rt[i]);
        json_doc_free(&doc);
        sbuf_free(&sb);
    }
}
END_TEST

typedef void (*misuse_fn)(struct json_writer *w);

static void mis_key_in_array(struct json_writer *w)
{
    json_w_arr_begin(w);
    json_w_key(w, "a");
}
static void mis_value_without_key(struct json_writer *w)
{
    json_w_obj_begin(w);
    json_w_int(w, 1);
}
static void mis_two_keys(struct json_writer *w)
{
    json_w_obj_begin(w);
    json_w_key(w, "a");
    json_w_key(w, "b");
}
static void mis_end_after_key(struct json_writer *w)
{
    json_w_obj_begin(w);
    json_w_key(w, "a");
    json_w_obj_end(w);
}
static void mis_wrong_end(struct json_writer *w)
{
    json_w_arr_begin(w);
    json_w_obj_end(w);
}
static void mis_wrong_end2(struct json_writer *w)
{
    json_w_obj_begin(w);
    json_w_arr_end(w);
}
static void mis_end_at_top(struct json_writer *w)
{
    json_w_arr_end(w);
}
static void mis_two_top_values(struct json_writer *w)
{
    json_w_int(w, 1);
    json_w_int(w, 2);
}
static void mis_two_top_containers(struct json_writer *w)
{
    json_w_arr_begin(w);
    json_w_arr_end(w);
    json_w_obj_begin(w);
}
static void mis_key_at_top(struct json_writer *w)
{
    json_w_key(w, "a");
}
static void mis_null_key(struct json_writer *w)
{
    json_w_obj_begin(w);
    json_w_key(w, NULL);
}
static void mis_null_cstr(struct json_writer *w)
{
    json_w_cstr(w, NULL);
}
static void mis_too_deep(struct json_writer *w)
{
    int i;
    for (i = 0; i <= JSON_WRITER_MAX_DEPTH; i++)
        json_w_arr_begin(w);
}

START_TEST(test_writer_misuse)
{
    static const misuse_fn fns[] = {
        mis_key_in_array,       mis_value_without_key, mis_two_keys,   mis_end_after_key,
        mis_wrong_end,          mis_wrong_end2,        mis_end_at_top, mis_two_top_values,
        mis_two_top_containers, mis_key_at_top,        mis_null_key,   mis_null_cstr,
        mis_too_deep,
    };
    size_t i;
    for (i = 0; i < BX_ARRAY_LEN(fns); i++) {
        struct sbuf sb;
        struct json_writer w;
        size_t len;
        sbuf_init(&sb, 4096);
        json_w_init(&w, &sb);
        fns[i](&w);
        ck_assert_msg(w.failed, "misuse %zu not detected", i);
        /* Once failed, nothing more is written. */
        len = sb.len;
        json_w_null(&w);
        json_w_cstr(&w, "more");
        json_w_arr_end(&w);
        ck_assert_uint_eq(sb.len, len);
        ck_assert(w.failed);
        sbuf_free(&sb);
    }
}
END_TEST

START_TEST(test_writer_max_depth_and_limit)
{
    struct sbuf sb;
    struct json_writer w;
    struct json_doc *doc;
    int i;

    sbuf_init(&sb, 4096);
    json_w_init(&w, &sb);
    for (i = 0; i < JSON_WRITER_MAX_DEPTH; i++)
        json_w_arr_begin(&w);
    for (i = 0; i < JSON_WRITER_MAX_DEPTH; i++)
        json_w_arr_end(&w);
    doc = parse_ok(w_done(&w), sb.len);
    json_doc_free(&doc);
    sbuf_free(&sb);

    /* The sbuf limit makes the writer fail, not truncate silently. */
    sbuf_init(&sb, 10);
    json_w_init(&w, &sb);
    json_w_arr_begin(&w);
    json_w_cstr(&w, "0123456789");
    ck_assert_int_eq(w.failed, 1);
    ck_assert_uint_le(sb.len, 10);
    sbuf_free(&sb);

    sbuf_init(&sb, 8);
    ck_assert_int_eq(json_escape_to(&sb, "abcdefgh", 8), -1);
    sbuf_free(&sb);
    sbuf_init(&sb, 8);
    ck_assert_int_eq(json_escape_to(&sb, "abcdef", 6), 0);
    ck_assert_str_eq(sb.data, "\"abcdef\"");
    sbuf_free(&sb);
}
END_TEST

static void check_escape(const char *in, size_t len, const char *want)
{
    struct sbuf sb;
    sbuf_init(&sb, 4096);
    ck_assert_int_eq(json_escape_to(&sb, in, len), 0);
    ck_assert_msg(strcmp(sb.data, want) == 0, "escape: got %s want %s", sb.data, want);
    sbuf_free(&sb);
}

#define CHECK_ESCAPE(lit, want) check_escape((lit), sizeof(lit) - 1, (want))

START_TEST(test_escape_vectors)
{
    CHECK_ESCAPE("", "\"\"");
    CHECK_ESCAPE("plain / text", "\"plain / text\"");
    CHECK_ESCAPE("\"\\", "\"\\\"\\\\\"");
    CHECK_ESCAPE("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    CHECK_ESCAPE("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
    CHECK_ESCAPE("a\0b", "\"a\\u0000b\"");
    CHECK_ESCAPE("\xe2\x80\xa8|\xe2\x80\xa9", "\"\\u2028|\\u2029\"");
    CHECK_ESCAPE("\xe2\x80\xaa\xc3\xa9\xf0\x9f\x98\x80",
                 "\"\xe2\x80\xaa\xc3\xa9\xf0\x9f\x98\x80\"");
    /* Each maximal invalid subpart is one U+FFFD (Unicode ch. 3, U+FFFD
     * substitution of maximal subparts; the examples of table 3-8 ff.). */
#define R "\xef\xbf\xbd"
    CHECK_ESCAPE("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
                 "\"a" R R R "b" R "c" R R "d\"");
    CHECK_ESCAPE("\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41", "\"" R R R R R R R R "A\"");
    CHECK_ESCAPE("\xED\xA0\x80\xED\xBF\xBF\xED\xAF\x41", "\"" R R R R R R R R "A\"");
    CHECK_ESCAPE("\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42", "\"" R R R R R "A" R R "B\"");
    CHECK_ESCAPE("\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41", "\"" R R R R "A\"");
    CHECK_ESCAPE("\xf0\x9f\x98", "\"" R "\"");
    CHECK_ESCAPE("\xe2\x80\"", "\"" R "\\\"\"");
    CHECK_ESCAPE("\xc3\n", "\"" R "\\n\"");
#undef R
}
END_TEST

/* The streamed /run answer escapes stdout in parts of any size: the parts
 * together must be exactly json_escape_to's output, and
 * json_escaped_len its length. */
static void check_parts(const char *in, size_t len)
{
    struct sbuf whole, parts;
    sbuf_init(&whole, SIZE_MAX / 2);
    ck_assert_int_eq(json_escape_to(&whole, in, len), 0);
    ck_assert_uint_eq(json_escaped_len(in, len), whole.len);
    for (size_t limit = 1; limit <= len * 6 + 8; limit++) {
        size_t pos = 0, calls = 0;
        sbuf_init(&parts, SIZE_MAX / 2);
        sbuf_putc(&parts, '"');
        while (pos < len) {
            size_t before = parts.len;
            ck_assert_int_eq(json_escape_part(&parts, in, len, &pos, limit), 0);
            ck_assert_uint_gt(parts.len, before);          /* progress */
            ck_assert_uint_le(parts.len - before, limit + 6); /* bounded */
            ck_assert_uint_lt(++calls, len + 2);
        }
        sbuf_putc(&parts, '"');
        ck_assert_uint_eq(parts.len, whole.len);
        ck_assert(memcmp(parts.data, whole.data, whole.len) == 0);
        sbuf_free(&parts);
    }
    sbuf_free(&whole);
}

START_TEST(test_escape_parts)
{
    static const char mixed[] = "ab\"\\\x01\n\xe2\x80\xa8\xf0\x9f\x98\x80\xc3\xa9\xff\xe2\x80"
                                "x\x7f\x00yz\xed\xa0\x80\xf4\x91\x92\x93" "end";
    unsigned char rnd[300];
    unsigned seed = 12345;
    check_parts("", 0);
    check_parts("plain", 5);
    check_parts(mixed, sizeof(mixed) - 1);
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof(rnd); i++) {
            seed = seed * 1103515245u + 12345u;
            rnd[i] = (unsigned char)(seed >> 16);
        }
        check_parts((const char *)rnd, (size_t)(seed % sizeof(rnd)));
    }
}
END_TEST

/* An independent reference for the U+FFFD substitution: a prefix is the
 * start of a well-formed sequence iff the code points its completions can
 * reach intersect the valid range for that sequence length. */
static int ref_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 0;
}

static int ref_prefix_ok(const unsigned char *s, int k)
{
    int L = ref_seq_len(s[0]), i;
    uint32_t lo, hi;
    if (L == 0 || k > L)
        return 0;
    lo = hi = s[0] & (0x7Fu >> L);
    for (i = 1; i < L; i++) {
        if (i < k) {
            if ((s[i] & 0xC0) != 0x80)
                return 0;
            lo = lo << 6 | (s[i] & 0x3Fu);
            hi = hi << 6 | (s[i] & 0x3Fu);
        } else {
            lo = lo << 6;
            hi = hi << 6 | 0x3F;
        }
    }
    switch (L) {
    case 1:
        return 1;
    case 2:
        return hi >= 0x80 && lo <= 0x7FF;
    case 3:
        return (hi >= 0x800 && lo <= 0xD7FF) || (hi >= 0xE000 && lo <= 0xFFFF);
    default:
        return hi >= 0x10000 && lo <= 0x10FFFF;
    }
}

/* Returns malloc'd replacement of s, *valid = 1 when nothing was replaced. */
static unsigned char *ref_replace(const unsigned char *s, size_t n, size_t *out_len, int *valid)
{
    unsigned char *o = malloc(n * 3 + 1);
    size_t i = 0, j = 0;
    ck_assert_ptr_nonnull(o);
    *valid = 1;
    while (i < n) {
        int L = ref_seq_len(s[i]), k = 0, t;
        for (t = 1; t <= L && i + (size_t)t <= n; t++)
            if (ref_prefix_ok(s + i, t))
                k = t;
        if (L > 0 && k == L) {
            memcpy(o + j, s + i, (size_t)k);
            j += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(o + j, "\xef\xbf\xbd", 3);
            j += 3;
            i += k ? (size_t)k : 1;
            *valid = 0;
        }
    }
    *out_len = j;
    return o;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static unsigned char rnd_byte(void)
{
    static const unsigned char interesting[] = {
        0x00, 0x01, 0x08, 0x0a, 0x1f, 0x20, '"',  '\\', '/',  'a',  0x7f, 0x80, 0x8f,
        0x90, 0x9f, 0xa0, 0xa8, 0xa9, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xe2,
        0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff,
    };
    if (rnd() % 3 == 0)
        return (unsigned char)rnd();
    return interesting[rnd() % sizeof(interesting)];
}

/* Escapes s, parses the result as a JSON string and returns it decoded. */
static struct json_doc *escape_and_parse(const unsigned char *s, size_t n)
{
    struct sbuf sb;
    struct json_writer w;
    struct json_doc *doc;
    sbuf_init(&sb, 1 << 20);
    json_w_init(&w, &sb);
    json_w_arr_begin(&w);
    json_w_str(&w, (const char *)s, n);
    json_w_str(&w, (const char *)s, n);
    json_w_arr_end(&w);
    doc = parse_ok(w_done(&w), sb.len);
    ck_assert_int_eq(json_doc_root(doc)->type, JSON_ARRAY);
    ck_assert_uint_eq(json_doc_root(doc)->u.arr.n, 2);
    ck_assert_int_eq(json_doc_root(doc)->u.arr.items[0].type, JSON_STRING);
    sbuf_free(&sb);
    return doc;
}

START_TEST(test_writer_random_bytes)
{
    int iter;
    for (iter = 0; iter < 20000; iter++) {
        unsigned char s[48], *want;
        size_t n = rnd() % sizeof(s), i, want_len;
        int valid;
        struct json_doc *doc;
        const struct json_value *v;
        for (i = 0; i < n; i++)
            s[i] = rnd_byte();
        want = ref_replace(s, n, &want_len, &valid);
        doc = escape_and_parse(s, n);
        v = &json_doc_root(doc)->u.arr.items[0];
        ck_assert_uint_eq(v->u.str.len, want_len);
        ck_assert_mem_eq(v->u.str.s, want, want_len);
        if (valid) /* valid UTF-8 round-trips exactly */
            ck_assert_mem_eq(v->u.str.s, s, n);
        json_doc_free(&doc);
        free(want);
    }
}
END_TEST

START_TEST(test_writer_random_utf8)
{
    int iter;
    for (iter = 0; iter < 5000; iter++) {
        unsigned char s[160];
        size_t n = 0, count = rnd() % 32, i;
        struct json_doc *doc;
        const struct json_value *v;
        for (i = 0; i < count; i++) {
            uint32_t cp;
            switch (rnd() % 4) {
            case 0:
                cp = rnd() % 0x80;
                break;
            case 1:
                cp = rnd() % 0x800;
                break;
            case 2:
                cp = rnd() % 0x10000;
                break;
            default:
                cp = 0x10000 + rnd() % 0x100000;
                break;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0x2028 + (cp & 1);
            if (cp < 0x80) {
                s[n++] = (unsigned char)cp;
            } else if (cp < 0x800) {
                s[n++] = (unsigned char)(0xC0 | cp >> 6);
                s[n++] = (unsigned char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                s[n++] = (unsigned char)(0xE0 | cp >> 12);
                s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3F));
            } else {
                s[n++] = (unsigned char)(0xF0 | cp >> 18);
                s[n++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3F));
            }
        }
        doc = escape_and_parse(s, n);
        v = &json_doc_root(doc)->u.arr.items[1];
        ck_assert_uint_eq(v->u.str.len, n);
        ck_assert_mem_eq(v->u.str.s, s, n);
        json_doc_free(&doc);
    }
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_int_boundaries);
    tcase_add_test(tc, test_long_number);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_surrogate_pairs);
    tcase_add_test(tc, test_containers);
    tcase_add_test(tc, test_big_array);
    tcase_add_loop_test(tc, test_invalid, 0, (int)BX_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_values_limit);
    tcase_add_test(tc, test_max_bytes);
    tcase_add_test(tc, test_duplicate_keys_large);
    suite_add_tcase(s, tc);

    tc = tcase_create("writer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_writer_structure);
    tcase_add_test(tc, test_writer_members);
    tcase_add_test(tc, test_writer_doubles);
    tcase_add_test(tc, test_writer_misuse);
    tcase_add_test(tc, test_writer_max_depth_and_limit);
    tcase_add_test(tc, test_escape_vectors);
    tcase_add_test(tc, test_escape_parts);
    tcase_add_test(tc, test_writer_random_bytes);
    tcase_add_test(tc, test_writer_random_utf8);
    tcase_add_test(tc, test_key_checks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(json_suite);
}
