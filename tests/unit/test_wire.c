/* Unit tests for src/http/wire (following the request framing on the wire
 * before libmicrohttpd parses it): the pure scanner on streams split at
 * every byte, and the recv() glue on a real socket pair with a parser's
 * buffer smaller than a line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/wire.h"

/* Feed in[0..n) to a scanner in pieces cut at cuts[] (ascending), holding
 * back what it holds back as the recv() glue does; what the parser would
 * read goes to out. */
static void feed(struct wire_scan *s, const char *in, size_t n, const size_t *cuts, size_t ncuts,
                 char *out, size_t *nout)
{
    char pending[4096];
    size_t npend = 0, from = 0;
    *nout = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        memcpy(pending + npend, in + from, to - from);
        npend += to - from;
        from = to;
        size_t keep = wire_scan(s, pending, npend);
        assert_true(keep <= npend);
        assert_true(npend - keep < WIRE_LINE_MAX);
        memcpy(out + *nout, pending, keep);
        *nout += keep;
        memmove(pending, pending + keep, npend - keep);
        npend -= keep;
    }
    /* the end of the stream: what is held goes on */
    memcpy(out + *nout, pending, npend);
    *nout += npend;
}

struct expect {
    const char *in;
    unsigned nreq;       /* request heads in it */
    enum wire_flaw flaw; /* the first flaw */
    unsigned flaw_req;   /* in that request */
    const char *renamed; /* the line that must reach the parser renamed, or NULL */
};

/* Split at every single byte, and delivered a byte at a time: the same
 * verdict, and the parser sees the same bytes but for the renamed line. */
static void check_n(const struct expect *e, size_t n)
{
    char want[4096];
    assert_true(n < sizeof(want));
    memcpy(want, e->in, n);
    if (e->renamed) {
        char *at = memmem(want, n, e->renamed, strlen(e->renamed));
        assert_non_null(at);
        *at = WIRE_RENAMED;
    }
    size_t cuts[4096];
    for (size_t mode = 0; mode <= n + 1; mode++) {
        size_t ncuts = 0;
        if (mode == n + 1) {
            for (size_t i = 1; i < n; i++)
                cuts[ncuts++] = i;
        } else if (mode > 0 && mode < n) {
            cuts[ncuts++] = mode;
        }
        struct wire_scan s;
        wire_scan_init(&s);
        char got[4096];
        size_t ngot;
        feed(&s, e->in, n, cuts, ncuts, got, &ngot);
        if (ngot != n || memcmp(got, want, n))
            fail_msg("%s: split %zu: the parser saw other bytes", e->in, mode);
        if (s.nreq != e->nreq || s.flaw != e->flaw || (e->flaw && s.flaw_req != e->flaw_req))
            fail_msg("%s: split %zu: %u requests, flaw %d in %u", e->in, mode, s.nreq, s.flaw,
                     s.flaw_req);
    }
}

static void check(const struct expect *e)
{
    check_n(e, strlen(e->in));
}

#define GET "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

static void well_framed_requests_pass_untouched(void **state)
{
    (void)state;
    static const struct expect cases[] = {
        {GET GET, 2, WIRE_FLAW_NONE, 0, NULL},
        /* a body that looks like a head is a body */
        {"POST /a HTTP/1.1\r\nContent-Length: 21\r\n\r\n\r\nContent-Length: q\r\n" GET, 2,
         WIRE_FLAW_NONE, 0, NULL},
        {"POST /a HTTP/1.1\r\ncontent-length:\t 2\r\n\r\n{}" GET, 2, WIRE_FLAW_NONE, 0, NULL},
        {"POST /a HTTP/1.1\r\nContent-Length: 000000000000000000000000002\r\n\r\n{}" GET, 2,
         WIRE_FLAW_NONE, 0, NULL},
        /* chunked: sizes, extensions, bare LF, trailers */
        {"POST /a HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n5;a=b\r\nhello\r\n"
         "1A\nContent-Length: zzzzzzzzzz\n0\r\nX-T: v\r\n\r\n" GET,
         2, WIRE_FLAW_NONE, 0, NULL},
        /* empty lines before a request line, bare LF line ends */
        {"\r\n\r\nGET / HTTP/1.1\nHost: x\n\n" GET, 2, WIRE_FLAW_NONE, 0, NULL},
        /* names that only start like a framing header */
        {"GET / HTTP/1.1\r\nContent-Lengthy: q\r\nContent-Type: q\r\nTransfer: q\r\n\r\n", 1,
         WIRE_FLAW_NONE, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
}

static void a_content_length_mhd_would_refuse_is_renamed_and_remembered(void **state)
{
    (void)state;
    static const struct expect cases[] = {
        {"POST /a HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: abc"},
        {"POST /a HTTP/1.1\r\nContent-Length:\r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length:\r"},
        {"POST /a HTTP/1.1\r\nContent-Length: \t \r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: \t"},
        {"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: -1"},
        {"POST /a HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: 1 2"},
        /* MHD 0.9.75 keeps a trailing blank in the value */
        {"POST /a HTTP/1.1\r\nContent-Length: 2 \r\n\r\n{}", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: 2 "},
        {"POST /a HTTP/1.1\r\nCONTENT-LENGTH: +5\r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "CONTENT-LENGTH: +5"},
        {"POST /a HTTP/1.1\nContent-Length: 0x5\n\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: 0x5"},
        /* a CR that does not end the line is in the value */
        {"POST /a HTTP/1.1\r\nContent-Length: 5\r5\r\n\r\n", 1, WIRE_FLAW_MALFORMED, 1,
         "Content-Length: 5\r5"},
        {"POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 1,
         WIRE_FLAW_TOO_LARGE, 1, "Content-Length: 9999"},
        /* after well-framed requests: the flaw is the third request's */
        {GET "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
             "POST /b HTTP/1.1\r\nHost: x\r\ncontent-length: two\r\n\r\n",
         3, WIRE_FLAW_MALFORMED, 3, "content-length: two"},
        {"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
         "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
         2, WIRE_FLAW_MALFORMED, 2, "Content-Length: x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
}

struct nul_case {
    struct expect e;
    size_t len;
};
#define NUL_CASE(lit, nreq, flaw, req, renamed)                                                    \
    {                                                                                              \
        {lit, nreq, flaw, req, renamed}, sizeof(lit) - 1                                           \
    }

static void lines_are_read_as_mhd_reads_them(void **state)
{
    (void)state;
    static const struct nul_case cases[] = {
        NUL_CASE(
            "GET / HTTP/1.1\r\nHost: x\r\n\0\r\nPOST /a HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 2,
            WIRE_FLAW_MALFORMED, 2, "Content-Length: abc"),
        NUL_CASE("\0\r\n\r\nPOST /a HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 1,
                 WIRE_FLAW_MALFORMED, 1, "Content-Length: abc"),
        NUL_CASE("POST /a HTTP/1.1\r\nContent-Length: 2\0\r\n\r\n{}GET / HTTP/1.1\r\n"
                 "Content-Length: x\r\n\r\n",
                 2, WIRE_FLAW_MALFORMED, 2, "Content-Length: x"),
        NUL_CASE("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\0z\r\n\r\n2\r\n{}\r\n0\r\n"
                 "\0t\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                 2, WIRE_FLAW_MALFORMED, 2, "Content-Length: x"),
        NUL_CASE("POST /a HTTP/1.1\r\nContent-Length: 2\r\n \t\r\n\r\n{}GET / HTTP/1.1\r\n"
                 "Content-Length: x\r\n\r\n",
                 2, WIRE_FLAW_MALFORMED, 2, "Content-Length: x"),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_n(&cases[i].e, cases[i].len);
}

static void a_line_too_long_to_be_a_length_is_malformed(void **state)
{
    (void)state;
    char in[512];
    int n = snprintf(in, sizeof(in), "POST /a HTTP/1.1\r\nContent-Length: ");
    memset(in + n, '0', 200);
    snprintf(in + n + 200, sizeof(in) - (size_t)n - 200, "5\r\n\r\n");
    struct expect e = {in, 1, WIRE_FLAW_MALFORMED, 1, "Content-Length: 000"};
    check(&e);
    /* a Transfer-Encoding too long to be a good one, blanks before chunked */
    n = snprintf(in, sizeof(in), "POST /a HTTP/1.1\r\nTransfer-Encoding:");
    memset(in + n, ' ', 130);
    snprintf(in + n + 130, sizeof(in) - (size_t)n - 130, "chunked\r\n\r\n");
    struct expect te = {in, 1, WIRE_FLAW_MALFORMED, 1, "Transfer-Encoding:   "};
    check(&te);
}

static void what_cannot_frame_one_request_is_no_longer_followed(void **state)
{
    (void)state;
    /* the server refuses these heads and closes: nothing after is a request */
    static const struct expect cases[] = {
        {"POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
         "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
         1, WIRE_FLAW_NONE, 0, NULL},
        {"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\nContent-Length: "
         "x\r\n\r\n",
         1, WIRE_FLAW_NONE, 0, NULL},
        {"POST /a HTTP/1.1\r\nContent-Length: 2\r\n x\r\n\r\n{}GET / HTTP/1.1\r\nContent-"
         "Length: x\r\n\r\n",
         1, WIRE_FLAW_NONE, 0, NULL},
        /* a chunk size that is no number: MHD answers it and closes */
        {"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n"
         "Content-Length: x\r\n\r\n",
         1, WIRE_FLAW_NONE, 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(&cases[i]);
}

/* --- the recv() glue, on a real socket -------------------------------------------------------- */

/* Read fd as MHD does: `room` bytes at a time until EAGAIN. */
static size_t drain(int fd, char *out, size_t room)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, out + got, room, 0);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return got;
        }
        if (n == 0)
            return got;
        got += (size_t)n;
    }
}

static void the_glue_holds_a_split_line_back_and_judges_it_when_the_buffer_is_full(void **state)
{
    (void)state;
    static const char req[] = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                              "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: ab\r\n\r\n";
    size_t n = strlen(req);
    /* every split of the stream in two writes, read with a roomy buffer and
     * with one smaller than a line (MHD's nearly full buffer) */
    for (size_t room = 5; room <= 4096; room = room == 5 ? 4096 : 8192) {
        for (size_t cut = 1; cut < n; cut++) {
            int sv[2];
            assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
            fcntl(sv[1], F_SETFL, O_NONBLOCK);
            assert_int_equal(wire_watch(sv[1]), 0);
            char got[512];
            assert_int_equal(write(sv[0], req, cut), (ssize_t)cut);
            size_t ngot = drain(sv[1], got, room);
            assert_int_equal(write(sv[0], req + cut, n - cut), (ssize_t)(n - cut));
            ngot += drain(sv[1], got + ngot, room);
            if (ngot != n || strncmp(got, req, n - 22) ||
                strncmp(got + n - 22, "(ontent-Length: ab\r\n\r\n", 22))
                fail_msg("room %zu, cut %zu: the parser saw %.*s", room, cut, (int)ngot, got);
            assert_int_equal(wire_flaw(sv[1], 1), WIRE_FLAW_NONE);
            assert_int_equal(wire_flaw(sv[1], 2), WIRE_FLAW_MALFORMED);
            /* the end of the stream gives on what was held */
            close(sv[0]);
            assert_int_equal(drain(sv[1], got, room), 0);
            wire_forget(sv[1]);
            close(sv[1]);
        }
    }
}

/* A framing line too long to be good, split anywhere and read through a
 * buffer smaller than its name: renamed all the same (its name is taken
 * from what is held and what the socket holds next). */
static void a_long_framing_line_is_judged_by_its_whole_name(void **state)
{
    (void)state;
    char req[512];
    int n = snprintf(req, sizeof(req), "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length:");
    memset(req + n, ' ', 130);
    n += 130;
    n += snprintf(req + n, sizeof(req) - (size_t)n, "abc\r\n\r\n");
    for (size_t room = 3; room <= 4096; room = room == 3 ? 7 : room == 7 ? 4096 : 8192) {
        for (size_t cut = 1; cut < (size_t)n; cut += 3) {
            int sv[2];
            assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
            fcntl(sv[1], F_SETFL, O_NONBLOCK);
            assert_int_equal(wire_watch(sv[1]), 0);
            char got[1024];
            assert_int_equal(write(sv[0], req, cut), (ssize_t)cut);
            size_t ngot = drain(sv[1], got, room);
            assert_int_equal(write(sv[0], req + cut, (size_t)n - cut), (ssize_t)((size_t)n - cut));
            ngot += drain(sv[1], got + ngot, room);
            const char *cl = memmem(got, ngot, "ontent-Length:", 14);
            if (ngot != (size_t)n || !cl || cl[-1] != WIRE_RENAMED)
                fail_msg("room %zu, cut %zu: %zu bytes, not renamed", room, cut, ngot);
            assert_int_equal(wire_flaw(sv[1], 1), WIRE_FLAW_MALFORMED);
            close(sv[0]);
            wire_forget(sv[1]);
            close(sv[1]);
        }
    }
}

/* The client's end while a line is held: MHD sees the end at once. */
static void the_end_of_the_stream_is_never_held_back(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    assert_int_equal(wire_watch(sv[1]), 0);
    const char *head = "GET / HTTP/1.1\r\nHost: x\r\nContent-Le";
    assert_int_equal(write(sv[0], head, strlen(head)), (ssize_t)strlen(head));
    char got[256];
    size_t ngot = drain(sv[1], got, sizeof(got));
    assert_int_equal(ngot, strlen(head) - strlen("Content-Le")); /* held */
    shutdown(sv[0], SHUT_WR);
    assert_int_equal(recv(sv[1], got, sizeof(got), 0), 0);
    /* and with the end right behind the line, nothing is held */
    wire_forget(sv[1]);
    close(sv[1]);
    close(sv[0]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    assert_int_equal(wire_watch(sv[1]), 0);
    assert_int_equal(write(sv[0], head, strlen(head)), (ssize_t)strlen(head));
    shutdown(sv[0], SHUT_WR);
    assert_int_equal(recv(sv[1], got, sizeof(got), 0), (ssize_t)strlen(head));
    assert_int_equal(recv(sv[1], got, sizeof(got), 0), 0);
    wire_forget(sv[1]);
    close(sv[1]);
    close(sv[0]);
}

static void an_unwatched_socket_and_a_peek_go_straight_to_the_kernel(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    const char *line = "Content-Length: q";
    assert_int_equal(write(sv[0], line, strlen(line)), (ssize_t)strlen(line));
    char got[64];
    assert_int_equal(recv(sv[1], got, sizeof(got), MSG_PEEK), (ssize_t)strlen(line));
    assert_int_equal(recv(sv[1], got, sizeof(got), 0), (ssize_t)strlen(line));
    assert_memory_equal(got, line, strlen(line));
    assert_int_equal(wire_flaw(sv[1], 1), WIRE_FLAW_NONE);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(well_framed_requests_pass_untouched),
        cmocka_unit_test(a_content_length_mhd_would_refuse_is_renamed_and_remembered),
        cmocka_unit_test(lines_are_read_as_mhd_reads_them),
        cmocka_unit_test(a_line_too_long_to_be_a_length_is_malformed),
        cmocka_unit_test(what_cannot_frame_one_request_is_no_longer_followed),
        cmocka_unit_test(the_glue_holds_a_split_line_back_and_judges_it_when_the_buffer_is_full),
        cmocka_unit_test(a_long_framing_line_is_judged_by_its_whole_name),
        cmocka_unit_test(the_end_of_the_stream_is_never_held_back),
        cmocka_unit_test(an_unwatched_socket_and_a_peek_go_straight_to_the_kernel),
    };
    return cmocka_run_group_tests_name("http_wire", tests, NULL, NULL);
}
