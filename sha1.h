/* SHA-1 (FIPS 180-4), only for the WebSocket handshake's
 * Sec-WebSocket-Accept (RFC 6455 fixes the hash): never for integrity. */
#ifndef BOXER_SHA1_H
#define BOXER_SHA1_H

#include <stddef.h>

#define SHA1_LEN 20

void sha1(const void *data, size_t len, unsigned char out[SHA1_LEN]);

#endif
