/* bus/webhook_queue: the subscriptions this process holds and the
 * deliveries waiting for each — queued, attempted one at a time, retried.
 *
 * Every event a subscription wants becomes a delivery with its own id.
 * With Redis it is pushed to the list <prefix>:webhooks:queue:<id> and its
 * first attempt waits for Redis to acknowledge that, so a crash and
 * restart resume it (at-least-once, same delivery id); it leaves the list
 * when delivered, failed or dropped. Without Redis the queue is in memory.
 * Each queue is bounded (AMIBRIDGE_WEBHOOK_QUEUE); past it new deliveries
 * are dropped, counted and logged.
 *
 * One attempt per subscription is in flight at a time (bus/webhook_http),
 * so a receiver sees its events in order; subscriptions never wait for
 * each other and the event path never waits for any of them. 2xx
 * delivers, 410 disables the subscription, anything else retries after a
 * capped, jittered exponential backoff (core/backoff) until
 * AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS or AMIBRIDGE_WEBHOOK_MAX_AGE_S, then the
 * delivery is recorded as failed. The last WEBHOOKS_LOG_MAX attempts of
 * each subscription are kept for the API.
 *
 * Which subscriptions exist is not decided here: the store
 * (bus/webhook_store) and the operations (bus/webhooks) add, change and
 * remove them.
 */
#ifndef AMIBRIDGE_BUS_WEBHOOK_QUEUE_H
#define AMIBRIDGE_BUS_WEBHOOK_QUEUE_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "bus/events.h"
#include "bus/lease.h"
#include "bus/redis.h"
#include "bus/webhook_http.h"
#include "bus/webhook_sub.h"
#include "core/config.h"

#define WEBHOOKS_LOG_MAX     100 /* attempts kept per subscription for the API */
#define WEBHOOKS_DROP_LOG_MS 1000
#define WH_DELIVERY_ID_BYTES 16
#define WH_DELIVERY_ID_LEN   (2 * WH_DELIVERY_ID_BYTES) /* hex digits */

struct wh_queues;
struct wh_sub;

/* A receiver answered 410: the subscription `c` (borrowed for the call)
 * is now disabled here and its deliveries dropped; the callee saves it. */
typedef void (*wh_disabled_fn)(void *ud, const struct wh_conf *c);

/* `c`, `redis` (NULL without Redis) and `http` are borrowed and must
 * outlive it. NULL when out of memory. */
struct wh_queues *wh_queues_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                                struct wh_http *http, wh_disabled_fn on_disabled, void *ud);
/* Replicas: attempts only while this process leads (`l` borrowed); while
 * another replica is known to, nothing is queued or read back. */
void wh_queues_set_lease(struct wh_queues *q, struct bus_lease *l);
/* The lease changed: attempts in flight are abandoned (made again later
 * with the same attempt number) and retry timers stopped; on a change that
 * may have let another replica deliver, what is held here is dropped and,
 * as the new leader, read back from Redis. */
void wh_queues_leader(struct wh_queues *q, enum bus_lease_change change);
/* Redis came up: read back the lists not read yet. */
void wh_queues_redis_up(struct wh_queues *q);
/* Queue `e` (borrowed) for every enabled subscription that wants it. */
void wh_queues_event(struct wh_queues *q, const struct bus_event *e);
/* Teardown (docs/layout.md, "Teardown"): cancel the attempts in flight,
 * close the timers, log what was still waiting (with Redis it stays in the
 * lists), free. Nothing is sent after it. Redis commands on their way name
 * subscriptions: `done` fires once each has been answered (bus_redis_close()
 * fails them) and every timer is closed. Before wh_http_close() (its easy
 * handles are cleaned up as the subscriptions go). */
void wh_queues_close(struct wh_queues *q, void (*done)(void *arg), void *arg);

/* The subscriptions held, in the order they were added: the first (NULL
 * when none), the one after `s`, the one with id `id` (NULL when none).
 * Borrowed: valid until it is removed. */
struct wh_sub *wh_queues_first(struct wh_queues *q);
struct wh_sub *wh_sub_next(struct wh_sub *s);
struct wh_sub *wh_queues_find(struct wh_queues *q, const char *id);
size_t wh_queues_count(const struct wh_queues *q);

struct wh_queues_stats {
    size_t subscriptions;
    size_t disabled;
    size_t queued;  /* deliveries waiting, all subscriptions */
    size_t sending; /* attempts running */
};
void wh_queues_stats(const struct wh_queues *q, struct wh_queues_stats *st);

/* Hold subscription `c`: its members are taken over (`c` is left empty).
 * `load`: with Redis, read back what a previous run left in its list.
 * NULL when out of memory (`c` then is untouched). */
struct wh_sub *wh_sub_add(struct wh_queues *q, struct wh_conf *c, int load);
/* Replace what `s` is, keeping its queue; its members are taken over
 * (`c` is left empty). Disabled now: what waits is dropped. */
void wh_sub_update(struct wh_sub *s, struct wh_conf *c);
/* Stop `s`'s work and let it go (freed once Redis answered what names
 * it). `forget`: also delete its Redis list. */
void wh_sub_remove(struct wh_sub *s, int forget);
/* What the subscription is. Borrowed. */
const struct wh_conf *wh_sub_conf(const struct wh_sub *s);
/* 1 when its list was read back from Redis (or there was nothing to read). */
int wh_sub_loaded(const struct wh_sub *s);
/* Add one attempt to its log (`error` may be NULL). */
void wh_sub_record(struct wh_sub *s, const char *delivery, const char *event, int attempt,
                   long status, double latency, const char *result, const char *error);
/* {"queued","delivered","failed","dropped","retrying"}. New reference,
 * NULL when out of memory. */
json_t *wh_sub_stats_json(const struct wh_sub *s);
/* Its logged attempts, newest first, as a JSON array. New reference, NULL
 * when out of memory. */
json_t *wh_sub_log_json(const struct wh_sub *s);

#endif
