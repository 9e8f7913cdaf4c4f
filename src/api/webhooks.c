/* /v1/webhooks: webhook subscriptions (scope admin). The work is done by
 * bus/webhooks, which fails with negative errno values; this file alone
 * says what they are in HTTP (status, problem type and title). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "bus/webhooks.h"

/* What each failure of bus/webhooks is in HTTP. A 503 carries Retry-After. */
static const struct {
    int err;
    int status;
    const char *slug;
    const char *title;
} failures[] = {
    {-EINVAL, 400, "invalid-field", "Invalid field"},
    {-ENOENT, 404, "webhook-not-found", "No such webhook subscription"},
    {-EROFS, 409, "webhook-static", "Static webhook subscription"},
    {-ENOSPC, 409, "webhook-limit", "Too many webhook subscriptions"},
    {-EAGAIN, 503, "store-unavailable", "Webhook store unavailable"},
    {-ESHUTDOWN, 503, "shutting-down", "Shutting down"},
    {-ENOMEM, 500, "internal", "Out of memory"},
};

/* Answer a failed operation (res->err < 0). */
static void respond_failure(struct http_req *r, const struct webhooks_result *res)
{
    size_t n = sizeof(failures) / sizeof(failures[0]), i = 0;
    while (i < n - 1 && failures[i].err != res->err)
        i++; /* anything unknown is answered as the last one, a 500 */
    json_t *extra = res->field[0] ? json_pack("{s:s}", "field", res->field) : NULL;
    if (failures[i].status == 503)
        http_req_add_header(r, "Retry-After", API_RETRY_AFTER_UNAVAILABLE);
    http_respond_problem(r, failures[i].status, failures[i].slug, failures[i].title, res->detail,
                         extra);
}

/* The result of a change or a test, for the request waiting in `ud`:
 * 200 with the body, 204 when there is none (a delete). */
static void respond(void *ud, struct webhooks_result *res)
{
    struct http_req *r = ud;
    if (res->err) {
        respond_failure(r, res);
        return;
    }
    if (!res->body) {
        http_respond(r, 204, NULL, NULL, 0);
        return;
    }
    http_respond_json(r, 200, res->body);
}

/* The result of a create: 201 with Location. */
static void respond_created(void *ud, struct webhooks_result *res)
{
    struct http_req *r = ud;
    if (res->err) {
        respond_failure(r, res);
        return;
    }
    const char *id = json_string_value(json_object_get(res->body, "id"));
    char loc[96];
    snprintf(loc, sizeof(loc), "/v1/webhooks/%s", id ? id : "");
    http_req_add_header(r, "Location", loc);
    http_respond_json(r, 201, res->body);
}

static int unavailable(struct api *a, struct http_req *r)
{
    if (a->webhooks)
        return 0;
    http_respond_problem(r, 503, "webhooks-unavailable", "Webhooks unavailable",
                         "webhooks are not running in this process", NULL);
    return 1;
}

static void not_found(struct http_req *r, const char *id, int err)
{
    if (err == -ENOENT) {
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
    webhooks_create(a->webhooks, body, respond_created, r);
    json_decref(body);
}

void api_webhook_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    const char *id = api_path_value(r, p, "id");
    if (!id || unavailable(a, r))
        return;
    int err = 0;
    json_t *o = webhooks_get_json(a->webhooks, id, &err);
    if (!o) {
        not_found(r, id, err);
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
    int err = 0;
    json_t *o = webhooks_deliveries_json(a->webhooks, id, &err);
    if (!o) {
        not_found(r, id, err);
        return;
    }
    http_respond_json(r, 200, o);
}
