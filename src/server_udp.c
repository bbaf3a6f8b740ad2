/* server_udp.c -- UDP: datagrams in batches, replies out in trains. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_impl.h"
#include "svcmapd/clock.h"
#include "svcmapd/udptrain.h"

#define UDP_BATCH     32        /* datagrams per recvmmsg/sendmmsg */
#define UDP_ROUNDS    8         /* batches per wakeup before other sockets get a turn */
#define UDP_QUERY_MAX 4096      /* larger datagrams are cut, then get FORMERR */
#define UDP_BUFSIZE   (4 << 20) /* as NSD: bursts from a forwarder must not be dropped */

_Static_assert(UDP_BATCH <= UDPTRAIN_BATCH_MAX, "udptrain_plan() takes a whole batch");

struct udp_batch {
    struct mmsghdr in[UDP_BATCH];
    struct mmsghdr out[UDP_BATCH];
    struct iovec iin[UDP_BATCH];
    struct iovec iout[UDP_BATCH];
    struct sockaddr_storage peer[UDP_BATCH];
    union pktinfo_buf cin[UDP_BATCH];
    union pktinfo_buf cout[UDP_BATCH];
    struct handled q[UDP_BATCH];
    struct udptrain_reply tr[UDP_BATCH];
    size_t order[UDP_BATCH];
    struct udptrain trains[UDP_BATCH];
    union udptrain_ctl tctl[UDP_BATCH];
    uint8_t query[UDP_BATCH][UDP_QUERY_MAX];
    uint8_t reply[UDP_BATCH][ANSWER_UDP_MAX];
};

struct udp_batch *udp_batch_new(void)
{
    return calloc(1, sizeof(struct udp_batch));
}

void udp_batch_free(struct udp_batch *b)
{
    free(b);
}

/* Writes one control message of `len` bytes of `data` to `out`; returns
 * the room it takes. */
static socklen_t put_cmsg(union pktinfo_buf *out, int level, int type, const void *data, size_t len)
{
    struct cmsghdr *o = (struct cmsghdr *)(void *)out->buf;
    o->cmsg_level = level;
    o->cmsg_type = type;
    o->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(o), data, len);
    return (socklen_t)CMSG_SPACE(len);
}

/* For a wildcard socket, the reply must leave from the address the query
 * was sent to, or the client drops it: copy the destination of the query
 * into the source of the reply (IP_PKTINFO / IPV6_PKTINFO). */
static socklen_t reply_pktinfo(struct msghdr *in, union pktinfo_buf *out)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(in); c; c = CMSG_NXTHDR(in, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            struct in_pktinfo reply = {.ipi_ifindex = 0, .ipi_spec_dst = pi.ipi_addr};
            return put_cmsg(out, IPPROTO_IP, IP_PKTINFO, &reply, sizeof(reply));
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO)
            return put_cmsg(out, IPPROTO_IPV6, IPV6_PKTINFO, CMSG_DATA(c),
                            sizeof(struct in6_pktinfo));
    }
    return 0;
}

/* A train the kernel refused: its replies one by one. A kernel or device
 * that cannot segment (EIO: no checksum offload; ENOPROTOOPT, EOPNOTSUPP,
 * EINVAL) gets no more trains on this socket. */
static void train_split(struct udp_sock *u, struct udp_batch *b, const struct udptrain *t, int err)
{
    if (u->gso && (err == EIO || err == ENOPROTOOPT || err == EOPNOTSUPP || err == EINVAL)) {
        u->gso = false; /* and warned once: the batch's other trains may fail too */
        log_warning("udp: the kernel refuses segmentation offload (%s): sending replies one by one",
                    strerror(err));
    }
    for (size_t k = 0; k < t->count; k++) {
        struct udptrain one = {.first = t->first + k, .count = 1};
        struct msghdr m;
        union udptrain_ctl ctl;
        udptrain_message(b->tr, b->order, &one, b->iout, &m, &ctl);
        while (sendmsg(u->fd, &m, 0) < 0 && errno == EINTR)
            ;
    }
}

/* Sends the n replies of a batch: replies of one size to one client go
 * out as trains (udptrain.h), the rest one by one, in one sendmmsg. */
static void send_batch(struct udp_sock *u, struct udp_batch *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b->tr[i] = (struct udptrain_reply){
            .data = b->reply[i],
            .len = b->q[i].info.len, /* 0: no reply, or it waits */
            .peer = &b->peer[i],
            .peerlen = b->q[i].from.peerlen,
            .ctl = b->cout[i].buf,
            .ctllen = b->q[i].from.ctllen,
        };
    size_t ntrains = udptrain_plan(b->tr, n, u->gso, b->order, b->trains);
    for (size_t t = 0; t < ntrains; t++)
        udptrain_message(b->tr, b->order, &b->trains[t], b->iout, &b->out[t].msg_hdr, &b->tctl[t]);
    for (size_t sent = 0; sent < ntrains;) {
        int k = sendmmsg(u->fd, b->out + sent, (unsigned)(ntrains - sent), 0);
        if (k > 0) {
            sent += (size_t)k;
        } else if (errno != EINTR) {
            if (b->trains[sent].count > 1)
                train_split(u, b, &b->trains[sent], errno);
            /* Otherwise a full send buffer or a peer the kernel refuses:
             * that reply is lost (the client retries), the rest still go. */
            sent++;
        }
    }
}

/* Up to UDP_BATCH datagrams; 0 when none waits. */
static int receive_batch(struct udp_sock *u, struct udp_batch *b)
{
    for (int i = 0; i < UDP_BATCH; i++) {
        b->iin[i] = (struct iovec){b->query[i], UDP_QUERY_MAX};
        b->in[i].msg_hdr = (struct msghdr){
            .msg_name = &b->peer[i],
            .msg_namelen = sizeof(b->peer[i]),
            .msg_iov = &b->iin[i],
            .msg_iovlen = 1,
            .msg_control = u->wildcard ? b->cin[i].buf : NULL,
            .msg_controllen = u->wildcard ? sizeof(b->cin[i].buf) : 0,
        };
    }
    int n = recvmmsg(u->fd, b->in, UDP_BATCH, MSG_DONTWAIT, NULL);
    return n > 0 ? n : 0;
}

static void on_datagrams(evutil_socket_t fd, short what, void *arg)
{
    struct udp_sock *u = arg;
    struct worker *w = u->w;
    struct udp_batch *b = w->udp;
    (void)fd;
    (void)what;

    worker_enter(w);
    for (int round = 0; round < UDP_ROUNDS; round++) {
        int n = receive_batch(u, b);
        if (n == 0)
            break;
        uint64_t t0 = clock_ns();
        for (int i = 0; i < n; i++) {
            struct handled *q = &b->q[i];
            q->query = b->query[i];
            q->qlen = b->in[i].msg_len;
            q->reply = b->reply[i];
            q->from = (struct origin){
                .index = u->index,
                .peer = (const struct sockaddr *)&b->peer[i],
                .peerlen = b->in[i].msg_hdr.msg_namelen,
                .fd = u->fd,
                .ctl = b->cout[i].buf,
                .ctllen = u->wildcard ? reply_pktinfo(&b->in[i].msg_hdr, &b->cout[i]) : 0,
            };
            q->waited = false;
        }
        handler_answer(w, b->q, (size_t)n, t0);
        send_batch(u, b, (size_t)n);
        if (n < UDP_BATCH)
            break;
    }
    worker_leave(w); /* and the lookups for the queries that wait go out */
}

void udp_reply(const struct origin *to, const uint8_t *reply, size_t len)
{
    struct iovec iov = {(void *)(uintptr_t)reply, len};
    struct msghdr m = {
        .msg_name = (void *)(uintptr_t)to->peer,
        .msg_namelen = to->peerlen,
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = to->ctllen ? (void *)(uintptr_t)to->ctl : NULL,
        .msg_controllen = to->ctllen,
    };
    if (sendmsg(to->fd, &m, MSG_DONTWAIT) < 0)
        log_debug("upstream reply lost: %s", strerror(errno));
}

static bool is_wildcard(const struct config_addr *l)
{
    if (l->addr.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
}

static void set_buffer(int fd, int force, int plain)
{
    /* FORCE passes net.core.[rw]mem_max when privileged; else the kernel caps it */
    int size = UDP_BUFSIZE;
    if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, plain, &size, sizeof(size));
}

int udp_start(struct worker *w, const struct config_addr *l, struct udp_sock *u, int fd)
{
    u->index = (size_t)(l - w->srv->listen);
    u->fd = fd;
    u->w = w;
    u->wildcard = is_wildcard(l);
#ifdef UDP_SEGMENT
    /* A kernel that knows the option also honours it per message. */
    int segment;
    socklen_t seglen = sizeof(segment);
    u->gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &segment, &seglen) == 0;
#endif
    set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
    if (u->wildcard) {
        int on = 1;
        int r = l->addr.ss_family == AF_INET
                    ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on))
                    : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
        if (r < 0) {
            int err = errno;
            log_error("cannot listen on %s (udp): packet info: %s", l->text, strerror(err));
            return -err;
        }
    }
    u->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_datagrams, u);
    if (!u->ev || event_add(u->ev, NULL) < 0)
        return -ENOMEM;
    return 0;
}

void udp_close(struct udp_sock *u)
{
    if (u->ev)
        event_free(u->ev);
    u->ev = NULL;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
}
