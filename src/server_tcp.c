/* server_tcp.c -- TCP connections (RFC 7766): framing, pipelining, timeouts, back-pressure. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <ldns/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_impl.h"
#include "svcmapd/clock.h"
#include "svcmapd/listener.h"
#include "svcmapd/metrics.h"
#include "svcmapd/xfr.h"

#define TCP_OUT_HIGH (256 * 1024) /* stop reading a client that does not read */

/* A zone transfer's messages are written when the client has read the
 * output down to XFR_LOW bytes, up to XFR_HIGH: the zone is never copied
 * whole into memory, however slowly a secondary reads. */
#define XFR_LOW  (16 * 1024)
#define XFR_HIGH (64 * 1024)

/*
 * A connection starts plain: its descriptor, read with recv() whenever
 * `ev` says it is readable, each whole query answered with one send().
 * Most clients send one query, read its reply and close: that costs
 * accept, an epoll registration, recv, send, recv (the end), its removal
 * and close, and no buffers. Anything else, a message that
 * comes in pieces or with another behind it, a reply the socket does not
 * take whole, a query that waits for a lookup, a zone transfer, moves it
 * for good to a bufferevent (conn_buffer()), which does the rest:
 * pipelining, back-pressure, message timeouts.
 */
struct tcp_conn {
    struct bufferevent *bev; /* NULL while plain */
    int fd;                  /* while plain */
    struct event ev;         /* while plain: readable, or idle for tcp-idle-timeout */
    struct worker *w;
    struct tcp_conn *prev, *next;
    bool throttled; /* reading paused until the client reads its replies */
    bool draining;  /* the client has closed its side: close once written */
    bool waiting;   /* reading paused until its upstream lookups end */
    bool said_bye;  /* a FIN is sent (tcp_release()): what comes is dropped */
    struct sockaddr_storage peer;
    struct origin from; /* its queries': the listen address, the peer */
    uint32_t npending;  /* its queries waiting for upstream lookups */
    uint64_t msg_start; /* when the message being received began (ms); 0: none */
    struct xfr *xfr;    /* a zone transfer being sent: reading waits for its end */
    bool xfr_queued;    /* its last message is in the output */
    uint64_t xfr_start; /* ms */
};

static void transfer_end(struct tcp_conn *c, enum metrics_transfer result);

/* Queues bytes in c's output buffer, written when the socket takes them.
 * Writing is enabled here, not at accept: enabled with nothing to write,
 * it costs a connection a turn of the loop and two epoll_ctl() for
 * nothing. */
static void out_write(struct tcp_conn *c, const uint8_t *data, size_t len)
{
    bufferevent_write(c->bev, data, len);
    if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
        bufferevent_enable(c->bev, EV_WRITE);
}

/* Sends the replies batched for c (w->batch) at once; what the socket
 * does not take goes to its output buffer, and so does every reply after
 * it, in order. An error is left for the output buffer to meet. */
static void batch_flush(struct tcp_conn *c)
{
    struct worker *w = c->w;
    size_t n = w->batch_len;
    w->batch_len = 0;
    if (n == 0)
        return;
    ssize_t sent = send(bufferevent_getfd(c->bev), w->batch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0)
        sent = 0;
    if ((size_t)sent < n) {
        w->batch_conn = NULL;
        out_write(c, w->batch + sent, n - (size_t)sent);
    }
}

static void conn_free(struct tcp_conn *c)
{
    struct worker *w = c->w;
    if (c->xfr)
        transfer_end(c, METRICS_TRANSFER_ABORTED);
    defer_drop_conn(w, c); /* its queries that wait have nobody to answer to now */
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&w->srv->tcp_open, 1);
    if (c->bev) {
        bufferevent_free(c->bev);
    } else {
        event_del(&c->ev);
        if (c->fd >= 0)
            close(c->fd);
    }
    free(c);

    if ((w->stopping || w->released) && !w->conns && w->deadline)
        event_del(w->deadline); /* the last reply is out: the loop may end */
}

/* The read timeout: idle between messages, shorter inside one (a length
 * prefix followed by silence must not hold a connection for long). The
 * limits are those of the zone the worker holds: a reload's apply to the
 * connections already open too. */
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

/*
 * A connection of a worker whose sockets were handed over (tcp_release())
 * that has nothing left to answer or to write: its end. Not close(): the
 * kernel answers what comes after a close() with a reset, and a query
 * the client sent meanwhile would make it lose the replies still on their
 * way. shutdown(SHUT_WR) sends a FIN after the last reply instead, and
 * what comes after it is read and dropped until the client closes too
 * (RFC 7766 §6.2.4: the client retries a query that a closed connection
 * left unanswered). Reading goes on until then, or the worker's deadline.
 */
static void say_bye_if_done(struct tcp_conn *c)
{
    if (!c->w->released || c->said_bye || c->npending ||
        (c->bev && (evbuffer_get_length(bufferevent_get_input(c->bev)) ||
                    evbuffer_get_length(bufferevent_get_output(c->bev)))))
        return;
    c->said_bye = true;
    if (c->bev) {
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        bufferevent_enable(c->bev, EV_READ);
    } else {
        shutdown(c->fd, SHUT_WR); /* plain: it reads on, and drops what comes */
    }
}

/* Whether a whole message (of *len bytes) is at the front of the input
 * `in`, and its turn has come: false leaves it for later. A message of no
 * bytes closes the connection (*close). */
static bool next_message(struct tcp_conn *c, struct evbuffer *in, uint32_t turn, uint32_t pipeline,
                         size_t *len, bool *close)
{
    uint8_t hdr[2];
    size_t avail = evbuffer_get_length(in);
    if (avail < 2)
        return false;
    evbuffer_copyout(in, hdr, 2);
    *len = ldns_read_uint16(hdr);
    if (*len == 0) {
        *close = true; /* a zero-length message is a broken client: drop it */
        return false;
    }
    if (avail < 2 + *len)
        return false;
    if (turn == pipeline) {
        /* the rest is read at the next turn of the loop */
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
        return false;
    }
    if (c->npending >= pipeline) {
        bufferevent_disable(c->bev, EV_READ);
        c->waiting = true;
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------- */
/* Zone transfers (SPEC §8).                                               */

/* Logs and counts how a transfer ended, and lets its zone go. */
static void transfer_end(struct tcp_conn *c, enum metrics_transfer result)
{
    struct worker *w = c->w;
    const struct xfr_progress *p = xfr_progress(c->xfr);
    const struct zone *z = xfr_zone(c->xfr);
    char peer[INET6_ADDRSTRLEN + 8];
    log_addr((const struct sockaddr *)&c->peer, peer, sizeof(peer));
    metrics_inc(&w->metrics->transfers[result], 1);
    double secs = (double)(clock_ms() - c->xfr_start) / 1000.0;
    if (result == METRICS_TRANSFER_DONE) {
        log_info("transfer: %s of %s serial %u to %s: %llu records in %llu messages, %llu bytes, "
                 "%.3f s",
                 p->type, zone_name(z), p->serial, peer, (unsigned long long)p->records,
                 (unsigned long long)p->messages, (unsigned long long)p->bytes, secs);
    } else {
        uint64_t more;
        char also[96] = "";
        if (log_limit_pass(&w->srv->xfr_log, &more)) {
            if (more)
                snprintf(also, sizeof(also), " (%llu more refused or cut off held back)",
                         (unsigned long long)more);
            log_warning("transfer: %s of %s serial %u to %s cut off after %llu records in %.3f s: "
                        "the connection ended%s",
                        p->type, zone_name(z), p->serial, peer, (unsigned long long)p->records,
                        secs, also);
        }
    }
    zone_ref_release(w->srv->zones, z);
    xfr_free(c->xfr);
    c->xfr = NULL;
    c->xfr_queued = false;
}

/* Writes the next messages of c's transfer while the output holds less
 * than XFR_HIGH bytes: one turn of the loop writes at most that much, and
 * the others' turns come between (the write callback runs again once the
 * client has read down to XFR_LOW). Once the last message is out, the
 * connection reads its next queries again. */
static void transfer_more(struct tcp_conn *c)
{
    struct worker *w = c->w;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (!c->xfr_queued && evbuffer_get_length(out) < XFR_HIGH) {
        size_t len = xfr_next(c->xfr, w->reply + 2, ANSWER_TCP_MAX);
        if (len == 0) {
            /* the callback runs again when the client has read it all */
            c->xfr_queued = true;
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
            break;
        }
        tcp_reply(c, w->reply, len);
    }
    if (!c->xfr_queued || evbuffer_get_length(out) > 0)
        return;
    transfer_end(c, METRICS_TRANSFER_DONE);
    if (w->stopping) {
        conn_free(c);
        return;
    }
    set_read_timeout(c);
    if (!c->draining) {
        bufferevent_enable(c->bev, EV_READ);
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS); /* queries behind it */
    }
}

/* Begins sending the zone the worker holds to `c`, whose query got
 * ANSWER_TRANSFER with `first` (`len` bytes) as the first message's
 * frame. The connection reads nothing more until the transfer ends: its
 * messages follow each other, nothing between them. The zone is held
 * for the transfer's length (zone_ref.h): a reload meanwhile changes
 * nothing of what it sends. Out of memory, the client gets SERVFAIL. */
static void transfer_start(struct tcp_conn *c, uint8_t *first, size_t len)
{
    struct worker *w = c->w;
    if (zone_ref_hold(w->srv->zones, w->zone) == 0) {
        c->xfr = xfr_new(w->zone, first, len);
        if (!c->xfr)
            zone_ref_release(w->srv->zones, w->zone);
    }
    if (!c->xfr) {
        log_error("transfer: out of memory; SERVFAIL");
        xfr_servfail(first);
        tcp_reply(c, first - 2, len);
        return;
    }
    c->xfr_start = clock_ms();
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, XFR_LOW, 0);
    transfer_more(c);
}

/* ---------------------------------------------------------------------- */

/* RFC 7766: several queries per connection, answered as they come, the
 * ones that wait for upstream lookups later, in any order. A connection
 * gets `tcp-pipeline` queries per turn, so that one client streaming
 * queries cannot starve the others. */
static void conn_on_read(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    struct worker *w = c->w;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    if (c->said_bye) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    uint32_t pipeline = zone_settings(worker_enter(w))->tcp_pipeline;
    size_t len;
    bool close = false;
    if (evbuffer_get_length(out) == 0)
        w->batch_conn = c; /* its replies go out by send() at the end of the turn */
    for (uint32_t turn = 0; next_message(c, in, turn, pipeline, &len, &close); turn++) {
        evbuffer_drain(in, 2);
        evbuffer_remove(in, w->query, len);
        c->msg_start = 0; /* a whole message: the next one starts its own clock */
        struct handled q; /* its answer_info is answer_query()'s to fill */
        q.query = w->query;
        q.qlen = len;
        q.reply = w->reply + 2;
        q.from = c->from;
        q.waited = false;
        handler_answer(w, &q, 1, clock_ns());
        if (q.result == ANSWER_TRANSFER) {
            batch_flush(c); /* a transfer writes through the output buffer */
            w->batch_conn = NULL;
            transfer_start(c, q.reply, q.info.len);
            break;
        }
        if (q.result == ANSWER_REPLY)
            tcp_reply(c, w->reply, q.info.len);
        if (evbuffer_get_length(out) > TCP_OUT_HIGH) {
            /* Pipelined queries from a client that does not read its
             * replies: stop reading until it does (write timeout applies). */
            bufferevent_disable(bev, EV_READ);
            c->throttled = true;
            break;
        }
    }
    if (w->batch_conn == c) {
        batch_flush(c);
        w->batch_conn = NULL;
    }
    if (!close)
        set_read_timeout(c);
    worker_leave(w);
    if (close)
        conn_free(c);
    else
        say_bye_if_done(c);
}

void tcp_reply(struct tcp_conn *c, uint8_t *reply, size_t len)
{
    struct worker *w = c->w;
    ldns_write_uint16(reply, (uint16_t)len);
    if (w->batch_conn == c && w->batch_len + len + 2 > sizeof(w->batch))
        batch_flush(c);
    if (w->batch_conn == c && len + 2 <= sizeof(w->batch)) {
        memcpy(w->batch + w->batch_len, reply, len + 2);
        w->batch_len += len + 2;
        return;
    }
    out_write(c, reply, len + 2);
}

void tcp_query_waits(struct tcp_conn *c)
{
    c->npending++;
}

void tcp_query_done(struct tcp_conn *c)
{
    if (--c->npending > 0)
        return;
    set_read_timeout(c);
    if (c->waiting && !c->draining && !c->w->stopping && !c->xfr) {
        /* its lookups are done: read its next queries */
        c->waiting = false;
        bufferevent_enable(c->bev, EV_READ);
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    }
}

/* Called when the output buffer has drained completely, or during a
 * transfer down to XFR_LOW. */
static void conn_on_written(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    if (c->xfr) {
        struct worker *w = c->w;
        worker_enter(w); /* set_read_timeout() reads the zone's settings */
        transfer_more(c);
        worker_leave(w);
        return;
    }
    if (c->draining || c->w->stopping) {
        conn_free(c); /* its last reply is out */
        return;
    }
    if (c->throttled) {
        c->throttled = false;
        bufferevent_enable(bev, EV_READ);
        conn_on_read(bev, c); /* queries may already be waiting */
        return;
    }
    say_bye_if_done(c);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
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

/* ---------------------------------------------------------------------- */
/* Plain connections (struct tcp_conn).                                    */

/* Moves plain connection c to a bufferevent, with the `len` bytes `in`
 * read from it and not answered as its input. False when out of memory:
 * c is freed. The worker holds its zone (set_read_timeout()). */
static bool conn_buffer(struct tcp_conn *c, const uint8_t *in, size_t len)
{
    struct bufferevent *bev = bufferevent_socket_new(c->w->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
    int added = 0;
    if (bev && len > 0) {
        /* the end of a bufferevent's input is its own to fill: opened for this */
        struct evbuffer *input = bufferevent_get_input(bev);
        evbuffer_unfreeze(input, 0);
        added = evbuffer_add(input, in, len);
        evbuffer_freeze(input, 0);
    }
    if (!bev || added < 0) {
        if (bev) {
            bufferevent_free(bev); /* and the descriptor with it */
            c->fd = -1;
        }
        conn_free(c);
        return false;
    }
    event_del(&c->ev);
    c->bev = bev;
    bufferevent_setcb(bev, conn_on_read, conn_on_written, conn_on_event, c);
    bufferevent_enable(bev, EV_READ); /* and EV_WRITE once there is output: out_write() */
    set_read_timeout(c);
    return true;
}

/*
 * Reads plain connection c once, and answers the query it sent when that
 * is all it sent; what else it sent goes to a bufferevent, and so does c
 * when its reply is not sent whole, its query waits for a lookup or asks
 * for a transfer. The end of the connection, an error, or its idle
 * timeout frees it. A plain connection that stays plain waits for its
 * next bytes tcp-idle-timeout (the zone's now), as a buffered one.
 */
static void plain_read(struct tcp_conn *c, short what)
{
    struct worker *w = c->w;
    ssize_t n = 0;
    if (!(what & EV_TIMEOUT))
        n = recv(c->fd, w->plain_in, sizeof(w->plain_in), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        n = -2; /* nothing yet */
    if (n == 0 || n == -1) {
        conn_free(c); /* the client closed, an error, or the idle timeout */
        return;
    }
    const struct zone_settings *set = zone_settings(worker_enter(w));
    size_t len = n >= 2 ? ldns_read_uint16(w->plain_in) : 0;
    if (n == -2 || c->said_bye) {
        /* nothing to answer: what comes after a FIN is dropped */
    } else if (len == 0 || (size_t)n != 2 + len) {
        /* a message in pieces, or followed by another: buffered */
        if (conn_buffer(c, w->plain_in, (size_t)n))
            conn_on_read(c->bev, c);
        worker_leave(w);
        return;
    } else {
        struct handled q; /* its answer_info is answer_query()'s to fill */
        q.query = w->plain_in + 2;
        q.qlen = len;
        q.reply = w->reply + 2;
        q.from = c->from;
        q.waited = false;
        handler_answer(w, &q, 1, clock_ns());
        size_t out = 0, sent = 0;
        if (q.result == ANSWER_REPLY) {
            out = q.info.len + 2;
            ldns_write_uint16(w->reply, (uint16_t)q.info.len);
            ssize_t s = send(c->fd, w->reply, out, MSG_NOSIGNAL | MSG_DONTWAIT);
            sent = s > 0 ? (size_t)s : 0; /* an error is left for the bufferevent to meet */
        }
        if (q.result == ANSWER_TRANSFER || sent < out || c->npending) {
            if (conn_buffer(c, NULL, 0)) {
                if (q.result == ANSWER_TRANSFER)
                    transfer_start(c, q.reply, q.info.len);
                else if (sent < out)
                    out_write(c, w->reply + sent, out - sent);
            }
            worker_leave(w);
            return;
        }
    }
    struct timeval idle = {set->tcp_idle_timeout, 0};
    event_add(&c->ev, &idle); /* registered once; then only the timeout moves */
    worker_leave(w);
    say_bye_if_done(c);
}

static void plain_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    plain_read(arg, what);
}

static void accept_conn(int fd, const struct sockaddr *sa, socklen_t salen, void *arg)
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
    if (!c) {
        close(fd);
        atomic_fetch_sub(&srv->tcp_open, 1);
        return;
    }
    c->fd = fd;
    c->w = w;
    event_assign(&c->ev, w->base, fd, EV_READ | EV_PERSIST, plain_on_read, c);
    c->from = (struct origin){
        .index = tl->index,
        .peer = (const struct sockaddr *)&c->peer,
        .conn = c,
        .fd = -1,
    };
    if (salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
        c->from.peerlen = salen;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    event_add(&c->ev, &idle); /* read when its query comes (plain_read()) */
}

int tcp_start(struct worker *w, const struct config_addr *l, struct tcp_listener *out, int fd)
{
    out->w = w;
    out->index = (size_t)(l - w->srv->listen);
    char what[80];
    snprintf(what, sizeof(what), "tcp %s", l->text);
    out->l = listener_new(w->base, fd, what, accept_conn, out, &w->metrics->tcp_accept_errors,
                          &w->srv->accept_log);
    return out->l ? 0 : -ENOMEM;
}

bool tcp_stop(struct worker *w)
{
    struct tcp_conn *next;
    for (struct tcp_conn *c = w->conns; c; c = next) {
        next = c->next;
        if (!c->bev) {
            conn_free(c); /* plain: nothing to write */
            continue;
        }
        bufferevent_disable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 && !c->xfr)
            conn_free(c);
    }
    return w->conns != NULL;
}

bool tcp_release(struct worker *w)
{
    struct tcp_conn *next;
    for (struct tcp_conn *c = w->conns; c; c = next) {
        next = c->next;
        if (c->draining && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
            c->npending == 0)
            conn_free(c); /* the client has closed its side, and has every reply */
        else
            say_bye_if_done(c);
    }
    return w->conns != NULL;
}

void tcp_close_all(struct worker *w)
{
    while (w->conns)
        conn_free(w->conns);
}
