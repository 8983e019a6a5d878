/* api_run.c's POST /v1/run parser (run_request_parse_boxrun): BoxRun's run
 * body mapped onto the /run request, the defaults it takes, and its
 * refusals (RESOURCE_EXCEEDED ones carry ERANGE and name the field). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_run.h"
#include "check_main.h"
#include "config.h"
#include "guard.h"
#include "run.h"
#include "util.h"

static struct config cfg;

static void setup(void)
{
    config_defaults(&cfg);
    cfg.max_limits = (struct run_limits){4.0, 4096, 600, 1024, 65536};
    cfg.defaults.wall_clock_secs = 30;
    cfg.total_memory_mb = 3000;
    cfg.total_pids = 100000;
    cfg.max_disk_size_gb = 16;
    cfg.box_defaults.cpu = 2.0;
    cfg.box_defaults.memory_mb = 1024;
    cfg.box_defaults.network = false;
}

static void teardown(void)
{
    config_free(&cfg);
}

static int parse(const char *body, struct run_request **r, struct bx_err *err)
{
    struct guard_buf g;
    int ret;
    bx_err_clear(err);
    ret = run_request_parse_boxrun(guard_copy(&g, body, strlen(body)), strlen(body), &cfg, r, err);
    guard_free(&g);
    if (ret < 0)
        ck_assert_ptr_null(*r);
    return ret;
}

START_TEST(maps_fields)
{
    struct run_request *r = NULL;
    struct bx_err err;
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"sh\", \"-c\", \"x\"],"
                           " \"env\": {\"A\": \"1\", \"B\": \"x=y\"}, \"cpu\": 1.5,"
                           " \"memory_mb\": 256, \"timeout_ms\": 1500, \"network\": true,"
                           " \"volumes\": [], \"disk_size_gb\": 8}",
                           &r, &err),
                     0);
    ck_assert_str_eq(r->image, "busybox");
    ck_assert_str_eq(r->cmd[2], "x");
    ck_assert_ptr_null(r->cmd[3]);
    ck_assert_str_eq(r->env[0], "A=1");
    ck_assert_str_eq(r->env[1], "B=x=y");
    ck_assert(r->limits.cpu_cores == 1.5);
    ck_assert_uint_eq(r->limits.memory_mb, 256);
    ck_assert_uint_eq(r->limits.wall_clock_secs, 2);
    ck_assert_uint_eq(r->wall_clock_ms, 1500);
    ck_assert_int_eq(r->network, RUN_NET_SANDBOX);
    ck_assert_uint_eq(r->limits.pids_limit, cfg.defaults.pids_limit);
    ck_assert_int_eq(r->persist, 0);
    run_request_free(&r);
}
END_TEST

START_TEST(maps_stdin)
{
    struct run_request *r = NULL;
    struct bx_err err;
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"cat\"], \"stdin\": \"a\\u0000b\"}",
                           &r, &err),
                     0);
    ck_assert_uint_eq(r->stdin_len, 3);
    ck_assert(memcmp(r->stdin_data, "a\0b", 3) == 0);
    run_request_free(&r);
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"cat\"], \"stdin_b64\": \"/wBh\"}",
                           &r, &err),
                     0);
    ck_assert_uint_eq(r->stdin_len, 3);
    ck_assert(memcmp(r->stdin_data, "\xff\0a", 3) == 0);
    run_request_free(&r);
    /* refused after the /run request was made: nothing leaks (valgrind) */
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"cat\"], \"stdin\": \"a\","
                           " \"stdin_b64\": \"YQ==\"}",
                           &r, &err),
                     -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_ptr_nonnull(strstr(err.msg, "not both"));
}
END_TEST

START_TEST(defaults_from_box_defaults)
{
    struct run_request *r = NULL;
    struct bx_err err;
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"true\"]}", &r, &err), 0);
    ck_assert(r->limits.cpu_cores == 2.0);
    ck_assert_uint_eq(r->limits.memory_mb, 1024);
    ck_assert_uint_eq(r->limits.wall_clock_secs, 30);
    ck_assert_uint_eq(r->wall_clock_ms, 0);
    ck_assert_int_eq(r->network, RUN_NET_NONE);
    ck_assert_ptr_null(r->env);
    run_request_free(&r);
    /* clamped to the bounds, never refused */
    cfg.box_defaults.memory_mb = 8192;
    cfg.box_defaults.cpu = 8;
    cfg.box_defaults.network = true;
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"true\"], \"network\": null}",
                           &r, &err),
                     0);
    ck_assert(r->limits.cpu_cores == 4.0);
    ck_assert_uint_eq(r->limits.memory_mb, 3000);
    ck_assert_int_eq(r->network, RUN_NET_SANDBOX);
    run_request_free(&r);
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"true\"], \"network\": \"none\"}",
                           &r, &err),
                     0);
    ck_assert_int_eq(r->network, RUN_NET_NONE);
    run_request_free(&r);
}
END_TEST

static const struct {
    const char *body;
    int erange;
    const char *word;
} refused[] = {
    {"[]", 0, "object"},
    {"{\"cmd\": [\"true\"]}", 0, "image"},
    {"{\"image\": \"busybox\"}", 0, "cmd"},
    {"{\"image\": \"busybox\", \"cmd\": []}", 0, "cmd"},
    {"{\"image\": \"busybox\", \"cmd\": [1]}", 0, "cmd[0]"},
    {"{\"image\": \"busybox\", \"cmd\": [\"\"]}", 0, "cmd[0]"},
    {"{\"image\": \"Bad Image\", \"cmd\": [\"true\"]}", 0, "image"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"files\": []}", 0, "files"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"cpu\": 0}", 0, "cpu"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"cpu\": 4.5}", 1, "cpu"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"memory_mb\": 8}", 0, "memory_mb"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"memory_mb\": 4097}", 1, "memory_mb"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"memory_mb\": 3500}", 1, "total_memory_mb"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"memory_mb\": 1.5}", 0, "memory_mb"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"timeout_ms\": -1}", 0, "timeout_ms"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"timeout_ms\": 600001}", 1, "timeout_ms"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"disk_size_gb\": 17}", 1, "disk_size_gb"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"network\": \"host\"}", 0, "network"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"network\": 1}", 0, "network"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"volumes\": [{}]}", 0, "volumes"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"volumes\": {}}", 0, "volumes"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"env\": [\"A=1\"]}", 0, "env"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"env\": {\"A\": 1}}", 0, "env"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"env\": {\"\": \"1\"}}", 0, "env"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"env\": {\"A=B\": \"1\"}}", 0, "env"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"env\": {\"A B\": \"1\"}}", 0, "env"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"user\": \"root\"}", 0, "user"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"user\": 0}", 0, "user"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"user\": \"1:\"}", 0, "user"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"user\": \"4294967295\"}", 0, "user"},
    {"{\"image\": \"busybox\", \"cmd\": [\"true\"], \"user\": \"1\\u00002\"}", 0, "user"},
};

/* BoxRun's ephemeral run: root on a writable root bounded by
 * v1_run_root_mb, half of memory_mb and disk_size_gb; "user" changes who. */
START_TEST(root_and_user)
{
    struct run_request *r = NULL;
    struct bx_err err;
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"true\"]}", &r, &err), 0);
    ck_assert_int_eq(r->v1_root, 1);
    ck_assert_uint_eq(r->uid, 0);
    ck_assert_uint_eq(r->gid, 0);
    ck_assert_uint_eq(r->root_bytes, 512ull << 20); /* v1_run_root_mb */
    run_request_free(&r);
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"true\"], \"memory_mb\": 256,"
                           " \"user\": \"1000:1001\"}", &r, &err), 0);
    ck_assert_uint_eq(r->uid, 1000);
    ck_assert_uint_eq(r->gid, 1001);
    ck_assert_uint_eq(r->root_bytes, 128ull << 20); /* half of memory_mb */
    run_request_free(&r);
    cfg.v1_run_root_mb = 4096;
    ck_assert_int_eq(parse("{\"image\": \"busybox\", \"cmd\": [\"true\"], \"memory_mb\": 2800,"
                           " \"disk_size_gb\": 1, \"user\": \"7\"}", &r, &err), 0);
    ck_assert_uint_eq(r->uid, 7);
    ck_assert_uint_eq(r->gid, 7);
    ck_assert_uint_eq(r->root_bytes, 1024ull << 20); /* disk_size_gb */
    run_request_free(&r);
}
END_TEST

START_TEST(refusals)
{
    struct run_request *r = NULL;
    struct bx_err err;
    ck_assert_int_eq(parse(refused[_i].body, &r, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(err.sys_errno == ERANGE, refused[_i].erange);
    ck_assert_msg(strstr(err.msg, refused[_i].word) != NULL, "%s: %s", refused[_i].body, err.msg);
}
END_TEST

/* issue 17: no fixed translation cap; the body follows max_request_body_bytes.
 * 128 arguments of 240 KiB: 30 MiB of body (the old fixed buffer held 24 MiB). */
START_TEST(large_body_follows_the_config)
{
    struct run_request *r = NULL;
    struct bx_err err;
    struct sbuf b;
    char *arg = malloc(240 << 10);
    ck_assert_ptr_nonnull(arg);
    memset(arg, 'a', 240 << 10);
    cfg.max_request_body_bytes = 64u << 20;
    sbuf_init(&b, 64u << 20);
    ck_assert_int_eq(sbuf_appendf(&b, "{\"image\": \"busybox\", \"cmd\": [\"true\""), 0);
    for (int i = 0; i < 128; i++) {
        ck_assert_int_eq(sbuf_append(&b, ", \"", 3), 0);
        ck_assert_int_eq(sbuf_append(&b, arg, 240 << 10), 0);
        ck_assert_int_eq(sbuf_append(&b, "\"", 1), 0);
    }
    ck_assert_int_eq(sbuf_append(&b, "]}", 3), 0); /* with the NUL parse() reads to */
    ck_assert_msg(parse(b.data, &r, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(strlen(r->cmd[128]), 240 << 10);
    ck_assert_ptr_null(r->cmd[129]);
    run_request_free(&r);
    sbuf_free(&b);
    free(arg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api_v1run");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, maps_fields);
    tcase_add_test(tc, maps_stdin);
    tcase_add_test(tc, defaults_from_box_defaults);
    tcase_add_test(tc, root_and_user);
    tcase_add_test(tc, large_body_follows_the_config);
    tcase_add_loop_test(tc, refusals, 0, (int)(sizeof(refused) / sizeof(refused[0])));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(suite);
}
