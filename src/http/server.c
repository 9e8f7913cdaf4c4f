#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/jsonw.h"
#include "core/list.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strbuf.h"
#include "core/utf8.h"
#include "bus/ssrf.h"
#include "http/wire.h"
#include "http/xff.h"

struct http_header {
    char *name, *value;
    struct http_header *next;
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    char *method;
    char *path; /* raw, without the query */
    struct strbuf body;
    int too_big;
    int dispatched;
    int suspended;
    int answered;
    struct MHD_Response *response;
    unsigned status;
    size_t bytes_out;
    struct http_header *headers;
    char id[HTTP_REQUEST_ID_MAX + 1];
    char peer[INET6_ADDRSTRLEN];
    int peer_loopback;
    struct sockaddr_storage peer_addr;
    socklen_t peer_len;
    char via[INET6_ADDRSTRLEN]; /* the trusted proxy it came through, or "" */
    const char *route;
    char key[72];
    uint64_t started_us;
    void *data;
    void (*data_free)(void *);
    const void *principal;
    struct http_stream *stream;
};

struct http_stream {
    struct http_server *srv;
    struct http_req *req; /* NULL once the request is over */
    http_stream_read rd;
    http_stream_closed cl;
    void *ud;
    int suspended;
    int wake; /* has more to send: resumed at the next run of MHD */
    int gone; /* the client hung up while the stream was parked */
    /* while parked MHD does not watch the socket: we do, for a hang-up */
    struct hup_watch *hup;
    struct http_stream *prev, *next; /* the server's open streams */
};

struct http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    int tls_wired; /* TLS reads come through http/wire.c (wire_tls_in_effect) */
    int listen_fd;
    int port;
    struct http_server_opts o;
    http_handler handler;
    void *ud;
    uv_poll_t poll;
    uv_timer_t timer;
    size_t waiting;
    struct http_stream *streams;
    size_t nstreams;
    int running;  /* inside MHD_run */
    int kick;     /* a connection was resumed: run MHD again soon */
    size_t wakes; /* parked streams with more to send (http_stream_wake) */
    int closing;
    int closes_pending;
    void (*done)(void *);
    void *done_arg;
    struct http_conn *conns; /* every open connection, for the deadlines and limits */
    size_t nconns;
    uv_timer_t sweep;
    /* connections cut or refused since the last sweep, for one log line */
    unsigned ncut_head, ncut_whole, ncut_reserve, nrefused;
};

/* A client connection: between requests it must deliver a whole request
 * head within header_timeout_s, and a whole request (head and body) within
 * request_timeout_s, or it is cut (slow-header and slow-body clients, idle
 * keep-alive connections past the deadline). */
#define HTTP_PEER_KEY_LEN 17 /* family byte, then 4 or 16 address bytes */

struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int in_request;       /* request head complete, not yet answered */
    struct http_req *req; /* the request in progress, NULL between requests */
    uint64_t idle_ms;     /* loop time since it has been waiting for a request */
    int cut;
    int authed;                            /* a request on it showed a valid key */
    int wired;                             /* its bytes are followed (http/wire.h) */
    unsigned nreq;                         /* request heads handled on it, from 1 */
    unsigned char peer[HTTP_PEER_KEY_LEN]; /* the client's address, see peer_key() */
};

static void server_run(struct http_server *s);
static void on_timer(uv_timer_t *t);
static void resume_woken(struct http_server *s);

/* --- helpers ------------------------------------------------------------------- */

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *http_percent_decode(const char *s, size_t len, int plus_is_space)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len) {
                free(out);
                return NULL;
            }
            int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(a * 16 + b);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

/* MHD must not unescape anything: a channel name's %2F would otherwise turn
 * into a path separator before routing. Segments and query values are
 * decoded by us, after matching. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    /* a stream whose client hung up is ended this way: routine, not a warning */
    if (strstr(buf, "application error generating response"))
        log_debug("http server", "{s:s}", "detail", buf);
    else
        log_warn("http server", "{s:s}", "detail", buf);
}

static int request_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HTTP_REQUEST_ID_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.' || *s == ':'))
            return 0;
    return 1;
}

/* 24 hex digits: 7 random bytes drawn once per process (replicas and
 * restarts do not collide) and a 5-byte counter (no system call and no
 * formatting call per request). */
static void new_request_id(char *out, size_t len)
{
    static unsigned char prefix[7];
    static int have_prefix;
    static uint64_t counter;
    static const char hex[] = "0123456789abcdef";
    if (!have_prefix) {
        if (getrandom(prefix, sizeof(prefix), GRND_NONBLOCK) != (ssize_t)sizeof(prefix)) {
            uint64_t t = uv_hrtime();
            memcpy(prefix, &t, sizeof(prefix));
        }
        have_prefix = 1;
    }
    uint64_t n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    unsigned char r[12];
    memcpy(r, prefix, sizeof(prefix));
    for (int i = 0; i < 5; i++)
        r[7 + i] = (unsigned char)(n >> (8 * (4 - i)));
    size_t o = 0;
    for (size_t i = 0; i < sizeof(r) && o + 2 < len; i++, o += 2) {
        out[o] = hex[r[i] >> 4];
        out[o + 1] = hex[r[i] & 15];
    }
    if (o < len)
        out[o] = '\0';
}

/* --- responses --------------------------------------------------------------------- */

int http_req_add_header(struct http_req *r, const char *name, const char *value)
{
    struct http_header *h = calloc(1, sizeof(*h));
    if (!h || !(h->name = strdup(name)) || !(h->value = strdup(value))) {
        if (h) {
            free(h->name);
            free(h);
        }
        return -ENOMEM;
    }
    h->next = r->headers;
    r->headers = h;
    return 0;
}

void http_respond(struct http_req *r, int status, const char *content_type, const char *body,
                  size_t len)
{
    if (r->answered)
        return;
    r->answered = 1;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        log_error("out of memory building a response", NULL);
        status = 500;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (resp) {
        if (content_type)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(resp, "X-Request-Id", r->id);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        for (struct http_header *h = r->headers; h; h = h->next)
            MHD_add_response_header(resp, h->name, h->value);
    }
    r->response = resp;
    r->status = (unsigned)status;
    r->bytes_out = len;
    if (r->suspended) {
        r->suspended = 0;
        r->srv->waiting--;
        MHD_resume_connection(r->conn);
        /* MHD must run to pick the connection up again; never from inside
         * MHD_run itself, and soon rather than at once so that many replies
         * arriving together are sent in one pass */
        r->srv->kick = 1;
        if (!r->srv->running)
            uv_timer_start(&r->srv->timer, on_timer, 0, 0);
    }
}

/* Scratch for JSON bodies (one thread): kept between answers, let go of
 * when a big one made it large. */
#define HTTP_JSON_SCRATCH_KEEP (64 * 1024)
static struct strbuf json_scratch;

void http_respond_json(struct http_req *r, int status, json_t *body)
{
    /* 9 significant digits: latencies and rates read well, integers are exact */
    strbuf_reset(&json_scratch);
    int rc = body ? jsonw_value(&json_scratch, body, 9) : -EINVAL;
    json_decref(body);
    if (rc) {
        log_error("a JSON answer could not be written", "{s:i}", "errno", -rc);
        http_respond(r, 500, "application/problem+json",
                     "{\"type\":\"" HTTP_PROBLEM_TYPE_PREFIX "internal\",\"title\":\"Internal "
                     "error\",\"status\":500}",
                     strlen("{\"type\":\"" HTTP_PROBLEM_TYPE_PREFIX
                            "internal\",\"title\":\"Internal error\",\"status\":500}"));
    } else {
        http_respond(r, status, "application/json", json_scratch.data, json_scratch.len);
    }
    if (json_scratch.cap > HTTP_JSON_SCRATCH_KEEP)
        strbuf_release(&json_scratch);
}

void http_respond_problem(struct http_req *r, int status, const char *slug, const char *title,
                          const char *detail, json_t *extra)
{
    char type[128];
    snprintf(type, sizeof(type), "%s%s", HTTP_PROBLEM_TYPE_PREFIX, slug);
    json_t *p = json_pack("{s:s,s:s,s:i}", "type", type, "title", title, "status", status);
    if (p && detail) {
        /* a detail may quote the client's bytes: never dropped for them */
        struct strbuf d;
        strbuf_init(&d, 0);
        if (utf8_repair(detail, strlen(detail), &d) == 0)
            json_object_set_new(p, "detail", json_stringn(d.data ? d.data : "", d.len));
        strbuf_release(&d);
    }
    if (p) {
        struct strbuf path;
        strbuf_init(&path, 0);
        if (utf8_repair(r->path, strlen(r->path), &path) == 0)
            json_object_set_new(p, "instance", json_stringn(path.data ? path.data : "", path.len));
        strbuf_release(&path);
        json_object_set_new(p, "request_id", json_string(r->id));
        if (json_is_object(extra))
            json_object_update(p, extra);
    }
    json_decref(extra);
    char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!s) {
        http_respond(r, 500, "application/problem+json", "{}", 2);
        return;
    }
    http_respond(r, status, "application/problem+json", s, strlen(s));
    free(s);
}

void http_respond_oom(struct http_req *r)
{
    http_respond_problem(r, 500, "internal", "Internal error", "out of memory", NULL);
}

/* --- streams ----------------------------------------------------------------------------- */

static void server_kick(struct http_server *s)
{
    s->kick = 1;
    if (!s->running)
        uv_timer_start(&s->timer, on_timer, 0, 0);
}

/* Watching a parked stream's socket for a hang-up. The handle only lives
 * while the stream is parked, so it is always closed while MHD still owns
 * the descriptor (libuv drops a closed handle's descriptor from its epoll
 * set, which must never hit a reused number). */
struct hup_watch {
    uv_poll_t poll;
    struct http_stream *st; /* NULL once closing */
};

static void hup_closed(uv_handle_t *h)
{
    free(h->data);
}

static void hup_stop(struct http_stream *st)
{
    if (!st->hup)
        return;
    st->hup->st = NULL;
    uv_close((uv_handle_t *)&st->hup->poll, hup_closed);
    st->hup = NULL;
}

/* The parked client's socket woke up: a hang-up (or a reset) ends the
 * stream now, not at the next heartbeat; bytes the client sent are left
 * alone (only a hang-up is watched from then on). */
static void on_hup(uv_poll_t *h, int status, int events)
{
    struct hup_watch *w = h->data;
    struct http_stream *st = w->st;
    if (!st)
        return;
    char c;
    int fd = -1;
    uv_fileno((uv_handle_t *)h, &fd);
    ssize_t n = status < 0 ? -1 : recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 && !(events & UV_DISCONNECT)) {
        uv_poll_start(h, UV_DISCONNECT, on_hup);
        return;
    }
    if (n < 0 && status == 0 && (errno == EAGAIN || errno == EINTR))
        return;
    hup_stop(st);
    st->gone = 1;
    http_stream_wake(st);
}

static void hup_watch(struct http_stream *st)
{
    if (!st->req || st->hup)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(st->req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct hup_watch *w = ci ? calloc(1, sizeof(*w)) : NULL;
    if (!w)
        return; /* the heartbeat finds a gone client instead */
    if (uv_poll_init_socket(st->srv->loop, &w->poll, ci->connect_fd) != 0) {
        free(w);
        return;
    }
    w->poll.data = w;
    w->st = st;
    st->hup = w;
    if (uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_hup) != 0)
        hup_stop(st);
}

/* MHD asks for more of the body: hand it what the producer has, or park
 * the connection until http_stream_wake() (MHD would otherwise call again
 * at once, spinning). */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct http_stream *st = cls;
    if (!st->req)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (st->gone)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    ssize_t n = st->rd(st->ud, buf, max);
    if (n > 0) {
        st->req->bytes_out += (size_t)n;
        return n;
    }
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    st->suspended = 1;
    MHD_suspend_connection(st->req->conn);
    hup_watch(st);
    return 0;
}

static void stream_free(void *cls)
{
    struct http_stream *st = cls;
    struct http_server *s = st->srv;
    if (st->req)
        st->req->stream = NULL;
    LIST_UNLINK(s->streams, st);
    s->nstreams--;
    if (st->wake)
        s->wakes--;
    if (st->cl)
        st->cl(st->ud);
    hup_stop(st);
    free(st);
}

void http_respond_stream(struct http_req *r, int status, const char *content_type,
                         http_stream_read rd, http_stream_closed cl, void *ud,
                         struct http_stream **out)
{
    *out = NULL;
    if (r->answered)
        return;
    struct http_stream *st = calloc(1, sizeof(*st));
    struct MHD_Response *resp =
        st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_reader,
                                               st, stream_free)
           : NULL;
    if (!resp) {
        free(st);
        http_respond_oom(r);
        return;
    }
    st->srv = r->srv;
    st->req = r;
    st->rd = rd;
    st->cl = cl;
    st->ud = ud;
    LIST_PUSH_FRONT(r->srv->streams, st);
    r->srv->nstreams++;
    r->stream = st;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (struct http_header *h = r->headers; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    r->answered = 1;
    r->response = resp;
    r->status = (unsigned)status;
    *out = st;
    if (r->suspended) {
        r->suspended = 0;
        r->srv->waiting--;
        MHD_resume_connection(r->conn);
        server_kick(r->srv);
    }
}

/* A producer has more for a parked stream: it is resumed when MHD runs
 * next, once however many events came meanwhile (a burst of events costs
 * each client one resume, not one per event). */
void http_stream_wake(struct http_stream *st)
{
    if (!st || !st->suspended || !st->req || st->wake)
        return;
    st->wake = 1;
    st->srv->wakes++;
    server_kick(st->srv);
}

static void resume_woken(struct http_server *s)
{
    for (struct http_stream *st = s->streams; st && s->wakes; st = st->next) {
        if (!st->wake)
            continue;
        st->wake = 0;
        s->wakes--;
        if (!st->suspended || !st->req)
            continue;
        hup_stop(st);
        st->suspended = 0;
        MHD_resume_connection(st->req->conn);
        s->kick = 1; /* MHD serves a resumed connection on its next run */
    }
    s->wakes = 0;
}

size_t http_server_streams(const struct http_server *s)
{
    return s->nstreams;
}

/* --- request accessors ---------------------------------------------------------------- */

const char *http_req_method(const struct http_req *r)
{
    return r->method;
}

const char *http_req_path(const struct http_req *r)
{
    return r->path;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int http_req_query(const struct http_req *r, const char *name, char **out)
{
    *out = NULL;
    /* the value is still escaped (keep_escaped); names are compared as sent */
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return 0;
    *out = http_percent_decode(v, strlen(v), 1);
    return *out ? 1 : -1;
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
    if (len)
        *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

const char *http_req_id(const struct http_req *r)
{
    return r->id;
}

const char *http_req_peer(const struct http_req *r)
{
    return r->peer;
}

const struct sockaddr *http_req_peer_addr(const struct http_req *r, socklen_t *len)
{
    *len = r->peer_len;
    return (const struct sockaddr *)&r->peer_addr;
}

int http_req_peer_loopback(const struct http_req *r)
{
    return r->peer_loopback;
}

void http_req_set_route(struct http_req *r, const char *route)
{
    r->route = route;
}

void http_req_set_key(struct http_req *r, const char *key_name)
{
    snprintf(r->key, sizeof(r->key), "%s", key_name ? key_name : "");
}

void http_req_set_principal(struct http_req *r, const void *principal)
{
    r->principal = principal;
}

const void *http_req_principal(const struct http_req *r)
{
    return r->principal;
}

void http_req_set_data(struct http_req *r, void *data, void (*free_fn)(void *))
{
    r->data = data;
    r->data_free = free_fn;
}

void *http_req_data(const struct http_req *r)
{
    return r->data;
}

/* --- MHD callbacks ------------------------------------------------------------------- */

static int is_json_type(const char *ct);

/* Dotted quad by hand: once per request, inet_ntop's formatting costs more
 * than the rest of the peer's bookkeeping. out holds at least 16 bytes. */
static void ipv4_text(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char *w = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *w++ = (char)('0' + v / 100);
        if (v >= 10)
            *w++ = (char)('0' + v / 10 % 10);
        *w++ = (char)('0' + v % 10);
        *w++ = i < 3 ? '.' : '\0';
    }
}

static void set_peer(struct http_req *r, const struct sockaddr *sa)
{
    r->peer_len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    memcpy(&r->peer_addr, sa, r->peer_len);
    r->peer_loopback = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        _Static_assert(sizeof(r->peer) >= INET_ADDRSTRLEN, "a dotted quad fits");
        ipv4_text(&in->sin_addr, r->peer);
        r->peer_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, r->peer, sizeof(r->peer));
        r->peer_loopback =
            IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
            (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
}

struct xff_lines {
    struct strbuf b;
    int failed; /* out of memory: a partial list could be the client's line alone */
};

/* Every X-Forwarded-For line, in order, joined with ',': a proxy may add
 * its own line rather than extend the client's. */
static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    struct xff_lines *x = cls;
    if (key && value && !strcasecmp(key, "X-Forwarded-For") &&
        ((x->b.len && strbuf_append(&x->b, ",", 1) != 0) || strbuf_append_str(&x->b, value) != 0))
        x->failed = 1;
    return MHD_YES;
}

static void fill_peer(struct http_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    set_peer(r, ci->client_addr);
    if (!r->srv->o.ntrusted_proxies)
        return;
    /* behind a trusted proxy the client is the one it names (http/xff) */
    struct xff_lines xff = {.failed = 0};
    strbuf_init(&xff.b, 0);
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_xff, &xff);
    struct sockaddr_storage client;
    socklen_t len = 0;
    enum http_xff rc =
        xff.failed ? HTTP_XFF_MALFORMED
                   : http_xff_client((const struct sockaddr *)&r->peer_addr, r->peer_len,
                                     xff.b.len ? xff.b.data : NULL, r->srv->o.trusted_proxies,
                                     r->srv->o.ntrusted_proxies, &client, &len);
    if (rc == HTTP_XFF_MALFORMED) /* debug: one line per request would flood the log */
        log_debug("X-Forwarded-For of a trusted proxy not understood: the proxy is the client",
                  "{s:s}", "peer", r->peer);
    if (rc == HTTP_XFF_CLIENT) {
        memcpy(r->via, r->peer, sizeof(r->via));
        set_peer(r, (const struct sockaddr *)&client);
    }
    strbuf_release(&xff.b);
}

int http_req_too_big(const struct http_req *r)
{
    return r->too_big;
}

size_t http_req_max_body(const struct http_req *r)
{
    return r->srv->o.max_body;
}

int http_req_body_is_json(const struct http_req *r)
{
    return r->body.len == 0 || is_json_type(http_req_header(r, "Content-Type"));
}

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    if (n == 16 && !strncasecmp(ct, "application/json", 16))
        return 1;
    /* application/<something>+json */
    return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

static enum MHD_Result queue_answer(struct http_req *r)
{
    enum MHD_Result rc = MHD_NO;
    if (r->response) {
        rc = MHD_queue_response(r->conn, r->status, r->response);
        MHD_destroy_response(r->response);
        r->response = NULL;
    }
    return rc;
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

/* A shutdown() of the socket makes MHD see the end and close it itself. */
static void conn_cut(struct http_conn *c, const char *reason)
{
    shutdown(c->fd, SHUT_RDWR);
    c->cut = 1;
    metrics_inc(METRIC_HTTP_CUT, reason, NULL, 1);
}

/* A connection that may be cut to make room: it has never shown a valid
 * key and is waiting for a request head or for the body of a request that
 * has not been handled yet. Requests being handled (waiting for AMI,
 * streams) are never cut. */
static int conn_expendable(const struct http_conn *c)
{
    if (c->cut || c->authed || c->fd < 0)
        return 0;
    if (!c->in_request)
        return 1;
    return c->req && !c->req->dispatched && !c->req->answered && !c->req->principal;
}

/* Near max_connections: cut the expendable connection that has waited
 * longest, so that the one just accepted (a health check, a client with a
 * key) is served; when none is expendable the reserve is used up and MHD
 * refuses connections past max_connections. */
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
        if (c != fresh && !c->cut && !memcmp(c->peer, fresh->peer, sizeof(c->peer)))
            n++;
    return n;
}

/* A trusted proxy (AMIBRIDGE_TRUSTED_PROXIES) carries many clients on its
 * connections: the per-client cap counts clients, so it does not count it. */
static int from_trusted_proxy(const struct http_server *s, const union MHD_ConnectionInfo *ci)
{
    if (!s->o.ntrusted_proxies || !ci || !ci->client_addr)
        return 0;
    const struct sockaddr *sa = ci->client_addr;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return netlist_has(sa, len, s->o.trusted_proxies, s->o.ntrusted_proxies);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *c = calloc(1, sizeof(*c));
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!c)
            return;
        c->fd = ci ? ci->connect_fd : -1;
        c->idle_ms = uv_now(s->loop);
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        peer_key(ci ? ci->client_addr : NULL, c->peer);
        LIST_PUSH_FRONT(s->conns, c);
        s->nconns++;
        *socket_context = c;
        if (c->fd < 0)
            return;
        if (s->o.tls_cert) {
            /* MHD reads TLS connections through GnuTLS, not recv() */
            const union MHD_ConnectionInfo *tls =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
            c->wired = tls && s->tls_wired && wire_watch_tls(c->fd, tls->tls_session) == 0;
        } else {
            c->wired = wire_watch(c->fd) == 0;
        }
        if (s->o.max_connections_per_client && !from_trusted_proxy(s, ci) &&
            conns_of_peer(s, c) >= s->o.max_connections_per_client) {
            /* refused at the door: closed before a byte is read */
            shutdown(c->fd, SHUT_RDWR);
            c->cut = 1;
            metrics_inc(METRIC_HTTP_REFUSED, "per_client_limit", NULL, 1);
            s->nrefused++;
            return;
        }
        make_room(s, c);
        return;
    }
    struct http_conn *c = *socket_context;
    if (!c)
        return;
    LIST_UNLINK(s->conns, c);
    s->nconns--;
    if (c->wired)
        wire_forget(c->fd);
    free(c);
    *socket_context = NULL;
}

/* One line per sweep for what was cut or refused since the last one: a
 * warning when clients are turned away for room (an attack, or a limit set
 * too low), debug for the deadlines, which idle keep-alive clients meet
 * all the time. */
static void log_cuts(struct http_server *s)
{
    if (!s->ncut_head && !s->ncut_whole && !s->ncut_reserve && !s->nrefused)
        return;
    enum log_level lvl = s->ncut_reserve || s->nrefused ? LOG_WARN : LOG_DEBUG;
    if (log_enabled(lvl))
        log_emit(lvl, "http connections cut",
                 json_pack("{s:i,s:i,s:i,s:i,s:i}", "header_timeout", (int)s->ncut_head,
                           "request_timeout", (int)s->ncut_whole, "reserve", (int)s->ncut_reserve,
                           "refused_per_client", (int)s->nrefused, "open", (int)s->nconns));
    s->ncut_head = s->ncut_whole = s->ncut_reserve = s->nrefused = 0;
}

/* Cut the connections that have not delivered a request head, or a whole
 * request, in time: a client that trickles its body is cut like one that
 * trickles its head. Requests being handled are left alone. */
static void on_sweep(uv_timer_t *t)
{
    struct http_server *s = t->data;
    uint64_t now = uv_now(s->loop), head = (uint64_t)s->o.header_timeout_s * 1000,
             whole = (uint64_t)s->o.request_timeout_s * 1000;
    size_t cut = 0;
    for (struct http_conn *c = s->conns; c; c = c->next) {
        if (c->cut || c->fd < 0)
            continue;
        if (!c->in_request && head && now - c->idle_ms >= head) {
            conn_cut(c, "header_timeout");
            s->ncut_head++;
            cut++;
        } else if (c->in_request && whole && c->req && !c->req->dispatched && !c->req->answered &&
                   now - c->idle_ms >= whole) {
            conn_cut(c, "request_timeout");
            s->ncut_whole++;
            cut++;
        }
    }
    log_cuts(s);
    if (cut)
        server_run(s);
}

/* --- framing --------------------------------------------------------------------------- */

struct framing {
    unsigned ncl, nte;
    const char *te;
    const char *why;
};

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* One header as MHD parsed it. MHD 0.9.75 keeps a blank before the colon
 * in the name ("Transfer-Encoding ") and glues a folded line onto the
 * previous header's name ("Transfer-Encodingchunked"), so either shows up
 * here as a name that is no token or that only starts like a framing
 * header. */
static enum MHD_Result framing_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct framing *f = cls;
    size_t n = key ? strlen(key) : 0;
    for (size_t i = 0; i < n && !f->why; i++)
        if (!is_tchar((unsigned char)key[i]))
            f->why = "a header name is not a token (a blank before its colon, or a folded line)";
    if (n == 0)
        f->why = "a header line has no name";
    if (f->why)
        return MHD_NO;
    static const char cl[] = "Content-Length", te[] = "Transfer-Encoding";
    if (!strcasecmp(key, cl)) {
        f->ncl++;
    } else if (!strcasecmp(key, te)) {
        f->nte++;
        f->te = value;
    } else if (!strncasecmp(key, cl, sizeof(cl) - 1) || !strncasecmp(key, te, sizeof(te) - 1)) {
        f->why = "a framing header is followed by a folded line";
    }
    return f->why ? MHD_NO : MHD_YES;
}

/* Why the request's head does not frame exactly one request (RFC 9112,
 * 5.2, 6.1, 6.3), or NULL: a proxy in front may read the framing otherwise
 * and take the rest of the body for a second request (request smuggling). */
static const char *framing_problem(struct MHD_Connection *conn)
{
    struct framing f = {0, 0, NULL, NULL};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_visit, &f);
    if (f.why)
        return f.why;
    if (f.ncl && f.nte)
        return "a request may not carry both Content-Length and Transfer-Encoding";
    if (f.ncl > 1)
        return "a request may carry one Content-Length";
    if (f.nte > 1)
        return "a request may carry one Transfer-Encoding";
    if (f.nte && (!f.te || strcasecmp(f.te, "chunked")))
        return "the only Transfer-Encoding understood is chunked";
    return NULL;
}

static enum MHD_Result blank_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    int *blank = cls;
    *blank = (key && strpbrk(key, " \t")) || (value && strpbrk(value, " \t"));
    return *blank ? MHD_NO : MHD_YES;
}

/* A blank in the request target (path or query): not strict, MHD takes
 * the last blank of the request line for the one before the version. */
static int target_has_blank(const struct http_req *r)
{
    int blank = strpbrk(r->path, " \t") != NULL;
    if (!blank)
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, blank_visit, &blank);
    return blank;
}

/* Refuse the request from its head and close the connection: what follows
 * on the wire can no longer be trusted to be a request. */
static enum MHD_Result refuse_head_as(struct http_req *r, int status, const char *slug,
                                      const char *title, const char *detail)
{
    r->dispatched = 1;
    http_req_add_header(r, "Connection", "close");
    http_respond_problem(r, status, slug, title, detail, NULL);
    return queue_answer(r);
}

static enum MHD_Result refuse_head(struct http_req *r, const char *slug, const char *detail)
{
    return refuse_head_as(r, 400, slug, "Bad request", detail);
}

/* A Content-Length MHD would have refused itself (http/wire.h): renamed on
 * the wire, refused here. */
static enum MHD_Result refuse_length(struct http_req *r, enum wire_flaw f)
{
    if (f == WIRE_FLAW_TOO_LARGE)
        return refuse_head_as(r, 413, "payload-too-large", "Payload too large",
                              "the Content-Length does not fit in 64 bits");
    return refuse_head(r, "bad-framing",
                       "the Content-Length is not a number (digits only, at least one), or a "
                       "Content-Length or Transfer-Encoding line is 128 bytes or longer");
}

/* The head of a request is in: 1 when it carries a body (MHD reads it
 * next). */
static int announces_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding") ||
           (cl && strtoull(cl, NULL, 10) > 0);
}

/* The first call for a request: its head is complete. MHD_YES to read the
 * body (if any), or the answer refusing it from the head alone. */
static enum MHD_Result on_head(struct http_server *s, struct http_req *r, const char *version)
{
    struct MHD_Connection *conn = r->conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct http_conn *hc = ci ? ci->socket_context : NULL;
    if (hc) {
        hc->in_request = 1;
        hc->req = r;
        hc->nreq++;
        enum wire_flaw f = hc->wired ? wire_flaw(hc->fd, hc->nreq) : WIRE_FLAW_NONE;
        if (f)
            return refuse_length(r, f);
    }
    const char *why = framing_problem(conn);
    if (why)
        return refuse_head(r, "bad-framing", why);
    /* checked here rather than by MHD, whose own 400 is a broken answer */
    if (!strcmp(version, MHD_HTTP_VERSION_1_1) &&
        !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"))
        return refuse_head(r, "bad-request", "an HTTP/1.1 request needs a Host header");
    if (target_has_blank(r))
        return refuse_head(r, "bad-request", "the request target contains a blank");
    /* refuse a declared oversized body before reading it */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
        /* a declared oversized body: answer from the headers alone (routing
         * and auth still come first), without reading the body */
        r->too_big = 1;
        r->dispatched = 1;
        s->handler(r, s->ud);
        if (r->answered)
            return queue_answer(r);
        /* the handler answers later (a wrong key's 401 is held back): wait
         * for it as for any answer, never answer in its place, or its late
         * answer would find this request gone. The body stays unread, so
         * the connection closes after the answer. */
        http_req_add_header(r, "Connection", "close");
        r->suspended = 1;
        s->waiting++;
        MHD_suspend_connection(r->conn);
        return MHD_YES;
    }
    if (s->o.head && announces_body(conn)) {
        s->o.head(r, s->ud);
        if (r->answered) {
            /* the body stays unread: the connection cannot carry another request */
            r->dispatched = 1;
            if (r->response)
                MHD_add_response_header(r->response, "Connection", "close");
            return queue_answer(r);
        }
        if (hc && r->principal)
            hc->authed = 1;
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->started_us = now_us();
        r->method = strdup(method);
        r->path = strdup(url);
        strbuf_init(&r->body, s->o.max_body);
        fill_peer(r);
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && request_id_ok(rid))
            snprintf(r->id, sizeof(r->id), "%s", rid);
        else
            new_request_id(r->id, sizeof(r->id));
        *con_cls = r;
        if (!r->method || !r->path)
            return MHD_NO;
        return on_head(s, r, version ? version : "");
    }
    if (*upload_size) {
        if (!r->too_big && strbuf_append(&r->body, upload, *upload_size) != 0) {
            r->too_big = 1;
            strbuf_release(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->answered)
        return queue_answer(r);
    if (r->dispatched)
        return MHD_YES; /* resumed without an answer: should not happen */
    r->dispatched = 1;
    s->handler(r, s->ud);
    if (r->answered)
        return queue_answer(r);
    r->suspended = 1;
    s->waiting++;
    MHD_suspend_connection(conn);
    return MHD_YES;
}

/* `,"key":` (keys here are plain ASCII). */
static int access_key(struct strbuf *b, const char *key)
{
    int rc = strbuf_append(b, ",\"", 2);
    if (!rc)
        rc = strbuf_append_str(b, key);
    return rc ? rc : strbuf_append(b, "\":", 2);
}

/* A string member, the value repaired to UTF-8 as jsonw does. */
static int access_str(struct strbuf *b, const char *key, const char *v)
{
    int rc = access_key(b, key);
    return rc ? rc : jsonw_string(b, v, strlen(v));
}

static int access_u64(struct strbuf *b, const char *key, uint64_t v)
{
    int rc = access_key(b, key);
    return rc ? rc : jsonw_u64(b, v);
}

/* The access log line, one per request: written by hand (a jansson tree
 * and its dump cost more than the rest of a Ping's answer), the same
 * members in the same order as before. A method or path that is not
 * UTF-8 shows with U+FFFD (jansson's json_pack refused such a line whole
 * and the line lost every field). */
static void access_log(const struct http_req *r, uint64_t us, int aborted)
{
    static struct strbuf b;
    int rc = log_begin(&b, LOG_INFO, "http request");
    if (!rc)
        rc = access_str(&b, "method", r->method ? r->method : "");
    if (!rc)
        rc = access_str(&b, "path", r->path ? r->path : "");
    if (!rc)
        rc = access_u64(&b, "status", r->status);
    if (!rc)
        rc = access_key(&b, "ms");
    if (!rc)
        rc = jsonw_real(&b, (double)us / 1000.0, 10);
    if (!rc)
        rc = access_u64(&b, "bytes_in", r->body.len);
    if (!rc)
        rc = access_u64(&b, "bytes_out", r->bytes_out);
    if (!rc)
        rc = access_str(&b, "request_id", r->id);
    if (!rc)
        rc = access_str(&b, "peer", r->peer);
    if (!rc && r->route)
        rc = access_str(&b, "route", r->route);
    if (!rc && r->key[0])
        rc = access_str(&b, "key", r->key);
    if (!rc && r->via[0])
        rc = access_str(&b, "via", r->via);
    if (!rc && aborted)
        rc = strbuf_append(&b, ",\"aborted\":true", 15);
    log_end(&b, rc);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    struct http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) {
        struct http_conn *hc = ci->socket_context;
        hc->in_request = 0;
        hc->req = NULL;
        hc->idle_ms = uv_now(r->srv->loop);
        if (r->principal)
            hc->authed = 1;
    }
    uint64_t us = now_us() - r->started_us;
    char status[8];
    snprintf(status, sizeof(status), "%u", r->status);
    metrics_inc(METRIC_HTTP_REQUESTS, r->route ? r->route : "none", status, 1);
    metrics_observe(METRIC_HTTP_DURATION, r->route ? r->route : "none", (double)us / 1e6);
    if (log_enabled(LOG_INFO))
        access_log(r, us, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (r->stream)
        r->stream->req = NULL;
    if (r->response)
        MHD_destroy_response(r->response);
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
    free(r->method);
    free(r->path);
    free(r);
}

/* --- loop glue ------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    server_run(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    server_run(p->data);
}

static void server_run(struct http_server *s)
{
    if (!s->mhd)
        return;
    s->running = 1;
    s->kick = 0;
    if (s->wakes)
        resume_woken(s);
    MHD_run(s->mhd);
    s->running = 0;
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (s->kick)
        uv_timer_start(&s->timer, on_timer, 0, 0);
    else if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&s->timer);
}

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
    s->listen_fd = open_listener(o, err, errlen);
    if (s->listen_fd < 0) {
        free(s);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
    /* epoll: http/wire.c's TLS reads rely on MHD calling again after a
     * short read until GNUTLS_E_AGAIN, which its epoll loop does */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (o->tls_cert && o->tls_key) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "this libmicrohttpd was built without TLS support");
            close(s->listen_fd);
            free(s);
            return NULL;
        }
        flags |= MHD_USE_TLS;
        s->tls_wired = wire_tls_in_effect();
        if (!s->tls_wired)
            log_warn("TLS reads do not come through amibridge (gnutls_record_recv is not "
                     "exported by this build): libmicrohttpd answers a Content-Length that is no "
                     "number itself",
                     NULL);
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert};
    }
    /* not strict (0): Host and a blank in the target are checked in on_head,
     * because MHD's own 400 of 0.9.75 repeats its header block; a blank
     * before a colon reaches on_head too (-1 would answer MHD's HTML 400) */
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_STRICT_FOR_CLIENT, (int)0,
        MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "cannot start the HTTP server on %s:%d%s", o->host, s->port,
                 o->tls_cert ? " (is AMIBRIDGE_TLS_KEY the key of AMIBRIDGE_TLS_CERT?)" : "");
        close(s->listen_fd);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(loop, &s->poll, di->epoll_fd);
    uv_timer_init(loop, &s->timer);
    s->poll.data = s;
    s->timer.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, HTTP_SWEEP_MS, HTTP_SWEEP_MS);
    server_run(s);
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

void http_server_quiesce(struct http_server *s)
{
    if (s->mhd && s->listen_fd >= 0) {
        MHD_socket fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        s->listen_fd = -1;
    }
}

static void server_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (--s->closes_pending > 0)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s);
    if (done)
        done(arg);
}

void http_server_close(struct http_server *s, void (*done)(void *arg), void *arg)
{
    s->done = done;
    s->done_arg = arg;
    /* MHD refuses to stop with suspended connections */
    for (struct http_stream *st = s->streams; st; st = st->next)
        if (st->suspended && st->req) {
            hup_stop(st);
            st->suspended = 0;
            MHD_resume_connection(st->req->conn);
        }
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->sweep);
    if (s->mhd) {
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->closes_pending = 3;
    uv_close((uv_handle_t *)&s->poll, server_closed);
    uv_close((uv_handle_t *)&s->timer, server_closed);
    uv_close((uv_handle_t *)&s->sweep, server_closed);
}
