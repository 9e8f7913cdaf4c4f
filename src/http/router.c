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
 * literal one equal, each {capture} non-empty. Walked byte by byte in step
 * with the path, so most patterns are left at the first byte that differs
 * (this runs for every route with the path's segment count). */
static int fits(const char *pattern, const struct seg *ps, size_t np)
{
    if (pattern[0] != '/')
        return 0;
    const char *p = pattern + 1;
    for (size_t i = 0; i < np; i++) {
        if (p[0] == '{') {
            if (ps[i].len == 0)
                return 0;
            while (*p && *p != '/')
                p++;
        } else {
            /* a path segment holds neither '/' nor NUL, so the walk stops
             * at the pattern segment's end at the latest */
            size_t k = 0;
            while (k < ps[i].len && p[k] == ps[i].s[k])
                k++;
            if (k != ps[i].len || (p[k] && p[k] != '/'))
                return 0;
            p += k;
        }
        if (!*p)
            return i + 1 == np;
        p++;
    }
    return 0;
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
        size_t nl = pat[i].len - 2 < sizeof(params->names[0]) ? pat[i].len - 2
                                                              : sizeof(params->names[0]) - 1;
        memcpy(params->names[params->n], pat[i].s + 1, nl);
        params->names[params->n][nl] = '\0';
        params->values[params->n++] = v;
    }
    return 0;
}

/* What the matching needs of each pattern, read once. */
struct route_shape {
    unsigned char nseg;    /* 0: not a pattern any path fits (not absolute, too deep) */
    unsigned char nparams; /* its {captures} */
};

struct http_router {
    const struct http_route *routes;
    size_t n;
    struct route_shape *shape;
};

struct http_router *http_router_new(const struct http_route *routes, size_t n)
{
    struct http_router *rt = calloc(1, sizeof(*rt));
    if (!rt || (n && !(rt->shape = calloc(n, sizeof(*rt->shape))))) {
        free(rt);
        return NULL;
    }
    rt->routes = routes;
    rt->n = n;
    for (size_t i = 0; i < n; i++) {
        struct seg pat[HTTP_PATH_MAX_SEGMENTS];
        rt->shape[i].nseg = (unsigned char)split(routes[i].pattern, pat, HTTP_PATH_MAX_SEGMENTS);
        for (const char *c = routes[i].pattern; *c; c++)
            rt->shape[i].nparams += *c == '{';
    }
    return rt;
}

void http_router_free(struct http_router *rt)
{
    if (!rt)
        return;
    free(rt->shape);
    free(rt);
}

/* Patterns one path can fit that are remembered from the first pass; past
 * this many the second pass looks at every route again. */
#define ROUTER_FITS_KEPT 16

enum http_match http_route_match(const struct http_router *rt, const char *method, const char *path,
                                 const struct http_route **out, struct http_params *params,
                                 char *allow, size_t allowlen)
{
    const struct http_route *routes = rt->routes;
    const struct route_shape *shape = rt->shape;
    size_t n = rt->n;
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
        if (shape[i].nseg != np || !fits(routes[i].pattern, ps, np))
            continue;
        if (nfit < ROUTER_FITS_KEPT)
            kept[nfit] = i;
        nfit++;
        if (shape[i].nparams < fewest)
            fewest = shape[i].nparams;
    }
    size_t ncand = nfit <= ROUTER_FITS_KEPT ? nfit : n;
    for (size_t c = 0; c < ncand; c++) {
        size_t i = nfit <= ROUTER_FITS_KEPT ? kept[c] : c;
        if ((nfit > ROUTER_FITS_KEPT &&
             (shape[i].nseg != np || !fits(routes[i].pattern, ps, np))) ||
            shape[i].nparams != fewest)
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
