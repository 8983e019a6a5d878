/* WebSocket (RFC 6455), server side: the opening handshake check, an
 * incremental decoder of client frames and an encoder of server frames.
 * No extensions, no subprotocols.
 *
 * The decoder takes the bytes received so far in pieces of any size (one
 * byte at a time works) and never holds more than a control frame (125
 * bytes) and one text message (max_text) of its own; binary payload is
 * unmasked in place in the caller's buffer and handed out as it arrives.
 * Client frames must be masked.  On a protocol violation ws_feed returns -1
 * and ws_close_code() says which close code to send: 1002 (protocol: no
 * mask, reserved bits or opcodes, bad fragmentation, a control frame over
 * 125 bytes or fragmented, a bad close payload), 1007 (text or close reason
 * not UTF-8), 1009 (a frame or message over the limits).  After a close
 * frame from the client the rest of the input is ignored. */
#ifndef BOXER_WS_H
#define BOXER_WS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "httpparse.h"
#include "util.h"

#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_NO_STATUS 1005 /* never sent: a close frame without code */
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

#define WS_CONTROL_MAX 125
#define WS_ACCEPT_LEN 28

/* Callbacks return 0, or -1 to stop (ws_feed then returns -1 with close
 * code 1011 unless the callback called ws_fail first). */
struct ws_callbacks {
    /* Binary message payload as it arrives; fin on the last piece (len may
     * be 0 then). */
    int (*on_binary)(void *ctx, const char *data, size_t len, int fin);
    /* A whole text message, valid UTF-8, NUL-terminated at data[len]. */
    int (*on_text)(void *ctx, const char *data, size_t len);
    int (*on_ping)(void *ctx, const char *data, size_t len);
    int (*on_pong)(void *ctx, const char *data, size_t len); /* may be NULL */
    /* code WS_CLOSE_NO_STATUS when the frame had no payload; the reason is
     * valid UTF-8.  Nothing more is decoded after it. */
    int (*on_close)(void *ctx, int code, const char *reason, size_t len);
};

struct ws_limits {
    uint64_t max_message; /* payload bytes of one message (all its frames) */
    size_t max_text;      /* a text message is held whole: at most this */
};

struct ws_parser;

int ws_parser_new(struct ws_parser **out, const struct ws_limits *lim,
                  const struct ws_callbacks *cb, void *ctx, struct bx_err *err);
void ws_parser_free(struct ws_parser **p);
/* Decodes data[0..len) (unmasked in place).  0, or -1 on a violation (err
 * says why, ws_close_code which close code). */
int ws_feed(struct ws_parser *p, char *data, size_t len, struct bx_err *err);
int ws_close_code(const struct ws_parser *p);
/* Called from a callback: the feed fails with this close code. */
void ws_fail(struct ws_parser *p, int code);
/* 1 once a close frame was decoded. */
int ws_closed(const struct ws_parser *p);

/* Server frames (FIN set, unmasked).  ws_frame_header writes the header of
 * a frame of len payload bytes into hdr and returns its length (2..10). */
size_t ws_frame_header(unsigned char hdr[10], int opcode, uint64_t len);
int ws_frame_append(struct sbuf *out, int opcode, const void *data, size_t len);
/* A close frame with code and reason (cut at a character boundary to fit
 * 125 bytes). */
int ws_close_append(struct sbuf *out, int code, const char *reason);

/* 1 when s[0..len) is valid UTF-8 (no overlongs, surrogates or code points
 * over U+10FFFF). */
int ws_utf8_valid(const char *s, size_t len);

/* The opening handshake: GET, HTTP/1.1, Upgrade naming websocket,
 * Connection naming Upgrade, Sec-WebSocket-Version 13, a
 * Sec-WebSocket-Key of 16 bytes in base64, no body.  Fills accept (the
 * Sec-WebSocket-Accept value, NUL-terminated).  Fails with err status 400
 * (malformed) or 426 (not an upgrade to websocket, or another version:
 * answer with "Sec-WebSocket-Version: 13"). */
int ws_handshake_check(const struct http_request *req, char accept[WS_ACCEPT_LEN + 1],
                       struct bx_err *err);
/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)). */
void ws_accept_value(const char *key, size_t key_len, char accept[WS_ACCEPT_LEN + 1]);

#endif
