/* call/events: call_model_feed, AMI events into the steps of a call's life
 * (call/model_internal.h). The rules, each from a real capture
 * (tests/data/transcripts 06a, 06b, 10a-10f):
 *
 * - A call is created by the first Newchannel of a Linkedid; its first
 *   channel is the caller leg: `from` is the caller id of its party (the
 *   first known), `dialed` its Exten.
 * - Legs: the caller; `callee` for a DialBegin destination; `agent` for an
 *   AgentConnect member; `local` for the other half (;1/;2) of a Local
 *   channel, and for any other channel. The two halves of a Local channel
 *   are one party.
 * - Ringing: a leg in state Ringing, or DialState RINGING.
 * - Answered: a person answered: DialEnd ANSWER of a real Dial (one with
 *   a Channel: the Originate's own DialBegin/DialEnd have none, 10a-10f),
 *   or AgentConnect (a queue member). `answered_by` is the Dial's
 *   destination or the member; a queue's Dial answers before its
 *   AgentConnect (06a), so the member is taken from the AgentCalled that
 *   rang that leg. When only the PBX answered, see model.c.
 * - A ring group's losers (DialEnd CANCEL, hang-up cause 26 "answered
 *   elsewhere", 10d) do not make the call missed and do not count for who
 *   hung up.
 * - Queue: QueueCallerJoin sets `queue`; an unanswered call that went
 *   through a queue is `missed` (10c: QueueCallerAbandon).
 * - Hold/Unhold on a leg: call.held / call.resumed; a transfer ends a hold
 *   (call.resumed first: 10b2 has no Unhold). Transfers keep the
 *   Linkedid in Asterisk 22 (10a2, 10b2): call.transferred, the same call.
 *   BlindTransfer with Result Invalid (10a) is no transfer.
 * - Ended: when every leg has hung up, once. hangup.cause is the first
 *   cause other than 0 and 26; the outcome and who hung up: call/outcome.
 *   A SoftHangupRequest's Cause is Asterisk's reason to ask: a shutdown
 *   or restart (08a) hangs the call up by the system.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call/model_internal.h"
#include "call/outcome.h"
#include "call/view.h"

/* The extension or endpoint a channel name stands for: 201 for
 * Local/201@demo-00000008;1 and for PJSIP/201-0000000c, or NULL. */
static const char *endpoint_of(const char *channel, char *out, size_t len)
{
    const char *slash = strchr(channel, '/');
    if (!slash)
        return NULL;
    const char *start = slash + 1, *end;
    if (!strncmp(channel, "Local/", 6))
        end = strchr(start, '@');
    else
        end = strrchr(start, '-');
    if (!end)
        end = start + strlen(start);
    if (end == start || (size_t)(end - start) >= len)
        return NULL;
    snprintf(out, len, "%.*s", (int)(end - start), start);
    return out;
}

/* The call that has a leg with this Uniqueid (a walk over the live calls:
 * only for events whose Linkedid does not lead to their leg). */
static struct call *call_of_leg(const struct call_model *m, const char *uid, struct leg **leg)
{
    for (struct call *c = m->calls.head; c; c = c->next) {
        struct leg *l = call_leg_by_uniqueid(c, uid);
        if (l) {
            *leg = l;
            return c;
        }
    }
    return NULL;
}

static struct call *call_of_dest(struct call_model *m, const struct ami_msg *ev)
{
    struct call *c = call_index_find(&m->calls, ami_msg_get(ev, "DestLinkedid"));
    return c ? c : call_index_find(&m->calls, ami_msg_get(ev, "Linkedid"));
}

static void on_dial(struct call_model *m, const char *name, const struct ami_msg *ev, uint64_t now)
{
    struct call *c = call_of_dest(m, ev);
    if (!c)
        return;
    const char *caller = ami_msg_get(ev, "Channel");
    const char *dest = ami_msg_get(ev, "DestChannel");
    struct leg *d = call_leg_by_uniqueid(c, ami_msg_get(ev, "DestUniqueid"));
    if (!d)
        d = call_leg_by_channel(c, dest);
    const char *status = ami_msg_get(ev, "DialStatus");
    if (!strcmp(name, "DialBegin")) {
        if (caller && d && d != &c->legs[0])
            d->role = "callee";
        if (caller)
            c->dialled = 1;
        if (caller && model_is_trunk(m, dest) && !strcmp(c->direction, "internal"))
            c->direction = "outbound";
        return;
    }
    if (!strcmp(name, "DialState")) {
        if (status && !strcmp(status, "RINGING"))
            model_ringing(m, c, now);
        return;
    }
    /* DialEnd */
    if (!status)
        return;
    if (!strcmp(status, "CANCEL") && d) {
        call_mark_party_loser(c, d->party);
        return;
    }
    if (strcmp(status, "ANSWER") != 0) {
        snprintf(c->dialstatus, sizeof(c->dialstatus), "%s", status);
        return;
    }
    if (!caller) {
        model_pbx_answer(c, now); /* an Originate's own dial: its channel was answered */
        return;
    }
    if (dest && !c->ans_channel) {
        /* the destination's caller id is the caller's, as presented to it:
         * the answering party is named by its channel */
        call_set_str(&c->ans_channel, dest);
        char num[80];
        call_set_str(&c->ans_num, endpoint_of(dest, num, sizeof(num)));
        /* a queue's Dial answers before its AgentConnect (06a): the member
         * it rang there is known from its AgentCalled */
        if (d && d->member && !c->ans_member) {
            call_set_str(&c->ans_member, d->member);
            d->role = "agent";
        }
    }
    model_answered(m, c, now);
}

#define SOFTHANGUP_SHUTDOWN (1 << 2) /* AST_SOFTHANGUP_SHUTDOWN */

static void on_hangup(struct call_model *m, struct call *c, const char *name,
                      const struct ami_msg *ev, uint64_t now)
{
    struct leg *l = call_leg_by_uniqueid(c, ami_msg_get(ev, "Uniqueid"));
    const char *cs = ami_msg_get(ev, "Cause");
    int cause = cs ? atoi(cs) : 0;
    if (!strcmp(name, "SoftHangupRequest")) {
        /* its Cause is why Asterisk asked (ast_softhangup(): the
         * AST_SOFTHANGUP_* flags), not a Q.850 cause: 4 the PBX shutting
         * down or restarting (08a); 16, the end of the dialplan
         * (__ast_pbx_run), is the channel's own */
        if (cause & SOFTHANGUP_SHUTDOWN) {
            if (!c->by)
                c->by = "system";
            return;
        }
        cause = 0;
    }
    if (l && cause == 26)
        call_mark_party_loser(c, l->party);
    call_note_hangup_request(c, l);
    if (strcmp(name, "Hangup") != 0)
        return;
    if (!c->cause && cause != 0 && cause != 26) {
        c->cause = cause;
        const char *txt = ami_msg_get(ev, "Cause-txt");
        snprintf(c->cause_text, sizeof(c->cause_text), "%s", txt ? txt : "");
    }
    if (l)
        l->gone = 1;
    if (call_all_gone(c))
        model_end(m, c, now);
}

/* Transfers name their channels, not a Linkedid: find the call by the
 * transferer's Uniqueid. */
static void on_transfer(struct call_model *m, const struct ami_msg *ev, uint64_t now)
{
    const char *name = ami_msg_get(ev, "Event"), *result = ami_msg_get(ev, "Result");
    if (!result || strcmp(result, "Success") != 0)
        return;
    int blind = !strcmp(name, "BlindTransfer");
    const char *lid = ami_msg_get(ev, blind ? "TransfererLinkedid" : "OrigTransfererLinkedid");
    struct call *c = call_index_find(&m->calls, lid);
    if (!c)
        return;
    json_decref(c->transfer);
    if (blind)
        c->transfer = json_pack("{s:s,s:o,s:o,s:o}", "type", "blind", "transferer",
                                call_view_str(ami_msg_get(ev, "TransfererChannel")), "context",
                                call_view_str(ami_msg_get(ev, "Context")), "exten",
                                call_view_str(ami_msg_get(ev, "Extension")));
    else
        c->transfer = json_pack("{s:s,s:o,s:o}", "type", "attended", "transferer",
                                call_view_str(ami_msg_get(ev, "OrigTransfererChannel")),
                                "transferee", call_view_str(ami_msg_get(ev, "TransfereeChannel")));
    /* the transferer hands the call on and leaves: its hang-up is no one
     * hanging up the call (10a2: the callee's party transfers the caller
     * to an extension; the call ends when that extension's dialplan does) */
    static const char *const tuids[2][2] = {{"TransfererUniqueid", NULL},
                                            {"OrigTransfererUniqueid", "SecondTransfererUniqueid"}};
    for (size_t i = 0; i < 2 && tuids[!blind][i]; i++) {
        const char *tuid = ami_msg_get(ev, tuids[!blind][i]);
        struct leg *t = NULL;
        struct call *tc = tuid ? call_of_leg(m, tuid, &t) : NULL;
        if (!tc)
            continue;
        call_mark_party_loser(tc, t->party);
        /* an attended transfer completed by hanging up asks first (10b2) */
        if (tc->by_leg && tc->legs[tc->by_leg - 1].loser) {
            tc->by = NULL;
            tc->by_leg = 0;
        }
    }
    /* whoever held the call handed it on: no one holds it now (10b2: the
     * transferer's Hold has no Unhold) */
    if (c->held) {
        c->held = 0;
        model_emit(m, c, "call.resumed", now);
    }
    /* two calls joined (an attended transfer between calls of their own,
     * not the feature's: 10b2 keeps one Linkedid): each names the other */
    struct call *other =
        blind ? NULL : call_index_find(&m->calls, ami_msg_get(ev, "SecondTransfererLinkedid"));
    if (other && other != c) {
        call_set_str(&c->transferred_to, other->id);
        call_set_str(&other->transferred_from, c->id);
        model_emit(m, other, "call.transferred", now);
    }
    model_emit(m, c, "call.transferred", now);
}

/* A Failure carries Uniqueid <unknown>: ours are known by their ActionID,
 * others by the requested channel's name. */
static void on_originate_response(struct call_model *m, const struct ami_msg *ev, uint64_t now)
{
    const char *uid = ami_msg_get(ev, "Uniqueid"), *resp = ami_msg_get(ev, "Response");
    const char *ch = ami_msg_get(ev, "Channel"), *aid = ami_msg_get(ev, "ActionID");
    struct call *hit = NULL;
    for (struct call *c = m->calls.head; c && aid && !hit; c = c->next) {
        const char *oid = json_string_value(json_object_get(c->origination, "id"));
        if (oid && !strcmp(oid, aid))
            hit = c;
    }
    size_t n = ch ? strlen(ch) : 0;
    for (struct call *c = m->calls.head; c && !hit; c = c->next) {
        if (uid && call_leg_by_uniqueid(c, uid))
            hit = c;
        else if (!json_is_string(json_object_get(c->origination, "id")) && n && c->nlegs &&
                 !strncmp(c->legs[0].channel, ch, n) && c->legs[0].channel[n] == '-' &&
                 c->state != ST_ANSWERED && c->orig_reason < 0)
            hit = c;
    }
    const char *reason = ami_msg_get(ev, "Reason");
    if (!hit) {
        /* one of ours that failed before any channel of it was heard of
         * (no such endpoint, no channel driver): it ends now */
        struct call_expect *e =
            resp && !strcmp(resp, "Failure") ? call_expects_by_action(&m->expects, aid) : NULL;
        char *id = e ? strdup(e->id) : NULL; /* the expectation goes with its call */
        if (id)
            model_end_unseen(m, ev, id, atoi(reason ? reason : "0"), now);
        free(id);
        return;
    }
    if (resp && !strcmp(resp, "Success"))
        model_pbx_answer(hit, now);
    else
        hit->orig_reason = atoi(reason ? reason : "0");
}

/* The first Newchannel of a Linkedid creates its call (c NULL); every one
 * adds a leg. */
static void on_newchannel(struct call_model *m, struct call *c, const char *lid,
                          const struct ami_msg *ev, uint64_t now)
{
    const char *uid = ami_msg_get(ev, "Uniqueid"), *ch = ami_msg_get(ev, "Channel");
    if (!uid || !ch)
        return;
    int fresh = !c;
    if (!c && model_ended_unseen(m, lid, now))
        return; /* its Originate's failure came first and ended it */
    if (!c && !(c = model_create(m, ev, lid, now)))
        return;
    struct leg *l = call_add_leg(c, uid, ch, ami_msg_get(ev, "ChannelStateDesc"));
    if (fresh)
        model_emit(m, c, "call.created", now); /* with its first leg */
    if (l && l != &c->legs[0] && model_is_trunk(m, ch) && !strcmp(c->direction, "internal"))
        c->direction = "outbound";
}

/* The events the model reads; every other one (VarSet, Newexten, RTCP*:
 * most of the stream) is passed over at once. */
static int read_by_model(const char *name)
{
    static const char *const names[] = {"Newchannel",
                                        "Newstate",
                                        "NewCallerid",
                                        "DialBegin",
                                        "DialState",
                                        "DialEnd",
                                        "QueueCallerJoin",
                                        "AgentCalled",
                                        "AgentConnect",
                                        "Hold",
                                        "Unhold",
                                        "BlindTransfer",
                                        "AttendedTransfer",
                                        "HangupRequest",
                                        "SoftHangupRequest",
                                        "Hangup",
                                        "OriginateResponse",
                                        NULL};
    /* every event passes here: most are none of these, told by the first byte */
    for (const char *const *n = names; *n; n++)
        if (name[0] == (*n)[0] && !strcmp(name, *n))
            return 1;
    return 0;
}

void call_model_feed(struct call_model *m, const struct ami_msg *ev, uint64_t now)
{
    const char *name = ami_msg_get(ev, "Event");
    if (!name || !read_by_model(name))
        return;
    if (!strncmp(name, "Dial", 4)) {
        on_dial(m, name, ev, now);
        return;
    }
    if (!strcmp(name, "BlindTransfer") || !strcmp(name, "AttendedTransfer")) {
        on_transfer(m, ev, now);
        return;
    }
    if (!strcmp(name, "OriginateResponse")) {
        on_originate_response(m, ev, now);
        return;
    }
    const char *lid = ami_msg_get(ev, "Linkedid");
    if (!lid)
        return;
    struct call *c = call_index_find(&m->calls, lid);
    if (!strcmp(name, "Newchannel")) {
        on_newchannel(m, c, lid, ev, now);
        return;
    }
    const char *uid = ami_msg_get(ev, "Uniqueid");
    struct leg *l = c ? call_leg_by_uniqueid(c, uid) : NULL;
    if (!l && uid) {
        /* a channel that entered a bridge took the bridge's oldest Linkedid
         * (bridge_basic_push), or was swapped by a masquerade: it is still
         * a leg of the call it began in */
        struct call *home = call_of_leg(m, uid, &l);
        if (home)
            c = home;
    }
    if (!c)
        return;
    c->stale = 0; /* heard of since the reconnect: alive */
    if (l)
        l->stale = 0;
    if (l && !strcmp(l->party, c->legs[0].party)) {
        /* the caller's number, once Asterisk knows it (an Originate's
         * CallerID shows on its second half first, 06a) */
        if (!c->from_num)
            call_set_str(&c->from_num, call_known(ami_msg_get(ev, "CallerIDNum")));
        if (!c->from_name)
            call_set_str(&c->from_name, call_known(ami_msg_get(ev, "CallerIDName")));
    }
    if (!strcmp(name, "Newstate")) {
        const char *st = ami_msg_get(ev, "ChannelStateDesc");
        if (l && st)
            snprintf(l->state, sizeof(l->state), "%s", st);
        if (st && !strcmp(st, "Ringing"))
            model_ringing(m, c, now);
        else if (st && !strcmp(st, "Up") && l == &c->legs[0])
            model_pbx_answer(c, now);
    } else if (!strcmp(name, "QueueCallerJoin")) {
        call_set_str(&c->queue, ami_msg_get(ev, "Queue"));
        model_ringing(m, c, now);
    } else if (!strcmp(name, "AgentCalled")) {
        /* the member the queue rings on that leg: named when it answers */
        struct leg *a = call_leg_by_uniqueid(c, ami_msg_get(ev, "DestUniqueid"));
        if (a)
            call_set_str(&a->member, ami_msg_get(ev, "MemberName"));
    } else if (!strcmp(name, "AgentConnect")) {
        /* the member, also when its Dial's answer came first and its
         * AgentCalled was not seen */
        if (!c->ans_member) {
            const char *dest = ami_msg_get(ev, "DestChannel");
            char num[80];
            call_set_str(&c->ans_channel, dest ? dest : ami_msg_get(ev, "Interface"));
            call_set_str(&c->ans_num, dest ? endpoint_of(dest, num, sizeof(num)) : NULL);
            call_set_str(&c->ans_member, ami_msg_get(ev, "MemberName"));
        }
        struct leg *a = call_leg_by_uniqueid(c, ami_msg_get(ev, "DestUniqueid"));
        if (a)
            a->role = "agent";
        call_set_str(&c->queue, ami_msg_get(ev, "Queue"));
        model_answered(m, c, now);
    } else if (!strcmp(name, "Hold") || !strcmp(name, "Unhold")) {
        int hold = name[0] == 'H';
        if (c->held != hold) {
            c->held = hold;
            model_emit(m, c, hold ? "call.held" : "call.resumed", now);
        }
    } else if (!strcmp(name, "HangupRequest") || !strcmp(name, "SoftHangupRequest") ||
               !strcmp(name, "Hangup")) {
        on_hangup(m, c, name, ev, now);
    }
}
