/* upstream_impl.h -- a lookup and its cache entry, shared by the files of the upstream resolver. */
#ifndef SVCMAPD_UPSTREAM_IMPL_H
#define SVCMAPD_UPSTREAM_IMPL_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svcmapd/upstream.h"

/*
 * The upstream resolver is split by concern:
 *   upstream.c        the cache (entries, their lifetimes, upstream_get()),
 *                     and the lookups: queued, sent over UDP, retried over
 *                     TCP and to the next server, timed out, logged;
 *   upstream_reply.c  a server's reply read: checked against the question,
 *                     and what it says of the target kept in the entry, in
 *                     wire form.
 */

#define MAX_CHAIN 10    /* CNAMEs followed in one answer */
#define MAX_TTL   86400 /* cap what an upstream says */
#define QUERY_MAX 512
#define MAX_FAILS 32 /* remembered per lookup: 2 attempts per server, TCP too */

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
    /* why reply_check() said V_NEXT */
    enum why why;
    uint32_t detail;
};

enum verdict {
    V_IGNORE, /* not the answer to our question: keep waiting */
    V_NEXT,   /* this server could not answer (l->why says why): try another */
    V_TCP,    /* truncated: ask the same server over TCP */
    V_DONE,
};

/* ---- the cache (upstream.c) ---- */

/* Frees the records of `e`: it has none from now on. */
void entry_drop_data(struct entry *e);

/* ---- replies (upstream_reply.c) ---- */

/* Notes why the current server's reply is of no use: V_NEXT. */
enum verdict reply_useless(struct upstream_lookup *l, enum why why, uint32_t detail);

/* Reads the reply `buf` (`len` bytes) to lookup `l`'s query: V_IGNORE if
 * it answers another question, V_TCP if truncated, V_NEXT if of no use
 * (l->why says why), or V_DONE with what it says of the target stored in
 * l->e (a negative answer too). */
enum verdict reply_check(struct upstream_lookup *l, const uint8_t *buf, size_t len);

#endif
