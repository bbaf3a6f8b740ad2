/* test_zone_view.c -- answers of health-checked services (SPEC §6), through answer_query(). */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdlib.h>

#include "svcmapd/answer.h"
#include "svcmapd/load.h"
#include "tap.h"
#include "unit_zone.h"

static struct zone *zone;
static struct answer_ctx ctx;
static uint8_t reply[ANSWER_TCP_MAX];

static const char mapping[] =
    "[server]\n"
    "ttl = 30\n"
    "[health]\n"
    "interval = 10s\n"
    "timeout = 1s\n"
    "[namespace p]\n"
    "web = 10.0.0.1, 10.0.0.2, 10.0.0.3 check=tcp:80\n"
    "db = 10.0.1.1:5432, 10.0.1.2:5432, 10.0.1.3:5432 check=tcp "
    "policy=failover\n"
    "mix = 10.0.2.1, 2001:db8::1, 10.0.2.2, 2001:db8::2 check=tcp:80 "
    "policy=failover\n"
    "srv = 10.0.3.1:80, 10.0.3.2:80, 10.0.3.3:80, 10.0.3.4:80 "
    "check=http:80/ready\n"
    "plain = 10.0.4.1, 10.0.4.2\n"
    "alias = db.p.svc.cluster.local\n"
    "alias2 = alias.p.svc.cluster.local\n"
    "ep = 10-0-0-2.web.p.svc.cluster.local\n"
    "big = 10.9.0.1, 10.9.0.2, 10.9.0.3, 10.9.0.4, 10.9.0.5, 10.9.0.6,\n"
    "  10.9.0.7, 10.9.0.8, 10.9.0.9, 10.9.0.10, 10.9.0.11, 10.9.0.12,\n"
    "  10.9.0.13, 10.9.0.14, 10.9.0.15, 10.9.0.16, 10.9.0.17, 10.9.0.18,\n"
    "  10.9.0.19, 10.9.0.20, 10.9.0.21, 10.9.0.22, 10.9.0.23, 10.9.0.24,\n"
    "  10.9.0.25, 10.9.0.26, 10.9.0.27, 10.9.0.28, 10.9.0.29, 10.9.0.30,\n"
    "  10.9.0.31, 10.9.0.32, 10.9.0.33, 10.9.0.34, 10.9.0.35, 10.9.0.36,\n"
    "  10.9.0.37, 10.9.0.38, 10.9.0.39, 10.9.0.40 check=tcp:80\n";

/* Marks every probe of address `addr` up or down, as the prober would. */
static void set_up(const char *addr, bool up)
{
    uint8_t a[16] = {0};
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    inet_pton(family, addr, a);
    size_t n;
    struct zone_probe *p = zone_probes(zone, &n);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i].key.family == family && memcmp(p[i].key.addr, a, 16) == 0) {
            zone_probe_set_up(zone, &p[i], up);
            found++;
        }
    if (!found)
        printf("# no probe of %s\n", addr);
}

static ldns_pkt *ask(const char *name, uint16_t type, bool tcp)
{
    ldns_pkt *q = ldns_pkt_query_new(ldns_dname_new_frm_str(name), type, LDNS_RR_CLASS_IN, 0);
    uint8_t *wire;
    size_t len;
    ldns_pkt2wire(&wire, q, &len);
    ldns_pkt_free(q);
    struct answer_info info;
    enum answer_result res =
        answer_query(&ctx, zone, wire, len, tcp, NULL, reply, sizeof(reply), &info);
    size_t n = res == ANSWER_REPLY ? info.len : 0;
    free(wire);
    ldns_pkt *r = NULL;
    if (n == 0 || ldns_wire2pkt(&r, reply, n) != LDNS_STATUS_OK)
        printf("# no reply, or ldns cannot parse it\n");
    return r;
}

/* The rdata of each record of `type` in `l`, sorted, joined by spaces. */
static void rdatas(const ldns_rr_list *l, uint16_t type, bool sorted, char *out, size_t cap)
{
    char *v[128];
    size_t n = 0;
    for (size_t i = 0; l && i < ldns_rr_list_rr_count(l) && n < 128; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(l, i);
        if (ldns_rr_get_type(rr) != type)
            continue;
        char *s = ldns_rr2str(rr);
        /* the rdata: after owner, TTL, class, type */
        char *t = s;
        for (int f = 0; f < 4 && t; f++)
            t = strchr(t, '\t') ? strchr(t, '\t') + 1 : NULL;
        v[n] = strdup(t ? t : s);
        v[n][strcspn(v[n], "\n")] = '\0';
        n++;
        free(s);
    }
    for (size_t i = 0; sorted && i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(v[j], v[i]) < 0) {
                char *t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", v[i]);
        free(v[i]);
    }
}

/* Asks `name` `type` `times` times: each answer must be exactly `want`
 * (the rdatas of `type`, sorted unless `in_order`). */
static void expect(const char *name, uint16_t type, const char *want, bool in_order,
                   const char *what)
{
    char got[2048] = "";
    int same = 0, times = 30;
    for (int i = 0; i < times; i++) {
        ldns_pkt *r = ask(name, type, false);
        rdatas(r ? ldns_pkt_answer(r) : NULL, type, !in_order, got, sizeof(got));
        same += strcmp(got, want) == 0;
        ldns_pkt_free(r);
    }
    if (!ok(same == times, "%s", what))
        printf("#   got '%s', want '%s' (%d of %d)\n", got, want, same, times);
}

static uint32_t first_ttl(const char *name, uint16_t type)
{
    ldns_pkt *r = ask(name, type, false);
    uint32_t ttl =
        r && ldns_pkt_ancount(r) ? ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(r), 0)) : 0;
    ldns_pkt_free(r);
    return ttl;
}

static void test_all_up(void)
{
    expect("web.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.0.1 10.0.0.2 10.0.0.3", false,
           "all up: every target");
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.1", false,
           "failover, all up: the first target only");
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_SRV,
           "0 100 5432 10-0-1-1.db.p.svc.cluster.local.", false,
           "failover SRV: the first target, weight 100");
    is_int(first_ttl("web.p.svc.cluster.local.", LDNS_RR_TYPE_A), 10,
           "a checked service's TTL is at most the interval");
    is_int(first_ttl("plain.p.svc.cluster.local.", LDNS_RR_TYPE_A), 30,
           "an unchecked one keeps its TTL");
}

static void test_one_down(void)
{
    set_up("10.0.0.2", false);
    expect("web.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.0.1 10.0.0.3", false,
           "a target down leaves the answer");
    expect("10-0-0-2.web.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.0.2", false,
           "its endpoint name still answers");
    expect("2.0.0.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, "10-0-0-2.web.p.svc.cluster.local.", false,
           "and its PTR");
    expect("ep.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.0.2", false,
           "a CNAME to its endpoint name too");
    set_up("10.0.0.1", false);
    set_up("10.0.0.3", false);
    expect("web.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.0.1 10.0.0.2 10.0.0.3", false,
           "none up: every target, as if unchecked");
    set_up("10.0.0.2", true);
    expect("web.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.0.2", false, "one up: that one");
    set_up("10.0.0.1", true);
    set_up("10.0.0.3", true);
}

static void test_failover(void)
{
    set_up("10.0.1.1", false);
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.2", false,
           "failover: the primary down, the first standby");
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_SRV,
           "0 100 5432 10-0-1-2.db.p.svc.cluster.local.", false, "and its SRV, weight 100");
    expect("_db._tcp.db.p.svc.cluster.local.", LDNS_RR_TYPE_SRV,
           "0 100 5432 10-0-1-2.db.p.svc.cluster.local.", false, "at the SRV name too");
    ldns_pkt *r = ask("db.p.svc.cluster.local.", LDNS_RR_TYPE_SRV, false);
    char add[512];
    rdatas(r ? ldns_pkt_additional(r) : NULL, LDNS_RR_TYPE_A, true, add, sizeof(add));
    is_str(add, "10.0.1.2", "the additional records follow the SRV records");
    ldns_pkt_free(r);
    expect("alias.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.2", false,
           "a CNAME to it sees the same target");
    expect("alias2.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.2", false, "and a chain of two");
    expect("alias2.p.svc.cluster.local.", LDNS_RR_TYPE_CNAME, "alias.p.svc.cluster.local.", false,
           "its CNAMEs are untouched");
    set_up("10.0.1.2", false);
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.3", false, "then the next");
    set_up("10.0.1.3", false);
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.1 10.0.1.2 10.0.1.3", true,
           "failover, none up: every target, in the order of the file");
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_SRV,
           "0 33 5432 10-0-1-1.db.p.svc.cluster.local. 0 33 5432 10-0-1-2.db.p.svc.cluster.local. "
           "0 33 5432 10-0-1-3.db.p.svc.cluster.local.",
           true, "and their SRV records, in order, weights as compiled");
    expect("alias.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.1 10.0.1.2 10.0.1.3", true,
           "a CNAME to it too");
    set_up("10.0.1.2", true);
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.2", false,
           "a standby back: it alone");
    set_up("10.0.1.1", true);
    set_up("10.0.1.3", true);
    expect("db.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.1.1", false, "the primary back");

    set_up("10.0.2.1", false);
    expect("mix.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.2.2", false,
           "failover is per family: A takes the first healthy IPv4 target");
    expect("mix.p.svc.cluster.local.", LDNS_RR_TYPE_AAAA, "2001:db8::1", false,
           "and AAAA the first healthy IPv6 one");
    set_up("10.0.2.2", false);
    expect("mix.p.svc.cluster.local.", LDNS_RR_TYPE_A, "10.0.2.1 10.0.2.2", true,
           "no IPv4 target up: every IPv4 target, though IPv6 ones are");
    set_up("10.0.2.1", true);
    set_up("10.0.2.2", true);
}

static void test_srv_weights(void)
{
    expect("srv.p.svc.cluster.local.", LDNS_RR_TYPE_SRV,
           "0 25 80 10-0-3-1.srv.p.svc.cluster.local. 0 25 80 10-0-3-2.srv.p.svc.cluster.local. "
           "0 25 80 10-0-3-3.srv.p.svc.cluster.local. 0 25 80 10-0-3-4.srv.p.svc.cluster.local.",
           true, "all up: four SRV records, weight 25");
    set_up("10.0.3.2", false);
    set_up("10.0.3.4", false);
    expect("srv.p.svc.cluster.local.", LDNS_RR_TYPE_SRV,
           "0 50 80 10-0-3-1.srv.p.svc.cluster.local. 0 50 80 10-0-3-3.srv.p.svc.cluster.local.",
           true, "two down: two SRV records, weights shared among them");
    ldns_pkt *r = ask("srv.p.svc.cluster.local.", LDNS_RR_TYPE_SRV, true);
    char add[512];
    rdatas(r ? ldns_pkt_additional(r) : NULL, LDNS_RR_TYPE_A, true, add, sizeof(add));
    is_str(add, "10.0.3.1 10.0.3.3", "their endpoints' addresses in ADDITIONAL");
    ldns_pkt_free(r);
    set_up("10.0.3.2", true);
    set_up("10.0.3.4", true);
}

static void test_truncation(void)
{
    /* 40 A records are 640 bytes: over 512 without EDNS */
    ldns_pkt *r = ask("big.p.svc.cluster.local.", LDNS_RR_TYPE_A, false);
    ok(r && ldns_pkt_tc(r), "40 targets up: TC=1 over UDP");
    ldns_pkt_free(r);
    char name[32];
    for (int i = 4; i <= 40; i++) {
        snprintf(name, sizeof(name), "10.9.0.%d", i);
        set_up(name, false);
    }
    r = ask("big.p.svc.cluster.local.", LDNS_RR_TYPE_A, false);
    char got[256];
    rdatas(r ? ldns_pkt_answer(r) : NULL, LDNS_RR_TYPE_A, true, got, sizeof(got));
    ok(r && !ldns_pkt_tc(r), "3 up: they fit, no TC");
    is_str(got, "10.9.0.1 10.9.0.2 10.9.0.3", "exactly the healthy ones");
    ldns_pkt_free(r);
    for (int i = 4; i <= 30; i++) {
        snprintf(name, sizeof(name), "10.9.0.%d", i);
        set_up(name, true);
    }
    /* 30 up, 480 bytes of records and the question: truncated to healthy ones */
    int bad = 0, tc = 0;
    for (int k = 0; k < 20; k++) {
        r = ask("big.p.svc.cluster.local.", LDNS_RR_TYPE_A, false);
        tc += r && ldns_pkt_tc(r);
        for (size_t i = 0; r && i < ldns_pkt_ancount(r); i++) {
            char *a = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(r), i), 0));
            bad += atoi(strrchr(a, '.') + 1) > 30;
            free(a);
        }
        ldns_pkt_free(r);
    }
    ok(tc == 20 && bad == 0, "truncated: only healthy targets in the part that fits (%d bad)", bad);
    for (int i = 31; i <= 40; i++) {
        snprintf(name, sizeof(name), "10.9.0.%d", i);
        set_up(name, true);
    }
}

int main(void)
{
    zone = zone_of_text("view.ini", mapping, NULL, 1700000000);
    ok(zone != NULL, "the mapping compiles");
    if (!zone)
        return done_testing();
    answer_init(&ctx);

    test_all_up();
    test_one_down();
    test_failover();
    test_srv_weights();
    test_truncation();

    zone_free(zone);
    return done_testing();
}
