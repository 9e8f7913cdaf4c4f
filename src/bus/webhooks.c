#include "bus/webhooks.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bus/lease.h"
#include "bus/ssrf.h"
#include "bus/webhook_sub.h"
#include "core/backoff.h"
#include "core/list.h"
#include "core/log.h"
#include "core/metrics.h"

#define DELIVERY_ID_BYTES 16
#define SUB_ID_BYTES      8

struct wh_delivery {
    struct wh_delivery *next;
    char id[2 * DELIVERY_ID_BYTES + 1];
    char event[BUS_EVENT_NAME_MAX];
    char *body;
    size_t len;
    long long created_ms; /* wall clock, for the max age */
    int attempts;
    int persisting; /* RPUSH sent, not acknowledged: no attempt yet */
    char *stored;   /* the entry in the Redis list (for LREM), NULL when not there */
};

struct wh_record {
    char delivery[2 * DELIVERY_ID_BYTES + 1];
    char event[BUS_EVENT_NAME_MAX];
    int attempt;
    long long at_ms;
    long status;
    double latency;
    const char *result;
    char error[192];
};

struct webhooks;

/* One HTTP attempt on the multi handle. */
struct wh_xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    struct webhooks *w;
    enum ssrf_verdict refused;
    char refused_ip[64];
    char err[CURL_ERROR_SIZE];
    char resp[WEBHOOKS_RESPONSE_KEEP + 1];
    size_t resplen;
    uint64_t start;
    void (*done)(struct wh_xfer *x, CURLcode rc, long status);
    void *owner;
};

struct wh_sub {
    struct wh_sub *next;
    struct webhooks *w;
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

struct wh_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct webhooks *w;
    struct wh_sock *prev, *next;
};

struct wh_test {
    struct wh_test *next;
    struct wh_xfer x;
    char sub[WH_ID_MAX];
    char id[2 * DELIVERY_ID_BYTES + 1];
    struct wh_conf c; /* a copy: the subscription may change meanwhile */
    char *body;
    webhooks_cb cb;
    void *ud;
};

/* An API change waiting for the store (Redis). */
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
    CURLM *multi;
    uv_timer_t curl_timer, poll_timer;
    struct wh_sub *subs;
    size_t nsubs;
    struct wh_test *tests;
    struct wh_sock *socks;
    char version[32]; /* of the Redis store when last read; "" before */
    int polling;
    int closing;
    char hash_key[128], version_key[128];
    char state_path[PATH_MAX];
    uint64_t last_unpersisted_log;
    struct bus_lease *lease; /* replicas: only the leader delivers */
};

/* Replicas: a known follower neither queues nor delivers; the leader does
 * both (and while the lease is not known yet, events are queued, not sent). */
static int follower(const struct webhooks *w)
{
    return w->lease && !bus_lease_is_leader(w->lease);
}

static uint64_t now_ms(struct webhooks *w)
{
    return uv_now(w->loop);
}

static long long wall_ms(void)
{
    return (long long)log_wall_ms();
}

static void iso_time(long long ms, char *buf, size_t len)
{
    log_iso_ms((uint64_t)ms, buf, len);
}

static void answer(webhooks_cb cb, void *ud, int status, json_t *body)
{
    struct webhooks_answer a = {.status = status, .body = body};
    cb(ud, &a);
}

static void answer_problem(webhooks_cb cb, void *ud, int status, const char *slug,
                           const char *title, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void answer_problem(webhooks_cb cb, void *ud, int status, const char *slug,
                           const char *title, const char *field, const char *fmt, ...)
{
    struct webhooks_answer a = {.status = status, .slug = slug, .title = title};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a.detail, sizeof(a.detail), fmt, ap);
    va_end(ap);
    snprintf(a.field, sizeof(a.field), "%s", field ? field : "");
    cb(ud, &a);
}

static void answer_oom(webhooks_cb cb, void *ud)
{
    answer_problem(cb, ud, 500, "internal", "Out of memory", NULL, "out of memory");
}

static void queue_key(const struct webhooks *w, const char *id, char *out, size_t len)
{
    snprintf(out, len, "%s:webhooks:queue:%s", w->cfg->redis_prefix, id);
}

static struct wh_sub *sub_find(struct webhooks *w, const char *id)
{
    for (struct wh_sub *s = w->subs; s; s = s->next)
        if (!s->gone && !strcmp(s->c.id, id))
            return s;
    return NULL;
}

/* --- curl multi on the loop ------------------------------------------------------- */

static void check_done(struct webhooks *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        struct wh_xfer *x = NULL;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(w->multi, e);
        if (x)
            x->done(x, rc, status);
    }
}

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_drop(struct webhooks *w, struct wh_sock *k)
{
    LIST_UNLINK(w->socks, k);
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, sock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct wh_sock *k = h->data;
    struct webhooks *w = k->w;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(w->multi, k->fd, flags, &running);
    check_done(w);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct webhooks *w = userp;
    struct wh_sock *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            curl_multi_assign(w->multi, s, NULL);
            sock_drop(w, k);
        }
        return 0;
    }
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k || uv_poll_init_socket(w->loop, &k->poll, s) != 0) {
            free(k);
            return -1;
        }
        k->fd = s;
        k->w = w;
        k->poll.data = k;
        LIST_PUSH_FRONT(w->socks, k);
        curl_multi_assign(w->multi, s, k);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&k->poll, ev, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    struct webhooks *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

static int on_curl_timeout(CURLM *m, long ms, void *userp)
{
    (void)m;
    struct webhooks *w = userp;
    if (ms < 0)
        uv_timer_stop(&w->curl_timer);
    else
        uv_timer_start(&w->curl_timer, on_curl_timer, (uint64_t)ms, 0);
    return 0;
}

/* Every address curl is about to connect to passes the SSRF guard here,
 * after DNS, so a name that resolves to a refused address is refused. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct wh_xfer *x = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    enum ssrf_verdict v = ssrf_check(&a->addr, a->addrlen, x->w->allow, x->w->nallow);
    if (v != SSRF_OK && v != SSRF_ALLOWED) {
        x->refused = v;
        char ip[64] = "?";
        if (a->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, ip, sizeof(ip));
        else if (a->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, ip, sizeof(ip));
        snprintf(x->refused_ip, sizeof(x->refused_ip), "%s", ip);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Keep the start of the receiver's answer for the log; drop the rest. */
static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    struct wh_xfer *x = ud;
    size_t len = size * n, room = WEBHOOKS_RESPONSE_KEEP - x->resplen;
    size_t take = len < room ? len : room;
    memcpy(x->resp + x->resplen, p, take);
    x->resplen += take;
    x->resp[x->resplen] = '\0';
    return len;
}

static int xfer_init(struct webhooks *w, struct wh_xfer *x, void *owner,
                     void (*done)(struct wh_xfer *, CURLcode, long))
{
    x->w = w;
    x->owner = owner;
    x->done = done;
    x->easy = curl_easy_init();
    if (!x->easy)
        return -ENOMEM;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* no proxy from the environment */
    curl_easy_setopt(e, CURLOPT_USERAGENT, "amibridge/" AMIBRIDGE_VERSION);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->cfg->webhook_timeout_ms);
    long ct = w->cfg->webhook_timeout_ms < WEBHOOKS_CONNECT_MS ? w->cfg->webhook_timeout_ms
                                                               : WEBHOOKS_CONNECT_MS;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ct);
    return 0;
}

static void xfer_cleanup(struct wh_xfer *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    x->easy = NULL;
    x->hdrs = NULL;
}

static struct curl_slist *add_header(struct curl_slist *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append one header line; on failure the list stays as it was (and the
 * receiver refuses an unsigned delivery). */
static struct curl_slist *add_header(struct curl_slist *l, const char *fmt, ...)
{
    char h[WH_STD_SIGS_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h, sizeof(h), fmt, ap);
    va_end(ap);
    struct curl_slist *t = curl_slist_append(l, h);
    return t ? t : l;
}

/* Start one POST signed as subscription `c` wants (its copy of what it
 * needs is taken now). `body` must stay valid until done fires. */
static int xfer_start(struct wh_xfer *x, const struct wh_conf *c, const char *event,
                      const char *delivery, int attempt, const char *body, size_t len)
{
    char ts[24], sig[WH_SIGNATURE_LEN + 1], std[WH_STD_SIGS_MAX];
    long long now = (long long)time(NULL);
    snprintf(ts, sizeof(ts), "%lld", now);
    if ((c->scheme != WH_SCHEME_STANDARD && wh_sign(c->secret, ts, body, len, sig)) ||
        (c->scheme != WH_SCHEME_AMIBRIDGE &&
         wh_sign_standard(c, delivery, ts, now, body, len, std)))
        return -ENOMEM;
    curl_slist_free_all(x->hdrs);
    struct curl_slist *l = NULL;
    l = add_header(l, "Content-Type: application/json");
    l = add_header(l, "Expect:");
    l = add_header(l, "X-Amibridge-Event: %s", event);
    if (c->scheme != WH_SCHEME_STANDARD) {
        l = add_header(l, "X-Amibridge-Delivery: %s", delivery);
        l = add_header(l, "X-Amibridge-Timestamp: %s", ts);
        l = add_header(l, "X-Amibridge-Signature: %s", sig);
    }
    if (c->scheme != WH_SCHEME_AMIBRIDGE) {
        l = add_header(l, "webhook-id: %s", delivery);
        l = add_header(l, "webhook-timestamp: %s", ts);
        l = add_header(l, "webhook-signature: %s", std);
    }
    l = add_header(l, "X-Amibridge-Webhook: %s", c->id);
    l = add_header(l, "X-Amibridge-Attempt: %d", attempt);
    explicit_bzero(sig, sizeof(sig));
    explicit_bzero(std, sizeof(std));
    x->hdrs = l;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    x->refused = SSRF_OK;
    x->refused_ip[0] = x->err[0] = x->resp[0] = '\0';
    x->resplen = 0;
    x->start = uv_hrtime();
    return curl_multi_add_handle(x->w->multi, e) == CURLM_OK ? 0 : -EIO;
}

/* What an attempt came to: its metric outcome and, unless delivered, an error sentence. */
static const char *xfer_outcome(const struct wh_xfer *x, CURLcode rc, long status, char *err,
                                size_t len)
{
    err[0] = '\0';
    if (x->refused != SSRF_OK) {
        snprintf(err, len, "refused by the SSRF guard: %s is a %s", x->refused_ip,
                 ssrf_reason(x->refused));
        return "refused";
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(err, len, "no answer within %d ms", x->w->cfg->webhook_timeout_ms);
        return "timeout";
    }
    if (rc != CURLE_OK) {
        snprintf(err, len, "%.180s", x->err[0] ? x->err : curl_easy_strerror(rc));
        return "error";
    }
    if (status >= 200 && status < 300)
        return "2xx";
    /* the start of the answer, made printable, helps whoever reads the log */
    char snip[96];
    size_t n = 0;
    for (size_t i = 0; i < x->resplen && n + 1 < sizeof(snip); i++)
        snip[n++] = (x->resp[i] >= 0x20 && x->resp[i] < 0x7f) ? x->resp[i] : ' ';
    snip[n] = '\0';
    snprintf(err, len, "HTTP %ld%s%s", status, n ? ": " : "", snip);
    return status >= 500 ? "5xx" : status >= 400 ? "4xx" : status >= 300 ? "3xx" : "1xx";
}

/* --- deliveries -------------------------------------------------------------------- */

static void delivery_free(struct wh_delivery *d)
{
    free(d->body);
    free(d->stored);
    free(d);
}

static void record(struct wh_sub *s, const char *delivery, const char *event, int attempt,
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
    struct webhooks *w = s->w;
    struct wh_delivery *d = s->head;
    if (!d)
        return;
    s->head = d->next;
    if (!s->head)
        s->tail = NULL;
    s->depth--;
    if (d->stored && w->redis) {
        char key[256];
        queue_key(w, s->c.id, key, sizeof(key));
        bus_redis_command(w->redis, NULL, NULL, "LREM %s 1 %s", key, d->stored);
    }
    delivery_free(d);
}

/* Drop every waiting delivery (subscription disabled or removed). The Redis
 * list goes with them when `forget` is set. */
static void drop_all(struct wh_sub *s, int forget, const char *result)
{
    struct webhooks *w = s->w;
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
    if (forget && w->redis) {
        char key[256];
        queue_key(w, s->c.id, key, sizeof(key));
        bus_redis_command(w->redis, NULL, NULL, "DEL %s", key);
    }
}

static void sub_pump(struct wh_sub *s);
static void store_put(struct webhooks *w, const struct wh_conf *c, struct wh_op *op);

static void on_retry(uv_timer_t *t)
{
    struct wh_sub *s = t->data;
    s->waiting = 0;
    sub_pump(s);
}

static void schedule_retry(struct wh_sub *s, int attempts)
{
    const struct cfg *c = s->w->cfg;
    uint64_t step =
        backoff_nth((uint64_t)c->webhook_retry_base_ms, (uint64_t)c->webhook_retry_max_ms,
                    attempts > 0 ? (unsigned)attempts : 1);
    uint64_t delay = backoff_jitter(step / 2, step); /* 50-100 % of it */
    s->waiting = 1;
    uv_timer_start(&s->timer, on_retry, delay, 0);
}

static void disable_sub(struct wh_sub *s, const char *why)
{
    struct webhooks *w = s->w;
    s->c.enabled = 0;
    snprintf(s->c.reason, sizeof(s->c.reason), "%s", why);
    drop_all(s, 1, "disabled");
    log_warn("webhook subscription disabled", "{s:s,s:s}", "webhook", s->c.id, "reason", why);
    if (!s->c.is_static)
        store_put(w, &s->c, NULL);
}

static void sub_attempt_done(struct wh_xfer *x, CURLcode rc, long status)
{
    struct wh_sub *s = x->owner;
    struct webhooks *w = s->w;
    struct wh_delivery *d = s->head;
    char err[192];
    double latency = (double)(uv_hrtime() - x->start) / 1e9;
    const char *outcome = xfer_outcome(x, rc, status, err, sizeof(err));
    s->sending = 0;
    metrics_inc(METRIC_WEBHOOK_ATTEMPTS, outcome, NULL, 1);
    metrics_observe(METRIC_WEBHOOK_LATENCY, NULL, latency);
    if (!d)
        return;
    if (!strcmp(outcome, "2xx")) {
        record(s, d->id, d->event, d->attempts, status, latency, "delivered", NULL);
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
        record(s, d->id, d->event, d->attempts, status, latency, "disabled", err);
        disable_sub(s, why);
        return;
    }
    long long age = wall_ms() - d->created_ms;
    if (d->attempts >= w->cfg->webhook_max_attempts ||
        age >= (long long)w->cfg->webhook_max_age_s * 1000) {
        record(s, d->id, d->event, d->attempts, status, latency, "failed", err);
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, "failed", NULL, 1);
        s->failed++;
        log_warn("webhook delivery failed", "{s:s,s:s,s:s,s:i,s:s}", "webhook", s->c.id, "delivery",
                 d->id, "event", d->event, "attempts", d->attempts, "error", err);
        pop_head(s);
        sub_pump(s);
        return;
    }
    record(s, d->id, d->event, d->attempts, status, latency, "retrying", err);
    schedule_retry(s, d->attempts);
}

static void sub_pump(struct wh_sub *s)
{
    struct webhooks *w = s->w;
    struct wh_delivery *d = s->head;
    if (w->closing || s->gone || s->sending || s->waiting || s->loading || !d || !s->c.enabled ||
        d->persisting || follower(w))
        return;
    d->attempts++;
    if (xfer_start(&s->x, &s->c, d->event, d->id, d->attempts, d->body, d->len)) {
        record(s, d->id, d->event, d->attempts, 0, 0, "retrying", "could not start the request");
        schedule_retry(s, d->attempts);
        return;
    }
    s->sending = 1;
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
    struct webhooks *w = s->w;
    if (s->depth >= (size_t)w->cfg->webhook_queue) {
        s->dropped++;
        metrics_inc(METRIC_WEBHOOK_DELIVERIES, "dropped", NULL, 1);
        if (now_ms(w) - s->drop_logged >= WEBHOOKS_DROP_LOG_MS) {
            s->drop_logged = now_ms(w);
            log_warn("webhook queue full: dropping new deliveries", "{s:s,s:i,s:I}", "webhook",
                     s->c.id, "queue", w->cfg->webhook_queue, "dropped", (json_int_t)s->dropped);
        }
        return;
    }
    struct wh_delivery *d = calloc(1, sizeof(*d));
    if (!d || !(d->body = malloc(len + 1)) || wh_random_hex(d->id, DELIVERY_ID_BYTES)) {
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
    if (w->redis) {
        json_t *o = delivery_entry(d);
        d->stored = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        char key[256];
        queue_key(w, s->c.id, key, sizeof(key));
        if (d->stored &&
            bus_redis_command(w->redis, on_pushed, s, "RPUSH %s %s", key, d->stored) == 0) {
            d->persisting = 1;
            s->pending_redis++;
        } else {
            free(d->stored);
            d->stored = NULL;
            if (now_ms(w) - w->last_unpersisted_log >= WEBHOOKS_DROP_LOG_MS) {
                w->last_unpersisted_log = now_ms(w);
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

void webhooks_sink(void *ud, struct bus_event *e)
{
    struct webhooks *w = ud;
    if (w->closing || e->remote || (w->lease && bus_lease_follower(w->lease)))
        return;
    for (struct wh_sub *s = w->subs; s; s = s->next)
        if (!s->gone && s->c.enabled && wh_conf_wants(&s->c, e->name, e->msg))
            enqueue(s, e->name, e->json, e->len);
}

/* --- subscriptions held here ------------------------------------------------------- */

static void sub_free(struct wh_sub *s)
{
    drop_all(s, 0, NULL);
    xfer_cleanup(&s->x);
    wh_conf_free(&s->c);
    free(s);
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

static void sub_unlink(struct webhooks *w, struct wh_sub *s)
{
    for (struct wh_sub **pp = &w->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            w->nsubs--;
            break;
        }
}

/* Stop a subscription's work and let it go. `forget`: also its Redis list. */
static void sub_remove(struct webhooks *w, struct wh_sub *s, int forget)
{
    sub_unlink(w, s);
    s->gone = 1;
    if (s->sending) {
        curl_multi_remove_handle(w->multi, s->x.easy);
        s->sending = 0;
    }
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
    struct webhooks *w = s->w;
    if (w->lease && bus_lease_follower(w->lease))
        return; /* the leader's to read, when this one becomes it */
    char key[256];
    queue_key(w, s->c.id, key, sizeof(key));
    s->loading = 1;
    if (bus_redis_command(w->redis, on_loaded, s, "LRANGE %s 0 %d", key,
                          w->cfg->webhook_queue - 1) == 0)
        s->pending_redis++;
    else
        s->loading = 0;
}

static void on_loaded(void *ud, const redisReply *reply)
{
    struct wh_sub *s = ud;
    struct webhooks *w = s->w;
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
    (void)w;
    sub_pump(s);
}

/* Hold a subscription (a copy of `c` is taken over by it). */
static struct wh_sub *sub_add(struct webhooks *w, struct wh_conf *c, int load)
{
    struct wh_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->w = w;
    if (xfer_init(w, &s->x, s, sub_attempt_done)) {
        xfer_cleanup(&s->x);
        free(s);
        return NULL;
    }
    s->c = *c;
    memset(c, 0, sizeof(*c));
    uv_timer_init(w->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = 1;
    /* keep the listing in creation order */
    struct wh_sub **pp = &w->subs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    w->nsubs++;
    s->loaded = !load || !w->redis;
    if (!s->loaded)
        sub_load(s);
    return s;
}

/* Replace what a subscription is (from the store), keeping its queue. */
static void sub_update(struct wh_sub *s, struct wh_conf *c)
{
    int was = s->c.enabled;
    wh_conf_free(&s->c);
    s->c = *c;
    memset(c, 0, sizeof(*c));
    if (was && !s->c.enabled) {
        if (s->sending) {
            curl_multi_remove_handle(s->w->multi, s->x.easy);
            s->sending = 0;
        }
        drop_all(s, 0, "disabled");
    }
    sub_pump(s);
}

/* --- the store --------------------------------------------------------------------- */

static int state_write(struct webhooks *w, char *err, size_t errlen)
{
    json_t *arr = json_array(), *root = NULL;
    int rc = -1, fd = -1;
    char tmp[PATH_MAX + 32], *text = NULL;
    snprintf(err, errlen, "out of memory");
    for (struct wh_sub *s = w->subs; arr && s; s = s->next)
        if (!s->gone && !s->c.is_static && json_array_append_new(arr, wh_conf_json(&s->c, 1)))
            goto out;
    root = arr ? json_pack("{s:i,s:o}", "version", 1, "webhooks", arr) : NULL;
    arr = NULL;
    if (!root || !(text = json_dumps(root, JSON_INDENT(2)))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", w->state_path, (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text), off = 0;
    while (fd >= 0 && off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (fd < 0 || off < len || fsync(fd) != 0 || close(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
        unlink(tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, w->state_path) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    /* the rename itself must reach the disk */
    int dfd = open(w->cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
    json_decref(arr);
    json_decref(root);
    return rc;
}

static int state_load(struct webhooks *w, char *err, size_t errlen)
{
    json_error_t je;
    struct stat st;
    if (stat(w->cfg->state_dir, &st) != 0 && mkdir(w->cfg->state_dir, 0700) != 0)
        return snprintf(err, errlen, "AMIBRIDGE_STATE_DIR: cannot create '%s': %s",
                        w->cfg->state_dir, strerror(errno)),
               -1;
    if (access(w->cfg->state_dir, W_OK) != 0)
        return snprintf(err, errlen, "AMIBRIDGE_STATE_DIR: '%s' is not writable: %s",
                        w->cfg->state_dir, strerror(errno)),
               -1;
    /* what a crash between write and rename left behind */
    char pattern[PATH_MAX + 16];
    glob_t g;
    snprintf(pattern, sizeof(pattern), "%s.tmp.*", w->state_path);
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
    if (access(w->state_path, F_OK) != 0)
        return 0;
    json_t *root = json_load_file(w->state_path, 0, &je);
    json_t *arr = json_object_get(root, "webhooks");
    if (!root || !json_is_array(arr)) {
        snprintf(err, errlen, "AMIBRIDGE_STATE_DIR: %s is not a webhooks file: %s", w->state_path,
                 root ? "no webhooks array" : je.text);
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *o;
    json_array_foreach (arr, i, o) {
        struct wh_conf c = {0};
        struct wh_problem pb = {{0}, {0}};
        json_t *copy = json_deep_copy(o);
        json_object_del(copy, "static");
        int rc = wh_conf_apply(&c, copy, WH_STORED, w->allow, w->nallow, &pb);
        json_decref(copy);
        if (rc || sub_find(w, c.id)) {
            log_warn("webhook subscription in the state file skipped", "{s:s,s:s,s:s}", "file",
                     w->state_path, "field", rc ? pb.field : "id", "detail",
                     rc ? pb.detail : "the id is taken by a static subscription");
            wh_conf_free(&c);
            continue;
        }
        if (!sub_add(w, &c, 0)) {
            wh_conf_free(&c);
            json_decref(root);
            return snprintf(err, errlen, "out of memory"), -1;
        }
    }
    json_decref(root);
    return 0;
}

static void op_free(struct wh_op *op)
{
    wh_conf_free(&op->c);
    free(op);
}

/* The store took the change: make it here and answer. */
static void op_apply(struct wh_op *op)
{
    struct webhooks *w = op->w;
    struct wh_sub *s = sub_find(w, op->c.id);
    json_t *body = NULL;
    int status = 200;
    switch (op->kind) {
    case OP_CREATE:
        body = wh_conf_json(&op->c, 1);
        status = 201;
        if (s) {
            sub_update(s, &op->c);
        } else if (!sub_add(w, &op->c, 0)) {
            json_decref(body);
            body = NULL;
        }
        break;
    case OP_PATCH:
        body = wh_conf_json(&op->c, 0);
        if (s)
            sub_update(s, &op->c);
        break;
    case OP_DELETE:
        status = 204;
        if (s)
            sub_remove(w, s, 0);
        break;
    }
    if (op->cb) {
        if (status != 204 && !body)
            answer_oom(op->cb, op->ud);
        else
            answer(op->cb, op->ud, status, body);
    }
    op_free(op);
}

static void on_stored(void *ud, const redisReply *reply)
{
    struct wh_op *op = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (op->cb)
            answer_problem(op->cb, op->ud, 503, "store-unavailable", "Webhook store unavailable",
                           NULL, "Redis did not take the change: %s",
                           reply && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                     : "connection lost");
        op_free(op);
        return;
    }
    op_apply(op);
}

/* Write a subscription (op NULL: a change made here, e.g. a 410, that
 * nobody waits for). Takes op. */
static void store_put(struct webhooks *w, const struct wh_conf *c, struct wh_op *op)
{
    char err[PATH_MAX + 64];
    if (w->redis) {
        json_t *o = wh_conf_json(c, 1);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        int rc = text ? 0 : -ENOMEM;
        if (!rc && (rc = bus_redis_command(w->redis, NULL, NULL, "MULTI")) == 0) {
            bus_redis_command(w->redis, NULL, NULL, "HSET %s %s %s", w->hash_key, c->id, text);
            bus_redis_command(w->redis, NULL, NULL, "INCR %s", w->version_key);
            rc = bus_redis_command(w->redis, op ? on_stored : NULL, op, "EXEC");
        }
        if (text) {
            explicit_bzero(text, strlen(text));
            free(text);
        }
        if (rc && op) {
            if (op->cb)
                answer_problem(op->cb, op->ud, 503, "store-unavailable",
                               "Webhook store unavailable", NULL,
                               "Redis is not reachable; try again when it is back");
            op_free(op);
        }
        return;
    }
    if (!op) {
        if (w->cfg->state_dir && state_write(w, err, sizeof(err)))
            log_error("cannot save webhook subscriptions", "{s:s}", "error", err);
        return;
    }
    /* file or memory: apply here first, write, and undo when the write fails */
    if (!w->cfg->state_dir) {
        op_apply(op);
        return;
    }
    struct wh_sub *s = sub_find(w, op->c.id);
    struct wh_conf old;
    int had = s != NULL;
    if (had && wh_conf_copy(&old, &s->c)) {
        if (op->cb)
            answer_oom(op->cb, op->ud);
        op_free(op);
        return;
    }
    struct wh_conf next;
    if (wh_conf_copy(&next, &op->c)) {
        if (had)
            wh_conf_free(&old);
        if (op->cb)
            answer_oom(op->cb, op->ud);
        op_free(op);
        return;
    }
    if (had)
        sub_update(s, &next);
    else
        s = sub_add(w, &next, 0);
    wh_conf_free(&next);
    if (!s || state_write(w, err, sizeof(err))) {
        if (s && had)
            sub_update(s, &old);
        else if (s)
            sub_remove(w, s, 0);
        if (had)
            wh_conf_free(&old);
        log_error("cannot save webhook subscriptions", "{s:s}", "error", s ? err : "out of memory");
        if (op->cb)
            answer_problem(op->cb, op->ud, 503, "store-unavailable", "Webhook store unavailable",
                           NULL, "the state file could not be written (see the log)");
        op_free(op);
        return;
    }
    if (had)
        wh_conf_free(&old);
    op_apply(op);
}

static void store_del(struct webhooks *w, struct wh_op *op)
{
    char err[PATH_MAX + 64];
    if (w->redis) {
        char key[256];
        queue_key(w, op->c.id, key, sizeof(key));
        int rc = bus_redis_command(w->redis, NULL, NULL, "MULTI");
        if (rc == 0) {
            bus_redis_command(w->redis, NULL, NULL, "HDEL %s %s", w->hash_key, op->c.id);
            bus_redis_command(w->redis, NULL, NULL, "DEL %s", key);
            bus_redis_command(w->redis, NULL, NULL, "INCR %s", w->version_key);
            rc = bus_redis_command(w->redis, on_stored, op, "EXEC");
        }
        if (rc) {
            answer_problem(op->cb, op->ud, 503, "store-unavailable", "Webhook store unavailable",
                           NULL, "Redis is not reachable; try again when it is back");
            op_free(op);
        }
        return;
    }
    struct wh_sub *s = sub_find(w, op->c.id);
    if (s)
        sub_remove(w, s, 0);
    if (w->cfg->state_dir && state_write(w, err, sizeof(err))) {
        /* the subscription is gone here but still in the file: say so */
        log_error("cannot save webhook subscriptions", "{s:s}", "error", err);
        answer_problem(op->cb, op->ud, 503, "store-unavailable", "Webhook store unavailable", NULL,
                       "removed until restart, but the state file could not be written");
        op_free(op);
        return;
    }
    op_apply(op);
}

/* Make what is held here match the Redis hash. */
static void reconcile(struct webhooks *w, const redisReply *reply)
{
    size_t n = reply->elements / 2;
    char **seen = calloc(n + 1, sizeof(*seen));
    size_t nseen = 0;
    if (!seen)
        return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(v->str, v->len, 0, NULL);
        if (o)
            json_object_del(o, "static");
        struct wh_conf c = {0};
        struct wh_problem pb = {{0}, {0}};
        if (!o || wh_conf_apply(&c, o, WH_STORED, w->allow, w->nallow, &pb) ||
            strcmp(c.id, k->str)) {
            log_warn("webhook subscription in Redis skipped", "{s:s,s:s,s:s}", "id", k->str,
                     "field", pb.field, "detail", o ? pb.detail : "not JSON");
            json_decref(o);
            wh_conf_free(&c);
            continue;
        }
        json_decref(o);
        struct wh_sub *s = sub_find(w, c.id);
        if (s && s->c.is_static) {
            wh_conf_free(&c);
            continue;
        }
        seen[nseen++] = strdup(c.id);
        if (s) {
            sub_update(s, &c);
        } else if (!sub_add(w, &c, 1)) {
            wh_conf_free(&c);
        }
        wh_conf_free(&c);
    }
    for (struct wh_sub *s = w->subs, *next; s; s = next) {
        next = s->next;
        int found = s->c.is_static;
        for (size_t i = 0; i < nseen && !found; i++)
            found = seen[i] && !strcmp(seen[i], s->c.id);
        if (!found)
            sub_remove(w, s, 0);
    }
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);
    free(seen);
}

static void on_hash(void *ud, const redisReply *reply)
{
    struct webhooks *w = ud;
    w->polling = 0;
    if (w->closing || !reply || reply->type != REDIS_REPLY_ARRAY) {
        w->version[0] = '\0'; /* read it all again next time */
        return;
    }
    reconcile(w, reply);
}

static void on_version(void *ud, const redisReply *reply)
{
    struct webhooks *w = ud;
    char v[sizeof(w->version)];
    if (w->closing || !reply) {
        w->polling = 0;
        return;
    }
    snprintf(v, sizeof(v), "v%s", reply->type == REDIS_REPLY_STRING ? reply->str : "0");
    if (!strcmp(v, w->version)) {
        w->polling = 0;
        return;
    }
    /* every change bumps the version, so a version that vanished after we
     * saw one means Redis lost its data (restarted without persistence):
     * write back what is held here rather than forget every subscription */
    if (reply->type == REDIS_REPLY_NIL && w->version[0] && strcmp(w->version, "v0")) {
        size_t n = 0;
        for (struct wh_sub *s = w->subs; s; s = s->next)
            if (!s->gone && !s->c.is_static) {
                store_put(w, &s->c, NULL);
                n++;
            }
        log_warn("Redis lost the webhook subscriptions (restarted empty?): writing back the ones "
                 "held here",
                 "{s:I}", "subscriptions", (json_int_t)n);
        w->version[0] = '\0';
        w->polling = 0;
        return;
    }
    snprintf(w->version, sizeof(w->version), "%s", v);
    if (bus_redis_command(w->redis, on_hash, w, "HGETALL %s", w->hash_key) != 0) {
        w->version[0] = '\0';
        w->polling = 0;
    }
}

static void poll_store(struct webhooks *w)
{
    if (w->polling || w->closing || !bus_redis_up(w->redis))
        return;
    if (bus_redis_command(w->redis, on_version, w, "GET %s", w->version_key) == 0)
        w->polling = 1;
}

static void on_poll_timer(uv_timer_t *t)
{
    poll_store(t->data);
}

void webhooks_redis_state(void *ud, int up)
{
    struct webhooks *w = ud;
    if (!up || w->closing)
        return;
    poll_store(w);
    /* what a previous run left queued, for subscriptions held before Redis was up */
    for (struct wh_sub *s = w->subs; s; s = s->next)
        if (!s->gone && !s->loaded && !s->loading)
            sub_load(s);
}

/* --- the API ----------------------------------------------------------------------- */

static int count_subs(const struct webhooks *w)
{
    int n = 0;
    for (const struct wh_sub *s = w->subs; s; s = s->next)
        n += !s->gone;
    return n;
}

static void problem_answer(webhooks_cb cb, void *ud, const struct wh_problem *pb)
{
    answer_problem(cb, ud, 400, "invalid-field", "Invalid field", pb->field, "%s: %s", pb->field,
                   pb->detail);
}

void webhooks_create(struct webhooks *w, json_t *body, webhooks_cb cb, void *ud)
{
    if (count_subs(w) >= w->cfg->webhook_max_subscriptions) {
        answer_problem(cb, ud, 409, "webhook-limit", "Too many webhook subscriptions", NULL,
                       "%d subscriptions exist, the most allowed "
                       "(AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS)",
                       count_subs(w));
        return;
    }
    struct wh_op *op = calloc(1, sizeof(*op));
    struct wh_problem pb = {{0}, {0}};
    if (!op) {
        answer_oom(cb, ud);
        return;
    }
    op->w = w;
    op->kind = OP_CREATE;
    op->cb = cb;
    op->ud = ud;
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
            problem_answer(cb, ud, &pb);
        else
            answer_oom(cb, ud);
        op_free(op);
        return;
    }
    snprintf(op->c.id, sizeof(op->c.id), "wh_%s", idhex);
    log_info("webhook subscription created", "{s:s,s:s}", "webhook", op->c.id, "url", op->c.url);
    store_put(w, &op->c, op);
}

/* The subscription an API change may touch: 404 unknown, 409 static. */
static struct wh_sub *sub_for_change(struct webhooks *w, const char *id, webhooks_cb cb, void *ud)
{
    struct wh_sub *s = sub_find(w, id);
    if (!s) {
        answer_problem(cb, ud, 404, "webhook-not-found", "No such webhook subscription", "id",
                       "no webhook subscription has the id '%.64s'", id);
        return NULL;
    }
    if (s->c.is_static) {
        answer_problem(cb, ud, 409, "webhook-static", "Static webhook subscription", "id",
                       "'%.64s' is defined in the config file; change it there", id);
        return NULL;
    }
    return s;
}

void webhooks_patch(struct webhooks *w, const char *id, json_t *body, webhooks_cb cb, void *ud)
{
    struct wh_sub *s = sub_for_change(w, id, cb, ud);
    if (!s)
        return;
    struct wh_op *op = calloc(1, sizeof(*op));
    struct wh_problem pb = {{0}, {0}};
    if (!op) {
        answer_oom(cb, ud);
        return;
    }
    op->w = w;
    op->kind = OP_PATCH;
    op->cb = cb;
    op->ud = ud;
    int rc = wh_conf_copy(&op->c, &s->c);
    if (rc == 0)
        rc = wh_conf_patch(&op->c, body, w->cfg->webhook_secret_grace_s, (long long)time(NULL),
                           w->allow, w->nallow, &pb);
    if (rc) {
        if (rc == -1)
            problem_answer(cb, ud, &pb);
        else
            answer_oom(cb, ud);
        op_free(op);
        return;
    }
    int rotated = strcmp(op->c.secret, s->c.secret) != 0;
    log_info("webhook subscription changed", "{s:s,s:b,s:I}", "webhook", id, "secret_rotated",
             rotated, "previous_secrets", (json_int_t)op->c.nprev);
    store_put(w, &op->c, op);
}

void webhooks_delete(struct webhooks *w, const char *id, webhooks_cb cb, void *ud)
{
    if (!sub_for_change(w, id, cb, ud))
        return;
    struct wh_op *op = calloc(1, sizeof(*op));
    if (!op) {
        answer_oom(cb, ud);
        return;
    }
    op->w = w;
    op->kind = OP_DELETE;
    op->cb = cb;
    op->ud = ud;
    snprintf(op->c.id, sizeof(op->c.id), "%s", id);
    log_info("webhook subscription deleted", "{s:s}", "webhook", id);
    store_del(w, op);
}

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
    xfer_cleanup(&t->x);
    wh_conf_free(&t->c);
    free(t->body);
    free(t);
}

static void test_done(struct wh_xfer *x, CURLcode rc, long status)
{
    struct wh_test *t = x->owner;
    struct webhooks *w = x->w;
    char err[192];
    double latency = (double)(uv_hrtime() - x->start) / 1e9;
    const char *outcome = xfer_outcome(x, rc, status, err, sizeof(err));
    int ok = !strcmp(outcome, "2xx");
    test_unlink(w, t);
    metrics_inc(METRIC_WEBHOOK_ATTEMPTS, outcome, NULL, 1);
    metrics_observe(METRIC_WEBHOOK_LATENCY, NULL, latency);
    struct wh_sub *s = sub_find(w, t->sub);
    if (s)
        record(s, t->id, "ping", 1, rc == CURLE_OK ? status : 0, latency,
               ok ? "delivered" : "failed", ok ? NULL : err);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:o,s:f,s:o}", "delivery_id", t->id, "event", "ping", "result",
                  ok ? "delivered" : "failed", "status",
                  rc == CURLE_OK && status ? json_integer(status) : json_null(), "latency_ms",
                  latency * 1000.0, "error", ok ? json_null() : json_string(err));
    if (o)
        answer(t->cb, t->ud, 200, o);
    else
        answer_oom(t->cb, t->ud);
    test_free(t);
}

void webhooks_test(struct webhooks *w, const char *id, webhooks_cb cb, void *ud)
{
    struct wh_sub *s = sub_find(w, id);
    if (!s) {
        answer_problem(cb, ud, 404, "webhook-not-found", "No such webhook subscription", "id",
                       "no webhook subscription has the id '%.64s'", id);
        return;
    }
    if (w->closing) {
        answer_problem(cb, ud, 503, "shutting-down", "Shutting down", NULL,
                       "the service is shutting down");
        return;
    }
    struct wh_test *t = calloc(1, sizeof(*t));
    char when[40];
    iso_time(wall_ms(), when, sizeof(when));
    json_t *o = json_pack("{s:s,s:s,s:s}", "event", "ping", "webhook", id, "time", when);
    if (!t || !o || xfer_init(w, &t->x, t, test_done) || wh_random_hex(t->id, DELIVERY_ID_BYTES) ||
        wh_conf_copy(&t->c, &s->c) || !(t->body = json_dumps(o, JSON_COMPACT))) {
        json_decref(o);
        if (t)
            test_free(t);
        answer_oom(cb, ud);
        return;
    }
    json_decref(o);
    snprintf(t->sub, sizeof(t->sub), "%s", id);
    t->cb = cb;
    t->ud = ud;
    if (xfer_start(&t->x, &t->c, "ping", t->id, 1, t->body, strlen(t->body))) {
        test_free(t);
        answer_oom(cb, ud);
        return;
    }
    t->next = w->tests;
    w->tests = t;
}

json_t *webhooks_list_json(struct webhooks *w)
{
    json_t *arr = json_array();
    for (struct wh_sub *s = w->subs; arr && s; s = s->next)
        if (!s->gone && json_array_append_new(arr, wh_conf_json(&s->c, 0))) {
            json_decref(arr);
            return NULL;
        }
    return arr ? json_pack("{s:o}", "webhooks", arr) : NULL;
}

json_t *webhooks_get_json(struct webhooks *w, const char *id, int *status)
{
    struct wh_sub *s = sub_find(w, id);
    if (!s) {
        *status = 404;
        return NULL;
    }
    json_t *o = wh_conf_json(&s->c, 0);
    json_t *st = json_pack("{s:I,s:I,s:I,s:I,s:b}", "queued", (json_int_t)s->depth, "delivered",
                           (json_int_t)s->delivered, "failed", (json_int_t)s->failed, "dropped",
                           (json_int_t)s->dropped, "retrying", s->waiting);
    if (!o || !st || json_object_set_new(o, "stats", st)) {
        json_decref(o);
        *status = 500;
        return NULL;
    }
    return o;
}

json_t *webhooks_deliveries_json(struct webhooks *w, const char *id, int *status)
{
    struct wh_sub *s = sub_find(w, id);
    if (!s) {
        *status = 404;
        return NULL;
    }
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
    json_t *out = arr ? json_pack("{s:s,s:o}", "webhook", id, "deliveries", arr) : NULL;
    if (!out)
        *status = 500;
    return out;
}

void webhooks_stats(const struct webhooks *w, struct webhooks_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (const struct wh_sub *s = w->subs; s; s = s->next) {
        if (s->gone)
            continue;
        st->subscriptions++;
        st->disabled += !s->c.enabled;
        st->queued += s->depth;
        st->inflight += (size_t)s->sending;
    }
    for (const struct wh_test *t = w->tests; t; t = t->next)
        st->inflight++;
}

/* --- life -------------------------------------------------------------------------- */

static int static_subs(struct webhooks *w, char *err, size_t errlen)
{
    const char *file = w->cfg->config_path ? w->cfg->config_path : "(config file)";
    json_error_t je;
    json_t *arr = json_loads(w->cfg->webhooks_json, 0, &je);
    size_t i;
    json_t *o;
    int rc = 0;
    json_array_foreach (arr, i, o) {
        struct wh_conf c = {0};
        struct wh_problem pb = {{0}, {0}};
        json_t *copy = json_is_object(o) ? json_deep_copy(o) : json_incref(o);
        if (json_is_object(copy) && !json_object_get(copy, "enabled"))
            json_object_set_new(copy, "enabled", json_true());
        int r = wh_conf_apply(&c, copy, WH_STORED, w->allow, w->nallow, &pb);
        json_decref(copy);
        if (r == 0 && sub_find(w, c.id)) {
            r = -1;
            snprintf(pb.field, sizeof(pb.field), "id");
            snprintf(pb.detail, sizeof(pb.detail), "'%s' is used twice", c.id);
        }
        /* the store takes any secret older versions took; a file a person
         * writes gets the API's check of the whsec_ form */
        for (size_t k = 0; r == 0 && k <= c.nprev; k++) {
            const char *sec = k == 0 ? c.secret : c.prev[k - 1].secret;
            if (!strncmp(sec, WH_SECRET_PREFIX, strlen(WH_SECRET_PREFIX)) &&
                !wh_secret_is_standard(sec)) {
                r = -1;
                if (k == 0)
                    snprintf(pb.field, sizeof(pb.field), "secret");
                else
                    snprintf(pb.field, sizeof(pb.field), "previous_secrets[%zu].secret", k - 1);
                snprintf(pb.detail, sizeof(pb.detail),
                         "a whsec_ secret must be whsec_ and the padded base64 of %d to %d bytes",
                         WH_KEY_MIN, WH_KEY_MAX);
            }
        }
        if (r) {
            snprintf(err, errlen, "config file %s: webhooks[%zu].%s: %s", file, i, pb.field,
                     r == -1 ? pb.detail : "out of memory");
            wh_conf_free(&c);
            rc = -1;
            break;
        }
        c.is_static = 1;
        if (!sub_add(w, &c, 1)) {
            wh_conf_free(&c);
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
    }
    json_decref(arr);
    if (rc == 0 && count_subs(w) > w->cfg->webhook_max_subscriptions) {
        snprintf(err, errlen,
                 "config file %s: webhooks: %d subscriptions, more than "
                 "AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS (%d)",
                 file, count_subs(w), w->cfg->webhook_max_subscriptions);
        rc = -1;
    }
    return rc;
}

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
    snprintf(w->hash_key, sizeof(w->hash_key), "%s:webhooks", c->redis_prefix);
    snprintf(w->version_key, sizeof(w->version_key), "%s:webhooks:version", c->redis_prefix);
    if (c->state_dir)
        snprintf(w->state_path, sizeof(w->state_path), "%s/%s", c->state_dir, WEBHOOKS_STATE_FILE);
    char nerr[200];
    if (c->webhook_allow_nets &&
        netlist_parse(c->webhook_allow_nets, &w->allow, &w->nallow, nerr, sizeof(nerr))) {
        snprintf(err, errlen, "AMIBRIDGE_WEBHOOK_ALLOW_NETS: %s", nerr);
        free(w);
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    w->multi = curl_multi_init();
    if (!w->multi) {
        snprintf(err, errlen, "out of memory");
        free(w->allow);
        free(w);
        return NULL;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)WEBHOOKS_CONNECTS_MAX);
    uv_timer_init(loop, &w->curl_timer);
    uv_timer_init(loop, &w->poll_timer);
    w->curl_timer.data = w->poll_timer.data = w;
    if ((c->webhooks_json && static_subs(w, err, errlen)) ||
        (!redis && c->state_dir && state_load(w, err, errlen))) {
        webhooks_close(w);
        uv_run(loop, UV_RUN_NOWAIT);
        webhooks_free(w);
        return NULL;
    }
    if (redis)
        uv_timer_start(&w->poll_timer, on_poll_timer, WEBHOOKS_POLL_MS, WEBHOOKS_POLL_MS);
    else if (!c->state_dir)
        log_info("webhook subscriptions made through the API are kept in memory only (set "
                 "AMIBRIDGE_STATE_DIR or AMIBRIDGE_REDIS_URL to keep them)",
                 NULL);
    return w;
}

static void abort_tests(struct webhooks *w)
{
    while (w->tests) {
        struct wh_test *t = w->tests;
        w->tests = t->next;
        curl_multi_remove_handle(w->multi, t->x.easy);
        answer_problem(t->cb, t->ud, 503, "shutting-down", "Shutting down", NULL,
                       "the service is shutting down; the test delivery was not completed");
        test_free(t);
    }
}

void webhooks_set_lease(struct webhooks *w, struct bus_lease *l)
{
    w->lease = l;
}

void webhooks_leader(void *ud, enum bus_lease_change ch)
{
    struct webhooks *w = ud;
    if (w->closing)
        return;
    /* back with the lease unbroken: carry on with what is held here */
    int reload = ch == BUS_LEASE_LEADER_FRESH || ch == BUS_LEASE_FOLLOWER;
    for (struct wh_sub *s = w->subs; s; s = s->next) {
        if (s->gone)
            continue;
        if (s->sending) {
            curl_multi_remove_handle(w->multi, s->x.easy);
            s->sending = 0;
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
            if (ch == BUS_LEASE_LEADER_FRESH && !s->loading && w->redis)
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

void webhooks_quiesce(struct webhooks *w)
{
    abort_tests(w);
}

static void handle_closed(uv_handle_t *h)
{
    (void)h;
}

void webhooks_close(struct webhooks *w)
{
    if (w->closing)
        return;
    w->closing = 1;
    abort_tests(w);
    size_t pending = 0;
    for (struct wh_sub *s = w->subs; s; s = s->next) {
        if (s->sending) {
            curl_multi_remove_handle(w->multi, s->x.easy);
            s->sending = 0;
        }
        pending += s->depth;
        if (s->timer_open) {
            uv_timer_stop(&s->timer);
            uv_close((uv_handle_t *)&s->timer, NULL);
            s->timer_open = 0;
        }
    }
    if (pending)
        log_info(w->redis ? "webhook deliveries left queued in Redis"
                          : "webhook deliveries not made (kept in memory only)",
                 "{s:I}", "pending", (json_int_t)pending);
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    while (w->socks)
        sock_drop(w, w->socks);
    uv_timer_stop(&w->poll_timer);
    uv_close((uv_handle_t *)&w->curl_timer, handle_closed);
    uv_close((uv_handle_t *)&w->poll_timer, handle_closed);
}

void webhooks_free(struct webhooks *w)
{
    if (!w)
        return;
    while (w->subs) {
        struct wh_sub *s = w->subs;
        w->subs = s->next;
        sub_free(s);
    }
    free(w->allow);
    free(w);
    curl_global_cleanup();
}
