/* zone.h -- the compiled, immutable zone: names to pre-rendered answers. */
#ifndef SVCMAPD_ZONE_H
#define SVCMAPD_ZONE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "svcmapd/config.h"
#include "svcmapd/diag.h"
#include "svcmapd/upstream.h"

/*
 * zone_compile() turns a config into every answer the server can give, in
 * wire form: answering a query is one hash lookup, then copying RRsets and
 * patching compression pointers. A zone never changes once compiled; a
 * reload compiles a new one beside it (reload.c).
 *
 * Owner names are written as compression pointers into the question, so a
 * reply echoes the query's letter case (0x20, SPEC §2) for free. Names below
 * the zone apex end in a pointer to where the apex starts in the question;
 * those slots are listed in `fix` and patched per query.
 */

struct zone;
struct zone_skip; /* see zone_skip_new() */

/* Records copied together into one section: one RRset, or the additional
 * records of an SRV answer. The header is followed by `nfix` slot offsets,
 * then `len` bytes of records (zone_rrset_fix(), zone_rrset_data()). */
struct zone_rrset {
    uint16_t len;   /* bytes of data */
    uint16_t count; /* records */
    uint16_t rrlen; /* when non-zero: every record has this length and the
                     * same slots, the slots are relative to each record,
                     * and the records are shuffled per query */
    uint16_t nfix;  /* 2-byte apex-pointer slots in the data */
};

static inline const uint16_t *zone_rrset_fix(const struct zone_rrset *r)
{
    return (const uint16_t *)(const void *)(r + 1);
}

static inline const uint8_t *zone_rrset_data(const struct zone_rrset *r)
{
    return (const uint8_t *)(zone_rrset_fix(r) + r->nfix);
}

enum zone_section {
    ZONE_ANSWER,
    ZONE_AUTHORITY,
    ZONE_ADDITIONAL,
    ZONE_SECTIONS,
};

/* A hostname target outside the zone, resolved upstream (upstream.c). */
struct zone_external {
    const uint8_t *name; /* wire form, lower case */
    uint8_t len;
};

/* Everything needed to answer one name and type. */
struct zone_plan {
    uint8_t types; /* the query types it answers at its name (src/zone_impl.h's TYPE_*) */
    uint8_t rcode; /* LDNS_RCODE_NOERROR, _NXDOMAIN or _REFUSED */
    bool aa;
    uint8_t nsets[ZONE_SECTIONS];
    bool has_external;               /* see zone_plan_external() */
    bool checked;                    /* some sets hold health-checked targets: see zone_view() */
    const struct zone_rrset *sets[]; /* answer sets, then authority, then additional */
};

/* When not NULL, the answer section continues with the upstream's records
 * for this name and the query type. (Kept behind the sets: most plans have
 * none, and there are millions of plans.) */
static inline const struct zone_external *zone_plan_external(const struct zone_plan *p)
{
    if (!p->has_external)
        return NULL;
    const void *slot = &p->sets[p->nsets[0] + p->nsets[1] + p->nsets[2]];
    return *(const struct zone_external *const *)slot;
}

struct zone_stats {
    size_t services;
    size_t records;                 /* distinct resource records, fixed ones included */
    size_t names;                   /* names that answer */
    size_t added, removed, changed; /* services, against the zone replaced */
    size_t compiled;                /* services compiled: all, or a patch's (zone_patch.c) */
    uint32_t serial;
    size_t bytes;    /* memory held by the zone */
    uint64_t digest; /* of what its answers show but the serial: equal digests, equal
                      * answers (the file's order and comments do not count) */
};

/* What the compiler needs to know of the machine it compiles for, found
 * by its caller (load.c): the compiler reads no system state. */
struct zone_host {
    const uint8_t (*addr4)[4]; /* the interfaces' IPv4 addresses, network order */
    size_t naddr4;
    const uint8_t (*addr6)[16]; /* their IPv6 addresses, link-local ones too */
    size_t naddr6;
};

/* Whether compiling `cfg` needs the interfaces' addresses: it listens on
 * a wildcard address (0.0.0.0 or [::]), and ns.dns.<zone> answers with
 * the machine's addresses instead, as CoreDNS does. */
bool zone_needs_host(const struct config *cfg);

/* Compiles `cfg`. `old` is the zone being replaced (NULL at start-up): the
 * SOA serial becomes max(now, old serial + 1) if any data changed, and stays
 * the old one otherwise; the change counts are taken against it. `host`
 * (NULL: no addresses) is read only if zone_needs_host(). Problems the
 * config grammar cannot see (a dangling in-zone target, a name over 255
 * bytes) go to `d` with the line they come from. Returns NULL if `d` holds
 * any error, from this compile or from reading the config before it.
 * The zone owns all its memory and references neither `cfg` nor `host`
 * afterwards. With ZONE_DROP_MAPPING, cfg's mapping is freed as soon as every
 * service is compiled (config_drop_mapping()), before the compile's last
 * and largest steps: its memory and the zone's are never both whole. */
enum zone_compile_flag {
    ZONE_DROP_MAPPING = 1, /* see above */
    ZONE_WHOLE = 2,        /* never a patch of `old` (zone_patch.c): tests compare them */
};
struct zone *zone_compile(struct config *cfg, const struct zone *old, const struct zone_host *host,
                          time_t now, unsigned flags, struct zone_skip *skip, struct diag *d);

/* What zone_compile(cfg, NULL, ...) would report to `d`, and its counts of
 * services and records in `*st`, without the zone: `svcmapd -t`. The
 * mapping is compiled in parts of whole namespaces of at least
 * `part_services` services, each freed before the next (zone_verify.c),
 * so that only one part of the zone is ever held; a mapping with a CNAME
 * into the zone, or whose settings have something to say, is compiled
 * whole. st->compiled is the most services compiled at once; its other
 * fields stay 0. True when the config has no error. */
#define ZONE_VERIFY_PART 65536
bool zone_verify(struct config *cfg, const struct zone_host *host, time_t now, size_t part_services,
                 struct diag *d, struct zone_stats *st);

/*
 * A reload parses only what changed (README "Reload"): the parser asks
 * zone_skip_unchanged() (struct config_skip's `unchanged`, with the skip
 * as its argument) whether `old` has each service as its line says, and
 * keeps nothing of those it has; zone_compile() then takes them from
 * `old`, given the same skip. When it cannot (the reload must be
 * compiled whole: zone_patch.c), it returns NULL with no error and
 * zone_skip_wasted() true: parse the file again, without skipping.
 */
struct zone_skip *zone_skip_new(const struct zone *old); /* NULL: out of memory */
bool zone_skip_unchanged(void *skip, const char *ns, const char *name, uint64_t fp);
bool zone_skip_wasted(const struct zone_skip *s);
void zone_skip_free(struct zone_skip *s);

/* Carries the SOA serial over a restart (SPEC §2.2: it never goes back),
 * from one saved with the digest of the zone it was served with (the
 * state-dir keeps them). `z` was compiled without an old zone and is not
 * published yet: zones are immutable once the workers may read them.
 * The same digest keeps `serial`: the same answers, the same serial, so
 * secondaries see nothing new after a restart. Another digest makes it
 * max(the compile's `now`, serial + 1). */
void zone_continue_serial(struct zone *z, uint32_t serial, uint64_t digest);

/* Whether `lname` (`len` bytes, wire form, lower case) is the zone's
 * apex. */
bool zone_is_apex(const struct zone *z, const uint8_t *lname, size_t len);

/* Frees a zone. NULL is a no-op. */
void zone_free(struct zone *z);

const struct zone_stats *zone_stats(const struct zone *z);

/* The zone's name, lower case, without the trailing dot. */
const char *zone_name(const struct zone *z);

/*
 * The settings a reload changes, besides the mapping: compiled into the
 * zone, so that a reload changes them with it, in the one pointer swap
 * (zone_ref.h), and a worker reads them from the zone it holds. This is
 * the one way for a setting to reach the workers: none is pushed to them,
 * none is a global. ([log] is process-wide instead: see reload.c.)
 */
struct zone_settings {
    /* `udp-max-size`, the largest UDP reply: a client's EDNS buffer size
     * is capped here, and the OPT of replies announces it. */
    uint16_t udp_max;
    /* TCP (RFC 7766): seconds a connection may be idle, and may take to
     * send the rest of a message it has begun; queries of one connection
     * answered per turn, or waiting for lookups at once; connections open
     * over all workers, beyond which new ones are closed. Read when used,
     * so a reload applies to the connections already open too. */
    uint32_t tcp_idle_timeout;
    uint32_t tcp_message_timeout;
    uint32_t tcp_pipeline;
    uint32_t tcp_max_connections;
    /* How hostname targets outside the zone are resolved; NULL when they
     * are not (`servers = none`, or no resolv.conf nameserver). */
    const struct upstream_settings *upstream;
    /* `[transfer] allow`: the clients that may transfer the zone (SPEC
     * §8, xfr_allowed()); nobody when there are none. */
    const struct config_prefix *transfer_allow;
    size_t ntransfer_allow;
};

const struct zone_settings *zone_settings(const struct zone *z);

/* A PTR record of a mapped address (SPEC §2.5), rendered per query: the
 * reverse names are a sorted table of addresses, not names of the zone
 * (there are as many as addresses, and they answer one type). */
struct zone_ptr {
    uint8_t addr[16];      /* network order; IPv4 in the first 4 bytes */
    const uint8_t *target; /* the service or endpoint name, wire form */
    uint32_t ttl;          /* the same for all PTRs of an address */
    uint8_t target_len;
};

/* ---------------------------------------------------------------------- */
/* Health-checked services (SPEC §6).                                      */

/*
 * A service with check= answers the targets that pass their probes. The
 * zone holds one zone_probe per distinct thing probed (an address, a port
 * and a check), shared by every target that has all three. Their runtime
 * fields are the one part of a zone that changes: the prober (health.c)
 * writes them, with relaxed atomic stores, and queries and the endpoints
 * read them; the rest of the zone stays immutable.
 */
struct zone_probe_key {
    uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t kind;     /* enum config_check_kind */
    uint16_t port;    /* the port probed */
    const char *path; /* CONFIG_CHECK_HTTP: the request target; else NULL */
};

struct zone_probe {
    struct zone_probe_key key;
    _Atomic uint8_t up;           /* 1: answered; 0: down */
    _Atomic uint8_t streak;       /* results in a row against `up`: failures while up, successes
                                   * while down (toward `fall` or `rise`) */
    _Atomic uint32_t error;       /* the last failure, as health.h encodes it; 0: none */
    _Atomic uint64_t since;       /* Unix time in ms of the last transition, or of the first load */
    _Atomic uint64_t transitions; /* up to down and back, since the first load */
};

/* A checked service, for what the endpoints list: its names, its policy,
 * and what each target is probed as, in the order of the file. */
struct zone_checked_target {
    struct zone_probe *probe;
    uint16_t port; /* the target's own, as the mapping writes it; 0: none */
};

struct zone_checked {
    const char *ns, *name;
    /* target k is up: bit k. The prober writes it with its probes' states;
     * a query reads it once, so all it answers shows one moment. */
    _Atomic uint64_t up;
    uint8_t policy; /* enum config_policy */
    uint8_t ntargets;
    struct zone_checked_target t[];
};

/* Sets probe `p` of `z` up or down, in the probe and in the word of every
 * service that uses it, as the prober would (it keeps an index of its
 * own): for tests and fuzzers, which have no prober. */
void zone_probe_set_up(const struct zone *z, struct zone_probe *p, bool up);

/* The probe of `key` in `z`, or NULL if `z` has none (NULL `z` too). */
struct zone_probe *zone_probe_find(const struct zone *z, const struct zone_probe_key *key);

/* Sets the word of every checked service of `z` from its probes' `up`:
 * after probes were written other than through the prober (a zone
 * compiled, a hand-over's state put in before it is served). */
void zone_checked_refresh(const struct zone *z);

/* Which targets of `s` its A and AAAA answers hold now, a bit each
 * (target k is bit k): the healthy ones, or the first of them for
 * failover, per family; none healthy, all of them. */
uint64_t zone_checked_answered(const struct zone_checked *s);

/* [health]: how the probes run. */
struct zone_health {
    uint32_t interval, timeout; /* ms */
    uint32_t fall, rise;
};

/* The zone's probes, `*n` of them, sorted by zone_probe_key_cmp(): what the
 * prober runs. Non-const for the prober, which alone writes their runtime
 * fields. */
struct zone_probe *zone_probes(const struct zone *z, size_t *n);

/* The order of zone_probes(): by what is probed (family, address, port,
 * check, path), so two zones can be walked side by side. */
int zone_probe_key_cmp(const struct zone_probe_key *a, const struct zone_probe_key *b);

/* The checked services, `*n` of them, in the order of the file. Non-const
 * for the prober, which alone writes their `up`. */
struct zone_checked *const *zone_checked_services(const struct zone *z, size_t *n);

const struct zone_health *zone_health(const struct zone *z);

/* A number no other zone of the process has had: a zone freed and one
 * compiled later may share an address, never this. */
uint64_t zone_id(const struct zone *z);

/* Target `k` of `s` as the mapping writes it ("192.168.1.10:3306",
 * "10.0.0.5", "[2001:db8::1]:80") in `out`; returns `out`. */
const char *zone_target_text(const struct zone_checked *s, size_t k, char *out, size_t cap);

/*
 * What one query sees of the plans it uses: a plan of a checked service as
 * its healthy targets make it (SPEC §6). Every answer of a failover plan
 * is compiled; a plan of policy all with some of its targets down is
 * copied with the records of the healthy ones, in the scratch space of the
 * thread's answer context. 48 KiB hold the largest checked sets one reply
 * can use (64 targets: an SRV answer and its additional records, or the
 * sets of a chain through upstream links that stay within 16 KiB of the
 * reply, zone_view.c). Reset per query.
 */
#define ZONE_VIEW_BYTES 49152

struct zone_view {
    size_t used;
    alignas(8) uint8_t buf[ZONE_VIEW_BYTES];
};

static inline void zone_view_reset(struct zone_view *v)
{
    v->used = 0;
}

/* `p` as this query answers it: `p` itself unless it is checked; then the
 * healthy targets' records, or every record when none is healthy, as
 * their policy says, with SRV weights shared among them. A copy lives in
 * `v` until zone_view_reset(). Reads the service's states once, never
 * allocates, never locks. */
const struct zone_plan *zone_view(struct zone_view *v, const struct zone_plan *p);

/* What a query finds. */
struct zone_found {
    const struct zone_plan *plan;
    size_t apex;                /* where the zone apex starts in the name: the
                                 * offset the plan's `fix` slots point to */
    const struct zone_ptr *ptr; /* PTR records that make up the answer section */
    size_t nptr;
    const uint8_t *rr; /* or one record, ready to copy (an endpoint's address) */
    size_t rrlen;
};

/*
 * Finds what answers a query. `lname` is the query name in wire form,
 * folded to lower case, `len` bytes including the root label. A name
 * outside the zone (and not a mapped address's reverse name) gets the
 * REFUSED plan.
 */
void zone_find(const struct zone *z, const uint8_t *lname, size_t len, uint16_t qtype,
               struct zone_found *out);

#endif
