/* zone_walk.c -- the zone's records one by one, whole, as a zone transfer carries them. */
#include "svcmapd/zone_walk.h"

#include <ldns/ldns.h>
#include <netinet/in.h>
#include <string.h>

#include "svcmapd/wire.h"
#include "zone_impl.h"

/*
 * A walk reads the zone as queries do, name by name through the table,
 * and takes of each name the sets a query for one of its types would get
 * as the first set of its answer, when they are of that type and so its
 * own: the CNAME plan's CNAME, not the CNAME an A query gets before the
 * chain; the A plan's A records, which hold every target (a health-checked
 * plan keeps them all and picks per query). Endpoint names are no names
 * of the table but records of their service: they are written from its A
 * and AAAA sets. The table's order is the hash's: a transfer is a set of
 * records, in no order but the SOA's (RFC 5936 §2.2).
 */

/* The sets of a name, in the order written: its own RRsets of these types,
 * then the endpoint names of its A records, then of its AAAA records. */
static const uint16_t step_types[] = {LDNS_RR_TYPE_NS,    LDNS_RR_TYPE_A,   LDNS_RR_TYPE_AAAA,
                                      LDNS_RR_TYPE_CNAME, LDNS_RR_TYPE_SRV, LDNS_RR_TYPE_TXT};
#define TYPE_STEPS (sizeof(step_types) / sizeof(step_types[0]))
#define STEPS      (TYPE_STEPS + 2)

/* The stored owner of the record at data[at] ends where its type begins:
 * the offset of the type, or 0 if the set is not what the builder writes. */
static size_t after_owner(const struct zone_rrset *r, size_t at)
{
    size_t pos = wire_skip_name(zone_rrset_data(r), r->len, at, NULL);
    return pos && r->len - pos >= 10 ? pos : 0;
}

/* The RRset `n` owns of `type`: the first answer set of the plan a query
 * for the type gets, if it is of the type. NULL if none. */
static const struct zone_rrset *own_set(const struct znode *n, uint16_t type)
{
    uint8_t bit = type_bit(type);
    for (uint8_t i = 0; i < n->nplans; i++) {
        const struct zone_plan *p = n->plans[i];
        if (!(p->types & bit))
            continue;
        if (p->nsets[ZONE_ANSWER] == 0 || p->sets[0]->count == 0)
            return NULL;
        size_t pos = after_owner(p->sets[0], 0);
        return pos && ldns_read_uint16(zone_rrset_data(p->sets[0]) + pos) == type ? p->sets[0]
                                                                                  : NULL;
    }
    return NULL;
}

/* Copies the name at d[pos] (`len` bytes in all) to out[*n], whole: its
 * labels, then the end of the name, the apex when it ends in the apex slot
 * (0xc000, as zone_rrset.c leaves it) and `owner` when it points to the
 * question (0xc000 | 12: the name the set answers). Returns the offset
 * after it in d, or 0 if it is malformed. */
static size_t put_whole_name(const struct zone *z, const uint8_t *owner, size_t owner_len,
                             const uint8_t *d, size_t len, size_t pos, uint8_t *out, size_t *n)
{
    size_t start = *n;
    for (;;) {
        if (pos >= len)
            return 0;
        uint8_t l = d[pos];
        if ((l & 0xc0) == 0xc0) {
            if (pos + 2 > len)
                return 0;
            uint16_t ptr = ldns_read_uint16(d + pos) & 0x3fff;
            const uint8_t *tail = ptr == 0 ? z->apex : ptr == LDNS_HEADER_SIZE ? owner : NULL;
            size_t tail_len = ptr == 0 ? z->apex_len : owner_len;
            if (!tail || *n - start + tail_len > LDNS_MAX_DOMAINLEN + 1)
                return 0;
            memcpy(out + *n, tail, tail_len);
            *n += tail_len;
            return pos + 2;
        }
        if (l > 63 || pos + 1 + l > len || *n - start + 1 + l > LDNS_MAX_DOMAINLEN + 1)
            return 0;
        memcpy(out + *n, d + pos, (size_t)l + 1);
        *n += (size_t)l + 1;
        pos += (size_t)l + 1;
        if (l == 0)
            return pos;
    }
}

/*
 * Writes the record at offset *at of set `r` at `out`, owned by `owner`,
 * every name in its RDATA whole: the names of NS, CNAME, SOA and SRV
 * records (the only ones the zone has), which in the zone end in slots
 * for the apex. SRV targets must not be compressed at all (RFC 2782), and
 * a record of its own carries no message to point into. Moves *at to the
 * next record. Returns the length, 0 if the set is malformed.
 */
static size_t put_record(const struct zone *z, const struct zone_rrset *r, size_t *at,
                         const uint8_t *owner, size_t owner_len, uint8_t *out)
{
    const uint8_t *d = zone_rrset_data(r);
    size_t pos = after_owner(r, *at);
    if (pos == 0)
        return 0;
    uint16_t type = ldns_read_uint16(d + pos);
    size_t rdlen = ldns_read_uint16(d + pos + 8);
    size_t rdata = pos + 10, end = rdata + rdlen;
    if (end > r->len)
        return 0;
    memcpy(out, owner, owner_len);
    memcpy(out + owner_len, d + pos, 8); /* type, class, TTL */
    size_t n = owner_len + 10;

    size_t fixed = 0, names = 0, tail = 0; /* RDATA: fixed bytes, names, fixed bytes */
    switch (type) {
    case LDNS_RR_TYPE_NS:
    case LDNS_RR_TYPE_CNAME:
        names = 1;
        break;
    case LDNS_RR_TYPE_SOA:
        names = 2;
        tail = 20;
        break;
    case LDNS_RR_TYPE_SRV:
        fixed = 6;
        names = 1;
        break;
    default:
        fixed = rdlen;
        break;
    }
    if (fixed > rdlen)
        return 0;
    memcpy(out + n, d + rdata, fixed);
    n += fixed;
    pos = rdata + fixed;
    for (size_t i = 0; i < names && pos; i++)
        pos = put_whole_name(z, owner, owner_len, d, end, pos, out, &n);
    if (pos == 0 || end - pos != tail)
        return 0;
    memcpy(out + n, d + pos, tail);
    n += tail;
    ldns_write_uint16(out + owner_len + 8, (uint16_t)(n - owner_len - 10));
    *at = end;
    return n;
}

/* The record of an endpoint name: the A or AAAA record at offset *at of
 * its service's set (owner, fields, one address), owned by
 * <dashed address>.<service>. Moves *at on. 0 if malformed. */
static size_t put_endpoint(const struct znode *service, const struct zone_rrset *r, size_t *at,
                           uint8_t *out)
{
    const uint8_t *d = zone_rrset_data(r);
    size_t pos = after_owner(r, *at);
    size_t rdlen = pos ? ldns_read_uint16(d + pos + 8) : 0;
    if (pos == 0 || (rdlen != 4 && rdlen != 16) || pos + 10 + rdlen > r->len)
        return 0;
    struct config_target t = {.family = rdlen == 4 ? AF_INET : AF_INET6};
    memcpy(t.addr, d + pos + 10, rdlen);
    char label[64];
    size_t l = dashed_label(&t, label);
    if (1 + l + service->len > LDNS_MAX_DOMAINLEN)
        return 0;
    out[0] = (uint8_t)l;
    memcpy(out + 1, label, l);
    memcpy(out + 1 + l, node_name(service), service->len);
    size_t n = 1 + l + service->len;
    memcpy(out + n, d + pos, 10 + rdlen);
    *at = pos + 10 + rdlen;
    return n + 10 + rdlen;
}

/* Whether the node at a slot has records a walk writes: not an empty
 * name, nor the node of an endpoint name that a CNAME points at (its
 * record is written with its service's). */
static bool walked(const struct zone *z, const struct znode *n)
{
    if (n->nplans == 0)
        return false;
    if (n->flags & NODE_SERVICE)
        return true;
    uint8_t addr[16];
    int size;
    return endpoint_service(z, node_name(n), n->len, addr, &size) == NULL;
}

/* The set of step `step` of node `n`, or NULL. */
static const struct zone_rrset *step_set(const struct znode *n, unsigned step)
{
    if (step < TYPE_STEPS)
        return own_set(n, step_types[step]);
    if (!(n->flags & NODE_ENDPOINTS))
        return NULL;
    return own_set(n, step == TYPE_STEPS ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA);
}

/* The next node of the walk: a patch's own names, then those of its base
 * that the patch leaves as they are; NULL at the end. */
static const struct znode *next_node(const struct zone *z, struct zone_walk *w)
{
    size_t own = z->mask + 1, all = own + (z->base ? z->base->mask + 1 : 0);
    while (w->slot < all) {
        size_t i = w->slot++;
        const struct znode *n = i < own ? z->slots[i].node : z->base->slots[i - own].node;
        if (!n || !walked(z, n))
            continue;
        if (i < own || zone_node(z, node_name(n), n->len) == n)
            return n;
    }
    return NULL;
}

void zone_walk_start(struct zone_walk *w)
{
    memset(w, 0, sizeof(*w));
}

size_t zone_walk_next(const struct zone *z, struct zone_walk *w, uint8_t *out)
{
    for (;;) {
        if (w->set && w->rec < w->set->count) {
            w->rec++;
            size_t n = w->step < TYPE_STEPS
                           ? put_record(z, w->set, &w->at, node_name(w->node), w->node->len, out)
                           : put_endpoint(w->node, w->set, &w->at, out);
            if (n)
                return n;
            w->rec = w->set->count; /* not the builder's: skip the rest */
            continue;
        }
        w->set = NULL;
        if (w->node && ++w->step < STEPS) {
            w->set = step_set(w->node, w->step);
            w->rec = 0;
            w->at = 0;
            continue;
        }
        w->node = next_node(z, w);
        if (!w->node)
            return 0;
        w->step = 0;
        w->set = step_set(w->node, 0);
        w->rec = 0;
        w->at = 0;
    }
}

size_t zone_walk_soa(const struct zone *z, uint8_t *out)
{
    const struct znode *apex = zone_node(z, z->apex, z->apex_len);
    const struct zone_rrset *soa = apex ? own_set(apex, LDNS_RR_TYPE_SOA) : NULL;
    size_t at = 0;
    return soa ? put_record(z, soa, &at, z->apex, z->apex_len, out) : 0;
}
