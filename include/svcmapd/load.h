/* load.h -- the one way from a mapping file to a zone: read, parse, compile. */
#ifndef SVCMAPD_LOAD_H
#define SVCMAPD_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "svcmapd/config.h"
#include "svcmapd/diag.h"
#include "svcmapd/zone.h"

/*
 * Text -> config -> zone, written once and taken by `svcmapd -t`, --print,
 * start-up, every reload, the tests and the fuzzers (nginx builds its
 * cycle one way, at start or on reload). Every problem of every step goes
 * to `diag` with its severity. The config is compiled even when it has
 * errors, so that the zone's are reported in the same pass; the zone
 * exists only when there were none.
 */
struct load {
    struct diag diag;
    struct config *cfg; /* NULL: no text, or out of memory */
    struct zone *zone;  /* NULL: `diag` holds an error */
    bool read;          /* a text was had: `hash` is config_hash() of it */
    uint64_t hash;
    /* load_compile() frees cfg's mapping once the zone is compiled from
     * it (zone_compile()); cfg's settings stay. For those who need the
     * zone alone: it lowers the peak of a large load by a third. */
    bool drop_mapping;
    /* Compiled whole, never as a patch of the old zone (zone_compile()'s
     * ZONE_WHOLE): for tests that compare the two. */
    bool whole;
};

/* Starts an empty load of `path` (not copied): the file read when no text
 * is given, and the name every diagnostic starts with. */
void load_init(struct load *l, const char *path);

/* Step one: `text` (`len` bytes, not taken; NULL: the file at `path` is
 * read, config_read()) parsed into l->cfg. False when there is no config
 * to compile: the file cannot be read, or memory ran out. */
bool load_parse(struct load *l, const char *text, size_t len);

/* Step two: l->cfg compiled into l->zone (a zone already there is freed
 * first: take it out to keep it) against `old`, the zone it replaces
 * (NULL at start-up), for `host`, at time `now` (zone_compile()). A NULL
 * `host` is this machine: its interfaces' addresses are listed here when
 * the config needs them (zone_needs_host()), with a warning if they
 * cannot be. False when there is no zone; `diag` says why. */
bool load_compile(struct load *l, const struct zone *old, const struct zone_host *host, time_t now);

/* Step two for `svcmapd -t`: what load_compile(l, NULL, NULL, now) would
 * report, and the counts of its zone in `*st`, without making the zone
 * (zone_verify()): a check holds less than a running server. True when
 * there are no errors. */
bool load_verify(struct load *l, time_t now, struct zone_stats *st);

/* Both steps. */
bool load_text(struct load *l, const char *text, size_t len, const struct zone *old,
               const struct zone_host *host, time_t now);

/* Frees the config and the zone still held (set them to NULL to keep
 * them) and the diagnostics. */
void load_finish(struct load *l);

/* Gives the heap memory loads have freed back to the system: the parsed
 * mapping and the compiler's tables, a third of what a large zone holds.
 * glibc keeps freed memory for reuse, and after a load most of it lies
 * in small pieces between pieces still in use, which only malloc_trim()
 * returns (it releases the free pages inside the heap, of every thread's
 * arena). For the main thread, once a load or reload has ended. */
void load_give_back(void);

/* Writes every diagnostic of `d`: to `out` as it is, one per line, or,
 * when `out` is NULL, to the log at the level of its severity. */
void load_report(const struct diag *d, FILE *out);

#endif
