/* answer.h -- query bytes plus a compiled zone to reply bytes. */
#ifndef SVCMAPD_ANSWER_H
#define SVCMAPD_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "svcmapd/upstream.h"
#include "svcmapd/zone.h"

/* The largest UDP reply `udp-max-size` allows: UDP reply buffers need this
 * much. Its default, 1232 (DNS Flag Day 2020), avoids IP fragmentation. */
#define ANSWER_UDP_MAX 4096

/* Without EDNS (RFC 1035 §4.2.1). */
#define ANSWER_UDP_PLAIN 512
/* A TCP message (RFC 1035 §4.2.2); reply buffers need this much. */
#define ANSWER_TCP_MAX 65535

/* Per-thread answering state: no locks, no allocation. */
struct answer_ctx {
    uint64_t rng;        /* shuffles address RRsets */
    uint8_t secret[16];  /* for server cookies (RFC 9018) */
    struct upstream *up; /* this thread's upstream cache; NULL: none */
    uint64_t now;        /* monotonic ms, set per batch (clock_ms) */
    bool no_wait;        /* answer from the cache or without: never defer */
    /* the plans of checked services as this query sees them (SPEC §6) */
    struct zone_view view;
};

/* What happened to one query, for logs and counters. */
struct answer_info {
    uint16_t id;
    uint16_t qtype;
    uint16_t qclass;
    uint16_t bufsize; /* the client's EDNS UDP size, 512 without EDNS */
    bool question;    /* the query has a question: its name at offset 12 */
    bool do_bit;
    uint8_t rcode; /* extended: BADVERS is 16 */
    bool edns;
    bool truncated;
    /* Not answered from the zone, though a reply may go out (REFUSED,
     * FORMERR...): a name outside it, or a query that is malformed, of
     * another class or opcode. The metrics count it under zone="dropped",
     * as CoreDNS counts queries no zone of its serves. */
    bool outside;
    size_t len;                   /* ANSWER_REPLY: the reply's length; 0 otherwise */
    struct upstream_lookup *wait; /* ANSWER_DEFERRED: the lookup to wait for */
};

/* What answer_query() did with a query: the server acts on it. */
enum answer_result {
    ANSWER_REPLY, /* a reply of info->len bytes is written: send it */
    /* Nothing to send: fewer than 12 bytes, or a response (QR=1), which
     * is never answered so that two servers cannot loop. */
    ANSWER_NONE,
    /* The answer needs an upstream lookup: nothing was written. Answer the
     * same query again once info->wait ends (upstream_wait), with no_wait;
     * or at once with no_wait, for an answer without the lookup. */
    ANSWER_DEFERRED,
};

/* Seeds the context's random generator. */
void answer_init(struct answer_ctx *ctx);

/*
 * Answers one DNS message. `query` is `qlen` bytes as received from `peer`
 * (for its DNS cookie; may be NULL); the reply is written to `reply` (`cap`
 * bytes: at least ANSWER_UDP_MAX for UDP, ANSWER_TCP_MAX for TCP), its
 * length in info->len. Over UDP (`tcp` false) the reply respects the
 * client's size limit and is truncated (TC=1) when the answer does not
 * fit. Returns what happened (enum answer_result); `info` says more, for
 * logs and counters. Never allocates; `z` is only read.
 */
enum answer_result answer_query(struct answer_ctx *ctx, const struct zone *z, const uint8_t *query,
                                size_t qlen, bool tcp, const struct sockaddr *peer, uint8_t *reply,
                                size_t cap, struct answer_info *info);

#endif
