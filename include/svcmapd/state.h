/* state.h -- the state-dir: the last good mapping and its serial, kept across restarts. */
#ifndef SVCMAPD_STATE_H
#define SVCMAPD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * SPEC §7: with `[server] state-dir`, every mapping loaded without an
 * error is also written to DIR/last-good.ini, so that a restart on a
 * broken file (a node reboot, an OOM kill, a rolling update after a bad
 * ConfigMap edit) serves the last good mapping instead of failing. The
 * copy is written off the main thread to a temporary name, fsynced,
 * renamed over the old one and the directory fsynced: a crash leaves the
 * old copy or the new one, never a part.
 *
 * Its first line, a comment, gives the serial it was served under and the
 * digest of that zone (zone_stats.digest): a restart continues the serial
 * from them (zone_continue_serial()), so it never goes back. The rest is
 * the mapping file's bytes as they were loaded: the copy is itself a
 * valid mapping file.
 */

struct event_base;
struct state;

#define STATE_COPY "last-good.ini"

/* What the first line of a copy says. */
struct state_saved {
    bool found;      /* a copy whose first line could be read */
    uint32_t serial; /* the serial it was served under */
    uint64_t digest; /* of the zone it was served with */
    uint64_t hash;   /* config_hash() of the mapping's bytes (the copy without that line) */
};

struct state_stats {
    uint64_t saved;    /* copies written */
    uint64_t failures; /* copies that could not be written */
    bool failing;      /* the last one could not */
};

/* The state directory `dir` (copied), its copies written by threads whose
 * end is taken on `base` (the main thread's). Reads what the copy there
 * says (state_saved()); creates nothing yet, and removes nothing: another
 * svcmapd may still write there (svcmapd --replace) until state_claim().
 * NULL when out of memory. */
struct state *state_new(struct event_base *base, const char *dir);

/* The state directory is this process's from now on: at start, or once
 * the svcmapd it replaced has let go of it. Removes the temporary copies
 * a process left that died writing one, and reads the copy's first line
 * again. */
void state_claim(struct state *s);

/* The state directory is another process's from now on (it replaced this
 * one): waits for the copy being written, writes the one that was to
 * follow it, and writes nothing after. NULL is a no-op. */
void state_release(struct state *s);

/* Waits for a copy being written, writes the one asked for after it, if
 * any, and frees. NULL is a no-op. */
void state_free(struct state *s);

/* DIR/last-good.ini. */
const char *state_copy_path(const struct state *s);

/* What the copy on disk says: read by state_new(), then what the last
 * copy written says. */
const struct state_saved *state_saved(const struct state *s);

/* Writes `text` (`len` bytes of a mapping file, taken: it is freed once
 * written) as the last good copy, served under `serial` with a zone of
 * `digest`, on a thread of its own. A copy asked for while one is being
 * written replaces any other waiting, and follows it. A copy that says
 * the same as the one on disk is not written again. A failure is one
 * warning in the log, until a copy can be written again, and counted;
 * serving goes on. */
void state_save(struct state *s, char *text, size_t len, uint32_t serial, uint64_t digest);

/* Counts, for /metrics (main thread). */
const struct state_stats *state_stats(const struct state *s);

/* The first line of a copy (`len` bytes at `text`, maybe more than the
 * line) into *out: out->found is false unless it is a copy's first line.
 * Returns the length of that line with its newline, 0 if none. Pure. */
size_t state_parse_header(const char *text, size_t len, struct state_saved *out);

#endif
