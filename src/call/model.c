/* call/model: see model.h. The rules, each from a real capture:
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
 *   destination or the member. When only the PBX answered (the caller leg
 *   Up, OriginateResponse Success, the Originate's own DialEnd ANSWER: an
 *   application, an IVR, voicemail), the call counts as answered then only
 *   if it ends without a Dial or a queue (06a: the queue answers its caller
 *   before any agent does; 10f).
 * - A ring group's losers (DialEnd CANCEL, hang-up cause 26 "answered
 *   elsewhere", 10d) do not make the call missed and do not count for who
 *   hung up.
 * - Queue: QueueCallerJoin sets `queue`; an unanswered call that went
 *   through a queue is `missed` (10c: QueueCallerAbandon).
 * - Hold/Unhold on a leg: call.held / call.resumed. Transfers keep the
 *   Linkedid in Asterisk 22 (10a2, 10b2): call.transferred, the same call.
 *   BlindTransfer with Result Invalid (10a) is no transfer.
 * - Ended: when every leg has hung up, once. Outcome: answered; missed
 *   (a queue, or an inbound call); else from the last DialEnd status, the
 *   OriginateResponse Reason or the hang-up cause (busy, no_answer,
 *   congestion, canceled, failed; 10e: CONGESTION, cause 19 with no
 *   DialEnd). hangup.cause is the first cause other than 0 and 26; `by` the
 *   party that asked first (caller or callee), or system for timeouts and
 *   network causes.
 */
#include "call/model.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/list.h"
#include "core/log.h"

enum call_state { ST_CREATED, ST_RINGING, ST_ANSWERED };

#define CALL_LEGS_MAX 128 /* channels followed per call */

struct leg {
    char *uniqueid, *channel, *party;
    const char *role;
    char state[16];
    int gone;
    int loser; /* answered elsewhere, or cancelled */
    int seen;  /* in the snapshot being applied */
    int stale; /* nothing heard of it since AMI was reconnected */
};

struct call {
    char *id;
    struct call *prev, *next; /* the live list, oldest first */
    struct call *hnext;       /* hash chain */
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
    int lost;               /* ended while AMI was down: no hang-up was seen */
    int seen;               /* in the snapshot being applied */
    int stale;              /* nothing heard of it since AMI was reconnected */
    int adopted;            /* found in a snapshot, not seen beginning */
    uint64_t snap_answered; /* a snapshot showed two parties up */
    const char *direction;
    uint64_t started, answered_at, ended_at;
    json_t *origination, *variables, *transfer;
    char *transferred_from, *transferred_to; /* the other call of a transfer between two */
};

struct expect {
    char *id;
    json_t *origination, *variables;
    uint64_t at;
    struct expect *next;
};

struct call_model {
    char *server;
    char **trunks;
    size_t ntrunks, max_live;
    call_emit_fn emit;
    void *ud;
    struct call *head, *tail;
    struct call **buckets;
    size_t nbuckets, live;
    uint64_t seq, created, ended, untracked;
    struct expect *expects;
    size_t nexpects;
    int marked;       /* AMI was reconnected, the snapshot is awaited */
    char **ended_ids; /* calls ended since then (a snapshot may still list them) */
    size_t nended_ids;
};

#define CALL_ENDED_IDS_MAX 1024

static void forget_ended_ids(struct call_model *m)
{
    for (size_t i = 0; i < m->nended_ids; i++)
        free(m->ended_ids[i]);
    free(m->ended_ids);
    m->ended_ids = NULL;
    m->nended_ids = 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A caller id or extension worth showing: not empty, not <unknown>, not s. */
static const char *known(const char *s)
{
    if (!s || !*s || !strcmp(s, "<unknown>") || !strcmp(s, "s"))
        return NULL;
    return s;
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static struct call *find(const struct call_model *m, const char *id)
{
    if (!id || !m->nbuckets)
        return NULL;
    for (struct call *c = m->buckets[hash(id) & (m->nbuckets - 1)]; c; c = c->hnext)
        if (!strcmp(c->id, id))
            return c;
    return NULL;
}

static int grow_buckets(struct call_model *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    struct call **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (struct call *c = m->head; c; c = c->next) {
        size_t i = hash(c->id) & (n - 1);
        c->hnext = b[i];
        b[i] = c;
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/* --- the call object -------------------------------------------------------------------------- */

static json_t *time_or_null(uint64_t ms)
{
    if (!ms)
        return json_null();
    char buf[40];
    log_iso_ms(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *secs(uint64_t from, uint64_t to)
{
    return from && to >= from ? json_real((double)(to - from) / 1000.0) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *party(const char *num, const char *name)
{
    return json_pack("{s:o,s:o}", "number", str_or_null(num), "name", str_or_null(name));
}

static const char *state_name(const struct call *c)
{
    if (c->ended_at)
        return "ended";
    return c->state == ST_ANSWERED ? "answered" : "ringing";
}

static const char *outcome(const struct call *c)
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
    if (!strcmp(d, "CANCEL") || c->cause == 16 || c->cause == 0)
        return c->orig_reason > 0 ? "failed" : "canceled";
    return "failed";
}

static const char *hangup_by(const struct call *c)
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

static json_t *call_json(const struct call_model *m, const struct call *c)
{
    json_t *legs = json_array();
    for (size_t i = 0; i < c->nlegs; i++) {
        const struct leg *l = &c->legs[i];
        json_array_append_new(legs, json_pack("{s:s,s:s,s:s,s:s}", "id", l->uniqueid, "channel",
                                              l->channel, "role", l->role, "state",
                                              l->gone ? "Hungup" : l->state));
    }
    json_t *ans = json_null();
    if (c->ans_channel)
        ans = json_pack("{s:s,s:o,s:o,s:o}", "channel", c->ans_channel, "number",
                        str_or_null(c->ans_num), "name", str_or_null(c->ans_name), "queue_member",
                        str_or_null(c->ans_member));
    uint64_t end = c->ended_at;
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                  c->id, "server", m->server, "state", state_name(c), "direction", c->direction,
                  "from", party(c->from_num, c->from_name), "to", party(c->dialed, NULL), "dialed",
                  str_or_null(c->dialed), "queue", str_or_null(c->queue), "answered_by", ans,
                  "on_hold", c->held, "legs", legs, "started_at", time_or_null(c->started),
                  "answered_at", time_or_null(c->answered_at), "ended_at", time_or_null(end),
                  "ring_s", secs(c->started, c->answered_at ? c->answered_at : end), "talk_s",
                  c->answered_at ? secs(c->answered_at, end) : json_null(), "duration_s",
                  secs(c->started, end));
    if (!j)
        return NULL;
    if (end) {
        json_object_set_new(j, "outcome", json_string(outcome(c)));
        json_object_set_new(j, "hangup",
                            json_pack("{s:i,s:s,s:s}", "cause", c->cause, "cause_text",
                                      c->cause_text, "by", hangup_by(c)));
    } else {
        json_object_set_new(j, "outcome", json_null());
        json_object_set_new(j, "hangup", json_null());
    }
    json_object_set_new(j, "transfer", c->transfer ? json_deep_copy(c->transfer) : json_null());
    json_object_set_new(j, "transferred_from", str_or_null(c->transferred_from));
    json_object_set_new(j, "transferred_to", str_or_null(c->transferred_to));
    json_object_set_new(j, "origination",
                        c->origination ? json_deep_copy(c->origination) : json_null());
    json_object_set_new(j, "variables",
                        c->variables ? json_deep_copy(c->variables) : json_object());
    return j;
}

static void emit(struct call_model *m, struct call *c, const char *type, uint64_t now)
{
    char when[40];
    log_iso_ms(now, when, sizeof(when));
    json_t *call = call_json(m, c);
    json_t *ev = call ? json_pack("{s:s,s:s,s:I,s:s,s:o}", "type", type, "server", m->server, "seq",
                                  (json_int_t)++m->seq, "time", when, "call", call)
                      : NULL;
    if (ev && m->emit)
        m->emit(m->ud, type, ev);
    json_decref(ev);
}

/* --- calls and legs --------------------------------------------------------------------------- */

static void call_free(struct call *c)
{
    for (size_t i = 0; i < c->nlegs; i++) {
        free(c->legs[i].uniqueid);
        free(c->legs[i].channel);
        free(c->legs[i].party);
    }
    free(c->legs);
    free(c->id);
    free(c->from_num);
    free(c->from_name);
    free(c->dialed);
    free(c->queue);
    free(c->ans_channel);
    free(c->ans_num);
    free(c->ans_name);
    free(c->ans_member);
    json_decref(c->origination);
    json_decref(c->variables);
    json_decref(c->transfer);
    free(c->transferred_from);
    free(c->transferred_to);
    free(c);
}

static void unlink_call(struct call_model *m, struct call *c)
{
    struct call **pp = &m->buckets[hash(c->id) & (m->nbuckets - 1)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    LIST_UNLINK2(m->head, m->tail, c);
    m->live--;
}

/* The party of a channel: a Local channel's two halves are one. */
static char *party_of(const char *channel)
{
    const char *semi = !strncmp(channel, "Local/", 6) ? strrchr(channel, ';') : NULL;
    return semi ? strndup(channel, (size_t)(semi - channel)) : strdup(channel);
}

static struct leg *leg_by_uniqueid(struct call *c, const char *uid)
{
    for (size_t i = 0; uid && i < c->nlegs; i++)
        if (!strcmp(c->legs[i].uniqueid, uid))
            return &c->legs[i];
    return NULL;
}

static struct leg *leg_by_channel(struct call *c, const char *ch)
{
    for (size_t i = 0; ch && i < c->nlegs; i++)
        if (!strcmp(c->legs[i].channel, ch))
            return &c->legs[i];
    return NULL;
}

/* The call that has a leg with this Uniqueid (a walk over the live calls:
 * only for events whose Linkedid does not lead to their leg). */
static struct call *call_of_leg(const struct call_model *m, const char *uid, struct leg **leg)
{
    for (struct call *c = m->head; c; c = c->next) {
        struct leg *l = leg_by_uniqueid(c, uid);
        if (l) {
            *leg = l;
            return c;
        }
    }
    return NULL;
}

static struct leg *add_leg(struct call *c, const char *uid, const char *channel, const char *state)
{
    struct leg *l = leg_by_uniqueid(c, uid);
    if (l)
        return l;
    if (c->nlegs >= CALL_LEGS_MAX)
        return NULL; /* a queue ringing its agents for an hour: not followed past this */
    if (c->nlegs == c->caplegs) {
        size_t n = c->caplegs ? c->caplegs * 2 : 4;
        struct leg *nl = realloc(c->legs, n * sizeof(*nl));
        if (!nl)
            return NULL;
        c->legs = nl;
        c->caplegs = n;
    }
    l = &c->legs[c->nlegs];
    memset(l, 0, sizeof(*l));
    l->uniqueid = strdup(uid);
    l->channel = strdup(channel);
    l->party = party_of(channel);
    if (!l->uniqueid || !l->channel || !l->party) {
        free(l->uniqueid);
        free(l->channel);
        free(l->party);
        return NULL;
    }
    snprintf(l->state, sizeof(l->state), "%s", state ? state : "Down");
    /* the caller; the other half of a Local channel; callee and agent
     * are given by DialBegin and AgentConnect */
    l->role = c->nlegs == 0 ? "caller" : "local";
    c->nlegs++;
    return l;
}

static int is_trunk(const struct call_model *m, const char *channel)
{
    for (size_t i = 0; channel && i < m->ntrunks; i++)
        if (!fnmatch(m->trunks[i], channel, 0))
            return 1;
    return 0;
}

static struct expect *take_expect(struct call_model *m, const char *id)
{
    for (struct expect **pp = &m->expects; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id)) {
            struct expect *e = *pp;
            *pp = e->next;
            m->nexpects--;
            return e;
        }
    return NULL;
}

static void expect_free(struct expect *e)
{
    free(e->id);
    json_decref(e->origination);
    json_decref(e->variables);
    free(e);
}

static struct call *create(struct call_model *m, const struct ami_msg *ev, const char *id,
                           uint64_t now)
{
    if (m->live >= m->max_live) {
        m->untracked++;
        return NULL;
    }
    if (m->live + 1 > m->nbuckets && grow_buckets(m) != 0)
        return NULL;
    struct call *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(id))) {
        free(c);
        return NULL;
    }
    const char *ch = ami_msg_get(ev, "Channel");
    c->from_num = dup_or_null(known(ami_msg_get(ev, "CallerIDNum")));
    c->from_name = dup_or_null(known(ami_msg_get(ev, "CallerIDName")));
    c->dialed = dup_or_null(known(ami_msg_get(ev, "Exten")));
    c->orig_reason = -1;
    c->started = now;
    c->direction = is_trunk(m, ch) ? "inbound" : "internal";
    struct expect *e = take_expect(m, id);
    if (e) {
        c->direction = "originated";
        c->origination = e->origination;
        c->variables = e->variables;
        e->origination = e->variables = NULL;
        expect_free(e);
    }
    LIST_PUSH_BACK(m->head, m->tail, c);
    size_t i = hash(id) & (m->nbuckets - 1);
    c->hnext = m->buckets[i];
    m->buckets[i] = c;
    m->live++;
    m->created++;
    (void)now; /* call.created goes out once its first leg is in (the caller decides) */
    return c;
}

static void ringing(struct call_model *m, struct call *c, uint64_t now)
{
    if (c->state != ST_CREATED)
        return;
    c->state = ST_RINGING;
    emit(m, c, "call.ringing", now);
}

static void answered(struct call_model *m, struct call *c, uint64_t now)
{
    if (c->state == ST_ANSWERED)
        return;
    if (c->state == ST_CREATED) /* every answered call rang first, for the listener */
        ringing(m, c, now);
    c->state = ST_ANSWERED;
    c->answered_at = now;
    emit(m, c, "call.answered", now);
}

/* The PBX answered (the caller leg Up, an Originate answered): a person
 * has not, yet. It counts as the answer only for a call that ends without
 * a Dial or a queue (an application, an IVR, voicemail). */
static void pbx_answer(struct call *c, uint64_t now)
{
    if (!c->pbx_answered)
        c->pbx_answered = now;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = dup_or_null(v);
}

static int all_gone(const struct call *c)
{
    for (size_t i = 0; i < c->nlegs; i++)
        if (!c->legs[i].gone)
            return 0;
    return c->nlegs > 0;
}

static void end_call(struct call_model *m, struct call *c, uint64_t now)
{
    if (c->state != ST_ANSWERED && c->snap_answered) {
        /* the list showed two parties up, and the answer itself was lost */
        answered(m, c, now);
        c->answered_at = c->snap_answered;
    } else if (c->state != ST_ANSWERED && c->pbx_answered && !c->dialled && !c->queue) {
        answered(m, c, now);
        c->answered_at = c->pbx_answered;
    }
    c->ended_at = now;
    m->ended++;
    if (m->marked && m->nended_ids < CALL_ENDED_IDS_MAX) {
        char **v = realloc(m->ended_ids, (m->nended_ids + 1) * sizeof(*v));
        if (v) {
            m->ended_ids = v;
            if ((v[m->nended_ids] = strdup(c->id)))
                m->nended_ids++;
        }
    }
    emit(m, c, "call.ended", now);
    unlink_call(m, c);
    call_free(c);
}

/* Who asked to hang up first: the caller's party or the answering one. */
static void note_request(struct call *c, const struct leg *l)
{
    if (c->by || !l || l->loser)
        return;
    const char *caller = c->nlegs ? c->legs[0].party : NULL;
    if (caller && !strcmp(l->party, caller))
        c->by = "caller";
    else if (c->state == ST_ANSWERED)
        c->by = "callee";
}

static void mark_party_loser(struct call *c, const char *party)
{
    for (size_t i = 0; party && i < c->nlegs; i++)
        if (!strcmp(c->legs[i].party, party))
            c->legs[i].loser = 1;
}

/* --- events ----------------------------------------------------------------------------------- */

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

static struct call *call_of_dest(struct call_model *m, const struct ami_msg *ev)
{
    struct call *c = find(m, ami_msg_get(ev, "DestLinkedid"));
    return c ? c : find(m, ami_msg_get(ev, "Linkedid"));
}

static void on_dial(struct call_model *m, const char *name, const struct ami_msg *ev, uint64_t now)
{
    struct call *c = call_of_dest(m, ev);
    if (!c)
        return;
    const char *caller = ami_msg_get(ev, "Channel");
    const char *dest = ami_msg_get(ev, "DestChannel");
    struct leg *d = leg_by_uniqueid(c, ami_msg_get(ev, "DestUniqueid"));
    if (!d)
        d = leg_by_channel(c, dest);
    const char *status = ami_msg_get(ev, "DialStatus");
    if (!strcmp(name, "DialBegin")) {
        if (caller && d && d != &c->legs[0])
            d->role = "callee";
        if (caller)
            c->dialled = 1;
        if (caller && is_trunk(m, dest) && !strcmp(c->direction, "internal"))
            c->direction = "outbound";
        return;
    }
    if (!strcmp(name, "DialState")) {
        if (status && !strcmp(status, "RINGING"))
            ringing(m, c, now);
        return;
    }
    /* DialEnd */
    if (!status)
        return;
    if (!strcmp(status, "CANCEL") && d) {
        mark_party_loser(c, d->party);
        return;
    }
    if (strcmp(status, "ANSWER") != 0) {
        snprintf(c->dialstatus, sizeof(c->dialstatus), "%s", status);
        return;
    }
    if (!caller) {
        pbx_answer(c, now); /* an Originate's own dial: its channel was answered */
        return;
    }
    if (dest && !c->ans_channel) {
        /* the destination's caller id is the caller's, as presented to it:
         * the answering party is named by its channel */
        set_str(&c->ans_channel, dest);
        char num[80];
        set_str(&c->ans_num, endpoint_of(dest, num, sizeof(num)));
    }
    answered(m, c, now);
}

static void on_hangup(struct call_model *m, struct call *c, const char *name,
                      const struct ami_msg *ev, uint64_t now)
{
    struct leg *l = leg_by_uniqueid(c, ami_msg_get(ev, "Uniqueid"));
    const char *cs = ami_msg_get(ev, "Cause");
    int cause = cs ? atoi(cs) : 0;
    if (l && cause == 26)
        mark_party_loser(c, l->party);
    if (strcmp(name, "Hangup") != 0) {
        note_request(c, l);
        return;
    }
    note_request(c, l);
    if (!c->cause && cause != 0 && cause != 26) {
        c->cause = cause;
        const char *txt = ami_msg_get(ev, "Cause-txt");
        snprintf(c->cause_text, sizeof(c->cause_text), "%s", txt ? txt : "");
    }
    if (l)
        l->gone = 1;
    if (all_gone(c))
        end_call(m, c, now);
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
    struct call *c = find(m, lid);
    if (!c)
        return;
    json_decref(c->transfer);
    if (blind)
        c->transfer = json_pack("{s:s,s:o,s:o,s:o}", "type", "blind", "transferer",
                                str_or_null(ami_msg_get(ev, "TransfererChannel")), "context",
                                str_or_null(ami_msg_get(ev, "Context")), "exten",
                                str_or_null(ami_msg_get(ev, "Extension")));
    else
        c->transfer = json_pack("{s:s,s:o,s:o}", "type", "attended", "transferer",
                                str_or_null(ami_msg_get(ev, "OrigTransfererChannel")), "transferee",
                                str_or_null(ami_msg_get(ev, "TransfereeChannel")));
    /* two calls joined (an attended transfer between calls of their own,
     * not the feature's: 10b2 keeps one Linkedid): each names the other */
    struct call *other = blind ? NULL : find(m, ami_msg_get(ev, "SecondTransfererLinkedid"));
    if (other && other != c) {
        set_str(&c->transferred_to, other->id);
        set_str(&other->transferred_from, c->id);
        emit(m, other, "call.transferred", now);
    }
    emit(m, c, "call.transferred", now);
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
    for (const char *const *n = names; *n; n++)
        if (!strcmp(name, *n))
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
        /* a Failure carries Uniqueid <unknown>: ours are known by their
         * ActionID, others by the requested channel's name */
        const char *uid = ami_msg_get(ev, "Uniqueid"), *resp = ami_msg_get(ev, "Response");
        const char *ch = ami_msg_get(ev, "Channel"), *aid = ami_msg_get(ev, "ActionID");
        struct call *hit = NULL;
        for (struct call *c = m->head; c && aid && !hit; c = c->next) {
            const char *oid = json_string_value(json_object_get(c->origination, "id"));
            if (oid && !strcmp(oid, aid))
                hit = c;
        }
        size_t n = ch ? strlen(ch) : 0;
        for (struct call *c = m->head; c && !hit; c = c->next) {
            if (uid && leg_by_uniqueid(c, uid))
                hit = c;
            else if (!json_is_string(json_object_get(c->origination, "id")) && n && c->nlegs &&
                     !strncmp(c->legs[0].channel, ch, n) && c->legs[0].channel[n] == '-' &&
                     c->state != ST_ANSWERED && c->orig_reason < 0)
                hit = c;
        }
        if (!hit)
            return;
        if (resp && !strcmp(resp, "Success"))
            pbx_answer(hit, now);
        else
            hit->orig_reason = atoi(ami_msg_get(ev, "Reason") ? ami_msg_get(ev, "Reason") : "0");
        return;
    }
    const char *lid = ami_msg_get(ev, "Linkedid");
    if (!lid)
        return;
    struct call *c = find(m, lid);
    if (!strcmp(name, "Newchannel")) {
        const char *uid = ami_msg_get(ev, "Uniqueid"), *ch = ami_msg_get(ev, "Channel");
        if (!uid || !ch)
            return;
        int fresh = !c;
        if (!c && !(c = create(m, ev, lid, now)))
            return;
        struct leg *l = add_leg(c, uid, ch, ami_msg_get(ev, "ChannelStateDesc"));
        if (fresh)
            emit(m, c, "call.created", now); /* with its first leg */
        if (l && l != &c->legs[0] && is_trunk(m, ch) && !strcmp(c->direction, "internal"))
            c->direction = "outbound";
        return;
    }
    const char *uid = ami_msg_get(ev, "Uniqueid");
    struct leg *l = c ? leg_by_uniqueid(c, uid) : NULL;
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
            c->from_num = dup_or_null(known(ami_msg_get(ev, "CallerIDNum")));
        if (!c->from_name)
            c->from_name = dup_or_null(known(ami_msg_get(ev, "CallerIDName")));
    }
    if (!strcmp(name, "Newstate")) {
        const char *st = ami_msg_get(ev, "ChannelStateDesc");
        if (l && st)
            snprintf(l->state, sizeof(l->state), "%s", st);
        if (st && !strcmp(st, "Ringing"))
            ringing(m, c, now);
        else if (st && !strcmp(st, "Up") && l == &c->legs[0])
            pbx_answer(c, now);
    } else if (!strcmp(name, "QueueCallerJoin")) {
        set_str(&c->queue, ami_msg_get(ev, "Queue"));
        ringing(m, c, now);
    } else if (!strcmp(name, "AgentConnect")) {
        /* the member, also when its Dial's answer came first (06a) */
        if (!c->ans_member) {
            const char *dest = ami_msg_get(ev, "DestChannel");
            char num[80];
            set_str(&c->ans_channel, dest ? dest : ami_msg_get(ev, "Interface"));
            set_str(&c->ans_num, dest ? endpoint_of(dest, num, sizeof(num)) : NULL);
            set_str(&c->ans_member, ami_msg_get(ev, "MemberName"));
            struct leg *a = leg_by_uniqueid(c, ami_msg_get(ev, "DestUniqueid"));
            if (a)
                a->role = "agent";
        }
        set_str(&c->queue, ami_msg_get(ev, "Queue"));
        answered(m, c, now);
    } else if (!strcmp(name, "Hold") || !strcmp(name, "Unhold")) {
        int hold = name[0] == 'H';
        if (c->held != hold) {
            c->held = hold;
            emit(m, c, hold ? "call.held" : "call.resumed", now);
        }
    } else if (!strcmp(name, "HangupRequest") || !strcmp(name, "SoftHangupRequest") ||
               !strcmp(name, "Hangup")) {
        on_hangup(m, c, name, ev, now);
    }
}

/* --- the model -------------------------------------------------------------------------------- */

struct call_model *call_model_new(const struct call_model_opts *o, call_emit_fn fn, void *ud)
{
    struct call_model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->server = strdup(o->server ? o->server : "");
    m->max_live = o->max_live ? o->max_live : 10000;
    m->emit = fn;
    m->ud = ud;
    if (o->ntrunks && !(m->trunks = calloc(o->ntrunks, sizeof(char *))))
        goto fail;
    for (size_t i = 0; i < o->ntrunks; i++) {
        if (!(m->trunks[i] = strdup(o->trunks[i])))
            goto fail;
        m->ntrunks++;
    }
    if (!m->server || grow_buckets(m) != 0)
        goto fail;
    return m;
fail:
    call_model_free(m);
    return NULL;
}

void call_model_free(struct call_model *m)
{
    if (!m)
        return;
    while (m->head) {
        struct call *c = m->head;
        unlink_call(m, c);
        call_free(c);
    }
    while (m->expects) {
        struct expect *e = m->expects;
        m->expects = e->next;
        expect_free(e);
    }
    forget_ended_ids(m);
    for (size_t i = 0; i < m->ntrunks; i++)
        free(m->trunks[i]);
    free(m->trunks);
    free(m->buckets);
    free(m->server);
    free(m);
}

int call_model_expect(struct call_model *m, const char *id, json_t *origination, json_t *variables,
                      uint64_t now_ms)
{
    /* forget the stale and the oldest past the cap (the list is newest first) */
    size_t n = 0;
    for (struct expect **pp = &m->expects; *pp;) {
        struct expect *e = *pp;
        if (++n >= CALL_EXPECT_MAX || now_ms - e->at > CALL_EXPECT_TTL_MS) {
            *pp = e->next;
            m->nexpects--;
            expect_free(e);
        } else {
            pp = &e->next;
        }
    }
    /* heard after the call's first event (from another replica): its next
     * events carry it */
    struct call *c = find(m, id);
    if (c) {
        if (c->origination || !origination) {
            json_decref(origination);
            json_decref(variables);
            return 0;
        }
        c->direction = "originated";
        c->origination = origination;
        json_decref(c->variables);
        c->variables = variables;
        return 0;
    }
    struct expect *e = calloc(1, sizeof(*e));
    if (!e || !(e->id = strdup(id))) {
        free(e);
        json_decref(origination);
        json_decref(variables);
        return -ENOMEM;
    }
    e->origination = origination;
    e->variables = variables;
    e->at = now_ms;
    e->next = m->expects;
    m->expects = e;
    m->nexpects++;
    return 0;
}

/* "HH:MM:SS" (CoreShowChannel's Duration) in milliseconds, 0 when not that. */
static uint64_t duration_ms(const char *d)
{
    unsigned h, mi, se;
    if (!d || sscanf(d, "%u:%u:%u", &h, &mi, &se) != 3)
        return 0;
    return ((uint64_t)h * 3600 + mi * 60 + se) * 1000;
}

void call_model_forget(struct call_model *m)
{
    while (m->head) {
        struct call *c = m->head;
        unlink_call(m, c);
        call_free(c);
    }
    forget_ended_ids(m);
    m->marked = 0;
}

void call_model_mark(struct call_model *m)
{
    forget_ended_ids(m);
    m->marked = 1;
    for (struct call *c = m->head; c; c = c->next) {
        c->stale = 1;
        for (size_t i = 0; i < c->nlegs; i++)
            c->legs[i].stale = 1;
    }
}

static int ended_since_mark(const struct call_model *m, const char *id)
{
    for (size_t i = 0; i < m->nended_ids; i++)
        if (!strcmp(m->ended_ids[i], id))
            return 1;
    return 0;
}

void call_model_snapshot(struct call_model *m, struct ami_msg *const *items, size_t n, uint64_t now)
{
    if (!m->marked)
        call_model_mark(m);
    for (struct call *c = m->head; c; c = c->next) {
        c->seen = 0;
        for (size_t i = 0; i < c->nlegs; i++)
            c->legs[i].seen = 0;
    }
    /* each call's first channel (Uniqueid = Linkedid) first: the caller of
     * a call found here is its first channel, not the first one listed */
    for (size_t k = 0; k < 2 * n; k++) {
        const struct ami_msg *it = items[k % n];
        const char *lid = ami_msg_get(it, "Linkedid"), *uid = ami_msg_get(it, "Uniqueid");
        if (lid && uid && (k < n) != !strcmp(lid, uid))
            continue;
        const char *ch = ami_msg_get(it, "Channel"), *st = ami_msg_get(it, "ChannelStateDesc");
        if (!lid || !*lid || !uid || !ch)
            continue;
        struct call *c = find(m, lid);
        int fresh = 0;
        if (!c && ended_since_mark(m, lid))
            continue; /* listed, then hung up before the list came */
        if (!c) {
            /* it began while amibridge was not connected */
            if (!(c = create(m, it, lid, now)))
                continue;
            c->adopted = 1;
            fresh = 1;
        }
        c->seen = 1;
        struct leg *l = leg_by_uniqueid(c, uid);
        if (l && !l->stale)
            continue; /* heard of since the reconnect: newer than this list */
        if (!l)
            l = add_leg(c, uid, ch, st);
        if (fresh)
            emit(m, c, "call.created", now); /* with its first leg */
        if (!l)
            continue;
        l->seen = 1;
        if (st)
            snprintf(l->state, sizeof(l->state), "%s", st);
        /* a call found here started as long ago as its oldest channel */
        uint64_t age = duration_ms(ami_msg_get(it, "Duration"));
        if (c->adopted && age && age < now && now - age < c->started)
            c->started = now - age;
    }
    struct call *next;
    for (struct call *c = m->head; c; c = next) {
        next = c->next;
        if (!c->seen && c->stale) {
            /* its hang-ups happened while amibridge was not connected */
            c->lost = 1;
            c->cause = 0;
            snprintf(c->cause_text, sizeof(c->cause_text), "%s",
                     "ended while amibridge was not connected to AMI");
            for (size_t i = 0; i < c->nlegs; i++)
                c->legs[i].gone = 1;
            end_call(m, c, now);
            continue;
        }
        if (!c->seen)
            continue; /* heard of since the reconnect, not listed yet */
        for (size_t i = 0; i < c->nlegs; i++)
            if (!c->legs[i].seen && c->legs[i].stale)
                c->legs[i].gone = 1;
        if (all_gone(c)) {
            end_call(m, c, now);
            continue;
        }
        /* what it is now: channels of two parties up are talking */
        int ring = 0, two = 0;
        const char *up = NULL;
        for (size_t i = 0; i < c->nlegs; i++) {
            const struct leg *l = &c->legs[i];
            if (l->gone)
                continue;
            ring |= !strcmp(l->state, "Ringing");
            if (!strcmp(l->state, "Up")) {
                if (!up)
                    up = l->party;
                else if (strcmp(up, l->party) != 0)
                    two = 1;
            }
        }
        if (c->state != ST_ANSWERED && two && c->adopted)
            answered(m, c, now); /* nothing better is known of a call found here */
        else if (c->state != ST_ANSWERED && two && !c->snap_answered)
            c->snap_answered = now; /* its answer may still be on its way: see end_call */
        else if (ring)
            ringing(m, c, now);
        else if (up)
            pbx_answer(c, now);
    }
    m->marked = 0;
    forget_ended_ids(m);
}

/* --- export and import (the Redis copy) ------------------------------------------------- */

json_t *call_model_export(const struct call_model *m, const char *id)
{
    const struct call *c = find(m, id);
    if (!c)
        return NULL;
    json_t *legs = json_array();
    for (size_t i = 0; i < c->nlegs; i++)
        json_array_append_new(
            legs, json_pack("{s:b,s:b}", "gone", c->legs[i].gone, "loser", c->legs[i].loser));
    json_t *in =
        json_pack("{s:i,s:b,s:b,s:I,s:I,s:b,s:s,s:i,s:i,s:s,s:o,s:o}", "st", (int)c->state, "held",
                  c->held, "dialled", c->dialled, "pbx", (json_int_t)c->pbx_answered, "snap",
                  (json_int_t)c->snap_answered, "adopted", c->adopted, "dialstatus", c->dialstatus,
                  "orig_reason", c->orig_reason, "cause", c->cause, "cause_text", c->cause_text,
                  "by", str_or_null(c->by), "legs", legs);
    json_t *call = call_json(m, c);
    if (!in || !call) {
        json_decref(in);
        json_decref(call);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "call", call, "model", in);
}

/* "2026-12-04T18:00:12.578Z" in Unix milliseconds, 0 when not that. */
static uint64_t parse_time(json_t *v)
{
    const char *s = json_string_value(v);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    unsigned ms = 0;
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? 0 : (uint64_t)t * 1000 + ms % 1000;
}

static const char *static_of(const char *v, const char *const *choices, const char *otherwise)
{
    for (; v && *choices; choices++)
        if (!strcmp(v, *choices))
            return *choices;
    return otherwise;
}

static char *dup_str(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int call_model_import(struct call_model *m, json_t *exported)
{
    json_t *call = json_object_get(exported, "call"), *in = json_object_get(exported, "model");
    const char *id = json_string_value(json_object_get(call, "id"));
    json_t *legs = json_object_get(call, "legs"), *ilegs = json_object_get(in, "legs");
    if (!id || !json_is_object(in) || !json_is_array(legs) || !json_array_size(legs) ||
        json_array_size(legs) != json_array_size(ilegs))
        return -EINVAL;
    if (find(m, id))
        return 0; /* heard of already: what the events say is newer */
    if (m->live >= m->max_live) {
        m->untracked++;
        return -ENOSPC;
    }
    if (m->live + 1 > m->nbuckets && grow_buckets(m) != 0)
        return -ENOMEM;
    struct call *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(id))) {
        free(c);
        return -ENOMEM;
    }
    static const char *const dirs[] = {"inbound", "outbound", "internal", "originated", NULL};
    static const char *const roles[] = {"caller", "callee", "agent", "local", NULL};
    static const char *const bys[] = {"caller", "callee", NULL};
    c->direction =
        static_of(json_string_value(json_object_get(call, "direction")), dirs, "internal");
    json_int_t st = json_integer_value(json_object_get(in, "st"));
    c->state = st == ST_ANSWERED ? ST_ANSWERED : st == ST_RINGING ? ST_RINGING : ST_CREATED;
    c->held = json_is_true(json_object_get(in, "held"));
    c->dialled = json_is_true(json_object_get(in, "dialled"));
    c->pbx_answered = (uint64_t)json_integer_value(json_object_get(in, "pbx"));
    c->snap_answered = (uint64_t)json_integer_value(json_object_get(in, "snap"));
    c->adopted = json_is_true(json_object_get(in, "adopted"));
    const char *ds = json_string_value(json_object_get(in, "dialstatus"));
    snprintf(c->dialstatus, sizeof(c->dialstatus), "%s", ds ? ds : "");
    c->orig_reason = (int)json_integer_value(json_object_get(in, "orig_reason"));
    c->cause = (int)json_integer_value(json_object_get(in, "cause"));
    const char *ct = json_string_value(json_object_get(in, "cause_text"));
    snprintf(c->cause_text, sizeof(c->cause_text), "%s", ct ? ct : "");
    c->by = static_of(json_string_value(json_object_get(in, "by")), bys, NULL);
    c->from_num = dup_str(json_object_get(json_object_get(call, "from"), "number"));
    c->from_name = dup_str(json_object_get(json_object_get(call, "from"), "name"));
    c->dialed = dup_str(json_object_get(call, "dialed"));
    c->queue = dup_str(json_object_get(call, "queue"));
    json_t *ans = json_object_get(call, "answered_by");
    c->ans_channel = dup_str(json_object_get(ans, "channel"));
    c->ans_num = dup_str(json_object_get(ans, "number"));
    c->ans_name = dup_str(json_object_get(ans, "name"));
    c->ans_member = dup_str(json_object_get(ans, "queue_member"));
    c->started = parse_time(json_object_get(call, "started_at"));
    c->answered_at = parse_time(json_object_get(call, "answered_at"));
    json_t *o = json_object_get(call, "origination"), *v = json_object_get(call, "variables"),
           *t = json_object_get(call, "transfer");
    c->origination = json_is_object(o) ? json_deep_copy(o) : NULL;
    c->variables = json_is_object(v) && json_object_size(v) ? json_deep_copy(v) : NULL;
    c->transfer = json_is_object(t) ? json_deep_copy(t) : NULL;
    c->transferred_from = dup_str(json_object_get(call, "transferred_from"));
    c->transferred_to = dup_str(json_object_get(call, "transferred_to"));
    c->stale = 1; /* it may have ended while nobody followed it */
    for (size_t i = 0; i < json_array_size(legs); i++) {
        json_t *lj = json_array_get(legs, i), *li = json_array_get(ilegs, i);
        const char *uid = json_string_value(json_object_get(lj, "id"));
        const char *ch = json_string_value(json_object_get(lj, "channel"));
        struct leg *l = uid && ch ? add_leg(c, uid, ch, NULL) : NULL;
        if (!l)
            continue;
        const char *state = json_string_value(json_object_get(lj, "state"));
        snprintf(l->state, sizeof(l->state), "%s",
                 state && strcmp(state, "Hungup") ? state : "Down");
        l->role = static_of(json_string_value(json_object_get(lj, "role")), roles, "local");
        l->gone = json_is_true(json_object_get(li, "gone"));
        l->loser = json_is_true(json_object_get(li, "loser"));
        l->stale = 1;
    }
    if (!c->nlegs || !c->started) {
        call_free(c);
        return -EINVAL;
    }
    LIST_PUSH_BACK(m->head, m->tail, c);
    size_t i = hash(id) & (m->nbuckets - 1);
    c->hnext = m->buckets[i];
    m->buckets[i] = c;
    m->live++;
    return 0;
}

void call_model_origination_id(struct call_model *m, const char *call_id, const char *id)
{
    struct call *c = find(m, call_id);
    json_t *o = c ? c->origination : NULL;
    for (struct expect *e = m->expects; !c && e; e = e->next)
        if (!strcmp(e->id, call_id))
            o = e->origination;
    if (json_is_object(o) && !json_is_string(json_object_get(o, "id")))
        json_object_set_new(o, "id", json_string(id));
}

json_t *call_model_live(const struct call_model *m)
{
    json_t *a = json_array();
    for (const struct call *c = m->head; a && c; c = c->next)
        json_array_append_new(a, call_json(m, c));
    return a;
}

json_t *call_model_get(const struct call_model *m, const char *id)
{
    const struct call *c = find(m, id);
    return c ? call_json(m, c) : NULL;
}

void call_model_stats(const struct call_model *m, struct call_model_stats *st)
{
    st->live = m->live;
    st->created = m->created;
    st->ended = m->ended;
    st->untracked = m->untracked;
}
