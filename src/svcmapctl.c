/* svcmapctl.c -- svcmapctl(8): a command to a running svcmapd over its control socket (SPEC §7). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config-build.h"
#include "svcmapd/config.h"
#include "svcmapd/control.h"
#include "svcmapd/diag.h"

/* svcmapctl's own exit statuses; the others are the server's (`exit N`). */
enum {
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
};

#define DEFAULT_TIMEOUT 60         /* seconds: a reload of a million services takes a few */
#define REPLY_MAX       (16 << 20) /* bytes of reply: far more than 200 diagnostics */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: svcmapctl [-s SOCKET | -c FILE] [-t SECONDS] COMMAND\n"
            "       svcmapctl -V | -h\n"
            "Sends COMMAND to a running svcmapd over its control socket ([control] socket).\n"
            "\n"
            "  -s, --socket SOCKET  the control socket\n"
            "  -c, --config FILE    the mapping file whose [control] socket to use\n"
            "                       (default %s)\n"
            "  -t, --timeout SECONDS\n"
            "                       how long to wait for the reply, 1 to 3600 (default %d)\n"
            "  -V, --version        print the version and exit\n"
            "  -h, --help           print this help and exit\n"
            "\n"
            "Commands:\n"
            "  status  version, uptime, serial, services, records, the last reload's line,\n"
            "          and whether the state-dir's last good copy is served\n"
            "  reload  reload the mapping file and print how it ended: its line, or every\n"
            "          FILE:LINE: error: of a file that was rejected\n"
            "  health  one line per health-checked target\n"
            "  stop    stop svcmapd, as SIGTERM does (lameduck included)\n"
            "\n"
            "What svcmapd replies goes to stdout, or to stderr when the status is not 0.\n"
            "Exit status: 0 done (reload: applied), 1 reload rejected or held, 2 bad usage\n"
            "or unknown command, 3 svcmapd cannot be reached or gave no reply in time.\n",
            SVCMAPD_DEFAULT_CONFIG, DEFAULT_TIMEOUT);
}

__attribute__((format(printf, 1, 2))) static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "svcmapctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'svcmapctl --help' for more information.\n");
    va_end(ap);
    return EXIT_USAGE;
}

struct socket_line {
    int line;
};

/* Prints the diagnostics of the [control] socket line. */
static void print_socket_diag(const struct diag_entry *e, void *arg)
{
    const struct socket_line *want = arg;
    if (e->line == want->line)
        fprintf(stderr, "%s\n", e->text);
}

/* The [control] socket of the mapping file `path`, read through the
 * config parser (its other errors do not matter here: svcmapctl reload is
 * how one learns of them). NULL after saying why. */
static char *socket_of(const char *path)
{
    struct diag d;
    diag_init(&d, path);
    size_t len;
    char *text = config_read(path, &len, &d);
    struct config *cfg = text ? config_parse(text, len, &d) : NULL;
    free(text);
    char *sock = cfg && cfg->control_socket ? strdup(cfg->control_socket) : NULL;
    if (!sock) {
        if (!cfg) {
            struct socket_line all = {0};
            diag_each(&d, print_socket_diag, &all);
        } else if (cfg->line[CONFIG_CONTROL_SOCKET]) {
            struct socket_line at = {cfg->line[CONFIG_CONTROL_SOCKET]};
            diag_each(&d, print_socket_diag, &at);
        }
        fprintf(stderr,
                "svcmapctl: %s gives no control socket ([control] socket); name it with -s\n",
                path);
    }
    config_free(cfg);
    diag_finish(&d);
    return sock;
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "svcmapctl: %s: too long for a unix socket\n", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = errno;
        fprintf(stderr, "svcmapctl: cannot reach svcmapd at %s: %s%s\n", path, strerror(err),
                err == ENOENT || err == ECONNREFUSED ? " (is it running, with this socket?)"
                : err == EACCES ? " (the socket is for the user svcmapd runs as, and root)"
                                : "");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Everything svcmapd sends until it closes the connection, within
 * `timeout` seconds. NULL after saying why. */
static char *read_reply(int fd, const char *path, unsigned timeout, size_t *len)
{
    char *buf = malloc(65536);
    size_t cap = 65536;
    *len = 0;
    long long deadline = now_ms() + (long long)timeout * 1000;
    while (buf) {
        long long left = deadline - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        int r = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            fprintf(stderr,
                    "svcmapctl: no reply from svcmapd at %s within %u s (a reload may still be "
                    "running: its outcome is logged)\n",
                    path, timeout);
            break;
        }
        if (*len == cap) {
            char *nb = cap < REPLY_MAX ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                fprintf(stderr, "svcmapctl: a reply of more than %d bytes\n", REPLY_MAX);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = r < 0 ? -1 : read(fd, buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        /* svcmapd closes after its reply: ECONNRESET if it had more to
         * read than the command, which it does not take */
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return buf;
        if (n < 0) {
            fprintf(stderr, "svcmapctl: reading from %s: %s\n", path, strerror(errno));
            break;
        }
        *len += (size_t)n;
    }
    free(buf);
    return NULL;
}

/* Prints the reply's lines but its last, `exit N`, and returns N; or
 * EXIT_UNREACHABLE for a reply without it. */
static int print_reply(const char *buf, size_t len, const char *path)
{
    size_t end = len;
    if (end && buf[end - 1] == '\n')
        end--;
    size_t last = end;
    while (last > 0 && buf[last - 1] != '\n')
        last--;
    int status = -1;
    char tail[16] = "";
    if (end - last < sizeof(tail))
        memcpy(tail, buf + last, end - last);
    if (strlen(tail) == 6 && strncmp(tail, "exit ", 5) == 0 && tail[5] >= '0' && tail[5] <= '3')
        status = tail[5] - '0';
    if (status < 0) {
        fwrite(buf, 1, len, stderr);
        fprintf(stderr, "svcmapctl: the reply from %s ended without its status\n", path);
        return EXIT_UNREACHABLE;
    }
    FILE *out = status == 0 ? stdout : stderr;
    fwrite(buf, 1, last, out);
    if (fflush(out) != 0) {
        fprintf(stderr, "svcmapctl: cannot write the reply: %s\n", strerror(errno));
        return EXIT_UNREACHABLE;
    }
    return status;
}

/* Sends `cmd` to the server at `sock` and prints its reply; the exit
 * status the reply ends with, or EXIT_UNREACHABLE. */
static int run(const char *sock, const char *cmd, unsigned timeout)
{
    int fd = connect_to(sock);
    if (fd < 0)
        return EXIT_UNREACHABLE;
    int rc = EXIT_UNREACHABLE;
    char line[32];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    size_t len = 0;
    char *reply = NULL;
    if (write(fd, line, (size_t)n) != n)
        fprintf(stderr, "svcmapctl: cannot send to %s: %s\n", sock, strerror(errno));
    else
        reply = read_reply(fd, sock, timeout, &len);
    if (reply)
        rc = print_reply(reply, len, sock);
    free(reply);
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},  {"config", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *sock = NULL, *config = NULL;
    unsigned timeout = DEFAULT_TIMEOUT;
    int opt;
    while ((opt = getopt_long(argc, argv, "+s:c:t:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sock = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 't': {
            char *end;
            errno = 0;
            unsigned long t = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || errno || t < 1 || t > 3600)
                return bad_usage("-t: '%s' is not a number of seconds from 1 to 3600", optarg);
            timeout = (unsigned)t;
            break;
        }
        case 'V':
            printf("svcmapctl %s\n", SVCMAPD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "Try 'svcmapctl --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (sock && config)
        return bad_usage("-s and -c both name the socket: give one");
    if (optind == argc)
        return bad_usage("no COMMAND");
    if (optind + 1 < argc)
        return bad_usage("one COMMAND at a time, got '%s' too", argv[optind + 1]);
    const char *cmd = argv[optind];
    int known = -1;
    for (int i = 0; i < CONTROL_COMMANDS; i++)
        if (strcmp(cmd, control_command_names[i]) == 0)
            known = i;
    if (known < 0) {
        fprintf(stderr, "svcmapctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (known == CONTROL_REPLACE)
        return bad_usage("replace is how a new svcmapd takes the sockets over: run "
                         "svcmapd --replace -c FILE");

    char *owned = NULL;
    if (!sock) {
        owned = socket_of(config ? config : SVCMAPD_DEFAULT_CONFIG);
        if (!owned)
            return EXIT_USAGE;
        sock = owned;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = run(sock, cmd, timeout);
    free(owned);
    return rc;
}
