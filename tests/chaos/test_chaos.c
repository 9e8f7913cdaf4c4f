/* Chaos: faults under steady load, with the real binary, ami-sim, Redis and
 * a webhook receiver. Each test runs the same load (HTTP Pings on 4
 * threads, a 200/s event flood with a webhook subscription to it), injects
 * one fault for a while, and then checks and prints one row of the table
 * in bench/README.md: every HTTP request answered (success or a clean 5xx within
 * its timeout), recovery within 5 s of the fault ending, events lost only
 * where documented, and no webhook delivery lost for an event that reached
 * the stream.
 *
 *   make chaos    (not part of make test: about two minutes)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/receiver.h"
#include "support/redis.h"
#include "support/sub.h"
#include "support/testenv.h"

#define RATE         200 /* flood events per second */
#define FLOOD_S      10
#define N_EVENTS     (RATE * FLOOD_S)
#define FAULT_AT_S   3.0
#define FAULT_S      2.0
#define LOADERS      4
#define HTTP_TIMEOUT 12000
#define RECOVERY_MAX 5.0
#define MAX_SAMPLES  200000

struct sample {
    double t;
    long status;
};

struct world {
    struct redis_srv redis;
    struct amisim sim;
    struct bridge bridge;
    struct receiver *rv;
    struct sub sub;
    const char *env[16];
    char rurl[96], port_env[64];
    int port;
    double t0;
    /* the load */
    pthread_t th[LOADERS];
    volatile int stop;
    pthread_mutex_t mu;
    struct sample *s;
    size_t ns;
};

static void *load(void *arg)
{
    struct world *w = arg;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/actions/Ping", w->port);
    while (!w->stop) {
        struct http_resp r;
        http_call("POST", url, NULL, "{}", NULL, HTTP_TIMEOUT, &r);
        pthread_mutex_lock(&w->mu);
        if (w->ns < MAX_SAMPLES)
            w->s[w->ns++] = (struct sample){testenv_now() - w->t0, r.status};
        pthread_mutex_unlock(&w->mu);
        http_resp_free(&r);
        usleep(20 * 1000);
    }
    return NULL;
}

static void bridge_up(struct world *w)
{
    assert_int_equal(bridge_start(&w->bridge, w->sim.port, w->env), 0);
    assert_true(bridge_wait_status(&w->bridge, "/readyz", 200, 10000) >= 0);
    assert_int_equal(bridge_wait_redis(&w->bridge, 5000), 0);
}

static void world_start(struct world *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    w->s = calloc(MAX_SAMPLES, sizeof(*w->s));
    assert_int_equal(redis_start(&w->redis, 0), 0);
    assert_int_equal(amisim_start(&w->sim, NULL), 0);
    w->port = proc_free_port();
    snprintf(w->rurl, sizeof(w->rurl), "AMIBRIDGE_REDIS_URL=%s", w->redis.url);
    snprintf(w->port_env, sizeof(w->port_env), "AMIBRIDGE_LISTEN=127.0.0.1:%d", w->port);
    const char *env[] = {w->rurl,
                         w->port_env,
                         "AMIBRIDGE_WEBHOOK_ALLOW_NETS=127.0.0.0/8",
                         "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS=100",
                         "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS=500",
                         "AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS=1000",
                         "AMIBRIDGE_AMI_TIMEOUT_MS=3000",
                         "AMIBRIDGE_LEADER_TTL_MS=1000",
                         NULL};
    memcpy(w->env, env, sizeof(env));
    bridge_up(w);
    w->rv = receiver_start();
    assert_non_null(w->rv);
    char url[128], body[256];
    snprintf(url, sizeof(url), "%s/v1/webhooks", w->bridge.url);
    snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":[\"SimFlood\"]}",
             receiver_port(w->rv));
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 5000, &r);
    assert_int_equal(r.status, 201);
    http_resp_free(&r);
    assert_int_equal(sub_start(&w->sub, w->redis.port, "ami.*.SimFlood"), 0);
    w->t0 = testenv_now();
    for (int i = 0; i < LOADERS; i++)
        pthread_create(&w->th[i], NULL, load, w);
    snprintf(url, sizeof(url), "%s/v1/actions/SimControl", w->bridge.url);
    snprintf(body, sizeof(body), "{\"Flood\":\"%d\",\"FloodCount\":\"%d\"}", RATE, N_EVENTS);
    http_call("POST", url, NULL, body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void sleep_until(const struct world *w, double t)
{
    double now = testenv_now() - w->t0;
    if (t > now)
        usleep((useconds_t)((t - now) * 1e6));
}

static long seq_of(const char *json)
{
    return http_event_field(json, "Seq");
}

struct tally {
    size_t ok, e5xx, other, failed;
    double recovery; /* from the end of the fault to the next success */
    int published, delivered, undelivered;
};

/* Stop the load, wait for the deliveries to settle, count. */
static void world_finish(struct world *w, double fault_end, struct tally *t)
{
    sleep_until(w, FLOOD_S + 6);
    w->stop = 1;
    for (int i = 0; i < LOADERS; i++)
        pthread_join(w->th[i], NULL);
    memset(t, 0, sizeof(*t));
    t->recovery = -1;
    for (size_t i = 0; i < w->ns; i++) {
        long st = w->s[i].status;
        if (st >= 200 && st < 300) {
            t->ok++;
            if (w->s[i].t >= fault_end && (t->recovery < 0 || w->s[i].t - fault_end < t->recovery))
                t->recovery = w->s[i].t - fault_end;
        } else if (st >= 500) {
            t->e5xx++;
        } else if (st == 0) {
            t->failed++;
        } else {
            t->other++;
        }
    }
    static int pub[N_EVENTS + 1], del[N_EVENTS + 1];
    memset(pub, 0, sizeof(pub));
    memset(del, 0, sizeof(del));
    pthread_mutex_lock(&w->sub.mu);
    for (size_t i = 0; i < w->sub.n; i++) {
        long q = seq_of(w->sub.v[i].payload);
        if (q >= 1 && q <= N_EVENTS && !pub[q]++)
            t->published++;
    }
    pthread_mutex_unlock(&w->sub.mu);
    for (size_t i = 0; i < receiver_count(w->rv); i++) {
        struct receiver_req q;
        if (receiver_get(w->rv, i, &q) != 0)
            continue;
        long s = q.status == 200 ? seq_of(q.body) : -1;
        if (s >= 1 && s <= N_EVENTS && !del[s]++)
            t->delivered++;
        receiver_req_free(&q);
    }
    for (int q = 1; q <= N_EVENTS; q++)
        t->undelivered += pub[q] && !del[q];
}

static void world_stop(struct world *w)
{
    sub_stop(&w->sub);
    receiver_stop(w->rv);
    bridge_stop(&w->bridge, 0);
    amisim_stop(&w->sim);
    redis_stop(&w->redis);
    free(w->s);
}

static void row(const char *fault, const struct tally *t, const char *events_note)
{
    print_message("| %s | %zu ok, %zu 5xx, %zu other, %zu unanswered | %.2f s | %d of %d "
                  "published%s | %d of those delivered, %d missing |\n",
                  fault, t->ok, t->e5xx, t->other, t->failed, t->recovery, t->published, N_EVENTS,
                  events_note, t->published - t->undelivered, t->undelivered);
}

/* --- the faults ---------------------------------------------------------------------------- */

static void the_pbx_restarts(void **state)
{
    (void)state;
    struct world w;
    world_start(&w);
    sleep_until(&w, FAULT_AT_S);
    char url[128], body[128];
    snprintf(url, sizeof(url), "%s/v1/actions/SimControl", w.bridge.url);
    snprintf(body, sizeof(body), "{\"RestartDownMs\":\"%d\",\"Restart\":\"now\"}",
             (int)(FAULT_S * 1000));
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 5000, &r);
    http_resp_free(&r);
    struct tally t;
    world_finish(&w, FAULT_AT_S + FAULT_S, &t);
    row("ami-sim restarts ('core restart now', 2 s down)", &t,
        " (the PBX makes no events while down; its flood ends with the restart)");
    assert_int_equal(t.failed, 0);
    assert_true(t.recovery >= 0 && t.recovery < RECOVERY_MAX);
    assert_int_equal(t.undelivered, 0);
    world_stop(&w);
}

static void redis_dies_and_comes_back(void **state)
{
    (void)state;
    struct world w;
    world_start(&w);
    int port = w.redis.port;
    sleep_until(&w, FAULT_AT_S);
    redis_stop(&w.redis); /* its data goes with it: queued deliveries too */
    sleep_until(&w, FAULT_AT_S + FAULT_S);
    assert_int_equal(redis_start(&w.redis, port), 0);
    /* the subscriber lost its connection: a new one for what comes after */
    sub_stop(&w.sub);
    assert_int_equal(sub_start(&w.sub, port, "ami.*.SimFlood"), 0);
    struct tally t;
    world_finish(&w, FAULT_AT_S + FAULT_S, &t);
    row("Redis killed, restarted empty after 2 s", &t,
        " after the restart (before it: not counted, the subscriber was cut)");
    assert_int_equal(t.failed + t.e5xx, 0); /* calls do not need Redis */
    assert_true(t.recovery >= 0 && t.recovery < RECOVERY_MAX);
    assert_int_equal(t.undelivered, 0);
    world_stop(&w);
}

static void the_webhook_receiver_fails(void **state)
{
    (void)state;
    struct world w;
    world_start(&w);
    sleep_until(&w, FAULT_AT_S);
    receiver_set_status(w.rv, 503);
    sleep_until(&w, FAULT_AT_S + FAULT_S);
    receiver_set_status(w.rv, 200);
    struct tally t;
    world_finish(&w, FAULT_AT_S + FAULT_S, &t);
    row("webhook receiver answers 503 for 2 s", &t, "");
    assert_int_equal(t.failed + t.e5xx, 0);
    assert_int_equal(t.published, N_EVENTS);
    assert_int_equal(t.undelivered, 0);
    world_stop(&w);
}

static void amibridge_is_killed_and_restarted(void **state)
{
    (void)state;
    struct world w;
    world_start(&w);
    sleep_until(&w, FAULT_AT_S);
    bridge_stop(&w.bridge, SIGKILL);
    sleep_until(&w, FAULT_AT_S + FAULT_S);
    bridge_up(&w);
    struct tally t;
    world_finish(&w, FAULT_AT_S + FAULT_S, &t);
    row("amibridge kill -9, restarted after 2 s", &t,
        " (events while no bridge ran are not seen by anyone)");
    /* requests against a dead process fail to connect: that is the fault itself */
    assert_true(t.recovery >= 0 && t.recovery < RECOVERY_MAX);
    assert_int_equal(t.undelivered, 0);
    assert_true(t.published >= N_EVENTS - (int)((FAULT_S + RECOVERY_MAX) * RATE));
    world_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_pbx_restarts),
        cmocka_unit_test(redis_dies_and_comes_back),
        cmocka_unit_test(the_webhook_receiver_fails),
        cmocka_unit_test(amibridge_is_killed_and_restarted),
    };
    print_message("| fault | HTTP during the run | recovery after the fault | events on Redis | "
                  "webhook deliveries |\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
