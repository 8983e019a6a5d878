#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "net_internal.h"
#include "proc.h"

#define NETNS_CHILD_TIMEOUT_SECS 5
#define NFT_TIMEOUT_MS 15000
#define LOCK_DIR "/run/boxer"
#define SWEEP_MAX 1024
#define NET_HOST_ADDRS_MAX 1024

/* ---- addresses ---- */

int net_parse_ipv4(const char *s, uint32_t *out)
{
    struct in_addr in;
    if (inet_pton(AF_INET, s, &in) != 1)
        return -1;
    *out = ntohl(in.s_addr);
    return 0;
}

int net_parse_cidr4(const char *s, uint32_t *addr, unsigned *prefix)
{
    char buf[INET_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    uint64_t len;
    uint32_t a, mask;
    size_t al;

    if (!slash)
        return -1;
    al = (size_t)(slash - s);
    if (al == 0 || al >= sizeof(buf))
        return -1;
    memcpy(buf, s, al);
    buf[al] = '\0';
    if (net_parse_ipv4(buf, &a) < 0 || bx_parse_u64(slash + 1, strlen(slash + 1), 32, &len) < 0)
        return -1;
    mask = len == 0 ? 0 : ~0u << (32 - len);
    if ((a & ~mask) != 0)
        return -1;
    *addr = a;
    *prefix = (unsigned)len;
    return 0;
}

void net_format_ipv4(uint32_t a, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

uint32_t net_prefix_mask(unsigned prefix)
{
    return prefix == 0 ? 0 : ~0u << (32 - prefix);
}

/* A decimal without sign or leading zero (one spelling per value). */
static int parse_dec(const char *s, uint64_t max, uint64_t *out)
{
    size_t n = strlen(s);
    if (n > 1 && s[0] == '0')
        return -1;
    return bx_parse_u64(s, n, max, out);
}

int net_parse_egress(const char *s, size_t len, struct net_egress *out)
{
    char buf[NET_EGRESS_TEXT_MAX + 1];
    char *colon, *slash;
    uint64_t port = 0, plen = 32;
    uint32_t a;

    if (len == 0 || len > NET_EGRESS_TEXT_MAX || memchr(s, '\0', len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    colon = strchr(buf, ':');
    if (colon) {
        *colon = '\0';
        if (parse_dec(colon + 1, 65535, &port) < 0 || port == 0)
            return -1;
    }
    slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        if (parse_dec(slash + 1, 32, &plen) < 0)
            return -1;
    }
    /* inet_pton takes only four decimal parts without leading zeros. */
    if (net_parse_ipv4(buf, &a) < 0 || (a & ~net_prefix_mask((unsigned)plen)) != 0)
        return -1;
    out->addr = a;
    out->prefix = (unsigned)plen;
    out->port = (unsigned)port;
    return 0;
}

/* ---- address pool ---- */

int net_pool_init(struct net_pool *p, uint32_t base, unsigned prefix, struct bx_err *err)
{
    memset(p, 0, sizeof(*p));
    if (prefix < 8 || prefix > 30 || (base & ~net_prefix_mask(prefix)) != 0)
        return bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "sandbox_subnet: need an aligned /8 to /30 network");
    p->base = base;
    p->prefix = prefix;
    p->size = 1u << (32 - prefix);
    p->cursor = 2;
    /* At most 2^24 bits (2 MiB) for a /8. */
    p->bits = calloc((p->size + 63) / 64, sizeof(uint64_t));
    if (!p->bits)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    return 0;
}

static int pool_taken(const struct net_pool *p, uint32_t i)
{
    return (int)((p->bits[i / 64] >> (i % 64)) & 1u);
}

int net_pool_alloc(struct net_pool *p, uint32_t *addr)
{
    /* Usable: 2 .. size-2 (0 network, 1 bridge, size-1 broadcast). */
    uint32_t usable = p->size - 3;
    if (!p->bits || p->used >= usable)
        return -1;
    for (uint32_t n = 0; n < usable; n++) {
        uint32_t i = p->cursor;
        p->cursor = i + 1 >= p->size - 1 ? 2 : i + 1;
        if (!pool_taken(p, i)) {
            p->bits[i / 64] |= (uint64_t)1 << (i % 64);
            p->used++;
            *addr = p->base + i;
            return 0;
        }
    }
    return -1;
}

void net_pool_release(struct net_pool *p, uint32_t addr)
{
    uint32_t i = addr - p->base;
    if (!p->bits || (addr & net_prefix_mask(p->prefix)) != p->base || i < 2 || i >= p->size - 1 ||
        !pool_taken(p, i))
        return;
    p->bits[i / 64] &= ~((uint64_t)1 << (i % 64));
    p->used--;
}

void net_pool_destroy(struct net_pool *p)
{
    free(p->bits);
    p->bits = NULL;
}

/* ---- the network ---- */

/* A veth being deleted by a forked child. */
struct net_del {
    struct net *net;
    struct proc *proc;
    struct net_del *next;
    char veth[IFNAMSIZ];
    uint32_t addr; /* returned to the pool when done */
    int have_addr;
    int egress_rules; /* the run's egress rules are to be removed */
};

struct net {
    struct loop *loop;
    struct net_del *deleting;
    char bridge[IFNAMSIZ];
    uint32_t subnet;
    unsigned prefix;
    uint32_t gateway;
    uint32_t dns[3];
    size_t ndns;
    uint32_t *blocked;
    unsigned *blocked_len;
    size_t nblocked;
    int allow_private_egress;
    /* The host's IPv4 addresses at start (see host_addrs). */
    uint32_t host_addr[NET_HOST_ADDRS_MAX];
    unsigned host_prefix[NET_HOST_ADDRS_MAX];
    size_t nhost;
    char nft[PATH_MAX];
    struct net_pool pool;
    int lock_fd;
    int nl;
    int bridge_index;
    int bridge_created;
    int tables_created;
    int ready;
    char unavailable[BX_ERR_MSG_MAX];
    char describe[PATH_MAX + 128];
    char lock_path[PATH_MAX]; /* set while we hold the lock */
};

int net_new(struct net **out, const struct config *cfg, struct loop *loop, struct bx_err *err)
{
    struct net *n = calloc(1, sizeof(*n));
    if (!n)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    n->loop = loop;
    n->lock_fd = -1;
    n->nl = -1;
    snprintf(n->unavailable, sizeof(n->unavailable), "not started");
    if (strlen(cfg->bridge_name) == 0 || strlen(cfg->bridge_name) >= IFNAMSIZ) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: bridge_name: must be 1 to 15 characters");
        goto fail;
    }
    snprintf(n->bridge, sizeof(n->bridge), "%s", cfg->bridge_name);
    if (net_parse_cidr4(cfg->sandbox_subnet, &n->subnet, &n->prefix) < 0 || n->prefix < 8 ||
        n->prefix > 30) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: sandbox_subnet: not an aligned /8 to /30 network");
        goto fail;
    }
    n->gateway = n->subnet + 1;
    if (cfg->dns_servers.n > BX_ARRAY_LEN(n->dns)) {
        bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: dns_servers: at most 3 servers");
        goto fail;
    }
    for (size_t i = 0; i < cfg->dns_servers.n; i++) {
        if (net_parse_ipv4(cfg->dns_servers.items[i], &n->dns[i]) < 0) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL, "config: dns_servers[%zu]: not an IPv4 address", i);
            goto fail;
        }
    }
    n->ndns = cfg->dns_servers.n;
    if (cfg->blocked_egress.n) {
        n->blocked = calloc(cfg->blocked_egress.n, sizeof(*n->blocked));
        n->blocked_len = calloc(cfg->blocked_egress.n, sizeof(*n->blocked_len));
        if (!n->blocked || !n->blocked_len) {
            bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg->blocked_egress.n; i++) {
        const char *s = cfg->blocked_egress.items[i];
        if (strchr(s, '/') ? net_parse_cidr4(s, &n->blocked[i], &n->blocked_len[i]) < 0
                           : net_parse_ipv4(s, &n->blocked[i]) < 0) {
            bx_err_set(err, BX_E_BAD_REQUEST, EINVAL,
                       "config: blocked_egress[%zu]: not an IPv4 address or aligned network", i);
            goto fail;
        }
        if (!strchr(s, '/'))
            n->blocked_len[i] = 32;
    }
    n->nblocked = cfg->blocked_egress.n;
    n->allow_private_egress = cfg->allow_private_egress;
    if (net_pool_init(&n->pool, n->subnet, n->prefix, err) < 0)
        goto fail;
    *out = n;
    return 0;
fail:
    net_free(&n);
    return -1;
}

const char *net_unavailable(const struct net *n)
{
    return !n ? "not configured" : n->ready ? NULL : n->unavailable;
}

const char *net_describe(const struct net *n)
{
    return n->ready ? n->describe : n->unavailable;
}

static int run_nft(const struct net *n, const struct sbuf *script, struct bx_err *err)
{
    char *argv[] = {(char *)n->nft, "-f", "-", NULL};
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    struct proc_spec spec;
    int in = -1, errfd = -1, status, ret = -1;

    /* memfds: the script can be any size without a pipe deadlock, and
     * nft's complaint is kept for the error message. */
    in = memfd_create("boxer-nft-in", MFD_CLOEXEC);
    errfd = memfd_create("boxer-nft-err", MFD_CLOEXEC);
    if (in < 0 || errfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "memfd_create");
        goto out;
    }
    if (bx_write_all(in, script->data, script->len) < 0 || lseek(in, 0, SEEK_SET) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "writing nft script");
        goto out;
    }
    memset(&spec, 0, sizeof(spec));
    spec.path = n->nft;
    spec.argv = argv;
    spec.envp = envp;
    spec.stdin_fd = in;
    spec.stdout_fd = -1;
    spec.stderr_fd = errfd;
    status = proc_run_sync(&spec, NFT_TIMEOUT_MS, err);
    if (status < 0)
        goto out;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[300];
        ssize_t r = pread(errfd, msg, sizeof(msg) - 1, 0);
        msg[r > 0 ? r : 0] = '\0';
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = ' ';
        bx_err_set(err, BX_E_INTERNAL, 0, "%s failed (status %d): %s", n->nft, status, msg);
        goto out;
    }
    ret = 0;
out:
    bx_close(&in);
    bx_close(&errfd);
    return ret;
}

static void write_sysctl(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (bx_write_all(fd, value, strlen(value)) < 0) {
            /* best effort: the caller checks what matters */
        }
        close(fd);
    }
}

struct sweep {
    const struct net *n;
    char names[SWEEP_MAX][IFNAMSIZ];
    size_t count;
    int foreign_bridge; /* a link named like our bridge that is not ours */
    int bridge_ours;
};

static int on_sweep_link(void *arg, const unsigned char *msg, size_t len)
{
    struct sweep *s = arg;
    struct net_link l;
    char mine[IFNAMSIZ + 8], run_prefix[IFNAMSIZ + 8];
    if (net_nl_parse_link(msg, len, &l) < 0)
        return 0;
    snprintf(mine, sizeof(mine), "boxer:%s", s->n->bridge);
    snprintf(run_prefix, sizeof(run_prefix), "boxer:%s:", s->n->bridge);
    if (strcmp(l.name, s->n->bridge) == 0) {
        if (strcmp(l.alias, mine) == 0)
            s->bridge_ours = 1;
        else
            s->foreign_bridge = 1;
        return 0;
    }
    /* Only links Boxer tagged for this bridge: a crashed run's veth. */
    if (strncmp(l.alias, run_prefix, strlen(run_prefix)) == 0 && s->count < SWEEP_MAX)
        snprintf(s->names[s->count++], IFNAMSIZ, "%s", l.name);
    return 0;
}

static int sweep_links(struct net *n, int delete_bridge, struct bx_err *err)
{
    struct sweep *s = calloc(1, sizeof(*s));
    struct net_nlmsg m;
    struct bx_err e2;
    uint32_t seq;
    int ret = -1;
    if (!s)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    s->n = n;
    if (net_msg_get_link(&m, NULL) < 0 || nl_send(n->nl, &m, &seq, "listing links", err) < 0 ||
        nl_wait(n->nl, seq, 1, on_sweep_link, s, "listing links", err) < 0)
        goto out;
    if (s->foreign_bridge) {
        bx_err_set(err, BX_E_INTERNAL, EEXIST,
                   "a network interface named %s exists and was not created by Boxer (set "
                   "bridge_name)",
                   n->bridge);
        goto out;
    }
    for (size_t i = 0; i < s->count; i++) {
        bx_log_info("removing stale sandbox link %s", s->names[i]);
        bx_err_clear(&e2);
        if (nl_link_op(n->nl, &m, net_msg_del_link(&m, s->names[i]), "removing stale link", &e2) <
                0 &&
            e2.sys_errno != ENODEV)
            bx_log_warn("%s", e2.msg);
    }
    if (delete_bridge && s->bridge_ours) {
        bx_err_clear(&e2);
        if (nl_link_op(n->nl, &m, net_msg_del_link(&m, n->bridge), "removing bridge", &e2) < 0 &&
            e2.sys_errno != ENODEV) {
            *err = e2;
            goto out;
        }
    }
    ret = 0;
out:
    free(s);
    return ret;
}

struct overlap {
    const struct net *n;
    int bridge_index;
    char found[64];
};

static int on_addr(void *arg, const unsigned char *msg, size_t len)
{
    struct overlap *o = arg;
    uint32_t a, mask, ours = net_prefix_mask(o->n->prefix);
    unsigned prefix;
    int ifindex;
    if (nl_parse_addr(msg, len, &a, &prefix, &ifindex) < 0 || o->found[0])
        return 0;
    mask = net_prefix_mask(prefix);
    if ((ifindex != o->bridge_index || o->bridge_index <= 0) &&
        ((a & ours) == o->n->subnet || (o->n->subnet & mask) == (a & mask))) {
        char s[16];
        net_format_ipv4(a, s);
        snprintf(o->found, sizeof(o->found), "%s/%u (interface %d)", s, prefix, ifindex);
    }
    return 0;
}

/* Dumps every IPv4 address of the host's interfaces through cb. */
static int dump_ipv4_addrs(struct net *n, int (*cb)(void *arg, const unsigned char *msg, size_t len),
                           void *arg, const char *what, struct bx_err *err)
{
    struct net_nlmsg m;
    struct ifaddrmsg ifa;
    uint32_t seq;
    nl_msg_begin(&m, RTM_GETADDR, NLM_F_DUMP);
    memset(&ifa, 0, sizeof(ifa));
    ifa.ifa_family = AF_INET;
    nl_msg_put(&m, &ifa, sizeof(ifa));
    if (nl_send(n->nl, &m, &seq, what, err) < 0 || nl_wait(n->nl, seq, 1, cb, arg, what, err) < 0)
        return -1;
    return 0;
}

/* Another interface with an address in (or around) our subnet would make
 * routing to sandboxes ambiguous: two Boxers, a VPN, a LAN. */
static int check_overlap(struct net *n, struct bx_err *err)
{
    struct overlap o;
    char s[16];
    memset(&o, 0, sizeof(o));
    o.n = n;
    o.bridge_index = n->bridge_index;
    if (dump_ipv4_addrs(n, on_addr, &o, "listing addresses", err) < 0)
        return -1;
    if (o.found[0]) {
        net_format_ipv4(n->subnet, s);
        return bx_err_set(err, BX_E_INTERNAL, EADDRINUSE,
                          "sandbox_subnet %s/%u overlaps %s already on this host (set "
                          "sandbox_subnet)",
                          s, n->prefix, o.found);
    }
    return 0;
}

struct host_addrs {
    struct net *n;
    int too_many;
};

static int on_host_addr(void *arg, const unsigned char *msg, size_t len)
{
    struct host_addrs *h = arg;
    struct net *n = h->n;
    uint32_t a;
    unsigned prefix;
    int ifindex;
    size_t slot = n->nhost;
    if (nl_parse_addr(msg, len, &a, &prefix, &ifindex) < 0 || (a >> 24) == 127)
        return 0; /* loopback is blocked anyway */
    if (slot >= NET_HOST_ADDRS_MAX) {
        /* A host with thousands of addresses (kube-proxy in IPVS mode puts
         * every service address on kube-ipvs0 as a /32): a lone address
         * only feeds the defence in depth, the prerouting rule (fib daddr
         * type local) covers it; a network must be kept, in place of a
         * lone address if need be. */
        if (prefix >= 32)
            return 0;
        for (size_t i = 0; i < n->nhost && slot >= NET_HOST_ADDRS_MAX; i++)
            if (n->host_prefix[i] >= 32)
                slot = i;
        if (slot >= NET_HOST_ADDRS_MAX) {
            h->too_many = 1;
            return 0;
        }
    } else {
        n->nhost++;
    }
    n->host_addr[slot] = a;
    n->host_prefix[slot] = prefix;
    return 0;
}

/* The host's IPv4 addresses and their networks (its LANs), blocked for
 * sandboxes.  Taken once at start: an address the host gains later is
 * still covered by the prerouting rule (fib daddr type local), its
 * network only from the next start (documented). */
static int host_addrs(struct net *n, struct bx_err *err)
{
    struct host_addrs h = {n, 0};
    n->nhost = 0;
    if (dump_ipv4_addrs(n, on_host_addr, &h, "listing host addresses", err) < 0)
        return -1;
    /* Refusing is safer than leaving a LAN reachable. */
    if (h.too_many)
        return bx_err_set(err, BX_E_INTERNAL, E2BIG, "more than %d IPv4 networks on this host's interfaces",
                          NET_HOST_ADDRS_MAX);
    return 0;
}

static int create_bridge(struct net *n, struct bx_err *err)
{
    struct net_nlmsg m;
    struct net_link l;
    unsigned char mac[6];
    char alias[IFNAMSIZ + 8], path[128];
    if (getrandom(mac, sizeof(mac), 0) != (ssize_t)sizeof(mac))
        return bx_err_sys(err, BX_E_INTERNAL, "getrandom");
    mac[0] = (unsigned char)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
    if (nl_link_op(n->nl, &m, net_msg_new_bridge(&m, n->bridge, mac), "creating bridge", err) < 0)
        return -1;
    n->bridge_created = 1;
    /* Sandboxes are IPv4 only; the bridge has no IPv6 address to reach. */
    snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", n->bridge);
    write_sysctl(path, "1");
    snprintf(alias, sizeof(alias), "boxer:%s", n->bridge);
    if (nl_link_op(n->nl, &m, net_msg_set_link(&m, n->bridge, alias, 1, 0), "bridge up", err) < 0 ||
        nl_get_link(n->nl, n->bridge, &l, err) < 0)
        return -1;
    n->bridge_index = l.ifindex;
    return nl_link_op(n->nl, &m, net_msg_new_addr(&m, l.ifindex, n->gateway, n->prefix),
                      "bridge address", err);
}

static int forwarding_on(struct bx_err *err)
{
    char *text = NULL;
    size_t len = 0;
    int on;
    if (bx_read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", 16, &text, &len, err) < 0)
        return -1;
    on = text[0] == '1';
    free(text);
    if (on)
        return 0;
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
    if (bx_read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", 16, &text, &len, err) < 0)
        return -1;
    on = text[0] == '1';
    free(text);
    if (!on)
        return bx_err_set(err, BX_E_INTERNAL, EPERM, "cannot enable net.ipv4.ip_forward");
    bx_log_info("enabled IPv4 forwarding (net.ipv4.ip_forward=1) for the network "
                "sandbox; it stays on when Boxer stops");
    return 0;
}

static void undo_start(struct net *n)
{
    struct net_nlmsg m;
    if (n->tables_created) {
        struct sbuf s;
        sbuf_init(&s, 1u << 16);
        if (net_nft_delete_script(n->bridge, &s) == 0 && run_nft(n, &s, NULL) < 0)
            bx_log_warn("could not remove nft tables boxer_%s", n->bridge);
        sbuf_free(&s);
        n->tables_created = 0;
    }
    if (n->nl >= 0 && n->bridge_created) {
        struct bx_err e;
        bx_err_clear(&e);
        sweep_links(n, 0, NULL);
        if (nl_link_op(n->nl, &m, net_msg_del_link(&m, n->bridge), "removing bridge", &e) < 0 &&
            e.sys_errno != ENODEV)
            bx_log_warn("%s", e.msg);
        n->bridge_created = 0;
    }
    bx_close(&n->nl);
    if (n->lock_path[0]) {
        unlink(n->lock_path); /* while still locked: see take_lock */
        n->lock_path[0] = '\0';
    }
    bx_close(&n->lock_fd);
    n->ready = 0;
}

/* The owner removes the lock file when it stops, so a lock is only ours
 * if the file we locked is still the one at the path (a competitor may
 * have opened it just before it was unlinked). */
static int take_lock(struct net *n, const char *path, struct bx_err *err)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        struct stat a, b;
        int r;
        n->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (n->lock_fd < 0)
            return bx_err_sys(err, BX_E_INTERNAL, "open %s", path);
        do {
            r = flock(n->lock_fd, LOCK_EX | LOCK_NB);
        } while (r < 0 && errno == EINTR);
        if (r < 0) {
            if (errno == EWOULDBLOCK)
                bx_err_set(err, BX_E_INTERNAL, EBUSY,
                           "bridge %s is managed by another Boxer on this host (give each "
                           "Boxer its own bridge_name and sandbox_subnet)",
                           n->bridge);
            else
                bx_err_sys(err, BX_E_INTERNAL, "flock %s", path);
            bx_close(&n->lock_fd);
            return -1;
        }
        if (fstat(n->lock_fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            snprintf(n->lock_path, sizeof(n->lock_path), "%s", path);
            return 0;
        }
        bx_close(&n->lock_fd);
    }
    return bx_err_set(err, BX_E_INTERNAL, EAGAIN, "could not lock %s", path);
}

int net_start(struct net *n, struct bx_err *err)
{
    struct sbuf script;
    struct net_rules rules;
    char lock[PATH_MAX], gw[16];

    sbuf_init(&script, 1u << 20);
    if (proc_find_in_path("nft", getenv("PATH"), n->nft, sizeof(n->nft)) < 0) {
        bx_err_set(err, BX_E_INTERNAL, ENOENT, "nft not found in PATH (install the Debian package nftables)");
        goto fail;
    }
    if (bx_mkdir_p_at(AT_FDCWD, LOCK_DIR, 0700, 0, err) < 0)
        goto fail;
    snprintf(lock, sizeof(lock), LOCK_DIR "/net-%s.lock", n->bridge);
    if (take_lock(n, lock, err) < 0)
        goto fail;
    n->nl = nl_open(err);
    if (n->nl < 0)
        goto fail;
    /* We hold the lock: every link tagged for this bridge is a leftover. */
    if (sweep_links(n, 1, err) < 0 || check_overlap(n, err) < 0 || create_bridge(n, err) < 0 ||
        host_addrs(n, err) < 0)
        goto fail;
    rules = (struct net_rules){.bridge = n->bridge,
                               .subnet = n->subnet,
                               .prefix = n->prefix,
                               .dns = n->dns,
                               .ndns = n->ndns,
                               .blocked = n->blocked,
                               .blocked_len = n->blocked_len,
                               .nblocked = n->nblocked,
                               .allow_private_egress = n->allow_private_egress,
                               .host_addr = n->host_addr,
                               .host_prefix = n->host_prefix,
                               .nhost = n->nhost};
    if (net_nft_script(&rules, &script) < 0) {
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "nft script too large");
        goto fail;
    }
    n->tables_created = 1;
    if (run_nft(n, &script, err) < 0 || forwarding_on(err) < 0)
        goto fail;
    net_format_ipv4(n->gateway, gw);
    snprintf(n->describe, sizeof(n->describe),
             "bridge %s %s/%u, %s, %zu DNS server(s), private networks %s", n->bridge, gw,
             n->prefix, n->nft, n->ndns, n->allow_private_egress ? "allowed" : "blocked");
    n->ready = 1;
    sbuf_free(&script);
    return 0;
fail:
    snprintf(n->unavailable, sizeof(n->unavailable), "%s", err ? err->msg : "start-up failed");
    undo_start(n);
    sbuf_free(&script);
    return -1;
}

static void del_link_now(struct net *n, const char *name)
{
    struct net_nlmsg m;
    struct bx_err e;
    bx_err_clear(&e);
    if (n->nl >= 0 && nl_link_op(n->nl, &m, net_msg_del_link(&m, name), "removing veth", &e) < 0 &&
        e.sys_errno != ENODEV)
        bx_log_warn("%s: %s", name, e.msg);
}

void net_free(struct net **np)
{
    struct net *n = *np;
    if (!n)
        return;
    while (n->deleting) {
        struct net_del *d = n->deleting;
        n->deleting = d->next;
        proc_free(&d->proc);
        del_link_now(n, d->veth);
        free(d);
    }
    if (n->ready || n->bridge_created || n->tables_created)
        undo_start(n);
    bx_close(&n->nl);
    bx_close(&n->lock_fd);
    net_pool_destroy(&n->pool);
    free(n->blocked);
    free(n->blocked_len);
    free(n);
    *np = NULL;
    free(nl_rbuf);
    nl_rbuf = NULL;
}

/* ---- per-run network namespace ---- */

struct net_run {
    struct net *net;
    uint32_t addr;
    int have_addr;
    int egress_rules; /* its egress rules may exist (added or being added) */
    int netns_made;   /* the mount point file exists (and may be mounted) */
    int veth_made;
    char veth[IFNAMSIZ];
    char netns_path[PATH_MAX];
    char resolv_path[PATH_MAX];
};

/* The netns helper's answer: an int (0 or an errno) and, on success, the
 * netlink socket as SCM_RIGHTS.  The same layout on both ends. */
struct fd_msg {
    struct msghdr mh;
    struct iovec iov;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } c;
};

/* with_fd: room for the one descriptor (sending or receiving it). */
static void fd_msg_init(struct fd_msg *m, int *e, int with_fd)
{
    memset(m, 0, sizeof(*m));
    m->iov.iov_base = e;
    m->iov.iov_len = sizeof(*e);
    m->mh.msg_iov = &m->iov;
    m->mh.msg_iovlen = 1;
    if (with_fd) {
        m->mh.msg_control = m->c.buf;
        m->mh.msg_controllen = sizeof(m->c.buf);
    }
}

/* In the forked child: only system calls, then _exit.  Creates the netns,
 * turns IPv6 off in it before any interface arrives, opens a netlink
 * socket inside it (sockets stay in the netns they were created in) and
 * pins the netns with a bind mount, then hands the socket back. */
__attribute__((noreturn)) static void netns_child(int sock, const char *path)
{
    int e = 0, nl = -1;
    struct fd_msg m;

    if (unshare(CLONE_NEWNET) < 0) {
        e = errno;
        goto send;
    }
    write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl < 0) {
        e = errno;
        goto send;
    }
    if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) < 0)
        e = errno;
send:
    fd_msg_init(&m, &e, e == 0);
    if (e == 0) {
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m.mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &nl, sizeof(int));
    }
    if (sendmsg(sock, &m.mh, MSG_NOSIGNAL) < 0)
        _exit(2);
    _exit(e ? 1 : 0);
}

/* Returns a netlink socket inside the new netns. */
static int make_netns(struct net_run *r, int run_dirfd, struct bx_err *err)
{
    int sv[2] = {-1, -1};
    int fd, e = 0, nl = -1, status;
    struct timeval tv = {NETNS_CHILD_TIMEOUT_SECS, 0};
    struct fd_msg m;
    ssize_t n;
    pid_t pid;

    fd = openat(run_dirfd, "netns", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "creating netns mount point");
    close(fd);
    r->netns_made = 1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "socketpair");
    pid = fork();
    if (pid < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "fork");
        goto out;
    }
    if (pid == 0) {
        close(sv[0]);
        netns_child(sv[1], r->netns_path);
    }
    bx_close(&sv[1]);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    fd_msg_init(&m, &e, 1);
    do {
        n = recvmsg(sv[0], &m.mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        kill(pid, SIGKILL); /* bounded: a child that hangs is killed */
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof(e)) {
        bx_err_set(err, BX_E_INTERNAL, EIO, "creating network namespace: no answer from helper");
        goto out;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m.mh); cm; cm = CMSG_NXTHDR(&m.mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&nl, CMSG_DATA(cm), sizeof(int));
    if (e != 0 || nl < 0) {
        errno = e ? e : EIO;
        bx_err_sys(err, BX_E_INTERNAL, "creating network namespace");
        bx_close(&nl);
        goto out;
    }
    nl = nl_setup(nl, err);
out:
    bx_close(&sv[0]);
    bx_close(&sv[1]);
    return nl;
}

static int configure_inside(struct net_run *r, int nl, struct bx_err *err)
{
    struct net *n = r->net;
    struct net_nlmsg m;
    struct net_link eth;
    if (nl_link_op(nl, &m, net_msg_set_link(&m, "lo", NULL, 1, 0), "loopback up", err) < 0 ||
        nl_get_link(nl, "eth0", &eth, err) < 0 ||
        nl_link_op(nl, &m, net_msg_new_addr(&m, eth.ifindex, r->addr, n->prefix), "sandbox address",
                   err) < 0 ||
        nl_link_op(nl, &m, net_msg_set_link(&m, "eth0", NULL, 1, 0), "sandbox link up", err) < 0 ||
        nl_link_op(nl, &m, net_msg_new_default_route(&m, eth.ifindex, n->gateway),
                   "sandbox default route", err) < 0)
        return -1;
    return 0;
}

/* The run's egress rules, in place before its veth exists. */
static int add_egress_rules(struct net_run *r, const struct net_egress *egress, size_t negress,
                            struct bx_err *err)
{
    struct sbuf script;
    int ret = -1;
    sbuf_init(&script, 1u << 20);
    r->egress_rules = 1;
    if (net_nft_run_script(r->net->bridge, r->addr, r->veth, egress, negress, &script) < 0)
        bx_err_set(err, BX_E_INTERNAL, ENOMEM, "egress rules too large");
    else if (run_nft(r->net, &script, err) < 0)
        bx_err_wrap(err, "egress rules");
    else
        ret = 0;
    sbuf_free(&script);
    return ret;
}

static int del_egress_rules(const struct net *n, uint32_t addr, const char *veth)
{
    struct sbuf script;
    struct bx_err e;
    int ret = -1;
    bx_err_clear(&e);
    sbuf_init(&script, 1u << 16);
    if (net_nft_run_delete_script(n->bridge, addr, veth, &script) == 0 &&
        run_nft(n, &script, &e) == 0)
        ret = 0;
    else
        bx_log_warn("removing the egress rules of %s: %s", veth,
                    e.msg[0] ? e.msg : "script too large");
    sbuf_free(&script);
    return ret;
}

int net_run_setup(struct net *n, const char *run_dir, int run_dirfd, const char *exec_id,
                  const struct net_egress *egress, size_t negress, int restrict_egress,
                  struct net_run **out, struct bx_err *err)
{
    struct net_run *r;
    struct net_nlmsg m;
    struct sbuf resolv;
    char alias[128];
    int nl = -1, nsfd = -1, ret = -1;
    size_t k = 0;

    if (net_unavailable(n))
        return bx_err_set(err, BX_E_INTERNAL, 0, "network sandbox is unavailable on this server: %s",
                          net_unavailable(n));
    r = calloc(1, sizeof(*r));
    if (!r)
        return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    r->net = n;
    sbuf_init(&resolv, 4096);
    if (net_pool_alloc(&n->pool, &r->addr) < 0) {
        bx_err_set(err, BX_E_UNAVAILABLE, EADDRNOTAVAIL, "no free address in sandbox_subnet; retry later");
        goto out;
    }
    r->have_addr = 1;
    /* "bxv" + the first 12 hex digits after the exec id's last '-': the
     * UUID's last group (boxer-[<node>-]<uuid>) or a box's random part
     * (box-<hex>), never a node id (issue 17). */
    memcpy(r->veth, VETH_PREFIX, 3);
    for (const char *p = strrchr(exec_id, '-'); p && *p && k < 12; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
            r->veth[3 + k++] = *p;
    r->veth[3 + k] = '\0';
    if (k < 12) {
        bx_err_set(err, BX_E_INTERNAL, EINVAL, "bad exec id");
        goto out;
    }
    if ((size_t)snprintf(r->netns_path, sizeof(r->netns_path), "%s/netns", run_dir) >=
            sizeof(r->netns_path) ||
        (size_t)snprintf(r->resolv_path, sizeof(r->resolv_path), "%s/resolv.conf", run_dir) >=
            sizeof(r->resolv_path)) {
        bx_err_set(err, BX_E_INTERNAL, ENAMETOOLONG, "run directory path too long");
        goto out;
    }
    if (restrict_egress && add_egress_rules(r, egress, negress, err) < 0)
        goto out;
    nl = make_netns(r, run_dirfd, err);
    if (nl < 0)
        goto out;
    nsfd = openat(run_dirfd, "netns", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (nsfd < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "open netns");
        goto out;
    }
    r->veth_made = 1;
    if (nl_link_op(n->nl, &m, net_msg_new_veth(&m, r->veth, n->bridge_index, "eth0", nsfd),
                   "creating veth", err) < 0) {
        if (err && err->sys_errno == EEXIST)
            r->veth_made = 0; /* someone else's: never delete it */
        goto out;
    }
    snprintf(alias, sizeof(alias), "boxer:%s:%s", n->bridge, exec_id);
    if (nl_link_op(n->nl, &m, net_msg_set_link(&m, r->veth, alias, 1, 1), "veth up", err) < 0 ||
        configure_inside(r, nl, err) < 0)
        goto out;
    if (net_resolv_conf(n->dns, n->ndns, &resolv) < 0 ||
        bx_write_file_atomic_at(run_dirfd, "resolv.conf", resolv.data, resolv.len, 0644, err) < 0)
        goto out;
    ret = 0;
out:
    bx_close(&nl);
    bx_close(&nsfd);
    sbuf_free(&resolv);
    if (ret < 0) {
        bx_err_wrap(err, "network sandbox");
        net_run_free(&r);
        return -1;
    }
    *out = r;
    return 0;
}

const char *net_run_netns_path(const struct net_run *r)
{
    return r->netns_path;
}

const char *net_run_resolv_path(const struct net_run *r)
{
    return r->resolv_path;
}

#define DEL_VETH_FAILED 1
#define DEL_RULES_FAILED 2

/* In the deletion child (proc_fork): plain blocking code, its own
 * netlink socket (the child shares no descriptor with the loop).  The
 * veth goes first, so the sandbox can send nothing once its rules are
 * gone. */
static int del_child(void *arg)
{
    struct net_del *d = arg;
    struct net_nlmsg m;
    struct bx_err e;
    int fd, r = -1, ret = 0;
    bx_err_clear(&e);
    fd = nl_open(&e);
    if (fd >= 0) {
        r = nl_link_op(fd, &m, net_msg_del_link(&m, d->veth), "removing veth", &e);
        close(fd);
    }
    if (r < 0 && e.sys_errno != ENODEV)
        ret |= DEL_VETH_FAILED;
    if (d->egress_rules && del_egress_rules(d->net, d->addr, d->veth) < 0)
        ret |= DEL_RULES_FAILED;
    return ret;
}

/* The address goes back to the pool only without rules left behind: a
 * run given it later must not inherit another run's allow-list (nor its
 * own rules be deleted late).  An address whose rules could not be
 * removed stays out of the pool until the next start re-creates the
 * tables. */
static void release_addr(struct net *n, uint32_t addr, int rules_left)
{
    char a[16];
    if (!rules_left) {
        net_pool_release(&n->pool, addr);
        return;
    }
    net_format_ipv4(addr, a);
    bx_log_warn("sandbox address %s withheld until restart (its egress rules could "
                "not be removed)",
                a);
}

static void del_done(void *arg, int status)
{
    struct net_del *d = arg;
    struct net *n = d->net;
    int failed = WIFEXITED(status) ? WEXITSTATUS(status) : DEL_VETH_FAILED | DEL_RULES_FAILED;
    int rules_left = 0;
    for (struct net_del **pp = &n->deleting; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    if (failed & DEL_VETH_FAILED)
        del_link_now(n, d->veth); /* says why, if it fails again */
    if (d->egress_rules && (failed & DEL_RULES_FAILED))
        rules_left = del_egress_rules(n, d->addr, d->veth) < 0;
    if (d->have_addr)
        release_addr(n, d->addr, rules_left);
    proc_free(&d->proc);
    free(d);
}

void net_run_free(struct net_run **rp)
{
    struct net_run *r = *rp;
    struct net *n;
    if (!r)
        return;
    *rp = NULL;
    n = r->net;
    /* Deleting one end of a veth deletes both; the netns itself goes when
     * its last user (runsc) is gone and the mount below is removed. */
    if (r->veth_made || r->egress_rules) {
        struct net_del *d = n->loop ? calloc(1, sizeof(*d)) : NULL;
        struct bx_err e;
        int handed = 0;
        bx_err_clear(&e);
        if (d) {
            d->net = n;
            snprintf(d->veth, sizeof(d->veth), "%s", r->veth);
            d->addr = r->addr;
            d->egress_rules = r->egress_rules;
            if (proc_fork(n->loop, NULL, 0, del_child, d, del_done, d, &d->proc, &e) == 0) {
                /* The child (del_done) owns the address from here. */
                d->have_addr = r->have_addr;
                r->have_addr = 0;
                d->next = n->deleting;
                n->deleting = d;
                handed = 1;
            } else {
                bx_log_warn("%s: %s; removing it in place", r->veth, e.msg);
                free(d);
            }
        }
        if (!handed) {
            /* In place: no loop, or no child. */
            int rules_left = 0;
            if (r->veth_made)
                del_link_now(n, r->veth);
            if (r->egress_rules)
                rules_left = del_egress_rules(n, r->addr, r->veth) < 0;
            if (r->have_addr)
                release_addr(n, r->addr, rules_left);
            r->have_addr = 0;
        }
    }
    if (r->netns_made) {
        if (umount2(r->netns_path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
            bx_log_warn("umount %s: %s", r->netns_path, strerror(errno));
        if (unlink(r->netns_path) < 0 && errno != ENOENT)
            bx_log_warn("unlink %s: %s", r->netns_path, strerror(errno));
    }
    if (r->have_addr)
        net_pool_release(&n->pool, r->addr);
    free(r);
}

