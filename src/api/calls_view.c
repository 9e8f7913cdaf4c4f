/* GET /v1/calls/live and GET /v1/calls/{id}: the calls of call/calls. */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "api/internal.h"
#include "bus/events.h"
#include "call/calls.h"

int api_set_calls(struct api *a, struct calls *calls, struct bus *call_bus)
{
    a->calls = calls;
    if (!call_bus)
        return 0;
    a->call_sse = api_sse_new(a, call_bus);
    return a->call_sse ? bus_add_sink(call_bus, api_sse_sink, a->call_sse) : -ENOMEM;
}

uint64_t api_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void api_calls_live(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    json_t *body = a->calls ? calls_live(a->calls) : json_pack("{s:[]}", "calls");
    if (!body) {
        http_respond_oom(r);
        return;
    }
    http_respond_json(r, 200, body);
}

void api_call_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = http_param(p, "id");
    json_t *call = id && a->calls ? calls_get(a->calls, id, api_wall_ms()) : NULL;
    if (!call) {
        http_respond_problem(r, 404, "no-such-call", "No such call",
                             "no live call and no call that ended within "
                             "AMIBRIDGE_CALL_HISTORY_S has this id",
                             NULL);
        return;
    }
    http_respond_json(r, 200, call);
}
