/* unit_zone.h -- a zone compiled from a mapping text, for the unit tests. */
#ifndef SVCMAPD_UNIT_ZONE_H
#define SVCMAPD_UNIT_ZONE_H

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "svcmapd/load.h"

/* The zone of mapping `text`, compiled as file `file` at `now` as the
 * reload of `old` (NULL: a start), `whole` or maybe as a patch of `old`,
 * or NULL on an error. Every diagnostic
 * is printed as a TAP comment. The zone is the caller's. */
static inline struct zone *zone_of_text_as(const char *file, const char *text,
                                           const struct zone *old, time_t now, bool whole)
{
    struct load l;
    load_init(&l, file);
    l.whole = whole;
    load_text(&l, text, strlen(text), old, NULL, now);
    for (const char *p = l.diag.text; p && *p;) {
        const char *end = strchr(p, '\n');
        int len = end ? (int)(end - p) : (int)strlen(p);
        printf("# %.*s\n", len, p);
        p += len + (end != NULL);
    }
    struct zone *z = l.zone;
    l.zone = NULL;
    load_finish(&l);
    return z;
}

static inline struct zone *zone_of_text(const char *file, const char *text, const struct zone *old,
                                        time_t now)
{
    return zone_of_text_as(file, text, old, now, false);
}

#endif
