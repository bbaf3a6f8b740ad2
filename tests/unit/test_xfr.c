/* test_xfr.c -- zone transfers: who gets one, and its messages, decoded independently by ldns. */
#include "svcmapd/xfr.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "svcmapd/answer.h"
#include "svcmapd/load.h"
#include "svcmapd/zone_walk.h"
#include "tap.h"
#include "unit_zone.h"

static struct answer_ctx ctx;
static uint8_t reply[ANSWER_TCP_MAX];

static struct zone *compile(const char *text, time_t now)
{
    return zone_of_text("x.ini", text, NULL, now);
}

static struct sockaddr_in peer4(const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, a, &s.sin_addr);
    return s;
}

static struct sockaddr_in6 peer6(const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    inet_pton(AF_INET6, a, &s.sin6_addr);
    return s;
}

/* A query for `name` and `type`, ID 4242, with an OPT when `edns`, and
 * for IXFR the client's SOA of `serial` in AUTHORITY when `soa`. */
static uint8_t *query(const char *name, uint16_t type, bool edns, bool soa, uint32_t serial,
                      size_t *len)
{
    ldns_pkt *p = ldns_pkt_query_new(ldns_dname_new_frm_str(name), type, LDNS_RR_CLASS_IN, 0);
    ldns_pkt_set_id(p, 4242);
    if (edns)
        ldns_pkt_set_edns_udp_size(p, 1232);
    if (soa) {
        char text[256];
        snprintf(text, sizeof(text), "%s 0 IN SOA a. b. %u 0 0 0 0", name, serial);
        ldns_rr *rr = NULL;
        ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL);
        ldns_pkt_push_rr(p, LDNS_SECTION_AUTHORITY, rr);
    }
    uint8_t *wire;
    ldns_pkt2wire(&wire, p, len);
    ldns_pkt_free(p);
    return wire;
}

/* answer_query() of that query from `peer`; its result, the reply parsed
 * in *out (NULL: none). */
static enum answer_result ask(const struct zone *z, const char *name, uint16_t type, bool tcp,
                              const struct sockaddr *peer, bool soa, uint32_t serial,
                              ldns_pkt **out, struct answer_info *info)
{
    size_t len;
    uint8_t *wire = query(name, type, true, soa, serial, &len);
    enum answer_result r = answer_query(&ctx, z, wire, len, tcp, peer, reply, sizeof(reply), info);
    free(wire);
    *out = NULL;
    if (info->len)
        ldns_wire2pkt(out, reply, info->len);
    return r;
}

static const char mapping[] = "[server]\n"
                              "zone = cluster.local\n"
                              "reverse = 192.168.0.0/16\n"
                              "[upstream]\n"
                              "servers = none\n"
                              "[transfer]\n"
                              "allow = 127.0.0.1, 10.0.0.0/8, 2001:db8::/32\n"
                              "[namespace a]\n"
                              "one = 192.168.1.10\n"
                              "two = 192.168.1.20, 2001:db8::5 ttl=30\n"
                              "pg = 192.168.1.30:5433\n"
                              "ext = db.example.com\n";

/* Who gets a transfer, and how (SPEC §8; NSD's and Knot's answers where
 * the RFCs leave a choice). */
static void test_who(void)
{
    struct zone *z = compile(mapping, 1700000000);
    if (!ok(z != NULL, "the mapping compiles"))
        return;
    struct sockaddr_in yes = peer4("127.0.0.1"), net = peer4("10.9.8.7"), no = peer4("127.0.0.2");
    struct sockaddr_in6 yes6 = peer6("2001:db8::1"), mapped = peer6("::ffff:10.1.2.3"),
                        no6 = peer6("2001:db9::1");
    const struct zone_settings *set = zone_settings(z);
    ok(xfr_allowed(set, (struct sockaddr *)&yes) && xfr_allowed(set, (struct sockaddr *)&net) &&
           xfr_allowed(set, (struct sockaddr *)&yes6),
       "an address of the list, one in a prefix, IPv6");
    ok(xfr_allowed(set, (struct sockaddr *)&mapped), "an IPv4 client on an IPv6 socket");
    ok(!xfr_allowed(set, (struct sockaddr *)&no) && !xfr_allowed(set, (struct sockaddr *)&no6) &&
           !xfr_allowed(set, NULL),
       "others are not");

    ldns_pkt *p;
    struct answer_info info;
    enum answer_result r = ask(z, "cluster.local.", LDNS_RR_TYPE_AXFR, true,
                               (struct sockaddr *)&yes, false, 0, &p, &info);
    ok(r == ANSWER_TRANSFER && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR && ldns_pkt_aa(p) &&
           ldns_pkt_ancount(p) == 0 && ldns_pkt_qdcount(p) == 1 && ldns_pkt_edns(p),
       "AXFR over TCP from an allowed client: a transfer, its first message's frame");
    ldns_pkt_free(p);
    r = ask(z, "CLUSTER.local.", LDNS_RR_TYPE_AXFR, true, (struct sockaddr *)&yes, false, 0, &p,
            &info);
    ok(r == ANSWER_TRANSFER, "the apex in any case");
    ldns_pkt_free(p);

    r = ask(z, "cluster.local.", LDNS_RR_TYPE_AXFR, true, (struct sockaddr *)&no, false, 0, &p,
            &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_REFUSED && info.xfr_refused,
       "from anyone else: REFUSED, as before, and marked to be logged");
    ldns_pkt_free(p);
    r = ask(z, "one.a.svc.cluster.local.", LDNS_RR_TYPE_AXFR, true, (struct sockaddr *)&yes, false,
            0, &p, &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_REFUSED && !info.xfr_refused,
       "of a name below the apex: REFUSED");
    ldns_pkt_free(p);
    r = ask(z, "168.192.in-addr.arpa.", LDNS_RR_TYPE_AXFR, true, (struct sockaddr *)&yes, false, 0,
            &p, &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_REFUSED,
       "of a reverse zone: REFUSED");
    ldns_pkt_free(p);

    r = ask(z, "cluster.local.", LDNS_RR_TYPE_AXFR, false, (struct sockaddr *)&yes, false, 0, &p,
            &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOTIMPL,
       "AXFR over UDP: NOTIMP, as NSD and Knot answer");
    ldns_pkt_free(p);
    r = ask(z, "cluster.local.", LDNS_RR_TYPE_AXFR, false, (struct sockaddr *)&no, false, 0, &p,
            &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_REFUSED,
       "and REFUSED to anyone else");
    ldns_pkt_free(p);

    uint32_t serial = zone_stats(z)->serial;
    r = ask(z, "cluster.local.", LDNS_RR_TYPE_IXFR, true, (struct sockaddr *)&yes, true, serial - 1,
            &p, &info);
    ok(r == ANSWER_TRANSFER, "IXFR from an older serial over TCP: the whole zone (RFC 1995 §4)");
    ldns_pkt_free(p);
    r = ask(z, "cluster.local.", LDNS_RR_TYPE_IXFR, true, (struct sockaddr *)&yes, true,
            serial - 0x7fffffffu, &p, &info);
    ok(r == ANSWER_TRANSFER, "from a serial far behind (RFC 1982)");
    ldns_pkt_free(p);
    for (int i = 0; i < 3; i++) {
        uint32_t s = i == 0 ? serial : i == 1 ? serial + 1 : serial - 1;
        bool tcp = i != 2;
        r = ask(z, "cluster.local.", LDNS_RR_TYPE_IXFR, tcp, (struct sockaddr *)&yes, true, s, &p,
                &info);
        ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR &&
               ldns_pkt_aa(p) && ldns_pkt_ancount(p) == 1 &&
               ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(p), 0)) == LDNS_RR_TYPE_SOA &&
               ldns_pkt_get_rcode(p) == LDNS_RCODE_NOERROR &&
               ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(p), 0)) == LDNS_RR_TYPE_IXFR,
           "IXFR %s: the SOA alone (RFC 1995 §2)",
           i == 0   ? "from our serial"
           : i == 1 ? "from a newer serial"
                    : "over UDP");
        ldns_pkt_free(p);
    }
    r = ask(z, "cluster.local.", LDNS_RR_TYPE_IXFR, true, (struct sockaddr *)&yes, false, 0, &p,
            &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_FORMERR,
       "IXFR without the client's SOA: FORMERR, as Knot answers");
    ldns_pkt_free(p);
    zone_free(z);

    z = compile("[namespace a]\nx = 10.0.0.1\n", 1700000000);
    r = ask(z, "cluster.local.", LDNS_RR_TYPE_AXFR, true, (struct sockaddr *)&yes, false, 0, &p,
            &info);
    ok(r == ANSWER_REPLY && p && ldns_pkt_get_rcode(p) == LDNS_RCODE_REFUSED,
       "without [transfer]: REFUSED to everyone");
    ldns_pkt_free(p);
    zone_free(z);
}

/* The messages of one transfer of `z`, checked as a secondary would read
 * them; the records (SOAs included) into *all. Returns the number of
 * messages, -1 if a rule broke (said why). */
static int transfer(const struct zone *z, uint16_t type, bool edns, ldns_rr_list **all)
{
    struct sockaddr_in peer = peer4("127.0.0.1");
    size_t len;
    uint8_t *wire = query("cluster.local.", type, edns, type == LDNS_RR_TYPE_IXFR, 1, &len);
    struct answer_info info;
    enum answer_result r = answer_query(&ctx, z, wire, len, true, (struct sockaddr *)&peer, reply,
                                        sizeof(reply), &info);
    free(wire);
    struct xfr *x = r == ANSWER_TRANSFER ? xfr_new(z, reply, info.len) : NULL;
    if (!x) {
        printf("# no transfer begins\n");
        return -1;
    }
    *all = ldns_rr_list_new();
    int messages = 0, bad = 0;
    static uint8_t out[ANSWER_TCP_MAX];
    for (size_t n; (n = xfr_next(x, out, sizeof(out))) > 0; messages++) {
        ldns_pkt *p = NULL;
        if (ldns_wire2pkt(&p, out, n) != LDNS_STATUS_OK) {
            printf("# message %d does not parse\n", messages);
            bad++;
            continue;
        }
        bool first = messages == 0;
        if (ldns_pkt_id(p) != 4242 || !ldns_pkt_qr(p) || !ldns_pkt_aa(p) ||
            ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR || ldns_pkt_qdcount(p) != (first ? 1 : 0) ||
            ldns_pkt_nscount(p) != 0 || (ldns_pkt_edns(p) != 0) != (first && edns) ||
            n > XFR_MESSAGE_FILL + 64) {
            printf("# message %d: id %u, qr %d aa %d rcode %d qd %u ns %u edns %d, %zu bytes\n",
                   messages, ldns_pkt_id(p), ldns_pkt_qr(p), ldns_pkt_aa(p), ldns_pkt_get_rcode(p),
                   ldns_pkt_qdcount(p), ldns_pkt_nscount(p), ldns_pkt_edns(p), n);
            bad++;
        }
        ldns_rr_list *an = ldns_pkt_answer(p);
        for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++)
            ldns_rr_list_push_rr(*all, ldns_rr_clone(ldns_rr_list_rr(an, i)));
        ldns_pkt_free(p);
    }
    const struct xfr_progress *pr = xfr_progress(x);
    if (pr->messages != (uint64_t)messages || pr->records != ldns_rr_list_rr_count(*all)) {
        printf("# progress says %llu messages, %llu records\n", (unsigned long long)pr->messages,
               (unsigned long long)pr->records);
        bad++;
    }
    if (xfr_next(x, out, sizeof(out)) != 0)
        bad++;
    xfr_free(x);
    return bad ? -1 : messages;
}

/* Appends the record `rec` (`n` bytes, as a walk writes it) to `l`. */
static void push(ldns_rr_list *l, const uint8_t *rec, size_t n)
{
    ldns_rr *rr = NULL;
    size_t pos = 0;
    if (ldns_wire2rr(&rr, rec, n, &pos, LDNS_SECTION_ANSWER) == LDNS_STATUS_OK)
        ldns_rr_list_push_rr(l, rr);
}

/* The records of a walk, the SOA first and last, as ldns reads them. */
static ldns_rr_list *walked(const struct zone *z)
{
    ldns_rr_list *l = ldns_rr_list_new();
    uint8_t rec[ZONE_RECORD_MAX];
    struct zone_walk w;
    zone_walk_start(&w);
    push(l, rec, zone_walk_soa(z, rec));
    for (size_t n; (n = zone_walk_next(z, &w, rec)) > 0;)
        push(l, rec, n);
    push(l, rec, zone_walk_soa(z, rec));
    return l;
}

/* The SOA, first and last; every record of the zone once between. */
static void check_records(const struct zone *z, ldns_rr_list *got, const char *what)
{
    ldns_rr_list *want = walked(z);
    size_t n = ldns_rr_list_rr_count(got);
    ok(n >= 2 && ldns_rr_get_type(ldns_rr_list_rr(got, 0)) == LDNS_RR_TYPE_SOA &&
           ldns_rr_get_type(ldns_rr_list_rr(got, n - 1)) == LDNS_RR_TYPE_SOA &&
           ldns_rr_compare(ldns_rr_list_rr(got, 0), ldns_rr_list_rr(got, n - 1)) == 0,
       "%s: the SOA first and last", what);
    ldns_rr_list_sort(got);
    ldns_rr_list_sort(want);
    bool same = ldns_rr_list_rr_count(want) == n;
    for (size_t i = 0; same && i < n; i++)
        same = ldns_rr_compare(ldns_rr_list_rr(got, i), ldns_rr_list_rr(want, i)) == 0 &&
               ldns_rr_ttl(ldns_rr_list_rr(got, i)) == ldns_rr_ttl(ldns_rr_list_rr(want, i));
    ok(same, "%s: %zu records, each the zone's (names, TTLs, owners compressed and read back)",
       what, n);
    ldns_rr_list_deep_free(want);
}

static void test_messages(void)
{
    struct zone *z = compile(mapping, 1700000000);
    ldns_rr_list *all = NULL;
    int m = transfer(z, LDNS_RR_TYPE_AXFR, true, &all);
    ok(m == 1, "a small zone: one message, with the OPT");
    if (all)
        check_records(z, all, "AXFR");
    ldns_rr_list_deep_free(all);
    all = NULL;
    m = transfer(z, LDNS_RR_TYPE_IXFR, false, &all);
    ok(m == 1, "IXFR, without EDNS: one message, no OPT");
    if (all)
        check_records(z, all, "IXFR");
    ldns_rr_list_deep_free(all);
    zone_free(z);

    /* 3000 services, some of 50 addresses with ports: many messages, each
     * record whole in one */
    size_t cap = 4 << 20, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text + n, cap - n,
                          "[upstream]\nservers = none\n[transfer]\nallow = 127.0.0.1\n");
    for (int ns = 0; ns < 30; ns++) {
        n += (size_t)snprintf(text + n, cap - n, "[namespace ns-%d]\n", ns);
        for (int s = 0; s < 100; s++) {
            if (s % 25 == 0) {
                n += (size_t)snprintf(text + n, cap - n, "farm-%d =", s);
                for (int a = 0; a < 50; a++)
                    n += (size_t)snprintf(text + n, cap - n, "%s10.%d.%d.%d:8080",
                                          a % 10 ? ", " : "\n  ", ns, s, a + 1);
                n += (size_t)snprintf(text + n, cap - n, "\n");
            } else if (s % 7 == 0) {
                n += (size_t)snprintf(text + n, cap - n, "h-%d = host-%d.example.com\n", s, s);
            } else {
                n += (size_t)snprintf(text + n, cap - n, "svc-%d = 10.%d.%d.1, 2001:db8::%d:%d\n",
                                      s, ns, s, ns, s);
            }
        }
    }
    z = compile(text, 1700000000);
    free(text);
    all = NULL;
    m = transfer(z, LDNS_RR_TYPE_AXFR, true, &all);
    ok(m > 10, "3000 services: %d messages, none over %d bytes of records", m, XFR_MESSAGE_FILL);
    if (all)
        check_records(z, all, "3000 services");
    ldns_rr_list_deep_free(all);
    zone_free(z);
}

int main(void)
{
    answer_init(&ctx);
    ctx.no_wait = true;
    test_who();
    test_messages();
    return done_testing();
}
