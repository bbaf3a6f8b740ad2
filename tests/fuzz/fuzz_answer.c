/* fuzz_answer.c -- libFuzzer target: any bytes as a query, against a zone of every answer shape. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "fuzz.h"
#include "svcmapd/zone.h"

/*
 * Input: one byte for the transport (bit 0: TCP), one for the peer address
 * handed over for the DNS cookie (0 none, 1 IPv4, 2 IPv6, modulo 3), then
 * the DNS message exactly as it would arrive. tests/fuzz/make_corpus.py
 * writes seeds in this layout.
 *
 * The zone is compiled once: it holds every shape of answer the server
 * gives, so the fuzzer reaches each copy-and-patch path from one input.
 * Its health-checked targets are up or down as a hash of the input says.
 */

static const char zone_text[] =
    "[server]\n"
    "zone = cluster.local\n"
    /* NS glue in A and AAAA; two A records: shuffled with apex slots */
    "listen = 127.0.0.1:5353, 127.0.0.2:5353, [::1]:5353\n"
    "ttl = 5\n"
    /* reverse zones: every name in them answered; 10.x stays outside */
    "reverse = 192.168.0.0/16, 2001:db8::/32\n"
    "[upstream]\n"
    "servers = none\n" /* a hostname outside the zone: the CNAME alone */
    "[namespace test-1]\n"
    "mysql = mysql.test-1.example.com\n"
    "web = web.example.com. resolve=no\n"
    "[namespace test-2]\n"
    "mysql = 192.168.1.10\n"
    "v6 = 2001:db8::10\n"
    "redis = 192.168.1.20, 192.168.1.21, 192.168.1.22\n"
    "pg = 192.168.1.30:5433\n"
    "ldap = 10.0.0.5:389, [2001:db8::5]:389 srv=_ldap._udp ttl=30\n"
    "dual = 10.0.0.7 2001:db8::7 ttl=0\n"
    "db = mysql.test-2.svc.cluster.local\n"    /* chained in the zone */
    "chain = db.test-2.svc.cluster.local\n"    /* two links */
    "srvalias = pg.test-2.svc.cluster.local\n" /* CNAME to an SRV service */
    "outside = mysql.test-1.svc.cluster.local\n"
    /* Too big for 1232 bytes of UDP: truncation; with ports, additional
     * records that do not all fit. */
    "farm = 10.1.0.1:80 10.1.0.2:80 10.1.0.3:80 10.1.0.4:80 10.1.0.5:80 10.1.0.6:80\n"
    "  10.1.0.7:80 10.1.0.8:80 10.1.0.9:80 10.1.0.10:80 10.1.0.11:80 10.1.0.12:80\n"
    "  10.1.0.13:80 10.1.0.14:80 10.1.0.15:80 10.1.0.16:80 10.1.0.17:80 10.1.0.18:80\n"
    "  10.1.0.19:80 10.1.0.20:80 10.1.0.21:80 10.1.0.22:80 10.1.0.23:80 10.1.0.24:80\n"
    "  10.1.0.25:80 10.1.0.26:80 10.1.0.27:80 10.1.0.28:80 10.1.0.29:80 10.1.0.30:80\n"
    "  [2001:db8:1::1]:80 [2001:db8:1::2]:80 [2001:db8:1::3]:80 [2001:db8:1::4]:80\n"
    "  [2001:db8:1::5]:80 [2001:db8:1::6]:80 [2001:db8:1::7]:80 [2001:db8:1::8]:80\n"
    /* health-checked (SPEC §6): the probes' states come from the input */
    "[health]\n"
    "interval = 10s\n"
    "[namespace test-3]\n"
    "web = 10.3.0.1:80, 10.3.0.2:80, [2001:db8:3::1]:80, [2001:db8:3::2]:80 check=tcp\n"
    "db = 10.3.1.1:5432, 10.3.1.2:5432, 10.3.1.3:5432 check=tcp policy=failover\n"
    "dbalias = db.test-3.svc.cluster.local\n"
    "pool = 10.3.2.1 10.3.2.2 10.3.2.3 10.3.2.4 10.3.2.5 10.3.2.6 10.3.2.7 10.3.2.8 10.3.2.9\n"
    "  10.3.2.10 10.3.2.11 10.3.2.12 10.3.2.13 10.3.2.14 10.3.2.15 10.3.2.16 10.3.2.17\n"
    "  10.3.2.18 10.3.2.19 10.3.2.20 10.3.2.21 10.3.2.22 10.3.2.23 10.3.2.24 10.3.2.25\n"
    "  10.3.2.26 10.3.2.27 10.3.2.28 10.3.2.29 10.3.2.30 10.3.2.31 10.3.2.32 10.3.2.33\n"
    "  10.3.2.34 10.3.2.35 10.3.2.36 10.3.2.37 10.3.2.38 10.3.2.39 10.3.2.40 check=tcp:80\n"
    "[namespace a-long-namespace-name-that-pushes-names-toward-dns-limits-abcde]\n"
    "a-long-service-name-that-pushes-names-toward-dns-limits-abcdef = 10.2.0.1:1\n";

static struct zone *zone;
static struct answer_ctx ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    zone = fuzz_fixed_zone(zone_text, sizeof(zone_text) - 1);
    answer_init(&ctx);
    ctx.up = NULL; /* servers = none: no lookups */
    ctx.now = 0;
    ctx.no_wait = true;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return -1;
    bool tcp = data[0] & 1;

    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    sin.sin_addr.s_addr = htonl(0x0a000001);
    sin6.sin6_addr.s6_addr[0] = 0xfd;
    sin6.sin6_addr.s6_addr[15] = 1;
    const struct sockaddr *peer = NULL;
    if (data[1] % 3 == 1)
        peer = (const struct sockaddr *)&sin;
    else if (data[1] % 3 == 2)
        peer = (const struct sockaddr *)&sin6;

    /* The probes' states, from the input: all up, all down, or a mix. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    size_t nprobes;
    struct zone_probe *probes = zone_probes(zone, &nprobes);
    for (size_t i = 0; i < nprobes; i++) {
        uint8_t up = (h & 3) == 0 ? 1 : (h & 3) == 1 ? 0 : (uint8_t)(h >> (2 + i % 60) & 1);
        zone_probe_set_up(zone, &probes[i], up);
    }

    /* Same input, same shuffle: a crash must reproduce from its file. */
    ctx.rng = 0x9e3779b97f4a7c15ULL;
    memset(ctx.secret, 0x5a, sizeof(ctx.secret));

    fuzz_answer_checked(&ctx, zone, data + 2, size - 2, tcp, peer);
    return 0;
}
