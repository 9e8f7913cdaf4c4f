#include "http/h1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"

static void set_err(struct h1_error *e, int status, const char *slug, const char *title,
                    const char *detail)
{
    e->status = status;
    e->slug = slug;
    e->title = title;
    e->detail = detail;
}

static void bad_framing(struct h1_error *e, const char *detail)
{
    set_err(e, 400, "bad-framing", "Bad request", detail);
}

static void bad_request(struct h1_error *e, const char *detail)
{
    set_err(e, 400, "bad-request", "Bad request", detail);
}

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A control byte other than HT: never inside a line. */
static int is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* --- heads -------------------------------------------------------------------------------- */

ssize_t h1_head_end(const char *buf, size_t len, size_t *from, struct h1_error *e)
{
    size_t line = *from, lim = len < H1_HEAD_MAX ? len : H1_HEAD_MAX;
    for (size_t i = line; i < lim; i++) {
        if (buf[i] != '\n')
            continue;
        if (i == line || buf[i - 1] != '\r') {
            bad_framing(e, "a line of the request head ends in LF without CR");
            return -1;
        }
        /* an empty line ends the head, unless only empty lines came before it */
        if (i == line + 1) {
            size_t k = 0;
            while (k + 1 < line && buf[k] == '\r' && buf[k + 1] == '\n')
                k += 2;
            if (k < line)
                return (ssize_t)(i + 1);
        }
        line = i + 1;
    }
    *from = line;
    if (len >= H1_HEAD_MAX) {
        set_err(e, 431, "header-too-large", "Request header fields too large",
                "the request head (request line and headers) is longer than 8 KiB");
        return -1;
    }
    return 0;
}

/* The Content-Length value raw, from after the colon to the end of the
 * line: blanks before it, then digits only (RFC 9110, 8.6), the number
 * fitting in 64 bits. */
static int read_length(const char *v, uint64_t *out, struct h1_error *e)
{
    while (is_blank(*v))
        v++;
    uint64_t n = 0;
    const char *p = v;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10) {
            for (; *p >= '0' && *p <= '9'; p++)
                ;
            if (*p)
                break;
            set_err(e, 413, "payload-too-large", "Payload too large",
                    "the Content-Length does not fit in 64 bits");
            return -1;
        }
        n = n * 10 + d;
    }
    if (p == v || *p) {
        bad_framing(e, "the Content-Length is not a number (digits only, at least one, no blank "
                       "after it)");
        return -1;
    }
    *out = n;
    return 0;
}

/* Connection: a comma-separated list of options. */
static void read_connection(const char *v, int *close_, int *keep)
{
    while (*v) {
        while (*v == ',' || is_blank(*v))
            v++;
        size_t n = strcspn(v, ", \t");
        if (n == 5 && !strncasecmp(v, "close", 5))
            *close_ = 1;
        else if (n == 10 && !strncasecmp(v, "keep-alive", 10))
            *keep = 1;
        v += n;
    }
}

static int request_line(char *line, struct h1_head *h, int *blank_target, struct h1_error *e)
{
    char *p = line;
    while (is_tchar((unsigned char)*p))
        p++;
    if (p == line || *p != ' ') {
        bad_request(e, "the request line is malformed (method, one blank, target, one blank, "
                       "HTTP version)");
        return -1;
    }
    *p++ = '\0';
    char *version = strrchr(p, ' ');
    if (!version || version == p) {
        bad_request(e, "the request line is malformed (method, one blank, target, one blank, "
                       "HTTP version)");
        return -1;
    }
    *version++ = '\0';
    h->method = line;
    h->target = p;
    for (const char *t = p; *t; t++) {
        if (is_blank(*t))
            *blank_target = 1;
        else if (is_ctl((unsigned char)*t)) {
            bad_request(e, "the request target holds a control character");
            return -1;
        }
    }
    if (strlen(version) != 8 || strncmp(version, "HTTP/", 5) || version[5] < '0' ||
        version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
        bad_request(e, "the request line does not end in an HTTP version (HTTP/1.1)");
        return -1;
    }
    if (version[5] != '1') {
        set_err(e, 505, "http-version-not-supported", "HTTP version not supported",
                "this server speaks HTTP/1.1 and HTTP/1.0");
        return -1;
    }
    h->minor = version[7] == '0' ? 0 : 1;
    return 0;
}

struct counts {
    unsigned cl, te, host;
    int te_other, conn_close, conn_keep;
};

/* One header line (NUL-terminated, without its CRLF). */
static int header_line(char *line, struct h1_head *h, struct counts *n, struct h1_error *e)
{
    if (is_blank(*line)) {
        bad_framing(e, "a folded header line (one that starts with a blank) is refused");
        return -1;
    }
    char *p = line;
    while (is_tchar((unsigned char)*p))
        p++;
    if (*p != ':') {
        if (!strchr(p, ':'))
            bad_request(e, "a header line has no colon");
        else if (p == line)
            bad_framing(e, "a header line has no name");
        else
            bad_framing(e, "a header name is not a token (a blank before its colon?)");
        return -1;
    }
    if (p == line) {
        bad_framing(e, "a header line has no name");
        return -1;
    }
    *p++ = '\0';
    const char *raw = p;
    /* CR (LF and NUL cannot be there) is refused (RFC 9110, 5.5); other
     * control bytes are the handlers' to judge, as any header byte is */
    if (strchr(p, '\r')) {
        bad_request(e, "a header value holds a CR");
        return -1;
    }
    while (is_blank(*p))
        p++;
    char *end = p + strlen(p);
    int trailing_blank = end > p && is_blank(end[-1]);
    if (ascii_name_eq(line, "Content-Length")) {
        n->cl++;
        if (read_length(raw, &h->length, e) != 0)
            return -1;
        h->has_length = 1;
    }
    while (end > p && is_blank(end[-1]))
        end--;
    *end = '\0';
    (void)trailing_blank;
    if (ascii_name_eq(line, "Transfer-Encoding")) {
        n->te++;
        if (!strcasecmp(p, "chunked"))
            h->chunked = 1;
        else
            n->te_other = 1;
    } else if (ascii_name_eq(line, "Host")) {
        n->host++;
    } else if (ascii_name_eq(line, "Connection")) {
        read_connection(p, &n->conn_close, &n->conn_keep);
    } else if (ascii_name_eq(line, "Expect")) {
        h->expect_continue = !strcasecmp(p, "100-continue");
    }
    h->h[h->nh].name = line;
    h->h[h->nh].value = p;
    h->nh++;
    return 0;
}

int h1_head_parse(const char *buf, size_t len, struct h1_head *h, struct h1_error *e)
{
    memset(h, 0, sizeof(*h));
    if (memchr(buf, '\0', len)) {
        bad_request(e, "the request head holds a NUL byte");
        return -1;
    }
    size_t lines = 0;
    for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + len - p))); p++)
        lines++;
    size_t arr = lines * sizeof(struct h1_header);
    h->mem = malloc(arr + len + 1);
    if (!h->mem) {
        set_err(e, 500, "internal", "Internal error", "out of memory");
        return -1;
    }
    h->h = (struct h1_header *)(void *)h->mem;
    char *t = h->mem + arr, *end = t + len;
    memcpy(t, buf, len);
    *end = '\0';
    while (t + 1 < end && t[0] == '\r' && t[1] == '\n')
        t += 2;
    struct counts n = {0};
    int blank_target = 0, first = 1;
    for (;;) {
        char *nl = memchr(t, '\n', (size_t)(end - t));
        if (!nl || nl == t || nl[-1] != '\r') {
            bad_framing(e, "a line of the request head ends in LF without CR");
            return -1;
        }
        nl[-1] = '\0';
        if (nl - 1 == t && !first)
            break; /* the empty line */
        int rc = first ? request_line(t, h, &blank_target, e) : header_line(t, h, &n, e);
        if (rc)
            return -1;
        first = 0;
        t = nl + 1;
    }
    if (n.cl && n.te) {
        bad_framing(e, "a request may not carry both Content-Length and Transfer-Encoding");
        return -1;
    }
    if (n.cl > 1) {
        bad_framing(e, "a request may carry one Content-Length");
        return -1;
    }
    if (n.te > 1) {
        bad_framing(e, "a request may carry one Transfer-Encoding");
        return -1;
    }
    if (n.te_other) {
        bad_framing(e, "the only Transfer-Encoding understood is chunked");
        return -1;
    }
    if (n.te && h->minor == 0) {
        bad_framing(e, "an HTTP/1.0 request cannot carry Transfer-Encoding");
        return -1;
    }
    if (h->minor == 1 && !n.host) {
        bad_request(e, "an HTTP/1.1 request needs a Host header");
        return -1;
    }
    if (n.host > 1) {
        bad_request(e, "a request may carry one Host header");
        return -1;
    }
    if (blank_target) {
        bad_request(e, "the request target contains a blank");
        return -1;
    }
    h->keep_alive = h->minor == 1 ? !n.conn_close : n.conn_keep && !n.conn_close;
    if (h->minor == 0)
        h->expect_continue = 0;
    return 0;
}

void h1_head_free(struct h1_head *h)
{
    free(h->mem);
    memset(h, 0, sizeof(*h));
}

const char *h1_header(const struct h1_head *h, const char *name)
{
    for (size_t i = 0; i < h->nh; i++)
        if (ascii_name_eq(h->h[i].name, name))
            return h->h[i].value;
    return NULL;
}

size_t h1_path_len(const struct h1_head *h)
{
    return h->target ? strcspn(h->target, "?") : 0;
}

const char *h1_query(const struct h1_head *h)
{
    const char *q = h->target ? strchr(h->target, '?') : NULL;
    return q ? q + 1 : NULL;
}

/* --- bodies ------------------------------------------------------------------------------- */

enum {
    B_LENGTH,       /* Content-Length bytes */
    C_SIZE,         /* hex digits of a chunk size */
    C_EXT,          /* after ';' in a chunk-size line */
    C_SIZE_LF,      /* the LF after a chunk-size line */
    C_DATA,         /* chunk data */
    C_DATA_CR,      /* the CRLF after chunk data */
    C_DATA_LF,      /*   ... its LF */
    C_TRAILER_LINE, /* the start of a trailer line, or of the final CRLF */
    C_TRAILER,      /* inside a trailer line */
    C_TRAILER_LF,   /* the LF of a trailer line */
    C_END_LF,       /* the LF of the final CRLF */
};

void h1_body_init(struct h1_body *b, const struct h1_head *h)
{
    memset(b, 0, sizeof(*b));
    if (h->chunked) {
        b->chunked = 1;
        b->st = C_SIZE;
    } else if (h->has_length && h->length) {
        b->st = B_LENGTH;
        b->left = h->length;
    } else {
        b->done = 1;
    }
}

int h1_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static ssize_t bad_chunk(struct h1_error *e, const char *detail)
{
    bad_framing(e, detail);
    return -1;
}

ssize_t h1_body_feed(struct h1_body *b, const char *in, size_t n, h1_data_fn data, void *ud,
                     struct h1_error *e)
{
    size_t i = 0;
    while (i < n && !b->done) {
        unsigned char c = (unsigned char)in[i];
        switch (b->st) {
        case B_LENGTH:
        case C_DATA: {
            size_t take = n - i < b->left ? n - i : (size_t)b->left;
            data(ud, in + i, take);
            i += take;
            b->left -= take;
            if (!b->left) {
                if (b->st == B_LENGTH)
                    b->done = 1;
                else
                    b->st = C_DATA_CR;
            }
            continue;
        }
        case C_SIZE: {
            int d = h1_hexval((char)c);
            if (d >= 0) {
                if (b->size_digits >= 15)
                    return bad_chunk(e, "a chunk size is too large");
                b->left = b->left * 16 + (uint64_t)d;
                b->size_digits++;
            } else if (!b->size_digits) {
                return bad_chunk(e, "a chunk does not start with its size in hex digits");
            } else if (c == ';') {
                b->st = C_EXT;
            } else if (c == '\r') {
                b->st = C_SIZE_LF;
            } else {
                return bad_chunk(e, "a chunk size is followed by something other than ';' or "
                                    "CRLF");
            }
            break;
        }
        case C_EXT:
            if (c == '\r')
                b->st = C_SIZE_LF;
            else if (is_ctl(c))
                return bad_chunk(e, "a chunk extension holds a control character");
            break;
        case C_SIZE_LF:
            if (c != '\n')
                return bad_chunk(e, "a chunk-size line does not end in CRLF");
            b->linelen = 0;
            b->size_digits = 0;
            b->st = b->left ? C_DATA : C_TRAILER_LINE;
            i++;
            continue;
        case C_DATA_CR:
            if (c != '\r')
                return bad_chunk(e, "chunk data is longer than its size (no CRLF after it)");
            b->st = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (c != '\n')
                return bad_chunk(e, "chunk data is not followed by CRLF");
            b->st = C_SIZE;
            break;
        case C_TRAILER_LINE:
            if (c == '\r')
                b->st = C_END_LF;
            else if (is_ctl(c))
                return bad_chunk(e, "a trailer line holds a control character");
            else
                b->st = C_TRAILER;
            break;
        case C_TRAILER:
            if (c == '\r')
                b->st = C_TRAILER_LF;
            else if (is_ctl(c))
                return bad_chunk(e, "a trailer line holds a control character");
            break;
        case C_TRAILER_LF:
            if (c != '\n')
                return bad_chunk(e, "a trailer line does not end in CRLF");
            b->st = C_TRAILER_LINE;
            break;
        case C_END_LF:
            if (c != '\n')
                return bad_chunk(e, "the chunked body does not end in CRLF");
            b->done = 1;
            break;
        default:
            return bad_chunk(e, "internal: unknown chunk state");
        }
        i++;
        if (++b->linelen > (b->st >= C_TRAILER_LINE ? H1_TRAILER_MAX : H1_CHUNK_LINE_MAX))
            return bad_chunk(e, b->st >= C_TRAILER_LINE ? "the trailer section is longer than 8 KiB"
                                                        : "a chunk-size line is longer than 1 KiB");
    }
    return (ssize_t)i;
}
