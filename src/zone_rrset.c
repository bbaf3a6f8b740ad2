/* zone_rrset.c -- the record builder: RRsets in wire form, with the slots patched per query. */
#include <ldns/ldns.h>
#include <string.h>

#include "svcmapd/arena.h"
#include "zone_impl.h"

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

void b_name(struct builder *b, const struct owner *o)
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

void b_rr_begin(struct builder *b, const struct owner *o, uint16_t type, uint32_t ttl)
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

void b_rr_end(struct builder *b)
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
const struct zone_rrset *b_finish(struct zone *z, struct builder *b, bool shuffle)
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
