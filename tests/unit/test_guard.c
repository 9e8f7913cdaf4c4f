/* Unit tests for src/admit/guard: the token bucket and the in-flight cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "admit/guard.h"
#include "core/log.h"

static struct cfg make_cfg(char **env)
{
    struct cfg c;
    char err[256];
    assert_int_equal(cfg_load(&c, env, NULL, err, sizeof(err)), 0);
    return c;
}

static void bucket_gives_the_burst_then_the_rate(void **state)
{
    (void)state;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s",
                   "AMIBRIDGE_CALLS_PER_SECOND=2", "AMIBRIDGE_CALLS_BURST=3", NULL};
    struct cfg c = make_cfg(env);
    struct guard *g = guard_new(&c, 1);
    struct guard_info gi;
    uint64_t t = 1000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(guard_take(g, NULL, t, &gi), 0);
        assert_int_equal(gi.limit, 3);
        assert_int_equal(gi.remaining, 2 - i);
    }
    assert_int_equal(guard_take(g, NULL, t, &gi), -EAGAIN);
    assert_int_equal(gi.retry_after_s, 1); /* half a second at 2/s, rounded up */
    assert_int_equal(guard_take(g, NULL, t + 499, &gi), -EAGAIN);
    assert_int_equal(guard_take(g, NULL, t + 500, &gi), 0);
    /* a long pause refills to the burst, not beyond */
    assert_int_equal(guard_take(g, NULL, t + 100000, &gi), 0);
    assert_int_equal(gi.remaining, 2);
    guard_free(g);
    cfg_free(&c);
}

static void keys_have_their_own_buckets_and_limits(void **state)
{
    (void)state;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u",
                   "AMIBRIDGE_AMI_SECRET=s",
                   "AMIBRIDGE_API_KEYS=a:tok-a-0123456789abcd:call b:tok-b-0123456789abcd:call",
                   "AMIBRIDGE_CALLS_BURST=1",
                   "AMIBRIDGE_CALLS_PER_SECOND=0.1",
                   NULL};
    struct cfg c = make_cfg(env);
    c.keys[1].calls_burst = 5; /* as the config file would set it */
    struct guard *g = guard_new(&c, 1);
    struct guard_info gi;
    assert_int_equal(guard_take(g, &c.keys[0], 0, &gi), 0);
    assert_int_equal(guard_take(g, &c.keys[0], 0, &gi), -EAGAIN);
    assert_int_equal(gi.retry_after_s, 10);
    for (int i = 0; i < 5; i++)
        assert_int_equal(guard_take(g, &c.keys[1], 0, &gi), 0);
    assert_int_equal(guard_take(g, &c.keys[1], 0, &gi), -EAGAIN);
    assert_int_equal(guard_take(g, NULL, 0, &gi), 0); /* open mode has its own */
    guard_free(g);
    cfg_free(&c);
}

static void in_flight_cap_per_server(void **state)
{
    (void)state;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s",
                   "AMIBRIDGE_CALLS_MAX_INFLIGHT=2", NULL};
    struct cfg c = make_cfg(env);
    struct guard *g = guard_new(&c, 2);
    assert_int_equal(guard_acquire(g, 0), 0);
    assert_int_equal(guard_acquire(g, 0), 0);
    assert_int_equal(guard_acquire(g, 0), -EBUSY);
    assert_int_equal(guard_acquire(g, 1), 0);
    assert_int_equal(guard_inflight(g, 0), 2);
    guard_release(g, 0);
    assert_int_equal(guard_acquire(g, 0), 0);
    guard_release(g, 1);
    guard_release(g, 1); /* never below zero */
    assert_int_equal(guard_inflight(g, 1), 0);
    assert_int_equal(guard_acquire(g, 5), -EINVAL);
    guard_free(g);
    cfg_free(&c);
}

/* A call refused for another reason (in-flight cap) gets its token back. */
static void refund_returns_the_token(void **state)
{
    (void)state;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s",
                   "AMIBRIDGE_CALLS_PER_SECOND=1", "AMIBRIDGE_CALLS_BURST=2", NULL};
    struct cfg c = make_cfg(env);
    struct guard *g = guard_new(&c, 1);
    struct guard_info gi;
    assert_int_equal(guard_take(g, NULL, 1000, &gi), 0);
    assert_int_equal(gi.remaining, 1);
    guard_refund(g, NULL, &gi);
    assert_int_equal(gi.remaining, 2);
    guard_refund(g, NULL, &gi); /* never beyond the burst */
    assert_int_equal(gi.remaining, 2);
    assert_int_equal(guard_take(g, NULL, 1000, &gi), 0);
    assert_int_equal(guard_take(g, NULL, 1000, &gi), 0);
    assert_int_equal(guard_take(g, NULL, 1000, &gi), -EAGAIN);
    guard_free(g);
    cfg_free(&c);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_gives_the_burst_then_the_rate),
        cmocka_unit_test(keys_have_their_own_buckets_and_limits),
        cmocka_unit_test(in_flight_cap_per_server),
        cmocka_unit_test(refund_returns_the_token),
    };
    return cmocka_run_group_tests_name("guard", tests, NULL, NULL);
}
