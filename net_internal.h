/* Private to the network module (net.c, netlink.c, net_text.c): the
 * rtnetlink socket calls net.c makes and what the pieces share.  Not part
 * of the contract in net.h.
 */
#ifndef BOXER_NET_INTERNAL_H
#define BOXER_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "net.h"

/* Every run's veth name starts with this (the nft tables match on it). */
#define VETH_PREFIX "bxv"

/* The netmask of a prefix length, host order (0..32). */
uint32_t net_prefix_mask(unsigned prefix);

/* Message building (netlink.c): start a message, append raw bytes. */
void nl_msg_begin(struct net_nlmsg *m, uint16_t type, uint16_t flags);
void *nl_msg_put(struct net_nlmsg *m, const void *data, size_t len);
/* An RTM_NEWADDR (IPv4) message: address, prefix, interface. */
int nl_parse_addr(const unsigned char *msg, size_t len, uint32_t *addr, unsigned *prefix,
                  int *ifindex);

/* rtnetlink I/O: blocking sockets with a receive timeout.  nl_rbuf is the
 * shared receive buffer (allocated on first use, freed by net.c). */
extern unsigned char *nl_rbuf;
/* Binds an rtnetlink socket and sets its timeouts; closes it on failure. */
int nl_setup(int fd, struct bx_err *err);
int nl_open(struct bx_err *err);
int nl_send(int fd, struct net_nlmsg *m, uint32_t *seq, const char *what, struct bx_err *err);
/* Waits for the answer to request seq.  For a dump, calls cb per message
 * until NLMSG_DONE; otherwise stops at the ACK/error (or, with cb, at the
 * first non-error answer). */
int nl_wait(int fd, uint32_t seq, int dump,
            int (*cb)(void *arg, const unsigned char *msg, size_t len), void *arg, const char *what,
            struct bx_err *err);
/* 0 and *out filled; -1 with err (sys_errno ENODEV when absent). */
int nl_get_link(int fd, const char *name, struct net_link *out, struct bx_err *err);
/* Sends a built link request (built < 0: the builder failed) and waits for its ACK. */
int nl_link_op(int fd, struct net_nlmsg *m, int built, const char *what, struct bx_err *err);

#endif
