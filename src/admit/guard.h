/* admit/guard: the originate guard.
 *
 * A runaway script or a stuck CRM button must not flood the PBX: every
 * Originate (POST /v1/calls and the generic route alike) takes a token from
 * its API key's bucket (AMIBRIDGE_CALLS_PER_SECOND, AMIBRIDGE_CALLS_BURST,
 * or the key's own limits), and each AMI server has a cap on originates
 * whose outcome is still pending (AMIBRIDGE_CALLS_MAX_INFLIGHT). Both
 * refusals are 429 with Retry-After.
 */
#ifndef AMIBRIDGE_API_GUARD_H
#define AMIBRIDGE_API_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct guard;

struct guard_info {
    int limit;         /* the bucket's size (burst) */
    int remaining;     /* whole tokens left */
    int reset_s;       /* seconds until the bucket is full again */
    int retry_after_s; /* when refused: seconds until a token is there */
};

struct guard *guard_new(const struct cfg *c, size_t nservers);
void guard_free(struct guard *g);

/* Take one token for `key` (NULL: the open-mode bucket) at loop time
 * now_ms. Returns 0 or -EAGAIN (empty); `info` is filled either way. */
int guard_take(struct guard *g, const struct cfg_api_key *key, uint64_t now_ms,
               struct guard_info *info);

/* Give back the token guard_take() took, for a call refused for another
 * reason before it reached the PBX; `info` is brought up to date. */
void guard_refund(struct guard *g, const struct cfg_api_key *key, struct guard_info *info);

/* Reserve / release an in-flight originate on server `i`. acquire returns
 * 0 or -EBUSY when the cap is reached. */
int guard_acquire(struct guard *g, size_t server);
void guard_release(struct guard *g, size_t server);
/* Count an originate in flight without the cap (the shared guard in Redis
 * decided; this count is what this process has, for its metrics). */
void guard_note(struct guard *g, size_t server, int delta);
size_t guard_inflight(const struct guard *g, size_t server);
int guard_max_inflight(const struct guard *g);

#endif
