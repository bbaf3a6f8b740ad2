/* health_report.c -- what the prober found, for /metrics, /health/targets and the next svcmapd. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcmapd/handover.h"
#include "svcmapd/health.h"
#include "svcmapd/log.h"
#include "svcmapd/zone.h"

/*
 * Both read the zone served, whose probes the prober writes with relaxed
 * atomic stores: the main thread, which alone retires zones, reads the
 * current one without a slot, and sees each field as it was at some
 * moment. Names and targets are DNS labels and addresses: nothing in them
 * needs escaping in a Prometheus label or a JSON string.
 */

static uint64_t load(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* One series per checked target of `z`: `name`{namespace,service,target}
 * and its probe's `up` (a gauge) or `transitions` (a counter). */
static void per_target(struct evbuffer *b, const struct zone *z, const char *name, bool up,
                       const char *help)
{
    size_t n;
    struct zone_checked *const *svc = zone_checked_services(z, &n);
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        up ? "gauge" : "counter");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < svc[i]->ntargets; k++) {
            const struct zone_probe *p = svc[i]->t[k].probe;
            char target[64];
            uint64_t v =
                up ? atomic_load_explicit(&p->up, memory_order_relaxed) : load(&p->transitions);
            evbuffer_add_printf(b, "%s{namespace=\"%s\",service=\"%s\",target=\"%s\"} %llu\n", name,
                                svc[i]->ns, svc[i]->name,
                                zone_target_text(svc[i], k, target, sizeof(target)),
                                (unsigned long long)v);
        }
}

void health_report_metrics(struct evbuffer *b, const struct zone *z, const struct health_stats *st)
{
    per_target(b, z, "svcmapd_health_target_up", true,
               "1 while a checked target passes its probes, 0 while it is down.");
    per_target(b, z, "svcmapd_health_transitions_total", false,
               "Times a checked target went down or came back up.");
    evbuffer_add_printf(b, "# HELP svcmapd_health_probe_duration_seconds How long probes of "
                           "checked targets took, passed or failed.\n"
                           "# TYPE svcmapd_health_probe_duration_seconds histogram\n");
    static const char *const checks[2] = {"tcp", "http"};
    for (int c = 0; st && c < 2; c++) {
        uint64_t cum = 0;
        for (size_t i = 0; i <= HEALTH_BUCKETS; i++) {
            cum += load(&st->count[c][i]);
            if (i < HEALTH_BUCKETS)
                evbuffer_add_printf(b,
                                    "svcmapd_health_probe_duration_seconds_bucket{check=\"%s\","
                                    "le=\"%g\"} %llu\n",
                                    checks[c], health_bucket_le[i], (unsigned long long)cum);
            else
                evbuffer_add_printf(b,
                                    "svcmapd_health_probe_duration_seconds_bucket{check=\"%s\","
                                    "le=\"+Inf\"} %llu\n",
                                    checks[c], (unsigned long long)cum);
        }
        evbuffer_add_printf(b, "svcmapd_health_probe_duration_seconds_sum{check=\"%s\"} %.6f\n",
                            checks[c], (double)load(&st->sum_us[c]) / 1e6);
        evbuffer_add_printf(b, "svcmapd_health_probe_duration_seconds_count{check=\"%s\"} %llu\n",
                            checks[c], (unsigned long long)cum);
    }
}

/* The check of `key` as the mapping writes it, its port always there:
 * "tcp:3306", "http:8080/healthz". Returns what snprintf() does. */
static int check_text(const struct zone_probe_key *key, char *out, size_t cap)
{
    if (key->kind == CONFIG_CHECK_HTTP)
        return snprintf(out, cap, "http:%u%s", key->port, key->path);
    return snprintf(out, cap, "tcp:%u", key->port);
}

/* `ms` since the epoch as RFC 3339 UTC, "2026-11-26T10:13:01Z". */
static const char *utc(uint64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

void health_report_lines(const struct zone *z, void (*put)(void *ctx, const char *line), void *ctx)
{
    size_t n;
    struct zone_checked *const *svc = zone_checked_services(z, &n);
    for (size_t i = 0; i < n; i++) {
        uint64_t answered = zone_checked_answered(svc[i]);
        for (size_t k = 0; k < svc[i]->ntargets; k++) {
            const struct zone_probe *p = svc[i]->t[k].probe;
            char target[64], since[32], error[96], line[320];
            uint32_t err = atomic_load_explicit(&p->error, memory_order_relaxed);
            snprintf(line, sizeof(line), "%s.%s %s %s since %s, %s, last error: %s", svc[i]->name,
                     svc[i]->ns, zone_target_text(svc[i], k, target, sizeof(target)),
                     atomic_load_explicit(&p->up, memory_order_relaxed) ? "up" : "down",
                     utc(load(&p->since), since, sizeof(since)),
                     answered >> k & 1 ? "answered" : "not answered",
                     err ? health_error_text(err, error, sizeof(error)) : "none");
            put(ctx, line);
        }
    }
    if (n == 0)
        put(ctx, "no checked targets");
}

void health_report_json(struct evbuffer *b, const struct zone *z)
{
    size_t n;
    struct zone_checked *const *svc = zone_checked_services(z, &n);
    const struct zone_health *set = zone_health(z);
    char every[24], within[24];
    evbuffer_add_printf(b,
                        "{\"interval\":\"%s\",\"timeout\":\"%s\",\"fall\":%u,\"rise\":%u,"
                        "\"targets\":[",
                        config_msec_text(set->interval, every, sizeof(every)),
                        config_msec_text(set->timeout, within, sizeof(within)), set->fall,
                        set->rise);
    const char *sep = "";
    for (size_t i = 0; i < n; i++) {
        const struct zone_checked *s = svc[i];
        uint64_t answered = zone_checked_answered(s);
        for (size_t k = 0; k < s->ntargets; k++) {
            const struct zone_probe *p = s->t[k].probe;
            char target[64], since[32], error[96], check[300];
            uint32_t err = atomic_load_explicit(&p->error, memory_order_relaxed);
            check_text(&p->key, check, sizeof(check));
            evbuffer_add_printf(
                b,
                "%s\n{\"namespace\":\"%s\",\"service\":\"%s\",\"target\":\"%s\","
                "\"check\":\"%s\",\"policy\":\"%s\",\"up\":%s,\"answered\":%s,"
                "\"since\":\"%s\",\"transitions\":%llu,\"last_error\":",
                sep, s->ns, s->name, zone_target_text(s, k, target, sizeof(target)), check,
                s->policy == CONFIG_POLICY_FAILOVER ? "failover" : "all",
                atomic_load_explicit(&p->up, memory_order_relaxed) ? "true" : "false",
                answered >> k & 1 ? "true" : "false", utc(load(&p->since), since, sizeof(since)),
                (unsigned long long)load(&p->transitions));
            if (err)
                evbuffer_add_printf(b, "\"%s\"}", health_error_text(err, error, sizeof(error)));
            else
                evbuffer_add_printf(b, "null}");
            sep = ",";
        }
    }
    evbuffer_add_printf(b, "\n]}\n");
}

/* ---------------------------------------------------------------------- */
/* The state handed to the next svcmapd (health.h).                       */

#define FACT_MAX   HANDOVER_LINE_MAX /* no line of a hand-over is longer */
#define FACT_SAID  8                 /* rejected facts logged one by one; then counted */
#define AHEAD_MS   86400000ULL       /* a SINCE later than a day from now is not believed */
#define STREAK_MAX 100               /* fall and rise are at most this (config_options.c) */

void health_report_facts(const struct zone *z, void (*put)(void *ctx, const char *line), void *ctx)
{
    size_t n;
    const struct zone_probe *p = zone_probes(z, &n);
    for (size_t i = 0; i < n; i++) {
        char addr[INET6_ADDRSTRLEN], check[FACT_MAX], line[FACT_MAX];
        inet_ntop(p[i].key.family, p[i].key.addr, addr, sizeof(addr));
        if (check_text(&p[i].key, check, sizeof(check)) >= (int)sizeof(check))
            continue; /* cut, it would name another probe: it starts cold */
        int len = snprintf(line, sizeof(line), "health %s %s %s %llu %llu %u %u", addr, check,
                           atomic_load_explicit(&p[i].up, memory_order_relaxed) ? "up" : "down",
                           (unsigned long long)load(&p[i].since),
                           (unsigned long long)load(&p[i].transitions),
                           (unsigned)atomic_load_explicit(&p[i].streak, memory_order_relaxed),
                           atomic_load_explicit(&p[i].error, memory_order_relaxed));
        if (len < (int)sizeof(line))
            put(ctx, line);
    }
}

void health_seed_init(struct health_seed *s, const struct zone *z)
{
    size_t n;
    zone_probes(z, &n);
    *s = (struct health_seed){.z = z, .seen = calloc(n / 8 + 1, 1)};
    if (!s->seen)
        log_error("replace: out of memory: the checked targets start up, as at a cold start");
}

/* `len` decimal digits at `d`, at most `max`, into *v: as the facts are
 * written (%u), so without a leading zero; "05432" is no port of ours. */
static bool decimal(const char *d, size_t len, uint64_t max, uint64_t *v)
{
    *v = 0;
    if (len == 0 || len > 20 || (len > 1 && d[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned)(d[i] - '0');
        if (digit > 9 || *v > (max - digit) / 10)
            return false;
        *v = *v * 10 + digit;
    }
    return true;
}

static bool field(const char *f, uint64_t max, uint64_t *v)
{
    return decimal(f, strlen(f), max, v);
}

/* CHECK ("tcp:3306", "http:8080/healthz") into `key`; the path stays in
 * `check` (printable ASCII by then). NULL, or why not. */
static const char *read_check(const char *check, struct zone_probe_key *key)
{
    const char *colon = strchr(check, ':');
    size_t kind = colon ? (size_t)(colon - check) : 0;
    const char *slash = colon ? strchr(colon, '/') : NULL;
    const char *end = slash ? slash : colon ? colon + strlen(colon) : NULL;
    uint64_t port;
    if (kind == 3 && memcmp(check, "tcp", 3) == 0 && !slash)
        key->kind = CONFIG_CHECK_TCP;
    else if (kind == 4 && memcmp(check, "http", 4) == 0 && slash)
        key->kind = CONFIG_CHECK_HTTP;
    else
        return "CHECK is not tcp:PORT or http:PORT/PATH";
    if (!decimal(colon + 1, (size_t)(end - colon - 1), UINT16_MAX, &port) || port == 0)
        return "not a port in CHECK";
    key->port = (uint16_t)port;
    key->path = slash;
    return NULL;
}

/* The state of one probe, as a fact gives it. */
struct seed_state {
    bool up;
    uint64_t since, transitions, streak, error;
};

/* The fields of a `health` fact, split at single spaces in `line`, into
 * `key` and `st`. NULL, or why not. */
static const char *read_fact(char *line, struct zone_probe_key *key, struct seed_state *st)
{
    for (const char *c = line; *c; c++) {
        if (*c < ' ' || *c > '~')
            return "a byte that is not printable ASCII";
        if (*c == ' ' && (c == line || c[1] == ' ' || c[1] == '\0'))
            return "not fields separated by one space";
    }
    char *f[8];
    size_t n = 0;
    for (char *p = line; p && n < 8; n++) {
        f[n] = p;
        p = strchr(p, ' ');
        if (p)
            *p++ = '\0';
    }
    if (n < 8)
        return "a field missing";
    memset(key, 0, sizeof(*key));
    key->family = strchr(f[1], ':') ? AF_INET6 : AF_INET;
    if (inet_pton(key->family, f[1], key->addr) != 1)
        return "ADDRESS is not an address";
    const char *why = read_check(f[2], key);
    if (why)
        return why;
    st->up = strcmp(f[3], "up") == 0;
    if (!st->up && strcmp(f[3], "down") != 0)
        return "STATE is neither up nor down";
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (!field(f[4], (uint64_t)now.tv_sec * 1000 + AHEAD_MS, &st->since))
        return "SINCE is not a time in ms, a day ahead at most";
    if (!field(f[5], UINT64_MAX, &st->transitions))
        return "TRANSITIONS is not a count";
    if (!field(f[6], STREAK_MAX, &st->streak))
        return "STREAK is not a count up to 100";
    if (!field(f[7], UINT32_MAX, &st->error) || !health_error_valid((uint32_t)st->error))
        return "ERROR is not a failure a probe records";
    return NULL;
}

/* `s` for a log line: printable ASCII, 100 characters at most. */
static const char *printable(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap && i < 100; i++)
        out[i] = s[i] >= ' ' && s[i] <= '~' ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/* Puts `st` into probe `p` of the zone, not served yet. */
static void seed_probe(struct health_seed *s, struct zone_probe *p, const struct seed_state *st)
{
    const struct zone_health *set = zone_health(s->z);
    uint64_t most = (st->up ? set->fall : set->rise) - 1; /* one more result turns it */
    atomic_store_explicit(&p->up, st->up, memory_order_relaxed);
    atomic_store_explicit(&p->streak, (uint8_t)(st->streak < most ? st->streak : most),
                          memory_order_relaxed);
    atomic_store_explicit(&p->error, (uint32_t)st->error, memory_order_relaxed);
    atomic_store_explicit(&p->since, st->since, memory_order_relaxed);
    atomic_store_explicit(&p->transitions, st->transitions, memory_order_relaxed);
    s->taken++;
    s->down += !st->up;
}

bool health_seed_fact(void *seed, const char *fact)
{
    struct health_seed *s = seed;
    if (strncmp(fact, "health ", 7) != 0)
        return false;
    s->facts++;
    char line[FACT_MAX], shown[128];
    struct zone_probe_key key;
    struct seed_state st;
    const char *why = strlen(fact) >= sizeof(line) ? "too long" : NULL;
    if (!why) {
        memcpy(line, fact, strlen(fact) + 1);
        why = read_fact(line, &key, &st);
    }
    struct zone_probe *p = why ? NULL : zone_probe_find(s->z, &key);
    size_t n;
    if (p && s->seen) {
        size_t i = (size_t)(p - zone_probes(s->z, &n));
        if (s->seen[i / 8] >> (i % 8) & 1)
            why = "a second fact for one target";
        else
            s->seen[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    if (why) {
        if (s->rejected++ < FACT_SAID)
            log_warning("replace: a health fact rejected, nothing changed by it (%s): %s", why,
                        printable(fact, shown, sizeof(shown)));
        return true;
    }
    if (!p)
        s->gone++; /* not in the mapping any more */
    else if (s->seen)
        seed_probe(s, p, &st);
    return true;
}

void health_seed_finish(struct health_seed *s, bool done)
{
    size_t n;
    zone_probes(s->z, &n);
    free(s->seen);
    s->seen = NULL;
    if (!done)
        return; /* the zone is not served */
    zone_checked_refresh(s->z);
    if (n == 0 && s->facts == 0)
        return;
    char cold[160] = "", gone[96] = "", rejected[64] = "";
    if (s->taken < n)
        snprintf(cold, sizeof(cold), "; %zu start%s up, as at a cold start: %s", n - s->taken,
                 n - s->taken == 1 ? "s" : "",
                 s->facts ? "new in the mapping, or their facts were rejected"
                          : "the old svcmapd offered no health state");
    if (s->gone)
        snprintf(gone, sizeof(gone), "; %zu offered for targets no longer in the mapping, ignored",
                 s->gone);
    if (s->rejected > FACT_SAID)
        snprintf(rejected, sizeof(rejected), "; %zu facts rejected in all", s->rejected);
    log_msg(s->taken < n || s->rejected ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO,
            "replace: the health state of %zu of %zu checked targets carried over (%zu down)%s%s%s",
            s->taken, n, s->down, cold, gone, rejected);
}
