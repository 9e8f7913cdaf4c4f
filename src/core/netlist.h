/* core/netlist: lists of IP networks ("10.0.0.0/8 ::1/128, 192.0.2.7"),
 * parsed once for every list the configuration holds (trusted networks,
 * trusted proxies, the webhooks' allow nets) and matched against an
 * address. Pure: no DNS, no globals, no I/O. */
#ifndef AMIBRIDGE_CORE_NETLIST_H
#define AMIBRIDGE_CORE_NETLIST_H

#include <stddef.h>
#include <sys/socket.h>

#define NETLIST_MAX 256 /* entries in one netlist_parse list */

struct netlist_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
};

/* Parse a list of networks separated by spaces and/or commas:
 * "127.0.0.0/8 ::1/128, 10.1.2.3" (a bare address means /32 or /128; only
 * the strict inet_pton forms, no "127.1" shorthand, in configuration).
 * Host bits set beyond the prefix are an error ("10.0.0.1/8" is refused,
 * and the message says so). 0 with a malloc'd array the caller frees in
 * *out and its length in *n (an empty list gives *out NULL, *n 0); -1 with
 * a message naming the bad entry in err (NULL or errlen 0: no message) and
 * *out NULL, *n 0. At most NETLIST_MAX entries. */
int netlist_parse(const char *list, struct netlist_net **out, size_t *n, char *err, size_t errlen);

/* True when sa is inside one of nets[0..n). Families must match: an
 * IPv4-mapped IPv6 address is not inside an IPv4 net here (the SSRF guard
 * looks at the IPv4 address inside on its own). 0 for a bad family or
 * short len. */
int netlist_has(const struct sockaddr *sa, socklen_t len, const struct netlist_net *nets, size_t n);

/* The same for raw address bytes (4 or 16 of `family`), and for one net;
 * the family and bytes of a socket address (-1: not IPv4 or IPv6, or short). */
int netlist_has_bytes(const struct netlist_net *nets, size_t n, int family, const unsigned char *a);
int netlist_net_has(const struct netlist_net *net, int family, const unsigned char *a);
int netlist_sa_bytes(const struct sockaddr *sa, socklen_t len, int *family, unsigned char *a);

#endif
