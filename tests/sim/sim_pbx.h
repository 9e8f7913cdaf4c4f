/* sim_pbx: the simulated PBX behind ami-sim, shared by sim_pbx.c (engine)
 * and sim_pbx_actions.c (the AMI actions that read or drive it).
 *
 * Model: every call is made of Local channel pairs ("Local/EXT@CTX-000000NN;1"
 * and ";2"), as on the capture machine, which had no SIP. The ;2 half runs
 * the demo dialplan of tests/data/transcripts/asterisk-conf/extensions.conf;
 * the ;1 half is either an originated channel (it runs the Originate's
 * destination once answered) or the outgoing leg of a Dial()/Queue().
 * Events are emitted in the order the captures show for each flow; where
 * Asterisk's order depends on thread timing one order was chosen.
 */
#ifndef AMIBRIDGE_SIM_PBX_H
#define AMIBRIDGE_SIM_PBX_H

#include "sim/sim.h"

#define PBX_NAME        96
#define PBX_STR         80
#define PBX_DATA        256
#define PBX_MAX_DESTS   8
#define PBX_MAX_MEMBERS 32
#define PBX_UUID        40
/* the atxfer code of asterisk-conf/features.conf */
#define PBX_FEATURES_ATXFER "*2"

enum pbx_state {
    PBX_CS_DOWN = 0,
    PBX_CS_RING = 4,
    PBX_CS_RINGING = 5,
    PBX_CS_UP = 6,
    PBX_CS_BUSY = 7,
};

/* ast_devstate values as QueueMember "Status" prints them. */
enum pbx_devstate {
    PBX_DEV_UNKNOWN = 0,
    PBX_DEV_NOT_INUSE = 1,
    PBX_DEV_INUSE = 2,
    PBX_DEV_BUSY = 3,
    PBX_DEV_INVALID = 4,
    PBX_DEV_UNAVAILABLE = 5,
    PBX_DEV_RINGING = 6,
};

struct pbx_var {
    struct pbx_var *next;
    char *name;
    char *value;
};

struct pbx_timer;
struct pbx_dial;
struct pbx_bridge;
struct pbx_orig;
struct pbx_queue;
struct pbx_member;
struct pbx_xfer;

struct pbx_chan {
    struct sim_pbx *p;
    struct pbx_chan *prev, *next; /* live channels, creation order */
    struct pbx_chan *dead_next;
    int refs;
    int dead;
    char name[PBX_NAME];
    char uniqueid[PBX_STR];
    char linkedid[PBX_STR];
    int state;
    char cid_num[PBX_STR], cid_name[PBX_STR];
    char col_num[PBX_STR], col_name[PBX_STR];
    char context[PBX_STR], exten[PBX_STR];
    int priority;
    char appl[PBX_STR];
    char data[PBX_DATA];
    /* Newexten bookkeeping: the CEP last published */
    char pub_context[PBX_STR], pub_exten[PBX_STR];
    int pub_priority;
    int pub_appl_set;
    /* Local pair */
    int leg;
    struct pbx_chan *partner;
    char device[PBX_NAME]; /* "Local/EXT@CTX" */
    char lexten[PBX_STR], lctx[PBX_STR];
    struct pbx_var *vars;
    struct timeval created;
    int running; /* executing dialplan */
    int ran_pbx; /* ran dialplan: the h extension runs on hangup */
    int in_app;  /* executing an Originate Application */
    int hangupcause;
    int media_wait; /* Answer()'s wait for media */
    struct pbx_timer *timer;
    struct pbx_timer *abs_timer; /* AbsoluteTimeout */
    struct pbx_orig *orig;       /* ;1 of an Originate */
    struct pbx_dial *dialop;     /* this channel runs Dial()/Queue() */
    struct pbx_dial *dialed_by;  /* this ;1 is an outgoing leg of a dial */
    struct pbx_bridge *bridge;
    struct pbx_xfer *xfer; /* an Atxfer this channel takes part in (any role) */
    int cid_reset_pending; /* a caller id change it has not read yet (10b2) */
    char next_cid_num[PBX_STR], next_cid_name[PBX_STR];
    /* Queue legs: what app_queue set on the outgoing channel but was not
     * published yet (it shows at the first state change). */
    int pending_pub;
    char pend_context[PBX_STR], pend_exten[PBX_STR];
    char pend_col_num[PBX_STR], pend_col_name[PBX_STR];
};

struct pbx_orig {
    struct sim_pbx *p;
    struct pbx_orig *next;
    struct sim_session *session; /* sync: waits for the outcome; referenced */
    char actionid[PBX_DATA];
    int async;
    char channel[PBX_DATA]; /* as requested */
    char context[PBX_STR], exten[PBX_STR];
    int priority;
    char app[PBX_STR];
    char appdata[PBX_DATA];
    char cid_num[PBX_STR], cid_name[PBX_STR];
    int has_cid;
    char chanid[PBX_STR], otherchanid[PBX_STR];
    uint64_t timeout_ms;
    struct pbx_var *vars;
    struct pbx_chan *chan; /* the ;1 */
    struct pbx_timer *timer;
    int done;
    int or_sent;
    int dial_open; /* DialBegin published, no DialEnd yet */
};

enum pbx_dial_kind { PBX_DIAL_APP, PBX_DIAL_QUEUE };

enum pbx_dest_state { PBX_DEST_RINGING, PBX_DEST_ANSWERED, PBX_DEST_GONE };

struct pbx_dest {
    struct pbx_chan *l1;
    char num[PBX_DATA]; /* "201@demo": its DialString and DIALEDPEERNUMBER */
    struct pbx_member *member;
    enum pbx_dest_state state;
};

struct pbx_dial {
    struct sim_pbx *p;
    enum pbx_dial_kind kind;
    struct pbx_chan *caller;
    struct pbx_dest dests[PBX_MAX_DESTS];
    int ndests;
    char target[PBX_DATA]; /* Dial: "Local/600@demo"; Queue: queue name */
    uint64_t ring_timeout_ms;
    struct pbx_timer *timer;  /* ring timeout / retry */
    struct pbx_timer *qtimer; /* Queue(): overall timeout */
    struct pbx_queue *queue;
    int starting;
    struct pbx_chan *pending_answer;
    uint64_t start_ms;
    uint64_t answer_ms;
    uint64_t ring_start_ms;
    int ringing_seen;
    int answered;
    int async_goto; /* its channel left the bridge for elsewhere: no end-of-bridge times */
    int xfer_caller, xfer_callee; /* the T and t options: who may transfer once bridged */
    struct pbx_chan *peer;        /* the answered outgoing ;1 */
    struct pbx_member *member;
    int position;
};

struct pbx_bridge {
    char uuid[PBX_UUID];
    struct pbx_chan *chans[2];
    int n;
    int queue_style; /* device-state events placed as after a Queue() call */
    /* the Dial()/Queue() caller, and who may transfer: its T/t options or BRIDGE_FEATURES
     * (features.c set_bridge_features_on_config(): T the caller, t the called party) */
    struct pbx_chan *caller;
    int xfer_caller, xfer_callee;
};

struct pbx_member {
    char interface[PBX_STR];
    char membername[PBX_STR];
    char state_interface[PBX_STR];
    int penalty;
    int dynamic;
    int paused;
    char reason[PBX_STR];
    long lastpause;
    long logintime;
    long lastcall;
    int calls;
    int incall;
    int status;
    int ringinuse;
    int wrapuptime;
    int ringing; /* a call is ringing it now */
};

struct pbx_queue {
    char name[PBX_STR];
    char strategy[PBX_STR];
    int ring_timeout_s;
    int retry_s;
    int ringinuse;
    int maxlen;
    int weight;
    struct pbx_member members[PBX_MAX_MEMBERS];
    int nmembers;
    struct pbx_dial *callers[PBX_MAX_MEMBERS];
    int ncallers;
    int completed, abandoned;
    long holdtime, talktime;
    int avail_inuse; /* Queue:NAME_avail is INUSE */
    int rr_next;
};

struct pbx_devstate_entry {
    struct pbx_devstate_entry *next;
    char device[PBX_NAME];
    char state[24];
};

struct pbx_soon;

struct sim_pbx {
    struct sim *sim;
    struct pbx_chan *chans, *chans_tail;
    size_t nchans;
    struct pbx_chan *dead;
    uv_timer_t *reaper;
    struct pbx_orig *origs;
    struct pbx_queue queues[2];
    int nqueues;
    struct pbx_devstate_entry *devstates;
    struct pbx_var *globals;
    unsigned long chan_seq;
    unsigned long uid_seq;
    char atxfer_code[8]; /* features.conf atxfer; "" without features.conf */
    unsigned long active_calls;
    unsigned long processed_calls;
    struct pbx_soon *soon_head, *soon_tail;
    int draining;
};

/* ---- engine API used by the actions ------------------------------------ */

struct pbx_chan *pbx_chan_find(struct sim_pbx *p, const char *name);
const char *pbx_state_desc(int state);
/* s, or "<unknown>" when NULL or empty (caller ids as AMI shows them). */
const char *pbx_or_unknown(const char *s);
/* The 14 channel keys of ast_manager_build_channel_state_string(), each
 * name after the prefix pfx ("", Dest, LocalOne, LocalTwo): the same in
 * events and in list items (Status, CoreShowChannel). */
void pbx_chan_keys(struct strbuf *sb, const char *pfx, const struct pbx_chan *c);
/* Variable lookup: channel vars, then globals, then builtins; NULL when
 * unset. Function reads (CHANNEL(...), CALLERID(...)) too. */
const char *pbx_getvar(struct sim_pbx *p, struct pbx_chan *c, const char *name, char *buf,
                       size_t len, int *found);
/* Set a channel var (c) or a global (c NULL), with its VarSet event. */
void pbx_setvar(struct sim_pbx *p, struct pbx_chan *c, const char *name, const char *value);
/* Originate: validated request; takes ownership of o. */
void pbx_originate_start(struct sim_pbx *p, struct pbx_orig *o);
/* AMI Hangup of one channel. */
void pbx_chan_softhangup(struct pbx_chan *c, int cause);
/* AMI Redirect. 0 ok, -1 failed. */
int pbx_chan_redirect(struct pbx_chan *c, const char *ctx, const char *exten, int prio);
/* In a two-party bridge: what a blind transfer needs. */
int pbx_chan_transferable(const struct pbx_chan *c);
/* AMI BlindTransfer of a found channel: its events, and the move when transferable. */
void pbx_chan_blind_transfer(struct pbx_chan *c, const char *ctx, const char *exten);
/* AMI Atxfer once its checks passed: the atxfer code and exten arrive on c as DTMF. */
void pbx_chan_atxfer(struct pbx_chan *c, const char *exten);
/* Dialplan lookups. */
int pbx_exten_exists(const char *ctx, const char *exten, int prio);
int pbx_context_exists(const char *ctx);
/* Queues. */
struct pbx_queue *pbx_queue_find(struct sim_pbx *p, const char *name);
struct pbx_member *pbx_member_find(struct pbx_queue *q, const char *iface);
int pbx_member_available(const struct pbx_queue *q, const struct pbx_member *m);
void pbx_ev_member(struct sim_pbx *p, const char *event, const struct pbx_queue *q,
                   const struct pbx_member *m);
void pbx_devstate_set(struct sim_pbx *p, const char *device, const char *state, int emit);
void pbx_queue_update_avail(struct sim_pbx *p, struct pbx_queue *q);
void pbx_queue_avail_member(struct sim_pbx *p, struct pbx_queue *q, const struct pbx_member *m);
void pbx_queue_avail_removed(struct sim_pbx *p, struct pbx_queue *q);
/* Run deferred work; every entry point ends with it. */
void pbx_drain(struct sim_pbx *p);
void pbx_var_free_all(struct pbx_var **list);
long pbx_now_s(void);
int pbx_queue_calls(const struct pbx_queue *q);
void pbx_chan_abs_timeout(struct pbx_chan *c, long secs);

#endif
