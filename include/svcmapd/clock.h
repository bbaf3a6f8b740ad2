/* clock.h -- the project's clock: monotonic time for timeouts, deadlines and durations. */
#ifndef SVCMAPD_CLOCK_H
#define SVCMAPD_CLOCK_H

#include <stdint.h>
#include <time.h>

/*
 * Every timeout, deadline, cache age and duration reads one of these two,
 * never the wall clock (which jumps): a clock of its own in each file would
 * make two of them disagree on what "now" is. Inline: the answer path reads
 * them per batch and per query.
 */

/* Monotonic milliseconds, cheaply (CLOCK_MONOTONIC_COARSE: no system call,
 * a resolution of one scheduler tick, a few ms). For what is counted in
 * seconds: cache ages and TTLs, TCP timeouts, rate limits of log lines. */
static inline uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Monotonic nanoseconds, precisely (CLOCK_MONOTONIC). For durations and for
 * deadlines shorter than a tick: how long a query took, a lookup's share
 * of its timeout. */
static inline uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
