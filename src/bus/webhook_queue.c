#include "bus/webhook_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/metrics.h"

struct wh_delivery {
    struct wh_delivery *next;
    char id[WH_DELIVERY_ID_LEN + 1];
    char event[BUS_EVENT_NAME_MAX];
    char *body;
    size_t len;
    long long created_ms; /* wall clock, for the max age */
    int attempts;
    int persisting; /* RPUSH sent, not acknowledged: no attempt yet */
    char *stored;   /* the entry in the Redis list (for LREM), NULL when not there */
};

struct wh_record {
    char delivery[WH_DELIVERY_ID_LEN + 1];
    char event[BUS_EVENT_NAME_MAX];
    int attempt;
    long long at_ms;
    long status;
    double latency;
    const char *result;
    char error[192];
};

struct wh_sub {
    struct wh_sub *next;
    struct wh_queues *q;
    struct wh_conf c;
    struct wh_delivery *head, *tail;
    size_t depth;
    int loading;                /* the Redis list is being read back */
    int loaded;                 /* ... and has been (or there was nothing to read) */
    int sending;                /* the head's attempt is in flight */
    int waiting;                /* the retry timer is armed */
    int gone;                   /* removed; freed when nothing refers to it any more */
    int timer_open;             /* the timer handle is initialised and not closed */
    int pending_redis;          /* commands whose callbacks name this subscription */
    int skip_acks;              /* RPUSH acknowledgements of deliveries already dropped */
    struct wh_delivery *pfirst; /* the oldest delivery whose RPUSH is not acknowledged */
    uv_timer_t timer;
    struct wh_xfer x;
    struct wh_record log[WEBHOOKS_LOG_MAX];
    size_t nlog, logpos;
    uint64_t delivered, failed, dropped;
    uint64_t drop_logged;
};

struct wh_queues {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct bus_redis *redis;
    struct wh_http *http;
    wh_disabled_fn on_disabled;
    void *ud;
    struct wh_sub *subs;
    int closing;
    int nsubs; /* not freed yet, listed or removed (and waiting for Redis) */
    void (*close_done)(void *);
    void *close_arg;
    uint64_t last_unpersisted_log;
    struct bus_lease *lease; /* replicas: only the leader delivers */
};

/* Replicas: a known follower neither queues nor delivers; the leader does
 * both (and while the lease is not known yet, events are queued, not sent). */
static int follower(const struct wh_queues *q)
{
    return q->lease && !bus_lease_is_leader(q->lease);
}

static uint64_t now_ms(struct wh_queues *q)
{
    return uv_now(q->loop);
}

static long long wall_ms(void)
{
    return (long long)log_wall_ms();
}

static void iso_time(long long ms, char *buf, size_t len)
{
    log_iso_ms((uint64_t)ms, buf, len);
}

static void queue_key(const struct wh_queues *q, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s:webhooks:queue:%s", q->cfg->redis_prefix, id);
}

struct wh_queues *wh_queues_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                                struct wh_http *http, wh_disabled_fn on_disabled, void *ud)
{
    struct wh_queues *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->loop = loop;
    q->cfg = c;
    q->redis = redis;
    q->http = http;
    q->on_disabled = on_disabled;
    q->ud = ud;
    return q;
}

void wh_queues_set_lease(struct wh_queues *q, struct bus_lease *l)
{
    q->lease = l;
}

struct wh_sub *wh_queues_find(struct wh_queues *q, const char *id)
{
    for (struct wh_sub *s = q->subs; s; s = s->next)
        if (!s->gone && !strcmp(s->c.id, id))
            return s;
    return NULL;
}

struct wh_sub *wh_queues_first(struct wh_queues *q)
{
    struct wh_sub *s = q->subs;
    while (s && s->gone)
        s = s->next;
    return s;
}

struct wh_sub *wh_sub_next(struct wh_sub *s)
{
    for (s = s->next; s && s->gone; s = s->next)
        ;
    return s;
}

size_t wh_queues_count(const struct wh_queues *q)
{
    size_t n = 0;
    for (const struct wh_sub *s = q->subs; s; s = s->next)
        n += !s->gone;
    return n;
}

const struct wh_conf *wh_sub_conf(const struct wh_sub *s)
{
    return &s->c;
}

int wh_sub_loaded(const struct wh_sub *s)
{
    return s->loaded;
}

/* --- deliveries -------------------------------------------------------------------- */

static void delivery_free(struct wh_delivery *d)
{
    free(d->body);
    free(d->stored);
    free(d);
}

void wh_sub_record(struct wh_sub *s, const char *delivery, const char *event, int attempt,
                   long status, double latency, const char *result, const char *error)
{
    struct wh_record *r = &s->log[s->logpos];
    s->logpos = (s->logpos + 1) % WEBHOOKS_LOG_MAX;
    if (s->nlog < WEBHOOKS_LOG_MAX)
        s->nlog++;
    snprintf(r->delivery, sizeof(r->delivery), "%s", delivery);
    snprintf(r->event, sizeof(r->event), "%s", event);
    r->attempt = attempt;
    r->at_ms = wall_ms();
    r->status = status;
    r->latency = latency;
    r->result = result;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
}

static void redis_done(void *ud, const redisReply *reply);

/* Take the head off the queue (and off the Redis list). */
static void pop_head(struct wh_sub *s)
{
    struct wh_queues *q = s->q;
    struct wh_delivery *d = s->head;
    if (!d)
        return;
    s->head = d->next;
    if (!s->head)
        s->tail = NULL;
    s->depth--;
    if (d->stored && q->redis) {
        char key[256];
        queue_key(q, s->c.id, key, sizeof(key));
        bus_redis_command(q->redis, NULL, NULL, "LREM %s 1 %s", key, d->stored);
    }
    delivery_free(d);
}

/* Drop every waiting delivery (subscription disabled or removed). The Redis
 * list goes with them when `forget` is set. */
static void drop_all(struct wh_sub *s, int forget, const char *result)
{
    struct wh_queues *q = s->q;
    size_t n = 0;
    while (s->head) {
        struct wh_delivery *d = s->head;
        s->head = d->next;
        if (d->persisting)
            s->skip_acks++;
        delivery_free(d);
        n++;
    }
    s->tail = NULL;
    s->depth = 0;
    s->pfirst = NULL;
    if (result && n) {
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, result, NULL, (double)n);
        s->dropped += n;
    }
    if (forget && q->redis) {
        char key[256];
        queue_key(q, s->c.id, key, sizeof(key));
        bus_redis_command(q->redis, NULL, NULL, "DEL %s", key);
    }
}

static void sub_pump(struct wh_sub *s);

static void on_retry(uv_timer_t *t)
{
    struct wh_sub *s = t->data;
    s->waiting = 0;
    sub_pump(s);
}

static void schedule_retry(struct wh_sub *s, int attempts)
{
    const struct cfg *c = s->q->cfg;
    uint64_t step =
        backoff_nth((uint64_t)c->webhook_retry_base_ms, (uint64_t)c->webhook_retry_max_ms,
                    attempts > 0 ? (unsigned)attempts : 1);
    uint64_t delay = backoff_jitter(step / 2, step); /* 50-100 % of it */
    s->waiting = 1;
    uv_timer_start(&s->timer, on_retry, delay, 0);
}

static void disable_sub(struct wh_sub *s, const char *why)
{
    struct wh_queues *q = s->q;
    s->c.enabled = 0;
    snprintf(s->c.reason, sizeof(s->c.reason), "%s", why);
    drop_all(s, 1, "disabled");
    log_warn("webhook subscription disabled", "{s:s,s:s}", "webhook", s->c.id, "reason", why);
    if (q->on_disabled)
        q->on_disabled(q->ud, &s->c);
}

static void sub_attempt_done(struct wh_xfer *x, CURLcode rc, long status)
{
    struct wh_sub *s = x->owner;
    struct wh_queues *q = s->q;
    struct wh_delivery *d = s->head;
    char err[192];
    double latency = wh_xfer_seconds(x);
    const char *outcome = wh_xfer_outcome(x, rc, status, err, sizeof(err));
    s->sending = 0;
    metrics_inc(METRIC_WEBHOOK_ATTEMPTS, outcome, NULL, 1);
    metrics_observe(METRIC_WEBHOOK_LATENCY, NULL, latency);
    if (!d)
        return;
    if (!strcmp(outcome, "2xx")) {
        wh_sub_record(s, d->id, d->event, d->attempts, status, latency, "delivered", NULL);
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, "delivered", NULL, 1);
        s->delivered++;
        pop_head(s);
        sub_pump(s);
        return;
    }
    if (status == 410 && rc == CURLE_OK) {
        char why[WH_REASON_MAX], when[40];
        iso_time(wall_ms(), when, sizeof(when));
        snprintf(why, sizeof(why), "the receiver answered 410 Gone at %s", when);
        wh_sub_record(s, d->id, d->event, d->attempts, status, latency, "disabled", err);
        disable_sub(s, why);
        return;
    }
    long long age = wall_ms() - d->created_ms;
    if (d->attempts >= q->cfg->webhook_max_attempts ||
        age >= (long long)q->cfg->webhook_max_age_s * 1000) {
        wh_sub_record(s, d->id, d->event, d->attempts, status, latency, "failed", err);
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, "failed", NULL, 1);
        s->failed++;
        log_warn("webhook delivery failed", "{s:s,s:s,s:s,s:i,s:s}", "webhook", s->c.id, "delivery",
                 d->id, "event", d->event, "attempts", d->attempts, "error", err);
        pop_head(s);
        sub_pump(s);
        return;
    }
    wh_sub_record(s, d->id, d->event, d->attempts, status, latency, "retrying", err);
    schedule_retry(s, d->attempts);
}

static void sub_pump(struct wh_sub *s)
{
    struct wh_queues *q = s->q;
    struct wh_delivery *d = s->head;
    if (q->closing || s->gone || s->sending || s->waiting || s->loading || !d || !s->c.enabled ||
        d->persisting || follower(q))
        return;
    d->attempts++;
    if (wh_xfer_start(&s->x, &s->c, d->event, d->id, d->attempts, d->body, d->len)) {
        wh_sub_record(s, d->id, d->event, d->attempts, 0, 0, "retrying",
                      "could not start the request");
        schedule_retry(s, d->attempts);
        return;
    }
    s->sending = 1;
}

/* Abandon the attempt in flight, if any. */
static void sub_cancel(struct wh_sub *s)
{
    if (s->sending) {
        wh_xfer_cancel(&s->x);
        s->sending = 0;
    }
}

/* The Redis list acknowledged a push: the oldest delivery still waiting for
 * that may now be tried. */
static void on_pushed(void *ud, const redisReply *reply)
{
    struct wh_sub *s = ud;
    s->pending_redis--;
    if (s->skip_acks > 0) {
        s->skip_acks--;
        redis_done(s, NULL);
        return;
    }
    /* acknowledgements come in push order: the oldest still waiting is it */
    struct wh_delivery *d = s->pfirst;
    if (d) {
        d->persisting = 0;
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            /* not known to be in Redis: delivered from memory only */
            free(d->stored);
            d->stored = NULL;
        }
        struct wh_delivery *n = d->next;
        while (n && !n->persisting)
            n = n->next;
        s->pfirst = n;
    }
    if (s->gone) {
        redis_done(s, NULL); /* may free it */
        return;
    }
    sub_pump(s);
}

static json_t *delivery_entry(const struct wh_delivery *d)
{
    return json_pack("{s:s,s:s,s:I,s:s%}", "id", d->id, "event", d->event, "created",
                     (json_int_t)d->created_ms, "body", d->body, d->len);
}

static void enqueue(struct wh_sub *s, const char *event, const char *body, size_t len)
{
    struct wh_queues *q = s->q;
    if (s->depth >= (size_t)q->cfg->webhook_queue) {
        s->dropped++;
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, "dropped", NULL, 1);
        if (now_ms(q) - s->drop_logged >= WEBHOOKS_DROP_LOG_MS) {
            s->drop_logged = now_ms(q);
            log_warn("webhook queue full: dropping new deliveries", "{s:s,s:i,s:I}", "webhook",
                     s->c.id, "queue", q->cfg->webhook_queue, "dropped", (json_int_t)s->dropped);
        }
        return;
    }
    struct wh_delivery *d = calloc(1, sizeof(*d));
    if (!d || !(d->body = malloc(len + 1)) || wh_random_hex(d->id, WH_DELIVERY_ID_BYTES)) {
        if (d)
            free(d->body);
        free(d);
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, "dropped", NULL, 1);
        return;
    }
    memcpy(d->body, body, len);
    d->body[len] = '\0';
    d->len = len;
    snprintf(d->event, sizeof(d->event), "%s", event);
    d->created_ms = wall_ms();
    if (q->redis) {
        json_t *o = delivery_entry(d);
        d->stored = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        char key[256];
        queue_key(q, s->c.id, key, sizeof(key));
        if (d->stored &&
            bus_redis_command(q->redis, on_pushed, s, "RPUSH %s %s", key, d->stored) == 0) {
            d->persisting = 1;
            s->pending_redis++;
        } else {
            free(d->stored);
            d->stored = NULL;
            if (now_ms(q) - q->last_unpersisted_log >= WEBHOOKS_DROP_LOG_MS) {
                q->last_unpersisted_log = now_ms(q);
                log_warn("Redis is down: webhook deliveries are kept in memory only until it is "
                         "back",
                         "{s:s}", "webhook", s->c.id);
            }
        }
    }
    if (s->tail)
        s->tail->next = d;
    else
        s->head = d;
    s->tail = d;
    s->depth++;
    if (d->persisting && !s->pfirst)
        s->pfirst = d;
    sub_pump(s);
}

void wh_queues_event(struct wh_queues *q, const struct bus_event *e)
{
    if (q->lease && bus_lease_follower(q->lease))
        return;
    for (struct wh_sub *s = q->subs; s; s = s->next)
        if (!s->gone && s->c.enabled && wh_conf_wants(&s->c, e->name, e->msg))
            enqueue(s, e->name, e->json, e->len);
}

/* --- subscriptions held here ------------------------------------------------------- */

static void queues_maybe_free(struct wh_queues *q);

static void sub_free(struct wh_sub *s)
{
    struct wh_queues *q = s->q;
    drop_all(s, 0, NULL);
    wh_xfer_cleanup(&s->x);
    wh_conf_free(&s->c);
    free(s);
    q->nsubs--;
    queues_maybe_free(q);
}

/* A removed subscription goes once its timer is closed and Redis has
 * answered every command that names it. */
static void redis_done(void *ud, const redisReply *reply)
{
    (void)reply;
    struct wh_sub *s = ud;
    if (s->gone && !s->timer_open && s->pending_redis == 0)
        sub_free(s);
}

static void sub_timer_closed(uv_handle_t *h)
{
    struct wh_sub *s = h->data;
    s->timer_open = 0;
    redis_done(s, NULL);
}

static void sub_unlink(struct wh_queues *q, struct wh_sub *s)
{
    for (struct wh_sub **pp = &q->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
}

void wh_sub_remove(struct wh_sub *s, int forget)
{
    sub_unlink(s->q, s);
    s->gone = 1;
    sub_cancel(s);
    drop_all(s, forget, NULL);
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, sub_timer_closed);
    } else {
        redis_done(s, NULL);
    }
}

static void on_loaded(void *ud, const redisReply *reply);

/* Read back what a previous run left in the Redis list. */
static void sub_load(struct wh_sub *s)
{
    struct wh_queues *q = s->q;
    if (q->lease && bus_lease_follower(q->lease))
        return; /* the leader's to read, when this one becomes it */
    char key[256];
    queue_key(q, s->c.id, key, sizeof(key));
    s->loading = 1;
    if (bus_redis_command(q->redis, on_loaded, s, "LRANGE %s 0 %d", key,
                          q->cfg->webhook_queue - 1) == 0)
        s->pending_redis++;
    else
        s->loading = 0;
}

static void on_loaded(void *ud, const redisReply *reply)
{
    struct wh_sub *s = ud;
    s->pending_redis--;
    s->loading = 0;
    if (s->gone || !reply || reply->type != REDIS_REPLY_ARRAY) {
        int gone = s->gone;
        redis_done(s, NULL); /* may free it; not read: tried again when Redis is back */
        if (!gone)
            sub_pump(s); /* what is held here meanwhile may go */
        return;
    }
    s->loaded = 1;
    struct wh_delivery *first = NULL, *last = NULL;
    size_t n = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *el = reply->element[i];
        if (el->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(el->str, el->len, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *ev = json_string_value(json_object_get(o, "event"));
        json_t *body = json_object_get(o, "body");
        struct wh_delivery *d = calloc(1, sizeof(*d));
        if (!d || !id || !ev || !json_is_string(body) || strlen(id) >= sizeof(d->id) ||
            !(d->body = malloc(json_string_length(body) + 1)) ||
            !(d->stored = malloc(el->len + 1))) {
            log_warn("unreadable webhook delivery left in Redis", "{s:s}", "webhook", s->c.id);
            if (d)
                delivery_free(d);
            json_decref(o);
            continue;
        }
        snprintf(d->id, sizeof(d->id), "%s", id);
        snprintf(d->event, sizeof(d->event), "%s", ev);
        d->len = json_string_length(body);
        memcpy(d->body, json_string_value(body), d->len + 1);
        memcpy(d->stored, el->str, el->len);
        d->stored[el->len] = '\0';
        d->created_ms = json_integer_value(json_object_get(o, "created"));
        json_decref(o);
        if (last)
            last->next = d;
        else
            first = d;
        last = d;
        n++;
    }
    if (first) {
        if (s->sending) {
            /* the head is on the wire (Redis was down when it came): after it */
            last->next = s->head->next;
            s->head->next = first;
            if (s->tail == s->head)
                s->tail = last;
        } else {
            /* before anything queued while the list was being read */
            last->next = s->head;
            if (!s->head)
                s->tail = last;
            s->head = first;
        }
        s->depth += n;
        log_info("webhook deliveries resumed", "{s:s,s:I}", "webhook", s->c.id, "pending",
                 (json_int_t)n);
    }
    sub_pump(s);
}

struct wh_sub *wh_sub_add(struct wh_queues *q, struct wh_conf *c, int load)
{
    struct wh_sub *s = q->closing ? NULL : calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->q = q;
    if (wh_xfer_init(q->http, &s->x, s, sub_attempt_done)) {
        wh_xfer_cleanup(&s->x);
        free(s);
        return NULL;
    }
    q->nsubs++;
    s->c = *c;
    memset(c, 0, sizeof(*c));
    uv_timer_init(q->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = 1;
    /* keep the listing in creation order */
    struct wh_sub **pp = &q->subs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    s->loaded = !load || !q->redis;
    if (!s->loaded)
        sub_load(s);
    return s;
}

void wh_sub_update(struct wh_sub *s, struct wh_conf *c)
{
    int was = s->c.enabled;
    wh_conf_free(&s->c);
    s->c = *c;
    memset(c, 0, sizeof(*c));
    if (was && !s->c.enabled) {
        sub_cancel(s);
        drop_all(s, 0, "disabled");
    }
    sub_pump(s);
}

void wh_queues_redis_up(struct wh_queues *q)
{
    /* what a previous run left queued, for subscriptions held before Redis was up */
    for (struct wh_sub *s = q->subs; s; s = s->next)
        if (!s->gone && !s->loaded && !s->loading)
            sub_load(s);
}

void wh_queues_leader(struct wh_queues *q, enum bus_lease_change ch)
{
    /* back with the lease unbroken: carry on with what is held here */
    int reload = ch == BUS_LEASE_LEADER_FRESH || ch == BUS_LEASE_FOLLOWER;
    for (struct wh_sub *s = q->subs; s; s = s->next) {
        if (s->gone)
            continue;
        if (s->sending) {
            sub_cancel(s);
            if (s->head)
                s->head->attempts--; /* not made after all: it goes again */
        }
        if (s->waiting) {
            uv_timer_stop(&s->timer);
            s->waiting = 0;
        }
        if (reload) {
            /* the Redis lists are the truth: what is held here is a copy */
            drop_all(s, 0, NULL);
            s->loaded = 0;
            if (ch == BUS_LEASE_LEADER_FRESH && !s->loading && q->redis)
                sub_load(s);
        }
        sub_pump(s);
    }
    if (ch == BUS_LEASE_LEADER || ch == BUS_LEASE_LEADER_FRESH)
        log_info("webhooks: delivering as the leader", "{s:b}", "read_back_from_redis",
                 ch == BUS_LEASE_LEADER_FRESH);
    else
        log_info("webhooks: not delivering (not the leader)", NULL);
}

/* --- what the API shows ------------------------------------------------------------ */

json_t *wh_sub_stats_json(const struct wh_sub *s)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:b}", "queued", (json_int_t)s->depth, "delivered",
                     (json_int_t)s->delivered, "failed", (json_int_t)s->failed, "dropped",
                     (json_int_t)s->dropped, "retrying", s->waiting);
}

json_t *wh_sub_log_json(const struct wh_sub *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < s->nlog; i++) {
        const struct wh_record *r =
            &s->log[(s->logpos + WEBHOOKS_LOG_MAX - 1 - i) % WEBHOOKS_LOG_MAX];
        char when[40];
        iso_time(r->at_ms, when, sizeof(when));
        json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:o,s:f,s:s,s:o}", "delivery_id", r->delivery,
                              "event", r->event, "attempt", r->attempt, "time", when, "status",
                              r->status ? json_integer(r->status) : json_null(), "latency_ms",
                              r->latency * 1000.0, "result", r->result, "error",
                              r->error[0] ? json_string(r->error) : json_null());
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

void wh_queues_stats(const struct wh_queues *q, struct wh_queues_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (const struct wh_sub *s = q->subs; s; s = s->next) {
        if (s->gone)
            continue;
        st->subscriptions++;
        st->disabled += !s->c.enabled;
        st->queued += s->depth;
        st->sending += (size_t)s->sending;
    }
}

/* --- life -------------------------------------------------------------------------- */

/* Closing and every subscription gone: the queues go. */
static void queues_maybe_free(struct wh_queues *q)
{
    if (!q->closing || q->nsubs > 0)
        return;
    void (*done)(void *) = q->close_done;
    void *arg = q->close_arg;
    free(q);
    if (done)
        done(arg);
}

/* Every subscription is removed as wh_sub_remove() does, but its deliveries
 * are kept in Redis (they are made after the next start). */
void wh_queues_close(struct wh_queues *q, void (*done)(void *arg), void *arg)
{
    q->closing = 1;
    q->close_done = done;
    q->close_arg = arg;
    q->nsubs++; /* held until the end of this function */
    size_t pending = 0;
    while (q->subs) {
        struct wh_sub *s = q->subs;
        q->subs = s->next;
        s->gone = 1;
        sub_cancel(s);
        pending += s->depth;
        if (s->timer_open) {
            uv_timer_stop(&s->timer);
            uv_close((uv_handle_t *)&s->timer, sub_timer_closed);
        } else {
            redis_done(s, NULL); /* may free it */
        }
    }
    if (pending)
        log_info(q->redis ? "webhook deliveries left queued in Redis"
                          : "webhook deliveries not made (kept in memory only)",
                 "{s:I}", "pending", (json_int_t)pending);
    q->nsubs--;
    queues_maybe_free(q);
}
