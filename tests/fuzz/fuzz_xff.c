/* libFuzzer target for the client behind trusted proxies (src/http/xff).
 *
 * The input, as a C string, is an X-Forwarded-For list from a trusted
 * peer. Whatever it holds, the answer must be one of the three results; a
 * client must be a well-formed IPv4 or IPv6 address (never an IPv4-mapped
 * one, which counts as its IPv4 address), and not a trusted proxy unless
 * every entry was one. The same list from an untrusted peer is ignored. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/ssrf.h"
#include "http/xff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct netlist_net *nets;
    static size_t n;
    if (!nets && netlist_parse("127.0.0.0/8 10.0.0.0/8 ::1/128", &nets, &n, NULL, 0) != 0)
        abort();
    char *xff = malloc(size + 1);
    if (!xff)
        return 0;
    memcpy(xff, data, size);
    xff[size] = '\0';
    struct sockaddr_in peer = {.sin_family = AF_INET};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_storage out;
    socklen_t len = 0;
    enum http_xff rc =
        http_xff_client((struct sockaddr *)&peer, sizeof(peer), xff, nets, n, &out, &len);
    if (rc == HTTP_XFF_CLIENT) {
        if (out.ss_family == AF_INET) {
            if (len != sizeof(struct sockaddr_in))
                abort();
        } else if (out.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&out;
            if (len != sizeof(*in6) || IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
                abort();
        } else {
            abort();
        }
        /* a trusted client only when nothing but trusted entries came */
        if (netlist_has((struct sockaddr *)&out, len, nets, n)) {
            char again[64];
            struct sockaddr_storage other;
            socklen_t olen = 0;
            /* appending an untrusted address must make that one the client */
            size_t l = strlen(xff);
            char *more = malloc(l + sizeof(again));
            if (more) {
                memcpy(more, xff, l);
                strcpy(more + l, ",198.51.100.1");
                if (http_xff_client((struct sockaddr *)&peer, sizeof(peer), more, nets, n, &other,
                                    &olen) != HTTP_XFF_CLIENT ||
                    other.ss_family != AF_INET ||
                    ((struct sockaddr_in *)&other)->sin_addr.s_addr != htonl(0xc6336401))
                    abort();
                free(more);
            }
        }
    } else if (rc != HTTP_XFF_PEER && rc != HTTP_XFF_MALFORMED) {
        abort();
    }
    struct sockaddr_in stranger = {.sin_family = AF_INET};
    stranger.sin_addr.s_addr = htonl(0xc0000207); /* 192.0.2.7 */
    if (http_xff_client((struct sockaddr *)&stranger, sizeof(stranger), xff, nets, n, &out, &len) !=
        HTTP_XFF_PEER)
        abort();
    free(xff);
    return 0;
}
