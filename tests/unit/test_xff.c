/* Unit tests for src/http/xff (the client behind trusted proxies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/ssrf.h"
#include "http/xff.h"

/* The client that `xff` names for a request from `peer` with the proxies
 * `nets`, as text in out ("peer" when it is the peer, "malformed"). */
static void pick(const char *nets, const char *peer, const char *xff, char *out, size_t len)
{
    struct netlist_net *tn = NULL;
    size_t n = 0;
    assert_int_equal(netlist_parse(nets, &tn, &n, NULL, 0), 0);
    struct sockaddr_storage ps;
    socklen_t plen;
    memset(&ps, 0, sizeof(ps));
    if (strchr(peer, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ps;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, peer, &in6->sin6_addr), 1);
        plen = sizeof(*in6);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ps;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, peer, &in->sin_addr), 1);
        plen = sizeof(*in);
    }
    struct sockaddr_storage cs;
    socklen_t clen = 0;
    enum http_xff rc = http_xff_client((struct sockaddr *)&ps, plen, xff, tn, n, &cs, &clen);
    free(tn);
    if (rc == HTTP_XFF_PEER) {
        snprintf(out, len, "peer");
    } else if (rc == HTTP_XFF_MALFORMED) {
        snprintf(out, len, "malformed");
    } else if (cs.ss_family == AF_INET) {
        assert_int_equal(clen, sizeof(struct sockaddr_in));
        inet_ntop(AF_INET, &((struct sockaddr_in *)&cs)->sin_addr, out, (socklen_t)len);
    } else {
        assert_int_equal(cs.ss_family, AF_INET6);
        assert_int_equal(clen, sizeof(struct sockaddr_in6));
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&cs)->sin6_addr, out, (socklen_t)len);
    }
}

#define assert_client(nets, peer, xff, want)                                                       \
    do {                                                                                           \
        char got_[INET6_ADDRSTRLEN + 16];                                                          \
        pick(nets, peer, xff, got_, sizeof(got_));                                                 \
        assert_string_equal(got_, want);                                                           \
    } while (0)

static void an_untrusted_peer_is_the_client_whatever_it_forwards(void **state)
{
    (void)state;
    assert_client("10.0.0.0/8", "192.0.2.7", "198.51.100.1", "peer");
    assert_client("10.0.0.0/8", "192.0.2.7", "10.0.0.1, 127.0.0.1", "peer");
    assert_client("", "127.0.0.1", "198.51.100.1", "peer");
    assert_client("10.0.0.0/8", "192.0.2.7", "garbage", "peer");
}

static void a_trusted_peer_without_a_header_is_the_client(void **state)
{
    (void)state;
    assert_client("127.0.0.0/8", "127.0.0.1", NULL, "peer");
    assert_client("127.0.0.0/8", "127.0.0.1", "", "peer");
    assert_client("127.0.0.0/8", "127.0.0.1", " , ,", "peer");
}

static void the_right_most_untrusted_entry_is_the_client_never_the_left_most(void **state)
{
    (void)state;
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.1", "198.51.100.1");
    /* the client forged the first entries; the proxy appended what it saw */
    assert_client("127.0.0.0/8", "127.0.0.1", "1.1.1.1, 2.2.2.2, 198.51.100.1", "198.51.100.1");
    assert_client("127.0.0.0/8", "127.0.0.1", "127.0.0.9, 198.51.100.1", "198.51.100.1");
    /* a chain of trusted proxies is skipped */
    assert_client("127.0.0.0/8 10.0.0.0/8", "127.0.0.1", "6.6.6.6, 198.51.100.1,10.1.1.1, 10.2.2.2",
                  "198.51.100.1");
    /* every entry trusted: the left-most one */
    assert_client("127.0.0.0/8 10.0.0.0/8", "127.0.0.1", "10.9.9.9, 10.1.1.1", "10.9.9.9");
}

static void header_lines_and_empty_entries_are_read_as_one_list(void **state)
{
    (void)state;
    /* two header lines joined by the server: the later one wins */
    assert_client("127.0.0.0/8", "127.0.0.1", "6.6.6.6,198.51.100.2", "198.51.100.2");
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.3 ,, \t", "198.51.100.3");
    assert_client("127.0.0.0/8", "127.0.0.1", "\t198.51.100.4\t", "198.51.100.4");
}

static void ports_brackets_ipv6_and_mapped_addresses(void **state)
{
    (void)state;
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.5:4711", "198.51.100.5");
    assert_client("127.0.0.0/8", "127.0.0.1", "2001:db8::5", "2001:db8::5");
    assert_client("127.0.0.0/8", "127.0.0.1", "[2001:db8::6]", "2001:db8::6");
    assert_client("127.0.0.0/8", "127.0.0.1", "[2001:db8::7]:443", "2001:db8::7");
    assert_client("127.0.0.0/8", "127.0.0.1", "::ffff:198.51.100.8", "198.51.100.8");
    /* a mapped entry of a trusted proxy is skipped like its IPv4 form */
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.9, ::ffff:127.0.0.2", "198.51.100.9");
    /* a dual-stack listener sees an IPv4 proxy as a mapped address */
    assert_client("127.0.0.0/8", "::ffff:127.0.0.1", "198.51.100.10", "198.51.100.10");
    assert_client("::1/128", "::1", "2001:db8::11", "2001:db8::11");
}

static void what_cannot_be_read_falls_back_to_the_peer(void **state)
{
    (void)state;
    assert_client("127.0.0.0/8", "127.0.0.1", "unknown", "malformed");
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.1, nonsense", "malformed");
    assert_client("127.0.0.0/8", "127.0.0.1", "127.1", "malformed"); /* no legacy forms */
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.1:http", "malformed");
    assert_client("127.0.0.0/8", "127.0.0.1", "[2001:db8::1", "malformed");
    assert_client("127.0.0.0/8", "127.0.0.1", "[2001:db8::1]x", "malformed");
    assert_client("127.0.0.0/8", "127.0.0.1", "fe80::1%eth0", "malformed");
    assert_client("127.0.0.0/8", "127.0.0.1", "198.51.100.1\r", "malformed");
    /* garbage left of the client is never read */
    assert_client("127.0.0.0/8", "127.0.0.1", "nonsense, 198.51.100.1", "198.51.100.1");
    /* an over-long entry and too many hops */
    char big[256];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_client("127.0.0.0/8", "127.0.0.1", big, "malformed");
    char many[HTTP_XFF_MAX_HOPS * 12 + 32] = "198.51.100.1";
    for (int i = 0; i < HTTP_XFF_MAX_HOPS; i++)
        strcat(many, ",127.0.0.1");
    assert_client("127.0.0.0/8", "127.0.0.1", many, "malformed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_untrusted_peer_is_the_client_whatever_it_forwards),
        cmocka_unit_test(a_trusted_peer_without_a_header_is_the_client),
        cmocka_unit_test(the_right_most_untrusted_entry_is_the_client_never_the_left_most),
        cmocka_unit_test(header_lines_and_empty_entries_are_read_as_one_list),
        cmocka_unit_test(ports_brackets_ipv6_and_mapped_addresses),
        cmocka_unit_test(what_cannot_be_read_falls_back_to_the_peer),
    };
    return cmocka_run_group_tests_name("http_xff", tests, NULL, NULL);
}
