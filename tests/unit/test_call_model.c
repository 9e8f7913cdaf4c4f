/* Unit tests for src/call/model (calls from AMI events), fed the real
 * Asterisk 22 captures of tests/data/transcripts with their own clock:
 * what each call scenario must give a CRM, and for every capture with
 * events that every created call ends exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ami/parser.h"
#include "call/model.h"
#include "support/testenv.h"
#include "support/transcript.h"

#define T0 1796395600000ull /* the captures' clock starts near here */

static void collect(void *ud, const char *type, json_t *ev)
{
    (void)type;
    json_array_append(ud, ev);
}

/* Feed the server side of capture `name` to a model, each message at the
 * time of the chunk that completed it; the call events it emitted. */
/* after(m, out, ud), when given, runs after each message fed. */
typedef void (*after_fn)(struct call_model *m, json_t *out, void *ud);

static json_t *replay_each(struct call_model *m, json_t *out, const char *name, after_fn after,
                           void *ud)
{
    char dir[512];
    testenv_data_path(dir, sizeof(dir), "transcripts");
    struct transcript t;
    assert_int_equal(transcript_load(&t, dir, name), 0);
    struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    assert_non_null(p);
    for (size_t i = 0; i < t.nchunks; i++) {
        if (t.chunks[i].dir != TRANSCRIPT_RECV)
            continue;
        assert_int_equal(ami_parser_feed(p, t.chunks[i].data, t.chunks[i].len), 0);
        struct ami_msg *msg;
        while (ami_parser_next(p, &msg) == 1) {
            if (ami_msg_kind(msg) == AMI_MSG_EVENT)
                call_model_feed(m, msg, T0 + (uint64_t)(t.chunks[i].t * 1000));
            ami_msg_free(msg);
            if (after)
                after(m, out, ud);
        }
    }
    ami_parser_free(p);
    transcript_free(&t);
    return out;
}

static json_t *replay_into(struct call_model *m, json_t *out, const char *name)
{
    return replay_each(m, out, name, NULL, NULL);
}

static json_t *replay(const char *name, const char *expect_id)
{
    json_t *out = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, out);
    assert_non_null(m);
    if (expect_id)
        assert_int_equal(call_model_expect(m, expect_id, json_pack("{s:s}", "reference", "crm-1"),
                                           json_pack("{s:s}", "CRM_ID", "42"), T0),
                         0);
    replay_into(m, out, name);
    struct call_model_stats st;
    call_model_stats(m, &st);
    assert_int_equal(st.created, st.ended + st.live);
    call_model_free(m);
    return out;
}

/* The types of the events of call `id`, joined by spaces. */
static void types_of(json_t *evs, const char *id, char *out, size_t len)
{
    out[0] = '\0';
    size_t i;
    json_t *e;
    json_array_foreach (evs, i, e) {
        if (strcmp(json_string_value(json_object_get(json_object_get(e, "call"), "id")), id))
            continue;
        if (out[0])
            strncat(out, " ", len - strlen(out) - 1);
        strncat(out, json_string_value(json_object_get(e, "type")) + 5, len - strlen(out) - 1);
    }
}

/* The call of the call.ended event of `id`. */
static json_t *ended(json_t *evs, const char *id)
{
    size_t i;
    json_t *e;
    json_array_foreach (evs, i, e) {
        json_t *c = json_object_get(e, "call");
        if (!strcmp(json_string_value(json_object_get(c, "id")), id) &&
            !strcmp(json_string_value(json_object_get(e, "type")), "call.ended"))
            return c;
    }
    fail_msg("call %s never ended", id);
    return NULL;
}

static const char *s_at(json_t *o, const char *path);

/* The string at path is want (a missing one fails with its path). */
#define assert_at(o, path, want)                                                                   \
    do {                                                                                           \
        const char *got_ = s_at((o), (path));                                                      \
        if (!got_ || strcmp(got_, (want)))                                                         \
            fail_msg("%s: '%s', not '%s'", (path), got_ ? got_ : "(none)", (want));                \
    } while (0)

static const char *s_at(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = o;
    for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, "."))
        v = json_object_get(v, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void a_ring_group_call_is_answered_by_the_member_who_took_it(void **state)
{
    (void)state;
    json_t *evs = replay("10d-call-ring-group.events", NULL);
    char types[256];
    types_of(evs, "1796395702.14", types, sizeof(types));
    assert_string_equal(types, "created ringing answered ended");
    json_t *c = ended(evs, "1796395702.14");
    assert_at(c, "outcome", "answered");
    assert_at(c, "answered_by.channel", "Local/201@demo-00000008;1");
    assert_at(c, "answered_by.number", "201");
    assert_at(c, "dialed", "500");
    assert_at(c, "hangup.by", "caller");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "hangup"), "cause")),
                     16);
    assert_int_equal(json_array_size(json_object_get(c, "legs")), 6);
    /* about 2 s of ringing, 5 s of talk */
    double ring = json_number_value(json_object_get(c, "ring_s"));
    double talk = json_number_value(json_object_get(c, "talk_s"));
    assert_true(ring > 1.5 && ring < 3.0);
    assert_true(talk > 4.5 && talk < 6.0);
    json_decref(evs);
}

static void a_caller_who_hangs_up_in_the_queue_is_missed(void **state)
{
    (void)state;
    json_t *evs = replay("10c-call-queue-abandoned.events", NULL);
    char types[256];
    types_of(evs, "1796395695.12", types, sizeof(types));
    assert_string_equal(types, "created ringing ended");
    json_t *c = ended(evs, "1796395695.12");
    assert_at(c, "outcome", "missed");
    assert_at(c, "queue", "sales");
    assert_true(json_is_null(json_object_get(c, "answered_by")));
    assert_true(json_is_null(json_object_get(c, "answered_at")));
    json_decref(evs);
}

static void a_queue_call_is_answered_by_the_agent_not_by_the_queue(void **state)
{
    (void)state;
    json_t *evs = replay("06a-queue-call-event-stream.events", NULL);
    char types[256];
    types_of(evs, "1795789090.28", types, sizeof(types));
    assert_string_equal(types, "created ringing answered ended");
    json_t *c = ended(evs, "1795789090.28");
    assert_at(c, "outcome", "answered");
    assert_at(c, "queue", "sales");
    assert_at(c, "answered_by.queue_member", "Agent200");
    assert_at(c, "answered_by.channel", "Local/200@demo-00000010;1");
    /* named in call.answered already, for the CRM that shows it then */
    size_t i;
    json_t *e, *answered = NULL;
    json_array_foreach (evs, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "type")), "call.answered"))
            answered = json_object_get(e, "call");
    assert_non_null(answered);
    assert_at(answered, "answered_by.queue_member", "Agent200");
    assert_at(answered, "answered_by.number", "200");
    assert_at(c, "answered_by.number", "200");
    assert_at(c, "from.number", "5554000");
    json_decref(evs);
}

static void originates_that_fail_end_with_their_reason(void **state)
{
    (void)state;
    json_t *evs = replay("10e-originate-async-noanswer-and-congestion.events", NULL);
    json_t *noans = ended(evs, "1796395712.20"), *cong = ended(evs, "1796395712.22");
    assert_at(noans, "outcome", "no_answer");
    assert_at(noans, "hangup.by", "system");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(noans, "hangup"), "cause")),
                     19);
    assert_at(cong, "outcome", "congestion");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cong, "hangup"), "cause")),
                     34);
    char types[256];
    types_of(evs, "1796395712.22", types, sizeof(types));
    assert_string_equal(types, "created ended");
    json_decref(evs);
}

static void a_call_placed_with_a_channel_id_is_known_by_it_and_echoes_the_origination(void **state)
{
    (void)state;
    json_t *evs = replay("10f-originate-channelid.events", "call-0001");
    char types[256];
    types_of(evs, "call-0001", types, sizeof(types));
    assert_string_equal(types, "created ringing answered ended");
    json_t *c = ended(evs, "call-0001");
    assert_at(c, "direction", "originated");
    assert_at(c, "origination.reference", "crm-1");
    assert_at(c, "variables.CRM_ID", "42");
    assert_at(c, "outcome", "answered");
    json_decref(evs);
}

/* Placed through another replica, the leader may hear of it after its
 * first event: the events after say what it was given. */
/* Told of call-0001 once its first call event is out, twice (a retry:
 * the first stands). */
static void tell_late(struct call_model *m, json_t *out, void *ud)
{
    size_t *told_at = ud;
    if (*told_at || json_array_size(out) == 0)
        return;
    *told_at = json_array_size(out);
    assert_int_equal(call_model_expect(m, "call-0001", json_pack("{s:s}", "reference", "crm-1"),
                                       json_pack("{s:s}", "CRM_ID", "42"), T0),
                     0);
    assert_int_equal(
        call_model_expect(m, "call-0001", json_pack("{s:s}", "reference", "other"), NULL, T0), 0);
}

static void a_call_told_late_carries_its_origination_from_then_on(void **state)
{
    (void)state;
    json_t *out = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, out);
    assert_non_null(m);
    size_t told_at = 0;
    replay_each(m, out, "10f-originate-channelid.events", tell_late, &told_at);
    call_model_free(m);
    assert_true(told_at > 0 && json_array_size(out) > told_at);
    for (size_t i = 0; i < json_array_size(out); i++) {
        json_t *c = json_object_get(json_array_get(out, i), "call");
        if (i < told_at) {
            assert_at(c, "direction", "internal");
            assert_true(json_is_null(json_object_get(c, "origination")));
        } else {
            assert_at(c, "direction", "originated");
            assert_at(c, "origination.reference", "crm-1");
            assert_at(c, "variables.CRM_ID", "42");
        }
    }
    json_decref(out);
}

/* A PBX restart (SoftHangupRequest Cause 4, AST_SOFTHANGUP_SHUTDOWN) hangs
 * its calls up: not their caller. */
static void a_call_cut_by_a_pbx_restart_is_hung_up_by_the_system(void **state)
{
    (void)state;
    json_t *evs = replay("08a-restart.events_on", NULL);
    json_t *c = ended(evs, "1795789128.40");
    assert_at(c, "hangup.by", "system");
    json_decref(evs);
}

static void transfers_keep_the_call_and_only_a_successful_one_counts(void **state)
{
    (void)state;
    json_t *evs = replay("10a2-call-blind-transfer-bridged.events", NULL);
    char types[256];
    types_of(evs, "1796395662.2", types, sizeof(types));
    assert_string_equal(types, "created ringing answered transferred ended");
    json_t *c = ended(evs, "1796395662.2");
    assert_at(c, "transfer.type", "blind");
    assert_at(c, "transfer.exten", "100");
    /* the callee's party transferred the caller and left: the call ended
     * when the caller's channel did, at the end of extension 100 */
    assert_at(c, "hangup.by", "caller");
    json_decref(evs);

    evs = replay("10b2-call-attended-transfer-bridged.events", NULL);
    types_of(evs, "1796395939.0", types, sizeof(types));
    assert_non_null(strstr(types, "held"));
    /* the transferer's Hold has no Unhold: the transfer ends it */
    assert_non_null(strstr(types, "resumed transferred"));
    assert_true(json_is_false(json_object_get(ended(evs, "1796395939.0"), "on_hold")));
    assert_string_equal(types + strlen(types) - 5, "ended");
    assert_string_equal(s_at(ended(evs, "1796395939.0"), "transfer.type"), "attended");
    /* the transferer hangs up to complete it, before the AttendedTransfer:
     * not counted; the transfer target's dialplan ends the call */
    assert_at(ended(evs, "1796395939.0"), "hangup.by", "callee");
    json_decref(evs);

    /* BlindTransfer Result: Invalid */
    evs = replay("10a-call-blind-transfer.events", NULL);
    size_t i;
    json_t *e;
    json_array_foreach (evs, i, e) {
        assert_string_not_equal(json_string_value(json_object_get(e, "type")), "call.transferred");
    }
    json_decref(evs);
}

/* Every capture with calls in it: each created call ends exactly once, it
 * is its last event, and seq counts up without gaps. */
static void every_created_call_ends_exactly_once(void **state)
{
    (void)state;
    static const char *const names[] = {
        "04c-originate-async-two-connections.events",
        "04d-originate-async-same-connection",
        "06a-queue-call-event-stream.events",
        "06b-dial-call-event-stream.events",
        "08a-restart.events_on",
        "10a-call-blind-transfer.events",
        "10a2-call-blind-transfer-bridged.events",
        "10b-call-attended-transfer.events",
        "10b2-call-attended-transfer-bridged.events",
        "10c-call-queue-abandoned.events",
        "10d-call-ring-group.events",
        "10e-originate-async-noanswer-and-congestion.events",
        "10f-originate-channelid.events",
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        json_t *evs = replay(names[k], NULL);
        json_t *state_of = json_object(); /* id -> "live" / "ended" */
        size_t i, ncreated = 0;
        json_t *e;
        json_array_foreach (evs, i, e) {
            const char *type = json_string_value(json_object_get(e, "type"));
            const char *id = s_at(e, "call.id");
            const char *st = json_string_value(json_object_get(state_of, id));
            if ((json_int_t)i + 1 != json_integer_value(json_object_get(e, "seq")))
                fail_msg("%s: seq %zu", names[k], i);
            if (!strcmp(type, "call.created")) {
                if (st)
                    fail_msg("%s: %s created twice", names[k], id);
                json_object_set_new(state_of, id, json_string("live"));
                ncreated++;
            } else if (!st || strcmp(st, "live")) {
                fail_msg("%s: %s after its end or before its creation", names[k], type);
            } else if (!strcmp(type, "call.ended")) {
                json_object_set_new(state_of, id, json_string("ended"));
                if (!s_at(e, "call.outcome") || !s_at(e, "call.hangup.by"))
                    fail_msg("%s: %s ended without an outcome", names[k], id);
            }
        }
        const char *id;
        json_t *v;
        json_object_foreach (state_of, id, v) {
            /* 08a's capture stops with Asterisk itself: its calls never end there */
            if (strcmp(json_string_value(v), "ended") && strncmp(names[k], "08a", 3))
                fail_msg("%s: %s never ended", names[k], id);
        }
        if (strncmp(names[k], "08a", 3) && !ncreated)
            fail_msg("%s: no call", names[k]);
        print_message("%s: %zu calls, %zu call events\n", names[k], ncreated, json_array_size(evs));
        json_decref(state_of);
        json_decref(evs);
    }
}

/* --- reconnects ------------------------------------------------------------------------------ */

struct timed {
    struct ami_msg *m;
    uint64_t at;
};

/* Every event of a capture's server side, with its time. */
static size_t load_events(const char *name, struct timed **out)
{
    char dir[512];
    testenv_data_path(dir, sizeof(dir), "transcripts");
    struct transcript t;
    assert_int_equal(transcript_load(&t, dir, name), 0);
    struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    struct timed *v = NULL;
    size_t n = 0;
    for (size_t i = 0; i < t.nchunks; i++) {
        if (t.chunks[i].dir != TRANSCRIPT_RECV)
            continue;
        assert_int_equal(ami_parser_feed(p, t.chunks[i].data, t.chunks[i].len), 0);
        struct ami_msg *msg;
        while (ami_parser_next(p, &msg) == 1) {
            if (ami_msg_kind(msg) != AMI_MSG_EVENT) {
                ami_msg_free(msg);
                continue;
            }
            struct timed *nv = realloc(v, (n + 1) * sizeof(*v));
            assert_non_null(nv);
            v = nv;
            v[n].m = msg;
            v[n++].at = T0 + (uint64_t)(t.chunks[i].t * 1000);
        }
    }
    ami_parser_free(p);
    transcript_free(&t);
    *out = v;
    return n;
}

/* What CoreShowChannels would list after events [0, upto): a
 * CoreShowChannel item per channel created and not hung up, with its last
 * state. */
static size_t snapshot_at(const struct timed *ev, size_t upto, struct ami_msg **items, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < upto; i++) {
        const char *name = ami_msg_get(ev[i].m, "Event"), *uid = ami_msg_get(ev[i].m, "Uniqueid");
        if (!uid)
            continue;
        size_t k;
        for (k = 0; k < n && strcmp(ami_msg_get(items[k], "Uniqueid"), uid); k++)
            ;
        if (!strcmp(name, "Newchannel") && k == n && n < max) {
            struct ami_msg *it = ami_msg_new();
            static const char *const keys[] = {
                "Channel", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
                "Exten",   "Uniqueid",         "Linkedid"};
            ami_msg_add(it, "Event", "CoreShowChannel");
            for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
                if (ami_msg_get(ev[i].m, keys[j]))
                    ami_msg_add(it, keys[j], ami_msg_get(ev[i].m, keys[j]));
            ami_msg_add(it, "Duration", "00:00:01");
            items[n++] = it;
        } else if (k < n && !strcmp(name, "Hangup")) {
            ami_msg_free(items[k]);
            items[k] = items[--n];
        } else if (k < n && ami_msg_get(ev[i].m, "ChannelStateDesc")) {
            struct ami_msg *it = ami_msg_new();
            for (size_t j = 0; j < ami_msg_count(items[k]); j++) {
                const char *key = ami_msg_key_at(items[k], j);
                ami_msg_add(it, key,
                            !strcmp(key, "ChannelStateDesc")
                                ? ami_msg_get(ev[i].m, "ChannelStateDesc")
                                : ami_msg_value_at(items[k], j));
            }
            ami_msg_free(items[k]);
            items[k] = it;
        }
    }
    return n;
}

/* (type, id) of every event, as one string. */
static void sequence_of(json_t *evs, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *e = json_array_get(evs, i);
        char one[512];
        const char *oc = s_at(e, "call.outcome"), *by = s_at(e, "call.hangup.by"),
                   *ans = s_at(e, "call.answered_by.channel"), *q = s_at(e, "call.queue");
        /* an ended call says how it went: that too must be the same */
        snprintf(one, sizeof(one), "%s:%s%s%s%s%s%s%s%s%s ",
                 json_string_value(json_object_get(e, "type")), s_at(e, "call.id"), oc ? ":" : "",
                 oc ? oc : "", by ? ":" : "", by ? by : "", ans ? ":" : "", ans ? ans : "",
                 q ? ":" : "", q ? q : "");
        strncat(out, one, len - strlen(out) - 1);
    }
}

/* Every created call ends exactly once, and nothing is created twice. */
static void assert_each_ends_once(json_t *evs, const char *what)
{
    json_t *st = json_object();
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *e = json_array_get(evs, i);
        const char *type = json_string_value(json_object_get(e, "type")), *id = s_at(e, "call.id");
        const char *now = json_string_value(json_object_get(st, id));
        if (!strcmp(type, "call.created")) {
            if (now)
                fail_msg("%s: %s created twice", what, id);
            json_object_set_new(st, id, json_string("live"));
        } else if (!now || strcmp(now, "live")) {
            fail_msg("%s: %s for %s after its end or before its creation", what, type, id);
        } else if (!strcmp(type, "call.ended")) {
            json_object_set_new(st, id, json_string("ended"));
        }
    }
    const char *id;
    json_t *v;
    json_object_foreach (st, id, v) {
        if (strcmp(json_string_value(v), "ended"))
            fail_msg("%s: %s never ended", what, id);
    }
    json_decref(st);
}

/* The captures with calls that the reconnect and takeover tests replay. */
static const char *const split_names[] = {
    "06a-queue-call-event-stream.events",
    "10a2-call-blind-transfer-bridged.events",
    "10b2-call-attended-transfer-bridged.events",
    "10c-call-queue-abandoned.events",
    "10d-call-ring-group.events",
    "10e-originate-async-noanswer-and-congestion.events",
    "10f-originate-channelid.events",
};
#define NSPLIT (sizeof(split_names) / sizeof(split_names[0]))

/* Capture f's events, and the call events of one unbroken process as
 * sequence_of() writes them into want. */
static size_t load_with_baseline(size_t f, struct timed **ev, char *want, size_t len)
{
    size_t n = load_events(split_names[f], ev);
    json_t *base = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, base);
    for (size_t i = 0; i < n; i++)
        call_model_feed(m, (*ev)[i].m, (*ev)[i].at);
    call_model_free(m);
    sequence_of(base, want, len);
    json_decref(base);
    return n;
}

/* A reconnect between any two events, with `lost` events missed while AMI
 * was down: with none lost the call events are exactly those of an
 * unbroken stream (the snapshot announces nothing twice); with some lost,
 * every call still ends exactly once. */
static void a_reconnect_at_every_event_boundary_announces_nothing_twice(void **state)
{
    (void)state;
    struct call_model_opts o = {.server = "pbx1"};
    for (size_t f = 0; f < NSPLIT; f++) {
        struct timed *ev;
        static char want[65536], got[65536];
        size_t n = load_with_baseline(f, &ev, want, sizeof(want));
        struct call_model *m;
        /* `delay` events come between the reconnect and the list's answer */
        for (size_t lost = 0; lost <= 6; lost += 3) {
            for (size_t delay = 0; delay <= 4; delay += 4) {
                for (size_t k = 0; k + lost <= n; k++) {
                    size_t r = k + lost, d = r + delay <= n ? delay : n - r;
                    json_t *evs = json_array();
                    m = call_model_new(&o, collect, evs);
                    for (size_t i = 0; i < k; i++)
                        call_model_feed(m, ev[i].m, ev[i].at);
                    call_model_mark(m);
                    for (size_t i = r; i < r + d; i++)
                        call_model_feed(m, ev[i].m, ev[i].at);
                    struct ami_msg *items[64];
                    size_t ni = snapshot_at(ev, r, items, 64);
                    call_model_snapshot(m, items, ni, ev[r + d - (r + d > 0)].at);
                    for (size_t i = 0; i < ni; i++)
                        ami_msg_free(items[i]);
                    for (size_t i = r + d; i < n; i++)
                        call_model_feed(m, ev[i].m, ev[i].at);
                    call_model_free(m);
                    char what[200];
                    snprintf(what, sizeof(what),
                             "%s, reconnect after event %zu, %zu lost, the list after %zu more",
                             split_names[f], k, lost, d);
                    if (!lost) {
                        sequence_of(evs, got, sizeof(got));
                        if (strcmp(got, want))
                            fail_msg("%s:\n  got  %s\n  want %s", what, got, want);
                    }
                    assert_each_ends_once(evs, what);
                    json_decref(evs);
                }
            }
        }
        for (size_t i = 0; i < n; i++)
            ami_msg_free(ev[i].m);
        free(ev);
    }
}

/* A call that ended while AMI was down ends when the snapshot misses it. */
static void a_call_gone_while_ami_was_down_ends_by_the_system(void **state)
{
    (void)state;
    struct timed *ev;
    size_t n = load_events("10d-call-ring-group.events", &ev);
    json_t *evs = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, evs);
    size_t half = 0;
    for (; half < n && strcmp(ami_msg_get(ev[half].m, "Event"), "BridgeEnter"); half++)
        call_model_feed(m, ev[half].m, ev[half].at);
    call_model_snapshot(m, NULL, 0, ev[half].at + 5000);
    json_t *c = ended(evs, "1796395702.14");
    assert_at(c, "hangup.by", "system");
    assert_at(c, "outcome", "answered");
    assert_non_null(strstr(s_at(c, "hangup.cause_text"), "not connected"));
    struct call_model_stats st;
    call_model_stats(m, &st);
    assert_int_equal(st.live, 0);
    call_model_free(m);
    json_decref(evs);
    for (size_t i = 0; i < n; i++)
        ami_msg_free(ev[i].m);
    free(ev);
}

/* A new leader (or a restart) takes the live calls over from their
 * exports (the Redis copy) at any event boundary, then settles them with
 * CoreShowChannels and goes on: the two processes together announce
 * exactly what one unbroken process would. */
static void another_process_takes_the_calls_over_and_announces_nothing_twice(void **state)
{
    (void)state;
    struct call_model_opts o = {.server = "pbx1"};
    for (size_t f = 0; f < NSPLIT; f++) {
        struct timed *ev;
        static char want[65536], got[65536];
        size_t n = load_with_baseline(f, &ev, want, sizeof(want));
        for (size_t k = 0; k <= n; k++) {
            json_t *evs = json_array();
            struct call_model *a = call_model_new(&o, collect, evs);
            for (size_t i = 0; i < k; i++)
                call_model_feed(a, ev[i].m, ev[i].at);
            json_t *live = call_model_live(a), *exports = json_array();
            for (size_t i = 0; i < json_array_size(live); i++) {
                json_t *x = call_model_export(
                    a, json_string_value(json_object_get(json_array_get(live, i), "id")));
                assert_non_null(x);
                /* through text, as Redis keeps it */
                char *txt = json_dumps(x, JSON_COMPACT);
                json_array_append_new(exports, json_loads(txt, 0, NULL));
                free(txt);
                json_decref(x);
            }
            json_decref(live);
            call_model_free(a);
            struct call_model *b = call_model_new(&o, collect, evs);
            call_model_mark(b);
            for (size_t i = 0; i < json_array_size(exports); i++)
                assert_int_equal(call_model_import(b, json_array_get(exports, i)), 0);
            struct ami_msg *items[64];
            size_t ni = snapshot_at(ev, k, items, 64);
            call_model_snapshot(b, items, ni, k ? ev[k - 1].at : T0);
            for (size_t i = 0; i < ni; i++)
                ami_msg_free(items[i]);
            for (size_t i = k; i < n; i++)
                call_model_feed(b, ev[i].m, ev[i].at);
            call_model_free(b);
            json_decref(exports);
            sequence_of(evs, got, sizeof(got));
            if (strcmp(got, want))
                fail_msg("%s, taken over after event %zu:\n  got  %s\n  want %s", split_names[f], k,
                         got, want);
            json_decref(evs);
        }
        for (size_t i = 0; i < n; i++)
            ami_msg_free(ev[i].m);
        free(ev);
    }
}

static struct ami_msg *ev_of(const char *const *kv)
{
    struct ami_msg *m = ami_msg_new();
    for (; kv[0]; kv += 2)
        ami_msg_add(m, kv[0], kv[1]);
    return m;
}

/* An attended transfer between two calls of their own (not the feature's
 * second call, which shares the Linkedid, 10b2): each names the other. */
static void a_transfer_between_two_calls_links_them(void **state)
{
    (void)state;
    json_t *evs = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, evs);
    static const char *const seq[][13] = {
        {"Event", "Newchannel", "Channel", "PJSIP/100-1", "Uniqueid", "A.1", "Linkedid", "A",
         "ChannelStateDesc", "Ring", NULL},
        {"Event", "Newchannel", "Channel", "PJSIP/200-2", "Uniqueid", "A.2", "Linkedid", "A",
         "ChannelStateDesc", "Down", NULL},
        {"Event", "Newchannel", "Channel", "PJSIP/200-3", "Uniqueid", "B.1", "Linkedid", "B",
         "ChannelStateDesc", "Ring", NULL},
        {"Event", "Newchannel", "Channel", "PJSIP/300-4", "Uniqueid", "B.2", "Linkedid", "B",
         "ChannelStateDesc", "Down", NULL},
        {"Event", "AttendedTransfer", "Result", "Success", "OrigTransfererLinkedid", "A",
         "SecondTransfererLinkedid", "B", "OrigTransfererChannel", "PJSIP/200-2", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/200-2", "Uniqueid", "A.2", "Linkedid", "A", "Cause",
         "16", NULL},
        /* in a bridge a channel takes the bridge's oldest Linkedid
         * (bridge_basic_push): B's channels hang up as A's */
        {"Event", "Hangup", "Channel", "PJSIP/200-3", "Uniqueid", "B.1", "Linkedid", "A", "Cause",
         "16", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/100-1", "Uniqueid", "A.1", "Linkedid", "A", "Cause",
         "16", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/300-4", "Uniqueid", "B.2", "Linkedid", "A", "Cause",
         "16", NULL},
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        struct ami_msg *e = ev_of(seq[i]);
        call_model_feed(m, e, T0 + i * 1000);
        ami_msg_free(e);
    }
    call_model_free(m);
    assert_at(ended(evs, "A"), "transferred_to", "B");
    assert_at(ended(evs, "B"), "transferred_from", "A");
    assert_true(json_is_null(json_object_get(ended(evs, "A"), "transferred_from")));
    char types[128];
    types_of(evs, "B", types, sizeof(types));
    assert_string_equal(types, "created transferred ended");
    assert_each_ends_once(evs, "two calls joined");
    json_decref(evs);
}

/* POST /v1/calls to an endpoint that does not exist: Asterisk creates no
 * channel and says so only in the OriginateResponse (Uniqueid <unknown>).
 * The call it was given an id for still begins and ends, once; a channel
 * of it that comes after all (the response overtook it) starts nothing;
 * a failure that is not ours is passed over. */
static void an_originate_that_fails_before_any_channel_still_ends_once(void **state)
{
    (void)state;
    json_t *evs = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, evs);
    assert_int_equal(
        call_model_expect(m, "call-x", json_pack("{s:s}", "reference", "crm-9"), NULL, T0), 0);
    call_model_origination_id(m, "call-x", "aid-7");
    static const char *const seq[][21] = {
        {"Event", "OriginateResponse", "ActionID", "other-1", "Response", "Failure", "Channel",
         "PJSIP/nobody", "Context", "demo", "Exten", "100", "Reason", "0", "Uniqueid", "<unknown>",
         NULL},
        {"Event", "OriginateResponse", "ActionID", "aid-7", "Response", "Failure", "Channel",
         "PJSIP/nobody", "Context", "demo", "Exten", "100", "Reason", "0", "Uniqueid", "<unknown>",
         "CallerIDNum", "<unknown>", NULL},
        {"Event", "Newchannel", "Channel", "PJSIP/nobody-1", "Uniqueid", "call-x", "Linkedid",
         "call-x", "ChannelStateDesc", "Down", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/nobody-1", "Uniqueid", "call-x", "Linkedid", "call-x",
         "Cause", "20", NULL},
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        struct ami_msg *e = ev_of(seq[i]);
        call_model_feed(m, e, T0 + i * 1000);
        ami_msg_free(e);
        if (i == 0)
            assert_int_equal(json_array_size(evs), 0);
    }
    struct call_model_stats st;
    call_model_stats(m, &st);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.ended, 1);
    assert_int_equal(st.live, 0);
    call_model_free(m);
    char types[128];
    types_of(evs, "call-x", types, sizeof(types));
    assert_string_equal(types, "created ended");
    json_t *c = ended(evs, "call-x");
    assert_at(c, "outcome", "failed");
    assert_at(c, "hangup.by", "system");
    assert_at(c, "direction", "originated");
    assert_at(c, "origination.reference", "crm-9");
    assert_at(c, "origination.id", "aid-7");
    assert_at(c, "dialed", "100");
    assert_int_equal(json_array_size(json_object_get(c, "legs")), 0);
    assert_each_ends_once(evs, "an originate that failed at once");
    json_decref(evs);
}

/* An attended transfer completed by the transferer hanging up: its
 * request comes before the AttendedTransfer (10b2) and is not the call's;
 * the caller who hangs up later is. */
static void a_transferer_leaving_is_not_who_hung_up(void **state)
{
    (void)state;
    json_t *evs = json_array();
    struct call_model_opts o = {.server = "pbx1"};
    struct call_model *m = call_model_new(&o, collect, evs);
    static const char *const seq[][17] = {
        {"Event", "Newchannel", "Channel", "PJSIP/100-1", "Uniqueid", "A.1", "Linkedid", "A",
         "ChannelStateDesc", "Ring", NULL},
        {"Event", "Newchannel", "Channel", "PJSIP/200-2", "Uniqueid", "A.2", "Linkedid", "A",
         "ChannelStateDesc", "Down", NULL},
        {"Event", "DialBegin", "Channel", "PJSIP/100-1", "Linkedid", "A", "DestChannel",
         "PJSIP/200-2", "DestUniqueid", "A.2", NULL},
        {"Event", "DialEnd", "Channel", "PJSIP/100-1", "Linkedid", "A", "DestChannel",
         "PJSIP/200-2", "DestUniqueid", "A.2", "DialStatus", "ANSWER", NULL},
        {"Event", "Newchannel", "Channel", "PJSIP/300-3", "Uniqueid", "A.3", "Linkedid", "A",
         "ChannelStateDesc", "Down", NULL},
        {"Event", "HangupRequest", "Channel", "PJSIP/200-2", "Uniqueid", "A.2", "Linkedid", "A",
         "Cause", "16", NULL},
        {"Event", "AttendedTransfer", "Result", "Success", "OrigTransfererLinkedid", "A",
         "OrigTransfererUniqueid", "A.2", "SecondTransfererUniqueid", "A.2",
         "OrigTransfererChannel", "PJSIP/200-2", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/200-2", "Uniqueid", "A.2", "Linkedid", "A", "Cause",
         "16", NULL},
        {"Event", "HangupRequest", "Channel", "PJSIP/100-1", "Uniqueid", "A.1", "Linkedid", "A",
         "Cause", "16", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/100-1", "Uniqueid", "A.1", "Linkedid", "A", "Cause",
         "16", NULL},
        {"Event", "Hangup", "Channel", "PJSIP/300-3", "Uniqueid", "A.3", "Linkedid", "A", "Cause",
         "16", NULL},
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        struct ami_msg *e = ev_of(seq[i]);
        call_model_feed(m, e, T0 + i * 1000);
        ami_msg_free(e);
    }
    call_model_free(m);
    assert_at(ended(evs, "A"), "hangup.by", "caller");
    assert_at(ended(evs, "A"), "outcome", "answered");
    json_decref(evs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_ring_group_call_is_answered_by_the_member_who_took_it),
        cmocka_unit_test(a_caller_who_hangs_up_in_the_queue_is_missed),
        cmocka_unit_test(a_queue_call_is_answered_by_the_agent_not_by_the_queue),
        cmocka_unit_test(originates_that_fail_end_with_their_reason),
        cmocka_unit_test(a_call_placed_with_a_channel_id_is_known_by_it_and_echoes_the_origination),
        cmocka_unit_test(a_call_told_late_carries_its_origination_from_then_on),
        cmocka_unit_test(transfers_keep_the_call_and_only_a_successful_one_counts),
        cmocka_unit_test(a_call_cut_by_a_pbx_restart_is_hung_up_by_the_system),
        cmocka_unit_test(every_created_call_ends_exactly_once),
        cmocka_unit_test(a_reconnect_at_every_event_boundary_announces_nothing_twice),
        cmocka_unit_test(a_call_gone_while_ami_was_down_ends_by_the_system),
        cmocka_unit_test(another_process_takes_the_calls_over_and_announces_nothing_twice),
        cmocka_unit_test(a_transfer_between_two_calls_links_them),
        cmocka_unit_test(an_originate_that_fails_before_any_channel_still_ends_once),
        cmocka_unit_test(a_transferer_leaving_is_not_who_hung_up),
    };
    return cmocka_run_group_tests_name("call_model", tests, NULL, NULL);
}
