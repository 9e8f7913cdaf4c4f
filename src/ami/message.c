#include "ami/message.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"
#include "core/jsonw.h"
#include "core/utf8.h"

/* A new message has room for this many pairs and bytes of keys and values
 * (each NUL-terminated) in its own allocation: an AMI event fits, so
 * parsing one costs a single malloc. */
#define AMI_MSG_INLINE_PAIRS 12
#define AMI_MSG_INLINE_ARENA 320
#define AMI_MSG_ARENA_MAX    UINT32_MAX /* offsets are 32-bit */

/* Keys and values live NUL-terminated in one arena; pairs hold offsets.
 * The pairs and the arena start in the message's own allocation (after
 * the struct) and move to the heap only when they outgrow it. */
struct ami_pair {
    uint32_t koff, klen;
    uint32_t voff, vlen;
};

struct ami_msg {
    struct ami_pair *pairs;
    size_t npairs, cap;
    char *arena;
    size_t alen, acap;                    /* acap counts the bytes usable, alen those used */
    unsigned char pairs_heap, arena_heap; /* malloc'ed on their own: free them */
    enum ami_msg_kind kind;               /* AMI_MSG_UNKNOWN: derive from the first key */
};

/* One allocation: the struct, then room for `npairs` pairs and `abytes`
 * of arena. */
static struct ami_msg *msg_alloc(size_t npairs, size_t abytes)
{
    struct ami_msg *m = malloc(sizeof(*m) + npairs * sizeof(struct ami_pair) + abytes);
    if (!m)
        return NULL;
    *m = (struct ami_msg){0};
    m->pairs = (struct ami_pair *)(m + 1);
    m->cap = npairs;
    m->arena = (char *)(m->pairs + npairs);
    m->acap = abytes;
    return m;
}

struct ami_msg *ami_msg_new(void)
{
    return msg_alloc(AMI_MSG_INLINE_PAIRS, AMI_MSG_INLINE_ARENA);
}

struct ami_msg *ami_msg_dup(const struct ami_msg *m)
{
    /* exactly the size: a copy is kept (outlets, replay) rather than grown */
    struct ami_msg *d = msg_alloc(m->npairs, m->alen);
    if (!d)
        return NULL;
    d->kind = m->kind;
    if (m->npairs)
        memcpy(d->pairs, m->pairs, m->npairs * sizeof(*d->pairs));
    if (m->alen)
        memcpy(d->arena, m->arena, m->alen);
    d->npairs = m->npairs;
    d->alen = m->alen;
    return d;
}

void ami_msg_free(struct ami_msg *m)
{
    if (!m)
        return;
    if (m->pairs_heap)
        free(m->pairs);
    if (m->arena_heap)
        free(m->arena);
    free(m);
}

static const char *arena_at(const struct ami_msg *m, size_t off)
{
    return m->arena + off;
}

/* Room for one more pair. 0 or -ENOMEM. */
static int pairs_room(struct ami_msg *m)
{
    if (m->npairs < m->cap)
        return 0;
    size_t ncap = m->cap ? m->cap * 2 : AMI_MSG_INLINE_PAIRS;
    struct ami_pair *np =
        m->pairs_heap ? realloc(m->pairs, ncap * sizeof(*np)) : malloc(ncap * sizeof(*np));
    if (!np)
        return -ENOMEM;
    if (!m->pairs_heap && m->npairs)
        memcpy(np, m->pairs, m->npairs * sizeof(*np));
    m->pairs = np;
    m->cap = ncap;
    m->pairs_heap = 1;
    return 0;
}

/* Room for `extra` more arena bytes; the arena may move. 0 or -ENOMEM. */
static int arena_room(struct ami_msg *m, size_t extra)
{
    if (extra <= m->acap - m->alen)
        return 0;
    if (extra > AMI_MSG_ARENA_MAX - m->alen)
        return -ENOMEM;
    size_t need = m->alen + extra;
    size_t ncap = m->acap > AMI_MSG_INLINE_ARENA ? m->acap : AMI_MSG_INLINE_ARENA;
    while (ncap < need)
        ncap = ncap > AMI_MSG_ARENA_MAX / 2 ? AMI_MSG_ARENA_MAX : ncap * 2;
    char *na = m->arena_heap ? realloc(m->arena, ncap) : malloc(ncap);
    if (!na)
        return -ENOMEM;
    if (!m->arena_heap && m->alen)
        memcpy(na, m->arena, m->alen);
    m->arena = na;
    m->acap = ncap;
    m->arena_heap = 1;
    return 0;
}

/* Append s[0..len) and a NUL to the arena (room made); its offset. */
static uint32_t arena_put(struct ami_msg *m, const char *s, size_t len)
{
    uint32_t off = (uint32_t)m->alen;
    if (len)
        memcpy(m->arena + off, s, len);
    m->arena[off + len] = '\0';
    m->alen += len + 1;
    return off;
}

int ami_msg_addn(struct ami_msg *m, const char *key, size_t klen, const char *value, size_t vlen)
{
    if (klen > AMI_MSG_ARENA_MAX || vlen > AMI_MSG_ARENA_MAX - klen - 2)
        return -ENOMEM;
    if (pairs_room(m) || arena_room(m, klen + vlen + 2))
        return -ENOMEM;
    struct ami_pair p = {.klen = (uint32_t)klen, .vlen = (uint32_t)vlen};
    p.koff = arena_put(m, key, klen);
    p.voff = arena_put(m, value, vlen);
    m->pairs[m->npairs++] = p;
    return 0;
}

int ami_msg_add(struct ami_msg *m, const char *key, const char *value)
{
    return ami_msg_addn(m, key, strlen(key), value, strlen(value));
}

int ami_msg_addf(struct ami_msg *m, const char *key, const char *fmt, ...)
{
    struct strbuf sb;
    strbuf_init(&sb, 0);
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = ami_msg_addn(m, key, strlen(key), sb.data ? sb.data : "", sb.len);
    strbuf_release(&sb);
    return rc;
}

static int key_eq(const struct ami_msg *m, size_t i, const char *key)
{
    return ascii_name_eq(arena_at(m, m->pairs[i].koff), key);
}

/* key_eq() for a key of known length: the length first, the bytes only
 * when it matches (lookups run for every event, over every pair). */
static int key_eqn(const struct ami_msg *m, size_t i, const char *key, size_t klen)
{
    return m->pairs[i].klen == klen && ascii_name_eqn(arena_at(m, m->pairs[i].koff), key, klen);
}

size_t ami_msg_remove(struct ami_msg *m, const char *key)
{
    size_t out = 0, removed = 0;
    for (size_t i = 0; i < m->npairs; i++) {
        if (key_eq(m, i, key)) {
            removed++;
            continue;
        }
        m->pairs[out++] = m->pairs[i];
    }
    m->npairs = out;
    return removed;
}

int ami_msg_set(struct ami_msg *m, const char *key, const char *value)
{
    size_t i;
    for (i = 0; i < m->npairs; i++)
        if (key_eq(m, i, key))
            break;
    if (i == m->npairs)
        return ami_msg_add(m, key, value);
    size_t vlen = strlen(value);
    if (vlen > AMI_MSG_ARENA_MAX - 1 || arena_room(m, vlen + 1))
        return -ENOMEM;
    m->pairs[i].voff = arena_put(m, value, vlen);
    m->pairs[i].vlen = (uint32_t)vlen;
    /* drop later duplicates so the key holds exactly this value */
    size_t out = i + 1;
    for (size_t j = i + 1; j < m->npairs; j++)
        if (!key_eq(m, j, key))
            m->pairs[out++] = m->pairs[j];
    m->npairs = out;
    return 0;
}

size_t ami_msg_count(const struct ami_msg *m)
{
    return m->npairs;
}

const char *ami_msg_key_at(const struct ami_msg *m, size_t i)
{
    return i < m->npairs ? arena_at(m, m->pairs[i].koff) : NULL;
}

const char *ami_msg_value_at(const struct ami_msg *m, size_t i)
{
    return i < m->npairs ? arena_at(m, m->pairs[i].voff) : NULL;
}

size_t ami_msg_value_len_at(const struct ami_msg *m, size_t i)
{
    return i < m->npairs ? m->pairs[i].vlen : 0;
}

const char *ami_msg_get_nth(const struct ami_msg *m, const char *key, size_t n)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < m->npairs; i++)
        if (key_eqn(m, i, key, klen) && n-- == 0)
            return arena_at(m, m->pairs[i].voff);
    return NULL;
}

const char *ami_msg_get(const struct ami_msg *m, const char *key)
{
    return ami_msg_get_nth(m, key, 0);
}

size_t ami_msg_count_key(const struct ami_msg *m, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < m->npairs; i++)
        n += key_eq(m, i, key);
    return n;
}

int ami_msg_is(const struct ami_msg *m, const char *key, const char *value)
{
    const char *v = ami_msg_get(m, key);
    return v && ascii_name_eq(v, value);
}

enum ami_msg_kind ami_msg_kind(const struct ami_msg *m)
{
    if (m->kind != AMI_MSG_UNKNOWN)
        return m->kind;
    if (m->npairs == 0)
        return AMI_MSG_UNKNOWN;
    if (key_eqn(m, 0, "Response", 8))
        return AMI_MSG_RESPONSE;
    if (key_eqn(m, 0, "Event", 5))
        return AMI_MSG_EVENT;
    if (key_eqn(m, 0, "Action", 6))
        return AMI_MSG_ACTION;
    return AMI_MSG_UNKNOWN;
}

void ami_msg_set_kind(struct ami_msg *m, enum ami_msg_kind kind)
{
    m->kind = kind;
}

const char *ami_msg_kind_name(enum ami_msg_kind kind)
{
    switch (kind) {
    case AMI_MSG_BANNER:
        return "banner";
    case AMI_MSG_RESPONSE:
        return "response";
    case AMI_MSG_EVENT:
        return "event";
    case AMI_MSG_ACTION:
        return "action";
    case AMI_MSG_UNKNOWN:
        break;
    }
    return "unknown";
}

const char *ami_msg_name(const struct ami_msg *m)
{
    return m->npairs ? arena_at(m, m->pairs[0].voff) : "";
}

/* --- JSON ---------------------------------------------------------------- */

/* A JSON string for arbitrary bytes: as is when valid UTF-8 (the common
 * case, no copy), repaired otherwise. */
static json_t *json_from_bytes(const char *s, size_t len)
{
    if (utf8_valid(s, len))
        return json_stringn_nocheck(s, len);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    json_t *j = NULL;
    if (utf8_repair(s, len, &sb) == 0)
        j = json_stringn_nocheck(sb.data ? sb.data : "", sb.len);
    strbuf_release(&sb);
    return j;
}

/* Bytes as a valid UTF-8 C string in `sb` (repaired when needed). */
static int utf8_text(const char *s, size_t len, struct strbuf *sb)
{
    strbuf_reset(sb);
    if (utf8_valid(s, len))
        return strbuf_append(sb, s, len);
    return utf8_repair(s, len, sb);
}

json_t *ami_msg_to_json(const struct ami_msg *m)
{
    json_t *obj = json_object();
    /* lower-cased key -> the spelling first seen, so that keys differing only
     * in case merge into one member, in one pass */
    json_t *seen = json_object();
    struct strbuf key, lower;
    strbuf_init(&key, 0);
    strbuf_init(&lower, 0);
    if (!obj || !seen)
        goto fail;
    for (size_t i = 0; i < m->npairs; i++) {
        const struct ami_pair *p = &m->pairs[i];
        if (utf8_text(arena_at(m, p->koff), p->klen, &key) || utf8_text(key.data, key.len, &lower))
            goto fail;
        for (size_t j = 0; j < lower.len; j++)
            if (lower.data[j] >= 'A' && lower.data[j] <= 'Z')
                lower.data[j] = (char)(lower.data[j] - 'A' + 'a');
        json_t *val = json_from_bytes(arena_at(m, p->voff), p->vlen);
        if (!val)
            goto fail;
        json_t *first = json_object_get(seen, lower.data);
        if (!first) {
            if (json_object_set_new_nocheck(seen, lower.data, json_string_nocheck(key.data))) {
                json_decref(val);
                goto fail;
            }
            if (json_object_set_new_nocheck(obj, key.data, val))
                goto fail;
            continue;
        }
        const char *name = json_string_value(first);
        json_t *cur = json_object_get(obj, name);
        if (json_is_array(cur)) {
            if (json_array_append_new(cur, val))
                goto fail;
        } else {
            json_t *arr = json_array();
            if (!arr || json_array_append(arr, cur)) {
                json_decref(arr);
                json_decref(val);
                goto fail;
            }
            /* the _new calls take their reference even when they fail */
            if (json_array_append_new(arr, val)) {
                json_decref(arr);
                goto fail;
            }
            if (json_object_set_new_nocheck(obj, name, arr))
                goto fail;
        }
    }
    json_decref(seen);
    strbuf_release(&key);
    strbuf_release(&lower);
    return obj;
fail:
    json_decref(obj);
    json_decref(seen);
    strbuf_release(&key);
    strbuf_release(&lower);
    return NULL;
}

/* Keys the hand encoder writes as they are: printable ASCII without `"` or
 * `\\` (every key Asterisk sends). */
static int plain_key(const char *k, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (k[i] < 0x20 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\')
            return 0;
    return 1;
}

/* The general case: through jansson. */
static int json_append_tree(const struct ami_msg *m, struct strbuf *out)
{
    json_t *o = ami_msg_to_json(m);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = s ? strbuf_append_str(out, s) : -ENOMEM;
    free(s);
    return rc;
}

int ami_msg_json_append(const struct ami_msg *m, struct strbuf *out)
{
    size_t n = m->npairs;
    if (n > AMI_MSG_JSON_DIRECT_MAX)
        return json_append_tree(m, out);
    /* first[i]: the index of the first key equal to key i, ignoring case */
    unsigned char first[AMI_MSG_JSON_DIRECT_MAX], more[AMI_MSG_JSON_DIRECT_MAX];
    for (size_t i = 0; i < n; i++) {
        const struct ami_pair *p = &m->pairs[i];
        if (!plain_key(arena_at(m, p->koff), p->klen))
            return json_append_tree(m, out);
        first[i] = (unsigned char)i;
        more[i] = 0;
        for (size_t j = 0; j < i; j++) {
            const struct ami_pair *q = &m->pairs[j];
            if (first[j] == j && q->klen == p->klen &&
                !strncasecmp(arena_at(m, q->koff), arena_at(m, p->koff), p->klen)) {
                first[i] = (unsigned char)j;
                more[j] = 1;
                break;
            }
        }
    }
    int rc = strbuf_append(out, "{", 1);
    for (size_t i = 0; i < n && !rc; i++) {
        if (first[i] != i)
            continue;
        const struct ami_pair *p = &m->pairs[i];
        if (i)
            rc = strbuf_append(out, ",", 1);
        if (!rc)
            rc = jsonw_string(out, arena_at(m, p->koff), p->klen);
        if (!rc)
            rc = strbuf_append(out, more[i] ? ":[" : ":", more[i] ? 2 : 1);
        for (size_t k = i; k < n && !rc; k++) {
            if (first[k] != i)
                continue;
            if (k != i)
                rc = strbuf_append(out, ",", 1);
            if (!rc)
                rc = jsonw_string(out, arena_at(m, m->pairs[k].voff), m->pairs[k].vlen);
        }
        if (!rc && more[i])
            rc = strbuf_append(out, "]", 1);
    }
    return rc ? rc : strbuf_append(out, "}", 1);
}

static void ami_error_set(struct ami_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ami_error_set(struct ami_error *err, const char *field, const char *fmt, ...)
{
    if (!err)
        return;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
}

/* Text form of a scalar JSON value; returns 0, -EINVAL (not a scalar) or
 * -ENOMEM. Integers print exactly; reals in the shortest round-trip form. */
static int json_scalar_text(const json_t *v, struct strbuf *sb)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strbuf_append(sb, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return strbuf_printf(sb, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL: {
        /* the shortest form that reads back as the same double: 0.1, not
         * 0.10000000000000001 */
        char buf[40];
        double d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        return strbuf_append_str(sb, buf);
    }
    case JSON_TRUE:
        return strbuf_append_str(sb, "true");
    case JSON_FALSE:
        return strbuf_append_str(sb, "false");
    default:
        return -EINVAL;
    }
}

static int add_json_scalar(struct ami_msg *m, const char *key, const json_t *v,
                           struct ami_error *err)
{
    struct strbuf sb;
    strbuf_init(&sb, 0);
    int rc = json_scalar_text(v, &sb);
    if (rc == -EINVAL)
        ami_error_set(err, key, "value of '%s' must be a string, number or boolean", key);
    else if (rc == 0)
        rc = ami_msg_addn(m, key, strlen(key), sb.data ? sb.data : "", sb.len);
    strbuf_release(&sb);
    return rc;
}

int ami_msg_from_json(const json_t *obj, struct ami_msg **out, struct ami_error *err)
{
    *out = NULL;
    if (!json_is_object(obj)) {
        ami_error_set(err, "", "body must be a JSON object of AMI headers");
        return -EINVAL;
    }
    struct ami_msg *m = ami_msg_new();
    if (!m)
        return -ENOMEM;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach ((json_t *)obj, key, v) {
        if (json_is_array(v)) {
            size_t i;
            json_t *item;
            json_array_foreach (v, i, item) {
                if (json_is_array(item) || json_is_object(item) || json_is_null(item)) {
                    ami_error_set(err, key, "items of '%s' must be strings, numbers or booleans",
                                  key);
                    rc = -EINVAL;
                    break;
                }
                if ((rc = add_json_scalar(m, key, item, err)) != 0)
                    break;
            }
        } else {
            rc = add_json_scalar(m, key, v, err);
        }
        if (rc)
            break;
    }
    if (rc) {
        ami_msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* --- actions on the wire --------------------------------------------------- */

int ami_key_valid(const char *key, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* A key for use in error messages: printable ASCII only, truncated. */
static void key_for_error(const char *key, size_t len, char *dst, size_t dstlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)key[i];
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[o] = '\0';
}

int ami_action_validate(const struct ami_msg *m, struct ami_error *err)
{
    if (m->npairs == 0 || !ascii_name_eq(arena_at(m, m->pairs[0].koff), "Action")) {
        ami_error_set(err, "Action", "the first header must be Action");
        return -EINVAL;
    }
    if (m->pairs[0].vlen == 0) {
        ami_error_set(err, "Action", "Action must not be empty");
        return -EINVAL;
    }
    /* the ActionID the pool adds is one of Asterisk's lines too: past the
     * limit Asterisk answers without it, and the reply finds no request */
    size_t lines = m->npairs + (ami_msg_get(m, "ActionID") ? 0 : 1);
    if (lines > AMI_ACTION_MAX_HEADERS) {
        ami_error_set(err, "",
                      "too many headers: %zu, Asterisk keeps at most %d lines, the ActionID "
                      "included",
                      m->npairs, AMI_ACTION_MAX_HEADERS);
        return -EINVAL;
    }
    for (size_t i = 0; i < m->npairs; i++) {
        const struct ami_pair *p = &m->pairs[i];
        const char *k = arena_at(m, p->koff);
        const char *v = arena_at(m, p->voff);
        char shown[AMI_KEY_MAX + 1];
        key_for_error(k, p->klen, shown, sizeof(shown));
        if (p->klen > AMI_KEY_MAX || !ami_key_valid(k, p->klen)) {
            ami_error_set(err, shown,
                          "header name '%s' is not allowed: use 1 to %d of A-Z a-z 0-9 _ -", shown,
                          AMI_KEY_MAX);
            return -EINVAL;
        }
        for (size_t j = 0; j < p->vlen; j++) {
            if (v[j] == '\r' || v[j] == '\n' || v[j] == '\0') {
                ami_error_set(err, shown, "value of '%s' contains a %s character", shown,
                              v[j] == '\r'   ? "CR"
                              : v[j] == '\n' ? "LF"
                                             : "NUL");
                return -EINVAL;
            }
        }
        if (p->klen + 2 + p->vlen + 2 > AMI_ACTION_MAX_LINE) {
            ami_error_set(err, shown,
                          "value of '%s' is too long: a header line may be at most %d bytes", shown,
                          AMI_ACTION_MAX_LINE);
            return -EINVAL;
        }
    }
    return 0;
}

int ami_msg_write(const struct ami_msg *m, struct strbuf *out)
{
    size_t mark = out->len;
    for (size_t i = 0; i < m->npairs; i++) {
        const struct ami_pair *p = &m->pairs[i];
        if (strbuf_append(out, arena_at(m, p->koff), p->klen) || strbuf_append(out, ": ", 2) ||
            strbuf_append(out, arena_at(m, p->voff), p->vlen) || strbuf_append(out, "\r\n", 2))
            goto nomem;
    }
    if (strbuf_append(out, "\r\n", 2))
        goto nomem;
    return 0;
nomem:
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    return -ENOMEM;
}

int ami_action_serialize(const struct ami_msg *m, struct strbuf *out, struct ami_error *err)
{
    int rc = ami_action_validate(m, err);
    if (rc)
        return rc;
    return ami_msg_write(m, out);
}
