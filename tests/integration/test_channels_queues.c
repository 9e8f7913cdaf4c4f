/* Integration tests for the channel and queue routes: the real amibridge
 * binary against the real ami-sim, with real calls placed through the
 * bridge itself. Every route, every outcome, every validation error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/stack.h"
#include "support/testenv.h"

#define OPS "ops-token-0123456789abcdef"
#define RO  "ro-token-0123456789abcdef"
#define CTL "ctl-token-0123456789abcdef"
#define KEYS                                                                                       \
    "AMIBRIDGE_API_KEYS=ops:" OPS ":read,call,control,actions,admin ro:" RO ":read ctl:" CTL       \
    ":control"
#define HTTP_MS   10000
#define WAIT_MS   8000 /* for the PBX to get somewhere (a ring is 2 s, a queue retry 2 s) */
#define POLL_MS   50
#define NAME_MAX_ 128

/* One request; `path` may carry a query. */
static void req(const struct stack *e, const char *method, const char *path, const char *token,
                const char *body, struct http_resp *r)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", e->bridge.url, path);
    http_call(method, url, token, body, NULL, HTTP_MS, r);
}

/* Percent-encode everything but unreserved characters, as a client must for a channel name. */
static char *enc(const char *s, char *out, size_t len)
{
    size_t o = 0;
    for (; *s && o + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~", c))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
    }
    out[o] = '\0';
    return out;
}

static void assert_problem(const struct http_resp *r, long status, const char *slug)
{
    if (r->status != status)
        fail_msg("expected %ld %s, got %ld: %s", status, slug, r->status,
                 r->body ? r->body : r->error);
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
}

static void assert_str(const json_t *o, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || strcmp(v, want))
        fail_msg("%s is %s, want %s", key, v ? v : "(not a string)", want);
}

/* A 400 naming `field`, and the request never reached the PBX as such. */
static void expect_bad(const struct stack *e, const char *method, const char *path,
                       const char *body, const char *field)
{
    struct http_resp r;
    req(e, method, path, OPS, body, &r);
    assert_problem(&r, 400, "invalid-field");
    if (!http_json_str(&r, "field") || strcmp(http_json_str(&r, "field"), field))
        fail_msg("%s %s %s: expected field '%s' in %s", method, path, body ? body : "", field,
                 r.body);
    http_resp_free(&r);
}

static void expect_problem(const struct stack *e, const char *method, const char *path,
                           const char *token, const char *body, long status, const char *slug)
{
    struct http_resp r;
    req(e, method, path, token, body, &r);
    assert_problem(&r, status, slug);
    http_resp_free(&r);
}

/* --- calls ------------------------------------------------------------------------------- */

static void originate(const struct stack *e, const char *body)
{
    struct http_resp r;
    req(e, "POST", "/v1/actions/Originate", OPS, body, &r);
    if (r.status != 200)
        fail_msg("Originate: %ld %s", r.status, r.body);
    http_resp_free(&r);
}

/* The channel whose name starts with `prefix` and ends with `leg` (";1"), when
 * `pred` (may be NULL) holds for it; a new reference or NULL after WAIT_MS. */
static json_t *wait_channel(const struct stack *e, const char *prefix, const char *leg,
                            int (*pred)(const json_t *ch))
{
    long long until = testenv_now_ms() + WAIT_MS;
    do {
        struct http_resp r;
        req(e, "GET", "/v1/channels", OPS, NULL, &r);
        assert_int_equal(r.status, 200);
        size_t i;
        json_t *ch;
        json_array_foreach (json_object_get(r.json, "channels"), i, ch) {
            const char *n = json_string_value(json_object_get(ch, "channel"));
            size_t nl = n ? strlen(n) : 0;
            if (n && !strncmp(n, prefix, strlen(prefix)) && nl > strlen(leg) &&
                !strcmp(n + nl - strlen(leg), leg) && (!pred || pred(ch))) {
                json_incref(ch);
                http_resp_free(&r);
                return ch;
            }
        }
        http_resp_free(&r);
        testenv_sleep_ms(POLL_MS);
    } while (testenv_now_ms() < until);
    return NULL;
}

static int runs_wait(const json_t *ch)
{
    const char *app = json_string_value(json_object_get(ch, "application"));
    return app && !strcmp(app, "Wait");
}

/* The 30 s call of the demo dialplan (Local/200@demo, answered, Wait(30)):
 * both legs' names, once its ;1 runs Wait. */
static void long_call(const struct stack *e, char *l1, char *l2)
{
    originate(e, "{\"Channel\":\"Local/200@demo\",\"Context\":\"demo\",\"Exten\":\"200\","
                 "\"Priority\":1,\"Async\":\"true\",\"CallerID\":\"Long Call <5553000>\"}");
    json_t *c1 = wait_channel(e, "Local/200@demo-", ";1", runs_wait);
    json_t *c2 = wait_channel(e, "Local/200@demo-", ";2", NULL);
    assert_non_null(c1);
    assert_non_null(c2);
    snprintf(l1, NAME_MAX_, "%s", json_string_value(json_object_get(c1, "channel")));
    snprintf(l2, NAME_MAX_, "%s", json_string_value(json_object_get(c2, "channel")));
    json_decref(c1);
    json_decref(c2);
}

/* GET path until its status is `status`; 1 when it came within WAIT_MS. */
static int wait_status(const struct stack *e, const char *path, long status)
{
    long long until = testenv_now_ms() + WAIT_MS;
    do {
        struct http_resp r;
        req(e, "GET", path, OPS, NULL, &r);
        long got = r.status;
        http_resp_free(&r);
        if (got == status)
            return 1;
        testenv_sleep_ms(POLL_MS);
    } while (testenv_now_ms() < until);
    return 0;
}

/* --- channels ---------------------------------------------------------------------------- */

static void channels_are_listed_and_read_with_typed_fields(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    struct http_resp r;
    req(&e, "GET", "/v1/channels", OPS, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "channels")), 0);
    http_resp_free(&r);

    char l1[NAME_MAX_], l2[NAME_MAX_], path[512], p1[256];
    long_call(&e, l1, l2);
    req(&e, "GET", "/v1/channels", OPS, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *list = json_object_get(r.json, "channels");
    assert_int_equal(json_array_size(list), 2);
    json_t *ch = json_array_get(list, 0);
    assert_str(ch, "channel", l1);
    assert_str(ch, "state", "up");
    assert_int_equal(json_integer_value(json_object_get(ch, "state_code")), 6);
    json_t *cid = json_object_get(ch, "caller_id");
    assert_str(cid, "number", "5553000");
    assert_str(cid, "name", "Long Call");
    assert_str(json_object_get(ch, "connected_line"), "name", "Long Call");
    assert_str(ch, "context", "demo");
    assert_str(ch, "exten", "200");
    assert_true(json_is_integer(json_object_get(ch, "priority")));
    assert_int_equal(json_integer_value(json_object_get(ch, "priority")), 3);
    assert_str(ch, "application", "Wait");
    assert_str(ch, "application_data", "30");
    assert_true(json_is_integer(json_object_get(ch, "duration_s")));
    assert_true(json_integer_value(json_object_get(ch, "duration_s")) >= 0);
    assert_non_null(json_string_value(json_object_get(ch, "uniqueid")));
    assert_str(ch, "linkedid", json_string_value(json_object_get(ch, "uniqueid")));
    assert_true(json_is_null(json_object_get(ch, "bridge_id")));
    assert_true(json_is_null(json_object_get(ch, "account")));
    assert_str(json_array_get(list, 1), "channel", l2);
    http_resp_free(&r);

    /* one channel, its name percent-encoded as one segment */
    snprintf(path, sizeof(path), "/v1/channels/%s", enc(l1, p1, sizeof(p1)));
    assert_non_null(strstr(path, "%2F200%40demo-"));
    assert_non_null(strstr(path, "%3B1"));
    req(&e, "GET", path, RO, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "channel", l1);
    assert_str(r.json, "exten", "200");
    http_resp_free(&r);

    expect_problem(&e, "GET", "/v1/channels/Local%2F200%40demo-0000ffff%3B1", OPS, NULL, 404,
                   "no-such-channel");
    req(&e, "GET", "/v1/channels/Local%2F200%40demo-0000ffff%3B1", OPS, NULL, &r);
    assert_str(r.json, "channel", "Local/200@demo-0000ffff;1");
    http_resp_free(&r);
    /* an unencoded '/' splits the name: no such route */
    expect_problem(&e, "GET", "/v1/channels/Local/200@demo-00000000;1", OPS, NULL, 404,
                   "not-found");
    expect_problem(&e, "GET", "/v1/channels/Local%2G200", OPS, NULL, 400, "invalid-path");
    expect_bad(&e, "GET", "/v1/channels/%2F.%2A%2F", NULL, "channel");
    expect_bad(&e, "GET", "/v1/channels?server=nope", NULL, "server");
    req(&e, "GET", "/v1/channels?server=default", OPS, NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    expect_problem(&e, "PUT", "/v1/channels", OPS, NULL, 405, "method-not-allowed");
    stack_stop(&e);
}

static void channel_variables_are_set_and_read(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    char l1[NAME_MAX_], l2[NAME_MAX_], p1[256], vars[512], path[1024];
    long_call(&e, l1, l2);
    snprintf(vars, sizeof(vars), "/v1/channels/%s/variables", enc(l1, p1, sizeof(p1)));
    struct http_resp r;
    req(&e, "POST", vars, OPS, "{\"name\":\"DEMO_VAR\",\"value\":\"hello world\"}", &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "channel", l1);
    assert_str(r.json, "name", "DEMO_VAR");
    assert_str(r.json, "value", "hello world");
    assert_str(r.json, "message", "Variable Set");
    assert_non_null(http_json_str(&r, "action_id"));
    http_resp_free(&r);

    snprintf(path, sizeof(path), "%s/DEMO_VAR", vars);
    req(&e, "GET", path, RO, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "channel", l1);
    assert_str(r.json, "name", "DEMO_VAR");
    assert_str(r.json, "value", "hello world");
    http_resp_free(&r);
    /* a function is code, not a variable: this read route refuses it
     * (AST_CONFIG() would read manager.conf's secrets), percent-encoded or not */
    snprintf(path, sizeof(path), "%s/CHANNEL%%28state%%29", vars);
    expect_bad(&e, "GET", path, NULL, "name");
    snprintf(path, sizeof(path), "%s/AST_CONFIG(manager.conf,bridge,secret)", vars);
    expect_bad(&e, "GET", path, NULL, "name");
    /* a global variable is not the channel's: a read key does not read
     * the PBX's globals through a channel (Getvar would answer it) */
    snprintf(path, sizeof(path), "%s/DEMO_GLOBAL", vars);
    req(&e, "GET", path, RO, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "value")));
    http_resp_free(&r);
    /* not set: null */
    snprintf(path, sizeof(path), "%s/NOT_SET_VAR", vars);
    req(&e, "GET", path, OPS, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.json, "value")));
    http_resp_free(&r);
    /* set to empty */
    req(&e, "POST", vars, OPS, "{\"name\":\"DEMO_VAR\",\"value\":\"\"}", &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    static const char gone[] = "/v1/channels/Local%2F999%40demo-0000ffff%3B1/variables";
    expect_problem(&e, "GET", "/v1/channels/Local%2F999%40demo-0000ffff%3B1/variables/X", OPS, NULL,
                   404, "no-such-channel");
    req(&e, "POST", gone, OPS, "{\"name\":\"X\",\"value\":\"1\"}", &r);
    assert_problem(&r, 404, "no-such-channel");
    assert_str(r.json, "ami_message", "No such channel");
    assert_str(r.json, "channel", "Local/999@demo-0000ffff;1");
    assert_non_null(http_json_str(&r, "action_id"));
    http_resp_free(&r);

    /* validation, each naming its field */
    expect_bad(&e, "POST", vars, "{\"value\":\"1\"}", "name");
    expect_bad(&e, "POST", vars, "{\"name\":\"X\"}", "value");
    expect_bad(&e, "POST", vars, "{\"name\":\"\",\"value\":\"1\"}", "name");
    expect_bad(&e, "POST", vars, "{\"name\":\"X\",\"value\":1}", "value");
    expect_bad(&e, "POST", vars, "{\"name\":[\"X\"],\"value\":\"1\"}", "name");
    expect_bad(&e, "POST", vars, "{\"name\":\"X\",\"value\":\"1\",\"channel\":\"y\"}", "channel");
    expect_bad(&e, "POST", vars, "{\"name\":\"X\",\"value\":\"a\\r\\nAction: Hangup\"}", "value");
    expect_bad(&e, "POST", vars, "{\"name\":\"X\\u0000Y\",\"value\":\"1\"}", "name");
    expect_bad(&e, "GET", "/v1/channels/%2F.%2A%2F/variables/X", NULL, "channel");
    snprintf(path, sizeof(path), "%s/A%%0D%%0AAction:%%20Hangup", vars);
    expect_bad(&e, "GET", path, NULL, "name");
    expect_problem(&e, "POST", vars, OPS, "{\"name\":", 400, "invalid-json");
    expect_problem(&e, "POST", vars, OPS, "[]", 400, "invalid-json");
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", e.bridge.url, vars);
    http_call("POST", url, OPS, "name=X", "text/plain", HTTP_MS, &r);
    assert_problem(&r, 415, "unsupported-media-type");
    http_resp_free(&r);
    /* the dangerous-function rule, as on the generic route */
    req(&e, "POST", vars, OPS, "{\"name\":\"SHELL(id)\",\"value\":\"1\"}", &r);
    assert_problem(&r, 403, "action-denied");
    assert_str(r.json, "field", "name");
    assert_str(r.json, "rule", "SHELL");
    http_resp_free(&r);
    req(&e, "POST", vars, OPS, "{\"name\":\"X\",\"value\":\"${EVAL(${Y})}\"}", &r);
    assert_problem(&r, 403, "action-denied");
    assert_str(r.json, "field", "value");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "%s/SHELL%%28id%%29", vars);
    expect_bad(&e, "GET", path, NULL, "name"); /* the read route reads no function */
    stack_stop(&e);
}

static int at_250(const json_t *ch)
{
    const char *x = json_string_value(json_object_get(ch, "exten"));
    return x && !strcmp(x, "250");
}

static void redirect_sends_the_channel_elsewhere(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    char l1[NAME_MAX_], l2[NAME_MAX_], p1[256], p2[256], path[512], body[512];
    long_call(&e, l1, l2);
    snprintf(path, sizeof(path), "/v1/channels/%s/redirect", enc(l1, p1, sizeof(p1)));
    struct http_resp r;
    req(&e, "POST", path, OPS, "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1}", &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "channel", l1);
    assert_str(r.json, "context", "demo");
    assert_str(r.json, "exten", "250");
    assert_int_equal(json_integer_value(json_object_get(r.json, "priority")), 1);
    assert_str(r.json, "message", "Redirect successful");
    http_resp_free(&r);
    json_t *ch = wait_channel(&e, l1, "", at_250);
    assert_non_null(ch);
    assert_str(ch, "context", "demo");
    json_decref(ch);

    /* both legs at once */
    snprintf(body, sizeof(body),
             "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1,\"extra_channel\":\"%s\"}",
             l2);
    req(&e, "POST", path, OPS, body, &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "message", "Dual Redirect successful");
    assert_str(r.json, "extra_channel", l2);
    http_resp_free(&r);
    ch = wait_channel(&e, l2, "", at_250);
    assert_non_null(ch);
    json_decref(ch);

    req(&e, "POST", "/v1/channels/Local%2Fnonexistent-0000%3B1/redirect", OPS,
        "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1}", &r);
    assert_problem(&r, 404, "no-such-channel");
    assert_str(r.json, "ami_message", "Channel does not exist: Local/nonexistent-0000;1");
    http_resp_free(&r);
    req(&e, "POST", path, OPS,
        "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1,\"extra_channel\":\"Local/x-1;1\"}",
        &r);
    assert_problem(&r, 404, "no-such-channel");
    assert_str(r.json, "ami_message", "ExtraChannel does not exist: Local/x-1;1");
    http_resp_free(&r);

    expect_bad(&e, "POST", path, "{\"exten\":\"250\",\"priority\":1}", "context");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"priority\":1}", "exten");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"250\"}", "priority");
    expect_bad(&e, "POST", path, "{}", "context");
    expect_bad(&e, "POST", path, "{\"context\":\"\",\"exten\":\"250\",\"priority\":1}", "context");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"\",\"priority\":1}", "exten");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":0}",
               "priority");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":\"1\"}",
               "priority");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1.5}",
               "priority");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":250,\"priority\":1}", "exten");
    expect_bad(&e, "POST", path, "{\"context\":null,\"exten\":\"250\",\"priority\":1}", "context");
    expect_bad(&e, "POST", path,
               "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1,\"extra_channel\":\"/.*/\"}",
               "extra_channel");
    expect_bad(&e, "POST", path,
               "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1,\"extra_channel\":\"\"}",
               "extra_channel");
    expect_bad(&e, "POST", path,
               "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1,\"Channel\":\"x\"}",
               "Channel");
    expect_bad(&e, "POST", path, "{\"context\":\"de\\nmo\",\"exten\":\"250\",\"priority\":1}",
               "context");
    req(&e, "POST", path, OPS, "{\"context\":\"demo\",\"exten\":\"${SHELL(id)}\",\"priority\":1}",
        &r);
    assert_problem(&r, 403, "action-denied");
    assert_str(r.json, "field", "exten");
    http_resp_free(&r);
    /* the channel name itself goes through the same checks */
    snprintf(path, sizeof(path), "/v1/channels/%s%%0D%%0AAction:%%20Hangup/redirect",
             enc(l1, p2, sizeof(p2)));
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1}",
               "channel");
    stack_stop(&e);
}

static void hangup_with_a_cause_and_then_it_is_gone(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    char l1[NAME_MAX_], l2[NAME_MAX_], p2[256], path[512], q[1024];
    long_call(&e, l1, l2);
    snprintf(path, sizeof(path), "/v1/channels/%s", enc(l2, p2, sizeof(p2)));

    static const char *const bad[] = {"abc", "128", "-1", "", "16x", "1e1", "99999999999999999999",
                                      NULL};
    for (const char *const *b = bad; *b; b++) {
        snprintf(q, sizeof(q), "%s?cause=%s", path, *b);
        expect_bad(&e, "DELETE", q, NULL, "cause");
    }
    snprintf(q, sizeof(q), "%s?cause=%%zz", path);
    expect_bad(&e, "DELETE", q, NULL, "cause");
    /* a regular expression is no channel name: nothing is hung up */
    expect_bad(&e, "DELETE", "/v1/channels/%2F.%2A%2F", NULL, "channel");
    expect_bad(&e, "DELETE", "/v1/channels/%2FLocal", NULL, "channel");
    assert_int_equal(wait_status(&e, path, 200), 1);

    struct http_resp r;
    snprintf(q, sizeof(q), "%s?cause=16", path);
    req(&e, "DELETE", q, OPS, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    char *rid = http_resp_header(&r, "X-Request-Id");
    assert_non_null(rid);
    free(rid);
    http_resp_free(&r);
    /* both halves of the Local pair go */
    assert_int_equal(wait_status(&e, path, 404), 1);
    char p1[256], path1[512];
    snprintf(path1, sizeof(path1), "/v1/channels/%s", enc(l1, p1, sizeof(p1)));
    assert_int_equal(wait_status(&e, path1, 404), 1);
    req(&e, "GET", path, OPS, NULL, &r);
    assert_problem(&r, 404, "no-such-channel");
    assert_str(r.json, "channel", l2);
    http_resp_free(&r);

    req(&e, "DELETE", path, OPS, NULL, &r);
    assert_problem(&r, 404, "no-such-channel");
    assert_str(r.json, "ami_message", "No such channel");
    assert_str(r.json, "channel", l2);
    http_resp_free(&r);
    stack_stop(&e);
}

/* --- queues ------------------------------------------------------------------------------ */

static json_t *get_queue(const struct stack *e, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/queues/%s", name);
    struct http_resp r;
    req(e, "GET", path, OPS, NULL, &r);
    if (r.status != 200)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *q = json_incref(r.json);
    http_resp_free(&r);
    return q;
}

static json_t *member_of(const json_t *q, const char *interface)
{
    size_t i;
    json_t *m;
    json_array_foreach (json_object_get(q, "members"), i, m)
        if (!strcmp(json_string_value(json_object_get(m, "interface")), interface))
            return m;
    return NULL;
}

static void pause_member(const struct stack *e, const char *queue, const char *iface_enc,
                         int paused)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/queues/%s/members/%s/pause", queue, iface_enc);
    struct http_resp r;
    req(e, "POST", path, OPS, paused ? "{\"paused\":true}" : "{\"paused\":false}", &r);
    if (r.status != 200)
        fail_msg("pause: %ld %s", r.status, r.body);
    http_resp_free(&r);
}

static void queues_are_listed_and_read_with_typed_fields(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    struct http_resp r;
    req(&e, "GET", "/v1/queues", RO, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *qs = json_object_get(r.json, "queues");
    assert_int_equal(json_array_size(qs), 2);
    json_t *support = json_array_get(qs, 0), *sales = json_array_get(qs, 1);
    assert_str(support, "name", "support");
    assert_str(support, "strategy", "rrmemory");
    assert_str(sales, "name", "sales");
    assert_str(sales, "strategy", "ringall");
    static const char *const ints[] = {
        "calls",         "holdtime",  "talktime",  "completed",        "abandoned",
        "service_level", "logged_in", "available", "longest_holdtime", NULL};
    for (const char *const *k = ints; *k; k++)
        if (!json_is_integer(json_object_get(sales, *k)))
            fail_msg("%s is not an integer: %s", *k, r.body);
    assert_true(json_is_number(json_object_get(sales, "service_level_perf")));
    assert_int_equal(json_integer_value(json_object_get(sales, "logged_in")), 2);
    assert_int_equal(json_integer_value(json_object_get(sales, "available")), 2);
    assert_int_equal(json_array_size(json_object_get(sales, "members")), 2);
    assert_int_equal(json_array_size(json_object_get(sales, "callers")), 0);
    json_t *a200 = member_of(sales, "Local/200@demo");
    assert_non_null(a200);
    assert_str(a200, "name", "Agent200");
    assert_str(a200, "state", "not_inuse");
    assert_int_equal(json_integer_value(json_object_get(a200, "state_code")), 1);
    assert_str(a200, "membership", "static");
    assert_true(json_is_false(json_object_get(a200, "paused")));
    assert_true(json_is_null(json_object_get(a200, "paused_reason")));
    assert_true(json_is_integer(json_object_get(a200, "penalty")));
    assert_true(json_is_integer(json_object_get(a200, "calls_taken")));
    assert_true(json_is_null(json_object_get(a200, "last_call")));
    assert_true(json_is_false(json_object_get(a200, "in_call")));
    assert_non_null(member_of(sales, "Local/201@demo"));
    assert_non_null(member_of(support, "Local/202@demo"));
    http_resp_free(&r);

    json_t *q = get_queue(&e, "support");
    assert_str(q, "name", "support");
    assert_int_equal(json_array_size(json_object_get(q, "members")), 1);
    assert_int_equal(json_integer_value(json_object_get(q, "logged_in")), 1);
    json_decref(q);

    /* a call on Local/200@demo makes its member busy */
    char l1[NAME_MAX_], l2[NAME_MAX_];
    long_call(&e, l1, l2);
    q = get_queue(&e, "sales");
    assert_str(member_of(q, "Local/200@demo"), "state", "inuse");
    assert_int_equal(json_integer_value(json_object_get(q, "available")), 1);
    json_decref(q);

    req(&e, "GET", "/v1/queues/nope", OPS, NULL, &r);
    assert_problem(&r, 404, "no-such-queue");
    assert_str(r.json, "queue", "nope");
    http_resp_free(&r);
    expect_bad(&e, "GET", "/v1/queues/sa%0Ales", NULL, "queue");
    expect_bad(&e, "GET", "/v1/queues?server=nope", NULL, "server");
    expect_problem(&e, "DELETE", "/v1/queues/sales", OPS, NULL, 405, "method-not-allowed");
    stack_stop(&e);
}

static void queue_members_are_added_paused_and_removed(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    static const char members[] = "/v1/queues/sales/members";
    static const char a202[] = "/v1/queues/sales/members/Local%2F202%40demo";
    static const char a202p[] = "/v1/queues/sales/members/Local%2F202%40demo/pause";
    struct http_resp r;
    req(&e, "POST", members, OPS,
        "{\"interface\":\"Local/202@demo\",\"name\":\"Agent202\",\"penalty\":2}", &r);
    assert_int_equal(r.status, 201);
    assert_str(r.json, "queue", "sales");
    assert_str(r.json, "interface", "Local/202@demo");
    assert_str(r.json, "message", "Added interface to queue");
    assert_non_null(http_json_str(&r, "action_id"));
    http_resp_free(&r);
    json_t *q = get_queue(&e, "sales");
    json_t *m = member_of(q, "Local/202@demo");
    assert_non_null(m);
    assert_str(m, "name", "Agent202");
    assert_str(m, "membership", "dynamic");
    assert_int_equal(json_integer_value(json_object_get(m, "penalty")), 2);
    assert_true(json_is_false(json_object_get(m, "paused")));
    json_decref(q);

    req(&e, "POST", members, OPS, "{\"interface\":\"Local/202@demo\"}", &r);
    assert_problem(&r, 409, "member-exists");
    assert_str(r.json, "ami_message", "Unable to add interface: Already there");
    assert_str(r.json, "queue", "sales");
    assert_str(r.json, "interface", "Local/202@demo");
    http_resp_free(&r);
    req(&e, "POST", "/v1/queues/nope/members", OPS, "{\"interface\":\"Local/202@demo\"}", &r);
    assert_problem(&r, 404, "no-such-queue");
    assert_str(r.json, "ami_message", "Unable to add interface to queue: No such queue");
    http_resp_free(&r);

    req(&e, "POST", a202p, OPS, "{\"paused\":true,\"reason\":\"lunch\"}", &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "message", "Interface paused successfully");
    assert_true(json_is_true(json_object_get(r.json, "paused")));
    assert_str(r.json, "reason", "lunch");
    http_resp_free(&r);
    q = get_queue(&e, "sales");
    m = member_of(q, "Local/202@demo");
    assert_true(json_is_true(json_object_get(m, "paused")));
    assert_str(m, "paused_reason", "lunch");
    json_decref(q);
    req(&e, "POST", a202p, OPS, "{\"paused\":false}", &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "message", "Interface unpaused successfully");
    http_resp_free(&r);
    q = get_queue(&e, "sales");
    m = member_of(q, "Local/202@demo");
    assert_true(json_is_false(json_object_get(m, "paused")));
    assert_true(json_is_null(json_object_get(m, "paused_reason")));
    json_decref(q);

    req(&e, "POST", "/v1/queues/sales/members/Local%2F999%40demo/pause", OPS, "{\"paused\":true}",
        &r);
    assert_problem(&r, 404, "no-such-member");
    assert_str(r.json, "ami_message", "Interface not found");
    assert_str(r.json, "interface", "Local/999@demo");
    http_resp_free(&r);
    req(&e, "POST", "/v1/queues/nope/members/Local%2F202%40demo/pause", OPS, "{\"paused\":true}",
        &r);
    assert_problem(&r, 404, "no-such-queue");
    assert_str(r.json, "queue", "nope");
    http_resp_free(&r);

    req(&e, "DELETE", a202, OPS, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    http_resp_free(&r);
    q = get_queue(&e, "sales");
    assert_null(member_of(q, "Local/202@demo"));
    json_decref(q);
    req(&e, "DELETE", a202, OPS, NULL, &r);
    assert_problem(&r, 404, "no-such-member");
    assert_str(r.json, "ami_message", "Unable to remove interface: Not there");
    http_resp_free(&r);
    req(&e, "DELETE", "/v1/queues/sales/members/Local%2F200%40demo", OPS, NULL, &r);
    assert_problem(&r, 409, "member-not-dynamic");
    assert_str(r.json, "ami_message", "Member not dynamic");
    http_resp_free(&r);
    expect_problem(&e, "DELETE", "/v1/queues/nope/members/Local%2F200%40demo", OPS, NULL, 404,
                   "no-such-queue");

    /* added paused, with a reason */
    req(&e, "POST", members, OPS,
        "{\"interface\":\"Local/202@demo\",\"paused\":true,\"reason\":\"training\"}", &r);
    assert_int_equal(r.status, 201);
    http_resp_free(&r);
    q = get_queue(&e, "sales");
    m = member_of(q, "Local/202@demo");
    assert_str(m, "name", "Local/202@demo"); /* no name: the interface */
    assert_true(json_is_true(json_object_get(m, "paused")));
    assert_str(m, "paused_reason", "training");
    json_decref(q);

    /* validation, each naming its field */
    expect_bad(&e, "POST", members, "{}", "interface");
    expect_bad(&e, "POST", members, "{\"name\":\"x\"}", "interface");
    expect_bad(&e, "POST", members, "{\"interface\":\"\"}", "interface");
    expect_bad(&e, "POST", members, "{\"interface\":7}", "interface");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"name\":\"\"}", "name");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"penalty\":-1}", "penalty");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"penalty\":\"2\"}",
               "penalty");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"paused\":\"yes\"}",
               "paused");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"paused\":1}", "paused");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"reason\":\"x\"}",
               "reason");
    expect_bad(&e, "POST", members,
               "{\"interface\":\"Local/203@demo\",\"paused\":false,\"reason\":\"x\"}", "reason");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\",\"queue\":\"support\"}",
               "queue");
    expect_bad(&e, "POST", members, "{\"interface\":\"Local/203@demo\\r\\nAction: Logoff\"}",
               "interface");
    expect_bad(&e, "POST", "/v1/queues/sa%0Dles/members", "{\"interface\":\"Local/203@demo\"}",
               "queue");
    req(&e, "POST", members, OPS, "{\"interface\":\"Local/203@demo\",\"name\":\"${SHELL(id)}\"}",
        &r);
    assert_problem(&r, 403, "action-denied");
    assert_str(r.json, "field", "name");
    http_resp_free(&r);
    expect_bad(&e, "POST", a202p, "{}", "paused");
    expect_bad(&e, "POST", a202p, "{\"paused\":\"true\"}", "paused");
    expect_bad(&e, "POST", a202p, "{\"paused\":false,\"reason\":\"x\"}", "reason");
    expect_bad(&e, "POST", a202p, "{\"paused\":true,\"reason\":5}", "reason");
    expect_bad(&e, "POST", a202p, "{\"paused\":true,\"queue\":\"x\"}", "queue");
    expect_bad(&e, "POST", "/v1/queues/sales/members/Local%0A202/pause", "{\"paused\":true}",
               "interface");
    expect_bad(&e, "DELETE", "/v1/queues/sales/members/Local%0D202", NULL, "interface");
    expect_problem(&e, "GET", a202, OPS, NULL, 405, "method-not-allowed");
    stack_stop(&e);
}

static int bridged(const json_t *ch)
{
    return json_is_string(json_object_get(ch, "bridge_id"));
}

/* A caller waits in sales while every member is paused; unpausing one
 * connects it; the member's leg blind-transfers the caller to demo/250. */
static void queue_call_waits_connects_and_is_blind_transferred(void **state)
{
    (void)state;
    struct stack e;
    assert_int_equal(stack_start(&e, NULL), 0);
    pause_member(&e, "sales", "Local%2F200%40demo", 1);
    pause_member(&e, "sales", "Local%2F201%40demo", 1);
    originate(&e, "{\"Channel\":\"Local/400@demo\",\"Application\":\"Wait\",\"Data\":\"30\","
                  "\"Async\":\"true\"}");
    json_t *q = NULL;
    long long until = testenv_now_ms() + WAIT_MS;
    while (testenv_now_ms() < until) {
        q = get_queue(&e, "sales");
        if (json_array_size(json_object_get(q, "callers")) == 1)
            break;
        json_decref(q);
        q = NULL;
        testenv_sleep_ms(POLL_MS);
    }
    assert_non_null(q);
    assert_int_equal(json_integer_value(json_object_get(q, "calls")), 1);
    assert_true(json_is_integer(json_object_get(q, "longest_holdtime")));
    json_t *y = json_array_get(json_object_get(q, "callers"), 0);
    assert_int_equal(json_integer_value(json_object_get(y, "position")), 1);
    const char *caller = json_string_value(json_object_get(y, "channel"));
    assert_non_null(caller);
    assert_int_equal(strncmp(caller, "Local/400@demo-", 15), 0);
    char ycall[NAME_MAX_];
    snprintf(ycall, sizeof(ycall), "%s", caller);
    assert_true(json_is_integer(json_object_get(y, "wait_s")));
    assert_non_null(json_string_value(json_object_get(y, "uniqueid")));
    /* the originate gave no caller id */
    assert_true(json_is_null(json_object_get(json_object_get(y, "caller_id"), "number")));
    json_decref(q);

    /* the waiting caller is in no bridge: nothing to transfer */
    char py[256], path[512];
    snprintf(path, sizeof(path), "/v1/channels/%s/blind-transfer", enc(ycall, py, sizeof(py)));
    struct http_resp r;
    req(&e, "POST", path, OPS, "{\"context\":\"demo\",\"exten\":\"250\"}", &r);
    assert_problem(&r, 409, "channel-not-bridged");
    assert_str(r.json, "ami_message", "Transfer invalid");
    assert_str(r.json, "channel", ycall);
    http_resp_free(&r);

    pause_member(&e, "sales", "Local%2F201%40demo", 0);
    json_t *agent = wait_channel(&e, "Local/201@demo-", ";1", bridged);
    assert_non_null(agent);
    char aleg[NAME_MAX_];
    snprintf(aleg, sizeof(aleg), "%s", json_string_value(json_object_get(agent, "channel")));
    json_decref(agent);
    q = get_queue(&e, "sales");
    json_t *m = member_of(q, "Local/201@demo");
    assert_true(json_is_true(json_object_get(m, "in_call")));
    assert_int_equal(json_array_size(json_object_get(q, "callers")), 0);
    json_decref(q);

    char pa[256];
    snprintf(path, sizeof(path), "/v1/channels/%s/blind-transfer", enc(aleg, pa, sizeof(pa)));
    expect_bad(&e, "POST", path, "{\"context\":\"demo\"}", "exten");
    expect_bad(&e, "POST", path, "{\"exten\":\"250\"}", "context");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"\"}", "exten");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1}",
               "priority");
    expect_bad(&e, "POST", path, "{\"context\":\"demo\\u0000\",\"exten\":\"250\"}", "context");
    req(&e, "POST", path, OPS, "{\"context\":\"demo\",\"exten\":\"250\"}", &r);
    assert_int_equal(r.status, 200);
    assert_str(r.json, "channel", aleg);
    assert_str(r.json, "context", "demo");
    assert_str(r.json, "exten", "250");
    assert_str(r.json, "message", "Transfer succeeded");
    http_resp_free(&r);
    /* the caller runs demo/250; the member's leg is gone and it is free again */
    json_t *ch = wait_channel(&e, ycall, "", at_250);
    assert_non_null(ch);
    assert_true(json_is_null(json_object_get(ch, "bridge_id")));
    json_decref(ch);
    char pth[512];
    snprintf(pth, sizeof(pth), "/v1/channels/%s", pa);
    assert_int_equal(wait_status(&e, pth, 404), 1);
    q = get_queue(&e, "sales");
    m = member_of(q, "Local/201@demo");
    assert_true(json_is_false(json_object_get(m, "in_call")));
    assert_int_equal(json_integer_value(json_object_get(m, "calls_taken")), 1);
    assert_true(json_is_integer(json_object_get(m, "last_call")));
    json_decref(q);

    req(&e, "POST", "/v1/channels/Local%2F201%40demo-0000ffff%3B1/blind-transfer", OPS,
        "{\"context\":\"demo\",\"exten\":\"250\"}", &r);
    assert_problem(&r, 404, "no-such-channel");
    assert_str(r.json, "ami_message", "Channel specified does not exist");
    http_resp_free(&r);
    stack_stop(&e);
}

/* --- auth and AMI state ------------------------------------------------------------------ */

static void keys_and_scopes_are_enforced(void **state)
{
    (void)state;
    struct stack e;
    const char *env[] = {KEYS, NULL};
    assert_int_equal(stack_start(&e, env), 0);
    static const char ch[] = "/v1/channels/Local%2F200%40demo-00000000%3B1";
    static const struct {
        const char *method, *path, *body, *scope;
    } routes[] = {
        {"GET", "/v1/channels", NULL, "read"},
        {"GET", ch, NULL, "read"},
        {"DELETE", ch, NULL, "control"},
        {"POST", "/v1/channels/Local%2F200%40demo-00000000%3B1/redirect",
         "{\"context\":\"demo\",\"exten\":\"250\",\"priority\":1}", "control"},
        {"POST", "/v1/channels/Local%2F200%40demo-00000000%3B1/blind-transfer",
         "{\"context\":\"demo\",\"exten\":\"250\"}", "control"},
        {"POST", "/v1/channels/Local%2F200%40demo-00000000%3B1/variables",
         "{\"name\":\"X\",\"value\":\"1\"}", "control"},
        {"GET", "/v1/channels/Local%2F200%40demo-00000000%3B1/variables/X", NULL, "read"},
        {"GET", "/v1/queues", NULL, "read"},
        {"GET", "/v1/queues/sales", NULL, "read"},
        {"POST", "/v1/queues/sales/members", "{\"interface\":\"Local/202@demo\"}", "control"},
        {"DELETE", "/v1/queues/sales/members/Local%2F202%40demo", NULL, "control"},
        {"POST", "/v1/queues/sales/members/Local%2F202%40demo/pause", "{\"paused\":true}",
         "control"},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        struct http_resp r;
        req(&e, routes[i].method, routes[i].path, NULL, routes[i].body, &r);
        assert_problem(&r, 401, "unauthorized");
        char *www = http_resp_header(&r, "WWW-Authenticate");
        assert_non_null(www);
        free(www);
        http_resp_free(&r);
        req(&e, routes[i].method, routes[i].path, "not-a-key-0123456789", routes[i].body, &r);
        assert_problem(&r, 401, "unauthorized");
        http_resp_free(&r);
        /* the key that lacks the scope: 403 naming it; nothing reaches the PBX */
        const char *without = !strcmp(routes[i].scope, "read") ? CTL : RO;
        req(&e, routes[i].method, routes[i].path, without, routes[i].body, &r);
        assert_problem(&r, 403, "forbidden");
        assert_str(r.json, "required_scope", routes[i].scope);
        http_resp_free(&r);
        /* the key that has it gets past auth (to 200, 201, 204 or a PBX answer) */
        const char *with = !strcmp(routes[i].scope, "read") ? RO : CTL;
        req(&e, routes[i].method, routes[i].path, with, routes[i].body, &r);
        if (r.status == 401 || r.status == 403)
            fail_msg("%s %s with the %s key: %ld %s", routes[i].method, routes[i].path,
                     routes[i].scope, r.status, r.body);
        http_resp_free(&r);
    }
    stack_stop(&e);
}

static void ami_errors_of_the_pbx_map_like_the_generic_route(void **state)
{
    (void)state;
    struct stack e;
    /* the read-only AMI user may run QueueStatus and QueueSummary, but not
     * CoreShowChannels (it needs the system or reporting write class) */
    const char *env[] = {"AMIBRIDGE_AMI_USERNAME=viewer", "AMIBRIDGE_AMI_SECRET=viewersecret",
                         NULL};
    assert_int_equal(stack_start(&e, env), 0);
    struct http_resp r;
    req(&e, "GET", "/v1/queues/sales", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    req(&e, "GET", "/v1/channels", NULL, NULL, &r);
    assert_problem(&r, 403, "ami-permission-denied");
    assert_str(r.json, "ami_message", "Permission denied");
    http_resp_free(&r);
    req(&e, "DELETE", "/v1/channels/Local%2F200%40demo-00000000%3B1", NULL, NULL, &r);
    assert_problem(&r, 403, "ami-permission-denied");
    http_resp_free(&r);
    /* the PBX goes away: 503 at once, with Retry-After */
    proc_signal(&e.sim.proc, SIGKILL);
    proc_wait(&e.sim.proc, -1);
    assert_true(bridge_wait_status(&e.bridge, "/readyz", 503, WAIT_MS) >= 0);
    req(&e, "GET", "/v1/queues", NULL, NULL, &r);
    assert_problem(&r, 503, "ami-unavailable");
    char *ra = http_resp_header(&r, "Retry-After");
    assert_non_null(ra);
    free(ra);
    http_resp_free(&r);
    expect_problem(&e, "GET", "/v1/channels", NULL, NULL, 503, "ami-unavailable");
    expect_problem(&e, "POST", "/v1/queues/sales/members", NULL,
                   "{\"interface\":\"Local/202@demo\"}", 503, "ami-unavailable");
    stack_stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(channels_are_listed_and_read_with_typed_fields),
        cmocka_unit_test(channel_variables_are_set_and_read),
        cmocka_unit_test(redirect_sends_the_channel_elsewhere),
        cmocka_unit_test(hangup_with_a_cause_and_then_it_is_gone),
        cmocka_unit_test(queues_are_listed_and_read_with_typed_fields),
        cmocka_unit_test(queue_members_are_added_paused_and_removed),
        cmocka_unit_test(queue_call_waits_connects_and_is_blind_transferred),
        cmocka_unit_test(keys_and_scopes_are_enforced),
        cmocka_unit_test(ami_errors_of_the_pbx_map_like_the_generic_route),
    };
    return cmocka_run_group_tests_name("channels_queues", tests, NULL, NULL);
}
