/* backoff: capped exponential back-off with jitter, written once for every
 * retry loop (AMI connections, Redis connections, webhook deliveries).
 *
 * A step doubles from its minimum up to its maximum; the delay actually
 * waited is a random point of a range around the step, so that many
 * connections (and many replicas) do not retry in lockstep. Pure but for
 * backoff_jitter's randomness; no allocation.
 */
#ifndef AMIBRIDGE_CORE_BACKOFF_H
#define AMIBRIDGE_CORE_BACKOFF_H

#include <stdint.h>

/* The step after cur_ms: min_ms when cur_ms is below it (the first
 * failure), else twice cur_ms, at most max_ms (min_ms <= max_ms). */
int backoff_double(int cur_ms, int min_ms, int max_ms);

/* The step of attempt number `attempt` (1 the first): base_ms doubled
 * attempt - 1 times, at most max_ms; never overflows. */
uint64_t backoff_nth(uint64_t base_ms, uint64_t max_ms, unsigned attempt);

/* A random value in [lo, hi] (lo <= hi), from getrandom, else the clock. */
uint64_t backoff_jitter(uint64_t lo, uint64_t hi);

#endif
