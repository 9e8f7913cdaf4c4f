#include "bus/events.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonw.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strbuf.h"
#include "core/utf8.h"

struct sink {
    bus_sink_fn fn;
    void *ud;
};

/* The replay ring of one server. */
struct ring {
    struct bus_event **v;
    size_t cap, head, n; /* head: oldest */
};

/* bus_wants() of recent event names: the filters are globs (fnmatch) and
 * every AMI event is checked; a stream has few distinct names. */
#define BUS_WANTS_CACHE 32

struct wants_entry {
    char name[BUS_EVENT_NAME_MAX]; /* "" when empty */
    int wants;
};

struct bus {
    const struct cfg *cfg;
    struct wants_entry wants[BUS_WANTS_CACHE];
    struct sink sinks[BUS_MAX_SINKS];
    size_t nsinks;
    uint64_t *seq; /* per server */
    struct ring *rings;
    size_t nservers;
    struct bus_stats st;
    int follower;               /* replicas: another process leads */
    const char *channel_prefix; /* of every event: a bus of call events */
    struct strbuf scratch;      /* where each event is encoded */
};

void bus_event_ref(struct bus_event *e)
{
    e->refs++;
}

void bus_event_unref(struct bus_event *e)
{
    if (!e || --e->refs > 0)
        return;
    if (e->json != (char *)(e + 1)) /* not stored with the event */
        free(e->json);
    ami_msg_free(e->msg);
    free(e);
}

int bus_glob_any(char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        /* a name with none of fnmatch's special characters is itself */
        int match = strpbrk(globs[i], "*?[\\") ? fnmatch(globs[i], name, 0) == 0
                                               : strcmp(globs[i], name) == 0;
        if (match)
            return 1;
    }
    return 0;
}

int bus_wants(const struct bus *b, const char *name)
{
    const struct cfg *c = b->cfg;
    if (c->nevents_include && !bus_glob_any(c->events_include, c->nevents_include, name))
        return 0;
    return !bus_glob_any(c->events_exclude, c->nevents_exclude, name);
}

struct bus *bus_new(const struct cfg *c)
{
    struct bus *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cfg = c;
    strbuf_init(&b->scratch, 0);
    b->nservers = c->nservers;
    b->seq = calloc(c->nservers ? c->nservers : 1, sizeof(*b->seq));
    b->rings = calloc(c->nservers ? c->nservers : 1, sizeof(*b->rings));
    if (!b->seq || !b->rings) {
        bus_free(b);
        return NULL;
    }
    for (size_t i = 0; i < c->nservers && c->sse_replay > 0; i++) {
        b->rings[i].cap = (size_t)c->sse_replay;
        b->rings[i].v = calloc(b->rings[i].cap, sizeof(*b->rings[i].v));
        if (!b->rings[i].v) {
            bus_free(b);
            return NULL;
        }
    }
    return b;
}

void bus_free(struct bus *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->nservers && b->rings; i++) {
        struct ring *r = &b->rings[i];
        for (size_t k = 0; k < r->n; k++)
            bus_event_unref(r->v[(r->head + k) % r->cap]);
        free(r->v);
    }
    free(b->rings);
    free(b->seq);
    strbuf_release(&b->scratch);
    free(b);
}

int bus_add_sink(struct bus *b, bus_sink_fn fn, void *ud)
{
    if (b->nsinks == BUS_MAX_SINKS)
        return -ENOSPC;
    b->sinks[b->nsinks++] = (struct sink){fn, ud};
    return 0;
}

/* The JSON of an event, written once for every outlet, by hand (the bytes
 * json_pack + json_dumps gave, without the tree), into the bus's scratch
 * buffer. */
static int encode(struct strbuf *sb, const char *server, const char *name, uint64_t seq,
                  const char *when, const struct ami_msg *m)
{
    strbuf_reset(sb);
    int rc = strbuf_append_str(sb, "{\"server\":");
    if (!rc)
        rc = jsonw_string(sb, server, strlen(server));
    if (!rc)
        rc = strbuf_append_str(sb, ",\"event\":");
    if (!rc)
        rc = jsonw_string(sb, name, strlen(name));
    if (!rc)
        rc = strbuf_append_str(sb, ",\"seq\":");
    if (!rc)
        rc = jsonw_u64(sb, seq);
    if (!rc)
        rc = strbuf_append_str(sb, ",\"time\":");
    if (!rc)
        rc = jsonw_string(sb, when, strlen(when));
    if (!rc)
        rc = strbuf_append_str(sb, ",\"fields\":");
    if (!rc)
        rc = ami_msg_json_append(m, sb);
    if (!rc)
        rc = strbuf_append(sb, "}", 1);
    return rc;
}

static void ring_push(struct ring *r, struct bus_event *e)
{
    if (!r->cap)
        return;
    bus_event_ref(e);
    if (r->n == r->cap) {
        bus_event_unref(r->v[r->head]);
        r->v[r->head] = e;
        r->head = (r->head + 1) % r->cap;
    } else {
        r->v[(r->head + r->n) % r->cap] = e;
        r->n++;
    }
}

void bus_set_follower(struct bus *b, int follower)
{
    b->follower = follower;
}

/* Hand one event to the replay ring and every sink (the caller's
 * reference stays the caller's). */
static void deliver(struct bus *b, size_t server, struct bus_event *e)
{
    ring_push(&b->rings[server], e);
    for (size_t i = 0; i < b->nsinks; i++)
        b->sinks[i].fn(b->sinks[i].ud, e);
}

/* An event name as AMI writes one: printable ASCII, no blank, no quote or
 * backslash (a name from Redis goes into SSE's `event:` line as it is). */
static int name_ok(const char *name, size_t nlen)
{
    if (!nlen)
        return 0;
    for (size_t i = 0; i < nlen; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            return 0;
    }
    return 1;
}

/* A follower: one event as the leader published it (`json`, one line: no
 * CR or LF, which SSE would read as the end of its `data:`), of server
 * `server` (slen bytes, NULL when absent) with sequence number `seq` (valid
 * when has_seq), named `name` (nlen bytes); `msg` its fields, taken. */
static void inject(struct bus *b, const char *json, size_t len, const char *server, size_t slen,
                   int has_seq, uint64_t seq, const char *name, size_t nlen, struct ami_msg *msg)
{
    size_t idx = b->nservers;
    for (size_t i = 0; server && i < b->nservers; i++)
        if (strlen(b->cfg->servers[i].name) == slen &&
            !memcmp(b->cfg->servers[i].name, server, slen))
            idx = i;
    struct bus_event *e = NULL;
    if (idx == b->nservers || !name || !msg || !has_seq || seq > INT64_MAX ||
        !name_ok(name, nlen) || nlen >= sizeof(e->name) || !(e = calloc(1, sizeof(*e)))) {
        ami_msg_free(msg);
        return;
    }
    e->refs = 1;
    e->remote = 1;
    e->server = idx;
    e->server_name = b->cfg->servers[idx].name;
    e->channel_prefix = b->channel_prefix;
    memcpy(e->name, name, nlen);
    e->name[nlen] = '\0';
    e->seq = seq;
    e->msg = msg;
    if (!(e->json = malloc(len + 1))) {
        bus_event_unref(e);
        return;
    }
    memcpy(e->json, json, len);
    e->json[len] = '\0';
    e->len = len;
    if (e->seq > b->seq[idx])
        b->seq[idx] = e->seq; /* a new leader goes on from here */
    deliver(b, idx, e);
    bus_event_unref(e);
}

/* A cursor over JSON as encode() writes it. */
struct cursor {
    const char *p, *end;
};

static int lit(struct cursor *c, const char *t, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, t, n))
        return -1;
    c->p += n;
    return 0;
}

#define LIT(c, t) lit((c), (t), sizeof(t) - 1)

/* A JSON string of a text without a backslash: its bytes, quotes off. */
static int str(struct cursor *c, const char **v, size_t *n)
{
    if (c->p == c->end || *c->p != '"')
        return -1;
    const char *q = memchr(c->p + 1, '"', (size_t)(c->end - c->p - 1));
    if (!q)
        return -1;
    *v = c->p + 1;
    *n = (size_t)(q - *v);
    c->p = q + 1;
    return 0;
}

/* Is the text free of what the plain reader leaves to jansson: a control
 * byte (raw in a string jansson refuses it; between tokens it is a blank
 * that may be CR or LF), a backslash (an escape), and UTF-8 that is not
 * well-formed (jansson refuses it)? Eight bytes at a time, as jsonw does. */
static int plain_text(const char *json, size_t len)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    const unsigned char *p = (const unsigned char *)json;
    uint64_t any = 0, hi = 0;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, sizeof(v));
        uint64_t b = v ^ (ones * '\\');
        any |= (((v - ones * 0x20) & ~v) | ((b - ones) & ~b)) & high;
        hi |= v & high;
    }
    for (; i < len; i++) {
        any |= p[i] < 0x20 || p[i] == '\\';
        hi |= p[i] & 0x80;
    }
    return !any && (!hi || utf8_valid(json, len));
}

/* Does fields member `k` (klen bytes) repeat an earlier member? jansson
 * keeps the last of two equal keys; the plain reader leaves that to it. */
static int repeats(const struct ami_msg *m, const char *k, size_t klen)
{
    for (size_t i = 0, n = ami_msg_count(m); i < n; i++) {
        const char *ki = ami_msg_key_at(m, i);
        if (ki[0] == k[0] && strlen(ki) == klen && !memcmp(ki, k, klen))
            return 1;
    }
    return 0;
}

/* The common case of bus_inject() without jansson: the JSON exactly as
 * encode() writes it, with no escape anywhere (so every '"' ends a
 * string), string values only and no key twice. 0 when injected, -1 when
 * the text is anything else (the caller parses it whole): what is read
 * here is always what jansson would read. A follower does this for every
 * event the leader publishes. */
static int inject_plain(struct bus *b, const char *json, size_t len)
{
    struct cursor c = {json, json + len};
    const char *server, *name, *t, *k, *v;
    size_t slen, nlen, tlen, klen, vlen;
    if (!plain_text(json, len) || LIT(&c, "{\"server\":") || str(&c, &server, &slen) ||
        LIT(&c, ",\"event\":") || str(&c, &name, &nlen) || LIT(&c, ",\"seq\":"))
        return -1;
    /* a JSON integer: no leading zero (inject() bounds the value) */
    uint64_t seq = 0;
    int digits = 0;
    for (; c.p < c.end && *c.p >= '0' && *c.p <= '9' && digits < 19; c.p++, digits++)
        seq = seq * 10 + (uint64_t)(*c.p - '0');
    if (!digits || (digits > 1 && c.p[-digits] == '0') ||
        (c.p < c.end && *c.p >= '0' && *c.p <= '9') || LIT(&c, ",\"time\":") ||
        str(&c, &t, &tlen) || LIT(&c, ",\"fields\":{"))
        return -1;
    struct ami_msg *m = ami_msg_new();
    if (!m)
        return -1;
    int rc = 0;
    if (c.p < c.end && *c.p == '}')
        c.p++;
    else
        for (;;) {
            if (str(&c, &k, &klen) || !klen || repeats(m, k, klen) || LIT(&c, ":") ||
                c.p == c.end) {
                rc = -1;
                break;
            }
            if (*c.p == '[') { /* a repeated key */
                c.p++;
                do {
                    rc = str(&c, &v, &vlen) || ami_msg_addn(m, k, klen, v, vlen) ? -1 : 0;
                } while (!rc && !LIT(&c, ","));
                if (rc || LIT(&c, "]")) {
                    rc = -1;
                    break;
                }
            } else if (str(&c, &v, &vlen) || ami_msg_addn(m, k, klen, v, vlen)) {
                rc = -1;
                break;
            }
            if (!LIT(&c, ","))
                continue;
            rc = LIT(&c, "}");
            break;
        }
    if (rc || LIT(&c, "}") || c.p != c.end) {
        ami_msg_free(m);
        return -1;
    }
    inject(b, json, len, server, slen, 1, seq, name, nlen, m);
    return 0;
}

/* jansson's reading of an event's text, `o`: injected with `msg` as its
 * fields. The text goes on as it came unless it has a control byte (a
 * blank between tokens: CR or LF would cut SSE's `data:` line), then as
 * jansson writes it, on one line. */
static void inject_parsed(struct bus *b, const char *json, size_t len, json_t *o, const char *name,
                          size_t nlen, struct ami_msg *msg)
{
    json_t *jseq = json_object_get(o, "seq");
    const char *server = json_string_value(json_object_get(o, "server"));
    json_int_t seq = json_integer_value(jseq);
    int ctl = 0;
    for (size_t i = 0; i < len; i++)
        ctl |= (unsigned char)json[i] < 0x20;
    char *line = ctl ? json_dumps(o, JSON_COMPACT) : NULL;
    if (ctl && !line) {
        ami_msg_free(msg);
        return;
    }
    inject(b, line ? line : json, line ? strlen(line) : len, server, server ? strlen(server) : 0,
           json_is_integer(jseq) && seq >= 0, (uint64_t)seq, name, nlen, msg);
    free(line);
}

void bus_inject(struct bus *b, const char *json, size_t len)
{
    if (!b->follower || inject_plain(b, json, len) == 0)
        return;
    json_t *o = json_loadb(json, len, 0, NULL);
    struct ami_msg *msg = NULL;
    struct ami_error err;
    if (ami_msg_from_json(json_object_get(o, "fields"), &msg, &err) == 0) {
        const char *name = json_string_value(json_object_get(o, "event"));
        inject_parsed(b, json, len, o, name, name ? strlen(name) : 0, msg);
    }
    json_decref(o);
}

void bus_inject_event(struct bus *b, const char *json, size_t len, const char *name,
                      const struct ami_msg *fields)
{
    if (!b->follower)
        return;
    json_t *o = json_loadb(json, len, 0, NULL);
    if (o)
        inject_parsed(b, json, len, o, name, name ? strlen(name) : 0,
                      fields ? ami_msg_dup(fields) : ami_msg_new());
    json_decref(o);
}

/* bus_wants() through the cache (names too long for it are not kept). */
static int wants_cached(struct bus *b, const char *name)
{
    size_t len = strlen(name);
    if (!len || len >= BUS_EVENT_NAME_MAX)
        return bus_wants(b, name);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    struct wants_entry *w = &b->wants[h % BUS_WANTS_CACHE];
    if (memcmp(w->name, name, len + 1) != 0) {
        memcpy(w->name, name, len + 1);
        w->wants = bus_wants(b, name);
    }
    return w->wants;
}

void bus_publish_ami(struct bus *b, size_t server, const struct ami_msg *m)
{
    const char *name = ami_msg_name(m);
    if (server >= b->nservers || !name)
        return;
    b->st.received++;
    metrics_inc(METRIC_EVENTS_RECEIVED, b->cfg->servers[server].name, NULL, 1);
    if (b->follower)
        return; /* the leader publishes it; it comes back through bus_inject() */
    if (!wants_cached(b, name)) {
        b->st.filtered++;
        metrics_inc(METRIC_EVENTS_FILTERED, b->cfg->servers[server].name, NULL, 1);
        return;
    }
    char when[40], ename[BUS_EVENT_NAME_MAX];
    log_timestamp(when, sizeof(when));
    size_t nlen = strlen(name); /* cut to fit, as snprintf would */
    if (nlen >= sizeof(ename))
        nlen = sizeof(ename) - 1;
    memcpy(ename, name, nlen);
    ename[nlen] = '\0';
    uint64_t seq = b->seq[server] + 1;
    struct bus_event *e = NULL;
    /* the event and its JSON in one allocation */
    if (encode(&b->scratch, b->cfg->servers[server].name, ename, seq, when, m) == 0 &&
        (e = calloc(1, sizeof(*e) + b->scratch.len + 1)) != NULL) {
        e->json = (char *)(e + 1);
        memcpy(e->json, b->scratch.data, b->scratch.len + 1);
        e->len = b->scratch.len;
        e->msg = ami_msg_dup(m);
    }
    if (!e || !e->msg) {
        bus_event_unref(e);
        log_error("out of memory encoding an event", NULL);
        return;
    }
    e->refs = 1;
    e->server = server;
    e->server_name = b->cfg->servers[server].name;
    memcpy(e->name, ename, sizeof(ename));
    e->seq = b->seq[server] = seq; /* gap-free: given out only now */
    b->st.delivered++;
    deliver(b, server, e);
    bus_event_unref(e);
}

void bus_set_channel_prefix(struct bus *b, const char *prefix)
{
    b->channel_prefix = prefix;
}

void bus_publish_json(struct bus *b, size_t server, const char *name, json_t *event,
                      const struct ami_msg *fields)
{
    if (server >= b->nservers || !name || strlen(name) >= BUS_EVENT_NAME_MAX)
        return;
    struct bus_event *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->refs = 1;
    e->server = server;
    e->server_name = b->cfg->servers[server].name;
    e->channel_prefix = b->channel_prefix;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->seq = ++b->seq[server];
    json_object_set_new(event, "seq", json_integer((json_int_t)e->seq));
    e->json = json_dumps(event, JSON_COMPACT);
    e->msg = fields ? ami_msg_dup(fields) : ami_msg_new();
    if (!e->json || !e->msg) {
        bus_event_unref(e);
        b->seq[server]--; /* keep the sequence gap-free */
        log_error("out of memory encoding an event", NULL);
        return;
    }
    e->len = strlen(e->json);
    b->st.delivered++;
    deliver(b, server, e);
    bus_event_unref(e);
}

uint64_t bus_replay(struct bus *b, size_t server, uint64_t after, bus_sink_fn fn, void *ud)
{
    if (server >= b->nservers)
        return 0;
    struct ring *r = &b->rings[server];
    if (!r->n)
        return 0;
    uint64_t oldest = r->v[r->head]->seq;
    for (size_t k = 0; k < r->n; k++) {
        struct bus_event *e = r->v[(r->head + k) % r->cap];
        if (e->seq > after)
            fn(ud, e);
    }
    return oldest;
}

uint64_t bus_last_seq(const struct bus *b, size_t server)
{
    return server < b->nservers ? b->seq[server] : 0;
}

void bus_stats(const struct bus *b, struct bus_stats *st)
{
    *st = b->st;
}
