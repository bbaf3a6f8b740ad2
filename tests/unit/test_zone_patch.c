/* test_zone_patch.c -- a reload that patches the zone serves exactly what a whole compile would. */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <stdint.h>
#include <stdlib.h>

#include "svcmapd/zone.h"
#include "tap.h"
#include "unit_zone.h"
#include "zone_compare.h"

/*
 * A random mapping goes through rounds of edits: services changed, added
 * and removed, namespaces added and removed, now and then a health check,
 * a CNAME into the zone or a new [server] ttl, which a patch leaves to a
 * whole compile. Each round's file is compiled as the reload of the zone
 * before (a patch, or a patch of a patch, most of the time) and whole, as
 * the reload of the whole zone before, and the two must agree on every record of the zone, on the
 * answer to every name either zone or the one before knew (and to the
 * names above them, up to the apex), on every PTR of every address, and
 * on the counts and digest.
 */

#define ROUNDS     60
#define NS_MAX     12
#define SVC_MAX    48
#define VALUE_SIZE 160

struct svc {
    bool used;
    char value[VALUE_SIZE];
};

struct mapping {
    bool ns_used[NS_MAX];
    struct svc svc[NS_MAX][SVC_MAX];
    uint32_t ttl;
};

static uint64_t rng_state = 20261206;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33) % n;
}

/* A value of any shape a service takes; `rare` allows those a patch
 * cannot take (a check, a CNAME into the zone). */
static void random_value(const struct mapping *m, char *out, bool rare)
{
    unsigned a = rnd(40), b = rnd(250) + 1;
    switch (rnd(rare ? 11 : 9)) {
    case 0:
    case 1:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u", a, b);
        break;
    case 2:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u, 10.%u.1.%u, 10.1.0.%u", a, b, a, b, rnd(4) + 1);
        break;
    case 3:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u:%u", a, b, 1000 + rnd(3));
        break;
    case 4:
        snprintf(out, VALUE_SIZE, "10.%u.0.%u:80, [fd00::%x]:80 srv=_web._udp", a, b, b);
        break;
    case 5:
        snprintf(out, VALUE_SIZE, "fd00::%x, 10.1.0.%u ttl=%u", b, rnd(4) + 1, 5 + rnd(3));
        break;
    case 6:
        snprintf(out, VALUE_SIZE, "host-%u.example.net", rnd(5));
        break;
    case 7:
        snprintf(out, VALUE_SIZE, "host-%u.example.net resolve=no", rnd(5));
        break;
    case 8:
        snprintf(out, VALUE_SIZE, "10.2.0.%u", rnd(3) + 1); /* shared with others */
        break;
    case 9:
        snprintf(out, VALUE_SIZE, "10.3.0.%u:5432, 10.3.1.%u:5432 check=tcp", b, b);
        break;
    default:
        for (int i = 0; i < NS_MAX; i++)
            for (int j = 0; j < SVC_MAX; j++)
                if (m->ns_used[i] && m->svc[i][j].used && strchr(m->svc[i][j].value, ',') &&
                    !strstr(m->svc[i][j].value, "check")) {
                    snprintf(out, VALUE_SIZE, "s%d.n%d.svc.cluster.local", j, i);
                    return;
                }
        snprintf(out, VALUE_SIZE, "10.4.0.%u", b);
    }
}

static void text_of(const struct mapping *m, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap,
                                "[server]\nzone = cluster.local\nttl = %u\n"
                                "reverse = 10.0.0.0/8\nmax-removal = 100\n"
                                "[upstream]\nservers = 127.0.0.1:9\n",
                                m->ttl);
    for (int i = 0; i < NS_MAX; i++) {
        if (!m->ns_used[i])
            continue;
        n += (size_t)snprintf(out + n, cap - n, "[namespace n%d]\n", i);
        for (int j = 0; j < SVC_MAX; j++)
            if (m->svc[i][j].used)
                n += (size_t)snprintf(out + n, cap - n, "s%d = %s\n", j, m->svc[i][j].value);
    }
}

static void edit(struct mapping *m, bool rare)
{
    int edits = 1 + (int)rnd(6);
    for (int e = 0; e < edits; e++) {
        int i = (int)rnd(NS_MAX), j = (int)rnd(SVC_MAX);
        unsigned what = rnd(20);
        if (what == 0) {
            m->ns_used[i] = !m->ns_used[i];
        } else if (!m->ns_used[i]) {
            m->ns_used[i] = true;
        } else if (what < 7 && m->svc[i][j].used) {
            m->svc[i][j].used = false;
        } else {
            m->svc[i][j].used = true;
            random_value(m, m->svc[i][j].value, rare);
        }
    }
    if (rare && rnd(10) == 0)
        m->ttl = 30 + rnd(2);
}

/* A difference, as a TAP failure. */
static void report(void *arg, const char *what)
{
    ok(0, "round %d: %s", *(const int *)arg, what);
}

static void test_rounds(void)
{
    static struct mapping m;
    static char text[NS_MAX * SVC_MAX * (VALUE_SIZE + 16) + 512];
    m.ttl = 30;
    for (int i = 0; i < NS_MAX / 2; i++) {
        m.ns_used[i] = true;
        for (int j = 0; j < SVC_MAX / 2; j++) {
            m.svc[i][j].used = true;
            random_value(&m, m.svc[i][j].value, false);
        }
    }
    text_of(&m, text, sizeof(text));
    time_t now = 1700000000;
    struct zone *running = zone_of_text("p.ini", text, NULL, now);
    struct zone *reference = zone_of_text("p.ini", text, NULL, now);
    ok(running && reference, "the first mapping compiles");
    int patches = 0, of_patches = 0, mismatches = 0;
    for (int round = 1; running && reference && round <= ROUNDS && mismatches < 5; round++) {
        edit(&m, round % 4 == 0);
        text_of(&m, text, sizeof(text));
        now += 60;
        struct zone *patched = zone_of_text("p.ini", text, running, now);
        struct zone *whole = zone_of_text_as("p.ini", text, reference, now, true);
        ok((patched == NULL) == (whole == NULL), "round %d: both compile, or neither", round);
        if (!patched || !whole) {
            zone_free(patched);
            zone_free(whole);
            continue;
        }
        const struct zone_stats *ps = zone_stats(patched);
        if (ps->compiled < ps->services) {
            patches++;
            of_patches += zone_stats(running)->compiled < zone_stats(running)->services;
        }
        mismatches += zone_compare(patched, whole, running, report, &round);
        ok(ps->serial > zone_stats(running)->serial || (ps->digest == zone_stats(running)->digest &&
                                                        ps->serial == zone_stats(running)->serial),
           "round %d: the serial moves with the answers", round);
        zone_free(reference);
        zone_free(running);
        reference = whole;
        running = patched;
    }
    zone_free(reference);
    ok(patches > ROUNDS / 2, "most rounds were patches (%d of %d)", patches, ROUNDS);
    ok(of_patches > ROUNDS / 4, "many patched a patch (%d)", of_patches);
    zone_free(running);
}

/* A reload that changes nothing keeps the serial, and compiles nothing. */
static void test_nothing_changed(void)
{
    const char *text = "[server]\nzone = cluster.local\n[upstream]\nservers = none\n"
                       "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2, 10.0.0.3\n";
    struct zone *a = zone_of_text("p.ini", text, NULL, 1700000000);
    struct zone *b = zone_of_text("p.ini", text, a, 1700000100);
    ok(a && b, "both compile");
    if (a && b) {
        is_int(zone_stats(b)->serial, zone_stats(a)->serial, "the serial stays");
        is_int(zone_stats(b)->compiled, 0, "nothing is compiled");
        is_int(zone_stats(b)->services, 2, "two services");
    }
    zone_free(a);
    zone_free(b);
}

/* What a patch leaves to a whole compile: the reload of `before` by
 * `after` compiles every service. */
static void whole_when(const char *why, const char *before, const char *after)
{
    char a[1024], b[1024];
#define HEAD                                                                                       \
    "[server]\nzone = cluster.local\n%s[upstream]\nservers = none\n"                               \
    "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2:80, 10.0.0.3:80\n%s"
    bool ttl = strncmp(after, "ttl", 3) == 0;
    snprintf(a, sizeof(a), HEAD, "", before);
    snprintf(b, sizeof(b), HEAD, ttl ? after : "", ttl ? "" : after);
#undef HEAD
    struct zone *za = zone_of_text("p.ini", a, NULL, 1700000000);
    struct zone *zb = zone_of_text("p.ini", b, za, 1700000100);
    ok(za && zb, "%s: both compile", why);
    if (za && zb)
        is_int(zone_stats(zb)->compiled, zone_stats(zb)->services, "%s: compiled whole", why);
    zone_free(za);
    zone_free(zb);
}

static void test_whole(void)
{
    whole_when("another ttl", "", "ttl = 7\n");
    whole_when("a checked service changes", "c = 10.0.1.1:80, 10.0.1.9:80 check=tcp\n",
               "c = 10.0.1.2:80, 10.0.1.9:80 check=tcp\n");
    whole_when("a checked service comes", "", "c = 10.0.1.1:80, 10.0.1.9:80 check=tcp\n");
    whole_when("a checked service goes", "c = 10.0.1.1:80, 10.0.1.9:80 check=tcp\n", "");
    whole_when("a CNAME into the zone comes", "", "c = x.a.svc.cluster.local\n");
    whole_when("what a CNAME's chain holds changes", "c = z.a.svc.cluster.local\nz = 10.1.0.1\n",
               "c = z.a.svc.cluster.local\nz = 10.1.0.2\n");
    whole_when("the service of an endpoint a CNAME points at changes",
               "c = 10-0-0-5.w.a.svc.cluster.local\nw = 10.0.0.5, 10.0.0.6\n",
               "c = 10-0-0-5.w.a.svc.cluster.local\nw = 10.0.0.5, 10.0.0.7\n");
    whole_when("the service of an SRV name a CNAME points at goes",
               "c = _w._tcp.w.a.svc.cluster.local\nw = 10.0.0.5:80\n", "c = 10.0.0.9\n");

    /* and what it takes: a checked service left as it is */
    const char *text = "[server]\nzone = cluster.local\n[upstream]\nservers = none\n"
                       "[namespace a]\nc = 10.0.1.1:80, 10.0.1.9:80 check=tcp\nx = 10.0.0.1\n";
    struct zone *a = zone_of_text("p.ini", text, NULL, 1700000000);
    char changed[512];
    snprintf(changed, sizeof(changed), "%sy = 10.0.0.2\n", text);
    struct zone *b = zone_of_text("p.ini", changed, a, 1700000100);
    ok(a && b, "a checked service and another: both compile");
    if (a && b) {
        is_int(zone_stats(b)->compiled, 1, "one service added beside a checked one: a patch");
        size_t na, nb;
        zone_probes(a, &na);
        zone_probes(b, &nb);
        ok(na == 2 && zone_probes(a, &na) == zone_probes(b, &nb), "the patch shares the probes");
    }
    zone_free(a);
    zone_free(b);
}

int main(void)
{
    test_nothing_changed();
    test_whole();
    test_rounds();
    return done_testing();
}
