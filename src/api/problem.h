/* api/problem: how failures are answered. Functions that answer return 1
 * when they did (or are void: they always do). See problem.c. */
#ifndef AMIBRIDGE_API_PROBLEM_H
#define AMIBRIDGE_API_PROBLEM_H

#include <jansson.h>

#include "ami/message.h"
#include "ami/pool.h"

struct api;
struct http_req;

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

/* An AMI error message with a meaning of its own on a resource route. */
enum api_match { API_MATCH_EXACT, API_MATCH_PREFIX, API_MATCH_CONTAINS };
struct api_ami_error {
    const char *text; /* NULL ends a table */
    enum api_match match;
    int status;
    const char *slug;
    const char *title;
};

/* The first rule of `map` that fits the AMI message (case-insensitive), or NULL. */
const struct api_ami_error *api_ami_error_find(const struct api_ami_error *map, const char *msg);
/* Answer the problem of a rule: `ami_message` (may be NULL) as detail and
 * `ami_message`, `action_id` (may be NULL), and the members of `context`
 * (borrowed, may be NULL: channel, queue, interface). */
void api_respond_mapped(struct http_req *r, const struct api_ami_error *e, const char *ami_message,
                        const char *action_id, json_t *context);
/* As api_result_failed(), but an AMI error that a rule of `map` names is
 * answered with that rule. Returns 1 when it answered. */
int api_resource_failed(struct http_req *r, const struct ami_result *res,
                        const struct api_ami_error *map, const json_t *context);

#endif
