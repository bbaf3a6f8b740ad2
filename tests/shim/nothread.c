/* nothread.c -- an LD_PRELOAD shim for the tests: a process that may start
 * no thread.
 *
 * pthread_create() fails with EAGAIN, as it does in a container at its
 * pids limit. test_cli.py runs svcmapd with it: start-up must fail with
 * exit status 3 and say why, not crash. */
#include <errno.h>
#include <pthread.h>

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    (void)thread;
    (void)attr;
    (void)fn;
    (void)arg;
    return EAGAIN;
}
