/* server.c -- UDP and TCP sockets on every listen address: bytes in, bytes out. */
#include "svcmapd/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svcmapd/answer.h"
#include "svcmapd/log.h"

#define UDP_BATCH     32        /* datagrams per recvmmsg/sendmmsg */
#define UDP_ROUNDS    8         /* batches per wakeup before other sockets get a turn */
#define UDP_QUERY_MAX 4096      /* larger datagrams are cut, then get FORMERR */
#define UDP_RCVBUF    (4 << 20) /* NSD does the same: bursts must not be dropped */
#define TCP_BACKLOG   1024
#define TCP_OUT_HIGH  (256 * 1024) /* stop reading a client that does not read */
#define STOP_GRACE    5            /* seconds for queued TCP replies at shutdown */

union pktinfo_buf {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    size_t align; /* cmsghdr's alignment; the header itself has a flexible member */
};

struct udp_batch {
    struct mmsghdr in[UDP_BATCH];
    struct mmsghdr out[UDP_BATCH];
    struct iovec iin[UDP_BATCH];
    struct iovec iout[UDP_BATCH];
    struct sockaddr_storage peer[UDP_BATCH];
    union pktinfo_buf cin[UDP_BATCH];
    union pktinfo_buf cout[UDP_BATCH];
    uint8_t query[UDP_BATCH][UDP_QUERY_MAX];
    uint8_t reply[UDP_BATCH][ANSWER_UDP_MAX];
};

struct worker;

struct udp_sock {
    int fd;
    int family;
    bool wildcard; /* bound to 0.0.0.0 or ::: reply from the query's address */
    struct event *ev;
    struct worker *w;
};

struct tcp_conn {
    struct bufferevent *bev;
    struct worker *w;
    struct tcp_conn *prev, *next;
    bool throttled; /* reading paused until the client reads its replies */
    bool draining;  /* the client has closed its side: close once written */
};

struct worker {
    struct server *srv;
    struct event_base *base;
    size_t slot; /* reader slot in the zone_ref */
    struct answer_ctx actx;
    struct udp_batch *udp;
    uint8_t tcp_query[ANSWER_TCP_MAX];
    uint8_t tcp_reply[2 + ANSWER_TCP_MAX];
    struct tcp_conn *conns;
    size_t nconns;
};

struct server {
    struct event_base *base;
    struct zone_ref *zones;
    struct config_listen *listen;
    size_t nlisten;
    uint32_t idle_timeout;
    uint32_t max_connections;

    struct udp_sock *udp;
    size_t nudp;
    struct evconnlistener **tcp;
    size_t ntcp;
    struct worker worker; /* one event loop for now; workers come later */

    bool stopping;
    struct event *deadline;
};

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* ---------------------------------------------------------------------- */
/* UDP                                                                     */

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
            struct cmsghdr *o = (struct cmsghdr *)(void *)out->buf;
            o->cmsg_level = IPPROTO_IP;
            o->cmsg_type = IP_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(reply));
            memcpy(CMSG_DATA(o), &reply, sizeof(reply));
            return CMSG_SPACE(sizeof(reply));
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            struct cmsghdr *o = (struct cmsghdr *)(void *)out->buf;
            o->cmsg_level = IPPROTO_IPV6;
            o->cmsg_type = IPV6_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(o), &pi, sizeof(pi));
            return CMSG_SPACE(sizeof(pi));
        }
    }
    return 0;
}

static void on_udp(evutil_socket_t fd, short what, void *arg)
{
    struct udp_sock *u = arg;
    struct worker *w = u->w;
    struct udp_batch *b = w->udp;
    (void)what;

    const struct zone *z = zone_ref_enter(w->srv->zones, w->slot);
    for (int round = 0; round < UDP_ROUNDS; round++) {
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
        int n = recvmmsg(fd, b->in, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;

        int nout = 0;
        for (int i = 0; i < n; i++) {
            struct answer_info info;
            size_t len = answer_query(&w->actx, z, b->query[i], b->in[i].msg_len, false,
                                      b->reply[i], ANSWER_UDP_MAX, &info);
            if (len == 0)
                continue;
            struct mmsghdr *o = &b->out[nout++];
            b->iout[i] = (struct iovec){b->reply[i], len};
            o->msg_hdr = (struct msghdr){
                .msg_name = &b->peer[i],
                .msg_namelen = b->in[i].msg_hdr.msg_namelen,
                .msg_iov = &b->iout[i],
                .msg_iovlen = 1,
            };
            if (u->wildcard) {
                socklen_t cl = reply_pktinfo(&b->in[i].msg_hdr, &b->cout[i]);
                if (cl) {
                    o->msg_hdr.msg_control = b->cout[i].buf;
                    o->msg_hdr.msg_controllen = cl;
                }
            }
        }
        for (int sent = 0; sent < nout;) {
            int k = sendmmsg(fd, b->out + sent, (unsigned)(nout - sent), 0);
            if (k > 0) {
                sent += k;
            } else if (errno != EINTR) {
                /* A full send buffer or a peer the kernel refuses: that
                 * reply is lost (the client retries), the rest still go. */
                sent++;
            }
        }
        if (n < UDP_BATCH)
            break;
    }
    zone_ref_leave(w->srv->zones, w->slot);
}

/* ---------------------------------------------------------------------- */
/* TCP (RFC 7766)                                                          */

static void conn_free(struct tcp_conn *c)
{
    struct worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    bufferevent_free(c->bev);
    free(c);

    struct server *srv = w->srv;
    if (srv->stopping && w->nconns == 0 && srv->deadline)
        event_del(srv->deadline);
}

static void on_tcp_read(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    struct worker *w = c->w;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    const struct zone *z = zone_ref_enter(w->srv->zones, w->slot);
    for (;;) {
        uint8_t hdr[2];
        size_t avail = evbuffer_get_length(in);
        if (avail < 2)
            break;
        evbuffer_copyout(in, hdr, 2);
        size_t len = (size_t)(hdr[0] << 8 | hdr[1]);
        if (len == 0) {
            /* A zero-length message is a broken client: drop it. */
            zone_ref_leave(w->srv->zones, w->slot);
            conn_free(c);
            return;
        }
        if (avail < 2 + len)
            break;
        evbuffer_drain(in, 2);
        evbuffer_remove(in, w->tcp_query, len);

        struct answer_info info;
        size_t rlen = answer_query(&w->actx, z, w->tcp_query, len, true, w->tcp_reply + 2,
                                   ANSWER_TCP_MAX, &info);
        if (rlen) {
            put16(w->tcp_reply, (uint16_t)rlen);
            bufferevent_write(bev, w->tcp_reply, rlen + 2);
        }
        if (evbuffer_get_length(out) > TCP_OUT_HIGH) {
            /* Pipelined queries from a client that does not read its
             * replies: stop reading until it does (write timeout applies). */
            bufferevent_disable(bev, EV_READ);
            c->throttled = true;
            break;
        }
    }
    zone_ref_leave(w->srv->zones, w->slot);
}

/* Called when the output buffer has drained completely. */
static void on_tcp_write(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    if (c->draining || c->w->srv->stopping) {
        conn_free(c); /* its last reply is out */
        return;
    }
    if (c->throttled) {
        c->throttled = false;
        bufferevent_enable(bev, EV_READ);
        on_tcp_read(bev, c); /* queries may already be waiting */
    }
}

static void on_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    struct tcp_conn *c = arg;
    if ((what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        /* The client closed its side after its last query: finish writing. */
        bufferevent_disable(bev, EV_READ);
        c->draining = true;
        return;
    }
    /* EOF, error, or idle/write timeout */
    conn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct worker *w = arg;
    struct server *srv = w->srv;
    (void)l;
    (void)sa;
    (void)salen;

    if (srv->stopping || w->nconns >= srv->max_connections) {
        /* SPEC §3: excess connections are closed, not queued. */
        close(fd);
        return;
    }
    struct tcp_conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = c ? bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    c->bev = bev;
    c->w = w;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;

    struct timeval idle = {srv->idle_timeout, 0};
    bufferevent_setcb(bev, on_tcp_read, on_tcp_write, on_tcp_event, c);
    bufferevent_set_timeouts(bev, &idle, &idle);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ---------------------------------------------------------------------- */

static int open_socket(const struct config_listen *l, int type, const char *proto)
{
    int fd = socket(l->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
        goto fail;
    if (l->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0)
        goto fail;
    return fd;

fail:;
    int err = errno;
    log_error("cannot listen on %s (%s): %s", l->text, proto, strerror(err));
    if (fd >= 0)
        close(fd);
    return -err;
}

static bool is_wildcard(const struct config_listen *l)
{
    if (l->addr.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
}

static int start_udp(struct server *srv, const struct config_listen *l, struct udp_sock *u)
{
    int fd = open_socket(l, SOCK_DGRAM, "udp");
    if (fd < 0)
        return fd;
    int size = UDP_RCVBUF, on = 1;
    /* best effort: the kernel caps it at net.core.rmem_max */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    u->fd = fd;
    u->family = l->addr.ss_family;
    u->wildcard = is_wildcard(l);
    u->w = &srv->worker;
    if (u->wildcard) {
        int r = u->family == AF_INET
                    ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on))
                    : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
        if (r < 0) {
            int err = errno;
            log_error("cannot listen on %s (udp): packet info: %s", l->text, strerror(err));
            return -err;
        }
    }
    u->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_udp, u);
    if (!u->ev || event_add(u->ev, NULL) < 0)
        return -ENOMEM;
    return 0;
}

static int start_tcp(struct server *srv, const struct config_listen *l, struct evconnlistener **out)
{
    int fd = open_socket(l, SOCK_STREAM, "tcp");
    if (fd < 0)
        return fd;
    if (listen(fd, TCP_BACKLOG) < 0) {
        int err = errno;
        log_error("cannot listen on %s (tcp): %s", l->text, strerror(err));
        close(fd);
        return -err;
    }
    *out = evconnlistener_new(srv->base, on_accept, &srv->worker, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!*out) {
        close(fd);
        return -ENOMEM;
    }
    return 0;
}

struct server *server_new(struct event_base *base, const struct config *cfg, struct zone_ref *zones)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->base = base;
    srv->zones = zones;
    srv->listen = calloc(cfg->nlisten, sizeof(*srv->listen));
    srv->udp = calloc(cfg->nlisten, sizeof(*srv->udp));
    srv->tcp = calloc(cfg->nlisten, sizeof(*srv->tcp));
    srv->worker.udp = malloc(sizeof(*srv->worker.udp));
    if (!srv->listen || !srv->udp || !srv->tcp || !srv->worker.udp) {
        server_free(srv);
        return NULL;
    }
    memcpy(srv->listen, cfg->listen, cfg->nlisten * sizeof(*srv->listen));
    srv->nlisten = cfg->nlisten;
    for (size_t i = 0; i < cfg->nlisten; i++)
        srv->udp[i].fd = -1;
    server_apply_limits(srv, cfg);

    struct worker *w = &srv->worker;
    w->srv = srv;
    w->base = base;
    w->slot = 0;
    answer_init(&w->actx);
    return srv;
}

int server_start(struct server *srv)
{
    for (size_t i = 0; i < srv->nlisten; i++) {
        int r = start_udp(srv, &srv->listen[i], &srv->udp[i]);
        srv->nudp = i + 1;
        if (r < 0)
            return r;
        r = start_tcp(srv, &srv->listen[i], &srv->tcp[i]);
        if (r < 0)
            return r;
        srv->ntcp = i + 1;
    }
    return 0;
}

void server_apply_limits(struct server *srv, const struct config *cfg)
{
    srv->idle_timeout = cfg->tcp_idle_timeout;
    srv->max_connections = cfg->tcp_max_connections;
}

static void close_listeners(struct server *srv)
{
    for (size_t i = 0; i < srv->nudp; i++) {
        if (srv->udp[i].ev)
            event_free(srv->udp[i].ev);
        srv->udp[i].ev = NULL;
        if (srv->udp[i].fd >= 0)
            close(srv->udp[i].fd);
        srv->udp[i].fd = -1;
    }
    srv->nudp = 0;
    for (size_t i = 0; i < srv->ntcp; i++)
        if (srv->tcp[i])
            evconnlistener_free(srv->tcp[i]);
    srv->ntcp = 0;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    (void)fd;
    (void)what;
    while (srv->worker.conns)
        conn_free(srv->worker.conns);
}

void server_stop(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    close_listeners(srv);

    struct tcp_conn *next;
    for (struct tcp_conn *c = srv->worker.conns; c; c = next) {
        next = c->next;
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_free(c);
    }
    if (srv->worker.nconns) {
        srv->deadline = evtimer_new(srv->base, on_deadline, srv);
        struct timeval tv = {STOP_GRACE, 0};
        if (srv->deadline)
            evtimer_add(srv->deadline, &tv);
        else
            on_deadline(-1, 0, srv);
    }
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    close_listeners(srv);
    while (srv->worker.conns)
        conn_free(srv->worker.conns);
    if (srv->deadline)
        event_free(srv->deadline);
    free(srv->worker.udp);
    free(srv->listen);
    free(srv->udp);
    free(srv->tcp);
    free(srv);
}
