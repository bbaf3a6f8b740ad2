/* handover.h -- svcmapd --replace: a running svcmapd's sockets and facts, handed to its successor
 * over the control socket. */
#ifndef SVCMAPD_HANDOVER_H
#define SVCMAPD_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * SPEC §7. The new svcmapd (N) asks the running one (O) on one connection
 * to the control socket; lines of text as every control command, and one
 * descriptor (SCM_RIGHTS) with each `socket` line:
 *
 *   N: replace
 *   O: replace: pid 1234, svcmapd 0.1.0
 *      fact serial 1795688001
 *      fact digest 0123456789abcdef
 *      fact health 192.168.1.10 tcp:3306 down 1796000000123 1 0 65647
 *      ...                                       (one per probe: health.h)
 *      socket udp 127.0.0.1:53                  + its descriptor
 *      socket tcp 127.0.0.1:53                  + its descriptor
 *      socket http 127.0.0.1:8080               + ...
 *      socket control /run/svcmapd/control.sock
 *      sockets 4                                 (the end, and how many)
 *   N: takes them (inherit.h), answers on them, then:
 *      answering
 *   O: stops reading them, lets go of the state-dir, then:
 *      replaced: pid 1234 drains and exits
 *      exit 0
 *
 * O sends every socket it listens on, once each; N takes those it
 * listens on too and closes the others, which O closes as it drains. No
 * socket closes in between: until N says `answering`, O reads them as
 * before (N may read them too from then on). An O that cannot hand over
 * now (loading, stopping, a reload or another replace under way) answers
 * `error:` lines and `exit N` instead. An N that closes the connection
 * without `answering` leaves O serving as if nothing had happened.
 * `fact` lines N does not know are skipped, so new ones can be added
 * without breaking an older N: `fact health`, the state of the checked
 * targets (SPEC §6), is read by health.h's health_seed_fact(). Every line
 * is shorter than HANDOVER_LINE_MAX; N reads HANDOVER_MAX_FACTS facts at
 * most and skips the rest, saying so.
 */

struct inherit;

/* Seconds for each step of the exchange: the new process has its mapping
 * compiled before it asks, so each is quick; the old one's control socket
 * accepts nobody else meanwhile. */
#define HANDOVER_DEADLINE 10

/* The longest line of the exchange, its newline included; a longer one
 * breaks it. */
#define HANDOVER_LINE_MAX 512

/* `fact` lines N reads at most: far more than the checked targets of any
 * mapping probed (each a probe every few seconds). */
#define HANDOVER_MAX_FACTS 1000000

/* What O tells N. */
struct handover_facts {
    long pid;
    char version[32];
    bool has_serial; /* serial and digest: of the zone O serves */
    uint32_t serial;
    uint64_t digest;
};

/* ---- the running svcmapd (O) ---- */

/* What O sends: its facts, and its listening sockets, which stay its own
 * (descriptors are copied, not taken). */
struct handover_offer {
    struct handover_facts facts;
    struct handover_socket {
        int fd;
        char label[128]; /* "udp 127.0.0.1:53", "control /run/svcmapd/control.sock" */
    } * socks;
    size_t n, cap;
    char *lines; /* more `fact` lines, each with its newline */
    size_t len, room;
    bool failed; /* out of memory while adding */
};

/* An empty offer with facts zeroed; pair with handover_offer_finish(). */
void handover_offer_init(struct handover_offer *o);

/* Adds socket `fd` under `label` ("TYPE ADDRESS"). */
void handover_offer_add(struct handover_offer *o, int fd, const char *label);

/* Adds the line `fact FACT` ("health ..."). A fact too long for a line is
 * left out, logged. */
void handover_offer_fact(struct handover_offer *o, const char *fact);

/* Frees what the offer holds; its descriptors are not closed. */
void handover_offer_finish(struct handover_offer *o);

/* Writes the offer to `fd`, N's connection (non-blocking is fine: it
 * waits for room, HANDOVER_DEADLINE at most). Returns 0 or a negative
 * errno. */
int handover_send(int fd, const struct handover_offer *o);

/* ---- the new svcmapd (N) ---- */

/* Reads one fact, its `fact ` taken off, that handover.c does not know
 * itself: false if it does not know it either. */
typedef bool handover_fact_fn(void *arg, const char *fact);

/* Connects to the control socket `path`, asks for the hand-over, and puts
 * every socket received into `into` and the facts into *facts; the other
 * facts go to more(arg, fact) (NULL: none wanted). Returns
 * the connection (for handover_confirm()), or -1 after logging why: no
 * svcmapd answers there, it cannot hand over now (its lines are logged),
 * or the exchange broke. */
int handover_request(const char *path, struct handover_facts *facts, struct inherit *into,
                     handover_fact_fn *more, void *arg);

/* Says `answering` on connection `fd` and waits for O's last word, then
 * closes it. True when O has let go (it drains and exits); false, logged,
 * when it did not say so: N must then stop, and O serves on. */
bool handover_confirm(int fd);

#endif
