/* import_text.c -- the mapping file's text, and svcmapd's own check of it. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcmapd/load.h"

#include "import_impl.h"

__attribute__((format(printf, 2, 3))) void imp_text_printf(struct text *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            for (const char *c = t->p + t->len; (c = strchr(c, '\n')) != NULL; c++)
                t->lines++;
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

/* ---- strings ---- */

/* `s` for a message or a comment, in `out` (CLEAN_MAX bytes): printable
 * ASCII as it is, other bytes as \xNN, at most 64 characters of it; a
 * longer one ends in "...". */
const char *imp_clean(char *out, const char *s)
{
    size_t o = 0;
    size_t i = 0;
    for (; s[i] && i < 64; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, CLEAN_MAX - o, "\\x%02x", c);
    }
    if (s[i])
        o += (size_t)snprintf(out + o, CLEAN_MAX - o, "...");
    out[o] = '\0';
    return out;
}

/*
 * Appends the comment `; KIND NS/NAME: WHY` to `t` (`; KIND NS: WHY` when
 * `name` is NULL). When it is longer than MAX_LINE characters, WHY goes on
 * the lines below, indented. The strings are imp_clean() already.
 */
void imp_put_comment(struct text *t, const char *kind, const char *ns, const char *name,
                     const char *why)
{
    char head[2 * CLEAN_MAX + 32];
    if (name)
        snprintf(head, sizeof(head), "; %s %s/%s:", kind, ns, name);
    else
        snprintf(head, sizeof(head), "; %s %s:", kind, ns);
    size_t hl = strlen(head), wl = strlen(why);
    if (hl + 1 + wl <= MAX_LINE) {
        imp_text_printf(t, "%s %s\n", head, why);
        return;
    }
    if (hl > MAX_LINE)
        memcpy(head + MAX_LINE - 3, "...", 4);
    imp_text_printf(t, "%s\n", head);
    /* then `why` in lines of DEFAULT_WRAP columns, at spaces where it can */
    while (*why) {
        size_t n = strlen(why);
        if (4 + n > DEFAULT_WRAP) {
            n = DEFAULT_WRAP - 4;
            while (n > DEFAULT_WRAP / 2 && why[n] != ' ')
                n--;
            if (why[n] != ' ')
                n = DEFAULT_WRAP - 4;
        }
        imp_text_printf(t, ";   %.*s\n", (int)n, why);
        why += n;
        while (*why == ' ')
            why++;
    }
}

/* ---- the text ---- */

/* `key = targets options`, continued on indented lines past DEFAULT_WRAP
 * columns (a line of the file holds at most MAX_LINE characters). */
char *imp_service_value(const char *key, const struct targets *ts, const char *srv)
{
    struct text t = {0};
    size_t col = strlen(key) + 3;
    char tok[INET6_ADDRSTRLEN + 16];
    size_t n = ts->n;
    for (size_t i = 0; i <= n; i++) {
        const char *word = tok;
        if (i == n && !srv)
            break;
        if (i == n) {
            word = srv;
        } else {
            const struct target *x = &ts->t[i];
            char ip[INET6_ADDRSTRLEN];
            inet_ntop(x->family, x->addr, ip, sizeof(ip));
            if (!x->port)
                snprintf(tok, sizeof(tok), "%s", ip);
            else
                snprintf(tok, sizeof(tok), x->family == AF_INET ? "%s:%u" : "[%s]:%u", ip, x->port);
        }
        const char *sep = i == 0 ? "" : i == n ? " " : ", ";
        if (i > 0 && col + strlen(sep) + strlen(word) > DEFAULT_WRAP) {
            imp_text_printf(&t, "%s\n    %s", i == n ? "" : ",", word);
            col = 4 + strlen(word);
        } else {
            imp_text_printf(&t, "%s%s", sep, word);
            col += strlen(sep) + strlen(word);
        }
    }
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

int imp_cmp_entry(const void *pa, const void *pb)
{
    const struct entry *a = pa, *b = pb;
    int c = strcmp(a->ns, b->ns);
    if (c == 0)
        c = strcmp(a->name, b->name);
    if (c == 0)
        c = (int)a->kind - (int)b->kind;
    return c != 0 ? c : strcmp(a->objname, b->objname);
}

/* The whole mapping file; each mapped entry learns its lines. */
static void render(struct import *im, struct text *t)
{
    size_t services = 0, nmapped = 0;
    for (size_t i = 0; i < im->nentries; i++) {
        services += im->entries[i].kind == KIND_SERVICE;
        nmapped += mapped(&im->entries[i]);
    }
    imp_text_printf(
        t,
        "; A mapping file made by `svcmapd import` from Kubernetes objects:\n"
        ";     kubectl get services,endpoints,endpointslices -A -o json | svcmapd import -\n"
        "; %zu of %zu Services mapped; each object left out is a comment saying why.\n"
        "; Check it with svcmapd -t -c FILE; import again and diff to see what changed.\n"
        "\n"
        "[server]\n"
        "zone = %s\n",
        nmapped, services, im->zone);
    char a[CLEAN_MAX], b[CLEAN_MAX];
    for (size_t i = 0; i < im->nentries;) {
        size_t end = i;
        bool any = false;
        for (; end < im->nentries && strcmp(im->entries[end].ns, im->entries[i].ns) == 0; end++)
            any |= mapped(&im->entries[end]);
        /* a mapped service's namespace is a DNS-1123 label */
        if (any)
            imp_text_printf(t, "\n[namespace %s]\n", im->entries[i].ns);
        else
            imp_text_printf(t, "\n");
        if (!any)
            imp_put_comment(t, "namespace", imp_clean(a, im->entries[i].ns), NULL,
                            "nothing mapped");
        for (; i < end; i++) {
            struct entry *e = &im->entries[i];
            if (e->notes.len)
                imp_text_printf(t, "%s", e->notes.p);
            e->first = e->last = 0;
            if (mapped(e)) {
                e->first = t->lines + 1;
                imp_text_printf(t, "%s = %s\n", e->name, e->value);
                e->last = t->lines;
            } else {
                imp_put_comment(t, imp_kinds[e->kind].name, imp_clean(a, e->ns),
                                imp_clean(b, e->objname), e->skip);
            }
        }
    }
}

/* ---- svcmapd's own check ---- */

#define CHECK_FILE "import"

struct check_each {
    void (*fn)(void *arg, const struct check_error *err);
    void *arg;
};

/* The errors on a line of the text (those of the file as a whole, such as
 * running out of memory, are in the count imp_check_text() returns). */
static void check_error_of(const struct diag_entry *e, void *arg)
{
    const struct check_each *each = arg;
    if (e->severity == DIAG_ERROR && e->line > 0)
        each->fn(each->arg, &(struct check_error){e->line, e->msg});
}

/*
 * Parses and compiles `text` as `svcmapd -t` does, with upstream
 * resolution off and no interface addresses (they change no error, and
 * the machine's resolv.conf and interfaces have no say), and calls `fn` with the line and message
 * of each error. Returns the number of errors, or -ENOMEM.
 */
int imp_check_text(const char *text, size_t len,
                   void (*fn)(void *arg, const struct check_error *err), void *arg)
{
    static const char tail[] = "\n[upstream]\nservers = none\n";
    char *all = malloc(len + sizeof(tail));
    if (!all)
        return -ENOMEM;
    memcpy(all, text, len);
    memcpy(all + len, tail, sizeof(tail));
    struct load l;
    load_init(&l, CHECK_FILE);
    static const struct zone_host no_host = {0};
    load_text(&l, all, len + sizeof(tail) - 1, NULL, &no_host, 1);
    int errors = !l.cfg && !l.diag.errors ? -ENOMEM : (int)l.diag.errors;
    free(all);
    struct check_each each = {fn, arg};
    diag_each(&l.diag, check_error_of, &each);
    load_finish(&l);
    return errors;
}

struct check_round {
    struct import *im;
    size_t skipped; /* entries this round */
    bool oom;
    const char *unplaced; /* the first error on no service's line */
    char unplaced_msg[400];
};

static void skip_failed(void *arg, const struct check_error *err)
{
    struct check_round *r = arg;
    struct import *im = r->im;
    for (size_t i = 0; i < im->nentries; i++) {
        struct entry *e = &im->entries[i];
        if (e->first && err->line >= e->first && err->line <= e->last) {
            if (!e->skip) {
                /* the message names the service: no need to clean it twice */
                imp_skip(im, e, "svcmapd cannot serve it: %s", err->msg);
                r->skipped++;
            }
            return;
        }
    }
    if (strcmp(err->msg, "out of memory") == 0)
        r->oom = true;
    else if (!r->unplaced) {
        snprintf(r->unplaced_msg, sizeof(r->unplaced_msg), "line %d: %.300s", err->line, err->msg);
        r->unplaced = r->unplaced_msg;
    }
}

/* The mapping written into `t` and checked as svcmapd checks it, round
 * after round: each round skips the services the check refused, at least
 * one, or ends. 0, -EINVAL (out of memory, or the check could not run:
 * the caller tells which) or -EPROTO (the check refused what no service
 * is to blame for: a bug of import's, reported). */
int imp_render_checked(struct import *im, const struct ref *refs, size_t nrefs, struct text *t)
{
    for (;;) {
        imp_settle_targets(im, refs, nrefs);
        free(t->p);
        *t = (struct text){0};
        render(im, t);
        if (im->oom || t->oom)
            return -EINVAL;
        struct check_round r = {.im = im};
        int errors = imp_check_text(t->p, t->len, skip_failed, &r);
        if (errors == 0)
            return 0;
        if (im->oom || errors < 0 || r.oom)
            return -EINVAL;
        if (r.skipped == 0) {
            diag_error(im->d, 0,
                       "internal error: the mapping made does not pass svcmapd's check: %s",
                       r.unplaced ? r.unplaced : "?");
            return -EPROTO;
        }
    }
}
