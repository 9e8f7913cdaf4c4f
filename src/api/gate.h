/* api/gate: who may call (trusted networks, CORS, API keys and scopes,
 * the lock-out of wrong keys). Each function that may answer returns 1
 * when it answered (the request is refused), else 0. */
#ifndef AMIBRIDGE_API_GATE_H
#define AMIBRIDGE_API_GATE_H

struct api;
struct http_req;
struct http_route;

/* 403 untrusted-network to a client outside AMIBRIDGE_TRUSTED_NETS. */
int api_gate_untrusted(const struct api *a, struct http_req *r);
/* The key of the request against the route's scope: 401, 403, 429 (or a
 * wrong key's answer held back a while) when refused. */
int api_gate_refuse(struct api *a, struct http_req *r, const struct http_route *rt);
/* From the head alone (api_head): only what is refused at once, never a
 * wrong key (its answer is held back, after the body). */
void api_gate_head(struct api *a, struct http_req *r, const struct http_route *rt);

/* 1 when the request's Origin is on AMIBRIDGE_CORS_ORIGINS, -1 when it is
 * another one, 0 when there is none; its headers on an answer, and on a
 * preflight's (`allow`: the methods). */
int api_gate_cors(const struct api *a, struct http_req *r);
void api_gate_cors_headers(struct http_req *r);
void api_gate_preflight_headers(struct http_req *r, const char *allow);

/* The key of a request against `scope`, for routes whose scope depends on
 * the config (/metrics): 401, 403 or 429 when refused. */
int api_gate_refuse_scope(struct api *a, struct http_req *r, unsigned scope);

#endif
