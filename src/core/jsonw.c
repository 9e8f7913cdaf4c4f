#include "core/jsonw.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/utf8.h"

/* Bytes that cannot go into a JSON string as they are. */
static int needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* Write the escaped form of bytes known to be valid UTF-8 at w (room for
 * six bytes per input byte); returns the end. */
static char *escaped(char *w, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (!needs_escape(c)) {
            *w++ = (char)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"':
            *w++ = '"';
            break;
        case '\\':
            *w++ = '\\';
            break;
        case '\b':
            *w++ = 'b';
            break;
        case '\f':
            *w++ = 'f';
            break;
        case '\n':
            *w++ = 'n';
            break;
        case '\r':
            *w++ = 'r';
            break;
        case '\t':
            *w++ = 't';
            break;
        default:
            *w++ = 'u';
            *w++ = '0';
            *w++ = '0';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        }
    }
    return w;
}

static int quoted(struct strbuf *out, const unsigned char *s, size_t len)
{
    if (len > ((size_t)-1 - 2) / 6)
        return -ENOMEM;
    int rc = strbuf_grow(out, 2 + 6 * len);
    if (rc)
        return rc;
    char *w = out->data + out->len;
    *w++ = '"';
    w = escaped(w, s, len);
    *w++ = '"';
    *w = '\0';
    out->len = (size_t)(w - out->data);
    return 0;
}

/* Printable ASCII other than `"` and `\\`: copied as it is. */
static int plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Are the 8 bytes at p all plain? Word at a time: a byte below 0x20, a
 * `"`, a `\\` or a high bit anywhere sets a high bit in the result (the
 * zero-byte tests of "Bit Twiddling Hacks"; exact as a yes/no). */
static int plain8(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    uint64_t ctl = (v - ones * 0x20) & ~v;
    uint64_t q = v ^ (ones * '"');
    uint64_t b = v ^ (ones * '\\');
    q = (q - ones) & ~q;
    b = (b - ones) & ~b;
    return ((ctl | q | b | v) & high) == 0;
}

int jsonw_string(struct strbuf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (len - i >= 8 && plain8(p + i))
        i += 8;
    while (i < len && plain(p[i]))
        i++;
    if (i == len) { /* the common case (every AMI key, most values): one copy */
        if (len > (size_t)-1 - 3)
            return -ENOMEM;
        int rc = strbuf_grow(out, len + 2);
        if (rc)
            return rc;
        char *w = out->data + out->len;
        *w++ = '"';
        memcpy(w, s, len);
        w += len;
        *w++ = '"';
        *w = '\0';
        out->len = (size_t)(w - out->data);
        return 0;
    }
    int high = 0;
    for (; i < len && !high; i++)
        high = p[i] >= 0x80;
    if (!high || utf8_valid(s, len))
        return quoted(out, p, len);
    struct strbuf fixed;
    strbuf_init(&fixed, 0);
    int rc = utf8_repair(s, len, &fixed);
    if (!rc)
        rc = quoted(out, (const unsigned char *)(fixed.data ? fixed.data : ""), fixed.len);
    strbuf_release(&fixed);
    return rc;
}

int jsonw_u64(struct strbuf *out, uint64_t v)
{
    return strbuf_append_u64(out, v);
}

/* jansson's jsonp_dtostr(): "%.*g", a ".0" when neither '.' nor 'e' shows
 * it is a real, no '+' and no leading zeros in the exponent. */
static int real_text(struct strbuf *out, double d, int precision)
{
    char b[64];
    int n = snprintf(b, sizeof(b) - 3, "%.*g", precision ? precision : 17, d);
    if (n < 0 || (size_t)n >= sizeof(b) - 3)
        return -EINVAL;
    size_t len = (size_t)n;
    char *e = memchr(b, 'e', len);
    if (!e && !memchr(b, '.', len)) {
        b[len++] = '.';
        b[len++] = '0';
    }
    if (e) {
        char *start = e + 1, *end = e + 2;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - b));
            len -= (size_t)(end - start);
        }
    }
    return strbuf_append(out, b, len);
}

int jsonw_real(struct strbuf *out, double d, int precision)
{
    return real_text(out, d, precision);
}

static int value(struct strbuf *out, const json_t *v, int precision, int depth)
{
    char b[24];
    int rc = 0;
    if (depth > JSONW_MAX_DEPTH)
        return -ELOOP;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        json_t *o = (json_t *)v; /* jansson's iterators take no const */
        int first = 1;
        if ((rc = strbuf_append(out, "{", 1)))
            return rc;
        for (void *it = json_object_iter(o); it; it = json_object_iter_next(o, it), first = 0) {
            if ((!first && (rc = strbuf_append(out, ",", 1))) ||
                (rc = jsonw_string(out, json_object_iter_key(it), json_object_iter_key_len(it))) ||
                (rc = strbuf_append(out, ":", 1)) ||
                (rc = value(out, json_object_iter_value(it), precision, depth + 1)))
                return rc;
        }
        return strbuf_append(out, "}", 1);
    }
    case JSON_ARRAY: {
        if ((rc = strbuf_append(out, "[", 1)))
            return rc;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i && (rc = strbuf_append(out, ",", 1))) ||
                (rc = value(out, json_array_get(v, i), precision, depth + 1)))
                return rc;
        return strbuf_append(out, "]", 1);
    }
    case JSON_STRING:
        return jsonw_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        rc = snprintf(b, sizeof(b), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strbuf_append(out, b, (size_t)rc);
    case JSON_REAL:
        return real_text(out, json_real_value(v), precision);
    case JSON_TRUE:
        return strbuf_append(out, "true", 4);
    case JSON_FALSE:
        return strbuf_append(out, "false", 5);
    case JSON_NULL:
        return strbuf_append(out, "null", 4);
    }
    return -EINVAL;
}

int jsonw_value(struct strbuf *out, const json_t *v, int precision)
{
    return v ? value(out, v, precision, 0) : -EINVAL;
}
