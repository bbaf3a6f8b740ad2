/* config.c -- the mapping file: INI text to plain settings with line numbers. */
#include "svcmapd/config.h"

#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "svcmapd/arena.h"

/* ---- a small string set, for duplicate sections and services ---- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: fine for trusted file keys */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

void strset_clear(struct strset *set)
{
    if (set->cap > 4096) {
        free(set->slots); /* a big namespace before: start small again */
        set->slots = NULL;
        set->cap = 0;
    } else if (set->slots) {
        memset(set->slots, 0, set->cap * sizeof(*set->slots));
    }
    set->count = 0;
}

/* Inserts `key` (owned by the caller's arena). Returns 0 if it was new, or
 * the line of the earlier entry; -1 when out of memory. */
int strset_add(struct strset *set, const char *key, int line)
{
    if ((set->count + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct strset_entry *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i].key)
                continue;
            size_t j = str_hash(set->slots[i].key) & (cap - 1);
            while (slots[j].key)
                j = (j + 1) & (cap - 1);
            slots[j] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t j = str_hash(key) & (set->cap - 1);
    while (set->slots[j].key) {
        if (strcmp(set->slots[j].key, key) == 0)
            return set->slots[j].line;
        j = (j + 1) & (set->cap - 1);
    }
    set->slots[j].key = key;
    set->slots[j].line = line;
    set->count++;
    return 0;
}

int strset_find(const struct strset *set, const char *key)
{
    if (!set->cap)
        return 0;
    for (size_t j = str_hash(key) & (set->cap - 1); set->slots[j].key; j = (j + 1) & (set->cap - 1))
        if (strcmp(set->slots[j].key, key) == 0)
            return set->slots[j].line;
    return 0;
}

void parser_oom(struct parser *p)
{
    if (!p->oom)
        diag_error(p->d, 0, "out of memory");
    p->oom = true;
}

static struct config *config_new(const char *path)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->arena = arena_new();
    cfg->map = arena_new();
    if (!cfg->arena || !cfg->map) {
        arena_free(cfg->arena);
        arena_free(cfg->map);
        free(cfg);
        return NULL;
    }
    cfg->path = arena_strndup(cfg->arena, path, strlen(path));
    return cfg;
}

void config_drop_mapping(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        free(cfg->namespaces[i].services);
    free(cfg->namespaces);
    cfg->namespaces = NULL;
    cfg->nnamespaces = 0;
    cfg->nservices = 0;
    arena_free(cfg->map);
    cfg->map = arena_new(); /* NULL when out of memory: nothing uses it now */
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        free(cfg->namespaces[i].services);
    free(cfg->namespaces);
    arena_free(cfg->arena);
    arena_free(cfg->map);
    free(cfg);
}

/* Reads the lines of `r` into a new config, asking `skip` about services
 * (NULL: none is skipped). NULL when out of memory, or when the file
 * could not be read to its end: then what its lines said is taken back,
 * and only why it could not be read is reported. */
static struct config *parse(struct lines *r, const struct config_skip *skip, struct diag *d)
{
    /* what `d` held before, to take back what the lines said */
    unsigned errors = d->errors, warnings = d->warnings, dropped = d->dropped;
    unsigned nstored = d->nstored;
    size_t len = d->len;
    struct config *cfg = config_new(d->file);
    if (!cfg) {
        diag_error(d, 0, "out of memory");
        return NULL;
    }
    struct parser p = {
        .cfg = cfg,
        .d = d,
        .a = cfg->arena,
        .m = cfg->map,
        .skip = skip && skip->unchanged ? skip : NULL,
        .lines = r,
        .keys = arena_new(),
        .scratch = arena_new(),
        .nsnames = arena_new(),
    };
    if (!p.keys || !p.scratch || !p.nsnames) {
        arena_free(p.keys);
        arena_free(p.scratch);
        arena_free(p.nsnames);
        config_free(cfg);
        diag_error(d, 0, "out of memory");
        return NULL;
    }

    /* Defaults first: a bad value in the file then leaves the default,
     * and the rest of the file is still checked against sane settings. */
    apply_defaults(&p);
    parse_ini(&p);
    lines_drain(r);
    check_settings(&p);
    /* No section at all: nothing but blanks and comments, or no byte.
     * Never a mapping to serve: a file being rewritten in place (cp, a
     * shell's >) is empty for a moment. */
    if (p.section_line == 0 && d->errors == errors)
        diag_error(d, 0, "the file is empty (no [server] or [namespace] section)");

    free(p.tokens);
    free(p.text);
    free(p.names.slots);
    free(p.services.slots);
    arena_free(p.keys);
    arena_free(p.scratch);
    arena_free(p.nsnames);
    if (r->error) {
        /* what the lines read said is not what the file says: only why
         * it could not be read is reported, as if nothing had been */
        d->errors = errors;
        d->warnings = warnings;
        d->dropped = dropped;
        d->nstored = nstored;
        d->len = len;
        if (d->text)
            d->text[len] = '\0';
        lines_report(r, d);
        config_free(cfg);
        return NULL;
    }
    if (p.oom) {
        config_free(cfg);
        return NULL;
    }
    cfg->hash = r->fd < 0 ? config_hash(r->buf, r->fill) : hasher_end(&r->hash);
    return cfg;
}
struct config *config_parse_skip(const char *text, size_t len, const struct config_skip *skip,
                                 struct diag *d)
{
    struct lines r;
    lines_text(&r, text, len);
    return parse(&r, skip, d);
}

struct config *config_parse(const char *text, size_t len, struct diag *d)
{
    return config_parse_skip(text, len, NULL, d);
}

struct config *config_load_skip(const char *path, const struct config_skip *skip, struct diag *d)
{
    struct lines r;
    if (!lines_open(&r, path, d))
        return NULL;
    struct config *cfg = parse(&r, skip, d);
    lines_close(&r);
    return cfg;
}

struct config *config_load(const char *path, struct diag *d)
{
    return config_load_skip(path, NULL, d);
}

bool config_same_listen(const struct config *a, const struct config *b)
{
    if (a->nlisten != b->nlisten)
        return false;
    for (size_t i = 0; i < a->nlisten; i++) {
        bool found = false;
        for (size_t j = 0; j < b->nlisten && !found; j++)
            found = strcmp(a->listen[i].text, b->listen[j].text) == 0;
        if (!found)
            return false;
    }
    return true;
}
