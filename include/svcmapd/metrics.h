/* metrics.h -- per-worker query counters in CoreDNS's shapes, summed when scraped. */
#ifndef SVCMAPD_METRICS_H
#define SVCMAPD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Each worker counts into its own `struct metrics`: one writer, so an
 * increment is a plain load, add and store (relaxed atomics, no lock
 * prefix), and the scraper's relaxed loads are race-free. Labels follow
 * CoreDNS's `prometheus` plugin (coredns_dns_*), so existing dashboards
 * work: `server` is one per listen address, `zone` the zone or "dropped"
 * for queries outside it (answer.h's `outside`), `view` is empty.
 */

/* Query types CoreDNS names in its `type` label; anything else is "other". */
#define METRICS_TYPES 19
/* Response codes 0-23 by name; anything else is counted as 24 ("other"). */
#define METRICS_RCODES 25
/* coredns_dns_request_duration_seconds: 0.25 ms * 2^k, k < 16, then +Inf. */
#define METRICS_DURATION_BUCKETS 16
/* coredns_dns_request/response_size_bytes boundaries (14), then +Inf. */
#define METRICS_SIZE_BUCKETS 14

struct metrics_cell {
    _Atomic uint64_t requests[2][2][METRICS_TYPES];          /* [tcp][ipv6][type] */
    _Atomic uint64_t responses[METRICS_RCODES];              /* by rcode */
    _Atomic uint64_t duration[METRICS_DURATION_BUCKETS + 1]; /* non-cumulative */
    _Atomic uint64_t duration_ns;
    _Atomic uint64_t req_size[2][METRICS_SIZE_BUCKETS + 1]; /* [tcp][bucket] */
    _Atomic uint64_t req_bytes[2];
    _Atomic uint64_t resp_size[2][METRICS_SIZE_BUCKETS + 1];
    _Atomic uint64_t resp_bytes[2];
};

/* What became of the zone transfers asked for (SPEC §8): the
 * svcmapd_transfers_total{result} labels. */
enum metrics_transfer {
    METRICS_TRANSFER_DONE,    /* every message written, the client read them */
    METRICS_TRANSFER_ABORTED, /* the connection ended first (closed, timed out) */
    METRICS_TRANSFER_REFUSED, /* a client not in [transfer] allow */
    METRICS_TRANSFER_RESULTS,
};

extern const char *const metrics_transfer_names[METRICS_TRANSFER_RESULTS];

/* One worker's counters: a cell per listen address, and inside or outside the zone. */
struct metrics {
    size_t nservers;
    _Atomic uint64_t tcp_refused;       /* connections closed at the limit */
    _Atomic uint64_t tcp_accept_errors; /* failed accept()s (listener.h) */
    _Atomic uint64_t transfers[METRICS_TRANSFER_RESULTS];
    struct metrics_cell cells[]; /* [server][outside] */
};

/* Counters for `nservers` listen addresses, zeroed. NULL if out of memory. */
struct metrics *metrics_new(size_t nservers);
void metrics_free(struct metrics *m);

/* One query and its reply: `server` is the listen address index,
 * `outside` that it was not answered from the zone (answer.h), `qtype`
 * and `rcode` as answered (rcode extended), sizes in bytes (rlen 0: no
 * reply), `ns` the time it took. */
void metrics_count(struct metrics *m, size_t server, bool outside, bool tcp, bool ipv6,
                   uint16_t qtype, unsigned rcode, size_t qlen, size_t rlen, uint64_t ns);

/* Adds one to a counter this thread owns. */
static inline void metrics_inc(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The label text of type index `t` and rcode index `r`. */
const char *metrics_type_name(size_t t);
const char *metrics_rcode_name(size_t r);
extern const double metrics_duration_le[METRICS_DURATION_BUCKETS];
extern const double metrics_size_le[METRICS_SIZE_BUCKETS];

#endif
