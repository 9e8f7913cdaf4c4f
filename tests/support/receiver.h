/* support/receiver: a real HTTP/1.1 webhook receiver for integration tests
 * and benchmarks, inside the test process.
 *
 *   struct receiver *r = receiver_start();          // 127.0.0.1, free port
 *   ... point the bridge at http://127.0.0.1:<receiver_port(r)>/hook ...
 *   int codes[] = {503, 503, 200};
 *   receiver_script(r, codes, 3);                   // then the set status
 *   receiver_wait(r, 3, 5000);
 *   struct receiver_req q;
 *   if (receiver_get(r, 2, &q) == 0) { ... q.body, q.conn ...; receiver_req_free(&q); }
 *   receiver_stop(r);
 *
 * An accept thread and one thread per TCP connection, all on non-blocking
 * sockets polled together with a stop pipe, so a delayed or silent answer
 * holds only its own connection and receiver_stop() never waits on a peer.
 * HTTP/1.1 keep-alive (answers carry Content-Length; `Connection: close`
 * and HTTP/1.0 without keep-alive are honoured), pipelining, bodies by
 * Content-Length or `Transfer-Encoding: chunked`, `Expect: 100-continue`.
 * Requests past the limits below get 413 and the connection is closed;
 * malformed ones get 400 (414 for a too long target). Neither kind is
 * recorded (see receiver_rejected()).
 *
 * Every function is thread-safe. Behaviour set by the setters applies to
 * requests that complete after the call.
 */
#ifndef AMIBRIDGE_TEST_RECEIVER_H
#define AMIBRIDGE_TEST_RECEIVER_H

#include <stddef.h>

#define RECEIVER_MAX_HEADER (64 * 1024)        /* request line + headers (and trailers) */
#define RECEIVER_MAX_BODY   (16 * 1024 * 1024) /* decoded body */

struct receiver;

struct receiver_req {
    char method[16];
    char path[512];       /* request target as sent, query included */
    char **hname, **hval; /* header names as received, values trimmed */
    size_t nheaders;      /* trailers of a chunked body are not kept */
    char *body;           /* NUL-terminated (also when empty) */
    size_t len;           /* body bytes */
    double t;             /* CLOCK_MONOTONIC seconds when the request was complete */
    int status;           /* what we answered or are about to answer after the delay;
                           * 0: none (silent, or the connection was dropped) */
    int continued;        /* 1 when we sent "100 Continue" for it */
    unsigned conn;        /* serial of the TCP connection it arrived on, from 1 */
};

/* Listen on 127.0.0.1 on a port the kernel chooses. NULL on failure. */
struct receiver *receiver_start(void);
int receiver_port(const struct receiver *r);

/* Status of the next answers; default 200. The answer body is a short text
 * line ("200 OK\n"); none for HEAD, 204 and 304. Status 0 means: record the
 * request, then close the connection without answering. */
void receiver_set_status(struct receiver *r, int status);
/* Wait this long before answering (default 0). Only that connection waits. */
void receiver_set_delay_ms(struct receiver *r, int ms);
/* Record requests and never answer them; the connection stays open until
 * the peer closes it or receiver_stop(). "100 Continue" is still sent so
 * that the body arrives and is recorded. */
void receiver_set_silent(struct receiver *r, int on);
/* Statuses for the next n requests, in order (copied; 0 as above), then
 * back to the set status. Replaces a previous script; n 0 clears it. */
void receiver_script(struct receiver *r, const int *statuses, size_t n);

/* Requests recorded so far (complete requests only). */
size_t receiver_count(struct receiver *r);
/* Deep copy of request i (0-based) into *out; free it with
 * receiver_req_free(). 0, or -1 when i is out of range (*out zeroed). */
int receiver_get(struct receiver *r, size_t i, struct receiver_req *out);
void receiver_req_free(struct receiver_req *q);
/* Value of the first header with that name (case-insensitive), borrowed
 * from q; NULL if absent. */
const char *receiver_req_header(const struct receiver_req *q, const char *name);
/* Block until at least n requests are recorded or timeout_ms passes;
 * returns the count then. */
size_t receiver_wait(struct receiver *r, size_t n, int timeout_ms);
/* TCP connections accepted so far. */
size_t receiver_connections(struct receiver *r);
/* Requests answered 400/413/414 and not recorded. */
size_t receiver_rejected(struct receiver *r);
/* Forget recorded requests (counters and behaviour stay). */
void receiver_clear(struct receiver *r);
/* Close every socket, join every thread, free everything. NULL is a no-op. */
void receiver_stop(struct receiver *r);

#endif
