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

/*
 * Queries are built and answers parsed with ldns (this is the miss path,
 * where allocating is fine); the cache keeps what an answer needs in wire
 * form, so a hit costs a hash lookup and a copy.
 *
 * Answers: the target's CNAME chain as the upstream gives it (at most 10
 * links, each owned by the name the previous one points to), then the
 * records of the asked type at the end of the chain. Records that do not
 * belong to that chain are dropped, whatever the upstream sends. A link to
 * a name of our own zone ends what is taken: what the upstream says about
 * our names is never believed, and the answer goes on from the mapping
 * there (answer.c). A chain that ends in a CNAME without records of the
 * type is kept as it is: the links are data, the end a negative answer.
 *
 * An answer is kept whole, up to what a TCP reply can carry (owner names
 * compressed: a record of an RRset of 700 addresses costs 16 bytes); a
 * bigger one fails the lookup, as a broken reply does, never cut short.
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

#define MAX_CHAIN      10
#define MAX_TTL        86400 /* cap what an upstream says */
#define STALE_TTL      30    /* RFC 8767 §4 */
#define STALE_REFRESH  30000 /* ms; RFC 8767 §5: stale-refresh-time */
#define MIN_ATTEMPT_MS 250
#define QUERY_MAX      512
#define UDP_MAX        4096  /* UDP replies are read up to this; a bigger one: TCP */
#define LOG_EVERY      10000 /* ms between two failure lines of one target and type */
#define MAX_FAILS      32    /* remembered per lookup: 2 attempts per server, TCP too */

/* What a TCP reply has left for the records after a header, the longest
 * question, the service's CNAME to the longest name and an OPT with a
 * cookie. */
#define MAX_DATA (65535 - 12 - (255 + 4) - (12 + 255) - 39)

/* Why a server's reply was of no use, for the log. */
enum why {
    WHY_TIMEOUT,
    WHY_RCODE,      /* detail: the rcode */
    WHY_UNREADABLE, /* not a message libldns reads */
    WHY_TSIG,       /* TSIG records: not a reply to our unsigned query */
    WHY_TRUNCATED,  /* TC=1 over TCP */
    WHY_NETWORK,    /* detail: errno */
    WHY_CLOSED,     /* the TCP connection ended without a reply */
    WHY_TOO_BIG,    /* detail: the most we keep */
    WHY_MEMORY,
    WHY_FOREIGN, /* another ID or question (upstream_take_reply() only) */
};

struct entry {
    struct entry *hnext;
    struct entry *newer, *older; /* LRU list */
    uint64_t hash;
    uint16_t qtype;
    uint8_t len;
    uint8_t name[LDNS_MAX_DOMAINLEN + 1];

    /* One allocation, widest first so each array is aligned:
     * ttl[count], ttl_at[count], name_at[count], then the records
     * (upstream.h: struct upstream_records). */
    uint32_t *ttl;
    uint16_t *ttl_at;
    uint16_t *name_at;
    uint8_t *data;
    size_t dlen;
    uint16_t count;
    uint16_t links;
    uint16_t zone_at;
    uint16_t name_max;
    uint64_t apex_hash; /* of the zone the records were taken for */
    /* monotonic milliseconds: a TTL of 4 s lasts 4 s, whenever in a second
     * the answer came */
    uint64_t fetched;   /* when data arrived */
    uint64_t expires;   /* fetched + the smallest TTL */
    uint64_t failed_at; /* last refresh that failed, 0: none since data arrived */
    uint64_t neg_until; /* no data: the CNAME alone until then */
    bool has_data;
    struct upstream_lookup *lookup;
    uint64_t logged_at;  /* the last failure line, 0: none yet */
    uint32_t suppressed; /* failure lines held back since */
};

struct failure {
    uint8_t server;
    uint8_t why; /* enum why */
    uint32_t detail;
};

struct upstream_lookup {
    struct upstream *up;
    struct entry *e;
    struct upstream_settings set; /* a copy: the zone may go while we wait */
    struct upstream_lookup *next; /* queued, then in flight */
    struct upstream_waiter *waiters;

    uint16_t id;
    uint8_t query[QUERY_MAX];
    size_t qlen;
    size_t server;
    unsigned attempts;
    uint64_t deadline_ms;
    bool started;

    int fd; /* UDP */
    struct event *ev;
    struct bufferevent *tcp; /* after TC=1 */
    struct event *timer;

    struct failure fails[MAX_FAILS]; /* for the log */
    unsigned nfails;
    bool noted; /* this attempt's failure is in fails[] already */
    /* why check_answer() said V_NEXT */
    enum why why;
    uint32_t detail;
};

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

static void drop_data(struct entry *e)
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
    drop_data(e);
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
            drop_data(e);
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

static bool same_name(const ldns_rdf *rdf, const uint8_t *name, size_t len)
{
    if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME || ldns_rdf_size(rdf) != len)
        return false;
    const uint8_t *d = ldns_rdf_data(rdf);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = d[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != name[i])
            return false;
    }
    return true;
}

static size_t lower_name(const ldns_rdf *rdf, uint8_t *out)
{
    size_t len = ldns_rdf_size(rdf);
    const uint8_t *d = ldns_rdf_data(rdf);
    for (size_t i = 0; i < len; i++)
        out[i] = (d[i] >= 'A' && d[i] <= 'Z') ? (uint8_t)(d[i] + 32) : d[i];
    return len;
}

/* Whether `rr` is a record of type `qtype` at the chain's end, `cur`. */
static bool at_the_end(const ldns_rr *rr, uint16_t qtype, const uint8_t *cur, size_t clen)
{
    return ldns_rr_get_type(rr) == qtype && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
           ldns_rr_rd_count(rr) >= 1 && same_name(ldns_rr_owner(rr), cur, clen);
}

/* How long a negative answer holds: negative-ttl at most, less if the SOA
 * in the authority section says so (RFC 2308 §5). */
static uint32_t negative_ttl(const struct upstream_lookup *l, const ldns_pkt *p)
{
    uint32_t ttl = l->set.negative_ttl;
    const ldns_rr_list *ns = ldns_pkt_authority(p);
    for (size_t i = 0; i < ldns_rr_list_rr_count(ns); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ns, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
            uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
            uint32_t soa = ldns_rr_ttl(rr) < min ? ldns_rr_ttl(rr) : min;
            ttl = soa < ttl ? soa : ttl;
        }
    }
    return ttl;
}

/* Appends `rr` to `b` in wire form: its owner in full, or a 2-byte
 * compression pointer that the answer sets per reply. Returns false when
 * out of memory; *ttl_at and *rdata_at say where its TTL and rdata are. */
static bool put_record(ldns_buffer *b, const ldns_rr *rr, bool owner, size_t *ttl_at,
                       size_t *rdata_at)
{
    if (owner ? ldns_dname2buffer_wire(b, ldns_rr_owner(rr)) != LDNS_STATUS_OK
              : !ldns_buffer_reserve(b, 2))
        return false;
    if (!owner)
        ldns_buffer_write_u16(b, 0xc000);
    if (!ldns_buffer_reserve(b, 10))
        return false;
    ldns_buffer_write_u16(b, (uint16_t)ldns_rr_get_type(rr));
    ldns_buffer_write_u16(b, LDNS_RR_CLASS_IN);
    *ttl_at = ldns_buffer_position(b);
    ldns_buffer_write_u32(b, 0); /* per reply */
    size_t rdlen_at = ldns_buffer_position(b);
    ldns_buffer_write_u16(b, 0);
    *rdata_at = ldns_buffer_position(b);
    if (ldns_rr_rdata2buffer_wire(b, rr) != LDNS_STATUS_OK)
        return false;
    ldns_buffer_write_u16_at(b, rdlen_at, (uint16_t)(ldns_buffer_position(b) - *rdata_at));
    return true;
}

static bool store_failed(struct upstream_lookup *l, enum why why, uint32_t detail, void *a,
                         ldns_buffer *b)
{
    l->why = why;
    l->detail = detail;
    free(a);
    ldns_buffer_free(b);
    return false;
}

/* What an answer holds for the entry's question: the CNAME chain from it,
 * then the records of the asked type at the chain's end. */
struct chain {
    const ldns_rr *link[MAX_CHAIN];
    size_t links;
    size_t n;     /* records kept: the links, then those at the end */
    bool in_zone; /* a link points into our own zone: nothing from there on */
    uint8_t end[LDNS_MAX_DOMAINLEN + 1]; /* the chain's end, lower case */
    size_t end_len;
};

/* Follows the CNAME chain from the question through `an`, keeping only
 * what hangs on it, and nothing from a link into our own zone on. */
static void follow_chain(const struct upstream_lookup *l, const ldns_rr_list *an, struct chain *c)
{
    size_t total = ldns_rr_list_rr_count(an);
    c->links = 0;
    c->in_zone = false;
    c->end_len = l->e->len;
    memcpy(c->end, l->e->name, c->end_len);
    while (c->links < MAX_CHAIN && !c->in_zone) {
        const ldns_rr *next = NULL;
        for (size_t i = 0; i < total && !next; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(an, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
                ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN && ldns_rr_rd_count(rr) == 1 &&
                same_name(ldns_rr_owner(rr), c->end, c->end_len))
                next = rr;
        }
        if (!next)
            break;
        c->link[c->links++] = next;
        c->end_len = lower_name(ldns_rr_rdf(next, 0), c->end);
        c->in_zone = wire_name_in(c->end, c->end_len, l->set.apex, l->set.apex_len);
    }
    c->n = c->links;
    for (size_t i = 0; i < total && !c->in_zone; i++)
        c->n += at_the_end(ldns_rr_list_rr(an, i), l->e->qtype, c->end, c->end_len);
}

/* Writes the n records of `c` to `b` in wire form, their TTLs (capped)
 * to ttl[], where each TTL sits to ttl_at[], where each owner's name
 * starts to name_at[] (upstream.h), and lowers *min_ttl to the smallest.
 * Returns where the last owner's name starts, or -1 with l->why set. */
static long encode_chain(struct upstream_lookup *l, const ldns_rr_list *an, const struct chain *c,
                         ldns_buffer *b, uint32_t *ttl, uint16_t *ttl_at, uint16_t *name_at,
                         uint32_t *min_ttl)
{
    size_t owner = 0; /* where the name the next record is owned by starts */
    size_t next = 0;  /* the answer record to look at for the end's */
    for (size_t k = 0; k < c->n; k++) {
        const ldns_rr *rr = k < c->links ? c->link[k] : NULL;
        while (!rr) {
            rr = ldns_rr_list_rr(an, next++);
            rr = at_the_end(rr, l->e->qtype, c->end, c->end_len) ? rr : NULL;
        }
        size_t at, rdata;
        if (!put_record(b, rr, k == 0, &at, &rdata)) {
            l->why = WHY_MEMORY;
            l->detail = 0;
            return -1;
        }
        if (ldns_buffer_position(b) > MAX_DATA) {
            l->why = WHY_TOO_BIG;
            l->detail = MAX_DATA;
            return -1;
        }
        ttl[k] = ldns_rr_ttl(rr) < MAX_TTL ? ldns_rr_ttl(rr) : MAX_TTL;
        *min_ttl = ttl[k] < *min_ttl ? ttl[k] : *min_ttl;
        ttl_at[k] = (uint16_t)at;
        name_at[k] = (uint16_t)owner;
        if (k < c->links)
            owner = rdata; /* the next record is owned by this one's target */
    }
    return (long)owner;
}

/* Stores the answer of `p` to the entry's question. Returns false if it is
 * no use (then another server is tried), with the reason in l->why. */
static bool store_answer(struct upstream_lookup *l, const ldns_pkt *p)
{
    struct entry *e = l->e;
    const ldns_rr_list *an = ldns_pkt_answer(p);
    struct chain c;
    follow_chain(l, an, &c);
    size_t n = c.n;

    uint64_t now = clock_ms();
    uint32_t neg = negative_ttl(l, p);
    if (n == 0) {
        /* NXDOMAIN or NODATA: negative, as long as the SOA allows (RFC 2308
         * §5) and no longer than negative-ttl. */
        drop_data(e);
        e->neg_until = now + neg * 1000ULL;
        return true;
    }

    /* The records in wire form, and where each one's TTL and owner are. */
    size_t arrays = n * (sizeof(uint32_t) + 2 * sizeof(uint16_t));
    uint8_t *a = malloc(arrays);
    ldns_buffer *b = ldns_buffer_new(512);
    if (!a || !b)
        return store_failed(l, WHY_MEMORY, 0, a, b);
    uint32_t *ttl = (uint32_t *)(void *)a;
    uint16_t *ttl_at = (uint16_t *)(void *)(a + n * sizeof(uint32_t));
    uint16_t *name_at = ttl_at + n;
    /* A dangling chain (no records at its end) lives as long as its end is
     * known not to have any. */
    uint32_t min_ttl = c.links < n || c.in_zone ? MAX_TTL : (neg < MAX_TTL ? neg : MAX_TTL);
    long owner = encode_chain(l, an, &c, b, ttl, ttl_at, name_at, &min_ttl);
    if (owner < 0)
        return store_failed(l, l->why, l->detail, a, b);
    size_t dlen = ldns_buffer_position(b);
    uint8_t *block = malloc(arrays + dlen + 1);
    if (!block)
        return store_failed(l, WHY_MEMORY, 0, a, b);
    drop_data(e);
    memcpy(block, a, arrays);
    memcpy(block + arrays, ldns_buffer_begin(b), dlen);
    free(a);
    ldns_buffer_free(b);
    e->ttl = (uint32_t *)(void *)block;
    e->ttl_at = (uint16_t *)(void *)(block + n * sizeof(uint32_t));
    e->name_at = e->ttl_at + n;
    e->data = block + arrays;
    e->dlen = dlen;
    e->count = (uint16_t)n;
    e->links = (uint16_t)c.links;
    e->zone_at = c.in_zone ? (uint16_t)owner : 0;
    e->name_max = (uint16_t)owner;
    e->apex_hash = l->set.apex_hash;

    e->fetched = now;
    e->expires = now + min_ttl * 1000ULL;
    e->has_data = true;
    e->neg_until = 0;
    return true;
}

enum verdict {
    V_IGNORE, /* not the answer to our question: keep waiting */
    V_NEXT,   /* this server could not answer (l->why says why): try another */
    V_TCP,    /* truncated: ask the same server over TCP */
    V_DONE,
};

static enum verdict useless(struct upstream_lookup *l, enum why why, uint32_t detail)
{
    l->why = why;
    l->detail = detail;
    return V_NEXT;
}

static enum verdict check_answer(struct upstream_lookup *l, const uint8_t *buf, size_t len)
{
    ldns_pkt *p = NULL;
    /* We sign nothing, so a reply with TSIG records is not ours; and
     * libldns can leak one (wire.h), which a bad upstream or a forger
     * could repeat until we run out of memory. */
    int tsigs = wire_count_type(buf, len, LDNS_RR_TYPE_TSIG);
    if (tsigs > 0)
        return useless(l, WHY_TSIG, 0);
    if (tsigs < 0 || ldns_wire2pkt(&p, buf, len) != LDNS_STATUS_OK)
        return useless(l, WHY_UNREADABLE, 0);
    enum verdict v = V_DONE;
    const ldns_rr_list *q = ldns_pkt_question(p);
    if (ldns_pkt_id(p) != l->id || !ldns_pkt_qr(p) || ldns_rr_list_rr_count(q) != 1 ||
        ldns_rr_get_type(ldns_rr_list_rr(q, 0)) != l->e->qtype ||
        !same_name(ldns_rr_owner(ldns_rr_list_rr(q, 0)), l->e->name, l->e->len)) {
        v = V_IGNORE; /* a late answer to an earlier attempt, or a forgery */
    } else if (ldns_pkt_tc(p)) {
        v = V_TCP;
    } else if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR &&
               ldns_pkt_get_rcode(p) != LDNS_RCODE_NXDOMAIN) {
        /* SERVFAIL, REFUSED...: maybe another server knows */
        v = useless(l, WHY_RCODE, ldns_pkt_get_rcode(p));
    } else if (!store_answer(l, p)) {
        v = V_NEXT;
    }
    ldns_pkt_free(p);
    return v;
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
    enum verdict v = msg ? check_answer(l, msg + 2, len) : useless(l, WHY_MEMORY, 0);
    evbuffer_drain(in, 2 + len);
    if (v == V_TCP)
        v = useless(l, WHY_TRUNCATED, 0);
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
            v = check_answer(l, buf, (size_t)n);
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
    enum verdict v = check_answer(l, reply, len);
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
            drop_data(e); /* taken for another zone: a reload changed it */
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
            drop_data(e); /* too old to serve, even stale */
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
