/* test_diag.c -- collecting diagnostics: their lines, their counts, the cap. */
#include <stdio.h>
#include <string.h>

#include "svcmapd/diag.h"
#include "tap.h"

struct seen {
    int calls;
    char last[1024];
    char last_msg[1024];
    int last_line;
    enum diag_severity severities[4];
};

static void collect(const struct diag_entry *e, void *arg)
{
    struct seen *s = arg;
    if (s->calls < 4)
        s->severities[s->calls] = e->severity;
    s->calls++;
    snprintf(s->last, sizeof(s->last), "%s", e->text);
    snprintf(s->last_msg, sizeof(s->last_msg), "%s", e->msg);
    s->last_line = e->line;
}

static void test_empty(void)
{
    /* no text at all yet: clang's UBSan objects to NULL + 0 */
    struct diag d;
    diag_init(&d, "e.ini");
    struct seen s = {0};
    diag_each(&d, collect, &s);
    is_int(s.calls, 0, "an empty collection calls nothing");
    diag_finish(&d);
    diag_each(&d, collect, &s);
    is_int(s.calls, 0, "nor does a finished one");
}

static void test_lines(void)
{
    struct diag d;
    diag_init(&d, "l.ini");
    diag_error(&d, 3, "bad %s", "value");
    diag_warning(&d, 0, "odd, %d times", 2);
    is_int(d.errors, 1, "one error counted");
    is_int(d.warnings, 1, "one warning counted");
    is_str(d.text, "l.ini:3: error: bad value\nl.ini: warning: odd, 2 times\n",
           "FILE:LINE: error: ..., FILE: warning: ... without a line");
    struct seen s = {0};
    diag_each(&d, collect, &s);
    is_int(s.calls, 2, "one call per line");
    is_str(s.last, "l.ini: warning: odd, 2 times", "without the newline");
    is_int(s.severities[0], DIAG_ERROR, "the error's severity travels with it");
    is_int(s.severities[1], DIAG_WARNING, "and the warning's");
    is_str(s.last_msg, "odd, 2 times", "the message alone");
    is_int(s.last_line, 0, "no line: 0");

    /* a message that looks like another severity is still what it was added as */
    diag_error(&d, 7, "x: warning: y");
    struct seen t = {0};
    diag_each(&d, collect, &t);
    is_int(t.severities[2], DIAG_ERROR, "an error whose text says ': warning: ' is an error");
    is_int(t.last_line, 7, "with its line");
    diag_finish(&d);
}

static void test_cap(void)
{
    struct diag d;
    diag_init(&d, "c.ini");
    for (int i = 1; i <= DIAG_MAX_STORED + 5; i++)
        diag_error(&d, i, "error %d", i);
    is_int(d.errors, DIAG_MAX_STORED + 5, "every error counted");
    is_int(d.dropped, 5, "the ones over the cap dropped");
    struct seen s = {0};
    diag_each(&d, collect, &s);
    is_int(s.calls, DIAG_MAX_STORED + 1, "the stored lines and a note");
    is_str(s.last, "c.ini: note: 5 more diagnostics not shown", "the note says how many");
    is_str(s.last_msg, "5 more diagnostics not shown", "its message");
    is_int(s.last_line, 0, "of the file as a whole");
    diag_finish(&d);
}

int main(void)
{
    test_empty();
    test_lines();
    test_cap();
    return done_testing();
}
