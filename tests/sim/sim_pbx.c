/* sim_pbx: channels, the demo dialplan, Dial(), Queue(), Originate and the
 * events they produce.
 *
 * Each flow emits its events in the order of the capture that shows it:
 *   Originate of a Local channel          04c, 04d, 08a
 *   busy / congestion                     04d
 *   Queue(sales) with ringall              06a
 *   Dial(Local/600@demo) + UserEvent       06b
 *   AMI Hangup, Redirect                   05e, 05d
 *   core restart now                       08a
 * Cross-thread races in Asterisk (where OriginateResponse and
 * DeviceStateChange land) are resolved to one fixed order.
 */
#include "sim/sim_pbx.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PBX_ANSWER_MEDIA_MS          500.0 /* Answer() waits this long for media on a Local channel */
#define PBX_CAUSE_NORMAL             16
#define PBX_CAUSE_BUSY               17
#define PBX_CAUSE_NO_ANSWER          19
#define PBX_CAUSE_ANSWERED_ELSEWHERE 26
#define PBX_CAUSE_CONGESTION         34
#define PBX_SOFTHANGUP_APPUNLOAD     16 /* the SoftHangupRequest of a dialplan that ends */
#define PBX_REASON_FAILED            0
#define PBX_REASON_RINGING           3
#define PBX_REASON_ANSWERED          4
#define PBX_REASON_BUSY              5
#define PBX_REASON_CONGESTION        8
#define PBX_MAX_VARS                 64 /* Originate Variable headers applied */

/* ---- the dialplan of asterisk-conf/extensions.conf ----------------------- */

struct dp_prio {
    const char *exten;
    int prio;
    const char *app;
    const char *data;
    int line;
};

static const struct dp_prio dp_demo[] = {
    {"100", 1, "NoOp", "short call", 12},
    {"100", 2, "Answer", "", 13},
    {"100", 3, "Wait", "3", 14},
    {"100", 4, "Hangup", "", 15},
    {"150", 1, "Answer", "", 18},
    {"150", 2, "Hangup", "", 19},
    {"200", 1, "NoOp", "long call", 22},
    {"200", 2, "Answer", "", 23},
    {"200", 3, "Wait", "30", 24},
    {"200", 4, "Hangup", "", 25},
    {"201", 1, "Ringing", "", 29},
    {"201", 2, "Wait", "2", 30},
    {"201", 3, "Answer", "", 31},
    {"201", 4, "Wait", "30", 32},
    {"201", 5, "Hangup", "", 33},
    {"202", 1, "Answer", "", 36},
    {"202", 2, "Wait", "30", 37},
    {"202", 3, "Hangup", "", 38},
    {"250", 1, "NoOp", "redirected here", 81},
    {"250", 2, "Answer", "", 82},
    {"250", 3, "Wait", "10", 83},
    {"250", 4, "Hangup", "", 84},
    {"300", 1, "Busy", "5", 41},
    {"301", 1, "Congestion", "5", 44},
    {"302", 1, "Ringing", "", 47},
    {"302", 2, "Wait", "60", 48},
    {"302", 3, "Hangup", "", 49},
    {"400", 1, "NoOp", "queue caller", 52},
    {"400", 2, "Answer", "", 53},
    {"400", 3, "Queue", "sales,t,,,60", 54},
    {"400", 4, "Hangup", "", 55},
    {"401", 1, "Queue", "sales,t,,,60", 58},
    {"401", 2, "Hangup", "", 59},
    {"600", 1, "Ringing", "", 62},
    {"600", 2, "Wait", "2", 63},
    {"600", 3, "Answer", "", 64},
    {"600", 4, "Wait", "5", 65},
    {"600", 5, "Hangup", "", 66},
    {"700", 1, "NoOp", "dial test", 69},
    {"700", 2, "Dial", "Local/600@demo,20", 70},
    {"700", 3, "Hangup", "", 71},
    {"900", 1, "Answer", "", 74},
    {"900", 2, "Set", "DEMO_VAR=foo", 75},
    {"900", 3, "UserEvent", "DemoEvent,Foo: bar,Answer: 42", 76},
    {"900", 4, "Wait", "1", 77},
    {"900", 5, "Hangup", "", 78},
    {"500", 1, "NoOp", "ring group", 87},
    {"500", 2, "Dial", "Local/201@demo&Local/302@demo,20", 88},
    {"500", 3, "Hangup", "", 89},
    {"h", 1, "NoOp", "hangup handler ${CHANNEL} cause ${HANGUPCAUSE}", 91},
};
#define DP_N       (sizeof(dp_demo) / sizeof(dp_demo[0]))
#define DP_CONTEXT "demo"

/* Extensions compare as pbx.c's ext_cmp_exten(): '-' is eye candy. */
static int exten_eq(const char *a, const char *b)
{
    for (;;) {
        while (*a == '-')
            a++;
        while (*b == '-')
            b++;
        if (*a != *b)
            return 0;
        if (!*a)
            return 1;
        a++;
        b++;
    }
}

/* The only context is demo; h is an extension like the others. */
static const struct dp_prio *dp_find(const char *ctx, const char *exten, int prio)
{
    if (strcmp(ctx, DP_CONTEXT))
        return NULL;
    for (size_t i = 0; i < DP_N; i++)
        if (exten_eq(dp_demo[i].exten, exten) && dp_demo[i].prio == prio)
            return &dp_demo[i];
    return NULL;
}

int pbx_context_exists(const char *ctx)
{
    return !strcmp(ctx, DP_CONTEXT);
}

int pbx_exten_exists(const char *ctx, const char *exten, int prio)
{
    return dp_find(ctx, exten, prio) != NULL;
}

/* ---- small helpers ------------------------------------------------------------- */

long pbx_now_s(void)
{
    return (long)time(NULL);
}

static uint64_t now_ms(struct sim_pbx *p)
{
    return uv_now(sim_loop(p->sim));
}

const char *pbx_or_unknown(const char *s)
{
    return (s && *s) ? s : "<unknown>";
}

/* Bounded copy that never complains about truncation. */
static void cpy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}
#define CPY(dst, src) cpy((dst), sizeof(dst), (src))

const char *pbx_state_desc(int state)
{
    switch (state) {
    case 0:
        return "Down";
    case 1:
        return "Rsrvd";
    case 2:
        return "OffHook";
    case 3:
        return "Dialing";
    case 4:
        return "Ring";
    case 5:
        return "Ringing";
    case 6:
        return "Up";
    case 7:
        return "Busy";
    case 8:
        return "Dialing Offhook";
    case 9:
        return "Pre-ring";
    default:
        return "Unknown";
    }
}

/* ast_cause2str() for the causes the flows use. */
static const char *cause_txt(int cause)
{
    switch (cause) {
    case 0:
        return "Unknown";
    case 1:
        return "Unallocated (unassigned) number";
    case 16:
        return "Normal Clearing";
    case 17:
        return "User busy";
    case 18:
        return "No user responding";
    case 19:
        return "User alerting, no answer";
    case 21:
        return "Call Rejected";
    case 26:
        return "Answered elsewhere";
    case 27:
        return "Destination out of order";
    case 31:
        return "Normal, unspecified";
    case 34:
        return "Circuit/channel congestion";
    case 38:
        return "Network out of order";
    case 41:
        return "Temporary failure";
    case 127:
        return "Interworking, unspecified";
    default:
        return "Unknown";
    }
}

/* ---- timers that outlive nothing they point to -------------------------------- */

typedef void (*pbx_timer_fn)(struct sim_pbx *p, void *arg);

struct pbx_timer {
    uv_timer_t h;
    struct sim_pbx *p;
    pbx_timer_fn cb;
    void *arg;
    struct pbx_timer **owner;
};

/* Timer memory goes when libuv is done with the handle. */
static void ptimer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* One-shot: the owner forgets the timer before the callback runs; deferred work runs after it. */
static void ptimer_fire(uv_timer_t *h)
{
    struct pbx_timer *t = h->data;
    if (t->owner)
        *t->owner = NULL;
    struct sim_pbx *p = t->p;
    pbx_timer_fn cb = t->cb;
    void *arg = t->arg;
    uv_close((uv_handle_t *)h, ptimer_closed);
    cb(p, arg);
    pbx_drain(p);
}

/* Safe on a NULL slot; the owner's pointer is cleared. */
static void ptimer_cancel(struct pbx_timer **owner)
{
    struct pbx_timer *t = *owner;
    if (!t)
        return;
    *owner = NULL;
    t->owner = NULL;
    uv_timer_stop(&t->h);
    uv_close((uv_handle_t *)&t->h, ptimer_closed);
}

static void ptimer_start(struct sim_pbx *p, struct pbx_timer **owner, uint64_t ms, pbx_timer_fn cb,
                         void *arg)
{
    ptimer_cancel(owner);
    struct pbx_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return;
    t->p = p;
    t->cb = cb;
    t->arg = arg;
    t->owner = owner;
    t->h.data = t;
    uv_timer_init(sim_loop(p->sim), &t->h);
    uv_timer_start(&t->h, ptimer_fire, ms, 0);
    *owner = t;
}

/* Every dialplan wait, ring and timeout goes through --time-scale. */
static uint64_t scaled(struct sim_pbx *p, double ms)
{
    return sim_scaled_ms(p->sim, ms);
}

/* ---- deferred work ---------------------------------------------------------------- */

typedef void (*pbx_soon_fn)(struct sim_pbx *p, struct pbx_chan *c);

struct pbx_soon {
    struct pbx_soon *next;
    pbx_soon_fn fn;
    struct pbx_chan *c;
    struct sim_session *s;
};

/* Flows keep a channel alive while they still print it, even after its hangup. */
static void chan_ref(struct pbx_chan *c)
{
    if (c)
        c->refs++;
}

static void reaper_kick(struct sim_pbx *p);

static void chan_unref(struct pbx_chan *c)
{
    if (c && --c->refs == 0 && c->dead)
        reaper_kick(c->p);
}

/* Run `fn(c)` once the current flow has finished (Asterisk would have done
 * it on another thread a moment later). */
static void soon(struct sim_pbx *p, pbx_soon_fn fn, struct pbx_chan *c)
{
    struct pbx_soon *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->fn = fn;
    w->c = c;
    chan_ref(c);
    if (p->soon_tail)
        p->soon_tail->next = w;
    else
        p->soon_head = w;
    p->soon_tail = w;
}

/* A sync Originate's session resumes only after the flow that answered it. */
static void soon_unblock(struct sim_pbx *p, struct sim_session *s)
{
    struct pbx_soon *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->s = s;
    sim_session_ref(s);
    if (p->soon_tail)
        p->soon_tail->next = w;
    else
        p->soon_head = w;
    p->soon_tail = w;
}

void pbx_drain(struct sim_pbx *p)
{
    if (!p || p->draining)
        return;
    p->draining = 1;
    while (p->soon_head) {
        struct pbx_soon *w = p->soon_head;
        p->soon_head = w->next;
        if (!p->soon_head)
            p->soon_tail = NULL;
        if (w->s) {
            sim_session_unblock(w->s);
            sim_session_unref(w->s);
        } else {
            if (!w->c || !w->c->dead)
                w->fn(p, w->c);
            chan_unref(w->c);
        }
        free(w);
    }
    p->draining = 0;
}

/* ---- events ------------------------------------------------------------------------- */

void pbx_chan_keys(struct strbuf *sb, const char *pfx, const struct pbx_chan *c)
{
    char k[64];
#define K(name) (snprintf(k, sizeof(k), "%s%s", pfx, name), k)
    sim_kv(sb, K("Channel"), c->name);
    sim_kvf(sb, K("ChannelState"), "%d", c->state);
    sim_kv(sb, K("ChannelStateDesc"), pbx_state_desc(c->state));
    sim_kv(sb, K("CallerIDNum"), pbx_or_unknown(c->cid_num));
    sim_kv(sb, K("CallerIDName"), pbx_or_unknown(c->cid_name));
    sim_kv(sb, K("ConnectedLineNum"), pbx_or_unknown(c->col_num));
    sim_kv(sb, K("ConnectedLineName"), pbx_or_unknown(c->col_name));
    sim_kv(sb, K("Language"), "en");
    sim_kv(sb, K("AccountCode"), "");
    sim_kv(sb, K("Context"), c->context);
    sim_kv(sb, K("Exten"), c->exten);
    sim_kvf(sb, K("Priority"), "%d", c->priority);
    sim_kv(sb, K("Uniqueid"), c->uniqueid);
    sim_kv(sb, K("Linkedid"), c->linkedid);
#undef K
}

/* The channel keys in an event. */
static void blk(struct sim_ev *e, const char *pfx, const struct pbx_chan *c)
{
    pbx_chan_keys(&e->sb, pfx, c);
}

/* Newchannel, Newstate, NewConnectedLine: the channel block and nothing else. */
static void ev_chan(struct sim_pbx *p, const char *name, const struct pbx_chan *c)
{
    struct sim_ev e;
    sim_ev_begin(&e, name, SIM_EV_CALL);
    blk(&e, "", c);
    sim_ev_end(p->sim, &e);
}

/* A caller id without a number is presented as unavailable (10b2). */
static void ev_newcallerid(struct sim_pbx *p, const struct pbx_chan *c)
{
    struct sim_ev e;
    sim_ev_begin(&e, "NewCallerid", SIM_EV_CALL);
    blk(&e, "", c);
    sim_ev_kv(&e, "CID-CallingPres",
              c->cid_num[0] ? "0 (Presentation Allowed, Not Screened)" : "67 (Number Unavailable)");
    sim_ev_end(p->sim, &e);
}

static void ev_cause(struct sim_pbx *p, const char *name, const struct pbx_chan *c, int cause)
{
    struct sim_ev e;
    sim_ev_begin(&e, name, SIM_EV_CALL);
    blk(&e, "", c);
    sim_ev_kvf(&e, "Cause", "%d", cause);
    sim_ev_end(p->sim, &e);
}

static void ev_hangup(struct sim_pbx *p, const struct pbx_chan *c, int cause)
{
    struct sim_ev e;
    sim_ev_begin(&e, "Hangup", SIM_EV_CALL);
    blk(&e, "", c);
    sim_ev_kvf(&e, "Cause", "%d", cause);
    sim_ev_kv(&e, "Cause-txt", cause_txt(cause));
    sim_ev_end(p->sim, &e);
}

/* A global (no channel) prints "Channel: none" and "Uniqueid: none". */
static void ev_varset(struct sim_pbx *p, const struct pbx_chan *c, const char *var,
                      const char *value)
{
    struct sim_ev e;
    sim_ev_begin(&e, "VarSet", SIM_EV_DIALPLAN);
    if (c) {
        blk(&e, "", c);
    } else {
        sim_ev_kv(&e, "Channel", "none");
        sim_ev_kv(&e, "Uniqueid", "none");
    }
    sim_ev_kv(&e, "Variable", var);
    sim_ev_kv(&e, "Value", value);
    sim_ev_end(p->sim, &e);
}

static void ev_varset_num(struct sim_pbx *p, const struct pbx_chan *c, const char *var, long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", v);
    ev_varset(p, c, var, buf);
}

/* DialBegin/DialState/DialEnd; an Originate has no caller block. */
static void ev_dial(struct sim_pbx *p, const char *name, const struct pbx_chan *caller,
                    const struct pbx_chan *dest, const char *key, const char *value)
{
    struct sim_ev e;
    sim_ev_begin(&e, name, SIM_EV_CALL);
    if (caller)
        blk(&e, "", caller);
    blk(&e, "Dest", dest);
    sim_ev_kv(&e, key, value);
    sim_ev_end(p->sim, &e);
}

static void ev_localbridge(struct sim_pbx *p, const struct pbx_chan *l1, const struct pbx_chan *l2)
{
    struct sim_ev e;
    sim_ev_begin(&e, "LocalBridge", SIM_EV_CALL);
    blk(&e, "LocalOne", l1);
    blk(&e, "LocalTwo", l2);
    sim_ev_kv(&e, "Context", l1->lctx);
    sim_ev_kv(&e, "Exten", l1->lexten);
    sim_ev_kv(&e, "LocalOptimization", "Yes");
    sim_ev_end(p->sim, &e);
}

/* The 7 keys of ast_manager_build_bridge_state_string() for a basic bridge of n channels,
 * with an optional prefix (Orig, Second, To, From). */
static void bridge_blk(struct sim_ev *e, const char *pfx, const struct pbx_bridge *b, int n)
{
    char k[64];
#define K(name) (snprintf(k, sizeof(k), "%sBridge%s", pfx, name), k)
    sim_ev_kv(e, K("Uniqueid"), b->uuid);
    sim_ev_kv(e, K("Type"), "basic");
    sim_ev_kv(e, K("Technology"), "simple_bridge");
    sim_ev_kv(e, K("Creator"), "<unknown>");
    sim_ev_kv(e, K("Name"), "<unknown>");
    sim_ev_kvf(e, K("NumChannels"), "%d", n);
    sim_ev_kv(e, K("VideoSourceMode"), "none");
#undef K
}

static void ev_bridge(struct sim_pbx *p, const char *name, const struct pbx_bridge *b, int n,
                      const struct pbx_chan *c)
{
    struct sim_ev e;
    sim_ev_begin(&e, name, SIM_EV_CALL);
    bridge_blk(&e, "", b, n);
    if (c)
        blk(&e, "", c);
    sim_ev_end(p->sim, &e);
}

/* Hold/Unhold (bridge_channel.c): the channel that put the call on hold. */
static void ev_hold(struct sim_pbx *p, const char *name, const struct pbx_chan *c)
{
    ev_chan(p, name, c);
}

/* A DTMF digit the channel read (channel.c send_dtmf_end_event()); Atxfer's digits are
 * queued as END frames only, so the duration is 0 (10b2). */
static void ev_dtmf_end(struct sim_pbx *p, const struct pbx_chan *c, char digit)
{
    struct sim_ev e;
    sim_ev_begin(&e, "DTMFEnd", SIM_EV_DTMF);
    blk(&e, "", c);
    sim_ev_kvf(&e, "Digit", "%c", digit);
    sim_ev_kv(&e, "DurationMs", "0");
    sim_ev_kv(&e, "Direction", "Received");
    sim_ev_end(p->sim, &e);
}

static void ev_newexten(struct sim_pbx *p, struct pbx_chan *c)
{
    struct sim_ev e;
    sim_ev_begin(&e, "Newexten", SIM_EV_DIALPLAN);
    blk(&e, "", c);
    sim_ev_kv(&e, "Extension", c->exten);
    sim_ev_kv(&e, "Application", c->appl);
    sim_ev_kv(&e, "AppData", c->data);
    sim_ev_end(p->sim, &e);
}

/* Newexten goes out when the application is set for the first time or the
 * context/extension/priority changed since the last one (stasis' CEP rule). */
static void publish_exten(struct pbx_chan *c)
{
    if (!c->appl[0])
        return;
    if (c->pub_appl_set && !strcmp(c->pub_context, c->context) && !strcmp(c->pub_exten, c->exten) &&
        c->pub_priority == c->priority)
        return;
    c->pub_appl_set = 1;
    CPY(c->pub_context, c->context);
    CPY(c->pub_exten, c->exten);
    c->pub_priority = c->priority;
    ev_newexten(c->p, c);
}

void pbx_ev_member(struct sim_pbx *p, const char *event, const struct pbx_queue *q,
                   const struct pbx_member *m)
{
    struct sim_ev e;
    sim_ev_begin(&e, event, SIM_EV_AGENT);
    sim_ev_kv(&e, "Queue", q->name);
    sim_ev_kv(&e, "MemberName", m->membername);
    sim_ev_kv(&e, "Interface", m->interface);
    sim_ev_kv(&e, "StateInterface", m->state_interface);
    sim_ev_kv(&e, "Membership", m->dynamic ? "dynamic" : "static");
    sim_ev_kvf(&e, "Penalty", "%d", m->penalty);
    sim_ev_kvf(&e, "CallsTaken", "%d", m->calls);
    sim_ev_kvf(&e, "LastCall", "%ld", m->lastcall);
    sim_ev_kvf(&e, "LastPause", "%ld", m->lastpause);
    sim_ev_kvf(&e, "LoginTime", "%ld", m->logintime);
    sim_ev_kvf(&e, "InCall", "%d", m->incall);
    sim_ev_kvf(&e, "Status", "%d", m->status);
    sim_ev_kvf(&e, "Paused", "%d", m->paused);
    sim_ev_kv(&e, "PausedReason", m->reason);
    sim_ev_kvf(&e, "Ringinuse", "%d", m->ringinuse);
    sim_ev_kvf(&e, "Wrapuptime", "%d", m->wrapuptime);
    sim_ev_end(p->sim, &e);
}

/* ---- device states ------------------------------------------------------------------ */

/* Cached device states (Queue:*), listed by DeviceStateList. */
void pbx_devstate_set(struct sim_pbx *p, const char *device, const char *state, int emit)
{
    struct pbx_devstate_entry *d;
    for (d = p->devstates; d; d = d->next)
        if (!strcmp(d->device, device))
            break;
    if (!d) {
        d = calloc(1, sizeof(*d));
        if (!d)
            return;
        CPY(d->device, device);
        d->next = p->devstates; /* the capture lists newer entries first */
        p->devstates = d;
    }
    CPY(d->state, state);
    if (emit) {
        struct sim_ev e;
        sim_ev_begin(&e, "DeviceStateChange", SIM_EV_CALL);
        sim_ev_kv(&e, "Device", device);
        sim_ev_kv(&e, "State", state);
        sim_ev_end(p->sim, &e);
    }
}

int pbx_member_available(const struct pbx_queue *q, const struct pbx_member *m)
{
    (void)q;
    if (m->paused)
        return 0;
    switch (m->status) {
    case PBX_DEV_NOT_INUSE:
    case PBX_DEV_UNKNOWN:
        return 1;
    case PBX_DEV_INUSE:
    case PBX_DEV_BUSY:
    case PBX_DEV_RINGING:
        return m->ringinuse;
    default:
        return 0;
    }
}

/* Queue:NAME_avail is cached: a DeviceStateChange only when it changes. */
static void queue_set_avail(struct sim_pbx *p, struct pbx_queue *q, int inuse)
{
    if (inuse == q->avail_inuse)
        return;
    q->avail_inuse = inuse;
    char dev[PBX_NAME];
    snprintf(dev, sizeof(dev), "Queue:%s_avail", q->name);
    pbx_devstate_set(p, dev, inuse ? "INUSE" : "NOT_INUSE", 1);
}

static int queue_any_available(const struct pbx_queue *q)
{
    int any = 0;
    for (int i = 0; i < q->nmembers; i++)
        any |= pbx_member_available(q, &q->members[i]);
    return any;
}

/* Queue:NAME_avail as app_queue's device state callback sets it: INUSE once no member is
 * free. */
void pbx_queue_update_avail(struct sim_pbx *p, struct pbx_queue *q)
{
    queue_set_avail(p, q, !queue_any_available(q));
}

/* After one member was added, paused or unpaused (app_queue.c): NOT_INUSE when that member
 * is free, INUSE when nobody is; otherwise the hint stays (10c: pausing one of two free
 * members changes nothing). */
void pbx_queue_avail_member(struct sim_pbx *p, struct pbx_queue *q, const struct pbx_member *m)
{
    if (pbx_member_available(q, m))
        queue_set_avail(p, q, 0);
    else if (!queue_any_available(q))
        queue_set_avail(p, q, 1);
}

/* After a member was removed: INUSE when nobody is free, otherwise unchanged. */
void pbx_queue_avail_removed(struct sim_pbx *p, struct pbx_queue *q)
{
    if (!queue_any_available(q))
        queue_set_avail(p, q, 1);
}

/* Device state name to the number QueueMember prints. */
static int devstate_num(const char *state)
{
    if (!strcmp(state, "NOT_INUSE"))
        return PBX_DEV_NOT_INUSE;
    if (!strcmp(state, "INUSE"))
        return PBX_DEV_INUSE;
    if (!strcmp(state, "BUSY"))
        return PBX_DEV_BUSY;
    if (!strcmp(state, "RINGING"))
        return PBX_DEV_RINGING;
    if (!strcmp(state, "UNAVAILABLE"))
        return PBX_DEV_UNAVAILABLE;
    return PBX_DEV_UNKNOWN;
}

/* A Local device changed: DeviceStateChange, then the queue members that
 * follow it (QueueMemberStatus) and their queue's availability. */
static void dsc(struct sim_pbx *p, const char *device, const char *state)
{
    struct sim_ev e;
    sim_ev_begin(&e, "DeviceStateChange", SIM_EV_CALL);
    sim_ev_kv(&e, "Device", device);
    sim_ev_kv(&e, "State", state);
    sim_ev_end(p->sim, &e);
    int st = devstate_num(state);
    for (int qi = 0; qi < p->nqueues; qi++) {
        struct pbx_queue *q = &p->queues[qi];
        for (int i = 0; i < q->nmembers; i++) {
            struct pbx_member *m = &q->members[i];
            if (strcasecmp(m->state_interface, device) || m->status == st)
                continue;
            m->status = st;
            pbx_ev_member(p, "QueueMemberStatus", q, m);
            pbx_queue_update_avail(p, q);
        }
    }
}

/* ---- channels --------------------------------------------------------------------------- */

/* Dead channels are freed once no flow holds them. */
static void reaper_fire(uv_timer_t *t)
{
    struct sim_pbx *p = t->data;
    struct pbx_chan **pp = &p->dead;
    while (*pp) {
        struct pbx_chan *c = *pp;
        if (c->refs > 0) {
            pp = &c->dead_next;
            continue;
        }
        *pp = c->dead_next;
        pbx_var_free_all(&c->vars);
        free(c);
    }
}

static void reaper_kick(struct sim_pbx *p)
{
    if (p->reaper)
        uv_timer_start(p->reaper, reaper_fire, 0, 0);
}

void pbx_var_free_all(struct pbx_var **list)
{
    while (*list) {
        struct pbx_var *v = *list;
        *list = v->next;
        free(v->name);
        free(v->value);
        free(v);
    }
}

static struct pbx_var *var_find(struct pbx_var *list, const char *name)
{
    for (; list; list = list->next)
        if (!strcmp(list->name, name))
            return list;
    return NULL;
}

/* Newest first, as Asterisk keeps channel variables. */
static void var_put(struct pbx_var **list, const char *name, const char *value)
{
    struct pbx_var *v = var_find(*list, name);
    if (v) {
        char *nv = strdup(value);
        if (!nv)
            return;
        free(v->value);
        v->value = nv;
        return;
    }
    v = calloc(1, sizeof(*v));
    if (!v)
        return;
    v->name = strdup(name);
    v->value = strdup(value);
    if (!v->name || !v->value) {
        free(v->name);
        free(v->value);
        free(v);
        return;
    }
    v->next = *list;
    *list = v;
}

struct pbx_chan *pbx_chan_find(struct sim_pbx *p, const char *name)
{
    for (struct pbx_chan *c = p->chans; c; c = c->next)
        if (!strcasecmp(c->name, name))
            return c;
    return NULL;
}

/* "epoch.counter", or the ChannelId the Originate gave. */
static void new_uniqueid(struct sim_pbx *p, char *buf, size_t len, const char *given)
{
    if (given && *given)
        snprintf(buf, len, "%s", given);
    else
        snprintf(buf, len, "%ld.%lu", pbx_now_s(), p->uid_seq++);
}

/* Live channels stay in creation order: Status and CoreShowChannels list them so. */
static struct pbx_chan *chan_alloc(struct sim_pbx *p)
{
    struct pbx_chan *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->p = p;
    c->created = sim_now_tv();
    c->prev = p->chans_tail;
    if (p->chans_tail)
        p->chans_tail->next = c;
    else
        p->chans = c;
    p->chans_tail = c;
    p->nchans++;
    return c;
}

/* A Local pair for EXT@CTX; both halves start at CTX/EXT/1. */
static int pair_new(struct sim_pbx *p, const char *exten, const char *ctx, const char *uid1,
                    const char *uid2, const char *linkedid, struct pbx_chan **o1,
                    struct pbx_chan **o2)
{
    struct pbx_chan *l1 = chan_alloc(p);
    struct pbx_chan *l2 = l1 ? chan_alloc(p) : NULL;
    if (!l1 || !l2) {
        if (l1) {
            p->chans_tail = l1->prev;
            if (l1->prev)
                l1->prev->next = NULL;
            else
                p->chans = NULL;
            p->nchans--;
            free(l1);
        }
        return -ENOMEM;
    }
    unsigned long seq = p->chan_seq++;
    struct pbx_chan *legs[2] = {l1, l2};
    for (int i = 0; i < 2; i++) {
        struct pbx_chan *c = legs[i];
        snprintf(c->name, sizeof(c->name), "Local/%s@%s-%08lx;%d", exten, ctx, seq, i + 1);
        c->leg = i + 1;
        c->partner = legs[1 - i];
        c->state = i ? PBX_CS_RING : PBX_CS_DOWN;
        CPY(c->context, ctx);
        CPY(c->exten, exten);
        c->priority = 1;
        CPY(c->lctx, ctx);
        CPY(c->lexten, exten);
        snprintf(c->device, sizeof(c->device), "Local/%s@%s", exten, ctx);
        new_uniqueid(p, c->uniqueid, sizeof(c->uniqueid), i ? uid2 : uid1);
    }
    CPY(l1->linkedid, linkedid && *linkedid ? linkedid : l1->uniqueid);
    CPY(l2->linkedid, l1->linkedid);
    *o1 = l1;
    *o2 = l2;
    return 0;
}

static void orig_free(struct pbx_orig *o);
static void dial_free(struct pbx_dial *op);
static void xfer_free(struct pbx_xfer *x);

/* Forget the channel: it is gone from every list, its timers are off;
 * the memory stays until the flow that killed it has finished. */
/* A leg leaves the Dial() that placed it: no longer a destination (its
 * queue member stops ringing) nor the dial's peer. */
static void dial_forget(struct pbx_chan *c)
{
    struct pbx_dial *op = c->dialed_by;
    if (!op)
        return;
    for (int i = 0; i < op->ndests; i++) {
        if (op->dests[i].l1 == c) {
            if (op->dests[i].member)
                op->dests[i].member->ringing = 0;
            op->dests[i] = op->dests[--op->ndests];
            break;
        }
    }
    if (op->peer == c)
        op->peer = NULL;
    c->dialed_by = NULL;
}

static void chan_destroy(struct pbx_chan *c)
{
    struct sim_pbx *p = c->p;
    if (c->dead)
        return;
    c->dead = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->chans = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        p->chans_tail = c->prev;
    c->prev = c->next = NULL;
    p->nchans--;
    ptimer_cancel(&c->timer);
    ptimer_cancel(&c->abs_timer);
    if (c->running) {
        c->running = 0;
        p->active_calls--;
    }
    if (c->partner && c->partner->partner == c)
        c->partner->partner = NULL;
    c->partner = NULL;
    dial_forget(c);
    if (c->xfer)
        xfer_free(c->xfer);
    if (c->orig) {
        struct pbx_orig *o = c->orig;
        c->orig = NULL;
        o->chan = NULL;
        if (o->done)
            orig_free(o);
    }
    if (c->bridge) {
        struct pbx_bridge *b = c->bridge;
        for (int i = 0; i < b->n; i++) {
            if (b->chans[i] == c) {
                b->chans[i] = b->chans[--b->n];
                break;
            }
        }
        c->bridge = NULL;
        if (b->n == 0)
            free(b);
    }
    if (c->dialop) {
        struct pbx_dial *op = c->dialop;
        c->dialop = NULL;
        dial_free(op);
    }
    c->dead_next = p->dead;
    p->dead = c;
    reaper_kick(p);
}

static void chan_set_app(struct pbx_chan *c, const char *app, const char *data)
{
    CPY(c->appl, app);
    CPY(c->data, data);
}

/* ${CHANNEL} and ${HANGUPCAUSE}: all the demo dialplan needs. */
static void substitute(const struct pbx_chan *c, const char *in, char *out, size_t len)
{
    size_t o = 0;
    while (*in && o + 1 < len) {
        if (in[0] == '$' && in[1] == '{') {
            const char *end = strchr(in, '}');
            if (end) {
                char name[64];
                snprintf(name, sizeof(name), "%.*s", (int)(end - in - 2), in + 2);
                char val[PBX_DATA] = "";
                if (!strcmp(name, "CHANNEL"))
                    CPY(val, c->name);
                else if (!strcmp(name, "HANGUPCAUSE"))
                    snprintf(val, sizeof(val), "%d", c->hangupcause);
                else {
                    struct pbx_var *v = var_find(c->vars, name);
                    if (!v)
                        v = var_find(c->p->globals, name);
                    if (v)
                        CPY(val, v->value);
                }
                o += (size_t)snprintf(out + o, len - o, "%s", val);
                if (o >= len)
                    o = len - 1;
                in = end + 1;
                continue;
            }
        }
        out[o++] = *in++;
    }
    out[o] = '\0';
}

/* The h extension of the demo context, then the channel sits at h/2. */
static void run_h(struct pbx_chan *c)
{
    if (!c->ran_pbx)
        return;
    const struct dp_prio *h = dp_find(c->context[0] ? c->context : DP_CONTEXT, "h", 1);
    if (!h)
        h = dp_find(DP_CONTEXT, "h", 1);
    if (!h)
        return;
    CPY(c->context, DP_CONTEXT);
    CPY(c->exten, "h");
    c->priority = 1;
    char data[PBX_DATA];
    substitute(c, h->data, data, sizeof(data));
    chan_set_app(c, h->app, data);
    publish_exten(c);
    c->priority = 2;
}

/* ---- forward declarations of the flows ------------------------------------------------------ */

static void runner_start(struct pbx_chan *c, const char *ctx, const char *exten, int prio);
static void runner_exec(struct pbx_chan *c);
static void pair_hangup(struct pbx_chan *x, int cause, int shr_cause, int do_shr);
static void orig_success(struct pbx_orig *o);
static void orig_fail(struct pbx_orig *o, int reason);
static void orig_start_l1(struct pbx_chan *l1);
static void dial_start(struct pbx_chan *c, const char *data);
static void runner_enter(struct pbx_chan *c, const char *ctx, const char *exten, int prio);
static void runners_side_by_side(struct pbx_chan **cs, int n);
static void queue_start(struct pbx_chan *c, const char *data);
static void queue_answered(struct sim_pbx *p, struct pbx_chan *l1);
static void dial_answered(struct pbx_chan *l1);
static void dial_ringing_deferred(struct sim_pbx *p, struct pbx_chan *l1);
static void dest_failed(struct pbx_chan *l1, const char *status);
static void stop_activity(struct pbx_chan *c);
static void bridge_peer_gone(struct pbx_chan *z, const char *x_dev, int style_queue);
static void dial_finish_vars(struct pbx_dial *op);
static void queue_leave(struct pbx_dial *op, int abandoned);
static void queue_abandon(struct pbx_dial *op);
static void xfer_target_answered(struct pbx_xfer *x);

#define PBX_DTMF_FEATURE_GAP_MS 160.0 /* between the digits a bridge reads for a feature */
#define PBX_ATXFER_HOLD_MS      100.0 /* from the complete code to the Hold */
#define PBX_DTMF_COLLECT_GAP_MS 60.0  /* between the target digits the transfer collects */

enum pbx_xfer_step {
    PBX_XFER_PLAIN,
    PBX_XFER_CODE,
    PBX_XFER_DIGITS,
    PBX_XFER_DIAL,
    PBX_XFER_CONSULT
};

struct pbx_xfer {
    struct sim_pbx *p;
    struct pbx_chan *transferer, *transferee, *target;
    struct pbx_bridge *first, *second;
    char queued[PBX_DATA];
    size_t pos, code_len;
    char exten[PBX_STR];
    size_t nexten;
    int step;
    struct pbx_timer *timer;
};

static void xfer_complete(struct pbx_xfer *x);

/* ---- the state changes -------------------------------------------------------------------- */

/* A queue leg changes state: app_queue's unpublished changes (context,
 * extension, connected line) go out in the same snapshot, so Newstate shows
 * them and Newexten and NewConnectedLine follow (06a). */
static void queue_leg_newstate(struct pbx_chan *l1, int state)
{
    l1->state = state;
    int pending = l1->pending_pub;
    if (pending) {
        l1->pending_pub = 0;
        CPY(l1->context, l1->pend_context);
        CPY(l1->exten, l1->pend_exten);
        l1->priority = 1;
        CPY(l1->col_num, l1->pend_col_num);
        CPY(l1->col_name, l1->pend_col_name);
    }
    ev_chan(l1->p, "Newstate", l1);
    if (pending) {
        publish_exten(l1);
        ev_chan(l1->p, "NewConnectedLine", l1);
    }
}

/* Answer() on a channel that is not up yet. */
static void chan_answer(struct pbx_chan *c)
{
    struct sim_pbx *p = c->p;
    c->state = PBX_CS_UP;
    ev_chan(p, "Newstate", c);
    struct pbx_chan *l1 = c->leg == 2 ? c->partner : NULL;
    if (!l1 || l1->dead || l1->state == PBX_CS_UP)
        return;
    if (l1->orig && !l1->orig->done) {
        /* 04c: DeviceStateChange, OriginateResponse, Newstate, DialEnd, DeviceStateChange */
        dsc(p, l1->device, "INUSE");
        struct pbx_orig *o = l1->orig;
        if (o->async && !o->or_sent)
            orig_success(o);
        l1->state = PBX_CS_UP;
        ev_chan(p, "Newstate", l1);
        ev_dial(p, "DialEnd", NULL, l1, "DialStatus", "ANSWER");
        o->dial_open = 0;
        dsc(p, l1->device, "INUSE");
        if (!o->done)
            orig_success(o);
        orig_start_l1(l1);
    } else if (l1->dialed_by && l1->dialed_by->kind == PBX_DIAL_QUEUE) {
        if (l1->dialed_by->starting) {
            if (!l1->dialed_by->pending_answer)
                l1->dialed_by->pending_answer = l1;
        } else {
            queue_answered(p, l1);
        }
    } else if (l1->dialed_by) {
        l1->state = PBX_CS_UP;
        ev_chan(p, "Newstate", l1);
        dial_answered(l1);
    } else if (l1->xfer && l1->xfer->target == l1) {
        xfer_target_answered(l1->xfer);
    } else {
        l1->state = PBX_CS_UP;
        ev_chan(p, "Newstate", l1);
    }
}

/* The device state thread learns of the ringing ;1 a moment later (10e). */
static void orig_ringing_dsc(struct sim_pbx *p, struct pbx_chan *l1)
{
    dsc(p, l1->device, "INUSE");
}

/* Ringing() on a ;2: the ;1 rings and whoever dials it hears about it. */
static void chan_ringing(struct pbx_chan *c)
{
    struct sim_pbx *p = c->p;
    struct pbx_chan *l1 = c->leg == 2 ? c->partner : NULL;
    if (!l1 || l1->dead || l1->state == PBX_CS_UP || l1->state == PBX_CS_RINGING)
        return;
    if (l1->dialed_by && l1->dialed_by->kind == PBX_DIAL_QUEUE) {
        queue_leg_newstate(l1, PBX_CS_RINGING);
        return;
    }
    l1->state = PBX_CS_RINGING;
    ev_chan(p, "Newstate", l1);
    if (l1->dialed_by) {
        soon(p, dial_ringing_deferred, l1);
    } else if (l1->orig && !l1->orig->done) {
        /* the originate's dial thread reads the RINGING at once (10e) */
        ev_dial(p, "DialState", NULL, l1, "DialStatus", "RINGING");
        soon(p, orig_ringing_dsc, l1);
    }
}

/* The ;2 of an Originate's pair that failed (busy, congestion, no answer):
 * the originate side drops its ;1 and the ;2 follows (04d). */
static void orig_abandon_pair(struct pbx_chan *l1)
{
    struct sim_pbx *p = l1->p;
    struct pbx_chan *l2 = l1->partner;
    chan_ref(l1);
    chan_ref(l2);
    char dev[PBX_NAME];
    CPY(dev, l1->device);
    if (l2 && !l2->dead) {
        stop_activity(l2);
        ev_cause(p, "HangupRequest", l2, 0);
        ev_cause(p, "SoftHangupRequest", l2, PBX_CAUSE_NORMAL);
        run_h(l2);
        ev_hangup(p, l2, l2->hangupcause);
        chan_destroy(l2);
        dsc(p, dev, "INUSE");
    }
    stop_activity(l1);
    ev_hangup(p, l1, 0);
    chan_destroy(l1);
    dsc(p, dev, "NOT_INUSE");
    dsc(p, dev, "NOT_INUSE");
    chan_unref(l1);
    chan_unref(l2);
}

/* Busy()/Congestion() on a ;2. */
static void chan_fail_signal(struct pbx_chan *c, int busy)
{
    struct sim_pbx *p = c->p;
    c->hangupcause = busy ? PBX_CAUSE_BUSY : PBX_CAUSE_CONGESTION;
    /* indicate_busy()/indicate_congestion(): both leave a channel that is not up in
     * state Busy (10e) */
    if (c->state != PBX_CS_UP) {
        c->state = PBX_CS_BUSY;
        ev_chan(p, "Newstate", c);
    }
    struct pbx_chan *l1 = c->leg == 2 ? c->partner : NULL;
    if (!l1 || l1->dead || l1->state == PBX_CS_UP)
        return;
    if (l1->orig && !l1->orig->done) {
        struct pbx_orig *o = l1->orig;
        orig_fail(o, busy ? PBX_REASON_BUSY : PBX_REASON_CONGESTION);
        ev_dial(p, "DialEnd", NULL, l1, "DialStatus", busy ? "BUSY" : "CONGESTION");
        o->dial_open = 0;
        orig_abandon_pair(l1);
    } else if (l1->dialed_by) {
        dest_failed(l1, busy ? "BUSY" : "CONGESTION");
    }
}

/* ---- the dialplan runner --------------------------------------------------------------------- */

/* A wait is over: next priority. */
static void runner_next(struct sim_pbx *p, void *arg)
{
    (void)p;
    struct pbx_chan *c = arg;
    c->media_wait = 0;
    c->priority++;
    runner_exec(c);
}

/* The channel enters the dialplan: it counts as an active and a processed call. */
static void runner_enter(struct pbx_chan *c, const char *ctx, const char *exten, int prio)
{
    struct sim_pbx *p = c->p;
    if (!c->running) {
        c->running = 1;
        p->active_calls++;
    }
    if (!c->ran_pbx) {
        c->ran_pbx = 1;
        p->processed_calls++;
    }
    CPY(c->context, ctx);
    CPY(c->exten, exten);
    c->priority = prio;
}

static void runner_start(struct pbx_chan *c, const char *ctx, const char *exten, int prio)
{
    runner_enter(c, ctx, exten, prio);
    runner_exec(c);
}

static int runner_steps(struct pbx_chan *c, int max_steps);

/* Execute priorities until one waits or the channel is gone. */
static void runner_exec(struct pbx_chan *c)
{
    runner_steps(c, -1);
}

/* Several channels start their dialplans at once (a ring group's callees): their pbx
 * threads run side by side, one priority each in turn, until each waits (10d). */
static void runners_side_by_side(struct pbx_chan **cs, int n)
{
    int busy = 1;
    while (busy) {
        busy = 0;
        for (int i = 0; i < n; i++) {
            if (cs[i] && !cs[i]->dead && cs[i]->running && runner_steps(cs[i], 1))
                busy = 1;
            else
                cs[i] = NULL;
        }
    }
}

/* Execute at most max_steps priorities (all when negative); 1 when it stopped only
 * because of that limit. */
static int runner_steps(struct pbx_chan *c, int max_steps)
{
    struct sim_pbx *p = c->p;
    int steps = 0, limited = 0;
    chan_ref(c);
    while (!c->dead && c->running) {
        if (max_steps >= 0 && steps++ >= max_steps) {
            limited = 1;
            break;
        }
        const struct dp_prio *e = dp_find(c->context, c->exten, c->priority);
        if (!e) {
            /* fell off the end of the extension: hang up */
            pair_hangup(c, c->hangupcause ? c->hangupcause : PBX_CAUSE_NORMAL, PBX_CAUSE_NORMAL, 1);
            break;
        }
        char data[PBX_DATA];
        substitute(c, e->data, data, sizeof(data));
        chan_set_app(c, e->app, data);
        /* a caller id the Local partner passed on while the last application waited is read
         * when the next one starts (10b2) */
        int cid_read = c->cid_reset_pending;
        if (cid_read) {
            c->cid_reset_pending = 0;
            CPY(c->cid_num, c->next_cid_num);
            CPY(c->cid_name, c->next_cid_name);
        }
        publish_exten(c);
        if (cid_read)
            ev_newcallerid(p, c);
        if (!strcmp(e->app, "NoOp")) {
            c->priority++;
        } else if (!strcmp(e->app, "Answer")) {
            if (c->state == PBX_CS_UP) {
                c->priority++;
                continue;
            }
            chan_answer(c);
            if (c->dead)
                break;
            c->media_wait = 1;
            ptimer_start(p, &c->timer, scaled(p, PBX_ANSWER_MEDIA_MS), runner_next, c);
            break;
        } else if (!strcmp(e->app, "Wait")) {
            ptimer_start(p, &c->timer, scaled(p, atof(data) * 1000.0), runner_next, c);
            break;
        } else if (!strcmp(e->app, "Hangup")) {
            pair_hangup(c, PBX_CAUSE_NORMAL, PBX_CAUSE_NORMAL, 1);
            break;
        } else if (!strcmp(e->app, "Ringing")) {
            chan_ringing(c);
            c->priority++;
        } else if (!strcmp(e->app, "Busy") || !strcmp(e->app, "Congestion")) {
            int busy = !strcmp(e->app, "Busy");
            chan_fail_signal(c, busy);
            if (c->dead)
                break;
            ptimer_start(p, &c->timer, scaled(p, atof(data) * 1000.0), runner_next, c);
            break;
        } else if (!strcmp(e->app, "Set")) {
            char name[PBX_STR];
            const char *eq = strchr(data, '=');
            if (eq) {
                snprintf(name, sizeof(name), "%.*s", (int)(eq - data), data);
                pbx_setvar(p, c, name, eq + 1);
            }
            c->priority++;
        } else if (!strcmp(e->app, "UserEvent")) {
            char copy[PBX_DATA];
            CPY(copy, data);
            char *save = NULL;
            char *name = strtok_r(copy, ",", &save);
            struct sim_ev ev;
            sim_ev_begin(&ev, "UserEvent", SIM_EV_USER);
            blk(&ev, "", c);
            sim_ev_kv(&ev, "UserEvent", name ? name : "");
            for (char *kv = strtok_r(NULL, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *colon = strchr(kv, ':');
                if (!colon)
                    continue;
                *colon = '\0';
                const char *v = colon + 1;
                while (*v == ' ')
                    v++;
                sim_ev_kv(&ev, kv, v);
            }
            sim_ev_end(p->sim, &ev);
            c->priority++;
        } else if (!strcmp(e->app, "Dial")) {
            dial_start(c, data);
            break;
        } else if (!strcmp(e->app, "Queue")) {
            queue_start(c, data);
            break;
        } else {
            c->priority++;
        }
    }
    chan_unref(c);
    return limited;
}

/* ---- Originate ---------------------------------------------------------------------------- */

/* On failure Channel is the requested string and Uniqueid <unknown> (04d). */
static void orig_emit_response(struct pbx_orig *o, int ok, int reason)
{
    struct sim_pbx *p = o->p;
    struct sim_ev e;
    sim_ev_begin(&e, "OriginateResponse", SIM_EV_CALL);
    sim_kv_actionid(&e.sb, o->actionid);
    sim_ev_kv(&e, "Response", ok ? "Success" : "Failure");
    sim_ev_kv(&e, "Channel", ok && o->chan ? o->chan->name : o->channel);
    if (o->app[0]) {
        sim_ev_kv(&e, "Application", o->app);
        sim_ev_kv(&e, "Data", o->appdata);
    } else {
        sim_ev_kv(&e, "Context", o->context);
        sim_ev_kv(&e, "Exten", o->exten);
    }
    sim_ev_kvf(&e, "Reason", "%d", reason);
    sim_ev_kv(&e, "Uniqueid",
              ok && o->chan ? o->chan->uniqueid : (o->chanid[0] ? o->chanid : "<unknown>"));
    sim_ev_kv(&e, "CallerIDNum", pbx_or_unknown(o->cid_num));
    sim_ev_kv(&e, "CallerIDName", pbx_or_unknown(o->cid_name));
    sim_ev_end(p->sim, &e);
    o->or_sent = 1;
}

static void orig_unlink(struct pbx_orig *o)
{
    struct pbx_orig **pp = &o->p->origs;
    while (*pp && *pp != o)
        pp = &(*pp)->next;
    if (*pp)
        *pp = o->next;
}

/* The Originate is over and no channel points at it any more. */
static void orig_free(struct pbx_orig *o)
{
    orig_unlink(o);
    ptimer_cancel(&o->timer);
    if (o->session)
        sim_session_unref(o->session);
    pbx_var_free_all(&o->vars);
    free(o);
}

/* The outcome is known: OriginateResponse or the sync reply, counters. */
static void orig_finish(struct pbx_orig *o, int ok, int reason)
{
    struct sim_pbx *p = o->p;
    if (o->done)
        return;
    o->done = 1;
    ptimer_cancel(&o->timer);
    struct sim_stats *st = sim_stats(p->sim);
    if (st->originates_inflight)
        st->originates_inflight--;
    if (o->async) {
        if (!o->or_sent)
            orig_emit_response(o, ok, reason);
    } else if (o->session) {
        struct sim_session *s = o->session;
        o->session = NULL;
        if (!sim_session_closed(s)) {
            struct strbuf sb;
            sim_resp_begin_id(&sb, ok ? "Success" : "Error", o->actionid);
            sim_kv(&sb, "Message", ok ? "Originate successfully queued" : "Originate failed");
            sim_reply_send(s, &sb);
            soon_unblock(p, s);
        }
        sim_session_unref(s);
    }
    if (!o->chan)
        orig_free(o);
}

/* Async: the OriginateResponse may go out before the Originate is finished (06b). */
static void orig_success(struct pbx_orig *o)
{
    if (!o->done && o->async && !o->or_sent) {
        orig_emit_response(o, 1, PBX_REASON_ANSWERED);
        return;
    }
    orig_finish(o, 1, PBX_REASON_ANSWERED);
}

static void orig_fail(struct pbx_orig *o, int reason)
{
    orig_finish(o, 0, reason);
}

/* The Originate's Application returned: the ;1 hangs up without a soft hangup (06a). */
static void l1_app_done(struct sim_pbx *p, void *arg)
{
    (void)p;
    struct pbx_chan *l1 = arg;
    l1->in_app = 0;
    pair_hangup(l1, l1->hangupcause, 0, 0);
}

/* The answered ;1 runs the Originate's destination. */
static void orig_start_l1(struct pbx_chan *l1)
{
    struct pbx_orig *o = l1->orig;
    struct sim_pbx *p = l1->p;
    if (!o)
        return;
    if (o->app[0]) {
        l1->in_app = 1;
        chan_set_app(l1, o->app, o->appdata);
        double secs = !strcasecmp(o->app, "Wait") ? atof(o->appdata) : 0;
        ptimer_start(p, &l1->timer, scaled(p, secs * 1000.0), l1_app_done, l1);
    } else {
        runner_start(l1, o->context, o->exten, o->priority);
    }
}

/* pbx_dial_reason() of pbx.c: the OriginateResponse Reason of a dial that ended with this
 * cause (0 when the ;1 just went away, as in 10c). */
static int orig_reason(int cause)
{
    switch (cause) {
    case PBX_CAUSE_BUSY:
        return PBX_REASON_BUSY;
    case 21:
    case 27:
    case 38:
    case 41:
    case 42:
    case PBX_CAUSE_CONGESTION:
        return PBX_REASON_CONGESTION;
    case PBX_CAUSE_NO_ANSWER:
    case PBX_CAUSE_ANSWERED_ELSEWHERE:
        return PBX_REASON_RINGING;
    default:
        return PBX_REASON_FAILED;
    }
}

/* The originate's dial hangs its ;1 up itself (ast_hangup() in dial.c): the ;2 is asked to
 * hang up, the ;1 goes at once and the ;2 follows from its own thread (10e). */
static void orig_drop_l1(struct pbx_chan *l1, int cause)
{
    struct sim_pbx *p = l1->p;
    struct pbx_chan *l2 = l1->partner;
    chan_ref(l1);
    chan_ref(l2);
    char dev[PBX_NAME];
    CPY(dev, l1->device);
    l1->hangupcause = cause;
    if (l2 && !l2->dead)
        ev_cause(p, "HangupRequest", l2, cause);
    if (l1->orig && !l1->orig->done)
        orig_fail(l1->orig, orig_reason(cause));
    stop_activity(l1);
    ev_hangup(p, l1, cause);
    chan_destroy(l1);
    if (l2 && !l2->dead) {
        int pbx = l2->running;
        l2->hangupcause = cause;
        stop_activity(l2);
        if (pbx)
            ev_cause(p, "SoftHangupRequest", l2, PBX_SOFTHANGUP_APPUNLOAD);
        run_h(l2);
        ev_hangup(p, l2, cause);
        chan_destroy(l2);
    }
    dsc(p, dev, "NOT_INUSE");
    dsc(p, dev, "NOT_INUSE");
    chan_unref(l1);
    chan_unref(l2);
}

/* dial.c handle_timeout_trip(): nobody answered within Timeout; the ;1 gets cause 19 and
 * goes without a DialEnd, the OriginateResponse says 3 (10e). */
static void orig_timeout(struct sim_pbx *p, void *arg)
{
    (void)p;
    struct pbx_orig *o = arg;
    struct pbx_chan *l1 = o->chan;
    if (o->done || !l1)
        return;
    o->dial_open = 0;
    orig_drop_l1(l1, PBX_CAUSE_NO_ANSWER);
}

/* Parse "Local/EXT@CTX[/opts]". 0 ok. */
/* Local/EXTEN[@CONTEXT][/OPTIONS] as core_local.c's local_alloc() reads
 * it: options after the last '/', the context after the first '@'. */
static int parse_local(const char *chan, char *exten, size_t elen, char *ctx, size_t clen)
{
    if (strncasecmp(chan, "Local/", 6))
        return -1;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", chan + 6);
    char *opts = strrchr(buf, '/');
    if (opts)
        *opts = '\0';
    char *at = strchr(buf, '@');
    if (at)
        *at++ = '\0';
    /* names longer than the caller's buffers are no channels of ours */
    if (strlen(buf) >= elen || strlen(at ? at : "default") >= clen)
        return -1;
    memcpy(exten, buf, strlen(buf) + 1);
    strcpy(ctx, at ? at : "default");
    return *exten ? 0 : -1;
}

/* The Originate's Variable headers: set on the ;1 (VarSet) and copied to the ;2 when the
 * Local channel is called (core_unreal.c), in the order the headers came (10b2). */
static void orig_set_vars(struct pbx_orig *o, struct pbx_chan *l1, struct pbx_chan *l2)
{
    struct pbx_var *list[PBX_MAX_VARS];
    int n = 0;
    for (struct pbx_var *v = o->vars; v && n < PBX_MAX_VARS; v = v->next)
        list[n++] = v; /* newest first */
    for (int i = n - 1; i >= 0; i--)
        pbx_setvar(o->p, l1, list[i]->name, list[i]->value);
    for (int i = n - 1; i >= 0; i--)
        pbx_setvar(o->p, l2, list[i]->name, list[i]->value);
}

/* Local/EXT@CTX only: the capture machine had no other channel driver. */
void pbx_originate_start(struct sim_pbx *p, struct pbx_orig *o)
{
    o->p = p;
    o->next = p->origs;
    p->origs = o;
    struct sim_stats *st = sim_stats(p->sim);
    st->originates_total++;
    st->originates_inflight++;
    if (st->originates_inflight > st->originates_inflight_max)
        st->originates_inflight_max = st->originates_inflight;
    if (o->session)
        sim_session_block(o->session);
    char exten[PBX_STR], ctx[PBX_STR];
    if (parse_local(o->channel, exten, sizeof(exten), ctx, sizeof(ctx)) < 0 ||
        !pbx_exten_exists(ctx, exten, 1)) {
        /* no such channel driver / extension: the request fails at once */
        orig_fail(o, PBX_REASON_FAILED);
        return;
    }
    struct pbx_chan *l1, *l2;
    if (pair_new(p, exten, ctx, o->chanid, o->otherchanid, NULL, &l1, &l2) < 0) {
        orig_fail(o, PBX_REASON_FAILED);
        return;
    }
    chan_ref(l1);
    ev_chan(p, "Newchannel", l1);
    ev_chan(p, "Newchannel", l2);
    chan_set_app(l1, "AppDial2", "(Outgoing Line)");
    publish_exten(l1);
    orig_set_vars(o, l1, l2);
    if (o->has_cid) {
        CPY(l1->cid_num, o->cid_num);
        CPY(l1->cid_name, o->cid_name);
        ev_newcallerid(p, l1);
        CPY(l1->col_num, o->cid_num);
        CPY(l1->col_name, o->cid_name);
        ev_chan(p, "NewConnectedLine", l1);
        CPY(l2->cid_num, o->cid_num);
        CPY(l2->cid_name, o->cid_name);
        CPY(l2->col_num, o->cid_num);
        CPY(l2->col_name, o->cid_name);
        ev_newcallerid(p, l2);
        ev_chan(p, "NewConnectedLine", l2);
    }
    ev_localbridge(p, l1, l2);
    char ds[PBX_DATA];
    snprintf(ds, sizeof(ds), "%s@%s", exten, ctx);
    ev_dial(p, "DialBegin", NULL, l1, "DialString", ds);
    l1->orig = o;
    o->chan = l1;
    o->dial_open = 1;
    ptimer_start(p, &o->timer, scaled(p, (double)o->timeout_ms), orig_timeout, o);
    runner_start(l2, ctx, exten, 1);
    chan_unref(l1);
}

/* ---- hangups ----------------------------------------------------------------------------- */

/* Stop what the channel was doing (timers, Dial/Queue, a pending
 * Originate), before its hangup events. */
static void stop_activity(struct pbx_chan *c)
{
    struct sim_pbx *p = c->p;
    ptimer_cancel(&c->timer);
    ptimer_cancel(&c->abs_timer);
    c->media_wait = 0;
    c->in_app = 0;
    if (c->running) {
        c->running = 0;
        p->active_calls--;
    }
    struct pbx_dial *op = c->dialop;
    if (op && !op->answered) {
        /* the caller went away while its outgoing legs were ringing */
        while (op->ndests) {
            struct pbx_chan *d = op->dests[0].l1;
            ev_dial(p, "DialEnd", c, d, "DialStatus", "CANCEL");
            chan_ref(d);
            d->dialed_by = NULL;
            if (op->dests[0].member)
                op->dests[0].member->ringing = 0;
            op->dests[0] = op->dests[--op->ndests];
            pair_hangup(d, 0, 0, 0);
            chan_unref(d);
        }
        if (op->kind == PBX_DIAL_QUEUE)
            queue_abandon(op);
        c->dialop = NULL;
        dial_free(op);
    }
    if (c->orig && !c->orig->done)
        orig_fail(c->orig, orig_reason(c->hangupcause));
}

/* The member's call is over: AgentComplete and the member's counters. */
static void agent_complete(struct pbx_dial *op, const char *reason)
{
    struct sim_pbx *p = op->p;
    if (!op->peer || !op->member)
        return;
    long talk = (long)((now_ms(p) - op->answer_ms) / 1000);
    long hold = (long)((op->answer_ms - op->start_ms) / 1000);
    struct sim_ev e;
    sim_ev_begin(&e, "AgentComplete", SIM_EV_AGENT);
    blk(&e, "", op->caller);
    blk(&e, "Dest", op->peer);
    sim_ev_kv(&e, "Queue", op->queue->name);
    sim_ev_kv(&e, "Interface", op->member->interface);
    sim_ev_kv(&e, "MemberName", op->member->membername);
    sim_ev_kvf(&e, "HoldTime", "%ld", hold);
    sim_ev_kvf(&e, "TalkTime", "%ld", talk);
    sim_ev_kv(&e, "Reason", reason);
    sim_ev_end(p->sim, &e);
    op->member->calls++;
    op->member->lastcall = pbx_now_s();
    op->member->incall = 0;
    op->queue->completed++;
    op->queue->talktime = talk;
    op->queue->holdtime = hold;
    op->member = NULL;
}

/* Dial()/Queue() return: the variables they leave behind (06a, 06b). After an async goto
 * out of the bridge, features.c skips the end-of-bridge callback: Dial() sets only
 * DIALSTATUS (10a2). */
static void dial_finish_vars(struct pbx_dial *op)
{
    struct sim_pbx *p = op->p;
    struct pbx_chan *y = op->caller;
    uint64_t now = now_ms(p);
    uint64_t ans = op->answered ? now - op->answer_ms : 0;
    struct timeval tv = sim_now_tv();
    long dialed =
        (long)((tv.tv_sec - y->created.tv_sec) * 1000 + (tv.tv_usec - y->created.tv_usec) / 1000);
    if (!op->async_goto) {
        ev_varset_num(p, y, "ANSWEREDTIME", (long)(ans / 1000));
        ev_varset_num(p, y, "ANSWEREDTIME_MS", (long)ans);
        ev_varset_num(p, y, "DIALEDTIME", dialed / 1000);
        ev_varset_num(p, y, "DIALEDTIME_MS", dialed);
    }
    if (op->kind == PBX_DIAL_APP)
        ev_varset(p, y, "DIALSTATUS", op->answered ? "ANSWER" : "NOANSWER");
}

/* The other side of the bridge is gone and `z` is the last one in it
 * (06a, 06b, 10b2): an outgoing leg is kicked out, the bridge goes and the
 * leg hangs up with its Local partner. A caller in Dial()/Queue() gets the
 * application's times and, as neither has the g/c option in the demo
 * dialplan, is hung up too; the bridge goes once it has (10b2). */
static void bridge_peer_gone(struct pbx_chan *z, const char *x_dev, int style_queue)
{
    struct sim_pbx *p = z->p;
    struct pbx_bridge *b = z->bridge;
    if (!b)
        return;
    ev_bridge(p, "BridgeLeave", b, 0, z);
    b->n = 0;
    z->bridge = NULL;
    chan_ref(z);
    if (!z->ran_pbx) {
        ev_bridge(p, "BridgeDestroy", b, 0, NULL);
        free(b);
        struct pbx_chan *w = z->partner;
        chan_ref(w);
        char zdev[PBX_NAME];
        CPY(zdev, z->device);
        if (w)
            ev_cause(p, "HangupRequest", w, PBX_CAUSE_NORMAL);
        stop_activity(z);
        ev_hangup(p, z, PBX_CAUSE_NORMAL);
        chan_destroy(z);
        if (!style_queue) {
            dsc(p, x_dev, "NOT_INUSE");
            dsc(p, x_dev, "NOT_INUSE");
        }
        if (w && !w->dead) {
            ev_cause(p, "SoftHangupRequest", w, PBX_SOFTHANGUP_APPUNLOAD);
            w->hangupcause = PBX_CAUSE_NORMAL;
            stop_activity(w);
            run_h(w);
            ev_hangup(p, w, PBX_CAUSE_NORMAL);
            chan_destroy(w);
        }
        if (style_queue)
            dsc(p, x_dev, "NOT_INUSE");
        dsc(p, zdev, "NOT_INUSE");
        dsc(p, zdev, "NOT_INUSE");
        chan_unref(w);
    } else {
        struct pbx_dial *op = z->dialop;
        if (op) {
            if (op->kind == PBX_DIAL_QUEUE)
                agent_complete(op, "agent");
            dial_finish_vars(op);
            z->dialop = NULL;
            dial_free(op);
        }
        if (z->running && !z->dead)
            pair_hangup(z, PBX_CAUSE_NORMAL, PBX_SOFTHANGUP_APPUNLOAD, 1);
        ev_bridge(p, "BridgeDestroy", b, 0, NULL);
        free(b);
    }
    chan_unref(z);
}

/* ast_hangup_cause_to_dial_status() of dial.c. */
static const char *cause_dial_status(int cause)
{
    switch (cause) {
    case PBX_CAUSE_BUSY:
        return "BUSY";
    case PBX_CAUSE_CONGESTION:
        return "CONGESTION";
    case 3:
    case 20:
        return "CHANUNAVAIL";
    default:
        return "NOANSWER";
    }
}

/* x hangs up (Hangup(), AMI, end of dialplan, end of its Originate app);
 * its Local partner follows, and a bridge it is in comes apart. What x was
 * doing (Dial(), Queue()) ends first; a dialplan's SoftHangupRequest comes
 * after that, when __ast_pbx_run() gives up on the channel (10c). */
static void pair_hangup(struct pbx_chan *x, int cause, int shr_cause, int do_shr)
{
    struct sim_pbx *p = x->p;
    if (x->dead)
        return;
    struct pbx_chan *y = x->partner;
    if (y && y->dead)
        y = NULL;
    chan_ref(x);
    chan_ref(y);
    /* y is an Originate's ;1 still being dialled: its dial reads the hangup as a plain
     * hangup (Reason 0). The OriginateResponse goes to AMI directly and overtakes the
     * channel events stasis still holds (10c). */
    struct pbx_orig *yo = y && y->orig && !y->orig->done && y->state != PBX_CS_UP ? y->orig : NULL;
    if (yo)
        orig_fail(yo, PBX_REASON_FAILED);
    x->hangupcause = cause;
    stop_activity(x);
    if (x->dialed_by) {
        /* an outgoing leg that is still ringing: its dialer loses it */
        struct pbx_dial *op = x->dialed_by;
        for (int i = 0; i < op->ndests; i++)
            if (op->dests[i].l1 == x && op->dests[i].member)
                op->dests[i].member->ringing = 0;
    }
    struct pbx_bridge *xb = x->bridge;
    struct pbx_chan *xz = NULL;
    if (xb) {
        /* x itself is bridged: it leaves first */
        xz = xb->chans[0] == x ? (xb->n > 1 ? xb->chans[1] : NULL) : xb->chans[0];
        chan_ref(xz);
        struct pbx_dial *op = x->dialop;
        if (op && op->kind == PBX_DIAL_QUEUE)
            agent_complete(op, "caller");
        ev_varset(p, x, "BRIDGEPEER", "");
        if (xz)
            ev_varset(p, xz, "BRIDGEPEER", "");
        ev_bridge(p, "BridgeLeave", xb, xb->n - 1, x);
        if (op) {
            dial_finish_vars(op);
            x->dialop = NULL;
            dial_free(op);
        }
    }
    if (do_shr)
        ev_cause(p, "SoftHangupRequest", x, shr_cause);
    run_h(x);
    if (y) {
        ev_cause(p, "HangupRequest", y, cause);
        if (y->dialop && y->dialop->kind == PBX_DIAL_QUEUE && y->dialop->answered && y->bridge)
            agent_complete(y->dialop, "caller");
    }
    char xdev[PBX_NAME];
    CPY(xdev, x->device);
    if (yo && y && !y->dead) {
        /* dial.c reads the ;1's hangup and drops it before x is gone (10c) */
        if (yo->dial_open)
            ev_dial(p, "DialEnd", NULL, y, "DialStatus", cause_dial_status(cause));
        yo->dial_open = 0;
        y->hangupcause = cause;
        stop_activity(y);
        ev_hangup(p, y, cause);
        chan_destroy(y);
        ev_hangup(p, x, cause);
        chan_destroy(x);
        dsc(p, xdev, "NOT_INUSE");
        dsc(p, xdev, "NOT_INUSE");
        chan_unref(xz);
        chan_unref(x);
        chan_unref(y);
        return;
    }
    ev_hangup(p, x, cause);
    chan_destroy(x);
    if (xz && !xz->dead)
        bridge_peer_gone(xz, xdev, 0);
    chan_unref(xz);
    if (y && !y->dead) {
        if (y->bridge && y->bridge->n == 2 && y->running) {
            /* y runs the Dial()/Queue() that bridged it (06a, 06b) */
            struct pbx_bridge *b = y->bridge;
            int style = b->queue_style;
            struct pbx_chan *z = b->chans[0] == y ? b->chans[1] : b->chans[0];
            chan_ref(z);
            if (style)
                dsc(p, xdev, "NOT_INUSE");
            ev_varset(p, y, "BRIDGEPEER", "");
            ev_varset(p, z, "BRIDGEPEER", "");
            ev_bridge(p, "BridgeLeave", b, 1, y);
            if (y->dialop) {
                dial_finish_vars(y->dialop);
                struct pbx_dial *op = y->dialop;
                y->dialop = NULL;
                dial_free(op);
            }
            ev_cause(p, "SoftHangupRequest", y, PBX_SOFTHANGUP_APPUNLOAD);
            y->hangupcause = PBX_CAUSE_NORMAL;
            stop_activity(y);
            run_h(y);
            ev_hangup(p, y, PBX_CAUSE_NORMAL);
            chan_destroy(y);
            bridge_peer_gone(z, xdev, style);
            chan_unref(z);
        } else if (y->bridge && y->bridge->n == 2) {
            /* y is an outgoing leg with no dialplan: its bridge thread leaves, the
             * other side is kicked out and y's hangup is published last (10b2) */
            struct pbx_bridge *b = y->bridge;
            struct pbx_chan *z = b->chans[0] == y ? b->chans[1] : b->chans[0];
            char ydev[PBX_NAME];
            CPY(ydev, y->device);
            chan_ref(z);
            ev_varset(p, y, "BRIDGEPEER", "");
            ev_varset(p, z, "BRIDGEPEER", "");
            ev_bridge(p, "BridgeLeave", b, 1, y);
            b->chans[0] = z;
            b->n = 1;
            y->bridge = NULL;
            bridge_peer_gone(z, xdev, 0);
            y->hangupcause = cause;
            stop_activity(y);
            ev_hangup(p, y, cause);
            chan_destroy(y);
            dsc(p, ydev, "NOT_INUSE");
            dsc(p, ydev, "NOT_INUSE");
            chan_unref(z);
        } else {
            int pbx = y->running;
            y->hangupcause = cause;
            stop_activity(y);
            if (pbx)
                ev_cause(p, "SoftHangupRequest", y, PBX_SOFTHANGUP_APPUNLOAD);
            run_h(y);
            ev_hangup(p, y, cause);
            chan_destroy(y);
            dsc(p, xdev, "NOT_INUSE");
            dsc(p, xdev, "NOT_INUSE");
        }
    } else if (!xb) {
        dsc(p, xdev, "NOT_INUSE");
    }
    chan_unref(x);
    chan_unref(y);
}

/* ---- bridges ------------------------------------------------------------------------------ */

/* A basic bridge with a random v4 uuid. */
static struct pbx_bridge *bridge_new(struct sim_pbx *p, int queue_style)
{
    struct pbx_bridge *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    unsigned char r[16];
    for (size_t i = 0; i < sizeof(r); i++)
        r[i] = (unsigned char)(random() & 0xff);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(b->uuid, sizeof(b->uuid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    b->queue_style = queue_style;
    ev_bridge(p, "BridgeCreate", b, 0, NULL);
    return b;
}

/* Who may transfer in a bridge a Dial()/Queue() made: the application's T/t options and the
 * caller's BRIDGE_FEATURES (features.c). */
static void bridge_set_features(struct pbx_bridge *b, struct pbx_chan *caller,
                                const struct pbx_dial *op)
{
    if (!b)
        return;
    b->caller = caller;
    b->xfer_caller = op->xfer_caller;
    b->xfer_callee = op->xfer_callee;
    struct pbx_var *v = var_find(caller->vars, "BRIDGE_FEATURES");
    for (const char *f = v ? v->value : ""; *f; f++) {
        if (*f == 'T')
            b->xfer_caller = 1;
        else if (*f == 't')
            b->xfer_callee = 1;
    }
}

/* The T/t of a Dial() or Queue() options field. */
static void dial_xfer_options(struct pbx_dial *op, const char *opts)
{
    op->xfer_caller = opts && strchr(opts, 'T') != NULL;
    op->xfer_callee = opts && strchr(opts, 't') != NULL;
}

static void bridge_enter(struct sim_pbx *p, struct pbx_bridge *b, struct pbx_chan *c)
{
    if (!b || b->n >= 2)
        return;
    b->chans[b->n++] = c;
    c->bridge = b;
    ev_bridge(p, "BridgeEnter", b, b->n, c);
}

/* ---- Dial() -------------------------------------------------------------------------------- */

/* Forget the dial everywhere it is referenced. */
static void dial_free(struct pbx_dial *op)
{
    ptimer_cancel(&op->timer);
    ptimer_cancel(&op->qtimer);
    for (int i = 0; i < op->ndests; i++) {
        if (op->dests[i].l1)
            op->dests[i].l1->dialed_by = NULL;
        if (op->dests[i].member)
            op->dests[i].member->ringing = 0;
    }
    if (op->queue) {
        struct pbx_queue *q = op->queue;
        for (int i = 0; i < q->ncallers; i++) {
            if (q->callers[i] == op) {
                for (int j = i; j + 1 < q->ncallers; j++)
                    q->callers[j] = q->callers[j + 1];
                q->ncallers--;
                break;
            }
        }
    }
    if (op->caller && op->caller->dialop == op)
        op->caller->dialop = NULL;
    free(op);
}

/* The caller's Dial() is over without an answer: DIALSTATUS and on. */
static void dial_end_unanswered(struct pbx_dial *op, const char *status)
{
    struct sim_pbx *p = op->p;
    struct pbx_chan *y = op->caller;
    chan_ref(y);
    ev_varset(p, y, "DIALSTATUS", status);
    y->dialop = NULL;
    dial_free(op);
    if (!y->dead && y->running) {
        y->priority++;
        runner_exec(y);
    }
    chan_unref(y);
}

/* An outgoing leg of a Dial() that will not answer: its pair goes. */
static void dest_drop(struct pbx_chan *d)
{
    chan_ref(d);
    dial_forget(d);
    pair_hangup(d, 0, 0, 0);
    chan_unref(d);
}

/* A dialed leg is busy or congested. */
static void dest_failed(struct pbx_chan *l1, const char *status)
{
    struct sim_pbx *p = l1->p;
    struct pbx_dial *op = l1->dialed_by;
    if (!op)
        return;
    ev_dial(p, "DialEnd", op->caller, l1, "DialStatus", status);
    dest_drop(l1);
    if (op->kind == PBX_DIAL_APP && op->ndests == 0)
        dial_end_unanswered(op, status);
}

/* Dial()'s own timeout ran out. */
static void dial_timeout(struct sim_pbx *p, void *arg)
{
    struct pbx_dial *op = arg;
    while (op->ndests) {
        struct pbx_chan *d = op->dests[0].l1;
        ev_dial(p, "DialEnd", op->caller, d, "DialStatus", "NOANSWER");
        dest_drop(d);
    }
    dial_end_unanswered(op, "NOANSWER");
}

/* Create one outgoing leg of a Dial() (app_dial.c's first loop, 06b, 10d): its pair, with
 * the caller's number and place on the ;1. */
static struct pbx_chan *dial_leg_new(struct pbx_dial *op, const char *target)
{
    struct sim_pbx *p = op->p;
    struct pbx_chan *c = op->caller;
    char exten[PBX_STR], ctx[PBX_STR];
    struct pbx_chan *d1, *d2;
    if (op->ndests >= PBX_MAX_DESTS ||
        parse_local(target, exten, sizeof(exten), ctx, sizeof(ctx)) < 0 ||
        !pbx_exten_exists(ctx, exten, 1) ||
        pair_new(p, exten, ctx, NULL, NULL, c->linkedid, &d1, &d2) < 0)
        return NULL;
    struct pbx_dest *d = &op->dests[op->ndests++];
    *d = (struct pbx_dest){.l1 = d1, .state = PBX_DEST_RINGING};
    /* Dial() strips "Local/" from what it reports */
    snprintf(d->num, sizeof(d->num), "%s@%s", exten, ctx);
    ev_chan(p, "Newchannel", d1);
    ev_chan(p, "Newchannel", d2);
    ev_varset(p, d1, "DIALEDPEERNUMBER", d->num);
    CPY(d1->cid_num, c->cid_num[0] ? c->cid_num : c->exten);
    CPY(d1->cid_name, c->cid_name);
    CPY(d1->context, c->context);
    CPY(d1->exten, c->exten);
    chan_set_app(d1, "AppDial", "(Outgoing Line)");
    publish_exten(d1);
    ev_newcallerid(p, d1);
    return d1;
}

/* Dial(Local/A@CTX[&Local/B@CTX...],timeout): every leg is created first, then called
 * one after the other (DialBegin each), then their dialplans run side by side (06b, 10d). */
static void dial_start(struct pbx_chan *c, const char *data)
{
    struct sim_pbx *p = c->p;
    char target[PBX_DATA];
    CPY(target, data);
    char *comma = strchr(target, ',');
    double timeout_s = 0;
    const char *opts = NULL;
    if (comma) {
        *comma = '\0';
        timeout_s = atof(comma + 1);
        opts = strchr(comma + 1, ',');
    }
    struct pbx_dial *op = calloc(1, sizeof(*op));
    if (!op) {
        c->priority++;
        return;
    }
    dial_xfer_options(op, opts ? opts + 1 : NULL);
    op->p = p;
    op->kind = PBX_DIAL_APP;
    op->caller = c;
    op->start_ms = now_ms(p);
    CPY(op->target, target);
    c->dialop = op;
    static const char *const vars[] = {"DIALSTATUS",    "DIALEDPEERNUMBER", "DIALEDPEERNAME",
                                       "ANSWEREDTIME",  "ANSWEREDTIME_MS",  "DIALEDTIME",
                                       "DIALEDTIME_MS", "RINGTIME",         "RINGTIME_MS",
                                       "PROGRESSTIME",  "PROGRESSTIME_MS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        ev_varset(p, c, vars[i], "");
    char *save = NULL;
    for (char *t = strtok_r(target, "&", &save); t; t = strtok_r(NULL, "&", &save))
        dial_leg_new(op, t);
    if (!op->ndests) {
        dial_end_unanswered(op, "CHANUNAVAIL");
        return;
    }
    chan_ref(c);
    struct pbx_chan *legs[PBX_MAX_DESTS];
    int n = op->ndests;
    for (int i = 0; i < n; i++) {
        struct pbx_chan *d1 = op->dests[i].l1, *d2 = d1->partner;
        legs[i] = d2;
        chan_ref(d2);
        ev_varset(p, d2, "DIALEDPEERNUMBER", op->dests[i].num);
        CPY(d2->col_num, d1->cid_num);
        CPY(d2->col_name, d1->cid_name);
        ev_chan(p, "NewConnectedLine", d2);
        ev_localbridge(p, d1, d2);
        ev_dial(p, "DialBegin", c, d1, "DialString", op->dests[i].num);
        d1->dialed_by = op;
    }
    if (timeout_s > 0)
        ptimer_start(p, &op->timer, scaled(p, timeout_s * 1000.0), dial_timeout, op);
    for (int i = 0; i < n; i++)
        runner_enter(legs[i], legs[i]->lctx, legs[i]->lexten, 1);
    struct pbx_chan *run[PBX_MAX_DESTS];
    for (int i = 0; i < n; i++)
        run[i] = legs[i];
    runners_side_by_side(run, n);
    /* the device state thread hears of ringing callees as they ring; with one callee it
     * came only after the DialState (06b), see dial_ringing_deferred() */
    for (int i = 0; n > 1 && i < n; i++)
        if (!legs[i]->dead && legs[i]->partner && legs[i]->partner->state == PBX_CS_RINGING)
            dsc(p, legs[i]->device, "INUSE");
    for (int i = 0; i < n; i++)
        chan_unref(legs[i]);
    chan_unref(c);
}

static struct pbx_dest *dial_dest_of(struct pbx_dial *op, const struct pbx_chan *d1)
{
    for (int i = 0; i < op->ndests; i++)
        if (op->dests[i].l1 == d1)
            return &op->dests[i];
    return NULL;
}

/* The dialed legs ring: the caller side learns it a moment later (06b). With several legs
 * ringing by then, ast_waitfor_n() hands Dial() the last of them first (10d). */
static void dial_ringing_deferred(struct sim_pbx *p, struct pbx_chan *d1)
{
    struct pbx_dial *op = d1->dialed_by;
    if (!op || op->ringing_seen)
        return;
    op->ringing_seen = 1;
    op->ring_start_ms = now_ms(p);
    struct pbx_chan *y = op->caller;
    struct pbx_chan *yp = y->leg == 2 ? y->partner : NULL;
    int yp_rang = 0;
    if (yp && yp->state != PBX_CS_UP && yp->state != PBX_CS_RINGING) {
        yp->state = PBX_CS_RINGING;
        ev_chan(p, "Newstate", yp);
        yp_rang = 1;
    }
    uint64_t ms = op->ring_start_ms - op->start_ms;
    ev_varset_num(p, y, "RINGTIME", (long)(ms / 1000));
    ev_varset_num(p, y, "RINGTIME_MS", (long)ms);
    for (int i = op->ndests - 1; i >= 0; i--)
        if (op->dests[i].l1->state == PBX_CS_RINGING)
            ev_dial(p, "DialState", y, op->dests[i].l1, "DialStatus", "RINGING");
    if (yp && yp->orig && !yp->orig->done)
        ev_dial(p, "DialState", NULL, yp, "DialStatus", "RINGING");
    if (op->ndests == 1)
        dsc(p, d1->device, "INUSE");
    if (yp_rang)
        dsc(p, y->device, "INUSE");
}

/* The other legs of a ring group lose (10d): CANCEL, then Dial() hangs up their ;1 with
 * cause 26; each ;2 notices from its own thread once the answer has gone through, and the
 * device state thread publishes both hangups about then. */
static void dial_loser_l2_gone(struct sim_pbx *p, struct pbx_chan *w)
{
    (void)p;
    char dev[PBX_NAME];
    CPY(dev, w->device);
    dsc(w->p, dev, "NOT_INUSE");
    int pbx = w->running;
    w->hangupcause = PBX_CAUSE_ANSWERED_ELSEWHERE;
    stop_activity(w);
    if (pbx)
        ev_cause(w->p, "SoftHangupRequest", w, PBX_SOFTHANGUP_APPUNLOAD);
    run_h(w);
    ev_hangup(w->p, w, PBX_CAUSE_ANSWERED_ELSEWHERE);
    chan_destroy(w);
    dsc(w->p, dev, "NOT_INUSE");
}

static void dial_cancel_losers(struct pbx_dial *op, struct pbx_chan *winner)
{
    struct sim_pbx *p = op->p;
    for (int i = 0; i < op->ndests;) {
        struct pbx_chan *d = op->dests[i].l1;
        if (d == winner) {
            i++;
            continue;
        }
        struct pbx_chan *w = d->partner;
        char dev[PBX_NAME];
        CPY(dev, d->device);
        chan_ref(d);
        ev_dial(p, "DialEnd", op->caller, d, "DialStatus", "CANCEL");
        dial_forget(d);
        d->hangupcause = PBX_CAUSE_ANSWERED_ELSEWHERE;
        if (w && !w->dead) {
            ev_cause(p, "HangupRequest", w, PBX_CAUSE_ANSWERED_ELSEWHERE);
            soon(p, dial_loser_l2_gone, w);
        }
        stop_activity(d);
        ev_hangup(p, d, PBX_CAUSE_ANSWERED_ELSEWHERE);
        chan_destroy(d);
        if (!w || w->dead)
            dsc(p, dev, "NOT_INUSE");
        chan_unref(d);
    }
}

/* The dialed leg answered (06b, 10d): the others are cancelled, the caller is answered
 * and bridged. */
static void dial_answered(struct pbx_chan *d1)
{
    struct sim_pbx *p = d1->p;
    struct pbx_dial *op = d1->dialed_by;
    if (!op)
        return;
    struct pbx_chan *y = op->caller;
    struct pbx_chan *yp = y->leg == 2 ? y->partner : NULL;
    chan_ref(y);
    chan_ref(yp);
    ptimer_cancel(&op->timer);
    char num[PBX_DATA];
    struct pbx_dest *dest = dial_dest_of(op, d1);
    CPY(num, dest ? dest->num : "");
    /* the device state of the answered leg (its Newstate) lands where the captures had it:
     * after the losers' hangups (10d), else after Dial()'s variables (06b, 10a2) */
    int losers = op->ndests > 1;
    dial_cancel_losers(op, d1);
    if (losers)
        dsc(p, d1->device, "INUSE");
    if (yp && yp->orig && !yp->orig->done && yp->orig->async && !yp->orig->or_sent)
        orig_success(yp->orig);
    ev_varset(p, y, "DIALSTATUS", "ANSWER");
    ev_varset(p, y, "DIALEDPEERNAME", d1->name);
    ev_varset(p, y, "DIALEDPEERNUMBER", num);
    if (!losers)
        dsc(p, d1->device, "INUSE");
    d1->exten[0] = '\0';
    ev_dial(p, "DialEnd", y, d1, "DialStatus", "ANSWER");
    op->answered = 1;
    op->answer_ms = now_ms(p);
    op->peer = d1;
    d1->dialed_by = NULL;
    op->ndests = 0;
    int y_rose = 0;
    if (y->state != PBX_CS_UP) {
        y->state = PBX_CS_UP;
        ev_chan(p, "Newstate", y);
        y_rose = 1;
    }
    struct pbx_bridge *b = bridge_new(p, 0);
    bridge_set_features(b, y, op);
    publish_exten(d1);
    int yp_rose = 0;
    if (yp && !yp->dead && yp->state != PBX_CS_UP) {
        yp->state = PBX_CS_UP;
        ev_chan(p, "Newstate", yp);
        yp_rose = 1;
        if (yp->orig && !yp->orig->done) {
            ev_dial(p, "DialEnd", NULL, yp, "DialStatus", "ANSWER");
            yp->orig->dial_open = 0;
            orig_success(yp->orig);
            orig_start_l1(yp);
        }
    }
    if (b && !d1->dead && !y->dead) {
        bridge_enter(p, b, d1);
        /* a Newstate each: the answered leg's ;1, the caller and its Local partner */
        dsc(p, d1->device, "INUSE");
        if (y_rose)
            dsc(p, y->device, "INUSE");
        if (yp_rose)
            dsc(p, y->device, "INUSE");
        bridge_enter(p, b, y);
        ev_varset(p, d1, "BRIDGEPEER", y->name);
        ev_varset(p, y, "BRIDGEPEER", d1->name);
    } else {
        free(b);
    }
    chan_unref(y);
    chan_unref(yp);
}

/* ---- Queue() -------------------------------------------------------------------------------- */

struct pbx_queue *pbx_queue_find(struct sim_pbx *p, const char *name)
{
    for (int i = 0; i < p->nqueues; i++)
        if (!strcmp(p->queues[i].name, name))
            return &p->queues[i];
    return NULL;
}

struct pbx_member *pbx_member_find(struct pbx_queue *q, const char *iface)
{
    for (int i = 0; i < q->nmembers; i++)
        if (!strcasecmp(q->members[i].interface, iface))
            return &q->members[i];
    return NULL;
}

int pbx_queue_calls(const struct pbx_queue *q)
{
    return q->ncallers;
}

static void ev_queue_caller(struct sim_pbx *p, const char *name, const struct pbx_chan *y,
                            const struct pbx_queue *q, int pos, int count)
{
    struct sim_ev e;
    sim_ev_begin(&e, name, SIM_EV_AGENT);
    blk(&e, "", y);
    sim_ev_kv(&e, "Queue", q->name);
    sim_ev_kvf(&e, "Position", "%d", pos);
    sim_ev_kvf(&e, "Count", "%d", count);
    sim_ev_end(p->sim, &e);
}

/* The caller leaves the queue's waiting list (answered, timed out or gone). */
static void queue_leave(struct pbx_dial *op, int abandoned)
{
    struct sim_pbx *p = op->p;
    struct pbx_queue *q = op->queue;
    struct pbx_chan *y = op->caller;
    int pos = 0;
    for (int i = 0; i < q->ncallers; i++) {
        if (q->callers[i] == op) {
            pos = i + 1;
            for (int j = i; j + 1 < q->ncallers; j++)
                q->callers[j] = q->callers[j + 1];
            q->ncallers--;
            break;
        }
    }
    if (!pos)
        return;
    if (abandoned) {
        struct sim_ev e;
        sim_ev_begin(&e, "QueueCallerAbandon", SIM_EV_AGENT);
        blk(&e, "", y);
        sim_ev_kv(&e, "Queue", q->name);
        sim_ev_kvf(&e, "Position", "%d", pos);
        sim_ev_kvf(&e, "OriginalPosition", "%d", op->position);
        sim_ev_kvf(&e, "HoldTime", "%ld", (long)((now_ms(p) - op->start_ms) / 1000));
        sim_ev_end(p->sim, &e);
        q->abandoned++;
    }
    if (q->ncallers == 0) {
        char dev[PBX_NAME];
        snprintf(dev, sizeof(dev), "Queue:%s", q->name);
        pbx_devstate_set(p, dev, "NOT_INUSE", 1);
    }
    ev_queue_caller(p, "QueueCallerLeave", y, q, pos, q->ncallers);
    ev_varset_num(p, y, "QUEUEPOSITION", pos);
}

/* The caller hung up while waiting (10c): app_queue leaves the wait, dial and answer
 * times (0: never answered) and ABANDONED behind, then the caller leaves the queue. */
static void queue_abandon(struct pbx_dial *op)
{
    struct sim_pbx *p = op->p;
    struct pbx_chan *y = op->caller;
    uint64_t wait = now_ms(p) - op->start_ms;
    struct timeval tv = sim_now_tv();
    long dialed =
        (long)((tv.tv_sec - y->created.tv_sec) * 1000 + (tv.tv_usec - y->created.tv_usec) / 1000);
    ev_varset_num(p, y, "QUEUEWAIT", (long)(wait / 1000));
    ev_varset_num(p, y, "QUEUEWAIT_MS", (long)wait);
    ev_varset_num(p, y, "DIALEDTIME", dialed / 1000);
    ev_varset_num(p, y, "DIALEDTIME_MS", dialed);
    ev_varset_num(p, y, "ANSWEREDTIME", 0);
    ev_varset_num(p, y, "ANSWEREDTIME_MS", 0);
    ev_varset(p, y, "ABANDONED", "TRUE");
    queue_leave(op, 1);
}

static void queue_ring(struct sim_pbx *p, void *arg);

/* Ring one member: its Local pair, AgentCalled and DialBegin (06a). */
static void queue_call_member(struct pbx_dial *op, struct pbx_member *m)
{
    struct sim_pbx *p = op->p;
    struct pbx_chan *y = op->caller;
    char exten[PBX_STR], ctx[PBX_STR];
    if (op->ndests >= PBX_MAX_DESTS ||
        parse_local(m->interface, exten, sizeof(exten), ctx, sizeof(ctx)) < 0 ||
        !pbx_exten_exists(ctx, exten, 1))
        return;
    struct pbx_chan *l1, *l2;
    if (pair_new(p, exten, ctx, NULL, NULL, y->linkedid, &l1, &l2) < 0)
        return;
    ev_chan(p, "Newchannel", l1);
    ev_chan(p, "Newchannel", l2);
    CPY(l1->cid_num, y->cid_num);
    CPY(l1->cid_name, y->cid_name);
    chan_set_app(l1, "AppQueue", "(Outgoing Line)");
    publish_exten(l1);
    ev_newcallerid(p, l1);
    char num[PBX_DATA];
    snprintf(num, sizeof(num), "%s@%s", exten, ctx);
    ev_varset(p, l1, "DIALEDPEERNUMBER", num);
    ev_varset(p, l2, "DIALEDPEERNUMBER", num);
    CPY(l2->cid_num, y->cid_num);
    CPY(l2->cid_name, y->cid_name);
    CPY(l2->col_num, y->cid_num);
    CPY(l2->col_name, y->cid_name);
    ev_newcallerid(p, l2);
    ev_chan(p, "NewConnectedLine", l2);
    ev_localbridge(p, l1, l2);
    l1->pending_pub = 1;
    CPY(l1->pend_context, y->context);
    CPY(l1->pend_exten, y->exten);
    CPY(l1->pend_col_num, y->cid_num);
    CPY(l1->pend_col_name, y->cid_name);
    struct pbx_chan view = *l1;
    CPY(view.context, l1->pend_context);
    CPY(view.exten, l1->pend_exten);
    view.priority = 1;
    CPY(view.col_num, l1->pend_col_num);
    CPY(view.col_name, l1->pend_col_name);
    struct sim_ev e;
    sim_ev_begin(&e, "AgentCalled", SIM_EV_AGENT);
    blk(&e, "", y);
    blk(&e, "Dest", &view);
    sim_ev_kv(&e, "Queue", op->queue->name);
    sim_ev_kv(&e, "Interface", m->interface);
    sim_ev_kv(&e, "MemberName", m->membername);
    sim_ev_end(p->sim, &e);
    ev_dial(p, "DialBegin", y, l1, "DialString", m->interface);
    l1->dialed_by = op;
    op->dests[op->ndests++] = (struct pbx_dest){.l1 = l1, .member = m, .state = PBX_DEST_RINGING};
    m->ringing = 1;
}

/* The members did not answer in the queue's timeout: retry later. */
static void queue_ring_timeout(struct sim_pbx *p, void *arg)
{
    struct pbx_dial *op = arg;
    while (op->ndests) {
        struct pbx_chan *d = op->dests[0].l1;
        ev_dial(p, "DialEnd", op->caller, d, "DialStatus", "NOANSWER");
        dest_drop(d);
    }
    ptimer_start(p, &op->timer, scaled(p, op->queue->retry_s * 1000.0), queue_ring, op);
}

/* Ring the members the strategy picks. */
static void queue_ring(struct sim_pbx *p, void *arg)
{
    struct pbx_dial *op = arg;
    struct pbx_queue *q = op->queue;
    struct pbx_member *pick[PBX_MAX_MEMBERS];
    int n = 0;
    if (!strcmp(q->strategy, "ringall")) {
        /* app_queue builds its outgoing list by prepending */
        for (int i = q->nmembers - 1; i >= 0; i--)
            if (pbx_member_available(q, &q->members[i]) && !q->members[i].ringing)
                pick[n++] = &q->members[i];
    } else {
        for (int k = 0; k < q->nmembers && !n; k++) {
            int i = (q->rr_next + k) % q->nmembers;
            if (pbx_member_available(q, &q->members[i]) && !q->members[i].ringing) {
                pick[n++] = &q->members[i];
                q->rr_next = i + 1;
            }
        }
    }
    if (!n) {
        ptimer_start(p, &op->timer, scaled(p, q->retry_s * 1000.0), queue_ring, op);
        return;
    }
    struct pbx_chan *caller = op->caller;
    chan_ref(caller);
    op->starting = 1;
    op->pending_answer = NULL;
    for (int i = 0; i < n; i++)
        queue_call_member(op, pick[i]);
    struct pbx_chan *legs[PBX_MAX_DESTS];
    int nl = op->ndests;
    for (int i = 0; i < nl; i++) {
        legs[i] = op->dests[i].l1;
        chan_ref(legs[i]);
    }
    for (int i = 0; i < nl; i++)
        if (!legs[i]->dead && legs[i]->partner)
            runner_start(legs[i]->partner, legs[i]->lctx, legs[i]->lexten, 1);
    for (int i = 0; i < nl; i++)
        if (!legs[i]->dead)
            dsc(p, legs[i]->device, "INUSE");
    if (!caller->dead && caller->dialop == op) {
        op->starting = 0;
        ptimer_start(p, &op->timer, scaled(p, q->ring_timeout_s * 1000.0), queue_ring_timeout, op);
        struct pbx_chan *ans = op->pending_answer;
        op->pending_answer = NULL;
        if (ans && !ans->dead && ans->dialed_by == op)
            queue_answered(p, ans);
    }
    for (int i = 0; i < nl; i++)
        chan_unref(legs[i]);
    chan_unref(caller);
}

/* Queue(): the overall timeout ran out; the caller goes on in the dialplan. */
static void queue_timeout(struct sim_pbx *p, void *arg)
{
    struct pbx_dial *op = arg;
    struct pbx_chan *y = op->caller;
    chan_ref(y);
    while (op->ndests) {
        struct pbx_chan *d = op->dests[0].l1;
        ev_dial(p, "DialEnd", y, d, "DialStatus", "CANCEL");
        dest_drop(d);
    }
    queue_leave(op, 0);
    ev_varset(p, y, "QUEUESTATUS", "TIMEOUT");
    y->dialop = NULL;
    dial_free(op);
    if (!y->dead && y->running) {
        y->priority++;
        runner_exec(y);
    }
    chan_unref(y);
}

/* Queue(name,options,URL,announce,timeout). */
static void queue_start(struct pbx_chan *c, const char *data)
{
    struct sim_pbx *p = c->p;
    char copy[PBX_DATA];
    CPY(copy, data);
    char *fields[5] = {0};
    char *s = copy;
    for (int i = 0; i < 5 && s; i++) {
        fields[i] = s;
        char *comma = strchr(s, ',');
        if (comma)
            *comma = '\0';
        s = comma ? comma + 1 : NULL;
    }
    struct pbx_queue *q = pbx_queue_find(p, fields[0] ? fields[0] : "");
    struct pbx_dial *op = q ? calloc(1, sizeof(*op)) : NULL;
    if (!op) {
        ev_varset(p, c, "QUEUESTATUS", "UNKNOWN");
        c->priority++;
        runner_exec(c);
        return;
    }
    dial_xfer_options(op, fields[1]);
    op->p = p;
    op->kind = PBX_DIAL_QUEUE;
    op->caller = c;
    op->queue = q;
    op->start_ms = now_ms(p);
    CPY(op->target, q->name);
    c->dialop = op;
    static const char *const vars[] = {"ANSWEREDTIME",  "ANSWEREDTIME_MS", "DIALEDTIME",
                                       "DIALEDTIME_MS", "QUEUEWAIT",       "QUEUEWAIT_MS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        ev_varset(p, c, vars[i], "");
    if (q->ncallers >= PBX_MAX_MEMBERS) {
        ev_varset(p, c, "QUEUESTATUS", "FULL");
        c->dialop = NULL;
        dial_free(op);
        c->priority++;
        runner_exec(c);
        return;
    }
    q->callers[q->ncallers++] = op;
    op->position = q->ncallers;
    if (q->ncallers == 1) {
        char dev[PBX_NAME];
        snprintf(dev, sizeof(dev), "Queue:%s", q->name);
        pbx_devstate_set(p, dev, "RINGING", 1);
    }
    ev_queue_caller(p, "QueueCallerJoin", c, q, op->position, q->ncallers);
    double timeout = fields[4] ? atof(fields[4]) : 0;
    if (timeout > 0)
        ptimer_start(p, &op->qtimer, scaled(p, timeout * 1000.0), queue_timeout, op);
    if (op->position == 1)
        queue_ring(p, op);
    else
        ptimer_start(p, &op->timer, scaled(p, q->retry_s * 1000.0), queue_ring, op);
}

/* A member answered (06a): the others are cancelled, the caller leaves
 * the queue and is bridged with the member. */
static void queue_answered(struct sim_pbx *p, struct pbx_chan *l1)
{
    struct pbx_dial *op = l1->dialed_by;
    if (!op)
        return;
    struct pbx_chan *y = op->caller;
    struct pbx_member *m = NULL;
    for (int i = 0; i < op->ndests; i++)
        if (op->dests[i].l1 == l1)
            m = op->dests[i].member;
    chan_ref(y);
    chan_ref(l1);
    ptimer_cancel(&op->timer);
    ptimer_cancel(&op->qtimer);
    queue_leg_newstate(l1, PBX_CS_UP);
    dsc(p, l1->device, "INUSE");
    ev_dial(p, "DialEnd", y, l1, "DialStatus", "ANSWER");
    struct pbx_chan *others[PBX_MAX_DESTS];
    int no = 0;
    for (int i = 0; i < op->ndests; i++) {
        struct pbx_chan *d = op->dests[i].l1;
        if (d == l1)
            continue;
        /* app_queue reports the cancelled leg twice (06a) */
        ev_dial(p, "DialEnd", y, d, "DialStatus", "CANCEL");
        ev_dial(p, "DialEnd", y, d, "DialStatus", "CANCEL");
        others[no++] = d;
        chan_ref(d);
    }
    for (int i = 0; i < op->ndests; i++)
        if (op->dests[i].member)
            op->dests[i].member->ringing = 0;
    for (int i = 0; i < no; i++)
        others[i]->dialed_by = NULL;
    l1->dialed_by = NULL;
    op->ndests = 0;
    op->answered = 1;
    op->peer = l1;
    op->member = m;
    char devs[PBX_MAX_DESTS][PBX_NAME];
    for (int i = 0; i < no; i++) {
        struct pbx_chan *d = others[i];
        struct pbx_chan *w = d->partner;
        CPY(devs[i], d->device);
        chan_ref(w);
        if (w)
            ev_cause(p, "HangupRequest", w, PBX_CAUSE_ANSWERED_ELSEWHERE);
        stop_activity(d);
        ev_hangup(p, d, PBX_CAUSE_ANSWERED_ELSEWHERE);
        chan_destroy(d);
        if (w && !w->dead) {
            ev_cause(p, "SoftHangupRequest", w, PBX_CAUSE_NORMAL);
            dsc(p, devs[i], "NOT_INUSE");
            w->hangupcause = PBX_CAUSE_ANSWERED_ELSEWHERE;
            stop_activity(w);
            run_h(w);
            ev_hangup(p, w, PBX_CAUSE_ANSWERED_ELSEWHERE);
            chan_destroy(w);
        }
        chan_unref(w);
        chan_unref(d);
    }
    queue_leave(op, 0);
    for (int i = 0; i < no; i++)
        dsc(p, devs[i], "NOT_INUSE");
    uint64_t now = now_ms(p);
    uint64_t wait = now - op->start_ms;
    ev_varset_num(p, y, "QUEUEWAIT", (long)(wait / 1000));
    ev_varset_num(p, y, "QUEUEWAIT_MS", (long)wait);
    struct sim_ev e;
    sim_ev_begin(&e, "AgentConnect", SIM_EV_AGENT);
    blk(&e, "", y);
    blk(&e, "Dest", l1);
    sim_ev_kv(&e, "Queue", op->queue->name);
    sim_ev_kv(&e, "Interface", m ? m->interface : "");
    sim_ev_kv(&e, "MemberName", m ? m->membername : "");
    sim_ev_kvf(&e, "HoldTime", "%ld", (long)(wait / 1000));
    sim_ev_kvf(&e, "RingTime", "%ld", (long)((now - op->start_ms) / 1000));
    sim_ev_end(p->sim, &e);
    if (m)
        m->incall = 1;
    op->answer_ms = now;
    if (y->state != PBX_CS_UP) {
        /* Queue() without Answer() (exten 401): connecting answers the caller */
        chan_answer(y);
        if (y->dead || l1->dead) {
            chan_unref(l1);
            chan_unref(y);
            return;
        }
    }
    struct pbx_bridge *b = bridge_new(p, 1);
    bridge_set_features(b, y, op);
    if (b && !l1->dead && !y->dead) {
        bridge_enter(p, b, l1);
        bridge_enter(p, b, y);
        ev_varset(p, l1, "BRIDGEPEER", y->name);
        ev_varset(p, y, "BRIDGEPEER", l1->name);
    } else {
        free(b);
    }
    chan_unref(l1);
    chan_unref(y);
}

/* ---- AMI-driven changes
 * -------------------------------------------------------------------------- */

/* AMI Hangup: the pair hangs up from this side (05e). */
void pbx_chan_softhangup(struct pbx_chan *c, int cause)
{
    if (c->xfer && c->xfer->transferer == c && c->xfer->step == PBX_XFER_CONSULT) {
        xfer_complete(c->xfer);
        return;
    }
    /* manager.c sets a cause only when one was given (10c: none, Cause 0); a bridged
     * channel is kicked out with normal clearing */
    if (cause <= 0)
        cause = c->hangupcause ? c->hangupcause : c->bridge ? PBX_CAUSE_NORMAL : 0;
    pair_hangup(c, cause, PBX_SOFTHANGUP_APPUNLOAD, c->running);
}

/* AbsoluteTimeout reached. */
static void abs_timeout_fire(struct sim_pbx *p, void *arg)
{
    (void)p;
    struct pbx_chan *c = arg;
    pair_hangup(c, PBX_CAUSE_NORMAL, PBX_CAUSE_NORMAL, 1);
}

void pbx_chan_abs_timeout(struct pbx_chan *c, long secs)
{
    if (secs <= 0) {
        ptimer_cancel(&c->abs_timer);
        return;
    }
    ptimer_start(c->p, &c->abs_timer, scaled(c->p, (double)secs * 1000.0), abs_timeout_fire, c);
}

/* ast_async_goto() on a channel in a bridge (Redirect, BlindTransfer): its snapshot shows the
 * new place at once, still with the application it is in (one Newexten; the first priority
 * then publishes nothing new), it leaves the bridge, the Dial()/Queue() that bridged it
 * returns as after an async goto and it runs the new place (10a2). */
static void bridge_async_goto(struct pbx_chan *c, const char *ctx, const char *exten, int prio)
{
    struct sim_pbx *p = c->p;
    struct pbx_bridge *b = c->bridge;
    CPY(c->context, ctx);
    CPY(c->exten, exten);
    c->priority = prio;
    publish_exten(c);
    ev_bridge(p, "BridgeLeave", b, b->n - 1, c);
    for (int i = 0; i < b->n; i++)
        if (b->chans[i] == c)
            b->chans[i] = b->chans[--b->n];
    c->bridge = NULL;
    if (c->dialop) {
        struct pbx_dial *op = c->dialop;
        op->async_goto = 1;
        if (op->kind == PBX_DIAL_QUEUE)
            agent_complete(op, "transfer");
        dial_finish_vars(op);
        c->dialop = NULL;
        dial_free(op);
    }
    ptimer_cancel(&c->timer);
    c->media_wait = 0;
    c->in_app = 0;
    if (!c->dead)
        runner_start(c, ctx, exten, prio);
}

/* AMI Redirect: the channel leaves what it was doing and runs ctx/exten/prio (05d); out of a
 * bridge by an async goto, and the peer left alone is hung up. */
int pbx_chan_redirect(struct pbx_chan *c, const char *ctx, const char *exten, int prio)
{
    struct sim_pbx *p = c->p;
    chan_ref(c);
    if (c->bridge) {
        struct pbx_bridge *b = c->bridge;
        struct pbx_chan *z = b->chans[0] == c ? (b->n > 1 ? b->chans[1] : NULL) : b->chans[0];
        chan_ref(z);
        ev_varset(p, c, "BRIDGEPEER", "");
        if (z)
            ev_varset(p, z, "BRIDGEPEER", "");
        char cdev[PBX_NAME];
        CPY(cdev, c->device);
        bridge_async_goto(c, ctx, exten, prio);
        if (z && !z->dead)
            bridge_peer_gone(z, cdev, 0);
        else if (b->n == 0)
            free(b);
        chan_unref(z);
        chan_unref(c);
        return 0;
    }
    if (c->dead) {
        chan_unref(c);
        return -1;
    }
    ptimer_cancel(&c->timer);
    c->media_wait = 0;
    c->in_app = 0;
    if (c->dialop) {
        struct pbx_dial *op = c->dialop;
        while (op->ndests) {
            struct pbx_chan *d = op->dests[0].l1;
            ev_dial(p, "DialEnd", c, d, "DialStatus", "CANCEL");
            dest_drop(d);
        }
        if (op->kind == PBX_DIAL_QUEUE)
            queue_leave(op, 1);
        c->dialop = NULL;
        dial_free(op);
    }
    if (!c->dead)
        runner_start(c, ctx, exten, prio);
    chan_unref(c);
    return 0;
}

int pbx_chan_transferable(const struct pbx_chan *c)
{
    return c->bridge && c->bridge->n == 2;
}

/* After a transfer the transferer is alone in the bridge and leaves it (bridge_basic.c):
 * with no dialplan it hangs up with its Local partner, whose dialplan ends from its own
 * thread; the bridge goes after that (10a2). */
static void transferer_leaves(struct pbx_chan *c)
{
    struct sim_pbx *p = c->p;
    struct pbx_bridge *b = c->bridge;
    if (!b)
        return;
    char dev[PBX_NAME];
    CPY(dev, c->device);
    ev_bridge(p, "BridgeLeave", b, b->n - 1, c);
    for (int i = 0; i < b->n; i++)
        if (b->chans[i] == c)
            b->chans[i] = b->chans[--b->n];
    c->bridge = NULL;
    if (c->running) {
        /* a caller whose Dial()/Queue() had bridged it: the application returns and,
         * without the g/c option, the call is over */
        struct pbx_dial *op = c->dialop;
        if (op) {
            dial_finish_vars(op);
            c->dialop = NULL;
            dial_free(op);
        }
        pair_hangup(c, PBX_CAUSE_NORMAL, PBX_SOFTHANGUP_APPUNLOAD, 1);
    } else {
        pair_hangup(c, PBX_CAUSE_NORMAL, 0, 0);
    }
    if (b->n == 0) {
        ev_bridge(p, "BridgeDestroy", b, 0, NULL);
        free(b);
    }
}

/* ast_bridge_transfer_blind() (bridge.c) as the BlindTransfer action runs it. In a two-party
 * bridge (10a2): the transferer is taken off hold, BLINDTRANSFER is set on both channels
 * (each gets the other's name), the transferer's BRIDGEPEER is cleared, the BlindTransfer
 * event goes out, then the transferee's BRIDGEPEER; the transferee is sent to ctx/exten/1 by an
 * async goto and the transferer, left alone, leaves and hangs up. Anything else is
 * AST_BRIDGE_TRANSFER_INVALID: the event says so and nothing moves (10a). */
void pbx_chan_blind_transfer(struct pbx_chan *c, const char *ctx, const char *exten)
{
    struct sim_pbx *p = c->p;
    struct pbx_bridge *b = pbx_chan_transferable(c) ? c->bridge : NULL;
    struct pbx_chan *z = b ? (b->chans[0] == c ? b->chans[1] : b->chans[0]) : NULL;
    chan_ref(c);
    chan_ref(z);
    if (z) {
        ev_hold(p, "Unhold", c);
        /* set_transfer_variables_all(), in the bridge's order */
        for (int i = 0; i < b->n; i++) {
            struct pbx_chan *x = b->chans[i];
            pbx_setvar(p, x, "BLINDTRANSFER", x == c ? z->name : c->name);
        }
        ev_varset(p, c, "BRIDGEPEER", "");
    }
    struct sim_ev e;
    sim_ev_begin(&e, "BlindTransfer", SIM_EV_CALL);
    sim_ev_kv(&e, "Result", z ? "Success" : "Invalid");
    blk(&e, "Transferer", c);
    if (z) {
        blk(&e, "Transferee", z);
        bridge_blk(&e, "", b, b->n);
    }
    sim_ev_kv(&e, "IsExternal", "Yes");
    sim_ev_kv(&e, "Context", ctx);
    sim_ev_kv(&e, "Extension", exten);
    sim_ev_end(p->sim, &e);
    if (z && !z->dead) {
        ev_varset(p, z, "BRIDGEPEER", "");
        bridge_async_goto(z, ctx, exten, 1);
        if (!c->dead)
            transferer_leaves(c);
    }
    chan_unref(z);
    chan_unref(c);
}

/* ---- Atxfer --------------------------------------------------------------------------------
 *
 * Action Atxfer queues the atxfer code and the extension as DTMF on the channel. In a
 * two-party bridge whose Dial()/Queue() lets that side transfer (T/t, or BRIDGE_FEATURES of
 * the caller), the bridge reads the code, puts the call on hold, collects the extension and
 * dials it from a second bridge, where the transferer then talks to the target. When the
 * transferer hangs up, the second bridge is merged into the first: the target takes the
 * transferer's place (10b2). Elsewhere the digits are only read (DTMFEnd). Other endings
 * (target busy or never answering, the transferee hanging up first) are not modelled: the
 * transfer is dropped and everyone stays where they are. */

/* The transfer is over or dropped; every party forgets it. */
static void xfer_free(struct pbx_xfer *x)
{
    ptimer_cancel(&x->timer);
    struct pbx_chan *parties[] = {x->transferer, x->transferee, x->target};
    for (size_t i = 0; i < sizeof(parties) / sizeof(parties[0]); i++)
        if (parties[i] && parties[i]->xfer == x)
            parties[i]->xfer = NULL;
    free(x);
}

static int bridge_remove(struct pbx_bridge *b, struct pbx_chan *c)
{
    for (int i = 0; i < b->n; i++) {
        if (b->chans[i] == c) {
            b->chans[i] = b->chans[--b->n];
            c->bridge = NULL;
            return 1;
        }
    }
    return 0;
}

static void xfer_dial(struct pbx_xfer *x);
static void xfer_read(struct sim_pbx *p, void *arg);

/* The code is complete: the transferee is put on hold, then the extension is collected. */
static void xfer_hold(struct sim_pbx *p, void *arg)
{
    struct pbx_xfer *x = arg;
    ev_hold(p, "Hold", x->transferer);
    x->step = PBX_XFER_DIGITS;
    if (x->queued[x->pos])
        ptimer_start(p, &x->timer, scaled(p, PBX_DTMF_COLLECT_GAP_MS), xfer_read, x);
    else
        xfer_dial(x);
}

/* The transferer's channel reads its next queued digit. */
static void xfer_read(struct sim_pbx *p, void *arg)
{
    struct pbx_xfer *x = arg;
    char d = x->queued[x->pos++];
    ev_dtmf_end(p, x->transferer, d);
    int more = x->queued[x->pos] != '\0';
    switch (x->step) {
    case PBX_XFER_CODE:
        if (x->pos == x->code_len)
            ptimer_start(p, &x->timer, scaled(p, PBX_ATXFER_HOLD_MS), xfer_hold, x);
        else
            ptimer_start(p, &x->timer, scaled(p, PBX_DTMF_FEATURE_GAP_MS), xfer_read, x);
        break;
    case PBX_XFER_DIGITS:
        if (x->nexten + 1 < sizeof(x->exten)) {
            x->exten[x->nexten++] = d;
            x->exten[x->nexten] = '\0';
        }
        if (more)
            ptimer_start(p, &x->timer, scaled(p, PBX_DTMF_COLLECT_GAP_MS), xfer_read, x);
        else
            xfer_dial(x);
        break;
    default:
        if (more)
            ptimer_start(p, &x->timer, scaled(p, PBX_DTMF_FEATURE_GAP_MS), xfer_read, x);
        else
            xfer_free(x);
        break;
    }
}

/* Dial the target from a second bridge (bridge_basic.c, dial_transfer()): a Local pair
 * created from the transferer, so it carries its Linkedid and caller id (10b2). */
static void xfer_dial(struct pbx_xfer *x)
{
    struct sim_pbx *p = x->p;
    struct pbx_chan *c = x->transferer;
    char ctx[PBX_STR];
    int found = 0;
    char buf[PBX_STR];
    pbx_getvar(p, c, "TRANSFER_CONTEXT", buf, sizeof(buf), &found);
    CPY(ctx, found && buf[0] ? buf : c->context);
    struct pbx_chan *t1, *t2;
    if (!pbx_exten_exists(ctx, x->exten, 1) ||
        pair_new(p, x->exten, ctx, NULL, NULL, c->linkedid, &t1, &t2) < 0) {
        /* "Unable to acquire target extension": back to the transferee */
        ev_hold(p, "Unhold", c);
        xfer_free(x);
        return;
    }
    x->step = PBX_XFER_DIAL;
    x->target = t1;
    t1->xfer = x;
    ev_chan(p, "Newchannel", t1);
    ev_chan(p, "Newchannel", t2);
    pbx_setvar(p, t1, "TRANSFERERNAME", c->name);
    pbx_setvar(p, t1, "ATTENDEDTRANSFER", c->name);
    x->second = bridge_new(p, 0);
    pbx_setvar(p, t2, "ATTENDEDTRANSFER", c->name);
    pbx_setvar(p, t2, "TRANSFERERNAME", c->name);
    CPY(t2->cid_num, c->cid_num);
    CPY(t2->cid_name, c->cid_name);
    ev_newcallerid(p, t2);
    ev_localbridge(p, t1, t2);
    runner_start(t2, ctx, x->exten, 1);
}

/* The target answered: it enters the second bridge, the transferer leaves the first (where
 * the transferee waits on hold) for it (10b2). */
static void xfer_target_answered(struct pbx_xfer *x)
{
    struct sim_pbx *p = x->p;
    struct pbx_chan *t1 = x->target, *c = x->transferer;
    if (!x->second || !x->first || c->bridge != x->first) {
        xfer_free(x);
        return;
    }
    CPY(t1->col_num, c->cid_num);
    CPY(t1->col_name, c->cid_name);
    ev_chan(p, "NewConnectedLine", t1);
    bridge_enter(p, x->second, t1);
    pbx_setvar(p, t1, "ATTENDEDTRANSFER", "");
    t1->state = PBX_CS_UP;
    ev_chan(p, "Newstate", t1);
    ev_dial(p, "DialEnd", NULL, t1, "DialStatus", "ANSWER");
    dsc(p, t1->device, "INUSE");
    ev_bridge(p, "BridgeLeave", x->first, x->first->n - 1, c);
    bridge_remove(x->first, c);
    bridge_enter(p, x->second, c);
    ev_varset(p, t1, "BRIDGEPEER", c->name);
    ev_varset(p, c, "BRIDGEPEER", t1->name);
    dsc(p, t1->device, "INUSE");
    x->step = PBX_XFER_CONSULT;
}

/* The transferer hung up while talking to the target: the second bridge is merged into the
 * first, the target takes the transferer's place and the transferer goes (10b2). */
static void xfer_complete(struct pbx_xfer *x)
{
    struct sim_pbx *p = x->p;
    struct pbx_chan *c = x->transferer, *z = x->transferee, *t1 = x->target;
    struct pbx_bridge *first = x->first, *second = x->second;
    struct pbx_chan *c2 = c->partner && !c->partner->dead ? c->partner : NULL;
    xfer_free(x);
    chan_ref(c);
    chan_ref(c2);
    char dev[PBX_NAME];
    CPY(dev, c->device);
    c->hangupcause = PBX_CAUSE_NORMAL;
    ev_varset(p, c, "BRIDGEPEER", "");
    ev_bridge(p, "BridgeLeave", second, second->n - 1, c);
    bridge_remove(second, c);
    if (c2)
        ev_cause(p, "HangupRequest", c2, PBX_CAUSE_NORMAL);
    struct sim_ev e;
    sim_ev_begin(&e, "BridgeMerge", SIM_EV_CALL);
    bridge_blk(&e, "To", first, first->n);
    bridge_blk(&e, "From", second, second->n);
    sim_ev_end(p->sim, &e);
    ev_bridge(p, "BridgeLeave", second, second->n - 1, t1);
    bridge_remove(second, t1);
    bridge_enter(p, first, t1);
    ev_varset(p, z, "BRIDGEPEER", t1->name);
    ev_varset(p, t1, "BRIDGEPEER", z->name);
    sim_ev_begin(&e, "AttendedTransfer", SIM_EV_CALL);
    sim_ev_kv(&e, "Result", "Success");
    blk(&e, "OrigTransferer", c);
    bridge_blk(&e, "Orig", first, first->n);
    blk(&e, "SecondTransferer", c);
    bridge_blk(&e, "Second", second, second->n);
    blk(&e, "Transferee", z);
    sim_ev_kv(&e, "IsExternal", "No");
    sim_ev_kv(&e, "DestType", "Bridge");
    sim_ev_kv(&e, "DestBridgeUniqueid", first->uuid);
    sim_ev_end(p->sim, &e);
    if (z->dialop && z->dialop->peer == c)
        z->dialop->peer = t1;
    if (c2) {
        int pbx = c2->running;
        c2->hangupcause = PBX_CAUSE_NORMAL;
        stop_activity(c2);
        if (pbx)
            ev_cause(p, "SoftHangupRequest", c2, PBX_SOFTHANGUP_APPUNLOAD);
        run_h(c2);
        ev_hangup(p, c2, PBX_CAUSE_NORMAL);
        chan_destroy(c2);
    }
    /* the target's connected line is now the transferee; its Local partner reads that as
     * its caller id when its current application ends */
    CPY(t1->col_num, z->cid_num);
    CPY(t1->col_name, z->cid_name);
    ev_chan(p, "NewConnectedLine", t1);
    if (t1->partner && !t1->partner->dead) {
        t1->partner->cid_reset_pending = 1;
        CPY(t1->partner->next_cid_num, t1->col_num);
        CPY(t1->partner->next_cid_name, t1->col_name);
    }
    ev_bridge(p, "BridgeDestroy", second, 0, NULL);
    free(second);
    stop_activity(c);
    ev_hangup(p, c, PBX_CAUSE_NORMAL);
    chan_destroy(c);
    dsc(p, dev, "NOT_INUSE");
    dsc(p, dev, "NOT_INUSE");
    chan_unref(c2);
    chan_unref(c);
}

void pbx_chan_atxfer(struct pbx_chan *c, const char *exten)
{
    struct sim_pbx *p = c->p;
    if (c->xfer || !*exten)
        return;
    struct pbx_xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return;
    x->p = p;
    x->transferer = c;
    c->xfer = x;
    snprintf(x->queued, sizeof(x->queued), "%s%s", p->atxfer_code, exten);
    x->code_len = strlen(p->atxfer_code);
    struct pbx_bridge *b = c->bridge;
    int allowed = b && b->n == 2 && (b->caller == c ? b->xfer_caller : b->xfer_callee);
    if (allowed) {
        x->step = PBX_XFER_CODE;
        x->first = b;
        x->transferee = b->chans[0] == c ? b->chans[1] : b->chans[0];
        x->transferee->xfer = x;
    }
    xfer_read(p, x);
}

/* ---- variables
 * ----------------------------------------------------------------------------------- */

void pbx_setvar(struct sim_pbx *p, struct pbx_chan *c, const char *name, const char *value)
{
    var_put(c ? &c->vars : &p->globals, name, value);
    ev_varset(p, c, name, value);
}

static const char *func_read(struct sim_pbx *p, struct pbx_chan *c, const char *fn, const char *arg,
                             char *buf, size_t len, int *found)
{
    (void)p;
    *found = 1;
    if (!strcasecmp(fn, "CHANNEL")) {
        if (!strcasecmp(arg, "state"))
            snprintf(buf, len, "%s", pbx_state_desc(c ? c->state : PBX_CS_DOWN));
        else if (!strcasecmp(arg, "language"))
            snprintf(buf, len, "en");
        else if (!strcasecmp(arg, "name"))
            snprintf(buf, len, "%s", c ? c->name : "");
        else if (!strcasecmp(arg, "uniqueid"))
            snprintf(buf, len, "%s", c ? c->uniqueid : "");
        else if (!strcasecmp(arg, "linkedid"))
            snprintf(buf, len, "%s", c ? c->linkedid : "");
        else if (!strcasecmp(arg, "channeltype"))
            snprintf(buf, len, "Local");
        else if (!strcasecmp(arg, "context"))
            snprintf(buf, len, "%s", c ? c->context : "");
        else if (!strcasecmp(arg, "exten"))
            snprintf(buf, len, "%s", c ? c->exten : "");
        else {
            *found = 0;
            buf[0] = '\0';
        }
        return buf;
    }
    if (!strcasecmp(fn, "CALLERID")) {
        if (!strcasecmp(arg, "num") || !strcasecmp(arg, "number"))
            snprintf(buf, len, "%s", c ? c->cid_num : "");
        else if (!strcasecmp(arg, "name"))
            snprintf(buf, len, "%s", c ? c->cid_name : "");
        else if (!strcasecmp(arg, "all"))
            snprintf(buf, len, "\"%s\" <%s>", c ? c->cid_name : "", c ? c->cid_num : "");
        else {
            *found = 0;
            buf[0] = '\0';
        }
        return buf;
    }
    *found = 0;
    buf[0] = '\0';
    return buf;
}

const char *pbx_getvar(struct sim_pbx *p, struct pbx_chan *c, const char *name, char *buf,
                       size_t len, int *found)
{
    size_t n = strlen(name);
    *found = 0;
    buf[0] = '\0';
    if (n && name[n - 1] == ')') {
        const char *open = strchr(name, '(');
        if (!open)
            return buf;
        char fn[PBX_STR], arg[PBX_STR];
        snprintf(fn, sizeof(fn), "%.*s", (int)(open - name), name);
        snprintf(arg, sizeof(arg), "%.*s", (int)(name + n - 1 - open - 1), open + 1);
        return func_read(p, c, fn, arg, buf, len, found);
    }
    struct pbx_var *v = c ? var_find(c->vars, name) : NULL;
    if (!v)
        v = var_find(p->globals, name);
    if (v) {
        *found = 1;
        snprintf(buf, len, "%s", v->value);
        return buf;
    }
    *found = 1;
    if (c && !strcmp(name, "CHANNEL"))
        snprintf(buf, len, "%s", c->name);
    else if (c && !strcmp(name, "UNIQUEID"))
        snprintf(buf, len, "%s", c->uniqueid);
    else if (c && !strcmp(name, "CONTEXT"))
        snprintf(buf, len, "%s", c->context);
    else if (c && !strcmp(name, "EXTEN"))
        snprintf(buf, len, "%s", c->exten);
    else if (c && !strcmp(name, "PRIORITY"))
        snprintf(buf, len, "%d", c->priority);
    else if (c && !strcmp(name, "HANGUPCAUSE"))
        snprintf(buf, len, "%d", c->hangupcause);
    else if (!strcmp(name, "EPOCH"))
        snprintf(buf, len, "%ld", pbx_now_s());
    else
        *found = 0;
    return buf;
}

/* ---- CLI
 * ------------------------------------------------------------------------------------------- */

static void cli(struct strbuf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* printf into the CLI output. */
static void cli(struct strbuf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(out, fmt, ap);
    va_end(ap);
}

static const char *ess(long n)
{
    return n == 1 ? "" : "s";
}

/* handle_chanlist() of cli.c, default format. */
static void cli_channels(struct sim_pbx *p, struct strbuf *out)
{
    cli(out, "%-64.64s %-32.32s %-7.7s %-30.30s\n", "Channel", "Location", "State",
        "Application(Data)");
    for (struct pbx_chan *c = p->chans; c; c = c->next) {
        char loc[PBX_DATA], app[PBX_DATA + PBX_STR + 4];
        if (c->context[0] && c->exten[0])
            snprintf(loc, sizeof(loc), "%s@%s:%d", c->exten, c->context, c->priority);
        else
            snprintf(loc, sizeof(loc), "(None)");
        if (c->appl[0])
            snprintf(app, sizeof(app), "%s(%s)", c->appl, c->data);
        else
            snprintf(app, sizeof(app), "(None)");
        cli(out, "%-64.64s %-32.32s %-7.7s %-30.30s\n", c->name, loc, pbx_state_desc(c->state),
            app);
    }
    cli(out, "%zu active channel%s\n", p->nchans, ess((long)p->nchans));
    cli(out, "%lu active call%s\n", p->active_calls, ess((long)p->active_calls));
    cli(out, "%lu call%s processed\n", p->processed_calls, ess((long)p->processed_calls));
}

/* ast_devstate2str() */
static const char *devstate_str(int st)
{
    switch (st) {
    case PBX_DEV_NOT_INUSE:
        return "Not in use";
    case PBX_DEV_INUSE:
        return "In use";
    case PBX_DEV_BUSY:
        return "Busy";
    case PBX_DEV_INVALID:
        return "Invalid";
    case PBX_DEV_UNAVAILABLE:
        return "Unavailable";
    case PBX_DEV_RINGING:
        return "Ringing";
    default:
        return "Unknown";
    }
}

/* __queues_show() of app_queue.c, colours stripped. */
static void cli_queue(struct sim_pbx *p, const struct pbx_queue *q, struct strbuf *out)
{
    long now = pbx_now_s();
    char max[32];
    if (q->maxlen)
        snprintf(max, sizeof(max), "%d", q->maxlen);
    else
        snprintf(max, sizeof(max), "unlimited");
    cli(out,
        "%s has %d calls (max %s) in '%s' strategy (%lds holdtime, %lds talktime), W:%d, C:%d, "
        "A:%d, SL:%2.1f%%, SL2:%2.1f%% within %ds\n",
        q->name, q->ncallers, max, q->strategy, q->holdtime, q->talktime, q->weight, q->completed,
        q->abandoned, 0.0, 0.0, 0);
    if (q->nmembers) {
        cli(out, "   Members: \n");
        for (int i = 0; i < q->nmembers; i++) {
            const struct pbx_member *m = &q->members[i];
            cli(out, "      %s", m->membername);
            if (strcasecmp(m->membername, m->interface)) {
                cli(out, " (%s", m->interface);
                if (strcmp(m->state_interface, m->interface))
                    cli(out, " from %s", m->state_interface);
                cli(out, ")");
            }
            if (m->penalty)
                cli(out, " with penalty %d", m->penalty);
            cli(out, " (ringinuse %s)", m->ringinuse ? "enabled" : "disabled");
            if (m->dynamic)
                cli(out, " (dynamic)");
            if (m->incall)
                cli(out, " (in call)");
            if (m->paused)
                cli(out, " (paused%s%s was %ld secs ago)", m->reason[0] ? ":" : "", m->reason,
                    now - m->lastpause);
            cli(out, " (%s)", devstate_str(m->status));
            if (m->calls)
                cli(out, " has taken %d calls (last was %ld secs ago)", m->calls,
                    now - m->lastcall);
            else
                cli(out, " has taken no calls yet");
            cli(out, " (login was %ld secs ago)\n", now - m->logintime);
        }
    } else {
        cli(out, "   No Members\n");
    }
    if (q->ncallers) {
        cli(out, "   Callers: \n");
        for (int i = 0; i < q->ncallers; i++) {
            const struct pbx_dial *op = q->callers[i];
            long wait = (long)((uv_now(sim_loop(p->sim)) - op->start_ms) / 1000);
            cli(out, "      %d. %s (wait: %ld:%2.2ld, prio: 0)\n", i + 1, op->caller->name,
                wait / 60, wait % 60);
        }
    } else {
        cli(out, "   No Callers\n");
    }
    /* app_queue ends each queue with two empty lines (05g) */
    cli(out, "\n\n");
}

/* show_dialplan_helper() for one extension or the demo context. */
static void cli_dialplan(const char *what, struct strbuf *out, int *ok)
{
    char exten[PBX_STR] = "", ctx[PBX_STR] = "";
    const char *at = strchr(what, '@');
    if (at) {
        snprintf(exten, sizeof(exten), "%.*s", (int)(at - what), what);
        snprintf(ctx, sizeof(ctx), "%.*s", (int)sizeof(ctx) - 1, at + 1);
    } else {
        snprintf(ctx, sizeof(ctx), "%.*s", (int)sizeof(ctx) - 1, what);
    }
    if (ctx[0] && !pbx_context_exists(ctx)) {
        cli(out, "There is no existence of '%s' context\n", ctx);
        *ok = 0;
        return;
    }
    if (exten[0] && !dp_find(DP_CONTEXT, exten, 1)) {
        cli(out, "There is no existence of %s@%s extension\n", exten, ctx);
        *ok = 0;
        return;
    }
    cli(out, "[ Context '%s' created by 'pbx_config' ]\n", DP_CONTEXT);
    int nexten = 0, nprio = 0;
    const char *last = NULL;
    for (size_t i = 0; i < DP_N; i++) {
        const struct dp_prio *e = &dp_demo[i];
        if (exten[0] && strcmp(e->exten, exten))
            continue;
        char first[PBX_STR] = "";
        if (!last || strcmp(last, e->exten)) {
            snprintf(first, sizeof(first), "'%s' =>", e->exten);
            nexten++;
            last = e->exten;
        }
        char app[PBX_DATA];
        snprintf(app, sizeof(app), "%d. %s(%s)", e->prio, e->app, e->data);
        cli(out, "  %-17s %-45s [extensions.conf:%d]\n", first, app, e->line);
        nprio++;
    }
    cli(out, "\n");
    cli(out, "-= %d extension%s (%d priorit%s) in 1 context. =-\n", nexten, ess(nexten), nprio,
        nprio == 1 ? "y" : "ies");
}

int sim_pbx_cli(struct sim_pbx *p, const char *cmd, struct strbuf *out, int *ok)
{
    char words[4][PBX_DATA];
    int n = 0;
    const char *s = cmd;
    while (*s && n < 4) {
        while (*s == ' ')
            s++;
        const char *e = s;
        while (*e && *e != ' ')
            e++;
        if (e == s)
            break;
        snprintf(words[n++], PBX_DATA, "%.*s", (int)(e - s), s);
        s = e;
    }
    while (*s == ' ')
        s++;
    if (*s)
        return 0;
    if (n == 3 && !strcmp(words[0], "core") && !strcmp(words[1], "show") &&
        !strcmp(words[2], "channels")) {
        cli_channels(p, out);
        return 1;
    }
    if (n >= 2 && !strcmp(words[0], "queue") && !strcmp(words[1], "show") && n <= 3) {
        if (n == 3) {
            const struct pbx_queue *q = pbx_queue_find(p, words[2]);
            if (!q) {
                cli(out, "No such queue: %s.\n", words[2]);
                *ok = 0;
            } else {
                cli_queue(p, q, out);
            }
        } else {
            for (int i = 0; i < p->nqueues; i++)
                cli_queue(p, &p->queues[i], out);
        }
        return 1;
    }
    if (n >= 2 && n <= 3 && !strcmp(words[0], "dialplan") && !strcmp(words[1], "show")) {
        cli_dialplan(n == 3 ? words[2] : DP_CONTEXT, out, ok);
        return 1;
    }
    return 0;
}

/* ---- lifecycle
 * ---------------------------------------------------------------------------------------- */

size_t sim_pbx_live_channels(const struct sim_pbx *p)
{
    return p ? p->nchans : 0;
}

unsigned long sim_pbx_active_calls(const struct sim_pbx *p)
{
    return p ? p->active_calls : 0;
}

unsigned long sim_pbx_processed_calls(const struct sim_pbx *p)
{
    return p ? p->processed_calls : 0;
}

void sim_pbx_session_gone(struct sim_pbx *p, struct sim_session *s)
{
    if (!p)
        return;
    for (struct pbx_orig *o = p->origs; o; o = o->next) {
        if (o->session == s) {
            o->session = NULL;
            sim_session_unref(s);
        }
    }
}

/* `core restart now` / `core stop`: every call is hung up with its events
 * (08a): shutdown soft-hangup (cause 4) on both halves, then the pair. */
void sim_pbx_hangup_all(struct sim_pbx *p, int restarting)
{
    (void)restarting;
    while (p->chans) {
        struct pbx_chan *c = p->chans;
        struct pbx_chan *x = (c->leg == 2 && c->partner) ? c->partner : c;
        ev_cause(p, "SoftHangupRequest", x, 4);
        if (x->partner)
            ev_cause(p, "SoftHangupRequest", x->partner, 4);
        pair_hangup(x, 0, PBX_CAUSE_NORMAL, 1);
        if (!x->dead)
            chan_destroy(x);
    }
    pbx_drain(p);
}

/* --devstate DEVICE=STATE: a cached state the capture machine's history left
 * behind; a queue's _avail hint also decides when its next change is news. */
static void devstate_preset(struct sim_pbx *p, const char *spec)
{
    const char *eq = strrchr(spec, '=');
    char dev[PBX_NAME];
    if (!eq || (size_t)(eq - spec) >= sizeof(dev))
        return;
    snprintf(dev, sizeof(dev), "%.*s", (int)(eq - spec), spec);
    pbx_devstate_set(p, dev, eq + 1, 0);
    for (int i = 0; i < p->nqueues; i++) {
        char avail[PBX_NAME];
        snprintf(avail, sizeof(avail), "Queue:%s_avail", p->queues[i].name);
        if (!strcmp(avail, dev))
            p->queues[i].avail_inuse = !strcmp(eq + 1, "INUSE");
    }
}

/* A member from queues.conf. */
static void queue_add_static(struct pbx_queue *q, const char *iface, const char *name,
                             int ringinuse)
{
    struct pbx_member *m = &q->members[q->nmembers++];
    memset(m, 0, sizeof(*m));
    CPY(m->interface, iface);
    CPY(m->membername, name);
    CPY(m->state_interface, iface);
    m->status = PBX_DEV_NOT_INUSE;
    m->logintime = pbx_now_s();
    m->ringinuse = ringinuse;
}

struct sim_pbx *sim_pbx_new(struct sim *sim)
{
    struct sim_pbx *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->sim = sim;
    p->chan_seq = sim_opts(sim)->channel_seq;
    p->uid_seq = sim_opts(sim)->uniqueid_seq;
    p->reaper = calloc(1, sizeof(*p->reaper));
    if (!p->reaper) {
        free(p);
        return NULL;
    }
    uv_timer_init(sim_loop(sim), p->reaper);
    p->reaper->data = p;
    /* QueueStatus lists support before sales on the capture machine */
    struct pbx_queue *q = &p->queues[p->nqueues++];
    CPY(q->name, "support");
    CPY(q->strategy, "rrmemory");
    q->ring_timeout_s = 10;
    q->retry_s = 5;
    q->ringinuse = 1;
    q->avail_inuse = 1;
    queue_add_static(q, "Local/202@demo", "Agent202", 1);
    q = &p->queues[p->nqueues++];
    CPY(q->name, "sales");
    CPY(q->strategy, "ringall");
    q->ring_timeout_s = 15;
    q->retry_s = 2;
    q->ringinuse = 0;
    q->avail_inuse = 0;
    queue_add_static(q, "Local/200@demo", "Agent200", 0);
    queue_add_static(q, "Local/201@demo", "Agent201", 0);
    /* DeviceStateList order of 05j (newest first) */
    pbx_devstate_set(p, "Queue:sales_pause_Local/201@demo", "NOT_INUSE", 0);
    pbx_devstate_set(p, "Queue:sales_avail", "NOT_INUSE", 0);
    pbx_devstate_set(p, "Queue:support_avail", "INUSE", 0);
    pbx_devstate_set(p, "Queue:support_pause_Local/202@demo", "NOT_INUSE", 0);
    pbx_devstate_set(p, "Queue:sales_pause_Local/200@demo", "NOT_INUSE", 0);
    const struct sim_opts *o = sim_opts(sim);
    for (int i = 0; i < o->ndevstates; i++)
        devstate_preset(p, o->devstates[i]);
    CPY(p->atxfer_code, o->no_features_conf ? "" : PBX_FEATURES_ATXFER);
    var_put(&p->globals, "DEMO_GLOBAL", "hello");
    return p;
}

/* The reaper timer is heap-allocated so it can outlive the PBX briefly. */
static void reaper_closed(uv_handle_t *h)
{
    free(h);
}

void sim_pbx_free(struct sim_pbx *p)
{
    if (!p)
        return;
    while (p->soon_head) {
        struct pbx_soon *w = p->soon_head;
        p->soon_head = w->next;
        if (w->s)
            sim_session_unref(w->s);
        if (w->c)
            w->c->refs--;
        free(w);
    }
    p->soon_tail = NULL;
    while (p->chans)
        chan_destroy(p->chans);
    while (p->origs) {
        struct pbx_orig *o = p->origs;
        if (o->chan)
            o->chan->orig = NULL;
        orig_free(o);
    }
    while (p->dead) {
        struct pbx_chan *c = p->dead;
        p->dead = c->dead_next;
        pbx_var_free_all(&c->vars);
        free(c);
    }
    while (p->devstates) {
        struct pbx_devstate_entry *d = p->devstates;
        p->devstates = d->next;
        free(d);
    }
    pbx_var_free_all(&p->globals);
    uv_timer_stop(p->reaper);
    uv_close((uv_handle_t *)p->reaper, reaper_closed);
    free(p);
}
