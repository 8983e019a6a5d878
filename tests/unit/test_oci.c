/* Unit tests for oci.c.  oci_build_spec is the security contract of every
 * sandbox (see oci.h), so its output is parsed back and checked field by
 * field: user, capabilities, noNewPrivileges, rlimits, read-only root,
 * mounts and their options, namespaces, hostname, masked paths,
 * cgroupsPath.  Then the environment merge and the bundle's spec writer
 * (uid, rootfs path, cwd and env defaults). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "json.h"
#include "oci.h"

static struct json_doc *doc;

static const struct json_value *parse(const char *data, size_t len)
{
    struct json_limits lim = {1u << 20, 32, 100000};
    struct bx_err err;
    bx_err_clear(&err);
    json_doc_free(&doc);
    ck_assert_msg(json_parse(data, len, &lim, &doc, &err) == 0, "%s", err.msg);
    return json_doc_root(doc);
}

static void teardown_doc(void)
{
    json_doc_free(&doc);
}

static const struct json_value *build(const struct oci_params *p)
{
    struct sbuf sb;
    struct bx_err err;
    const struct json_value *root;
    sbuf_init(&sb, 1u << 20);
    bx_err_clear(&err);
    ck_assert_msg(oci_build_spec(p, &sb, &err) == 0, "%s", err.msg);
    root = parse(sb.data, sb.len);
    sbuf_free(&sb);
    ck_assert_int_eq(root->type, JSON_OBJECT);
    return root;
}

/* v[k1][k2] (k2 may be NULL); fails if either is missing. */
static const struct json_value *at(const struct json_value *v, const char *k1, const char *k2)
{
    const struct json_value *r = json_get(v, k1);
    ck_assert_msg(r != NULL, "missing %s", k1);
    if (k2) {
        r = json_get(r, k2);
        ck_assert_msg(r != NULL, "missing %s.%s", k1, k2);
    }
    return r;
}

static void ck_str(const struct json_value *v, const char *want)
{
    ck_assert_int_eq(v->type, JSON_STRING);
    ck_assert_str_eq(v->u.str.s, want);
}

static void ck_uint(const struct json_value *v, int64_t want)
{
    ck_assert_int_eq(v->type, JSON_NUMBER);
    ck_assert(v->u.num.is_int);
    ck_assert_int_eq(v->u.num.i, want);
}

static void ck_bool(const struct json_value *v, int want)
{
    ck_assert_int_eq(v->type, JSON_BOOL);
    ck_assert_int_eq(v->u.boolean, want);
}

/* v is an array of exactly the strings in want (NULL-terminated). */
static void ck_strs(const struct json_value *v, const char *const *want)
{
    size_t n = 0;
    ck_assert_int_eq(v->type, JSON_ARRAY);
    while (want[n])
        n++;
    ck_assert_uint_eq(v->u.arr.n, n);
    for (size_t i = 0; i < n; i++)
        ck_str(&v->u.arr.items[i], want[i]);
}

static char *args[] = {"python3", "-c", "print(1)", NULL};
static char *env[] = {"PATH=/bin", "HOME=/tmp", "A=b", NULL};
static const struct oci_mount binds[] = {
    {"/data/in.csv", "/home/b/runs/x/inputs/0", 1, NULL},
    {"/output", "/home/b/runs/x/output", 0, NULL},
};

static struct oci_params base_params(void)
{
    return (struct oci_params){.rootfs = "/home/b/runs/x/rootfs",
                               .args = args,
                               .env = env,
                               .cwd = "/work",
                               .hostname = "boxer-1234",
                               .uid = OCI_SANDBOX_UID,
                               .gid = OCI_SANDBOX_UID,
                               .nofile = 256,
                               .nproc = 100,
                               .tmp_size_mb = 64,
                               .mounts = binds,
                               .nmounts = 2,
                               .netns_path = "/home/b/runs/x/netns",
                               .host_network = 0,
                               .cgroups_path = "/boxer-1/boxer-1234"};
}

START_TEST(test_process_user_and_privileges)
{
    struct oci_params p = base_params();
    const struct json_value *root = build(&p);
    const struct json_value *proc = at(root, "process", NULL);
    const struct json_value *caps = at(proc, "capabilities", NULL);
    static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
                                       "ambient"};
    static const char *const none[] = {NULL};

    ck_str(at(root, "ociVersion", NULL), "1.0.2");
    ck_uint(at(proc, "user", "uid"), 65534);
    ck_uint(at(proc, "user", "gid"), 65534);
    ck_assert_int_eq(OCI_SANDBOX_UID, 65534);
    ck_bool(at(proc, "terminal", NULL), 0);
    ck_bool(at(proc, "noNewPrivileges", NULL), 1);
    /* Every capability set present and empty; no other set. */
    ck_assert_int_eq(caps->type, JSON_OBJECT);
    ck_assert_uint_eq(caps->u.obj.n, 5);
    for (size_t i = 0; i < 5; i++)
        ck_strs(at(caps, sets[i], NULL), none);
}
END_TEST

START_TEST(test_process_args_env_cwd)
{
    struct oci_params p = base_params();
    const struct json_value *root = build(&p);
    static const char *const want_args[] = {"python3", "-c", "print(1)", NULL};
    static const char *const want_env[] = {"PATH=/bin", "HOME=/tmp", "A=b", NULL};
    ck_strs(at(root, "process", "args"), want_args);
    ck_strs(at(root, "process", "env"), want_env);
    ck_str(at(root, "process", "cwd"), "/work");
}
END_TEST

static void ck_rlimit(const struct json_value *r, const char *type, int64_t v)
{
    ck_str(at(r, "type", NULL), type);
    ck_uint(at(r, "hard", NULL), v);
    ck_uint(at(r, "soft", NULL), v);
}

START_TEST(test_rlimits)
{
    struct oci_params p = base_params();
    const struct json_value *rl = at(build(&p), "process", "rlimits");
    ck_assert_int_eq(rl->type, JSON_ARRAY);
    ck_assert_uint_eq(rl->u.arr.n, 2);
    ck_rlimit(&rl->u.arr.items[0], "RLIMIT_NOFILE", 256);
    ck_rlimit(&rl->u.arr.items[1], "RLIMIT_NPROC", 100);
    /* nproc 0: no RLIMIT_NPROC entry at all. */
    p.nproc = 0;
    rl = at(build(&p), "process", "rlimits");
    ck_assert_uint_eq(rl->u.arr.n, 1);
    ck_rlimit(&rl->u.arr.items[0], "RLIMIT_NOFILE", 256);
}
END_TEST

START_TEST(test_root_read_only_and_hostname)
{
    struct oci_params p = base_params();
    const struct json_value *root = build(&p);
    ck_str(at(root, "root", "path"), "/home/b/runs/x/rootfs");
    ck_bool(at(root, "root", "readonly"), 1);
    ck_str(at(root, "hostname", NULL), "boxer-1234");
}
END_TEST

static void ck_mount(const struct json_value *m, const char *dest, const char *type,
                     const char *source, const char *const *opts)
{
    ck_assert_int_eq(m->type, JSON_OBJECT);
    ck_str(at(m, "destination", NULL), dest);
    ck_str(at(m, "type", NULL), type);
    ck_str(at(m, "source", NULL), source);
    ck_strs(at(m, "options", NULL), opts);
}

START_TEST(test_mounts)
{
    static const char *const proc_opts[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                           NULL};
    static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
    static const char *const tmp_opts[] = {"nosuid", "nodev", "mode=1777", "size=64m", NULL};
    static const char *const ro_bind[] = {"rbind", "ro", "nosuid", "nodev", NULL};
    static const char *const rw_bind[] = {"rbind", "rw", "nosuid", "nodev", NULL};
    struct oci_params p = base_params();
    const struct json_value *m = at(build(&p), "mounts", NULL);
    ck_assert_int_eq(m->type, JSON_ARRAY);
    ck_assert_uint_eq(m->u.arr.n, 6);
    ck_mount(&m->u.arr.items[0], "/proc", "proc", "proc", proc_opts);
    ck_mount(&m->u.arr.items[1], "/dev", "tmpfs", "tmpfs", dev_opts);
    ck_mount(&m->u.arr.items[2], "/sys", "sysfs", "sysfs", sys_opts);
    ck_mount(&m->u.arr.items[3], "/tmp", "tmpfs", "tmpfs", tmp_opts);
    ck_mount(&m->u.arr.items[4], "/data/in.csv", "bind", "/home/b/runs/x/inputs/0", ro_bind);
    ck_mount(&m->u.arr.items[5], "/output", "bind", "/home/b/runs/x/output", rw_bind);
}
END_TEST

START_TEST(test_tmp_size_follows_params)
{
    static const char *const tmp_opts[] = {"nosuid", "nodev", "mode=1777", "size=1024m", NULL};
    struct oci_params p = base_params();
    const struct json_value *m;
    p.tmp_size_mb = 1024;
    p.nmounts = 0;
    m = at(build(&p), "mounts", NULL);
    ck_assert_uint_eq(m->u.arr.n, 4);
    ck_mount(&m->u.arr.items[3], "/tmp", "tmpfs", "tmpfs", tmp_opts);
}
END_TEST

/* The namespaces array, as "type" or "type=path" strings. */
static void ck_namespaces(const struct json_value *ns, const char *const *want)
{
    size_t n = 0;
    ck_assert_int_eq(ns->type, JSON_ARRAY);
    while (want[n])
        n++;
    ck_assert_uint_eq(ns->u.arr.n, n);
    for (size_t i = 0; i < n; i++) {
        const struct json_value *e = &ns->u.arr.items[i];
        const struct json_value *path = json_get(e, "path");
        char got[256];
        snprintf(got, sizeof(got), "%s%s%s", at(e, "type", NULL)->u.str.s, path ? "=" : "",
                 path ? path->u.str.s : "");
        ck_assert_str_eq(got, want[i]);
        ck_assert_uint_eq(e->u.obj.n, path ? 2 : 1);
    }
}

START_TEST(test_namespaces)
{
    static const char *const sandbox[] = {
        "pid", "ipc", "uts", "mount", "network=/home/b/runs/x/netns", NULL};
    static const char *const fresh[] = {"pid", "ipc", "uts", "mount", "network", NULL};
    static const char *const host[] = {"pid", "ipc", "uts", "mount", NULL};
    struct oci_params p = base_params();
    ck_namespaces(at(build(&p), "linux", "namespaces"), sandbox);
    p.netns_path = NULL; /* network "none": a new, empty one */
    ck_namespaces(at(build(&p), "linux", "namespaces"), fresh);
    p.netns_path = "/ignored";
    p.host_network = 1; /* network "host": none at all */
    ck_namespaces(at(build(&p), "linux", "namespaces"), host);
}
END_TEST

START_TEST(test_linux_cgroups_path_and_masked_paths)
{
    static const char *const masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", NULL};
    struct oci_params p = base_params();
    const struct json_value *linux_ = at(build(&p), "linux", NULL);
    ck_str(at(linux_, "cgroupsPath", NULL), "/boxer-1/boxer-1234");
    ck_strs(at(linux_, "maskedPaths", NULL), masked);
    /* Exactly these keys: nothing (devices, seccomp...) slips in unnoticed. */
    ck_assert_uint_eq(linux_->u.obj.n, 3);
    p.cgroups_path = NULL;
    linux_ = at(build(&p), "linux", NULL);
    ck_assert_ptr_null(json_get(linux_, "cgroupsPath"));
    ck_assert_uint_eq(linux_->u.obj.n, 2);
}
END_TEST

START_TEST(test_top_level_and_process_keys)
{
    struct oci_params p = base_params();
    const struct json_value *root = build(&p);
    /* ociVersion process root hostname mounts linux */
    ck_assert_uint_eq(root->u.obj.n, 6);
    /* terminal user args env cwd capabilities noNewPrivileges rlimits */
    ck_assert_uint_eq(at(root, "process", NULL)->u.obj.n, 8);
    ck_assert_uint_eq(at(root, "root", NULL)->u.obj.n, 2);
}
END_TEST

START_TEST(test_empty_cmd_refused)
{
    static char *empty[] = {NULL};
    struct oci_params p = base_params();
    struct sbuf sb;
    struct bx_err err;
    sbuf_init(&sb, 1u << 20);
    bx_err_clear(&err);
    p.args = empty;
    ck_assert_int_eq(oci_build_spec(&p, &sb, &err), -1);
    ck_assert_int_eq(err.status, 400);
    p.args = NULL;
    ck_assert_int_eq(oci_build_spec(&p, &sb, &err), -1);
    sbuf_free(&sb);
}
END_TEST

START_TEST(test_spec_too_large_500)
{
    struct oci_params p = base_params();
    struct sbuf sb;
    struct bx_err err;
    sbuf_init(&sb, 64);
    bx_err_clear(&err);
    ck_assert_int_eq(oci_build_spec(&p, &sb, &err), -1);
    ck_assert_int_eq(err.status, 500);
    sbuf_free(&sb);
}
END_TEST

/* ---- oci_merge_env ---- */

START_TEST(test_merge_env_defaults)
{
    char **out = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(oci_merge_env(NULL, NULL, &out, &err), 0);
    ck_assert_str_eq(out[0], "PATH=" OCI_DEFAULT_PATH);
    ck_assert_str_eq(out[1], "HOME=/tmp");
    ck_assert_ptr_null(out[2]);
    bx_strv_free(&out);
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(test_merge_env_override_order)
{
    char *img[] = {"PATH=/img/bin", "LANG=C", "HOME=/root", "junk", NULL};
    char *req[] = {"LANG=en", "X=1", "=bad", NULL};
    char **out = NULL;
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_int_eq(oci_merge_env(img, req, &out, &err), 0);
    ck_assert_str_eq(out[0], "PATH=/img/bin");
    ck_assert_str_eq(out[1], "LANG=en");
    ck_assert_str_eq(out[2], "HOME=/root");
    ck_assert_str_eq(out[3], "X=1");
    ck_assert_ptr_null(out[4]);
    bx_strv_free(&out);
}
END_TEST

/* ---- the bundle's spec ---- */

static char tmpdir[64];
static int tmpfd = -1;

static void setup_dir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_oci.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    tmpfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(tmpfd, 0);
}

static void teardown_dir(void)
{
    unlinkat(tmpfd, "config.json", 0);
    close(tmpfd);
    rmdir(tmpdir);
    json_doc_free(&doc);
}

static const struct json_value *bundle_spec(const struct oci_bundle_spec *s)
{
    struct oci_bundle b;
    struct bx_err err;
    char *text = NULL;
    size_t len = 0;
    const struct json_value *root;
    oci_bundle_init(&b);
    b.dir = tmpdir;
    b.dirfd = tmpfd;
    bx_err_clear(&err);
    ck_assert_int_eq(oci_bundle_add_mount(&b, "/etc/resolv.conf", "/r/resolv.conf", 1, &err), 0);
    ck_assert_msg(oci_bundle_write_spec(&b, s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(bx_read_file_at(tmpfd, "config.json", 1u << 20, &text, &len, &err), 0);
    root = parse(text, len);
    free(text);
    b.dir = NULL; /* not ours */
    b.dirfd = -1;
    oci_bundle_free(&b);
    return root;
}

START_TEST(test_bundle_spec)
{
    char *img_env[] = {"LANG=C", NULL};
    char *req_env[] = {"X=1", NULL};
    struct oci_bundle_spec s = {.args = args,
                                .env = req_env,
                                .image_env = img_env,
                                .cwd = NULL,
                                .image_workdir = "/app",
                                .hostname = "boxer-9",
                                .nofile = 64,
                                .nproc = 0,
                                .tmp_size_mb = 16,
                                .netns_path = NULL,
                                .host_network = 0,
                                .cgroups_path = "."};
    static const char *const want_env[] = {"PATH=" OCI_DEFAULT_PATH, "LANG=C", "X=1", "HOME=/tmp",
                                           NULL};
    static const char *const ro_bind[] = {"rbind", "ro", "nosuid", "nodev", NULL};
    char rootfs[128];
    const struct json_value *root = bundle_spec(&s);
    const struct json_value *m;

    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", tmpdir);
    ck_str(at(root, "root", "path"), rootfs);
    ck_bool(at(root, "root", "readonly"), 1);
    ck_uint(at(at(root, "process", NULL), "user", "uid"), 65534);
    ck_uint(at(at(root, "process", NULL), "user", "gid"), 65534);
    ck_str(at(root, "process", "cwd"), "/app");
    ck_strs(at(root, "process", "env"), want_env);
    ck_str(at(root, "hostname", NULL), "boxer-9");
    ck_str(at(root, "linux", "cgroupsPath"), ".");
    m = at(root, "mounts", NULL);
    ck_assert_uint_eq(m->u.arr.n, 5);
    ck_mount(&m->u.arr.items[4], "/etc/resolv.conf", "bind", "/r/resolv.conf", ro_bind);

    /* cwd: the request's first, "/" when the image's is not absolute. */
    s.cwd = "/req";
    ck_str(at(bundle_spec(&s), "process", "cwd"), "/req");
    s.cwd = NULL;
    s.image_workdir = "relative";
    ck_str(at(bundle_spec(&s), "process", "cwd"), "/");
    s.image_workdir = NULL;
    ck_str(at(bundle_spec(&s), "process", "cwd"), "/");
}
END_TEST

/* What a box's spec differs in (box_bundle.c): a writable root, root with
 * Docker's default capabilities (not inheritable or ambient), no /tmp,
 * per-mount options, /proc plain and no maskedPaths; everything else as
 * a run's. */
START_TEST(test_box_params)
{
    static const char *const init_o[] = {"rbind", "ro", NULL};
    static const char *const none[] = {NULL};
    static const char *const rw_bind[] = {"rbind", "rw", "nosuid", "nodev", NULL};
    const struct oci_mount mounts[] = {{"/.boxer/init", "/b/init", 1, init_o},
                                       {"/data", "/vol", 0, NULL}};
    struct oci_params p = base_params();
    const struct json_value *root, *caps, *m;
    p.uid = p.gid = 0;
    p.nproc = 0;
    p.tmp_size_mb = 0;
    p.mounts = mounts;
    p.nmounts = 2;
    p.root_writable = 1;
    p.caps = oci_box_caps;
    p.plain_proc = 1;
    root = build(&p);
    ck_bool(at(root, "root", "readonly"), 0);
    ck_bool(at(root, "process", "noNewPrivileges"), 1);
    caps = at(root, "process", "capabilities");
    ck_strs(at(caps, "bounding", NULL), oci_box_caps);
    ck_strs(at(caps, "effective", NULL), oci_box_caps);
    ck_strs(at(caps, "permitted", NULL), oci_box_caps);
    ck_strs(at(caps, "inheritable", NULL), none);
    ck_strs(at(caps, "ambient", NULL), none);
    for (size_t i = 0; oci_box_caps[i]; i++)
        ck_assert_str_ne(oci_box_caps[i], "CAP_NET_RAW");
    m = at(root, "mounts", NULL);
    ck_assert_uint_eq(m->u.arr.n, 5); /* proc, dev, sys, init, /data: no /tmp */
    ck_str(at(&m->u.arr.items[0], "destination", NULL), "/proc");
    ck_strs(at(&m->u.arr.items[0], "options", NULL), none);
    ck_str(at(&m->u.arr.items[3], "destination", NULL), "/.boxer/init");
    ck_strs(at(&m->u.arr.items[3], "options", NULL), init_o);
    ck_strs(at(&m->u.arr.items[4], "options", NULL), rw_bind);
    ck_assert_ptr_null(json_get(at(root, "linux", NULL), "maskedPaths"));
    /* caps_absent (a box's non-root exec): no capabilities key at all */
    {
        char *args_[] = {"id", NULL};
        struct oci_process pr = {.args = args_, .env = args_, .cwd = "/", .uid = 1000,
                                 .caps = oci_box_caps, .caps_absent = 1, .nofile = 8};
        struct sbuf sb;
        struct json_writer w;
        const struct json_value *v;
        sbuf_init(&sb, 1u << 16);
        json_w_init(&w, &sb);
        oci_w_process(&w, &pr);
        ck_assert(!w.failed);
        v = parse(sb.data, sb.len);
        sbuf_free(&sb);
        ck_assert_ptr_null(json_get(v, "capabilities"));
        ck_uint(at(v, "user", "uid"), 1000);
        ck_bool(at(v, "noNewPrivileges", NULL), 1);
    }
}
END_TEST

static Suite *oci_suite(void)
{
    Suite *s = suite_create("oci");
    TCase *tc = tcase_create("spec");
    tcase_add_checked_fixture(tc, NULL, teardown_doc);
    tcase_add_test(tc, test_process_user_and_privileges);
    tcase_add_test(tc, test_process_args_env_cwd);
    tcase_add_test(tc, test_rlimits);
    tcase_add_test(tc, test_root_read_only_and_hostname);
    tcase_add_test(tc, test_mounts);
    tcase_add_test(tc, test_tmp_size_follows_params);
    tcase_add_test(tc, test_namespaces);
    tcase_add_test(tc, test_linux_cgroups_path_and_masked_paths);
    tcase_add_test(tc, test_top_level_and_process_keys);
    tcase_add_test(tc, test_box_params);
    tcase_add_test(tc, test_empty_cmd_refused);
    tcase_add_test(tc, test_spec_too_large_500);
    tcase_add_test(tc, test_merge_env_defaults);
    tcase_add_test(tc, test_merge_env_override_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("bundle");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, test_bundle_spec);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(oci_suite);
}
