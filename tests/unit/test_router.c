/* Unit tests for src/http/router and percent-decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
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

/* --- the router against a plain reading of its rules ------------------------------------ */

/* The rules, read plainly: a pattern fits when it has as many segments as
 * the path, each literal one equal and each {capture} non-empty; of the
 * patterns that fit, only those with the fewest captures count; the first
 * of them in table order with the method (HEAD as GET) is the route, and
 * its captures must decode; none with the method: 405 when one fits. */
static size_t ref_split(const char *s, char segs[][256], size_t max)
{
    if (s[0] != '/')
        return 0;
    size_t n = 0;
    const char *p = s + 1;
    for (;;) {
        if (n == max)
            return 0;
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len >= 256)
            return 0;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        if (!slash)
            return n;
        p = slash + 1;
    }
}

static int ref_fits(const char *pattern, char path[][256], size_t np, size_t *ncap)
{
    char pat[HTTP_PATH_MAX_SEGMENTS][256];
    size_t n = ref_split(pattern, pat, HTTP_PATH_MAX_SEGMENTS);
    *ncap = 0;
    if (!n || n != np)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (pat[i][0] == '{') {
            (*ncap)++;
            if (!path[i][0])
                return 0;
        } else if (strcmp(pat[i], path[i])) {
            return 0;
        }
    }
    return 1;
}

static enum http_match ref_match(const struct http_route *table, size_t n, const char *method,
                                 const char *path, const struct http_route **out)
{
    char ps[HTTP_PATH_MAX_SEGMENTS][256];
    size_t np = ref_split(path, ps, HTTP_PATH_MAX_SEGMENTS);
    *out = NULL;
    if (!np)
        return HTTP_MATCH_NOT_FOUND;
    if (!strcmp(method, "HEAD"))
        method = "GET";
    size_t fewest = SIZE_MAX, k;
    for (size_t i = 0; i < n; i++)
        if (ref_fits(table[i].pattern, ps, np, &k) && k < fewest)
            fewest = k;
    int known = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ref_fits(table[i].pattern, ps, np, &k) || k != fewest)
            continue;
        known = 1;
        if (strcmp(table[i].method, method))
            continue;
        for (size_t s = 0; s < np; s++) {
            char *v = http_percent_decode(ps[s], strlen(ps[s]), 0);
            int bad = !v;
            free(v);
            char pat[HTTP_PATH_MAX_SEGMENTS][256];
            ref_split(table[i].pattern, pat, HTTP_PATH_MAX_SEGMENTS);
            if (bad && pat[s][0] == '{')
                return HTTP_MATCH_BAD_ESCAPE;
        }
        *out = &table[i];
        return HTTP_MATCH_OK;
    }
    return known ? HTTP_MATCH_BAD_METHOD : HTTP_MATCH_NOT_FOUND;
}

static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

/* A path made from a pattern of the table: captures filled with words
 * that are also literals elsewhere ("live", "members", "stats"), escapes
 * good and bad, empty ones; then now and then a segment dropped or added,
 * a slash doubled or left at the end. */
static void path_from(const char *pattern, char *out, size_t outlen)
{
    static const char *const fill[] = {"live",  "members", "stats", "x",       "Local%2F1%40d",
                                       "%zz",   "%41b",    "",      "pause",   "v1",
                                       "calls", "a%00",    "Ping",  "redirect"};
    char segs[HTTP_PATH_MAX_SEGMENTS][256];
    size_t n = ref_split(pattern, segs, HTTP_PATH_MAX_SEGMENTS);
    size_t len = 0;
    out[0] = '\0';
    unsigned drop = rnd(8) == 0 ? rnd((unsigned)n + 1) : (unsigned)n + 1;
    for (size_t i = 0; i < n; i++) {
        if (i == drop)
            continue;
        const char *seg = segs[i][0] == '{' || rnd(12) == 0 ? fill[rnd(14)] : segs[i];
        len += (size_t)snprintf(out + len, outlen - len, "/%s", seg);
    }
    switch (rnd(10)) {
    case 0:
        len += (size_t)snprintf(out + len, outlen - len, "/%s", fill[rnd(14)]);
        break;
    case 1:
        len += (size_t)snprintf(out + len, outlen - len, "/");
        break;
    case 2:
        if (len > 3)
            memmove(out + 1, out, len + 1); /* "//..." */
        break;
    default:
        break;
    }
    (void)len;
}

/* The server's own table, 20,000 paths made from its patterns and seven
 * methods: the router and the plain reading agree on every answer, the
 * route, and its captures. */
static void the_router_agrees_with_a_plain_reading_of_its_rules(void **state)
{
    (void)state;
    static const char *const methods[] = {"GET",   "HEAD", "POST",   "DELETE",
                                          "PATCH", "PUT",  "OPTIONS"};
    size_t n;
    const struct http_route *table = api_routes(&n);
    struct http_router *r = http_router_new(table, n);
    assert_non_null(r);
    size_t ok = 0, bad_method = 0, not_found = 0, bad_escape = 0;
    for (int t = 0; t < 20000; t++) {
        char path[1024];
        path_from(table[rnd((unsigned)n)].pattern, path, sizeof(path));
        const char *method = methods[rnd(7)];
        const struct http_route *got, *want;
        struct http_params p;
        char allow[256];
        enum http_match g = http_route_match(r, method, path, &got, &p, allow, sizeof(allow));
        enum http_match w = ref_match(table, n, method, path, &want);
        if (g != w || got != want)
            fail_msg("%s %s: router %d (%s), plain reading %d (%s)", method, path, g,
                     got ? got->pattern : "-", w, want ? want->pattern : "-");
        if (g == HTTP_MATCH_OK) {
            ok++;
            char segs[HTTP_PATH_MAX_SEGMENTS][256], pat[HTTP_PATH_MAX_SEGMENTS][256];
            size_t np = ref_split(path, segs, HTTP_PATH_MAX_SEGMENTS);
            ref_split(got->pattern, pat, HTTP_PATH_MAX_SEGMENTS);
            size_t k = 0;
            for (size_t i = 0; i < np; i++) {
                if (pat[i][0] != '{')
                    continue;
                char name[64];
                snprintf(name, sizeof(name), "%.*s", (int)strlen(pat[i]) - 2, pat[i] + 1);
                char *v = http_percent_decode(segs[i], strlen(segs[i]), 0);
                assert_non_null(v);
                assert_string_equal(http_param(&p, name), v);
                free(v);
                k++;
            }
            assert_int_equal(p.n, k);
            http_params_release(&p);
        } else {
            bad_method += g == HTTP_MATCH_BAD_METHOD;
            not_found += g == HTTP_MATCH_NOT_FOUND;
            bad_escape += g == HTTP_MATCH_BAD_ESCAPE;
        }
    }
    print_message("20000 paths: %zu matched, %zu wrong method, %zu not found, %zu bad escape\n", ok,
                  bad_method, not_found, bad_escape);
    /* every kind of answer was met, so each was compared */
    assert_true(ok > 1000 && bad_method > 1000 && not_found > 1000 && bad_escape > 100);
    http_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_and_captured_segments_match),
        cmocka_unit_test(patterns_no_path_fits),
        cmocka_unit_test(the_router_agrees_with_a_plain_reading_of_its_rules),
        cmocka_unit_test(encoded_slash_stays_inside_the_segment),
        cmocka_unit_test(wrong_method_reports_the_allowed_ones),
        cmocka_unit_test(a_literal_segment_wins_over_a_parameter),
        cmocka_unit_test(bad_paths_and_escapes_are_refused),
        cmocka_unit_test(percent_decoding_rules),
        cmocka_unit_test(many_fitting_patterns_still_match),
    };
    return cmocka_run_group_tests_name("http_router", tests, NULL, NULL);
}
