/* ami/message: one AMI message (action, response, event or banner).
 *
 * A message is an ordered list of key/value pairs. Keys may repeat
 * (Output, Variable, ChanVariable) and every value is kept in order.
 * Lookups are case-insensitive, as Asterisk's own are; the spelling that
 * arrived is kept for output.
 *
 * Ownership: ami_msg_new() returns a message owned by the caller, released
 * with ami_msg_free(). Strings returned by the getters are borrowed: they
 * live until the message is changed or freed.
 */
#ifndef AMIBRIDGE_AMI_MESSAGE_H
#define AMIBRIDGE_AMI_MESSAGE_H

#include <jansson.h>
#include <stddef.h>

#include "core/strbuf.h"

/* Limits a real Asterisk puts on what it reads from a client (manager.c:
 * a 1025-byte input buffer per line and AST_MAX_MANHEADERS lines per
 * message; Asterisk 22 answers such an action "Failed to parse message:
 * line too long" or "Too many lines in message", older versions silently
 * cut the line or dropped the extra headers). Actions that would cross them
 * are refused here, naming the field, before anything is sent. */
#define AMI_ACTION_MAX_LINE    1024 /* bytes per "Key: value\r\n" line */
#define AMI_ACTION_MAX_HEADERS 128
#define AMI_KEY_MAX            64 /* longest key we accept in an action */

enum ami_msg_kind {
    AMI_MSG_UNKNOWN = 0, /* first key is none of the below */
    AMI_MSG_BANNER,      /* "Asterisk Call Manager/x.y.z" line */
    AMI_MSG_RESPONSE,    /* first key is Response */
    AMI_MSG_EVENT,       /* first key is Event (OriginateResponse too) */
    AMI_MSG_ACTION,      /* first key is Action */
};

/* Why a JSON object or an action was refused. `field` names the offending
 * key ("" when the problem is not tied to one), `detail` says what is wrong
 * in a sentence fit for an API error. */
struct ami_error {
    char field[AMI_KEY_MAX + 16];
    char detail[256];
};

struct ami_msg;

/* A new empty message, or NULL when out of memory. */
struct ami_msg *ami_msg_new(void);
/* A copy (two allocations), or NULL when out of memory. */
struct ami_msg *ami_msg_dup(const struct ami_msg *m);
void ami_msg_free(struct ami_msg *m);

/* Append a pair; both strings are copied. Lengths allow values that carry
 * NUL bytes (from JSON) so that validation can see and refuse them.
 * Returns 0 or -ENOMEM. */
int ami_msg_add(struct ami_msg *m, const char *key, const char *value);
int ami_msg_addn(struct ami_msg *m, const char *key, size_t klen, const char *value, size_t vlen);
int ami_msg_addf(struct ami_msg *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replace the value of the first `key` (case-insensitive), or append the
 * pair when the key is absent. Later duplicates are removed. 0 or -ENOMEM. */
int ami_msg_set(struct ami_msg *m, const char *key, const char *value);

/* Remove every pair with this key; returns how many were removed. */
size_t ami_msg_remove(struct ami_msg *m, const char *key);

size_t ami_msg_count(const struct ami_msg *m);
const char *ami_msg_key_at(const struct ami_msg *m, size_t i);
const char *ami_msg_value_at(const struct ami_msg *m, size_t i);
size_t ami_msg_value_len_at(const struct ami_msg *m, size_t i);

/* First value of `key`, case-insensitive; NULL when absent. */
const char *ami_msg_get(const struct ami_msg *m, const char *key);
/* n-th (0-based) value of `key`; NULL when there are fewer. */
const char *ami_msg_get_nth(const struct ami_msg *m, const char *key, size_t n);
size_t ami_msg_count_key(const struct ami_msg *m, const char *key);
/* True when `key` is present and its value equals `value` (case-insensitive). */
int ami_msg_is(const struct ami_msg *m, const char *key, const char *value);

/* The kind, from the first key (a banner is marked by the parser). */
enum ami_msg_kind ami_msg_kind(const struct ami_msg *m);
void ami_msg_set_kind(struct ami_msg *m, enum ami_msg_kind kind);
const char *ami_msg_kind_name(enum ami_msg_kind kind);
/* Value of the first pair: the event name, response status or action. */
const char *ami_msg_name(const struct ami_msg *m);

/* JSON object of the message: each key once, in first-seen order; a key that
 * repeats becomes an array of its values. Bytes that are not UTF-8 are
 * replaced by U+FFFD so the result is always valid JSON. New reference;
 * NULL when out of memory. */
json_t *ami_msg_to_json(const struct ami_msg *m);

/* The same object as JSON text (the bytes json_dumps(ami_msg_to_json(m),
 * JSON_COMPACT) gives), appended to `out` without building the tree for
 * messages of at most AMI_MSG_JSON_DIRECT_MAX pairs with plain keys.
 * 0, -ENOMEM or -E2BIG. */
#define AMI_MSG_JSON_DIRECT_MAX 64
int ami_msg_json_append(const struct ami_msg *m, struct strbuf *out);

/* Build a message from a JSON object of headers: string, integer, real or
 * boolean values; an array of those repeats the header. Anything else is
 * refused with `err` naming the field. Returns 0 and sets *out (owned by the
 * caller), -EINVAL with `err` filled, or -ENOMEM. The result is not yet
 * validated as an action: ami_action_serialize() does that. */
int ami_msg_from_json(const json_t *obj, struct ami_msg **out, struct ami_error *err);

/* Check that the message can be sent as an action to a real Asterisk: the
 * first key is Action with a non-empty value; every key matches
 * [A-Za-z0-9_-]+ and is at most AMI_KEY_MAX long; no value holds CR, LF or
 * NUL; no line passes AMI_ACTION_MAX_LINE; at most AMI_ACTION_MAX_HEADERS.
 * Returns 0, or -EINVAL with `err` naming the first bad field. */
int ami_action_validate(const struct ami_msg *m, struct ami_error *err);

/* Validate, then append the wire form ("Key: value\r\n" ... "\r\n") to
 * `out`. Nothing is appended on error. 0, -EINVAL (err filled), -ENOMEM. */
int ami_action_serialize(const struct ami_msg *m, struct strbuf *out, struct ami_error *err);

/* Append the wire form without any validation (server side, tests).
 * 0 or -ENOMEM. */
int ami_msg_write(const struct ami_msg *m, struct strbuf *out);

/* True when `key` is a syntactically valid AMI key ([A-Za-z0-9_-]+). */
int ami_key_valid(const char *key, size_t len);

#endif
