#include "bus/webhook_sub.h"

#include <curl/curl.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/digest.h"

static int problem(struct wh_problem *pb, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int problem(struct wh_problem *pb, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(pb->field, sizeof(pb->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(pb->detail, sizeof(pb->detail), fmt, ap);
    va_end(ap);
    return -1;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void prev_free(struct wh_prev *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        secret_free(p[i].secret);
        p[i].secret = NULL;
    }
}

void wh_conf_free(struct wh_conf *c)
{
    free(c->url);
    strv_free(c->events, c->nevents);
    strv_free(c->fkeys, c->nfilter);
    strv_free(c->fvals, c->nfilter);
    secret_free(c->secret);
    prev_free(c->prev, c->nprev);
    free(c->description);
    memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char **strv_dup(char *const *v, size_t n, int *oom)
{
    if (!n)
        return NULL;
    char **out = calloc(n, sizeof(*out));
    if (!out) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(v[i])))
            *oom = 1;
    return out;
}

int wh_conf_copy(struct wh_conf *dst, const struct wh_conf *src)
{
    int oom = 0;
    *dst = *src;
    dst->url = dup_or_null(src->url);
    dst->secret = dup_or_null(src->secret);
    dst->description = dup_or_null(src->description);
    dst->events = strv_dup(src->events, src->nevents, &oom);
    dst->fkeys = strv_dup(src->fkeys, src->nfilter, &oom);
    dst->fvals = strv_dup(src->fvals, src->nfilter, &oom);
    for (size_t i = 0; i < src->nprev; i++)
        if (!(dst->prev[i].secret = strdup(src->prev[i].secret)))
            oom = 1;
    if (oom || (src->url && !dst->url) || (src->secret && !dst->secret) ||
        (src->description && !dst->description)) {
        wh_conf_free(dst);
        return -ENOMEM;
    }
    return 0;
}

/* Printable ASCII without blanks: what an event glob or header name holds. */
static int token_ok(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || strchr(extra, ch)))
            return 0;
    }
    return 1;
}

/* Text the store and the API may hold: no control characters. */
static int text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int wh_url_check(const char *url, const struct netlist_net *allow, size_t nallow, char *detail,
                 size_t len)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL, *frag = NULL;
    if (strlen(url) > WH_URL_MAX) {
        snprintf(detail, len, "must be at most %d bytes", WH_URL_MAX);
        return -1;
    }
    if (!text_ok(url)) {
        snprintf(detail, len, "must not contain control characters");
        return -1;
    }
    CURLU *u = curl_url();
    if (!u) {
        snprintf(detail, len, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        snprintf(detail, len, "must be an absolute http:// or https:// URL");
        goto out;
    }
    if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
        snprintf(detail, len, "scheme '%.16s' is not allowed: use http or https", scheme);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        snprintf(detail, len, "must name a host");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
        snprintf(detail, len,
                 "must not carry user:password (it would show in listings); put a token in "
                 "the path or rely on the signature");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        snprintf(detail, len, "must not have a #fragment");
        goto out;
    }
    /* A literal address is checked now; names are checked at connect time. */
    char ip[64];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && hl < sizeof(ip) + 2) {
        memcpy(ip, host + 1, hl - 2);
        ip[hl - 2] = '\0';
    } else {
        snprintf(ip, sizeof(ip), "%s", host);
    }
    enum ssrf_verdict v = ssrf_check_text(ip, allow, nallow);
    if (v != SSRF_OK && v != SSRF_ALLOWED && v != SSRF_BAD_FAMILY) {
        snprintf(detail, len,
                 "%s is a %s; webhooks may not reach it (AMIBRIDGE_WEBHOOK_ALLOW_NETS can "
                 "allow a network)",
                 ip, ssrf_reason(v));
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_free(frag);
    curl_url_cleanup(u);
    return rc;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char ch)
{
    const char *p = ch ? strchr(b64_alphabet, ch) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Canonical padded base64 (RFC 4648, no blanks, unused bits zero) into
 * out (at most max bytes): the length, or -1. */
static long b64_decode(const char *s, unsigned char *out, size_t max)
{
    size_t n = strlen(s), o = 0;
    if (n == 0 || n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)s[i + k];
            if (ch == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad || (v[k] = b64_value(ch)) < 0)
                return -1;
        }
        if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)) || o + 3 - (size_t)pad > max)
            return -1;
        unsigned long t = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        out[o++] = (unsigned char)(t >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(t >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)t;
    }
    return (long)o;
}

int wh_secret_is_standard(const char *secret)
{
    unsigned char key[WH_SECRET_MAX];
    size_t pl = strlen(WH_SECRET_PREFIX);
    if (strncmp(secret, WH_SECRET_PREFIX, pl))
        return 0;
    long n = b64_decode(secret + pl, key, sizeof(key));
    explicit_bzero(key, sizeof(key));
    return n >= WH_KEY_MIN && n <= WH_KEY_MAX;
}

size_t wh_secret_key(const char *secret, unsigned char *key)
{
    size_t n = strlen(secret);
    if (wh_secret_is_standard(secret))
        return (size_t)b64_decode(secret + strlen(WH_SECRET_PREFIX), key, WH_SECRET_MAX);
    if (n > WH_SECRET_MAX)
        n = WH_SECRET_MAX;
    memcpy(key, secret, n);
    return n;
}

int wh_secret_generate(char *out, size_t len)
{
    unsigned char key[WH_KEY_GENERATED];
    size_t pl = strlen(WH_SECRET_PREFIX);
    /* base64 of 32 bytes: 44 characters and the NUL */
    if (len < pl + 4 * ((WH_KEY_GENERATED + 2) / 3) + 1 ||
        getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
        return -1;
    memcpy(out, WH_SECRET_PREFIX, pl);
    digest_base64(key, sizeof(key), out + pl);
    explicit_bzero(key, sizeof(key));
    return 0;
}

const char *wh_scheme_name(enum wh_scheme s)
{
    switch (s) {
    case WH_SCHEME_STANDARD:
        return "standard";
    case WH_SCHEME_AMIBRIDGE:
        return "amibridge";
    case WH_SCHEME_BOTH:
    default:
        return "both";
    }
}

/* The rule every secret follows (the store's, which older records met);
 * `strict` (the API) also wants a whsec_ secret well formed. 0, or -1 with
 * why not in `why`. */
static int secret_check(json_t *jv, int strict, char *why, size_t len)
{
    size_t n = json_is_string(jv) ? strlen(json_string_value(jv)) : 0;
    if (!json_is_string(jv) || n < WH_SECRET_MIN || n > WH_SECRET_MAX ||
        !text_ok(json_string_value(jv))) {
        snprintf(why, len, "must be a string of %d to %d printable characters", WH_SECRET_MIN,
                 WH_SECRET_MAX);
        return -1;
    }
    const char *v = json_string_value(jv);
    if (strict && !strncmp(v, WH_SECRET_PREFIX, strlen(WH_SECRET_PREFIX)) &&
        !wh_secret_is_standard(v)) {
        snprintf(why, len,
                 "a whsec_ secret must be whsec_ and the padded base64 of %d to %d bytes "
                 "(e.g. whsec_$(openssl rand -base64 32))",
                 WH_KEY_MIN, WH_KEY_MAX);
        return -1;
    }
    return 0;
}

static int set_string(char **dst, const char *v)
{
    char *s = strdup(v);
    if (!s)
        return -ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

static int apply_events(struct wh_conf *c, json_t *jv, struct wh_problem *pb)
{
    if (!json_is_array(jv) || json_array_size(jv) == 0 || json_array_size(jv) > WH_EVENTS_MAX)
        return problem(pb, "events", "must be an array of 1 to %d event name globs", WH_EVENTS_MAX);
    size_t n = json_array_size(jv);
    char field[32];
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(jv, i);
        snprintf(field, sizeof(field), "events[%zu]", i);
        if (!json_is_string(e) || !token_ok(json_string_value(e), WH_GLOB_MAX, "*?[]!."))
            return problem(pb, field,
                           "must be an event name or glob of 1-%d characters "
                           "(A-Z a-z 0-9 _ - . * ? [ ] !)",
                           WH_GLOB_MAX);
    }
    char **v = calloc(n, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(json_string_value(json_array_get(jv, i))))) {
            strv_free(v, n);
            return -ENOMEM;
        }
    strv_free(c->events, c->nevents);
    c->events = v;
    c->nevents = n;
    return 0;
}

static int apply_filter(struct wh_conf *c, json_t *jv, struct wh_problem *pb)
{
    if (!json_is_object(jv) || json_object_size(jv) > WH_FILTER_MAX)
        return problem(pb, "filter", "must be an object of at most %d event fields to values",
                       WH_FILTER_MAX);
    size_t n = json_object_size(jv), i = 0;
    const char *k;
    json_t *v;
    char field[96];
    json_object_foreach (jv, k, v) {
        snprintf(field, sizeof(field), "filter.%.80s", k);
        if (!token_ok(k, WH_FILTER_KEY_MAX, ""))
            return problem(pb, field, "must be an AMI field name (1-%d of A-Z a-z 0-9 _ -)",
                           WH_FILTER_KEY_MAX);
        if (!json_is_string(v) || strlen(json_string_value(v)) > WH_FILTER_VAL_MAX ||
            !text_ok(json_string_value(v)))
            return problem(pb, field, "must be a string (a glob) of at most %d characters",
                           WH_FILTER_VAL_MAX);
    }
    char **keys = n ? calloc(n, sizeof(*keys)) : NULL;
    char **vals = n ? calloc(n, sizeof(*vals)) : NULL;
    if (n && (!keys || !vals)) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    int oom = 0;
    json_object_foreach (jv, k, v) {
        keys[i] = strdup(k);
        vals[i] = strdup(json_string_value(v));
        oom |= !keys[i] || !vals[i];
        i++;
    }
    if (oom) {
        strv_free(keys, n);
        strv_free(vals, n);
        return -ENOMEM;
    }
    strv_free(c->fkeys, c->nfilter);
    strv_free(c->fvals, c->nfilter);
    c->fkeys = keys;
    c->fvals = vals;
    c->nfilter = n;
    return 0;
}

/* previous_secrets of the store or config file: [{"secret", "expires"}];
 * those expired already are dropped. */
static int apply_previous(struct wh_conf *c, json_t *jv, struct wh_problem *pb)
{
    if (!json_is_array(jv) || json_array_size(jv) > WH_PREVIOUS_MAX)
        return problem(pb, "previous_secrets",
                       "must be an array of at most %d {\"secret\", \"expires\"} objects",
                       WH_PREVIOUS_MAX);
    struct wh_prev next[WH_PREVIOUS_MAX];
    size_t n = 0, i;
    long long now = (long long)time(NULL);
    json_t *e;
    char field[48], why[200];
    json_array_foreach (jv, i, e) {
        json_t *js = json_object_get(e, "secret"), *jx = json_object_get(e, "expires");
        int bad = !json_is_object(e) || json_object_size(e) != 2 || !js || !json_is_integer(jx) ||
                  json_integer_value(jx) < 0;
        snprintf(field, sizeof(field), "previous_secrets[%zu]", i);
        if (bad)
            snprintf(why, sizeof(why),
                     "must be {\"secret\": ..., \"expires\": Unix seconds} and nothing else");
        else if (secret_check(js, 0, why, sizeof(why))) {
            snprintf(field, sizeof(field), "previous_secrets[%zu].secret", i);
            bad = 1;
        }
        if (bad) {
            prev_free(next, n);
            return problem(pb, field, "%s", why);
        }
        if (json_integer_value(jx) <= now)
            continue;
        if (!(next[n].secret = strdup(json_string_value(js)))) {
            prev_free(next, n);
            return -ENOMEM;
        }
        next[n++].expires = json_integer_value(jx);
    }
    prev_free(c->prev, c->nprev);
    memcpy(c->prev, next, n * sizeof(*next));
    c->nprev = n;
    return 0;
}

/* A string with a NUL byte inside, or an array or object holding one. */
static int has_nul(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *e;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strlen(json_string_value(v)) != json_string_length(v);
    case JSON_ARRAY:
        json_array_foreach ((json_t *)v, i, e)
            if (has_nul(e))
                return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach ((json_t *)v, k, e)
            if (has_nul(e))
                return 1;
        return 0;
    default:
        return 0;
    }
}

static int apply_members(struct wh_conf *c, json_t *o, enum wh_mode mode,
                         const struct netlist_net *allow, size_t nallow, struct wh_problem *pb)
{
    static const char *const api_members[] = {"url",         "events",  "filter",   "secret",
                                              "description", "enabled", "signature"};
    static const char *const stored_members[] = {"id", "created", "reason", "static",
                                                 "previous_secrets"};
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof(api_members) / sizeof(api_members[0]); i++)
            known |= !strcmp(k, api_members[i]);
        for (size_t i = 0;
             mode == WH_STORED && i < sizeof(stored_members) / sizeof(*stored_members); i++)
            known |= !strcmp(k, stored_members[i]);
        if (!known)
            return problem(pb, k, "is not a member of a webhook subscription");
        /* a NUL would cut the value short here (a secret would become its
         * first bytes): refused wherever it is */
        if (has_nul(v))
            return problem(pb, k, "must not contain a NUL byte");
    }
    json_t *jv;
    int rc;
    if ((jv = json_object_get(o, "url"))) {
        if (!json_is_string(jv))
            return problem(pb, "url", "must be a string");
        char why[sizeof(pb->detail)];
        if (wh_url_check(json_string_value(jv), allow, nallow, why, sizeof(why)))
            return problem(pb, "url", "%s", why);
        if ((rc = set_string(&c->url, json_string_value(jv))))
            return rc;
    } else if (mode != WH_PATCH) {
        return problem(pb, "url", "is required");
    }
    if ((jv = json_object_get(o, "events"))) {
        if ((rc = apply_events(c, jv, pb)))
            return rc;
    } else if (mode != WH_PATCH) {
        return problem(pb, "events",
                       "is required (e.g. [\"Hangup\", \"Queue*\"]; [\"*\"] for all)");
    }
    if ((jv = json_object_get(o, "filter")) && !json_is_null(jv) && (rc = apply_filter(c, jv, pb)))
        return rc;
    if (jv && json_is_null(jv)) {
        strv_free(c->fkeys, c->nfilter);
        strv_free(c->fvals, c->nfilter);
        c->fkeys = c->fvals = NULL;
        c->nfilter = 0;
    }
    if ((jv = json_object_get(o, "secret"))) {
        char why[200];
        if (secret_check(jv, mode != WH_STORED, why, sizeof(why)))
            return problem(pb, "secret", "%s", why);
        if (c->secret)
            explicit_bzero(c->secret, strlen(c->secret));
        if ((rc = set_string(&c->secret, json_string_value(jv))))
            return rc;
    } else if (mode == WH_STORED && !c->secret) {
        return problem(pb, "secret", "is required");
    }
    if ((jv = json_object_get(o, "signature"))) {
        static const enum wh_scheme all[] = {WH_SCHEME_STANDARD, WH_SCHEME_AMIBRIDGE,
                                             WH_SCHEME_BOTH};
        size_t i = 0;
        while (i < sizeof(all) / sizeof(*all) &&
               (!json_is_string(jv) || strcmp(json_string_value(jv), wh_scheme_name(all[i]))))
            i++;
        if (i == sizeof(all) / sizeof(*all))
            return problem(pb, "signature", "must be \"standard\", \"amibridge\" or \"both\"");
        c->scheme = all[i];
    }
    if ((jv = json_object_get(o, "description")) && !json_is_null(jv)) {
        if (!json_is_string(jv) || strlen(json_string_value(jv)) > WH_DESCRIPTION_MAX ||
            !text_ok(json_string_value(jv)))
            return problem(pb, "description", "must be a string of at most %d characters",
                           WH_DESCRIPTION_MAX);
        if ((rc = set_string(&c->description, json_string_value(jv))))
            return rc;
    } else if (jv) {
        free(c->description);
        c->description = NULL;
    }
    if ((jv = json_object_get(o, "enabled"))) {
        if (!json_is_boolean(jv))
            return problem(pb, "enabled", "must be true or false");
        c->enabled = json_is_true(jv);
        if (c->enabled || mode != WH_STORED)
            c->reason[0] = '\0';
    }
    if (mode != WH_STORED)
        return 0;
    if ((jv = json_object_get(o, "id"))) {
        if (!json_is_string(jv) || !token_ok(json_string_value(jv), 32, ""))
            return problem(pb, "id", "must be 1-32 of A-Z a-z 0-9 _ -");
        snprintf(c->id, sizeof(c->id), "%s", json_string_value(jv));
    } else {
        return problem(pb, "id", "is required");
    }
    if ((jv = json_object_get(o, "created")) && json_is_integer(jv))
        c->created = json_integer_value(jv);
    if ((jv = json_object_get(o, "reason")) && json_is_string(jv))
        snprintf(c->reason, sizeof(c->reason), "%s", json_string_value(jv));
    if ((jv = json_object_get(o, "previous_secrets")) && (rc = apply_previous(c, jv, pb)))
        return rc;
    return 0;
}

int wh_conf_apply(struct wh_conf *c, json_t *o, enum wh_mode mode, const struct netlist_net *allow,
                  size_t nallow, struct wh_problem *pb)
{
    if (!json_is_object(o))
        return problem(pb, "", "a webhook subscription must be a JSON object");
    /* Work on a copy so that a refused PATCH changes nothing. */
    struct wh_conf next;
    if (wh_conf_copy(&next, c))
        return -ENOMEM;
    if (mode == WH_CREATE) {
        next.enabled = 1;
        next.created = (long long)time(NULL);
    }
    int rc = apply_members(&next, o, mode, allow, nallow, pb);
    if (rc) {
        wh_conf_free(&next);
        return rc;
    }
    wh_conf_free(c);
    *c = next;
    return 0;
}

/* The secret changed from `old` (taken): keep it signing for grace_s. */
static void rotate(struct wh_conf *c, char *old, long long now, int grace_s)
{
    struct wh_prev keep[WH_PREVIOUS_MAX];
    size_t n = 0;
    if (grace_s > 0) {
        keep[n].secret = old;
        keep[n++].expires = now + grace_s;
    } else {
        secret_free(old);
    }
    for (size_t i = 0; i < c->nprev; i++) {
        if (grace_s > 0 && n < WH_PREVIOUS_MAX && c->prev[i].expires > now &&
            strcmp(c->prev[i].secret, c->secret)) {
            keep[n++] = c->prev[i];
        } else {
            secret_free(c->prev[i].secret);
        }
        c->prev[i].secret = NULL;
    }
    memcpy(c->prev, keep, n * sizeof(*keep));
    c->nprev = n;
}

int wh_conf_patch(struct wh_conf *c, json_t *o, int grace_s, long long now,
                  const struct netlist_net *allow, size_t nallow, struct wh_problem *pb)
{
    if (!json_is_object(o))
        return problem(pb, "", "a webhook subscription must be a JSON object");
    json_t *jg = json_object_get(o, "secret_grace_s"), *body = o;
    if (jg) {
        if (!json_is_integer(jg) || json_integer_value(jg) < 0 ||
            json_integer_value(jg) > WH_GRACE_MAX_S)
            return problem(pb, "secret_grace_s", "must be an integer from 0 to %d (seconds)",
                           WH_GRACE_MAX_S);
        if (!json_object_get(o, "secret"))
            return problem(pb, "secret_grace_s", "goes with a new secret");
        grace_s = (int)json_integer_value(jg);
        if (!(body = json_copy(o)) || json_object_del(body, "secret_grace_s")) {
            json_decref(body);
            return -ENOMEM;
        }
    }
    char *old = c->secret ? strdup(c->secret) : NULL;
    int rc = c->secret && !old ? -ENOMEM : wh_conf_apply(c, body, WH_PATCH, allow, nallow, pb);
    if (body != o)
        json_decref(body);
    if (rc == 0 && old && c->secret && strcmp(old, c->secret)) {
        rotate(c, old, now, grace_s);
        old = NULL;
    }
    secret_free(old);
    return rc;
}

json_t *wh_conf_json(const struct wh_conf *c, int with_secret)
{
    json_t *ev = json_array(), *flt = json_object();
    json_t *o = json_object();
    int bad = !ev || !flt || !o;
    for (size_t i = 0; !bad && i < c->nevents; i++)
        bad |= json_array_append_new(ev, json_string(c->events[i])) != 0;
    for (size_t i = 0; !bad && i < c->nfilter; i++)
        bad |= json_object_set_new(flt, c->fkeys[i], json_string(c->fvals[i])) != 0;
    if (bad) {
        json_decref(ev);
        json_decref(flt);
        json_decref(o);
        return NULL;
    }
    bad |= json_object_set_new(o, "id", json_string(c->id));
    bad |= json_object_set_new(o, "url", json_string(c->url ? c->url : ""));
    bad |= json_object_set_new(o, "events", ev);
    bad |= json_object_set_new(o, "filter", flt);
    bad |= json_object_set_new(o, "description",
                               c->description ? json_string(c->description) : json_null());
    bad |= json_object_set_new(o, "enabled", json_boolean(c->enabled));
    bad |= json_object_set_new(o, "reason", c->reason[0] ? json_string(c->reason) : json_null());
    bad |= json_object_set_new(o, "created", json_integer(c->created));
    bad |= json_object_set_new(o, "static", json_boolean(c->is_static));
    bad |= json_object_set_new(o, "signature", json_string(wh_scheme_name(c->scheme)));
    json_t *prev = json_array();
    long long now = (long long)time(NULL);
    for (size_t i = 0; prev && i < c->nprev; i++) {
        if (c->prev[i].expires <= now)
            continue;
        json_t *p = with_secret ? json_pack("{s:s,s:I}", "secret", c->prev[i].secret, "expires",
                                            (json_int_t)c->prev[i].expires)
                                : json_pack("{s:I}", "expires", (json_int_t)c->prev[i].expires);
        if (json_array_append_new(prev, p)) {
            json_decref(prev);
            prev = NULL;
        }
    }
    bad |= !prev || json_object_set_new(o, "previous_secrets", prev);
    if (with_secret)
        bad |= json_object_set_new(o, "secret", json_string(c->secret ? c->secret : ""));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int wh_conf_wants(const struct wh_conf *c, const char *event, const struct ami_msg *fields)
{
    /* call events (call.*) go only where a glob names them: a "*" that was
     * written for AMI events does not start getting calls */
    int call = !strncmp(event, "call.", 5), any = 0;
    for (size_t i = 0; i < c->nevents && !any; i++)
        any = (!call || !strncmp(c->events[i], "call", 4)) && fnmatch(c->events[i], event, 0) == 0;
    if (!any)
        return 0;
    for (size_t i = 0; i < c->nfilter; i++) {
        const char *v = fields ? ami_msg_get(fields, c->fkeys[i]) : NULL;
        if (!v || fnmatch(c->fvals[i], v, 0) != 0)
            return 0;
    }
    return 1;
}

int wh_sign(const char *secret, const char *timestamp, const char *body, size_t len, char *out)
{
    unsigned char mac[DIGEST_SHA256_LEN];
    const struct digest_part msg[] = {{timestamp, strlen(timestamp)}, {".", 1}, {body, len}};
    digest_hmac_sha256(secret, strlen(secret), msg, 3, mac);
    memcpy(out, "sha256=", 7);
    digest_hex(mac, sizeof(mac), out + 7);
    return 0;
}

int wh_sign_v1(const char *secret, const char *msg_id, const char *timestamp, const char *body,
               size_t len, char *out)
{
    unsigned char key[WH_SECRET_MAX], mac[DIGEST_SHA256_LEN];
    size_t kl = wh_secret_key(secret, key);
    const struct digest_part msg[] = {
        {msg_id, strlen(msg_id)}, {".", 1}, {timestamp, strlen(timestamp)}, {".", 1}, {body, len}};
    digest_hmac_sha256(key, kl, msg, 5, mac);
    explicit_bzero(key, sizeof(key));
    memcpy(out, "v1,", 3);
    digest_base64(mac, sizeof(mac), out + 3);
    return 0;
}

int wh_sign_standard(const struct wh_conf *c, const char *msg_id, const char *timestamp,
                     long long now, const char *body, size_t len, char *out)
{
    size_t o = 0;
    out[0] = '\0';
    if (!c->secret || wh_sign_v1(c->secret, msg_id, timestamp, body, len, out))
        return -1;
    o = strlen(out);
    for (size_t i = 0; i < c->nprev; i++) {
        if (c->prev[i].expires <= now)
            continue;
        out[o++] = ' ';
        if (wh_sign_v1(c->prev[i].secret, msg_id, timestamp, body, len, out + o))
            return -1;
        o += strlen(out + o);
    }
    return 0;
}

int wh_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char buf[64];
    if (nbytes > sizeof(buf) || getrandom(buf, nbytes, 0) != (ssize_t)nbytes)
        return -1;
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[buf[i] >> 4];
        out[2 * i + 1] = hex[buf[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return 0;
}
