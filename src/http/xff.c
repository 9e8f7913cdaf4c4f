#include "http/xff.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "bus/ssrf.h"

/* An IPv4-mapped IPv6 address as the IPv4 address it carries, so that a
 * dual-stack listener and an IPv4 proxy list agree. */
static socklen_t unmap(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out)
{
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            struct sockaddr_in in = {.sin_family = AF_INET};
            memcpy(&in.sin_addr, in6->sin6_addr.s6_addr + 12, 4);
            memset(out, 0, sizeof(*out));
            memcpy(out, &in, sizeof(in));
            return sizeof(in);
        }
    }
    if (len > (socklen_t)sizeof(*out))
        return 0;
    memset(out, 0, sizeof(*out));
    memcpy(out, sa, len);
    return len;
}

static int all_digits(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* One entry, already trimmed, into an address: "1.2.3.4", "1.2.3.4:80",
 * "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:80". 0 or -1. */
static int parse_entry(char *s, struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    char *colon = strchr(s, ':');
    int v6 = colon != NULL;
    if (s[0] == '[') {
        char *close = strchr(s, ']');
        if (!close || (close[1] && (close[1] != ':' || !all_digits(close + 2))))
            return -1;
        *close = '\0';
        if (inet_pton(AF_INET6, s + 1, &in6.sin6_addr) != 1)
            return -1;
    } else if (colon && !strchr(colon + 1, ':')) { /* IPv4:port */
        *colon = '\0';
        v6 = 0;
        if (!all_digits(colon + 1) || inet_pton(AF_INET, s, &in.sin_addr) != 1)
            return -1;
    } else if (colon) {
        if (inet_pton(AF_INET6, s, &in6.sin6_addr) != 1)
            return -1;
    } else if (inet_pton(AF_INET, s, &in.sin_addr) != 1) {
        return -1;
    }
    if (v6)
        *len = unmap((const struct sockaddr *)&in6, sizeof(in6), out);
    else
        *len = unmap((const struct sockaddr *)&in, sizeof(in), out);
    return 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

enum http_xff http_xff_client(const struct sockaddr *peer, socklen_t peer_len, const char *xff,
                              const struct netlist_net *trusted, size_t ntrusted,
                              struct sockaddr_storage *out, socklen_t *out_len)
{
    struct sockaddr_storage a;
    socklen_t alen = peer && peer_len ? unmap(peer, peer_len, &a) : 0;
    if (!xff || !alen || !netlist_has((const struct sockaddr *)&a, alen, trusted, ntrusted))
        return HTTP_XFF_PEER;
    size_t end = strlen(xff), hops = 0;
    int found = 0; /* an entry was read: a, alen hold the left-most trusted one so far */
    for (;;) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t b = start, e = end;
        while (b < e && is_ows(xff[b]))
            b++;
        while (e > b && is_ows(xff[e - 1]))
            e--;
        if (e > b) {
            char entry[HTTP_XFF_ENTRY_MAX + 1];
            if (e - b > HTTP_XFF_ENTRY_MAX || ++hops > HTTP_XFF_MAX_HOPS)
                return HTTP_XFF_MALFORMED;
            memcpy(entry, xff + b, e - b);
            entry[e - b] = '\0';
            if (parse_entry(entry, &a, &alen) != 0)
                return HTTP_XFF_MALFORMED;
            found = 1;
            if (!netlist_has((const struct sockaddr *)&a, alen, trusted, ntrusted))
                break;
        }
        if (start == 0)
            break;
        end = start - 1;
    }
    if (!found)
        return HTTP_XFF_PEER; /* an empty header says nothing */
    *out = a;
    *out_len = alen;
    return HTTP_XFF_CLIENT;
}
