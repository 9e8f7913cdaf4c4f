/* sim: internals shared by the ami-sim sources.
 *
 * ami-sim plays an Asterisk 22 AMI server on one libuv loop: sessions
 * (sim_server.c), the session-level actions (sim_actions.c) and a small PBX
 * with Local channels, the demo dialplan and two queues (sim_pbx.c,
 * sim_pbx_actions.c). Everything runs on the loop thread; nothing locks.
 *
 * Bytes on the wire follow the captures in tests/data/transcripts: every
 * reply and event is assembled as "Key: value\r\n" lines plus "\r\n" in a
 * strbuf and appended to the session output, which is flushed once per loop
 * iteration.
 */
#ifndef AMIBRIDGE_SIM_H
#define AMIBRIDGE_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <uv.h>

#include "ami/message.h"
#include "ami/parser.h"
#include "core/strbuf.h"

#define SIM_BANNER           "Asterisk Call Manager/11.0.0\r\n"
#define SIM_AMI_VERSION      "11.0.0"
#define SIM_ASTERISK_VERSION "22.10.1"

/* manager.c input limits: 1025-byte line buffer, AST_MAX_MANHEADERS. */
#define SIM_MAX_LINE    1024
#define SIM_MAX_HEADERS 128
/* manager.c's answers to a message that broke those limits */
#define SIM_ERR_LINE_TOO_LONG  "Failed to parse message: line too long"
#define SIM_ERR_TOO_MANY_LINES "Too many lines in message or allocation failure"
/* internal mark on a queued message that is answered with such an error */
#define SIM_PARSE_ERROR_KEY "X-Sim-Parse-Error"

#define SIM_NAME_MAX      80
#define SIM_MAX_DEVSTATES 8 /* --devstate options */
#define SIM_SECRET_MAX    128
#define SIM_CHALLENGE_MAX 16

/* Event classes, in manager.h order (authority_to_str prints them so). */
enum sim_class {
    SIM_EV_SYSTEM = 1 << 0,
    SIM_EV_CALL = 1 << 1,
    SIM_EV_LOG = 1 << 2,
    SIM_EV_VERBOSE = 1 << 3,
    SIM_EV_COMMAND = 1 << 4,
    SIM_EV_AGENT = 1 << 5,
    SIM_EV_USER = 1 << 6,
    SIM_EV_CONFIG = 1 << 7,
    SIM_EV_DTMF = 1 << 8,
    SIM_EV_REPORTING = 1 << 9,
    SIM_EV_CDR = 1 << 10,
    SIM_EV_DIALPLAN = 1 << 11,
    SIM_EV_ORIGINATE = 1 << 12,
    SIM_EV_AGI = 1 << 13,
    SIM_EV_CC = 1 << 14,
    SIM_EV_AOC = 1 << 15,
    SIM_EV_TEST = 1 << 16,
    SIM_EV_SECURITY = 1 << 17,
    SIM_EV_MESSAGE = 1 << 18,
};
#define SIM_EV_ALL 0xffffffffu

/* Runtime knobs: set from the command line, changed by SimControl. */
struct sim_opts {
    char host[64];
    int port;
    const char *users_file;
    double time_scale;
    long drop_after;       /* messages sent before a connection is closed; 0 off */
    long delay_ms;         /* added before every action is handled */
    long garbage_after;    /* messages sent before a garbage burst; 0 off */
    long stall_read_after; /* actions read before a session stops reading; 0 off */
    double flood_rate;     /* SimFlood events per second; 0 off */
    long flood_count;      /* stop flooding after this many; 0 unlimited */
    double restart_after;  /* seconds after start; 0 off */
    long restart_down_ms;
    long auth_limit; /* unauthenticated sessions at once (manager.conf authlimit) */
    long auth_timeout_ms;
    long max_outbuf;       /* bytes queued to one session before it is dropped */
    long write_timeout_ms; /* manager.conf writetimeout: no write progress that long drops the
                              session; 0 off */
    const char *record_file;
    const char *ready_file;
    int quiet;
    int reject_logins;
    unsigned long channel_seq;  /* first Local channel number */
    unsigned long uniqueid_seq; /* first uniqueid counter */
    /* "DEVICE=STATE" cached device states to start with (a capture machine's
     * history, e.g. Queue:support_avail=NOT_INUSE); borrowed from argv */
    const char *devstates[SIM_MAX_DEVSTATES];
    int ndevstates;
    int no_features_conf; /* as without features.conf: no atxfer feature code */
};

struct sim_user {
    char name[SIM_NAME_MAX];
    char secret[SIM_SECRET_MAX];
    uint32_t readperm;
    uint32_t writeperm;
};

struct sim_session;
struct sim_pbx;
struct sim;

/* Counters reported by SimStats. */
struct sim_stats {
    uint64_t connections_total;
    uint64_t logins_ok;
    uint64_t logins_failed;
    uint64_t actions_total;
    uint64_t originates_total;
    uint64_t originates_inflight;
    uint64_t originates_inflight_max;
    uint64_t events_generated;
    uint64_t events_sent;
    uint64_t messages_sent;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t restarts;
    uint64_t dropped_slow;
};

/* ---- sim_server.c: process, listener and sessions ---------------------- */

struct sim *sim_new(uv_loop_t *loop, const struct sim_opts *opts);
void sim_free(struct sim *sim);
uv_loop_t *sim_loop(struct sim *sim);
struct sim_opts *sim_opts(struct sim *sim);
struct sim_stats *sim_stats(struct sim *sim);
struct sim_pbx *sim_pbx(struct sim *sim);
/* Start listening; writes the ready file. 0 or a negative uv error. */
int sim_listen(struct sim *sim);
int sim_port(const struct sim *sim);
/* Seconds since the (re)start, and the start time itself. */
long sim_uptime(const struct sim *sim);
struct timeval sim_start_tv(const struct sim *sim);
size_t sim_session_count(const struct sim *sim);
/* Scale a duration in milliseconds by --time-scale. */
uint64_t sim_scaled_ms(const struct sim *sim, double ms);
void sim_log(const struct sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `core restart now`: hang up calls, Shutdown (Restart: True), close, relisten. */
void sim_restart(struct sim *sim);
/* `core stop gracefully`: Shutdown (Restart: False), close, leave the loop. */
void sim_shutdown(struct sim *sim);
/* Apply a changed flood rate or count. */
void sim_flood_update(struct sim *sim);

/* Users. */
const struct sim_user *sim_user_find(const struct sim *sim, const char *name);

/* Deliver an event (a complete "Event: ...\r\n...\r\n\r\n" text of class
 * `cls`, NUL-terminated at len: the sessions' filters are regexes) to
 * every session that reads it. */
void sim_broadcast(struct sim *sim, uint32_t cls, const char *text, size_t len);

/* Action counting for SimStats: `name` as canonically spelt. */
void sim_count_action(struct sim *sim, const char *name);
/* Append "Action-<Name>: n" lines for SimStats. */
void sim_stats_actions(const struct sim *sim, struct strbuf *out);

/* Session API for action handlers. */
void sim_session_send(struct sim_session *s, const char *data, size_t len);
void sim_session_ref(struct sim_session *s);
void sim_session_unref(struct sim_session *s);
int sim_session_closed(const struct sim_session *s);
struct sim *sim_session_sim(struct sim_session *s);
/* Block the session's action queue (sync Originate) and release it. */
void sim_session_block(struct sim_session *s);
void sim_session_unblock(struct sim_session *s);
/* Close after what is queued has been written. */
void sim_session_close_after_flush(struct sim_session *s);
/* Keep the queue blocked for `ms` then run `cb`. */
void sim_session_delay(struct sim_session *s, uint64_t ms, void (*cb)(struct sim_session *));

/* Session state used by sim_actions.c. */
struct sim_auth {
    int authenticated;
    char user[SIM_NAME_MAX];
    uint32_t readperm;
    uint32_t writeperm;
    uint32_t eventmask;
    char challenge[SIM_CHALLENGE_MAX];
    char *fail_actionid; /* owned; ActionID of a Login being failed */
};
struct sim_auth *sim_session_auth(struct sim_session *s);
/* Mark the session authenticated; keeps the unauthenticated count right. */
void sim_session_set_authed(struct sim_session *s);
const char *sim_session_remote(const struct sim_session *s, int *port);
struct timeval sim_session_start_tv(const struct sim_session *s);
uintptr_t sim_session_id(const struct sim_session *s);
/* Event filters (Filter action). 0 ok, -1 bad regex, -ENOMEM. */
int sim_session_add_filter(struct sim_session *s, const char *regex);

/* ---- sim_actions.c: dispatch and session-level actions ----------------- */

/* Handle one action; the session is ready for the next one when this
 * returns unless it called sim_session_block()/delay(). */
void sim_action_dispatch(struct sim_session *s, struct ami_msg *m);
/* Write authority of an action from the ListCommands table; -1 unknown. */
long sim_action_authority(const char *name, const char **canonical);
/* ast_true(): yes, true, y, t, 1 or on, in any case. */
int sim_true(const char *s);
/* Parse a class list ("call,agent", "all", "none", "on", "off"). */
uint32_t sim_parse_classes(const char *list);
/* "call,all" style privilege string of a class mask. */
void sim_class_str(uint32_t cls, char *buf, size_t len);

/* ---- reply helpers (sim_actions.c) ------------------------------------- */

/* A header the way astman_get_header() reads it: first match, leading
 * blanks skipped; "" when absent. */
const char *sim_hdr(const struct ami_msg *m, const char *key);
/* "ActionID: id", unless id is NULL or empty (the action had none). */
void sim_kv_actionid(struct strbuf *sb, const char *id);
/* Start a response: "Response: X" and the ActionID when there is one
 * (the action's, or one kept from it). */
void sim_resp_begin(struct strbuf *sb, const char *status, const struct ami_msg *m);
void sim_resp_begin_id(struct strbuf *sb, const char *status, const char *id);
void sim_kv(struct strbuf *sb, const char *key, const char *value);
void sim_kvf(struct strbuf *sb, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "Response: <status>", the ActionID and "Message: <msg>", sent; error and
 * ack are the Error and Success ones. */
void sim_reply_msg(struct sim_session *s, const struct ami_msg *m, const char *status,
                   const char *msg);
void sim_reply_error(struct sim_session *s, const struct ami_msg *m, const char *msg);
void sim_reply_ack(struct sim_session *s, const struct ami_msg *m, const char *msg);
/* Finish sb with the blank line, send it and release sb. */
void sim_reply_send(struct sim_session *s, struct strbuf *sb);
/* EventList helpers: the Success reply with "EventList: start"; an item
 * that begins "Event: X" and the ActionID (items whose ActionID comes
 * last build their own); the closing "<X>Complete" event, to add keys to
 * (sim_list_complete) or sent as it is (sim_list_end). */
void sim_list_start(struct sim_session *s, const struct ami_msg *m, const char *msg);
void sim_list_item_begin(struct strbuf *sb, const char *event, const struct ami_msg *m);
void sim_list_complete(struct strbuf *sb, const struct ami_msg *m, const char *event, long n);
void sim_list_end(struct sim_session *s, const struct ami_msg *m, const char *event, long n);

/* Events under construction: "Event: X\r\nPrivilege: ...\r\n". */
struct sim_ev {
    struct strbuf sb;
    uint32_t cls;
};
void sim_ev_begin(struct sim_ev *e, const char *name, uint32_t cls);
void sim_ev_kv(struct sim_ev *e, const char *key, const char *value);
void sim_ev_kvf(struct sim_ev *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Terminate, broadcast and release. */
void sim_ev_end(struct sim *sim, struct sim_ev *e);

/* Time helpers. */
struct timeval sim_now_tv(void);
/* "2026-11-27T14:17:09.056+0000" (security event EventTV). */
void sim_fmt_eventtv(struct timeval tv, char *buf, size_t len);
/* lower-case hex MD5 of s (33 bytes out). */
void sim_md5_hex(const char *s, size_t len, char out[33]);

/* ---- sim_pbx.c ------------------------------------------------------------ */

struct sim_pbx *sim_pbx_new(struct sim *sim);
/* Hang every call up without events and free everything. */
void sim_pbx_free(struct sim_pbx *p);
/* `core restart now`: hang up the live calls with their events (08a). */
void sim_pbx_hangup_all(struct sim_pbx *p, int restarting);
size_t sim_pbx_live_channels(const struct sim_pbx *p);
unsigned long sim_pbx_active_calls(const struct sim_pbx *p);
unsigned long sim_pbx_processed_calls(const struct sim_pbx *p);
/* A session is going away: forget it in pending sync originates. */
void sim_pbx_session_gone(struct sim_pbx *p, struct sim_session *s);

/* PBX actions (sim_pbx_actions.c). Each replies on the session. */
void sim_act_originate(struct sim_session *s, const struct ami_msg *m);
void sim_act_status(struct sim_session *s, const struct ami_msg *m);
void sim_act_coreshowchannels(struct sim_session *s, const struct ami_msg *m);
void sim_act_hangup(struct sim_session *s, const struct ami_msg *m);
void sim_act_redirect(struct sim_session *s, const struct ami_msg *m);
void sim_act_blindtransfer(struct sim_session *s, const struct ami_msg *m);
void sim_act_atxfer(struct sim_session *s, const struct ami_msg *m);
void sim_act_getvar(struct sim_session *s, const struct ami_msg *m);
void sim_act_setvar(struct sim_session *s, const struct ami_msg *m);
void sim_act_queuestatus(struct sim_session *s, const struct ami_msg *m);
void sim_act_queuesummary(struct sim_session *s, const struct ami_msg *m);
void sim_act_queueadd(struct sim_session *s, const struct ami_msg *m);
void sim_act_queueremove(struct sim_session *s, const struct ami_msg *m);
void sim_act_queuepause(struct sim_session *s, const struct ami_msg *m);
void sim_act_queuepenalty(struct sim_session *s, const struct ami_msg *m);
void sim_act_extensionstate(struct sim_session *s, const struct ami_msg *m);
void sim_act_devicestatelist(struct sim_session *s, const struct ami_msg *m);
void sim_act_absolutetimeout(struct sim_session *s, const struct ami_msg *m);
/* CLI commands that need the PBX; 1 when handled (output lines appended
 * to `out`, *ok set), 0 when the command is not a PBX command. */
int sim_pbx_cli(struct sim_pbx *p, const char *cmd, struct strbuf *out, int *ok);

#endif
