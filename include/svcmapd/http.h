/* http.h -- /health, /ready and /metrics over HTTP, as CoreDNS serves them. */
#ifndef SVCMAPD_HTTP_H
#define SVCMAPD_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "svcmapd/config.h"

struct control;
struct dnsnotify;
struct event_base;
struct health;
struct http;
struct inherit;
struct state;
struct reloader;
struct server;
struct zone_ref;

/* HTTP connections open at once, over all endpoints; a new one past it
 * closes the oldest. */
#define HTTP_MAX_CONNECTIONS 64

/* The file descriptors the endpoints `cfg` turns on hold at most: their
 * listening sockets and HTTP_MAX_CONNECTIONS. */
size_t http_fds(const struct config *cfg);

/* Starts the endpoints `cfg` turns on ([http] health, ready, metrics) on
 * `base`, in the main thread, each on the listening socket `given` has
 * for its address (inherit.h; NULL: none), taken out of it, or on one
 * bound here. /ready answers 503 until http_set_ready(). Logs and returns
 * NULL if an address cannot be bound; returns a struct that serves
 * nothing when no endpoint is on. */
struct http *http_new(struct event_base *base, const struct config *cfg, struct inherit *given);

/* Each listening socket, for a hand-over: put(arg, fd, "http ADDRESS"). */
void http_listening(const struct http *h, void (*put)(void *arg, int fd, const char *label),
                    void *arg);

/* Where /metrics reads from, once they exist. */
void http_set_sources(struct http *h, struct server *srv, struct zone_ref *zones,
                      struct reloader *reloader);

/* And, for svcmapd_control_* and svcmapd_config_last_good_*, the control
 * socket and the state-dir (either may be NULL: not configured). */
void http_set_control_state(struct http *h, const struct control *control,
                            const struct state *state);
/* The prober, whose probe durations /metrics shows. */
void http_set_health(struct http *h, const struct health *health);

/* And, for svcmapd_notify_*, the NOTIFYs to the secondaries (NULL: none). */
void http_set_notify(struct http *h, const struct dnsnotify *notify);

/* /ready: 200 when true; 503 with `why` in the body when false. */
void http_set_ready(struct http *h, bool ready, const char *why);

/* Serves `fd`, a connected stream socket, as a connection accepted on the
 * first endpoint (which must exist): for the fuzzer, which has no listener.
 * Returns 0, or -1 (fd untouched). */
int http_adopt(struct http *h, int fd);

/* The connections open. */
size_t http_connections(const struct http *h);

/* Stops listening, closes every connection, and frees. NULL is a no-op. */
void http_free(struct http *h);

#endif
