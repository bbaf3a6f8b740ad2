/* answer.c -- query bytes plus a compiled zone to reply bytes. */
#include "svcmapd/answer.h"

#include <ldns/ldns.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "svcmapd/edns.h"
#include "svcmapd/wire.h"

/*
 * The per-query path: parse the header, the question and an optional OPT
 * with explicit bounds checks, look the name up, then copy the plan's
 * pre-rendered RRsets and patch their apex pointers. Everything DNS that
 * can be done once is done by zone.c; nothing here allocates.
 */

#define HDR 12

/* Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD). */
#define F_QR 0x80 /* byte 2 */
#define F_AA 0x04
#define F_TC 0x02
#define F_RD 0x01
#define F_CD 0x10 /* byte 3 */

#define RCODE_BADVERS 16 /* RFC 6891 §6.1.3: extended, upper 8 bits in OPT */

struct query {
    uint16_t id;
    uint8_t opcode;
    uint8_t rd_cd[2]; /* RD in byte 2, CD in byte 3, to copy */
    const uint8_t *question;
    size_t question_len; /* qname + type + class, as received */
    uint8_t lname[LDNS_MAX_DOMAINLEN + 1];
    size_t name_len;
    uint16_t qtype;
    uint16_t qclass;
    struct edns edns;
    uint16_t udp_max; /* ours */
    const struct sockaddr *peer;
    const uint8_t *secret;
};

void answer_init(struct answer_ctx *ctx)
{
    uint8_t seed[8 + sizeof(ctx->secret)];
    if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
        /* no entropy source: weaker, still distinct per thread and start */
        uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)ctx;
        for (size_t i = 0; i < sizeof(seed); i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            seed[i] = (uint8_t)(x >> 56);
        }
    }
    memcpy(&ctx->rng, seed, 8);
    memcpy(ctx->secret, seed + 8, sizeof(ctx->secret));
    ctx->rng |= 1; /* xorshift must not start at zero */
}

/* xorshift64* (Vigna): fast, and good enough to shuffle records. */
static inline uint64_t rng_next(struct answer_ctx *ctx)
{
    uint64_t x = ctx->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ctx->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* A value in [0, bound), Lemire's multiply-shift (bias is irrelevant here). */
static inline uint32_t rng_below(struct answer_ctx *ctx, uint32_t bound)
{
    return (uint32_t)(((rng_next(ctx) >> 32) * (uint64_t)bound) >> 32);
}

/* The question name: uncompressed labels only (a pointer in the first name
 * of a message can only point backwards into the header). Folds it to lower
 * case into q->lname. Returns the offset after it, or 0 if malformed. */
static size_t parse_qname(const uint8_t *m, size_t len, size_t pos, struct query *q)
{
    size_t n = 0;
    for (;;) {
        if (pos >= len)
            return 0;
        uint8_t l = m[pos];
        if (l > 63)
            return 0; /* compression or an extended label type (RFC 6891 §5) */
        if (n + l + 1 > LDNS_MAX_DOMAINLEN || pos + 1 + l > len)
            return 0;
        q->lname[n++] = l;
        pos++;
        if (l == 0)
            break;
        for (uint8_t i = 0; i < l; i++) {
            uint8_t c = m[pos++];
            q->lname[n++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
        }
    }
    q->name_len = n;
    return pos;
}

/* Walks `count` records from `pos`. In the additional section (`opt`),
 * notes the OPT: at most one, owned by the root; other records (a TSIG,
 * say) are skipped. Returns the offset after them, or 0 if malformed. */
static size_t parse_records(const uint8_t *m, size_t len, size_t pos, uint16_t count, bool opt,
                            struct query *q)
{
    for (uint16_t i = 0; i < count; i++) {
        bool root;
        pos = wire_skip_name(m, len, pos, &root);
        if (pos == 0 || len - pos < 10)
            return 0;
        uint16_t type = ldns_read_uint16(m + pos);
        uint16_t rdlen = ldns_read_uint16(m + pos + 8);
        if (len - pos - 10 < rdlen)
            return 0;
        if (opt && type == LDNS_RR_TYPE_OPT && !edns_read(&q->edns, m + pos, rdlen, root))
            return 0;
        pos += 10 + (size_t)rdlen;
    }
    return pos;
}

/* The header and the question of a reply, with no records yet. */
static size_t write_empty(const struct query *q, uint8_t *out, uint8_t rcode, bool question)
{
    ldns_write_uint16(out, q->id);
    out[2] = (uint8_t)(F_QR | q->opcode << 3 | q->rd_cd[0]);
    out[3] = (uint8_t)(q->rd_cd[1] | (rcode & 0x0f));
    ldns_write_uint16(out + 4, question ? 1 : 0);
    ldns_write_uint16(out + 6, 0);
    ldns_write_uint16(out + 8, 0);
    ldns_write_uint16(out + 10, 0);
    size_t pos = HDR;
    if (question) {
        memcpy(out + pos, q->question, q->question_len);
        pos += q->question_len;
    }
    return pos;
}

/* The OPT record of the reply, if the query has one. */
static size_t put_opt(const struct query *q, uint8_t *out, size_t pos, uint8_t rcode)
{
    if (!q->edns.present)
        return pos;
    return edns_write(&q->edns, out, pos, rcode, q->udp_max, q->secret, q->peer);
}

/* Copies `n` of the records of a uniform set (all of one length, slots
 * relative to each), picked at random: the first `n` of a shuffled order. */
static size_t put_shuffled(struct answer_ctx *ctx, const struct zone_rrset *r, uint16_t n,
                           uint8_t *out, size_t pos, uint16_t ptr)
{
    const uint8_t *data = zone_rrset_data(r);
    const uint16_t *fix = zone_rrset_fix(r);
    uint16_t order[ANSWER_TCP_MAX / 16];
    uint16_t count = r->count;
    for (uint16_t i = 0; i < count; i++)
        order[i] = i;
    for (uint16_t i = count - 1; i > 0; i--) {
        uint16_t j = (uint16_t)rng_below(ctx, (uint32_t)i + 1);
        uint16_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint16_t i = 0; i < n; i++) {
        uint8_t *rec = out + pos + (size_t)i * r->rrlen;
        memcpy(rec, data + (size_t)order[i] * r->rrlen, r->rrlen);
        for (uint16_t k = 0; k < r->nfix; k++)
            ldns_write_uint16(rec + fix[k], ptr);
    }
    return pos + (size_t)n * r->rrlen;
}

/* Copies one set of records at out+pos, shuffling uniform ones, and points
 * the apex slots at `ptr`. Returns the new position. */
static size_t put_set(struct answer_ctx *ctx, const struct zone_rrset *r, uint8_t *out, size_t pos,
                      uint16_t ptr)
{
    if (r->rrlen && r->count > 1)
        return put_shuffled(ctx, r, r->count, out, pos, ptr);
    uint8_t *dst = out + pos;
    memcpy(dst, zone_rrset_data(r), r->len);
    const uint16_t *fix = zone_rrset_fix(r);
    for (uint16_t k = 0; k < r->nfix; k++)
        ldns_write_uint16(dst + fix[k], ptr);
    return pos + r->len;
}

/* Copies upstream records, with TTLs no larger than what remains of the
 * upstream's (RFC 1035 §3.2.1 counts down), and 30 s at most when stale
 * (RFC 8767 §4); owners after the first point back into them (upstream.h).
 * The caller has made sure those pointers reach (follow()). */
static size_t put_external(const struct upstream_records *r, uint8_t *out, size_t pos)
{
    memcpy(out + pos, r->data, r->len);
    for (uint16_t i = 0; i < r->count; i++) {
        uint32_t ttl = r->ttl[i] > r->age ? r->ttl[i] - r->age : 0;
        if (r->stale)
            ttl = r->ttl[i] < 30 ? r->ttl[i] : 30;
        ldns_write_uint32(out + pos + r->ttl_at[i], ttl);
        if (i > 0)
            ldns_write_uint16(out + pos + r->ttl_at[i] - 6,
                              (uint16_t)(0xc000 | (pos + r->name_at[i])));
    }
    return pos + r->len;
}

/* The type of a set's records (all of one type but in SRV answers'
 * additional section). */
static uint16_t set_type(const struct zone_rrset *r)
{
    const uint8_t *d = zone_rrset_data(r);
    size_t at = wire_skip_name(d, r->len, 0, NULL);
    return at && r->len - at >= 2 ? ldns_read_uint16(d + at) : 0;
}

/* put_set() of a name that is not the question: the owners it writes as
 * pointers to the question point to `name` instead, and its apex slots to
 * `apex`. */
/* Points the owners of the `count` records written at out[pos..end) that
 * are the question's name (0xc000|HDR) at `name` instead. */
static void retarget(uint8_t *out, size_t pos, size_t end, uint16_t count, uint16_t name)
{
    for (uint16_t k = 0; k < count && pos; k++) {
        if (ldns_read_uint16(out + pos) == (0xc000 | HDR))
            ldns_write_uint16(out + pos, name);
        pos = wire_skip_name(out, end, pos, NULL);
        pos = pos && end - pos >= 10 ? pos + 10 + ldns_read_uint16(out + pos + 8) : 0;
    }
}

static size_t put_set_at(struct answer_ctx *ctx, const struct zone_rrset *r, uint8_t *out,
                         size_t pos, uint16_t apex, uint16_t name)
{
    size_t end = put_set(ctx, r, out, pos, apex);
    retarget(out, pos, end, r->count, name);
    return end;
}

#define MAX_LINKS 10 /* CNAMEs in one chain, as in the zone (CoreDNS's maxCnameChainLength) */

/*
 * The answer after a CNAME to a name outside the zone: the upstream's
 * records for that name (upstream.c), and wherever the upstream's chain
 * comes back into the zone, the mapping's records from there, as a query
 * for that name would get them: what the upstream says about our names is
 * never served (upstream.c keeps none of it). Such a name is not the
 * question, so its records are written with owners that point at it in the
 * last upstream link's rdata. Its own chain may leave the zone again, and
 * so on, up to MAX_LINKS CNAMEs in all; a target met twice ends it.
 */
struct tail {
    size_t n; /* upstream records taken */
    struct upstream_records ext[MAX_LINKS];
    struct zone_found back[MAX_LINKS]; /* where ext[i]'s chain comes back; plan NULL: not */
    uint8_t nsets[MAX_LINKS];          /* answer sets of back[i].plan taken */
    bool soa;     /* the last back[] has no records of the type: its SOA in AUTHORITY */
    bool open;    /* the answer ends with a CNAME whose target has no records in it */
    size_t bytes; /* all of the above */
};

/* The name the upstream's chain comes back into the zone at, lower case. */
static size_t zone_name_of(const struct upstream_records *r, uint8_t *out)
{
    size_t n = 0;
    for (size_t at = r->zone_at; at < r->len && n < LDNS_MAX_DOMAINLEN + 1;) {
        uint8_t l = r->data[at];
        out[n++] = l;
        if (l == 0 || l > 63 || at + 1 + l > r->len || n + l > LDNS_MAX_DOMAINLEN + 1)
            return l == 0 ? n : 0;
        for (uint8_t i = 1; i <= l; i++) {
            uint8_t c = r->data[at + i];
            out[n++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
        }
        at += 1 + (size_t)l;
    }
    return 0;
}

/* Fills `t` for the chain that leaves the zone at `x` after `links`
 * CNAMEs, its records to start `base` bytes into the reply. False if the
 * query must wait for the lookup in *wait first (NULL: it may not). */
static bool follow(struct answer_ctx *ctx, const struct zone *z,
                   const struct upstream_settings *set, const struct zone_external *x,
                   uint16_t qtype, size_t links, size_t base, struct tail *t,
                   struct upstream_lookup **wait)
{
    const struct zone_external *seen[MAX_LINKS];
    for (t->n = 0; x && t->n < MAX_LINKS;) {
        struct upstream_records *r = &t->ext[t->n];
        enum upstream_status st =
            upstream_get(ctx->up, set, x->name, x->len, qtype, ctx->now, r, wait);
        if (st == UPSTREAM_MISS)
            return false;
        /* Owners point back into the records: 14 bits of offset reach
         * 16 KiB, more than any ten links take. */
        size_t at = base + t->bytes;
        if (st != UPSTREAM_HIT || at + r->name_max + LDNS_MAX_DOMAINLEN >= 0x4000 ||
            (t->n && links + r->links > MAX_LINKS))
            break;
        seen[t->n] = x;
        struct zone_found *f = &t->back[t->n];
        f->plan = NULL;
        t->nsets[t->n++] = 0;
        links += r->links;
        t->bytes += r->len;
        t->open = r->count == r->links;
        x = NULL;

        uint8_t name[LDNS_MAX_DOMAINLEN + 1];
        size_t len = r->zone_at ? zone_name_of(r, name) : 0;
        if (len == 0)
            break;
        zone_find(z, name, len, qtype, f);
        f->plan = zone_view(&ctx->view, f->plan); /* a checked service: its healthy targets */
        const struct zone_plan *p = f->plan;
        const struct zone_external *next = zone_plan_external(p);
        for (size_t i = 0; next && i < t->n; i++)
            if (seen[i] == next)
                p = NULL; /* round again: the chain stops at the upstream's last link */
        if (!p || !p->aa) {
            f->plan = NULL; /* or no longer ours: the zone changed under the cache */
            break;
        }
        if (f->rr) {
            t->bytes += f->rrlen;
            t->open = false;
            break;
        }
        size_t nan = p->nsets[ZONE_ANSWER], k = 0;
        for (; k < nan; k++) {
            bool cname = set_type(p->sets[k]) == LDNS_RR_TYPE_CNAME;
            if (cname && links >= MAX_LINKS)
                break;
            links += cname;
            t->bytes += p->sets[k]->len;
            t->open = cname;
        }
        t->nsets[t->n - 1] = (uint8_t)k;
        if (nan == 0) {
            /* NXDOMAIN or NODATA there: NOERROR with the links, as CoreDNS
             * answers, and the SOA that says the name has no such records
             * (RFC 2308 §2.2), which only we may say of our names. */
            for (size_t i = 0; i < p->nsets[ZONE_AUTHORITY]; i++)
                t->bytes += p->sets[i]->len;
            t->soa = p->nsets[ZONE_AUTHORITY] > 0;
            t->open = false;
            break;
        }
        if (k == nan)
            x = next; /* the mapping's chain leaves the zone again */
    }
    return true;
}

/* Writes the answer records of `t` at out+pos; returns the new position.
 * *soa_apex: where its SOA's apex points, when t->soa. */
static size_t put_tail(struct answer_ctx *ctx, const struct tail *t, uint8_t *out, size_t pos,
                       uint16_t *an, uint16_t *soa_apex)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct upstream_records *r = &t->ext[i];
        size_t at = pos;
        pos = put_external(r, out, pos);
        *an = (uint16_t)(*an + r->count);
        const struct zone_found *f = &t->back[i];
        if (!f->plan)
            continue;
        uint16_t name = (uint16_t)(0xc000 | (at + r->zone_at));
        *soa_apex = (uint16_t)(0xc000 | (at + r->zone_at + f->apex));
        if (f->rr) {
            memcpy(out + pos, f->rr, f->rrlen);
            ldns_write_uint16(out + pos, name); /* owned by the question there */
            pos += f->rrlen;
            (*an)++;
        }
        for (size_t k = 0; k < t->nsets[i]; k++) {
            pos = put_set_at(ctx, f->plan->sets[k], out, pos, *soa_apex, name);
            *an = (uint16_t)(*an + f->plan->sets[k]->count);
        }
    }
    return pos;
}

/* PTR records of a mapped address (SPEC §2.5), owned by the question's
 * name. */
static size_t put_ptrs(const struct zone_ptr *v, size_t n, uint8_t *out, size_t pos)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *rr = out + pos;
        ldns_write_uint16(rr, 0xc000 | HDR);
        ldns_write_uint16(rr + 2, LDNS_RR_TYPE_PTR);
        ldns_write_uint16(rr + 4, LDNS_RR_CLASS_IN);
        ldns_write_uint32(rr + 6, v[i].ttl);
        ldns_write_uint16(rr + 10, v[i].target_len);
        memcpy(rr + 12, v[i].target, v[i].target_len);
        pos += 12 + (size_t)v[i].target_len;
    }
    return pos;
}

static size_t set_bytes(const struct zone_plan *p, size_t first, size_t n, uint16_t *count)

{
    size_t bytes = 0;
    *count = 0;
    for (size_t i = first; i < first + n; i++) {
        bytes += p->sets[i]->len;
        *count = (uint16_t)(*count + p->sets[i]->count);
    }
    return bytes;
}

/* The records of `r` that fit before `end`, whole, as put_set() would give
 * them: all of them, or a random pick of a uniform set, or the first ones
 * of another. Adds them to *count; sets *full when one did not fit.
 * Returns the new position. */
static size_t put_set_part(struct answer_ctx *ctx, const struct zone_rrset *r, uint8_t *out,
                           size_t pos, size_t end, uint16_t ptr, uint16_t *count, bool *full)
{
    if (end - pos >= r->len) {
        *count = (uint16_t)(*count + r->count);
        return put_set(ctx, r, out, pos, ptr);
    }
    *full = true;
    if (r->rrlen) {
        uint16_t n = (uint16_t)((end - pos) / r->rrlen);
        *count = (uint16_t)(*count + n);
        return put_shuffled(ctx, r, n, out, pos, ptr);
    }
    /* Records of different lengths: walk them. The slots are in
     * increasing order, as the builder wrote them. */
    const uint8_t *data = zone_rrset_data(r);
    const uint16_t *fix = zone_rrset_fix(r);
    size_t at = 0, k = 0;
    for (uint16_t i = 0; i < r->count; i++) {
        size_t next = wire_skip_name(data, r->len, at, NULL);
        next += 10 + (size_t)ldns_read_uint16(data + next + 8);
        if (end - pos < next - at)
            break;
        memcpy(out + pos, data + at, next - at);
        for (; k < r->nfix && fix[k] < next; k++)
            ldns_write_uint16(out + pos + (fix[k] - at), ptr);
        pos += next - at;
        at = next;
        (*count)++;
    }
    return pos;
}

/* The upstream records of `r` that fit before `end`, whole, in their
 * order. Adds them to *count; sets *full when one did not fit. */
static size_t put_external_part(const struct upstream_records *r, uint8_t *out, size_t pos,
                                size_t end, uint16_t *count, bool *full)
{
    struct upstream_records part = *r;
    size_t len = 0;
    for (part.count = 0; part.count < r->count; part.count++) {
        size_t at = r->ttl_at[part.count];
        size_t next = at + 6 + ldns_read_uint16(r->data + at + 4);
        if (end - pos < next)
            break;
        len = next;
    }
    part.len = len;
    *full = part.count < r->count;
    *count = (uint16_t)(*count + part.count);
    return put_external(&part, out, pos);
}

/* put_tail() for a reply cut at `end`: whole records, in the same order,
 * until one does not fit (then *full). */
static size_t put_tail_part(struct answer_ctx *ctx, const struct tail *t, uint8_t *out, size_t pos,
                            size_t end, uint16_t *an, bool *full)
{
    for (size_t i = 0; i < t->n && !*full; i++) {
        const struct upstream_records *r = &t->ext[i];
        size_t at = pos;
        pos = put_external_part(r, out, pos, end, an, full);
        const struct zone_found *f = &t->back[i];
        if (*full || !f->plan)
            continue;
        uint16_t name = (uint16_t)(0xc000 | (at + r->zone_at));
        uint16_t apex = (uint16_t)(0xc000 | (at + r->zone_at + f->apex));
        if (f->rr) {
            *full = end - pos < f->rrlen;
            if (*full)
                break;
            memcpy(out + pos, f->rr, f->rrlen);
            ldns_write_uint16(out + pos, name);
            pos += f->rrlen;
            (*an)++;
        }
        for (size_t k = 0; k < t->nsets[i] && !*full; k++) {
            uint16_t before = *an;
            size_t from = pos;
            pos = put_set_part(ctx, f->plan->sets[k], out, pos, end, apex, an, full);
            retarget(out, from, pos, (uint16_t)(*an - before), name);
        }
    }
    return pos;
}

/*
 * SPEC §3: an answer that does not fit goes out with TC=1 and as many whole
 * answer records as fit before `end`, in the order of the full answer: the
 * CNAMEs first, address RRsets shuffled per query, so a random subset of
 * them. That is CoreDNS's loadbalance followed by its Truncate (miekg/dns
 * Msg.Truncate keeps the longest prefix of whole records), and it gives
 * resolvers that never retry over TCP (musl before 1.2.4) addresses. The
 * authority and additional sections stay empty. Returns the new position,
 * the answer count in *an.
 */
static size_t put_truncated(struct answer_ctx *ctx, const struct zone_plan *p,
                            const struct zone_found *f, const struct tail *t, uint8_t *out,
                            size_t pos, size_t end, uint16_t ptr, uint16_t *an)
{
    bool full = false;
    *an = 0;
    for (size_t i = 0; i < p->nsets[ZONE_ANSWER] && !full; i++)
        pos = put_set_part(ctx, p->sets[i], out, pos, end, ptr, an, &full);
    if (!full)
        pos = put_tail_part(ctx, t, out, pos, end, an, &full);
    size_t nptr = 0, bytes = 0;
    for (; nptr < f->nptr && !full; nptr++) {
        size_t need = 12 + (size_t)f->ptr[nptr].target_len;
        full = end - pos - bytes < need;
        if (full)
            break;
        bytes += need;
    }
    pos = put_ptrs(f->ptr, nptr, out, pos);
    *an = (uint16_t)(*an + nptr);
    if (f->rr && !full && end - pos >= f->rrlen) {
        memcpy(out + pos, f->rr, f->rrlen);
        pos += f->rrlen;
        (*an)++;
    }
    return pos;
}

/* Reads the header, the question and the records after it of `m` (`len`
 * bytes, a header at least) into *q, and what logs and counters want of
 * them into *info. Returns whether the message is a well-formed query:
 * one question, no answers, authority records only for IXFR, records
 * that can be walked, at most one OPT. */
static bool parse_query(const uint8_t *m, size_t len, struct query *q, struct answer_info *info)
{
    q->id = ldns_read_uint16(m);
    q->opcode = (m[2] >> 3) & 0x0f;
    q->rd_cd[0] = m[2] & F_RD;
    q->rd_cd[1] = m[3] & F_CD;
    q->question = NULL;
    edns_clear(&q->edns);
    uint16_t qdcount = ldns_read_uint16(m + 4);
    uint16_t ancount = ldns_read_uint16(m + 6);
    uint16_t nscount = ldns_read_uint16(m + 8);
    uint16_t arcount = ldns_read_uint16(m + 10);
    info->id = q->id;

    size_t pos = 0;
    if (qdcount == 1)
        pos = parse_qname(m, len, HDR, q);
    if (pos != 0 && len - pos >= 4) {
        q->qtype = ldns_read_uint16(m + pos);
        q->qclass = ldns_read_uint16(m + pos + 2);
        pos += 4;
        q->question = m + HDR;
        q->question_len = pos - HDR;
        info->qtype = q->qtype;
        info->qclass = q->qclass;
        info->question = true;
    }
    /* The OPT is read even for errors, so they carry one too (RFC 6891 §7). */
    /* A query has no answers, and authority records only for IXFR, whose
     * SOA goes there (RFC 1995 §3). */
    bool well_formed =
        q->question && ancount == 0 && (nscount == 0 || q->qtype == LDNS_RR_TYPE_IXFR);
    if (well_formed && nscount)
        pos = parse_records(m, len, pos, nscount, false, q);
    if (well_formed && pos && arcount)
        pos = parse_records(m, len, pos, arcount, true, q);
    well_formed = well_formed && pos != 0;
    if (!well_formed)
        edns_clear(&q->edns);
    info->edns = q->edns.present;
    info->do_bit = q->edns.present && (q->edns.flags & EDNS_DO);
    info->bufsize = q->edns.present ? q->edns.udp_size : ANSWER_UDP_PLAIN;
    return well_formed;
}

#define RCODE_NONE 0xff /* query_error(): no error */

/* The rcode of the error a query gets without asking the zone, or
 * RCODE_NONE. A malformed one loses its question: the reply has none. */
static uint8_t query_error(struct query *q, bool well_formed)
{
    if (q->opcode != LDNS_PACKET_QUERY)
        return LDNS_RCODE_NOTIMPL; /* RFC 8906 §3.1.5 */
    if (!well_formed) {
        q->question = NULL;
        return LDNS_RCODE_FORMERR;
    }
    if (q->edns.present && q->edns.version > 0)
        return RCODE_BADVERS; /* RFC 6891 §6.1.3 */
    if (q->edns.bad_cookie)
        return LDNS_RCODE_FORMERR; /* RFC 7873 §5.2.2 */
    if (q->qtype == LDNS_RR_TYPE_OPT)
        return LDNS_RCODE_FORMERR; /* a meta type is not a question */
    if (q->qclass != LDNS_RR_CLASS_IN)
        return LDNS_RCODE_REFUSED;
    return RCODE_NONE;
}

/* The largest reply: the buffer's `cap` over TCP; over UDP 512 bytes, or
 * the client's EDNS size up to ours (RFC 6891 §6.2.5). */
static size_t reply_limit(const struct query *q, bool tcp, size_t cap)
{
    if (tcp)
        return cap;
    size_t udp = ANSWER_UDP_PLAIN;
    if (q->edns.present && q->edns.udp_size > udp)
        udp = q->edns.udp_size < q->udp_max ? q->edns.udp_size : q->udp_max;
    return udp < cap ? udp : cap;
}

/* Fills *tail when the plan's answer goes on at a hostname target outside
 * the zone: its records from the upstream cache follow the CNAME. False
 * when the query must wait for a lookup first (info->wait). */
static bool fetch_tail(struct answer_ctx *ctx, const struct zone *z, const struct query *q,
                       const struct zone_plan *p, struct tail *tail, struct answer_info *info)
{
    tail->n = 0;
    tail->bytes = 0;
    tail->soa = false;
    const struct zone_external *external = zone_plan_external(p);
    const struct upstream_settings *set = external ? zone_settings(z)->upstream : NULL;
    if (!set || !ctx->up)
        return true;
    uint16_t an;
    size_t nan = p->nsets[ZONE_ANSWER];
    struct upstream_lookup *wait = NULL;
    size_t base = HDR + q->question_len + set_bytes(p, 0, nan, &an);
    if (follow(ctx, z, set, external, q->qtype, nan, base, tail, ctx->no_wait ? NULL : &wait))
        return true;
    info->wait = wait;
    return false;
}

/*
 * An A or AAAA answer that ends in a CNAME whose target has no records
 * here (resolve=no, no upstream, the upstream failed or has none, a
 * dangling chain) is, for that target, a negative answer without an SOA,
 * which RFC 2308 §5 says not to cache. dnsmasq caches it anyway, for the
 * CNAMEs' smallest TTL: the target would then be NODATA for everyone
 * behind it, whatever its own servers say. A CNAME of TTL 0 keeps every
 * cache from holding any of it (README, "Hostname targets outside the
 * zone"): the first answer record's TTL, at out+first, becomes 0.
 */
static void zero_open_ttl(const struct query *q, const struct zone_plan *p, const struct tail *t,
                          uint8_t *out, size_t first, size_t end, uint16_t ns)
{
    size_t nan = p->nsets[ZONE_ANSWER];
    bool open = t->n ? t->open : nan && set_type(p->sets[nan - 1]) == LDNS_RR_TYPE_CNAME;
    if (open && ns == 0 && p->rcode == LDNS_RCODE_NOERROR &&
        (q->qtype == LDNS_RR_TYPE_A || q->qtype == LDNS_RR_TYPE_AAAA)) {
        size_t ttl = wire_skip_name(out, end, first, NULL) + 4;
        if (ttl > 4 && ttl + 4 <= end)
            ldns_write_uint32(out + ttl, 0);
    }
}

/* Additional records are a courtesy: whole sets that do not fit before
 * `limit` are left out, without TC (RFC 2181 §9). */
static size_t put_additional(struct answer_ctx *ctx, const struct zone_plan *p, uint8_t *out,
                             size_t pos, size_t limit, uint16_t ptr)
{
    uint16_t ar = 0;
    size_t from = p->nsets[ZONE_ANSWER] + p->nsets[ZONE_AUTHORITY];
    for (size_t i = from; i < from + p->nsets[ZONE_ADDITIONAL]; i++) {
        const struct zone_rrset *r = p->sets[i];
        if (pos + r->len > limit)
            continue;
        pos = put_set(ctx, r, out, pos, ptr);
        ar = (uint16_t)(ar + r->count);
    }
    ldns_write_uint16(out + 10, ar);
    return pos;
}

/* The whole answer, which fits before `limit`, after the question at
 * out+pos: the answer section (the plan's sets, the upstream tail, PTRs
 * or an endpoint's record), the authority section, then as much of the
 * additional section as fits. `an` and `ns` count the plan's answer and
 * authority records. Returns the new position. */
static size_t put_whole(struct answer_ctx *ctx, const struct query *q, const struct zone_found *f,
                        const struct tail *tail, uint8_t *out, size_t pos, size_t limit,
                        uint16_t an, uint16_t ns)
{
    const struct zone_plan *p = f->plan;
    uint16_t ptr = (uint16_t)(0xc000 | (HDR + f->apex));
    size_t nan = p->nsets[ZONE_ANSWER], nns = p->nsets[ZONE_AUTHORITY];

    size_t first = pos;
    for (size_t i = 0; i < nan; i++)
        pos = put_set(ctx, p->sets[i], out, pos, ptr);
    uint16_t soa_apex = 0;
    pos = put_tail(ctx, tail, out, pos, &an, &soa_apex);
    if (f->nptr) {
        pos = put_ptrs(f->ptr, f->nptr, out, pos);
        an = (uint16_t)(an + f->nptr);
    }
    if (f->rr) {
        memcpy(out + pos, f->rr, f->rrlen);
        pos += f->rrlen;
        an++;
    }
    for (size_t i = nan; i < nan + nns; i++)
        pos = put_set(ctx, p->sets[i], out, pos, ptr);
    if (tail->soa) {
        const struct zone_plan *back = tail->back[tail->n - 1].plan;
        for (size_t i = 0; i < back->nsets[ZONE_AUTHORITY]; i++) {
            pos = put_set(ctx, back->sets[i], out, pos, soa_apex);
            ns = (uint16_t)(ns + back->sets[i]->count);
        }
    }
    ldns_write_uint16(out + 6, an);
    ldns_write_uint16(out + 8, ns);
    zero_open_ttl(q, p, tail, out, first, pos, ns);
    return put_additional(ctx, p, out, pos, limit, ptr);
}

/* Answers a query that passed query_error() from the zone. */
static enum answer_result answer_from_zone(struct answer_ctx *ctx, const struct zone *z,
                                           const struct query *q, bool tcp, uint8_t *out,
                                           size_t cap, struct answer_info *info)
{
    struct zone_found found;
    zone_find(z, q->lname, q->name_len, q->qtype, &found);
    zone_view_reset(&ctx->view);
    found.plan =
        zone_view(&ctx->view, found.plan); /* SPEC §6: a checked service's healthy targets */
    const struct zone_plan *p = found.plan;
    info->rcode = p->rcode;
    info->outside = !p->aa; /* the REFUSED plan: outside the zone */

    struct tail tail;
    if (!fetch_tail(ctx, z, q, p, &tail, info))
        return ANSWER_DEFERRED;

    size_t limit = reply_limit(q, tcp, cap) - edns_reply_len(&q->edns); /* the OPT's room kept */
    size_t pos = write_empty(q, out, p->rcode, true);
    if (p->aa)
        out[2] |= F_AA;

    uint16_t an, ns;
    size_t nan = p->nsets[ZONE_ANSWER];
    size_t need = set_bytes(p, 0, nan, &an) + set_bytes(p, nan, p->nsets[ZONE_AUTHORITY], &ns);
    need += tail.bytes;
    for (size_t i = 0; i < found.nptr; i++)
        need += 12 + found.ptr[i].target_len;
    need += found.rrlen;
    if (pos + need > limit) {
        uint16_t ptr = (uint16_t)(0xc000 | (HDR + found.apex));
        pos = put_truncated(ctx, p, &found, &tail, out, pos, limit, ptr, &an);
        ldns_write_uint16(out + 6, an);
        out[2] |= F_TC;
        info->truncated = true;
    } else {
        pos = put_whole(ctx, q, &found, &tail, out, pos, limit, an, ns);
    }
    info->len = put_opt(q, out, pos, p->rcode);
    return ANSWER_REPLY;
}

enum answer_result answer_query(struct answer_ctx *ctx, const struct zone *z, const uint8_t *m,
                                size_t len, bool tcp, const struct sockaddr *peer, uint8_t *out,
                                size_t cap, struct answer_info *info)
{
    *info = (struct answer_info){0};
    if (len < HDR || (m[2] & F_QR))
        return ANSWER_NONE; /* no header to answer, or a response: never reply */

    struct query q;
    q.udp_max = zone_settings(z)->udp_max;
    q.peer = peer;
    q.secret = ctx->secret;
    uint8_t rcode = query_error(&q, parse_query(m, len, &q, info));
    if (rcode == RCODE_NONE)
        return answer_from_zone(ctx, z, &q, tcp, out, cap, info);
    info->rcode = rcode;
    info->outside = true;
    info->len = put_opt(&q, out, write_empty(&q, out, rcode, q.question != NULL), rcode);
    return ANSWER_REPLY;
}
