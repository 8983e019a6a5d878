/* The one error contract of Boxer.
 *
 * Every fallible function returns a negative value (normally -1) on failure
 * and fills the `struct bx_err` its caller passed in.  The error carries:
 *   - status: the HTTP status the failure would map to if it reached a client
 *             (400 for bad input, 404 absent, 413 too large, 500 internal...);
 *             modules pick it where the failure happens because only they
 *             know whether it was the client's fault;
 *   - sys_errno: the errno that caused it, or 0;
 *   - msg: a human readable message, safe to show to the client (never
 *          contains secrets; may contain client-supplied names, escaped by the
 *          JSON writer when sent).
 * Context is added as the error travels up with bx_err_wrap(), which prefixes
 * "context: " to the message.  Exactly one function, bx_err_http_status(),
 * turns an error into an HTTP status (boxer.c and http.c answer with it).
 * Nothing calls exit() after start-up.
 *
 * A NULL `err` is allowed everywhere and means "caller does not care".
 */
#ifndef BOXER_ERR_H
#define BOXER_ERR_H

#include <stddef.h>

#define BX_ERR_MSG_MAX 512

/* The statuses an error may carry, named so code that is not about HTTP
 * still says what kind of failure it reports. */
enum {
    BX_E_BAD_REQUEST = 400,
    BX_E_UNAUTHORIZED = 401,
    BX_E_FORBIDDEN = 403,
    BX_E_NOT_FOUND = 404,
    BX_E_METHOD_NOT_ALLOWED = 405,
    BX_E_TIMEOUT = 408,
    BX_E_CONFLICT = 409,
    BX_E_LENGTH_REQUIRED = 411,
    BX_E_TOO_LARGE = 413,
    BX_E_URI_TOO_LONG = 414,
    BX_E_UNSUPPORTED_MEDIA = 415,
    BX_E_EXPECTATION_FAILED = 417,
    BX_E_MISDIRECTED = 421,
    BX_E_UNPROCESSABLE = 422,
    BX_E_TOO_MANY_REQUESTS = 429,
    BX_E_HEADERS_TOO_LARGE = 431,
    BX_E_INTERNAL = 500,
    BX_E_NOT_IMPLEMENTED = 501,
    BX_E_BAD_GATEWAY = 502,
    BX_E_UNAVAILABLE = 503,
    BX_E_HTTP_VERSION = 505,
    BX_E_INSUFFICIENT_STORAGE = 507,
};

struct bx_err {
    int status;
    int sys_errno;
    char msg[BX_ERR_MSG_MAX];
};

/* Sets the error and returns -1 so callers can `return bx_err_set(...)`. */
int bx_err_set(struct bx_err *err, int status, int sys_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Same, with sys_errno = errno and ": strerror(errno)" appended. */
int bx_err_sys(struct bx_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes context to an existing message; keeps status and errno. */
int bx_err_wrap(struct bx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void bx_err_clear(struct bx_err *err);

/* The one error-to-HTTP mapping: err's status when it is an HTTP error
 * status (4xx, 5xx), else BX_E_INTERNAL. */
int bx_err_http_status(const struct bx_err *err);

#endif
