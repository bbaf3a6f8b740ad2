/* zone_verify.c -- `svcmapd -t`: what a compile would say, in the memory of a part of the zone. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zone_compile.h"

/*
 * `-t` must report every problem a start would, and count the services
 * and records, but it answers no query: it need never hold the whole zone.
 * The mapping is compiled in parts of whole namespaces, each part a zone
 * of its own that is freed before the next is made, so that `-t` holds the
 * parsed mapping and one part, less than a running server's zone.
 *
 * Each part is compiled by the same code as a whole zone, and says the
 * same of its services: what a service is, and whether it fits in a
 * message, depends on its namespace and the settings alone. Three things
 * of a compile are not the parts' to say:
 *   - the settings' own diagnostics (a reverse zone that overlaps, a zone
 *     name too long): every part would repeat them;
 *   - a hostname that points into the zone, whose target may be in any
 *     part;
 *   - the warning that hostnames outside the zone go unresolved, one for
 *     the whole mapping.
 * A mapping whose settings say anything, or that has a CNAME into the
 * zone, is compiled whole, as a start does; the unresolved hostnames are
 * counted over the parts and the warning given once, as a whole compile
 * gives it.
 */

/* Whether a hostname of `cfg` is the zone's apex or a name below it. */
static bool points_into_zone(const struct config *cfg)
{
    size_t zlen = strlen(cfg->zone);
    for (size_t i = 0; i < cfg->nnamespaces; i++) {
        const struct config_namespace *ns = &cfg->namespaces[i];
        for (size_t j = 0; j < ns->nservices; j++) {
            const struct config_service *s = &ns->services[j];
            if (s->invalid || s->ntargets == 0 || s->targets[0].kind != CONFIG_TARGET_HOSTNAME)
                continue;
            const char *h = s->targets[0].hostname;
            size_t hlen = strlen(h);
            /* checked names: no trailing dot; the zone is lower case */
            if (hlen == zlen ? strcasecmp(h, cfg->zone) == 0
                             : hlen > zlen && h[hlen - zlen - 1] == '.' &&
                                   strcasecmp(h + hlen - zlen, cfg->zone) == 0)
                return true;
        }
    }
    return false;
}

/* `cfg` compiled whole, its counts kept and the zone freed. */
static bool verify_whole(struct config *cfg, const struct zone_host *host, time_t now,
                         struct diag *d, struct zone_stats *st)
{
    struct zone *z = zone_compile(cfg, NULL, host, now, ZONE_DROP_MAPPING, NULL, d);
    if (z)
        *st = *zone_stats(z); /* compiled: every service at once */
    zone_free(z);
    return z != NULL;
}

/* A compiler of the namespaces [first, first + n) of `cfg`, as `part`. */
static bool begin_part(struct compiler *c, struct config *part, const struct config *cfg,
                       size_t first, size_t n, const struct zone_host *host, time_t now,
                       struct diag *d)
{
    *part = *cfg;
    part->namespaces = n ? cfg->namespaces + first : NULL; /* none may be NULL */
    part->nnamespaces = n;
    part->nservices = 0;
    for (size_t i = 0; i < n; i++)
        part->nservices += part->namespaces[i].nservices;
    *c = (struct compiler){.z = zone_new(NULL), .cfg = part, .host = host, .d = d, .part = true};
    return c->z && compile_begin(c, estimate_names(part), now);
}

static void end_part(struct compiler *c)
{
    compiler_finish(c);
    zone_free(c->z);
}

bool zone_verify(struct config *cfg, const struct zone_host *host, time_t now, size_t part_services,
                 struct diag *d, struct zone_stats *st)
{
    *st = (struct zone_stats){0};
    if (points_into_zone(cfg))
        return verify_whole(cfg, host, now, d, st);

    /* The settings alone, compiled first with a diagnostics list of its
     * own: when they have anything to say, the parts would each say it. */
    struct config none;
    struct compiler settings;
    struct diag quiet;
    diag_init(&quiet, d->file);
    bool said = !begin_part(&settings, &none, cfg, 0, 0, host, now, &quiet) ||
                quiet.errors + quiet.warnings > 0;
    diag_finish(&quiet);
    if (said) {
        end_part(&settings);
        return verify_whole(cfg, host, now, d, st);
    }
    settings.d = d;

    unsigned errors_before = d->errors;
    size_t fixed = settings.z->stats.records; /* of the reverse zones */
    size_t unresolved = 0;
    int first_line = 0;
    bool oom = false;
    for (size_t i = 0, n; i < cfg->nnamespaces && !oom; i += n) {
        size_t services = 0;
        for (n = 0; i + n < cfg->nnamespaces && (n == 0 || services < part_services); n++)
            services += cfg->namespaces[i + n].nservices;

        struct config part;
        struct compiler c;
        oom = !begin_part(&c, &part, cfg, i, n, host, now, d);
        if (!oom)
            compile_services(&c);
        if (!oom && !c.oom)
            compile_hosts(&c);
        oom = oom || c.oom;
        if (!oom) {
            int line = 0;
            size_t u = count_unresolved(&c, &line);
            if (u && !unresolved)
                first_line = line;
            unresolved += u;
            st->services += c.z->stats.services;
            if (c.z->stats.services > st->compiled)
                st->compiled = c.z->stats.services; /* the largest part */
            st->records += c.z->stats.records - fixed;
        }
        end_part(&c);
    }
    if (!oom)
        warn_unresolved(&settings, unresolved, first_line);
    end_part(&settings);
    if (oom) {
        if (d->errors == errors_before)
            diag_error(d, 0, "out of memory while compiling the zone");
        return false;
    }
    st->records += fixed + FIXED_RECORDS;
    return d->errors == 0;
}
