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

/* 1 when the pattern fits the path segments: the same number of them, each
 * literal one equal, each {capture} non-empty. Walked in step with the
 * path, so most patterns are left at their first differing segment. */
static int fits(const char *pattern, const struct seg *ps, size_t np)
{
    if (pattern[0] != '/')
        return 0;
    const char *p = pattern + 1;
    for (size_t i = 0;; i++) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (i == np)
            return 0;
        int capture = len > 2 && p[0] == '{' && p[len - 1] == '}';
        if (capture ? ps[i].len == 0 : len != ps[i].len || memcmp(p, ps[i].s, len) != 0)
            return 0;
        if (!*end)
            return i + 1 == np;
        p = end + 1;
    }
}

/* The captures of a pattern that fits, percent-decoded, into params; 0, or
 * -1 when one is badly escaped (params then empty). */
static int capture(const char *pattern, const struct seg *ps, size_t np, struct http_params *params)
{
    struct seg pat[HTTP_PATH_MAX_SEGMENTS];
    size_t n = split(pattern, pat, HTTP_PATH_MAX_SEGMENTS);
    params->n = 0;
    for (size_t i = 0; i < n && i < np; i++) {
        if (!(pat[i].len > 2 && pat[i].s[0] == '{'))
            continue;
        char *v = http_percent_decode(ps[i].s, ps[i].len, 0);
        if (!v || params->n == HTTP_ROUTE_MAX_PARAMS) {
            free(v);
            http_params_release(params);
            return -1;
        }
        snprintf(params->names[params->n], sizeof(params->names[0]), "%.*s", (int)(pat[i].len - 2),
                 pat[i].s + 1);
        params->values[params->n++] = v;
    }
    return 0;
}

/* How many {parameters} a pattern has. */
static size_t params_in(const char *pattern)
{
    size_t k = 0;
    for (; *pattern; pattern++)
        k += *pattern == '{';
    return k;
}

/* Patterns one path can fit that are remembered from the first pass; past
 * this many the second pass looks at every route again. */
#define ROUTER_FITS_KEPT 16

enum http_match http_route_match(const struct http_route *routes, size_t n, const char *method,
                                 const char *path, const struct http_route **out,
                                 struct http_params *params, char *allow, size_t allowlen)
{
    struct seg ps[HTTP_PATH_MAX_SEGMENTS];
    size_t np = split(path, ps, HTTP_PATH_MAX_SEGMENTS);
    int path_known = 0;
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
    size_t fewest = SIZE_MAX, kept[ROUTER_FITS_KEPT], nfit = 0;
    for (size_t i = 0; i < n; i++) {
        if (!fits(routes[i].pattern, ps, np))
            continue;
        if (nfit < ROUTER_FITS_KEPT)
            kept[nfit] = i;
        nfit++;
        size_t k = params_in(routes[i].pattern);
        if (k < fewest)
            fewest = k;
    }
    size_t ncand = nfit <= ROUTER_FITS_KEPT ? nfit : n;
    for (size_t c = 0; c < ncand; c++) {
        size_t i = nfit <= ROUTER_FITS_KEPT ? kept[c] : c;
        if ((nfit > ROUTER_FITS_KEPT && !fits(routes[i].pattern, ps, np)) ||
            params_in(routes[i].pattern) != fewest)
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
        if (capture(routes[i].pattern, ps, np, params))
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
