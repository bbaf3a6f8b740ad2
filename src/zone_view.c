/* zone_view.c -- what one query sees of a checked service: the records of its healthy targets. */
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include "zone_impl.h"

/*
 * A plan whose sets hold a checked service's records (zone_checks.c) is
 * answered as its policy picks them (SPEC §6), and answer.c copies what
 * zone_view() gives as it copies any other plan: the answer, the truncated
 * answer, the chains through the zone and those that come back from an
 * upstream all see the same selection. The service's states are one
 * atomic word, read once per plan, without a lock; nothing allocates.
 *
 * Most answers are compiled: every target up (or, for policy all, none),
 * the plan itself; failover, the plan of its first healthy target, or of
 * all of them in file order, and policy all with one target healthy (a
 * pair with one down), that target's plan, which zone_checks.c compiles
 * beside it. Only policy all with two or more targets up and some down is
 * copied per query, into the thread's zone_view, with the records of the
 * healthy ones.
 *
 * How much room that needs: a checked service has at most 64 targets, so
 * the largest plan a query copies is an SRV answer with its additional
 * records, 64 records each of at most 18 bytes and a 181-byte target, and
 * 64 of a 181-byte owner and an address: under 27 KiB. A plan that holds
 * a checked service is never followed by upstream records, and those
 * that come back from upstream links each end a link that starts within
 * the first 16 KiB of the reply (answer.c's follow()): the sets copied
 * before the last stay under 16 KiB, and the last holds at most 64 named
 * records of 160 bytes. ZONE_VIEW_BYTES holds either with room to spare;
 * should it not, the plan is answered whole (zone_view()).
 */

/* `n` bytes of the view, 8-aligned; NULL when it is full. */
static void *take(struct zone_view *v, size_t n)
{
    size_t at = (v->used + 7) & ~(size_t)7;
    if (at > sizeof(v->buf) || sizeof(v->buf) - at < n)
        return NULL;
    v->used = at + n;
    return v->buf + at;
}

/* Where record `i` of `r` ends, the one before it ending at `at`. */
static size_t record_end(const struct zone_rrset *r, const uint8_t *data, uint16_t i, size_t at)
{
    if (r->rrlen)
        return ((size_t)i + 1) * r->rrlen;
    size_t end = wire_skip_name(data, r->len, at, NULL);
    return end + 10 + (size_t)(data[end + 8] << 8 | data[end + 9]);
}

/* The bytes, slots and records of the picked set. */
static size_t pick_shape(const struct zone_rrset *r, uint64_t sel, bool ordered, size_t *nfix,
                         uint16_t *count)
{
    const uint8_t *data = zone_rrset_data(r);
    const uint16_t *fix = zone_rrset_fix(r);
    bool uniform = r->rrlen && !ordered;
    size_t len = 0;
    *nfix = uniform ? r->nfix : 0;
    *count = 0;
    for (uint16_t i = 0, k = 0, at = 0; i < r->count; i++) {
        uint16_t end = (uint16_t)record_end(r, data, i, at);
        uint16_t slots = r->rrlen ? r->nfix : 0;
        for (; !r->rrlen && k < r->nfix && fix[k] < end; k++)
            slots++;
        if (sel >> i & 1) {
            len += (size_t)(end - at);
            *nfix += uniform ? 0 : slots;
            (*count)++;
        }
        at = end;
    }
    return len;
}

size_t rrset_pick_size(const struct zone_rrset *r, uint64_t sel, bool ordered)
{
    size_t nfix;
    uint16_t count;
    size_t len = pick_shape(r, sel, ordered, &nfix, &count);
    return sizeof(struct zone_rrset) + nfix * sizeof(uint16_t) + len;
}

const struct zone_rrset *rrset_pick(void *mem, const struct zone_rrset *r, uint64_t sel,
                                    bool ordered, bool srv)
{
    const uint8_t *data = zone_rrset_data(r);
    const uint16_t *fix = zone_rrset_fix(r);
    bool uniform = r->rrlen && !ordered;
    size_t nfix;
    uint16_t count;
    size_t len = pick_shape(r, sel, ordered, &nfix, &count);

    struct zone_rrset *out = mem;
    uint16_t *ofix = (uint16_t *)(void *)(out + 1);
    uint8_t *odata = (uint8_t *)(ofix + nfix);
    *out = (struct zone_rrset){(uint16_t)len, count, uniform ? r->rrlen : 0, (uint16_t)nfix};
    if (uniform)
        memcpy(ofix, fix, nfix * sizeof(uint16_t)); /* relative to each record */
    uint16_t weight = (uint16_t)(count >= 100 ? 1 : 100 / (count ? count : 1));
    size_t pos = 0, nf = 0;
    for (uint16_t i = 0, k = 0, at = 0; i < r->count; i++) {
        uint16_t end = (uint16_t)record_end(r, data, i, at);
        bool take_it = sel >> i & 1;
        for (uint16_t s = 0; r->rrlen && !uniform && take_it && s < r->nfix; s++)
            ofix[nf++] = (uint16_t)(pos + fix[s]);
        for (; !r->rrlen && k < r->nfix && fix[k] < end; k++)
            if (take_it)
                ofix[nf++] = (uint16_t)(pos + fix[k] - at);
        if (take_it) {
            memcpy(odata + pos, data + at, (size_t)(end - at));
            if (srv) {
                /* owner, type, class, TTL, RDLENGTH; then priority, weight */
                size_t rdata = wire_skip_name(odata, pos + end - at, pos, NULL) + 10;
                odata[rdata + 2] = (uint8_t)(weight >> 8);
                odata[rdata + 3] = (uint8_t)weight;
            }
            pos += (size_t)(end - at);
        }
        at = end;
    }
    return out;
}

const struct zone_plan *zone_view(struct zone_view *v, const struct zone_plan *p)
{
    if (!p->checked)
        return p;
    const struct plan_checks *pc = plan_checks(p);
    uint64_t healthy = atomic_load_explicit(&pc->svc->up, memory_order_relaxed) & pc->targets;
    if (pc->svc->policy == CONFIG_POLICY_FAILOVER) /* the first healthy; none: all, in order */
        return pc->alone[healthy ? (unsigned)__builtin_ctzll(healthy) : pc->svc->ntargets];
    if (healthy == pc->targets || healthy == 0)
        return p; /* all healthy, or none: all of them, shuffled as compiled */
    if ((healthy & (healthy - 1)) == 0)
        return pc->alone[__builtin_ctzll(healthy)]; /* one healthy: compiled too */

    size_t n = (size_t)p->nsets[0] + p->nsets[1] + p->nsets[2];
    size_t slots = n + (p->has_external ? 1 : 0);
    size_t mark = v->used;
    struct zone_plan *q = take(v, sizeof(*q) + slots * sizeof(q->sets[0]));
    if (!q)
        goto full;
    memcpy(q, p, sizeof(*q) + slots * sizeof(q->sets[0]));
    q->checked = false;
    for (size_t i = 0; i < n; i++) {
        const struct check_set *set = pc->set[i];
        if (!set)
            continue;
        uint64_t sel = check_set_records(set, healthy);
        void *mem = take(v, rrset_pick_size(p->sets[i], sel, false));
        if (!mem)
            goto full;
        q->sets[i] = rrset_pick(mem, p->sets[i], sel, false, set->srv);
    }
    return q;

full:
    v->used = mark;
    return p;
}

uint64_t zone_checked_answered(const struct zone_checked *s)
{
    uint64_t up = atomic_load_explicit(&s->up, memory_order_relaxed), answered = 0;
    for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
        uint64_t mine = 0; /* the targets of one family, as its A or AAAA set holds them */
        for (uint8_t k = 0; k < s->ntargets; k++)
            mine |= (uint64_t)(s->t[k].probe->key.family == family) << k;
        uint64_t healthy = up & mine;
        if (healthy == 0)
            answered |= mine;
        else if (s->policy == CONFIG_POLICY_FAILOVER)
            answered |= healthy & (~healthy + 1);
        else
            answered |= healthy;
    }
    return answered;
}
