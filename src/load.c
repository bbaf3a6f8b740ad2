/* load.c -- the one way from a mapping file to a zone: read, parse, compile. */
#include "svcmapd/load.h"

#include <errno.h>
#include <ifaddrs.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/log.h"

void load_init(struct load *l, const char *path)
{
    memset(l, 0, sizeof(*l));
    diag_init(&l->diag, path);
}

/* Parses `text` (NULL: the file, read in chunks) into l->cfg, skipping
 * the services `skip` says `old` has (NULL: none). */
static bool parse(struct load *l, const char *text, size_t len, struct zone_skip *skip)
{
    struct config_skip ask = {zone_skip_unchanged, skip};
    config_free(l->cfg);
    l->cfg = text ? config_parse_skip(text, len, skip ? &ask : NULL, &l->diag)
                  : config_load_skip(l->diag.file, skip ? &ask : NULL, &l->diag);
    if (l->cfg || text) {
        l->hash = l->cfg ? l->cfg->hash : config_hash(text, len);
        l->read = true;
    }
    return l->cfg != NULL;
}

bool load_parse(struct load *l, const char *text, size_t len)
{
    return parse(l, text, len, NULL);
}

/* This machine's facts, as the compiler reads them. */
struct this_host {
    struct zone_host host;
    uint8_t (*addr4)[4]; /* owned */
    uint8_t (*addr6)[16];
};

/* The interfaces' addresses, listed only when `cfg` needs them (a
 * wildcard listen address: ns.dns.<zone> answers with them). If they
 * cannot be listed, ns.dns goes without them, and a warning says so.
 * False when out of memory. */
static bool list_host(struct this_host *h, const struct config *cfg, struct diag *d)
{
    *h = (struct this_host){0};
    struct ifaddrs *ifs = NULL;
    if (!zone_needs_host(cfg))
        return true;
    if (getifaddrs(&ifs) < 0) {
        diag_warning(d, cfg->line[CONFIG_LISTEN],
                     "cannot list the interfaces' addresses (%s): ns.dns.%s gets none for a "
                     "wildcard listen address",
                     strerror(errno), cfg->zone);
        return true;
    }
    size_t n = 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        n++;
    h->addr4 = calloc(n + 1, 4);
    h->addr6 = calloc(n + 1, 16);
    for (struct ifaddrs *i = ifs; h->addr4 && h->addr6 && i; i = i->ifa_next) {
        const void *sa = i->ifa_addr;
        if (sa && i->ifa_addr->sa_family == AF_INET)
            memcpy(h->addr4[h->host.naddr4++], &((const struct sockaddr_in *)sa)->sin_addr, 4);
        else if (sa && i->ifa_addr->sa_family == AF_INET6)
            memcpy(h->addr6[h->host.naddr6++], &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
    freeifaddrs(ifs);
    h->host.addr4 = (const uint8_t(*)[4])h->addr4;
    h->host.addr6 = (const uint8_t(*)[16])h->addr6;
    return h->addr4 && h->addr6;
}

/* `host`, or when it is NULL this machine's, listed into `mine`; NULL
 * when out of memory (reported). `mine` is free_host()'s to free. */
static const struct zone_host *host_for(const struct zone_host *host, struct this_host *mine,
                                        struct load *l)
{
    *mine = (struct this_host){0};
    if (host)
        return host;
    if (list_host(mine, l->cfg, &l->diag))
        return &mine->host;
    diag_error(&l->diag, 0, "out of memory while compiling the zone");
    return NULL;
}

static void free_host(struct this_host *h)
{
    free(h->addr4);
    free(h->addr6);
}

static bool compile(struct load *l, const struct zone *old, const struct zone_host *host,
                    time_t now, struct zone_skip *skip)
{
    zone_free(l->zone);
    l->zone = NULL;
    if (!l->cfg)
        return false;
    struct this_host mine;
    unsigned flags = (l->drop_mapping ? ZONE_DROP_MAPPING : 0) | (l->whole ? ZONE_WHOLE : 0);
    host = host_for(host, &mine, l);
    if (host)
        l->zone = zone_compile(l->cfg, old, host, now, flags, skip, &l->diag);
    free_host(&mine);
    return l->zone != NULL;
}

bool load_compile(struct load *l, const struct zone *old, const struct zone_host *host, time_t now)
{
    return compile(l, old, host, now, NULL);
}

bool load_verify(struct load *l, time_t now, struct zone_stats *st)
{
    *st = (struct zone_stats){0};
    if (!l->cfg)
        return false;
    struct this_host mine;
    const struct zone_host *host = host_for(NULL, &mine, l);
    bool ok = host && zone_verify(l->cfg, host, now, ZONE_VERIFY_PART, &l->diag, st);
    free_host(&mine);
    return ok;
}

bool load_text(struct load *l, const char *text, size_t len, const struct zone *old,
               const struct zone_host *host, time_t now)
{
    /* A reload parses and compiles only the services whose lines changed
     * (zone_patch.c), unless it must be compiled whole after all: then
     * again, from the start, skipping nothing. */
    struct zone_skip *skip = old && !l->whole ? zone_skip_new(old) : NULL;
    parse(l, text, len, skip);
    bool ok = compile(l, old, host, now, skip);
    if (zone_skip_wasted(skip)) {
        const char *file = l->diag.file;
        diag_finish(&l->diag);
        diag_init(&l->diag, file);
        parse(l, text, len, NULL);
        ok = compile(l, old, host, now, NULL);
    }
    zone_skip_free(skip);
    return ok;
}

void load_finish(struct load *l)
{
    zone_free(l->zone);
    config_free(l->cfg);
    diag_finish(&l->diag);
    l->zone = NULL;
    l->cfg = NULL;
}

void load_give_back(void)
{
    malloc_trim(0);
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
