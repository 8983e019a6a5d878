/* The terminal side of `boxer exec -it` (cli_term.c). */
#ifndef BOXER_CLI_TERM_H
#define BOXER_CLI_TERM_H

#include "cli_http.h"

/* The local terminal's size (stdin), 24x80 when it has none; each at most
 * 1000 (the server's bound). */
void cli_term_size(unsigned *rows, unsigned *cols);
/* Runs the session on fd after the 101 (r holds what came with it);
 * returns the exit status. */
int cli_term_session(int fd, struct cli_resp *r);

#endif
