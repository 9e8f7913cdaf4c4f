/* call/outcome: see outcome.h. The rules, each from a real capture
 * (tests/data/transcripts):
 *
 * - Outcome: answered; missed (a queue, or an inbound call); else from the
 *   last DialEnd status, the OriginateResponse Reason or the hang-up cause
 *   (busy, no_answer, congestion, canceled, failed; 10e: CONGESTION, cause
 *   19 with no DialEnd); failed for an Originate that failed before any
 *   channel of it was heard of (model_end_unseen).
 * - hangup.by: the party that asked first (caller or callee), or system
 *   for timeouts and network causes, and for a call that ended while AMI
 *   was down. A ring group's losers (cause 26 "answered elsewhere", DialEnd
 *   CANCEL, 10d) do not count for who hung up, nor does a transferer
 *   leaving after its transfer (10a2).
 */
#include "call/outcome.h"

#include <string.h>

const char *call_state_name(const struct call *c)
{
    if (c->ended_at)
        return "ended";
    return c->state == ST_ANSWERED ? "answered" : "ringing";
}

const char *call_outcome(const struct call *c)
{
    if (c->state == ST_ANSWERED)
        return "answered";
    if (c->queue || (c->direction && !strcmp(c->direction, "inbound")))
        return "missed";
    const char *d = c->dialstatus;
    if (!strcmp(d, "BUSY") || c->orig_reason == 5 || c->cause == 17)
        return "busy";
    if (!strcmp(d, "NOANSWER") || c->orig_reason == 3 || c->cause == 19 || c->cause == 18)
        return "no_answer";
    if (!strcmp(d, "CONGESTION") || !strcmp(d, "CHANUNAVAIL") || c->orig_reason == 8 ||
        c->cause == 34 || c->cause == 38 || c->cause == 41 || c->cause == 42)
        return "congestion";
    if (!c->nlegs)
        return "failed"; /* its Originate failed before it had a channel */
    if (!strcmp(d, "CANCEL") || c->cause == 16 || c->cause == 0)
        return c->orig_reason > 0 ? "failed" : "canceled";
    return "failed";
}

const char *call_hangup_by(const struct call *c)
{
    if (c->lost)
        return "system";
    if (c->state != ST_ANSWERED) {
        switch (c->cause) {
        case 17:
        case 21:
            return "callee";
        case 18:
        case 19:
        case 27:
        case 34:
        case 38:
        case 41:
        case 42:
            return "system";
        default:
            break;
        }
    }
    return c->by ? c->by : "system";
}

/* Who asked to hang up first: the caller's party or the answering one. */
void call_note_hangup_request(struct call *c, const struct leg *l)
{
    if (c->by || !l || l->loser)
        return;
    const char *caller = c->nlegs ? c->legs[0].party : NULL;
    if (caller && !strcmp(l->party, caller))
        c->by = "caller";
    else if (c->state == ST_ANSWERED)
        c->by = "callee";
    if (c->by)
        c->by_leg = (size_t)(l - c->legs) + 1;
}
