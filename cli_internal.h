/* What the command-line client's units share (cli.c: messages, requests,
 * options, run and exec; cli_box.c: the box, image and health subcommands,
 * uploads and downloads).  Not for other modules. */
#ifndef BOXER_CLI_INTERNAL_H
#define BOXER_CLI_INTERNAL_H

#include <stdint.h>

#include "cli_http.h"
#include "json.h"
#include "util.h"

#define ANSWER_MAX (16u << 20)     /* a JSON answer (box lists, infos) */
#define ERROR_BODY_MAX (64u << 10) /* an error answer's body */
#define LINE_MAX_BYTES (4u << 20)  /* one NDJSON event (a log event is far smaller) */
#define STDIN_MAX (10u << 20)      /* the server's default stdin_limit_bytes */

struct cli {
    struct cli_target t;
    int json;
};

/* One request in flight: the connection and its answer. */
struct call {
    int fd;
    struct cli_resp r;
};

/* Every option any subcommand takes; each subcommand lists the ones it
 * accepts (`allowed`), the others are usage errors. */
struct opts {
    const char *url, *network, *workdir, *name, *status, *user;
    double cpu;
    int have_cpu, stdin_all, force, interactive, tty;
    uint64_t memory_mb, timeout_s, disk_gb, older_than;
    int have_memory, have_timeout, have_disk, have_older;
    struct str_list env, files;
};

extern const struct json_limits cli_answer_limits;

enum {
    O_URL = 1000, O_JSON, O_CPU, O_MEMORY, O_TIMEOUT, O_NETWORK, O_FILE, O_STDIN, O_NAME,
    O_DISK, O_STATUS, O_OLDER, O_USER
};

/* parse_opts's answer for --help (printed): not an exit status, cli_main
 * turns it into 0. */
#define CLI_HELP 256

/* Messages: one line on stderr, "boxer: <message> (<CODE>)"; each returns
 * the exit status to leave with. */
int cli_fail(int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cli_fail_err(const struct bx_err *err);
int cli_usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An error answer's message and code (its body read, bounded); 125. */
int cli_fail_answer(struct call *k);

/* Requests. */
int cli_seg(struct sbuf *sb, const char *s);
int cli_box_path(struct sbuf *sb, const char *box, const char *tail);
int cli_call_begin(struct cli *c, struct call *k, const char *method, const char *path,
                   const char *ctype, const void *body, size_t len, struct bx_err *err);
void cli_call_end(struct call *k);
int cli_call_json(struct cli *c, const char *method, const char *path, const char *body,
                  struct json_doc **doc, struct sbuf *raw);
const char *cli_jstr(const struct json_value *o, const char *key);
int cli_jint(const struct json_value *o, const char *key, int64_t *out);
void cli_print_raw(const struct sbuf *raw);
void cli_w_env_obj(struct json_writer *w, const struct str_list *env);

/* Options and discovery. */
int cli_parse_opts(int end, char **argv, const int *allowed, struct opts *o, int *first);
int cli_discover(struct cli *c, const struct opts *o);

/* cli_box.c */
int cli_upload(struct cli *c, const char *path, const char *const *fields, const char *filename,
               int ffd, struct sbuf *raw);
int cli_open_local(const char *local, int *fd);
int cli_cmd_box_create(struct cli *c, int argc, char **argv);
int cli_cmd_box_ls(struct cli *c, int argc, char **argv);
int cli_cmd_box_simple(struct cli *c, int argc, char **argv, const char *what);
int cli_cmd_box_gc(struct cli *c, int argc, char **argv);
int cli_cmd_box_cp(struct cli *c, int argc, char **argv);
int cli_cmd_images(struct cli *c, int argc, char **argv);
int cli_cmd_health(struct cli *c, int argc, char **argv);

#endif
