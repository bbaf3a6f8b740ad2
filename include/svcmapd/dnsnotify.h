/* dnsnotify.h -- DNS NOTIFY (RFC 1996) to the secondaries, when the zone's serial changes. */
#ifndef SVCMAPD_DNSNOTIFY_H
#define SVCMAPD_DNSNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "svcmapd/config.h"

/*
 * A secondary refreshes a zone when its SOA refresh timer says so (7200 s
 * here), or at once when its primary sends it a NOTIFY. svcmapd sends one
 * to each `[transfer] notify` target at start and after every reload
 * that changes the serial: over UDP, the zone's SOA with it, sent again
 * after 1, 2, 4 and 8 seconds until the secondary answers, and given up
 * 8 seconds after the fifth (RFC 1996 §3.6). Each outcome (answered,
 * refused, no answer) is one log line per target and serial, and counted.
 * It all runs on the main thread's event base: nothing of it touches the
 * workers. (notify.h is systemd's readiness protocol, another thing.)
 */

/* How many times a NOTIFY is sent, and the wait after the first; it
 * doubles after each, up to DNSNOTIFY_MAX_WAIT_MS. */
#define DNSNOTIFY_TRIES       5
#define DNSNOTIFY_WAIT_MS     1000
#define DNSNOTIFY_MAX_WAIT_MS 8000

struct event_base;
struct zone;
struct dnsnotify;

/* What one target's NOTIFYs came to, for /metrics. */
struct dnsnotify_stats {
    char target[64];       /* "192.0.2.53:53", as `notify` gives it */
    uint64_t sent;         /* datagrams, the retries too */
    uint64_t acknowledged; /* NOTIFYs the secondary answered with NOERROR */
    uint64_t failures;     /* given up unanswered, or answered with an error */
};

/* A notifier on `base` (the main thread's). NULL when out of memory. */
struct dnsnotify *dnsnotify_new(struct event_base *base);

/* Stops every NOTIFY under way, and frees. NULL is a no-op. */
void dnsnotify_free(struct dnsnotify *n);

/* The zone `z` is served now (main thread; zone_ref_current()): each of
 * the `ntargets` targets that has not been sent its serial yet is sent a
 * NOTIFY, instead of any still under way for an older one. Targets no
 * longer given are forgotten. `z` is not kept: the message is built here. */
void dnsnotify_zone(struct dnsnotify *n, const struct zone *z, const struct config_addr *targets,
                    size_t ntargets);

/* Stops every NOTIFY under way (at shutdown: the loop may then end). */
void dnsnotify_stop(struct dnsnotify *n);

/* How many targets there are (0 for a NULL notifier), and the counters
 * of target `i`, for /metrics (main thread). */
size_t dnsnotify_targets(const struct dnsnotify *n);
const struct dnsnotify_stats *dnsnotify_stats(const struct dnsnotify *n, size_t i);

#endif
