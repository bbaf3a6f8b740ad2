/* file.h -- reading what a file or a pipe holds, never more than a limit. */
#ifndef SVCMAPD_FILE_H
#define SVCMAPD_FILE_H

#include <stddef.h>

/*
 * Reads `fd` to its end into a new buffer (malloc'ed, `*len` bytes; the
 * caller frees it), reading at most one byte past `max` so that a file
 * growing while read, or a pipe that never ends, is caught without holding
 * more. `hint` is the size expected (fstat's, or 0), to size the buffer
 * once. Returns NULL with *err set: -EFBIG when there is more than `max`,
 * -ENOMEM, or the negative errno of read(2). The descriptor stays open.
 */
char *file_read_fd(int fd, size_t hint, size_t max, size_t *len, int *err);

#endif
