#include "http/router.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/server.h"

struct seg {
    const char *s;
    size_t len;
};

/* Split "/a/b/c" into segments; "" when the path has too many or is not
 * absolute. A trailing slash makes an empty last segment, which no
 * pattern matches. */
static size_t split(const char *path, struct seg *segs, size_t max)
{
    if (path[0] != '/')
        return 0;
    size_t n = 0;
    const char *p = path + 1;
    for (;;) {
        if (n == max)
            return 0;
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        segs[n].s = p;
        segs[n].len = len;
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    return n;
}

/* 1 when the pattern fits the path segments; captures go into params. */
static int fits(const char *pattern, const struct seg *ps, size_t np, struct http_params *params,
                int *bad_escape)
{
    struct seg pat[HTTP_PATH_MAX_SEGMENTS];
    size_t n = split(pattern, pat, HTTP_PATH_MAX_SEGMENTS);
    if (n != np)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int capture = pat[i].len > 2 && pat[i].s[0] == '{' && pat[i].s[pat[i].len - 1] == '}';
        if (capture) {
            if (ps[i].len == 0)
                return 0;
        } else if (pat[i].len != ps[i].len || memcmp(pat[i].s, ps[i].s, ps[i].len) != 0) {
            return 0;
        }
    }
    if (!params)
        return 1;
    params->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(pat[i].len > 2 && pat[i].s[0] == '{'))
            continue;
        char *v = http_percent_decode(ps[i].s, ps[i].len, 0);
        if (!v || params->n == HTTP_ROUTE_MAX_PARAMS) {
            free(v);
            http_params_release(params);
            *bad_escape = 1;
            return 0;
        }
        snprintf(params->names[params->n], sizeof(params->names[0]), "%.*s", (int)(pat[i].len - 2),
                 pat[i].s + 1);
        params->values[params->n++] = v;
    }
    return 1;
}

/* How many {parameters} a pattern has. */
static size_t params_in(const char *pattern)
{
    size_t k = 0;
    for (; *pattern; pattern++)
        k += *pattern == '{';
    return k;
}

enum http_match http_route_match(const struct http_route *routes, size_t n, const char *method,
                                 const char *path, const struct http_route **out,
                                 struct http_params *params, char *allow, size_t allowlen)
{
    struct seg ps[HTTP_PATH_MAX_SEGMENTS];
    size_t np = split(path, ps, HTTP_PATH_MAX_SEGMENTS);
    int path_known = 0, bad = 0;
    if (allow && allowlen)
        allow[0] = '\0';
    params->n = 0;
    *out = NULL;
    if (!np)
        return HTTP_MATCH_NOT_FOUND;
    /* HEAD is GET without a body (libmicrohttpd leaves the body out) */
    if (!strcmp(method, "HEAD"))
        method = "GET";
    /* a literal segment wins over a parameter: /v1/calls/live is that
     * route's path only, not also an {id} of /v1/calls/{id} */
    size_t fewest = SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        if (fits(routes[i].pattern, ps, np, NULL, &bad) && params_in(routes[i].pattern) < fewest)
            fewest = params_in(routes[i].pattern);
    for (size_t i = 0; i < n; i++) {
        if (!fits(routes[i].pattern, ps, np, NULL, &bad) || params_in(routes[i].pattern) != fewest)
            continue;
        if (strcmp(routes[i].method, method) != 0) {
            if (allow && !strstr(allow, routes[i].method)) {
                size_t l = strlen(allow);
                snprintf(allow + l, allowlen - l, "%s%s%s", l ? ", " : "", routes[i].method,
                         strcmp(routes[i].method, "GET") ? "" : ", HEAD");
            }
            path_known = 1;
            continue;
        }
        if (!fits(routes[i].pattern, ps, np, params, &bad))
            return HTTP_MATCH_BAD_ESCAPE;
        *out = &routes[i];
        return HTTP_MATCH_OK;
    }
    return path_known ? HTTP_MATCH_BAD_METHOD : HTTP_MATCH_NOT_FOUND;
}

void http_params_release(struct http_params *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->values[i]);
    p->n = 0;
}

const char *http_param(const struct http_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->names[i], name))
            return p->values[i];
    return NULL;
}
