/* test_reload.c -- which reloads are applied, held or rejected. */
#include <stdio.h>
#include <string.h>

#include "svcmapd/load.h"
#include "svcmapd/reload.h"
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

int main(void)
{
    test_decide();
    test_restart();
    return done_testing();
}
