/* Unit tests for admit/lockout: the wrong-key count per address, the
 * slowing down, the lock-out and its end, and the table's bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "admit/lockout.h"

#define T0 1796400000000ull

static void wrong_keys_are_answered_slower_and_slower(void **state)
{
    (void)state;
    static const unsigned want[] = {0, 0, 0, 0, 100, 200, 400, 800, 1600, 2000, 2000};
    for (int n = 0; n <= 10; n++)
        assert_int_equal(lockout_delay_ms(n), want[n]);
    assert_int_equal(lockout_delay_ms(1000000), LOCKOUT_DELAY_MAX_MS);
    assert_int_equal(lockout_delay_ms(-5), 0);
}

static void the_limit_locks_an_address_out_until_its_window_ends(void **state)
{
    (void)state;
    struct lockout *l = lockout_new(5, 60);
    assert_non_null(l);
    int locked = -1;
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(lockout_fail(l, "10.0.0.1", T0 + (uint64_t)i * 1000, &locked), i);
        assert_int_equal(locked, 0);
        assert_int_equal(lockout_blocked(l, "10.0.0.1", T0 + (uint64_t)i * 1000), 0);
    }
    /* the fifth within the window (from the first, T0 + 1 s) locks it out
     * until the window ends (T0 + 61 s) */
    assert_int_equal(lockout_fail(l, "10.0.0.1", T0 + 5000, &locked), 5);
    assert_int_equal(locked, 1);
    assert_int_equal(lockout_blocked(l, "10.0.0.1", T0 + 5000), 56);
    assert_int_equal(lockout_blocked(l, "10.0.0.1", T0 + 60001), 1); /* rounded up */
    /* more wrong keys while locked out do not lock it "again" */
    assert_int_equal(lockout_fail(l, "10.0.0.1", T0 + 6000, &locked), 6);
    assert_int_equal(locked, 0);
    /* others are not touched */
    assert_int_equal(lockout_blocked(l, "10.0.0.2", T0 + 6000), 0);
    /* the window over: free again, counting from one */
    assert_int_equal(lockout_blocked(l, "10.0.0.1", T0 + 61000), 0);
    assert_int_equal(lockout_fail(l, "10.0.0.1", T0 + 61000, &locked), 1);
    assert_int_equal(locked, 0);
    assert_int_equal(lockout_count(l), 1);
    lockout_free(l);
}

static void wrong_keys_spread_over_windows_never_lock(void **state)
{
    (void)state;
    struct lockout *l = lockout_new(3, 10);
    int locked;
    for (int i = 0; i < 20; i++) {
        /* two per 10 s window */
        lockout_fail(l, "::1", T0 + (uint64_t)i * 5001, &locked);
        assert_int_equal(locked, 0);
    }
    assert_int_equal(lockout_blocked(l, "::1", T0 + 100000), 0);
    lockout_free(l);
}

static void a_full_table_drops_the_expired_and_never_forgets_the_guilty(void **state)
{
    (void)state;
    struct lockout *l = lockout_new(2, 60);
    int locked;
    char peer[32];
    /* the guilty one, locked out */
    lockout_fail(l, "192.0.2.66", T0, &locked);
    lockout_fail(l, "192.0.2.66", T0, &locked);
    assert_int_equal(locked, 1);
    for (int i = 1; i < LOCKOUT_MAX_ADDRESSES; i++) {
        snprintf(peer, sizeof(peer), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        lockout_fail(l, peer, T0, &locked);
    }
    assert_int_equal(lockout_count(l), LOCKOUT_MAX_ADDRESSES);
    /* full and nothing expired: a new address is treated as at the limit */
    assert_int_equal(lockout_fail(l, "198.51.100.1", T0 + 1000, &locked), 2);
    assert_int_equal(lockout_count(l), LOCKOUT_MAX_ADDRESSES);
    /* the windows over (the guilty one's lock-out with them): room again */
    assert_int_equal(lockout_fail(l, "198.51.100.1", T0 + 61000, &locked), 1);
    assert_true(lockout_count(l) < 10);
    lockout_free(l);
}

/* An IPv6 client holds a whole /64: guesses from any address in it count
 * together; the next /64 is someone else. */
static void an_ipv6_client_is_counted_by_its_64(void **state)
{
    (void)state;
    struct lockout *l = lockout_new(5, 60);
    int locked = 0;
    char addr[64];
    for (int i = 1; i <= 5; i++) {
        snprintf(addr, sizeof(addr), "2001:db8:1:2::%x", i * 4097);
        lockout_fail(l, addr, 1000, &locked);
    }
    assert_true(locked);
    assert_true(lockout_blocked(l, "2001:db8:1:2:ffff:ffff:ffff:ffff", 2000) > 0);
    assert_int_equal(lockout_blocked(l, "2001:db8:1:3::1", 2000), 0);
    assert_int_equal(lockout_blocked(l, "127.0.0.1", 2000), 0);
    /* IPv4 clients of a dual-stack listener: each its own, not one /64 */
    for (int i = 1; i <= 5; i++) {
        snprintf(addr, sizeof(addr), "::ffff:192.0.2.%d", i);
        lockout_fail(l, addr, 1000, &locked);
        assert_false(locked);
    }
    assert_int_equal(lockout_blocked(l, "::ffff:192.0.2.9", 2000), 0);
    assert_int_equal(lockout_blocked(l, "::1", 2000), 0);
    /* IPv4 addresses and key names stay as they are */
    for (int i = 1; i <= 5; i++) {
        snprintf(addr, sizeof(addr), "10.0.0.%d", i);
        lockout_fail(l, addr, 1000, &locked);
        assert_false(locked);
    }
    lockout_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wrong_keys_are_answered_slower_and_slower),
        cmocka_unit_test(the_limit_locks_an_address_out_until_its_window_ends),
        cmocka_unit_test(wrong_keys_spread_over_windows_never_lock),
        cmocka_unit_test(a_full_table_drops_the_expired_and_never_forgets_the_guilty),
        cmocka_unit_test(an_ipv6_client_is_counted_by_its_64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
