/* admit/sguard: the originate guard shared by replicas, kept in Redis.
 *
 * With Redis, a key's call bucket (rate and burst as in admit/guard) and a
 * server's originates in flight are counted in Redis by one script, so the
 * limits hold across every replica rather than per process. A slot in
 * flight is a member of a sorted set that expires on its own (the call's
 * own bound), so a replica that dies does not leak its slots. When Redis
 * cannot answer, the caller falls back to the local guard.
 */
#ifndef AMIBRIDGE_API_SGUARD_H
#define AMIBRIDGE_API_SGUARD_H

#include <stddef.h>
#include <stdint.h>

#include "admit/guard.h"
#include "bus/redis.h"
#include "core/config.h"

#define SGUARD_SLOT_MAX 40

enum sguard_verdict {
    SGUARD_OK,          /* a token and a slot were taken */
    SGUARD_RATE,        /* the key's bucket is empty */
    SGUARD_INFLIGHT,    /* the server's in-flight cap is reached (no token taken) */
    SGUARD_UNAVAILABLE, /* Redis did not answer: use the local guard */
};

/* Fires once; `info` borrowed. */
typedef void (*sguard_cb)(void *ud, enum sguard_verdict v, const struct guard_info *info);

struct sguard;

/* `c` and `redis` are borrowed. */
struct sguard *sguard_new(const struct cfg *c, struct bus_redis *redis);
void sguard_free(struct sguard *g);
/* Can a check be sent now (Redis up)? */
int sguard_ready(const struct sguard *g);
/* Take a token of `key`'s bucket (NULL: the open-mode bucket) and a slot
 * `slot` (unique per call, at most SGUARD_SLOT_MAX-1 characters) of
 * `server`'s in-flight set for at most hold_ms. 0 (cb fires) or -ENOTCONN
 * (cb never fires). */
int sguard_take(struct sguard *g, const struct cfg_api_key *key, const char *server,
                const char *slot, uint32_t hold_ms, sguard_cb cb, void *ud);
/* Free a slot (the call's outcome is known). */
void sguard_release(struct sguard *g, const char *server, const char *slot);
/* A fresh slot name into out (SGUARD_SLOT_MAX bytes). */
void sguard_slot_name(char *out, const char *instance);

#endif
