/* DELETE /v1/calls/{id}: hang up every leg of a call that is still up.
 *
 * The call is the call model's (this process's, or with Redis the copy
 * another replica keeps); each leg still up gets its own AMI Hangup,
 * judged by the same guards as DELETE /v1/channels/{channel}, and the
 * answer comes once every one of them is answered: the channels hung up
 * and those that were gone already. The call.ended event follows from the
 * PBX as for any hang-up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "core/log.h"
#include "call/calls.h"

#define CALL_HANGUP_LEGS_MAX 64

static const struct api_field leg_fields[] = {
    {"Channel", "legs.channel"},
    {NULL, NULL},
};

struct hangup {
    struct api *a;
    struct http_req *r;
    char *id;
    size_t pending;
    json_t *done, *gone; /* channel names */
    int failed;          /* a transport failure was answered already */
};

static void hangup_free(struct hangup *h)
{
    json_decref(h->done);
    json_decref(h->gone);
    free(h->id);
    free(h);
}

static void hangup_answer(struct hangup *h)
{
    if (!h->failed)
        http_respond_json(
            h->r, 200,
            json_pack("{s:s,s:O,s:O}", "id", h->id, "hung_up", h->done, "gone", h->gone));
    hangup_free(h);
}

struct leg_req {
    struct hangup *h;
    char *channel;
};

static void leg_done(void *ud, const struct ami_result *res)
{
    struct leg_req *lr = ud;
    struct hangup *h = lr->h;
    if (res->status == AMI_OK && res->response &&
        ami_msg_is(res->response, "Response", "Success")) {
        json_array_append_new(h->done, json_string(lr->channel));
    } else if (res->status == AMI_OK) {
        /* Error: No such channel (it went while we asked) */
        json_array_append_new(h->gone, json_string(lr->channel));
    } else if (!h->failed) {
        h->failed = 1;
        api_result_failed(h->r, res);
    }
    free(lr->channel);
    free(lr);
    if (--h->pending == 0)
        hangup_answer(h);
}

static struct ami_pool *pool_named(struct api *a, const char *name)
{
    for (size_t i = 0; name && i < a->npools; i++)
        if (!strcmp(ami_pool_name(a->pools[i]), name))
            return a->pools[i];
    return NULL;
}

/* The call is known: one Hangup per leg still up. */
static void hang_up(struct api *a, struct http_req *r, json_t *call)
{
    const char *id = json_string_value(json_object_get(call, "id"));
    const char *state = json_string_value(json_object_get(call, "state"));
    if (!id || (state && !strcmp(state, "ended"))) {
        http_respond_problem(r, 409, "call-ended", "Call ended", "the call has ended already",
                             api_context("call_id", id ? id : ""));
        return;
    }
    struct ami_pool *pool = pool_named(a, json_string_value(json_object_get(call, "server")));
    if (!pool) {
        http_respond_problem(r, 404, "no-such-call", "No such call",
                             "the call's AMI server is not configured here", NULL);
        return;
    }
    json_t *legs = json_object_get(call, "legs");
    struct ami_msg *msgs[CALL_HANGUP_LEGS_MAX];
    const char *names[CALL_HANGUP_LEGS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(legs) && n < CALL_HANGUP_LEGS_MAX; i++) {
        json_t *l = json_array_get(legs, i);
        const char *ch = json_string_value(json_object_get(l, "channel"));
        const char *st = json_string_value(json_object_get(l, "state"));
        if (!ch || (st && !strcmp(st, "Hungup")))
            continue;
        /* as on DELETE /v1/channels/{channel}: a name Hangup would read as a
         * regular expression over every channel is refused (a forged copy) */
        if (api_refuse_channel_name(r, "legs.channel", ch)) {
            for (size_t k = 0; k < n; k++)
                ami_msg_free(msgs[k]);
            return;
        }
        struct ami_msg *m = ami_msg_new();
        if (!m || ami_msg_add(m, "Action", "Hangup") || ami_msg_add(m, "Channel", ch)) {
            ami_msg_free(m);
            for (size_t k = 0; k < n; k++)
                ami_msg_free(msgs[k]);
            http_respond_oom(r);
            return;
        }
        /* the guards of DELETE /v1/channels/{channel}, for every leg first */
        if (api_check_action(a, r, m, leg_fields)) {
            ami_msg_free(m);
            for (size_t k = 0; k < n; k++)
                ami_msg_free(msgs[k]);
            return;
        }
        names[n] = ch;
        msgs[n++] = m;
    }
    struct hangup *h = calloc(1, sizeof(*h));
    if (!h || !(h->id = strdup(id)) || !(h->done = json_array()) || !(h->gone = json_array())) {
        if (h)
            hangup_free(h);
        for (size_t k = 0; k < n; k++)
            ami_msg_free(msgs[k]);
        http_respond_oom(r);
        return;
    }
    h->a = a;
    h->r = r;
    h->pending = 1; /* held until every leg is sent */
    for (size_t k = 0; k < n; k++) {
        struct leg_req *lr = calloc(1, sizeof(*lr));
        if (!lr || !(lr->channel = strdup(names[k]))) {
            free(lr);
            ami_msg_free(msgs[k]);
            continue;
        }
        lr->h = h;
        struct ami_error err;
        struct ami_submit_opts opts = {.err = &err};
        h->pending++;
        int rc = ami_pool_submit(pool, msgs[k], &opts, leg_done, lr, NULL);
        if (rc < 0) {
            h->pending--;
            free(lr->channel);
            free(lr);
            if (!h->failed) {
                h->failed = 1;
                api_submit_failed(a, r, pool, rc, &err);
            }
            for (size_t j = k + 1; j < n; j++)
                ami_msg_free(msgs[j]);
            break;
        }
    }
    if (--h->pending == 0)
        hangup_answer(h);
}

static void on_remote_call(void *ud, json_t *call)
{
    struct hangup *tmp = ud;
    struct api *a = tmp->a;
    struct http_req *r = tmp->r;
    free(tmp);
    if (!call) {
        http_respond_problem(r, 404, "no-such-call", "No such call", "no live call has this id",
                             NULL);
        return;
    }
    hang_up(a, r, call);
}

void api_call_hangup(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id)
        return;
    json_t *call = a->calls ? calls_get(a->calls, id, log_wall_ms()) : NULL;
    if (call) {
        hang_up(a, r, call);
        json_decref(call);
        return;
    }
    /* another replica's call: its copy in Redis */
    struct hangup *tmp = calloc(1, sizeof(*tmp));
    if (tmp) {
        tmp->a = a;
        tmp->r = r;
        if (a->calls && calls_get_remote(a->calls, id, on_remote_call, tmp) == 0)
            return;
        free(tmp);
    }
    http_respond_problem(r, 404, "no-such-call", "No such call", "no live call has this id", NULL);
}
