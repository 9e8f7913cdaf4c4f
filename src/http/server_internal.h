/* http/server_internal: what the files of the HTTP server share (server.c:
 * listening, connections, requests in, the loop's prepare callback;
 * respond.c: answers and streams; request.c: a request's accessors, its id
 * and its client; access_log.c: the access log). Not for handlers: they
 * see http/server.h only. */
#ifndef AMIBRIDGE_HTTP_SERVER_INTERNAL_H
#define AMIBRIDGE_HTTP_SERVER_INTERNAL_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/strbuf.h"
#include "http/h1.h"
#include "http/server.h"
#include "http/tls.h"

struct http_header {
    char *name, *value;
    struct http_header *next;
};

struct http_conn;

struct http_req {
    struct http_server *srv;
    struct http_conn *conn; /* NULL once the connection is gone */
    struct h1_head head;
    struct h1_body bd;
    const char *method; /* in head, or "" */
    char *path;         /* raw, without the query */
    struct strbuf body;
    int too_big;
    int dispatched;
    int suspended; /* the handler answers later */
    int answered;
    int close_conn; /* the connection ends with this request */
    int head_only;  /* HEAD: no body in the answer */
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
    int expendable; /* its answer is held on purpose (http_req_set_expendable) */
    struct http_stream *stream;
};

struct http_stream {
    struct http_server *srv;
    struct http_req *req; /* NULL once the request is over */
    http_stream_read rd;
    http_stream_closed cl;
    void *ud;
    int chunked; /* HTTP/1.1: chunked; HTTP/1.0: the body ends with the connection */
    int parked;  /* rd had nothing: waits for http_stream_wake */
    int wake;    /* woken: fed when the loop next polls */
    struct http_stream *prev, *next; /* the server's open streams */
};

/* What a connection is doing. */
enum conn_state {
    CONN_HEAD,   /* reading a request head (or waiting for one) */
    CONN_BODY,   /* reading the body of the request */
    CONN_WAIT,   /* the handler has the request */
    CONN_SEND,   /* the answer is being sent */
    CONN_STREAM, /* a streamed answer */
    CONN_LINGER, /* done: its answer is out, what the client still sends is dropped */
};

/* A client connection: between requests it must deliver a whole request
 * head within header_timeout_s, and a whole request (head and body) within
 * request_timeout_s, or it is cut (slow-header and slow-body clients, idle
 * keep-alive connections past the deadline). */
#define HTTP_PEER_KEY_LEN 17 /* family byte, then 4 or 16 address bytes */

struct http_conn {
    struct http_conn *prev, *next;
    struct http_server *srv;
    uv_poll_t poll;
    int fd;
    int events; /* what poll watches */
    enum conn_state st;
    struct http_tls_session *tls;
    int handshaking;
    struct strbuf in; /* received, not yet taken by a request */
    size_t head_from; /* h1_head_end's resume point in `in` */
    struct strbuf out;
    size_t out_off;                        /* sent of out */
    int eof;                               /* the client closed its side */
    int processing;                        /* inside conn_take */
    int closed;                            /* conn_close done: only the handle's close is left */
    struct http_req *req;                  /* the request in progress, NULL between requests */
    uint64_t idle_ms;                      /* loop time since it has been waiting for a request */
    uint64_t active_ms;                    /* loop time of its last read or write */
    uint64_t linger_ms;                    /* loop time its graceful close began */
    int tls_read;                          /* TLS holds decrypted bytes, to be read once it may */
    int authed;                            /* a request on it showed a valid key */
    struct http_auth_memo *auth_memo;      /* the key it showed last (http/auth), or NULL */
    unsigned nreq;                         /* request heads handled on it, from 1 */
    unsigned char peer[HTTP_PEER_KEY_LEN]; /* the client's address, see peer_key() */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct http_server {
    uv_loop_t *loop;
    int listen_fd;
    uv_poll_t listen;
    int listening;
    uv_timer_t accept_pause;
    int port;
    struct http_server_opts o;
    struct http_tls *tls;
    http_handler handler;
    void *ud;
    size_t waiting;
    struct http_stream *streams;
    size_t nstreams;
    size_t wakes; /* parked streams woken (http_stream_wake) */
    uv_prepare_t feed;
    int closing;
    int closes_pending;   /* the server's own handles still closing */
    size_t conns_closing; /* connections whose handle is still closing */
    size_t tls_reads;     /* connections with tls_read set */
    void (*done)(void *);
    void *done_arg;
    struct http_conn *conns; /* every open connection, for the deadlines and limits */
    size_t nconns;
    uv_timer_t sweep;
    /* connections cut or refused since the last sweep, for one log line */
    unsigned ncut_head, ncut_whole, ncut_reserve, ncut_idle, nrefused, nrefused_full;
    /* what one read brings (taken from here when it can), a stream's block */
    char rbuf[HTTP_STREAM_BLOCK + 32];
    struct strbuf wbuf; /* an answer built here is sent from here when it can */
};

/* A stream is fed while less than this waits to be sent. */
#define HTTP_STREAM_OUT_MAX (2 * HTTP_STREAM_BLOCK)

/* server.c: the connection's side of an answer */
/* Bytes for the client: sent now when nothing waits before them, else
 * after what waits. */
int http_conn_send(struct http_conn *c, const char *data, size_t len);
/* The request is over: account for it (metrics, access log), end its
 * stream, free it. */
void http_req_end(struct http_req *r, int aborted);
/* The answer of the connection's request is all sent: the next request,
 * or the end of the connection. */
void http_conn_answered(struct http_conn *c);
/* Close c now; a request in progress ends (aborted when unanswered). */
void http_conn_close(struct http_conn *c, int aborted);

/* Have the loop, before it next waits, feed the woken streams and read
 * the connections whose TLS session holds decrypted bytes. */
void http_server_prepare_start(struct http_server *s);

/* respond.c: streams */
/* Feed st from its reader while its connection takes more. */
void http_stream_feed(struct http_stream *st);
/* Feed the streams woken since the loop last waited. */
void http_streams_feed_woken(struct http_server *s);

/* request.c */
/* A request id the client offered: 1..HTTP_REQUEST_ID_MAX of [A-Za-z0-9-_.:]. */
int http_request_id_ok(const char *s);
/* A new request id into out[len]. */
void http_request_id_new(char *out, size_t len);
/* r's peer is the address at sa (its text, whether it is loopback). */
void http_req_set_peer(struct http_req *r, const struct sockaddr *sa);
/* r's client: c's peer, or behind a trusted proxy the one it names. */
void http_req_fill_peer(struct http_req *r, const struct http_conn *c);

/* access_log.c: the line of a request that took `us` microseconds. */
void http_access_log(const struct http_req *r, uint64_t us, int aborted);

#endif
