/* zone_patch.c -- a reload in proportion to the change: a zone that shares what did not change. */
#include <stdlib.h>
#include <string.h>

#include "svcmapd/arena.h"
#include "zone_compile.h"

/*
 * A reload that changes a few lines of a large mapping compiles those
 * services alone. The new zone is a patch: a small table of the names
 * that differ (the services compiled, the names of no service, which
 * carry the serial, and a tombstone for each name that went) in front of
 * the last zone compiled whole, its base, which it shares and keeps alive.
 * A query looks in the patch, then in the base (zone_node()); the PTRs of
 * the addresses that changed are the patch's own, in front of the base's.
 * A patch of a patch has the same base: the services a patch compiled are
 * compiled again by the next one, so that no patch needs another.
 *
 * What a patch cannot do is left to a whole compile, which also is the
 * reference every test compares a patch with: other settings, a
 * health-checked service or one whose answers another name's CNAME chain
 * holds that changes, a hostname that points into the zone, or patches
 * grown to an eighth of their base.
 */

/* Patched services beyond which a reload compiles whole. */
#define PATCH_MIN_LIMIT 4096

/* What a reload makes of each service of the base (plan.seen): bits. */
enum {
    SEEN_KEPT = 1,     /* the file names it as it is: the patch takes it from the base */
    SEEN_REPLACED = 2, /* the file names it otherwise: the patch compiles it again */
    SEEN_ANY = SEEN_KEPT | SEEN_REPLACED, /* neither: the file does not name it */
    OLD_PATCHED = 4,                      /* the zone replaced is a patch that holds its name */
};

/* What a patch is made from: the config's services compared with the
 * base's. */
struct plan {
    const struct zone *base;
    struct zone_skip *skip; /* what the parser skipped; NULL: nothing */
    uint8_t *keep;          /* per service of the config: the base has it as it is */
    uint8_t *seen;   /* per service of the base: SEEN_*, or 0 if the config does not name it */
    size_t compiled; /* services of the config to compile */
    size_t gone;     /* services of the base the config does not name */
};

/* <svc>.<ns>.svc.<zone> in wire form at `out`; its length, or 0 if it
 * would exceed 255 bytes. */
static size_t service_name(const struct zone *z, const char *ns, const char *svc, uint8_t *out)
{
    size_t n = put_label(out, 0, svc, strlen(svc));
    n = put_label(out, n, ns, strlen(ns));
    n = put_label(out, n, "svc", 3);
    return with_apex(z, out, n);
}

/* The base's service at `name`, looked for first where the walk in the
 * order of the file expects it (`*at`). */
static struct znode *base_service(const struct zone *base, const uint8_t *name, size_t len,
                                  size_t *at)
{
    if (*at < base->nservices) {
        struct znode *n = base->services[*at];
        if (n->len == len && memcmp(node_name(n), name, len) == 0) {
            (*at)++;
            return n;
        }
    }
    struct znode *n = node_lookup(base, name, len);
    if (!n || !(n->flags & NODE_SERVICE))
        return NULL;
    *at = (size_t)n->info + 1;
    return n;
}

/* Marks the services of the base whose names `old`, a patch, holds. */
static void mark_patched(uint8_t *seen, const struct zone *old, const struct zone *base)
{
    for (size_t i = 0; old != base && i <= old->mask; i++) {
        const struct znode *n = old->slots[i].node;
        if (!n || !(n->info == NODE_GONE || (n->flags & NODE_SERVICE)))
            continue;
        const struct znode *b = node_lookup(base, node_name(n), n->len);
        if (b && (b->flags & NODE_SERVICE))
            seen[b->info] |= OLD_PATCHED;
    }
}

struct zone_skip *zone_skip_new(const struct zone *old)
{
    struct zone_skip *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->old = old;
    s->base = old->base ? old->base : old;
    s->seen = calloc(s->base->nservices + 1, 1);
    if (!s->seen || !s->base->services) {
        zone_skip_free(s);
        return NULL;
    }
    mark_patched(s->seen, old, s->base);
    return s;
}

bool zone_skip_unchanged(void *arg, const char *ns, const char *name, uint64_t fp)
{
    struct zone_skip *s = arg;
    uint8_t wire[LDNS_MAX_DOMAINLEN + 1];
    size_t len = service_name(s->old, ns, name, wire);
    const struct znode *b = len ? base_service(s->base, wire, len, &s->at) : NULL;
    /* as the base has it, and no patch before took it over */
    if (!b || b->fp != fp || (s->seen[b->info] & OLD_PATCHED))
        return false;
    s->seen[b->info] = SEEN_KEPT;
    return true;
}

bool zone_skip_wasted(const struct zone_skip *s)
{
    return s && s->wasted;
}

void zone_skip_free(struct zone_skip *s)
{
    if (!s)
        return;
    free(s->seen);
    free(s);
}

/* Compares the config's services with the base's. False when the config
 * cannot be a patch of `old`. */
static bool plan_patch(struct plan *p, const struct config *cfg, const struct zone *old)
{
    const struct zone *base = p->base;
    size_t total = 0, at = 0, k = 0;
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        total += cfg->namespaces[i].nservices;
    p->keep = calloc(total + 1, 1);
    p->seen = p->skip ? p->skip->seen : calloc(base->nservices + 1, 1);
    if (!p->keep || !p->seen)
        return false;
    if (!p->skip)
        mark_patched(p->seen, old, base);

    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        const struct config_namespace *ns = &cfg->namespaces[i];
        for (size_t j = 0; j < ns->nservices; j++, k++) {
            const struct config_service *s = &ns->services[j];
            uint8_t name[LDNS_MAX_DOMAINLEN + 1];
            size_t len = service_name(old, ns->name, s->name, name);
            struct znode *b = len ? base_service(base, name, len, &at) : NULL;
            if (b) {
                uint64_t fp = service_fp(s);
                if (b->flags & (NODE_TARGETED | NODE_CHECKED) && b->fp != fp)
                    return false; /* other names' answers hold it, or the prober */
                /* as the base has it, and no patch before took it over */
                p->keep[k] = b->fp == fp && !(p->seen[b->info] & OLD_PATCHED);
                p->seen[b->info] |= p->keep[k] ? SEEN_KEPT : SEEN_REPLACED;
            }
            if (!p->keep[k] && s->check)
                return false;
            p->compiled += !p->keep[k];
        }
    }
    for (size_t i = 0; i < base->nservices; i++) {
        if (p->seen[i] & SEEN_ANY)
            continue;
        if (base->services[i]->flags & (NODE_TARGETED | NODE_CHECKED))
            return false;
        p->gone++;
    }
    size_t limit = base->nservices / 8;
    return p->compiled + p->gone <= (limit > PATCH_MIN_LIMIT ? limit : PATCH_MIN_LIMIT);
}

static void plan_free(struct plan *p)
{
    free(p->keep);
    if (!p->skip)
        free(p->seen);
}

/* Adds a tombstone for `name` to the patch's table, unless it holds the
 * name already. False when out of memory. */
static bool bury(struct zone *z, const uint8_t *name, size_t len)
{
    struct slot *slot = table_slot(z, name, len, hash_bytes(z->seed, name, len));
    if (slot->node)
        return true;
    struct znode *n = arena_alloc(z->arena, sizeof(*n) + len);
    if (!n)
        return false;
    memset(n, 0, sizeof(*n));
    memcpy((uint8_t *)&n->plans[0], name, len);
    n->len = (uint8_t)len;
    n->info = NODE_GONE;
    slot->hash = hash_bytes(z->seed, name, len);
    slot->node = n;
    return true;
}

/* Tombstones for the base's services and namespaces the config does not
 * name. False when out of memory. */
static bool bury_gone(struct zone *z, const struct plan *p)
{
    const struct zone *base = p->base;
    for (size_t i = 0; i < base->nservices; i++) {
        const struct znode *n = base->services[i];
        if (!(p->seen[i] & SEEN_ANY) && !bury(z, node_name(n), n->len))
            return false;
    }
    for (size_t i = 0; i < base->nnamespaces; i++) {
        const struct znode *n = base->namespaces[i];
        if (!bury(z, node_name(n), n->len))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------------- */
/* Counting as a whole compile counts.                                     */

/* The addresses of an address service's own A (`size` 4) or AAAA set,
 * `*n` of them, each 12 bytes after the start of its record. */
static const uint8_t *own_addresses(const struct znode *n, int size, size_t *count)
{
    uint8_t bit = size == 4 ? TYPE_A : TYPE_AAAA;
    *count = 0;
    for (uint8_t i = 0; i < n->nplans; i++) {
        const struct zone_plan *p = n->plans[i];
        if ((p->types & TYPE_CNAME) || !(p->types & bit) || p->nsets[ZONE_ANSWER] == 0)
            continue;
        *count = p->sets[0]->count;
        return zone_rrset_data(p->sets[0]);
    }
    return NULL;
}

static bool is_hostname(const struct znode *n)
{
    for (uint8_t i = 0; i < n->nplans; i++)
        if (n->plans[i]->types & TYPE_CNAME)
            return true;
    return false;
}

/* The names and records a service's node stands for, as compile_services()
 * counts them: per address its record, its PTR, its endpoint (with
 * several) and two SRV records (with a port); a hostname's CNAME. */
static void service_counts(const struct znode *n, size_t *names, size_t *records)
{
    size_t n4, n6;
    own_addresses(n, 4, &n4);
    own_addresses(n, 16, &n6);
    size_t t = n4 + n6;
    bool endpoints = n->flags & NODE_ENDPOINTS;
    bool srv = n->flags & (NODE_SRV_TCP | NODE_SRV_UDP | NODE_SRV_SCTP);
    *names = 1 + (endpoints ? t : 0) + (srv ? 1 : 0);
    *records = is_hostname(n) ? 1 : t * (2 + (endpoints ? 1 : 0) + (srv ? 2 : 0));
}

/* Takes `n`, a service of `old`, out of the patch's counts (as removed or
 * replaced). */
static void uncount(struct zone *z, const struct znode *n)
{
    size_t names, records;
    service_counts(n, &names, &records);
    z->stats.names -= names;
    z->stats.records -= records;
    z->stats.services--;
    z->digest_sum -= service_digest(n);
}

/* The patch's statistics and digest, from `old`'s and what changed. */
static void count_patch(struct zone *z, const struct compiler *c, const struct plan *p,
                        const struct zone *old)
{
    z->stats.names = old->stats.names - old->nnamespaces + z->nnamespaces;
    z->stats.records = old->stats.records;
    z->stats.services = old->stats.services;
    z->digest_sum = old->digest_sum;
    /* the services compiled: added, or in place of `old`'s */
    for (size_t i = 0; i < c->ninfo; i++) {
        const struct znode *n = c->info[i].node;
        if (!(n->flags & NODE_SERVICE))
            continue;
        const struct znode *o = zone_node(old, node_name(n), n->len);
        if (o && (o->flags & NODE_SERVICE)) {
            z->stats.changed += o->fp != n->fp;
            uncount(z, o);
        } else {
            z->stats.added++;
        }
        size_t names, records;
        service_counts(n, &names, &records);
        z->stats.compiled++;
        z->stats.names += names;
        z->stats.records += records;
        z->stats.services++;
        z->digest_sum += service_digest(n);
    }
    /* `old`'s services the config does not name: the base's, and those
     * of `old`'s own patch */
    for (size_t i = 0; i < p->base->nservices; i++) {
        const struct znode *n = p->base->services[i];
        if (!p->seen[i]) { /* named by neither the file nor `old`'s patch */
            z->stats.removed++;
            uncount(z, n);
        }
    }
    for (size_t i = 0; old->base && i <= old->mask; i++) {
        const struct znode *n = old->slots[i].node;
        if (!n || n->info == NODE_GONE || !(n->flags & NODE_SERVICE))
            continue;
        const struct znode *now = node_lookup(z, node_name(n), n->len);
        if (!now || now->info == NODE_GONE) {
            z->stats.removed++;
            uncount(z, n);
        }
    }
    z->stats.digest = mix64(z->digest_sum ^ z->settings_fp);
}

/* ---------------------------------------------------------------------- */
/* PTRs.                                                                   */

/* Whether a PTR of the base to `target` went with the patch: the target
 * is a name the patch holds (a service compiled or buried), or the
 * endpoint of one. */
static bool ptr_replaced(const struct zone *z, const uint8_t *target, size_t len)
{
    if (node_lookup(z, target, len))
        return true;
    size_t at = (size_t)target[0] + 1;
    const struct znode *parent = at < len ? node_lookup(z, target + at, len - at) : NULL;
    return parent && (parent->info == NODE_GONE || (parent->flags & NODE_SERVICE));
}

struct addr_list {
    uint8_t (*v)[16];
    size_t n, cap;
};

static bool add_addr(struct addr_list *l, const uint8_t *addr, int size)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint8_t(*v)[16] = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    memset(l->v[l->n], 0, 16);
    memcpy(l->v[l->n++], addr, (size_t)size);
    return true;
}

static int addr_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

/* The addresses whose PTRs the patch answers itself, of one family: those
 * of the services it compiled, of the base's services it replaces or
 * buries, and of `old`'s own patch. False when out of memory. */
static bool affected(const struct compiler *c, const struct plan *p, const struct zone *old, int f,
                     struct addr_list *out)
{
    int size = f == 0 ? 4 : 16;
    const struct ptr_list *l = &c->ptrs[f];
    for (size_t i = 0; i < l->n; i++)
        if (!add_addr(out, l->v[i].addr, size))
            return false;
    for (size_t i = 0; i < p->base->nservices; i++) {
        const struct znode *n = p->base->services[i];
        if ((p->seen[i] & SEEN_ANY) == SEEN_KEPT)
            continue;
        size_t count;
        const uint8_t *rr = own_addresses(n, size, &count);
        for (size_t k = 0; k < count; k++)
            if (!add_addr(out, rr + k * (12 + (size_t)size) + 12, size))
                return false;
    }
    const struct zone_ptr *v = old->base ? (f == 0 ? old->rev4 : old->rev6) : NULL;
    size_t nv = old->base ? (f == 0 ? old->nrev4 : old->nrev6) : 0;
    for (size_t i = 0; i < nv; i++)
        if (!add_addr(out, v[i].addr, size))
            return false;
    if (out->n == 0)
        return true;
    qsort(out->v, out->n, 16, addr_cmp);
    size_t u = 0;
    for (size_t i = 0; i < out->n; i++)
        if (u == 0 || memcmp(out->v[u - 1], out->v[i], 16) != 0)
            memcpy(out->v[u++], out->v[i], 16);
    out->n = u;
    return true;
}

/* The TTL of the base's PTR `ptr` as its service gave it, before its
 * RRset took the smallest of its PTRs' (set_ptrs()): the TTL of the
 * service's own records. */
static uint32_t own_ttl(const struct zone *base, const struct zone_ptr *ptr, int size)
{
    const uint8_t *t = ptr->target;
    size_t len = ptr->target_len, at = (size_t)t[0] + 1;
    const struct znode *n = node_lookup(base, t, len);
    if ((!n || !(n->flags & NODE_SERVICE)) && at < len)
        n = node_lookup(base, t + at, len - at);
    size_t count = 0;
    const uint8_t *rr = n ? own_addresses(n, size, &count) : NULL;
    return count ? ldns_read_uint32(rr + 6) : ptr->ttl;
}

/* The patch's PTRs of one family: at each affected address, the base's
 * that did not go with the patch and the compiled services' own; a
 * marker with no target where none is left. False when out of memory. */
static bool patch_ptrs_of(struct compiler *c, const struct plan *p, const struct zone *old, int f)
{
    struct zone *z = c->z;
    struct ptr_list *l = &c->ptrs[f];
    struct addr_list at = {0};
    struct zone_ptr *mine = NULL;
    bool ok = affected(c, p, old, f, &at);
    if (ok && l->n) {
        mine = malloc(l->n * sizeof(*mine));
        ok = mine != NULL;
        if (ok)
            sort_ptrs(l->v, mine, l->n, f == 0 ? 4 : 16);
    }
    size_t most = at.n + l->n, n = 0, m = 0;
    for (size_t i = 0; ok && i < at.n; i++) {
        size_t nb;
        ptr_run(p->base, f == 0 ? 4 : 16, at.v[i], &nb);
        most += nb;
    }
    struct zone_ptr *v = ok ? arena_alloc(z->arena, (most ? most : 1) * sizeof(*v)) : NULL;
    for (size_t i = 0; v && i < at.n; i++) {
        size_t nb, first = n;
        const struct zone_ptr *b = ptr_run(p->base, f == 0 ? 4 : 16, at.v[i], &nb);
        for (size_t k = 0; k < nb; k++) {
            if (ptr_replaced(z, b[k].target, b[k].target_len))
                continue;
            v[n] = b[k];
            v[n++].ttl = own_ttl(p->base, &b[k], f == 0 ? 4 : 16);
        }
        for (; m < l->n && memcmp(mine[m].addr, at.v[i], 16) == 0; m++)
            v[n++] = mine[m];
        if (n == first)
            v[n++] = (struct zone_ptr){.target = NULL};
        memcpy(v[first].addr, at.v[i], 16);
    }
    free(at.v);
    free(mine);
    if (!v)
        return false;
    set_ptrs(z, f, v, n);
    return true;
}

/* ---------------------------------------------------------------------- */

/* Whether the settings a compile reads are `old`'s. */
static bool same_settings(const struct compiler *c, const struct zone *old)
{
    const struct zone *z = c->z;
    return z->settings_fp == old->settings_fp &&
           memcmp(&z->health, &old->health, sizeof(z->health)) == 0 &&
           (z->settings.upstream != NULL) == (old->settings.upstream != NULL);
}

struct zone *zone_patch(struct config *cfg, const struct zone *old, const struct zone_host *host,
                        time_t now, bool drop_mapping, struct zone_skip *skip, struct diag *d,
                        bool *whole)
{
    struct plan p = {.base = old->base ? old->base : old, .skip = skip};
    struct zone *z = NULL;
    struct compiler c = {.cfg = cfg, .host = host, .d = d, .patch = true};
    unsigned errors_before = d->errors;
    *whole = true;
    if (strcmp(cfg->zone, old->name) != 0 || !p.base->services || !plan_patch(&p, cfg, old))
        goto out;
    *whole = false;
    z = c.z = zone_new(p.base);
    c.keep = p.keep;
    /* the names compiled, the namespaces, and tombstones */
    size_t names = 64 + 3 * p.compiled + cfg->nnamespaces + p.base->nnamespaces + p.gone;
    if (!z || !compile_begin(&c, names, now))
        goto fail;
    z->settings_fp = settings_fingerprint(&c);
    if (!same_settings(&c, old)) {
        *whole = true;
        goto out;
    }
    compile_services(&c);
    if (!c.oom && !c.whole)
        compile_hosts(&c);
    if (c.whole) {
        *whole = true;
        goto out;
    }
    if (c.oom)
        goto fail;
    if (d->errors)
        goto out;
    if (drop_mapping)
        config_drop_mapping(cfg);
    if (!bury_gone(z, &p) || !patch_ptrs_of(&c, &p, old, 0) || !patch_ptrs_of(&c, &p, old, 1))
        goto fail;
    z->probes = old->probes; /* unchanged: the prober goes on writing them */
    z->nprobes = old->nprobes;
    z->checked = old->checked;
    z->nchecked = old->nchecked;
    z->shares_probes = true;
    z->services = p.base->services; /* the base's, for the next patch */
    z->nservices = p.base->nservices;

    count_patch(z, &c, &p, old);
    bool changed = z->stats.added || z->stats.removed || z->stats.changed;
    set_serial(z, next_serial(true, old->stats.serial, changed, now));
    z->stats.bytes = arena_size(z->arena) + (z->mask + 1) * sizeof(*z->slots) + p.base->stats.bytes;
    compiler_finish(&c);
    plan_free(&p);
    return z;

fail:
    if (d->errors == errors_before)
        diag_error(d, 0, "out of memory while compiling the zone");
out:
    compiler_finish(&c);
    zone_free(z);
    plan_free(&p);
    return NULL;
}
