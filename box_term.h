/* Processes on a pseudo-terminal in a box (issue 14, terminals).
 *
 * The recipe measured in RUNSC-NOTES: Boxer opens a pty on the host and
 * gives its replica to `runsc exec` as stdin, stdout and stderr of a
 * process with "terminal": true; the master stays with Boxer.  A resize is
 * TIOCSWINSZ on the master plus SIGWINCH to the `runsc exec` client, which
 * passes it on.  (`--console-socket`, where runsc hands a master over a
 * unix socket, works only with --detach, which loses the client that
 * forwards SIGWINCH and reports the exit status.)
 *
 * A terminal process is an exec record of its box (hidden: not listed),
 * so it counts as activity for the idle stop while it runs, ends when the
 * box stops (the sandbox and its `runsc exec` clients go), and is answered
 * with exit code 137 when the box is removed under it. */
#ifndef BOXER_BOX_TERM_H
#define BOXER_BOX_TERM_H

#include "box.h"

#define BOX_TERM_STR_MAX 255
#define BOX_TERM_DIM_MAX 1000

struct box_term_req {
    const char *shell; /* absolute path: run through the in-box helper,
                        * /bin/sh when the box lacks it */
    const char *term;  /* TERM of the process */
    unsigned rows, cols;
    /* issue 15: a command instead of the shell (NULL: the shell), run as
     * the argv given (through /.boxer/init --run: 127 when missing); env
     * ("K=V", may be NULL) over the box's, workdir (NULL: the box's),
     * user (set_user: uid/gid, else root); all apply to the shell too. */
    char *const *cmd;
    char *const *env;
    const char *workdir;
    int set_user;
    uint32_t uid, gid;
};

/* Starts the shell on a new pty.  *master: the pty's master (non-blocking,
 * close-on-exec), owned by the caller, who must keep it open until the
 * exec has ended or box_term_end was called.  cb runs once the process
 * ended (box_exec_exit_code), never inside this call.  409 BOX_NOT_RUNNING
 * when the box is not running. */
int box_term_start(struct box *b, const struct box_term_req *req, box_exec_cb cb, void *arg,
                   struct box_exec **out, int *master, struct bx_err *err);
/* New window size: the pty's, and SIGWINCH to the process (through the
 * runsc exec client). */
int box_term_resize(struct box_exec *e, int master, unsigned rows, unsigned cols,
                    struct bx_err *err);
/* The caller is leaving (client gone): cb is not called any more and the
 * runsc exec client is killed; the shell in the box reads EOF/EIO once the
 * caller closes the master, and leaves. */
void box_term_end(struct box_exec *e);

/* An exec with "tty" (req->tty_rows and tty_cols set): box_exec's path for
 * it (box_exec calls it).  The terminal's bytes are the exec's stdout
 * (bounded as other output); stderr stays empty. */
int box_term_exec(struct box *b, struct box_exec_req *req, box_exec_cb cb, void *arg,
                  struct box_exec **out, struct bx_err *err);
/* POST .../exec/{eid}/resize: 400 without a tty, 409 once it has ended. */
int box_term_exec_resize(struct box_exec *e, unsigned rows, unsigned cols, struct bx_err *err);
/* Input typed into the terminal: activity for the box's idle stop. */
void box_term_touch(struct box_exec *e);
/* The loop the boxes run on. */
struct loop *box_term_loop(struct box_mgr *m);

#endif
