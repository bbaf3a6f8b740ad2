/* test_load.c -- the one pipeline: a text or a file to a config and a zone, every diagnostic. */
#include "svcmapd/load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static const char good[] = "[namespace a]\nx = 10.0.0.1\ny = 10.0.0.2:80\n";

static void test_text(void)
{
    struct load l;
    load_init(&l, "t.ini");
    ok(load_text(&l, good, strlen(good), NULL, NULL, 1000), "a good text loads");
    ok(l.cfg && l.zone && l.diag.errors == 0, "a config and a zone, no error");
    ok(l.read && l.hash == config_hash(good, strlen(good)), "the text's hash");
    is_int(zone_stats(l.zone)->services, 2, "its services");
    is_int(zone_stats(l.zone)->serial, 1000, "the serial is `now` at start");

    /* compiled again against the first: unchanged, the serial stays */
    struct zone *first = l.zone;
    l.zone = NULL;
    ok(load_compile(&l, first, NULL, 2000), "compiled again against the zone it replaces");
    is_int(zone_stats(l.zone)->serial, 1000, "nothing changed: the old serial");
    ok(load_compile(&l, first, NULL, 3000), "and again (the zone held is freed first)");
    zone_free(first);
    load_finish(&l);
    load_finish(&l); /* twice is harmless */
}

static void test_errors(void)
{
    /* a config error and a zone error: both reported in one pass */
    static const char bad[] = "[namespace a]\nx = 10.0.0.300\ny = gone.a.svc.cluster.local\n";
    struct load l;
    load_init(&l, "t.ini");
    ok(!load_text(&l, bad, strlen(bad), NULL, NULL, 1000), "a bad text does not load");
    ok(l.cfg && !l.zone, "what was read is kept, no zone");
    is_int(l.diag.errors, 2, "two errors");
    ok(l.diag.text && strstr(l.diag.text, "t.ini:2: error:") &&
           strstr(l.diag.text, "t.ini:3: error:"),
       "the config's (line 2) and the zone's (line 3)");

    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    load_report(&l.diag, f);
    fclose(f);
    ok(out && l.diag.text && strcmp(out, l.diag.text) == 0,
       "reported to a file: the lines as they are");
    free(out);
    load_finish(&l);
}

static void test_file(void)
{
    char path[] = "/tmp/test_load_XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, good, strlen(good)) == (ssize_t)strlen(good), "a mapping file");
    close(fd);

    struct load l;
    load_init(&l, path);
    ok(load_text(&l, NULL, 0, NULL, NULL, 1000), "no text: the file is read");
    ok(l.read && l.hash == config_hash(good, strlen(good)), "the hash of its bytes");
    ok(l.cfg && strcmp(l.cfg->path, path) == 0, "the config knows its path");
    load_finish(&l);
    unlink(path);

    load_init(&l, path);
    ok(!load_parse(&l, NULL, 0), "a file that is gone: no config");
    ok(!l.read && !l.cfg, "nothing was read");
    ok(!load_compile(&l, NULL, NULL, 1000) && !l.zone, "nothing to compile");
    is_int(l.diag.errors, 1, "one error");
    ok(l.diag.text && strncmp(l.diag.text, path, strlen(path)) == 0 &&
           strstr(l.diag.text, ": error: cannot open: "),
       "FILE: error: cannot open: ...");
    load_finish(&l);
}

/* No host given: this machine's interfaces are listed, as svcmapd does. */
static void test_this_host(void)
{
    static const char text[] = "[server]\nlisten = 0.0.0.0:5353\n[namespace a]\nx = 10.0.0.1\n";
    static const uint8_t nsdns[] = "\2ns\3dns\7cluster\5local";
    struct load l;
    load_init(&l, "t.ini");
    ok(load_text(&l, text, strlen(text), NULL, NULL, 1000), "a wildcard listen address loads");
    struct zone_found found = {0};
    if (l.zone)
        zone_find(l.zone, nsdns, sizeof(nsdns), 1 /* A */, &found);
    ok(found.plan && found.plan->nsets[ZONE_ANSWER] == 1 && found.plan->sets[0]->count >= 1,
       "ns.dns has this machine's IPv4 addresses (127.0.0.1 at least)");
    load_finish(&l);
}

int main(void)
{
    test_text();
    test_errors();
    test_file();
    test_this_host();
    return done_testing();
}
