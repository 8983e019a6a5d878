/* Host names for the command-line client's --url (issue 15).  The static
 * binary has no NSS, so getaddrinfo cannot look names up; the client reads
 * /etc/hosts itself (hosts(5): "ADDRESS NAME [ALIAS...]", '#' comments) and
 * nothing else: there is no DNS resolver here, on purpose.  A name missing
 * from the file is an error that says to use an IP address. */
#ifndef BOXER_CLI_HOSTS_H
#define BOXER_CLI_HOSTS_H

#include <stddef.h>

#include "err.h"

#define CLI_HOSTS_PATH "/etc/hosts"
#define CLI_HOSTS_MAX (1u << 20)  /* bytes of the file read; the rest ignored */
#define CLI_HOSTS_LINE_MAX 4096   /* a longer line is skipped whole */
#define CLI_HOSTS_NAME_MAX 253    /* a DNS name's length */

/* 1 when name (a host name: letters, digits, '-', '.', '_'; 1..253 bytes)
 * is valid, else 0. */
int cli_hosts_name_ok(const char *name);

/* Looks name up in text (len bytes of a hosts file): the address of the
 * first line that lists it (case-insensitive), IPv4 or IPv6, as numeric
 * text into addr (cap at least 46).  Lines with an address that is not
 * numeric (or has an IPv6 zone) are skipped.  1 found, 0 not. */
int cli_hosts_lookup(const char *text, size_t len, const char *name, char *addr, size_t cap);

/* cli_hosts_lookup over the file at path (at most CLI_HOSTS_MAX bytes).
 * 1 found, 0 not found, -1 the file could not be read (err). */
int cli_hosts_file_lookup(const char *path, const char *name, char *addr, size_t cap,
                          struct bx_err *err);

#endif
