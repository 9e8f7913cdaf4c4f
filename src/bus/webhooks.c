#include "bus/webhooks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/webhook_http.h"
#include "bus/webhook_queue.h"
#include "bus/webhook_store.h"
#include "bus/webhook_sub.h"
#include "core/log.h"
#include "core/metrics.h"

#define SUB_ID_BYTES 8

/* A "ping" sent now, outside the queue. */
struct wh_test {
    struct wh_test *next;
    struct webhooks *w;
    struct wh_xfer x;
    char sub[WH_ID_MAX];
    char id[WH_DELIVERY_ID_LEN + 1];
    struct wh_conf c; /* a copy: the subscription may change meanwhile */
    char *body;
    webhooks_cb cb;
    void *ud;
};

/* An API change waiting for the store. */
struct wh_op {
    struct webhooks *w;
    enum { OP_CREATE, OP_PATCH, OP_DELETE } kind;
    struct wh_conf c;
    webhooks_cb cb;
    void *ud;
};

struct webhooks {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct bus_redis *redis;
    struct netlist_net *allow;
    size_t nallow;
    struct wh_http *http;
    struct wh_queues *queues;
    struct wh_store *store;
    struct wh_test *tests;
    int closing;
    int closes_pending; /* webhooks_close(): the parts still closing */
    void (*close_done)(void *);
    void *close_arg;
};

static void answer(webhooks_cb cb, void *ud, json_t *body)
{
    struct webhooks_result res = {.err = 0, .body = body};
    cb(ud, &res);
}

static void answer_error(webhooks_cb cb, void *ud, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void answer_error(webhooks_cb cb, void *ud, int err, const char *field, const char *fmt, ...)
{
    struct webhooks_result res = {.err = err};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.detail, sizeof(res.detail), fmt, ap);
    va_end(ap);
    snprintf(res.field, sizeof(res.field), "%s", field ? field : "");
    cb(ud, &res);
}

static void answer_oom(webhooks_cb cb, void *ud)
{
    answer_error(cb, ud, -ENOMEM, NULL, "out of memory");
}

static void answer_not_found(webhooks_cb cb, void *ud, const char *id)
{
    answer_error(cb, ud, -ENOENT, "id", "no webhook subscription has the id '%.64s'", id);
}

static void iso_time(long long ms, char *buf, size_t len)
{
    log_iso_ms((uint64_t)ms, buf, len);
}

/* --- changes: checked here, taken by the store, then made ------------------------ */

static void op_free(struct wh_op *op)
{
    wh_conf_free(&op->c);
    free(op);
}

/* The store took the change: make it here and answer. */
static void op_apply(struct wh_op *op)
{
    struct webhooks *w = op->w;
    struct wh_sub *s = wh_queues_find(w->queues, op->c.id);
    json_t *body = NULL;
    int ok = 1;
    switch (op->kind) {
    case OP_CREATE:
        body = wh_conf_json(&op->c, 1);
        if (s) {
            wh_sub_update(s, &op->c);
        } else if (!wh_sub_add(w->queues, &op->c, 0)) {
            json_decref(body);
            body = NULL;
        }
        ok = body != NULL;
        break;
    case OP_PATCH:
        body = wh_conf_json(&op->c, 0);
        if (s)
            wh_sub_update(s, &op->c);
        ok = body != NULL;
        break;
    case OP_DELETE:
        if (s)
            wh_sub_remove(s, 0);
        break;
    }
    if (!ok)
        answer_oom(op->cb, op->ud);
    else
        answer(op->cb, op->ud, body);
    op_free(op);
}

/* The store's word on a change (wh_store_done_fn). */
static void op_stored(void *ud, int err, const char *detail)
{
    struct wh_op *op = ud;
    if (!err && op->w->closing) {
        /* stored, but the queues here are gone: the next start has it */
        err = -ESHUTDOWN;
        detail = "the service is shutting down";
    }
    if (err) {
        answer_error(op->cb, op->ud, err, NULL, "%s", detail);
        op_free(op);
        return;
    }
    op_apply(op);
}

/* A receiver answered 410 (wh_disabled_fn): save the subscription disabled. */
static void sub_disabled(void *ud, const struct wh_conf *c)
{
    struct webhooks *w = ud;
    if (!c->is_static)
        wh_store_put(w->store, c, NULL);
}

static void invalid(webhooks_cb cb, void *ud, const struct wh_problem *pb)
{
    answer_error(cb, ud, -EINVAL, pb->field, "%s: %s", pb->field, pb->detail);
}

static struct wh_op *op_new(struct webhooks *w, int kind, webhooks_cb cb, void *ud)
{
    struct wh_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->w = w;
    op->kind = kind;
    op->cb = cb;
    op->ud = ud;
    return op;
}

void webhooks_create(struct webhooks *w, json_t *body, webhooks_cb cb, void *ud)
{
    size_t n = wh_queues_count(w->queues);
    if (n >= (size_t)w->cfg->webhook_max_subscriptions) {
        answer_error(cb, ud, -ENOSPC, NULL,
                     "%d subscriptions exist, the most allowed "
                     "(AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS)",
                     (int)n);
        return;
    }
    struct wh_op *op = op_new(w, OP_CREATE, cb, ud);
    struct wh_problem pb = {{0}, {0}};
    if (!op) {
        answer_oom(cb, ud);
        return;
    }
    int rc = wh_conf_apply(&op->c, body, WH_CREATE, w->allow, w->nallow, &pb);
    if (rc == 0 && !op->c.secret) {
        char secret[WH_SECRET_MAX + 1];
        if (wh_secret_generate(secret, sizeof(secret)) || !(op->c.secret = strdup(secret)))
            rc = -ENOMEM;
        explicit_bzero(secret, sizeof(secret));
    }
    char idhex[2 * SUB_ID_BYTES + 1];
    if (rc == 0 && wh_random_hex(idhex, SUB_ID_BYTES))
        rc = -ENOMEM;
    if (rc) {
        if (rc == -1)
            invalid(cb, ud, &pb);
        else
            answer_oom(cb, ud);
        op_free(op);
        return;
    }
    snprintf(op->c.id, sizeof(op->c.id), "wh_%s", idhex);
    log_info("webhook subscription created", "{s:s,s:s}", "webhook", op->c.id, "url", op->c.url);
    wh_store_put(w->store, &op->c, op);
}

/* The subscription an API change may touch: not found, or static. */
static struct wh_sub *sub_for_change(struct webhooks *w, const char *id, webhooks_cb cb, void *ud)
{
    struct wh_sub *s = wh_queues_find(w->queues, id);
    if (!s) {
        answer_not_found(cb, ud, id);
        return NULL;
    }
    if (wh_sub_conf(s)->is_static) {
        answer_error(cb, ud, -EROFS, "id", "'%.64s' is defined in the config file; change it there",
                     id);
        return NULL;
    }
    return s;
}

void webhooks_patch(struct webhooks *w, const char *id, json_t *body, webhooks_cb cb, void *ud)
{
    struct wh_sub *s = sub_for_change(w, id, cb, ud);
    if (!s)
        return;
    struct wh_op *op = op_new(w, OP_PATCH, cb, ud);
    struct wh_problem pb = {{0}, {0}};
    if (!op) {
        answer_oom(cb, ud);
        return;
    }
    const struct wh_conf *cur = wh_sub_conf(s);
    int rc = wh_conf_copy(&op->c, cur);
    if (rc == 0)
        rc = wh_conf_patch(&op->c, body, w->cfg->webhook_secret_grace_s, (long long)time(NULL),
                           w->allow, w->nallow, &pb);
    if (rc) {
        if (rc == -1)
            invalid(cb, ud, &pb);
        else
            answer_oom(cb, ud);
        op_free(op);
        return;
    }
    int rotated = strcmp(op->c.secret, cur->secret) != 0;
    log_info("webhook subscription changed", "{s:s,s:b,s:I}", "webhook", id, "secret_rotated",
             rotated, "previous_secrets", (json_int_t)op->c.nprev);
    wh_store_put(w->store, &op->c, op);
}

void webhooks_delete(struct webhooks *w, const char *id, webhooks_cb cb, void *ud)
{
    if (!sub_for_change(w, id, cb, ud))
        return;
    struct wh_op *op = op_new(w, OP_DELETE, cb, ud);
    if (!op) {
        answer_oom(cb, ud);
        return;
    }
    snprintf(op->c.id, sizeof(op->c.id), "%s", id);
    log_info("webhook subscription deleted", "{s:s}", "webhook", id);
    wh_store_del(w->store, op->c.id, op);
}

/* --- test deliveries ---------------------------------------------------------------- */

static void test_unlink(struct webhooks *w, struct wh_test *t)
{
    for (struct wh_test **pp = &w->tests; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
}

static void test_free(struct wh_test *t)
{
    wh_xfer_cleanup(&t->x);
    wh_conf_free(&t->c);
    free(t->body);
    free(t);
}

static void test_done(struct wh_xfer *x, CURLcode rc, long status)
{
    struct wh_test *t = x->owner;
    struct webhooks *w = t->w;
    char err[192];
    double latency = wh_xfer_seconds(x);
    const char *outcome = wh_xfer_outcome(x, rc, status, err, sizeof(err));
    int ok = !strcmp(outcome, "2xx");
    test_unlink(w, t);
    metrics_inc(METRIC_WEBHOOK_ATTEMPTS, outcome, NULL, 1);
    metrics_observe(METRIC_WEBHOOK_LATENCY, NULL, latency);
    struct wh_sub *s = wh_queues_find(w->queues, t->sub);
    if (s)
        wh_sub_record(s, t->id, "ping", 1, rc == CURLE_OK ? status : 0, latency,
                      ok ? "delivered" : "failed", ok ? NULL : err);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:o,s:f,s:o}", "delivery_id", t->id, "event", "ping", "result",
                  ok ? "delivered" : "failed", "status",
                  rc == CURLE_OK && status ? json_integer(status) : json_null(), "latency_ms",
                  latency * 1000.0, "error", ok ? json_null() : json_string(err));
    if (o)
        answer(t->cb, t->ud, o);
    else
        answer_oom(t->cb, t->ud);
    test_free(t);
}

void webhooks_test(struct webhooks *w, const char *id, webhooks_cb cb, void *ud)
{
    struct wh_sub *s = wh_queues_find(w->queues, id);
    if (!s) {
        answer_not_found(cb, ud, id);
        return;
    }
    if (w->closing) {
        answer_error(cb, ud, -ESHUTDOWN, NULL, "the service is shutting down");
        return;
    }
    struct wh_test *t = calloc(1, sizeof(*t));
    char when[40];
    iso_time((long long)log_wall_ms(), when, sizeof(when));
    json_t *o = json_pack("{s:s,s:s,s:s}", "event", "ping", "webhook", id, "time", when);
    if (!t || !o || wh_xfer_init(w->http, &t->x, t, test_done) ||
        wh_random_hex(t->id, WH_DELIVERY_ID_BYTES) || wh_conf_copy(&t->c, wh_sub_conf(s)) ||
        !(t->body = json_dumps(o, JSON_COMPACT))) {
        json_decref(o);
        if (t)
            test_free(t);
        answer_oom(cb, ud);
        return;
    }
    json_decref(o);
    t->w = w;
    snprintf(t->sub, sizeof(t->sub), "%s", id);
    t->cb = cb;
    t->ud = ud;
    if (wh_xfer_start(&t->x, &t->c, "ping", t->id, 1, t->body, strlen(t->body))) {
        test_free(t);
        answer_oom(cb, ud);
        return;
    }
    t->next = w->tests;
    w->tests = t;
}

static void abort_tests(struct webhooks *w)
{
    while (w->tests) {
        struct wh_test *t = w->tests;
        w->tests = t->next;
        wh_xfer_cancel(&t->x);
        answer_error(t->cb, t->ud, -ESHUTDOWN, NULL,
                     "the service is shutting down; the test delivery was not completed");
        test_free(t);
    }
}

/* --- reading ------------------------------------------------------------------------ */

json_t *webhooks_list_json(struct webhooks *w)
{
    json_t *arr = json_array();
    for (struct wh_sub *s = wh_queues_first(w->queues); arr && s; s = wh_sub_next(s))
        if (json_array_append_new(arr, wh_conf_json(wh_sub_conf(s), 0))) {
            json_decref(arr);
            return NULL;
        }
    return arr ? json_pack("{s:o}", "webhooks", arr) : NULL;
}

json_t *webhooks_get_json(struct webhooks *w, const char *id, int *err)
{
    struct wh_sub *s = wh_queues_find(w->queues, id);
    if (!s) {
        *err = -ENOENT;
        return NULL;
    }
    json_t *o = wh_conf_json(wh_sub_conf(s), 0);
    json_t *st = wh_sub_stats_json(s);
    if (!o || !st || json_object_set_new(o, "stats", st)) {
        json_decref(o);
        *err = -ENOMEM;
        return NULL;
    }
    return o;
}

json_t *webhooks_deliveries_json(struct webhooks *w, const char *id, int *err)
{
    struct wh_sub *s = wh_queues_find(w->queues, id);
    if (!s) {
        *err = -ENOENT;
        return NULL;
    }
    json_t *arr = wh_sub_log_json(s);
    json_t *out = arr ? json_pack("{s:s,s:o}", "webhook", id, "deliveries", arr) : NULL;
    if (!out)
        *err = -ENOMEM;
    return out;
}

void webhooks_stats(const struct webhooks *w, struct webhooks_stats *st)
{
    struct wh_queues_stats qs;
    wh_queues_stats(w->queues, &qs);
    memset(st, 0, sizeof(*st));
    st->subscriptions = qs.subscriptions;
    st->disabled = qs.disabled;
    st->queued = qs.queued;
    st->inflight = qs.sending;
    for (const struct wh_test *t = w->tests; t; t = t->next)
        st->inflight++;
}

/* --- the event bus, Redis, the lease ----------------------------------------------- */

void webhooks_sink(void *ud, struct bus_event *e)
{
    struct webhooks *w = ud;
    if (w->closing || e->remote)
        return;
    wh_queues_event(w->queues, e);
}

void webhooks_redis_state(void *ud, int up)
{
    struct webhooks *w = ud;
    if (!up || w->closing)
        return;
    wh_store_poll(w->store);
    wh_queues_redis_up(w->queues);
}

void webhooks_set_lease(struct webhooks *w, struct bus_lease *l)
{
    wh_queues_set_lease(w->queues, l);
}

void webhooks_leader(void *ud, enum bus_lease_change ch)
{
    struct webhooks *w = ud;
    if (w->closing)
        return;
    wh_queues_leader(w->queues, ch);
}

/* --- life -------------------------------------------------------------------------- */

struct webhooks *webhooks_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                              char *err, size_t errlen)
{
    struct webhooks *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->loop = loop;
    w->cfg = c;
    w->redis = redis;
    char nerr[200];
    if (c->webhook_allow_nets &&
        netlist_parse(c->webhook_allow_nets, &w->allow, &w->nallow, nerr, sizeof(nerr))) {
        snprintf(err, errlen, "AMIBRIDGE_WEBHOOK_ALLOW_NETS: %s", nerr);
        free(w);
        return NULL;
    }
    w->http = wh_http_new(loop, w->allow, w->nallow, c->webhook_timeout_ms);
    if (!w->http) {
        snprintf(err, errlen, "out of memory");
        free(w->allow);
        free(w);
        return NULL;
    }
    w->queues = wh_queues_new(loop, c, redis, w->http, sub_disabled, w);
    w->store =
        w->queues ? wh_store_new(loop, c, redis, w->queues, w->allow, w->nallow, op_stored) : NULL;
    if (!w->store) {
        snprintf(err, errlen, "out of memory");
        if (w->queues)
            wh_queues_close(w->queues, NULL, NULL);
        wh_http_close(w->http, NULL, NULL);
        uv_run(loop, UV_RUN_NOWAIT); /* it goes before the allow nets it borrows */
        free(w->allow);
        free(w);
        return NULL;
    }
    if (wh_store_open(w->store, err, errlen)) {
        webhooks_close(w, NULL, NULL);
        return NULL;
    }
    return w;
}

void webhooks_quiesce(struct webhooks *w)
{
    abort_tests(w);
}

/* One part has closed: the last one frees (the allow nets go last, the
 * HTTP part borrows them). */
static void webhooks_unhold(void *arg)
{
    struct webhooks *w = arg;
    if (--w->closes_pending > 0)
        return;
    void (*done)(void *) = w->close_done;
    void *done_arg = w->close_arg;
    free(w->allow);
    free(w);
    if (done)
        done(done_arg);
}

void webhooks_close(struct webhooks *w, void (*done)(void *arg), void *arg)
{
    w->closing = 1;
    w->close_done = done;
    w->close_arg = arg;
    abort_tests(w);
    w->closes_pending = 4; /* the three parts, and this function */
    wh_queues_close(w->queues, webhooks_unhold, w);
    wh_http_close(w->http, webhooks_unhold, w);
    wh_store_close(w->store, webhooks_unhold, w);
    webhooks_unhold(w);
}
