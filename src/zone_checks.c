/* zone_checks.c -- compiles health-checked services: their probes, and the plans a query filters.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/arena.h"
#include "zone_compile.h"

/*
 * A checked service (SPEC §6) compiles like any other, and besides:
 *  - each of its targets gets a zone_probe, one per distinct address, port
 *    and check, sorted so that a reload finds what the running zone's
 *    probes had found (compile_probes());
 *  - each plan holding its records is copied with a plan_checks behind its
 *    sets (checked_plan()), which tells zone_view() which target each
 *    record is. Unchecked plans stay as they are: a flag in the padding of
 *    struct zone_plan, tested once per plan, is all they carry.
 */

/* A target whose probe is known once every service is compiled. */
struct probe_ref {
    struct zone_probe_key key;
    struct zone_checked_target *t;
};

struct probe_list {
    struct probe_ref *v;
    size_t n, cap;
    struct zone_checked **checked; /* in the order of the file */
    size_t nchecked, checked_cap;
};

static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

int zone_probe_key_cmp(const struct zone_probe_key *a, const struct zone_probe_key *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    int r = memcmp(a->addr, b->addr, sizeof(a->addr));
    if (r)
        return r;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if (!a->path || !b->path)
        return (b->path == NULL) - (a->path == NULL);
    return strcmp(a->path, b->path);
}

static int ref_cmp(const void *a, const void *b)
{
    return zone_probe_key_cmp(&((const struct probe_ref *)a)->key,
                              &((const struct probe_ref *)b)->key);
}

/* Room for `need` elements of `size` bytes in one of the list's arrays.
 * False when out of memory. */
static bool reserve(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *nv = realloc(*v, ncap * size);
    if (!nv)
        return false;
    *v = nv;
    *cap = ncap;
    return true;
}

static const char *zone_copy(struct compiler *c, const char *s)
{
    const char *copy = arena_strndup(c->z->arena, s, strlen(s));
    if (!copy)
        oom(c);
    return copy;
}

void check_service(struct compiler *c, const struct config_namespace *ns,
                   const struct config_service *s, struct znode *node)
{
    const struct config_check *check = s->check;
    if (!check)
        return;
    struct info *in = info_of(c, node);
    node->flags |= NODE_CHECKED;
    /* caches in front come back within an interval of a change */
    uint32_t most = c->cfg->health_interval / 1000;
    if (in->ttl > most)
        in->ttl = most;

    struct probe_list *l = c->probes;
    if (!l && !(l = c->probes = calloc(1, sizeof(*l)))) {
        oom(c);
        return;
    }
    struct zone_checked *k = arena_zalloc(c->z->arena, sizeof(*k) + s->ntargets * sizeof(k->t[0]));
    const char *path = check->path ? zone_copy(c, check->path) : NULL;
    if (!k || !reserve((void **)&l->v, &l->cap, l->n + s->ntargets, sizeof(*l->v)) ||
        !reserve((void **)&l->checked, &l->checked_cap, l->nchecked + 1, sizeof(*l->checked))) {
        oom(c);
        return;
    }
    k->ns = zone_copy(c, ns->name);
    k->name = zone_copy(c, s->name);
    k->policy = check->policy;
    k->ntargets = (uint8_t)s->ntargets; /* at most CONFIG_MAX_CHECKED */
    for (uint32_t i = 0; i < s->ntargets; i++) {
        const struct config_target *t = &s->targets[i];
        struct probe_ref *r = &l->v[l->n++];
        memset(r, 0, sizeof(*r));
        memcpy(r->key.addr, t->addr, t->family == AF_INET ? 4 : 16);
        r->key.family = (uint8_t)t->family;
        r->key.kind = check->kind;
        r->key.port = check->port ? check->port : t->port;
        r->key.path = path;
        r->t = &k->t[i];
        k->t[i].port = t->port;
    }
    l->checked[l->nchecked++] = k;
    extra_of(c, in)->checked = k;
}

/* The check_set of `which` of the checked service at `node`: which target
 * each record is, in the order its set has them (the targets of the
 * file, those of one family for A and AAAA). Made once. */
static const struct check_set *check_set_of(struct compiler *c, struct znode *node,
                                            enum check_which which)
{
    struct info *in = info_of(c, node);
    struct extra *x = extra_of(c, in);
    if (x->check_sets[which])
        return x->check_sets[which];
    const struct config_service *s = in->u.svc;
    int family = which == CHECK_A ? AF_INET : which == CHECK_AAAA ? AF_INET6 : 0;
    uint8_t target[CONFIG_MAX_CHECKED];
    size_t n = 0;
    for (uint32_t i = 0; i < s->ntargets && n < CONFIG_MAX_CHECKED; i++)
        if (!family || s->targets[i].family == family)
            target[n++] = (uint8_t)i;
    struct check_set *set = arena_alloc(c->z->arena, sizeof(*set) + n);
    if (!set) {
        oom(c);
        return NULL;
    }
    set->srv = which == CHECK_SRV;
    set->count = (uint8_t)n;
    memcpy(set->target, target, n);
    x->check_sets[which] = set;
    return set;
}

/* A copy of plan `p` (`slots` sets and its external slot) whose checked
 * sets keep the records of `targets` only, in file order if `ordered`:
 * one answer of a failover plan. NULL when out of memory. */
static const struct zone_plan *alone_plan(struct compiler *c, const struct zone_plan *p,
                                          size_t slots, const struct check_set *const *sets,
                                          size_t n, uint64_t targets, bool ordered)
{
    struct zone *z = c->z;
    struct zone_plan *q = arena_alloc(z->arena, sizeof(*q) + slots * sizeof(q->sets[0]));
    if (!q)
        return NULL;
    memcpy(q, p, sizeof(*q) + slots * sizeof(q->sets[0]));
    q->checked = false;
    for (size_t i = 0; i < n; i++) {
        const struct zone_rrset *r = p->sets[i];
        if (!sets[i])
            continue;
        uint64_t sel = check_set_records(sets[i], targets);
        if (popcount64(sel) == r->count && (!ordered || !r->rrlen))
            continue; /* all of them, as they come: the set itself */
        void *mem = arena_alloc(z->arena, rrset_pick_size(r, sel, ordered));
        if (!mem)
            return NULL;
        q->sets[i] = rrset_pick(mem, r, sel, ordered, sets[i]->srv);
    }
    return q;
}

const struct zone_plan *checked_plan(struct compiler *c, struct znode *node,
                                     const struct zone_plan *p, const enum check_which *which)
{
    const struct zone_checked *svc = checked_of(c, node);
    if (!p || !svc)
        return p;
    struct zone *z = c->z;
    size_t n = (size_t)p->nsets[0] + p->nsets[1] + p->nsets[2];
    size_t slots = n + (p->has_external ? 1 : 0);
    struct plan_checks *pc;
    /* the plan and its plan_checks in one piece: a query reads both */
    size_t head = sizeof(struct zone_plan) + (slots + 1) * sizeof(p->sets[0]);
    struct zone_plan *q = arena_zalloc(z->arena, head + sizeof(*pc) + n * sizeof(pc->set[0]));
    if (!q) {
        oom(c);
        return NULL;
    }
    pc = (struct plan_checks *)(void *)((char *)q + head);
    memcpy(q, p, sizeof(*q) + slots * sizeof(q->sets[0]));
    q->checked = true;
    pc->svc = svc;
    for (size_t i = 0; i < n; i++) {
        if (which[i] == CHECK_NONE)
            continue;
        const struct check_set *set = check_set_of(c, node, which[i]);
        if (!set)
            return NULL;
        pc->set[i] = set;
        for (uint8_t k = 0; k < set->count; k++)
            pc->targets |= 1ULL << set->target[k];
    }
    /* Compiled beside it: the plan with each target alone (failover's
     * answers, and policy all's with one target healthy: a pair with one
     * down), and for failover all of them in the order of the file. */
    bool failover = svc->policy == CONFIG_POLICY_FAILOVER;
    const struct zone_plan **alone =
        arena_zalloc(z->arena, ((size_t)svc->ntargets + 1) * sizeof(*alone));
    if (!alone) {
        oom(c);
        return NULL;
    }
    for (uint8_t k = 0; k <= svc->ntargets; k++) {
        bool all = k == svc->ntargets;
        if ((all && !failover) || (!all && !(pc->targets >> k & 1)))
            continue;
        alone[k] = alone_plan(c, p, slots, pc->set, n, all ? pc->targets : 1ULL << k, all);
        if (!alone[k]) {
            oom(c);
            return NULL;
        }
    }
    pc->alone = alone;
    memcpy((void *)&q->sets[slots], &pc, sizeof(pc));
    return q;
}

struct zone_probe *zone_probe_find(const struct zone *z, const struct zone_probe_key *key)
{
    size_t lo = 0, hi = z ? z->nprobes : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = zone_probe_key_cmp(&z->probes[mid].key, key);
        if (r == 0)
            return &z->probes[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void zone_checked_refresh(const struct zone *z)
{
    for (size_t i = 0; i < z->nchecked; i++) {
        struct zone_checked *k = z->checked[i];
        uint64_t up = 0;
        for (uint8_t t = 0; t < k->ntargets; t++)
            up |= (uint64_t)atomic_load_explicit(&k->t[t].probe->up, memory_order_relaxed) << t;
        atomic_store_explicit(&k->up, up, memory_order_relaxed);
    }
}

void compile_probes(struct compiler *c, const struct zone *old, time_t now)
{
    struct probe_list *l = c->probes;
    struct zone *z = c->z;
    if (!l || l->n == 0)
        return;
    qsort(l->v, l->n, sizeof(*l->v), ref_cmp);
    size_t distinct = 0;
    for (size_t i = 0; i < l->n; i++)
        distinct += i == 0 || ref_cmp(&l->v[i - 1], &l->v[i]) != 0;
    z->probes = arena_zalloc(z->arena, distinct * sizeof(*z->probes));
    z->checked = arena_alloc(z->arena, l->nchecked * sizeof(*z->checked));
    if (!z->probes || !z->checked) {
        oom(c);
        return;
    }
    memcpy(z->checked, l->checked, l->nchecked * sizeof(*z->checked));
    z->nchecked = l->nchecked;

    /* The states of the probes `old` had carry over, read while the
     * prober may write them; it writes its own again once this zone is
     * published (health.c). A new probe starts up: no cold-start outage. */
    for (size_t i = 0; i < l->n; i++) {
        if (i == 0 || ref_cmp(&l->v[i - 1], &l->v[i]) != 0) {
            struct zone_probe *p = &z->probes[z->nprobes++];
            p->key = l->v[i].key;
            const struct zone_probe *o = zone_probe_find(old, &p->key);
            atomic_init(&p->up, o ? atomic_load_explicit(&o->up, memory_order_relaxed) : 1);
            atomic_init(&p->streak, o ? atomic_load_explicit(&o->streak, memory_order_relaxed) : 0);
            atomic_init(&p->error, o ? atomic_load_explicit(&o->error, memory_order_relaxed) : 0);
            atomic_init(&p->since, o ? atomic_load_explicit(&o->since, memory_order_relaxed)
                                     : (uint64_t)now * 1000);
            atomic_init(&p->transitions,
                        o ? atomic_load_explicit(&o->transitions, memory_order_relaxed) : 0);
        }
        l->v[i].t->probe = &z->probes[z->nprobes - 1];
    }
    zone_checked_refresh(z); /* each service's word of them, which queries read */
}

void probes_free(struct compiler *c)
{
    if (!c->probes)
        return;
    free(c->probes->v);
    free(c->probes->checked);
    free(c->probes);
    c->probes = NULL;
}

/* ---------------------------------------------------------------------- */
/* What the prober and the endpoints read.                                 */

struct zone_probe *zone_probes(const struct zone *z, size_t *n)
{
    *n = z->nprobes;
    return z->probes;
}

struct zone_checked *const *zone_checked_services(const struct zone *z, size_t *n)
{
    *n = z->nchecked;
    return z->checked;
}

void zone_probe_set_up(const struct zone *z, struct zone_probe *p, bool up)
{
    atomic_store(&p->up, up ? 1 : 0);
    for (size_t i = 0; i < z->nchecked; i++)
        for (uint8_t k = 0; k < z->checked[i]->ntargets; k++)
            if (z->checked[i]->t[k].probe == p) {
                if (up)
                    atomic_fetch_or(&z->checked[i]->up, 1ULL << k);
                else
                    atomic_fetch_and(&z->checked[i]->up, ~(1ULL << k));
            }
}

const struct zone_health *zone_health(const struct zone *z)
{
    return &z->health;
}

const char *zone_target_text(const struct zone_checked *s, size_t k, char *out, size_t cap)
{
    const struct zone_probe_key *key = &s->t[k].probe->key;
    char addr[INET6_ADDRSTRLEN];
    inet_ntop(key->family, key->addr, addr, sizeof(addr));
    uint16_t port = s->t[k].port;
    bool v6 = key->family == AF_INET6;
    if (port)
        snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", addr, port);
    else
        snprintf(out, cap, "%s", addr);
    return out;
}
