/* Sandbox networking: the `sandbox` network mode of POST /run.
 *
 * Shape (everything created here with rtnetlink messages built by hand; the
 * one extra program is `nft`, Debian package nftables):
 *
 *   host netns                                 per-run netns (<run dir>/netns)
 *   bridge <bridge_name>, <subnet>.1  <-- veth "bxv<12 hex of exec id>" -- eth0 <subnet>.N
 *   nft tables "inet boxer_<bridge>" and                                  default via .1
 *   "bridge boxer_<bridge>"; ip_forward = 1                                lo up, no IPv6
 *
 * runsc --network=sandbox joins the run's netns (the spec's network
 * namespace path), copies eth0's address and routes into gVisor's netstack
 * and takes the address off the host interface, so no host kernel stack
 * answers inside the netns.
 *
 * Isolation is by the shared nft tables, by bridge port isolation and,
 * for a run with an egress allow-list, by rules keyed by its address:
 *   - a packet from the bridge to any address of the host (bridge .1, the
 *     LAN address, ...) is dropped in prerouting before destination NAT
 *     (priority dstnat - 10, fib daddr type local), so a port that Docker,
 *     kube-proxy or any DNAT rule publishes on a host address cannot be
 *     reached through the rewrite; the exceptions are replies to
 *     connections the host opened and DNS to a dns_servers address;
 *   - input from the bridge is dropped (Boxer's port, anything on the bridge
 *     address or on any other host address), except replies and DNS to a
 *     configured dns_servers address;
 *   - forwarding from the bridge to 169.254.0.0/16, 0/8, 127/8, 224/4,
 *     240/4, the sandbox subnet itself, the host's addresses and
 *     blocked_egress is rejected; unless allow_private_egress, also the
 *     private networks (10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15)
 *     and the networks of the host's interfaces (its LAN), as found at
 *     start.  The destination is checked both after DNAT and as the
 *     connection's original destination.  DNS to a dns_servers address
 *     (port 53) passes first; IPv6 from the bridge dropped;
 *   - a run with an egress list: map "runs" sends its address to chain
 *     run_<address in hex>, which accepts only the listed destinations
 *     and rejects the rest; a bridge-family rule drops frames from its
 *     veth with any other source address, so it cannot borrow an
 *     unrestricted address.  The rules are added before the sandbox
 *     starts and removed before its address returns to the pool; the
 *     tables are re-created at start, which sweeps a crashed run's rules;
 *   - nothing is forwarded into the bridge but replies;
 *   - the veth ports are isolated bridge ports and a bridge-family rule
 *     drops frames between two "bxv*" ports, so sandboxes never see each
 *     other at layer 2 either;
 *   - outbound IPv4 is masqueraded.
 *
 * Ownership: one Boxer owns a bridge name at a time (a flock on
 * /run/boxer/net-<bridge>.lock).  Start-up removes what a crashed owner
 * left (veths whose alias is "boxer:<bridge>:<exec id>", the bridge, whose
 * alias is "boxer:<bridge>") and re-creates bridge and tables; a clean
 * stop removes them.  A link of that name that Boxer did not create is
 * never touched.  IPv4 forwarding is left on at stop (other bridges may
 * rely on it).
 *
 * A failure at start-up (no nft, no nf_tables, bridge owned by another
 * Boxer...) is not fatal: `sandbox` runs are then refused with 500 and the
 * reason (net_unavailable()).
 */
#ifndef BOXER_NET_H
#define BOXER_NET_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "loop.h"
#include "util.h"

struct net;
struct net_run;

/* Reads the network fields of cfg (config_validate has checked them; a
 * wrong value here is still a 400 naming the field).  Touches nothing.
 * loop (may be NULL: everything then happens synchronously) runs the
 * deletion of run links in forked children: the kernel takes 15-25 ms to
 * delete a veth, too long to hold the event loop at the end of every run. */
int net_new(struct net **out, const struct config *cfg, struct loop *loop, struct bx_err *err);
/* Start-up sweep and set-up (see above).  Returns -1 with the reason in
 * err and leaves sandbox mode unavailable; the server can go on. */
int net_start(struct net *n, struct bx_err *err);
/* NULL when sandbox runs can start, else why not. */
const char *net_unavailable(const struct net *n);
/* One line for the start-up log. */
const char *net_describe(const struct net *n);
/* Removes bridge, tables and any veth left (when started) and frees. */
void net_free(struct net **n);

/* A run's network: address from the pool, netns bind-mounted at
 * <run_dir>/netns, veth on the bridge, <run_dir>/resolv.conf.  Partial
 * state is undone by net_run_free. */
struct net_egress;
/* restrict_egress: only the negress destinations of egress (plus DNS) are
 * reachable; 0: the server-wide rules alone. */
int net_run_setup(struct net *n, const char *run_dir, int run_dirfd, const char *exec_id,
                  const struct net_egress *egress, size_t negress, int restrict_egress,
                  struct net_run **out, struct bx_err *err);
const char *net_run_netns_path(const struct net_run *r);
const char *net_run_resolv_path(const struct net_run *r);
/* Unmounts the netns, deletes the veth and the run's egress rules (in a
 * child when there is a loop; a failure there is retried here, and a
 * crash is swept at the next start), then frees the address: only once
 * the rules are gone, so a new run never inherits them. */
void net_run_free(struct net_run **r);

/* ---- pure helpers, exposed for the unit tests ---- */

/* Strict dotted quad / "a.b.c.d/len" (no host bits) to host-order values. */
int net_parse_ipv4(const char *s, uint32_t *out);
int net_parse_cidr4(const char *s, uint32_t *addr, unsigned *prefix);
void net_format_ipv4(uint32_t a, char out[16]);

/* Address pool over a subnet: index 0 (network), 1 (the bridge) and the
 * broadcast address are never handed out; next-fit, so a freed address is
 * reused only after the rest of the subnet. */
struct net_pool {
    uint32_t base;
    unsigned prefix;
    uint32_t size;   /* addresses in the subnet */
    uint32_t cursor; /* next index to try */
    uint32_t used;
    uint64_t *bits;
};
int net_pool_init(struct net_pool *p, uint32_t base, unsigned prefix, struct bx_err *err);
int net_pool_alloc(struct net_pool *p, uint32_t *addr); /* -1 when full */
void net_pool_release(struct net_pool *p, uint32_t addr);
void net_pool_destroy(struct net_pool *p);

/* One entry of a run's egress allow-list: "a.b.c.d[/len][:port]". */
struct net_egress {
    uint32_t addr; /* network address, host order */
    unsigned prefix;
    unsigned port; /* 0: every port and protocol; else TCP and UDP to it */
};
/* Strict: a dotted quad, an optional /0../32 with no host bits, an
 * optional :1..65535; nothing else (len bytes, need not end in NUL). */
int net_parse_egress(const char *s, size_t len, struct net_egress *out);
#define NET_EGRESS_TEXT_MAX 24 /* "255.255.255.255/32:65535" */

/* The nft script for the shared tables (idempotent: creates, flushes by
 * deleting, re-creates, in one transaction). */
struct net_rules {
    const char *bridge;
    uint32_t subnet;
    unsigned prefix;
    const uint32_t *dns;
    size_t ndns;
    const uint32_t *blocked; /* network addresses */
    const unsigned *blocked_len;
    size_t nblocked;
    int allow_private_egress;
    /* The host's own addresses (always blocked as /32) and, unless
     * allow_private_egress, their networks (prefix 8 or longer). */
    const uint32_t *host_addr;
    const unsigned *host_prefix;
    size_t nhost;
};
int net_nft_script(const struct net_rules *r, struct sbuf *out);
int net_nft_delete_script(const char *bridge, struct sbuf *out);
/* A run's egress rules (idempotent: replaces what its address had) and
 * their removal (idempotent: succeeds when they are already gone). */
int net_nft_run_script(const char *bridge, uint32_t addr, const char *veth,
                       const struct net_egress *egress, size_t negress, struct sbuf *out);
int net_nft_run_delete_script(const char *bridge, uint32_t addr, const char *veth,
                              struct sbuf *out);
int net_resolv_conf(const uint32_t *dns, size_t ndns, struct sbuf *out);

/* rtnetlink messages.  A message is built into a net_nlmsg; every builder
 * returns -1 when it would not fit (nothing is sent then). */
#define NET_NLMSG_MAX 1024
struct net_nlmsg {
    size_t len;
    int overflow;
    _Alignas(8) unsigned char buf[NET_NLMSG_MAX];
};
int net_msg_new_bridge(struct net_nlmsg *m, const char *name, const unsigned char mac[6]);
int net_msg_new_veth(struct net_nlmsg *m, const char *name, int master_ifindex,
                     const char *peer_name, int peer_netns_fd);
/* Modifies a link found by name: alias (or NULL), up, bridge port
 * isolation (only for a bridge port). */
int net_msg_set_link(struct net_nlmsg *m, const char *name, const char *alias, int up,
                     int port_isolated);
int net_msg_del_link(struct net_nlmsg *m, const char *name);
int net_msg_get_link(struct net_nlmsg *m, const char *name); /* name NULL: dump all */
int net_msg_new_addr(struct net_nlmsg *m, int ifindex, uint32_t addr, unsigned prefix);
int net_msg_new_default_route(struct net_nlmsg *m, int ifindex, uint32_t gateway);

/* Walks the messages in a buffer received from the kernel: returns 1 and
 * sets msg and msg_len for the next one, 0 at the end, -1 when the framing
 * is broken (a length that is short or runs past the buffer). */
int net_nl_next(const unsigned char *buf, size_t len, size_t *off, const unsigned char **msg,
                size_t *msg_len);

/* An NLMSG_ERROR message: *error is the (negative) errno or 0 for an ACK;
 * the extended-ack text, if any, is copied into text.  -1 if malformed. */
int net_nl_parse_error(const unsigned char *msg, size_t len, int *error, char *text,
                       size_t text_cap);

struct net_link {
    int ifindex;
    int master;
    unsigned flags;
    char name[16];
    char kind[16];
    char alias[256];
};
/* An RTM_NEWLINK message.  -1 if malformed. */
int net_nl_parse_link(const unsigned char *msg, size_t len, struct net_link *out);

#endif
