/* Unit tests for bus/webhook_http: attempts made by libcurl on a libuv
 * loop in this process, against a real HTTP receiver (support/receiver)
 * over real sockets. The headers and both signatures as received, a
 * keep-alive connection reused and the scheme followed attempt by
 * attempt, the outcome of each kind of answer, the attempt timeout, the
 * SSRF guard on the connected address, a closed port, and a cancelled
 * attempt that never reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "bus/webhook_http.h"
#include "bus/webhook_sub.h"
#include "core/netlist.h"
#include "support/proc.h"
#include "support/receiver.h"
#include "support/testenv.h"

#define TIMEOUT_MS 300 /* per attempt */
#define SECRET     "0123456789abcdef-test-secret"
#define DELIVERY   "00112233445566778899aabbccddeeff"
#define BODY       "{\"event\":\"Hangup\",\"seq\":7,\"fields\":{\"Channel\":\"PJSIP/201-00000001\"}}"

/* One attempt's handle and what it came to. */
struct attempt {
    struct wh_xfer x;
    int done;
    CURLcode rc;
    long status;
    char outcome[16];
    char err[192];
    double seconds;
};

static uv_loop_t loop;
static uv_timer_t wake; /* so that run_until looks at the clock */
static struct netlist_net *allow;
static size_t nallow;
static struct wh_http *http;
static struct receiver *rv;

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

static void on_done(struct wh_xfer *x, CURLcode rc, long status)
{
    struct attempt *a = x->owner;
    a->done++;
    a->rc = rc;
    a->status = status;
    a->seconds = wh_xfer_seconds(x);
    snprintf(a->outcome, sizeof(a->outcome), "%s",
             wh_xfer_outcome(x, rc, status, a->err, sizeof(a->err)));
}

static void run_until(const int *flag, int want, int timeout_ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)timeout_ms;
    while (*flag < want && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static void run_for(int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;
    while (uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
}

/* The loop, a receiver and a wh_http; `nets` the allow list ("" none). */
static int open_with(const char *nets)
{
    char err[128];
    allow = NULL;
    nallow = 0;
    if (nets[0] && netlist_parse(nets, &allow, &nallow, err, sizeof(err)) != 0)
        return -1;
    uv_loop_init(&loop);
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    http = wh_http_new(&loop, allow, nallow, TIMEOUT_MS);
    rv = receiver_start();
    return http && rv ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    return open_with("127.0.0.0/8");
}

static int setup_no_allow(void **state)
{
    (void)state;
    return open_with("");
}

static void on_http_closed(void *arg)
{
    (*(int *)arg)++;
}

static int teardown(void **state)
{
    (void)state;
    int closed = 0;
    wh_http_close(http, on_http_closed, &closed);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    receiver_stop(rv);
    free(allow);
    return 0;
}

static void conf_for(struct wh_conf *c, int port, enum wh_scheme scheme)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "wh_0011223344556677");
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    c->url = strdup(url);
    c->secret = strdup(SECRET);
    c->scheme = scheme;
    c->enabled = 1;
    assert_non_null(c->url);
    assert_non_null(c->secret);
}

static void attempt_init(struct attempt *a)
{
    memset(a, 0, sizeof(*a));
    assert_int_equal(wh_xfer_init(http, &a->x, a, on_done), 0);
}

static void start(struct attempt *a, const struct wh_conf *c, int attempt_no)
{
    a->done = 0;
    assert_int_equal(wh_xfer_start(&a->x, c, "Hangup", DELIVERY, attempt_no, BODY, strlen(BODY)),
                     0);
    /* never from inside the start */
    assert_int_equal(a->done, 0);
}

static void an_attempt_posts_the_event_signed_with_both_schemes(void **state)
{
    (void)state;
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, receiver_port(rv), WH_SCHEME_BOTH);
    attempt_init(&a);
    long long before = (long long)time(NULL);
    start(&a, &c, 3);
    run_until(&a.done, 1, 5000);
    assert_int_equal(a.done, 1);
    assert_int_equal(a.rc, CURLE_OK);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.outcome, "2xx");
    assert_string_equal(a.err, "");

    struct receiver_req q;
    assert_int_equal(receiver_get(rv, 0, &q), 0);
    assert_string_equal(q.method, "POST");
    assert_string_equal(q.path, "/hook");
    assert_string_equal(q.body, BODY);
    assert_string_equal(receiver_req_header(&q, "Content-Type"), "application/json");
    assert_null(receiver_req_header(&q, "Expect"));
    assert_string_equal(receiver_req_header(&q, "X-Amibridge-Event"), "Hangup");
    assert_string_equal(receiver_req_header(&q, "X-Amibridge-Webhook"), c.id);
    assert_string_equal(receiver_req_header(&q, "X-Amibridge-Attempt"), "3");
    assert_string_equal(receiver_req_header(&q, "X-Amibridge-Delivery"), DELIVERY);
    assert_string_equal(receiver_req_header(&q, "webhook-id"), DELIVERY);
    /* one timestamp for both schemes, taken when the attempt started */
    const char *ts = receiver_req_header(&q, "X-Amibridge-Timestamp");
    assert_non_null(ts);
    assert_string_equal(receiver_req_header(&q, "webhook-timestamp"), ts);
    long long t = atoll(ts);
    assert_true(t >= before && t <= (long long)time(NULL));
    /* the signatures are of what arrived */
    char sig[WH_SIGNATURE_LEN + 1], std[WH_STD_SIG_LEN + 1];
    assert_int_equal(wh_sign(SECRET, ts, q.body, q.len, sig), 0);
    assert_string_equal(receiver_req_header(&q, "X-Amibridge-Signature"), sig);
    assert_int_equal(wh_sign_v1(SECRET, DELIVERY, ts, q.body, q.len, std), 0);
    assert_string_equal(receiver_req_header(&q, "webhook-signature"), std);
    receiver_req_free(&q);

    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

static void the_next_attempt_reuses_the_connection_and_follows_the_scheme(void **state)
{
    (void)state;
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, receiver_port(rv), WH_SCHEME_STANDARD);
    attempt_init(&a);
    start(&a, &c, 1);
    run_until(&a.done, 1, 5000);
    assert_string_equal(a.outcome, "2xx");
    c.scheme = WH_SCHEME_AMIBRIDGE;
    start(&a, &c, 2);
    run_until(&a.done, 1, 5000);
    assert_string_equal(a.outcome, "2xx");

    assert_int_equal(receiver_count(rv), 2);
    assert_int_equal(receiver_connections(rv), 1);
    struct receiver_req q1, q2;
    assert_int_equal(receiver_get(rv, 0, &q1), 0);
    assert_int_equal(receiver_get(rv, 1, &q2), 0);
    assert_int_equal(q1.conn, q2.conn);
    /* standard: webhook-* only */
    assert_non_null(receiver_req_header(&q1, "webhook-signature"));
    assert_null(receiver_req_header(&q1, "X-Amibridge-Signature"));
    assert_null(receiver_req_header(&q1, "X-Amibridge-Delivery"));
    /* amibridge: X-Amibridge-* only */
    assert_null(receiver_req_header(&q2, "webhook-signature"));
    assert_null(receiver_req_header(&q2, "webhook-id"));
    assert_non_null(receiver_req_header(&q2, "X-Amibridge-Signature"));
    assert_string_equal(receiver_req_header(&q2, "X-Amibridge-Attempt"), "2");
    receiver_req_free(&q1);
    receiver_req_free(&q2);

    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

static void each_kind_of_answer_gets_its_outcome_and_the_start_of_its_body(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *outcome, *err;
    } cases[] = {
        {204, "2xx", ""},
        {302, "3xx", "HTTP 302: 302 Found"},
        {410, "4xx", "HTTP 410: 410 Gone"},
        {503, "5xx", "HTTP 503: 503 Service Unavailable"},
    };
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, receiver_port(rv), WH_SCHEME_BOTH);
    attempt_init(&a);
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        receiver_set_status(rv, cases[i].status);
        start(&a, &c, 1);
        run_until(&a.done, 1, 5000);
        assert_int_equal(a.done, 1);
        assert_int_equal(a.rc, CURLE_OK);
        assert_int_equal(a.status, cases[i].status);
        assert_string_equal(a.outcome, cases[i].outcome);
        /* the answer's start, made printable */
        if (strncmp(a.err, cases[i].err, strlen(cases[i].err)))
            fail_msg("status %d: error '%s', want it to begin '%s'", cases[i].status, a.err,
                     cases[i].err);
    }
    /* one request per attempt */
    assert_int_equal(receiver_count(rv), sizeof(cases) / sizeof(*cases));
    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

static void a_silent_receiver_times_out_after_the_attempt_timeout(void **state)
{
    (void)state;
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, receiver_port(rv), WH_SCHEME_BOTH);
    attempt_init(&a);
    receiver_set_silent(rv, 1);
    double t0 = testenv_now();
    start(&a, &c, 1);
    run_until(&a.done, 1, 5000);
    double took = testenv_now() - t0;
    assert_int_equal(a.done, 1);
    assert_int_equal(a.rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(a.status, 0);
    assert_string_equal(a.outcome, "timeout");
    assert_string_equal(a.err, "no answer within 300 ms");
    /* the request did arrive; the attempt ended at its timeout, not before */
    assert_int_equal(receiver_count(rv), 1);
    if (took < TIMEOUT_MS / 1000.0 - 0.02 || took > 2.0)
        fail_msg("the attempt ended after %.3f s (timeout %d ms)", took, TIMEOUT_MS);
    assert_true(a.seconds >= TIMEOUT_MS / 1000.0 - 0.02);
    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

static void a_loopback_target_is_refused_when_no_net_allows_it(void **state)
{
    (void)state;
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, receiver_port(rv), WH_SCHEME_BOTH);
    attempt_init(&a);
    start(&a, &c, 1);
    run_until(&a.done, 1, 5000);
    assert_int_equal(a.done, 1);
    assert_string_equal(a.outcome, "refused");
    if (!strstr(a.err, "refused by the SSRF guard: 127.0.0.1 is a "))
        fail_msg("error: %s", a.err);
    /* refused before connecting: the receiver never saw a connection */
    testenv_sleep_ms(50);
    assert_int_equal(receiver_connections(rv), 0);
    assert_int_equal(receiver_count(rv), 0);
    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

static void a_closed_port_is_an_error_at_once(void **state)
{
    (void)state;
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, proc_free_port(), WH_SCHEME_BOTH);
    attempt_init(&a);
    double t0 = testenv_now();
    start(&a, &c, 1);
    run_until(&a.done, 1, 5000);
    assert_int_equal(a.done, 1);
    assert_int_equal(a.rc, CURLE_COULDNT_CONNECT);
    assert_string_equal(a.outcome, "error");
    assert_true(a.err[0] != '\0');
    assert_true(testenv_now() - t0 < TIMEOUT_MS / 1000.0);
    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

static void a_cancelled_attempt_never_reports_and_the_handle_goes_again(void **state)
{
    (void)state;
    struct wh_conf c;
    struct attempt a;
    conf_for(&c, receiver_port(rv), WH_SCHEME_BOTH);
    attempt_init(&a);
    receiver_set_silent(rv, 1);
    start(&a, &c, 1);
    uint64_t end = uv_now(&loop) + 5000;
    while (receiver_count(rv) < 1 && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(receiver_count(rv), 1);
    wh_xfer_cancel(&a.x);
    /* past the attempt timeout: still nothing */
    run_for(2 * TIMEOUT_MS);
    assert_int_equal(a.done, 0);
    /* the same handle makes the next attempt */
    receiver_set_silent(rv, 0);
    start(&a, &c, 2);
    run_until(&a.done, 1, 5000);
    assert_int_equal(a.done, 1);
    assert_string_equal(a.outcome, "2xx");
    assert_int_equal(receiver_count(rv), 2);
    wh_xfer_cleanup(&a.x);
    wh_conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_attempt_posts_the_event_signed_with_both_schemes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            the_next_attempt_reuses_the_connection_and_follows_the_scheme, setup, teardown),
        cmocka_unit_test_setup_teardown(
            each_kind_of_answer_gets_its_outcome_and_the_start_of_its_body, setup, teardown),
        cmocka_unit_test_setup_teardown(a_silent_receiver_times_out_after_the_attempt_timeout,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_loopback_target_is_refused_when_no_net_allows_it,
                                        setup_no_allow, teardown),
        cmocka_unit_test_setup_teardown(a_closed_port_is_an_error_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_attempt_never_reports_and_the_handle_goes_again,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
