/* call/model: calls as a CRM sees them, derived from one server's AMI
 * events.
 *
 * A call is one conversation: every channel Asterisk creates for it carries
 * the same Linkedid (the Uniqueid of its first channel, or the ChannelId an
 * Originate set), which is the call's id. Its channels are its legs. The
 * model follows Newchannel, Newstate, DialBegin/DialState/DialEnd,
 * QueueCallerJoin/Abandon, AgentConnect, Hold/Unhold, BlindTransfer and
 * AttendedTransfer (Result: Success only), OriginateResponse and Hangup,
 * and says what happened as call events:
 *
 *   call.created, call.ringing, call.answered, call.held, call.resumed,
 *   call.transferred, call.ended (exactly once per created call, last)
 *
 * each {"type","server","seq","time","call":{...}} with the call object as
 * documented in openapi.yaml (Call). The rules come from real Asterisk 22
 * captures (tests/data/transcripts 06a, 06b, 10a-10f) and are listed in
 * call/events.c (what the events mean), call/outcome.c (how a call ended)
 * and call/model.c (when the PBX's answer counts).
 *
 * The model is pure: events and times in, call events out, no I/O. It is
 * fed every AMI event of its server, before the event filters.
 */
#ifndef AMIBRIDGE_CALL_MODEL_H
#define AMIBRIDGE_CALL_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ami/message.h"

struct call_model_opts {
    const char *server;  /* its name, in every event */
    char *const *trunks; /* channel globs of trunks (PJSIP/trunk-*): inbound/outbound */
    size_t ntrunks;
    size_t max_live; /* calls followed at once; more are counted, not followed */
};

/* One call event, borrowed: take a reference to keep it. */
typedef void (*call_emit_fn)(void *ud, const char *type, json_t *event);

struct call_model;

struct call_model *call_model_new(const struct call_model_opts *o, call_emit_fn emit, void *ud);
void call_model_free(struct call_model *m);

/* Feed one AMI event received at now_ms (Unix time in milliseconds). */
void call_model_feed(struct call_model *m, const struct ami_msg *ev, uint64_t now_ms);

/* A call amibridge is placing: its id (the ChannelId given to Originate),
 * what to echo as `origination` and `variables` (both stolen; NULL: none).
 * The call gets direction "originated" (a live call of that id without an
 * origination gets them at once: told late, by another replica, its next
 * events carry them). An expectation no channel claimed
 * within CALL_EXPECT_TTL_MS, or past the CALL_EXPECT_MAX newest, is
 * forgotten. 0 or -ENOMEM. */
#define CALL_EXPECT_TTL_MS (10 * 60 * 1000)
#define CALL_EXPECT_MAX    4096
int call_model_expect(struct call_model *m, const char *id, json_t *origination, json_t *variables,
                      uint64_t now_ms);

/* Drop every live call without a word (another process follows them now:
 * this one became a follower replica). */
void call_model_forget(struct call_model *m);

/* AMI was (re)connected: what is live now may have ended while it was
 * down. Calls and legs heard of after this are alive whatever the
 * snapshot says. */
void call_model_mark(struct call_model *m);

/* After AMI was (re)connected (and call_model_mark): the PBX's live
 * channels when it answered, the
 * CoreShowChannel items of one CoreShowChannels (borrowed). A live call
 * not heard of since the mark, none of whose channels is listed, ends (call.ended: hangup.by
 * "system", cause 0, cause_text says why); a call the model did not know is created (its start from
 * the channels' Duration) and said to ring or be answered as its channels show; nothing already
 * announced is announced again. */
void call_model_snapshot(struct call_model *m, struct ami_msg *const *items, size_t n,
                         uint64_t now);

/* A live call with what the model needs to go on with it (a new object
 * {"call":{...},"model":{...}}, or NULL), and the reverse: a call taken
 * over from such an export (another process followed it), not announced
 * again; a call the model knows already is left as it is. Imported calls
 * count as not heard of since the last mark (call_model_mark): a snapshot
 * that does not list them ends them. 0, -EINVAL (not an export), -ENOSPC
 * (max_live), -ENOMEM. */
json_t *call_model_export(const struct call_model *m, const char *id);
int call_model_import(struct call_model *m, json_t *exported);

/* The id amibridge gave the placing of call `call_id` (its Originate's
 * ActionID), once known: set as origination.id. */
void call_model_origination_id(struct call_model *m, const char *call_id, const char *id);

/* The live calls, oldest first: a new array. */
json_t *call_model_live(const struct call_model *m);
/* One live call: a new object, or NULL. */
json_t *call_model_get(const struct call_model *m, const char *id);

struct call_model_stats {
    size_t live;
    uint64_t created, ended, untracked; /* untracked: over max_live */
};
void call_model_stats(const struct call_model *m, struct call_model_stats *st);

#endif
