/* POST /v1/actions/{Action}: run any allowed AMI action. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admit/guard.h"
#include "api/internal.h"
#include "admit/sguard.h"
#include "core/ascii.h"
#include "core/jsonw.h"
#include "core/metrics.h"
#include "core/strbuf.h"

/* Actions that would change the state of a pooled session under the feet
 * of every other request: never passed through, whatever the deny list. */
static const char *const reserved_actions[] = {"Login",     "Logoff", "Challenge", "Events",
                                               "WaitEvent", "Filter", NULL};

struct action_call {
    struct api *a;
    struct http_req *r;
    size_t server;
    int holds_slot; /* an in-flight originate slot of the guard */
    int shared;     /* ... kept in Redis (admit/sguard), named `slot` */
    char slot[SGUARD_SLOT_MAX];
    int answered;
    /* an Originate waiting for the shared guard's answer */
    struct ami_msg *pending;
    struct ami_submit_opts opts;
};

/* The in-flight slot goes back where it came from. */
static void action_release(struct action_call *call)
{
    if (!call->holds_slot)
        return;
    call->holds_slot = 0;
    if (call->shared)
        sguard_release(call->a->sguard, ami_pool_name(call->a->pools[call->server]), call->slot);
    guard_note(call->a->guard, call->server, -1);
}

#define ORIGINATE_DEFAULT_TIMEOUT_MS 30000 /* Asterisk's own default */
#define ORIGINATE_OUTCOME_MARGIN_MS  15000

static void action_send(struct action_call *call, struct ami_msg *m,
                        const struct ami_submit_opts *opts);
static void action_guarded(void *ud, enum sguard_verdict v, const struct guard_info *info);

static int is_reserved(const char *action)
{
    for (const char *const *p = reserved_actions; *p; p++)
        if (ascii_name_eq(*p, action))
            return 1;
    return 0;
}

static int is_denied(const struct api *a, const char *action)
{
    for (size_t i = 0; i < a->cfg->ndeny_actions; i++)
        if (ascii_name_eq(a->cfg->deny_actions[i], action))
            return 1;
    return 0;
}

/* Scratch for answers written straight from the AMI messages (one thread);
 * let go of when a big one made it large. */
#define ACTION_SCRATCH_KEEP (64 * 1024)
static struct strbuf scratch;

/* A string member `,"name":value` (no comma before the first). */
static int member(struct strbuf *out, const char *name, const char *v, int first)
{
    int rc = strbuf_append(out, &",\""[first], first ? 1 : 2);
    if (!rc)
        rc = strbuf_append_str(out, name);
    if (!rc)
        rc = strbuf_append(out, "\":", 2);
    return rc ? rc : jsonw_string(out, v, strlen(v));
}

/* The answer without a tree in between, byte for byte what the tree gives
 * (ami_msg_json_append is held against jansson): when the response has no
 * Command `Output` to turn into lines. 0, or -1 to build the tree. */
static int reply_direct(struct http_req *r, const struct ami_result *res)
{
    const struct ami_msg *m = res->response;
    if (ami_msg_count_key(m, "Output"))
        return -1;
    const char *resp = ami_msg_get(m, "Response"), *msg = ami_msg_get(m, "Message");
    struct strbuf *o = &scratch;
    strbuf_reset(o);
    int rc = strbuf_append(o, "{", 1);
    if (!rc)
        rc = member(o, "response", resp ? resp : "", 1);
    if (!rc)
        rc = member(o, "action_id", res->action_id, 0);
    if (!rc && msg)
        rc = member(o, "message", msg, 0);
    if (!rc)
        rc = strbuf_append_str(o, ",\"fields\":");
    if (!rc)
        rc = ami_msg_json_append(m, o);
    if (!rc && (res->complete || res->nevents)) {
        rc = strbuf_append_str(o, ",\"events\":[");
        for (size_t i = 0; !rc && i < res->nevents; i++) {
            if (i)
                rc = strbuf_append(o, ",", 1);
            if (!rc)
                rc = ami_msg_json_append(res->events[i], o);
        }
        if (!rc)
            rc = strbuf_append(o, "]", 1);
        if (!rc && res->complete) {
            rc = strbuf_append_str(o, ",\"complete\":");
            if (!rc)
                rc = ami_msg_json_append(res->complete, o);
        }
    }
    if (!rc)
        rc = strbuf_append(o, "}", 1);
    if (!rc)
        http_respond(r, 200, "application/json", o->data, o->len);
    if (o->cap > ACTION_SCRATCH_KEEP)
        strbuf_release(o);
    return rc ? -1 : 0;
}

static void reply(struct http_req *r, const struct ami_result *res)
{
    if (api_result_failed(r, res))
        return;
    if (!reply_direct(r, res))
        return;
    const struct ami_msg *m = res->response;
    json_t *fields = ami_msg_to_json(m);
    json_t *output = api_output_lines(m);
    if (output)
        json_object_del(fields, "Output");
    const char *resp = ami_msg_get(m, "Response");
    const char *msg = ami_msg_get(m, "Message");
    json_t *body =
        json_pack("{s:s,s:s}", "response", resp ? resp : "", "action_id", res->action_id);
    if (msg)
        json_object_set_new(body, "message", json_string(msg));
    json_object_set_new(body, "fields", fields ? fields : json_object());
    if (output)
        json_object_set_new(body, "output", output);
    if (res->complete || res->nevents) {
        json_t *events = json_array();
        for (size_t i = 0; i < res->nevents; i++)
            json_array_append_new(events, ami_msg_to_json(res->events[i]));
        json_object_set_new(body, "events", events);
        if (res->complete)
            json_object_set_new(body, "complete", ami_msg_to_json(res->complete));
    }
    http_respond_json(r, 200, body);
}

/* An async Originate was accepted: answer now, keep the slot until its
 * OriginateResponse (action_done). */
static void action_accepted(void *ud, const struct ami_result *res)
{
    struct action_call *call = ud;
    if (!call->answered) {
        call->answered = 1;
        reply(call->r, res);
    }
}

static void action_done(void *ud, const struct ami_result *res)
{
    struct action_call *call = ud;
    action_release(call);
    if (!call->answered)
        reply(call->r, res);
    free(call);
}

static int is_true(const char *v)
{
    return v && (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "1") ||
                 !strcasecmp(v, "on") || !strcasecmp(v, "y") || !strcasecmp(v, "t"));
}

/* Originate through the generic route obeys the same guard as POST
 * /v1/calls (here: the local one, without Redis or when Redis cannot
 * answer). 1 when it answered (refused). */
static int guard_originate(struct api *a, struct http_req *r, struct action_call *call,
                           const struct ami_msg *m)
{
    (void)m;
    const struct cfg_api_key *key = http_req_principal(r);
    struct guard_info gi;
    if (guard_take(a->guard, key, uv_now(a->loop), &gi) != 0) {
        metrics_inc(METRIC_ORIGINATE_REJECTED, "rate", NULL, 1);
        char v[32], detail[160];
        snprintf(v, sizeof(v), "%d", gi.retry_after_s);
        snprintf(detail, sizeof(detail),
                 "too many originates from this API key: at most %d at once, then the "
                 "configured rate per second",
                 gi.limit);
        http_req_add_header(r, "Retry-After", v);
        api_rate_headers(r, &gi);
        http_respond_problem(r, 429, "rate-limited", "Too many calls", detail, NULL);
        return 1;
    }
    if (guard_acquire(a->guard, call->server) != 0) {
        guard_refund(a->guard, key, &gi); /* nothing was dialled */
        metrics_inc(METRIC_ORIGINATE_REJECTED, "in_flight", NULL, 1);
        const char *server = ami_pool_name(a->pools[call->server]);
        char detail[160];
        snprintf(detail, sizeof(detail), "%d calls to server '%s' are waiting for their outcome",
                 guard_max_inflight(a->guard), server);
        http_req_add_header(r, "Retry-After", "1");
        api_rate_headers(r, &gi);
        http_respond_problem(r, 429, "too-many-calls-in-flight", "Too many calls in flight", detail,
                             json_pack("{s:s}", "server", server));
        return 1;
    }
    api_rate_headers(r, &gi);
    call->holds_slot = 1;
    return 0;
}

void api_actions_post(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *action = http_param(p, "action");
    char detail[256];
    if (!action || strlen(action) > AMI_KEY_MAX || !ami_key_valid(action, strlen(action))) {
        api_bad_field(r, "Action",
                      "the action name in the path must be 1 to 64 of A-Z a-z 0-9 _ -");
        return;
    }
    if (is_reserved(action)) {
        snprintf(detail, sizeof(detail),
                 "%s is managed by amibridge itself and cannot be sent through the API", action);
        http_respond_problem(r, 403, "action-reserved", "Action reserved", detail,
                             json_pack("{s:s}", "action", action));
        return;
    }
    if (is_denied(a, action)) {
        snprintf(detail, sizeof(detail),
                 "%s is on the deny list (AMIBRIDGE_DENY_ACTIONS / AMIBRIDGE_ALLOW_ACTIONS)",
                 action);
        http_respond_problem(r, 403, "action-denied", "Action denied", detail,
                             json_pack("{s:s}", "action", action));
        return;
    }
    struct ami_pool *pool = api_pool_for(a, r);
    if (!pool)
        return;
    json_t *body = api_body_object(r);
    if (!body)
        return;
    const char *key;
    json_t *v;
    json_object_foreach (body, key, v) {
        /* Asterisk reads header names case-insensitively and takes the
         * first: "channel" and "Channel" would be one header checked twice */
        const char *k2;
        json_t *v2;
        json_object_foreach (body, k2, v2) {
            if (k2 == key)
                break;
            if (ascii_name_eq(k2, key)) {
                snprintf(detail, sizeof(detail),
                         "'%s' and '%s' are the same AMI header (names are case-insensitive); "
                         "give repeated values as an array",
                         k2, key);
                api_bad_field(r, key, detail);
                json_decref(body);
                return;
            }
        }
        if (ascii_name_eq(key, "Action") || ascii_name_eq(key, "ActionID")) {
            snprintf(detail, sizeof(detail),
                     "'%s' may not be given in the body: the action comes from the path and "
                     "amibridge sets the ActionID",
                     key);
            api_bad_field(r, key, detail);
            json_decref(body);
            return;
        }
    }
    struct ami_msg *headers = NULL;
    struct ami_error err;
    int rc = ami_msg_from_json(body, &headers, &err);
    json_decref(body);
    if (rc) {
        if (rc == -EINVAL)
            api_bad_field(r, err.field, err.detail);
        else
            http_respond_oom(r);
        return;
    }
    struct ami_msg *m = ami_msg_new();
    if (!m || ami_msg_add(m, "Action", action)) {
        ami_msg_free(headers);
        ami_msg_free(m);
        http_respond_oom(r);
        return;
    }
    for (size_t i = 0; i < ami_msg_count(headers); i++)
        ami_msg_addn(m, ami_msg_key_at(headers, i), strlen(ami_msg_key_at(headers, i)),
                     ami_msg_value_at(headers, i), ami_msg_value_len_at(headers, i));
    ami_msg_free(headers);
    /* validate before the content rules, so CR/LF/NUL are reported as such */
    if (ami_action_validate(m, &err) != 0) {
        api_bad_field(r, err.field, err.detail);
        ami_msg_free(m);
        return;
    }
    if (api_refuse_content(a, r, m, NULL)) {
        ami_msg_free(m);
        return;
    }
    struct action_call *call = calloc(1, sizeof(*call));
    if (!call) {
        ami_msg_free(m);
        http_respond_oom(r);
        return;
    }
    call->a = a;
    call->r = r;
    call->server = api_pool_index(a, pool);
    struct ami_submit_opts opts = {.err = &err};
    if (ascii_name_eq(action, "Originate")) {
        /* it may ring for Timeout; the reply (sync) or the outcome (async) comes after */
        const char *t = ami_msg_get(m, "Timeout");
        long ring = t ? strtol(t, NULL, 10) : ORIGINATE_DEFAULT_TIMEOUT_MS;
        if (ring < 0 || ring > 3600 * 1000)
            ring = ORIGINATE_DEFAULT_TIMEOUT_MS;
        uint32_t tmo = (uint32_t)ring + ORIGINATE_OUTCOME_MARGIN_MS;
        if (is_true(ami_msg_get(m, "Async"))) {
            opts.flags = AMI_SUBMIT_ORIGINATE;
            opts.on_accepted = action_accepted;
            opts.timeout_ms = tmo;
        } else if (tmo > (uint32_t)cfg_server_find(a->cfg, ami_pool_name(pool))->timeout_ms) {
            opts.timeout_ms = tmo;
        }
        /* with Redis the guard counts for every replica: wait for its word */
        if (sguard_ready(a->sguard)) {
            sguard_slot_name(call->slot, a->cfg->instance_id);
            call->pending = m;
            call->opts = opts;
            call->opts.err = NULL;
            if (sguard_take(a->sguard, http_req_principal(r), ami_pool_name(pool), call->slot, tmo,
                            action_guarded, call) == 0)
                return;
            call->pending = NULL;
        }
        if (guard_originate(a, r, call, m) != 0) {
            ami_msg_free(m);
            free(call);
            return;
        }
    }
    action_send(call, m, &opts);
}

/* Send the action (the guard, if any, let it through). */
static void action_send(struct action_call *call, struct ami_msg *m,
                        const struct ami_submit_opts *opts)
{
    struct ami_error err;
    struct ami_submit_opts o = *opts;
    o.err = &err;
    struct api *a = call->a;
    struct http_req *r = call->r;
    struct ami_pool *pool = a->pools[call->server];
    int rc = ami_pool_submit(pool, m, &o, action_done, call, NULL);
    if (rc < 0) {
        action_release(call);
        free(call);
        api_submit_failed(a, r, pool, rc, &err);
    }
}

/* The shared guard's answer for a generic Originate. */
static void action_guarded(void *ud, enum sguard_verdict v, const struct guard_info *info)
{
    struct action_call *call = ud;
    struct http_req *r = call->r;
    struct ami_msg *m = call->pending;
    call->pending = NULL;
    switch (v) {
    case SGUARD_OK:
        call->shared = 1;
        call->holds_slot = 1;
        guard_note(call->a->guard, call->server, 1);
        api_rate_headers(r, info);
        action_send(call, m, &call->opts);
        return;
    case SGUARD_RATE:
    case SGUARD_INFLIGHT: {
        char v_s[32], detail[160];
        const char *server = ami_pool_name(call->a->pools[call->server]);
        metrics_inc(METRIC_ORIGINATE_REJECTED, v == SGUARD_RATE ? "rate" : "in_flight", NULL, 1);
        snprintf(v_s, sizeof(v_s), "%d", info->retry_after_s);
        http_req_add_header(r, "Retry-After", v_s);
        api_rate_headers(r, info);
        if (v == SGUARD_RATE) {
            snprintf(detail, sizeof(detail),
                     "too many originates from this API key: at most %d at once, then the "
                     "configured rate per second",
                     info->limit);
            http_respond_problem(r, 429, "rate-limited", "Too many calls", detail, NULL);
        } else {
            snprintf(detail, sizeof(detail),
                     "%d calls to server '%s' are waiting for their outcome",
                     guard_max_inflight(call->a->guard), server);
            http_respond_problem(r, 429, "too-many-calls-in-flight", "Too many calls in flight",
                                 detail, json_pack("{s:s}", "server", server));
        }
        break;
    }
    case SGUARD_UNAVAILABLE:
        if (guard_originate(call->a, r, call, m) == 0) {
            action_send(call, m, &call->opts);
            return;
        }
        break;
    }
    ami_msg_free(m);
    free(call);
}
