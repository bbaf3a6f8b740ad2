/* metrics_render.c -- /metrics: the workers' counters summed, in Prometheus's text format. */
#include "svcmapd/metrics_render.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-build.h"
#include "svcmapd/control.h"
#include "svcmapd/health.h"
#include "svcmapd/metrics.h"
#include "svcmapd/reload.h"
#include "svcmapd/server.h"
#include "svcmapd/state.h"
#include "svcmapd/upstream.h"
#include "svcmapd/zone.h"

/*
 * Counting is the workers' (metrics.c), per worker and without a lock;
 * rendering is the main thread's, when /metrics is asked for: the
 * workers' counters are read with relaxed loads and summed here, so
 * counting costs the answer path nothing more than the increments.
 */

static void label_esc(struct evbuffer *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add(b, "\\", 1);
        if (*s == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, s, 1);
    }
}

static uint64_t load(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels server, zone and view of a cell. */
static void cell_labels(struct evbuffer *b, const char *server, const char *zone)
{
    evbuffer_add_printf(b, "server=\"dns://");
    label_esc(b, server);
    evbuffer_add_printf(b, "\",zone=\"");
    label_esc(b, zone);
    evbuffer_add_printf(b, "\",view=\"\"");
}

/* Sums cell `c` over the workers. */
static void sum_cell(const struct server *srv, size_t c, struct metrics_cell *out)
{
    memset(out, 0, sizeof(*out));
    _Atomic uint64_t *dst = (_Atomic uint64_t *)out;
    size_t n = sizeof(*out) / sizeof(_Atomic uint64_t);
    for (size_t k = 0; k < server_workers(srv); k++) {
        const _Atomic uint64_t *src = (const _Atomic uint64_t *)&server_metrics(srv, k)->cells[c];
        for (size_t i = 0; i < n; i++)
            atomic_store_explicit(&dst[i], load(&dst[i]) + load(&src[i]), memory_order_relaxed);
    }
}

static void histogram(struct evbuffer *b, const char *name, const char *server, const char *zone,
                      const char *proto, const _Atomic uint64_t *buckets, const double *le,
                      size_t nle, double sum)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= nle; i++)
        total += load(&buckets[i]);
    if (total == 0)
        return;
    uint64_t cum = 0;
    for (size_t i = 0; i <= nle; i++) {
        cum += load(&buckets[i]);
        evbuffer_add_printf(b, "%s_bucket{", name);
        cell_labels(b, server, zone);
        if (proto)
            evbuffer_add_printf(b, ",proto=\"%s\"", proto);
        if (i < nle)
            evbuffer_add_printf(b, ",le=\"%g\"} %llu\n", le[i], (unsigned long long)cum);
        else
            evbuffer_add_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    const char *suffix[2] = {"sum", "count"};
    for (int k = 0; k < 2; k++) {
        evbuffer_add_printf(b, "%s_%s{", name, suffix[k]);
        cell_labels(b, server, zone);
        if (proto)
            evbuffer_add_printf(b, ",proto=\"%s\"", proto);
        if (k == 0)
            evbuffer_add_printf(b, "} %.9g\n", sum);
        else
            evbuffer_add_printf(b, "} %llu\n", (unsigned long long)total);
    }
}

static const char *const protos[2] = {"udp", "tcp"};

/* The counters of every listen address and side of the zone, summed over
 * the workers: cell c is listen[c / 2]'s, inside the zone for an even c,
 * outside it for an odd one (the `zone` label: the zone, or "dropped"). */
struct cells {
    struct metrics_cell *cell;
    size_t n;
    const struct config_addr *listen;
    const char *zone[2];
};

/* coredns_dns_requests_total and coredns_dns_responses_total. */
static void render_counts(struct evbuffer *b, const struct cells *d)
{
    head(b, "coredns_dns_requests_total", "counter",
         "Counter of DNS requests made per zone, protocol and family.");
    for (size_t c = 0; c < d->n; c++)
        for (int t = 0; t < 2; t++)
            for (int f = 0; f < 2; f++)
                for (size_t q = 0; q < METRICS_TYPES; q++) {
                    uint64_t v = load(&d->cell[c].requests[t][f][q]);
                    if (!v)
                        continue;
                    evbuffer_add_printf(b, "coredns_dns_requests_total{");
                    cell_labels(b, d->listen[c / 2].text, d->zone[c % 2]);
                    evbuffer_add_printf(b, ",proto=\"%s\",family=\"%d\",type=\"%s\"} %llu\n",
                                        protos[t], f + 1, metrics_type_name(q),
                                        (unsigned long long)v);
                }

    head(b, "coredns_dns_responses_total", "counter", "Counter of response status codes.");
    for (size_t c = 0; c < d->n; c++)
        for (size_t r = 0; r < METRICS_RCODES; r++) {
            uint64_t v = load(&d->cell[c].responses[r]);
            if (!v)
                continue;
            evbuffer_add_printf(b, "coredns_dns_responses_total{");
            cell_labels(b, d->listen[c / 2].text, d->zone[c % 2]);
            evbuffer_add_printf(b, ",rcode=\"%s\",plugin=\"%s\"} %llu\n", metrics_rcode_name(r),
                                c % 2 ? "" : "svcmapd", (unsigned long long)v);
        }
}

/* coredns_dns_request_size_bytes, or (`response`) _response_size_bytes. */
static void render_sizes(struct evbuffer *b, const struct cells *d, bool response)
{
    const char *name =
        response ? "coredns_dns_response_size_bytes" : "coredns_dns_request_size_bytes";
    head(b, name, "histogram",
         response ? "Size of the returned response in bytes."
                  : "Size of the EDNS0 UDP buffer in bytes (64K for TCP).");
    for (size_t c = 0; c < d->n; c++) {
        const struct metrics_cell *x = &d->cell[c];
        for (int t = 0; t < 2; t++)
            histogram(b, name, d->listen[c / 2].text, d->zone[c % 2], protos[t],
                      response ? x->resp_size[t] : x->req_size[t], metrics_size_le,
                      METRICS_SIZE_BUCKETS,
                      (double)load(response ? &x->resp_bytes[t] : &x->req_bytes[t]));
    }
}

/* The coredns_dns_* families, for the zone named `zone`. */
static void render_dns(struct evbuffer *b, const struct server *srv, const char *zone)
{
    struct cells d = {.zone = {zone, "dropped"}};
    size_t nlisten;
    d.listen = server_listen(srv, &nlisten);
    d.n = 2 * nlisten;
    d.cell = calloc(d.n, sizeof(*d.cell));
    if (!d.cell)
        return;
    for (size_t c = 0; c < d.n; c++)
        sum_cell(srv, c, &d.cell[c]);
    render_counts(b, &d);
    head(b, "coredns_dns_request_duration_seconds", "histogram",
         "Histogram of the time (in seconds) each request took.");
    for (size_t c = 0; c < d.n; c++)
        histogram(b, "coredns_dns_request_duration_seconds", d.listen[c / 2].text, d.zone[c % 2],
                  NULL, d.cell[c].duration, metrics_duration_le, METRICS_DURATION_BUCKETS,
                  (double)load(&d.cell[c].duration_ns) / 1e9);
    render_sizes(b, &d, false);
    render_sizes(b, &d, true);
    free(d.cell);
}

/* Reloads of the mapping file, and the zone they left. */
static void render_reloads(struct evbuffer *b, const struct reload_stats *rs,
                           const struct zone_stats *st)
{
    head(b, "svcmapd_reloads_total", "counter", "Reloads of the mapping file, by result.");
    evbuffer_add_printf(b, "svcmapd_reloads_total{result=\"ok\"} %llu\n",
                        (unsigned long long)rs->ok);
    evbuffer_add_printf(b, "svcmapd_reloads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)rs->failed);
    evbuffer_add_printf(b, "svcmapd_reloads_total{result=\"held\"} %llu\n",
                        (unsigned long long)rs->held);
    head(b, "svcmapd_config_read_failures_total", "counter",
         "Times `reload =` found the mapping file unreadable.");
    evbuffer_add_printf(b, "svcmapd_config_read_failures_total %llu\n",
                        (unsigned long long)rs->read_failures);
    head(b, "svcmapd_config_unreadable", "gauge", "1 while `reload =` cannot read the file.");
    evbuffer_add_printf(b, "svcmapd_config_unreadable %d\n", rs->read_failing ? 1 : 0);
    head(b, "svcmapd_last_reload_success_timestamp_seconds", "gauge",
         "Unix time of the last successful load of the mapping file.");
    evbuffer_add_printf(b, "svcmapd_last_reload_success_timestamp_seconds %lld\n",
                        (long long)rs->last_ok);
    head(b, "svcmapd_zone_serial", "gauge", "SOA serial of the zone served.");
    evbuffer_add_printf(b, "svcmapd_zone_serial %u\n", st->serial);
    head(b, "svcmapd_services", "gauge", "Services in the mapping served.");
    evbuffer_add_printf(b, "svcmapd_services %zu\n", st->services);
    head(b, "svcmapd_records", "gauge", "Resource records in the zone served.");
    evbuffer_add_printf(b, "svcmapd_records %zu\n", st->records);
}

/* The upstream cache and lookups, summed over the workers. */
static void render_upstream(struct evbuffer *b, const struct server *srv)
{
    static const struct {
        const char *name, *help;
        size_t offset;
    } up[] = {
        {"svcmapd_upstream_cache_hits_total", "Answers to hostname targets from the cache.",
         offsetof(struct upstream_stats, hits)},
        {"svcmapd_upstream_cache_misses_total", "Queries that waited for an upstream lookup.",
         offsetof(struct upstream_stats, misses)},
        {"svcmapd_upstream_failures_total", "Upstream lookups that got no usable answer.",
         offsetof(struct upstream_stats, failures)},
        {"svcmapd_upstream_stale_answers_total", "Answers with expired records (RFC 8767).",
         offsetof(struct upstream_stats, stale)},
        {"svcmapd_upstream_queries_total", "Queries sent to upstream servers.",
         offsetof(struct upstream_stats, lookups)},
    };
    for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++) {
        uint64_t v = 0;
        for (size_t k = 0; k < server_workers(srv); k++)
            v += load((const _Atomic uint64_t *)(const void *)((const char *)server_upstream_stats(
                                                                   srv, k) +
                                                               up[i].offset));
        head(b, up[i].name, "counter", up[i].help);
        evbuffer_add_printf(b, "%s %llu\n", up[i].name, (unsigned long long)v);
    }
}

/* Connections: DNS over TCP, and HTTP. */
static void render_connections(struct evbuffer *b, const struct metrics_sources *src)
{
    const struct server *srv = src->srv;
    const struct metrics_http *http = &src->http;
    uint64_t refused = 0, accept_errors = 0;
    for (size_t k = 0; k < server_workers(srv); k++) {
        refused += load(&server_metrics(srv, k)->tcp_refused);
        accept_errors += load(&server_metrics(srv, k)->tcp_accept_errors);
    }
    head(b, "svcmapd_tcp_connections", "gauge", "TCP connections open.");
    evbuffer_add_printf(b, "svcmapd_tcp_connections %u\n", server_tcp_open(srv));
    head(b, "svcmapd_tcp_connections_refused_total", "counter",
         "TCP connections closed at once at tcp-max-connections.");
    evbuffer_add_printf(b, "svcmapd_tcp_connections_refused_total %llu\n",
                        (unsigned long long)refused);

    head(b, "svcmapd_accept_errors_total", "counter",
         "Failed accept() calls, by listener; each pauses that listener for a while.");
    evbuffer_add_printf(b, "svcmapd_accept_errors_total{listener=\"dns\"} %llu\n",
                        (unsigned long long)accept_errors);
    evbuffer_add_printf(b, "svcmapd_accept_errors_total{listener=\"http\"} %llu\n",
                        (unsigned long long)http->accept_errors);
    if (src->control)
        evbuffer_add_printf(b, "svcmapd_accept_errors_total{listener=\"control\"} %llu\n",
                            (unsigned long long)load(&control_stats(src->control)->accept_errors));
    head(b, "svcmapd_http_connections", "gauge", "HTTP connections open.");
    evbuffer_add_printf(b, "svcmapd_http_connections %zu\n", http->connections);
    head(b, "svcmapd_http_refused_total", "counter",
         "HTTP requests and connections refused, by reason.");
    for (size_t r = 0; r < http->nreasons; r++)
        evbuffer_add_printf(b, "svcmapd_http_refused_total{reason=\"%s\"} %llu\n", http->reasons[r],
                            (unsigned long long)http->refused[r]);
}

/* The last good copy (SPEC §7) and the control socket. */
static void render_restart(struct evbuffer *b, const struct metrics_sources *src)
{
    head(b, "svcmapd_config_last_good_in_use", "gauge",
         "1 while the state-dir's last good copy is served because the mapping file is broken.");
    evbuffer_add_printf(b, "svcmapd_config_last_good_in_use %d\n", src->reload->last_good ? 1 : 0);
    if (src->state) {
        head(b, "svcmapd_config_last_good_write_failures_total", "counter",
             "Last good copies that could not be written to the state-dir.");
        evbuffer_add_printf(b, "svcmapd_config_last_good_write_failures_total %llu\n",
                            (unsigned long long)state_stats(src->state)->failures);
    }
    if (!src->control)
        return;
    const struct control_stats *cs = control_stats(src->control);
    head(b, "svcmapd_control_commands_total", "counter", "Control socket commands, by command.");
    for (size_t i = 0; i < CONTROL_COMMANDS; i++)
        evbuffer_add_printf(b, "svcmapd_control_commands_total{command=\"%s\"} %llu\n",
                            control_command_names[i], (unsigned long long)cs->commands[i]);
    head(b, "svcmapd_control_refused_total", "counter",
         "Control socket clients refused, by reason.");
    for (size_t i = 0; i < CONTROL_REFUSALS; i++)
        evbuffer_add_printf(b, "svcmapd_control_refused_total{reason=\"%s\"} %llu\n",
                            control_refusal_names[i], (unsigned long long)cs->refused[i]);
}

void metrics_render(struct evbuffer *b, const struct metrics_sources *src)
{
    char zone[260];
    snprintf(zone, sizeof(zone), "%s.", zone_name(src->zone));

    head(b, "coredns_build_info", "gauge",
         "A metric with a constant '1' value labeled by version, "
         "revision, and goversion from which CoreDNS was "
         "built.");
    evbuffer_add_printf(b,
                        "coredns_build_info{version=\"svcmapd-%s\",revision=\"\",goversion=\"\"} "
                        "1\n",
                        SVCMAPD_VERSION);
    render_dns(b, src->srv, zone);
    render_reloads(b, src->reload, zone_stats(src->zone));
    render_upstream(b, src->srv);
    render_connections(b, src);
    render_restart(b, src);
    health_report_metrics(b, src->zone, health_stats(src->health));
}
