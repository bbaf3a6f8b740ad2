/* state.c -- the state-dir: the last good mapping and its serial, kept across restarts. */
#include "svcmapd/state.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svcmapd/config.h"
#include "svcmapd/log.h"

#define HEADER_TAG "; svcmapd-last-good "
#define TMP_PREFIX "." STATE_COPY "."

/* One copy to write. */
struct copy {
    char *text; /* NULL: none */
    size_t len;
    struct state_saved says; /* its first line */
    /* the outcome, from the thread */
    const char *step; /* what failed; NULL: written */
    int err;
    double ms; /* how long it took */
};

struct state {
    struct event_base *base;
    char *dir, *path;
    struct event *done; /* the writer activates it */
    pthread_t thread;
    bool writing;  /* a thread writes `now` */
    bool released; /* the state-dir is another process's now: nothing is written */
    struct copy now, next;
    struct state_saved saved;
    struct state_stats stats;
};

size_t state_parse_header(const char *text, size_t len, struct state_saved *out)
{
    *out = (struct state_saved){0};
    const char *nl = memchr(text, '\n', len < 256 ? len : 256);
    size_t tag = strlen(HEADER_TAG);
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - text);
    char line[256];
    memcpy(line, text, n);
    line[n] = '\0';
    unsigned long serial;
    unsigned long long digest, hash;
    int end = 0;
    if (n > tag && memcmp(line, HEADER_TAG, tag) == 0 &&
        sscanf(line + tag, "serial=%lu digest=%16llx hash=%16llx%n", &serial, &digest, &hash,
               &end) == 3 &&
        serial <= UINT32_MAX && (line[tag + (size_t)end] == ':' || line[tag + (size_t)end] == 0))
        *out = (struct state_saved){true, (uint32_t)serial, digest, hash};
    return n + 1;
}

/* Reads the first line of the copy, if there is one. */
static void read_saved(struct state *s)
{
    int fd = open(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n > 0)
        state_parse_header(buf, (size_t)n, &s->saved);
}

/* Removes the temporary copies a process left that died writing one. */
static void remove_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Writes `c` as the copy: a temporary file, fsynced, renamed over the
 * copy, the directory fsynced. Sets c->step and c->err on a failure. */
static void write_copy(const struct state *s, struct copy *c)
{
    char tmp[4200], head[160];
    snprintf(tmp, sizeof(tmp), "%s/" TMP_PREFIX "XXXXXX", s->dir);
    int hl = snprintf(head, sizeof(head),
                      HEADER_TAG "serial=%" PRIu32 " digest=%016" PRIx64 " hash=%016" PRIx64
                                 ": the last mapping served without an error\n",
                      c->says.serial, c->says.digest, c->says.hash);
    c->step = "create a temporary file";
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        goto fail;
    c->step = "write";
    if (!write_all(fd, head, (size_t)hl) || !write_all(fd, c->text, c->len))
        goto fail_fd;
    c->step = "fsync";
    if (fsync(fd) < 0)
        goto fail_fd;
    c->step = "close";
    if (close(fd) < 0) {
        fd = -1;
        goto fail_fd;
    }
    c->step = "rename the temporary file";
    if (rename(tmp, s->path) < 0)
        goto fail_tmp;
    /* the rename itself is on disk once the directory is */
    c->step = "fsync the directory";
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        c->err = errno;
        if (dfd >= 0)
            close(dfd);
        return;
    }
    close(dfd);
    c->step = NULL;
    return;

fail_fd:
    c->err = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return;
fail_tmp:
    c->err = errno;
    unlink(tmp);
    return;
fail:
    c->err = errno;
}

/* Writes s->now, timed. */
static void write_timed(struct state *s)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    write_copy(s, &s->now);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s->now.ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static void *writer(void *arg)
{
    struct state *s = arg;
    write_timed(s);
    event_active(s->done, 0, 0);
    return NULL;
}

/* Starts writing s->now: on a thread, or here if none can be had. */
static void start(struct state *s)
{
    s->writing = true;
    sigset_t all, old; /* the signals stay with the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    bool threaded = pthread_create(&s->thread, NULL, writer, s) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!threaded) {
        write_timed(s);
        event_active(s->done, 0, 0);
    }
    s->writing = threaded;
}

/* What became of s->now: logged (a failure once until a copy is written
 * again) and counted. */
static void conclude(struct state *s)
{
    struct copy *c = &s->now;
    if (!c->step) {
        s->stats.saved++;
        s->saved = c->says;
        if (s->stats.failing)
            log_info("state-dir: %s written again", s->path);
        else
            log_debug("state-dir: %s written, serial %u, %zu bytes, %.1f ms", s->path,
                      c->says.serial, c->len, c->ms);
        s->stats.failing = false;
    } else {
        s->stats.failures++;
        if (!s->stats.failing)
            log_warning("state-dir: cannot write the last good copy %s: %s: %s; serving goes on, "
                        "but a restart on a broken mapping file would fail",
                        s->path, c->step, strerror(c->err));
        s->stats.failing = true;
    }
    free(c->text);
    *c = (struct copy){0};
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct state *s = arg;
    (void)fd;
    (void)what;
    if (s->writing)
        pthread_join(s->thread, NULL);
    s->writing = false;
    if (s->now.text)
        conclude(s);
    if (s->next.text) {
        s->now = s->next;
        s->next = (struct copy){0};
        start(s);
    }
}

struct state *state_new(struct event_base *base, const char *dir)
{
    struct state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base = base;
    s->dir = strdup(dir);
    size_t n = strlen(dir) + sizeof("/" STATE_COPY);
    s->path = malloc(n);
    s->done = event_new(base, -1, 0, on_done, s);
    if (!s->dir || !s->path || !s->done) {
        state_free(s);
        return NULL;
    }
    snprintf(s->path, n, "%s/" STATE_COPY, dir);
    read_saved(s);
    return s;
}

void state_claim(struct state *s)
{
    remove_leftovers(s->dir);
    read_saved(s);
}

/* Waits for the copy being written, and writes the one that was to
 * follow it, here. */
static void write_now(struct state *s)
{
    if (s->writing)
        pthread_join(s->thread, NULL);
    s->writing = false;
    if (s->now.text)
        conclude(s);
    if (s->next.text) { /* the newest mapping served: the one to start on */
        s->now = s->next;
        s->next = (struct copy){0};
        write_timed(s);
        conclude(s);
    }
}

void state_release(struct state *s)
{
    if (!s)
        return;
    write_now(s);
    s->released = true;
}

void state_free(struct state *s)
{
    if (!s)
        return;
    write_now(s);
    if (s->done)
        event_free(s->done);
    free(s->dir);
    free(s->path);
    free(s);
}

const char *state_copy_path(const struct state *s)
{
    return s->path;
}

const struct state_saved *state_saved(const struct state *s)
{
    return &s->saved;
}

const struct state_stats *state_stats(const struct state *s)
{
    return &s->stats;
}

void state_save(struct state *s, char *text, size_t len, uint32_t serial, uint64_t digest)
{
    if (s->released) {
        free(text);
        return;
    }
    struct copy c = {
        .text = text, .len = len, .says = {true, serial, digest, config_hash(text, len)}};
    bool busy = s->now.text != NULL; /* being written, or its end not yet taken */
    const struct state_saved *last = busy ? &s->now.says : &s->saved;
    if (!s->next.text && !s->stats.failing && last->found && last->serial == serial &&
        last->digest == digest && last->hash == c.says.hash) {
        free(text); /* on disk already, or on its way */
        return;
    }
    if (busy) {
        free(s->next.text); /* never written: a newer one replaces it */
        s->next = c;
        return;
    }
    s->now = c;
    start(s);
}
