/* fuzz_reload.c -- libFuzzer target: two mapping files, the running one and the next, through
 * the file reader and the reload decision. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "svcmapd/config.h"
#include "svcmapd/load.h"
#include "svcmapd/reload.h"
#include "svcmapd/zone.h"
#include "zone_compare.h"

/*
 * Input: one byte of flags, then the running file's text, "\n===\n", and
 * the new file's text (without the separator, the new text is the running
 * one: an unchanged reload). Flag bit 0: the new text is read back through
 * config_read() from a memory file, as a reload reads it, and must come
 * back byte for byte; bit 1 (with bit 0): that file is grown past
 * CONFIG_MAX_MIB first (sparse, nothing is written) and must be refused
 * unread. A running text that does not compile is replaced by a fixed
 * mapping of 24 services, so that every input reaches the decision.
 *
 * A reload that patches the running zone (zone_patch.c) must serve what
 * the same reload compiled whole serves, and so must the running file
 * loaded back over it (a patch of a patch).
 *
 * reload_decide()'s verdict is checked against an oracle that counts
 * services itself, from the two configs' names rather than from the zones:
 * a reload is rejected exactly when it did not compile (and a text without
 * any '[' never does: no section, no mapping), and otherwise held exactly
 * when it removes more than RELOAD_REMOVAL_FLOOR services, more than
 * max-removal percent of those running, and not exactly confirm-removal.
 */

#define FILE_NAME "fuzz.ini"
#define NOW       1700000000

static const char fallback[] = "[namespace a]\n"
                               "a1 = 10.0.0.1\na2 = 10.0.0.2\na3 = 10.0.0.3\na4 = 10.0.0.4\n"
                               "a5 = 10.0.0.5\na6 = 10.0.0.6\na7 = 10.0.0.7\na8 = 10.0.0.8\n"
                               "a9 = 10.0.0.9\na10 = 10.0.0.10\na11 = 10.0.0.11\n"
                               "a12 = 10.0.0.12:80\n"
                               "[namespace b]\n"
                               "b1 = 10.0.1.1\nb2 = 10.0.1.2\nb3 = 10.0.1.3\nb4 = 10.0.1.4\n"
                               "b5 = 2001:db8::5\nb6 = 10.0.1.6\nb7 = 10.0.1.7\nb8 = 10.0.1.8\n"
                               "b9 = 10.0.1.9\nb10 = 10.0.1.10\nb11 = a1.a.svc.cluster.local\n"
                               "b12 = 10.0.1.12, 10.0.1.13\n";

struct mapping {
    struct config *cfg;
    struct zone *zone;
    char **names; /* "namespace/service", sorted */
    size_t nnames;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parses and compiles `text` against `old`; the service names of a
 * compiled mapping are listed from its config. */
static struct mapping compile_as(const char *text, size_t len, const struct zone *old, bool whole)
{
    struct load l;
    load_init(&l, FILE_NAME);
    l.whole = whole;
    load_text(&l, text, len, old, &fuzz_host, NOW + (old ? 60 : 0));
    if (l.zone && l.diag.errors)
        fuzz_fail("a zone compiled from a file with %u errors", l.diag.errors);
    fuzz_check_diag(&l.diag, FILE_NAME);
    struct mapping m = {.cfg = l.cfg, .zone = l.zone};
    l.cfg = NULL;
    l.zone = NULL;
    load_finish(&l);
    if (!m.zone)
        return m;
    /* the names, from a parse that skips none (a reload's skips those
     * the old zone has) */
    struct diag d;
    diag_init(&d, FILE_NAME);
    config_free(m.cfg);
    m.cfg = config_parse(text, len, &d);
    diag_finish(&d);
    if (!m.cfg || m.cfg->nkept)
        fuzz_fail("a plain parse of a file that compiled failed or skipped");
    for (size_t i = 0; i < m.cfg->nnamespaces; i++)
        m.nnames += m.cfg->namespaces[i].nservices;
    m.names = calloc(m.nnames ? m.nnames : 1, sizeof(*m.names));
    if (!m.names)
        fuzz_fail("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < m.cfg->nnamespaces; i++) {
        const struct config_namespace *ns = &m.cfg->namespaces[i];
        for (size_t j = 0; j < ns->nservices; j++) {
            size_t n = strlen(ns->name) + strlen(ns->services[j].name) + 2;
            m.names[k] = malloc(n);
            if (!m.names[k])
                fuzz_fail("out of memory");
            snprintf(m.names[k++], n, "%s/%s", ns->name, ns->services[j].name);
        }
    }
    qsort(m.names, m.nnames, sizeof(*m.names), by_name);
    if (zone_stats(m.zone)->services != m.nnames)
        fuzz_fail("the zone has %zu services, the file %zu", zone_stats(m.zone)->services,
                  m.nnames);
    return m;
}

static struct mapping compile(const char *text, size_t len, const struct zone *old)
{
    return compile_as(text, len, old, false);
}

static void mapping_free(struct mapping *m)
{
    for (size_t i = 0; i < m->nnames; i++)
        free(m->names[i]);
    free(m->names);
    zone_free(m->zone);
    config_free(m->cfg);
}

/* Names of `old` that `new` lacks: both lists sorted, walked in step. */
static size_t removed(const struct mapping *old, const struct mapping *new)
{
    size_t gone = 0, j = 0;
    for (size_t i = 0; i < old->nnames; i++) {
        while (j < new->nnames && strcmp(new->names[j], old->names[i]) < 0)
            j++;
        if (j == new->nnames || strcmp(new->names[j], old->names[i]) != 0)
            gone++;
    }
    return gone;
}

/* The new text as a reload reads it: from a file. NULL if refused. */
static char *read_back(const char *text, size_t len, bool oversize, size_t *outlen)
{
    int fd = fuzz_memory_file(text, len);
    if (oversize && ftruncate(fd, ((off_t)CONFIG_MAX_MIB << 20) + 1) < 0)
        fuzz_fail("cannot grow the memory file");
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct diag d;
    diag_init(&d, FILE_NAME);
    char *buf = config_read(path, outlen, &d);
    close(fd);
    if (oversize) {
        if (buf || !d.text || !strstr(d.text, "error: larger than"))
            fuzz_fail("a file over %d MiB was not refused as too large", CONFIG_MAX_MIB);
    } else if (!buf) {
        fuzz_fail("config_read failed on a memory file: %s", d.text ? d.text : "");
    } else if (*outlen != len || memcmp(buf, text, len) != 0) {
        fuzz_fail("config_read gave %zu bytes back for %zu written", *outlen, len);
    }
    fuzz_check_diag(&d, FILE_NAME);
    diag_finish(&d);
    return buf;
}

static void differ(void *arg, const char *what)
{
    fuzz_fail("%s: the patched zone differs from the whole one: %s", (const char *)arg, what);
}

/* The reload of `old` by `text` (`now`, compiled as `now`) against the same
 * reload compiled whole: alike in every answer (zone_compare.h). */
static void check_patch(const struct zone *now, const char *text, size_t len,
                        const struct zone *old, const char *what)
{
    struct mapping whole = compile_as(text, len, old, true);
    if (!whole.zone)
        fuzz_fail("%s: a patch compiled where the whole zone does not", what);
    zone_compare(now, whole.zone, old, differ, (void *)(uintptr_t)what);
    if (zone_stats(now)->serial != zone_stats(whole.zone)->serial)
        fuzz_fail("%s: the patch's serial is not the whole zone's", what);
    mapping_free(&whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || fuzz_opens_device(data, size))
        return -1;
    uint8_t flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const char *sep = memmem(text, len, "\n===\n", 5);
    size_t run_len = sep ? (size_t)(sep - text) + 1 : len;
    const char *next = sep ? sep + 5 : text;
    size_t next_len = sep ? len - (size_t)(next - text) : len;

    struct mapping old = compile(text, run_len, NULL);
    if (!old.zone) {
        mapping_free(&old);
        old = compile(fallback, sizeof(fallback) - 1, NULL);
        if (!old.zone)
            fuzz_fail("the fallback mapping does not compile");
    }

    char *owned = NULL;
    if (flags & 1) {
        owned = read_back(next, next_len, flags & 2, &next_len);
        if (!owned) {
            mapping_free(&old);
            return 0;
        }
        next = owned;
    }
    struct mapping new = compile(next, next_len, old.zone);
    enum reload_verdict v = reload_decide(new.cfg, new.zone, old.zone);

    enum reload_verdict want = RELOAD_REJECT;
    if (new.zone) {
        size_t gone = removed(&old, &new), running = old.nnames;
        if (zone_stats(new.zone)->removed != gone)
            fuzz_fail("the zone counts %zu removed, the names %zu", zone_stats(new.zone)->removed,
                      gone);
        /* more than the share: gone > running * max / 100, whose integer
         * quotient gives the same answer for a whole `gone` */
        bool many =
            gone > RELOAD_REMOVAL_FLOOR && gone > running * (size_t) new.cfg->max_removal / 100;
        want = many && gone != new.cfg->confirm_removal ? RELOAD_HOLD : RELOAD_APPLY;
        if (!sep && !(flags & 1) && (gone || want != RELOAD_APPLY))
            fuzz_fail("an unchanged file removes %zu services", gone);
    } else if (!memchr(next, '[', next_len) && new.cfg &&new.cfg->nnamespaces) {
        fuzz_fail("a file without a section has namespaces");
    }
    if (!memchr(next, '[', next_len) && new.zone)
        fuzz_fail("a file without any section was accepted");
    if (v != want)
        fuzz_fail("reload_decide() said %d, the oracle %d", (int)v, (int)want);

    if (new.zone) {
        /* and back: the running file as the reload of the new zone, a
         * patch of a patch when the new one is a patch */
        check_patch(new.zone, next, next_len, old.zone, "the reload");
        struct mapping back = compile(text, run_len, new.zone);
        if (back.zone)
            check_patch(back.zone, text, run_len, new.zone, "the reload back");
        mapping_free(&back);
    }
    free(owned);
    mapping_free(&new);
    mapping_free(&old);
    return 0;
}
