#include "core/utf8.h"

static const char UTF8_REPLACEMENT[] = "\xEF\xBF\xBD";

/* Expected length and allowed range of the second byte for lead byte c;
 * 0 when c cannot start a sequence. Unicode ch. 3, table 3-7. */
static size_t utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0)
            *lo = 0xA0;
        else if (c == 0xED)
            *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0)
            *lo = 0x90;
        else if (c == 0xF4)
            *hi = 0x8F;
        return 4;
    }
    return 0;
}

/* Bytes of the sequence at s that are well-formed so far: the whole length
 * when it is complete and valid (*ok set), otherwise the maximal invalid
 * subpart (at least 1), which is replaced by one U+FFFD. */
static size_t utf8_scan(const unsigned char *s, size_t len, int *ok)
{
    unsigned char lo, hi;
    size_t n = utf8_lead(s[0], &lo, &hi);
    *ok = 0;
    if (!n)
        return 1;
    size_t i = 1;
    if (i < len && s[1] >= lo && s[1] <= hi) {
        i++;
        while (i < n && i < len && s[i] >= 0x80 && s[i] <= 0xBF)
            i++;
    }
    *ok = (i == n);
    return i;
}

int utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int ok;
        i += utf8_scan(p + i, len - i, &ok);
        if (!ok)
            return 0;
    }
    return 1;
}

int utf8_repair(const char *s, size_t len, struct strbuf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int rc;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int ok;
        size_t n = utf8_scan(p + i, len - i, &ok);
        if (ok) {
            i += n;
            continue;
        }
        if ((rc = strbuf_append(out, s + run, i - run)) != 0)
            return rc;
        if ((rc = strbuf_append(out, UTF8_REPLACEMENT, 3)) != 0)
            return rc;
        i += n;
        run = i;
    }
    return strbuf_append(out, s + run, len - run);
}
