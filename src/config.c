/* config.c -- the mapping file: INI text to plain settings with line numbers. */
#include "svcmapd/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_impl.h"
#include "svcmapd/arena.h"
#include "svcmapd/file.h"

/* ---- a small string set, for duplicate sections and services ---- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: fine for trusted file keys */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

void strset_clear(struct strset *set)
{
    if (set->cap > 4096) {
        free(set->slots); /* a big namespace before: start small again */
        set->slots = NULL;
        set->cap = 0;
    } else if (set->slots) {
        memset(set->slots, 0, set->cap * sizeof(*set->slots));
    }
    set->count = 0;
}

/* Inserts `key` (owned by the caller's arena). Returns 0 if it was new, or
 * the line of the earlier entry; -1 when out of memory. */
int strset_add(struct strset *set, const char *key, int line)
{
    if ((set->count + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct strset_entry *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return -1;
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i].key)
                continue;
            size_t j = str_hash(set->slots[i].key) & (cap - 1);
            while (slots[j].key)
                j = (j + 1) & (cap - 1);
            slots[j] = set->slots[i];
        }
        free(set->slots);
        set->slots = slots;
        set->cap = cap;
    }
    size_t j = str_hash(key) & (set->cap - 1);
    while (set->slots[j].key) {
        if (strcmp(set->slots[j].key, key) == 0)
            return set->slots[j].line;
        j = (j + 1) & (set->cap - 1);
    }
    set->slots[j].key = key;
    set->slots[j].line = line;
    set->count++;
    return 0;
}

void parser_oom(struct parser *p)
{
    if (!p->oom)
        diag_error(p->d, 0, "out of memory");
    p->oom = true;
}

static struct config *config_new(const char *path)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->arena = arena_new();
    cfg->map = arena_new();
    if (!cfg->arena || !cfg->map) {
        arena_free(cfg->arena);
        arena_free(cfg->map);
        free(cfg);
        return NULL;
    }
    cfg->path = arena_strndup(cfg->arena, path, strlen(path));
    return cfg;
}

void config_drop_mapping(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        free(cfg->namespaces[i].services);
    free(cfg->namespaces);
    cfg->namespaces = NULL;
    cfg->nnamespaces = 0;
    cfg->nservices = 0;
    arena_free(cfg->map);
    cfg->map = arena_new(); /* NULL when out of memory: nothing uses it now */
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nnamespaces; i++)
        free(cfg->namespaces[i].services);
    free(cfg->namespaces);
    arena_free(cfg->arena);
    arena_free(cfg->map);
    free(cfg);
}

static struct config *parse_text(const char *text, size_t len, struct diag *d)
{
    struct config *cfg = config_new(d->file);
    if (!cfg) {
        diag_error(d, 0, "out of memory");
        return NULL;
    }
    struct parser p = {
        .cfg = cfg,
        .d = d,
        .a = cfg->arena,
        .m = cfg->map,
        .text = text,
        .len = len,
        .keys = arena_new(),
        .scratch = arena_new(),
    };
    if (!p.keys || !p.scratch) {
        arena_free(p.keys);
        arena_free(p.scratch);
        config_free(cfg);
        diag_error(d, 0, "out of memory");
        return NULL;
    }

    cfg->hash = config_hash(text, len);
    unsigned errors_before = d->errors;
    /* Defaults first: a bad value in the file then leaves the default,
     * and the rest of the file is still checked against sane settings. */
    apply_defaults(&p);
    parse_ini(&p);
    check_settings(&p);
    /* No section at all: nothing but blanks and comments, or no byte.
     * Never a mapping to serve: a file being rewritten in place (cp, a
     * shell's >) is empty for a moment. */
    if (p.section_line == 0 && d->errors == errors_before)
        diag_error(d, 0, "the file is empty (no [server] or [namespace] section)");

    free(p.tokens);
    free(p.names.slots);
    free(p.services.slots);
    arena_free(p.keys);
    arena_free(p.scratch);
    if (p.oom) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct config *config_parse(const char *text, size_t len, struct diag *d)
{
    return parse_text(text, len, d);
}

uint64_t config_hash(const char *p, size_t n)
{
    uint64_t h = 0x84222325cbf29ce4ULL ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 31;
    }
    for (; n; p++, n--)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    return h;
}

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode)   ? "a FIFO"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "a special file";
}

char *config_read(const char *path, size_t *lenp, struct diag *d)
{
    /* Non-blocking: opening a FIFO for reading waits for a writer
     * otherwise, and the main thread with it. Symlinks are followed: a
     * ConfigMap's file is one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    const size_t max = (size_t)CONFIG_MAX_MIB << 20;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        diag_error(d, 0, "cannot read: %s", strerror(errno));
        goto fail;
    }
    /* a device such as /dev/zero never ends: refused before any read */
    if (!S_ISREG(st.st_mode)) {
        diag_error(d, 0, "not a regular file (%s)", file_kind(st.st_mode));
        goto fail;
    }
    if ((uint64_t)st.st_size > max)
        goto too_big;
    int err;
    buf = file_read_fd(fd, (size_t)st.st_size, max, lenp, &err);
    if (!buf && err == -EFBIG)
        goto too_big;
    if (!buf) {
        diag_error(d, 0, "cannot read: %s", strerror(-err));
        goto fail;
    }
    close(fd);
    return buf;

too_big:
    diag_error(d, 0, "larger than %d MiB, the most a mapping file may hold", CONFIG_MAX_MIB);
fail:
    free(buf);
    close(fd);
    return NULL;
}

struct config *config_load(const char *path, struct diag *d)
{
    size_t len;
    char *buf = config_read(path, &len, d);
    if (!buf)
        return NULL;
    struct config *cfg = parse_text(buf, len, d);
    free(buf);
    return cfg;
}

bool config_same_listen(const struct config *a, const struct config *b)
{
    if (a->nlisten != b->nlisten)
        return false;
    for (size_t i = 0; i < a->nlisten; i++) {
        bool found = false;
        for (size_t j = 0; j < b->nlisten && !found; j++)
            found = strcmp(a->listen[i].text, b->listen[j].text) == 0;
        if (!found)
            return false;
    }
    return true;
}
