/* The text the network module hands to other programs: the nft scripts
 * for the bridge's tables and each run's egress rules, and resolv.conf.
 * Pure (no I/O), unit-tested and fuzzed.  See net.h.
 */
#include "net.h"

#include <stdio.h>
#include <string.h>

#include "net_internal.h"

/* ---- generated text: nft script, resolv.conf ---- */

/* Always out of reach: "this network", loopback, link-local (cloud
 * metadata), multicast and the reserved 240/4. */
static const struct {
    uint32_t net;
    unsigned len;
} always_blocked[] = {
    {0x00000000u, 8}, {0x7f000000u, 8}, {0xa9fe0000u, 16}, {0xe0000000u, 4}, {0xf0000000u, 4},
};
/* Unless allow_private_egress: RFC 1918, carrier-grade NAT (some clouds'
 * metadata and internal services) and the benchmarking range. */
static const struct {
    uint32_t net;
    unsigned len;
} private_nets[] = {
    {0x0a000000u, 8}, {0xac100000u, 12}, {0xc0a80000u, 16}, {0x64400000u, 10}, {0xc6120000u, 15},
};

/* Every name and address below was validated (bridge charset) or is
 * formatted from integers, so nothing a client or a config could inject
 * reaches nft as syntax. */
/* The rule that lets sandboxes on bridge b reach the DNS servers (set
 * @dns), in a hook chain; nothing without DNS servers. */
static int dns_accept(struct sbuf *out, const struct net_rules *r, const char *b)
{
    if (r->ndns == 0)
        return 0;
    return sbuf_appendf(out,
                        "\t\tiifname \"%s\" ip daddr @dns meta l4proto { tcp, udp } th dport "
                        "53 accept\n",
                        b);
}

int net_nft_script(const struct net_rules *r, struct sbuf *out)
{
    char a[16];
    const char *b = r->bridge;
    int rc = 0;

    net_format_ipv4(r->subnet, a);
    rc |= sbuf_appendf(out,
                       "table inet boxer_%s\n"
                       "delete table inet boxer_%s\n"
                       "table inet boxer_%s {\n"
                       "\tset blocked {\n"
                       "\t\ttype ipv4_addr\n"
                       "\t\tflags interval\n"
                       "\t\tauto-merge\n"
                       "\t\telements = { %s/%u",
                       b, b, b, a, r->prefix);
    for (size_t i = 0; i < BX_ARRAY_LEN(always_blocked); i++) {
        net_format_ipv4(always_blocked[i].net, a);
        rc |= sbuf_appendf(out, ", %s/%u", a, always_blocked[i].len);
    }
    for (size_t i = 0; !r->allow_private_egress && i < BX_ARRAY_LEN(private_nets); i++) {
        net_format_ipv4(private_nets[i].net, a);
        rc |= sbuf_appendf(out, ", %s/%u", a, private_nets[i].len);
    }
    for (size_t i = 0; i < r->nhost; i++) {
        /* The host's address (also as a connection's original
         * destination, below) and, by default, its LAN. */
        net_format_ipv4(r->host_addr[i], a);
        rc |= sbuf_appendf(out, ", %s/32", a);
        if (!r->allow_private_egress && r->host_prefix[i] >= 8 && r->host_prefix[i] < 32) {
            net_format_ipv4(r->host_addr[i] & net_prefix_mask(r->host_prefix[i]), a);
            rc |= sbuf_appendf(out, ", %s/%u", a, r->host_prefix[i]);
        }
    }
    for (size_t i = 0; i < r->nblocked; i++) {
        net_format_ipv4(r->blocked[i], a);
        rc |= sbuf_appendf(out, ", %s/%u", a, r->blocked_len[i]);
    }
    rc |= sbuf_appendf(out, " }\n\t}\n");
    if (r->ndns > 0) {
        rc |= sbuf_appendf(out, "\tset dns {\n\t\ttype ipv4_addr\n\t\telements = { ");
        for (size_t i = 0; i < r->ndns; i++) {
            net_format_ipv4(r->dns[i], a);
            rc |= sbuf_appendf(out, "%s%s", i ? ", " : "", a);
        }
        rc |= sbuf_appendf(out, " }\n\t}\n");
    }
    /* Runs with an egress list: their address -> their chain. */
    rc |= sbuf_appendf(out, "\tmap runs {\n\t\ttype ipv4_addr : verdict\n\t}\n");
    /* Before destination NAT (dstnat is -100): a port that Docker,
     * kube-proxy or any DNAT rule publishes on a host address would
     * otherwise be rewritten to a forwarded destination and pass the
     * input chain.  Replies to connections the host opened still pass. */
    rc |= sbuf_appendf(out,
                       "\tchain prerouting {\n"
                       "\t\ttype filter hook prerouting priority dstnat - 10; policy accept;\n"
                       "\t\tiifname \"%s\" ct direction reply accept\n",
                       b);
    rc |= dns_accept(out, r, b);
    rc |= sbuf_appendf(out,
                       "\t\tiifname \"%s\" fib daddr type { local, broadcast, multicast } drop\n"
                       "\t}\n",
                       b);
    /* Sandboxes reach the host only for DNS (when a DNS server is a host
     * address) and with replies to connections the host opened. */
    rc |= sbuf_appendf(out,
                       "\tchain input {\n"
                       "\t\ttype filter hook input priority filter; policy accept;\n"
                       "\t\tiifname \"%s\" ct state established,related accept\n",
                       b);
    rc |= dns_accept(out, r, b);
    rc |= sbuf_appendf(out, "\t\tiifname \"%s\" drop\n\t}\n", b);
    /* Out of the bridge: IPv4 only, never to link-local metadata, another
     * sandbox or a blocked network (rejected, so clients fail at once),
     * checked after DNAT and, in case a DNAT rule rewrote a blocked
     * destination to an open one, before it; a run with an egress list
     * only to its list; into the bridge: replies only. */
    rc |= sbuf_appendf(out,
                       "\tchain forward {\n"
                       "\t\ttype filter hook forward priority filter; policy accept;\n"
                       "\t\tiifname \"%s\" meta nfproto ipv6 drop\n"
                       /* Uplinks with a smaller MTU (1400-1460 on many VMs)
                        * would otherwise rely on path MTU discovery. */
                       "\t\tiifname \"%s\" tcp flags syn tcp option maxseg size set rt mtu\n",
                       b, b);
    if (r->ndns > 0)
        rc |= sbuf_appendf(out,
                           "\t\tiifname \"%s\" ip daddr @dns meta l4proto { tcp, udp } th dport "
                           "53 accept\n",
                           b);
    net_format_ipv4(r->subnet, a);
    rc |= sbuf_appendf(out,
                       "\t\tiifname \"%s\" ip daddr @blocked reject with icmpx admin-prohibited\n"
                       "\t\tiifname \"%s\" ct original ip daddr @blocked reject with icmpx "
                       "admin-prohibited\n"
                       "\t\tiifname \"%s\" ip saddr vmap @runs\n"
                       "\t\tiifname \"%s\" accept\n"
                       "\t\toifname \"%s\" ct state established,related accept\n"
                       "\t\toifname \"%s\" drop\n"
                       "\t}\n"
                       "\tchain postrouting {\n"
                       "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                       "\t\tip saddr %s/%u oifname != \"%s\" masquerade\n"
                       "\t}\n"
                       "}\n",
                       b, b, b, b, b, b, a, r->prefix, b);
    /* Layer 2: no frame from one sandbox port to another (on top of
     * bridge port isolation); a port of a run with an egress list sends
     * only from its own address (the inet rules key on it). */
    rc |= sbuf_appendf(out,
                       "table bridge boxer_%s\n"
                       "delete table bridge boxer_%s\n"
                       "table bridge boxer_%s {\n"
                       "\tset egress_ports {\n\t\ttype ifname\n\t}\n"
                       "\tset egress_src {\n\t\ttype ifname . ipv4_addr\n\t}\n"
                       "\tchain prerouting {\n"
                       "\t\ttype filter hook prerouting priority filter; policy accept;\n"
                       "\t\tiifname @egress_ports ether type ip iifname . ip saddr != "
                       "@egress_src drop\n"
                       "\t\tiifname @egress_ports ether type != { ip, arp } drop\n"
                       "\t}\n"
                       "\tchain forward {\n"
                       "\t\ttype filter hook forward priority filter; policy accept;\n"
                       "\t\tiifname \"" VETH_PREFIX "*\" oifname \"" VETH_PREFIX "*\" drop\n"
                       "\t}\n"
                       "}\n",
                       b, b, b);
    return rc ? -1 : 0;
}

int net_nft_delete_script(const char *bridge, struct sbuf *out)
{
    /* "table X" first makes the delete succeed when X is already gone. */
    return sbuf_appendf(out,
                        "table inet boxer_%s\ndelete table inet boxer_%s\n"
                        "table bridge boxer_%s\ndelete table bridge boxer_%s\n",
                        bridge, bridge, bridge, bridge);
}

int net_nft_run_script(const char *bridge, uint32_t addr, const char *veth,
                       const struct net_egress *egress, size_t negress, struct sbuf *out)
{
    char a[16], d[16];
    int rc = 0;

    net_format_ipv4(addr, a);
    /* add + flush: whatever a predecessor with this address left is
     * replaced, in the same transaction as the rest. */
    rc |= sbuf_appendf(out,
                       "add chain inet boxer_%s run_%08x\n"
                       "flush chain inet boxer_%s run_%08x\n",
                       bridge, addr, bridge, addr);
    for (size_t i = 0; i < negress; i++) {
        net_format_ipv4(egress[i].addr, d);
        if (egress[i].port)
            rc |= sbuf_appendf(out,
                               "add rule inet boxer_%s run_%08x ip daddr %s/%u meta l4proto { "
                               "tcp, udp } th dport %u accept\n",
                               bridge, addr, d, egress[i].prefix, egress[i].port);
        else
            rc |= sbuf_appendf(out, "add rule inet boxer_%s run_%08x ip daddr %s/%u accept\n",
                               bridge, addr, d, egress[i].prefix);
    }
    rc |= sbuf_appendf(out,
                       "add rule inet boxer_%s run_%08x reject with icmpx admin-prohibited\n"
                       "add element inet boxer_%s runs { %s : jump run_%08x }\n"
                       "add element bridge boxer_%s egress_ports { \"%s\" }\n"
                       "add element bridge boxer_%s egress_src { \"%s\" . %s }\n",
                       bridge, addr, bridge, a, addr, bridge, veth, bridge, veth, a);
    return rc ? -1 : 0;
}

int net_nft_run_delete_script(const char *bridge, uint32_t addr, const char *veth, struct sbuf *out)
{
    char a[16];
    net_format_ipv4(addr, a);
    /* Each "add" first makes the delete after it succeed when the object
     * is already gone (nft has no "delete if present" for elements). */
    return sbuf_appendf(out,
                        "add chain inet boxer_%s run_%08x\n"
                        "add element inet boxer_%s runs { %s : jump run_%08x }\n"
                        "delete element inet boxer_%s runs { %s }\n"
                        "flush chain inet boxer_%s run_%08x\n"
                        "delete chain inet boxer_%s run_%08x\n"
                        "add element bridge boxer_%s egress_ports { \"%s\" }\n"
                        "delete element bridge boxer_%s egress_ports { \"%s\" }\n"
                        "add element bridge boxer_%s egress_src { \"%s\" . %s }\n"
                        "delete element bridge boxer_%s egress_src { \"%s\" . %s }\n",
                        bridge, addr, bridge, a, addr, bridge, a, bridge, addr, bridge, addr,
                        bridge, veth, bridge, veth, bridge, veth, a, bridge, veth, a);
}

int net_resolv_conf(const uint32_t *dns, size_t ndns, struct sbuf *out)
{
    char a[16];
    int rc = 0;
    if (ndns == 0)
        return sbuf_appendf(out, "# Boxer: no dns_servers configured; names do not resolve\n");
    rc |= sbuf_appendf(out, "# Boxer: dns_servers\n");
    for (size_t i = 0; i < ndns; i++) {
        net_format_ipv4(dns[i], a);
        rc |= sbuf_appendf(out, "nameserver %s\n", a);
    }
    return rc ? -1 : 0;
}
