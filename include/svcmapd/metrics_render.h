/* metrics_render.h -- /metrics: the workers' counters summed, in Prometheus's text format. */
#ifndef SVCMAPD_METRICS_RENDER_H
#define SVCMAPD_METRICS_RENDER_H

#include <stddef.h>
#include <stdint.h>

struct control;
struct evbuffer;
struct health;
struct reload_stats;
struct state;
struct server;
struct zone;

/* The HTTP server's own counters (http.c): it renders nothing itself. */
struct metrics_http {
    uint64_t accept_errors;
    size_t connections;
    const uint64_t *refused;    /* by reason, `nreasons` of them */
    const char *const *reasons; /* their `reason` labels */
    size_t nreasons;
};

/* What /metrics shows, from where it lives. */
struct metrics_sources {
    const struct server *srv;          /* the workers' counters, TCP, the listen addresses */
    const struct zone *zone;           /* the zone served: its name and sizes */
    const struct reload_stats *reload; /* reloads of the mapping file */
    struct metrics_http http;
    const struct control *control; /* the control socket; NULL: none */
    const struct state *state;     /* the state-dir's last good copy; NULL: none */
    const struct health *health;   /* the prober: probe durations; NULL: none */
};

/*
 * Appends the Prometheus text format (version 0.0.4) of everything `src`
 * counts to `out`: CoreDNS's coredns_dns_* families with its metric names
 * and labels (metrics.h), so that existing dashboards work, then
 * svcmapd's own. Reads the workers' counters with relaxed loads: the
 * main thread, any time after server_start().
 */
void metrics_render(struct evbuffer *out, const struct metrics_sources *src);

#endif
