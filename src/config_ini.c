/* config_ini.c -- the inih shim: lines, sections, keys and the tokens of their values. */
#include <ctype.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "svcmapd/arena.h"

/*
 * Debian's libinih is built with the default limits: it hands the handler no
 * line number, reads at most INI_MAX_LINE (200) bytes of a line and cuts
 * section names at 50. So the reader below feeds it one physical line at a
 * time, counts lines itself, reports what inih would silently drop or cut
 * (overlong lines, broken section headers, lines that are not key = value),
 * and keeps the full section and key names; inih splits keys from values and
 * strips comments and whitespace, but for the plainest service lines, which
 * the reader splits as inih would (read_key_line()).
 */

/* ---- line handling ---- */

/* Appends `len` bytes of `s` and a 0 byte to p->text; false when out of
 * memory (reported). */
static bool add_text(struct parser *p, const char *s, size_t len)
{
    if (p->textcap - p->textlen < len + 1) {
        size_t cap = p->textcap ? p->textcap : 256;
        while (cap - p->textlen < len + 1)
            cap *= 2;
        char *t = realloc(p->text, cap);
        if (!t) {
            parser_oom(p);
            return false;
        }
        p->text = t;
        p->textcap = cap;
    }
    memcpy(p->text + p->textlen, s, len);
    p->textlen += len;
    p->text[p->textlen++] = '\0';
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* isspace() in the C locale */
}

/* Splits a value into tokens at commas and whitespace; a ';' or '#' after
 * whitespace starts a comment (Debian's inih r55 strips inline comments
 * only from the first line of a value, not from continuation lines). */
static void add_tokens(struct parser *p, const char *value, const char *end, int line)
{
    const char *s = value;
    while (s < end) {
        while (s < end && (*s == ',' || is_space(*s)))
            s++;
        if (s == end || *s == '#' || *s == ';')
            break;

        const char *start = s;
        while (s < end && *s != ',' && !is_space(*s))
            s++;
        if (p->ntokens == p->tokcap) {
            size_t cap = p->tokcap ? p->tokcap * 2 : 16;
            struct token *t = realloc(p->tokens, cap * sizeof(*t));
            if (!t) {
                parser_oom(p);
                return;
            }
            p->tokens = t;
            p->tokcap = cap;
        }
        /* p->text may move as it grows: the tokens' text is set at the end */
        p->tokens[p->ntokens] = (struct token){.line = line, .at = p->textlen};
        if (!add_text(p, start, (size_t)(s - start)))
            return;
        p->ntokens++;
    }
}

/* Hands the key being read, if any, to its section. */
static void finish_key(struct parser *p)
{
    if (!p->key_open)
        return;
    p->key_open = false;
    for (size_t i = 0; i < p->ntokens; i++)
        p->tokens[i].text = p->text + p->tokens[i].at;

    if (p->section == SECTION_OPTIONS)
        set_option_key(p);
    else if (p->section == SECTION_NAMESPACE)
        add_service(p, p->key, p->key_line, p->tokens, p->ntokens);
}

/* "[server], [upstream], ... or [namespace NAME]", from the options table. */
static const char *section_list(char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const char *sec = config_options[i].section;
        if (i > 0 && strcmp(sec, config_options[i - 1].section) == 0)
            continue;
        n += (size_t)snprintf(out + n, cap - n, "[%s], ", sec);
    }
    if (n >= 2)
        out[n - 2] = '\0';
    snprintf(out + strlen(out), cap - strlen(out), " or [namespace NAME]");
    return out;
}

/* Records section header [`header`] at `line`: true the first time;
 * false, reported, when it was given before or memory runs out. */
static bool first_header(struct parser *p, const char *header, int line)
{
    char *k = arena_strndup(p->keys, header, strlen(header));
    int prev = k ? strset_add(&p->names, k, line) : -1;
    if (prev < 0)
        parser_oom(p);
    else if (prev > 0)
        diag_error(p->d, line, "[%s] is given twice (first on line %d)", header, prev);
    return prev == 0;
}

/* [server], [upstream], [http] or [log]: `section` as config_options[]
 * spells it. */
static void begin_options(struct parser *p, const char *section, int line)
{
    if (!first_header(p, section, line))
        return;
    p->section = SECTION_OPTIONS;
    p->section_name = section;
}

/* [namespace NAME]: a new namespace, its services to follow. */
static void begin_namespace(struct parser *p, const char *name, int line)
{
    const char *ns = check_dns1123(p, name, line, "namespace");
    if (!ns)
        return;
    char header[80];
    snprintf(header, sizeof(header), "namespace %s", ns);
    if (!first_header(p, header, line))
        return;
    struct config *cfg = p->cfg;
    struct config_namespace *list =
        realloc(cfg->namespaces, (cfg->nnamespaces + 1) * sizeof(*list));
    if (!list) {
        parser_oom(p);
        return;
    }
    cfg->namespaces = list;
    list[cfg->nnamespaces] = (struct config_namespace){.name = ns, .line = line};
    p->ns = cfg->nnamespaces++;
    p->section = SECTION_NAMESPACE;
    strset_clear(&p->services);
    arena_reset(p->nsnames);
}

static void begin_section(struct parser *p, const char *hdr, size_t len, int line)
{
    finish_key(p);
    p->section = SECTION_INVALID;
    p->section_line = line;

    char buf[256], text[256];
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, hdr, len);
    buf[len] = '\0';
    memcpy(text, buf, len + 1); /* strtok_r cuts buf */

    char *save = NULL;
    char *kind = strtok_r(buf, " \t", &save);
    char *name = kind ? strtok_r(NULL, " \t", &save) : NULL;
    char *extra = name ? strtok_r(NULL, " \t", &save) : NULL;

    for (int i = 0; kind && !name && i < CONFIG_OPTION_COUNT; i++) {
        if (strcmp(config_options[i].section, kind) == 0) {
            begin_options(p, config_options[i].section, line);
            return;
        }
    }
    if (kind && strcmp(kind, "namespace") == 0) {
        if (!name || extra)
            diag_error(p->d, line, "expected [namespace NAME]");
        else
            begin_namespace(p, name, line);
        return;
    }
    char known[128];
    diag_error(p->d, line, "unknown section '[%s]' (expected %s)", text,
               section_list(known, sizeof(known)));
}

/* A key line: its name (`n` bytes, the spaces around it gone) and its
 * value, [value, vend), which may run on into an inline comment:
 * add_tokens() stops there. */
static void on_key(struct parser *p, const char *name, size_t n, const char *value,
                   const char *vend)
{
    finish_key(p);
    if (p->section == SECTION_NONE) {
        char known[128];
        diag_error(p->d, p->lineno, "'%.*s' is outside any section (start with %s)", (int)n, name,
                   section_list(known, sizeof(known)));
        return;
    }
    if (p->section == SECTION_INVALID)
        return; /* the section header was reported */
    if (n == 0) {
        diag_error(p->d, p->lineno, "missing key before '='");
        return;
    }
    /* the previous key is done with: its name and tokens go */
    arena_reset(p->scratch);
    p->key = arena_strndup(p->scratch, name, n);
    if (!p->key) {
        parser_oom(p);
        return;
    }
    p->key_line = p->lineno;
    p->key_open = true;
    p->ntokens = 0;
    p->textlen = 0;
    /* the text_fp of a service is of its name in lower case */
    if (!add_text(p, name, n))
        return;
    for (char *c = p->text; c < p->text + n; c++)
        *c = (char)tolower((unsigned char)*c);
    add_tokens(p, value, vend, p->lineno);
}

/* inih calls this for every key = value line and every continuation line. */
static int on_value(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    (void)section; /* ours is not cut at 50 characters */

    if (p->kind == LINE_CONTINUATION) {
        if (p->key_open) {
            /* "  redis = 1.2.3.4" indented by mistake reads as a
             * continuation of the previous key: say so instead of
             * complaining about a hostname called '='. */
            const char *eq = strchr(value, '=');
            if (eq && eq > value && (eq[-1] == ' ' || eq[-1] == '\t' || eq[1] == ' ')) {
                diag_error(p->d, p->lineno,
                           "indented line continues the value of '%s'; remove the leading "
                           "whitespace to start a new key",
                           p->key);
                return 1;
            }
            add_tokens(p, value, value + strlen(value), p->lineno);
        }
        return 1;
    }
    on_key(p, name, strlen(name), value, value + strlen(value));
    return 1;
}

/* The position of the first of `chars` or of an inline ';' comment (a ';'
 * after whitespace), as inih finds it. */
static const char *find_chars_or_comment(const char *s, const char *end, const char *chars)
{
    bool was_space = false;
    char c0 = chars[0], c1 = chars[1] ? chars[1] : chars[0]; /* one or two chars */
    for (; s < end; s++) {
        if (*s == c0 || *s == c1)
            return s;
        if (was_space && *s == ';')
            return end;
        was_space = is_space(*s);
    }
    return end;
}

/* A section header from `s`, its '[', to `end`: reports what inih would
 * not, then begins the section. False, reported, if it has no ']'. */
static bool section_line(struct parser *p, const char *s, const char *end)
{
    const char *close = find_chars_or_comment(s + 1, end, "]");
    if (close == end) {
        diag_error(p->d, p->lineno, "section header without ']'");
        finish_key(p);
        p->section = SECTION_INVALID;
        return false;
    }
    const char *after = close + 1;
    while (after < end && isspace((unsigned char)*after))
        after++;
    if (after < end && *after != ';' && *after != '#')
        diag_error(p->d, p->lineno, "unexpected text after ']'");
    begin_section(p, s + 1, (size_t)(close - s - 1), p->lineno);
    return true;
}

/*
 * On a reload, the key just opened (on_key()) when the running zone has
 * its service as the line says (struct config_skip): most lines of a
 * reload. p->text holds its name in lower case and its tokens, as
 * add_service() makes its text_fp. Only for a name that is a label and
 * no duplicate (add_service() reports those): then the key is dropped,
 * counted as kept, and never stored. Otherwise it stays open, asked
 * about once (p->asked), and goes to add_service() as any other.
 */
static void unchanged_key(struct parser *p)
{
    if (!p->skip || !p->key_open || p->oom)
        return;
    size_t n = strlen(p->text);
    if (!is_label(p->text, n) || strset_find(&p->services, p->text))
        return;
    struct config_namespace *ns = &p->cfg->namespaces[p->ns];
    uint64_t fp = config_hash(p->text, p->textlen);
    if (!p->skip->unchanged(p->skip->arg, ns->name, p->text, fp)) {
        p->asked = p->lineno;
        return;
    }
    char *name = arena_strndup(p->nsnames, p->text, n);
    if (!name || strset_add(&p->services, name, p->lineno) < 0) {
        parser_oom(p);
        return;
    }
    p->key_open = false;
    ns->nkept++;
    p->cfg->nkept++;
}

bool config_inih_only;

/*
 * A service line read here, not by inih: most lines of a start or a
 * reload. It is split as inih splits it: the name is what comes before
 * the first '=' or ':', without the spaces around it; the value, all that
 * follows, is cut by add_tokens() at the first token that begins with
 * ';' or '#', which is where inih would have cut a ';' comment (a ';'
 * after a space always begins a token) or left a '#' for add_tokens() to
 * stop at. Only for a line whose value is known to end with it: inih's
 * one state, the previous key that continuation lines attach to, is then
 * never read again before the next key or section. Saves inih's scanning
 * of every character, a third of reading a large mapping; and on a
 * reload, an unchanged line is dropped here (unchanged_key()).
 */
static bool read_key_line(struct parser *p, const char *s, const char *eq, const char *end)
{
    if (config_inih_only || p->section != SECTION_NAMESPACE || !lines_value_ends(p->lines))
        return false;
    const char *name_end = eq;
    while (name_end > s && is_space(name_end[-1]))
        name_end--;
    on_key(p, s, (size_t)(name_end - s), eq + 1, end);
    unchanged_key(p);
    return true;
}

/* inih's reader: hands it one physical line, after checking what inih
 * would not report. A line it must not parse is replaced (or skipped) so
 * that inih's state, the "previous key" continuation lines attach to,
 * stays the same as ours. */
static char *read_line(char *str, int num, void *stream)
{
    struct parser *p = stream;
    struct line l;
    const char *eq;
    while (lines_next(p->lines, &l)) {
        p->lineno = p->lines->lineno;
        const char *line = l.text, *end = l.end;
        size_t len = (size_t)(end - line);
        const char *s = line;
        while (s < end && is_space(*s))
            s++;
        if (s == end || *s == ';' || *s == '#')
            continue;

        bool continuation = p->have_key && s > line;
        if (continuation && p->skipping)
            continue;
        p->skipping = false;

        const char *bad = NULL;
        if (l.cut ? l.nul : memchr(line, '\0', len) != NULL)
            bad = "line contains a NUL byte";
        else if (l.cut || len > (size_t)num - 2)
            bad = "line is too long for inih; continue a long value on the next line, indented";
        if (bad) {
            diag_error(p->d, p->lineno, "%s", bad);
            if (continuation) {
                p->key_open = false; /* its value is incomplete: drop it quietly */
            } else {
                finish_key(p);
                p->have_key = true; /* its own continuation lines are skipped too */
            }
            p->skipping = true;
            continue;
        }

        if (continuation) {
            p->kind = LINE_CONTINUATION;
        } else if (*s == '[') {
            p->have_key = false;
            p->kind = LINE_SECTION;
            if (!section_line(p, s, end)) {
                strcpy(str, "[]\n"); /* resets inih's previous key as the header would */
                return str;
            }
        } else if ((eq = find_chars_or_comment(s, end, "=:")) != end) {
            p->kind = LINE_KEY;
            p->have_key = true;
            if (read_key_line(p, s, eq, end))
                continue;
        } else {
            diag_error(p->d, p->lineno, "expected 'key = value', a [section] or a comment");
            finish_key(p);
            p->skipping = true;
            continue;
        }
        memcpy(str, line, len);
        str[len] = '\n';
        str[len + 1] = '\0';
        return str;
    }
    return NULL;
}

void parse_ini(struct parser *p)
{
    /* inih's own return value only names the first bad line; read_line
     * has already reported every line inih would reject. */
    (void)ini_parse_stream(read_line, p, on_value, p);
    finish_key(p);
}
