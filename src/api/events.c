/* GET /v1/events and GET /v1/calls/events: the AMI event stream and the
 * call event stream as Server-Sent Events, one hub each.
 *
 * Each client has its own bounded queue of events (references to the one
 * encoded copy); a client that falls AMIBRIDGE_SSE_QUEUE events behind is
 * sent a final comment saying so and disconnected, so it never slows the
 * others or the loop. A comment heartbeat goes out every
 * AMIBRIDGE_SSE_HEARTBEAT_S; Last-Event-ID replays from the bus's ring.
 * One API key (or, without keys, one client address) may hold at most
 * AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY of the AMIBRIDGE_SSE_MAX_CLIENTS slots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "api/sseid.h"
#include "bus/events.h"
#include "core/jsonw.h"
#include "core/list.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strbuf.h"

#define SSE_NAMES_MAX   64
#define SSE_FILTERS_MAX 8
#define SSE_FILL_BYTES  (64 * 1024) /* events formatted per refill */
#define SSE_RETRY_MS    2000
#define SSE_RETRY_AFTER "5"                    /* seconds, for a refused stream */
#define SSE_OWNER_MAX   (CFG_NAME_MAX + 8 + 1) /* "key:NAME" or "addr:ADDRESS" */

struct sse_filter {
    char *key, *value;
};

struct sse_client {
    struct sse_hub *hub;
    struct http_stream *st;
    long server; /* -1: every server */
    char *names[SSE_NAMES_MAX];
    size_t nnames;
    struct sse_filter filters[SSE_FILTERS_MAX];
    size_t nfilters;
    struct bus_event **q; /* ring */
    size_t qcap, qhead, qn;
    struct strbuf out;
    size_t out_pos;
    int ending;
    char owner[SSE_OWNER_MAX]; /* whose slot: the per-key cap */
    struct sse_client *prev, *next;
};

struct sse_hub {
    struct api *a;
    struct bus *bus; /* what it streams, and replays from */
    struct sse_client *clients;
    size_t n;
    uv_timer_t heartbeat;
    uint64_t evicted;
    void (*close_done)(void *);
    void *close_arg;
};

/* --- matching and formatting ------------------------------------------------------------ */

static int client_wants(const struct sse_client *c, const struct bus_event *e)
{
    if (c->server >= 0 && (size_t)c->server != e->server)
        return 0;
    if (c->nnames && !bus_glob_any(c->names, c->nnames, e->name))
        return 0;
    for (size_t i = 0; i < c->nfilters; i++) {
        const char *v = ami_msg_get(e->msg, c->filters[i].key);
        if (!v || strcmp(v, c->filters[i].value))
            return 0;
    }
    return 1;
}

/* By hand, not printf: this runs for every event and every client. */
static void format_event(const struct sse_hub *h, const struct bus_event *e, struct strbuf *out)
{
    size_t name = strlen(e->name), server = h->a->npools > 1 ? strlen(e->server_name) : 0;
    if (strbuf_grow(out, 4 + server + 1 + 20 + 8 + name + 7 + e->len + 2))
        return;
    strbuf_append(out, "id: ", 4);
    if (server) {
        strbuf_append(out, e->server_name, server);
        strbuf_append(out, ":", 1);
    }
    jsonw_u64(out, e->seq);
    strbuf_append(out, "\nevent: ", 8);
    strbuf_append(out, e->name, name);
    strbuf_append(out, "\ndata: ", 7);
    strbuf_append(out, e->json, e->len); /* compact JSON: no newline inside */
    strbuf_append(out, "\n\n", 2);
}

static void client_end(struct sse_client *c, const char *comment)
{
    if (c->ending)
        return;
    c->ending = 1;
    while (c->qn) {
        bus_event_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qn--;
    }
    strbuf_printf(&c->out, ": %s\n\n", comment);
    http_stream_wake(c->st);
}

/* 1 when the event was queued for c. */
static int enqueue(struct sse_client *c, struct bus_event *e)
{
    if (c->ending || !client_wants(c, e))
        return 0;
    if (c->qn == c->qcap) {
        char why[160];
        snprintf(why, sizeof(why),
                 "disconnected: this client fell more than %zu events behind; reconnect with "
                 "Last-Event-ID",
                 c->qcap);
        c->hub->evicted++;
        metrics_inc(METRIC_EVENTS_DROPPED, "sse", "slow_client", 1);
        log_warn("SSE client too slow: disconnected", "{s:I}", "queue", (json_int_t)c->qcap);
        client_end(c, why);
        return 0;
    }
    bus_event_ref(e);
    c->q[(c->qhead + c->qn) % c->qcap] = e;
    c->qn++;
    http_stream_wake(c->st);
    return 1;
}

/* --- the stream ---------------------------------------------------------------------------- */

static ssize_t client_read(void *ud, char *buf, size_t max)
{
    struct sse_client *c = ud;
    if (c->out_pos == c->out.len) {
        strbuf_reset(&c->out);
        c->out_pos = 0;
        while (c->qn && c->out.len < SSE_FILL_BYTES) {
            struct bus_event *e = c->q[c->qhead];
            c->qhead = (c->qhead + 1) % c->qcap;
            c->qn--;
            format_event(c->hub, e, &c->out);
            bus_event_unref(e);
        }
    }
    size_t left = c->out.len - c->out_pos;
    if (left) {
        size_t n = left < max ? left : max;
        memcpy(buf, c->out.data + c->out_pos, n);
        c->out_pos += n;
        return (ssize_t)n;
    }
    return c->ending ? -1 : 0;
}

static void client_closed(void *ud)
{
    struct sse_client *c = ud;
    struct sse_hub *h = c->hub;
    if (h) { /* NULL when the hub went first, at shutdown */
        LIST_UNLINK(h->clients, c);
        h->n--;
        metrics_set(METRIC_SSE_CLIENTS, NULL, NULL, NULL, (double)h->n);
    }
    while (c->qn) {
        bus_event_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qn--;
    }
    free(c->q);
    for (size_t i = 0; i < c->nnames; i++)
        free(c->names[i]);
    for (size_t i = 0; i < c->nfilters; i++) {
        free(c->filters[i].key);
        free(c->filters[i].value);
    }
    strbuf_release(&c->out);
    free(c);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct sse_hub *h = t->data;
    for (struct sse_client *c = h->clients; c; c = c->next) {
        if (c->ending)
            continue;
        strbuf_append_str(&c->out, ": keepalive\n\n");
        http_stream_wake(c->st);
    }
}

/* --- the hub ----------------------------------------------------------------------------- */

void api_sse_sink(void *ud, struct bus_event *e)
{
    struct sse_hub *h = ud;
    size_t queued = 0;
    for (struct sse_client *c = h->clients, *next; c; c = next) {
        next = c->next;
        queued += (size_t)enqueue(c, e);
    }
    if (queued)
        metrics_inc(METRIC_EVENTS_PUBLISHED, "sse", NULL, (double)queued);
}

struct sse_hub *api_sse_new(struct api *a, struct bus *bus)
{
    struct sse_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->a = a;
    h->bus = bus;
    uv_timer_init(a->loop, &h->heartbeat);
    h->heartbeat.data = h;
    uint64_t ms = (uint64_t)a->cfg->sse_heartbeat_s * 1000;
    uv_timer_start(&h->heartbeat, on_heartbeat, ms, ms);
    uv_unref((uv_handle_t *)&h->heartbeat);
    return h;
}

void api_sse_end_all(struct sse_hub *h, const char *why)
{
    for (struct sse_client *c = h->clients; c; c = c->next)
        client_end(c, why);
}

static void hub_closed(uv_handle_t *t)
{
    struct sse_hub *h = t->data;
    void (*done)(void *) = h->close_done;
    void *arg = h->close_arg;
    free(h);
    if (done)
        done(arg);
}

void api_sse_close(struct sse_hub *h, void (*done)(void *arg), void *arg)
{
    h->close_done = done;
    h->close_arg = arg;
    /* streams still open belong to the HTTP server, which ends them */
    for (struct sse_client *c = h->clients; c; c = c->next)
        c->hub = NULL;
    uv_close((uv_handle_t *)&h->heartbeat, hub_closed);
}

size_t api_sse_clients(const struct sse_hub *h)
{
    return h ? h->n : 0;
}

/* --- the route --------------------------------------------------------------------------- */

/* "A,B,C" into a list of copies (at most max). */
static int split_list(const char *s, char **out, size_t max, size_t *n)
{
    *n = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        if (len) {
            if (*n == max)
                return -1;
            if (!(out[*n] = strndup(s, len)))
                return -1;
            (*n)++;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    return 0;
}

/* bus_replay's sink: one event of the replay for one client. */
static void replay_one(void *ud, struct bus_event *e)
{
    if (enqueue(ud, e))
        metrics_inc(METRIC_EVENTS_PUBLISHED, "sse", NULL, 1);
}

/* The events after the client's Last-Event-ID, then a gap notice if the
 * ring no longer holds them all. An id that is not one of ours gets no
 * replay and a comment saying so, in which the id is shown only as
 * printable ASCII (api/sseid), never with a control byte. It is not
 * refused: a browser's EventSource reconnects with the last id it saw and
 * would give up for good on an error answer (say after a config change
 * renamed a server), while a comment costs nothing. */
static void replay(struct api *a, struct sse_client *c, const char *last)
{
    char name[CFG_NAME_MAX + 1];
    uint64_t after = 0;
    long server = -1;
    if (api_sseid_parse(last, name, sizeof(name), &after) == 0) {
        if (!name[0] && a->npools == 1)
            server = 0;
        for (size_t i = 0; name[0] && i < a->npools; i++)
            if (!strcmp(ami_pool_name(a->pools[i]), name))
                server = (long)i;
    }
    if (server < 0) {
        char shown[SSEID_ECHO_MAX + 4];
        api_sseid_printable(last, shown, sizeof(shown));
        strbuf_printf(&c->out, ": Last-Event-ID '%s' is not one of ours; no replay\n\n", shown);
        return;
    }
    uint64_t oldest = bus_replay(c->hub->bus, (size_t)server, after, replay_one, c);
    if (after < UINT64_MAX && oldest > after + 1)
        strbuf_printf(
            &c->out,
            ": replay gap: events %llu to %llu are no longer kept (AMIBRIDGE_SSE_REPLAY)\n\n",
            (unsigned long long)after + 1, (unsigned long long)oldest - 1);
}

/* Streams `owner` holds now, on both hubs. A walk over the lists: they
 * are at most AMIBRIDGE_SSE_MAX_CLIENTS long and walked once per new
 * stream. */
static size_t owner_streams(const struct api *a, const char *owner)
{
    size_t n = 0;
    const struct sse_hub *hubs[2] = {a->sse, a->call_sse};
    for (int i = 0; i < 2; i++)
        for (const struct sse_client *c = hubs[i] ? hubs[i]->clients : NULL; c; c = c->next)
            n += !strcmp(c->owner, owner);
    return n;
}

/* 1 and an answer (503 or 429, with Retry-After) when the stream may not
 * open: all slots taken, or the key's (the address's) share of them. */
static int refuse_stream(struct api *a, struct sse_hub *h, struct http_req *r, const char *owner)
{
    char detail[160];
    if (!h ||
        api_sse_clients(a->sse) + api_sse_clients(a->call_sse) >= (size_t)a->cfg->sse_max_clients) {
        snprintf(detail, sizeof(detail), "at most %d event stream clients at once",
                 a->cfg->sse_max_clients);
        metrics_inc(METRIC_SSE_REFUSED, "max_clients", NULL, 1);
        http_req_add_header(r, "Retry-After", SSE_RETRY_AFTER);
        http_respond_problem(r, 503, "too-many-stream-clients", "Too many stream clients", detail,
                             NULL);
        return 1;
    }
    int limit = a->cfg->sse_max_clients_per_key;
    if (limit > a->cfg->sse_max_clients)
        limit = a->cfg->sse_max_clients;
    if (owner_streams(a, owner) < (size_t)limit)
        return 0;
    int by_key = !strncmp(owner, "key:", 4);
    snprintf(detail, sizeof(detail),
             "at most %d event streams at once per %s (AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY)", limit,
             by_key ? "API key" : "client address");
    metrics_inc(METRIC_SSE_REFUSED, "per_key", NULL, 1);
    http_req_add_header(r, "Retry-After", SSE_RETRY_AFTER);
    http_respond_problem(r, 429, "too-many-streams-per-key", "Too many streams for this client",
                         detail, json_pack("{s:i}", "limit", limit));
    return 1;
}

/* What a stream's query may say: `names` (events= or type=), filter= for
 * AMI fields, reference= (calls: filter on the call's reference). */
struct stream_params {
    const char *names;
    int filter;
    int reference;
};

static void stream_get(struct api *a, struct sse_hub *h, struct http_req *r,
                       const struct stream_params *sp)
{
    /* whose slot: the key, or without keys (loopback-only mode) the client */
    const struct cfg_api_key *k = http_req_principal(r);
    char owner[SSE_OWNER_MAX];
    if (k)
        snprintf(owner, sizeof(owner), "key:%s", k->name);
    else
        snprintf(owner, sizeof(owner), "addr:%s", http_req_peer(r));
    if (refuse_stream(a, h, r, owner))
        return;
    struct sse_client *c = calloc(1, sizeof(*c));
    if (!c) {
        http_respond_oom(r);
        return;
    }
    c->hub = h;
    memcpy(c->owner, owner, sizeof(c->owner));
    c->server = -1;
    strbuf_init(&c->out, 0);
    c->qcap = (size_t)a->cfg->sse_queue;
    c->q = calloc(c->qcap, sizeof(*c->q));
    char *events = NULL, *filter = NULL, *server = NULL, *reference = NULL;
    const char *field = sp->names;
    int bad = !c->q || http_req_query(r, sp->names, &events) < 0;
    if (!bad && sp->filter && http_req_query(r, "filter", &filter) < 0) {
        field = "filter";
        bad = 1;
    }
    if (!bad && sp->reference && http_req_query(r, "reference", &reference) < 0) {
        field = "reference";
        bad = 1;
    }
    if (!bad && reference) {
        field = "reference";
        bad = !*reference || !(c->filters[0].key = strdup("reference")) ||
              !(c->filters[0].value = strdup(reference));
        if (c->filters[0].key)
            c->nfilters = 1;
    }
    if (!bad && http_req_query(r, "server", &server) < 0) {
        field = "server";
        bad = 1;
    }
    if (!bad && events && split_list(events, c->names, SSE_NAMES_MAX, &c->nnames) != 0)
        bad = 1;
    if (!bad && filter) {
        char *pairs[SSE_FILTERS_MAX];
        size_t np = 0;
        field = "filter";
        bad = split_list(filter, pairs, SSE_FILTERS_MAX - c->nfilters, &np) != 0;
        for (size_t i = 0; i < np; i++) {
            char *colon = strchr(pairs[i], ':');
            if (!bad && colon && colon != pairs[i]) {
                c->filters[c->nfilters].key = strndup(pairs[i], (size_t)(colon - pairs[i]));
                c->filters[c->nfilters].value = strdup(colon + 1);
                c->nfilters++;
            } else {
                bad = 1;
            }
            free(pairs[i]);
        }
    }
    if (!bad && server) {
        field = "server";
        bad = 1;
        for (size_t i = 0; i < a->npools; i++)
            if (!strcmp(ami_pool_name(a->pools[i]), server)) {
                c->server = (long)i;
                bad = 0;
            }
    }
    free(events);
    free(filter);
    free(server);
    free(reference);
    if (bad) {
        char detail[160];
        if (sp->filter)
            snprintf(detail, sizeof(detail),
                     "bad '%s' parameter: events=Name,Glob*; filter=Key:value,...; server=NAME",
                     field);
        else
            snprintf(detail, sizeof(detail),
                     "bad '%s' parameter: type=call.ended,call.*; reference=TEXT; server=NAME",
                     field);
        for (size_t i = 0; i < c->nnames; i++)
            free(c->names[i]);
        for (size_t i = 0; i < c->nfilters; i++) {
            free(c->filters[i].key);
            free(c->filters[i].value);
        }
        free(c->q);
        strbuf_release(&c->out);
        free(c);
        api_bad_field(r, field, detail);
        return;
    }
    strbuf_printf(&c->out, "retry: %d\n: connected to amibridge\n\n", SSE_RETRY_MS);
    const char *last = http_req_header(r, "Last-Event-ID");
    if (last && *last)
        replay(a, c, last);
    LIST_PUSH_FRONT(h->clients, c);
    h->n++;
    metrics_set(METRIC_SSE_CLIENTS, NULL, NULL, NULL, (double)h->n);
    http_req_add_header(r, "X-Accel-Buffering", "no"); /* proxies: do not buffer the stream */
    http_respond_stream(r, 200, "text/event-stream", client_read, client_closed, c, &c->st);
    if (!c->st)
        client_closed(c);
}

void api_events_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    static const struct stream_params sp = {.names = "events", .filter = 1};
    stream_get(a, a->sse, r, &sp);
}

void api_call_events_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    static const struct stream_params sp = {.names = "type", .reference = 1};
    stream_get(a, a->call_sse, r, &sp);
}
