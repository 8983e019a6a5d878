/* exec_log.c (the bounded event log of an exec's output) and
 * stream_events.c (the SSE and NDJSON writers). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "exec_log.h"
#include "json.h"
#include "stream_events.h"

static char *text(const struct exec_log *l, int stream)
{
    struct sbuf sb;
    sbuf_init(&sb, 1 << 20);
    ck_assert_int_eq(exec_log_text(l, stream, &sb), 0);
    sbuf_putc(&sb, 0);
    return sbuf_steal(&sb, NULL);
}

START_TEST(events_get_consecutive_seqs)
{
    struct exec_log l;
    char *s;
    exec_log_init(&l, 4096);
    ck_assert_uint_eq(exec_log_first_seq(&l), 1);
    ck_assert_uint_eq(exec_log_last_seq(&l), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "hello ", 6), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDERR, "oops", 4), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "world", 5), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "", 0), 0);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(exec_log_at(&l, 0)->seq, 1);
    ck_assert_uint_eq(exec_log_at(&l, 1)->seq, 2);
    ck_assert_int_eq(exec_log_at(&l, 1)->stream, EXEC_STDERR);
    ck_assert_uint_eq(exec_log_last_seq(&l), 3);
    ck_assert_ptr_null(exec_log_at(&l, 3));
    s = text(&l, EXEC_STDOUT);
    ck_assert_str_eq(s, "hello world");
    free(s);
    s = text(&l, EXEC_STDERR);
    ck_assert_str_eq(s, "oops");
    free(s);
    ck_assert_uint_eq(exec_log_stream_len(&l, EXEC_STDOUT), 11);
    ck_assert_int_eq(exec_log_truncated(&l), 0);
    ck_assert_uint_eq(exec_log_index_after(&l, 0), 0);
    ck_assert_uint_eq(exec_log_index_after(&l, 2), 2);
    ck_assert_uint_eq(exec_log_index_after(&l, 3), 3);
    ck_assert_uint_eq(exec_log_index_after(&l, 99), 3);
    ck_assert_uint_eq(exec_log_bytes_after(&l, 1), 4 + 5 + 2 * EXEC_LOG_OVERHEAD);
    ck_assert_uint_eq(exec_log_bytes_after(&l, 3), 0);
    ck_assert_uint_eq(exec_log_bytes_after(&l, 0), 15 + 3 * EXEC_LOG_OVERHEAD);
    exec_log_free(&l);
}
END_TEST

START_TEST(oldest_events_are_dropped_and_counted)
{
    struct exec_log l;
    char buf[100];
    memset(buf, 'x', sizeof(buf));
    /* room for 3 events of 100 bytes */
    exec_log_init(&l, 3 * (100 + EXEC_LOG_OVERHEAD));
    for (int i = 0; i < 10; i++) {
        buf[0] = (char)('0' + i);
        ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, buf, sizeof(buf)), 0);
        ck_assert_uint_le(l.bytes, l.max);
    }
    ck_assert_uint_eq(l.n, 3);
    ck_assert_uint_eq(l.dropped, 7);
    ck_assert_uint_eq(exec_log_first_seq(&l), 8);
    ck_assert_uint_eq(exec_log_last_seq(&l), 10);
    ck_assert_int_eq(exec_log_at(&l, 0)->data[0], '7');
    ck_assert_int_eq(exec_log_truncated(&l), 1);
    ck_assert_uint_eq(exec_log_index_after(&l, 2), 0);
    ck_assert_uint_eq(exec_log_index_after(&l, 8), 1);
    ck_assert_uint_eq(l.cut_bytes, 700);
    exec_log_free(&l);
}
END_TEST

START_TEST(huge_event_keeps_its_tail)
{
    struct exec_log l;
    char buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)('a' + i % 26);
    exec_log_init(&l, 100 + EXEC_LOG_OVERHEAD);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "first", 5), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDERR, buf, sizeof(buf)), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(exec_log_at(&l, 0)->len, 100);
    ck_assert_int_eq(memcmp(exec_log_at(&l, 0)->data, buf + 900, 100), 0);
    ck_assert_uint_eq(exec_log_at(&l, 0)->seq, 2);
    ck_assert_uint_eq(l.cut_bytes, 905);
    ck_assert_uint_le(l.bytes, l.max);
    exec_log_free(&l);
}
END_TEST

START_TEST(many_tiny_writes_stay_bounded)
{
    struct exec_log l;
    exec_log_init(&l, 4096);
    for (int i = 0; i < 100000; i++)
        ck_assert_int_eq(exec_log_append(&l, i & 1, "x", 1), 0);
    ck_assert_uint_le(l.bytes, 4096);
    ck_assert_uint_eq(l.n, 4096 / (1 + EXEC_LOG_OVERHEAD));
    ck_assert_uint_eq(exec_log_last_seq(&l), 100000);
    ck_assert_uint_eq(exec_log_first_seq(&l) + l.n - 1, 100000);
    ck_assert_uint_eq(l.dropped + l.n, 100000);
    exec_log_free(&l);
}
END_TEST

START_TEST(split_utf8_is_held_back)
{
    struct exec_log l;
    char *s;
    /* "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80 */
    exec_log_init(&l, 4096);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "caf\xC3", 4), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_uint_eq(exec_log_at(&l, 0)->len, 3);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "\xA9 \xE2\x82", 4), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "\xAC", 1), 0);
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDERR, "\xF0\x9F", 2), 0);
    ck_assert_uint_eq(l.n, 3); /* stderr's two bytes are held */
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDERR, "\x98\x80!", 3), 0);
    s = text(&l, EXEC_STDOUT);
    ck_assert_str_eq(s, "caf\xC3\xA9 \xE2\x82\xAC");
    free(s);
    s = text(&l, EXEC_STDERR);
    ck_assert_str_eq(s, "\xF0\x9F\x98\x80!");
    free(s);
    /* a dangling lead byte at the end comes out at flush */
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "z\xE2", 2), 0);
    ck_assert_int_eq(exec_log_flush(&l), 0);
    s = text(&l, EXEC_STDOUT);
    ck_assert_str_eq(s, "caf\xC3\xA9 \xE2\x82\xACz\xE2");
    free(s);
    /* invalid bytes (not a lead) are never held */
    ck_assert_int_eq(exec_log_append(&l, EXEC_STDOUT, "\xFF", 1), 0);
    ck_assert_uint_eq(l.carry_len[EXEC_STDOUT], 0);
    exec_log_free(&l);
}
END_TEST

/* Every NDJSON line parses as a JSON object. */
static void ndjson_parses(const char *s, size_t len)
{
    struct json_doc *doc = NULL;
    struct bx_err err;
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(s[len - 1], '\n');
    ck_assert_ptr_null(memchr(s, '\n', len - 1));
    ck_assert_int_eq(json_parse(s, len - 1, NULL, &doc, &err), 0);
    ck_assert_int_eq(json_doc_root(doc)->type, JSON_OBJECT);
    json_doc_free(&doc);
}

START_TEST(sse_shapes)
{
    struct sbuf sb;
    struct sev_exit x = {3, "failed", 0, 12};
    sbuf_init(&sb, 1 << 16);
    ck_assert_int_eq(sev_log(&sb, SEV_SSE, 7, 0, "a\nb\"", 4, 0), 0);
    ck_assert_str_eq(sb.data, "event: log\nid: 7\ndata: {\"stream\":\"stdout\",\"data\":\"a\\nb\\\"\",\"seq\":7}\n\n");
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_exit(&sb, SEV_SSE, 8, &x), 0);
    ck_assert_str_eq(sb.data, "event: exit\nid: 8\ndata: {\"stream\":null,\"data\":\"{\\\"exit_code\\\": 3}\",\"seq\":8}\n\n");
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_keepalive(&sb, SEV_SSE), 0);
    ck_assert_str_eq(sb.data, ": keepalive\n\n");
    ck_assert_uint_eq(sb.len, 13);
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_truncated(&sb, SEV_SSE, 5, 9), 0);
    ck_assert_str_eq(sb.data, "event: truncated\ndata: {\"stream\":null,\"data\":\"{\\\"dropped\\\": 5, "
                              "\\\"first_seq\\\": 9}\",\"seq\":8}\n\n");
    ck_assert_uint_eq(sb.len, strlen(sb.data));
    sbuf_free(&sb);
}
END_TEST

START_TEST(ndjson_shapes)
{
    struct sbuf sb;
    struct sev_exit x = {0, "succeeded", 1, 5};
    sbuf_init(&sb, 1 << 16);
    ck_assert_int_eq(sev_log(&sb, SEV_NDJSON, 1, 1, "\xFF\x00z\n", 4, 0), 0);
    ck_assert_str_eq(sb.data, "{\"type\":\"log\",\"stream\":\"stderr\",\"data\":\"\xEF\xBF\xBD\\u0000z\\n\",\"seq\":1}\n");
    ndjson_parses(sb.data, sb.len);
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_log(&sb, SEV_NDJSON, 2, 0, "\xFF\x00z", 3, 1), 0);
    ck_assert_str_eq(sb.data, "{\"type\":\"log\",\"stream\":\"stdout\",\"data\":\"/wB6\",\"seq\":2}\n");
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_exit(&sb, SEV_NDJSON, 3, &x), 0);
    ck_assert_str_eq(sb.data, "{\"type\":\"exit\",\"exit_code\":0,\"status\":\"succeeded\",\"timed_out\":true,\"wall_ms\":5,\"seq\":3}\n");
    ndjson_parses(sb.data, sb.len);
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_start(&sb, "exec_abc"), 0);
    ck_assert_str_eq(sb.data, "{\"type\":\"start\",\"exec_id\":\"exec_abc\",\"id\":\"exec_abc\"}\n");
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_keepalive(&sb, SEV_NDJSON), 0);
    ck_assert_uint_eq(sb.len, strlen(sb.data));
    ndjson_parses(sb.data, sb.len);
    sbuf_reset(&sb);
    ck_assert_int_eq(sev_truncated(&sb, SEV_NDJSON, 1, 2), 0);
    ndjson_parses(sb.data, sb.len);
    sbuf_free(&sb);
}
END_TEST

START_TEST(base64_and_limits)
{
    struct sbuf sb;
    uint64_t v;
    sbuf_init(&sb, 64);
    ck_assert_int_eq(sev_base64(&sb, "", 0), 0);
    ck_assert_uint_eq(sb.len, 0);
    ck_assert_int_eq(sev_base64(&sb, "f", 1), 0);
    ck_assert_int_eq(sev_base64(&sb, "fo", 2), 0);
    ck_assert_int_eq(sev_base64(&sb, "foo", 3), 0);
    ck_assert_int_eq(sev_base64(&sb, "foob", 4), 0);
    ck_assert_str_eq(sb.data, "Zg==Zm8=Zm9vZm9vYg==");
    sbuf_reset(&sb);
    /* too big for the buffer: nothing is left behind */
    ck_assert_int_eq(sev_log(&sb, SEV_SSE, 1, 0, "0123456789012345678901234567890123456789", 40, 0), -1);
    ck_assert_uint_eq(sb.len, 0);
    ck_assert_int_eq(sev_parse_seq("42", 2, &v), 0);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(sev_parse_seq("", 0, &v), -1);
    ck_assert_int_eq(sev_parse_seq("4x", 2, &v), -1);
    ck_assert_int_eq(sev_parse_seq("-1", 2, &v), -1);
    ck_assert_int_eq(sev_parse_seq("99999999999999999999", 20, &v), -1);
    sbuf_free(&sb);
}
END_TEST

static Suite *exec_log_suite(void)
{
    Suite *s = suite_create("exec_log");
    TCase *tc = tcase_create("exec_log");
    tcase_add_test(tc, events_get_consecutive_seqs);
    tcase_add_test(tc, oldest_events_are_dropped_and_counted);
    tcase_add_test(tc, huge_event_keeps_its_tail);
    tcase_add_test(tc, many_tiny_writes_stay_bounded);
    tcase_add_test(tc, split_utf8_is_held_back);
    tcase_add_test(tc, sse_shapes);
    tcase_add_test(tc, ndjson_shapes);
    tcase_add_test(tc, base64_and_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(exec_log_suite);
}
