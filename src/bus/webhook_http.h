/* bus/webhook_http: webhook attempts on the loop — libcurl's multi socket
 * interface driven by libuv (a uv_poll per socket curl asks for, one
 * uv_timer for its timeouts), one signed POST per attempt.
 *
 * An attempt POSTs the event JSON with X-Amibridge-Event, -Webhook,
 * -Attempt and the signature headers of the subscription's scheme
 * (bus/webhook_sub.h): Standard Webhooks' webhook-id (the delivery id),
 * webhook-timestamp and webhook-signature, and/or X-Amibridge-Delivery,
 * -Timestamp and -Signature. http and https only, no redirects, no proxies
 * from the environment, the SSRF guard checked on every address curl
 * connects to (after DNS), AMIBRIDGE_WEBHOOK_TIMEOUT_MS for the whole
 * attempt. The start of the receiver's answer is kept for the log; the
 * rest is read and dropped.
 *
 * Knows nothing of queues or retries: it reports what an attempt came to
 * and its owner decides.
 */
#ifndef AMIBRIDGE_BUS_WEBHOOK_HTTP_H
#define AMIBRIDGE_BUS_WEBHOOK_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus/ssrf.h"
#include "bus/webhook_sub.h"

#define WEBHOOKS_RESPONSE_KEEP 256  /* bytes of a receiver's answer kept for the log */
#define WEBHOOKS_CONNECTS_MAX  256  /* idle connections kept for reuse */
#define WEBHOOKS_CONNECT_MS    5000 /* connect timeout (within the attempt timeout) */

struct wh_http;
struct wh_xfer;

/* An attempt ended (`rc` curl's code, `status` the HTTP status or 0). Fires
 * once per wh_xfer_start() that returned 0, never after wh_xfer_cancel(),
 * and never from inside wh_xfer_start(). */
typedef void (*wh_xfer_done_fn)(struct wh_xfer *x, CURLcode rc, long status);

/* One attempt's handle, embedded in whoever makes attempts and reused for
 * the next one. Members are the module's; the owner reads `owner` and
 * `start` (uv_hrtime() when the attempt began). */
struct wh_xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    struct wh_http *http;
    enum ssrf_verdict refused;
    char refused_ip[64];
    char err[CURL_ERROR_SIZE];
    char resp[WEBHOOKS_RESPONSE_KEEP + 1];
    size_t resplen;
    uint64_t start;
    wh_xfer_done_fn done;
    void *owner;
};

/* The allow nets (`allow`, `nallow`) are borrowed and must outlive it;
 * `timeout_ms` bounds each attempt. libcurl is initialised (globally) by
 * the first wh_xfer_init(), so a bridge without webhooks never sets it up.
 * NULL when out of memory. */
struct wh_http *wh_http_new(uv_loop_t *loop, const struct netlist_net *allow, size_t nallow,
                            int timeout_ms);
/* Teardown (docs/layout.md, "Teardown"): drop the multi handle and every
 * socket and close the timer; attempts still running end without their
 * done callback (cancel them first). Easy handles made on it may be
 * cleaned up later: `done` fires, and libcurl's global state (if it was
 * begun) ends, once the handles are closed and the last wh_xfer_cleanup()
 * has run. */
void wh_http_close(struct wh_http *h, void (*done)(void *arg), void *arg);

/* Prepare `x` for attempts by `owner`, `done` to hear how each ended; the
 * first call sets libcurl up. 0, -ENOMEM, or -ESHUTDOWN after
 * wh_http_close() (then call wh_xfer_cleanup()). */
int wh_xfer_init(struct wh_http *h, struct wh_xfer *x, void *owner, wh_xfer_done_fn done);
/* Start one POST to subscription `c`'s URL, signed as `c` wants
 * (attempt number `attempt`, delivery id `delivery`); the headers are built
 * now, so `c` is borrowed for the call only, but `body` must stay valid
 * until done fires or the attempt is cancelled. 0, -ENOMEM (signing) or
 * -EIO (curl refused the handle). */
int wh_xfer_start(struct wh_xfer *x, const struct wh_conf *c, const char *event,
                  const char *delivery, int attempt, const char *body, size_t len);
/* Stop the attempt running on `x`, if any; done will not fire for it. */
void wh_xfer_cancel(struct wh_xfer *x);
/* Release what `x` holds (cancel first when an attempt runs); it needs
 * wh_xfer_init() again to be used. Also after a failed wh_xfer_init(). */
void wh_xfer_cleanup(struct wh_xfer *x);
/* What an ended attempt came to: the outcome label of the metrics ("2xx",
 * "4xx", "5xx", "3xx", "1xx", "timeout", "refused", "error") and, unless
 * "2xx", a sentence for the log and the API in `err` ("" otherwise). */
const char *wh_xfer_outcome(const struct wh_xfer *x, CURLcode rc, long status, char *err,
                            size_t len);
/* Seconds since the attempt began. */
double wh_xfer_seconds(const struct wh_xfer *x);

#endif
