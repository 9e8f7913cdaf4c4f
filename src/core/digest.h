/* digest: the hashes, MAC and encodings amibridge needs (AMI challenge
 * login, API key digests, idempotency hashes, the Redis fence script's SHA-1,
 * webhook signatures), in one place.
 *
 * Nettle underneath: GnuTLS, which libmicrohttpd loads anyway, is built on
 * it, so hashing costs no library of its own. Pure; no allocation.
 */
#ifndef AMIBRIDGE_CORE_DIGEST_H
#define AMIBRIDGE_CORE_DIGEST_H

#include <stddef.h>

#define DIGEST_MD5_LEN    16
#define DIGEST_SHA1_LEN   20
#define DIGEST_SHA256_LEN 32
/* base64 (standard alphabet, '=' padding) of n bytes, without the NUL */
#define DIGEST_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* One piece of a message; a digest of several pieces is the digest of
 * their concatenation, without building it. */
struct digest_part {
    const void *p;
    size_t len;
};

/* MD5 of the pieces parts[0..n) into out. */
void digest_md5(const struct digest_part *parts, size_t n, unsigned char out[DIGEST_MD5_LEN]);

/* SHA-1 of len bytes at p into out. */
void digest_sha1(const void *p, size_t len, unsigned char out[DIGEST_SHA1_LEN]);

/* SHA-256 of len bytes at p into out. */
void digest_sha256(const void *p, size_t len, unsigned char out[DIGEST_SHA256_LEN]);

/* HMAC-SHA256 (RFC 2104) of the pieces parts[0..n), keyed with klen bytes
 * at key, into out. The key schedule is wiped before returning. */
void digest_hmac_sha256(const void *key, size_t klen, const struct digest_part *parts, size_t n,
                        unsigned char out[DIGEST_SHA256_LEN]);

/* 1 when the n bytes at a and b are equal, else 0, in a time that depends
 * on n only (for secrets and their digests). */
int digest_equal(const void *a, const void *b, size_t n);

/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void digest_hex(const unsigned char *in, size_t n, char *out);

/* Base64 of n bytes into out (DIGEST_BASE64_LEN(n) + 1 bytes,
 * NUL-terminated); returns the length written without the NUL. */
size_t digest_base64(const unsigned char *in, size_t n, char *out);

#endif
