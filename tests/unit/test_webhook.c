/* Unit tests for bus/webhook: checking subscriptions, matching events,
 * signing deliveries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "ami/message.h"
#include "bus/webhook_sub.h"

static const struct netlist_net *no_nets = NULL;

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
    assert_int_equal(back.scheme, WH_SCHEME_BOTH);
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

static void the_standard_signature_matches_the_reference_vector(void **state)
{
    (void)state;
    char sig[WH_STD_SIG_LEN + 1];
    const char *body = "{\"test\": 2432232314}";
    /* the example of the Standard Webhooks / Svix documentation; the same
     * from the official Python library:
     * Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) */
    assert_int_equal(wh_sign_v1("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, strlen(body),
                                sig),
                     0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* a secret not of the whsec_ form is its own bytes:
     * Webhook(b"legacy-secret-0123456789").sign("msg_1", 1700000000, "{}") */
    assert_int_equal(wh_sign_v1("legacy-secret-0123456789", "msg_1", "1700000000", "{}", 2, sig),
                     0);
    assert_string_equal(sig, "v1,GHoS9zmSkpG0pIa6kpFhtwHcoACO33PKgi/eg2E4gEc=");
}

static void whsec_secrets_are_base64_of_24_to_64_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *secret;
        int standard;
    } cases[] = {
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1}, /* 24 bytes */
        {"whsec_cm90YXRlZC1zZWNyZXQtb2YtdGhlLXRlc3QtMDEyMw==", 1},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA", 0}, /* not a multiple of 4 */
        {"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
         0}, /* 66 bytes */
        {"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
         1},                                               /* 63 bytes */
        {"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0},         /* 21 bytes */
        {"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 1}, /* 25 bytes */
        {"whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB==", 0}, /* the same, bits left over */
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La LaSw", 0},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw", 0},
        {"whsec-MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0},
        {"0123456789abcdef", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        if (wh_secret_is_standard(cases[i].secret) != cases[i].standard)
            fail_msg("%s: wanted %d", cases[i].secret, cases[i].standard);
    unsigned char key[WH_SECRET_MAX];
    assert_int_equal(wh_secret_key("whsec_cm90YXRlZC1zZWNyZXQtb2YtdGhlLXRlc3QtMDEyMw==", key), 31);
    assert_memory_equal(key, "rotated-secret-of-the-test-0123", 31);
    assert_int_equal(wh_secret_key("whsec-not-standard-0123", key), 23);
    assert_memory_equal(key, "whsec-not-standard-0123", 23);
    char a[WH_SECRET_MAX + 1], b[WH_SECRET_MAX + 1];
    assert_int_equal(wh_secret_generate(a, sizeof(a)), 0);
    assert_int_equal(wh_secret_generate(b, sizeof(b)), 0);
    assert_int_equal(strlen(a), 6 + 44);
    assert_true(wh_secret_is_standard(a));
    assert_string_not_equal(a, b);
    /* the API refuses a malformed whsec_ secret; the store takes it (older
     * versions did), as its own bytes */
    struct wh_conf c = {0};
    char field[96];
    assert_int_equal(apply(&c,
                           "{\"url\":\"https://a.example\",\"events\":[\"*\"],"
                           "\"secret\":\"whsec_not-base64-at-all\"}",
                           WH_CREATE, field),
                     -1);
    assert_string_equal(field, "secret");
    wh_conf_free(&c);
    assert_int_equal(apply(&c,
                           "{\"id\":\"old\",\"url\":\"https://a.example\",\"events\":[\"*\"],"
                           "\"secret\":\"whsec_not-base64-at-all\"}",
                           WH_STORED, NULL),
                     0);
    wh_conf_free(&c);
}

static void the_scheme_is_a_setting_of_its_own(void **state)
{
    (void)state;
    struct wh_conf c = {0};
    char field[96];
    assert_int_equal(apply(&c,
                           "{\"url\":\"https://a.example\",\"events\":[\"*\"],"
                           "\"signature\":\"standard\"}",
                           WH_CREATE, NULL),
                     0);
    assert_int_equal(c.scheme, WH_SCHEME_STANDARD);
    assert_int_equal(apply(&c, "{\"signature\":\"amibridge\"}", WH_PATCH, NULL), 0);
    assert_int_equal(c.scheme, WH_SCHEME_AMIBRIDGE);
    assert_int_equal(apply(&c, "{\"signature\":\"Both\"}", WH_PATCH, field), -1);
    assert_string_equal(field, "signature");
    assert_int_equal(apply(&c, "{\"signature\":null}", WH_PATCH, field), -1);
    assert_int_equal(c.scheme, WH_SCHEME_AMIBRIDGE);
    c.secret = strdup("0123456789abcdef");
    json_t *o = wh_conf_json(&c, 0);
    assert_string_equal(json_string_value(json_object_get(o, "signature")), "amibridge");
    json_decref(o);
    wh_conf_free(&c);
    /* a record stored before the setting existed: both */
    assert_int_equal(apply(&c,
                           "{\"id\":\"wh_0011223344556677\",\"url\":\"https://a.example\","
                           "\"events\":[\"*\"],\"filter\":{},\"description\":null,"
                           "\"enabled\":true,\"reason\":null,\"created\":1700000000,"
                           "\"secret\":\"0123456789abcdef\"}",
                           WH_STORED, NULL),
                     0);
    assert_int_equal(c.scheme, WH_SCHEME_BOTH);
    assert_int_equal(c.nprev, 0);
    wh_conf_free(&c);
}

/* PATCH `text` at `now` with the default grace `grace`. */
static int patch(struct wh_conf *c, const char *text, int grace, long long now, char *field)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    struct wh_problem pb = {{0}, {0}};
    int rc = wh_conf_patch(c, o, grace, now, no_nets, 0, &pb);
    json_decref(o);
    if (field)
        strcpy(field, pb.field);
    return rc;
}

static void a_new_secret_keeps_the_old_one_signing_for_the_grace_period(void **state)
{
    (void)state;
    long long now = (long long)time(NULL);
    struct wh_conf c = {0};
    char field[96], sigs[WH_STD_SIGS_MAX], one[WH_STD_SIG_LEN + 1];
    assert_int_equal(apply(&c,
                           "{\"url\":\"https://a.example\",\"events\":[\"*\"],"
                           "\"secret\":\"secret-number-one-0123\"}",
                           WH_CREATE, NULL),
                     0);
    /* the default grace */
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-two-0123\"}", 600, now, NULL), 0);
    assert_string_equal(c.secret, "secret-number-two-0123");
    assert_int_equal(c.nprev, 1);
    assert_string_equal(c.prev[0].secret, "secret-number-one-0123");
    assert_true(c.prev[0].expires == now + 600);
    /* one of the request's own, newest first */
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-three-0123\",\"secret_grace_s\":60}",
                           600, now + 10, NULL),
                     0);
    assert_int_equal(c.nprev, 2);
    assert_string_equal(c.prev[0].secret, "secret-number-two-0123");
    assert_true(c.prev[0].expires == now + 70);
    /* every secret still valid signs; the current one first */
    assert_int_equal(wh_sign_standard(&c, "id1", "1700000000", now + 20, "{}", 2, sigs), 0);
    assert_int_equal(wh_sign_v1("secret-number-three-0123", "id1", "1700000000", "{}", 2, one), 0);
    assert_int_equal(strncmp(sigs, one, strlen(one)), 0);
    assert_int_equal(strlen(sigs), 3 * WH_STD_SIG_LEN + 2);
    assert_int_equal(wh_sign_v1("secret-number-one-0123", "id1", "1700000000", "{}", 2, one), 0);
    assert_non_null(strstr(sigs, one));
    /* an expired one no longer does */
    assert_int_equal(wh_sign_standard(&c, "id1", "1700000000", now + 80, "{}", 2, sigs), 0);
    assert_int_equal(strlen(sigs), 2 * WH_STD_SIG_LEN + 1);
    assert_int_equal(wh_sign_v1("secret-number-two-0123", "id1", "1700000000", "{}", 2, one), 0);
    assert_null(strstr(sigs, one));
    /* at most WH_PREVIOUS_MAX, the oldest dropped */
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-four-0123\"}", 600, now + 20, NULL), 0);
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-five-0123\"}", 600, now + 20, NULL), 0);
    assert_int_equal(c.nprev, WH_PREVIOUS_MAX);
    assert_string_equal(c.prev[WH_PREVIOUS_MAX - 1].secret, "secret-number-two-0123");
    /* back to a previous secret: it is the current one, not a previous one */
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-three-0123\"}", 600, now + 20, NULL),
                     0);
    for (size_t i = 0; i < c.nprev; i++)
        assert_string_not_equal(c.prev[i].secret, "secret-number-three-0123");
    /* the same secret again is no rotation */
    size_t n = c.nprev;
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-three-0123\"}", 600, now + 20, NULL),
                     0);
    assert_int_equal(c.nprev, n);
    /* 0 ends every earlier secret at once */
    assert_int_equal(
        patch(&c, "{\"secret\":\"secret-number-six-0123\",\"secret_grace_s\":0}", 600, now, NULL),
        0);
    assert_int_equal(c.nprev, 0);
    /* the grace goes with a secret, within 30 days; a refusal changes nothing */
    assert_int_equal(patch(&c, "{\"secret_grace_s\":60}", 600, now, field), -1);
    assert_string_equal(field, "secret_grace_s");
    assert_int_equal(patch(&c, "{\"secret\":\"secret-number-seven-0123\",\"secret_grace_s\":-1}",
                           600, now, field),
                     -1);
    assert_string_equal(field, "secret_grace_s");
    assert_int_equal(patch(&c,
                           "{\"secret\":\"secret-number-seven-0123\",\"secret_grace_s\":2592001}",
                           600, now, field),
                     -1);
    assert_int_equal(patch(&c, "{\"secret\":\"short\",\"secret_grace_s\":60}", 600, now, field),
                     -1);
    assert_string_equal(field, "secret");
    assert_string_equal(c.secret, "secret-number-six-0123");
    assert_int_equal(c.nprev, 0);
    /* previous_secrets is the store's, not the API's */
    assert_int_equal(patch(&c, "{\"previous_secrets\":[]}", 600, now, field), -1);
    assert_string_equal(field, "previous_secrets");
    wh_conf_free(&c);
}

static void previous_secrets_are_stored_and_expired_ones_dropped(void **state)
{
    (void)state;
    long long now = (long long)time(NULL);
    struct wh_conf c = {0};
    char text[600], field[96];
    snprintf(text, sizeof(text),
             "{\"id\":\"crm\",\"url\":\"https://a.example\",\"events\":[\"*\"],"
             "\"secret\":\"current-secret-0123\",\"signature\":\"standard\","
             "\"previous_secrets\":[{\"secret\":\"earlier-secret-0123\",\"expires\":%lld},"
             "{\"secret\":\"expired-secret-0123\",\"expires\":%lld}]}",
             now + 300, now - 1);
    assert_int_equal(apply(&c, text, WH_STORED, NULL), 0);
    assert_int_equal(c.nprev, 1);
    assert_string_equal(c.prev[0].secret, "earlier-secret-0123");
    /* the store's form keeps it; everyone else sees when it expires */
    json_t *o = wh_conf_json(&c, 1);
    json_t *p = json_array_get(json_object_get(o, "previous_secrets"), 0);
    assert_string_equal(json_string_value(json_object_get(p, "secret")), "earlier-secret-0123");
    assert_true(json_integer_value(json_object_get(p, "expires")) == now + 300);
    json_object_del(o, "static");
    struct wh_conf back = {0};
    struct wh_problem pb = {{0}, {0}};
    assert_int_equal(wh_conf_apply(&back, o, WH_STORED, NULL, 0, &pb), 0);
    assert_int_equal(back.nprev, 1);
    assert_int_equal(back.scheme, WH_SCHEME_STANDARD);
    assert_string_equal(back.prev[0].secret, "earlier-secret-0123");
    json_decref(o);
    o = wh_conf_json(&c, 0);
    p = json_array_get(json_object_get(o, "previous_secrets"), 0);
    assert_null(json_object_get(p, "secret"));
    assert_non_null(json_object_get(p, "expires"));
    json_decref(o);
    struct wh_conf copy;
    assert_int_equal(wh_conf_copy(&copy, &c), 0);
    assert_string_equal(copy.prev[0].secret, "earlier-secret-0123");
    assert_ptr_not_equal(copy.prev[0].secret, c.prev[0].secret);
    wh_conf_free(&copy);
    wh_conf_free(&back);
    wh_conf_free(&c);
    /* each bad entry is named */
    static const char *const bad[][2] = {
        {"{\"previous_secrets\":{}}", "previous_secrets"},
        {"{\"previous_secrets\":[1]}", "previous_secrets[0]"},
        {"{\"previous_secrets\":[{\"secret\":\"earlier-secret-0123\"}]}", "previous_secrets[0]"},
        {"{\"previous_secrets\":[{\"secret\":\"short\",\"expires\":1}]}",
         "previous_secrets[0].secret"},
        {"{\"previous_secrets\":[{\"secret\":\"earlier-secret-0123\",\"expires\":1,\"x\":1}]}",
         "previous_secrets[0]"},
        {"{\"previous_secrets\":[{},{},{},{}]}", "previous_secrets"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        snprintf(text, sizeof(text),
                 "{\"id\":\"crm\",\"url\":\"https://a.example\",\"events\":[\"*\"],"
                 "\"secret\":\"current-secret-0123\",%s",
                 bad[i][0] + 1);
        if (apply(&c, text, WH_STORED, field) != -1 || strcmp(field, bad[i][1]))
            fail_msg("%s: wanted a problem naming %s, got '%s'", bad[i][0], bad[i][1], field);
        wh_conf_free(&c);
    }
}

static void url_check_allows_listed_networks_only(void **state)
{
    (void)state;
    struct netlist_net *nets = NULL;
    size_t n = 0;
    char err[200];
    assert_int_equal(netlist_parse("127.0.0.0/8", &nets, &n, err, sizeof(err)), 0);
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
        cmocka_unit_test(the_standard_signature_matches_the_reference_vector),
        cmocka_unit_test(whsec_secrets_are_base64_of_24_to_64_bytes),
        cmocka_unit_test(the_scheme_is_a_setting_of_its_own),
        cmocka_unit_test(a_new_secret_keeps_the_old_one_signing_for_the_grace_period),
        cmocka_unit_test(previous_secrets_are_stored_and_expired_ones_dropped),
        cmocka_unit_test(url_check_allows_listed_networks_only),
        cmocka_unit_test(random_ids_are_hex_and_differ),
    };
    return cmocka_run_group_tests_name("bus_webhook", tests, NULL, NULL);
}
