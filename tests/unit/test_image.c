/* Tests for image.c against a real local registry (Debian docker-registry on
 * 127.0.0.1, started with tests/registry.sh) and the real skopeo and umoci.
 * The busybox test image comes from tests/images/build.sh.  skopeo is
 * reached through a wrapper early in PATH that counts its invocations (and
 * hangs for repositories named "slow", for the timeout test).
 *
 * Fails (never skips) when docker-registry, skopeo or umoci is missing or
 * when not root (build.sh needs root to build the images). */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "image.h"
#include "imgref.h"
#include "json.h"
#include "loop.h"
#include "proc.h"

static char work[64];    /* per test run: registry data, wrapper, homes */
static char regdir[128]; /* registry DIR */
static int port;
static int have_env;
static char why_skip[256];

/* ------------------------------------------------------------------ helpers */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    int r;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    r = system(cmd);
    return r == 0 ? 0 : -1;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), p = -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        p = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return p;
}

/* setsid: Check kills each test's process group when the test ends, and a
 * registry restarted inside a test must outlive it. */
static int registry(const char *what)
{
    return sh("setsid -w tests/registry.sh %s %s %d >/dev/null 2>&1", what, regdir, port);
}

/* Copies an image inside the test registry (src, dst: "library/x:tag"). */
static int reg_copy(const char *src, const char *dst)
{
    return sh("skopeo --insecure-policy copy --quiet --src-tls-verify=false "
              "--dest-tls-verify=false docker://127.0.0.1:%d/%s docker://127.0.0.1:%d/%s "
              ">/dev/null 2>&1",
              port, src, port, dst);
}

static void setup_env(void)
{
    char images[512] = "";
    FILE *f;

    /* Not below /tmp, and searchable: skopeo runs as uid 65534 in a mount
     * namespace where /tmp is its own directory, and the wrapper below must
     * stay reachable for it. */
    snprintf(work, sizeof(work), "/var/tmp/boxer-test-image-XXXXXX");
    if (!mkdtemp(work) || chmod(work, 0755) < 0) {
        snprintf(why_skip, sizeof(why_skip), "mkdtemp failed");
        return;
    }
    if (geteuid() != 0 || access("/usr/bin/docker-registry", X_OK) != 0 ||
        access("/usr/bin/skopeo", X_OK) != 0 || access("/usr/bin/umoci", X_OK) != 0) {
        snprintf(why_skip, sizeof(why_skip), "needs root, docker-registry, skopeo and umoci");
        return;
    }
    snprintf(regdir, sizeof(regdir), "%s/registry", work);
    port = free_port();
    if (port <= 0 || registry("start") < 0) {
        snprintf(why_skip, sizeof(why_skip), "cannot start the test registry");
        return;
    }
    f = popen("tests/images/build.sh 2>/dev/null", "r");
    if (!f || !fgets(images, sizeof(images), f)) {
        if (f)
            pclose(f);
        snprintf(why_skip, sizeof(why_skip), "tests/images/build.sh failed");
        return;
    }
    pclose(f);
    images[strcspn(images, "\n")] = '\0';
    /* busybox:latest, the same manifest as :alias, and :v2 with another
     * config (so another digest, same layer). */
    if (sh("skopeo --insecure-policy copy --quiet --dest-tls-verify=false oci:%s/busybox:latest "
           "docker://127.0.0.1:%d/library/busybox:latest >/dev/null 2>&1",
           images, port) < 0 ||
        reg_copy("library/busybox:latest", "library/busybox:alias") < 0 ||
        sh("cp -a %s/busybox %s/v2 && umoci config --image %s/v2:latest --tag v2 "
           "--config.env X=2 >/dev/null 2>&1 && skopeo --insecure-policy copy --quiet "
           "--dest-tls-verify=false oci:%s/v2:v2 docker://127.0.0.1:%d/library/busybox:v2 "
           ">/dev/null 2>&1",
           images, work, work, work, port) < 0) {
        snprintf(why_skip, sizeof(why_skip), "cannot push the test images");
        return;
    }
    /* Hostile images: busybox plus a layer holding a device node
     * (busybox:dev), and plus a layer nested 300 directories deep
     * (library/deep). */
    if (sh("(set -e; cd %s; mkdir -p devl/dev deepl; mknod devl/dev/evil c 1 3; "
           "tar --numeric-owner -C devl -cf dev.tar .; "
           "mkdir -p deepl/$(printf 'd/%%.0s' $(seq 300)); "
           "tar --numeric-owner -C deepl -cf deep.tar .; "
           "cp -a %s/busybox hostile; "
           "umoci raw add-layer --image hostile:latest --tag dev dev.tar; "
           "umoci raw add-layer --image hostile:latest --tag deep deep.tar; "
           "for t in dev deep; do skopeo --insecure-policy copy --quiet --dest-tls-verify=false "
           "oci:hostile:$t docker://127.0.0.1:%d/library/busybox:$t; done; "
           "rm -rf devl deepl dev.tar deep.tar hostile) >/dev/null 2>&1",
           work, images, port) < 0) {
        snprintf(why_skip, sizeof(why_skip), "cannot build the hostile test images");
        return;
    }
    /* The skopeo the cache finds first in PATH: counts, and hangs for
     * library/slow. */
    if (sh("mkdir -p %s/bin && printf '%%s\\n' '#!/bin/sh' 'echo x >> %s/skopeo.count' "
           "'case \"$*\" in *library/slow*) exec sleep 60;; esac' 'exec /usr/bin/skopeo \"$@\"' "
           "> %s/bin/skopeo && chmod 755 %s/bin/skopeo && : > %s/skopeo.count && "
           "chmod 666 %s/skopeo.count",
           work, work, work, work, work, work) < 0) {
        snprintf(why_skip, sizeof(why_skip), "cannot write the skopeo wrapper");
        return;
    }
    {
        char path[512];
        snprintf(path, sizeof(path), "%s/bin:/usr/sbin:/usr/bin:/sbin:/bin", work);
        setenv("PATH", path, 1);
    }
    have_env = 1;
}

static void teardown_env(void)
{
    if (port > 0 && regdir[0])
        registry("stop");
    if (work[0] && strncmp(work, "/var/tmp/boxer-test-image-", 26) == 0)
        sh("rm -rf %s", work);
}

/* A missing tool fails the test loudly: CI must never pass by skipping. */
#define NEED_ENV() ck_assert_msg(have_env, "test set-up failed: %s", why_skip)

static int skopeo_count(void)
{
    char path[512], line[16];
    int n = 0;
    FILE *f;
    snprintf(path, sizeof(path), "%s/skopeo.count", work);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        n++;
    fclose(f);
    return n;
}

/* Each test: a fresh home, loop and config. */
struct env {
    char home[128];
    struct loop *loop;
    struct config cfg;
    char *insecure[1];
    struct mirror mirrors[1];
    char insecure_buf[64];
    struct image_cache *ic;
};

static void env_init(struct env *e)
{
    struct bx_err err;
    memset(e, 0, sizeof(*e));
    snprintf(e->home, sizeof(e->home), "%s/home-XXXXXX", work);
    ck_assert_ptr_nonnull(mkdtemp(e->home));
    ck_assert_int_eq(loop_new(&e->loop, &err), 0);
    e->cfg.home = e->home;
    e->cfg.pull_timeout_secs = 60;
    snprintf(e->insecure_buf, sizeof(e->insecure_buf), "127.0.0.1:%d", port);
    e->insecure[0] = e->insecure_buf;
    e->cfg.insecure_registries.items = e->insecure;
    e->cfg.insecure_registries.n = 1;
}

static void env_open(struct env *e)
{
    struct bx_err err;
    bx_err_clear(&err);
    ck_assert_msg(image_cache_new(&e->ic, e->loop, &e->cfg, &err) == 0, "%s", err.msg);
}

static int run_for(struct env *e, uint64_t ms);
static int pending;

/* Killed children are reaped by the loop: let it do that before freeing. */
static void env_free(struct env *e)
{
    image_cache_free(&e->ic);
    for (int i = 0; i < 100 && proc_orphans() > 0; i++) {
        pending = 1;
        run_for(e, 50);
    }
    ck_assert_int_eq(proc_orphans(), 0);
    loop_free(&e->loop);
}

struct res {
    int done;
    struct image *img;
    int failed;
    struct bx_err err;
};

static struct loop *cur_loop;

static void on_img(void *arg, struct image *img, const struct bx_err *e)
{
    struct res *r = arg;
    r->done++;
    r->img = img;
    if (e) {
        r->failed = 1;
        r->err = *e;
    }
    if (--pending <= 0)
        loop_stop(cur_loop);
}

static void on_guard(struct loop *l, void *arg)
{
    *(int *)arg = 1;
    loop_stop(l);
}

/* Runs the loop until `pending` callbacks arrived or ms passed. */
static int run_for(struct env *e, uint64_t ms)
{
    struct bx_err err;
    int expired = 0;
    uint64_t id = loop_timer_add(e->loop, ms, on_guard, &expired);
    cur_loop = e->loop;
    ck_assert_int_eq(loop_run(e->loop, &err), 0);
    loop_timer_cancel(e->loop, id);
    return expired ? -1 : 0;
}

static void ref_of(const char *s, struct imgref *r)
{
    struct bx_err err;
    ck_assert_msg(imgref_parse(s, strlen(s), r, &err) == 0, "%s: %s", s, err.msg);
}

static void start_get(struct env *e, const char *refstr, struct res *r, struct image_wait **w)
{
    struct imgref ref;
    struct bx_err err;
    bx_err_clear(&err);
    ref_of(refstr, &ref);
    memset(r, 0, sizeof(*r));
    ck_assert_msg(image_get(e->ic, &ref, on_img, r, w, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(r->done, 0); /* never synchronous */
    pending++;
}

static void get_wait(struct env *e, const char *refstr, struct res *r)
{
    struct image_wait *w;
    pending = 0;
    start_get(e, refstr, r, &w);
    ck_assert_int_eq(run_for(e, 60000), 0);
    ck_assert_int_eq(r->done, 1);
}

static char *bb(const char *tag)
{
    static char s[128];
    snprintf(s, sizeof(s), "127.0.0.1:%d/library/busybox:%s", port, tag);
    return s;
}

static int exists_at(const char *home, const char *rel)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof(p), "%s/images/%s", home, rel);
    return lstat(p, &st) == 0;
}

static int count_entries(const char *home, const char *sub)
{
    char p[1024];
    struct dirent *de;
    int n = 0;
    DIR *d;
    snprintf(p, sizeof(p), "%s/images/%s", home, sub);
    d = opendir(p);
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void sha256_of(const char *s, char out[65])
{
    char cmd[1024];
    FILE *f;
    snprintf(cmd, sizeof(cmd), "printf '%%s' '%s' | sha256sum", s);
    f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(out, 65, f));
    pclose(f);
    ck_assert_uint_eq(strlen(out), 64);
}

static uint64_t blob_size(const char *home, const char *digest)
{
    char p[1024], buf[32] = "";
    FILE *f;
    snprintf(p, sizeof(p), "%s/images/blobs/%s/size", home, digest + 7);
    f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
    fclose(f);
    return strtoull(buf, NULL, 10);
}

static void touch_mtime_past(const char *home, const char *digest, int secs_ago)
{
    char p[1024];
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= secs_ago;
    ts[1] = ts[0];
    snprintf(p, sizeof(p), "%s/images/blobs/%s/ready", home, digest + 7);
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_pull_single_flight_then_hit_offline)
{
    struct env e;
    struct res r1, r2, r3;
    struct image_wait *w1, *w2;
    char rel[256], key[65], digest[80];
    int before;

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    before = skopeo_count();
    pending = 0;
    start_get(&e, bb("latest"), &r1, &w1);
    start_get(&e, bb("latest"), &r2, &w2);
    ck_assert_int_eq(run_for(&e, 60000), 0);
    ck_assert_msg(!r1.failed, "%s", r1.err.msg);
    ck_assert_msg(!r2.failed, "%s", r2.err.msg);
    ck_assert_int_eq(skopeo_count() - before, 1); /* one pull for two waiters */
    ck_assert_str_eq(r1.img->digest, r2.img->digest);
    ck_assert_int_eq(strncmp(r1.img->digest, "sha256:", 7), 0);
    ck_assert_ptr_nonnull(r1.img->rootfs);
    {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof(p), "%s/bin/busybox", r1.img->rootfs);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(r1.img->rootfs[0], '/');
    }
    /* The image config made it through. */
    ck_assert_ptr_nonnull(r1.img->env);
    ck_assert_ptr_nonnull(r1.img->env[0]);
    ck_assert_int_eq(strncmp(r1.img->env[0], "PATH=", 5), 0);
    ck_assert_ptr_nonnull(r1.img->cmd);
    ck_assert_str_eq(r1.img->cmd[0], "sh");
    ck_assert_ptr_null(r1.img->cmd[1]);
    ck_assert_ptr_null(r1.img->entrypoint);
    ck_assert_str_eq(r1.img->working_dir, "/");
    ck_assert_ptr_null(r1.img->user);
    /* On disk: refs/<sha256 of the canonical ref>.json, blob ready, tmp empty. */
    sha256_of(bb("latest"), key);
    snprintf(rel, sizeof(rel), "refs/%s.json", key);
    ck_assert_msg(exists_at(e.home, rel), "missing %s", rel);
    snprintf(rel, sizeof(rel), "blobs/%s/ready", r1.img->digest + 7);
    ck_assert(exists_at(e.home, rel));
    ck_assert_uint_gt(blob_size(e.home, r1.img->digest), 100000);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    snprintf(digest, sizeof(digest), "%s", r1.img->digest);
    image_release(e.ic, r1.img);
    image_release(e.ic, r2.img);
    {
        struct image_stats st;
        image_stats(e.ic, &st);
        ck_assert_uint_eq(st.pulls_ok, 1);
        ck_assert_uint_eq(st.pulls_failed, 0);
        ck_assert_uint_eq(st.cached_images, 1);
    }

    /* A new cache on the same home, registry down: a hit, no child. */
    image_cache_free(&e.ic);
    ck_assert_int_eq(registry("stop"), 0);
    env_open(&e);
    before = skopeo_count();
    get_wait(&e, bb("latest"), &r3);
    ck_assert_msg(!r3.failed, "%s", r3.err.msg);
    ck_assert_str_eq(r3.img->digest, digest);
    image_release(e.ic, r3.img);
    /* Pinned to the same digest: also a hit, and it is recorded as a ref. */
    {
        char pinned[256];
        snprintf(pinned, sizeof(pinned), "127.0.0.1:%d/library/busybox@%s", port, digest);
        get_wait(&e, pinned, &r3);
        ck_assert_msg(!r3.failed, "%s", r3.err.msg);
        ck_assert_str_eq(r3.img->digest, digest);
        image_release(e.ic, r3.img);
        sha256_of(pinned, key);
        snprintf(rel, sizeof(rel), "refs/%s.json", key);
        ck_assert(exists_at(e.home, rel));
    }
    ck_assert_int_eq(skopeo_count(), before);
    ck_assert_int_eq(registry("start"), 0);
    env_free(&e);
}
END_TEST

START_TEST(test_missing_then_pushed)
{
    struct env e;
    struct res r;
    char ref[128], name[64], key[65], rel[128];

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    snprintf(name, sizeof(name), "late%ld", (long)getpid());
    snprintf(ref, sizeof(ref), "127.0.0.1:%d/library/%s:v1", port, name);
    get_wait(&e, ref, &r);
    ck_assert(r.failed);
    ck_assert_ptr_null(r.img);
    ck_assert_int_eq(r.err.status, 500);
    ck_assert_msg(strstr(r.err.msg, "manifest unknown") != NULL, "%s", r.err.msg);
    ck_assert_msg(strstr(r.err.msg, "skopeo") != NULL, "%s", r.err.msg);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    ck_assert_int_eq(count_entries(e.home, "refs"), 0);
    ck_assert_int_eq(count_entries(e.home, "blobs"), 0);

    {
        char dst[128];
        snprintf(dst, sizeof(dst), "library/%s:v1", name);
        ck_assert_int_eq(reg_copy("library/busybox:latest", dst), 0);
    }
    get_wait(&e, ref, &r);
    ck_assert_msg(!r.failed, "%s", r.err.msg);
    sha256_of(ref, key);
    snprintf(rel, sizeof(rel), "refs/%s.json", key);
    ck_assert(exists_at(e.home, rel));
    image_release(e.ic, r.img);
    {
        struct image_stats st;
        image_stats(e.ic, &st);
        ck_assert_uint_eq(st.pulls_ok, 1);
        ck_assert_uint_eq(st.pulls_failed, 1);
    }
    env_free(&e);
}
END_TEST

START_TEST(test_tls_needed_unless_insecure)
{
    struct env e;
    struct res r;

    NEED_ENV();
    env_init(&e);
    e.cfg.insecure_registries.n = 0; /* plain http registry, TLS verify on */
    env_open(&e);
    get_wait(&e, bb("latest"), &r);
    ck_assert(r.failed);
    ck_assert_int_eq(r.err.status, 500);
    ck_assert_msg(strstr(r.err.msg, "HTTPS") != NULL, "%s", r.err.msg);
    env_free(&e);
}
END_TEST

START_TEST(test_mirror)
{
    struct env e;
    struct res r;
    char url[64], key[65], rel[128];

    NEED_ENV();
    env_init(&e);
    e.cfg.insecure_registries.n = 0; /* an http:// mirror alone turns TLS off */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    e.mirrors[0].registry = "docker.io";
    e.mirrors[0].url = url;
    e.cfg.mirrors = e.mirrors;
    e.cfg.nmirrors = 1;
    env_open(&e);
    get_wait(&e, "busybox", &r);
    ck_assert_msg(!r.failed, "%s", r.err.msg);
    sha256_of("docker.io/library/busybox:latest", key);
    snprintf(rel, sizeof(rel), "refs/%s.json", key);
    ck_assert(exists_at(e.home, rel));
    image_release(e.ic, r.img);
    env_free(&e);
}
END_TEST

START_TEST(test_cancel)
{
    struct env e;
    struct res r1, r2, r3;
    struct image_wait *w1, *w2, *w3;
    int before;

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    pending = 0;
    start_get(&e, bb("latest"), &r1, &w1);
    start_get(&e, bb("latest"), &r2, &w2);
    image_wait_cancel(&w1);
    ck_assert_ptr_null(w1);
    pending--;
    ck_assert_int_eq(run_for(&e, 60000), 0);
    ck_assert_int_eq(r1.done, 0);
    ck_assert_int_eq(r2.done, 1);
    ck_assert_msg(!r2.failed, "%s", r2.err.msg);
    image_release(e.ic, r2.img);

    /* A hit cancelled before delivery: no callback, and not left in use. */
    pending = 0;
    start_get(&e, bb("latest"), &r3, &w3);
    image_wait_cancel(&w3);
    pending = 1;
    ck_assert_int_eq(run_for(&e, 200), -1);
    ck_assert_int_eq(r3.done, 0);
    {
        struct imgref ref;
        struct bx_err err;
        ref_of(bb("latest"), &ref);
        ck_assert_int_eq(image_delete(e.ic, &ref, &err), 0);
    }

    /* Everybody cancels: the pull is stopped (skopeo killed, its files
     * gone, nothing cached); the next request pulls again. */
    before = skopeo_count();
    pending = 0;
    start_get(&e, bb("alias"), &r1, &w1);
    image_wait_cancel(&w1);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    pending = 1;
    run_for(&e, 300);
    ck_assert_int_eq(r1.done, 0);
    {
        char key[65], rel[128];
        sha256_of(bb("alias"), key);
        snprintf(rel, sizeof(rel), "refs/%s.json", key);
        ck_assert(!exists_at(e.home, rel));
    }
    get_wait(&e, bb("alias"), &r2);
    ck_assert_msg(!r2.failed, "%s", r2.err.msg);
    /* (The killed one may have died before its wrapper counted.) */
    ck_assert_int_ge(skopeo_count() - before, 1);
    image_release(e.ic, r2.img);
    env_free(&e);
}
END_TEST

START_TEST(test_delete)
{
    struct env e;
    struct res a, b, c;
    struct imgref ref_latest, ref_alias;
    struct bx_err err;
    int before;

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    ref_of(bb("latest"), &ref_latest);
    ref_of(bb("alias"), &ref_alias);
    bx_err_clear(&err);
    ck_assert_int_eq(image_delete(e.ic, &ref_latest, &err), -1);
    ck_assert_int_eq(err.status, 404);

    get_wait(&e, bb("latest"), &a);
    ck_assert_msg(!a.failed, "%s", a.err.msg);
    get_wait(&e, bb("alias"), &b);
    ck_assert_msg(!b.failed, "%s", b.err.msg);
    ck_assert_str_eq(a.img->digest, b.img->digest); /* one rootfs for both */
    ck_assert_int_eq(count_entries(e.home, "blobs"), 1);
    ck_assert_int_eq(count_entries(e.home, "refs"), 2);

    ck_assert_int_eq(image_delete(e.ic, &ref_latest, &err), -1);
    ck_assert_int_eq(err.status, 409);
    image_release(e.ic, a.img);
    ck_assert_int_eq(image_delete(e.ic, &ref_latest, &err), -1); /* alias still holds it */
    ck_assert_int_eq(err.status, 409);
    image_release(e.ic, b.img);
    ck_assert_msg(image_delete(e.ic, &ref_latest, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(count_entries(e.home, "refs"), 1);
    ck_assert_int_eq(count_entries(e.home, "blobs"), 1); /* alias points at it */
    ck_assert_int_eq(image_delete(e.ic, &ref_latest, &err), -1);
    ck_assert_int_eq(err.status, 404);

    before = skopeo_count();
    get_wait(&e, bb("alias"), &c);
    ck_assert_msg(!c.failed, "%s", c.err.msg);
    ck_assert_int_eq(skopeo_count(), before);
    image_release(e.ic, c.img);
    ck_assert_msg(image_delete(e.ic, &ref_alias, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(count_entries(e.home, "refs"), 0);
    ck_assert_int_eq(count_entries(e.home, "blobs"), 0);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    {
        struct image_stats st;
        image_stats(e.ic, &st);
        ck_assert_uint_eq(st.cached_images, 0);
    }
    env_free(&e);
}
END_TEST

START_TEST(test_evict_lru)
{
    struct env e;
    struct res a, b, c;
    char da[80], db[80], rel[256];
    uint64_t size;

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    get_wait(&e, bb("latest"), &a);
    ck_assert_msg(!a.failed, "%s", a.err.msg);
    snprintf(da, sizeof(da), "%s", a.img->digest);
    size = blob_size(e.home, da);
    image_release(e.ic, a.img);
    touch_mtime_past(e.home, da, 100); /* used long ago */
    /* Room for one busybox and a half. */
    e.cfg.image_cache_max_bytes = size + size / 2;

    get_wait(&e, bb("v2"), &b);
    ck_assert_msg(!b.failed, "%s", b.err.msg);
    snprintf(db, sizeof(db), "%s", b.img->digest);
    ck_assert_str_ne(da, db);
    snprintf(rel, sizeof(rel), "blobs/%s", da + 7);
    ck_assert_msg(!exists_at(e.home, rel), "LRU image not evicted");
    snprintf(rel, sizeof(rel), "blobs/%s/ready", db + 7);
    ck_assert(exists_at(e.home, rel));
    ck_assert_int_eq(count_entries(e.home, "refs"), 1);

    /* v2 in use: pulling latest again goes over the limit, but nothing in
     * use (and not the new image) is evicted. */
    get_wait(&e, bb("latest"), &c);
    ck_assert_msg(!c.failed, "%s", c.err.msg);
    ck_assert_int_eq(count_entries(e.home, "blobs"), 2);
    ck_assert_int_eq(count_entries(e.home, "refs"), 2);
    image_release(e.ic, b.img);
    image_release(e.ic, c.img);
    {
        struct sbuf sb;
        struct json_doc *doc = NULL;
        const struct json_value *root;
        struct bx_err err;
        sbuf_init(&sb, 1 << 20);
        ck_assert_int_eq(image_list_json(e.ic, &sb, &err), 0);
        ck_assert_int_eq(json_parse(sb.data, sb.len, NULL, &doc, &err), 0);
        root = json_doc_root(doc);
        ck_assert_int_eq(root->type, JSON_ARRAY);
        ck_assert_uint_eq(root->u.arr.n, 2);
        for (size_t i = 0; i < 2; i++) {
            const struct json_value *it = &root->u.arr.items[i];
            const struct json_value *sz = json_get(it, "size_bytes");
            ck_assert_ptr_nonnull(json_get(it, "ref"));
            ck_assert_ptr_nonnull(json_get(it, "digest"));
            ck_assert_ptr_nonnull(json_get(it, "last_used"));
            ck_assert_ptr_nonnull(sz);
            ck_assert(sz->u.num.is_int && sz->u.num.i > 0);
        }
        ck_assert_str_eq(json_get(&root->u.arr.items[0], "ref")->u.str.s, bb("latest"));
        json_doc_free(&doc);
        sbuf_free(&sb);
    }
    env_free(&e);
}
END_TEST

/* image_acquire_digest: the cached content by digest, now, counted as in
 * use (DELETE 409, never evicted); 404 once it is gone, 400 for a digest
 * that is not one. */
START_TEST(test_acquire_digest)
{
    struct env e;
    struct res a, b;
    struct image *img = NULL;
    struct imgref ref;
    struct bx_err err;
    char d[80], rel[256];

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    get_wait(&e, bb("latest"), &a);
    ck_assert_msg(!a.failed, "%s", a.err.msg);
    snprintf(d, sizeof(d), "%s", a.img->digest);
    image_release(e.ic, a.img);
    bx_err_clear(&err);
    ck_assert_msg(image_acquire_digest(e.ic, d, &img, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(img->digest, d);
    snprintf(rel, sizeof(rel), "blobs/%s/rootfs", d + 7);
    ck_assert(exists_at(e.home, rel));
    ref_of(bb("latest"), &ref);
    ck_assert_int_eq(image_delete(e.ic, &ref, &err), -1);
    ck_assert_int_eq(err.status, 409);
    /* a pull over any cache size evicts what is not in use: not this */
    e.cfg.image_cache_max_bytes = 1;
    get_wait(&e, bb("v2"), &b);
    ck_assert_msg(!b.failed, "%s", b.err.msg);
    ck_assert_str_ne(b.img->digest, d);
    image_release(e.ic, b.img);
    ck_assert(exists_at(e.home, rel));
    image_release(e.ic, img);
    ck_assert_msg(image_delete(e.ic, &ref, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(image_acquire_digest(e.ic, d, &img, &err), -1);
    ck_assert_int_eq(err.status, 404);
    ck_assert_ptr_null(img);
    ck_assert_int_eq(image_acquire_digest(e.ic, "sha256:../../etc", &img, &err), -1);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_eq(image_acquire_digest(e.ic, "", &img, &err), -1);
    env_free(&e);
}
END_TEST

START_TEST(test_timeout)
{
    struct env e;
    struct res r;
    char ref[128];
    uint64_t t0;

    NEED_ENV();
    env_init(&e);
    e.cfg.pull_timeout_secs = 1;
    env_open(&e);
    snprintf(ref, sizeof(ref), "127.0.0.1:%d/library/slow:x", port);
    t0 = bx_now_ms();
    get_wait(&e, ref, &r);
    ck_assert(r.failed);
    ck_assert_int_eq(r.err.status, 500);
    ck_assert_msg(strstr(r.err.msg, "image pull timed out") != NULL, "%s", r.err.msg);
    ck_assert_uint_lt(bx_now_ms() - t0, 5000);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    env_free(&e);
}
END_TEST

START_TEST(test_tag_refresh_falls_back_when_offline)
{
    struct env e;
    struct res a, b;
    int before;

    NEED_ENV();
    env_init(&e);
    e.cfg.tag_refresh_secs = 1;
    env_open(&e);
    get_wait(&e, bb("latest"), &a);
    ck_assert_msg(!a.failed, "%s", a.err.msg);
    image_release(e.ic, a.img);
    sleep(2);
    ck_assert_int_eq(registry("stop"), 0);
    before = skopeo_count();
    get_wait(&e, bb("latest"), &b);
    ck_assert_int_eq(registry("start"), 0);
    ck_assert_int_eq(skopeo_count() - before, 1); /* it did try to refresh */
    ck_assert_msg(!b.failed, "%s", b.err.msg);    /* and served the cached one */
    image_release(e.ic, b.img);
    env_free(&e);
}
END_TEST

START_TEST(test_hostile_layers)
{
    struct env e;
    struct res r;
    char p[1024];
    struct stat st;

    NEED_ENV();
    env_init(&e);
    env_open(&e);
    /* Device nodes are dropped from the unpacked tree. */
    get_wait(&e, bb("dev"), &r);
    ck_assert_msg(!r.failed, "%s", r.err.msg);
    snprintf(p, sizeof(p), "%s/dev/evil", r.img->rootfs);
    ck_assert_int_eq(lstat(p, &st), -1);
    snprintf(p, sizeof(p), "%s/bin/busybox", r.img->rootfs);
    ck_assert_int_eq(lstat(p, &st), 0);
    image_release(e.ic, r.img);
    /* A tree nested deeper than the limit is refused and fully removed. */
    get_wait(&e, bb("deep"), &r);
    ck_assert(r.failed);
    ck_assert_int_eq(r.err.status, 500);
    ck_assert_msg(strstr(r.err.msg, "deeper") != NULL, "%s", r.err.msg);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    ck_assert_int_eq(count_entries(e.home, "blobs"), 1);
    env_free(&e);
}
END_TEST

/* No registry needed: leftovers of a crash are cleaned at start-up. */
START_TEST(test_startup_sweep)
{
    struct env e;
    char p[4096], hexa[65], hexb[65];
    struct image_cache *ic = NULL;
    struct bx_err err;
    FILE *f;

    if (!work[0])
        return;
    env_init(&e);
    memset(hexa, 'a', 64);
    hexa[64] = '\0';
    memset(hexb, 'b', 64);
    hexb[64] = '\0';
    snprintf(p, sizeof(p),
             "mkdir -p %s/images/tmp/pull-x/rootfs %s/images/blobs/%s/rootfs "
             "%s/images/blobs/%s/rootfs %s/images/blobs/junk %s/images/refs && "
             "echo ok > %s/images/blobs/%s/ready && echo 5 > %s/images/blobs/%s/size && "
             "echo '{\"Env\":[],\"Entrypoint\":null,\"Cmd\":null,\"WorkingDir\":null,"
             "\"User\":null}' > %s/images/blobs/%s/config.json && "
             "touch %s/images/refs/junk.txt %s/images/refs/%s.json.tmp.1 && "
             "mkdir -p %s/images/tmp/deep/$(printf 'd/%%.0s' $(seq 700))",
             e.home, e.home, hexa, e.home, hexb, e.home, e.home, e.home, hexa, e.home, hexa, e.home,
             hexa, e.home, e.home, hexa, e.home);
    ck_assert_int_eq(system(p), 0);
    /* Two refs files: one to the ready blob a, one to the incomplete b. */
    snprintf(p, sizeof(p), "%s/images/refs/", e.home);
    {
        const char *refs[2] = {"example.com/x:1", "example.com/y:1"};
        const char *hx[2] = {hexa, hexb};
        for (int i = 0; i < 2; i++) {
            char key[65], path[1200];
            sha256_of(refs[i], key);
            snprintf(path, sizeof(path), "%s/images/refs/%s.json", e.home, key);
            f = fopen(path, "w");
            ck_assert_ptr_nonnull(f);
            fprintf(f, "{\"ref\":\"%s\",\"digest\":\"sha256:%s\",\"pulled_at\":1}", refs[i], hx[i]);
            fclose(f);
        }
    }
    bx_err_clear(&err);
    ck_assert_msg(image_cache_new(&ic, e.loop, &e.cfg, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(count_entries(e.home, "tmp"), 0);
    ck_assert_int_eq(count_entries(e.home, "blobs"), 1);
    {
        char rel[128];
        snprintf(rel, sizeof(rel), "blobs/%s/ready", hexa);
        ck_assert(exists_at(e.home, rel));
    }
    ck_assert_int_eq(count_entries(e.home, "refs"), 1);
    {
        struct sbuf sb;
        struct image_stats st;
        sbuf_init(&sb, 1 << 20);
        ck_assert_int_eq(image_list_json(ic, &sb, &err), 0);
        ck_assert_ptr_nonnull(strstr(sb.data, "\"ref\":\"example.com/x:1\""));
        ck_assert_ptr_nonnull(strstr(sb.data, "\"size_bytes\":5"));
        sbuf_free(&sb);
        image_stats(ic, &st);
        ck_assert_uint_eq(st.cached_images, 1);
    }
    /* The cached entry is a hit: no child process even without a registry. */
    {
        struct res r;
        struct image_wait *w;
        int before = skopeo_count();
        e.ic = ic;
        pending = 0;
        start_get(&e, "example.com/x:1", &r, &w);
        ck_assert_int_eq(run_for(&e, 5000), 0);
        ck_assert_msg(!r.failed, "%s", r.err.msg);
        ck_assert_ptr_nonnull(r.img->env);
        ck_assert_ptr_null(r.img->env[0]);
        ck_assert_ptr_null(r.img->cmd);
        ck_assert_int_eq(skopeo_count(), before);
        image_release(ic, r.img);
    }
    env_free(&e);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("registry");
    tcase_add_unchecked_fixture(tc, setup_env, teardown_env);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_startup_sweep);
    tcase_add_test(tc, test_pull_single_flight_then_hit_offline);
    tcase_add_test(tc, test_missing_then_pushed);
    tcase_add_test(tc, test_tls_needed_unless_insecure);
    tcase_add_test(tc, test_mirror);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_evict_lru);
    tcase_add_test(tc, test_acquire_digest);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_tag_refresh_falls_back_when_offline);
    tcase_add_test(tc, test_hostile_layers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(image_suite);
}
