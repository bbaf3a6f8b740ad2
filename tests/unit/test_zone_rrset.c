/* test_zone_rrset.c -- the record builder (zone_rrset.c): wire form, apex slots, shuffling, limits.
 */
#include <ldns/ldns.h>
#include <stdlib.h>
#include <string.h>

#include "src/zone_impl.h"
#include "svcmapd/arena.h"
#include "tap.h"

static struct zone z;
static struct builder b;

static const struct owner QNAME = {OWNER_QNAME, NULL, 0};

/* An A record of `o` with address 10.0.0.`last`, TTL 5. */
static void a_record(const struct owner *o, uint8_t last)
{
    const uint8_t addr[4] = {10, 0, 0, last};
    b_rr_begin(&b, o, LDNS_RR_TYPE_A, 5);
    b_bytes(&b, addr, 4);
    b_rr_end(&b);
}

static void test_qname_owner(void)
{
    b_reset(&b);
    a_record(&QNAME, 1);
    const struct zone_rrset *r = b_finish(&z, &b, false);
    static const uint8_t want[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1};
    ok(r && r->count == 1 && r->nfix == 0 && r->rrlen == 0, "one record, no slots");
    ok(r && r->len == sizeof(want) && memcmp(zone_rrset_data(r), want, sizeof(want)) == 0,
       "owner: a pointer to the question name (RFC 1035 4.1.4); RDLENGTH 4");
}

static void test_apex_slots(void)
{
    /* web.<apex> CNAME db.<apex>: labels, then a slot, in owner and RDATA */
    const struct owner web = {OWNER_REL, (const uint8_t *)"\3web", 4};
    const struct owner db = {OWNER_REL, (const uint8_t *)"\2db", 3};
    b_reset(&b);
    b_rr_begin(&b, &web, LDNS_RR_TYPE_CNAME, 30);
    b_name(&b, &db);
    b_rr_end(&b);
    const struct zone_rrset *r = b_finish(&z, &b, false);
    static const uint8_t want[] = {3, 'w', 'e', 'b', 0xc0, 0, 0,   5,   0,    1, 0,
                                   0, 0,   30,  0,   5,    2, 'd', 'b', 0xc0, 0};
    ok(r && r->len == sizeof(want) && memcmp(zone_rrset_data(r), want, sizeof(want)) == 0,
       "relative names end in a pointer slot; RDLENGTH counts the slot");
    ok(r && r->nfix == 2 && zone_rrset_fix(r)[0] == 4 && zone_rrset_fix(r)[1] == 19,
       "both slots listed, at their offsets");

    static const uint8_t arpa[] = "\7in-addr\4arpa";
    const struct owner abs = {OWNER_ABS, arpa, sizeof(arpa)};
    b_reset(&b);
    a_record(&abs, 2);
    r = b_finish(&z, &b, false);
    ok(r && r->nfix == 0 && r->len == sizeof(arpa) + 14 &&
           memcmp(zone_rrset_data(r), arpa, sizeof(arpa)) == 0,
       "an absolute owner is written whole, without a slot");
}

static void test_shuffle(void)
{
    const struct owner svc = {OWNER_REL, (const uint8_t *)"\3svc", 4};
    b_reset(&b);
    for (uint8_t i = 1; i <= 3; i++)
        a_record(&svc, i);
    const struct zone_rrset *r = b_finish(&z, &b, true);
    ok(r && r->count == 3 && r->rrlen == 20 && r->nfix == 1 && zone_rrset_fix(r)[0] == 4,
       "records of one shape, shuffled: their length and one slot relative to each");

    b_reset(&b);
    for (uint8_t i = 1; i <= 3; i++)
        a_record(&svc, i);
    r = b_finish(&z, &b, false);
    ok(r && r->rrlen == 0 && r->nfix == 3 && zone_rrset_fix(r)[2] == 44,
       "not shuffled: every slot at its offset in the set");

    b_reset(&b);
    a_record(&svc, 1);
    a_record(&QNAME, 2);
    r = b_finish(&z, &b, true);
    ok(r && r->rrlen == 0 && r->nfix == 1, "records of two shapes are never shuffled");

    b_reset(&b);
    a_record(&svc, 1);
    r = b_finish(&z, &b, true);
    ok(r && r->rrlen == 0, "one record: nothing to shuffle");
}

static void test_limits(void)
{
    b_reset(&b);
    ok(b_finish(&z, &b, false) == NULL, "no records: no set");

    /* 5,000 AAAA records: 140,000 bytes, more than a message holds */
    const uint8_t addr[16] = {0xfd};
    b_reset(&b);
    for (int i = 0; i < 5000; i++) {
        b_rr_begin(&b, &QNAME, LDNS_RR_TYPE_AAAA, 5);
        b_bytes(&b, addr, 16);
        b_rr_end(&b);
    }
    ok(b_finish(&z, &b, false) == NULL, "more than 65,535 bytes: no set");

    /* owners of no labels, empty RDATA: 12 bytes and a slot a record */
    const struct owner apex = {OWNER_REL, NULL, 0};
    b_reset(&b);
    for (int i = 0; i < MAX_FIX; i++) {
        b_rr_begin(&b, &apex, LDNS_RR_TYPE_NULL, 5);
        b_rr_end(&b);
    }
    const struct zone_rrset *r = b_finish(&z, &b, false);
    ok(r && r->nfix == MAX_FIX, "MAX_FIX slots fit");
    b_rr_begin(&b, &apex, LDNS_RR_TYPE_NULL, 5);
    b_rr_end(&b);
    ok(b_finish(&z, &b, false) == NULL, "one slot more: no set");

    b_reset(&b);
    a_record(&QNAME, 1);
    ok(b_finish(&z, &b, false) != NULL, "b_reset() clears an overflow");
}

int main(void)
{
    z.arena = arena_new();
    if (!z.arena)
        return 1;
    test_qname_owner();
    test_apex_slots();
    test_shuffle();
    test_limits();
    arena_free(z.arena);
    return done_testing();
}
