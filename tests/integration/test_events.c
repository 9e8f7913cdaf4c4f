/* Integration tests for the event stream: Redis pub/sub and streams, SSE
 * and /metrics, with a real redis-server, the real ami-sim and the real
 * binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ami/parser.h"
#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/redis.h"
#include "support/sse.h"
#include "support/sub.h"
#include "support/testenv.h"

struct env {
    struct redis_srv redis;
    struct amisim sim;
    struct bridge bridge;
    int have_redis;
};

/* env entries beyond the Redis URL may be given. */
static void start(struct env *e, int with_redis, const char *const *extra)
{
    memset(e, 0, sizeof(*e));
    const char *env[32];
    size_t n = 0;
    char rurl[96];
    if (with_redis) {
        assert_int_equal(redis_start(&e->redis, 0), 0);
        e->have_redis = 1;
        snprintf(rurl, sizeof(rurl), "AMIBRIDGE_REDIS_URL=%s", e->redis.url);
        env[n++] = rurl;
    }
    for (; extra && *extra && n < 30; extra++)
        env[n++] = *extra;
    env[n] = NULL;
    assert_int_equal(amisim_start(&e->sim, NULL), 0);
    assert_int_equal(bridge_start(&e->bridge, e->sim.port, env), 0);
    assert_true(bridge_wait_status(&e->bridge, "/readyz", 200, 5000) >= 0);
    if (with_redis && bridge_wait_redis(&e->bridge, 5000) != 0)
        fail_msg("the bridge never saw Redis up");
}

static void stop(struct env *e)
{
    bridge_stop(&e->bridge, 0);
    amisim_stop(&e->sim);
    if (e->have_redis)
        redis_stop(&e->redis);
}

static long post(const struct env *e, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", e->bridge.url, path);
    struct http_resp r;
    http_call("POST", url, NULL, body, NULL, 30000, &r);
    long st = r.status;
    if (st >= 300)
        print_message("POST %s -> %ld %s\n", path, st, r.body);
    http_resp_free(&r);
    return st;
}

static void flood(const struct env *e, int rate, int count)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"Flood\":\"%d\",\"FloodCount\":\"%d\"}", rate, count);
    assert_int_equal(post(e, "/v1/actions/SimControl", body), 200);
}

static double metric(const struct env *e, const char *series)
{
    return http_metric(e->bridge.url, series);
}

/* --- Redis ------------------------------------------------------------------------------- */

static int floating(const char *name)
{
    return !strcmp(name, "OriginateResponse") || !strcmp(name, "DeviceStateChange");
}

static int excluded_by_default(const char *name)
{
    return !strcmp(name, "VarSet") || !strcmp(name, "Newexten") || !strncmp(name, "RTCP", 4);
}

/* The call events of capture 04c (from the first Newchannel on), minus
 * what the default filters drop: what a subscriber must see for the same
 * Originate. */
static size_t expected_from_capture(char names[][64], size_t max)
{
    char path[1024];
    testenv_data_path(path, sizeof(path),
                      "transcripts/04c-originate-async-two-connections.events.recv");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    ami_parser_feed(p, buf, len);
    struct ami_msg *m;
    size_t n = 0;
    int started = 0;
    while (ami_parser_next(p, &m) == 1) {
        const char *name = ami_msg_name(m);
        if (ami_msg_kind(m) == AMI_MSG_EVENT) {
            started |= !strcmp(name, "Newchannel");
            if (started && !excluded_by_default(name) && n < max)
                snprintf(names[n++], 64, "%s", name);
        }
        ami_msg_free(m);
    }
    ami_parser_free(p);
    return n;
}

static void redis_subscriber_gets_a_call_in_order_as_in_the_capture(void **state)
{
    (void)state;
    struct env e;
    start(&e, 1, NULL);
    struct sub s;
    assert_int_equal(sub_start(&s, e.redis.port, "ami.*"), 0);
    assert_int_equal(post(&e, "/v1/calls",
                          "{\"channel\":\"Local/100@demo\",\"context\":\"demo\",\"exten\":\"100\","
                          "\"caller_id\":\"\\\"Async Test\\\" <5552000>\"}"),
                     200);
    static char want[256][64];
    size_t nwant = expected_from_capture(want, 256);
    assert_true(nwant > 15);
    /* exten 100 hangs up after 3 s */
    long long deadline = testenv_now_ms() + 10000;
    size_t got_call = 0;
    static char got[256][64];
    uint64_t prev_seq = 0;
    size_t seen = 0;
    while (testenv_now_ms() < deadline) {
        size_t n = sub_wait(&s, seen + 1, 200);
        for (; seen < n; seen++) {
            json_error_t je;
            json_t *j = json_loads(s.v[seen].payload, 0, &je);
            if (!j)
                fail_msg("not JSON: %s", s.v[seen].payload);
            const char *name = json_string_value(json_object_get(j, "event"));
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
            const char *when = json_string_value(json_object_get(j, "time"));
            json_t *fields = json_object_get(j, "fields");
            assert_string_equal(json_string_value(json_object_get(j, "server")), "default");
            assert_non_null(name);
            /* the channel is <prefix>.<server>.<Event> */
            char chan[128];
            snprintf(chan, sizeof(chan), "ami.default.%s", name);
            assert_string_equal(s.v[seen].channel, chan);
            assert_string_equal(json_string_value(json_object_get(fields, "Event")), name);
            assert_true(when && strlen(when) == 27 && when[10] == 'T' && when[26] == 'Z');
            if (prev_seq)
                assert_int_equal(seq, prev_seq + 1); /* in order, no gap */
            prev_seq = seq;
            if (strcmp(name, "SuccessfulAuth") && strcmp(name, "FullyBooted") && got_call < 256)
                snprintf(got[got_call++], 64, "%s", name);
            json_decref(j);
        }
        if (got_call >= nwant)
            break;
    }
    /* the same events in the same order, the floating ones wherever they fell */
    size_t i = 0, k = 0, fw = 0, fg = 0;
    for (size_t a = 0; a < nwant; a++)
        fw += floating(want[a]);
    for (size_t a = 0; a < got_call; a++)
        fg += floating(got[a]);
    assert_int_equal(fw, fg);
    while (i < nwant || k < got_call) {
        while (i < nwant && floating(want[i]))
            i++;
        while (k < got_call && floating(got[k]))
            k++;
        if (i == nwant || k == got_call)
            break;
        if (strcmp(want[i], got[k]))
            fail_msg("event %zu: capture has %s, the subscriber got %s", i, want[i], got[k]);
        i++;
        k++;
    }
    assert_int_equal(i, nwant);
    assert_int_equal(k, got_call);
    print_message("%zu call events, same order as the capture\n", got_call);
    sub_stop(&s);
    stop(&e);
}

static void hundred_thousand_flood_events_arrive_without_a_gap(void **state)
{
    (void)state;
    struct env e;
    /* the buffer holds the whole flood: however slow this machine (or a
     * sanitizer build) is, nothing may be lost */
    const char *extra[] = {"AMIBRIDGE_LOG_LEVEL=warn", "AMIBRIDGE_REDIS_BUFFER=200000", NULL};
    start(&e, 1, extra);
    struct sub s;
    assert_int_equal(sub_start(&s, e.redis.port, "ami.default.SimFlood"), 0);
    enum { N = 100000 };
    long long t0 = testenv_now_ms();
    flood(&e, 20000, N);
    size_t got = sub_wait(&s, N, 60000);
    double secs = (double)(testenv_now_ms() - t0) / 1000.0;
    print_message("%zu flood events through Redis in %.1f s\n", got, secs);
    assert_int_equal(got, N);
    uint64_t prev = 0;
    for (size_t i = 0; i < N; i++) {
        json_t *j = json_loads(s.v[i].payload, 0, NULL);
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(j, "seq"));
        long fseq = strtol(json_string_value(json_object_get(json_object_get(j, "fields"), "Seq")),
                           NULL, 10);
        assert_int_equal(fseq, (long)i + 1);
        if (prev)
            assert_int_equal(seq, prev + 1);
        prev = seq;
        json_decref(j);
    }
    assert_true(metric(&e, "amibridge_events_published_total{outlet=\"redis\"}") >= N);
    assert_int_equal(
        metric(&e, "amibridge_events_dropped_total{outlet=\"redis\",reason=\"buffer_full\"}"), 0);
    sub_stop(&s);
    stop(&e);
}

/* The simulator plays manager.conf writetimeout = 100 ms with no byte cap;
 * a subscriber listens on s; n SimFlood events at 20,000/s; after_ms into
 * the flood Redis stops taking writes for pause_ms (CLIENT PAUSE). */
static void flood_into_a_stall(const struct env *e, struct sub *s, int n, int after_ms,
                               const char *pause_ms)
{
    assert_int_equal(
        post(e, "/v1/actions/SimControl", "{\"WriteTimeout\":\"100\",\"MaxOutbuf\":\"0\"}"), 200);
    assert_int_equal(sub_start(s, e->redis.port, "ami.default.SimFlood"), 0);
    flood(e, 20000, n);
    testenv_sleep_ms(after_ms);
    const char *pause[] = {"CLIENT", "PAUSE", pause_ms, "WRITE", NULL};
    free(redis_cli(&e->redis, pause));
}

/* The subscriber got the flood's Seq 1..n in order. */
static void assert_flood_in_order(const struct sub *s, int n)
{
    for (size_t i = 0; i < (size_t)n; i++) {
        json_t *j = json_loads(s->v[i].payload, 0, NULL);
        long fseq = strtol(json_string_value(json_object_get(json_object_get(j, "fields"), "Seq")),
                           NULL, 10);
        json_decref(j);
        if (fseq != (long)i + 1)
            fail_msg("event %zu carries Seq %ld", i, fseq);
    }
}

/* Redis up but not taking commands for a second (CLIENT PAUSE) during a
 * flood, with a buffer of 1,000 events: the bridge holds AMI events back
 * instead of dropping them, without ever leaving Asterisk's writes stuck
 * (the simulator plays manager.conf writetimeout = 100 ms and would drop
 * the session), and every event arrives, in order. */
static void a_stalled_redis_holds_events_back_and_loses_none(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_LOG_LEVEL=warn", "AMIBRIDGE_REDIS_BUFFER=1000", NULL};
    start(&e, 1, extra);
    struct sub s;
    enum { N = 60000 };
    flood_into_a_stall(&e, &s, N, 500, "1000");
    size_t got = sub_wait(&s, N, 60000);
    double held = metric(&e, "amibridge_events_read_paused_seconds_total");
    print_message(
        "%zu of %d events through a 1 s Redis pause; held back for %.2f s; dropped "
        "%.0f; AMI reconnects %.0f\n",
        got, N, held,
        metric(&e, "amibridge_events_dropped_total{outlet=\"redis\",reason=\"buffer_full\"}"),
        metric(&e, "amibridge_ami_reconnects_total{server=\"default\"}"));
    assert_int_equal(got, N);
    assert_flood_in_order(&s, N);
    assert_true(held >= 0.5);
    assert_int_equal(
        metric(&e, "amibridge_events_dropped_total{outlet=\"redis\",reason=\"buffer_full\"}"), 0);
    assert_int_equal(metric(&e, "amibridge_ami_reconnects_total{server=\"default\"}"), 0);
    sub_stop(&s);
    stop(&e);
}

/* SIGTERM while events are held back (Redis paused for 1.5 s mid-flood):
 * the bridge keeps its AMI connections and waits for Redis before it logs
 * off, so every event it read reaches the subscriber, in order. */
static void sigterm_while_events_are_held_back_loses_none(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_LOG_LEVEL=info", "AMIBRIDGE_REDIS_BUFFER=1000", NULL};
    start(&e, 1, extra);
    struct sub s;
    enum { N = 20000 };
    flood_into_a_stall(&e, &s, N, 200, "1500");
    testenv_sleep_ms(500); /* events pile up, held back */
    long long t0 = testenv_now_ms();
    assert_int_equal(proc_signal(&e.bridge.proc, SIGTERM), 0);
    assert_int_equal(proc_wait(&e.bridge.proc, 15000), 1);
    assert_int_equal(proc_exit_code(&e.bridge.proc), 0);
    size_t got = sub_wait(&s, N, 10000);
    print_message("%zu of %d events after a SIGTERM during a Redis pause; exit after %lld ms\n",
                  got, N, testenv_now_ms() - t0);
    assert_int_equal(bridge_log_count(&e.bridge, "waiting for the AMI events held back"), 1);
    assert_int_equal(bridge_log_count(&e.bridge, "held back were passed on"), 1);
    assert_int_equal(bridge_log_count(&e.bridge, "dropped"), 0);
    bridge_stop(&e.bridge, 0);
    assert_int_equal(got, N);
    assert_flood_in_order(&s, N);
    sub_stop(&s);
    amisim_stop(&e.sim);
    redis_stop(&e.redis);
}

static void redis_down_drops_are_counted_nothing_blocks_and_publishing_resumes(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_REDIS_BUFFER=300", NULL};
    start(&e, 1, extra);
    int port = e.redis.port;
    struct sub s;
    assert_int_equal(sub_start(&s, port, "ami.default.SimFlood"), 0);
    flood(&e, 1000, 8000);
    assert_true(sub_wait(&s, 500, 5000) >= 500);
    proc_signal(&e.redis.proc, SIGKILL);
    proc_wait(&e.redis.proc, -1);
    /* while Redis is away the bridge answers at once and SSE still flows */
    struct sse_client c;
    assert_int_equal(sse_open(&c, e.bridge.port, "/v1/events?events=SimFlood", NULL, NULL, 0), 0);
    assert_int_equal(c.status, 200);
    int flowing = 0;
    for (int i = 0; i < 50 && !flowing; i++) {
        struct sse_frame f;
        if (sse_next(&c, 1000, &f) == 1) {
            flowing = !strcmp(f.event, "SimFlood");
            sse_frame_free(&f);
        }
    }
    assert_true(flowing);
    sse_close(&c);
    for (int i = 0; i < 5; i++) {
        long long t0 = testenv_now_ms();
        char url[128];
        snprintf(url, sizeof(url), "%s/healthz", e.bridge.url);
        struct http_resp r;
        http_call("GET", url, NULL, NULL, NULL, 2000, &r);
        assert_int_equal(r.status, 200);
        assert_true(testenv_now_ms() - t0 < 500);
        http_resp_free(&r);
        testenv_sleep_ms(200);
    }
    testenv_sleep_ms(1000);
    double dropped =
        metric(&e, "amibridge_events_dropped_total{outlet=\"redis\",reason=\"buffer_full\"}");
    print_message("%.0f events dropped while Redis was down (buffer 300)\n", dropped);
    assert_true(dropped > 0);
    assert_true(bridge_log_count(&e.bridge, "Redis event buffer full") >= 1);
    /* Redis back on the same port: publishing resumes by itself */
    struct redis_srv again;
    assert_int_equal(redis_start(&again, port), 0);
    size_t before = sub_count(&s);
    assert_true(sub_wait(&s, before + 200, 15000) >= before + 200);
    assert_int_equal(bridge_wait_redis(&e.bridge, 5000), 0);
    sub_stop(&s);
    redis_stop(&again);
    e.have_redis = 0;
    testenv_rmdir(e.redis.dir);
    stop(&e);
}

static void xadd_keeps_a_trimmed_stream(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_REDIS_STREAM=amibridge-test-stream",
                           "AMIBRIDGE_REDIS_STREAM_MAXLEN=100", NULL};
    start(&e, 1, extra);
    struct sub s;
    assert_int_equal(sub_start(&s, e.redis.port, "ami.default.SimFlood"), 0);
    flood(&e, 5000, 3000);
    assert_int_equal(sub_wait(&s, 3000, 20000), 3000);
    testenv_sleep_ms(200);
    const char *xlen[] = {"XLEN", "amibridge-test-stream", NULL};
    char *out = redis_cli(&e.redis, xlen);
    long n = out ? strtol(out, NULL, 10) : -1;
    free(out);
    print_message("stream length after 3000 events with MAXLEN ~ 100: %ld\n", n);
    assert_true(n >= 100 && n < 1000);
    const char *last[] = {"XREVRANGE", "amibridge-test-stream", "+", "-", "COUNT", "1", NULL};
    out = redis_cli(&e.redis, last);
    assert_non_null(strstr(out, "\"Seq\":\"3000\""));
    free(out);
    sub_stop(&s);
    stop(&e);
}

/* --- SSE --------------------------------------------------------------------------------- */

static void sse_filters_replay_and_heartbeat(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_SSE_HEARTBEAT_S=1", NULL};
    start(&e, 0, extra);
    struct sse_client byname, byfield, all;
    assert_int_equal(
        sse_open(&byname, e.bridge.port, "/v1/events?events=Newchannel,Hangup", NULL, NULL, 0), 0);
    assert_int_equal(byname.status, 200);
    assert_string_equal(byname.content_type, "text/event-stream");
    assert_int_equal(
        sse_open(&byfield, e.bridge.port, "/v1/events?filter=Exten:150", NULL, NULL, 0), 0);
    assert_int_equal(sse_open(&all, e.bridge.port, "/v1/events", NULL, NULL, 0), 0);
    assert_int_equal(
        post(&e, "/v1/calls",
             "{\"channel\":\"Local/150@demo\",\"context\":\"demo\",\"exten\":\"150\"}"),
        200);
    int newch = 0, hang = 0, other = 0, heartbeat = 0;
    long long deadline = testenv_now_ms() + 3000;
    while (testenv_now_ms() < deadline) {
        struct sse_frame f;
        if (sse_next(&byname, 200, &f) != 1)
            continue;
        if (f.comment && !strcmp(f.comment, "keepalive"))
            heartbeat++;
        else if (!strcmp(f.event, "Newchannel"))
            newch++;
        else if (!strcmp(f.event, "Hangup"))
            hang++;
        else if (f.event[0])
            other++;
        if (f.data) {
            json_t *j = json_loads(f.data, 0, NULL);
            assert_non_null(j);
            char id[32];
            snprintf(id, sizeof(id), "%lld",
                     (long long)json_integer_value(json_object_get(j, "seq")));
            assert_string_equal(f.id, id);
            json_decref(j);
        }
        sse_frame_free(&f);
    }
    assert_int_equal(newch, 2);
    assert_int_equal(hang, 2);
    assert_int_equal(other, 0);
    assert_true(heartbeat >= 1);
    /* the field filter: only events whose Exten is 150 */
    int matched = 0;
    struct sse_frame f;
    while (sse_next(&byfield, 300, &f) == 1) {
        if (f.data) {
            json_t *j = json_loads(f.data, 0, NULL);
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "fields"), "Exten")), "150");
            matched++;
            json_decref(j);
        }
        sse_frame_free(&f);
    }
    assert_true(matched >= 4);
    /* replay: a reconnect with Last-Event-ID gets exactly what came after */
    char ids[64][64];
    size_t nid = 0;
    while (sse_next(&all, 300, &f) == 1) {
        if (f.id[0] && nid < 64)
            snprintf(ids[nid++], sizeof(ids[0]), "%s", f.id);
        sse_frame_free(&f);
    }
    assert_true(nid > 10);
    struct sse_client again;
    assert_int_equal(sse_open(&again, e.bridge.port, "/v1/events", NULL, ids[4], 0), 0);
    size_t k = 5;
    while (k < nid && sse_next(&again, 1000, &f) == 1) {
        if (f.id[0]) {
            assert_string_equal(f.id, ids[k]);
            k++;
        }
        sse_frame_free(&f);
    }
    assert_int_equal(k, nid);
    sse_close(&again);
    /* an id older than the ring: a gap notice, not a silent hole */
    struct sse_client old;
    assert_int_equal(sse_open(&old, e.bridge.port, "/v1/events", NULL, "999999", 0), 0);
    sse_close(&old);
    sse_close(&byname);
    sse_close(&byfield);
    sse_close(&all);
    /* bad parameters */
    struct sse_client bad;
    assert_int_equal(sse_open(&bad, e.bridge.port, "/v1/events?filter=nocolon", NULL, NULL, 0), 0);
    assert_int_equal(bad.status, 400);
    sse_close(&bad);
    stop(&e);
}

static void a_slow_sse_client_is_cut_off_without_slowing_others(void **state)
{
    (void)state;
    struct env e;
    /* a queue of 2,000 events: 0.4 s of this flood, far more than a
     * reading client ever lags, far less than what the idle one owes */
    const char *extra[] = {"AMIBRIDGE_SSE_QUEUE=2000", "AMIBRIDGE_LOG_LEVEL=error", NULL};
    start(&e, 0, extra);
    struct sse_client slow, fast;
    /* a tiny receive buffer and no reading: the slow client falls behind */
    assert_int_equal(sse_open(&slow, e.bridge.port, "/v1/events?events=SimFlood", NULL, NULL, 2048),
                     0);
    assert_int_equal(sse_open(&fast, e.bridge.port, "/v1/events?events=SimFlood", NULL, NULL, 0),
                     0);
    enum { N = 20000 };
    flood(&e, 5000, N);
    long expect = 1;
    long long deadline = testenv_now_ms() + 30000;
    struct sse_frame f;
    while (expect <= N && testenv_now_ms() < deadline) {
        if (sse_next(&fast, 1000, &f) != 1)
            continue;
        if (f.data) {
            json_t *j = json_loads(f.data, 0, NULL);
            long seq = strtol(
                json_string_value(json_object_get(json_object_get(j, "fields"), "Seq")), NULL, 10);
            assert_int_equal(seq, expect);
            expect++;
            json_decref(j);
        }
        sse_frame_free(&f);
    }
    assert_int_equal(expect, N + 1); /* the reading client got every event, in order */
    /* now read the slow one: some events, then the notice, then the end */
    int notice = 0, ended = 0;
    for (int i = 0; i < 100000 && !ended; i++) {
        int rc = sse_next(&slow, 2000, &f);
        if (rc < 0) {
            ended = 1;
        } else if (rc == 1) {
            notice |= f.comment && strstr(f.comment, "disconnected") != NULL;
            sse_frame_free(&f);
        } else {
            break;
        }
    }
    assert_true(notice);
    assert_true(ended);
    assert_true(
        metric(&e, "amibridge_events_dropped_total{outlet=\"sse\",reason=\"slow_client\"}") >= 1);
    sse_close(&slow);
    sse_close(&fast);
    stop(&e);
}

/* Two AMI servers: every stream id names its server ("pbx2:7"), and such
 * a Last-Event-ID replays that server's events after it. */
static void with_two_servers_stream_ids_name_the_server(void **state)
{
    (void)state;
    struct amisim s1, s2;
    assert_int_equal(amisim_start(&s1, NULL), 0);
    assert_int_equal(amisim_start(&s2, NULL), 0);
    char dir[512], path[600], cfgvar[700];
    assert_int_equal(testenv_tmpdir(dir, sizeof(dir), "servers"), 0);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"servers\":[{\"name\":\"pbx1\",\"host\":\"127.0.0.1\",\"port\":%d,"
            "\"username\":\"bridge\",\"secret\":\"bridgesecret\"},"
            "{\"name\":\"pbx2\",\"host\":\"127.0.0.1\",\"port\":%d,"
            "\"username\":\"bridge\",\"secret\":\"bridgesecret\"}]}",
            s1.port, s2.port);
    fclose(f);
    snprintf(cfgvar, sizeof(cfgvar), "AMIBRIDGE_CONFIG=%s", path);
    /* the servers are the file's: none from the environment */
    const char *env[] = {
        cfgvar, "AMIBRIDGE_AMI_PORT=", "AMIBRIDGE_AMI_USERNAME=", "AMIBRIDGE_AMI_SECRET=", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, 0, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0);
    struct sse_client c;
    assert_int_equal(sse_open(&c, b.port, "/v1/events?events=SimFlood", NULL, NULL, 0), 0);
    assert_int_equal(c.status, 200);
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/actions/SimControl?server=pbx2", b.url);
    struct http_resp r;
    http_call("POST", url, NULL, "{\"Flood\":\"100\",\"FloodCount\":\"3\"}", NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    char ids[3][64];
    int n = 0;
    long long deadline = testenv_now_ms() + 5000;
    while (n < 3 && testenv_now_ms() < deadline) {
        struct sse_frame fr;
        if (sse_next(&c, 200, &fr) != 1)
            continue;
        if (fr.data) {
            json_t *j = json_loads(fr.data, 0, NULL);
            assert_non_null(j);
            char want[64];
            snprintf(want, sizeof(want), "pbx2:%lld",
                     (long long)json_integer_value(json_object_get(j, "seq")));
            assert_string_equal(fr.id, want);
            assert_string_equal(fr.event, "SimFlood");
            snprintf(ids[n++], sizeof(ids[0]), "%s", fr.id);
            json_decref(j);
        }
        sse_frame_free(&fr);
    }
    assert_int_equal(n, 3);
    sse_close(&c);
    /* resume after the first: the other two again, same ids */
    assert_int_equal(sse_open(&c, b.port, "/v1/events?events=SimFlood", NULL, ids[0], 0), 0);
    int again = 0;
    deadline = testenv_now_ms() + 5000;
    while (again < 2 && testenv_now_ms() < deadline) {
        struct sse_frame fr;
        if (sse_next(&c, 200, &fr) != 1)
            continue;
        if (fr.data) {
            assert_string_equal(fr.id, ids[1 + again]);
            again++;
        }
        sse_frame_free(&fr);
    }
    assert_int_equal(again, 2);
    sse_close(&c);
    bridge_stop(&b, 0);
    amisim_stop(&s1);
    amisim_stop(&s2);
    testenv_rmdir(dir);
}

static void sse_client_cap_and_scope(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_SSE_MAX_CLIENTS=2", "AMIBRIDGE_SSE_HEARTBEAT_S=60",
                           "AMIBRIDGE_API_KEYS=dash:dash-token-0123456789ab:read "
                           "crm:crm-token-0123456789abc:call",
                           NULL};
    start(&e, 0, extra);
    struct sse_client a, b, c, d;
    assert_int_equal(sse_open(&a, e.bridge.port, "/v1/events", NULL, NULL, 0), 0);
    assert_int_equal(a.status, 401);
    sse_close(&a);
    assert_int_equal(sse_open(&a, e.bridge.port, "/v1/events", "crm-token-0123456789abc", NULL, 0),
                     0);
    assert_int_equal(a.status, 403);
    sse_close(&a);
    assert_int_equal(sse_open(&a, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(sse_open(&b, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(sse_open(&c, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    assert_int_equal(c.status, 503);
    sse_close(&c);
    sse_close(&a);
    /* a hang-up frees the slot at once, not at the next heartbeat (60 s) */
    long long until = testenv_now_ms() + 2000;
    while (metric(&e, "amibridge_sse_clients") > 1 && testenv_now_ms() < until)
        testenv_sleep_ms(20);
    assert_int_equal(metric(&e, "amibridge_sse_clients"), 1);
    assert_int_equal(sse_open(&d, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(d.status, 200);
    sse_close(&b);
    sse_close(&d);
    stop(&e);
}

/* A Last-Event-ID is the client's bytes: what the stream shows of one that
 * is not ours has no control byte, no DEL and nothing that is not ASCII.
 * One with a CR (a real EventSource parser takes a bare CR as the end of a
 * line, so "1\rdata: x" would become an event) is refused with the whole
 * request (RFC 9110, 5.5). */
static void last_event_id_with_control_bytes_is_never_echoed_raw(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_SSE_HEARTBEAT_S=60", NULL};
    start(&e, 0, extra);
    const char *ids[] = {"1\rdata: {\"forged\":1}", "7\x01\x1b[2J\x7f", "\xff\xfe\xc3", "pbx\r:5",
                         "9\r\rretry: 1"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct sse_client c;
        assert_int_equal(sse_open(&c, e.bridge.port, "/v1/events", NULL, ids[i], 0), 0);
        if (strchr(ids[i], '\r')) {
            assert_int_equal(c.status, 400);
            sse_close(&c);
            continue;
        }
        assert_int_equal(c.status, 200);
        struct sse_frame f;
        int seen = 0;
        while (!seen && sse_next(&c, 2000, &f) == 1) {
            assert_null(f.data); /* no event was forged */
            assert_string_equal(f.event, "");
            if (f.comment && strstr(f.comment, "Last-Event-ID")) {
                seen = 1;
                assert_non_null(strstr(f.comment, "is not one of ours"));
                for (const char *p = f.comment; *p; p++)
                    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                        fail_msg("byte 0x%02x echoed into the stream", (unsigned char)*p);
            }
            sse_frame_free(&f);
        }
        assert_true(seen);
        sse_close(&c);
    }
    /* an id of ours still replays */
    struct sse_client c;
    assert_int_equal(sse_open(&c, e.bridge.port, "/v1/events", NULL, "0", 0), 0);
    assert_int_equal(c.status, 200);
    struct sse_frame f;
    while (sse_next(&c, 500, &f) == 1) {
        if (f.comment)
            assert_null(strstr(f.comment, "not one of ours"));
        sse_frame_free(&f);
    }
    sse_close(&c);
    stop(&e);
}

/* GET /v1/events on a raw socket bound to the loopback address `src`, with
 * an optional token; the status. The stream stays open on *fd. */
static int open_stream_from(int port, const char *src, const char *token, int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, src, &me.sin_addr), 1);
    assert_int_equal(bind(*fd, (struct sockaddr *)&me, sizeof(me)), 0);
    to.sin_port = htons((uint16_t)port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(*fd, (struct sockaddr *)&to, sizeof(to)), 0);
    char req[256], buf[2048];
    int n =
        snprintf(req, sizeof(req), "GET /v1/events HTTP/1.1\r\nHost: x\r\n%s%s%s\r\n",
                 token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    assert_int_equal(write(*fd, req, (size_t)n), n);
    struct timeval tv = {5, 0};
    setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t got = recv(*fd, buf, sizeof(buf) - 1, 0);
    assert_true(got > 12);
    buf[got] = '\0';
    return atoi(buf + 9);
}

static void one_key_or_one_address_holds_only_its_share_of_the_streams(void **state)
{
    (void)state;
    struct env e;
    const char *extra[] = {"AMIBRIDGE_SSE_MAX_CLIENTS=10", "AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY=2",
                           "AMIBRIDGE_SSE_HEARTBEAT_S=60",
                           "AMIBRIDGE_API_KEYS=dash:dash-token-0123456789ab:read "
                           "wall:wall-token-0123456789ab:read",
                           NULL};
    start(&e, 0, extra);
    struct sse_client a, b, c, d;
    assert_int_equal(sse_open(&a, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(sse_open(&b, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200);
    /* the third stream of one key is refused, with when to come back */
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/events", e.bridge.url);
    struct http_resp r;
    http_call("GET", url, "dash-token-0123456789ab", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(http_json_str(&r, "type"),
                        "urn:amibridge:problem:too-many-streams-per-key");
    assert_int_equal(json_integer_value(json_object_get(r.json, "limit")), 2);
    char *ra = http_resp_header(&r, "Retry-After");
    assert_non_null(ra);
    assert_true(atoi(ra) >= 1);
    free(ra);
    http_resp_free(&r);
    assert_int_equal(metric(&e, "amibridge_sse_refused_total{reason=\"per_key\"}"), 1);
    /* another key still gets a stream */
    assert_int_equal(sse_open(&c, e.bridge.port, "/v1/events", "wall-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(c.status, 200);
    /* a slot the key gives back is its own again */
    sse_close(&a);
    long long until = testenv_now_ms() + 2000;
    while (metric(&e, "amibridge_sse_clients") > 2 && testenv_now_ms() < until)
        testenv_sleep_ms(20);
    assert_int_equal(sse_open(&d, e.bridge.port, "/v1/events", "dash-token-0123456789ab", NULL, 0),
                     0);
    assert_int_equal(d.status, 200);
    sse_close(&b);
    sse_close(&c);
    sse_close(&d);
    stop(&e);

    /* without keys (loopback only) the share is per client address */
    const char *open_extra[] = {"AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY=2",
                                "AMIBRIDGE_SSE_HEARTBEAT_S=60", NULL};
    start(&e, 0, open_extra);
    int fds[4];
    assert_int_equal(open_stream_from(e.bridge.port, "127.0.0.2", NULL, &fds[0]), 200);
    assert_int_equal(open_stream_from(e.bridge.port, "127.0.0.2", NULL, &fds[1]), 200);
    assert_int_equal(open_stream_from(e.bridge.port, "127.0.0.2", NULL, &fds[2]), 429);
    assert_int_equal(open_stream_from(e.bridge.port, "127.0.0.3", NULL, &fds[3]), 200);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    stop(&e);
}

/* --- metrics ----------------------------------------------------------------------------- */

/* Every line is a comment or "name{labels} value" of the text format. */
static void assert_prometheus_text(const char *body)
{
    for (const char *p = body; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (*p != '#') {
            const char *q = p;
            assert_true(isalpha((unsigned char)*q) || *q == '_');
            while (isalnum((unsigned char)*q) || *q == '_' || *q == ':')
                q++;
            if (*q == '{') {
                while (*q != '}') {
                    q++;
                    while (isalnum((unsigned char)*q) || *q == '_')
                        q++;
                    assert_int_equal(*q++, '=');
                    assert_int_equal(*q++, '"');
                    while (*q != '"') {
                        if (*q == '\\')
                            q++;
                        q++;
                    }
                    q++;
                    assert_true(*q == ',' || *q == '}');
                }
                q++;
            }
            assert_int_equal(*q++, ' ');
            char *end;
            strtod(q, &end);
            assert_ptr_equal(end, nl);
        }
        p = nl + 1;
    }
}

static void metrics_parse_and_count_what_happened(void **state)
{
    (void)state;
    struct env e;
    start(&e, 1, NULL);
    for (int i = 0; i < 7; i++)
        assert_int_equal(post(&e, "/v1/actions/Ping", NULL), 200);
    assert_int_equal(post(&e, "/v1/actions/NoSuchAction", NULL), 404);
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", e.bridge.url);
    struct http_resp r;
    http_call("GET", url, NULL, NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    char *ct = http_resp_header(&r, "Content-Type");
    assert_non_null(strstr(ct, "text/plain; version=0.0.4"));
    free(ct);
    assert_prometheus_text(r.body);
    http_resp_free(&r);
    assert_int_equal(metric(&e, "amibridge_http_requests_total{route=\"actions\",status=\"200\"}"),
                     7);
    assert_int_equal(metric(&e, "amibridge_http_requests_total{route=\"actions\",status=\"404\"}"),
                     1);
    assert_int_equal(
        metric(
            &e,
            "amibridge_ami_actions_total{server=\"default\",action=\"Ping\",result=\"success\"}"),
        7);
    assert_int_equal(metric(&e, "amibridge_ami_actions_total{server=\"default\","
                                "action=\"NoSuchAction\",result=\"error\"}"),
                     1);
    assert_int_equal(metric(&e, "amibridge_ami_connections{server=\"default\",role=\"action\","
                                "state=\"up\"}"),
                     4);
    assert_int_equal(metric(&e, "amibridge_redis_up"), 1);
    assert_true(metric(&e, "amibridge_process_resident_memory_bytes") > 1e6);
    assert_true(metric(&e, "amibridge_process_open_fds") > 5);
    /* the events counters agree with a subscriber */
    struct sub s;
    assert_int_equal(sub_start(&s, e.redis.port, "ami.default.SimFlood"), 0);
    double before = metric(&e, "amibridge_events_published_total{outlet=\"redis\"}");
    flood(&e, 2000, 500);
    assert_int_equal(sub_wait(&s, 500, 10000), 500);
    testenv_sleep_ms(100);
    assert_int_equal(metric(&e, "amibridge_events_published_total{outlet=\"redis\"}") - before,
                     500);
    sub_stop(&s);
    stop(&e);
}

/* AMIBRIDGE_EVENTS_SERVER_FILTER=1 has Asterisk drop the excluded events
 * (Filter actions on the event connection): they never reach the bridge.
 * Without it the bridge receives them and drops them itself. */
static void server_side_filter_keeps_excluded_events_off_the_wire(void **state)
{
    (void)state;
    for (int server = 0; server <= 1; server++) {
        const char *extra[] = {
            "AMIBRIDGE_EVENTS_EXCLUDE=SimFlood",
            server ? "AMIBRIDGE_EVENTS_SERVER_FILTER=1" : "AMIBRIDGE_EVENTS_SERVER_FILTER=0", NULL};
        struct env e;
        start(&e, 1, extra);
        struct sub s;
        assert_int_equal(sub_start(&s, e.redis.port, "ami.default.UserEvent"), 0);
        double recv0 = metric(&e, "amibridge_events_received_total{server=\"default\"}");
        double filt0 = metric(&e, "amibridge_events_filtered_total{server=\"default\"}");
        flood(&e, 100000, 300);
        testenv_sleep_ms(400);
        /* one connection, one order: once the marker is in, the flood is too */
        assert_int_equal(post(&e, "/v1/actions/UserEvent", "{\"UserEvent\":\"marker\"}"), 200);
        assert_int_equal(sub_wait(&s, 1, 10000), 1);
        double recv = metric(&e, "amibridge_events_received_total{server=\"default\"}") - recv0;
        double filt = metric(&e, "amibridge_events_filtered_total{server=\"default\"}") - filt0;
        if (server) {
            assert_true(recv < 300);
            assert_true(filt < 300);
        } else {
            assert_true(recv >= 301);
            assert_true(filt >= 300);
        }
        sub_stop(&s);
        stop(&e);
    }
}

static void sigterm_flushes_and_exits_zero(void **state)
{
    (void)state;
    struct env e;
    start(&e, 1, NULL);
    struct sse_client c;
    assert_int_equal(sse_open(&c, e.bridge.port, "/v1/events", NULL, NULL, 0), 0);
    long long t0 = testenv_now_ms();
    assert_int_equal(bridge_stop(&e.bridge, SIGTERM), 0);
    assert_true(testenv_now_ms() - t0 < 5000);
    /* the SSE client was told and the stream ended */
    int told = 0, rc;
    struct sse_frame f;
    while ((rc = sse_next(&c, 1000, &f)) == 1) {
        told |= f.comment && strstr(f.comment, "shutting down") != NULL;
        sse_frame_free(&f);
    }
    assert_true(told);
    assert_int_equal(rc, -1);
    sse_close(&c);
    amisim_stop(&e.sim);
    redis_stop(&e.redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redis_subscriber_gets_a_call_in_order_as_in_the_capture),
        cmocka_unit_test(hundred_thousand_flood_events_arrive_without_a_gap),
        cmocka_unit_test(a_stalled_redis_holds_events_back_and_loses_none),
        cmocka_unit_test(sigterm_while_events_are_held_back_loses_none),
        cmocka_unit_test(redis_down_drops_are_counted_nothing_blocks_and_publishing_resumes),
        cmocka_unit_test(xadd_keeps_a_trimmed_stream),
        cmocka_unit_test(sse_filters_replay_and_heartbeat),
        cmocka_unit_test(a_slow_sse_client_is_cut_off_without_slowing_others),
        cmocka_unit_test(with_two_servers_stream_ids_name_the_server),
        cmocka_unit_test(sse_client_cap_and_scope),
        cmocka_unit_test(last_event_id_with_control_bytes_is_never_echoed_raw),
        cmocka_unit_test(one_key_or_one_address_holds_only_its_share_of_the_streams),
        cmocka_unit_test(metrics_parse_and_count_what_happened),
        cmocka_unit_test(server_side_filter_keeps_excluded_events_off_the_wire),
        cmocka_unit_test(sigterm_flushes_and_exits_zero),
    };
    return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
