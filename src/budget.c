/* budget.c -- the open-files budget: the descriptors shared out among
 * everything that holds them, and what is left for upstream lookups. */
#include "svcmapd/budget.h"

#include <stdio.h>
#include <sys/resource.h>

#include "svcmapd/config.h"
#include "svcmapd/control.h"
#include "svcmapd/health.h"
#include "svcmapd/http.h"
#include "svcmapd/log.h"
#include "svcmapd/server.h"
#include "svcmapd/upstream.h"

/* The main thread's descriptors: stdin, stdout and stderr, its event
 * base's four (as a worker's, server.c), the mapping file while it is
 * read, the notify socket, and some to spare: for what libraries open, and
 * for connections libevent closes a turn of the loop after they are freed
 * (up to a listener's batch, listener.c). */
#define MAIN_FDS 32

/* Fewer lookups in flight than this per worker, and upstream resolution
 * would hardly work: they get this much even when the limit is short. */
#define MIN_LOOKUPS 16

/*
 * Every TCP connection and every upstream lookup in flight holds a file
 * descriptor. The soft limit goes up to the hard one (systemd and shells
 * often leave it at 1024), as NSD does; then the descriptors are shared
 * out: first what the main thread, the HTTP endpoints (their connections
 * capped), the workers' sockets and the prober's probes (`health`, as
 * health_probe_cap() gives them) need, and tcp-max-connections; what is
 * left, split among the workers, caps each one's upstream lookups in
 * flight (UPSTREAM_MAX_LOOKUPS at most). Out of descriptors, accept()
 * would fail and a lookup find no socket. Returns the cap.
 */
size_t budget_files(const struct config *cfg, size_t health)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return UPSTREAM_MAX_LOOKUPS;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    size_t workers = server_worker_count(cfg);
    unsigned long long limit = rl.rlim_cur; /* RLIM_INFINITY is the largest */
    unsigned long long http = http_fds(cfg) + control_fds(cfg), sockets = server_fds(cfg);
    unsigned long long probes = health + HEALTH_BASE_FDS;
    unsigned long long fixed = MAIN_FDS + http + sockets + probes + cfg->tcp_max_connections;
    size_t least = cfg->upstream ? MIN_LOOKUPS : 0; /* none: resolution is off */
    char why[320];
    snprintf(why, sizeof(why),
             "%d for the main thread, %llu for HTTP and control, %llu for the sockets of %zu "
             "worker%s, %llu for health checks, %u for tcp-max-connections",
             MAIN_FDS, http, sockets, workers, workers == 1 ? "" : "s", probes,
             cfg->tcp_max_connections);
    if (limit < fixed + workers * least) {
        char lookups[64] = "";
        if (least)
            snprintf(lookups, sizeof(lookups), ", and %zu per worker for upstream lookups", least);
        log_warning("open files limited to %llu, fewer than the %llu needed: %s%s; raise the "
                    "limit (LimitNOFILE=) or lower tcp-max-connections",
                    limit, fixed + workers * least, why, lookups);
        return MIN_LOOKUPS;
    }
    unsigned long long per = (limit - fixed) / workers;
    if (per >= UPSTREAM_MAX_LOOKUPS)
        return UPSTREAM_MAX_LOOKUPS;
    if (cfg->upstream)
        log_warning("open files limited to %llu (%s): upstream lookups in flight are capped at "
                    "%llu per worker instead of %d, more get the CNAME alone; raise the limit "
                    "(LimitNOFILE=) to lift the cap",
                    limit, why, per, UPSTREAM_MAX_LOOKUPS);
    return (size_t)per;
}
