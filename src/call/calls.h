/* call/calls: the calls of every configured server.
 *
 * One call/model per server, fed every AMI event of that server (before
 * the event filters), and the calls that ended within
 * AMIBRIDGE_CALL_HISTORY_S (at most AMIBRIDGE_CALL_MAX_HISTORY of them,
 * the oldest go first), so that GET /v1/calls/{id} answers for a while
 * after the end. Each call event goes to `publish` (the Redis outlet).
 */
#ifndef AMIBRIDGE_CALL_CALLS_H
#define AMIBRIDGE_CALL_CALLS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ami/message.h"
#include "core/config.h"

/* One call event of server `server` (its JSON, borrowed). */
typedef void (*calls_publish_fn)(void *ud, size_t server, const char *type, json_t *event);

struct calls;

/* `c` is borrowed and must outlive the registry. NULL when out of memory. */
struct calls *calls_new(const struct cfg *c, calls_publish_fn publish, void *ud);
void calls_free(struct calls *cs);

void calls_feed(struct calls *cs, size_t server, const struct ami_msg *ev, uint64_t now_ms);

/* A call amibridge is placing on `server` (call_model_expect; both JSON
 * values stolen), and the ActionID of its Originate once known. On a
 * follower replica calls_expect returns 1 when told(ud) will run once the
 * leader was told (Redis answered, or the connection failed): send the
 * Originate then, so the leader knows the call before its first event.
 * Else 0 (or -1: no such server) and told never runs. */
typedef void (*calls_told_fn)(void *ud);
int calls_expect(struct calls *cs, size_t server, const char *call_id, json_t *origination,
                 json_t *variables, uint64_t now_ms, calls_told_fn told, void *ud);
void calls_origination_id(struct calls *cs, size_t server, const char *call_id,
                          const char *action_id);

/* A follower replica follows no calls: what it is told of the calls it
 * places (calls_expect, calls_origination_id) it also publishes on
 * CALLS_EXPECT_CHANNEL (with its redis_prefix), where the leader hears it
 * (calls_expect_heard) before the call's first event (the Originate waits
 * for it; heard late, say from a slow subscriber, the call's next events
 * carry it). */
#define CALLS_EXPECT_CHANNEL "%s:call-expect"
void calls_set_follower(struct calls *cs, int follower);
void calls_expect_heard(struct calls *cs, const char *msg, size_t len, uint64_t now_ms);

/* AMI events of `server` (re)started: calls may have ended meanwhile
 * (call_model_mark); then what CoreShowChannels listed (the items,
 * borrowed) settles them (call_model_snapshot). */
void calls_mark(struct calls *cs, size_t server);
/* This process stopped leading: the live calls are another's now. */
void calls_forget_live(struct calls *cs);
void calls_snapshot(struct calls *cs, size_t server, struct ami_msg *const *items, size_t n,
                    uint64_t now_ms);

/* {"calls":[...]}: the live calls of every server, oldest first. */
json_t *calls_live(const struct calls *cs);
/* A live call, or one that ended within the history: a new object, or NULL. */
json_t *calls_get(struct calls *cs, const char *id, uint64_t now_ms);

/* With Redis (borrowed): each call event also writes the call (its
 * call_model_export) to <prefix>:call:<server>:<id> (kept
 * AMIBRIDGE_CALL_HISTORY_S after its end) and keeps the set
 * <prefix>:calls:<server> of live ids, so that every replica can read the
 * calls and a new leader (or this process after a restart) goes on with
 * them. Best effort: what happens while Redis is down is not copied. */
struct bus_redis;
void calls_set_redis(struct calls *cs, struct bus_redis *redis);
/* Take over the live calls of `server` from Redis (none without it), then
 * call `done` (always, once). Call it after calls_mark and before the
 * snapshot. */
void calls_restore(struct calls *cs, size_t server, void (*done)(void *ud), void *ud);
/* Redis is configured but not up (yet): a restore now would find nothing. */
int calls_redis_waiting(const struct calls *cs);
/* Read from Redis: one call (fn gets it or NULL) or the live calls of every
 * server ({"calls":[...]}); `fn` gets a borrowed value and runs once. 0, or
 * -ENOTCONN (no Redis, or down: fn never runs), -ENOMEM. */
typedef void (*calls_remote_fn)(void *ud, json_t *value);
int calls_get_remote(struct calls *cs, const char *id, calls_remote_fn fn, void *ud);
int calls_live_remote(struct calls *cs, calls_remote_fn fn, void *ud);

/* Calls that ended, per minute, over the last CALLS_MINUTES minutes:
 * {"since": when this process began counting, "minutes": [{"start",
 * "ended", "outcomes": {"answered": n, "missed": n, ...every outcome}},
 * ...]}, oldest first, the last one the minute of now_ms; a new object or
 * NULL. Counted by this process since its start: the calls it derives
 * (leading) and the call.ended events it hears from the leader
 * (calls_heard, following). */
#define CALLS_MINUTES 60
json_t *calls_per_minute(const struct calls *cs, uint64_t now_ms);
/* A call event the leader published (this process follows no calls now). */
void calls_heard(struct calls *cs, const char *type, const json_t *event, uint64_t now_ms);

struct calls_stats {
    size_t live, history;
    uint64_t created, ended, untracked;
};
void calls_stats(const struct calls *cs, struct calls_stats *st);

#endif
