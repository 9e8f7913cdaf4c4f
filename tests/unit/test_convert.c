/* Unit tests for src/api/convert: AMI replies as the JSON of the channel
 * and queue routes. The inputs are the bytes a real Asterisk 22 sent
 * (tests/data/transcripts 05a, 05b, 05c), parsed by the project's parser,
 * plus hand-made messages for what the captures do not show. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "support/testenv.h"
#include "support/transcript.h"

#define MAX_LIST 16

/* The messages of one capture's server side. */
struct capture {
    struct transcript t;
    struct ami_msg **msgs;
    int n;
};

static void capture_load(struct capture *c, const char *name)
{
    char dir[512];
    testenv_data_path(dir, sizeof(dir), "transcripts");
    assert_int_equal(transcript_load(&c->t, dir, name), 0);
    c->n = transcript_parse(c->t.recv, c->t.recv_len, 1, &c->msgs);
    assert_true(c->n > 0);
}

static void capture_free(struct capture *c)
{
    transcript_free_msgs(c->msgs, c->n);
    transcript_free(&c->t);
}

/* The events of the list answered to `action_id` (the Complete event excluded). */
static size_t list_of(const struct capture *c, const char *action_id, struct ami_msg **out)
{
    size_t n = 0;
    for (int i = 0; i < c->n && n < MAX_LIST; i++) {
        const struct ami_msg *m = c->msgs[i];
        if (ami_msg_kind(m) != AMI_MSG_EVENT || !ami_msg_is(m, "ActionID", action_id) ||
            ami_msg_get(m, "EventList"))
            continue;
        out[n++] = c->msgs[i];
    }
    return n;
}

static struct ami_msg *msg_of(const char *const *kv)
{
    struct ami_msg *m = ami_msg_new();
    for (; kv[0]; kv += 2)
        assert_int_equal(ami_msg_add(m, kv[0], kv[1]), 0);
    return m;
}

static const char *str_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t int_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void assert_null_at(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_non_null(v); /* present, as null */
    assert_true(json_is_null(v));
}

static void duration_reads_hh_mm_ss_and_refuses_anything_else(void **state)
{
    (void)state;
    assert_int_equal(api_duration_seconds("00:00:00"), 0);
    assert_int_equal(api_duration_seconds("01:02:03"), 3723);
    assert_int_equal(api_duration_seconds("00:59:59"), 3599);
    assert_int_equal(api_duration_seconds("123:00:01"), 442801); /* calls past 99 hours */
    static const char *const bad[] = {"",         "00:00",    "00:60:00",  "00:00:60",
                                      "0:0:0",    "aa:bb:cc", "00:00:00 ", " 00:00:00",
                                      "-1:00:00", "00-00-00", NULL};
    for (const char *const *b = bad; *b; b++)
        if (api_duration_seconds(*b) != -1)
            fail_msg("'%s' was read as a duration", *b);
    assert_int_equal(api_duration_seconds(NULL), -1);
}

static void channel_state_is_the_description_lower_cased_or_the_code(void **state)
{
    (void)state;
    assert_string_equal(api_channel_state_name("Up", "6"), "up");
    assert_string_equal(api_channel_state_name("Ringing", "5"), "ringing");
    assert_string_equal(api_channel_state_name("OffHook", "2"), "offhook");
    assert_string_equal(api_channel_state_name("Dialing Offhook", "8"), "dialing_offhook");
    assert_string_equal(api_channel_state_name("Pre-ring", "9"), "pre_ring");
    /* no usable text: the code decides */
    assert_string_equal(api_channel_state_name(NULL, "4"), "ring");
    assert_string_equal(api_channel_state_name("", "0"), "down");
    assert_string_equal(api_channel_state_name("Something new", "7"), "busy");
    /* ast_state2str()'s "Unknown (%u)" for codes it does not know */
    assert_string_equal(api_channel_state_name("Unknown (12)", "12"), "unknown");
    assert_string_equal(api_channel_state_name(NULL, NULL), "unknown");
    assert_string_equal(api_channel_state_name(NULL, "x"), "unknown");
}

static void member_state_names_follow_ast_device_state(void **state)
{
    (void)state;
    static const char *const names[] = {"unknown",     "not_inuse", "inuse",     "busy",  "invalid",
                                        "unavailable", "ringing",   "ringinuse", "onhold"};
    for (long i = 0; i < 9; i++)
        assert_string_equal(api_member_state_name(i), names[i]);
    assert_string_equal(api_member_state_name(-1), "unknown");
    assert_string_equal(api_member_state_name(9), "unknown");
}

static void core_show_channel_becomes_a_typed_channel(void **state)
{
    (void)state;
    struct capture c;
    capture_load(&c, "05a-status-coreshowchannels");
    struct ami_msg *ev[MAX_LIST];
    assert_int_equal(list_of(&c, "csc-1", ev), 2);

    json_t *ch = api_channel_json(ev[0]);
    assert_string_equal(str_at(ch, "channel"), "Local/200@demo-00000009;1");
    assert_string_equal(str_at(ch, "state"), "up");
    assert_int_equal(int_at(ch, "state_code"), 6);
    json_t *cid = json_object_get(ch, "caller_id");
    assert_string_equal(str_at(cid, "number"), "5553000");
    assert_string_equal(str_at(cid, "name"), "Long Call");
    json_t *col = json_object_get(ch, "connected_line");
    assert_string_equal(str_at(col, "number"), "5553000");
    assert_string_equal(str_at(col, "name"), "Long Call");
    assert_string_equal(str_at(ch, "context"), "demo");
    assert_string_equal(str_at(ch, "exten"), "200"); /* an extension is text, not a number */
    assert_int_equal(int_at(ch, "priority"), 3);
    assert_string_equal(str_at(ch, "application"), "Wait");
    assert_string_equal(str_at(ch, "application_data"), "30");
    assert_int_equal(int_at(ch, "duration_s"), 0);
    assert_string_equal(str_at(ch, "uniqueid"), "1795789069.18");
    assert_string_equal(str_at(ch, "linkedid"), "1795789069.18");
    /* "AccountCode: " and "BridgeId: " are empty in the capture */
    assert_null_at(ch, "bridge_id");
    assert_null_at(ch, "account");
    assert_int_equal(json_object_size(ch), 15);
    json_decref(ch);

    /* the ;2 half runs Answer, which has no data */
    ch = api_channel_json(ev[1]);
    assert_string_equal(str_at(ch, "channel"), "Local/200@demo-00000009;2");
    assert_int_equal(int_at(ch, "priority"), 2);
    assert_string_equal(str_at(ch, "application"), "Answer");
    assert_null_at(ch, "application_data");
    assert_string_equal(str_at(ch, "linkedid"), "1795789069.18");
    json_decref(ch);
    capture_free(&c);
}

static void unknown_caller_ids_bad_numbers_and_bad_bytes(void **state)
{
    (void)state;
    const char *kv[] = {"Event",
                        "CoreShowChannel",
                        "Channel",
                        "Local/100@demo-0000000a;2",
                        "ChannelState",
                        "5",
                        "ChannelStateDesc",
                        "Ringing",
                        "CallerIDNum",
                        "<unknown>",
                        "CallerIDName",
                        "Caf\xe9",
                        "ConnectedLineNum",
                        "",
                        "ConnectedLineName",
                        "<unknown>",
                        "AccountCode",
                        "sales-dept",
                        "Context",
                        "demo",
                        "Exten",
                        "s",
                        "Priority",
                        "3x",
                        "Application",
                        "",
                        "Duration",
                        "",
                        "BridgeId",
                        "0d3c2c5e-8f0d-4b8e-a9f6-1c2d3e4f5a6b",
                        NULL};
    struct ami_msg *m = msg_of(kv);
    json_t *ch = api_channel_json(m);
    assert_string_equal(str_at(ch, "state"), "ringing");
    assert_int_equal(int_at(ch, "state_code"), 5);
    json_t *cid = json_object_get(ch, "caller_id");
    assert_null_at(cid, "number");
    /* Latin-1 from the PBX: repaired to U+FFFD, never invalid JSON */
    assert_string_equal(str_at(cid, "name"), "Caf\xef\xbf\xbd");
    json_t *col = json_object_get(ch, "connected_line");
    assert_null_at(col, "number");
    assert_null_at(col, "name");
    assert_string_equal(str_at(ch, "account"), "sales-dept");
    assert_string_equal(str_at(ch, "exten"), "s");
    assert_null_at(ch, "priority");
    assert_null_at(ch, "application");
    assert_null_at(ch, "application_data"); /* absent */
    assert_null_at(ch, "duration_s");
    assert_null_at(ch, "uniqueid");
    assert_string_equal(str_at(ch, "bridge_id"), "0d3c2c5e-8f0d-4b8e-a9f6-1c2d3e4f5a6b");
    char *text = json_dumps(ch, 0);
    assert_non_null(text);
    free(text);
    json_decref(ch);
    ami_msg_free(m);
}

static void queue_status_and_summary_become_queues(void **state)
{
    (void)state;
    struct capture c;
    capture_load(&c, "05b-queuestatus-queuesummary");
    struct ami_msg *st[MAX_LIST], *sum[MAX_LIST];
    size_t nst = list_of(&c, "qs-all", st);
    size_t nsum = list_of(&c, "qsum-all", sum);
    assert_int_equal(nst, 5);
    assert_int_equal(nsum, 2);

    json_t *qs = api_queues_json(st, nst);
    assert_int_equal(json_array_size(qs), 2);
    json_t *support = json_array_get(qs, 0);
    json_t *sales = json_array_get(qs, 1);
    assert_string_equal(str_at(support, "name"), "support");
    assert_string_equal(str_at(support, "strategy"), "rrmemory");
    /* before the summary, its figures are unknown */
    assert_null_at(sales, "logged_in");
    assert_null_at(sales, "available");
    assert_null_at(sales, "longest_holdtime");
    api_queues_add_summary(qs, sum, nsum);

    assert_string_equal(str_at(sales, "name"), "sales");
    assert_string_equal(str_at(sales, "strategy"), "ringall");
    static const char *const zero[] = {"calls",     "holdtime",      "talktime", "completed",
                                       "abandoned", "service_level", NULL};
    for (const char *const *k = zero; *k; k++)
        assert_int_equal(int_at(sales, *k), 0);
    assert_true(json_is_real(json_object_get(sales, "service_level_perf")));
    assert_int_equal(int_at(sales, "logged_in"), 2);
    assert_int_equal(int_at(sales, "available"), 1);
    assert_int_equal(int_at(sales, "longest_holdtime"), 0);
    assert_int_equal(int_at(support, "logged_in"), 1);
    assert_int_equal(json_array_size(json_object_get(sales, "callers")), 0);

    json_t *members = json_object_get(sales, "members");
    assert_int_equal(json_array_size(members), 2);
    json_t *a200 = json_array_get(members, 0);
    assert_string_equal(str_at(a200, "interface"), "Local/200@demo");
    assert_string_equal(str_at(a200, "name"), "Agent200");
    assert_string_equal(str_at(a200, "state_interface"), "Local/200@demo");
    assert_string_equal(str_at(a200, "membership"), "static");
    /* the 30 s call was up on Local/200@demo: Status 2 */
    assert_string_equal(str_at(a200, "state"), "inuse");
    assert_int_equal(int_at(a200, "state_code"), 2);
    assert_true(json_is_false(json_object_get(a200, "paused")));
    assert_null_at(a200, "paused_reason");
    assert_int_equal(int_at(a200, "penalty"), 0);
    assert_int_equal(int_at(a200, "calls_taken"), 0);
    assert_null_at(a200, "last_call"); /* LastCall: 0 is "never" */
    assert_true(json_is_false(json_object_get(a200, "in_call")));
    assert_string_equal(str_at(json_array_get(members, 1), "state"), "not_inuse");
    assert_int_equal(json_array_size(json_object_get(support, "members")), 1);
    json_decref(qs);
    capture_free(&c);
}

static void paused_dynamic_member_reads_as_such(void **state)
{
    (void)state;
    struct capture c;
    capture_load(&c, "05c-queueadd-pause-remove");
    struct ami_msg *st[MAX_LIST];
    size_t nst = list_of(&c, "qs-after-pause", st);
    assert_int_equal(nst, 2);
    json_t *qs = api_queues_json(st, nst);
    json_t *m = json_array_get(json_object_get(json_array_get(qs, 0), "members"), 0);
    assert_string_equal(str_at(m, "interface"), "Local/202@demo");
    assert_string_equal(str_at(m, "name"), "Agent202");
    assert_string_equal(str_at(m, "membership"), "dynamic");
    assert_true(json_is_true(json_object_get(m, "paused")));
    assert_string_equal(str_at(m, "paused_reason"), "lunch");
    assert_int_equal(int_at(m, "penalty"), 2);
    json_decref(qs);
    capture_free(&c);
}

static void waiting_callers_and_members_in_call(void **state)
{
    (void)state;
    const char *params[] = {"Event",   "QueueParams", "Queue", "sales", "Strategy",
                            "ringall", "Calls",       "2",     NULL};
    const char *member[] = {
        "Event",          "QueueMember", "Queue",      "sales",  "Name", "Agent200", "Location",
        "Local/200@demo", "Status",      "6",          "InCall", "1",    "Paused",   "0",
        "LastCall",       "1795789071",  "CallsTaken", "3",      NULL};
    /* app_queue prints a missing caller id as "unknown", without brackets */
    const char *entry1[] = {"Event",
                            "QueueEntry",
                            "Queue",
                            "sales",
                            "Position",
                            "1",
                            "Channel",
                            "Local/400@demo-00000001;2",
                            "Uniqueid",
                            "1795789070.3",
                            "CallerIDNum",
                            "unknown",
                            "CallerIDName",
                            "unknown",
                            "Wait",
                            "12",
                            NULL};
    const char *entry2[] = {"Event",
                            "QueueEntry",
                            "Queue",
                            "sales",
                            "Position",
                            "2",
                            "Channel",
                            "Local/401@demo-00000002;2",
                            "CallerIDNum",
                            "5553000",
                            "CallerIDName",
                            "Long Call",
                            "Wait",
                            "3",
                            NULL};
    /* an item of a queue the list did not open, and a summary of another */
    const char *stray[] = {"Event", "QueueMember", "Queue", "nope", "Name", "X", NULL};
    const char *other[] = {"Event", "QueueSummary", "Queue", "nope", "LoggedIn", "4", NULL};
    struct ami_msg *st[] = {msg_of(params), msg_of(member), msg_of(entry1), msg_of(entry2),
                            msg_of(stray)};
    struct ami_msg *sum[] = {msg_of(other)};
    json_t *qs = api_queues_json(st, 5);
    api_queues_add_summary(qs, sum, 1);
    assert_int_equal(json_array_size(qs), 1);
    json_t *sales = json_array_get(qs, 0);
    assert_int_equal(int_at(sales, "calls"), 2);
    assert_null_at(sales, "logged_in");
    json_t *m = json_array_get(json_object_get(sales, "members"), 0);
    assert_string_equal(str_at(m, "state"), "ringing");
    assert_true(json_is_true(json_object_get(m, "in_call")));
    assert_int_equal(int_at(m, "last_call"), 1795789071);
    assert_int_equal(int_at(m, "calls_taken"), 3);
    json_t *callers = json_object_get(sales, "callers");
    assert_int_equal(json_array_size(callers), 2);
    json_t *y = json_array_get(callers, 0);
    assert_int_equal(int_at(y, "position"), 1);
    assert_string_equal(str_at(y, "channel"), "Local/400@demo-00000001;2");
    assert_string_equal(str_at(y, "uniqueid"), "1795789070.3");
    assert_null_at(json_object_get(y, "caller_id"), "number");
    assert_null_at(json_object_get(y, "caller_id"), "name");
    assert_int_equal(int_at(y, "wait_s"), 12);
    y = json_array_get(callers, 1);
    assert_int_equal(int_at(y, "position"), 2);
    assert_string_equal(str_at(json_object_get(y, "caller_id"), "name"), "Long Call");
    assert_null_at(y, "uniqueid");
    json_decref(qs);
    for (size_t i = 0; i < 5; i++)
        ami_msg_free(st[i]);
    ami_msg_free(sum[0]);
}

static void empty_lists_give_empty_arrays(void **state)
{
    (void)state;
    json_t *qs = api_queues_json(NULL, 0);
    assert_true(json_is_array(qs));
    assert_int_equal(json_array_size(qs), 0);
    api_queues_add_summary(qs, NULL, 0);
    json_decref(qs);
    json_t *t = api_json_text("");
    assert_true(json_is_null(t));
    json_decref(t);
    t = api_json_text(NULL);
    assert_true(json_is_null(t));
    json_decref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duration_reads_hh_mm_ss_and_refuses_anything_else),
        cmocka_unit_test(channel_state_is_the_description_lower_cased_or_the_code),
        cmocka_unit_test(member_state_names_follow_ast_device_state),
        cmocka_unit_test(core_show_channel_becomes_a_typed_channel),
        cmocka_unit_test(unknown_caller_ids_bad_numbers_and_bad_bytes),
        cmocka_unit_test(queue_status_and_summary_become_queues),
        cmocka_unit_test(paused_dynamic_member_reads_as_such),
        cmocka_unit_test(waiting_callers_and_members_in_call),
        cmocka_unit_test(empty_lists_give_empty_arrays),
    };
    return cmocka_run_group_tests_name("convert", tests, NULL, NULL);
}
