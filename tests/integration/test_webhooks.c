/* Integration tests for webhooks: the real binary, the real ami-sim, real
 * HTTP receivers (support/receiver) and a real redis-server. Events come
 * from the simulator (UserEvent through the generic action route, SimFlood
 * from its flood generator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/receiver.h"
#include "support/redis.h"
#include "support/testenv.h"

#define ALLOW_LOOPBACK "AMIBRIDGE_WEBHOOK_ALLOW_NETS=127.0.0.0/8"
#define MAX_ENV        32

struct env {
    struct redis_srv redis;
    struct amisim sim;
    struct bridge bridge;
    int have_redis;
    const char *envv[MAX_ENV];
    char rurl[96];
};

static void bridge_up(struct env *e)
{
    assert_int_equal(bridge_start(&e->bridge, e->sim.port, e->envv), 0);
    assert_true(bridge_wait_status(&e->bridge, "/readyz", 200, 5000) >= 0);
    if (e->have_redis && bridge_wait_redis(&e->bridge, 5000) != 0)
        fail_msg("the bridge never saw Redis up");
}

/* `extra`: more "NAME=value" for the bridge. */
static void start(struct env *e, int with_redis, const char *const *extra)
{
    memset(e, 0, sizeof(*e));
    size_t n = 0;
    if (with_redis) {
        assert_int_equal(redis_start(&e->redis, 0), 0);
        e->have_redis = 1;
        snprintf(e->rurl, sizeof(e->rurl), "AMIBRIDGE_REDIS_URL=%s", e->redis.url);
        e->envv[n++] = e->rurl;
    }
    for (; extra && *extra && n < MAX_ENV - 1; extra++)
        e->envv[n++] = *extra;
    e->envv[n] = NULL;
    assert_int_equal(amisim_start(&e->sim, NULL), 0);
    bridge_up(e);
}

static void stop(struct env *e)
{
    bridge_stop(&e->bridge, 0);
    amisim_stop(&e->sim);
    if (e->have_redis)
        redis_stop(&e->redis);
}

static long call(const struct env *e, const char *method, const char *path, const char *token,
                 const char *body, struct http_resp *out)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", e->bridge.url, path);
    http_call(method, url, token, body, NULL, 30000, out);
    return out->status;
}

static long call_status(const struct env *e, const char *method, const char *path, const char *body)
{
    struct http_resp r;
    long st = call(e, method, path, NULL, body, &r);
    if (st >= 300)
        print_message("%s %s -> %ld %s\n", method, path, st, r.body);
    http_resp_free(&r);
    return st;
}

/* Create a subscription; its id and secret into the buffers. */
static void subscribe(const struct env *e, const char *url, const char *events, const char *more,
                      char *id, char *secret)
{
    char body[2048];
    snprintf(body, sizeof(body), "{\"url\":\"%s\",\"events\":%s%s%s}", url, events, more ? "," : "",
             more ? more : "");
    struct http_resp r;
    call(e, "POST", "/v1/webhooks", NULL, body, &r);
    if (r.status != 201)
        fail_msg("POST /v1/webhooks -> %ld %s", r.status, r.body);
    strcpy(id, http_json_str(&r, "id"));
    strcpy(secret, http_json_str(&r, "secret"));
    http_resp_free(&r);
}

static void hook_url(const struct receiver *rv, char *out, size_t len)
{
    snprintf(out, len, "http://127.0.0.1:%d/hook", receiver_port(rv));
}

static void user_event(const struct env *e, const char *name, int n)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"UserEvent\":\"%s\",\"N\":\"%d\"}", name, n);
    assert_int_equal(call_status(e, "POST", "/v1/actions/UserEvent", body), 200);
}

static void flood(const struct env *e, int rate, int count)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"Flood\":\"%d\",\"FloodCount\":\"%d\"}", rate, count);
    assert_int_equal(call_status(e, "POST", "/v1/actions/SimControl", body), 200);
}

static double metric(const struct env *e, const char *series)
{
    return http_metric(e->bridge.url, series);
}

/* The body of request i as JSON (new reference) and the request itself. */
static json_t *req_json(struct receiver *rv, size_t i, struct receiver_req *q)
{
    assert_int_equal(receiver_get(rv, i, q), 0);
    json_t *o = json_loadb(q->body, q->len, 0, NULL);
    assert_non_null(o);
    return o;
}

static long field_long(json_t *ev, const char *name)
{
    const char *v = json_string_value(json_object_get(json_object_get(ev, "fields"), name));
    return v ? strtol(v, NULL, 10) : -1;
}

/* Check X-Amibridge-Signature the way a receiver would: HMAC-SHA256 over
 * "<timestamp>.<body>" with the secret, compared as hex. */
static int signature_ok(const struct receiver_req *q, const char *secret)
{
    const char *ts = receiver_req_header(q, "X-Amibridge-Timestamp");
    const char *sig = receiver_req_header(q, "X-Amibridge-Signature");
    if (!ts || !sig || strncmp(sig, "sha256=", 7))
        return 0;
    size_t tl = strlen(ts);
    unsigned char *msg = malloc(tl + 1 + q->len);
    memcpy(msg, ts, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, q->body, q->len);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tl + 1 + q->len, mac, &ml);
    free(msg);
    char hex[65];
    for (unsigned i = 0; i < ml; i++)
        sprintf(hex + 2 * i, "%02x", mac[i]);
    long age = (long)time(NULL) - strtol(ts, NULL, 10);
    return ml == 32 && !strcmp(sig + 7, hex) && age >= -5 && age <= 300;
}

/* The Standard Webhooks key of a secret: the bytes a whsec_ secret
 * encodes, else the secret's own bytes. Its length. */
static int std_key(const char *secret, unsigned char *key)
{
    size_t n = strlen(secret);
    if (strncmp(secret, "whsec_", 6)) {
        memcpy(key, secret, n);
        return (int)n;
    }
    int len = EVP_DecodeBlock(key, (const unsigned char *)secret + 6, (int)(n - 6));
    return len - (secret[n - 1] == '=') - (secret[n - 2] == '=');
}

/* Check webhook-signature the way the spec says: "v1," + base64
 * HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>" must be one of
 * its blank-separated signatures; the timestamp recent. */
static int std_signature_ok(const struct receiver_req *q, const char *secret)
{
    const char *id = receiver_req_header(q, "webhook-id");
    const char *ts = receiver_req_header(q, "webhook-timestamp");
    const char *sigs = receiver_req_header(q, "webhook-signature");
    if (!id || !ts || !sigs)
        return 0;
    unsigned char key[160], mac[32];
    int kl = std_key(secret, key);
    size_t il = strlen(id), tl = strlen(ts);
    unsigned char *msg = malloc(il + tl + 2 + q->len);
    memcpy(msg, id, il);
    msg[il] = '.';
    memcpy(msg + il + 1, ts, tl);
    msg[il + 1 + tl] = '.';
    memcpy(msg + il + tl + 2, q->body, q->len);
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, kl, msg, il + tl + 2 + q->len, mac, &ml);
    free(msg);
    char want[64] = "v1,";
    EVP_EncodeBlock((unsigned char *)want + 3, mac, 32);
    long age = (long)time(NULL) - strtol(ts, NULL, 10);
    size_t wl = strlen(want);
    for (const char *p = sigs; *p;) {
        size_t n = strcspn(p, " ");
        if (n == wl && !memcmp(p, want, n))
            return age >= -5 && age <= 300;
        p += n;
        p += strspn(p, " ");
    }
    return 0;
}

static size_t std_signatures(const struct receiver_req *q)
{
    const char *sigs = receiver_req_header(q, "webhook-signature");
    size_t n = sigs && *sigs ? 1 : 0;
    for (; sigs && *sigs; sigs++)
        n += *sigs == ' ';
    return n;
}

/* --- the API --------------------------------------------------------------------------------- */

static void expect_bad(const struct env *e, const char *method, const char *path, const char *body,
                       const char *field)
{
    struct http_resp r;
    call(e, method, path, NULL, body, &r);
    if (r.status != 400 || !http_json_str(&r, "field") || strcmp(http_json_str(&r, "field"), field))
        fail_msg("%s %s %s -> %ld %s (wanted 400 naming %s)", method, path, body, r.status, r.body,
                 field);
    http_resp_free(&r);
}

static void subscriptions_are_checked_and_the_secret_is_shown_once(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, NULL};
    start(&e, 0, extra);
    expect_bad(&e, "POST", "/v1/webhooks", "{\"events\":[\"Hangup\"]}", "url");
    expect_bad(&e, "POST", "/v1/webhooks", "{\"url\":\"ftp://crm.example/x\",\"events\":[\"*\"]}",
               "url");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://u:p@crm.example/x\",\"events\":[\"*\"]}", "url");
    expect_bad(&e, "POST", "/v1/webhooks", "{\"url\":\"not a url\",\"events\":[\"*\"]}", "url");
    expect_bad(&e, "POST", "/v1/webhooks", "{\"url\":\"https://crm.example/x\",\"events\":[]}",
               "events");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://crm.example/x\",\"events\":[\"Hangup\",\"a b\"]}", "events[1]");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://crm.example/x\",\"events\":[\"*\"],\"filter\":{\"Queue\":1}}",
               "filter.Queue");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://crm.example/x\",\"events\":[\"*\"],\"secret\":\"short\"}",
               "secret");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://crm.example/x\",\"events\":[\"*\"],\"colour\":\"red\"}",
               "colour");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://crm.example/x\",\"events\":[\"*\"],\"signature\":\"v2\"}",
               "signature");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"https://crm.example/x\",\"events\":[\"*\"],"
               "\"secret\":\"whsec_not+base64+of+24+bytes\"}",
               "secret");
    /* private networks stay refused even with loopback allowed */
    expect_bad(&e, "POST", "/v1/webhooks", "{\"url\":\"http://10.1.2.3/x\",\"events\":[\"*\"]}",
               "url");
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"http://169.254.169.254/latest\",\"events\":[\"*\"]}", "url");

    struct http_resp r;
    assert_int_equal(call(&e, "POST", "/v1/webhooks", NULL,
                          "{\"url\":\"https://crm.example/hooks/pbx\",\"events\":[\"Hangup\","
                          "\"Queue*\"],\"filter\":{\"Queue\":\"sales\"},\"description\":\"crm\"}",
                          &r),
                     201);
    char id[64], loc[128];
    strcpy(id, http_json_str(&r, "id"));
    const char *secret = http_json_str(&r, "secret");
    assert_non_null(secret);
    /* whsec_ and the base64 of 32 random bytes */
    assert_int_equal(strlen(secret), 6 + 44);
    assert_memory_equal(secret, "whsec_", 6);
    assert_string_equal(http_json_str(&r, "signature"), "both");
    char *location = http_resp_header(&r, "Location");
    snprintf(loc, sizeof(loc), "/v1/webhooks/%s", id);
    assert_string_equal(location, loc);
    free(location);
    http_resp_free(&r);

    /* never shown again */
    assert_int_equal(call(&e, "GET", "/v1/webhooks", NULL, NULL, &r), 200);
    json_t *list = json_object_get(r.json, "webhooks");
    assert_int_equal(json_array_size(list), 1);
    assert_null(json_object_get(json_array_get(list, 0), "secret"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(list, 0), "filter"), "Queue")),
                        "sales");
    http_resp_free(&r);
    assert_int_equal(call(&e, "GET", loc, NULL, NULL, &r), 200);
    assert_null(json_object_get(r.json, "secret"));
    assert_non_null(json_object_get(r.json, "stats"));
    http_resp_free(&r);

    /* PATCH changes only what it names; a bad PATCH changes nothing */
    expect_bad(&e, "PATCH", loc, "{\"events\":\"Hangup\"}", "events");
    assert_int_equal(call(&e, "PATCH", loc, NULL, "{\"description\":\"CRM v2\"}", &r), 200);
    assert_string_equal(http_json_str(&r, "description"), "CRM v2");
    assert_string_equal(http_json_str(&r, "url"), "https://crm.example/hooks/pbx");
    assert_null(json_object_get(r.json, "secret"));
    assert_int_equal(json_array_size(json_object_get(r.json, "events")), 2);
    http_resp_free(&r);

    assert_int_equal(call_status(&e, "DELETE", loc, NULL), 204);
    assert_int_equal(call(&e, "GET", loc, NULL, NULL, &r), 404);
    assert_string_equal(http_json_str(&r, "type"), "urn:amibridge:problem:webhook-not-found");
    http_resp_free(&r);
    assert_int_equal(call_status(&e, "DELETE", loc, NULL), 404);
    assert_int_equal(call_status(&e, "POST", "/v1/webhooks/nope/test", NULL), 404);
    assert_int_equal(call_status(&e, "GET", "/v1/webhooks/nope/deliveries", NULL), 404);
    stop(&e);
}

static void webhook_routes_need_the_admin_scope_and_static_ones_are_read_only(void **state)
{
    (void)state;
    char dir[256], path[300], env_cfg[400];
    assert_int_equal(testenv_tmpdir(dir, sizeof(dir), "whcfg"), 0);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"webhooks\":[{\"id\":\"crm\",\"url\":\"https://crm.example/pbx\",\"events\":"
          "[\"Hangup\"],\"secret\":\"0123456789abcdef0123\",\"signature\":\"amibridge\"}]}",
          f);
    fclose(f);
    snprintf(env_cfg, sizeof(env_cfg), "AMIBRIDGE_CONFIG=%s", path);
    struct env e;
    const char *extra[] = {env_cfg, "AMIBRIDGE_API_KEYS=ops:tok-admin:admin reader:tok-read:read",
                           NULL};
    start(&e, 0, extra);
    struct http_resp r;
    assert_int_equal(call(&e, "GET", "/v1/webhooks", "tok-read", NULL, &r), 403);
    http_resp_free(&r);
    assert_int_equal(call(&e, "GET", "/v1/webhooks", NULL, NULL, &r), 401);
    http_resp_free(&r);
    assert_int_equal(call(&e, "GET", "/v1/webhooks", "tok-admin", NULL, &r), 200);
    json_t *one = json_array_get(json_object_get(r.json, "webhooks"), 0);
    assert_string_equal(json_string_value(json_object_get(one, "id")), "crm");
    assert_true(json_is_true(json_object_get(one, "static")));
    assert_null(json_object_get(one, "secret"));
    assert_string_equal(json_string_value(json_object_get(one, "signature")), "amibridge");
    http_resp_free(&r);
    assert_int_equal(call(&e, "PATCH", "/v1/webhooks/crm", "tok-admin", "{\"enabled\":false}", &r),
                     409);
    assert_string_equal(http_json_str(&r, "type"), "urn:amibridge:problem:webhook-static");
    http_resp_free(&r);
    assert_int_equal(call(&e, "DELETE", "/v1/webhooks/crm", "tok-admin", NULL, &r), 409);
    http_resp_free(&r);
    stop(&e);

    /* a bad static subscription stops the start, naming it */
#define GOOD_SECRET "\"secret\":\"0123456789abcdef0123\""
    static const struct {
        const char *member, *field;
    } bad[] = {
        {"\"url\":\"gopher://x\"," GOOD_SECRET, "webhooks[0].url"},
        {"\"url\":\"https://x.example\",\"signature\":\"hmac\"," GOOD_SECRET,
         "webhooks[0].signature"},
        /* the whsec_ form is checked as in the API, also for a previous secret */
        {"\"url\":\"https://x.example\",\"secret\":\"whsec_is-not-base64-at-all\"",
         "webhooks[0].secret"},
        {"\"url\":\"https://x.example\",\"previous_secrets\":[{\"secret\":\"whsec_AAAAAAAAAAAA\","
         "\"expires\":4000000000}]," GOOD_SECRET,
         "webhooks[0].previous_secrets[0].secret"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        f = fopen(path, "w");
        fprintf(f, "{\"webhooks\":[{\"id\":\"crm\",\"events\":[\"*\"],%s}]}", bad[i].member);
        fclose(f);
        char cmd[700], out[1024] = "";
        snprintf(cmd, sizeof(cmd),
                 "AMIBRIDGE_CONFIG=%s AMIBRIDGE_AMI_USERNAME=u AMIBRIDGE_AMI_SECRET=s "
                 "%s/amibridge 2>&1",
                 path, testenv_build_dir());
        FILE *p = popen(cmd, "r");
        size_t n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        assert_int_equal(WEXITSTATUS(pclose(p)), 2);
        if (!strstr(out, bad[i].field))
            fail_msg("start-up error does not name %s: %s", bad[i].field, out);
    }
    testenv_rmdir(dir);
}

/* --- delivery ------------------------------------------------------------------------------ */

static void deliveries_are_signed_in_order_and_reuse_the_connection(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, NULL};
    start(&e, 1, extra);
    struct receiver *rv = receiver_start();
    assert_non_null(rv);
    char url[128], id[64], secret[160];
    hook_url(rv, url, sizeof(url));
    subscribe(&e, url, "[\"SimFlood\"]", NULL, id, secret);
    enum { N = 300 };
    flood(&e, 3000, N);
    size_t got = receiver_wait(rv, N, 20000);
    assert_int_equal(got, N);
    char seen_ids[N][40];
    for (size_t i = 0; i < N; i++) {
        struct receiver_req q;
        json_t *ev = req_json(rv, i, &q);
        assert_string_equal(json_string_value(json_object_get(ev, "event")), "SimFlood");
        /* in order, none missing, none twice */
        assert_int_equal(field_long(ev, "Seq"), (long)i + 1);
        /* both schemes by default, one id and one timestamp for the two */
        assert_true(signature_ok(&q, secret));
        assert_true(std_signature_ok(&q, secret));
        assert_int_equal(std_signatures(&q), 1);
        assert_string_equal(receiver_req_header(&q, "webhook-id"),
                            receiver_req_header(&q, "X-Amibridge-Delivery"));
        assert_string_equal(receiver_req_header(&q, "webhook-timestamp"),
                            receiver_req_header(&q, "X-Amibridge-Timestamp"));
        assert_string_equal(receiver_req_header(&q, "X-Amibridge-Event"), "SimFlood");
        assert_string_equal(receiver_req_header(&q, "X-Amibridge-Webhook"), id);
        assert_string_equal(receiver_req_header(&q, "Content-Type"), "application/json");
        assert_true(!strncmp(receiver_req_header(&q, "User-Agent"), "amibridge/", 10));
        const char *did = receiver_req_header(&q, "X-Amibridge-Delivery");
        assert_int_equal(strlen(did), 32);
        snprintf(seen_ids[i], sizeof(seen_ids[i]), "%s", did);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(seen_ids[k], did);
        assert_string_equal(q.method, "POST");
        assert_string_equal(q.path, "/hook");
        json_decref(ev);
        receiver_req_free(&q);
    }
    /* one keep-alive connection carried them (allow a reconnect or two) */
    print_message("%d deliveries over %zu connection(s)\n", N, receiver_connections(rv));
    assert_true(receiver_connections(rv) <= 3);
    /* a tampered body or another secret does not verify */
    struct receiver_req q;
    assert_int_equal(receiver_get(rv, 0, &q), 0);
    assert_false(signature_ok(&q, "another-secret-entirely"));
    assert_false(std_signature_ok(&q, "another-secret-entirely"));
    q.body[q.len / 2] ^= 1;
    assert_false(signature_ok(&q, secret));
    assert_false(std_signature_ok(&q, secret));
    receiver_req_free(&q);
    /* the Redis list is empty once everything is delivered */
    char key[160];
    snprintf(key, sizeof(key), "ami:webhooks:queue:%s", id);
    for (int i = 0; i < 50 && redis_llen(&e.redis, key) != 0; i++)
        usleep(100 * 1000);
    assert_int_equal(redis_llen(&e.redis, key), 0);
    assert_true(metric(&e, "amibridge_webhook_deliveries_total{result=\"delivered\"}") >= N);
    assert_true(metric(&e, "amibridge_webhook_attempts_total{outcome=\"2xx\"}") >= N);
    assert_true(metric(&e, "amibridge_webhook_attempt_duration_seconds_count") >= N);
    receiver_stop(rv);
    stop(&e);
}

static void the_filter_picks_events_by_field(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, NULL};
    start(&e, 0, extra);
    struct receiver *all = receiver_start(), *crm = receiver_start();
    char url[128], id[64], secret[160];
    hook_url(all, url, sizeof(url));
    subscribe(&e, url, "[\"User*\"]", NULL, id, secret);
    hook_url(crm, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", "\"filter\":{\"UserEvent\":\"crm-*\"}", id, secret);
    user_event(&e, "crm-1", 1);
    user_event(&e, "other", 2);
    user_event(&e, "crm-2", 3);
    assert_int_equal(receiver_wait(all, 3, 5000), 3);
    assert_int_equal(receiver_wait(crm, 2, 5000), 2);
    usleep(300 * 1000);
    assert_int_equal(receiver_count(crm), 2);
    struct receiver_req q;
    json_t *ev = req_json(crm, 1, &q);
    assert_int_equal(field_long(ev, "N"), 3);
    json_decref(ev);
    receiver_req_free(&q);
    receiver_stop(all);
    receiver_stop(crm);
    stop(&e);
}

static void failures_are_retried_on_a_backoff_schedule_then_recorded(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS=200",
                           "AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS=4", NULL};
    start(&e, 0, extra);
    struct receiver *rv = receiver_start();
    receiver_set_status(rv, 500);
    char url[128], id[64], secret[160], path[160];
    hook_url(rv, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    user_event(&e, "retry-me", 1);
    assert_int_equal(receiver_wait(rv, 4, 10000), 4);
    double t[4];
    char did[40] = "";
    for (size_t i = 0; i < 4; i++) {
        struct receiver_req q;
        assert_int_equal(receiver_get(rv, i, &q), 0);
        t[i] = q.t;
        char want[8];
        snprintf(want, sizeof(want), "%zu", i + 1);
        assert_string_equal(receiver_req_header(&q, "X-Amibridge-Attempt"), want);
        if (i == 0)
            snprintf(did, sizeof(did), "%s", receiver_req_header(&q, "X-Amibridge-Delivery"));
        else /* the same delivery, so a receiver can de-duplicate */
            assert_string_equal(receiver_req_header(&q, "X-Amibridge-Delivery"), did);
        assert_string_equal(receiver_req_header(&q, "webhook-id"), did);
        assert_true(signature_ok(&q, secret));
        assert_true(std_signature_ok(&q, secret));
        receiver_req_free(&q);
    }
    /* retry n waits 50-100 % of 200 ms * 2^(n-1) */
    for (int i = 1; i < 4; i++) {
        double full = 0.2 * (double)(1 << (i - 1)), gap = t[i] - t[i - 1];
        print_message("retry %d after %.0f ms (schedule %.0f-%.0f ms)\n", i, gap * 1000, full * 500,
                      full * 1000);
        assert_true(gap >= full / 2 - 0.02);
        assert_true(gap <= full + 0.3);
    }
    usleep(1500 * 1000);
    assert_int_equal(receiver_count(rv), 4); /* no fifth attempt */
    struct http_resp r;
    snprintf(path, sizeof(path), "/v1/webhooks/%s/deliveries", id);
    assert_int_equal(call(&e, "GET", path, NULL, NULL, &r), 200);
    json_t *d = json_object_get(r.json, "deliveries");
    assert_int_equal(json_array_size(d), 4);
    json_t *last = json_array_get(d, 0); /* newest first */
    assert_string_equal(json_string_value(json_object_get(last, "result")), "failed");
    assert_int_equal(json_integer_value(json_object_get(last, "status")), 500);
    assert_int_equal(json_integer_value(json_object_get(last, "attempt")), 4);
    assert_string_equal(json_string_value(json_object_get(last, "delivery_id")), did);
    assert_true(!strncmp(json_string_value(json_object_get(last, "error")), "HTTP 500", 8));
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 3), "result")),
                        "retrying");
    http_resp_free(&r);
    assert_true(metric(&e, "amibridge_webhook_deliveries_total{result=\"failed\"}") == 1);
    assert_true(metric(&e, "amibridge_webhook_attempts_total{outcome=\"5xx\"}") == 4);

    /* the next delivery goes out on its own once the receiver is well */
    receiver_set_status(rv, 200);
    user_event(&e, "after", 2);
    assert_int_equal(receiver_wait(rv, 5, 5000), 5);
    receiver_stop(rv);
    stop(&e);
}

static void gone_disables_the_subscription_until_it_is_enabled_again(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, NULL};
    start(&e, 1, extra);
    struct receiver *rv = receiver_start();
    receiver_set_status(rv, 410);
    char url[128], id[64], secret[160], path[160];
    hook_url(rv, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    user_event(&e, "one", 1);
    assert_int_equal(receiver_wait(rv, 1, 5000), 1);
    snprintf(path, sizeof(path), "/v1/webhooks/%s", id);
    struct http_resp r;
    int disabled = 0;
    for (int i = 0; i < 50 && !disabled; i++) {
        call(&e, "GET", path, NULL, NULL, &r);
        disabled = json_is_false(json_object_get(r.json, "enabled"));
        if (disabled)
            assert_non_null(strstr(http_json_str(&r, "reason"), "410"));
        http_resp_free(&r);
        if (!disabled)
            usleep(100 * 1000);
    }
    assert_true(disabled);
    user_event(&e, "two", 2);
    user_event(&e, "three", 3);
    usleep(500 * 1000);
    assert_int_equal(receiver_count(rv), 1);
    assert_true(metric(&e, "amibridge_webhook_subscriptions{state=\"disabled\"}") == 1);
    /* kept disabled in the store: a restart does not bring it back */
    bridge_stop(&e.bridge, 0);
    bridge_up(&e);
    usleep(1500 * 1000);
    call(&e, "GET", path, NULL, NULL, &r);
    assert_true(json_is_false(json_object_get(r.json, "enabled")));
    http_resp_free(&r);

    receiver_set_status(rv, 200);
    assert_int_equal(call(&e, "PATCH", path, NULL, "{\"enabled\":true}", &r), 200);
    assert_true(json_is_true(json_object_get(r.json, "enabled")));
    assert_true(json_is_null(json_object_get(r.json, "reason")));
    http_resp_free(&r);
    user_event(&e, "four", 4);
    assert_int_equal(receiver_wait(rv, 2, 5000), 2);
    struct receiver_req q;
    json_t *ev = req_json(rv, 1, &q);
    assert_int_equal(field_long(ev, "N"), 4);
    json_decref(ev);
    receiver_req_free(&q);
    receiver_stop(rv);
    stop(&e);
}

static void a_dead_receiver_does_not_delay_a_healthy_one(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, "AMIBRIDGE_WEBHOOK_TIMEOUT_MS=8000", NULL};
    start(&e, 0, extra);
    struct receiver *dead = receiver_start(), *slow = receiver_start(), *ok = receiver_start();
    receiver_set_silent(dead, 1);
    receiver_set_delay_ms(slow, 2000);
    char url[128], id[64], secret[160];
    hook_url(dead, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    hook_url(slow, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    hook_url(ok, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    double t0 = testenv_now();
    for (int i = 1; i <= 20; i++)
        user_event(&e, "ev", i);
    assert_int_equal(receiver_wait(ok, 20, 5000), 20);
    double took = testenv_now() - t0;
    print_message("healthy receiver had all 20 after %.0f ms\n", took * 1000);
    assert_true(took < 1.5);
    /* the others hold one attempt each, in order */
    assert_int_equal(receiver_count(dead), 1);
    assert_true(receiver_count(slow) <= 1);
    /* and the API still answers at once */
    t0 = testenv_now();
    assert_int_equal(call_status(&e, "GET", "/v1/webhooks", NULL), 200);
    assert_true(testenv_now() - t0 < 0.5);
    receiver_stop(dead);
    receiver_stop(slow);
    receiver_stop(ok);
    stop(&e);
}

static void a_full_queue_drops_new_deliveries_counted_and_logged(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, "AMIBRIDGE_WEBHOOK_QUEUE=5", "AMIBRIDGE_LOG_LEVEL=info",
                           NULL};
    start(&e, 0, extra);
    struct receiver *rv = receiver_start();
    receiver_set_silent(rv, 1);
    char url[128], id[64], secret[160];
    hook_url(rv, url, sizeof(url));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    for (int i = 1; i <= 20; i++)
        user_event(&e, "ev", i);
    usleep(300 * 1000);
    assert_true(metric(&e, "amibridge_webhook_deliveries_total{result=\"dropped\"}") == 15);
    assert_true(metric(&e, "amibridge_webhook_queue_deliveries") == 5);
    assert_true(bridge_log_count(&e.bridge, "webhook queue full") >= 1);
    receiver_stop(rv);
    stop(&e);
}

/* --- nothing lost -------------------------------------------------------------------------- */

static long llen(const struct env *e, const char *id)
{
    char key[160];
    snprintf(key, sizeof(key), "ami:webhooks:queue:%s", id);
    return redis_llen(&e->redis, key);
}

static void pending_deliveries_survive_kill_9_of_the_bridge(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS=100",
                           "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS=200",
                           "AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS=1000", NULL};
    start(&e, 1, extra);
    struct receiver *rv = receiver_start();
    receiver_set_status(rv, 503);
    char url[128], id[64], secret[160];
    hook_url(rv, url, sizeof(url));
    subscribe(&e, url, "[\"SimFlood\"]", NULL, id, secret);
    enum { N = 200 };
    flood(&e, 2000, N);
    for (int i = 0; i < 100 && llen(&e, id) < N; i++)
        usleep(50 * 1000);
    assert_int_equal(llen(&e, id), N);
    assert_true(receiver_wait(rv, 2, 5000) >= 2);
    struct receiver_req q;
    assert_int_equal(receiver_get(rv, 0, &q), 0);
    char first_id[40];
    snprintf(first_id, sizeof(first_id), "%s", receiver_req_header(&q, "X-Amibridge-Delivery"));
    receiver_req_free(&q);

    bridge_stop(&e.bridge, SIGKILL);
    size_t before = receiver_count(rv);
    receiver_set_status(rv, 200);
    bridge_up(&e);

    /* every event arrives at least once, in order, the first with its old id */
    int have[N + 1] = {0};
    int missing = N;
    double t0 = testenv_now();
    size_t i = before;
    while (missing > 0 && testenv_now() - t0 < 20) {
        if (receiver_wait(rv, i + 1, 200) < i + 1)
            continue;
        json_t *ev = req_json(rv, i, &q);
        if (q.status == 200) {
            long seq = field_long(ev, "Seq");
            assert_true(seq >= 1 && seq <= N);
            if (!have[seq]) {
                have[seq] = 1;
                missing--;
            }
            if (seq == 1)
                assert_string_equal(receiver_req_header(&q, "X-Amibridge-Delivery"), first_id);
            assert_true(signature_ok(&q, secret));
        }
        json_decref(ev);
        receiver_req_free(&q);
        i++;
    }
    print_message("%d of %d events delivered after kill -9 and restart\n", N - missing, N);
    assert_int_equal(missing, 0);
    for (int k = 0; k < 50 && llen(&e, id) != 0; k++)
        usleep(100 * 1000);
    assert_int_equal(llen(&e, id), 0);
    receiver_stop(rv);
    stop(&e);
}

static void subscriptions_are_shared_by_bridges_on_one_redis(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, NULL};
    start(&e, 1, extra);
    struct bridge other;
    assert_int_equal(bridge_start(&other, e.sim.port, e.envv), 0);
    assert_int_equal(bridge_wait_redis(&other, 5000), 0);
    char id[64], secret[160], path[160], url[512];
    subscribe(&e, "https://crm.example/hooks", "[\"Hangup\"]", NULL, id, secret);
    snprintf(path, sizeof(path), "/v1/webhooks/%s", id);
    snprintf(url, sizeof(url), "%s%s", other.url, path);
    struct http_resp r;
    double t0 = testenv_now();
    long st = 0;
    while (st != 200 && testenv_now() - t0 < 3) {
        http_call("GET", url, NULL, NULL, NULL, 5000, &r);
        st = r.status;
        http_resp_free(&r);
        if (st != 200)
            usleep(50 * 1000);
    }
    print_message("seen by the other bridge after %.0f ms\n", (testenv_now() - t0) * 1000);
    assert_int_equal(st, 200);
    assert_true(testenv_now() - t0 < 1.0);
    http_call("DELETE", url, NULL, NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 204);
    http_resp_free(&r);
    t0 = testenv_now();
    while (call_status(&e, "GET", path, NULL) != 404 && testenv_now() - t0 < 3)
        usleep(50 * 1000);
    assert_true(testenv_now() - t0 < 1.0);
    bridge_stop(&other, 0);
    stop(&e);
}

/* --- Standard Webhooks: the scheme and the rotation in the Redis store ---------------------- */

#define ROTATED_SECRET "whsec_cm90YXRlZC1zZWNyZXQtb2YtdGhlLXRlc3QtMDEyMw=="

/* The first request of `rv` whose body names the UserEvent `name`. */
static int request_of(struct receiver *rv, const char *name, struct receiver_req *out)
{
    char want[96];
    snprintf(want, sizeof(want), "\"UserEvent\":\"%s\"", name);
    for (int tries = 0; tries < 100; tries++) {
        for (size_t i = 0; i < receiver_count(rv); i++) {
            if (receiver_get(rv, i, out) == 0 && strstr(out->body, want))
                return 0;
            receiver_req_free(out);
        }
        usleep(50 * 1000);
    }
    return -1;
}

static void the_redis_store_keeps_the_scheme_and_the_rotation(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, "AMIBRIDGE_WEBHOOK_SECRET_GRACE_S=600", NULL};
    start(&e, 1, extra);
    struct receiver *rv = receiver_start();
    char url[128], rec[640], id[64], secret[160], path[160];
    hook_url(rv, url, sizeof(url));

    /* a subscription an older amibridge stored: no signature, no previous_secrets */
    const char *old_secret = "stored-by-an-older-amibridge";
    snprintf(rec, sizeof(rec),
             "{\"id\":\"wh_00000000000000bb\",\"url\":\"%s\",\"events\":[\"UserEvent\"],"
             "\"filter\":{\"UserEvent\":\"old\"},\"description\":null,\"enabled\":true,"
             "\"reason\":null,\"created\":1700000000,\"static\":false,\"secret\":\"%s\"}",
             url, old_secret);
    const char *hset[] = {"HSET", "ami:webhooks", "wh_00000000000000bb", rec, NULL};
    const char *incr[] = {"INCR", "ami:webhooks:version", NULL};
    free(redis_cli(&e.redis, hset));
    free(redis_cli(&e.redis, incr));
    struct http_resp r;
    long st = 0;
    for (int i = 0; i < 40 && st != 200; i++) {
        st = call(&e, "GET", "/v1/webhooks/wh_00000000000000bb", NULL, NULL, &r);
        if (st == 200) {
            assert_string_equal(http_json_str(&r, "signature"), "both");
            assert_int_equal(json_array_size(json_object_get(r.json, "previous_secrets")), 0);
        }
        http_resp_free(&r);
        if (st != 200)
            usleep(100 * 1000);
    }
    assert_int_equal(st, 200);
    user_event(&e, "old", 1);
    struct receiver_req q;
    assert_int_equal(request_of(rv, "old", &q), 0);
    assert_true(signature_ok(&q, old_secret));
    assert_true(std_signature_ok(&q, old_secret)); /* the secret's own bytes are the key */
    receiver_req_free(&q);

    /* standard only, then rotated: the old secret is kept in Redis until it expires */
    subscribe(&e, url, "[\"UserEvent\"]",
              "\"signature\":\"standard\",\"filter\":{\"UserEvent\":\"new*\"}", id, secret);
    snprintf(path, sizeof(path), "/v1/webhooks/%s", id);
    assert_int_equal(call(&e, "PATCH", path, NULL, "{\"secret\":\"" ROTATED_SECRET "\"}", &r), 200);
    json_t *prev = json_object_get(r.json, "previous_secrets");
    assert_int_equal(json_array_size(prev), 1);
    long long expires = json_integer_value(json_object_get(json_array_get(prev, 0), "expires"));
    assert_true(llabs(expires - ((long long)time(NULL) + 600)) <= 5);
    assert_null(json_object_get(json_array_get(prev, 0), "secret"));
    http_resp_free(&r);
    const char *hget[] = {"HGET", "ami:webhooks", id, NULL};
    char *stored = redis_cli(&e.redis, hget);
    assert_non_null(stored);
    json_t *so = json_loads(stored, 0, NULL);
    assert_non_null(so);
    assert_string_equal(json_string_value(json_object_get(so, "signature")), "standard");
    assert_string_equal(json_string_value(json_object_get(so, "secret")), ROTATED_SECRET);
    json_t *p0 = json_array_get(json_object_get(so, "previous_secrets"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "secret")), secret);
    assert_int_equal(json_integer_value(json_object_get(p0, "expires")), expires);
    json_decref(so);
    free(stored);

    /* a delivery during the grace period, before and after a restart */
    for (int round = 0; round < 2; round++) {
        char name[32];
        snprintf(name, sizeof(name), "new-%d", round);
        user_event(&e, name, 1);
        assert_int_equal(request_of(rv, name, &q), 0);
        assert_null(receiver_req_header(&q, "X-Amibridge-Signature"));
        assert_int_equal(std_signatures(&q), 2);
        assert_true(std_signature_ok(&q, ROTATED_SECRET));
        assert_true(std_signature_ok(&q, secret));
        assert_false(std_signature_ok(&q, "whsec_YW5vdGhlci1zZWNyZXQtYWx0b2dldGhlci0w"));
        receiver_req_free(&q);
        if (round == 0) {
            bridge_stop(&e.bridge, 0);
            bridge_up(&e);
        }
    }
    receiver_stop(rv);
    stop(&e);
}

/* --- the SSRF guard ------------------------------------------------------------------------ */

static void the_ssrf_guard_refuses_loopback_unless_allowed(void **state)
{
    (void)state;
    struct env e;
    start(&e, 0, NULL);
    struct receiver *rv = receiver_start();
    char url[160], body[400];
    hook_url(rv, url, sizeof(url));
    snprintf(body, sizeof(body), "{\"url\":\"%s\",\"events\":[\"*\"]}", url);
    struct http_resp r;
    assert_int_equal(call(&e, "POST", "/v1/webhooks", NULL, body, &r), 400);
    assert_string_equal(http_json_str(&r, "field"), "url");
    assert_non_null(strstr(http_json_str(&r, "detail"), "loopback"));
    http_resp_free(&r);
    expect_bad(&e, "POST", "/v1/webhooks",
               "{\"url\":\"http://[::ffff:127.0.0.1]/x\",\"events\":[\"*\"]}", "url");
    expect_bad(&e, "POST", "/v1/webhooks", "{\"url\":\"http://[::1]:9/x\",\"events\":[\"*\"]}",
               "url");
    /* a name is resolved at connect time, and refused there */
    char id[64], secret[160], path[160];
    snprintf(url, sizeof(url), "http://localhost:%d/hook", receiver_port(rv));
    subscribe(&e, url, "[\"UserEvent\"]", NULL, id, secret);
    snprintf(path, sizeof(path), "/v1/webhooks/%s/test", id);
    assert_int_equal(call(&e, "POST", path, NULL, NULL, &r), 200);
    assert_string_equal(http_json_str(&r, "result"), "failed");
    if (!strstr(http_json_str(&r, "error"), "SSRF"))
        fail_msg("error does not name the SSRF guard: %s", r.body);
    http_resp_free(&r);
    user_event(&e, "x", 1);
    usleep(500 * 1000);
    assert_int_equal(receiver_count(rv), 0);
    assert_true(metric(&e, "amibridge_webhook_attempts_total{outcome=\"refused\"}") >= 2);
    receiver_stop(rv);
    stop(&e);
}

/* --- the state file ------------------------------------------------------------------------ */

struct hammer {
    const struct env *e;
    char path[160];
    volatile int stop;
    int sent;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    char body[128];
    while (!h->stop) {
        snprintf(body, sizeof(body), "{\"description\":\"change %d\"}", h->sent);
        struct http_resp r;
        call(h->e, "PATCH", h->path, NULL, body, &r);
        http_resp_free(&r);
        h->sent++;
    }
    return NULL;
}

static void the_state_file_survives_kill_9_mid_write(void **state)
{
    (void)state;
    char dir[256], env_dir[300];
    assert_int_equal(testenv_tmpdir(dir, sizeof(dir), "whstate"), 0);
    snprintf(env_dir, sizeof(env_dir), "AMIBRIDGE_STATE_DIR=%s", dir);
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, env_dir, NULL};
    start(&e, 0, extra);
    struct receiver *rv = receiver_start();
    char url[128], ids[3][64], secrets[3][160];
    hook_url(rv, url, sizeof(url));
    for (int i = 0; i < 3; i++)
        subscribe(&e, url, "[\"UserEvent\"]", NULL, ids[i], secrets[i]);

    for (int round = 0; round < 5; round++) {
        struct hammer h = {.e = &e};
        snprintf(h.path, sizeof(h.path), "/v1/webhooks/%s", ids[round % 3]);
        pthread_t th;
        pthread_create(&th, NULL, hammer_run, &h);
        usleep((useconds_t)(50000 + 37000 * round));
        kill(e.bridge.proc.pid, SIGKILL);
        h.stop = 1;
        pthread_join(th, NULL);
        bridge_stop(&e.bridge, SIGKILL);
        print_message("round %d: killed after %d changes\n", round, h.sent);
        /* starts again (a half-written file would stop it) with all three */
        bridge_up(&e);
        struct http_resp r;
        assert_int_equal(call(&e, "GET", "/v1/webhooks", NULL, NULL, &r), 200);
        json_t *list = json_object_get(r.json, "webhooks");
        assert_int_equal(json_array_size(list), 3);
        for (int i = 0; i < 3; i++)
            assert_string_equal(
                json_string_value(json_object_get(json_array_get(list, (size_t)i), "id")), ids[i]);
        http_resp_free(&r);
    }
    /* the secrets came back too: deliveries still verify */
    receiver_clear(rv);
    user_event(&e, "after-crashes", 1);
    assert_int_equal(receiver_wait(rv, 3, 5000), 3);
    for (size_t i = 0; i < 3; i++) {
        struct receiver_req q;
        assert_int_equal(receiver_get(rv, i, &q), 0);
        const char *sub = receiver_req_header(&q, "X-Amibridge-Webhook");
        int k = !strcmp(sub, ids[0]) ? 0 : !strcmp(sub, ids[1]) ? 1 : 2;
        assert_true(signature_ok(&q, secrets[k]));
        receiver_req_free(&q);
    }
    /* no temporary files are left behind */
    bridge_stop(&e.bridge, 0);
    DIR *d = opendir(dir);
    int others = 0;
    for (struct dirent *de; (de = readdir(d));)
        others += de->d_name[0] != '.' && strcmp(de->d_name, "webhooks.json");
    closedir(d);
    assert_int_equal(others, 0);
    bridge_up(&e);
    receiver_stop(rv);
    stop(&e);
    testenv_rmdir(dir);
}

/* --- the documented receivers (docs/examples, docs/events-and-webhooks.md) ---------------- */

#define DOCS_SECRET "whsec_cmVhZG1lLWV4YW1wbGUtc2VjcmV0LTAxMjM0NTY3"

/* A subscription of `scheme` to the receiver at `url` for the UserEvent
 * named `name`; its test route into `path`. */
static void documented_subscription(const struct env *e, const char *url, const char *scheme,
                                    const char *name, const char *secret, char *path, size_t len)
{
    char body[512];
    struct http_resp r;
    snprintf(body, sizeof(body),
             "{\"url\":\"%s\",\"events\":[\"UserEvent\"],\"secret\":\"%s\","
             "\"signature\":\"%s\",\"filter\":{\"UserEvent\":\"%s\"}}",
             url, secret, scheme, name);
    assert_int_equal(call(e, "POST", "/v1/webhooks", NULL, body, &r), 201);
    snprintf(path, len, "/v1/webhooks/%s/test", http_json_str(&r, "id"));
    http_resp_free(&r);
}

static int printed(const char *file, const char *want)
{
    char line[256];
    int found = 0;
    FILE *f = fopen(file, "r");
    while (f && !found && fgets(line, sizeof(line), f))
        found = !strncmp(line, "verified UserEvent ", 19) && strstr(line, want);
    if (f)
        fclose(f);
    return found;
}

static void run_documented_receiver(const struct env *e, const char *interp, const char *script)
{
    char dir[256], out[300], port_s[16], url[128], path[160], name[64];
    static const char *const schemes[] = {"standard", "amibridge"};
    assert_int_equal(testenv_tmpdir(dir, sizeof(dir), "whdoc"), 0);
    snprintf(out, sizeof(out), "%s/stdout", dir);
    int port = proc_free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    const char *argv[] = {"/usr/bin/env", interp, script, port_s, NULL};
    const char *envv[] = {"AMIBRIDGE_WEBHOOK_SECRET=" DOCS_SECRET, NULL};
    struct proc_opts o = {.env = envv, .stdout_path = out};
    struct proc p;
    assert_int_equal(proc_spawn(&p, argv, &o), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    for (size_t k = 0; k < 2; k++) {
        snprintf(name, sizeof(name), "%s-%s", interp, schemes[k]);
        documented_subscription(e, url, schemes[k], name, DOCS_SECRET, path, sizeof(path));
        /* the receiver is up once a ping verifies */
        int up = 0;
        struct http_resp r;
        for (int i = 0; i < 100 && !up; i++) {
            call(e, "POST", path, NULL, NULL, &r);
            up = r.status == 200 && !strcmp(http_json_str(&r, "result"), "delivered");
            http_resp_free(&r);
            if (!up)
                usleep(100 * 1000);
        }
        if (!up)
            fail_msg("%s %s never verified a %s ping", interp, script, schemes[k]);
        user_event(e, name, 1);
    }
    /* a subscription with another secret is refused by the receiver, either way */
    for (size_t k = 0; k < 2; k++) {
        struct http_resp r;
        documented_subscription(e, url, schemes[k], "Nothing", "not-the-receivers-secret", path,
                                sizeof(path));
        assert_int_equal(call(e, "POST", path, NULL, NULL, &r), 200);
        assert_string_equal(http_json_str(&r, "result"), "failed");
        assert_int_equal(json_integer_value(json_object_get(r.json, "status")), 401);
        http_resp_free(&r);
    }
    int verified = 0;
    for (int i = 0; i < 50 && verified < 2; i++) {
        verified = printed(out, " standard\n") + printed(out, " amibridge\n");
        if (verified < 2)
            usleep(100 * 1000);
    }
    proc_stop(&p, 2000);
    if (verified < 2)
        fail_msg("%s %s did not print a verified UserEvent of each scheme", interp, script);
    testenv_rmdir(dir);
}

static void the_documented_receivers_verify_real_deliveries(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {ALLOW_LOOPBACK, NULL};
    start(&e, 0, extra);
    run_documented_receiver(&e, "python3", "docs/examples/webhook_receiver.py");
    run_documented_receiver(&e, "node", "docs/examples/webhook_receiver.mjs");
    stop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subscriptions_are_checked_and_the_secret_is_shown_once),
        cmocka_unit_test(webhook_routes_need_the_admin_scope_and_static_ones_are_read_only),
        cmocka_unit_test(deliveries_are_signed_in_order_and_reuse_the_connection),
        cmocka_unit_test(the_filter_picks_events_by_field),
        cmocka_unit_test(failures_are_retried_on_a_backoff_schedule_then_recorded),
        cmocka_unit_test(gone_disables_the_subscription_until_it_is_enabled_again),
        cmocka_unit_test(a_dead_receiver_does_not_delay_a_healthy_one),
        cmocka_unit_test(a_full_queue_drops_new_deliveries_counted_and_logged),
        cmocka_unit_test(pending_deliveries_survive_kill_9_of_the_bridge),
        cmocka_unit_test(subscriptions_are_shared_by_bridges_on_one_redis),
        cmocka_unit_test(the_redis_store_keeps_the_scheme_and_the_rotation),
        cmocka_unit_test(the_ssrf_guard_refuses_loopback_unless_allowed),
        cmocka_unit_test(the_state_file_survives_kill_9_mid_write),
        cmocka_unit_test(the_documented_receivers_verify_real_deliveries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
