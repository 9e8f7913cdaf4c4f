/* Unit tests for src/ami/message: the ordered multimap, JSON both ways, and
 * the injection-safe serialisation of actions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ami/message.h"
#include "ami/parser.h"
#include "core/utf8.h"

static struct ami_msg *msg_of(const char *const *kv)
{
    struct ami_msg *m = ami_msg_new();
    for (; kv[0]; kv += 2)
        assert_int_equal(ami_msg_add(m, kv[0], kv[1]), 0);
    return m;
}

static void repeated_keys_keep_every_value_in_order(void **state)
{
    (void)state;
    const char *kv[] = {"Event",    "Status", "Variable", "A=1", "Channel", "Local/1@x-1;1",
                        "variable", "B=2",    "VARIABLE", "C=3", NULL};
    struct ami_msg *m = msg_of(kv);
    assert_int_equal(ami_msg_count(m), 5);
    assert_int_equal(ami_msg_count_key(m, "Variable"), 3);
    assert_string_equal(ami_msg_get(m, "VARIABLE"), "A=1");
    assert_string_equal(ami_msg_get_nth(m, "variable", 1), "B=2");
    assert_string_equal(ami_msg_get_nth(m, "Variable", 2), "C=3");
    assert_null(ami_msg_get_nth(m, "Variable", 3));
    assert_null(ami_msg_get(m, "Nope"));
    assert_string_equal(ami_msg_key_at(m, 3), "variable"); /* spelling kept */
    assert_int_equal(ami_msg_kind(m), AMI_MSG_EVENT);
    assert_string_equal(ami_msg_name(m), "Status");
    assert_true(ami_msg_is(m, "channel", "LOCAL/1@X-1;1"));
    ami_msg_free(m);
}

static void set_replaces_first_and_drops_duplicates(void **state)
{
    (void)state;
    const char *kv[] = {"Action", "Ping", "ActionID", "a", "X", "1", "actionid", "b", NULL};
    struct ami_msg *m = msg_of(kv);
    assert_int_equal(ami_msg_set(m, "ActionID", "mine"), 0);
    assert_int_equal(ami_msg_count(m), 3);
    assert_string_equal(ami_msg_key_at(m, 1), "ActionID");
    assert_string_equal(ami_msg_value_at(m, 1), "mine");
    assert_int_equal(ami_msg_set(m, "New", "v"), 0);
    assert_string_equal(ami_msg_key_at(m, 3), "New");
    assert_int_equal(ami_msg_remove(m, "x"), 1);
    assert_int_equal(ami_msg_count(m), 3);
    ami_msg_free(m);
}

static void kinds_come_from_the_first_key(void **state)
{
    (void)state;
    const char *r[] = {"Response", "Success", "Event", "x", NULL};
    const char *a[] = {"action", "Ping", NULL};
    const char *u[] = {"Foo", "bar", "Event", "x", NULL};
    struct ami_msg *m = msg_of(r);
    assert_int_equal(ami_msg_kind(m), AMI_MSG_RESPONSE);
    ami_msg_free(m);
    m = msg_of(a);
    assert_int_equal(ami_msg_kind(m), AMI_MSG_ACTION);
    ami_msg_free(m);
    m = msg_of(u);
    assert_int_equal(ami_msg_kind(m), AMI_MSG_UNKNOWN);
    ami_msg_set_kind(m, AMI_MSG_BANNER);
    assert_int_equal(ami_msg_kind(m), AMI_MSG_BANNER);
    assert_string_equal(ami_msg_kind_name(AMI_MSG_EVENT), "event");
    ami_msg_free(m);
}

static void json_turns_repeated_keys_into_arrays(void **state)
{
    (void)state;
    const char *kv[] = {
        "Response", "Success", "ActionID", "c1", "Message", "Command output follows",
        "Output",   "line 1",  "Output",   "",   "output",  "line: 3",
        NULL};
    struct ami_msg *m = msg_of(kv);
    json_t *j = ami_msg_to_json(m);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"Response\":\"Success\",\"ActionID\":\"c1\","
                           "\"Message\":\"Command output follows\","
                           "\"Output\":[\"line 1\",\"\",\"line: 3\"]}");
    free(s);
    json_decref(j);
    ami_msg_free(m);
}

static void json_never_carries_invalid_utf8(void **state)
{
    (void)state;
    struct ami_msg *m = ami_msg_new();
    /* Latin-1 caller name, a truncated sequence, an overlong, a surrogate */
    ami_msg_add(m, "CallerIDName", "Jos\xe9 M\xfcller");
    ami_msg_add(m, "Broken", "ok \xe2\x82");
    ami_msg_add(m, "Overlong", "\xc0\xaf");
    ami_msg_add(m, "Surrogate", "\xed\xa0\x80");
    ami_msg_add(m, "Fine", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e");
    ami_msg_add(m, "K\xff", "key bytes too");
    json_t *j = ami_msg_to_json(m);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s);
    assert_true(utf8_valid(s, strlen(s)));
    json_error_t e;
    json_t *back = json_loads(s, 0, &e);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "CallerIDName")),
                        "Jos\xef\xbf\xbd M\xef\xbf\xbdller");
    assert_string_equal(json_string_value(json_object_get(back, "Broken")), "ok \xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(back, "Overlong")),
                        "\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(back, "Fine")),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e");
    assert_non_null(json_object_get(back, "K\xef\xbf\xbd"));
    json_decref(back);
    free(s);
    json_decref(j);
    ami_msg_free(m);
}

static void utf8_repair_replaces_each_maximal_subpart(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"abc", "abc"},
        {"\x80", "\xef\xbf\xbd"},
        {"\xe2\x82", "\xef\xbf\xbd"},   /* truncated: one replacement */
        {"\xe2\x82x", "\xef\xbf\xbdx"}, /* truncated then ASCII */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xf0\x9f\x93\x9e", "\xf0\x9f\x93\x9e"},                                 /* valid 4-byte */
        {"\xfe\xff", "\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct strbuf sb;
        strbuf_init(&sb, 0);
        assert_int_equal(utf8_repair(cases[i].in, strlen(cases[i].in), &sb), 0);
        assert_string_equal(sb.data, cases[i].out);
        assert_true(utf8_valid(sb.data, sb.len));
        strbuf_release(&sb);
    }
}

static void json_object_becomes_headers_with_typed_values(void **state)
{
    (void)state;
    json_error_t e;
    json_t *j = json_loads("{\"Channel\":\"Local/100@demo\",\"Priority\":1,\"Async\":true,"
                           "\"Early\":false,\"Ratio\":0.5,\"Tenth\":0.1,\"Third\":0."
                           "3333333333333333,\"Variable\":[\"A=1\",\"B=2\",3]}",
                           0, &e);
    struct ami_msg *m;
    struct ami_error err;
    assert_int_equal(ami_msg_from_json(j, &m, &err), 0);
    assert_int_equal(ami_msg_count(m), 10);
    assert_string_equal(ami_msg_get(m, "Priority"), "1");
    assert_string_equal(ami_msg_get(m, "Tenth"), "0.1"); /* not 0.10000000000000001 */
    assert_string_equal(ami_msg_get(m, "Third"), "0.3333333333333333");
    assert_string_equal(ami_msg_get(m, "Async"), "true");
    assert_string_equal(ami_msg_get(m, "Early"), "false");
    assert_string_equal(ami_msg_get(m, "Ratio"), "0.5");
    assert_int_equal(ami_msg_count_key(m, "Variable"), 3);
    assert_string_equal(ami_msg_get_nth(m, "Variable", 2), "3");
    ami_msg_free(m);
    json_decref(j);
}

static void json_refusals_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *json, *field;
    } cases[] = {
        {"{\"Channel\":null}", "Channel"},
        {"{\"Ok\":\"x\",\"Data\":{\"a\":1}}", "Data"},
        {"{\"Variable\":[\"A=1\",[\"nested\"]]}", "Variable"},
        {"{\"Variable\":[\"A=1\",null]}", "Variable"},
        {"{\"Variable\":[{}]}", "Variable"},
        {"[1,2]", ""},
        {"\"text\"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t e;
        json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, &e);
        assert_non_null(j);
        struct ami_msg *m = (struct ami_msg *)1;
        struct ami_error err;
        memset(&err, 0, sizeof(err));
        assert_int_equal(ami_msg_from_json(j, &m, &err), -EINVAL);
        assert_null(m);
        assert_string_equal(err.field, cases[i].field);
        assert_true(strlen(err.detail) > 10);
        json_decref(j);
    }
}

static void json_round_trip_keeps_values(void **state)
{
    (void)state;
    const char *kv[] = {"Event",       "Newchannel", "Channel", "Local/100@demo-00000007;1",
                        "AccountCode", "",           "Exten",   "100",
                        NULL};
    struct ami_msg *m = msg_of(kv);
    json_t *j = ami_msg_to_json(m);
    struct ami_msg *back;
    struct ami_error err;
    assert_int_equal(ami_msg_from_json(j, &back, &err), 0);
    assert_int_equal(ami_msg_count(back), ami_msg_count(m));
    for (size_t i = 0; i < ami_msg_count(m); i++) {
        assert_string_equal(ami_msg_key_at(back, i), ami_msg_key_at(m, i));
        assert_string_equal(ami_msg_value_at(back, i), ami_msg_value_at(m, i));
    }
    json_decref(j);
    ami_msg_free(back);
    ami_msg_free(m);
}

static void action_serialises_to_exact_wire_bytes(void **state)
{
    (void)state;
    const char *kv[] = {"Action",         "Originate", "ActionID", "b-1",      "Channel",
                        "Local/100@demo", "Variable",  "A=1",      "Variable", "B=x:y",
                        "Data",           "",          NULL};
    struct ami_msg *m = msg_of(kv);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    struct ami_error err;
    assert_int_equal(ami_action_serialize(m, &sb, &err), 0);
    assert_string_equal(sb.data, "Action: Originate\r\nActionID: b-1\r\nChannel: Local/100@demo\r\n"
                                 "Variable: A=1\r\nVariable: B=x:y\r\nData: \r\n\r\n");
    /* and it parses back to the same message */
    struct ami_parser *p = ami_parser_new(NULL, 0);
    ami_parser_feed(p, sb.data, sb.len);
    struct ami_msg *back;
    assert_int_equal(ami_parser_next(p, &back), 1);
    assert_int_equal(ami_msg_count(back), 6);
    assert_string_equal(ami_msg_get_nth(back, "Variable", 1), "B=x:y");
    assert_string_equal(ami_msg_get(back, "Data"), "");
    ami_msg_free(back);
    ami_parser_free(p);
    strbuf_release(&sb);
    ami_msg_free(m);
}

/* Every way of smuggling a second header or action through a key or a
 * value is refused, with the field named, and nothing is written. */
static void every_injection_attempt_is_refused(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        const char *value;
        size_t vlen;
        const char *field;
    } cases[] = {
        {"Channel", "x\r\nAction: Originate", 0, "Channel"},
        {"Channel", "x\nAction: Originate", 0, "Channel"},
        {"Channel", "x\rAction: Originate", 0, "Channel"},
        {"Channel", "x\r\n\r\nAction: Command\r\nCommand: core stop now", 0, "Channel"},
        {"Data", "a\0\r\nAction: Logoff", 19, "Data"},
        {"Data", "trailing\n", 0, "Data"},
        {"Channel\r\nAction", "Originate", 0, "Channel??Action"},
        {"Channel: x\r\nFoo", "bar", 0, "Channel: x??Foo"},
        {"Foo Bar", "v", 0, "Foo Bar"},
        {"Foo:Bar", "v", 0, "Foo:Bar"},
        {"", "v", 0, ""},
        {"Ünicode", "v", 0, "??nicode"},
        {"Tab\tKey", "v", 0, "Tab?Key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ami_msg *m = ami_msg_new();
        ami_msg_add(m, "Action", "Ping");
        size_t vlen = cases[i].vlen ? cases[i].vlen : strlen(cases[i].value);
        ami_msg_addn(m, cases[i].key, strlen(cases[i].key), cases[i].value, vlen);
        struct strbuf sb;
        strbuf_init(&sb, 0);
        strbuf_append_str(&sb, "before|");
        struct ami_error err;
        memset(&err, 0, sizeof(err));
        assert_int_equal(ami_action_serialize(m, &sb, &err), -EINVAL);
        assert_string_equal(sb.data, "before|");
        assert_string_equal(err.field, cases[i].field);
        assert_true(strlen(err.detail) > 10);
        strbuf_release(&sb);
        ami_msg_free(m);
    }
}

static void json_nul_in_a_value_is_refused_not_truncated(void **state)
{
    (void)state;
    json_error_t e;
    json_t *j =
        json_loads("{\"Channel\":\"Local/1@x\\u0000\\r\\nAction: Logoff\"}", JSON_ALLOW_NUL, &e);
    assert_non_null(j);
    struct ami_msg *m;
    struct ami_error err;
    assert_int_equal(ami_msg_from_json(j, &m, &err), 0);
    assert_int_equal(ami_msg_value_len_at(m, 0), 26);
    struct ami_msg *a = ami_msg_new();
    ami_msg_add(a, "Action", "Hangup");
    ami_msg_addn(a, "Channel", 7, ami_msg_value_at(m, 0), ami_msg_value_len_at(m, 0));
    assert_int_equal(ami_action_validate(a, &err), -EINVAL);
    assert_string_equal(err.field, "Channel");
    assert_non_null(strstr(err.detail, "NUL"));
    ami_msg_free(a);
    ami_msg_free(m);
    json_decref(j);
}

static void asterisk_line_and_header_limits_are_enforced(void **state)
{
    (void)state;
    struct ami_error err;
    /* "Data: " + value + "\r\n" is exactly 1024 bytes: accepted */
    char *v = malloc(AMI_ACTION_MAX_LINE);
    memset(v, 'x', AMI_ACTION_MAX_LINE);
    v[AMI_ACTION_MAX_LINE - 8] = '\0';
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", "Originate");
    ami_msg_add(m, "Data", v);
    assert_int_equal(ami_action_validate(m, &err), 0);
    ami_msg_free(m);
    /* one more byte would be dumped by Asterisk: refused */
    v[AMI_ACTION_MAX_LINE - 8] = 'x';
    v[AMI_ACTION_MAX_LINE - 7] = '\0';
    m = ami_msg_new();
    ami_msg_add(m, "Action", "Originate");
    ami_msg_add(m, "Data", v);
    assert_int_equal(ami_action_validate(m, &err), -EINVAL);
    assert_string_equal(err.field, "Data");
    assert_non_null(strstr(err.detail, "1024"));
    ami_msg_free(m);
    free(v);

    m = ami_msg_new();
    ami_msg_add(m, "Action", "Originate");
    /* the pool's ActionID is the 128th line */
    for (int i = 1; i < AMI_ACTION_MAX_HEADERS - 1; i++)
        ami_msg_addf(m, "Variable", "V%d=1", i);
    assert_int_equal(ami_action_validate(m, &err), 0);
    ami_msg_add(m, "Variable", "one=toomany");
    assert_int_equal(ami_action_validate(m, &err), -EINVAL);
    assert_non_null(strstr(err.detail, "128"));
    ami_msg_free(m);
}

static void action_must_come_first_and_be_named(void **state)
{
    (void)state;
    struct ami_error err;
    const char *a[] = {"ActionID", "x", "Action", "Ping", NULL};
    const char *b[] = {"Action", "", NULL};
    const char *c[] = {"action", "Ping", NULL};
    struct ami_msg *m = msg_of(a);
    assert_int_equal(ami_action_validate(m, &err), -EINVAL);
    assert_string_equal(err.field, "Action");
    ami_msg_free(m);
    m = msg_of(b);
    assert_int_equal(ami_action_validate(m, &err), -EINVAL);
    ami_msg_free(m);
    m = msg_of(c);
    assert_int_equal(ami_action_validate(m, &err), 0);
    struct ami_msg *empty = ami_msg_new();
    assert_int_equal(ami_action_validate(empty, &err), -EINVAL);
    ami_msg_free(empty);
    ami_msg_free(m);
    assert_true(ami_key_valid("Cause-txt", 9));
    assert_false(ami_key_valid("a b", 3));
}

/* A copy stands on its own: same pairs in order, and it outlives (and can
 * grow apart from) the original. */
static void dup_copies_every_pair_and_stands_alone(void **state)
{
    (void)state;
    const char *kv[] = {"Event", "Hangup", "Channel", "Local/1@x-1;1", "Cause", "16", NULL};
    struct ami_msg *m = msg_of(kv);
    struct ami_msg *d = ami_msg_dup(m);
    assert_non_null(d);
    ami_msg_free(m);
    assert_int_equal(ami_msg_count(d), 3);
    assert_int_equal(ami_msg_kind(d), AMI_MSG_EVENT);
    assert_string_equal(ami_msg_key_at(d, 1), "Channel");
    assert_string_equal(ami_msg_get(d, "cause"), "16");
    assert_int_equal(ami_msg_add(d, "Extra", "x"), 0);
    assert_string_equal(ami_msg_get(d, "Extra"), "x");
    ami_msg_free(d);
    struct ami_msg *empty = ami_msg_new();
    d = ami_msg_dup(empty);
    assert_int_equal(ami_msg_count(d), 0);
    ami_msg_free(d);
    ami_msg_free(empty);
}

/* The hand encoder against jansson, the oracle: random messages with
 * repeated keys in mixed case, controls, quotes, backslashes, NUL bytes,
 * valid and ill-formed UTF-8. */
static void direct_json_is_byte_for_byte_janssons(void **state)
{
    (void)state;
    static const char *const keys[] = {"Event",    "Channel",  "Variable", "variable",
                                       "VARIABLE", "Uniqueid", "a",        "A",
                                       "Exten",    "Output",   "x-y_z"};
    static const char pieces[][5] = {"a",    "Z",        "\"",           "\\",
                                     "/",    "\n",       "\r",           "\t",
                                     "\b",   "\f",       "\x01",         "\x1f",
                                     "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                     "\xc3", "\xff",     "\xed\xa0\x80", "\xc0\xaf",
                                     " ",    "="};
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        struct ami_msg *m = ami_msg_new();
        size_t n = (size_t)(rand_r(&seed) % 20);
        if (round % 500 == 0)
            n = AMI_MSG_JSON_DIRECT_MAX +
                (size_t)(round % 1000 ? 1 : 0); /* both sides of the cap */
        for (size_t i = 0; i < n; i++) {
            char v[64];
            size_t vl = 0;
            size_t np = (size_t)(rand_r(&seed) % 8);
            for (size_t k = 0; k < np; k++) {
                const char *pc = pieces[rand_r(&seed) % (sizeof(pieces) / sizeof(pieces[0]))];
                size_t pl = strlen(pc);
                memcpy(v + vl, pc, pl);
                vl += pl;
            }
            if (rand_r(&seed) % 10 == 0)
                v[vl++] = '\0'; /* a NUL inside a value */
            const char *key = keys[rand_r(&seed) % (sizeof(keys) / sizeof(keys[0]))];
            assert_int_equal(ami_msg_addn(m, key, strlen(key), v, vl), 0);
        }
        if (round % 7 == 0)
            assert_int_equal(ami_msg_add(m, "Bad\xc3Key", "v"), 0); /* through the tree */
        json_t *j = ami_msg_to_json(m);
        char *want = json_dumps(j, JSON_COMPACT);
        struct strbuf got;
        strbuf_init(&got, 0);
        assert_int_equal(ami_msg_json_append(m, &got), 0);
        assert_non_null(want);
        assert_int_equal(got.len, strlen(want));
        assert_memory_equal(got.data, want, got.len);
        strbuf_release(&got);
        free(want);
        json_decref(j);
        ami_msg_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repeated_keys_keep_every_value_in_order),
        cmocka_unit_test(dup_copies_every_pair_and_stands_alone),
        cmocka_unit_test(set_replaces_first_and_drops_duplicates),
        cmocka_unit_test(kinds_come_from_the_first_key),
        cmocka_unit_test(json_turns_repeated_keys_into_arrays),
        cmocka_unit_test(json_never_carries_invalid_utf8),
        cmocka_unit_test(utf8_repair_replaces_each_maximal_subpart),
        cmocka_unit_test(json_object_becomes_headers_with_typed_values),
        cmocka_unit_test(json_refusals_name_the_field),
        cmocka_unit_test(json_round_trip_keeps_values),
        cmocka_unit_test(action_serialises_to_exact_wire_bytes),
        cmocka_unit_test(every_injection_attempt_is_refused),
        cmocka_unit_test(json_nul_in_a_value_is_refused_not_truncated),
        cmocka_unit_test(asterisk_line_and_header_limits_are_enforced),
        cmocka_unit_test(action_must_come_first_and_be_named),
        cmocka_unit_test(direct_json_is_byte_for_byte_janssons),
    };
    return cmocka_run_group_tests_name("ami_message", tests, NULL, NULL);
}
