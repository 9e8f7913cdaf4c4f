/* core/ascii: the first-byte check in front of strcasecmp never changes
 * strcasecmp's answer, for every pair of bytes that can start a name, the
 * bytes whose case bit differs but that are not letters among them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"

static void every_first_byte_pair_is_strcasecmps(void **state)
{
    (void)state;
    char a[4] = "?xy", b[4] = "?XY";
    size_t equal = 0;
    for (int i = 0; i < 256; i++) {
        for (int k = 0; k < 256; k++) {
            a[0] = (char)i;
            b[0] = (char)k;
            int want = strcasecmp(a, b) == 0;
            equal += (size_t)want;
            assert_int_equal(ascii_name_eq(a, b), want);
            assert_int_equal(ascii_name_eqn(a, b, 3), strncasecmp(a, b, 3) == 0);
            assert_int_equal(ascii_name_eqn(a, b, 1), strncasecmp(a, b, 1) == 0);
        }
    }
    /* the pairs equal without case: every byte with itself (NUL with NUL
     * is "" against ""), and the 26 letters both ways round; '@' and '`',
     * '[' and '{' are not */
    assert_int_equal(equal, 256 + 2 * 26);
}

static void names_as_the_lists_use_them(void **state)
{
    (void)state;
    assert_true(ascii_name_eq("Originate", "originate"));
    assert_true(ascii_name_eq("ORIGINATE", "Originate"));
    assert_false(ascii_name_eq("Originate", "Originat"));
    assert_false(ascii_name_eq("Originate", " Originate"));
    assert_false(ascii_name_eq("@riginate", "`riginate"));
    assert_true(ascii_name_eq("", ""));
    assert_false(ascii_name_eq("", "Ping"));
    assert_true(ascii_name_eqn("Channel", "channelx", 7));
    assert_true(ascii_name_eqn("A", "B", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_first_byte_pair_is_strcasecmps),
        cmocka_unit_test(names_as_the_lists_use_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
