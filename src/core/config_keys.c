/* core/config_keys.c: the API keys, their scopes and dial policies, from
 * AMIBRIDGE_API_KEYS, AMIBRIDGE_API_KEYS_FILE and the config file's
 * api_keys together. A message never holds a token. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config_internal.h"
#include "core/log.h"

static const char *const scope_names[] = {"read", "call", "control", "actions", "admin"};

const char *cfg_scope_name(unsigned bit)
{
    for (unsigned i = 0; i < 5; i++)
        if (bit == (1u << i))
            return scope_names[i];
    return "?";
}

int cfg_parse_scopes(const char *s, unsigned *out, char *bad, size_t badlen)
{
    unsigned mask = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (unsigned i = 0; i < 5; i++)
            if (strlen(scope_names[i]) == n && !strncasecmp(p, scope_names[i], n)) {
                mask |= 1u << i;
                found = 1;
            }
        if (!found && n) {
            snprintf(bad, badlen, "%.*s", (int)n, p);
            return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!mask) {
        snprintf(bad, badlen, "%s", "(none)");
        return -1;
    }
    *out = mask;
    return 0;
}

static int add_key(struct cfg_ctx *x, struct cfg *c, const char *where, const char *name,
                   const char *token, unsigned scopes)
{
    if (!cfg_valid_name(name))
        return cfg_fail(x, "%s: key name '%.64s' must be 1-%d of A-Z a-z 0-9 _ -", where, name,
                        CFG_NAME_MAX);
    if (!*token)
        return cfg_fail(x, "%s: key '%s' has an empty token", where, name);
    for (const char *t = token; *t; t++)
        if (isspace((unsigned char)*t) || *t == ':' || !isprint((unsigned char)*t))
            return cfg_fail(x,
                            "%s: the token of key '%s' may not contain spaces, ':' or control "
                            "characters",
                            where, name);
    if (c->nkeys >= CFG_MAX_KEYS)
        return cfg_fail(x, "%s: more than %d API keys", where, CFG_MAX_KEYS);
    for (size_t i = 0; i < c->nkeys; i++) {
        if (!strcmp(c->keys[i].name, name))
            return cfg_fail(x, "%s: API key name '%s' is used twice", where, name);
        if (!strcmp(c->keys[i].token, token))
            return cfg_fail(x, "%s: keys '%s' and '%s' have the same token", where, c->keys[i].name,
                            name);
    }
    struct cfg_api_key *nk = realloc(c->keys, (c->nkeys + 1) * sizeof(*nk));
    if (!nk)
        return cfg_fail(x, "out of memory");
    c->keys = nk;
    char *nname = strdup(name), *ntoken = strdup(token);
    if (!nname || !ntoken) {
        free(nname);
        if (ntoken)
            explicit_bzero(ntoken, strlen(ntoken));
        free(ntoken);
        return cfg_fail(x, "out of memory");
    }
    nk[c->nkeys].name = nname;
    nk[c->nkeys].token = ntoken;
    nk[c->nkeys].scopes = scopes;
    memset(&nk[c->nkeys].policy, 0, sizeof(nk[c->nkeys].policy));
    nk[c->nkeys].calls_per_second = 0;
    nk[c->nkeys].calls_burst = 0;
    c->nkeys++;
    if (strlen(token) < 16)
        log_warn("short API key token: use at least 16 random characters", "{s:s}", "key", name);
    return 0;
}

/* "NAME:TOKEN:SCOPES" entries separated by whitespace. */
static int parse_key_list(struct cfg_ctx *x, struct cfg *c, const char *where, const char *s)
{
    size_t len = strlen(s);
    char *copy = strdup(s), *save = NULL;
    int rc = 0, idx = 0;
    if (!copy)
        return cfg_fail(x, "out of memory");
    for (char *w = strtok_r(copy, " \t\r\n", &save); w && !rc;
         w = strtok_r(NULL, " \t\r\n", &save), idx++) {
        if (*w == '#') { /* a comment runs to the end of its line in files */
            strtok_r(NULL, "\n", &save);
            continue;
        }
        char *c1 = strchr(w, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2) {
            /* do not echo the entry: it holds a token */
            rc = cfg_fail(x, "%s: entry %d is not NAME:TOKEN:SCOPES", where, idx + 1);
            break;
        }
        *c1 = *c2 = '\0';
        unsigned scopes;
        char bad[32];
        if (cfg_parse_scopes(c2 + 1, &scopes, bad, sizeof(bad))) {
            rc = cfg_fail(x,
                          "%s: key '%.64s' has unknown scope '%s' (use read, call, control, "
                          "actions, admin)",
                          where, w, bad);
            break;
        }
        rc = add_key(x, c, where, w, c1 + 1, scopes);
    }
    explicit_bzero(copy, len); /* it holds the tokens */
    free(copy);
    return rc;
}

static void policy_free(struct cfg_policy *p)
{
    cfg_strv_free(p->allow_channels, p->nallow_channels);
    cfg_strv_free(p->allow_contexts, p->nallow_contexts);
    cfg_strv_free(p->allow_extens, p->nallow_extens);
    cfg_strv_free(p->deny_extens, p->ndeny_extens);
    cfg_strv_free(p->allow_applications, p->nallow_applications);
    cfg_strv_free(p->allow_variables, p->nallow_variables);
    memset(p, 0, sizeof(*p));
}

/* The dial policy and call limits of one key from its JSON object. */
static int key_policy_from_json(struct cfg_ctx *x, struct cfg_api_key *k, json_t *o,
                                const char *where)
{
    static const struct {
        const char *name;
        size_t off_v, off_n;
    } lists[] = {
        {"allow_channels", offsetof(struct cfg_policy, allow_channels),
         offsetof(struct cfg_policy, nallow_channels)},
        {"allow_contexts", offsetof(struct cfg_policy, allow_contexts),
         offsetof(struct cfg_policy, nallow_contexts)},
        {"allow_extens", offsetof(struct cfg_policy, allow_extens),
         offsetof(struct cfg_policy, nallow_extens)},
        {"deny_extens", offsetof(struct cfg_policy, deny_extens),
         offsetof(struct cfg_policy, ndeny_extens)},
        {"allow_applications", offsetof(struct cfg_policy, allow_applications),
         offsetof(struct cfg_policy, nallow_applications)},
        {"allow_variables", offsetof(struct cfg_policy, allow_variables),
         offsetof(struct cfg_policy, nallow_variables)},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        json_t *arr = json_object_get(o, lists[i].name);
        if (!arr)
            continue;
        char key[160];
        snprintf(key, sizeof(key), "%s.%s", where, lists[i].name);
        char ***v = (char ***)((char *)&k->policy + lists[i].off_v);
        size_t *n = (size_t *)((char *)&k->policy + lists[i].off_n);
        const char *saved = x->file;
        x->file = "";
        int rc = cfg_strv_from_json(x, key, arr, v, n);
        x->file = saved;
        if (rc)
            return -1;
        for (size_t j = 0; j < *n; j++)
            if (!**(*v + j))
                return cfg_fail(x, "%s[%zu]: must not be empty", key, j);
    }
    json_t *rate = json_object_get(o, "calls_per_second");
    if (rate && (!json_is_number(rate) || json_number_value(rate) <= 0 ||
                 json_number_value(rate) > CFG_CALLS_RATE_MAX))
        return cfg_fail(x, "%s.calls_per_second: must be a number above 0, at most %g", where,
                        CFG_CALLS_RATE_MAX);
    if (rate)
        k->calls_per_second = json_number_value(rate);
    json_t *burst = json_object_get(o, "calls_burst");
    if (burst && (!json_is_integer(burst) || json_integer_value(burst) < 1 ||
                  json_integer_value(burst) > CFG_CALLS_BURST_MAX))
        return cfg_fail(x, "%s.calls_burst: must be an integer from 1 to %d", where,
                        CFG_CALLS_BURST_MAX);
    if (burst)
        k->calls_burst = (int)json_integer_value(burst);
    return 0;
}

static int keys_from_json(struct cfg_ctx *x, struct cfg *c, json_t *arr)
{
    static const char *const known[] = {"name",
                                        "token",
                                        "token_file",
                                        "scopes",
                                        "allow_channels",
                                        "allow_contexts",
                                        "allow_extens",
                                        "deny_extens",
                                        "allow_applications",
                                        "allow_variables",
                                        "calls_per_second",
                                        "calls_burst",
                                        NULL};
    if (!json_is_array(arr))
        return cfg_fail(x, "config file %s: api_keys: must be an array of objects", x->file);
    size_t i;
    json_t *o;
    json_array_foreach (arr, i, o) {
        char where[64];
        snprintf(where, sizeof(where), "config file %s: api_keys[%zu]", x->file, i);
        if (!json_is_object(o))
            return cfg_fail(x, "%s: must be an object", where);
        if (cfg_check_listed_keys(x, o, where, known))
            return -1;
        json_t *name = json_object_get(o, "name"), *token = json_object_get(o, "token");
        json_t *tfile = json_object_get(o, "token_file"), *scopes = json_object_get(o, "scopes");
        if (!json_is_string(name))
            return cfg_fail(x, "%s.name: required string", where);
        if (!!token == !!tfile || (token && !json_is_string(token)) ||
            (tfile && !json_is_string(tfile)))
            return cfg_fail(x, "%s: give exactly one of token and token_file (strings)", where);
        if (!json_is_array(scopes) || json_array_size(scopes) == 0)
            return cfg_fail(x, "%s.scopes: required non-empty array", where);
        unsigned mask = 0;
        size_t j;
        json_t *sc;
        json_array_foreach (scopes, j, sc) {
            unsigned m;
            char bad[32];
            if (!json_is_string(sc) ||
                cfg_parse_scopes(json_string_value(sc), &m, bad, sizeof(bad)))
                return cfg_fail(x, "%s.scopes[%zu]: use read, call, control, actions or admin",
                                where, j);
            mask |= m;
        }
        char *tok = NULL;
        if (tfile) {
            char key[96];
            snprintf(key, sizeof(key), "%s.token_file", where);
            if (!(tok = cfg_read_secret_file(x, key, json_string_value(tfile))))
                return -1;
        }
        int rc = add_key(x, c, where, json_string_value(name), tok ? tok : json_string_value(token),
                         mask);
        free(tok);
        if (rc || key_policy_from_json(x, &c->keys[c->nkeys - 1], o, where))
            return -1;
    }
    return 0;
}

int cfg_keys_load(struct cfg_ctx *x, struct cfg *c, json_t *file_keys)
{
    const char *v;
    if ((v = cfg_env_val(x, "AMIBRIDGE_API_KEYS")) && parse_key_list(x, c, "AMIBRIDGE_API_KEYS", v))
        return -1;
    if ((v = cfg_env_val(x, "AMIBRIDGE_API_KEYS_FILE"))) {
        FILE *f = fopen(v, "rb");
        if (!f)
            return cfg_fail(x, "AMIBRIDGE_API_KEYS_FILE: cannot read '%s': %s", v, strerror(errno));
        struct {
            char b[65536];
        } *buf = malloc(sizeof(*buf));
        size_t n = buf ? fread(buf->b, 1, sizeof(buf->b) - 1, f) : 0;
        int big = buf && !feof(f);
        fclose(f);
        if (!buf || big) {
            free(buf);
            return cfg_fail(x, "AMIBRIDGE_API_KEYS_FILE: '%s' is too large", v);
        }
        buf->b[n] = '\0';
        int krc = parse_key_list(x, c, "AMIBRIDGE_API_KEYS_FILE", buf->b);
        explicit_bzero(buf, sizeof(*buf));
        free(buf);
        if (krc)
            return -1;
    }
    if (file_keys && keys_from_json(x, c, file_keys))
        return -1;
    return 0;
}

void cfg_keys_free(struct cfg *c)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        free(c->keys[i].name);
        explicit_bzero(c->keys[i].token, strlen(c->keys[i].token));
        free(c->keys[i].token);
        policy_free(&c->keys[i].policy);
    }
    free(c->keys);
    c->keys = NULL;
    c->nkeys = 0;
}
