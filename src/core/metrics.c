#include "core/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct family_def {
    const char *name;
    const char *help;
    enum metric_type type;
    const char *labels[METRICS_MAX_LABELS];
};

static const struct family_def defs[METRIC_COUNT] = {
    [METRIC_HTTP_REQUESTS] = {"amibridge_http_requests_total",
                              "HTTP requests answered.",
                              M_COUNTER,
                              {"route", "status"}},
    [METRIC_HTTP_DURATION] = {"amibridge_http_request_duration_seconds",
                              "Time from request to answer.",
                              M_HISTOGRAM,
                              {"route"}},
    [METRIC_AMI_ACTIONS] = {"amibridge_ami_actions_total",
                            "AMI actions by their result.",
                            M_COUNTER,
                            {"server", "action", "result"}},
    [METRIC_AMI_ACTION_DURATION] = {"amibridge_ami_action_duration_seconds",
                                    "Time from sending an action to its complete reply.",
                                    M_HISTOGRAM,
                                    {"server"}},
    [METRIC_AMI_CONNECTIONS] = {"amibridge_ami_connections",
                                "AMI connections by state.",
                                M_GAUGE,
                                {"server", "role", "state"}},
    [METRIC_AMI_RECONNECTS] = {"amibridge_ami_reconnects_total",
                               "AMI connection attempts that failed or connections lost.",
                               M_COUNTER,
                               {"server"}},
    [METRIC_EVENTS_RECEIVED] = {"amibridge_events_received_total",
                                "AMI events received on the event connection.",
                                M_COUNTER,
                                {"server"}},
    [METRIC_EVENTS_FILTERED] = {"amibridge_events_filtered_total",
                                "Events dropped by the include/exclude filters.",
                                M_COUNTER,
                                {"server"}},
    [METRIC_EVENTS_PUBLISHED] = {"amibridge_events_published_total",
                                 "Events handed to an outlet.",
                                 M_COUNTER,
                                 {"outlet"}},
    [METRIC_EVENTS_DROPPED] = {"amibridge_events_dropped_total",
                               "Events an outlet lost.",
                               M_COUNTER,
                               {"outlet", "reason"}},
    [METRIC_REDIS_BUFFER] = {"amibridge_redis_buffer_events",
                             "Events waiting to be published to Redis.",
                             M_GAUGE,
                             {NULL}},
    [METRIC_EVENTS_PAUSED] = {"amibridge_events_read_paused_seconds_total",
                              "Time AMI event reading was held back while Redis caught up.",
                              M_COUNTER,
                              {NULL}},
    [METRIC_EVENTS_HOLD_FULL] = {"amibridge_events_hold_full_total",
                                 "Times the AMI event hold was full, so its oldest events went "
                                 "on unheld (and the Redis outlet dropped what it could not take).",
                                 M_COUNTER,
                                 {"server"}},
    [METRIC_REDIS_UP] = {"amibridge_redis_up",
                         "1 when the Redis connection is up.",
                         M_GAUGE,
                         {NULL}},
    [METRIC_SSE_CLIENTS] = {"amibridge_sse_clients",
                            "Connected Server-Sent Events clients.",
                            M_GAUGE,
                            {NULL}},
    [METRIC_ORIGINATE_REJECTED] = {"amibridge_originate_rejected_total",
                                   "Originates refused by the guard or the dial policy.",
                                   M_COUNTER,
                                   {"reason"}},
    [METRIC_ORIGINATES_IN_FLIGHT] = {"amibridge_originates_in_flight",
                                     "Originates waiting for their outcome.",
                                     M_GAUGE,
                                     {"server"}},
    [METRIC_IDEMPOTENCY_KEYS] = {"amibridge_idempotency_keys",
                                 "Idempotency keys held in memory.",
                                 M_GAUGE,
                                 {NULL}},
    [METRIC_PROCESS_RSS] = {"amibridge_process_resident_memory_bytes",
                            "Resident memory.",
                            M_GAUGE,
                            {NULL}},
    [METRIC_PROCESS_FDS] = {"amibridge_process_open_fds",
                            "Open file descriptors.",
                            M_GAUGE,
                            {NULL}},
    [METRIC_BUILD_INFO] = {"amibridge_build_info",
                           "Always 1; the version is a label.",
                           M_GAUGE,
                           {"version"}},
    [METRIC_WEBHOOK_DELIVERIES] = {"amibridge_webhook_deliveries_total",
                                   "Webhook deliveries by how they ended (delivered, failed, "
                                   "dropped, disabled).",
                                   M_COUNTER,
                                   {"result"}},
    [METRIC_WEBHOOK_ATTEMPTS] = {"amibridge_webhook_attempts_total",
                                 "Webhook delivery attempts by outcome (2xx, 4xx, 5xx, timeout, "
                                 "refused, error).",
                                 M_COUNTER,
                                 {"outcome"}},
    [METRIC_WEBHOOK_LATENCY] = {"amibridge_webhook_attempt_duration_seconds",
                                "Time from starting a webhook attempt to its answer.",
                                M_HISTOGRAM,
                                {NULL}},
    [METRIC_WEBHOOK_QUEUE] = {"amibridge_webhook_queue_deliveries",
                              "Webhook deliveries waiting, all subscriptions.",
                              M_GAUGE,
                              {NULL}},
    [METRIC_WEBHOOK_SUBSCRIPTIONS] = {"amibridge_webhook_subscriptions",
                                      "Webhook subscriptions by state (enabled, disabled).",
                                      M_GAUGE,
                                      {"state"}},
    [METRIC_AUTH_FAILURES] = {"amibridge_auth_failures_total",
                              "Requests refused before their handler: missing, invalid (wrong "
                              "key), scope, remote, locked_out, untrusted.",
                              M_COUNTER,
                              {"reason"}},
    [METRIC_LEADER] = {"amibridge_leader",
                       "1 while this replica holds the leader lease (publishes events, "
                       "makes webhook deliveries).",
                       M_GAUGE,
                       {NULL}},
    [METRIC_LEADER_CHANGES] = {"amibridge_leader_changes_total",
                               "Times this replica took or lost the leader lease.",
                               M_COUNTER,
                               {NULL}},
    [METRIC_HTTP_CUT] = {"amibridge_http_connections_cut_total",
                         "Connections closed for not sending a request head (header_timeout) "
                         "or a whole request (request_timeout) in time, or to make room for "
                         "new clients (reserve).",
                         M_COUNTER,
                         {"reason"}},
    [METRIC_HTTP_REFUSED] = {"amibridge_http_connections_refused_total",
                             "Connections closed as soon as they were accepted "
                             "(per_client_limit: the client address holds too many).",
                             M_COUNTER,
                             {"reason"}},
    [METRIC_SSE_REFUSED] = {"amibridge_sse_refused_total",
                            "Event streams refused: max_clients (503), per_key (429).",
                            M_COUNTER,
                            {"reason"}},
    [METRIC_CALLS_LIVE] = {"amibridge_calls_live",
                           "Calls going on now, as the call model follows them (every server).",
                           M_GAUGE,
                           {NULL}},
    [METRIC_CALLS_HISTORY] = {"amibridge_calls_history",
                              "Ended calls kept for GET /v1/calls/{id}.",
                              M_GAUGE,
                              {NULL}},
    [METRIC_CALLS] = {"amibridge_calls_total",
                      "Calls the call model created and ended, and those not followed "
                      "(untracked: past AMIBRIDGE_CALL_MAX_LIVE).",
                      M_COUNTER,
                      {"event"}},
};

struct series {
    char *labels[METRICS_MAX_LABELS];
    uint64_t hash;            /* of the labels: the index's key */
    double value;             /* counter, gauge; histogram: sum */
    unsigned long long count; /* histogram */
    unsigned long long b[NBUCKETS];
};

struct family {
    struct series *s;
    size_t n, cap;
    struct idmap idx; /* labels' hash -> index + 1 (a series is found without a scan) */
    int idx_ready;
};

static struct family fams[METRIC_COUNT];

static int label_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return !strcmp(a, b);
}

/* FNV-1a over the labels (an absent one counts apart from an empty one);
 * never 0 or UINT64_MAX, idmap's own keys. */
static uint64_t labels_hash(const char *const l[METRICS_MAX_LABELS])
{
    uint64_t h = 1469598103934665603ULL;
    for (int k = 0; k < METRICS_MAX_LABELS; k++) {
        h = (h ^ (l[k] ? 1u : 2u)) * 1099511628211ULL;
        for (const char *p = l[k]; p && *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return h == 0 || h == UINT64_MAX ? 1 : h;
}

static int labels_eq(const struct series *s, const char *const l[METRICS_MAX_LABELS])
{
    for (int k = 0; k < METRICS_MAX_LABELS; k++)
        if (!label_eq(s->labels[k], l[k]))
            return 0;
    return 1;
}

static struct series *lookup(struct family *f, const char *const l[METRICS_MAX_LABELS], uint64_t h)
{
    uintptr_t at = f->idx_ready ? (uintptr_t)idmap_get(&f->idx, h) : 0;
    if (at && labels_eq(&f->s[at - 1], l))
        return &f->s[at - 1];
    if (!at)
        return NULL;                  /* no series has this hash */
    for (size_t i = 0; i < f->n; i++) /* two label sets with one hash */
        if (f->s[i].hash == h && labels_eq(&f->s[i], l))
            return &f->s[i];
    return NULL;
}

static struct series *find(enum metric_id id, const char *const l[METRICS_MAX_LABELS])
{
    struct family *f = &fams[id];
    uint64_t h = labels_hash(l);
    struct series *s = lookup(f, l, h);
    if (s)
        return s;
    const char *other[METRICS_MAX_LABELS];
    if (f->n >= METRICS_MAX_SERIES) {
        /* too many combinations: the rest is counted under "other" */
        for (int k = 0; k < METRICS_MAX_LABELS; k++)
            other[k] = l[k] ? "other" : NULL;
        h = labels_hash(other);
        if ((s = lookup(f, other, h)) != NULL || f->n > METRICS_MAX_SERIES)
            return s;
        l = other;
    }
    if (!f->idx_ready) {
        idmap_init(&f->idx);
        f->idx_ready = 1;
    }
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        struct series *ns = realloc(f->s, ncap * sizeof(*ns));
        if (!ns)
            return NULL;
        f->s = ns;
        f->cap = ncap;
    }
    s = &f->s[f->n];
    memset(s, 0, sizeof(*s));
    for (int k = 0; k < METRICS_MAX_LABELS; k++)
        if (l[k] && !(s->labels[k] = strdup(l[k]))) {
            for (int j = 0; j < k; j++)
                free(s->labels[j]);
            return NULL;
        }
    s->hash = h;
    /* the first series of a hash is indexed; a later one with the same hash
     * is found by the scan in lookup() */
    if (!idmap_get(&f->idx, h) && idmap_put(&f->idx, h, (void *)(uintptr_t)(f->n + 1)) != 0) {
        for (int k = 0; k < METRICS_MAX_LABELS; k++)
            free(s->labels[k]);
        return NULL;
    }
    f->n++;
    return s;
}

void metrics_inc3(enum metric_id id, const char *l1, const char *l2, const char *l3, double v)
{
    const char *l[METRICS_MAX_LABELS] = {l1, l2, l3};
    struct series *s = find(id, l);
    if (s)
        s->value += v;
}

void metrics_inc(enum metric_id id, const char *l1, const char *l2, double v)
{
    metrics_inc3(id, l1, l2, NULL, v);
}

void metrics_set(enum metric_id id, const char *l1, const char *l2, const char *l3, double v)
{
    const char *l[METRICS_MAX_LABELS] = {l1, l2, l3};
    struct series *s = find(id, l);
    if (s)
        s->value = v;
}

void metrics_observe(enum metric_id id, const char *l1, double seconds)
{
    const char *l[METRICS_MAX_LABELS] = {l1, NULL, NULL};
    struct series *s = find(id, l);
    if (!s)
        return;
    s->value += seconds;
    s->count++;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= buckets[i])
            s->b[i]++;
}

void metrics_clear(enum metric_id id)
{
    struct family *f = &fams[id];
    for (size_t i = 0; i < f->n; i++)
        for (int k = 0; k < METRICS_MAX_LABELS; k++)
            free(f->s[i].labels[k]);
    f->n = 0;
    if (f->idx_ready) {
        idmap_release(&f->idx);
        f->idx_ready = 0;
    }
}

void metrics_reset(void)
{
    for (int i = 0; i < METRIC_COUNT; i++) {
        metrics_clear((enum metric_id)i);
        free(fams[i].s);
        fams[i].s = NULL;
        fams[i].cap = 0;
    }
}

/* Label values escaped as the text format wants: backslash, quote, newline. */
static int put_labels(struct strbuf *out, const struct family_def *d, const struct series *s,
                      const char *extra_name, const char *extra_value)
{
    int any = 0, rc = 0;
    for (int k = 0; k < METRICS_MAX_LABELS && !rc; k++) {
        if (!d->labels[k] || !s->labels[k])
            continue;
        rc |= strbuf_append_str(out, any ? "," : "{");
        rc |= strbuf_printf(out, "%s=\"", d->labels[k]);
        for (const char *p = s->labels[k]; *p && !rc; p++) {
            if (*p == '\\' || *p == '"')
                rc |= strbuf_printf(out, "\\%c", *p);
            else if (*p == '\n')
                rc |= strbuf_append_str(out, "\\n");
            else
                rc |= strbuf_append(out, p, 1);
        }
        rc |= strbuf_append_str(out, "\"");
        any = 1;
    }
    if (extra_name) {
        rc |= strbuf_append_str(out, any ? "," : "{");
        rc |= strbuf_printf(out, "%s=\"%s\"", extra_name, extra_value);
        any = 1;
    }
    if (any)
        rc |= strbuf_append_str(out, "}");
    return rc;
}

static int put_value(struct strbuf *out, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        return strbuf_printf(out, " %.0f\n", v);
    return strbuf_printf(out, " %.9g\n", v);
}

int metrics_render(struct strbuf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int rc = 0;
    for (int i = 0; i < METRIC_COUNT && !rc; i++) {
        const struct family_def *d = &defs[i];
        const struct family *f = &fams[i];
        rc |= strbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
                            types[d->type]);
        for (size_t j = 0; j < f->n && !rc; j++) {
            const struct series *s = &f->s[j];
            if (d->type != M_HISTOGRAM) {
                rc |= strbuf_append_str(out, d->name);
                rc |= put_labels(out, d, s, NULL, NULL);
                rc |= put_value(out, s->value);
                continue;
            }
            char le[32];
            for (size_t b = 0; b < NBUCKETS && !rc; b++) {
                snprintf(le, sizeof(le), "%g", buckets[b]);
                rc |= strbuf_printf(out, "%s_bucket", d->name);
                rc |= put_labels(out, d, s, "le", le);
                rc |= put_value(out, (double)s->b[b]);
            }
            rc |= strbuf_printf(out, "%s_bucket", d->name);
            rc |= put_labels(out, d, s, "le", "+Inf");
            rc |= put_value(out, (double)s->count);
            rc |= strbuf_printf(out, "%s_sum", d->name);
            rc |= put_labels(out, d, s, NULL, NULL);
            rc |= put_value(out, s->value);
            rc |= strbuf_printf(out, "%s_count", d->name);
            rc |= put_labels(out, d, s, NULL, NULL);
            rc |= put_value(out, (double)s->count);
        }
    }
    return rc ? -ENOMEM : 0;
}
