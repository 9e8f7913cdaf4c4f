/* api/routes: the route table and the dispatch of a request to its
 * handler, after the gate (api/gate.h) let it through. */
#include "api/api.h"

#include <stdio.h>
#include <string.h>

#include "api/gate.h"
#include "api/internal.h"

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

/* OPTIONS: a CORS preflight from a browser page, or a plain question about
 * the methods of a path. */
static void options(struct api *a, struct http_req *r)
{
    const struct http_route *rt;
    struct http_params params;
    char allow[64];
    enum http_match m = http_route_match(a->router, "OPTIONS", http_req_path(r), &rt, &params,
                                         allow, sizeof(allow));
    if (m != HTTP_MATCH_BAD_METHOD) {
        http_respond_problem(r, 404, "not-found", "Not found", "no such route", NULL);
        return;
    }
    int cors = api_gate_cors(a, r);
    if (cors < 0) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "the origin '%.100s' may not call this API (AMIBRIDGE_CORS_ORIGINS)",
                 http_req_header(r, "Origin"));
        http_respond_problem(r, 403, "cors-origin-not-allowed", "Origin not allowed", detail, NULL);
        return;
    }
    http_req_add_header(r, "Allow", allow);
    if (cors > 0)
        api_gate_preflight_headers(r, allow);
    http_respond(r, 204, NULL, "", 0);
}

/* What a request meets first, from its head as after its body. */
enum first_look {
    LOOK_ANSWERED, /* a client outside the trusted nets: refused and answered */
    LOOK_OPTIONS,  /* OPTIONS, matched by options() */
    LOOK_MATCHED,  /* *m says how the route matched; params to release when OK */
};

/* The same steps for api_head and api_handle, so that the two never
 * disagree on who may call and which route a request is for. */
static enum first_look first_look(struct api *a, struct http_req *r, enum http_match *m,
                                  const struct http_route **rt, struct http_params *params,
                                  char *allow, size_t allowlen)
{
    if (api_gate_untrusted(a, r))
        return LOOK_ANSWERED;
    if (!strcmp(http_req_method(r), "OPTIONS"))
        return LOOK_OPTIONS;
    *m = http_route_match(a->router, http_req_method(r), http_req_path(r), rt, params, allow,
                          allowlen);
    return LOOK_MATCHED;
}

void api_handle(struct http_req *r, void *ud)
{
    struct api *a = ud;
    const struct http_route *rt;
    struct http_params params;
    char allow[64];
    enum http_match m;
    switch (first_look(a, r, &m, &rt, &params, allow, sizeof(allow))) {
    case LOOK_ANSWERED:
        return;
    case LOOK_OPTIONS:
        options(a, r);
        return;
    case LOOK_MATCHED:
        break;
    }
    /* every answer to an allowed browser origin, errors included, carries
     * the CORS headers so that the page can read it */
    if (api_gate_cors(a, r) > 0)
        api_gate_cors_headers(r);
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
    if (rt->scope && api_gate_refuse(a, r, rt)) {
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
    enum http_match m;
    /* OPTIONS has no body to spare: api_handle answers it */
    if (first_look(a, r, &m, &rt, &params, allow, sizeof(allow)) != LOOK_MATCHED ||
        m != HTTP_MATCH_OK)
        return;
    http_params_release(&params);
    if (!rt->scope)
        return;
    api_gate_head(a, r, rt);
}
