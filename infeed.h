/* A command's stdin fed from the event loop (issue 14): the bytes a client
 * sent wait in a bounded buffer and go into a non-blocking pipe as fast as
 * the command reads, never blocking the loop (short writes keep the rest).
 * Once eof is asked and everything is written, the pipe is closed so the
 * command sees EOF.  A command that closes its stdin early (EPIPE) makes the
 * rest be dropped (broken).  No callback: the owner polls the fields. */
#ifndef BOXER_INFEED_H
#define BOXER_INFEED_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"

struct infeed {
    struct loop *loop;
    int fd;               /* our write end (non-blocking); -1 once closed */
    char *buf;            /* pending bytes are buf[off..len) */
    size_t off, len, cap;
    size_t max;           /* most pending bytes */
    uint64_t total;       /* bytes accepted: the input stream's offset */
    int eof;              /* close once drained */
    int broken;           /* the reader went away: the rest was dropped */
    int watching;         /* registered for EPOLLOUT */
};

void infeed_init(struct infeed *f, struct loop *l, size_t max_pending);
/* Makes the pipe: *child_end gets the read end (O_CLOEXEC; the spawn dups
 * it to the child's stdin), to be closed by the caller after the spawn. */
int infeed_pipe(struct infeed *f, int *child_end, struct bx_err *err);
/* Room for more pending bytes. */
size_t infeed_room(const struct infeed *f);
/* Queues len bytes (413 over the room; 409 after eof) and writes what the
 * pipe takes now.  Bytes put to a broken feed are counted and dropped. */
int infeed_put(struct infeed *f, const void *data, size_t len, struct bx_err *err);
/* The command gets EOF once the pending bytes are written. */
void infeed_eof(struct infeed *f);
/* Closes the pipe now and frees the buffer (the command gets EOF). */
void infeed_free(struct infeed *f);

#endif
