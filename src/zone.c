/* zone.c -- finds names in the compiled zone: its table, what a query finds, its accessors. */
#include "svcmapd/zone.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "svcmapd/arena.h"
#include "zone_impl.h"

/* The table is read at random by every query: big ones go on huge pages
 * (where the kernel has them), which cuts TLB misses on lookups and on
 * the millions of inserts of a large compile. */
struct slot *slots_new(size_t n)
{
    size_t bytes = n * sizeof(struct slot);
    if (bytes < (2u << 20))
        return calloc(n, sizeof(struct slot));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

void slots_free(struct slot *slots, size_t n)
{
    size_t bytes = n * sizeof(struct slot);
    if (!slots)
        return;
    if (bytes < (2u << 20))
        free(slots);
    else
        munmap(slots, bytes);
}

/* `192-168-1-10`, `2001-db8--5`: the endpoint label CoreDNS gives an
 * address without a hostname (a trailing '-' gets a '0'). */
size_t dashed_label(const struct config_target *t, char *out)
{
    if (t->family == AF_INET) {
        /* the common case, without inet_ntop's printf, which took 4% of a
         * reload at a million services */
        size_t n = 0;
        for (int i = 0; i < 4; i++) {
            unsigned v = t->addr[i];
            if (i)
                out[n++] = '-';
            if (v >= 100)
                out[n++] = (char)('0' + v / 100);
            if (v >= 10)
                out[n++] = (char)('0' + v / 10 % 10);
            out[n++] = (char)('0' + v % 10);
        }
        out[n] = '\0';
        return n;
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(t->family, t->addr, text, sizeof(text));
    size_t n = 0;
    for (const char *p = text; *p; p++)
        out[n++] = (*p == ':' || *p == '.') ? '-' : *p;
    if (n && out[n - 1] == '-')
        out[n++] = '0';
    out[n] = '\0';
    return n;
}

/* The address of a dashed endpoint label (dashed_label()), or 0 if the
 * label is not one, written exactly so. */
static int dashed_address(const uint8_t *label, uint8_t addr[16])
{
    size_t l = label[0];
    char text[INET6_ADDRSTRLEN + 2];
    if (l < 3 || l >= sizeof(text))
        return 0;
    struct config_target t = {.family = AF_INET};
    for (size_t i = 0; i < l; i++)
        text[i] = label[1 + i] == '-' ? '.' : (char)label[1 + i];
    text[l] = '\0';
    if (inet_pton(AF_INET, text, t.addr) != 1) {
        t.family = AF_INET6; /* 1--2-3 is 1::2:3 */
        for (size_t i = 0; i < l; i++)
            text[i] = text[i] == '.' ? ':' : text[i];
        if (inet_pton(AF_INET6, text, t.addr) != 1)
            return 0;
    }

    char again[INET6_ADDRSTRLEN + 2];
    if (dashed_label(&t, again) != l || memcmp(again, label + 1, l) != 0)
        return 0; /* 010-0-0-1, 2001-0db8--1: not the name of an endpoint */
    memcpy(addr, t.addr, 16);
    return t.family == AF_INET ? 4 : 16;
}

/* If `name` is <dashed address>.<service of several addresses>: that
 * service, the address in `addr` and its size (4 or 16) in `*size`. Whether
 * the service maps that address is for the caller to find out. */
struct znode *endpoint_service(const struct zone *z, const uint8_t *name, size_t len,
                               uint8_t addr[16], int *size)
{
    size_t l = name[0];
    if (l == 0 || 1 + l >= len)
        return NULL;
    struct znode *service = zone_node(z, name + 1 + l, len - 1 - l);
    if (!service || !(service->flags & NODE_ENDPOINTS))
        return NULL;
    *size = dashed_address(name, addr);
    return *size ? service : NULL;
}

void zone_free(struct zone *z)
{
    if (!z || atomic_fetch_sub(&z->refs, 1) > 1)
        return; /* a patch still uses it */
    struct zone *base = (struct zone *)(uintptr_t)z->base;
    arena_free(z->arena);
    slots_free(z->slots, z->mask + 1);
    free(z);
    zone_free(base);
}

bool zone_is_apex(const struct zone *z, const uint8_t *lname, size_t len)
{
    return len == z->apex_len && memcmp(lname, z->apex, len) == 0;
}

const struct zone_stats *zone_stats(const struct zone *z)
{
    return &z->stats;
}

const struct zone_settings *zone_settings(const struct zone *z)
{
    return &z->settings;
}

const char *zone_name(const struct zone *z)
{
    return z->name;
}

/* Reads the labels of `lname` in front of offset `end` as the units of an
 * address after its first `have`: decimal octets 0-255 without leading
 * zeros for IPv4 (`size` 4), one hex digit per nibble for IPv6; the labels
 * come least significant first (RFC 1035 §3.5, RFC 3596 §2.5). `addr`
 * holds the first units and zeros after them. Returns how many units were
 * read, or -1 if a label is none, or there are more than an address has. */
static int reverse_units(const uint8_t *lname, size_t end, int size, int have, uint8_t addr[16])
{
    int n = 0, max = (size == 4 ? 4 : 32) - have;
    for (size_t pos = 0; pos < end; pos += (size_t)lname[pos] + 1)
        if (++n > max)
            return -1;
    const uint8_t *l = lname;
    for (int i = have + n - 1; i >= have; i--, l += 1 + l[0]) {
        unsigned v = 0;
        if (size == 16) {
            uint8_t ch = l[1];
            v = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                         : 16;
            if (l[0] != 1 || v > 15)
                return -1;
            addr[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
            continue;
        }
        if (l[0] < 1 || l[0] > 3 || (l[0] > 1 && l[1] == '0'))
            return -1; /* no leading zeros: 010 is not 10 */
        for (uint8_t k = 1; k <= l[0]; k++) {
            if (l[k] < '0' || l[k] > '9')
                return -1;
            v = v * 10 + (unsigned)(l[k] - '0');
        }
        if (v > 255)
            return -1;
        addr[i] = (uint8_t)v;
    }
    return n;
}

/* Whether addresses `a` and `b` share their first `units` octets or
 * nibbles. */
static bool same_units(const uint8_t *a, const uint8_t *b, int size, int units)
{
    if (size == 4)
        return memcmp(a, b, (size_t)units) == 0;
    size_t whole = (size_t)units / 2;
    return memcmp(a, b, whole) == 0 && (units % 2 == 0 || (a[whole] >> 4) == (b[whole] >> 4));
}

/* The first PTR of the table of `size`-byte addresses at or after `addr`
 * (binary search); *end is the end of the table. */
static const struct zone_ptr *first_ptr(const struct zone *z, int size, const uint8_t addr[16],
                                        const struct zone_ptr **end)
{
    static const struct zone_ptr none[1];
    const struct zone_ptr *v = size == 4 ? z->rev4 : z->rev6;
    size_t lo = 0, hi = size == 4 ? z->nrev4 : z->nrev6;
    if (!v)
        v = none; /* a table of none: a patch's may be */
    *end = v + hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(v[mid].addr, addr, 16) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return v + lo;
}

const struct zone_ptr *ptr_run(const struct zone *z, int size, const uint8_t addr[16], size_t *n)
{
    const struct zone_ptr *end, *p = first_ptr(z, size, addr, &end), *k = p;
    while (k < end && memcmp(k->addr, addr, 16) == 0)
        k++;
    *n = (size_t)(k - p);
    return p;
}

/* Whether `z` alone maps an address whose first `units` (octets or
 * nibbles) are those of `addr`; with `over`, one that patch does not
 * override. */
static bool maps_under(const struct zone *z, int size, const uint8_t addr[16], int units,
                       const struct zone *over)
{
    const struct zone_ptr *end, *p = first_ptr(z, size, addr, &end);
    for (; p < end && same_units(p->addr, addr, size, units); p++) {
        size_t n = 0;
        if (over)
            ptr_run(over, size, p->addr, &n);
        if (p->target && n == 0)
            return true;
    }
    return false;
}

/* The PTRs that answer `addr` (`*n` of them; none if it is not mapped),
 * and in `*below` whether a mapped address shares its first `units`: a
 * patch's own table first, then its base's. */
static const struct zone_ptr *ptrs_at(const struct zone *z, int size, const uint8_t addr[16],
                                      int units, size_t *n, bool *below)
{
    const struct zone_ptr *p = ptr_run(z, size, addr, n);
    if (!z->base) {
        *below = maps_under(z, size, addr, units, NULL);
        return p;
    }
    if (*n == 0)
        p = ptr_run(z->base, size, addr, n);
    else if (!p->target)
        *n = 0; /* gone with the patch */
    *below = maps_under(z, size, addr, units, NULL) || maps_under(z->base, size, addr, units, z);
    return p;
}

/*
 * A name outside the zone that may be a reverse name (SPEC §2.5). Inside a
 * reverse zone of [server] reverse every name is ours: a mapped address
 * answers its PTRs, an unmapped one NXDOMAIN, a name above mapped ones
 * (1.168.192.in-addr.arpa) NODATA (RFC 8020), the apex SOA and NS, each
 * negative answer with that zone's SOA. Elsewhere only the names of mapped
 * addresses are answered, and the rest is REFUSED (the plan `out` has).
 */
static void find_reverse(const struct zone *z, const uint8_t *lname, size_t len, uint16_t qtype,
                         struct zone_found *out)
{
    static const uint8_t in_addr_arpa[] = "\x07in-addr\x04"
                                          "arpa";
    static const uint8_t ip6_arpa[] = "\x03ip6\x04"
                                      "arpa";
    const struct zone_rev *rz = NULL;
    for (size_t i = 0; i < z->nrevs && !rz; i++)
        if (wire_name_in(lname, len, z->revs[i].apex, z->revs[i].apex_len))
            rz = &z->revs[i];

    uint8_t addr[16] = {0};
    int size, units;
    if (rz) {
        size = rz->size;
        memcpy(addr, rz->prefix, 16);
        units = reverse_units(lname, len - rz->apex_len, size, rz->units, addr);
        units = units < 0 ? -1 : rz->units + units;
        out->apex = len - rz->apex_len; /* where the SOA's owner points */
    } else {
        size = wire_name_in(lname, len, in_addr_arpa, sizeof(in_addr_arpa)) ? 4
               : wire_name_in(lname, len, ip6_arpa, sizeof(ip6_arpa))       ? 16
                                                                            : 0;
        units =
            size ? reverse_units(lname, len - (size == 4 ? sizeof(in_addr_arpa) : sizeof(ip6_arpa)),
                                 size, 0, addr)
                 : -1;
        if (units != (size == 4 ? 4 : 32))
            return; /* not the name of an address: REFUSED */
    }
    if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR)
        return; /* REFUSED, as in the zone */
    if (units < 0) {
        out->plan = rz->nxdomain; /* no name of an address: nothing there */
        return;
    }

    bool apex = rz && units == rz->units;
    if (apex &&
        (qtype == LDNS_RR_TYPE_SOA || qtype == LDNS_RR_TYPE_NS || qtype == LDNS_RR_TYPE_ANY)) {
        out->plan = qtype == LDNS_RR_TYPE_NS ? rz->ns : rz->soa; /* ANY: one RRset */
        return;
    }
    size_t nptr;
    bool below; /* mapped at or under */
    const struct zone_ptr *p = ptrs_at(z, size, addr, units, &nptr, &below);
    if (nptr && units == (size == 4 ? 4 : 32) &&
        (qtype == LDNS_RR_TYPE_PTR || qtype == LDNS_RR_TYPE_ANY)) {
        out->plan = z->found_plan;
        out->ptr = p;
        out->nptr = nptr;
        return;
    }
    if (!below && !apex) {
        if (rz)
            out->plan = rz->nxdomain;
        return; /* outside every reverse zone: REFUSED */
    }
    out->plan = rz ? rz->nodata : size == 4 ? z->nodata_rev4 : z->nodata_rev6;
}

/* An endpoint name of a service of several addresses: its record is the
 * service's record of that address. False if `lname` is none. */
static bool find_endpoint(const struct zone *z, const uint8_t *lname, size_t len, uint16_t qtype,
                          struct zone_found *out)
{
    uint8_t addr[16];
    int size;
    const struct znode *service = endpoint_service(z, lname, len, addr, &size);
    if (!service)
        return false;
    uint8_t bit = size == 4 ? TYPE_A : TYPE_AAAA;
    for (uint8_t i = 0; i < service->nplans; i++) {
        const struct zone_plan *p = service->plans[i];
        if (!(p->types & bit))
            continue;
        /* answer records, owned by the question: pointer, type, class,
         * TTL, RDLENGTH, address */
        const struct zone_rrset *r = p->sets[0];
        const uint8_t *rr = zone_rrset_data(r);
        size_t rrlen = 12 + (size_t)size;
        for (uint16_t k = 0; k < r->count; k++, rr += rrlen) {
            if (memcmp(rr + 12, addr, (size_t)size) != 0)
                continue;
            if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR)
                out->plan = z->refused;
            else if (qtype != LDNS_RR_TYPE_ANY && type_bit(qtype) != bit)
                out->plan = z->nodata;
            else {
                out->plan = z->found_plan;
                out->rr = rr;
                out->rrlen = rrlen;
            }
            return true;
        }
    }
    return false;
}

/* _tcp.<svc> (or _udp, _sctp) of a service with that SRV protocol: a name
 * with names below it and no records of its own, NODATA (SPEC §2.1; RFC
 * 8020 §2: NXDOMAIN would deny the SRV name below). False if `lname` is
 * none. */
static bool find_empty_parent(const struct zone *z, const uint8_t *lname, size_t len,
                              uint16_t qtype, struct zone_found *out)
{
    size_t l = lname[0];
    if (l < 4 || l > 5 || lname[1] != '_' || 1 + l >= len)
        return false;
    uint8_t flag = proto_flag(lname + 2, l - 1);
    const struct znode *service = zone_node(z, lname + 1 + l, len - 1 - l);
    if (!flag || !service || !(service->flags & NODE_SERVICE) || !(service->flags & flag))
        return false;
    out->plan = qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR ? z->refused : z->nodata;
    return true;
}

void zone_find(const struct zone *z, const uint8_t *lname, size_t len, uint16_t qtype,
               struct zone_found *out)
{
    const struct znode *n = zone_node(z, lname, len);
    out->apex = len >= z->apex_len ? len - z->apex_len : 0;
    out->ptr = NULL;
    out->nptr = 0;
    out->rr = NULL;
    out->rrlen = 0;
    out->plan = z->refused;

    if (!n) {
        /* under the apex: NXDOMAIN; elsewhere REFUSED, but for reverse
         * names */
        if (!wire_name_in(lname, len, z->apex, z->apex_len)) {
            find_reverse(z, lname, len, qtype, out);
            return;
        }
        if (find_endpoint(z, lname, len, qtype, out) ||
            find_empty_parent(z, lname, len, qtype, out))
            return;
        if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR)
            return;
        out->plan = z->nxdomain;
        return;
    }

    /* zone transfers are not offered (SPEC §2.1) */
    if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR)
        return;
    uint8_t bit = type_bit(qtype);
    if (qtype == LDNS_RR_TYPE_ANY && n->nplans) {
        out->plan = n->plans[0]; /* RFC 8482 §4.1: one RRset */
        return;
    }
    for (uint8_t i = 0; i < n->nplans; i++) {
        if (n->plans[i]->types & bit) {
            out->plan = n->plans[i];
            return;
        }
    }
    out->plan = z->nodata;
}
