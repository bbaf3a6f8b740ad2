/* server_defer.c -- queries that wait for upstream lookups: kept, answered, sent back. */
#include <stdlib.h>
#include <string.h>

#include "server_impl.h"
#include "svcmapd/upstream.h"

/*
 * An A or AAAA query for a hostname service whose target is not in the
 * upstream cache waits for the lookup (answer.h, ANSWER_DEFERRED): a copy
 * of it, and of where it came from, is kept here until the lookup ends,
 * then it goes through the handler again, which answers it from the cache
 * or without the lookup, but never defers it twice.
 */

#define MAX_PENDING 4096 /* queries waiting for upstream lookups, per worker */

struct pending {
    struct upstream_waiter waiter; /* first: the lookup hands it back */
    struct worker *w;
    struct pending *prev, *next;
    struct origin from; /* its peer and ctl point at the copies below */
    struct sockaddr_storage peer;
    union pktinfo_buf ctl;
    uint64_t since; /* when it came (clock_ns()), for the duration histogram */
    size_t len;
    uint8_t query[];
};

static void pending_free(struct pending *p)
{
    struct worker *w = p->w;
    upstream_unwait(&p->waiter);
    if (p->prev)
        p->prev->next = p->next;
    else
        w->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    w->npending--;
    free(p);
}

/* Answers a query that waited, sends its reply the way the query came,
 * and lets it go. */
static void answer_waited(struct pending *p)
{
    struct worker *w = p->w;
    struct tcp_conn *conn = p->from.conn;
    struct handled q; /* its answer_info is answer_query()'s to fill */
    q.query = p->query;
    q.qlen = p->len;
    q.reply = w->reply + 2;
    q.from = p->from;
    q.waited = true;
    handler_answer(w, &q, 1, p->since);
    if (q.result == ANSWER_REPLY && conn)
        tcp_reply(conn, w->reply, q.info.len);
    else if (q.result == ANSWER_REPLY)
        udp_reply(&p->from, q.reply, q.info.len);
    pending_free(p);
    if (conn)
        tcp_query_done(conn);
}

static void on_lookup_done(struct upstream_waiter *waiter)
{
    struct pending *p = (struct pending *)(void *)waiter;
    struct worker *w = p->w;
    worker_enter(w);
    answer_waited(p);
    worker_leave(w);
}

bool defer_query(struct worker *w, const struct handled *q, uint64_t since)
{
    if (w->npending >= MAX_PENDING)
        return false;
    struct pending *p = malloc(sizeof(*p) + q->qlen);
    if (!p)
        return false;
    p->waiter.done = on_lookup_done;
    p->w = w;
    p->from = q->from;
    memcpy(&p->peer, q->from.peer, q->from.peerlen);
    p->from.peer = (const struct sockaddr *)&p->peer;
    if (q->from.ctllen)
        memcpy(&p->ctl, q->from.ctl, q->from.ctllen); /* none over TCP: no pointer */
    p->from.ctl = p->ctl.buf;
    p->since = since;
    p->len = q->qlen;
    memcpy(p->query, q->query, q->qlen);
    if (p->from.conn)
        tcp_query_waits(p->from.conn);
    p->prev = NULL;
    p->next = w->pending;
    if (w->pending)
        w->pending->prev = p;
    w->pending = p;
    w->npending++;
    upstream_wait(q->info.wait, &p->waiter);
    return true;
}

void defer_answer_all(struct worker *w)
{
    worker_enter(w);
    while (w->pending) {
        struct pending *p = w->pending;
        upstream_unwait(&p->waiter); /* a lookup that ends now finds nobody */
        answer_waited(p);
    }
    worker_leave(w);
}

void defer_drop_conn(struct worker *w, const struct tcp_conn *c)
{
    struct pending *next;
    for (struct pending *p = w->pending; p; p = next) {
        next = p->next;
        if (p->from.conn == c)
            pending_free(p);
    }
}

void defer_drop_all(struct worker *w)
{
    while (w->pending)
        pending_free(w->pending);
}
