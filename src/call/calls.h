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
 * values stolen), and the ActionID of its Originate once known. */
int calls_expect(struct calls *cs, size_t server, const char *call_id, json_t *origination,
                 json_t *variables, uint64_t now_ms);
void calls_origination_id(struct calls *cs, size_t server, const char *call_id,
                          const char *action_id);

/* AMI events of `server` (re)started: calls may have ended meanwhile
 * (call_model_mark); then what CoreShowChannels listed (the items,
 * borrowed) settles them (call_model_snapshot). */
void calls_mark(struct calls *cs, size_t server);
void calls_snapshot(struct calls *cs, size_t server, struct ami_msg *const *items, size_t n,
                    uint64_t now_ms);

/* {"calls":[...]}: the live calls of every server, oldest first. */
json_t *calls_live(const struct calls *cs);
/* A live call, or one that ended within the history: a new object, or NULL. */
json_t *calls_get(struct calls *cs, const char *id, uint64_t now_ms);

struct calls_stats {
    size_t live, history;
    uint64_t created, ended, untracked;
};
void calls_stats(const struct calls *cs, struct calls_stats *st);

#endif
