/* zone_compile.c -- compiles a config into the immutable zone of pre-rendered answers. */
#include "svcmapd/zone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "svcmapd/arena.h"
#include "zone_impl.h"

_Static_assert(CONFIG_MAX_UPSTREAMS == UPSTREAM_MAX_SERVERS, "one limit for upstream servers");

#define MAX_CHAIN      10 /* CNAMEs followed, as CoreDNS's maxCnameChainLength */
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
/* Plans, allocated in the zone: what answers one name and type.           */

static const struct zone_plan *new_plan_ext(struct zone *z, uint8_t rcode, bool aa,
                                            const struct zone_rrset *const *an, size_t nan,
                                            const struct zone_rrset *const *ns, size_t nns,
                                            const struct zone_rrset *const *ar, size_t nar,
                                            const struct zone_external *ext)
{
    size_t n = nan + nns + nar;
    struct zone_plan *p =
        arena_alloc(z->arena, sizeof(*p) + (n + (ext ? 1 : 0)) * sizeof(p->sets[0]));
    if (!p)
        return NULL;
    p->types = 0;
    p->rcode = rcode;
    p->aa = aa;
    p->nsets[ZONE_ANSWER] = (uint8_t)nan;
    p->nsets[ZONE_AUTHORITY] = (uint8_t)nns;
    p->nsets[ZONE_ADDITIONAL] = (uint8_t)nar;
    p->has_external = ext != NULL;
    const struct zone_rrset **sets = (const struct zone_rrset **)p->sets;
    for (size_t i = 0; i < nan; i++)
        *sets++ = an[i];
    for (size_t i = 0; i < nns; i++)
        *sets++ = ns[i];
    for (size_t i = 0; i < nar; i++)
        *sets++ = ar[i];
    if (ext)
        memcpy(sets, &ext, sizeof(ext));
    return p;
}

static const struct zone_plan *new_plan(struct zone *z, uint8_t rcode, bool aa,
                                        const struct zone_rrset *const *an, size_t nan,
                                        const struct zone_rrset *const *ns, size_t nns,
                                        const struct zone_rrset *const *ar, size_t nar)
{
    return new_plan_ext(z, rcode, aa, an, nan, ns, nns, ar, nar, NULL);
}

/* ---------------------------------------------------------------------- */
/* Compile-time state.                                                     */

enum info_kind {
    INFO_EMPTY,  /* exists, answers nothing: NODATA */
    INFO_BROKEN, /* a service config.c rejected: exists so CNAMEs to it resolve */
    INFO_APEX,
    INFO_VERSION, /* dns-version.<zone> TXT */
    INFO_NSDNS,   /* ns.dns.<zone> A/AAAA: the listen addresses */
    INFO_ADDRESS, /* a service with addresses */
    INFO_HOST,    /* a service with a hostname: CNAME */
    INFO_ENDPOINT,
    INFO_PORT, /* _<port>._<proto>.<svc>: SRV */
};

/* What compiling needs to know about a name; 32 bytes, as there is one
 * per name (millions). The rarely needed parts live in `struct extra`. */
struct info {
    struct znode *node;
    union {
        const struct config_service *svc;   /* INFO_ADDRESS, INFO_HOST */
        const struct config_target *target; /* INFO_ENDPOINT: its address */
    } u;
    struct extra *x; /* NULL until needed */
    uint32_t ttl;
    uint8_t kind; /* enum info_kind */
};

/* Which of a name's own RRsets named_rrset() gives. */
enum named {
    NAMED_A,
    NAMED_AAAA,
    NAMED_CNAME,
    NAMED_SETS,
};

struct extra {
    /* RRsets owned by this name written with its own name as owner, for
     * CNAME chains and additional sections; built when first needed. */
    const struct zone_rrset *named[NAMED_SETS];
    bool named_built[NAMED_SETS];
    /* hostname services: the target, in wire form */
    const uint8_t *host;
    size_t host_len;
    struct znode *host_node; /* in-zone target */
};

/* A growing array of PTRs, one per family. */
struct ptr_list {
    struct zone_ptr *v;
    size_t n, cap;
};

struct compiler {
    struct zone *z;
    struct arena *scratch;  /* freed when compiling ends */
    struct extra no_memory; /* what extra_of() gives when out of memory */
    const struct config *cfg;
    struct diag *d;
    struct builder *b;
    struct info *info;
    size_t ninfo, infocap;
    /* ns.dns addresses */
    uint8_t (*ns4)[4];
    size_t nns4;
    uint8_t (*ns6)[16];
    size_t nns6;
    uint32_t serial_slot_count;
    uint8_t *serial_slots[3 + CONFIG_MAX_REVERSE];
    const struct zone_rrset *soa, *soa_rev4, *soa_rev6;
    struct ptr_list ptrs[2]; /* IPv4, IPv6 */
    bool oom;
};

static void oom(struct compiler *c)
{
    if (!c->oom)
        diag_error(c->d, 0, "out of memory while compiling the zone");
    c->oom = true;
}

/* Creates a node for `name` with room for `cap` plans. Returns the existing
 * node if the name is already there. */
static struct znode *add_node(struct compiler *c, const uint8_t *name, size_t len,
                              enum info_kind kind, uint8_t flags, uint8_t cap, bool *existed)
{
    struct zone *z = c->z;
    uint64_t h = hash_bytes(z->seed, name, len);
    /* one walk of the probe sequence: it ends at the name or where it goes */
    size_t i = h & z->mask;
    for (; z->slots[i].node; i = (i + 1) & z->mask) {
        struct znode *old = z->slots[i].node;
        if (z->slots[i].hash == h && old->len == len && memcmp(node_name(old), name, len) == 0) {
            if (existed)
                *existed = true;
            return old;
        }
    }
    if (existed)
        *existed = false;
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

    z->slots[i].hash = h;
    z->slots[i].node = n;
    z->stats.names++;
    return n;
}

static struct info *info_of(struct compiler *c, const struct znode *n)
{
    return &c->info[n->info];
}

static struct extra *extra_of(struct compiler *c, struct info *in)
{
    if (!in->x) {
        in->x = arena_zalloc(c->scratch, sizeof(*in->x));
        if (!in->x) {
            oom(c);
            return &c->no_memory;
        }
    }
    return in->x;
}

static void add_plan(struct compiler *c, struct znode *n, uint16_t qtype, const struct zone_plan *p)
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

/* A plan whose answer is the given sets, nothing else. */
static const struct zone_plan *answer_plan(struct compiler *c, const struct zone_rrset *const *an,
                                           size_t nan, const struct zone_rrset *const *ar,
                                           size_t nar)
{
    for (size_t i = 0; i < nan; i++)
        if (!an[i])
            return NULL;
    for (size_t i = 0; i < nar; i++)
        if (!ar[i])
            return NULL;
    return new_plan(c->z, LDNS_RCODE_NOERROR, true, an, nan, NULL, 0, ar, nar);
}

/* The labels of `name` in front of the apex. */
static struct owner rel_owner(const struct compiler *c, const struct znode *n)
{
    return (struct owner){OWNER_REL, node_name(n), n->len - c->z->apex_len};
}

static size_t put_label(uint8_t *out, size_t pos, const char *label, size_t len)
{
    out[pos] = (uint8_t)len;
    memcpy(out + pos + 1, label, len);
    return pos + 1 + len;
}

/* Appends the apex to `rel` (labels, `rlen` bytes) in `out`. Returns the
 * name's length, or 0 if it would exceed 255 bytes. */
static size_t with_apex(const struct zone *z, uint8_t *out, size_t rlen)
{
    if (rlen + z->apex_len > LDNS_MAX_DOMAINLEN)
        return 0;
    memcpy(out + rlen, z->apex, z->apex_len);
    return rlen + z->apex_len;
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
    if (r && c->serial_slot_count < sizeof(c->serial_slots) / sizeof(c->serial_slots[0]))
        c->serial_slots[c->serial_slot_count++] =
            (uint8_t *)(uintptr_t)(zone_rrset_data(r) + serial_at);
    return r;
}

static void set_serial(struct compiler *c, uint32_t serial)
{
    for (uint32_t i = 0; i < c->serial_slot_count; i++) {
        ldns_write_uint32(c->serial_slots[i], serial);
    }
    c->z->stats.serial = serial;
}

static const struct zone_rrset *build_addresses(struct compiler *c, const struct owner *o,
                                                uint16_t type, uint32_t ttl, const uint8_t *addrs,
                                                size_t stride, size_t n)
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

/* The addresses ns.dns.<zone> answers with: the listen addresses, or the
 * interfaces' addresses for a wildcard (CoreDNS uses the local IPs). */
static bool collect_ns_addresses(struct compiler *c)
{
    const struct config *cfg = c->cfg;
    bool any4 = false, any6 = false;
    size_t max = cfg->nlisten;
    struct ifaddrs *ifs = NULL;

    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct sockaddr_storage *ss = &cfg->listen[i].addr;
        if (ss->ss_family == AF_INET)
            any4 |= ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
        else
            any6 |= IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    }
    if ((any4 || any6) && getifaddrs(&ifs) < 0)
        diag_warning(c->d, cfg->line[CONFIG_LISTEN],
                     "cannot list the interfaces' addresses (%s): ns.dns.%s gets none for a "
                     "wildcard listen address",
                     strerror(errno), cfg->zone);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        max++;

    c->ns4 = calloc(max + 1, 4);
    c->ns6 = calloc(max + 1, 16);
    if (!c->ns4 || !c->ns6) {
        freeifaddrs(ifs);
        return false;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct sockaddr_storage *ss = &cfg->listen[i].addr;
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
            if (sin->sin_addr.s_addr != htonl(INADDR_ANY))
                memcpy(c->ns4[c->nns4++], &sin->sin_addr, 4);
        } else {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
            if (!IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
                memcpy(c->ns6[c->nns6++], &sin6->sin6_addr, 16);
        }
    }
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (any4 && i->ifa_addr->sa_family == AF_INET)
            memcpy(c->ns4[c->nns4++], &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
        if (any6 && i->ifa_addr->sa_family == AF_INET6) {
            const struct in6_addr *a = &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
            if (!IN6_IS_ADDR_LINKLOCAL(a))
                memcpy(c->ns6[c->nns6++], a, 16);
        }
    }
    freeifaddrs(ifs);
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

    struct znode *apex = add_node(c, z->apex, z->apex_len, INFO_APEX, NODE_IN_ZONE, 2, NULL);
    if (!apex)
        return false;
    add_plan(c, apex, LDNS_RR_TYPE_SOA, answer_plan(c, &c->soa, 1, NULL, 0));

    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    size_t n = put_label(name, 0, "ns", 2);
    n = put_label(name, n, "dns", 3);
    n = with_apex(z, name, n);
    struct znode *nsdns = add_node(c, name, n, INFO_NSDNS, NODE_IN_ZONE, 2, NULL);
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
    struct znode *version = add_node(c, name, n, INFO_VERSION, NODE_IN_ZONE, 1, NULL);
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
        if (!add_node(c, name, n, INFO_EMPTY, NODE_IN_ZONE, 0, NULL))
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
/* Services.                                                               */

static uint64_t service_fingerprint(const struct config_service *s, uint32_t ttl)
{
    uint64_t h = hash_bytes(0, (const uint8_t *)&ttl, sizeof(ttl));
    for (uint32_t i = 0; i < s->ntargets; i++) {
        const struct config_target *t = &s->targets[i];
        if (t->kind == CONFIG_TARGET_HOSTNAME) {
            char low[256];
            size_t n = strlen(t->hostname);
            for (size_t k = 0; k < n && k < sizeof(low); k++)
                low[k] = (char)tolower((unsigned char)t->hostname[k]);
            h = mix64(h ^ hash_bytes(1, (const uint8_t *)low, n < 256 ? n : 256));
        } else {
            uint8_t buf[20];
            memcpy(buf, t->addr, 16);
            buf[16] = (uint8_t)t->family;
            buf[17] = (uint8_t)(t->port >> 8);
            buf[18] = (uint8_t)t->port;
            buf[19] = 0;
            h = mix64(h ^ hash_bytes(2, buf, sizeof(buf)));
        }
    }
    if (s->srv_name)
        h = mix64(h ^ hash_bytes(3, (const uint8_t *)s->srv_name, strlen(s->srv_name)));
    if (s->srv_proto)
        h = mix64(h ^ hash_bytes(4, (const uint8_t *)s->srv_proto, strlen(s->srv_proto)));
    return h;
}

/* The address records of one name, with `o` as owner. */
static const struct zone_rrset *service_addresses(struct compiler *c, const struct info *in,
                                                  const struct owner *o, uint16_t type)
{
    int family = type == LDNS_RR_TYPE_A ? AF_INET : AF_INET6;
    size_t size = family == AF_INET ? 4 : 16;
    uint8_t buf[1024 * 16];
    size_t n = 0;

    if (in->kind == INFO_ENDPOINT) {
        if (in->u.target->family == family) {
            memcpy(buf, in->u.target->addr, size);
            n = 1;
        }
    } else if (in->kind == INFO_ADDRESS) {
        for (uint32_t i = 0; i < in->u.svc->ntargets && n < 1024; i++)
            if (in->u.svc->targets[i].family == family)
                memcpy(buf + n++ * size, in->u.svc->targets[i].addr, size);
    } else if (in->kind == INFO_NSDNS) {
        if (family == AF_INET)
            return c->nns4 ? build_addresses(c, o, type, c->cfg->ttl, c->ns4[0], 4, c->nns4) : NULL;
        return c->nns6 ? build_addresses(c, o, type, c->cfg->ttl, c->ns6[0], 16, c->nns6) : NULL;
    }
    if (n == 0)
        return NULL;
    return build_addresses(c, o, type, in->ttl, buf, size, n);
}

/* The CNAME of hostname service `in`, owned by `o`: to its target in the
 * zone, written as labels before the apex in the question, or to a
 * hostname outside it as written (resolve_host_target()). The one builder
 * of the CNAME a query for the service gets, and of the one a chain
 * through it shows. NULL when out of memory. */
static const struct zone_rrset *build_cname(struct compiler *c, struct info *in,
                                            const struct owner *o)
{
    struct builder *b = c->b;
    b_reset(b);
    b_rr_begin(b, o, LDNS_RR_TYPE_CNAME, in->ttl);
    if (extra_of(c, in)->host_node) {
        struct owner t = rel_owner(c, extra_of(c, in)->host_node);
        b_name(b, &t);
    } else {
        b_bytes(b, extra_of(c, in)->host, extra_of(c, in)->host_len);
    }
    b_rr_end(b);
    return b_finish(c->z, b, false);
}

/* The A, AAAA or CNAME RRset of `n` with its own name as owner: for CNAME
 * chains and additional sections. NULL if it has none. */
static const struct zone_rrset *named_rrset(struct compiler *c, struct znode *n, enum named which)
{
    struct info *in = info_of(c, n);
    if (extra_of(c, in)->named_built[which])
        return extra_of(c, in)->named[which];
    extra_of(c, in)->named_built[which] = true;

    struct owner o = rel_owner(c, n);
    if (which == NAMED_CNAME) {
        if (in->kind != INFO_HOST)
            return NULL;
        extra_of(c, in)->named[NAMED_CNAME] = build_cname(c, in, &o);
    } else {
        extra_of(c, in)->named[which] =
            service_addresses(c, in, &o, which == NAMED_A ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA);
    }
    return extra_of(c, in)->named[which];
}

static size_t service_rel(const struct config_namespace *ns, const struct config_service *s,
                          uint8_t *out)
{
    size_t n = put_label(out, 0, s->name, strlen(s->name));
    n = put_label(out, n, ns->name, strlen(ns->name));
    return put_label(out, n, "svc", 3);
}

/* Keeps the PTR of address `t` to `target` for compile_ptrs(). */
static void queue_ptr(struct compiler *c, const struct config_target *t, const uint8_t *target,
                      size_t target_len, uint32_t ttl)
{
    struct ptr_list *l = &c->ptrs[t->family == AF_INET ? 0 : 1];
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct zone_ptr *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            oom(c);
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    struct zone_ptr *p = &l->v[l->n++];
    memset(p->addr, 0, sizeof(p->addr));
    memcpy(p->addr, t->addr, t->family == AF_INET ? 4 : 16);
    p->target = target;
    p->target_len = (uint8_t)target_len;
    p->ttl = ttl;
}

/* <dashed address>.<svc>.<ns>.svc.<zone> in `name`; its length, or 0 if
 * longer than 255 bytes. */
static size_t endpoint_name(const struct znode *service, const struct config_target *t,
                            uint8_t *name)
{
    char label[INET6_ADDRSTRLEN + 2];
    size_t l = dashed_label(t, label);
    size_t rl = put_label(name, 0, label, l);
    if (rl + service->len > LDNS_MAX_DOMAINLEN)
        return 0;
    memcpy(name + rl, node_name(service), service->len);
    return rl + service->len;
}

/* A and AAAA at a service of addresses. False if they do not fit in one
 * DNS message (reported). */
static bool compile_addresses(struct compiler *c, const struct config_service *s,
                              struct znode *node)
{
    struct info *in = info_of(c, node);
    const struct owner q = {OWNER_QNAME, NULL, 0};
    size_t n4 = 0, n6 = 0;
    for (uint32_t i = 0; i < s->ntargets; i++) {
        if (s->targets[i].family == AF_INET)
            n4++;
        else
            n6++;
    }

    const struct zone_rrset *a = n4 ? service_addresses(c, in, &q, LDNS_RR_TYPE_A) : NULL;
    const struct zone_rrset *aaaa = n6 ? service_addresses(c, in, &q, LDNS_RR_TYPE_AAAA) : NULL;
    if ((n4 && !a) || (n6 && !aaaa)) {
        diag_error(c->d, s->line, "service '%s': too many addresses for one DNS message", s->name);
        return false;
    }
    if (a)
        add_plan(c, node, LDNS_RR_TYPE_A, answer_plan(c, &a, 1, NULL, 0));
    if (aaaa)
        add_plan(c, node, LDNS_RR_TYPE_AAAA, answer_plan(c, &aaaa, 1, NULL, 0));
    c->z->stats.records += s->ntargets;
    return true;
}

/* Several addresses: each gets an endpoint name (Kubernetes DNS spec
 * §2.4, headless services), the target of its SRV record and of its PTR.
 * The names are not nodes of the zone: zone_find() answers them from
 * the service's own A and AAAA records, which already hold everything
 * (a third of the names of a large mapping, and most of its memory).
 * `targets[i]` becomes the name of address i: its endpoint's, or with one
 * address the service's own. Queues the PTR of every address. */
static void compile_endpoints(struct compiler *c, const struct config_namespace *ns,
                              const struct config_service *s, struct znode *node,
                              struct owner *targets)
{
    struct zone *z = c->z;
    uint32_t ttl = info_of(c, node)->ttl;
    if (s->ntargets > 1)
        node->flags |= NODE_ENDPOINTS;
    for (uint32_t i = 0; i < s->ntargets; i++) {
        const struct config_target *t = &s->targets[i];
        targets[i] = rel_owner(c, node);
        if (s->ntargets > 1) {
            uint8_t name[LDNS_MAX_DOMAINLEN + 1];
            size_t len = endpoint_name(node, t, name);
            const uint8_t *copy = len ? arena_memdup(z->arena, name, len) : NULL;
            if (len == 0) {
                char label[INET6_ADDRSTRLEN + 2];
                dashed_label(t, label);
                diag_error(c->d, t->line, "endpoint name '%s.%s.%s.svc.%s' is too long", label,
                           s->name, ns->name, c->cfg->zone);
                continue;
            }
            if (!copy) {
                oom(c);
                break;
            }
            targets[i] = (struct owner){OWNER_REL, copy, len - z->apex_len};
            z->stats.names++;
            z->stats.records++;
        }
        queue_ptr(c, t, targets[i].wire, targets[i].len + z->apex_len, ttl);
        z->stats.records++;
    }
}

/* _<port>._<proto>.<svc>.<ns>.svc.<zone>: the SRV name of a service,
 * answering `plan`. */
static void add_srv_name(struct compiler *c, const struct config_service *s, struct znode *node,
                         const struct zone_plan *plan)
{
    const char *pname = s->srv_name ? s->srv_name : s->name;
    char label[66];
    int pl = snprintf(label, sizeof(label), "_%s", pname);
    uint8_t name[LDNS_MAX_DOMAINLEN + 1];
    size_t rl = 0;
    size_t len = 0;
    if (pl <= 63) {
        rl = put_label(name, 0, label, (size_t)pl);
        snprintf(label, sizeof(label), "_%s", s->srv_proto ? s->srv_proto : "tcp");
        rl = put_label(name, rl, label, strlen(label));
        memcpy(name + rl, node_name(node), node->len);
        len = rl + node->len <= LDNS_MAX_DOMAINLEN ? rl + node->len : 0;
    }
    if (len == 0) {
        diag_error(c->d, s->line,
                   "service '%s': SRV name '_%s._%s.%s...' is too long; set a shorter "
                   "srv=_NAME._PROTO",
                   s->name, pname, s->srv_proto ? s->srv_proto : "tcp", s->name);
        return;
    }
    struct znode *port = add_node(c, name, len, INFO_PORT, NODE_IN_ZONE, 1, NULL);
    if (port)
        add_plan(c, port, LDNS_RR_TYPE_SRV, plan);
    /* _<proto>.<svc> is an empty non-terminal: a flag, not a node,
     * as there may be a million of them */
    const uint8_t *proto = name + 1 + name[0];
    node->flags |= proto_flag(proto + 2, (size_t)proto[0] - 1);
}

/* SRV (SPEC §2.4): priority 0, weights share 100, the targets' addresses
 * in ADDITIONAL; at the service's name and at its SRV name. */
static void compile_srv(struct compiler *c, const struct config_service *s, struct znode *node,
                        const struct owner *targets)
{
    struct zone *z = c->z;
    const struct owner q = {OWNER_QNAME, NULL, 0};
    uint32_t ttl = info_of(c, node)->ttl;
    struct builder *b = c->b;
    uint16_t weight = (uint16_t)(s->ntargets >= 100 ? 1 : 100 / s->ntargets);
    b_reset(b);
    for (uint32_t i = 0; i < s->ntargets; i++) {
        b_rr_begin(b, &q, LDNS_RR_TYPE_SRV, ttl);
        b_u16(b, 0);
        b_u16(b, weight);
        b_u16(b, s->targets[i].port);
        b_name(b, &targets[i]);
        b_rr_end(b);
    }
    const struct zone_rrset *srv = b_finish(z, b, false);
    z->stats.records += s->ntargets * 2; /* bare name and _port._proto */

    const struct zone_rrset *extra[2];
    size_t nextra = 0;
    if (s->ntargets == 1) {
        enum named which = s->targets[0].family == AF_INET ? NAMED_A : NAMED_AAAA;
        extra[nextra++] = named_rrset(c, node, which);
    } else {
        /* one record per endpoint, each its own name */
        b_reset(b);
        for (uint32_t i = 0; i < s->ntargets; i++) {
            const struct config_target *t = &s->targets[i];
            b_rr_begin(b, &targets[i], t->family == AF_INET ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA,
                       ttl);
            b_bytes(b, t->addr, t->family == AF_INET ? 4 : 16);
            b_rr_end(b);
        }
        extra[nextra++] = b_finish(z, b, false);
    }
    if (!srv || !extra[0]) {
        diag_error(c->d, s->line, "service '%s': its SRV answer is too large for one DNS message",
                   s->name);
        return;
    }
    const struct zone_plan *plan = answer_plan(c, &srv, 1, extra, nextra);
    add_plan(c, node, LDNS_RR_TYPE_SRV, plan);
    add_srv_name(c, s, node, plan);
}

static void compile_address_service(struct compiler *c, const struct config_namespace *ns,
                                    const struct config_service *s, struct znode *node)
{
    if (!compile_addresses(c, s, node))
        return;
    struct owner *targets = calloc(s->ntargets, sizeof(*targets));
    if (!targets) {
        oom(c);
        return;
    }
    compile_endpoints(c, ns, s, node, targets);
    if (s->targets[0].port)
        compile_srv(c, s, node, targets);
    free(targets);
}

static void compile_services(struct compiler *c)
{
    struct zone *z = c->z;
    const struct config *cfg = c->cfg;

    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        const struct config_namespace *ns = &cfg->namespaces[i];
        uint8_t name[LDNS_MAX_DOMAINLEN + 1];
        size_t rl = put_label(name, 0, ns->name, strlen(ns->name));
        rl = put_label(name, rl, "svc", 3);
        size_t len = with_apex(z, name, rl);
        if (len == 0) {
            diag_error(c->d, ns->line, "namespace name '%s.svc.%s' is too long", ns->name,
                       cfg->zone);
            continue;
        }
        if (!add_node(c, name, len, INFO_EMPTY, NODE_IN_ZONE, 0, NULL))
            return;

        for (size_t j = 0; j < ns->nservices; j++) {
            const struct config_service *s = &ns->services[j];
            rl = service_rel(ns, s, name);
            len = with_apex(z, name, rl);
            if (len == 0) {
                diag_error(c->d, s->line, "name '%s.%s.svc.%s' is longer than 255 bytes", s->name,
                           ns->name, cfg->zone);
                continue;
            }
            if (s->invalid) {
                /* reported by config.c; exists so references to it resolve */
                if (!add_node(c, name, len, INFO_BROKEN, NODE_IN_ZONE, 0, NULL))
                    return;
                continue;
            }
            bool host = s->targets[0].kind == CONFIG_TARGET_HOSTNAME;
            struct znode *node = add_node(c, name, len, host ? INFO_HOST : INFO_ADDRESS,
                                          NODE_IN_ZONE | NODE_SERVICE, host ? 4 : 3, NULL);
            if (!node)
                return;
            struct info *in = info_of(c, node);
            in->u.svc = s;
            in->ttl = s->ttl >= 0 ? (uint32_t)s->ttl : cfg->ttl;
            node->fp = service_fingerprint(s, in->ttl);
            z->stats.services++;
            if (!host)
                compile_address_service(c, ns, s, node);
            if (c->oom)
                return;
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Hostname services: CNAME, chased inside the zone (SPEC §2.3).           */

/* The node of an endpoint name, made when a hostname service points at
 * one (endpoints are otherwise not nodes: see compile_address_service()).
 * NULL if `name` is no endpoint. */
static struct znode *endpoint_node(struct compiler *c, const uint8_t *name, size_t len)
{
    uint8_t addr[16];
    int size;
    struct znode *service = endpoint_service(c->z, name, len, addr, &size);
    if (!service)
        return NULL;
    struct info *sin = info_of(c, service);
    for (uint32_t i = 0; i < sin->u.svc->ntargets; i++) {
        const struct config_target *t = &sin->u.svc->targets[i];
        if (t->family != (size == 4 ? AF_INET : AF_INET6) || memcmp(t->addr, addr, (size_t)size))
            continue;
        struct znode *n = add_node(c, name, len, INFO_ENDPOINT, NODE_IN_ZONE, 1, NULL);
        if (!n)
            return NULL;
        struct info *in = info_of(c, n);
        in->u.target = t;
        in->ttl = sin->ttl;
        uint16_t type = t->family == AF_INET ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA;
        const struct owner q = {OWNER_QNAME, NULL, 0};
        const struct zone_rrset *r = service_addresses(c, in, &q, type);
        add_plan(c, n, type, answer_plan(c, &r, 1, NULL, 0));
        c->z->stats.names--; /* counted with its service */
        return n;
    }
    return NULL;
}

/* Parses the hostname with ldns and decides whether it is ours. Reports a
 * target that points into the zone at nothing, or at itself. */
static bool resolve_host_target(struct compiler *c, struct znode *node)
{
    struct info *in = info_of(c, node);
    const struct config_target *t = &in->u.svc->targets[0];
    struct zone *z = c->z;

    ldns_rdf *rdf = NULL;
    char fq[260];
    snprintf(fq, sizeof(fq), "%s.", t->hostname);
    if (ldns_str2rdf_dname(&rdf, fq) != LDNS_STATUS_OK || !rdf) {
        diag_error(c->d, t->line, "hostname '%s' is not a valid domain name", t->hostname);
        return false;
    }
    size_t len = ldns_rdf_size(rdf);
    uint8_t *wire = arena_memdup(z->arena, ldns_rdf_data(rdf), len);
    ldns_rdf_deep_free(rdf);
    if (!wire) {
        oom(c);
        return false;
    }
    extra_of(c, in)->host = wire;
    extra_of(c, in)->host_len = len;

    uint8_t low[LDNS_MAX_DOMAINLEN + 1];
    for (size_t i = 0; i < len; i++)
        low[i] = (uint8_t)tolower(wire[i]);

    if (!name_under(low, len, z->apex, z->apex_len))
        return true;

    struct znode *target = node_lookup(z, low, len);
    if (!target)
        target = endpoint_node(c, low, len);
    if (target == node) {
        diag_error(c->d, t->line, "service '%s' points to itself ('%s')", in->u.svc->name,
                   t->hostname);
        return false;
    }
    if (!target || (target->flags & NODE_IN_ZONE) == 0 || info_of(c, target)->kind == INFO_EMPTY ||
        info_of(c, target)->kind == INFO_APEX) {
        diag_error(c->d, t->line,
                   "hostname '%s' is inside zone '%s' but names no service or endpoint of the "
                   "mapping",
                   t->hostname, c->cfg->zone);
        return false;
    }
    extra_of(c, in)->host_node = target;
    return true;
}

/* The answer to `qtype` at a hostname service: its CNAME, then the chain
 * through the zone, then the records of the last name. An in-zone name
 * without the type ends the chain with the SOA in AUTHORITY (RFC 2308 §2.2);
 * a target outside the zone ends it with the CNAMEs alone. */
/* The upstream lookup that completes an A or AAAA answer at a hostname
 * service whose target is outside the zone; NULL if none is wanted
 * (resolve=no, or no upstream servers). */
static const struct zone_external *external_of(struct compiler *c, struct znode *n)
{
    struct info *in = info_of(c, n);
    if (!c->z->resolve || in->u.svc->no_resolve || extra_of(c, in)->host_node)
        return NULL;
    const uint8_t *host = extra_of(c, in)->host;
    size_t len = extra_of(c, in)->host_len;
    bool lower = true;
    for (size_t i = 0; i < len && lower; i++)
        lower = host[i] == (uint8_t)tolower(host[i]);
    struct zone_external *ext = arena_alloc(c->z->arena, sizeof(*ext));
    uint8_t *folded = lower ? NULL : arena_alloc(c->z->arena, len);
    if (!ext || (!lower && !folded)) {
        oom(c);
        return NULL;
    }
    for (size_t i = 0; folded && i < len; i++)
        folded[i] = (uint8_t)tolower(host[i]);
    ext->name = folded ? folded : host; /* the cache's key: lower case */
    ext->len = (uint8_t)len;
    return ext;
}

/* A plan like `p` that continues with the upstream's records. */
static const struct zone_plan *with_external(struct compiler *c, const struct zone_plan *p,
                                             const struct zone_external *ext)
{
    if (!p || !ext)
        return p;
    size_t nan = p->nsets[ZONE_ANSWER], nns = p->nsets[ZONE_AUTHORITY];
    size_t nar = p->nsets[ZONE_ADDITIONAL];
    return new_plan_ext(c->z, p->rcode, p->aa, p->sets, nan, p->sets + nan, nns,
                        p->sets + nan + nns, nar, ext);
}

static const struct zone_plan *chase(struct compiler *c, struct znode *node, uint16_t qtype,
                                     const struct zone_rrset *first)
{
    const struct zone_rrset *an[MAX_CHAIN + 1];
    const struct znode *seen[MAX_CHAIN + 1];
    size_t nan = 0, nseen = 0;
    an[nan++] = first;
    seen[nseen++] = node;

    struct znode *cur = extra_of(c, info_of(c, node))->host_node;
    const struct zone_rrset *ns = NULL;
    const struct zone_external *ext = NULL;
    while (cur) {
        struct info *in = info_of(c, cur);
        if (in->kind == INFO_HOST) {
            bool loop = false;
            for (size_t i = 0; i < nseen; i++)
                loop |= seen[i] == cur;
            if (loop || nan >= MAX_CHAIN)
                break; /* loops and long chains end here, with NOERROR */
            an[nan++] = named_rrset(c, cur, NAMED_CNAME);
            seen[nseen++] = cur;
            if (!extra_of(c, in)->host_node &&
                (qtype == LDNS_RR_TYPE_A || qtype == LDNS_RR_TYPE_AAAA))
                ext = external_of(c, cur); /* the chain leaves the zone here */
            cur = extra_of(c, in)->host_node;
            continue;
        }
        const struct zone_rrset *r = NULL;
        if (qtype == LDNS_RR_TYPE_A)
            r = named_rrset(c, cur, NAMED_A);
        else if (qtype == LDNS_RR_TYPE_AAAA)
            r = named_rrset(c, cur, NAMED_AAAA);
        if (r)
            an[nan++] = r;
        else
            ns = c->soa;
        break;
    }
    for (size_t i = 0; i < nan; i++)
        if (!an[i]) {
            oom(c);
            return NULL;
        }
    return new_plan_ext(c->z, LDNS_RCODE_NOERROR, true, an, nan, ns ? &ns : NULL, ns ? 1 : 0, NULL,
                        0, ext);
}

static void warn_loop(struct compiler *c, struct znode *node)
{
    const struct znode *cur = extra_of(c, info_of(c, node))->host_node;
    for (int i = 0; cur && i < MAX_CHAIN; i++) {
        struct info *in = info_of(c, cur);
        if (in->kind != INFO_HOST)
            return;
        if (cur == node) {
            diag_warning(c->d, info_of(c, node)->u.svc->targets[0].line,
                         "service '%s' is part of a CNAME loop; answers stop after one round",
                         info_of(c, node)->u.svc->name);
            return;
        }
        cur = extra_of(c, in)->host_node;
    }
}

/* Without upstream servers, hostnames outside the zone get their CNAME
 * alone, which glibc and musl clients cannot use: say so, once. */
static void warn_unresolved(struct compiler *c)
{
    if (c->z->resolve || !c->cfg->upstream_note[0])
        return;
    size_t unresolved = 0;
    int first_line = 0;
    for (size_t i = 0; i < c->ninfo; i++) {
        struct info *in = &c->info[i];
        if (in->kind == INFO_HOST && !extra_of(c, in)->host_node && !in->u.svc->no_resolve) {
            if (unresolved++ == 0)
                first_line = in->u.svc->line;
        }
    }
    if (unresolved)
        diag_warning(c->d, first_line,
                     "%zu hostname target%s outside the zone will get the CNAME alone: no "
                     "upstream servers (%s); set [upstream] servers",
                     unresolved, unresolved == 1 ? "" : "s", c->cfg->upstream_note);
}

/* The plans of a hostname service whose target is resolved. False when out
 * of memory. */
static bool compile_host(struct compiler *c, struct info *in)
{
    const struct owner q = {OWNER_QNAME, NULL, 0};
    struct znode *node = in->node;
    const struct zone_rrset *cname = build_cname(c, in, &q);
    if (!cname) {
        oom(c);
        return false;
    }
    c->z->stats.records++;

    /* CNAME first: it also answers ANY (RFC 8482 §4.2). A, AAAA and TXT
     * follow the chain as CoreDNS does; SRV and other types are NODATA. */
    const struct zone_plan *alone = answer_plan(c, &cname, 1, NULL, 0);
    add_plan(c, node, LDNS_RR_TYPE_CNAME, alone);
    if (!extra_of(c, in)->host_node || in->u.svc->no_resolve) {
        /* Outside the zone: A and AAAA go on with the upstream's records
         * (SPEC §2.3); resolve=no gives the CNAME alone. */
        const struct zone_plan *resolved = with_external(c, alone, external_of(c, node));
        add_plan(c, node, LDNS_RR_TYPE_A, resolved); /* one plan: the query says the type */
        add_plan(c, node, LDNS_RR_TYPE_AAAA, resolved);
        add_plan(c, node, LDNS_RR_TYPE_TXT, alone);
        return true;
    }

    warn_loop(c, node);
    add_plan(c, node, LDNS_RR_TYPE_A, chase(c, node, LDNS_RR_TYPE_A, cname));
    add_plan(c, node, LDNS_RR_TYPE_AAAA, chase(c, node, LDNS_RR_TYPE_AAAA, cname));
    add_plan(c, node, LDNS_RR_TYPE_TXT, chase(c, node, LDNS_RR_TYPE_TXT, cname));
    return true;
}

static void compile_hosts(struct compiler *c)
{
    /* the targets of hostname services are resolved (and endpoint nodes
     * added) first: a chain may pass through any of them */
    size_t count = c->ninfo;
    unsigned errors_before = c->d->errors;
    for (size_t i = 0; i < count; i++)
        if (c->info[i].kind == INFO_HOST)
            resolve_host_target(c, c->info[i].node);
    if (c->d->errors != errors_before || c->oom)
        return;

    warn_unresolved(c);
    for (size_t i = 0; i < count; i++)
        if (c->info[i].kind == INFO_HOST && !compile_host(c, &c->info[i]))
            return;
}

/* ---------------------------------------------------------------------- */
/* Reverse names (SPEC §2.5).                                              */

/* Sorts `src` into `dst` by the first `size` bytes of the address, keeping
 * the order of equal ones (`src` is scratch space, left in disorder): a
 * byte-wise radix sort, which for a million IPv4 addresses is four passes
 * over the array instead of 20 million calls to memcmp. */
static void sort_ptrs(struct zone_ptr *src, struct zone_ptr *dst, size_t n, size_t size)
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

/* Sorts each family's PTRs by address into the zone; the PTRs of one
 * address are one RRset, so they share one TTL (RFC 2181 §5.2): the
 * smallest of their services'. */
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
        for (size_t i = 0; i < l->n;) {
            size_t k = i;
            uint32_t ttl = UINT32_MAX;
            for (; k < l->n && memcmp(v[k].addr, v[i].addr, 16) == 0; k++)
                ttl = v[k].ttl < ttl ? v[k].ttl : ttl;
            for (; i < k; i++)
                v[i].ttl = ttl;
        }
        if (f == 0) {
            z->rev4 = v;
            z->nrev4 = l->n;
        } else {
            z->rev6 = v;
            z->nrev6 = l->n;
        }
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
        if (name_under(z->apex, z->apex_len, rz->apex, rz->apex_len) ||
            name_under(rz->apex, rz->apex_len, z->apex, z->apex_len)) {
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

static uint64_t settings_fingerprint(const struct compiler *c)
{
    const struct config *cfg = c->cfg;
    uint64_t h = hash_bytes(5, c->z->apex, c->z->apex_len);
    for (size_t i = 0; i < c->z->nrevs; i++)
        h = mix64(h ^ hash_bytes(8, c->z->revs[i].apex, c->z->revs[i].apex_len));
    h = mix64(h ^ cfg->ttl);
    h = mix64(h ^ hash_bytes(6, c->ns4[0], c->nns4 * 4));
    h = mix64(h ^ hash_bytes(7, c->ns6[0], c->nns6 * 16));
    return h;
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
     * lines: walk them in step, and look a name up only where they part. */
    size_t matched = 0, j = 0;
    for (size_t i = 0; i < z->nservices; i++) {
        const struct znode *n = z->services[i];
        const struct znode *o = j < old->nservices ? old->services[j] : NULL;
        if (!o || o->len != n->len || memcmp(node_name(o), node_name(n), n->len) != 0) {
            o = node_lookup(old, node_name(n), n->len);
            if (o && !(o->flags & NODE_SERVICE))
                o = NULL;
        }
        if (o) {
            matched++;
            j = (size_t)o->info + 1;
            if (o->fp != n->fp)
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
static size_t estimate_names(const struct config *cfg)
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
static bool compiler_init(struct compiler *c, time_t now)
{
    struct zone *z = c->z;
    z->arena = arena_new();
    c->scratch = arena_new();
    c->b = malloc(sizeof(*c->b));
    if (!z->arena || !c->scratch || !c->b)
        return false;
    if (getrandom(&z->seed, sizeof(z->seed), 0) != sizeof(z->seed))
        z->seed = (uint64_t)now ^ (uint64_t)(uintptr_t)z;

    /* at most 70% full: short probe sequences, a table a third smaller
     * than at 50% */
    size_t names = estimate_names(c->cfg);
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
static void compiler_finish(struct compiler *c)
{
    free(c->info);
    free(c->b);
    free(c->ns4);
    free(c->ns6);
    free(c->ptrs[0].v);
    free(c->ptrs[1].v);
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

/* The settings the server reads from the zone: the UDP reply size, and
 * how hostname targets outside the zone are resolved upstream. */
static void copy_settings(struct zone *z, const struct config *cfg)
{
    z->udp_max = (uint16_t)cfg->udp_max_size;
    z->resolve = cfg->nupstream > 0;
    z->upstream.nservers = 0;
    for (size_t i = 0; i < cfg->nupstream && i < UPSTREAM_MAX_SERVERS; i++) {
        z->upstream.servers[i] = cfg->upstream[i].addr;
        z->upstream.lens[i] = cfg->upstream[i].addrlen;
        z->upstream.nservers++;
    }
    z->upstream.timeout_ms = cfg->upstream_timeout * 1000;
    z->upstream.cache_size = cfg->cache_size;
    z->upstream.max_stale = cfg->max_stale;
    z->upstream.negative_ttl = cfg->negative_ttl;
}

/* zone.services: the services in the order of the file, for the next
 * reload's count_changes(); a service's `info` becomes its place there.
 * False when out of memory. */
static bool list_services(struct compiler *c)
{
    struct zone *z = c->z;
    z->services = arena_alloc(z->arena, (z->stats.services + 1) * sizeof(*z->services));
    if (!z->services)
        return false;
    for (size_t i = 0; i < c->ninfo; i++) {
        struct znode *node = c->info[i].node;
        if (node->flags & NODE_SERVICE) {
            node->info = (uint32_t)z->nservices;
            z->services[z->nservices++] = node;
        }
    }
    return true;
}

/* The SOA serial: `now`, or the old zone's if nothing `changed`, and never
 * behind the old one. */
static uint32_t next_serial(const struct zone *old, bool changed, time_t now)
{
    uint32_t serial = (uint32_t)now;
    if (old) {
        uint32_t prev = old->stats.serial;
        if (!changed)
            serial = prev;
        else if ((int32_t)(serial - prev) <= 0) /* RFC 1982: never go back */
            serial = prev + 1;
    }
    return serial;
}

struct zone *zone_compile(const struct config *cfg, const struct zone *old, time_t now,
                          struct diag *d)
{
    struct zone *z = calloc(1, sizeof(*z));
    struct compiler c = {.z = z, .cfg = cfg, .d = d};
    unsigned errors_before = d->errors;
    if (!z || !compiler_init(&c, now) || !set_apex(&c))
        goto fail;
    copy_settings(z, cfg);

    if (!build_fixed(&c) || !compile_reverse_zones(&c))
        goto fail;
    compile_services(&c);
    if (!c.oom)
        compile_hosts(&c);
    if (c.oom)
        goto fail;
    if (d->errors)
        goto reject; /* found here or by config.c: already reported */
    compile_ptrs(&c);
    if (c.oom)
        goto fail;

    z->settings_fp = settings_fingerprint(&c);
    if (!list_services(&c))
        goto fail;
    set_serial(&c, next_serial(old, count_changes(&c, old), now));
    z->stats.records += 5; /* SOA, NS, TXT, ns.dns A/AAAA */
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
