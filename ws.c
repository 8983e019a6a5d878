/* WebSocket frames and handshake (RFC 6455); see ws.h.
 *
 * The decoder is a byte-driven state machine over one frame at a time: the
 * header (2 to 14 bytes) is collected in a fixed buffer, so a header split
 * anywhere costs nothing; the first two bytes are checked as soon as they
 * are in (reserved bits, opcode, mask bit, control frame rules, the order of
 * fragments), the length as soon as it is complete (against the limits,
 * before any payload is read).  Payload is unmasked in place; text is
 * checked for UTF-8 as it arrives (a bad byte fails at once, as RFC 6455
 * 8.1 allows) and held until the message ends; binary is passed through;
 * control payloads (at most 125 bytes) are held in the parser. */
#include "ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sha1.h"

enum ws_state { WS_HDR, WS_PAYLOAD, WS_DONE, WS_FAILED };

struct utf8 {
    unsigned need;         /* continuation bytes still expected */
    unsigned char lo, hi;  /* range of the next continuation byte */
};

struct ws_parser {
    struct ws_callbacks cb;
    void *ctx;
    struct ws_limits lim;
    enum ws_state state;
    int close_code;
    int cb_failed; /* a callback called ws_fail */

    unsigned char hdr[14];
    size_t hdr_len, hdr_need;

    /* current frame */
    int fin, opcode;
    uint64_t left; /* payload bytes still to come */
    unsigned char mask[4];
    size_t mask_off;

    /* current data message (opcode 0: none) */
    int msg_op;
    uint64_t msg_len;
    struct utf8 u8;
    struct sbuf text;

    unsigned char ctl[WS_CONTROL_MAX + 1];
    size_t ctl_len;
};

/* ---- UTF-8 ---- */

static int utf8_step(struct utf8 *u, unsigned char c)
{
    if (u->need == 0) {
        if (c < 0x80)
            return 0;
        u->lo = 0x80;
        u->hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            u->need = 1;
        } else if (c == 0xE0) {
            u->need = 2;
            u->lo = 0xA0; /* no overlongs */
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            u->need = 2;
        } else if (c == 0xED) {
            u->need = 2;
            u->hi = 0x9F; /* no surrogates */
        } else if (c == 0xF0) {
            u->need = 3;
            u->lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            u->need = 3;
        } else if (c == 0xF4) {
            u->need = 3;
            u->hi = 0x8F; /* at most U+10FFFF */
        } else {
            return -1;
        }
        return 0;
    }
    if (c < u->lo || c > u->hi)
        return -1;
    u->need--;
    u->lo = 0x80;
    u->hi = 0xBF;
    return 0;
}

static int utf8_feed(struct utf8 *u, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (utf8_step(u, s[i]) < 0)
            return -1;
    return 0;
}

int ws_utf8_valid(const char *s, size_t len)
{
    struct utf8 u = {0, 0x80, 0xBF};
    return utf8_feed(&u, (const unsigned char *)s, len) == 0 && u.need == 0;
}

/* ---- decoder ---- */

int ws_parser_new(struct ws_parser **out, const struct ws_limits *lim,
                  const struct ws_callbacks *cb, void *ctx, struct bx_err *err)
{
    struct ws_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    p->cb = *cb;
    p->ctx = ctx;
    p->lim = *lim;
    if (p->lim.max_text > p->lim.max_message)
        p->lim.max_text = (size_t)p->lim.max_message;
    p->state = WS_HDR;
    p->hdr_need = 2;
    sbuf_init(&p->text, p->lim.max_text + 1);
    *out = p;
    return 0;
}

void ws_parser_free(struct ws_parser **pp)
{
    struct ws_parser *p = *pp;
    if (!p)
        return;
    sbuf_free(&p->text);
    free(p);
    *pp = NULL;
}

int ws_close_code(const struct ws_parser *p)
{
    return p->close_code;
}

int ws_closed(const struct ws_parser *p)
{
    return p->state == WS_DONE;
}

void ws_fail(struct ws_parser *p, int code)
{
    p->close_code = code;
    p->cb_failed = 1;
}

static int ws_parse_fail(struct ws_parser *p, int code, struct bx_err *err, const char *why)
{
    p->state = WS_FAILED;
    p->close_code = code;
    return bx_err_set(err, BX_E_BAD_REQUEST, EPROTO, "websocket: %s", why);
}

static int cb_fail(struct ws_parser *p, struct bx_err *err)
{
    int code = p->cb_failed ? p->close_code : WS_CLOSE_INTERNAL;
    return ws_parse_fail(p, code, err, "the application refused a message");
}

static int is_control(int op)
{
    return op >= 0x8;
}

/* The first two header bytes: everything that can be refused before the
 * length is known. */
static int check_start(struct ws_parser *p, struct bx_err *err)
{
    unsigned char b0 = p->hdr[0], b1 = p->hdr[1];
    int op = b0 & 0x0F;
    size_t len7 = b1 & 0x7F;

    p->fin = (b0 & 0x80) != 0;
    p->opcode = op;
    if (b0 & 0x70)
        return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err,
                             "reserved bits set (no extension was agreed)");
    if (!(b1 & 0x80))
        return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "client frames must be masked");
    switch (op) {
    case WS_OP_CONT:
        if (!p->msg_op)
            return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "continuation frame without a message");
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (p->msg_op)
            return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "new message inside a fragmented one");
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!p->fin)
            return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "fragmented control frame");
        if (len7 > WS_CONTROL_MAX)
            return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "control frame over 125 bytes");
        break;
    default:
        return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "reserved opcode");
    }
    p->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return 0;
}

/* The whole header is in: length, limits, mask. */
static int start_payload(struct ws_parser *p, struct bx_err *err)
{
    size_t len7 = p->hdr[1] & 0x7F, off = 2;
    uint64_t len = len7;

    if (len7 == 126) {
        len = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
        off = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p->hdr[2 + i];
        off = 10;
        if (len >> 63)
            return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "frame length with the top bit set");
    }
    memcpy(p->mask, p->hdr + off, 4);
    p->mask_off = 0;
    p->left = len;
    if (!is_control(p->opcode)) {
        if (p->opcode != WS_OP_CONT) {
            p->msg_op = p->opcode;
            p->msg_len = 0;
            p->u8 = (struct utf8){0, 0x80, 0xBF};
            sbuf_reset(&p->text);
        }
        if (len > p->lim.max_message - p->msg_len)
            return ws_parse_fail(p, WS_CLOSE_TOO_BIG, err, "message over the size limit");
        p->msg_len += len;
        if (p->msg_op == WS_OP_TEXT && p->msg_len > p->lim.max_text)
            return ws_parse_fail(p, WS_CLOSE_TOO_BIG, err, "text message over the size limit");
    } else {
        p->ctl_len = 0;
    }
    p->state = WS_PAYLOAD;
    return 0;
}

static int valid_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* A control frame is complete. */
static int end_control(struct ws_parser *p, struct bx_err *err)
{
    const char *d = (const char *)p->ctl;
    p->ctl[p->ctl_len] = 0;
    if (p->opcode == WS_OP_PING)
        return p->cb.on_ping(p->ctx, d, p->ctl_len) < 0 ? cb_fail(p, err) : 0;
    if (p->opcode == WS_OP_PONG) {
        if (p->cb.on_pong && p->cb.on_pong(p->ctx, d, p->ctl_len) < 0)
            return cb_fail(p, err);
        return 0;
    }
    /* close */
    {
        unsigned code = WS_CLOSE_NO_STATUS;
        if (p->ctl_len == 1)
            return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "close frame with a 1-byte payload");
        if (p->ctl_len >= 2) {
            code = (unsigned)p->ctl[0] << 8 | p->ctl[1];
            if (!valid_close_code(code))
                return ws_parse_fail(p, WS_CLOSE_PROTOCOL, err, "invalid close code");
            if (!ws_utf8_valid(d + 2, p->ctl_len - 2))
                return ws_parse_fail(p, WS_CLOSE_INVALID_DATA, err, "close reason is not UTF-8");
        }
        p->state = WS_DONE;
        if (p->cb.on_close(p->ctx, (int)code, p->ctl_len >= 2 ? d + 2 : "",
                           p->ctl_len >= 2 ? p->ctl_len - 2 : 0) < 0)
            return cb_fail(p, err);
        return 0;
    }
}

/* A data frame is complete (binary pieces were already passed on). */
static int end_data(struct ws_parser *p, struct bx_err *err)
{
    if (!p->fin)
        return 0;
    if (p->msg_op == WS_OP_TEXT) {
        if (p->u8.need)
            return ws_parse_fail(p, WS_CLOSE_INVALID_DATA, err, "text message is not UTF-8");
        if (sbuf_putc(&p->text, 0) < 0)
            return ws_parse_fail(p, WS_CLOSE_INTERNAL, err, "out of memory");
        p->msg_op = 0;
        if (p->cb.on_text(p->ctx, p->text.data, p->text.len - 1) < 0)
            return cb_fail(p, err);
        sbuf_reset(&p->text);
        return 0;
    }
    p->msg_op = 0;
    return 0;
}

static int payload(struct ws_parser *p, char *data, size_t n, struct bx_err *err)
{
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(data[i] ^ p->mask[(p->mask_off + i) & 3]);
    p->mask_off = (p->mask_off + n) & 3;
    p->left -= n;
    if (is_control(p->opcode)) {
        memcpy(p->ctl + p->ctl_len, data, n);
        p->ctl_len += n;
        return 0;
    }
    if (p->msg_op == WS_OP_TEXT) {
        if (utf8_feed(&p->u8, (const unsigned char *)data, n) < 0)
            return ws_parse_fail(p, WS_CLOSE_INVALID_DATA, err, "text message is not UTF-8");
        if (sbuf_append(&p->text, data, n) < 0)
            return ws_parse_fail(p, WS_CLOSE_INTERNAL, err, "out of memory");
        return 0;
    }
    if (n > 0 || (p->left == 0 && p->fin)) {
        if (p->cb.on_binary(p->ctx, data, n, p->left == 0 && p->fin) < 0)
            return cb_fail(p, err);
    }
    return 0;
}

int ws_feed(struct ws_parser *p, char *data, size_t len, struct bx_err *err)
{
    size_t i = 0;
    if (p->state == WS_FAILED)
        return bx_err_set(err, BX_E_BAD_REQUEST, EPROTO, "websocket: connection failed");
    while (p->state != WS_DONE) {
        if (p->state == WS_HDR) {
            if (i == len)
                break;
            p->hdr[p->hdr_len++] = (unsigned char)data[i++];
            if (p->hdr_len == 2 && check_start(p, err) < 0)
                return -1;
            if (p->hdr_len < p->hdr_need)
                continue;
            if (start_payload(p, err) < 0)
                return -1;
            p->hdr_len = 0;
            p->hdr_need = 2;
        }
        if (p->state == WS_PAYLOAD) {
            size_t n = len - i;
            if (n > p->left)
                n = (size_t)p->left;
            if (n == 0 && p->left > 0)
                break;
            if (payload(p, data + i, n, err) < 0)
                return -1;
            i += n;
            if (p->left > 0)
                break;
            p->state = WS_HDR;
            if ((is_control(p->opcode) ? end_control(p, err) : end_data(p, err)) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- encoder ---- */

size_t ws_frame_header(unsigned char hdr[10], int opcode, uint64_t len)
{
    hdr[0] = (unsigned char)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        hdr[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

int ws_frame_append(struct sbuf *out, int opcode, const void *data, size_t len)
{
    unsigned char hdr[10];
    size_t h = ws_frame_header(hdr, opcode, len);
    size_t before = out->len;
    if (sbuf_append(out, hdr, h) < 0 || (len && sbuf_append(out, data, len) < 0)) {
        out->len = before;
        return -1;
    }
    return 0;
}

int ws_close_append(struct sbuf *out, int code, const char *reason)
{
    unsigned char pl[WS_CONTROL_MAX];
    size_t n = reason ? strlen(reason) : 0;
    if (n > WS_CONTROL_MAX - 2)
        n = WS_CONTROL_MAX - 2;
    /* never cut inside a character */
    while (n > 0 && !ws_utf8_valid(reason, n))
        n--;
    pl[0] = (unsigned char)(code >> 8);
    pl[1] = (unsigned char)code;
    if (n)
        memcpy(pl + 2, reason, n);
    return ws_frame_append(out, WS_OP_CLOSE, pl, n + 2);
}

/* ---- handshake ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void ws_accept_value(const char *key, size_t key_len, char accept[WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[256 + sizeof(guid)];
    unsigned char d[SHA1_LEN + 1] = {0};
    size_t o = 0;
    if (key_len > 256)
        key_len = 256;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, guid, sizeof(guid) - 1);
    sha1(buf, key_len + sizeof(guid) - 1, d);
    for (size_t i = 0; i < SHA1_LEN; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 |
                     (i + 2 < SHA1_LEN ? d[i + 2] : 0);
        accept[o++] = b64[v >> 18 & 63];
        accept[o++] = b64[v >> 12 & 63];
        accept[o++] = i + 1 < SHA1_LEN ? b64[v >> 6 & 63] : '=';
        accept[o++] = i + 2 < SHA1_LEN ? b64[v & 63] : '=';
    }
    accept[o] = 0;
}

/* 1 when the comma-separated list value holds token tok (case-insensitive). */
static int list_has(const char *v, size_t n, const char *tok)
{
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > s && e - s == strlen(tok)) {
            size_t k = 0;
            while (k < e - s && bx_ascii_lower((unsigned char)v[s + k]) == (unsigned char)tok[k])
                k++;
            if (k == e - s)
                return 1;
        }
    }
    return 0;
}

static int name_is(const struct http_header *h, const char *name)
{
    size_t n = strlen(name);
    if (h->name_len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (bx_ascii_lower((unsigned char)h->name[i]) != bx_ascii_lower((unsigned char)name[i]))
            return 0;
    return 1;
}

/* 16 bytes in base64: 22 characters and "==", the last character's unused
 * bits zero. */
static int key_ok(const char *k, size_t n)
{
    const char *p;
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!k[i] || !strchr(b64, k[i]))
            return 0;
    p = strchr(b64, k[21]);
    return ((p - b64) & 0x0F) == 0;
}

int ws_handshake_check(const struct http_request *req, char accept[WS_ACCEPT_LEN + 1],
                       struct bx_err *err)
{
    int upgrade = 0, connection = 0, nkey = 0, nversion = 0;
    const struct http_header *key = NULL, *version = NULL;

    for (size_t i = 0; i < req->num_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (name_is(h, "Upgrade") && list_has(h->value, h->value_len, "websocket"))
            upgrade = 1;
        else if (name_is(h, "Connection") && list_has(h->value, h->value_len, "upgrade"))
            connection = 1;
        else if (name_is(h, "Sec-WebSocket-Key")) {
            key = h;
            nkey++;
        } else if (name_is(h, "Sec-WebSocket-Version")) {
            version = h;
            nversion++;
        }
    }
    if (req->method != HTTP_GET)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "a WebSocket handshake must be a GET");
    if (!upgrade || !connection)
        return bx_err_set(err, 426, EINVAL,
                          "this route needs a WebSocket upgrade (Upgrade: websocket, "
                          "Connection: Upgrade)");
    if (req->minor_version < 1)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "a WebSocket handshake needs HTTP/1.1");
    if (req->chunked || (req->has_content_length && req->content_length > 0))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "a WebSocket handshake has no body");
    if (nversion != 1 || !bx_str_eq(version->value, version->value_len, "13"))
        return bx_err_set(err, 426, EINVAL, "Sec-WebSocket-Version must be 13");
    if (nkey != 1 || !key_ok(key->value, key->value_len))
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                          "Sec-WebSocket-Key must be 16 bytes in base64, given once");
    ws_accept_value(key->value, key->value_len, accept);
    return 0;
}
