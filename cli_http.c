/* The command-line client's HTTP/1.1: see cli_http.h. */
#include "cli_http.h"
#include "cli_hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 10000

int cli_target_parse(struct cli_target *t, const char *url, struct bx_err *err)
{
    return cli_target_parse_hosts(t, url, NULL, err);
}

int cli_target_parse_hosts(struct cli_target *t, const char *url, const char *hosts,
                           struct bx_err *err)
{
    const char *p, *slash, *hend;
    size_t hl;

    memset(t, 0, sizeof(*t));
    if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        if (p[0] != '/' || strlen(p) >= sizeof(t->path))
            return bx_err_set(err, 400, 0, "bad URL %.200s: unix:///absolute/path", url);
        t->is_unix = 1;
        snprintf(t->path, sizeof(t->path), "%s", p);
        snprintf(t->hostport, sizeof(t->hostport), "localhost");
        return 0;
    }
    if (strncmp(url, "http://", 7) != 0)
        return bx_err_set(err, 400, 0, "bad URL %.200s: http://ADDR:PORT or unix:///path", url);
    p = url + 7;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    if ((size_t)(slash - p) >= sizeof(t->hostport) || strlen(slash) >= sizeof(t->prefix))
        return bx_err_set(err, 400, 0, "bad URL %.200s: too long", url);
    memcpy(t->hostport, p, (size_t)(slash - p));
    snprintf(t->prefix, sizeof(t->prefix), "%s", slash);
    hl = strlen(t->prefix);
    while (hl > 0 && t->prefix[hl - 1] == '/')
        t->prefix[--hl] = '\0';
    t->port = 80;
    if (t->hostport[0] == '[') {
        hend = strchr(t->hostport, ']');
        if (!hend)
            return bx_err_set(err, 400, 0, "bad URL %.200s: unclosed [", url);
        memcpy(t->host, t->hostport + 1, (size_t)(hend - t->hostport - 1));
        p = hend + 1;
    } else {
        hend = strchr(t->hostport, ':');
        hl = hend ? (size_t)(hend - t->hostport) : strlen(t->hostport);
        memcpy(t->host, t->hostport, hl);
        p = t->hostport + hl;
    }
    if (*p == ':') {
        uint64_t v;
        if (bx_parse_u64(p + 1, strlen(p + 1), 65535, &v) < 0 || v == 0)
            return bx_err_set(err, 400, 0, "bad URL %.200s: bad port", url);
        t->port = (unsigned)v;
    } else if (*p) {
        return bx_err_set(err, 400, 0, "bad URL %.200s", url);
    }
    /* No NSS in the static binary: addresses, localhost, and names from
     * the hosts file (cli_hosts.h), nothing else. */
    if (strcmp(t->host, "localhost") == 0)
        snprintf(t->host, sizeof(t->host), "127.0.0.1");
    {
        struct in6_addr a6;
        struct in_addr a4;
        char addr[64];
        int r;
        if (inet_pton(AF_INET, t->host, &a4) == 1 || inet_pton(AF_INET6, t->host, &a6) == 1)
            return 0;
        if (!hosts || !cli_hosts_name_ok(t->host))
            return bx_err_set(err, 400, 0,
                              "bad URL %.200s: the host must be an IP address, localhost or a "
                              "name in %s", url, CLI_HOSTS_PATH);
        r = cli_hosts_file_lookup(hosts, t->host, addr, sizeof(addr), err);
        if (r < 0)
            return bx_err_wrap(err, "bad URL %.200s: cannot look %.64s up", url, t->host);
        if (r == 0)
            return bx_err_set(err, 400, 0,
                              "host %.64s is not in %s and this client resolves no other names: "
                              "use an IP address", t->host, hosts);
        snprintf(t->host, sizeof(t->host), "%s", addr);
    }
    return 0;
}

int cli_connect(const struct cli_target *t, struct bx_err *err)
{
    union {
        struct sockaddr sa;
        struct sockaddr_un un;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } sa;
    socklen_t sl;
    int fd, fam;

    memset(&sa, 0, sizeof(sa));
    if (t->is_unix) {
        fam = AF_UNIX;
        sa.un.sun_family = AF_UNIX;
        memcpy(sa.un.sun_path, t->path, strlen(t->path));
        sl = sizeof(sa.un);
    } else if (inet_pton(AF_INET, t->host, &sa.in4.sin_addr) == 1) {
        fam = AF_INET;
        sa.in4.sin_family = AF_INET;
        sa.in4.sin_port = htons((uint16_t)t->port);
        sl = sizeof(sa.in4);
    } else {
        fam = AF_INET6;
        sa.in6.sin6_family = AF_INET6;
        sa.in6.sin6_port = htons((uint16_t)t->port);
        if (inet_pton(AF_INET6, t->host, &sa.in6.sin6_addr) != 1)
            return bx_err_set(err, 0, 0, "bad address %s", t->host);
        sl = sizeof(sa.in6);
    }
    fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return bx_err_sys(err, 0, "socket");
    if (connect(fd, &sa.sa, sl) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN)
            goto fail;
        for (;;) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int pr = poll(&pf, 1, CONNECT_TIMEOUT_MS), soerr = 0;
            socklen_t el = sizeof(soerr);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr < 0)
                goto fail;
            if (pr == 0) {
                errno = ETIMEDOUT;
                goto fail;
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el) < 0)
                goto fail;
            if (soerr) {
                errno = soerr;
                goto fail;
            }
            break;
        }
    }
    /* Blocking from here on: the client does one thing at a time. */
    if (fcntl(fd, F_SETFL, 0) < 0)
        goto fail;
    return fd;
fail:
    bx_err_sys(err, 0, "cannot connect to %s%s", t->is_unix ? "unix://" : "http://",
               t->is_unix ? t->path : t->hostport);
    close(fd);
    return -1;
}

int cli_send_head(int fd, const struct cli_target *t, const char *method, const char *path,
                  const char *ctype, uint64_t body_len, const char *extra, struct bx_err *err)
{
    struct sbuf sb;
    int rc = -1;

    sbuf_init(&sb, 64u << 10);
    if (sbuf_appendf(&sb, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: boxer-cli/%s\r\n",
                     method, t->prefix, path, t->hostport, BOXER_VERSION) < 0 ||
        (body_len == CLI_UPGRADE && sbuf_appendf(&sb, "Connection: Upgrade\r\n") < 0) ||
        (body_len != CLI_UPGRADE &&
         sbuf_appendf(&sb, "Connection: close\r\nContent-Length: %llu\r\n",
                      (unsigned long long)body_len) < 0) ||
        (t->token && sbuf_appendf(&sb, "Authorization: Bearer %s\r\n", t->token) < 0) ||
        (ctype && sbuf_appendf(&sb, "Content-Type: %s\r\n", ctype) < 0) ||
        (extra && sbuf_appendf(&sb, "%s", extra) < 0) || sbuf_append(&sb, "\r\n", 2) < 0) {
        bx_err_set(err, 400, 0, "request head too long");
        goto out;
    }
    if (bx_write_all(fd, sb.data, sb.len) < 0) {
        bx_err_sys(err, 0, "sending the request");
        goto out;
    }
    rc = 0;
out:
    sbuf_free(&sb);
    return rc;
}

ssize_t cli_fd_read(void *ctx, void *buf, size_t n)
{
    int fd = *(int *)ctx;
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

void cli_resp_init(struct cli_resp *r, cli_read_fn rd, void *ctx)
{
    memset(r, 0, sizeof(*r));
    r->rd = rd;
    r->ctx = ctx;
}

/* Refills the buffer when empty: 1 data available, 0 EOF, -1 error. */
static int resp_fill(struct cli_resp *r, struct bx_err *err)
{
    ssize_t n;

    if (r->pos < r->len)
        return 1;
    if (r->eof)
        return 0;
    n = r->rd(r->ctx, r->buf, sizeof(r->buf));
    if (n < 0)
        return bx_err_sys(err, 502, "reading the answer");
    r->pos = 0;
    r->len = (size_t)n;
    if (n == 0) {
        r->eof = 1;
        return 0;
    }
    return 1;
}

/* One raw line (before body decoding), CRLF or LF ended, at most max bytes;
 * 1 line, 0 EOF before any byte, -1 error. */
static int raw_line(struct cli_resp *r, char *out, size_t max, size_t *outlen, struct bx_err *err)
{
    size_t n = 0;

    for (;;) {
        int f = resp_fill(r, err);
        if (f < 0)
            return -1;
        if (f == 0) {
            if (n == 0)
                return 0;
            return bx_err_set(err, 502, 0, "answer cut short");
        }
        while (r->pos < r->len) {
            unsigned char c = r->buf[r->pos++];
            if (c == '\n') {
                if (n > 0 && out[n - 1] == '\r')
                    n--;
                out[n] = '\0';
                *outlen = n;
                return 1;
            }
            if (n + 1 >= max)
                return bx_err_set(err, 502, 0, "answer line too long");
            out[n++] = (char)c;
        }
    }
}

static int ieq_prefix(const char *s, const char *lit)
{
    for (; *lit; s++, lit++)
        if (bx_ascii_lower((unsigned char)*s) != (unsigned char)*lit)
            return 0;
    return 1;
}

int cli_resp_head(struct cli_resp *r, struct bx_err *err)
{
    char line[8192];
    size_t ll, total;
    int have_len, chunked;

    for (;;) {
        total = 0;
        have_len = chunked = 0;
        r->ctype[0] = '\0';
        r->ws_accept[0] = '\0';
        int lr = raw_line(r, line, sizeof(line), &ll, err);
        if (lr <= 0)
            return lr < 0 ? -1 : bx_err_set(err, 502, 0, "the server closed without answering");
        total += ll;
        if (ll < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' || line[12] > ' ' ||
            line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' || line[11] < '0' ||
            line[11] > '9')
            return bx_err_set(err, 502, 0, "not an HTTP answer");
        r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        for (;;) {
            lr = raw_line(r, line, sizeof(line), &ll, err);
            if (lr <= 0)
                return lr < 0 ? -1 : bx_err_set(err, 502, 0, "answer cut short");
            total += ll + 2;
            if (total > CLI_HEAD_MAX)
                return bx_err_set(err, 502, 0, "answer head too large");
            if (ll == 0)
                break;
            char *colon = strchr(line, ':');
            if (!colon)
                return bx_err_set(err, 502, 0, "bad header line");
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strlen(v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                v[--vl] = '\0';
            size_t nl = (size_t)(colon - line);
            if (nl == 14 && ieq_prefix(line, "content-length")) {
                uint64_t cl;
                if (bx_parse_u64(v, vl, UINT64_MAX / 2, &cl) < 0 || (have_len && cl != r->remaining))
                    return bx_err_set(err, 502, 0, "bad Content-Length");
                r->remaining = cl;
                have_len = 1;
            } else if (nl == 17 && ieq_prefix(line, "transfer-encoding")) {
                if (vl != 7 || !ieq_prefix(v, "chunked"))
                    return bx_err_set(err, 502, 0, "unsupported Transfer-Encoding");
                chunked = 1;
            } else if (nl == 12 && ieq_prefix(line, "content-type")) {
                snprintf(r->ctype, sizeof(r->ctype), "%s", v);
            } else if (nl == 20 && ieq_prefix(line, "sec-websocket-accept")) {
                snprintf(r->ws_accept, sizeof(r->ws_accept), "%s", v);
            }
        }
        if (r->status >= 200 || r->status == 101) /* 101: the other protocol follows */
            break;
    }
    r->chunk_state = 0;
    r->done = 0;
    if (chunked) {
        r->mode = CLI_BODY_CHUNKED;
        r->remaining = 0;
    } else if (have_len) {
        r->mode = CLI_BODY_LENGTH;
        r->done = r->remaining == 0;
    } else {
        r->mode = CLI_BODY_CLOSE;
    }
    if (r->status == 101 || r->status == 204 || r->status == 304) {
        r->done = 1;
    }
    return 0;
}

/* The next chunk's size line (and, for the last chunk, the trailers). */
static int chunk_header(struct cli_resp *r, struct bx_err *err)
{
    char line[CLI_CHUNK_LINE_MAX];
    size_t ll, i, total = 0;
    uint64_t v = 0;

    int lr = raw_line(r, line, sizeof(line), &ll, err);
    if (lr <= 0)
        return lr < 0 ? -1 : bx_err_set(err, 502, 0, "answer cut short");
    for (i = 0; i < ll; i++) {
        char c = line[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            break;
        if (v > (UINT64_MAX >> 8))
            return bx_err_set(err, 502, 0, "chunk too large");
        v = v * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < ll && line[i] != ';' && line[i] != ' ' && line[i] != '\t'))
        return bx_err_set(err, 502, 0, "bad chunk size");
    if (v > 0) {
        r->remaining = v;
        r->chunk_state = 1;
        return 0;
    }
    for (;;) { /* trailers up to the empty line */
        lr = raw_line(r, line, sizeof(line), &ll, err);
        if (lr <= 0)
            return lr < 0 ? -1 : bx_err_set(err, 502, 0, "answer cut short");
        total += ll + 2;
        if (total > CLI_TRAILER_MAX)
            return bx_err_set(err, 502, 0, "trailers too large");
        if (ll == 0)
            break;
    }
    r->chunk_state = 2;
    r->done = 1;
    return 0;
}

ssize_t cli_resp_read(struct cli_resp *r, void *buf, size_t n, struct bx_err *err)
{
    for (;;) {
        if (r->done || n == 0)
            return 0;
        if (r->mode == CLI_BODY_CHUNKED && r->chunk_state == 0) {
            if (chunk_header(r, err) < 0)
                return -1;
            continue;
        }
        int f = resp_fill(r, err);
        if (f < 0)
            return -1;
        if (f == 0) {
            if (r->mode == CLI_BODY_CLOSE) {
                r->done = 1;
                return 0;
            }
            return bx_err_set(err, 502, 0, "answer cut short");
        }
        size_t take = r->len - r->pos;
        if (take > n)
            take = n;
        if (r->mode != CLI_BODY_CLOSE && take > r->remaining)
            take = (size_t)r->remaining;
        memcpy(buf, r->buf + r->pos, take);
        r->pos += take;
        if (r->mode != CLI_BODY_CLOSE) {
            r->remaining -= take;
            if (r->remaining == 0) {
                if (r->mode == CLI_BODY_LENGTH) {
                    r->done = 1;
                } else {
                    char crlf[4];
                    size_t ll;
                    /* The CRLF after the chunk's data. */
                    int lr = raw_line(r, crlf, sizeof(crlf), &ll, err);
                    if (lr <= 0 || ll != 0)
                        return lr < 0 ? -1 : bx_err_set(err, 502, 0, "bad chunk end");
                    r->chunk_state = 0;
                }
            }
        }
        return (ssize_t)take;
    }
}

int cli_resp_read_all(struct cli_resp *r, struct sbuf *sb, struct bx_err *err)
{
    char tmp[8192];
    for (;;) {
        ssize_t n = cli_resp_read(r, tmp, sizeof(tmp), err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (sbuf_append(sb, tmp, (size_t)n) < 0)
            return bx_err_set(err, 413, 0, "answer larger than %zu bytes", sb->max);
    }
}

int cli_resp_line(struct cli_resp *r, struct sbuf *sb, size_t max, int *truncated,
                  struct bx_err *err)
{
    int any = 0;

    sbuf_reset(sb);
    *truncated = 0;
    for (;;) {
        unsigned char c;
        ssize_t n = cli_resp_read(r, &c, 1, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return any ? 1 : 0; /* a last line without its newline */
        any = 1;
        if (c == '\n') {
            if (sb->len > 0 && sb->data[sb->len - 1] == '\r')
                sb->data[--sb->len] = '\0';
            return 1;
        }
        if (sb->len >= max) {
            *truncated = 1;
            continue;
        }
        if (sbuf_putc(sb, (char)c) < 0)
            return bx_err_set(err, 500, ENOMEM, "out of memory");
    }
}

int cli_b64_append(struct sbuf *sb, const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {t[v >> 18], t[(v >> 12) & 63], i + 1 < n ? t[(v >> 6) & 63] : '=',
                     i + 2 < n ? t[v & 63] : '='};
        if (sbuf_append(sb, q, 4) < 0)
            return -1;
    }
    return 0;
}

/* Exactly n raw bytes from the connection (after the head). */
static int raw_bytes(struct cli_resp *r, unsigned char *out, size_t n, struct bx_err *err)
{
    while (n > 0) {
        int f = resp_fill(r, err);
        if (f <= 0)
            return f < 0 ? -1 : bx_err_set(err, 502, 0, "connection closed inside a frame");
        size_t k = r->len - r->pos;
        if (k > n)
            k = n;
        memcpy(out, r->buf + r->pos, k);
        r->pos += k;
        out += k;
        n -= k;
    }
    return 0;
}

int cli_ws_read_frame(struct cli_resp *r, int *opcode, int *fin, struct sbuf *payload,
                      size_t max, struct bx_err *err)
{
    unsigned char h[8];
    uint64_t len;
    int f;

    sbuf_reset(payload);
    f = resp_fill(r, err);
    if (f <= 0)
        return f;
    if (raw_bytes(r, h, 2, err) < 0)
        return -1;
    if (h[0] & 0x70)
        return bx_err_set(err, 502, 0, "frame with reserved bits");
    if (h[1] & 0x80)
        return bx_err_set(err, 502, 0, "masked frame from the server");
    *fin = !!(h[0] & 0x80);
    *opcode = h[0] & 0x0f;
    if (*opcode != 0 && *opcode != 1 && *opcode != 2 && *opcode != 8 && *opcode != 9 &&
        *opcode != 10)
        return bx_err_set(err, 502, 0, "unknown frame opcode %d", *opcode);
    len = h[1] & 0x7f;
    if (len == 126) {
        if (raw_bytes(r, h, 2, err) < 0)
            return -1;
        len = (uint64_t)h[0] << 8 | h[1];
    } else if (len == 127) {
        if (raw_bytes(r, h, 8, err) < 0)
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[i];
    }
    if (*opcode >= 8 && (len > 125 || !*fin))
        return bx_err_set(err, 502, 0, "bad control frame");
    if (len > max)
        return bx_err_set(err, 502, 0, "frame over %zu bytes", max);
    while (len > 0) {
        unsigned char tmp[4096];
        size_t k = len > sizeof(tmp) ? sizeof(tmp) : (size_t)len;
        if (raw_bytes(r, tmp, k, err) < 0)
            return -1;
        if (sbuf_append(payload, tmp, k) < 0)
            return bx_err_set(err, 500, ENOMEM, "out of memory");
        len -= k;
    }
    return 1;
}

int cli_ws_send(int fd, int opcode, const void *data, size_t len, struct bx_err *err)
{
    unsigned char h[14], mask[4], buf[4096];
    const unsigned char *p = data;
    size_t hl = 0, off = 0;

    if (getrandom(mask, sizeof(mask), 0) != (ssize_t)sizeof(mask))
        return bx_err_sys(err, 500, "getrandom");
    h[hl++] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(h + hl, mask, 4);
    hl += 4;
    if (bx_write_all(fd, h, hl) < 0)
        return bx_err_sys(err, 0, "sending a frame");
    while (off < len) {
        size_t k = len - off > sizeof(buf) ? sizeof(buf) : len - off;
        for (size_t i = 0; i < k; i++)
            buf[i] = p[off + i] ^ mask[(off + i) & 3];
        if (bx_write_all(fd, buf, k) < 0)
            return bx_err_sys(err, 0, "sending a frame");
        off += k;
    }
    return 0;
}
