/* `boxer exec -it`: a terminal session over the /attach WebSocket (see
 * README "Terminals").  The local terminal goes raw; its input goes out as
 * binary frames, its size as {"type":"resize"} text frames (on SIGWINCH);
 * the server's binary frames go to stdout, its {"type":"exit","code":N}
 * gives the exit status, and its close ends the session. */
#include "cli_term.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"

#define FRAME_MAX (1u << 20) /* one frame from the server */

static int winch_pipe[2] = {-1, -1};

static void on_winch(int sig)
{
    int saved = errno;
    char c = 1;
    (void)sig;
    /* A full pipe already says "resize pending". */
    if (write(winch_pipe[1], &c, 1) < 0) {
    }
    errno = saved;
}

void cli_term_size(unsigned *rows, unsigned *cols)
{
    struct winsize ws;
    *rows = 24;
    *cols = 80;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        *rows = ws.ws_row > 1000 ? 1000 : ws.ws_row;
        *cols = ws.ws_col > 1000 ? 1000 : ws.ws_col;
    }
}

static int send_resize(int fd, struct bx_err *err)
{
    char msg[96];
    unsigned rows, cols;
    cli_term_size(&rows, &cols);
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"resize\",\"cols\":%u,\"rows\":%u}", cols, rows);
    return cli_ws_send(fd, 1, msg, (size_t)n, err);
}

/* The server's text frame: the exit message sets *code. */
static void cli_term_on_text(const struct sbuf *p, int *code)
{
    static const struct json_limits lim = {4096, 8, 64};
    struct json_doc *doc = NULL;
    const struct json_value *v, *type, *c;
    if (!p->len || json_parse(p->data, p->len, &lim, &doc, NULL) < 0)
        return;
    v = json_doc_root(doc);
    type = json_get(v, "type");
    c = json_get(v, "code");
    if (type && type->type == JSON_STRING && !strcmp(type->u.str.s, "exit") && c &&
        c->type == JSON_NUMBER && c->u.num.is_int)
        *code = c->u.num.i >= 0 && c->u.num.i <= 255 ? (int)c->u.num.i : CLI_EXIT_BOXER;
    json_doc_free(&doc);
}

/* One frame from the server: 1 go on, 0 the session ended, -1 error. */
static int on_frame(int fd, struct cli_resp *r, struct sbuf *p, int *code, struct bx_err *err)
{
    int op, fin;
    int f = cli_ws_read_frame(r, &op, &fin, p, FRAME_MAX, err);
    if (f <= 0)
        return f;
    switch (op) {
    case 0:
    case 2:
        if (p->len && bx_write_all(1, p->data, p->len) < 0 && errno != EPIPE)
            return bx_err_sys(err, 500, "writing output");
        return 1;
    case 1:
        cli_term_on_text(p, code);
        return 1;
    case 9:
        return cli_ws_send(fd, 10, p->data, p->len, err) < 0 ? -1 : 1;
    case 8: {
        unsigned char bye[2] = {0x03, 0xe8}; /* 1000 */
        cli_ws_send(fd, 8, bye, 2, NULL);
        return 0;
    }
    default:
        return 1; /* pong */
    }
}

int cli_term_session(int fd, struct cli_resp *r)
{
    struct termios saved, raw;
    struct sigaction sa, old_sa;
    struct sbuf payload;
    struct bx_err err;
    int is_tty = isatty(0), code = -1, state = 0, in_open = 1; /* state: 1 ended, 2 failed */

    bx_err_clear(&err);
    sbuf_init(&payload, FRAME_MAX + 1);
    if (pipe2(winch_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "boxer: pipe: %s (CLIENT_ERROR)\n", strerror(errno));
        return CLI_EXIT_BOXER;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_winch;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGWINCH, &sa, &old_sa);
    if (is_tty && tcgetattr(0, &saved) == 0) {
        raw = saved;
        cfmakeraw(&raw);
        if (tcsetattr(0, TCSANOW, &raw) < 0) /* typed-ahead input kept */
            is_tty = 0;
    } else {
        is_tty = 0;
    }
    /* The size may have changed between the request and now. */
    if (send_resize(fd, &err) < 0) {
        state = 2;
        goto out;
    }
    while (state == 0) {
        struct pollfd pf[3] = {{.fd = fd, .events = POLLIN},
                               {.fd = in_open ? 0 : -1, .events = POLLIN},
                               {.fd = winch_pipe[0], .events = POLLIN}};
        /* Frames already buffered would not wake poll. */
        if (r->pos < r->len) {
            int f = on_frame(fd, r, &payload, &code, &err);
            if (f <= 0)
                state = f < 0 ? 2 : 1;
            continue;
        }
        if (poll(pf, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            bx_err_sys(&err, 500, "poll");
            state = 2;
            break;
        }
        if (pf[2].revents & POLLIN) {
            char drain[64];
            while (read(winch_pipe[0], drain, sizeof(drain)) > 0) {
            }
            if (send_resize(fd, &err) < 0) {
                state = 2;
                break;
            }
        }
        if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t n = read(0, buf, sizeof(buf));
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                in_open = 0;
            else if (n == 0)
                in_open = 0; /* nothing more to type; the output goes on */
            else if (n > 0 && cli_ws_send(fd, 2, buf, (size_t)n, &err) < 0) {
                state = 2;
                break;
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            int f = on_frame(fd, r, &payload, &code, &err);
            if (f <= 0)
                state = f < 0 ? 2 : 1;
        }
    }
out:
    if (is_tty)
        tcsetattr(0, TCSANOW, &saved);
    sigaction(SIGWINCH, &old_sa, NULL);
    close(winch_pipe[0]);
    close(winch_pipe[1]);
    winch_pipe[0] = winch_pipe[1] = -1;
    sbuf_free(&payload);
    if (state == 2) {
        if (code >= 0) /* the exit came; what failed after it does not matter */
            return code;
        fprintf(stderr, "boxer: %s (%s)\n", err.msg[0] ? err.msg : "terminal failed",
                err.status == 0 ? "UNREACHABLE" : "BAD_ANSWER");
        return CLI_EXIT_BOXER;
    }
    if (code < 0) {
        fprintf(stderr, "boxer: the terminal closed without an exit status (BAD_ANSWER)\n");
        return CLI_EXIT_BOXER;
    }
    return code;
}
