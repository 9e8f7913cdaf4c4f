/* The queue routes: queue status (QueueStatus with QueueSummary's figures)
 * and membership (QueueAdd, QueueRemove, QueuePause).
 *
 * Asterisk answers QueueStatus for a queue that does not exist with an
 * empty list, and QueuePause with "Interface not found" whether the queue
 * or the member is missing; these routes tell the cases apart with one more
 * action, and answer once, when all of them are in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"

#define PENALTY_MAX 2147483647 /* what Asterisk reads a penalty into (int) */

/* What AMI errors mean on these routes. */
static const struct api_ami_error queue_errors[] = {
    /* QueueAdd, QueueRemove: "Unable to ... queue: No such queue" */
    {"No such queue", API_MATCH_CONTAINS, 404, "no-such-queue", "No such queue"},
    {"Already there", API_MATCH_CONTAINS, 409, "member-exists", "Already a member of the queue"},
    {"Not there", API_MATCH_CONTAINS, 404, "no-such-member", "No such queue member"},
    {"Interface not found", API_MATCH_EXACT, 404, "no-such-member", "No such queue member"},
    {"Member not dynamic", API_MATCH_EXACT, 409, "member-not-dynamic",
     "The member is configured in queues.conf"},
    {NULL, API_MATCH_EXACT, 0, NULL, NULL},
};
static const struct api_ami_error no_such_queue = {"", API_MATCH_EXACT, 404, "no-such-queue",
                                                   "No such queue"};

static const struct api_field queue_fields[] = {
    {"Queue", "queue"},     {"Interface", "interface"}, {"MemberName", "name"},
    {"Penalty", "penalty"}, {"Paused", "paused"},       {"Reason", "reason"},
    {NULL, NULL},
};

struct queue_call {
    struct api *a;
    struct http_req *r;
    struct ami_pool *pool;
    char *queue;       /* the queue asked for; NULL for the list */
    json_t *queues;    /* QueueStatus, converted, waiting for QueueSummary */
    json_t *answer;    /* QueuePause: the success answer */
    json_t *context;   /* queue and interface, for problems */
    char *ami_message; /* QueuePause: its error, while QueueSummary tells which */
    char *action_id;
};

/* Every path of every route ends here, whichever step it reached. */
static void call_free(struct queue_call *c)
{
    free(c->queue);
    json_decref(c->queues);
    json_decref(c->answer);
    json_decref(c->context);
    free(c->ami_message);
    free(c->action_id);
    free(c);
}

/* The request's state; NULL after answering 500. */
static struct queue_call *call_new(struct api *a, struct http_req *r, struct ami_pool *pool,
                                   const char *queue)
{
    struct queue_call *c = calloc(1, sizeof(*c));
    if (c && queue && !(c->queue = strdup(queue))) {
        free(c);
        c = NULL;
    }
    if (!c) {
        http_respond_oom(r);
        return NULL;
    }
    c->a = a;
    c->r = r;
    c->pool = pool;
    return c;
}

/* Action: NAME and Queue: queue when there is one; NULL when out of memory. */
static struct ami_msg *queue_action(const char *action, const char *queue)
{
    struct ami_msg *m = ami_msg_new();
    if (!m || ami_msg_add(m, "Action", action) || (queue && ami_msg_add(m, "Queue", queue))) {
        ami_msg_free(m);
        return NULL;
    }
    return m;
}

/* Out of memory: answer 500 (1: it answered). */
static int respond_nomem(struct http_req *r)
{
    http_respond_oom(r);
    return 1;
}

/* The queue path segment, checked the way its AMI header will be. */
static const char *path_queue(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *q = api_path_value(r, p, "queue");
    if (!q)
        return NULL;
    struct ami_msg *m = queue_action("QueueStatus", q);
    if (!m) {
        respond_nomem(r);
        return NULL;
    }
    int rc = api_check_action(a, r, m, queue_fields);
    ami_msg_free(m);
    return rc ? NULL : q;
}

/* --- GET /v1/queues, GET /v1/queues/{queue} ------------------------------------------ */

/* The second step: QueueSummary's figures complete the queues, then the answer. */
static void summary_done(void *ud, const struct ami_result *res)
{
    struct queue_call *c = ud;
    if (api_resource_failed(c->r, res, queue_errors, c->context))
        goto out;
    api_queues_add_summary(c->queues, res->events, res->nevents);
    if (c->queue)
        http_respond_json(c->r, 200, json_incref(json_array_get(c->queues, 0)));
    else
        http_respond_json(c->r, 200, json_pack("{s:O}", "queues", c->queues));
out:
    call_free(c);
}

/* The first step: QueueStatus, converted at once (its events live only
 * during this callback); an empty list for a named queue is its 404. */
static void status_done(void *ud, const struct ami_result *res)
{
    struct queue_call *c = ud;
    if (api_resource_failed(c->r, res, queue_errors, c->context))
        goto out;
    c->queues = api_queues_json(res->events, res->nevents);
    if (!c->queues) {
        respond_nomem(c->r);
        goto out;
    }
    if (c->queue && json_array_size(c->queues) == 0) {
        char detail[160];
        snprintf(detail, sizeof(detail), "there is no queue named '%.64s'", c->queue);
        http_respond_problem(c->r, 404, "no-such-queue", "No such queue", detail,
                             api_context("queue", c->queue));
        goto out;
    }
    struct ami_msg *m = queue_action("QueueSummary", c->queue);
    if (!m) {
        respond_nomem(c->r);
        goto out;
    }
    if (api_submit(c->a, c->r, c->pool, m, summary_done, c) == 0)
        return;
out:
    call_free(c);
}

/* Both routes: QueueStatus, then QueueSummary for the figures it lacks. */
static void read_queues(struct api *a, struct http_req *r, const char *queue)
{
    struct ami_pool *pool = api_pool_for(a, r);
    struct queue_call *c = pool ? call_new(a, r, pool, queue) : NULL;
    if (!c)
        return;
    struct ami_msg *m = queue_action("QueueStatus", queue);
    if (!m) {
        respond_nomem(r);
        call_free(c);
        return;
    }
    if (queue)
        c->context = api_context("queue", queue);
    if (api_submit(a, r, pool, m, status_done, c))
        call_free(c);
}

void api_queues_list(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    read_queues(a, r, NULL);
}

void api_queue_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *queue = path_queue(a, r, p);
    if (queue)
        read_queues(a, r, queue);
}

/* --- membership ----------------------------------------------------------------------- */

/* {queue, interface}: the context of member problems and answers. */
static json_t *member_context(const char *queue, const char *interface)
{
    json_t *o = api_context("queue", queue);
    if (o)
        json_object_set_new(o, "interface", api_json_text(interface));
    return o;
}

static const struct api_member add_members[] = {
    {"interface", API_STRING, 1}, {"name", API_STRING, 0},   {"penalty", API_INTEGER, 0},
    {"paused", API_BOOLEAN, 0},   {"reason", API_STRING, 0}, {NULL, API_STRING, 0},
};

/* A pause reason only goes with paused: true. 1 when it answered. */
static int refuse_lone_reason(struct http_req *r, const json_t *body)
{
    if (!json_object_get(body, "reason") || json_is_true(json_object_get(body, "paused")))
        return 0;
    api_bad_field(r, "reason", "'reason' is the reason for a pause: it needs \"paused\": true");
    return 1;
}

/* POST /v1/queues/{queue}/members: QueueAdd of a dynamic member. */
void api_queue_member_add(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *queue = path_queue(a, r, p);
    struct ami_pool *pool = queue ? api_pool_for(a, r) : NULL;
    json_t *body = pool ? api_body_members(r, add_members) : NULL;
    if (!body)
        return;
    struct ami_msg *m = NULL;
    json_t *pen = json_object_get(body, "penalty");
    json_t *paused = json_object_get(body, "paused");
    json_t *name = json_object_get(body, "name");
    json_t *reason = json_object_get(body, "reason");
    if (api_refuse_empty(r, body, "interface") || api_refuse_empty(r, body, "name") ||
        refuse_lone_reason(r, body))
        goto out;
    if (pen && (json_integer_value(pen) < 0 || json_integer_value(pen) > PENALTY_MAX)) {
        api_bad_field(r, "penalty", "'penalty' must be an integer from 0 to 2147483647");
        goto out;
    }
    m = queue_action("QueueAdd", queue);
    if (!m || api_msg_add_json(m, "Interface", json_object_get(body, "interface")) ||
        (pen && ami_msg_addf(m, "Penalty", "%lld", (long long)json_integer_value(pen))) ||
        (paused && ami_msg_add(m, "Paused", json_is_true(paused) ? "true" : "false")) ||
        (name && api_msg_add_json(m, "MemberName", name)) ||
        (reason && api_msg_add_json(m, "Reason", reason))) {
        respond_nomem(r);
        goto out;
    }
    if (api_check_action(a, r, m, queue_fields))
        goto out;
    json_t *answer = json_deep_copy(body);
    json_object_set_new(answer, "queue", api_json_text(queue));
    api_change_submit(a, r, pool, m, 201, answer, queue_errors,
                      member_context(queue, json_string_value(json_object_get(body, "interface"))));
    m = NULL;
out:
    ami_msg_free(m);
    json_decref(body);
}

/* QueueRemove or QueuePause of `interface` in `queue`, checked before it is
 * sent; NULL after answering. */
static struct ami_msg *member_action(struct api *a, struct http_req *r, const char *action,
                                     const char *queue, const char *interface)
{
    struct ami_msg *m = queue_action(action, queue);
    if (!m || ami_msg_add(m, "Interface", interface)) {
        ami_msg_free(m);
        respond_nomem(r);
        return NULL;
    }
    if (api_check_action(a, r, m, queue_fields)) {
        ami_msg_free(m);
        return NULL;
    }
    return m;
}

/* DELETE /v1/queues/{queue}/members/{interface}: QueueRemove. Members from
 * queues.conf cannot be removed (409 member-not-dynamic). */
void api_queue_member_remove(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *queue = path_queue(a, r, p);
    const char *iface = queue ? api_path_value(r, p, "interface") : NULL;
    struct ami_pool *pool = iface ? api_pool_for(a, r) : NULL;
    struct ami_msg *m = pool ? member_action(a, r, "QueueRemove", queue, iface) : NULL;
    if (m)
        api_change_submit(a, r, pool, m, API_NO_CONTENT, NULL, queue_errors,
                          member_context(queue, iface));
}

/* QueuePause said "Interface not found": the queue's QueueSummary says
 * whether the queue or the member is missing. */
static void pause_check_done(void *ud, const struct ami_result *res)
{
    struct queue_call *c = ud;
    if (api_resource_failed(c->r, res, queue_errors, c->context))
        goto out;
    int queue_exists = 0;
    for (size_t i = 0; i < res->nevents; i++)
        if (ami_msg_is(res->events[i], "Event", "QueueSummary"))
            queue_exists = 1;
    const struct api_ami_error *e =
        queue_exists ? api_ami_error_find(queue_errors, c->ami_message) : &no_such_queue;
    if (!e)
        e = &no_such_queue;
    api_respond_mapped(c->r, e, c->ami_message, c->action_id, c->context);
out:
    call_free(c);
}

/* QueuePause is in: the answer, or, for "Interface not found", one more
 * action to tell a missing queue from a missing member. */
static void pause_done(void *ud, const struct ami_result *res)
{
    struct queue_call *c = ud;
    const char *msg = res->response ? ami_msg_get(res->response, "Message") : NULL;
    if (res->status == AMI_OK && ami_msg_is(res->response, "Response", "Error") && msg &&
        !strcasecmp(msg, "Interface not found")) {
        struct ami_msg *m = queue_action("QueueSummary", c->queue);
        if (!m || !(c->ami_message = strdup(msg)) || !(c->action_id = strdup(res->action_id))) {
            ami_msg_free(m);
            respond_nomem(c->r);
            goto out;
        }
        if (api_submit(c->a, c->r, c->pool, m, pause_check_done, c) == 0)
            return;
        goto out;
    }
    if (api_resource_failed(c->r, res, queue_errors, c->context))
        goto out;
    json_object_set_new(c->answer, "message", api_json_text(msg));
    json_object_set_new(c->answer, "action_id", json_string(res->action_id));
    http_respond_json(c->r, 200, json_incref(c->answer));
out:
    call_free(c);
}

static const struct api_member pause_members[] = {
    {"paused", API_BOOLEAN, 1},
    {"reason", API_STRING, 0},
    {NULL, API_STRING, 0},
};

/* POST /v1/queues/{queue}/members/{interface}/pause: QueuePause in this
 * queue, pausing ({"paused": true, "reason": "lunch"}) or unpausing. */
void api_queue_member_pause(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *queue = path_queue(a, r, p);
    const char *iface = queue ? api_path_value(r, p, "interface") : NULL;
    struct ami_pool *pool = iface ? api_pool_for(a, r) : NULL;
    json_t *body = pool ? api_body_members(r, pause_members) : NULL;
    if (!body)
        return;
    struct ami_msg *m = NULL;
    struct queue_call *c = NULL;
    json_t *reason = json_object_get(body, "reason");
    if (refuse_lone_reason(r, body))
        goto out;
    m = member_action(a, r, "QueuePause", queue, iface);
    if (!m)
        goto out;
    if (ami_msg_add(m, "Paused",
                    json_is_true(json_object_get(body, "paused")) ? "true" : "false") ||
        (reason && api_msg_add_json(m, "Reason", reason))) {
        respond_nomem(r);
        goto out;
    }
    if (api_check_action(a, r, m, queue_fields))
        goto out;
    c = call_new(a, r, pool, queue);
    if (!c)
        goto out;
    c->context = member_context(queue, iface);
    c->answer = json_deep_copy(body);
    if (!c->answer || !c->context) {
        respond_nomem(r);
        goto out;
    }
    json_object_update(c->answer, c->context);
    if (api_submit(a, r, pool, m, pause_done, c) == 0)
        c = NULL;
    m = NULL;
out:
    if (c)
        call_free(c);
    ami_msg_free(m);
    json_decref(body);
}
