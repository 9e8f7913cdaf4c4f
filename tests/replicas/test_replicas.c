/* Replicas: three amibridge processes, one redis-server, one ami-sim, all
 * real. One replica holds the leader lease and publishes; the tests kill
 * it, stall it (SIGSTOP past the lease) and check that every event is
 * published once while all are up, that another takes over within
 * 2 × ttl, that nothing is ever published twice (fencing), and that the
 * webhook deliveries a dead leader left are made by the next one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/receiver.h"
#include "support/redis.h"
#include "support/sse.h"
#include "support/sub.h"
#include "support/testenv.h"

#define N_REPLICAS 3
#define TTL_MS     1000

struct cluster {
    struct redis_srv redis;
    struct amisim sim;
    struct bridge b[N_REPLICAS];
    int alive[N_REPLICAS];
    char rurl[96];
    char inst[N_REPLICAS][48];
};

static void replica_start(struct cluster *c, int i)
{
    const char *env[] = {c->rurl,
                         c->inst[i],
                         "AMIBRIDGE_LEADER_TTL_MS=1000",
                         "AMIBRIDGE_WEBHOOK_ALLOW_NETS=127.0.0.0/8",
                         "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS=100",
                         "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS=200",
                         "AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS=1000",
                         "AMIBRIDGE_REDIS_BUFFER=100000",
                         NULL};
    assert_int_equal(bridge_start(&c->b[i], c->sim.port, env), 0);
    assert_true(bridge_wait_status(&c->b[i], "/readyz", 200, 10000) >= 0);
    assert_int_equal(bridge_wait_redis(&c->b[i], 5000), 0);
    c->alive[i] = 1;
}

static void cluster_start(struct cluster *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(redis_start(&c->redis, 0), 0);
    snprintf(c->rurl, sizeof(c->rurl), "AMIBRIDGE_REDIS_URL=%s", c->redis.url);
    assert_int_equal(amisim_start(&c->sim, NULL), 0);
    for (int i = 0; i < N_REPLICAS; i++) {
        snprintf(c->inst[i], sizeof(c->inst[i]), "AMIBRIDGE_INSTANCE_ID=replica%d", i);
        replica_start(c, i);
    }
}

static void cluster_stop(struct cluster *c)
{
    for (int i = 0; i < N_REPLICAS; i++)
        if (c->alive[i])
            bridge_stop(&c->b[i], 0);
    amisim_stop(&c->sim);
    redis_stop(&c->redis);
}

/* Does replica i say it leads? -1 when it does not answer. */
static int leads(const struct cluster *c, int i)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", c->b[i].url);
    struct http_resp r;
    http_call("GET", url, NULL, NULL, NULL, 1000, &r);
    int v = -1;
    if (r.json)
        v = json_is_true(json_object_get(json_object_get(r.json, "leader"), "this_replica"));
    http_resp_free(&r);
    return v;
}

/* The one leader among the live replicas (asserting there is at most one),
 * or -1. */
static int leader(const struct cluster *c)
{
    int who = -1;
    for (int i = 0; i < N_REPLICAS; i++) {
        if (!c->alive[i] || leads(c, i) != 1)
            continue;
        if (who >= 0)
            fail_msg("replicas %d and %d both say they lead", who, i);
        who = i;
    }
    return who;
}

static int wait_leader(const struct cluster *c, int not, double timeout_s)
{
    double t0 = testenv_now();
    while (testenv_now() - t0 < timeout_s) {
        int l = leader(c);
        if (l >= 0 && l != not )
            return l;
        usleep(20 * 1000);
    }
    return -1;
}

static void post(const struct cluster *c, int i, const char *path, const char *body)
{
    char url[160];
    snprintf(url, sizeof(url), "%s%s", c->b[i].url, path);
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 10000, &r);
    if (r.status >= 300)
        fail_msg("POST %s -> %ld %s", path, r.status, r.body);
    http_resp_free(&r);
}

static void flood(const struct cluster *c, int i, int rate, int count)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"Flood\":\"%d\",\"FloodCount\":\"%d\"}", rate, count);
    post(c, i, "/v1/actions/SimControl", body);
}

static long seq_of(const char *json)
{
    return http_event_field(json, "Seq");
}

/* How many of the flood's seqs 1..n arrived, and how many twice or more. */
static void tally(struct sub *s, int n, int *got, int *dups)
{
    int *seen = calloc((size_t)n + 1, sizeof(int));
    *got = *dups = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        long q = seq_of(s->v[i].payload);
        if (q < 1 || q > n)
            continue;
        if (seen[q]++)
            (*dups)++;
        else
            (*got)++;
    }
    pthread_mutex_unlock(&s->mu);
    free(seen);
}

/* --- the tests ----------------------------------------------------------------------------- */

static void one_leader_publishes_each_event_once(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    struct sub s;
    assert_int_equal(sub_start(&s, c.redis.port, "ami.*.SimFlood"), 0);
    enum { N = 1000 };
    flood(&c, (l + 1) % N_REPLICAS, 2000, N); /* asked through a follower: any replica serves */
    sub_wait(&s, N, 10000);
    usleep(500 * 1000);
    int got, dups;
    tally(&s, N, &got, &dups);
    print_message("%d of %d events published, %d twice; leader is replica%d\n", got, N, dups, l);
    assert_int_equal(got, N);
    assert_int_equal(dups, 0);
    assert_int_equal(sub_count(&s), N); /* three event connections, one publisher */
    sub_stop(&s);
    cluster_stop(&c);
}

/* The fenced publish goes by EVALSHA; an operator's SCRIPT FLUSH in the
 * middle of a flood costs nothing: every event once, in order. */
static void a_flushed_script_cache_loses_nothing(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    struct sub s;
    assert_int_equal(sub_start(&s, c.redis.port, "ami.*.SimFlood"), 0);
    enum { N = 6000 };
    flood(&c, l, 3000, N); /* two seconds */
    static const char *const flush[] = {"SCRIPT", "FLUSH", NULL};
    for (int k = 0; k < 5; k++) {
        usleep(300 * 1000);
        free(redis_cli(&c.redis, flush));
    }
    sub_wait(&s, N, 15000);
    usleep(500 * 1000);
    int got, dups;
    tally(&s, N, &got, &dups);
    long last = 0, disorder = 0;
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++) {
        long q = seq_of(s.v[i].payload);
        disorder += q <= last;
        last = q;
    }
    pthread_mutex_unlock(&s.mu);
    print_message("%d of %d events published, %d twice, %ld out of order, 5 SCRIPT FLUSH\n", got, N,
                  dups, disorder);
    assert_int_equal(got, N);
    assert_int_equal(dups, 0);
    assert_int_equal(disorder, 0);
    /* and the flushes were felt: the leader sent the script again */
    assert_true(bridge_log_count(&c.b[l], "Redis lost the fence script") >= 1);
    sub_stop(&s);
    cluster_stop(&c);
}

static void a_killed_leader_is_replaced_within_two_ttls_and_nothing_is_published_twice(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    struct sub s;
    assert_int_equal(sub_start(&s, c.redis.port, "ami.*.SimFlood"), 0);
    enum { RATE = 500, N = 3000 };
    int asker = (l + 1) % N_REPLICAS;
    flood(&c, asker, RATE, N);
    usleep(1500 * 1000);
    double t0 = testenv_now();
    bridge_stop(&c.b[l], SIGKILL);
    c.alive[l] = 0;
    int next = wait_leader(&c, l, 5);
    double took = testenv_now() - t0;
    print_message("replica%d killed; replica%d leads after %.0f ms (ttl %d ms)\n", l, next,
                  took * 1000, TTL_MS);
    assert_true(next >= 0);
    assert_true(took * 1000 < 2 * TTL_MS);
    sub_wait(&s, N, 15000);
    usleep((useconds_t)(N / RATE) * 1000 * 1000);
    int got, dups;
    tally(&s, N, &got, &dups);
    /* the gap: events while nobody led, at most 2 × ttl of the flood */
    int gap = N - got;
    print_message("%d of %d published, gap %d events (%.0f ms of the flood), %d twice\n", got, N,
                  gap, gap * 1000.0 / RATE, dups);
    assert_int_equal(dups, 0);
    assert_true(gap <= RATE * 2 * TTL_MS / 1000);
    /* the gap shows in the new leader's counters? it cannot know it; the
     * old leader's log says it stopped nowhere: it was killed */
    sub_stop(&s);
    cluster_stop(&c);
}

static void a_stalled_leader_steps_down_and_is_fenced(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    struct sub s;
    assert_int_equal(sub_start(&s, c.redis.port, "ami.*.SimFlood"), 0);
    enum { RATE = 500, N = 3500 };
    flood(&c, (l + 1) % N_REPLICAS, RATE, N);
    usleep(1000 * 1000);
    /* a network stall or a pause longer than the lease */
    kill(c.b[l].proc.pid, SIGSTOP);
    c.alive[l] = 0; /* it cannot answer now */
    int next = wait_leader(&c, l, 5);
    assert_true(next >= 0);
    usleep(1500 * 1000);
    kill(c.b[l].proc.pid, SIGCONT);
    c.alive[l] = 1;
    /* it must not lead (nor publish) once it runs again */
    usleep(500 * 1000);
    assert_int_equal(leads(&c, l), 0);
    assert_int_equal(leader(&c), next);
    sub_wait(&s, N, 15000);
    usleep(1500 * 1000);
    int got, dups;
    tally(&s, N, &got, &dups);
    print_message("replica%d stalled 2.5 s; replica%d took over; %d of %d published, %d twice\n", l,
                  next, got, N, dups);
    assert_int_equal(dups, 0);
    assert_true(N - got <= RATE * 2 * TTL_MS / 1000);
    assert_true(bridge_log_count(&c.b[l], "stepped down") >= 1);
    sub_stop(&s);
    cluster_stop(&c);
}

static long llen(const struct cluster *c, const char *id)
{
    char key[160];
    snprintf(key, sizeof(key), "ami:webhooks:queue:%s", id);
    return redis_llen(&c->redis, key);
}

static void webhooks_left_by_a_dead_leader_are_delivered_by_the_next(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    struct receiver *rv = receiver_start();
    receiver_set_status(rv, 503);
    char url[160], body[256], sid[64];
    snprintf(url, sizeof(url), "%s/v1/webhooks", c.b[(l + 2) % N_REPLICAS].url);
    snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":[\"SimFlood\"]}",
             receiver_port(rv));
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 5000, &r);
    assert_int_equal(r.status, 201);
    snprintf(sid, sizeof(sid), "%s", http_json_str(&r, "id"));
    http_resp_free(&r);
    usleep(800 * 1000); /* every replica has read the subscription */
    enum { N = 60 };
    flood(&c, l, 1000, N);
    for (int i = 0; i < 100 && llen(&c, sid) < N; i++)
        usleep(50 * 1000);
    assert_int_equal(llen(&c, sid), N); /* queued once, by the leader */
    assert_true(receiver_wait(rv, 1, 3000) >= 1);
    bridge_stop(&c.b[l], SIGKILL);
    c.alive[l] = 0;
    size_t before = receiver_count(rv);
    receiver_set_status(rv, 200);
    assert_true(wait_leader(&c, l, 5) >= 0);
    int seen[N + 1] = {0}, missing = N;
    size_t i = before;
    double t0 = testenv_now();
    while (missing > 0 && testenv_now() - t0 < 15) {
        if (receiver_wait(rv, i + 1, 200) < i + 1)
            continue;
        struct receiver_req q;
        receiver_get(rv, i++, &q);
        long sq = q.status == 200 ? seq_of(q.body) : -1;
        if (sq >= 1 && sq <= N && !seen[sq]) {
            seen[sq] = 1;
            missing--;
        }
        receiver_req_free(&q);
    }
    print_message("%d of %d deliveries made by the new leader\n", N - missing, N);
    assert_int_equal(missing, 0);
    for (int k = 0; k < 50 && llen(&c, sid) != 0; k++)
        usleep(100 * 1000);
    assert_int_equal(llen(&c, sid), 0);
    receiver_stop(rv);
    cluster_stop(&c);
}

static void a_clean_stop_hands_the_lease_over_at_once(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    double t0 = testenv_now();
    assert_int_equal(bridge_stop(&c.b[l], 0), 0);
    c.alive[l] = 0;
    int next = wait_leader(&c, l, 5);
    double took = testenv_now() - t0;
    print_message("SIGTERM to the leader: replica%d leads after %.0f ms\n", next, took * 1000);
    assert_true(next >= 0);
    /* released, not expired: within one renew period (ttl/3) after the exit */
    assert_true(took * 1000 < TTL_MS);
    cluster_stop(&c);
}

/* The next UserEvent frame of a stream (skipping heartbeats and others). */
static int next_user_event(struct sse_client *c, struct sse_frame *f)
{
    for (int i = 0; i < 50; i++) {
        int rc = sse_next(c, 3000, f);
        if (rc != 1)
            return rc;
        if (!strcmp(f->event, "UserEvent"))
            return 1;
        sse_frame_free(f);
    }
    return 0;
}

static void a_replica_restarted_with_its_id_takes_its_lease_back_at_once(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    bridge_stop(&c.b[l], SIGKILL);
    c.alive[l] = 0;
    double t0 = testenv_now();
    replica_start(&c, l); /* the same AMIBRIDGE_INSTANCE_ID */
    int again = wait_leader(&c, -1, 3);
    double took = testenv_now() - t0;
    print_message(
        "replica%d killed and restarted: replica%d leads %.0f ms after the restart began\n", l,
        again, took * 1000);
    assert_int_equal(again, l);
    cluster_stop(&c);
}

static void every_replica_serves_the_same_event_stream(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    int f = (l + 1) % N_REPLICAS;
    usleep(300 * 1000); /* the followers' subscriptions are in place */
    struct sse_client a, b;
    assert_int_equal(sse_open(&a, c.b[l].port, "/v1/events?include=UserEvent", NULL, NULL, 0), 0);
    assert_int_equal(sse_open(&b, c.b[f].port, "/v1/events?include=UserEvent", NULL, NULL, 0), 0);
    post(&c, f, "/v1/actions/UserEvent", "{\"UserEvent\":\"same-everywhere\"}");
    struct sse_frame fa, fb;
    assert_int_equal(next_user_event(&a, &fa), 1);
    assert_int_equal(next_user_event(&b, &fb), 1);
    /* the same id and the same bytes, whichever replica a client reads */
    assert_string_equal(fa.id, fb.id);
    assert_string_equal(fa.data, fb.data);
    char first[64];
    snprintf(first, sizeof(first), "%s", fa.id);
    sse_frame_free(&fa);
    sse_frame_free(&fb);
    sse_close(&a);
    sse_close(&b);
    /* a client that moves to another replica resumes with Last-Event-ID */
    post(&c, l, "/v1/actions/UserEvent", "{\"UserEvent\":\"missed\"}");
    usleep(300 * 1000);
    int g = (l + 2) % N_REPLICAS;
    assert_int_equal(sse_open(&b, c.b[g].port, "/v1/events?include=UserEvent", NULL, first, 0), 0);
    assert_int_equal(next_user_event(&b, &fb), 1);
    assert_non_null(strstr(fb.data, "missed"));
    print_message("replica%d and replica%d sent the event as id %s; replica%d replayed the next\n",
                  l, f, first, g);
    sse_frame_free(&fb);
    sse_close(&b);
    cluster_stop(&c);
}

/* What /readyz says of replica i's event connection. */
static void event_connection(const struct cluster *c, int i, char *out, size_t len)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/readyz", c->b[i].url);
    struct http_resp r;
    http_call("GET", url, NULL, NULL, NULL, 2000, &r);
    json_t *s0 = json_array_get(json_object_get(r.json, "servers"), 0);
    snprintf(out, len, "%s",
             json_string_value(json_object_get(s0, "event_connection"))
                 ? json_string_value(json_object_get(s0, "event_connection"))
                 : "?");
    http_resp_free(&r);
}

static void only_the_leader_keeps_an_event_connection(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    usleep(500 * 1000);
    for (int i = 0; i < N_REPLICAS; i++) {
        char ec[16];
        event_connection(&c, i, ec, sizeof(ec));
        print_message("replica%d: event connection %s%s\n", i, ec, i == l ? " (leader)" : "");
        assert_string_equal(ec, i == l ? "up" : "off");
    }
    /* a follower's call still learns its outcome: through the leader's stream */
    int f = (l + 1) % N_REPLICAS;
    char url[160];
    snprintf(url, sizeof(url), "%s/v1/calls", c.b[f].url);
    struct http_resp r;
    http_call("POST", url, NULL,
              "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\"}", NULL,
              20000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_json_str(&r, "status"), "answered");
    http_resp_free(&r);
    /* and when the leader goes, the next one opens its event connection */
    bridge_stop(&c.b[l], SIGKILL);
    c.alive[l] = 0;
    int next = wait_leader(&c, l, 5);
    assert_true(next >= 0);
    char ec[16] = "";
    for (int i = 0; i < 50 && strcmp(ec, "up"); i++) {
        usleep(100 * 1000);
        event_connection(&c, next, ec, sizeof(ec));
    }
    assert_string_equal(ec, "up");
    cluster_stop(&c);
}

static long call_status(const struct cluster *c, int i, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "%.64s%.128s", c->b[i].url, path);
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 10000, &r);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

/* The originate guard counts in Redis: a key's burst and a server's cap
 * hold for all replicas together, on both call routes. */
static void the_call_limits_hold_across_replicas(void **state)
{
    (void)state;
    struct redis_srv redis;
    struct amisim sim;
    struct bridge b[2];
    assert_int_equal(redis_start(&redis, 0), 0);
    assert_int_equal(amisim_start(&sim, NULL), 0);
    char rurl[96];
    snprintf(rurl, sizeof(rurl), "AMIBRIDGE_REDIS_URL=%s", redis.url);
    const char *env[] = {rurl, "AMIBRIDGE_CALLS_BURST=5", "AMIBRIDGE_CALLS_PER_SECOND=0.01",
                         "AMIBRIDGE_CALLS_MAX_INFLIGHT=1000", NULL};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bridge_start(&b[i], sim.port, env), 0);
        assert_true(bridge_wait_status(&b[i], "/readyz", 200, 10000) >= 0);
        assert_int_equal(bridge_wait_redis(&b[i], 5000), 0);
    }
    struct cluster c; /* just for the helpers */
    memset(&c, 0, sizeof(c));
    c.b[0] = b[0];
    c.b[1] = b[1];
    const char *call = "{\"channel\":\"Local/150@demo\",\"context\":\"demo\",\"exten\":"
                       "\"150\",\"wait\":false}";
    const char *orig = "{\"Channel\":\"Local/150@demo\",\"Context\":\"demo\",\"Exten\":"
                       "\"150\",\"Priority\":\"1\",\"Async\":\"true\"}";
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        long st = i % 2 ? call_status(&c, i % 2, "/v1/actions/Originate", orig)
                        : call_status(&c, i % 2, "/v1/calls", call);
        ok += st == 202 || st == 200;
        limited += st == 429;
    }
    print_message("burst 5 shared by two replicas: %d placed, %d refused with 429\n", ok, limited);
    assert_int_equal(ok, 5);
    assert_int_equal(limited, 3);
    for (int i = 0; i < 2; i++)
        bridge_stop(&b[i], 0);

    /* the in-flight cap: long calls (exten 200 rings on for 30 s) */
    const char *env2[] = {rurl,
                          "AMIBRIDGE_CALLS_BURST=1000",
                          "AMIBRIDGE_CALLS_PER_SECOND=1000",
                          "AMIBRIDGE_CALLS_MAX_INFLIGHT=3",
                          "AMIBRIDGE_REDIS_PREFIX=two",
                          NULL};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bridge_start(&b[i], sim.port, env2), 0);
        assert_true(bridge_wait_status(&b[i], "/readyz", 200, 10000) >= 0);
        assert_int_equal(bridge_wait_redis(&b[i], 5000), 0);
    }
    c.b[0] = b[0];
    c.b[1] = b[1];
    const char *ring = "{\"channel\":\"Local/600@demo\",\"context\":\"demo\",\"exten\":"
                       "\"600\",\"wait\":false,\"timeout\":20}";
    ok = limited = 0;
    for (int i = 0; i < 6; i++) {
        long st = call_status(&c, i % 2, "/v1/calls", ring);
        ok += st == 202;
        limited += st == 429;
    }
    print_message("in-flight cap 3 shared by two replicas: %d placed, %d refused\n", ok, limited);
    assert_int_equal(ok, 3);
    assert_int_equal(limited, 3);
    for (int i = 0; i < 2; i++)
        bridge_stop(&b[i], 0);
    amisim_stop(&sim);
    redis_stop(&redis);
}

/* One replica alone with Redis: an outage longer than the lease must not
 * cost the events that waited (the lease comes back unbroken). */
static void a_lone_leader_keeps_what_waited_through_a_redis_outage(void **state)
{
    (void)state;
    struct redis_srv redis;
    struct amisim sim;
    struct bridge b;
    assert_int_equal(redis_start(&redis, 0), 0);
    assert_int_equal(amisim_start(&sim, NULL), 0);
    char rurl[96];
    snprintf(rurl, sizeof(rurl), "AMIBRIDGE_REDIS_URL=%s", redis.url);
    const char *env[] = {rurl, "AMIBRIDGE_LEADER_TTL_MS=1000", "AMIBRIDGE_REDIS_STREAM=ami:stream",
                         "AMIBRIDGE_REDIS_BUFFER=100000", NULL};
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 10000) >= 0);
    assert_int_equal(bridge_wait_redis(&b, 5000), 0);
    int port = redis.port;
    enum { RATE = 500, N = 2500 };
    char body[128], url[160];
    snprintf(body, sizeof(body), "{\"Flood\":\"%d\",\"FloodCount\":\"%d\"}", RATE, N);
    snprintf(url, sizeof(url), "%s/v1/actions/SimControl", b.url);
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    usleep(1000 * 1000);
    redis_stop(&redis); /* its data goes with it: a fresh Redis comes back */
    usleep(2500 * 1000);
    assert_int_equal(redis_start(&redis, port), 0);
    usleep((useconds_t)(N / RATE) * 1000 * 1000 + 2000 * 1000);
    const char *xr[] = {"XRANGE", "ami:stream", "-", "+", NULL};
    char *out = redis_cli(&redis, xr);
    assert_non_null(out);
    /* every SimFlood Seq that reached the new Redis, once each */
    int seen[N + 1] = {0}, got = 0, dups = 0, lowest = N + 1;
    for (const char *p = out; (p = strstr(p, "\"Seq\":\""));) {
        p += 7;
        int q = atoi(p);
        if (q < 1 || q > N)
            continue;
        if (seen[q]++)
            dups++;
        else
            got++;
        if (q < lowest)
            lowest = q;
    }
    free(out);
    int contiguous = 1;
    for (int q = lowest; q <= N; q++)
        contiguous &= seen[q] > 0;
    print_message("after a 2.5 s outage: Seq %d..%d all there (%d events, %d twice)\n", lowest, N,
                  got, dups);
    /* what came during the outage waited and went out: everything from
     * about when Redis died to the end, nothing twice */
    assert_int_equal(dups, 0);
    assert_true(contiguous);
    assert_true(lowest <= RATE * 1 + RATE / 2);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
    redis_stop(&redis);
}

/* Calls: every replica reads the leader's calls (from Redis); a call up
 * when the leader is killed goes on under the next one and is created and
 * ended exactly once between them. */
static void calls_survive_the_leader_and_every_replica_reads_them(void **state)
{
    (void)state;
    struct cluster c;
    cluster_start(&c);
    int l = wait_leader(&c, -1, 3);
    assert_true(l >= 0);
    struct sub s;
    assert_int_equal(sub_start(&s, c.redis.port, "calls.*"), 0);
    /* a call of about 8 s: Local/600 rings 2 s, answers, waits 5 s */
    int asker = (l + 1) % N_REPLICAS;
    /* a follower streams the leader's call events */
    struct sse_client sc;
    assert_int_equal(sse_open(&sc, c.b[asker].port, "/v1/calls/events", NULL, NULL, 0), 0);
    assert_int_equal(sc.status, 200);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/calls", c.b[asker].url);
    struct http_resp r;
    http_call("POST", url, NULL,
              "{\"channel\":\"Local/600@demo\",\"application\":\"Wait\",\"data\":\"6\","
              "\"wait\":false,\"reference\":\"crm-via-follower\","
              "\"variables\":{\"CRM_ID\":\"77\"}}",
              NULL, 5000, &r);
    assert_int_equal(r.status, 202);
    char id[64];
    snprintf(id, sizeof(id), "%s", http_json_str(&r, "call_id"));
    http_resp_free(&r);
    int streamed = 0;
    for (int k = 0; k < 10 && !streamed; k++) {
        struct sse_frame f;
        if (sse_next(&sc, 5000, &f) <= 0)
            break;
        streamed = f.data && strstr(f.data, id) && !strcmp(f.event, "call.created");
        sse_frame_free(&f);
    }
    sse_close(&sc);
    if (!streamed)
        fail_msg("the follower's /v1/calls/events never showed the call");
    /* every replica answers for it, the followers from Redis */
    for (int i = 0; i < N_REPLICAS; i++) {
        int seen = 0;
        snprintf(url, sizeof(url), "%s/v1/calls/%s", c.b[i].url, id);
        for (int tries = 0; tries < 50 && !seen; tries++) {
            http_call("GET", url, NULL, NULL, NULL, 5000, &r);
            seen = r.status == 200;
            http_resp_free(&r);
            if (!seen)
                usleep(100 * 1000);
        }
        if (!seen)
            fail_msg("replica%d does not know the call", i);
        snprintf(url, sizeof(url), "%s/v1/calls/live", c.b[i].url);
        http_call("GET", url, NULL, NULL, NULL, 5000, &r);
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.body, id));
        http_resp_free(&r);
    }
    /* the leader dies with the call up */
    bridge_stop(&c.b[l], SIGKILL);
    c.alive[l] = 0;
    int next = wait_leader(&c, l, 5);
    assert_true(next >= 0);
    /* the call ends under the new leader: created once, ended once */
    int created = 0, ended = 0;
    for (int tries = 0; tries < 200 && !ended; tries++) {
        created = ended = 0;
        pthread_mutex_lock(&s.mu);
        for (size_t i = 0; i < s.n; i++) {
            if (!strstr(s.v[i].payload, id))
                continue;
            created += strstr(s.v[i].channel, ".call.created") != NULL;
            ended += strstr(s.v[i].channel, ".call.ended") != NULL;
        }
        pthread_mutex_unlock(&s.mu);
        if (!ended)
            usleep(100 * 1000);
    }
    usleep(500 * 1000);
    created = ended = 0;
    const char *by = NULL;
    int placed = 0; /* events that say a follower placed it, with what it was given */
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++) {
        if (!strstr(s.v[i].payload, id))
            continue;
        placed += strstr(s.v[i].payload, "\"direction\":\"originated\"") &&
                  strstr(s.v[i].payload, "\"reference\":\"crm-via-follower\"") &&
                  strstr(s.v[i].payload, "\"CRM_ID\":\"77\"");
        created += strstr(s.v[i].channel, ".call.created") != NULL;
        if (strstr(s.v[i].channel, ".call.ended")) {
            ended++;
            by = strstr(s.v[i].payload, "\"by\":\"system\"") ? "system" : "pbx";
        }
    }
    pthread_mutex_unlock(&s.mu);
    print_message("call %s: created %d, ended %d (hang-up seen by %s)\n", id, created, ended,
                  by ? by : "nobody");
    assert_int_equal(created, 1);
    assert_int_equal(ended, 1);
    /* placed through a follower: the leader knew what it was given, from
     * the first event on (and the next leader from the Redis copy) */
    pthread_mutex_lock(&s.mu);
    size_t nevents = 0;
    const char *first = NULL;
    for (size_t i = 0; i < s.n; i++)
        if (strstr(s.v[i].payload, id) && nevents++ == 0)
            first = s.v[i].payload;
    pthread_mutex_unlock(&s.mu);
    /* the leader hears of it before the first event when the machine keeps
     * pace (the follower sends the Originate once Redis took the news); when
     * it hears late, the events from then on carry it, across the failover */
    print_message("%d of %zu events of the call carry its origination\n", placed, nevents);
    const char *last = NULL;
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++)
        if (strstr(s.v[i].payload, id) && strstr(s.v[i].channel, ".call.ended"))
            last = s.v[i].payload;
    pthread_mutex_unlock(&s.mu);
    if (!last || !strstr(last, "\"direction\":\"originated\"") ||
        !strstr(last, "\"reference\":\"crm-via-follower\"") || !strstr(last, "\"CRM_ID\":\"77\""))
        fail_msg("the call.ended of a call placed through a follower lacks its origination (%d of "
                 "%zu events had it); the first:\n%s",
                 placed, nevents, first ? first : "");
    /* the call events' seq (their SSE id) goes on across the failover: the
     * new leader starts after the highest it heard as a follower */
    long long last_seq = 0;
    pthread_mutex_lock(&s.mu);
    for (size_t i = 0; i < s.n; i++) {
        const char *q = strstr(s.v[i].payload, "\"seq\":");
        long long seq = q ? atoll(q + 6) : -1;
        if (seq <= last_seq) {
            pthread_mutex_unlock(&s.mu);
            fail_msg("call event %zu has seq %lld after %lld: %.200s", i, seq, last_seq,
                     s.v[i].payload);
        }
        last_seq = seq;
    }
    pthread_mutex_unlock(&s.mu);
    snprintf(url, sizeof(url), "%s/v1/calls/%s", c.b[next].url, id);
    http_call("GET", url, NULL, NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_json_str(&r, "state"), "ended");
    http_resp_free(&r);
    /* every replica alive counts it once in its last hour: the new leader
     * derived its end, the follower heard it */
    for (int i = 0; i < N_REPLICAS; i++) {
        if (!c.alive[i])
            continue;
        snprintf(url, sizeof(url), "%s/v1/calls/stats", c.b[i].url);
        http_call("GET", url, NULL, NULL, NULL, 5000, &r);
        assert_int_equal(r.status, 200);
        json_int_t n = 0;
        size_t k;
        json_t *m;
        json_array_foreach (json_object_get(r.json, "minutes"), k, m) {
            n += json_integer_value(json_object_get(m, "ended"));
        }
        if (n != 1)
            fail_msg("replica%d%s counts %lld ended calls:\n%s", i, i == next ? " (leader)" : "",
                     (long long)n, r.body);
        http_resp_free(&r);
    }
    sub_stop(&s);
    cluster_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_leader_publishes_each_event_once),
        cmocka_unit_test(a_flushed_script_cache_loses_nothing),
        cmocka_unit_test(
            a_killed_leader_is_replaced_within_two_ttls_and_nothing_is_published_twice),
        cmocka_unit_test(a_stalled_leader_steps_down_and_is_fenced),
        cmocka_unit_test(webhooks_left_by_a_dead_leader_are_delivered_by_the_next),
        cmocka_unit_test(a_clean_stop_hands_the_lease_over_at_once),
        cmocka_unit_test(a_replica_restarted_with_its_id_takes_its_lease_back_at_once),
        cmocka_unit_test(every_replica_serves_the_same_event_stream),
        cmocka_unit_test(the_call_limits_hold_across_replicas),
        cmocka_unit_test(only_the_leader_keeps_an_event_connection),
        cmocka_unit_test(a_lone_leader_keeps_what_waited_through_a_redis_outage),
        cmocka_unit_test(calls_survive_the_leader_and_every_replica_reads_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
