#include "support/receiver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"

#define READ_CHUNK        (64 * 1024)  /* bytes per recv() */
#define CHUNK_LINE_MAX    1024         /* a chunk-size line with its extensions */
#define LINGER_MS         1000         /* reading after our last answer, before close */
#define ACCEPT_BACKOFF_MS 50           /* out of descriptors: wait, then accept again */
#define THREAD_STACK      (512 * 1024) /* per connection thread; buffers are on the heap */
#define RESPONSE_MAX      512

struct conn {
    struct receiver *r;
    pthread_t thread;
    int fd;
    unsigned serial;
    int done; /* under r->mu: the thread is about to return, join it */
    struct conn *next;
};

struct receiver {
    int lfd;
    int port;
    int stop_pipe[2]; /* written once by receiver_stop(); never read, so stays readable */
    atomic_int stopping;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* a request was recorded */
    /* everything below is under mu */
    struct receiver_req *reqs;
    size_t nreqs, capreqs;
    int status, delay_ms, silent;
    int *script;
    size_t script_n, script_pos;
    size_t nconns, rejected;
    struct conn *conns; /* threads not joined yet (accept thread and stop only) */
};

/* A request while it is being read: what is recorded, and what decides the
 * framing of the body and of the answer. */
struct pending {
    struct receiver_req q;
    int keep_alive;
    int head; /* HEAD: answer without a body */
    int has_length, chunked, expect;
    unsigned long long length;
};

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

struct dechunker {
    int state;
    size_t left;    /* bytes of the current chunk still to come */
    size_t trailer; /* trailer bytes seen, against RECEIVER_MAX_HEADER */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events` (fd -1: just sleep) while watching the
 * stop pipe, so no thread ever outlives receiver_stop() by a peer's whim.
 * timeout_ms -1 waits forever. 1 ready, 0 timeout, -1 stopping or error. */
static int wait_fd(struct receiver *r, int fd, short events, int timeout_ms)
{
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        if (atomic_load(&r->stopping))
            return -1;
        struct pollfd p[2] = {{fd, events, 0}, {r->stop_pipe[0], POLLIN, 0}};
        int left = -1;
        if (deadline >= 0) {
            long long d = deadline - now_ms();
            left = d > 0 ? (int)d : 0;
        }
        int n = poll(p, 2, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[1].revents)
            return -1;
        if (n == 0)
            return 0;
        return 1;
    }
}

/* Append what the socket has to `in`, waiting for at least one byte.
 * >0 bytes read, 0 when the peer closed, -1 on error or stop. */
static int conn_read(struct conn *c, struct strbuf *in, char *buf)
{
    for (;;) {
        if (atomic_load(&c->r->stopping))
            return -1;
        ssize_t n = recv(c->fd, buf, READ_CHUNK, 0);
        if (n > 0)
            return strbuf_append(in, buf, (size_t)n) ? -1 : (int)n;
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_fd(c->r, c->fd, POLLIN, -1) < 0)
            return -1;
    }
}

static int send_all(struct conn *c, const char *p, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_fd(c->r, c->fd, POLLOUT, -1) < 0)
            return -1;
    }
    return 0;
}

/* After our last answer: half-close and read until the peer closes (or a
 * while passes), so unread request bytes do not turn our close into a reset
 * that destroys the answer before the client reads it. */
static void linger_close(struct conn *c, char *buf)
{
    shutdown(c->fd, SHUT_WR);
    long long deadline = now_ms() + LINGER_MS;
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0 || wait_fd(c->r, c->fd, POLLIN, (int)left) <= 0)
            return;
        ssize_t n = recv(c->fd, buf, READ_CHUNK, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            return;
    }
}

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *text;
    } table[] = {
        {100, "Continue"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].status == status)
            return table[i].text;
    return "Status";
}

/* A whole answer in one send: status line, Content-Length (none for 1xx,
 * 204 and 304, whose answers have no body), Connection: close when this is
 * the last one. */
static int respond(struct conn *c, int status, int keep_alive, int head)
{
    char body[64], msg[RESPONSE_MAX];
    const char *reason = reason_phrase(status);
    int bodyless = status < 200 || status == 204 || status == 304;
    int blen = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    int n = snprintf(msg, sizeof(msg), "HTTP/1.1 %d %s\r\n", status, reason);
    if (!bodyless)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n,
                      "Content-Type: text/plain\r\nContent-Length: %d\r\n", blen);
    if (!keep_alive)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, "Connection: close\r\n");
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\r\n%s", bodyless || head ? "" : body);
    return send_all(c, msg, (size_t)n);
}

/* Offset just past the empty line that ends the head (LF or CRLF line
 * ends), searching from `from`; 0 when it has not arrived yet. */
static size_t find_head_end(const char *d, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (d[i] != '\n')
            continue;
        if (i + 1 < len && d[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Next line of [*p, end): its start and length without CR LF; advances *p.
 * NULL when no line is left. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
    if (*p >= end)
        return NULL;
    const char *line = *p;
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    const char *stop = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    *len = (size_t)(stop - line);
    if (*len && line[*len - 1] == '\r')
        (*len)--;
    return line;
}

/* Does the comma-separated list `v` hold `token` (case-insensitive)? */
static int has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tl && !strncasecmp(v, token, tl))
            return 1;
        v += n;
    }
    return 0;
}

/* Is the last transfer coding of the list "chunked"? */
static int last_is_chunked(const char *v)
{
    const char *last = strrchr(v, ',');
    return has_token(last ? last + 1 : v, "chunked");
}

static int add_header(struct receiver_req *q, const char *name, size_t nlen, const char *val,
                      size_t vlen)
{
    char **hn = realloc(q->hname, (q->nheaders + 1) * sizeof(*hn));
    if (!hn)
        return -1;
    q->hname = hn;
    char **hv = realloc(q->hval, (q->nheaders + 1) * sizeof(*hv));
    if (!hv)
        return -1;
    q->hval = hv;
    char *n = strndup(name, nlen);
    char *v = strndup(val, vlen);
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    hn[q->nheaders] = n;
    hv[q->nheaders] = v;
    q->nheaders++;
    return 0;
}

/* What one header means for framing and for the connection. */
static int interpret_header(struct pending *p, const char *name, const char *val, int *close_tok,
                            int *keep_tok)
{
    if (!strcasecmp(name, "Content-Length")) {
        if (!*val || strspn(val, "0123456789") != strlen(val) || strlen(val) > 18)
            return 400;
        unsigned long long v = strtoull(val, NULL, 10);
        if (p->has_length && p->length != v)
            return 400;
        p->has_length = 1;
        p->length = v;
    } else if (!strcasecmp(name, "Transfer-Encoding")) {
        p->chunked = last_is_chunked(val) ? 1 : -1;
    } else if (!strcasecmp(name, "Connection")) {
        *close_tok |= has_token(val, "close");
        *keep_tok |= has_token(val, "keep-alive");
    } else if (!strcasecmp(name, "Expect")) {
        p->expect |= has_token(val, "100-continue");
    }
    return 0;
}

/* Parse request line and headers of d[0..n). 0, or the status to refuse
 * the request with (400, 413, 414). p->q owns what was parsed either way. */
static int parse_head(const char *d, size_t n, struct pending *p)
{
    const char *cur = d, *end = d + n;
    size_t ll;
    const char *line = next_line(&cur, end, &ll);
    const char *sp1 = line ? memchr(line, ' ', ll) : NULL;
    if (!sp1)
        return 400;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line + ll - target));
    if (!sp2)
        return 400;
    size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - target);
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(line + ll - ver);
    if (!mlen || mlen >= sizeof(p->q.method) || !tlen || vlen != 8 || strncmp(ver, "HTTP/1.", 7) ||
        (ver[7] != '0' && ver[7] != '1'))
        return 400;
    if (tlen >= sizeof(p->q.path))
        return 414;
    memcpy(p->q.method, line, mlen);
    memcpy(p->q.path, target, tlen);
    p->head = !strcmp(p->q.method, "HEAD");
    int http11 = ver[7] == '1', close_tok = 0, keep_tok = 0;

    while ((line = next_line(&cur, end, &ll)) && ll) {
        if (line[0] == ' ' || line[0] == '\t') /* obsolete line folding */
            return 400;
        const char *colon = memchr(line, ':', ll);
        if (!colon || colon == line || memchr(line, ' ', (size_t)(colon - line)) ||
            memchr(line, '\t', (size_t)(colon - line)))
            return 400;
        const char *v = colon + 1, *vend = line + ll;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if (add_header(&p->q, line, (size_t)(colon - line), v, (size_t)(vend - v)))
            return 400;
        size_t i = p->q.nheaders - 1;
        int rc = interpret_header(p, p->q.hname[i], p->q.hval[i], &close_tok, &keep_tok);
        if (rc)
            return rc;
    }
    p->keep_alive = http11 ? !close_tok : keep_tok && !close_tok;
    if (p->chunked < 0)
        return 400; /* a coding we cannot take apart: the length is unknown */
    if (p->chunked)
        p->has_length = 0;
    else if (p->length > RECEIVER_MAX_BODY)
        return 413;
    return 0;
}

/* Decode chunked framing from d[*pos..len) into body, advancing *pos.
 * 1 when the last chunk and trailers are through, 0 when more input is
 * needed, or the status to refuse with (400, 413). */
static int dechunk(struct dechunker *k, const char *d, size_t len, size_t *pos, struct strbuf *body)
{
    while (*pos < len) {
        const char *p = d + *pos;
        size_t avail = len - *pos;
        if (k->state == CH_DATA) {
            size_t take = avail < k->left ? avail : k->left;
            if (strbuf_append(body, p, take))
                return 413;
            *pos += take;
            k->left -= take;
            if (!k->left)
                k->state = CH_DATA_END;
            continue;
        }
        const char *nl = memchr(p, '\n', avail);
        if (!nl) {
            if (k->state == CH_TRAILER)
                return k->trailer + avail > RECEIVER_MAX_HEADER ? 413 : 0;
            return avail > CHUNK_LINE_MAX ? 400 : 0;
        }
        size_t ll = (size_t)(nl - p);
        *pos += ll + 1;
        if (ll && p[ll - 1] == '\r')
            ll--;
        if (k->state == CH_DATA_END) {
            if (ll)
                return 400;
            k->state = CH_SIZE;
        } else if (k->state == CH_TRAILER) {
            if (!ll)
                return 1;
            k->trailer += ll + 2;
            if (k->trailer > RECEIVER_MAX_HEADER)
                return 413;
        } else {
            size_t size = 0, i = 0;
            for (; i < ll && isxdigit((unsigned char)p[i]); i++) {
                int h = p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10;
                size = size * 16 + (size_t)h;
                if (size > RECEIVER_MAX_BODY)
                    return 413;
            }
            if (!i || (i < ll && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
                return 400;
            if (body->len + size > RECEIVER_MAX_BODY)
                return 413;
            k->left = size;
            k->state = size ? CH_DATA : CH_TRAILER;
        }
    }
    return 0;
}

/* Read the head of the next request into the front of `in`. Its length,
 * 0 when the peer closed between requests, -1 on a broken connection, or
 * -413 when it is over the limit. */
static long read_head(struct conn *c, struct strbuf *in, char *buf)
{
    size_t from = 0;
    for (;;) {
        /* CRLFs between requests are ignored (RFC 9112, 2.2) */
        size_t skip = 0;
        while (skip < in->len && (in->data[skip] == '\r' || in->data[skip] == '\n'))
            skip++;
        if (skip) {
            strbuf_consume(in, skip);
            from = 0;
        }
        size_t end = in->len ? find_head_end(in->data, in->len, from) : 0;
        if (end)
            return end > RECEIVER_MAX_HEADER ? -413 : (long)end;
        if (in->len > RECEIVER_MAX_HEADER)
            return -413;
        from = in->len > 2 ? in->len - 2 : 0;
        int n = conn_read(c, in, buf);
        if (n <= 0)
            return n == 0 && in->len == 0 ? 0 : -1;
    }
}

/* Read the body announced by the head into p->q. 0, -1 on a broken
 * connection, or the status to refuse with. */
static int read_body(struct conn *c, struct strbuf *in, char *buf, struct pending *p)
{
    if (!p->chunked) {
        size_t len = (size_t)p->length;
        while (in->len < len)
            if (conn_read(c, in, buf) <= 0)
                return -1;
        p->q.body = malloc(len + 1);
        if (!p->q.body)
            return -1;
        if (len)
            memcpy(p->q.body, in->data, len);
        p->q.body[len] = '\0';
        p->q.len = len;
        strbuf_consume(in, len);
        return 0;
    }
    struct dechunker k = {CH_SIZE, 0, 0};
    struct strbuf body;
    strbuf_init(&body, RECEIVER_MAX_BODY);
    int rc;
    for (;;) {
        size_t pos = 0;
        rc = in->len ? dechunk(&k, in->data, in->len, &pos, &body) : 0;
        strbuf_consume(in, pos);
        if (rc)
            break;
        if (conn_read(c, in, buf) <= 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 1) {
        p->q.body = strbuf_detach(&body, &p->q.len);
        rc = p->q.body ? 0 : -1;
    }
    strbuf_release(&body);
    return rc;
}

/* What to do with a complete request once it is recorded. */
struct answer {
    int status; /* 0: none */
    int silent; /* hold the connection without answering */
    int delay_ms;
};

/* Record a complete request (taking what p->q owns) and decide how to
 * answer it. */
static struct answer record(struct receiver *r, struct pending *p)
{
    struct answer a = {0, 0, 0};
    p->q.t = now_s();
    pthread_mutex_lock(&r->mu);
    if (r->silent)
        a.silent = 1;
    else if (r->script_pos < r->script_n)
        a.status = r->script[r->script_pos++];
    else
        a.status = r->status;
    if (a.status < 100 || a.status > 999)
        a.status = 0;
    a.delay_ms = r->delay_ms;
    p->q.status = a.status;
    if (r->nreqs == r->capreqs) {
        size_t cap = r->capreqs ? r->capreqs * 2 : 64;
        struct receiver_req *n = realloc(r->reqs, cap * sizeof(*n));
        if (n) {
            r->reqs = n;
            r->capreqs = cap;
        }
    }
    if (r->nreqs < r->capreqs) {
        r->reqs[r->nreqs++] = p->q;
        memset(&p->q, 0, sizeof(p->q));
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->mu);
    return a;
}

static void reject(struct conn *c, char *buf, int status)
{
    pthread_mutex_lock(&c->r->mu);
    c->r->rejected++;
    pthread_mutex_unlock(&c->r->mu);
    if (respond(c, status, 0, 0) == 0)
        linger_close(c, buf);
}

/* Silent mode: read and drop whatever comes until the peer closes. */
static void hold(struct conn *c, char *buf)
{
    for (;;) {
        if (wait_fd(c->r, c->fd, POLLIN, -1) <= 0)
            return;
        ssize_t n = recv(c->fd, buf, READ_CHUNK, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            return;
    }
}

/* Serve requests on one connection until it closes, breaks, or stops. */
static void serve(struct conn *c, struct strbuf *in, char *buf)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    for (;;) {
        long hlen = read_head(c, in, buf);
        if (hlen == -413)
            reject(c, buf, 413);
        if (hlen <= 0)
            return;
        struct pending p;
        memset(&p, 0, sizeof(p));
        p.q.conn = c->serial;
        int rc = parse_head(in->data, (size_t)hlen, &p);
        strbuf_consume(in, (size_t)hlen);
        if (!rc && p.expect && (p.chunked || p.length)) {
            p.q.continued = 1;
            if (send_all(c, cont, sizeof(cont) - 1))
                rc = -1;
        }
        if (!rc)
            rc = read_body(c, in, buf, &p);
        if (rc) {
            receiver_req_free(&p.q);
            if (rc > 0)
                reject(c, buf, rc);
            return;
        }
        int keep_alive = p.keep_alive, head = p.head;
        struct answer a = record(c->r, &p);
        receiver_req_free(&p.q); /* owns something only when recording failed */
        if (a.silent) {
            hold(c, buf);
            return;
        }
        if (a.delay_ms > 0 && wait_fd(c->r, -1, 0, a.delay_ms) < 0)
            return;
        if (!a.status || respond(c, a.status, keep_alive, head))
            return;
        if (!keep_alive) {
            linger_close(c, buf);
            return;
        }
    }
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct strbuf in;
    strbuf_init(&in, 0);
    char *buf = malloc(READ_CHUNK);
    if (buf)
        serve(c, &in, buf);
    free(buf);
    strbuf_release(&in);
    close(c->fd);
    pthread_mutex_lock(&c->r->mu);
    c->fd = -1;
    c->done = 1;
    pthread_mutex_unlock(&c->r->mu);
    return NULL;
}

/* Join the connection threads that have finished (all of them when
 * `all`), so a long benchmark does not pile up dead threads. */
static void reap(struct receiver *r, int all)
{
    struct conn *dead = NULL;
    pthread_mutex_lock(&r->mu);
    for (struct conn **pp = &r->conns; *pp;) {
        struct conn *c = *pp;
        if (all || c->done) {
            *pp = c->next;
            c->next = dead;
            dead = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&r->mu);
    while (dead) {
        struct conn *c = dead;
        dead = c->next;
        pthread_join(c->thread, NULL);
        free(c);
    }
}

static void *accept_main(void *arg)
{
    struct receiver *r = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    for (;;) {
        if (wait_fd(r, r->lfd, POLLIN, -1) < 0)
            break;
        int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                wait_fd(r, -1, 0, ACCEPT_BACKOFF_MS);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        reap(r, 0);
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->r = r;
        c->fd = fd;
        pthread_mutex_lock(&r->mu);
        c->serial = (unsigned)++r->nconns;
        pthread_mutex_unlock(&r->mu);
        if (pthread_create(&c->thread, &attr, conn_main, c)) {
            close(fd);
            free(c);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        c->next = r->conns;
        r->conns = c;
        pthread_mutex_unlock(&r->mu);
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

struct receiver *receiver_start(void)
{
    struct receiver *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->lfd = -1;
    r->stop_pipe[0] = r->stop_pipe[1] = -1;
    r->status = 200;
    atomic_init(&r->stopping, 0);
    int locks = 0;
    pthread_condattr_t ca;
    if (pthread_mutex_init(&r->mu, NULL))
        goto fail;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) {
        pthread_mutex_destroy(&r->mu);
        goto fail;
    }
    locks = 1;
    if (pipe2(r->stop_pipe, O_CLOEXEC | O_NONBLOCK))
        goto fail;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->lfd < 0)
        goto fail;
    int one = 1;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(r->lfd, SOMAXCONN) ||
        getsockname(r->lfd, (struct sockaddr *)&sa, &sl))
        goto fail;
    r->port = ntohs(sa.sin_port);
    if (pthread_create(&r->accept_thread, NULL, accept_main, r))
        goto fail;
    return r;
fail:
    if (r->lfd >= 0)
        close(r->lfd);
    for (int i = 0; i < 2; i++)
        if (r->stop_pipe[i] >= 0)
            close(r->stop_pipe[i]);
    if (locks) {
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
    }
    free(r);
    return NULL;
}

int receiver_port(const struct receiver *r)
{
    return r->port;
}

void receiver_set_status(struct receiver *r, int status)
{
    pthread_mutex_lock(&r->mu);
    r->status = status;
    pthread_mutex_unlock(&r->mu);
}

void receiver_set_delay_ms(struct receiver *r, int ms)
{
    pthread_mutex_lock(&r->mu);
    r->delay_ms = ms;
    pthread_mutex_unlock(&r->mu);
}

void receiver_set_silent(struct receiver *r, int on)
{
    pthread_mutex_lock(&r->mu);
    r->silent = on;
    pthread_mutex_unlock(&r->mu);
}

void receiver_script(struct receiver *r, const int *statuses, size_t n)
{
    int *copy = NULL;
    if (n) {
        copy = malloc(n * sizeof(*copy));
        if (!copy)
            n = 0;
        else
            memcpy(copy, statuses, n * sizeof(*copy));
    }
    pthread_mutex_lock(&r->mu);
    free(r->script);
    r->script = copy;
    r->script_n = n;
    r->script_pos = 0;
    pthread_mutex_unlock(&r->mu);
}

size_t receiver_count(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->nreqs;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int req_copy(const struct receiver_req *src, struct receiver_req *dst)
{
    *dst = *src;
    dst->hname = calloc(src->nheaders ? src->nheaders : 1, sizeof(*dst->hname));
    dst->hval = calloc(src->nheaders ? src->nheaders : 1, sizeof(*dst->hval));
    dst->body = malloc(src->len + 1);
    if (!dst->hname || !dst->hval || !dst->body)
        goto fail;
    memcpy(dst->body, src->body, src->len + 1);
    for (size_t i = 0; i < src->nheaders; i++) {
        dst->hname[i] = strdup(src->hname[i]);
        dst->hval[i] = strdup(src->hval[i]);
        if (!dst->hname[i] || !dst->hval[i])
            goto fail;
    }
    return 0;
fail:
    receiver_req_free(dst);
    return -1;
}

int receiver_get(struct receiver *r, size_t i, struct receiver_req *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&r->mu);
    int rc = i < r->nreqs ? req_copy(&r->reqs[i], out) : -1;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void receiver_req_free(struct receiver_req *q)
{
    for (size_t i = 0; i < q->nheaders; i++) {
        if (q->hname)
            free(q->hname[i]);
        if (q->hval)
            free(q->hval[i]);
    }
    free(q->hname);
    free(q->hval);
    free(q->body);
    memset(q, 0, sizeof(*q));
}

const char *receiver_req_header(const struct receiver_req *q, const char *name)
{
    for (size_t i = 0; i < q->nheaders; i++)
        if (!strcasecmp(q->hname[i], name))
            return q->hval[i];
    return NULL;
}

size_t receiver_wait(struct receiver *r, size_t n, int timeout_ms)
{
    struct timespec dl;
    if (timeout_ms < 0)
        timeout_ms = 0;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (r->nreqs < n)
        if (pthread_cond_timedwait(&r->cond, &r->mu, &dl) == ETIMEDOUT)
            break;
    size_t count = r->nreqs;
    pthread_mutex_unlock(&r->mu);
    return count;
}

size_t receiver_connections(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->nconns;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t receiver_rejected(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->rejected;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void receiver_clear(struct receiver *r)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nreqs; i++)
        receiver_req_free(&r->reqs[i]);
    r->nreqs = 0;
    pthread_mutex_unlock(&r->mu);
}

void receiver_stop(struct receiver *r)
{
    if (!r)
        return;
    atomic_store(&r->stopping, 1);
    ssize_t w;
    do
        w = write(r->stop_pipe[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(r->accept_thread, NULL);
    reap(r, 1);
    close(r->lfd);
    close(r->stop_pipe[0]);
    close(r->stop_pipe[1]);
    receiver_clear(r);
    free(r->reqs);
    free(r->script);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
