/* call/model_internal: what the files of the model share. Not for use
 * outside src/call.
 *
 * The model is three files over one struct: call/model (the live calls,
 * the steps of a call's life that are announced, the public API's
 * bookkeeping), call/events (AMI events into those steps) and
 * call/snapshot (what a reconnect changes). The last two use the first,
 * never each other.
 */
#ifndef AMIBRIDGE_CALL_MODEL_INTERNAL_H
#define AMIBRIDGE_CALL_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ami/message.h"
#include "call/call.h"
#include "call/expect.h"
#include "call/index.h"
#include "call/model.h"

#define CALL_UNSEEN_MAX 64 /* calls ended before any channel, remembered */

struct call_model {
    char *server;
    char **trunks;
    size_t ntrunks, max_live;
    call_emit_fn emit;
    void *ud;
    struct call_index calls; /* the live ones */
    uint64_t seq, created, ended, untracked;
    struct call_expects expects;
    int marked;       /* AMI was reconnected, the snapshot is awaited */
    char **ended_ids; /* calls ended since then (a snapshot may still list them) */
    size_t nended_ids;
    /* calls placed here whose Originate failed before any of their
     * channels was heard of, ended then (model_end_unseen): their own
     * channels, should they come after all, start no second call */
    char *unseen[CALL_UNSEEN_MAX];
    uint64_t unseen_at[CALL_UNSEEN_MAX];
    size_t unseen_next;
};

/* The channel is a trunk's (one of the configured globs matches). */
int model_is_trunk(const struct call_model *m, const char *channel);

/* A new live call of id `id`, begun at now by the channel of `ev` (a
 * Newchannel or a CoreShowChannel item): its caller id and Exten, its
 * direction (inbound from a trunk, else internal; originated, with what
 * to echo, when it was expected). Not announced: the caller emits
 * call.created once its first leg is in. NULL past max_live (counted as
 * untracked) or when out of memory. */
struct call *model_create(struct call_model *m, const struct ami_msg *ev, const char *id,
                          uint64_t now);

/* Announce c: a call event of that type, with the call object as it is. */
void model_emit(struct call_model *m, struct call *c, const char *type, uint64_t now);

/* The steps of a call's life, each announced once, in this order:
 * ringing (call.ringing) before answered (call.answered; a call answered
 * without ringing is said to ring first). */
void model_ringing(struct call_model *m, struct call *c, uint64_t now);
void model_answered(struct call_model *m, struct call *c, uint64_t now);
/* The PBX answered (the caller leg Up, an Originate answered): a person
 * has not, yet. It counts as the answer only for a call that ends without
 * a Dial or a queue (an application, an IVR, voicemail). Not announced. */
void model_pbx_answer(struct call *c, uint64_t now);
/* Every leg is gone: settle the answer (the PBX's, or one a snapshot
 * showed), announce call.ended and free c. c is gone after this. */
void model_end(struct call_model *m, struct call *c, uint64_t now);

/* Call `id`, expected and placed here, failed before any of its channels
 * was heard of (an OriginateResponse Failure, `ev`, whose ActionID is the
 * expectation's): created from ev and ended at once, with its Reason.
 * Remembered for CALL_EXPECT_TTL_MS, so that channels of it that come
 * after all (Asterisk sends the OriginateResponse straight to AMI, ahead
 * of channel events still on their way) start no second call. */
void model_end_unseen(struct call_model *m, const struct ami_msg *ev, const char *id, int reason,
                      uint64_t now);
/* Whether call `id` ended so (model_end_unseen) within CALL_EXPECT_TTL_MS of now. */
int model_ended_unseen(const struct call_model *m, const char *id, uint64_t now);

/* Drop every live call without a word. */
void model_drop_all(struct call_model *m);

/* The calls that ended since the mark (call_model_mark): whether `id` is
 * one, and forgetting them. */
int model_ended_since_mark(const struct call_model *m, const char *id);
void model_forget_ended(struct call_model *m);

#endif
