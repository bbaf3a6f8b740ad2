/* fuzz_config.c -- libFuzzer target: any text as a mapping file, parsed and compiled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/config_impl.h"
#include "config_chunks.h"
#include "fuzz.h"
#include "verify_compare.h"
#include "svcmapd/config.h"
#include "svcmapd/load.h"
#include "svcmapd/zone.h"

/*
 * The whole reading path of a reload, without the file: parse, and if the
 * text had no error, compile, then compile again against the first zone
 * as a reload of an unchanged file would. Everything is freed, so
 * LeakSanitizer checks the error paths too. Each diagnostic line must start
 * with the file name: that is how `svcmapd -t` and the reload log show them,
 * and a message that smuggles a newline in would break it.
 *
 * A few answers are then asked of each compiled zone, under the same
 * checks as fuzz_answer: strange but valid files make strange zones; and
 * the zone is transferred whole, every record checked against them. The
 * text is also read from a file in chunks of 1 to 7 bytes, and must give
 * the same diagnostics and config as in memory, and parsed with inih
 * reading every line, which must give the same again; and checked as
 * `svcmapd -t` checks it, in parts of one namespace (zone_verify()),
 * which must say and count what the whole compile does.
 */

#define FILE_NAME "fuzz.ini"
#define NOW       1700000000

/* Appends `label` to a wire name; false if it would not fit. */
static bool put_label(uint8_t *q, size_t *pos, size_t cap, const char *label, size_t len)
{
    if (len == 0 || len > 63 || *pos + 1 + len > cap)
        return false;
    q[(*pos)++] = (uint8_t)len;
    memcpy(q + *pos, label, len);
    *pos += len;
    return true;
}

/* A query for `svc`.`ns`.svc.`zone`, or `ns`.svc.`zone` when svc is NULL:
 * header, question, and an OPT of 4096 bytes when `edns`. */
static size_t make_query(uint8_t *q, size_t cap, const char *zone, const char *ns, const char *svc,
                         uint16_t qtype, bool edns)
{
    /* ID 0x1234, RD, one question, one additional record with EDNS */
    static const uint8_t header[12] = {0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    memcpy(q, header, sizeof(header));
    q[11] = edns ? 1 : 0;
    size_t pos = 12;
    if ((svc && !put_label(q, &pos, cap, svc, strlen(svc))) ||
        !put_label(q, &pos, cap, ns, strlen(ns)) || !put_label(q, &pos, cap, "svc", 3))
        return 0;
    for (const char *p = zone; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (!put_label(q, &pos, cap, p, l))
            return 0;
        p += l + (dot ? 1 : 0);
    }
    if (pos - 12 + 1 > 255 || pos + 1 + 4 + 11 > cap)
        return 0;
    q[pos++] = 0;
    q[pos++] = (uint8_t)(qtype >> 8);
    q[pos++] = (uint8_t)qtype;
    q[pos++] = 0; /* class IN */
    q[pos++] = 1;
    if (edns) {
        static const uint8_t opt[11] = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
        memcpy(q + pos, opt, sizeof(opt));
        pos += sizeof(opt);
    }
    return pos;
}

static void ask(const struct zone *z, const struct config *cfg)
{
    static const uint16_t types[] = {1, 28, 33, 5, 255};
    struct answer_ctx ctx = {.rng = 0x9e3779b97f4a7c15ULL, .no_wait = true};
    uint8_t q[512];
    /* the first services of the first namespaces, and each namespace's own
     * name (no records: NODATA): enough shapes, bounded time */
    for (size_t i = 0; i < cfg->nnamespaces && i < 2; i++) {
        const struct config_namespace *ns = &cfg->namespaces[i];
        size_t nsvc = ns->nservices < 3 ? ns->nservices : 3;
        for (size_t j = 0; j <= nsvc; j++) {
            const char *svc = j < nsvc ? ns->services[j].name : NULL;
            for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
                bool edns = t & 1;
                size_t n = make_query(q, sizeof(q), cfg->zone, ns->name, svc, types[t], edns);
                if (n) {
                    fuzz_answer_checked(&ctx, z, q, n, false, NULL);
                    fuzz_answer_checked(&ctx, z, q, n, true, NULL);
                }
            }
        }
    }
}

/* The whole zone, as a transfer sends it: the frame answer_query() would
 * write for an AXFR of the apex (ID, QR, AA, the question), then every
 * message checked (fuzz_check_transfer()). Strange files make strange
 * zones, and a walk must give each of their records once. */
static void transfer(const struct zone *z, const struct config *cfg)
{
    uint8_t first[300] = {0x12, 0x34, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t pos = 12;
    for (const char *p = cfg->zone; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (!put_label(first, &pos, sizeof(first) - 5, p, l))
            return;
        p += l + (dot ? 1 : 0);
    }
    first[pos++] = 0;
    first[pos++] = 0;
    first[pos++] = 252; /* AXFR */
    first[pos++] = 0;
    first[pos++] = 1;
    fuzz_check_transfer(z, first, pos);
}

/* The text read from a memory file by config_load() a few bytes at a
 * time, lines crossing every chunk boundary: the same as parsed in memory. */
static void read_in_chunks(const uint8_t *data, size_t size)
{
    int fd = fuzz_memory_file(data, size);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char *why = chunks_differ((const char *)data, size, path, 1 + size % 7, FILE_NAME);
    close(fd);
    if (why)
        fuzz_fail("%s", why);
    why = inih_differs((const char *)data, size, FILE_NAME);
    if (why)
        fuzz_fail("%s", why);
}

/* `svcmapd -t` on the text, in parts of one namespace each. */
static void verify_in_parts(const uint8_t *data, size_t size)
{
    size_t most;
    char *why = verify_differs((const char *)data, size, &fuzz_host, NOW, 1, &most);
    if (why)
        fuzz_fail("svcmapd -t, in parts, differs from a whole compile:\n%s", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_opens_device(data, size))
        return -1;
    read_in_chunks(data, size);
    verify_in_parts(data, size);

    struct load l;
    load_init(&l, FILE_NAME);
    if (load_parse(&l, (const char *)data, size) && l.diag.errors == 0) {
        unsigned before = l.diag.errors;
        load_compile(&l, NULL, &fuzz_host, NOW);
        struct zone *z = l.zone;
        /* zone.h: NULL exactly when an error was reported */
        if ((z == NULL) != (l.diag.errors > before))
            fuzz_fail("zone_compile gave %s with %u new errors", z ? "a zone" : "NULL",
                      l.diag.errors - before);
        if (z) {
            /* the same file again, later: nothing changed, the serial stays */
            l.zone = NULL; /* kept, as the zone replaced */
            if (!load_compile(&l, z, &fuzz_host, NOW + 60))
                fuzz_fail("a zone that compiled once does not compile again");
            const struct zone_stats *a = zone_stats(z), *b = zone_stats(l.zone);
            if (a->serial != b->serial || b->added || b->removed || b->changed)
                fuzz_fail("unchanged file, serial %u -> %u, %zu added, %zu removed, %zu changed",
                          a->serial, b->serial, b->added, b->removed, b->changed);
            ask(l.zone, l.cfg);
            transfer(l.zone, l.cfg);
        }
        zone_free(z);
    }
    fuzz_check_diag(&l.diag, FILE_NAME);
    load_finish(&l);
    return 0;
}
