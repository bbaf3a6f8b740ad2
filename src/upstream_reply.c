/* upstream_reply.c -- an upstream's reply checked, and its records kept in wire form. */
#include <stdlib.h>
#include <string.h>

#include "svcmapd/clock.h"
#include "svcmapd/wire.h"
#include "upstream_impl.h"

/*
 * Answers: the target's CNAME chain as the upstream gives it (at most 10
 * links, each owned by the name the previous one points to), then the
 * records of the asked type at the end of the chain. Records that do not
 * belong to that chain are dropped, whatever the upstream sends. A link to
 * a name of our own zone ends what is taken: what the upstream says about
 * our names is never believed, and the answer goes on from the mapping
 * there (answer.c). A chain that ends in a CNAME without records of the
 * type is kept as it is: the links are data, the end a negative answer.
 *
 * An answer is kept whole, up to what a TCP reply can carry (owner names
 * compressed: a record of an RRset of 700 addresses costs 16 bytes); a
 * bigger one fails the lookup, as a broken reply does, never cut short.
 */

static bool same_name(const ldns_rdf *rdf, const uint8_t *name, size_t len)
{
    if (ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME || ldns_rdf_size(rdf) != len)
        return false;
    const uint8_t *d = ldns_rdf_data(rdf);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = d[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != name[i])
            return false;
    }
    return true;
}

static size_t lower_name(const ldns_rdf *rdf, uint8_t *out)
{
    size_t len = ldns_rdf_size(rdf);
    const uint8_t *d = ldns_rdf_data(rdf);
    for (size_t i = 0; i < len; i++)
        out[i] = (d[i] >= 'A' && d[i] <= 'Z') ? (uint8_t)(d[i] + 32) : d[i];
    return len;
}

/* Whether `rr` is a record of type `qtype` at the chain's end, `cur`. */
static bool at_the_end(const ldns_rr *rr, uint16_t qtype, const uint8_t *cur, size_t clen)
{
    return ldns_rr_get_type(rr) == qtype && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
           ldns_rr_rd_count(rr) >= 1 && same_name(ldns_rr_owner(rr), cur, clen);
}

/* How long a negative answer holds: negative-ttl at most, less if the SOA
 * in the authority section says so (RFC 2308 §5). */
static uint32_t negative_ttl(const struct upstream_lookup *l, const ldns_pkt *p)
{
    uint32_t ttl = l->set.negative_ttl;
    const ldns_rr_list *ns = ldns_pkt_authority(p);
    for (size_t i = 0; i < ldns_rr_list_rr_count(ns); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ns, i);
        if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7) {
            uint32_t min = ldns_rdf2native_int32(ldns_rr_rdf(rr, 6));
            uint32_t soa = ldns_rr_ttl(rr) < min ? ldns_rr_ttl(rr) : min;
            ttl = soa < ttl ? soa : ttl;
        }
    }
    return ttl;
}

/* Appends `rr` to `b` in wire form: its owner in full, or a 2-byte
 * compression pointer that the answer sets per reply. Returns false when
 * out of memory; *ttl_at and *rdata_at say where its TTL and rdata are. */
static bool put_record(ldns_buffer *b, const ldns_rr *rr, bool owner, size_t *ttl_at,
                       size_t *rdata_at)
{
    if (owner ? ldns_dname2buffer_wire(b, ldns_rr_owner(rr)) != LDNS_STATUS_OK
              : !ldns_buffer_reserve(b, 2))
        return false;
    if (!owner)
        ldns_buffer_write_u16(b, 0xc000);
    if (!ldns_buffer_reserve(b, 10))
        return false;
    ldns_buffer_write_u16(b, (uint16_t)ldns_rr_get_type(rr));
    ldns_buffer_write_u16(b, LDNS_RR_CLASS_IN);
    *ttl_at = ldns_buffer_position(b);
    ldns_buffer_write_u32(b, 0); /* per reply */
    size_t rdlen_at = ldns_buffer_position(b);
    ldns_buffer_write_u16(b, 0);
    *rdata_at = ldns_buffer_position(b);
    if (ldns_rr_rdata2buffer_wire(b, rr) != LDNS_STATUS_OK)
        return false;
    ldns_buffer_write_u16_at(b, rdlen_at, (uint16_t)(ldns_buffer_position(b) - *rdata_at));
    return true;
}

static bool store_failed(struct upstream_lookup *l, enum why why, uint32_t detail, void *a,
                         ldns_buffer *b)
{
    l->why = why;
    l->detail = detail;
    free(a);
    ldns_buffer_free(b);
    return false;
}

/* What an answer holds for the entry's question: the CNAME chain from it,
 * then the records of the asked type at the chain's end. */
struct chain {
    const ldns_rr *link[MAX_CHAIN];
    size_t links;
    size_t n;     /* records kept: the links, then those at the end */
    bool in_zone; /* a link points into our own zone: nothing from there on */
    uint8_t end[LDNS_MAX_DOMAINLEN + 1]; /* the chain's end, lower case */
    size_t end_len;
};

/* Follows the CNAME chain from the question through `an`, keeping only
 * what hangs on it, and nothing from a link into our own zone on. */
static void follow_chain(const struct upstream_lookup *l, const ldns_rr_list *an, struct chain *c)
{
    size_t total = ldns_rr_list_rr_count(an);
    c->links = 0;
    c->in_zone = false;
    c->end_len = l->e->len;
    memcpy(c->end, l->e->name, c->end_len);
    while (c->links < MAX_CHAIN && !c->in_zone) {
        const ldns_rr *next = NULL;
        for (size_t i = 0; i < total && !next; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(an, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
                ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN && ldns_rr_rd_count(rr) == 1 &&
                same_name(ldns_rr_owner(rr), c->end, c->end_len))
                next = rr;
        }
        if (!next)
            break;
        c->link[c->links++] = next;
        c->end_len = lower_name(ldns_rr_rdf(next, 0), c->end);
        c->in_zone = wire_name_in(c->end, c->end_len, l->set.apex, l->set.apex_len);
    }
    c->n = c->links;
    for (size_t i = 0; i < total && !c->in_zone; i++)
        c->n += at_the_end(ldns_rr_list_rr(an, i), l->e->qtype, c->end, c->end_len);
}

/* Writes the n records of `c` to `b` in wire form, their TTLs (capped)
 * to ttl[], where each TTL sits to ttl_at[], where each owner's name
 * starts to name_at[] (upstream.h), and lowers *min_ttl to the smallest.
 * Returns where the last owner's name starts, or -1 with l->why set. */
static long encode_chain(struct upstream_lookup *l, const ldns_rr_list *an, const struct chain *c,
                         ldns_buffer *b, uint32_t *ttl, uint16_t *ttl_at, uint16_t *name_at,
                         uint32_t *min_ttl)
{
    size_t owner = 0; /* where the name the next record is owned by starts */
    size_t next = 0;  /* the answer record to look at for the end's */
    for (size_t k = 0; k < c->n; k++) {
        const ldns_rr *rr = k < c->links ? c->link[k] : NULL;
        while (!rr) {
            rr = ldns_rr_list_rr(an, next++);
            rr = at_the_end(rr, l->e->qtype, c->end, c->end_len) ? rr : NULL;
        }
        size_t at, rdata;
        if (!put_record(b, rr, k == 0, &at, &rdata)) {
            l->why = WHY_MEMORY;
            l->detail = 0;
            return -1;
        }
        if (ldns_buffer_position(b) > MAX_DATA) {
            l->why = WHY_TOO_BIG;
            l->detail = MAX_DATA;
            return -1;
        }
        ttl[k] = ldns_rr_ttl(rr) < MAX_TTL ? ldns_rr_ttl(rr) : MAX_TTL;
        *min_ttl = ttl[k] < *min_ttl ? ttl[k] : *min_ttl;
        ttl_at[k] = (uint16_t)at;
        name_at[k] = (uint16_t)owner;
        if (k < c->links)
            owner = rdata; /* the next record is owned by this one's target */
    }
    return (long)owner;
}

/* Stores the answer of `p` to the entry's question. Returns false if it is
 * no use (then another server is tried), with the reason in l->why. */
static bool store_answer(struct upstream_lookup *l, const ldns_pkt *p)
{
    struct entry *e = l->e;
    const ldns_rr_list *an = ldns_pkt_answer(p);
    struct chain c;
    follow_chain(l, an, &c);
    size_t n = c.n;

    uint64_t now = clock_ms();
    uint32_t neg = negative_ttl(l, p);
    if (n == 0) {
        /* NXDOMAIN or NODATA: negative, as long as the SOA allows (RFC 2308
         * §5) and no longer than negative-ttl. */
        entry_drop_data(e);
        e->neg_until = now + neg * 1000ULL;
        return true;
    }

    /* The records in wire form, and where each one's TTL and owner are. */
    size_t arrays = n * (sizeof(uint32_t) + 2 * sizeof(uint16_t));
    uint8_t *a = malloc(arrays);
    ldns_buffer *b = ldns_buffer_new(512);
    if (!a || !b)
        return store_failed(l, WHY_MEMORY, 0, a, b);
    uint32_t *ttl = (uint32_t *)(void *)a;
    uint16_t *ttl_at = (uint16_t *)(void *)(a + n * sizeof(uint32_t));
    uint16_t *name_at = ttl_at + n;
    /* A dangling chain (no records at its end) lives as long as its end is
     * known not to have any. */
    uint32_t min_ttl = c.links < n || c.in_zone ? MAX_TTL : (neg < MAX_TTL ? neg : MAX_TTL);
    long owner = encode_chain(l, an, &c, b, ttl, ttl_at, name_at, &min_ttl);
    if (owner < 0)
        return store_failed(l, l->why, l->detail, a, b);
    size_t dlen = ldns_buffer_position(b);
    uint8_t *block = malloc(arrays + dlen + 1);
    if (!block)
        return store_failed(l, WHY_MEMORY, 0, a, b);
    entry_drop_data(e);
    memcpy(block, a, arrays);
    memcpy(block + arrays, ldns_buffer_begin(b), dlen);
    free(a);
    ldns_buffer_free(b);
    e->ttl = (uint32_t *)(void *)block;
    e->ttl_at = (uint16_t *)(void *)(block + n * sizeof(uint32_t));
    e->name_at = e->ttl_at + n;
    e->data = block + arrays;
    e->dlen = dlen;
    e->count = (uint16_t)n;
    e->links = (uint16_t)c.links;
    e->zone_at = c.in_zone ? (uint16_t)owner : 0;
    e->name_max = (uint16_t)owner;
    e->apex_hash = l->set.apex_hash;

    e->fetched = now;
    e->expires = now + min_ttl * 1000ULL;
    e->has_data = true;
    e->neg_until = 0;
    return true;
}

enum verdict reply_useless(struct upstream_lookup *l, enum why why, uint32_t detail)
{
    l->why = why;
    l->detail = detail;
    return V_NEXT;
}

enum verdict reply_check(struct upstream_lookup *l, const uint8_t *buf, size_t len)
{
    ldns_pkt *p = NULL;
    /* We sign nothing, so a reply with TSIG records is not ours; and
     * libldns can leak one (wire.h), which a bad upstream or a forger
     * could repeat until we run out of memory. */
    int tsigs = wire_count_type(buf, len, LDNS_RR_TYPE_TSIG);
    if (tsigs > 0)
        return reply_useless(l, WHY_TSIG, 0);
    if (tsigs < 0 || ldns_wire2pkt(&p, buf, len) != LDNS_STATUS_OK)
        return reply_useless(l, WHY_UNREADABLE, 0);
    enum verdict v = V_DONE;
    const ldns_rr_list *q = ldns_pkt_question(p);
    if (ldns_pkt_id(p) != l->id || !ldns_pkt_qr(p) || ldns_rr_list_rr_count(q) != 1 ||
        ldns_rr_get_type(ldns_rr_list_rr(q, 0)) != l->e->qtype ||
        !same_name(ldns_rr_owner(ldns_rr_list_rr(q, 0)), l->e->name, l->e->len)) {
        v = V_IGNORE; /* a late answer to an earlier attempt, or a forgery */
    } else if (ldns_pkt_tc(p)) {
        v = V_TCP;
    } else if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR &&
               ldns_pkt_get_rcode(p) != LDNS_RCODE_NXDOMAIN) {
        /* SERVFAIL, REFUSED...: maybe another server knows */
        v = reply_useless(l, WHY_RCODE, ldns_pkt_get_rcode(p));
    } else if (!store_answer(l, p)) {
        v = V_NEXT;
    }
    ldns_pkt_free(p);
    return v;
}
