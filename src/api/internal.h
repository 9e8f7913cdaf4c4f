/* api/internal: what the route handlers share. Not for use outside src/api.
 *
 * One convention for helpers that may answer the request themselves (a
 * refusal, an error): they return 1 when they answered (the handler stops)
 * and 0 when the handler goes on; helpers that return a pointer return
 * NULL when they answered. */
#ifndef AMIBRIDGE_API_INTERNAL_H
#define AMIBRIDGE_API_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "ami/pool.h"
#include "api/api.h"
#include "admit/guard.h"
#include "api/problem.h"
#include "api/request.h"
#include "http/auth.h"
#include "http/router.h"

struct guard;
struct idem;
struct bus_redis;
struct bus;
struct bus_event;
struct bus_publisher;
struct sse_hub;
struct webhooks;
struct lockout;
struct sguard;

#define API_RETRY_AFTER_UNAVAILABLE "2"
#define API_RETRY_AFTER_BUSY        "1"
#define API_JSON_MAX_DEPTH          32

struct api {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct ami_pool *const *pools;
    size_t npools;
    struct http_auth *auth;
    struct http_router *router;      /* the route table of routes.c, read once */
    struct guard *guard;             /* originate rate and in-flight limits */
    struct sguard *sguard;           /* the same, shared by replicas in Redis (NULL without) */
    struct idem *idem;               /* Idempotency-Key store */
    struct lockout *lockout;         /* wrong API keys per client address */
    struct bus_redis *redis;         /* NULL without AMIBRIDGE_REDIS_URL */
    struct bus *bus;                 /* the event stream */
    struct bus_publisher *publisher; /* NULL without Redis */
    struct sse_hub *sse;
    struct webhooks *webhooks; /* NULL when not running (tests of the api alone) */
    struct bus_lease *lease;   /* NULL without Redis */
    struct calls *calls;       /* the call model (NULL: not running) */
    struct sse_hub *call_sse;  /* GET /v1/calls/events, fed by the call bus */
    uint64_t started_ms;
    int draining;
    int closes_pending; /* api_close(): the parts still closing */
    void (*close_done)(void *);
    void *close_arg;
};

/* Route handlers. */
void api_healthz(struct api *a, struct http_req *r, const struct http_params *p);
void api_readyz(struct api *a, struct http_req *r, const struct http_params *p);
void api_openapi(struct api *a, struct http_req *r, const struct http_params *p);
void api_actions_post(struct api *a, struct http_req *r, const struct http_params *p);
/* events.c: GET /v1/events and the SSE hub (a bus sink) */
void api_events_get(struct api *a, struct http_req *r, const struct http_params *p);
struct sse_hub *api_sse_new(struct api *a, struct bus *bus);
/* GET /v1/calls/events (the call bus's hub, a->call_sse) */
void api_call_events_get(struct api *a, struct http_req *r, const struct http_params *p);
/* Teardown (docs/layout.md): streams still open are the HTTP server's to
 * end; the hub forgets them, closes its heartbeat timer and goes. */
void api_sse_close(struct sse_hub *h, void (*done)(void *arg), void *arg);
void api_sse_sink(void *hub, struct bus_event *e);
void api_sse_end_all(struct sse_hub *h, const char *why);
size_t api_sse_clients(const struct sse_hub *h);
/* metrics.c: GET /metrics */
void api_metrics_get(struct api *a, struct http_req *r, const struct http_params *p);
/* calls.c */
void api_calls_post(struct api *a, struct http_req *r, const struct http_params *p);
/* calls_hangup.c: DELETE /v1/calls/{id} */
void api_call_hangup(struct api *a, struct http_req *r, const struct http_params *p);
/* calls_view.c */
void api_calls_live(struct api *a, struct http_req *r, const struct http_params *p);
void api_call_stats(struct api *a, struct http_req *r, const struct http_params *p);
void api_call_get(struct api *a, struct http_req *r, const struct http_params *p);
/* channels.c */
void api_channels_list(struct api *a, struct http_req *r, const struct http_params *p);
void api_channel_get(struct api *a, struct http_req *r, const struct http_params *p);
void api_channel_hangup(struct api *a, struct http_req *r, const struct http_params *p);
void api_channel_redirect(struct api *a, struct http_req *r, const struct http_params *p);
void api_channel_blind_transfer(struct api *a, struct http_req *r, const struct http_params *p);
void api_channel_setvar(struct api *a, struct http_req *r, const struct http_params *p);
void api_channel_getvar(struct api *a, struct http_req *r, const struct http_params *p);
/* queues.c */
void api_queues_list(struct api *a, struct http_req *r, const struct http_params *p);
void api_queue_get(struct api *a, struct http_req *r, const struct http_params *p);
void api_queue_member_add(struct api *a, struct http_req *r, const struct http_params *p);
void api_queue_member_remove(struct api *a, struct http_req *r, const struct http_params *p);
void api_queue_member_pause(struct api *a, struct http_req *r, const struct http_params *p);

/* dashboard.c: the page and its two assets */
void api_dashboard_page(struct api *a, struct http_req *r, const struct http_params *p);
void api_dashboard_js(struct api *a, struct http_req *r, const struct http_params *p);
void api_dashboard_css(struct api *a, struct http_req *r, const struct http_params *p);
/* webhooks.c */
void api_webhooks_list(struct api *a, struct http_req *r, const struct http_params *p);
void api_webhooks_create(struct api *a, struct http_req *r, const struct http_params *p);
void api_webhook_get(struct api *a, struct http_req *r, const struct http_params *p);
void api_webhook_patch(struct api *a, struct http_req *r, const struct http_params *p);
void api_webhook_delete(struct api *a, struct http_req *r, const struct http_params *p);
void api_webhook_test(struct api *a, struct http_req *r, const struct http_params *p);
void api_webhook_deliveries(struct api *a, struct http_req *r, const struct http_params *p);

/* --- convert.c: AMI replies as the JSON of the channel and queue routes ---------------
 * Pure: every function returns a new reference (NULL only when out of memory)
 * and borrows its arguments. */

/* An AMI value as a JSON string (bytes that are not UTF-8 repaired), or
 * null when it is absent or empty. */
json_t *api_json_text(const char *v);
/* Seconds of a CoreShowChannel Duration "HH:MM:SS" (more hour digits are
 * fine); -1 when the text is anything else. */
long api_duration_seconds(const char *hms);
/* The API's name of a channel state: ChannelStateDesc lower-cased, blanks and
 * dashes as '_' ("Dialing Offhook" -> "dialing_offhook") when it is one of
 * ast_state2str()'s, else the name of the ChannelState code, else
 * "unknown". A static string. */
const char *api_channel_state_name(const char *desc, const char *code);
/* The name of a queue member Status (enum ast_device_state, 0 to 8:
 * unknown, not_inuse, inuse, busy, invalid, unavailable, ringing, ringinuse,
 * onhold); "unknown" out of range. A static string. */
const char *api_member_state_name(long code);
/* A CoreShowChannel event as a Channel object. */
json_t *api_channel_json(const struct ami_msg *ev);
/* A QueueMember event as a QueueMember object, a QueueEntry as a QueueCaller. */
json_t *api_queue_member_json(const struct ami_msg *ev);
json_t *api_queue_caller_json(const struct ami_msg *ev);
/* The events of a QueueStatus list as an array of Queue objects, in list
 * order, with their members and callers; the QueueSummary figures are null
 * until api_queues_add_summary() fills them from a QueueSummary list. */
json_t *api_queues_json(struct ami_msg *const *status, size_t nstatus);
void api_queues_add_summary(json_t *queues, struct ami_msg *const *summary, size_t nsummary);

/* --- resource.c: what the channel and queue handlers share ------------------------- */

#define API_NO_CONTENT 204

/* The API's name of an AMI header, for problems about a built action. */
struct api_field {
    const char *ami; /* NULL ends a table */
    const char *api;
};
/* The API's name for an AMI header (itself when `fields` has none). */
const char *api_field_name(const struct api_field *fields, const char *ami);
/* The rules that look inside an action, for every route (admit/policy):
 * values as Asterisk reads them (400 invalid-field), the service's deny
 * rules (403 action-denied) and the key's dial policy (403 dial-policy),
 * naming the field as `fields` spells it. 1 when it answered (refused). */
int api_refuse_content(struct api *a, struct http_req *r, const struct ami_msg *m,
                       const struct api_field *fields);
/* Before a built action is sent: ami_action_validate() (CR, LF, NUL, line
 * length: 400) and api_refuse_content(), naming the API field. 1 when it
 * answered (refused). */
int api_check_action(struct api *a, struct http_req *r, const struct ami_msg *m,
                     const struct api_field *fields);

/* The members a JSON body may have. */
enum api_type { API_STRING, API_INTEGER, API_BOOLEAN };
struct api_member {
    const char *name; /* NULL ends a table */
    enum api_type type;
    int required;
};
/* The body as a JSON object whose members are all in `spec`, of their type,
 * with the required ones present. Answers 400 naming the member and returns
 * NULL otherwise. New reference. */
json_t *api_body_members(struct http_req *r, const struct api_member *spec);
/* A string member of `body`, when present, must not be empty: 1 when it
 * answered 400 naming it. */
int api_refuse_empty(struct http_req *r, const json_t *body, const char *name);
/* {key: value} for problems and answers (value as api_json_text()). New reference. */
json_t *api_context(const char *key, const char *value);
/* Append a JSON string as an AMI header, NUL bytes included (so that
 * api_check_action() can refuse them). 0 or -ENOMEM. */
int api_msg_add_json(struct ami_msg *m, const char *key, const json_t *str);
/* A captured path segment that must not be empty (borrowed from `p`), or
 * NULL after answering 400 naming it. */
const char *api_path_value(struct http_req *r, const struct http_params *p, const char *name);
/* A channel name may not start with '/' (Hangup would read it as a regular
 * expression): 1 when it answered 400 naming `field`. */
int api_refuse_channel_name(struct http_req *r, const char *field, const char *name);

/* ami_pool_submit() that answers a refused submit itself: 0 when `cb` will
 * fire, 1 when it answered (cb never fires; the action is freed either way). */
int api_submit(struct api *a, struct http_req *r, struct ami_pool *pool, struct ami_msg *m,
               ami_result_cb cb, void *ud);
/* Send a change (Hangup, Redirect, QueueAdd, ...) whose reply is the
 * answer: on success `status` (API_NO_CONTENT: no body) with `answer` plus
 * the AMI `message` and the `action_id`; on an AMI error a rule of `errors`
 * with `context`, or the generic mapping. Takes `m`, `answer` and `context`
 * (both may be NULL) in every case and answers every failure itself. */
void api_change_submit(struct api *a, struct http_req *r, struct ami_pool *pool, struct ami_msg *m,
                       int status, json_t *answer, const struct api_ami_error *errors,
                       json_t *context);

/* RateLimit-Limit, -Remaining and -Reset from the originate guard. */
void api_rate_headers(struct http_req *r, const struct guard_info *g);

#endif
