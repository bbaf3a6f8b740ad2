/* test_zone_verify.c -- `svcmapd -t` compiled in parts says what a whole compile says. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "verify_compare.h"

#define NOW 1700000000
#define L60 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh"

static const uint8_t host4[][4] = {{192, 0, 2, 1}};
static const struct zone_host host = {host4, 1, NULL, 0};

/* `text` verified in parts of `part` services says, to the character,
 * what compiling it whole says, and counts the same; the most services
 * compiled at once are `compiled` (0: not checked). */
static void same(const char *text, size_t part, size_t compiled, const char *what)
{
    size_t most = 0;
    char *why = verify_differs(text, strlen(text), &host, NOW, part, &most);
    ok(!why, "%s: the same verdict as a whole compile", what);
    if (why)
        fprintf(stderr, "%s", why);
    free(why);
    if (compiled)
        is_int(most, compiled, "%s: at most %zu services compiled at once", what, compiled);
}

/* What `svcmapd -t` says of `text`, in parts of one service. */
static char *verified(const char *text)
{
    struct load l;
    load_init(&l, "t.ini");
    load_parse(&l, text, strlen(text));
    struct zone_stats st;
    zone_verify(l.cfg, &host, NOW, 1, &l.diag, &st);
    char *said = strdup(l.diag.text ? l.diag.text : "");
    load_finish(&l);
    return said;
}

/* A mapping of `nns` namespaces of `per` services each, every kind of
 * service, and `extra` appended to the settings and to the end. */
static char *mapping(size_t nns, size_t per, const char *settings, const char *tail)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fprintf(f, "[server]\nzone = cluster.local\nreverse = 10.0.0.0/8, fd00::/16\n%s", settings);
    for (size_t i = 0; i < nns; i++) {
        fprintf(f, "[namespace ns-%zu]\n", i);
        for (size_t j = 0; j < per; j++) {
            size_t k = i * per + j;
            switch (k % 5) {
            case 0:
                fprintf(f, "s%zu = 10.0.%zu.%zu\n", j, k / 250, k % 250 + 1);
                break;
            case 1:
                fprintf(f, "s%zu = 10.1.0.1, 10.1.0.2, fd00::%zx\n", j, k);
                break;
            case 2:
                fprintf(f, "s%zu = host-%zu.example.net\n", j, k);
                break;
            case 3:
                fprintf(f, "s%zu = 10.2.0.%zu:%zu\n", j, k % 250 + 1, 1000 + k);
                break;
            default:
                fprintf(f, "s%zu = db.example.net resolve=no\n", j);
                break;
            }
        }
    }
    fputs(tail, f);
    fclose(f);
    return out;
}

static void test_parts(void)
{
    char *text = mapping(12, 7, "", "");
    same(text, 1, 7, "12 namespaces, each its own part");
    same(text, 20, 21, "parts of three namespaces");
    same(text, 1000, 84, "one part");
    free(text);

    /* the unresolved hostnames of every part, in one warning, at the first */
    text = mapping(9, 4, "[upstream]\nservers = /nonexistent/resolv.conf\n", "");
    same(text, 1, 4, "hostnames unresolved in every part");
    char *said = verified(text);
    ok(strstr(said, "t.ini:9: warning: 7 hostname targets outside the zone") != NULL,
       "one warning counts them all, at the line of the first");
    free(said);
    free(text);
}

static void test_errors(void)
{
    /* Errors of the parser and of the compiler, in several parts: with a
     * zone of 127 characters, a service name of 63 in a namespace of 63
     * is too long, and so are the endpoint and SRV names of one in a
     * namespace of 50. */
    char zone[128], l50[51], l63[64];
    snprintf(zone, sizeof(zone), "%.60s.%.60s.local", L60, L60);
    snprintf(l50, sizeof(l50), "%.50s", L60);
    snprintf(l63, sizeof(l63), "%.3s%.60s", L60, L60);
    char text[2048];
    snprintf(text, sizeof(text),
             "[server]\nzone = %s\n"
             "[namespace a]\nx = 10.0.0.300\ny = 10.0.0.1\n"
             "[namespace %s]\n%s = 10.0.0.2\n"
             "[namespace %s]\n%s = 10.0.0.3, 10.0.0.4\n%s = 10.0.0.5:80\nok = 10.0.0.6\n"
             "[namespace c]\ny = 10.0.0.7\nz = host.example\n",
             zone, l63, l63, l50, l63, l63 + 1);
    same(text, 1, 0, "errors of the parser and of several parts");
    char *said = verified(text);
    size_t errors = 0;
    for (const char *p = said; (p = strstr(p, ": error: ")); p++)
        errors++;
    is_int(errors, 5, "five errors: the address, the name, two endpoints, the SRV name");
    free(said);
}

/* What the parts cannot say alone is said by a whole compile. */
static void test_whole(void)
{
    char *text = mapping(6, 3, "", "[namespace z]\nalias = s0.ns-1.svc.cluster.local\n");
    same(text, 1, 19, "a CNAME into the zone: compiled whole");
    free(text);

    text = mapping(6, 3, "", "[namespace z]\ngone = nothing.ns-1.svc.cluster.local\n");
    same(text, 1, 0, "a dangling CNAME into the zone: its error, once");
    free(text);

    text = mapping(6, 3, "", "[namespace z]\napex = Cluster.Local\n");
    same(text, 1, 0, "a CNAME to the apex, in capitals");
    free(text);

    text = mapping(6, 3, "", "[namespace z]\nnear = mycluster.local\n");
    same(text, 1, 3, "a name that only ends like the zone is outside it");
    free(text);

    static const char overlap[] = "[server]\nzone = in-addr.arpa\nreverse = 10.0.0.0/8\n"
                                  "[namespace a]\nx = 10.0.0.1\n[namespace b]\ny = 10.0.0.2\n";
    same(overlap, 1, 0, "settings that are an error: said once");
}

/* Every mapping file of the tests, compiled whole and in parts of one
 * namespace. */
static void test_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        ok(0, "cannot open %s", dir);
        return;
    }
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ini") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        char *text = calloc(1, 1 << 20);
        size_t got = f && text ? fread(text, 1, (1 << 20) - 1, f) : 0;
        if (f)
            fclose(f);
        if (got && !memchr(text, 0, got)) {
            same(text, 1, 0, e->d_name);
            n++;
        }
        free(text);
    }
    closedir(d);
    ok(n > 0, "%zu files of %s", n, dir);
}

int main(int argc, char **argv)
{
    test_parts();
    test_errors();
    test_whole();
    for (int i = 1; i < argc; i++)
        test_files(argv[i]);
    return done_testing();
}
