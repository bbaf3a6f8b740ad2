/* config_value.c -- the value grammar: addresses, ports, DNS-1123 labels, domain names. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_impl.h"
#include "svcmapd/arena.h"

static bool is_label_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* DNS-1123 label: 1-63 of a-z0-9-, no leading or trailing '-'. Upper case
 * is accepted and folded, since matching is case-insensitive anyway. */
bool is_label(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_label_char(tolower((unsigned char)s[i])))
            return false;
    return true;
}

size_t check_label(struct parser *p, const char *s, int line, const char *what, char out[64])
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) {
        diag_error(p->d, line, "%s name '%s' must be 1 to 63 characters", what, s);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int c = tolower((unsigned char)s[i]);
        if (!is_label_char(c)) {
            diag_error(p->d, line,
                       "%s name '%s' is not a DNS-1123 label (only a-z, 0-9 and '-' are allowed)",
                       what, s);
            return 0;
        }
        out[i] = (char)c;
    }
    out[n] = '\0';
    if (out[0] == '-' || out[n - 1] == '-') {
        diag_error(p->d, line, "%s name '%s' must not start or end with '-'", what, s);
        return 0;
    }
    return n;
}

const char *check_dns1123(struct parser *p, const char *s, int line, const char *what)
{
    char buf[64];
    size_t n = check_label(p, s, line, what, buf);
    if (n == 0)
        return NULL;
    char *copy = arena_strndup(p->m, buf, n);
    if (!copy)
        parser_oom(p); /* NULL with no error of its own would pass as valid */
    return copy;
}

/* A domain name in text: labels of letters, digits, '-' and '_', 1-63 long,
 * at most 253 characters, optional trailing dot. Returns the length without
 * the trailing dot, or 0 after reporting what is wrong. */
size_t check_domain(struct parser *p, const char *s, int line, const char *what)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    if (n == 0 || (n == 1 && s[0] == '.')) {
        diag_error(p->d, line, "%s '%s' is empty or the root", what, s);
        return 0;
    }
    if (n > 253) {
        diag_error(p->d, line, "%s '%.40s...' is longer than 253 characters", what, s);
        return 0;
    }
    size_t start = 0;
    bool last_numeric = true;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!isalnum((unsigned char)c) && c != '-' && c != '_') {
                diag_error(p->d, line, "%s '%s' has a bad character '%c'", what, s, c);
                return 0;
            }
            continue;
        }
        size_t l = i - start;
        if (l == 0 || l > 63) {
            diag_error(p->d, line, "%s '%s' has a label of %zu characters (1 to 63 allowed)", what,
                       s, l);
            return 0;
        }
        if (s[start] == '-' || s[i - 1] == '-') {
            diag_error(p->d, line, "%s '%s' has a label that starts or ends with '-'", what, s);
            return 0;
        }
        last_numeric = strspn(s + start, "0123456789") >= l;
        start = i + 1;
    }
    if (last_numeric) {
        /* "192.168.1.300" is a typo for an address, not a host name: no
         * top-level domain is numeric. */
        diag_error(p->d, line, "'%s' is not a valid IP address", s);
        return 0;
    }
    return n;
}

bool parse_u32(const char *s, uint32_t *out)
{
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Port: 1-65535, decimal. Reports and returns false if bad. */
bool parse_port(struct parser *p, const char *s, int line, uint16_t *port)
{
    uint32_t v;
    if (!parse_u32(s, &v)) {
        diag_error(p->d, line, "bad port '%s'", s);
        return false;
    }
    if (v < 1 || v > 65535) {
        diag_error(p->d, line, "port %s out of range (1-65535)", s);
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

/* IPv4 in strict dotted-quad form: leading zeros are refused, because some
 * tools read them as octal. */
bool parse_ipv4(const char *s, uint8_t out[4])
{
    const char *q = s;
    for (int i = 0; i < 4; i++) {
        if (!isdigit((unsigned char)*q))
            return false;
        if (q[0] == '0' && isdigit((unsigned char)q[1]))
            return false;
        unsigned v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*q) && digits < 4) {
            v = v * 10 + (unsigned)(*q++ - '0');
            digits++;
        }
        if (v > 255 || digits > 3)
            return false;
        out[i] = (uint8_t)v;
        if (i < 3 && *q++ != '.')
            return false;
    }
    return *q == '\0';
}

/*
 * An address with an optional port: 1.2.3.4, 1.2.3.4:53, 2001:db8::1,
 * [2001:db8::1], [2001:db8::1]:53. Returns 1 if `s` parsed, 0 if it is not
 * an address at all (maybe a hostname), -1 if it is a bad address (reported).
 */
int parse_address(struct parser *p, const char *s, int line, struct config_target *t)
{
    char buf[128];
    size_t n = strlen(s);
    const char *port = NULL;

    if (n >= sizeof(buf)) {
        if (strchr(s, ':') || s[0] == '[') {
            diag_error(p->d, line, "bad address '%.40s...'", s);
            return -1;
        }
        return 0;
    }
    memcpy(buf, s, n + 1);
    t->port = 0;

    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close) {
            diag_error(p->d, line, "bad address '%s': missing ']'", s);
            return -1;
        }
        *close = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0') {
            diag_error(p->d, line, "bad address '%s': expected ':PORT' after ']'", s);
            return -1;
        }
        if (inet_pton(AF_INET6, buf + 1, t->addr) != 1) {
            diag_error(p->d, line, "bad IPv6 address '%s'", buf + 1);
            return -1;
        }
        t->family = AF_INET6;
    } else if (strchr(buf, ':')) {
        char *colon = strchr(buf, ':');
        if (strchr(colon + 1, ':') == NULL && strspn(buf, "0123456789.") == (size_t)(colon - buf)) {
            /* a.b.c.d:port */
            *colon = '\0';
            port = colon + 1;
            if (!parse_ipv4(buf, t->addr)) {
                diag_error(p->d, line, "bad IPv4 address '%s'", buf);
                return -1;
            }
            t->family = AF_INET;
        } else if (inet_pton(AF_INET6, buf, t->addr) == 1) {
            t->family = AF_INET6;
        } else if (strchr(colon + 1, ':') == NULL) {
            return 0; /* name:port: not an address; the caller says why */
        } else {
            diag_error(p->d, line,
                       "bad address '%s' (write an IPv6 address with a port as [ADDR]:PORT)", s);
            return -1;
        }
    } else if (strspn(buf, "0123456789.") == n) {
        if (!parse_ipv4(buf, t->addr)) {
            diag_error(p->d, line, "bad IPv4 address '%s'", s);
            return -1;
        }
        t->family = AF_INET;
    } else {
        return 0;
    }

    if (port && !parse_port(p, port, line, &t->port))
        return -1;
    t->kind = CONFIG_TARGET_ADDRESS;
    t->line = line;
    return 1;
}

void config_addr_text(struct config_addr *l)
{
    char host[INET6_ADDRSTRLEN];
    if (l->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(l->text, sizeof(l->text), "%s:%u", host, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(l->text, sizeof(l->text), "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
}

/* The socket address (and its text) of an address target with a port. */
void target_sockaddr(const struct config_target *t, struct config_addr *l)
{
    if (t->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(t->port);
        memcpy(&sin->sin_addr, t->addr, 4);
        l->addrlen = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(t->port);
        memcpy(&sin6->sin6_addr, t->addr, 16);
        l->addrlen = sizeof(*sin6);
    }
    config_addr_text(l);
}
