/* api/gate: who may call. The trusted networks, CORS, API keys and their
 * scopes, and the lock-out of wrong keys (admit/lockout). */
#include "api/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "admit/lockout.h"
#include "bus/ssrf.h"
#include "core/log.h"
#include "core/metrics.h"

static void scope_names(unsigned mask, char *out, size_t len)
{
    out[0] = '\0';
    for (unsigned b = 1; b <= CFG_SCOPE_ADMIN; b <<= 1)
        if (mask & b) {
            size_t l = strlen(out);
            snprintf(out + l, len - l, "%s%s", l ? "," : "", cfg_scope_name(b));
        }
}

/* A wrong key's answer, held back for a while (admit/lockout): a 401, or a
 * 429 when the client's address is locked out. */
struct held_answer {
    uv_timer_t timer;
    struct api *a;
    struct http_req *r;
    int locked; /* 429 auth-locked-out rather than 401 */
};

static void respond_401_invalid(struct http_req *r)
{
    http_req_add_header(r, "WWW-Authenticate",
                        "Bearer realm=\"amibridge\", error=\"invalid_token\"");
    http_respond_problem(r, 401, "unauthorized", "Unauthorized", "the API key is not valid", NULL);
}

/* 429 auth-locked-out with Retry-After (admit/lockout). */
static void locked_out(struct http_req *r, int wait_s, const char *title, const char *detail)
{
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", wait_s > 0 ? wait_s : 1);
    http_req_add_header(r, "Retry-After", ra);
    metrics_inc(METRIC_AUTH_FAILURES, "locked_out", NULL, 1);
    http_respond_problem(r, 429, "auth-locked-out", title, detail, NULL);
}

static void address_locked_out(struct http_req *r, int wait_s)
{
    locked_out(r, wait_s, "Too many wrong API keys",
               "this address sent too many wrong API keys; it may try again after Retry-After "
               "seconds");
}

static void held_closed(uv_handle_t *h)
{
    free(h->data);
}

static void held_fire(uv_timer_t *t)
{
    struct held_answer *h = t->data;
    if (h->locked)
        address_locked_out(h->r,
                           lockout_blocked(h->a->lockout, http_req_peer(h->r), uv_now(h->a->loop)));
    else
        respond_401_invalid(h->r);
    uv_close((uv_handle_t *)&h->timer, held_closed);
}

/* Answer a wrong key `delay_ms` from now (at once when 0 or out of memory). */
static void hold_answer(struct api *a, struct http_req *r, int locked, unsigned delay_ms)
{
    struct held_answer *h = delay_ms ? calloc(1, sizeof(*h)) : NULL;
    if (!h) {
        if (locked)
            address_locked_out(r, lockout_blocked(a->lockout, http_req_peer(r), uv_now(a->loop)));
        else
            respond_401_invalid(r);
        return;
    }
    h->a = a;
    h->r = r;
    h->locked = locked;
    /* room for a client with a key comes before the wait of a wrong one */
    http_req_set_expendable(r);
    h->timer.data = h;
    uv_timer_init(a->loop, &h->timer);
    uv_timer_start(&h->timer, held_fire, delay_ms, 0);
}

/* Count a wrong key from the client; answer it now or a little later. */
static void wrong_key(struct api *a, struct http_req *r)
{
    int locked = 0;
    const char *peer = http_req_peer(r);
    int n = lockout_fail(a->lockout, peer, uv_now(a->loop), &locked);
    metrics_inc(METRIC_AUTH_FAILURES, "invalid", NULL, 1);
    if (locked)
        log_warn("client locked out after too many wrong API keys", "{s:s,s:i,s:i}", "peer", peer,
                 "failures", n, "window_s", a->cfg->auth_fail_window_s);
    else if (n == 1)
        log_warn("wrong API key", "{s:s}", "peer", peer);
    hold_answer(a, r, 0, lockout_delay_ms(n));
}

/* The address lock-out refuses what comes without a valid key; a valid key
 * is served whatever others at the same address (a NAT, an untrusted
 * proxy) sent. What reaches the decision does the same work whatever the
 * token: the address is looked up first, every key is compared in constant
 * time (but for the connection's own last valid token, which http/auth
 * keeps and compares in constant time instead). A wrong key from a
 * locked-out address is held as long as the slowest wrong-key answer
 * before the lock-out, so a guess never comes back faster than it did
 * then. */
static int authorize(struct api *a, struct http_req *r, const struct http_route *rt)
{
    int addr_wait = lockout_blocked(a->lockout, http_req_peer(r), uv_now(a->loop));
    const struct cfg_api_key *k = NULL;
    enum http_auth_result ar =
        http_auth_check(a->auth, http_req_header(r, "Authorization"), http_req_peer_loopback(r),
                        rt->scope, &k, http_req_auth_memo(r));
    if (addr_wait > 0 && !k) {
        if (ar == HTTP_AUTH_INVALID)
            hold_answer(a, r, 1, LOCKOUT_DELAY_MAX_MS);
        else
            address_locked_out(r, addr_wait);
        return 0;
    }
    const char *key = k ? k->name : "";
    http_req_set_key(r, key);
    http_req_set_principal(r, k);
    char need[64], detail[200], kid[CFG_NAME_MAX + 8] = "";
    int wait_s;
    /* a valid key that keeps reaching past its scopes is probing: it gets
     * the same lock-out as an address guessing keys */
    if (k) {
        size_t n = strnlen(key, sizeof(kid) - 5);
        memcpy(kid, "key:", 4);
        memcpy(kid + 4, key, n);
        kid[4 + n] = '\0';
    }
    if (k && (wait_s = lockout_blocked(a->lockout, kid, uv_now(a->loop))) > 0) {
        locked_out(r, wait_s, "Too many refused requests",
                   "this API key was refused too often; it may try again after Retry-After "
                   "seconds");
        return 0;
    }
    switch (ar) {
    case HTTP_AUTH_OK:
        return 1;
    case HTTP_AUTH_MISSING:
        metrics_inc(METRIC_AUTH_FAILURES, "missing", NULL, 1);
        http_req_add_header(r, "WWW-Authenticate", "Bearer realm=\"amibridge\"");
        http_respond_problem(r, 401, "unauthorized", "Unauthorized",
                             "send an API key as 'Authorization: Bearer TOKEN'", NULL);
        return 0;
    case HTTP_AUTH_INVALID:
        wrong_key(a, r);
        return 0;
    case HTTP_AUTH_SCOPE: {
        int locked = 0;
        int n = lockout_fail(a->lockout, kid, uv_now(a->loop), &locked);
        if (locked)
            log_warn("API key locked out after too many requests beyond its scopes",
                     "{s:s,s:i,s:i}", "key", key, "refusals", n, "window_s",
                     a->cfg->auth_fail_window_s);
        metrics_inc(METRIC_AUTH_FAILURES, "scope", NULL, 1);
        scope_names(rt->scope, need, sizeof(need));
        snprintf(detail, sizeof(detail), "the API key '%s' lacks the '%s' scope", key, need);
        http_respond_problem(r, 403, "forbidden", "Forbidden", detail,
                             json_pack("{s:s}", "required_scope", need));
        return 0;
    }
    case HTTP_AUTH_REMOTE:
        metrics_inc(METRIC_AUTH_FAILURES, "remote", NULL, 1);
        http_respond_problem(r, 403, "forbidden", "Forbidden",
                             "no API keys are configured: only loopback clients are served", NULL);
        return 0;
    }
    return 0;
}

/* AMIBRIDGE_TRUSTED_NETS: 1 when the client may call at all. */
static int trusted(const struct api *a, struct http_req *r)
{
    if (!a->cfg->ntrusted_nets || http_req_peer_loopback(r))
        return 1;
    socklen_t len = 0;
    const struct sockaddr *sa = http_req_peer_addr(r, &len);
    return len && netlist_has(sa, len, a->cfg->trusted_nets, a->cfg->ntrusted_nets);
}

/* 403 to a client outside AMIBRIDGE_TRUSTED_NETS; 1 when it answered. */
static int refuse_untrusted(const struct api *a, struct http_req *r)
{
    if (trusted(a, r))
        return 0;
    metrics_inc(METRIC_AUTH_FAILURES, "untrusted", NULL, 1);
    http_respond_problem(r, 403, "untrusted-network", "Forbidden",
                         "this client's network may not call this API (AMIBRIDGE_TRUSTED_NETS)",
                         NULL);
    return 1;
}

/* --- CORS ---------------------------------------------------------------------------- */

#define CORS_ALLOW_HEADERS "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
#define CORS_EXPOSE_HEADERS                                                                        \
    "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "           \
    "Idempotent-Replayed, Location"
#define CORS_MAX_AGE "600"

/* 1 when the request carries an Origin that is on AMIBRIDGE_CORS_ORIGINS,
 * -1 when it carries another one, 0 when it carries none. */
int api_gate_cors(const struct api *a, struct http_req *r)
{
    const char *origin = http_req_header(r, "Origin");
    if (!origin)
        return 0;
    for (size_t i = 0; i < a->cfg->ncors_origins; i++)
        if (!strcmp(a->cfg->cors_origins[i], origin))
            return 1;
    return -1;
}

void api_gate_cors_headers(struct http_req *r)
{
    http_req_add_header(r, "Access-Control-Allow-Origin", http_req_header(r, "Origin"));
    http_req_add_header(r, "Vary", "Origin");
    http_req_add_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
}

void api_gate_preflight_headers(struct http_req *r, const char *allow)
{
    api_gate_cors_headers(r);
    http_req_add_header(r, "Access-Control-Allow-Methods", allow);
    http_req_add_header(r, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    http_req_add_header(r, "Access-Control-Max-Age", CORS_MAX_AGE);
}

int api_gate_untrusted(const struct api *a, struct http_req *r)
{
    return refuse_untrusted(a, r);
}

int api_gate_refuse(struct api *a, struct http_req *r, const struct http_route *rt)
{
    return !authorize(a, r, rt);
}

int api_gate_refuse_scope(struct api *a, struct http_req *r, unsigned scope)
{
    struct http_route rt = {"", "", "", scope, NULL};
    return !authorize(a, r, &rt);
}

void api_gate_head(struct api *a, struct http_req *r, const struct http_route *rt)
{
    const struct cfg_api_key *k = NULL;
    enum http_auth_result ar =
        http_auth_check(a->auth, http_req_header(r, "Authorization"), http_req_peer_loopback(r),
                        rt->scope, &k, http_req_auth_memo(r));
    /* a wrong key is decided after the body, where its answer is held back:
     * an answer from the head would be a fast path for guessing keys */
    if (ar == HTTP_AUTH_INVALID)
        return;
    if (ar == HTTP_AUTH_OK) {
        /* a valid key is refused only by its own lock-out (authorize()) */
        char kid[CFG_NAME_MAX + 8];
        snprintf(kid, sizeof(kid), "key:%s", k ? k->name : "");
        if (!k || lockout_blocked(a->lockout, kid, uv_now(a->loop)) <= 0) {
            /* decided after the body; a valid key marks the connection as one to keep */
            http_req_set_principal(r, k);
            return;
        }
    }
    /* no key, a key short of the route's scope or locked out, a remote
     * client without keys configured: authorize() answers these at once */
    if (api_gate_cors(a, r) > 0)
        api_gate_cors_headers(r);
    http_req_set_route(r, rt->name);
    authorize(a, r, rt);
}
