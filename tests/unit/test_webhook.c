/* Unit tests for bus/webhook: checking subscriptions, matching events,
 * signing deliveries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ami/message.h"
#include "bus/webhook.h"

static const struct ssrf_net *no_nets = NULL;

/* Apply `text` in `mode`; the return code, with the problem's field in `field`. */
static int apply(struct wh_conf *c, const char *text, enum wh_mode mode, char *field)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    struct wh_problem pb = {{0}, {0}};
    int rc = wh_conf_apply(c, o, mode, no_nets, 0, &pb);
    json_decref(o);
    if (field)
        strcpy(field, pb.field);
    return rc;
}

static void a_created_subscription_is_enabled_with_defaults(void **state)
{
    (void)state;
    struct wh_conf c = {0};
    assert_int_equal(
        apply(&c, "{\"url\":\"https://crm.example/h\",\"events\":[\"Hangup\"]}", WH_CREATE, NULL),
        0);
    assert_true(c.enabled);
    assert_true(c.created > 0);
    assert_null(c.secret);
    assert_int_equal(c.nevents, 1);
    assert_int_equal(c.nfilter, 0);
    wh_conf_free(&c);
}

static void each_bad_member_is_named(void **state)
{
    (void)state;
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"https://a.example\"}", "events"},
        {"{\"url\":5,\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"file:///etc/passwd\",\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"https://a.example/#frag\",\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"https://a.example/\\u0001\",\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"http://127.0.0.1/\",\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"http://192.168.1.10/\",\"events\":[\"*\"]}", "url"},
        {"{\"url\":\"https://a.example\",\"events\":[\"ok\",\"\"]}", "events[1]"},
        {"{\"url\":\"https://a.example\",\"events\":[\"ok\",7]}", "events[1]"},
        {"{\"url\":\"https://a.example\",\"events\":\"Hangup\"}", "events"},
        {"{\"url\":\"https://a.example\",\"events\":[\"*\"],\"filter\":[]}", "filter"},
        {"{\"url\":\"https://a.example\",\"events\":[\"*\"],\"filter\":{\"a b\":\"x\"}}",
         "filter.a b"},
        {"{\"url\":\"https://a.example\",\"events\":[\"*\"],\"secret\":\"0123456789abcde\"}",
         "secret"},
        {"{\"url\":\"https://a.example\",\"events\":[\"*\"],\"enabled\":\"yes\"}", "enabled"},
        {"{\"url\":\"https://a.example\",\"events\":[\"*\"],\"description\":1}", "description"},
        {"{\"url\":\"https://a.example\",\"events\":[\"*\"],\"id\":\"mine\"}", "id"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wh_conf c = {0};
        char field[96];
        if (apply(&c, cases[i].body, WH_CREATE, field) != -1 || strcmp(field, cases[i].field))
            fail_msg("%s: wanted a problem naming '%s', got '%s'", cases[i].body, cases[i].field,
                     field);
        wh_conf_free(&c);
    }
}

static void a_refused_patch_changes_nothing(void **state)
{
    (void)state;
    struct wh_conf c = {0};
    assert_int_equal(apply(&c,
                           "{\"url\":\"https://a.example/h\",\"events\":[\"Hangup\"],"
                           "\"description\":\"one\"}",
                           WH_CREATE, NULL),
                     0);
    char field[96];
    assert_int_equal(apply(&c, "{\"description\":\"two\",\"url\":\"gopher://x\"}", WH_PATCH, field),
                     -1);
    assert_string_equal(field, "url");
    assert_string_equal(c.description, "one");
    assert_int_equal(
        apply(&c, "{\"description\":null,\"filter\":{\"Queue\":\"sales\"}}", WH_PATCH, NULL), 0);
    assert_null(c.description);
    assert_string_equal(c.url, "https://a.example/h");
    assert_int_equal(c.nfilter, 1);
    wh_conf_free(&c);
}

static void stored_form_round_trips_with_its_secret(void **state)
{
    (void)state;
    struct wh_conf c = {0};
    assert_int_equal(apply(&c,
                           "{\"url\":\"https://a.example/h\",\"events\":[\"Queue*\"],"
                           "\"filter\":{\"Queue\":\"sales\"},\"secret\":\"0123456789abcdef\"}",
                           WH_CREATE, NULL),
                     0);
    strcpy(c.id, "wh_0011223344556677");
    c.enabled = 0;
    strcpy(c.reason, "the receiver answered 410 Gone");
    json_t *o = wh_conf_json(&c, 1);
    json_object_del(o, "static");
    struct wh_conf back = {0};
    struct wh_problem pb = {{0}, {0}};
    assert_int_equal(wh_conf_apply(&back, o, WH_STORED, NULL, 0, &pb), 0);
    assert_string_equal(back.id, c.id);
    assert_string_equal(back.secret, "0123456789abcdef");
    assert_false(back.enabled);
    assert_string_equal(back.reason, c.reason);
    assert_string_equal(back.fvals[0], "sales");
    json_decref(o);
    /* without the secret for everyone else */
    o = wh_conf_json(&c, 0);
    assert_null(json_object_get(o, "secret"));
    json_decref(o);
    wh_conf_free(&back);
    wh_conf_free(&c);
}

static void events_match_by_name_glob_and_field_filter(void **state)
{
    (void)state;
    struct wh_conf c = {0};
    assert_int_equal(apply(&c,
                           "{\"url\":\"https://a.example\",\"events\":[\"Queue*\",\"Agent?\"],"
                           "\"filter\":{\"Queue\":\"sales*\"}}",
                           WH_CREATE, NULL),
                     0);
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Event", "QueueCallerJoin");
    ami_msg_add(m, "Queue", "sales-eu");
    assert_true(wh_conf_wants(&c, "QueueCallerJoin", m));
    assert_false(wh_conf_wants(&c, "Hangup", m));
    assert_false(wh_conf_wants(&c, "AgentConnect", m)); /* ? is one character */
    ami_msg_free(m);
    m = ami_msg_new();
    ami_msg_add(m, "Queue", "support");
    assert_false(wh_conf_wants(&c, "QueueCallerJoin", m));
    ami_msg_free(m);
    m = ami_msg_new(); /* no Queue field at all */
    assert_false(wh_conf_wants(&c, "QueueCallerJoin", m));
    ami_msg_free(m);
    wh_conf_free(&c);
}

static void the_signature_is_hmac_sha256_of_timestamp_dot_body(void **state)
{
    (void)state;
    char sig[WH_SIGNATURE_LEN + 1];
    const char *body = "{\"event\":\"Hangup\"}";
    /* python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec-test-0123456789",
     *   b"1700000000."+b"{\"event\":\"Hangup\"}",hashlib.sha256).hexdigest())' */
    assert_int_equal(wh_sign("whsec-test-0123456789", "1700000000", body, strlen(body), sig), 0);
    assert_string_equal(sig,
                        "sha256=54ce4b29ce9bb5f0f7e36e9636747b6995fa44e53a894a76c6b4a0bfa6b076ff");
    assert_int_equal(wh_sign("whsec-test-0123456789", "1700000001", body, strlen(body), sig), 0);
    assert_string_not_equal(
        sig, "sha256=54ce4b29ce9bb5f0f7e36e9636747b6995fa44e53a894a76c6b4a0bfa6b076ff");
}

static void url_check_allows_listed_networks_only(void **state)
{
    (void)state;
    struct ssrf_net *nets = NULL;
    size_t n = 0;
    char err[200];
    assert_int_equal(ssrf_parse_nets("127.0.0.0/8", &nets, &n, err, sizeof(err)), 0);
    assert_int_equal(wh_url_check("http://127.0.0.1:9000/h", nets, n, err, sizeof(err)), 0);
    assert_int_equal(wh_url_check("http://127.0.0.1:9000/h", NULL, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "loopback"));
    assert_int_equal(wh_url_check("http://10.0.0.1/h", nets, n, err, sizeof(err)), -1);
    assert_int_equal(wh_url_check("http://[fd00::1]/h", nets, n, err, sizeof(err)), -1);
    assert_int_equal(wh_url_check("https://crm.example:8443/h?x=1", NULL, 0, err, sizeof(err)), 0);
    free(nets);
}

static void random_ids_are_hex_and_differ(void **state)
{
    (void)state;
    char a[33], b[33];
    assert_int_equal(wh_random_hex(a, 16), 0);
    assert_int_equal(wh_random_hex(b, 16), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_created_subscription_is_enabled_with_defaults),
        cmocka_unit_test(each_bad_member_is_named),
        cmocka_unit_test(a_refused_patch_changes_nothing),
        cmocka_unit_test(stored_form_round_trips_with_its_secret),
        cmocka_unit_test(events_match_by_name_glob_and_field_filter),
        cmocka_unit_test(the_signature_is_hmac_sha256_of_timestamp_dot_body),
        cmocka_unit_test(url_check_allows_listed_networks_only),
        cmocka_unit_test(random_ids_are_hex_and_differ),
    };
    return cmocka_run_group_tests_name("bus_webhook", tests, NULL, NULL);
}
