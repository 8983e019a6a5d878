/* `boxer check-host`: what this host lacks to run Boxer (issue 17). */
#ifndef BOXER_CHECK_HOST_H
#define BOXER_CHECK_HOST_H

/* argv[0] is "check-host".  Prints one line per check; returns 0 when every
 * required check passed, 1 when one did not, 2 on a usage error. */
int check_host_main(int argc, char **argv);

#endif
