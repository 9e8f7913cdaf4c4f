/* Self-test of tests/support/receiver: a real HTTP/1.1 server on loopback,
 * driven by libcurl and by raw sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/http.h"
#include "support/receiver.h"
#include "support/testenv.h"

#define TIMEOUT_MS 5000

static void url_of(char *buf, size_t len, struct receiver *r, const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", receiver_port(r), path);
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* A curl easy handle that POSTs `body` to `url` and throws the answer away. */
static CURL *post_handle(const char *url, const char *body, struct curl_slist *hdrs)
{
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    return h;
}

static long perform_status(CURL *h)
{
    long status = 0;
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* Raw client: connect to the receiver. */
static int raw_connect(struct receiver *r)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)receiver_port(r))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read until the peer closes or timeout_ms passes; returns what came
 * (malloc'd, NUL-terminated) and sets *closed. */
static char *raw_read_all(int fd, int timeout_ms, int *closed)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    long long deadline = testenv_now_ms() + timeout_ms;
    *closed = 0;
    while (len + 1 < cap) {
        long long left = deadline - testenv_now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0) {
            *closed = 1;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void post_records_body_and_headers(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    char url[128];
    url_of(url, sizeof(url), r, "/hook/events?x=1");
    struct http_resp resp;
    assert_int_equal(http_call("POST", url, "tok123", "{\"a\":1}", NULL, TIMEOUT_MS, &resp), 0);
    assert_int_equal(resp.status, 200);
    http_resp_free(&resp);

    assert_int_equal(receiver_wait(r, 1, TIMEOUT_MS), 1);
    struct receiver_req q;
    assert_int_equal(receiver_get(r, 0, &q), 0);
    assert_string_equal(q.method, "POST");
    assert_string_equal(q.path, "/hook/events?x=1");
    assert_int_equal(q.len, 7);
    assert_string_equal(q.body, "{\"a\":1}");
    assert_string_equal(receiver_req_header(&q, "content-type"), "application/json");
    assert_string_equal(receiver_req_header(&q, "AUTHORIZATION"), "Bearer tok123");
    assert_string_equal(receiver_req_header(&q, "Content-Length"), "7");
    assert_null(receiver_req_header(&q, "X-Absent"));
    assert_int_equal(q.status, 200);
    assert_int_equal(q.continued, 0);
    assert_int_equal(q.conn, 1);
    assert_true(q.t > 0 && q.t <= testenv_now());
    receiver_req_free(&q);

    assert_int_equal(receiver_get(r, 1, &q), -1);
    receiver_clear(r);
    assert_int_equal(receiver_count(r), 0);
    assert_int_equal(receiver_get(r, 0, &q), -1);
    receiver_stop(r);
}

static void keep_alive_reuses_one_connection(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    char url[128];
    url_of(url, sizeof(url), r, "/ka");
    CURL *h = post_handle(url, "one", NULL);
    assert_int_equal(perform_status(h), 200);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "two");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 3L);
    assert_int_equal(perform_status(h), 200);
    curl_easy_cleanup(h);

    assert_int_equal(receiver_wait(r, 2, TIMEOUT_MS), 2);
    struct receiver_req a, b;
    assert_int_equal(receiver_get(r, 0, &a), 0);
    assert_int_equal(receiver_get(r, 1, &b), 0);
    assert_string_equal(a.body, "one");
    assert_string_equal(b.body, "two");
    assert_int_equal(a.conn, b.conn);
    assert_true(b.t >= a.t);
    receiver_req_free(&a);
    receiver_req_free(&b);
    assert_int_equal(receiver_connections(r), 1);
    receiver_stop(r);
}

static void script_answers_in_order_then_set_status(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    char url[128];
    url_of(url, sizeof(url), r, "/s");
    const int script[] = {500, 200};
    receiver_script(r, script, 2);
    receiver_set_status(r, 404);
    const long want[] = {500, 200, 404, 404};
    for (size_t i = 0; i < 4; i++) {
        struct http_resp resp;
        assert_int_equal(http_call("POST", url, NULL, "x", NULL, TIMEOUT_MS, &resp), 0);
        assert_int_equal(resp.status, want[i]);
        if (want[i] == 500)
            assert_string_equal(resp.body, "500 Internal Server Error\n");
        http_resp_free(&resp);
        struct receiver_req q;
        assert_int_equal(receiver_get(r, i, &q), 0);
        assert_int_equal(q.status, want[i]);
        receiver_req_free(&q);
    }
    receiver_stop(r);
}

static void silent_request_times_out_on_client(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    receiver_set_silent(r, 1);
    char url[128];
    url_of(url, sizeof(url), r, "/quiet");
    struct http_resp resp;
    double t0 = testenv_now();
    assert_int_equal(http_call("POST", url, NULL, "ping", NULL, 300, &resp), -1);
    assert_true(testenv_now() - t0 >= 0.25);
    assert_int_equal(resp.status, 0);
    http_resp_free(&resp);
    assert_int_equal(receiver_wait(r, 1, TIMEOUT_MS), 1);
    struct receiver_req q;
    assert_int_equal(receiver_get(r, 0, &q), 0);
    assert_string_equal(q.body, "ping");
    assert_int_equal(q.status, 0);
    receiver_req_free(&q);

    /* a silent connection left open does not hold up receiver_stop */
    int fd = raw_connect(r);
    raw_send(fd, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(receiver_wait(r, 2, TIMEOUT_MS), 2);
    t0 = testenv_now();
    receiver_stop(r);
    assert_true(testenv_now() - t0 < 2.0);
    close(fd);
}

struct feed {
    const char *data;
    size_t len, pos, step;
};

static size_t feed_read(char *buf, size_t sz, size_t n, void *ud)
{
    struct feed *f = ud;
    size_t take = f->len - f->pos;
    if (take > f->step)
        take = f->step;
    if (take > sz * n)
        take = sz * n;
    memcpy(buf, f->data + f->pos, take);
    f->pos += take;
    return take;
}

static void chunked_body_is_decoded(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    char url[128];
    url_of(url, sizeof(url), r, "/chunked");
    size_t len = 100000;
    char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + i % 26);
    struct feed f = {data, len, 0, 777};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    hdrs = curl_slist_append(hdrs, "Expect:");
    CURL *h = post_handle(url, NULL, hdrs);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, feed_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &f);
    assert_int_equal(perform_status(h), 200);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);

    assert_int_equal(receiver_wait(r, 1, TIMEOUT_MS), 1);
    struct receiver_req q;
    assert_int_equal(receiver_get(r, 0, &q), 0);
    assert_string_equal(receiver_req_header(&q, "transfer-encoding"), "chunked");
    assert_null(receiver_req_header(&q, "Content-Length"));
    assert_int_equal(q.len, len);
    assert_memory_equal(q.body, data, len);
    assert_int_equal(q.body[len], '\0');
    receiver_req_free(&q);
    free(data);

    /* chunk extensions, trailers, framing split across writes, and a
     * second request on the same connection */
    int fd = raw_connect(r);
    raw_send(fd, "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi");
    testenv_sleep_ms(20);
    raw_send(fd, "ki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n");
    raw_send(fd, "POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    int closed;
    char *got = raw_read_all(fd, TIMEOUT_MS, &closed);
    close(fd);
    assert_true(closed);
    assert_int_equal(count_of(got, "HTTP/1.1 200 OK\r\n"), 2);
    assert_int_equal(count_of(got, "Connection: close\r\n"), 1);
    free(got);
    assert_int_equal(receiver_wait(r, 3, TIMEOUT_MS), 3);
    struct receiver_req a, b;
    assert_int_equal(receiver_get(r, 1, &a), 0);
    assert_int_equal(receiver_get(r, 2, &b), 0);
    assert_string_equal(a.body, "Wikipedia");
    assert_null(receiver_req_header(&a, "X-Trailer"));
    assert_string_equal(b.path, "/u");
    assert_string_equal(b.body, "ok");
    assert_int_equal(a.conn, b.conn);
    receiver_req_free(&a);
    receiver_req_free(&b);
    receiver_stop(r);
}

static void expect_100_continue_is_answered(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    char url[128];
    url_of(url, sizeof(url), r, "/expect");
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect: 100-continue");
    CURL *h = post_handle(url, "hello", hdrs);
    /* without our 100 Continue curl would wait this long before sending */
    curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
    double t0 = testenv_now();
    assert_int_equal(perform_status(h), 200);
    assert_true(testenv_now() - t0 < 5.0);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);

    struct receiver_req q;
    assert_int_equal(receiver_get(r, 0, &q), 0);
    assert_string_equal(receiver_req_header(&q, "Expect"), "100-continue");
    assert_int_equal(q.continued, 1);
    assert_string_equal(q.body, "hello");
    receiver_req_free(&q);
    receiver_stop(r);
}

static void delay_holds_only_its_connection(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    receiver_set_delay_ms(r, 500);
    char url[128];
    url_of(url, sizeof(url), r, "/slow");
    struct http_batch_item items[2] = {{.method = "POST", .url = url, .body = "1"},
                                       {.method = "POST", .url = url, .body = "2"}};
    double t0 = testenv_now();
    assert_int_equal(http_batch(items, 2, NULL, 2, TIMEOUT_MS), 0);
    double took = testenv_now() - t0;
    assert_true(took >= 0.45);
    assert_true(took < 0.95); /* both waited at the same time */
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(items[i].resp.status, 200);
        http_resp_free(&items[i].resp);
    }
    assert_int_equal(receiver_connections(r), 2);
    receiver_stop(r);
}

static void many_concurrent_keep_alive_connections(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    char url[128];
    url_of(url, sizeof(url), r, "/many");
    enum { N = 640, CONNS = 64 };
    struct http_batch_item *items = calloc(N, sizeof(*items));
    for (size_t i = 0; i < N; i++) {
        items[i].method = "POST";
        items[i].url = url;
        items[i].body = "{}";
    }
    assert_int_equal(http_batch(items, N, NULL, CONNS, 20000), 0);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(items[i].resp.status, 200);
        http_resp_free(&items[i].resp);
    }
    free(items);
    assert_int_equal(receiver_wait(r, N, TIMEOUT_MS), N);
    assert_true(receiver_connections(r) <= CONNS);
    receiver_stop(r);
}

static void oversized_body_gets_413_and_close(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    int fd = raw_connect(r);
    raw_send(fd, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 16777217\r\n\r\nabc");
    int closed;
    char *got = raw_read_all(fd, TIMEOUT_MS, &closed);
    close(fd);
    assert_true(closed);
    assert_non_null(strstr(got, "HTTP/1.1 413 "));
    free(got);

    fd = raw_connect(r);
    raw_send(fd, "NOT-HTTP\r\n\r\n");
    got = raw_read_all(fd, TIMEOUT_MS, &closed);
    close(fd);
    assert_true(closed);
    assert_non_null(strstr(got, "HTTP/1.1 400 "));
    free(got);

    assert_int_equal(receiver_rejected(r), 2);
    assert_int_equal(receiver_count(r), 0);
    receiver_stop(r);
}

static void status_zero_drops_the_connection(void **state)
{
    (void)state;
    struct receiver *r = receiver_start();
    assert_non_null(r);
    const int script[] = {0};
    receiver_script(r, script, 1);
    int fd = raw_connect(r);
    raw_send(fd, "GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
    int closed;
    char *got = raw_read_all(fd, TIMEOUT_MS, &closed);
    close(fd);
    assert_true(closed);
    assert_string_equal(got, "");
    free(got);

    /* HTTP/1.0 without keep-alive is answered, then closed; HEAD has no body */
    fd = raw_connect(r);
    raw_send(fd, "HEAD /ten HTTP/1.0\r\n\r\n");
    got = raw_read_all(fd, TIMEOUT_MS, &closed);
    close(fd);
    assert_true(closed);
    assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(got, "Connection: close\r\n"));
    assert_non_null(strstr(got, "\r\n\r\n"));
    assert_string_equal(strstr(got, "\r\n\r\n"), "\r\n\r\n");
    free(got);

    assert_int_equal(receiver_count(r), 2);
    struct receiver_req q;
    assert_int_equal(receiver_get(r, 0, &q), 0);
    assert_int_equal(q.status, 0);
    assert_int_equal(q.len, 0);
    assert_string_equal(q.body, "");
    receiver_req_free(&q);
    assert_int_equal(receiver_connections(r), 2);
    receiver_stop(r);
}

static int setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(post_records_body_and_headers),
        cmocka_unit_test(keep_alive_reuses_one_connection),
        cmocka_unit_test(script_answers_in_order_then_set_status),
        cmocka_unit_test(silent_request_times_out_on_client),
        cmocka_unit_test(chunked_body_is_decoded),
        cmocka_unit_test(expect_100_continue_is_answered),
        cmocka_unit_test(delay_holds_only_its_connection),
        cmocka_unit_test(many_concurrent_keep_alive_connections),
        cmocka_unit_test(oversized_body_gets_413_and_close),
        cmocka_unit_test(status_zero_drops_the_connection),
    };
    return cmocka_run_group_tests_name("receiver", tests, setup, teardown);
}
