/* health.h -- the prober: probes checked targets on a thread of its own, writes what it finds into
 * the zone. */
#ifndef SVCMAPD_HEALTH_H
#define SVCMAPD_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svcmapd/config.h"

struct zone_ref;

/*
 * The targets of services with check= (SPEC §6) are probed here, and only
 * here: TCP connects and HTTP GETs, non-blocking, on the prober's own
 * thread and event loop, never on a query worker. Each probe's result
 * counts towards `fall` or `rise`; a target that crosses one changes state
 * in the zone the workers read (zone.h's zone_probe), is logged once, and
 * is counted. The prober reads the current zone through its own reader
 * slot of the zone_ref, and takes the probes of each zone published.
 */
struct health;

/* Probes in flight at once, a socket each: as many as the mapping at
 * start has checked targets, at least HEALTH_MIN_PROBES and at most
 * HEALTH_MAX_PROBES; more wait their turn. */
#define HEALTH_MIN_PROBES 16
#define HEALTH_MAX_PROBES 256

/* The probes in flight the prober of `cfg` gets (health_new()), and the
 * file descriptors it holds at most with them: one each, and its event
 * base's (main.c's budget counts them). */
size_t health_probe_cap(const struct config *cfg);
#define HEALTH_BASE_FDS 4

/* A prober for the zones of `zones`, reading them as reader `slot`, with
 * at most `cap` probes in flight. NULL when out of memory. Starts nothing. */
struct health *health_new(struct zone_ref *zones, size_t slot, size_t cap);

/* Starts the prober's thread (call with the signals blocked: the main
 * thread takes them); it takes the current zone's probes at once. Returns
 * 0 or a negative errno. */
int health_start(struct health *h);

/* A new zone is published: the prober takes its probes, carrying over
 * what it knows of the unchanged ones. Any thread; returns at once. */
void health_wake(struct health *h);

/* Stops the thread, closing the probes in flight. NULL is a no-op. */
void health_stop(struct health *h);

/* Frees a stopped (or never started) prober. NULL is a no-op. */
void health_free(struct health *h);

/* How long probes took: a histogram per check (tcp, http), written by the
 * prober's thread alone and read with relaxed loads (/metrics). */
#define HEALTH_BUCKETS 12

struct health_stats {
    _Atomic uint64_t count[2][HEALTH_BUCKETS + 1]; /* [http][bucket], the last +Inf */
    _Atomic uint64_t sum_us[2];
};

extern const double health_bucket_le[HEALTH_BUCKETS]; /* seconds */

/* The prober's histogram; NULL for NULL. */
const struct health_stats *health_stats(const struct health *h);

/* A failure, as zone_probe.error holds it: its kind in the upper 16 bits,
 * a detail below (an errno, an HTTP status, where a timeout struck). The
 * numbers travel in a hand-over to the next svcmapd (health_report_facts()):
 * add kinds, never renumber them. */
enum health_error {
    HEALTH_ERR_NONE,
    HEALTH_ERR_ERRNO,    /* the connection failed: errno */
    HEALTH_ERR_TIMEOUT,  /* no success within `timeout`: enum health_phase */
    HEALTH_ERR_STATUS,   /* an HTTP status other than 2xx */
    HEALTH_ERR_RESPONSE, /* not an HTTP/1.x status line */
    HEALTH_ERR_CLOSED,   /* the connection ended before a status line */
};

#define HEALTH_ERROR(kind, detail) ((uint32_t)(kind) << 16 | (uint32_t)(detail))

/* `error` in words ("connection refused", "HTTP 500", "timeout waiting
 * for the response"), in `out`; returns `out`. */
const char *health_error_text(uint32_t error, char *out, size_t cap);

/* True if `error` is one a probe can record: a known kind with a detail
 * it can have. */
bool health_error_valid(uint32_t error);

/* ---- what the endpoints show (health_report.c) ---- */

struct evbuffer;
struct zone;

/* Appends to `b` the Prometheus lines of SPEC §6: svcmapd_health_target_up
 * and svcmapd_health_transitions_total per checked target of `z`, and the
 * probe-duration histogram of `st` (NULL: no prober yet). */
void health_report_metrics(struct evbuffer *b, const struct zone *z, const struct health_stats *st);

/* Appends to `b` every checked target of `z` as JSON: its service, target,
 * check, state, since when, transitions, last error, and whether answers
 * hold it now. */
void health_report_json(struct evbuffer *b, const struct zone *z);

/* Calls put(ctx, line) for every checked target of `z`, in the order of
 * the file: `mysql.prod 192.168.1.10:3306 down since
 * 2026-12-06T15:32:08Z, not answered, last error: connection refused`
 * (SPEC §7's `health` command: service, target, up or down, since when,
 * whether answers hold it, the last failure); `no checked targets` when
 * there are none. */
void health_report_lines(const struct zone *z, void (*put)(void *ctx, const char *line), void *ctx);

/* ---- the state handed to the next svcmapd (svcmapd --replace) ---- */

/*
 * SPEC §7: "Health state ... carry over". The running svcmapd offers the
 * state of each probe of the zone it serves as one `fact` of the
 * hand-over (handover.h), the fields separated by one space:
 *
 *   health ADDRESS CHECK STATE SINCE TRANSITIONS STREAK ERROR
 *   health 192.168.1.10 tcp:3306 down 1796000000123 1 0 65647
 *   health 2001:db8::1 http:8080/healthz up 1795990000000 0 1 0
 *
 * ADDRESS, CHECK (with the port probed) and the path are the probe's key,
 * as a reload matches probes (zone_probe_key_cmp()); STATE up or down;
 * SINCE the Unix time in ms of its last transition; TRANSITIONS how many;
 * STREAK the failures (while up) or successes (while down) in a row
 * toward `fall` or `rise`; ERROR the last failure, as zone_probe.error.
 * Fields past these are a later svcmapd's, and skipped.
 *
 * The new svcmapd puts that state into the probes of the zone it has
 * compiled, before the zone is served, so that a target down is not
 * answered from the first query on. What it reads is untrusted: a line
 * that is not exactly this (a field missing or out of range, a time more
 * than a day ahead, a second line for one probe) is logged and changes
 * nothing; a probe the zone does not have is ignored (gone from the
 * mapping); probes no valid line names start as at a cold start (up, SPEC
 * §6), said in one line.
 */

/* Calls put(ctx, line) with the fact of every probe of `z`. */
void health_report_facts(const struct zone *z, void (*put)(void *ctx, const char *line), void *ctx);

struct health_seed {
    const struct zone *z;
    uint8_t *seen; /* a bit per probe of z that a line has set; NULL: out of memory */
    size_t facts;  /* `health` lines read */
    size_t taken, down, gone, rejected;
};

/* Before the facts of a hand-over: `z` is the zone compiled, not served
 * yet. Pair with health_seed_finish(). */
void health_seed_init(struct health_seed *s, const struct zone *z);

/* One fact of the hand-over, without `fact ` ("health 192.168.1.10 ...").
 * False if it is not a `health` fact (another kind, for someone else). */
bool health_seed_fact(void *seed, const char *fact);

/* After the last fact, if the hand-over went through (`done`): each
 * service's word set from its probes, and one log line of what was
 * carried over and what starts cold. Frees what `s` holds. */
void health_seed_finish(struct health_seed *s, bool done);

#endif
