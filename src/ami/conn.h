/* ami/conn: one TCP connection to an Asterisk manager, kept up for good.
 *
 * The connection resolves the host, connects, reads the banner, logs in
 * (plain, or MD5 challenge so the secret never crosses the wire), then
 * hands every message to its owner. It sends a keepalive Ping when idle,
 * and when anything goes wrong it closes and reconnects with capped,
 * jittered exponential backoff; after a rejected login it says so loudly
 * and backs off hard. It never gives up until ami_conn_close().
 *
 * Everything runs on the caller's libuv loop; no locks.
 */
#ifndef AMIBRIDGE_AMI_CONN_H
#define AMIBRIDGE_AMI_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ami/message.h"

#define AMI_CONN_READ_CHUNK          (64 * 1024)
#define AMI_CONN_RELEASE_CHUNKS      4                 /* held chunks parsed per turn of the loop */
#define AMI_CONN_MAX_OUTBUF          (8 * 1024 * 1024) /* queued bytes before send refuses */
#define AMI_CONN_BACKOFF_MIN_MS      100
#define AMI_CONN_BACKOFF_MAX_MS      3000
#define AMI_CONN_AUTH_BACKOFF_MIN_MS 10000
#define AMI_CONN_AUTH_BACKOFF_MAX_MS 300000
#define AMI_CONN_LOGOFF_WAIT_MS      1000
#define AMI_CONN_TCP_KEEPALIVE_S     30

enum ami_conn_state {
    AMI_CONN_IDLE = 0,   /* created, not started */
    AMI_CONN_CONNECTING, /* resolving, connecting, banner, login */
    AMI_CONN_UP,         /* logged in */
    AMI_CONN_BACKOFF,    /* waiting to reconnect */
    AMI_CONN_CLOSING,    /* ami_conn_close() called */
};

struct ami_conn;

struct ami_conn_opts {
    const char *host;
    int port;
    const char *username;
    const char *secret;
    int md5;               /* challenge login */
    const char *events;    /* value of Login's Events header: "off", "on", "call,agent" */
    const char *id_prefix; /* prefix of this connection's own ActionIDs; must be unique */
    const char *server;    /* server name, for logs */
    const char *role;      /* "action" or "event", for logs */
    int index;             /* connection number, for logs */
    int connect_timeout_ms;
    int keepalive_ms;
    size_t hold_max; /* bytes held back at most while paused (0: none) */
    /* values of Filter actions sent after login (server-side event filters,
     * e.g. "!^Event: VarSet[[:space:]]"); copied */
    char *const *filters;
    size_t nfilters;
};

struct ami_conn_cbs {
    /* Logged in: the connection may send. */
    void (*on_up)(struct ami_conn *c, void *ud);
    /* Was up and is not any more: whatever was sent on it is lost. */
    void (*on_down)(struct ami_conn *c, void *ud, const char *reason);
    /* A message after login that is not the connection's own (login,
     * keepalive). Ownership passes to the callee. */
    void (*on_message)(struct ami_conn *c, void *ud, struct ami_msg *m);
    /* Is the owner waiting for replies on this connection? A keepalive Ping
     * is only sent when it is not: a session serves actions in order, so a
     * Ping behind a slow action would look like a dead peer. */
    int (*busy)(struct ami_conn *c, void *ud);
};

/* Copies the options. Returns NULL when out of memory. Nothing happens
 * until ami_conn_start(). */
struct ami_conn *ami_conn_new(uv_loop_t *loop, const struct ami_conn_opts *o,
                              const struct ami_conn_cbs *cbs, void *ud);
void ami_conn_start(struct ami_conn *c);

/* Queue bytes (a serialised action) for sending. Only while UP.
 * Returns 0, -ENOTCONN, -ENOBUFS (too much queued) or -ENOMEM. */
int ami_conn_send(struct ami_conn *c, const char *bytes, size_t len);

/* Hold messages back (pause = 1) or let them come again (0): backpressure
 * when they cannot be passed on fast enough. The socket is read all the
 * same and the bytes kept as Asterisk sent them (no parsing, no allocation
 * per message), up to opts.hold_max; past that they go through (the
 * owner drops what it cannot take). Reading is never stopped: Asterisk
 * drops a manager session whose writes make no progress for `writetimeout`
 * (manager.conf, 100 ms by default), and a stopped reader can stall its
 * writes far longer than the pause itself (the kernel wakes a blocked
 * writer only when a third of its send buffer is free). The hold stands
 * until the owner lifts it, across reconnects (a new session holds back
 * from its login on; what was held on a lost one is lost with it);
 * ami_conn_close() lifts it. ami_conn_paused(): this session holds back. */
void ami_conn_pause(struct ami_conn *c, int pause);
int ami_conn_paused(const struct ami_conn *c);
/* Bytes sent to it and not yet written (they go just before the loop next
 * waits), and in *batch the number of that batch: it changes each time the
 * collected bytes are written. */
size_t ami_conn_unsent(const struct ami_conn *c, uint64_t *batch);
size_t ami_conn_held(const struct ami_conn *c);
/* Messages read while held are still in the parser, not handed out yet. */
int ami_conn_undrained(const struct ami_conn *c);
/* Times the hold was full and bytes went through anyway. */
uint64_t ami_conn_hold_overflows(const struct ami_conn *c);

/* Drop the TCP connection now and reconnect after the usual backoff, e.g.
 * when the owner found the session stuck. on_down fires if it was up. */
void ami_conn_reset(struct ami_conn *c, const char *reason);

/* Log off (when up, waiting at most AMI_CONN_LOGOFF_WAIT_MS), close and
 * free. No callback fires after this call except `done`, once, when every
 * handle is closed and the memory is gone. */
void ami_conn_close(struct ami_conn *c, void (*done)(void *arg), void *arg);

enum ami_conn_state ami_conn_state(const struct ami_conn *c);
const char *ami_conn_state_name(enum ami_conn_state s);
/* Why the last attempt or session ended ("" when none). Borrowed. */
const char *ami_conn_last_error(const struct ami_conn *c);
/* The last login attempt was rejected by Asterisk. */
int ami_conn_auth_failed(const struct ami_conn *c);
uint64_t ami_conn_login_attempts(const struct ami_conn *c);
uint64_t ami_conn_reconnects(const struct ami_conn *c);
/* Loop time (ms) of the last byte received. */
uint64_t ami_conn_last_rx(const struct ami_conn *c);
/* The banner the server sent, "" before one arrived. */
const char *ami_conn_banner(const struct ami_conn *c);
const char *ami_conn_role(const struct ami_conn *c);
int ami_conn_index(const struct ami_conn *c);

/* md5hex(challenge + secret) into out (33 bytes), as Asterisk expects. */
void ami_md5_key(const char *challenge, const char *secret, char out[33]);

#endif
