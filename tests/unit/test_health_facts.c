/* test_health_facts.c -- the state of checked targets, written as hand-over facts by the old
 * svcmapd and read back, untrusted, by the new one (svcmapd --replace). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "svcmapd/health.h"
#include "svcmapd/load.h"
#include "svcmapd/log.h"
#include "svcmapd/zone.h"
#include "tap.h"
#include "probe_state.h"
#include "unit_zone.h"

static const char text[] = "[health]\nfall = 3\nrise = 2\n"
                           "[namespace prod]\n"
                           "db = 10.0.0.1:5432, 10.0.0.2:5432 check=tcp policy=failover\n"
                           "web = 10.0.1.1, [2001:db8::1] check=http:8080/healthz?x=1\n";

static struct zone *compile(void)
{
    return zone_of_text("f.ini", text, NULL, 1700000000);
}

/* Every probe's state and every service's word of `z`, as one string. */
static void snapshot(const struct zone *z, char *out, size_t cap)
{
    size_t n, off = 0;
    struct zone_probe *p = zone_probes(z, &n);
    for (size_t i = 0; i < n; i++) {
        struct probe_state s = probe_state_of(&p[i]);
        off +=
            (size_t)snprintf(out + off, cap - off, "%u/%u/%u/%llu/%llu ", s.up, s.streak, s.error,
                             (unsigned long long)s.since, (unsigned long long)s.transitions);
    }
    struct zone_checked *const *svc = zone_checked_services(z, &n);
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(out + off, cap - off, "%llx ",
                                (unsigned long long)atomic_load(&svc[i]->up));
}

static char facts[8][512];
static int nfacts;

static void put(void *ctx, const char *line)
{
    (void)ctx;
    if (nfacts < 8)
        snprintf(facts[nfacts++], sizeof(facts[0]), "%s", line);
}

/* The old svcmapd's zone: 10.0.0.1 down two failures ago, 2001:db8::1 up
 * with a failure counted; its facts, and the new svcmapd's zone with them. */
static void test_round_trip(void)
{
    struct zone *old = compile(), *z = compile();
    zone_probe_set_up(old, probe_at(old, "10.0.0.1", 0, 0), false);
    atomic_store(&probe_at(old, "10.0.0.1", 0, 0)->error,
                 HEALTH_ERROR(HEALTH_ERR_ERRNO, ECONNREFUSED));
    atomic_store(&probe_at(old, "10.0.0.1", 0, 0)->since, 1700000123456);
    atomic_store(&probe_at(old, "10.0.0.1", 0, 0)->transitions, 3);
    atomic_store(&probe_at(old, "10.0.0.1", 0, 0)->streak, 1);
    atomic_store(&probe_at(old, "2001:db8::1", 0, 0)->streak, 2);
    atomic_store(&probe_at(old, "2001:db8::1", 0, 0)->error, HEALTH_ERROR(HEALTH_ERR_STATUS, 503));
    health_report_facts(old, put, NULL);
    is_int(nfacts, 4, "one fact per probe");
    is_str(facts[0], "health 10.0.0.1 tcp:5432 down 1700000123456 3 1 65647",
           "a probe down: its key, state, since, transitions, streak, error");
    is_str(facts[3], "health 2001:db8::1 http:8080/healthz?x=1 up 1700000000000 0 2 197111",
           "IPv6 and an HTTP check with its path");

    struct health_seed s;
    health_seed_init(&s, z);
    for (int i = 0; i < nfacts; i++)
        ok(health_seed_fact(&s, facts[i]), "a health fact is read: %s", facts[i]);
    ok(!health_seed_fact(&s, "serial 5"), "another fact is not health's");
    health_seed_finish(&s, true);
    is_int(s.taken, 4, "every probe taken");
    is_int(s.down, 1, "one down");
    is_int(s.rejected + s.gone, 0, "none rejected or gone");
    char a[512], b[512];
    snapshot(old, a, sizeof(a));
    snapshot(z, b, sizeof(b));
    is_str(b, a, "the new zone holds what the old one did, services' words too");
    size_t n;
    struct zone_checked *const *svc = zone_checked_services(z, &n);
    is_int(zone_checked_answered(svc[0]), 2, "failover answers the standby at once");
    zone_free(old);
    zone_free(z);
}

/* Each line alone against a fresh zone: rejected, nothing changed. */
static void test_hostile(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char later[96];
    snprintf(later, sizeof(later), "health 10.0.0.1 tcp:5432 down %llu 1 0 0",
             (unsigned long long)now.tv_sec * 1000 + 86400000ULL + 60000);
    const char *hostile[] = {
        "health",
        "health ",
        "health 10.0.0.1 tcp:5432 down 1 1 0",
        "health 10.0.0.1 tcp:5432 down 1 1 0 ",
        " health 10.0.0.1 tcp:5432 down 1 1 0 0",
        "health  10.0.0.1 tcp:5432 down 1 1 0 0",
        "health 10.0.0.1 tcp:5432  down 1 1 0 0",
        "health 10.0.0.1\ttcp:5432 down 1 1 0 0",
        "health 10.0.0.256 tcp:5432 down 1 1 0 0",
        "health 10.0.0 tcp:5432 down 1 1 0 0",
        "health ::ffff:10.0.0.1x tcp:5432 down 1 1 0 0",
        "health 10.0.0.1 tcp down 1 1 0 0",
        "health 10.0.0.1 tcp: down 1 1 0 0",
        "health 10.0.0.1 tcp:0 down 1 1 0 0",
        "health 10.0.0.1 tcp:65536 down 1 1 0 0",
        "health 10.0.0.1 tcp:+5432 down 1 1 0 0",
        "health 10.0.0.1 tcp:5432/ down 1 1 0 0",
        "health 10.0.0.1 TCP:5432 down 1 1 0 0",
        "health 10.0.1.1 http:8080 down 1 1 0 0",
        "health 10.0.1.1 http:8080/heal\x7fthz down 1 1 0 0",
        "health 10.0.1.1 http:8080/heal\xc3\xa9 down 1 1 0 0",
        "health 10.0.0.1 tcp:5432 DOWN 1 1 0 0",
        "health 10.0.0.1 tcp:5432 down -1 1 0 0",
        "health 10.0.0.1 tcp:5432 down 1e3 1 0 0",
        later,
        "health 10.0.0.1 tcp:5432 down 1 18446744073709551616 0 0",
        "health 10.0.0.1 tcp:5432 down 1 1 101 0",
        "health 10.0.0.1 tcp:5432 down 1 1 256 0",
        "health 10.0.0.1 tcp:5432 down 1 1 0 4294967296",
        "health 10.0.0.1 tcp:5432 down 1 1 0 1",      /* none, with a detail */
        "health 10.0.0.1 tcp:5432 down 1 1 0 65536",  /* errno 0 */
        "health 10.0.0.1 tcp:5432 down 1 1 0 69632",  /* errno 4096 */
        "health 10.0.0.1 tcp:5432 down 1 1 0 131076", /* timeout of no phase */
        "health 10.0.0.1 tcp:5432 down 1 1 0 197608", /* HTTP 1000 */
        "health 10.0.0.1 tcp:5432 down 1 1 0 393216", /* no such kind */
        "health 10.0.0.1 tcp:5432 down 1 1 0 0x10",
        "health 10.0.0.1 tcp:5432 down 1 1 0 0\r",
        "health 10.0.0.1 tcp:5432 down 1 1 0 0\n",
        "health 10.0.0.1 tcp:5432 down 00000000000000000000001 1 0 0",
        "health 10.0.0.1 tcp:05432 down 1 1 0 0", /* not as svcmapd writes it */
        "health 10.0.0.1 tcp:5432 down 01 1 0 0",
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        struct zone *z = compile();
        char before[512], after[512];
        snapshot(z, before, sizeof(before));
        struct health_seed s;
        health_seed_init(&s, z);
        bool known = health_seed_fact(&s, hostile[i]);
        health_seed_finish(&s, true);
        snapshot(z, after, sizeof(after));
        ok(known == (strncmp(hostile[i], "health ", 7) == 0) && s.taken == 0 &&
               s.rejected == known && strcmp(before, after) == 0,
           "rejected, nothing changed: hostile line %zu", i);
        zone_free(z);
    }

    /* a line too long for a hand-over, and one for a probe not here */
    struct zone *z = compile();
    char longer[700];
    snprintf(longer, sizeof(longer), "health 10.0.1.1 http:8080/%0600d up 1 0 0 0", 0);
    struct health_seed s;
    health_seed_init(&s, z);
    health_seed_fact(&s, longer);
    health_seed_fact(&s, "health 10.0.0.9 tcp:5432 down 1 1 0 0");
    health_seed_fact(&s, "health 10.0.0.1 tcp:5433 down 1 1 0 0");
    health_seed_fact(&s, "health 10.0.1.1 http:8080/healthz down 1 1 0 0");
    health_seed_finish(&s, true);
    ok(s.rejected == 1 && s.gone == 3 && s.taken == 0, "too long: rejected; not here: gone");
    is_int(atomic_load(&probe_at(z, "10.0.1.1", 0, 0)->up), 1, "a path must match whole");

    /* the same probe twice: the first holds */
    health_seed_init(&s, z);
    health_seed_fact(&s, "health 10.0.0.1 tcp:5432 down 5 1 0 65647 and-a-later-field");
    health_seed_fact(&s, "health 10.0.0.1 tcp:5432 up 6 2 0 0");
    health_seed_finish(&s, true);
    struct probe_state st = probe_state_of(probe_at(z, "10.0.0.1", 0, 0));
    ok(s.taken == 1 && s.rejected == 1 && !st.up && st.since == 5 && st.transitions == 1,
       "a second fact for one probe is rejected; later fields are skipped");

    /* a streak beyond this mapping's fall or rise: one more result turns it */
    health_seed_init(&s, z);
    health_seed_fact(&s, "health 10.0.0.2 tcp:5432 up 5 0 100 0");
    health_seed_fact(&s, "health 10.0.1.1 http:8080/healthz?x=1 down 5 1 100 0");
    health_seed_finish(&s, true);
    is_int(atomic_load(&probe_at(z, "10.0.0.2", 0, 0)->streak), 2,
           "failures in a row: fall - 1 at most");
    is_int(atomic_load(&probe_at(z, "10.0.1.1", 0, 0)->streak), 1,
           "successes in a row: rise - 1 at most");

    /* a hand-over that broke: the zone is not served, the words stay */
    health_seed_init(&s, z);
    health_seed_finish(&s, false);
    zone_free(z);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR); /* rejections are logged: not here */
    test_round_trip();
    test_hostile();
    return done_testing();
}
