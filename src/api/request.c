/* api/request: what handlers read from a request (the server it names, its
 * JSON body). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

struct ami_pool *api_pool_for(struct api *a, struct http_req *r)
{
    char *name = NULL;
    int rc = http_req_query(r, "server", &name);
    if (rc < 0) {
        api_bad_field(r, "server", "the server parameter is not valid percent-encoding");
        return NULL;
    }
    if (rc == 0)
        return a->npools ? a->pools[0] : NULL;
    for (size_t i = 0; i < a->npools; i++)
        if (!strcmp(ami_pool_name(a->pools[i]), name)) {
            free(name);
            return a->pools[i];
        }
    char detail[160];
    snprintf(detail, sizeof(detail), "no AMI server named '%.64s' is configured", name);
    free(name);
    api_bad_field(r, "server", detail);
    return NULL;
}

size_t api_pool_index(const struct api *a, const struct ami_pool *pool)
{
    for (size_t i = 0; i < a->npools; i++)
        if (a->pools[i] == pool)
            return i;
    return 0;
}

json_t *api_body_object(struct http_req *r)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    if (len == 0)
        return json_object();
    json_error_t e;
    /* NUL is allowed in JSON strings here so that it can be refused by name
     * when the action is validated, rather than as a parse error */
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!j) {
        char detail[256];
        snprintf(detail, sizeof(detail), "the body is not valid JSON: %s (line %d, column %d)",
                 e.text, e.line, e.column);
        http_respond_problem(r, 400, "invalid-json", "Bad request", detail, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_problem(r, 400, "invalid-json", "Bad request",
                             "the body must be a JSON object", NULL);
        return NULL;
    }
    return j;
}
