/* fuzz_http.c -- libFuzzer target: any bytes as what a client sends to the HTTP endpoints. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "svcmapd/config.h"
#include "svcmapd/http.h"
#include "svcmapd/log.h"

/*
 * Input: the bytes a client writes on one connection, then it closes its
 * side. The connection is one end of a socket pair, handed to the real
 * server (src/http.c, through http_adopt()) on a private event base that
 * serves /health, /ready and /metrics on one endpoint; the loop runs until
 * the server closes the connection, which it must do without a timer:
 * everything it waits for after EOF is nothing.
 *
 * What comes back must be whole HTTP/1.1 responses and nothing else: a
 * status line with a status the server knows, header lines, Date,
 * Content-Type and one Content-Length, and a body of that length (none
 * after HEAD: a response that is followed at once by the next status line
 * or by the end had none; no body of ours starts with "HTTP/"). Nothing
 * follows a response that says Connection: close. No connection may stay
 * open afterwards, and nothing may leak. /metrics answers 503 "starting"
 * here: it has no server to read.
 */

#define MAX_ROUNDS 100000 /* turns of the loop for one input: more is a hang */
#define OUT_MAX    (1 << 20)

static struct event_base *base;
static struct http *http;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_ERROR); /* refusals are logged: not once per input */
    base = event_base_new();
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!base || !cfg)
        abort();
    /* one endpoint for the three pages, on a port of the kernel's choice
     * that nothing connects to */
    struct sockaddr_in *sin = (struct sockaddr_in *)&cfg->http[0].addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cfg->http[0].addrlen = sizeof(*sin);
    snprintf(cfg->http[0].text, sizeof(cfg->http[0].text), "127.0.0.1:0");
    for (int i = 0; i < 3; i++) {
        cfg->http[i] = cfg->http[0];
        cfg->http_on[i] = true;
    }
    http = http_new(base, cfg, NULL);
    free(cfg);
    if (!http)
        abort();
    http_set_ready(http, true, NULL);
    return 0;
}

static const char *find(const char *p, const char *end, const char *s)
{
    size_t n = strlen(s);
    for (; p + n <= end; p++)
        if (memcmp(p, s, n) == 0)
            return p;
    return NULL;
}

/* The responses in `out` (`len` bytes), one after the other. */
static void check_responses(const char *out, size_t len)
{
    static const int known[] = {200, 400, 404, 405, 413, 431, 503, 505};
    const char *p = out, *end = out + len;
    size_t n = 0;
    while (p < end) {
        n++;
        const char *eol = find(p, end, "\r\n");
        if (end - p < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 || !eol)
            fuzz_fail("response %zu: no status line: %.40s", n, p);
        int status = atoi(p + 9);
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= status == known[i];
        if (!ok || p[12] != ' ')
            fuzz_fail("response %zu: status line %.*s", n, (int)(eol - p), p);
        p = eol + 2;
        long length = -1;
        bool close = false, date = false, type = false;
        for (;;) {
            eol = find(p, end, "\r\n");
            if (!eol)
                fuzz_fail("response %zu: headers without an end", n);
            if (eol == p)
                break;
            const char *colon = memchr(p, ':', (size_t)(eol - p));
            if (!colon || colon == p || colon[1] != ' ')
                fuzz_fail("response %zu: header line %.*s", n, (int)(eol - p), p);
            if (strncmp(p, "Content-Length: ", 16) == 0) {
                if (length >= 0)
                    fuzz_fail("response %zu: two Content-Length", n);
                length = atol(p + 16);
            }
            close |= strncmp(p, "Connection: close\r", 18) == 0;
            date |= strncmp(p, "Date: ", 6) == 0;
            type |= strncmp(p, "Content-Type: ", 14) == 0;
            p = eol + 2;
        }
        p += 2;
        if (length < 0 || !date || !type)
            fuzz_fail("response %zu: no Content-Length, Date or Content-Type", n);
        bool headers_only = p == end || (end - p >= 5 && memcmp(p, "HTTP/", 5) == 0);
        if (!headers_only) {
            if (end - p < length)
                fuzz_fail("response %zu: body of %ld bytes, %zd sent", n, length, end - p);
            p += length;
        }
        if (close && p != end)
            fuzz_fail("response %zu: %zd bytes after Connection: close", n, end - p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (http_adopt(http, sv[0]) < 0)
        fuzz_fail("http_adopt");
    char *out = malloc(OUT_MAX);
    if (!out)
        abort();
    size_t sent = 0, len = 0;
    bool shut = false, eof = false;
    for (int round = 0; !eof; round++) {
        if (round == MAX_ROUNDS)
            fuzz_fail("the connection is still open after %d turns of the loop", MAX_ROUNDS);
        if (sent < size) {
            ssize_t k = send(sv[1], data + sent, size - sent, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
            else if (errno == EPIPE || errno == ECONNRESET)
                sent = size; /* the server is done with it */
        }
        if (sent == size && !shut) {
            shutdown(sv[1], SHUT_WR);
            shut = true;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        for (;;) {
            ssize_t k = recv(sv[1], out + len, OUT_MAX - len, 0);
            if (k > 0 && (len += (size_t)k) == OUT_MAX)
                fuzz_fail("more than %d bytes of responses", OUT_MAX);
            if (k == 0 || (k < 0 && errno == ECONNRESET))
                eof = true;
            if (k <= 0)
                break;
        }
    }
    close(sv[1]);
    if (http_connections(http) != 0)
        fuzz_fail("the server still holds the connection it closed");
    check_responses(out, len);
    free(out);
    return 0;
}
