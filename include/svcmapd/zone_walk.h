/* zone_walk.h -- the zone's records one by one, whole, as a zone transfer carries them. */
#ifndef SVCMAPD_ZONE_WALK_H
#define SVCMAPD_ZONE_WALK_H

#include <stddef.h>
#include <stdint.h>

struct zone;
struct zone_rrset;
struct znode;

/*
 * A zone holds its records as answers, with owner names that point into
 * the question and names that end in slots for the apex. A walk writes
 * them out as records of their own: the owner and every name in the RDATA
 * written whole, in lower case. What it gives is what the zone's names
 * answer (SPEC §8): the SOA (zone_walk_soa(), for the first and the last
 * record of a transfer), the apex NS, ns.dns's addresses, the dns-version
 * TXT, and of each service its CNAME as written (not the chain behind it),
 * or its A and AAAA records, every target whatever health checks say, its
 * SRV records at its name and at its SRV name, and each endpoint name's
 * address. Not the PTRs: reverse names belong to other zones.
 */

/* The longest record a walk writes: an owner of 255 bytes, 10 of type,
 * class, TTL and RDLENGTH, and an SOA's two names and 20 bytes. */
#define ZONE_RECORD_MAX 800

/* Where a walk is: zeroed by zone_walk_start(), then the walk's own. */
struct zone_walk {
    size_t slot;              /* the next slot of the zone's table */
    const struct znode *node; /* the name being written; NULL: the next one */
    unsigned step;            /* which of its sets */
    const struct zone_rrset *set;
    uint16_t rec; /* the next record of `set` */
    size_t at;    /* where it starts in the set's data */
};

void zone_walk_start(struct zone_walk *w);

/* Writes the next record of `z` at `out` (ZONE_RECORD_MAX bytes): owner,
 * type, class, TTL, RDLENGTH and RDATA, no name compressed. Returns its
 * length; 0 once every record was written. `z` must not change during the
 * walk (it never does: hold it, zone_ref.h). */
size_t zone_walk_next(const struct zone *z, struct zone_walk *w, uint8_t *out);

/* The zone's SOA record, the same way. */
size_t zone_walk_soa(const struct zone *z, uint8_t *out);

#endif
