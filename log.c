#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define LOG_PREFIX "boxer: "

/* Single-threaded process (one loop); forked children only read these. */
static enum bx_log_level log_threshold = BX_LOG_INFO;
static int log_fd = 2;

void bx_log_set_level(enum bx_log_level level)
{
    log_threshold = level;
}

void bx_log_set_fd(int fd)
{
    log_fd = fd;
}

void bx_log(enum bx_log_level level, const char *fmt, ...)
{
    /* On the stack: logging must work when memory has run out. */
    char line[BX_LOG_LINE_MAX];
    size_t pre = sizeof(LOG_PREFIX) - 1;
    size_t room = sizeof(line) - pre - 1; /* the last byte is for the "\n" */
    size_t len;
    int n;
    va_list ap;
    int saved = errno;

    if (level < log_threshold)
        return;
    memcpy(line, LOG_PREFIX, pre);
    va_start(ap, fmt);
    n = vsnprintf(line + pre, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    /* vsnprintf keeps room - 1 characters and a NUL, which "\n" replaces. */
    len = pre + ((size_t)n < room ? (size_t)n : room - 1);
    line[len++] = '\n';
    /* A lost log line is not worth failing the caller for. */
    (void)bx_write_all(log_fd, line, len);
    errno = saved;
}
