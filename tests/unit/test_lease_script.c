/* Unit test of bus/lease's fence script against a real redis-server: a
 * batch of events whose stream write fails (the stream key of another
 * type, or Redis out of memory, where XADD is refused and PUBLISH is not)
 * still reaches the channel subscribers, every event of it, as each event
 * did when it went alone. And a fenced publisher on that Redis sends the
 * last events of a turn at once, without waiting for other I/O to wake the
 * loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "ami/message.h"
#include "bus/events.h"
#include "bus/lease.h"
#include "bus/publisher.h"
#include "bus/redis.h"
#include "core/config.h"
#include "support/redis.h"

static struct redis_srv redis;

static int setup(void **state)
{
    (void)state;
    return redis_start(&redis, 0);
}

static int teardown(void **state)
{
    (void)state;
    redis_stop(&redis);
    return 0;
}

static redisContext *connect_to(void)
{
    redisContext *c = redisConnect("127.0.0.1", redis.port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

/* Messages the subscriber gets within a short wait. */
static int count_messages(redisContext *sub)
{
    struct timeval tv = {0, 200000};
    redisSetTimeout(sub, tv);
    int n = 0;
    redisReply *r;
    while (redisGetReply(sub, (void **)&r) == REDIS_OK) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            !strcmp(r->element[0]->str, "message"))
            n++;
        freeReplyObject(r);
    }
    return n;
}

static void a_failing_stream_write_leaves_the_batch_published(void **state)
{
    (void)state;
    redisContext *c = connect_to(), *sub = connect_to();
    redisReply *r = redisCommand(c, "SET lease tok");
    freeReplyObject(r);
    r = redisCommand(c, "SET events-stream not-a-stream"); /* XADD: WRONGTYPE */
    freeReplyObject(r);
    r = redisCommand(sub, "SUBSCRIBE ch");
    freeReplyObject(r);
    const char *argv[] = {"EVAL", bus_lease_fence_script,
                          "1",    "lease",
                          "tok",  "events-stream",
                          "1000", "ch",
                          "e1",   "ch",
                          "e2",   "ch",
                          "e3"};
    r = redisCommandArgv(c, 13, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR); /* the stream write is still reported */
    freeReplyObject(r);
    assert_int_equal(count_messages(sub), 3);
    redisFree(sub);
    redisFree(c);
}

static void a_batch_publishes_and_appends_every_event_in_order(void **state)
{
    (void)state;
    redisContext *c = connect_to();
    redisReply *r = redisCommand(c, "SET lease tok");
    freeReplyObject(r);
    const char *argv[] = {
        "EVAL", bus_lease_fence_script, "1", "lease", "tok", "s2", "1000", "ch", "e1", "ch", "e2"};
    r = redisCommandArgv(c, 11, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    r = redisCommand(c, "XRANGE s2 - +");
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->element[1]->element[1]->str, "e1");
    assert_string_equal(r->element[1]->element[1]->element[1]->str, "e2");
    freeReplyObject(r);
    /* not ours: nothing */
    argv[4] = "other";
    r = redisCommandArgv(c, 11, argv, NULL);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
    redisFree(c);
}

static void lease_changed(void *ud, enum bus_lease_change change)
{
    bus_publisher_leader(ud, change);
}

static void publish_one(uv_timer_t *t)
{
    struct ami_msg *m = ami_msg_new();
    assert_non_null(m);
    assert_int_equal(ami_msg_add(m, "Event", "Hangup"), 0);
    bus_publish_ami(t->data, 0, m);
    ami_msg_free(m);
}

static int closed;

static void count_closed(void *arg)
{
    (void)arg;
    closed++;
}

/* An event pushed from a timer (a held burst's last chunk is released so)
 * waits for the end of the turn to go out in a batch; the loop must not
 * sleep in poll meanwhile: the next other wake-up here is the lease's
 * renewal, seconds away. */
static void a_fenced_publisher_sends_a_timers_events_without_waiting_for_io(void **state)
{
    (void)state;
    char url[96], errbuf[256];
    snprintf(url, sizeof(url), "AMIBRIDGE_REDIS_URL=%s", redis.url);
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s3cret-value", url,
                   "AMIBRIDGE_LEADER_TTL_MS=30000", NULL};
    struct cfg cfg;
    assert_int_equal(cfg_load(&cfg, env, NULL, errbuf, sizeof(errbuf)), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct bus_redis *rp = bus_redis_new(&loop, cfg.redis_url, errbuf, sizeof(errbuf));
    struct bus_redis *rl = bus_redis_new(&loop, cfg.redis_url, errbuf, sizeof(errbuf));
    assert_non_null(rp);
    assert_non_null(rl);
    struct bus_publisher *pub = bus_publisher_new(&loop, &cfg, rp);
    assert_non_null(pub);
    bus_redis_set_state_cb(rp, bus_publisher_redis_state, pub);
    struct bus_lease *lease = bus_lease_new(&loop, &cfg, rl, lease_changed, pub);
    assert_non_null(lease);
    bus_redis_set_state_cb(rl, bus_lease_redis_state, lease);
    bus_publisher_set_lease(pub, lease);
    struct bus *bus = bus_new(&cfg);
    assert_non_null(bus);
    assert_int_equal(bus_add_sink(bus, bus_publisher_sink, pub), 0);
    uint64_t until = uv_hrtime() + 5000000000ULL;
    while (!bus_lease_is_leader(lease) && uv_hrtime() < until)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(bus_lease_is_leader(lease));
    struct bus_publisher_stats st;
    bus_publisher_stats(pub, &st);
    uint64_t before = st.published;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = bus;
    uv_timer_start(&t, publish_one, 0, 0);
    uint64_t start = uv_hrtime();
    do {
        uv_run(&loop, UV_RUN_ONCE);
        bus_publisher_stats(pub, &st);
    } while (st.published == before && uv_hrtime() - start < 20000000000ULL);
    uint64_t took_ms = (uv_hrtime() - start) / 1000000;
    assert_int_equal(st.published, before + 1);
    if (took_ms >= 2000)
        fail_msg("the event waited %llu ms for the loop to wake", (unsigned long long)took_ms);
    uv_close((uv_handle_t *)&t, NULL);
    bus_publisher_close(pub, count_closed, NULL);
    bus_redis_close(rp, count_closed, NULL);
    bus_lease_close(lease, count_closed, NULL);
    bus_redis_close(rl, count_closed, NULL);
    while (closed < 4)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    bus_free(bus);
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_failing_stream_write_leaves_the_batch_published),
        cmocka_unit_test(a_batch_publishes_and_appends_every_event_in_order),
        cmocka_unit_test(a_fenced_publisher_sends_a_timers_events_without_waiting_for_io),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
