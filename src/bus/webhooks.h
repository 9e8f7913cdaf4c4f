/* bus/webhooks: the webhook outlet of the event stream — what the event
 * bus and the API call. It puts together the parts, each in its own file:
 *
 *   bus/webhook_sub    one subscription: its checks, JSON, matching, signatures (pure)
 *   bus/webhook_http   libcurl on the loop: one signed POST per attempt
 *   bus/webhook_queue  the subscriptions held and their deliveries: queue, retries
 *   bus/webhook_store  where subscriptions are kept: config, state file, Redis
 *
 * and runs the operations of the API on them: create (id and, unless given,
 * secret generated), change (a new secret keeps the old one signing
 * webhook-signature for AMIBRIDGE_WEBHOOK_SECRET_GRACE_S or the request's
 * secret_grace_s), delete, test (a "ping" sent now, outside the queue),
 * list and read. A change is made here once the store has taken it.
 *
 * Operations fail with a negative errno and a sentence, never with HTTP:
 * the API (api/webhooks.c) says what they mean there.
 *   -EINVAL     a member of the body is wrong (`field` names it)
 *   -ENOENT     no subscription has the id
 *   -EROFS      the subscription is static (from the config file)
 *   -ENOSPC     AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS exist already
 *   -EAGAIN     the store did not take the change (Redis down, file not written)
 *   -ESHUTDOWN  the process is shutting down
 *   -ENOMEM     out of memory
 */
#ifndef AMIBRIDGE_BUS_WEBHOOKS_H
#define AMIBRIDGE_BUS_WEBHOOKS_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "bus/events.h"
#include "bus/lease.h"
#include "bus/redis.h"
#include "core/config.h"

struct webhooks;

/* What an operation came to. */
struct webhooks_result {
    int err;          /* 0 or one of the negative errno values above */
    json_t *body;     /* err 0: new reference (NULL after a delete), the callee's */
    char detail[320]; /* err != 0: a sentence for whoever asked */
    char field[96];   /* err != 0: the member or parameter to blame, "" when none */
};
/* Fires exactly once per operation, possibly before the call returns. */
typedef void (*webhooks_cb)(void *ud, struct webhooks_result *res);

/* `c` and `redis` (NULL without Redis) are borrowed and must outlive it.
 * Loads the static subscriptions and, without Redis, the state file.
 * NULL with a message naming the setting in err. */
struct webhooks *webhooks_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                              char *err, size_t errlen);
/* Teardown (docs/layout.md, "Teardown"): abort attempts (with Redis they
 * stay queued there), answer pending tests, close every handle, free.
 * Redis commands on their way name its parts: `done` fires once each has
 * been answered (bus_redis_close() fails them), every handle is closed and
 * the memory is gone. A change stored meanwhile is answered -ESHUTDOWN. */
void webhooks_close(struct webhooks *w, void (*done)(void *arg), void *arg);
/* Answer pending test deliveries now (shutdown grace period over). */
void webhooks_quiesce(struct webhooks *w);

/* The bus sink (bus_sink_fn). */
void webhooks_sink(void *w, struct bus_event *e);
/* Redis came up or went down (chain from bus_redis_set_state_cb). */
void webhooks_redis_state(void *w, int up);

/* Replicas (Redis): deliver only while this process holds the leader lease
 * (`l` borrowed); on taking it over, every subscription's pending
 * deliveries are read back from Redis, so the ones a dead leader left are
 * made by the new one (same delivery ids). */
void webhooks_set_lease(struct webhooks *w, struct bus_lease *l);
/* The lease changed (chain from the lease callback). */
void webhooks_leader(void *w, enum bus_lease_change change);

/* The operations. `body` is borrowed. On success: create answers the
 * subscription with its secret (the only time it is shown), patch the
 * subscription without it, delete no body, test the ping's result
 * ({"delivery_id","event","result","status","latency_ms","error"}). */
void webhooks_create(struct webhooks *w, json_t *body, webhooks_cb cb, void *ud);
void webhooks_patch(struct webhooks *w, const char *id, json_t *body, webhooks_cb cb, void *ud);
void webhooks_delete(struct webhooks *w, const char *id, webhooks_cb cb, void *ud);
void webhooks_test(struct webhooks *w, const char *id, webhooks_cb cb, void *ud);
/* {"webhooks":[...]} without secrets. New reference, NULL when out of memory. */
json_t *webhooks_list_json(struct webhooks *w);
/* One subscription (no secret, with its "stats") or its recent attempts,
 * newest first. New reference; NULL with *err -ENOENT or -ENOMEM. */
json_t *webhooks_get_json(struct webhooks *w, const char *id, int *err);
json_t *webhooks_deliveries_json(struct webhooks *w, const char *id, int *err);

struct webhooks_stats {
    size_t subscriptions;
    size_t disabled;
    size_t queued;   /* deliveries waiting, all subscriptions */
    size_t inflight; /* attempts running */
};
void webhooks_stats(const struct webhooks *w, struct webhooks_stats *st);

#endif
