/* Unit tests for src/http/h1: request heads and bodies off the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "support/h1_drive.h"

/* Parse a whole head; 0 or the error's status (*e filled). */
static int parse(const char *head, struct h1_head *h, struct h1_error *e)
{
    size_t from = 0;
    ssize_t n = h1_head_end(head, strlen(head), &from, e);
    if (n < 0)
        return e->status;
    assert_int_equal(n, (ssize_t)strlen(head));
    return h1_head_parse(head, (size_t)n, h, e) == 0 ? 0 : e->status;
}

/* The stream fed whole, a byte at a time and 7 at a time: the same story
 * each way, returned (caller frees). */
static char *drive(const char *stream, size_t len)
{
    struct strbuf a, b, c;
    strbuf_init(&a, 0);
    strbuf_init(&b, 0);
    strbuf_init(&c, 0);
    h1_drive(stream, len, 0, &a);
    h1_drive(stream, len, 1, &b);
    h1_drive(stream, len, 7, &c);
    assert_string_equal(a.data, b.data);
    assert_string_equal(a.data, c.data);
    strbuf_release(&b);
    strbuf_release(&c);
    return strbuf_detach(&a, NULL);
}

static void a_head_is_read_with_its_headers(void **state)
{
    (void)state;
    struct h1_head h;
    struct h1_error e;
    assert_int_equal(parse("POST /v1/actions/Ping?x=1&y=%20 HTTP/1.1\r\nHost: a\r\n"
                           "content-type:  application/json \t\r\nX-Empty:\r\n"
                           "X-Twice: 1\r\nX-Twice: 2\r\nContent-Length: 002\r\n\r\n",
                           &h, &e),
                     0);
    assert_string_equal(h.method, "POST");
    assert_string_equal(h.target, "/v1/actions/Ping?x=1&y=%20");
    assert_int_equal(h1_path_len(&h), strlen("/v1/actions/Ping"));
    assert_string_equal(h1_query(&h), "x=1&y=%20");
    assert_int_equal(h.minor, 1);
    assert_string_equal(h1_header(&h, "Content-Type"), "application/json");
    assert_string_equal(h1_header(&h, "x-empty"), "");
    assert_string_equal(h1_header(&h, "X-Twice"), "1");
    assert_null(h1_header(&h, "X-None"));
    assert_true(h.has_length);
    assert_int_equal(h.length, 2);
    assert_false(h.chunked);
    assert_true(h.keep_alive);
    assert_false(h.expect_continue);
    h1_head_free(&h);
    /* no query */
    assert_int_equal(parse("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", &h, &e), 0);
    assert_null(h1_query(&h));
    assert_int_equal(h1_path_len(&h), 8);
    h1_head_free(&h);
}

static void keep_alive_follows_the_version_and_connection(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        int keep, expect;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", 0, 0},
        {"GET / HTTP/1.0\r\n\r\n", 0, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 1, 1},
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 0, 0},
        /* HTTP/1.x past 1.1 is read as 1.1 */
        {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct h1_head h;
        struct h1_error e;
        if (parse(cases[i].head, &h, &e) != 0)
            fail_msg("case %zu refused: %s", i, e.detail);
        if (h.keep_alive != cases[i].keep || h.expect_continue != cases[i].expect)
            fail_msg("case %zu: keep %d expect %d", i, h.keep_alive, h.expect_continue);
        h1_head_free(&h);
    }
}

static void the_end_of_a_head_is_found_across_reads(void **state)
{
    (void)state;
    const char *head = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nnext";
    size_t whole = strlen(head) - 4;
    struct h1_error e;
    /* byte by byte, resuming where the last scan stopped */
    size_t from = 0;
    for (size_t len = 1; len <= strlen(head); len++) {
        ssize_t n = h1_head_end(head, len, &from, &e);
        if (len < whole)
            assert_int_equal(n, 0);
        else
            assert_int_equal(n, (ssize_t)whole);
        if (n)
            break;
    }
    /* the empty lines before it are skipped by the parse */
    struct h1_head h;
    assert_int_equal(h1_head_parse(head, whole, &h, &e), 0);
    assert_string_equal(h.method, "GET");
    h1_head_free(&h);
    /* only empty lines: no head yet */
    from = 0;
    assert_int_equal(h1_head_end("\r\n\r\n\r\n", 6, &from, &e), 0);
}

static void heads_past_8_kib_and_bare_line_feeds_are_refused(void **state)
{
    (void)state;
    static char big[H1_HEAD_MAX + 100];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(big + n, 'a', sizeof(big) - (size_t)n - 1);
    struct h1_error e;
    size_t from = 0;
    assert_int_equal(h1_head_end(big, H1_HEAD_MAX - 1, &from, &e), 0);
    assert_int_equal(h1_head_end(big, sizeof(big) - 1, &from, &e), -1);
    assert_int_equal(e.status, 431);
    assert_string_equal(e.slug, "header-too-large");
    /* a head of exactly 8 KiB is fine */
    memcpy(big + H1_HEAD_MAX - 4, "\r\n\r\n", 4);
    from = 0;
    assert_int_equal(h1_head_end(big, sizeof(big) - 1, &from, &e), H1_HEAD_MAX);
    static const char *const bare[] = {
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
        from = 0;
        assert_int_equal(h1_head_end(bare[i], strlen(bare[i]), &from, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.slug, "bad-framing");
    }
}

static void what_could_frame_two_requests_is_refused(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        int status;
        const char *slug;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", 400,
         "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
         400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "chunked\r\n\r\n",
         400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400,
         "bad-framing"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400,
         "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tX-C: d\r\n\r\n", 400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\n: novalue\r\n\r\n", 400, "bad-framing"},
        {"POST / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n", 400, "bad-request"},
        {"POST / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400, "bad-request"},
        {"GET / HTTP/1.1\r\n\r\n", 400, "bad-request"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad-request"},
        {"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad-request"},
        {"GET /a?b=c d HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad-request"},
        {"GET /a\001 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad-request"},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad-request"},
        {"GET /\r\n\r\n", 400, "bad-request"},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "bad-request"},
        {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad-request"},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "http-version-not-supported"},
        {"GET / FTP/1.1\r\nHost: a\r\n\r\n", 400, "bad-request"},
    };
    /* a NUL byte anywhere: a C string would end there */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\0 9\r\n\r\n";
    struct h1_head h;
    struct h1_error e;
    assert_int_equal(h1_head_parse(nul, sizeof(nul) - 1, &h, &e), -1);
    assert_int_equal(e.status, 400);
    h1_head_free(&h);
    /* other control bytes in a value are the handlers' to judge */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\001\033\177\r\n\r\n", &h, &e), 0);
    assert_string_equal(h1_header(&h, "X-A"), "b\001\033\177");
    h1_head_free(&h);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&e, 0, sizeof(e));
        int st = parse(cases[i].head, &h, &e);
        if (st != cases[i].status || strcmp(e.slug, cases[i].slug))
            fail_msg("case %zu: %d %s (%s)", i, st, st ? e.slug : "", st ? e.detail : "");
        h1_head_free(&h);
    }
}

static void a_content_length_is_digits_that_fit_in_64_bits(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int status;
        uint64_t n;
    } cases[] = {
        {"0", 0, 0},
        {"002", 0, 2},
        {"  7", 0, 7},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", 413, 0},
        {"99999999999999999999999", 413, 0},
        {"abc", 400, 0},
        {"", 400, 0},
        {" ", 400, 0},
        {"-1", 400, 0},
        {"1 2", 400, 0},
        {"2 ", 400, 0},
        {"+2", 400, 0},
        {"0x2", 400, 0},
        {"2,2", 400, 0},
        {"99999999999999999999999x", 400, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char head[256];
        snprintf(head, sizeof(head), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n",
                 cases[i].value);
        struct h1_head h;
        struct h1_error e;
        int st = parse(head, &h, &e);
        if (st != cases[i].status || (!st && h.length != cases[i].n))
            fail_msg("Content-Length '%s': %d", cases[i].value, st);
        if (st)
            assert_string_equal(e.slug, st == 413 ? "payload-too-large" : "bad-framing");
        h1_head_free(&h);
    }
}

static void bodies_are_read_the_same_however_they_arrive(void **state)
{
    (void)state;
    static const struct {
        const char *stream, *story;
    } cases[] = {
        {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: "
         "x\r\n\r\n",
         "POST /a 1.1 keep=1 body=3:abc\nGET /b 1.1 keep=1 body=0:\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
         "A;name=\"v\"\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n"
         "Connection: close\r\n\r\n",
         "POST /a 1.1 keep=1 body=13:abc0123456789\nGET /b 1.1 keep=0 body=0:\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "POST /a 1.1 keep=1 body=0:\nleft 0\n"},
        /* a body still coming, and the start of the next head */
        {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", "left 0\n"},
        {"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HT", "GET /a 1.1 keep=1 body=0:\nleft 9\n"},
        /* malformed chunks */
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
         "error 400 bad-framing\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
         "error 400 bad-framing\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
         "error 400 bad-framing\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n",
         "error 400 bad-framing\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1000000000000000\r\n",
         "error 400 bad-framing\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n",
         "error 400 bad-framing\nleft 0\n"},
        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\r",
         "error 400 bad-framing\nleft 0\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *story = drive(cases[i].stream, strlen(cases[i].stream));
        if (strcmp(story, cases[i].story))
            fail_msg("case %zu:\n%s", i, story);
        free(story);
    }
}

static void long_chunk_lines_and_trailers_are_refused(void **state)
{
    (void)state;
    static char s[3 * H1_TRAILER_MAX];
    const char *head = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    /* extensions past 1 KiB */
    int n = snprintf(s, sizeof(s), "%s1;", head);
    memset(s + n, 'e', H1_CHUNK_LINE_MAX + 10);
    memcpy(s + n + H1_CHUNK_LINE_MAX + 10, "\r\nx\r\n0\r\n\r\n", 11);
    char *story = drive(s, strlen(s));
    assert_string_equal(story, "error 400 bad-framing\nleft 0\n");
    free(story);
    /* trailers past 8 KiB */
    n = snprintf(s, sizeof(s), "%s0\r\n", head);
    for (int i = 0; i < H1_TRAILER_MAX / 10 + 2; i++)
        n += snprintf(s + n, sizeof(s) - (size_t)n, "X-T: 1234\r\n");
    snprintf(s + n, sizeof(s) - (size_t)n, "\r\n");
    story = drive(s, strlen(s));
    assert_string_equal(story, "error 400 bad-framing\nleft 0\n");
    free(story);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_head_is_read_with_its_headers),
        cmocka_unit_test(keep_alive_follows_the_version_and_connection),
        cmocka_unit_test(the_end_of_a_head_is_found_across_reads),
        cmocka_unit_test(heads_past_8_kib_and_bare_line_feeds_are_refused),
        cmocka_unit_test(what_could_frame_two_requests_is_refused),
        cmocka_unit_test(a_content_length_is_digits_that_fit_in_64_bits),
        cmocka_unit_test(bodies_are_read_the_same_however_they_arrive),
        cmocka_unit_test(long_chunk_lines_and_trailers_are_refused),
    };
    return cmocka_run_group_tests_name("http_h1", tests, NULL, NULL);
}
