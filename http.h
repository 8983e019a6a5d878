/* HTTP/1.1 server on the event loop: connections, keep-alive, pipelining,
 * request bodies (Content-Length or chunked, Expect: 100-continue), limits,
 * timeouts against slow clients, responses from memory or from a file
 * (sendfile), and a lingering close so error answers reach clients that are
 * still sending.
 *
 * Request life cycle, as the application sees it:
 *   1. handler(app, conn, req) is called once the head is complete.  `req`
 *      and the strings it points to are valid only during this call; copy
 *      what you need.  The decoded path is http_conn_path(conn).
 *   2. The handler either answers at once (http_respond*), or calls
 *      http_accept_body() to receive the body through `ops`.
 *   3. After ops->on_end, the handler answers whenever it is ready (later
 *      loop iterations are fine).
 *   ctx ownership ends with exactly one of: the handler answering after
 *   on_end, or ops->on_abort(ctx) called by this module (client gone,
 *   timeout, body too large, a callback returned an error, shutdown).  After
 *   on_abort, the handler must not touch the connection again.
 */
#ifndef BOXER_HTTP_H
#define BOXER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "httpparse.h"
#include "loop.h"
#include "util.h"

struct http_server;
struct http_conn;

struct http_config {
    const char *listen_addr; /* "host:port", ":port", "[v6]:port"; "" = no TCP */
    /* NULL or "" = none.  Created mode 0660; a stale socket file (nobody
     * answers) is replaced, a live one is an error; removed at shutdown.
     * Its peers count as loopback (http_conn_on_loopback). */
    const char *listen_unix;
    size_t max_request_line; /* 414 */
    size_t max_header_bytes; /* 431 */
    size_t max_headers;      /* 431 */
    uint32_t header_timeout_ms;
    uint32_t body_idle_timeout_ms;
    uint32_t keepalive_timeout_ms;
    /* An answer may stall this long; past it, it must average a minimum
     * rate (HTTP_MIN_SEND_RATE) or the connection is dropped. */
    uint32_t write_idle_timeout_ms;
    size_t max_connections;
    size_t max_connections_per_ip; /* more from one address are closed at once */
    size_t answer_buffer_max;      /* bytes held for all streamed answers together */
    /* Called once per answered request (for metrics); path is the raw
     * request path, status 499 when the client left first. */
    void (*observe)(void *app, const char *path, int status);
};

struct http_body_ops {
    int (*on_data)(void *ctx, const char *data, size_t len, struct bx_err *err);
    int (*on_end)(void *ctx, struct bx_err *err);
    void (*on_abort)(void *ctx);
};

typedef void (*http_handler)(void *app, struct http_conn *c, const struct http_request *req);
typedef void (*http_done_cb)(void *arg, int delivered);
/* Appends the next part of a streamed answer to out: at least 1 byte and
 * about `want` (at most want + 16); returns 0, or -1 to drop the
 * connection. */
typedef int (*http_fill_cb)(void *arg, struct sbuf *out, size_t want);

/* Streamed answers must average this many bytes/s once write_idle_timeout_ms
 * has passed. */
#define HTTP_MIN_SEND_RATE 4096

int http_server_new(struct http_server **out, struct loop *l, const struct http_config *cfg,
                    http_handler handler, void *app, struct bx_err *err);
/* Stops accepting, closes idle connections; busy ones close after their
 * current answer. */
void http_server_shutdown(struct http_server *s);
size_t http_server_conn_count(const struct http_server *s);
/* Connections aborted by the server itself (for the final teardown). */
void http_server_free(struct http_server **s);
/* The bound port (useful with listen_addr ":0"). */
int http_server_port(const struct http_server *s);

const char *http_conn_path(const struct http_conn *c);
const char *http_conn_method(const struct http_conn *c);

/* Starts receiving the body (sends 100 Continue when asked for).  A body
 * over max_body answers 413 and aborts. */
void http_accept_body(struct http_conn *c, uint64_t max_body, const struct http_body_ops *ops,
                      void *ctx);

/* Answers with a body from memory (copied).  extra_headers: NULL or
 * complete "Name: value\r\n" lines. */
void http_respond(struct http_conn *c, int status, const char *content_type,
                  const char *extra_headers, const void *body, size_t len);
/* Answers {"error": msg} with the given status. */
void http_respond_error(struct http_conn *c, int status, const char *msg);
/* Same with extra headers (e.g. "Retry-After: 1\r\n"). */
void http_respond_error_with_headers(struct http_conn *c, int status, const char *extra_headers,
                                     const char *msg);
/* Answers with a file: takes ownership of fd, sends size bytes by sendfile. */
void http_respond_file(struct http_conn *c, int status, const char *content_type, int fd,
                       uint64_t size);

/* Answers with a body of exactly body_len bytes produced piece by piece:
 * fill(arg, ...) is called each time the socket has taken the previous
 * piece, so one answer holds at most one piece in memory, and all streamed
 * answers together at most answer_buffer_max (an answer waits, without
 * timing out, while that budget is used up).  fill is never called
 * synchronously in here, and never after the done callback (http_on_done,
 * set before) ran: arg must live until then. */
void http_respond_stream(struct http_conn *c, int status, const char *content_type,
                         uint64_t body_len, http_fill_cb fill, void *arg);

/* An answer of unknown length pushed by its producer (issue 14): chunked
 * transfer encoding (HTTP/1.1), or for HTTP/1.0 the raw body ended by
 * closing the connection.  The producer writes with http_chunk_write at
 * most http_chunk_room bytes at a time; when the room is 0 (its previous
 * data is still being sent, or answer_buffer_max is used up), it waits for
 * drain(arg), called from the loop once the connection can take more.
 * drain is never called inside these calls.  http_chunk_end finishes the
 * answer (http_on_done then reports delivered=1); a client that goes away
 * or reads too slowly (HTTP_MIN_SEND_RATE, counted only while data is
 * waiting to be sent) ends it with delivered=0.  arg must live until the
 * done callback ran; after it, the producer must not touch c. */
typedef void (*http_drain_cb)(void *arg);
void http_respond_chunked(struct http_conn *c, int status, const char *content_type,
                          const char *extra_headers, http_drain_cb drain, void *arg);
/* Bytes the producer may write now (framing excluded); 0: wait for drain. */
size_t http_chunk_room(struct http_conn *c);
/* Queues len bytes (len may exceed the room by a little, e.g. a final
 * event; the hard cap is twice the room).  Returns 0, or -1 when the
 * answer is over or the data does not fit (nothing queued). */
int http_chunk_write(struct http_conn *c, const void *data, size_t len);
void http_chunk_end(struct http_conn *c);

/* 1 when the connection arrived on a loopback address (127.0.0.0/8, ::1) or
 * on the Unix socket. */
int http_conn_on_loopback(const struct http_conn *c);

/* Taking a connection over after "101 Switching Protocols" (WebSocket).
 * From then on bytes pass both ways unparsed.  The connection stays
 * counted (max_connections, max_connections_per_ip) and is closed at
 * shutdown, but leaves keep-alive and the request timeouts; the only limit
 * left is write_idle_timeout_ms for output that the client stops taking.
 * Callbacks never run inside the http_upgrade* call that caused them. */
struct http_upgrade_ops {
    /* Bytes from the client (the buffer may be modified).  -1 closes the
     * connection (on_close follows). */
    int (*on_data)(void *arg, char *data, size_t len);
    /* Everything queued was sent. */
    void (*on_drain)(void *arg);
    /* The connection is gone (client left, error, stalled, shutdown); not
     * called after http_upgraded_close.  Its last callback. */
    void (*on_close)(void *arg);
};

/* Answers 101 with extra_headers (complete "Name: value\r\n" lines) and
 * hands the connection to ops; bytes the client sent after the head reach
 * on_data first.  Only from a handler, before any other answer. */
void http_upgrade(struct http_conn *c, const char *extra_headers,
                  const struct http_upgrade_ops *ops, void *arg);
/* Queues bytes for the client; returns the bytes still queued (the caller
 * stops producing above its own mark and resumes on on_drain), or -1 when
 * the connection is closing or out of memory. */
long http_upgraded_send(struct http_conn *c, const void *data, size_t len);
/* Stops (1) or resumes (0) reading from the client. */
void http_upgraded_pause(struct http_conn *c, int paused);
/* Sends what is queued, then closes (lingering); the application is done
 * with c and no callback runs any more. */
void http_upgraded_close(struct http_conn *c);

/* Called once the current answer was fully written (delivered=1) or the
 * connection died first (delivered=0).  Set before answering. */
void http_on_done(struct http_conn *c, http_done_cb cb, void *arg);

#endif
