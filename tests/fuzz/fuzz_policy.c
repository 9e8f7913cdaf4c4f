/* libFuzzer target for the guards that look inside an action (admit/policy).
 *
 * The input is an action: a selector byte, then Channel, Context, Exten,
 * Application, Data and Variable values separated by '\n' (any bytes,
 * NUL included). Whenever policy_action() lets it through, an oracle
 * written here from Asterisk's own rules (not from admit/astval) reads the
 * action the way Asterisk will act on it and checks that what it would
 * dial is inside the key's policy and that no denied function would run:
 * leading bytes below 0x21 skipped (astman_get_header), '-' ignored in
 * extensions, names case-insensitive, Local/EXTEN[@CONTEXT][/OPTIONS],
 * application arguments split on ',' outside (), [] and "" with quotes and
 * backslashes removed, Dial's devices split on '&' and stripped. */
#include <ctype.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admit/policy.h"

static char *allow_ch[] = {"Local/*@demo", "PJSIP/1???"};
static char *allow_ctx[] = {"demo", "outbound"};
static char *deny_ex[] = {"00*", "900*"};
static char *allow_apps[] = {"Dial", "Wait"};

static struct cfg cfg;
static struct cfg_api_key key;

#define MAXV 1024

static const char *skip(const char *v)
{
    while (*v && (unsigned char)*v < 33)
        v++;
    return v;
}

static void undash(const char *in, char *out, size_t n)
{
    size_t k = 0;
    for (; *in && k + 1 < n; in++)
        if (*in != '-')
            out[k++] = *in;
    out[k] = '\0';
}

static int any(char *const *g, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!fnmatch(g[i], s, FNM_CASEFOLD))
            return 1;
    return 0;
}

/* What the dialplan matches: the extension without '-'. */
static void exten_ok(const char *exten)
{
    char e[MAXV];
    undash(skip(exten), e, sizeof(e));
    if (any(deny_ex, 2, e))
        abort();
}

static void context_ok(const char *ctx)
{
    if (!any(allow_ctx, 2, skip(ctx)))
        abort();
}

/* A channel Asterisk would create: Local/EXTEN[@CONTEXT][/OPTIONS] or one
 * the allow list names. */
static void channel_ok(const char *chan)
{
    const char *c = skip(chan);
    if (!strncasecmp(c, "local/", 6)) {
        char buf[MAXV], canon[2 * MAXV];
        snprintf(buf, sizeof(buf), "%s", c + 6);
        char *o = strrchr(buf, '/');
        if (o)
            *o = '\0';
        char *at = strchr(buf, '@');
        if (at)
            *at++ = '\0';
        const char *ctx = at ? at : "default";
        context_ok(ctx);
        exten_ok(buf);
        char e[MAXV];
        undash(buf, e, sizeof(e));
        snprintf(canon, sizeof(canon), "Local/%s@%s", e, ctx);
        if (!any(allow_ch, 2, canon)) /* where it goes, whatever its text */
            abort();
        return;
    }
    if (!any(allow_ch, 2, c))
        abort();
}

/* __ast_app_separate_args(buf, ',', 1, argv, max), written again. */
static int split(char *buf, char **argv, int max)
{
    int argc = 0, paren = 0, bracket = 0, quote = 0;
    char *s = buf, *last_delim = NULL;
    while (*s && argc < max - 1) {
        argv[argc++] = s;
        for (; *s; s++) {
            if (*s == '(')
                paren++;
            else if (*s == ')' && paren)
                paren--;
            else if (*s == '[')
                bracket++;
            else if (*s == ']' && bracket)
                bracket--;
            else if (*s == '"') {
                quote = !quote;
                memmove(s, s + 1, strlen(s));
                s--;
            } else if (*s == '\\') {
                memmove(s, s + 1, strlen(s));
            } else if (*s == ',' && !paren && !bracket && !quote) {
                last_delim = s;
                *s++ = '\0';
                break;
            }
        }
    }
    if (*s || (s > buf && s - 1 == last_delim))
        argv[argc++] = s;
    return argc;
}

/* A place CONTEXT^EXTEN^PRIORITY[(args)] an option sends the call to. */
static void location_ok(const char *loc)
{
    char buf[MAXV];
    snprintf(buf, sizeof(buf), "%s", loc);
    if (strchr(buf, '('))
        abort(); /* subroutine arguments may carry a number past the policy */
    for (char *c = buf; *c; c++)
        if (*c == ',')
            *c = '^'; /* ast_parseable_goto takes both */
    char *e = strchr(buf, '^');
    if (!e || !strchr(e + 1, '^'))
        abort(); /* relative to a context nobody checked */
    *e++ = '\0';
    *strchr(e, '^') = '\0';
    context_ok(buf);
    exten_ok(e);
}

/* Dial's options as app.c's parse_options() reads them, written again:
 * the letter is the byte & 0x7f; an argument runs to the ')' that closes
 * it, '(' and ')' inside quotes (when it starts with one) not counted, a
 * backslash taking the next byte. */
static void options_ok(const char *opts)
{
    char buf[MAXV];
    snprintf(buf, sizeof(buf), "%s", opts);
    char *s = buf;
    while (*s) {
        int letter = *s++ & 0x7f;
        char *arg = NULL;
        if (*s == '(') {
            int paren = 1, quote = 0, pq = s[1] == '"';
            arg = ++s;
            for (; *s; s++) {
                if (*s == '(' && !quote)
                    paren++;
                else if (*s == ')' && !quote)
                    paren--;
                else if (*s == '"' && pq) {
                    quote = !quote;
                    memmove(s, s + 1, strlen(s));
                    s--;
                } else if (*s == '\\') {
                    if (!quote || s[1] == '"')
                        memmove(s, s + 1, strlen(s));
                    else if (s[1])
                        s++;
                    if (!*s)
                        break;
                }
                if (!paren)
                    break;
            }
            if (!(s = strchr(s, ')')))
                return; /* Asterisk refuses the whole Dial */
            *s++ = '\0';
        }
        if (letter == 'd' || letter == 'M')
            abort();
        if (letter && arg && strchr("FGbB", letter))
            location_ok(arg);
        if (arg && letter == 'U') {
            if (arg[strcspn(arg, "^,")])
                abort(); /* arguments */
            context_ok(arg);
            exten_ok("s");
        }
    }
}

static void dial_ok(const char *data)
{
    char buf[MAXV];
    char *argv[4] = {0};
    snprintf(buf, sizeof(buf), "%s", skip(data));
    int argc = split(buf, argv, 4);
    char *devs = argc > 0 ? argv[0] : NULL, *save = NULL;
    for (char *d = devs ? strtok_r(devs, "&", &save) : NULL; d; d = strtok_r(NULL, "&", &save)) {
        d = (char *)skip(d);
        size_t n = strlen(d);
        while (n && (unsigned char)d[n - 1] < 33)
            d[--n] = '\0';
        if (*d)
            channel_ok(d);
    }
    if (argc > 2)
        options_ok(argv[2]);
}

/* A denied function inside ${ } or $[ ]: the name, blanks, '('. */
static void functions_ok(const char *v)
{
    static const char *const denied[] = {"shell", "system", "eval", "file", "ast_config",
                                         "db",    "curl",   "env",  NULL};
    int depth = 0;
    for (const char *p = v; *p; p++) {
        if (p[0] == '$' && (p[1] == '{' || p[1] == '[')) {
            depth++;
            p++;
            continue;
        }
        if (depth && (*p == '}' || *p == ']')) {
            depth--;
            continue;
        }
        if (!depth || (p > v && (isalnum((unsigned char)p[-1]) || p[-1] == '_')))
            continue;
        for (const char *const *d = denied; *d; d++) {
            size_t l = strlen(*d);
            if (strncasecmp(p, *d, l))
                continue;
            const char *q = p + l;
            while (*q == ' ')
                q++;
            if (*q == '(')
                abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=u", "AMIBRIDGE_AMI_SECRET=s", NULL};
    char err[256];
    if (cfg_load(&cfg, env, NULL, err, sizeof(err)))
        abort();
    key.name = "crm";
    key.policy.allow_channels = allow_ch;
    key.policy.nallow_channels = 2;
    key.policy.allow_contexts = allow_ctx;
    key.policy.nallow_contexts = 2;
    key.policy.deny_extens = deny_ex;
    key.policy.ndeny_extens = 2;
    key.policy.allow_applications = allow_apps;
    key.policy.nallow_applications = 2;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const actions[] = {"Originate", "Redirect", "BlindTransfer", "QueueAdd",
                                          "Atxfer"};
    static const char *const keys[] = {"Channel",     "Context", "Exten",
                                       "Application", "Data",    "Variable"};
    if (size < 1 || size > 4 * MAXV)
        return 0;
    const char *action = actions[data[0] % 5];
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", action);
    const char *vals[6] = {0};
    char copies[6][MAXV];
    size_t lens[6] = {0};
    const uint8_t *p = data + 1, *end = data + size;
    for (int i = 0; i < 6 && p <= end; i++) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len >= MAXV)
            len = MAXV - 1;
        const char *key_name = !strcmp(action, "QueueAdd") && i == 0 ? "Interface" : keys[i];
        if (len || nl) {
            ami_msg_addn(m, key_name, strlen(key_name), (const char *)p, len);
            memcpy(copies[i], p, len);
            copies[i][len] = '\0';
            lens[i] = len;
            vals[i] = copies[i];
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    struct policy_refusal out = {.field = ""};
    enum policy_verdict v = policy_action(&cfg, &key, m, &out);
    ami_msg_free(m);
    if (v != POLICY_OK) {
        if (!out.detail[0] || !out.field[0])
            abort(); /* every refusal names the field and says why */
        return 0;
    }
    /* let through: check it the way Asterisk will act on it */
    for (int i = 0; i < 6; i++) {
        if (vals[i] && strlen(vals[i]) != lens[i])
            abort(); /* a NUL inside was let through */
        if (vals[i])
            functions_ok(vals[i]);
    }
    if (!strcmp(action, "QueueAdd")) {
        if (vals[0])
            channel_ok(vals[0]);
        return 0;
    }
    if (!strcmp(action, "Originate")) {
        if (vals[0])
            channel_ok(vals[0]);
        const char *app = vals[3] ? skip(vals[3]) : "";
        if (*app) {
            if (strcasecmp(app, "dial") && strcasecmp(app, "wait"))
                abort();
            if (!strcasecmp(app, "dial"))
                dial_ok(vals[4] ? vals[4] : "");
            return 0;
        }
    }
    if (vals[1])
        context_ok(vals[1]);
    if (vals[2])
        exten_ok(vals[2]);
    return 0;
}
