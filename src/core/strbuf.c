#include "core/strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRBUF_MIN_ALLOC 64

void strbuf_init(struct strbuf *sb, size_t limit)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->limit = limit;
}

void strbuf_release(struct strbuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

size_t fmt_u64(char out[21], uint64_t v)
{
    char d[20];
    size_t n = sizeof(d);
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, d + n, sizeof(d) - n);
    out[sizeof(d) - n] = '\0';
    return sizeof(d) - n;
}

int strbuf_append_u64(struct strbuf *sb, uint64_t v)
{
    char d[21];
    return strbuf_append(sb, d, fmt_u64(d, v));
}

/* Make room for `extra` more bytes plus the NUL, growing geometrically. */
int strbuf__reserve(struct strbuf *sb, size_t extra)
{
    if (sb->limit && extra > sb->limit - sb->len)
        return -E2BIG;
    if (extra > (size_t)-1 / 2 - sb->len)
        return -ENOMEM;
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    size_t ncap = sb->cap ? sb->cap : STRBUF_MIN_ALLOC;
    while (ncap < need)
        ncap *= 2;
    char *p = realloc(sb->data, ncap);
    if (!p)
        return -ENOMEM;
    sb->data = p;
    sb->cap = ncap;
    return 0;
}

int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    int rc = strbuf__reserve(sb, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
    return rc;
}

void strbuf_consume(struct strbuf *sb, size_t n)
{
    if (n >= sb->len) {
        strbuf_reset(sb);
        return;
    }
    memmove(sb->data, sb->data + n, sb->len - n);
    sb->len -= n;
    sb->data[sb->len] = '\0';
}

char *strbuf_detach(struct strbuf *sb, size_t *len_out)
{
    char *p = sb->data;
    size_t len = sb->len;
    if (!p) {
        p = malloc(1);
        if (!p)
            return NULL;
        p[0] = '\0';
    }
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    if (len_out)
        *len_out = len;
    return p;
}
