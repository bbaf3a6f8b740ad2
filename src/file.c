/* file.c -- reading what a file or a pipe holds, never more than a limit. */
#include "svcmapd/file.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

char *file_read_fd(int fd, size_t hint, size_t max, size_t *lenp, int *err)
{
    /* One byte more than expected: a read that fills the buffer means
     * there is more, and it is read on, up to one byte over the limit. */
    size_t len = 0, cap = (hint < max ? hint : max) + 1;
    char *buf = malloc(cap);
    if (!buf) {
        *err = -ENOMEM;
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = -errno;
            break;
        }
        if (n == 0) {
            *lenp = len;
            return buf;
        }
        len += (size_t)n;
        if (len > max) {
            *err = -EFBIG;
            break;
        }
        if (len == cap) {
            cap = cap > max / 2 ? max + 1 : cap * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                *err = -ENOMEM;
                break;
            }
            buf = nb;
        }
    }
    free(buf);
    return NULL;
}
