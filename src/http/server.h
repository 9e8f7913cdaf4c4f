/* http/server: the HTTP/1.1 server, on the libuv loop.
 *
 * Each client connection is a uv_poll on its socket: one recv() brings the
 * request in (http/h1 reads its head and body), the handler runs, and its
 * answer goes out in one send() when it comes, at once or later from any
 * loop callback (one of the http_respond*() functions). Keep-alive and
 * pipelining (requests behind one being handled are kept, up to
 * H1_HEAD_MAX bytes, and taken once it is answered); HTTPS with GnuTLS
 * (http/tls).
 *
 * The server owns request framing: a request whose framing is ambiguous
 * is refused (400 bad-framing, see http/h1.h) and its connection closed;
 * bodies are collected up to max_body (past it the body is dropped and
 * http_req_too_big() says so, for the handler to answer 413 after routing
 * and auth); every reply carries X-Request-Id (echoed when the client sent
 * a sane one) and Date; every request ends with one JSON access-log line.
 * A connection that ends after its answer is closed gracefully: what the
 * client still sends is read and dropped for a while, so that the answer
 * is not lost to a reset.
 *
 * The server also owns its connections: deadlines for the request head and
 * for the whole request, an idle timeout, a cap per client address, and a
 * reserve near max_connections kept by cutting connections that wait for
 * a request and never showed a valid key (see http_req_set_principal).
 */
#ifndef AMIBRIDGE_HTTP_SERVER_H
#define AMIBRIDGE_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#define HTTP_REQUEST_ID_MAX 64
#define HTTP_SWEEP_MS       1000 /* how often the head and request deadlines are checked */
/* Share of max_connections kept free for new clients: past the rest, each
 * new connection makes room by cutting the connection that has waited
 * longest for its request to arrive and has never shown a valid key. */
#define HTTP_RESERVE_PCT         10
#define HTTP_LISTEN_BACKLOG      1024
#define HTTP_PROBLEM_TYPE_PREFIX "urn:amibridge:problem:"

struct http_server;
struct http_req;
struct netlist_net;

typedef void (*http_handler)(struct http_req *req, void *ud);
/* Called once the head of a request that announces a body is in, before
 * any of the body is read. It may answer at once (http_respond*, never
 * later): then the body is never read and the connection is closed. It may
 * also mark the request as authenticated (http_req_set_principal), which
 * keeps the connection from being cut to make room for others. */
typedef void (*http_head_handler)(struct http_req *req, void *ud);

struct http_server_opts {
    const char *host; /* numeric address */
    int port;         /* 0: any free port, see http_server_port() */
    size_t max_body;
    unsigned max_connections;
    unsigned timeout_s; /* a connection with nothing read or sent for this long is cut; 0: never */
    unsigned header_timeout_s; /* a request head must come within this; 0: no deadline */
    /* the whole request (head and body) must come within this; 0: no deadline */
    unsigned request_timeout_s;
    /* connections one client address may hold; 0: no limit */
    unsigned max_connections_per_client;
    http_head_handler head; /* may be NULL */
    int reuseport;          /* SO_REUSEPORT: several processes share the port */
    const char *tls_cert;   /* PEM: serve HTTPS (http/tls); NULL: plain HTTP */
    const char *tls_key;
    /* peers whose X-Forwarded-For names the client (http/xff; borrowed) */
    const struct netlist_net *trusted_proxies;
    size_t ntrusted_proxies;
};

/* Bind, listen and start serving on `loop`. Returns NULL with a message in
 * err on failure. */
struct http_server *http_server_new(uv_loop_t *loop, const struct http_server_opts *o,
                                    http_handler handler, void *ud, char *err, size_t errlen);
int http_server_port(const struct http_server *s);
/* Requests whose handler has not answered yet. */
size_t http_server_waiting(const struct http_server *s);
/* Stop accepting connections; requests in progress go on. */
void http_server_quiesce(struct http_server *s);
/* Teardown (docs/layout.md, "Teardown"): stop and free. Every request must
 * have been answered. `done` fires once, when the uv handles are closed and
 * the memory is gone. */
void http_server_close(struct http_server *s, void (*done)(void *arg), void *arg);

/* --- the request, valid until it has been answered ------------------------------ */

const char *http_req_method(const struct http_req *r);
/* The path as sent, still percent-encoded, without the query. */
const char *http_req_path(const struct http_req *r);
/* A query parameter, percent-decoded ('+' is a space). Returns 1 and sets
 * *out (malloc'd, caller frees), 0 when absent, -1 when badly encoded. */
int http_req_query(const struct http_req *r, const char *name, char **out);
const char *http_req_header(const struct http_req *r, const char *name);
const char *http_req_body(const struct http_req *r, size_t *len);
/* The body was larger than max_body (and was not kept). The handler answers
 * 413 after its own routing and authentication. */
int http_req_too_big(const struct http_req *r);
size_t http_req_max_body(const struct http_req *r);
/* True when the body is empty or declared as JSON (application/json or
 * application/...+json). */
int http_req_body_is_json(const struct http_req *r);
const char *http_req_id(const struct http_req *r);
/* The client: the TCP peer, or behind a trusted proxy the address its
 * X-Forwarded-For names (http/xff); loopback and the address follow it. */
const char *http_req_peer(const struct http_req *r);
int http_req_peer_loopback(const struct http_req *r);
/* The client's address (*len 0 when unknown). */
const struct sockaddr *http_req_peer_addr(const struct http_req *r, socklen_t *len);
/* Where the request's connection keeps the key it showed last, for
 * http_auth_check (freed with the connection); NULL without a connection. */
struct http_auth_memo **http_req_auth_memo(struct http_req *r);
/* Names for the access log. */
void http_req_set_route(struct http_req *r, const char *route);
void http_req_set_key(struct http_req *r, const char *key_name);
/* Who the request authenticated as (opaque to the server; the API puts the
 * configured key there). NULL until set. */
void http_req_set_principal(struct http_req *r, const void *principal);
const void *http_req_principal(const struct http_req *r);
/* The handler holds this request's answer on purpose (a wrong key's delay):
 * near max_connections its connection may be cut to make room like an idle
 * one, and the answer then goes nowhere. */
void http_req_set_expendable(struct http_req *r);
/* Per-request data of the handler, freed with `free_fn` when the request ends. */
void http_req_set_data(struct http_req *r, void *data, void (*free_fn)(void *));
void *http_req_data(const struct http_req *r);

/* Add a response header (before responding). 0 or -ENOMEM. */
int http_req_add_header(struct http_req *r, const char *name, const char *value);

/* Answer, exactly once. The body is copied. After this the request may be
 * gone: do not touch it again. */
void http_respond(struct http_req *r, int status, const char *content_type, const char *body,
                  size_t len);
/* JSON body (stolen). */
void http_respond_json(struct http_req *r, int status, json_t *body);
/* RFC 9457 problem+json: type is HTTP_PROBLEM_TYPE_PREFIX + slug; `extra`
 * (stolen, may be NULL) adds members such as "field". */
void http_respond_problem(struct http_req *r, int status, const char *slug, const char *title,
                          const char *detail, json_t *extra);
/* 500 "out of memory": the one answer when an allocation fails. */
void http_respond_oom(struct http_req *r);

/* --- streamed answers (Server-Sent Events) ------------------------------------------- */

#define HTTP_STREAM_BLOCK (32 * 1024)

struct http_stream;
/* Fill buf with up to max bytes of the body: return how many (> 0), 0 when
 * there is nothing right now (the connection waits for http_stream_wake),
 * or -1 to end the body. */
typedef ssize_t (*http_stream_read)(void *ud, char *buf, size_t max);
/* The stream is over (the client left or the body ended); called once. */
typedef void (*http_stream_closed)(void *ud);

/* Answer with a body of unknown length produced by `rd`. *out receives the
 * stream handle (NULL on failure, when a 500 was sent instead). */
void http_respond_stream(struct http_req *r, int status, const char *content_type,
                         http_stream_read rd, http_stream_closed cl, void *ud,
                         struct http_stream **out);
/* New data for a stream: let the server ask `rd` again. */
void http_stream_wake(struct http_stream *st);
size_t http_server_streams(const struct http_server *s);

/* Percent-decode s[0..len) into a new string. '+' becomes a space when
 * plus_is_space. Returns NULL on a bad escape or an encoded NUL. */
char *http_percent_decode(const char *s, size_t len, int plus_is_space);

#endif
