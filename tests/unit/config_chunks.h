/* config_chunks.h -- a mapping read from a file in chunks against the same text parsed in memory.
 */
#ifndef SVCMAPD_CONFIG_CHUNKS_H
#define SVCMAPD_CONFIG_CHUNKS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/config_impl.h"
#include "svcmapd/config.h"

/* What a parse gave, as text: its diagnostics and counts, and each
 * service's name, line, targets, validity and text_fp; NULL when out of
 * memory. */
static inline char *config_summary(const struct config *cfg, const struct diag *d)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return NULL;
    fprintf(f, "%s|%u %u %u\n", d->text ? d->text : "", d->errors, d->warnings, d->dropped);
    if (cfg) {
        fprintf(f, "%016llx %s %zu %zu\n", (unsigned long long)cfg->hash, cfg->zone,
                cfg->nnamespaces, cfg->nservices);
        for (size_t i = 0; i < cfg->nnamespaces; i++)
            for (size_t j = 0; j < cfg->namespaces[i].nservices; j++) {
                const struct config_service *v = &cfg->namespaces[i].services[j];
                fprintf(f, "%s %s %d %u %d %016llx\n", cfg->namespaces[i].name, v->name, v->line,
                        v->ntargets, v->invalid, (unsigned long long)v->text_fp);
            }
    }
    fclose(f);
    return s;
}

/* The two summaries, malloc'ed, when they differ; NULL when alike. */
static inline char *summaries_differ(char *sa, char *sb, const char *what_a, const char *what_b)
{
    char *why = NULL;
    if (!sa || !sb || strcmp(sa, sb) != 0) {
        size_t n =
            (sa ? strlen(sa) : 0) + (sb ? strlen(sb) : 0) + strlen(what_a) + strlen(what_b) + 8;
        why = malloc(n);
        if (why)
            snprintf(why, n, "%s:\n%s\n%s:\n%s", what_a, sa ? sa : "?", what_b, sb ? sb : "?");
    }
    free(sa);
    free(sb);
    return why;
}

/* The file at `path`, which holds `text` (`len` bytes), read `chunk` bytes
 * at a time and parsed as `file`: NULL if that gives what parsing `text`
 * in memory gives, else both summaries (malloc'ed). */
static inline char *chunks_differ(const char *text, size_t len, const char *path, size_t chunk,
                                  const char *file)
{
    struct diag d1, d2;
    diag_init(&d1, file);
    diag_init(&d2, file);
    struct config *a = config_parse(text, len, &d1);
    size_t saved = config_chunk;
    config_chunk = chunk;
    struct config *b = config_load(path, &d2);
    config_chunk = saved;
    char chunks[64];
    snprintf(chunks, sizeof(chunks), "in chunks of %zu", chunk);
    char *why =
        summaries_differ(config_summary(b, &d2), config_summary(a, &d1), chunks, "in memory");
    config_free(a);
    config_free(b);
    diag_finish(&d1);
    diag_finish(&d2);
    return why;
}

/* `text` parsed with every key line read by inih (config_inih_only), and
 * with the parser reading the plainest service lines itself: NULL if
 * they give the same, else both summaries (malloc'ed). */
static inline char *inih_differs(const char *text, size_t len, const char *file)
{
    struct diag d1, d2;
    diag_init(&d1, file);
    diag_init(&d2, file);
    config_inih_only = true;
    struct config *a = config_parse(text, len, &d1);
    config_inih_only = false;
    struct config *b = config_parse(text, len, &d2);
    char *why = summaries_differ(config_summary(a, &d1), config_summary(b, &d2), "inih alone",
                                 "service lines read without inih");
    config_free(a);
    config_free(b);
    diag_finish(&d1);
    diag_finish(&d2);
    return why;
}

#endif
