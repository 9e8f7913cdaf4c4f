/* Unit tests for the Redis URL parser of src/bus/redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bus/redis.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_parse_into_their_parts),
        cmocka_unit_test(bad_urls_are_refused_without_echoing_passwords),
    };
    return cmocka_run_group_tests_name("redis_url", tests, NULL, NULL);
}
