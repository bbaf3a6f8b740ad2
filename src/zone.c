/* zone.c -- compiles a config into the immutable zone of pre-rendered answers. */
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
#include <sys/mman.h>
#include <sys/random.h>

#include "svcmapd/arena.h"
#include "svcmapd/wire.h"

_Static_assert(CONFIG_MAX_UPSTREAMS == UPSTREAM_MAX_SERVERS, "one limit for upstream servers");

#define MAX_FIX 4096

#define MAX_CHAIN      10 /* CNAMEs followed, as CoreDNS's maxCnameChainLength */
#define VERSION_TTL    28800
#define SCHEMA_VERSION "1.1.0" /* Kubernetes DNS schema (kubernetes/dns specification §2.2) */

enum node_flag {
    NODE_IN_ZONE = 0x01,   /* below the apex: plans may hold apex slots */
    NODE_SERVICE = 0x08,   /* <svc>.<ns>.svc.<zone>: carries a fingerprint */
    NODE_ENDPOINTS = 0x10, /* a service of several addresses: its endpoint
                            * names are answered from its own records */
};

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

static uint8_t type_bit(uint16_t qtype)
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

struct zone {
    struct arena *arena;
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
    const struct zone_plan *refused;

    struct upstream_settings upstream;
    bool resolve; /* upstream servers are configured */
    uint16_t udp_max;
    char name[LDNS_MAX_DOMAINLEN + 1];

    uint64_t settings_fp;    /* zone, ttl, listen: what is not in a service */
    struct znode **services; /* in the order of the file, for the next reload */
    size_t nservices;

    struct zone_stats stats;
};

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

static uint64_t hash_bytes(uint64_t seed, const uint8_t *p, size_t n)
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

/* The table is read at random by every query: big ones go on huge pages
 * (where the kernel has them), which cuts TLB misses on lookups and on
 * the millions of inserts of a large compile. */
static struct slot *slots_new(size_t n)
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

static void slots_free(struct slot *slots, size_t n)
{
    size_t bytes = n * sizeof(struct slot);
    if (!slots)
        return;
    if (bytes < (2u << 20))
        free(slots);
    else
        munmap(slots, bytes);
}

static struct znode *table_find(const struct zone *z, const uint8_t *name, size_t len, uint64_t h)
{
    for (size_t i = h & z->mask;; i = (i + 1) & z->mask) {
        const struct slot *s = &z->slots[i];
        if (!s->node)
            return NULL;
        if (s->hash == h && s->node->len == len && memcmp(node_name(s->node), name, len) == 0)
            return s->node;
    }
}

static struct znode *node_lookup(const struct zone *z, const uint8_t *name, size_t len)
{
    return table_find(z, name, len, hash_bytes(z->seed, name, len));
}

/* ---------------------------------------------------------------------- */
/* Building records in wire form.                                          */

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

static void b_reset(struct builder *b)
{
    b->len = 0;
    b->nfix = 0;
    b->count = 0;
    b->uniform = true;
    b->overflow = false;
}

static void b_bytes(struct builder *b, const void *p, size_t n)
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

static void b_u16(struct builder *b, uint16_t v)
{
    uint8_t x[2];
    ldns_write_uint16(x, v);
    b_bytes(b, x, 2);
}

static void b_u32(struct builder *b, uint32_t v)
{
    uint8_t x[4];
    ldns_write_uint32(x, v);
    b_bytes(b, x, 4);
}

/* A 2-byte slot for the pointer to the apex, patched per query. */
static void b_apex_ptr(struct builder *b)
{
    if (b->nfix == MAX_FIX) {
        b->overflow = true;
        return;
    }
    b->fix[b->nfix++] = (uint16_t)b->len;
    b_u16(b, 0xc000);
}

static void b_name(struct builder *b, const struct owner *o)
{
    switch (o->kind) {
    case OWNER_QNAME:
        b_u16(b, 0xc000 | LDNS_HEADER_SIZE); /* RFC 1035 §4.1.4 */
        break;
    case OWNER_REL:
        b_bytes(b, o->wire, o->len);
        b_apex_ptr(b);
        break;
    case OWNER_ABS:
        b_bytes(b, o->wire, o->len);
        break;
    }
}

static void b_rr_begin(struct builder *b, const struct owner *o, uint16_t type, uint32_t ttl)
{
    b->rr_start = b->len;
    b->rr_fix = b->nfix;
    b_name(b, o);
    b_u16(b, type);
    b_u16(b, LDNS_RR_CLASS_IN);
    b_u32(b, ttl);
    b_u16(b, 0); /* RDLENGTH, set by b_rr_end */
    b->rdata = b->len;
}

static void b_rr_end(struct builder *b)
{
    if (b->overflow)
        return;
    size_t rdlen = b->len - b->rdata;
    ldns_write_uint16(b->buf + b->rdata - 2, (uint16_t)rdlen);

    size_t rrlen = b->len - b->rr_start;
    size_t nfix = b->nfix - b->rr_fix;
    if (b->count == 0) {
        b->first_len = rrlen;
        b->first_nfix = nfix;
    } else if (b->uniform) {
        b->uniform = rrlen == b->first_len && nfix == b->first_nfix;
        for (size_t i = 0; b->uniform && i < nfix; i++)
            b->uniform = b->fix[b->rr_fix + i] - b->rr_start == b->fix[i];
    }
    b->count++;
}

/* Copies what was built into the zone. `shuffle` asks for per-query
 * shuffling (address RRsets, CoreDNS `loadbalance`); it applies only when
 * all records have the same shape, which is always true of A and AAAA. */
static const struct zone_rrset *b_finish(struct zone *z, struct builder *b, bool shuffle)
{
    if (b->overflow || b->count == 0)
        return NULL;
    bool rel = shuffle && b->uniform && b->count > 1;
    size_t nfix = rel ? b->first_nfix : b->nfix;
    /* one allocation: the set, its slots, its bytes */
    struct zone_rrset *r = arena_alloc(z->arena, sizeof(*r) + nfix * sizeof(uint16_t) + b->len);
    if (!r)
        return NULL;
    uint16_t *fix = (uint16_t *)(void *)(r + 1);
    uint8_t *data = (uint8_t *)(fix + nfix);
    memcpy(fix, b->fix, nfix * sizeof(uint16_t));
    memcpy(data, b->buf, b->len);
    r->len = (uint16_t)b->len;
    r->count = b->count;
    r->rrlen = rel ? (uint16_t)b->first_len : 0;
    r->nfix = (uint16_t)nfix;
    return r;
}

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

struct extra {
    /* RRsets owned by this name written with its own name as owner, for
     * CNAME chains and additional sections; built when first needed. */
    const struct zone_rrset *named[3]; /* A, AAAA, CNAME */
    bool named_built[3];
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
    uint8_t *serial_slots[8];
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

/* SOA with `owner` as owner; mname and rname are written the same way, so
 * in the zone they echo the query's case like the owner (CoreDNS does). */
static const struct zone_rrset *build_soa(struct compiler *c, const struct owner *owner)
{
    const struct config *cfg = c->cfg;
    struct builder *b = c->b;
    uint32_t ttl = cfg->ttl < 300 ? cfg->ttl : 300;
    static const uint8_t ns_dns[] = "\x02ns\x03"
                                    "dns";
    static const uint8_t hostmaster[] = "\x0ahostmaster";

    b_reset(b);
    b_rr_begin(b, owner, LDNS_RR_TYPE_SOA, ttl);
    if (owner->kind == OWNER_ABS) {
        /* outside the zone: spell out mname and rname */
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
    if (r && c->serial_slot_count < 8)
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

static bool build_fixed(struct compiler *c)
{
    struct zone *z = c->z;
    const struct config *cfg = c->cfg;
    const struct owner apex_owner = {OWNER_REL, NULL, 0};
    bool existed;

    /* The apex owner is the apex pointer itself: zero labels, then the slot. */
    c->soa = build_soa(c, &apex_owner);
    static const uint8_t in_addr_arpa[] = "\x07in-addr\x04"
                                          "arpa";
    static const uint8_t ip6_arpa[] = "\x03ip6\x04"
                                      "arpa";
    struct owner rev4 = {OWNER_ABS, in_addr_arpa, sizeof(in_addr_arpa)};
    struct owner rev6 = {OWNER_ABS, ip6_arpa, sizeof(ip6_arpa)};
    c->soa_rev4 = build_soa(c, &rev4);
    c->soa_rev6 = build_soa(c, &rev6);
    if (!c->soa || !c->soa_rev4 || !c->soa_rev6)
        return false;

    z->nxdomain = new_plan(z, LDNS_RCODE_NXDOMAIN, true, NULL, 0, &c->soa, 1, NULL, 0);
    z->nodata = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &c->soa, 1, NULL, 0);
    z->nodata_rev4 = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &c->soa_rev4, 1, NULL, 0);
    z->nodata_rev6 = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, &c->soa_rev6, 1, NULL, 0);
    z->found_plan = new_plan(z, LDNS_RCODE_NOERROR, true, NULL, 0, NULL, 0, NULL, 0);
    z->refused = new_plan(z, LDNS_RCODE_REFUSED, false, NULL, 0, NULL, 0, NULL, 0);
    if (!z->nxdomain || !z->nodata || !z->nodata_rev4 || !z->nodata_rev6 || !z->refused ||
        !z->found_plan)
        return false;

    /* apex: SOA and NS (with ns.dns glue); everything else NODATA */
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

    struct builder *b = c->b;
    b_reset(b);
    b_rr_begin(b, &apex_owner, LDNS_RR_TYPE_NS, cfg->ttl);
    struct owner ns_rel = rel_owner(c, nsdns);
    b_name(b, &ns_rel);
    b_rr_end(b);
    const struct zone_rrset *ns = b_finish(z, b, false);
    const struct zone_rrset *glue[2];
    size_t nglue = 0;
    if (c->nns4)
        glue[nglue++] =
            build_addresses(c, &ns_rel, LDNS_RR_TYPE_A, cfg->ttl, c->ns4[0], 4, c->nns4);
    if (c->nns6)
        glue[nglue++] =
            build_addresses(c, &ns_rel, LDNS_RR_TYPE_AAAA, cfg->ttl, c->ns6[0], 16, c->nns6);
    add_plan(c, apex, LDNS_RR_TYPE_NS, answer_plan(c, &ns, 1, glue, nglue));

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

    /* dns-version.<zone> TXT "1.1.0", TTL 28800 whatever the zone's ttl */
    n = put_label(name, 0, "dns-version", 11);
    n = with_apex(z, name, n);
    struct znode *version = add_node(c, name, n, INFO_VERSION, NODE_IN_ZONE, 1, NULL);
    if (!version)
        return false;
    b_reset(b);
    b_rr_begin(b, &q, LDNS_RR_TYPE_TXT, VERSION_TTL);
    uint8_t txt[] = {(uint8_t)strlen(SCHEMA_VERSION)};
    b_bytes(b, txt, 1);
    b_bytes(b, SCHEMA_VERSION, strlen(SCHEMA_VERSION));
    b_rr_end(b);
    const struct zone_rrset *t = b_finish(z, b, false);
    add_plan(c, version, LDNS_RR_TYPE_TXT, answer_plan(c, &t, 1, NULL, 0));

    /* svc.<zone> and pod.<zone> exist and are empty (SPEC §2.1) */
    n = with_apex(z, name, put_label(name, 0, "svc", 3));
    if (!add_node(c, name, n, INFO_EMPTY, NODE_IN_ZONE, 0, &existed))
        return false;
    n = with_apex(z, name, put_label(name, 0, "pod", 3));
    if (!add_node(c, name, n, INFO_EMPTY, NODE_IN_ZONE, 0, &existed))
        return false;
    return !c->oom;
}

/* ---------------------------------------------------------------------- */
/* Services.                                                               */

/* `192-168-1-10`, `2001-db8--5`: the endpoint label CoreDNS gives an
 * address without a hostname (a trailing '-' gets a '0'). */
static size_t dashed_label(const struct config_target *t, char *out)
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
static struct znode *endpoint_service(const struct zone *z, const uint8_t *name, size_t len,
                                      uint8_t addr[16], int *size)
{
    size_t l = name[0];
    if (l == 0 || 1 + l >= len)
        return NULL;
    struct znode *service = node_lookup(z, name + 1 + l, len - 1 - l);
    if (!service || !(service->flags & NODE_ENDPOINTS))
        return NULL;
    *size = dashed_address(name, addr);
    return *size ? service : NULL;
}

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

/* The A (0), AAAA (1) or CNAME (2) RRset of `n` with its own name as owner:
 * for CNAME chains and additional sections. NULL if it has none. */
static const struct zone_rrset *named_rrset(struct compiler *c, struct znode *n, int which)
{
    struct info *in = info_of(c, n);
    if (extra_of(c, in)->named_built[which])
        return extra_of(c, in)->named[which];
    extra_of(c, in)->named_built[which] = true;

    struct owner o = rel_owner(c, n);
    if (which == 2) {
        if (in->kind != INFO_HOST)
            return NULL;
        struct builder *b = c->b;
        b_reset(b);
        b_rr_begin(b, &o, LDNS_RR_TYPE_CNAME, in->ttl);
        if (extra_of(c, in)->host_node) {
            struct owner t = rel_owner(c, extra_of(c, in)->host_node);
            b_name(b, &t);
        } else {
            b_bytes(b, extra_of(c, in)->host, extra_of(c, in)->host_len);
        }
        b_rr_end(b);
        extra_of(c, in)->named[2] = b_finish(c->z, b, false);
    } else {
        extra_of(c, in)->named[which] =
            service_addresses(c, in, &o, which == 0 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA);
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

static void compile_address_service(struct compiler *c, const struct config_namespace *ns,
                                    const struct config_service *s, struct znode *node)
{
    struct zone *z = c->z;
    struct info *in = info_of(c, node);
    const struct owner q = {OWNER_QNAME, NULL, 0};
    uint32_t ttl = in->ttl;
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
        return;
    }
    if (a)
        add_plan(c, node, LDNS_RR_TYPE_A, answer_plan(c, &a, 1, NULL, 0));
    if (aaaa)
        add_plan(c, node, LDNS_RR_TYPE_AAAA, answer_plan(c, &aaaa, 1, NULL, 0));
    z->stats.records += s->ntargets;

    /* Several addresses: each gets an endpoint name (Kubernetes DNS spec
     * §2.4, headless services), the target of its SRV record and of its PTR.
     * The names are not nodes of the zone: zone_find() answers them from
     * the service's own A and AAAA records, which already hold everything
     * (a third of the names of a large mapping, and most of its memory). */
    struct owner *targets = calloc(s->ntargets, sizeof(*targets));
    if (!targets) {
        oom(c);
        return;
    }
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

    if (s->targets[0].port) {
        /* SRV (SPEC §2.4): priority 0, weights share 100, the target's
         * addresses in ADDITIONAL. */
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
            int which = s->targets[0].family == AF_INET ? 0 : 1;
            extra[nextra++] = named_rrset(c, node, which);
        } else {
            /* one record per endpoint, each its own name */
            b_reset(b);
            for (uint32_t i = 0; i < s->ntargets; i++) {
                const struct config_target *t = &s->targets[i];
                b_rr_begin(b, &targets[i],
                           t->family == AF_INET ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA, ttl);
                b_bytes(b, t->addr, t->family == AF_INET ? 4 : 16);
                b_rr_end(b);
            }
            extra[nextra++] = b_finish(z, b, false);
        }
        if (!srv || !extra[0]) {
            diag_error(c->d, s->line,
                       "service '%s': its SRV answer is too large for one DNS message", s->name);
            free(targets);
            return;
        }
        const struct zone_plan *plan = answer_plan(c, &srv, 1, extra, nextra);
        add_plan(c, node, LDNS_RR_TYPE_SRV, plan);

        /* _<port>._<proto>.<svc>.<ns>.svc.<zone> */
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
        } else {
            struct znode *port = add_node(c, name, len, INFO_PORT, NODE_IN_ZONE, 1, NULL);
            if (port)
                add_plan(c, port, LDNS_RR_TYPE_SRV, plan);
        }
    }
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

    if (!wire_name_in(low, len, z->apex, z->apex_len))
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
    size_t nan = p->nsets[0], nns = p->nsets[1], nar = p->nsets[2];
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
            an[nan++] = named_rrset(c, cur, 2);
            seen[nseen++] = cur;
            if (!extra_of(c, in)->host_node &&
                (qtype == LDNS_RR_TYPE_A || qtype == LDNS_RR_TYPE_AAAA))
                ext = external_of(c, cur); /* the chain leaves the zone here */
            cur = extra_of(c, in)->host_node;
            continue;
        }
        const struct zone_rrset *r = NULL;
        if (qtype == LDNS_RR_TYPE_A)
            r = named_rrset(c, cur, 0);
        else if (qtype == LDNS_RR_TYPE_AAAA)
            r = named_rrset(c, cur, 1);
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

static void compile_hosts(struct compiler *c)
{
    size_t count = c->ninfo;
    unsigned errors_before = c->d->errors;
    for (size_t i = 0; i < count; i++)
        if (c->info[i].kind == INFO_HOST)
            resolve_host_target(c, c->info[i].node);
    if (c->d->errors != errors_before || c->oom)
        return;

    /* Without upstream servers, hostnames outside the zone get their CNAME
     * alone, which glibc and musl clients cannot use: say so, once. */
    size_t unresolved = 0;
    int first_line = 0;
    for (size_t i = 0; i < count && !c->z->resolve && c->cfg->upstream_note[0]; i++) {
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

    const struct owner q = {OWNER_QNAME, NULL, 0};
    for (size_t i = 0; i < count; i++) {
        struct info *in = &c->info[i];
        if (in->kind != INFO_HOST)
            continue;

        struct znode *node = in->node;
        struct builder *b = c->b;
        b_reset(b);
        b_rr_begin(b, &q, LDNS_RR_TYPE_CNAME, in->ttl);
        if (extra_of(c, in)->host_node) {
            struct owner t = rel_owner(c, extra_of(c, in)->host_node);
            b_name(b, &t);
        } else {
            b_bytes(b, extra_of(c, in)->host, extra_of(c, in)->host_len);
        }
        b_rr_end(b);
        const struct zone_rrset *cname = b_finish(c->z, b, false);
        if (!cname) {
            oom(c);
            return;
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
            continue;
        }

        warn_loop(c, node);
        add_plan(c, node, LDNS_RR_TYPE_A, chase(c, node, LDNS_RR_TYPE_A, cname));
        add_plan(c, node, LDNS_RR_TYPE_AAAA, chase(c, node, LDNS_RR_TYPE_AAAA, cname));
        add_plan(c, node, LDNS_RR_TYPE_TXT, chase(c, node, LDNS_RR_TYPE_TXT, cname));
    }
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

/* ---------------------------------------------------------------------- */

static uint64_t settings_fingerprint(const struct compiler *c)
{
    const struct config *cfg = c->cfg;
    uint64_t h = hash_bytes(5, c->z->apex, c->z->apex_len);
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

struct zone *zone_compile(const struct config *cfg, const struct zone *old, time_t now,
                          struct diag *d)
{
    struct zone *z = calloc(1, sizeof(*z));
    struct compiler c = {.z = z, .cfg = cfg, .d = d};
    unsigned errors_before = d->errors;
    if (!z)
        goto fail;
    z->arena = arena_new();
    c.scratch = arena_new();
    c.b = malloc(sizeof(*c.b));
    if (!z->arena || !c.scratch || !c.b)
        goto fail;
    if (getrandom(&z->seed, sizeof(z->seed), 0) != sizeof(z->seed))
        z->seed = (uint64_t)now ^ (uint64_t)(uintptr_t)z;

    /* at most 70% full: short probe sequences, a table a third smaller
     * than at 50% */
    size_t names = estimate_names(cfg);
    size_t cap = 64;
    while (cap * 7 < names * 10)
        cap *= 2;
    c.info = malloc(names * sizeof(*c.info)); /* grown if the estimate is short */
    c.infocap = c.info ? names : 0;

    z->slots = slots_new(cap);
    if (!z->slots)
        goto fail;
    z->mask = cap - 1;

    /* the apex, in wire form and lower case (config.c folded it) */
    size_t n = 0;
    for (const char *p = cfg->zone; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        n = put_label(z->apex, n, p, l);
        p += l + (dot ? 1 : 0);
    }
    z->apex[n++] = 0;
    z->apex_len = n;
    if (n > LDNS_MAX_DOMAINLEN - 20) {
        diag_error(d, cfg->line[CONFIG_ZONE], "zone '%s' is too long to hold service names",
                   cfg->zone);
        goto fail;
    }

    z->udp_max = (uint16_t)cfg->udp_max_size;
    snprintf(z->name, sizeof(z->name), "%s", cfg->zone);

    /* upstream resolution of hostname targets outside the zone */
    z->resolve = cfg->nupstream > 0;
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

    if (!build_fixed(&c))
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
    z->services = arena_alloc(z->arena, (z->stats.services + 1) * sizeof(*z->services));
    if (!z->services)
        goto fail;
    for (size_t i = 0; i < c.ninfo; i++) {
        struct znode *node = c.info[i].node;
        if (node->flags & NODE_SERVICE) {
            node->info = (uint32_t)z->nservices;
            z->services[z->nservices++] = node;
        }
    }
    bool changed = count_changes(&c, old);
    uint32_t serial = (uint32_t)now;
    if (old) {
        uint32_t prev = old->stats.serial;
        if (!changed)
            serial = prev;
        else if ((int32_t)(serial - prev) <= 0) /* RFC 1982: never go back */
            serial = prev + 1;
    }
    set_serial(&c, serial);
    z->stats.records += 5; /* SOA, NS, TXT, ns.dns A/AAAA */
    z->stats.bytes = arena_size(z->arena) + cap * sizeof(*z->slots);

    free(c.info);
    free(c.b);
    free(c.ns4);
    free(c.ns6);
    free(c.ptrs[0].v);
    free(c.ptrs[1].v);
    arena_free(c.scratch);
    return z;

fail:
    if (d->errors == errors_before)
        diag_error(d, 0, "out of memory while compiling the zone");
reject:
    free(c.info);
    free(c.b);
    free(c.ns4);
    free(c.ns6);
    free(c.ptrs[0].v);
    free(c.ptrs[1].v);
    arena_free(c.scratch);
    zone_free(z);
    return NULL;
}

void zone_free(struct zone *z)
{
    if (!z)
        return;
    arena_free(z->arena);
    slots_free(z->slots, z->mask + 1);
    free(z);
}

const struct zone_stats *zone_stats(const struct zone *z)
{
    return &z->stats;
}

const struct upstream_settings *zone_upstream(const struct zone *z)
{
    return z->resolve ? &z->upstream : NULL;
}

const char *zone_name(const struct zone *z)
{
    return z->name;
}

uint16_t zone_udp_max(const struct zone *z)
{
    return z->udp_max;
}

/* The address of a reverse name: d.c.b.a.in-addr.arpa (decimal labels
 * 0-255) or 32 one-nibble labels then ip6.arpa. Returns 4, 16, or 0 if
 * `lname` is no such name. */
static int reverse_address(const uint8_t *lname, size_t len, uint8_t addr[16])
{
    static const uint8_t in_addr_arpa[] = "\x07in-addr\x04"
                                          "arpa";
    static const uint8_t ip6_arpa[] = "\x03ip6\x04"
                                      "arpa";
    size_t pos = 0;
    memset(addr, 0, 16);
    if (len > sizeof(in_addr_arpa) &&
        memcmp(lname + len - sizeof(in_addr_arpa), in_addr_arpa, sizeof(in_addr_arpa)) == 0) {
        for (int i = 3; i >= 0; i--) {
            uint8_t l = lname[pos];
            if (l < 1 || l > 3 || pos + 1 + l > len - sizeof(in_addr_arpa))
                return 0;
            if (l > 1 && lname[pos + 1] == '0')
                return 0; /* no leading zeros */
            unsigned v = 0;
            for (uint8_t k = 1; k <= l; k++) {
                uint8_t ch = lname[pos + k];
                if (ch < '0' || ch > '9')
                    return 0;
                v = v * 10 + (unsigned)(ch - '0');
            }
            if (v > 255)
                return 0;
            addr[i] = (uint8_t)v;
            pos += 1 + (size_t)l;
        }
        return pos == len - sizeof(in_addr_arpa) ? 4 : 0;
    }
    if (len == 64 + sizeof(ip6_arpa) &&
        memcmp(lname + len - sizeof(ip6_arpa), ip6_arpa, sizeof(ip6_arpa)) == 0) {
        for (int i = 31; i >= 0; i--, pos += 2) {
            uint8_t ch = lname[pos + 1];
            if (lname[pos] != 1)
                return 0;
            unsigned v = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                         : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                                  : 16;
            if (v > 15)
                return 0;
            addr[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
        }
        return 16;
    }
    return 0;
}

/* The PTRs of a reverse name, found by binary search. */
static void find_ptrs(const struct zone *z, const uint8_t *lname, size_t len, uint16_t qtype,
                      struct zone_found *out)
{
    uint8_t addr[16];
    int family = reverse_address(lname, len, addr);
    const struct zone_ptr *v = family == 4 ? z->rev4 : z->rev6;
    size_t n = family == 4 ? z->nrev4 : z->nrev6;
    size_t lo = 0, hi = n;
    while (family && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(v[mid].addr, addr, 16) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (!family || lo == n || memcmp(v[lo].addr, addr, 16) != 0)
        return; /* not ours: REFUSED */
    if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR)
        return;
    if (qtype != LDNS_RR_TYPE_PTR && qtype != LDNS_RR_TYPE_ANY) {
        out->plan = family == 4 ? z->nodata_rev4 : z->nodata_rev6;
        return;
    }
    size_t k = lo;
    while (k < n && memcmp(v[k].addr, addr, 16) == 0)
        k++;
    out->plan = z->found_plan;
    out->ptr = &v[lo];
    out->nptr = k - lo;
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

void zone_find(const struct zone *z, const uint8_t *lname, size_t len, uint16_t qtype,
               struct zone_found *out)
{
    const struct znode *n = node_lookup(z, lname, len);
    out->apex = len >= z->apex_len ? len - z->apex_len : 0;
    out->ptr = NULL;
    out->nptr = 0;
    out->rr = NULL;
    out->rrlen = 0;
    out->plan = z->refused;

    if (!n) {
        /* under the apex at a label boundary: NXDOMAIN; elsewhere REFUSED,
         * but for the reverse names of mapped addresses */
        if (len < z->apex_len || memcmp(lname + len - z->apex_len, z->apex, z->apex_len) != 0) {
            find_ptrs(z, lname, len, qtype, out);
            return;
        }
        size_t pos = 0;
        while (pos < len - z->apex_len)
            pos += (size_t)lname[pos] + 1;
        if (pos != len - z->apex_len)
            return;
        if (find_endpoint(z, lname, len, qtype, out))
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
