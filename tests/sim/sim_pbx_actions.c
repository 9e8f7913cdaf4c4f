/* sim_pbx_actions: the AMI actions that read or drive the PBX. Validation
 * order and error texts follow manager.c / app_queue.c of Asterisk 22 and
 * the captures (03d for the missing-header errors, 05a-05f for the lists).
 */
#include "sim/sim_pbx.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PBX_DEFAULT_ORIGINATE_TIMEOUT_MS 30000
#define PBX_MAX_UNIQUEID                 150 /* AST_MAX_PUBLIC_UNIQUEID */
#define PBX_MAX_REGEX_MATCHES            1024

static struct sim_pbx *pbx_of(struct sim_session *s)
{
    return sim_pbx(sim_session_sim(s));
}

static long chan_seconds(const struct pbx_chan *c)
{
    struct timeval now = sim_now_tv();
    return (long)(now.tv_sec - c->created.tv_sec);
}

/* Bounded copy of a part of a string. */
static void copy_str(char *dst, size_t len, const char *src, size_t n)
{
    if (!len)
        return;
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ast_callerid_parse(): "Name" <num>, Name <num>, <num>, num or name. */
static void parse_callerid(const char *in, char *name, size_t nlen, char *num, size_t llen)
{
    name[0] = num[0] = '\0';
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", in);
    char *lt = strchr(buf, '<');
    char *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt) {
        copy_str(num, llen, lt + 1, (size_t)(gt - lt - 1));
        *lt = '\0';
        char *n = buf;
        while (*n == ' ')
            n++;
        size_t l = strlen(n);
        while (l && n[l - 1] == ' ')
            n[--l] = '\0';
        if (l >= 2 && n[0] == '"' && n[l - 1] == '"') {
            n[l - 1] = '\0';
            n++;
        }
        copy_str(name, nlen, n, strlen(n));
    } else {
        char *n = buf;
        while (*n == ' ')
            n++;
        int phone = *n != '\0';
        for (const char *q = n; *q; q++)
            if (!strchr("0123456789+*#-(). ", *q))
                phone = 0;
        if (phone)
            copy_str(num, llen, n, strlen(n));
        else
            copy_str(name, nlen, n, strlen(n));
    }
    /* ast_shrink_phone_number */
    size_t o = 0;
    for (size_t i = 0; num[i]; i++)
        if (!strchr("()-. ", num[i]))
            num[o++] = num[i];
    num[o] = '\0';
}

/* Variable: a=b[,c=d] headers, repeated. */
static void originate_vars(const struct ami_msg *m, struct pbx_var **out)
{
    for (size_t i = 0; i < ami_msg_count(m); i++) {
        if (strcasecmp(ami_msg_key_at(m, i), "Variable"))
            continue;
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s", ami_msg_value_at(m, i));
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            char *eq = strchr(tok, '=');
            if (!eq || eq == tok)
                continue;
            *eq = '\0';
            struct pbx_var *v = calloc(1, sizeof(*v));
            if (!v)
                return;
            v->name = strdup(tok);
            v->value = strdup(eq + 1);
            if (!v->name || !v->value) {
                free(v->name);
                free(v->value);
                free(v);
                return;
            }
            v->next = *out;
            *out = v;
        }
    }
}

/* manager.c refuses these applications to users without system write. */
static int forbidden_app(const char *app, const char *data, int *bad_data)
{
    static const char *const apps[] = {"system",     "exec",        "agi",
                                       "mixmonitor", "externalivr", "originate"};
    *bad_data = 0;
    for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++)
        if (strcasestr(app, apps[i]))
            return 1;
    if (strstr(data, "SHELL") || strstr(data, "EVAL")) {
        *bad_data = 1;
        return 1;
    }
    return 0;
}

/* action_originate(): the checks in manager.c's order, then async or sync. */
void sim_act_originate(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *exten = sim_hdr(m, "Exten");
    const char *context = sim_hdr(m, "Context");
    const char *priority = sim_hdr(m, "Priority");
    const char *timeout = sim_hdr(m, "Timeout");
    const char *app = sim_hdr(m, "Application");
    const char *appdata = sim_hdr(m, "Data");
    const char *chanid = sim_hdr(m, "ChannelId");
    const char *otherid = sim_hdr(m, "OtherChannelId");
    int pi = 0, to = PBX_DEFAULT_ORIGINATE_TIMEOUT_MS;
    if (strlen(chanid) > PBX_MAX_UNIQUEID || strlen(otherid) > PBX_MAX_UNIQUEID) {
        char buf[128];
        snprintf(buf, sizeof(buf), "Uniqueid length exceeds maximum of %d\n", PBX_MAX_UNIQUEID);
        sim_reply_error(s, m, buf);
        return;
    }
    if (!*name) {
        sim_reply_error(s, m, "Channel not specified");
        return;
    }
    if (*priority && sscanf(priority, "%30d", &pi) != 1) {
        sim_reply_error(s, m, "Invalid priority");
        return;
    }
    if (*timeout && sscanf(timeout, "%30d", &to) != 1) {
        sim_reply_error(s, m, "Invalid timeout");
        return;
    }
    if (!strchr(name, '/')) {
        sim_reply_error(s, m, "Invalid channel");
        return;
    }
    int bad_data = 0;
    if (*app && !(sim_session_auth(s)->writeperm & SIM_EV_SYSTEM) &&
        forbidden_app(app, appdata, &bad_data)) {
        sim_reply_error(s, m,
                        bad_data ? "Originate Access Forbidden: Data"
                                 : "Originate Access Forbidden: Application");
        return;
    }
    if (pi && !pbx_exten_exists(context, exten, pi)) {
        sim_reply_error(s, m, "Extension does not exist.");
        return;
    }
    if (!*app && (!*exten || !*context || !pi)) {
        sim_reply_error(s, m, "Originate with 'Exten' requires 'Context' and 'Priority'");
        return;
    }
    struct pbx_orig *o = calloc(1, sizeof(*o));
    if (!o) {
        sim_reply_error(s, m, "Internal Error. Memory allocation failure.");
        return;
    }
    snprintf(o->actionid, sizeof(o->actionid), "%s", sim_hdr(m, "ActionID"));
    snprintf(o->channel, sizeof(o->channel), "%s", name);
    snprintf(o->context, sizeof(o->context), "%s", context);
    snprintf(o->exten, sizeof(o->exten), "%s", exten);
    o->priority = pi;
    snprintf(o->app, sizeof(o->app), "%s", app);
    snprintf(o->appdata, sizeof(o->appdata), "%s", appdata);
    snprintf(o->chanid, sizeof(o->chanid), "%s", chanid);
    snprintf(o->otherchanid, sizeof(o->otherchanid), "%s", otherid);
    const char *cid = sim_hdr(m, "CallerID");
    if (*cid) {
        parse_callerid(cid, o->cid_name, sizeof(o->cid_name), o->cid_num, sizeof(o->cid_num));
        o->has_cid = o->cid_name[0] || o->cid_num[0];
    }
    o->timeout_ms = to > 0 ? (uint64_t)to : PBX_DEFAULT_ORIGINATE_TIMEOUT_MS;
    originate_vars(m, &o->vars);
    o->async = sim_true(sim_hdr(m, "Async"));
    if (o->async) {
        sim_reply_ack(s, m, "Originate successfully queued");
    } else {
        o->session = s;
        sim_session_ref(s);
    }
    pbx_originate_start(p, o);
    pbx_drain(p);
}

/* ---- Status / CoreShowChannels ------------------------------------------------------------- */

/* generate_status(): the ActionID comes last (05a). */
static void status_item(struct sim_session *s, const struct ami_msg *m, struct pbx_chan *c,
                        const char *vars, int all_vars)
{
    struct sim_pbx *p = pbx_of(s);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    sim_kv(&sb, "Event", "Status");
    sim_kv(&sb, "Privilege", "Call");
    pbx_chan_keys(&sb, "", c);
    sim_kv(&sb, "Type", "Local");
    sim_kv(&sb, "DNID", "");
    sim_kv(&sb, "EffectiveConnectedLineNum", pbx_or_unknown(c->col_num));
    sim_kv(&sb, "EffectiveConnectedLineName", pbx_or_unknown(c->col_name));
    sim_kv(&sb, "TimeToHangup", "0");
    sim_kv(&sb, "BridgeID", c->bridge ? c->bridge->uuid : "");
    sim_kv(&sb, "Application", c->appl);
    sim_kv(&sb, "Data", c->data);
    sim_kv(&sb, "Nativeformats", "(slin)");
    sim_kv(&sb, "Readformat", "slin");
    sim_kv(&sb, "Readtrans", "");
    sim_kv(&sb, "Writeformat", "slin");
    sim_kv(&sb, "Writetrans", "");
    sim_kv(&sb, "Callgroup", "0");
    sim_kv(&sb, "Pickupgroup", "0");
    sim_kvf(&sb, "Seconds", "%ld", chan_seconds(c));
    if (*vars) {
        char list[1024];
        snprintf(list, sizeof(list), "%s", vars);
        char *save = NULL;
        for (char *v = strtok_r(list, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
            while (*v == ' ')
                v++;
            char buf[1024];
            int found = 0;
            pbx_getvar(p, c, v, buf, sizeof(buf), &found);
            strbuf_printf(&sb, "Variable: %s=%s\r\n", v, found ? buf : "(null)");
        }
    }
    if (all_vars) {
        for (struct pbx_var *v = c->vars; v; v = v->next)
            strbuf_printf(&sb, "Variable: %s=%s\r\n", v->name, v->value);
    }
    sim_kv_actionid(&sb, sim_hdr(m, "ActionID"));
    sim_reply_send(s, &sb);
}

void sim_act_status(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *vars = sim_hdr(m, "Variables");
    int all_vars = sim_true(sim_hdr(m, "AllVariables"));
    struct pbx_chan *one = NULL;
    if (*name && strcasecmp(name, "all")) {
        one = pbx_chan_find(p, name);
        if (!one) {
            sim_reply_error(s, m, "No such channel");
            return;
        }
    }
    sim_list_start(s, m, "Channel status will follow");
    long n = 0;
    for (struct pbx_chan *c = p->chans; c; c = c->next) {
        if (one && c != one)
            continue;
        status_item(s, m, c, vars, all_vars);
        n++;
    }
    struct strbuf sb;
    sim_list_complete(&sb, m, "StatusComplete", n);
    sim_kvf(&sb, "Items", "%ld", n);
    sim_reply_send(s, &sb);
}

void sim_act_coreshowchannels(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    sim_list_start(s, m, "Channels will follow");
    long n = 0;
    for (struct pbx_chan *c = p->chans; c; c = c->next) {
        struct strbuf sb;
        sim_list_item_begin(&sb, "CoreShowChannel", m);
        pbx_chan_keys(&sb, "", c);
        sim_kv(&sb, "Application", c->appl);
        sim_kv(&sb, "ApplicationData", c->data);
        long secs = chan_seconds(c);
        sim_kvf(&sb, "Duration", "%02ld:%02ld:%02ld", secs / 3600, (secs % 3600) / 60, secs % 60);
        sim_kv(&sb, "BridgeId", c->bridge ? c->bridge->uuid : "");
        sim_reply_send(s, &sb);
        n++;
    }
    sim_list_end(s, m, "CoreShowChannelsComplete", n);
}

/* ---- Hangup / Redirect / AbsoluteTimeout -------------------------------------------------------
 */

/* A bad Cause hangs up without one, as manager.c does. */
static int parse_cause(const char *v)
{
    if (!*v)
        return 0;
    char *end;
    long c = strtol(v, &end, 10);
    if (*end || c < 0 || c > 127)
        return 0; /* manager.c: hang up without a cause */
    return (int)c;
}

/* By name, or /regex/ as a list of ChannelHungup events (05e). */
void sim_act_hangup(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    int cause = parse_cause(sim_hdr(m, "Cause"));
    if (!*name) {
        sim_reply_error(s, m, "No channel specified");
        return;
    }
    if (name[0] != '/') {
        struct pbx_chan *c = pbx_chan_find(p, name);
        if (!c) {
            sim_reply_error(s, m, "No such channel");
            return;
        }
        sim_reply_ack(s, m, "Channel Hungup");
        pbx_chan_softhangup(c, cause);
        pbx_drain(p);
        return;
    }
    size_t len = strlen(name);
    if (len < 2 || name[len - 1] != '/') {
        sim_reply_error(s, m, "Regex format invalid, Channel param should be /regex/");
        return;
    }
    char pattern[1024];
    snprintf(pattern, sizeof(pattern), "%.*s", (int)(len - 2), name + 1);
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB)) {
        char buf[1200];
        snprintf(buf, sizeof(buf), "Regex compile failed on: %s", name);
        sim_reply_error(s, m, buf);
        return;
    }
    sim_list_start(s, m, "Channels hung up will follow");
    /* names first: hanging up one half of a pair takes the other too */
    char(*names)[PBX_NAME] = calloc(PBX_MAX_REGEX_MATCHES, PBX_NAME);
    int n = 0;
    for (struct pbx_chan *c = p->chans; c && names && n < PBX_MAX_REGEX_MATCHES; c = c->next)
        if (!regexec(&re, c->name, 0, NULL, 0))
            snprintf(names[n++], PBX_NAME, "%s", c->name);
    regfree(&re);
    const char *id = sim_hdr(m, "ActionID");
    for (int i = 0; i < n; i++) {
        struct pbx_chan *c = pbx_chan_find(p, names[i]);
        if (c)
            pbx_chan_softhangup(c, cause);
        struct strbuf sb;
        strbuf_init(&sb, 0);
        sim_kv(&sb, "Event", "ChannelHungup");
        sim_kv(&sb, "Channel", names[i]);
        sim_kv_actionid(&sb, id);
        sim_reply_send(s, &sb);
    }
    free(names);
    sim_list_end(s, m, "ChannelsHungupListComplete", n);
    pbx_drain(p);
}

void sim_act_redirect(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *name2 = sim_hdr(m, "ExtraChannel");
    const char *context = sim_hdr(m, "Context");
    const char *exten = sim_hdr(m, "Exten");
    const char *priority = sim_hdr(m, "Priority");
    int pi = 0;
    if (!*name) {
        sim_reply_error(s, m, "Channel not specified");
        return;
    }
    if (!*context) {
        sim_reply_error(s, m, "Context not specified");
        return;
    }
    if (!*exten) {
        sim_reply_error(s, m, "Exten not specified");
        return;
    }
    if (!*priority) {
        sim_reply_error(s, m, "Priority not specified");
        return;
    }
    if (sscanf(priority, "%30d", &pi) != 1 || pi < 1) {
        sim_reply_error(s, m, "Priority is invalid");
        return;
    }
    struct pbx_chan *c = pbx_chan_find(p, name);
    if (!c) {
        char buf[PBX_DATA + 32];
        snprintf(buf, sizeof(buf), "Channel does not exist: %s", name);
        sim_reply_error(s, m, buf);
        return;
    }
    struct pbx_chan *c2 = NULL;
    if (*name2) {
        c2 = pbx_chan_find(p, name2);
        if (!c2) {
            char buf[PBX_DATA + 32];
            snprintf(buf, sizeof(buf), "ExtraChannel does not exist: %s", name2);
            sim_reply_error(s, m, buf);
            return;
        }
    }
    sim_reply_ack(s, m, c2 ? "Dual Redirect successful" : "Redirect successful");
    pbx_chan_redirect(c, context, exten, pi);
    if (c2) {
        const char *ctx2 = sim_hdr(m, "ExtraContext");
        const char *ext2 = sim_hdr(m, "ExtraExten");
        int pi2 = atoi(sim_hdr(m, "ExtraPriority"));
        c2 = pbx_chan_find(p, name2);
        if (c2)
            pbx_chan_redirect(c2, *ctx2 ? ctx2 : context, *ext2 ? ext2 : exten, pi2 > 0 ? pi2 : pi);
    }
    pbx_drain(p);
}

/* action_blind_transfer() of manager.c: the checks in its order; Context defaults to the
 * channel's own. The reply goes out first, the events follow (as for Redirect). */
void sim_act_blindtransfer(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *exten = sim_hdr(m, "Exten");
    const char *context = sim_hdr(m, "Context");
    if (!*name) {
        sim_reply_error(s, m, "No channel specified");
        return;
    }
    if (!*exten) {
        sim_reply_error(s, m, "No extension specified");
        return;
    }
    struct pbx_chan *c = pbx_chan_find(p, name);
    if (!c) {
        sim_reply_error(s, m, "Channel specified does not exist");
        return;
    }
    char ctx[PBX_STR];
    snprintf(ctx, sizeof(ctx), "%s", *context ? context : c->context);
    if (pbx_chan_transferable(c))
        sim_reply_ack(s, m, "Transfer succeeded");
    else
        sim_reply_error(s, m, "Transfer invalid");
    pbx_chan_blind_transfer(c, ctx, exten);
    pbx_drain(p);
}

/* action_atxfer() of manager.c: the checks in its order, TRANSFER_CONTEXT, the digits queued,
 * then the reply (10b: no features.conf, no code; 10b2). */
void sim_act_atxfer(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *exten = sim_hdr(m, "Exten");
    const char *context = sim_hdr(m, "Context");
    if (!*name) {
        sim_reply_error(s, m, "No channel specified");
        return;
    }
    if (!*exten) {
        sim_reply_error(s, m, "No extension specified");
        return;
    }
    struct pbx_chan *c = pbx_chan_find(p, name);
    if (!c) {
        sim_reply_error(s, m, "Channel specified does not exist");
        return;
    }
    if (!p->atxfer_code[0]) {
        sim_reply_error(s, m, "No attended transfer feature code found");
        return;
    }
    if (*context)
        pbx_setvar(p, c, "TRANSFER_CONTEXT", context);
    pbx_chan_atxfer(c, exten);
    sim_reply_ack(s, m, "Atxfer successfully queued");
    pbx_drain(p);
}

void sim_act_absolutetimeout(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    if (!*name) {
        sim_reply_error(s, m, "No channel specified");
        return;
    }
    struct pbx_chan *c = pbx_chan_find(p, name);
    if (!c) {
        sim_reply_error(s, m, "No such channel");
        return;
    }
    pbx_chan_abs_timeout(c, atol(sim_hdr(m, "Timeout")));
    sim_reply_ack(s, m, "Timeout Set");
}

/* ---- Getvar / Setvar ----------------------------------------------------------------------------
 */

void sim_act_getvar(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *var = sim_hdr(m, "Variable");
    if (!*var) {
        sim_reply_error(s, m, "No variable specified");
        return;
    }
    struct pbx_chan *c = NULL;
    if (*name && !(c = pbx_chan_find(p, name))) {
        sim_reply_error(s, m, "No such channel");
        return;
    }
    char buf[1024];
    int found = 0;
    pbx_getvar(p, c, var, buf, sizeof(buf), &found);
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "Variable", var);
    sim_kv(&sb, "Value", found ? buf : "");
    sim_reply_send(s, &sb);
}

void sim_act_setvar(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *name = sim_hdr(m, "Channel");
    const char *var = sim_hdr(m, "Variable");
    if (!*var) {
        sim_reply_error(s, m, "No variable specified");
        return;
    }
    struct pbx_chan *c = NULL;
    if (*name && !(c = pbx_chan_find(p, name))) {
        sim_reply_error(s, m, "No such channel");
        return;
    }
    /* the reply is written at once; the VarSet event reaches sessions later */
    sim_reply_ack(s, m, "Variable Set");
    pbx_setvar(p, c, var, sim_hdr(m, "Value"));
    pbx_drain(p);
}

/* ---- queues
 * ----------------------------------------------------------------------------------------- */

/* QueueParams: ActionID last (03c). */
static void queue_params(struct strbuf *sb, const struct pbx_queue *q, const char *id)
{
    strbuf_init(sb, 0);
    sim_kv(sb, "Event", "QueueParams");
    sim_kv(sb, "Queue", q->name);
    sim_kvf(sb, "Max", "%d", q->maxlen);
    sim_kv(sb, "Strategy", q->strategy);
    sim_kvf(sb, "Calls", "%d", q->ncallers);
    sim_kvf(sb, "Holdtime", "%ld", q->holdtime);
    sim_kvf(sb, "TalkTime", "%ld", q->talktime);
    sim_kvf(sb, "Completed", "%d", q->completed);
    sim_kvf(sb, "Abandoned", "%d", q->abandoned);
    sim_kv(sb, "ServiceLevel", "0");
    sim_kv(sb, "ServicelevelPerf", "0.0");
    sim_kv(sb, "ServicelevelPerf2", "0.0");
    sim_kvf(sb, "Weight", "%d", q->weight);
    sim_kv_actionid(sb, id);
}

/* QueueMember: ActionID last (03c). */
static void queue_member_item(struct strbuf *sb, const struct pbx_queue *q,
                              const struct pbx_member *mem, const char *id)
{
    strbuf_init(sb, 0);
    sim_kv(sb, "Event", "QueueMember");
    sim_kv(sb, "Queue", q->name);
    sim_kv(sb, "Name", mem->membername);
    sim_kv(sb, "Location", mem->interface);
    sim_kv(sb, "StateInterface", mem->state_interface);
    sim_kv(sb, "Membership", mem->dynamic ? "dynamic" : "static");
    sim_kvf(sb, "Penalty", "%d", mem->penalty);
    sim_kvf(sb, "CallsTaken", "%d", mem->calls);
    sim_kvf(sb, "LastCall", "%ld", mem->lastcall);
    sim_kvf(sb, "LastPause", "%ld", mem->lastpause);
    sim_kvf(sb, "LoginTime", "%ld", mem->logintime);
    sim_kvf(sb, "InCall", "%d", mem->incall);
    sim_kvf(sb, "Status", "%d", mem->status);
    sim_kvf(sb, "Paused", "%d", mem->paused);
    sim_kv(sb, "PausedReason", mem->reason);
    sim_kvf(sb, "Wrapuptime", "%d", mem->wrapuptime);
    sim_kv_actionid(sb, id);
}

void sim_act_queuestatus(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *qf = sim_hdr(m, "Queue");
    const char *mf = sim_hdr(m, "Member");
    const char *id = sim_hdr(m, "ActionID");
    sim_list_start(s, m, "Queue status will follow");
    long n = 0;
    for (int qi = 0; qi < p->nqueues; qi++) {
        const struct pbx_queue *q = &p->queues[qi];
        if (*qf && strcasecmp(q->name, qf))
            continue;
        struct strbuf sb;
        queue_params(&sb, q, id);
        sim_reply_send(s, &sb);
        n++;
        for (int i = 0; i < q->nmembers; i++) {
            const struct pbx_member *mem = &q->members[i];
            if (*mf && strcmp(mem->interface, mf) && strcmp(mem->membername, mf))
                continue;
            queue_member_item(&sb, q, mem, id);
            sim_reply_send(s, &sb);
            n++;
        }
        for (int i = 0; i < q->ncallers; i++) {
            const struct pbx_chan *y = q->callers[i]->caller;
            strbuf_init(&sb, 0);
            sim_kv(&sb, "Event", "QueueEntry");
            sim_kv(&sb, "Queue", q->name);
            sim_kvf(&sb, "Position", "%d", i + 1);
            sim_kv(&sb, "Channel", y->name);
            sim_kv(&sb, "Uniqueid", y->uniqueid);
            /* app_queue prints a missing caller id as "unknown", without the brackets */
            sim_kv(&sb, "CallerIDNum", *y->cid_num ? y->cid_num : "unknown");
            sim_kv(&sb, "CallerIDName", *y->cid_name ? y->cid_name : "unknown");
            sim_kv(&sb, "ConnectedLineNum", *y->col_num ? y->col_num : "unknown");
            sim_kv(&sb, "ConnectedLineName", *y->col_name ? y->col_name : "unknown");
            sim_kvf(&sb, "Wait", "%ld",
                    (long)((uv_now(sim_loop(p->sim)) - q->callers[i]->start_ms) / 1000));
            sim_kv(&sb, "Priority", "0");
            sim_kv_actionid(&sb, id);
            sim_reply_send(s, &sb);
            n++;
        }
    }
    sim_list_end(s, m, "QueueStatusComplete", n);
}

void sim_act_queuesummary(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *qf = sim_hdr(m, "Queue");
    const char *id = sim_hdr(m, "ActionID");
    sim_list_start(s, m, "Queue summary will follow");
    long n = 0;
    for (int qi = 0; qi < p->nqueues; qi++) {
        const struct pbx_queue *q = &p->queues[qi];
        if (*qf && strcasecmp(q->name, qf))
            continue;
        int loggedin = 0, avail = 0;
        for (int i = 0; i < q->nmembers; i++) {
            const struct pbx_member *mem = &q->members[i];
            if (mem->status != PBX_DEV_UNAVAILABLE && mem->status != PBX_DEV_INVALID) {
                loggedin++;
                if ((mem->status == PBX_DEV_NOT_INUSE || mem->status == PBX_DEV_UNKNOWN) &&
                    !mem->paused)
                    avail++;
            }
        }
        long longest = 0;
        for (int i = 0; i < q->ncallers; i++) {
            long w = (long)((uv_now(sim_loop(p->sim)) - q->callers[i]->start_ms) / 1000);
            if (w > longest)
                longest = w;
        }
        struct strbuf sb;
        strbuf_init(&sb, 0);
        sim_kv(&sb, "Event", "QueueSummary");
        sim_kv(&sb, "Queue", q->name);
        sim_kvf(&sb, "LoggedIn", "%d", loggedin);
        sim_kvf(&sb, "Available", "%d", avail);
        sim_kvf(&sb, "Callers", "%d", q->ncallers);
        sim_kvf(&sb, "HoldTime", "%ld", q->holdtime);
        sim_kvf(&sb, "TalkTime", "%ld", q->talktime);
        sim_kvf(&sb, "LongestHoldTime", "%ld", longest);
        sim_kv_actionid(&sb, id);
        sim_reply_send(s, &sb);
        n++;
    }
    sim_list_end(s, m, "QueueSummaryComplete", n);
}

/* Queue:NAME_pause_IFACE follows the paused flag. */
static void pause_devstate(struct sim_pbx *p, const struct pbx_queue *q,
                           const struct pbx_member *mem)
{
    char dev[PBX_NAME + PBX_STR];
    snprintf(dev, sizeof(dev), "Queue:%s_pause_%s", q->name, mem->interface);
    pbx_devstate_set(p, dev, mem->paused ? "INUSE" : "NOT_INUSE", 1);
}

/* Local device state now: in use while a channel of it exists. */
static int local_device_status(struct sim_pbx *p, const char *device)
{
    for (struct pbx_chan *c = p->chans; c; c = c->next)
        if (!strcasecmp(c->device, device))
            return PBX_DEV_INUSE;
    return PBX_DEV_NOT_INUSE;
}

void sim_act_queueadd(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *qname = sim_hdr(m, "Queue");
    const char *iface = sim_hdr(m, "Interface");
    if (!*qname) {
        sim_reply_error(s, m, "'Queue' not specified.");
        return;
    }
    if (!*iface) {
        sim_reply_error(s, m, "'Interface' not specified.");
        return;
    }
    struct pbx_queue *q = pbx_queue_find(p, qname);
    if (!q) {
        sim_reply_error(s, m, "Unable to add interface to queue: No such queue");
        return;
    }
    if (pbx_member_find(q, iface)) {
        sim_reply_error(s, m, "Unable to add interface: Already there");
        return;
    }
    if (q->nmembers >= PBX_MAX_MEMBERS) {
        sim_reply_error(s, m, "Out of memory");
        return;
    }
    struct pbx_member *mem = &q->members[q->nmembers++];
    memset(mem, 0, sizeof(*mem));
    snprintf(mem->interface, sizeof(mem->interface), "%s", iface);
    const char *mname = sim_hdr(m, "MemberName");
    snprintf(mem->membername, sizeof(mem->membername), "%s", *mname ? mname : iface);
    const char *si = sim_hdr(m, "StateInterface");
    snprintf(mem->state_interface, sizeof(mem->state_interface), "%s", *si ? si : iface);
    int pen = 0;
    if (sscanf(sim_hdr(m, "Penalty"), "%30d", &pen) != 1 || pen < 0)
        pen = 0;
    mem->penalty = pen;
    mem->dynamic = 1;
    mem->paused = sim_true(sim_hdr(m, "Paused"));
    snprintf(mem->reason, sizeof(mem->reason), "%s", mem->paused ? sim_hdr(m, "Reason") : "");
    mem->logintime = pbx_now_s();
    if (mem->paused)
        mem->lastpause = mem->logintime;
    mem->ringinuse = q->ringinuse;
    mem->wrapuptime = atoi(sim_hdr(m, "Wrapuptime"));
    mem->status = local_device_status(p, mem->state_interface);
    sim_reply_ack(s, m, "Added interface to queue");
    pbx_ev_member(p, "QueueMemberAdded", q, mem);
    pause_devstate(p, q, mem);
    pbx_queue_avail_member(p, q, mem);
    pbx_drain(p);
}

void sim_act_queueremove(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *qname = sim_hdr(m, "Queue");
    const char *iface = sim_hdr(m, "Interface");
    if (!*qname || !*iface) {
        sim_reply_error(s, m, "Need 'Queue' and 'Interface' parameters.");
        return;
    }
    struct pbx_queue *q = pbx_queue_find(p, qname);
    if (!q) {
        sim_reply_error(s, m, "Unable to remove interface from queue: No such queue");
        return;
    }
    struct pbx_member *mem = pbx_member_find(q, iface);
    if (!mem) {
        sim_reply_error(s, m, "Unable to remove interface: Not there");
        return;
    }
    if (!mem->dynamic) {
        sim_reply_error(s, m, "Member not dynamic");
        return;
    }
    if (mem->ringing) {
        sim_reply_error(s, m, "Unable to remove interface: Member is ringing");
        return;
    }
    sim_reply_ack(s, m, "Removed interface from queue");
    pbx_ev_member(p, "QueueMemberRemoved", q, mem);
    int idx = (int)(mem - q->members);
    for (int i = idx; i + 1 < q->nmembers; i++)
        q->members[i] = q->members[i + 1];
    q->nmembers--;
    pbx_queue_avail_removed(p, q);
    pbx_drain(p);
}

#define MEMBER_HITS_MAX 4

/* The member `iface` of queue `qname`, or of every queue when qname is
 * empty (as app_queue's pause and penalty actions do). */
static int members_named(struct sim_pbx *p, const char *qname, const char *iface,
                         struct pbx_queue *hits[MEMBER_HITS_MAX],
                         struct pbx_member *mems[MEMBER_HITS_MAX])
{
    int n = 0;
    for (int qi = 0; qi < p->nqueues && n < MEMBER_HITS_MAX; qi++) {
        struct pbx_queue *q = &p->queues[qi];
        if (*qname && strcasecmp(q->name, qname))
            continue;
        struct pbx_member *mem = pbx_member_find(q, iface);
        if (mem) {
            hits[n] = q;
            mems[n++] = mem;
        }
    }
    return n;
}

void sim_act_queuepause(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *iface = sim_hdr(m, "Interface");
    const char *paused_s = sim_hdr(m, "Paused");
    const char *qname = sim_hdr(m, "Queue");
    const char *reason = sim_hdr(m, "Reason");
    if (!*iface || !*paused_s) {
        sim_reply_error(s, m, "Need 'Interface' and 'Paused' parameters.");
        return;
    }
    int paused = sim_true(paused_s);
    struct pbx_queue *hits[MEMBER_HITS_MAX];
    struct pbx_member *mems[MEMBER_HITS_MAX];
    int n = members_named(p, qname, iface, hits, mems);
    if (!n) {
        sim_reply_error(s, m, "Interface not found");
        return;
    }
    sim_reply_ack(s, m,
                  paused ? "Interface paused successfully" : "Interface unpaused successfully");
    for (int i = 0; i < n; i++) {
        struct pbx_member *mem = mems[i];
        mem->paused = paused;
        if (paused) {
            mem->lastpause = pbx_now_s();
            snprintf(mem->reason, sizeof(mem->reason), "%s", reason);
        } else {
            mem->reason[0] = '\0';
        }
        pbx_ev_member(p, "QueueMemberPause", hits[i], mem);
        pause_devstate(p, hits[i], mem);
        pbx_queue_avail_member(p, hits[i], mem);
    }
    pbx_drain(p);
}

void sim_act_queuepenalty(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    const char *iface = sim_hdr(m, "Interface");
    const char *pen_s = sim_hdr(m, "Penalty");
    const char *qname = sim_hdr(m, "Queue");
    if (!*iface || !*pen_s) {
        sim_reply_error(s, m, "Need 'Interface' and 'Penalty' parameters.");
        return;
    }
    int pen = atoi(pen_s);
    struct pbx_queue *hits[MEMBER_HITS_MAX];
    struct pbx_member *mems[MEMBER_HITS_MAX];
    int n = members_named(p, qname, iface, hits, mems);
    if (!n || pen < 0) {
        sim_reply_error(s, m, "Invalid interface, queuename or penalty");
        return;
    }
    sim_reply_ack(s, m, "Interface penalty set successfully");
    for (int i = 0; i < n; i++) {
        mems[i]->penalty = pen;
        pbx_ev_member(p, "QueueMemberPenalty", hits[i], mems[i]);
    }
    pbx_drain(p);
}

/* ---- ExtensionState / DeviceStateList
 * -------------------------------------------------------------- */

void sim_act_extensionstate(struct sim_session *s, const struct ami_msg *m)
{
    const char *exten = sim_hdr(m, "Exten");
    const char *context = sim_hdr(m, "Context");
    if (!*exten) {
        sim_reply_error(s, m, "Extension not specified");
        return;
    }
    if (!*context)
        context = "default";
    struct strbuf sb;
    sim_resp_begin(&sb, "Success", m);
    sim_kv(&sb, "Message", "Extension Status");
    sim_kv(&sb, "Exten", exten);
    sim_kv(&sb, "Context", context);
    sim_kv(&sb, "Hint", "");
    sim_kv(&sb, "Status", "-1");
    sim_kv(&sb, "StatusText", "Unknown");
    sim_reply_send(s, &sb);
}

void sim_act_devicestatelist(struct sim_session *s, const struct ami_msg *m)
{
    struct sim_pbx *p = pbx_of(s);
    sim_list_start(s, m, "Device State Changes will follow");
    long n = 0;
    for (struct pbx_devstate_entry *d = p->devstates; d; d = d->next) {
        struct strbuf sb;
        sim_list_item_begin(&sb, "DeviceStateChange", m);
        sim_kv(&sb, "Device", d->device);
        sim_kv(&sb, "State", d->state);
        sim_reply_send(s, &sb);
        n++;
    }
    sim_list_end(s, m, "DeviceStateListComplete", n);
}
