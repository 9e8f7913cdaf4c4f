/* sim_actions: action dispatch, the permission model and the actions that
 * only touch the session (Login, Challenge, Ping, Events, Filter, Command,
 * ListCommands, Core*, UserEvent) plus the simulator's own SimControl and
 * SimStats. Reply texts and header order are the ones manager.c produces and
 * the captures in tests/data/transcripts show.
 */
#include "sim/sim.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/digest.h"

#define SIM_AUTH_FAIL_MS     1000.0              /* manager.c sleep(1) after a failed login */
#define SIM_CHALLENGE_DIGITS 9                   /* challenge[10] in struct mansession */
#define SIM_INT_MAX_MASK     ((uint32_t)INT_MAX) /* "all" in manager.c's perms[] */

/* ListCommands of the capture (05j), verbatim. */
static const char *const sim_listcommands[] = {
    "AbsoluteTimeout:  (Priv: system,call,all)",
    "AGI:  (Priv: agi,all)",
    "AOCMessage:  (Priv: aoc,all)",
    "Atxfer:  (Priv: call,all)",
    "BlindTransfer:  (Priv: call,all)",
    "Bridge:  (Priv: call,all)",
    "BridgeDestroy:  (Priv: <none>)",
    "BridgeInfo:  (Priv: <none>)",
    "BridgeKick:  (Priv: <none>)",
    "BridgeList:  (Priv: <none>)",
    "BridgeTechnologyList:  (Priv: <none>)",
    "BridgeTechnologySuspend:  (Priv: <none>)",
    "BridgeTechnologyUnsuspend:  (Priv: <none>)",
    "CancelAtxfer:  (Priv: call,all)",
    "Challenge:  (Priv: <none>)",
    "Command:  (Priv: command,all)",
    "ControlPlayback:  (Priv: call,all)",
    "CoreSettings:  (Priv: system,reporting,all)",
    "CoreShowChannelMap:  (Priv: system,reporting,all)",
    "CoreShowChannels:  (Priv: system,reporting,all)",
    "CoreStatus:  (Priv: system,reporting,all)",
    "CreateConfig:  (Priv: config,all)",
    "DBDel:  (Priv: system,all)",
    "DBDelTree:  (Priv: system,all)",
    "DBGet:  (Priv: system,reporting,all)",
    "DBGetTree:  (Priv: system,reporting,all)",
    "DBPut:  (Priv: system,all)",
    "DeviceStateList:  (Priv: call,reporting,all)",
    "DialplanExtensionAdd:  (Priv: system,all)",
    "DialplanExtensionRemove:  (Priv: system,all)",
    "Events:  (Priv: <none>)",
    "ExtensionState:  (Priv: call,reporting,all)",
    "ExtensionStateList:  (Priv: call,reporting,all)",
    "Filter:  (Priv: system,all)",
    "GetConfig:  (Priv: system,config,all)",
    "GetConfigJSON:  (Priv: system,config,all)",
    "Getvar:  (Priv: call,reporting,all)",
    "Hangup:  (Priv: system,call,all)",
    "ListCategories:  (Priv: config,all)",
    "ListCommands:  (Priv: <none>)",
    "LocalOptimizeAway:  (Priv: system,call,all)",
    "LoggerRotate:  (Priv: system,reporting,all)",
    "Login:  (Priv: <none>)",
    "Logoff:  (Priv: <none>)",
    "MailboxCount:  (Priv: call,reporting,all)",
    "MailboxStatus:  (Priv: call,reporting,all)",
    "MessageSend:  (Priv: message,all)",
    "MixMonitor:  (Priv: system,all)",
    "MixMonitorMute:  (Priv: system,call,all)",
    "ModuleCheck:  (Priv: system,all)",
    "ModuleLoad:  (Priv: system,all)",
    "MuteAudio:  (Priv: system,all)",
    "Originate:  (Priv: originate,all)",
    "Ping:  (Priv: <none>)",
    "PlayDTMF:  (Priv: call,all)",
    "PlayMF:  (Priv: call,all)",
    "PresenceState:  (Priv: call,reporting,all)",
    "PresenceStateList:  (Priv: call,reporting,all)",
    "QueueAdd:  (Priv: agent,all)",
    "QueueChangePriorityCaller:  (Priv: <none>)",
    "QueueLog:  (Priv: agent,all)",
    "QueueMemberRingInUse:  (Priv: agent,all)",
    "QueuePause:  (Priv: agent,all)",
    "QueuePenalty:  (Priv: agent,all)",
    "QueueReload:  (Priv: <none>)",
    "QueueRemove:  (Priv: agent,all)",
    "QueueReset:  (Priv: <none>)",
    "QueueRule:  (Priv: <none>)",
    "QueueStatus:  (Priv: <none>)",
    "QueueSummary:  (Priv: <none>)",
    "QueueWithdrawCaller:  (Priv: <none>)",
    "Redirect:  (Priv: call,all)",
    "Reload:  (Priv: system,config,all)",
    "SendFlash:  (Priv: call,all)",
    "SendText:  (Priv: call,all)",
    "Setvar:  (Priv: call,all)",
    "ShowDialPlan:  (Priv: config,reporting,all)",
    "SorceryMemoryCacheExpire:  (Priv: system,all)",
    "SorceryMemoryCacheExpireObject:  (Priv: system,all)",
    "SorceryMemoryCachePopulate:  (Priv: system,all)",
    "SorceryMemoryCacheStale:  (Priv: system,all)",
    "SorceryMemoryCacheStaleObject:  (Priv: system,all)",
    "Status:  (Priv: system,call,reporting,all)",
    "StopMixMonitor:  (Priv: system,call,all)",
    "UpdateConfig:  (Priv: config,all)",
    "UserEvent:  (Priv: user,all)",
    "WaitEvent:  (Priv: <none>)",
};

#define SIM_NLISTCOMMANDS (sizeof(sim_listcommands) / sizeof(sim_listcommands[0]))

/* Class names in authority_to_str() order. */
static const struct {
    uint32_t bit;
    const char *name;
} sim_classes[] = {
    {SIM_EV_SYSTEM, "system"},
    {SIM_EV_CALL, "call"},
    {SIM_EV_LOG, "log"},
    {SIM_EV_VERBOSE, "verbose"},
    {SIM_EV_COMMAND, "command"},
    {SIM_EV_AGENT, "agent"},
    {SIM_EV_USER, "user"},
    {SIM_EV_CONFIG, "config"},
    {SIM_EV_DTMF, "dtmf"},
    {SIM_EV_REPORTING, "reporting"},
    {SIM_EV_CDR, "cdr"},
    {SIM_EV_DIALPLAN, "dialplan"},
    {SIM_EV_ORIGINATE, "originate"},
    {SIM_EV_AGI, "agi"},
    {SIM_EV_CC, "cc"},
    {SIM_EV_AOC, "aoc"},
    {SIM_EV_TEST, "test"},
    {SIM_EV_SECURITY, "security"},
    {SIM_EV_MESSAGE, "message"},
};
#define SIM_NCLASSES (sizeof(sim_classes) / sizeof(sim_classes[0]))

/* ---- classes ------------------------------------------------------------------ */

/* get_perm(): every comma-separated word that names a class. */
static uint32_t classes_from_words(const char *list, int with_all)
{
    uint32_t mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
        if (with_all && n == 3 && !strncasecmp(p, "all", 3))
            mask |= SIM_INT_MAX_MASK;
        for (size_t i = 0; i < SIM_NCLASSES; i++)
            if (strlen(sim_classes[i].name) == n && !strncasecmp(p, sim_classes[i].name, n))
                mask |= sim_classes[i].bit;
        p = e;
    }
    return mask;
}

int sim_true(const char *s)
{
    return !strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "y") ||
           !strcasecmp(s, "t") || !strcasecmp(s, "1") || !strcasecmp(s, "on");
}

/* ast_false() */
static int word_false(const char *s)
{
    return !strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "n") ||
           !strcasecmp(s, "f") || !strcasecmp(s, "0") || !strcasecmp(s, "off");
}

uint32_t sim_parse_classes(const char *list)
{
    if (!list || !*list || !strcasecmp(list, "none"))
        return 0;
    return classes_from_words(list, 1);
}

/* strings_to_mask(): digits are a raw mask, then false/true words, then a
 * class list. -1 for an empty string. */
static long strings_to_mask(const char *s)
{
    if (!*s)
        return -1;
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (!*p)
        return atol(s);
    if (word_false(s))
        return 0;
    if (sim_true(s))
        return SIM_INT_MAX_MASK;
    return classes_from_words(s, 1);
}

void sim_class_str(uint32_t cls, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < SIM_NCLASSES; i++) {
        if (cls & sim_classes[i].bit)
            o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s", o ? "," : "",
                                  sim_classes[i].name);
    }
    if (cls)
        snprintf(buf + o, o < len ? len - o : 0, "%sall", o ? "," : "");
    else
        snprintf(buf, len, "<none>");
}

/* ---- reply helpers -------------------------------------------------------------- */

const char *sim_hdr(const struct ami_msg *m, const char *key)
{
    const char *v = ami_msg_get(m, key);
    if (!v)
        return "";
    /* ast_skip_blanks(): every byte below 33, not only space and tab */
    while (*v && (unsigned char)*v < 33)
        v++;
    return v;
}

void sim_kv(struct strbuf *sb, const char *key, const char *value)
{
    strbuf_append_str(sb, key);
    strbuf_append(sb, ": ", 2);
    strbuf_append_str(sb, value);
    strbuf_append(sb, "\r\n", 2);
}

static void vkvf(struct strbuf *sb, const char *key, const char *fmt, va_list ap)
{
    strbuf_append_str(sb, key);
    strbuf_append(sb, ": ", 2);
    strbuf_vprintf(sb, fmt, ap);
    strbuf_append(sb, "\r\n", 2);
}

void sim_kvf(struct strbuf *sb, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vkvf(sb, key, fmt, ap);
    va_end(ap);
}

void sim_kv_actionid(struct strbuf *sb, const char *id)
{
    if (id && *id)
        sim_kv(sb, "ActionID", id);
}

void sim_resp_begin_id(struct strbuf *sb, const char *status, const char *id)
{
    strbuf_init(sb, 0);
    sim_kv(sb, "Response", status);
    sim_kv_actionid(sb, id);
}

void sim_resp_begin(struct strbuf *sb, const char *status, const struct ami_msg *m)
{
    sim_resp_begin_id(sb, status, sim_hdr(m, "ActionID"));
}

void sim_reply_send(struct sim_session *s, struct strbuf *sb)
{
    strbuf_append(sb, "\r\n", 2);
    sim_session_send(s, sb->data, sb->len);
    strbuf_release(sb);
}

void sim_reply_msg(struct sim_session *s, const struct ami_msg *m, const char *status,
                   const char *msg)
{
    struct strbuf sb;
    sim_resp_begin(&sb, status, m);
    sim_kv(&sb, "Message", msg);
    sim_reply_send(s, &sb);
}

void sim_reply_error(struct sim_session *s, const struct ami_msg *m, const char *msg)
{
    sim_reply_msg(s, m, "Error", msg);
}

void sim_reply_ack(struct sim_session *s, const struct ami_msg *m, const char *msg)
{
    sim_reply_msg(s, m, "Success", msg);
}

void sim_list_start(struct sim_session *s, const struct ami_msg *m, const char *msg)
{
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "EventList", "start");
    sim_kv(&sb, "Message", msg);
    sim_reply_send(s, &sb);
}

void sim_list_item_begin(struct strbuf *sb, const char *event, const struct ami_msg *m)
{
    strbuf_init(sb, 0);
    sim_kv(sb, "Event", event);
    sim_kv_actionid(sb, sim_hdr(m, "ActionID"));
}

void sim_list_complete(struct strbuf *sb, const struct ami_msg *m, const char *event, long n)
{
    sim_list_item_begin(sb, event, m);
    sim_kv(sb, "EventList", "Complete");
    sim_kvf(sb, "ListItems", "%ld", n);
}

void sim_list_end(struct sim_session *s, const struct ami_msg *m, const char *event, long n)
{
    struct strbuf sb;
    sim_list_complete(&sb, m, event, n);
    sim_reply_send(s, &sb);
}

void sim_ev_begin(struct sim_ev *e, const char *name, uint32_t cls)
{
    char priv[256];
    strbuf_init(&e->sb, 0);
    e->cls = cls;
    sim_class_str(cls, priv, sizeof(priv));
    sim_kv(&e->sb, "Event", name);
    sim_kv(&e->sb, "Privilege", priv);
}

void sim_ev_kv(struct sim_ev *e, const char *key, const char *value)
{
    sim_kv(&e->sb, key, value);
}

void sim_ev_kvf(struct sim_ev *e, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vkvf(&e->sb, key, fmt, ap);
    va_end(ap);
}

void sim_ev_end(struct sim *sim, struct sim_ev *e)
{
    strbuf_append(&e->sb, "\r\n", 2);
    if (e->sb.data)
        sim_broadcast(sim, e->cls, e->sb.data, e->sb.len);
    strbuf_release(&e->sb);
}

/* ---- time / md5 -------------------------------------------------------------------- */

struct timeval sim_now_tv(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv;
}

void sim_fmt_eventtv(struct timeval tv, char *buf, size_t len)
{
    struct tm tm;
    time_t t = tv.tv_sec;
    localtime_r(&t, &tm);
    char date[32], zone[8];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof(zone), "%z", &tm);
    snprintf(buf, len, "%s.%03ld%s", date, (long)tv.tv_usec / 1000, zone);
}

void sim_md5_hex(const char *s, size_t len, char out[33])
{
    unsigned char d[DIGEST_MD5_LEN];
    const struct digest_part part = {s, len};
    digest_md5(&part, 1, d);
    digest_hex(d, sizeof(d), out);
}

/* ---- Login / Challenge / Logoff ------------------------------------------------------ */

/* report_auth_success(): a security event for every session that reads security, this one
 * included. */
static void security_success_event(struct sim_session *s, const char *user)
{
    struct sim *sim = sim_session_sim(s);
    char tv[64], stv[64];
    sim_fmt_eventtv(sim_now_tv(), tv, sizeof(tv));
    sim_fmt_eventtv(sim_session_start_tv(s), stv, sizeof(stv));
    int rport = 0;
    const char *raddr = sim_session_remote(s, &rport);
    struct sim_ev e;
    sim_ev_begin(&e, "SuccessfulAuth", SIM_EV_SECURITY);
    sim_ev_kv(&e, "EventTV", tv);
    sim_ev_kv(&e, "Severity", "Informational");
    sim_ev_kv(&e, "Service", "AMI");
    sim_ev_kv(&e, "EventVersion", "1");
    sim_ev_kv(&e, "AccountID", user);
    sim_ev_kvf(&e, "SessionID", "0x%lx", (unsigned long)sim_session_id(s));
    sim_ev_kvf(&e, "LocalAddress", "IPV4/TCP/%s/%d", sim_opts(sim)->host, sim_port(sim));
    sim_ev_kvf(&e, "RemoteAddress", "IPV4/TCP/%s/%d", raddr, rport);
    sim_ev_kv(&e, "UsingPassword", "0");
    sim_ev_kv(&e, "SessionTV", stv);
    sim_ev_end(sim, &e);
}

/* The error for a failed Login goes out after the delay; then we close. */
static void login_failed_reply(struct sim_session *s)
{
    struct sim_auth *a = sim_session_auth(s);
    struct strbuf sb;
    sim_resp_begin_id(&sb, "Error", a->fail_actionid);
    sim_kv(&sb, "Message", "Authentication failed");
    sim_reply_send(s, &sb);
    sim_session_close_after_flush(s);
    free(a->fail_actionid);
    a->fail_actionid = NULL;
}

/* authenticate() and action_login(): a failure is answered after ~1 s and the session is
 * closed; a success may be followed by FullyBooted (direct) and SuccessfulAuth (broadcast). */
static void act_login(struct sim_session *s, const struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    struct sim_auth *a = sim_session_auth(s);
    if (a->authenticated) {
        sim_reply_ack(s, m, "Already authenticated");
        return;
    }
    const char *username = sim_hdr(m, "Username");
    const struct sim_user *u = *username ? sim_user_find(sim, username) : NULL;
    int ok = 0;
    if (u && !sim_opts(sim)->reject_logins) {
        if (!strcasecmp(sim_hdr(m, "AuthType"), "MD5")) {
            const char *key = sim_hdr(m, "Key");
            if (*key && a->challenge[0]) {
                char buf[SIM_CHALLENGE_MAX + SIM_SECRET_MAX];
                int n = snprintf(buf, sizeof(buf), "%s%s", a->challenge, u->secret);
                char hex[33];
                sim_md5_hex(buf, (size_t)n, hex);
                ok = !strcmp(hex, key);
            }
        } else {
            ok = !strcmp(sim_hdr(m, "Secret"), u->secret);
        }
    }
    if (!ok) {
        sim_stats(sim)->logins_failed++;
        free(a->fail_actionid);
        a->fail_actionid = strdup(sim_hdr(m, "ActionID"));
        sim_session_delay(s, sim_scaled_ms(sim, SIM_AUTH_FAIL_MS), login_failed_reply);
        return;
    }
    snprintf(a->user, sizeof(a->user), "%s", username);
    a->readperm = u->readperm;
    a->writeperm = u->writeperm;
    long mask = strings_to_mask(sim_hdr(m, "Events"));
    if (mask >= 0)
        a->eventmask = (uint32_t)mask;
    sim_session_set_authed(s);
    sim_stats(sim)->logins_ok++;
    sim_reply_ack(s, m, "Authentication accepted");
    if ((a->eventmask & SIM_EV_SYSTEM) && (a->readperm & SIM_EV_SYSTEM)) {
        long up = sim_uptime(sim);
        struct strbuf sb;
        strbuf_init(&sb, 0);
        sim_kv(&sb, "Event", "FullyBooted");
        sim_kv(&sb, "Privilege", "system,all");
        sim_kvf(&sb, "Uptime", "%ld", up);
        sim_kvf(&sb, "LastReload", "%ld", up);
        sim_kv(&sb, "Status", "Fully Booted");
        sim_reply_send(s, &sb);
    }
    security_success_event(s, u->name);
}

/* The challenge is made once per session and kept, as manager.c does. */
static void act_challenge(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_auth *a = sim_session_auth(s);
    if (strcasecmp(sim_hdr(m, "AuthType"), "MD5")) {
        sim_reply_error(s, m, "Must specify AuthType");
        return;
    }
    if (!a->challenge[0]) {
        char digits[32];
        snprintf(digits, sizeof(digits), "%ld", random());
        /* manager.c prints ast_random() into a 10-byte buffer */
        digits[SIM_CHALLENGE_DIGITS] = '\0';
        memcpy(a->challenge, digits, strlen(digits) + 1);
    }
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "Challenge", a->challenge);
    sim_reply_send(s, &sb);
}

/* "Goodbye" and the close, also before a login. */
static void act_logoff(struct sim_session *s, const struct ami_msg *m)
{
    sim_reply_msg(s, m, "Goodbye", "Thanks for all the fish.");
    sim_session_close_after_flush(s);
}

/* ---- simple actions -------------------------------------------------------------------- */

static void act_ping(struct sim_session *s, const struct ami_msg *m)
{
    struct timeval now = sim_now_tv();
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "Ping", "Pong");
    sim_kvf(&sb, "Timestamp", "%ld.%06ld", (long)now.tv_sec, (long)now.tv_usec);
    sim_reply_send(s, &sb);
}

/* action_events(): an empty mask is an error, anything else switches events. */
static void act_events(struct sim_session *s, const struct ami_msg *m)
{
    long mask = strings_to_mask(sim_hdr(m, "EventMask"));
    if (mask < 0) {
        sim_reply_error(s, m, "Invalid event mask");
        return;
    }
    sim_session_auth(s)->eventmask = (uint32_t)mask;
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "Events", mask ? "On" : "Off");
    sim_reply_send(s, &sb);
}

/* Only "Operation: Add" exists; a leading ! makes an exclude filter. */
static void act_filter(struct sim_session *s, const struct ami_msg *m)
{
    if (strcasecmp(sim_hdr(m, "Operation"), "Add")) {
        sim_reply_error(s, m, "Unknown operation");
        return;
    }
    int rc = sim_session_add_filter(s, sim_hdr(m, "Filter"));
    if (rc == -ENOMEM)
        sim_reply_error(s, m, "Internal Error. Failed to allocate regex for filter");
    else if (rc < 0)
        sim_reply_error(s, m, "Filter did not compile.  Check the syntax of the filter given.");
    else
        sim_reply_ack(s, m, "Success");
}

static void act_listcommands(struct sim_session *s, const struct ami_msg *m);

static void act_coresettings(struct sim_session *s, const struct ami_msg *m)
{
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "AMIversion", SIM_AMI_VERSION);
    sim_kv(&sb, "AsteriskVersion", SIM_ASTERISK_VERSION);
    sim_kv(&sb, "SystemName", "");
    sim_kv(&sb, "CoreMaxCalls", "0");
    sim_kv(&sb, "CoreMaxLoadAvg", "0.000000");
    sim_kv(&sb, "CoreRunUser", "");
    sim_kv(&sb, "CoreRunGroup", "");
    sim_kv(&sb, "CoreMaxFilehandles", "0");
    sim_kv(&sb, "CoreRealTimeEnabled", "No");
    sim_kv(&sb, "CoreCDRenabled", "No");
    sim_kv(&sb, "CoreHTTPenabled", "Yes");
    sim_kv(&sb, "SoundsSearchCustomDir", "No");
    sim_reply_send(s, &sb);
}

/* CoreCurrentCalls counts channels, CoreProcessedCalls dialplan starts. */
static void act_corestatus(struct sim_session *s, const struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    struct timeval st = sim_start_tv(sim);
    time_t t = st.tv_sec;
    struct tm tm;
    localtime_r(&t, &tm);
    char date[32], tod[32];
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    strftime(tod, sizeof(tod), "%H:%M:%S", &tm);
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "CoreStartupDate", date);
    sim_kv(&sb, "CoreStartupTime", tod);
    sim_kv(&sb, "CoreReloadDate", date);
    sim_kv(&sb, "CoreReloadTime", tod);
    sim_kvf(&sb, "CoreCurrentCalls", "%zu", sim_pbx_live_channels(sim_pbx(sim)));
    sim_kvf(&sb, "CoreProcessedCalls", "%lu", sim_pbx_processed_calls(sim_pbx(sim)));
    sim_reply_send(s, &sb);
}

/* The reply first, then the event with every other header copied. */
static void act_userevent(struct sim_session *s, const struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    sim_reply_ack(s, m, "Event Sent");
    struct sim_ev e;
    sim_ev_begin(&e, "UserEvent", SIM_EV_USER);
    sim_ev_kv(&e, "UserEvent", sim_hdr(m, "UserEvent"));
    for (size_t i = 0; i < ami_msg_count(m); i++) {
        const char *k = ami_msg_key_at(m, i);
        if (!strcasecmp(k, "UserEvent") || !strcasecmp(k, "Action") || !strcasecmp(k, "ActionID"))
            continue;
        sim_ev_kv(&e, k, ami_msg_value_at(m, i));
    }
    sim_ev_end(sim, &e);
}

/* ---- Command -------------------------------------------------------------------------- */

/* print_uptimestr() of cli.c. */
static void uptime_str(long secs, char *buf, size_t len)
{
    static const struct {
        long unit;
        const char *name;
    } units[] = {{365L * 86400, "year"},
                 {7L * 86400, "week"},
                 {86400, "day"},
                 {3600, "hour"},
                 {60, "minute"}};
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (secs > units[i].unit) {
            long x = secs / units[i].unit;
            secs -= x * units[i].unit;
            o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%ld %s%s%s", x, units[i].name,
                                  x == 1 ? "" : "s", secs ? ", " : "");
        }
    }
    if (secs > 0 || o == 0)
        snprintf(buf + o, o < len ? len - o : 0, "%ld second%s", secs, secs == 1 ? "" : "s");
}

/* find_best() of cli.c, approximated: the words up to and including the
 * first one that no command starts with; in practice the first two. */
static void best_guess(const char *cmd, char *buf, size_t len)
{
    size_t o = 0;
    int words = 0;
    const char *p = cmd;
    while (*p && words < 2) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if (e == p)
            break;
        o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%.*s", words ? " " : "",
                              (int)(e - p), p);
        words++;
        p = e;
    }
    if (!words && len)
        buf[0] = '\0';
}

/* CLI words compare with any amount of blanks between them. */
static int cmd_is(const char *cmd, const char *want)
{
    /* compare word by word, ignoring repeated blanks */
    while (*cmd == ' ')
        cmd++;
    while (*cmd && *want) {
        if (*want == ' ') {
            if (*cmd != ' ')
                return 0;
            while (*cmd == ' ')
                cmd++;
            want++;
            continue;
        }
        if (*cmd != *want)
            return 0;
        cmd++;
        want++;
    }
    while (*cmd == ' ')
        cmd++;
    return !*cmd && !*want;
}

/* One CLI output line. */
static void out_line(struct strbuf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* One CLI output line. */
static void out_line(struct strbuf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(out, fmt, ap);
    va_end(ap);
    strbuf_append(out, "\n", 1);
}

/* action_command(): one Output header per CLI line, no --END COMMAND--. */
static void act_command(struct sim_session *s, const struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    const char *cmd = sim_hdr(m, "Command");
    if (!*cmd) {
        sim_reply_error(s, m, "No command provided");
        return;
    }
    if (!strncmp(cmd, "module load", 11) || !strncmp(cmd, "module unload", 13) ||
        !strncmp(cmd, "restart gracefully", 18)) {
        sim_reply_error(s, m, "Command blacklisted");
        return;
    }
    struct strbuf out;
    strbuf_init(&out, 0);
    int ok = 1;
    if (cmd_is(cmd, "core show version")) {
        out_line(&out,
                 "Asterisk %s built by root @ vm on a x86_64 running Linux on 2026-11-27 "
                 "14:10:52 UTC",
                 SIM_ASTERISK_VERSION);
    } else if (cmd_is(cmd, "core show uptime")) {
        char up[128];
        uptime_str(sim_uptime(sim), up, sizeof(up));
        out_line(&out, "System uptime: %s", up);
        out_line(&out, "Last reload: %s", up);
    } else if (cmd_is(cmd, "core show uptime seconds")) {
        out_line(&out, "System uptime: %ld", sim_uptime(sim));
        out_line(&out, "Last reload: %ld", sim_uptime(sim));
    } else if (!sim_pbx_cli(sim_pbx(sim), cmd, &out, &ok)) {
        char best[128];
        best_guess(cmd, best, sizeof(best));
        out_line(&out,
                 "No such command '%s' (type 'core show help %s' for other possible commands)", cmd,
                 best);
        ok = 0;
    }
    struct strbuf sb;
    sim_resp_begin(&sb, ok ? "Success" : "Error", m);
    sim_kv(&sb, "Message", "Command output follows");
    /* one Output line per CLI line; the final newline ends the last one */
    size_t len = out.len;
    if (len && out.data[len - 1] == '\n')
        len--;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || out.data[i] == '\n') {
            strbuf_append_str(&sb, "Output: ");
            strbuf_append(&sb, out.data + start, i - start);
            strbuf_append(&sb, "\r\n", 2);
            start = i + 1;
        }
    }
    strbuf_release(&out);
    sim_reply_send(s, &sb);
}

/* ---- SimControl / SimStats ---------------------------------------------------------------- */

/* SimControl values: non-negative numbers only. */
static int parse_long(const char *v, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0)
        return -1;
    *out = x;
    return 0;
}

static int parse_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || x < 0)
        return -1;
    *out = x;
    return 0;
}

/* Every recognised key is applied; the first bad one is reported. */
static void act_simcontrol(struct sim_session *s, const struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    struct sim_opts *o = sim_opts(sim);
    int restart = 0, flood_changed = 0, shutdown = 0;
    char err[256] = "";
    for (size_t i = 0; i < ami_msg_count(m) && !err[0]; i++) {
        const char *k = ami_msg_key_at(m, i);
        const char *v = ami_msg_value_at(m, i);
        while (*v == ' ')
            v++;
        long *lp = NULL;
        if (!strcasecmp(k, "Action") || !strcasecmp(k, "ActionID"))
            continue;
        if (!strcasecmp(k, "DropAfter"))
            lp = &o->drop_after;
        else if (!strcasecmp(k, "DelayMs"))
            lp = &o->delay_ms;
        else if (!strcasecmp(k, "GarbageAfter"))
            lp = &o->garbage_after;
        else if (!strcasecmp(k, "StallRead") || !strcasecmp(k, "StallReadAfter"))
            lp = &o->stall_read_after;
        else if (!strcasecmp(k, "FloodCount"))
            lp = &o->flood_count;
        else if (!strcasecmp(k, "RestartDownMs"))
            lp = &o->restart_down_ms;
        else if (!strcasecmp(k, "AuthLimit"))
            lp = &o->auth_limit;
        else if (!strcasecmp(k, "MaxOutbuf"))
            lp = &o->max_outbuf;
        else if (!strcasecmp(k, "WriteTimeout"))
            lp = &o->write_timeout_ms;
        if (lp) {
            if (parse_long(v, lp) < 0)
                snprintf(err, sizeof(err), "Invalid value for %s: %s", k, v);
            if (lp == &o->flood_count)
                flood_changed = 1;
            continue;
        }
        if (!strcasecmp(k, "Flood")) {
            if (parse_double(v, &o->flood_rate) < 0)
                snprintf(err, sizeof(err), "Invalid value for %s: %s", k, v);
            flood_changed = 1;
        } else if (!strcasecmp(k, "TimeScale")) {
            double ts;
            if (parse_double(v, &ts) < 0 || ts <= 0)
                snprintf(err, sizeof(err), "Invalid value for %s: %s", k, v);
            else
                o->time_scale = ts;
        } else if (!strcasecmp(k, "RejectLogins")) {
            o->reject_logins = sim_true(v);
        } else if (!strcasecmp(k, "Restart")) {
            if (!strcasecmp(v, "now"))
                restart = 1;
            else
                snprintf(err, sizeof(err), "Invalid value for %s: %s", k, v);
        } else if (!strcasecmp(k, "Shutdown")) {
            if (!strcasecmp(v, "now"))
                shutdown = 1;
            else
                snprintf(err, sizeof(err), "Invalid value for %s: %s", k, v);
        } else {
            snprintf(err, sizeof(err), "Unknown SimControl key: %s", k);
        }
    }
    if (err[0]) {
        sim_reply_error(s, m, err);
        return;
    }
    sim_reply_ack(s, m, "SimControl applied");
    if (flood_changed)
        sim_flood_update(sim);
    if (restart)
        sim_restart(sim);
    if (shutdown)
        sim_shutdown(sim);
}

/* Counters for tests and benchmarks; cumulative across restarts. */
static void act_simstats(struct sim_session *s, const struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    const struct sim_stats *st = sim_stats(sim);
    struct sim_pbx *p = sim_pbx(sim);
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kvf(&sb, "ConnectionsNow", "%zu", sim_session_count(sim));
    sim_kvf(&sb, "ConnectionsTotal", "%llu", (unsigned long long)st->connections_total);
    sim_kvf(&sb, "LoginsOk", "%llu", (unsigned long long)st->logins_ok);
    sim_kvf(&sb, "LoginsFailed", "%llu", (unsigned long long)st->logins_failed);
    sim_kvf(&sb, "ActionsTotal", "%llu", (unsigned long long)st->actions_total);
    sim_kvf(&sb, "OriginatesTotal", "%llu", (unsigned long long)st->originates_total);
    sim_kvf(&sb, "OriginatesInFlight", "%llu", (unsigned long long)st->originates_inflight);
    sim_kvf(&sb, "OriginatesInFlightMax", "%llu", (unsigned long long)st->originates_inflight_max);
    sim_kvf(&sb, "LiveChannels", "%zu", sim_pbx_live_channels(p));
    sim_kvf(&sb, "ActiveCalls", "%lu", sim_pbx_active_calls(p));
    sim_kvf(&sb, "ProcessedCalls", "%lu", sim_pbx_processed_calls(p));
    sim_kvf(&sb, "EventsGenerated", "%llu", (unsigned long long)st->events_generated);
    sim_kvf(&sb, "EventsSent", "%llu", (unsigned long long)st->events_sent);
    sim_kvf(&sb, "MessagesSent", "%llu", (unsigned long long)st->messages_sent);
    sim_kvf(&sb, "BytesIn", "%llu", (unsigned long long)st->bytes_in);
    sim_kvf(&sb, "BytesOut", "%llu", (unsigned long long)st->bytes_out);
    sim_kvf(&sb, "DroppedSlow", "%llu", (unsigned long long)st->dropped_slow);
    sim_kvf(&sb, "Restarts", "%llu", (unsigned long long)st->restarts);
    sim_kvf(&sb, "Uptime", "%ld", sim_uptime(sim));
    sim_stats_actions(sim, &sb);
    sim_reply_send(s, &sb);
}

/* ---- the action table ---------------------------------------------------------------------- */

typedef void (*sim_action_fn)(struct sim_session *s, const struct ami_msg *m);

struct sim_action {
    const char *name;
    sim_action_fn fn;
};

static const struct sim_action sim_handlers[] = {
    {"AbsoluteTimeout", sim_act_absolutetimeout},
    {"Atxfer", sim_act_atxfer},
    {"BlindTransfer", sim_act_blindtransfer},
    {"Challenge", act_challenge},
    {"Command", act_command},
    {"CoreSettings", act_coresettings},
    {"CoreShowChannels", sim_act_coreshowchannels},
    {"CoreStatus", act_corestatus},
    {"DeviceStateList", sim_act_devicestatelist},
    {"Events", act_events},
    {"ExtensionState", sim_act_extensionstate},
    {"Filter", act_filter},
    {"Getvar", sim_act_getvar},
    {"Hangup", sim_act_hangup},
    {"ListCommands", act_listcommands},
    {"Login", act_login},
    {"Logoff", act_logoff},
    {"Originate", sim_act_originate},
    {"Ping", act_ping},
    {"QueueAdd", sim_act_queueadd},
    {"QueuePause", sim_act_queuepause},
    {"QueuePenalty", sim_act_queuepenalty},
    {"QueueRemove", sim_act_queueremove},
    {"QueueStatus", sim_act_queuestatus},
    {"QueueSummary", sim_act_queuesummary},
    {"Redirect", sim_act_redirect},
    {"Setvar", sim_act_setvar},
    {"Status", sim_act_status},
    {"UserEvent", act_userevent},
};

/* Simulator-only actions: not in ListCommands. */
static const struct {
    const char *name;
    uint32_t authority;
    sim_action_fn fn;
} sim_private[] = {
    {"SimControl", SIM_EV_SYSTEM, act_simcontrol},
    {"SimStats", 0, act_simstats},
};

struct sim_known {
    char name[48];
    uint32_t authority;
};
static struct sim_known sim_known[SIM_NLISTCOMMANDS];

/* Name and authority of every ListCommands line, parsed once. The printed
 * "all" is a marker, not a class the writer needs. */
static void known_init(void)
{
    if (sim_known[0].name[0])
        return;
    for (size_t i = 0; i < SIM_NLISTCOMMANDS; i++) {
        const char *line = sim_listcommands[i];
        const char *colon = strchr(line, ':');
        const char *priv = strstr(line, "(Priv: ");
        snprintf(sim_known[i].name, sizeof(sim_known[i].name), "%.*s", (int)(colon - line), line);
        char cls[128];
        snprintf(cls, sizeof(cls), "%s", priv + 7);
        cls[strcspn(cls, ")")] = '\0';
        sim_known[i].authority = strcmp(cls, "<none>") ? classes_from_words(cls, 0) : 0;
    }
}

long sim_action_authority(const char *name, const char **canonical)
{
    known_init();
    for (size_t i = 0; i < SIM_NLISTCOMMANDS; i++) {
        if (!strcasecmp(sim_known[i].name, name)) {
            if (canonical)
                *canonical = sim_known[i].name;
            return (long)sim_known[i].authority;
        }
    }
    return -1;
}

/* Only the actions this user may write are listed (manager.c). */
static void act_listcommands(struct sim_session *s, const struct ami_msg *m)
{
    uint32_t wp = sim_session_auth(s)->writeperm;
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    known_init();
    for (size_t i = 0; i < SIM_NLISTCOMMANDS; i++) {
        uint32_t auth = sim_known[i].authority;
        if (auth == 0 || (wp & auth)) {
            strbuf_append_str(&sb, sim_listcommands[i]);
            strbuf_append(&sb, "\r\n", 2);
        }
    }
    sim_reply_send(s, &sb);
}

/* Known to Asterisk 22 but not simulated: say so plainly. */
static void act_not_implemented(struct sim_session *s, const struct ami_msg *m, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "Action %.64s is not implemented by ami-sim", name);
    sim_reply_error(s, m, msg);
}

void sim_action_dispatch(struct sim_session *s, struct ami_msg *m)
{
    struct sim *sim = sim_session_sim(s);
    struct sim_auth *a = sim_session_auth(s);
    const char *action = "";
    const char *parse_error = ami_msg_get(m, SIM_PARSE_ERROR_KEY);
    if (parse_error) {
        sim_count_action(sim, "ParseError");
        sim_reply_error(s, m, parse_error);
        return;
    }
    /* GET_HEADER_SKIP_EMPTY: the first non-empty Action header */
    for (size_t i = 0; i < ami_msg_count(m); i++) {
        if (!strcasecmp(ami_msg_key_at(m, i), "Action")) {
            const char *v = ami_msg_value_at(m, i);
            while (*v == ' ' || *v == '\t')
                v++;
            if (*v) {
                action = v;
                break;
            }
        }
    }
    if (!*action) {
        sim_count_action(sim, "Missing");
        sim_reply_error(s, m, "Missing action in request");
        return;
    }
    if (!a->authenticated && strcasecmp(action, "Login") && strcasecmp(action, "Logoff") &&
        strcasecmp(action, "Challenge")) {
        sim_count_action(sim, "Denied");
        sim_reply_error(s, m, "Permission denied");
        return;
    }
    const char *canon = NULL;
    long auth = sim_action_authority(action, &canon);
    sim_action_fn fn = NULL;
    if (auth < 0) {
        for (size_t i = 0; i < sizeof(sim_private) / sizeof(sim_private[0]); i++) {
            if (!strcasecmp(action, sim_private[i].name)) {
                auth = sim_private[i].authority;
                canon = sim_private[i].name;
                fn = sim_private[i].fn;
            }
        }
    } else {
        for (size_t i = 0; i < sizeof(sim_handlers) / sizeof(sim_handlers[0]); i++)
            if (!strcasecmp(canon, sim_handlers[i].name))
                fn = sim_handlers[i].fn;
    }
    if (auth < 0) {
        char buf[512];
        sim_count_action(sim, "Unknown");
        snprintf(buf, sizeof(buf),
                 "Invalid/unknown command: %s. Use Action: ListCommands to show available "
                 "commands.",
                 action);
        sim_reply_error(s, m, buf);
        return;
    }
    sim_count_action(sim, canon);
    if (auth != 0 && !(a->writeperm & (uint32_t)auth)) {
        sim_reply_error(s, m, "Permission denied");
        return;
    }
    if (fn)
        fn(s, m);
    else
        act_not_implemented(s, m, canon);
}
