/* "return_outputs" of /run (issue 17): the files a run left in /output,
 * read back from the store after the capture and put in the answer as
 * base64, up to max_inline_output_bytes; the rest stay in the store and the
 * answer names them. */
#ifndef BOXER_RUN_OUTPUTS_H
#define BOXER_RUN_OUTPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "json.h"

struct run_output {
    char *path; /* relative to /output */
    char *data;
    size_t len;
};

struct run_outputs {
    struct run_output *v; /* inlined */
    size_t n, cap;
    char **left; /* store paths (output/<exec_id>/<path>) not inlined */
    size_t nleft, capleft;
    uint64_t bytes;      /* inlined bytes */
    uint64_t json_bound; /* most bytes run_outputs_json writes */
};

/* Reads the tree under dirfd (the store's output/<exec_id>; not closed;
 * -1: none, an empty result):
 * regular files whole while their sum stays within max_bytes, in name
 * order, depth first; the others are listed in left. */
int run_outputs_collect(int dirfd, const char *exec_id, uint64_t max_bytes,
                        struct run_outputs **out, struct bx_err *err);
void run_outputs_free(struct run_outputs **o);
/* "outputs": {"<path>": "<base64>"...} and, when some were not inlined,
 * "outputs_left": ["output/<exec_id>/<path>"...]. */
void run_outputs_json(const struct run_outputs *o, struct json_writer *w);

#endif
