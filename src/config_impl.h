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
    const char *text; /* NUL-terminated, in the arena */
    int line;
};

struct parser {
    struct config *cfg;
    struct diag *d;
    struct arena *a; /* settings */
    struct arena *m; /* the mapping: namespaces, services, targets */

    const char *text; /* the whole file */
    size_t len;
    size_t pos;
    int lineno;
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
    bool key_open;

    struct strset names;    /* section headers: "server", "namespace <ns>"; in `keys` */
    struct strset services; /* of the current namespace */
    struct arena *keys;     /* freed when parsing ends */
    struct arena *scratch;  /* the tokens of the key being read */
    bool oom;
};

/* Reports running out of memory, once: parsing then stops being useful. */
void parser_oom(struct parser *p);

/* ---- the inih shim (config_ini.c) ---- */

/* Reads p->text through inih, line by line, into p->cfg: every section
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

/* A DNS-1123 label, folded to lower case in p->m; NULL if bad. */
const char *check_dns1123(struct parser *p, const char *s, int line, const char *what);

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
