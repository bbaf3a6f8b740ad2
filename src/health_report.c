/* health_report.c -- what the prober found, as /metrics and /health/targets show it. */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "svcmapd/health.h"
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
            if (p->key.kind == CONFIG_CHECK_HTTP)
                snprintf(check, sizeof(check), "http:%u%s", p->key.port, p->key.path);
            else
                snprintf(check, sizeof(check), "tcp:%u", p->key.port);
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
