/* test_reload.c -- which reloads are applied, held or rejected, and who hears how they end. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svcmapd/load.h"
#include "svcmapd/reload.h"
#include "svcmapd/zone_ref.h"
#include "tap.h"

/* A mapping of services s1..sN (s`first`.. on), with `server` lines. */
struct mapping {
    struct config *cfg;
    struct zone *zone;
};

static struct mapping mapping(int first, int n, const char *server, const struct zone *old)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof(text), "[server]\n%s\n[namespace a]\n", server);
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "s%d = 10.0.%d.%d\n", i, i / 250,
                                i % 250 + 1);
    struct load l;
    load_init(&l, "r.ini");
    load_text(&l, text, len, old, NULL, 1);
    struct mapping m = {l.cfg, l.zone};
    l.cfg = NULL;
    l.zone = NULL;
    load_finish(&l);
    return m;
}

static void mapping_free(struct mapping *m)
{
    zone_free(m->zone);
    config_free(m->cfg);
}

/* The verdict on going from `running` services to s1..s`keep` with `server`. */
static enum reload_verdict verdict(int running, int keep, const char *server)
{
    struct mapping old = mapping(1, running, "", NULL);
    struct mapping new = mapping(1, keep, server, old.zone);
    enum reload_verdict v = reload_decide(new.cfg, new.zone, old.zone);
    mapping_free(&new);
    mapping_free(&old);
    return v;
}

static void test_decide(void)
{
    struct mapping m = mapping(1, 3, "", NULL);
    is_int(reload_decide(m.cfg, NULL, m.zone), RELOAD_REJECT, "no zone: rejected");
    is_int(reload_decide(m.cfg, m.zone, NULL), RELOAD_APPLY, "nothing running: applied");
    mapping_free(&m);

    is_int(verdict(3, 1, ""), RELOAD_APPLY, "2 of 3 removed: under the floor");
    is_int(verdict(12, 2, ""), RELOAD_APPLY, "10 of 12 removed: at the floor");
    is_int(verdict(12, 1, ""), RELOAD_HOLD, "11 of 12 removed: held");
    is_int(verdict(100, 50, ""), RELOAD_APPLY, "50 of 100 removed: 50%% is allowed");
    is_int(verdict(100, 49, ""), RELOAD_HOLD, "51 of 100 removed: held");
    is_int(verdict(41, 1, "confirm-removal = 40"), RELOAD_APPLY, "40 removed, 40 confirmed");
    is_int(verdict(41, 1, "confirm-removal = 39"), RELOAD_HOLD, "40 removed, 39 confirmed");
    is_int(verdict(41, 0, "confirm-removal = 40"), RELOAD_HOLD,
           "a torn copy of the confirming file removes 41: held");
    is_int(verdict(100, 0, "max-removal = 100"), RELOAD_APPLY, "max-removal = 100: no guard");
    is_int(verdict(100, 89, "max-removal = 0"), RELOAD_HOLD, "max-removal = 0: 11 removed held");
    is_int(verdict(100, 90, "max-removal = 0"), RELOAD_APPLY, "max-removal = 0: the floor stays");

    /* all replaced by new names: every running service counts as removed */
    struct mapping old = mapping(1, 20, "", NULL);
    struct mapping new = mapping(100, 20, "", old.zone);
    is_int(reload_decide(new.cfg, new.zone, old.zone), RELOAD_HOLD, "20 renamed: 20 removed");
    mapping_free(&new);
    mapping_free(&old);
}

/* The restart-only settings of `server` lines against a default config. */
static unsigned restart(const char *running, const char *next)
{
    struct mapping a = mapping(1, 1, running, NULL);
    struct mapping b = mapping(1, 1, next, NULL);
    unsigned bits = a.cfg && b.cfg ? reload_restart_changes(a.cfg, b.cfg) : ~0u;
    mapping_free(&a);
    mapping_free(&b);
    return bits;
}

static void test_restart(void)
{
    is_int(restart("", ""), 0, "the same settings: no restart");
    is_int(restart("ttl = 30\ntcp-idle-timeout = 3", ""), 0, "what a reload applies: none");
    is_int(restart("listen = 127.0.0.1:53, [::1]:53", "listen = [::1]:53, 127.0.0.1:53"), 0,
           "listen addresses in another order: none");
    is_int(restart("", "listen = 127.0.0.1:54"), RELOAD_RESTART_LISTEN, "listen");
    is_int(restart("workers = 1", "workers = 2"), RELOAD_RESTART_WORKERS, "workers");
    is_int(restart("", "user = 0"), RELOAD_RESTART_USER, "user set");
    is_int(restart("user = 0", "user = root"), RELOAD_RESTART_USER, "user changed");
    is_int(restart("[http]\nmetrics = 127.0.0.1:9153", "[http]\nmetrics = 127.0.0.1:9154"),
           RELOAD_RESTART_HTTP, "an HTTP endpoint moved");
    is_int(restart("", "[http]\nhealth = 127.0.0.1:8080"), RELOAD_RESTART_HTTP,
           "an HTTP endpoint turned on");
    is_int(restart("", "[control]\nsocket = /run/svcmapd/control.sock"), RELOAD_RESTART_CONTROL,
           "the control socket turned on");
    is_int(restart("[control]\nsocket = /run/a.sock", "[control]\nsocket = /run/b.sock"),
           RELOAD_RESTART_CONTROL, "the control socket moved");
    is_int(restart("state-dir = /var/lib/a", "state-dir = /var/lib/b"), RELOAD_RESTART_STATE_DIR,
           "the state directory moved");
    is_int(restart("state-dir = /var/lib/a", "state-dir = /var/lib/a"), 0,
           "the same state directory: none");
    is_int(restart("workers = 1", "workers = 2\nlisten = 127.0.0.1:54"),
           RELOAD_RESTART_LISTEN | RELOAD_RESTART_WORKERS, "two at once: both");
}

/* What the outcome callback heard. */
struct heard {
    int n;
    uint64_t seq[8];
    enum reload_verdict verdict[8];
    char line[8][RELOAD_LINE_MAX];
    unsigned errors[8];
    char *text; /* of the last applied one, taken */
    size_t len;
    uint32_t serial;
};

static void on_outcome(void *arg, struct reload_outcome *o)
{
    struct heard *h = arg;
    if (h->n < 8) {
        h->seq[h->n] = o->seq;
        h->verdict[h->n] = o->verdict;
        snprintf(h->line[h->n], sizeof(h->line[0]), "%s", o->line);
        h->errors[h->n] = o->diag->errors;
    }
    h->n++;
    if (o->text) {
        free(h->text);
        h->text = o->text;
        h->len = o->len;
        o->text = NULL;
        h->serial = o->serial;
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Runs the loop until `h` heard `n` outcomes (5 s at most). */
static void wait_heard(struct event_base *base, const struct heard *h, int n)
{
    for (int i = 0; i < 5000 && h->n < n; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* The reloader on a loop: reload_run()'s numbers, requests during a
 * reload folded into one more, the outcome of each with its line, its
 * diagnostics and the text it applied; the last good copy ended by the
 * first reload applied. */
static void test_outcomes(void)
{
    char path[] = "/tmp/test_reload_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        ok(0, "a temporary file");
        return;
    }
    close(fd);
    const char *good = "[namespace a]\nx = 10.0.0.1\n";
    write_file(path, good);
    struct load l;
    load_init(&l, path);
    load_text(&l, NULL, 0, NULL, NULL, 1000);
    struct event_base *base = event_base_new();
    struct zone_ref *ref = zone_ref_new(l.zone, 1);
    struct reloader *r = reload_new(base, path, l.cfg, ref);
    l.zone = NULL;
    l.cfg = NULL;
    load_finish(&l);
    ok(base && ref && r, "a reloader");
    if (!base || !ref || !r)
        return;
    struct heard h = {0};
    reload_on_outcome(r, on_outcome, &h, true);
    is_str(reload_last_line(r), "", "no line before the first reload");
    reload_serving_last_good(r, true, 42);
    ok(reload_stats(r)->last_good, "serving the last good copy");

    write_file(path, "[namespace a]\nx = 10.0.0.400\ny = nope..\n");
    is_int(reload_run(r), 1, "the first reload is number 1");
    is_int(reload_run(r), 2, "asked for while it runs: number 2 will read the file after");
    is_int(reload_run(r), 2, "and again: still number 2, one more only");
    wait_heard(base, &h, 2);
    is_int(h.n, 2, "two outcomes");
    ok(h.seq[0] == 1 && h.seq[1] == 2, "numbered 1 and 2");
    ok(h.verdict[0] == RELOAD_REJECT && h.errors[0] == 2, "a bad file: rejected with its 2 errors");
    ok(strncmp(h.line[0], "reload: failed (2 errors in ", 28) == 0 &&
           strstr(h.line[0], "(the last good copy)") != NULL,
       "its line says so, and that the last good copy serves on: %s", h.line[0]);
    is_str(reload_last_line(r), h.line[1], "the last line is kept");
    ok(reload_stats(r)->last_good, "still the last good copy");
    ok(h.text == NULL, "nothing applied, no text");

    const char *next = "[namespace a]\nx = 10.0.0.2\n";
    write_file(path, next);
    is_int(reload_run(r), 3, "the next one is number 3");
    wait_heard(base, &h, 3);
    ok(h.n == 3 && h.seq[2] == 3 && h.verdict[2] == RELOAD_APPLY, "applied");
    ok(strncmp(h.line[2], "reload: ok, 1 services", 22) == 0, "its line: %s", h.line[2]);
    ok(h.text && h.len == strlen(next) && memcmp(h.text, next, h.len) == 0,
       "the outcome hands over the bytes applied");
    is_int(h.serial, zone_stats(zone_ref_current(ref))->serial, "and the serial now served");
    ok(!reload_stats(r)->last_good, "a reload applied ends the last good copy");

    /* Held for a hand-over of the sockets: a reload asked for waits, and
     * runs once released. */
    reload_hold(r, true);
    is_int(reload_run(r), 4, "held: number 4 will read the file after");
    ok(!reload_running(r), "held: it does not run");
    struct timeval tv = {0, 50000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    is_int(h.n, 3, "held: no outcome");
    reload_hold(r, false);
    ok(reload_running(r), "released: it runs");
    wait_heard(base, &h, 4);
    ok(h.n == 4 && h.seq[3] == 4, "released: reload 4 ends");

    reload_stop(r);
    is_int(reload_run(r), 0, "stopped: no reload will run");
    free(h.text);
    reload_free(r);
    zone_ref_free(ref);
    event_base_free(base);
    unlink(path);
}

int main(void)
{
    test_decide();
    test_restart();
    test_outcomes();
    return done_testing();
}
