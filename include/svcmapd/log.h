/* log.h -- leveled, format-checked log lines on stderr. */
#ifndef SVCMAPD_LOG_H
#define SVCMAPD_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
};

enum log_format {
    LOG_FORMAT_TEXT, /* 2026-11-26T10:00:00Z [INFO] message */
    LOG_FORMAT_JSON, /* {"time":"...","level":"info","msg":"..."} */
};

/* Lines below `level` are discarded. The default is LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);

/* Text (the default) or one JSON object per line. */
void log_set_format(enum log_format format);

struct config;

/* Takes the [log] settings of `cfg`: level, format, queries. */
void log_configure(const struct config *cfg);

/* Query logging: off by default; cheap to test per query. */
void log_set_queries(bool on);
bool log_queries(void);

/* One answered query, in the fields of CoreDNS's `log` plugin. */
struct log_query {
    const struct sockaddr *peer;
    bool tcp;
    uint16_t id;
    uint16_t qtype;
    uint16_t qclass;
    const uint8_t *qname; /* wire form as received, or NULL */
    size_t size;          /* of the query */
    bool do_bit;
    uint16_t bufsize;     /* the client's EDNS size, 512 without */
    unsigned rcode;       /* extended */
    const uint8_t *reply; /* its header gives the flags; NULL: none sent */
    size_t rsize;
    uint64_t ns; /* time to answer */
};

/* Writes a query line (marked info, written at any `level`), as CoreDNS's
 * log plugin does:
 * `127.0.0.1:50759 - 29008 "A IN example.org. udp 41 false 4096" NOERROR
 * qr,aa,rd 68 0.000037990s`, or its JSON object. */
void log_query(const struct log_query *q);

/* Writes one line `2026-11-26T10:00:00Z [LEVEL] message` to stderr with a
 * single write(2), so lines from several threads never interleave. Nothing
 * per query is logged at info level or above. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `sa` as text for a log line: "192.0.2.1:53", "[2001:db8::1]:53", or "-"
 * for another family or NULL. */
void log_addr(const struct sockaddr *sa, char *out, size_t cap);

/*
 * At most one line per period for an event that a client can repeat at
 * will (a refused request, a failing accept()), so that an attacker cannot
 * flood the log: the first event of a period is logged and says how many
 * were left out since the previous line. Zeroed before use; any thread.
 */
struct log_limit {
    _Atomic uint64_t next_ms;    /* monotonic: when the next line may go out */
    _Atomic uint64_t suppressed; /* events not logged since the last line */
};

#define LOG_LIMIT_PERIOD 10 /* seconds */

/* True when this event is to be logged now: then *suppressed is the
 * number of events left out since the last line. False when it was
 * counted in silence. */
bool log_limit_pass(struct log_limit *l, uint64_t *suppressed);

#define log_debug(...)   log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)   log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
