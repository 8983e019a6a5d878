/* An exec's output as a bounded log of events (issue 14): each read from the
 * command's stdout or stderr becomes one event with a sequence number (1,
 * 2, ...).  The log holds at most `max` bytes (each event's data plus
 * EXEC_LOG_OVERHEAD, so a flood of tiny writes stays bounded too); when an
 * event does not fit, the oldest events are dropped and counted, and a
 * reader that asks for them learns how many it missed (the "truncated"
 * event of the streams).  An event bigger than the whole log keeps its
 * last bytes.
 *
 * A multibyte UTF-8 character split between two reads is held back (at
 * most 3 bytes per stream) until the rest arrives, so text streams do not
 * show two replacement characters where the command wrote one; no byte is
 * lost (base64 readers see the same bytes, only later).  Pure logic: no
 * I/O. */
#ifndef BOXER_EXEC_LOG_H
#define BOXER_EXEC_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define EXEC_LOG_OVERHEAD 32
enum { EXEC_STDOUT = 0, EXEC_STDERR = 1 };

struct exec_event {
    uint64_t seq;
    int stream; /* EXEC_STDOUT or EXEC_STDERR */
    size_t len;
    char *data;
    uint64_t cum; /* charged bytes appended up to and including this event */
};

struct exec_log {
    struct exec_event *ev; /* ring of cap slots, n used from head */
    size_t cap, head, n;
    uint64_t next_seq;     /* seq of the next event */
    uint64_t bytes, max;   /* charged bytes (data + overhead) and the bound */
    uint64_t dropped;      /* events dropped from the front */
    uint64_t cut_bytes;    /* bytes lost: dropped events and cut ones */
    uint64_t total;        /* charged bytes ever appended */
    unsigned char carry[2][4]; /* an incomplete UTF-8 tail per stream */
    size_t carry_len[2];
};

void exec_log_init(struct exec_log *l, uint64_t max);
void exec_log_free(struct exec_log *l);
/* Appends what the command wrote on stream (UTF-8 tails held back, see
 * above).  Returns 0, or -1 when out of memory (the bytes are lost and
 * counted in cut_bytes). */
int exec_log_append(struct exec_log *l, int stream, const char *data, size_t len);
/* At the end of the command: what is held back becomes an event. */
int exec_log_flush(struct exec_log *l);
/* The i-th kept event, oldest first (i < l->n). */
const struct exec_event *exec_log_at(const struct exec_log *l, size_t i);
/* The index of the first kept event whose seq is greater than after
 * (l->n when none). */
size_t exec_log_index_after(const struct exec_log *l, uint64_t after);
/* Seq of the oldest kept event (next_seq when the log is empty). */
uint64_t exec_log_first_seq(const struct exec_log *l);
/* Seq of the newest event ever appended (0 when none). */
uint64_t exec_log_last_seq(const struct exec_log *l);
/* Charged bytes of the kept events after seq `after`. */
uint64_t exec_log_bytes_after(const struct exec_log *l, uint64_t after);
/* 1 when output was lost (dropped or cut events). */
int exec_log_truncated(const struct exec_log *l);
/* Marks output as lost when the amount is unknown (a record reloaded
 * after a restart that had lost some): cut_bytes becomes at least 1. */
void exec_log_mark_truncated(struct exec_log *l);
/* The kept text of one stream, concatenated, appended to out. */
int exec_log_text(const struct exec_log *l, int stream, struct sbuf *out);
/* Empties the kept events of one stream (their seqs stay; readers skip
 * empty events): text that was not the command's (runsc's own error). */
void exec_log_remove_stream(struct exec_log *l, int stream);
/* Bytes of one stream kept (what exec_log_text would append). */
size_t exec_log_stream_len(const struct exec_log *l, int stream);

#endif
