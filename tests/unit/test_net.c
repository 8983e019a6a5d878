/* Unit tests for net.c: address parsing, the address pool, the generated
 * nft script and resolv.conf, the rtnetlink message builders (checked by
 * parsing them back and by sending them to the real kernel inside a
 * private network namespace of the test process), and the parsers of
 * kernel answers, fed from guard-page buffers (tests/unit/guard.h). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_main.h"
#include "net.h"
#include "tests/unit/guard.h"

static uint32_t ip(const char *s)
{
    uint32_t a = 0;
    ck_assert_int_eq(net_parse_ipv4(s, &a), 0);
    return a;
}

/* ---- addresses ---- */

START_TEST(test_parse_ipv4)
{
    uint32_t a;
    char out[16];
    static const char *const bad[] = {"",         "1.2.3",    "1.2.3.4.5", "256.1.1.1",
                                      "01.2.3.4", "1.2.3.4 ", " 1.2.3.4",  "a.b.c.d",
                                      "1..2.3",   "::1",      "1.2.3.-4",  NULL};
    ck_assert_int_eq(net_parse_ipv4("10.88.0.1", &a), 0);
    ck_assert_uint_eq(a, 0x0a580001u);
    net_format_ipv4(a, out);
    ck_assert_str_eq(out, "10.88.0.1");
    net_format_ipv4(0xffffffffu, out);
    ck_assert_str_eq(out, "255.255.255.255");
    for (size_t i = 0; bad[i]; i++)
        ck_assert_msg(net_parse_ipv4(bad[i], &a) < 0, "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_parse_cidr4)
{
    uint32_t a;
    unsigned p;
    static const char *const bad[] = {
        "10.88.0.0",    "10.88.0.1/16",   "10.88.0.0/33",   "10.88.0.0/",    "/16", "10.88.0.0/-1",
        "10.88.0.0/1x", "10.88.0.0/016x", "10.88.0.0/16/1", "10.88.0.0 /16", NULL};
    ck_assert_int_eq(net_parse_cidr4("10.88.0.0/16", &a, &p), 0);
    ck_assert_uint_eq(a, 0x0a580000u);
    ck_assert_uint_eq(p, 16);
    ck_assert_int_eq(net_parse_cidr4("0.0.0.0/0", &a, &p), 0);
    ck_assert_uint_eq(p, 0);
    ck_assert_int_eq(net_parse_cidr4("198.18.99.1/32", &a, &p), 0);
    ck_assert_uint_eq(p, 32);
    for (size_t i = 0; bad[i]; i++)
        ck_assert_msg(net_parse_cidr4(bad[i], &a, &p) < 0, "accepted %s", bad[i]);
}
END_TEST

/* ---- pool ---- */

START_TEST(test_pool_small)
{
    struct net_pool p;
    uint32_t a;
    ck_assert_int_eq(net_pool_init(&p, ip("10.0.0.0"), 30, NULL), 0);
    /* /30: .0 network, .1 bridge, .3 broadcast: only .2 */
    ck_assert_int_eq(net_pool_alloc(&p, &a), 0);
    ck_assert_uint_eq(a, ip("10.0.0.2"));
    ck_assert_int_eq(net_pool_alloc(&p, &a), -1);
    net_pool_release(&p, ip("10.0.0.2"));
    ck_assert_int_eq(net_pool_alloc(&p, &a), 0);
    ck_assert_uint_eq(a, ip("10.0.0.2"));
    net_pool_destroy(&p);
}
END_TEST

START_TEST(test_pool_bad)
{
    struct net_pool p;
    struct bx_err err;
    ck_assert_int_lt(net_pool_init(&p, ip("10.0.0.1"), 24, &err), 0);
    ck_assert_int_eq(err.status, 400);
    ck_assert_int_lt(net_pool_init(&p, ip("10.0.0.0"), 31, NULL), 0);
    ck_assert_int_lt(net_pool_init(&p, ip("10.0.0.0"), 7, NULL), 0);
}
END_TEST

START_TEST(test_pool_unique_and_next_fit)
{
    struct net_pool p;
    uint32_t a, first, seen[256];
    size_t n = 0;
    ck_assert_int_eq(net_pool_init(&p, ip("192.168.7.0"), 24, NULL), 0);
    while (net_pool_alloc(&p, &a) == 0) {
        ck_assert_uint_eq(a & 0xffffff00u, ip("192.168.7.0"));
        ck_assert_uint_ne(a, ip("192.168.7.0"));
        ck_assert_uint_ne(a, ip("192.168.7.1"));
        ck_assert_uint_ne(a, ip("192.168.7.255"));
        for (size_t i = 0; i < n; i++)
            ck_assert_uint_ne(seen[i], a);
        ck_assert_uint_lt(n, 256);
        seen[n++] = a;
    }
    ck_assert_uint_eq(n, 253);
    /* Releasing something not handed out changes nothing. */
    net_pool_release(&p, ip("192.168.7.1"));
    net_pool_release(&p, ip("192.168.7.255"));
    net_pool_release(&p, ip("10.0.0.5"));
    ck_assert_int_eq(net_pool_alloc(&p, &a), -1);
    net_pool_release(&p, seen[10]);
    net_pool_release(&p, seen[10]); /* double release is harmless */
    ck_assert_int_eq(net_pool_alloc(&p, &a), 0);
    ck_assert_uint_eq(a, seen[10]);
    ck_assert_int_eq(net_pool_alloc(&p, &a), -1);
    net_pool_destroy(&p);

    /* Next fit: a released address comes back only after the others. */
    ck_assert_int_eq(net_pool_init(&p, ip("10.1.0.0"), 16, NULL), 0);
    ck_assert_int_eq(net_pool_alloc(&p, &first), 0);
    ck_assert_uint_eq(first, ip("10.1.0.2"));
    net_pool_release(&p, first);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(net_pool_alloc(&p, &a), 0);
        ck_assert_uint_ne(a, first);
        net_pool_release(&p, a);
    }
    net_pool_destroy(&p);
}
END_TEST

START_TEST(test_pool_big_wraps)
{
    struct net_pool p;
    uint32_t a;
    uint32_t count = 0;
    ck_assert_int_eq(net_pool_init(&p, ip("10.0.0.0"), 14, NULL), 0);
    while (net_pool_alloc(&p, &a) == 0)
        count++;
    ck_assert_uint_eq(count, (1u << 18) - 3);
    net_pool_release(&p, ip("10.0.0.2"));
    net_pool_release(&p, ip("10.3.255.254"));
    ck_assert_int_eq(net_pool_alloc(&p, &a), 0);
    ck_assert_int_eq(net_pool_alloc(&p, &a), 0);
    ck_assert_int_eq(net_pool_alloc(&p, &a), -1);
    net_pool_destroy(&p);
}
END_TEST

/* ---- generated text ---- */

START_TEST(test_nft_script)
{
    uint32_t dns[2] = {ip("198.18.0.53"), ip("10.88.0.1")};
    uint32_t blocked[2] = {ip("198.18.99.0"), ip("203.0.113.7")};
    unsigned blen[2] = {24, 32};
    uint32_t host[2] = {ip("192.0.2.2"), ip("203.0.113.130")};
    unsigned hlen[2] = {24, 32};
    struct net_rules r = {"boxer0", ip("10.88.0.0"), 16, dns, 2, blocked, blen, 2, 0, host, hlen,
                          2};
    struct sbuf sb;
    const char *pre, *fwd;
    sbuf_init(&sb, 1u << 20);
    ck_assert_int_eq(net_nft_script(&r, &sb), 0);
    ck_assert_ptr_nonnull(strstr(sb.data, "table inet boxer_boxer0\ndelete table inet "
                                          "boxer_boxer0\ntable inet boxer_boxer0 {\n"));
    /* Always: the subnet, this network, loopback, link-local, multicast,
     * 240/4; by default the private networks and the host's LAN; the
     * host's own addresses; blocked_egress. */
    ck_assert_ptr_nonnull(strstr(
        sb.data, "elements = { 10.88.0.0/16, 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, "
                 "224.0.0.0/4, 240.0.0.0/4, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
                 "100.64.0.0/10, 198.18.0.0/15, 192.0.2.2/32, 192.0.2.0/24, 203.0.113.130/32, "
                 "198.18.99.0/24, 203.0.113.7/32 }"));
    ck_assert_ptr_nonnull(strstr(sb.data, "elements = { 198.18.0.53, 10.88.0.1 }"));
    ck_assert_ptr_nonnull(strstr(sb.data, "iifname \"boxer0\" drop\n"));
    ck_assert_ptr_nonnull(
        strstr(sb.data, "iifname \"boxer0\" ip daddr @blocked reject with icmpx admin-prohibited"));
    ck_assert_ptr_nonnull(strstr(sb.data, "iifname \"boxer0\" ct original ip daddr @blocked "
                                          "reject with icmpx admin-prohibited"));
    ck_assert_ptr_nonnull(strstr(sb.data, "oifname \"boxer0\" ct state established,related "
                                          "accept\n\t\toifname \"boxer0\" drop\n"));
    ck_assert_ptr_nonnull(
        strstr(sb.data, "ip saddr 10.88.0.0/16 oifname != \"boxer0\" masquerade"));
    ck_assert_ptr_nonnull(
        strstr(sb.data, "iifname \"boxer0\" tcp flags syn tcp option maxseg size set rt mtu\n"));
    ck_assert_ptr_nonnull(strstr(sb.data, "table bridge boxer_boxer0 {"));
    ck_assert_ptr_nonnull(strstr(sb.data, "iifname \"bxv*\" oifname \"bxv*\" drop"));
    /* DNS is let through before the drop / reject rules. */
    ck_assert_msg(strstr(sb.data, "@dns meta l4proto") < strstr(sb.data, "iifname \"boxer0\" drop"),
                  "dns rule after the drop");
    /* Host addresses are dropped before destination NAT (dstnat is
     * -100), after replies and DNS. */
    pre = strstr(sb.data, "\tchain prerouting {\n\t\ttype filter hook prerouting priority "
                          "dstnat - 10; policy accept;\n"
                          "\t\tiifname \"boxer0\" ct direction reply accept\n"
                          "\t\tiifname \"boxer0\" ip daddr @dns meta l4proto { tcp, udp } th "
                          "dport 53 accept\n"
                          "\t\tiifname \"boxer0\" fib daddr type { local, broadcast, multicast } "
                          "drop\n\t}\n");
    ck_assert_ptr_nonnull(pre);
    /* Runs with an egress list: after DNS and the blocked networks, before
     * the accept. */
    fwd = strstr(sb.data, "\tchain forward {");
    ck_assert_ptr_nonnull(fwd);
    ck_assert_ptr_nonnull(strstr(sb.data, "map runs {\n\t\ttype ipv4_addr : verdict\n\t}"));
    ck_assert_ptr_nonnull(strstr(fwd, "ct original ip daddr @blocked reject with icmpx "
                                      "admin-prohibited\n\t\tiifname \"boxer0\" ip saddr vmap "
                                      "@runs\n\t\tiifname \"boxer0\" accept\n"));
    ck_assert_ptr_nonnull(strstr(sb.data, "iifname @egress_ports ether type ip iifname . ip "
                                          "saddr != @egress_src drop"));
    sbuf_free(&sb);

    /* allow_private_egress: no private networks, no LAN, the host's own
     * addresses still. */
    r.allow_private_egress = 1;
    sbuf_init(&sb, 1u << 20);
    ck_assert_int_eq(net_nft_script(&r, &sb), 0);
    ck_assert_ptr_nonnull(
        strstr(sb.data, "elements = { 10.88.0.0/16, 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, "
                        "224.0.0.0/4, 240.0.0.0/4, 192.0.2.2/32, 203.0.113.130/32, "
                        "198.18.99.0/24, 203.0.113.7/32 }"));
    ck_assert_ptr_null(strstr(sb.data, "10.0.0.0/8"));
    sbuf_free(&sb);

    /* Without DNS servers there is no dns set and nothing refers to it. */
    r.allow_private_egress = 0;
    r.ndns = 0;
    r.nblocked = 0;
    r.nhost = 0;
    sbuf_init(&sb, 1u << 20);
    ck_assert_int_eq(net_nft_script(&r, &sb), 0);
    ck_assert_ptr_null(strstr(sb.data, "dns"));
    ck_assert_ptr_nonnull(strstr(sb.data, "198.18.0.0/15 }"));
    sbuf_free(&sb);

    /* Too large for the buffer: refused, not truncated. */
    sbuf_init(&sb, 100);
    ck_assert_int_lt(net_nft_script(&r, &sb), 0);
    sbuf_free(&sb);

    sbuf_init(&sb, 4096);
    ck_assert_int_eq(net_nft_delete_script("br1", &sb), 0);
    ck_assert_str_eq(sb.data, "table inet boxer_br1\ndelete table inet boxer_br1\n"
                              "table bridge boxer_br1\ndelete table bridge boxer_br1\n");
    sbuf_free(&sb);
}
END_TEST

static const struct {
    const char *text;
    uint32_t addr;
    unsigned prefix, port;
} egress_good[] = {
    {"203.0.113.0/24:443", 0xcb007100u, 24, 443},
    {"198.51.100.7", 0xc6336407u, 32, 0},
    {"198.51.100.7:1", 0xc6336407u, 32, 1},
    {"198.51.100.7:65535", 0xc6336407u, 32, 65535},
    {"0.0.0.0/0", 0, 0, 0},
    {"0.0.0.0/0:53", 0, 0, 53},
    {"255.255.255.255/32:65535", 0xffffffffu, 32, 65535},
    {"10.0.0.0/8", 0x0a000000u, 8, 0},
};

static const char *const egress_bad[] = {
    "",
    "198.51.100",
    "198.51.100.7.1",
    "198.51.100.256",
    "198.51.100.07", /* leading zero: one spelling per address */
    "0x7f.0.0.1",
    " 198.51.100.7",
    "198.51.100.7 ",
    "198.51.100.7:0",
    "198.51.100.7:65536",
    "198.51.100.7:080",
    "198.51.100.7:",
    "198.51.100.7:+80",
    "198.51.100.7:80:81",
    "198.51.100.7/",
    "198.51.100.7/33",
    "198.51.100.7/24", /* host bits */
    "198.51.100.0/024",
    "198.51.100.0/-1",
    "198.51.100.0:80/24",
    "203.0.113.0/24:443x",
    "255.255.255.255/32:655350",
    "2001:db8::1",
    "[2001:db8::1]:443",
    "example.com:443",
    "*",
};

START_TEST(test_parse_egress)
{
    struct net_egress e;
    char buf[64];
    for (size_t i = 0; i < sizeof(egress_good) / sizeof(egress_good[0]); i++) {
        memset(&e, 0xaa, sizeof(e));
        ck_assert_msg(net_parse_egress(egress_good[i].text, strlen(egress_good[i].text), &e) == 0,
                      "refused %s", egress_good[i].text);
        ck_assert_uint_eq(e.addr, egress_good[i].addr);
        ck_assert_uint_eq(e.prefix, egress_good[i].prefix);
        ck_assert_uint_eq(e.port, egress_good[i].port);
    }
    for (size_t i = 0; i < sizeof(egress_bad) / sizeof(egress_bad[0]); i++)
        ck_assert_msg(net_parse_egress(egress_bad[i], strlen(egress_bad[i]), &e) < 0,
                      "accepted \"%s\"", egress_bad[i]);
    /* Length, not NUL, ends the input: an embedded NUL is refused, and a
     * prefix of a longer buffer is parsed on its own. */
    ck_assert_int_lt(net_parse_egress("1.2.3.4\0:80", 11, &e), 0);
    ck_assert_int_eq(net_parse_egress("1.2.3.4:8080", 9, &e), 0);
    ck_assert_uint_eq(e.port, 8);
    memset(buf, '1', sizeof(buf));
    ck_assert_int_lt(net_parse_egress(buf, sizeof(buf), &e), 0);
}
END_TEST

START_TEST(test_nft_run_script)
{
    struct net_egress eg[2] = {{ip("203.0.113.0"), 24, 443}, {ip("198.51.100.7"), 32, 0}};
    struct sbuf sb;
    sbuf_init(&sb, 1u << 16);
    ck_assert_int_eq(net_nft_run_script("br1", ip("10.88.0.5"), "bxv0123456789ab", eg, 2, &sb), 0);
    ck_assert_str_eq(sb.data,
                     "add chain inet boxer_br1 run_0a580005\n"
                     "flush chain inet boxer_br1 run_0a580005\n"
                     "add rule inet boxer_br1 run_0a580005 ip daddr 203.0.113.0/24 meta l4proto "
                     "{ tcp, udp } th dport 443 accept\n"
                     "add rule inet boxer_br1 run_0a580005 ip daddr 198.51.100.7/32 accept\n"
                     "add rule inet boxer_br1 run_0a580005 reject with icmpx admin-prohibited\n"
                     "add element inet boxer_br1 runs { 10.88.0.5 : jump run_0a580005 }\n"
                     "add element bridge boxer_br1 egress_ports { \"bxv0123456789ab\" }\n"
                     "add element bridge boxer_br1 egress_src { \"bxv0123456789ab\" . "
                     "10.88.0.5 }\n");
    sbuf_free(&sb);
    /* An empty list: only DNS (accepted before the jump). */
    sbuf_init(&sb, 1u << 16);
    ck_assert_int_eq(net_nft_run_script("br1", ip("10.88.0.5"), "bxv0123456789ab", eg, 0, &sb), 0);
    ck_assert_ptr_null(strstr(sb.data, "accept"));
    ck_assert_ptr_nonnull(strstr(sb.data, "run_0a580005 reject"));
    sbuf_free(&sb);
    sbuf_init(&sb, 1u << 16);
    ck_assert_int_eq(net_nft_run_delete_script("br1", ip("10.88.0.5"), "bxv0123456789ab", &sb), 0);
    ck_assert_ptr_nonnull(strstr(sb.data, "delete element inet boxer_br1 runs { 10.88.0.5 }\n"
                                          "flush chain inet boxer_br1 run_0a580005\n"
                                          "delete chain inet boxer_br1 run_0a580005\n"));
    ck_assert_ptr_nonnull(strstr(sb.data, "delete element bridge boxer_br1 egress_src { "
                                          "\"bxv0123456789ab\" . 10.88.0.5 }\n"));
    sbuf_free(&sb);
}
END_TEST

/* Runs nft -f on a script (in the caller's network namespace); returns
 * its exit status and leaves its output in out (if not NULL). */
static int nft_run(const char *script, const char *arg, struct sbuf *out)
{
    char path[] = "/tmp/boxer-test-nft-XXXXXX";
    char cmd[256];
    FILE *p;
    int fd = mkstemp(path), status;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, script, strlen(script)), (ssize_t)strlen(script));
    close(fd);
    snprintf(cmd, sizeof(cmd), "nft %s %s 2>&1", arg, path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    for (;;) {
        char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf), p);
        if (n == 0)
            break;
        if (out)
            ck_assert_int_eq(sbuf_append(out, buf, n), 0);
    }
    status = pclose(p);
    unlink(path);
    return status;
}

START_TEST(test_kernel_accepts_nft_scripts)
{
    /* Check's forked child in its own network namespace: the generated
     * scripts load into the real kernel, the run rules go in twice and
     * out twice (idempotent), and leave nothing behind. */
    uint32_t dns[1] = {ip("192.168.7.53")};
    uint32_t blocked[1] = {ip("203.0.113.7")};
    unsigned blen[1] = {32};
    uint32_t host[1] = {ip("192.0.2.2")};
    unsigned hlen[1] = {24};
    struct net_rules r = {"bxtest0", ip("10.99.0.0"), 24, dns, 1, blocked, blen, 1, 0, host, hlen,
                          1};
    struct net_egress eg[2] = {{ip("203.0.113.0"), 24, 443}, {ip("198.51.100.7"), 32, 0}};
    struct sbuf tables, run, del, listing;

    ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare: %s (run as root)", strerror(errno));
    sbuf_init(&tables, 1u << 20);
    sbuf_init(&run, 1u << 16);
    sbuf_init(&del, 1u << 16);
    ck_assert_int_eq(net_nft_script(&r, &tables), 0);
    ck_assert_int_eq(net_nft_run_script("bxtest0", ip("10.99.0.5"), "bxv0123456789ab", eg, 2, &run),
                     0);
    ck_assert_int_eq(net_nft_run_delete_script("bxtest0", ip("10.99.0.5"), "bxv0123456789ab", &del),
                     0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(nft_run(tables.data, "-f", NULL), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(nft_run(run.data, "-f", NULL), 0);
    sbuf_init(&listing, 1u << 20);
    ck_assert_int_eq(nft_run("", "list ruleset #", &listing), 0);
    ck_assert_ptr_nonnull(strstr(listing.data, "10.99.0.5 : jump run_0a630005"));
    ck_assert_ptr_nonnull(strstr(listing.data, "ip daddr 203.0.113.0/24 meta l4proto { tcp, udp } "
                                               "th dport 443 accept"));
    ck_assert_ptr_nonnull(strstr(listing.data, "\"bxv0123456789ab\" . 10.99.0.5"));
    /* Replaced, not appended to. */
    ck_assert_ptr_null(
        strstr(strstr(listing.data, "th dport 443 accept") + 1, "th dport 443 accept"));
    sbuf_free(&listing);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(nft_run(del.data, "-f", NULL), 0);
    sbuf_init(&listing, 1u << 20);
    ck_assert_int_eq(nft_run("", "list ruleset #", &listing), 0);
    ck_assert_ptr_null(strstr(listing.data, "run_"));
    ck_assert_ptr_null(strstr(listing.data, "bxv0123456789ab"));
    ck_assert_ptr_nonnull(strstr(listing.data, "map runs"));
    sbuf_free(&listing);
    sbuf_free(&tables);
    sbuf_free(&run);
    sbuf_free(&del);
}
END_TEST

START_TEST(test_resolv_conf)
{
    uint32_t dns[2] = {ip("198.18.77.53"), ip("198.18.77.54")};
    struct sbuf sb;
    sbuf_init(&sb, 4096);
    ck_assert_int_eq(net_resolv_conf(dns, 2, &sb), 0);
    ck_assert_str_eq(sb.data,
                     "# Boxer: dns_servers\nnameserver 198.18.77.53\nnameserver 198.18.77.54\n");
    sbuf_reset(&sb);
    ck_assert_int_eq(net_resolv_conf(dns, 0, &sb), 0);
    ck_assert_ptr_null(strstr(sb.data, "nameserver"));
    sbuf_free(&sb);
}
END_TEST

/* ---- message builders, parsed back ---- */

struct found {
    int n;
    const unsigned char *data[8];
    size_t len[8];
};

/* Finds attributes of one type at one nesting level. */
static void find_attr(const unsigned char *p, size_t len, unsigned short type, struct found *f)
{
    size_t off = 0;
    f->n = 0;
    while (len - off >= sizeof(struct rtattr)) {
        struct rtattr a;
        memcpy(&a, p + off, sizeof(a));
        ck_assert_uint_ge(a.rta_len, sizeof(a));
        ck_assert_uint_le(a.rta_len, len - off);
        if ((a.rta_type & NLA_TYPE_MASK) == type && f->n < 8) {
            f->data[f->n] = p + off + RTA_LENGTH(0);
            f->len[f->n] = a.rta_len - RTA_LENGTH(0);
            f->n++;
        }
        off += RTA_ALIGN(a.rta_len);
        if (off >= len)
            break;
    }
}

static const unsigned char *one_attr(const unsigned char *p, size_t len, unsigned short type,
                                     size_t *out_len)
{
    struct found f;
    find_attr(p, len, type, &f);
    ck_assert_int_eq(f.n, 1);
    *out_len = f.len[0];
    return f.data[0];
}

static struct nlmsghdr hdr_of(const struct net_nlmsg *m)
{
    struct nlmsghdr h;
    ck_assert_uint_ge(m->len, sizeof(h));
    memcpy(&h, m->buf, sizeof(h));
    ck_assert_uint_eq(h.nlmsg_len, m->len);
    return h;
}

START_TEST(test_msg_veth)
{
    struct net_nlmsg m;
    struct net_link l;
    struct nlmsghdr h;
    const unsigned char *li, *data, *peer, *v;
    size_t lil, dl, pl, vl;
    const size_t body = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg));
    uint32_t fd;

    ck_assert_int_eq(net_msg_new_veth(&m, "bxv0123456789ab", 7, "eth0", 42), 0);
    h = hdr_of(&m);
    ck_assert_uint_eq(h.nlmsg_type, RTM_NEWLINK);
    ck_assert_uint_eq(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    /* The link parser reads it as the kernel would describe the link. */
    ck_assert_int_eq(net_nl_parse_link(m.buf, m.len, &l), -1); /* ifindex 0 */
    li = one_attr(m.buf + body, m.len - body, IFLA_LINKINFO, &lil);
    v = one_attr(li, lil, IFLA_INFO_KIND, &vl);
    ck_assert_str_eq((const char *)v, "veth");
    data = one_attr(li, lil, IFLA_INFO_DATA, &dl);
    peer = one_attr(data, dl, VETH_INFO_PEER, &pl);
    ck_assert_uint_ge(pl, sizeof(struct ifinfomsg));
    v = one_attr(peer + NLMSG_ALIGN(sizeof(struct ifinfomsg)),
                 pl - NLMSG_ALIGN(sizeof(struct ifinfomsg)), IFLA_IFNAME, &vl);
    ck_assert_str_eq((const char *)v, "eth0");
    v = one_attr(peer + NLMSG_ALIGN(sizeof(struct ifinfomsg)),
                 pl - NLMSG_ALIGN(sizeof(struct ifinfomsg)), IFLA_NET_NS_FD, &vl);
    ck_assert_uint_eq(vl, 4);
    memcpy(&fd, v, 4);
    ck_assert_uint_eq(fd, 42);
    v = one_attr(m.buf + body, m.len - body, IFLA_IFNAME, &vl);
    ck_assert_str_eq((const char *)v, "bxv0123456789ab");
    v = one_attr(m.buf + body, m.len - body, IFLA_MASTER, &vl);
    memcpy(&fd, v, 4);
    ck_assert_uint_eq(fd, 7);

    /* Names the kernel would refuse never make a message. */
    ck_assert_int_lt(net_msg_new_veth(&m, "bxv0123456789abc", 7, "eth0", 42), 0);
    ck_assert_int_lt(net_msg_new_veth(&m, "", 7, "eth0", 42), 0);
    ck_assert_int_lt(net_msg_new_veth(&m, "a", 0, "eth0", 42), 0);
    ck_assert_int_lt(net_msg_new_veth(&m, "a", 1, "eth0", -1), 0);
}
END_TEST

START_TEST(test_msg_set_link_and_others)
{
    struct net_nlmsg m;
    struct nlmsghdr h;
    struct ifinfomsg ifi;
    struct ifaddrmsg ifa;
    struct rtmsg rt;
    const unsigned char *li, *sd, *v;
    size_t lil, sdl, vl;
    const size_t body = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg));
    char alias[300];
    uint32_t be;

    ck_assert_int_eq(net_msg_set_link(&m, "bxv1", "boxer:br:boxer-x", 1, 1), 0);
    h = hdr_of(&m);
    ck_assert_uint_eq(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK); /* never creates */
    memcpy(&ifi, m.buf + NLMSG_HDRLEN, sizeof(ifi));
    ck_assert_uint_eq(ifi.ifi_flags & IFF_UP, IFF_UP);
    ck_assert_uint_eq(ifi.ifi_change, IFF_UP);
    v = one_attr(m.buf + body, m.len - body, IFLA_IFALIAS, &vl);
    ck_assert_str_eq((const char *)v, "boxer:br:boxer-x");
    li = one_attr(m.buf + body, m.len - body, IFLA_LINKINFO, &lil);
    sd = one_attr(li, lil, IFLA_INFO_SLAVE_DATA, &sdl);
    v = one_attr(sd, sdl, IFLA_BRPORT_ISOLATED, &vl);
    ck_assert_uint_eq(vl, 1);
    ck_assert_uint_eq(v[0], 1);

    ck_assert_int_eq(net_msg_set_link(&m, "lo", NULL, 1, 0), 0);
    {
        struct found f;
        find_attr(m.buf + body, m.len - body, IFLA_LINKINFO, &f);
        ck_assert_int_eq(f.n, 0);
        find_attr(m.buf + body, m.len - body, IFLA_IFALIAS, &f);
        ck_assert_int_eq(f.n, 0);
    }
    memset(alias, 'a', sizeof(alias));
    alias[255] = '\0';
    ck_assert_int_eq(net_msg_set_link(&m, "x", alias, 0, 0), 0);
    alias[255] = 'a';
    alias[256] = '\0';
    ck_assert_int_lt(net_msg_set_link(&m, "x", alias, 0, 0), 0);

    ck_assert_int_eq(net_msg_new_addr(&m, 3, ip("10.88.0.7"), 16), 0);
    h = hdr_of(&m);
    ck_assert_uint_eq(h.nlmsg_type, RTM_NEWADDR);
    memcpy(&ifa, m.buf + NLMSG_HDRLEN, sizeof(ifa));
    ck_assert_uint_eq(ifa.ifa_family, AF_INET);
    ck_assert_uint_eq(ifa.ifa_prefixlen, 16);
    ck_assert_uint_eq(ifa.ifa_index, 3);
    v = one_attr(m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa)),
                 m.len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof(ifa)), IFA_LOCAL, &vl);
    memcpy(&be, v, 4);
    ck_assert_uint_eq(ntohl(be), ip("10.88.0.7"));
    v = one_attr(m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa)),
                 m.len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof(ifa)), IFA_BROADCAST, &vl);
    memcpy(&be, v, 4);
    ck_assert_uint_eq(ntohl(be), ip("10.88.255.255"));

    ck_assert_int_eq(net_msg_new_default_route(&m, 3, ip("10.88.0.1")), 0);
    h = hdr_of(&m);
    ck_assert_uint_eq(h.nlmsg_type, RTM_NEWROUTE);
    memcpy(&rt, m.buf + NLMSG_HDRLEN, sizeof(rt));
    ck_assert_uint_eq(rt.rtm_dst_len, 0);
    ck_assert_uint_eq(rt.rtm_table, RT_TABLE_MAIN);
    v = one_attr(m.buf + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(rt)),
                 m.len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof(rt)), RTA_GATEWAY, &vl);
    memcpy(&be, v, 4);
    ck_assert_uint_eq(ntohl(be), ip("10.88.0.1"));
    ck_assert_int_lt(net_msg_new_default_route(&m, 0, 1), 0);

    ck_assert_int_eq(net_msg_get_link(&m, NULL), 0);
    h = hdr_of(&m);
    ck_assert_uint_eq(h.nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
    ck_assert_int_eq(net_msg_del_link(&m, "bxv1"), 0);
    h = hdr_of(&m);
    ck_assert_uint_eq(h.nlmsg_type, RTM_DELLINK);
}
END_TEST

/* ---- parsers of kernel answers ---- */

struct mbuf {
    unsigned char b[4096];
    size_t len;
};

static size_t mb_put(struct mbuf *m, const void *data, size_t len)
{
    size_t at = m->len;
    ck_assert_uint_le(at + NLMSG_ALIGN(len), sizeof(m->b));
    memset(m->b + at, 0, NLMSG_ALIGN(len));
    memcpy(m->b + at, data, len);
    m->len += NLMSG_ALIGN(len);
    return at;
}

static size_t mb_attr(struct mbuf *m, unsigned short type, const void *data, size_t len)
{
    struct rtattr a = {(unsigned short)RTA_LENGTH(len), type};
    size_t at = mb_put(m, &a, sizeof(a));
    m->len -= NLMSG_ALIGN(sizeof(a));
    m->len += sizeof(a);
    memcpy(m->b + m->len, data, len);
    m->len = at + RTA_ALIGN(RTA_LENGTH(len));
    return at;
}

static void mb_fix_len(struct mbuf *m, size_t at, size_t end)
{
    uint32_t l = (uint32_t)(end - at);
    memcpy(m->b + at, &l, sizeof(l)); /* nlmsg_len is the first field */
}

static void build_link(struct mbuf *m, int index, const char *name, const char *alias,
                       const char *kind, uint32_t master)
{
    struct nlmsghdr h = {0, RTM_NEWLINK, NLM_F_MULTI, 1, 0};
    struct ifinfomsg ifi = {0};
    size_t at = mb_put(m, &h, sizeof(h)), li;
    ifi.ifi_index = index;
    mb_put(m, &ifi, sizeof(ifi));
    if (name)
        mb_attr(m, IFLA_IFNAME, name, strlen(name) + 1);
    if (alias)
        mb_attr(m, IFLA_IFALIAS, alias, strlen(alias) + 1);
    if (master)
        mb_attr(m, IFLA_MASTER, &master, sizeof(master));
    if (kind) {
        struct rtattr nest = {0, IFLA_LINKINFO};
        li = mb_put(m, &nest, sizeof(nest));
        mb_attr(m, IFLA_INFO_KIND, kind, strlen(kind) + 1);
        nest.rta_len = (unsigned short)(m->len - li);
        memcpy(m->b + li, &nest, sizeof(nest));
    }
    mb_fix_len(m, at, m->len);
}

static int parse_link_guarded(const unsigned char *msg, size_t len, struct net_link *l)
{
    struct guard_buf g = {0};
    const unsigned char *copy = (const unsigned char *)guard_copy(&g, msg, len);
    int r = net_nl_parse_link(copy, len, l);
    guard_free(&g);
    return r;
}

START_TEST(test_parse_link)
{
    struct mbuf m = {.len = 0};
    struct net_link l;
    build_link(&m, 12, "bxv0a0b", "boxer:br0:boxer-\x01\xff", "veth", 5);
    ck_assert_int_eq(parse_link_guarded(m.b, m.len, &l), 0);
    ck_assert_int_eq(l.ifindex, 12);
    ck_assert_int_eq(l.master, 5);
    ck_assert_str_eq(l.name, "bxv0a0b");
    ck_assert_str_eq(l.kind, "veth");
    ck_assert_str_eq(l.alias, "boxer:br0:boxer-??"); /* non-printable bytes replaced */

    /* Every truncation is refused or parsed without reading past the end. */
    for (size_t cut = 0; cut < m.len; cut++) {
        struct mbuf t = m;
        mb_fix_len(&t, 0, cut < 16 ? 16 : cut);
        (void)parse_link_guarded(t.b, cut, &l);
        (void)parse_link_guarded(t.b, t.len, &l);
    }
    /* No name: refused. */
    m.len = 0;
    build_link(&m, 3, NULL, NULL, NULL, 0);
    ck_assert_int_eq(parse_link_guarded(m.b, m.len, &l), -1);
    /* An attribute claiming more than the message has: refused. */
    m.len = 0;
    build_link(&m, 3, "x", NULL, NULL, 0);
    {
        struct rtattr a;
        size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg));
        memcpy(&a, m.b + at, sizeof(a));
        a.rta_len = 200;
        memcpy(m.b + at, &a, sizeof(a));
    }
    ck_assert_int_eq(parse_link_guarded(m.b, m.len, &l), -1);
    /* An unterminated name is cut at the field size. */
    m.len = 0;
    build_link(&m, 3, "0123456789abcdefghij", NULL, NULL, 0);
    ck_assert_int_eq(parse_link_guarded(m.b, m.len, &l), 0);
    ck_assert_str_eq(l.name, "0123456789abcde");
}
END_TEST

START_TEST(test_nl_next_framing)
{
    struct mbuf m = {.len = 0};
    struct guard_buf g = {0};
    const unsigned char *buf, *msg;
    size_t off = 0, mlen;
    int count = 0;
    struct nlmsghdr done = {NLMSG_HDRLEN, NLMSG_DONE, NLM_F_MULTI, 1, 0};
    build_link(&m, 1, "lo", NULL, NULL, 0);
    build_link(&m, 2, "eth0", NULL, NULL, 0);
    mb_put(&m, &done, sizeof(done));
    buf = (const unsigned char *)guard_copy(&g, m.b, m.len);
    while (net_nl_next(buf, m.len, &off, &msg, &mlen) == 1)
        count++;
    ck_assert_int_eq(count, 3);
    ck_assert_uint_eq(off, m.len);
    guard_free(&g);

    /* Broken framing at every cut: never a read past the end. */
    for (size_t cut = 0; cut <= m.len; cut++) {
        int r;
        buf = (const unsigned char *)guard_copy(&g, m.b, cut);
        off = 0;
        while ((r = net_nl_next(buf, cut, &off, &msg, &mlen)) == 1)
            ck_assert_uint_le((size_t)(msg - buf) + mlen, cut);
        guard_free(&g);
    }
    /* Lengths below a header or beyond the buffer. */
    {
        struct nlmsghdr bad = {8, RTM_NEWLINK, 0, 1, 0};
        buf = (const unsigned char *)guard_copy(&g, &bad, sizeof(bad));
        off = 0;
        ck_assert_int_eq(net_nl_next(buf, sizeof(bad), &off, &msg, &mlen), -1);
        guard_free(&g);
        bad.nlmsg_len = 17;
        buf = (const unsigned char *)guard_copy(&g, &bad, sizeof(bad));
        off = 0;
        ck_assert_int_eq(net_nl_next(buf, sizeof(bad), &off, &msg, &mlen), -1);
        guard_free(&g);
    }
}
END_TEST

static void build_error(struct mbuf *m, int error, int capped, const char *text)
{
    struct nlmsghdr h = {0, NLMSG_ERROR, 0, 7, 0};
    struct nlmsgerr e;
    unsigned char orig_payload[20] = {0};
    size_t at;
    if (text)
        h.nlmsg_flags |= NLM_F_ACK_TLVS;
    if (capped)
        h.nlmsg_flags |= NLM_F_CAPPED;
    at = mb_put(m, &h, sizeof(h));
    memset(&e, 0, sizeof(e));
    e.error = error;
    e.msg.nlmsg_len = (uint32_t)(NLMSG_HDRLEN + sizeof(orig_payload));
    e.msg.nlmsg_type = RTM_NEWLINK;
    mb_put(m, &e, sizeof(e));
    if (!capped)
        mb_put(m, orig_payload, sizeof(orig_payload));
    if (text)
        mb_attr(m, NLMSGERR_ATTR_MSG, text, strlen(text) + 1);
    mb_fix_len(m, at, m->len);
}

static int parse_error_guarded(const unsigned char *msg, size_t len, int *e, char *text, size_t cap)
{
    struct guard_buf g = {0};
    const unsigned char *copy = (const unsigned char *)guard_copy(&g, msg, len);
    int r = net_nl_parse_error(copy, len, e, text, cap);
    guard_free(&g);
    return r;
}

START_TEST(test_parse_error)
{
    struct mbuf m = {.len = 0};
    char text[64];
    int e = 1;
    build_error(&m, 0, 1, NULL);
    ck_assert_int_eq(parse_error_guarded(m.b, m.len, &e, text, sizeof(text)), 0);
    ck_assert_int_eq(e, 0);
    ck_assert_str_eq(text, "");

    m.len = 0;
    build_error(&m, -EEXIST, 1, "File exists\n(veth)");
    ck_assert_int_eq(parse_error_guarded(m.b, m.len, &e, text, sizeof(text)), 0);
    ck_assert_int_eq(e, -EEXIST);
    ck_assert_str_eq(text, "File exists?(veth)");

    m.len = 0;
    build_error(&m, -EINVAL, 0, "Unknown device type");
    ck_assert_int_eq(parse_error_guarded(m.b, m.len, &e, text, sizeof(text)), 0);
    ck_assert_int_eq(e, -EINVAL);
    ck_assert_str_eq(text, "Unknown device type");

    /* Text cut to the caller's buffer. */
    ck_assert_int_eq(parse_error_guarded(m.b, m.len, &e, text, 8), 0);
    ck_assert_str_eq(text, "Unknown");

    /* Every truncation: refused or parsed within bounds. */
    for (size_t cut = 0; cut < m.len; cut++) {
        struct mbuf t = m;
        mb_fix_len(&t, 0, cut);
        (void)parse_error_guarded(t.b, cut, &e, text, sizeof(text));
    }
    ck_assert_int_eq(parse_error_guarded(m.b, 10, &e, text, sizeof(text)), -1);

    /* Not an error message; an impossible errno. */
    m.len = 0;
    build_link(&m, 1, "lo", NULL, NULL, 0);
    ck_assert_int_eq(parse_error_guarded(m.b, m.len, &e, text, sizeof(text)), -1);
    m.len = 0;
    build_error(&m, 5, 1, NULL);
    ck_assert_int_eq(parse_error_guarded(m.b, m.len, &e, text, sizeof(text)), -1);
}
END_TEST

/* ---- the kernel accepts what we build ---- */

static int nl_socket(void)
{
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    struct timeval tv = {3, 0};
    int one = 1;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    return fd;
}

/* Sends an ACK-requesting message; returns the kernel's errno (0 = ok). */
static int nl_ack(int fd, struct net_nlmsg *m)
{
    static uint32_t seq;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    static unsigned char buf[65536];
    struct nlmsghdr h;
    ssize_t n;
    memcpy(&h, m->buf, sizeof(h));
    h.nlmsg_seq = ++seq;
    memcpy(m->buf, &h, sizeof(h));
    ck_assert_int_eq(sendto(fd, m->buf, m->len, 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)m->len);
    for (;;) {
        size_t off = 0, mlen;
        const unsigned char *msg;
        n = recv(fd, buf, sizeof(buf), 0);
        ck_assert_int_gt(n, 0);
        while (net_nl_next(buf, (size_t)n, &off, &msg, &mlen) == 1) {
            int e;
            char text[200];
            memcpy(&h, msg, sizeof(h));
            if (h.nlmsg_seq == seq && h.nlmsg_type == NLMSG_ERROR) {
                ck_assert_int_eq(net_nl_parse_error(msg, mlen, &e, text, sizeof(text)), 0);
                return -e;
            }
        }
    }
}

static int get_link(int fd, const char *name, struct net_link *l)
{
    struct net_nlmsg m;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    static unsigned char buf[65536];
    size_t off = 0, mlen;
    const unsigned char *msg;
    ssize_t n;
    ck_assert_int_eq(net_msg_get_link(&m, name), 0);
    ck_assert_int_eq(sendto(fd, m.buf, m.len, 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)m.len);
    n = recv(fd, buf, sizeof(buf), 0);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(net_nl_next(buf, (size_t)n, &off, &msg, &mlen), 1);
    return net_nl_parse_link(msg, mlen, l);
}

START_TEST(test_kernel_accepts_messages)
{
    /* Runs in Check's forked child: its own network namespaces, so the
     * host's links are never touched.  Needs root (CAP_NET_ADMIN). */
    struct net_nlmsg m;
    struct net_link br, veth, peer;
    unsigned char mac[6] = {0x02, 1, 2, 3, 4, 5};
    int host_fd, peer_ns, peer_fd, self_ns;

    self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(self_ns, 0);
    ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare: %s (run as root)", strerror(errno));
    peer_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    peer_fd = nl_socket(); /* in the "sandbox" namespace */
    ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
    host_fd = nl_socket(); /* in the "host" namespace */

    ck_assert_int_eq(net_msg_new_bridge(&m, "bxtest0", mac), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), EEXIST);
    ck_assert_int_eq(net_msg_set_link(&m, "bxtest0", "boxer:bxtest0", 1, 0), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    ck_assert_int_eq(get_link(host_fd, "bxtest0", &br), 0);
    ck_assert_str_eq(br.kind, "bridge");
    ck_assert_str_eq(br.alias, "boxer:bxtest0");
    ck_assert_int_eq(net_msg_new_addr(&m, br.ifindex, ip("10.99.0.1"), 24), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0); /* NLM_F_REPLACE: idempotent */

    ck_assert_int_eq(net_msg_new_veth(&m, "bxv000000000001", br.ifindex, "eth0", peer_ns), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    ck_assert_int_eq(net_msg_set_link(&m, "bxv000000000001", "boxer:bxtest0:boxer-1", 1, 1), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    ck_assert_int_eq(get_link(host_fd, "bxv000000000001", &veth), 0);
    ck_assert_int_eq(veth.master, br.ifindex);
    ck_assert_str_eq(veth.alias, "boxer:bxtest0:boxer-1");
    ck_assert_int_ne(get_link(host_fd, "eth0", &peer), 0); /* moved away */

    ck_assert_int_eq(net_msg_set_link(&m, "lo", NULL, 1, 0), 0);
    ck_assert_int_eq(nl_ack(peer_fd, &m), 0);
    ck_assert_int_eq(get_link(peer_fd, "eth0", &peer), 0);
    ck_assert_str_eq(peer.kind, "veth");
    ck_assert_int_eq(net_msg_new_addr(&m, peer.ifindex, ip("10.99.0.2"), 24), 0);
    ck_assert_int_eq(nl_ack(peer_fd, &m), 0);
    ck_assert_int_eq(net_msg_set_link(&m, "eth0", NULL, 1, 0), 0);
    ck_assert_int_eq(nl_ack(peer_fd, &m), 0);
    ck_assert_int_eq(net_msg_new_default_route(&m, peer.ifindex, ip("10.99.0.1")), 0);
    ck_assert_int_eq(nl_ack(peer_fd, &m), 0);

    /* Deleting the host end removes both ends. */
    ck_assert_int_eq(net_msg_del_link(&m, "bxv000000000001"), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), ENODEV);
    ck_assert_int_ne(get_link(peer_fd, "eth0", &peer), 0);
    ck_assert_int_eq(net_msg_del_link(&m, "bxtest0"), 0);
    ck_assert_int_eq(nl_ack(host_fd, &m), 0);
    close(host_fd);
    close(peer_fd);
    close(peer_ns);
    close(self_ns);
}
END_TEST

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse_ipv4);
    tcase_add_test(tc, test_parse_cidr4);
    tcase_add_test(tc, test_pool_small);
    tcase_add_test(tc, test_pool_bad);
    tcase_add_test(tc, test_pool_unique_and_next_fit);
    tcase_add_test(tc, test_pool_big_wraps);
    tcase_add_test(tc, test_nft_script);
    tcase_add_test(tc, test_parse_egress);
    tcase_add_test(tc, test_nft_run_script);
    tcase_add_test(tc, test_kernel_accepts_nft_scripts);
    tcase_add_test(tc, test_resolv_conf);
    tcase_add_test(tc, test_msg_veth);
    tcase_add_test(tc, test_msg_set_link_and_others);
    tcase_add_test(tc, test_parse_link);
    tcase_add_test(tc, test_nl_next_framing);
    tcase_add_test(tc, test_parse_error);
    tcase_add_test(tc, test_kernel_accepts_messages);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_main(net_suite);
}
