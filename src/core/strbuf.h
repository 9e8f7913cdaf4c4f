/* strbuf: a growable byte buffer with an optional hard cap.
 *
 * Used wherever bytes are assembled before they go out (AMI actions, JSON
 * bodies, simulator replies). The buffer is always NUL-terminated so it can
 * be handed to C string APIs, but it may also hold arbitrary bytes.
 */
#ifndef AMIBRIDGE_CORE_STRBUF_H
#define AMIBRIDGE_CORE_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct strbuf {
    char *data;   /* owned; NUL-terminated when non-NULL */
    size_t len;   /* bytes used, not counting the terminating NUL */
    size_t cap;   /* bytes allocated */
    size_t limit; /* 0 = unlimited; otherwise len never exceeds it */
};

/* Initialise an empty buffer. limit 0 means no cap. Never fails. */
void strbuf_init(struct strbuf *sb, size_t limit);

/* Release the memory; the buffer may be initialised again afterwards. */
void strbuf_release(struct strbuf *sb);

/* Forget the contents but keep the allocation. */
void strbuf_reset(struct strbuf *sb);

/* Internal: strbuf_grow() when the room is not there yet. */
int strbuf__reserve(struct strbuf *sb, size_t extra);

/* Make room for `extra` more bytes (and the NUL) so that they can be
 * written at data + len directly; len is the caller's to move then.
 * 0, -ENOMEM or -E2BIG. Inline: the event path appends a dozen small
 * pieces per event, and the room is nearly always there already. */
static inline int strbuf_grow(struct strbuf *sb, size_t extra)
{
    if (extra < sb->cap - sb->len && (!sb->limit || extra <= sb->limit - sb->len))
        return 0;
    return strbuf__reserve(sb, extra);
}

/* Append bytes. Returns 0, -ENOMEM, or -E2BIG when the cap would be passed
 * (in which case nothing is appended). */
static inline int strbuf_append(struct strbuf *sb, const void *data, size_t len)
{
    int rc = strbuf_grow(sb, len);
    if (rc)
        return rc;
    if (len)
        memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
    return 0;
}

static inline int strbuf_append_str(struct strbuf *sb, const char *s)
{
    return strbuf_append(sb, s, strlen(s));
}
/* v in decimal; what the hot paths use instead of snprintf's "%u", which
 * costs about 300 instructions a call. */
int strbuf_append_u64(struct strbuf *sb, uint64_t v);
/* The same into out (room for 21 bytes), NUL-terminated; its length. */
size_t fmt_u64(char out[21], uint64_t v);
int strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);

/* Drop the first n bytes (n <= len), moving the rest to the front. */
void strbuf_consume(struct strbuf *sb, size_t n);

/* Hand the data to the caller (who must free() it) and reset the buffer.
 * Returns an empty string rather than NULL when nothing was appended;
 * NULL only when that allocation fails. */
char *strbuf_detach(struct strbuf *sb, size_t *len_out);

#endif
