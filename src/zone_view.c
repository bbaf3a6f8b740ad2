/* zone_view.c -- what one query sees of a checked service: the records of its healthy targets. */
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include "zone_impl.h"

/*
 * A plan whose sets hold a checked service's records (zone_checks.c) is
 * copied per query with only the records its policy picks (SPEC §6), into
 * the thread's zone_view; answer.c then copies that plan as it copies any
 * other, so the answer, the truncated answer, the chains through the zone
 * and those that come back from an upstream all see the same selection.
 * The states are read once per plan, without a lock; nothing allocates.
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

/* The targets of `svc` that are up, a bit each (target k is bit k). */
static uint64_t snapshot(const struct zone_checked *svc)
{
    uint64_t up = 0;
    for (uint8_t k = 0; k < svc->ntargets; k++)
        if (atomic_load_explicit(&svc->t[k].probe->up, memory_order_relaxed))
            up |= 1ULL << k;
    return up;
}

static uint64_t all_of(uint8_t count)
{
    return count >= 64 ? ~0ULL : (1ULL << count) - 1;
}

/* The records of `set` a query answers, a bit each (record i is bit i):
 * those of healthy targets, or the first of them for failover; none
 * healthy, all of them, as if unchecked, and for failover in the order of
 * the file (*ordered). */
static uint64_t pick(const struct check_set *set, uint64_t up, uint8_t policy, bool *ordered)
{
    uint64_t healthy = 0;
    for (uint8_t i = 0; i < set->count; i++)
        if (up >> set->target[i] & 1)
            healthy |= 1ULL << i;
    *ordered = false;
    if (healthy == 0) {
        *ordered = policy == CONFIG_POLICY_FAILOVER;
        return all_of(set->count);
    }
    if (policy == CONFIG_POLICY_FAILOVER)
        return healthy & (~healthy + 1); /* the lowest bit: the first in file order */
    return healthy;
}

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

/* Copies the records `sel` of `r` into the view, in their order, with
 * SRV weights shared among them (SPEC §2.4: 100, 50, 33...). A set whose
 * records are shuffled per query stays so unless `ordered`. NULL when the
 * view is full. */
static const struct zone_rrset *render(struct zone_view *v, const struct zone_rrset *r,
                                       uint64_t sel, bool ordered, bool srv)
{
    const uint8_t *data = zone_rrset_data(r);
    const uint16_t *fix = zone_rrset_fix(r);
    bool uniform = r->rrlen && !ordered;

    /* first the size: the records' bytes, and their slots */
    size_t len = 0, nfix = uniform ? r->nfix : 0;
    uint16_t count = 0;
    for (uint16_t i = 0, k = 0, at = 0; i < r->count; i++) {
        uint16_t end = (uint16_t)record_end(r, data, i, at);
        uint16_t slots = r->rrlen ? r->nfix : 0;
        for (; !r->rrlen && k < r->nfix && fix[k] < end; k++)
            slots++;
        if (sel >> i & 1) {
            len += (size_t)(end - at);
            nfix += uniform ? 0 : slots;
            count++;
        }
        at = end;
    }

    struct zone_rrset *out = take(v, sizeof(*out) + nfix * sizeof(uint16_t) + len);
    if (!out)
        return NULL;
    uint16_t *ofix = (uint16_t *)(void *)(out + 1);
    uint8_t *odata = (uint8_t *)(ofix + nfix);
    *out = (struct zone_rrset){(uint16_t)len, count, uniform ? r->rrlen : 0, (uint16_t)nfix};
    if (uniform)
        memcpy(ofix, fix, nfix * sizeof(uint16_t)); /* relative to each record */
    uint16_t weight = (uint16_t)(count >= 100 ? 1 : 100 / count);
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
    uint64_t up = snapshot(pc->svc);
    size_t n = (size_t)p->nsets[0] + p->nsets[1] + p->nsets[2];
    size_t slots = n + (p->has_external ? 1 : 0);
    size_t mark = v->used;
    struct zone_plan *q = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct check_set *set = pc->set[i];
        const struct zone_rrset *r = p->sets[i];
        if (!set || set->count != r->count)
            continue;
        bool ordered;
        uint64_t sel = pick(set, up, pc->svc->policy, &ordered);
        if (sel == all_of(set->count) && !(ordered && r->rrlen))
            continue; /* as compiled: all of them, in the order they come */
        if (!q) {
            q = take(v, sizeof(*q) + slots * sizeof(q->sets[0]));
            if (!q)
                goto full;
            memcpy(q, p, sizeof(*q) + slots * sizeof(q->sets[0]));
            q->checked = false;
        }
        if (!(q->sets[i] = render(v, r, sel, ordered, set->srv)))
            goto full;
    }
    return q ? q : p;

full:
    v->used = mark;
    return p;
}

uint64_t zone_checked_answered(const struct zone_checked *s)
{
    uint64_t up = snapshot(s), answered = 0;
    for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
        /* the targets of one family, as its A or AAAA set holds them */
        alignas(struct check_set) uint8_t buf[sizeof(struct check_set) + CONFIG_MAX_CHECKED];
        struct check_set *set = (struct check_set *)(void *)buf;
        set->count = 0;
        for (uint8_t k = 0; k < s->ntargets; k++)
            if (s->t[k].probe->key.family == family)
                set->target[set->count++] = k;
        bool ordered;
        uint64_t sel = pick(set, up, s->policy, &ordered);
        for (uint8_t i = 0; i < set->count; i++)
            if (sel >> i & 1)
                answered |= 1ULL << set->target[i];
    }
    return answered;
}
