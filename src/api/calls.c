/* POST /v1/calls: click-to-dial.
 *
 * A clean JSON body becomes an async Originate; the OriginateResponse is
 * matched by ActionID from whichever connection carries it. With wait
 * (the default) the reply says how the call went; without it the reply is
 * 202 at once and the outcome arrives later on the event stream as the
 * OriginateResponse event with the same id. Every call passes the key's
 * dial policy, the deny rules, the originate guard and, when the client
 * sends one, the Idempotency-Key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "admit/guard.h"
#include "admit/idem.h"
#include "api/internal.h"
#include "core/log.h"
#include "admit/sguard.h"
#include "call/calls.h"
#include "core/digest.h"
#include "core/metrics.h"

#define CALL_TIMEOUT_DEFAULT_S 30
#define CALL_TIMEOUT_MAX_S     600
#define CALL_PRIORITY_MAX      99999
#define CALL_FIELD_MAX         256   /* channel, context, exten, application, caller id */
#define CALL_DATA_MAX          900   /* application data: one AMI line */
#define CALL_VARIABLES_MAX     100   /* Asterisk keeps 128 lines per action */
#define CALL_OUTCOME_MARGIN_MS 15000 /* after the ring timeout, for the PBX to report */
#define CALL_ID_LEN            32    /* hex digits of a call's id (128 random bits) */
#define CALL_REFERENCE_MAX     128   /* the CRM's own id of the call */
#define IDEM_CLAIM_SLACK_MS    30000 /* an idempotency claim outlives the call by this */

struct call {
    struct api *a;
    struct http_req *r;
    const struct cfg_api_key *key;
    struct ami_pool *pool;
    size_t server;
    struct ami_msg *action;
    int wait;
    int timeout_s;
    char channel[CALL_FIELD_MAX + 1];
    char idem_key[IDEM_KEY_MAX + 1];
    unsigned char hash[IDEM_HASH_LEN];
    int answered; /* the HTTP reply was given (202 for wait:false) */
    struct guard_info rate;
    int shared;                    /* the guard's slot is in Redis (admit/sguard) */
    char slot[SGUARD_SLOT_MAX];    /* its name there */
    char call_id[CALL_ID_LEN + 1]; /* the ChannelId given: the call's Linkedid */
    char reference[CALL_REFERENCE_MAX + 1];
    json_t *variables; /* as given, for the call model */
};

/* The in-flight slot goes back where it came from. */
static void call_release(struct call *c)
{
    if (c->shared)
        sguard_release(c->a->sguard, ami_pool_name(c->pool), c->slot);
    guard_note(c->a->guard, c->server, -1);
}

static const char *const call_members[] = {
    "channel",   "context", "exten",   "priority", "application", "data", "caller_id",
    "variables", "timeout", "account", "wait",     "reference",   NULL};

static void call_free(struct call *c)
{
    ami_msg_free(c->action);
    json_decref(c->variables);
    free(c);
}

/* The body of a 200/202 answer gets the call's id. */
static json_t *with_call_id(struct call *c, json_t *body)
{
    if (body)
        json_object_set_new(body, "call_id", json_string(c->call_id));
    return body;
}

/* Reasons of OriginateResponse (AST_CONTROL_* of the last frame seen). */
static const char *reason_status(long code)
{
    switch (code) {
    case 1:
        return "hangup";
    case 2:
    case 3:
        return "no_answer";
    case 4:
        return "answered";
    case 5:
        return "busy";
    case 8:
        return "congestion";
    default:
        return "failed";
    }
}

/* Answer with a JSON body, and remember it for the Idempotency-Key. */
static void call_reply(struct call *c, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        http_respond_oom(c->r);
        return;
    }
    if (c->idem_key[0])
        idem_finish(c->a->idem, c->key ? c->key->name : "", c->idem_key, c->hash, status, s,
                    strlen(s));
    api_rate_headers(c->r, &c->rate);
    http_respond(c->r, status, "application/json", s, strlen(s));
    free(s);
}

/* A failure after the Originate reached the PBX is remembered too: a retry
 * with the same key must not place a second call. */
static void call_fail_result(struct call *c, const struct ami_result *res)
{
    const char *slug = "ami-error", *title = "AMI error";
    int status = 502;
    switch (res->status) {
    case AMI_ETIMEDOUT:
        status = 504;
        slug = "ami-timeout";
        title = "AMI timeout";
        break;
    case AMI_ESHUTDOWN:
        status = 503;
        slug = "shutting-down";
        title = "Service unavailable";
        break;
    case AMI_ELOST:
    case AMI_ETOOBIG:
        slug = "ami-connection-lost";
        title = "AMI connection lost";
        break;
    case AMI_OK:
        break;
    }
    json_t *p = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "type", "", "title", title, "status", status,
                          "detail", res->detail ? res->detail : "", "id", res->action_id,
                          "request_id", http_req_id(c->r));
    char type[96];
    snprintf(type, sizeof(type), "%s%s", HTTP_PROBLEM_TYPE_PREFIX, slug);
    json_object_set_new(p, "type", json_string(type));
    char *s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    if (c->idem_key[0] && s)
        idem_finish(c->a->idem, c->key ? c->key->name : "", c->idem_key, c->hash, status, s,
                    strlen(s));
    if (status == 503)
        http_req_add_header(c->r, "Retry-After", "5");
    http_respond(c->r, status, "application/problem+json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
}

static void call_accepted(void *ud, const struct ami_result *res)
{
    struct call *c = ud;
    if (c->wait || c->answered)
        return;
    c->answered = 1;
    call_reply(c, 202,
               with_call_id(c, json_pack("{s:s,s:s,s:s}", "id", res->action_id, "status", "queued",
                                         "channel", c->channel)));
}

static void call_done(void *ud, const struct ami_result *res)
{
    struct call *c = ud;
    call_release(c);
    if (c->answered) { /* wait:false: the outcome goes to the event stream */
        call_free(c);
        return;
    }
    if (res->status != AMI_OK) {
        call_fail_result(c, res);
        call_free(c);
        return;
    }
    const struct ami_msg *resp = res->response;
    if (resp && ami_msg_is(resp, "Response", "Error")) {
        /* refused outright: nothing was dialled, the key is free again */
        if (c->idem_key[0])
            idem_abandon(c->a->idem, c->key ? c->key->name : "", c->idem_key);
        c->idem_key[0] = '\0';
        api_result_failed(c->r, res);
        call_free(c);
        return;
    }
    if (!c->wait) { /* the outcome raced ahead of the response */
        c->answered = 1;
        call_reply(c, 202,
                   with_call_id(c, json_pack("{s:s,s:s,s:s}", "id", res->action_id, "status",
                                             "queued", "channel", c->channel)));
        call_free(c);
        return;
    }
    const struct ami_msg *o = res->originate;
    const char *reason = o ? ami_msg_get(o, "Reason") : NULL;
    long code = reason ? strtol(reason, NULL, 10) : 0;
    int answered = o && ami_msg_is(o, "Response", "Success");
    const char *status = answered ? "answered" : reason_status(code);
    json_t *body = json_pack("{s:s,s:s,s:b,s:I}", "id", res->action_id, "status", status,
                             "answered", answered, "reason_code", (json_int_t)code);
    const char *chan = o ? ami_msg_get(o, "Channel") : NULL;
    const char *uid = o ? ami_msg_get(o, "Uniqueid") : NULL;
    json_object_set_new(body, "channel", json_string(chan && *chan ? chan : c->channel));
    if (answered && uid && *uid && strcmp(uid, "<unknown>")) {
        json_object_set_new(body, "uniqueid", json_string(uid));
        /* an originated channel starts its own call: its linkedid is its uniqueid */
        json_object_set_new(body, "linkedid", json_string(uid));
    } else {
        json_object_set_new(body, "uniqueid", json_null());
        json_object_set_new(body, "linkedid", json_null());
    }
    call_reply(c, 200, with_call_id(c, body));
    call_free(c);
}

static void call_rate_limited(struct call *c)
{
    const char *scope = c->key ? c->key->name : "";
    metrics_inc(METRIC_ORIGINATE_REJECTED, "rate", NULL, 1);
    char ra[16], detail[160];
    snprintf(ra, sizeof(ra), "%d", c->rate.retry_after_s);
    snprintf(detail, sizeof(detail),
             "too many calls from this API key: at most %d at once, then the configured "
             "rate per second",
             c->rate.limit);
    if (c->idem_key[0])
        idem_abandon(c->a->idem, scope, c->idem_key);
    http_req_add_header(c->r, "Retry-After", ra);
    api_rate_headers(c->r, &c->rate);
    http_respond_problem(c->r, 429, "rate-limited", "Too many calls", detail, NULL);
    call_free(c);
}

static void call_too_many_in_flight(struct call *c)
{
    const char *scope = c->key ? c->key->name : "";
    metrics_inc(METRIC_ORIGINATE_REJECTED, "in_flight", NULL, 1);
    char detail[160];
    snprintf(detail, sizeof(detail), "%d calls to server '%s' are waiting for their outcome",
             guard_max_inflight(c->a->guard), ami_pool_name(c->pool));
    if (c->idem_key[0])
        idem_abandon(c->a->idem, scope, c->idem_key);
    http_req_add_header(c->r, "Retry-After", "1");
    api_rate_headers(c->r, &c->rate);
    http_respond_problem(c->r, 429, "too-many-calls-in-flight", "Too many calls in flight", detail,
                         json_pack("{s:s}", "server", ami_pool_name(c->pool)));
    call_free(c);
}

static void call_submit(struct call *c);

static void call_told(void *ud)
{
    call_submit(ud);
}

/* The guard let it through: tell the call model, then send the Originate. */
static void call_go(struct call *c)
{
    if (c->a->calls) {
        /* before the Originate: its first Newchannel may come before the answer */
        json_t *orig =
            json_pack("{s:n,s:o,s:o,s:o}", "id", "idempotency_key",
                      c->idem_key[0] ? json_string(c->idem_key) : json_null(), "reference",
                      c->reference[0] ? json_string(c->reference) : json_null(), "api_key",
                      c->key ? json_string(c->key->name) : json_null());
        /* a follower replica tells the leader first */
        if (calls_expect(c->a->calls, c->server, c->call_id, orig, json_incref(c->variables),
                         log_wall_ms(), call_told, c) == 1)
            return;
    }
    call_submit(c);
}

static void call_submit(struct call *c)
{
    const char *scope = c->key ? c->key->name : "";
    struct ami_error err;
    struct ami_submit_opts opts = {
        .timeout_ms = (uint32_t)c->timeout_s * 1000 + CALL_OUTCOME_MARGIN_MS,
        .flags = AMI_SUBMIT_ORIGINATE,
        .err = &err,
        .on_accepted = call_accepted,
    };
    struct ami_msg *m = c->action;
    c->action = NULL;
    struct ami_req *req = NULL;
    int rc = ami_pool_submit(c->pool, m, &opts, call_done, c, &req);
    /* its ActionID, before any event of the call can be read */
    if (rc == 0 && req && c->a->calls)
        calls_origination_id(c->a->calls, c->server, c->call_id, ami_req_action_id(req));
    if (rc < 0) {
        call_release(c);
        if (c->idem_key[0])
            idem_abandon(c->a->idem, scope, c->idem_key);
        api_submit_failed(c->a, c->r, c->pool, rc, &err);
        call_free(c);
    }
}

static void call_place_local(struct call *c);

/* What Redis said for every replica. */
static void call_guarded(void *ud, enum sguard_verdict v, const struct guard_info *info)
{
    struct call *c = ud;
    c->rate = *info;
    switch (v) {
    case SGUARD_OK:
        guard_note(c->a->guard, c->server, 1);
        call_go(c);
        return;
    case SGUARD_RATE:
        call_rate_limited(c);
        return;
    case SGUARD_INFLIGHT:
        call_too_many_in_flight(c);
        return;
    case SGUARD_UNAVAILABLE:
        c->shared = 0;
        call_place_local(c);
        return;
    }
}

/* The guard, then the Originate. The key (when given) is ours here. With
 * Redis the limits are counted there, for every replica at once. */
static void call_place(struct call *c)
{
    if (sguard_ready(c->a->sguard)) {
        sguard_slot_name(c->slot, c->a->cfg->instance_id);
        uint32_t hold = (uint32_t)c->timeout_s * 1000 + CALL_OUTCOME_MARGIN_MS;
        c->shared = 1;
        if (sguard_take(c->a->sguard, c->key, ami_pool_name(c->pool), c->slot, hold, call_guarded,
                        c) == 0)
            return;
        c->shared = 0;
    }
    call_place_local(c);
}

static void call_place_local(struct call *c)
{
    uint64_t now = uv_now(c->a->loop);
    if (guard_take(c->a->guard, c->key, now, &c->rate) != 0) {
        call_rate_limited(c);
        return;
    }
    if (guard_acquire(c->a->guard, c->server) != 0) {
        guard_refund(c->a->guard, c->key, &c->rate); /* nothing was dialled */
        call_too_many_in_flight(c);
        return;
    }
    call_go(c);
}

static void call_idem(void *ud, enum idem_outcome o, const struct idem_reply *reply)
{
    struct call *c = ud;
    switch (o) {
    case IDEM_NEW:
        call_place(c);
        return;
    case IDEM_REPLAY: {
        http_req_add_header(c->r, "Idempotent-Replayed", "true");
        if (reply->status < 400) {
            http_respond(c->r, reply->status, "application/json", reply->body, reply->len);
            break;
        }
        /* the first outcome, told to this request: its own request_id */
        json_t *p = json_loadb(reply->body, reply->len, 0, NULL);
        char *s = NULL;
        if (p) {
            json_object_set_new(p, "request_id", json_string(http_req_id(c->r)));
            s = json_dumps(p, JSON_COMPACT);
            json_decref(p);
        }
        if (reply->status == 503)
            http_req_add_header(c->r, "Retry-After", "5");
        http_respond(c->r, reply->status, "application/problem+json", s ? s : reply->body,
                     s ? strlen(s) : reply->len);
        free(s);
        break;
    }
    case IDEM_MISMATCH:
        http_respond_problem(c->r, 422, "idempotency-key-reused", "Idempotency-Key reused",
                             "this Idempotency-Key was used with a different request body",
                             json_pack("{s:s}", "field", "Idempotency-Key"));
        break;
    case IDEM_ERROR:
        http_req_add_header(c->r, "Retry-After", API_RETRY_AFTER_UNAVAILABLE);
        http_respond_problem(c->r, 503, "idempotency-unavailable", "Service unavailable",
                             "the Idempotency-Key store cannot be reached; nothing was dialled",
                             NULL);
        break;
    }
    call_free(c);
}

/* --- validation -------------------------------------------------------------------------- */

static int bad(struct http_req *r, const char *field, const char *fmt, const char *arg)
{
    char detail[256];
    snprintf(detail, sizeof(detail), fmt, arg);
    api_bad_field(r, field, detail);
    return 1;
}

/* A string member: absent (NULL, 0), or a string of 1..max bytes. */
static int str_field(struct http_req *r, json_t *body, const char *name, size_t max,
                     const char **out)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return bad(r, name, "'%s' must be a string", name);
    size_t len = json_string_length(v);
    if (len == 0)
        return bad(r, name, "'%s' must not be empty", name);
    if (strlen(json_string_value(v)) != len)
        return bad(r, name, "'%s' contains a NUL byte", name);
    if (len > max) {
        char detail[128];
        snprintf(detail, sizeof(detail), "'%s' is longer than %zu bytes", name, max);
        api_bad_field(r, name, detail);
        return 1;
    }
    *out = json_string_value(v);
    return 0;
}

/* JSON field name for an AMI header, for errors found by the AMI checks. */
/* The body's names of the Originate headers, for problems. */
static const struct api_field call_headers[] = {
    {"Channel", "channel"},
    {"Context", "context"},
    {"Exten", "exten"},
    {"Priority", "priority"},
    {"Application", "application"},
    {"Data", "data"},
    {"CallerID", "caller_id"},
    {"Variable", "variables"},
    {"Account", "account"},
    {"Timeout", "timeout"},
    {NULL, NULL},
};

static int valid_var_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '(' || *s == ')' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

/* Check the body and build the Originate: 1 when it answered (400/403). */
static int build_originate(struct call *c, json_t *body)
{
    struct http_req *r = c->r;
    const char *k;
    json_t *v;
    json_object_foreach (body, k, v) {
        const char *const *f;
        for (f = call_members; *f && strcmp(*f, k); f++)
            ;
        if (!*f)
            return bad(r, k, "unknown field '%s'", k);
    }
    const char *channel, *context, *exten, *app, *data, *cid, *account, *reference;
    if (str_field(r, body, "channel", CALL_FIELD_MAX, &channel) ||
        str_field(r, body, "context", CALL_FIELD_MAX, &context) ||
        str_field(r, body, "exten", CALL_FIELD_MAX, &exten) ||
        str_field(r, body, "application", CALL_FIELD_MAX, &app) ||
        str_field(r, body, "data", CALL_DATA_MAX, &data) ||
        str_field(r, body, "caller_id", CALL_FIELD_MAX, &cid) ||
        str_field(r, body, "account", 64, &account) ||
        str_field(r, body, "reference", CALL_REFERENCE_MAX, &reference))
        return 1;
    for (const char *q = reference; q && *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            return bad(r, "reference", "'%s' may not contain control characters", "reference");
    if (reference)
        snprintf(c->reference, sizeof(c->reference), "%s", reference);
    if (!channel)
        return bad(r, "channel", "'%s' is required, e.g. \"PJSIP/1001\"", "channel");
    json_t *prio = json_object_get(body, "priority");
    json_int_t priority = 1;
    if (prio && (!json_is_integer(prio) || json_integer_value(prio) < 1 ||
                 json_integer_value(prio) > CALL_PRIORITY_MAX))
        return bad(r, "priority", "'%s' must be an integer from 1 to 99999", "priority");
    if (prio)
        priority = json_integer_value(prio);
    if (app) {
        if (context || exten || prio)
            return bad(r,
                       context ? "context"
                       : exten ? "exten"
                               : "priority",
                       "give either context/exten/priority or application/data, not both%s", "");
    } else {
        if (data)
            return bad(r, "data", "'%s' goes with 'application'", "data");
        if (!context)
            return bad(r, "context", "'%s' is required (or give 'application')", "context");
        if (!exten)
            return bad(r, "exten", "'%s' is required (or give 'application')", "exten");
    }
    json_t *tmo = json_object_get(body, "timeout");
    c->timeout_s = CALL_TIMEOUT_DEFAULT_S;
    if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
                json_integer_value(tmo) > CALL_TIMEOUT_MAX_S))
        return bad(r, "timeout", "'%s' must be an integer number of seconds from 1 to 600",
                   "timeout");
    if (tmo)
        c->timeout_s = (int)json_integer_value(tmo);
    json_t *wait = json_object_get(body, "wait");
    if (wait && !json_is_boolean(wait))
        return bad(r, "wait", "'%s' must be true or false", "wait");
    c->wait = wait ? json_is_true(wait) : 1;
    json_t *vars = json_object_get(body, "variables");
    if (vars && !json_is_object(vars))
        return bad(r, "variables", "'%s' must be an object of strings", "variables");
    if (vars && json_object_size(vars) > CALL_VARIABLES_MAX)
        return bad(r, "variables", "at most 100 %s", "variables");
    c->variables = vars ? json_incref(vars) : NULL;

    struct ami_msg *m = c->action = ami_msg_new();
    if (!m) {
        http_respond_oom(r);
        return 1;
    }
    snprintf(c->channel, sizeof(c->channel), "%s", channel);
    ami_msg_add(m, "Action", "Originate");
    ami_msg_add(m, "Channel", channel);
    if (app) {
        ami_msg_add(m, "Application", app);
        if (data)
            ami_msg_add(m, "Data", data);
    } else {
        ami_msg_add(m, "Context", context);
        ami_msg_add(m, "Exten", exten);
        ami_msg_addf(m, "Priority", "%lld", (long long)priority);
    }
    ami_msg_addf(m, "Timeout", "%d", c->timeout_s * 1000);
    if (cid)
        ami_msg_add(m, "CallerID", cid);
    if (account)
        ami_msg_add(m, "Account", account);
    ami_msg_add(m, "Async", "true");
    json_object_foreach (vars, k, v) {
        char field[96];
        snprintf(field, sizeof(field), "variables.%.64s", k);
        if (!valid_var_name(k))
            return bad(r, field, "variable name '%.64s' must be 1-64 of A-Z a-z 0-9 _ ( ) - .", k);
        if (!json_is_string(v))
            return bad(r, field, "the value of variable '%.64s' must be a string", k);
        struct strbuf sb;
        strbuf_init(&sb, 0);
        strbuf_printf(&sb, "%s=", k);
        strbuf_append(&sb, json_string_value(v), json_string_length(v));
        ami_msg_addn(m, "Variable", 8, sb.data, sb.len);
        strbuf_release(&sb);
    }
    /* the values as Asterisk reads them, the deny rules and the key's dial
     * policy, as on every route */
    if (api_check_action(c->a, r, m, call_headers))
        return 1;
    /* the call's id, known before any event: Asterisk (13+) uses ChannelId
     * as the first channel's Uniqueid, which every channel of the call
     * then carries as its Linkedid (10f) */
    unsigned char rnd[CALL_ID_LEN / 2];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        http_respond_oom(r);
        return 1;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(c->call_id + 2 * i, 3, "%02x", rnd[i]);
    ami_msg_add(m, "ChannelId", c->call_id);
    ami_msg_addf(m, "OtherChannelId", "%s-2", c->call_id);
    return 0;
}

void api_calls_post(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    const char *idk = http_req_header(r, "Idempotency-Key");
    if (idk && !idem_key_valid(idk)) {
        api_bad_field(r, "Idempotency-Key",
                      "the Idempotency-Key header must be 1-255 printable ASCII characters");
        return;
    }
    struct ami_pool *pool = api_pool_for(a, r);
    if (!pool)
        return;
    json_t *body = api_body_object(r);
    if (!body)
        return;
    struct call *c = calloc(1, sizeof(*c));
    if (!c) {
        json_decref(body);
        http_respond_oom(r);
        return;
    }
    c->a = a;
    c->r = r;
    c->key = http_req_principal(r);
    c->pool = pool;
    c->server = api_pool_index(a, pool);
    if (build_originate(c, body) != 0) {
        json_decref(body);
        call_free(c);
        return;
    }
    if (!idk) {
        json_decref(body);
        call_place(c);
        return;
    }
    /* the same request is the same body, whatever its formatting */
    char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    if (!canon) {
        free(canon);
        call_free(c);
        http_respond_oom(r);
        return;
    }
    digest_sha256(canon, strlen(canon), c->hash);
    free(canon);
    snprintf(c->idem_key, sizeof(c->idem_key), "%s", idk);
    /* the claim outlives the call's own bound: ring timeout, outcome margin */
    idem_begin(a->idem, c->key ? c->key->name : "", idk, c->hash,
               (uint32_t)c->timeout_s * 1000 + CALL_OUTCOME_MARGIN_MS + IDEM_CLAIM_SLACK_MS,
               call_idem, c);
}
