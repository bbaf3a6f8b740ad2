/* test_reload.c -- which reloads are applied, held or rejected. */
#include <stdio.h>
#include <string.h>

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
    struct diag d;
    diag_init(&d, "r.ini");
    struct mapping m = {.cfg = config_parse(text, len, &d)};
    m.zone = m.cfg ? zone_compile(m.cfg, old, 1, &d) : NULL;
    diag_finish(&d);
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

int main(void)
{
    test_decide();
    return done_testing();
}
