/* The command-line client's box, image and health subcommands, and its
 * uploads (multipart, streamed from the file) and downloads (streamed to
 * the file): see cli.c and boxer.1. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_internal.h"

/* ---- uploads and downloads ---- */

/* POST of a multipart body: fields (name, value) pairs, then the file part
 * streamed from fd. */
int cli_upload(struct cli *c, const char *path, const char *const *fields, const char *filename,
                  int ffd, struct sbuf *raw)
{
    struct call k;
    struct bx_err err;
    struct stat st;
    struct sbuf pre, post;
    unsigned char rnd[12];
    char bnd[40], ctype[80];
    int rc = 0;

    bx_err_clear(&err);
    sbuf_init(&pre, 64u << 10);
    sbuf_init(&post, 128);
    k.fd = -1;
    if (fstat(ffd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "%s: not a regular file", filename);
        goto out;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "getrandom: %s", strerror(errno));
        goto out;
    }
    snprintf(bnd, sizeof(bnd), "boxercli");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(bnd + 8 + 2 * i, sizeof(bnd) - 8 - 2 * i, "%02x", rnd[i]);
    snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", bnd);
    for (size_t i = 0; fields[i]; i += 2)
        if (sbuf_appendf(&pre, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n",
                         bnd, fields[i], fields[i + 1]) < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "path too long");
            goto out;
        }
    if (sbuf_appendf(&pre,
                     "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n",
                     bnd) < 0 ||
        sbuf_appendf(&post, "\r\n--%s--\r\n", bnd) < 0) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
        goto out;
    }
    k.fd = cli_connect(&c->t, &err);
    if (k.fd < 0 ||
        cli_send_head(k.fd, &c->t, "POST", path, ctype, pre.len + (uint64_t)st.st_size + post.len,
                      NULL, &err) < 0) {
        rc = cli_fail_err(&err);
        goto out;
    }
    /* A server that refuses early (413) closes while we send: its answer
     * still comes, so a failed send goes on to read it. */
    int sent = bx_write_all(k.fd, pre.data, pre.len) == 0;
    off_t left = st.st_size;
    char buf[65536];
    while (sent && left > 0) {
        ssize_t n = read(ffd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "reading %s: %s", filename,
                      n < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        if ((off_t)n > left)
            n = (ssize_t)left;
        sent = bx_write_all(k.fd, buf, (size_t)n) == 0;
        left -= n;
    }
    if (sent)
        bx_write_all(k.fd, post.data, post.len);
    cli_resp_init(&k.r, cli_fd_read, &k.fd);
    if (cli_resp_head(&k.r, &err) < 0) {
        rc = cli_fail_err(&err);
        goto out;
    }
    if (k.r.status < 200 || k.r.status > 299)
        rc = cli_fail_answer(&k);
    else if (cli_resp_read_all(&k.r, raw, &err) < 0)
        rc = cli_fail_err(&err);
out:
    bx_close(&k.fd);
    sbuf_free(&pre);
    sbuf_free(&post);
    return rc;
}

int cli_open_local(const char *local, int *fd)
{
    *fd = open(local, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "%s: %s", local, strerror(errno));
    return 0;
}

int cli_cmd_box_create(struct cli *c, int argc, char **argv)
{
    static const int allowed[] = {O_CPU, O_MEMORY, O_NETWORK, 'e', 'w', O_NAME, O_DISK, 0};
    struct opts o;
    struct sbuf body, raw;
    struct json_writer w;
    struct json_doc *doc = NULL;
    int first, rc;

    memset(&o, 0, sizeof(o));
    sbuf_init(&body, 1u << 20);
    sbuf_init(&raw, ANSWER_MAX);
    if ((rc = cli_parse_opts(argc, argv, allowed, &o, &first)) != 0)
        goto out;
    if (argc - first != 1) {
        rc = cli_usage_err("box create: IMAGE expected");
        goto out;
    }
    if (o.network && strcmp(o.network, "none") && strcmp(o.network, "sandbox") &&
        strcmp(o.network, "true") && strcmp(o.network, "false")) {
        rc = cli_usage_err("box create: --network none or sandbox");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0)
        goto out;
    json_w_init(&w, &body);
    json_w_obj_begin(&w);
    json_w_kv_cstr(&w, "image", argv[first]);
    if (o.name)
        json_w_kv_cstr(&w, "name", o.name);
    if (o.have_cpu)
        json_w_kv_double(&w, "cpu", o.cpu);
    if (o.have_memory)
        json_w_kv_uint(&w, "memory_mb", o.memory_mb);
    if (o.have_disk)
        json_w_kv_uint(&w, "disk_size_gb", o.disk_gb);
    if (o.network)
        json_w_kv_bool(&w, "network",
                       !strcmp(o.network, "sandbox") || !strcmp(o.network, "true"));
    if (o.workdir)
        json_w_kv_cstr(&w, "workdir", o.workdir);
    if (o.env.n)
        cli_w_env_obj(&w, &o.env);
    json_w_obj_end(&w);
    if (w.failed) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "request too large");
        goto out;
    }
    if ((rc = cli_call_json(c, "POST", "/v1/boxes", body.data, &doc, &raw)) != 0)
        goto out;
    if (c->json)
        cli_print_raw(&raw);
    else if (doc && cli_jstr(json_doc_root(doc), "id"))
        printf("%s\n", cli_jstr(json_doc_root(doc), "id"));
out:
    json_doc_free(&doc);
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&body);
    sbuf_free(&raw);
    return rc;
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

int cli_cmd_box_ls(struct cli *c, int argc, char **argv)
{
    static const int allowed[] = {O_STATUS, 0};
    struct opts o;
    struct sbuf raw, path;
    struct json_doc *doc = NULL;
    const struct json_value *arr;
    int first, rc;

    memset(&o, 0, sizeof(o));
    sbuf_init(&raw, ANSWER_MAX);
    sbuf_init(&path, 4096);
    if ((rc = cli_parse_opts(argc, argv, allowed, &o, &first)) != 0)
        goto out;
    if (argc != first) {
        rc = cli_usage_err("box ls takes no arguments");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0)
        goto out;
    if (sbuf_appendf(&path, "/v1/boxes") < 0 ||
        (o.status && (sbuf_appendf(&path, "?status=") < 0 || cli_seg(&path, o.status) < 0))) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "status too long");
        goto out;
    }
    if ((rc = cli_call_json(c, "GET", path.data, NULL, &doc, &raw)) != 0)
        goto out;
    if (c->json) {
        cli_print_raw(&raw);
        goto out;
    }
    arr = doc ? json_doc_root(doc) : NULL;
    if (!arr || arr->type != JSON_ARRAY) {
        rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "the box list is not a list");
        goto out;
    }
    printf("%-24s %-20s %-9s %-28s %s\n", "ID", "NAME", "STATUS", "IMAGE", "CREATED");
    for (size_t i = 0; i < arr->u.arr.n; i++) {
        const struct json_value *b = &arr->u.arr.items[i];
        printf("%-24.64s %-20.64s %-9.16s %-28.128s %s\n", or_dash(cli_jstr(b, "id")),
               or_dash(cli_jstr(b, "name")), or_dash(cli_jstr(b, "status")), or_dash(cli_jstr(b, "image")),
               or_dash(cli_jstr(b, "created_at")));
    }
out:
    json_doc_free(&doc);
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&raw);
    sbuf_free(&path);
    return rc;
}

/* info, stop, start, rm: one request per box named. */
int cli_cmd_box_simple(struct cli *c, int argc, char **argv, const char *what)
{
    static const int allowed_rm[] = {'f', 0};
    static const int none[] = {0};
    struct opts o;
    struct sbuf raw, path;
    int first, rc, is_rm = !strcmp(what, "rm"), is_info = !strcmp(what, "info");

    memset(&o, 0, sizeof(o));
    sbuf_init(&raw, ANSWER_MAX);
    sbuf_init(&path, 4096);
    if ((rc = cli_parse_opts(argc, argv, is_rm ? allowed_rm : none, &o, &first)) != 0)
        goto out;
    if (argc == first) {
        rc = cli_usage_err("box %s: BOX... expected", what);
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0)
        goto out;
    for (int i = first; i < argc && rc == 0; i++) {
        struct json_doc *doc = NULL;
        const char *tail = is_rm ? (o.force ? "?force=true" : "")
                           : is_info ? ""
                           : !strcmp(what, "stop") ? ":stop"
                                                   : ":start";
        if ((rc = cli_box_path(&path, argv[i], tail)) != 0)
            break;
        sbuf_reset(&raw);
        rc = cli_call_json(c, is_rm ? "DELETE" : is_info ? "GET" : "POST", path.data, NULL, &doc,
                       &raw);
        if (rc == 0) {
            if (is_info || (c->json && !is_rm))
                cli_print_raw(&raw);
            else
                printf("%s\n", argv[i]);
        }
        json_doc_free(&doc);
    }
out:
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&raw);
    sbuf_free(&path);
    return rc;
}

int cli_cmd_box_gc(struct cli *c, int argc, char **argv)
{
    static const int allowed[] = {O_OLDER, 0};
    struct opts o;
    struct sbuf raw;
    struct json_doc *doc = NULL;
    char body[64];
    int first, rc;
    int64_t n = 0;

    memset(&o, 0, sizeof(o));
    sbuf_init(&raw, ANSWER_MAX);
    if ((rc = cli_parse_opts(argc, argv, allowed, &o, &first)) != 0)
        goto out;
    if (argc != first) {
        rc = cli_usage_err("box gc takes no arguments");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0)
        goto out;
    if (o.have_older)
        snprintf(body, sizeof(body), "{\"older_than\":%" PRIu64 "}", o.older_than);
    else
        snprintf(body, sizeof(body), "{}");
    if ((rc = cli_call_json(c, "POST", "/v1/gc", body, &doc, &raw)) != 0)
        goto out;
    if (c->json)
        cli_print_raw(&raw);
    else if (doc && cli_jint(json_doc_root(doc), "removed", &n) == 0)
        printf("removed %" PRId64 "\n", n);
out:
    json_doc_free(&doc);
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&raw);
    return rc;
}

/* BOX:PATH (a colon before any slash) names a path in a box. */
static const char *remote_part(const char *s)
{
    const char *colon = strchr(s, ':'), *slash = strchr(s, '/');
    if (!colon || colon == s || (slash && slash < colon))
        return NULL;
    return colon + 1;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int download(struct cli *c, const char *box, const char *rpath, const char *local)
{
    struct call k;
    struct bx_err err;
    struct sbuf path, body;
    struct json_writer w;
    struct stat st;
    char *dst = NULL;
    int ofd = -1, rc = 0;

    bx_err_clear(&err);
    sbuf_init(&path, 4096);
    sbuf_init(&body, 64u << 10);
    k.fd = -1;
    if ((rc = cli_box_path(&path, box, "/files/download")) != 0)
        goto out;
    json_w_init(&w, &body);
    json_w_obj_begin(&w);
    json_w_kv_cstr(&w, "path", rpath);
    json_w_obj_end(&w);
    if (w.failed) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "path too long");
        goto out;
    }
    if (cli_call_begin(c, &k, "POST", path.data, "application/json", body.data, body.len, &err) < 0) {
        rc = cli_fail_err(&err);
        goto out;
    }
    if (k.r.status != 200) {
        rc = cli_fail_answer(&k);
        goto out;
    }
    if (strcmp(local, "-") == 0) {
        ofd = 1;
    } else {
        if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (asprintf(&dst, "%s/%s", local, base_name(rpath)) < 0) {
                dst = NULL;
                rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
                goto out;
            }
        } else if (!(dst = strdup(local))) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
            goto out;
        }
        ofd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ofd < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "%s: %s", dst, strerror(errno));
            goto out;
        }
    }
    for (;;) {
        char buf[65536];
        ssize_t n = cli_resp_read(&k.r, buf, sizeof(buf), &err);
        if (n < 0) {
            rc = cli_fail_err(&err);
            break;
        }
        if (n == 0)
            break;
        if (bx_write_all(ofd, buf, (size_t)n) < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "writing %s: %s", dst ? dst : "stdout",
                      strerror(errno));
            break;
        }
    }
    if (rc && dst)
        unlink(dst);
out:
    if (ofd > 2)
        close(ofd);
    bx_close(&k.fd);
    free(dst);
    sbuf_free(&path);
    sbuf_free(&body);
    return rc;
}

int cli_cmd_box_cp(struct cli *c, int argc, char **argv)
{
    static const int none[] = {0};
    struct opts o;
    struct sbuf raw, path;
    const char *rs, *rd;
    char *box = NULL, *dest = NULL;
    int first, rc, ffd = -1;

    memset(&o, 0, sizeof(o));
    sbuf_init(&raw, ANSWER_MAX);
    sbuf_init(&path, 4096);
    if ((rc = cli_parse_opts(argc, argv, none, &o, &first)) != 0)
        goto out;
    if (argc - first != 2) {
        rc = cli_usage_err("box cp: LOCAL BOX:PATH or BOX:PATH LOCAL expected");
        goto out;
    }
    rs = remote_part(argv[first]);
    rd = remote_part(argv[first + 1]);
    if ((rs && rd) || (!rs && !rd)) {
        rc = cli_usage_err("box cp: exactly one of the two must be BOX:PATH");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0)
        goto out;
    if (rs) {
        box = strndup(argv[first], (size_t)(rs - 1 - argv[first]));
        if (!box) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
            goto out;
        }
        rc = download(c, box, rs, argv[first + 1]);
        goto out;
    }
    box = strndup(argv[first + 1], (size_t)(rd - 1 - argv[first + 1]));
    /* A destination ending in '/' is a directory: the file keeps its name. */
    if (!box || asprintf(&dest, "%s%s", rd,
                         *rd == '\0' || rd[strlen(rd) - 1] == '/' ? base_name(argv[first]) : "") < 0) {
        dest = NULL;
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
        goto out;
    }
    if ((rc = cli_box_path(&path, box, "/files/upload")) != 0 ||
        (rc = cli_open_local(argv[first], &ffd)) != 0)
        goto out;
    const char *fields[] = {"dest", dest, NULL};
    if ((rc = cli_upload(c, path.data, fields, argv[first], ffd, &raw)) == 0 && c->json)
        cli_print_raw(&raw);
out:
    if (ffd >= 0)
        close(ffd);
    free(box);
    free(dest);
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&raw);
    sbuf_free(&path);
    return rc;
}

/* ---- images, health ---- */

int cli_cmd_images(struct cli *c, int argc, char **argv)
{
    static const int none[] = {0};
    struct opts o;
    struct sbuf raw;
    struct json_doc *doc = NULL;
    const struct json_value *arr;
    int first, rc;

    memset(&o, 0, sizeof(o));
    sbuf_init(&raw, ANSWER_MAX);
    if ((rc = cli_parse_opts(argc, argv, none, &o, &first)) != 0)
        goto out;
    if (argc != first) {
        rc = cli_usage_err("images takes no arguments");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0 || (rc = cli_call_json(c, "GET", "/images", NULL, &doc, &raw)))
        goto out;
    if (c->json) {
        cli_print_raw(&raw);
        goto out;
    }
    arr = doc ? json_doc_root(doc) : NULL;
    if (!arr || arr->type != JSON_ARRAY) {
        rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "the image list is not a list");
        goto out;
    }
    printf("%-48s %-19s %12s %s\n", "REF", "DIGEST", "SIZE", "IN USE");
    for (size_t i = 0; i < arr->u.arr.n; i++) {
        const struct json_value *im = &arr->u.arr.items[i], *use = json_get(im, "in_use");
        int64_t size = 0;
        cli_jint(im, "size_bytes", &size);
        printf("%-48.256s %-19.19s %12" PRId64 " %s\n", or_dash(cli_jstr(im, "ref")),
               or_dash(cli_jstr(im, "digest")), size,
               use && use->type == JSON_BOOL && use->u.boolean ? "yes" : "no");
    }
out:
    json_doc_free(&doc);
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&raw);
    return rc;
}

int cli_cmd_health(struct cli *c, int argc, char **argv)
{
    static const int none[] = {0};
    struct opts o;
    struct sbuf raw;
    struct json_doc *doc = NULL;
    int first, rc;

    memset(&o, 0, sizeof(o));
    sbuf_init(&raw, ERROR_BODY_MAX);
    if ((rc = cli_parse_opts(argc, argv, none, &o, &first)) != 0)
        goto out;
    if (argc != first) {
        rc = cli_usage_err("health takes no arguments");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0 || (rc = cli_call_json(c, "GET", "/healthz", NULL, &doc, &raw)))
        goto out;
    if (c->json)
        cli_print_raw(&raw);
    else
        printf("ok %s%s\n", c->t.is_unix ? "unix://" : "http://",
               c->t.is_unix ? c->t.path : c->t.hostport);
out:
    json_doc_free(&doc);
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&raw);
    return rc;
}

