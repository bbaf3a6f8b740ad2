/* test_config_skip.c -- text_fp, skipping unchanged services, and the chunked file reader. */
#include <stdlib.h>
#include <unistd.h>

#include "../../src/config_impl.h"
#include "svcmapd/config.h"
#include "config_chunks.h"
#include "tap.h"

static const char head[] = "[server]\nzone = cluster.local\n[namespace prod]\n";

/* The text_fp of service `svc` of namespace prod after `head` and `lines`. */
static uint64_t fp_of(const char *lines, const char *svc)
{
    char text[1024];
    snprintf(text, sizeof(text), "%s%s", head, lines);
    struct diag d;
    diag_init(&d, "t.ini");
    struct config *cfg = config_parse(text, strlen(text), &d);
    uint64_t fp = 0;
    for (size_t i = 0; cfg && d.errors == 0 && i < cfg->namespaces[0].nservices; i++)
        if (strcmp(cfg->namespaces[0].services[i].name, svc) == 0)
            fp = cfg->namespaces[0].services[i].text_fp;
    if (!fp)
        printf("#   no fp for %s: %s", svc, d.text ? d.text : "\n");
    config_free(cfg);
    diag_finish(&d);
    return fp;
}

static void test_text_fp(void)
{
    uint64_t a = fp_of("a = 10.0.0.1,10.0.0.2\n", "a");
    ok(a != 0, "a service has a text_fp");
    ok(fp_of("a = 10.0.0.1, 10.0.0.2  ; comment\n", "a") == a, "spaces and a comment: same");
    ok(fp_of("A = 10.0.0.1 10.0.0.2\n", "a") == a,
       "the name's case, whitespace as separator: same");
    ok(fp_of("a = 10.0.0.1\n  10.0.0.2\n", "a") == a, "a continuation line: same");
    ok(fp_of("b = 1.1.1.1\na = 10.0.0.1,10.0.0.2\n", "a") == a, "its place in the file: same");
    ok(fp_of("a = 10.0.0.1,10.0.0.3\n", "a") != a, "another address: another fp");
    ok(fp_of("a = 10.0.0.2,10.0.0.1\n", "a") != a, "another order: another fp");
    ok(fp_of("a = 10.0.0.1,10.0.0.2 ttl=5\n", "a") != a, "an option added: another fp");
    ok(fp_of("b = 10.0.0.1,10.0.0.2\n", "b") != a, "another name: another fp");
    /* token boundaries count: the same bytes cut elsewhere */
    ok(fp_of("x = 10.0.0.1,10.0.0.2\n", "x") != fp_of("x = 10.0.0.11,0.0.0.2\n", "x"),
       "tokens are delimited");
    ok(fp_of("x = ab.example.com\n", "x") != fp_of("xa = b.example.com\n", "xa"),
       "name and value are delimited");
}

/* ---- skipping ---- */

struct asked {
    char what[64][80]; /* "ns/name" */
    uint64_t fp[64];
    int n;
    const char *keep; /* names answered true, space separated, " a b " */
};

static bool unchanged(void *arg, const char *ns, const char *name, uint64_t fp)
{
    struct asked *a = arg;
    if (a->n < 64) {
        snprintf(a->what[a->n], sizeof(a->what[0]), "%s/%s", ns, name);
        a->fp[a->n++] = fp;
    }
    char pat[80];
    snprintf(pat, sizeof(pat), " %s ", name);
    return a->keep && strstr(a->keep, pat) != NULL;
}

static struct config *parse_skip(const char *text, struct asked *a, struct diag *d)
{
    struct config_skip skip = {unchanged, a};
    diag_init(d, "t.ini");
    return config_parse_skip(text, strlen(text), &skip, d);
}

static void test_skip(void)
{
    const char *text = "[server]\nzone = cluster.local\n"
                       "[namespace Prod]\nA = 10.0.0.1\nb = db.example.com\nc = 10.0.0.3\n"
                       "[namespace dev]\na = 10.0.0.9\n";
    struct diag d0, d;
    diag_init(&d0, "t.ini");
    struct config *full = config_parse(text, strlen(text), &d0);
    struct asked a = {.keep = " a c "};
    struct config *cfg = parse_skip(text, &a, &d);
    ok(full && cfg && d.errors == 0 && d0.errors == 0, "both parse");
    is_int(a.n, 4, "asked about every service");
    is_str(a.what[0], "prod/a", "asked with the checked, lower-case labels");
    is_str(a.what[3], "dev/a", "and the namespace of each");
    ok(a.fp[0] == full->namespaces[0].services[0].text_fp &&
           a.fp[1] == full->namespaces[0].services[1].text_fp,
       "asked with the text_fp the full parse gives");
    is_int(cfg->nkept, 3, "three kept");
    is_int(cfg->nservices, 1, "one stored");
    is_int(cfg->namespaces[0].nkept, 2, "two of them in prod");
    is_int(cfg->namespaces[0].nservices, 1, "prod stores one");
    is_str(cfg->namespaces[0].services[0].name, "b", "the one not kept");
    is_int(cfg->namespaces[0].services[0].ntargets, 1, "with its target");
    is_int(cfg->namespaces[1].nservices, 0, "dev stores none");
    ok(cfg->hash == full->hash, "the same hash of the text");
    config_free(cfg);
    config_free(full);
    diag_finish(&d);
    diag_finish(&d0);

    /* a duplicate is caught whether the first or the second was skipped */
    const char *dup = "[server]\nzone = cluster.local\n[namespace prod]\na = 10.0.0.1\n"
                      "b = 10.0.0.2\na = 10.0.0.3\n[namespace dev]\na = 10.0.0.1\n";
    struct asked b = {.keep = " a b "};
    cfg = parse_skip(dup, &b, &d);
    ok(d.text && strstr(d.text, "t.ini:6: error: duplicate service 'a' in namespace 'prod' (first "
                                "defined on line 4)"),
       "a skipped service's duplicate is reported with its first line");
    is_int(d.errors, 1, "only that error: the other namespace's 'a' is its own");
    is_int(b.n, 3, "a duplicate is not asked about");
    config_free(cfg);
    diag_finish(&d);

    /* errors elsewhere are still given: a bad name is never asked about */
    const char *bad = "[server]\nzone = cluster.local\nttl = x\n[namespace prod]\na = 10.0.0.1\n"
                      "b_ = 10.0.0.2\nc = 10.0.0.300\n";
    struct diag want;
    diag_init(&want, "t.ini");
    config_free(config_parse(bad, strlen(bad), &want));
    struct asked c = {.keep = " a c "};
    cfg = parse_skip(bad, &c, &d);
    is_int(c.n, 2, "the bad name is not asked about");
    ok(d.errors == 2 && want.errors == 3 && strstr(d.text, "t.ini:3:") &&
           strstr(d.text, "t.ini:6:"),
       "the errors of other lines are given");
    config_free(cfg);
    diag_finish(&d);
    diag_finish(&want);

    /* a warning is remembered, so that a caller can re-parse such a line */
    struct asked w = {0};
    cfg = parse_skip("[server]\nzone = c.local\n[namespace p]\na = 10.0.0.1 srv=_x._tcp\n"
                     "b = 10.0.0.2\n",
                     &w, &d);
    ok(cfg && d.warnings == 1 && cfg->namespaces[0].services[0].warned &&
           !cfg->namespaces[0].services[1].warned,
       "config_service.warned says which line gave a warning");
    config_free(cfg);
    diag_finish(&d);
}

/* ---- the chunked reader ---- */

/* True if `text` read from a file `chunk` bytes at a time gives what the
 * in-memory parse gives. */
static bool same_read(const char *text, size_t len, size_t chunk)
{
    char path[] = "/tmp/test_config_skip.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        return false;
    close(fd);
    char *why = chunks_differ(text, len, path, chunk, "t.ini");
    unlink(path);
    bool same = why == NULL;
    for (char *line = why, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        printf("#   %s\n", line);
    }
    free(why);
    return same;
}

static void test_chunks(void)
{
    char big[8192];
    const char *cases[] = {
        "[server]\nzone = cluster.local\n[namespace prod]\na = 10.0.0.1\nb = 10.0.0.2,\n  "
        "10.0.0.3\n",
        "\xEF\xBB\xBF[server]\r\nzone = cluster.local\r\n[namespace prod]\r\na = 10.0.0.1\r\nb = "
        "x.org",
        "[server]\nzone = cluster.local\n[namespace prod]\na = 10.0.0.1\nb = 1\0.2\nc = 10.0.0.3\n",
        "[server]\nzone = cluster.local\n[namespace prod]\nbad line\n[namespace x\nc = 1.2.3.4 "
        "1.2.3.4\n",
        "",
        "\n\n; only a comment",
    };
    size_t lens[] = {0, 0, 101 - 28, 0, 0, 0};
    lens[2] =
        sizeof("[server]\nzone = cluster.local\n[namespace prod]\na = 10.0.0.1\nb = 1\0.2\nc = "
               "10.0.0.3\n") -
        1;
    size_t chunks[] = {1, 2, 3, 7, 8, 64, 1 << 20};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t len = lens[c] ? lens[c] : strlen(cases[c]);
        bool all = true;
        for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++)
            all = same_read(cases[c], len, chunks[k]) && all;
        ok(all, "case %zu: read in chunks of 1 byte to 1 MiB, the same as in memory", c);
    }

    /* overlong lines, longer than the reader holds: blank, a comment, a
     * key, indented (a continuation), with a NUL, at the end without a
     * newline; and a BOM before a long first line */
    const char *fill[] = {" ", ";", "k", " k", "\0", "x"};
    for (size_t f = 0; f < sizeof(fill) / sizeof(fill[0]); f++) {
        size_t n = (size_t)snprintf(big, sizeof(big),
                                    "%s[server]\nzone = c.local\n[namespace p]\na = 1.2.3.4\n",
                                    f == 5 ? "\xEF\xBB\xBF" : "");
        size_t flen = f == 4 ? 1 : strlen(fill[f]);
        memcpy(big + n, fill[f], flen);
        n += flen;
        memset(big + n, f == 0 ? ' ' : 'y', 3000);
        n += 3000;
        if (f == 4) {
            memcpy(big + n, "\0", 1);
            n++;
        }
        if (f != 5)
            n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\nb = 1.2.3.5\n");
        ok(same_read(big, n, 1) && same_read(big, n, 100) && same_read(big, n, 5000),
           "an overlong line (%zu) read in chunks: the same as in memory", f);
    }
    /* a byte order mark before a long first line, a comment */
    size_t n = (size_t)snprintf(big, sizeof(big), "\xEF\xBB\xBF;");
    memset(big + n, 'y', 3000);
    n += 3000;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\n[server]\nzone = c.local\n");
    ok(same_read(big, n, 1) && same_read(big, n, 7), "a BOM before an overlong comment line");
}

static void test_hash(void)
{
    const char text[] = "[server]\nzone = cluster.local\n; 0123456789abcdef0123456789\n";
    size_t len = sizeof(text) - 1;
    uint64_t whole = config_hash(text, len);
    bool same = true;
    for (size_t cut = 1; cut < 13; cut++) {
        struct hasher h;
        hasher_init(&h);
        for (size_t at = 0; at < len; at += cut)
            hasher_add(&h, text + at, at + cut > len ? len - at : cut);
        same = same && hasher_end(&h) == whole;
    }
    ok(same, "config_hash() fed in pieces is the hash of the whole");
    ok(config_hash(text, len - 1) != whole && config_hash("", 0) != config_hash("\0", 1),
       "another length, another hash");
}

static void test_read_errors(void)
{
    struct diag d;
    diag_init(&d, "t.ini");
    struct config_skip none = {0};
    ok(!config_load_skip("/nonexistent/t.ini", &none, &d) && d.text &&
           strstr(d.text, "t.ini: error: cannot open: No such file"),
       "a missing file: cannot open");
    diag_finish(&d);
    diag_init(&d, "t.ini");
    ok(!config_load_skip("/tmp", NULL, &d) && d.text &&
           strstr(d.text, "t.ini: error: not a regular file (a directory)"),
       "a directory is refused");
    diag_finish(&d);
    diag_init(&d, "t.ini");
    ok(!config_load_skip("/dev/zero", NULL, &d) && d.text &&
           strstr(d.text, "t.ini: error: not a regular file (a character device)"),
       "a device is refused before it is read");
    diag_finish(&d);
}

/* A callback that keeps a service only when its line says what `want`
 * says (its text_fp), as the running zone does. */
struct same {
    uint64_t want;
    int asked;
};

static bool same_fp(void *arg, const char *ns, const char *name, uint64_t fp)
{
    struct same *s = arg;
    (void)ns;
    (void)name;
    s->asked++;
    return fp == s->want;
}

/* `text` ([namespace a] follows) parsed with skipping, in memory and from
 * a file read in chunks of `chunk` bytes: whether x was kept, and that
 * both agree and asked once about each service. */
static bool kept_x(const char *what, const char *text, const char *want_line, size_t chunk)
{
    char full[512], want[256];
    snprintf(full, sizeof(full), "[server]\nzone = cluster.local\n[namespace a]\n%sz = 10.9.9.9\n",
             text);
    snprintf(want, sizeof(want), "[namespace a]\n%s", want_line);
    struct diag d0, d1, d2;
    diag_init(&d0, "t.ini");
    struct config *w = config_parse(want, strlen(want), &d0);
    struct same s1 = {w ? w->namespaces[0].services[0].text_fp : 0, 0}, s2 = s1;
    struct config_skip k1 = {same_fp, &s1}, k2 = {same_fp, &s2};
    diag_init(&d1, "t.ini");
    struct config *a = config_parse_skip(full, strlen(full), &k1, &d1);

    char path[] = "/tmp/test_config_skip_XXXXXX";
    int fd = mkstemp(path);
    bool wrote = fd >= 0 && write(fd, full, strlen(full)) == (ssize_t)strlen(full);
    if (fd >= 0)
        close(fd);
    size_t saved = config_chunk;
    config_chunk = chunk;
    diag_init(&d2, "t.ini");
    struct config *b = wrote ? config_load_skip(path, &k2, &d2) : NULL;
    config_chunk = saved;
    unlink(path);

    bool kept = a && a->nkept == 1;
    ok(a && b && a->nkept == b->nkept && a->nservices == b->nservices && !d1.errors && !d2.errors,
       "%s: in memory and in chunks of %zu, the same", what, chunk);
    ok(s1.asked == 2 && s2.asked == 2, "%s: asked once about each service (%d, %d)", what, s1.asked,
       s2.asked);
    config_free(w);
    config_free(a);
    config_free(b);
    diag_finish(&d0);
    diag_finish(&d1);
    diag_finish(&d2);
    return kept;
}

/* Lines recognized before inih reads them (unchanged_key()): kept exactly
 * when the line's whole value is what the zone has. */
static void test_unchanged_lines(void)
{
    const char *x = "x = 10.0.0.1, 10.0.0.2\n";
    ok(kept_x("as it was", x, x, 1 << 20), "the line as it was: kept");
    ok(kept_x("respaced", "X\t=10.0.0.1 ,10.0.0.2   ; moved\n", x, 1 << 20),
       "another spacing, case and comment: kept");
    ok(kept_x("colon", "x: 10.0.0.1 10.0.0.2\n", x, 1 << 20), "':' as inih reads it: kept");
    ok(!kept_x("continued", "x = 10.0.0.1\n  10.0.0.2\n", "x = 10.0.0.1\n", 1 << 20),
       "a continuation line follows: not the zone's");
    ok(!kept_x("blank, continued", "x = 10.0.0.1\n\n  10.0.0.2\n", "x = 10.0.0.1\n", 1 << 20),
       "a continuation after a blank line: not the zone's");
    ok(!kept_x("comment, continued", "x = 10.0.0.1\n; note\n  10.0.0.2\n", "x = 10.0.0.1\n",
               1 << 20),
       "a continuation after a comment: not the zone's");
    ok(kept_x("whole value", "x = 10.0.0.1\n  10.0.0.2\n", x, 1 << 20),
       "and with it, the whole value: kept");
    for (size_t chunk = 1; chunk <= 9; chunk += 4)
        ok(kept_x("in chunks", x, x, chunk), "read in chunks of %zu: kept", chunk);
    ok(!kept_x("another address", "x = 10.0.0.1 10.0.0.3\n", x, 1 << 20),
       "another address: not kept");
}

/* Service lines the parser reads without inih (read_key_line()) give
 * what inih gives, with every shape of line around them. */
static void test_lines_without_inih(void)
{
    static const char *const texts[] = {
        "[namespace a]\nx = 10.0.0.1, 10.0.0.2\ny=10.0.0.3\n",
        "[namespace a]\nX\t=10.0.0.1 ,10.0.0.2   ; moved\nY = 10.0.0.3;no comment\n",
        "[namespace a]\nx: 10.0.0.1 10.0.0.2\ny = a:b\nz = [fd00::1]:53 # note\n",
        "[namespace a]\nx = 10.0.0.1\n  10.0.0.2\ny = 10.0.0.3\n",
        "[namespace a]\nx = 10.0.0.1\n\n  10.0.0.2\ny = 10.0.0.3\n",
        "[namespace a]\nx = 10.0.0.1\n; note\n  10.0.0.2\n",
        "[namespace a]\n = 10.0.0.1\n-x- = 10.0.0.1\nx = 10.0.0.1\nx = 10.0.0.2\n",
        "[namespace a]\nx =\ny = ;\nz = , ,\nw = web.example.com ttl=5 resolve=no\n",
        "[namespace a]\nx = 10.0.0.1 ; c = d\ny == 10.0.0.2\nz := 10.0.0.3\n",
        "x = 10.0.0.1\n[namespace a\ny = 10.0.0.2\n[nope]\nz = 10.0.0.3\n",
        "\xEF\xBB\xBF[namespace a]\r\nx = 10.0.0.1\r\ny = 10.0.0.2 \r\n",
        "[namespace a]\nx = 10.0.0.1\n    y = 10.0.0.2\nz = 10.0.0.3",
        "[namespace a]\nx = 10.0.0.1\n[server]\nttl = 5\n[namespace b]\nx = 10.0.0.1\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *why = inih_differs(texts[i], strlen(texts[i]), "t.ini");
        ok(!why, "text %zu: read without inih as inih reads it", i);
        if (why)
            fprintf(stderr, "%s\n", why);
        free(why);
    }
}

int main(void)
{
    test_lines_without_inih();
    test_text_fp();
    test_skip();
    test_unchanged_lines();
    test_chunks();
    test_hash();
    test_read_errors();
    return done_testing();
}
