/* test_answer.c -- answer_query() against a compiled zone, decoded independently by ldns. */
#include "svcmapd/answer.h"

#include <ldns/ldns.h>
#include <stdlib.h>

#include "svcmapd/load.h"
#include "tap.h"
#include "unit_zone.h"

static struct zone *zone;
static struct answer_ctx ctx;
static uint8_t reply[ANSWER_TCP_MAX];

struct q {
    const char *name;
    uint16_t type;
    uint16_t edns_size; /* 0: no OPT */
    bool do_bit;
    bool tcp;
};

/* Sends `raw` (len bytes) and decodes the reply; NULL if nothing was sent. */
static ldns_pkt *exchange_raw(const uint8_t *raw, size_t len, bool tcp, size_t *rlen)
{
    struct answer_info info;
    enum answer_result r =
        answer_query(&ctx, zone, raw, len, tcp, NULL, reply, sizeof(reply), &info);
    size_t n = info.len;
    if (rlen)
        *rlen = n;
    if (r != ANSWER_REPLY)
        return NULL;
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, reply, n) != LDNS_STATUS_OK)
        printf("# ldns cannot parse the reply\n");
    return p;
}

static ldns_pkt *exchange(struct q q, size_t *rlen)
{
    ldns_pkt *p =
        ldns_pkt_query_new(ldns_dname_new_frm_str(q.name), q.type, LDNS_RR_CLASS_IN, LDNS_RD);
    ldns_pkt_set_id(p, 4242);
    if (q.edns_size) {
        ldns_pkt_set_edns_udp_size(p, q.edns_size);
        ldns_pkt_set_edns_do(p, q.do_bit);
    }
    uint8_t *wire;
    size_t len;
    ldns_pkt2wire(&wire, p, &len);
    ldns_pkt_free(p);
    ldns_pkt *r = exchange_raw(wire, len, q.tcp, rlen);
    free(wire);
    return r;
}

static char *owner_of(const ldns_rr_list *l, size_t i)
{
    return ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(l, i)));
}

static char *rdata_of(const ldns_rr_list *l, size_t i)
{
    const ldns_rr *rr = ldns_rr_list_rr(l, i);
    char *s = malloc(512);
    s[0] = '\0';
    for (size_t k = 0; k < ldns_rr_rd_count(rr); k++) {
        char *f = ldns_rdf2str(ldns_rr_rdf(rr, k));
        if (k)
            strcat(s, " ");
        strcat(s, f);
        free(f);
    }
    return s;
}

static void check_rr(const ldns_rr_list *l, size_t i, const char *owner, uint16_t type,
                     uint32_t ttl, const char *rdata, const char *what)
{
    if (!ok(ldns_rr_list_rr_count(l) > i, "%s: record %zu exists", what, i))
        return;
    char *o = owner_of(l, i), *r = rdata_of(l, i);
    const ldns_rr *rr = ldns_rr_list_rr(l, i);
    ok(strcmp(o, owner) == 0 && ldns_rr_get_type(rr) == type && ldns_rr_ttl(rr) == ttl &&
           (!rdata || strcmp(r, rdata) == 0),
       "%s: %s %u %s", what, owner, ttl, rdata ? rdata : "");
    if (strcmp(o, owner) != 0 || ldns_rr_ttl(rr) != ttl || (rdata && strcmp(r, rdata) != 0))
        printf("#   got %s %u %s\n", o, ldns_rr_ttl(rr), r);
    free(o);
    free(r);
}

static void test_basic(void)
{
    size_t n;
    ldns_pkt *r =
        exchange((struct q){.name = "mysql.test-2.svc.cluster.local.", .type = LDNS_RR_TYPE_A}, &n);
    ok(r != NULL, "an A query is answered");
    if (!r)
        return;
    is_int(ldns_pkt_id(r), 4242, "the query's ID");
    ok(ldns_pkt_qr(r) && ldns_pkt_aa(r) && ldns_pkt_rd(r) && !ldns_pkt_ra(r) && !ldns_pkt_tc(r),
       "QR, AA, RD copied, no RA, no TC");
    is_int(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR, "NOERROR");
    is_int(ldns_pkt_qdcount(r), 1, "one question");
    is_int(ldns_pkt_nscount(r), 0, "a positive answer has no AUTHORITY");
    check_rr(ldns_pkt_answer(r), 0, "mysql.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, 5,
             "192.168.1.10", "A");
    ok(!ldns_pkt_edns(r), "no OPT without one in the query");
    ldns_pkt_free(r);
}

static void test_case_echo(void)
{
    ldns_pkt *r = exchange(
        (struct q){.name = "MySQL.Test-2.SVC.cLuStEr.LoCaL.", .type = LDNS_RR_TYPE_A}, NULL);
    char *q = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(r), 0)));
    is_str(q, "MySQL.Test-2.SVC.cLuStEr.LoCaL.", "the question keeps its case (0x20)");
    free(q);
    check_rr(ldns_pkt_answer(r), 0, "MySQL.Test-2.SVC.cLuStEr.LoCaL.", LDNS_RR_TYPE_A, 5,
             "192.168.1.10", "the owner echoes the query's case");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "Nope.test-2.svc.CLUSTER.local.", .type = LDNS_RR_TYPE_A},
                 NULL);
    is_int(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN, "NXDOMAIN");
    ok(ldns_pkt_aa(r), "NXDOMAIN is authoritative");
    char soa[256];
    snprintf(soa, sizeof(soa),
             "ns.dns.CLUSTER.local. hostmaster.CLUSTER.local. %u 7200 1800 86400 5",
             zone_stats(zone)->serial);
    check_rr(ldns_pkt_authority(r), 0, "CLUSTER.local.", LDNS_RR_TYPE_SOA, 5, soa,
             "the SOA in AUTHORITY, in the query's case (CoreDNS V42)");
    ldns_pkt_free(r);
}

static void test_shapes(void)
{
    ldns_pkt *r = exchange(
        (struct q){.name = "_pg._tcp.pg.test-2.svc.cluster.local.", .type = LDNS_RR_TYPE_SRV},
        NULL);
    check_rr(ldns_pkt_answer(r), 0, "_pg._tcp.pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, 5,
             "0 100 5433 pg.test-2.svc.cluster.local.", "SRV to the service name");
    check_rr(ldns_pkt_additional(r), 0, "pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, 5,
             "192.168.1.30", "the target's A in ADDITIONAL");
    ldns_pkt_free(r);

    r = exchange(
        (struct q){.name = "_ldap._tcp.ldap.test-2.svc.cluster.local.", .type = LDNS_RR_TYPE_SRV},
        NULL);
    is_int(ldns_pkt_ancount(r), 2, "two SRV records, one per endpoint");
    ok(ldns_rr_list_rr_count(ldns_pkt_additional(r)) == 2, "both endpoints' addresses follow");
    char *t = rdata_of(ldns_pkt_answer(r), 0);
    ok(strstr(t, "0 50 389 ") == t, "weights share 100: 50 each (%s)", t);
    free(t);
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "alias.test-1.svc.cluster.local.", .type = LDNS_RR_TYPE_A},
                 NULL);
    check_rr(ldns_pkt_answer(r), 0, "alias.test-1.svc.cluster.local.", LDNS_RR_TYPE_CNAME, 5,
             "mysql.test-2.svc.cluster.local.", "an in-zone CNAME");
    check_rr(ldns_pkt_answer(r), 1, "mysql.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, 5,
             "192.168.1.10", "followed by the target's A");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "cluster.local.", .type = LDNS_RR_TYPE_NS}, NULL);
    check_rr(ldns_pkt_answer(r), 0, "cluster.local.", LDNS_RR_TYPE_NS, 5, "ns.dns.cluster.local.",
             "apex NS");
    check_rr(ldns_pkt_additional(r), 0, "ns.dns.cluster.local.", LDNS_RR_TYPE_A, 5, "127.0.0.1",
             "with glue");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "dns-version.cluster.local.", .type = LDNS_RR_TYPE_TXT}, NULL);
    check_rr(ldns_pkt_answer(r), 0, "dns-version.cluster.local.", LDNS_RR_TYPE_TXT, 28800,
             "\"1.1.0\"", "schema version");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "21.1.168.192.in-addr.arpa.", .type = LDNS_RR_TYPE_PTR}, NULL);
    check_rr(ldns_pkt_answer(r), 0, "21.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, 5,
             "192-168-1-21.redis.test-2.svc.cluster.local.", "PTR to the endpoint name");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = ".", .type = LDNS_RR_TYPE_NS}, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_REFUSED && !ldns_pkt_aa(r) &&
           ldns_pkt_qdcount(r) == 1 && ldns_pkt_ancount(r) + ldns_pkt_nscount(r) == 0,
       ". NS: REFUSED with the question, never silence");
    ldns_pkt_free(r);
}

static void test_edns_and_truncation(void)
{
    ldns_pkt *r = exchange((struct q){.name = "mysql.test-2.svc.cluster.local.",
                                      .type = LDNS_RR_TYPE_A,
                                      .edns_size = 4096,
                                      .do_bit = true,
                                      .tcp = false},
                           NULL);
    ok(ldns_pkt_edns(r) && ldns_pkt_edns_do(r) && ldns_pkt_edns_version(r) == 0 &&
           ldns_pkt_edns_udp_size(r) == 1232,
       "OPT echoed: version 0, DO copied, our size 1232");
    ldns_pkt_free(r);

    size_t n;
    r = exchange((struct q){.name = "big.test-2.svc.cluster.local.", .type = LDNS_RR_TYPE_A}, &n);
    /* SPEC §3: as many whole records as fit (a 34-byte question, 16 bytes a record),
     * a shuffled subset, so that clients without TCP still get addresses */
    ok(ldns_pkt_tc(r) && ldns_pkt_ancount(r) == (512 - 12 - 34) / 16 && ldns_pkt_nscount(r) == 0 &&
           ldns_pkt_arcount(r) == 0 && n <= 512 && n + 16 > 512,
       "60 addresses without EDNS: TC, 29 whole A records (%zu bytes)", n);
    bool unique = true, mapped = true;
    const ldns_rr_list *an = ldns_pkt_answer(r);
    for (size_t i = 0; r && i < ldns_rr_list_rr_count(an); i++) {
        const ldns_rdf *a = ldns_rr_rdf(ldns_rr_list_rr(an, i), 0);
        const uint8_t *b = ldns_rdf_data(a);
        mapped = mapped && b[0] == 10 && b[1] == 9 && b[2] == 0 && b[3] >= 1 && b[3] <= 60;
        for (size_t k = 0; k < i; k++)
            unique = unique && ldns_rdf_compare(a, ldns_rr_rdf(ldns_rr_list_rr(an, k), 0));
    }
    ok(mapped && unique, "each of them a different address of the service");
    ldns_pkt_free(r);

    /* a CNAME to it: the CNAME first, then what fits of the target's */
    r = exchange((struct q){.name = "to-big.test-1.svc.cluster.local.", .type = LDNS_RR_TYPE_A},
                 &n);
    ok(r && ldns_pkt_tc(r) && ldns_pkt_ancount(r) > 10 && n <= 512 &&
           ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(r), 0)) == LDNS_RR_TYPE_CNAME &&
           ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(r), 1)) == LDNS_RR_TYPE_A,
       "a CNAME to 60 addresses without EDNS: TC, the CNAME, then %u A records",
       r ? (unsigned)ldns_pkt_ancount(r) - 1 : 0);
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "big.test-2.svc.cluster.local.",
                            .type = LDNS_RR_TYPE_A,
                            .edns_size = 1232},
                 &n);
    ok(!ldns_pkt_tc(r) && ldns_pkt_ancount(r) == 60 && n <= 1232, "EDNS 1232: all 60 fit");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "huge.test-2.svc.cluster.local.",
                            .type = LDNS_RR_TYPE_A,
                            .edns_size = 65000},
                 &n);
    ok(ldns_pkt_tc(r) && ldns_pkt_edns(r) && n <= 1232 && n + 16 > 1232 &&
           ldns_pkt_ancount(r) == (1232 - 12 - 35 - 11) / 16,
       "a client size over 1232 is capped at 1232 (TC, OPT kept, %u A records)",
       r ? (unsigned)ldns_pkt_ancount(r) : 0);
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "big.test-2.svc.cluster.local.",
                            .type = LDNS_RR_TYPE_A,
                            .edns_size = 100},
                 &n);
    ok(ldns_pkt_tc(r) && n <= 512, "a client size under 512 counts as 512");
    ldns_pkt_free(r);

    r = exchange((struct q){.name = "huge.test-2.svc.cluster.local.",
                            .type = LDNS_RR_TYPE_A,
                            .edns_size = 0,
                            .do_bit = false,
                            .tcp = true},
                 &n);
    ok(!ldns_pkt_tc(r) && ldns_pkt_ancount(r) == 100, "over TCP: the full answer (%zu bytes)", n);
    ldns_pkt_free(r);

    /* shuffling: the first address varies between queries */
    char first[8][64];
    int distinct = 0;
    for (int i = 0; i < 40 && distinct < 2; i++) {
        r = exchange((struct q){.name = "redis4.test-2.svc.cluster.local.", .type = LDNS_RR_TYPE_A},
                     NULL);
        char *a = rdata_of(ldns_pkt_answer(r), 0);
        bool seen = false;
        for (int k = 0; k < distinct; k++)
            seen |= strcmp(first[k], a) == 0;
        if (!seen)
            snprintf(first[distinct++], 64, "%s", a);
        free(a);
        ldns_pkt_free(r);
    }
    ok(distinct >= 2, "address RRsets are shuffled per query");
}

static void test_bad_messages(void)
{
    /* a valid query to mutate */
    ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str("mysql.test-2.svc.cluster.local."),
                                     LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
    ldns_pkt_set_edns_udp_size(p, 1232);
    uint8_t *w;
    size_t len;
    ldns_pkt2wire(&w, p, &len);
    ldns_pkt_free(p);
    uint8_t m[512];
    memcpy(m, w, len);
    free(w);
    size_t n;
    ldns_pkt *r;

    ok(exchange_raw(m, 11, false, &n) == NULL && n == 0, "fewer than 12 bytes: dropped");
    m[2] |= 0x80;
    ok(exchange_raw(m, len, false, &n) == NULL && n == 0, "a response (QR=1): never answered");
    m[2] &= 0x7f;

    m[2] = (uint8_t)(m[2] | (5 << 3)); /* UPDATE */
    r = exchange_raw(m, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_NOTIMPL, "opcode UPDATE: NOTIMP");
    ldns_pkt_free(r);
    m[2] = (uint8_t)(m[2] & ~(0xf << 3));

    m[5] = 2;
    r = exchange_raw(m, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR, "QDCOUNT 2: FORMERR");
    ldns_pkt_free(r);
    m[5] = 0;
    r = exchange_raw(m, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR, "QDCOUNT 0: FORMERR");
    ldns_pkt_free(r);
    m[5] = 1;

    r = exchange_raw(m, 20, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR, "a cut question: FORMERR");
    ldns_pkt_free(r);

    uint8_t c[sizeof(m)];
    memcpy(c, m, len);
    c[12] = 0xc0;
    c[13] = 12; /* the name points at itself */
    r = exchange_raw(c, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR, "a compression loop: FORMERR");
    ldns_pkt_free(r);

    memcpy(c, m, len);
    c[len - 11 + 6] = 1; /* OPT version 1 */
    r = exchange_raw(c, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == 16 % 16 && ldns_pkt_edns(r) &&
           ldns_pkt_edns_extended_rcode(r) == 1 && ldns_pkt_edns_version(r) == 0 &&
           ldns_pkt_ancount(r) == 0,
       "EDNS version 1: BADVERS (extended rcode 16) with a version 0 OPT");
    ldns_pkt_free(r);

    memcpy(c, m, len);
    memcpy(c + len, c + len - 11, 11); /* a second OPT */
    c[11] = 2;
    r = exchange_raw(c, len + 11, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR, "two OPT records: FORMERR");
    ldns_pkt_free(r);

    memcpy(c, m, len);
    c[len - 11 - 2] = 0;
    c[len - 11 - 1] = 3; /* class CH */
    r = exchange_raw(c, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_REFUSED, "class CH: REFUSED");
    ldns_pkt_free(r);

    memcpy(c, m, len);
    c[7] = 1; /* ANCOUNT 1 in a query */
    r = exchange_raw(c, len, false, NULL);
    ok(r && ldns_pkt_get_rcode(r) == LDNS_RCODE_FORMERR, "records in ANSWER of a query: FORMERR");
    ldns_pkt_free(r);

    /* Random bytes and mutations never crash and never make an oversized reply. */
    uint64_t x = 88172645463325252ULL;
    size_t replies = 0, too_big = 0;
    for (int i = 0; i < 200000; i++) {
        memcpy(c, m, len);
        size_t l = len;
        for (int k = 0; k < 4; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c[x % len] = (uint8_t)(x >> 24);
        }
        if (i % 3 == 0)
            l = 12 + x % (len - 11);
        c[2] &= 0x7f;
        struct answer_info info;
        answer_query(&ctx, zone, c, l, false, NULL, reply, ANSWER_UDP_MAX, &info);
        size_t out = info.len;
        replies += out > 0;
        too_big += out > ANSWER_UDP_MAX;
    }
    ok(replies > 0 && too_big == 0, "200000 mutated queries: %zu replies, none oversized", replies);
}

int main(void)
{
    char text[8192] = "[namespace test-1]\n"
                      "alias = mysql.test-2.svc.cluster.local\n"
                      "to-big = big.test-2.svc.cluster.local\n"
                      "[namespace test-2]\n"
                      "mysql  = 192.168.1.10\n"
                      "redis  = 192.168.1.20, 192.168.1.21\n"
                      "redis4 = 10.4.0.1 10.4.0.2 10.4.0.3 10.4.0.4\n"
                      "pg     = 192.168.1.30:5433\n"
                      "ldap   = 10.0.0.5:389 [2001:db8::5]:389 srv=_ldap._tcp\n";
    strcat(text, "big = 10.9.0.1");
    for (int i = 2; i <= 60; i++) {
        char a[24];
        snprintf(a, sizeof(a), "%s10.9.0.%d", i % 10 == 1 ? "\n  " : " ", i);
        strcat(text, a);
    }
    strcat(text, "\nhuge = 10.8.0.1");
    for (int i = 2; i <= 100; i++) {
        char a[24];
        snprintf(a, sizeof(a), "%s10.8.0.%d", i % 10 == 1 ? "\n  " : " ", i);
        strcat(text, a);
    }
    strcat(text, "\n");

    zone = zone_of_text("a.ini", text, NULL, 1700000000);
    if (!ok(zone != NULL, "the test zone compiles"))
        return done_testing();
    answer_init(&ctx);

    test_basic();
    test_case_echo();
    test_shapes();
    test_edns_and_truncation();
    test_bad_messages();
    zone_free(zone);
    return done_testing();
}
