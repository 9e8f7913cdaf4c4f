#include "bus/ssrf.h"

#include "core/netlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSRF_V4_BITS  32
#define SSRF_V6_BITS  128
#define SSRF_TEXT_MAX 64 /* a numeric address plus an IPv6 zone */

struct ssrf_rule {
    struct netlist_net net;
    enum ssrf_verdict verdict;
};

#define V4(a, b, c, d, p, v)                                                                       \
    {                                                                                              \
        {AF_INET, {a, b, c, d}, p}, v                                                              \
    }
#define V6(b0, b1, b2, b3, p, v)                                                                   \
    {                                                                                              \
        {AF_INET6, {b0, b1, b2, b3}, p}, v                                                         \
    }

/* IPv4 ranges a webhook must not reach: RFC 6890 special-purpose space
 * that is either internal or never routed on the Internet. */
static const struct ssrf_rule SSRF_V4_RULES[] = {
    V4(0, 0, 0, 0, 8, SSRF_UNSPECIFIED),     /* "this network" */
    V4(127, 0, 0, 0, 8, SSRF_LOOPBACK),      /* RFC 1122 */
    V4(10, 0, 0, 0, 8, SSRF_PRIVATE),        /* RFC 1918 */
    V4(172, 16, 0, 0, 12, SSRF_PRIVATE),     /* RFC 1918 */
    V4(192, 168, 0, 0, 16, SSRF_PRIVATE),    /* RFC 1918 */
    V4(169, 254, 0, 0, 16, SSRF_LINK_LOCAL), /* cloud metadata lives here */
    V4(100, 64, 0, 0, 10, SSRF_CGNAT),       /* RFC 6598 */
    V4(224, 0, 0, 0, 4, SSRF_MULTICAST),     /* RFC 5771 */
    V4(240, 0, 0, 0, 4, SSRF_RESERVED),      /* incl. 255.255.255.255 */
    V4(192, 0, 0, 0, 24, SSRF_RESERVED),     /* IETF protocol assignments */
    V4(192, 0, 2, 0, 24, SSRF_RESERVED),     /* TEST-NET-1 */
    V4(198, 18, 0, 0, 15, SSRF_RESERVED),    /* benchmarking */
    V4(198, 51, 100, 0, 24, SSRF_RESERVED),  /* TEST-NET-2 */
    V4(203, 0, 113, 0, 24, SSRF_RESERVED),   /* TEST-NET-3 */
};

/* IPv6 ranges refused whatever they contain. :: and ::1 come before the
 * v4-compatible ::/96 they sit in. */
static const struct ssrf_rule SSRF_V6_RULES[] = {
    V6(0, 0, 0, 0, 128, SSRF_UNSPECIFIED),
    {{AF_INET6, {[15] = 1}, 128}, SSRF_LOOPBACK},
    V6(0xfe, 0x80, 0, 0, 10, SSRF_LINK_LOCAL),
    V6(0xfe, 0xc0, 0, 0, 10, SSRF_PRIVATE), /* site-local, deprecated (RFC 3879) */
    {{AF_INET6, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48},
     SSRF_PRIVATE}, /* local NAT64, RFC 8215 */
    V6(0xfc, 0, 0, 0, 7, SSRF_UNIQUE_LOCAL),
    V6(0xff, 0, 0, 0, 8, SSRF_MULTICAST),
    {{AF_INET6, {[10] = 0xff, [11] = 0xff}, 96}, SSRF_V4_MAPPED},
    V6(0x20, 0x01, 0x0d, 0xb8, 32, SSRF_RESERVED),
    V6(0x01, 0x00, 0, 0, 64, SSRF_RESERVED),
};

/* IPv6 ranges that carry an IPv4 address (at byte offset `at`) a router or
 * the kernel may end up reaching: judged by that IPv4 address, and by
 * `if_public` when that one is public. v4-compatible addresses are
 * deprecated (RFC 4291): nothing legitimate uses one, whatever it carries. */
static const struct {
    struct netlist_net net;
    int at;
    enum ssrf_verdict if_public;
} SSRF_V6_EMBEDS[] = {
    {{AF_INET6, {0}, 96}, 12, SSRF_RESERVED},                /* v4-compatible */
    {{AF_INET6, {0x00, 0x64, 0xff, 0x9b}, 96}, 12, SSRF_OK}, /* NAT64, RFC 6052 */
    {{AF_INET6, {0x20, 0x02}, 16}, 2, SSRF_OK},              /* 6to4, RFC 3056 */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static enum ssrf_verdict ssrf_class_v4(const unsigned char *a)
{
    for (size_t i = 0; i < COUNT(SSRF_V4_RULES); i++)
        if (netlist_net_has(&SSRF_V4_RULES[i].net, AF_INET, a))
            return SSRF_V4_RULES[i].verdict;
    return SSRF_OK;
}

static enum ssrf_verdict ssrf_class_v6(const unsigned char *a)
{
    for (size_t i = 0; i < COUNT(SSRF_V6_RULES); i++)
        if (netlist_net_has(&SSRF_V6_RULES[i].net, AF_INET6, a))
            return SSRF_V6_RULES[i].verdict;
    for (size_t i = 0; i < COUNT(SSRF_V6_EMBEDS); i++) {
        if (!netlist_net_has(&SSRF_V6_EMBEDS[i].net, AF_INET6, a))
            continue;
        enum ssrf_verdict v = ssrf_class_v4(a + SSRF_V6_EMBEDS[i].at);
        return v == SSRF_OK ? SSRF_V6_EMBEDS[i].if_public : v;
    }
    return SSRF_OK;
}

/* The verdict for raw address bytes: the class first, then the allow nets
 * for anything refused (so a public address in an allow net stays OK). */
static enum ssrf_verdict ssrf_judge(int family, const unsigned char *a,
                                    const struct netlist_net *allow, size_t nallow)
{
    enum ssrf_verdict v = family == AF_INET ? ssrf_class_v4(a) : ssrf_class_v6(a);
    if (v == SSRF_OK)
        return SSRF_OK;
    if (netlist_has_bytes(allow, nallow, family, a))
        return SSRF_ALLOWED;
    if (v == SSRF_V4_MAPPED && netlist_has_bytes(allow, nallow, AF_INET, a + 12))
        return SSRF_ALLOWED;
    return v;
}

enum ssrf_verdict ssrf_check(const struct sockaddr *sa, socklen_t len,
                             const struct netlist_net *allow, size_t nallow)
{
    int family;
    unsigned char a[16];
    if (netlist_sa_bytes(sa, len, &family, a) != 0)
        return SSRF_BAD_FAMILY;
    return ssrf_judge(family, a, allow, nallow);
}

/* One part of a legacy IPv4 address: 0x hex, 0 octal or decimal, as
 * inet_aton and URL parsers read it. -1 when malformed or above 2^32-1. */
static int ssrf_legacy_part(const char *s, size_t len, uint32_t *out)
{
    unsigned base = 10;
    if (len > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        len -= 2;
    } else if (len > 1 && s[0] == '0') {
        base = 8;
        s++;
        len--;
    }
    if (!len)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        char c = s[i];
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a') + 10;
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A') + 10;
        else
            return -1;
        if (d >= base)
            return -1;
        v = v * base + d;
        if (v > UINT32_MAX)
            return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The shortened IPv4 forms ("127.1", "10.0.1", "2130706433", "0x7f.1"):
 * not what inet_pton reads, but what curl, browsers and getaddrinfo
 * connect to. The last part fills the bytes the others leave. */
static int ssrf_parse_legacy_v4(const char *s, unsigned char *a)
{
    uint32_t part[4];
    size_t nparts = 0;
    const char *p = s;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (nparts == 4 || ssrf_legacy_part(p, len, &part[nparts]) != 0)
            return -1;
        nparts++;
        if (!dot)
            break;
        p = dot + 1;
    }
    uint32_t v = 0;
    for (size_t i = 0; i + 1 < nparts; i++) {
        if (part[i] > 0xff)
            return -1;
        v |= part[i] << (8 * (3 - i));
    }
    uint32_t last = part[nparts - 1];
    if (nparts > 1 && last >> (8 * (5 - nparts)) != 0)
        return -1;
    v |= last;
    a[0] = (unsigned char)(v >> 24);
    a[1] = (unsigned char)(v >> 16);
    a[2] = (unsigned char)(v >> 8);
    a[3] = (unsigned char)v;
    return 0;
}

/* An IPv6 zone ("eth0", "2"): interface-name characters only. */
static int ssrf_zone_ok(const char *z)
{
    if (!*z)
        return 0;
    for (; *z; z++)
        if (!((*z >= 'a' && *z <= 'z') || (*z >= 'A' && *z <= 'Z') || (*z >= '0' && *z <= '9') ||
              *z == '-' || *z == '_' || *z == '.'))
            return 0;
    return 1;
}

enum ssrf_verdict ssrf_check_text(const char *ip, const struct netlist_net *allow, size_t nallow)
{
    char buf[SSRF_TEXT_MAX + 1];
    unsigned char a[16];
    if (!ip)
        return SSRF_BAD_FAMILY;
    size_t len = strnlen(ip, sizeof(buf));
    if (len == 0 || len >= sizeof(buf))
        return SSRF_BAD_FAMILY;
    memcpy(buf, ip, len + 1);
    if (strchr(buf, ':')) {
        char *zone = strchr(buf, '%');
        if (zone) {
            if (!ssrf_zone_ok(zone + 1))
                return SSRF_BAD_FAMILY;
            *zone = '\0';
        }
        if (inet_pton(AF_INET6, buf, a) != 1)
            return SSRF_BAD_FAMILY;
        return ssrf_judge(AF_INET6, a, allow, nallow);
    }
    if (inet_pton(AF_INET, buf, a) != 1 && ssrf_parse_legacy_v4(buf, a) != 0)
        return SSRF_BAD_FAMILY;
    return ssrf_judge(AF_INET, a, allow, nallow);
}

const char *ssrf_reason(enum ssrf_verdict v)
{
    switch (v) {
    case SSRF_OK:
        return "public address";
    case SSRF_ALLOWED:
        return "listed in the allowed networks";
    case SSRF_UNSPECIFIED:
        return "unspecified address";
    case SSRF_LOOPBACK:
        return "loopback address";
    case SSRF_PRIVATE:
        return "private address (RFC 1918)";
    case SSRF_LINK_LOCAL:
        return "link-local address (incl. cloud metadata)";
    case SSRF_CGNAT:
        return "shared address space (CGNAT, RFC 6598)";
    case SSRF_UNIQUE_LOCAL:
        return "unique local address (RFC 4193)";
    case SSRF_V4_MAPPED:
        return "IPv4-mapped IPv6 address";
    case SSRF_MULTICAST:
        return "multicast address";
    case SSRF_RESERVED:
        return "reserved or documentation address";
    case SSRF_BAD_FAMILY:
        return "not an IP address";
    }
    return "unknown verdict";
}
