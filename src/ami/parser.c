#include "ami/parser.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/strbuf.h"

#define AMI_END_COMMAND     "--END COMMAND--"
#define AMI_END_COMMAND_LEN (sizeof(AMI_END_COMMAND) - 1)
#define AMI_ERR_SNIPPET     40 /* bytes of an offending line quoted in an error */

/* Where we are inside a legacy "Response: Follows" reply. */
enum follows_state {
    FOLLOWS_NO = 0,
    FOLLOWS_HEADERS, /* Privilege / ActionID lines may still come */
    FOLLOWS_OUTPUT,  /* every line is command output */
    FOLLOWS_END,     /* saw --END COMMAND--, the blank line is next */
};

struct ami_parser {
    struct ami_parser_limits lim;
    int flags;
    struct strbuf in; /* fed bytes; [pos, in.len) not parsed yet */
    size_t pos;
    size_t scan;        /* no '\n' in [pos, scan) */
    int banner_pending; /* the next non-empty line is the banner */
    struct ami_msg *cur;
    size_t cur_bytes;
    enum follows_state follows;
    enum ami_parser_error err;
    char errstr[192];
};

struct ami_parser *ami_parser_new(const struct ami_parser_limits *limits, int flags)
{
    struct ami_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->lim.max_line = AMI_PARSER_MAX_LINE;
    p->lim.max_headers = AMI_PARSER_MAX_HEADERS;
    p->lim.max_message = AMI_PARSER_MAX_MESSAGE;
    if (limits) {
        if (limits->max_line)
            p->lim.max_line = limits->max_line;
        if (limits->max_headers)
            p->lim.max_headers = limits->max_headers;
        if (limits->max_message)
            p->lim.max_message = limits->max_message;
    }
    p->flags = flags;
    p->banner_pending = (flags & AMI_PARSER_EXPECT_BANNER) != 0;
    strbuf_init(&p->in, 0);
    return p;
}

void ami_parser_free(struct ami_parser *p)
{
    if (!p)
        return;
    strbuf_release(&p->in);
    ami_msg_free(p->cur);
    free(p);
}

enum ami_parser_error ami_parser_error(const struct ami_parser *p)
{
    return p->err;
}

const char *ami_parser_errstr(const struct ami_parser *p)
{
    return p->errstr;
}

size_t ami_parser_pending(const struct ami_parser *p)
{
    return p->in.len - p->pos;
}

static int fail(struct ami_parser *p, enum ami_parser_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ami_parser *p, enum ami_parser_error e, const char *fmt, ...)
{
    p->err = e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errstr, sizeof(p->errstr), fmt, ap);
    va_end(ap);
    ami_msg_free(p->cur);
    p->cur = NULL;
    return -1;
}

/* Printable quote of the start of a bad line, for the error message. */
static void snippet(const char *s, size_t len, char *dst, size_t dstlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < dstlen; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
    }
    dst[o] = '\0';
}

int ami_parser_feed(struct ami_parser *p, const char *buf, size_t len)
{
    if (p->err)
        return -1;
    if (p->pos) {
        strbuf_consume(&p->in, p->pos);
        p->scan -= p->pos;
        p->pos = 0;
    }
    size_t bound = p->lim.max_message + AMI_PARSER_FEED_SLACK;
    if (len > bound - p->in.len || (p->in.len > bound))
        return fail(p, AMI_PERR_BUFFER_FULL,
                    "more than %zu bytes of AMI input waiting to be parsed", bound);
    if (strbuf_append(&p->in, buf, len))
        return fail(p, AMI_PERR_NOMEM, "out of memory buffering AMI input");
    return 0;
}

/* Add a pair to the message being built, enforcing the caps. */
static int add_pair(struct ami_parser *p, const char *k, size_t klen, const char *v, size_t vlen)
{
    if (!p->cur && !(p->cur = ami_msg_new()))
        return fail(p, AMI_PERR_NOMEM, "out of memory");
    if (ami_msg_count(p->cur) >= p->lim.max_headers)
        return fail(p, AMI_PERR_TOO_MANY_HEADERS, "AMI message has more than %zu headers",
                    p->lim.max_headers);
    if (ami_msg_addn(p->cur, k, klen, v, vlen))
        return fail(p, AMI_PERR_NOMEM, "out of memory");
    return 0;
}

static int emit(struct ami_parser *p, struct ami_msg **out)
{
    *out = p->cur;
    p->cur = NULL;
    p->cur_bytes = 0;
    p->follows = FOLLOWS_NO;
    return 1;
}

/* One line of a legacy Follows reply (terminator stripped). */
static int follows_line(struct ami_parser *p, const char *line, size_t len)
{
    if (len >= AMI_END_COMMAND_LEN &&
        memcmp(line + len - AMI_END_COMMAND_LEN, AMI_END_COMMAND, AMI_END_COMMAND_LEN) == 0) {
        /* old Asterisk glues the marker to the last output line when that
         * line had no newline of its own */
        size_t rest = len - AMI_END_COMMAND_LEN;
        p->follows = FOLLOWS_END;
        return rest ? add_pair(p, "Output", 6, line, rest) : 0;
    }
    if (p->follows == FOLLOWS_HEADERS) {
        const char *colon = memchr(line, ':', len);
        if (colon) {
            size_t klen = (size_t)(colon - line);
            if ((klen == 9 && !strncasecmp(line, "Privilege", 9)) ||
                (klen == 8 && !strncasecmp(line, "ActionID", 8)) ||
                (klen == 7 && !strncasecmp(line, "Message", 7))) {
                const char *v = colon + 1;
                size_t vlen = len - klen - 1;
                if (vlen && *v == ' ')
                    v++, vlen--;
                return add_pair(p, line, klen, v, vlen);
            }
        }
        p->follows = FOLLOWS_OUTPUT;
    }
    return add_pair(p, "Output", 6, line, len);
}

/* Handle one complete line. Returns 1 with *out set when a message is
 * complete, 0 to go on, -1 on error. *reparse is set when the line must be
 * handled again as the start of the next message. */
static int handle_line(struct ami_parser *p, const char *line, size_t len, size_t raw,
                       struct ami_msg **out, int *reparse)
{
    if (memchr(line, '\0', len))
        return fail(p, AMI_PERR_NUL, "NUL byte in AMI input");

    if (p->banner_pending) {
        if (len == 0)
            return 0;
        p->banner_pending = 0;
        if (add_pair(p, "Banner", 6, line, len))
            return -1;
        ami_msg_set_kind(p->cur, AMI_MSG_BANNER);
        return emit(p, out);
    }

    if (p->follows == FOLLOWS_END) {
        /* the blank line should follow the marker; if it does not, the
         * message still ended there */
        if (len != 0)
            *reparse = 1;
        return emit(p, out);
    }

    p->cur_bytes += raw;
    if (p->cur_bytes > p->lim.max_message)
        return fail(p, AMI_PERR_MESSAGE_TOO_BIG, "AMI message larger than %zu bytes",
                    p->lim.max_message);

    if (p->follows != FOLLOWS_NO)
        return follows_line(p, line, len) < 0 ? -1 : 0;

    if (len == 0) {
        if (p->cur && ami_msg_count(p->cur))
            return emit(p, out);
        p->cur_bytes = 0; /* a stray blank line between messages */
        return 0;
    }

    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line) {
        char s[AMI_ERR_SNIPPET + 1];
        snippet(line, len, s, sizeof(s));
        return fail(p, AMI_PERR_SYNTAX, "AMI line is not 'Key: value': \"%s\"", s);
    }
    size_t klen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = len - klen - 1;
    if (vlen && *v == ' ')
        v++, vlen--;
    int first = !p->cur || ami_msg_count(p->cur) == 0;
    if (add_pair(p, line, klen, v, vlen))
        return -1;
    if (first && klen == 8 && !strncasecmp(line, "Response", 8) && vlen == 7 &&
        !strncasecmp(v, "Follows", 7))
        p->follows = FOLLOWS_HEADERS;
    return 0;
}

int ami_parser_next(struct ami_parser *p, struct ami_msg **out)
{
    *out = NULL;
    if (p->err)
        return -1;
    for (;;) {
        const char *base = p->in.data;
        size_t end = p->in.len;
        const char *nl = p->scan < end ? memchr(base + p->scan, '\n', end - p->scan) : NULL;
        if (!nl) {
            p->scan = end;
            /* +1: a CR may be waiting for its LF */
            if (end - p->pos > p->lim.max_line + 1)
                return fail(p, AMI_PERR_LINE_TOO_LONG, "AMI line longer than %zu bytes",
                            p->lim.max_line);
            return 0;
        }
        size_t start = p->pos;
        size_t nlpos = (size_t)(nl - base);
        size_t len = nlpos - start;
        if (len && base[nlpos - 1] == '\r')
            len--;
        if (len > p->lim.max_line)
            return fail(p, AMI_PERR_LINE_TOO_LONG, "AMI line longer than %zu bytes",
                        p->lim.max_line);
        p->pos = p->scan = nlpos + 1;
        int reparse = 0;
        int rc = handle_line(p, base + start, len, nlpos + 1 - start, out, &reparse);
        if (reparse)
            p->pos = p->scan = start;
        if (rc != 0)
            return rc;
    }
}
