/* ami/pool: the connections to one Asterisk server, and request routing.
 *
 * A pool keeps `pool_size` action connections (logged in with Events: off)
 * and one event connection (Events: on). Actions are spread over the action
 * connections, fewest in flight first, so one slow action does not block
 * others (quick ones of one loop turn go together, on a connection where none
 * is running: see pick_conn); replies are matched by ActionID, event lists are collected until
 * their Complete event, and an async Originate can wait for its
 * OriginateResponse, which arrives on the event connection.
 *
 * Every submitted request completes exactly once, through its callback:
 * with the reply, or with an error when it timed out, when its connection
 * dropped, or when the pool closed. A submit that cannot be started fails
 * at once with a negative errno and no callback.
 */
#ifndef AMIBRIDGE_AMI_POOL_H
#define AMIBRIDGE_AMI_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ami/message.h"
#include "core/config.h"

#define AMI_POOL_MAX_LIST_ITEMS 100000 /* events collected for one list action */
#define AMI_POOL_TICK_MS        1000
#define AMI_POOL_BATCH_MAX      16 /* actions of one loop turn joined on one connection */

enum ami_status {
    AMI_OK = 0,    /* a response arrived (its Response may still be Error) */
    AMI_ETIMEDOUT, /* no (complete) reply within the timeout */
    AMI_ELOST,     /* the connection carrying it dropped */
    AMI_ESHUTDOWN, /* the pool is closing */
    AMI_ETOOBIG,   /* the event list passed AMI_POOL_MAX_LIST_ITEMS */
};

struct ami_result {
    enum ami_status status;
    const char *action_id;
    const char *detail;             /* for errors, a sentence */
    const struct ami_msg *response; /* NULL unless a response arrived */
    struct ami_msg *const *events;  /* list items, in order */
    size_t nevents;
    const struct ami_msg *complete;  /* the list's Complete event */
    const struct ami_msg *originate; /* OriginateResponse (AMI_SUBMIT_ORIGINATE) */
    uint64_t elapsed_ms;
};

/* Everything in `r` is borrowed for the duration of the call. */
typedef void (*ami_result_cb)(void *ud, const struct ami_result *r);
/* Events from the event connection; `m` is borrowed. */
typedef void (*ami_event_cb)(void *ud, const struct ami_msg *m);

enum ami_submit_flags {
    /* after Response: Success, wait for the OriginateResponse event with the
     * same ActionID (the action must be an async Originate) */
    AMI_SUBMIT_ORIGINATE = 1 << 0,
};

struct ami_submit_opts {
    uint32_t timeout_ms; /* 0: the server's timeout_ms */
    unsigned flags;
    struct ami_error *err; /* filled when submit returns -EINVAL */
    /* AMI_SUBMIT_ORIGINATE only: called once when the response is Success,
     * before the wait for the OriginateResponse (so a caller can answer
     * early); the final callback still fires later. May be NULL. */
    ami_result_cb on_accepted;
};

struct ami_pool;
struct ami_req;

struct ami_pool_status {
    int event_up;
    int events_off; /* a follower replica: no event connection of its own */
    int actions_up;
    int actions_total;
    int auth_failed;
    size_t inflight;
    uint64_t reconnects;
    uint64_t login_attempts;
    uint64_t hold_full; /* times the event hold was full (its oldest went through) */
    char last_error[256];
    char banner[128];
};

/* Replicas: a follower needs no event connection of its own; the
 * leader's published stream brings it the OriginateResponse of its calls
 * (ami_pool_feed_event). Off closes the event connection (waiting
 * originates keep waiting); on opens it again. */
void ami_pool_set_events(struct ami_pool *p, int on);
/* `fn` runs each time the event connection has logged in (at start and
 * after every reconnect): events before it may have been missed. */
void ami_pool_set_events_up_cb(struct ami_pool *p, void (*fn)(void *ud), void *ud);
/* An event from elsewhere (the leader's stream), taken: only an
 * OriginateResponse for one of this process's originates is used, and only
 * while the event connection is off. */
void ami_pool_feed_event(struct ami_pool *p, struct ami_msg *m);

/* Backpressure: stop (1) or go on (0) reading the event connection (see
 * ami_conn_pause() for the bound Asterisk puts on such a pause). */
void ami_pool_pause_events(struct ami_pool *p, int pause);
/* Bytes of events read but held back, not yet passed on (at least 1 while
 * messages of a held chunk wait in the parser). */
size_t ami_pool_events_held(const struct ami_pool *p);

/* `server` and `instance_id` are copied. Connections start at once.
 * `event_filters` (may be NULL) are Filter values for the event connection. */
struct ami_pool *ami_pool_new(uv_loop_t *loop, const struct cfg_server *server,
                              const char *instance_id, ami_event_cb on_event, void *event_ud,
                              char *const *event_filters, size_t nfilters);

/* Send an action. The pool takes `action` in every case; its ActionID is set
 * by the pool (any given one is replaced). Returns 0 (cb fires later, once),
 * -EINVAL (the action cannot be sent safely; opts->err says why), -ENOTCONN
 * (no action connection is logged in), -EBUSY (in-flight caps reached) or
 * -ENOMEM. *out (may be NULL) receives a handle for ami_pool_cancel(). */
int ami_pool_submit(struct ami_pool *p, struct ami_msg *action, const struct ami_submit_opts *opts,
                    ami_result_cb cb, void *ud, struct ami_req **out);

/* The ActionID the pool gave the request (valid until its callback fired). */
const char *ami_req_action_id(const struct ami_req *r);

/* The callback of `r` will not fire. Safe to call only before it fired. */
void ami_pool_cancel(struct ami_req *r);

void ami_pool_status(const struct ami_pool *p, struct ami_pool_status *st);
const char *ami_pool_name(const struct ami_pool *p);

/* Teardown (docs/layout.md, "Teardown"): fail every request with
 * AMI_ESHUTDOWN (before this returns), log off, close, free; `done` fires
 * once, when every connection and timer is closed and the memory is gone. */
void ami_pool_close(struct ami_pool *p, void (*done)(void *arg), void *arg);

const char *ami_status_name(enum ami_status s);

#endif
