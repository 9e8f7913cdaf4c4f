/* bus/webhook: one webhook subscription — what it is, how it is checked,
 * which events it wants, and how a delivery is signed.
 *
 * Pure: no I/O, no loop. The same rules check a subscription from the API
 * (POST and PATCH bodies), from the config file (static subscriptions) and
 * from the store (Redis or the state file), so that nothing the store
 * hands back can be looser than what the API accepts.
 */
#ifndef AMIBRIDGE_BUS_WEBHOOK_H
#define AMIBRIDGE_BUS_WEBHOOK_H

#include <jansson.h>
#include <stddef.h>

#include "ami/message.h"
#include "bus/ssrf.h"

#define WH_ID_MAX          40 /* "wh_" + 16 hex digits, or a config name (1-32) */
#define WH_URL_MAX         2048
#define WH_DESCRIPTION_MAX 256
#define WH_EVENTS_MAX      32
#define WH_GLOB_MAX        64
#define WH_FILTER_MAX      16
#define WH_FILTER_KEY_MAX  64
#define WH_FILTER_VAL_MAX  256
#define WH_SECRET_MIN      16
#define WH_SECRET_MAX      128
#define WH_REASON_MAX      200
#define WH_SIGNATURE_LEN   (7 + 64) /* "sha256=" + hex */

struct wh_conf {
    char id[WH_ID_MAX];
    char *url;
    char **events; /* event name globs, at least one */
    size_t nevents;
    char **fkeys; /* filter: header name -> value glob, all must match */
    char **fvals;
    size_t nfilter;
    char *secret; /* never logged, shown once */
    char *description;
    int enabled;
    char reason[WH_REASON_MAX]; /* why it was disabled ("" when enabled or by hand) */
    long long created;          /* Unix seconds */
    int is_static;              /* from the config file: read-only in the API */
};

/* What a check found wrong: the API's field name ("url", "events[2]",
 * "filter.Queue") and a sentence. */
struct wh_problem {
    char field[96];
    char detail[256];
};

enum wh_mode {
    WH_CREATE, /* url and events required; the rest defaults */
    WH_PATCH,  /* only the members present change */
    WH_STORED, /* from the store or config: also id, created, enabled, reason */
};

/* Check the members of `o` (borrowed) and apply them to `c` (for WH_PATCH
 * `c` holds the current values and is changed only when everything is
 * valid). Unknown members are refused. URLs are checked by wh_url_check()
 * with the allow nets. Returns 0, -1 with `pb` filled, or -ENOMEM. */
int wh_conf_apply(struct wh_conf *c, json_t *o, enum wh_mode mode, const struct ssrf_net *allow,
                  size_t nallow, struct wh_problem *pb);
/* Deep copy. 0 or -ENOMEM (dst is then empty). */
int wh_conf_copy(struct wh_conf *dst, const struct wh_conf *src);
void wh_conf_free(struct wh_conf *c);
/* The subscription as JSON: with the secret for the store and the one
 * answer to a create, without it everywhere else. New reference, NULL
 * when out of memory. */
json_t *wh_conf_json(const struct wh_conf *c, int with_secret);

/* http or https, a host, no user:password, no fragment, at most
 * WH_URL_MAX bytes; a literal IP address must pass the SSRF guard. 0 or -1
 * with a sentence in `detail`. */
int wh_url_check(const char *url, const struct ssrf_net *allow, size_t nallow, char *detail,
                 size_t len);

/* Does the subscription want this event (name globs and field filter)?
 * A call event (call.*) only matches globs that begin with "call". */
int wh_conf_wants(const struct wh_conf *c, const char *event, const struct ami_msg *fields);

/* "sha256=" + hex HMAC-SHA256(secret, timestamp "." body) into out
 * (WH_SIGNATURE_LEN + 1 bytes). 0 or -1. */
int wh_sign(const char *secret, const char *timestamp, const char *body, size_t len, char *out);

/* Random lowercase hex of 2*nbytes digits into out (2*nbytes + 1 bytes).
 * 0 or -1. */
int wh_random_hex(char *out, size_t nbytes);

#endif
