/* fuzz_control.c -- libFuzzer target: any bytes as what a client sends on the control socket. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "svcmapd/control.h"
#include "svcmapd/log.h"

/*
 * Input: the bytes a client writes on one connection to the control
 * socket, then it closes its side.
 *
 * First control_parse() on them, against an oracle written apart from it:
 * a line is the bytes before the first newline within CONTROL_LINE_MAX;
 * it is a command exactly when it is one of the names between blanks (a
 * '\r' before the newline allowed); a byte other than printable ASCII,
 * a tab or that '\r' refuses it, newline or not; without a newline it is
 * incomplete while shorter than the limit, too long at it. Every refusal
 * is an "error: " line of printable ASCII.
 *
 * Then the same bytes (the first 4096: the server reads no more than a
 * line) to the real server of src/control.c, listening on a socket in a
 * temporary directory with no mapping loaded yet, its event loop run until
 * it closes the connection, which it must do without a timer once the
 * client has closed its side. The reply must be what the parse says:
 * nothing for an incomplete line; else lines of printable ASCII, the last
 * `exit N` with N = 2 for a refusal, 1 for reload (nothing to reload
 * yet), 0 for the others. No client may stay, nothing may leak.
 */

#define MAX_ROUNDS 100000
#define OUT_MAX    (1 << 16)
#define SEND_MAX   4096

static struct event_base *base;
static struct control *control;
static struct sockaddr_un sun = {.sun_family = AF_UNIX};
static char dir[] = "/tmp/fuzz_control_XXXXXX";

static void cleanup(void)
{
    control_free(control);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR); /* refusals are logged: not once per input */
    base = event_base_new();
    if (!base || !mkdtemp(dir))
        abort();
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/c.sock", dir);
    control = control_new(base, sun.sun_path, (uid_t)-1, (gid_t)-1, NULL);
    if (!control)
        abort();
    atexit(cleanup);
    return 0;
}

/* The oracle: what a parse of `d` must give, and the command. */
static enum control_parse_result expect(const uint8_t *d, size_t n, int *cmd)
{
    size_t scan = n < CONTROL_LINE_MAX ? n : CONTROL_LINE_MAX, end = 0;
    while (end < scan && d[end] != '\n')
        end++;
    bool nl = end < scan;
    for (size_t i = 0; i < end; i++) {
        bool cr_ok = d[i] == '\r' && i + 1 == end;
        if (!(d[i] == '\t' || (d[i] >= 0x20 && d[i] < 0x7f) || cr_ok))
            return CONTROL_MALFORMED;
    }
    if (!nl)
        return scan < CONTROL_LINE_MAX ? CONTROL_INCOMPLETE : CONTROL_TOO_LONG;
    char line[CONTROL_LINE_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < end; i++)
        if (d[i] != '\r')
            line[k++] = (char)d[i];
    line[k] = '\0';
    char word[CONTROL_LINE_MAX + 1], extra[2];
    int got = sscanf(line, "%256s %1s", word, extra); /* blanks: space and tab */
    if (got < 1)
        return CONTROL_MALFORMED;
    for (int i = 0; i < CONTROL_COMMANDS; i++)
        if (strcmp(word, control_command_names[i]) == 0) {
            *cmd = i;
            return got == 1 ? CONTROL_PARSED : CONTROL_MALFORMED;
        }
    return CONTROL_UNKNOWN;
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 0x20 && s[i] < 0x7f) || s[i] == '\t'))
            return false;
    return true;
}

/* Sends `d` on a new connection and returns what came back (`*len`). */
static char *exchange(const uint8_t *d, size_t n, size_t *len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        fuzz_fail("connect: %s", strerror(errno));
    char *out = malloc(OUT_MAX);
    if (!out)
        abort();
    size_t sent = 0;
    bool shut = false, eof = false;
    *len = 0;
    if (n > SEND_MAX)
        n = SEND_MAX;
    for (int round = 0; !eof; round++) {
        if (round == MAX_ROUNDS)
            fuzz_fail("the connection is still open after %d turns of the loop", MAX_ROUNDS);
        if (sent < n) {
            ssize_t k = send(fd, d + sent, n - sent, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
            else if (errno == EPIPE || errno == ECONNRESET)
                sent = n;
        }
        if (sent == n && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        for (;;) {
            ssize_t k = recv(fd, out + *len, OUT_MAX - *len, 0);
            if (k > 0 && (*len += (size_t)k) == OUT_MAX)
                fuzz_fail("more than %d bytes of reply", OUT_MAX);
            if (k == 0 || (k < 0 && errno == ECONNRESET))
                eof = true;
            if (k <= 0)
                break;
        }
    }
    close(fd);
    for (int i = 0; i < 100 && control_stats(control)->clients; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    if (control_stats(control)->clients)
        fuzz_fail("the server still holds a client it closed");
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct control_line line;
    int cmd = -1;
    enum control_parse_result want = expect(data, size, &cmd);
    enum control_parse_result got = control_parse((const char *)data, size, &line);
    if (got != want)
        fuzz_fail("control_parse: %d, the oracle says %d", got, want);
    if (got == CONTROL_PARSED && (int)line.cmd != cmd)
        fuzz_fail("control_parse: command %d, the oracle says %d", line.cmd, cmd);
    if (got == CONTROL_PARSED &&
        (line.used == 0 || line.used > CONTROL_LINE_MAX || data[line.used - 1] != '\n'))
        fuzz_fail("control_parse: the line's length %zu", line.used);
    bool refused = got == CONTROL_MALFORMED || got == CONTROL_TOO_LONG || got == CONTROL_UNKNOWN;
    if (refused &&
        (strncmp(line.error, "error: ", 7) != 0 || !printable(line.error, strlen(line.error))))
        fuzz_fail("control_parse: the error line '%s'", line.error);

    size_t len;
    char *out = exchange(data, size, &len);
    if (got == CONTROL_INCOMPLETE) {
        if (len)
            fuzz_fail("a reply to an incomplete line: %.*s", (int)len, out);
        free(out);
        return 0;
    }
    if (len == 0 || out[len - 1] != '\n')
        fuzz_fail("a reply that does not end in a newline: %.*s", (int)len, out);
    size_t last = len - 1;
    while (last > 0 && out[last - 1] != '\n')
        last--;
    for (size_t i = 0; i < len; i++)
        if (out[i] != '\n' && !printable(out + i, 1))
            fuzz_fail("a byte 0x%02x in the reply", (unsigned char)out[i]);
    /* reload: no mapping loaded here; replace: no hand-over offered here */
    int status = refused ? 2 : cmd == CONTROL_RELOAD || cmd == CONTROL_REPLACE ? 1 : 0;
    char want_exit[16];
    snprintf(want_exit, sizeof(want_exit), "exit %d\n", status);
    if (len - last != strlen(want_exit) || memcmp(out + last, want_exit, len - last) != 0)
        fuzz_fail("the reply ends '%.*s', not '%s'", (int)(len - last), out + last, want_exit);
    if (refused && strncmp(out, line.error, strlen(line.error)) != 0)
        fuzz_fail("the reply to a refused line is not its error: %.*s", (int)len, out);
    free(out);
    return 0;
}
