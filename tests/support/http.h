/* support/http: a small blocking HTTP client for integration tests
 * (libcurl easy), and a batch runner for many concurrent requests (libcurl
 * multi) over a bounded number of keep-alive connections. */
#ifndef AMIBRIDGE_TESTS_SUPPORT_HTTP_H
#define AMIBRIDGE_TESTS_SUPPORT_HTTP_H

#include <jansson.h>
#include <stddef.h>

struct http_resp {
    long status; /* 0 when the request failed at the transport level */
    char *body;  /* NUL-terminated */
    size_t len;
    char *headers;   /* raw response headers */
    json_t *json;    /* parsed body when it is JSON, else NULL */
    double seconds;  /* total time */
    char error[256]; /* transport error */
};

/* One request. `token` adds Authorization: Bearer; `body` (may be NULL) is
 * sent with `ctype` (default application/json). Returns 0 when an HTTP
 * answer came back. */
int http_call(const char *method, const char *url, const char *token, const char *body,
              const char *ctype, long timeout_ms, struct http_resp *out);
void http_resp_free(struct http_resp *r);
/* Value of a response header (case-insensitive), malloc'd; NULL if absent. */
char *http_resp_header(const struct http_resp *r, const char *name);
/* The value of one series of GET base_url/metrics ("name{labels}" as it
 * is printed); 0 when it is not there. */
double http_metric(const char *base_url, const char *series);
/* fields.<name> of an event's JSON (as published, streamed or delivered)
 * as a number; -1 when absent or not JSON. */
long http_event_field(const char *event_json, const char *name);
/* Shorthand: string member of the JSON body or NULL. */
const char *http_json_str(const struct http_resp *r, const char *key);

struct http_batch_item {
    const char *method;
    const char *url;
    const char *body;
    const char *header;  /* an extra "Name: value" header, may be NULL */
    const char *header2; /* another one */
    struct http_resp resp;
};

/* Run all items concurrently over at most `max_conns` connections to the
 * host. Returns 0 when every item got an HTTP answer. */
int http_batch(struct http_batch_item *items, size_t n, const char *token, int max_conns,
               long timeout_ms);

#endif
