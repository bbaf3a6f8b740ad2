/* nogso.c -- an LD_PRELOAD shim for the tests: a kernel that refuses UDP
 * segmentation offload.
 *
 * sendmmsg() fails a message that carries UDP_SEGMENT with EIO, as Linux
 * does for a device without checksum offload, and sends the messages
 * before it, as the kernel stops at the first message that fails.
 * test_batch.py runs svcmapd with it to check the fallback: every reply
 * still arrives, one datagram each. */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags);

static bool has_segment(struct msghdr *m)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_SEGMENT)
            return true;
    return false;
}

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    int (*real)(int, struct mmsghdr *, unsigned int, int);
    *(void **)&real = dlsym(RTLD_NEXT, "sendmmsg");
    for (unsigned int i = 0; i < n; i++) {
        if (has_segment(&v[i].msg_hdr)) {
            if (i == 0) {
                errno = EIO;
                return -1;
            }
            return real(fd, v, i, flags);
        }
    }
    return real(fd, v, n, flags);
}
