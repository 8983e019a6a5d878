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
 * "context: " to the message.  Exactly one place (boxer.c) turns an error
 * into an HTTP answer.  Nothing calls exit() after start-up.
 *
 * A NULL `err` is allowed everywhere and means "caller does not care".
 */
#ifndef BOXER_ERR_H
#define BOXER_ERR_H

#include <stddef.h>

#define BX_ERR_MSG_MAX 512

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

#endif
