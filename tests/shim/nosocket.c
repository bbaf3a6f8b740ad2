/* nosocket.c -- an LD_PRELOAD shim for the tests: threads other than the
 * first get no UDP socket.
 *
 * socket(SOCK_DGRAM) fails with EMFILE in every thread but the main one, as
 * it does for a process out of file descriptors. svcmapd binds its listening
 * sockets on the main thread, so it starts; its workers' upstream lookups
 * then find no socket. test_fd_limit.py checks that they fail at once
 * instead of keeping their clients waiting for the lookup's timeout. */
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

int socket(int domain, int type, int protocol)
{
    static int (*real)(int, int, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "socket");
    if ((type & 0xf) == SOCK_DGRAM && gettid() != getpid()) {
        errno = EMFILE;
        return -1;
    }
    return real(domain, type, protocol);
}
