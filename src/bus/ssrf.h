/* bus/ssrf: may a webhook connect to this address? (SSRF guard)
 *
 * A webhook URL comes from an API client, so without a guard anyone with a
 * key could make the bridge POST to 127.0.0.1, the LAN or the cloud
 * metadata service (169.254.169.254). Every address a webhook is about to
 * connect to passes through ssrf_check (after DNS, so a name that resolves
 * to a private address is caught too); literal-IP URLs are refused early,
 * at subscription time, with ssrf_check_text.
 *
 * Refused unless listed in the operator's allow nets: unspecified,
 * loopback, RFC 1918 private, link-local, CGNAT, IPv6 unique-local,
 * multicast, reserved and documentation ranges, IPv4-mapped IPv6, and the
 * v6 forms that carry a refused IPv4 address inside (v4-compatible, NAT64
 * 64:ff9b::/96, 6to4 2002::/16). Pure: no DNS, no globals, no I/O.
 */
#ifndef AMIBRIDGE_BUS_SSRF_H
#define AMIBRIDGE_BUS_SSRF_H

#include <stddef.h>
#include <sys/socket.h>

#include "core/netlist.h"

enum ssrf_verdict {
    SSRF_OK = 0,
    SSRF_ALLOWED, /* in a refused class, but listed in the allow nets */
    SSRF_UNSPECIFIED,
    SSRF_LOOPBACK,
    SSRF_PRIVATE,
    SSRF_LINK_LOCAL,
    SSRF_CGNAT,
    SSRF_UNIQUE_LOCAL,
    SSRF_V4_MAPPED,
    SSRF_MULTICAST,
    SSRF_RESERVED,
    SSRF_BAD_FAMILY,
};

/* May a webhook connect to sa (len bytes)? SSRF_OK and SSRF_ALLOWED mean
 * yes; everything else names the refused class. The allow nets (borrowed,
 * may be NULL when nallow is 0) are checked first against the address
 * itself and, for an IPv4-mapped IPv6 address, against the IPv4 address
 * inside. v4-compatible, NAT64 and 6to4 addresses are refused with the
 * class of the IPv4 address they carry; v4-compatible ones carrying a
 * public address are refused as SSRF_RESERVED (deprecated, RFC 4291).
 * A family other than AF_INET/AF_INET6 or a short len: SSRF_BAD_FAMILY. */
enum ssrf_verdict ssrf_check(const struct sockaddr *sa, socklen_t len,
                             const struct netlist_net *allow, size_t nallow);

/* The same for a numeric address in text: "10.0.0.1", "::1", "fe80::1%eth0"
 * (the zone is ignored), and the legacy IPv4 forms inet_aton and URL
 * parsers accept ("127.1", "0x7f000001", "017700000001"), so none of them
 * slips past as a "host name". SSRF_BAD_FAMILY when ip is not a numeric
 * address (a host name, brackets, trailing text, NULL). */
enum ssrf_verdict ssrf_check_text(const char *ip, const struct netlist_net *allow, size_t nallow);

/* Short reason for logs and API errors, e.g. "loopback address" or
 * "private address (RFC 1918)". A static string, never NULL. */
const char *ssrf_reason(enum ssrf_verdict v);

#endif
