/* Unit tests for src/admit/idem without Redis: claim, wait, replay, abandon,
 * mismatch, expiry and the memory bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "admit/idem.h"
#include "core/log.h"

struct seen {
    int n;
    enum idem_outcome last;
    int status;
    char body[64];
};

static void record(void *ud, enum idem_outcome o, const struct idem_reply *r)
{
    struct seen *s = ud;
    s->n++;
    s->last = o;
    if (r) {
        s->status = r->status;
        snprintf(s->body, sizeof(s->body), "%.*s", (int)r->len, r->body);
    }
}

static const unsigned char H1[IDEM_HASH_LEN] = {1};
static const unsigned char H2[IDEM_HASH_LEN] = {2};

static struct cfg cfg_with(char *max)
{
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s", max, NULL};
    struct cfg c;
    char err[256];
    assert_int_equal(cfg_load(&c, env, NULL, err, sizeof(err)), 0);
    return c;
}

static void first_owns_later_ones_wait_then_replay(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cfg c = cfg_with("AMIBRIDGE_IDEMPOTENCY_MAX=100");
    struct idem *s = idem_new(&loop, &c, NULL);
    struct seen a = {0}, b = {0}, d = {0}, m = {0}, other = {0};
    idem_begin(s, "crm", "k1", H1, 60000, record, &a);
    assert_int_equal(a.last, IDEM_NEW);
    idem_begin(s, "crm", "k1", H1, 60000, record, &b); /* in flight: waits */
    assert_int_equal(b.n, 0);
    idem_begin(s, "crm", "k1", H2, 60000, record, &m);
    assert_int_equal(m.last, IDEM_MISMATCH);
    idem_begin(s, "ops", "k1", H1, 60000, record, &other); /* another API key */
    assert_int_equal(other.last, IDEM_NEW);
    idem_finish(s, "crm", "k1", H1, 200, "{\"id\":\"x\"}", 10);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.last, IDEM_REPLAY);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.body, "{\"id\":\"x\"}");
    idem_begin(s, "crm", "k1", H1, 60000, record, &d);
    assert_int_equal(d.last, IDEM_REPLAY);
    assert_int_equal(idem_count(s), 2);
    idem_close(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cfg_free(&c);
}

static void abandoned_key_passes_to_the_first_waiter(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cfg c = cfg_with("AMIBRIDGE_IDEMPOTENCY_MAX=100");
    struct idem *s = idem_new(&loop, &c, NULL);
    struct seen a = {0}, b = {0}, d = {0}, e = {0};
    idem_begin(s, "", "k", H1, 60000, record, &a);
    idem_begin(s, "", "k", H1, 60000, record, &b);
    idem_begin(s, "", "k", H1, 60000, record, &d);
    idem_abandon(s, "", "k"); /* e.g. the first was rate limited */
    assert_int_equal(b.last, IDEM_NEW);
    assert_int_equal(d.n, 0);
    idem_finish(s, "", "k", H1, 202, "q", 1);
    assert_int_equal(d.last, IDEM_REPLAY);
    assert_int_equal(d.status, 202);
    idem_abandon(s, "", "nothing"); /* unknown: harmless */
    /* abandoned without waiters: the key is free again */
    idem_begin(s, "", "k2", H1, 60000, record, &e);
    idem_abandon(s, "", "k2");
    struct seen f = {0};
    idem_begin(s, "", "k2", H2, 60000, record, &f);
    assert_int_equal(f.last, IDEM_NEW);
    idem_close(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cfg_free(&c);
}

static void memory_is_bounded_by_evicting_the_oldest_finished(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct cfg c = cfg_with("AMIBRIDGE_IDEMPOTENCY_MAX=50");
    log_set_level(LOG_ERROR);
    struct idem *s = idem_new(&loop, &c, NULL);
    for (int i = 0; i < 500; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        struct seen x = {0};
        idem_begin(s, "", k, H1, 60000, record, &x);
        assert_int_equal(x.last, IDEM_NEW);
        idem_finish(s, "", k, H1, 200, "ok", 2);
    }
    assert_true(idem_count(s) <= 51);
    struct seen last = {0}, first = {0};
    idem_begin(s, "", "k499", H1, 60000, record, &last);
    assert_int_equal(last.last, IDEM_REPLAY);
    idem_begin(s, "", "k0", H1, 60000, record, &first); /* evicted */
    assert_int_equal(first.last, IDEM_NEW);
    idem_close(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cfg_free(&c);
}

static void key_syntax(void **state)
{
    (void)state;
    assert_true(idem_key_valid("click-42"));
    assert_true(idem_key_valid("550e8400-e29b-41d4-a716-446655440000"));
    assert_false(idem_key_valid(""));
    assert_false(idem_key_valid("has space"));
    assert_false(idem_key_valid("tab\there"));
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[299] = '\0';
    assert_false(idem_key_valid(big));
    big[255] = '\0';
    assert_true(idem_key_valid(big));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_owns_later_ones_wait_then_replay),
        cmocka_unit_test(abandoned_key_passes_to_the_first_waiter),
        cmocka_unit_test(memory_is_bounded_by_evicting_the_oldest_finished),
        cmocka_unit_test(key_syntax),
    };
    return cmocka_run_group_tests_name("idem", tests, NULL, NULL);
}
