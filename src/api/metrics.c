/* GET /metrics: Prometheus text format 0.0.4. Counters are kept as things
 * happen; the gauges below are read when scraped. */
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "admit/guard.h"
#include "admit/idem.h"
#include "api/gate.h"
#include "api/internal.h"
#include "call/calls.h"
#include "bus/publisher.h"
#include "bus/redis.h"
#include "bus/webhooks.h"
#include "core/metrics.h"

static double process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double process_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    double n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory itself */
}

static void scrape_gauges(struct api *a)
{
    metrics_clear(METRIC_AMI_CONNECTIONS);
    for (size_t i = 0; i < a->npools; i++) {
        struct ami_pool_status st;
        const char *name = ami_pool_name(a->pools[i]);
        ami_pool_status(a->pools[i], &st);
        metrics_set(METRIC_AMI_CONNECTIONS, name, "event", "up", st.event_up);
        metrics_set(METRIC_AMI_CONNECTIONS, name, "event", "down", !st.event_up);
        metrics_set(METRIC_AMI_CONNECTIONS, name, "action", "up", st.actions_up);
        metrics_set(METRIC_AMI_CONNECTIONS, name, "action", "down",
                    st.actions_total - st.actions_up);
        metrics_set(METRIC_AMI_RECONNECTS, name, NULL, NULL, (double)st.reconnects);
        metrics_set(METRIC_EVENTS_HOLD_FULL, name, NULL, NULL, (double)st.hold_full);
        metrics_set(METRIC_ORIGINATES_IN_FLIGHT, name, NULL, NULL,
                    (double)guard_inflight(a->guard, i));
    }
    if (a->publisher) {
        struct bus_publisher_stats ps;
        bus_publisher_stats(a->publisher, &ps);
        metrics_set(METRIC_REDIS_BUFFER, NULL, NULL, NULL, (double)ps.buffered);
        metrics_set(METRIC_REDIS_UP, NULL, NULL, NULL, bus_redis_up(a->redis));
    }
    if (a->webhooks) {
        struct webhooks_stats ws;
        webhooks_stats(a->webhooks, &ws);
        metrics_set(METRIC_WEBHOOK_QUEUE, NULL, NULL, NULL, (double)ws.queued);
        metrics_set(METRIC_WEBHOOK_SUBSCRIPTIONS, "enabled", NULL, NULL,
                    (double)(ws.subscriptions - ws.disabled));
        metrics_set(METRIC_WEBHOOK_SUBSCRIPTIONS, "disabled", NULL, NULL, (double)ws.disabled);
    }
    metrics_set(METRIC_SSE_CLIENTS, NULL, NULL, NULL, (double)api_sse_clients(a->sse));
    if (a->calls) {
        struct calls_stats cs;
        calls_stats(a->calls, &cs);
        metrics_set(METRIC_CALLS_LIVE, NULL, NULL, NULL, (double)cs.live);
        metrics_set(METRIC_CALLS_HISTORY, NULL, NULL, NULL, (double)cs.history);
        metrics_set(METRIC_CALLS, "created", NULL, NULL, (double)cs.created);
        metrics_set(METRIC_CALLS, "ended", NULL, NULL, (double)cs.ended);
        metrics_set(METRIC_CALLS, "untracked", NULL, NULL, (double)cs.untracked);
    }
    metrics_set(METRIC_IDEMPOTENCY_KEYS, NULL, NULL, NULL, (double)idem_count(a->idem));
    metrics_set(METRIC_PROCESS_RSS, NULL, NULL, NULL, process_rss());
    metrics_set(METRIC_PROCESS_FDS, NULL, NULL, NULL, process_fds());
    metrics_set(METRIC_BUILD_INFO, AMIBRIDGE_VERSION, NULL, NULL, 1);
}

void api_metrics_get(struct api *a, struct http_req *r, const struct http_params *p)
{
    (void)p;
    if (a->cfg->metrics_auth && api_gate_refuse_scope(a, r, CFG_SCOPE_READ))
        return;
    scrape_gauges(a);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    if (metrics_render(&sb) != 0) {
        strbuf_release(&sb);
        http_respond_oom(r);
        return;
    }
    http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", sb.data, sb.len);
    strbuf_release(&sb);
}
