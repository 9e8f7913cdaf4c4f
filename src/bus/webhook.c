#include "bus/webhook.h"

#include <curl/curl.h>
#include <errno.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

void wh_conf_free(struct wh_conf *c)
{
    free(c->url);
    strv_free(c->events, c->nevents);
    strv_free(c->fkeys, c->nfilter);
    strv_free(c->fvals, c->nfilter);
    if (c->secret) {
        explicit_bzero(c->secret, strlen(c->secret));
        free(c->secret);
    }
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

int wh_url_check(const char *url, const struct ssrf_net *allow, size_t nallow, char *detail,
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
                         const struct ssrf_net *allow, size_t nallow, struct wh_problem *pb)
{
    static const char *const api_members[] = {"url",    "events",      "filter",
                                              "secret", "description", "enabled"};
    static const char *const stored_members[] = {"id", "created", "reason", "static"};
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
        size_t n = json_is_string(jv) ? strlen(json_string_value(jv)) : 0;
        if (!json_is_string(jv) || n < WH_SECRET_MIN || n > WH_SECRET_MAX ||
            !text_ok(json_string_value(jv)))
            return problem(pb, "secret", "must be a string of %d to %d printable characters",
                           WH_SECRET_MIN, WH_SECRET_MAX);
        if (c->secret)
            explicit_bzero(c->secret, strlen(c->secret));
        if ((rc = set_string(&c->secret, json_string_value(jv))))
            return rc;
    } else if (mode == WH_STORED && !c->secret) {
        return problem(pb, "secret", "is required");
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
    return 0;
}

int wh_conf_apply(struct wh_conf *c, json_t *o, enum wh_mode mode, const struct ssrf_net *allow,
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
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t tl = strlen(timestamp);
    /* HMAC() is the one-shot kept by OpenSSL 3 (the HMAC_CTX calls are deprecated). */
    unsigned char *msg = malloc(tl + 1 + len + 1);
    if (!msg)
        return -1;
    memcpy(msg, timestamp, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, len);
    int ok = HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tl + 1 + len, mac, &maclen) &&
             maclen == 32;
    free(msg);
    if (!ok)
        return -1;
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < maclen; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[WH_SIGNATURE_LEN] = '\0';
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
