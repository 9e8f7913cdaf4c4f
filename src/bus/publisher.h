/* bus/publisher: the Redis outlet of the event stream.
 *
 * Each event becomes `PUBLISH <prefix>.<server>.<Event> <json>` (and, with
 * AMIBRIDGE_REDIS_STREAM, `XADD <stream> MAXLEN ~ N * event <json>`),
 * pipelined in order on the one Redis connection. With a lease (replicas,
 * bus/lease) the events go through the fence script instead, the waiting
 * ones in batches (PUBLISHER_BATCH): one fence check and one reply per
 * batch, all of it published or none. A batch goes as soon as it is full;
 * fewer events wait until the I/O of the current turn of the loop is done
 * (a uv_check), so the events parsed from one read share a script call
 * instead of one call each. While Redis is slow or
 * down, events wait in a bounded buffer (AMIBRIDGE_REDIS_BUFFER); when it
 * is full the oldest are dropped, every drop counted and logged at most
 * once a second. Commands that were in flight when the connection dropped
 * are sent again after the reconnect (at-least-once: a subscriber may see
 * such an event twice, with the same seq). The loop never blocks on Redis.
 *
 * Backpressure: while Redis is up but slower than AMI, the buffer would
 * overflow; before it does (PUBLISHER_PAUSE_AT_PCT % of it used), the
 * publisher asks its owner to hold AMI events back, and to let them come
 * again once Redis has caught up (PUBLISHER_RESUME_AT_PCT %). The owner
 * holds them as the bytes Asterisk sent (ami_conn_pause()), so nothing is
 * dropped until that bounded hold is full too. While Redis is down nothing
 * is held back: events wait in the buffer and the oldest are dropped.
 */
#ifndef AMIBRIDGE_BUS_PUBLISHER_H
#define AMIBRIDGE_BUS_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus/events.h"
#include "bus/redis.h"
#include "core/config.h"

#define PUBLISHER_WINDOW        1024         /* events in flight on the connection */
#define PUBLISHER_BATCH         64           /* events in one fenced script call at most */
#define PUBLISHER_BATCH_BYTES   (256 * 1024) /* and their JSON at most (one event: any size) */
#define PUBLISHER_CHANNEL_MAX   256          /* bytes of a channel name; longer ones are cut */
#define PUBLISHER_DROP_LOG_MS   1000
#define PUBLISHER_PAUSE_AT_PCT  75 /* of AMIBRIDGE_REDIS_BUFFER */
#define PUBLISHER_RESUME_AT_PCT 50

struct bus_publisher;

struct bus_publisher_stats {
    uint64_t published; /* acknowledged by Redis */
    uint64_t dropped;   /* pushed out of a full buffer */
    uint64_t errors;    /* commands Redis refused */
    uint64_t resent;    /* sent again after a lost connection */
    size_t buffered;    /* waiting to be sent */
    size_t inflight;    /* sent, not acknowledged */
    uint64_t pauses;    /* times AMI reading was held back */
    uint64_t paused_ms; /* for how long in all */
};

/* `c` and `redis` are borrowed. */
struct bus_publisher *bus_publisher_new(uv_loop_t *loop, const struct cfg *c,
                                        struct bus_redis *redis);
/* Teardown (docs/layout.md, "Teardown"): drop what is buffered, close the
 * timer and the check handle, free; a drain still running ends without its callback. Commands
 * in flight name the publisher: close `redis` in the same turn of the loop
 * (its failed replies then come before `done`). */
void bus_publisher_close(struct bus_publisher *p, void (*done)(void *arg), void *arg);
/* The bus sink (bus_sink_fn): queue one event. */
void bus_publisher_sink(void *p, struct bus_event *e);
/* Redis came up or went down (wire to bus_redis_set_state_cb). */
void bus_publisher_redis_state(void *p, int up);
void bus_publisher_stats(const struct bus_publisher *p, struct bus_publisher_stats *st);
/* Backpressure: `fn(ud, 1)` asks to stop reading AMI events, `fn(ud, 0)` to
 * go on (see above). Setting another (or NULL) first ends a pause in
 * effect. */
void bus_publisher_set_pause_cb(struct bus_publisher *p, void (*fn)(void *ud, int pause), void *ud);
#include "bus/lease.h"

/* Replicas (Redis): publish only while this process holds the leader
 * lease, each event through the fenced script (bus/lease). `l` is borrowed. */
void bus_publisher_set_lease(struct bus_publisher *p, struct bus_lease *l);
/* The lease changed (bus/lease says what each change means for what waits). */
void bus_publisher_leader(void *p, enum bus_lease_change change);
/* Shutdown: call `done` when everything queued is acknowledged, or after
 * `deadline_ms`, whichever comes first. Events pushed later are dropped. */
void bus_publisher_drain(struct bus_publisher *p, uint64_t deadline_ms, void (*done)(void *),
                         void *arg);

#endif
