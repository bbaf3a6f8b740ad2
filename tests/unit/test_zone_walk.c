/* test_zone_walk.c -- the zone's records one by one: every one once, whole, as answers give them.
 */
#include "svcmapd/zone_walk.h"

#include <ldns/ldns.h>
#include <stdlib.h>

#include "svcmapd/load.h"
#include "svcmapd/zone.h"
#include "tap.h"
#include "unit_zone.h"

static struct zone *compile(const char *text)
{
    return zone_of_text("w.ini", text, NULL, 1700000000);
}

/* `out` (`n` bytes) as ldns reads one record, in presentation form, tabs
 * as spaces; NULL if ldns cannot read it or bytes are left over. */
static char *record_text(const uint8_t *out, size_t n)
{
    ldns_rr *rr = NULL;
    size_t pos = 0;
    if (ldns_wire2rr(&rr, out, n, &pos, LDNS_SECTION_ANSWER) != LDNS_STATUS_OK || pos != n) {
        ldns_rr_free(rr);
        return NULL;
    }
    char *s = ldns_rr2str(rr);
    ldns_rr_free(rr);
    for (char *c = s; c && *c; c++)
        *c = *c == '\t' ? ' ' : *c == '\n' ? '\0' : *c;
    return s;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every record of a walk of `z`, sorted, in `got` (at most `max`); how
 * many; -1 if one does not read as a record. */
static int walk_all(const struct zone *z, char **got, int max)
{
    struct zone_walk w;
    uint8_t out[ZONE_RECORD_MAX];
    int n = 0;
    zone_walk_start(&w);
    for (size_t len; (len = zone_walk_next(z, &w, out)) > 0;) {
        char *s = record_text(out, len);
        if (!s || n == max) {
            printf("# record %d: %s\n", n, s ? "too many" : "unreadable");
            free(s);
            return -1;
        }
        got[n++] = s;
    }
    qsort(got, (size_t)n, sizeof(*got), cmp);
    return n;
}

static const char mapping[] = "[server]\n"
                              "zone = Cluster.Local\n"
                              "listen = 127.0.0.1:5353, [::1]:5353\n"
                              "ttl = 5\n"
                              "reverse = 192.168.0.0/16\n"
                              "[upstream]\n"
                              "servers = none\n"
                              "[namespace a]\n"
                              "one = 192.168.1.10\n"
                              "two = 192.168.1.20, 2001:db8::5 ttl=30\n"
                              "pg = 192.168.1.30:5433\n"
                              "ldap = 10.0.0.5:389, [2001:db8::6]:389 srv=_ldap._udp\n"
                              "ext = DB.Example.COM.\n"
                              "alias = one.a.svc.cluster.local\n"
                              "ep = 192-168-1-20.two.a.svc.cluster.local\n"
                              "chain = alias.a.svc.cluster.local\n";

static const char *const expected[] = {
    "10-0-0-5.ldap.a.svc.cluster.local. 5 IN A 10.0.0.5",
    "192-168-1-20.two.a.svc.cluster.local. 30 IN A 192.168.1.20",
    "2001-db8--5.two.a.svc.cluster.local. 30 IN AAAA 2001:db8::5",
    "2001-db8--6.ldap.a.svc.cluster.local. 5 IN AAAA 2001:db8::6",
    "_ldap._udp.ldap.a.svc.cluster.local. 5 IN SRV 0 50 389 10-0-0-5.ldap.a.svc.cluster.local.",
    "_ldap._udp.ldap.a.svc.cluster.local. 5 IN SRV 0 50 389 2001-db8--6.ldap.a.svc.cluster.local.",
    "_pg._tcp.pg.a.svc.cluster.local. 5 IN SRV 0 100 5433 pg.a.svc.cluster.local.",
    "alias.a.svc.cluster.local. 5 IN CNAME one.a.svc.cluster.local.",
    "chain.a.svc.cluster.local. 5 IN CNAME alias.a.svc.cluster.local.",
    "cluster.local. 5 IN NS ns.dns.cluster.local.",
    "dns-version.cluster.local. 28800 IN TXT \"1.1.0\"",
    "ep.a.svc.cluster.local. 5 IN CNAME 192-168-1-20.two.a.svc.cluster.local.",
    "ext.a.svc.cluster.local. 5 IN CNAME DB.Example.COM.",
    "ldap.a.svc.cluster.local. 5 IN A 10.0.0.5",
    "ldap.a.svc.cluster.local. 5 IN AAAA 2001:db8::6",
    "ldap.a.svc.cluster.local. 5 IN SRV 0 50 389 10-0-0-5.ldap.a.svc.cluster.local.",
    "ldap.a.svc.cluster.local. 5 IN SRV 0 50 389 2001-db8--6.ldap.a.svc.cluster.local.",
    "ns.dns.cluster.local. 5 IN A 127.0.0.1",
    "ns.dns.cluster.local. 5 IN AAAA ::1",
    "one.a.svc.cluster.local. 5 IN A 192.168.1.10",
    "pg.a.svc.cluster.local. 5 IN A 192.168.1.30",
    "pg.a.svc.cluster.local. 5 IN SRV 0 100 5433 pg.a.svc.cluster.local.",
    "two.a.svc.cluster.local. 30 IN A 192.168.1.20",
    "two.a.svc.cluster.local. 30 IN AAAA 2001:db8::5",
};

static void test_every_record_once(void)
{
    struct zone *z = compile(mapping);
    ok(z != NULL, "the mapping compiles");
    if (!z)
        return;
    char *got[64];
    size_t want = sizeof(expected) / sizeof(expected[0]);
    int n = walk_all(z, got, 64);
    is_int(n, (int)want, "every record once: no PTR, no chain, no SOA");
    for (size_t i = 0; n == (int)want && i < want; i++)
        if (strcmp(got[i], expected[i]) != 0)
            printf("# record %zu:\n#   want %s\n#   got  %s\n", i, expected[i], got[i]);
    bool same = n == (int)want;
    for (size_t i = 0; same && i < want; i++)
        same = strcmp(got[i], expected[i]) == 0;
    ok(same, "each record whole, as the zone answers it (a CNAME's target as written)");
    for (int i = 0; i < n; i++)
        free(got[i]);

    uint8_t out[ZONE_RECORD_MAX];
    size_t len = zone_walk_soa(z, out);
    char *soa = len ? record_text(out, len) : NULL;
    ok(soa && strcmp(soa, "cluster.local. 5 IN SOA ns.dns.cluster.local. "
                          "hostmaster.cluster.local. 1700000000 7200 1800 86400 5") == 0,
       "the SOA, its names whole: %s", soa ? soa : "(none)");
    free(soa);

    /* a walk again from the start gives the same */
    char *again[64];
    is_int(walk_all(z, again, 64), n, "a second walk writes as many");
    for (int i = 0; i < n; i++)
        free(again[i]);
    zone_free(z);
}

/* A service of 1000 addresses: its set, its endpoints, its SRV. */
static void test_large_service(void)
{
    char *text = malloc(64 * 1024);
    size_t n = (size_t)sprintf(text, "[upstream]\nservers = none\n[namespace a]\nbig =");
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(text + n, "%s10.1.%d.%d:80", i % 10 ? ", " : "\n  ", i / 250,
                             i % 250 + 1);
    strcpy(text + n, "\n");
    struct zone *z = compile(text);
    free(text);
    ok(z != NULL, "1000 addresses compile");
    if (!z)
        return;
    struct zone_walk w;
    uint8_t out[ZONE_RECORD_MAX];
    size_t count = 0, bad = 0;
    zone_walk_start(&w);
    for (size_t len; (len = zone_walk_next(z, &w, out)) > 0; count++) {
        char *s = record_text(out, len);
        bad += s == NULL;
        free(s);
    }
    /* NS, 1 glue A, TXT; 1000 A, 1000 endpoint A, 1000 SRV twice */
    is_int((long)count, 3 + 4000, "every record of the service");
    is_int((long)bad, 0, "each readable by ldns");
    zone_free(z);
}

int main(void)
{
    test_every_record_once();
    test_large_service();
    return done_testing();
}
