/* http/auth: API keys (Authorization: Bearer TOKEN) and scopes.
 *
 * Tokens are kept as SHA-256 digests and compared in constant time
 * against every configured key, so neither the timing nor the order of
 * the keys tells anything about a token. A keep-alive connection also
 * keeps the last valid token shown on it (see http_auth_check), so that
 * its next requests with that token skip the hash. With no key configured
 * the bridge is open to loopback clients only (the config refuses any
 * other listen address in that case).
 */
#ifndef AMIBRIDGE_HTTP_AUTH_H
#define AMIBRIDGE_HTTP_AUTH_H

#include "core/config.h"

enum http_auth_result {
    HTTP_AUTH_OK = 0,
    HTTP_AUTH_MISSING, /* no or malformed Authorization header: 401 */
    HTTP_AUTH_INVALID, /* unknown token: 401 */
    HTTP_AUTH_SCOPE,   /* valid key without the scope: 403 */
    HTTP_AUTH_REMOTE,  /* open mode, but the client is not on loopback: 403 */
};

struct http_auth;

struct http_auth *http_auth_new(const struct cfg *c);
void http_auth_free(struct http_auth *a);
int http_auth_open(const struct http_auth *a);

/* Check a request. `key` receives the configured key (borrowed from the
 * config; NULL in open mode) when the token is valid, also when the scope
 * is missing.
 *
 * memo (may be NULL): where a connection keeps the last valid token shown
 * on it (up to HTTP_AUTH_MEMO_MAX bytes) and the key it was, allocated
 * here the first time (free it with http_auth_memo_free). A request whose
 * token is the kept one, byte for byte, is not hashed again; any other
 * token goes the whole way, and a valid one is kept next. The comparison
 * takes the same time whatever the bytes, so a client learns nothing of
 * a kept token it does not hold. What a hit does show is that the token
 * was the connection's last valid one: behind a proxy that pools one
 * connection for several users, a user could tell (by well under a
 * microsecond) whether the last request on it carried their own key. */
#define HTTP_AUTH_MEMO_MAX 128 /* longer tokens are hashed every time; a multiple of 8 */
struct http_auth_memo;
enum http_auth_result http_auth_check(const struct http_auth *a, const char *authorization,
                                      int peer_loopback, unsigned need,
                                      const struct cfg_api_key **key, struct http_auth_memo **memo);
/* Wipe and free a memo (NULL is fine). */
void http_auth_memo_free(struct http_auth_memo *m);

#endif
