/* config_impl.h -- the parser's state, shared by the files that read a mapping file. */
#ifndef SVCMAPD_CONFIG_IMPL_H
#define SVCMAPD_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svcmapd/config.h"

/*
 * Reading a mapping file is split by concern:
 *   config.c          the public entry points and the parse driver, the
 *                     parser's string set;
 *   config_file.c     the file's bytes: read whole or line by line in
 *                     chunks, and their hash;
 *   config_ini.c      the inih shim: lines, sections, keys and their tokens;
 *   config_options.c  the option table, a setter per type of value, and
 *                     --list-options;
 *   config_service.c  the service-line grammar of [namespace NAME];
 *   config_value.c    the value grammar: addresses, ports, labels, domains.
 */

/* ---- a small string set, for duplicate sections and services ---- */

struct strset_entry {
    const char *key;
    int line;
};

struct strset {
    struct strset_entry *slots;
    size_t cap;
    size_t count;
};

void strset_clear(struct strset *set);

/* Inserts `key` (owned by the caller's arena). Returns 0 if it was new, or
 * the line of the earlier entry; -1 when out of memory. */
int strset_add(struct strset *set, const char *key, int line);

/* The line of `key` in the set, or 0 if it is not there. */
int strset_find(const struct strset *set, const char *key);

/* ---- a file's bytes (config_file.c) ---- */

/* config_hash(), fed piece by piece: the same value for the same bytes,
 * however they are cut. */
struct hasher {
    uint64_t h;
    uint64_t n;            /* bytes fed */
    unsigned char tail[8]; /* the last n % 8 of them */
};

void hasher_init(struct hasher *s);
void hasher_add(struct hasher *s, const void *data, size_t len);
uint64_t hasher_end(const struct hasher *s);

/* Bytes read per read() of a mapping file; a test may shrink it so that
 * lines cross chunk boundaries. The reader holds a line of up to this
 * plus LINES_HELD bytes; a longer one is cut (struct line). */
extern size_t config_chunk;
#define LINES_HELD 1024

/* Whether inih reads every key line, the parser's own reading of the
 * plainest ones (read_line()) left out: for the tests that compare them. */
extern bool config_inih_only;

/* The physical lines of a text in memory, or of a file read in chunks. */
struct lines {
    const char *buf; /* bytes [pos, fill) are not handed out yet */
    size_t pos, fill;
    char *own; /* a file's: the buffer, of `cap` bytes */
    size_t cap;
    int fd;             /* -1: the whole text is in buf */
    bool eof;           /* no more bytes to read */
    int error;          /* why reading stopped before the end: an errno, EFBIG when the
                         * file outgrew CONFIG_MAX_MIB while read */
    uint64_t total;     /* bytes read */
    struct hasher hash; /* of the bytes read */
    int lineno;
    char brief[3]; /* the stand-in of a cut line */
};

/* One line without its line ending (nor the byte order mark of the
 * first). A line longer than the reader holds is `cut`: [text, end) is
 * then a stand-in that keeps what read_line() looks at in a line too long
 * for inih anyway: " " for leading whitespace, then its first other byte
 * (none for a blank line); `nul` says whether it held a NUL byte. */
struct line {
    const char *text, *end;
    bool cut, nul;
};

/* Lines of `text`. */
void lines_text(struct lines *r, const char *text, size_t len);

/* Lines of the file at `path`, after the checks config_read() makes:
 * false, reported to `d`, if it cannot be opened or is no regular file of
 * at most CONFIG_MAX_MIB MiB. Free with lines_close(). */
bool lines_open(struct lines *r, const char *path, struct diag *d);

/* The next line; false at the end of the bytes, or when reading failed
 * (r->error). */
bool lines_next(struct lines *r, struct line *out);

/* Whether the line lines_next() gave last is known to be a key's whole
 * value: the line after it begins with a key or a section (no space, no
 * comment: with inih, an indented line after blanks or comments still
 * continues the value), or there is none. False when that line is not
 * read yet. */
bool lines_value_ends(const struct lines *r);

/* Reads whatever the parse left, for the hash and the size check. */
void lines_drain(struct lines *r);

/* Reports r->error to `d`. */
void lines_report(const struct lines *r, struct diag *d);

void lines_close(struct lines *r);

/* ---- parser state ---- */

enum section_kind {
    SECTION_NONE,    /* before the first section */
    SECTION_INVALID, /* a bad header: its keys are skipped, the header was reported */
    SECTION_OPTIONS, /* [server], [upstream], [http]: keys of config_options[] */
    SECTION_NAMESPACE,
};

enum line_kind {
    LINE_BLANK,
    LINE_SECTION,
    LINE_KEY,
    LINE_CONTINUATION,
};

struct token {
    const char *text; /* NUL-terminated, in parser.text (at `at`) or the arena */
    int line;
    size_t at;
};

struct parser {
    struct config *cfg;
    struct diag *d;
    struct arena *a; /* settings */
    struct arena *m; /* the mapping: namespaces, services, targets */

    const struct config_skip *skip; /* NULL: every service is parsed */
    struct lines *lines;
    int lineno;          /* of the line being read */
    enum line_kind kind; /* of the line inih is handling now */
    bool have_key;       /* mirrors inih's prev_name: continuation lines allowed */
    bool skipping;       /* drop continuation lines of a line that was rejected */

    enum section_kind section;
    const char *section_name; /* of SECTION_OPTIONS */
    int section_line;
    size_t ns; /* index of the current namespace */

    /* The key being read: its value may continue on following lines, so it
     * is processed when the next key, section or the end of file arrives. */
    const char *key;
    int key_line;
    struct token *tokens;
    size_t ntokens, tokcap;
    /* the key, lower case, then its tokens, each followed by a 0 byte:
     * what config_service.text_fp hashes */
    char *text;
    size_t textlen, textcap;
    bool key_open;

    struct strset names;    /* section headers: "server", "namespace <ns>"; in `keys` */
    struct strset services; /* of the current namespace */
    int asked;              /* the line unchanged_key() asked about in vain: not again */
    struct arena *nsnames;  /* its keys when skipping: reset with it */
    struct arena *keys;     /* freed when parsing ends */
    struct arena *scratch;  /* the name of the key being read */
    bool oom;
};

/* Reports running out of memory, once: parsing then stops being useful. */
void parser_oom(struct parser *p);

/* ---- the inih shim (config_ini.c) ---- */

/* Reads p->lines through inih, line by line, into p->cfg: every section
 * begun, every key handed to set_option_key() or add_service(), every
 * problem reported. */
void parse_ini(struct parser *p);

/* ---- options (config_options.c) ---- */

/* Sets the option p->key of the current options section from p->tokens,
 * or reports why not: a key the section lacks, one given twice, no value,
 * a bad value. */
void set_option_key(struct parser *p);

/* Sets every option to its default. */
void apply_defaults(struct parser *p);

/* The checks of options against each other, once the file is read: a
 * [health] timeout below its interval. */
void check_settings(struct parser *p);

/* ---- services (config_service.c) ---- */

/* Adds the service `rawname` of the current namespace from the tokens of
 * its line, or reports why not. */
void add_service(struct parser *p, const char *rawname, int line, const struct token *tok,
                 size_t n);

/* ---- values (config_value.c) ---- */

/* The functions given `p`, `line` and `what` report a bad value as
 * `FILE:LINE: error: ...`, naming it `what`. */

/* Whether `n` bytes at `s` are a DNS-1123 label (either case); reports
 * nothing. */
bool is_label(const char *s, size_t n);

/* A DNS-1123 label, folded to lower case in p->m; NULL if bad. */
const char *check_dns1123(struct parser *p, const char *s, int line, const char *what);

/* The same into `out`: its length, or 0 if bad. */
size_t check_label(struct parser *p, const char *s, int line, const char *what, char out[64]);

/* The length of domain name `s` without its trailing dot; 0 if bad. */
size_t check_domain(struct parser *p, const char *s, int line, const char *what);

/* A decimal number that fits 32 bits, nothing else; reports nothing. */
bool parse_u32(const char *s, uint32_t *out);

/* A port, 1 to 65535. */
bool parse_port(struct parser *p, const char *s, int line, uint16_t *port);

/* A strict dotted quad, no leading zeros; reports nothing. */
bool parse_ipv4(const char *s, uint8_t out[4]);

/* An address with an optional port: 1 parsed, 0 not an address at all
 * (maybe a hostname; not reported), -1 a bad address (reported). */
int parse_address(struct parser *p, const char *s, int line, struct config_target *t);

/* The socket address, and its text, of an address target with a port. */
void target_sockaddr(const struct config_target *t, struct config_addr *l);

#endif
