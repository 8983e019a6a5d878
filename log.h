/* Boxer's log: one line per event on stderr (or the fd bx_log_set_fd
 * chose), "boxer: " + message + "\n", written with a single write(2) so lines
 * from concurrent writers (the loop, a forked child before exec) never
 * interleave (BX_LOG_LINE_MAX is PIPE_BUF: a pipe takes such a write whole).
 * A longer line is cut to BX_LOG_LINE_MAX bytes and still
 * ends with "\n".  Levels below the threshold are dropped (every level is
 * on by default, which keeps today's output).  Warnings and errors carry
 * no tag of their own: callers keep writing "WARNING: ..." where operators
 * grep for it. */
#ifndef BOXER_LOG_H
#define BOXER_LOG_H

enum bx_log_level { BX_LOG_INFO, BX_LOG_WARN, BX_LOG_ERROR };

#define BX_LOG_LINE_MAX 4096

/* Messages below `level` are dropped from now on. */
void bx_log_set_level(enum bx_log_level level);
/* Where lines go (2 by default); for tests. */
void bx_log_set_fd(int fd);

void bx_log(enum bx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bx_log_info(...) bx_log(BX_LOG_INFO, __VA_ARGS__)
#define bx_log_warn(...) bx_log(BX_LOG_WARN, __VA_ARGS__)
#define bx_log_error(...) bx_log(BX_LOG_ERROR, __VA_ARGS__)

#endif
