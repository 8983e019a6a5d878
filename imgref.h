/* Image references in Docker's grammar:
 *   [registry[:port]/]repo[/more]...[:tag][@sha256:<64 hex>]
 * "python:3.12-slim" -> registry "docker.io", repository
 * "library/python", tag "3.12-slim".  A first component is a registry when
 * it contains '.' or ':' or is "localhost".  Tag defaults to "latest" when
 * neither tag nor digest is given.  Repository components are lower-case
 * [a-z0-9] separated by '.', '_', '__' or runs of '-'; tags are
 * [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; registry hosts are DNS labels or an
 * IPv4 address, optional :port (1-65535), or a bracketed IPv6 address.
 * Anything else (upper case in repository, spaces, control characters,
 * leading '-', "..", empty components, over 255 bytes) is refused with 400
 * before any program is started, so a reference can never become an option
 * or a path for skopeo or umoci.
 */
#ifndef BOXER_IMGREF_H
#define BOXER_IMGREF_H

#include <stddef.h>

#include "err.h"

#define IMGREF_MAX 255

struct imgref {
    char registry[IMGREF_MAX + 1];   /* "docker.io", "127.0.0.1:5000" */
    char repository[IMGREF_MAX + 1]; /* "library/python" */
    char tag[IMGREF_MAX + 1];        /* "3.12-slim", or "" when only a digest */
    char digest[IMGREF_MAX + 1];     /* "sha256:<hex>" or "" */
};

int imgref_parse(const char *s, size_t len, struct imgref *out, struct bx_err *err);

/* Canonical full form: "docker.io/library/python:3.12-slim" (with
 * "@sha256:..." when a digest is present). */
int imgref_format(const struct imgref *r, char *out, size_t cap);

#endif
