/* The command-line client in the server's binary (`boxer run`, `boxer box
 * ...`, `boxer exec`, `boxer images`, `boxer health`): see boxer.1. */
#ifndef BOXER_CLI_H
#define BOXER_CLI_H

/* 1 when argv[1] names a client subcommand (anything but an option and
 * "serve"): main() hands those to cli_main. */
int cli_is_client(const char *arg1);
/* argv[0] is the subcommand.  Returns the process's exit status. */
int cli_main(int argc, char **argv);

/* Exit statuses (boxer.1 EXIT STATUS). */
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_TIMEOUT 124
#define CLI_EXIT_BOXER 125

#endif
