/* core/jsonw's tree writer against jansson's json_dumps, the oracle: the
 * HTTP answers are written by jsonw_value, so every byte must be jansson's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "core/strbuf.h"

#define PRECISION 9 /* what http_respond_json asks for */

static void same_as_jansson(const json_t *v, int precision)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision));
    assert_non_null(want);
    struct strbuf got;
    strbuf_init(&got, 0);
    assert_int_equal(jsonw_value(&got, v, precision), 0);
    if (got.len != strlen(want) || memcmp(got.data, want, got.len))
        fail_msg("jsonw: %.*s\njansson: %s", (int)got.len, got.data, want);
    strbuf_release(&got);
    free(want);
}

static const char *const pieces[] = {"a",
                                     "Zz",
                                     "\"",
                                     "\\",
                                     "/",
                                     "\n",
                                     "\r\t",
                                     "\x01",
                                     "\x1f",
                                     "\x7f",
                                     "\b\f",
                                     " ",
                                     "\xc3\xa9",
                                     "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80",
                                     "\xe2\x80\xa8",
                                     "{}",
                                     "[",
                                     ":,",
                                     "0"};

static json_t *random_string(unsigned *seed)
{
    char b[96];
    size_t n = 0, k = (size_t)(rand_r(seed) % 8);
    for (size_t i = 0; i < k; i++) {
        const char *p = pieces[rand_r(seed) % (sizeof(pieces) / sizeof(pieces[0]))];
        memcpy(b + n, p, strlen(p));
        n += strlen(p);
    }
    if (rand_r(seed) % 12 == 0)
        b[n++] = '\0'; /* jansson strings may hold NUL */
    return json_stringn(b, n);
}

static double random_real(unsigned *seed)
{
    static const double special[] = {0.0,      -0.0,        0.1,
                                     1.0,      -1.5,        1e21,
                                     1e-7,     123456789.0, 1234567890123.0,
                                     2.5e-300, DBL_MAX,     DBL_MIN,
                                     1.0 / 3,  100.0,       0.000123456789};
    if (rand_r(seed) % 3 == 0)
        return special[rand_r(seed) % (sizeof(special) / sizeof(special[0]))];
    double m = (double)rand_r(seed) / RAND_MAX - 0.5;
    return ldexp(m, rand_r(seed) % 400 - 200);
}

static json_t *random_value(unsigned *seed, int depth)
{
    int kind = rand_r(seed) % (depth > 4 ? 6 : 8);
    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(rand_r(seed) % 2);
    case 2: {
        static const json_int_t ints[] = {0, -1, 1, INT64_MAX, INT64_MIN, 1000000007};
        return json_integer(rand_r(seed) % 2 ? ints[rand_r(seed) % 6]
                                             : (json_int_t)rand_r(seed) - RAND_MAX / 2);
    }
    case 3:
        return json_real(random_real(seed));
    case 4:
    case 5:
        return random_string(seed);
    case 6: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 5; i > 0; i--)
            json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = rand_r(seed) % 6; i > 0; i--) {
            json_t *k = random_string(seed);
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(seed, depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

/* Random trees: nesting, member order, every escape, NUL in strings,
 * integers at the limits, reals of every size, at three precisions. */
static void random_trees_are_byte_for_byte_janssons(void **state)
{
    (void)state;
    unsigned seed = 4242;
    for (int round = 0; round < 5000; round++) {
        json_t *v = random_value(&seed, 0);
        same_as_jansson(v, PRECISION);
        same_as_jansson(v, 0);
        same_as_jansson(v, 17);
        json_decref(v);
    }
}

/* The shapes the reals take: ".0" added, exponent without '+' and zeros,
 * negative exponents, the precision's rounding. */
static void reals_read_as_jansson_writes_them(void **state)
{
    (void)state;
    const double d[] = {5.0, 1e9, 1e10, 1e-5, 123.456, 0.1 + 0.2, -2.5e-12, 9.99999999e20};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        json_t *v = json_real(d[i]);
        same_as_jansson(v, PRECISION);
        same_as_jansson(v, 0);
        json_decref(v);
    }
    struct strbuf b;
    strbuf_init(&b, 0);
    json_t *v = json_real(1e10);
    assert_int_equal(jsonw_value(&b, v, PRECISION), 0);
    assert_string_equal(b.data, "1e10"); /* %.9g: no ".0" after an exponent */
    json_decref(v);
    strbuf_reset(&b);
    v = json_real(1e21);
    assert_int_equal(jsonw_value(&b, v, PRECISION), 0);
    assert_string_equal(b.data, "1e21");
    json_decref(v);
    strbuf_release(&b);
}

/* Where jansson gives up (a key that is not UTF-8, let in by _nocheck),
 * the bytes are repaired; too deep a tree and a full buffer are errors. */
static void bad_utf8_is_repaired_and_limits_hold(void **state)
{
    (void)state;
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "k\xff", json_string_nocheck("v\xc3"));
    struct strbuf b;
    strbuf_init(&b, 0);
    assert_int_equal(jsonw_value(&b, o, PRECISION), 0);
    assert_string_equal(b.data, "{\"k\xef\xbf\xbd\":\"v\xef\xbf\xbd\"}");
    json_decref(o);
    strbuf_release(&b);

    json_t *deep = json_array();
    for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++) {
        json_t *up = json_array();
        json_array_append_new(up, deep);
        deep = up;
    }
    strbuf_init(&b, 0);
    assert_int_equal(jsonw_value(&b, deep, PRECISION), -ELOOP);
    strbuf_release(&b);
    json_decref(deep);

    json_t *s = json_string("0123456789");
    strbuf_init(&b, 8);
    assert_int_equal(jsonw_value(&b, s, PRECISION), -E2BIG);
    strbuf_release(&b);
    json_decref(s);
    strbuf_init(&b, 0);
    assert_int_equal(jsonw_value(&b, NULL, PRECISION), -EINVAL);
    strbuf_release(&b);
}

/* The decimal writer the answers' heads use (Content-Length, the status)
 * against printf, at every power of ten, its neighbours and the edges. */
static void decimals_are_printfs(void **state)
{
    (void)state;
    uint64_t vs[80];
    size_t n = 0;
    vs[n++] = 0;
    vs[n++] = UINT64_MAX;
    for (uint64_t p = 1; n + 3 <= sizeof(vs) / sizeof(vs[0]); p *= 10) {
        vs[n++] = p - 1;
        vs[n++] = p;
        vs[n++] = p + 1;
        if (p > UINT64_MAX / 10)
            break;
    }
    struct strbuf b;
    strbuf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        char want[32], got[21];
        snprintf(want, sizeof(want), "%" PRIu64, vs[i]);
        assert_int_equal(fmt_u64(got, vs[i]), strlen(want));
        assert_string_equal(got, want);
        strbuf_reset(&b);
        assert_int_equal(strbuf_append_u64(&b, vs[i]), 0);
        assert_string_equal(b.data, want);
    }
    strbuf_release(&b);
    strbuf_init(&b, 3);
    assert_int_equal(strbuf_append_u64(&b, 1000), -E2BIG);
    strbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_trees_are_byte_for_byte_janssons),
        cmocka_unit_test(reals_read_as_jansson_writes_them),
        cmocka_unit_test(bad_utf8_is_repaired_and_limits_hold),
        cmocka_unit_test(decimals_are_printfs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
