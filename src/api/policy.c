#include "api/policy.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *first_match(char *const *globs, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], s, FNM_CASEFOLD) == 0)
            return globs[i];
    return NULL;
}

static int refuse(struct policy_refusal *out, enum policy_field f, const char *list,
                  const char *glob)
{
    out->field = f;
    if (glob)
        snprintf(out->rule, sizeof(out->rule), "%s: %s", list, glob);
    else
        snprintf(out->rule, sizeof(out->rule), "%s", list);
    return -1;
}

static int check_context(const struct cfg_policy *p, const char *context, enum policy_field f,
                         struct policy_refusal *out)
{
    if (context && p->nallow_contexts &&
        !first_match(p->allow_contexts, p->nallow_contexts, context))
        return refuse(out, f, "allow_contexts", NULL);
    return 0;
}

static int check_exten(const struct cfg_policy *p, const char *exten, enum policy_field f,
                       struct policy_refusal *out)
{
    if (!exten)
        return 0;
    const char *g = first_match(p->deny_extens, p->ndeny_extens, exten);
    if (g)
        return refuse(out, f, "deny_extens", g);
    if (p->nallow_extens && !first_match(p->allow_extens, p->nallow_extens, exten))
        return refuse(out, f, "allow_extens", NULL);
    return 0;
}

int policy_check(const struct cfg_api_key *key, const char *channel, const char *context,
                 const char *exten, struct policy_refusal *out)
{
    if (!key)
        return 0;
    const struct cfg_policy *p = &key->policy;
    if (channel && p->nallow_channels &&
        !first_match(p->allow_channels, p->nallow_channels, channel))
        return refuse(out, POLICY_CHANNEL, "allow_channels", NULL);
    if (check_context(p, context, POLICY_CONTEXT, out) || check_exten(p, exten, POLICY_EXTEN, out))
        return -1;
    /* Local/<exten>@<context>[/flags]: what the channel itself dials */
    if (channel && !strncasecmp(channel, "Local/", 6)) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", channel + 6);
        buf[strcspn(buf, "/")] = '\0';
        char *at = strchr(buf, '@');
        const char *lctx = NULL;
        if (at) {
            *at = '\0';
            lctx = at + 1;
        }
        if (check_context(p, lctx, POLICY_CHANNEL, out) || check_exten(p, buf, POLICY_CHANNEL, out))
            return -1;
    }
    return 0;
}
