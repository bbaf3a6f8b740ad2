/* diag.h -- collects `FILE:LINE: error: message` diagnostics for a config file. */
#ifndef SVCMAPD_DIAG_H
#define SVCMAPD_DIAG_H

#include <stddef.h>
#include <stdint.h>

/*
 * Config reading and zone compilation report every problem they find, not
 * only the first (NSD, HAProxy do the same). Both append here; the caller
 * decides where each goes: stderr for `svcmapd -t`, the log at the level
 * of its severity for a reload. A diagnostic's severity, line and message
 * travel as data (struct diag_entry), so no caller reads them back out of
 * the text.
 */
enum diag_severity {
    DIAG_ERROR,   /* the file is invalid */
    DIAG_WARNING, /* valid, but probably not what was meant */
    DIAG_NOTE,    /* about the diagnostics themselves: some were dropped */
};

#define DIAG_MAX_STORED 200

struct diag {
    const char *file; /* as the user named it; not owned */
    char *text;       /* every stored entry's line, each ending in a newline; owned */
    size_t len;
    size_t cap;
    unsigned errors;
    unsigned warnings;
    unsigned dropped; /* not stored once DIAG_MAX_STORED lines are kept */
    unsigned nstored;
    struct diag_stored {  /* where each stored line is in `text`, and what it is */
        uint32_t at, msg; /* offsets of the line and of its message */
        int line;
        enum diag_severity severity;
    } stored[DIAG_MAX_STORED];
};

/* One diagnostic, as diag_each() hands it over. */
struct diag_entry {
    enum diag_severity severity;
    int line;         /* in the file; 0: about the file as a whole */
    const char *text; /* the whole line, `FILE:LINE: error: message`, no newline */
    const char *msg;  /* the message alone: the end of `text` */
};

/* Starts an empty collection for `file`. */
void diag_init(struct diag *d, const char *file);

/* Frees the collected text. */
void diag_finish(struct diag *d);

/* Adds `FILE:LINE: error: message` (`FILE: error: ...` when line is 0). */
void diag_error(struct diag *d, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds `FILE:LINE: warning: message`. Warnings never make a file invalid. */
void diag_warning(struct diag *d, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Calls fn once per stored entry, in the order they came, then once more
 * with a note (`FILE: note: N more diagnostics not shown`) if some were
 * dropped. The entry and its strings live until fn returns. */
void diag_each(const struct diag *d, void (*fn)(const struct diag_entry *e, void *arg), void *arg);

#endif
