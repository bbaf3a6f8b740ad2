/* load.c -- the one way from a mapping file to a zone: read, parse, compile. */
#include "svcmapd/load.h"

#include <stdlib.h>
#include <string.h>

#include "svcmapd/log.h"

void load_init(struct load *l, const char *path)
{
    memset(l, 0, sizeof(*l));
    diag_init(&l->diag, path);
}

bool load_parse(struct load *l, const char *text, size_t len)
{
    char *owned = NULL;
    if (!text) {
        owned = config_read(l->diag.file, &len, &l->diag);
        if (!owned)
            return false;
        text = owned;
    }
    config_free(l->cfg);
    l->cfg = config_parse(text, len, &l->diag);
    l->hash = l->cfg ? l->cfg->hash : config_hash(text, len);
    l->read = true;
    free(owned);
    return l->cfg != NULL;
}

bool load_compile(struct load *l, const struct zone *old, time_t now)
{
    zone_free(l->zone);
    l->zone = l->cfg ? zone_compile(l->cfg, old, now, &l->diag) : NULL;
    return l->zone != NULL;
}

bool load_text(struct load *l, const char *text, size_t len, const struct zone *old, time_t now)
{
    load_parse(l, text, len);
    return load_compile(l, old, now);
}

void load_finish(struct load *l)
{
    zone_free(l->zone);
    config_free(l->cfg);
    diag_finish(&l->diag);
    l->zone = NULL;
    l->cfg = NULL;
}

static void print_entry(const struct diag_entry *e, void *arg)
{
    fprintf(arg, "%s\n", e->text);
}

static void log_entry(const struct diag_entry *e, void *arg)
{
    (void)arg;
    /* a note says diagnostics were dropped: as loud as what it stands for */
    if (e->severity == DIAG_WARNING)
        log_warning("%s", e->text);
    else
        log_error("%s", e->text);
}

void load_report(const struct diag *d, FILE *out)
{
    if (out)
        diag_each(d, print_entry, out);
    else
        diag_each(d, log_entry, NULL);
}
