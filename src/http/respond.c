/* http/respond: a handler's answer (status line and headers, a whole
 * body, JSON, a problem) and streamed answers (chunks fed from a reader
 * while the socket takes them). The connection's side is in server.c. */
#include "http/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jsonw.h"
#include "core/list.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/utf8.h"
#include "http/server_internal.h"

static const char *reason_of(unsigned status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 423:
        return "Locked";
    case 425:
        return "Too Early";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* The Date header's value (RFC 9110, 5.6.7), formatted once a second. */
static const char *http_date(void)
{
    static char buf[40];
    static time_t last = -1;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

/* --- answers ------------------------------------------------------------------------ */

int http_req_add_header(struct http_req *r, const char *name, const char *value)
{
    if (!strcasecmp(name, "Connection")) {
        /* the server writes this header: only "close" is taken from a handler */
        if (!strcasecmp(value, "close"))
            r->close_conn = 1;
        return 0;
    }
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

static int put_header(struct strbuf *b, const char *name, const char *value)
{
    int rc = strbuf_append_str(b, name);
    if (!rc)
        rc = strbuf_append(b, ": ", 2);
    if (!rc)
        rc = strbuf_append_str(b, value);
    return rc ? rc : strbuf_append(b, "\r\n", 2);
}

/* The status line and headers of r's answer into b. len: the body's
 * length, or -1 for a stream. */
static int put_head(struct strbuf *b, struct http_req *r, const char *content_type, ssize_t len,
                    int chunked)
{
    int rc = strbuf_append(b, "HTTP/1.1 ", 9);
    if (!rc)
        rc = strbuf_append_u64(b, r->status);
    if (!rc)
        rc = strbuf_append(b, " ", 1);
    if (!rc)
        rc = strbuf_append_str(b, reason_of(r->status));
    if (!rc)
        rc = strbuf_append(b, "\r\n", 2);
    if (!rc)
        rc = put_header(b, "Date", http_date());
    if (!rc && content_type)
        rc = put_header(b, "Content-Type", content_type);
    if (!rc)
        rc = put_header(b, "X-Request-Id", r->id);
    if (!rc)
        rc = put_header(b, "Cache-Control", "no-store");
    for (struct http_header *h = r->headers; h && !rc; h = h->next)
        rc = put_header(b, h->name, h->value);
    int bodyless = r->status < 200 || r->status == 204 || r->status == 304;
    if (!rc && len >= 0 && !bodyless) {
        rc = strbuf_append(b, "Content-Length: ", 16);
        if (!rc)
            rc = strbuf_append_u64(b, (uint64_t)len);
        if (!rc)
            rc = strbuf_append(b, "\r\n", 2);
    }
    if (!rc && chunked)
        rc = put_header(b, "Transfer-Encoding", "chunked");
    if (!rc && r->close_conn)
        rc = put_header(b, "Connection", "close");
    else if (!rc && r->head.minor == 0)
        rc = put_header(b, "Connection", "keep-alive");
    return rc ? rc : strbuf_append(b, "\r\n", 2);
}

void http_respond(struct http_req *r, int status, const char *content_type, const char *body,
                  size_t len)
{
    if (r->answered)
        return;
    r->answered = 1;
    r->status = (unsigned)status;
    r->bytes_out = len;
    if (r->suspended) {
        r->suspended = 0;
        r->srv->waiting--;
    }
    struct http_conn *c = r->conn;
    if (!c || c->closed) {
        http_req_end(r, 1);
        return;
    }
    struct strbuf *b = &r->srv->wbuf;
    strbuf_reset(b);
    int rc = put_head(b, r, content_type, (ssize_t)len, 0);
    int bodyless = r->head_only || status < 200 || status == 204 || status == 304;
    if (!rc && !bodyless)
        rc = strbuf_append(b, body, len);
    if (rc) {
        log_error("out of memory building a response", NULL);
        http_conn_close(c, 1);
        return;
    }
    c->st = CONN_SEND;
    rc = http_conn_send(c, b->data, b->len);
    if (b->cap > 64 * 1024)
        strbuf_release(b);
    if (rc) {
        http_conn_close(c, 1);
        return;
    }
    if (!c->closed && c->out.len == c->out_off)
        http_conn_answered(c);
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

void http_streams_feed_woken(struct http_server *s)
{
    size_t n = s->wakes;
    for (struct http_stream *st = s->streams, *next; st && n; st = next) {
        next = st->next; /* feeding st may end st, never another */
        if (!st->wake)
            continue;
        st->wake = 0;
        s->wakes--;
        n--;
        if (st->req && st->parked) {
            st->parked = 0;
            http_stream_feed(st);
        }
    }
}

/* Hand the client what the producer has, while little waits to be sent. */
void http_stream_feed(struct http_stream *st)
{
    struct http_req *r = st->req;
    struct http_conn *c = r ? r->conn : NULL;
    if (!c || c->closed)
        return;
    char *buf = st->srv->rbuf;
    while (c->out.len - c->out_off < HTTP_STREAM_OUT_MAX) {
        ssize_t n = st->rd(st->ud, buf + 16, HTTP_STREAM_BLOCK);
        if (n == 0) {
            st->parked = 1;
            return;
        }
        if (n < 0) {
            /* the body is over; the connection goes on only when chunked */
            if (!st->chunked)
                r->close_conn = 1;
            c->st = CONN_SEND;
            if (st->chunked && http_conn_send(c, "0\r\n\r\n", 5) != 0) {
                http_conn_close(c, 1);
                return;
            }
            if (!c->closed && c->out.len == c->out_off)
                http_conn_answered(c);
            return;
        }
        r->bytes_out += (size_t)n;
        int rc;
        if (st->chunked) {
            /* the chunk's size before the data, its CRLF after it */
            char size[16];
            int k = snprintf(size, sizeof(size), "%zx\r\n", (size_t)n);
            memcpy(buf + 16 - k, size, (size_t)k);
            memcpy(buf + 16 + n, "\r\n", 2);
            rc = http_conn_send(c, buf + 16 - k, (size_t)k + (size_t)n + 2);
        } else {
            rc = http_conn_send(c, buf + 16, (size_t)n);
        }
        if (rc) {
            http_conn_close(c, 1);
            return;
        }
        if (c->closed)
            return;
    }
}

void http_respond_stream(struct http_req *r, int status, const char *content_type,
                         http_stream_read rd, http_stream_closed cl, void *ud,
                         struct http_stream **out)
{
    *out = NULL;
    if (r->answered)
        return;
    struct http_conn *c = r->conn;
    if (r->head_only || !c || c->closed) {
        /* HEAD: the head alone, no stream (and `cl` never called) */
        http_respond(r, status, content_type, "", 0);
        return;
    }
    struct http_stream *st = calloc(1, sizeof(*st));
    struct strbuf *b = &r->srv->wbuf;
    strbuf_reset(b);
    int chunked = r->head.minor >= 1;
    if (!chunked)
        r->close_conn = 1; /* HTTP/1.0: the body ends with the connection */
    r->status = (unsigned)status;
    if (!st || put_head(b, r, content_type, -1, chunked) != 0) {
        free(st);
        http_respond_oom(r);
        return;
    }
    st->srv = r->srv;
    st->req = r;
    st->rd = rd;
    st->cl = cl;
    st->ud = ud;
    st->chunked = chunked;
    r->answered = 1;
    if (r->suspended) {
        r->suspended = 0;
        r->srv->waiting--;
    }
    c->st = CONN_STREAM;
    /* the head goes first; the stream is the request's once it went (a
     * failure ends the request here, and the caller learns it from *out) */
    if (http_conn_send(c, b->data, b->len) != 0)
        http_conn_close(c, 1);
    if (c->closed) {
        free(st);
        return;
    }
    LIST_PUSH_FRONT(r->srv->streams, st);
    r->srv->nstreams++;
    r->stream = st;
    *out = st;
    /* the first of the body comes from the loop, like every later one */
    st->parked = 1;
    http_stream_wake(st);
}

/* A producer has more for a parked stream: it is fed when the loop next
 * polls, once however many events came meanwhile. */
void http_stream_wake(struct http_stream *st)
{
    if (!st || !st->parked || !st->req || st->wake)
        return;
    st->wake = 1;
    if (st->srv->wakes++ == 0 && !st->srv->tls_reads)
        http_server_prepare_start(st->srv);
}

size_t http_server_streams(const struct http_server *s)
{
    return s->nstreams;
}
