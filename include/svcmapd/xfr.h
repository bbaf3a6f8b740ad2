/* xfr.h -- a zone transfer out: one version of the zone in as many messages as it takes. */
#ifndef SVCMAPD_XFR_H
#define SVCMAPD_XFR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "svcmapd/zone.h"

/*
 * AXFR (RFC 5936), and IXFR answered the same way (RFC 1995 §4): the SOA,
 * every record of the zone (zone_walk.h), the SOA again, in messages of at
 * most XFR_MESSAGE_FILL bytes of records, each record whole in one message.
 * The first message carries the question, and the query's OPT if it had
 * one (RFC 5936 §2.2); every message has the query's ID and AA=1. Like
 * answer.c, this turns a zone into bytes and never touches a socket: the
 * TCP code sends each message when the client has read the ones before
 * (server_tcp.c), so a slow secondary costs one message of memory, not
 * the zone.
 */

/* Records go into a message until the next one would take it past this
 * many bytes: every owner name then stays within reach of a compression
 * pointer (14 bits, RFC 1035 §4.1.4), and the message far below 64 KiB. */
#define XFR_MESSAGE_FILL 16384

struct xfr;

/* How far a transfer got. */
struct xfr_progress {
    uint64_t records, messages, bytes;
    uint32_t serial;  /* of the zone transferred */
    const char *type; /* "AXFR" or "IXFR", as asked */
};

/* Begins a transfer of `z` for the query answer_query() returned
 * ANSWER_TRANSFER for: `first` (`len` bytes) is the reply it wrote,
 * header, question and OPT, which the first message puts around its
 * records (copied). `z` must live until xfr_free(): hold it (zone_ref.h),
 * and the transfer is that version of the zone, whatever reloads happen
 * meanwhile. NULL when out of memory. */
struct xfr *xfr_new(const struct zone *z, const uint8_t *first, size_t len);

/* Turns `first`, as xfr_new() takes it, into a reply of its own: SERVFAIL,
 * for a transfer that cannot begin (no memory). */
void xfr_servfail(uint8_t *first);

/* Writes the next message at `out` (`cap` bytes, at least ANSWER_TCP_MAX)
 * and returns its length; 0 once the last one is written. */
size_t xfr_next(struct xfr *x, uint8_t *out, size_t cap);

const struct xfr_progress *xfr_progress(const struct xfr *x);

/* The zone it transfers. */
const struct zone *xfr_zone(const struct xfr *x);

/* NULL is a no-op. */
void xfr_free(struct xfr *x);

/* Whether `peer` may transfer the zone: its address is in one of the
 * prefixes of `[transfer] allow` (settings->transfer_allow); an IPv4
 * client on an IPv6 socket (::ffff:a.b.c.d) counts as its IPv4 address.
 * NULL: nobody. */
bool xfr_allowed(const struct zone_settings *settings, const struct sockaddr *peer);

#endif
