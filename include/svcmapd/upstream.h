/* upstream.h -- hostname targets outside the zone: asynchronous lookups and their cache. */
#ifndef SVCMAPD_UPSTREAM_H
#define SVCMAPD_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * A pod's resolver never chases a CNAME, so an A or AAAA answer for a
 * hostname service carries the target's addresses, resolved here through
 * the configured upstream resolvers, as CoreDNS does for ExternalName.
 *
 * Each worker has its own `struct upstream`: its own cache, its own lookups,
 * no locks. The price is one upstream lookup per worker per target and TTL,
 * which is nothing next to the locking it saves on the answer path.
 */

struct event_base;
struct upstream;
struct upstream_lookup;

#define UPSTREAM_MAX_SERVERS 8
/* Lookups in flight per worker, each holding a socket, unless the open
 * files limit allows fewer (main.c); more get the CNAME alone at once. */
#define UPSTREAM_MAX_LOOKUPS 4096

/* Settings, compiled into the zone so that a reload swaps them atomically. */
struct upstream_settings {
    struct sockaddr_storage servers[UPSTREAM_MAX_SERVERS];
    socklen_t lens[UPSTREAM_MAX_SERVERS];
    char names[UPSTREAM_MAX_SERVERS][64]; /* "10.96.0.10:53", "[fd00::10]:53": for logs */
    size_t nservers;
    uint32_t timeout_ms;   /* per lookup, all servers together */
    uint32_t cache_size;   /* entries */
    uint32_t max_stale;    /* seconds past expiry an answer may serve (RFC 8767) */
    uint32_t negative_ttl; /* at most this long for NXDOMAIN, NODATA, failures */
    /* The zone (upstream_settings_zone()): a chain from the upstream that
     * reaches it stops there, and the answer goes on from the mapping. */
    uint8_t apex[256]; /* wire form, lower case */
    uint8_t apex_len;
    uint64_t apex_hash; /* answers cached for another zone are not used */
};

/* Sets the zone of `set`: `apex` in wire form, lower case, `len` bytes. */
void upstream_settings_zone(struct upstream_settings *set, const uint8_t *apex, size_t len);

/* Counters of one worker, read (summed) by whoever reports them. */
/* Counters of one worker: written by it alone, read (summed) by the
 * metrics endpoint with relaxed loads. */
struct upstream_stats {
    _Atomic uint64_t hits;     /* answered from the cache, fresh */
    _Atomic uint64_t misses;   /* a query had to wait for a lookup */
    _Atomic uint64_t failures; /* lookups that got no usable answer */
    _Atomic uint64_t stale;    /* answered with expired records (RFC 8767) */
    _Atomic uint64_t lookups;  /* queries sent, refreshes and retries included */
};

/*
 * Records to append after the CNAME, in wire form: first the upstream's
 * CNAME chain (`links` records, each owned by the name the one before points
 * to), then the records of the asked type at its end, if any. TTLs are as
 * received; ttl_at[i] is where record i's TTL sits in data. The first
 * record's owner is written out; every other owner is a compression pointer
 * to an earlier name of data, written per reply: record i's starts at
 * ttl_at[i] - 6 and points to data + name_at[i]. Valid until the worker
 * returns to its event loop, or a later upstream_get() returns
 * UPSTREAM_MISS (which may evict entries).
 */
struct upstream_records {
    const uint8_t *data;
    size_t len;
    uint16_t count;
    uint16_t links;
    const uint16_t *ttl_at;
    const uint16_t *name_at;
    const uint32_t *ttl;
    uint32_t age; /* seconds since they were received: subtract */
    bool stale;   /* expired: serve with a TTL of at most 30 s (RFC 8767 §4) */
    /* Non-zero: the chain comes back into the zone at the name that starts
     * at data + zone_at (the last link's target), and nothing the upstream
     * said about that name or after it was kept: the mapping answers it. */
    uint16_t zone_at;
    uint16_t name_max; /* no pointer above refers past data + name_max */
};

enum upstream_status {
    UPSTREAM_HIT,  /* records in *out */
    UPSTREAM_NONE, /* NXDOMAIN, NODATA or a failure: the CNAME alone */
    UPSTREAM_MISS, /* *wait is a lookup to wait for */
};

/* Called when a lookup ends: answered, failed or timed out. */
struct upstream_waiter {
    struct upstream_waiter *next;
    struct upstream_waiter **pprev;
    void (*done)(struct upstream_waiter *w);
};

/* A resolver and cache for the thread that runs `base`, with at most
 * `max_lookups` lookups in flight. NULL when out of memory. */
struct upstream *upstream_new(struct event_base *base, size_t max_lookups);

/* Ends every lookup (their waiters must be gone) and frees the cache. */
void upstream_free(struct upstream *up);

/*
 * The cached answer for `name` (wire form, lower case, `len` bytes) and
 * `qtype` at time `now` (clock_ms()), with the settings of the zone
 * the query is answered from. On a miss, a lookup is queued (or an
 * existing one joined) and returned in *wait; it is sent by
 * upstream_flush(). A fresh answer close to its expiry queues a refresh.
 * Never blocks, never touches a socket.
 */
enum upstream_status upstream_get(struct upstream *up, const struct upstream_settings *set,
                                  const uint8_t *name, size_t len, uint16_t qtype, uint64_t now,
                                  struct upstream_records *out, struct upstream_lookup **wait);

/* Has w->done(w) called when `l` ends. */
void upstream_wait(struct upstream_lookup *l, struct upstream_waiter *w);

/* Stops waiting (the client went away). */
void upstream_unwait(struct upstream_waiter *w);

/* Sends the lookups upstream_get() queued. Call after each batch of queries. */
void upstream_flush(struct upstream *up);

/* Ends every lookup at once, without telling their waiters (which must be
 * gone): for a worker that stops. The cache stays. */
void upstream_shutdown(struct upstream *up);

const struct upstream_stats *upstream_stats(const struct upstream *up);

/*
 * Without a socket, for tests and fuzzing. upstream_lookup_query() is the
 * query `l` sends (`*len` bytes; its ID is random). upstream_take_reply()
 * reads `reply` (`len` bytes) as the last reply `l` will get, with the code
 * a reply from the network goes through, and ends the lookup: the entry
 * keeps the records or the negative answer, or, if the reply is of no use
 * (another ID or question, TC=1, an error rcode, TSIG records, unreadable),
 * the lookup fails as if every server had. Its waiters are told; `l` is
 * gone. Returns whether the reply was used.
 */
const uint8_t *upstream_lookup_query(const struct upstream_lookup *l, size_t *len);
bool upstream_take_reply(struct upstream_lookup *l, const uint8_t *reply, size_t len);

#endif
