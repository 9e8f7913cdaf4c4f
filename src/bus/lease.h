/* bus/lease: which replica publishes the event stream, decided in Redis.
 *
 * With Redis configured, every amibridge process takes part: one holds the
 * lease <prefix>:leader (SET NX PX AMIBRIDGE_LEADER_TTL_MS) and is the
 * leader; it publishes the events to Redis and makes the webhook
 * deliveries. The others serve the HTTP API as usual and stand by. The
 * leader renews the lease every ttl/3 (on a Redis connection of its own, so
 * that no backlog of events or deliveries delays a renewal); a follower
 * tries to take it every ttl/3, so a dead leader is replaced within
 * ttl + ttl/3 (< 2 × ttl).
 *
 * Fencing. The lease's value is "<instance>:<n>", n from INCR
 * <prefix>:leader:fence at each take-over, so it is never reused. What the
 * leader publishes goes through a script that checks the value first
 * (bus_lease_fence_script), so a former leader that was paused (SIGSTOP, a
 * long GC-like stall, a network partition) cannot publish once the lease
 * has moved on. Locally, a leader that could not renew for a whole ttl
 * steps down before doing anything else when it runs again (timers run
 * before I/O in the loop).
 *
 * A clean shutdown releases the lease (only if it is still ours) so that a
 * follower takes over at once.
 */
#ifndef AMIBRIDGE_BUS_LEASE_H
#define AMIBRIDGE_BUS_LEASE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus/redis.h"
#include "core/config.h"

#define LEASE_VALUE_MAX 96

struct bus_lease;

/* What changed. Events and deliveries that waited while the lease was
 * unsure may go out only when nobody else can have led in between. */
enum bus_lease_change {
    BUS_LEASE_LEADER,       /* took the lease, nobody else held it since we last did */
    BUS_LEASE_LEADER_FRESH, /* took the lease after another replica held it: drop what waited */
    BUS_LEASE_FOLLOWER,     /* another replica holds the lease */
    BUS_LEASE_UNSURE,       /* no word from Redis for a whole ttl (or the lease vanished):
                               stop sending, keep what waits */
};
typedef void (*bus_lease_cb)(void *ud, enum bus_lease_change change);

/* `c` and `redis` are borrowed. Starts trying when Redis comes up (wire
 * bus_lease_redis_state). */
struct bus_lease *bus_lease_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                                bus_lease_cb cb, void *ud);
void bus_lease_redis_state(void *l, int up);
int bus_lease_is_leader(const struct bus_lease *l);
/* 1 while another replica is known to hold the lease. */
int bus_lease_follower(const struct bus_lease *l);
/* Our lease value while leader ("" otherwise), for the fenced commands. */
const char *bus_lease_token(const struct bus_lease *l);
const char *bus_lease_key(const struct bus_lease *l);
/* Who holds the lease as last seen ("" when nobody or unknown). */
const char *bus_lease_holder(const struct bus_lease *l);
/* Milliseconds since the holder took the lease, as last seen (-1 unknown). */
int64_t bus_lease_age_ms(const struct bus_lease *l);
uint64_t bus_lease_changes(const struct bus_lease *l);
/* Release when ours (clean shutdown); `done` runs when Redis answered or
 * at once without Redis. Stops the timer. */
void bus_lease_release(struct bus_lease *l, void (*done)(void *), void *arg);
/* Teardown (docs/layout.md, "Teardown"): stop, close the timer, free once
 * Redis has answered (or failed) the command on its way, if any; neither
 * the change callback nor a release's `done` fires after this call. */
void bus_lease_close(struct bus_lease *l, void (*done)(void *arg), void *arg);

/* The fenced PUBLISH (and XADD) of a batch of events: KEYS[1] the lease
 * key; ARGV: our token, stream ("" for none), stream maxlen, then channel
 * and message of each event. Returns how many were published (all of
 * them), or -1 (none) when the lease is not ours: one fence check, and one
 * reply, for the whole batch. A refused XADD (the key of another type,
 * Redis out of memory) does not stop the batch: every event is still
 * published and the first such error is the reply, as it was for each
 * event sent alone. */
extern const char bus_lease_fence_script[];

#endif
