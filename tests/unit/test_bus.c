/* Unit tests for bus/events: the filters, one sequence per server without
 * gaps, the encoding every outlet shares, the replay ring and its bound,
 * and a follower's injected events (the seq a new leader goes on from). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ami/message.h"
#include "bus/events.h"
#include "core/config.h"
#include "support/follower_rule.h"

struct seen {
    size_t n;
    uint64_t seq[64];
    char name[64][BUS_EVENT_NAME_MAX];
    int remote[64];
};

static void sink(void *ud, struct bus_event *e)
{
    struct seen *s = ud;
    if (s->n < 64) {
        s->seq[s->n] = e->seq;
        snprintf(s->name[s->n], BUS_EVENT_NAME_MAX, "%s", e->name);
        s->remote[s->n] = e->remote;
    }
    s->n++;
}

static struct cfg cfg;

static int setup(void **state)
{
    (void)state;
    char errbuf[256];
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s3cret-value",
                   "AMIBRIDGE_EVENTS_EXCLUDE=VarSet RTCP*", "AMIBRIDGE_SSE_REPLAY=4", NULL};
    if (cfg_load(&cfg, env, NULL, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s\n", errbuf);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cfg_free(&cfg);
    return 0;
}

static void publish(struct bus *b, const char *name, const char *channel)
{
    struct ami_msg *m = ami_msg_new();
    assert_non_null(m);
    assert_int_equal(ami_msg_add(m, "Event", name), 0);
    assert_int_equal(ami_msg_add(m, "Channel", channel), 0);
    bus_publish_ami(b, 0, m);
    ami_msg_free(m);
}

static void filtered_events_take_no_number_and_the_rest_are_encoded_once(void **state)
{
    (void)state;
    struct bus *b = bus_new(&cfg);
    assert_non_null(b);
    struct seen s = {0};
    assert_int_equal(bus_add_sink(b, sink, &s), 0);
    publish(b, "Newchannel", "PJSIP/201-00000001");
    publish(b, "VarSet", "PJSIP/201-00000001");
    publish(b, "RTCPSent", "PJSIP/201-00000001");
    publish(b, "Hangup", "PJSIP/201-00000001");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.seq[0], 1);
    assert_int_equal(s.seq[1], 2); /* no gap for what the filters dropped */
    assert_string_equal(s.name[1], "Hangup");
    assert_int_equal(bus_last_seq(b, 0), 2);
    struct bus_stats st;
    bus_stats(b, &st);
    assert_int_equal(st.received, 4);
    assert_int_equal(st.filtered, 2);
    assert_int_equal(st.delivered, 2);
    bus_free(b);
}

static struct seen replayed;
static char last_json[512];

static void keep(void *ud, struct bus_event *e)
{
    sink(ud, e);
    snprintf(last_json, sizeof(last_json), "%.*s", (int)e->len, e->json);
}

static void the_ring_replays_what_came_after_and_says_where_it_begins(void **state)
{
    (void)state;
    struct bus *b = bus_new(&cfg);
    assert_non_null(b);
    char ch[32];
    for (int i = 1; i <= 6; i++) {
        snprintf(ch, sizeof(ch), "Local/%d@demo-0001;1", i);
        publish(b, "Newchannel", ch);
    }
    /* AMIBRIDGE_SSE_REPLAY=4: events 3..6 are kept */
    memset(&replayed, 0, sizeof(replayed));
    assert_int_equal(bus_replay(b, 0, 4, keep, &replayed), 3);
    assert_int_equal(replayed.n, 2);
    assert_int_equal(replayed.seq[0], 5);
    assert_int_equal(replayed.seq[1], 6);
    /* the encoding every outlet shares */
    json_t *o = json_loads(last_json, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "server")), "default");
    assert_string_equal(json_string_value(json_object_get(o, "event")), "Newchannel");
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 6);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "fields"), "Channel")),
                        "Local/6@demo-0001;1");
    json_decref(o);
    /* from before the ring: all it has, and its first seq tells the gap */
    memset(&replayed, 0, sizeof(replayed));
    assert_int_equal(bus_replay(b, 0, 0, keep, &replayed), 3);
    assert_int_equal(replayed.n, 4);
    /* nothing newer */
    memset(&replayed, 0, sizeof(replayed));
    bus_replay(b, 0, 6, keep, &replayed);
    assert_int_equal(replayed.n, 0);
    bus_free(b);
}

static void a_follower_streams_what_the_leader_published_and_goes_on_from_it(void **state)
{
    (void)state;
    struct bus *b = bus_new(&cfg);
    assert_non_null(b);
    struct seen s = {0};
    assert_int_equal(bus_add_sink(b, sink, &s), 0);
    bus_set_follower(b, 1);
    /* its own AMI events are the leader's to publish */
    publish(b, "Newchannel", "PJSIP/201-00000001");
    assert_int_equal(s.n, 0);
    const char *ev = "{\"server\":\"default\",\"event\":\"Hangup\",\"seq\":41,\"time\":\"x\","
                     "\"fields\":{\"Event\":\"Hangup\",\"Channel\":\"PJSIP/201-00000001\"}}";
    bus_inject(b, ev, strlen(ev));
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 41);
    assert_int_equal(s.remote[0], 1);
    /* not the JSON of an event, or another server's: nothing */
    const char *other = "{\"server\":\"nope\",\"event\":\"Hangup\",\"seq\":42,\"fields\":{}}";
    bus_inject(b, other, strlen(other));
    bus_inject(b, "not json", 8);
    assert_int_equal(s.n, 1);
    /* leading now: the next seq follows the highest seen */
    bus_set_follower(b, 0);
    publish(b, "Newchannel", "PJSIP/202-00000002");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.seq[1], 42);
    assert_int_equal(s.remote[1], 0);
    bus_free(b);
}

/* The last event a sink saw: its JSON and its fields. */
struct last {
    char *json;
    struct ami_msg *fields;
};

static void keep_last(void *ud, struct bus_event *e)
{
    struct last *l = ud;
    free(l->json);
    ami_msg_free(l->fields);
    l->json = strdup(e->json);
    l->fields = ami_msg_dup(e->msg);
}

/* The same keys and values, in the same order. */
static void assert_same_fields(const struct ami_msg *got, const struct ami_msg *want)
{
    assert_int_equal(ami_msg_count(got), ami_msg_count(want));
    for (size_t i = 0; i < ami_msg_count(want); i++) {
        assert_string_equal(ami_msg_key_at(got, i), ami_msg_key_at(want, i));
        assert_int_equal(ami_msg_value_len_at(got, i), ami_msg_value_len_at(want, i));
        assert_memory_equal(ami_msg_value_at(got, i), ami_msg_value_at(want, i),
                            ami_msg_value_len_at(want, i));
    }
}

/* Publish `m` on a leader's bus, read its JSON back on a follower's: the
 * follower's fields are what jansson makes of that JSON. */
static void round_trip(struct ami_msg *m)
{
    struct bus *lead = bus_new(&cfg), *follow = bus_new(&cfg);
    assert_non_null(lead);
    assert_non_null(follow);
    struct last a = {0}, b = {0};
    assert_int_equal(bus_add_sink(lead, keep_last, &a), 0);
    assert_int_equal(bus_add_sink(follow, keep_last, &b), 0);
    bus_set_follower(follow, 1);
    bus_publish_ami(lead, 0, m);
    assert_non_null(a.json);
    bus_inject(follow, a.json, strlen(a.json));
    assert_non_null(b.fields);
    assert_string_equal(b.json, a.json);
    json_t *o = json_loads(a.json, 0, NULL);
    struct ami_msg *want = NULL;
    struct ami_error err;
    assert_int_equal(ami_msg_from_json(json_object_get(o, "fields"), &want, &err), 0);
    assert_same_fields(b.fields, want);
    ami_msg_free(want);
    json_decref(o);
    free(a.json);
    free(b.json);
    ami_msg_free(a.fields);
    ami_msg_free(b.fields);
    bus_free(lead);
    bus_free(follow);
}

static void a_follower_reads_the_fields_as_jansson_does_with_or_without_escapes(void **state)
{
    (void)state;
    /* plain text: read without jansson; repeated keys, an empty value */
    struct ami_msg *m = ami_msg_new();
    assert_non_null(m);
    assert_int_equal(ami_msg_add(m, "Event", "UserEvent"), 0);
    assert_int_equal(ami_msg_add(m, "Channel", "PJSIP/201-00000001"), 0);
    assert_int_equal(ami_msg_add(m, "Variable", "a=1"), 0);
    assert_int_equal(ami_msg_add(m, "Variable", "b=[2],{3}:\"x"), 0);
    assert_int_equal(ami_msg_add(m, "Value", ""), 0);
    round_trip(m);
    /* a value with escapes, bytes that are not UTF-8: through jansson */
    assert_int_equal(ami_msg_add(m, "Note", "tab\there \\ \xff"), 0);
    round_trip(m);
    ami_msg_free(m);
}

/* What a follower makes of `json`, against jansson: the event is taken
 * exactly when jansson reads it as one (server "default", a seq from 0 to
 * INT64_MAX, an AMI-like name, string fields), with jansson's fields (the
 * last of two equal keys), and the text that goes on to SSE is one line
 * that reads as the same JSON. */
struct outcome {
    size_t n;
    struct last last;
};

static void count_last(void *ud, struct bus_event *e)
{
    struct outcome *o = ud;
    o->n++;
    keep_last(&o->last, e);
}

static void as_jansson_reads_it(struct bus *follow, struct outcome *got, const char *json,
                                size_t len)
{
    got->n = 0;
    bus_inject(follow, json, len);
    json_t *o = json_loadb(json, len, 0, NULL);
    struct ami_msg *want;
    int taken = follower_takes(o, &want);
    if (got->n != (taken ? 1u : 0u))
        fail_msg("%s by the follower, %s by jansson: %.*s", got->n ? "taken" : "refused",
                 taken ? "taken" : "refused", (int)len, json);
    if (taken) {
        assert_null(strchr(got->last.json, '\n'));
        assert_null(strchr(got->last.json, '\r'));
        json_t *again = json_loads(got->last.json, 0, NULL);
        assert_true(json_equal(again, o));
        json_decref(again);
        assert_same_fields(got->last.fields, want);
    }
    ami_msg_free(want);
    json_decref(o);
}

static void a_follower_takes_an_event_only_as_jansson_reads_it(void **state)
{
    (void)state;
    struct bus *follow = bus_new(&cfg);
    assert_non_null(follow);
    struct outcome got = {0};
    assert_int_equal(bus_add_sink(follow, count_last, &got), 0);
    bus_set_follower(follow, 1);
#define EV(seq, name, fields)                                                                      \
    "{\"server\":\"default\",\"event\":" name ",\"seq\":" seq                                      \
    ",\"time\":\"t\",\"fields\":{" fields "}}"
    static const char *const cases[] = {
        EV("7", "\"Hangup\"", "\"Channel\":\"PJSIP/201-00000001\""),
        /* raw control bytes in a value: jansson refuses them */
        EV("7", "\"Hangup\"", "\"Channel\":\"a\nb\""),
        EV("7", "\"Hangup\"", "\"Channel\":\"a\rb\""),
        EV("7", "\"Hangup\"", "\"Channel\":\"a\x01b\""),
        EV("7", "\"Hangup\"", "\"Channel\":\"a\tb\""),
        /* UTF-8 that is not: a stray byte, an overlong NUL, a surrogate */
        EV("7", "\"Hangup\"",
           "\"Channel\":\"a\xff"
           "b\""),
        EV("7", "\"Hangup\"", "\"Channel\":\"a\xc0\x80\""),
        EV("7", "\"Hangup\"", "\"Channel\":\"\xed\xa0\x80\""),
        EV("7", "\"Hangup\"", "\"Channel\":\"caf\xc3\xa9\""),
        /* a key twice: jansson keeps the last */
        EV("7", "\"Hangup\"", "\"Channel\":\"a\",\"Channel\":\"b\""),
        EV("7", "\"Hangup\"", "\"A\":[\"1\",\"2\"],\"B\":\"x\",\"A\":\"3\""),
        EV("7", "\"Hangup\"", "\"\":\"empty key\""),
        /* seq: leading zeros are not JSON; past INT64_MAX jansson refuses */
        EV("07", "\"Hangup\"", ""),
        EV("0", "\"Hangup\"", ""),
        EV("-7", "\"Hangup\"", ""),
        EV("9223372036854775807", "\"Hangup\"", ""),
        EV("9223372036854775808", "\"Hangup\"", ""),
        EV("9999999999999999999", "\"Hangup\"", ""),
        EV("18446744073709551617", "\"Hangup\"", ""),
        /* names that are not AMI's: a blank, a control byte, a line break */
        EV("7", "\"Hang up\"", ""),
        EV("7", "\"Hang\\u0001up\"", ""),
        EV("7", "\"Hang\\nup\"", ""),
        EV("7", "\"\"", ""),
        EV("7", "\"Hang\\\"up\"", ""),
        /* blanks between tokens, line breaks among them: one line to SSE */
        "{\"server\":\"default\",\n\"event\":\"Hangup\",\r\n\"seq\":7,\"fields\":{}}",
        "{\"server\":\"default\", \"event\":\"Hangup\",\"seq\":7,\"fields\":{}}",
    };
#undef EV
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        as_jansson_reads_it(follow, &got, cases[i], strlen(cases[i]));
    /* and what a few bytes changed make of the leader's own text */
    struct bus *lead = bus_new(&cfg);
    assert_non_null(lead);
    struct last a = {0};
    assert_int_equal(bus_add_sink(lead, keep_last, &a), 0);
    struct ami_msg *m = ami_msg_new();
    assert_int_equal(ami_msg_add(m, "Event", "Newchannel"), 0);
    assert_int_equal(ami_msg_add(m, "Channel", "PJSIP/201-00000001"), 0);
    assert_int_equal(ami_msg_add(m, "Variable", "a=1"), 0);
    assert_int_equal(ami_msg_add(m, "Variable", "b=2"), 0);
    assert_int_equal(ami_msg_add(m, "Exten", "0041"), 0);
    bus_publish_ami(lead, 0, m);
    ami_msg_free(m);
    assert_non_null(a.json);
    static const char bytes[] = "\n\r\x01\t \\\"0179,:{}[]Aa\x80\xc3\xa9\xff-";
    size_t len = strlen(a.json);
    char *text = malloc(len + 1);
    assert_non_null(text);
    srand(17);
    for (int round = 0; round < 20000; round++) {
        memcpy(text, a.json, len + 1);
        for (int k = 1 + rand() % 3; k > 0; k--)
            text[rand() % len] = bytes[rand() % (sizeof(bytes) - 1)];
        as_jansson_reads_it(follow, &got, text, len);
    }
    free(text);
    free(a.json);
    ami_msg_free(a.fields);
    free(got.last.json);
    ami_msg_free(got.last.fields);
    bus_free(lead);
    bus_free(follow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filtered_events_take_no_number_and_the_rest_are_encoded_once),
        cmocka_unit_test(the_ring_replays_what_came_after_and_says_where_it_begins),
        cmocka_unit_test(a_follower_streams_what_the_leader_published_and_goes_on_from_it),
        cmocka_unit_test(a_follower_reads_the_fields_as_jansson_does_with_or_without_escapes),
        cmocka_unit_test(a_follower_takes_an_event_only_as_jansson_reads_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
