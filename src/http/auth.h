/* http/auth: API keys (Authorization: Bearer TOKEN) and scopes.
 *
 * Tokens are kept only as SHA-256 digests and compared in constant time
 * against every configured key, so neither the timing nor the order of
 * the keys tells anything about a token. With no key configured the bridge
 * is open to loopback clients only (the config refuses any other listen
 * address in that case).
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
 * is missing. */
enum http_auth_result http_auth_check(const struct http_auth *a, const char *authorization,
                                      int peer_loopback, unsigned need,
                                      const struct cfg_api_key **key);

#endif
