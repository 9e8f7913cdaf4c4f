#include "api/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/guard.h"
#include "api/idem.h"
#include "api/internal.h"
#include "api/lockout.h"
#include "api/sguard.h"
#include "bus/ssrf.h"
#include "core/metrics.h"
#include "bus/events.h"
#include "core/log.h"

static const struct http_route routes[] = {
    {"GET", "/healthz", "healthz", 0, api_healthz},
    {"GET", "/readyz", "readyz", 0, api_readyz},
    {"GET", "/openapi.yaml", "openapi", 0, api_openapi},
    {"GET", "/", "dashboard", 0, api_dashboard_page},
    {"GET", "/dashboard", "dashboard", 0, api_dashboard_page},
    {"GET", "/dashboard/app.js", "dashboard_asset", 0, api_dashboard_js},
    {"GET", "/dashboard/style.css", "dashboard_asset", 0, api_dashboard_css},
    {"POST", "/v1/actions/{action}", "actions", CFG_SCOPE_ACTIONS, api_actions_post},
    {"POST", "/v1/calls", "calls", CFG_SCOPE_CALL, api_calls_post},
    {"GET", "/v1/calls/live", "calls_live", CFG_SCOPE_READ, api_calls_live},
    {"GET", "/v1/calls/stats", "call_stats", CFG_SCOPE_READ, api_call_stats},
    {"GET", "/v1/calls/events", "call_events", CFG_SCOPE_READ, api_call_events_get},
    {"GET", "/v1/calls/{id}", "call", CFG_SCOPE_READ, api_call_get},
    {"DELETE", "/v1/calls/{id}", "call_hangup", CFG_SCOPE_CONTROL, api_call_hangup},
    {"GET", "/v1/events", "events", CFG_SCOPE_READ, api_events_get},
    {"GET", "/metrics", "metrics", 0, api_metrics_get},
    {"GET", "/v1/channels", "channels", CFG_SCOPE_READ, api_channels_list},
    {"GET", "/v1/channels/{channel}", "channel", CFG_SCOPE_READ, api_channel_get},
    {"DELETE", "/v1/channels/{channel}", "channel_hangup", CFG_SCOPE_CONTROL, api_channel_hangup},
    {"POST", "/v1/channels/{channel}/redirect", "channel_redirect", CFG_SCOPE_CONTROL,
     api_channel_redirect},
    {"POST", "/v1/channels/{channel}/blind-transfer", "channel_blind_transfer", CFG_SCOPE_CONTROL,
     api_channel_blind_transfer},
    {"POST", "/v1/channels/{channel}/variables", "channel_setvar", CFG_SCOPE_CONTROL,
     api_channel_setvar},
    {"GET", "/v1/channels/{channel}/variables/{name}", "channel_getvar", CFG_SCOPE_READ,
     api_channel_getvar},
    {"GET", "/v1/queues", "queues", CFG_SCOPE_READ, api_queues_list},
    {"GET", "/v1/queues/{queue}", "queue", CFG_SCOPE_READ, api_queue_get},
    {"POST", "/v1/queues/{queue}/members", "queue_member_add", CFG_SCOPE_CONTROL,
     api_queue_member_add},
    {"DELETE", "/v1/queues/{queue}/members/{interface}", "queue_member_remove", CFG_SCOPE_CONTROL,
     api_queue_member_remove},
    {"POST", "/v1/queues/{queue}/members/{interface}/pause", "queue_member_pause",
     CFG_SCOPE_CONTROL, api_queue_member_pause},
    {"GET", "/v1/webhooks", "webhooks", CFG_SCOPE_ADMIN, api_webhooks_list},
    {"POST", "/v1/webhooks", "webhook_create", CFG_SCOPE_ADMIN, api_webhooks_create},
    {"GET", "/v1/webhooks/{id}", "webhook", CFG_SCOPE_ADMIN, api_webhook_get},
    {"PATCH", "/v1/webhooks/{id}", "webhook_patch", CFG_SCOPE_ADMIN, api_webhook_patch},
    {"DELETE", "/v1/webhooks/{id}", "webhook_delete", CFG_SCOPE_ADMIN, api_webhook_delete},
    {"POST", "/v1/webhooks/{id}/test", "webhook_test", CFG_SCOPE_ADMIN, api_webhook_test},
    {"GET", "/v1/webhooks/{id}/deliveries", "webhook_deliveries", CFG_SCOPE_ADMIN,
     api_webhook_deliveries},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

const struct http_route *api_routes(size_t *n)
{
    *n = NROUTES;
    return routes;
}

struct api *api_new(uv_loop_t *loop, const struct cfg *cfg, struct ami_pool *const *pools,
                    size_t npools, struct bus_redis *redis, struct bus *bus,
                    struct bus_publisher *publisher, struct webhooks *webhooks)
{
    struct api *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->loop = loop;
    a->cfg = cfg;
    a->pools = pools;
    a->npools = npools;
    a->started_ms = uv_now(loop);
    a->redis = redis;
    a->bus = bus;
    a->publisher = publisher;
    a->webhooks = webhooks;
    a->auth = http_auth_new(cfg);
    a->guard = guard_new(cfg, npools);
    a->idem = idem_new(loop, cfg, redis);
    a->lockout = lockout_new(cfg->auth_fail_limit, cfg->auth_fail_window_s);
    a->sguard = redis ? sguard_new(cfg, redis) : NULL;
    a->sse = api_sse_new(a, bus);
    if (!a->auth || !a->guard || !a->idem || !a->lockout || (redis && !a->sguard) || !a->sse ||
        bus_add_sink(bus, api_sse_sink, a->sse)) {
        api_free(a);
        return NULL;
    }
    return a;
}

void api_free(struct api *a)
{
    if (!a)
        return;
    http_auth_free(a->auth);
    guard_free(a->guard);
    idem_free(a->idem);
    lockout_free(a->lockout);
    sguard_free(a->sguard);
    api_sse_free(a->sse);
    api_sse_free(a->call_sse);
    free(a);
}

void api_set_lease(struct api *a, struct bus_lease *l)
{
    a->lease = l;
}

void api_set_draining(struct api *a, int draining)
{
    a->draining = draining;
    if (draining && a->sse)
        api_sse_end_all(a->sse, "amibridge is shutting down; reconnect with Last-Event-ID");
    if (draining && a->call_sse)
        api_sse_end_all(a->call_sse, "amibridge is shutting down; reconnect with Last-Event-ID");
}

static void scope_names(unsigned mask, char *out, size_t len)
{
    out[0] = '\0';
    for (unsigned b = 1; b <= CFG_SCOPE_ADMIN; b <<= 1)
        if (mask & b) {
            size_t l = strlen(out);
            snprintf(out + l, len - l, "%s%s", l ? "," : "", cfg_scope_name(b));
        }
}

/* A wrong key's answer, held back for a while (api/lockout): a 401, or a
 * 429 when the client's address is locked out. */
struct held_answer {
    uv_timer_t timer;
    struct api *a;
    struct http_req *r;
    int locked; /* 429 auth-locked-out rather than 401 */
};

static void respond_401_invalid(struct http_req *r)
{
    http_req_add_header(r, "WWW-Authenticate",
                        "Bearer realm=\"amibridge\", error=\"invalid_token\"");
    http_respond_problem(r, 401, "unauthorized", "Unauthorized", "the API key is not valid", NULL);
}

/* 429 auth-locked-out with Retry-After (api/lockout). */
static void locked_out(struct http_req *r, int wait_s, const char *title, const char *detail)
{
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", wait_s > 0 ? wait_s : 1);
    http_req_add_header(r, "Retry-After", ra);
    metrics_inc(METRIC_AUTH_FAILURES, "locked_out", NULL, 1);
    http_respond_problem(r, 429, "auth-locked-out", title, detail, NULL);
}

static void address_locked_out(struct http_req *r, int wait_s)
{
    locked_out(r, wait_s, "Too many wrong API keys",
               "this address sent too many wrong API keys; it may try again after Retry-After "
               "seconds");
}

static void held_closed(uv_handle_t *h)
{
    free(h->data);
}

static void held_fire(uv_timer_t *t)
{
    struct held_answer *h = t->data;
    if (h->locked)
        address_locked_out(h->r,
                           lockout_blocked(h->a->lockout, http_req_peer(h->r), uv_now(h->a->loop)));
    else
        respond_401_invalid(h->r);
    uv_close((uv_handle_t *)&h->timer, held_closed);
}

/* Answer a wrong key `delay_ms` from now (at once when 0 or out of memory). */
static void hold_answer(struct api *a, struct http_req *r, int locked, unsigned delay_ms)
{
    struct held_answer *h = delay_ms ? calloc(1, sizeof(*h)) : NULL;
    if (!h) {
        if (locked)
            address_locked_out(r, lockout_blocked(a->lockout, http_req_peer(r), uv_now(a->loop)));
        else
            respond_401_invalid(r);
        return;
    }
    h->a = a;
    h->r = r;
    h->locked = locked;
    h->timer.data = h;
    uv_timer_init(a->loop, &h->timer);
    uv_timer_start(&h->timer, held_fire, delay_ms, 0);
}

/* Count a wrong key from the client; answer it now or a little later. */
static void wrong_key(struct api *a, struct http_req *r)
{
    int locked = 0;
    const char *peer = http_req_peer(r);
    int n = lockout_fail(a->lockout, peer, uv_now(a->loop), &locked);
    metrics_inc(METRIC_AUTH_FAILURES, "invalid", NULL, 1);
    if (locked)
        log_warn("client locked out after too many wrong API keys", "{s:s,s:i,s:i}", "peer", peer,
                 "failures", n, "window_s", a->cfg->auth_fail_window_s);
    else if (n == 1)
        log_warn("wrong API key", "{s:s}", "peer", peer);
    hold_answer(a, r, 0, lockout_delay_ms(n));
}

/* The address lock-out refuses what comes without a valid key; a valid key
 * is served whatever others at the same address (a NAT, an untrusted
 * proxy) sent. What reaches the decision does the same work whatever the
 * token: the address is looked up first, every key is compared in constant
 * time. A wrong key from a locked-out address is held as long as the
 * slowest wrong-key answer before the lock-out, so a guess never comes
 * back faster than it did then. */
static int authorize(struct api *a, struct http_req *r, const struct http_route *rt)
{
    int addr_wait = lockout_blocked(a->lockout, http_req_peer(r), uv_now(a->loop));
    const struct cfg_api_key *k = NULL;
    enum http_auth_result ar = http_auth_check(a->auth, http_req_header(r, "Authorization"),
                                               http_req_peer_loopback(r), rt->scope, &k);
    if (addr_wait > 0 && !k) {
        if (ar == HTTP_AUTH_INVALID)
            hold_answer(a, r, 1, LOCKOUT_DELAY_MAX_MS);
        else
            address_locked_out(r, addr_wait);
        return 0;
    }
    const char *key = k ? k->name : "";
    http_req_set_key(r, key);
    http_req_set_principal(r, k);
    char need[64], detail[200], kid[CFG_NAME_MAX + 8] = "";
    int wait_s;
    /* a valid key that keeps reaching past its scopes is probing: it gets
     * the same lock-out as an address guessing keys */
    if (k)
        snprintf(kid, sizeof(kid), "key:%s", key);
    if (k && (wait_s = lockout_blocked(a->lockout, kid, uv_now(a->loop))) > 0) {
        locked_out(r, wait_s, "Too many refused requests",
                   "this API key was refused too often; it may try again after Retry-After "
                   "seconds");
        return 0;
    }
    switch (ar) {
    case HTTP_AUTH_OK:
        return 1;
    case HTTP_AUTH_MISSING:
        metrics_inc(METRIC_AUTH_FAILURES, "missing", NULL, 1);
        http_req_add_header(r, "WWW-Authenticate", "Bearer realm=\"amibridge\"");
        http_respond_problem(r, 401, "unauthorized", "Unauthorized",
                             "send an API key as 'Authorization: Bearer TOKEN'", NULL);
        return 0;
    case HTTP_AUTH_INVALID:
        wrong_key(a, r);
        return 0;
    case HTTP_AUTH_SCOPE: {
        int locked = 0;
        int n = lockout_fail(a->lockout, kid, uv_now(a->loop), &locked);
        if (locked)
            log_warn("API key locked out after too many requests beyond its scopes",
                     "{s:s,s:i,s:i}", "key", key, "refusals", n, "window_s",
                     a->cfg->auth_fail_window_s);
        metrics_inc(METRIC_AUTH_FAILURES, "scope", NULL, 1);
        scope_names(rt->scope, need, sizeof(need));
        snprintf(detail, sizeof(detail), "the API key '%s' lacks the '%s' scope", key, need);
        http_respond_problem(r, 403, "forbidden", "Forbidden", detail,
                             json_pack("{s:s}", "required_scope", need));
        return 0;
    }
    case HTTP_AUTH_REMOTE:
        metrics_inc(METRIC_AUTH_FAILURES, "remote", NULL, 1);
        http_respond_problem(r, 403, "forbidden", "Forbidden",
                             "no API keys are configured: only loopback clients are served", NULL);
        return 0;
    }
    return 0;
}

/* AMIBRIDGE_TRUSTED_NETS: 1 when the client may call at all. */
static int trusted(const struct api *a, struct http_req *r)
{
    if (!a->cfg->ntrusted_nets || http_req_peer_loopback(r))
        return 1;
    socklen_t len = 0;
    const struct sockaddr *sa = http_req_peer_addr(r, &len);
    return len && ssrf_in_nets(sa, len, a->cfg->trusted_nets, a->cfg->ntrusted_nets);
}

/* 403 to a client outside AMIBRIDGE_TRUSTED_NETS; 1 when it answered. */
static int refuse_untrusted(const struct api *a, struct http_req *r)
{
    if (trusted(a, r))
        return 0;
    metrics_inc(METRIC_AUTH_FAILURES, "untrusted", NULL, 1);
    http_respond_problem(r, 403, "untrusted-network", "Forbidden",
                         "this client's network may not call this API (AMIBRIDGE_TRUSTED_NETS)",
                         NULL);
    return 1;
}

/* --- CORS ---------------------------------------------------------------------------- */

#define CORS_ALLOW_HEADERS "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
#define CORS_EXPOSE_HEADERS                                                                        \
    "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "           \
    "Idempotent-Replayed, Location"
#define CORS_MAX_AGE "600"

/* 1 when the request carries an Origin that is on AMIBRIDGE_CORS_ORIGINS,
 * -1 when it carries another one, 0 when it carries none. */
static int cors_check(const struct api *a, struct http_req *r)
{
    const char *origin = http_req_header(r, "Origin");
    if (!origin)
        return 0;
    for (size_t i = 0; i < a->cfg->ncors_origins; i++)
        if (!strcmp(a->cfg->cors_origins[i], origin))
            return 1;
    return -1;
}

static void cors_headers(struct http_req *r)
{
    http_req_add_header(r, "Access-Control-Allow-Origin", http_req_header(r, "Origin"));
    http_req_add_header(r, "Vary", "Origin");
    http_req_add_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
}

/* OPTIONS: a CORS preflight from a browser page, or a plain question about
 * the methods of a path. */
static void options(struct api *a, struct http_req *r)
{
    const struct http_route *rt;
    struct http_params params;
    char allow[64];
    enum http_match m = http_route_match(routes, NROUTES, "OPTIONS", http_req_path(r), &rt, &params,
                                         allow, sizeof(allow));
    if (m != HTTP_MATCH_BAD_METHOD) {
        http_respond_problem(r, 404, "not-found", "Not found", "no such route", NULL);
        return;
    }
    int cors = cors_check(a, r);
    if (cors < 0) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "the origin '%.100s' may not call this API (AMIBRIDGE_CORS_ORIGINS)",
                 http_req_header(r, "Origin"));
        http_respond_problem(r, 403, "cors-origin-not-allowed", "Origin not allowed", detail, NULL);
        return;
    }
    http_req_add_header(r, "Allow", allow);
    if (cors > 0) {
        cors_headers(r);
        http_req_add_header(r, "Access-Control-Allow-Methods", allow);
        http_req_add_header(r, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
        http_req_add_header(r, "Access-Control-Max-Age", CORS_MAX_AGE);
    }
    http_respond(r, 204, NULL, "", 0);
}

int api_authorize(struct api *a, struct http_req *r, unsigned scope)
{
    struct http_route rt = {"", "", "", scope, NULL};
    return authorize(a, r, &rt);
}

void api_handle(struct http_req *r, void *ud)
{
    struct api *a = ud;
    const struct http_route *rt;
    struct http_params params;
    char allow[64];
    if (refuse_untrusted(a, r))
        return;
    if (!strcmp(http_req_method(r), "OPTIONS")) {
        options(a, r);
        return;
    }
    /* every answer to an allowed browser origin, errors included, carries
     * the CORS headers so that the page can read it */
    if (cors_check(a, r) > 0)
        cors_headers(r);
    enum http_match m = http_route_match(routes, NROUTES, http_req_method(r), http_req_path(r), &rt,
                                         &params, allow, sizeof(allow));
    switch (m) {
    case HTTP_MATCH_NOT_FOUND:
        http_respond_problem(r, 404, "not-found", "Not found", "no such route", NULL);
        return;
    case HTTP_MATCH_BAD_METHOD: {
        char detail[128];
        snprintf(detail, sizeof(detail), "%s is not allowed here; use %s", http_req_method(r),
                 allow);
        http_req_add_header(r, "Allow", allow);
        http_respond_problem(r, 405, "method-not-allowed", "Method not allowed", detail,
                             json_pack("{s:s}", "allow", allow));
        return;
    }
    case HTTP_MATCH_BAD_ESCAPE:
        http_respond_problem(r, 400, "invalid-path", "Bad request",
                             "a path segment is not valid percent-encoding", NULL);
        return;
    case HTTP_MATCH_OK:
        break;
    }
    http_req_set_route(r, rt->name);
    if (rt->scope && !authorize(a, r, rt)) {
        http_params_release(&params);
        return;
    }
    if (http_req_too_big(r)) {
        char d[96];
        snprintf(d, sizeof(d), "the request body is larger than %zu bytes", http_req_max_body(r));
        http_respond_problem(r, 413, "payload-too-large", "Payload too large", d,
                             json_pack("{s:I}", "max_body", (json_int_t)http_req_max_body(r)));
        http_params_release(&params);
        return;
    }
    /* only routes that take a body look at it; a GET's body is ignored */
    if ((!strcmp(rt->method, "POST") || !strcmp(rt->method, "PATCH")) &&
        !http_req_body_is_json(r)) {
        http_respond_problem(r, 415, "unsupported-media-type", "Unsupported media type",
                             "request bodies must be JSON (Content-Type: application/json)", NULL);
        http_params_release(&params);
        return;
    }
    if (a->draining && rt->scope) {
        http_req_add_header(r, "Retry-After", "5");
        http_respond_problem(r, 503, "shutting-down", "Service unavailable",
                             "amibridge is shutting down", NULL);
        http_params_release(&params);
        return;
    }
    rt->handler(a, r, &params);
    http_params_release(&params);
}

/* Refusing from the head spares reading a body nobody will use, and keeps
 * a client without a key from holding a connection while it trickles one.
 * Only answers that come at once are given here: a wrong key's 401 is held
 * back on purpose, so it waits for the body like any other request. */
void api_head(struct http_req *r, void *ud)
{
    struct api *a = ud;
    const struct http_route *rt;
    struct http_params params;
    char allow[64];
    if (refuse_untrusted(a, r))
        return;
    if (!strcmp(http_req_method(r), "OPTIONS"))
        return;
    enum http_match m = http_route_match(routes, NROUTES, http_req_method(r), http_req_path(r), &rt,
                                         &params, allow, sizeof(allow));
    if (m != HTTP_MATCH_OK)
        return;
    http_params_release(&params);
    if (!rt->scope)
        return;
    const struct cfg_api_key *k = NULL;
    enum http_auth_result ar = http_auth_check(a->auth, http_req_header(r, "Authorization"),
                                               http_req_peer_loopback(r), rt->scope, &k);
    /* a wrong key is decided after the body, where its answer is held back:
     * an answer from the head would be a fast path for guessing keys */
    if (ar == HTTP_AUTH_INVALID)
        return;
    if (ar == HTTP_AUTH_OK) {
        /* a valid key is refused only by its own lock-out (authorize()) */
        char kid[CFG_NAME_MAX + 8];
        snprintf(kid, sizeof(kid), "key:%s", k ? k->name : "");
        if (!k || lockout_blocked(a->lockout, kid, uv_now(a->loop)) <= 0) {
            /* decided after the body; a valid key marks the connection as one to keep */
            http_req_set_principal(r, k);
            return;
        }
    }
    /* no key, a key short of the route's scope or locked out, a remote
     * client without keys configured: authorize() answers these at once */
    if (cors_check(a, r) > 0)
        cors_headers(r);
    http_req_set_route(r, rt->name);
    authorize(a, r, rt);
}

/* --- shared helpers ------------------------------------------------------------------- */

void api_bad_field(struct http_req *r, const char *field, const char *detail)
{
    http_respond_problem(r, 400, "invalid-field", "Bad request", detail,
                         json_pack("{s:s}", "field", field));
}

struct ami_pool *api_pool_for(struct api *a, struct http_req *r)
{
    char *name = NULL;
    int rc = http_req_query(r, "server", &name);
    if (rc < 0) {
        api_bad_field(r, "server", "the server parameter is not valid percent-encoding");
        return NULL;
    }
    if (rc == 0)
        return a->npools ? a->pools[0] : NULL;
    for (size_t i = 0; i < a->npools; i++)
        if (!strcmp(ami_pool_name(a->pools[i]), name)) {
            free(name);
            return a->pools[i];
        }
    char detail[160];
    snprintf(detail, sizeof(detail), "no AMI server named '%.64s' is configured", name);
    free(name);
    api_bad_field(r, "server", detail);
    return NULL;
}

size_t api_pool_index(const struct api *a, const struct ami_pool *pool)
{
    for (size_t i = 0; i < a->npools; i++)
        if (a->pools[i] == pool)
            return i;
    return 0;
}

json_t *api_body_object(struct http_req *r)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    if (len == 0)
        return json_object();
    json_error_t e;
    /* NUL is allowed in JSON strings here so that it can be refused by name
     * when the action is validated, rather than as a parse error */
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!j) {
        char detail[256];
        snprintf(detail, sizeof(detail), "the body is not valid JSON: %s (line %d, column %d)",
                 e.text, e.line, e.column);
        http_respond_problem(r, 400, "invalid-json", "Bad request", detail, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_problem(r, 400, "invalid-json", "Bad request",
                             "the body must be a JSON object", NULL);
        return NULL;
    }
    return j;
}

void api_submit_failed(struct api *a, struct http_req *r, struct ami_pool *p, int rc,
                       const struct ami_error *err)
{
    (void)a;
    char detail[512];
    struct ami_pool_status st;
    switch (rc) {
    case -EINVAL:
        api_bad_field(r, err->field, err->detail);
        return;
    case -ENOTCONN:
        ami_pool_status(p, &st);
        snprintf(detail, sizeof(detail), "no logged-in AMI connection to server '%s'%s%s%s",
                 ami_pool_name(p), st.last_error[0] ? ": " : "", st.last_error,
                 st.auth_failed ? " (the AMI login is being rejected: check the credentials)" : "");
        http_req_add_header(r, "Retry-After", API_RETRY_AFTER_UNAVAILABLE);
        http_respond_problem(r, 503, "ami-unavailable", "AMI unavailable", detail,
                             json_pack("{s:s}", "server", ami_pool_name(p)));
        return;
    case -EBUSY:
        snprintf(detail, sizeof(detail), "too many actions in flight to server '%s'; retry shortly",
                 ami_pool_name(p));
        http_req_add_header(r, "Retry-After", API_RETRY_AFTER_BUSY);
        http_respond_problem(r, 503, "overloaded", "Too many actions in flight", detail,
                             json_pack("{s:s}", "server", ami_pool_name(p)));
        return;
    default:
        http_respond_problem(r, 500, "internal", "Internal error", "could not queue the action",
                             NULL);
    }
}

/* AMI Response: Error messages, mapped to HTTP statuses. */
static int ami_error_status(const char *msg, const char **slug, const char **title)
{
    if (!msg)
        msg = "";
    if (!strcasecmp(msg, "Permission denied")) {
        *slug = "ami-permission-denied";
        *title = "Asterisk denied the action";
        return 403;
    }
    if (!strncasecmp(msg, "Invalid/unknown command", 23)) {
        *slug = "ami-unknown-action";
        *title = "Asterisk does not know this action";
        return 404;
    }
    if (!strcasecmp(msg, "No such channel") || !strncasecmp(msg, "Channel does not exist", 22)) {
        *slug = "ami-no-such-channel";
        *title = "No such channel";
        return 404;
    }
    *slug = "ami-error";
    *title = "Asterisk refused the action";
    return 422;
}

int api_result_failed(struct http_req *r, const struct ami_result *res)
{
    switch (res->status) {
    case AMI_OK:
        break;
    case AMI_ETIMEDOUT:
        http_respond_problem(r, 504, "ami-timeout", "AMI timeout", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    case AMI_ELOST:
        http_respond_problem(r, 502, "ami-connection-lost", "AMI connection lost", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    case AMI_ESHUTDOWN:
        http_req_add_header(r, "Retry-After", "5");
        http_respond_problem(r, 503, "shutting-down", "Service unavailable", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    case AMI_ETOOBIG:
        http_respond_problem(r, 502, "ami-list-too-long", "AMI reply too large", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    }
    const struct ami_msg *m = res->response;
    if (!m || !ami_msg_is(m, "Response", "Error"))
        return 0;
    const char *msg = ami_msg_get(m, "Message");
    const char *slug, *title;
    int status = ami_error_status(msg, &slug, &title);
    json_t *extra =
        json_pack("{s:s,s:s}", "ami_message", msg ? msg : "", "action_id", res->action_id);
    json_t *out = api_output_lines(m);
    if (extra && out)
        json_object_set_new(extra, "output", out);
    else
        json_decref(out);
    http_respond_problem(r, status, slug, title, msg ? msg : "Asterisk answered Response: Error",
                         extra);
    return 1;
}

json_t *api_output_lines(const struct ami_msg *m)
{
    size_t n = ami_msg_count_key(m, "Output");
    if (!n)
        return NULL;
    json_t *arr = json_array();
    /* the message's own JSON form repairs bad UTF-8; reuse it */
    json_t *all = ami_msg_to_json(m);
    json_t *o = all ? json_object_get(all, "Output") : NULL;
    if (json_is_array(o))
        json_array_extend(arr, o);
    else if (o)
        json_array_append(arr, o);
    json_decref(all);
    return arr;
}
