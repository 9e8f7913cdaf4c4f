/* api/internal: what the route handlers share. Not for use outside src/api. */
#ifndef AMIBRIDGE_API_INTERNAL_H
#define AMIBRIDGE_API_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "ami/pool.h"
#include "api/api.h"
#include "http/auth.h"
#include "http/router.h"

#define API_RETRY_AFTER_UNAVAILABLE "2"
#define API_RETRY_AFTER_BUSY        "1"
#define API_JSON_MAX_DEPTH          32

struct api {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct ami_pool *const *pools;
    size_t npools;
    struct http_auth *auth;
    uint64_t started_ms;
    int draining;
};

typedef void (*api_handler)(struct api *a, struct http_req *r, const struct http_params *p);

/* Route handlers. */
void api_healthz(struct api *a, struct http_req *r, const struct http_params *p);
void api_readyz(struct api *a, struct http_req *r, const struct http_params *p);
void api_openapi(struct api *a, struct http_req *r, const struct http_params *p);
void api_actions_post(struct api *a, struct http_req *r, const struct http_params *p);

/* The pool named by ?server= (or the first). Answers 400 and returns NULL
 * when the name is unknown or badly encoded. */
struct ami_pool *api_pool_for(struct api *a, struct http_req *r);

/* Parse the body as a JSON object ({} when empty). Answers 400 and returns
 * NULL when it is not one. New reference. */
json_t *api_body_object(struct http_req *r);

/* Answer a failed ami_pool_submit() (rc < 0). */
void api_submit_failed(struct api *a, struct http_req *r, struct ami_pool *p, int rc,
                       const struct ami_error *err);

/* When the result is an error (transport or AMI Response: Error), answer
 * it and return 1; otherwise return 0 and answer nothing. */
int api_result_failed(struct http_req *r, const struct ami_result *res);

/* The Output lines of a reply as a JSON array (new reference), NULL when
 * there are none. */
json_t *api_output_lines(const struct ami_msg *m);

/* 400 naming a field. */
void api_bad_field(struct http_req *r, const char *field, const char *detail);

/* Is this value allowed by the dangerous-function rules? Returns the
 * offending rule or NULL. */
const char *api_denied_function(const struct api *a, const char *value);

#endif
