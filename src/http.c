/* http.c -- /health, /ready and /metrics over HTTP, as CoreDNS serves them. */
#include "svcmapd/http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config-build.h"
#include "svcmapd/log.h"
#include "svcmapd/metrics.h"
#include "svcmapd/reload.h"
#include "svcmapd/server.h"
#include "svcmapd/upstream.h"
#include "svcmapd/zone.h"
#include "svcmapd/zone_ref.h"

/*
 * CoreDNS's conventions, which probes and dashboards already expect:
 * /health answers 200 "OK" as long as the process runs (and through the
 * lameduck period); /ready answers 200 "OK" once the mapping is loaded and
 * the sockets are bound, 503 before and after SIGTERM; /metrics is the
 * Prometheus text format with CoreDNS's metric names and labels.
 *
 * All of it runs in the main thread; the workers' counters are read with
 * relaxed loads (metrics.h) and summed here, so counting costs the answer
 * path nothing more than the increments.
 */

struct http;

struct endpoint {
    struct http *h;
    struct evhttp *http;
    bool health, ready, metrics;
    char text[64];
};

struct http {
    struct event_base *base;
    struct endpoint eps[3]; /* one evhttp per distinct address */
    size_t neps;
    bool ready;
    char why[64];
    struct server *srv;
    struct zone_ref *zones;
    struct reloader *reloader;
};

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(b, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

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

static void render_dns(struct http *h, struct evbuffer *b, const char *zone)
{
    size_t nlisten;
    const struct config_listen *listen = server_listen(h->srv, &nlisten);
    struct metrics_cell *cells = calloc(2 * nlisten, sizeof(*cells));
    if (!cells)
        return;
    for (size_t c = 0; c < 2 * nlisten; c++)
        sum_cell(h->srv, c, &cells[c]);
    const char *zones[2] = {zone, "dropped"};
    const char *protos[2] = {"udp", "tcp"};

    head(b, "coredns_dns_requests_total", "counter",
         "Counter of DNS requests made per zone, protocol and family.");
    for (size_t c = 0; c < 2 * nlisten; c++)
        for (int t = 0; t < 2; t++)
            for (int f = 0; f < 2; f++)
                for (size_t q = 0; q < METRICS_TYPES; q++) {
                    uint64_t v = load(&cells[c].requests[t][f][q]);
                    if (!v)
                        continue;
                    evbuffer_add_printf(b, "coredns_dns_requests_total{");
                    cell_labels(b, listen[c / 2].text, zones[c % 2]);
                    evbuffer_add_printf(b, ",proto=\"%s\",family=\"%d\",type=\"%s\"} %llu\n",
                                        protos[t], f + 1, metrics_type_name(q),
                                        (unsigned long long)v);
                }

    head(b, "coredns_dns_responses_total", "counter", "Counter of response status codes.");
    for (size_t c = 0; c < 2 * nlisten; c++)
        for (size_t r = 0; r < METRICS_RCODES; r++) {
            uint64_t v = load(&cells[c].responses[r]);
            if (!v)
                continue;
            evbuffer_add_printf(b, "coredns_dns_responses_total{");
            cell_labels(b, listen[c / 2].text, zones[c % 2]);
            evbuffer_add_printf(b, ",rcode=\"%s\",plugin=\"%s\"} %llu\n", metrics_rcode_name(r),
                                c % 2 ? "" : "svcmapd", (unsigned long long)v);
        }

    head(b, "coredns_dns_request_duration_seconds", "histogram",
         "Histogram of the time (in seconds) each request took.");
    for (size_t c = 0; c < 2 * nlisten; c++)
        histogram(b, "coredns_dns_request_duration_seconds", listen[c / 2].text, zones[c % 2], NULL,
                  cells[c].duration, metrics_duration_le, METRICS_DURATION_BUCKETS,
                  (double)load(&cells[c].duration_ns) / 1e9);

    head(b, "coredns_dns_request_size_bytes", "histogram",
         "Size of the EDNS0 UDP buffer in "
         "bytes (64K for TCP).");
    for (size_t c = 0; c < 2 * nlisten; c++)
        for (int t = 0; t < 2; t++)
            histogram(b, "coredns_dns_request_size_bytes", listen[c / 2].text, zones[c % 2],
                      protos[t], cells[c].req_size[t], metrics_size_le, METRICS_SIZE_BUCKETS,
                      (double)load(&cells[c].req_bytes[t]));

    head(b, "coredns_dns_response_size_bytes", "histogram",
         "Size of the returned response in "
         "bytes.");
    for (size_t c = 0; c < 2 * nlisten; c++)
        for (int t = 0; t < 2; t++)
            histogram(b, "coredns_dns_response_size_bytes", listen[c / 2].text, zones[c % 2],
                      protos[t], cells[c].resp_size[t], metrics_size_le, METRICS_SIZE_BUCKETS,
                      (double)load(&cells[c].resp_bytes[t]));
    free(cells);
}

static void render(struct http *h, struct evbuffer *b)
{
    const struct zone *z = zone_ref_current(h->zones);
    const struct zone_stats *st = zone_stats(z);
    char zone[260];
    snprintf(zone, sizeof(zone), "%s.", zone_name(z));

    head(b, "coredns_build_info", "gauge",
         "A metric with a constant '1' value labeled by version, "
         "revision, and goversion from which CoreDNS was "
         "built.");
    evbuffer_add_printf(b,
                        "coredns_build_info{version=\"svcmapd-%s\",revision=\"\",goversion=\"\"} "
                        "1\n",
                        SVCMAPD_VERSION);
    render_dns(h, b, zone);

    const struct reload_stats *rs = reload_stats(h->reloader);
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

    struct {
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
        for (size_t k = 0; k < server_workers(h->srv); k++)
            v += load((const _Atomic uint64_t *)(const void *)((const char *)server_upstream_stats(
                                                                   h->srv, k) +
                                                               up[i].offset));
        head(b, up[i].name, "counter", up[i].help);
        evbuffer_add_printf(b, "%s %llu\n", up[i].name, (unsigned long long)v);
    }

    uint64_t refused = 0;
    for (size_t k = 0; k < server_workers(h->srv); k++)
        refused += load(&server_metrics(h->srv, k)->tcp_refused);
    head(b, "svcmapd_tcp_connections", "gauge", "TCP connections open.");
    evbuffer_add_printf(b, "svcmapd_tcp_connections %u\n", server_tcp_open(h->srv));
    head(b, "svcmapd_tcp_connections_refused_total", "counter",
         "TCP connections closed at once at tcp-max-connections.");
    evbuffer_add_printf(b, "svcmapd_tcp_connections_refused_total %llu\n",
                        (unsigned long long)refused);

    uint64_t accept_errors = 0;
    for (size_t k = 0; k < server_workers(h->srv); k++)
        accept_errors += load(&server_metrics(h->srv, k)->tcp_accept_errors);
    head(b, "svcmapd_accept_errors_total", "counter",
         "Failed accept() calls, by listener; each pauses that listener for a while.");
    evbuffer_add_printf(b, "svcmapd_accept_errors_total{listener=\"dns\"} %llu\n",
                        (unsigned long long)accept_errors);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct endpoint *ep = arg;
    struct http *h = ep->h;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path)
        path = "";

    if (ep->health && strcmp(path, "/health") == 0) {
        reply_text(req, 200, "OK", "OK");
    } else if (ep->ready && strcmp(path, "/ready") == 0) {
        if (h->ready)
            reply_text(req, 200, "OK", "OK");
        else
            reply_text(req, 503, "Service Unavailable", h->why);
    } else if (ep->metrics && strcmp(path, "/metrics") == 0) {
        if (!h->srv || !h->zones || !h->reloader) {
            reply_text(req, 503, "Service Unavailable", "starting\n");
            return;
        }
        struct evbuffer *b = evbuffer_new();
        if (!b) {
            evhttp_send_error(req, 500, NULL);
            return;
        }
        render(h, b);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else {
        reply_text(req, 404, "Not Found", "404 page not found\n");
    }
}

struct http *http_new(struct event_base *base, const struct config *cfg)
{
    struct http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base = base;
    snprintf(h->why, sizeof(h->why), "svcmapd: starting\n");

    for (int i = 0; i < 3; i++) {
        if (!cfg->http_on[i])
            continue;
        const struct config_listen *l = &cfg->http[i];
        struct endpoint *ep = NULL;
        for (size_t k = 0; k < h->neps && !ep; k++)
            if (strcmp(h->eps[k].text, l->text) == 0)
                ep = &h->eps[k];
        if (!ep) {
            ep = &h->eps[h->neps++];
            ep->h = h;
            snprintf(ep->text, sizeof(ep->text), "%s", l->text);
            ep->http = evhttp_new(base);
            int fd = -1;
            if (ep->http) {
                fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                int on = 1;
                if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
                                bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 ||
                                listen(fd, 128) < 0)) {
                    close(fd);
                    fd = -1;
                }
            }
            if (fd < 0 || !evhttp_accept_socket_with_handle(ep->http, fd)) {
                log_error("cannot listen on %s (http): %s", l->text, strerror(errno));
                if (fd >= 0)
                    close(fd);
                http_free(h);
                return NULL;
            }
            evhttp_set_allowed_methods(ep->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
            evhttp_set_timeout(ep->http, 10);
            evhttp_set_gencb(ep->http, on_request, ep);
        }
        ep->health |= i == CONFIG_HTTP_HEALTH_EP;
        ep->ready |= i == CONFIG_HTTP_READY_EP;
        ep->metrics |= i == CONFIG_HTTP_METRICS_EP;
        log_info("http: %s%s%s on %s", i == CONFIG_HTTP_HEALTH_EP ? "/health" : "",
                 i == CONFIG_HTTP_READY_EP ? "/ready" : "",
                 i == CONFIG_HTTP_METRICS_EP ? "/metrics" : "", l->text);
    }
    return h;
}

void http_set_sources(struct http *h, struct server *srv, struct zone_ref *zones,
                      struct reloader *reloader)
{
    h->srv = srv;
    h->zones = zones;
    h->reloader = reloader;
}

void http_set_ready(struct http *h, bool ready, const char *why)
{
    h->ready = ready;
    snprintf(h->why, sizeof(h->why), "svcmapd: %s\n", why ? why : "not ready");
}

void http_free(struct http *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->neps; i++)
        evhttp_free(h->eps[i].http);
    free(h);
}
