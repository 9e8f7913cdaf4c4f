#include "bus/redis.h"

#include <errno.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/strbuf.h"

/* --- the libuv adapter ------------------------------------------------------------ */

struct redis_poll {
    uv_poll_t poll;
    int events;
    int watched;            /* the events uv_poll was last started with */
    redisAsyncContext *ac;  /* NULL once hiredis cleaned up */
    void (*closed)(void *); /* told when the handle is closed and this freed */
    void *closed_arg;
};

static void poll_update(struct redis_poll *p);

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct redis_poll *p = h->data;
    if (!p->ac)
        return;
    /* an error (status < 0) is reported by the read that follows: hiredis
     * then disconnects with the reason, instead of the socket going silent */
    if (status < 0)
        p->watched = 0; /* libuv stopped the handle: watch again below */
    if (status < 0 || (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
    if (p->ac && !p->watched)
        poll_update(p);
}

/* hiredis asks for write interest with every command: libuv hears only of
 * changes (each start is an epoll_ctl on the next turn of the loop). */
static void poll_update(struct redis_poll *p)
{
    if (p->events == p->watched)
        return;
    p->watched = p->events;
    if (p->events)
        uv_poll_start(&p->poll, p->events, poll_cb);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *priv)
{
    struct redis_poll *p = priv;
    p->events |= UV_READABLE;
    poll_update(p);
}

static void del_read(void *priv)
{
    struct redis_poll *p = priv;
    p->events &= ~UV_READABLE;
    poll_update(p);
}

static void add_write(void *priv)
{
    struct redis_poll *p = priv;
    p->events |= UV_WRITABLE;
    poll_update(p);
}

static void del_write(void *priv)
{
    struct redis_poll *p = priv;
    p->events &= ~UV_WRITABLE;
    poll_update(p);
}

static void poll_closed(uv_handle_t *h)
{
    struct redis_poll *p = h->data;
    void (*closed)(void *) = p->closed;
    void *arg = p->closed_arg;
    free(p);
    if (closed)
        closed(arg);
}

static void cleanup(void *priv)
{
    struct redis_poll *p = priv;
    p->ac = NULL;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, poll_closed);
}

static int attach(uv_loop_t *loop, redisAsyncContext *ac)
{
    struct redis_poll *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -EINVAL;
    }
    p->poll.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

/* --- the connection ---------------------------------------------------------------- */

enum redis_state { RS_DOWN = 0, RS_CONNECTING, RS_AUTH, RS_UP, RS_CLOSING };

struct bus_redis {
    uv_loop_t *loop;
    struct bus_redis_url url;
    redisAsyncContext *ac;
    enum redis_state state;
    uv_timer_t timer; /* reconnect and connect deadline */
    int backoff_ms;
    size_t pending;
    uint64_t reconnects;
    char last_error[256];
    char why_next[256]; /* reason to report when the coming disconnect arrives */
    char logged[256];
    bus_redis_state_cb state_cb;
    void *state_ud;
    void (*done)(void *);
    void *done_arg;
    int closes_pending;    /* bus_redis_close(): the timer and the socket's watcher */
    char sub_pattern[128]; /* PSUBSCRIBE on every (re)connect, when set */
    bus_redis_msg_cb sub_cb;
    void *sub_ud;
};

struct pending_cmd {
    struct bus_redis *r;
    bus_redis_cb cb;
    void *ud;
};

static void redis_connect(struct bus_redis *r);

int bus_redis_parse_url(const char *url, struct bus_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (!strncmp(url, "unix:", 5)) {
        const char *path = url + 5;
        if (!strncmp(path, "//", 2))
            path += 2;
        if (*path != '/' || strlen(path) >= sizeof(out->unix_path)) {
            snprintf(err, errlen, "AMIBRIDGE_REDIS_URL: unix: needs an absolute socket path");
            return -1;
        }
        snprintf(out->unix_path, sizeof(out->unix_path), "%s", path);
        return 0;
    }
    if (strncmp(url, "redis://", 8)) {
        snprintf(err, errlen, "AMIBRIDGE_REDIS_URL: must start with redis:// or unix:");
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            snprintf(out->user, sizeof(out->user), "%.*s", (int)(colon - p), p);
            snprintf(out->pass, sizeof(out->pass), "%.*s", (int)(at - colon - 1), colon + 1);
        } else {
            snprintf(out->pass, sizeof(out->pass), "%.*s", (int)(at - p), p);
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hostlen = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[300];
    if (hostlen == 0 || hostlen >= sizeof(hostport)) {
        snprintf(err, errlen, "AMIBRIDGE_REDIS_URL: missing host");
        return -1;
    }
    memcpy(hostport, p, hostlen);
    hostport[hostlen] = '\0';
    char *pc = strrchr(hostport, ':');
    if (pc && !strchr(pc, ']')) {
        char *end;
        long port = strtol(pc + 1, &end, 10);
        if (*end || port < 1 || port > 65535) {
            snprintf(err, errlen, "AMIBRIDGE_REDIS_URL: bad port");
            return -1;
        }
        out->port = (int)port;
        *pc = '\0';
    }
    char *h = hostport;
    if (*h == '[') { /* [::1] */
        h++;
        h[strcspn(h, "]")] = '\0';
    }
    if (!*h) {
        snprintf(err, errlen, "AMIBRIDGE_REDIS_URL: missing host");
        return -1;
    }
    snprintf(out->host, sizeof(out->host), "%.255s", h);
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) {
            snprintf(err, errlen, "AMIBRIDGE_REDIS_URL: the database must be a number");
            return -1;
        }
        out->db = (int)db;
    }
    return 0;
}

/* Every message of the subscription; hiredis calls this for each one
 * with the same privdata (and with NULL when the connection goes). */
static void on_pmessage(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct bus_redis *r = priv;
    const redisReply *m = reply;
    if (!m || m->type != REDIS_REPLY_ARRAY || m->elements != 4 ||
        m->element[0]->type != REDIS_REPLY_STRING || strcmp(m->element[0]->str, "pmessage") ||
        m->element[2]->type != REDIS_REPLY_STRING || m->element[3]->type != REDIS_REPLY_STRING)
        return;
    if (r->sub_cb)
        r->sub_cb(r->sub_ud, m->element[2]->str, m->element[3]->str, m->element[3]->len);
}

static void set_state(struct bus_redis *r, enum redis_state st)
{
    int was_up = r->state == RS_UP;
    r->state = st;
    int up = st == RS_UP;
    if (up && !was_up && r->sub_pattern[0] && r->ac)
        redisAsyncCommand(r->ac, on_pmessage, r, "PSUBSCRIBE %s", r->sub_pattern);
    if (was_up != up) {
        if (up)
            log_info("Redis connection up", NULL);
        if (r->state_cb)
            r->state_cb(r->state_ud, up);
    }
}

static void on_timer(uv_timer_t *t);

/* Lost or never made: log (once per reason), back off, try again. */
static void redis_down(struct bus_redis *r, const char *why)
{
    snprintf(r->last_error, sizeof(r->last_error), "%s", why);
    uv_timer_stop(&r->timer);
    if (r->state == RS_CLOSING)
        return;
    int was_up = r->state == RS_UP;
    set_state(r, RS_DOWN);
    r->backoff_ms =
        backoff_double(r->backoff_ms, BUS_REDIS_BACKOFF_MIN_MS, BUS_REDIS_BACKOFF_MAX_MS);
    int delay = (int)backoff_jitter((uint64_t)r->backoff_ms / 2, (uint64_t)r->backoff_ms);
    if (was_up || strcmp(r->logged, why)) {
        log_warn(was_up ? "Redis connection lost" : "Redis connection attempt failed", "{s:s,s:i}",
                 "reason", why, "retry_in_ms", delay);
        snprintf(r->logged, sizeof(r->logged), "%s", why);
    }
    r->reconnects++;
    uv_timer_start(&r->timer, on_timer, (uint64_t)delay, 0);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct bus_redis *r = ac->data;
    /* a context we already let go of (closing, connect timeout) */
    if (r->state == RS_CLOSING || r->ac != ac)
        return;
    r->ac = NULL;
    char why[256];
    if (r->why_next[0])
        snprintf(why, sizeof(why), "%s", r->why_next);
    else
        snprintf(why, sizeof(why), "%s",
                 status == REDIS_OK ? "disconnected" : (ac->errstr[0] ? ac->errstr : "error"));
    r->why_next[0] = '\0';
    redis_down(r, why);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    struct bus_redis *r = ac->data;
    redisReply *rep = reply;
    if (!rep)
        return; /* disconnect handles it */
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(r->why_next, sizeof(r->why_next), "AUTH/SELECT refused: %.200s", rep->str);
        redisAsyncDisconnect(ac);
        return;
    }
    /* the last of AUTH/SELECT carries the privdata marker */
    if (priv) {
        uv_timer_stop(&r->timer);
        r->backoff_ms = 0;
        r->last_error[0] = '\0';
        r->logged[0] = '\0';
        set_state(r, RS_UP);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct bus_redis *r = ac->data;
    if (r->ac != ac)
        return;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees the context after this callback */
        redis_down(r, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    redisAsyncContext *c = r->ac;
    int steps = (r->url.pass[0] ? 1 : 0) + (r->url.db ? 1 : 0);
    if (!steps) {
        uv_timer_stop(&r->timer);
        r->backoff_ms = 0;
        r->last_error[0] = '\0';
        r->logged[0] = '\0';
        set_state(r, RS_UP);
        return;
    }
    set_state(r, RS_AUTH);
    static char done_marker;
    if (r->url.pass[0]) {
        void *mark = --steps == 0 ? &done_marker : NULL;
        if (r->url.user[0])
            redisAsyncCommand(c, on_auth_reply, mark, "AUTH %s %s", r->url.user, r->url.pass);
        else
            redisAsyncCommand(c, on_auth_reply, mark, "AUTH %s", r->url.pass);
    }
    if (r->url.db)
        redisAsyncCommand(c, on_auth_reply, &done_marker, "SELECT %d", r->url.db);
}

static void redis_connect(struct bus_redis *r)
{
    redisAsyncContext *ac = r->url.unix_path[0] ? redisAsyncConnectUnix(r->url.unix_path)
                                                : redisAsyncConnect(r->url.host, r->url.port);
    if (!ac) {
        redis_down(r, "out of memory");
        return;
    }
    if (ac->err) {
        char why[256];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        redis_down(r, why);
        return;
    }
    ac->data = r;
    if (attach(r->loop, ac) != 0) {
        redisAsyncFree(ac);
        redis_down(r, "cannot watch the Redis socket");
        return;
    }
    r->ac = ac;
    set_state(r, RS_CONNECTING);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&r->timer, on_timer, BUS_REDIS_CONNECT_TIMEOUT_MS, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct bus_redis *r = t->data;
    if (r->state == RS_DOWN) {
        redis_connect(r);
    } else if ((r->state == RS_CONNECTING || r->state == RS_AUTH) && r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL; /* its callbacks are ignored from here on */
        redisAsyncFree(ac);
        char why[64];
        snprintf(why, sizeof(why), "no answer within %d ms", BUS_REDIS_CONNECT_TIMEOUT_MS);
        redis_down(r, why);
    }
}

struct bus_redis *bus_redis_new(uv_loop_t *loop, const char *url, char *err, size_t errlen)
{
    struct bus_redis *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (bus_redis_parse_url(url, &r->url, err, errlen) != 0) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    redis_connect(r);
    return r;
}

void bus_redis_set_state_cb(struct bus_redis *r, bus_redis_state_cb cb, void *ud)
{
    r->state_cb = cb;
    r->state_ud = ud;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct pending_cmd *pc = priv;
    pc->r->pending--;
    if (pc->cb)
        pc->cb(pc->ud, reply);
    free(pc);
}

int bus_redis_command(struct bus_redis *r, bus_redis_cb cb, void *ud, const char *fmt, ...)
{
    if (r->state != RS_UP || !r->ac)
        return -ENOTCONN;
    struct pending_cmd *pc = malloc(sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    *pc = (struct pending_cmd){r, cb, ud};
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(r->ac, on_reply, pc, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free(pc);
        return -ENOTCONN;
    }
    r->pending++;
    return 0;
}

int bus_redis_commandargv(struct bus_redis *r, bus_redis_cb cb, void *ud, int argc,
                          const char **argv, const size_t *argvlen)
{
    if (r->state != RS_UP || !r->ac)
        return -ENOTCONN;
    struct pending_cmd *pc = malloc(sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    *pc = (struct pending_cmd){r, cb, ud};
    if (redisAsyncCommandArgv(r->ac, on_reply, pc, argc, argv, argvlen) != REDIS_OK) {
        free(pc);
        return -ENOTCONN;
    }
    r->pending++;
    return 0;
}

int bus_redis_formatted(struct bus_redis *r, bus_redis_cb cb, void *ud, const char *cmd, size_t len)
{
    if (r->state != RS_UP || !r->ac)
        return -ENOTCONN;
    struct pending_cmd *pc = malloc(sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    *pc = (struct pending_cmd){r, cb, ud};
    if (redisAsyncFormattedCommand(r->ac, on_reply, pc, cmd, len) != REDIS_OK) {
        free(pc);
        return -ENOTCONN;
    }
    r->pending++;
    return 0;
}

/* "<kind><n>\r\n" at w (room for 23 bytes); returns the end. */
static char *put_len(char *w, char kind, size_t n)
{
    *w++ = kind;
    w += fmt_u64(w, n);
    *w++ = '\r';
    *w++ = '\n';
    return w;
}

int bus_redis_format(struct strbuf *out, int argc, const char *const *argv, const size_t *argvlen)
{
    size_t total = 23;
    for (int i = 0; i < argc; i++)
        total += 25 + argvlen[i];
    int rc = strbuf_grow(out, total);
    if (rc)
        return rc;
    char *w = put_len(out->data + out->len, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        w = put_len(w, '$', argvlen[i]);
        memcpy(w, argv[i], argvlen[i]);
        w += argvlen[i];
        *w++ = '\r';
        *w++ = '\n';
    }
    *w = '\0';
    out->len = (size_t)(w - out->data);
    return 0;
}

void bus_redis_psubscribe(struct bus_redis *r, const char *pattern, bus_redis_msg_cb cb, void *ud)
{
    snprintf(r->sub_pattern, sizeof(r->sub_pattern), "%s", pattern);
    r->sub_cb = cb;
    r->sub_ud = ud;
    if (r->state == RS_UP && r->ac)
        redisAsyncCommand(r->ac, on_pmessage, r, "PSUBSCRIBE %s", r->sub_pattern);
}

int bus_redis_up(const struct bus_redis *r)
{
    return r->state == RS_UP;
}

const char *bus_redis_last_error(const struct bus_redis *r)
{
    return r->last_error;
}

size_t bus_redis_pending(const struct bus_redis *r)
{
    return r->pending;
}

uint64_t bus_redis_reconnects(const struct bus_redis *r)
{
    return r->reconnects;
}

/* One handle closed: the last one frees. */
static void redis_unhold(void *ud)
{
    struct bus_redis *r = ud;
    if (--r->closes_pending > 0)
        return;
    void (*done)(void *) = r->done;
    void *arg = r->done_arg;
    explicit_bzero(r->url.pass, sizeof(r->url.pass));
    free(r);
    if (done)
        done(arg);
}

static void timer_closed(uv_handle_t *h)
{
    redis_unhold(h->data);
}

void bus_redis_close(struct bus_redis *r, void (*done)(void *arg), void *arg)
{
    r->done = done;
    r->done_arg = arg;
    r->state = RS_CLOSING;
    r->closes_pending = 1;
    uv_timer_stop(&r->timer);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        struct redis_poll *p = ac->ev.data;
        r->ac = NULL;
        ac->data = r;
        if (p) { /* the adapter closes its watcher in cleanup(): wait for it */
            p->closed = redis_unhold;
            p->closed_arg = r;
            r->closes_pending++;
        }
        /* fails the pending commands (NULL replies) and frees the context */
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}
