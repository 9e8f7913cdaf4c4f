/* libFuzzer target for the router and path decoding: the API's own route
 * table (api_routes, the one the server dispatches on) against any method
 * and path. A match must capture decoded
 * values that hold no NUL and are never longer than what was sent; the
 * other answers are the three documented ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/router.h"
#include "http/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "PATCH", "PUT", "OPTIONS"};
    if (size < 1 || size > 4096)
        return 0;
    char *path = malloc(size);
    if (!path)
        return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    const struct http_route *rt = NULL;
    struct http_params params;
    char allow[128];
    memset(&params, 0, sizeof(params));
    static struct http_router *router; /* the server's: made once, kept */
    if (!router) {
        size_t nroutes;
        const struct http_route *routes = api_routes(&nroutes);
        if (!(router = http_router_new(routes, nroutes)))
            abort();
    }
    enum http_match m =
        http_route_match(router, methods[data[0] % 6], path, &rt, &params, allow, sizeof(allow));
    switch (m) {
    case HTTP_MATCH_OK:
        if (!rt)
            abort();
        for (size_t i = 0; i < params.n; i++)
            if (!params.values[i] || strlen(params.values[i]) > strlen(path))
                abort();
        http_params_release(&params);
        break;
    case HTTP_MATCH_BAD_METHOD:
        if (!allow[0])
            abort();
        break;
    case HTTP_MATCH_NOT_FOUND:
    case HTTP_MATCH_BAD_ESCAPE:
        break;
    default:
        abort();
    }
    /* percent-decoding on its own: never longer, never an embedded NUL */
    char *d = http_percent_decode(path, strlen(path), data[0] & 1);
    if (d) {
        if (strlen(d) > strlen(path))
            abort();
        free(d);
    }
    free(path);
    return 0;
}
