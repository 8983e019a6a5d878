/* Base64 decoding (RFC 4648 standard alphabet) for "stdin_b64".  Strict:
 * no whitespace, '=' padding optional but only at the end, the unused
 * bits of the last symbol must be zero (so each text has one meaning). */
#ifndef BOXER_B64DEC_H
#define BOXER_B64DEC_H

#include <stddef.h>

/* The most bytes len characters of base64 can decode to. */
size_t b64_decoded_max(size_t len);
/* Decodes in[0..len) into out (room for b64_decoded_max(len) bytes);
 * returns the byte count, or -1 when in is not valid base64. */
long b64_decode(const char *in, size_t len, unsigned char *out);

#endif
