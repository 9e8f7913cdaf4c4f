/* call/expect: the calls amibridge is placing and no channel has claimed
 * yet (call_model_expect), newest first. Not for use outside src/call.
 *
 * An expectation holds what to echo on the call once its first channel
 * shows: its `origination` and `variables` (owned, NULL for none). The
 * list is embedded in the model; zero-initialised it is empty.
 */
#ifndef AMIBRIDGE_CALL_EXPECT_H
#define AMIBRIDGE_CALL_EXPECT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct call_expect {
    char *id; /* the ChannelId given to Originate: the call's id */
    json_t *origination, *variables;
    uint64_t at; /* when it was told, Unix ms */
    struct call_expect *next;
};

struct call_expects {
    struct call_expect *head; /* newest first */
    size_t n;
};

/* Forget the expectations older than CALL_EXPECT_TTL_MS at now_ms, and
 * the oldest past the CALL_EXPECT_MAX newest (call/model.h). */
void call_expects_prune(struct call_expects *x, uint64_t now_ms);
/* Expect call `id`; origination and variables are stolen (also on
 * failure). 0 or -ENOMEM. */
int call_expects_add(struct call_expects *x, const char *id, json_t *origination, json_t *variables,
                     uint64_t now_ms);
/* The expectation of call `id`, taken out of the list (the caller frees it
 * with call_expect_free), or NULL. */
struct call_expect *call_expects_take(struct call_expects *x, const char *id);
/* The oldest expectation of call `id`, left in the list (borrowed), or
 * NULL. (Told twice, the id is expected twice: call_expects_take takes the
 * newest.) */
struct call_expect *call_expects_find(const struct call_expects *x, const char *id);
/* The expectation whose origination `id` (the Originate's ActionID,
 * call_model_origination_id) is action_id, left in the list (borrowed), or
 * NULL. */
struct call_expect *call_expects_by_action(const struct call_expects *x, const char *action_id);
void call_expect_free(struct call_expect *e);
/* Forget them all. */
void call_expects_clear(struct call_expects *x);

#endif
