/* api/resource: what the channel and queue routes share.
 *
 * These routes take typed JSON and path segments, not AMI headers: a
 * problem names the API's field (`context`, `channel`), never the AMI header
 * it became, and AMI errors that mean "no such thing" or "already there"
 * get their own problem types instead of the generic route's catch-all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "admit/astval.h"
#include "admit/policy.h"
#include "core/metrics.h"

#define DETAIL_MAX 320

const char *api_field_name(const struct api_field *fields, const char *ami)
{
    for (; fields && fields->ami; fields++)
        if (!strcasecmp(fields->ami, ami))
            return fields->api;
    return ami;
}

int api_check_action(struct api *a, struct http_req *r, const struct ami_msg *m,
                     const struct api_field *fields)
{
    struct ami_error err;
    char detail[DETAIL_MAX];
    if (ami_action_validate(m, &err) != 0) {
        const char *f = api_field_name(fields, err.field);
        /* ami_action_validate speaks of headers: say what the client sent */
        if (strstr(err.detail, " contains a "))
            snprintf(detail, sizeof(detail), "'%s'%s", f, strstr(err.detail, " contains a "));
        else if (strstr(err.detail, " is too long"))
            snprintf(detail, sizeof(detail), "'%s' is too long for one AMI header line (%d bytes)",
                     f, AMI_ACTION_MAX_LINE);
        else
            snprintf(detail, sizeof(detail), "%s", err.detail);
        api_bad_field(r, f, detail);
        return 1;
    }
    return api_refuse_content(a, r, m, fields);
}

int api_refuse_content(struct api *a, struct http_req *r, const struct ami_msg *m,
                       const struct api_field *fields)
{
    struct policy_refusal pr = {.field = ""};
    const struct cfg_api_key *key = http_req_principal(r);
    enum policy_verdict v = policy_action(a->cfg, key, m, &pr);
    if (v == POLICY_OK)
        return 0;
    const char *f = api_field_name(fields, pr.field);
    char detail[DETAIL_MAX + 128];
    switch (v) {
    case POLICY_INVALID:
        snprintf(detail, sizeof(detail), "'%s' %s", f, pr.detail);
        api_bad_field(r, f, detail);
        break;
    case POLICY_DENIED:
        snprintf(detail, sizeof(detail), "'%s' %s", f, pr.detail);
        http_respond_problem(r, 403, "action-denied", "Action denied", detail,
                             json_pack("{s:s,s:s}", "field", f, "rule", pr.rule));
        break;
    case POLICY_DIAL:
        if (ami_msg_is(m, "Action", "Originate"))
            metrics_inc(METRIC_ORIGINATE_REJECTED, "policy", NULL, 1);
        snprintf(detail, sizeof(detail), "the API key '%s' may not do this: '%s' %s",
                 key ? key->name : "", f, pr.detail);
        http_respond_problem(r, 403, "dial-policy", "Refused by the dial policy", detail,
                             json_pack("{s:s,s:s}", "field", f, "rule", pr.rule));
        break;
    case POLICY_OK:
        break;
    }
    return 1;
}

/* For problems: what the member should have been. */
static const char *type_name(enum api_type t)
{
    switch (t) {
    case API_STRING:
        return "a string";
    case API_INTEGER:
        return "an integer";
    case API_BOOLEAN:
        return "a boolean";
    }
    return "?";
}

/* Strict types: a number is no string, 1 is no boolean, 1.0 no integer. */
static int type_fits(enum api_type t, const json_t *v)
{
    switch (t) {
    case API_STRING:
        return json_is_string(v);
    case API_INTEGER:
        return json_is_integer(v);
    case API_BOOLEAN:
        return json_is_boolean(v);
    }
    return 0;
}

json_t *api_body_members(struct http_req *r, const struct api_member *spec)
{
    json_t *body = api_body_object(r);
    if (!body)
        return NULL;
    char detail[DETAIL_MAX];
    const char *key;
    json_t *v;
    json_object_foreach (body, key, v) {
        const struct api_member *m = spec;
        while (m->name && strcmp(m->name, key))
            m++;
        if (!m->name) {
            struct strbuf known;
            strbuf_init(&known, 0);
            for (const struct api_member *k = spec; k->name; k++)
                strbuf_printf(&known, "%s%s", k == spec ? "" : ", ", k->name);
            snprintf(detail, sizeof(detail), "unknown member '%.64s' (this route takes %s)", key,
                     known.data ? known.data : "no members");
            strbuf_release(&known);
            api_bad_field(r, key, detail);
            goto refused;
        }
        if (!type_fits(m->type, v)) {
            snprintf(detail, sizeof(detail), "'%s' must be %s", key, type_name(m->type));
            api_bad_field(r, key, detail);
            goto refused;
        }
    }
    for (const struct api_member *m = spec; m->name; m++) {
        if (m->required && !json_object_get(body, m->name)) {
            snprintf(detail, sizeof(detail), "'%s' is required (%s)", m->name, type_name(m->type));
            api_bad_field(r, m->name, detail);
            goto refused;
        }
    }
    return body;
refused:
    json_decref(body);
    return NULL;
}

const char *api_path_value(struct http_req *r, const struct http_params *p, const char *name)
{
    const char *v = http_param(p, name);
    if (!v || !*v) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the %s in the path must not be empty", name);
        api_bad_field(r, name, detail);
        return NULL;
    }
    return v;
}

int api_refuse_channel_name(struct http_req *r, const char *field, const char *name)
{
    /* AMI Hangup reads "/regex/" as a pattern over every channel name, after
     * skipping leading blanks */
    if (astval_header(name)[0] == '/') {
        char detail[160];
        snprintf(detail, sizeof(detail),
                 "'%s' must be a channel name such as Local/100@demo-00000001;1, not start "
                 "with '/'",
                 field);
        api_bad_field(r, field, detail);
        return 1;
    }
    return 0;
}

int api_refuse_empty(struct http_req *r, const json_t *body, const char *name)
{
    const json_t *v = json_object_get(body, name);
    if (!v || !json_is_string(v) || json_string_length(v) > 0)
        return 0;
    char detail[96];
    snprintf(detail, sizeof(detail), "'%s' must not be empty", name);
    api_bad_field(r, name, detail);
    return 1;
}

json_t *api_context(const char *key, const char *value)
{
    json_t *o = json_object();
    if (o)
        json_object_set_new(o, key, api_json_text(value));
    return o;
}

int api_msg_add_json(struct ami_msg *m, const char *key, const json_t *str)
{
    return ami_msg_addn(m, key, strlen(key), json_string_value(str), json_string_length(str));
}

/* --- a change: one action, its reply is the answer ---------------------------------- */

struct change_call {
    struct http_req *r;
    int status;
    json_t *answer;
    json_t *context;
    const struct api_ami_error *errors;
};

/* The change call's state goes with its answer, on every path. */
static void change_free(struct change_call *c)
{
    json_decref(c->answer);
    json_decref(c->context);
    free(c);
}

/* The change's reply is the answer: 200/201 with the echo, or 204. */
static void change_done(void *ud, const struct ami_result *res)
{
    struct change_call *c = ud;
    if (!api_resource_failed(c->r, res, c->errors, c->context)) {
        if (c->status == API_NO_CONTENT) {
            http_respond(c->r, API_NO_CONTENT, NULL, "", 0);
        } else {
            const char *msg = ami_msg_get(res->response, "Message");
            json_object_set_new(c->answer, "message", api_json_text(msg));
            json_object_set_new(c->answer, "action_id", json_string(res->action_id));
            http_respond_json(c->r, c->status, json_incref(c->answer));
        }
    }
    change_free(c);
}

int api_submit(struct api *a, struct http_req *r, struct ami_pool *pool, struct ami_msg *m,
               ami_result_cb cb, void *ud)
{
    struct ami_error err;
    struct ami_submit_opts opts = {.err = &err};
    int rc = ami_pool_submit(pool, m, &opts, cb, ud, NULL);
    if (rc < 0)
        api_submit_failed(a, r, pool, rc, &err);
    return rc < 0;
}

void api_change_submit(struct api *a, struct http_req *r, struct ami_pool *pool, struct ami_msg *m,
                       int status, json_t *answer, const struct api_ami_error *errors,
                       json_t *context)
{
    struct change_call *c = calloc(1, sizeof(*c));
    if (!c || (status != API_NO_CONTENT && !answer)) {
        free(c);
        json_decref(answer);
        json_decref(context);
        ami_msg_free(m);
        http_respond_oom(r);
        return;
    }
    c->r = r;
    c->status = status;
    c->answer = answer;
    c->context = context;
    c->errors = errors;
    if (api_submit(a, r, pool, m, change_done, c))
        change_free(c);
}

void api_rate_headers(struct http_req *r, const struct guard_info *g)
{
    char v[32];
    snprintf(v, sizeof(v), "%d", g->limit);
    http_req_add_header(r, "RateLimit-Limit", v);
    snprintf(v, sizeof(v), "%d", g->remaining);
    http_req_add_header(r, "RateLimit-Remaining", v);
    snprintf(v, sizeof(v), "%d", g->reset_s);
    http_req_add_header(r, "RateLimit-Reset", v);
}
