/* config.c: defaults, parsing over defaults, and errors that name the field. */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "config.h"

static int parse(struct config *cfg, const char *text, struct bx_err *err)
{
    config_defaults(cfg);
    bx_err_clear(err);
    if (config_parse(cfg, text, strlen(text), err) < 0)
        return -1;
    return config_validate(cfg, err);
}

START_TEST(defaults_match_the_contract)
{
    struct config cfg;
    struct bx_err err;
    setenv("HOME", "/home/tester", 1);
    ck_assert_int_eq(parse(&cfg, "{}", &err), 0);
    ck_assert_str_eq(cfg.home, "/home/tester/.boxer");
    ck_assert_str_eq(cfg.runsc_path, "");
    ck_assert_str_eq(cfg.platform, "systrap");
    /* Loopback only by default (issue 11): a public listener is opt-in. */
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1:8080");
    ck_assert_int_eq(cfg.allow_unauthenticated, 0);
    ck_assert_uint_eq(cfg.allowed_origins.n, 0);
    ck_assert_uint_eq(cfg.allowed_hosts.n, 0);
    ck_assert_uint_eq(cfg.write_timeout_ms, 30000);
    ck_assert_uint_eq(cfg.answer_buffer_max_bytes, 16u << 20);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 256);
    ck_assert_int_eq(cfg.ignore_cgroups, 0);
    ck_assert_uint_eq(cfg.output_limit_bytes, 10485760);
    ck_assert_uint_eq(cfg.upload_limit_bytes, 10485760);
    ck_assert(cfg.defaults.cpu_cores == 1.0);
    ck_assert_uint_eq(cfg.defaults.memory_mb, 256);
    ck_assert_uint_eq(cfg.defaults.wall_clock_secs, 30);
    ck_assert_uint_eq(cfg.defaults.pids_limit, 64);
    ck_assert_uint_eq(cfg.defaults.nofile, 256);
    ck_assert_uint_eq(cfg.pull_timeout_secs, 600);
    ck_assert_uint_eq(cfg.max_queued_runs, 64);
    ck_assert_uint_eq(cfg.min_free_disk_percent, 5);
    ck_assert_uint_eq(cfg.store_max_bytes, 0);
    ck_assert_uint_eq(cfg.max_concurrent_runs, 2 * (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_uint_eq(cfg.max_pending_teardowns, 2 * (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
    /* max_limits.pids_limit is 4096 unless one such run would not fit
     * total_pids (see total_budget_defaults_from_host). */
    ck_assert_uint_eq(cfg.max_limits.pids_limit,
                      config_run_host_pids(4096) <= cfg.total_pids ? 4096
                                                                   : (cfg.total_pids - 32) / 4);
    ck_assert_uint_eq(cfg.max_limits.wall_clock_secs, 3600);
    ck_assert_uint_eq(cfg.max_limits.nofile, 65536);
    ck_assert_int_eq(cfg.allow_host_network, 0);
    ck_assert_int_eq(cfg.allow_private_egress, 0);
    ck_assert_uint_eq(cfg.max_egress_rules, 16);
    ck_assert_uint_eq(cfg.max_concurrent_pulls, 2);
    ck_assert_uint_eq(cfg.image_max_bytes, 8ull << 30);
    ck_assert_uint_eq(cfg.pull_memory_mb, 1024);
    ck_assert_uint_eq(cfg.pull_pids_limit, 512);
    config_free(&cfg);
}
END_TEST

/* listen_unix: on by default only in the default home; "" turns it off;
 * listen_addr "" (no TCP) is allowed with a socket. */
START_TEST(listen_unix_defaults_and_overrides)
{
    struct config cfg;
    struct bx_err err;
    setenv("HOME", "/home/tester", 1);
    ck_assert_int_eq(parse(&cfg, "{}", &err), 0);
    ck_assert_str_eq(cfg.listen_unix, "/home/tester/.boxer/boxer.sock");
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"home\": \"~/.boxer\"}", &err), 0);
    ck_assert_str_eq(cfg.listen_unix, "/home/tester/.boxer/boxer.sock");
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"home\": \"/srv/boxer\"}", &err), 0);
    ck_assert_str_eq(cfg.listen_unix, "");
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"listen_unix\": \"\"}", &err), 0);
    ck_assert_str_eq(cfg.listen_unix, "");
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg,
                           "{\"home\": \"/srv/boxer\", \"listen_unix\": \"~/b.sock\","
                           " \"listen_addr\": \"\"}",
                           &err),
                     0);
    ck_assert_str_eq(cfg.listen_unix, "/home/tester/b.sock");
    ck_assert_str_eq(cfg.listen_addr, "");
    config_free(&cfg);
    /* A default home too long for a socket path: no socket, no error. */
    setenv("HOME",
           "/home/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
           1);
    ck_assert_int_eq(parse(&cfg, "{}", &err), 0);
    ck_assert_str_eq(cfg.listen_unix, "");
    config_free(&cfg);
    /* Without any config file the default home applies too. */
    unsetenv("BOXER_CONFIG");
    setenv("HOME", "/nonexistent-boxer-test-home", 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, NULL, &err), 0);
    ck_assert_str_eq(cfg.listen_unix, "/nonexistent-boxer-test-home/.boxer/boxer.sock");
    config_free(&cfg);
}
END_TEST

START_TEST(pull_bounds_parse)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg,
                           "{\"max_concurrent_pulls\": 1, \"image_max_bytes\": 1048576,"
                           " \"pull_memory_mb\": 64, \"pull_pids_limit\": 16}",
                           &err),
                     0);
    ck_assert_uint_eq(cfg.max_concurrent_pulls, 1);
    ck_assert_uint_eq(cfg.image_max_bytes, 1048576);
    ck_assert_uint_eq(cfg.pull_memory_mb, 64);
    ck_assert_uint_eq(cfg.pull_pids_limit, 16);
    config_free(&cfg);
}
END_TEST

START_TEST(fields_override_defaults)
{
    struct config cfg;
    struct bx_err err;
    setenv("HOME", "/home/tester", 1);
    ck_assert_int_eq(parse(&cfg,
                           "{\"home\": \"~/data\", \"listen_addr\": \"127.0.0.1:9\","
                           " \"ignore_cgroups\": true, \"defaults\": {\"memory_mb\": 128,"
                           " \"cpu_cores\": 0.5}, \"registry_mirrors\": {\"docker.io\":"
                           " \"http://127.0.0.1:5000\"}, \"insecure_registries\": [\"a:1\"],"
                           " \"volume_roots\": [\"/srv/vols\"],"
                           " \"auth_tokens\": [\"t\"], \"platform\": \"ptrace\","
                           " \"allow_private_egress\": true, \"max_egress_rules\": 0,"
                           " \"allow_unauthenticated\": true, \"allowed_origins\":"
                           " [\"http://app.example:3000\"], \"allowed_hosts\": [\"boxer.lan\"],"
                           " \"write_timeout_ms\": 5000, \"answer_buffer_max_bytes\": 1048576,"
                           " \"max_connections_per_ip\": 8,"
                           " \"min_free_disk_percent\": 0, \"store_max_bytes\": 4096}",
                           &err),
                     0);
    ck_assert_str_eq(cfg.home, "/home/tester/data");
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1:9");
    ck_assert_int_eq(cfg.ignore_cgroups, 1);
    ck_assert_uint_eq(cfg.defaults.memory_mb, 128);
    ck_assert(cfg.defaults.cpu_cores == 0.5);
    ck_assert_uint_eq(cfg.defaults.nofile, 256); /* untouched sibling keeps its default */
    ck_assert_uint_eq(cfg.nmirrors, 1);
    ck_assert_str_eq(cfg.mirrors[0].registry, "docker.io");
    ck_assert_str_eq(cfg.mirrors[0].url, "http://127.0.0.1:5000");
    ck_assert_uint_eq(cfg.insecure_registries.n, 1);
    ck_assert_uint_eq(cfg.volume_roots.n, 1);
    ck_assert_str_eq(cfg.volume_roots.items[0], "/srv/vols");
    ck_assert_uint_eq(cfg.auth_tokens.n, 1);
    ck_assert_str_eq(cfg.platform, "ptrace");
    ck_assert_int_eq(cfg.allow_private_egress, 1);
    ck_assert_uint_eq(cfg.max_egress_rules, 0);
    ck_assert_int_eq(cfg.allow_unauthenticated, 1);
    ck_assert_uint_eq(cfg.allowed_origins.n, 1);
    ck_assert_str_eq(cfg.allowed_origins.items[0], "http://app.example:3000");
    ck_assert_uint_eq(cfg.allowed_hosts.n, 1);
    ck_assert_str_eq(cfg.allowed_hosts.items[0], "boxer.lan");
    ck_assert_uint_eq(cfg.write_timeout_ms, 5000);
    ck_assert_uint_eq(cfg.answer_buffer_max_bytes, 1048576);
    ck_assert_uint_eq(cfg.max_connections_per_ip, 8);
    ck_assert_uint_eq(cfg.min_free_disk_percent, 0);
    ck_assert_uint_eq(cfg.store_max_bytes, 4096);
    config_free(&cfg);
}
END_TEST

/* The budget across runs: three quarters of RAM, half of kernel.pid_max,
 * and one run at max_limits always fits it. */
START_TEST(total_budget_defaults_from_host)
{
    struct config cfg;
    struct bx_err err;
    uint64_t ram_mb = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) >> 20;
    unsigned long long pid_max = 0;
    FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%llu", &pid_max), 1);
    fclose(f);
    ck_assert_int_eq(parse(&cfg, "{}", &err), 0);
    ck_assert_uint_eq(cfg.total_memory_mb, ram_mb / 4 * 3);
    ck_assert_uint_eq(cfg.total_pids, pid_max / 2 > (1u << 22) ? (1u << 22) : pid_max / 2);
    ck_assert_uint_le(cfg.max_limits.memory_mb, cfg.total_memory_mb);
    ck_assert_uint_le(config_run_host_pids(cfg.max_limits.pids_limit), cfg.total_pids);
    ck_assert_uint_eq(config_run_host_pids(64), 32 + 4 * 64);
    config_free(&cfg);

    ck_assert_int_eq(parse(&cfg, "{\"total_memory_mb\": 512, \"total_pids\": 1000}", &err), 0);
    ck_assert_uint_eq(cfg.total_memory_mb, 512);
    ck_assert_uint_eq(cfg.total_pids, 1000);
    config_free(&cfg);
}
END_TEST

static const struct {
    const char *text;
    const char *field; /* must appear in the message */
} bad[] = {
    {"{\"total_memory_mb\": 0}", "total_memory_mb"},
    {"{\"total_memory_mb\": -1}", "total_memory_mb"},
    {"{\"total_memory_mb\": \"1\"}", "total_memory_mb"},
    {"{\"total_memory_mb\": 100}", "total_memory_mb"}, /* below defaults.memory_mb 256 */
    {"{\"total_pids\": 0}", "total_pids"},
    {"{\"total_pids\": 1.5}", "total_pids"},
    {"{\"total_pids\": 100}", "total_pids"}, /* below 32 + 4 x defaults.pids_limit 64 */
    {"{\"total_pids\": 4194305}", "total_pids"},
    {"{\"bogus\": 1}", "bogus"},
    {"{\"home\": 5}", "home"},
    {"{\"home\": \"relative/dir\"}", "home"},
    {"{\"listen_addr\": 8080}", "listen_addr"},
    {"{\"listen_addr\": \"localhost\"}", "listen_addr"},
    {"{\"listen_addr\": \":99999\"}", "listen_addr"},
    {"{\"listen_addr\": \"a b:80\"}", "listen_addr"},
    {"{\"listen_addr\": \"\", \"listen_unix\": \"\"}", "listen_addr"},
    {"{\"listen_unix\": 1}", "listen_unix"},
    {"{\"listen_unix\": \"relative.sock\"}", "listen_unix"},
    {"{\"listen_unix\": \"/tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock\"}",
     "listen_unix"},
    {"{\"ignore_cgroups\": 1}", "ignore_cgroups"},
    {"{\"output_limit_bytes\": -1}", "output_limit_bytes"},
    {"{\"output_limit_bytes\": 0}", "output_limit_bytes"},
    {"{\"upload_limit_bytes\": 1.5}", "upload_limit_bytes"},
    {"{\"upload_limit_bytes\": \"10\"}", "upload_limit_bytes"},
    {"{\"defaults\": 3}", "defaults"},
    {"{\"defaults\": {\"memory_mb\": -5}}", "defaults.memory_mb"},
    {"{\"defaults\": {\"memory_mb\": 0}}", "defaults.memory_mb"},
    {"{\"defaults\": {\"cpu_cores\": -0.5}}", "defaults.cpu_cores"},
    {"{\"defaults\": {\"cpu_cores\": \"1\"}}", "defaults.cpu_cores"},
    {"{\"defaults\": {\"wat\": 1}}", "defaults.wat"},
    {"{\"max_limits\": {\"nofile\": 0}}", "max_limits.nofile"},
    {"{\"defaults\": {\"pids_limit\": 100}, \"max_limits\": {\"pids_limit\": 50}}",
     "defaults.pids_limit"},
    {"{\"platform\": \"vmware\"}", "platform"},
    {"{\"platform\": \"systrapx\"}", "platform"},
    {"{\"platform\": \"sys\"}", "platform"},
    {"{\"platform\": \"\"}", "platform"},
    {"{\"platform\": \"kvm\\u0000junk\"}", "platform"},
    {"{\"max_queued_runs\": -1}", "max_queued_runs"},
    {"{\"max_queued_runs\": 1000001}", "max_queued_runs"},
    {"{\"runsc_path\": \"runsc\"}", "runsc_path"},
    {"{\"registry_mirrors\": {\"docker.io\": \"ftp://x\"}}", "registry_mirrors.docker.io"},
    {"{\"registry_mirrors\": [\"x\"]}", "registry_mirrors"},
    {"{\"insecure_registries\": [1]}", "insecure_registries[0]"},
    {"{\"volume_roots\": [\"rel\"]}", "volume_roots[0]"},
    {"{\"volume_roots\": [\"/srv\", \"/\"]}", "volume_roots[1]"},
    {"{\"volume_roots\": \"/srv\"}", "volume_roots"},
    {"{\"auth_tokens\": \"t\"}", "auth_tokens"},
    {"{\"max_concurrent_runs\": 0}", "max_concurrent_runs"},
    {"{\"max_pending_teardowns\": 0}", "max_pending_teardowns"},
    {"{\"pull_timeout_secs\": 0}", "pull_timeout_secs"},
    {"{\"max_concurrent_pulls\": 0}", "max_concurrent_pulls"},
    {"{\"max_concurrent_pulls\": 65}", "max_concurrent_pulls"},
    {"{\"max_concurrent_pulls\": \"2\"}", "max_concurrent_pulls"},
    {"{\"image_max_bytes\": 0}", "image_max_bytes"},
    {"{\"image_max_bytes\": -1}", "image_max_bytes"},
    {"{\"image_max_bytes\": 1.5}", "image_max_bytes"},
    {"{\"pull_memory_mb\": 63}", "pull_memory_mb"},
    {"{\"pull_memory_mb\": 0}", "pull_memory_mb"},
    {"{\"pull_pids_limit\": 15}", "pull_pids_limit"},
    {"{\"pull_pids_limit\": true}", "pull_pids_limit"},
    {"{\"registry_auth_file\": \"rel.json\"}", "registry_auth_file"},
    {"{\"allow_private_egress\": 1}", "allow_private_egress"},
    {"{\"allow_private_egress\": \"yes\"}", "allow_private_egress"},
    {"{\"max_egress_rules\": -1}", "max_egress_rules"},
    {"{\"max_egress_rules\": 1025}", "max_egress_rules"},
    {"{\"max_egress_rules\": 1.5}", "max_egress_rules"},
    {"{\"allow_unauthenticated\": \"yes\"}", "allow_unauthenticated"},
    {"{\"allowed_origins\": \"http://a\"}", "allowed_origins"},
    {"{\"allowed_origins\": [\"app.example\"]}", "allowed_origins[0]"},
    {"{\"allowed_origins\": [\"http://a/\"]}", "allowed_origins[0]"},
    {"{\"allowed_origins\": [\"http://a\", \"http://b/path\"]}", "allowed_origins[1]"},
    {"{\"allowed_hosts\": [\"a b\"]}", "allowed_hosts[0]"},
    {"{\"allowed_hosts\": [\"\"]}", "allowed_hosts[0]"},
    {"{\"write_timeout_ms\": 0}", "write_timeout_ms"},
    {"{\"answer_buffer_max_bytes\": 100}", "answer_buffer_max_bytes"},
    {"{\"max_connections_per_ip\": 0}", "max_connections_per_ip"},
    {"{\"max_connections_per_ip\": -1}", "max_connections_per_ip"},
    {"{\"min_free_disk_percent\": 100}", "min_free_disk_percent"},
    {"{\"min_free_disk_percent\": -1}", "min_free_disk_percent"},
    {"{\"min_free_disk_percent\": 2.5}", "min_free_disk_percent"},
    {"{\"store_max_bytes\": \"1G\"}", "store_max_bytes"},
    {"{\"store_max_bytes\": -1}", "store_max_bytes"},
    {"{\"box_defaults\": {\"gpu\": 1}}", "box_defaults.gpu"},
    {"{\"box_defaults\": {\"workdir\": \"rel\"}}", "box_defaults.workdir"},
    {"{\"box_defaults\": {\"network\": 1}}", "box_defaults.network"},
    {"{\"box_defaults\": {\"memory_mb\": 0}}", "box_defaults.memory_mb"},
    {"{\"box_defaults\": {\"disk_size_gb\": 100}}", "box_defaults.disk_size_gb"},
    {"{\"box_defaults\": 2}", "box_defaults"},
    {"{\"box_defaults\": {\"pids_limit\": 0}}", "box_defaults.pids_limit"},
    {"{\"box_defaults\": {\"pids_limit\": -5}}", "box_defaults.pids_limit"},
    {"{\"max_disk_size_gb\": 0}", "max_disk_size_gb"},
    {"{\"v1_run_root_mb\": 7}", "v1_run_root_mb"},
    {"{\"v1_run_root_mb\": 1048577}", "v1_run_root_mb"},
    {"{\"max_boxes\": 0}", "max_boxes"},
    {"{\"max_execs_per_box\": 0}", "max_execs_per_box"},
    {"{\"exec_output_bytes\": -1}", "exec_output_bytes"},
    {"{\"stream_keepalive_secs\": 0}", "stream_keepalive_secs"},
    {"{\"stream_keepalive_secs\": 3601}", "stream_keepalive_secs"},
    {"{\"stdin_limit_bytes\": 0}", "stdin_limit_bytes"},
    {"{\"exec_stdin_buffer_bytes\": 268435457}", "exec_stdin_buffer_bytes"},
    {"{\"box_idle_timeout_secs\": 1.5}", "box_idle_timeout_secs"},
    {"{\"box_stop_grace_secs\": 3601}", "box_stop_grace_secs"},
    {"{\"restart_boxes\": \"no\"}", "restart_boxes"},
    {"[1, 2]", "object"},
    {"{\"home\": \"/x\",}", "invalid JSON"},
    {"{\"home\": \"/x\", \"home\": \"/y\"}", "duplicate"},
    {"{\"home\\u0000x\": \"/a\"}", "unknown field"},
    {"{\"defaults\": {\"nofile\\u0000\": 5}}", "unknown field"},
};

START_TEST(bad_config_names_field)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_msg(parse(&cfg, bad[_i].text, &err) < 0, "accepted: %s", bad[_i].text);
    ck_assert_msg(strstr(err.msg, bad[_i].field) != NULL, "%s: message '%s' lacks '%s'",
                  bad[_i].text, err.msg, bad[_i].field);
    config_free(&cfg);
}
END_TEST

/* The whole message of each kind of refusal, as config_parse words it (the
 * table-driven parser must keep the wording of the if/else chain it
 * replaced), and which member is reported when several are bad: the first in
 * document order, whether unknown or of a bad value. */
static const struct {
    const char *text;
    const char *msg;
} exact[] = {
    {"{\"home\": 5}", "config: home: must be a string"},
    {"{\"platform\": \"kvm\\u0000\"}", "config: platform: must not contain NUL"},
    {"{\"ignore_cgroups\": 1}", "config: ignore_cgroups: must be true or false"},
    {"{\"runsc_debug\": null}", "config: runsc_debug: must be true or false"},
    {"{\"output_limit_bytes\": 0}", "config: output_limit_bytes: must be positive"},
    {"{\"output_limit_bytes\": 1.5}", "config: output_limit_bytes: must be an integer"},
    {"{\"output_limit_bytes\": 4294967297}",
     "config: output_limit_bytes: must be at most 4294967296"},
    {"{\"tag_refresh_secs\": -1}", "config: tag_refresh_secs: must be zero or positive"},
    {"{\"store_max_bytes\": -1}", "config: store_max_bytes: must be zero or positive"},
    {"{\"max_egress_rules\": 1025}", "config: max_egress_rules: must be at most 1024"},
    {"{\"max_queued_runs\": 1000001}", "config: max_queued_runs: must be at most 1000000"},
    {"{\"defaults\": 3}", "config: defaults: must be an object"},
    {"{\"max_limits\": []}", "config: max_limits: must be an object"},
    {"{\"defaults\": {\"cpu_cores\": 1025}}",
     "config: defaults.cpu_cores: must be a positive number (at most 1024)"},
    {"{\"max_limits\": {\"cpu_cores\": 0}}",
     "config: max_limits.cpu_cores: must be a positive number (at most 1024)"},
    {"{\"max_limits\": {\"memory_mb\": 0}}", "config: max_limits.memory_mb: must be positive"},
    {"{\"defaults\": {\"wall_clock_secs\": 2592001}}",
     "config: defaults.wall_clock_secs: must be at most 2592000"},
    {"{\"defaults\": {\"wat\": 1}}", "config: defaults.wat: unknown field"},
    {"{\"bogus\": 1}", "config: bogus: unknown field"},
    {"{\"Home\": \"/x\"}", "config: Home: unknown field"},
    {"{\"hom\": \"/x\"}", "config: hom: unknown field"},
    {"{\"home\\u0000x\": \"/a\"}", "config: home: unknown field"},
    {"{\"defaults\": {\"nofile\\u0000\": 5}}", "config: defaults.nofile: unknown field"},
    {"{\"auth_tokens\": [\"a\", \"\"]}", "config: auth_tokens[1]: must be a non-empty string"},
    {"{\"dns_servers\": \"x\"}", "config: dns_servers: must be an array of strings"},
    {"{\"registry_mirrors\": []}",
     "config: registry_mirrors: must be an object of registry -> URL"},
    {"{\"registry_mirrors\": {\"a\": \"x\"}}",
     "config: registry_mirrors.a: must be an http:// or https:// URL"},
    {"{\"output_limit_bytes\": \"x\", \"bogus\": 1}",
     "config: output_limit_bytes: must be an integer"},
    {"{\"bogus\": 1, \"output_limit_bytes\": \"x\"}", "config: bogus: unknown field"},
    {"{\"defaults\": {\"memory_mb\": 0, \"wat\": 1}}",
     "config: defaults.memory_mb: must be positive"},
    {"{\"defaults\": {\"wat\": 1, \"memory_mb\": 0}}", "config: defaults.wat: unknown field"},
    {"{\"home\": \"/ok\", \"defaults\": {\"nofile\": 1}, \"max_limits\": {\"x\": 1}}",
     "config: max_limits.x: unknown field"},
    /* Long keys are cut: 100 bytes at the top, 40 below a prefix. */
    {"{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": 1}",
     "config: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaa: unknown field"},
    {"{\"defaults\": {\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\": 1}}",
     "config: defaults.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb: unknown field"},
};

START_TEST(parse_messages_exact)
{
    struct config cfg;
    struct bx_err err;
    config_defaults(&cfg);
    bx_err_clear(&err);
    ck_assert_msg(config_parse(&cfg, exact[_i].text, strlen(exact[_i].text), &err) < 0,
                  "accepted: %s", exact[_i].text);
    ck_assert_int_eq(err.status, 400);
    ck_assert_str_eq(err.msg, exact[_i].msg);
    config_free(&cfg);
}
END_TEST

/* Every boolean field takes true and false and stores exactly that. */
START_TEST(bool_fields_parse)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg,
                           "{\"ignore_cgroups\": true, \"runsc_debug\": true,"
                           " \"allow_unauthenticated\": true, \"allow_host_network\": true,"
                           " \"allow_private_egress\": true}",
                           &err),
                     0);
    ck_assert(cfg.ignore_cgroups && cfg.runsc_debug && cfg.allow_unauthenticated &&
              cfg.allow_host_network && cfg.allow_private_egress);
    ck_assert_int_eq(config_parse(&cfg,
                                  "{\"ignore_cgroups\": false, \"runsc_debug\": false,"
                                  " \"allow_unauthenticated\": false,"
                                  " \"allow_host_network\": false,"
                                  " \"allow_private_egress\": false}",
                                  strlen("{\"ignore_cgroups\": false, \"runsc_debug\": false,"
                                         " \"allow_unauthenticated\": false,"
                                         " \"allow_host_network\": false,"
                                         " \"allow_private_egress\": false}"),
                                  &err),
                     0);
    ck_assert(!cfg.ignore_cgroups && !cfg.runsc_debug && !cfg.allow_unauthenticated &&
              !cfg.allow_host_network && !cfg.allow_private_egress);
    config_free(&cfg);
}
END_TEST

/* README: "max_queued_runs ... (0: no queue)": 0 (also written -0) is a
 * valid setting meaning no run ever waits; run_submit answers 503 as soon
 * as every run slot is busy (tests/integration/test_run.py). */
START_TEST(max_queued_runs_zero_means_no_queue)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg, "{\"max_queued_runs\": 0}", &err), 0);
    ck_assert_uint_eq(cfg.max_queued_runs, 0);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"max_queued_runs\": -0}", &err), 0);
    ck_assert_uint_eq(cfg.max_queued_runs, 0);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"max_queued_runs\": 1000000}", &err), 0);
    ck_assert_uint_eq(cfg.max_queued_runs, 1000000);
    config_free(&cfg);
}
END_TEST

START_TEST(warm_pool_parses)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg, "{}", &err), 0);
    ck_assert_uint_eq(cfg.nwarm_pool, 0); /* default: no pool */
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg,
                           "{\"warm_pool\": [{\"image\": \"busybox\", \"count\": 2},"
                           " {\"image\": \"python:3.12-slim\", \"count\": 1, \"network\": \"sandbox\","
                           " \"limits\": {\"memory_mb\": 512, \"cpu_cores\": 2}}]}",
                           &err),
                     0);
    ck_assert_uint_eq(cfg.nwarm_pool, 2);
    ck_assert_str_eq(cfg.warm_pool[0].image, "busybox");
    ck_assert_uint_eq(cfg.warm_pool[0].count, 2);
    ck_assert_ptr_null(cfg.warm_pool[0].network);
    ck_assert_uint_eq(cfg.warm_pool[0].limits.memory_mb, 0); /* 0: the defaults */
    ck_assert_str_eq(cfg.warm_pool[1].network, "sandbox");
    ck_assert_uint_eq(cfg.warm_pool[1].limits.memory_mb, 512);
    ck_assert(cfg.warm_pool[1].limits.cpu_cores == 2.0);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"busybox\"}]}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "warm_pool[0]"));
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 1, \"network\": \"host\"}]}", &err), -1);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 65}]}", &err), -1);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 1, \"x\": 1}]}", &err), -1);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": {}}", &err), -1);
    config_free(&cfg);
}
END_TEST

START_TEST(warm_pool_box_kind)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg,
                           "{\"total_memory_mb\": 1024, \"warm_pool\": [{\"image\": \"b\", "
                           "\"count\": 3, \"kind\": \"box\", \"disk_size_gb\": 2, "
                           "\"limits\": {\"memory_mb\": 512, \"cpu_cores\": 1}}, "
                           "{\"image\": \"r\", \"count\": 1, \"kind\": \"run\"}]}",
                           &err),
                     0);
    ck_assert_uint_eq(cfg.nwarm_pool, 2);
    ck_assert(config_pool_is_box(&cfg.warm_pool[0]));
    ck_assert(!config_pool_is_box(&cfg.warm_pool[1]));
    ck_assert_uint_eq(cfg.warm_pool[0].disk_size_gb, 2);
    ck_assert_uint_eq(cfg.warm_pool[0].limits.memory_mb, 512);
    /* box entries are not run pool sandboxes: not in the run pool's total */
    ck_assert_uint_eq(config_warm_pool_max_total(&cfg), 1);
    config_free(&cfg);
    /* without kind: a run entry */
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 1}]}", &err), 0);
    ck_assert(!config_pool_is_box(&cfg.warm_pool[0]));
    config_free(&cfg);
    /* an unknown kind, disk_size_gb on a run entry, pids_limit on a box entry */
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 1, \"kind\": \"vm\"}]}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "kind"));
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 1, \"disk_size_gb\": 1}]}", &err), -1);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool\": [{\"image\": \"b\", \"count\": 1, \"kind\": \"box\", \"limits\": {\"pids_limit\": 10}}]}", &err), -1);
    config_free(&cfg);
}
END_TEST

START_TEST(warm_pool_auto_and_max_total)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg, "{\"total_memory_mb\": 4096}", &err), 0);
    ck_assert_uint_eq(cfg.warm_pool_auto, 0); /* default: off */
    ck_assert_uint_eq(cfg.warm_pool_auto_idle_secs, 300);
    ck_assert_uint_eq(cfg.warm_pool_max_total, 0);
    /* derived: a quarter of 4096 MiB in default 256 MiB runs */
    ck_assert_uint_eq(config_warm_pool_max_total(&cfg), 4);
    config_free(&cfg);
    /* never below the configured counts */
    ck_assert_int_eq(parse(&cfg,
                           "{\"total_memory_mb\": 1024, \"warm_pool\": [{\"image\": \"b\", "
                           "\"count\": 3}]}",
                           &err),
                     0);
    ck_assert_uint_eq(config_warm_pool_max_total(&cfg), 3);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"total_memory_mb\": 512}", &err), 0);
    ck_assert_uint_eq(config_warm_pool_max_total(&cfg), 1); /* at least one */
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg,
                           "{\"warm_pool_auto\": 3, \"warm_pool_auto_idle_secs\": 2, "
                           "\"warm_pool_max_total\": 7}",
                           &err),
                     0);
    ck_assert_uint_eq(cfg.warm_pool_auto, 3);
    ck_assert_uint_eq(cfg.warm_pool_auto_idle_secs, 2);
    ck_assert_uint_eq(config_warm_pool_max_total(&cfg), 7);
    config_free(&cfg);
    /* an explicit total below the configured counts is refused */
    ck_assert_int_eq(parse(&cfg,
                           "{\"warm_pool_max_total\": 1, \"warm_pool\": [{\"image\": \"b\", "
                           "\"count\": 2}]}",
                           &err),
                     -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "warm_pool_max_total"));
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool_auto_idle_secs\": 0}", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "warm_pool_auto_idle_secs"));
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool_max_total\": 4097}", &err), -1);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"warm_pool_auto\": 1001}", &err), -1);
    config_free(&cfg);
}
END_TEST

START_TEST(load_precedence)
{
    char dir[] = "/tmp/boxer-test-config-XXXXXX";
    char explicit_path[128], env_path[128], home_path[128], cmd[256];
    struct config cfg;
    struct bx_err err;
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(explicit_path, sizeof(explicit_path), "%s/explicit.json", dir);
    snprintf(env_path, sizeof(env_path), "%s/env.json", dir);
    snprintf(cmd, sizeof(cmd), "%s/.boxer", dir);
    ck_assert_int_eq(mkdir(cmd, 0700), 0);
    snprintf(home_path, sizeof(home_path), "%s/.boxer/config.json", dir);
    f = fopen(explicit_path, "w");
    fputs("{\"listen_addr\": \"127.0.0.1:1\"}", f);
    fclose(f);
    f = fopen(env_path, "w");
    fputs("{\"listen_addr\": \"127.0.0.1:2\"}", f);
    fclose(f);
    f = fopen(home_path, "w");
    fputs("{\"listen_addr\": \"127.0.0.1:3\"}", f);
    fclose(f);
    setenv("HOME", dir, 1);

    setenv("BOXER_CONFIG", env_path, 1);
    config_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, explicit_path, &err), 0);
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1:1");
    config_free(&cfg);

    config_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, NULL, &err), 0);
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1:2");
    config_free(&cfg);

    unsetenv("BOXER_CONFIG");
    config_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, NULL, &err), 0);
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1:3");
    ck_assert_str_eq(cfg.source, home_path);
    config_free(&cfg);

    unlink(home_path);
    config_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, NULL, &err), 0);
    ck_assert_str_eq(cfg.listen_addr, "127.0.0.1:8080");
    ck_assert_ptr_null(cfg.source);
    config_free(&cfg);

    config_defaults(&cfg);
    ck_assert_int_eq(config_load(&cfg, "/nonexistent/boxer.json", &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/boxer.json"));
    config_free(&cfg);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Boxes (issue 13): BoxRun's create defaults and the box bounds. */
START_TEST(box_fields_parse)
{
    struct config cfg;
    struct bx_err err;
    ck_assert_int_eq(parse(&cfg, "{}", &err), 0);
    ck_assert(cfg.box_defaults.cpu == 2.0);
    ck_assert_uint_eq(cfg.box_defaults.memory_mb, 1024);
    ck_assert_uint_eq(cfg.box_defaults.disk_size_gb, 8);
    ck_assert_int_eq(cfg.box_defaults.network, 0);
    ck_assert_str_eq(cfg.box_defaults.workdir, "/root");
    ck_assert_uint_eq(cfg.box_defaults.pids_limit,
                      config_run_host_pids(256) <= cfg.total_pids ? 256 : cfg.max_limits.pids_limit);
    ck_assert_uint_eq(cfg.max_disk_size_gb, 64);
    ck_assert_uint_eq(cfg.v1_run_root_mb, 512);
    ck_assert_uint_eq(cfg.box_stop_grace_secs, 10);
    ck_assert_uint_eq(cfg.box_idle_timeout_secs, 3600);
    ck_assert_uint_eq(cfg.max_boxes,
                      cfg.total_memory_mb / 1024 ? cfg.total_memory_mb / 1024 : 1);
    ck_assert_uint_eq(cfg.max_execs_per_box, 100);
    ck_assert_uint_eq(cfg.exec_output_bytes, 1048576);
    ck_assert_uint_eq(cfg.stream_keepalive_secs, 15);
    ck_assert_int_eq(cfg.restart_boxes, 1);
    ck_assert_uint_eq(cfg.stdin_limit_bytes, 10485760);
    ck_assert_uint_eq(cfg.exec_stdin_buffer_bytes, 1048576);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg,
                           "{\"box_defaults\": {\"cpu\": 0.5, \"memory_mb\": 256,"
                           " \"disk_size_gb\": 2, \"network\": true, \"workdir\": \"/w\","
                           " \"pids_limit\": 100},"
                           " \"max_disk_size_gb\": 4, \"box_stop_grace_secs\": 0,"
                           " \"box_idle_timeout_secs\": 0, \"max_boxes\": 3,"
                           " \"max_execs_per_box\": 5, \"exec_output_bytes\": 4096,"
                           " \"stream_keepalive_secs\": 1, \"restart_boxes\": false, \"stdin_limit_bytes\": 100,"
                           " \"exec_stdin_buffer_bytes\": 200}",
                           &err),
                     0);
    ck_assert(cfg.box_defaults.cpu == 0.5);
    ck_assert_uint_eq(cfg.box_defaults.memory_mb, 256);
    ck_assert_uint_eq(cfg.box_defaults.disk_size_gb, 2);
    ck_assert_int_eq(cfg.box_defaults.network, 1);
    ck_assert_str_eq(cfg.box_defaults.workdir, "/w");
    ck_assert_uint_eq(cfg.box_defaults.pids_limit, 100);
    ck_assert_uint_eq(cfg.max_disk_size_gb, 4);
    ck_assert_uint_eq(cfg.box_stop_grace_secs, 0);
    ck_assert_uint_eq(cfg.box_idle_timeout_secs, 0);
    ck_assert_uint_eq(cfg.max_boxes, 3);
    ck_assert_uint_eq(cfg.max_execs_per_box, 5);
    ck_assert_uint_eq(cfg.exec_output_bytes, 4096);
    ck_assert_uint_eq(cfg.stream_keepalive_secs, 1);
    ck_assert_int_eq(cfg.restart_boxes, 0);
    ck_assert_uint_eq(cfg.stdin_limit_bytes, 100);
    ck_assert_uint_eq(cfg.exec_stdin_buffer_bytes, 200);
    config_free(&cfg);
}
END_TEST

/* issue 17: node_id defaults to the short host name lower-cased; only
 * [a-z0-9-] of 1..NODE_ID_MAX pass, so box, exec and run ids stay routable
 * and a run's exec id fits a host name. */
START_TEST(node_id_default_and_rules)
{
    struct config cfg;
    struct bx_err err;
    char h[256], want[256];
    size_t i;
    ck_assert_int_eq(gethostname(h, sizeof(h)), 0);
    h[sizeof(h) - 1] = 0;
    /* the host name made valid: [a-z0-9] kept, the rest '-', at most
     * NODE_ID_MAX, no leading '-' ("node" when empty) */
    for (i = 0; h[i] && h[i] != '.' && i < NODE_ID_MAX; i++) {
        char c = (char)tolower((unsigned char)h[i]);
        want[i] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
    }
    want[i] = 0;
    if (!want[strspn(want, "-")])
        snprintf(want, sizeof(want), "node");
    else
        memmove(want, want + strspn(want, "-"), strlen(want + strspn(want, "-")) + 1);
    config_defaults(&cfg);
    ck_assert_str_eq(cfg.node_id, want);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"node_id\": \"node-7\"}", &err), 0);
    ck_assert_str_eq(cfg.node_id, "node-7");
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"node_id\": \"abcdefghijklmnopqrst\"}", &err), 0);
    config_free(&cfg);
    static const char *const badids[] = {"\"\"", "\"Node\"", "\"a_b\"", "\"a.b\"",
                                         "\"-a\"", "\"abcdefghijklmnopqrstu\"",
                                         "\"a b\"", "\"a\\u0000\""};
    for (i = 0; i < sizeof(badids) / sizeof(badids[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"node_id\": %s}", badids[i]);
        ck_assert_msg(parse(&cfg, text, &err) < 0, "accepted %s", text);
        ck_assert_msg(strstr(err.msg, "node_id") != NULL, "%s: %s", text, err.msg);
        config_free(&cfg);
    }
    /* the other scale-out fields */
    config_defaults(&cfg);
    ck_assert_uint_eq(cfg.drain_timeout_secs, 30);
    ck_assert_uint_eq(cfg.max_request_body_bytes, 64u << 20);
    ck_assert_uint_eq(cfg.max_inline_output_bytes, 16u << 20);
    config_free(&cfg);
    ck_assert_int_eq(parse(&cfg, "{\"drain_timeout_secs\": 0, \"max_request_body_bytes\": 4194304,"
                                 " \"max_inline_output_bytes\": 0}", &err), 0);
    ck_assert_uint_eq(cfg.drain_timeout_secs, 0);
    ck_assert_uint_eq(cfg.max_request_body_bytes, 4194304);
    ck_assert_uint_eq(cfg.max_inline_output_bytes, 0);
    config_free(&cfg);
    ck_assert_int_lt(parse(&cfg, "{\"max_request_body_bytes\": 4194303}", &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "max_request_body_bytes"));
    config_free(&cfg);
    ck_assert_int_lt(parse(&cfg, "{\"drain_timeout_secs\": 86401}", &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "drain_timeout_secs"));
    config_free(&cfg);
    ck_assert(config_node_id_ok("a"));
    ck_assert(!config_node_id_ok(NULL));
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults_match_the_contract);
    tcase_add_test(tc, total_budget_defaults_from_host);
    tcase_add_test(tc, fields_override_defaults);
    tcase_add_test(tc, pull_bounds_parse);
    tcase_add_test(tc, listen_unix_defaults_and_overrides);
    tcase_add_loop_test(tc, bad_config_names_field, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, max_queued_runs_zero_means_no_queue);
    tcase_add_loop_test(tc, parse_messages_exact, 0, (int)(sizeof(exact) / sizeof(exact[0])));
    tcase_add_test(tc, bool_fields_parse);
    tcase_add_test(tc, load_precedence);
    tcase_add_test(tc, warm_pool_parses);
    tcase_add_test(tc, warm_pool_auto_and_max_total);
    tcase_add_test(tc, warm_pool_box_kind);
    tcase_add_test(tc, box_fields_parse);
    tcase_add_test(tc, node_id_default_and_rules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(config_suite);
}
