/* GET /v1/calls/live, /v1/calls/stats and /v1/calls/{id}: the calls of call/calls. */
#include <errno.h>
#include <stdint.h>

#include "api/internal.h"
#include "core/log.h"
#include "bus/events.h"
#include "bus/lease.h"
#include "call/calls.h"

int api_set_calls(struct api *a, struct calls *calls, struct bus *call_bus)
{
    a->calls = calls;
    if (!call_bus)
        return 0;
    a->call_sse = api_sse_new(a, call_bus);
    return a->call_sse ? bus_add_sink(call_bus, api_sse_sink, a->call_sse) : -ENOMEM;
}

static void answer_remote_live(void *ud, json_t *value)
{
    struct http_req *r = ud;
    if (!value) {
        http_respond_oom(r);
        return;
    }
    http_respond_json(r, 200, json_incref(value));
}

void api_calls_live(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    /* a follower replica follows no calls itself: the leader's copy in Redis */
    if (a->calls && a->lease && bus_lease_follower(a->lease) &&
        calls_live_remote(a->calls, answer_remote_live, r) == 0)
        return;
    json_t *body = a->calls ? calls_live(a->calls) : json_pack("{s:[]}", "calls");
    if (!body) {
        http_respond_oom(r);
        return;
    }
    http_respond_json(r, 200, body);
}

void api_call_stats(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    json_t *body = a->calls ? calls_per_minute(a->calls, log_wall_ms()) : NULL;
    if (!body) {
        http_respond_oom(r);
        return;
    }
    http_respond_json(r, 200, body);
}

static void no_such_call(struct http_req *r)
{
    http_respond_problem(r, 404, "no-such-call", "No such call",
                         "no live call and no call that ended within "
                         "AMIBRIDGE_CALL_HISTORY_S has this id",
                         NULL);
}

static void answer_remote_call(void *ud, json_t *call)
{
    struct http_req *r = ud;
    if (!call) {
        no_such_call(r);
        return;
    }
    http_respond_json(r, 200, json_incref(call));
}

void api_call_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = http_param(p, "id");
    json_t *call = id && a->calls ? calls_get(a->calls, id, log_wall_ms()) : NULL;
    if (call) {
        http_respond_json(r, 200, call);
        return;
    }
    /* followed by another replica, or before a restart: the copy in Redis */
    if (id && a->calls && calls_get_remote(a->calls, id, answer_remote_call, r) == 0)
        return;
    no_such_call(r);
}
