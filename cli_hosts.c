/* /etc/hosts for the command-line client; see cli_hosts.h. */
#include "cli_hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int cli_hosts_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CLI_HOSTS_NAME_MAX)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") == n;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* One line [p, end) without its '\n': 1 and the address when it lists
 * name. */
static int line_match(const char *p, const char *end, const char *name, size_t nlen,
                      char *addr, size_t cap)
{
    const char *hash = memchr(p, '#', (size_t)(end - p));
    char a[64];
    const char *tok;
    size_t alen;
    struct in_addr a4;
    struct in6_addr a6;

    if (hash)
        end = hash;
    while (p < end && is_blank(*p))
        p++;
    tok = p;
    while (p < end && !is_blank(*p))
        p++;
    alen = (size_t)(p - tok);
    if (alen == 0 || alen >= sizeof(a))
        return 0;
    memcpy(a, tok, alen);
    a[alen] = 0;
    /* inet_pton takes no zone ("fe80::1%eth0"): such lines are skipped */
    if (inet_pton(AF_INET, a, &a4) != 1 && inet_pton(AF_INET6, a, &a6) != 1)
        return 0;
    for (;;) {
        while (p < end && is_blank(*p))
            p++;
        if (p >= end)
            return 0;
        tok = p;
        while (p < end && !is_blank(*p))
            p++;
        if ((size_t)(p - tok) == nlen && strncasecmp(tok, name, nlen) == 0) {
            if (alen >= cap)
                return 0;
            memcpy(addr, a, alen + 1);
            return 1;
        }
    }
}

int cli_hosts_lookup(const char *text, size_t len, const char *name, char *addr, size_t cap)
{
    const char *p = text, *end = text + len;
    size_t nlen = strlen(name);
    if (!text || nlen == 0)
        return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) <= CLI_HOSTS_LINE_MAX && line_match(p, le, name, nlen, addr, cap))
            return 1;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int cli_hosts_file_lookup(const char *path, const char *name, char *addr, size_t cap,
                          struct bx_err *err)
{
    char *buf;
    size_t got = 0;
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bx_err_sys(err, 0, "%s", path);
    buf = malloc(CLI_HOSTS_MAX);
    if (!buf) {
        close(fd);
        return bx_err_set(err, 0, ENOMEM, "out of memory");
    }
    while (got < CLI_HOSTS_MAX) {
        ssize_t n = read(fd, buf + got, CLI_HOSTS_MAX - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            bx_err_sys(err, 0, "%s", path);
            close(fd);
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    /* a file over the cap: its last, maybe cut, line is not trusted */
    if (got == CLI_HOSTS_MAX) {
        char *nl = memrchr(buf, '\n', got);
        got = nl ? (size_t)(nl - buf) : 0;
    }
    r = cli_hosts_lookup(buf, got, name, addr, cap);
    free(buf);
    return r;
}
