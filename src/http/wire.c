#include "http/wire.h"

#include <dlfcn.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Where the scanner is on the connection: a head's lines (the request line,
 * then headers), a Content-Length body, a chunked body byte by byte as
 * MHD 0.9.75 reads it (connection.c, process_request_body), or nothing
 * more to follow (the request will be refused and the connection closed,
 * or MHD answers a malformed body itself, with a well-formed answer). */
enum {
    S_REQ,          /* before a request line; empty lines are skipped, as MHD does */
    S_HDRS,         /* header lines, up to the empty line */
    S_BODY,         /* Content-Length bytes */
    S_CSIZE,        /* a chunk size: hex digits */
    S_CEXT,         /* a chunk extension, up to the end of the line */
    S_CSIZE_CR,     /* a CR after the size: LF must follow */
    S_CDATA,        /* chunk data */
    S_CEND,         /* the CRLF (or LF) after chunk data */
    S_CEND_LF,      /* its LF */
    S_TRAILER,      /* the start of a trailer line; an empty one ends the request */
    S_TRAILER_CR,   /* a CR at the start of a trailer line */
    S_TRAILER_LINE, /* the rest of a trailer line */
    S_TRAILER_END,  /* a trailer line MHD reads as empty (a NUL first): the request ends with it */
    S_PASS
};

enum { K_OTHER, K_PREFIX, K_CL, K_TE };
enum { M_NO, M_PREFIX, M_YES };

static const char CL_NAME[] = "content-length", TE_NAME[] = "transfer-encoding";

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The line l[0..n) starts with name and a colon (caseless), or could
 * still (it is a prefix of them). */
static int name_match(const char *l, size_t n, const char *name, size_t nlen)
{
    size_t i = 0;
    for (; i < n && i < nlen; i++)
        if (lower((unsigned char)l[i]) != name[i])
            return M_NO;
    if (i < nlen || n == nlen)
        return M_PREFIX;
    return l[nlen] == ':' ? M_YES : M_NO;
}

static int name_kind(const char *l, size_t n)
{
    int cl = name_match(l, n, CL_NAME, sizeof(CL_NAME) - 1);
    if (cl == M_YES)
        return K_CL;
    int te = name_match(l, n, TE_NAME, sizeof(TE_NAME) - 1);
    if (te == M_YES)
        return K_TE;
    return cl == M_PREFIX || te == M_PREFIX ? K_PREFIX : K_OTHER;
}

void wire_scan_init(struct wire_scan *s)
{
    memset(s, 0, sizeof(*s));
    s->st = S_REQ;
}

static void set_flaw(struct wire_scan *s, enum wire_flaw f)
{
    if (!s->flaw) {
        s->flaw = f;
        s->flaw_req = s->nreq;
    }
}

static void begin_request(struct wire_scan *s)
{
    s->nreq++;
    s->ncl = s->nte = s->te_chunked = s->odd = s->prev_framing = 0;
    s->cl = 0;
    s->st = S_HDRS;
}

/* A Content-Length value as MHD reads it: blanks skipped at its start,
 * then only digits, at least one, within 64 bits. */
static enum wire_flaw judge_length(const char *v, size_t n, uint64_t *out)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    if (!n)
        return WIRE_FLAW_MALFORMED;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return WIRE_FLAW_MALFORMED;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return WIRE_FLAW_TOO_LARGE;
        x = x * 10 + d;
    }
    *out = x;
    return WIRE_FLAW_NONE;
}

static int is_chunked(const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    static const char c[] = "chunked";
    if (n != sizeof(c) - 1)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)v[i]) != c[i])
            return 0;
    return 1;
}

static void end_head(struct wire_scan *s)
{
    if (s->odd || (s->flaw && s->flaw_req == s->nreq) || s->ncl > 1 || (s->ncl && s->nte))
        s->st = S_PASS;
    else if (s->nte)
        s->st = s->nte == 1 && s->te_chunked ? S_CSIZE : S_PASS;
    else if (s->ncl && s->cl)
        s->st = S_BODY;
    else
        s->st = S_REQ;
    s->left = s->st == S_BODY ? s->cl : 0;
    s->chunk_digits = 0;
}

/* A framing line MHD would refuse, or one too long to be a good one:
 * renamed so that MHD does not take it for the header ('(' is no token
 * character: the server refuses the name even if the flaw were ever
 * charged to another request), and remembered for the server to refuse
 * the request. */
static void refuse_line(struct wire_scan *s, char *line, enum wire_flaw f)
{
    line[0] = WIRE_RENAMED;
    set_flaw(s, f);
}

/* MHD reads a line as a C string: it ends at its first NUL, and one that
 * starts with a NUL is an empty line (connection.c: line[0] == 0). */
static size_t c_len(const char *line, size_t n)
{
    const char *nul = memchr(line, '\0', n);
    return nul ? (size_t)(nul - line) : n;
}

/* A folded line with nothing but blanks: MHD glues nothing onto the name. */
static int blank_fold(const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (line[i] != ' ' && line[i] != '\t')
            return 0;
    return 1;
}

/* One header line of the current head, by its beginning when `whole` is
 * 0 (the rest is skipped: only a line that is no framing header, or one
 * too long to be a good one, is given on before its end). */
static void header_line(struct wire_scan *s, char *line, size_t n, int whole)
{
    int too_long = n >= WIRE_LINE_MAX; /* as when held back: the length with its CR */
    if (whole && n && line[n - 1] == '\r')
        n--;
    /* a fold is judged on what a held-back line shows too: its first
     * WIRE_LINE_MAX bytes when it is that long */
    const char *fold_nul = memchr(line, '\0', too_long ? WIRE_LINE_MAX : n);
    size_t fold_len = fold_nul ? (size_t)(fold_nul - line) : n;
    int fold_known = !too_long || fold_nul;
    n = c_len(line, n);
    if (s->st == S_REQ) {
        if (n)
            begin_request(s);
        return;
    }
    if (!n) {
        end_head(s);
        return;
    }
    if (line[0] == ' ' || line[0] == '\t') {
        /* a folded line: MHD glues it onto the previous header's name,
         * which the server refuses when that was a framing header */
        if (s->prev_framing && !(fold_known && (whole || fold_nul) && blank_fold(line, fold_len)))
            s->odd = 1;
        return;
    }
    int k = name_kind(line, n);
    s->prev_framing = k == K_CL || k == K_TE;
    if (k == K_CL) {
        size_t off = sizeof(CL_NAME);
        s->ncl++;
        uint64_t v = 0;
        enum wire_flaw f =
            too_long || !whole ? WIRE_FLAW_MALFORMED : judge_length(line + off, n - off, &v);
        if (f)
            refuse_line(s, line, f);
        else if (s->ncl == 1)
            s->cl = v;
    } else if (k == K_TE) {
        size_t off = sizeof(TE_NAME);
        s->nte++;
        if (too_long || !whole)
            refuse_line(s, line, WIRE_FLAW_MALFORMED);
        else
            s->te_chunked = is_chunked(line + off, n - off);
    }
}

static void head_line(struct wire_scan *s, char *line, size_t n)
{
    header_line(s, line, n, 1);
}

static void head_line_start(struct wire_scan *s, char *line, size_t n)
{
    s->skip_line = 1;
    header_line(s, line, n, 0);
}

/* Worth holding back until its end: it could be a framing header, the CR
 * of an empty line, or a line folded onto a framing header. */
static int worth_holding(const struct wire_scan *s, const char *l, size_t n)
{
    if (n >= WIRE_LINE_MAX)
        return 0;
    if (n == 1 && l[0] == '\r')
        return 1;
    if (s->st != S_HDRS)
        return 0;
    if (l[0] == ' ' || l[0] == '\t')
        return s->prev_framing; /* a fold of blanks after a framing line changes nothing */
    return name_kind(l, n) != K_OTHER;
}

static void chunk_size_end(struct wire_scan *s)
{
    s->st = s->left ? S_CDATA : S_TRAILER;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)lower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One byte of a chunked body's framing. */
static void chunk_byte(struct wire_scan *s, char c)
{
    switch (s->st) {
    case S_CSIZE: {
        int h = hexval(c);
        if (h >= 0) {
            if (s->left > (UINT64_MAX >> 4)) {
                s->st = S_PASS;
                return;
            }
            s->left = (s->left << 4) | (uint64_t)h;
            s->chunk_digits = 1;
        } else if (!s->chunk_digits) {
            s->st = S_PASS;
        } else if (c == ';') {
            s->st = S_CEXT;
        } else if (c == '\r') {
            s->st = S_CSIZE_CR;
        } else if (c == '\n') {
            chunk_size_end(s);
        } else {
            s->st = S_PASS;
        }
        return;
    }
    case S_CEXT:
        if (c == '\n')
            chunk_size_end(s);
        return;
    case S_CSIZE_CR:
        if (c == '\n')
            chunk_size_end(s);
        else
            s->st = S_PASS;
        return;
    case S_CEND:
    case S_CEND_LF:
        if (c == '\n') {
            s->st = S_CSIZE;
            s->left = 0;
            s->chunk_digits = 0;
        } else {
            s->st = c == '\r' && s->st == S_CEND ? S_CEND_LF : S_PASS;
        }
        return;
    case S_TRAILER:
        s->st = c == '\n'   ? S_REQ
                : c == '\r' ? S_TRAILER_CR
                : c == '\0' ? S_TRAILER_END
                            : S_TRAILER_LINE;
        return;
    case S_TRAILER_END:
        if (c == '\n')
            s->st = S_REQ;
        return;
    case S_TRAILER_CR:
        s->st = c == '\n' ? S_REQ : S_TRAILER_LINE;
        return;
    case S_TRAILER_LINE:
        if (c == '\n')
            s->st = S_TRAILER;
        return;
    default:
        return;
    }
}

size_t wire_scan(struct wire_scan *s, char *buf, size_t n)
{
    size_t p = 0;
    while (p < n && s->st != S_PASS) {
        if (s->skip_line) {
            char *lf = memchr(buf + p, '\n', n - p);
            if (!lf)
                return n;
            s->skip_line = 0;
            p = (size_t)(lf - buf) + 1;
            continue;
        }
        if (s->st == S_REQ || s->st == S_HDRS) {
            char *lf = memchr(buf + p, '\n', n - p);
            if (!lf) {
                if (worth_holding(s, buf + p, n - p))
                    return p;
                head_line_start(s, buf + p, n - p);
                return n;
            }
            head_line(s, buf + p, (size_t)(lf - buf) - p);
            p = (size_t)(lf - buf) + 1;
        } else if (s->st == S_BODY || s->st == S_CDATA) {
            uint64_t take = n - p < s->left ? n - p : s->left;
            p += (size_t)take;
            s->left -= take;
            if (!s->left)
                s->st = s->st == S_BODY ? S_REQ : S_CEND;
        } else {
            chunk_byte(s, buf[p++]);
        }
    }
    return n;
}

int wire_scan_release(struct wire_scan *s, char *line, size_t nline, const char *more, size_t nmore)
{
    char whole[WIRE_LINE_MAX];
    const char *lf = memchr(more, '\n', nmore);
    size_t tail = lf ? (size_t)(lf - more) : nmore;
    if (nline + tail >= WIRE_LINE_MAX) {
        /* too long to be a good framing line: judged by its beginning,
         * the name taken from what is held and what follows */
        size_t take = WIRE_LINE_MAX - 1 - nline;
        memcpy(whole, line, nline);
        memcpy(whole + nline, more, take < nmore ? take : nmore);
        head_line_start(s, whole, nline + (take < nmore ? take : nmore));
        line[0] = whole[0];
        return 1;
    }
    if (!lf)
        return 0;
    memcpy(whole, line, nline);
    memcpy(whole + nline, more, tail);
    head_line(s, whole, nline + tail);
    line[0] = whole[0];
    s->skip_line = 1; /* the rest of the line, up to its LF, comes with the next read */
    return 1;
}

/* --- the sockets ------------------------------------------------------------------------- */

struct wire_conn {
    struct wire_scan s;
    void *tls; /* the GnuTLS session of a TLS connection, or NULL */
    size_t ncarry;
    size_t ready; /* TLS: how many bytes of carry were scanned and may go on */
    int tls_err;  /* TLS: an error GnuTLS gave after bytes went on, for the next call */
    /* plain: the beginning of a line held back (WIRE_LINE_MAX bytes);
     * TLS: bytes read from the session not given on yet, the held line
     * last (2 * WIRE_LINE_MAX: room to read the line's end after it) */
    char carry[];
};
#define WIRE_TLS_CARRY (2 * WIRE_LINE_MAX)

/* Per thread: only the thread that watches a socket follows its bytes;
 * recv() on any other thread (or socket) goes straight to the kernel. */
static __thread struct wire_conn **table;
static __thread size_t table_len, nwatched;

static int watch(int fd, void *tls)
{
    if (fd < 0)
        return -1;
    if ((size_t)fd >= table_len) {
        size_t len = table_len ? table_len : 64;
        while (len <= (size_t)fd)
            len *= 2;
        struct wire_conn **t = realloc(table, len * sizeof(*t));
        if (!t)
            return -1;
        memset(t + table_len, 0, (len - table_len) * sizeof(*t));
        table = t;
        table_len = len;
    }
    /* a socket number is reused only after wire_forget */
    struct wire_conn *w = table[fd];
    if (!w) {
        if (!(w = malloc(sizeof(*w) + (tls ? WIRE_TLS_CARRY : WIRE_LINE_MAX))))
            return -1;
        table[fd] = w;
        nwatched++;
    } else if (!w->tls != !tls) {
        return -1;
    }
    wire_scan_init(&w->s);
    w->tls = tls;
    w->ncarry = w->ready = 0;
    w->tls_err = 0;
    return 0;
}

int wire_watch(int fd)
{
    return watch(fd, NULL);
}

int wire_watch_tls(int fd, void *session)
{
    return session ? watch(fd, session) : -1;
}

void wire_forget(int fd)
{
    if (fd < 0 || (size_t)fd >= table_len || !table[fd])
        return;
    free(table[fd]);
    table[fd] = NULL;
    if (--nwatched == 0) {
        free(table);
        table = NULL;
        table_len = 0;
    }
}

enum wire_flaw wire_flaw(int fd, unsigned nreq)
{
    const struct wire_conn *w = fd >= 0 && (size_t)fd < table_len ? table[fd] : NULL;
    return w && w->s.flaw && w->s.flaw_req == nreq ? w->s.flaw : WIRE_FLAW_NONE;
}

/* MHD reads a plain-text connection with recv(): this definition comes
 * first for it. Bytes are given on as they come, but for the beginning of
 * a head line that could be a framing header, which is judged with what
 * the socket already holds (MSG_PEEK) or else held back (at most
 * WIRE_LINE_MAX bytes) until its end is in: the head is not complete
 * without it, so the client sends more and MHD is woken again. When the
 * client's end follows, nothing is held: MHD must see it. */
ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    struct wire_conn *w = fd >= 0 && (size_t)fd < table_len ? table[fd] : NULL;
    if (!w || w->tls || (flags & MSG_PEEK) || !len || (w->s.st == S_PASS && !w->ncarry))
        return recvfrom(fd, buf, len, flags, NULL, NULL);
    char *b = buf;
    size_t out = w->ncarry;
    if (out >= len) {
        /* no room for the held line: judged with what the socket holds
         * next, then it goes on in pieces */
        if (!w->s.skip_line) {
            char more[WIRE_LINE_MAX];
            ssize_t m = recvfrom(fd, more, sizeof(more), MSG_PEEK | MSG_DONTWAIT, NULL, NULL);
            if (m == 0 || (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                head_line_start(&w->s, w->carry, w->ncarry); /* the client sends no more */
            } else if (!wire_scan_release(&w->s, w->carry, w->ncarry, more,
                                          m > 0 ? (size_t)m : 0)) {
                errno = EAGAIN; /* its end has not come: the client sends more */
                return -1;
            }
        }
        memcpy(b, w->carry, len);
        memmove(w->carry, w->carry + len, w->ncarry - len);
        w->ncarry -= len;
        return (ssize_t)len;
    }
    memcpy(b, w->carry, out);
    ssize_t n = recvfrom(fd, b + out, len - out, flags, NULL, NULL);
    if (n < 0)
        return -1; /* what is held stays held */
    w->ncarry = 0;
    if (n == 0) {
        /* the client sends no more: a line held back can never end, and
         * MHD must see the end now (a short read would leave it waiting) */
        w->s.st = S_PASS;
        return 0;
    }
    size_t total = out + (size_t)n, keep = wire_scan(&w->s, b, total);
    if (keep == total)
        return (ssize_t)total;
    size_t part = total - keep;
    /* what the socket holds next: the line's end, or the client's end */
    char more[WIRE_LINE_MAX];
    ssize_t m = recvfrom(fd, more, sizeof(more), MSG_PEEK | MSG_DONTWAIT, NULL, NULL);
    if (m == 0 || (m < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        /* the end (or an error) follows: nothing to wait for */
        w->s.st = S_PASS;
        return (ssize_t)total;
    }
    if (wire_scan_release(&w->s, b + keep, part, more, m > 0 ? (size_t)m : 0))
        return (ssize_t)total;
    /* the line's end has not come: the client must send more, which wakes
     * MHD again (so holding back is safe also when its buffer is full) */
    memcpy(w->carry, b + keep, part);
    w->ncarry = part;
    if (keep)
        return (ssize_t)keep;
    errno = EAGAIN;
    return -1;
}

/* MHD reads a TLS connection with gnutls_record_recv(): this definition
 * comes first for it, and reads the session with GnuTLS's own. There is no
 * peeking into a session, so what was read and not given on yet waits in
 * carry: the bytes scanned (ready) first, then the line held back. A line
 * is held only while the session has nothing more (GNUTLS_E_AGAIN: the
 * client must send more, which wakes MHD again). MHD's epoll loop, unlike
 * for plain sockets, calls again after a short read of a TLS connection
 * until it gets GNUTLS_E_AGAIN, so what waits in carry is always asked
 * for. */
typedef ssize_t (*tls_recv_fn)(gnutls_session_t, void *, size_t);
typedef int (*tls_fd_fn)(gnutls_session_t);

static tls_recv_fn tls_recv_real(void)
{
    static tls_recv_fn real;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "gnutls_record_recv");
    return real;
}

static struct wire_conn *tls_conn(gnutls_session_t session)
{
    static tls_fd_fn fd_of;
    if (!nwatched)
        return NULL;
    if (!fd_of)
        *(void **)&fd_of = dlsym(RTLD_NEXT, "gnutls_transport_get_int");
    int fd = fd_of ? fd_of(session) : -1;
    struct wire_conn *w = fd >= 0 && (size_t)fd < table_len ? table[fd] : NULL;
    return w && w->tls == (void *)session ? w : NULL;
}

/* GnuTLS said r (<= 0) after `out` bytes went on in this call: those
 * first, and an error that is not "nothing more now" on the next call
 * (MHD acts on it: a rehandshake refused, a warning alert, the end). */
static ssize_t tls_fail(struct wire_conn *w, size_t out, ssize_t r)
{
    if (!out)
        return r;
    if (r < 0 && r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
        w->tls_err = (int)r;
    return (ssize_t)out;
}

int wire_tls_in_effect(void)
{
    tls_recv_fn mine = gnutls_record_recv, used;
    *(void **)&used = dlsym(RTLD_DEFAULT, "gnutls_record_recv");
    return used && used == mine;
}

ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t len)
{
    tls_recv_fn real = tls_recv_real();
    if (!real)
        return GNUTLS_E_INTERNAL_ERROR;
    struct wire_conn *w = tls_conn(session);
    if (w && w->tls_err) {
        int err = w->tls_err;
        w->tls_err = 0;
        return err;
    }
    if (!w || !len || (w->s.st == S_PASS && !w->ncarry))
        return real(session, data, len);
    char *b = data;
    size_t out = 0;
    while (out < len) {
        if (w->ready) {
            size_t n = len - out < w->ready ? len - out : w->ready;
            memcpy(b + out, w->carry, n);
            memmove(w->carry, w->carry + n, w->ncarry - n);
            w->ncarry -= n;
            w->ready -= n;
            out += n;
            continue;
        }
        if (w->ncarry) {
            /* a held line (shorter than WIRE_LINE_MAX): read what follows it */
            ssize_t r = real(session, w->carry + w->ncarry, WIRE_TLS_CARRY - w->ncarry);
            if (r == 0) {
                /* the client sends no more: MHD must see all, then the end */
                w->s.st = S_PASS;
                w->ready = w->ncarry;
                continue;
            }
            if (r < 0)
                return tls_fail(w, out, r); /* what is held stays held */
            w->ncarry += (size_t)r;
            w->ready = wire_scan(&w->s, w->carry, w->ncarry);
            continue;
        }
        if (w->s.st == S_PASS)
            break;
        ssize_t r = real(session, b + out, len - out);
        if (r <= 0)
            return tls_fail(w, out, r);
        size_t keep = wire_scan(&w->s, b + out, (size_t)r);
        if (keep == (size_t)r)
            return (ssize_t)(out + keep);
        memcpy(w->carry, b + out + keep, (size_t)r - keep);
        w->ncarry = (size_t)r - keep;
        out += keep;
    }
    return (ssize_t)out;
}
