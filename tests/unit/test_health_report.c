/* test_health_report.c -- what the prober found, as the health command and /health/targets show it.
 */
#include "svcmapd/health.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>

#include "svcmapd/load.h"
#include "svcmapd/zone.h"
#include "tap.h"
#include "unit_zone.h"

static char lines[8][320];
static int nlines;

static void put(void *ctx, const char *line)
{
    (void)ctx;
    if (nlines < 8)
        snprintf(lines[nlines++], sizeof(lines[0]), "%s", line);
}

int main(void)
{
    static const char text[] = "[namespace prod]\n"
                               "db = 10.0.0.1:5432, 10.0.0.2:5432 check=tcp policy=failover\n"
                               "web = 10.0.1.1, [2001:db8::1] check=http:8080/healthz\n";
    struct zone *z = zone_of_text("r.ini", text, NULL, 1700000000);
    if (!ok(z != NULL, "the mapping compiles"))
        return done_testing();

    size_t n;
    struct zone_probe *p = zone_probes(z, &n);
    for (size_t i = 0; i < n; i++)
        if (p[i].key.addr[3] == 1 && p[i].key.port == 5432) { /* 10.0.0.1:5432 */
            zone_probe_set_up(z, &p[i], false);
            atomic_store(&p[i].error, HEALTH_ERROR(HEALTH_ERR_ERRNO, ECONNREFUSED));
            atomic_store(&p[i].since, 1700000123000);
            atomic_store(&p[i].transitions, 1);
        }
    health_report_lines(z, put, NULL);
    is_int(nlines, 4, "one line per checked target");
    is_str(lines[0],
           "db.prod 10.0.0.1:5432 down since 2023-11-14T22:15:23Z, not answered, last error: "
           "connection refused",
           "a target down: since its transition, its last failure");
    is_str(lines[1],
           "db.prod 10.0.0.2:5432 up since 2023-11-14T22:13:20Z, answered, last error: none",
           "the standby answered in its place");
    is_str(lines[3],
           "web.prod 2001:db8::1 up since 2023-11-14T22:13:20Z, answered, last error: none",
           "IPv6, without a port");

    char why[96];
    is_str(health_error_text(HEALTH_ERROR(HEALTH_ERR_STATUS, 503), why, sizeof(why)), "HTTP 503",
           "an HTTP status");
    is_str(health_error_text(HEALTH_ERROR(HEALTH_ERR_TIMEOUT, 1), why, sizeof(why)),
           "timeout connecting", "a timeout while connecting");
    is_str(health_error_text(HEALTH_ERROR(HEALTH_ERR_CLOSED, 0), why, sizeof(why)),
           "connection closed before a response", "a connection closed early");

    struct evbuffer *b = evbuffer_new();
    health_report_json(b, z);
    size_t len = evbuffer_get_length(b);
    char *json = calloc(1, len + 1);
    evbuffer_remove(b, json, len);
    ok(strstr(json,
              "{\"interval\":\"5s\",\"timeout\":\"2s\",\"fall\":3,\"rise\":2,\"targets\":[") ==
           json,
       "JSON: the settings first");
    ok(strstr(json,
              "{\"namespace\":\"prod\",\"service\":\"db\",\"target\":\"10.0.0.1:5432\","
              "\"check\":\"tcp:5432\",\"policy\":\"failover\",\"up\":false,\"answered\":false,"
              "\"since\":\"2023-11-14T22:15:23Z\",\"transitions\":1,"
              "\"last_error\":\"connection refused\"}") != NULL,
       "JSON: a target down");
    ok(strstr(json, "\"target\":\"10.0.1.1\",\"check\":\"http:8080/healthz\",\"policy\":\"all\"") !=
           NULL,
       "JSON: an HTTP check");
    free(json);
    evbuffer_free(b);
    zone_free(z);
    return done_testing();
}
