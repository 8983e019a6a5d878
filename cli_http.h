/* A small blocking HTTP/1.1 client for the command-line client (cli.c):
 * one request per connection (Connection: close), over TCP or a Unix
 * socket.  The response side (status line, headers, Content-Length,
 * chunked or read-to-close bodies, NDJSON lines) reads through a callback,
 * so the fuzzer drives it from memory; every size it keeps is bounded,
 * whatever the server sends. */
#ifndef BOXER_CLI_HTTP_H
#define BOXER_CLI_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "util.h"

#define CLI_HEAD_MAX (64u << 10)      /* status line and headers */
#define CLI_CHUNK_LINE_MAX 1024       /* one chunk-size line */
#define CLI_TRAILER_MAX (8u << 10)    /* all trailer lines */

struct cli_target {
    int is_unix;
    char path[108];  /* unix: socket path */
    char host[256];  /* tcp: numeric address (IPv6 without brackets), a name
                      * already looked up (cli_hosts.h) */
    char hostport[300]; /* the Host header */
    unsigned port;
    char prefix[256]; /* base path, "" or "/x" (no trailing slash) */
    const char *token; /* Bearer token or NULL */
};

/* Parses "http://ADDR[:PORT][/prefix]" (ADDR numeric or "localhost") or
 * "unix:///path".  Status 400 on a bad URL. */
int cli_target_parse(struct cli_target *t, const char *url, struct bx_err *err);
/* The same, and a host name is looked up in the hosts file at hosts (NULL:
 * names refused); the Host header keeps the name. */
int cli_target_parse_hosts(struct cli_target *t, const char *url, const char *hosts,
                           struct bx_err *err);

/* Opens a connection (CLOEXEC, connect bounded by 10 s).  Returns the fd or
 * -1 (status 0: unreachable). */
int cli_connect(const struct cli_target *t, struct bx_err *err);

/* Sends the request head: "METHOD prefix+path HTTP/1.1", Host,
 * Authorization, Content-Type (when ctype), Content-Length (body_len), plus
 * extra (CRLF-terminated lines or NULL).  body_len CLI_UPGRADE: no body,
 * "Connection: Upgrade" instead of "close" (extra names the protocol). */
#define CLI_UPGRADE UINT64_MAX
int cli_send_head(int fd, const struct cli_target *t, const char *method, const char *path,
                  const char *ctype, uint64_t body_len, const char *extra, struct bx_err *err);

/* Standard base64 of p[0..n) appended to sb. */
int cli_b64_append(struct sbuf *sb, const unsigned char *p, size_t n);

typedef ssize_t (*cli_read_fn)(void *ctx, void *buf, size_t n);

enum cli_body_mode { CLI_BODY_LENGTH, CLI_BODY_CHUNKED, CLI_BODY_CLOSE };

struct cli_resp {
    cli_read_fn rd;
    void *ctx;
    unsigned char buf[16384];
    size_t pos, len;
    int eof;        /* the source returned 0 */
    int status;
    char ctype[128];
    char ws_accept[32]; /* Sec-WebSocket-Accept of a 101 */
    enum cli_body_mode mode;
    uint64_t remaining; /* LENGTH: body bytes left; CHUNKED: of this chunk */
    int chunk_state;    /* 0 size line next, 1 in data, 2 done */
    int done;           /* body complete */
};

/* Reads from an fd (retries EINTR). */
ssize_t cli_fd_read(void *ctx, void *buf, size_t n);

void cli_resp_init(struct cli_resp *r, cli_read_fn rd, void *ctx);
/* Reads the status line and headers (1xx answers skipped). */
int cli_resp_head(struct cli_resp *r, struct bx_err *err);
/* Up to n decoded body bytes; 0 at the end of the body; -1 on a framing error
 * or a body cut short. */
ssize_t cli_resp_read(struct cli_resp *r, void *buf, size_t n, struct bx_err *err);
/* The whole body into sb (its max bounds it: 413 when larger). */
int cli_resp_read_all(struct cli_resp *r, struct sbuf *sb, struct bx_err *err);
/* One line (without '\n', '\r' dropped) into sb, at most max bytes kept.  Returns
 * 1 with a line, 0 at the end of the body, -1 on error.  A longer line is
 * consumed whole, its first max bytes kept and *truncated set. */
int cli_resp_line(struct cli_resp *r, struct sbuf *sb, size_t max, int *truncated,
                  struct bx_err *err);

/* WebSocket frames of a server, read after a 101 through the same
 * buffer: one whole frame into payload (at most max bytes, else error
 * 1009-like), *opcode and *fin set.  Server frames must not be masked;
 * reserved bits, unknown opcodes and control frames over 125 bytes or
 * fragmented are errors.  1 a frame, 0 EOF before one, -1 error. */
int cli_ws_read_frame(struct cli_resp *r, int *opcode, int *fin, struct sbuf *payload,
                      size_t max, struct bx_err *err);
/* One masked client frame (FIN set). */
int cli_ws_send(int fd, int opcode, const void *data, size_t len, struct bx_err *err);

#endif
