/* Unit tests for bus/webhook_queue: deliveries queued and attempted on a
 * libuv loop in this process, against real HTTP receivers
 * (support/receiver) and, where the queue is kept in Redis, a real
 * redis-server on a free port. Order and one attempt at a time per
 * subscription, a slow receiver not holding up another, the retry
 * schedule and its cap with one delivery id, giving up after the last
 * attempt, 410 disabling, the queue bound, the Redis list kept in step,
 * and a restart resuming what the list held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ami/message.h"
#include "bus/events.h"
#include "bus/redis.h"
#include "bus/webhook_http.h"
#include "bus/webhook_queue.h"
#include "bus/webhook_sub.h"
#include "core/config.h"
#include "core/netlist.h"
#include "support/receiver.h"
#include "support/redis.h"
#include "support/testenv.h"

#define SECRET    "0123456789abcdef-test-secret"
#define PREFIX    "wq"
#define RECEIVERS 4
#define SLACK_MS  150 /* a late timer on a busy machine */

#define RUN_UNTIL(cond, ms)                                                                        \
    do {                                                                                           \
        uint64_t end_ = uv_now(&loop) + (uint64_t)(ms);                                            \
        while (!(cond) && uv_now(&loop) < end_)                                                    \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
    } while (0)

static struct redis_srv redis; /* one for the program, emptied before each test */
static uv_loop_t loop;
static uv_timer_t wake; /* so that RUN_UNTIL looks at the clock */
static struct cfg cfg;
static struct netlist_net *allow;
static size_t nallow;
static struct wh_http *http;
static struct bus_redis *rconn;
static struct wh_queues *q;
static struct receiver *rvs[RECEIVERS];
static int use_redis;

/* what the queues told their owner */
static int ndisabled;
static char disabled_reason[WH_REASON_MAX];

static void on_disabled(void *ud, const struct wh_conf *c)
{
    (void)ud;
    ndisabled++;
    assert_int_equal(c->enabled, 0);
    snprintf(disabled_reason, sizeof(disabled_reason), "%s", c->reason);
}

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

/* A wh_http, a Redis connection (when the test uses Redis) and the queues:
 * one run of the process. */
static void queues_open(void)
{
    http = wh_http_new(&loop, allow, nallow, cfg.webhook_timeout_ms);
    assert_non_null(http);
    rconn = NULL;
    if (use_redis) {
        char err[256];
        rconn = bus_redis_new(&loop, redis.url, err, sizeof(err));
        assert_non_null(rconn);
        RUN_UNTIL(bus_redis_up(rconn), 5000);
        assert_true(bus_redis_up(rconn));
    }
    q = wh_queues_new(&loop, &cfg, rconn, http, on_disabled, NULL);
    assert_non_null(q);
}

static int rclosed;
static void on_rclosed(void *arg)
{
    (void)arg;
    rclosed = 1;
}

/* The end of that run, in the order the process ends it. */
static void on_part_closed(void *arg)
{
    (*(int *)arg)++;
}

static void queues_shut(void)
{
    int closed = 0;
    wh_queues_close(q, on_part_closed, &closed);
    wh_http_close(http, on_part_closed, &closed);
    if (rconn) {
        rclosed = 0;
        bus_redis_close(rconn, on_rclosed, NULL);
        RUN_UNTIL(rclosed, 5000);
        assert_true(rclosed);
    }
    RUN_UNTIL(closed == 2, 5000);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(closed, 2);
    q = NULL;
    http = NULL;
}

static int group_setup(void **state)
{
    (void)state;
    return redis_start(&redis, 0);
}

static int group_teardown(void **state)
{
    (void)state;
    redis_stop(&redis);
    return 0;
}

static int setup_with(int with_redis)
{
    char err[256];
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge",
                   "AMIBRIDGE_AMI_SECRET=s3cret-value",
                   "AMIBRIDGE_LOG_LEVEL=error",
                   "AMIBRIDGE_REDIS_PREFIX=" PREFIX,
                   "AMIBRIDGE_WEBHOOK_TIMEOUT_MS=300",
                   "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS=100",
                   "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS=200",
                   "AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS=5",
                   NULL};
    if (cfg_load(&cfg, env, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (netlist_parse("127.0.0.0/8", &allow, &nallow, err, sizeof(err)) != 0)
        return -1;
    use_redis = with_redis;
    if (with_redis) {
        const char *flush[] = {"FLUSHALL", NULL};
        free(redis_cli(&redis, flush));
    }
    ndisabled = 0;
    disabled_reason[0] = '\0';
    uv_loop_init(&loop);
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    queues_open();
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_with(0);
}

static int setup_redis(void **state)
{
    (void)state;
    return setup_with(1);
}

static int teardown(void **state)
{
    (void)state;
    queues_shut();
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    for (int i = 0; i < RECEIVERS; i++) {
        receiver_stop(rvs[i]);
        rvs[i] = NULL;
    }
    free(allow);
    allow = NULL;
    cfg_free(&cfg);
    return 0;
}

static struct receiver *receiver(int i)
{
    if (!rvs[i])
        rvs[i] = receiver_start();
    assert_non_null(rvs[i]);
    return rvs[i];
}

/* Hold a subscription to every event, delivered to receiver `r`. */
static struct wh_sub *subscribe(const char *id, struct receiver *r, int load)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", receiver_port(r));
    json_t *o = json_pack("{s:s,s:s,s:[s],s:s,s:b}", "id", id, "url", url, "events", "*", "secret",
                          SECRET, "enabled", 1);
    struct wh_conf c = {0};
    struct wh_problem pb = {{0}, {0}};
    if (wh_conf_apply(&c, o, WH_STORED, allow, nallow, &pb) != 0)
        fail_msg("%s: %s", pb.field, pb.detail);
    json_decref(o);
    struct wh_sub *s = wh_sub_add(q, &c, load);
    assert_non_null(s);
    wh_conf_free(&c);
    return s;
}

/* An AMI event numbered `n`, as the bus hands it to its sinks. */
static void emit(const char *name, int n)
{
    char json[128];
    snprintf(json, sizeof(json), "{\"event\":\"%s\",\"n\":%d}", name, n);
    struct ami_msg *m = ami_msg_new();
    assert_non_null(m);
    ami_msg_add(m, "Event", name);
    struct bus_event e = {.json = json, .len = strlen(json), .msg = m, .seq = (uint64_t)n};
    snprintf(e.name, sizeof(e.name), "%s", name);
    wh_queues_event(q, &e);
    ami_msg_free(m);
}

/* The "n" of request i's body. */
static int body_n(struct receiver *r, size_t i)
{
    struct receiver_req rq;
    assert_int_equal(receiver_get(r, i, &rq), 0);
    json_t *o = json_loads(rq.body, 0, NULL);
    int n = o ? (int)json_integer_value(json_object_get(o, "n")) : -1;
    json_decref(o);
    receiver_req_free(&rq);
    return n;
}

static json_int_t stat_of(const struct wh_sub *s, const char *key)
{
    json_t *o = wh_sub_stats_json(s);
    assert_non_null(o);
    json_int_t v = json_is_boolean(json_object_get(o, key))
                       ? json_is_true(json_object_get(o, key))
                       : json_integer_value(json_object_get(o, key));
    json_decref(o);
    return v;
}

static long list_len(const char *id)
{
    char key[128];
    snprintf(key, sizeof(key), PREFIX ":webhooks:queue:%s", id);
    return redis_llen(&redis, key);
}

static void deliveries_go_in_order_one_at_a_time_over_one_connection(void **state)
{
    (void)state;
    struct receiver *r = receiver(0);
    receiver_set_delay_ms(r, 30);
    struct wh_sub *s = subscribe("inorder", r, 0);
    for (int i = 0; i < 10; i++)
        emit("UserEvent", i);
    /* each waits for the one before it: one in flight, the rest queued */
    struct wh_queues_stats st;
    wh_queues_stats(q, &st);
    assert_int_equal(st.queued, 10);
    assert_int_equal(st.sending, 1);
    RUN_UNTIL(stat_of(s, "delivered") == 10, 5000);
    assert_int_equal(stat_of(s, "delivered"), 10);
    assert_int_equal(stat_of(s, "queued"), 0);
    assert_int_equal(receiver_count(r), 10);
    assert_int_equal(receiver_connections(r), 1);
    char seen[10][WH_DELIVERY_ID_LEN + 1];
    double prev = 0;
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(body_n(r, i), (int)i);
        struct receiver_req rq;
        assert_int_equal(receiver_get(r, i, &rq), 0);
        assert_string_equal(receiver_req_header(&rq, "X-Amibridge-Attempt"), "1");
        snprintf(seen[i], sizeof(seen[i]), "%s", receiver_req_header(&rq, "webhook-id"));
        assert_int_equal(strlen(seen[i]), WH_DELIVERY_ID_LEN);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(seen[k], seen[i]);
        /* the next request came only after the answer to this one (30 ms) */
        if (i > 0 && rq.t - prev < 0.025)
            fail_msg("request %zu came %.3f s after the one before", i, rq.t - prev);
        prev = rq.t;
        receiver_req_free(&rq);
    }
}

static void a_silent_receiver_does_not_hold_up_another_subscription(void **state)
{
    (void)state;
    struct receiver *slow = receiver(0), *fast = receiver(1);
    receiver_set_silent(slow, 1);
    struct wh_sub *a = subscribe("silent", slow, 0);
    struct wh_sub *b = subscribe("healthy", fast, 0);
    double t0 = testenv_now();
    for (int i = 0; i < 5; i++)
        emit("Hangup", i);
    RUN_UNTIL(stat_of(b, "delivered") == 5, 5000);
    assert_int_equal(stat_of(b, "delivered"), 5);
    /* well before the silent one's attempt times out (300 ms) */
    assert_true(testenv_now() - t0 < 0.25);
    /* while the silent one still waits for its first answer */
    RUN_UNTIL(receiver_count(slow) == 1, 1000);
    assert_int_equal(receiver_count(slow), 1);
    assert_int_equal(stat_of(a, "delivered"), 0);
    assert_int_equal(stat_of(a, "queued"), 5);
    struct wh_queues_stats st;
    wh_queues_stats(q, &st);
    assert_int_equal(st.sending, 1);
}

static void failed_attempts_retry_on_the_capped_backoff_with_one_delivery_id(void **state)
{
    (void)state;
    struct receiver *r = receiver(0);
    static const int script[] = {503, 500, 429, 503, 200};
    receiver_script(r, script, 5);
    struct wh_sub *s = subscribe("retry", r, 0);
    emit("Hangup", 1);
    RUN_UNTIL(stat_of(s, "delivered") == 1, 5000);
    assert_int_equal(stat_of(s, "delivered"), 1);
    assert_int_equal(receiver_count(r), 5);
    /* base 100 ms, cap 200 ms; each wait is 50-100 % of its step */
    static const int lo[] = {50, 100, 100, 100}, hi[] = {100, 200, 200, 200};
    struct receiver_req rq[5];
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(receiver_get(r, i, &rq[i]), 0);
    for (size_t i = 0; i < 5; i++) {
        char want[8];
        snprintf(want, sizeof(want), "%zu", i + 1);
        assert_string_equal(receiver_req_header(&rq[i], "X-Amibridge-Attempt"), want);
        assert_string_equal(receiver_req_header(&rq[i], "webhook-id"),
                            receiver_req_header(&rq[0], "webhook-id"));
        assert_string_equal(rq[i].body, rq[0].body);
        if (i == 0)
            continue;
        int gap = (int)((rq[i].t - rq[i - 1].t) * 1000.0);
        if (gap < lo[i - 1] - 5 || gap > hi[i - 1] + SLACK_MS)
            fail_msg("attempt %zu came %d ms after the one before; want %d-%d ms", i + 1, gap,
                     lo[i - 1], hi[i - 1]);
    }
    for (size_t i = 0; i < 5; i++)
        receiver_req_free(&rq[i]);
    /* the log, newest first */
    json_t *log = wh_sub_log_json(s);
    assert_int_equal(json_array_size(log), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "result")),
                        "delivered");
    for (size_t i = 1; i < 5; i++) {
        json_t *e = json_array_get(log, i);
        assert_string_equal(json_string_value(json_object_get(e, "result")), "retrying");
        assert_int_equal(json_integer_value(json_object_get(e, "attempt")), 5 - (int)i);
        assert_int_equal(json_integer_value(json_object_get(e, "status")), script[4 - i]);
    }
    json_decref(log);
}

static void a_delivery_fails_after_the_last_attempt_and_the_next_one_goes(void **state)
{
    (void)state;
    cfg.webhook_max_attempts = 3;
    struct receiver *r = receiver(0);
    static const int script[] = {500, 500, 500};
    receiver_script(r, script, 3);
    struct wh_sub *s = subscribe("giveup", r, 0);
    emit("Hangup", 1);
    emit("Hangup", 2);
    RUN_UNTIL(stat_of(s, "delivered") == 1, 5000);
    assert_int_equal(stat_of(s, "failed"), 1);
    assert_int_equal(stat_of(s, "delivered"), 1);
    assert_int_equal(stat_of(s, "queued"), 0);
    /* three attempts of the first, then the second */
    assert_int_equal(receiver_count(r), 4);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(body_n(r, i), 1);
    assert_int_equal(body_n(r, 3), 2);
    json_t *log = wh_sub_log_json(s);
    json_t *failed = json_array_get(log, 1);
    assert_string_equal(json_string_value(json_object_get(failed, "result")), "failed");
    assert_int_equal(json_integer_value(json_object_get(failed, "attempt")), 3);
    const char *err = json_string_value(json_object_get(failed, "error"));
    assert_non_null(err);
    assert_true(!strncmp(err, "HTTP 500", 8));
    json_decref(log);
    /* and no fourth attempt of it later */
    RUN_UNTIL(0, 500);
    assert_int_equal(receiver_count(r), 4);
}

static void a_410_disables_the_subscription_and_drops_what_waits(void **state)
{
    (void)state;
    struct receiver *r = receiver(0);
    receiver_set_status(r, 410);
    receiver_set_delay_ms(r, 50);
    struct wh_sub *s = subscribe("gone", r, 0);
    for (int i = 0; i < 3; i++)
        emit("Hangup", i);
    RUN_UNTIL(ndisabled == 1, 5000);
    assert_int_equal(ndisabled, 1);
    assert_non_null(strstr(disabled_reason, "410 Gone"));
    assert_int_equal(wh_sub_conf(s)->enabled, 0);
    assert_int_equal(stat_of(s, "queued"), 0);
    assert_int_equal(stat_of(s, "dropped"), 3);
    struct wh_queues_stats st;
    wh_queues_stats(q, &st);
    assert_int_equal(st.disabled, 1);
    /* no retry, and later events are not queued */
    emit("Hangup", 9);
    assert_int_equal(stat_of(s, "queued"), 0);
    RUN_UNTIL(0, 400);
    assert_int_equal(receiver_count(r), 1);
    assert_int_equal(ndisabled, 1);
}

static void past_the_bound_new_deliveries_are_dropped_and_the_oldest_kept(void **state)
{
    (void)state;
    cfg.webhook_queue = 3;
    struct receiver *r = receiver(0);
    receiver_set_delay_ms(r, 100);
    struct wh_sub *s = subscribe("bounded", r, 0);
    for (int i = 0; i < 6; i++)
        emit("Hangup", i);
    assert_int_equal(stat_of(s, "queued"), 3);
    assert_int_equal(stat_of(s, "dropped"), 3);
    RUN_UNTIL(stat_of(s, "delivered") == 3, 5000);
    assert_int_equal(stat_of(s, "delivered"), 3);
    assert_int_equal(receiver_count(r), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(body_n(r, i), (int)i);
    /* room again */
    emit("Hangup", 7);
    RUN_UNTIL(stat_of(s, "delivered") == 4, 5000);
    assert_int_equal(body_n(r, 3), 7);
}

static void with_redis_a_delivery_is_listed_before_its_attempt_until_delivered(void **state)
{
    (void)state;
    struct receiver *r = receiver(0);
    receiver_set_delay_ms(r, 100);
    struct wh_sub *s = subscribe("listed", r, 1);
    RUN_UNTIL(wh_sub_loaded(s), 5000);
    assert_true(wh_sub_loaded(s));
    emit("Hangup", 1);
    emit("Hangup", 2);
    RUN_UNTIL(receiver_count(r) >= 1, 5000);
    /* the attempt waited for Redis to take it: both are listed now */
    assert_int_equal(list_len("listed"), 2);
    RUN_UNTIL(stat_of(s, "delivered") == 2, 5000);
    assert_int_equal(stat_of(s, "delivered"), 2);
    RUN_UNTIL(bus_redis_pending(rconn) == 0, 2000);
    assert_int_equal(list_len("listed"), 0);
}

static void a_restart_resumes_what_the_redis_list_held_with_the_same_ids(void **state)
{
    (void)state;
    struct receiver *r = receiver(0);
    receiver_set_status(r, 503);
    cfg.webhook_retry_base_ms = cfg.webhook_retry_max_ms = 60000; /* no retry in this run */
    struct wh_sub *s = subscribe("resume", r, 1);
    RUN_UNTIL(wh_sub_loaded(s), 5000);
    for (int i = 0; i < 4; i++)
        emit("Hangup", i);
    RUN_UNTIL(receiver_count(r) == 1 && stat_of(s, "retrying"), 5000);
    assert_int_equal(list_len("resume"), 4);
    /* what the list holds, in order */
    const char *lrange[] = {"LRANGE", PREFIX ":webhooks:queue:resume", "0", "-1", NULL};
    char *out = redis_cli(&redis, lrange);
    assert_non_null(out);
    char ids[4][WH_DELIVERY_ID_LEN + 1];
    size_t n = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_true(n < 4);
        snprintf(ids[n], sizeof(ids[n]), "%s", json_string_value(json_object_get(o, "id")));
        json_t *body = json_loads(json_string_value(json_object_get(o, "body")), 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(body, "n")), (json_int_t)n);
        json_decref(body);
        json_decref(o);
        n++;
    }
    free(out);
    assert_int_equal(n, 4);

    /* the process ends with them pending; an unreadable entry joins them */
    queues_shut();
    const char *junk[] = {"RPUSH", PREFIX ":webhooks:queue:resume", "{not json", NULL};
    free(redis_cli(&redis, junk));
    receiver_clear(r);
    receiver_set_status(r, 200);
    cfg.webhook_retry_base_ms = 100;
    cfg.webhook_retry_max_ms = 200;
    queues_open();
    s = subscribe("resume", r, 1);
    RUN_UNTIL(stat_of(s, "delivered") == 4, 5000);
    assert_int_equal(stat_of(s, "delivered"), 4);
    assert_int_equal(receiver_count(r), 4);
    for (size_t i = 0; i < 4; i++) {
        struct receiver_req rq;
        assert_int_equal(receiver_get(r, i, &rq), 0);
        assert_string_equal(receiver_req_header(&rq, "webhook-id"), ids[i]);
        receiver_req_free(&rq);
        assert_int_equal(body_n(r, i), (int)i);
    }
    /* the four leave the list; the unreadable one is left for a person */
    RUN_UNTIL(bus_redis_pending(rconn) == 0, 2000);
    assert_int_equal(list_len("resume"), 1);
}

static void removing_a_subscription_to_forget_it_deletes_its_list(void **state)
{
    (void)state;
    struct receiver *r = receiver(0);
    receiver_set_silent(r, 1);
    struct wh_sub *s = subscribe("forget", r, 1);
    RUN_UNTIL(wh_sub_loaded(s), 5000);
    for (int i = 0; i < 3; i++)
        emit("Hangup", i);
    RUN_UNTIL(receiver_count(r) == 1, 5000);
    assert_int_equal(list_len("forget"), 3);
    wh_sub_remove(s, 1);
    assert_null(wh_queues_find(q, "forget"));
    RUN_UNTIL(bus_redis_pending(rconn) == 0, 2000);
    assert_int_equal(list_len("forget"), 0);
    assert_int_equal(wh_queues_count(q), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(deliveries_go_in_order_one_at_a_time_over_one_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_silent_receiver_does_not_hold_up_another_subscription,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            failed_attempts_retry_on_the_capped_backoff_with_one_delivery_id, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_delivery_fails_after_the_last_attempt_and_the_next_one_goes, setup, teardown),
        cmocka_unit_test_setup_teardown(a_410_disables_the_subscription_and_drops_what_waits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            past_the_bound_new_deliveries_are_dropped_and_the_oldest_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(
            with_redis_a_delivery_is_listed_before_its_attempt_until_delivered, setup_redis,
            teardown),
        cmocka_unit_test_setup_teardown(
            a_restart_resumes_what_the_redis_list_held_with_the_same_ids, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(removing_a_subscription_to_forget_it_deletes_its_list,
                                        setup_redis, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
