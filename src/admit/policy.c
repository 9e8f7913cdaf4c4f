#include "admit/policy.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "admit/astval.h"
#include "core/ascii.h"

#define NAME_MAX_LEN ASTVAL_MAX /* a number or extension: one AMI line at most, never cut */
#define APP_ARGS_MAX 16
/* What Asterisk keeps of a value, past which it cuts it without a word:
 * Originate's Channel (action_originate: char tmp[256]), a queue member's
 * Interface and StateInterface (app_queue: char interface[AST_CHANNEL_NAME],
 * 80). A cut value is not the one the policy judged. */
#define ORIGINATE_CHANNEL_MAX 255
#define QUEUE_INTERFACE_MAX   79
/* Park's TimeoutChannel becomes "Dial(<it>,<comebackdialtime>)" in an
 * extension's data of AST_MAX_EXTENSION (80) bytes
 * (parking_duration_callback): 79 less ",4294967295" */
#define PARK_DIAL_MAX 68

/* The state of one check: the key's lists and where a refusal goes. */
struct judge {
    const struct cfg *cfg;
    const struct cfg_policy *p; /* NULL: no dial policy */
    struct policy_refusal *out;
};

static enum policy_verdict refuse(struct judge *j, enum policy_verdict v, const char *field,
                                  const char *rule, const char *fmt, ...)
{
    snprintf(j->out->field, sizeof(j->out->field), "%s", field);
    snprintf(j->out->rule, sizeof(j->out->rule), "%s", rule ? rule : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->out->detail, sizeof(j->out->detail), fmt, ap);
    va_end(ap);
    return v;
}

static const char *first_match(char *const *globs, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], s, FNM_CASEFOLD) == 0)
            return globs[i];
    return NULL;
}

int policy_has_rules(const struct cfg_api_key *key)
{
    if (!key)
        return 0;
    const struct cfg_policy *p = &key->policy;
    return p->nallow_channels || p->nallow_contexts || p->nallow_extens || p->ndeny_extens ||
           p->nallow_applications || p->nallow_variables;
}

/* --- the dial policy ------------------------------------------------------------------ */

static enum policy_verdict dial_refuse(struct judge *j, const char *field, const char *list,
                                       const char *glob, const char *what)
{
    char rule[160];
    if (glob)
        snprintf(rule, sizeof(rule), "%s: %s", list, glob);
    else
        snprintf(rule, sizeof(rule), "%s", list);
    return refuse(j, POLICY_DIAL, field, rule, "is refused by %s ('%.64s')", rule, what);
}

/* A context a call is sent to. */
static enum policy_verdict check_context(struct judge *j, const char *field, const char *context)
{
    const struct cfg_policy *p = j->p;
    if (!p || !context || !p->nallow_contexts)
        return POLICY_OK;
    /* no context: Asterisk keeps the channel's own, which a policy cannot know */
    if (!*context)
        return refuse(j, POLICY_DIAL, field, "allow_contexts",
                      "must name a context: without one the call stays in the channel's own");
    if (!first_match(p->allow_contexts, p->nallow_contexts, context))
        return dial_refuse(j, field, "allow_contexts", NULL, context);
    return POLICY_OK;
}

/* A number against deny_extens, as the dialplan and as a trunk read it. */
static const char *denied_number(const struct cfg_policy *p, const char *raw)
{
    char ext[NAME_MAX_LEN + 1], num[NAME_MAX_LEN + 1];
    astval_exten(raw, ext, sizeof(ext));
    astval_number(raw, num, sizeof(num));
    const char *g = first_match(p->deny_extens, p->ndeny_extens, ext);
    return g ? g : first_match(p->deny_extens, p->ndeny_extens, num);
}

/* A quote or a backslash: the application and channel driver parsers
 * take them out (__ast_app_separate_args: chan_pjsip reads
 * PJSIP/0\044@trunk and PJSIP/0""044@trunk as 0044 at trunk; Dial
 * once more), so the number dialled is not the one written. No extension
 * or dial string needs them: refused for a key with a dial policy. */
static enum policy_verdict escaped_refuse(struct judge *j, const char *field, const char *what)
{
    return refuse(j, POLICY_DIAL, field, "quote or backslash",
                  "has a quote or a backslash, which Asterisk takes out before it dials "
                  "('%.64s')",
                  what);
}

/* An extension a call is sent to. */
static enum policy_verdict check_exten(struct judge *j, const char *field, const char *exten)
{
    const struct cfg_policy *p = j->p;
    if (!p || !exten)
        return POLICY_OK;
    if (exten[strcspn(exten, "\\\"")])
        return escaped_refuse(j, field, exten);
    const char *g = denied_number(p, exten);
    if (g)
        return dial_refuse(j, field, "deny_extens", g, exten);
    char ext[NAME_MAX_LEN + 1];
    astval_exten(exten, ext, sizeof(ext));
    if (p->nallow_extens && !first_match(p->allow_extens, p->nallow_extens, ext))
        return dial_refuse(j, field, "allow_extens", NULL, exten);
    return POLICY_OK;
}

/* A number candidate against deny_extens in the forms a trunk may read it:
 * as written, percent-decoded (a SIP URI's user part), and from its first
 * digit or '+' on (dial-string option letters before the number). */
static enum policy_verdict check_number(struct judge *j, const char *field, const char *cand)
{
    char dec[ASTVAL_MAX + 1];
    size_t n = 0;
    for (const char *c = cand; *c && n + 1 < sizeof(dec); c++) {
        unsigned hi, lo;
        if (c[0] == '%' && sscanf(c + 1, "%1x%1x", &hi, &lo) == 2) {
            dec[n++] = (char)(hi * 16 + lo);
            c += 2;
        } else {
            dec[n++] = *c;
        }
    }
    dec[n] = '\0';
    const char *forms[] = {cand, dec, dec + strcspn(dec, "+0123456789")};
    for (size_t i = 0; i < 3; i++) {
        const char *g = *forms[i] ? denied_number(j->p, forms[i]) : NULL;
        if (g)
            return dial_refuse(j, field, "deny_extens", g, cand);
    }
    return POLICY_OK;
}

/* The numbers a channel that is not Local dials: the user part of its
 * first segment ("PJSIP/0044...@trunk", "IAX2/user@host/...") and every
 * later '/' segment ("DAHDI/g1/0044...", "PJSIP/trunk/sip:0044...@host"),
 * without a sip:/sips:/tel: scheme. A lone first segment names a device
 * ("PJSIP/9001"), not a number. */
static enum policy_verdict check_channel_numbers(struct judge *j, const char *field,
                                                 const char *resource)
{
    char buf[ASTVAL_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", resource);
    char *save = NULL;
    enum policy_verdict v;
    int first = 1;
    for (char *seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        int at = strchr(seg, '@') != NULL;
        if (first && !at) {
            first = 0;
            continue;
        }
        first = 0;
        static const char *const schemes[] = {"sip:", "sips:", "tel:", NULL};
        for (const char *const *sc = schemes; *sc; sc++)
            if (!strncasecmp(seg, *sc, strlen(*sc)))
                seg += strlen(*sc);
        seg[strcspn(seg, "@;")] = '\0';
        if (*seg && (v = check_number(j, field, seg)))
            return v;
    }
    return POLICY_OK;
}

/* A channel a call is placed on (or a device Dial rings). */
static enum policy_verdict check_channel(struct judge *j, const char *field, const char *channel)
{
    const struct cfg_policy *p = j->p;
    if (!p || !channel)
        return POLICY_OK;
    const char *c = astval_header(channel);
    if (c[strcspn(c, "\\\"")])
        return escaped_refuse(j, field, c);
    char exten[ASTVAL_MAX + 1], context[ASTVAL_MAX + 1];
    int local = astval_local(c, exten, sizeof(exten), context, sizeof(context));
    if (p->nallow_channels) {
        /* a Local channel is judged by where it goes, Local/EXTEN@CONTEXT
         * (without '-'), never by its text: "Local/1@intl/n@crm" is in
         * context "intl", whatever the glob "Local/(any)@crm" makes of it */
        char canon[2 * ASTVAL_MAX + 16], ext[ASTVAL_MAX + 1];
        const char *judged = c;
        if (local) {
            astval_exten(exten, ext, sizeof(ext));
            snprintf(canon, sizeof(canon), "Local/%s@%s", ext, context);
            judged = canon;
        }
        if (!first_match(p->allow_channels, p->nallow_channels, judged))
            return dial_refuse(j, field, "allow_channels", NULL, c);
    }
    enum policy_verdict v;
    if (local) {
        /* Local/EXTEN@CONTEXT dials its extension in its context */
        if ((v = check_context(j, field, context)) || (v = check_exten(j, field, exten)))
            return v;
        return POLICY_OK;
    }
    const char *slash = strchr(c, '/');
    return slash ? check_channel_numbers(j, field, slash + 1) : POLICY_OK;
}

/* --- functions ------------------------------------------------------------------------ */

struct func_check {
    struct judge *j;
    const char *field;
    enum policy_verdict v;
    int sets; /* the names are variables the action sets (Originate, Setvar) */
};

/* One function called by a value: allowed, or the refusal. */
static int func_seen(const char *name, size_t len, void *ud)
{
    struct func_check *fc = ud;
    const struct cfg *cfg = fc->j->cfg;
    char n[65];
    if (!name) {
        fc->v = refuse(fc->j, POLICY_DENIED, fc->field, "computed function name",
                       "calls a dialplan function whose name is built at run time");
        return 1;
    }
    snprintf(n, sizeof(n), "%.*s", (int)(len < 64 ? len : 64), name);
    const char *deny = first_match(cfg->deny_funcs, cfg->ndeny_funcs, n);
    if (deny || !first_match(cfg->allow_funcs, cfg->nallow_funcs, n)) {
        fc->v = refuse(fc->j, POLICY_DENIED, fc->field, deny ? deny : n,
                       "calls the dialplan function %s(), which is %s", n,
                       deny ? "denied (AMIBRIDGE_DENY_FUNCTIONS)"
                            : "not allowed (AMIBRIDGE_ALLOW_FUNCTIONS)");
        return 1;
    }
    return 0;
}

/* Variables Asterisk turns into commands or files (Queue's MONITOR_EXEC
 * and MONITOR_FILENAME, MeetMe's recording file, the recording variables
 * of the features and of FreePBX's dialplan): never set, whatever the key. */
static const char *const command_variables[] = {"MONITOR_*",
                                                "MIXMON_*",
                                                "TOUCH_MIXMONITOR*",
                                                "TOUCH_MONITOR*",
                                                "MEETME_RECORDINGFILE",
                                                "MEETME_EXIT_CONTEXT",
                                                NULL};
/* Variables that send a call elsewhere in the dialplan (connected line and
 * redirecting subroutines, Dial's GOSUB_RESULT, forwards, transfers, exits):
 * not set by a key with a dial policy. */
static const char *const steering_variables[] = {
    "*_SEND_SUB*", "*_SEND_MACRO*", "*_CALLEE_SEND_*", "*_CALLER_SEND_*", "GOSUB_RESULT",
    "FORWARD_CONTEXT", "TRANSFER_CONTEXT", "GOTO_ON_BLINDXFR", "EXITCONTEXT", "SPY_EXIT_CONTEXT",
    "DIAL_EXIT_CONTEXT",
    /* a parked call that times out is dialled back to the transferer these
     * name (res_parking: setup_park_common_datastore, park-dial) */
    "ATTENDEDTRANSFER", "BLINDTRANSFER", "PARKER*", NULL};

static const char *glob_in(const char *const *globs, const char *s)
{
    for (; *globs; globs++)
        if (fnmatch(*globs, s, FNM_CASEFOLD) == 0)
            return *globs;
    return NULL;
}

/* A variable the action sets: "_X" and "__X" (inherited) are X. */
static int variable_set_seen(struct func_check *fc, const char *raw)
{
    const char *name = astval_header(raw);
    while (*name == '_')
        name++;
    if (!*name || strchr(name, '('))
        return 0; /* functions are judged as functions */
    const struct cfg_policy *p = fc->j->p;
    const char *g = glob_in(command_variables, name);
    if (g) {
        fc->v = refuse(fc->j, POLICY_DENIED, fc->field, g,
                       "sets %.64s, which Asterisk turns into a command or a file", name);
        return 1;
    }
    if (p && (g = glob_in(steering_variables, name))) {
        fc->v = refuse(fc->j, POLICY_DIAL, fc->field, g,
                       "sets %.64s, which sends the call elsewhere in the dialplan", name);
        return 1;
    }
    if (p && p->nallow_variables && !first_match(p->allow_variables, p->nallow_variables, name)) {
        fc->v = refuse(fc->j, POLICY_DIAL, fc->field, "allow_variables",
                       "sets %.64s, which is not in the key's allow_variables", name);
        return 1;
    }
    return 0;
}

static int variable_name_seen(const char *name, void *ud)
{
    struct func_check *fc = ud;
    if (astval_functions(name, 1, func_seen, ud))
        return 1;
    return fc->sets && variable_set_seen(fc, name);
}

/* Functions in any value. A Variable(s) header also names variables (the
 * name=value items of Originate's, the list of Status's, the one name of
 * Getvar's and Setvar's), and a name ending in ')' is a function that
 * Asterisk reads or writes. */
static enum policy_verdict check_functions(struct judge *j, const char *action, const char *key,
                                           const char *value)
{
    int names = ascii_name_eq(key, "Variable") || ascii_name_eq(key, "Variables");
    int one_name =
        names && action && (ascii_name_eq(action, "Getvar") || ascii_name_eq(action, "Setvar"));
    int sets =
        names && action && (ascii_name_eq(action, "Originate") || ascii_name_eq(action, "Setvar"));
    struct func_check fc = {j, key, POLICY_OK, sets};
    if (astval_functions(value, one_name, func_seen, &fc))
        return fc.v;
    int rc = names ? astval_variable_names(value, variable_name_seen, &fc) : 0;
    if (rc > 0)
        return fc.v;
    if (rc < 0) /* longer than any AMI line: never sent, never judged */
        return refuse(j, POLICY_INVALID, key, "", "is too long");
    return POLICY_OK;
}

/* --- applications ----------------------------------------------------------------- */

/* Dial's devices ("PJSIP/100&Local/200@ctx") and its options. */
static enum policy_verdict check_devices(struct judge *j, const char *devices)
{
    char buf[ASTVAL_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", devices ? devices : "");
    char *save = NULL;
    enum policy_verdict v;
    for (char *d = strtok_r(buf, "&", &save); d; d = strtok_r(NULL, "&", &save)) {
        /* Dial strips each device (ast_strip) */
        while (*d == ' ' || *d == '\t')
            d++;
        size_t n = strlen(d);
        while (n && (d[n - 1] == ' ' || d[n - 1] == '\t'))
            d[--n] = '\0';
        if (*d && (v = check_channel(j, "Data", d)))
            return v;
    }
    return POLICY_OK;
}

/* A place in the dialplan an option sends the call to, CONTEXT^EXTEN^
 * PRIORITY (a gosub's arguments after '('): checked like a redirect. A
 * shorter form is relative to the channel's own context, which a policy
 * cannot know. */
static enum policy_verdict check_location(struct judge *j, const char *rule, const char *loc)
{
    char buf[ASTVAL_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", loc);
    if (strchr(buf, '('))
        return refuse(j, POLICY_DIAL, "Data", rule,
                      "has the option %s with subroutine arguments, which may carry a number "
                      "past the policy",
                      rule);
    /* Asterisk takes ',' as well as '^' between the parts (ast_parseable_goto) */
    for (char *c = buf; *c; c++)
        if (*c == ',')
            *c = '^';
    char *ctx = buf, *exten = strchr(buf, '^'), *prio = exten ? strchr(exten + 1, '^') : NULL;
    if (!prio)
        return refuse(j, POLICY_DIAL, "Data", rule,
                      "has the option %s without a context^exten^priority, so where it goes "
                      "cannot be checked",
                      rule);
    *exten++ = '\0';
    *prio = '\0';
    enum policy_verdict v = check_context(j, "Data", ctx);
    return v ? v : check_exten(j, "Data", exten);
}

/* What the options of a dialling application may do for a key with a dial
 * policy: `jumps` send the call to a place in the dialplan given as their
 * argument (F, G, b, B), `subs` run a subroutine context (U), `never` leave
 * the policy in ways it cannot follow (d: dial a digit; M: a macro). */
struct option_rules {
    const char *app;
    const char *jumps, *subs, *never;
};

struct option_walk {
    struct judge *j;
    const struct option_rules *r;
    enum policy_verdict v;
};

static int option_seen(int letter, const char *arg, void *ud)
{
    struct option_walk *w = ud;
    char rule[64];
    snprintf(rule, sizeof(rule), "%s option %c", w->r->app, letter);
    if (letter && strchr(w->r->never, letter))
        w->v = refuse(w->j, POLICY_DIAL, "Data", rule,
                      "has the %s option '%c', which leaves the dial policy", w->r->app, letter);
    else if (letter && arg && strchr(w->r->jumps, letter))
        w->v = check_location(w->j, rule, arg);
    else if (letter && arg && strchr(w->r->subs, letter)) {
        /* a subroutine context starts at s, priority 1; its arguments may
         * carry a number past the policy */
        if (arg[strcspn(arg, "^,")])
            w->v = refuse(w->j, POLICY_DIAL, "Data", rule,
                          "has the option %s with subroutine arguments, which may carry a "
                          "number past the policy",
                          rule);
        else if (!(w->v = check_context(w->j, "Data", arg)))
            w->v = check_exten(w->j, "Data", "s");
    }
    return w->v != POLICY_OK;
}

static enum policy_verdict check_options(struct judge *j, const struct option_rules *r,
                                         const char *opts)
{
    if (!j->p || !opts)
        return POLICY_OK;
    struct option_walk w = {j, r, POLICY_OK};
    int rc = astval_app_options(opts, option_seen, &w);
    if (rc < 0)
        return refuse(j, POLICY_DIAL, "Data", "unreadable options",
                      "has %s options Asterisk cannot read (an unclosed parenthesis)", r->app);
    return w.v;
}

static const struct option_rules dial_options = {"Dial", "FGbB", "U", "dM"};
static const struct option_rules queue_options = {"Queue", "FbB", "", ""};
static const struct option_rules page_options = {"Page", "bB", "", ""};
static const struct option_rules originate_options = {"Originate", "bB", "", ""};
static const struct option_rules bridge_options = {"Bridge", "F", "", ""};

static enum policy_verdict app_dial(struct judge *j, const char *app, char **argv, int argc)
{
    enum policy_verdict v = check_devices(j, argv[0]);
    if (v || argc < 3)
        return v;
    (void)app;
    return check_options(j, &dial_options, argv[2]);
}

static enum policy_verdict app_page(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    enum policy_verdict v = check_devices(j, argv[0]);
    return v || argc < 2 ? v : check_options(j, &page_options, argv[1]);
}

static enum policy_verdict app_retrydial(struct judge *j, const char *app, char **argv, int argc);

/* Queue(queue,options,URL,announce,timeout,AGI,gosub,rule,position): an
 * AGI runs a program for whoever holds any key; a gosub or a jump option
 * leaves the dial policy. */
static enum policy_verdict app_queue(struct judge *j, const char *app, char **argv, int argc)
{
    if (argc > 5 && argv[5] && *argv[5])
        return refuse(j, POLICY_DENIED, "Data", "Queue AGI argument",
                      "has Queue's AGI argument, which runs a program on the PBX");
    if (j->p && argc > 6 && argv[6] && *argv[6])
        return refuse(j, POLICY_DIAL, "Data", "Queue gosub argument",
                      "has Queue's gosub argument, which leaves the dial policy");
    (void)app;
    return argc > 1 ? check_options(j, &queue_options, argv[1]) : POLICY_OK;
}

/* Goto/Gosub([[context,]exten,]priority[(args)]): a place in the dialplan. */
static enum policy_verdict app_goto(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    enum policy_verdict v;
    if (argc >= 3)
        return (v = check_context(j, "Data", argv[0])) ? v : check_exten(j, "Data", argv[1]);
    /* the shorter forms stay in the channel's own context, which the
     * channel driver sets: a policy cannot know it */
    if (j->p)
        return refuse(j, POLICY_DIAL, "Data", "Goto without a context",
                      "must name context,exten,priority: a shorter form goes to the channel's "
                      "own context");
    return POLICY_OK;
}

static enum policy_verdict check_application(struct judge *j, const char *field,
                                             const char *app_raw, const char *data);

/* The Originate application's v(NAME=VALUE^...) sets variables, and a
 * NAME ending in ')' is a function it writes. */
static int originate_option(int letter, const char *arg, void *ud)
{
    struct func_check *fc = ud;
    if (letter != 'v' || !arg)
        return 0;
    char buf[ASTVAL_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", arg);
    char *save = NULL;
    for (char *item = strtok_r(buf, "^", &save); item; item = strtok_r(NULL, "^", &save)) {
        item[strcspn(item, "=")] = '\0';
        if (variable_name_seen(item, fc))
            return 1;
    }
    return 0;
}

/* Originate(tech_data,type,arg1,arg2,arg3,timeout,options): a channel,
 * then an extension (type exten: context, exten) or an application (type
 * app: the application and its data, judged like Originate's own). */
static enum policy_verdict app_originate(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    enum policy_verdict v = check_channel(j, "Data", argv[0]);
    if (v)
        return v;
    if (argc > 2 && argv[1] && !strcasecmp(argv[1], "app") &&
        (v = check_application(j, "Data", argv[2], argc > 3 ? argv[3] : "")))
        return v;
    /* type exten: context, then exten ("s" without one) */
    if (argc > 2 && argv[1] && !strcasecmp(argv[1], "exten") &&
        ((v = check_context(j, "Data", argv[2])) ||
         (v = check_exten(j, "Data", argc > 3 && argv[3] && *argv[3] ? argv[3] : "s"))))
        return v;
    if (argc <= 6)
        return POLICY_OK;
    struct func_check fc = {j, "Data", POLICY_OK, 1};
    if (astval_app_options(argv[6], originate_option, &fc) > 0)
        return fc.v;
    return check_options(j, &originate_options, argv[6]);
}

/* ExtenSpy(exten[@context],options). */
static enum policy_verdict app_extenspy(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    (void)argc;
    char buf[NAME_MAX_LEN + 1];
    snprintf(buf, sizeof(buf), "%s", argv[0] ? argv[0] : "");
    char *at = strchr(buf, '@');
    if (at)
        *at++ = '\0';
    enum policy_verdict v = check_context(j, "Data", at ? at : "default");
    return v ? v : check_exten(j, "Data", buf);
}

/* ChanSpy(prefix,options), Bridge(channel), Transfer(Tech/dest): a channel. */
static enum policy_verdict app_channel(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    (void)argc;
    if (j->p && (!argv[0] || !*argv[0]))
        return refuse(j, POLICY_DIAL, "Data", "channel required",
                      "must name a channel (%s without one reaches every channel)", app);
    return check_channel(j, "Data", argv[0]);
}

/* Park(parkinglot,options): c(context,exten,priority) is where a parked
 * call that times out goes. */
static const struct option_rules park_options = {"Park", "c", "", ""};

static enum policy_verdict app_park(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    return argc < 2 ? POLICY_OK : check_options(j, &park_options, argv[1]);
}

/* ParkAndAnnounce(parkinglot,options,announce,dial): Park's options, and
 * the channel it calls to announce the space (park_and_announce_app_exec
 * requests it: a dial). */
static enum policy_verdict app_park_announce(struct judge *j, const char *app, char **argv,
                                             int argc)
{
    enum policy_verdict v = app_park(j, app, argv, argc);
    if (v)
        return v;
    if (j->p && (argc < 4 || !argv[3] || !*argv[3]))
        return refuse(j, POLICY_DIAL, "Data", "channel required",
                      "must name the channel ParkAndAnnounce calls");
    return argc < 4 ? POLICY_OK : check_channel(j, "Data", argv[3]);
}

/* Bridge(channel,options): a channel, and F() sends the bridged one
 * elsewhere when the bridge ends. */
static enum policy_verdict app_bridge(struct judge *j, const char *app, char **argv, int argc)
{
    enum policy_verdict v = app_channel(j, app, argv, argc);
    return v || argc < 2 ? v : check_options(j, &bridge_options, argv[1]);
}

typedef enum policy_verdict (*app_check)(struct judge *j, const char *app, char **argv, int argc);

/* Applications whose data places audio somewhere, or runs something. */
static const struct {
    const char *name;
    int max_args; /* past it the last argument holds the rest */
    app_check check;
} app_rules[] = {
    {"Dial", 4, app_dial},
    {"Page", 3, app_page},
    {"RetryDial", 4, app_retrydial},
    {"Queue", 10, app_queue},
    {"Goto", 3, app_goto},
    {"Gosub", 3, app_goto},
    {"Originate", 7, app_originate},
    {"ChanSpy", 2, app_channel},
    {"ExtenSpy", 2, app_extenspy},
    {"Bridge", 2, app_bridge},
    {"Transfer", 1, app_channel},
    {"Park", 2, app_park},
    {"ParkAndAnnounce", 4, app_park_announce},
};

static enum policy_verdict check_app_data(struct judge *j, const char *app, const char *data)
{
    for (size_t i = 0; i < sizeof(app_rules) / sizeof(app_rules[0]); i++) {
        if (strcasecmp(app_rules[i].name, app))
            continue;
        char buf[ASTVAL_MAX + 1];
        char *argv[APP_ARGS_MAX];
        int argc = astval_app_args(data ? astval_header(data) : "", buf, sizeof(buf), argv,
                                   app_rules[i].max_args);
        if (argc < 0)
            return refuse(j, POLICY_INVALID, "Data", "", "is too long");
        if (argc == 0)
            argv[argc++] = buf; /* no data at all: an empty first argument */
        return app_rules[i].check(j, app_rules[i].name, argv, argc);
    }
    return POLICY_OK;
}

/* RetryDial(announce,sleep,retries,dialargs): dialargs are Dial's. */
static enum policy_verdict app_retrydial(struct judge *j, const char *app, char **argv, int argc)
{
    (void)app;
    return argc > 3 ? check_app_data(j, "Dial", argv[3]) : POLICY_OK;
}

/* Originate of an application: the service's deny list, the key's allow
 * list, then its data. */
static enum policy_verdict check_application(struct judge *j, const char *field,
                                             const char *app_raw, const char *data)
{
    const char *app = astval_header(app_raw);
    const char *g = first_match(j->cfg->deny_apps, j->cfg->ndeny_apps, app);
    if (g)
        return refuse(j, POLICY_DENIED, field, g,
                      "names the application '%.64s', which is denied (rule '%s', "
                      "AMIBRIDGE_DENY_ORIGINATE_APPS)",
                      app, g);
    if (j->p && !first_match(j->p->allow_applications, j->p->nallow_applications, app))
        return refuse(j, POLICY_DIAL, field, "allow_applications",
                      "names the application '%.64s', which is not in the key's "
                      "allow_applications",
                      app);
    return check_app_data(j, app, data);
}

/* --- values and actions ------------------------------------------------------------ */

/* Headers that name a thing: no blank anywhere. */
static const char *const name_headers[] = {
    "Channel",    "ExtraChannel", "Context",   "Exten",          "ExtraContext",
    "ExtraExten", "Application",  "Interface", "StateInterface", NULL,
};

static int is_name_header(const char *key)
{
    for (const char *const *h = name_headers; *h; h++)
        if (ascii_name_eq(*h, key))
            return 1;
    return 0;
}

static enum policy_verdict check_value(struct judge *j, const char *action, const char *key,
                                       const char *value, size_t len)
{
    size_t at;
    enum astval_flaw f = astval_flaw(value, len, is_name_header(key) ? ASTVAL_NAME : 0, &at);
    if (f != ASTVAL_OK)
        return refuse(j, POLICY_INVALID, key, "", "%s (byte %zu)", astval_flaw_text(f), at);
    return check_functions(j, action, key, value);
}

/* A recording file: a name in Asterisk's monitor folder, not a path. */
static int is_plain_file(const char *f)
{
    return f[0] != '/' && !strstr(f, "..");
}

struct mm_walk {
    struct judge *j;
    enum policy_verdict v;
};

/* MixMonitor's options: r() and t() name more files it writes, m() copies
 * the recording into a voicemail box, i() names a variable it sets. */
static int mixmonitor_option(int letter, const char *arg, void *ud)
{
    struct mm_walk *w = ud;
    if ((letter == 'r' || letter == 't') && arg && !is_plain_file(arg))
        w->v = refuse(w->j, POLICY_DENIED, "Options", "MixMonitor File path",
                      "names a file by path in r() or t(); only names in the PBX's monitor "
                      "folder are allowed");
    else if (letter == 'm')
        w->v = refuse(w->j, POLICY_DENIED, "Options", "MixMonitor option m",
                      "has m(), which copies the recording into a voicemail box");
    else if (letter == 'i' && arg && strchr(arg, '('))
        w->v = refuse(w->j, POLICY_DENIED, "Options", "MixMonitor option i",
                      "has i() naming a function, which Asterisk would write");
    return w->v != POLICY_OK;
}

/* MixMonitor: manager.c joins File, Options and Command as "%s,%s,%s" and
 * MixMonitor splits that again as application arguments, so a ',' in File
 * or Options moves text into the next one: judge the split, as Asterisk
 * will. The command (run by a shell when the recording ends) must be
 * empty, the file a name in the monitor folder. */
static enum policy_verdict check_mixmonitor(struct judge *j, const char *file, const char *opts,
                                            const char *cmd)
{
    char joined[3 * ASTVAL_MAX + 8], buf[3 * ASTVAL_MAX + 8];
    char *argv[3] = {NULL, NULL, NULL};
    snprintf(joined, sizeof(joined), "%s,%s,%s", file, opts, cmd);
    int argc = astval_app_args(joined, buf, sizeof(buf), argv, 3);
    /* a split that differs from the headers came from a ',' in File or Options */
    const char *moved = strchr(file, ',') ? "File" : "Options";
    if (argc > 2 && argv[2] && *argv[2])
        return refuse(j, POLICY_DENIED, *cmd ? "Command" : moved, "MixMonitor Command",
                      "runs a shell command on the PBX when the recording ends");
    if (argc > 0 && argv[0] && !is_plain_file(argv[0]))
        return refuse(j, POLICY_DENIED, "File", "MixMonitor File path",
                      "must be a file name in the PBX's monitor folder, not a path");
    struct mm_walk w = {j, POLICY_OK};
    if (argc > 1 && argv[1] && astval_app_options(argv[1], mixmonitor_option, &w) < 0)
        return refuse(j, POLICY_DENIED, "Options", "unreadable options",
                      "cannot be read as MixMonitor options (an unclosed parenthesis)");
    return w.v;
}

/* A header as astman_get_header() hands it over: "" when absent. */
static const char *header(const struct ami_msg *m, const char *name)
{
    const char *v = ami_msg_get(m, name);
    return v ? astval_header(v) : "";
}

/* What the action dials or moves, by action. */
static enum policy_verdict check_targets(struct judge *j, const struct ami_msg *m)
{
    const char *action = header(m, "Action");
    enum policy_verdict v = POLICY_OK;
#define H(name) header(m, name)
    if (ascii_name_eq(action, "Originate")) {
        if (strlen(H("Channel")) > ORIGINATE_CHANNEL_MAX)
            return refuse(j, POLICY_INVALID, "Channel", "",
                          "is longer than the %d bytes Asterisk reads of it",
                          ORIGINATE_CHANNEL_MAX);
        if ((v = check_channel(j, "Channel", H("Channel"))))
            return v;
        /* a gosub the new channel runs before it is dialled: any place */
        if (j->p && *H("PreDialGoSub"))
            return refuse(j, POLICY_DIAL, "PreDialGoSub", "PreDialGoSub",
                          "runs a subroutine anywhere in the dialplan before the call");
        if (*H("Application"))
            return check_application(j, "Application", H("Application"), H("Data"));
        if ((v = check_context(j, "Context", H("Context"))) ||
            (v = check_exten(j, "Exten", H("Exten"))))
            return v;
    } else if (ascii_name_eq(action, "Redirect")) {
        if ((v = check_context(j, "Context", H("Context"))) ||
            (v = check_exten(j, "Exten", H("Exten"))))
            return v;
        /* the extra channel goes to ExtraContext/ExtraExten, or with the first */
        if (*H("ExtraChannel") && (*H("ExtraContext") || *H("ExtraExten")) &&
            ((v = check_context(j, "ExtraContext", H("ExtraContext"))) ||
             (v = check_exten(j, "ExtraExten", H("ExtraExten")))))
            return v;
    } else if (ascii_name_eq(action, "BlindTransfer") || ascii_name_eq(action, "Atxfer")) {
        if ((v = check_context(j, "Context", H("Context"))) ||
            (v = check_exten(j, "Exten", H("Exten"))))
            return v;
    } else if (ascii_name_eq(action, "QueueAdd")) {
        static const char *const ifs[] = {"Interface", "StateInterface"};
        for (size_t i = 0; i < 2; i++)
            if (strlen(H(ifs[i])) > QUEUE_INTERFACE_MAX)
                return refuse(j, POLICY_INVALID, ifs[i], "",
                              "is longer than the %d bytes Asterisk keeps of a queue member's "
                              "interface",
                              QUEUE_INTERFACE_MAX);
        /* a member is rung by the queue: its interface is a dial */
        return check_channel(j, "Interface", H("Interface"));
    } else if (ascii_name_eq(action, "Park") && j->p) {
        /* a parked call that times out is dialled back to TimeoutChannel
         * (Channel2 when it is empty), its "-<id>" cut (manager_park,
         * ast_channel_name_to_dial_string): as the data of a Dial() in the
         * park-dial context, devices, options and ${...} alike
         * (parking_duration_callback) */
        const char *field = *H("TimeoutChannel") ? "TimeoutChannel" : "Channel2";
        char dial[ASTVAL_MAX + 1];
        snprintf(dial, sizeof(dial), "%s", H(field));
        char *dash = strrchr(dial, '-');
        if (dash)
            *dash = '\0';
        if (!*dial)
            return POLICY_OK;
        if (strchr(dial, '$'))
            return refuse(j, POLICY_DIAL, field, "variables in a dial string",
                          "becomes the data of a Dial(), where ${...} and $[...] are "
                          "evaluated when it runs");
        if (strlen(dial) > PARK_DIAL_MAX)
            return refuse(j, POLICY_INVALID, field, "",
                          "is longer than the %d bytes of it Asterisk keeps to dial back",
                          PARK_DIAL_MAX);
        if ((v = check_app_data(j, "Dial", dial)))
            snprintf(j->out->field, sizeof(j->out->field), "%s", field);
        return v;
    } else if (ascii_name_eq(action, "MixMonitor")) {
        return check_mixmonitor(j, H("File"), H("Options"), H("Command"));
    } else if (ascii_name_eq(action, "Setvar") && j->p && !*H("Channel")) {
        /* ast_strlen_zero(): an empty Channel is no channel */
        return refuse(j, POLICY_DIAL, "Channel", "global variables",
                      "is missing: Setvar without a channel sets a global variable, which can "
                      "steer the dialplan");
    } else if (ascii_name_eq(action, "MessageSend") && j->p) {
        /* a message to "pjsip:0044...@trunk" is sent like a call there */
        static const char *const dest[] = {"Destination", "To"};
        for (size_t i = 0; i < 2; i++) {
            /* Destination wins over To when set; both are checked */
            if (!*H(dest[i]) && i == 0)
                continue;
            char chan[ASTVAL_MAX + 1];
            snprintf(chan, sizeof(chan), "%s", H(dest[i]));
            char *colon = strchr(chan, ':');
            if (!colon)
                return refuse(j, POLICY_DIAL, dest[i], "MessageSend destination",
                              "must be TECH:DESTINATION for a key with a dial policy");
            *colon = '/';
            if ((v = check_channel(j, dest[i], chan)))
                return v;
        }
    }
#undef H
    return v;
}

enum policy_verdict policy_action(const struct cfg *cfg, const struct cfg_api_key *key,
                                  const struct ami_msg *m, struct policy_refusal *out)
{
    struct judge j = {cfg, policy_has_rules(key) ? &key->policy : NULL, out};
    enum policy_verdict v;
    memset(out, 0, sizeof(*out));
    const char *action = ami_msg_get(m, "Action");
    for (size_t i = 0; i < ami_msg_count(m); i++)
        if ((v = check_value(&j, action, ami_msg_key_at(m, i), ami_msg_value_at(m, i),
                             ami_msg_value_len_at(m, i))))
            return v;
    return check_targets(&j, m);
}
