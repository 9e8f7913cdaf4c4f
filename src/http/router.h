/* http/router: match a method and a raw path against a route table.
 *
 * Patterns are literal segments and {name} captures, e.g.
 * "/v1/channels/{channel}/redirect". Matching happens on the path as sent;
 * each captured segment is then percent-decoded on its own, so a channel
 * name sent as "Local%2F100%40demo-00000001%3B1" arrives whole.
 */
#ifndef AMIBRIDGE_HTTP_ROUTER_H
#define AMIBRIDGE_HTTP_ROUTER_H

#include <stddef.h>

#define HTTP_ROUTE_MAX_PARAMS  4
#define HTTP_PATH_MAX_SEGMENTS 16

struct api;
struct http_req;
struct http_params;

/* What a route runs: the router only hands it back (api/ defines both the
 * context and the handlers; struct api is opaque here). */
typedef void (*http_handler_fn)(struct api *a, struct http_req *r, const struct http_params *p);

struct http_route {
    const char *method;
    const char *pattern;
    const char *name;        /* for logs and metrics */
    unsigned scope;          /* required scope bits; 0 = public */
    http_handler_fn handler; /* not called by the router */
};

struct http_params {
    size_t n;
    char names[HTTP_ROUTE_MAX_PARAMS][32];
    char *values[HTTP_ROUTE_MAX_PARAMS]; /* decoded, owned */
};

enum http_match {
    HTTP_MATCH_OK = 0,
    HTTP_MATCH_NOT_FOUND,  /* no pattern fits the path: 404 */
    HTTP_MATCH_BAD_METHOD, /* a pattern fits, not with this method: 405 */
    HTTP_MATCH_BAD_ESCAPE, /* a captured segment is badly percent-encoded: 400 */
};

/* A route table read once for matching: how many segments and captures
 * each pattern has, so that a request's path is held only against the
 * patterns of its own length. It borrows the table, which must outlive
 * it. NULL when out of memory. */
struct http_router;
struct http_router *http_router_new(const struct http_route *routes, size_t n);
void http_router_free(struct http_router *rt);

/* Find the route. On HTTP_MATCH_OK *out is set and params filled (release
 * with http_params_release). On HTTP_MATCH_BAD_METHOD, `allow` receives the
 * methods that would fit, comma-separated. */
enum http_match http_route_match(const struct http_router *rt, const char *method, const char *path,
                                 const struct http_route **out, struct http_params *params,
                                 char *allow, size_t allowlen);
void http_params_release(struct http_params *p);
/* Decoded value of a capture, or NULL. */
const char *http_param(const struct http_params *p, const char *name);

#endif
