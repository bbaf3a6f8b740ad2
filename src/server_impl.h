/* server_impl.h -- the workers' state, shared by the files that take a query to its reply. */
#ifndef SVCMAPD_SERVER_IMPL_H
#define SVCMAPD_SERVER_IMPL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "svcmapd/answer.h"
#include "svcmapd/clock.h"
#include "svcmapd/log.h"
#include "svcmapd/server.h"
#include "svcmapd/upstream.h"
#include "svcmapd/zone_ref.h"

/*
 * A query goes one way through the server, one file per step:
 *   server.c          the workers (threads, event bases, the zone each
 *                     holds, stopping, releasing), the entry points;
 *   server_sockets.c  their listening sockets: bound, or given, shared
 *                     out, listed for a hand-over;
 *   server_udp.c      UDP: datagrams in batches (recvmmsg), replies out in
 *                     trains (sendmmsg, udptrain.h);
 *   server_tcp.c      TCP connections (RFC 7766): framing, pipelining,
 *                     timeouts, clients that do not read, and the zone
 *                     transfers sent on them (xfr.h writes the messages);
 *   server_handler.c  one query, whichever way it came (UDP, TCP, back
 *                     from a lookup): answered or deferred, and accounted;
 *   server_defer.c    queries that wait for an upstream lookup: kept, then
 *                     answered, their replies sent the way they came.
 * None of them looks inside a DNS message: answer.c does. They share one
 * private header, this one, as config_*.c share config_impl.h: a header
 * per file would have server.c and the deferral include each other.
 */

/* Control data a UDP reply is sent with: at most one IP_PKTINFO or
 * IPV6_PKTINFO, its source address (server_udp.c). */
union pktinfo_buf {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    size_t align; /* cmsghdr's alignment; the header itself has a flexible member */
};

struct tcp_conn;
struct udp_batch;
struct worker;

/* Where a query came from: where its reply goes, what it is counted
 * under. The pointers are the transport's until the handler returns. */
struct origin {
    size_t index;                /* of the listen address: the metrics' server label */
    const struct sockaddr *peer; /* the client */
    socklen_t peerlen;
    struct tcp_conn *conn; /* TCP: its connection; NULL for UDP */
    int fd;                /* UDP: the socket it came to, which sends the reply */
    const void *ctl;       /* UDP: control data for the reply (union pktinfo_buf) */
    socklen_t ctllen;      /* 0: none */
};

/* One query in the handler's hands, and what became of it. */
struct handled {
    const uint8_t *query;
    size_t qlen;
    uint8_t *reply; /* ANSWER_UDP_MAX bytes for UDP, ANSWER_TCP_MAX for TCP */
    struct origin from;
    bool waited; /* it has waited for a lookup once: it never waits again */
    /* set by handler_answer() */
    enum answer_result result;
    struct answer_info info; /* info.len: the reply's length */
};

struct udp_sock {
    int fd;
    size_t index;  /* of its listen address: the metrics' server label */
    bool wildcard; /* bound to 0.0.0.0 or ::: reply from the query's address */
    bool gso;      /* the kernel takes trains of replies (udptrain.h) */
    bool copy;     /* a duplicate of another worker's socket: not handed over (server_sockets.c) */
    struct event *ev;
    struct worker *w;
};

struct tcp_listener {
    struct listener *l;
    struct worker *w;
    size_t index;
    bool copy; /* as udp_sock's */
};

struct pending;

#define TCP_BATCH      (16 * 1024) /* bytes of replies per send() (server_tcp.c) */
#define TCP_PLAIN_READ 4096        /* bytes a plain connection reads at once (server_tcp.c) */

struct worker {
    struct server *srv;
    size_t slot; /* its index, and its reader slot in the zone_ref */
    pthread_t thread;
    bool running;
    struct event_base *base;
    struct event *stop_ev;    /* activated from the main thread */
    struct event *release_ev; /* likewise, once its sockets are handed over */
    struct event *deadline;
    bool stopping;
    bool released; /* its sockets are another process's: it finishes its connections */
    struct answer_ctx actx;
    struct upstream *up;
    struct metrics *metrics;
    const struct zone *zone; /* held while zone_depth > 0 (worker_enter()) */
    unsigned zone_depth;
    struct pending *pending; /* queries waiting for lookups (server_defer.c) */
    size_t npending;
    struct udp_batch *udp;
    struct udp_sock *udps; /* at least one per listen address (server_sockets.c) */
    size_t nudps;
    struct tcp_listener *tcps;
    size_t ntcps;
    struct tcp_conn *conns;
    uint8_t query[ANSWER_TCP_MAX];    /* one TCP message at a time */
    uint8_t plain_in[TCP_PLAIN_READ]; /* what a plain connection read (server_tcp.c) */
    /* One reply at a time (TCP, or a query that waited), after room for
     * TCP's length prefix. */
    uint8_t reply[2 + ANSWER_TCP_MAX];
    /* The replies of the connection being read (server_tcp.c), sent with
     * one send() at the end of its turn: through its output buffer each
     * would cost the loop another turn and two epoll_ctl(). */
    struct tcp_conn *batch_conn;
    size_t batch_len;
    uint8_t batch[TCP_BATCH];
};

struct server {
    struct zone_ref *zones;
    struct config_addr *listen;
    size_t nlisten;
    _Atomic uint32_t tcp_open;   /* over all workers */
    struct log_limit accept_log; /* failed accepts, over all workers */
    struct log_limit xfr_log;    /* refused and aborted zone transfers */
    size_t max_lookups;          /* upstream lookups in flight per worker */
    size_t nworkers;
    struct worker **workers;
};

/* ---- workers (server.c) ---- */

/* Begins a callback of the worker's that reads the zone: holds the
 * current one in w->zone (returned), and reads the clock for the answers
 * (w->actx.now). Nested calls (a lookup that ends while a batch is being
 * answered) share the outer one's. Inline: UDP calls it per wakeup. */
static inline const struct zone *worker_enter(struct worker *w)
{
    if (w->zone_depth++ == 0) {
        w->zone = zone_ref_enter(w->srv->zones, w->slot);
        w->actx.now = clock_ms();
    }
    return w->zone;
}

/* Ends it: the lookups its queries started are sent, the zone let go. */
static inline void worker_leave(struct worker *w)
{
    if (w->zone_depth == 1)
        upstream_flush(w->up); /* with the zone still held: a lookup may end at once */
    if (--w->zone_depth == 0) {
        zone_ref_leave(w->srv->zones, w->slot);
        w->zone = NULL;
    }
}

/* ---- sockets (server_sockets.c) ---- */

#define TCP_BACKLOG 1024

struct inherit;

/* Gives every worker its UDP sockets and TCP listeners on every listen
 * address: those `given` has for it (NULL: none), bound here otherwise,
 * and shared out so that every socket is read (udp_start(), tcp_start()).
 * Returns 0 or a negative errno (logged); the workers' cleanup closes
 * what was opened. */
int server_open_sockets(struct server *srv, struct inherit *given);

/* ---- UDP (server_udp.c) ---- */

/* A worker's buffers for one batch of datagrams, zeroed. NULL when out
 * of memory. */
struct udp_batch *udp_batch_new(void);
void udp_batch_free(struct udp_batch *b);

/* Reads `fd` (taken), a bound UDP socket of listen address `l`, as the
 * worker's socket `u`. Returns 0 or a negative errno (logged). */
int udp_start(struct worker *w, const struct config_addr *l, struct udp_sock *u, int fd);

/* Closes it (one never opened too: fd -1). */
void udp_close(struct udp_sock *u);

/* Sends one reply to a UDP query, outside a batch: one that waited. */
void udp_reply(const struct origin *to, const uint8_t *reply, size_t len);

/* ---- TCP (server_tcp.c) ---- */

/* Accepts on `fd` (taken), a listening TCP socket of listen address `l`,
 * as the worker's listener `out`. Returns 0 or a negative errno
 * (logged). */
int tcp_start(struct worker *w, const struct config_addr *l, struct tcp_listener *out, int fd);

/* Sends `len` bytes of reply, which start at reply + 2: the two bytes
 * before them are its length prefix, written here. */
void tcp_reply(struct tcp_conn *c, uint8_t *reply, size_t len);

/* One of c's queries waits for a lookup, and then no longer does
 * (answered): a connection whose lookups are done reads again. */
void tcp_query_waits(struct tcp_conn *c);
void tcp_query_done(struct tcp_conn *c);

/* The worker stops: every connection stops reading, and those with
 * nothing left to write close. Returns whether some are left. */
bool tcp_stop(struct worker *w);

/* The worker's sockets were handed over: every connection goes on until
 * it has nothing to answer or write, then closes with a FIN. Returns
 * whether some are left. */
bool tcp_release(struct worker *w);

/* Closes every connection of the worker at once. */
void tcp_close_all(struct worker *w);

/* ---- one query (server_handler.c) ---- */

/*
 * Answers the `n` queries q[] that came at `since` (clock_ns()), from the
 * zone the worker holds: each one's reply in q[i].reply, or nothing, or,
 * when it needs an upstream lookup, kept until the lookup ends, then
 * answered through here again and sent the way it came (server_defer.c);
 * one that cannot wait is answered at once without the lookup. Every query
 * but the deferred is counted and logged, charged an equal share of the
 * time since `since`.
 */
void handler_answer(struct worker *w, struct handled *q, size_t n, uint64_t since);

/* ---- queries that wait (server_defer.c) ---- */

/* Keeps `q`, which came at `since`, until the lookup q->info.wait ends.
 * False if it cannot wait: too many do, or no memory. */
bool defer_query(struct worker *w, const struct handled *q, uint64_t since);

/* The worker stops: every query that waits is answered now, without its
 * lookup. */
void defer_answer_all(struct worker *w);

/* Forgets the queries that wait of connection `c`, which closes. */
void defer_drop_conn(struct worker *w, const struct tcp_conn *c);

/* Forgets every query that waits: the worker is freed. */
void defer_drop_all(struct worker *w);

#endif
