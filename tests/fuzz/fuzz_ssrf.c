/* libFuzzer target for the webhook SSRF guard (src/bus/ssrf).
 *
 * The input, as a C string, is parsed as an allow list and judged as a
 * textual address. A parsed list must hold what ssrf.h promises (bounded,
 * masked, each net containing its own address); a refusal must come with a
 * message. The text verdict must agree with the sockaddr path, and with
 * glibc's inet_aton for the IPv4 forms, so a spelling of 127.0.0.1 that
 * curl would connect to cannot come out as SSRF_OK. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/ssrf.h"

static enum ssrf_verdict check_bytes(int family, const void *a, const struct netlist_net *allow,
                                     size_t nallow)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        return ssrf_check((struct sockaddr *)&ss, sizeof(*sin), allow, nallow);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, a, 16);
    return ssrf_check((struct sockaddr *)&ss, sizeof(*sin6), allow, nallow);
}

static void check_nets(const struct netlist_net *nets, size_t n)
{
    if (n > NETLIST_MAX || (n == 0) != (nets == NULL))
        abort();
    for (size_t i = 0; i < n; i++) {
        const struct netlist_net *t = &nets[i];
        int bits = t->family == AF_INET ? 32 : t->family == AF_INET6 ? 128 : -1;
        if (bits < 0 || t->prefix < 0 || t->prefix > bits)
            abort();
        for (int b = t->prefix; b < 128; b++)
            if (t->addr[b / 8] & (0x80 >> (b % 8)))
                abort();
        /* a net contains its own address, and that address is OK or allowed */
        enum ssrf_verdict v = check_bytes(t->family, t->addr, nets, n);
        if (v != SSRF_OK && v != SSRF_ALLOWED)
            abort();
    }
}

static int is_ipv4_text(const char *s)
{
    return !strchr(s, ':') && !strchr(s, '%');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    struct netlist_net *nets = NULL;
    size_t n = 0;
    char err[128] = "";
    if (netlist_parse(s, &nets, &n, err, sizeof(err)) == 0) {
        check_nets(nets, n);
    } else if (nets || n || !err[0]) {
        abort();
    }

    enum ssrf_verdict bare = ssrf_check_text(s, NULL, 0);
    enum ssrf_verdict with = ssrf_check_text(s, nets, n);
    if (bare == SSRF_ALLOWED || bare > SSRF_BAD_FAMILY || with > SSRF_BAD_FAMILY)
        abort();
    /* allow nets only ever turn a refusal into SSRF_ALLOWED */
    if (with != bare && (with != SSRF_ALLOWED || bare == SSRF_OK || bare == SSRF_BAD_FAMILY))
        abort();
    if (!ssrf_reason(bare) || !ssrf_reason(with))
        abort();

    /* strict forms: the text path and the sockaddr path agree */
    unsigned char a[16];
    if (inet_pton(AF_INET, s, a) == 1 && check_bytes(AF_INET, a, nets, n) != with)
        abort();
    if (inet_pton(AF_INET6, s, a) == 1 && check_bytes(AF_INET6, a, nets, n) != with)
        abort();

    /* legacy IPv4 forms: whatever we read, inet_aton reads the same way
     * (it also takes trailing blanks and text, which we refuse) */
    struct in_addr in;
    if (is_ipv4_text(s) && bare != SSRF_BAD_FAMILY) {
        if (!inet_aton(s, &in) || check_bytes(AF_INET, &in, NULL, 0) != bare)
            abort();
    }
    if (is_ipv4_text(s) && size < 64 && strcspn(s, " \t\n\v\f\r") == size && inet_aton(s, &in) &&
        bare == SSRF_BAD_FAMILY)
        abort();

    free(nets);
    free(s);
    return 0;
}
