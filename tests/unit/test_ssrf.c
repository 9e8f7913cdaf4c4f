/* Unit tests for src/bus/ssrf (the webhook SSRF guard). */
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
#include <sys/un.h>

#include "bus/ssrf.h"

/* The verdict for a strict numeric address, through both entry points:
 * the text one and a real sockaddr_in/sockaddr_in6 (which must agree). */
static enum ssrf_verdict judge(const char *ip, const struct netlist_net *allow, size_t nallow)
{
    enum ssrf_verdict t = ssrf_check_text(ip, allow, nallow);
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(443);
        assert_int_equal(ssrf_check((struct sockaddr *)&sin, sizeof(sin), allow, nallow), t);
    } else if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(443);
        assert_int_equal(ssrf_check((struct sockaddr *)&sin6, sizeof(sin6), allow, nallow), t);
    } else {
        fail_msg("test address '%s' is not strict numeric", ip);
    }
    return t;
}

static enum ssrf_verdict check(const char *ip)
{
    return judge(ip, NULL, 0);
}

static struct netlist_net *nets(const char *list, size_t *n)
{
    struct netlist_net *out = NULL;
    char err[256] = "";
    if (netlist_parse(list, &out, n, err, sizeof(err)) != 0)
        fail_msg("'%s' did not parse: %s", list, err);
    return out;
}

/* Stands in for "not written yet" in *out. */
static struct netlist_net sentinel;

/* -1 from netlist_parse, with err containing `want`. */
static void refused(const char *list, const char *want)
{
    struct netlist_net *out = &sentinel;
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(netlist_parse(list, &out, &n, err, sizeof(err)), -1);
    assert_null(out);
    assert_int_equal(n, 0);
    if (!strstr(err, want))
        fail_msg("error for '%s' is '%s', expected it to contain '%s'", list, err, want);
}

static void rfc1918_private_ranges_and_their_edges(void **state)
{
    (void)state;
    assert_int_equal(check("9.255.255.255"), SSRF_OK);
    assert_int_equal(check("10.0.0.0"), SSRF_PRIVATE);
    assert_int_equal(check("10.255.255.255"), SSRF_PRIVATE);
    assert_int_equal(check("11.0.0.0"), SSRF_OK);
    assert_int_equal(check("172.15.255.255"), SSRF_OK);
    assert_int_equal(check("172.16.0.0"), SSRF_PRIVATE);
    assert_int_equal(check("172.31.255.255"), SSRF_PRIVATE);
    assert_int_equal(check("172.32.0.0"), SSRF_OK);
    assert_int_equal(check("192.167.255.255"), SSRF_OK);
    assert_int_equal(check("192.168.0.0"), SSRF_PRIVATE);
    assert_int_equal(check("192.168.255.255"), SSRF_PRIVATE);
    assert_int_equal(check("192.169.0.0"), SSRF_OK);
}

static void loopback_unspecified_link_local_and_cgnat_edges(void **state)
{
    (void)state;
    assert_int_equal(check("0.0.0.0"), SSRF_UNSPECIFIED);
    assert_int_equal(check("0.255.255.255"), SSRF_UNSPECIFIED);
    assert_int_equal(check("1.0.0.0"), SSRF_OK);
    assert_int_equal(check("126.255.255.255"), SSRF_OK);
    assert_int_equal(check("127.0.0.0"), SSRF_LOOPBACK);
    assert_int_equal(check("127.0.0.1"), SSRF_LOOPBACK);
    assert_int_equal(check("127.255.255.255"), SSRF_LOOPBACK);
    assert_int_equal(check("128.0.0.0"), SSRF_OK);
    assert_int_equal(check("169.253.255.255"), SSRF_OK);
    assert_int_equal(check("169.254.0.0"), SSRF_LINK_LOCAL);
    assert_int_equal(check("169.254.169.254"), SSRF_LINK_LOCAL); /* cloud metadata */
    assert_int_equal(check("169.254.255.255"), SSRF_LINK_LOCAL);
    assert_int_equal(check("169.255.0.0"), SSRF_OK);
    assert_int_equal(check("100.63.255.255"), SSRF_OK);
    assert_int_equal(check("100.64.0.0"), SSRF_CGNAT);
    assert_int_equal(check("100.127.255.255"), SSRF_CGNAT);
    assert_int_equal(check("100.128.0.0"), SSRF_OK);
}

static void multicast_reserved_and_documentation_edges(void **state)
{
    (void)state;
    assert_int_equal(check("223.255.255.255"), SSRF_OK);
    assert_int_equal(check("224.0.0.0"), SSRF_MULTICAST);
    assert_int_equal(check("239.255.255.255"), SSRF_MULTICAST);
    assert_int_equal(check("240.0.0.0"), SSRF_RESERVED);
    assert_int_equal(check("255.255.255.255"), SSRF_RESERVED);
    assert_int_equal(check("191.255.255.255"), SSRF_OK);
    assert_int_equal(check("192.0.0.0"), SSRF_RESERVED);
    assert_int_equal(check("192.0.0.255"), SSRF_RESERVED);
    assert_int_equal(check("192.0.1.0"), SSRF_OK);
    assert_int_equal(check("192.0.2.0"), SSRF_RESERVED);
    assert_int_equal(check("192.0.2.255"), SSRF_RESERVED);
    assert_int_equal(check("192.0.3.0"), SSRF_OK);
    assert_int_equal(check("198.17.255.255"), SSRF_OK);
    assert_int_equal(check("198.18.0.0"), SSRF_RESERVED);
    assert_int_equal(check("198.19.255.255"), SSRF_RESERVED);
    assert_int_equal(check("198.20.0.0"), SSRF_OK);
    assert_int_equal(check("198.51.99.255"), SSRF_OK);
    assert_int_equal(check("198.51.100.0"), SSRF_RESERVED);
    assert_int_equal(check("198.51.100.255"), SSRF_RESERVED);
    assert_int_equal(check("198.51.101.0"), SSRF_OK);
    assert_int_equal(check("203.0.112.255"), SSRF_OK);
    assert_int_equal(check("203.0.113.0"), SSRF_RESERVED);
    assert_int_equal(check("203.0.113.255"), SSRF_RESERVED);
    assert_int_equal(check("203.0.114.0"), SSRF_OK);
}

static void public_addresses_are_ok(void **state)
{
    (void)state;
    assert_int_equal(check("8.8.8.8"), SSRF_OK);
    assert_int_equal(check("1.1.1.1"), SSRF_OK);
    assert_int_equal(check("93.184.216.34"), SSRF_OK);
    assert_int_equal(check("2606:4700::1111"), SSRF_OK);
    assert_int_equal(check("2a00:1450:4001:80b::200e"), SSRF_OK);
    assert_int_equal(check("2001:4860:4860::8888"), SSRF_OK);
}

static void ipv6_special_ranges_and_their_edges(void **state)
{
    (void)state;
    assert_int_equal(check("::"), SSRF_UNSPECIFIED);
    assert_int_equal(check("::1"), SSRF_LOOPBACK);
    assert_int_equal(check("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_OK);
    assert_int_equal(check("fe80::"), SSRF_LINK_LOCAL);
    assert_int_equal(check("fe80::1"), SSRF_LINK_LOCAL);
    assert_int_equal(check("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_LINK_LOCAL);
    assert_int_equal(check("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_OK);
    assert_int_equal(check("fc00::"), SSRF_UNIQUE_LOCAL);
    assert_int_equal(check("fd12:3456:789a::1"), SSRF_UNIQUE_LOCAL);
    assert_int_equal(check("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_UNIQUE_LOCAL);
    assert_int_equal(check("fe00::"), SSRF_OK);
    assert_int_equal(check("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_LINK_LOCAL);
    assert_int_equal(check("fec0::"), SSRF_PRIVATE); /* site-local, deprecated */
    assert_int_equal(check("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_PRIVATE);
    assert_int_equal(check("64:ff9b:1::1"), SSRF_PRIVATE); /* local-use NAT64 */
    assert_int_equal(check("64:ff9b:1:ffff:ffff:ffff:ffff:ffff"), SSRF_PRIVATE);
    assert_int_equal(check("64:ff9b:2::1"), SSRF_OK);
    assert_int_equal(check("ff00::"), SSRF_MULTICAST);
    assert_int_equal(check("ff02::1"), SSRF_MULTICAST);
    assert_int_equal(check("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_MULTICAST);
    assert_int_equal(check("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_OK);
    assert_int_equal(check("2001:db8::"), SSRF_RESERVED);
    assert_int_equal(check("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_RESERVED);
    assert_int_equal(check("2001:db9::"), SSRF_OK);
    assert_int_equal(check("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SSRF_OK);
    assert_int_equal(check("100::"), SSRF_RESERVED);
    assert_int_equal(check("100::ffff:ffff:ffff:ffff"), SSRF_RESERVED);
    assert_int_equal(check("100:0:0:1::"), SSRF_OK);
}

static void v4_mapped_is_refused_unless_allowed(void **state)
{
    (void)state;
    size_t n;
    struct netlist_net *lo = nets("127.0.0.0/8", &n);
    assert_int_equal(check("::ffff:127.0.0.1"), SSRF_V4_MAPPED);
    assert_int_equal(check("::ffff:10.0.0.1"), SSRF_V4_MAPPED);
    /* even a public one: a dual-stack socket reaches it over IPv4 anyway */
    assert_int_equal(check("::ffff:8.8.8.8"), SSRF_V4_MAPPED);
    assert_int_equal(check("::ffff:0:0"), SSRF_V4_MAPPED);
    assert_int_equal(check("::ffff:255.255.255.255"), SSRF_V4_MAPPED);
    /* the embedded IPv4 address is looked up in the allow nets */
    assert_int_equal(judge("::ffff:127.0.0.1", lo, n), SSRF_ALLOWED);
    assert_int_equal(judge("::ffff:10.0.0.1", lo, n), SSRF_V4_MAPPED);
    free(lo);
    /* and so is the IPv6 address itself */
    struct netlist_net *m = nets("::ffff:10.0.0.0/104", &n);
    assert_int_equal(judge("::ffff:10.1.2.3", m, n), SSRF_ALLOWED);
    assert_int_equal(judge("::ffff:11.1.2.3", m, n), SSRF_V4_MAPPED);
    assert_int_equal(judge("10.1.2.3", m, n), SSRF_PRIVATE); /* families differ */
    free(m);
}

static void embedded_ipv4_is_judged_by_its_own_class(void **state)
{
    (void)state;
    /* NAT64 */
    assert_int_equal(check("64:ff9b::10.0.0.1"), SSRF_PRIVATE);
    assert_int_equal(check("64:ff9b::127.0.0.1"), SSRF_LOOPBACK);
    assert_int_equal(check("64:ff9b::169.254.169.254"), SSRF_LINK_LOCAL);
    assert_int_equal(check("64:ff9b::100.64.0.1"), SSRF_CGNAT);
    assert_int_equal(check("64:ff9b::8.8.8.8"), SSRF_OK);
    assert_int_equal(check("64:ff9b:0:0:0:1::"), SSRF_OK); /* outside the /96 */
    /* 6to4: the IPv4 address is in bytes 2..5 */
    assert_int_equal(check("2002:a9fe:a9fe::"), SSRF_LINK_LOCAL);
    assert_int_equal(check("2002:c0a8:0101::1"), SSRF_PRIVATE);
    assert_int_equal(check("2002:7f00:1::"), SSRF_LOOPBACK);
    assert_int_equal(check("2002:e000::"), SSRF_MULTICAST);
    assert_int_equal(check("2002:808:808::1"), SSRF_OK);
    /* v4-compatible (deprecated): refused whatever it carries */
    assert_int_equal(check("::127.0.0.2"), SSRF_LOOPBACK);
    assert_int_equal(check("::10.0.0.1"), SSRF_PRIVATE);
    assert_int_equal(check("::0.0.0.2"), SSRF_UNSPECIFIED);
    assert_int_equal(check("::8.8.8.8"), SSRF_RESERVED);
    assert_int_equal(check("::1:0:0:0"), SSRF_OK); /* outside ::/96 */
}

static void allow_nets_let_only_their_addresses_through(void **state)
{
    (void)state;
    size_t n;
    struct netlist_net *a = nets("127.0.0.0/8", &n);
    assert_int_equal(n, 1);
    assert_int_equal(judge("127.0.0.1", a, n), SSRF_ALLOWED);
    assert_int_equal(judge("127.255.255.255", a, n), SSRF_ALLOWED);
    assert_int_equal(judge("10.0.0.1", a, n), SSRF_PRIVATE);
    assert_int_equal(judge("::1", a, n), SSRF_LOOPBACK);
    assert_int_equal(judge("8.8.8.8", a, n), SSRF_OK); /* public stays OK, not ALLOWED */
    free(a);

    a = nets("10.1.2.3, ::1 fd00::/8", &n);
    assert_int_equal(n, 3);
    assert_int_equal(judge("10.1.2.3", a, n), SSRF_ALLOWED);
    assert_int_equal(judge("10.1.2.4", a, n), SSRF_PRIVATE);
    assert_int_equal(judge("::1", a, n), SSRF_ALLOWED);
    assert_int_equal(judge("fd00::5", a, n), SSRF_ALLOWED);
    assert_int_equal(judge("fc00::5", a, n), SSRF_UNIQUE_LOCAL);
    /* a NAT64 or 6to4 address is only allowed by an IPv6 net */
    free(a);
    a = nets("10.0.0.0/8", &n);
    assert_int_equal(judge("64:ff9b::10.0.0.1", a, n), SSRF_PRIVATE);
    free(a);
    a = nets("64:ff9b::10.0.0.0/104", &n);
    assert_int_equal(judge("64:ff9b::10.0.0.1", a, n), SSRF_ALLOWED);
    free(a);

    /* /0 lets everything of its family through */
    a = nets("0.0.0.0/0", &n);
    assert_int_equal(judge("169.254.169.254", a, n), SSRF_ALLOWED);
    assert_int_equal(judge("fe80::1", a, n), SSRF_LINK_LOCAL);
    free(a);
}

static void sockaddr_path_checks_family_and_length(void **state)
{
    (void)state;
    size_t n;
    struct netlist_net *a = nets("192.168.0.0/16 fe80::/10", &n);

    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(80);
    sin.sin_addr.s_addr = htonl(0xA9FEA9FE); /* 169.254.169.254 */
    assert_int_equal(ssrf_check((struct sockaddr *)&sin, sizeof(sin), NULL, 0), SSRF_LINK_LOCAL);
    assert_false(netlist_has((struct sockaddr *)&sin, sizeof(sin), a, n));
    sin.sin_addr.s_addr = htonl(0xC0A80101); /* 192.168.1.1 */
    assert_int_equal(ssrf_check((struct sockaddr *)&sin, sizeof(sin), a, n), SSRF_ALLOWED);
    assert_true(netlist_has((struct sockaddr *)&sin, sizeof(sin), a, n));
    assert_int_equal(ssrf_check((struct sockaddr *)&sin, sizeof(sin) - 1, a, n), SSRF_BAD_FAMILY);
    assert_false(netlist_has((struct sockaddr *)&sin, sizeof(sin) - 1, a, n));

    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(443);
    sin6.sin6_addr = in6addr_loopback;
    assert_int_equal(ssrf_check((struct sockaddr *)&sin6, sizeof(sin6), a, n), SSRF_LOOPBACK);
    sin6.sin6_addr = in6addr_any;
    assert_int_equal(ssrf_check((struct sockaddr *)&sin6, sizeof(sin6), a, n), SSRF_UNSPECIFIED);
    inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr);
    sin6.sin6_scope_id = 2;
    assert_int_equal(ssrf_check((struct sockaddr *)&sin6, sizeof(sin6), NULL, 0), SSRF_LINK_LOCAL);
    assert_int_equal(ssrf_check((struct sockaddr *)&sin6, sizeof(sin6), a, n), SSRF_ALLOWED);
    assert_true(netlist_has((struct sockaddr *)&sin6, sizeof(sin6), a, n));
    assert_int_equal(ssrf_check((struct sockaddr *)&sin6, sizeof(struct sockaddr_in), a, n),
                     SSRF_BAD_FAMILY);

    /* what getaddrinfo hands back: a sockaddr_storage, len of the real one */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, &sin, sizeof(sin));
    assert_int_equal(ssrf_check((struct sockaddr *)&ss, sizeof(ss), NULL, 0), SSRF_PRIVATE);

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, "/tmp/x");
    assert_int_equal(ssrf_check((struct sockaddr *)&sun, sizeof(sun), a, n), SSRF_BAD_FAMILY);
    assert_false(netlist_has((struct sockaddr *)&sun, sizeof(sun), a, n));
    assert_int_equal(ssrf_check(NULL, sizeof(sin), a, n), SSRF_BAD_FAMILY);
    assert_int_equal(ssrf_check((struct sockaddr *)&sin, 0, a, n), SSRF_BAD_FAMILY);
    assert_false(netlist_has(NULL, 0, a, n));
    free(a);
}

static void text_accepts_zones_and_legacy_ipv4_forms(void **state)
{
    (void)state;
    assert_int_equal(ssrf_check_text("fe80::1%eth0", NULL, 0), SSRF_LINK_LOCAL);
    assert_int_equal(ssrf_check_text("fe80::1%2", NULL, 0), SSRF_LINK_LOCAL);
    assert_int_equal(ssrf_check_text("2606:4700::1111%eth0", NULL, 0), SSRF_OK);
    /* what inet_aton, curl and browsers read as 127.0.0.1 and friends */
    assert_int_equal(ssrf_check_text("127.1", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("127.0.1", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("2130706433", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("0x7f000001", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("0X7F.1", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("017700000001", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("0177.0.0.01", NULL, 0), SSRF_LOOPBACK);
    assert_int_equal(ssrf_check_text("10.1", NULL, 0), SSRF_PRIVATE);
    assert_int_equal(ssrf_check_text("0", NULL, 0), SSRF_UNSPECIFIED);
    assert_int_equal(ssrf_check_text("0xa9fea9fe", NULL, 0), SSRF_LINK_LOCAL);
    assert_int_equal(ssrf_check_text("4294967295", NULL, 0), SSRF_RESERVED);
    assert_int_equal(ssrf_check_text("134744072", NULL, 0), SSRF_OK); /* 8.8.8.8 */
    assert_int_equal(ssrf_check_text("8.8.2056", NULL, 0), SSRF_OK);
}

static void text_that_is_not_a_numeric_address_is_bad_family(void **state)
{
    (void)state;
    const char *bad[] = {
        NULL,
        "",
        "localhost",
        "example.com",
        "[::1]",
        "::1]",
        "127.0.0.1 ",
        " 127.0.0.1",
        "127.0.0.1.",
        "1.2.3.4.5",
        "1..2",
        "256.1",
        "1.256.1",
        "1.2.65536",
        "4294967296",
        "0x100000000",
        "08.0.0.1",
        "0x",
        "0xg",
        "127.0.0.1/8",
        "127.0.0.1%eth0",
        "fe80::1%",
        "fe80::1%eth 0",
        "fe80::1%%",
        ":::1",
        "1:2:3:4:5:6:7:8:9",
        "ffff::ffff::1",
        "10.0.0.1:80",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ssrf_check_text(bad[i], NULL, 0) != SSRF_BAD_FAMILY)
            fail_msg("'%s' should be SSRF_BAD_FAMILY", bad[i] ? bad[i] : "(null)");
}

static void parse_nets_reads_lists_of_networks(void **state)
{
    (void)state;
    size_t n;
    struct netlist_net *a = nets("127.0.0.0/8 ::1/128, 10.1.2.3", &n);
    assert_int_equal(n, 3);
    assert_int_equal(a[0].family, AF_INET);
    assert_int_equal(a[0].prefix, 8);
    assert_memory_equal(a[0].addr, "\x7f\0\0\0", 4);
    assert_int_equal(a[1].family, AF_INET6);
    assert_int_equal(a[1].prefix, 128);
    assert_memory_equal(a[1].addr, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    assert_int_equal(a[2].family, AF_INET);
    assert_int_equal(a[2].prefix, 32); /* a bare address is a host */
    assert_memory_equal(a[2].addr, "\x0a\x01\x02\x03", 4);
    free(a);

    a = nets(",, 0.0.0.0/0,::/0,\t2001:db8::/32 ,", &n);
    assert_int_equal(n, 3);
    assert_int_equal(a[0].prefix, 0);
    assert_int_equal(a[1].prefix, 0);
    assert_int_equal(a[2].prefix, 32);
    free(a);

    a = nets("fe80::/10 ::1 192.168.1.128/25 ::ffff:127.0.0.1", &n);
    assert_int_equal(n, 4);
    assert_int_equal(a[0].prefix, 10);
    assert_int_equal(a[1].prefix, 128);
    assert_int_equal(a[2].prefix, 25);
    assert_int_equal(a[3].family, AF_INET6);
    free(a);

    /* empty lists */
    const char *empty[] = {NULL, "", " ", " ,, \t,"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        struct netlist_net *out = &sentinel;
        n = 99;
        assert_int_equal(netlist_parse(empty[i], &out, &n, NULL, 0), 0);
        assert_null(out);
        assert_int_equal(n, 0);
    }
}

static void parse_nets_names_the_bad_entry(void **state)
{
    (void)state;
    refused("10.0.0.0/8 nope", "'nope': not an IP address");
    refused("10.0.0.256", "'10.0.0.256': not an IP address");
    refused("127.1", "'127.1': not an IP address"); /* no legacy forms in config */
    refused("example.com/8", "not an IP address");
    refused("/8", "'/8': not an IP address");
    refused("[::1]", "not an IP address");
    refused("10.0.0.0/33", "'10.0.0.0/33': the prefix must be a number from 0 to 32");
    refused("::/129", "'::/129': the prefix must be a number from 0 to 128");
    refused("10.0.0.0/", "prefix must be");
    refused("10.0.0.0/-1", "prefix must be");
    refused("10.0.0.0/+8", "prefix must be");
    refused("10.0.0.0/8x", "prefix must be");
    refused("10.0.0.0/0008", "prefix must be");
    refused("10.0.0.0/8/8", "prefix must be");
    refused("10.0.0.1/8", "'10.0.0.1/8': host bits set beyond /8 (did you mean 10.0.0.0/8?)");
    refused("172.16.0.0/11", "host bits set beyond /11 (did you mean 172.0.0.0/11?)");
    refused("192.168.1.1/25", "did you mean 192.168.1.0/25?");
    refused("fe80::1/10", "'fe80::1/10': host bits set beyond /10 (did you mean fe80::/10?)");
    refused("::1/0", "did you mean ::/0?");
    refused("\x01\xff/8", "'?\?/8': not an IP address"); /* no raw bytes in the log */
    char big[200];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    refused(big, "...': not an IP address");

    /* NETLIST_MAX entries are fine, one more is not */
    size_t cap = (size_t)NETLIST_MAX * 16 + 64;
    char *list = malloc(cap);
    assert_non_null(list);
    size_t len = 0;
    for (int i = 0; i < NETLIST_MAX; i++)
        len += (size_t)snprintf(list + len, cap - len, "10.0.%d.%d ", i / 256, i % 256);
    size_t n;
    struct netlist_net *a = nets(list, &n);
    assert_int_equal(n, NETLIST_MAX);
    assert_memory_equal(a[NETLIST_MAX - 1].addr, "\x0a\x00\x00\xff", 4);
    free(a);
    snprintf(list + len, cap - len, "10.1.0.0");
    refused(list, "too many networks (at most 256): '10.1.0.0'");
    free(list);

    /* no err buffer: still -1, nothing written */
    struct netlist_net *out = NULL;
    assert_int_equal(netlist_parse("garbage", &out, &n, NULL, 0), -1);
    char one[1] = {'x'};
    assert_int_equal(netlist_parse("garbage", &out, &n, one, 0), -1);
    assert_int_equal(one[0], 'x');
}

static void every_verdict_has_a_reason(void **state)
{
    (void)state;
    assert_string_equal(ssrf_reason(SSRF_LOOPBACK), "loopback address");
    assert_string_equal(ssrf_reason(SSRF_PRIVATE), "private address (RFC 1918)");
    for (int v = SSRF_OK; v <= SSRF_BAD_FAMILY; v++) {
        const char *r = ssrf_reason((enum ssrf_verdict)v);
        assert_non_null(r);
        assert_true(r[0] != '\0');
        for (int w = SSRF_OK; w < v; w++)
            assert_string_not_equal(r, ssrf_reason((enum ssrf_verdict)w));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc1918_private_ranges_and_their_edges),
        cmocka_unit_test(loopback_unspecified_link_local_and_cgnat_edges),
        cmocka_unit_test(multicast_reserved_and_documentation_edges),
        cmocka_unit_test(public_addresses_are_ok),
        cmocka_unit_test(ipv6_special_ranges_and_their_edges),
        cmocka_unit_test(v4_mapped_is_refused_unless_allowed),
        cmocka_unit_test(embedded_ipv4_is_judged_by_its_own_class),
        cmocka_unit_test(allow_nets_let_only_their_addresses_through),
        cmocka_unit_test(sockaddr_path_checks_family_and_length),
        cmocka_unit_test(text_accepts_zones_and_legacy_ipv4_forms),
        cmocka_unit_test(text_that_is_not_a_numeric_address_is_bad_family),
        cmocka_unit_test(parse_nets_reads_lists_of_networks),
        cmocka_unit_test(parse_nets_names_the_bad_entry),
        cmocka_unit_test(every_verdict_has_a_reason),
    };
    return cmocka_run_group_tests_name("bus_ssrf", tests, NULL, NULL);
}
