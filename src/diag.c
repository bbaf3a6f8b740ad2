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
}

__attribute__((format(printf, 4, 0))) static void
diag_add(struct diag *d, int line, const char *kind, const char *fmt, va_list ap)
{
    if (d->errors + d->warnings >= DIAG_MAX_STORED) {
        d->dropped++;
        return;
    }

    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    char head[64];
    if (line > 0)
        snprintf(head, sizeof(head), ":%d: %s: ", line, kind);
    else
        snprintf(head, sizeof(head), ": %s: ", kind);

    size_t need = strlen(d->file) + strlen(head) + strlen(msg) + 2;
    if (d->len + need > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 1024;
        while (cap < d->len + need)
            cap *= 2;
        char *text = realloc(d->text, cap);
        if (!text)
            return; /* the count below still makes the file invalid */
        d->text = text;
        d->cap = cap;
    }
    d->len += (size_t)snprintf(d->text + d->len, d->cap - d->len, "%s%s%s\n", d->file, head, msg);
}

void diag_error(struct diag *d, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, line, "error", fmt, ap);
    va_end(ap);
    d->errors++;
}

void diag_warning(struct diag *d, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(d, line, "warning", fmt, ap);
    va_end(ap);
    d->warnings++;
}

void diag_each(const struct diag *d, void (*fn)(const char *line, void *arg), void *arg)
{
    const char *p = d->text;
    const char *end = d->text ? d->text + d->len : NULL; /* NULL + 0 is undefined */
    char buf[1024];
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)(nl - p);
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        memcpy(buf, p, n);
        buf[n] = '\0';
        fn(buf, arg);
        p = nl + 1;
    }
    if (d->dropped) {
        snprintf(buf, sizeof(buf), "%s: note: %u more diagnostics not shown", d->file, d->dropped);
        fn(buf, arg);
    }
}
