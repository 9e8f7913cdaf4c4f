/* The channel routes: list and read live channels (CoreShowChannels), hang
 * up, redirect, blind-transfer, and set or read channel variables.
 *
 * A channel name ("Local/100@demo-00000006;1") is one path segment, sent
 * percent-encoded; the router decodes it. Reading one channel filters
 * CoreShowChannels rather than asking Status, which needs more AMI
 * privileges than a read-only AMI user has.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"

#define HANGUP_CAUSE_MAX 127 /* the highest ISDN cause Asterisk accepts */
#define PRIORITY_MIN     1
#define PRIORITY_MAX     99999 /* as POST /v1/calls */

/* What AMI errors mean on these routes. */
static const struct api_ami_error channel_errors[] = {
    {"No such channel", API_MATCH_EXACT, 404, "no-such-channel", "No such channel"},
    /* Redirect */
    {"Channel does not exist", API_MATCH_PREFIX, 404, "no-such-channel", "No such channel"},
    {"ExtraChannel does not exist", API_MATCH_PREFIX, 404, "no-such-channel", "No such channel"},
    /* BlindTransfer */
    {"Channel specified does not exist", API_MATCH_EXACT, 404, "no-such-channel",
     "No such channel"},
    {"Transfer invalid", API_MATCH_EXACT, 409, "channel-not-bridged",
     "The channel is not in a two-party bridge"},
    {NULL, API_MATCH_EXACT, 0, NULL, NULL},
};

/* AMI headers and the API fields they come from. */
static const struct api_field channel_fields[] = {
    {"Channel", "channel"},
    {"Context", "context"},
    {"Exten", "exten"},
    {"Priority", "priority"},
    {"ExtraChannel", "extra_channel"},
    {"Variable", "name"},
    {"Value", "value"},
    {"Cause", "cause"},
    {NULL, NULL},
};

/* The channel of the path, checked; NULL after answering. */
static const char *path_channel(struct http_req *r, const struct http_params *p)
{
    const char *ch = api_path_value(r, p, "channel");
    return ch && !api_refuse_channel_name(r, "channel", ch) ? ch : NULL;
}

/* A new action with its first headers, or NULL after answering 500. */
static struct ami_msg *new_action(struct http_req *r, const char *action, const char *channel)
{
    struct ami_msg *m = ami_msg_new();
    if (!m || ami_msg_add(m, "Action", action) || ami_msg_add(m, "Channel", channel)) {
        ami_msg_free(m);
        http_respond_oom(r);
        return NULL;
    }
    return m;
}

/* --- reading ---------------------------------------------------------------------- */

struct read_call {
    struct http_req *r;
    char *channel; /* the one asked for; NULL for the list */
    char *name;    /* Getvar: the variable */
    char *value;   /* Getvar: the channel's answer, held against the global's */
    struct api *a;
    struct ami_pool *pool;
};

/* Every path of the read routes ends here. */
static void read_free(struct read_call *c)
{
    free(c->channel);
    free(c->name);
    free(c->value);
    free(c);
}

/* CoreShowChannels is in: the list, or the one channel asked for. */
static void list_done(void *ud, const struct ami_result *res)
{
    struct read_call *c = ud;
    if (api_resource_failed(c->r, res, channel_errors, NULL))
        goto out;
    json_t *list = json_array();
    json_t *found = NULL;
    for (size_t i = 0; i < res->nevents; i++) {
        const struct ami_msg *ev = res->events[i];
        if (!ami_msg_is(ev, "Event", "CoreShowChannel"))
            continue;
        if (!c->channel) {
            json_array_append_new(list, api_channel_json(ev));
        } else if (ami_msg_get(ev, "Channel") &&
                   !strcasecmp(ami_msg_get(ev, "Channel"), c->channel)) {
            found = api_channel_json(ev);
            break;
        }
    }
    if (!c->channel) {
        http_respond_json(c->r, 200, json_pack("{s:o}", "channels", list));
        goto out;
    }
    json_decref(list);
    if (found) {
        http_respond_json(c->r, 200, found);
        goto out;
    }
    char detail[320];
    snprintf(detail, sizeof(detail), "there is no channel named '%.256s'", c->channel);
    http_respond_problem(c->r, 404, "no-such-channel", "No such channel", detail,
                         api_context("channel", c->channel));
out:
    read_free(c);
}

/* GET /v1/channels and GET /v1/channels/{channel}. */
static void read_channels(struct api *a, struct http_req *r, const char *channel)
{
    struct ami_pool *pool = api_pool_for(a, r);
    if (!pool)
        return;
    struct read_call *c = calloc(1, sizeof(*c));
    struct ami_msg *m = ami_msg_new();
    if (!c || !m || ami_msg_add(m, "Action", "CoreShowChannels") ||
        (channel && !(c->channel = strdup(channel)))) {
        ami_msg_free(m);
        if (c)
            read_free(c);
        http_respond_oom(r);
        return;
    }
    c->r = r;
    if (api_submit(a, r, pool, m, list_done, c))
        read_free(c);
}

void api_channels_list(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    read_channels(a, r, NULL);
}

void api_channel_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *channel = path_channel(r, p);
    if (channel)
        read_channels(a, r, channel);
}

/* The same name without a channel: the global variable (or a builtin
 * such as ASTETCDIR) Getvar answers for a name the channel does not have.
 * A value equal to it is taken for it and reads as null: a read key reads
 * the channel's variables, not the PBX's (a channel variable that holds
 * the very value of a global of its name reads as null too). */
static void getvar_global_done(void *ud, const struct ami_result *res)
{
    struct read_call *c = ud;
    json_t *ctx = api_context("channel", c->channel);
    if (!api_resource_failed(c->r, res, channel_errors, ctx)) {
        const char *global = ami_msg_get(res->response, "Value");
        json_t *body = json_object();
        json_object_set_new(body, "channel", api_json_text(c->channel));
        json_object_set_new(body, "name", api_json_text(c->name));
        json_object_set_new(body, "value",
                            api_json_text(global && !strcmp(global, c->value) ? NULL : c->value));
        http_respond_json(c->r, 200, body);
    }
    json_decref(ctx);
    read_free(c);
}

/* Getvar on the channel is in: null when empty; a value is held against
 * the global of the same name first. */
static void getvar_done(void *ud, const struct ami_result *res)
{
    struct read_call *c = ud;
    json_t *ctx = api_context("channel", c->channel);
    if (api_resource_failed(c->r, res, channel_errors, ctx)) {
        json_decref(ctx);
        read_free(c);
        return;
    }
    json_decref(ctx);
    const char *v = ami_msg_get(res->response, "Value");
    struct ami_msg *m = NULL;
    if (v && *v && (c->value = strdup(v)) && (m = ami_msg_new()) &&
        !ami_msg_add(m, "Action", "Getvar") && !ami_msg_add(m, "Variable", c->name)) {
        if (api_submit(c->a, c->r, c->pool, m, getvar_global_done, c))
            read_free(c);
        return;
    }
    ami_msg_free(m);
    if (v && *v) {
        struct http_req *r = c->r;
        read_free(c);
        http_respond_oom(r);
        return;
    }
    json_t *body = json_object();
    json_object_set_new(body, "channel", api_json_text(c->channel));
    json_object_set_new(body, "name", api_json_text(c->name));
    json_object_set_new(body, "value", json_null());
    http_respond_json(c->r, 200, body);
    read_free(c);
}

/* GET /v1/channels/{channel}/variables/{name}: Getvar on the channel,
 * then, for a value, Getvar of the name alone (getvar_global_done). A
 * variable that is not set and one set to "" both read as null (AMI cannot
 * tell them apart). Not Status with AllVariables, which would list every
 * variable of the channel in one event: one of them with a newline would
 * break the event apart. */
void api_channel_getvar(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *channel = path_channel(r, p);
    const char *name = channel ? api_path_value(r, p, "name") : NULL;
    /* a read key reads variables: a name with '(' is a function Asterisk
     * would call (AST_CONFIG(), SHELL(), ...) */
    if (name && strchr(name, '(')) {
        api_bad_field(r, "name",
                      "'name' must be a variable name; dialplan functions are not read on this "
                      "route");
        return;
    }
    struct ami_pool *pool = name ? api_pool_for(a, r) : NULL;
    if (!pool)
        return;
    struct ami_msg *m = new_action(r, "Getvar", channel);
    if (!m)
        return;
    if (ami_msg_add(m, "Variable", name)) {
        ami_msg_free(m);
        http_respond_oom(r);
        return;
    }
    if (api_check_action(a, r, m, channel_fields)) {
        ami_msg_free(m);
        return;
    }
    struct read_call *c = calloc(1, sizeof(*c));
    if (!c || !(c->channel = strdup(channel)) || !(c->name = strdup(name))) {
        ami_msg_free(m);
        if (c)
            read_free(c);
        http_respond_oom(r);
        return;
    }
    c->r = r;
    c->a = a;
    c->pool = pool;
    if (api_submit(a, r, pool, m, getvar_done, c))
        read_free(c);
}

/* --- changes ------------------------------------------------------------------------ */

/* Check and send a change built for `channel` (takes `m`); the answer
 * echoes the request `body` with the channel (no body: NULL). */
static void send_change(struct api *a, struct http_req *r, struct ami_pool *pool, struct ami_msg *m,
                        const char *channel, int status, const json_t *body)
{
    if (api_check_action(a, r, m, channel_fields)) {
        ami_msg_free(m);
        return;
    }
    json_t *answer = body ? json_deep_copy(body) : NULL;
    if (answer)
        json_object_set_new(answer, "channel", api_json_text(channel));
    api_change_submit(a, r, pool, m, status, answer, channel_errors,
                      api_context("channel", channel));
}

/* DELETE /v1/channels/{channel}[?cause=N]: Hangup, with an optional ISDN
 * cause (16 normal clearing, 17 user busy, 21 call rejected, ...). */
void api_channel_hangup(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *channel = path_channel(r, p);
    struct ami_pool *pool = channel ? api_pool_for(a, r) : NULL;
    if (!pool)
        return;
    char *cause = NULL;
    int rc = http_req_query(r, "cause", &cause);
    long n = 0;
    char *end = NULL;
    if (rc == 1) {
        errno = 0;
        n = strtol(cause, &end, 10);
    }
    if (rc < 0 || (rc == 1 && (!cause[0] || *end || errno || n < 0 || n > HANGUP_CAUSE_MAX))) {
        free(cause);
        api_bad_field(r, "cause",
                      "cause must be an integer from 0 to 127 (an ISDN cause: 16 is normal "
                      "clearing)");
        return;
    }
    struct ami_msg *m = new_action(r, "Hangup", channel);
    if (m && rc == 1 && ami_msg_addf(m, "Cause", "%ld", n)) {
        ami_msg_free(m);
        m = NULL;
        http_respond_oom(r);
    }
    free(cause);
    if (m)
        send_change(a, r, pool, m, channel, API_NO_CONTENT, NULL);
}

static const struct api_member redirect_members[] = {
    {"context", API_STRING, 1},       {"exten", API_STRING, 1}, {"priority", API_INTEGER, 1},
    {"extra_channel", API_STRING, 0}, {NULL, API_STRING, 0},
};

/* POST /v1/channels/{channel}/redirect: Redirect to context/exten/priority;
 * an extra_channel (the other party, typically) goes to the same place.
 * Moving a live call is dialling it somewhere: api_check_action() applies
 * the key's dial policy. */
void api_channel_redirect(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *channel = path_channel(r, p);
    struct ami_pool *pool = channel ? api_pool_for(a, r) : NULL;
    json_t *body = pool ? api_body_members(r, redirect_members) : NULL;
    if (!body)
        return;
    json_t *extra = json_object_get(body, "extra_channel");
    json_int_t prio = json_integer_value(json_object_get(body, "priority"));
    struct ami_msg *m = NULL;
    if (api_refuse_empty(r, body, "context") || api_refuse_empty(r, body, "exten") ||
        api_refuse_empty(r, body, "extra_channel") ||
        (extra && api_refuse_channel_name(r, "extra_channel", json_string_value(extra))))
        goto out;
    if (prio < PRIORITY_MIN || prio > PRIORITY_MAX) {
        api_bad_field(r, "priority", "'priority' must be an integer from 1 to 99999");
        goto out;
    }
    m = new_action(r, "Redirect", channel);
    if (!m)
        goto out;
    if (api_msg_add_json(m, "Context", json_object_get(body, "context")) ||
        api_msg_add_json(m, "Exten", json_object_get(body, "exten")) ||
        ami_msg_addf(m, "Priority", "%lld", (long long)prio) ||
        (extra && api_msg_add_json(m, "ExtraChannel", extra))) {
        http_respond_oom(r);
        goto out;
    }
    send_change(a, r, pool, m, channel, 200, body);
    m = NULL;
out:
    ami_msg_free(m);
    json_decref(body);
}

static const struct api_member transfer_members[] = {
    {"context", API_STRING, 1},
    {"exten", API_STRING, 1},
    {NULL, API_STRING, 0},
};

/* POST /v1/channels/{channel}/blind-transfer: BlindTransfer. The channel's
 * bridge peer goes to context/exten and the channel leaves the call; a
 * channel that is not in a two-party bridge cannot transfer (409). */
void api_channel_blind_transfer(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *channel = path_channel(r, p);
    struct ami_pool *pool = channel ? api_pool_for(a, r) : NULL;
    json_t *body = pool ? api_body_members(r, transfer_members) : NULL;
    if (!body)
        return;
    struct ami_msg *m = NULL;
    if (api_refuse_empty(r, body, "context") || api_refuse_empty(r, body, "exten"))
        goto out;
    m = new_action(r, "BlindTransfer", channel);
    if (!m)
        goto out;
    if (api_msg_add_json(m, "Exten", json_object_get(body, "exten")) ||
        api_msg_add_json(m, "Context", json_object_get(body, "context"))) {
        http_respond_oom(r);
        goto out;
    }
    send_change(a, r, pool, m, channel, 200, body);
    m = NULL;
out:
    ami_msg_free(m);
    json_decref(body);
}

static const struct api_member setvar_members[] = {
    {"name", API_STRING, 1},
    {"value", API_STRING, 1},
    {NULL, API_STRING, 0},
};

/* POST /v1/channels/{channel}/variables: Setvar of a channel variable (or a
 * writable function such as CALLERID(name)). */
void api_channel_setvar(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *channel = path_channel(r, p);
    struct ami_pool *pool = channel ? api_pool_for(a, r) : NULL;
    json_t *body = pool ? api_body_members(r, setvar_members) : NULL;
    if (!body)
        return;
    struct ami_msg *m = NULL;
    if (api_refuse_empty(r, body, "name"))
        goto out;
    m = new_action(r, "Setvar", channel);
    if (!m)
        goto out;
    if (api_msg_add_json(m, "Variable", json_object_get(body, "name")) ||
        api_msg_add_json(m, "Value", json_object_get(body, "value"))) {
        http_respond_oom(r);
        goto out;
    }
    send_change(a, r, pool, m, channel, 200, body);
    m = NULL;
out:
    ami_msg_free(m);
    json_decref(body);
}
