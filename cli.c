/* The command-line client: argument parsing, server discovery, and the
 * subcommands that map to one request each (run and exec stream NDJSON).
 * The HTTP side is cli_http.c; the manual is boxer.1.
 *
 * Exit statuses: run/exec give the command's own; 124 the command hit its
 * timeout; 125 Boxer refused the request or could not be reached (like
 * `docker run`); 2 a usage error; 0 success for the other subcommands. */
#include "cli.h"
#include "cli_hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64dec.h"
#include "check_host.h"
#include "cli_http.h"
#include "cli_internal.h"
#include "cli_term.h"
#include "json.h"
#include "sha1.h"

const struct json_limits cli_answer_limits = {ANSWER_MAX, 64, 1000000};

/* ---- messages ---- */

int cli_fail(int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "boxer: %s (%s)\n", msg, code);
    return status;
}

/* A client-side failure in err: unreachable (status 0), a bad answer, ... */
int cli_fail_err(const struct bx_err *err)
{
    const char *code = err->status == 0 ? "UNREACHABLE"
                       : err->status == 502 ? "BAD_ANSWER"
                       : err->status == 413 ? "ANSWER_TOO_LARGE"
                                            : "CLIENT_ERROR";
    return cli_fail(CLI_EXIT_BOXER, code, "%s", err->msg);
}

int cli_usage_err(const char *fmt, ...)
{
    va_list ap;
    fputs("boxer: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; see boxer help (USAGE)\n", stderr);
    return CLI_EXIT_USAGE;
}

static void cli_usage(FILE *f)
{
    fputs("usage: boxer [serve] [--config PATH]          start the server\n"
          "       boxer run [opts] IMAGE [--] CMD...      run a command, stream its output\n"
          "       boxer exec [opts] BOX [--] CMD...       run a command in a box\n"
          "       boxer exec -it BOX [-- CMD...]          a terminal in a box (CMD or a shell)\n"
          "       boxer box create [opts] IMAGE\n"
          "       boxer box ls|info|stop|start|rm|gc|exec|cp ...\n"
          "       boxer images | boxer health\n"
          "       boxer check-host [--config PATH]       what this host lacks to run Boxer\n"
          "\n"
          "client options: --url URL (else $BOXER_URL, ~/.boxer/boxer.sock, http://127.0.0.1:8080),\n"
          "  --json, --cpu N, --memory MB, --timeout SECS, --network MODE, -e/--env K=V,\n"
          "  --file LOCAL:PATH, --stdin, -w/--workdir DIR, --name NAME, --disk GB,\n"
          "  --status S, -f/--force, --older-than SECS, --user U, -t, -i.  See boxer(1).\n",
          f);
}

/* The error answer's message and code on one line; 125. */
int cli_fail_answer(struct call *k)
{
    struct sbuf sb;
    struct bx_err err;
    struct json_doc *doc = NULL;
    const struct json_value *v, *code, *msg;
    char codebuf[32];
    int rc;

    sbuf_init(&sb, ERROR_BODY_MAX);
    bx_err_clear(&err);
    snprintf(codebuf, sizeof(codebuf), "HTTP %d", k->r.status);
    if (cli_resp_read_all(&k->r, &sb, &err) == 0 && sb.len > 0 &&
        json_parse(sb.data, sb.len, &cli_answer_limits, &doc, &err) == 0) {
        v = json_doc_root(doc);
        code = json_get(v, "code");
        msg = json_get(v, "message");
        if (!msg || msg->type != JSON_STRING)
            msg = json_get(v, "error");
        if (msg && msg->type == JSON_STRING) {
            rc = cli_fail(CLI_EXIT_BOXER,
                      code && code->type == JSON_STRING ? code->u.str.s : codebuf, "%.600s",
                      msg->u.str.s);
            goto out;
        }
    }
    rc = cli_fail(CLI_EXIT_BOXER, codebuf, "the server refused the request");
out:
    json_doc_free(&doc);
    sbuf_free(&sb);
    return rc;
}

/* ---- requests ---- */

/* One byte of a path segment or query value, percent-encoded unless
 * unreserved. */
static int seg_char(struct sbuf *sb, unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~')
        return sbuf_putc(sb, (char)c);
    return sbuf_appendf(sb, "%%%02X", c);
}

/* Percent-encodes one path segment (a box id or name from the user). */
int cli_seg(struct sbuf *sb, const char *s)
{
    for (; *s; s++)
        if (seg_char(sb, (unsigned char)*s) < 0)
            return -1;
    return 0;
}

/* Connects, sends the head and body, reads the answer's head. */
int cli_call_begin(struct cli *c, struct call *k, const char *method, const char *path,
                      const char *ctype, const void *body, size_t len, struct bx_err *err)
{
    k->fd = cli_connect(&c->t, err);
    if (k->fd < 0)
        return -1;
    if (cli_send_head(k->fd, &c->t, method, path, ctype, len, NULL, err) < 0 ||
        (len > 0 && bx_write_all(k->fd, body, len) < 0 &&
         bx_err_sys(err, 0, "sending the request") < 0))
        goto fail_out;
    cli_resp_init(&k->r, cli_fd_read, &k->fd);
    if (cli_resp_head(&k->r, err) < 0)
        goto fail_out;
    return 0;
fail_out:
    bx_close(&k->fd);
    return -1;
}

void cli_call_end(struct call *k)
{
    bx_close(&k->fd);
}

/* A whole request answered with JSON: *doc set on a 2xx answer (NULL for
 * an empty body).  Returns 0, or the exit status to leave with. */
int cli_call_json(struct cli *c, const char *method, const char *path, const char *body,
                     struct json_doc **doc, struct sbuf *raw)
{
    struct call k;
    struct bx_err err;
    int rc = 0;

    bx_err_clear(&err);
    *doc = NULL;
    if (cli_call_begin(c, &k, method, path, body ? "application/json" : NULL, body,
                   body ? strlen(body) : 0, &err) < 0)
        return cli_fail_err(&err);
    if (k.r.status < 200 || k.r.status > 299) {
        rc = cli_fail_answer(&k);
        goto out;
    }
    if (cli_resp_read_all(&k.r, raw, &err) < 0) {
        rc = cli_fail_err(&err);
        goto out;
    }
    if (raw->len > 0 && json_parse(raw->data, raw->len, &cli_answer_limits, doc, &err) < 0)
        rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "%s", err.msg);
out:
    cli_call_end(&k);
    return rc;
}

const char *cli_jstr(const struct json_value *o, const char *key)
{
    const struct json_value *v = json_get(o, key);
    return v && v->type == JSON_STRING ? v->u.str.s : NULL;
}

int cli_jint(const struct json_value *o, const char *key, int64_t *out)
{
    const struct json_value *v = json_get(o, key);
    if (!v || v->type != JSON_NUMBER || !v->u.num.is_int)
        return -1;
    *out = v->u.num.i;
    return 0;
}

void cli_print_raw(const struct sbuf *raw)
{
    if (raw->len > 0) {
        fwrite(raw->data, 1, raw->len, stdout);
        if (raw->data[raw->len - 1] != '\n')
            putchar('\n');
    }
}

/* ---- base64 and input ---- */

/* Standard input, whole and bounded, as base64 text (NUL-terminated). */
static int read_stdin_b64(struct sbuf *out)
{
    struct sbuf in;
    char buf[65536];
    int rc = 0;

    sbuf_init(&in, STDIN_MAX);
    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "STDIN", "reading standard input: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (sbuf_append(&in, buf, (size_t)n) < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "STDIN_TOO_LARGE", "standard input over %u bytes",
                      STDIN_MAX);
            break;
        }
    }
    sbuf_init(out, STDIN_MAX / 3 * 4 + 16);
    if (rc == 0 && cli_b64_append(out, (const unsigned char *)(in.data ? in.data : ""), in.len) < 0)
        rc = cli_fail(CLI_EXIT_BOXER, "STDIN", "out of memory");
    if (rc == 0 && !out->data && sbuf_append(out, "", 0) < 0)
        rc = cli_fail(CLI_EXIT_BOXER, "STDIN", "out of memory");
    sbuf_free(&in);
    return rc;
}

/* ---- streamed output (NDJSON) ---- */

/* Writes a log event's base64 data to fd 1 or 2. */
static int write_log(const struct json_value *ev)
{
    const struct json_value *d = json_get(ev, "data");
    const char *s = cli_jstr(ev, "stream");
    int fd = s && strcmp(s, "stderr") == 0 ? 2 : 1;
    unsigned char *buf;
    long n;

    if (!d || d->type != JSON_STRING)
        return cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "log event without data");
    buf = malloc(b64_decoded_max(d->u.str.len) + 1);
    if (!buf)
        return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
    n = b64_decode(d->u.str.s, d->u.str.len, buf);
    if (n < 0) {
        free(buf);
        return cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "log event with bad base64");
    }
    /* A closed stdout (`| head`) ends the output, not the command. */
    if (n > 0 && bx_write_all(fd, buf, (size_t)n) < 0 && errno != EPIPE) {
        free(buf);
        return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "writing output: %s", strerror(errno));
    }
    free(buf);
    return 0;
}

static int clamp_status(int64_t code)
{
    if (code < 0 || code > 255)
        return CLI_EXIT_BOXER;
    return (int)code;
}

/* A truncated result line (its stdout/stderr over LINE_MAX_BYTES): the small
 * fields come first, and a quote in JSON text is always escaped, so
 * `"name":` with bare quotes is the member itself. */
static int scan_int(const char *s, size_t len, const char *name, int64_t *out)
{
    char key[48];
    int kl = snprintf(key, sizeof(key), "\"%s\":", name);
    const char *p = memmem(s, len, key, (size_t)kl);
    if (!p)
        return -1;
    p += kl;
    size_t i = 0, rest = len - (size_t)(p - s);
    while (i < rest && ((p[i] >= '0' && p[i] <= '9') || (i == 0 && p[i] == '-')))
        i++;
    return bx_parse_i64(p, i, -1000000, 1000000, out);
}

/* A streamed /run's failed result, worded as the plain /run's answer would
 * be: TIMEOUT (124) for 408, else "HTTP <status>" (125). */
static int fail_status(int64_t st, const char *msg)
{
    char code[32];
    if (st == 408)
        return cli_fail(CLI_EXIT_TIMEOUT, "TIMEOUT", "%.600s", msg);
    snprintf(code, sizeof(code), "HTTP %" PRId64, st);
    return cli_fail(CLI_EXIT_BOXER, code, "%.600s", msg);
}

/* Reads the NDJSON events of a streamed /run (is_run) or box exec and
 * returns the exit status. */
static int follow_stream(struct call *k, int is_run)
{
    struct sbuf line;
    struct bx_err err;
    int rc = -1, trunc;

    sbuf_init(&line, LINE_MAX_BYTES + 1);
    bx_err_clear(&err);
    while (rc < 0) {
        struct json_doc *doc = NULL;
        const struct json_value *ev;
        const char *type;
        int64_t st = 0, code = 0;
        int lr = cli_resp_line(&k->r, &line, LINE_MAX_BYTES, &trunc, &err);
        if (lr < 0) {
            rc = cli_fail_err(&err);
            break;
        }
        if (lr == 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "the stream ended before the command did");
            break;
        }
        if (line.len == 0)
            continue;
        if (trunc) {
            if (line.len >= 16 && memcmp(line.data, "{\"type\":\"result\"", 16) == 0 &&
                scan_int(line.data, line.len, "status", &st) == 0) {
                if (st == 200 && scan_int(line.data, line.len, "exit_code", &code) == 0)
                    rc = clamp_status(code);
                else
                    rc = fail_status(st, "the run failed");
                break;
            }
            rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "event over %u bytes", LINE_MAX_BYTES);
            break;
        }
        if (json_parse(line.data, line.len, &cli_answer_limits, &doc, &err) < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "%s", err.msg);
            break;
        }
        ev = json_doc_root(doc);
        type = cli_jstr(ev, "type");
        if (!type) {
            rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "event without a type");
        } else if (strcmp(type, "log") == 0) {
            if (write_log(ev) != 0)
                rc = CLI_EXIT_BOXER;
        } else if (strcmp(type, "truncated") == 0) {
            int64_t dropped = 0;
            cli_jint(ev, "dropped", &dropped);
            fprintf(stderr, "boxer: %" PRId64 " output events were dropped (TRUNCATED)\n",
                    dropped);
        } else if (is_run && strcmp(type, "result") == 0) {
            const char *e = cli_jstr(ev, "error");
            if (cli_jint(ev, "status", &st) < 0)
                st = 500;
            if (st == 200 && cli_jint(ev, "exit_code", &code) == 0)
                rc = clamp_status(code);
            else if (cli_jstr(ev, "code"))
                rc = cli_fail(st == 408 ? CLI_EXIT_TIMEOUT : CLI_EXIT_BOXER, cli_jstr(ev, "code"),
                          "%.600s", e ? e : "the run failed");
            else
                rc = fail_status(st, e ? e : "the run failed");
        } else if (!is_run && strcmp(type, "exit") == 0) {
            const struct json_value *to = json_get(ev, "timed_out");
            if (to && to->type == JSON_BOOL && to->u.boolean)
                rc = cli_fail(CLI_EXIT_TIMEOUT, "TIMEOUT", "the command timed out");
            else if (cli_jint(ev, "exit_code", &code) == 0)
                rc = clamp_status(code);
            else
                rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "exit event without exit_code");
        }
        /* start, keepalive and types added later: nothing to do. */
        json_doc_free(&doc);
    }
    sbuf_free(&line);
    return rc;
}

/* ---- options ---- */


static const struct option long_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"json", no_argument, NULL, O_JSON},
    {"cpu", required_argument, NULL, O_CPU},
    {"memory", required_argument, NULL, O_MEMORY},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"network", required_argument, NULL, O_NETWORK},
    {"env", required_argument, NULL, 'e'},
    {"file", required_argument, NULL, O_FILE},
    {"stdin", no_argument, NULL, O_STDIN},
    {"workdir", required_argument, NULL, 'w'},
    {"name", required_argument, NULL, O_NAME},
    {"disk", required_argument, NULL, O_DISK},
    {"status", required_argument, NULL, O_STATUS},
    {"force", no_argument, NULL, 'f'},
    {"older-than", required_argument, NULL, O_OLDER},
    {"user", required_argument, NULL, O_USER},
    {"interactive", no_argument, NULL, 'i'},
    {"tty", no_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

static int u64_arg(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
    if (bx_parse_u64(s, strlen(s), max, out) < 0)
        return cli_usage_err("--%s: not a whole number up to %" PRIu64 ": %s", opt, max, s);
    return 0;
}


/* Parses argv[0..end) (argv[0] the subcommand) into o; allowed lists the
 * option values the subcommand takes.  Positionals are left in
 * argv[*first..end).  Returns 0, CLI_HELP, or the usage exit. */
int cli_parse_opts(int end, char **argv, const int *allowed, struct opts *o, int *first)
{
    int opt;

    opterr = 0;
    optind = 0; /* GNU: full reinitialisation */
    while ((opt = getopt_long(end, argv, ":e:w:fith", long_opts, NULL)) != -1) {
        int ok = opt == 'h' || opt == O_URL || opt == O_JSON;
        for (const int *a = allowed; *a && !ok; a++)
            ok = *a == opt;
        if (opt == '?' || opt == ':') {
            return cli_usage_err("%s: %s option %s", argv[0],
                             opt == '?' ? "unknown" : "missing the value of",
                             argv[optind - 1]);
        }
        if (!ok)
            return cli_usage_err("%s does not take %s", argv[0], argv[optind - 1]);
        switch (opt) {
        case 'h':
            cli_usage(stdout);
            return CLI_HELP;
        case O_URL:
            o->url = optarg;
            break;
        case O_JSON:
            break;
        case O_CPU: {
            char *e;
            errno = 0;
            o->cpu = strtod(optarg, &e);
            if (errno || e == optarg || *e || !(o->cpu > 0 && o->cpu <= 1024))
                return cli_usage_err("--cpu: not a positive number of cores: %s", optarg);
            o->have_cpu = 1;
            break;
        }
        case O_MEMORY:
            if (u64_arg("memory", optarg, 1u << 30, &o->memory_mb))
                return CLI_EXIT_USAGE;
            o->have_memory = 1;
            break;
        case O_TIMEOUT:
            if (u64_arg("timeout", optarg, 1u << 30, &o->timeout_s))
                return CLI_EXIT_USAGE;
            o->have_timeout = 1;
            break;
        case O_DISK:
            if (u64_arg("disk", optarg, 1u << 20, &o->disk_gb))
                return CLI_EXIT_USAGE;
            o->have_disk = 1;
            break;
        case O_OLDER:
            if (u64_arg("older-than", optarg, 100ull * 365 * 86400, &o->older_than))
                return CLI_EXIT_USAGE;
            o->have_older = 1;
            break;
        case O_NETWORK:
            o->network = optarg;
            break;
        case 'e':
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return cli_usage_err("--env: K=V expected: %s", optarg);
            if (str_list_push(&o->env, optarg) < 0)
                return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
            break;
        case O_FILE:
            if (!strchr(optarg, ':'))
                return cli_usage_err("--file: LOCAL:PATH expected: %s", optarg);
            if (str_list_push(&o->files, optarg) < 0)
                return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
            break;
        case O_STDIN:
            o->stdin_all = 1;
            break;
        case 'w':
            o->workdir = optarg;
            break;
        case O_NAME:
            o->name = optarg;
            break;
        case O_STATUS:
            o->status = optarg;
            break;
        case 'f':
            o->force = 1;
            break;
        case O_USER:
            o->user = optarg;
            break;
        case 'i':
            o->interactive = 1;
            break;
        case 't':
            o->tty = 1;
            break;
        }
    }
    *first = optind;
    return 0;
}

/* Where the server is: --url, $BOXER_URL, the socket, localhost. */
int cli_discover(struct cli *c, const struct opts *o)
{
    const char *url = o->url, *home = getenv("HOME");
    char sock[512];
    struct bx_err err;
    struct stat st;

    bx_err_clear(&err);
    if (!url || !*url)
        url = getenv("BOXER_URL");
    if ((!url || !*url) && home && *home &&
        snprintf(sock, sizeof(sock), "unix://%s/.boxer/boxer.sock", home) < (int)sizeof(sock) &&
        stat(sock + 7, &st) == 0 && S_ISSOCK(st.st_mode))
        url = sock;
    if (!url || !*url)
        url = "http://127.0.0.1:8080";
    if (cli_target_parse_hosts(&c->t, url, CLI_HOSTS_PATH, &err) < 0)
        return cli_usage_err("%s", err.msg);
    c->t.token = getenv("BOXER_TOKEN");
    if (c->t.token && !*c->t.token)
        c->t.token = NULL;
    if (c->t.token && strpbrk(c->t.token, "\r\n"))
        return cli_usage_err("BOXER_TOKEN holds a line break");
    return 0;
}

/* ---- run ---- */

static void w_env_list(struct json_writer *w, const struct str_list *env)
{
    json_w_key(w, "env");
    json_w_arr_begin(w);
    for (size_t i = 0; i < env->n; i++)
        json_w_cstr(w, env->items[i]);
    json_w_arr_end(w);
}

void cli_w_env_obj(struct json_writer *w, const struct str_list *env)
{
    json_w_key(w, "env");
    json_w_obj_begin(w);
    for (size_t i = 0; i < env->n; i++) {
        const char *eq = strchr(env->items[i], '=');
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - env->items[i]), env->items[i]);
        json_w_key(w, key);
        json_w_cstr(w, eq + 1);
    }
    json_w_obj_end(w);
}

static void w_cmd(struct json_writer *w, int n, char **cmd)
{
    json_w_key(w, "cmd");
    json_w_arr_begin(w);
    for (int i = 0; i < n; i++)
        json_w_cstr(w, cmd[i]);
    json_w_arr_end(w);
}

/* Finds "--": options and the IMAGE/BOX come before it, the command after.
 * Without "--" the command is the positionals after the first. */
static int split_dashdash(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0)
            return i;
    return argc;
}

/* Streams a request whose answer is NDJSON and returns the exit status. */
static int stream_call(struct cli *c, const char *path, struct sbuf *body, int is_run)
{
    struct call k;
    struct bx_err err;
    int rc;

    bx_err_clear(&err);
    if (cli_call_begin(c, &k, "POST", path, "application/json", body->data, body->len, &err) < 0)
        return cli_fail_err(&err);
    if (k.r.status != 200)
        rc = cli_fail_answer(&k);
    else
        rc = follow_stream(&k, is_run);
    cli_call_end(&k);
    return rc;
}

static int cmd_run(struct cli *c, int argc, char **argv)
{
    static const int allowed[] = {O_CPU, O_MEMORY, O_TIMEOUT, O_NETWORK, 'e', O_FILE, O_STDIN,
                                  'w', 0};
    struct opts o;
    struct sbuf body, in, raw;
    struct json_writer w;
    struct str_list files = {0};
    int dd = split_dashdash(argc, argv), first, rc, ncmd;
    char **cmd;

    memset(&o, 0, sizeof(o));
    sbuf_init(&body, 64u << 20);
    sbuf_init(&in, 1);
    sbuf_init(&raw, ERROR_BODY_MAX);
    rc = cli_parse_opts(dd, argv, allowed, &o, &first);
    if (rc)
        goto out;
    if (first >= dd) {
        rc = cli_usage_err("run: IMAGE expected");
        goto out;
    }
    cmd = dd < argc ? argv + dd + 1 : argv + first + 1;
    ncmd = dd < argc ? argc - dd - 1 : dd - first - 1;
    if ((dd < argc && dd - first != 1) || ncmd <= 0) {
        rc = cli_usage_err("run: IMAGE -- CMD... expected");
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0)
        goto out;
    for (size_t i = 0; i < o.files.n; i++) {
        char *spec = o.files.items[i], *colon = strrchr(spec, ':');
        const char *dest = colon + 1;
        struct bx_err err;
        struct json_doc *doc = NULL;
        int ffd;
        *colon = '\0';
        while (*dest == '/')
            dest++;
        const char *fields[] = {"path", dest, NULL};
        if ((rc = cli_open_local(spec, &ffd)) != 0)
            goto out;
        sbuf_reset(&raw);
        rc = cli_upload(c, "/files", fields, spec, ffd, &raw);
        close(ffd);
        if (rc)
            goto out;
        bx_err_clear(&err);
        if (json_parse(raw.data ? raw.data : "", raw.len, &cli_answer_limits, &doc, &err) < 0 ||
            !cli_jstr(json_doc_root(doc), "path")) {
            json_doc_free(&doc);
            rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "upload answer without a path");
            goto out;
        }
        rc = str_list_push(&files, cli_jstr(json_doc_root(doc), "path"));
        json_doc_free(&doc);
        if (rc < 0) {
            rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
            goto out;
        }
    }
    if (o.stdin_all && (rc = read_stdin_b64(&in)) != 0)
        goto out;
    json_w_init(&w, &body);
    json_w_obj_begin(&w);
    json_w_kv_cstr(&w, "image", argv[first]);
    w_cmd(&w, ncmd, cmd);
    if (o.env.n)
        w_env_list(&w, &o.env);
    if (o.workdir)
        json_w_kv_cstr(&w, "cwd", o.workdir);
    if (files.n) {
        json_w_key(&w, "files");
        json_w_arr_begin(&w);
        for (size_t i = 0; i < files.n; i++)
            json_w_cstr(&w, files.items[i]);
        json_w_arr_end(&w);
    }
    if (o.have_cpu || o.have_memory || o.have_timeout) {
        json_w_key(&w, "limits");
        json_w_obj_begin(&w);
        if (o.have_cpu)
            json_w_kv_double(&w, "cpu_cores", o.cpu);
        if (o.have_memory)
            json_w_kv_uint(&w, "memory_mb", o.memory_mb);
        if (o.have_timeout)
            json_w_kv_uint(&w, "wall_clock_secs", o.timeout_s);
        json_w_obj_end(&w);
    }
    if (o.network)
        json_w_kv_cstr(&w, "network", o.network);
    if (o.stdin_all)
        json_w_kv_cstr(&w, "stdin_b64", in.data);
    json_w_kv_bool(&w, "stream", 1);
    json_w_kv_cstr(&w, "encoding", "base64");
    json_w_obj_end(&w);
    if (w.failed) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "request too large");
        goto out;
    }
    rc = stream_call(c, "/run", &body, 1);
out:
    str_list_free(&o.env);
    str_list_free(&o.files);
    str_list_free(&files);
    sbuf_free(&body);
    sbuf_free(&in);
    sbuf_free(&raw);
    return rc;
}

/* ---- boxes ---- */

int cli_box_path(struct sbuf *sb, const char *box, const char *tail)
{
    sbuf_reset(sb);
    if (sbuf_append(sb, "/v1/boxes/", 10) < 0 || cli_seg(sb, box) < 0 ||
        sbuf_appendf(sb, "%s", tail) < 0)
        return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "box name too long");
    return 0;
}

/* Query-encodes s (an absolute path or a TERM name) into sb. */
static int qenc(struct sbuf *sb, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '/' ? sbuf_putc(sb, '/') < 0 : seg_char(sb, c) < 0)
            return -1;
    }
    return 0;
}

/* The command, env, workdir and user of `exec -it` as /attach query
 * parameters (attach_req.h); each value percent-encoded whole. */
static int attach_params(struct sbuf *path, const struct opts *o, int ncmd, char **cmd)
{
    for (int i = 0; i < ncmd; i++)
        if (sbuf_appendf(path, "&cmd=") < 0 || cli_seg(path, cmd[i]) < 0)
            return -1;
    for (size_t i = 0; i < o->env.n; i++)
        if (sbuf_appendf(path, "&env=") < 0 || cli_seg(path, o->env.items[i]) < 0)
            return -1;
    if (o->workdir && (sbuf_appendf(path, "&workdir=") < 0 || cli_seg(path, o->workdir) < 0))
        return -1;
    if (o->user && (sbuf_appendf(path, "&user=") < 0 || cli_seg(path, o->user) < 0))
        return -1;
    return 0;
}

/* The server's request line is at most 8192 bytes (the command goes in
 * the URL): say so here rather than get a bare 414. */
#define ATTACH_PATH_MAX 8000

/* `exec -it`: the /attach WebSocket; without a command (ncmd 0) the
 * server's default shell. */
static int attach(struct cli *c, const char *box, const struct opts *o, int ncmd, char **cmd)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct call k;
    struct bx_err err;
    struct sbuf path, key, want, extra;
    unsigned char rnd[16], dg[SHA1_LEN];
    unsigned rows, cols;
    const char *term = getenv("TERM");
    int rc = 0;

    bx_err_clear(&err);
    k.fd = -1;
    sbuf_init(&path, 1 << 20); /* bounded by ATTACH_PATH_MAX below */
    sbuf_init(&key, 64);
    sbuf_init(&want, 64);
    sbuf_init(&extra, 512);
    cli_term_size(&rows, &cols);
    /* The server takes 1..64 of [A-Za-z0-9.+_-]; anything else: its default. */
    if (term && (!*term || strlen(term) > 64 ||
                 strspn(term, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.+_-") !=
                     strlen(term)))
        term = NULL;
    if ((rc = cli_box_path(&path, box, "/attach")) != 0)
        goto out;
    if (sbuf_appendf(&path, "?cols=%u&rows=%u", cols, rows) < 0 ||
        (term && (sbuf_appendf(&path, "&term=") < 0 || qenc(&path, term) < 0)) ||
        attach_params(&path, o, ncmd, cmd) < 0 ||
        getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
        cli_b64_append(&key, rnd, sizeof(rnd)) < 0 || sbuf_append(&key, guid, strlen(guid)) < 0) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "cannot build the request");
        goto out;
    }
    if (path.len > ATTACH_PATH_MAX) {
        rc = cli_usage_err("exec -it: the command, env, workdir and user take over %d bytes "
                           "in the URL; use exec without -it for longer ones", ATTACH_PATH_MAX);
        goto out;
    }
    sha1(key.data, key.len, dg);
    key.len -= strlen(guid);
    key.data[key.len] = '\0';
    if (cli_b64_append(&want, dg, sizeof(dg)) < 0 ||
        sbuf_appendf(&extra, "Upgrade: websocket\r\nSec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n", key.data) < 0) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
        goto out;
    }
    k.fd = cli_connect(&c->t, &err);
    if (k.fd < 0 ||
        cli_send_head(k.fd, &c->t, "GET", path.data, NULL, CLI_UPGRADE, extra.data, &err) < 0) {
        rc = cli_fail_err(&err);
        goto out;
    }
    cli_resp_init(&k.r, cli_fd_read, &k.fd);
    if (cli_resp_head(&k.r, &err) < 0) {
        rc = cli_fail_err(&err);
        goto out;
    }
    if (k.r.status != 101) {
        rc = cli_fail_answer(&k);
        goto out;
    }
    if (strcmp(k.r.ws_accept, want.data) != 0) {
        rc = cli_fail(CLI_EXIT_BOXER, "BAD_ANSWER", "wrong Sec-WebSocket-Accept");
        goto out;
    }
    rc = cli_term_session(k.fd, &k.r);
out:
    bx_close(&k.fd);
    sbuf_free(&path);
    sbuf_free(&key);
    sbuf_free(&want);
    sbuf_free(&extra);
    return rc;
}

static int cmd_exec(struct cli *c, int argc, char **argv)
{
    static const int allowed[] = {O_TIMEOUT, 'e', O_STDIN, 'w', O_USER, 'i', 't', 0};
    struct opts o;
    struct sbuf body, in, path;
    struct json_writer w;
    int dd = split_dashdash(argc, argv), first, rc, ncmd;
    char **cmd;

    memset(&o, 0, sizeof(o));
    sbuf_init(&body, 64u << 20);
    sbuf_init(&in, 1);
    sbuf_init(&path, 4096);
    rc = cli_parse_opts(dd, argv, allowed, &o, &first);
    if (rc)
        goto out;
    if (first >= dd) {
        rc = cli_usage_err("exec: BOX expected");
        goto out;
    }
    cmd = dd < argc ? argv + dd + 1 : argv + first + 1;
    ncmd = dd < argc ? argc - dd - 1 : dd - first - 1;
    if ((dd < argc && dd - first != 1) || (ncmd <= 0 && !(o.tty && o.interactive))) {
        rc = cli_usage_err("exec: BOX -- CMD... expected");
        goto out;
    }
    if (o.interactive && !o.tty) {
        rc = cli_usage_err("exec: -i goes with -t (a terminal); for input without one, --stdin");
        goto out;
    }
    if (o.tty && o.interactive) {
        /* The /attach terminal: the command given, or the box's shell;
         * the terminal is the input, so no --stdin; no --timeout. */
        if (o.stdin_all || o.have_timeout) {
            rc = cli_usage_err("exec -it takes no --stdin or --timeout");
            goto out;
        }
        if ((rc = cli_discover(c, &o)) == 0)
            rc = attach(c, argv[first], &o, ncmd, cmd);
        goto out;
    }
    if ((rc = cli_discover(c, &o)) != 0 || (rc = cli_box_path(&path, argv[first], "/exec")) != 0)
        goto out;
    if (o.stdin_all && (rc = read_stdin_b64(&in)) != 0)
        goto out;
    json_w_init(&w, &body);
    json_w_obj_begin(&w);
    w_cmd(&w, ncmd, cmd);
    if (o.env.n)
        cli_w_env_obj(&w, &o.env);
    if (o.workdir)
        json_w_kv_cstr(&w, "workdir", o.workdir);
    if (o.have_timeout)
        json_w_kv_uint(&w, "timeout_ms", o.timeout_s * 1000);
    if (o.user)
        json_w_kv_cstr(&w, "user", o.user);
    if (o.tty) {
        /* -t alone: the command on a pty of the terminal's size, no input. */
        unsigned rows, cols;
        cli_term_size(&rows, &cols);
        json_w_key(&w, "tty");
        json_w_obj_begin(&w);
        json_w_kv_uint(&w, "rows", rows);
        json_w_kv_uint(&w, "cols", cols);
        json_w_obj_end(&w);
    }
    if (o.stdin_all)
        json_w_kv_cstr(&w, "stdin_b64", in.data);
    json_w_kv_bool(&w, "stream", 1);
    json_w_kv_cstr(&w, "encoding", "base64");
    json_w_obj_end(&w);
    if (w.failed) {
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "request too large");
        goto out;
    }
    rc = stream_call(c, path.data, &body, 0);
out:
    str_list_free(&o.env);
    str_list_free(&o.files);
    sbuf_free(&body);
    sbuf_free(&in);
    sbuf_free(&path);
    return rc;
}

/* ---- dispatch ---- */

/* The client's global options, which may also come before the subcommand. */
static int is_global(const char *a)
{
    return !strcmp(a, "--url") || !strncmp(a, "--url=", 6) || !strcmp(a, "--json");
}

int cli_is_client(const char *arg1)
{
    return arg1 && ((arg1[0] != '-' && strcmp(arg1, "serve") != 0) || is_global(arg1));
}

static int has_json(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            return 1;
    return 0;
}

/* `boxer --url U box ls` as `boxer box ls --url U`: the leading global
 * options move after the subcommand (and its sub-subcommand for box). */
static char **reorder(int argc, char **argv)
{
    char **v = calloc((size_t)argc + 1, sizeof(*v));
    int i = 0, n = 0, g;

    if (!v)
        return NULL;
    while (i < argc && is_global(argv[i]))
        i += !strcmp(argv[i], "--url") && i + 1 < argc ? 2 : 1;
    g = i;
    if (i < argc)
        v[n++] = argv[i++];
    if (n == 1 && !strcmp(v[0], "box") && i < argc)
        v[n++] = argv[i++];
    for (int j = 0; j < g; j++)
        v[n++] = argv[j];
    while (i < argc)
        v[n++] = argv[i++];
    return v;
}

static int cli_dispatch(int argc, char **argv);

int cli_main(int argc, char **argv)
{
    char **v;
    int rc;

    if (!is_global(argv[0]))
        return cli_dispatch(argc, argv);
    v = reorder(argc, argv);
    if (!v)
        return cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "out of memory");
    if (!v[0] || v[0][0] == '-')
        rc = cli_usage_err("a subcommand is expected after the options");
    else
        rc = cli_dispatch(argc, v);
    free(v);
    return rc;
}

static int cli_dispatch(int argc, char **argv)
{
    struct cli c;
    const char *sub = argv[0];
    int rc;

    memset(&c, 0, sizeof(c));
    /* A server that goes away mid-request is an error answer, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    c.json = has_json(argc, argv);
    if (!strcmp(sub, "box")) {
        if (argc < 2)
            return cli_usage_err("box: create|ls|info|exec|cp|stop|start|rm|gc expected");
        sub = argv[1];
        argc--;
        argv++;
        if (!strcmp(sub, "create"))
            rc = cli_cmd_box_create(&c, argc, argv);
        else if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
            rc = cli_cmd_box_ls(&c, argc, argv);
        else if (!strcmp(sub, "info") || !strcmp(sub, "stop") || !strcmp(sub, "start") ||
                 !strcmp(sub, "rm"))
            rc = cli_cmd_box_simple(&c, argc, argv, sub);
        else if (!strcmp(sub, "exec"))
            rc = cmd_exec(&c, argc, argv);
        else if (!strcmp(sub, "cp"))
            rc = cli_cmd_box_cp(&c, argc, argv);
        else if (!strcmp(sub, "gc"))
            rc = cli_cmd_box_gc(&c, argc, argv);
        else
            return cli_usage_err("box: unknown subcommand %.64s", sub);
    } else if (!strcmp(sub, "run")) {
        rc = cmd_run(&c, argc, argv);
    } else if (!strcmp(sub, "exec")) {
        rc = cmd_exec(&c, argc, argv);
    } else if (!strcmp(sub, "images")) {
        rc = cli_cmd_images(&c, argc, argv);
    } else if (!strcmp(sub, "health")) {
        rc = cli_cmd_health(&c, argc, argv);
    } else if (!strcmp(sub, "check-host")) {
        rc = check_host_main(argc, argv);
    } else if (!strcmp(sub, "help")) {
        cli_usage(stdout);
        return 0;
    } else {
        return cli_usage_err("unknown command %.64s", sub);
    }
    if (fflush(stdout) != 0 && rc == 0)
        rc = cli_fail(CLI_EXIT_BOXER, "CLIENT_ERROR", "writing output: %s", strerror(errno));
    return rc == CLI_HELP ? 0 : rc;
}
