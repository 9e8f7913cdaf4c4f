/* net: a blocking AMI client for tests, on the project's parser.
 *
 *   struct net_client c;
 *   net_connect(&c, "127.0.0.1", port, 2000);      // banner not consumed
 *   net_login(&c, "bridge", "bridgesecret", "off", 2000);
 *   net_sendf(&c, "Action: Ping\r\nActionID: p1\r\n\r\n");
 *   struct ami_msg *r = NULL;
 *   net_wait_response(&c, "p1", 2000, &r);          // events are skipped
 *   ami_msg_free(r);
 *   net_close(&c);
 *
 * Every byte received is also kept in `raw` (when keep_raw is set) and every
 * message gets the monotonic time it completed, so tests can check bytes and
 * timing. Timeouts are in milliseconds. Not thread-safe per client; separate
 * clients may live on separate threads.
 */
#ifndef AMIBRIDGE_TEST_NET_H
#define AMIBRIDGE_TEST_NET_H

#include <stddef.h>

#include "ami/message.h"
#include "ami/parser.h"
#include "core/strbuf.h"

struct net_client {
    int fd;
    struct ami_parser *parser;
    int eof;   /* the peer closed (read returned 0) */
    int error; /* a read/write error or parser error happened */
    int keep_raw;
    struct strbuf raw;    /* every byte received, when keep_raw */
    double last_msg_time; /* testenv_now() when the last message completed */
    double eof_time;
};

/* Connect (the parser expects the banner first). 0 or -errno. */
int net_connect(struct net_client *c, const char *host, int port, int timeout_ms);
void net_close(struct net_client *c);
/* Close our side abruptly (RST if unread data) or with shutdown(SHUT_WR). */
void net_shutdown_write(struct net_client *c);

/* Send everything. 0 or -errno. */
int net_send(struct net_client *c, const void *buf, size_t len);
int net_sendf(struct net_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read once (waiting up to timeout_ms) and feed the parser. Returns the
 * bytes read, 0 on timeout, -1 on EOF or error. */
int net_pump(struct net_client *c, int timeout_ms);
/* A message already parsed, without reading. 1 and *out, or 0. */
int net_next(struct net_client *c, struct ami_msg **out);
/* Next message, reading as needed: 1 and *out (caller frees), 0 on timeout,
 * -1 when the connection closed or failed first. */
int net_read_msg(struct net_client *c, int timeout_ms, struct ami_msg **out);
/* Up to n messages into out[] (caller frees each); returns how many. */
size_t net_read_msgs(struct net_client *c, size_t n, int timeout_ms, struct ami_msg **out);
/* Read and discard until the peer closes: 0 when it did, -ETIMEDOUT. */
int net_read_until_close(struct net_client *c, int timeout_ms);
/* Skip other messages until a Response with this ActionID: 1 and *out,
 * 0 timeout, -1 closed. */
int net_wait_response(struct net_client *c, const char *actionid, int timeout_ms,
                      struct ami_msg **out);
/* Skip other messages until an Event named `event`: 1 and *out, 0, -1. */
int net_wait_event(struct net_client *c, const char *event, int timeout_ms, struct ami_msg **out);
/* Read the banner and log in (plain). `events` may be NULL (no header).
 * 0 when "Authentication accepted", -EACCES on an error reply, -ETIMEDOUT,
 * -EPIPE on close. */
int net_login(struct net_client *c, const char *user, const char *secret, const char *events,
              int timeout_ms);

#endif
