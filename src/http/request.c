/* http/request: one request as the handlers see it (its method, path,
 * headers, query, body, peer and what the handlers attach to it), its id
 * and its client's address (behind a trusted proxy, the one it names). */
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "http/h1.h"
#include "http/server_internal.h"
#include "http/xff.h"

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
            int a = h1_hexval(s[i + 1]), b = h1_hexval(s[i + 2]);
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

int http_request_id_ok(const char *s)
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
void http_request_id_new(char *out, size_t len)
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
    return h1_header(&r->head, name);
}

/* The first name=value of the query with that name (compared as sent),
 * the value percent-decoded; a name without '=' counts as absent. */
int http_req_query(const struct http_req *r, const char *name, char **out)
{
    *out = NULL;
    const char *q = h1_query(&r->head);
    size_t nlen = strlen(name);
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (eq && (size_t)(eq - q) == nlen && !memcmp(q, name, nlen)) {
            *out = http_percent_decode(eq + 1, n - nlen - 1, 1);
            return *out ? 1 : -1;
        }
        q += n;
        if (*q)
            q++;
    }
    return 0;
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

struct http_auth_memo **http_req_auth_memo(struct http_req *r)
{
    return r->conn ? &r->conn->auth_memo : NULL;
}

void http_req_set_route(struct http_req *r, const char *route)
{
    r->route = route;
}

void http_req_set_key(struct http_req *r, const char *key_name)
{
    const char *k = key_name ? key_name : "";
    size_t n = strnlen(k, sizeof(r->key) - 1);
    memcpy(r->key, k, n);
    r->key[n] = '\0';
}

void http_req_set_principal(struct http_req *r, const void *principal)
{
    r->principal = principal;
}

const void *http_req_principal(const struct http_req *r)
{
    return r->principal;
}

void http_req_set_expendable(struct http_req *r)
{
    r->expendable = 1;
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

void http_req_set_peer(struct http_req *r, const struct sockaddr *sa)
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

/* Behind a trusted proxy the client is the one it names (http/xff): every
 * X-Forwarded-For line, in order, joined with ',' (a proxy may add its own
 * line rather than extend the client's). */
void http_req_fill_peer(struct http_req *r, const struct http_conn *c)
{
    http_req_set_peer(r, (const struct sockaddr *)&c->addr);
    if (!r->srv->o.ntrusted_proxies)
        return;
    struct strbuf xff;
    strbuf_init(&xff, 0);
    int failed = 0;
    for (size_t i = 0; i < r->head.nh && !failed; i++) {
        const struct h1_header *h = &r->head.h[i];
        if (strcasecmp(h->name, "X-Forwarded-For"))
            continue;
        if ((xff.len && strbuf_append(&xff, ",", 1) != 0) || strbuf_append_str(&xff, h->value) != 0)
            failed = 1; /* out of memory: a partial list could be the client's line alone */
    }
    struct sockaddr_storage client;
    socklen_t len = 0;
    enum http_xff rc = failed
                           ? HTTP_XFF_MALFORMED
                           : http_xff_client((const struct sockaddr *)&r->peer_addr, r->peer_len,
                                             xff.len ? xff.data : NULL, r->srv->o.trusted_proxies,
                                             r->srv->o.ntrusted_proxies, &client, &len);
    if (rc == HTTP_XFF_MALFORMED) /* debug: one line per request would flood the log */
        log_debug("X-Forwarded-For of a trusted proxy not understood: the proxy is the client",
                  "{s:s}", "peer", r->peer);
    if (rc == HTTP_XFF_CLIENT) {
        memcpy(r->via, r->peer, sizeof(r->via));
        http_req_set_peer(r, (const struct sockaddr *)&client);
    }
    strbuf_release(&xff);
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
