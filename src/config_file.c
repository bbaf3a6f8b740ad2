/* config_file.c -- a mapping file's bytes: read whole or line by line in chunks, and their hash. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_impl.h"
#include "svcmapd/file.h"

/* ---- the hash ---- */

#define HASH_MUL 0x100000001b3ULL

void hasher_init(struct hasher *s)
{
    s->h = 0x84222325cbf29ce4ULL;
    s->n = 0;
}

static uint64_t hash_word(uint64_t h, const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * HASH_MUL;
    return h ^ (h >> 31);
}

void hasher_add(struct hasher *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t t = (size_t)(s->n & 7);
    s->n += len;
    if (t) {
        /* complete the word begun by the bytes fed before */
        size_t k = 8 - t < len ? 8 - t : len;
        memcpy(s->tail + t, p, k);
        if (t + k < 8)
            return;
        s->h = hash_word(s->h, s->tail);
        p += k;
        len -= k;
    }
    uint64_t h = s->h;
    for (; len >= 8; p += 8, len -= 8)
        h = hash_word(h, p);
    s->h = h;
    if (len)
        memcpy(s->tail, p, len);
}

uint64_t hasher_end(const struct hasher *s)
{
    uint64_t h = s->h;
    for (size_t i = 0; i < (size_t)(s->n & 7); i++)
        h = (h ^ s->tail[i]) * HASH_MUL;
    /* the length last, so that the bytes can be fed before it is known;
     * then every bit of the state reaches every bit of the result */
    h ^= s->n;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    return h ^ (h >> 32);
}

uint64_t config_hash(const char *text, size_t len)
{
    struct hasher s;
    hasher_init(&s);
    hasher_add(&s, text, len);
    return hasher_end(&s);
}

/* ---- opening the file ---- */

static const char *file_kind(mode_t mode)
{
    return S_ISFIFO(mode)   ? "a FIFO"
           : S_ISDIR(mode)  ? "a directory"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
                            : "a special file";
}

static void too_big(struct diag *d)
{
    diag_error(d, 0, "larger than %d MiB, the most a mapping file may hold", CONFIG_MAX_MIB);
}

/* The file at `path`, open for reading, if it is a regular file of at
 * most CONFIG_MAX_MIB MiB (its size in *size); -1 after reporting why not. */
static int open_mapping(const char *path, size_t *size, struct diag *d)
{
    /* Non-blocking: opening a FIFO for reading waits for a writer
     * otherwise, and the main thread with it. Symlinks are followed: a
     * ConfigMap's file is one. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        diag_error(d, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        diag_error(d, 0, "cannot read: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        /* a device such as /dev/zero never ends: refused before any read */
        diag_error(d, 0, "not a regular file (%s)", file_kind(st.st_mode));
    } else if ((uint64_t)st.st_size > (uint64_t)CONFIG_MAX_MIB << 20) {
        too_big(d);
    } else {
        *size = (size_t)st.st_size;
        return fd;
    }
    close(fd);
    return -1;
}

char *config_read(const char *path, size_t *lenp, struct diag *d)
{
    size_t size;
    int fd = open_mapping(path, &size, d);
    if (fd < 0)
        return NULL;
    int err;
    char *buf = file_read_fd(fd, size, (size_t)CONFIG_MAX_MIB << 20, lenp, &err);
    close(fd);
    if (!buf && err == -EFBIG)
        too_big(d);
    else if (!buf)
        diag_error(d, 0, "cannot read: %s", strerror(-err));
    return buf;
}

/* ---- lines ---- */

/* A megabyte: a few hundred thousand lines' worth, for one read(). */
size_t config_chunk = (size_t)1 << 20;

void lines_text(struct lines *r, const char *text, size_t len)
{
    *r = (struct lines){.buf = text, .fill = len, .fd = -1, .eof = true, .total = len};
}

bool lines_open(struct lines *r, const char *path, struct diag *d)
{
    *r = (struct lines){.fd = -1};
    size_t size;
    r->fd = open_mapping(path, &size, d);
    if (r->fd < 0)
        return false;
    /* a small file is held whole; a large one a chunk at a time */
    size_t chunk = config_chunk ? config_chunk : 1;
    r->cap = (size < chunk ? size : chunk) + LINES_HELD;
    r->own = malloc(r->cap);
    if (!r->own) {
        diag_error(d, 0, "out of memory");
        lines_close(r);
        return false;
    }
    r->buf = r->own;
    hasher_init(&r->hash);
    return true;
}

void lines_close(struct lines *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->own);
    r->own = NULL;
}

/* Reads more bytes after the `fill` held, up to the buffer's end: false
 * at the end of the file or when reading failed (r->error). */
static bool lines_read(struct lines *r)
{
    if (r->eof)
        return false;
    size_t want = r->cap - r->fill;
    if (config_chunk && want > config_chunk)
        want = config_chunk;
    ssize_t n;
    do
        n = read(r->fd, r->own + r->fill, want);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        r->eof = true;
        r->error = n < 0 ? errno : 0;
        return false;
    }
    hasher_add(&r->hash, r->own + r->fill, (size_t)n);
    r->fill += (size_t)n;
    r->total += (size_t)n;
    if (r->total > (uint64_t)CONFIG_MAX_MIB << 20) {
        r->eof = true; /* it grew while read */
        r->error = EFBIG;
        return false;
    }
    return true;
}

/* The rest of a line longer than the buffer, read and dropped; its
 * stand-in (struct line) is written to r->brief. */
static void cut_line(struct lines *r, struct line *out)
{
    const char *s = r->own;
    if (r->lineno == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    bool lead = false, nul = false;
    int first = -1; /* the first byte that is not whitespace */
    for (;;) {
        const char *e = r->own + r->fill;
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        const char *stop = nl ? nl : e;
        nul = nul || memchr(s, '\0', (size_t)(stop - s)) != NULL;
        for (; first < 0 && s < stop; s++) {
            if (isspace((unsigned char)*s))
                lead = true;
            else
                first = (unsigned char)*s;
        }
        if (nl) {
            r->pos = (size_t)(nl + 1 - r->own);
            break;
        }
        r->pos = r->fill = 0;
        if (!lines_read(r))
            break;
        s = r->own;
    }
    size_t n = 0;
    if (first >= 0) {
        if (lead)
            r->brief[n++] = ' ';
        r->brief[n++] = (char)first;
    }
    *out = (struct line){.text = r->brief, .end = r->brief + n, .cut = true, .nul = nul};
}

bool lines_next(struct lines *r, struct line *out)
{
    const char *l, *nl;
    for (;;) {
        l = r->buf + r->pos;
        nl = memchr(l, '\n', r->fill - r->pos);
        if (nl || (r->eof && r->pos < r->fill))
            break;
        if (r->eof)
            return false;
        if (r->pos == 0 && r->fill == r->cap) {
            r->lineno++;
            cut_line(r, out);
            return !r->error;
        }
        /* the start of a line is kept, then read on */
        memmove(r->own, r->own + r->pos, r->fill - r->pos);
        r->fill -= r->pos;
        r->pos = 0;
        if (!lines_read(r) && r->error)
            return false;
    }
    const char *e = nl ? nl : r->buf + r->fill;
    r->pos = (size_t)(e - r->buf) + (nl ? 1 : 0);
    r->lineno++;
    if (e > l && e[-1] == '\r')
        e--;
    if (r->lineno == 1 && e - l >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0)
        l += 3;
    *out = (struct line){.text = l, .end = e};
    return true;
}

bool lines_value_ends(const struct lines *r)
{
    if (r->pos == r->fill)
        return r->eof;
    char c = r->buf[r->pos];
    return c != ';' && c != '#' && !isspace((unsigned char)c);
}

void lines_drain(struct lines *r)
{
    while (!r->eof) {
        r->pos = r->fill = 0;
        lines_read(r);
    }
}

void lines_report(const struct lines *r, struct diag *d)
{
    if (r->error == EFBIG)
        too_big(d);
    else
        diag_error(d, 0, "cannot read: %s", strerror(r->error));
}
