/* Unit tests for the Redis URL parser of src/bus/redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bus/redis.h"
#include "core/strbuf.h"

static void urls_parse_into_their_parts(void **state)
{
    (void)state;
    struct bus_redis_url u;
    char err[128];
    assert_int_equal(bus_redis_parse_url("redis://127.0.0.1:6390", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.pass, "");
    assert_int_equal(
        bus_redis_parse_url("redis://user:p%40ss:w@cache:7000/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.pass, "p%40ss:w");
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 3);
    assert_int_equal(bus_redis_parse_url("redis://:only-pass@h", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.pass, "only-pass");
    assert_int_equal(u.port, 6379);
    assert_int_equal(bus_redis_parse_url("redis://[::1]:6380/1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(bus_redis_parse_url("unix:/run/redis/redis.sock", &u, err, sizeof(err)), 0);
    assert_string_equal(u.unix_path, "/run/redis/redis.sock");
}

static void bad_urls_are_refused_without_echoing_passwords(void **state)
{
    (void)state;
    struct bus_redis_url u;
    char err[128];
    static const char *bad[] = {"http://h:1",         "redis://",          "redis://h:0",
                                "redis://h:99999",    "redis://h:x",       "redis://h/db",
                                "unix:relative/path", "redis://s3cret@:5", NULL};
    for (const char **b = bad; *b; b++) {
        assert_int_equal(bus_redis_parse_url(*b, &u, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "AMIBRIDGE_REDIS_URL"));
        assert_null(strstr(err, "s3cret"));
    }
}

/* Commands in RESP, written by hand: binary-safe lengths, empty and NUL
 * bytes, appended after what the buffer held. */
static void commands_are_formatted_in_resp(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 0);
    strbuf_append_str(&sb, "x");
    const char *argv[] = {"PUBLISH", "ami.pbx1.Hangup", "", "a\0b\r\n"};
    size_t len[] = {7, 15, 0, 5};
    assert_int_equal(bus_redis_format(&sb, 4, argv, len), 0);
    static const char want[] = "x*4\r\n$7\r\nPUBLISH\r\n$15\r\nami.pbx1.Hangup\r\n$0\r\n\r\n"
                               "$5\r\na\0b\r\n\r\n";
    assert_int_equal(sb.len, sizeof(want) - 1);
    assert_memory_equal(sb.data, want, sb.len);
    /* a seven-digit length */
    strbuf_reset(&sb);
    static char big[1234567];
    memset(big, 'v', sizeof(big));
    const char *one[] = {big};
    size_t onelen[] = {sizeof(big)};
    assert_int_equal(bus_redis_format(&sb, 1, one, onelen), 0);
    assert_int_equal(memcmp(sb.data, "*1\r\n$1234567\r\nvv", 16), 0);
    assert_int_equal(sb.len, 4 + 10 + sizeof(big) + 2);
    strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_parse_into_their_parts),
        cmocka_unit_test(bad_urls_are_refused_without_echoing_passwords),
        cmocka_unit_test(commands_are_formatted_in_resp),
    };
    return cmocka_run_group_tests_name("redis_url", tests, NULL, NULL);
}
