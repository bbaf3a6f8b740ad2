/* zone_compile.h -- the compiler's state, shared by zone_compile.c and zone_services.c. */
#ifndef SVCMAPD_ZONE_COMPILE_H
#define SVCMAPD_ZONE_COMPILE_H

#include "svcmapd/arena.h"
#include "zone_impl.h"

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
    /* checked address services: the service, and the check_set of each of
     * its sets: A, AAAA (also of the named sets), SRV and its additional */
    struct zone_checked *checked;
    const struct check_set *check_sets[4];
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
    const struct zone_host *host; /* NULL: no interface addresses */
    struct diag *d;
    struct builder *b;
    struct info *info;
    size_t ninfo, infocap;
    /* ns.dns addresses */
    uint8_t (*ns4)[4];
    size_t nns4;
    uint8_t (*ns6)[16];
    size_t nns6;
    const struct zone_rrset *soa, *soa_rev4, *soa_rev6;
    struct ptr_list ptrs[2];   /* IPv4, IPv6 */
    struct probe_list *probes; /* what checked targets probe, until compile_probes() */
    /* A patch (zone_patch.c): keep[k] set for the k-th service of the
     * config (in its order) that the base has as it is, and is not
     * compiled; `whole` once the patch finds it cannot be one. */
    const uint8_t *keep;
    bool patch;
    bool whole;
    /* One part of a mapping that zone_verify() compiles part by part:
     * compile_hosts() leaves warn_unresolved() to it. */
    bool part;
    bool oom;
};

/* The records of every zone that are no service's: the apex's SOA and NS,
 * dns-version's TXT, ns.dns's A and AAAA (the reverse zones' are counted
 * as they are made). */
#define FIXED_RECORDS 5

/* ---------------------------------------------------------------------- */
/* What the compiler's files call of each other.                           */

/* zone_compile.c: names, plans and the zone-wide records */

/* A zone with one holder; a patch of `base` (NULL: none), which it holds. */
struct zone *zone_new(const struct zone *base);

/* What every compile does first, whole or patch: the compiler's memory,
 * a table for `names` names, the apex, the settings, the records that are
 * of no service and the reverse zones. False when out of memory (or a
 * reported error stops it). */
bool compile_begin(struct compiler *c, size_t names, time_t now);
/* An upper bound of the names compiling `cfg` makes, for compile_begin(). */
size_t estimate_names(const struct config *cfg);
void compiler_finish(struct compiler *c);
uint64_t settings_fingerprint(const struct compiler *c);
uint32_t next_serial(bool has_prev, uint32_t prev, bool changed, time_t now);
void set_serial(struct zone *z, uint32_t serial);

/* Sorts PTRs by address (`src` is left in disorder). */
void sort_ptrs(struct zone_ptr *src, struct zone_ptr *dst, size_t n, size_t size);

/* `v`, the `n` PTRs of family `f` (0: IPv4, 1: IPv6) sorted by address,
 * made the zone's table of that family. The PTRs of one address, side by
 * side, are one RRset: they are given one TTL (RFC 2181 §5.2), the
 * smallest of their services', and put in the order of their targets,
 * whatever the order of the file or of a patch's making. */
void set_ptrs(struct zone *z, int f, struct zone_ptr *v, size_t n);

/* zone_patch.c: a zone that shares what did not change with `old` */

struct zone_skip {
    const struct zone *old, *base;
    uint8_t *seen; /* per service of the base: SEEN_KEPT for those skipped */
    size_t at;     /* where the walk in the order of the file expects the next */
    bool wasted;   /* the zone was compiled whole: what was skipped is missing */
};

/* `cfg` compiled as a patch of `old`: its services that `old` has as they
 * are stay in `old`'s base, the rest is compiled. NULL with `*whole` set
 * when it cannot be a patch (settings changed, a health-checked service
 * or a CNAME into the zone changed, too much changed): compile it whole.
 * NULL without it: reported errors, or out of memory. */
struct zone *zone_patch(struct config *cfg, const struct zone *old, const struct zone_host *host,
                        time_t now, bool drop_mapping, struct zone_skip *skip, struct diag *d,
                        bool *whole);

void oom(struct compiler *c);
struct znode *add_node(struct compiler *c, const uint8_t *name, size_t len, enum info_kind kind,
                       uint8_t flags, uint8_t cap);
void add_plan(struct compiler *c, struct znode *n, uint16_t qtype, const struct zone_plan *p);
const struct zone_rrset *build_addresses(struct compiler *c, const struct owner *o, uint16_t type,
                                         uint32_t ttl, const uint8_t *addrs, size_t stride,
                                         size_t n);

/* zone_services.c: the services of the mapping (SPEC §2.3, §2.4) */

/* Adds the names and plans of every namespace and service; a hostname
 * service gets its node, and its CNAME from compile_hosts(), called once
 * every name a target may be exists. Errors go to c->d. */
void compile_services(struct compiler *c);
void compile_hosts(struct compiler *c);

/* The hostname services compiled that get their CNAME alone for want of
 * upstream servers (none, or none in resolv.conf; resolve=no aside), and
 * the line of the first; and the warning that says so, which
 * compile_hosts() gives for a whole compile. */
size_t count_unresolved(struct compiler *c, int *first_line);
void warn_unresolved(struct compiler *c, size_t unresolved, int first_line);

/* What a service's node keeps of its line to tell, on the next reload,
 * whether it changed (znode.fp): its text_fp, which the parser compares
 * to skip what did not change (zone_skip_unchanged()). */
uint64_t service_fp(const struct config_service *s);

/* zone_checks.c: health-checked services (SPEC §6) */

/* The check of service `s` at `node`, if it has one: its zone_checked is
 * made, its targets queued for compile_probes(), and its TTL capped at the
 * interval. Call before its records are built. */
void check_service(struct compiler *c, const struct config_namespace *ns,
                   const struct config_service *s, struct znode *node);

/* The checked service at `node`, or NULL. */
static inline struct zone_checked *checked_of(struct compiler *c, const struct znode *node);

/* Which sets of a service a plan holds, for checked_plan(). */
enum check_which {
    CHECK_A,       /* A records, the service's own or its named set */
    CHECK_AAAA,    /* AAAA records */
    CHECK_SRV,     /* SRV records, one per target */
    CHECK_SRV_ADD, /* the SRV answer's additional records, one per target */
    CHECK_NONE,
};

/* `p`, or when `node` is a checked service a copy of it that zone_view()
 * filters: set i of `p` holds `which[i]` of the service's sets (CHECK_NONE
 * for sets that are not its own). NULL when out of memory. */
const struct zone_plan *checked_plan(struct compiler *c, struct znode *node,
                                     const struct zone_plan *p, const enum check_which *which);

/* Every probe of the zone, each once, sorted; what an unchanged probe of
 * `old` had found carries over, new ones start up (SPEC §6). */
void compile_probes(struct compiler *c, const struct zone *old, time_t now);

/* Frees what check_service() queued. */
void probes_free(struct compiler *c);

/* ---------------------------------------------------------------------- */
/* Names.                                                                  */

static inline struct info *info_of(struct compiler *c, const struct znode *n)
{
    return &c->info[n->info];
}

static inline struct extra *extra_of(struct compiler *c, struct info *in)
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

static inline struct zone_checked *checked_of(struct compiler *c, const struct znode *node)
{
    struct info *in = info_of(c, node);
    return in->kind == INFO_ADDRESS && in->u.svc->check && in->x ? in->x->checked : NULL;
}

/* The labels of `name` in front of the apex. */
static inline struct owner rel_owner(const struct compiler *c, const struct znode *n)
{
    return (struct owner){OWNER_REL, node_name(n), n->len - c->z->apex_len};
}

static inline size_t put_label(uint8_t *out, size_t pos, const char *label, size_t len)
{
    out[pos] = (uint8_t)len;
    memcpy(out + pos + 1, label, len);
    return pos + 1 + len;
}

/* Appends the apex to `rel` (labels, `rlen` bytes) in `out`. Returns the
 * name's length, or 0 if it would exceed 255 bytes. */
static inline size_t with_apex(const struct zone *z, uint8_t *out, size_t rlen)
{
    if (rlen + z->apex_len > LDNS_MAX_DOMAINLEN)
        return 0;
    memcpy(out + rlen, z->apex, z->apex_len);
    return rlen + z->apex_len;
}

/* ---------------------------------------------------------------------- */
/* Plans, allocated in the zone: what answers one name and type.           */

/* Inline, as they were in one file: a million services make millions of
 * plans, and at most calls the numbers of sets are constants (2% of a
 * compile when they were calls). */

static inline const struct zone_plan *new_plan_ext(struct zone *z, uint8_t rcode, bool aa,
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

static inline const struct zone_plan *new_plan(struct zone *z, uint8_t rcode, bool aa,
                                               const struct zone_rrset *const *an, size_t nan,
                                               const struct zone_rrset *const *ns, size_t nns,
                                               const struct zone_rrset *const *ar, size_t nar)
{
    return new_plan_ext(z, rcode, aa, an, nan, ns, nns, ar, nar, NULL);
}

/* A plan whose answer is the given sets, nothing else. */
static inline const struct zone_plan *answer_plan(struct compiler *c,
                                                  const struct zone_rrset *const *an, size_t nan,
                                                  const struct zone_rrset *const *ar, size_t nar)
{
    for (size_t i = 0; i < nan; i++)
        if (!an[i])
            return NULL;
    for (size_t i = 0; i < nar; i++)
        if (!ar[i])
            return NULL;
    return new_plan(c->z, LDNS_RCODE_NOERROR, true, an, nan, NULL, 0, ar, nar);
}

#endif
