/* A multipart/form-data POST /run (issue 17): large inputs without base64.
 *
 * The body's first part is named "request" and holds the /run JSON
 * (at most max_request_body_bytes, parsed when the part ends, so a bad
 * request fails before any file is spooled).  Every further part is a file:
 * its name is the path it is mounted at, read-only, with the rules of
 * "inputs" (store path rules, not output/, not twice, not also in files or
 * in inputs with content); its mode is 0644 unless the request's "inputs"
 * has {"<path>": {"part": true, "mode": N}}, and such an entry must get its
 * part.  A file part is streamed into the store's temp directory as it
 * arrives (store_upload: the free-disk floor and store_max_bytes apply),
 * at most upload_limit_bytes (413 beyond), then sealed; memory does not grow
 * with the file.  The spooled files belong to the run_request (its
 * oci_input.spool) and are removed with it, however the request ends.
 * Feed the body in pieces of any size. */
#ifndef BOXER_RUN_MULTIPART_H
#define BOXER_RUN_MULTIPART_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "run.h"

struct store;
struct runmp;

/* ct: the request's Content-Type value (the boundary comes from it). */
int runmp_new(struct runmp **out, const struct config *cfg, struct store *st, const char *ct,
              size_t ct_len, struct bx_err *err);
int runmp_feed(struct runmp *m, const char *data, size_t len, struct bx_err *err);
/* At the end of the body: the request with its spooled inputs (*out, the
 * caller's).  400 when the body was cut short, had no request part, or an
 * inputs entry with "part": true got no part. */
int runmp_finish(struct runmp *m, struct run_request **out, struct bx_err *err);
/* Frees m and whatever it still holds (spooled files included). */
void runmp_free(struct runmp **m);

#endif
