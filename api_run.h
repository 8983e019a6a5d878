/* The /run API on the wire: parsing the request, encoding the answer.
 * Later APIs follow the same pattern (api_box.c for /v1/boxes). */
#ifndef BOXER_API_RUN_H
#define BOXER_API_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "run.h"

#define RUN_MAX_BODY (4u << 20)
#define RUN_MAX_ARGS 4096
#define RUN_MAX_ENV 1024
#define RUN_MAX_FILES 1024
#define RUN_MAX_STRING (256u << 10)

/* Parses and validates a POST /run body; limits absent, 0 or null take the
 * configured defaults; values above cfg->max_limits, and memory_mb or
 * pids_limit that alone exceed total_memory_mb or total_pids, are refused
 * (400). */
/* The most a /run body may hold: RUN_MAX_BODY plus room for a "stdin" of
 * stdin_limit_bytes as base64 or lightly escaped text (issue 14). */
uint64_t run_max_body(const struct config *cfg);
struct json_value;
/* "stdin" (text) or "stdin_b64" (strict base64) of a request object, for
 * /run and box execs: *data (malloc'd, NULL when neither is given) and
 * *len; 413 over limit bytes (decoded), 400 both given, not a string, bad
 * base64.  On error *data may be set: the caller frees it. */
int api_parse_stdin(const struct json_value *root, uint64_t limit, char **data, size_t *len,
                    struct bx_err *err);
int run_request_parse(const char *body, size_t len, const struct config *cfg,
                      struct run_request **out, struct bx_err *err);
/* A "user" value: "uid" or "uid:gid" (decimal; gid defaults to uid), each
 * below UINT32_MAX; 400 otherwise.  Shared by /v1/run, boxes and execs. */
int api_parse_user(const struct json_value *v, uint32_t *uid, uint32_t *gid, struct bx_err *err);
/* The same for the "request" part of a multipart /run (multipart 1):
 * "inputs" entries may then be {"part": true, "mode"} (elsewhere 400). */
int run_request_parse_ex(const char *body, size_t len, const struct config *cfg, int multipart,
                         struct run_request **out, struct bx_err *err);

/* Parses a POST /v1/run body (BoxRun's run: {"image", "cmd"} required,
 * "cpu", "memory_mb", "network", "env", "volumes", "timeout_ms",
 * "disk_size_gb") into the /run request it maps to: cpu -> cpu_cores,
 * memory_mb (both default to box_defaults, clamped to max_limits and
 * total_memory_mb), network true/"sandbox" -> sandbox, false/"none" ->
 * none (absent: box_defaults.network), env object -> "K=V", timeout_ms ->
 * the wall clock in ms (absent or 0: defaults.wall_clock_secs).
 * The command runs as root ("user": "uid[:gid]" to change it) with the box
 * capability set on a writable root bounded by v1_run_root_mb, half of
 * memory_mb and disk_size_gb (when given; else only checked against
 * max_disk_size_gb); volumes must be absent or empty (400: use a box).  Over a max_limits bound: 400 with sys_errno
 * ERANGE (RESOURCE_EXCEEDED), naming the field. */
int run_request_parse_boxrun(const char *body, size_t len, const struct config *cfg,
                             struct run_request **out, struct bx_err *err);

struct sbuf;
struct run_answer;

/* The /run answer of res, streamed (http_respond_stream) rather than built
 * whole.  Returns 0 with *out and the HTTP *status, -1 when out of memory,
 * -2 when the answer cannot be encoded (*out NULL on both). */
int run_answer_new(const struct run_result *res, struct run_answer **out, int *status);
/* The exact number of bytes run_answer_fill produces in all. */
uint64_t run_answer_len(const struct run_answer *ans);
/* Appends up to `want` more bytes of the answer to out; -1 when out of memory. */
int run_answer_fill(struct run_answer *ans, struct sbuf *out, size_t want);
void run_answer_free(struct run_answer **ans);
/* POST /v1/run's answer (BoxRun's RunResult) for a run that ran (not
 * RUN_ERROR): always 200 {"exit_code", "stdout", "stderr",
 * "error_message"}; extra adds ours (exec_id, wall_ms, timed_out and the
 * usage).  A timeout is exit_code 137 with an error_message, output over
 * output_limit_bytes exit_code null with one.  Same returns as
 * run_answer_new. */
int run_answer_new_boxrun(const struct run_result *res, int extra, struct run_answer **out);

#endif
