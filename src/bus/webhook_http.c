#include "bus/webhook_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/list.h"

struct wh_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct wh_http *h;
    struct wh_sock *prev, *next;
};

struct wh_http {
    uv_loop_t *loop;
    const struct netlist_net *allow;
    size_t nallow;
    int timeout_ms;
    int curl_ready; /* curl_global_init() done: undone when it goes */
    int closed;
    CURLM *multi; /* made with the first attempt's handle */
    uv_timer_t curl_timer;
    struct wh_sock *socks;
    /* wh_http_close(): it goes when all three are 0 */
    int timer_open;
    int socks_closing; /* socket watchers whose close callback is to come */
    int xfers;         /* wh_xfer_init() not yet undone by wh_xfer_cleanup() */
    void (*close_done)(void *);
    void *close_arg;
};

static void http_maybe_free(struct wh_http *h);

static void check_done(struct wh_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        struct wh_xfer *x = NULL;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(h->multi, e);
        if (x)
            x->done(x, rc, status);
    }
}

static void sock_closed(uv_handle_t *hd)
{
    struct wh_sock *k = hd->data;
    struct wh_http *h = k->h;
    free(k);
    h->socks_closing--;
    http_maybe_free(h);
}

static void sock_drop(struct wh_http *h, struct wh_sock *k)
{
    LIST_UNLINK(h->socks, k);
    h->socks_closing++;
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, sock_closed);
}

static void on_poll(uv_poll_t *hd, int status, int events)
{
    struct wh_sock *k = hd->data;
    struct wh_http *h = k->h;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(h->multi, k->fd, flags, &running);
    check_done(h);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    struct wh_http *h = userp;
    struct wh_sock *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            curl_multi_assign(h->multi, s, NULL);
            sock_drop(h, k);
        }
        return 0;
    }
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k || uv_poll_init_socket(h->loop, &k->poll, s) != 0) {
            free(k);
            return -1;
        }
        k->fd = s;
        k->h = h;
        k->poll.data = k;
        LIST_PUSH_FRONT(h->socks, k);
        curl_multi_assign(h->multi, s, k);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&k->poll, ev, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    struct wh_http *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int on_curl_timeout(CURLM *m, long ms, void *userp)
{
    (void)m;
    struct wh_http *h = userp;
    if (ms < 0)
        uv_timer_stop(&h->curl_timer);
    else
        uv_timer_start(&h->curl_timer, on_curl_timer, (uint64_t)ms, 0);
    return 0;
}

struct wh_http *wh_http_new(uv_loop_t *loop, const struct netlist_net *allow, size_t nallow,
                            int timeout_ms)
{
    struct wh_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->loop = loop;
    h->allow = allow;
    h->nallow = nallow;
    h->timeout_ms = timeout_ms;
    uv_timer_init(loop, &h->curl_timer);
    h->curl_timer.data = h;
    h->timer_open = 1;
    return h;
}

/* libcurl and the multi handle are set up for the first subscription, not
 * at start: curl_global_init() initialises libcurl's TLS and SSH libraries
 * (on Debian libssh2 brings OpenSSL), about 2 MiB a bridge without webhooks
 * does not need. */
static int http_start(struct wh_http *h)
{
    if (h->multi)
        return 0;
    if (h->closed)
        return -ESHUTDOWN;
    if (!h->curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -ENOMEM;
        h->curl_ready = 1;
    }
    if (!(h->multi = curl_multi_init()))
        return -ENOMEM;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)WEBHOOKS_CONNECTS_MAX);
    return 0;
}

/* Closed, every handle closed, every easy handle cleaned up: libcurl's
 * global state may end with it. */
static void http_maybe_free(struct wh_http *h)
{
    if (!h->closed || h->timer_open || h->socks_closing > 0 || h->xfers > 0)
        return;
    if (h->curl_ready)
        curl_global_cleanup();
    void (*done)(void *) = h->close_done;
    void *arg = h->close_arg;
    free(h);
    if (done)
        done(arg);
}

static void timer_closed(uv_handle_t *hd)
{
    struct wh_http *h = hd->data;
    h->timer_open = 0;
    http_maybe_free(h);
}

void wh_http_close(struct wh_http *h, void (*done)(void *arg), void *arg)
{
    h->closed = 1;
    h->close_done = done;
    h->close_arg = arg;
    if (h->multi)
        curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        sock_drop(h, h->socks);
    uv_close((uv_handle_t *)&h->curl_timer, timer_closed);
}

/* Every address curl is about to connect to passes the SSRF guard here,
 * after DNS, so a name that resolves to a refused address is refused. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct wh_xfer *x = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    enum ssrf_verdict v = ssrf_check(&a->addr, a->addrlen, x->http->allow, x->http->nallow);
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

int wh_xfer_init(struct wh_http *h, struct wh_xfer *x, void *owner, wh_xfer_done_fn done)
{
    x->http = h;
    h->xfers++;
    x->owner = owner;
    x->done = done;
    int rc = http_start(h);
    if (rc)
        return rc;
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
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    long ct = h->timeout_ms < WEBHOOKS_CONNECT_MS ? h->timeout_ms : WEBHOOKS_CONNECT_MS;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ct);
    return 0;
}

void wh_xfer_cleanup(struct wh_xfer *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    x->easy = NULL;
    x->hdrs = NULL;
    struct wh_http *h = x->http;
    x->http = NULL;
    if (h) {
        h->xfers--;
        http_maybe_free(h);
    }
}

void wh_xfer_cancel(struct wh_xfer *x)
{
    curl_multi_remove_handle(x->http->multi, x->easy);
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

int wh_xfer_start(struct wh_xfer *x, const struct wh_conf *c, const char *event,
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
    return curl_multi_add_handle(x->http->multi, e) == CURLM_OK ? 0 : -EIO;
}

double wh_xfer_seconds(const struct wh_xfer *x)
{
    return (double)(uv_hrtime() - x->start) / 1e9;
}

const char *wh_xfer_outcome(const struct wh_xfer *x, CURLcode rc, long status, char *err,
                            size_t len)
{
    err[0] = '\0';
    if (x->refused != SSRF_OK) {
        snprintf(err, len, "refused by the SSRF guard: %s is a %s", x->refused_ip,
                 ssrf_reason(x->refused));
        return "refused";
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(err, len, "no answer within %d ms", x->http->timeout_ms);
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
