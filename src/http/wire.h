#ifndef AMIBRIDGE_HTTP_WIRE_H
#define AMIBRIDGE_HTTP_WIRE_H

/* The bytes of a plain-text client connection, seen before libmicrohttpd
 * parses them.
 *
 * libmicrohttpd 0.9.75 answers a request whose Content-Length is not a
 * number (or too large for 64 bits) itself, before any callback, with a
 * broken answer: its header block twice. This scanner follows the request
 * framing on the wire (heads, Content-Length bodies, chunked bodies) and,
 * when a Content-Length header's value is one MHD would refuse, renames
 * that header (its first byte becomes '(', no token character) before MHD
 * reads it and records the flaw: MHD
 * then parses the head and the server refuses the request with its own
 * problem+json answer (see wire_flaw()). It never turns a bad request into
 * an accepted one.
 *
 * The scanner is a pure state machine (wire_scan_*), unit-tested on split
 * byte streams; the glue interposes recv() for the sockets watched with
 * wire_watch() and gnutls_record_recv() for the TLS sessions watched with
 * wire_watch_tls() (MHD reads those through GnuTLS: the scanner sees the
 * bytes once decrypted), on the thread that watched them. */

#include <stddef.h>
#include <stdint.h>

#define WIRE_LINE_MAX 128 /* a Content-Length or Transfer-Encoding line longer is malformed */
#define WIRE_RENAMED  '(' /* what the first byte of a refused framing line becomes */

/* what is wrong with a request's head, for wire_flaw() */
enum wire_flaw { WIRE_FLAW_NONE = 0, WIRE_FLAW_MALFORMED = 400, WIRE_FLAW_TOO_LARGE = 413 };

struct wire_scan {
    uint8_t st;           /* enum in wire.c */
    uint8_t skip_line;    /* the current head line was released before its end */
    uint8_t odd;          /* this head cannot frame one request: stop following the connection */
    uint8_t prev_framing; /* the last header line was Content-Length or Transfer-Encoding */
    uint8_t ncl, nte, te_chunked;
    uint8_t chunk_digits;
    uint64_t cl;   /* the Content-Length of this head */
    uint64_t left; /* bytes of the body or chunk still to come */
    unsigned nreq; /* request heads begun on the connection, from 1 */
    enum wire_flaw flaw;
    unsigned flaw_req; /* the request the flaw is in */
};

void wire_scan_init(struct wire_scan *s);

/* Follow buf[0..n): a malformed Content-Length line in it is renamed in
 * place. Returns how many bytes may go on to the parser now; the rest
 * (n - returned, < WIRE_LINE_MAX) is the beginning of a head line that
 * could be a Content-Length or Transfer-Encoding line: pass it again, with
 * what follows it, once more bytes have come. */
size_t wire_scan(struct wire_scan *s, char *buf, size_t n);

/* The line held back by wire_scan (line[0..nline)) must go on now (the
 * parser's buffer is full): judge it with what the socket holds next
 * (more[0..nmore), not consumed). Returns 1 when it was judged (renamed in
 * place if need be; the rest of the line is skipped when it comes), 0 when
 * the line's end is not there yet. */
int wire_scan_release(struct wire_scan *s, char *line, size_t nline, const char *more,
                      size_t nmore);

/* Follow the socket fd (a new plain-text client connection), or the TLS
 * session (a gnutls_session_t) MHD reads the socket fd through / stop. */
int wire_watch(int fd);
int wire_watch_tls(int fd, void *session);
/* 1 when libmicrohttpd's TLS reads come through this file (the executable
 * exports gnutls_record_recv), else 0: TLS sessions cannot be followed. */
int wire_tls_in_effect(void);
void wire_forget(int fd);

/* The flaw of request number nreq (from 1) of fd, or WIRE_FLAW_NONE. */
enum wire_flaw wire_flaw(int fd, unsigned nreq);

#endif
