/* probe_state.h -- a zone's probes by what they probe, and what they found: for tests and fuzzers.
 */
#ifndef SVCMAPD_PROBE_STATE_H
#define SVCMAPD_PROBE_STATE_H

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "svcmapd/zone.h"

/* The probe of `z` of address `addr` (text), with `port` and check `kind`
 * (enum config_check_kind), or NULL; a `port` or `kind` of 0 takes any. */
static inline struct zone_probe *probe_at(const struct zone *z, const char *addr, uint16_t port,
                                          int kind)
{
    uint8_t a[16] = {0};
    int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    inet_pton(family, addr, a);
    size_t n;
    struct zone_probe *p = zone_probes(z, &n);
    for (size_t i = 0; i < n; i++)
        if (p[i].key.family == family && memcmp(p[i].key.addr, a, 16) == 0 &&
            (!port || p[i].key.port == port) && (!kind || p[i].key.kind == kind))
            return &p[i];
    return NULL;
}

/* What a probe holds, to compare. */
struct probe_state {
    uint8_t up, streak;
    uint32_t error;
    uint64_t since, transitions;
};

static inline struct probe_state probe_state_of(const struct zone_probe *p)
{
    return (struct probe_state){atomic_load(&p->up), atomic_load(&p->streak),
                                atomic_load(&p->error), atomic_load(&p->since),
                                atomic_load(&p->transitions)};
}

static inline bool probe_state_same(const struct probe_state *a, const struct probe_state *b)
{
    return a->up == b->up && a->streak == b->streak && a->error == b->error &&
           a->since == b->since && a->transitions == b->transitions;
}

#endif
