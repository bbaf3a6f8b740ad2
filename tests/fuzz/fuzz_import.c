/* fuzz_import.c -- libFuzzer target: any bytes as the JSON `svcmapd import` reads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "svcmapd/config.h"
#include "svcmapd/import.h"
#include "svcmapd/load.h"

/*
 * import_convert() either fails for bad input (-EINVAL), with at least one
 * error and no text, or succeeds with no error and a text that:
 *   - load_text() takes without an error, as `svcmapd -t` would
 *     (checked here again, apart from import's own check, which could
 *     be wrong the same way as what it checks);
 *   - is NUL-free, ends in a newline, and has no line over the 198
 *     characters Debian's inih reads;
 *   - comes out the same for the same input a second time.
 * -EPROTO (its own check refused what it made) is a failure, and so is
 * -ENOMEM: no input this small may take a gigabyte. Everything is freed,
 * so LeakSanitizer checks the error paths too.
 */

#define FILE_NAME "fuzz.json"
#define ZONE      "cluster.local"

static void check_text(const char *out, size_t len)
{
    if (memchr(out, '\0', len) || out[len] != '\0')
        fuzz_fail("the text holds a NUL or is not NUL-terminated");
    if (len == 0 || out[len - 1] != '\n')
        fuzz_fail("the text does not end in a newline");
    for (const char *line = out; line < out + len;) {
        const char *nl = memchr(line, '\n', (size_t)(out + len - line));
        if (nl - line > 198)
            fuzz_fail("a line of %zu characters: %.*s", (size_t)(nl - line), (int)(nl - line),
                      line);
        line = nl + 1;
    }

    struct load l;
    load_init(&l, "import.ini");
    if (!load_text(&l, out, len, NULL, &fuzz_host, 1700000000) || l.diag.errors)
        fuzz_fail("svcmapd -t refuses what import printed:\n%.*s--- the text:\n%s", (int)l.diag.len,
                  l.diag.text ? l.diag.text : "", out);
    load_finish(&l);
}

/* One conversion; the text (malloc'ed) or NULL. */
static char *convert(const uint8_t *data, size_t size, size_t *len)
{
    struct diag d;
    diag_init(&d, FILE_NAME);
    char *out = NULL;
    int r = import_convert((const char *)data, size, ZONE, &d, &out, len);
    if (r < 0) {
        if (r != -EINVAL)
            fuzz_fail("import failed with %s:\n%.*s", strerror(-r), (int)d.len,
                      d.text ? d.text : "");
        if (out || *len)
            fuzz_fail("a failed import gave %zu bytes of text", *len);
        if (d.errors == 0)
            fuzz_fail("a failed import reported no error");
    } else if (!out || d.errors) {
        fuzz_fail("import succeeded with %s and %u errors", out ? "a text" : "no text", d.errors);
    }
    diag_finish(&d);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = 0, again_len = 0;
    char *out = convert(data, size, &len);
    if (!out)
        return 0;
    check_text(out, len);
    char *again = convert(data, size, &again_len);
    if (!again || again_len != len || memcmp(again, out, len) != 0)
        fuzz_fail("the same input gave another text the second time");
    free(again);
    free(out);
    return 0;
}
