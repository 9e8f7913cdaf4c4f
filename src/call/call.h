/* call/call: one call and its legs, as the model keeps them. Not for use
 * outside src/call.
 *
 * A call is one conversation (id = Linkedid); its legs are its channels,
 * in the order they were heard of: legs[0] is the caller. What a call
 * records is the facts the events told (who dialled, who answered, the
 * causes): the rules that turn them into an outcome are call/outcome, the
 * JSON a CRM reads is call/view. The struct is shared by the files of the
 * model (call/index links it, call/model and call/events change it); it
 * owns every string and JSON value it points to, except `role`,
 * `direction` and `by`, which point to string literals.
 */
#ifndef AMIBRIDGE_CALL_CALL_H
#define AMIBRIDGE_CALL_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum call_state { ST_CREATED, ST_RINGING, ST_ANSWERED };

#define CALL_LEGS_MAX 128 /* channels followed per call */

struct leg {
    char *uniqueid, *channel, *party;
    char *member;     /* the queue member an AgentCalled rang on it, or NULL */
    const char *role; /* caller, callee, agent, local */
    char state[16];
    int gone;
    int loser; /* answered elsewhere, cancelled, or transferred the call on:
                * its hang-up is not the call's (call_note_hangup_request) */
    int seen;  /* in the snapshot being applied */
    int stale; /* nothing heard of it since AMI was reconnected */
};

struct call {
    char *id;
    struct call *prev, *next; /* the live list, oldest first (call/index) */
    struct call *hnext;       /* hash chain (call/index) */
    struct leg *legs;
    size_t nlegs, caplegs;
    enum call_state state;
    int held;
    int dialled;           /* a real Dial (one with a caller channel) began */
    uint64_t pbx_answered; /* the PBX side answered (no person yet) */
    char *from_num, *from_name, *dialed;
    char *queue;
    char *ans_channel, *ans_num, *ans_name, *ans_member;
    char dialstatus[16]; /* the last DialEnd status that ended a dial */
    int orig_reason;     /* OriginateResponse Failure Reason, -1 none */
    int cause;           /* the first hang-up cause other than 0 and 26 */
    char cause_text[64];
    const char *by;         /* who asked to hang up first: "caller", "callee", NULL */
    size_t by_leg;          /* the leg whose request set `by`, + 1; 0: none or unknown */
    int lost;               /* ended while AMI was down: no hang-up was seen */
    int seen;               /* in the snapshot being applied */
    int stale;              /* nothing heard of it since AMI was reconnected */
    int adopted;            /* found in a snapshot, not seen beginning */
    uint64_t snap_answered; /* a snapshot showed two parties up */
    const char *direction;  /* inbound, outbound, internal, originated */
    uint64_t started, answered_at, ended_at;
    json_t *origination, *variables, *transfer;
    char *transferred_from, *transferred_to; /* the other call of a transfer between two */
};

/* A call of that id with no legs, nothing known yet (orig_reason -1):
 * freed with call_free. NULL when out of memory. */
struct call *call_new(const char *id);
/* Frees the call, its legs and all it owns. It must be out of any index. */
void call_free(struct call *c);

/* The leg of that Uniqueid, else a new one (state `state`, "Down" when
 * NULL; role "caller" for the first leg, "local" for the others: callee and
 * agent are given later). NULL when out of memory or past CALL_LEGS_MAX.
 * The pointer lives until the next call_add_leg on the same call. */
struct leg *call_add_leg(struct call *c, const char *uid, const char *channel, const char *state);
/* The leg of that Uniqueid, or of that channel name; NULL for none (or a
 * NULL argument). */
struct leg *call_leg_by_uniqueid(struct call *c, const char *uid);
struct leg *call_leg_by_channel(struct call *c, const char *channel);
/* Every leg hung up (and there is one). */
int call_all_gone(const struct call *c);
/* The legs of `party` lost a race: answered elsewhere, or cancelled. */
void call_mark_party_loser(struct call *c, const char *party);

/* A caller id or extension worth showing: s, or NULL for empty, <unknown>
 * and s. */
const char *call_known(const char *s);
/* Replace *dst with a copy of v (NULL: none). */
void call_set_str(char **dst, const char *v);

#endif
