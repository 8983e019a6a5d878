/* Tests for the streaming multipart parser.  Every body is parsed whole, split
 * into two feeds at every byte position, split into three feeds at every pair
 * of positions (small bodies), and fed one byte at a time; each fed piece sits
 * right before an unreadable guard page.  The callbacks' concatenated output
 * (plus the final verdict) must be the same in every case and must match the
 * expectation written next to the body. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "guard.h"
#include "multipart.h"
#include "util.h"

#define S(lit) lit, sizeof(lit) - 1

/* Check's ck_assert records every passing assertion through a pipe, which
 * dominates the run time of the hot loops below; this one only speaks up on
 * failure. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: requirement failed: %s", __FILE__, __LINE__, #cond);              \
    } while (0)

/* ---- recording callbacks ---- */

struct rec {
    struct sbuf out;
    int fail_begin; /* make on_part_begin fail on this part number (1-based) */
    int fail_data;  /* make on_part_data fail once this many bytes arrived */
    int parts;
    size_t data_bytes;
};

static int rec_begin(void *ctx, const char *name, size_t name_len, int has_filename,
                     struct bx_err *err)
{
    struct rec *r = ctx;
    REQUIRE(name_len <= MP_MAX_NAME);
    REQUIRE(name[name_len] == '\0');
    r->parts++;
    if (r->fail_begin && r->parts == r->fail_begin)
        return bx_err_set(err, 403, 0, "begin refused");
    REQUIRE(sbuf_append(&r->out, "{B ", 3) == 0);
    REQUIRE(sbuf_append(&r->out, name, name_len) == 0);
    REQUIRE(sbuf_appendf(&r->out, " f=%d}", has_filename) == 0);
    return 0;
}

static int rec_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct rec *r = ctx;
    REQUIRE(len > 0);
    r->data_bytes += len;
    if (r->fail_data && r->data_bytes >= (size_t)r->fail_data)
        return bx_err_set(err, 413, 0, "data refused");
    REQUIRE(sbuf_append(&r->out, data, len) == 0);
    return 0;
}

static int rec_end(void *ctx, struct bx_err *err)
{
    struct rec *r = ctx;
    (void)err;
    REQUIRE(sbuf_append(&r->out, "{E}", 3) == 0);
    return 0;
}

static const struct mp_callbacks rec_cb = {rec_begin, rec_data, rec_end};

/* Feeds body cut at the given positions (ascending, within [0, len]); returns
 * the output with the verdict appended, in r->out (caller frees). */
static void run_split(struct rec *r, const char *boundary, const char *body, size_t len,
                      const size_t *cuts, size_t ncuts)
{
    struct mp_parser *p = NULL;
    struct bx_err err;
    size_t prev = 0;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    sbuf_init(&r->out, 1 << 20);
    bx_err_clear(&err);
    REQUIRE(mp_new(&p, boundary, strlen(boundary), &rec_cb, r, &err) == 0);
    for (size_t k = 0; k <= ncuts && rc == 0; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        struct guard_buf g = {0};
        char *piece = guard_copy(&g, body + prev, end - prev);
        rc = mp_feed(p, piece, end - prev, &err);
        guard_free(&g);
        prev = end;
    }
    if (rc == 0)
        rc = mp_finish(p, &err);
    if (rc == 0)
        REQUIRE(sbuf_appendf(&r->out, "|OK") == 0);
    else
        REQUIRE(sbuf_appendf(&r->out, "|ERR %d %s", err.status, err.msg) == 0);
    mp_free(&p);
    REQUIRE(p == NULL);
}

static char *escape(const char *s, size_t n)
{
    struct sbuf sb;
    sbuf_init(&sb, 1 << 24);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            sbuf_putc(&sb, (char)c);
        else
            sbuf_appendf(&sb, "\\x%02x", c);
    }
    return sbuf_steal(&sb, NULL);
}

static void assert_same(const char *what, const char *got, size_t got_len, const char *want,
                        size_t want_len)
{
    if (got_len != want_len || memcmp(got, want, got_len) != 0) {
        char *g = escape(got, got_len), *w = escape(want, want_len);
        ck_abort_msg("%s:\n got: %s\nwant: %s", what, g, w);
    }
}

struct mcase {
    const char *name;
    const char *boundary;
    const char *body;
    size_t body_len;
    const char *expect; /* output then "|OK" or "|ERR status msg" */
    size_t expect_len;
};

static void check_case(const struct mcase *c)
{
    struct rec whole, r;
    size_t n = c->body_len;
    char what[256];

    run_split(&whole, c->boundary, c->body, n, NULL, 0);
    snprintf(what, sizeof(what), "%s (whole)", c->name);
    assert_same(what, whole.out.data, whole.out.len, c->expect, c->expect_len);

    for (size_t a = 0; a <= n; a++) {
        run_split(&r, c->boundary, c->body, n, &a, 1);
        snprintf(what, sizeof(what), "%s (split at %zu)", c->name, a);
        assert_same(what, r.out.data, r.out.len, whole.out.data, whole.out.len);
        sbuf_free(&r.out);
    }
    if (n <= 128) {
        for (size_t a = 0; a <= n; a++)
            for (size_t b = a; b <= n; b++) {
                size_t cuts[2] = {a, b};
                run_split(&r, c->boundary, c->body, n, cuts, 2);
                snprintf(what, sizeof(what), "%s (split at %zu,%zu)", c->name, a, b);
                assert_same(what, r.out.data, r.out.len, whole.out.data, whole.out.len);
                sbuf_free(&r.out);
            }
    }
    {
        size_t *cuts = malloc((n ? n : 1) * sizeof(*cuts));
        ck_assert_ptr_nonnull(cuts);
        for (size_t i = 0; i < n; i++)
            cuts[i] = i + 1;
        run_split(&r, c->boundary, c->body, n, cuts, n ? n - 1 : 0);
        snprintf(what, sizeof(what), "%s (byte at a time)", c->name);
        assert_same(what, r.out.data, r.out.len, whole.out.data, whole.out.len);
        sbuf_free(&r.out);
        free(cuts);
    }
    sbuf_free(&whole.out);
}

#define CD "Content-Disposition: form-data; "
#define ERR "|ERR 400 malformed multipart body: "

static const struct mcase cases[] = {
    {"two fields", "XyZ",
     S("--XyZ\r\n" CD "name=\"path\"\r\n\r\nsrc/a.txt\r\n--XyZ\r\n" CD
       "name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\nworld\r\n"
       "--XyZ--\r\n"),
     S("{B path f=0}src/a.txt{E}{B file f=1}hello\nworld{E}|OK")},
    {"file before path", "XyZ",
     S("--XyZ\r\nContent-Type: application/octet-stream\r\n" CD
       "filename=\"x.bin\"; name=\"file\"\r\n\r\nABC\r\n--XyZ\r\n" CD
       "name=\"path\"\r\n\r\nin/x.bin\r\n--XyZ--"),
     S("{B file f=1}ABC{E}{B path f=0}in/x.bin{E}|OK")},
    {"empty file part", "XyZ",
     S("--XyZ\r\n" CD "name=\"file\"; filename=\"\"\r\n\r\n\r\n--XyZ\r\n" CD
       "name=\"\"\r\n\r\n\r\n--XyZ--\r\n"),
     S("{B file f=1}{E}{B  f=0}{E}|OK")},
    {"binary with partial delimiters", "XyZ",
     S("--XyZ\r\n" CD "name=\"file\"; filename=\"b\"\r\n\r\n"
       "\0\r\n--Xy\r\r\n-\n\r\n--X\r\n\r\n--\n--XyZ\r--XyZ \r\r\n\r\n--x\0\r\n\r\r"
       "\r\n--XyZ--"),
     S("{B file f=1}\0\r\n--Xy\r\r\n-\n\r\n--X\r\n\r\n--\n--XyZ\r--XyZ \r\r\n\r\n--x\0\r\n\r\r{E}"
       "|OK")},
    {"data ends in CR before delimiter", "b",
     S("--b\r\n" CD "name=a\r\n\r\n\r\r\n--b\r\n" CD "name=c\r\n\r\n\r\n\r\n--b--"),
     S("{B a f=0}\r{E}{B c f=0}\r\n{E}|OK")},
    {"webkit-style unquoted boundary", "----WebKitFormBoundary7MA4YWxkTrZu0gW",
     S("------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n" CD "name=\"k\"\r\n\r\nv\r\n"
       "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"),
     S("{B k f=0}v{E}|OK")},
    {"boundary with every bchar", "a'()+_,-./:=? z",
     S("--a'()+_,-./:=? z\r\n" CD "name=x\r\n\r\n--a'()+_,-./:=? \r\n"
       "--a'()+_,-./:=? z--"),
     S("{B x f=0}--a'()+_,-./:=? {E}|OK")},
    {"preamble and epilogue", "XyZ",
     S("This is a preamble --XyZ\r\n-- XyZ\n--XyZ\r\n--Xy\r\n--XyZ\r\n" CD
       "name=\"a\"\r\n\r\n1\r\n--XyZ--\r\nepilogue\r\n--XyZ\r\ngarbage\r\n--XyZ\r\n\r\n"),
     S("{B a f=0}1{E}|OK")},
    {"CRLF-only preamble", "XyZ", S("\r\n--XyZ\r\n" CD "name=\"a\"\r\n\r\n1\r\n--XyZ--"),
     S("{B a f=0}1{E}|OK")},
    {"transport padding", "XyZ",
     S("--XyZ \t \r\n" CD "name=\"a\"\r\n\r\n1\r\n--XyZ\t\r\n" CD "name=\"b\"\r\n\r\n2\r\n"
       "--XyZ--  trailing"),
     S("{B a f=0}1{E}{B b f=0}2{E}|OK")},
    {"zero parts", "XyZ", S("--XyZ--"), S("|OK")},
    {"parameter spellings", "XyZ",
     S("--XyZ\r\ncontent-disposition:form-data;NAME=tok;FileName=f\r\n\r\n1\r\n--XyZ\r\n"
       "CONTENT-DISPOSITION: Form-Data ; foo=\"x;name=evil\" ; name=\"q\\\"u\\\\o\\te\" ;\r\n"
       "\r\n2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"sp ace\\\r\n\r\n3\r\n--XyZ--"),
     S("{B tok f=1}1{E}{B q\"u\\ote f=0}2{E}|ERR 400 malformed multipart body: malformed "
       "Content-Disposition")},
    {"missing final boundary (in data)", "XyZ", S("--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello"),
     S("{B a f=0}hello" ERR "body ended before the closing boundary")},
    {"missing final boundary (partial delimiter)", "XyZ",
     S("--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--Xy"),
     S("{B a f=0}hello" ERR "body ended before the closing boundary")},
    {"missing final boundary (after delimiter)", "XyZ",
     S("--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--XyZ-"),
     S("{B a f=0}hello{E}" ERR "body ended before the closing boundary")},
    {"missing final boundary (in headers)", "XyZ", S("--XyZ\r\n" CD "name=\"a\"\r\n"),
     S(ERR "body ended before the closing boundary")},
    {"empty body", "XyZ", S(""), S(ERR "body ended before the closing boundary")},
    {"preamble only", "XyZ", S("no boundary here\r\n--XyQ\r\n"),
     S(ERR "body ended before the closing boundary")},
    {"junk after boundary", "XyZ", S("--XyZ\r\n" CD "name=\"a\"\r\n\r\nx\r\n--XyZQ\r\n"),
     S("{B a f=0}x{E}" ERR "junk after a boundary")},
    {"junk after first boundary", "XyZ", S("--XyZZ\r\n"), S(ERR "junk after a boundary")},
    {"single dash after boundary", "XyZ", S("--XyZ-x"), S(ERR "junk after a boundary")},
    {"bare CR after boundary", "XyZ", S("--XyZ\rx"), S(ERR "boundary line not ended by CRLF")},
    {"not form-data", "XyZ",
     S("--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part Content-Disposition is not form-data")},
    {"form-data prefix only", "XyZ",
     S("--XyZ\r\nContent-Disposition: form-dataX; name=\"a\"\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part Content-Disposition is not form-data")},
    {"no Content-Disposition", "XyZ", S("--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part without Content-Disposition: form-data")},
    {"no headers at all", "XyZ", S("--XyZ\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part without Content-Disposition: form-data")},
    {"no name", "XyZ", S("--XyZ\r\n" CD "filename=\"a\"\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part Content-Disposition has no name")},
    {"two names", "XyZ", S("--XyZ\r\n" CD "name=a; name=b\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part has more than one name parameter")},
    {"two filenames", "XyZ", S("--XyZ\r\n" CD "name=a; filename=b; filename=c\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part has more than one filename parameter")},
    {"two Content-Dispositions", "XyZ",
     S("--XyZ\r\n" CD "name=a\r\n" CD "name=b\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part has more than one Content-Disposition")},
    {"unterminated quote", "XyZ", S("--XyZ\r\n" CD "name=\"a\r\n\r\nx\r\n--XyZ--"),
     S(ERR "malformed Content-Disposition")},
    {"parameter without value", "XyZ", S("--XyZ\r\n" CD "name\r\n\r\nx\r\n--XyZ--"),
     S(ERR "malformed Content-Disposition")},
    {"space around =", "XyZ", S("--XyZ\r\n" CD "name = a\r\n\r\nx\r\n--XyZ--"),
     S(ERR "malformed Content-Disposition")},
    {"bare LF in headers", "XyZ", S("--XyZ\r\n" CD "name=a\n\r\nx\r\n--XyZ--"),
     S(ERR "control character in a part header")},
    {"bare CR in headers", "XyZ", S("--XyZ\r\n" CD "name=a\rX\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part header line not ended by CRLF")},
    {"NUL in headers", "XyZ", S("--XyZ\r\n" CD "name=\"a\0b\"\r\n\r\nx\r\n--XyZ--"),
     S(ERR "control character in a part header")},
    {"folded header", "XyZ", S("--XyZ\r\n" CD "name=a\r\n x\r\n\r\nx\r\n--XyZ--"),
     S(ERR "folded part header lines are not supported")},
    {"header without colon", "XyZ", S("--XyZ\r\n" CD "name=a\r\nbogus\r\n\r\nx\r\n--XyZ--"),
     S(ERR "part header line without ':'")},
    {"bad header name", "XyZ", S("--XyZ\r\nX Y: z\r\n" CD "name=a\r\n\r\nx\r\n--XyZ--"),
     S(ERR "invalid character in part header name")},
    {"empty header name", "XyZ", S("--XyZ\r\n: z\r\n" CD "name=a\r\n\r\nx\r\n--XyZ--"),
     S(ERR "empty part header name")},
};

START_TEST(test_bodies)
{
    check_case(&cases[_i]);
}
END_TEST

/* ---- generated bodies: limits ---- */

static void gen_append(struct sbuf *sb, const char *s)
{
    ck_assert_int_eq(sbuf_append(sb, s, strlen(s)), 0);
}

static void check_generated(const char *name, struct sbuf *body, struct sbuf *expect)
{
    struct mcase c = {name, "XyZ", body->data, body->len, expect->data, expect->len};
    check_case(&c);
    sbuf_free(body);
    sbuf_free(expect);
}

/* A part whose header block (lines, CRLFs and blank line) is exactly `size`. */
static void header_block_case(size_t size, const char *want_tail)
{
    struct sbuf body, expect;
    const char *first = CD "name=\"a\"\r\n";
    size_t fixed = strlen(first) + strlen("X: \r\n") + 2;

    ck_assert_uint_gt(size, fixed);
    sbuf_init(&body, 1 << 20);
    sbuf_init(&expect, 1 << 20);
    gen_append(&body, "--XyZ\r\n");
    gen_append(&body, first);
    gen_append(&body, "X: ");
    for (size_t i = 0; i < size - fixed; i++)
        sbuf_putc(&body, 'v');
    gen_append(&body, "\r\n\r\ndata\r\n--XyZ--");
    gen_append(&expect, want_tail);
    check_generated("header block size", &body, &expect);
}

START_TEST(test_header_limit)
{
    header_block_case(MP_MAX_PART_HEADER, "{B a f=0}data{E}|OK");
    header_block_case(MP_MAX_PART_HEADER + 1, ERR "part headers exceed 8192 bytes");
}
END_TEST

START_TEST(test_padding_limit)
{
    struct sbuf body, expect;
    sbuf_init(&body, 1 << 20);
    sbuf_init(&expect, 1 << 20);
    gen_append(&body, "--XyZ");
    for (size_t i = 0; i < MP_MAX_PART_HEADER + 10; i++)
        sbuf_putc(&body, ' ');
    gen_append(&body, "\r\n");
    gen_append(&expect, ERR "part headers exceed 8192 bytes");
    check_generated("endless padding", &body, &expect);
}
END_TEST

static void parts_case(int nparts, const char *verdict)
{
    struct sbuf body, expect;
    sbuf_init(&body, 1 << 20);
    sbuf_init(&expect, 1 << 20);
    for (int i = 0; i < nparts; i++) {
        ck_assert_int_eq(sbuf_appendf(&body, "--XyZ\r\n" CD "name=p%d\r\n\r\n%d\r\n", i, i), 0);
        if (i < MP_MAX_PARTS)
            ck_assert_int_eq(sbuf_appendf(&expect, "{B p%d f=0}%d{E}", i, i), 0);
    }
    gen_append(&body, "--XyZ--");
    gen_append(&expect, verdict);
    check_generated("part count", &body, &expect);
}

START_TEST(test_parts_limit)
{
    parts_case(MP_MAX_PARTS, "|OK");
    parts_case(MP_MAX_PARTS + 1, ERR "more than 64 parts");
}
END_TEST

static void name_case(size_t len, int quoted, const char *verdict)
{
    struct sbuf body, expect, nm;
    sbuf_init(&body, 1 << 20);
    sbuf_init(&expect, 1 << 20);
    sbuf_init(&nm, 1 << 20);
    for (size_t i = 0; i < len; i++)
        sbuf_putc(&nm, (char)('a' + i % 26));
    ck_assert_int_eq(sbuf_appendf(&body, "--XyZ\r\n" CD "name=%s%s%s\r\n\r\nx\r\n--XyZ--",
                                  quoted ? "\"" : "", nm.data, quoted ? "\"" : ""),
                     0);
    if (*verdict == '|' && verdict[1] == 'O')
        ck_assert_int_eq(sbuf_appendf(&expect, "{B %s f=0}x{E}", nm.data), 0);
    gen_append(&expect, verdict);
    sbuf_free(&nm);
    check_generated("name length", &body, &expect);
}

START_TEST(test_name_limit)
{
    name_case(MP_MAX_NAME, 1, "|OK");
    name_case(MP_MAX_NAME, 0, "|OK");
    name_case(MP_MAX_NAME + 1, 1, ERR "part name longer than 255 bytes");
    name_case(MP_MAX_NAME + 1, 0, ERR "part name longer than 255 bytes");
}
END_TEST

/* ---- streaming: data is delivered as it arrives, only a delimiter prefix is held ---- */

START_TEST(test_no_buffering)
{
    struct rec r;
    struct mp_parser *p = NULL;
    struct bx_err err;
    static const char head[] = "--XyZ\r\n" CD "name=\"f\"\r\n\r\n";
    char big[65536];

    memset(&r, 0, sizeof(r));
    sbuf_init(&r.out, 1 << 20);
    ck_assert_int_eq(mp_new(&p, "XyZ", 3, &rec_cb, &r, &err), 0);
    ck_assert_int_eq(mp_feed(p, head, strlen(head), &err), 0);
    ck_assert_str_eq(r.out.data, "{B f f=0}");
    memset(big, 'z', sizeof(big));
    ck_assert_int_eq(mp_feed(p, big, sizeof(big), &err), 0);
    ck_assert_uint_eq(r.data_bytes, sizeof(big)); /* delivered, not kept */
    ck_assert_int_eq(mp_feed(p, "ab\r\n--Xy", 8, &err), 0);
    ck_assert_uint_eq(r.data_bytes, sizeof(big) + 2); /* only the delimiter prefix waits */
    ck_assert_int_eq(mp_feed(p, "q", 1, &err), 0);
    ck_assert_uint_eq(r.data_bytes, sizeof(big) + 2 + 7);
    ck_assert_int_eq(memcmp(r.out.data + r.out.len - 7, "\r\n--Xyq", 7), 0);
    ck_assert_int_eq(mp_feed(p, "\r\n--XyZ", 7, &err), 0);
    ck_assert_uint_eq(r.data_bytes, sizeof(big) + 2 + 7);
    ck_assert_int_eq(mp_feed(p, "--", 2, &err), 0);
    ck_assert_int_eq(memcmp(r.out.data + r.out.len - 3, "{E}", 3), 0);
    ck_assert_int_eq(mp_finish(p, &err), 0);
    mp_free(&p);
    mp_free(&p); /* idempotent */
    sbuf_free(&r.out);
}
END_TEST

/* Data full of CRs and near-delimiters (CRLF, "\r\n-", "\r\n--Xy" then a
 * mismatch, CR CR) reaches the callback in one piece per feed: the parser
 * decides a CR is data on the bytes at hand instead of handing the bytes
 * before it and the CR over separately (two callbacks per CR made uploads
 * of random data slow). */
struct counter {
    struct rec r;
    int calls;
};

static int count_data(void *ctx, const char *data, size_t len, struct bx_err *err)
{
    struct counter *c = ctx;
    c->calls++;
    return rec_data(&c->r, data, len, err);
}

START_TEST(test_cr_dense_data_one_piece)
{
    static const struct mp_callbacks cb = {rec_begin, count_data, rec_end};
    static const char head[] = "--XyZ\r\n" CD "name=\"f\"\r\n\r\n";
    static const char unit[] = "a\rb\r\nc\r\n-d\r\n--Xy\r\r\n--Xq\n\r";
    struct counter c;
    struct mp_parser *p = NULL;
    struct bx_err err;
    struct sbuf data;
    size_t i;

    memset(&c, 0, sizeof(c));
    sbuf_init(&c.r.out, 1 << 20);
    sbuf_init(&data, 1 << 20);
    for (i = 0; i < 1000; i++)
        REQUIRE(sbuf_append(&data, unit, sizeof(unit) - 1) == 0);
    /* ends in "\r": held back as a possible delimiter start */
    ck_assert_int_eq(mp_new(&p, "XyZ", 3, &cb, &c, &err), 0);
    ck_assert_int_eq(mp_feed(p, head, strlen(head), &err), 0);
    ck_assert_int_eq(mp_feed(p, data.data, data.len, &err), 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_uint_eq(c.r.data_bytes, data.len - 1);
    ck_assert_int_eq(mp_feed(p, "\n--XyZ--\r\n", 11, &err), 0);
    ck_assert_int_eq(mp_finish(p, &err), 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_uint_eq(c.r.data_bytes, data.len - 1);
    ck_assert_int_eq(memcmp(c.r.out.data + strlen("{B f f=0}"), data.data, data.len - 1), 0);
    mp_free(&p);
    sbuf_free(&data);
    sbuf_free(&c.r.out);
}
END_TEST

/* ---- callbacks that refuse ---- */

START_TEST(test_callback_abort)
{
    static const char body[] = "--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--XyZ\r\n" CD
                               "name=\"b\"\r\n\r\nworld\r\n--XyZ--";
    struct rec r;
    struct mp_parser *p = NULL;
    struct bx_err err;

    memset(&r, 0, sizeof(r));
    sbuf_init(&r.out, 1 << 20);
    r.fail_begin = 2;
    bx_err_clear(&err);
    ck_assert_int_eq(mp_new(&p, "XyZ", 3, &rec_cb, &r, &err), 0);
    ck_assert_int_eq(mp_feed(p, body, strlen(body), &err), -1);
    ck_assert_int_eq(err.status, 403);
    ck_assert_str_eq(err.msg, "begin refused");
    ck_assert_str_eq(r.out.data, "{B a f=0}hello{E}");
    /* The parser stays dead. */
    ck_assert_int_eq(mp_feed(p, "x", 1, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(mp_finish(p, &err), -1);
    mp_free(&p);
    sbuf_free(&r.out);

    memset(&r, 0, sizeof(r));
    sbuf_init(&r.out, 1 << 20);
    r.fail_data = 3;
    ck_assert_int_eq(mp_new(&p, "XyZ", 3, &rec_cb, &r, &err), 0);
    ck_assert_int_eq(mp_feed(p, body, strlen(body), &err), -1);
    ck_assert_int_eq(err.status, 413);
    ck_assert_str_eq(err.msg, "data refused");
    mp_free(&p);
    sbuf_free(&r.out);
}
END_TEST

START_TEST(test_null_callbacks)
{
    static const char body[] = "--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--XyZ--";
    struct mp_callbacks none = {NULL, NULL, NULL};
    struct mp_parser *p = NULL;
    struct bx_err err;

    ck_assert_int_eq(mp_new(&p, "XyZ", 3, &none, NULL, &err), 0);
    ck_assert_int_eq(mp_feed(p, body, strlen(body), NULL), 0);
    ck_assert_int_eq(mp_finish(p, NULL), 0);
    mp_free(&p);
}
END_TEST

START_TEST(test_new_rejects_bad_boundary)
{
    static const char *bad[] = {"",           "a\r",     "a\nb",    "ends in space ",
                                "semi;colon", "quo\"te", "at@sign", "tab\there",
                                "nul"};
    struct mp_parser *p = (struct mp_parser *)&p;
    struct bx_err err;
    char b71[72];

    for (size_t i = 0; i < BX_ARRAY_LEN(bad); i++) {
        size_t len = strlen(bad[i]);
        if (strcmp(bad[i], "nul") == 0)
            len = 4; /* includes the NUL */
        bx_err_clear(&err);
        ck_assert_msg(mp_new(&p, bad[i], len, &rec_cb, NULL, &err) == -1, "accepted %s", bad[i]);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(err.status, 400);
    }
    memset(b71, 'b', sizeof(b71));
    ck_assert_int_eq(mp_new(&p, b71, 71, &rec_cb, NULL, &err), -1);
    ck_assert_int_eq(mp_new(&p, b71, 70, &rec_cb, NULL, &err), 0);
    mp_free(&p);
    ck_assert_int_eq(mp_new(&p, "a b", 3, &rec_cb, NULL, &err), 0);
    mp_free(&p);
}
END_TEST

/* ---- Content-Type ---- */

struct ct_case {
    const char *ct;
    const char *boundary; /* NULL: must fail with 400 */
    const char *msg;      /* expected error message (substring), when failing */
};

#define B70 "0123456789012345678901234567890123456789012345678901234567890123456789"

static const struct ct_case ct_cases[] = {
    {"multipart/form-data; boundary=abc", "abc", NULL},
    {"multipart/form-data;boundary=abc", "abc", NULL},
    {"Multipart/Form-Data; BOUNDARY=xyz", "xyz", NULL},
    {"  multipart/form-data ; boundary=abc  ", "abc", NULL},
    {"multipart/form-data; boundary=\"abc\"", "abc", NULL},
    {"multipart/form-data; boundary=\"a b:c\"", "a b:c", NULL},
    {"multipart/form-data; boundary=\"a\\bc\"", "abc", NULL},
    {"multipart/form-data; boundary=\"'()+_,-./:=? x\"", "'()+_,-./:=? x", NULL},
    {"multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
     "----WebKitFormBoundary7MA4YWxkTrZu0gW", NULL},
    {"multipart/form-data; foo=\"x; boundary=evil\"; boundary=good", "good", NULL},
    {"multipart/form-data; boundary=abc;", "abc", NULL},
    {"multipart/form-data; boundary=" B70, B70, NULL},
    {"multipart/form-data; boundary=\"" B70 "\"", B70, NULL},
    {"", NULL, "must be multipart/form-data"},
    {"text/plain; boundary=abc", NULL, "must be multipart/form-data"},
    {"multipart/mixed; boundary=abc", NULL, "must be multipart/form-data"},
    {"multipart/form-datax; boundary=abc", NULL, "must be multipart/form-data"},
    {"multipart; boundary=abc", NULL, "must be multipart/form-data"},
    {"multipart/; boundary=abc", NULL, "must be multipart/form-data"},
    {"multipart/form-data", NULL, "without a boundary"},
    {"multipart/form-data; charset=utf-8", NULL, "without a boundary"},
    {"multipart/form-data boundary=abc", NULL, "malformed"},
    {"multipart/form-data; boundary=", NULL, "malformed"},
    {"multipart/form-data; boundary", NULL, "malformed"},
    {"multipart/form-data; boundary = abc", NULL, "malformed"},
    {"multipart/form-data; boundary=\"abc", NULL, "malformed"},
    {"multipart/form-data; boundary=a@b", NULL, "malformed"},
    {"multipart/form-data; boundary=abc def", NULL, "malformed"},
    {"multipart/form-data; ;boundary=abc", NULL, "malformed"},
    {"multipart/form-data; boundary=\"\"", NULL, "invalid multipart boundary"},
    {"multipart/form-data; boundary=\"abc \"", NULL, "invalid multipart boundary"},
    {"multipart/form-data; boundary=\"a@b\"", NULL, "invalid multipart boundary"},
    {"multipart/form-data; boundary=\"a\\\"b\"", NULL, "invalid multipart boundary"},
    {"multipart/form-data; boundary=a!b", NULL, "invalid multipart boundary"},
    {"multipart/form-data; boundary=\"a\tb\"", NULL, "invalid multipart boundary"},
    {"multipart/form-data; boundary=" B70 "x", NULL, "longer than 70"},
    {"multipart/form-data; boundary=\"" B70 "x\"", NULL, "longer than 70"},
    {"multipart/form-data; boundary=a; boundary=a", NULL, "more than one boundary"},
    {"multipart/form-data; boundary=\"a\rb\"", NULL, "malformed"},
};

START_TEST(test_content_type)
{
    const struct ct_case *c = &ct_cases[_i];
    size_t n = strlen(c->ct), out_len = 999;
    struct guard_buf g = {0};
    char out[MP_MAX_BOUNDARY + 1];
    struct bx_err err;
    char *ct = guard_copy(&g, c->ct, n);
    int rc;

    bx_err_clear(&err);
    memset(out, 'Z', sizeof(out));
    rc = mp_boundary_from_content_type(ct, n, out, &out_len, &err);
    if (c->boundary) {
        ck_assert_msg(rc == 0, "%s: %s", c->ct, err.msg);
        ck_assert_str_eq(out, c->boundary);
        ck_assert_uint_eq(out_len, strlen(c->boundary));
    } else {
        ck_assert_msg(rc == -1, "accepted %s", c->ct);
        ck_assert_int_eq(err.status, 400);
        ck_assert_msg(strstr(err.msg, c->msg) != NULL, "%s: message %s", c->ct, err.msg);
    }
    /* Every proper prefix of the value must parse without reading past it. */
    for (size_t k = 0; k < n; k++) {
        struct guard_buf g2 = {0};
        char *pre = guard_copy(&g2, c->ct, k);
        (void)mp_boundary_from_content_type(pre, k, out, &out_len, NULL);
        guard_free(&g2);
    }
    guard_free(&g);
}
END_TEST

START_TEST(test_content_type_nul)
{
    static const char ct[] = "multipart/form-data; boundary=ab\0c";
    char out[MP_MAX_BOUNDARY + 1];
    size_t out_len;
    struct bx_err err;
    ck_assert_int_eq(mp_boundary_from_content_type(ct, sizeof(ct) - 1, out, &out_len, &err), -1);
    ck_assert_int_eq(mp_boundary_from_content_type(NULL, 0, out, &out_len, &err), -1);
}
END_TEST

/* A Content-Type parsed here drives a real body end to end. */
START_TEST(test_content_type_roundtrip)
{
    static const char *cts[] = {"multipart/form-data; boundary=\"q u:o/t=e?d\"",
                                "multipart/form-data; boundary=tok'en+x.y_z"};
    for (size_t i = 0; i < BX_ARRAY_LEN(cts); i++) {
        char b[MP_MAX_BOUNDARY + 1];
        size_t blen;
        struct sbuf body, expect;
        ck_assert_int_eq(mp_boundary_from_content_type(cts[i], strlen(cts[i]), b, &blen, NULL), 0);
        sbuf_init(&body, 1 << 20);
        sbuf_init(&expect, 1 << 20);
        sbuf_appendf(&body, "pre\r\n--%s\r\n" CD "name=n\r\n\r\n--%s\r\r\n--%s--", b, b, b);
        sbuf_appendf(&expect, "{B n f=0}--%s\r{E}|OK", b);
        {
            struct mcase c = {cts[i], b, body.data, body.len, expect.data, expect.len};
            check_case(&c);
        }
        sbuf_free(&body);
        sbuf_free(&expect);
    }
}
END_TEST

static Suite *multipart_suite(void)
{
    Suite *s = suite_create("multipart");
    TCase *bodies = tcase_create("bodies");
    TCase *limits = tcase_create("limits");
    TCase *api = tcase_create("api");
    TCase *ct = tcase_create("content_type");

    tcase_add_loop_test(bodies, test_bodies, 0, (int)BX_ARRAY_LEN(cases));
    tcase_add_test(limits, test_header_limit);
    tcase_add_test(limits, test_padding_limit);
    tcase_add_test(limits, test_parts_limit);
    tcase_add_test(limits, test_name_limit);
    tcase_add_test(api, test_no_buffering);
    tcase_add_test(api, test_callback_abort);
    tcase_add_test(api, test_null_callbacks);
    tcase_add_test(api, test_new_rejects_bad_boundary);
    tcase_add_test(api, test_cr_dense_data_one_piece);
    tcase_add_loop_test(ct, test_content_type, 0, (int)BX_ARRAY_LEN(ct_cases));
    tcase_add_test(ct, test_content_type_nul);
    tcase_add_test(ct, test_content_type_roundtrip);
    /* Every body is parsed O(len) times; under ASan the limit bodies take a while. */
    tcase_set_timeout(bodies, 300);
    tcase_set_timeout(limits, 300);
    tcase_set_timeout(ct, 300);
    suite_add_tcase(s, bodies);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, api);
    suite_add_tcase(s, ct);
    return s;
}

int main(void)
{
    return check_main(multipart_suite);
}
