/* udptrain.h -- a batch of UDP replies grouped for segmentation offload. */
#ifndef SVCMAPD_UDPTRAIN_H
#define SVCMAPD_UDPTRAIN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

/*
 * Most of the kernel's cost of a UDP reply is per datagram: an skb, a route
 * lookup, the trip through the device and back up the stack. With UDP
 * segmentation offload (UDP_SEGMENT, Linux 4.18) one sendmsg carries several
 * datagrams of one size to one destination, and the kernel pays most of that
 * once. A busy client (a forwarder, a load generator) asks many questions of
 * one shape from one socket, so the replies of a batch often match: those go
 * out as one train, the rest one by one. Segmentation cuts at exact sizes:
 * each datagram the client receives is exactly one of our replies.
 */

/* Replies longer than this always travel alone: every path MTU a sane route
 * has (576 for IPv4) carries it in one piece, so the kernel never refuses a
 * train for its size. */
#define UDPTRAIN_SEGMENT_MAX 512

/* Replies per batch, at most: also the kernel's limit of datagrams per
 * sendmsg (UDP_MAX_SEGMENTS, 64 before Linux 6.9). */
#define UDPTRAIN_BATCH_MAX 64

/* One reply of the batch; len 0: none (dropped query, or one that waits). */
struct udptrain_reply {
    const void *data;
    size_t len;
    const void *peer; /* destination */
    socklen_t peerlen;
    const void *ctl; /* control data it must be sent with: at most one
                      * IP_PKTINFO or IPV6_PKTINFO (its source address) */
    socklen_t ctllen;
};

/* Replies order[first .. first+count-1] go out together. */
struct udptrain {
    size_t first;
    size_t count;
};

/* Groups the n (at most UDPTRAIN_BATCH_MAX) replies into trains: same length (at most
 * UDPTRAIN_SEGMENT_MAX), same destination, same control data; with `gso`
 * false every reply is its own train. Writes the reply indexes to order[]
 * (n entries at most) and the trains to trains[] (n at most), and returns
 * the number of trains. Every reply with len > 0 is in exactly one train,
 * and a train keeps its replies in their original order. */
size_t udptrain_plan(const struct udptrain_reply *r, size_t n, bool gso, size_t *order,
                     struct udptrain *trains);

/* What a train is sent with: its replies' control data and, for more than
 * one reply, the segment size. */
union udptrain_ctl {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
    size_t align; /* cmsghdr's */
};

/* Fills `m` to send train `t` of a plan (r, order as udptrain_plan() left
 * them) in one sendmsg: iov[t->first ..] point at its replies, `ctl` holds
 * its control data and, for more than one reply, UDP_SEGMENT. `iov` has as
 * many entries as `order`. */
void udptrain_message(const struct udptrain_reply *r, const size_t *order, const struct udptrain *t,
                      struct iovec *iov, struct msghdr *m, union udptrain_ctl *ctl);

#endif
