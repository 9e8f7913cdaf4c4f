/* Unit tests for core/backoff: the doubling, its caps and the jitter's
 * range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "core/backoff.h"

static void a_step_starts_at_its_minimum_doubles_and_stops_at_its_maximum(void **state)
{
    (void)state;
    int seen[8], step = 0;
    for (int i = 0; i < 8; i++)
        seen[i] = step = backoff_double(step, 500, 30000);
    static const int want[8] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (int i = 0; i < 8; i++)
        assert_int_equal(seen[i], want[i]);
    /* a step already past the maximum (limits lowered) comes back to it */
    assert_int_equal(backoff_double(90000, 500, 30000), 30000);
    /* no overflow near INT_MAX */
    assert_int_equal(backoff_double(INT_MAX - 1, 1, INT_MAX), INT_MAX);
    assert_int_equal(backoff_double(INT_MAX / 2, 1, INT_MAX), INT_MAX - 1);
}

static void the_nth_attempt_waits_base_times_two_to_the_n_minus_one_capped(void **state)
{
    (void)state;
    assert_int_equal(backoff_nth(1000, 60000, 0), 1000);
    assert_int_equal(backoff_nth(1000, 60000, 1), 1000);
    assert_int_equal(backoff_nth(1000, 60000, 2), 2000);
    assert_int_equal(backoff_nth(1000, 60000, 6), 32000);
    assert_int_equal(backoff_nth(1000, 60000, 7), 60000);
    assert_int_equal(backoff_nth(1000, 60000, UINT_MAX), 60000);
    assert_int_equal(backoff_nth(UINT64_MAX / 2 + 1, UINT64_MAX, 3), UINT64_MAX);
    assert_int_equal(backoff_nth(5000, 1000, 1), 1000); /* a base past the cap */
}

static void jitter_stays_in_its_range_and_spreads(void **state)
{
    (void)state;
    uint64_t lo_seen = UINT64_MAX, hi_seen = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = backoff_jitter(250, 500);
        assert_true(d >= 250 && d <= 500);
        lo_seen = d < lo_seen ? d : lo_seen;
        hi_seen = d > hi_seen ? d : hi_seen;
    }
    /* 10,000 draws over 251 values: both ends' neighbourhoods are reached */
    assert_true(lo_seen < 260 && hi_seen > 490);
    assert_int_equal(backoff_jitter(7, 7), 7);
    uint64_t any = backoff_jitter(0, UINT64_MAX);
    (void)any; /* the whole range: no division by zero */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_step_starts_at_its_minimum_doubles_and_stops_at_its_maximum),
        cmocka_unit_test(the_nth_attempt_waits_base_times_two_to_the_n_minus_one_capped),
        cmocka_unit_test(jitter_stays_in_its_range_and_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
