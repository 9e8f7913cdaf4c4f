/* admit/idem: Idempotency-Key handling for POST /v1/calls.
 *
 * The same key from the same API key within the TTL returns the first
 * reply and places no second call, also while the first is still in
 * flight (the later requests wait for it). A key reused with a different
 * body is refused. Only replies given after the Originate reached the PBX
 * are stored; a request refused before that (bad body, rate limit, PBX
 * down) leaves the key free for a retry.
 *
 * Without Redis the keys live in memory (bounded by AMIBRIDGE_IDEMPOTENCY_MAX,
 * oldest finished keys evicted first). With Redis they live there (SET NX
 * with a TTL), so every replica sees them.
 */
#ifndef AMIBRIDGE_API_IDEM_H
#define AMIBRIDGE_API_IDEM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

#define IDEM_KEY_MAX  255
#define IDEM_HASH_LEN 32
#define IDEM_SWEEP_MS 60000
#define IDEM_POLL_MS  100 /* Redis: how often a waiter looks for the first reply */

enum idem_outcome {
    IDEM_NEW,      /* the caller owns the key: idem_finish() or idem_abandon() later */
    IDEM_REPLAY,   /* the first request's reply */
    IDEM_MISMATCH, /* the key was used with another body */
    IDEM_ERROR,    /* the store cannot answer (Redis down) */
};

struct idem_reply {
    int status;
    const char *body;
    size_t len;
};

/* `reply` (REPLAY only) is borrowed for the duration of the call. */
typedef void (*idem_cb)(void *ud, enum idem_outcome o, const struct idem_reply *reply);

struct idem;
struct bus_redis;

/* redis may be NULL (memory). Both are borrowed. */
struct idem *idem_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis);
/* Teardown (docs/layout.md, "Teardown"): drop the keys, close the sweep
 * timer, free. Every idem_begin() must have answered first (a Redis lookup
 * on its way names the store). */
void idem_close(struct idem *s, void (*done)(void *arg), void *arg);

/* Look up or claim `key` of API key `scope` for a body whose SHA-256 is
 * `hash`. `cb` fires exactly once, maybe before this returns. In Redis a
 * claim holds for `pending_ms` (how long the request may take): a replica
 * that dies mid-call frees the key then, not a day later. */
void idem_begin(struct idem *s, const char *scope, const char *key,
                const unsigned char hash[IDEM_HASH_LEN], uint32_t pending_ms, idem_cb cb, void *ud);
/* Store the reply of the request that owns the key and release waiters. */
void idem_finish(struct idem *s, const char *scope, const char *key,
                 const unsigned char hash[IDEM_HASH_LEN], int status, const char *body, size_t len);
/* The owner gave up before the PBX saw anything: the key is free again (a
 * waiting request, if any, becomes the new owner). */
void idem_abandon(struct idem *s, const char *scope, const char *key);

/* Keys held in memory (for tests and metrics). */
size_t idem_count(const struct idem *s);

/* A header value that may serve as a key: 1-255 printable ASCII. */
int idem_key_valid(const char *key);

#endif
