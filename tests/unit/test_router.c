/* Unit tests for src/http/router and percent-decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/router.h"
#include "http/server.h"

static const struct http_route routes[] = {
    {"GET", "/healthz", "healthz", 0, NULL},
    {"POST", "/v1/actions/{action}", "actions", 8, NULL},
    {"GET", "/v1/channels/{channel}", "channel", 1, NULL},
    {"DELETE", "/v1/channels/{channel}", "hangup", 4, NULL},
    {"POST", "/v1/channels/{channel}/redirect", "redirect", 4, NULL},
    {"DELETE", "/v1/queues/{queue}/members/{interface}", "member", 4, NULL},
};
#define N (sizeof(routes) / sizeof(routes[0]))

/* One match through a router made for the table (and freed after). */
static enum http_match match(const struct http_route *table, size_t n, const char *method,
                             const char *path, const struct http_route **out,
                             struct http_params *params, char *allow, size_t allowlen)
{
    struct http_router *r = http_router_new(table, n);
    assert_non_null(r);
    enum http_match m = http_route_match(r, method, path, out, params, allow, allowlen);
    http_router_free(r);
    return m;
}

static void literal_and_captured_segments_match(void **state)
{
    (void)state;
    const struct http_route *rt;
    struct http_params p;
    char allow[64];
    assert_int_equal(match(routes, N, "GET", "/healthz", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(rt->name, "healthz");
    assert_int_equal(p.n, 0);
    assert_int_equal(match(routes, N, "POST", "/v1/actions/Ping", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(http_param(&p, "action"), "Ping");
    assert_null(http_param(&p, "nope"));
    http_params_release(&p);
    assert_int_equal(match(routes, N, "DELETE", "/v1/queues/sales/members/Local%2F202%40demo", &rt,
                           &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(http_param(&p, "queue"), "sales");
    assert_string_equal(http_param(&p, "interface"), "Local/202@demo");
    http_params_release(&p);
}

static void encoded_slash_stays_inside_the_segment(void **state)
{
    (void)state;
    const struct http_route *rt;
    struct http_params p;
    assert_int_equal(match(routes, N, "POST",
                           "/v1/channels/Local%2F100%40demo-00000006%3B1/redirect", &rt, &p, NULL,
                           0),
                     HTTP_MATCH_OK);
    assert_string_equal(rt->name, "redirect");
    assert_string_equal(http_param(&p, "channel"), "Local/100@demo-00000006;1");
    http_params_release(&p);
    /* an unencoded slash is a separator: this path has too many segments */
    assert_int_equal(match(routes, N, "GET", "/v1/channels/Local/100@demo-1;1", &rt, &p, NULL, 0),
                     HTTP_MATCH_NOT_FOUND);
}

static void wrong_method_reports_the_allowed_ones(void **state)
{
    (void)state;
    const struct http_route *rt;
    struct http_params p;
    char allow[64];
    assert_int_equal(match(routes, N, "PUT", "/v1/channels/x", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    assert_null(rt);
    /* HEAD is served wherever GET is */
    assert_int_equal(match(routes, N, "HEAD", "/healthz", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(rt->name, "healthz");
}

/* A literal segment wins: /v1/calls/live is not also an {id}. */
static void a_literal_segment_wins_over_a_parameter(void **state)
{
    (void)state;
    static const struct http_route calls[] = {
        {"GET", "/v1/calls/live", "live", 1, NULL},
        {"GET", "/v1/calls/{id}", "call", 1, NULL},
        {"DELETE", "/v1/calls/{id}", "hangup", 4, NULL},
    };
    const struct http_route *rt;
    struct http_params p;
    char allow[64];
    assert_int_equal(match(calls, 3, "GET", "/v1/calls/live", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(rt->name, "live");
    assert_int_equal(p.n, 0);
    assert_int_equal(match(calls, 3, "DELETE", "/v1/calls/live", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(match(calls, 3, "DELETE", "/v1/calls/abc", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(rt->name, "hangup");
    assert_string_equal(http_param(&p, "id"), "abc");
    http_params_release(&p);
}

static void bad_paths_and_escapes_are_refused(void **state)
{
    (void)state;
    const struct http_route *rt;
    struct http_params p;
    static const char *notfound[] = {
        "",          "healthz", "/healthz/", "/v1/actions/", "/v1/actions", "/v1/actions/Ping/x",
        "//healthz", NULL};
    for (const char **s = notfound; *s; s++)
        assert_int_equal(match(routes, N, "POST", *s, &rt, &p, NULL, 0) != HTTP_MATCH_OK, 1);
    static const char *bad[] = {"/v1/actions/%", "/v1/actions/%4", "/v1/actions/%zz",
                                "/v1/actions/a%00b", NULL};
    for (const char **s = bad; *s; s++)
        assert_int_equal(match(routes, N, "POST", *s, &rt, &p, NULL, 0), HTTP_MATCH_BAD_ESCAPE);
    /* deep paths do not overflow */
    char deep[2048] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "/a");
    assert_int_equal(match(routes, N, "GET", deep, &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
}

static void percent_decoding_rules(void **state)
{
    (void)state;
    char *s = http_percent_decode("a%20b+c%2B", 10, 1);
    assert_string_equal(s, "a b c+");
    free(s);
    s = http_percent_decode("a+b", 3, 0);
    assert_string_equal(s, "a+b");
    free(s);
    s = http_percent_decode("%e2%82%ac", 9, 0);
    assert_string_equal(s, "\xe2\x82\xac");
    free(s);
    assert_null(http_percent_decode("%0", 2, 0));
    assert_null(http_percent_decode("%g0", 3, 0));
    assert_null(http_percent_decode("x%00", 4, 0));
    s = http_percent_decode("", 0, 0);
    assert_string_equal(s, "");
    free(s);
}

/* More patterns fitting one path than the matcher remembers from its first
 * pass: the answer is the same, from a second look at every route. */
static void many_fitting_patterns_still_match(void **state)
{
    (void)state;
    static const char *const methods[] = {"M0",  "M1",  "M2",  "M3",  "M4",  "M5",  "M6",
                                          "M7",  "M8",  "M9",  "M10", "M11", "M12", "M13",
                                          "M14", "M15", "M16", "M17", "M18", "M19"};
    struct http_route many[21];
    for (size_t i = 0; i < 20; i++)
        many[i] = (struct http_route){methods[i], "/x/{a}", methods[i], 0, NULL};
    many[20] = (struct http_route){"GET", "/x/{a}/{b}", "two", 0, NULL};
    const struct http_route *rt;
    struct http_params p;
    char allow[256];
    assert_int_equal(match(many, 21, "M19", "/x/y", &rt, &p, allow, sizeof(allow)), HTTP_MATCH_OK);
    assert_string_equal(rt->name, "M19");
    assert_string_equal(http_param(&p, "a"), "y");
    http_params_release(&p);
    assert_int_equal(match(many, 21, "GET", "/x/y", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_BAD_METHOD);
    assert_non_null(strstr(allow, "M0, "));
    assert_non_null(strstr(allow, "M19"));
    assert_int_equal(match(many, 21, "GET", "/x/y/z", &rt, &p, allow, sizeof(allow)),
                     HTTP_MATCH_OK);
    assert_string_equal(rt->name, "two");
    http_params_release(&p);
}

/* A pattern deeper than any path the router splits, or not absolute,
 * fits nothing; a path one segment short or long of a pattern is not it. */
static void patterns_no_path_fits(void **state)
{
    (void)state;
    char deep[64] = "";
    for (int i = 0; i < HTTP_PATH_MAX_SEGMENTS + 1; i++)
        strcat(deep, "/a");
    const struct http_route odd[] = {
        {"GET", deep, "deep", 0, NULL},
        {"GET", "a/b", "relative", 0, NULL},
        {"GET", "/a/{x}/c", "three", 0, NULL},
    };
    const struct http_route *rt;
    struct http_params p;
    assert_int_equal(match(odd, 3, "GET", deep, &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "a/b", &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "/a/b", &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "/a/b/c/d", &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "/a//c", &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "/a/b/cc", &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "/a/b/", &rt, &p, NULL, 0), HTTP_MATCH_NOT_FOUND);
    assert_int_equal(match(odd, 3, "GET", "/a/b/c", &rt, &p, NULL, 0), HTTP_MATCH_OK);
    assert_string_equal(rt->name, "three");
    assert_string_equal(http_param(&p, "x"), "b");
    http_params_release(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_and_captured_segments_match),
        cmocka_unit_test(patterns_no_path_fits),
        cmocka_unit_test(encoded_slash_stays_inside_the_segment),
        cmocka_unit_test(wrong_method_reports_the_allowed_ones),
        cmocka_unit_test(a_literal_segment_wins_over_a_parameter),
        cmocka_unit_test(bad_paths_and_escapes_are_refused),
        cmocka_unit_test(percent_decoding_rules),
        cmocka_unit_test(many_fitting_patterns_still_match),
    };
    return cmocka_run_group_tests_name("http_router", tests, NULL, NULL);
}
