/* api/request: what handlers read from a request. See request.c. */
#ifndef AMIBRIDGE_API_REQUEST_H
#define AMIBRIDGE_API_REQUEST_H

#include <stddef.h>

#include <jansson.h>

#include "ami/message.h"
#include "ami/pool.h"

struct api;
struct http_req;

/* The pool named by ?server= (or the first). Answers 400 and returns NULL
 * when the name is unknown or badly encoded. */
struct ami_pool *api_pool_for(struct api *a, struct http_req *r);
/* The index of one of our pools (the guard counts per server by index). */
size_t api_pool_index(const struct api *a, const struct ami_pool *pool);

/* Parse the body as a JSON object ({} when empty). Answers 400 and returns
 * NULL when it is not one. New reference. */
json_t *api_body_object(struct http_req *r);

#endif
