/* budget.h -- the open-files budget: what every holder of a descriptor gets. */
#ifndef SVCMAPD_BUDGET_H
#define SVCMAPD_BUDGET_H

#include <stddef.h>

struct config;

/*
 * Raises the soft limit of open files to the hard one, shares the
 * descriptors out among everything that holds them for the mapping `cfg`
 * with `health` probes in flight, and returns how many upstream lookups
 * each worker may have in flight (UPSTREAM_MAX_LOOKUPS at most), warning
 * when the limit is short. Called once, at start.
 */
size_t budget_files(const struct config *cfg, size_t health);

#endif
