#include "http/auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/digest.h"

#define AUTH_DIGEST_LEN DIGEST_SHA256_LEN

struct auth_key {
    unsigned char digest[AUTH_DIGEST_LEN];
    const struct cfg_api_key *key; /* borrowed from the config */
};

struct http_auth {
    struct auth_key *keys;
    size_t n;
};

struct http_auth *http_auth_new(const struct cfg *c)
{
    struct http_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    if (c->nkeys) {
        a->keys = calloc(c->nkeys, sizeof(*a->keys));
        if (!a->keys) {
            free(a);
            return NULL;
        }
    }
    for (size_t i = 0; i < c->nkeys; i++) {
        digest_sha256(c->keys[i].token, strlen(c->keys[i].token), a->keys[i].digest);
        a->keys[i].key = &c->keys[i];
    }
    a->n = c->nkeys;
    return a;
}

void http_auth_free(struct http_auth *a)
{
    if (!a)
        return;
    free(a->keys);
    free(a);
}

int http_auth_open(const struct http_auth *a)
{
    return a->n == 0;
}

enum http_auth_result http_auth_check(const struct http_auth *a, const char *authorization,
                                      int peer_loopback, unsigned need,
                                      const struct cfg_api_key **key)
{
    *key = NULL;
    if (a->n == 0)
        return peer_loopback ? HTTP_AUTH_OK : HTTP_AUTH_REMOTE;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return HTTP_AUTH_MISSING;
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len && tok[len - 1] == ' ')
        len--;
    if (!len)
        return HTTP_AUTH_MISSING;
    unsigned char d[AUTH_DIGEST_LEN];
    digest_sha256(tok, len, d);
    const struct auth_key *found = NULL;
    for (size_t i = 0; i < a->n; i++) {
        /* no early exit: every key is compared */
        int eq = digest_equal(d, a->keys[i].digest, AUTH_DIGEST_LEN);
        if (eq && !found)
            found = &a->keys[i];
    }
    if (!found)
        return HTTP_AUTH_INVALID;
    *key = found->key;
    if ((found->key->scopes & need) != need)
        return HTTP_AUTH_SCOPE;
    return HTTP_AUTH_OK;
}
