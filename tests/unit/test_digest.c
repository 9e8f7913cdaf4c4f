/* Unit tests for core/digest: published test vectors for each hash, the
 * HMAC and base64, and that pieces hash as their concatenation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/digest.h"

static void md5_matches_rfc_1321_and_pieces_hash_as_one(void **state)
{
    (void)state;
    unsigned char d[DIGEST_MD5_LEN];
    char h[2 * DIGEST_MD5_LEN + 1];
    struct digest_part none = {"", 0};
    digest_md5(&none, 1, d);
    digest_hex(d, sizeof(d), h);
    assert_string_equal(h, "d41d8cd98f00b204e9800998ecf8427e");
    struct digest_part abc[] = {{"a", 1}, {"", 0}, {"bc", 2}};
    digest_md5(abc, 3, d);
    digest_hex(d, sizeof(d), h);
    assert_string_equal(h, "900150983cd24fb0d6963f7d28e17f72");
}

static void sha1_and_sha256_match_fips_180_vectors(void **state)
{
    (void)state;
    unsigned char d1[DIGEST_SHA1_LEN], d2[DIGEST_SHA256_LEN];
    char h[2 * DIGEST_SHA256_LEN + 1];
    digest_sha1("abc", 3, d1);
    digest_hex(d1, sizeof(d1), h);
    assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    digest_sha256("abc", 3, d2);
    digest_hex(d2, sizeof(d2), h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_sha256("", 0, d2);
    digest_hex(d2, sizeof(d2), h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void hmac_sha256_matches_rfc_4231_short_and_long_keys(void **state)
{
    (void)state;
    unsigned char d[DIGEST_SHA256_LEN];
    char h[2 * DIGEST_SHA256_LEN + 1];
    /* test case 2, the message in two pieces */
    struct digest_part msg[] = {{"what do ya want ", 16}, {"for nothing?", 12}};
    digest_hmac_sha256("Jefe", 4, msg, 2, d);
    digest_hex(d, sizeof(d), h);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* test case 6: a key longer than the block is hashed first */
    unsigned char key[131];
    memset(key, 0xaa, sizeof(key));
    static const char big[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    struct digest_part one = {big, sizeof(big) - 1};
    digest_hmac_sha256(key, sizeof(key), &one, 1, d);
    digest_hex(d, sizeof(d), h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void base64_matches_rfc_4648_with_padding_and_the_standard_alphabet(void **state)
{
    (void)state;
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff"};
    static const char *const want[] = {"",         "Zg==",     "Zm8=",     "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "+/8="};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char out[DIGEST_BASE64_LEN(8) + 1];
        memset(out, 'x', sizeof(out));
        size_t n = digest_base64((const unsigned char *)in[i], strlen(in[i]), out);
        assert_int_equal(n, strlen(want[i]));
        assert_string_equal(out, want[i]);
    }
}

static void equal_compares_every_byte(void **state)
{
    (void)state;
    unsigned char a[32], b[32];
    memset(a, 7, sizeof(a));
    memcpy(b, a, sizeof(b));
    assert_int_equal(digest_equal(a, b, sizeof(a)), 1);
    b[31] ^= 1;
    assert_int_equal(digest_equal(a, b, sizeof(a)), 0);
    b[31] ^= 1;
    b[0] ^= 0x80;
    assert_int_equal(digest_equal(a, b, sizeof(a)), 0);
    assert_int_equal(digest_equal(a, b, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(md5_matches_rfc_1321_and_pieces_hash_as_one),
        cmocka_unit_test(sha1_and_sha256_match_fips_180_vectors),
        cmocka_unit_test(hmac_sha256_matches_rfc_4231_short_and_long_keys),
        cmocka_unit_test(base64_matches_rfc_4648_with_padding_and_the_standard_alphabet),
        cmocka_unit_test(equal_compares_every_byte),
    };
    return cmocka_run_group_tests_name("digest", tests, NULL, NULL);
}
