/* diag.h -- collects `FILE:LINE: error: message` diagnostics for a config file. */
#ifndef SVCMAPD_DIAG_H
#define SVCMAPD_DIAG_H

#include <stddef.h>

/*
 * Config reading and zone compilation report every problem they find, not
 * only the first (NSD, HAProxy do the same). Both append here; the caller
 * decides where the text goes: stderr for `svcmapd -t`, the log for a reload.
 */
struct diag {
    const char *file; /* as the user named it; not owned */
    char *text;       /* newline-terminated lines; owned */
    size_t len;
    size_t cap;
    unsigned errors;
    unsigned warnings;
    unsigned dropped; /* not stored once DIAG_MAX_STORED lines are kept */
};

#define DIAG_MAX_STORED 200

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

/* Calls fn once per collected line (without its newline), then once more
 * with a summary line if some lines were dropped. */
void diag_each(const struct diag *d, void (*fn)(const char *line, void *arg), void *arg);

#endif
