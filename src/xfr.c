/* xfr.c -- a zone transfer out: one version of the zone in as many messages as it takes. */
#include "svcmapd/xfr.h"

#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/wire.h"
#include "svcmapd/zone_walk.h"

#define HDR 12

enum xfr_state {
    XFR_SOA_FIRST, /* RFC 5936 §2.2: the first record is the SOA */
    XFR_RECORDS,
    XFR_SOA_LAST, /* and so is the last */
    XFR_DONE,
};

struct xfr {
    const struct zone *z;
    enum xfr_state state;
    struct zone_walk walk;
    bool first_sent;
    struct xfr_progress progress;
    uint8_t rec[ZONE_RECORD_MAX]; /* the next record, when it did not fit the last message */
    size_t rec_len;
    size_t apex_len; /* of the zone's name in wire form */
    uint8_t apex[LDNS_MAX_DOMAINLEN + 1];
    size_t question_end; /* in `first`: header and question, then the OPT */
    size_t first_len;
    uint8_t first[]; /* the reply answer_query() wrote */
};

struct xfr *xfr_new(const struct zone *z, const uint8_t *first, size_t len)
{
    /* the question is one uncompressed name, then type and class */
    size_t q = len > HDR ? wire_skip_name(first, len, HDR, NULL) : 0;
    if (q == 0 || len - q < 4 || first[HDR] >= 0xc0)
        return NULL;
    struct xfr *x = calloc(1, sizeof(*x) + len);
    if (!x)
        return NULL;
    x->z = z;
    x->question_end = q + 4;
    x->first_len = len;
    memcpy(x->first, first, len);
    zone_walk_start(&x->walk);
    x->progress.serial = zone_stats(z)->serial;
    x->progress.type = ldns_read_uint16(first + q) == LDNS_RR_TYPE_IXFR ? "IXFR" : "AXFR";

    /* the apex, as the SOA's owner has it: every owner ends in it */
    uint8_t soa[ZONE_RECORD_MAX];
    size_t n = zone_walk_soa(z, soa);
    x->apex_len = n ? wire_skip_name(soa, n, 0, NULL) : 0;
    memcpy(x->apex, soa, x->apex_len);
    return x;
}

void xfr_servfail(uint8_t *first)
{
    first[2] &= (uint8_t)~0x04; /* AA: nothing said of the zone */
    first[3] = (uint8_t)((first[3] & 0xf0) | LDNS_RCODE_SERVFAIL);
}

/* The next record into x->rec, from the SOA, the walk, the SOA again;
 * its length, 0 after the last SOA. */
static size_t next_record(struct xfr *x)
{
    switch (x->state) {
    case XFR_SOA_FIRST:
        x->state = XFR_RECORDS;
        return zone_walk_soa(x->z, x->rec);
    case XFR_RECORDS: {
        size_t n = zone_walk_next(x->z, &x->walk, x->rec);
        if (n)
            return n;
        x->state = XFR_SOA_LAST;
    }
        /* fall through */
    case XFR_SOA_LAST:
        x->state = XFR_DONE;
        return zone_walk_soa(x->z, x->rec);
    case XFR_DONE:
        break;
    }
    return 0;
}

/* Owner names in one message, for compression: the last owner (whole)
 * and where it was written, and where the apex was (0: not yet, or out of
 * a pointer's reach). */
struct names {
    uint8_t last[LDNS_MAX_DOMAINLEN + 1];
    size_t last_len, last_at;
    size_t apex_at;
};

/*
 * Writes record x->rec at out[pos] with its owner compressed: a pointer to
 * the owner before it when they are the same (an RRset's records follow
 * each other), else its labels and a pointer to the apex where the message
 * has it, else whole. Every owner is in the zone; a name that did not end
 * in the apex would simply be written whole. RDATA is copied as the walk
 * wrote it: no name there is compressed (zone_walk.h). Returns the new
 * position.
 */
static size_t put_record(struct xfr *x, uint8_t *out, size_t pos, struct names *nm)
{
    const uint8_t *rec = x->rec;
    size_t owner = wire_skip_name(rec, x->rec_len, 0, NULL);
    bool in_zone = wire_name_in(rec, owner, x->apex, x->apex_len);
    if (nm->last_at && nm->last_len == owner && memcmp(nm->last, rec, owner) == 0) {
        ldns_write_uint16(out + pos, (uint16_t)(0xc000 | nm->last_at));
        pos += 2;
    } else {
        memcpy(nm->last, rec, owner);
        nm->last_len = owner;
        nm->last_at = pos < 0x4000 ? pos : 0; /* 14 bits of offset */
        if (in_zone && nm->apex_at) {
            size_t labels = owner - x->apex_len;
            memcpy(out + pos, rec, labels);
            ldns_write_uint16(out + pos + labels, (uint16_t)(0xc000 | nm->apex_at));
            pos += labels + 2;
        } else {
            memcpy(out + pos, rec, owner);
            if (in_zone && pos + owner - x->apex_len < 0x4000)
                nm->apex_at = pos + owner - x->apex_len;
            pos += owner;
        }
    }
    memcpy(out + pos, rec + owner, x->rec_len - owner);
    return pos + x->rec_len - owner;
}

size_t xfr_next(struct xfr *x, uint8_t *out, size_t cap)
{
    if (x->state == XFR_DONE && x->rec_len == 0)
        return 0;
    /* the header of the query's reply; the question in the first message
     * only (RFC 5936 §2.2.1: QDCOUNT 0 after it) */
    bool first = !x->first_sent;
    size_t pos = first ? x->question_end : HDR;
    size_t opt = first ? x->first_len - x->question_end : 0;
    memcpy(out, x->first, pos);
    ldns_write_uint16(out + 4, first ? 1 : 0);
    ldns_write_uint16(out + 8, 0);
    ldns_write_uint16(out + 10, first ? ldns_read_uint16(x->first + 10) : 0);

    struct names nm = {0};
    uint16_t count = 0;
    size_t room = XFR_MESSAGE_FILL < cap - opt ? XFR_MESSAGE_FILL : cap - opt;
    for (;;) {
        if (x->rec_len == 0)
            x->rec_len = next_record(x);
        if (x->rec_len == 0)
            break;
        /* whole records only; the first always fits (ZONE_RECORD_MAX) */
        if (count > 0 && pos + x->rec_len > room)
            break;
        pos = put_record(x, out, pos, &nm);
        x->rec_len = 0;
        count++;
    }
    memcpy(out + pos, x->first + x->question_end, opt);
    pos += opt;
    ldns_write_uint16(out + 6, count);
    x->first_sent = true;
    x->progress.records += count;
    x->progress.messages++;
    x->progress.bytes += pos;
    return pos;
}

const struct xfr_progress *xfr_progress(const struct xfr *x)
{
    return &x->progress;
}

const struct zone *xfr_zone(const struct xfr *x)
{
    return x->z;
}

void xfr_free(struct xfr *x)
{
    free(x);
}

/* Whether the first `bits` bits of `a` and `b` are the same. */
static bool same_bits(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    size_t whole = bits / 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00 >> (bits % 8));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool xfr_allowed(const struct zone_settings *settings, const struct sockaddr *peer)
{
    if (!peer || settings->ntransfer_allow == 0)
        return false;
    int family = peer->sa_family;
    const uint8_t *addr;
    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)(const void *)peer)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
        addr = a6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            addr += 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < settings->ntransfer_allow; i++) {
        const struct config_prefix *p = &settings->transfer_allow[i];
        if (p->family == family && same_bits(p->addr, addr, p->bits))
            return true;
    }
    return false;
}
