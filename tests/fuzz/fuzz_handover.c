/* fuzz_handover.c -- libFuzzer target: any bytes as what a running svcmapd sends to svcmapd
 * --replace.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "probe_state.h"
#include "svcmapd/handover.h"
#include "svcmapd/health.h"
#include "svcmapd/inherit.h"
#include "svcmapd/log.h"
#include "svcmapd/zone.h"

/*
 * Input: the bytes the old svcmapd writes on the control connection after
 * the new one's `replace` (its `replace: pid ...` line, facts, `socket`
 * lines without descriptors, `sockets N`), then it closes its side.
 *
 * A thread of the target plays the old svcmapd on a unix socket in a
 * temporary directory; the new svcmapd's handover_request() reads it, its
 * `health` facts going into the probes of a zone compiled from a fixed
 * mapping with checked services (health_seed_fact()), as main.c does.
 * Then:
 *  - every `health` fact is counted once: taken, rejected or gone;
 *  - every probe holds a state a probe can have: up or down, an error a
 *    probe records, a streak short of this mapping's fall or rise, a
 *    `since` at most a day ahead; a probe no fact took is as compiled;
 *  - a probe that changed is named by a line of the input that holds its
 *    check (" tcp:5432 ") and its state (" down ");
 *  - once the hand-over went through, each service's word is its probes';
 *  - the facts the zone now gives (health_report_facts()) read back into
 *    a fresh zone whole, none rejected, to the same states: what the
 *    writer writes the reader takes;
 *  - the health command's lines and /health/targets' JSON are made from
 *    it; nothing leaks, no descriptor stays open.
 */

#define DAY_MS 86400000ULL

static const char text[] = "[server]\nlisten = 127.0.0.1:53\n"
                           "[upstream]\nservers = none\n"
                           "[health]\nfall = 3\nrise = 2\n"
                           "[namespace prod]\n"
                           "db = 10.0.0.1:5432, 10.0.0.2:5432 check=tcp policy=failover\n"
                           "web = 10.0.1.1, 10.0.1.2 check=http:8080/healthz?x=1\n"
                           "cache = 10.0.0.1:6379, [2001:db8::1]:6379 check=tcp\n";

static struct sockaddr_un sun = {.sun_family = AF_UNIX};
static char dir[] = "/tmp/fuzz_handover_XXXXXX";
static int listener = -1;

static void cleanup(void)
{
    if (listener >= 0)
        close(listener);
    unlink(sun.sun_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(
        (enum log_level)(LOG_LEVEL_ERROR + 1)); /* a refused fact is logged: not once per input */
    if (!mkdtemp(dir))
        abort();
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/c.sock", dir);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(listener, 4) < 0)
        abort();
    atexit(cleanup);
    return 0;
}

struct old {
    const uint8_t *data;
    size_t size;
};

/* The old svcmapd: reads `replace`, writes the input, closes its side,
 * and reads what comes until the new one closes. */
static void *old_svcmapd(void *arg)
{
    const struct old *o = arg;
    int c = accept(listener, NULL, NULL);
    if (c < 0)
        fuzz_fail("accept: %s", strerror(errno));
    char got[9];
    size_t n = 0;
    while (n < 8) {
        ssize_t k = recv(c, got + n, 8 - n, 0);
        if (k <= 0)
            fuzz_fail("no `replace` line from the new svcmapd");
        n += (size_t)k;
    }
    if (memcmp(got, "replace\n", 8) != 0)
        fuzz_fail("the new svcmapd did not ask `replace`");
    for (size_t sent = 0; sent < o->size;) {
        ssize_t k = send(c, o->data + sent, o->size - sent, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* it stopped reading: a line too long, a broken offer */
        sent += (size_t)k;
    }
    shutdown(c, SHUT_WR);
    while (recv(c, got, sizeof(got), 0) > 0)
        ;
    close(c);
    return NULL;
}

/* A line of the input holds " CHECK " and " STATE ". */
static bool named(const uint8_t *d, size_t n, const struct zone_probe *p, bool up)
{
    char check[128], state[8];
    if (p->key.kind == CONFIG_CHECK_HTTP)
        snprintf(check, sizeof(check), " http:%u%s ", p->key.port, p->key.path);
    else
        snprintf(check, sizeof(check), " tcp:%u ", p->key.port);
    snprintf(state, sizeof(state), " %s ", up ? "up" : "down");
    for (size_t i = 0; i < n;) {
        const uint8_t *nl = memchr(d + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - d) : n;
        if (memmem(d + i, end - i, check, strlen(check)) &&
            memmem(d + i, end - i, state, strlen(state)))
            return true;
        i = end + 1;
    }
    return false;
}

static void check_probes(const struct zone *z, const struct zone *fresh, const uint8_t *d,
                         size_t size)
{
    size_t n;
    struct zone_probe *p = zone_probes(z, &n), *was = zone_probes(fresh, &n);
    const struct zone_health *set = zone_health(z);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < n; i++) {
        struct probe_state s = probe_state_of(&p[i]), w = probe_state_of(&was[i]);
        if (probe_state_same(&s, &w))
            continue;
        if (s.up > 1 || !health_error_valid(s.error) ||
            s.streak >= (s.up ? set->fall : set->rise) ||
            s.since > (uint64_t)now.tv_sec * 1000 + DAY_MS)
            fuzz_fail("probe %zu: a state no probe has: up %u, error %u, streak %u, since %llu", i,
                      s.up, s.error, s.streak, (unsigned long long)s.since);
        if (!named(d, size, &p[i], s.up))
            fuzz_fail("probe %zu changed, and no line of the input names its check and state", i);
    }
}

static void check_words(const struct zone *z)
{
    size_t n;
    struct zone_checked *const *svc = zone_checked_services(z, &n);
    for (size_t i = 0; i < n; i++) {
        uint64_t want = 0;
        for (uint8_t k = 0; k < svc[i]->ntargets; k++)
            want |= (uint64_t)atomic_load(&svc[i]->t[k].probe->up) << k;
        if (atomic_load(&svc[i]->up) != want)
            fuzz_fail("service %s: its word is %llx, its probes say %llx", svc[i]->name,
                      (unsigned long long)atomic_load(&svc[i]->up), (unsigned long long)want);
    }
}

/* The facts `z` gives, read back into a fresh zone. */
struct again {
    struct health_seed seed;
    size_t written;
};

static void read_back(void *arg, const char *line)
{
    struct again *a = arg;
    a->written++;
    if (!health_seed_fact(&a->seed, line))
        fuzz_fail("a fact written is not a health fact: %s", line);
}

static void check_round_trip(const struct zone *z)
{
    struct zone *again = fuzz_fixed_zone(text, sizeof(text) - 1);
    struct again a = {.written = 0};
    health_seed_init(&a.seed, again);
    health_report_facts(z, read_back, &a);
    health_seed_finish(&a.seed, true);
    size_t n;
    struct zone_probe *p = zone_probes(z, &n), *q = zone_probes(again, &n);
    if (a.written != n || a.seed.taken != n || a.seed.rejected)
        fuzz_fail("%zu facts written for %zu probes, %zu taken back, %zu rejected", a.written, n,
                  a.seed.taken, a.seed.rejected);
    for (size_t i = 0; i < n; i++) {
        struct probe_state s = probe_state_of(&p[i]), t = probe_state_of(&q[i]);
        if (!probe_state_same(&s, &t))
            fuzz_fail("probe %zu does not read back as it was written", i);
    }
    check_words(again);
    zone_free(again);
}

static void put(void *ctx, const char *line)
{
    (void)line;
    (*(size_t *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct zone *z = fuzz_fixed_zone(text, sizeof(text) - 1);
    struct zone *fresh = fuzz_fixed_zone(text, sizeof(text) - 1);
    struct old o = {data, size};
    pthread_t old;
    if (pthread_create(&old, NULL, old_svcmapd, &o) != 0)
        abort();
    struct health_seed seed;
    health_seed_init(&seed, z);
    struct handover_facts facts;
    struct inherit *given = inherit_new(INHERIT_HANDOVER);
    if (!given)
        abort();
    int conn = handover_request(sun.sun_path, &facts, given, health_seed_fact, &seed);
    health_seed_finish(&seed, conn >= 0);
    if (conn >= 0)
        close(conn);
    pthread_join(old, NULL);
    inherit_free(given);

    size_t n;
    zone_probes(z, &n);
    if (seed.taken + seed.rejected + seed.gone != seed.facts || seed.taken > n ||
        seed.down > seed.taken)
        fuzz_fail("%zu health facts: %zu taken (%zu down), %zu rejected, %zu gone", seed.facts,
                  seed.taken, seed.down, seed.rejected, seed.gone);
    check_probes(z, fresh, data, size);
    if (conn >= 0)
        check_words(z);
    check_round_trip(z);
    size_t lines = 0;
    health_report_lines(z, put, &lines);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    health_report_json(b, z);
    evbuffer_free(b);
    zone_free(fresh);
    zone_free(z);
    return 0;
}
