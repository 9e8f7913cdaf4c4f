/* Integration tests for POST /v1/calls, the originate guard, idempotency,
 * the per-key dial policy and CORS: the real amibridge against the real
 * ami-sim, which counts the originates it receives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/net.h"
#include "support/receiver.h"
#include "support/redis.h"
#include "support/sse.h"
#include "support/stack.h"
#include "support/sub.h"
#include "support/testenv.h"

#define CRM  "crm-token-0123456789abcdef"
#define OPS  "ops-token-0123456789abcdef"
#define KEYS "AMIBRIDGE_API_KEYS=crm:" CRM ":call,read ops:" OPS ":read,call,control,actions,admin"

static void call(const struct stack *e, const char *token, const char *body, const char *idem,
                 struct http_resp *r)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/calls", e->bridge.url);
    if (!idem) {
        http_call("POST", url, token, body, NULL, 60000, r);
        return;
    }
    /* libcurl easy with an extra header: build it by hand */
    char hdr[300];
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", idem);
    struct http_batch_item it = {.method = "POST", .url = url, .body = body, .header = hdr};
    http_batch(&it, 1, token, 1, 60000);
    *r = it.resp;
}

static void assert_status(const struct http_resp *r, long status)
{
    if (r->status != status)
        fail_msg("expected %ld, got %ld: %s", status, r->status, r->body ? r->body : r->error);
}

static void assert_problem(const struct http_resp *r, long status, const char *slug,
                           const char *field)
{
    assert_status(r, status);
    char type[128];
    snprintf(type, sizeof(type), "urn:amibridge:problem:%s", slug);
    if (!http_json_str(r, "type") || strcmp(http_json_str(r, "type"), type))
        fail_msg("expected %s: %s", type, r->body);
    if (field && (!http_json_str(r, "field") || strcmp(http_json_str(r, "field"), field)))
        fail_msg("expected field %s: %s", field, r->body);
}

/* --- outcomes ----------------------------------------------------------------------------- */

static void every_outcome_of_a_call(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    static const struct {
        const char *body, *status;
        int answered;
        long reason;
    } cases[] = {
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}", "answered", 1,
         4},
        {"{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":\"100\",\"priority\":1,"
         "\"caller_id\":\"\\\"Sales\\\" <100>\",\"variables\":{\"CRM_ID\":\"42\"},\"timeout\":30,"
         "\"account\":\"crm\",\"wait\":true}",
         "answered", 1, 4},
        {"{\"channel\":\"Local/100@demo\",\"application\":\"Wait\",\"data\":\"1\"}", "answered", 1,
         4},
        {"{\"channel\":\"Local/300@demo\",\"context\":\"demo\",\"exten\":\"100\"}", "busy", 0, 5},
        {"{\"channel\":\"Local/301@demo\",\"context\":\"demo\",\"exten\":\"100\"}", "congestion", 0,
         8},
        {"{\"channel\":\"Local/100@nosuchcontext\",\"context\":\"demo\",\"exten\":\"100\"}",
         "failed", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_resp r;
        call(&e, NULL, cases[i].body, NULL, &r);
        assert_status(&r, 200);
        assert_string_equal(http_json_str(&r, "status"), cases[i].status);
        assert_int_equal(json_is_true(json_object_get(r.json, "answered")), cases[i].answered);
        assert_int_equal(json_integer_value(json_object_get(r.json, "reason_code")),
                         cases[i].reason);
        const char *id = http_json_str(&r, "id");
        assert_non_null(id);
        if (cases[i].answered) {
            assert_non_null(strstr(http_json_str(&r, "channel"), ";1"));
            assert_non_null(http_json_str(&r, "uniqueid"));
            assert_string_equal(http_json_str(&r, "linkedid"), http_json_str(&r, "uniqueid"));
        } else {
            assert_true(json_is_null(json_object_get(r.json, "uniqueid")));
        }
        char *rl = http_resp_header(&r, "RateLimit-Remaining");
        assert_non_null(rl);
        free(rl);
        http_resp_free(&r);
    }
    stack_stop(&e);
}

static void wait_true_returns_no_answer_after_the_ring_timeout(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    struct http_resp r;
    long long t0 = testenv_now_ms();
    call(&e, NULL,
         "{\"channel\":\"Local/302@demo\",\"context\":\"demo\",\"exten\":\"100\",\"timeout\":2}",
         NULL, &r);
    long long ms = testenv_now_ms() - t0;
    assert_status(&r, 200);
    assert_string_equal(http_json_str(&r, "status"), "no_answer");
    assert_false(json_is_true(json_object_get(r.json, "answered")));
    print_message("no_answer after %lld ms (ring timeout 2 s)\n", ms);
    assert_true(ms >= 1800 && ms < 5000);
    http_resp_free(&r);
    stack_stop(&e);
}

/* wait:false answers 202 at once; the outcome is the OriginateResponse
 * event carrying the same id, seen here by any events-on AMI session. */
static void wait_false_answers_202_and_the_event_carries_the_id(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    struct net_client ev;
    assert_int_equal(net_connect(&ev, "127.0.0.1", e.sim.port, 2000), 0);
    assert_int_equal(net_login(&ev, "bridge", "bridgesecret", "call", 2000), 0);
    struct http_resp r;
    long long t0 = testenv_now_ms();
    call(&e, NULL,
         "{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false}",
         NULL, &r);
    long long ms = testenv_now_ms() - t0;
    assert_status(&r, 202);
    assert_true(ms < 1000); /* 600 rings for 2 s: the reply did not wait */
    assert_string_equal(http_json_str(&r, "status"), "queued");
    char id[64];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "id"));
    http_resp_free(&r);
    struct ami_msg *m = NULL;
    assert_int_equal(net_wait_event(&ev, "OriginateResponse", 5000, &m), 1);
    assert_string_equal(ami_msg_get(m, "ActionID"), id);
    assert_string_equal(ami_msg_get(m, "Response"), "Success");
    ami_msg_free(m);
    net_close(&ev);
    stack_stop(&e);
}

/* --- validation ----------------------------------------------------------------------------- */

static void every_validation_error_names_its_field(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    long before = amisim_stat(e.sim.port, "OriginatesTotal");
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"context\":\"demo\",\"exten\":\"100\"}", "channel"},
        {"{\"channel\":5,\"context\":\"demo\",\"exten\":\"100\"}", "channel"},
        {"{\"channel\":\"\",\"context\":\"demo\",\"exten\":\"100\"}", "channel"},
        {"{\"channel\":\"Local/100@demo\",\"exten\":\"100\"}", "context"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\"}", "exten"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"priority\":0}",
         "priority"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"priority\":\"1\"}",
         "priority"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"timeout\":0}",
         "timeout"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"timeout\":601}",
         "timeout"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"wait\":1}",
         "wait"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"variables\":[]}",
         "variables"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\","
         "\"variables\":{\"A\":1}}",
         "variables.A"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\","
         "\"variables\":{\"A=B\":\"1\"}}",
         "variables.A=B"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\","
         "\"variables\":{\"A\":\"x\\r\\nAction: Command\"}}",
         "variables"},
        {"{\"channel\":\"Local/100@demo\",\"application\":\"Wait\",\"context\":\"demo\"}",
         "context"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"data\":\"x\"}",
         "data"},
        {"{\"channel\":\"Local/100@demo\\nAction: Logoff\",\"context\":\"demo\",\"exten\":\"1\"}",
         "channel"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\",\"colour\":1}",
         "colour"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_resp r;
        call(&e, NULL, cases[i].body, NULL, &r);
        assert_problem(&r, 400, "invalid-field", cases[i].field);
        http_resp_free(&r);
    }
    struct http_resp r;
    call(&e, NULL, "{\"channel\":\"Local/100@demo\",\"application\":\"System\",\"data\":\"id\"}",
         NULL, &r);
    assert_problem(&r, 403, "action-denied", "application");
    http_resp_free(&r);
    call(&e, NULL,
         "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"1\","
         "\"variables\":{\"X\":\"${SHELL(id)}\"}}",
         NULL, &r);
    assert_problem(&r, 403, "action-denied", "variables");
    http_resp_free(&r);
    call(&e, NULL, "{\"channel\":\"Local/100@demo\"}", "bad key with spaces", &r);
    assert_problem(&r, 400, "invalid-field", "Idempotency-Key");
    http_resp_free(&r);
    /* nothing of the above reached the PBX */
    assert_int_equal(amisim_stat(e.sim.port, "OriginatesTotal"), before);
    stack_stop(&e);
}

/* --- idempotency ---------------------------------------------------------------------------- */

static void same_idempotency_key_fifty_times_places_one_call(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    long before = amisim_stat(e.sim.port, "OriginatesTotal");
    enum { N = 50 };
    static struct http_batch_item items[N];
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/calls", e.bridge.url);
    const char *body = "{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":\"100\"}";
    for (int i = 0; i < N; i++) {
        items[i].method = "POST";
        items[i].url = url;
        items[i].body = body;
        items[i].header = "Idempotency-Key: click-42";
    }
    assert_int_equal(http_batch(items, N, CRM, N, 30000), 0);
    const char *first = NULL;
    int replayed = 0;
    for (int i = 0; i < N; i++) {
        assert_status(&items[i].resp, 200);
        const char *id = http_json_str(&items[i].resp, "id");
        if (!first)
            first = id;
        assert_string_equal(id, first);
        char *h = http_resp_header(&items[i].resp, "Idempotent-Replayed");
        replayed += h != NULL;
        free(h);
    }
    assert_int_equal(replayed, N - 1);
    assert_int_equal(amisim_stat(e.sim.port, "OriginatesTotal") - before, 1);
    for (int i = 0; i < N; i++)
        http_resp_free(&items[i].resp);

    /* later: the stored reply; another body: refused; another API key: its own call */
    struct http_resp r;
    call(&e, CRM, body, "click-42", &r);
    assert_status(&r, 200);
    http_resp_free(&r);
    call(&e, CRM, "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}",
         "click-42", &r);
    assert_problem(&r, 422, "idempotency-key-reused", "Idempotency-Key");
    http_resp_free(&r);
    call(&e, OPS, body, "click-42", &r);
    assert_status(&r, 200);
    assert_null(http_resp_header(&r, "Idempotent-Replayed"));
    http_resp_free(&r);
    assert_int_equal(amisim_stat(e.sim.port, "OriginatesTotal") - before, 2);
    stack_stop(&e);
}

/* --- the originate guard ------------------------------------------------------------------ */

static void a_burst_of_clicks_is_rate_limited(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, "AMIBRIDGE_CALLS_PER_SECOND=5", "AMIBRIDGE_CALLS_BURST=10", NULL};
    assert_int_equal(stack_start(&e, env), 0);
    enum { N = 2000 };
    static struct http_batch_item items[N];
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/calls", e.bridge.url);
    for (int i = 0; i < N; i++) {
        items[i].method = "POST";
        items[i].url = url;
        items[i].body = "{\"channel\":\"Local/150@demo\",\"context\":\"demo\",\"exten\":\"150\","
                        "\"wait\":false}";
    }
    long long t0 = testenv_now_ms();
    assert_int_equal(http_batch(items, N, CRM, 64, 60000), 0);
    double secs = (double)(testenv_now_ms() - t0) / 1000.0;
    int ok = 0, limited = 0;
    for (int i = 0; i < N; i++) {
        if (items[i].resp.status == 202) {
            ok++;
        } else {
            assert_status(&items[i].resp, 429);
            char *ra = http_resp_header(&items[i].resp, "Retry-After");
            assert_non_null(ra);
            assert_true(atoi(ra) >= 1);
            free(ra);
            limited++;
        }
        http_resp_free(&items[i].resp);
    }
    print_message("%d placed, %d refused in %.2f s\n", ok, limited, secs);
    /* the burst, plus the rate over the time the clicks took */
    assert_true(ok >= 10 && ok <= 10 + (int)(5 * secs) + 2);
    assert_int_equal(ok + limited, N);
    stack_stop(&e);
}

static void originates_in_flight_never_exceed_the_cap(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, "AMIBRIDGE_CALLS_PER_SECOND=10000", "AMIBRIDGE_CALLS_BURST=10000",
                         "AMIBRIDGE_CALLS_MAX_INFLIGHT=5", NULL};
    assert_int_equal(stack_start(&e, env), 0);
    enum { N = 300 };
    static struct http_batch_item items[N];
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/calls", e.bridge.url);
    for (int i = 0; i < N; i++) {
        items[i].method = "POST";
        items[i].url = url;
        /* 600 rings for 2 s: each originate stays in flight a while */
        items[i].body = "{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":\"100\","
                        "\"wait\":false}";
    }
    assert_int_equal(http_batch(items, N, CRM, 64, 60000), 0);
    int ok = 0, capped = 0;
    for (int i = 0; i < N; i++) {
        if (items[i].resp.status == 202)
            ok++;
        else if (items[i].resp.status == 429 &&
                 !strcmp(http_json_str(&items[i].resp, "type"),
                         "urn:amibridge:problem:too-many-calls-in-flight"))
            capped++;
        else
            fail_msg("request %d: %ld %s", i, items[i].resp.status, items[i].resp.body);
        http_resp_free(&items[i].resp);
    }
    long max = amisim_stat(e.sim.port, "OriginatesInFlightMax");
    print_message("%d placed, %d capped; the PBX saw at most %ld in flight\n", ok, capped, max);
    assert_true(ok >= 5);
    assert_true(capped > 0);
    assert_true(max >= 1 && max <= 5);
    /* the generic route counts too */
    struct http_resp r;
    char aurl[128];
    snprintf(aurl, sizeof(aurl), "%s/v1/actions/Originate", e.bridge.url);
    int seen429 = 0;
    for (int i = 0; i < 10 && !seen429; i++) {
        http_call("POST", aurl, OPS,
                  "{\"Channel\":\"Local/600@demo\",\"Context\":\"demo\",\"Exten\":\"100\","
                  "\"Priority\":1,\"Async\":\"true\"}",
                  NULL, 10000, &r);
        seen429 = r.status == 429;
        assert_true(r.status == 200 || r.status == 429);
        http_resp_free(&r);
    }
    assert_true(seen429);
    assert_true(amisim_stat(e.sim.port, "OriginatesInFlightMax") <= 5);
    stack_stop(&e);
}

/* --- dial policy ------------------------------------------------------------------------------ */

static void the_dial_policy_refuses_before_the_pbx_sees_anything(void **state)
{
    (void)state;
    char dir[512], path[600];
    assert_int_equal(testenv_tmpdir(dir, sizeof(dir), "policy"), 0);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"api_keys\":[{\"name\":\"crm\",\"token\":\"" CRM
          "\",\"scopes\":[\"call\",\"actions\",\"control\"],"
          "\"allow_channels\":[\"Local/1??@demo\",\"Local/0*@demo\",\"PJSIP/1???\"],"
          "\"allow_contexts\":[\"demo\"],\"deny_extens\":[\"00*\",\"900*\"]}]}",
          f);
    fclose(f);
    char cfgvar[700];
    snprintf(cfgvar, sizeof(cfgvar), "AMIBRIDGE_CONFIG=%s", path);
    struct stack e;
    const char *env[] = {cfgvar, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    long before = amisim_stat(e.sim.port, "OriginatesTotal");
    static const struct {
        const char *body, *field, *rule;
    } cases[] = {
        {"{\"channel\":\"PJSIP/99999\",\"context\":\"demo\",\"exten\":\"100\"}", "channel",
         "allow_channels"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"other\",\"exten\":\"100\"}", "context",
         "allow_contexts"},
        {"{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"0044123456\"}", "exten",
         "deny_extens: 00*"},
        {"{\"channel\":\"Local/0044123@demo\",\"application\":\"Wait\",\"data\":\"1\"}", "channel",
         "deny_extens: 00*"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_resp r;
        call(&e, CRM, cases[i].body, NULL, &r);
        assert_problem(&r, 403, "dial-policy", cases[i].field);
        assert_string_equal(http_json_str(&r, "rule"), cases[i].rule);
        http_resp_free(&r);
    }
    /* the generic Originate obeys the same policy */
    struct http_resp r;
    char aurl[128];
    snprintf(aurl, sizeof(aurl), "%s/v1/actions/Originate", e.bridge.url);
    http_call("POST", aurl, CRM,
              "{\"Channel\":\"Local/100@demo\",\"Context\":\"demo\",\"Exten\":\"9001\","
              "\"Priority\":1,\"Async\":\"true\"}",
              NULL, 10000, &r);
    assert_problem(&r, 403, "dial-policy", "Exten");
    http_resp_free(&r);
    assert_int_equal(amisim_stat(e.sim.port, "OriginatesTotal"), before);
    /* moving a live call elsewhere is dialling too: redirect, blind
     * transfer and their generic actions obey the policy */
    static const struct {
        const char *path, *body, *field;
    } moves[] = {
        {"/v1/channels/Local%2F200%40demo-00000000%3B1/redirect",
         "{\"context\":\"other\",\"exten\":\"100\",\"priority\":1}", "context"},
        {"/v1/channels/Local%2F200%40demo-00000000%3B1/blind-transfer",
         "{\"context\":\"demo\",\"exten\":\"0044123\"}", "exten"},
        {"/v1/actions/Redirect",
         "{\"Channel\":\"Local/200@demo-00000000;1\",\"Context\":\"demo\",\"Exten\":\"100\","
         "\"Priority\":1,\"ExtraChannel\":\"Local/200@demo-00000000;2\",\"ExtraContext\":\"x\","
         "\"ExtraExten\":\"100\",\"ExtraPriority\":1}",
         "ExtraContext"},
        {"/v1/actions/BlindTransfer",
         "{\"Channel\":\"Local/200@demo-00000000;1\",\"Context\":\"demo\",\"Exten\":\"9005\"}",
         "Exten"},
    };
    for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
        snprintf(aurl, sizeof(aurl), "%s%s", e.bridge.url, moves[i].path);
        http_call("POST", aurl, CRM, moves[i].body, NULL, 10000, &r);
        assert_problem(&r, 403, "dial-policy", moves[i].field);
        http_resp_free(&r);
    }
    assert_true(amisim_stat(e.sim.port, "Action-Redirect") <= 0); /* -1: never seen */
    assert_true(amisim_stat(e.sim.port, "Action-BlindTransfer") <= 0);
    /* an allowed destination reaches the PBX (which has no such channel) */
    snprintf(aurl, sizeof(aurl), "%s%s", e.bridge.url, moves[0].path);
    http_call("POST", aurl, CRM, "{\"context\":\"demo\",\"exten\":\"100\",\"priority\":1}", NULL,
              10000, &r);
    assert_problem(&r, 404, "no-such-channel", NULL);
    http_resp_free(&r);
    assert_int_equal(amisim_stat(e.sim.port, "Action-Redirect"), 1);
    /* and what it allows goes through */
    call(&e, CRM, "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}", NULL,
         &r);
    assert_status(&r, 200);
    http_resp_free(&r);
    stack_stop(&e);
    testenv_rmdir(dir);
}

/* --- browsers ------------------------------------------------------------------------------- */

static void cors_preflight_from_allowed_and_foreign_origins(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, "AMIBRIDGE_CORS_ORIGINS=https://crm.example https://other.example",
                         NULL};
    assert_int_equal(stack_start(&e, env), 0);
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/calls", e.bridge.url);
    struct http_batch_item pre = {.method = "OPTIONS",
                                  .url = url,
                                  .header = "Origin: https://crm.example",
                                  .header2 = "Access-Control-Request-Method: POST"};
    http_batch(&pre, 1, NULL, 1, 5000);
    assert_status(&pre.resp, 204);
    char *h = http_resp_header(&pre.resp, "Access-Control-Allow-Origin");
    assert_string_equal(h, "https://crm.example");
    free(h);
    h = http_resp_header(&pre.resp, "Access-Control-Allow-Headers");
    assert_non_null(strstr(h, "Authorization"));
    assert_non_null(strstr(h, "Idempotency-Key"));
    free(h);
    h = http_resp_header(&pre.resp, "Access-Control-Allow-Methods");
    assert_string_equal(h, "POST");
    free(h);
    http_resp_free(&pre.resp);

    struct http_batch_item foreign = {.method = "OPTIONS",
                                      .url = url,
                                      .header = "Origin: https://evil.example",
                                      .header2 = "Access-Control-Request-Method: POST"};
    http_batch(&foreign, 1, NULL, 1, 5000);
    assert_problem(&foreign.resp, 403, "cors-origin-not-allowed", NULL);
    h = http_resp_header(&foreign.resp, "Access-Control-Allow-Origin");
    assert_null(h);
    http_resp_free(&foreign.resp);

    /* the real request from the page: a call-only key, CORS headers on the reply */
    struct http_batch_item post = {
        .method = "POST",
        .url = url,
        .body = "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}",
        .header = "Origin: https://crm.example"};
    http_batch(&post, 1, CRM, 1, 10000);
    assert_status(&post.resp, 200);
    h = http_resp_header(&post.resp, "Access-Control-Allow-Origin");
    assert_string_equal(h, "https://crm.example");
    free(h);
    h = http_resp_header(&post.resp, "Access-Control-Expose-Headers");
    assert_non_null(strstr(h, "RateLimit-Remaining"));
    free(h);
    http_resp_free(&post.resp);
    stack_stop(&e);
}

static void scopes_apply_to_calls(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {"AMIBRIDGE_API_KEYS=crm:" CRM ":call ro:ro-token-0123456789abcd:read",
                         NULL};
    assert_int_equal(stack_start(&e, env), 0);
    const char *body = "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}";
    struct http_resp r;
    call(&e, NULL, body, NULL, &r);
    assert_problem(&r, 401, "unauthorized", NULL);
    http_resp_free(&r);
    call(&e, "ro-token-0123456789abcd", body, NULL, &r);
    assert_problem(&r, 403, "forbidden", NULL);
    assert_string_equal(http_json_str(&r, "required_scope"), "call");
    http_resp_free(&r);
    call(&e, CRM, body, NULL, &r);
    assert_status(&r, 200);
    http_resp_free(&r);
    stack_stop(&e);
}

/* Two replicas share one Redis: the same key sent to both places one call. */
static void idempotency_holds_across_replicas_with_redis(void **state)
{
    (void)state;
    struct redis_srv rs;
    assert_int_equal(redis_start(&rs, 0), 0);
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    char rurl[96];
    snprintf(rurl, sizeof(rurl), "AMIBRIDGE_REDIS_URL=%s", rs.url);
    const char *env1[] = {KEYS, rurl, "AMIBRIDGE_INSTANCE_ID=replica-a", NULL};
    const char *env2[] = {KEYS, rurl, "AMIBRIDGE_INSTANCE_ID=replica-b", NULL};
    struct bridge b[2];
    assert_int_equal(bridge_start(&b[0], sim.port, env1), 0);
    assert_int_equal(bridge_start(&b[1], sim.port, env2), 0);
    for (int i = 0; i < 2; i++) {
        assert_true(bridge_wait_status(&b[i], "/readyz", 200, 5000) >= 0);
        /* ready is about AMI; wait for Redis too */
        assert_int_equal(bridge_wait_redis(&b[i], 5000), 0);
    }
    struct stack e = {.sim = sim, .bridge = b[0]};
    long before = amisim_stat(e.sim.port, "OriginatesTotal");
    enum { N = 40 };
    static struct http_batch_item items[N];
    char url[2][128];
    snprintf(url[0], sizeof(url[0]), "%s/v1/calls", b[0].url);
    snprintf(url[1], sizeof(url[1]), "%s/v1/calls", b[1].url);
    for (int i = 0; i < N; i++) {
        items[i].method = "POST";
        items[i].url = url[i % 2];
        items[i].body = "{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":\"100\"}";
        items[i].header = "Idempotency-Key: replicated-1";
    }
    assert_int_equal(http_batch(items, N, CRM, N, 30000), 0);
    const char *first = http_json_str(&items[0].resp, "id");
    assert_non_null(first);
    for (int i = 0; i < N; i++) {
        assert_status(&items[i].resp, 200);
        assert_string_equal(http_json_str(&items[i].resp, "id"), first);
    }
    for (int i = 0; i < N; i++)
        http_resp_free(&items[i].resp);
    assert_int_equal(amisim_stat(e.sim.port, "OriginatesTotal") - before, 1);
    const char *keys[] = {"--scan", "--pattern", "ami:idem:*", NULL};
    char *out = redis_cli(&rs, keys);
    assert_non_null(out);
    assert_int_equal(strlen(out) > 0 && strchr(out, '\n') == strrchr(out, '\n'), 1);
    free(out);

    /* Redis gone: a keyed call is refused rather than risk a duplicate,
     * a call without a key still goes through */
    redis_stop(&rs);
    testenv_sleep_ms(300);
    struct http_resp r;
    call(&e, CRM, "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}",
         "replicated-2", &r);
    assert_problem(&r, 503, "idempotency-unavailable", NULL);
    http_resp_free(&r);
    call(&e, CRM, "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}", NULL,
         &r);
    assert_status(&r, 200);
    http_resp_free(&r);
    bridge_stop(&b[0], 0);
    bridge_stop(&b[1], 0);
    amisim_stop(&sim);
}

/* --- calls as resources and events --------------------------------------------------------- */

/* The call events of `id` among what the subscriber got, in order. */
static size_t events_of(struct sub *s, const char *id, json_t **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n && n < max; i++) {
        json_t *ev = json_loads(s->v[i].payload, 0, NULL);
        const char *cid = json_string_value(json_object_get(json_object_get(ev, "call"), "id"));
        if (cid && !strcmp(cid, id))
            out[n++] = ev;
        else
            json_decref(ev);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The id of the call whose first leg starts with `prefix`, from its
 * call.created, waiting up to 10 s. */
static char *call_id_of(struct sub *s, const char *prefix)
{
    for (int tries = 0; tries < 100; tries++) {
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->n; i++) {
            json_t *ev = json_loads(s->v[i].payload, 0, NULL);
            json_t *legs = json_object_get(json_object_get(ev, "call"), "legs");
            const char *ch = json_string_value(json_object_get(json_array_get(legs, 0), "channel"));
            if (ch && !strncmp(ch, prefix, strlen(prefix))) {
                char *id =
                    strdup(json_string_value(json_object_get(json_object_get(ev, "call"), "id")));
                json_decref(ev);
                pthread_mutex_unlock(&s->mu);
                return id;
            }
            json_decref(ev);
        }
        pthread_mutex_unlock(&s->mu);
        usleep(100 * 1000);
    }
    return NULL;
}

static void calls_are_followed_published_once_and_readable_after_their_end(void **state)
{
    (void)state;
    struct redis_srv rs;
    assert_int_equal(redis_start(&rs, 0), 0);
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    char rurl[96];
    snprintf(rurl, sizeof(rurl), "AMIBRIDGE_REDIS_URL=%s", rs.url);
    const char *env[] = {KEYS, rurl, NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0);
    assert_int_equal(bridge_wait_redis(&b, 5000), 0);
    struct sub s;
    assert_int_equal(sub_start(&s, rs.port, "calls.*"), 0);
    struct stack e = {.sim = sim, .bridge = b};
    static const struct {
        const char *body, *first_leg, *outcome;
    } cases[] = {
        {"{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false,"
         "\"reference\":\"crm-42\",\"variables\":{\"CRM_ID\":\"42\"}}",
         "Local/600@demo-", "answered"},
        {"{\"channel\":\"Local/300@demo\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false}",
         "Local/300@demo-", "busy"},
        {"{\"channel\":\"Local/301@demo\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false}",
         "Local/301@demo-", "congestion"},
    };
    enum { NC = sizeof(cases) / sizeof(cases[0]) };
    char *ids[NC];
    for (size_t i = 0; i < NC; i++) {
        struct http_resp r;
        call(&e, CRM, cases[i].body, NULL, &r);
        assert_status(&r, 202);
        /* the call's id is known at once, and is the one of its events */
        const char *given = http_json_str(&r, "call_id");
        assert_non_null(given);
        ids[i] = call_id_of(&s, cases[i].first_leg);
        if (!ids[i])
            fail_msg("no call.created for %s", cases[i].first_leg);
        assert_string_equal(ids[i], given);
        http_resp_free(&r);
    }
    /* while the first rings or talks, it is live */
    char url[256];
    struct http_resp r;
    snprintf(url, sizeof(url), "%s/v1/calls/live", b.url);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_status(&r, 200);
    assert_non_null(strstr(r.body, ids[0]));
    http_resp_free(&r);
    for (size_t i = 0; i < NC; i++) {
        json_t *evs[16];
        size_t n = 0;
        for (int tries = 0; tries < 150; tries++) { /* the answered one lasts ~6 s */
            for (size_t k = 0; k < n; k++)
                json_decref(evs[k]);
            n = events_of(&s, ids[i], evs, 16);
            if (n && !strcmp(json_string_value(json_object_get(evs[n - 1], "type")), "call.ended"))
                break;
            usleep(100 * 1000);
        }
        assert_true(n >= 2);
        assert_string_equal(json_string_value(json_object_get(evs[0], "type")), "call.created");
        size_t ended = 0;
        for (size_t k = 0; k < n; k++)
            ended += !strcmp(json_string_value(json_object_get(evs[k], "type")), "call.ended");
        assert_int_equal(ended, 1);
        json_t *last = json_object_get(evs[n - 1], "call");
        assert_string_equal(json_string_value(json_object_get(evs[n - 1], "type")), "call.ended");
        if (strcmp(json_string_value(json_object_get(last, "outcome")), cases[i].outcome))
            fail_msg("%s: outcome %s, not %s", cases[i].first_leg,
                     json_string_value(json_object_get(last, "outcome")), cases[i].outcome);
        assert_string_equal(json_string_value(json_object_get(last, "direction")), "originated");
        json_t *orig = json_object_get(last, "origination");
        assert_string_equal(json_string_value(json_object_get(orig, "api_key")), "crm");
        assert_non_null(json_string_value(json_object_get(orig, "id")));
        if (i == 0) {
            assert_string_equal(json_string_value(json_object_get(orig, "reference")), "crm-42");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(last, "variables"), "CRM_ID")),
                "42");
        }
        for (size_t k = 0; k < n; k++)
            json_decref(evs[k]);
        /* readable after its end */
        snprintf(url, sizeof(url), "%s/v1/calls/%s", b.url, ids[i]);
        assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
        assert_status(&r, 200);
        assert_string_equal(http_json_str(&r, "state"), "ended");
        assert_string_equal(http_json_str(&r, "outcome"), cases[i].outcome);
        http_resp_free(&r);
    }
    /* nothing is live any more, and an unknown id is 404 */
    snprintf(url, sizeof(url), "%s/v1/calls/live", b.url);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_int_equal(json_array_size(json_object_get(r.json, "calls")), 0);
    http_resp_free(&r);
    snprintf(url, sizeof(url), "%s/v1/calls/no.such.call", b.url);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_problem(&r, 404, "no-such-call", NULL);
    http_resp_free(&r);
    /* the last hour per minute counts each call once, by its outcome */
    snprintf(url, sizeof(url), "%s/v1/calls/stats", b.url);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_status(&r, 200);
    json_t *minutes = json_object_get(r.json, "minutes");
    assert_int_equal(json_array_size(minutes), 60);
    json_int_t ended = 0, answered = 0, busy = 0, congestion = 0, other = 0;
    size_t k;
    json_t *m;
    json_array_foreach (minutes, k, m) {
        json_t *by = json_object_get(m, "outcomes");
        ended += json_integer_value(json_object_get(m, "ended"));
        answered += json_integer_value(json_object_get(by, "answered"));
        busy += json_integer_value(json_object_get(by, "busy"));
        congestion += json_integer_value(json_object_get(by, "congestion"));
        other += json_integer_value(json_object_get(by, "missed")) +
                 json_integer_value(json_object_get(by, "no_answer")) +
                 json_integer_value(json_object_get(by, "failed")) +
                 json_integer_value(json_object_get(by, "canceled"));
    }
    if (ended != 3 || answered != 1 || busy != 1 || congestion != 1 || other != 0)
        fail_msg(
            "per minute: %lld ended, %lld answered, %lld busy, %lld congestion, %lld other:\n%s",
            (long long)ended, (long long)answered, (long long)busy, (long long)congestion,
            (long long)other, r.body);
    http_resp_free(&r);
    for (size_t i = 0; i < NC; i++)
        free(ids[i]);
    sub_stop(&s);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
    redis_stop(&rs);
}

/* The PBX dies with a call up and comes back without it: after the
 * reconnect, CoreShowChannels settles the call, ended by the system. */
static void a_call_gone_while_ami_was_down_ends_after_the_reconnect(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    struct http_resp r;
    call(&e, CRM,
         "{\"channel\":\"Local/200@demo\",\"context\":\"demo\",\"exten\":\"200\",\"wait\":false}",
         NULL, &r);
    assert_status(&r, 202);
    char id[64];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "call_id"));
    http_resp_free(&r);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/calls/%s", e.bridge.url, id);
    int live = 0;
    for (int tries = 0; tries < 50 && !live; tries++) {
        assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
        /* only the PBX answered it (no Dial): it counts as answered at its end */
        live = r.status == 200 && !strcmp(http_json_str(&r, "state"), "ringing") &&
               json_array_size(json_object_get(r.json, "legs")) == 2;
        http_resp_free(&r);
        if (!live)
            usleep(100 * 1000);
    }
    assert_true(live);
    /* SIGKILL: no Hangup ever comes; the PBX is back on the same port */
    int port = e.sim.port;
    proc_signal(&e.sim.proc, SIGKILL);
    proc_wait(&e.sim.proc, -1);
    amisim_stop(&e.sim);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *same_port[] = {"--listen", listen, NULL};
    assert_int_equal(amisim_start(&e.sim, same_port), 0);
    const char *by = NULL;
    for (int tries = 0; tries < 100 && !by; tries++) {
        assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
        if (r.status == 200 && !strcmp(http_json_str(&r, "state"), "ended")) {
            json_t *h = json_object_get(r.json, "hangup");
            assert_string_equal(json_string_value(json_object_get(h, "by")), "system");
            assert_non_null(strstr(json_string_value(json_object_get(h, "cause_text")),
                                   "not connected to AMI"));
            assert_string_equal(http_json_str(&r, "outcome"), "answered");
            by = "system";
        }
        http_resp_free(&r);
        if (!by)
            usleep(100 * 1000);
    }
    if (!by)
        fail_msg("the call never ended after the reconnect");
    snprintf(url, sizeof(url), "%s/v1/calls/live", e.bridge.url);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_int_equal(json_array_size(json_object_get(r.json, "calls")), 0);
    http_resp_free(&r);
    stack_stop(&e);
}

/* Call events from an SSE stream until call.ended (10 at most, 10 s each):
 * every one of call `id`, named as its type; their types joined by spaces
 * (each followed by one), the SSE id of the first, the last outcome. */
static void read_call_events(struct sse_client *sc, const char *id, char *types, size_t tlen,
                             char *first_id, size_t flen, char *outcome, size_t olen)
{
    types[0] = first_id[0] = outcome[0] = '\0';
    for (int k = 0; k < 10 && !strstr(types, "call.ended"); k++) {
        struct sse_frame f;
        if (sse_next(sc, 10000, &f) <= 0)
            break;
        if (f.data) {
            json_t *ev = json_loads(f.data, 0, NULL);
            json_t *c = json_object_get(ev, "call");
            const char *cid = json_string_value(json_object_get(c, "id"));
            if (!cid || strcmp(cid, id))
                fail_msg("an event of another call came: %s", f.data);
            assert_string_equal(f.event, json_string_value(json_object_get(ev, "type")));
            strncat(types, f.event, tlen - strlen(types) - 2);
            strcat(types, " ");
            if (!first_id[0])
                snprintf(first_id, flen, "%s", f.id);
            const char *o = json_string_value(json_object_get(c, "outcome"));
            snprintf(outcome, olen, "%s", o ? o : "");
            json_decref(ev);
        }
        sse_frame_free(&f);
    }
}

/* GET /v1/calls/events: only the events asked for (type, reference),
 * Last-Event-ID replays; a webhook subscription to call.* gets the same
 * events, one to "*" none of them. */
static void call_events_stream_and_go_to_webhooks_that_ask_for_them(void **state)
{
    (void)state;
    struct receiver *calls_rv = receiver_start(), *all_rv = receiver_start();
    assert_non_null(calls_rv);
    assert_non_null(all_rv);
    struct stack e;
    const char *env[] = {KEYS, "AMIBRIDGE_WEBHOOK_ALLOW_NETS=127.0.0.0/8", NULL};
    assert_int_equal(stack_start(&e, env), 0);
    char url[256], body[512];
    struct http_resp r;
    snprintf(url, sizeof(url), "%s/v1/webhooks", e.bridge.url);
    snprintf(body, sizeof(body),
             "{\"url\":\"http://127.0.0.1:%d/calls\",\"events\":[\"call.created\",\"call.ended\"]}",
             receiver_port(calls_rv));
    assert_int_equal(http_call("POST", url, OPS, body, NULL, 5000, &r), 0);
    assert_status(&r, 201);
    http_resp_free(&r);
    snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/all\",\"events\":[\"*\"]}",
             receiver_port(all_rv));
    assert_int_equal(http_call("POST", url, OPS, body, NULL, 5000, &r), 0);
    assert_status(&r, 201);
    http_resp_free(&r);

    struct sse_client sc;
    assert_int_equal(sse_open(&sc, e.bridge.port,
                              "/v1/calls/events?type=call.created,call.answered,call.ended"
                              "&reference=crm-sse",
                              CRM, NULL, 0),
                     0);
    assert_int_equal(sc.status, 200);
    /* one call with the reference, one without */
    call(&e, CRM,
         "{\"channel\":\"Local/100@demo\",\"application\":\"Wait\",\"data\":\"1\",\"wait\":false}",
         NULL, &r);
    assert_status(&r, 202);
    http_resp_free(&r);
    call(&e, CRM,
         "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false,"
         "\"reference\":\"crm-sse\"}",
         NULL, &r);
    assert_status(&r, 202);
    char id[64];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "call_id"));
    http_resp_free(&r);
    char types[256], first_id[64], outcome[32];
    read_call_events(&sc, id, types, sizeof(types), first_id, sizeof(first_id), outcome,
                     sizeof(outcome));
    sse_close(&sc);
    assert_string_equal(types, "call.created call.answered call.ended ");
    /* the same stream again from after the first event: the rest is replayed */
    assert_int_equal(
        sse_open(&sc, e.bridge.port, "/v1/calls/events?reference=crm-sse", CRM, first_id, 0), 0);
    int replayed_end = 0;
    for (int k = 0; k < 10 && !replayed_end; k++) {
        struct sse_frame f;
        if (sse_next(&sc, 3000, &f) <= 0)
            break;
        if (f.data && !strcmp(f.event, "call.created"))
            fail_msg("replayed the event it had seen: %s", f.data);
        replayed_end = f.data && !strcmp(f.event, "call.ended");
        sse_frame_free(&f);
    }
    sse_close(&sc);
    assert_true(replayed_end);
    /* webhooks: call.created and call.ended of both calls to the one that
     * asked; none to "*" */
    assert_int_equal(receiver_wait(calls_rv, 4, 15000), 4);
    for (size_t i = 0; i < 4; i++) {
        struct receiver_req q;
        assert_int_equal(receiver_get(calls_rv, i, &q), 0);
        const char *ev = receiver_req_header(&q, "X-Amibridge-Event");
        if (!ev || (strcmp(ev, "call.created") && strcmp(ev, "call.ended")))
            fail_msg("delivery %zu is %s", i, ev ? ev : "(no event header)");
        receiver_req_free(&q);
    }
    receiver_wait(all_rv, 1000, 1000);
    for (size_t i = 0; i < receiver_count(all_rv); i++) {
        struct receiver_req q;
        assert_int_equal(receiver_get(all_rv, i, &q), 0);
        const char *ev = receiver_req_header(&q, "X-Amibridge-Event");
        if (ev && !strncmp(ev, "call.", 5))
            fail_msg("a call event went to a \"*\" subscription");
        receiver_req_free(&q);
    }
    stack_stop(&e);
    receiver_stop(calls_rv);
    receiver_stop(all_rv);
}

/* A click-to-dial to an endpoint that does not exist: the PBX creates no
 * channel (its OriginateResponse is the only word of it), yet the call_id
 * the CRM was given begins and ends, once, failed, and can be read after. */
static void a_call_that_gets_no_channel_still_ends(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    struct sse_client sc;
    assert_int_equal(
        sse_open(&sc, e.bridge.port, "/v1/calls/events?reference=crm-nobody", CRM, NULL, 0), 0);
    assert_int_equal(sc.status, 200);
    struct http_resp r;
    call(&e, CRM,
         "{\"channel\":\"PJSIP/nobody\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false,"
         "\"reference\":\"crm-nobody\"}",
         NULL, &r);
    assert_status(&r, 202);
    char id[64];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "call_id"));
    http_resp_free(&r);
    char types[256], first_id[64], outcome[32];
    read_call_events(&sc, id, types, sizeof(types), first_id, sizeof(first_id), outcome,
                     sizeof(outcome));
    sse_close(&sc);
    assert_string_equal(types, "call.created call.ended ");
    assert_string_equal(outcome, "failed");
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/calls/%s", e.bridge.url, id);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_status(&r, 200);
    assert_string_equal(http_json_str(&r, "state"), "ended");
    http_resp_free(&r);
    stack_stop(&e);
}

/* DELETE /v1/calls/{id}: every leg hung up (scope control), then the call
 * ends; again: 409; unknown: 404; a key without control: 403. */
static void a_call_is_hung_up_as_a_whole(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    struct http_resp r;
    call(&e, CRM,
         "{\"channel\":\"Local/200@demo\",\"context\":\"demo\",\"exten\":\"200\",\"wait\":false}",
         NULL, &r);
    assert_status(&r, 202);
    char id[64], url[256];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "call_id"));
    http_resp_free(&r);
    snprintf(url, sizeof(url), "%s/v1/calls/%s", e.bridge.url, id);
    int legs = 0;
    for (int tries = 0; tries < 50 && legs < 2; tries++) {
        assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
        legs = r.status == 200 ? (int)json_array_size(json_object_get(r.json, "legs")) : 0;
        http_resp_free(&r);
        if (legs < 2)
            usleep(100 * 1000);
    }
    assert_int_equal(legs, 2);
    assert_int_equal(http_call("DELETE", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_problem(&r, 403, "forbidden", NULL);
    http_resp_free(&r);
    assert_int_equal(http_call("DELETE", url, OPS, NULL, NULL, 5000, &r), 0);
    assert_status(&r, 200);
    assert_true(json_array_size(json_object_get(r.json, "hung_up")) +
                    json_array_size(json_object_get(r.json, "gone")) ==
                2);
    assert_true(json_array_size(json_object_get(r.json, "hung_up")) >= 1);
    http_resp_free(&r);
    int ended = 0;
    for (int tries = 0; tries < 50 && !ended; tries++) {
        assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
        ended = r.status == 200 && !strcmp(http_json_str(&r, "state"), "ended");
        http_resp_free(&r);
        if (!ended)
            usleep(100 * 1000);
    }
    assert_true(ended);
    assert_int_equal(http_call("DELETE", url, OPS, NULL, NULL, 5000, &r), 0);
    assert_problem(&r, 409, "call-ended", NULL);
    http_resp_free(&r);
    snprintf(url, sizeof(url), "%s/v1/calls/no.such.call", e.bridge.url);
    assert_int_equal(http_call("DELETE", url, OPS, NULL, NULL, 5000, &r), 0);
    assert_problem(&r, 404, "no-such-call", NULL);
    http_resp_free(&r);
    stack_stop(&e);
}

/* The string at a dotted path of o, or NULL. */
static const char *s_at(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *v = o;
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

#define assert_at(o, path, want)                                                                   \
    do {                                                                                           \
        const char *got_ = s_at((o), (path));                                                      \
        if (!got_ || strcmp(got_, (want)))                                                         \
            fail_msg("%s: '%s', not '%s'", (path), got_ ? got_ : "(none)", (want));                \
    } while (0)

/* The CRM walkthrough of docs/api.md, step by step. */
static void the_documented_crm_walkthrough(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    /* 1. the stream */
    struct sse_client sc;
    assert_int_equal(sse_open(&sc, e.bridge.port,
                              "/v1/calls/events?type=call.ringing,call.answered,call.ended", CRM,
                              NULL, 0),
                     0);
    assert_int_equal(sc.status, 200);
    /* 2. the click */
    struct http_resp r;
    call(&e, CRM,
         "{\"channel\":\"Local/700@demo\",\"context\":\"demo\",\"exten\":\"100\",\"wait\":false,"
         "\"reference\":\"crm-42\"}",
         "click-42-1", &r);
    assert_status(&r, 202);
    char id[64];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "call_id"));
    http_resp_free(&r);
    int popped = 0, answered = 0, logged = 0;
    for (int k = 0; k < 20 && !logged; k++) {
        struct sse_frame f;
        if (sse_next(&sc, 15000, &f) <= 0)
            break;
        json_t *ev = f.data ? json_loads(f.data, 0, NULL) : NULL, *c = json_object_get(ev, "call");
        const char *cid = json_string_value(json_object_get(c, "id"));
        if (cid && !strcmp(cid, id)) {
            if (!strcmp(f.event, "call.ringing")) {
                /* 3. the screen pop */
                assert_at(c, "origination.reference", "crm-42");
                assert_at(c, "to.number", "700");
                assert_true(json_is_object(json_object_get(c, "from")));
                popped = 1;
            } else if (!strcmp(f.event, "call.answered")) {
                /* 4. who took it: 700 dials 600, which answers */
                assert_true(popped);
                assert_non_null(s_at(c, "answered_at"));
                assert_at(c, "answered_by.number", "600");
                answered = 1;
            } else if (!strcmp(f.event, "call.ended")) {
                /* 5. the log line */
                assert_true(answered);
                assert_at(c, "outcome", "answered");
                double dur = json_number_value(json_object_get(c, "duration_s"));
                double talk = json_number_value(json_object_get(c, "talk_s"));
                assert_true(dur > 0 && talk > 0 && talk <= dur);
                assert_non_null(s_at(c, "hangup.by"));
                assert_non_null(s_at(c, "hangup.cause_text"));
                logged++;
            }
        }
        json_decref(ev);
        sse_frame_free(&f);
    }
    sse_close(&sc);
    assert_true(popped && answered);
    assert_int_equal(logged, 1);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/calls/%s", e.bridge.url, id);
    assert_int_equal(http_call("GET", url, CRM, NULL, NULL, 5000, &r), 0);
    assert_string_equal(http_json_str(&r, "outcome"), "answered");
    http_resp_free(&r);
    stack_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_outcome_of_a_call),
        cmocka_unit_test(wait_true_returns_no_answer_after_the_ring_timeout),
        cmocka_unit_test(wait_false_answers_202_and_the_event_carries_the_id),
        cmocka_unit_test(every_validation_error_names_its_field),
        cmocka_unit_test(same_idempotency_key_fifty_times_places_one_call),
        cmocka_unit_test(a_burst_of_clicks_is_rate_limited),
        cmocka_unit_test(originates_in_flight_never_exceed_the_cap),
        cmocka_unit_test(the_dial_policy_refuses_before_the_pbx_sees_anything),
        cmocka_unit_test(cors_preflight_from_allowed_and_foreign_origins),
        cmocka_unit_test(scopes_apply_to_calls),
        cmocka_unit_test(idempotency_holds_across_replicas_with_redis),
        cmocka_unit_test(calls_are_followed_published_once_and_readable_after_their_end),
        cmocka_unit_test(a_call_gone_while_ami_was_down_ends_after_the_reconnect),
        cmocka_unit_test(call_events_stream_and_go_to_webhooks_that_ask_for_them),
        cmocka_unit_test(a_call_that_gets_no_channel_still_ends),
        cmocka_unit_test(a_call_is_hung_up_as_a_whole),
        cmocka_unit_test(the_documented_crm_walkthrough),
    };
    return cmocka_run_group_tests_name("calls", tests, NULL, NULL);
}
