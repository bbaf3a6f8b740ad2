/* verify_compare.h -- `svcmapd -t` in parts against a whole compile: for its test and the config
 * fuzzer. */
#ifndef SVCMAPD_VERIFY_COMPARE_H
#define SVCMAPD_VERIFY_COMPARE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/load.h"
#include "svcmapd/zone.h"

/*
 * zone_verify() must say, to the character, what zone_compile() says of
 * the same text, and count the same services and records:
 * verify_differs() parses `text` twice, compiles it whole and verifies it
 * in parts of `part` services, and returns NULL when the two agree, or a
 * malloc'ed account of both. `*compiled` gets the most services the parts
 * compiled at once.
 */

struct verdict {
    char *diag; /* every line, malloc'ed */
    unsigned errors, warnings;
    bool ok;
    size_t services, records, compiled;
};

static struct verdict verdict_of(const struct load *l, bool ok, const struct zone_stats *st)
{
    struct verdict v = {.diag = strdup(l->diag.text ? l->diag.text : ""),
                        .errors = l->diag.errors,
                        .warnings = l->diag.warnings,
                        .ok = ok};
    if (ok) {
        v.services = st->services;
        v.records = st->records;
        v.compiled = st->compiled;
    }
    return v;
}

static char *verify_differs(const char *text, size_t len, const struct zone_host *host, time_t now,
                            size_t part, size_t *compiled)
{
    struct load l;
    load_init(&l, "t.ini");
    load_parse(&l, text, len);
    bool ok = load_compile(&l, NULL, host, now);
    struct verdict w = verdict_of(&l, ok, ok ? zone_stats(l.zone) : NULL);
    load_finish(&l);

    load_init(&l, "t.ini");
    load_parse(&l, text, len);
    struct zone_stats st = {0};
    ok = l.cfg && zone_verify(l.cfg, host, now, part, &l.diag, &st);
    struct verdict v = verdict_of(&l, ok, &st);
    load_finish(&l);

    *compiled = v.compiled;
    char *why = NULL;
    if (strcmp(w.diag, v.diag) != 0 || w.errors != v.errors || w.warnings != v.warnings ||
        w.ok != v.ok || w.services != v.services || w.records != v.records) {
        size_t n = 0;
        FILE *f = open_memstream(&why, &n);
        fprintf(f, "compiled whole: %s, %zu services, %zu records, %u errors, %u warnings:\n%s",
                w.ok ? "ok" : "bad", w.services, w.records, w.errors, w.warnings, w.diag);
        fprintf(f, "verified in parts: %s, %zu services, %zu records, %u errors, %u warnings:\n%s",
                v.ok ? "ok" : "bad", v.services, v.records, v.errors, v.warnings, v.diag);
        fclose(f);
    }
    free(w.diag);
    free(v.diag);
    return why;
}

#endif
