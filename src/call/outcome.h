/* call/outcome: what a call's facts make of it, for the call object: its
 * state, how it ended and who hung up. Not for use outside src/call.
 *
 * Pure functions of one struct call (call/call); the facts themselves are
 * gathered by call/events. The rules are listed in outcome.c.
 */
#ifndef AMIBRIDGE_CALL_OUTCOME_H
#define AMIBRIDGE_CALL_OUTCOME_H

#include "call/call.h"

/* "ringing", "answered" or "ended" (a string literal). */
const char *call_state_name(const struct call *c);
/* How an ended call ended: answered, missed, busy, no_answer, congestion,
 * canceled or failed (a string literal). */
const char *call_outcome(const struct call *c);
/* Who hung up an ended call: caller, callee or system (a string literal). */
const char *call_hangup_by(const struct call *c);
/* A hang-up request (or the hang-up) of leg l (NULL: not a leg of c):
 * remembers whose party asked first, unless l lost a race. */
void call_note_hangup_request(struct call *c, const struct leg *l);

#endif
