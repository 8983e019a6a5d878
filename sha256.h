/* SHA-256 (FIPS 180-4), for naming files only: Boxer never verifies data
 * with it (skopeo verifies every blob against its digest). */
#ifndef BOXER_SHA256_H
#define BOXER_SHA256_H

#include <stddef.h>

#define SHA256_HEX_LEN 64

/* out: the digest of data[0..len) in lower-case hex, NUL-terminated. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

#endif
