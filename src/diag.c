/* diag.c -- collects `FILE:LINE: error: message` diagnostics for a config file. */
#include "svcmapd/diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void diag_init(struct diag *d, const char *file)
{
    memset(d, 0, sizeof(*d));
    d->file = file;
}

void diag_finish(struct diag *d)
{
    free(d->text);
    d->text = NULL;
    d->len = d->cap = 0;
    d->nstored = 0;
}

static const char *const severity_names[] = {
    [DIAG_ERROR] = "error",
    [DIAG_WARNING] = "warning",
    [DIAG_NOTE] = "note",
};

__attribute__((format(printf, 4, 0))) static void
diag_add(struct diag *d, int line, enum diag_severity severity, const char *fmt, va_list ap)
{
    if (d->errors + d->warnings >= DIAG_MAX_STORED) {
        d->dropped++;
        return;
    }

    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    char head[64];
    if (line > 0)
        snprintf(head, sizeof(head), ":%d: %s: ", line, severity_names[severity]);
    else
        snprintf(head, sizeof(head), ": %s: ", severity_names[severity]);

    size_t need = strlen(d->file) + strlen(head) + strlen(msg) + 2;
    if (d->len + need > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 1024;
        while (cap < d->len + need)
            cap *= 2;
        char *text = realloc(d->text, cap);
        if (!text)
            return; /* the count the caller adds still makes the file invalid */
        d->text = text;
        d->cap = cap;
    }
    struct diag_stored *s = &d->stored[d->nstored++];
    s->at = (uint32_t)d->len;
    s->msg = (uint32_t)(d->len + strlen(d->file) + strlen(head));
    s->line = line > 0 ? line : 0;
    s->severity = severity;
    d->len += (size_t)snprintf(d->text + d->len, d->cap - d->len, "%s%s%s\n", d->file, head, msg);
}

void diag_error(struct diag *d, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, line, DIAG_ERROR, fmt, ap);
    va_end(ap);
    d->errors++;
}

void diag_warning(struct diag *d, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, line, DIAG_WARNING, fmt, ap);
    va_end(ap);
    d->warnings++;
}

void diag_each(const struct diag *d, void (*fn)(const struct diag_entry *e, void *arg), void *arg)
{
    char buf[1024];
    for (unsigned i = 0; i < d->nstored; i++) {
        const struct diag_stored *s = &d->stored[i];
        size_t end = i + 1 < d->nstored ? d->stored[i + 1].at : d->len;
        size_t n = end - s->at - 1; /* without the newline */
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        memcpy(buf, d->text + s->at, n);
        buf[n] = '\0';
        size_t msg = s->msg - s->at;
        struct diag_entry e = {s->severity, s->line, buf, buf + (msg < n ? msg : n)};
        fn(&e, arg);
    }
    if (d->dropped) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "%s: note: ", d->file);
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        snprintf(buf + n, sizeof(buf) - n, "%u more diagnostics not shown", d->dropped);
        struct diag_entry e = {DIAG_NOTE, 0, buf, buf + n};
        fn(&e, arg);
    }
}
