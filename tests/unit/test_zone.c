/* test_zone.c -- compiling a config: names, plans, compile-time errors, serials, changes. */
#include "svcmapd/zone.h"

#include <ldns/ldns.h>
#include <stdlib.h>
#include <unistd.h>

#include "svcmapd/load.h"
#include "tap.h"

static struct load l; /* of the last compile: the tests read its diagnostics */

/* Compiles `text` against `old` at time `now`, as svcmapd does (load.c);
 * the zone is the caller's. */
static struct zone *compile_at(const char *text, const struct zone *old, time_t now)
{
    load_finish(&l);
    load_init(&l, "z.ini");
    load_parse(&l, text, strlen(text));
    if (l.diag.errors)
        printf("# config errors: %s", l.diag.text);
    load_compile(&l, old, NULL, now);
    struct zone *z = l.zone;
    l.zone = NULL;
    return z;
}

static struct zone *compile(const char *text)
{
    return compile_at(text, NULL, 1700000000);
}

static size_t last_nptr; /* PTRs and endpoint records the last find() found:
                          * they are answers too */

/* The plan for `name` (presentation form) and `type`. */
static const struct zone_plan *find(const struct zone *z, const char *name, uint16_t type)
{
    ldns_rdf *rdf = ldns_dname_new_frm_str(name);
    ldns_dname2canonical(rdf);
    struct zone_found found;
    zone_find(z, ldns_rdf_data(rdf), ldns_rdf_size(rdf), type, &found);
    ldns_rdf_deep_free(rdf);
    last_nptr = found.nptr + (found.rr ? 1 : 0);
    return found.plan;
}

static int answers(const struct zone_plan *p)
{
    int n = (int)last_nptr;
    for (int i = 0; i < p->nsets[ZONE_ANSWER]; i++)
        n += p->sets[i]->count;
    return n;
}

/* What a query for `name` and `type` must get: its rcode and how many
 * answer records. */
struct find_case {
    const char *name;
    uint16_t type;
    int rcode;
    int answers;
};

static void check_cases(const struct zone *z, const struct find_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct zone_plan *p = find(z, cases[i].name, cases[i].type);
        char *t = ldns_rr_type2str(cases[i].type);
        ok(p->rcode == cases[i].rcode && answers(p) == cases[i].answers,
           "%s %s: rcode %d with %d answers", cases[i].name, t, cases[i].rcode, cases[i].answers);
        if (p->rcode != cases[i].rcode || answers(p) != cases[i].answers)
            printf("#   got rcode %d with %d answers\n", p->rcode, answers(p));
        free(t);
    }
}

static const char *const example = "[server]\n"
                                   "zone = cluster.local\n"
                                   "listen = 127.0.0.1:5353, [::1]:5353\n"
                                   "[namespace test-1]\n"
                                   "mysql = mysql.test-1.example.com\n"
                                   "alias = mysql.test-2.svc.cluster.local\n"
                                   "[namespace test-2]\n"
                                   "mysql = 192.168.1.10\n"
                                   "redis = 192.168.1.20, 192.168.1.21\n"
                                   "pg    = 192.168.1.30:5433\n"
                                   "ldap  = 10.0.0.5:389 [2001:db8::5]:389 srv=_ldap._tcp\n"
                                   "[namespace empty]\n";

static void test_names(void)
{
    struct zone *z = compile(example);
    ok(z != NULL, "the example compiles");
    if (!z)
        return;
    const struct zone_stats *st = zone_stats(z);
    is_int(st->services, 6, "six services");
    is_int(st->serial, 1700000000, "first serial is the load time");

    const struct find_case cases[] = {
        {"mysql.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
        {"mysql.test-2.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0},
        {"redis.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 2},
        {"redis.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR, 0},
        {"192-168-1-20.redis.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
        {"192-168-1-10.mysql.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR, 1},
        {"_pg._tcp.pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR, 1},
        {"_tcp.pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR, 0},
        {"_tcp.pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_AXFR, LDNS_RCODE_REFUSED, 0},
        {"_udp.pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NXDOMAIN, 0},
        {"_tcp.ldap.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"_tcp.mysql.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NXDOMAIN, 0},
        {"_tcp.mysql.test-1.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NXDOMAIN, 0},
        {"dns.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"_ldap._tcp.ldap.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR, 2},
        {"_ldap._udp.ldap.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NXDOMAIN, 0},
        {"2001-db8--5.ldap.test-2.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"mysql.test-1.svc.cluster.local.", LDNS_RR_TYPE_CNAME, LDNS_RCODE_NOERROR, 1},
        {"mysql.test-1.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
        {"mysql.test-1.svc.cluster.local.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR, 0},
        {"mysql.test-1.svc.cluster.local.", LDNS_RR_TYPE_ANY, LDNS_RCODE_NOERROR, 1},
        {"x.mysql.test-1.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"alias.test-1.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 2},
        {"alias.test-1.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"nope.test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"nope.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"test-2.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"empty.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"pod.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"foo.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"cluster.local.", LDNS_RR_TYPE_SOA, LDNS_RCODE_NOERROR, 1},
        {"cluster.local.", LDNS_RR_TYPE_NS, LDNS_RCODE_NOERROR, 1},
        {"cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"cluster.local.", LDNS_RR_TYPE_AXFR, LDNS_RCODE_REFUSED, 0},
        {"cluster.local.", LDNS_RR_TYPE_IXFR, LDNS_RCODE_REFUSED, 0},
        {"ns.dns.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
        {"ns.dns.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"dns-version.cluster.local.", LDNS_RR_TYPE_TXT, LDNS_RCODE_NOERROR, 1},
        {"10.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 1},
        {"10.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"11.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_REFUSED, 0},
        {"5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
         LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 1},
        {".", LDNS_RR_TYPE_NS, LDNS_RCODE_REFUSED, 0},
        {"example.com.", LDNS_RR_TYPE_A, LDNS_RCODE_REFUSED, 0},
        {"local.", LDNS_RR_TYPE_A, LDNS_RCODE_REFUSED, 0},
        {"xcluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_REFUSED, 0},
    };
    check_cases(z, cases, sizeof(cases) / sizeof(cases[0]));

    const struct zone_plan *p = find(z, "nope.test-2.svc.cluster.local.", LDNS_RR_TYPE_A);
    ok(p->aa && p->nsets[ZONE_AUTHORITY] == 1, "NXDOMAIN is authoritative with the SOA");
    p = find(z, "example.com.", LDNS_RR_TYPE_A);
    ok(!p->aa && p->nsets[ZONE_AUTHORITY] == 0, "REFUSED carries no records and no AA");
    p = find(z, "pg.test-2.svc.cluster.local.", LDNS_RR_TYPE_SRV);
    is_int(p->nsets[ZONE_ADDITIONAL], 1, "SRV has the target's address in ADDITIONAL");
    p = find(z, "alias.test-1.svc.cluster.local.", LDNS_RR_TYPE_AAAA);
    is_int(p->nsets[ZONE_AUTHORITY], 1, "a chain ending in NODATA carries the SOA");
    zone_free(z);
}

/* Endpoint names are answered from their service's records, not stored as
 * names: only the exact dashed form of a mapped address exists. */
static void test_endpoints(void)
{
    struct zone *z = compile("[server]\nzone = cluster.local\n"
                             "[namespace a]\n"
                             "redis = 192.168.1.20, 192.168.1.21\n"
                             "dual = 10.0.0.5, 2001:db8::5\n"
                             "short = 1::2:3, 2001:db8::\n"
                             "one = 10.0.0.9\n"
                             "to-ep = 1--2-3.short.a.svc.cluster.local\n");
    ok(z != NULL, "the endpoint example compiles");
    if (!z)
        return;
    const struct find_case cases[] = {
        {"192-168-1-21.redis.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
        {"192-168-1-21.redis.a.svc.cluster.local.", LDNS_RR_TYPE_ANY, LDNS_RCODE_NOERROR, 1},
        {"192-168-1-21.redis.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 0},
        {"192-168-1-21.redis.a.svc.cluster.local.", LDNS_RR_TYPE_TXT, LDNS_RCODE_NOERROR, 0},
        {"192-168-1-21.redis.a.svc.cluster.local.", LDNS_RR_TYPE_AXFR, LDNS_RCODE_REFUSED, 0},
        {"192-168-1-22.redis.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"192-168-001-20.redis.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"192.168.1.20.redis.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"192-168-1-20.dual.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"10-0-0-5.dual.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
        {"2001-db8--5.dual.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"2001-DB8--5.dual.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"2001-0db8--5.dual.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NXDOMAIN, 0},
        {"2001-db8-0-0-0-0-0-5.dual.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NXDOMAIN,
         0},
        {"2001-db8--5.dual.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"1--2-3.short.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"2001-db8--0.short.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 1},
        {"2001-db8--.short.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NXDOMAIN, 0},
        {"10-0-0-9.one.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"x.192-168-1-21.redis.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"192-168-1-21.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, 0},
        {"to-ep.a.svc.cluster.local.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, 2},
        {"to-ep.a.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 1},
    };
    check_cases(z, cases, sizeof(cases) / sizeof(cases[0]));
    /* apex, dns, ns.dns, dns-version, svc, pod; a.svc; five services; six endpoints */
    is_int(zone_stats(z)->names, 6 + 1 + 5 + 6, "endpoint names count as names, once");
    zone_free(z);
}

/* [server] reverse (SPEC §2.5): inside a reverse zone every name is
 * answered; outside, only the names of mapped addresses. */
static void test_reverse_zones(void)
{
    struct zone *z = compile("[server]\nzone = cluster.local\n"
                             "reverse = 192.168.0.0/16, 2001:db8:a0::/44, 10.9.9.9/32\n"
                             "[namespace a]\n"
                             "x = 192.168.1.10\n"
                             "y = 192.168.1.20, 192.168.1.21\n"
                             "v6 = 2001:db8:a5::1\n"
                             "out = 10.0.0.1\n"
                             "nine = 10.9.9.9\n");
    ok(z != NULL, "a zone with reverse zones compiles");
    if (!z)
        return;
    const struct find_case cases[] = {
        {"10.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 1},
        {"20.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_ANY, LDNS_RCODE_NOERROR, 1},
        {"10.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"99.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 0},
        {"2.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"168.192.in-addr.arpa.", LDNS_RR_TYPE_SOA, LDNS_RCODE_NOERROR, 1},
        {"168.192.in-addr.arpa.", LDNS_RR_TYPE_NS, LDNS_RCODE_NOERROR, 1},
        {"168.192.in-addr.arpa.", LDNS_RR_TYPE_ANY, LDNS_RCODE_NOERROR, 1},
        {"168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 0},
        {"168.192.in-addr.arpa.", LDNS_RR_TYPE_AXFR, LDNS_RCODE_REFUSED, 0},
        {"10.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_IXFR, LDNS_RCODE_REFUSED, 0},
        {"010.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"256.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"x.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"1.10.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"192.in-addr.arpa.", LDNS_RR_TYPE_SOA, LDNS_RCODE_REFUSED, 0},
        {"in-addr.arpa.", LDNS_RR_TYPE_SOA, LDNS_RCODE_REFUSED, 0},
        {"1.0.0.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 1},
        {"1.0.0.10.in-addr.arpa.", LDNS_RR_TYPE_TXT, LDNS_RCODE_NOERROR, 0},
        {"2.0.0.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_REFUSED, 0},
        {"0.0.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_REFUSED, 0},
        {"9.9.9.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 1},
        {"9.9.9.10.in-addr.arpa.", LDNS_RR_TYPE_SOA, LDNS_RCODE_NOERROR, 1},
        {"9.9.9.10.in-addr.arpa.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, 0},
        {"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.5.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
         LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 1},
        {"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.5.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
         LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"5.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NOERROR, 0},
        {"6.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_SOA, LDNS_RCODE_NOERROR, 1},
        {"A.0.0.8.B.D.0.1.0.0.2.IP6.ARPA.", LDNS_RR_TYPE_NS, LDNS_RCODE_NOERROR, 1},
        {"g.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"55.a.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_PTR, LDNS_RCODE_NXDOMAIN, 0},
        {"b.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", LDNS_RR_TYPE_SOA, LDNS_RCODE_REFUSED, 0},
    };
    check_cases(z, cases, sizeof(cases) / sizeof(cases[0]));

    const struct zone_plan *p = find(z, "99.1.168.192.in-addr.arpa.", LDNS_RR_TYPE_PTR);
    const struct zone_plan *soa = find(z, "168.192.in-addr.arpa.", LDNS_RR_TYPE_SOA);
    ok(p->aa && p->nsets[ZONE_AUTHORITY] == 1 && p->sets[0] == soa->sets[0],
       "NXDOMAIN in a reverse zone carries that zone's SOA");
    p = find(z, "1.168.192.in-addr.arpa.", LDNS_RR_TYPE_A);
    ok(p->nsets[ZONE_AUTHORITY] == 1 && p->sets[0] == soa->sets[0],
       "NODATA above mapped addresses too");
    p = find(z, "168.192.in-addr.arpa.", LDNS_RR_TYPE_NS);
    is_int(p->nsets[ZONE_ADDITIONAL], 1, "NS at a reverse apex: ns.dns.<zone>'s address too");
    zone_free(z);
}

static void test_errors(void)
{
    struct zone *z = compile("[namespace a]\nx = x.a.svc.cluster.local\n");
    ok(!z && strstr(l.diag.text, "z.ini:2: error: service 'x' points to itself"), "self-reference");
    zone_free(z);

    z = compile("[namespace a]\nx = nothing.a.svc.cluster.local\ny = a.svc.Cluster.Local.\n");
    ok(!z &&
           strstr(l.diag.text,
                  "z.ini:2: error: hostname 'nothing.a.svc.cluster.local' is inside") &&
           strstr(l.diag.text, "z.ini:3: error: hostname 'a.svc.Cluster.Local' is inside"),
       "dangling in-zone targets, case-insensitively");
    zone_free(z);

    z = compile("[namespace a]\nx = y.a.svc.cluster.local\ny = x.a.svc.cluster.local\n");
    ok(z && l.diag.warnings == 2 && strstr(l.diag.text, "CNAME loop"),
       "a CNAME loop compiles with warnings");
    if (z) {
        const struct zone_plan *p = find(z, "x.a.svc.cluster.local.", LDNS_RR_TYPE_A);
        is_int(answers(p), 2, "a loop answers each CNAME once");
    }
    zone_free(z);

    z = compile("[namespace a]\nx = target.example.com\n");
    ok(z != NULL, "an out-of-zone target needs nothing in the mapping");
    if (z)
        is_int(answers(find(z, "x.a.svc.cluster.local.", LDNS_RR_TYPE_A)), 1,
               "an out-of-zone target gives the CNAME alone");
    zone_free(z);

    char text[1024];
    snprintf(text, sizeof(text), "[server]\nzone = %s\n[namespace %s]\n%s = 10.0.0.1\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
             "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss");
    z = compile(text);
    ok(!z && strstr(l.diag.text, "z.ini:4: error: name") && strstr(l.diag.text, "longer than 255"),
       "a service name over 255 bytes");
    zone_free(z);
}

/* Hostname targets outside the zone with no upstream servers: one warning
 * that says why there are none. */
static void test_unresolved(void)
{
    struct zone *z = compile("[upstream]\nservers = /nonexistent/resolv.conf\n"
                             "[namespace a]\nx = 10.0.0.1\ny = db.example.com\n"
                             "z = cache.example.com\n");
    ok(z && l.diag.warnings == 1 &&
           strstr(l.diag.text,
                  "z.ini:5: warning: 2 hostname targets outside the zone will get the "
                  "CNAME alone: no upstream servers (cannot read /nonexistent/resolv.conf: "
                  "No such file or directory); set [upstream] servers\n"),
       "a resolv.conf that cannot be read: said, at the first such target");
    zone_free(z);

    char path[] = "/tmp/test_zone_resolv_XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, "search example\n", 15) == 15, "a resolv.conf without nameservers");
    close(fd);
    char text[256];
    snprintf(text, sizeof(text), "[upstream]\nservers = %s\n[namespace a]\ny = db.example.com\n",
             path);
    z = compile(text);
    char want[256];
    snprintf(want, sizeof(want),
             "z.ini:4: warning: 1 hostname target outside the zone will get the CNAME alone: no "
             "upstream servers (no nameserver in %s); set [upstream] servers\n",
             path);
    ok(z && l.diag.warnings == 1 && strstr(l.diag.text, want), "no nameserver in it: said");
    zone_free(z);
    unlink(path);

    z = compile("[upstream]\nservers = none\n[namespace a]\ny = db.example.com\n");
    ok(z && l.diag.warnings == 0, "servers = none: asked for, no warning");
    zone_free(z);
    z = compile("[upstream]\nservers = /nonexistent/resolv.conf\n[namespace a]\n"
                "y = db.example.com resolve=no\n");
    ok(z && l.diag.warnings == 0, "resolve=no: no warning");
    zone_free(z);
}

/* What a reload changes besides the mapping travels in the zone. */
static void test_settings(void)
{
    struct zone *z = compile("[server]\nudp-max-size = 2048\ntcp-idle-timeout = 30\n"
                             "tcp-message-timeout = 3\ntcp-pipeline = 7\n"
                             "tcp-max-connections = 99\n[upstream]\nservers = 127.0.0.1:5300\n"
                             "timeout = 4\n[namespace a]\nx = 10.0.0.1\n");
    const struct zone_settings *set = z ? zone_settings(z) : NULL;
    ok(set && set->udp_max == 2048, "udp-max-size");
    ok(set && set->tcp_idle_timeout == 30 && set->tcp_message_timeout == 3 &&
           set->tcp_pipeline == 7 && set->tcp_max_connections == 99,
       "the TCP limits");
    ok(set && set->upstream && set->upstream->nservers == 1 && set->upstream->timeout_ms == 4000,
       "the upstream servers and their timeout");
    zone_free(z);
    z = compile("[upstream]\nservers = none\n[namespace a]\nx = 10.0.0.1\n");
    set = z ? zone_settings(z) : NULL;
    ok(set && !set->upstream, "servers = none: no upstream settings");
    ok(set && set->udp_max == 1232 && set->tcp_idle_timeout == 10 &&
           set->tcp_message_timeout == 2 && set->tcp_pipeline == 100 &&
           set->tcp_max_connections == 1024,
       "the defaults");
    zone_free(z);
}

/* Whether the answer of `p` holds a record ending in `addr` (`len` bytes):
 * an A or AAAA record of that address. */
static bool answers_with(const struct zone_plan *p, const uint8_t *addr, size_t len)
{
    for (int i = 0; i < p->nsets[ZONE_ANSWER]; i++) {
        const struct zone_rrset *r = p->sets[i];
        size_t each = r->rrlen ? r->rrlen : r->len;
        for (size_t at = each; at <= r->len; at += each)
            if (memcmp(zone_rrset_data(r) + at - len, addr, len) == 0)
                return true;
    }
    return false;
}

/* Compiles `text` for a machine with the given addresses. */
static struct zone *compile_for(const char *text, const struct zone_host *host)
{
    load_finish(&l);
    load_init(&l, "z.ini");
    load_text(&l, text, strlen(text), NULL, host, 1700000000);
    struct zone *z = l.zone;
    l.zone = NULL;
    return z;
}

/* ns.dns.<zone> for a wildcard listen address: the machine's addresses,
 * as the caller found them (the compiler lists nothing itself). */
static void test_host(void)
{
    static const uint8_t a4[][4] = {{192, 0, 2, 1}, {198, 51, 100, 7}};
    static const uint8_t a6[][16] = {{0xfe, 0x80, [15] = 1}, {0x20, 0x01, 0x0d, 0xb8, [15] = 2}};
    static const uint8_t lo6[16] = {[15] = 1};
    const struct zone_host host = {a4, 2, a6, 2};
    const char *ns = "ns.dns.cluster.local.";

    struct zone *z = compile_for("[namespace a]\nx = 10.0.0.1\n", &host);
    ok(z && !zone_needs_host(l.cfg), "listening on 127.0.0.1: the machine's addresses not needed");
    zone_free(z);
    z = compile_for("[server]\nlisten = 0.0.0.0:53, [::1]:53\n[namespace a]\n"
                    "x = 10.0.0.1\n",
                    &host);
    ok(z && zone_needs_host(l.cfg), "0.0.0.0: needed");
    const struct zone_plan *p = z ? find(z, ns, LDNS_RR_TYPE_A) : NULL;
    ok(p && answers(p) == 2 && answers_with(p, a4[0], 4) && answers_with(p, a4[1], 4),
       "0.0.0.0: ns.dns has the machine's IPv4 addresses");
    p = z ? find(z, ns, LDNS_RR_TYPE_AAAA) : NULL;
    ok(p && answers(p) == 1 && answers_with(p, lo6, 16),
       "[::1] alone: its own address, not the machine's IPv6 ones");
    zone_free(z);

    z = compile_for("[server]\nlisten = [::]:53\n[namespace a]\nx = 10.0.0.1\n", &host);
    p = z ? find(z, ns, LDNS_RR_TYPE_AAAA) : NULL;
    ok(p && answers(p) == 1 && answers_with(p, a6[1], 16),
       "[::]: the machine's IPv6 addresses, link-local left out");
    p = z ? find(z, ns, LDNS_RR_TYPE_A) : NULL;
    ok(p && answers(p) == 0, "and no IPv4 address");
    zone_free(z);

    const struct zone_host none = {0};
    z = compile_for("[server]\nlisten = 0.0.0.0:53\n[namespace a]\nx = 10.0.0.1\n", &none);
    p = z ? find(z, ns, LDNS_RR_TYPE_A) : NULL;
    ok(p && answers(p) == 0 && l.diag.warnings == 0,
       "a machine without addresses: none, and no warning from the compiler");
    zone_free(z);
}

static void test_serial_and_changes(void)
{
    const char *v1 = "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2\nz = db.example.com\n";
    const char *v2 = "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.3\nw = 10.0.0.4\n";
    struct zone *z1 = compile_at(v1, NULL, 1000);
    struct zone *same = compile_at(v1, z1, 2000);
    ok(z1 && same, "both compile");
    if (!z1 || !same)
        return;
    is_int(zone_stats(same)->serial, 1000, "no change: the serial stays");
    is_int(zone_stats(same)->changed + zone_stats(same)->added + zone_stats(same)->removed, 0,
           "no change: nothing counted");

    struct zone *z2 = compile_at(v2, same, 3000);
    ok(z2 != NULL, "v2 compiles");
    if (z2) {
        const struct zone_stats *st = zone_stats(z2);
        is_int(st->serial, 3000, "a change takes the load time");
        is_int(st->added, 1, "w added");
        is_int(st->removed, 1, "z removed");
        is_int(st->changed, 1, "y changed");
    }
    struct zone *z3 = compile_at(v1, z2, 2500);
    ok(z3 && zone_stats(z3)->serial == 3001, "a clock that went back: old serial + 1");

    struct zone *z4 = compile_at("[server]\nttl = 30\n[namespace a]\nx = 10.0.0.1\ny = "
                                 "10.0.0.2\nz = db.example.com\n",
                                 z1, 5000);
    ok(z4 && zone_stats(z4)->changed == 3 && zone_stats(z4)->serial == 5000,
       "a new server ttl changes every service");
    /* in a new order, with namespaces swapped, one inserted in front, one
     * dropped in the middle, one changed at the end */
    struct zone *o1 = compile_at("[namespace a]\np = 10.0.0.1\nq = 10.0.0.2\nr = 10.0.0.3\n"
                                 "[namespace b]\ns = 10.0.0.4\nt = 10.0.0.5\n",
                                 NULL, 6000);
    struct zone *o2 = compile_at("[namespace b]\nn = 10.0.0.9\ns = 10.0.0.4\nt = 10.0.0.6\n"
                                 "[namespace a]\nr = 10.0.0.3\np = 10.0.0.1\n",
                                 o1, 7000);
    ok(o1 && o2, "reordered mappings compile");
    if (o2)
        ok(zone_stats(o2)->added == 1 && zone_stats(o2)->removed == 1 &&
               zone_stats(o2)->changed == 1,
           "reordered: n added, q removed, t changed (got %zu, %zu, %zu)", zone_stats(o2)->added,
           zone_stats(o2)->removed, zone_stats(o2)->changed);
    zone_free(z1);
    zone_free(same);
    zone_free(z2);
    zone_free(z3);
    zone_free(z4);
    zone_free(o1);
    zone_free(o2);
}

/* Whether the first set of the plan of `name` and `type` holds `serial`
 * in network order: where the SOA record keeps it. */
static bool holds_serial(const struct zone *z, const char *name, uint16_t type, int section,
                         uint32_t serial)
{
    const struct zone_plan *p = find(z, name, type);
    int first = section == ZONE_ANSWER ? 0 : p ? p->nsets[ZONE_ANSWER] : 0;
    if (!p || p->nsets[section] == 0)
        return false;
    const struct zone_rrset *r = p->sets[first];
    uint8_t want[4] = {serial >> 24, serial >> 16 & 0xff, serial >> 8 & 0xff, serial & 0xff};
    for (size_t i = 0; i + 4 <= r->len; i++)
        if (memcmp(zone_rrset_data(r) + i, want, 4) == 0)
            return true;
    return false;
}

/* A restart compiles without an old zone; the state-dir keeps the serial
 * and the digest of the zone served before it (SPEC §2.2, §7). */
static void test_serial_across_restarts(void)
{
    const char *v1 = "[server]\nreverse = 10.0.0.0/8\n[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2\n";
    const char *v1b = "; the same, written otherwise\n[server]\nreverse = 10.0.0.0/8\n"
                      "[namespace a]\ny = 10.0.0.2 ; y first\nx = 10.0.0.1\n";
    const char *v2 = "[server]\nreverse = 10.0.0.0/8\n[namespace a]\nx = 10.0.0.1\ny = 10.0.0.3\n";
    const char *renamed = "[server]\nreverse = 10.0.0.0/8\n[namespace a]\nx = "
                          "10.0.0.1\nz = 10.0.0.2\n";
    struct zone *z1 = compile_at(v1, NULL, 1000);
    struct zone *b = compile_at(v1b, NULL, 5000);
    struct zone *c = compile_at(v2, NULL, 5000);
    struct zone *r = compile_at(renamed, NULL, 5000);
    struct zone *t = compile_at("[server]\nttl = 6\nreverse = 10.0.0.0/8\n[namespace a]\nx = "
                                "10.0.0.1\ny = 10.0.0.2\n",
                                NULL, 5000);
    ok(z1 && b && c && r && t, "all compile");
    if (!z1 || !b || !c || !r || !t)
        return;
    uint64_t d1 = zone_stats(z1)->digest;
    ok(zone_stats(b)->digest == d1, "order and comments leave the digest alone");
    ok(zone_stats(c)->digest != d1, "a changed address changes it");
    ok(zone_stats(r)->digest != d1, "a renamed service changes it");
    ok(zone_stats(t)->digest != d1, "a changed setting (ttl) changes it");

    zone_continue_serial(b, 1000, d1);
    is_int(zone_stats(b)->serial, 1000, "the same answers keep the saved serial");
    ok(holds_serial(b, "cluster.local.", LDNS_RR_TYPE_SOA, ZONE_ANSWER, 1000) &&
           holds_serial(b, "nope.a.svc.cluster.local.", LDNS_RR_TYPE_A, ZONE_AUTHORITY, 1000) &&
           holds_serial(b, "10.in-addr.arpa.", LDNS_RR_TYPE_SOA, ZONE_ANSWER, 1000) &&
           holds_serial(b, "9.0.0.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, ZONE_AUTHORITY, 1000),
       "every SOA says so: the zone's, the reverse zone's, in answers and negative answers");
    zone_continue_serial(c, 1000, d1);
    is_int(zone_stats(c)->serial, 5000, "changed answers: the load time");
    ok(holds_serial(c, "cluster.local.", LDNS_RR_TYPE_SOA, ZONE_ANSWER, 5000),
       "and the SOA says so");
    zone_continue_serial(r, 7000, d1);
    is_int(zone_stats(r)->serial, 7001, "a saved serial ahead of the clock: it + 1");
    zone_continue_serial(t, 0xffffffffu, d1);
    is_int(zone_stats(t)->serial, 5000, "past 2^32 - 1 by RFC 1982: the load time is ahead");
    zone_free(z1);
    zone_free(b);
    zone_free(c);
    zone_free(r);
    zone_free(t);
}

static void test_scale(void)
{
    /* 20 000 services through the whole compiler: every one is found. */
    size_t n = 20000;
    size_t cap = n * 40 + 64;
    char *text = malloc(cap);
    /* addresses in scrambled order (an odd multiplier permutes 0..65535),
     * every tenth service with an IPv6 one too, the first 100 addresses
     * mapped twice: the reverse tables must sort and group them */
    size_t len = (size_t)snprintf(text, cap, "[namespace big]\n");
    for (size_t i = 0; i < n; i++) {
        size_t p = (i * 40503) & 0xffff;
        len += (size_t)snprintf(text + len, cap - len, "s%zu = 10.0.%zu.%zu", i, p >> 8, p & 255);
        if (i % 10 == 0)
            len += (size_t)snprintf(text + len, cap - len, ", 2001:db8::%zx", p);
        text[len++] = '\n';
    }
    for (size_t i = 0; i < 100; i++) {
        size_t p = (i * 40503) & 0xffff;
        len += (size_t)snprintf(text + len, cap - len, "d%zu = 10.0.%zu.%zu\n", i, p >> 8, p & 255);
    }
    struct zone *z = compile(text);
    free(text);
    ok(z && zone_stats(z)->services == n + 100, "20100 services compile");
    size_t ptrs = 0, want = 0;
    for (size_t i = 0; z && i < n; i += 3) {
        size_t p = (i * 40503) & 0xffff;
        char name[128];
        snprintf(name, sizeof(name), "%zu.%zu.0.10.in-addr.arpa.", p & 255, p >> 8);
        ptrs += (size_t)answers(find(z, name, LDNS_RR_TYPE_PTR));
        want += i < 100 ? 2 : 1;
        if (i % 10 == 0) {
            size_t k = 0;
            for (int nib = 0; nib < 32; nib++) {
                unsigned v = nib < 4 ? (unsigned)(p >> (4 * nib)) & 15 : 0;
                /* 2001:0db8 from the right */
                static const unsigned top[] = {8, 0xb, 0xd, 0, 1, 0, 0, 2};
                if (nib >= 24)
                    v = top[nib - 24];
                k += (size_t)snprintf(name + k, sizeof(name) - k, "%x.", v);
            }
            snprintf(name + k, sizeof(name) - k, "ip6.arpa.");
            ptrs += (size_t)answers(find(z, name, LDNS_RR_TYPE_PTR));
            want++;
        }
    }
    is_int(ptrs, want, "every sampled address has its PTRs, shared addresses two");
    size_t found = 0;
    for (size_t i = 0; z && i < n; i += 7) {
        char name[64];
        snprintf(name, sizeof(name), "s%zu.big.svc.cluster.local.", i);
        found += answers(find(z, name, LDNS_RR_TYPE_A)) == 1;
    }
    is_int(found, (n + 6) / 7, "each sampled service answers its A record");
    zone_free(z);
}

int main(void)
{
    test_names();
    test_endpoints();
    test_reverse_zones();
    test_errors();
    test_unresolved();
    test_settings();
    test_host();
    test_serial_and_changes();
    test_serial_across_restarts();
    test_scale();
    load_finish(&l);
    return done_testing();
}
