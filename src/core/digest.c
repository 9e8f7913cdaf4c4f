#include "core/digest.h"

#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/md5.h>
#include <nettle/memops.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <nettle/version.h>
#include <string.h>

/* Nettle 4 dropped the digest size argument of the *_digest functions
 * (every caller here wants the whole digest). */
#if NETTLE_VERSION_MAJOR >= 4
#define DIGEST_FINISH(fn, ctx, size, out) fn(ctx, out)
#else
#define DIGEST_FINISH(fn, ctx, size, out) fn(ctx, size, out)
#endif

void digest_md5(const struct digest_part *parts, size_t n, unsigned char out[DIGEST_MD5_LEN])
{
    struct md5_ctx c;
    md5_init(&c);
    for (size_t i = 0; i < n; i++)
        md5_update(&c, parts[i].len, parts[i].p);
    DIGEST_FINISH(md5_digest, &c, DIGEST_MD5_LEN, out);
}

void digest_sha1(const void *p, size_t len, unsigned char out[DIGEST_SHA1_LEN])
{
    struct sha1_ctx c;
    sha1_init(&c);
    sha1_update(&c, len, p);
    DIGEST_FINISH(sha1_digest, &c, DIGEST_SHA1_LEN, out);
}

void digest_sha256(const void *p, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, len, p);
    DIGEST_FINISH(sha256_digest, &c, DIGEST_SHA256_LEN, out);
}

void digest_hmac_sha256(const void *key, size_t klen, const struct digest_part *parts, size_t n,
                        unsigned char out[DIGEST_SHA256_LEN])
{
    struct hmac_sha256_ctx c;
    hmac_sha256_set_key(&c, klen, key);
    for (size_t i = 0; i < n; i++)
        hmac_sha256_update(&c, parts[i].len, parts[i].p);
    DIGEST_FINISH(hmac_sha256_digest, &c, DIGEST_SHA256_LEN, out);
    explicit_bzero(&c, sizeof(c));
}

int digest_equal(const void *a, const void *b, size_t n)
{
    return memeql_sec(a, b, n) != 0;
}

void digest_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

size_t digest_base64(const unsigned char *in, size_t n, char *out)
{
    base64_encode_raw(out, n, in);
    out[DIGEST_BASE64_LEN(n)] = '\0';
    return DIGEST_BASE64_LEN(n);
}
