/* Writers of the exec event streams (issue 14, DESIGN.md "Streaming"):
 * Server-Sent Events as BoxRun's SDK reads them, and NDJSON (ours).  Pure
 * functions: each appends one complete event to an sbuf and returns 0, or
 * -1 when the sbuf's limit or memory ran out (out is then left as it was).
 *
 * SSE: "event: log\nid: <seq>\ndata: {\"stream\":..,\"data\":..,\"seq\":n}\n\n";
 * the JSON has no raw newline, so one data line carries it whole.
 * NDJSON: the same object with "type" first, one line, "\n" at the end.
 * Data is UTF-8 text (invalid sequences become U+FFFD) or, with base64,
 * the raw bytes in standard base64. */
#ifndef BOXER_STREAM_EVENTS_H
#define BOXER_STREAM_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum sev_format { SEV_SSE, SEV_NDJSON };

struct sev_exit {
    int exit_code;
    const char *status; /* NDJSON only: "succeeded", "failed", ... */
    int timed_out;
    uint64_t wall_ms;
};

/* stream: 0 stdout, 1 stderr. */
int sev_log(struct sbuf *out, enum sev_format f, uint64_t seq, int stream, const char *data,
            size_t len, int base64);
/* The final event: SSE `event: exit` whose data is the JSON text
 * {"exit_code": N}; NDJSON {"type":"exit","exit_code",...,"seq"}. */
int sev_exit(struct sbuf *out, enum sev_format f, uint64_t seq, const struct sev_exit *x);
/* Events the reader will not get: dropped (count) before first_seq.  SSE
 * in BoxRun's shape: data {"stream":null,"data":"{\"dropped\": k,
 * \"first_seq\": f}","seq":f-1}; NDJSON {"type":"truncated","dropped",
 * "first_seq"}. */
int sev_truncated(struct sbuf *out, enum sev_format f, uint64_t dropped, uint64_t first_seq);
/* SSE ": keepalive\n\n"; NDJSON {"type":"keepalive"}. */
int sev_keepalive(struct sbuf *out, enum sev_format f);
/* NDJSON {"type":"start","exec_id":id} (also "id" for the box exec). */
int sev_start(struct sbuf *out, const char *exec_id);
/* Standard base64 (with padding) of len bytes appended to out. */
int sev_base64(struct sbuf *out, const void *data, size_t len);
/* Parses an event id ("Last-Event-ID" or ?after=): decimal digits only,
 * at most 19 of them.  Returns 0 (value in *out) or -1. */
int sev_parse_seq(const char *s, size_t len, uint64_t *out);

#endif
