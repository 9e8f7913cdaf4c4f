/* Unit test of bus/lease's fence script against a real redis-server: a
 * batch of events whose stream write fails (the stream key of another
 * type, or Redis out of memory, where XADD is refused and PUBLISH is not)
 * still reaches the channel subscribers, every event of it, as each event
 * did when it went alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <string.h>
#include <sys/time.h>

#include "bus/lease.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_failing_stream_write_leaves_the_batch_published),
        cmocka_unit_test(a_batch_publishes_and_appends_every_event_in_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
