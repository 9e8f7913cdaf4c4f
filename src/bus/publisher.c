#include "bus/publisher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/lease.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strbuf.h"

/* A FIFO of events: buffer (not yet sent) and in flight (sent, replies
 * pending, in send order since Redis answers in order). */
enum cmd_kind {
    CMD_PUBLISH = 0, /* a command whose reply covers `n` events: this one and
                      * the n - 1 CMD_COVERED slots after it (a fenced batch) */
    CMD_XADD,
    CMD_COVERED,
};

struct slot {
    struct bus_event *e;
    enum cmd_kind kind;
    unsigned n;
};

struct fifo {
    struct slot *v;
    size_t cap, head, n;
};

static int fifo_init(struct fifo *f, size_t cap)
{
    f->v = calloc(cap, sizeof(*f->v));
    f->cap = cap;
    f->head = f->n = 0;
    return f->v ? 0 : -ENOMEM;
}

static void fifo_push(struct fifo *f, struct bus_event *e, enum cmd_kind k)
{
    f->v[(f->head + f->n) % f->cap] = (struct slot){e, k, 1};
    f->n++;
}

static void fifo_push_front(struct fifo *f, struct bus_event *e)
{
    f->head = (f->head + f->cap - 1) % f->cap;
    f->v[f->head] = (struct slot){e, CMD_PUBLISH, 1};
    f->n++;
}

static struct slot fifo_pop(struct fifo *f)
{
    struct slot s = f->v[f->head];
    f->head = (f->head + 1) % f->cap;
    f->n--;
    return s;
}

static struct slot fifo_pop_back(struct fifo *f)
{
    f->n--;
    return f->v[(f->head + f->n) % f->cap];
}

struct bus_publisher {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct bus_redis *redis;
    struct fifo buf;      /* waiting */
    struct fifo inflight; /* one entry per command sent */
    int cmds_per_event;   /* 1 (PUBLISH) or 2 (PUBLISH + XADD) */
    int sent_half;        /* XADD of the head event still to send */
    struct bus_publisher_stats st;
    uint64_t drops_unlogged;
    uint64_t last_drop_log;
    int draining;
    uv_timer_t drain_timer;
    /* fenced: the events of one turn of the loop go out together, in
     * batches, once its I/O is done (not one script call per event);
     * `wake` keeps the loop from sleeping in poll while they wait (events
     * pushed from a timer, say a held burst's last chunk, would otherwise
     * wait for the next I/O) */
    uv_check_t flush;
    uv_idle_t wake;
    int handles_open; /* drain_timer, flush and wake, until closed */
    void (*drain_done)(void *);
    void *drain_arg;
    int closing;
    void (*close_done)(void *);
    void *close_arg;
    struct bus_lease *lease; /* replicas: publish only while leader, fenced */
    uint64_t fenced_unlogged;
    uint64_t last_fence_log;
    /* the fence script goes by its SHA1 (EVALSHA) once this connection has
     * had it (one EVAL after each connect); a cache flushed under us
     * (NOSCRIPT) stops sending until what was in flight has answered, and
     * the refused events go again, in order, first with EVAL */
    char fence_sha[41];
    int script_loaded;
    int noscript;
    struct fifo redo;  /* refused with NOSCRIPT, oldest first */
    struct strbuf cmd; /* the command being sent, in RESP */
    /* backpressure */
    void (*pause_fn)(void *ud, int pause);
    void *pause_ud;
    int paused;
    uint64_t paused_at;
    char maxlen[16]; /* AMIBRIDGE_REDIS_STREAM_MAXLEN as text */
};

static void pump(struct bus_publisher *p);

static int follower(const struct bus_publisher *p)
{
    return p->lease && !bus_lease_is_leader(p->lease);
}

static void maybe_drained(struct bus_publisher *p)
{
    if (!p->draining || !p->drain_done)
        return;
    if (p->buf.n == 0 && p->inflight.n == 0) {
        void (*done)(void *) = p->drain_done;
        p->drain_done = NULL;
        uv_timer_stop(&p->drain_timer);
        done(p->drain_arg);
    }
}

/* The events refused with NOSCRIPT, ahead of what waits (they are older). */
static void requeue_redo(struct bus_publisher *p)
{
    while (p->redo.n) {
        struct bus_event *e = fifo_pop_back(&p->redo).e;
        if (p->buf.n == p->buf.cap) {
            bus_event_unref(e);
            p->st.dropped++;
            p->drops_unlogged++;
            metrics_inc(METRIC_EVENTS_DROPPED, "redis", "buffer_full", 1);
            continue;
        }
        fifo_push_front(&p->buf, e);
        p->st.resent++;
    }
    p->noscript = 0;
}

static void on_reply(void *ud, const redisReply *rep)
{
    struct bus_publisher *p = ud;
    if (!rep) {
        /* the connection is gone: the replies that will not come are
         * handled in bus_publisher_redis_state(0), which requeues */
        return;
    }
    if (!p->inflight.n)
        return;
    struct slot sl = fifo_pop(&p->inflight);
    unsigned n = sl.kind == CMD_PUBLISH && sl.n > 1 ? sl.n : 1; /* events this reply covers */
    if (n - 1 > p->inflight.n)
        n = (unsigned)p->inflight.n + 1;
    if (rep->type == REDIS_REPLY_ERROR && rep->str && !strncmp(rep->str, "NOSCRIPT", 8)) {
        /* the script cache was flushed: not published, goes again */
        if (!p->noscript)
            log_warn("Redis lost the fence script (SCRIPT FLUSH?): sending it again", NULL);
        p->noscript = 1;
        p->script_loaded = 0;
        fifo_push(&p->redo, sl.e, CMD_PUBLISH);
        for (unsigned i = 1; i < n; i++)
            fifo_push(&p->redo, fifo_pop(&p->inflight).e, CMD_PUBLISH);
        if (!p->inflight.n) {
            requeue_redo(p);
            pump(p);
        }
        return;
    }
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == -1) {
        /* the fence: the lease moved on while this was on its way */
        p->st.dropped += n;
        p->fenced_unlogged += n;
        metrics_inc(METRIC_EVENTS_DROPPED, "redis", "fenced", n);
        if (uv_now(p->loop) - p->last_fence_log >= PUBLISHER_DROP_LOG_MS) {
            log_warn("events not published: this replica no longer holds the leader lease", "{s:I}",
                     "dropped", (json_int_t)p->fenced_unlogged);
            p->fenced_unlogged = 0;
            p->last_fence_log = uv_now(p->loop);
        }
    } else if (rep->type == REDIS_REPLY_ERROR) {
        p->st.errors += n;
        metrics_inc(METRIC_EVENTS_DROPPED, "redis", "refused", n);
        log_warn("Redis refused an event command", "{s:s,s:s,s:i}", "command",
                 sl.kind == CMD_XADD ? "XADD" : "PUBLISH", "error", rep->str ? rep->str : "",
                 "events", (int)n);
    } else if (sl.kind != CMD_XADD) { /* an event counts once */
        p->st.published += n;
        metrics_inc(METRIC_EVENTS_PUBLISHED, "redis", NULL, n);
    }
    bus_event_unref(sl.e);
    for (unsigned i = 1; i < n; i++)
        bus_event_unref(fifo_pop(&p->inflight).e);
    if (p->noscript && !p->inflight.n)
        requeue_redo(p);
    pump(p);
    maybe_drained(p);
}

/* Send one command of `argc` arguments, formatted here (RESP) into the
 * publisher's scratch buffer. */
static int send_argv(struct bus_publisher *p, int argc, const char *const *argv, const size_t *len)
{
    strbuf_reset(&p->cmd);
    if (bus_redis_format(&p->cmd, argc, argv, len) != 0)
        return -ENOMEM;
    return bus_redis_formatted(p->redis, on_reply, p, p->cmd.data, p->cmd.len);
}

/* `s` at buf + o, cut so that the NUL still fits in `size`; the new end. */
static size_t put_cut(char *buf, size_t size, size_t o, const char *s)
{
    size_t n = strlen(s);
    if (n > size - 1 - o)
        n = size - 1 - o;
    memcpy(buf + o, s, n);
    buf[o + n] = '\0';
    return o + n;
}

/* "<prefix>.<server>.<Event>" into buf (cut at its size, as snprintf
 * would; by hand: this runs for every event); its length. */
static size_t channel_of(const struct bus_publisher *p, const struct bus_event *e, char *buf,
                         size_t size)
{
    size_t o = put_cut(buf, size, 0, e->channel_prefix ? e->channel_prefix : p->cfg->redis_prefix);
    o = put_cut(buf, size, o, ".");
    o = put_cut(buf, size, o, e->server_name);
    o = put_cut(buf, size, o, ".");
    return put_cut(buf, size, o, e->name);
}

static int send_publish(struct bus_publisher *p, struct bus_event *e)
{
    char channel[PUBLISHER_CHANNEL_MAX];
    size_t chlen = channel_of(p, e, channel, sizeof(channel));
    const char *argv[] = {"PUBLISH", channel, e->json};
    size_t len[] = {7, chlen, e->len};
    return send_argv(p, 3, argv, len);
}

/* The fenced batch: the oldest `k` waiting events (and their XADD) in one
 * script call, published only if the lease is still ours, in one step. */
static int send_fenced(struct bus_publisher *p, size_t k)
{
    static char channels[PUBLISHER_BATCH][PUBLISHER_CHANNEL_MAX];
    const char *argv[7 + 2 * PUBLISHER_BATCH];
    size_t len[7 + 2 * PUBLISHER_BATCH];
    const char *stream = p->cfg->redis_stream ? p->cfg->redis_stream : "";
    const char *key = bus_lease_key(p->lease), *token = bus_lease_token(p->lease);
    int sha = p->script_loaded && p->fence_sha[0];
    const char *script = sha ? p->fence_sha : bus_lease_fence_script;
    int argc = 0;
    argv[argc] = sha ? "EVALSHA" : "EVAL";
    len[argc++] = sha ? 7 : 4;
    argv[argc] = script;
    len[argc++] = strlen(script);
    argv[argc] = "1";
    len[argc++] = 1;
    argv[argc] = key;
    len[argc++] = strlen(key);
    argv[argc] = token;
    len[argc++] = strlen(token);
    argv[argc] = stream;
    len[argc++] = strlen(stream);
    argv[argc] = p->maxlen;
    len[argc++] = strlen(p->maxlen);
    for (size_t i = 0; i < k; i++) {
        struct bus_event *e = p->buf.v[(p->buf.head + i) % p->buf.cap].e;
        len[argc] = channel_of(p, e, channels[i], sizeof(channels[i]));
        argv[argc++] = channels[i];
        argv[argc] = e->json;
        len[argc++] = e->len;
    }
    int rc = send_argv(p, argc, argv, len);
    /* Redis runs commands in order: after this EVAL the script is cached */
    if (!sha)
        p->script_loaded = rc == 0;
    return rc;
}

/* How many of the waiting events go in the next fenced batch: at most
 * PUBLISHER_BATCH, what the window allows, and PUBLISHER_BATCH_BYTES of
 * JSON (at least one event whatever its size). */
static size_t batch_size(const struct bus_publisher *p)
{
    size_t room = PUBLISHER_WINDOW - p->inflight.n, k = 0, bytes = 0;
    while (k < p->buf.n && k < PUBLISHER_BATCH && k < room) {
        const struct bus_event *e = p->buf.v[(p->buf.head + k) % p->buf.cap].e;
        if (k && bytes + e->len > PUBLISHER_BATCH_BYTES)
            break;
        bytes += e->len;
        k++;
    }
    return k;
}

static int send_xadd(struct bus_publisher *p, struct bus_event *e)
{
    const char *argv[] = {"XADD", p->cfg->redis_stream, "MAXLEN", "~", p->maxlen, "*", "event",
                          e->json};
    size_t len[] = {4, strlen(p->cfg->redis_stream), 6, 1, strlen(p->maxlen), 1, 5, e->len};
    return send_argv(p, 8, argv, len);
}

/* Backpressure: hold AMI events back while Redis is up and the buffer
 * fills; let them come once Redis has caught up or is down. */
static void set_paused(struct bus_publisher *p, int on)
{
    uint64_t now = uv_now(p->loop);
    if (on) {
        p->paused_at = now;
        p->st.pauses++;
    } else {
        p->st.paused_ms += now - p->paused_at;
        metrics_inc(METRIC_EVENTS_PAUSED, NULL, NULL, (double)(now - p->paused_at) / 1000.0);
    }
    p->paused = on;
    p->pause_fn(p->pause_ud, on);
}

static void flow(struct bus_publisher *p)
{
    if (!p->pause_fn)
        return;
    size_t cap = p->buf.cap;
    int want;
    /* a follower holds nothing back (the leader publishes); while the
     * lease is unsure, events wait here as for a slow Redis */
    if (p->closing || !bus_redis_up(p->redis) || (p->lease && bus_lease_follower(p->lease)))
        want = 0;
    else if (p->paused)
        want = p->buf.n * 100 > cap * PUBLISHER_RESUME_AT_PCT;
    else
        want = p->buf.n * 100 >= cap * PUBLISHER_PAUSE_AT_PCT;
    if (want != p->paused)
        set_paused(p, want);
}

/* Send what the window allows, oldest first. */
static void pump(struct bus_publisher *p)
{
    while (p->buf.n && p->inflight.n + 2 <= PUBLISHER_WINDOW && bus_redis_up(p->redis) &&
           !follower(p) && !p->noscript) {
        if (p->lease) {
            size_t k = batch_size(p);
            if (send_fenced(p, k) != 0)
                break;
            for (size_t i = 0; i < k; i++) {
                struct bus_event *e = fifo_pop(&p->buf).e; /* its reference moves */
                fifo_push(&p->inflight, e, i ? CMD_COVERED : CMD_PUBLISH);
            }
            p->inflight.v[(p->inflight.head + p->inflight.n - k) % p->inflight.cap].n = (unsigned)k;
            continue;
        }
        struct bus_event *e = p->buf.v[p->buf.head].e;
        if (send_publish(p, e) != 0)
            break;
        bus_event_ref(e);
        fifo_push(&p->inflight, e, CMD_PUBLISH);
        if (p->cmds_per_event == 2 && send_xadd(p, e) == 0) {
            bus_event_ref(e);
            fifo_push(&p->inflight, e, CMD_XADD);
        }
        bus_event_unref(fifo_pop(&p->buf).e);
    }
    metrics_set(METRIC_REDIS_BUFFER, NULL, NULL, NULL, (double)p->buf.n);
    flow(p);
}

static void log_drops(struct bus_publisher *p)
{
    uint64_t now = uv_now(p->loop);
    if (!p->drops_unlogged || now - p->last_drop_log < PUBLISHER_DROP_LOG_MS)
        return;
    log_warn("Redis event buffer full: oldest events dropped", "{s:I,s:I,s:i}", "dropped",
             (json_int_t)p->drops_unlogged, "dropped_total", (json_int_t)p->st.dropped, "buffer",
             p->cfg->redis_buffer);
    p->drops_unlogged = 0;
    p->last_drop_log = now;
}

static void on_flush(uv_check_t *h)
{
    struct bus_publisher *p = h->data;
    uv_check_stop(&p->flush);
    uv_idle_stop(&p->wake);
    pump(p);
}

static void on_wake(uv_idle_t *h)
{
    (void)h; /* only there so that poll does not block */
}

void bus_publisher_sink(void *ud, struct bus_event *e)
{
    struct bus_publisher *p = ud;
    /* a follower leaves the stream to the leader; until the lease is known
     * events wait here like they wait for Redis */
    if (p->closing || e->remote || (p->lease && bus_lease_follower(p->lease)))
        return;
    if (p->buf.n == p->buf.cap) {
        bus_event_unref(fifo_pop(&p->buf).e);
        p->st.dropped++;
        p->drops_unlogged++;
        metrics_inc(METRIC_EVENTS_DROPPED, "redis", "buffer_full", 1);
        log_drops(p);
    }
    bus_event_ref(e);
    fifo_push(&p->buf, e, CMD_PUBLISH);
    /* fenced: a whole batch goes at once; less waits for the rest of
     * this turn's events (on_flush) */
    if (p->lease && p->buf.n < PUBLISHER_BATCH) {
        if (!uv_is_active((uv_handle_t *)&p->flush)) {
            uv_check_start(&p->flush, on_flush);
            uv_idle_start(&p->wake, on_wake);
        }
        return;
    }
    pump(p);
}

void bus_publisher_redis_state(void *ud, int up)
{
    struct bus_publisher *p = ud;
    metrics_set(METRIC_REDIS_UP, NULL, NULL, NULL, up);
    p->script_loaded = 0; /* a new connection: its first fenced command is an EVAL */
    if (up) {
        pump(p);
        return;
    }
    /* whatever was in flight may not have been published: send it again,
     * in order, ahead of what was waiting (duplicates over loss) */
    while (p->inflight.n) {
        struct slot sl = fifo_pop_back(&p->inflight);
        struct bus_event *e = sl.e;
        if (sl.kind == CMD_XADD) { /* its PUBLISH entry requeues the event */
            bus_event_unref(e);
            continue;
        }
        if (p->buf.n == p->buf.cap) {
            bus_event_unref(e);
            p->st.dropped++;
            p->drops_unlogged++;
            metrics_inc(METRIC_EVENTS_DROPPED, "redis", "buffer_full", 1);
            continue;
        }
        fifo_push_front(&p->buf, e);
        p->st.resent++;
    }
    requeue_redo(p); /* older still than what was in flight */
    flow(p);         /* nothing is held back while Redis is down */
    log_drops(p);
    metrics_set(METRIC_REDIS_BUFFER, NULL, NULL, NULL, (double)p->buf.n);
    maybe_drained(p);
}

struct bus_publisher *bus_publisher_new(uv_loop_t *loop, const struct cfg *c,
                                        struct bus_redis *redis)
{
    struct bus_publisher *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->loop = loop;
    p->cfg = c;
    p->redis = redis;
    p->cmds_per_event = c->redis_stream ? 2 : 1;
    strbuf_init(&p->cmd, 0);
    snprintf(p->maxlen, sizeof(p->maxlen), "%d", c->redis_stream_maxlen);
    if (fifo_init(&p->buf, (size_t)c->redis_buffer) ||
        fifo_init(&p->inflight, PUBLISHER_WINDOW + 2) ||
        fifo_init(&p->redo, PUBLISHER_WINDOW + 2)) {
        free(p->buf.v);
        free(p->inflight.v);
        free(p->redo.v);
        free(p);
        return NULL;
    }
    unsigned char md[DIGEST_SHA1_LEN];
    digest_sha1(bus_lease_fence_script, strlen(bus_lease_fence_script), md);
    digest_hex(md, sizeof(md), p->fence_sha);
    uv_timer_init(loop, &p->drain_timer);
    p->drain_timer.data = p;
    uv_check_init(loop, &p->flush);
    p->flush.data = p;
    uv_idle_init(loop, &p->wake);
    p->wake.data = p;
    p->handles_open = 3;
    return p;
}

void bus_publisher_set_lease(struct bus_publisher *p, struct bus_lease *l)
{
    p->lease = l;
}

void bus_publisher_leader(void *ud, enum bus_lease_change ch)
{
    struct bus_publisher *p = ud;
    if (ch == BUS_LEASE_LEADER) {
        pump(p);
        return;
    }
    if (ch == BUS_LEASE_UNSURE) {
        flow(p);
        return; /* keep what waits: it goes out if the lease comes back unbroken */
    }
    /* another replica leads, or led in between: what waited here is its to publish */
    size_t n = p->buf.n;
    while (p->buf.n)
        bus_event_unref(fifo_pop(&p->buf).e);
    if (n)
        metrics_inc(METRIC_EVENTS_DROPPED, "redis", "not_leader", (double)n);
    metrics_set(METRIC_REDIS_BUFFER, NULL, NULL, NULL, 0);
    if (ch == BUS_LEASE_LEADER_FRESH)
        pump(p);
    flow(p);
    maybe_drained(p);
}

static void drain_timeout(uv_timer_t *t)
{
    struct bus_publisher *p = t->data;
    if (p->drain_done) {
        log_warn("shutdown: Redis did not take every event in time", "{s:I,s:I}", "buffered",
                 (json_int_t)p->buf.n, "in_flight", (json_int_t)p->inflight.n);
        void (*done)(void *) = p->drain_done;
        p->drain_done = NULL;
        done(p->drain_arg);
    }
}

void bus_publisher_drain(struct bus_publisher *p, uint64_t deadline_ms, void (*done)(void *),
                         void *arg)
{
    p->draining = 1;
    p->drain_done = done;
    p->drain_arg = arg;
    uv_timer_start(&p->drain_timer, drain_timeout, deadline_ms, 0);
    pump(p);
    maybe_drained(p);
}

static void handle_closed(uv_handle_t *h)
{
    struct bus_publisher *p = h->data;
    if (--p->handles_open > 0)
        return;
    while (p->buf.n)
        bus_event_unref(fifo_pop(&p->buf).e);
    while (p->inflight.n)
        bus_event_unref(fifo_pop(&p->inflight).e);
    while (p->redo.n)
        bus_event_unref(fifo_pop(&p->redo).e);
    free(p->buf.v);
    free(p->inflight.v);
    free(p->redo.v);
    strbuf_release(&p->cmd);
    void (*done)(void *) = p->close_done;
    void *arg = p->close_arg;
    free(p);
    if (done)
        done(arg);
}

void bus_publisher_close(struct bus_publisher *p, void (*done)(void *arg), void *arg)
{
    p->closing = 1;
    p->close_done = done;
    p->close_arg = arg;
    p->pause_fn = NULL;   /* the owner is going: nothing to hold back any more */
    p->drain_done = NULL; /* a drain still running ends here, unheard */
    uv_timer_stop(&p->drain_timer);
    uv_check_stop(&p->flush);
    uv_idle_stop(&p->wake);
    uv_close((uv_handle_t *)&p->drain_timer, handle_closed);
    uv_close((uv_handle_t *)&p->flush, handle_closed);
    uv_close((uv_handle_t *)&p->wake, handle_closed);
}

void bus_publisher_set_pause_cb(struct bus_publisher *p, void (*fn)(void *ud, int pause), void *ud)
{
    if (p->paused && p->pause_fn)
        set_paused(p, 0); /* the old owner reads again */
    p->pause_fn = fn;
    p->pause_ud = ud;
    flow(p);
}

void bus_publisher_stats(const struct bus_publisher *p, struct bus_publisher_stats *st)
{
    *st = p->st;
    st->buffered = p->buf.n;
    st->inflight = p->inflight.n;
}
