/* bus/webhook_store: where webhook subscriptions are kept, and keeping the
 * subscriptions held here (bus/webhook_queue) in step with it.
 *
 * With Redis, subscriptions live in the hash <prefix>:webhooks (id -> JSON,
 * secret included) and every change bumps <prefix>:webhooks:version, which
 * each process polls every WEBHOOKS_POLL_MS, so every replica sees the
 * same set; a version that vanishes after one was seen means Redis lost
 * its data, and what is held here is written back. Without Redis they live
 * in AMIBRIDGE_STATE_DIR/webhooks.json, replaced atomically (temp file,
 * fsync, rename, fsync of the directory), or in memory only when no state
 * directory is set. Static subscriptions come from the config file and
 * are read-only. Whatever the source, a subscription is checked by the
 * same rules as the API's (bus/webhook_sub); what fails them is skipped
 * and logged (Redis, the state file) or refused at start (config file).
 */
#ifndef AMIBRIDGE_BUS_WEBHOOK_STORE_H
#define AMIBRIDGE_BUS_WEBHOOK_STORE_H

#include <stddef.h>
#include <uv.h>

#include "bus/redis.h"
#include "bus/webhook_queue.h"
#include "bus/webhook_sub.h"
#include "core/config.h"

#define WEBHOOKS_POLL_MS    500 /* how often the Redis store is checked for changes */
#define WEBHOOKS_STATE_FILE "webhooks.json"

struct wh_store;

/* A change asked with a non-NULL `ud` was taken (`err` 0: the caller now
 * makes it in the queues) or not: -EAGAIN (Redis down or refused it, the
 * state file not written) or -ENOMEM, with a sentence in `detail`
 * (borrowed for the call). Fires exactly once per such change, possibly
 * before the call that asked returns. */
typedef void (*wh_store_done_fn)(void *ud, int err, const char *detail);

/* `c`, `redis` (NULL without Redis), `q` and the allow nets are borrowed
 * and must outlive it. NULL when out of memory. */
struct wh_store *wh_store_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                              struct wh_queues *q, const struct netlist_net *allow, size_t nallow,
                              wh_store_done_fn done);
/* Hold the static subscriptions of the config file and, without Redis,
 * those of the state file (stale temp files removed); then, with Redis,
 * start polling. 0, or -1 with a message naming the setting in err. */
int wh_store_open(struct wh_store *st, char *err, size_t errlen);
/* Save subscription `c` (borrowed for the call; a create or a change).
 * With Redis the hash is written and the version bumped; otherwise the
 * change is made in the queues here first, then the file written (undone
 * when the write fails). `ud` NULL: nobody waits (a failure is logged). */
void wh_store_put(struct wh_store *st, const struct wh_conf *c, void *ud);
/* Delete subscription `id` and, with Redis, its delivery list. Without
 * Redis it leaves the queues here first. `ud` as for wh_store_put(). */
void wh_store_del(struct wh_store *st, const char *id, void *ud);
/* Redis came up: check the version now. */
void wh_store_poll(struct wh_store *st);
/* Teardown (docs/layout.md, "Teardown"): stop polling, close the timer,
 * free. Redis commands on their way name the store: it goes once each has
 * been answered (bus_redis_close() fails them); a change someone waits for
 * is still reported, once, before `done`. */
void wh_store_close(struct wh_store *st, void (*done)(void *arg), void *arg);

#endif
