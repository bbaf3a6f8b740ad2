/* zone_impl.h -- the zone's insides, shared by the files that find, compile and write it. */
#ifndef SVCMAPD_ZONE_IMPL_H
#define SVCMAPD_ZONE_IMPL_H

/*
 * Private to the zone: answer.c and the rest see only svcmapd/zone.h.
 * zone.c finds names; zone_compile.c builds the zone, zone_services.c its
 * services (the compiler's own state is in zone_compile.h); zone_rrset.c
 * writes its records. What a query or the compiler's millions of inserts
 * call (hashing, the table's probe walk, wire_name_in, the builder's
 * smallest writers) is static inline here, so splitting the file cost no
 * call.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ldns/ldns.h>

#include "svcmapd/config.h"
#include "svcmapd/wire.h"
#include "svcmapd/zone.h"

struct arena;

/* ---------------------------------------------------------------------- */
/* The zone's layout.                                                      */

enum node_flag {
    NODE_IN_ZONE = 0x01,   /* below the apex: plans may hold apex slots */
    NODE_SERVICE = 0x08,   /* <svc>.<ns>.svc.<zone>: carries a fingerprint */
    NODE_ENDPOINTS = 0x10, /* a service of several addresses: its endpoint
                            * names are answered from its own records */
    /* A service whose SRV name is _<name>._tcp (_udp, _sctp).<svc>: then
     * _tcp.<svc> exists, empty (find_empty_parent()) */
    NODE_SRV_TCP = 0x02,
    NODE_SRV_UDP = 0x04,
    NODE_SRV_SCTP = 0x20,
    /* Taken into another name's answers: an in-zone CNAME points at it,
     * at one of its endpoints or at its SRV name. A patch (zone_patch.c)
     * cannot change it without the names whose chains hold it. */
    NODE_TARGETED = 0x40,
    NODE_CHECKED = 0x80, /* a health-checked service (SPEC §6) */
};

/* znode.info of a tombstone: a name of a patch's base that the patch
 * removes (zone_patch.c). It has no plans. */
#define NODE_GONE UINT32_MAX

/* The flag of an SRV protocol label ("tcp", 3 bytes), or 0. */
static inline uint8_t proto_flag(const uint8_t *label, size_t len)
{
    if (len == 3 && memcmp(label, "tcp", 3) == 0)
        return NODE_SRV_TCP;
    if (len == 3 && memcmp(label, "udp", 3) == 0)
        return NODE_SRV_UDP;
    if (len == 4 && memcmp(label, "sctp", 4) == 0)
        return NODE_SRV_SCTP;
    return 0;
}

/* The query types a plan answers, as bits of zone_plan.types. */
enum {
    TYPE_A = 1,
    TYPE_AAAA = 2,
    TYPE_CNAME = 4,
    TYPE_SRV = 8,
    TYPE_TXT = 16,
    TYPE_PTR = 32,
    TYPE_SOA = 64,
    TYPE_NS = 128,
};

static inline uint8_t type_bit(uint16_t qtype)
{
    switch (qtype) {
    case LDNS_RR_TYPE_A:
        return TYPE_A;
    case LDNS_RR_TYPE_AAAA:
        return TYPE_AAAA;
    case LDNS_RR_TYPE_CNAME:
        return TYPE_CNAME;
    case LDNS_RR_TYPE_SRV:
        return TYPE_SRV;
    case LDNS_RR_TYPE_TXT:
        return TYPE_TXT;
    case LDNS_RR_TYPE_PTR:
        return TYPE_PTR;
    case LDNS_RR_TYPE_SOA:
        return TYPE_SOA;
    case LDNS_RR_TYPE_NS:
        return TYPE_NS;
    default:
        return 0;
    }
}

/* A name of the zone: its plans, then its name in wire form, in one piece
 * (millions of them: every byte counts, and a lookup touches one place). */
struct znode {
    uint64_t fp;   /* services: what they answer, to count changes on reload */
    uint32_t info; /* while compiling: index of its struct info; then, of a
                    * service, its place in zone.services */
    uint8_t len;
    uint8_t flags;
    uint8_t nplans;
    uint8_t cap;
    const struct zone_plan *plans[]; /* the first one also answers ANY (RFC 8482) */
};

static inline const uint8_t *node_name(const struct znode *n)
{
    return (const uint8_t *)&n->plans[n->cap];
}

struct slot {
    uint64_t hash;
    struct znode *node;
};

/* A reverse zone of [server] reverse (SPEC §2.5): every name in it is
 * answered, from the table of PTRs. */
struct zone_rev {
    uint8_t apex[80]; /* wire form, lower case (74 bytes at most: a /128) */
    size_t apex_len;
    int size;           /* of its addresses: 4 or 16 */
    int units;          /* octets (IPv4) or nibbles (IPv6) of its prefix */
    uint8_t prefix[16]; /* zero past them */
    const struct zone_plan *soa, *ns, *nxdomain, *nodata;
};

struct zone {
    /* A patch (zone_patch.c) holds the names that differ from its `base`,
     * a zone compiled whole that it shares and keeps alive: its table
     * first, then the base's. `refs` counts the zone's holders: its own
     * and its patches'. */
    const struct zone *base;
    _Atomic size_t refs;
    struct arena *arena;
    uint64_t id; /* zone_id() */
    uint64_t seed;
    struct slot *slots;
    size_t mask;
    uint8_t apex[LDNS_MAX_DOMAINLEN + 1];
    size_t apex_len;

    const struct zone_plan *nxdomain;
    const struct zone_plan *nodata;      /* in the zone */
    const struct zone_plan *nodata_rev4; /* at a mapped in-addr.arpa name */
    const struct zone_plan *nodata_rev6;
    const struct zone_plan *found_plan; /* NOERROR, its answer in zone_found */
    struct zone_ptr *rev4, *rev6;       /* sorted by address */
    size_t nrev4, nrev6;
    struct zone_rev *revs; /* none holds another */
    size_t nrevs;
    const struct zone_plan *refused;

    struct zone_settings settings;
    struct upstream_settings upstream; /* settings.upstream, when there are servers */
    char name[LDNS_MAX_DOMAINLEN + 1];

    /* Where each SOA's serial is in its record: the zone's, its reverse
     * zones', and their copies in negative answers. Written once the
     * changes are known, and by zone_continue_serial() before publication. */
    uint8_t *serial_slots[3 + CONFIG_MAX_REVERSE];
    uint32_t nserial_slots;
    /* health-checked services (SPEC §6): zone_checks.c builds them,
     * zone_view.c reads them per query */
    struct zone_probe *probes; /* sorted by zone_probe_key_cmp() */
    size_t nprobes;
    struct zone_checked **checked; /* in the order of the file */
    size_t nchecked;
    struct zone_health health;

    uint64_t settings_fp;    /* zone, ttl, listen: what is not in a service */
    struct znode **services; /* in the order of the file, for the next reload */
    size_t nservices;
    struct znode **namespaces; /* <ns>.svc.<zone> of each [namespace] */
    size_t nnamespaces;
    uint64_t digest_sum; /* the sum of its services' parts of stats.digest */
    bool shares_probes;  /* a patch: probes and checked are its base's */

    struct zone_stats stats;
};

/* ---------------------------------------------------------------------- */
/* Checked plans (SPEC §6).                                                */

/* A set of records of a checked service's targets: which target each
 * record is, in the order of the set. */
struct check_set {
    bool srv; /* SRV records: their weights are shared among those answered */
    uint8_t count;
    uint8_t target[]; /* per record, its index in zone_checked.t[] */
};

/* What a checked plan (zone_plan.checked) keeps behind its sets and its
 * external slot: its service; the targets its sets hold (those of one
 * family, for A and AAAA), a bit each; the plan as it answers with each of
 * them alone, by target, and for failover at [svc->ntargets] with all of
 * them in file order; and per set of the plan its check_set, NULL for a
 * set that is not of the service (the CNAMEs of a chain). */
struct plan_checks {
    const struct zone_checked *svc;
    uint64_t targets;
    const struct zone_plan *const *alone;
    const struct check_set *set[];
};

/* The records of `set` that hold the targets of `targets`, a bit each
 * (record i is bit i). */
static inline uint64_t check_set_records(const struct check_set *set, uint64_t targets)
{
    uint64_t sel = 0;
    for (uint8_t i = 0; i < set->count; i++)
        sel |= (targets >> set->target[i] & 1) << i;
    return sel;
}

/* A set of the records `sel` of `r` (record i is bit i), in their order,
 * with SRV weights shared among them when `srv` (SPEC §2.4: 100, 50,
 * 33...); a set shuffled per query stays so unless `ordered`. zone_view.c
 * writes them per query, zone_checks.c at compile time: rrset_pick_size()
 * bytes at `mem`, 8-aligned. */
size_t rrset_pick_size(const struct zone_rrset *r, uint64_t sel, bool ordered);
const struct zone_rrset *rrset_pick(void *mem, const struct zone_rrset *r, uint64_t sel,
                                    bool ordered, bool srv);

static inline const struct plan_checks *plan_checks(const struct zone_plan *p)
{
    const void *slot =
        &p->sets[p->nsets[0] + p->nsets[1] + p->nsets[2] + (p->has_external ? 1 : 0)];
    return *(const struct plan_checks *const *)slot;
}

/* ---------------------------------------------------------------------- */
/* Hashing: names come from the network, so the hash is seeded per zone.   */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static inline uint64_t hash_bytes(uint64_t seed, const uint8_t *p, size_t n)
{
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    return mix64(h ^ w ^ ((uint64_t)n << 56));
}

/* A service's part of its zone's digest (zone_stats.digest): its name
 * and fingerprint, with a fixed seed, unlike the table's: digests outlive
 * the process. */
static inline uint64_t service_digest(const struct znode *n)
{
    return mix64(hash_bytes(9, node_name(n), n->len) ^ n->fp);
}

/* ---------------------------------------------------------------------- */
/* The table of names (zone.c).                                            */

/* `n` zeroed slots; NULL when out of memory. Free with slots_free(). */
struct slot *slots_new(size_t n);
void slots_free(struct slot *slots, size_t n);

/* The slot of `name` (`h` its hash), or the empty one where it would go:
 * one walk of the probe sequence, for lookups and inserts alike. */
static inline struct slot *table_slot(const struct zone *z, const uint8_t *name, size_t len,
                                      uint64_t h)
{
    for (size_t i = h & z->mask;; i = (i + 1) & z->mask) {
        struct slot *s = &z->slots[i];
        if (!s->node ||
            (s->hash == h && s->node->len == len && memcmp(node_name(s->node), name, len) == 0))
            return s;
    }
}

static inline struct znode *node_lookup(const struct zone *z, const uint8_t *name, size_t len)
{
    return table_slot(z, name, len, hash_bytes(z->seed, name, len))->node;
}

/* Whether `name` is _<label>._<proto>.<service>: an SRV name, which
 * belongs to its service. */
static inline bool srv_shaped(const uint8_t *name, size_t len)
{
    size_t l = name[0];
    return l > 1 && name[1] == '_' && 1 + l < len && name[1 + l] > 1 && name[2 + l] == '_';
}

/* Where an SRV name's service starts in it. */
static inline size_t srv_service_at(const uint8_t *name)
{
    size_t l = name[0];
    return 1 + l + 1 + name[1 + l];
}

/* The node of `name` in `z`, a patch or not: what queries find. A patch
 * shares its base's seed, so the name is hashed once. A base's SRV name
 * whose service the patch holds went with it. */
static inline struct znode *zone_node(const struct zone *z, const uint8_t *name, size_t len)
{
    uint64_t h = hash_bytes(z->seed, name, len);
    struct znode *n = table_slot(z, name, len, h)->node;
    if (!z->base)
        return n;
    if (n)
        return n->info == NODE_GONE ? NULL : n;
    n = table_slot(z->base, name, len, h)->node;
    if (n && srv_shaped(name, len)) {
        size_t at = srv_service_at(name);
        if (node_lookup(z, name + at, len - at))
            return NULL;
    }
    return n;
}

/* The PTRs of `addr` in the table of `size`-byte addresses (4 or 16) of
 * `z` alone (a patch's own, or a whole zone's): `*n` of them; a patch's
 * marker of an address it removes (a NULL target) counts as one
 * (zone.c). */
const struct zone_ptr *ptr_run(const struct zone *z, int size, const uint8_t addr[16], size_t *n);

/* Endpoint names (zone.c): the label of an address, and the service whose
 * endpoint a name is. */
size_t dashed_label(const struct config_target *t, char *out);
struct znode *endpoint_service(const struct zone *z, const uint8_t *name, size_t len,
                               uint8_t addr[16], int *size);

/* ---------------------------------------------------------------------- */
/* Building records in wire form (zone_rrset.c).                           */

/*
 * One RRset at a time: b_reset(), then for each record b_rr_begin(), its
 * RDATA (b_bytes(), b_u16(), b_u32(), b_name()) and b_rr_end(); then
 * b_finish() copies the set into the zone. A set larger than a message
 * or with more than MAX_FIX apex slots overflows, and b_finish() gives
 * NULL for it.
 */

#define MAX_FIX 4096

enum owner_kind {
    OWNER_QNAME, /* pointer to the question name: echoes its case */
    OWNER_REL,   /* labels, then a pointer to the apex in the question */
    OWNER_ABS,   /* a whole name, uncompressed */
};

struct owner {
    enum owner_kind kind;
    const uint8_t *wire; /* REL: labels without the apex; ABS: whole name */
    size_t len;
};

struct builder {
    uint8_t buf[65535];
    size_t len;
    uint16_t fix[MAX_FIX];
    size_t nfix;
    uint16_t count;
    size_t rr_start, rr_fix, rdata;
    size_t first_len, first_nfix;
    bool uniform;
    bool overflow;
};

/* The smallest writers are inline: the compiler calls them for every field
 * of millions of records. */
static inline void b_reset(struct builder *b)
{
    b->len = 0;
    b->nfix = 0;
    b->count = 0;
    b->uniform = true;
    b->overflow = false;
}

static inline void b_bytes(struct builder *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->overflow || b->len + n > sizeof(b->buf)) {
        b->overflow = true;
        return;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static inline void b_u16(struct builder *b, uint16_t v)
{
    uint8_t x[2];
    ldns_write_uint16(x, v);
    b_bytes(b, x, 2);
}

static inline void b_u32(struct builder *b, uint32_t v)
{
    uint8_t x[4];
    ldns_write_uint32(x, v);
    b_bytes(b, x, 4);
}

void b_name(struct builder *b, const struct owner *o);
void b_rr_begin(struct builder *b, const struct owner *o, uint16_t type, uint32_t ttl);
void b_rr_end(struct builder *b);
const struct zone_rrset *b_finish(struct zone *z, struct builder *b, bool shuffle);

#endif
