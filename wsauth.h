/* The web console's credentials on a WebSocket: a browser cannot set
 * Authorization on one, so the console offers its token as a subprotocol,
 * "boxer.bearer.<the token's bytes in lowercase hex>", beside "boxer", the
 * protocol the server then selects (as Kubernetes does with
 * base64url.bearer.authorization.k8s.io.<token>).  Pure: no I/O, no
 * allocation. */
#ifndef BOXER_WSAUTH_H
#define BOXER_WSAUTH_H

#include <stddef.h>

#define WSAUTH_TOKEN_MAX 512

struct wsauth {
    int offers_boxer; /* "boxer" is among the offered protocols */
    int has_token;    /* a well-formed boxer.bearer.<hex> was offered */
    size_t token_len;
    char token[WSAUTH_TOKEN_MAX];
};

/* Reads a Sec-WebSocket-Protocol value: comma-separated names with optional
 * spaces or tabs around them.  A bearer entry that is not even-length
 * lowercase-or-uppercase hex of 1..WSAUTH_TOKEN_MAX bytes is ignored; of
 * several, the first well-formed one counts.  Never fails. */
void wsauth_parse(const char *v, size_t len, struct wsauth *out);

#endif
