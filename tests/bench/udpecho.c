/* udpecho.c -- the benchmark's floor: svcmapd's UDP path with no DNS in it.
 *
 * usage: udpecho ADDRESS PORT
 *
 * Answers every datagram with itself, the QR bit set, the way svcmapd's
 * worker moves its replies: epoll, recvmmsg in batches, replies of one
 * size to one client as one segmentation-offload train (udptrain_plan()
 * and udptrain_message(), the same code), sendmmsg. What a server spends
 * per query beyond this program is the price of its DNS work; what this
 * program spends is what the kernel charges for the datagrams alone on
 * this machine.
 *
 * Not a DNS server: it answers anything, even garbage, with itself. For
 * tests/bench/run only, on loopback; stops on SIGTERM or SIGINT.
 */
#include "svcmapd/udptrain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* as svcmapd's server.c */
#define BATCH   32
#define ROUNDS  8
#define MAXLEN  4096
#define BUFSIZE (4 << 20)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int listen_udp(const char *address, const char *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    char *end;
    long p = strtol(port, &end, 10);
    if (inet_pton(AF_INET, address, &a.sin_addr) != 1 || *end || p < 1 || p > 65535) {
        fprintf(stderr, "udpecho: expected an IPv4 address and a port\n");
        return -1;
    }
    a.sin_port = htons((uint16_t)p);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int size = BUFSIZE;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "udpecho: %s:%s: %s\n", address, port, strerror(errno));
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: udpecho ADDRESS PORT\n");
        return 2;
    }
    int fd = listen_udp(argv[1], argv[2]);
    if (fd < 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("udpecho: epoll");
        return 1;
    }

    static unsigned char buf[BATCH][MAXLEN];
    static struct sockaddr_in peer[BATCH];
    static struct mmsghdr in[BATCH], out[BATCH];
    static struct iovec iin[BATCH], iout[BATCH];
    static struct udptrain_reply r[BATCH];
    static struct udptrain trains[BATCH];
    static size_t order[BATCH];
    static union udptrain_ctl ctl[BATCH];

    while (!stop) {
        struct epoll_event e;
        if (epoll_wait(ep, &e, 1, -1) < 0)
            continue; /* EINTR: the signal, or not */
        for (int round = 0; round < ROUNDS; round++) {
            for (int i = 0; i < BATCH; i++) {
                iin[i] = (struct iovec){buf[i], MAXLEN};
                in[i].msg_hdr = (struct msghdr){.msg_name = &peer[i],
                                                .msg_namelen = sizeof(peer[i]),
                                                .msg_iov = &iin[i],
                                                .msg_iovlen = 1};
            }
            int n = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++) {
                size_t len = in[i].msg_len;
                if (len > 2)
                    buf[i][2] |= 0x80; /* QR */
                r[i] = (struct udptrain_reply){.data = buf[i],
                                               .len = len > 512 ? 0 : len,
                                               .peer = &peer[i],
                                               .peerlen = in[i].msg_hdr.msg_namelen};
            }
            size_t nt = udptrain_plan(r, (size_t)n, true, order, trains);
            for (size_t t = 0; t < nt; t++)
                udptrain_message(r, order, &trains[t], iout, &out[t].msg_hdr, &ctl[t]);
            /* a reply the kernel refuses is lost, as in svcmapd */
            for (size_t sent = 0; sent < nt;) {
                int k = sendmmsg(fd, out + sent, (unsigned)(nt - sent), 0);
                sent += k > 0 ? (size_t)k : 1;
            }
            if (n < BATCH)
                break;
        }
    }
    close(ep);
    close(fd);
    return 0;
}
