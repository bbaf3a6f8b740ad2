/* log.h -- leveled, format-checked log lines on stderr. */
#ifndef SVCMAPD_LOG_H
#define SVCMAPD_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
};

/* Lines below `level` are discarded. The default is LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);

/* Writes one line `2026-11-26T10:00:00Z [LEVEL] message` to stderr with a
 * single write(2), so lines from several threads never interleave. Nothing
 * per query is logged at info level or above. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)   log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
