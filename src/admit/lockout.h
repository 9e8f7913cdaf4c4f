/* admit/lockout: wrong API keys, counted per client address.
 *
 * Each address may send `limit` wrong keys per window of `window_s`
 * seconds. Past that it is locked out until its window ends: every request
 * from it that needs a key and does not bring a valid one is refused (429),
 * so that guessing stops paying; a valid key is still served (api.c), so
 * that others behind the same address (a NAT, a proxy) are not locked out
 * by one client's wrong keys. Before that, the answers to wrong keys are
 * slowed down (lockout_delay_ms); wrong keys from a locked-out address are
 * answered after the slowest delay. The same table counts a valid key's
 * requests beyond its scopes under "key:NAME". At most
 * LOCKOUT_MAX_ADDRESSES are tracked; expired ones are dropped first. Pure
 * bookkeeping on the loop thread: the caller passes the time.
 */
#ifndef AMIBRIDGE_API_LOCKOUT_H
#define AMIBRIDGE_API_LOCKOUT_H

#include <stddef.h>
#include <stdint.h>

#define LOCKOUT_MAX_ADDRESSES 100000
#define LOCKOUT_FREE_FAILURES 3    /* answered at once; then slower and slower */
#define LOCKOUT_DELAY_MAX_MS  2000 /* the slowest answer to a wrong key */

struct lockout;

struct lockout *lockout_new(int limit, int window_s);
void lockout_free(struct lockout *l);
/* Seconds (rounded up) until `peer` may send a key again; 0 when it may now. */
int lockout_blocked(struct lockout *l, const char *peer, uint64_t now_ms);
/* Count a wrong key from `peer`. Returns its failures in the current window
 * (this one included); *locked is set when this one locked it out. */
int lockout_fail(struct lockout *l, const char *peer, uint64_t now_ms, int *locked);
/* How long to hold the answer to the n-th wrong key of a window. */
unsigned lockout_delay_ms(int failures);
/* Addresses tracked now. */
size_t lockout_count(const struct lockout *l);

#endif
