/* http/xff: who the client is behind trusted reverse proxies.
 *
 * A proxy listed in AMIBRIDGE_TRUSTED_PROXIES appends the address it saw
 * to X-Forwarded-For; everything to the left of that entry is whatever the
 * client chose to send. So the list is read from the right, skipping the
 * trusted proxies' own addresses, and the first address that is not a
 * trusted proxy is the client: never the left-most one, which anybody can
 * forge. The header of a peer that is not a trusted proxy is ignored.
 * Pure: no I/O, no globals.
 */
#ifndef AMIBRIDGE_HTTP_XFF_H
#define AMIBRIDGE_HTTP_XFF_H

#include <stddef.h>
#include <sys/socket.h>

/* entries read from the right before the header counts as malformed */
#define HTTP_XFF_MAX_HOPS  32
#define HTTP_XFF_ENTRY_MAX 64 /* longest entry read ("[IPv6]:port" fits) */

struct netlist_net;

enum http_xff {
    HTTP_XFF_PEER = 0,  /* the TCP peer is the client: not a trusted proxy, or no header */
    HTTP_XFF_CLIENT,    /* *out holds the client the header names */
    HTTP_XFF_MALFORMED, /* a trusted proxy sent a list that cannot be read: use the peer */
};

/* The client of a request from `peer` carrying X-Forwarded-For `xff` (all
 * the header's lines joined with ","; NULL when absent). Entries are
 * IPv4 or IPv6 addresses, optionally "[IPv6]:port" or "IPv4:port"; empty
 * entries are skipped; an IPv4-mapped IPv6 address counts as its IPv4
 * address. When every entry is a trusted proxy the left-most one is the
 * client. `trusted` is borrowed (may be NULL when ntrusted is 0). *out is
 * written only for HTTP_XFF_CLIENT. */
enum http_xff http_xff_client(const struct sockaddr *peer, socklen_t peer_len, const char *xff,
                              const struct netlist_net *trusted, size_t ntrusted,
                              struct sockaddr_storage *out, socklen_t *out_len);

#endif
