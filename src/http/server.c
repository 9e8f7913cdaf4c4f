#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/list.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/netlist.h"
#include "core/strbuf.h"
#include "http/auth.h"
#include "http/h1.h"
#include "http/server_internal.h"
#include "http/tls.h"

/* Bytes a connection may hold unread while its request is handled
 * (pipelined requests): past it the socket is not read until they are. */
#define HTTP_IN_HELD_MAX H1_HEAD_MAX
/* How long a closing connection keeps reading (and dropping) what its
 * client still sends, so that the answer is not lost to a reset. */
#define HTTP_LINGER_MS 2000
/* Accepted at most per wake of the listening socket. */
#define HTTP_ACCEPT_BATCH 64
/* After EMFILE/ENFILE, wait this long before accepting again. */
#define HTTP_ACCEPT_PAUSE_MS 100
/* Read at once from a socket: what a connection may hold past
 * HTTP_IN_HELD_MAX is at most what one read brought. */
#define HTTP_READ_BLOCK (16 * 1024)

static void conn_take(struct http_conn *c);
static void conn_readable(struct http_conn *c);
static void conn_flush(struct http_conn *c);
static void conn_watch(struct http_conn *c);

/* --- helpers ------------------------------------------------------------------- */

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

/* --- answers: the connection's side (http/respond.c writes them) ----------------------- */

/* Bytes for the client: sent now when nothing waits before them, else
 * after what waits. */
int http_conn_send(struct http_conn *c, const char *data, size_t len)
{
    if (c->out.len > c->out_off)
        return strbuf_append(&c->out, data, len);
    strbuf_reset(&c->out);
    c->out_off = 0;
    size_t sent = 0;
    while (sent < len && !c->tls && !c->closed) {
        ssize_t n = send(c->fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            c->active_ms = uv_now(c->srv->loop);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    if (sent == len)
        return 0;
    int rc = strbuf_append(&c->out, data + sent, len - sent);
    conn_flush(c);
    return rc;
}

/* The request is over: account for it and free it. */
void http_req_end(struct http_req *r, int aborted)
{
    struct http_conn *c = r->conn;
    if (c) {
        c->req = NULL;
        c->idle_ms = uv_now(r->srv->loop);
        if (r->principal)
            c->authed = 1;
    }
    if (r->suspended) {
        r->suspended = 0;
        r->srv->waiting--;
    }
    uint64_t us = now_us() - r->started_us;
    char status[21];
    fmt_u64(status, r->status);
    metrics_inc(METRIC_HTTP_REQUESTS, r->route ? r->route : "none", status, 1);
    metrics_observe(METRIC_HTTP_DURATION, r->route ? r->route : "none", (double)us / 1e6);
    if (log_enabled(LOG_INFO))
        http_access_log(r, us, aborted);
    struct http_stream *st = r->stream;
    if (st) {
        struct http_server *s = r->srv;
        st->req = NULL;
        LIST_UNLINK(s->streams, st);
        s->nstreams--;
        if (st->wake)
            s->wakes--;
        if (st->cl)
            st->cl(st->ud);
        free(st);
    }
    if (r->data_free)
        r->data_free(r->data);
    while (r->headers) {
        struct http_header *h = r->headers;
        r->headers = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
    strbuf_release(&r->body);
    h1_head_free(&r->head);
    free(r->path);
    free(r);
}

/* c's last answer is out: tell the client, and drop what it still sends
 * for a while rather than answer it with a reset. */
static void conn_end(struct http_conn *c)
{
    c->st = CONN_LINGER;
    c->linger_ms = uv_now(c->srv->loop);
    if (c->tls) {
        http_tls_session_free(c->tls);
        c->tls = NULL;
    }
    shutdown(c->fd, SHUT_WR);
    strbuf_release(&c->in);
    if (c->eof)
        http_conn_close(c, 0);
    else
        conn_watch(c);
}

/* The answer of the connection's request is all sent: the next request,
 * or the end of the connection. */
void http_conn_answered(struct http_conn *c)
{
    struct http_req *r = c->req;
    int keep = r && !r->close_conn;
    if (r)
        http_req_end(r, 0);
    if (c->closed)
        return;
    if (!keep) {
        conn_end(c);
        return;
    }
    c->st = CONN_HEAD;
    conn_watch(c);
    if (c->processing)
        return; /* take() goes on with what follows */
    if (c->in.len)
        conn_take(c);
    /* the client has closed its side: the requests it sent before that are
     * answered, then the connection ends */
    if (!c->closed && c->eof && c->st == CONN_HEAD)
        conn_end(c);
}

/* --- requests ------------------------------------------------------------------------ */

/* A new request on c, from its head buf[0..len) (len 0: the head could not
 * even be delimited). NULL when out of memory. */
static struct http_req *req_new(struct http_conn *c)
{
    struct http_server *s = c->srv;
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->srv = s;
    r->conn = c;
    r->started_us = now_us();
    r->method = "";
    strbuf_init(&r->body, s->o.max_body);
    c->req = r;
    c->nreq++;
    return r;
}

/* Refuse the request from its head and close the connection: what follows
 * on the wire can no longer be trusted to be a request. */
static void refuse(struct http_req *r, const struct h1_error *e)
{
    r->dispatched = 1;
    r->close_conn = 1;
    http_respond_problem(r, e->status, e->slug, e->title, e->detail, NULL);
}

/* A head is in: read it and decide. Returns 0 to go on to the body. */
static int req_head(struct http_conn *c, const char *buf, size_t len)
{
    struct http_server *s = c->srv;
    struct http_req *r = req_new(c);
    if (!r) {
        http_conn_close(c, 1);
        return -1;
    }
    struct h1_error e;
    int rc = h1_head_parse(buf, len, &r->head, &e);
    if (r->head.method)
        r->method = r->head.method;
    r->path = r->head.target ? strndup(r->head.target, h1_path_len(&r->head)) : strdup("");
    if (!r->path) {
        http_conn_close(c, 1);
        return -1;
    }
    r->head_only = !strcmp(r->method, "HEAD");
    http_req_fill_peer(r, c);
    const char *rid = h1_header(&r->head, "X-Request-Id");
    if (rid && http_request_id_ok(rid)) {
        size_t n = strnlen(rid, sizeof(r->id) - 1); /* as the generated ids: no snprintf */
        memcpy(r->id, rid, n);
        r->id[n] = '\0';
    } else {
        http_request_id_new(r->id, sizeof(r->id));
    }
    if (rc != 0) {
        refuse(r, &e);
        return -1;
    }
    r->close_conn = !r->head.keep_alive;
    h1_body_init(&r->bd, &r->head);
    if (r->head.has_length && r->head.length > s->o.max_body) {
        /* a declared oversized body: answer from the head alone (routing
         * and auth still come first), without reading the body, which
         * leaves the connection unable to carry another request */
        r->too_big = 1;
        r->dispatched = 1;
        r->close_conn = 1;
        c->st = CONN_WAIT;
        s->handler(r, s->ud);
        if (c->req == r && !r->answered) {
            /* the handler answers later (a wrong key's 401 is held back) */
            r->suspended = 1;
            s->waiting++;
        }
        return -1;
    }
    if (s->o.head && !r->bd.done) {
        /* answered from the head, the body stays unread: the connection
         * cannot carry another request */
        int close_conn = r->close_conn;
        r->close_conn = 1;
        s->o.head(r, s->ud);
        if (c->req != r || r->answered) /* answered: r may be gone already */
            return -1;
        r->close_conn = close_conn;
        if (r->principal)
            c->authed = 1;
    }
    if (!r->bd.done && r->head.expect_continue &&
        http_conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        http_conn_close(c, 1);
    return c->closed ? -1 : 0;
}

static void body_data(void *ud, const char *data, size_t n)
{
    struct http_req *r = ud;
    if (!r->too_big && strbuf_append(&r->body, data, n) != 0) {
        r->too_big = 1;
        strbuf_release(&r->body);
    }
}

/* Hand the whole request to the handler. */
static void req_dispatch(struct http_conn *c, struct http_req *r)
{
    struct http_server *s = c->srv;
    r->dispatched = 1;
    c->st = CONN_WAIT;
    s->handler(r, s->ud);
    if (c->req == r && !r->answered) {
        r->suspended = 1;
        s->waiting++;
    }
}

/* Take what c has received: heads, bodies, as far as it can go until a
 * request waits for its answer. */
static size_t take(struct http_conn *c, const char *buf, size_t len)
{
    size_t used = 0;
    while (!c->closed) {
        if (c->st == CONN_HEAD) {
            if (used == len)
                break;
            struct h1_error e;
            ssize_t n = h1_head_end(buf + used, len - used, &c->head_from, &e);
            if (n == 0)
                break;
            if (n < 0) {
                struct http_req *r = req_new(c);
                if (!r || !(r->path = strdup(""))) {
                    http_conn_close(c, 1);
                    break;
                }
                http_req_set_peer(r, (const struct sockaddr *)&c->addr);
                http_request_id_new(r->id, sizeof(r->id));
                refuse(r, &e);
                break;
            }
            c->head_from = 0;
            used += (size_t)n;
            if (req_head(c, buf + used - (size_t)n, (size_t)n) != 0)
                break;
            c->st = CONN_BODY;
        }
        if (c->st != CONN_BODY)
            break;
        struct http_req *r = c->req;
        if (!r->bd.done) {
            struct h1_error e;
            ssize_t n = h1_body_feed(&r->bd, buf + used, len - used, body_data, r, &e);
            if (n < 0) {
                refuse(r, &e);
                break;
            }
            used += (size_t)n;
            if (!r->bd.done)
                break;
        }
        req_dispatch(c, r);
    }
    return used;
}

/* Take what waits in c->in (after an answer, pipelined requests). */
static void conn_take(struct http_conn *c)
{
    if (c->processing || c->closed)
        return;
    c->processing = 1;
    size_t used = take(c, c->in.data ? c->in.data : "", c->in.len);
    c->processing = 0;
    if (c->closed)
        return;
    strbuf_consume(&c->in, used);
    if (!c->in.len)
        strbuf_release(&c->in);
    conn_watch(c);
}

/* Bytes just read (into the server's buffer). */
static void conn_received(struct http_conn *c, const char *data, size_t n)
{
    if (c->in.len || (c->st != CONN_HEAD && c->st != CONN_BODY)) {
        /* behind other bytes, or while a request is handled: kept */
        if (strbuf_append(&c->in, data, n) != 0) {
            http_conn_close(c, 1);
            return;
        }
        conn_take(c);
        return;
    }
    c->processing = 1;
    size_t used = take(c, data, n);
    c->processing = 0;
    if (c->closed)
        return;
    if (used < n && c->st != CONN_LINGER && strbuf_append(&c->in, data + used, n - used) != 0) {
        http_conn_close(c, 1);
        return;
    }
    conn_watch(c);
}

/* --- connections --------------------------------------------------------------------- */

/* Before the loop waits: the streams woken since (http_stream_wake), then
 * the connections whose TLS session holds decrypted bytes, which no poll
 * would report. */
static void on_prepare(uv_prepare_t *p)
{
    struct http_server *s = p->data;
    http_streams_feed_woken(s);
    for (struct http_conn *c = s->conns, *next; c && s->tls_reads; c = next) {
        next = c->next;
        if (!c->tls_read)
            continue;
        c->tls_read = 0;
        s->tls_reads--;
        conn_readable(c);
    }
    if (!s->wakes && !s->tls_reads)
        uv_prepare_stop(p);
}

void http_server_prepare_start(struct http_server *s)
{
    uv_prepare_start(&s->feed, on_prepare);
}

/* What c's poll should watch: its socket's input while it can take more
 * (a request being handled holds at most HTTP_IN_HELD_MAX unread), room
 * for its output while some waits. Changed only when it must: each change
 * costs system calls. */
static void on_conn_poll(uv_poll_t *p, int status, int events);

static void conn_watch(struct http_conn *c)
{
    if (c->closed)
        return;
    int ev = 0;
    if (!c->eof && (c->st == CONN_HEAD || c->st == CONN_BODY || c->st == CONN_LINGER ||
                    c->in.len < HTTP_IN_HELD_MAX))
        ev |= UV_READABLE;
    if (c->out.len > c->out_off || c->handshaking == 2)
        ev |= UV_WRITABLE;
    /* decrypted bytes GnuTLS holds wake no poll: read them from the loop */
    if ((ev & UV_READABLE) && c->tls && !c->handshaking && !c->tls_read &&
        http_tls_pending(c->tls)) {
        c->tls_read = 1;
        if (c->srv->tls_reads++ == 0 && !c->srv->wakes)
            http_server_prepare_start(c->srv);
    }
    if (ev == c->events)
        return;
    c->events = ev;
    if (ev)
        uv_poll_start(&c->poll, ev, on_conn_poll);
    else
        uv_poll_stop(&c->poll);
}

static void server_release(struct http_server *s);

static void conn_freed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    struct http_server *s = c->srv;
    strbuf_release(&c->in);
    strbuf_release(&c->out);
    http_auth_memo_free(c->auth_memo);
    free(c);
    s->conns_closing--;
    if (s->closing)
        server_release(s);
}

/* Close c now; a request in progress ends (aborted when unanswered). */
void http_conn_close(struct http_conn *c, int aborted)
{
    if (c->closed)
        return;
    c->closed = 1;
    struct http_server *s = c->srv;
    s->conns_closing++;
    if (c->tls_read) {
        c->tls_read = 0;
        s->tls_reads--;
    }
    if (c->req) {
        struct http_req *r = c->req;
        int waiting = r->dispatched && !r->answered;
        if (waiting) {
            /* the handler still has it and answers later: into the void */
            r->conn = NULL;
            c->req = NULL;
        } else {
            http_req_end(r, aborted);
        }
    }
    if (c->tls) {
        http_tls_session_free(c->tls);
        c->tls = NULL;
    }
    LIST_UNLINK(s->conns, c);
    s->nconns--;
    uv_close((uv_handle_t *)&c->poll, conn_freed);
    close(c->fd); /* uv_close took it out of the loop's epoll set */
    c->fd = -1;
}

/* Cut a connection (deadline, room): closed at once. */
static void conn_cut(struct http_conn *c, const char *reason)
{
    metrics_inc(METRIC_HTTP_CUT, reason, NULL, 1);
    http_conn_close(c, 1);
}

/* Send what waits in c->out. */
static void conn_flush(struct http_conn *c)
{
    while (!c->closed && c->out.len > c->out_off) {
        const char *p = c->out.data + c->out_off;
        size_t left = c->out.len - c->out_off;
        ssize_t n;
        int want_write = 1;
        if (c->tls) {
            n = http_tls_send(c->tls, p, left, &want_write);
        } else {
            n = send(c->fd, p, left, MSG_NOSIGNAL);
            if (n < 0)
                n = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -EIO;
        }
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            http_conn_close(c, 1);
            return;
        }
        c->out_off += (size_t)n;
        c->active_ms = uv_now(c->srv->loop);
    }
    if (c->closed)
        return;
    if (c->out.len == c->out_off) {
        c->out_off = 0;
        if (c->out.cap > 2 * HTTP_STREAM_OUT_MAX)
            strbuf_release(&c->out);
        else
            strbuf_reset(&c->out);
    }
    conn_watch(c);
}

/* The socket has room again: send, then go on with what waited for it. */
static void conn_writable(struct http_conn *c)
{
    conn_flush(c);
    if (c->closed || c->out.len > c->out_off)
        return;
    if (c->st == CONN_SEND)
        http_conn_answered(c);
    else if (c->st == CONN_STREAM && c->req && c->req->stream && !c->req->stream->parked)
        http_stream_feed(c->req->stream);
}

/* The client closed its side. */
static void conn_eof(struct http_conn *c)
{
    c->eof = 1;
    switch (c->st) {
    case CONN_WAIT:
    case CONN_SEND:
        conn_watch(c); /* answered, then closed */
        return;
    case CONN_HEAD:
        http_conn_close(c, c->in.len != 0);
        return;
    default: /* a request half read, a stream: the client is gone */
        http_conn_close(c, 1);
        return;
    }
}

static void conn_readable(struct http_conn *c)
{
    struct http_server *s = c->srv;
    for (int rounds = 0; rounds < 16 && !c->closed && !c->eof && (c->events & UV_READABLE);
         rounds++) {
        char *dst = s->rbuf;
        size_t room = HTTP_READ_BLOCK;
        /* while a request is handled what comes is kept, up to a bound */
        if (c->st != CONN_HEAD && c->st != CONN_BODY && c->st != CONN_LINGER)
            room = c->in.len < HTTP_IN_HELD_MAX ? HTTP_IN_HELD_MAX - c->in.len : 0;
        if (!room)
            return;
        ssize_t n;
        if (c->tls && c->st != CONN_LINGER) {
            n = http_tls_recv(c->tls, dst, room);
        } else {
            n = recv(c->fd, dst, room, 0);
            if (n < 0)
                n = errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -EIO;
        }
        if (n == -EAGAIN)
            return;
        if (n == 0 || n < 0) {
            if (c->st == CONN_LINGER || n < 0)
                http_conn_close(c, c->st != CONN_LINGER && c->st != CONN_HEAD);
            else
                conn_eof(c);
            return;
        }
        c->active_ms = uv_now(s->loop);
        if (c->st == CONN_LINGER)
            continue;
        conn_received(c, dst, (size_t)n);
        /* a full read may have left more; TLS may hold decrypted bytes */
        if ((size_t)n < room && !(c->tls && !c->closed && http_tls_pending(c->tls)))
            return;
    }
}

static void tls_handshake(struct http_conn *c)
{
    int want_write = 0;
    int rc = http_tls_handshake(c->tls, &want_write);
    if (rc < 0) {
        log_debug("TLS handshake failed", "{s:i}", "fd", c->fd);
        http_conn_close(c, 0);
        return;
    }
    c->active_ms = uv_now(c->srv->loop);
    c->handshaking = rc ? 0 : want_write ? 2 : 1;
    conn_watch(c);
    if (!c->handshaking && http_tls_pending(c->tls))
        conn_readable(c);
}

static void on_conn_poll(uv_poll_t *p, int status, int events)
{
    struct http_conn *c = p->data;
    if (c->closed)
        return;
    if (status < 0) {
        http_conn_close(c, 1);
        return;
    }
    if (c->handshaking) {
        tls_handshake(c);
        return;
    }
    if (events & UV_WRITABLE)
        conn_writable(c);
    if (!c->closed && (events & (UV_READABLE | UV_DISCONNECT)))
        conn_readable(c);
}

/* The client's address as a comparable key: the family byte, then the
 * address (an IPv4-mapped IPv6 address counts as the IPv4 one). */
static void peer_key(const struct sockaddr *sa, unsigned char out[HTTP_PEER_KEY_LEN])
{
    memset(out, 0, HTTP_PEER_KEY_LEN);
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        out[0] = 4;
        memcpy(out + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            out[0] = 4;
            memcpy(out + 1, a6->s6_addr + 12, 4);
        } else {
            out[0] = 6;
            memcpy(out + 1, a6->s6_addr, 16);
        }
    }
}

/* A connection that may be cut to make room: it has never shown a valid
 * key and is waiting for a request head or for the body of a request that
 * has not been handled yet. Requests being handled (waiting for AMI,
 * streams) are never cut. */
static int conn_expendable(const struct http_conn *c)
{
    if (c->authed)
        return 0;
    /* a wrong key's held answer: keeping it costs a slot, not the client */
    if (c->req && c->req->expendable && !c->req->answered)
        return 1;
    return !c->req || (!c->req->dispatched && !c->req->answered && !c->req->principal);
}

/* Near max_connections: cut the expendable connection that has waited
 * longest, so that the one just accepted (a health check, a client with a
 * key) is served; when none is expendable the reserve is used up and
 * connections past max_connections are refused. */
static void make_room(struct http_server *s, const struct http_conn *fresh)
{
    unsigned max = s->o.max_connections;
    unsigned reserve = max / 100 * HTTP_RESERVE_PCT + (max % 100) * HTTP_RESERVE_PCT / 100;
    if (s->nconns + reserve <= max)
        return;
    struct http_conn *victim = NULL;
    for (struct http_conn *c = s->conns; c; c = c->next)
        if (c != fresh && conn_expendable(c) && (!victim || c->idle_ms <= victim->idle_ms))
            victim = c;
    if (victim) {
        conn_cut(victim, "reserve");
        s->ncut_reserve++;
    }
}

/* Connections the client address holds already (not counting cut ones). */
static unsigned conns_of_peer(const struct http_server *s, const struct http_conn *fresh)
{
    unsigned n = 0;
    for (const struct http_conn *c = s->conns; c; c = c->next)
        if (c != fresh && !memcmp(c->peer, fresh->peer, sizeof(c->peer)))
            n++;
    return n;
}

/* A trusted proxy (AMIBRIDGE_TRUSTED_PROXIES) carries many clients on its
 * connections: the per-client cap counts clients, so it does not count it. */
static int from_trusted_proxy(const struct http_server *s, const struct http_conn *c)
{
    if (!s->o.ntrusted_proxies)
        return 0;
    return netlist_has((const struct sockaddr *)&c->addr, c->addrlen, s->o.trusted_proxies,
                       s->o.ntrusted_proxies);
}

static void conn_new(struct http_server *s, int fd, const struct sockaddr_storage *ss, socklen_t sl)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    memcpy(&c->addr, ss, sl);
    c->addrlen = sl;
    c->idle_ms = c->active_ms = uv_now(s->loop);
    peer_key((const struct sockaddr *)ss, c->peer);
    if (uv_poll_init_socket(s->loop, &c->poll, fd) != 0) {
        close(fd);
        free(c);
        return;
    }
    c->poll.data = c;
    LIST_PUSH_FRONT(s->conns, c);
    s->nconns++;
    if (s->o.max_connections_per_client && !from_trusted_proxy(s, c) &&
        conns_of_peer(s, c) >= s->o.max_connections_per_client) {
        /* refused at the door: closed before a byte is read */
        metrics_inc(METRIC_HTTP_REFUSED, "per_client_limit", NULL, 1);
        s->nrefused++;
        http_conn_close(c, 0);
        return;
    }
    make_room(s, c);
    if (s->tls) {
        c->tls = http_tls_session_new(s->tls, fd);
        if (!c->tls) {
            http_conn_close(c, 0);
            return;
        }
        c->handshaking = 1;
    }
    conn_watch(c);
}

static void on_accept_pause(uv_timer_t *t);

static void on_listen(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct http_server *s = p->data;
    if (status < 0)
        return;
    for (int i = 0; i < HTTP_ACCEPT_BATCH && s->listening; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warn("cannot accept HTTP connections", "{s:s}", "error", strerror(errno));
                uv_poll_stop(&s->listen);
                uv_timer_start(&s->accept_pause, on_accept_pause, HTTP_ACCEPT_PAUSE_MS, 0);
            }
            return;
        }
        if (s->nconns >= s->o.max_connections) {
            close(fd);
            metrics_inc(METRIC_HTTP_REFUSED, "max_connections", NULL, 1);
            s->nrefused_full++;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_new(s, fd, &ss, sl);
    }
}

static void on_accept_pause(uv_timer_t *t)
{
    struct http_server *s = t->data;
    if (s->listening)
        uv_poll_start(&s->listen, UV_READABLE, on_listen);
}

/* One line per sweep for what was cut or refused since the last one: a
 * warning when clients are turned away for room (an attack, or a limit set
 * too low), debug for the deadlines, which idle keep-alive clients meet
 * all the time. */
static void log_cuts(struct http_server *s)
{
    if (!s->ncut_head && !s->ncut_whole && !s->ncut_reserve && !s->ncut_idle && !s->nrefused &&
        !s->nrefused_full)
        return;
    enum log_level lvl = s->ncut_reserve || s->nrefused || s->nrefused_full ? LOG_WARN : LOG_DEBUG;
    if (log_enabled(lvl))
        log_emit(lvl, "http connections cut",
                 json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "header_timeout", (int)s->ncut_head,
                           "request_timeout", (int)s->ncut_whole, "idle_timeout", (int)s->ncut_idle,
                           "reserve", (int)s->ncut_reserve, "refused_per_client", (int)s->nrefused,
                           "refused_max_connections", (int)s->nrefused_full, "open",
                           (int)s->nconns));
    s->ncut_head = s->ncut_whole = s->ncut_reserve = s->ncut_idle = s->nrefused = 0;
    s->nrefused_full = 0;
}

/* Cut the connections that have not delivered a request head, or a whole
 * request, in time (a client that trickles its body is cut like one that
 * trickles its head), that have been idle for timeout_s (nothing read or
 * sent: a stream whose client stopped reading), and end the lingering
 * closes. Requests being handled are left alone. */
static void on_sweep(uv_timer_t *t)
{
    struct http_server *s = t->data;
    uint64_t now = uv_now(s->loop), head = (uint64_t)s->o.header_timeout_s * 1000,
             whole = (uint64_t)s->o.request_timeout_s * 1000,
             idle = (uint64_t)s->o.timeout_s * 1000;
    for (struct http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->st == CONN_LINGER) {
            if (now - c->linger_ms >= HTTP_LINGER_MS)
                http_conn_close(c, 0);
        } else if (!c->req && head && now - c->idle_ms >= head) {
            conn_cut(c, "header_timeout");
            s->ncut_head++;
        } else if (c->req && whole && !c->req->dispatched && !c->req->answered &&
                   now - c->idle_ms >= whole) {
            conn_cut(c, "request_timeout");
            s->ncut_whole++;
        } else if (idle && now - c->active_ms >= idle && c->st != CONN_WAIT &&
                   !(c->st == CONN_STREAM && c->out.len == c->out_off)) {
            conn_cut(c, "idle_timeout");
            s->ncut_idle++;
        }
    }
    log_cuts(s);
}

/* --- the server ----------------------------------------------------------------------- */

static int open_listener(const struct http_server_opts *o, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, o->host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)o->port);
        sl = sizeof(*in);
    } else if (inet_pton(AF_INET6, o->host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)o->port);
        sl = sizeof(*in6);
    } else {
        snprintf(err, errlen, "AMIBRIDGE_LISTEN: '%s' is not an IP address", o->host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* several processes may share the port to use more cores, but only when
     * asked: silently sharing a port with a stray process is a surprise */
    if (o->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, HTTP_LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "AMIBRIDGE_LISTEN: cannot listen on %s:%d: %s", o->host, o->port,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct http_server *http_server_new(uv_loop_t *loop, const struct http_server_opts *o,
                                    http_handler handler, void *ud, char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->o = *o;
    s->handler = handler;
    s->ud = ud;
    strbuf_init(&s->wbuf, 0);
    if (o->tls_cert && o->tls_key &&
        !(s->tls = http_tls_new(o->tls_cert, o->tls_key, err, errlen))) {
        free(s);
        return NULL;
    }
    s->listen_fd = open_listener(o, err, errlen);
    if (s->listen_fd < 0) {
        http_tls_free(s->tls);
        free(s);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    uv_poll_init_socket(loop, &s->listen, s->listen_fd);
    s->listen.data = s;
    s->listening = 1;
    uv_poll_start(&s->listen, UV_READABLE, on_listen);
    uv_timer_init(loop, &s->accept_pause);
    s->accept_pause.data = s;
    uv_prepare_init(loop, &s->feed);
    s->feed.data = s;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, HTTP_SWEEP_MS, HTTP_SWEEP_MS);
    return s;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

size_t http_server_waiting(const struct http_server *s)
{
    return s->waiting;
}

static void listen_closed(uv_handle_t *h)
{
    (void)h;
}

static void stop_listening(struct http_server *s, uv_close_cb closed)
{
    s->listening = 0;
    uv_close((uv_handle_t *)&s->listen, closed);
    close(s->listen_fd); /* uv_close took it out of the loop's epoll set */
    s->listen_fd = -1;
}

void http_server_quiesce(struct http_server *s)
{
    if (s->listening)
        stop_listening(s, listen_closed);
}

/* One of the server's handles is closed: the last one frees it. */
static void server_release(struct http_server *s)
{
    if (s->closes_pending > 0 || s->conns_closing > 0)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    strbuf_release(&s->wbuf);
    free(s);
    if (done)
        done(arg);
}

static void server_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->closes_pending--;
    server_release(s);
}

void http_server_close(struct http_server *s, void (*done)(void *arg), void *arg)
{
    s->done = done;
    s->done_arg = arg;
    /* what streams were last given (a "shutting down" comment) goes out
     * first, as far as the sockets take it at once */
    if (s->wakes)
        on_prepare(&s->feed);
    for (struct http_conn *c = s->conns; c; c = c->next)
        if (c->out.len > c->out_off)
            conn_flush(c);
    s->closing = 1;
    /* the handles below; the connections are counted in conns_closing */
    s->closes_pending = 3;
    if (s->listening) {
        s->closes_pending++;
        stop_listening(s, server_closed);
    }
    while (s->conns)
        http_conn_close(s->conns, 1);
    http_tls_free(s->tls);
    s->tls = NULL;
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, server_closed);
    uv_close((uv_handle_t *)&s->accept_pause, server_closed);
    uv_close((uv_handle_t *)&s->feed, server_closed);
}
