/* http/h1: HTTP/1.1 requests as they come off the wire (RFC 9112), no I/O.
 *
 * h1_head_end() finds where a request head ends in the bytes received so
 * far, h1_head_parse() reads it, h1_body_feed() follows its body
 * (Content-Length or chunked) across however many reads it comes in.
 *
 * Strict wherever a lenient reading could frame a request otherwise than
 * a proxy in front of us does (request smuggling): every line ends in
 * CRLF, a header name is a token followed at once by its colon, no folded
 * lines, at most one Content-Length (digits only) and one
 * Transfer-Encoding (chunked, HTTP/1.1 only) and never both, chunk sizes
 * in hex digits with CRLF after them and after their data. What is
 * refused is refused with the status, problem slug and detail the server
 * answers with; the server closes the connection after such an answer. */
#ifndef AMIBRIDGE_HTTP_H1_H
#define AMIBRIDGE_HTTP_H1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest request head (request line, headers, the empty line): 8 KiB
 * like nginx's header buffers; longer ones get 431. */
#define H1_HEAD_MAX (8 * 1024)
/* A chunk-size line (size and extensions) and the trailer section, each. */
#define H1_CHUNK_LINE_MAX 1024
#define H1_TRAILER_MAX    (8 * 1024)

/* Why a request is refused: answered with status and a problem of type
 * slug, then the connection is closed. */
struct h1_error {
    int status;
    const char *slug, *title, *detail;
};

struct h1_header {
    const char *name, *value; /* value without the blanks around it */
};

struct h1_head {
    char *mem; /* one allocation holding all of the below: free with h1_head_free */
    const char *method, *target; /* NULL when the request line could not be read */
    int minor;                   /* HTTP/1.<minor>: 0 or 1 */
    struct h1_header *h;
    size_t nh;
    int has_length; /* a Content-Length header */
    uint64_t length;
    int chunked;         /* Transfer-Encoding: chunked */
    int expect_continue; /* Expect: 100-continue (HTTP/1.1) */
    int keep_alive;      /* the connection may carry another request after this one */
};

/* Where the head at the start of buf[0..len) ends: the bytes it takes,
 * with its empty line (> 0); 0 when it is not complete yet (scan again
 * from *from, which this keeps, once more bytes have come); -1 with *e
 * when it cannot be a head: a line not ending in CRLF, or more than
 * H1_HEAD_MAX bytes. Empty lines before the request line (a client may
 * send one after a body) count as part of the head. */
ssize_t h1_head_end(const char *buf, size_t len, size_t *from, struct h1_error *e);

/* Read the head buf[0..len) (len from h1_head_end). 0 with *h filled, or
 * -1 with *e: then h->method and h->target are set when the request line
 * could be read (for the answer and the log). *h holds its own copy of
 * the bytes either way: h1_head_free() it. */
int h1_head_parse(const char *buf, size_t len, struct h1_head *h, struct h1_error *e);
void h1_head_free(struct h1_head *h);
/* The first header of that name (case-insensitive), or NULL. */
const char *h1_header(const struct h1_head *h, const char *name);
/* The target's path (up to '?') and query (after it, NULL when none). */
size_t h1_path_len(const struct h1_head *h);
const char *h1_query(const struct h1_head *h);

/* The value of a hex digit, or -1. */
int h1_hexval(char c);

/* --- bodies ------------------------------------------------------------------------------ */

struct h1_body {
    uint8_t chunked;
    uint8_t st; /* enum in h1.c */
    uint8_t size_digits;
    int done;       /* the whole body has been taken */
    uint64_t left;  /* bytes of the body (or of the current chunk) still to come */
    size_t linelen; /* of the chunk-size line, or the trailer section so far */
};

void h1_body_init(struct h1_body *b, const struct h1_head *h);
typedef void (*h1_data_fn)(void *ud, const char *data, size_t n);
/* Take what of in[0..n) belongs to the body: its data goes to `data` in
 * order (chunk framing removed). Returns the bytes taken (<= n; b->done
 * once the body has ended, and what follows belongs to the next request),
 * or -1 with *e for a malformed chunk. */
ssize_t h1_body_feed(struct h1_body *b, const char *in, size_t n, h1_data_fn data, void *ud,
                     struct h1_error *e);

#endif
