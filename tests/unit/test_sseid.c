/* Unit tests for src/api/sseid (Last-Event-ID in and out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api/sseid.h"
#include "core/config.h"

static void our_ids_are_read_with_and_without_a_server(void **state)
{
    (void)state;
    char name[CFG_NAME_MAX + 1];
    uint64_t seq = 0;
    assert_int_equal(api_sseid_parse("1234", name, sizeof(name), &seq), 0);
    assert_string_equal(name, "");
    assert_true(seq == 1234);
    assert_int_equal(api_sseid_parse("pbx-1_a:77", name, sizeof(name), &seq), 0);
    assert_string_equal(name, "pbx-1_a");
    assert_true(seq == 77);
    assert_int_equal(api_sseid_parse("0", name, sizeof(name), &seq), 0);
    assert_true(seq == 0);
    assert_int_equal(api_sseid_parse("18446744073709551615", name, sizeof(name), &seq), 0);
    assert_true(seq == UINT64_MAX);
}

static void anything_else_is_not_an_id(void **state)
{
    (void)state;
    char name[CFG_NAME_MAX + 1];
    uint64_t seq = 0;
    const char *bad[] = {"",
                         "abc",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1\r",
                         "1\rdata: x",
                         ":5",
                         "pbx:",
                         "a:b:5",
                         "pb x:5",
                         "pbx\r:5",
                         "0x10",
                         "1e3",
                         "\xc3\xa9:5",
                         "18446744073709551616",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (api_sseid_parse(bad[i], name, sizeof(name), &seq) != -1)
            fail_msg("'%s' was read as an id", bad[i]);
    char longname[CFG_NAME_MAX + 8];
    memset(longname, 'a', CFG_NAME_MAX + 1);
    strcpy(longname + CFG_NAME_MAX + 1, ":5");
    assert_int_equal(api_sseid_parse(longname, name, sizeof(name), &seq), -1);
    longname[CFG_NAME_MAX] = ':';
    longname[CFG_NAME_MAX + 1] = '5';
    longname[CFG_NAME_MAX + 2] = '\0';
    assert_int_equal(api_sseid_parse(longname, name, sizeof(name), &seq), 0);
    assert_int_equal(strlen(name), CFG_NAME_MAX);
}

static void what_is_shown_back_has_no_control_byte_and_is_bounded(void **state)
{
    (void)state;
    char out[SSEID_ECHO_MAX + 4];
    api_sseid_printable("pbx:12", out, sizeof(out));
    assert_string_equal(out, "pbx:12");
    api_sseid_printable("1\rdata: evil\x01\x1b[31m\x7f\t", out, sizeof(out));
    assert_string_equal(out, "1?data: evil??[31m??");
    api_sseid_printable("\xc3\xa9\xff", out, sizeof(out)); /* never half a UTF-8 sequence */
    assert_string_equal(out, "???");
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    api_sseid_printable(big, out, sizeof(out));
    assert_int_equal(strlen(out), SSEID_ECHO_MAX + 3);
    assert_string_equal(out + SSEID_ECHO_MAX, "...");
    char tiny[4];
    api_sseid_printable("abcdef", tiny, sizeof(tiny));
    assert_string_equal(tiny, "abc");
    for (size_t i = 0; out[i]; i++)
        assert_true(out[i] >= 0x20 && out[i] < 0x7f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(our_ids_are_read_with_and_without_a_server),
        cmocka_unit_test(anything_else_is_not_an_id),
        cmocka_unit_test(what_is_shown_back_has_no_control_byte_and_is_bounded),
    };
    return cmocka_run_group_tests_name("api_sseid", tests, NULL, NULL);
}
