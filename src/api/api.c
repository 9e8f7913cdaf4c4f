/* api: the API object, from api_new to api_free; what it answers is in
 * routes.c (the table and the dispatch), gate.c (who may call), problem.c
 * (how failures are answered), request.c and the route files. */
#include "api/api.h"

#include <stdlib.h>

#include "admit/guard.h"
#include "admit/idem.h"
#include "api/internal.h"
#include "admit/lockout.h"
#include "admit/sguard.h"
#include "bus/events.h"

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
    size_t nroutes;
    const struct http_route *routes = api_routes(&nroutes);
    a->router = http_router_new(routes, nroutes);
    a->guard = guard_new(cfg, npools);
    a->idem = idem_new(loop, cfg, redis);
    a->lockout = lockout_new(cfg->auth_fail_limit, cfg->auth_fail_window_s);
    a->sguard = redis ? sguard_new(cfg, redis) : NULL;
    a->sse = api_sse_new(a, bus);
    if (!a->auth || !a->router || !a->guard || !a->idem || !a->lockout || (redis && !a->sguard) ||
        !a->sse || bus_add_sink(bus, api_sse_sink, a->sse)) {
        api_close(a, NULL, NULL);
        return NULL;
    }
    return a;
}

/* One part has closed: the last one frees the api. */
static void api_unhold(void *arg)
{
    struct api *a = arg;
    if (--a->closes_pending > 0)
        return;
    void (*done)(void *) = a->close_done;
    void *done_arg = a->close_arg;
    free(a);
    if (done)
        done(done_arg);
}

void api_close(struct api *a, void (*done)(void *arg), void *arg)
{
    a->close_done = done;
    a->close_arg = arg;
    a->closes_pending = 1; /* released at the end of this function */
    http_auth_free(a->auth);
    http_router_free(a->router);
    guard_free(a->guard);
    lockout_free(a->lockout);
    sguard_free(a->sguard);
    if (a->idem) {
        a->closes_pending++;
        idem_close(a->idem, api_unhold, a);
    }
    if (a->sse) {
        a->closes_pending++;
        api_sse_close(a->sse, api_unhold, a);
    }
    if (a->call_sse) {
        a->closes_pending++;
        api_sse_close(a->call_sse, api_unhold, a);
    }
    api_unhold(a);
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
