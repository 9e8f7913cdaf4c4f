/* GET /healthz (the process is up), GET /readyz (AMI is usable),
 * GET /openapi.yaml (the contract, embedded at build time). */
#include <stdio.h>

#include "api/internal.h"
#include "bus/lease.h"
#include "bus/redis.h"

extern const unsigned char openapi_yaml[];
extern const size_t openapi_yaml_len;

void api_healthz(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    uint64_t up = (uv_now(a->loop) - a->started_ms) / 1000;
    http_respond_json(r, 200,
                      json_pack("{s:s,s:s,s:I}", "status", "ok", "version", AMIBRIDGE_VERSION,
                                "uptime_s", (json_int_t)up));
}

/* Ready when every server has its event connection and at least one action
 * connection logged in. The body says, per server, what is up and why not. */
void api_readyz(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    int all = a->npools > 0 && !a->draining;
    json_t *servers = json_array();
    for (size_t i = 0; i < a->npools; i++) {
        struct ami_pool_status st;
        ami_pool_status(a->pools[i], &st);
        /* a follower replica has no event connection of its own, on purpose */
        int ready = (st.event_up || st.events_off) && st.actions_up > 0;
        all = all && ready;
        json_t *s = json_pack("{s:s,s:b,s:s,s:{s:i,s:i},s:b,s:I}", "name",
                              ami_pool_name(a->pools[i]), "ready", ready, "event_connection",
                              st.events_off ? "off"
                              : st.event_up ? "up"
                                            : "down",
                              "action_connections", "up", st.actions_up, "total", st.actions_total,
                              "auth_failed", st.auth_failed, "in_flight", (json_int_t)st.inflight);
        if (st.last_error[0] && !ready)
            json_object_set_new(s, "last_error", json_string(st.last_error));
        if (st.banner[0])
            json_object_set_new(s, "banner", json_string(st.banner));
        json_array_append_new(servers, s);
    }
    json_t *body = json_pack("{s:b,s:o}", "ready", all, "servers", servers);
    /* Redis down degrades (no idempotency across replicas, no publishing)
     * but does not make the bridge unready: calls still work */
    if (a->redis) {
        int up = bus_redis_up(a->redis);
        json_t *rd = json_pack("{s:s}", "state", up ? "up" : "down");
        if (!up && bus_redis_last_error(a->redis)[0])
            json_object_set_new(rd, "last_error", json_string(bus_redis_last_error(a->redis)));
        json_object_set_new(body, "redis", rd);
        if (!up)
            json_object_set_new(body, "degraded", json_true());
    }
    if (a->lease) {
        /* which replica publishes the events and makes the webhook deliveries */
        const char *holder = bus_lease_holder(a->lease);
        int64_t age = bus_lease_age_ms(a->lease);
        json_object_set_new(body, "leader",
                            json_pack("{s:b,s:s,s:o,s:o}", "this_replica",
                                      bus_lease_is_leader(a->lease), "instance",
                                      a->cfg->instance_id, "holder",
                                      holder[0] ? json_string(holder) : json_null(), "lease_age_ms",
                                      age >= 0 ? json_integer(age) : json_null()));
    }
    if (a->draining)
        json_object_set_new(body, "draining", json_true());
    http_respond_json(r, all ? 200 : 503, body);
}

void api_openapi(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)a;
    (void)p;
    http_respond(r, 200, "application/yaml", (const char *)openapi_yaml, openapi_yaml_len);
}
