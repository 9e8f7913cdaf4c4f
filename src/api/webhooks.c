/* /v1/webhooks: webhook subscriptions (scope admin). The work is done by
 * bus/webhooks; this file turns its answers into HTTP. */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "bus/webhooks.h"

/* An answer of bus/webhooks, for the request waiting in `ud`. */
static void respond(void *ud, struct webhooks_answer *a)
{
    struct http_req *r = ud;
    if (a->slug) {
        json_t *extra = a->field[0] ? json_pack("{s:s}", "field", a->field) : NULL;
        if (a->status == 503)
            http_req_add_header(r, "Retry-After", API_RETRY_AFTER_UNAVAILABLE);
        http_respond_problem(r, a->status, a->slug, a->title, a->detail, extra);
        return;
    }
    if (a->status == 204) {
        json_decref(a->body);
        http_respond(r, 204, NULL, NULL, 0);
        return;
    }
    if (a->status == 201) {
        const char *id = json_string_value(json_object_get(a->body, "id"));
        char loc[96];
        snprintf(loc, sizeof(loc), "/v1/webhooks/%s", id ? id : "");
        http_req_add_header(r, "Location", loc);
    }
    http_respond_json(r, a->status, a->body);
}

static int unavailable(struct api *a, struct http_req *r)
{
    if (a->webhooks)
        return 0;
    http_respond_problem(r, 503, "webhooks-unavailable", "Webhooks unavailable",
                         "webhooks are not running in this process", NULL);
    return 1;
}

static void not_found(struct http_req *r, const char *id, int status)
{
    if (status == 404) {
        char detail[128];
        snprintf(detail, sizeof(detail), "no webhook subscription has the id '%.64s'", id);
        http_respond_problem(r, 404, "webhook-not-found", "No such webhook subscription", detail,
                             json_pack("{s:s}", "field", "id"));
        return;
    }
    http_respond_oom(r);
}

void api_webhooks_list(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    if (unavailable(a, r))
        return;
    json_t *o = webhooks_list_json(a->webhooks);
    if (!o) {
        http_respond_oom(r);
        return;
    }
    http_respond_json(r, 200, o);
}

void api_webhooks_create(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    if (unavailable(a, r))
        return;
    json_t *body = api_body_object(r);
    if (!body)
        return;
    webhooks_create(a->webhooks, body, respond, r);
    json_decref(body);
}

void api_webhook_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id || unavailable(a, r))
        return;
    int status = 0;
    json_t *o = webhooks_get_json(a->webhooks, id, &status);
    if (!o) {
        not_found(r, id, status);
        return;
    }
    http_respond_json(r, 200, o);
}

void api_webhook_patch(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id || unavailable(a, r))
        return;
    json_t *body = api_body_object(r);
    if (!body)
        return;
    webhooks_patch(a->webhooks, id, body, respond, r);
    json_decref(body);
}

void api_webhook_delete(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id || unavailable(a, r))
        return;
    webhooks_delete(a->webhooks, id, respond, r);
}

void api_webhook_test(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id || unavailable(a, r))
        return;
    webhooks_test(a->webhooks, id, respond, r);
}

void api_webhook_deliveries(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id || unavailable(a, r))
        return;
    int status = 0;
    json_t *o = webhooks_deliveries_json(a->webhooks, id, &status);
    if (!o) {
        not_found(r, id, status);
        return;
    }
    http_respond_json(r, 200, o);
}
