#include "core/jsonw.h"

#include "core/utf8.h"

/* Bytes that cannot go into a JSON string as they are. */
static int needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static int escape(struct strbuf *out, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char seq[6] = {'\\', 0};
    switch (c) {
    case '"':
        seq[1] = '"';
        return strbuf_append(out, seq, 2);
    case '\\':
        seq[1] = '\\';
        return strbuf_append(out, seq, 2);
    case '\b':
        seq[1] = 'b';
        return strbuf_append(out, seq, 2);
    case '\f':
        seq[1] = 'f';
        return strbuf_append(out, seq, 2);
    case '\n':
        seq[1] = 'n';
        return strbuf_append(out, seq, 2);
    case '\r':
        seq[1] = 'r';
        return strbuf_append(out, seq, 2);
    case '\t':
        seq[1] = 't';
        return strbuf_append(out, seq, 2);
    default:
        seq[1] = 'u';
        seq[2] = '0';
        seq[3] = '0';
        seq[4] = hex[c >> 4];
        seq[5] = hex[c & 15];
        return strbuf_append(out, seq, 6);
    }
}

/* The escaping pass over bytes known to be valid UTF-8. */
static int escaped(struct strbuf *out, const unsigned char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (!needs_escape(s[i]))
            continue;
        int rc = strbuf_append(out, s + run, i - run);
        if (!rc)
            rc = escape(out, s[i]);
        if (rc)
            return rc;
        run = i + 1;
    }
    return strbuf_append(out, s + run, len - run);
}

int jsonw_string(struct strbuf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    int high = 0;
    for (size_t i = 0; i < len && !high; i++)
        high = p[i] >= 0x80;
    int rc = strbuf_append(out, "\"", 1);
    if (rc)
        return rc;
    if (high && !utf8_valid(s, len)) {
        struct strbuf fixed;
        strbuf_init(&fixed, 0);
        rc = utf8_repair(s, len, &fixed);
        if (!rc)
            rc = escaped(out, (const unsigned char *)(fixed.data ? fixed.data : ""), fixed.len);
        strbuf_release(&fixed);
    } else {
        rc = escaped(out, p, len);
    }
    return rc ? rc : strbuf_append(out, "\"", 1);
}

int jsonw_u64(struct strbuf *out, uint64_t v)
{
    char d[20];
    size_t n = sizeof(d);
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return strbuf_append(out, d + n, sizeof(d) - n);
}
