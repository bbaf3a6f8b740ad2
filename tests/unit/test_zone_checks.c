/* test_zone_checks.c -- compiling checked services: their probes, and their states across reloads.
 */
#include <arpa/inet.h>
#include <stdlib.h>

#include "svcmapd/load.h"
#include "svcmapd/zone.h"
#include "tap.h"
#include "probe_state.h"
#include "unit_zone.h"

/* Compiles `text` against `old`; the zone is the caller's. */
static struct zone *compile(const char *text, const struct zone *old)
{
    return zone_of_text("c.ini", text, old, 1700000000);
}

static void test_probes(void)
{
    struct zone *z = compile("[namespace a]\n"
                             "db = 10.0.0.1:5432, 10.0.0.2:5432 check=tcp\n"
                             "db2 = 10.0.0.2:5432, 10.0.0.1:5432 check=tcp policy=failover\n"
                             "web = 10.0.0.2, 10.0.0.1 check=http:80/healthz\n"
                             "web2 = 10.0.0.1, 10.0.0.2 check=http:80/ready\n"
                             "other = 10.0.0.1:5432, 10.0.0.2:5432 check=tcp:6432\n"
                             "[namespace b]\n"
                             "one = 10.0.0.9:80 check=tcp\n"
                             "host = db.example.com check=tcp:80\n"
                             "plain = 10.0.0.7, 10.0.0.8\n",
                             NULL);
    ok(z != NULL, "a mapping of checked services compiles");
    if (!z)
        return;
    size_t n;
    const struct zone_probe *p = zone_probes(z, &n);
    is_int(n, 8, "one probe per address, port and check, whichever services share it");
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        sorted &= zone_probe_key_cmp(&p[i - 1].key, &p[i].key) < 0;
    ok(sorted, "sorted, each once");
    const struct zone_probe *h = probe_at(z, "10.0.0.2", 80, CONFIG_CHECK_HTTP);
    ok(h && h->key.path && strcmp(h->key.path, "/healthz") == 0 && atomic_load(&h->up) == 1,
       "an HTTP probe: its path; up from the start");
    ok(probe_at(z, "10.0.0.1", 6432, CONFIG_CHECK_TCP) &&
           !probe_at(z, "10.0.0.9", 80, CONFIG_CHECK_TCP),
       "check=tcp:PORT probes that port; a single target is not probed");

    size_t ns;
    struct zone_checked *const *s = zone_checked_services(z, &ns);
    is_int(ns, 5, "five checked services (not the single target, not the hostname)");
    if (ns == 5) {
        char t[64];
        ok(strcmp(s[0]->ns, "a") == 0 && strcmp(s[0]->name, "db") == 0 && s[0]->ntargets == 2,
           "in the order of the file");
        is_str(zone_target_text(s[0], 1, t, sizeof(t)), "10.0.0.2:5432", "a target as written");
        is_str(zone_target_text(s[2], 0, t, sizeof(t)), "10.0.0.2", "without a port");
        ok(s[1]->t[1].probe == s[0]->t[0].probe, "targets of one probe share it");
        ok(s[1]->policy == CONFIG_POLICY_FAILOVER, "their policy");
    }
    zone_free(z);
}

static void test_reload(void)
{
    const char *before = "[namespace a]\n"
                         "db = 10.0.0.1:5432, 10.0.0.2:5432, 10.0.0.3:5432 check=tcp\n"
                         "web = 10.0.1.1, 10.0.1.2 check=http:80/healthz\n"
                         "plain = 10.0.2.1, 10.0.2.2\n";
    const char *after = "[namespace a]\n"
                        "db = 10.0.0.1:5432, 10.0.0.2:5432, 10.0.0.4:5432 check=tcp\n"
                        "web = 10.0.1.1, 10.0.1.2 check=http:80/ready\n"
                        "plain = 10.0.2.1, 10.0.2.2\n";
    struct zone *z1 = compile(before, NULL);
    if (!ok(z1 != NULL, "the running zone"))
        return;
    struct zone_probe *kept = probe_at(z1, "10.0.0.2", 5432, CONFIG_CHECK_TCP);
    struct zone_probe *web = probe_at(z1, "10.0.1.1", 80, CONFIG_CHECK_HTTP);
    zone_probe_set_up(z1, kept, false);
    atomic_store(&kept->transitions, 3);
    atomic_store(&kept->error, 42);
    atomic_store(&kept->since, 1700000123000);
    zone_probe_set_up(z1, web, false);

    struct zone *z2 = compile(after, z1);
    if (!ok(z2 != NULL, "the reloaded zone"))
        return;
    const struct zone_probe *k2 = probe_at(z2, "10.0.0.2", 5432, CONFIG_CHECK_TCP);
    ok(k2 && atomic_load(&k2->up) == 0 && atomic_load(&k2->transitions) == 3 &&
           atomic_load(&k2->error) == 42 && atomic_load(&k2->since) == 1700000123000,
       "an unchanged target keeps its state, its count and its last error");
    size_t ns;
    struct zone_checked *const *svc = zone_checked_services(z2, &ns);
    ok(ns >= 1 && atomic_load(&svc[0]->up) == 0x5,
       "and the service's word says so: 1 and 3 up, 2 down");
    const struct zone_probe *added = probe_at(z2, "10.0.0.4", 5432, CONFIG_CHECK_TCP);
    ok(added && atomic_load(&added->up) == 1 && atomic_load(&added->transitions) == 0 &&
           atomic_load(&added->since) == 1700000000000,
       "a new target starts up, since the load");
    const struct zone_probe *w2 = probe_at(z2, "10.0.1.1", 80, CONFIG_CHECK_HTTP);
    ok(w2 && atomic_load(&w2->up) == 1, "a target whose check changed starts again, up");
    ok(!probe_at(z2, "10.0.0.3", 5432, CONFIG_CHECK_TCP), "a removed target is gone");
    is_int(zone_stats(z2)->changed, 2, "the two services whose targets or check changed");

    struct zone *z3 = compile(after, z2);
    ok(z3 && zone_stats(z3)->serial == zone_stats(z2)->serial && zone_stats(z3)->changed == 0,
       "the same file again: nothing changed, the serial stays");
    const struct zone_probe *k3 = z3 ? probe_at(z3, "10.0.0.2", 5432, CONFIG_CHECK_TCP) : NULL;
    ok(k3 && atomic_load(&k3->up) == 0, "and the state goes on");
    zone_free(z3);

    struct zone *z4 = compile("[namespace a]\n"
                              "db = 10.0.0.1:5432, 10.0.0.2:5432, 10.0.0.4:5432 check=tcp\n"
                              "web = 10.0.1.1, 10.0.1.2 check=http:80/ready\n"
                              "plain = 10.0.2.1, 10.0.2.2 check=tcp:80\n",
                              z2);
    ok(z4 && zone_stats(z4)->changed == 1, "a check added to a service changes it");
    zone_free(z4);
    zone_free(z2);
    zone_free(z1);
}

static void test_ttl(void)
{
    struct zone *z = compile("[server]\nttl = 5\n[health]\ninterval = 1h\ntimeout = 1m\n"
                             "[namespace a]\ndb = 10.0.0.1:80, 10.0.0.2:80 check=tcp ttl=600\n"
                             "db2 = 10.0.0.1:80, 10.0.0.2:80 check=tcp\n",
                             NULL);
    ok(z != NULL, "an interval of an hour");
    const struct zone_health *h = z ? zone_health(z) : NULL;
    ok(h && h->interval == 3600000 && h->timeout == 60000 && h->fall == 3 && h->rise == 2,
       "the zone carries the [health] settings");
    zone_free(z);
}

int main(void)
{
    test_probes();
    test_reload();
    test_ttl();
    return done_testing();
}
