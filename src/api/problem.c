/* api/problem: how failures are answered (RFC 9457 problems): a field
 * refused, a submit the pool refused, a transport error, and AMI's
 * Response: Error through one kind of table (struct api_ami_error): a
 * route's own rules first (resource routes), then GENERIC below. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"

/* What an AMI error means on every route. */
static const struct api_ami_error GENERIC[] = {
    {"Permission denied", API_MATCH_EXACT, 403, "ami-permission-denied",
     "Asterisk denied the action"},
    {"Invalid/unknown command", API_MATCH_PREFIX, 404, "ami-unknown-action",
     "Asterisk does not know this action"},
    {"No such channel", API_MATCH_EXACT, 404, "ami-no-such-channel", "No such channel"},
    {"Channel does not exist", API_MATCH_PREFIX, 404, "ami-no-such-channel", "No such channel"},
    {NULL, API_MATCH_EXACT, 0, NULL, NULL},
};
/* any other */
static const struct api_ami_error OTHER = {"", API_MATCH_PREFIX, 422, "ami-error",
                                           "Asterisk refused the action"};

void api_bad_field(struct http_req *r, const char *field, const char *detail)
{
    http_respond_problem(r, 400, "invalid-field", "Bad request", detail,
                         json_pack("{s:s}", "field", field));
}

void api_submit_failed(struct api *a, struct http_req *r, struct ami_pool *p, int rc,
                       const struct ami_error *err)
{
    (void)a;
    char detail[512];
    struct ami_pool_status st;
    switch (rc) {
    case -EINVAL:
        api_bad_field(r, err->field, err->detail);
        return;
    case -ENOTCONN:
        ami_pool_status(p, &st);
        snprintf(detail, sizeof(detail), "no logged-in AMI connection to server '%s'%s%s%s",
                 ami_pool_name(p), st.last_error[0] ? ": " : "", st.last_error,
                 st.auth_failed ? " (the AMI login is being rejected: check the credentials)" : "");
        http_req_add_header(r, "Retry-After", API_RETRY_AFTER_UNAVAILABLE);
        http_respond_problem(r, 503, "ami-unavailable", "AMI unavailable", detail,
                             json_pack("{s:s}", "server", ami_pool_name(p)));
        return;
    case -EBUSY:
        snprintf(detail, sizeof(detail), "too many actions in flight to server '%s'; retry shortly",
                 ami_pool_name(p));
        http_req_add_header(r, "Retry-After", API_RETRY_AFTER_BUSY);
        http_respond_problem(r, 503, "overloaded", "Too many actions in flight", detail,
                             json_pack("{s:s}", "server", ami_pool_name(p)));
        return;
    default:
        http_respond_problem(r, 500, "internal", "Internal error", "could not queue the action",
                             NULL);
    }
}
/* Does the AMI message fit the rule? */
static int error_matches(const struct api_ami_error *e, const char *msg)
{
    switch (e->match) {
    case API_MATCH_EXACT:
        return !strcasecmp(msg, e->text);
    case API_MATCH_PREFIX:
        return !strncasecmp(msg, e->text, strlen(e->text));
    case API_MATCH_CONTAINS:
        return strcasestr(msg, e->text) != NULL;
    }
    return 0;
}

const struct api_ami_error *api_ami_error_find(const struct api_ami_error *map, const char *msg)
{
    for (; map && map->text; map++)
        if (msg && error_matches(map, msg))
            return map;
    return NULL;
}

void api_respond_mapped(struct http_req *r, const struct api_ami_error *e, const char *ami_message,
                        const char *action_id, json_t *context)
{
    json_t *extra = json_object();
    if (extra && context)
        json_object_update(extra, context);
    if (extra && ami_message)
        json_object_set_new(extra, "ami_message", json_string(ami_message));
    if (extra && action_id)
        json_object_set_new(extra, "action_id", json_string(action_id));
    http_respond_problem(r, e->status, e->slug, e->title, ami_message ? ami_message : e->title,
                         extra);
}

int api_resource_failed(struct http_req *r, const struct ami_result *res,
                        const struct api_ami_error *map, const json_t *context)
{
    if (res->status == AMI_OK && res->response && ami_msg_is(res->response, "Response", "Error")) {
        const char *msg = ami_msg_get(res->response, "Message");
        const struct api_ami_error *e = api_ami_error_find(map, msg);
        if (e) {
            api_respond_mapped(r, e, msg, res->action_id, (json_t *)context);
            return 1;
        }
    }
    return api_result_failed(r, res);
}

int api_result_failed(struct http_req *r, const struct ami_result *res)
{
    switch (res->status) {
    case AMI_OK:
        break;
    case AMI_ETIMEDOUT:
        http_respond_problem(r, 504, "ami-timeout", "AMI timeout", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    case AMI_ELOST:
        http_respond_problem(r, 502, "ami-connection-lost", "AMI connection lost", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    case AMI_ESHUTDOWN:
        http_req_add_header(r, "Retry-After", "5");
        http_respond_problem(r, 503, "shutting-down", "Service unavailable", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    case AMI_ETOOBIG:
        http_respond_problem(r, 502, "ami-list-too-long", "AMI reply too large", res->detail,
                             json_pack("{s:s}", "action_id", res->action_id));
        return 1;
    }
    const struct ami_msg *m = res->response;
    if (!m || !ami_msg_is(m, "Response", "Error"))
        return 0;
    const char *msg = ami_msg_get(m, "Message");
    const struct api_ami_error *e = api_ami_error_find(GENERIC, msg);
    if (!e)
        e = &OTHER;
    json_t *extra =
        json_pack("{s:s,s:s}", "ami_message", msg ? msg : "", "action_id", res->action_id);
    json_t *out = api_output_lines(m);
    if (extra && out)
        json_object_set_new(extra, "output", out);
    else
        json_decref(out);
    http_respond_problem(r, e->status, e->slug, e->title,
                         msg ? msg : "Asterisk answered Response: Error", extra);
    return 1;
}
json_t *api_output_lines(const struct ami_msg *m)
{
    size_t n = ami_msg_count_key(m, "Output");
    if (!n)
        return NULL;
    json_t *arr = json_array();
    /* the message's own JSON form repairs bad UTF-8; reuse it */
    json_t *all = ami_msg_to_json(m);
    json_t *o = all ? json_object_get(all, "Output") : NULL;
    if (json_is_array(o))
        json_array_extend(arr, o);
    else if (o)
        json_array_append(arr, o);
    json_decref(all);
    return arr;
}
