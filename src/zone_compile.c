/* zone_compile.c -- compiles a config into the immutable zone of pre-rendered answers. */
#include "svcmapd/zone.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "svcmapd/arena.h"
#include "zone_compile.h"

_Static_assert(CONFIG_MAX_UPSTREAMS == UPSTREAM_MAX_SERVERS, "one limit for upstream servers");

#define VERSION_TTL    28800
#define SCHEMA_VERSION "1.1.0" /* Kubernetes DNS schema (kubernetes/dns specification §2.2) */

/* A name in text, without the trailing dot ("cluster.local"), in wire form
 * at `out`; its length. The text is a checked domain name (config.c). */
static size_t wire_name(const char *text, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = text; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        out[n] = (uint8_t)l;
        memcpy(out + n + 1, p, l);
        n += 1 + l;
        p += l + (dot ? 1 : 0);
    }
    out[n++] = 0;
    return n;
}

/* ---------------------------------------------------------------------- */
/* Names and plans.                                                        */

void oom(struct compiler *c)
{
    if (!c->oom)
        diag_error(c->d, 0, "out of memory while compiling the zone");
    c->oom = true;
}

/* Creates a node for `name` with room for `cap` plans. Returns the existing
 * node if the name is already there. */
struct znode *add_node(struct compiler *c, const uint8_t *name, size_t len, enum info_kind kind,
                       uint8_t flags, uint8_t cap)
{
    struct zone *z = c->z;
    uint64_t h = hash_bytes(z->seed, name, len);
    struct slot *slot = table_slot(z, name, len, h);
    if (slot->node)
        return slot->node;
    struct znode *n;

    /* The name right behind the node: a lookup touches one place. */
    size_t size = sizeof(*n) + cap * sizeof(n->plans[0]);
    n = arena_alloc(z->arena, size + len);
    uint8_t *copy = n ? (uint8_t *)n + size : NULL;
    if (n) {
        memset(n, 0, size);
        memcpy(copy, name, len);
    }
    if (!n || c->ninfo >= UINT32_MAX) {
        oom(c);
        return NULL;
    }
    if (c->ninfo == c->infocap) {
        size_t ncap = c->infocap ? c->infocap * 2 : 1024;
        struct info *info = realloc(c->info, ncap * sizeof(*info));
        if (!info) {
            oom(c);
            return NULL;
        }
        c->info = info;
        c->infocap = ncap;
    }
    n->len = (uint8_t)len;
    n->flags = flags;
    n->cap = cap;
    n->info = (uint32_t)c->ninfo;
    c->info[c->ninfo++] = (struct info){.kind = (uint8_t)kind, .node = n};

    slot->hash = h;
    slot->node = n;
    z->stats.names++;
    return n;
}

void add_plan(struct compiler *c, struct znode *n, uint16_t qtype, const struct zone_plan *p)
{
    if (!p) {
        oom(c);
        return;
    }
    /* the plan's own, compile-time only, to say which types it answers */
    struct zone_plan *mp = (struct zone_plan *)(uintptr_t)p;
    mp->types |= type_bit(qtype);
    for (uint8_t i = 0; i < n->nplans; i++)
        if (n->plans[i] == p)
            return;
    if (n->nplans < n->cap)
        n->plans[n->nplans++] = p;
}

/* ---------------------------------------------------------------------- */
/* Fixed records (SPEC §2.2).                                              */

/* SOA with `owner` as owner. In the zone, mname and rname are written the
 * same way, so they echo the query's case like the owner (CoreDNS does);
 * `spelled`: outside it, where the question holds no zone apex, they are
 * written out. */
static const struct zone_rrset *build_soa(struct compiler *c, const struct owner *owner,
                                          bool spelled)
{
    const struct config *cfg = c->cfg;
    struct builder *b = c->b;
    uint32_t ttl = cfg->ttl < 300 ? cfg->ttl : 300;
    static const uint8_t ns_dns[] = "\x02ns\x03"
                                    "dns";
    static const uint8_t hostmaster[] = "\x0ahostmaster";

    b_reset(b);
    b_rr_begin(b, owner, LDNS_RR_TYPE_SOA, ttl);
    if (spelled) {
        uint8_t name[LDNS_MAX_DOMAINLEN + 1];
        memcpy(name, ns_dns, 7);
        size_t n = with_apex(c->z, name, 7);
        b_bytes(b, name, n);
        memcpy(name, hostmaster, 11);
        n = with_apex(c->z, name, 11);
        b_bytes(b, name, n);
    } else {
        struct owner mname = {OWNER_REL, ns_dns, 7};
        struct owner rname = {OWNER_REL, hostmaster, 11};
        b_name(b, &mname);
        b_name(b, &rname);
    }
    size_t serial_at = b->len;
    b_u32(b, 0); /* serial: set once the changes are known */
    b_u32(b, 7200);
    b_u32(b, 1800);
    b_u32(b, 86400);
    b_u32(b, cfg->ttl);
    b_rr_end(b);
    const struct zone_rrset *r = b_finish(c->z, b, false);
    struct zone *z = c->z;
    if (r && z->nserial_slots < sizeof(z->serial_slots) / sizeof(z->serial_slots[0]))
        z->serial_slots[z->nserial_slots++] =
            (uint8_t *)(uintptr_t)(zone_rrset_data(r) + serial_at);
    return r;
}

void set_serial(struct zone *z, uint32_t serial)
{
    for (uint32_t i = 0; i < z->nserial_slots; i++)
        ldns_write_uint32(z->serial_slots[i], serial);
    z->stats.serial = serial;
}

const struct zone_rrset *build_addresses(struct compiler *c, const struct owner *o, uint16_t type,
                                         uint32_t ttl, const uint8_t *addrs, size_t stride,
                                         size_t n)
{
    struct builder *b = c->b;
    b_reset(b);
    for (size_t i = 0; i < n; i++) {
        b_rr_begin(b, o, type, ttl);
        b_bytes(b, addrs + i * stride, type == LDNS_RR_TYPE_A ? 4 : 16);
        b_rr_end(b);
    }
    return b_finish(c->z, b, true);
}

static bool is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

bool zone_needs_host(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->nlisten; i++)
        if (is_any(&cfg->listen[i].addr))
            return true;
    return false;
}

/* The addresses ns.dns.<zone> answers with: the listen addresses, or the
 * interfaces' addresses for a wildcard (CoreDNS uses the local IPs). */
static bool collect_ns_addresses(struct compiler *c)
{
    const struct config *cfg = c->cfg;
    const struct zone_host none = {0}, *host = c->host ? c->host : &none;
    bool any4 = false, any6 = false;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct sockaddr_storage *ss = &cfg->listen[i].addr;
        any4 |= ss->ss_family == AF_INET && is_any(ss);
        any6 |= ss->ss_family == AF_INET6 && is_any(ss);
    }
    size_t max = cfg->nlisten + (any4 ? host->naddr4 : 0) + (any6 ? host->naddr6 : 0);
    c->ns4 = calloc(max + 1, 4);
    c->ns6 = calloc(max + 1, 16);
    if (!c->ns4 || !c->ns6)
        return false;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct sockaddr_storage *ss = &cfg->listen[i].addr;
        if (is_any(ss))
            continue;
        if (ss->ss_family == AF_INET)
            memcpy(c->ns4[c->nns4++], &((const struct sockaddr_in *)ss)->sin_addr, 4);
        else
            memcpy(c->ns6[c->nns6++], &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    }
    for (size_t i = 0; any4 && i < host->naddr4; i++)
        memcpy(c->ns4[c->nns4++], host->addr4[i], 4);
    for (size_t i = 0; any6 && i < host->naddr6; i++) {
        struct in6_addr a;
        memcpy(&a, host->addr6[i], 16);
        if (!IN6_IS_ADDR_LINKLOCAL(&a))
            memcpy(c->ns6[c->nns6++], host->addr6[i], 16);
    }
    return true;
}

/* The answer to NS at an apex: NS `nsname`, its addresses in ADDITIONAL
 * (SPEC §2.2). NULL when out of memory. */
static const struct zone_plan *ns_plan(struct compiler *c, const struct owner *nsname)
{
    const struct owner apex_owner = {OWNER_REL, NULL, 0};
    uint32_t ttl = c->cfg->ttl;
    struct builder *b = c->b;
    b_reset(b);
    b_rr_begin(b, &apex_owner, LDNS_RR_TYPE_NS, ttl);
    b_name(b, nsname);
    b_rr_end(b);
    const struct zone_rrset *ns = b_finish(c->z, b, false);
    const struct zone_rrset *glue[2];
    size_t nglue = 0;
    if (c->nns4)
        glue[nglue++] = build_addresses(c, nsname, LDNS_RR_TYPE_A, ttl, c->ns4[0], 4, c->nns4);
    if (c->nns6)
        glue[nglue++] = build_addresses(c, nsname, LDNS_RR_TYPE_AAAA, ttl, c->ns6[0], 16, c->nns6);
    return answer_plan(c, &ns, 1, glue, nglue);
}

/* The SOAs, and the plans many names share: NXDOMAIN and NODATA (in the
 * zone, and at reverse names outside the reverse zones of [server]
 * reverse), REFUSED, and the plan whose answer zone_find() hands over in
 * zone_found (PTRs, an endpoint's record). */
static bool build_shared_plans(struct compiler *c)
{
    struct zone *z = c->z;
    const struct owner apex_owner = {OWNER_REL, NULL, 0};

    /* The apex owner is the apex pointer itself: zero labels, then the slot. */
    c->soa = build_soa(c, &apex_owner, false);
    static const uint8_t in_addr_arpa[] = "\x07in-addr\x04"
                                          "arpa";
    static const uint8_t ip6_arpa[] = "\x03ip6\x04"
                                      "arpa";
    struct owner rev4 = {OWNER_ABS, in_addr_arpa, sizeof(in_addr_arpa)};
    struct owner rev6 = {OWNER_ABS, ip6_arpa, sizeof(ip6_arpa)};
    c->soa_rev4 = build_soa(c, &rev4, true);
    c->soa_rev6 = build_soa(c, &rev6, true);
    if (!c->soa || !c->soa_rev4 || !c->soa_rev6)
        return false;

    z->nxdomain = new_plan(z, LDNS_RCODE_NXDOMAIN, true, NULL, 0, &c->soa, 1, NULL, 0);
    z->nodata = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &c->soa, 1, NULL, 0);
    z->nodata_rev4 = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &c->soa_rev4, 1, NULL, 0);
    z->nodata_rev6 = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &c->soa_rev6, 1, NULL, 0);
    z->found_plan = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, NULL, 0, NULL, 0);
    z->refused = new_plan(z, LDNS_RCODE_REFUSED, false, NULL, 0, NULL, 0, NULL, 0);
    return z->nxdomain && z->nodata && z->nodata_rev4 && z->nodata_rev6 && z->refused &&
           z->found_plan;
}

/* The apex: SOA and NS (with ns.dns glue), everything else NODATA; and
 * ns.dns.<zone>, A and AAAA. */
static bool build_apex(struct compiler *c)
{
    struct zone *z = c->z;
    const struct config *cfg = c->cfg;

    struct znode *apex = add_node(c, z->apex, z->apex_len, INFO_APEX, NODE_IN_ZONE, 2);
    if (!apex)
        return false;
    add_plan(c, apex, LDNS_RR_TYPE_SOA, answer_plan(c, &c->soa, 1, NULL, 0));

    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    size_t n = put_label(name, 0, "ns", 2);
    n = put_label(name, n, "dns", 3);
    n = with_apex(z, name, n);
    struct znode *nsdns = add_node(c, name, n, INFO_NSDNS, NODE_IN_ZONE, 2);
    if (!nsdns || !collect_ns_addresses(c))
        return false;

    struct owner ns_rel = rel_owner(c, nsdns);
    add_plan(c, apex, LDNS_RR_TYPE_NS, ns_plan(c, &ns_rel));

    const struct owner q = {OWNER_QNAME, NULL, 0};
    if (c->nns4) {
        const struct zone_rrset *a =
            build_addresses(c, &q, LDNS_RR_TYPE_A, cfg->ttl, c->ns4[0], 4, c->nns4);
        add_plan(c, nsdns, LDNS_RR_TYPE_A, answer_plan(c, &a, 1, NULL, 0));
    }
    if (c->nns6) {
        const struct zone_rrset *a =
            build_addresses(c, &q, LDNS_RR_TYPE_AAAA, cfg->ttl, c->ns6[0], 16, c->nns6);
        add_plan(c, nsdns, LDNS_RR_TYPE_AAAA, answer_plan(c, &a, 1, NULL, 0));
    }
    return true;
}

/* dns-version.<zone> TXT "1.1.0", TTL 28800 whatever the zone's ttl */
static bool build_version(struct compiler *c)
{
    struct zone *z = c->z;
    const struct owner q = {OWNER_QNAME, NULL, 0};
    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    size_t n = with_apex(z, name, put_label(name, 0, "dns-version", 11));
    struct znode *version = add_node(c, name, n, INFO_VERSION, NODE_IN_ZONE, 1);
    if (!version)
        return false;
    struct builder *b = c->b;
    b_reset(b);
    b_rr_begin(b, &q, LDNS_RR_TYPE_TXT, VERSION_TTL);
    uint8_t txt[] = {(uint8_t)strlen(SCHEMA_VERSION)};
    b_bytes(b, txt, 1);
    b_bytes(b, SCHEMA_VERSION, strlen(SCHEMA_VERSION));
    b_rr_end(b);
    const struct zone_rrset *t = b_finish(z, b, false);
    add_plan(c, version, LDNS_RR_TYPE_TXT, answer_plan(c, &t, 1, NULL, 0));
    return true;
}

/* Names that exist and are empty: dns.<zone>, above ns.dns.<zone> (RFC
 * 8020: NXDOMAIN there would deny ns.dns); svc.<zone> and pod.<zone>
 * (SPEC §2.1). */
static bool add_empty_names(struct compiler *c)
{
    static const char *const labels[] = {"dns", "svc", "pod"};
    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
        size_t n = with_apex(c->z, name, put_label(name, 0, labels[i], 3));
        if (!add_node(c, name, n, INFO_EMPTY, NODE_IN_ZONE, 0))
            return false;
    }
    return true;
}

/* The records that are not of a service (SPEC §2.2). */
static bool build_fixed(struct compiler *c)
{
    return build_shared_plans(c) && build_apex(c) && build_version(c) && add_empty_names(c) &&
           !c->oom;
}

/* ---------------------------------------------------------------------- */
/* Reverse names (SPEC §2.5).                                              */

/* Sorts `src` into `dst` by the first `size` bytes of the address, keeping
 * the order of equal ones (`src` is scratch space, left in disorder): a
 * byte-wise radix sort, which for a million IPv4 addresses is four passes
 * over the array instead of 20 million calls to memcmp. */
void sort_ptrs(struct zone_ptr *src, struct zone_ptr *dst, size_t n, size_t size)
{
    struct zone_ptr *from = src, *to = dst;
    for (size_t byte = size; byte-- > 0;) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[from[i].addr[byte] + 1]++;
        if (count[from[0].addr[byte] + 1] == n)
            continue; /* all alike in this byte */
        for (size_t k = 1; k < 257; k++)
            count[k] += count[k - 1];
        for (size_t i = 0; i < n; i++)
            to[count[from[i].addr[byte]]++] = from[i];
        struct zone_ptr *t = from;
        from = to;
        to = t;
    }
    if (from != dst)
        memcpy(dst, from, n * sizeof(*dst));
}

static int by_target(const void *a, const void *b)
{
    const struct zone_ptr *x = a, *y = b;
    int c =
        memcmp(x->target, y->target, x->target_len < y->target_len ? x->target_len : y->target_len);
    return c ? c : (x->target_len > y->target_len) - (x->target_len < y->target_len);
}

void set_ptrs(struct zone *z, int f, struct zone_ptr *v, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = i;
        uint32_t ttl = UINT32_MAX;
        for (; k < n && memcmp(v[k].addr, v[i].addr, 16) == 0; k++)
            ttl = v[k].ttl < ttl ? v[k].ttl : ttl;
        if (k - i > 1)
            qsort(v + i, k - i, sizeof(*v), by_target);
        for (; i < k; i++)
            v[i].ttl = ttl;
    }
    if (f == 0) {
        z->rev4 = v;
        z->nrev4 = n;
    } else {
        z->rev6 = v;
        z->nrev6 = n;
    }
}

/* Sorts each family's PTRs by address into the zone (set_ptrs()). */
static void compile_ptrs(struct compiler *c)
{
    struct zone *z = c->z;
    for (int f = 0; f < 2; f++) {
        struct ptr_list *l = &c->ptrs[f];
        if (l->n == 0)
            continue;
        struct zone_ptr *v = arena_alloc(z->arena, l->n * sizeof(*v));
        if (!v) {
            oom(c);
            return;
        }
        sort_ptrs(l->v, v, l->n, f == 0 ? 4 : 16);
        set_ptrs(z, f, v, l->n);
    }
}

/* The reverse zones of [server] reverse: each answers SOA and NS at its
 * apex, as the zone does (the same mname, rname, timers and serial), and
 * every name in it from the table of PTRs (find_reverse()). Returns false
 * when out of memory; a zone that overlaps the forward zone is an error. */
static bool compile_reverse_zones(struct compiler *c)
{
    struct zone *z = c->z;
    const struct config *cfg = c->cfg;
    if (cfg->nreverse == 0)
        return true;
    z->revs = arena_alloc(z->arena, cfg->nreverse * sizeof(*z->revs));
    if (!z->revs)
        return false;

    /* NS ns.dns.<zone>, with its addresses: names outside the reverse
     * zone, so written out, not pointers into the question */
    uint8_t nsname[LDNS_MAX_DOMAINLEN + 1];
    size_t nslen = with_apex(z, nsname, put_label(nsname, put_label(nsname, 0, "ns", 2), "dns", 3));
    const struct owner ns_owner = {OWNER_ABS, nsname, nslen};
    const struct zone_plan *ns = ns_plan(c, &ns_owner);
    if (!ns)
        return false;

    const struct owner apex_owner = {OWNER_REL, NULL, 0}; /* the apex in the question */
    for (size_t i = 0; i < cfg->nreverse; i++) {
        const struct config_reverse *r = &cfg->reverse[i];
        struct zone_rev *rz = &z->revs[z->nrevs];
        rz->apex_len = wire_name(r->zone, rz->apex);
        if (wire_name_in(z->apex, z->apex_len, rz->apex, rz->apex_len) ||
            wire_name_in(rz->apex, rz->apex_len, z->apex, z->apex_len)) {
            diag_error(c->d, r->line, "reverse: %s overlaps zone '%s'", r->zone, cfg->zone);
            continue;
        }
        rz->size = r->family == AF_INET ? 4 : 16;
        rz->units = r->family == AF_INET ? r->bits / 8 : r->bits / 4;
        memcpy(rz->prefix, r->addr, 16);
        const struct zone_rrset *soa = build_soa(c, &apex_owner, true);
        if (!soa)
            return false;
        rz->soa = answer_plan(c, &soa, 1, NULL, 0);
        rz->ns = ns;
        rz->nxdomain = new_plan(z, LDNS_RCODE_NXDOMAIN, true, NULL, 0, &soa, 1, NULL, 0);
        rz->nodata = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &soa, 1, NULL, 0);
        if (!rz->soa || !rz->nxdomain || !rz->nodata)
            return false;
        z->nrevs++;
        z->stats.names++;
        z->stats.records += 2; /* SOA, NS */
    }
    return true;
}

/* ---------------------------------------------------------------------- */

uint64_t settings_fingerprint(const struct compiler *c)
{
    const struct config *cfg = c->cfg;
    uint64_t h = hash_bytes(5, c->z->apex, c->z->apex_len);
    for (size_t i = 0; i < c->z->nrevs; i++)
        h = mix64(h ^ hash_bytes(8, c->z->revs[i].apex, c->z->revs[i].apex_len));
    h = mix64(h ^ cfg->ttl);
    h = mix64(h ^ cfg->health_interval); /* it caps checked services' TTLs */
    h = mix64(h ^ hash_bytes(6, c->ns4[0], c->nns4 * 4));
    h = mix64(h ^ hash_bytes(7, c->ns6[0], c->nns6 * 16));
    return h;
}

/* The TTL of a service's first record: its A, AAAA or CNAME. */
static uint32_t first_ttl(const struct znode *n)
{
    if (n->nplans == 0 || n->plans[0]->nsets[ZONE_ANSWER] == 0)
        return 0;
    const struct zone_rrset *r = n->plans[0]->sets[0];
    return r->count ? ldns_read_uint32(zone_rrset_data(r) + 6) : 0;
}

/* Counts services added, removed and changed against `old`. Returns true if
 * anything an answer could show differs. */
static bool count_changes(struct compiler *c, const struct zone *old)
{
    struct zone *z = c->z;
    if (!old) {
        z->stats.added = z->stats.services;
        return true;
    }
    /* Both lists are in the order of their file, and a reload changes few
     * lines: walk them in step, and look a name up only where they part.
     * Other settings may give a line another TTL ([server] ttl, the
     * [health] interval): then its records tell. */
    bool resettled = z->settings_fp != old->settings_fp;
    size_t matched = 0, j = 0;
    for (size_t i = 0; i < z->nservices; i++) {
        const struct znode *n = z->services[i];
        const struct znode *o = j < old->nservices && !old->base ? old->services[j] : NULL;
        if (!o || o->len != n->len || memcmp(node_name(o), node_name(n), n->len) != 0) {
            /* (a patch's list is its base's: a name is looked up in both) */
            o = zone_node(old, node_name(n), n->len);
            if (o && !(o->flags & NODE_SERVICE))
                o = NULL;
        }
        if (o) {
            matched++;
            j = (size_t)o->info + 1;
            if (o->fp != n->fp || (resettled && first_ttl(o) != first_ttl(n)))
                z->stats.changed++;
        } else {
            z->stats.added++;
        }
    }
    z->stats.removed = old->stats.services - matched;
    return z->stats.added || z->stats.removed || z->stats.changed ||
           z->settings_fp != old->settings_fp;
}

/* An upper bound of the names the zone will hold, to size the table once:
 * the service, an endpoint per address (when several), the SRV name.
 * Reverse names are not names of the table. */
size_t estimate_names(const struct config *cfg)
{
    size_t n = 16;
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        n++;
        for (size_t j = 0; j < cfg->namespaces[i].nservices; j++) {
            const struct config_service *s = &cfg->namespaces[i].services[j];
            size_t t = s->ntargets;
            if (t == 0 || s->targets[0].kind == CONFIG_TARGET_HOSTNAME)
                n += 2; /* and the endpoint it may point at */
            else
                n += 1 + (s->targets[0].port ? 1 : 0); /* and _port._proto */
        }
    }
    return n;
}

/* The zone's arena and its table, sized once for the names of the config,
 * and the compiler's own memory. False when out of memory. */
static bool compiler_init(struct compiler *c, size_t names, time_t now)
{
    struct zone *z = c->z;
    z->arena = arena_new();
    c->scratch = arena_new();
    c->b = malloc(sizeof(*c->b));
    if (!z->arena || !c->scratch || !c->b)
        return false;
    if (z->base)
        z->seed = z->base->seed; /* one hash finds a name in both tables */
    else if (getrandom(&z->seed, sizeof(z->seed), 0) != sizeof(z->seed))
        z->seed = (uint64_t)now ^ (uint64_t)(uintptr_t)z;

    /* at most 70% full: short probe sequences, a table a third smaller
     * than at 50% */
    size_t cap = 64;
    while (cap * 7 < names * 10)
        cap *= 2;
    c->info = malloc(names * sizeof(*c->info)); /* grown if the estimate is short */
    c->infocap = c->info ? names : 0;

    z->slots = slots_new(cap);
    if (!z->slots)
        return false;
    z->mask = cap - 1;
    return true;
}

/* Frees what compiling needed and the zone keeps none of. */
void compiler_finish(struct compiler *c)
{
    free(c->info);
    free(c->b);
    free(c->ns4);
    free(c->ns6);
    free(c->ptrs[0].v);
    free(c->ptrs[1].v);
    probes_free(c);
    arena_free(c->scratch);
}

/* The apex, in wire form and lower case (config.c folded it), and the
 * zone's name. False if the name leaves no room for service names
 * (reported). */
static bool set_apex(struct compiler *c)
{
    struct zone *z = c->z;
    const struct config *cfg = c->cfg;
    size_t n = wire_name(cfg->zone, z->apex);
    z->apex_len = n;
    if (n > LDNS_MAX_DOMAINLEN - 20) {
        diag_error(c->d, cfg->line[CONFIG_ZONE], "zone '%s' is too long to hold service names",
                   cfg->zone);
        return false;
    }
    snprintf(z->name, sizeof(z->name), "%s", cfg->zone);
    return true;
}

/* The settings the server reads from the zone (zone.h): the UDP reply
 * size, the TCP limits, how hostname targets outside the zone are
 * resolved upstream, who may transfer the zone. False when out of
 * memory. */
static bool copy_settings(struct zone *z, const struct config *cfg)
{
    z->settings = (struct zone_settings){
        .udp_max = (uint16_t)cfg->udp_max_size,
        .tcp_idle_timeout = cfg->tcp_idle_timeout,
        .tcp_message_timeout = cfg->tcp_message_timeout,
        .tcp_pipeline = cfg->tcp_pipeline,
        .tcp_max_connections = cfg->tcp_max_connections,
        .upstream = cfg->nupstream > 0 ? &z->upstream : NULL,
    };
    z->upstream.nservers = 0;
    for (size_t i = 0; i < cfg->nupstream && i < UPSTREAM_MAX_SERVERS; i++) {
        z->upstream.servers[i] = cfg->upstream[i].addr;
        z->upstream.lens[i] = cfg->upstream[i].addrlen;
        snprintf(z->upstream.names[i], sizeof(z->upstream.names[i]), "%s", cfg->upstream[i].text);
        z->upstream.nservers++;
    }
    upstream_settings_zone(&z->upstream, z->apex, z->apex_len);
    z->upstream.timeout_ms = cfg->upstream_timeout * 1000;
    z->upstream.cache_size = cfg->cache_size;
    z->upstream.max_stale = cfg->max_stale;
    z->upstream.negative_ttl = cfg->negative_ttl;
    z->health = (struct zone_health){cfg->health_interval, cfg->health_timeout, cfg->health_fall,
                                     cfg->health_rise};
    size_t allow = cfg->ntransfer_allow * sizeof(*cfg->transfer_allow);
    z->settings.transfer_allow = allow ? arena_memdup(z->arena, cfg->transfer_allow, allow) : NULL;
    z->settings.ntransfer_allow = z->settings.transfer_allow ? cfg->ntransfer_allow : 0;
    return z->settings.ntransfer_allow == cfg->ntransfer_allow;
}

/* zone.services: the services in the order of the file, for the next
 * reload's count_changes(); a service's `info` becomes its place there.
 * And the zone's digest: its settings and each service's name and
 * fingerprint, summed, so that the order of the file does not count.
 * False when out of memory. */
static bool list_services(struct compiler *c)
{
    struct zone *z = c->z;
    z->services = arena_alloc(z->arena, (z->stats.services + 1) * sizeof(*z->services));
    if (!z->services)
        return false;
    uint64_t digest = 0;
    for (size_t i = 0; i < c->ninfo; i++) {
        struct znode *node = c->info[i].node;
        if (node->flags & NODE_SERVICE) {
            node->info = (uint32_t)z->nservices;
            z->services[z->nservices++] = node;
            /* a fixed seed, unlike the table's: digests outlive the process */
            digest += service_digest(node);
        }
    }
    z->digest_sum = digest;
    z->stats.digest = mix64(digest ^ z->settings_fp);
    return true;
}

/* The SOA serial after `prev` (when `has_prev`): `now`, or `prev` if
 * nothing `changed`, and never behind it. */
uint32_t next_serial(bool has_prev, uint32_t prev, bool changed, time_t now)
{
    uint32_t serial = (uint32_t)now;
    if (has_prev) {
        if (!changed)
            serial = prev;
        else if ((int32_t)(serial - prev) <= 0) /* RFC 1982: never go back */
            serial = prev + 1;
    }
    return serial;
}

void zone_continue_serial(struct zone *z, uint32_t serial, uint64_t digest)
{
    set_serial(z, next_serial(true, serial, z->stats.digest != digest, z->stats.serial));
}

/* The last zone_id() given. */
static _Atomic uint64_t last_id;

uint64_t zone_id(const struct zone *z)
{
    return z->id;
}

struct zone *zone_new(const struct zone *base)
{
    struct zone *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    z->id = atomic_fetch_add(&last_id, 1) + 1;
    atomic_init(&z->refs, 1);
    if (base) {
        atomic_fetch_add(&((struct zone *)(uintptr_t)base)->refs, 1);
        z->base = base;
    }
    return z;
}

bool compile_begin(struct compiler *c, size_t names, time_t now)
{
    return compiler_init(c, names, now) && set_apex(c) && copy_settings(c->z, c->cfg) &&
           build_fixed(c) && compile_reverse_zones(c);
}

struct zone *zone_compile(struct config *cfg, const struct zone *old, const struct zone_host *host,
                          time_t now, unsigned flags, struct zone_skip *skip, struct diag *d)
{
    bool drop_mapping = flags & ZONE_DROP_MAPPING;
    if (old && !d->errors && !(flags & ZONE_WHOLE)) {
        bool whole = false;
        struct zone *z = zone_patch(cfg, old, host, now, drop_mapping, skip, d, &whole);
        if (!whole)
            return z;
    }
    if (cfg->nkept) {
        skip->wasted = true; /* the services skipped are missing: parse again */
        return NULL;
    }
    struct zone *z = zone_new(NULL);
    struct compiler c = {.z = z, .cfg = cfg, .host = host, .d = d};
    unsigned errors_before = d->errors;
    if (!z || !compile_begin(&c, estimate_names(cfg), now))
        goto fail;
    compile_services(&c);
    if (!c.oom)
        compile_hosts(&c);
    if (c.oom)
        goto fail;
    if (d->errors)
        goto reject; /* found here or by config.c: already reported */
    if (drop_mapping)
        config_drop_mapping(cfg); /* nothing below reads it */
    compile_ptrs(&c);
    compile_probes(&c, old, now);
    if (c.oom)
        goto fail;

    z->settings_fp = settings_fingerprint(&c);
    if (!list_services(&c))
        goto fail;
    z->stats.compiled = z->stats.services;
    bool changed = count_changes(&c, old);
    set_serial(z, next_serial(old != NULL, old ? old->stats.serial : 0, changed, now));
    z->stats.records += FIXED_RECORDS;
    z->stats.bytes = arena_size(z->arena) + (z->mask + 1) * sizeof(*z->slots);
    compiler_finish(&c);
    return z;

fail:
    if (d->errors == errors_before)
        diag_error(d, 0, "out of memory while compiling the zone");
reject:
    compiler_finish(&c);
    zone_free(z);
    return NULL;
}
