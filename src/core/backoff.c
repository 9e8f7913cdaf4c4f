#include "core/backoff.h"

#include <sys/random.h>
#include <time.h>

int backoff_double(int cur_ms, int min_ms, int max_ms)
{
    if (cur_ms < min_ms)
        return min_ms;
    return cur_ms > max_ms / 2 ? max_ms : cur_ms * 2;
}

uint64_t backoff_nth(uint64_t base_ms, uint64_t max_ms, unsigned attempt)
{
    uint64_t step = base_ms;
    for (unsigned i = 1; i < attempt && step < max_ms; i++)
        step = step > max_ms / 2 ? max_ms : step * 2;
    return step > max_ms ? max_ms : step;
}

uint64_t backoff_jitter(uint64_t lo, uint64_t hi)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)ts.tv_sec;
    }
    uint64_t span = hi - lo;
    return span == UINT64_MAX ? r : lo + r % (span + 1);
}
