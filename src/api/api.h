/* api: the HTTP routes of amibridge.
 *
 * api_handle() is the http_server handler: it routes, authenticates,
 * checks scopes and calls the route's handler. Handlers turn requests into
 * AMI actions on the right server's pool and AMI replies into JSON.
 */
#ifndef AMIBRIDGE_API_API_H
#define AMIBRIDGE_API_API_H

#include <stddef.h>
#include <uv.h>

#include "ami/pool.h"
#include "core/config.h"
#include "http/server.h"

struct api;

struct bus_redis;
struct bus;
struct bus_publisher;
struct webhooks;

/* `cfg`, the pools, `redis` and `publisher` (both NULL without Redis),
 * `bus` and `webhooks` (may be NULL) are borrowed and must outlive the api. pools[i] serves
 * cfg->servers[i]. The api adds its SSE hub as a sink of the bus. */
struct api *api_new(uv_loop_t *loop, const struct cfg *cfg, struct ami_pool *const *pools,
                    size_t npools, struct bus_redis *redis, struct bus *bus,
                    struct bus_publisher *publisher, struct webhooks *webhooks);
/* Teardown (docs/layout.md, "Teardown"): the HTTP server is closed and
 * every request answered first. Frees what it holds; `done` fires once the
 * timers of its SSE hubs and Idempotency-Key store are closed and the
 * memory is gone. */
void api_close(struct api *a, void (*done)(void *arg), void *arg);

struct bus_lease;
/* With Redis: the leader lease, for /readyz and /metrics (borrowed). */
void api_set_lease(struct api *a, struct bus_lease *l);

struct calls;
/* The calls of every server, for /v1/calls/live and /v1/calls/{id}, and
 * the bus of their events, for /v1/calls/events (both borrowed). 0 or
 * -ENOMEM. */
int api_set_calls(struct api *a, struct calls *calls, struct bus *call_bus);

/* The http_handler. */
void api_handle(struct http_req *r, void *ud);

/* The route table api_handle dispatches on (n set to its length): for the
 * router's fuzz target, which matches against the real patterns. */
struct http_route;
const struct http_route *api_routes(size_t *n);
/* The http_head_handler: a request that announces a body is refused from
 * its head when its client may not call or its key is missing, locked out
 * or lacks the route's scope; a wrong key is answered after the body as
 * usual (held back, see admit/lockout). */
void api_head(struct http_req *r, void *ud);

/* Refuse new work with 503 while shutting down. */
void api_set_draining(struct api *a, int draining);

#endif
