/* Integration tests for the bridge core: the real amibridge binary against
 * the real ami-sim, over real sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/http.h"
#include "support/amisim.h"
#include "support/bridge.h"

#define OPS  "ops-token-0123456789abcdef"
#define CRM  "crm-token-0123456789abcdef"
#define KEYS "AMIBRIDGE_API_KEYS=ops:" OPS ":read,call,control,actions,admin crm:" CRM ":call,read"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* POST /v1/actions/NAME with a body, as the ops key. */
static void post(const struct bridge *b, const char *token, const char *action, const char *body,
                 struct http_resp *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/actions/%s", b->url, action);
    http_call("POST", url, token, body, NULL, 30000, r);
}

static void get(const struct bridge *b, const char *path, struct http_resp *r)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", b->url, path);
    http_call("GET", url, NULL, NULL, NULL, 10000, r);
}

static int wait_ready(const struct bridge *b)
{
    return bridge_wait_status(b, "/readyz", 200, 5000) >= 0;
}

static void assert_problem(const struct http_resp *r, long status, const char *slug)
{
    if (r->status != status)
        fail_msg("expected %ld, got %ld: %s", status, r->status, r->body ? r->body : r->error);
    char type[128];
    snprintf(type, sizeof(type), "urn:amibridge:problem:%s", slug);
    const char *t = http_json_str(r, "type");
    if (!t || strcmp(t, type))
        fail_msg("expected type %s, got %s", type, r->body);
    char *ct = http_resp_header(r, "Content-Type");
    assert_non_null(ct);
    assert_string_equal(ct, "application/problem+json");
    free(ct);
    assert_int_equal(json_integer_value(json_object_get(r->json, "status")), status);
    assert_non_null(http_json_str(r, "title"));
    assert_non_null(http_json_str(r, "request_id"));
}

static void assert_field(const struct http_resp *r, const char *field)
{
    const char *f = http_json_str(r, "field");
    if (!f || strcmp(f, field))
        fail_msg("expected field '%s' in %s", field, r->body);
}

struct env {
    struct amisim sim;
    struct bridge bridge;
};

static int start(struct env *e, const char *const *sim_args, const char *const *env)
{
    memset(e, 0, sizeof(*e));
    if (amisim_start(&e->sim, sim_args) || bridge_start(&e->bridge, e->sim.port, env))
        return -1;
    return wait_ready(&e->bridge) ? 0 : -1;
}

static void stop(struct env *e)
{
    bridge_stop(&e->bridge, 0);
    amisim_stop(&e->sim);
}

/* The PBX dies: SIGKILL, no goodbye. */
static void kill_sim(struct env *e)
{
    proc_signal(&e->sim.proc, SIGKILL);
    proc_wait(&e->sim.proc, -1);
    amisim_stop(&e->sim);
}

/* --- routes ---------------------------------------------------------------------- */

static void generic_route_returns_responses_lists_and_errors(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct http_resp r;

    get(&e.bridge, "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_json_str(&r, "status"), "ok");
    assert_non_null(http_json_str(&r, "version"));
    char *rid = http_resp_header(&r, "X-Request-Id");
    assert_non_null(rid);
    free(rid);
    http_resp_free(&r);

    char hurl[128];
    snprintf(hurl, sizeof(hurl), "%s/healthz", e.bridge.url);
    http_call("HEAD", hurl, NULL, NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    http_resp_free(&r);

    get(&e.bridge, "/readyz", &r);
    assert_int_equal(r.status, 200);
    json_t *srv = json_array_get(json_object_get(r.json, "servers"), 0);
    assert_true(json_is_true(json_object_get(srv, "ready")));
    assert_string_equal(json_string_value(json_object_get(srv, "event_connection")), "up");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(srv, "action_connections"), "up")), 4);
    http_resp_free(&r);

    post(&e.bridge, OPS, "Ping", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_json_str(&r, "response"), "Success");
    json_t *fields = json_object_get(r.json, "fields");
    assert_string_equal(json_string_value(json_object_get(fields, "Ping")), "Pong");
    assert_string_equal(json_string_value(json_object_get(fields, "ActionID")),
                        http_json_str(&r, "action_id"));
    assert_null(json_object_get(r.json, "events"));
    http_resp_free(&r);

    /* an event list: both queues, three members */
    post(&e.bridge, OPS, "QueueStatus", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *events = json_object_get(r.json, "events");
    assert_int_equal(json_array_size(events), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(events, 0), "Event")),
                        "QueueParams");
    json_t *complete = json_object_get(r.json, "complete");
    assert_string_equal(json_string_value(json_object_get(complete, "ListItems")), "5");
    assert_string_equal(json_string_value(json_object_get(complete, "Event")),
                        "QueueStatusComplete");
    http_resp_free(&r);

    /* header values and arrays from the body */
    post(&e.bridge, OPS, "Getvar", "{\"Variable\":\"DEMO_GLOBAL\"}", &r);
    assert_int_equal(r.status, 200);
    fields = json_object_get(r.json, "fields");
    assert_string_equal(json_string_value(json_object_get(fields, "Value")), "hello");
    http_resp_free(&r);

    /* AMI errors keep the AMI message */
    post(&e.bridge, OPS, "NoSuchAction", NULL, &r);
    assert_problem(&r, 404, "ami-unknown-action");
    assert_non_null(strstr(http_json_str(&r, "ami_message"), "Invalid/unknown command"));
    assert_non_null(http_json_str(&r, "action_id"));
    http_resp_free(&r);
    post(&e.bridge, OPS, "Getvar", "{}", &r);
    assert_problem(&r, 422, "ami-error");
    assert_string_equal(http_json_str(&r, "ami_message"), "No variable specified");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Hangup", "{\"Channel\":\"Local/nonexistent-0000;1\"}", &r);
    assert_problem(&r, 404, "ami-no-such-channel");
    http_resp_free(&r);

    /* bridge-side validation */
    post(&e.bridge, OPS, "Ping", "{\"ActionID\":\"mine\"}", &r);
    assert_problem(&r, 400, "invalid-field");
    assert_field(&r, "ActionID");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", "{\"Action\":\"Originate\"}", &r);
    assert_problem(&r, 400, "invalid-field");
    assert_field(&r, "Action");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", "{\"a\":", &r);
    assert_problem(&r, 400, "invalid-json");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", "[1,2]", &r);
    assert_problem(&r, 400, "invalid-json");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", "{\"a\":1,\"a\":2}", &r);
    assert_problem(&r, 400, "invalid-json");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", "{\"Data\":{\"x\":1}}", &r);
    assert_problem(&r, 400, "invalid-field");
    assert_field(&r, "Data");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Pi%20ng", NULL, &r);
    assert_problem(&r, 400, "invalid-field");
    assert_field(&r, "Action");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping?server=nope", NULL, &r);
    assert_problem(&r, 400, "invalid-field");
    assert_field(&r, "server");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping?server=default", NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    /* routing */
    get(&e.bridge, "/v1/nothing", &r);
    assert_problem(&r, 404, "not-found");
    http_resp_free(&r);
    get(&e.bridge, "/v1/actions/Ping", &r);
    assert_problem(&r, 405, "method-not-allowed");
    char *allow = http_resp_header(&r, "Allow");
    assert_string_equal(allow, "POST");
    free(allow);
    http_resp_free(&r);

    /* the contract is served */
    get(&e.bridge, "/openapi.yaml", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "openapi: 3.1"));
    http_resp_free(&r);
    stop(&e);
}

static void viewer_permission_denied_maps_to_403(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {"AMIBRIDGE_AMI_USERNAME=viewer", "AMIBRIDGE_AMI_SECRET=viewersecret",
                         NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct http_resp r;
    post(&e.bridge, NULL, "Originate",
         "{\"Channel\":\"Local/100@demo\",\"Context\":\"demo\",\"Exten\":\"100\",\"Priority\":1}",
         &r);
    assert_problem(&r, 403, "ami-permission-denied");
    assert_string_equal(http_json_str(&r, "ami_message"), "Permission denied");
    http_resp_free(&r);
    /* QueueStatus needs no write class */
    post(&e.bridge, NULL, "QueueStatus", NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    stop(&e);
}

static void command_output_is_an_array_when_allowed(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {"AMIBRIDGE_ALLOW_ACTIONS=Command", NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct http_resp r;
    post(&e.bridge, NULL, "Command", "{\"Command\":\"core show version\"}", &r);
    assert_int_equal(r.status, 200);
    json_t *out = json_object_get(r.json, "output");
    assert_true(json_array_size(out) >= 1);
    assert_non_null(strstr(json_string_value(json_array_get(out, 0)), "Asterisk"));
    assert_null(json_object_get(json_object_get(r.json, "fields"), "Output"));
    http_resp_free(&r);
    post(&e.bridge, NULL, "Command", "{\"Command\":\"no such cli command\"}", &r);
    assert_problem(&r, 422, "ami-error");
    assert_true(json_array_size(json_object_get(r.json, "output")) >= 1);
    http_resp_free(&r);
    stop(&e);
}

/* --- auth and limits ---------------------------------------------------------------- */

static void auth_scopes_and_deny_lists(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct http_resp r;
    post(&e.bridge, NULL, "Ping", NULL, &r);
    assert_problem(&r, 401, "unauthorized");
    char *www = http_resp_header(&r, "WWW-Authenticate");
    assert_non_null(www);
    assert_non_null(strstr(www, "Bearer"));
    free(www);
    http_resp_free(&r);
    post(&e.bridge, "wrong-token-0123456789", "Ping", NULL, &r);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    /* authentication comes before the body limit and the media type */
    static char big[70000];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    post(&e.bridge, NULL, "Ping", big, &r);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    char purl[128];
    snprintf(purl, sizeof(purl), "%s/v1/actions/Ping", e.bridge.url);
    http_call("POST", purl, NULL, "x", "text/plain", 5000, &r);
    assert_problem(&r, 401, "unauthorized");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", big, &r);
    assert_problem(&r, 413, "payload-too-large");
    http_resp_free(&r);
    post(&e.bridge, CRM, "Ping", NULL, &r);
    assert_problem(&r, 403, "forbidden");
    assert_string_equal(http_json_str(&r, "required_scope"), "actions");
    http_resp_free(&r);
    post(&e.bridge, OPS, "Ping", NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    static const char *denied[] = {"Command",      "Shutdown", "ModuleLoad", "DBPut",
                                   "UpdateConfig", "command",  NULL};
    for (const char **a = denied; *a; a++) {
        post(&e.bridge, OPS, *a, NULL, &r);
        assert_problem(&r, 403, "action-denied");
        http_resp_free(&r);
    }
    static const char *reserved[] = {"Login", "Logoff", "Events", "Challenge", "Filter", NULL};
    for (const char **a = reserved; *a; a++) {
        post(&e.bridge, OPS, *a, NULL, &r);
        assert_problem(&r, 403, "action-reserved");
        http_resp_free(&r);
    }
    static const char *apps[] = {"System", "TrySystem", "EXEC", "AGI", "EAGI", "MixMonitor", NULL};
    for (const char **a = apps; *a; a++) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"Channel\":\"Local/100@demo\",\"Application\":\"%s\",\"Data\":\"x\"}", *a);
        post(&e.bridge, OPS, "Originate", body, &r);
        assert_problem(&r, 403, "action-denied");
        assert_field(&r, "Application");
        http_resp_free(&r);
    }
    static const char *funcs[] = {
        "{\"Channel\":\"Local/100@demo\",\"Application\":\"Wait\",\"Data\":\"${SHELL(id)}\"}",
        "{\"Channel\":\"Local/100@demo\",\"Context\":\"demo\",\"Exten\":\"100\",\"Priority\":1,"
        "\"Variable\":[\"A=1\",\"B=${system(reboot)}\"]}",
        NULL};
    for (const char **b = funcs; *b; b++) {
        post(&e.bridge, OPS, "Originate", *b, &r);
        assert_problem(&r, 403, "action-denied");
        http_resp_free(&r);
    }
    post(&e.bridge, OPS, "Getvar", "{\"Variable\":\"EVAL(${x})\"}", &r);
    assert_problem(&r, 403, "action-denied");
    assert_field(&r, "Variable");
    http_resp_free(&r);
    /* public routes need no key */
    get(&e.bridge, "/readyz", &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    stop(&e);
}

static void body_size_and_media_type_limits(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {"AMIBRIDGE_MAX_BODY=1024", NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct http_resp r;
    char big[2100];
    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"Data\":\"", 9);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    post(&e.bridge, NULL, "Ping", big, &r);
    assert_problem(&r, 413, "payload-too-large");
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_body")), 1024);
    http_resp_free(&r);
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/actions/Ping", e.bridge.url);
    http_call("POST", url, NULL, "Action: Ping", "text/plain", 5000, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    http_resp_free(&r);
    http_call("POST", url, NULL, "{}", "application/json; charset=utf-8", 5000, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    stop(&e);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* CR, LF or NUL in any key or value, or a bad key: 400 naming the field,
 * and not one byte of the request reaches the PBX. */
static void injection_is_refused_before_anything_reaches_ami(void **state)
{
    (void)state;
    char rec[256];
    snprintf(rec, sizeof(rec), "/tmp/amibridge-test-record-%d.bin", (int)getpid());
    unlink(rec);
    struct env e;
    const char *sim_args[] = {"--record", rec, NULL};
    assert_int_equal(start(&e, sim_args, NULL), 0);
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"Channel\":\"INJECT1\\r\\nAction: Originate\"}", "Channel"},
        {"{\"Channel\":\"INJECT2\\nAction: Originate\"}", "Channel"},
        {"{\"Channel\":\"INJECT3\\rAction: Originate\"}", "Channel"},
        {"{\"Data\":\"INJECT4\\u0000\\r\\nAction: Logoff\"}", "Data"},
        {"{\"Variable\":[\"A=1\",\"INJECT5\\r\\n\\r\\nAction: Command\"]}", "Variable"},
        {"{\"Chan\\r\\nnel\":\"INJECT6\"}", "Chan??nel"},
        {"{\"Foo Bar\":\"INJECT7\"}", "Foo Bar"},
        {"{\"Foo:Bar\":\"INJECT8\"}", "Foo:Bar"},
        {"{\"\":\"INJECT9\"}", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_resp r;
        post(&e.bridge, NULL, "Hangup", cases[i].body, &r);
        assert_problem(&r, 400, "invalid-field");
        assert_field(&r, cases[i].field);
        http_resp_free(&r);
    }
    /* a clean request does reach it, so the recording works */
    struct http_resp r;
    post(&e.bridge, NULL, "Getvar", "{\"Variable\":\"RECORDED_MARKER\"}", &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    sleep_ms(200);
    assert_int_equal(file_contains(rec, "RECORDED_MARKER"), 1);
    assert_int_equal(file_contains(rec, "INJECT"), 0);
    assert_int_equal(file_contains(rec, "Originate"), 0);
    assert_int_equal(file_contains(rec, "Action: Hangup"), 0);
    stop(&e);
    unlink(rec);
}

/* --- load ------------------------------------------------------------------------------- */

static void thousand_concurrent_requests_get_their_own_replies(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(start(&e, NULL, NULL), 0);
    enum { N = 1000 };
    static struct http_batch_item items[N];
    static char urls[N][128], bodies[N][128];
    for (int i = 0; i < N; i++) {
        items[i].method = "POST";
        switch (i % 4) {
        case 0:
            snprintf(urls[i], sizeof(urls[i]), "%s/v1/actions/Getvar", e.bridge.url);
            snprintf(bodies[i], sizeof(bodies[i]), "{\"Variable\":\"UNIQ_%d\"}", i);
            break;
        case 1:
            snprintf(urls[i], sizeof(urls[i]), "%s/v1/actions/ExtensionState", e.bridge.url);
            snprintf(bodies[i], sizeof(bodies[i]), "{\"Exten\":\"%d\",\"Context\":\"demo\"}", i);
            break;
        case 2:
            snprintf(urls[i], sizeof(urls[i]), "%s/v1/actions/Ping", e.bridge.url);
            snprintf(bodies[i], sizeof(bodies[i]), "{}");
            break;
        default:
            snprintf(urls[i], sizeof(urls[i]), "%s/v1/actions/QueueSummary", e.bridge.url);
            snprintf(bodies[i], sizeof(bodies[i]), "{\"Queue\":\"%s\"}",
                     i % 8 == 3 ? "sales" : "support");
        }
        items[i].url = urls[i];
        items[i].body = bodies[i];
    }
    long t0 = now_ms();
    assert_int_equal(http_batch(items, N, NULL, 64, 30000), 0);
    long ms = now_ms() - t0;
    json_t *ids = json_object();
    for (int i = 0; i < N; i++) {
        struct http_resp *r = &items[i].resp;
        if (r->status != 200)
            fail_msg("request %d: %ld %s", i, r->status, r->body);
        json_t *f = json_object_get(r->json, "fields");
        char want[64];
        switch (i % 4) {
        case 0:
            snprintf(want, sizeof(want), "UNIQ_%d", i);
            assert_string_equal(json_string_value(json_object_get(f, "Variable")), want);
            break;
        case 1:
            snprintf(want, sizeof(want), "%d", i);
            assert_string_equal(json_string_value(json_object_get(f, "Exten")), want);
            break;
        case 2:
            assert_string_equal(json_string_value(json_object_get(f, "Ping")), "Pong");
            break;
        default: {
            json_t *ev = json_array_get(json_object_get(r->json, "events"), 0);
            assert_string_equal(json_string_value(json_object_get(ev, "Queue")),
                                i % 8 == 3 ? "sales" : "support");
        }
        }
        const char *id = http_json_str(r, "action_id");
        assert_non_null(id);
        assert_null(json_object_get(ids, id)); /* every ActionID once */
        json_object_set_new(ids, id, json_true());
        http_resp_free(r);
    }
    assert_int_equal(json_object_size(ids), N);
    json_decref(ids);
    print_message("1000 mixed requests over 64 connections in %ld ms\n", ms);
    stop(&e);
}

/* --- faults ---------------------------------------------------------------------------- */

struct slow_call {
    struct bridge *bridge;
    struct http_resp r;
    long done_at;
};

static void *slow_originate(void *arg)
{
    struct slow_call *c = arg;
    /* a sync Originate to an extension that never answers blocks its session */
    post(c->bridge, NULL, "Originate",
         "{\"Channel\":\"Local/302@demo\",\"Context\":\"demo\",\"Exten\":\"100\","
         "\"Priority\":1,\"Timeout\":30000}",
         &c->r);
    c->done_at = now_ms();
    return NULL;
}

static void dropped_connection_answers_in_flight_requests_at_once(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {"AMIBRIDGE_AMI_TIMEOUT_MS=20000", NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct slow_call c = {.bridge = &e.bridge};
    pthread_t th;
    pthread_create(&th, NULL, slow_originate, &c);
    sleep_ms(500);
    long killed = now_ms();
    kill_sim(&e);
    pthread_join(th, NULL);
    long waited = c.done_at - killed;
    print_message("answered %ld ms after the PBX died\n", waited);
    assert_problem(&c.r, 502, "ami-connection-lost");
    assert_true(waited < 1000);
    http_resp_free(&c.r);
    stop(&e);
}

static void pbx_down_fails_fast_and_recovers(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(start(&e, NULL, NULL), 0);
    int port = e.sim.port;
    kill_sim(&e);
    sleep_ms(100);
    struct http_resp r;
    long t0 = now_ms();
    post(&e.bridge, NULL, "Ping", NULL, &r);
    long ms = now_ms() - t0;
    assert_problem(&r, 503, "ami-unavailable");
    char *ra = http_resp_header(&r, "Retry-After");
    assert_non_null(ra);
    free(ra);
    assert_true(ms < 1000);
    http_resp_free(&r);
    get(&e.bridge, "/readyz", &r);
    assert_int_equal(r.status, 503);
    json_t *srv = json_array_get(json_object_get(r.json, "servers"), 0);
    assert_true(json_is_false(json_object_get(srv, "ready")));
    assert_non_null(json_string_value(json_object_get(srv, "last_error")));
    http_resp_free(&r);
    /* the PBX comes back on the same port */
    sleep_ms(2000);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *same_port[] = {"--listen", listen, NULL};
    assert_int_equal(amisim_start(&e.sim, same_port), 0);
    assert_int_equal(e.sim.port, port);
    long back = now_ms();
    long waited = bridge_wait_status(&e.bridge, "/readyz", 200, 5000);
    print_message("ready again %ld ms after the PBX came back\n", now_ms() - back);
    assert_true(waited >= 0);
    post(&e.bridge, NULL, "Ping", NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    stop(&e);
}

static void unanswered_action_times_out_with_504(void **state)
{
    (void)state;
    struct env e;
    const char *env[] = {"AMIBRIDGE_AMI_TIMEOUT_MS=700", NULL};
    assert_int_equal(start(&e, NULL, env), 0);
    struct http_resp r;
    /* every later reply of the PBX is delayed far past the timeout */
    post(&e.bridge, NULL, "SimControl", "{\"DelayMs\":60000}", &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    long t0 = now_ms();
    post(&e.bridge, NULL, "Ping", NULL, &r);
    long ms = now_ms() - t0;
    assert_problem(&r, 504, "ami-timeout");
    assert_non_null(http_json_str(&r, "action_id"));
    print_message("504 after %ld ms (timeout 700 ms)\n", ms);
    assert_true(ms >= 650 && ms < 2000);
    http_resp_free(&r);
    stop(&e);
}

static void wrong_secret_is_reported_and_retried_slowly(void **state)
{
    (void)state;
    struct amisim sim;
    struct bridge bridge;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_AMI_SECRET=wrong-secret", NULL};
    assert_int_equal(bridge_start(&bridge, sim.port, env), 0);
    sleep_ms(10000);
    struct http_resp r;
    get(&bridge, "/readyz", &r);
    assert_int_equal(r.status, 503);
    json_t *srv = json_array_get(json_object_get(r.json, "servers"), 0);
    assert_true(json_is_true(json_object_get(srv, "auth_failed")));
    const char *why = json_string_value(json_object_get(srv, "last_error"));
    assert_non_null(why);
    assert_non_null(strstr(why, "login rejected"));
    assert_null(strstr(r.body, "wrong-secret"));
    http_resp_free(&r);
    /* 5 connections, each tried once in 10 s: no tight loop */
    int attempts = bridge_log_count(&bridge, "AMI login failed");
    print_message("%d login attempts in 10 s\n", attempts);
    assert_true(attempts >= 1 && attempts <= 5);
    assert_int_equal(bridge_log_count(&bridge, "wrong-secret"), 0);
    post(&bridge, NULL, "Ping", NULL, &r);
    assert_problem(&r, 503, "ami-unavailable");
    assert_non_null(strstr(http_json_str(&r, "detail"), "credentials"));
    http_resp_free(&r);
    bridge_stop(&bridge, 0);
    amisim_stop(&sim);
}

static void sigterm_stops_cleanly(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(start(&e, NULL, NULL), 0);
    long t0 = now_ms();
    assert_int_equal(bridge_stop(&e.bridge, SIGTERM), 0);
    assert_true(now_ms() - t0 < 3000);
    amisim_stop(&e.sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generic_route_returns_responses_lists_and_errors),
        cmocka_unit_test(viewer_permission_denied_maps_to_403),
        cmocka_unit_test(command_output_is_an_array_when_allowed),
        cmocka_unit_test(auth_scopes_and_deny_lists),
        cmocka_unit_test(body_size_and_media_type_limits),
        cmocka_unit_test(injection_is_refused_before_anything_reaches_ami),
        cmocka_unit_test(thousand_concurrent_requests_get_their_own_replies),
        cmocka_unit_test(dropped_connection_answers_in_flight_requests_at_once),
        cmocka_unit_test(pbx_down_fails_fast_and_recovers),
        cmocka_unit_test(unanswered_action_times_out_with_504),
        cmocka_unit_test(wrong_secret_is_reported_and_retried_slowly),
        cmocka_unit_test(sigterm_stops_cleanly),
    };
    return cmocka_run_group_tests_name("bridge", tests, NULL, NULL);
}
