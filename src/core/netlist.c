#include "core/netlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NETLIST_V4_BITS   32
#define NETLIST_V6_BITS   128
#define NETLIST_TOKEN_MAX (INET6_ADDRSTRLEN + 4) /* longest "addr/prefix" worth parsing */
#define NETLIST_SHOW_MAX  64                     /* bytes of a bad entry quoted in err */
#define NETLIST_ELLIPSIS  "..."
#define NETLIST_SHOW_BUF  (NETLIST_SHOW_MAX + sizeof(NETLIST_ELLIPSIS))
#define NETLIST_INITIAL   8

static void netlist_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void netlist_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Is the address a (family, bytes) inside net? Bits past the prefix are
 * ignored, so an unmasked net still matches sensibly. */
int netlist_net_has(const struct netlist_net *net, int family, const unsigned char *a)
{
    if (net->family != family)
        return 0;
    int bits = family == AF_INET ? NETLIST_V4_BITS : NETLIST_V6_BITS;
    int prefix = net->prefix < 0 ? 0 : net->prefix > bits ? bits : net->prefix;
    size_t whole = (size_t)prefix / 8;
    if (memcmp(net->addr, a, whole) != 0)
        return 0;
    int rest = prefix % 8;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->addr[whole] & mask) == (a[whole] & mask);
}

int netlist_has_bytes(const struct netlist_net *nets, size_t n, int family, const unsigned char *a)
{
    for (size_t i = 0; i < n; i++)
        if (netlist_net_has(&nets[i], family, a))
            return 1;
    return 0;
}

/* Family and address bytes of sa; -1 for a bad family or a short len. */
int netlist_sa_bytes(const struct sockaddr *sa, socklen_t len, int *family, unsigned char *a)
{
    if (!sa || len < (socklen_t)(offsetof(struct sockaddr, sa_family) + sizeof(sa_family_t)))
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(a, (const char *)sa + offsetof(struct sockaddr_in, sin_addr), 4);
        *family = AF_INET;
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(a, (const char *)sa + offsetof(struct sockaddr_in6, sin6_addr), 16);
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

int netlist_has(const struct sockaddr *sa, socklen_t len, const struct netlist_net *nets, size_t n)
{
    int family;
    unsigned char a[16];
    if (netlist_sa_bytes(sa, len, &family, a) != 0)
        return 0;
    return netlist_has_bytes(nets, n, family, a);
}

/* A bad entry as quoted in err: at most NETLIST_SHOW_MAX bytes then "...",
 * and control and non-ASCII bytes shown as '?' so a config typo cannot
 * garble the log line. out has room for NETLIST_SHOW_BUF bytes. */
static void netlist_show(const char *tok, size_t len, char *out)
{
    int cut = len > NETLIST_SHOW_MAX;
    size_t n = cut ? NETLIST_SHOW_MAX : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tok[i];
        out[i] = (c > ' ' && c < 0x7f) ? (char)c : '?';
    }
    if (cut)
        memcpy(out + n, NETLIST_ELLIPSIS, sizeof(NETLIST_ELLIPSIS) - 1);
    out[cut ? n + sizeof(NETLIST_ELLIPSIS) - 1 : n] = '\0';
}

/* One "addr[/prefix]" entry into *net; -1 with err set. */
static int netlist_parse_one(const char *tok, size_t len, struct netlist_net *net, char *err,
                             size_t errlen)
{
    char show[NETLIST_SHOW_BUF];
    char buf[NETLIST_TOKEN_MAX + 1];
    netlist_show(tok, len, show);
    if (len > NETLIST_TOKEN_MAX) {
        netlist_err(err, errlen, "bad network '%s': not an IP address", show);
        return -1;
    }
    memcpy(buf, tok, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';

    int bits;
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, buf, net->addr) == 1) {
        net->family = AF_INET;
        bits = NETLIST_V4_BITS;
    } else if (inet_pton(AF_INET6, buf, net->addr) == 1) {
        net->family = AF_INET6;
        bits = NETLIST_V6_BITS;
    } else {
        netlist_err(err, errlen, "bad network '%s': not an IP address", show);
        return -1;
    }

    net->prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = strlen(p);
        int v = 0;
        if (plen == 0 || plen > 3 || strspn(p, "0123456789") != plen || (v = atoi(p)) > bits) {
            netlist_err(err, errlen, "bad network '%s': the prefix must be a number from 0 to %d",
                        show, bits);
            return -1;
        }
        net->prefix = v;
    }

    /* "10.0.0.1/8" is almost always a typo for a host or for 10.0.0.0/8:
     * say which instead of guessing */
    struct netlist_net masked = *net;
    size_t whole = (size_t)net->prefix / 8;
    int rest = net->prefix % 8;
    if (rest)
        masked.addr[whole++] &= (unsigned char)(0xff << (8 - rest));
    memset(masked.addr + whole, 0, sizeof(masked.addr) - whole);
    if (memcmp(masked.addr, net->addr, sizeof(net->addr)) != 0) {
        char txt[INET6_ADDRSTRLEN];
        inet_ntop(net->family, masked.addr, txt, sizeof(txt));
        netlist_err(err, errlen, "bad network '%s': host bits set beyond /%d (did you mean %s/%d?)",
                    show, net->prefix, txt, net->prefix);
        return -1;
    }
    return 0;
}

static int netlist_is_sep(char c)
{
    return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r';
}

int netlist_parse(const char *list, struct netlist_net **out, size_t *n, char *err, size_t errlen)
{
    struct netlist_net *nets = NULL;
    size_t count = 0, cap = 0;
    *out = NULL;
    *n = 0;
    if (!list)
        return 0;
    const char *p = list;
    for (;;) {
        while (netlist_is_sep(*p))
            p++;
        if (!*p)
            break;
        const char *tok = p;
        while (*p && !netlist_is_sep(*p))
            p++;
        size_t len = (size_t)(p - tok);
        if (count == NETLIST_MAX) {
            char show[NETLIST_SHOW_BUF];
            netlist_show(tok, len, show);
            netlist_err(err, errlen, "too many networks (at most %d): '%s' is one too many",
                        NETLIST_MAX, show);
            goto fail;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : NETLIST_INITIAL;
            if (ncap > NETLIST_MAX)
                ncap = NETLIST_MAX;
            struct netlist_net *grown = realloc(nets, ncap * sizeof(*nets));
            if (!grown) {
                netlist_err(err, errlen, "out of memory");
                goto fail;
            }
            nets = grown;
            cap = ncap;
        }
        if (netlist_parse_one(tok, len, &nets[count], err, errlen) != 0)
            goto fail;
        count++;
    }
    *out = nets;
    *n = count;
    return 0;
fail:
    free(nets);
    return -1;
}
