/* support/stats: percentiles of latency samples, for the tests, the soak
 * and the benchmarks alike. Header only. */
#ifndef AMIBRIDGE_TEST_STATS_H
#define AMIBRIDGE_TEST_STATS_H

#include <stddef.h>
#include <stdlib.h>

static inline int stats_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sort the samples in place (stats_pct wants them sorted). */
static inline void stats_sort(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), stats_cmp);
}

/* The p-quantile (0..1) of n sorted samples, nearest rank; 0 when none. */
static inline double stats_pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

#endif
