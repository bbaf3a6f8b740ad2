/* server.c -- UDP and TCP sockets on every listen address: bytes in, bytes out. */
#include "svcmapd/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ldns/util.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svcmapd/answer.h"
#include "svcmapd/clock.h"
#include "svcmapd/listener.h"
#include "svcmapd/log.h"
#include "svcmapd/metrics.h"
#include "svcmapd/udptrain.h"
#include "svcmapd/upstream.h"

/*
 * Workers: one thread per worker, each with its own event base and its own
 * UDP socket and TCP listener on every listen address (SO_REUSEPORT: the
 * kernel spreads queries and connections over them). Workers share nothing
 * but the zone pointer (reload.c) and the count of open TCP connections, so
 * they never wait for each other.
 */

#define UDP_BATCH     32        /* datagrams per recvmmsg/sendmmsg */
#define UDP_ROUNDS    8         /* batches per wakeup before other sockets get a turn */
#define UDP_QUERY_MAX 4096      /* larger datagrams are cut, then get FORMERR */
#define UDP_BUFSIZE   (4 << 20) /* as NSD: bursts from a forwarder must not be dropped */
#define TCP_BACKLOG   1024
#define TCP_OUT_HIGH  (256 * 1024) /* stop reading a client that does not read */
#define STOP_GRACE    5            /* seconds for queued TCP replies at shutdown */
#define MAX_WORKERS   256
#define MAX_PENDING   4096 /* queries waiting for upstream lookups, per worker */

union pktinfo_buf {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    size_t align; /* cmsghdr's alignment; the header itself has a flexible member */
};

_Static_assert(UDP_BATCH <= UDPTRAIN_BATCH_MAX, "udptrain_plan() takes a whole batch");

struct udp_batch {
    struct mmsghdr in[UDP_BATCH];
    struct mmsghdr out[UDP_BATCH];
    struct iovec iin[UDP_BATCH];
    struct iovec iout[UDP_BATCH];
    struct sockaddr_storage peer[UDP_BATCH];
    union pktinfo_buf cin[UDP_BATCH];
    union pktinfo_buf cout[UDP_BATCH];
    struct answer_info info[UDP_BATCH];
    enum answer_result result[UDP_BATCH];
    struct udptrain_reply tr[UDP_BATCH];
    size_t order[UDP_BATCH];
    struct udptrain trains[UDP_BATCH];
    union udptrain_ctl tctl[UDP_BATCH];
    uint8_t query[UDP_BATCH][UDP_QUERY_MAX];
    uint8_t reply[UDP_BATCH][ANSWER_UDP_MAX];
};

struct worker;

struct udp_sock {
    int fd;
    size_t index;  /* of its listen address: the metrics' server label */
    bool wildcard; /* bound to 0.0.0.0 or ::: reply from the query's address */
    bool gso;      /* the kernel takes trains of replies (udptrain.h) */
    struct event *ev;
    struct worker *w;
};

struct tcp_conn {
    struct bufferevent *bev;
    struct worker *w;
    struct tcp_conn *prev, *next;
    bool throttled; /* reading paused until the client reads its replies */
    bool draining;  /* the client has closed its side: close once written */
    bool waiting;   /* reading paused until its upstream lookups end */
    struct sockaddr_storage peer;
    size_t index;       /* of the listen address it came to */
    uint32_t npending;  /* its queries waiting for upstream lookups */
    uint64_t msg_start; /* when the message being received began (ms); 0: none */
};

struct tcp_listener {
    struct listener *l;
    struct worker *w;
    size_t index;
};

/* A query waiting for an upstream lookup (upstream.c): what is needed to
 * answer it again and send the reply where the query came from. */
struct pending {
    struct upstream_waiter waiter; /* first: the lookup hands it back */
    struct worker *w;
    struct pending *prev, *next;
    struct tcp_conn *conn; /* TCP; NULL for UDP */
    int fd;                /* UDP */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    union pktinfo_buf ctl;
    socklen_t ctllen;
    size_t index;      /* of the listen address */
    uint64_t since_ns; /* when it came, for the duration histogram */
    size_t len;
    uint8_t query[];
};

struct worker {
    struct server *srv;
    size_t slot; /* its index, and its reader slot in the zone_ref */
    pthread_t thread;
    bool running;
    struct event_base *base;
    struct event *stop_ev; /* activated from the main thread */
    struct event *deadline;
    bool stopping;
    struct answer_ctx actx;
    struct upstream *up;
    struct pending *pending;
    size_t npending;
    const struct zone *zone; /* held while zone_depth > 0 */
    unsigned zone_depth;
    struct udp_batch udp;
    struct udp_sock *udps;
    struct tcp_listener *tcps;
    struct metrics *metrics;
    struct tcp_conn *conns;
    uint8_t tcp_query[ANSWER_TCP_MAX];
    uint8_t tcp_reply[2 + ANSWER_TCP_MAX];
};

struct server {
    struct zone_ref *zones;
    struct config_addr *listen;
    size_t nlisten;
    _Atomic uint32_t tcp_open;   /* over all workers */
    struct log_limit accept_log; /* failed accepts, over all workers */
    size_t max_lookups;          /* upstream lookups in flight per worker */
    size_t nworkers;
    struct worker **workers;
};

static bool is_ipv6(const void *sa)
{
    return ((const struct sockaddr *)sa)->sa_family == AF_INET6;
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

/* The zone for this worker's current callback. Nested calls (a lookup
 * that ends while a batch is being answered) share one hazard slot. */
static const struct zone *worker_enter(struct worker *w)
{
    if (w->zone_depth++ == 0)
        w->zone = zone_ref_enter(w->srv->zones, w->slot);
    return w->zone;
}

static void worker_leave(struct worker *w)
{
    if (--w->zone_depth == 0) {
        zone_ref_leave(w->srv->zones, w->slot);
        w->zone = NULL;
    }
}

static void set_read_timeout(struct tcp_conn *c);

/* Counts a query and its reply, and logs it when query logging is on. */
static void account(struct worker *w, size_t index, const struct answer_info *info,
                    const void *peer, bool tcp, const uint8_t *query, size_t qlen,
                    const uint8_t *reply, size_t rlen, uint64_t ns)
{
    metrics_count(w->metrics, index, info->outside, tcp, is_ipv6(peer), info->qtype, info->rcode,
                  qlen, rlen, ns);
    if (!log_queries() || rlen == 0)
        return;
    struct log_query q = {
        .peer = peer,
        .tcp = tcp,
        .id = info->id,
        .qtype = info->qtype,
        .qclass = info->qclass,
        .qname = info->question ? query + 12 : NULL,
        .size = qlen,
        .do_bit = info->do_bit,
        .bufsize = info->bufsize,
        .rcode = info->rcode,
        .reply = reply,
        .rsize = rlen,
        .ns = ns,
    };
    log_query(&q);
}

static void pending_free(struct pending *p)
{
    struct worker *w = p->w;
    upstream_unwait(&p->waiter);
    struct tcp_conn *c = p->conn;
    if (c && --c->npending == 0) {
        set_read_timeout(c);
        if (c->waiting && !c->draining && !w->stopping) {
            /* its lookups are done: read its next queries */
            c->waiting = false;
            bufferevent_enable(c->bev, EV_READ);
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
        }
    }
    if (p->prev)
        p->prev->next = p->next;
    else
        w->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    w->npending--;
    free(p);
}

/* Answers a query that waited, from the cache or without it, and sends
 * the reply the way the query came. */
static void respond(struct pending *p)
{
    struct worker *w = p->w;
    const struct zone *z = worker_enter(w);
    struct answer_info info;
    size_t rlen;
    w->actx.no_wait = true;
    w->actx.now = clock_ms();
    if (p->conn) {
        answer_query(&w->actx, z, p->query, p->len, true, (const struct sockaddr *)&p->conn->peer,
                     w->tcp_reply + 2, ANSWER_TCP_MAX, &info);
        rlen = info.len;
        if (rlen) {
            ldns_write_uint16(w->tcp_reply, (uint16_t)rlen);
            bufferevent_write(p->conn->bev, w->tcp_reply, rlen + 2);
        }
        account(w, p->index, &info, &p->conn->peer, true, p->query, p->len, w->tcp_reply + 2, rlen,
                clock_ns() - p->since_ns);
    } else {
        uint8_t reply[ANSWER_UDP_MAX];
        answer_query(&w->actx, z, p->query, p->len, false, (const struct sockaddr *)&p->peer, reply,
                     sizeof(reply), &info);
        rlen = info.len;
        struct iovec iov = {reply, rlen};
        struct msghdr m = {
            .msg_name = &p->peer,
            .msg_namelen = p->peerlen,
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = p->ctllen ? p->ctl.buf : NULL,
            .msg_controllen = p->ctllen,
        };
        if (rlen && sendmsg(p->fd, &m, MSG_DONTWAIT) < 0)
            log_debug("upstream reply lost: %s", strerror(errno));
        account(w, p->index, &info, &p->peer, false, p->query, p->len, reply, rlen,
                clock_ns() - p->since_ns);
    }
    w->actx.no_wait = false;
    worker_leave(w);
}

static void on_lookup_done(struct upstream_waiter *waiter)
{
    struct pending *p = (struct pending *)(void *)waiter;
    struct worker *w = p->w;
    worker_enter(w); /* for its connection's read timeout too */
    respond(p);
    pending_free(p);
    worker_leave(w);
}

/* Keeps a query until its lookup ends. False if it cannot wait (too many
 * already do): then it is answered at once, without the lookup. */
static bool defer(struct worker *w, const struct answer_info *info, const uint8_t *query,
                  size_t len, struct tcp_conn *conn, int fd, size_t index,
                  const struct msghdr *from, socklen_t ctllen, const union pktinfo_buf *ctl)
{
    if (w->npending >= MAX_PENDING)
        return false;
    struct pending *p = malloc(sizeof(*p) + len);
    if (!p)
        return false;
    p->waiter.done = on_lookup_done;
    p->w = w;
    p->conn = conn;
    p->fd = fd;
    p->peerlen = 0;
    p->ctllen = ctllen;
    if (from) {
        memcpy(&p->peer, from->msg_name, from->msg_namelen);
        p->peerlen = from->msg_namelen;
    }
    if (ctllen)
        memcpy(&p->ctl, ctl, sizeof(p->ctl));
    p->index = index;
    p->since_ns = clock_ns();
    p->len = len;
    memcpy(p->query, query, len);
    if (conn)
        conn->npending++;
    p->prev = NULL;
    p->next = w->pending;
    if (w->pending)
        w->pending->prev = p;
    w->pending = p;
    w->npending++;
    upstream_wait(info->wait, &p->waiter);
    return true;
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
static void udp_send(struct udp_sock *u, struct udp_batch *b, size_t n)
{
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

static void on_udp(evutil_socket_t fd, short what, void *arg)
{
    struct udp_sock *u = arg;
    struct worker *w = u->w;
    struct udp_batch *b = &w->udp;
    (void)what;

    const struct zone *z = worker_enter(w);
    w->actx.now = clock_ms();
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
        uint64_t t0 = clock_ns();

        for (int i = 0; i < n; i++) {
            struct answer_info *info = &b->info[i];
            b->tr[i].len = 0;
            b->result[i] = answer_query(&w->actx, z, b->query[i], b->in[i].msg_len, false,
                                        (const struct sockaddr *)&b->peer[i], b->reply[i],
                                        ANSWER_UDP_MAX, info);
            socklen_t cl = 0;
            if (u->wildcard)
                cl = reply_pktinfo(&b->in[i].msg_hdr, &b->cout[i]);
            if (b->result[i] == ANSWER_DEFERRED) {
                if (defer(w, info, b->query[i], b->in[i].msg_len, NULL, fd, u->index,
                          &b->in[i].msg_hdr, cl, &b->cout[i]))
                    continue; /* counted when answered */
                w->actx.no_wait = true;
                b->result[i] = answer_query(&w->actx, z, b->query[i], b->in[i].msg_len, false,
                                            (const struct sockaddr *)&b->peer[i], b->reply[i],
                                            ANSWER_UDP_MAX, info);
                w->actx.no_wait = false;
            }
            b->tr[i] = (struct udptrain_reply){
                .data = b->reply[i],
                .len = info->len,
                .peer = &b->peer[i],
                .peerlen = b->in[i].msg_hdr.msg_namelen,
                .ctl = b->cout[i].buf,
                .ctllen = cl,
            };
        }
        /* One clock read per batch: each query is charged the batch's
         * average, which is what its answering cost. */
        uint64_t each = (clock_ns() - t0) / (uint64_t)n;
        for (int i = 0; i < n; i++)
            if (b->result[i] != ANSWER_DEFERRED)
                account(w, u->index, &b->info[i], &b->peer[i], false, b->query[i], b->in[i].msg_len,
                        b->reply[i], b->tr[i].len, each);
        udp_send(u, b, (size_t)n);
        if (n < UDP_BATCH)
            break;
    }
    upstream_flush(w->up); /* lookups for the queries that wait */
    worker_leave(w);
}

/* ---------------------------------------------------------------------- */
/* TCP (RFC 7766)                                                          */

static void conn_free(struct tcp_conn *c)
{
    struct worker *w = c->w;
    /* its queries that wait for lookups have nobody to answer to now */
    c->waiting = false;
    struct pending *p = w->pending, *pnext;

    for (; p; p = pnext) {
        pnext = p->next;
        if (p->conn == c) {
            p->conn = NULL; /* the connection is going: nothing to resume */
            pending_free(p);
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&w->srv->tcp_open, 1);
    bufferevent_free(c->bev);
    free(c);

    if (w->stopping && !w->conns && w->deadline)
        event_del(w->deadline); /* the last reply is out: the loop may end */
}

/* The read timeout: idle between messages, shorter inside one (a length
 * prefix followed by silence must not hold a connection for long). The
 * limits are those of the zone the worker holds (a reload's apply at
 * once). */
static void set_read_timeout(struct tcp_conn *c)
{
    const struct zone_settings *set = zone_settings(c->w->zone);
    struct timeval idle = {set->tcp_idle_timeout, 0};
    if (c->npending) {
        /* not idle: its answers wait for lookups, which have their own
         * timeout; the idle clock starts again when they are sent */
        bufferevent_set_timeouts(c->bev, NULL, &idle);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        c->msg_start = 0;
        bufferevent_set_timeouts(c->bev, &idle, &idle);
        return;
    }
    /* Inside a message: what is left of tcp-message-timeout since its first
     * byte, a deadline that trickling bytes do not push back. */
    uint64_t now = clock_ms();
    if (c->msg_start == 0)
        c->msg_start = now;
    uint64_t limit = set->tcp_message_timeout * 1000ULL;
    uint64_t spent = now - c->msg_start;
    uint64_t left = spent < limit ? limit - spent : 1;
    struct timeval msg = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &msg, &idle);
}

/* RFC 7766: several queries per connection, answered as they come, the
 * ones that wait for upstream lookups later, in any order. A connection
 * gets `tcp-pipeline` queries per turn, so that one client streaming
 * queries cannot starve the others. */
static void on_tcp_read(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    struct worker *w = c->w;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    const struct zone *z = worker_enter(w);
    uint32_t pipeline = zone_settings(z)->tcp_pipeline;
    w->actx.now = clock_ms();
    for (uint32_t turn = 0;; turn++) {
        uint8_t hdr[2];
        size_t avail = evbuffer_get_length(in);
        if (avail < 2)
            break;
        evbuffer_copyout(in, hdr, 2);
        size_t len = ldns_read_uint16(hdr);
        if (len == 0) {
            /* A zero-length message is a broken client: drop it. */
            worker_leave(w);
            conn_free(c);
            return;
        }
        if (avail < 2 + len)
            break;
        if (turn == pipeline) {
            /* the rest is read at the next turn of the loop */
            bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
            break;
        }
        if (c->npending >= pipeline) {
            bufferevent_disable(bev, EV_READ);
            c->waiting = true;
            break;
        }
        evbuffer_drain(in, 2);
        evbuffer_remove(in, w->tcp_query, len);
        c->msg_start = 0; /* a whole message: the next one starts its own clock */

        struct answer_info info;
        uint64_t t0 = clock_ns();
        enum answer_result r =
            answer_query(&w->actx, z, w->tcp_query, len, true, (const struct sockaddr *)&c->peer,
                         w->tcp_reply + 2, ANSWER_TCP_MAX, &info);
        if (r == ANSWER_DEFERRED) {
            if (defer(w, &info, w->tcp_query, len, c, -1, c->index, NULL, 0, NULL))
                continue; /* counted when answered */
            w->actx.no_wait = true;
            answer_query(&w->actx, z, w->tcp_query, len, true, (const struct sockaddr *)&c->peer,
                         w->tcp_reply + 2, ANSWER_TCP_MAX, &info);
            w->actx.no_wait = false;
        }
        size_t rlen = info.len;
        account(w, c->index, &info, &c->peer, true, w->tcp_query, len, w->tcp_reply + 2, rlen,
                clock_ns() - t0);
        if (rlen) {
            ldns_write_uint16(w->tcp_reply, (uint16_t)rlen);
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
    set_read_timeout(c);
    upstream_flush(w->up);
    worker_leave(w);
}

/* Called when the output buffer has drained completely. */
static void on_tcp_write(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    if (c->draining || c->w->stopping) {
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
    if ((what & BEV_EVENT_EOF) &&
        (evbuffer_get_length(bufferevent_get_output(bev)) > 0 || c->npending > 0)) {
        /* The client closed its side after its last query: finish writing,
         * the answers that wait for lookups included. */
        bufferevent_disable(bev, EV_READ);
        c->draining = true;
        return;
    }
    /* EOF, error, or idle/write timeout */
    conn_free(c);
}

static void on_accept(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
{
    struct tcp_listener *tl = arg;
    struct worker *w = tl->w;
    struct server *srv = w->srv;

    const struct zone_settings *set = zone_settings(worker_enter(w));
    uint32_t max = set->tcp_max_connections;
    struct timeval idle = {set->tcp_idle_timeout, 0};
    worker_leave(w);
    if (w->stopping || atomic_fetch_add(&srv->tcp_open, 1) >= max) {
        /* SPEC §3: excess connections are closed, not queued. */
        if (!w->stopping) {
            atomic_fetch_sub(&srv->tcp_open, 1);
            metrics_inc(&w->metrics->tcp_refused, 1);
        }
        close(fd);
        return;
    }
    struct tcp_conn *c = calloc(1, sizeof(*c));
    struct bufferevent *bev = c ? bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        atomic_fetch_sub(&srv->tcp_open, 1);
        return;
    }
    c->bev = bev;
    c->w = w;
    c->index = tl->index;
    if (salen <= sizeof(c->peer))
        memcpy(&c->peer, sa, (size_t)salen);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;

    bufferevent_setcb(bev, on_tcp_read, on_tcp_write, on_tcp_event, c);
    bufferevent_set_timeouts(bev, &idle, &idle);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ---------------------------------------------------------------------- */
/* Sockets                                                                 */

static bool is_wildcard(const struct config_addr *l)
{
    if (l->addr.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
}

/* A bound socket for `l`, or a negative errno (logged). `shared` sets
 * SO_REUSEPORT, so that every worker can bind the same address. */
static int open_socket(const struct config_addr *l, int type, bool shared)
{
    const char *proto = type == SOCK_DGRAM ? "udp" : "tcp";
    int fd = socket(l->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
        goto fail;
    if (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0)
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

/* SO_REUSEPORT would let a second svcmapd (a stale one, say) share the
 * port and take half the queries. Binding once without it first proves
 * that nobody else holds the address. */
static int probe_exclusive(const struct config_addr *l)
{
    for (int type = SOCK_DGRAM; type >= SOCK_STREAM; type--) {
        int fd = open_socket(l, type, false);
        if (fd < 0)
            return fd;
        close(fd);
    }
    return 0;
}

static void set_buffer(int fd, int force, int plain)
{
    /* FORCE passes net.core.[rw]mem_max when privileged; else the kernel caps it */
    int size = UDP_BUFSIZE;
    if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, plain, &size, sizeof(size));
}

static int start_udp(struct worker *w, const struct config_addr *l, struct udp_sock *u)
{
    u->index = (size_t)(l - w->srv->listen);
    int fd = open_socket(l, SOCK_DGRAM, w->srv->nworkers > 1);
    if (fd < 0)
        return fd;
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
    u->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_udp, u);
    if (!u->ev || event_add(u->ev, NULL) < 0)
        return -ENOMEM;
    return 0;
}

static int start_tcp(struct worker *w, const struct config_addr *l, struct tcp_listener *out)
{
    int fd = open_socket(l, SOCK_STREAM, w->srv->nworkers > 1);
    if (fd < 0)
        return fd;
    if (listen(fd, TCP_BACKLOG) < 0) {
        int err = errno;
        log_error("cannot listen on %s (tcp): %s", l->text, strerror(err));
        close(fd);
        return -err;
    }
    out->w = w;
    out->index = (size_t)(l - w->srv->listen);
    char what[80];
    snprintf(what, sizeof(what), "tcp %s", l->text);
    out->l = listener_new(w->base, fd, what, on_accept, out, &w->metrics->tcp_accept_errors,
                          &w->srv->accept_log);
    return out->l ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* Workers                                                                 */

static void close_sockets(struct worker *w)
{
    for (size_t i = 0; w->udps && i < w->srv->nlisten; i++) {
        struct udp_sock *u = &w->udps[i];
        if (u->ev)
            event_free(u->ev);
        u->ev = NULL;
        if (u->fd >= 0)
            close(u->fd);
        u->fd = -1;
    }
    for (size_t i = 0; w->tcps && i < w->srv->nlisten; i++) {
        listener_free(w->tcps[i].l);
        w->tcps[i].l = NULL;
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    while (w->conns)
        conn_free(w->conns);
}

/* Runs in the worker's thread when the main thread asks it to stop. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    w->stopping = true;
    /* queries that wait for lookups are answered now, without them */
    worker_enter(w);
    while (w->pending) {
        struct pending *p = w->pending;
        upstream_unwait(&p->waiter);
        respond(p);
        pending_free(p);
    }
    worker_leave(w);
    upstream_shutdown(w->up); /* nobody waits for them now */
    close_sockets(w);

    struct tcp_conn *next;
    for (struct tcp_conn *c = w->conns; c; c = next) {
        next = c->next;
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            conn_free(c);
    }
    if (w->conns) {
        /* queued replies get a few seconds to go out */
        struct timeval tv = {STOP_GRACE, 0};
        evtimer_add(w->deadline, &tv);
    }
    /* With no sockets, connections or timers left, the loop returns. */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static struct worker *worker_new(struct server *srv, size_t slot)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->srv = srv;
    w->slot = slot;
    w->base = event_base_new();
    w->udps = calloc(srv->nlisten, sizeof(*w->udps));
    w->tcps = calloc(srv->nlisten, sizeof(*w->tcps));
    w->metrics = metrics_new(srv->nlisten);
    if (w->base) {
        w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
        w->deadline = evtimer_new(w->base, on_deadline, w);
        w->up = upstream_new(w->base, srv->max_lookups);
    }
    if (!w->base || !w->udps || !w->tcps || !w->stop_ev || !w->deadline || !w->up || !w->metrics)
        return w; /* server_start sees the missing parts */
    w->actx.up = w->up;
    for (size_t i = 0; i < srv->nlisten; i++)
        w->udps[i].fd = -1;
    answer_init(&w->actx);
    return w;
}

static void worker_free(struct worker *w)
{
    if (!w)
        return;
    close_sockets(w);
    while (w->conns)
        conn_free(w->conns);
    while (w->pending)
        pending_free(w->pending);
    upstream_free(w->up);
    if (w->stop_ev)
        event_free(w->stop_ev);
    if (w->deadline)
        event_free(w->deadline);
    if (w->base)
        event_base_free(w->base);
    free(w->udps);
    free(w->tcps);
    metrics_free(w->metrics);
    free(w);
}

/* ---------------------------------------------------------------------- */

size_t server_worker_count(const struct config *cfg)
{
    if (cfg->workers)
        return cfg->workers;
    /* the CPUs this process may run on (a container's cpuset), not all
     * the host has */
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                          : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (size_t)n;
}

/* A worker's descriptors besides its connections and lookups: its event
 * base's (epoll, the eventfd that wakes it, a signal pipe's two ends),
 * then a UDP socket and a TCP listener per listen address. */
#define WORKER_FDS(nlisten) (4 + 2 * (nlisten))

size_t server_fds(const struct config *cfg)
{
    return server_worker_count(cfg) * WORKER_FDS(cfg->nlisten);
}

struct server *server_new(const struct config *cfg, struct zone_ref *zones, size_t max_lookups)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->zones = zones;
    srv->max_lookups = max_lookups;
    srv->nworkers = server_worker_count(cfg);
    srv->nlisten = cfg->nlisten;
    srv->listen = calloc(cfg->nlisten, sizeof(*srv->listen));
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    if (!srv->listen || !srv->workers) {
        server_free(srv);
        return NULL;
    }
    memcpy(srv->listen, cfg->listen, cfg->nlisten * sizeof(*srv->listen));
    atomic_init(&srv->tcp_open, 0);
    return srv;
}

size_t server_workers(const struct server *srv)
{
    return srv->nworkers;
}

const struct metrics *server_metrics(const struct server *srv, size_t k)
{
    return srv->workers[k]->metrics;
}

const struct upstream_stats *server_upstream_stats(const struct server *srv, size_t k)
{
    return upstream_stats(srv->workers[k]->up);
}

uint32_t server_tcp_open(const struct server *srv)
{
    return atomic_load_explicit(&srv->tcp_open, memory_order_relaxed);
}

const struct config_addr *server_listen(const struct server *srv, size_t *n)
{
    *n = srv->nlisten;
    return srv->listen;
}

int server_start(struct server *srv)
{
    static bool threads_ready;
    if (!threads_ready) {
        /* the main thread wakes workers' bases (event_active on stop_ev) */
        if (evthread_use_pthreads() < 0)
            return -ENOMEM;
        threads_ready = true;
    }

    for (size_t i = 0; i < srv->nlisten; i++) {
        int r = srv->nworkers > 1 ? probe_exclusive(&srv->listen[i]) : 0;
        if (r < 0)
            return r;
    }
    for (size_t k = 0; k < srv->nworkers; k++) {
        struct worker *w = srv->workers[k] = worker_new(srv, k);
        if (!w || !w->base || !w->udps || !w->tcps || !w->stop_ev || !w->deadline || !w->up ||
            !w->metrics) {
            log_error("out of memory");
            return -ENOMEM;
        }
        for (size_t i = 0; i < srv->nlisten; i++) {
            int r = start_udp(w, &srv->listen[i], &w->udps[i]);
            if (r == 0)
                r = start_tcp(w, &srv->listen[i], &w->tcps[i]);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int server_run(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++) {
        struct worker *w = srv->workers[k];
        int r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
            log_error("cannot start worker thread: %s", strerror(r));
            server_stop(srv);
            server_wait(srv);
            return -r;
        }
        w->running = true;
    }
    return 0;
}

void server_stop(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++)
        if (srv->workers[k] && srv->workers[k]->running)
            event_active(srv->workers[k]->stop_ev, 0, 0);
}

void server_wait(struct server *srv)
{
    for (size_t k = 0; k < srv->nworkers; k++) {
        struct worker *w = srv->workers[k];
        if (w && w->running) {
            pthread_join(w->thread, NULL);
            w->running = false;
        }
    }
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    for (size_t k = 0; srv->workers && k < srv->nworkers; k++)
        worker_free(srv->workers[k]);
    free(srv->workers);
    free(srv->listen);
    free(srv);
}
