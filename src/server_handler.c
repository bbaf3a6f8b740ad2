/* server_handler.c -- one query, whichever way it came: answered or deferred, and accounted. */
#include "server_impl.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdio.h>

#include "svcmapd/clock.h"
#include "svcmapd/metrics.h"

/*
 * The one way from query bytes to reply bytes for every transport, and
 * for a query back from its lookup: UDP hands a batch, TCP one message,
 * server_defer.c one query that waited. Knot's handler.c has the same
 * place between its udp-handler.c and tcp-handler.c.
 */

/* A zone transfer refused to a client not in [transfer] allow (SPEC §8):
 * counted, and logged at most once per LOG_LIMIT_PERIOD, as anyone can
 * ask. */
static void refused_transfer(struct worker *w, const struct handled *q)
{
    metrics_inc(&w->metrics->transfers[METRICS_TRANSFER_REFUSED], 1);
    uint64_t more;
    if (!log_limit_pass(&w->srv->xfr_log, &more))
        return;
    char peer[INET6_ADDRSTRLEN + 8], also[96] = "";
    log_addr(q->from.peer, peer, sizeof(peer));
    if (more)
        snprintf(also, sizeof(also), " (%llu more refused or cut off held back)",
                 (unsigned long long)more);
    log_warning("transfer: %s of %s refused to %s: not in [transfer] allow%s",
                q->info.qtype == LDNS_RR_TYPE_AXFR ? "AXFR" : "IXFR", zone_name(w->zone), peer,
                also);
}

/* Counts a query and its reply, and logs it when query logging is on. */
static void account(struct worker *w, const struct handled *q, uint64_t ns)
{
    const struct answer_info *info = &q->info;
    bool tcp = q->from.conn != NULL;
    metrics_count(w->metrics, q->from.index, info->outside, tcp,
                  q->from.peer->sa_family == AF_INET6, info->qtype, info->rcode, q->qlen, info->len,
                  ns);
    if (info->xfr_refused)
        refused_transfer(w, q);
    if (!log_queries() || info->len == 0)
        return;
    struct log_query line = {
        .peer = q->from.peer,
        .tcp = tcp,
        .id = info->id,
        .qtype = info->qtype,
        .qclass = info->qclass,
        .qname = info->question ? q->query + 12 : NULL,
        .size = q->qlen,
        .do_bit = info->do_bit,
        .bufsize = info->bufsize,
        .rcode = info->rcode,
        .reply = q->reply,
        .rsize = info->len,
        .ns = ns,
    };
    log_query(&line);
}

/* Answers `q`, or keeps it until its lookup ends; a query that cannot
 * wait is answered at once, without the lookup. */
static void answer_or_defer(struct worker *w, struct handled *q, uint64_t since)
{
    bool tcp = q->from.conn != NULL;
    size_t cap = tcp ? ANSWER_TCP_MAX : ANSWER_UDP_MAX;
    /* a worker whose sockets were handed over starts no lookup: its
     * connections are to end soon */
    w->actx.no_wait = q->waited || w->released;
    q->result = answer_query(&w->actx, w->zone, q->query, q->qlen, tcp, q->from.peer, q->reply, cap,
                             &q->info);
    if (q->result != ANSWER_DEFERRED || defer_query(w, q, since))
        return;
    w->actx.no_wait = true;
    q->result = answer_query(&w->actx, w->zone, q->query, q->qlen, tcp, q->from.peer, q->reply, cap,
                             &q->info);
}

void handler_answer(struct worker *w, struct handled *q, size_t n, uint64_t since)
{
    for (size_t i = 0; i < n; i++)
        answer_or_defer(w, &q[i], since);
    /* One clock read for them all: each is charged the average, which is
     * what its answering cost. One that waits is counted when answered. */
    uint64_t each = (clock_ns() - since) / (uint64_t)n;
    for (size_t i = 0; i < n; i++)
        if (q[i].result != ANSWER_DEFERRED)
            account(w, &q[i], each);
}
