#include "http/auth.h"

#include <stdint.h>
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
    unsigned long serial; /* which key table this is, for the memos */
};

/* Key tables made so far: a memo names the one it was made by, so that it
 * never speaks for another table made later at the same address. */
static unsigned long auth_tables;

struct http_auth_memo {
    unsigned long serial; /* the key table whose key `index` is */
    size_t index;
    size_t len;
    unsigned char tok[HTTP_AUTH_MEMO_MAX];
};

/* 1 when the two buffers of the memo's size are equal: a word at a time,
 * every word looked at, no branch on the bytes (nettle's memeql_sec does
 * the same a byte at a time, ten times the instructions). */
_Static_assert(HTTP_AUTH_MEMO_MAX % 8 == 0, "same_words() reads the memo 8 bytes at a time");

static int same_words(const unsigned char *x, const unsigned char *y)
{
    uint64_t d = 0;
    for (size_t i = 0; i < HTTP_AUTH_MEMO_MAX; i += sizeof(d)) {
        uint64_t a, b;
        memcpy(&a, x + i, sizeof(a));
        memcpy(&b, y + i, sizeof(b));
        d |= a ^ b;
    }
    return d == 0;
}

/* 1 when tok is the token kept in m, in the same time whatever the bytes
 * and however long the kept token is. */
static int memo_holds(const struct http_auth_memo *m, const struct http_auth *a, const char *tok,
                      size_t len)
{
    if (!m || m->serial != a->serial || m->index >= a->n || len > HTTP_AUTH_MEMO_MAX)
        return 0;
    unsigned char t[HTTP_AUTH_MEMO_MAX] = {0};
    memcpy(t, tok, len);
    int same = same_words(t, m->tok) & (len == m->len);
    explicit_bzero(t, sizeof(t));
    return same;
}

static void memo_keep(struct http_auth_memo **slot, const struct http_auth *a, size_t index,
                      const char *tok, size_t len)
{
    if (len > HTTP_AUTH_MEMO_MAX || (!*slot && !(*slot = malloc(sizeof(**slot)))))
        return; /* out of memory: the next request is hashed, no more */
    struct http_auth_memo *m = *slot;
    explicit_bzero(m, sizeof(*m));
    m->serial = a->serial;
    m->index = index;
    m->len = len;
    memcpy(m->tok, tok, len);
}

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
    a->serial = ++auth_tables;
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
                                      const struct cfg_api_key **key, struct http_auth_memo **memo)
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
    const struct auth_key *found = NULL;
    if (memo && memo_holds(*memo, a, tok, len)) {
        found = &a->keys[(*memo)->index];
    } else {
        unsigned char d[AUTH_DIGEST_LEN];
        digest_sha256(tok, len, d);
        for (size_t i = 0; i < a->n; i++) {
            /* no early exit: every key is compared */
            int eq = digest_equal(d, a->keys[i].digest, AUTH_DIGEST_LEN);
            if (eq && !found)
                found = &a->keys[i];
        }
        if (found && memo)
            memo_keep(memo, a, (size_t)(found - a->keys), tok, len);
    }
    if (!found)
        return HTTP_AUTH_INVALID;
    *key = found->key;
    if ((found->key->scopes & need) != need)
        return HTTP_AUTH_SCOPE;
    return HTTP_AUTH_OK;
}

void http_auth_memo_free(struct http_auth_memo *m)
{
    if (!m)
        return;
    explicit_bzero(m, sizeof(*m));
    free(m);
}
