/* rtnetlink for the network module: message builders and the parser of
 * what the kernel sends (pure, fuzzed by fuzz/fuzz_netlink.c), and the
 * socket I/O that sends a request and waits for its answer.  See net.h.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net_internal.h"

#define NL_TIMEOUT_SECS 3
#define NL_RBUF (64u << 10)
#define NL_MAX_REPLIES 4096 /* recv calls for one request or dump */

/* ---- rtnetlink messages ---- */

void *nl_msg_put(struct net_nlmsg *m, const void *data, size_t len)
{
    size_t alen = NLMSG_ALIGN(len);
    unsigned char *p;
    if (m->overflow || alen > NET_NLMSG_MAX - m->len) {
        m->overflow = 1;
        return NULL;
    }
    p = m->buf + m->len;
    memset(p, 0, alen);
    if (data)
        memcpy(p, data, len);
    m->len += alen;
    ((struct nlmsghdr *)(void *)m->buf)->nlmsg_len = (uint32_t)m->len;
    return p;
}

void nl_msg_begin(struct net_nlmsg *m, uint16_t type, uint16_t flags)
{
    struct nlmsghdr h;
    m->len = 0;
    m->overflow = 0;
    memset(&h, 0, sizeof(h));
    h.nlmsg_type = type;
    h.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    nl_msg_put(m, &h, sizeof(h));
}

static struct rtattr *attr_put(struct net_nlmsg *m, unsigned short type, const void *data,
                               size_t len)
{
    struct rtattr *a;
    if (len > 0xffffu - RTA_LENGTH(0)) {
        m->overflow = 1;
        return NULL;
    }
    a = nl_msg_put(m, NULL, RTA_LENGTH(len));
    if (!a)
        return NULL;
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    return a;
}

static void attr_str(struct net_nlmsg *m, unsigned short type, const char *s)
{
    attr_put(m, type, s, strlen(s) + 1);
}

static void attr_u32(struct net_nlmsg *m, unsigned short type, uint32_t v)
{
    attr_put(m, type, &v, sizeof(v));
}

static void attr_be32(struct net_nlmsg *m, unsigned short type, uint32_t host_order)
{
    uint32_t v = htonl(host_order);
    attr_put(m, type, &v, sizeof(v));
}

static struct rtattr *nest_begin(struct net_nlmsg *m, unsigned short type)
{
    return attr_put(m, type, NULL, 0);
}

static void nest_end(struct net_nlmsg *m, struct rtattr *nest)
{
    if (nest && !m->overflow)
        nest->rta_len = (unsigned short)(m->buf + m->len - (unsigned char *)nest);
}

static int msg_done(struct net_nlmsg *m)
{
    return m->overflow ? -1 : 0;
}

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n < IFNAMSIZ;
}

static void put_ifinfo(struct net_nlmsg *m, unsigned flags, unsigned change)
{
    struct ifinfomsg ifi;
    memset(&ifi, 0, sizeof(ifi));
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_flags = flags;
    ifi.ifi_change = change;
    nl_msg_put(m, &ifi, sizeof(ifi));
}

int net_msg_new_bridge(struct net_nlmsg *m, const char *name, const unsigned char mac[6])
{
    struct rtattr *li;
    if (!name_ok(name))
        return -1;
    nl_msg_begin(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    put_ifinfo(m, 0, 0);
    attr_str(m, IFLA_IFNAME, name);
    /* A fixed address: otherwise the bridge takes the lowest port MAC and
     * changes it as sandboxes come and go, under the sandboxes' ARP caches. */
    attr_put(m, IFLA_ADDRESS, mac, 6);
    li = nest_begin(m, IFLA_LINKINFO);
    attr_str(m, IFLA_INFO_KIND, "bridge");
    nest_end(m, li);
    return msg_done(m);
}

int net_msg_new_veth(struct net_nlmsg *m, const char *name, int master_ifindex,
                     const char *peer_name, int peer_netns_fd)
{
    struct rtattr *li, *data, *peer;
    if (!name_ok(name) || !name_ok(peer_name) || master_ifindex <= 0 || peer_netns_fd < 0)
        return -1;
    nl_msg_begin(m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    put_ifinfo(m, 0, 0);
    attr_str(m, IFLA_IFNAME, name);
    attr_u32(m, IFLA_MASTER, (uint32_t)master_ifindex);
    li = nest_begin(m, IFLA_LINKINFO);
    attr_str(m, IFLA_INFO_KIND, "veth");
    data = nest_begin(m, IFLA_INFO_DATA);
    peer = nest_begin(m, VETH_INFO_PEER);
    put_ifinfo(m, 0, 0);
    attr_str(m, IFLA_IFNAME, peer_name);
    attr_u32(m, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
    nest_end(m, peer);
    nest_end(m, data);
    nest_end(m, li);
    return msg_done(m);
}

int net_msg_set_link(struct net_nlmsg *m, const char *name, const char *alias, int up,
                     int port_isolated)
{
    if (!name_ok(name) || (alias && strlen(alias) >= 256))
        return -1;
    nl_msg_begin(m, RTM_NEWLINK, NLM_F_ACK);
    put_ifinfo(m, up ? IFF_UP : 0, up ? IFF_UP : 0);
    attr_str(m, IFLA_IFNAME, name);
    if (alias)
        attr_str(m, IFLA_IFALIAS, alias);
    if (port_isolated) {
        /* Bridge port options go as slave data of the port's master. */
        struct rtattr *li = nest_begin(m, IFLA_LINKINFO);
        struct rtattr *sd = nest_begin(m, IFLA_INFO_SLAVE_DATA);
        uint8_t on = 1;
        attr_put(m, IFLA_BRPORT_ISOLATED, &on, 1);
        nest_end(m, sd);
        nest_end(m, li);
    }
    return msg_done(m);
}

int net_msg_del_link(struct net_nlmsg *m, const char *name)
{
    if (!name_ok(name))
        return -1;
    nl_msg_begin(m, RTM_DELLINK, NLM_F_ACK);
    put_ifinfo(m, 0, 0);
    attr_str(m, IFLA_IFNAME, name);
    return msg_done(m);
}

int net_msg_get_link(struct net_nlmsg *m, const char *name)
{
    if (name && !name_ok(name))
        return -1;
    nl_msg_begin(m, RTM_GETLINK, name ? 0 : NLM_F_DUMP);
    put_ifinfo(m, 0, 0);
    if (name)
        attr_str(m, IFLA_IFNAME, name);
    attr_u32(m, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    return msg_done(m);
}

int net_msg_new_addr(struct net_nlmsg *m, int ifindex, uint32_t addr, unsigned prefix)
{
    struct ifaddrmsg ifa;
    if (ifindex <= 0 || prefix > 32)
        return -1;
    nl_msg_begin(m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
    memset(&ifa, 0, sizeof(ifa));
    ifa.ifa_family = AF_INET;
    ifa.ifa_prefixlen = (unsigned char)prefix;
    ifa.ifa_scope = RT_SCOPE_UNIVERSE;
    ifa.ifa_index = (unsigned)ifindex;
    nl_msg_put(m, &ifa, sizeof(ifa));
    attr_be32(m, IFA_LOCAL, addr);
    attr_be32(m, IFA_ADDRESS, addr);
    if (prefix < 31)
        attr_be32(m, IFA_BROADCAST, addr | ~net_prefix_mask(prefix));
    return msg_done(m);
}

int net_msg_new_default_route(struct net_nlmsg *m, int ifindex, uint32_t gateway)
{
    struct rtmsg rt;
    if (ifindex <= 0)
        return -1;
    nl_msg_begin(m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
    memset(&rt, 0, sizeof(rt));
    rt.rtm_family = AF_INET;
    rt.rtm_table = RT_TABLE_MAIN;
    rt.rtm_protocol = RTPROT_BOOT;
    rt.rtm_scope = RT_SCOPE_UNIVERSE;
    rt.rtm_type = RTN_UNICAST;
    nl_msg_put(m, &rt, sizeof(rt));
    attr_be32(m, RTA_GATEWAY, gateway);
    attr_u32(m, RTA_OIF, (uint32_t)ifindex);
    return msg_done(m);
}

/* ---- parsing what the kernel sends ---- */

/* Everything is read with memcpy at checked offsets: lengths come from the
 * buffer and are checked before use, so a short or lying message can only
 * be refused, never read past. */

int net_nl_next(const unsigned char *buf, size_t len, size_t *off, const unsigned char **msg,
                size_t *msg_len)
{
    struct nlmsghdr h;
    size_t rest, adv;
    if (*off >= len)
        return 0;
    rest = len - *off;
    if (rest < sizeof(h))
        return -1;
    memcpy(&h, buf + *off, sizeof(h));
    if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > rest)
        return -1;
    *msg = buf + *off;
    *msg_len = h.nlmsg_len;
    adv = NLMSG_ALIGN(h.nlmsg_len);
    *off += adv < rest ? adv : rest;
    return 1;
}

/* Calls cb for each attribute in [p, p+len); stops on a malformed one. */
typedef void (*attr_cb)(void *arg, unsigned short type, const unsigned char *data, size_t len);

static int walk_attrs(const unsigned char *p, size_t len, attr_cb cb, void *arg)
{
    size_t off = 0;
    while (len - off >= sizeof(struct rtattr)) {
        struct rtattr a;
        size_t adv;
        memcpy(&a, p + off, sizeof(a));
        if (a.rta_len < sizeof(a) || a.rta_len > len - off)
            return -1;
        cb(arg, (unsigned short)(a.rta_type & NLA_TYPE_MASK), p + off + RTA_LENGTH(0),
           a.rta_len - RTA_LENGTH(0));
        adv = RTA_ALIGN(a.rta_len);
        if (adv >= len - off)
            break;
        off += adv;
    }
    return 0;
}

/* A string attribute into a fixed buffer; bytes outside printable ASCII
 * become '?' (names and messages end up in logs and error answers). */
static void copy_attr_str(char *dst, size_t cap, const unsigned char *data, size_t len)
{
    size_t n = 0;
    while (n < len && data[n] != '\0' && n + 1 < cap) {
        dst[n] = data[n] >= 0x20 && data[n] < 0x7f ? (char)data[n] : '?';
        n++;
    }
    dst[n] = '\0';
}

struct err_text {
    char *text;
    size_t cap;
};

static void on_err_attr(void *arg, unsigned short type, const unsigned char *data, size_t len)
{
    struct err_text *t = arg;
    if (type == NLMSGERR_ATTR_MSG)
        copy_attr_str(t->text, t->cap, data, len);
}

int net_nl_parse_error(const unsigned char *msg, size_t len, int *error, char *text,
                       size_t text_cap)
{
    struct nlmsghdr h, orig;
    struct nlmsgerr e;
    size_t off;
    if (text && text_cap)
        text[0] = '\0';
    if (len < NLMSG_HDRLEN + sizeof(int))
        return -1;
    memcpy(&h, msg, sizeof(h));
    if (h.nlmsg_type != NLMSG_ERROR || h.nlmsg_len > len)
        return -1;
    memcpy(error, msg + NLMSG_HDRLEN, sizeof(int));
    if (*error > 0 || *error < -4095)
        return -1;
    if (!(h.nlmsg_flags & NLM_F_ACK_TLVS) || !text || text_cap == 0 ||
        h.nlmsg_len < NLMSG_HDRLEN + sizeof(e))
        return 0;
    memcpy(&e, msg + NLMSG_HDRLEN, sizeof(e));
    orig = e.msg;
    off = NLMSG_HDRLEN + sizeof(e);
    if (!(h.nlmsg_flags & NLM_F_CAPPED)) {
        if (orig.nlmsg_len < NLMSG_HDRLEN)
            return 0;
        off += NLMSG_ALIGN(orig.nlmsg_len - NLMSG_HDRLEN);
    }
    if (off < h.nlmsg_len) {
        struct err_text t = {text, text_cap};
        walk_attrs(msg + off, h.nlmsg_len - off, on_err_attr, &t);
    }
    return 0;
}

static void on_linkinfo_attr(void *arg, unsigned short type, const unsigned char *data, size_t len)
{
    struct net_link *l = arg;
    if (type == IFLA_INFO_KIND)
        copy_attr_str(l->kind, sizeof(l->kind), data, len);
}

static void on_link_attr(void *arg, unsigned short type, const unsigned char *data, size_t len)
{
    struct net_link *l = arg;
    uint32_t v;
    switch (type) {
    case IFLA_IFNAME:
        copy_attr_str(l->name, sizeof(l->name), data, len);
        break;
    case IFLA_IFALIAS:
        copy_attr_str(l->alias, sizeof(l->alias), data, len);
        break;
    case IFLA_MASTER:
        if (len >= sizeof(v)) {
            memcpy(&v, data, sizeof(v));
            l->master = v <= INT_MAX ? (int)v : 0;
        }
        break;
    case IFLA_LINKINFO:
        walk_attrs(data, len, on_linkinfo_attr, l);
        break;
    default:
        break;
    }
}

int net_nl_parse_link(const unsigned char *msg, size_t len, struct net_link *out)
{
    struct nlmsghdr h;
    struct ifinfomsg ifi;
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifi));
    memset(out, 0, sizeof(*out));
    if (len < NLMSG_HDRLEN + sizeof(ifi))
        return -1;
    memcpy(&h, msg, sizeof(h));
    if (h.nlmsg_type != RTM_NEWLINK || h.nlmsg_len > len ||
        h.nlmsg_len < NLMSG_HDRLEN + sizeof(ifi))
        return -1;
    memcpy(&ifi, msg + NLMSG_HDRLEN, sizeof(ifi));
    out->ifindex = ifi.ifi_index;
    out->flags = ifi.ifi_flags;
    if (off < h.nlmsg_len && walk_attrs(msg + off, h.nlmsg_len - off, on_link_attr, out) < 0)
        return -1;
    return out->ifindex > 0 && out->name[0] ? 0 : -1;
}

struct addr_info {
    uint32_t local;
    int have;
};

static void on_addr_attr(void *arg, unsigned short type, const unsigned char *data, size_t len)
{
    struct addr_info *a = arg;
    uint32_t v;
    if ((type == IFA_LOCAL || (type == IFA_ADDRESS && !a->have)) && len >= sizeof(v)) {
        memcpy(&v, data, sizeof(v));
        a->local = ntohl(v);
        a->have = 1;
    }
}

/* An RTM_NEWADDR (IPv4) message: address, prefix, interface. */
int nl_parse_addr(const unsigned char *msg, size_t len, uint32_t *addr, unsigned *prefix,
                  int *ifindex)
{
    struct nlmsghdr h;
    struct ifaddrmsg ifa;
    struct addr_info ai = {0, 0};
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa));
    if (len < NLMSG_HDRLEN + sizeof(ifa))
        return -1;
    memcpy(&h, msg, sizeof(h));
    if (h.nlmsg_type != RTM_NEWADDR || h.nlmsg_len > len)
        return -1;
    memcpy(&ifa, msg + NLMSG_HDRLEN, sizeof(ifa));
    if (ifa.ifa_family != AF_INET || ifa.ifa_prefixlen > 32)
        return -1;
    if (off < h.nlmsg_len && walk_attrs(msg + off, h.nlmsg_len - off, on_addr_attr, &ai) < 0)
        return -1;
    if (!ai.have)
        return -1;
    *addr = ai.local;
    *prefix = ifa.ifa_prefixlen;
    *ifindex = (int)ifa.ifa_index;
    return 0;
}

/* ---- rtnetlink I/O ---- */

/* Blocking sockets with a receive timeout: the kernel handles each request
 * inside sendmsg and answers at once (a run's whole set-up measured 6-15 ms
 * here); the timeout only bounds a kernel that never answers. */
unsigned char *nl_rbuf;
static uint32_t nl_seq;

/* Binds an rtnetlink socket and sets its timeouts; closes it on failure. */
int nl_setup(int fd, struct bx_err *err)
{
    struct sockaddr_nl sa;
    struct timeval tv = {NL_TIMEOUT_SECS, 0};
    int one = 1;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
        bx_err_sys(err, BX_E_INTERNAL, "netlink socket setup");
        close(fd);
        return -1;
    }
    /* Error strings from the kernel, without an echo of our request. */
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    return fd;
}

int nl_open(struct bx_err *err)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "netlink socket");
    return nl_setup(fd, err);
}

int nl_send(int fd, struct net_nlmsg *m, uint32_t *seq, const char *what, struct bx_err *err)
{
    struct nlmsghdr *h = (struct nlmsghdr *)(void *)m->buf;
    struct sockaddr_nl sa;
    ssize_t n;
    if (m->overflow || m->len < NLMSG_HDRLEN)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "%s: netlink message too large", what);
    if (!nl_rbuf) {
        nl_rbuf = malloc(NL_RBUF);
        if (!nl_rbuf)
            return bx_err_set(err, BX_E_INTERNAL, ENOMEM, "out of memory");
    }
    h->nlmsg_seq = *seq = ++nl_seq;
    h->nlmsg_pid = 0;
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    do {
        n = sendto(fd, m->buf, m->len, 0, (struct sockaddr *)&sa, sizeof(sa));
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "%s: netlink send", what);
    if ((size_t)n != m->len)
        return bx_err_set(err, BX_E_INTERNAL, EIO, "%s: netlink short send", what);
    return 0;
}

static ssize_t nl_recv(int fd, const char *what, struct bx_err *err)
{
    struct sockaddr_nl sa;
    struct iovec iov = {nl_rbuf, NL_RBUF};
    struct msghdr mh;
    ssize_t n;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = &sa;
    mh.msg_namelen = sizeof(sa);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    do {
        n = recvmsg(fd, &mh, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return bx_err_set(err, BX_E_INTERNAL, ETIMEDOUT, "%s: no netlink answer within %d s", what,
                          NL_TIMEOUT_SECS);
    if (n < 0)
        return bx_err_sys(err, BX_E_INTERNAL, "%s: netlink receive", what);
    if (mh.msg_flags & MSG_TRUNC)
        return bx_err_set(err, BX_E_INTERNAL, EMSGSIZE, "%s: netlink answer truncated", what);
    if (mh.msg_namelen < sizeof(sa) || sa.nl_pid != 0)
        return 0; /* not from the kernel: ignore */
    return n;
}

static int nl_error(const unsigned char *msg, size_t len, const char *what, struct bx_err *err)
{
    char text[200];
    int e = 0;
    if (net_nl_parse_error(msg, len, &e, text, sizeof(text)) < 0)
        return bx_err_set(err, BX_E_INTERNAL, EPROTO, "%s: malformed netlink error", what);
    if (e == 0)
        return 0;
    return bx_err_set(err, BX_E_INTERNAL, -e, "%s: %s%s%s", what, strerror(-e), text[0] ? ": " : "", text);
}

/* Waits for the answer to request seq.  For a dump, calls cb per message
 * until NLMSG_DONE; otherwise stops at the ACK/error (or, with cb, at the
 * first non-error answer). */
int nl_wait(int fd, uint32_t seq, int dump,
            int (*cb)(void *arg, const unsigned char *msg, size_t len), void *arg, const char *what,
            struct bx_err *err)
{
    for (int i = 0; i < NL_MAX_REPLIES; i++) {
        ssize_t n = nl_recv(fd, what, err);
        size_t off = 0, mlen;
        const unsigned char *msg;
        int r;
        if (n < 0)
            return -1;
        while ((r = net_nl_next(nl_rbuf, (size_t)n, &off, &msg, &mlen)) == 1) {
            struct nlmsghdr h;
            memcpy(&h, msg, sizeof(h));
            if (h.nlmsg_seq != seq)
                continue; /* a late answer to an earlier, timed-out request */
            if (h.nlmsg_type == NLMSG_ERROR)
                return nl_error(msg, mlen, what, err);
            if (h.nlmsg_type == NLMSG_DONE)
                return 0;
            if (cb && cb(arg, msg, mlen) < 0)
                return -1;
            if (!dump && cb)
                return 0;
        }
        if (r < 0)
            return bx_err_set(err, BX_E_INTERNAL, EPROTO, "%s: malformed netlink answer", what);
    }
    return bx_err_set(err, BX_E_INTERNAL, EPROTO, "%s: netlink answer too long", what);
}

static int nl_do(int fd, struct net_nlmsg *m, const char *what, struct bx_err *err)
{
    uint32_t seq;
    if (nl_send(fd, m, &seq, what, err) < 0)
        return -1;
    return nl_wait(fd, seq, 0, NULL, NULL, what, err);
}

static int take_link(void *arg, const unsigned char *msg, size_t len)
{
    /* A malformed answer leaves ifindex 0, reported as absent below. */
    if (net_nl_parse_link(msg, len, arg) < 0)
        memset(arg, 0, sizeof(struct net_link));
    return 0;
}

/* 0 and *out filled; -1 with err (sys_errno ENODEV when absent). */
int nl_get_link(int fd, const char *name, struct net_link *out, struct bx_err *err)
{
    struct net_nlmsg m;
    uint32_t seq;
    char what[64];
    snprintf(what, sizeof(what), "looking up %s", name);
    memset(out, 0, sizeof(*out));
    if (net_msg_get_link(&m, name) < 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "%s: bad name", what);
    if (nl_send(fd, &m, &seq, what, err) < 0 || nl_wait(fd, seq, 0, take_link, out, what, err) < 0)
        return -1;
    if (out->ifindex <= 0)
        return bx_err_set(err, BX_E_INTERNAL, ENODEV, "%s: no such link", what);
    return 0;
}

int nl_link_op(int fd, struct net_nlmsg *m, int built, const char *what, struct bx_err *err)
{
    if (built < 0)
        return bx_err_set(err, BX_E_INTERNAL, EINVAL, "%s: cannot build netlink message", what);
    return nl_do(fd, m, what, err);
}
