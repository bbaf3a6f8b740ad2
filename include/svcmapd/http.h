/* http.h -- /health, /ready and /metrics over HTTP, as CoreDNS serves them. */
#ifndef SVCMAPD_HTTP_H
#define SVCMAPD_HTTP_H

#include <stdbool.h>

#include "svcmapd/config.h"

struct event_base;
struct http;
struct reloader;
struct server;
struct zone_ref;

/* Starts the endpoints `cfg` turns on ([http] health, ready, metrics) on
 * `base`, in the main thread. /ready answers 503 until http_set_ready().
 * Logs and returns NULL if an address cannot be bound; returns a struct
 * that serves nothing when no endpoint is on. */
struct http *http_new(struct event_base *base, const struct config *cfg);

/* Where /metrics reads from, once they exist. */
void http_set_sources(struct http *h, struct server *srv, struct zone_ref *zones,
                      struct reloader *reloader);

/* /ready: 200 when true; 503 with `why` in the body when false. */
void http_set_ready(struct http *h, bool ready, const char *why);

/* Stops listening and frees. NULL is a no-op. */
void http_free(struct http *h);

#endif
