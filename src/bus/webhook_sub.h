/* bus/webhook_sub: one webhook subscription — what it is, how it is checked,
 * which events it wants, and how a delivery is signed.
 *
 * Two signature schemes, chosen per subscription (`signature`):
 * Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature:
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per secret still
 * valid, space-separated) and amibridge's own (X-Amibridge-Signature:
 * "sha256=<hex HMAC-SHA256 of timestamp.body>", the current secret only);
 * "both" (the default) sends the two. Secrets are "whsec_<base64>" (the
 * Standard Webhooks form: the key is the decoded bytes) or, as before,
 * 16-128 printable characters (the key is those bytes). X-Amibridge
 * signatures are keyed with the secret string as it is, whatever its form.
 *
 * Pure: no I/O, no loop. The same rules check a subscription from the API
 * (POST and PATCH bodies), from the config file (static subscriptions) and
 * from the store (Redis or the state file), so that nothing the store
 * hands back can be looser than what the API accepts.
 */
#ifndef AMIBRIDGE_BUS_WEBHOOK_SUB_H
#define AMIBRIDGE_BUS_WEBHOOK_SUB_H

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
#define WH_SECRET_PREFIX   "whsec_"
#define WH_KEY_MIN         24 /* bytes a whsec_ secret encodes (the Standard Webhooks range) */
#define WH_KEY_MAX         64
#define WH_KEY_GENERATED   32 /* bytes of a generated secret */
#define WH_PREVIOUS_MAX    3  /* earlier secrets that still sign during a rotation */
#define WH_GRACE_MAX_S     (30 * 86400)
#define WH_STD_SIG_LEN     (3 + 44) /* "v1," + base64 of 32 bytes */
/* "v1,..." for the secret and every previous one, blank-separated, NUL */
#define WH_STD_SIGS_MAX ((WH_STD_SIG_LEN + 1) * (1 + WH_PREVIOUS_MAX))

/* Which signature headers a delivery carries. BOTH is 0: a subscription
 * stored before the setting existed gets it. */
enum wh_scheme {
    WH_SCHEME_BOTH = 0,
    WH_SCHEME_STANDARD,
    WH_SCHEME_AMIBRIDGE,
};

/* A secret replaced by a rotation, still signing (webhook-signature only)
 * until `expires` (Unix seconds). */
struct wh_prev {
    char *secret;
    long long expires;
};

struct wh_conf {
    char id[WH_ID_MAX];
    char *url;
    char **events; /* event name globs, at least one */
    size_t nevents;
    char **fkeys; /* filter: header name -> value glob, all must match */
    char **fvals;
    size_t nfilter;
    char *secret;                         /* never logged, shown once */
    struct wh_prev prev[WH_PREVIOUS_MAX]; /* newest first */
    size_t nprev;
    enum wh_scheme scheme;
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
    WH_STORED, /* from the store or config: also id, created, enabled, reason,
                * previous_secrets (expired ones are dropped) */
};

/* Check the members of `o` (borrowed) and apply them to `c` (for WH_PATCH
 * `c` holds the current values and is changed only when everything is
 * valid). Unknown members are refused. URLs are checked by wh_url_check()
 * with the allow nets. Returns 0, -1 with `pb` filled, or -ENOMEM. */
int wh_conf_apply(struct wh_conf *c, json_t *o, enum wh_mode mode, const struct netlist_net *allow,
                  size_t nallow, struct wh_problem *pb);
/* A PATCH from the API: wh_conf_apply(WH_PATCH) plus the rotation of the
 * secret. A new `secret` keeps the old one signing webhook-signature for
 * `secret_grace_s` of the body, else `grace_s` (AMIBRIDGE_WEBHOOK_SECRET_GRACE_S),
 * from `now`; a grace of 0 ends the old secret and every earlier one at
 * once. At most WH_PREVIOUS_MAX are kept (the oldest go first). Returns as
 * wh_conf_apply(). */
int wh_conf_patch(struct wh_conf *c, json_t *o, int grace_s, long long now,
                  const struct netlist_net *allow, size_t nallow, struct wh_problem *pb);
/* Deep copy. 0 or -ENOMEM (dst is then empty). */
int wh_conf_copy(struct wh_conf *dst, const struct wh_conf *src);
void wh_conf_free(struct wh_conf *c);
/* The subscription as JSON: with the secret (and the previous ones) for
 * the store and the one answer to a create, without them everywhere else
 * (previous_secrets then shows only when each expires). Previous secrets
 * already expired are left out. New reference, NULL when out of memory. */
json_t *wh_conf_json(const struct wh_conf *c, int with_secret);

/* http or https, a host, no user:password, no fragment, at most
 * WH_URL_MAX bytes; a literal IP address must pass the SSRF guard. 0 or -1
 * with a sentence in `detail`. */
int wh_url_check(const char *url, const struct netlist_net *allow, size_t nallow, char *detail,
                 size_t len);

/* Does the subscription want this event (name globs and field filter)?
 * A call event (call.*) only matches globs that begin with "call". */
int wh_conf_wants(const struct wh_conf *c, const char *event, const struct ami_msg *fields);

/* "sha256=" + hex HMAC-SHA256(secret, timestamp "." body) into out
 * (WH_SIGNATURE_LEN + 1 bytes). 0 or -1. */
int wh_sign(const char *secret, const char *timestamp, const char *body, size_t len, char *out);

/* Standard Webhooks: "v1," + base64 HMAC-SHA256(key of `secret`,
 * msg_id "." timestamp "." body) into out (WH_STD_SIG_LEN + 1 bytes).
 * 0 or -1. */
int wh_sign_v1(const char *secret, const char *msg_id, const char *timestamp, const char *body,
               size_t len, char *out);
/* The webhook-signature header value of subscription `c`: the current
 * secret's signature, then those of the previous secrets not expired at
 * `now`, blank-separated, into out (WH_STD_SIGS_MAX bytes). 0 or -1. */
int wh_sign_standard(const struct wh_conf *c, const char *msg_id, const char *timestamp,
                     long long now, const char *body, size_t len, char *out);
/* The HMAC key of a secret for webhook-signature: the decoded bytes of a
 * well-formed "whsec_<base64>" (WH_KEY_MIN-WH_KEY_MAX bytes), else the
 * secret's own bytes. `key` holds WH_SECRET_MAX bytes. Returns its length. */
size_t wh_secret_key(const char *secret, unsigned char *key);
/* 1 when `secret` is "whsec_" and canonical base64 of WH_KEY_MIN to
 * WH_KEY_MAX bytes. */
int wh_secret_is_standard(const char *secret);
/* A new random secret: "whsec_" + base64 of WH_KEY_GENERATED bytes, into
 * out (at least WH_SECRET_MAX + 1 bytes). 0 or -1. */
int wh_secret_generate(char *out, size_t len);
/* "standard", "amibridge" or "both". */
const char *wh_scheme_name(enum wh_scheme s);

/* Random lowercase hex of 2*nbytes digits into out (2*nbytes + 1 bytes).
 * 0 or -1. */
int wh_random_hex(char *out, size_t nbytes);

#endif
