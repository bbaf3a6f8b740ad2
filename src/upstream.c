/* upstream.c -- hostname targets outside the zone: asynchronous lookups and their cache. */
#include "svcmapd/upstream.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "svcmapd/clock.h"
#include "svcmapd/log.h"
#include "svcmapd/metrics.h"
#include "svcmapd/wire.h"
#include "upstream_impl.h"

/*
 * Queries are built and answers parsed with ldns (this is the miss path,
 * where allocating is fine); the cache keeps what an answer needs in wire
 * form, so a hit costs a hash lookup and a copy. What of an answer is kept
 * is upstream_reply.c's.
 *
 * Every lookup in which a server failed is logged at warning level with the
 * servers and what each did, at most once per target and type every 10 s
 * per worker (the next line counts those held back).
 *
 * Lifetimes (RFC 2308, RFC 8767): a positive answer lives for its smallest
 * TTL, and is refreshed ahead of expiry when queried (prefetch). Once
 * expired it may still be served, for at most max-stale seconds, while
 * refreshing fails; after a failure the stale answer is served at once for
 * STALE_REFRESH (30 s) instead of making clients wait again. NXDOMAIN,
 * NODATA and failures without a stale answer are kept negative-ttl seconds.
 */

#define STALE_TTL      30    /* RFC 8767 §4 */
#define STALE_REFRESH  30000 /* ms; RFC 8767 §5: stale-refresh-time */
#define MIN_ATTEMPT_MS 250
#define UDP_MAX        4096  /* UDP replies are read up to this; a bigger one: TCP */
#define LOG_EVERY      10000 /* ms between two failure lines of one target and type */

struct upstream {
    struct event_base *base;
    struct entry **buckets;
    size_t nbuckets;
    size_t count;
    struct entry *newest, *oldest;
    struct upstream_lookup *queued;
    size_t nlookups;
    size_t max_lookups; /* in flight; more get the CNAME alone */
    uint64_t seed;
    struct upstream_stats stats;
};

static uint64_t hash_key(uint64_t seed, const uint8_t *name, size_t len, uint16_t qtype)
{
    uint64_t h = seed ^ qtype;
    for (size_t i = 0; i < len; i++)
        h = (h ^ name[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

struct upstream *upstream_new(struct event_base *base, size_t max_lookups)
{
    struct upstream *up = calloc(1, sizeof(*up));
    if (!up)
        return NULL;
    up->base = base;
    up->max_lookups = max_lookups;
    up->nbuckets = 1024;
    up->buckets = calloc(up->nbuckets, sizeof(*up->buckets));
    if (!up->buckets) {
        free(up);
        return NULL;
    }
    if (getrandom(&up->seed, sizeof(up->seed), 0) != sizeof(up->seed))
        up->seed = (uint64_t)(uintptr_t)up;
    return up;
}

const struct upstream_stats *upstream_stats(const struct upstream *up)
{
    return &up->stats;
}

void upstream_settings_zone(struct upstream_settings *set, const uint8_t *apex, size_t len)
{
    memcpy(set->apex, apex, len);
    set->apex_len = (uint8_t)len;
    set->apex_hash = hash_key(0, apex, len, 0);
}

/* ---------------------------------------------------------------------- */
/* The cache                                                               */

static void lru_unlink(struct upstream *up, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        up->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        up->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_front(struct upstream *up, struct entry *e)
{
    e->older = up->newest;
    e->newer = NULL;
    if (up->newest)
        up->newest->newer = e;
    up->newest = e;
    if (!up->oldest)
        up->oldest = e;
}

void entry_drop_data(struct entry *e)
{
    free(e->ttl);
    e->ttl = NULL;
    e->ttl_at = NULL;
    e->name_at = NULL;
    e->data = NULL;
    e->dlen = 0;
    e->count = 0;
    e->links = 0;
    e->zone_at = 0;
    e->name_max = 0;
    e->has_data = false;
    e->failed_at = 0;
}

static void entry_free(struct upstream *up, struct entry *e)
{
    struct entry **pp = &up->buckets[e->hash & (up->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(up, e);
    entry_drop_data(e);
    free(e);
    up->count--;
}

static void grow(struct upstream *up)
{
    size_t n = up->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < up->nbuckets; i++) {
        struct entry *e = up->buckets[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(up->buckets);
    up->buckets = b;
    up->nbuckets = n;
}

static struct entry *find(struct upstream *up, const uint8_t *name, size_t len, uint16_t qtype,
                          uint64_t h)
{
    for (struct entry *e = up->buckets[h & (up->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->qtype == qtype && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

/* Keeps the cache within `limit`: the least recently used go first, but
 * never one a lookup is filling. */
static void evict(struct upstream *up, size_t limit)
{
    struct entry *e = up->oldest;
    while (up->count > limit && e) {
        struct entry *newer = e->newer;
        if (!e->lookup)
            entry_free(up, e);
        e = newer;
    }
}

static struct entry *insert(struct upstream *up, const struct upstream_settings *set,
                            const uint8_t *name, size_t len, uint16_t qtype, uint64_t h)
{
    evict(up, set->cache_size > 0 ? set->cache_size - 1 : 0);
    if (up->count >= up->nbuckets)
        grow(up);
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->hash = h;
    e->qtype = qtype;
    e->len = (uint8_t)len;
    memcpy(e->name, name, len);
    e->hnext = up->buckets[h & (up->nbuckets - 1)];
    up->buckets[h & (up->nbuckets - 1)] = e;
    lru_front(up, e);
    up->count++;
    return e;
}

/* ---------------------------------------------------------------------- */
/* Lookups                                                                 */

static struct upstream_lookup *lookup_new(struct upstream *up, struct entry *e,
                                          const struct upstream_settings *set)
{
    if (up->nlookups >= up->max_lookups)
        return NULL;
    struct upstream_lookup *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->up = up;
    l->e = e;
    l->set = *set;
    l->fd = -1;
    if (getrandom(&l->id, sizeof(l->id), 0) != sizeof(l->id))
        l->id = (uint16_t)(uintptr_t)l;
    l->server = (size_t)l->id % set->nservers; /* spread lookups over the servers */

    /* The question, with EDNS0 so that a few addresses never truncate. */
    ldns_rdf *qname = ldns_dname_new_frm_data(e->len, e->name);
    ldns_pkt *q = qname ? ldns_pkt_query_new(qname, e->qtype, LDNS_RR_CLASS_IN, LDNS_RD) : NULL;
    uint8_t *wire = NULL;
    size_t wlen = 0;
    if (q) {
        ldns_pkt_set_id(q, l->id);
        ldns_pkt_set_edns_udp_size(q, 1232);
        if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK)
            wire = NULL;
        ldns_pkt_free(q);
    }
    if (!wire || wlen > sizeof(l->query)) {
        free(wire);
        free(l);
        return NULL;
    }
    memcpy(l->query, wire, wlen);
    l->qlen = wlen;
    free(wire);

    e->lookup = l;
    l->next = up->queued;
    up->queued = l;
    up->nlookups++;
    return l;
}

static void close_transport(struct upstream_lookup *l)
{
    if (l->ev) {
        event_free(l->ev);
        l->ev = NULL;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    if (l->tcp) {
        bufferevent_free(l->tcp);
        l->tcp = NULL;
    }
}

/* Keeps what went wrong at the current server for the log. */
static void note(struct upstream_lookup *l, enum why why, uint32_t detail)
{
    if (l->nfails < MAX_FAILS)
        l->fails[l->nfails++] = (struct failure){(uint8_t)l->server, (uint8_t)why, detail};
}

static const char *why_text(const struct failure *f, char *buf, size_t cap)
{
    static const char *const text[] = {
        [WHY_TIMEOUT] = "timeout",
        [WHY_UNREADABLE] = "unreadable reply",
        [WHY_TSIG] = "reply with TSIG records",
        [WHY_TRUNCATED] = "truncated (TC=1) over TCP",
        [WHY_CLOSED] = "TCP connection closed",
        [WHY_MEMORY] = "out of memory",
        [WHY_FOREIGN] = "not a reply to the query",
    };
    const ldns_lookup_table *rcode;
    switch ((enum why)f->why) {
    case WHY_RCODE:
        rcode = ldns_lookup_by_id(ldns_rcodes, (int)f->detail);
        if (rcode && rcode->name)
            return rcode->name;
        snprintf(buf, cap, "RCODE%u", f->detail);
        return buf;
    case WHY_NETWORK:
        return strerror((int)f->detail);
    case WHY_TOO_BIG:
        snprintf(buf, cap, "answer too large to cache (over %u bytes)", f->detail);
        return buf;
    default:
        return text[f->why];
    }
}

/* A warning for a lookup in which a server failed, at most one per target
 * and type every LOG_EVERY ms in this worker: "upstream: web.example.com. A
 * failed: 10.96.0.10:53 timeout, 10.96.0.11:53 SERVFAIL; the CNAME alone for
 * 5 s" (negative-ttl). `stale`: the cached records answer meanwhile. */
static void log_failures(struct upstream_lookup *l, bool ok, bool stale)
{
    struct entry *e = l->e;
    uint64_t now = clock_ms();
    if (l->nfails == 0 && ok)
        return;
    if (e->logged_at && now - e->logged_at < LOG_EVERY) {
        e->suppressed++;
        return;
    }
    e->logged_at = now;

    char what[1024] = "no server asked";
    size_t n = 0;
    for (unsigned i = 0; i < l->nfails && n < sizeof(what); i++) {
        char buf[64];
        int w =
            snprintf(what + n, sizeof(what) - n, "%s%s %s", i ? ", " : "",
                     l->set.names[l->fails[i].server], why_text(&l->fails[i], buf, sizeof(buf)));
        n += w > 0 ? (size_t)w : 0;
    }
    char held[64] = "";
    if (e->suppressed)
        snprintf(held, sizeof(held), " (%u more like it held back)", e->suppressed);
    e->suppressed = 0;

    ldns_rdf *rdf = ldns_dname_new_frm_data(e->len, e->name);
    char *name = rdf ? ldns_rdf2str(rdf) : NULL;
    char *type = ldns_rr_type2str(e->qtype);
    const char *nm = name ? name : "?", *tp = type ? type : "?";
    if (ok)
        log_warning("upstream: %s %s: %s; answered by %s%s", nm, tp, what, l->set.names[l->server],
                    held);
    else if (stale)
        log_warning("upstream: %s %s failed: %s; its cached records keep answering, stale once "
                    "expired (RFC 8767)%s",
                    nm, tp, what, held);
    else
        log_warning("upstream: %s %s failed: %s; the CNAME alone for %u s%s", nm, tp, what,
                    l->set.negative_ttl, held);
    free(name);
    free(type);
    ldns_rdf_deep_free(rdf);
}

/* Ends a lookup: the entry gets what was learnt, waiters are told, the
 * lookup goes. `ok`: the entry's data was replaced or a negative answer
 * stored; otherwise the lookup failed. */
static void finish(struct upstream_lookup *l, bool ok)
{
    struct upstream *up = l->up;
    struct entry *e = l->e;
    uint64_t now = clock_ms();

    close_transport(l);
    if (l->timer)
        event_free(l->timer);
    bool stale = false;
    if (!ok) {
        metrics_inc(&up->stats.failures, 1);
        if (e->has_data && now <= e->expires + l->set.max_stale * 1000ULL) {
            e->failed_at = now; /* stale answers from now on, at once */
            stale = true;
        } else {
            entry_drop_data(e);
            e->neg_until = now + l->set.negative_ttl * 1000ULL;
        }
    }
    log_failures(l, ok, stale);
    e->lookup = NULL;
    up->nlookups--;

    struct upstream_waiter *w = l->waiters;
    free(l);
    while (w) {
        struct upstream_waiter *next = w->next;
        w->pprev = NULL;
        w->next = NULL;
        w->done(w);
        w = next;
    }
}

static void attempt(struct upstream_lookup *l);

static void next_server(struct upstream_lookup *l)
{
    close_transport(l);
    l->server = (l->server + 1) % l->set.nservers;
    attempt(l);
}

/* The current server failed: note why, ask the next one. */
static void fail_server(struct upstream_lookup *l, enum why why, uint32_t detail)
{
    if (!l->noted)
        note(l, why, detail);
    next_server(l);
}

static void act_on_verdict(struct upstream_lookup *l, enum verdict v);

static void on_tcp_reply(struct bufferevent *bev, void *arg)
{
    struct upstream_lookup *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t hdr[2];
    if (evbuffer_copyout(in, hdr, 2) < 2)
        return;
    size_t len = ldns_read_uint16(hdr);
    if (evbuffer_get_length(in) < 2 + len)
        return;
    uint8_t *msg = evbuffer_pullup(in, (ssize_t)(2 + len));
    enum verdict v = msg ? reply_check(l, msg + 2, len) : reply_useless(l, WHY_MEMORY, 0);
    evbuffer_drain(in, 2 + len);
    if (v == V_TCP)
        v = reply_useless(l, WHY_TRUNCATED, 0);
    act_on_verdict(l, v);
}

static void on_tcp_event(struct bufferevent *bev, short what, void *arg)
{
    struct upstream_lookup *l = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    int err = EVUTIL_SOCKET_ERROR();
    if ((what & BEV_EVENT_ERROR) && err)
        fail_server(l, WHY_NETWORK, (uint32_t)err);
    else
        fail_server(l, WHY_CLOSED, 0);
}

static void retry_over_tcp(struct upstream_lookup *l)
{
    close_transport(l);
    const struct sockaddr *sa = (const struct sockaddr *)&l->set.servers[l->server];
    l->tcp = bufferevent_socket_new(l->up->base, -1, BEV_OPT_CLOSE_ON_FREE);
    uint8_t len[2] = {(uint8_t)(l->qlen >> 8), (uint8_t)l->qlen};
    if (!l->tcp || bufferevent_socket_connect(l->tcp, sa, (int)l->set.lens[l->server]) < 0) {
        fail_server(l, WHY_NETWORK, (uint32_t)errno);
        return;
    }
    bufferevent_setcb(l->tcp, on_tcp_reply, NULL, on_tcp_event, l);
    bufferevent_write(l->tcp, len, 2);
    bufferevent_write(l->tcp, l->query, l->qlen);
    bufferevent_enable(l->tcp, EV_READ | EV_WRITE);
}

static void act_on_verdict(struct upstream_lookup *l, enum verdict v)
{
    switch (v) {
    case V_IGNORE:
        return;
    case V_TCP:
        retry_over_tcp(l);
        return;
    case V_NEXT:
        fail_server(l, l->why, l->detail);
        return;
    case V_DONE:
        finish(l, true);
        return;
    }
}

static void on_udp_reply(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_lookup *l = arg;
    (void)what;
    for (;;) {
        uint8_t buf[UDP_MAX];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            fail_server(l, WHY_NETWORK, (uint32_t)errno); /* ECONNREFUSED: nobody listens */
            return;
        }
        enum verdict v;
        if ((size_t)n > sizeof(buf))
            /* more than we offered (EDNS 1232) and can read: ask over TCP */
            v = ldns_read_uint16(buf) == l->id ? V_TCP : V_IGNORE;
        else
            v = reply_check(l, buf, (size_t)n);
        if (v != V_IGNORE) {
            act_on_verdict(l, v);
            return;
        }
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_lookup *l = arg;
    (void)fd;
    (void)what;
    fail_server(l, WHY_TIMEOUT, 0);
}

/* Asks the current server, over UDP, with a fresh socket: a new random
 * source port for each attempt, and only that server's replies reach it. */
static void attempt(struct upstream_lookup *l)
{
    uint64_t now = clock_ns() / 1000000; /* shares of the timeout: finer than a tick */
    l->noted = false;
    if (now >= l->deadline_ms || l->attempts >= 2 * l->set.nservers) {
        finish(l, false);
        return;
    }
    l->attempts++;
    metrics_inc(&l->up->stats.lookups, 1);

    uint64_t slice = l->set.timeout_ms / l->set.nservers;
    if (slice < MIN_ATTEMPT_MS)
        slice = MIN_ATTEMPT_MS;
    if (slice > l->deadline_ms - now)
        slice = l->deadline_ms - now;
    struct timeval tv = {(time_t)(slice / 1000), (suseconds_t)(slice % 1000) * 1000};
    evtimer_add(l->timer, &tv);

    const struct sockaddr_storage *ss = &l->set.servers[l->server];
    l->fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
        /* No socket for any server: waiting for the timer would only make
         * the clients wait too. Fail now; they get the CNAME alone. */
        note(l, WHY_NETWORK, (uint32_t)errno);
        l->noted = true;
        finish(l, false);
        return;
    }
    if (l->fd < 0 || connect(l->fd, (const struct sockaddr *)ss, l->set.lens[l->server]) < 0 ||
        send(l->fd, l->query, l->qlen, 0) < 0) {
        /* the timer moves on to the next server */
        note(l, WHY_NETWORK, (uint32_t)errno);
        l->noted = true;
        close_transport(l);
        return;
    }
    l->ev = event_new(l->up->base, l->fd, EV_READ | EV_PERSIST, on_udp_reply, l);
    if (!l->ev || event_add(l->ev, NULL) < 0)
        close_transport(l);
}

void upstream_flush(struct upstream *up)
{
    while (up->queued) {
        struct upstream_lookup *l = up->queued;
        up->queued = l->next;
        l->next = NULL;
        l->started = true;
        l->deadline_ms = clock_ns() / 1000000 + l->set.timeout_ms;
        l->timer = evtimer_new(up->base, on_timer, l);
        if (!l->timer) {
            finish(l, false);
            continue;
        }
        attempt(l);
    }
}

const uint8_t *upstream_lookup_query(const struct upstream_lookup *l, size_t *len)
{
    *len = l->qlen;
    return l->query;
}

bool upstream_take_reply(struct upstream_lookup *l, const uint8_t *reply, size_t len)
{
    for (struct upstream_lookup **pp = &l->up->queued; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next; /* never sent */
            break;
        }
    }
    enum verdict v = reply_check(l, reply, len);
    if (v == V_IGNORE)
        note(l, WHY_FOREIGN, 0);
    else if (v == V_TCP)
        note(l, WHY_TRUNCATED, 0);
    else if (v == V_NEXT)
        note(l, l->why, l->detail);
    finish(l, v == V_DONE);
    return v == V_DONE;
}

/* ---------------------------------------------------------------------- */

static void records_of(const struct entry *e, uint64_t now, bool stale,
                       struct upstream_records *out)
{
    *out = (struct upstream_records){
        .data = e->data,
        .len = e->dlen,
        .count = e->count,
        .links = e->links,
        .ttl_at = e->ttl_at,
        .name_at = e->name_at,
        .ttl = e->ttl,
        .age = (uint32_t)((now - e->fetched) / 1000),
        .stale = stale,
        .zone_at = e->zone_at,
        .name_max = e->name_max,
    };
}

enum upstream_status upstream_get(struct upstream *up, const struct upstream_settings *set,
                                  const uint8_t *name, size_t len, uint16_t qtype, uint64_t now,
                                  struct upstream_records *out, struct upstream_lookup **wait)
{
    uint64_t h = hash_key(up->seed, name, len, qtype);
    struct entry *e = find(up, name, len, qtype, h);
    if (e) {
        lru_unlink(up, e);
        lru_front(up, e);
        if (e->has_data && e->apex_hash != set->apex_hash)
            entry_drop_data(e); /* taken for another zone: a reload changed it */
    }

    if (e && e->has_data) {
        uint64_t max_stale = set->max_stale * 1000ULL;
        bool fresh = now < e->expires;
        bool stale_ok = !fresh && now <= e->expires + max_stale && e->failed_at &&
                        now - e->failed_at < STALE_REFRESH;
        if (fresh || stale_ok) {
            records_of(e, now, !fresh, out);
            /* Refresh what is queried before it expires (prefetch), and
             * retry a failed refresh every STALE_REFRESH seconds. */
            uint64_t ttl = e->expires - e->fetched;
            bool due = fresh ? e->expires - now <= (ttl / 10 > 1000 ? ttl / 10 : 1000)
                             : now - e->failed_at >= STALE_REFRESH;
            if (due && !e->lookup && wait)
                lookup_new(up, e, set);
            /* A query answered after waiting for its lookup was a miss,
             * not also a hit: hits / (hits + misses) is the hit ratio. */
            if (!fresh)
                metrics_inc(&up->stats.stale, 1);
            else if (wait)
                metrics_inc(&up->stats.hits, 1);
            return UPSTREAM_HIT;
        }
        if (now > e->expires + max_stale)
            entry_drop_data(e); /* too old to serve, even stale */
    }
    if (e && !e->has_data && now < e->neg_until && !e->lookup)
        return UPSTREAM_NONE;
    if (!wait) {
        /* the waiter of a lookup that just ended: no second wait */
        if (e && e->has_data && now <= e->expires + set->max_stale * 1000ULL) {
            records_of(e, now, true, out);
            metrics_inc(&up->stats.stale, 1);
            return UPSTREAM_HIT;
        }
        return UPSTREAM_NONE;
    }

    if (!e)
        e = insert(up, set, name, len, qtype, h);
    if (!e)
        return UPSTREAM_NONE;
    if (!e->lookup && !lookup_new(up, e, set))
        return UPSTREAM_NONE; /* too many lookups in flight: do not queue clients */
    metrics_inc(&up->stats.misses, 1);
    *wait = e->lookup;
    return UPSTREAM_MISS;
}

void upstream_wait(struct upstream_lookup *l, struct upstream_waiter *w)
{
    w->next = l->waiters;
    if (l->waiters)
        l->waiters->pprev = &w->next;
    w->pprev = &l->waiters;
    l->waiters = w;
}

void upstream_unwait(struct upstream_waiter *w)
{
    if (!w->pprev)
        return;
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    w->next = NULL;
    w->pprev = NULL;
}

void upstream_shutdown(struct upstream *up)
{
    while (up->queued) {
        struct upstream_lookup *l = up->queued;
        up->queued = l->next;
        l->e->lookup = NULL;
        up->nlookups--;
        free(l);
    }
    for (size_t i = 0; i < up->nbuckets; i++) {
        for (struct entry *e = up->buckets[i]; e; e = e->hnext) {
            struct upstream_lookup *l = e->lookup;
            if (!l)
                continue;
            close_transport(l);
            if (l->timer)
                event_free(l->timer);
            free(l);
            e->lookup = NULL;
            up->nlookups--;
        }
    }
}

void upstream_free(struct upstream *up)
{
    if (!up)
        return;
    upstream_shutdown(up);
    while (up->oldest)
        entry_free(up, up->oldest);
    free(up->buckets);
    free(up);
}
