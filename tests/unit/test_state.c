/* test_state.c -- the last good copy: its first line, written whole, again only when it differs. */
#include "svcmapd/state.h"

#include <dirent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "svcmapd/config.h"
#include "tap.h"

static void test_header(void)
{
    struct state_saved s;
    const char *good =
        "; svcmapd-last-good serial=1795687981 digest=00000000000000ff "
        "hash=0123456789abcdef: the last mapping served without an error\n[server]\n";
    size_t n = state_parse_header(good, strlen(good), &s);
    ok(s.found && s.serial == 1795687981u && s.digest == 0xff && s.hash == 0x0123456789abcdefULL,
       "a copy's first line");
    is_int(n, strchr(good, '\n') - good + 1, "its length with the newline");
    const char *bad[] = {
        "[server]\n",
        "; svcmapd-last-good serial=99999999999 digest=0 hash=0\n",
        "; svcmapd-last-good serial=1 digest=0\n",
        "; svcmapd-last-good serial=1 digest=0 hash=0",
        "; svcmapd-last-good serial=1 digest=0 hash=0x trailing\n",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        state_parse_header(bad[i], strlen(bad[i]), &s);
        ok(!s.found, "not a copy's first line: '%.*s'", (int)strcspn(bad[i], "\n"), bad[i]);
    }
}

/* Runs the loop until nothing is pending (the writer's end taken). */
static void settle(struct event_base *base, const struct state *s, uint64_t want_total)
{
    for (int i = 0; i < 5000; i++) {
        const struct state_stats *st = state_stats(s);
        if (st->saved + st->failures >= want_total)
            return;
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    *len = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    return buf;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    if (d)
        closedir(d);
    return n;
}

static void test_save(void)
{
    char dir[] = "/tmp/test_state_XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "a temporary directory");
        return;
    }
    char leftover[256];
    snprintf(leftover, sizeof(leftover), "%s/.last-good.ini.abc123", dir);
    FILE *f = fopen(leftover, "w");
    if (f)
        fclose(f);

    struct event_base *base = event_base_new();
    struct state *s = state_new(base, dir);
    ok(s != NULL, "a state-dir");
    if (!s)
        return;
    ok(access(leftover, F_OK) == 0, "a temporary copy stays until the state-dir is claimed");
    state_claim(s);
    ok(access(leftover, F_OK) != 0, "a temporary copy left by a process that died is removed");
    ok(!state_saved(s)->found, "no copy yet");

    const char *text = "[namespace a]\nx = 10.0.0.1\n";
    state_save(s, strdup(text), strlen(text), 1000, 7);
    settle(base, s, 1);
    is_int(state_stats(s)->saved, 1, "written");
    size_t len = 0;
    char *got = slurp(state_copy_path(s), &len);
    struct state_saved h;
    size_t head = got ? state_parse_header(got, len, &h) : 0;
    ok(head && h.found && h.serial == 1000 && h.digest == 7 &&
           h.hash == config_hash(text, strlen(text)),
       "its first line: serial, digest, and the hash of the text");
    ok(got && len - head == strlen(text) && memcmp(got + head, text, strlen(text)) == 0,
       "then the text as it was loaded");
    free(got);
    struct stat st;
    ok(stat(state_copy_path(s), &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
    is_int(count_files(dir), 1, "no temporary file stays");

    state_save(s, strdup(text), strlen(text), 1000, 7);
    settle(base, s, 2);
    is_int(state_stats(s)->saved, 1, "the same copy is not written again");

    /* Three while one is written: the newest follows it, the middle one never is. */
    const char *t2 = "[namespace a]\nx = 10.0.0.2\n", *t3 = "[namespace a]\nx = 10.0.0.3\n";
    state_save(s, strdup(t2), strlen(t2), 1001, 8);
    state_save(s, strdup(text), strlen(text), 1002, 9);
    state_save(s, strdup(t3), strlen(t3), 1003, 10);
    settle(base, s, 3);
    ok(state_stats(s)->saved == 3 && state_saved(s)->serial == 1003, "the newest copy last");

    /* svcmapd --replace: the copy being written, and the one to follow it,
     * are on disk before the state-dir is let go; nothing is written after. */
    const char *t4 = "[namespace a]\nx = 10.0.0.4\n", *t5 = "[namespace a]\nx = 10.0.0.5\n";
    state_save(s, strdup(t4), strlen(t4), 1004, 11);
    state_save(s, strdup(t5), strlen(t5), 1005, 12);
    state_release(s);
    ok(state_stats(s)->saved == 5 && state_saved(s)->serial == 1005,
       "released: the copies asked for before are written");
    state_save(s, strdup(text), strlen(text), 1006, 13);
    is_int(state_stats(s)->saved, 5, "released: nothing is written after");
    state_free(s);

    s = state_new(base, dir);
    ok(s && state_saved(s)->found && state_saved(s)->serial == 1005 &&
           state_saved(s)->hash == config_hash(t5, strlen(t5)),
       "what the copy says is read at start");

    state_free(s);

    /* A state-dir that cannot be written (a file, not a directory: root
     * writes into any directory): counted, serving goes on. */
    char file[256];
    snprintf(file, sizeof(file), "%s/last-good.ini", dir);
    s = state_new(base, file);
    ok(s && !state_saved(s)->found, "a state-dir that is a file: no copy");
    if (s) {
        state_save(s, strdup(t2), strlen(t2), 1004, 11);
        settle(base, s, 1);
        state_save(s, strdup(t2), strlen(t2), 1004, 11);
        settle(base, s, 2);
        ok(state_stats(s)->failures == 2 && state_stats(s)->failing && state_stats(s)->saved == 0,
           "both failures counted: a copy that failed is tried again");
        state_free(s);
    }
    event_base_free(base);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    test_header();
    test_save();
    return done_testing();
}
