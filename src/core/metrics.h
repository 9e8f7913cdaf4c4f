/* core/metrics: Prometheus metrics, rendered as text format 0.0.4.
 *
 * The families are fixed (see the table in metrics.c) and labelled by up to
 * three values. Everything runs on the loop thread, so the registry is a
 * plain process-wide table without locks. A family keeps at most
 * METRICS_MAX_SERIES label combinations; further ones are counted under
 * the value "other" so that user-controlled labels (action names) cannot
 * grow memory without bound.
 */
#ifndef AMIBRIDGE_CORE_METRICS_H
#define AMIBRIDGE_CORE_METRICS_H

#include "core/strbuf.h"

#define METRICS_MAX_SERIES 512
#define METRICS_MAX_LABELS 3

enum metric_id {
    METRIC_HTTP_REQUESTS = 0,     /* counter {route,status} */
    METRIC_HTTP_DURATION,         /* histogram {route} */
    METRIC_AMI_ACTIONS,           /* counter {server,action,result} */
    METRIC_AMI_ACTION_DURATION,   /* histogram {server} */
    METRIC_AMI_CONNECTIONS,       /* gauge {server,role,state} (set at scrape) */
    METRIC_AMI_RECONNECTS,        /* counter {server} (set at scrape) */
    METRIC_EVENTS_RECEIVED,       /* counter {server} */
    METRIC_EVENTS_FILTERED,       /* counter {server} */
    METRIC_EVENTS_PUBLISHED,      /* counter {outlet} */
    METRIC_EVENTS_DROPPED,        /* counter {outlet,reason} */
    METRIC_REDIS_BUFFER,          /* gauge */
    METRIC_EVENTS_PAUSED,         /* counter: seconds AMI event reading was held back */
    METRIC_EVENTS_HOLD_FULL,      /* counter {server} (set at scrape) */
    METRIC_REDIS_UP,              /* gauge */
    METRIC_SSE_CLIENTS,           /* gauge */
    METRIC_ORIGINATE_REJECTED,    /* counter {reason} */
    METRIC_ORIGINATES_IN_FLIGHT,  /* gauge {server} */
    METRIC_IDEMPOTENCY_KEYS,      /* gauge */
    METRIC_PROCESS_RSS,           /* gauge */
    METRIC_PROCESS_FDS,           /* gauge */
    METRIC_BUILD_INFO,            /* gauge {version} */
    METRIC_WEBHOOK_DELIVERIES,    /* counter {result} */
    METRIC_WEBHOOK_ATTEMPTS,      /* counter {outcome} */
    METRIC_WEBHOOK_LATENCY,       /* histogram */
    METRIC_WEBHOOK_QUEUE,         /* gauge (set at scrape) */
    METRIC_WEBHOOK_SUBSCRIPTIONS, /* gauge {state} (set at scrape) */
    METRIC_AUTH_FAILURES,         /* counter {reason} */
    METRIC_LEADER,                /* gauge */
    METRIC_LEADER_CHANGES,        /* counter */
    METRIC_HTTP_CUT,              /* counter {reason} */
    METRIC_HTTP_REFUSED,          /* counter {reason} */
    METRIC_SSE_REFUSED,           /* counter {reason} */
    METRIC_CALLS_LIVE,            /* gauge (set at scrape) */
    METRIC_CALLS_HISTORY,         /* gauge (set at scrape) */
    METRIC_CALLS,                 /* counter {event} (set at scrape) */
    METRIC_COUNT
};

/* Add to a counter (or a gauge). Missing labels are NULL. */
void metrics_inc(enum metric_id id, const char *l1, const char *l2, double v);
void metrics_inc3(enum metric_id id, const char *l1, const char *l2, const char *l3, double v);
/* Set a gauge (or a counter read from elsewhere at scrape time). */
void metrics_set(enum metric_id id, const char *l1, const char *l2, const char *l3, double v);
/* Forget every series of a family (before setting gauges afresh). */
void metrics_clear(enum metric_id id);
/* Record a duration in seconds in a histogram. */
void metrics_observe(enum metric_id id, const char *l1, double seconds);
/* Append the whole registry. 0 or -ENOMEM. */
int metrics_render(struct strbuf *out);
/* Drop everything (tests). */
void metrics_reset(void);

#endif
