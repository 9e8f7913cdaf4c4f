/* bus/webhooks: the webhook outlet of the event stream — subscriptions
 * kept, events matched, deliveries signed, sent and retried.
 *
 * Store. With Redis, subscriptions live in the hash <prefix>:webhooks
 * (id -> JSON, secret included) and every change bumps
 * <prefix>:webhooks:version, which each process polls twice a second, so
 * every replica sees the same set. Without Redis they live in
 * AMIBRIDGE_STATE_DIR/webhooks.json, replaced atomically (temp file, fsync,
 * rename, fsync of the directory), or in memory only when no state
 * directory is set. Static subscriptions come from the config file and
 * are read-only.
 *
 * Delivery. Every event a subscription wants becomes a delivery with its
 * own id. With Redis it is pushed to the list <prefix>:webhooks:queue:<id>
 * and its first attempt waits for Redis to acknowledge that, so a crash
 * and restart resume it (at-least-once, same delivery id); it leaves the
 * list when delivered, failed or dropped. Without Redis the queue is in
 * memory. Each queue is bounded (AMIBRIDGE_WEBHOOK_QUEUE); past it new
 * deliveries are dropped, counted and logged.
 *
 * One attempt per subscription is in flight at a time, so a receiver sees
 * its events in order; subscriptions never wait for each other and the
 * event path never waits for any of them. Attempts run on libcurl's multi
 * socket interface on the loop: POST of the event JSON with
 * X-Amibridge-Event, -Webhook, -Attempt and the signature headers of the
 * subscription's scheme (bus/webhook_sub.h): Standard Webhooks' webhook-id
 * (the delivery id), webhook-timestamp and webhook-signature (one "v1,"
 * per secret still valid, so a PATCH of the secret keeps the old one
 * signing for AMIBRIDGE_WEBHOOK_SECRET_GRACE_S or the request's
 * secret_grace_s), and/or X-Amibridge-Delivery, -Timestamp and -Signature
 * ("sha256=" hex HMAC-SHA256 of "<timestamp>.<body>" with the secret);
 * http and https only, no redirects, no proxies from the environment, the
 * SSRF guard checked on every address curl connects to. 2xx delivers, 410
 * disables the subscription, anything else retries after a capped,
 * jittered exponential backoff until AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS or
 * AMIBRIDGE_WEBHOOK_MAX_AGE_S, then the delivery is recorded as failed.
 */
#ifndef AMIBRIDGE_BUS_WEBHOOKS_H
#define AMIBRIDGE_BUS_WEBHOOKS_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "bus/events.h"
#include "bus/redis.h"
#include "core/config.h"

#define WEBHOOKS_LOG_MAX       100  /* attempts kept per subscription for the API */
#define WEBHOOKS_POLL_MS       500  /* how often the Redis store is checked for changes */
#define WEBHOOKS_RESPONSE_KEEP 256  /* bytes of a receiver's answer kept for the log */
#define WEBHOOKS_CONNECTS_MAX  256  /* idle connections kept for reuse */
#define WEBHOOKS_CONNECT_MS    5000 /* connect timeout (within the attempt timeout) */
#define WEBHOOKS_DROP_LOG_MS   1000
#define WEBHOOKS_STATE_FILE    "webhooks.json"

struct webhooks;

/* The outcome of an API operation: an HTTP status with, on success, a
 * JSON body (new reference, may be NULL for 204) or, on failure, a
 * problem (slug, title, detail and the field when one is to blame). */
struct webhooks_answer {
    int status;
    json_t *body;
    const char *slug;
    const char *title;
    char detail[320];
    char field[96];
};
/* Fires exactly once per operation, possibly before the call returns;
 * `a->body` belongs to the callee. */
typedef void (*webhooks_cb)(void *ud, struct webhooks_answer *a);

/* `c` and `redis` (NULL without Redis) are borrowed and must outlive it.
 * Loads the static subscriptions and, without Redis, the state file.
 * NULL with a message naming the setting in err. */
struct webhooks *webhooks_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                              char *err, size_t errlen);
/* Stop: abort attempts (with Redis they stay queued there), answer pending
 * tests, close every handle. Call before the loop's last run. */
void webhooks_close(struct webhooks *w);
/* After the loop has run the close callbacks. */
void webhooks_free(struct webhooks *w);
/* Answer pending test deliveries now (shutdown grace period over). */
void webhooks_quiesce(struct webhooks *w);

/* The bus sink (bus_sink_fn). */
void webhooks_sink(void *w, struct bus_event *e);
/* Redis came up or went down (chain from bus_redis_set_state_cb). */
void webhooks_redis_state(void *w, int up);

#include "bus/lease.h"

/* Replicas (Redis): deliver only while this process holds the leader lease
 * (`l` borrowed); on taking it over, every subscription's pending
 * deliveries are read back from Redis, so the ones a dead leader left are
 * made by the new one (same delivery ids). */
void webhooks_set_lease(struct webhooks *w, struct bus_lease *l);
/* The lease changed (chain from the lease callback). */
void webhooks_leader(void *w, enum bus_lease_change change);

/* The API. `body` is borrowed. */
void webhooks_create(struct webhooks *w, json_t *body, webhooks_cb cb, void *ud);
void webhooks_patch(struct webhooks *w, const char *id, json_t *body, webhooks_cb cb, void *ud);
void webhooks_delete(struct webhooks *w, const char *id, webhooks_cb cb, void *ud);
/* Send a "ping" delivery now, outside the queue; answers its result. */
void webhooks_test(struct webhooks *w, const char *id, webhooks_cb cb, void *ud);
/* {"webhooks":[...]} without secrets. New reference, NULL when out of memory. */
json_t *webhooks_list_json(struct webhooks *w);
/* One subscription (no secret) or its recent attempts, newest first.
 * New reference; NULL with *status 404 or 500. */
json_t *webhooks_get_json(struct webhooks *w, const char *id, int *status);
json_t *webhooks_deliveries_json(struct webhooks *w, const char *id, int *status);

struct webhooks_stats {
    size_t subscriptions;
    size_t disabled;
    size_t queued;   /* deliveries waiting, all subscriptions */
    size_t inflight; /* attempts running */
};
void webhooks_stats(const struct webhooks *w, struct webhooks_stats *st);

#endif
