/* What http.c and http_send.c share; not for other modules. */
#ifndef BOXER_HTTP_INTERNAL_H
#define BOXER_HTTP_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "http.h"
#include "httpparse.h"
#include "util.h"

#define IN_MIN_CAP 4096
#define IN_BODY_CAP 65536
/* A request body is read in pieces of up to this size (the buffer is freed
 * whenever it is empty, so only a connection whose body is streaming in
 * holds it): a 1 GiB upload made 32,768 rounds of epoll_wait, recv, parse
 * and write with 32 KiB pieces. */
#define IN_BODY_READ (256u * 1024)
#define SWEEP_MS 250
#define DRAIN_MS 2000
#define DRAIN_MAX_BYTES (1u << 20)
#define PATH_CAP 8192
/* A request body must keep coming at this average rate (bytes/s) once
 * body_idle_timeout_ms has passed, so a client trickling a byte just before
 * each idle timeout cannot hold a connection (and its buffers) forever. */
#define MIN_BODY_RATE 1000
/* Freed connection memory is handed back to the kernel at most this often. */
#define TRIM_MS 1000
/* A streamed answer holds at most one piece of this size (a power of two,
 * so the buffer's capacity is exactly this). */
#define STREAM_PIECE 32768
#define STREAM_PIECE_MIN 4096
/* Per-address connection counts. */
#define PEER_BUCKETS 1024

struct peer {
    struct peer *next;
    unsigned char addr[16]; /* IPv6, or IPv4 mapped */
    size_t n;
};

enum conn_state { ST_HEAD, ST_BODY, ST_WAIT, ST_WRITE, ST_DRAIN, ST_UPGRADED };

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    int fd;
    enum conn_state state;
    uint32_t events;
    int in_process;
    int dead;
    int peer_eof; /* client half-closed after sending: answer, then close */
    int on_loopback; /* accepted on a loopback address */
    struct peer *peer;
    uint64_t seq; /* bumped per request, so a handler's synchronous answer is noticed */

    char *in;
    size_t in_len, in_cap;
    size_t scan_from;
    uint64_t deadline;

    /* current request */
    char method[16];
    char *path;     /* decoded, NUL-terminated */
    char *log_path; /* raw path for the log (validated printable ASCII) */
    int minor;
    int keep_alive;
    int is_head;
    uint64_t started_ms;
    int has_body;
    int chunked;
    uint64_t body_left; /* Content-Length bytes still expected */
    uint64_t body_seen;
    uint64_t body_started_ms;
    uint64_t max_body;
    int body_done;
    struct http_chunked ch;
    const struct http_body_ops *ops;
    void *ctx;
    int expect_continue;

    /* current answer */
    int responded;
    struct sbuf out;
    size_t out_off;
    int file_fd;
    uint64_t file_left;
    off_t file_off;
    int close_after;
    int status;
    uint64_t bytes_out;
    http_done_cb done_cb;
    void *done_arg;
    uint64_t drained;
    uint64_t write_started_ms;
    /* streamed answer */
    http_fill_cb fill;
    void *fill_arg;
    uint64_t stream_left; /* bytes fill still has to produce */
    size_t stream_held;   /* bytes of answer_bytes this connection holds */
    int stream_armed;     /* fill may be called (not inside http_respond_stream) */
    int stream_waiting;   /* waiting for answer_buffer_max room */
    uint64_t wait_since;
    /* chunked answer pushed by its producer (http_respond_chunked) */
    int chunk_mode;       /* 1 chunked, 2 raw (HTTP/1.0: ends with the close) */
    int chunk_armed;      /* drain may be called */
    int chunk_ended;
    int chunk_idle;       /* everything sent, the producer has nothing: no timeouts */
    uint64_t idle_since;
    http_drain_cb drain;
    void *drain_arg;
    /* taken over after 101 (http_upgrade.c) */
    const struct http_upgrade_ops *up_ops;
    void *up_arg;
    struct loop_task up_task;
    int up_paused;  /* the application stopped reading */
    int up_closing; /* http_upgraded_close: flush, then close */
    int up_started; /* the 101 was logged and leftover input handed over */
};

struct http_server {
    struct loop *loop;
    struct http_config cfg;
    http_handler handler;
    void *app;
    int listen_fd;
    int unix_fd;     /* listen_unix socket, -1 when none */
    char *unix_path; /* its path, unlinked at shutdown if still ours */
    dev_t unix_dev;
    ino_t unix_ino;
    int port;
    int accept_paused;
    int shutting_down;
    size_t nconns;
    struct http_conn *conns;
    uint64_t sweep_timer;
    size_t freed_since_trim;
    uint64_t last_trim_ms;
    size_t answer_bytes; /* held by streamed answers, at most cfg.answer_buffer_max */
    size_t stream_waiters;
    uint64_t wake_timer;
    struct peer *peers[PEER_BUCKETS];
};

/* http.c */
void conn_set_events(struct http_conn *c);
void request_reset(struct http_conn *c);
void abort_ctx(struct http_conn *c);
void log_request(struct http_conn *c, int status);
void conn_process(struct http_conn *c);
void conn_close(struct http_conn *c);
void stream_release(struct http_conn *c);
/* http_upgrade.c */
void upgraded_event(struct http_conn *c, uint32_t events);
uint32_t upgraded_events(const struct http_conn *c);
void upgraded_gone(struct http_conn *c);
int upgraded_stalled(const struct http_conn *c, uint64_t now);
/* http_send.c */
void try_write(struct http_conn *c);

void wake_waiters(struct loop *l, void *arg);

#endif
