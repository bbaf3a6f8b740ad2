/* fuzz_upstream.c -- libFuzzer target: any bytes as an upstream reply, then the answer from it. */
#include "fuzz.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/clock.h"
#include "svcmapd/log.h"
#include "svcmapd/upstream.h"
#include "svcmapd/zone.h"

/*
 * Input: one byte of flags for the client's query (bit 0: over TCP, bit 1:
 * AAAA instead of A, bit 2: with EDNS, 1232 bytes), then the reply an
 * upstream resolver sends to svcmapd's lookup of mysql.test-1.example.com,
 * exactly as it would arrive. Its first two bytes, the ID, are replaced by
 * the lookup's (which is random), so that the fuzzer gets past that check.
 * tests/fuzz/make_corpus.py writes seeds in this layout.
 *
 * Each input runs the path of a real miss without its sockets: the client's
 * query for mysql.test-1.svc.cluster.local waits for a lookup, the reply
 * ends it (upstream_take_reply(), where upstream.c's parsing and caching
 * run), and the query is answered again from the cache, as the server does
 * when the lookup ends. That answer keeps the rules of every reply
 * (reply_check.c), starts with the service's CNAME, and holds nothing about
 * a name of the zone that the mapping does not say: the reply may lead the
 * chain back into the zone (the names of test-2), and claim records there.
 * Then the query is answered once more, allowed to wait: a chain that came
 * back into the zone at a service whose own target is outside it (other)
 * waits for that lookup, which gets one address, and the answer after it
 * is checked the same way. A fresh cache per input: nothing carries over.
 */

static const char zone_text[] = "[server]\n"
                                "zone = cluster.local\n"
                                "listen = 127.0.0.1:5353\n"
                                "[upstream]\n"
                                /* never contacted: the target hands replies over itself */
                                "servers = 127.0.0.1:53\n"
                                "[namespace test-1]\n"
                                "mysql = mysql.test-1.example.com\n"
                                /* where a chain from the upstream may come back */
                                "[namespace test-2]\n"
                                "mysql = 192.168.1.10\n"
                                "multi = 192.168.1.20, 192.168.1.21, 2001:db8::21\n"
                                "alias = mysql.test-2.svc.cluster.local\n"
                                "back = mysql.test-1.example.com\n"
                                "other = other.example.com\n";

static const uint8_t QNAME[] = "\5mysql\6test-1\3svc\7cluster\5local";
static const uint8_t TARGET[] = "\5mysql\6test-1\7example\3com";

static struct zone *zone;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    zone = fuzz_fixed_zone(zone_text, sizeof(zone_text) - 1);
    log_set_level(LOG_LEVEL_ERROR); /* a failed lookup is a warning: one per input */
    return 0;
}

/* The client's query: the service's name, A or AAAA, with or without an
 * OPT record. Returns its length. */
static size_t client_query(uint8_t *q, uint16_t qtype, bool edns)
{
    static const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
    uint8_t hdr[12] = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0};
    size_t n = 0;
    memcpy(q, hdr, sizeof(hdr));
    n += sizeof(hdr);
    memcpy(q + n, QNAME, sizeof(QNAME));
    n += sizeof(QNAME);
    q[n++] = (uint8_t)(qtype >> 8);
    q[n++] = (uint8_t)qtype;
    q[n++] = 0;
    q[n++] = LDNS_RR_CLASS_IN;
    if (edns) {
        memcpy(q + n, opt, sizeof(opt));
        n += sizeof(opt);
    }
    return n;
}

/* An answer begins with the service's CNAME, truncated or not (SPEC §3:
 * a TC reply keeps the answer's first records). */
static void check_cname_first(const uint8_t *reply, size_t n)
{
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, reply, n) != LDNS_STATUS_OK)
        fuzz_fail("ldns cannot parse the answer"); /* reply_check.c has said so already */
    const ldns_rr_list *an = ldns_pkt_answer(p);
    const ldns_rr *rr = ldns_rr_list_rr_count(an) ? ldns_rr_list_rr(an, 0) : NULL;
    const ldns_rdf *target = rr && ldns_rr_rd_count(rr) == 1 ? ldns_rr_rdf(rr, 0) : NULL;
    if (!target || ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME ||
        ldns_rdf_size(ldns_rr_owner(rr)) != sizeof(QNAME) ||
        memcmp(ldns_rdf_data(ldns_rr_owner(rr)), QNAME, sizeof(QNAME)) != 0 ||
        ldns_rdf_size(target) != sizeof(TARGET) ||
        memcmp(ldns_rdf_data(target), TARGET, sizeof(TARGET)) != 0)
        fuzz_fail("the answer does not start with the service's CNAME");
    ldns_pkt_free(p);
}

/* Ends lookup `l` with a reply of one record of `qtype` for its name. */
static void answer_lookup(struct upstream_lookup *l, uint16_t qtype)
{
    size_t qlen;
    const uint8_t *q = upstream_lookup_query(l, &qlen);
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, q, qlen) != LDNS_STATUS_OK)
        fuzz_fail("ldns cannot read a lookup's query");
    char *name = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(p), 0)));
    char text[600];
    snprintf(text, sizeof(text), "%s 60 IN %s %s", name ? name : ".",
             qtype == LDNS_RR_TYPE_A ? "A" : "AAAA",
             qtype == LDNS_RR_TYPE_A ? "192.0.2.99" : "2001:db8::99");
    free(name);
    ldns_rr *rr = NULL;
    if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) != LDNS_STATUS_OK)
        fuzz_fail("cannot make the record %s", text);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    uint8_t *wire = NULL;
    size_t len = 0;
    if (ldns_pkt2wire(&wire, p, &len) != LDNS_STATUS_OK)
        fuzz_fail("cannot write a reply to a lookup");
    ldns_pkt_free(p);
    if (!upstream_take_reply(l, wire, len))
        fuzz_fail("a lookup did not take a plain answer");
    free(wire);
}

/* The query answered from the cache as the server answers a waiter: the
 * rules of every reply, then this target's. */
static void check_from_cache(struct answer_ctx *ctx, const uint8_t *query, size_t qlen, bool tcp,
                             uint8_t *reply)
{
    struct answer_info info;
    ctx->now = clock_ms();
    ctx->no_wait = true;
    ctx->rng = 0x9e3779b97f4a7c15ULL;
    fuzz_answer_checked(ctx, zone, query, qlen, tcp, NULL);
    ctx->rng = 0x9e3779b97f4a7c15ULL;
    answer_query(ctx, zone, query, qlen, tcp, NULL, reply, tcp ? ANSWER_TCP_MAX : ANSWER_UDP_MAX,
                 &info);
    size_t n = info.len;
    check_cname_first(reply, n);
    fuzz_check_zone_records(zone, reply, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return -1;
    bool tcp = data[0] & 1;
    uint16_t qtype = data[0] & 2 ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A;

    struct answer_ctx ctx;
    answer_init(&ctx);
    memset(ctx.secret, 0x5a, sizeof(ctx.secret));
    ctx.up = upstream_new(NULL, UPSTREAM_MAX_LOOKUPS); /* no event base: nothing is sent */
    if (!ctx.up)
        abort();

    uint8_t query[128];
    size_t qlen = client_query(query, qtype, (data[0] & 4) != 0);
    uint8_t *reply = malloc(ANSWER_TCP_MAX);
    if (!reply)
        abort();
    struct answer_info info;
    ctx.now = clock_ms();
    ctx.no_wait = false;
    if (answer_query(&ctx, zone, query, qlen, tcp, NULL, reply, ANSWER_TCP_MAX, &info) !=
            ANSWER_DEFERRED ||
        info.len != 0 || !info.wait)
        fuzz_fail("a hostname service answered before its lookup");

    /* The upstream's reply, with the ID of the query it answers. */
    size_t rlen = size - 1;
    uint8_t *r = malloc(rlen ? rlen : 1); /* exact size: ASan sees a read past it */
    if (!r)
        abort();
    memcpy(r, data + 1, rlen);
    size_t sent_len;
    const uint8_t *sent = upstream_lookup_query(info.wait, &sent_len);
    if (sent_len < 12)
        fuzz_fail("a lookup's query of %zu bytes", sent_len);
    if (rlen >= 2)
        memcpy(r, sent, 2);
    bool used = upstream_take_reply(info.wait, r, rlen);
    free(r);
    if (!used && upstream_stats(ctx.up)->failures != 1)
        fuzz_fail("a reply of no use, but the lookup did not fail");

    /* The query again, as the server answers its waiters. Twice, from the
     * same cache with the same shuffle: fuzz_answer_checked() checks its
     * reply and frees it, and this target looks inside the second. */
    check_from_cache(&ctx, query, qlen, tcp, reply);

    /* Once more, as a new query: it may wait for a lookup of its own (a
     * chain that left the zone again, or a refresh), answered plainly. */
    ctx.now = clock_ms();
    ctx.no_wait = false;
    if (answer_query(&ctx, zone, query, qlen, tcp, NULL, reply, ANSWER_TCP_MAX, &info) ==
        ANSWER_DEFERRED) {
        answer_lookup(info.wait, qtype);
        check_from_cache(&ctx, query, qlen, tcp, reply);
    }

    free(reply);
    upstream_free(ctx.up);
    return 0;
}
