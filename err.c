#define _GNU_SOURCE
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int bx_err_set(struct bx_err *err, int status, int sys_errno, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->status = status;
        err->sys_errno = sys_errno;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -1;
}

int bx_err_sys(struct bx_err *err, int status, const char *fmt, ...)
{
    int saved = errno;
    if (err) {
        va_list ap;
        size_t n;
        err->status = status;
        err->sys_errno = saved;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        n = strlen(err->msg);
        if (n < sizeof(err->msg))
            snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(saved));
    }
    errno = saved;
    return -1;
}

int bx_err_wrap(struct bx_err *err, const char *fmt, ...)
{
    if (err) {
        char old[BX_ERR_MSG_MAX];
        va_list ap;
        int n;
        memcpy(old, err->msg, sizeof(old));
        va_start(ap, fmt);
        n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n + 2 < sizeof(err->msg)) {
            size_t used = (size_t)n;
            err->msg[used++] = ':';
            err->msg[used++] = ' ';
            size_t room = sizeof(err->msg) - used - 1;
            size_t ol = strnlen(old, sizeof(old) - 1);
            if (ol > room)
                ol = room;
            memcpy(err->msg + used, old, ol);
            err->msg[used + ol] = '\0';
        }
    }
    return -1;
}

void bx_err_clear(struct bx_err *err)
{
    if (err) {
        err->status = 0;
        err->sys_errno = 0;
        err->msg[0] = '\0';
    }
}

int bx_err_http_status(const struct bx_err *err)
{
    return err->status >= 400 && err->status <= 599 ? err->status : BX_E_INTERNAL;
}
