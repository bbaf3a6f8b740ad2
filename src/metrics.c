/* metrics.c -- per-worker query counters in CoreDNS's shapes, summed when scraped. */
#include "svcmapd/metrics.h"

#include <ldns/ldns.h>
#include <stdlib.h>

static const uint16_t type_codes[METRICS_TYPES - 1] = {
    LDNS_RR_TYPE_A,     LDNS_RR_TYPE_AAAA,  LDNS_RR_TYPE_MX,     LDNS_RR_TYPE_SOA,
    LDNS_RR_TYPE_CNAME, LDNS_RR_TYPE_PTR,   LDNS_RR_TYPE_TXT,    LDNS_RR_TYPE_NS,
    LDNS_RR_TYPE_SRV,   LDNS_RR_TYPE_DS,    LDNS_RR_TYPE_DNSKEY, LDNS_RR_TYPE_RRSIG,
    LDNS_RR_TYPE_NSEC,  LDNS_RR_TYPE_NSEC3, 65 /* HTTPS */,      LDNS_RR_TYPE_IXFR,
    LDNS_RR_TYPE_AXFR,  LDNS_RR_TYPE_ANY,
};

static const char *const type_names[METRICS_TYPES] = {
    "A",      "AAAA",  "MX",   "SOA",   "CNAME", "PTR",  "TXT",  "NS",  "SRV",   "DS",
    "DNSKEY", "RRSIG", "NSEC", "NSEC3", "HTTPS", "IXFR", "AXFR", "ANY", "other",
};

static const char *const rcode_names[METRICS_RCODES] = {
    "NOERROR", "FORMERR",  "SERVFAIL",  "NXDOMAIN", "NOTIMP",  "REFUSED", "YXDOMAIN",
    "YXRRSET", "NXRRSET",  "NOTAUTH",   "NOTZONE",  "RCODE11", "RCODE12", "RCODE13",
    "RCODE14", "RCODE15",  "BADVERS",   "BADKEY",   "BADTIME", "BADMODE", "BADNAME",
    "BADALG",  "BADTRUNC", "BADCOOKIE", "other",
};

const char *const metrics_transfer_names[METRICS_TRANSFER_RESULTS] = {"done", "aborted", "refused"};

const double metrics_duration_le[METRICS_DURATION_BUCKETS] = {
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
    0.064,   0.128,  0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
};

const double metrics_size_le[METRICS_SIZE_BUCKETS] = {
    0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000,
};

const char *metrics_type_name(size_t t)
{
    return type_names[t];
}

const char *metrics_rcode_name(size_t r)
{
    return rcode_names[r];
}

struct metrics *metrics_new(size_t nservers)
{
    struct metrics *m = calloc(1, sizeof(*m) + 2 * nservers * sizeof(m->cells[0]));
    if (m)
        m->nservers = nservers;
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

static size_t type_index(uint16_t qtype)
{
    for (size_t i = 0; i < METRICS_TYPES - 1; i++)
        if (type_codes[i] == qtype)
            return i;
    return METRICS_TYPES - 1;
}

static size_t size_bucket(size_t n)
{
    size_t b = 0;
    while (b < METRICS_SIZE_BUCKETS && (double)n > metrics_size_le[b])
        b++;
    return b;
}

void metrics_count(struct metrics *m, size_t server, bool outside, bool tcp, bool ipv6,
                   uint16_t qtype, unsigned rcode, size_t qlen, size_t rlen, uint64_t ns)
{
    if (server >= m->nservers)
        return;
    struct metrics_cell *c = &m->cells[server * 2 + (outside ? 1 : 0)];
    metrics_inc(&c->requests[tcp][ipv6][type_index(qtype)], 1);
    metrics_inc(&c->req_size[tcp][size_bucket(qlen)], 1);
    metrics_inc(&c->req_bytes[tcp], qlen);
    if (rlen) {
        metrics_inc(&c->responses[rcode < METRICS_RCODES - 1 ? rcode : METRICS_RCODES - 1], 1);
        metrics_inc(&c->resp_size[tcp][size_bucket(rlen)], 1);
        metrics_inc(&c->resp_bytes[tcp], rlen);
    }
    size_t b = 0;
    uint64_t limit = 250000; /* ns: 0.25 ms, doubling */
    while (b < METRICS_DURATION_BUCKETS && ns > limit) {
        b++;
        limit *= 2;
    }
    metrics_inc(&c->duration[b], 1);
    metrics_inc(&c->duration_ns, ns);
}
