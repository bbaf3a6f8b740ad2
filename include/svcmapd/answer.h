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
    uint64_t now;        /* monotonic ms, set per batch (upstream_now) */
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
    bool dropped; /* not answered from the zone: outside it, or malformed */
    /* The answer needs an upstream lookup: nothing was written; answer the
     * same query again once `wait` ends (upstream_wait), with no_wait. */
    bool deferred;
    struct upstream_lookup *wait;
};

/* Seeds the context's random generator. */
void answer_init(struct answer_ctx *ctx);

/*
 * Answers one DNS message. `query` is `qlen` bytes as received from `peer`
 * (for its DNS cookie; may be NULL); the reply is
 * written to `reply` (`cap` bytes: at least ANSWER_UDP_MAX for UDP,
 * ANSWER_TCP_MAX for TCP) and its length returned. Returns 0 when nothing
 * must be sent: fewer than 12 bytes, or a response (QR=1), which is never
 * answered so that two servers cannot loop. Over UDP (`tcp` false) the reply
 * respects the client's size limit and is truncated (TC=1) when the answer
 * does not fit. Also returns 0, with info->deferred, when the answer must
 * wait for an upstream lookup. Never allocates; `z` is only read.
 */
size_t answer_query(struct answer_ctx *ctx, const struct zone *z, const uint8_t *query, size_t qlen,
                    bool tcp, const struct sockaddr *peer, uint8_t *reply, size_t cap,
                    struct answer_info *info);

#endif
