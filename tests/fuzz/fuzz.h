/* fuzz.h -- the libFuzzer entry points, and the checks and set-up the targets share. */
#ifndef SVCMAPD_FUZZ_H
#define SVCMAPD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svcmapd/answer.h"

/* What every target defines: one input, any bytes. Returns 0, or -1 to
 * keep an input out of libFuzzer's corpus. Must not keep state between
 * calls that changes what the next input does. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional, once before the first input: libFuzzer calls it when a target
 * defines it, and so does driver.c (a weak reference there). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A failed check: prints "fuzz: " and the message on stderr, then
 * abort()s, which libFuzzer saves as a crash input. */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* The zone a target answers from, compiled from its fixed mapping `text`
 * (`len` bytes); a text that does not compile without a diagnostic is a
 * mistake in the target, not a finding, and fails at once. */
struct zone *fuzz_fixed_zone(const char *text, size_t len);

/* True if the text names a path that a config could open (`servers =
 * /PATH` reads a resolv.conf) and that may never end or block: /dev,
 * /proc, /sys, /run. A target skips such inputs: /dev/zero would be a
 * hang of the fuzzer's own making. */
bool fuzz_opens_device(const uint8_t *data, size_t size);

/* A memory file (memfd) that holds the `size` bytes at `data`: its
 * descriptor, for the target to close. Fails the input if it cannot. */
int fuzz_memory_file(const void *data, size_t size);

struct diag;

/* The machine the targets compile for: fixed, so that an input does
 * what it did the last time, whatever the interfaces of the machine. */
extern const struct zone_host fuzz_host;

/* Fails unless every diagnostic line of `d` starts with `file` and a
 * colon (as `svcmapd -t` and the reload log show them: a message that
 * smuggles a newline in would break that), one per error or warning. */
void fuzz_check_diag(const struct diag *d, const char *file);

/*
 * Answers `query` (`qlen` bytes) from `z` over UDP (`tcp` false) or TCP,
 * into a reply buffer of exactly the size the server uses, and abort()s
 * with a message on stderr if the reply breaks a rule every reply must
 * keep: never over the buffer or the UDP limit, the query's ID and QR=1,
 * at most one question and the query's own, and readable by ldns whenever
 * ldns can read the query as a message with one question. Returns the
 * length of the reply (0: nothing sent).
 */
/* abort()s with a message if the reply (`n` bytes, parsed by ldns) holds a
 * record owned by a name of zone `z` that is not the mapping's: the same
 * record (letter case aside, TTL included) as `z` gives to a query for that
 * name and type. The one exception is the TTL 0 of a CNAME that an answer
 * stops at (answer.c). Nothing a zone does not know may be said of its
 * names, whatever an upstream replied. */
void fuzz_check_zone_records(const struct zone *z, const uint8_t *reply, size_t n);

/* Runs the transfer of `z` that `first` (`len` bytes: the header, question
 * and OPT answer_query() wrote with ANSWER_TRANSFER) begins, and abort()s
 * if a message breaks RFC 5936 §2.2 as ldns reads it (the ID, AA, NOERROR,
 * the question in the first message only, at most XFR_MESSAGE_FILL bytes of
 * records), if the SOA is not first and last, or a record is there twice,
 * or is not what the zone answers for its name and type (every target of a
 * health-checked service: what it answers when none is up). */
void fuzz_check_transfer(const struct zone *z, const uint8_t *first, size_t len);

size_t fuzz_answer_checked(struct answer_ctx *ctx, const struct zone *z, const uint8_t *query,
                           size_t qlen, bool tcp, const struct sockaddr *peer);

#endif
