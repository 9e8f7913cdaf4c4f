/* http/tls: the server side of TLS for http/server (GnuTLS), non-blocking.
 *
 * A session reads and writes its socket itself; every call returns at
 * once. -EAGAIN says the socket has no data or no room now: *want_write
 * (when the call has one) says which readiness to wait for. After a send
 * returned -EAGAIN the next send must repeat the same bytes (the server
 * keeps them in its output buffer, so it does). */
#ifndef AMIBRIDGE_HTTP_TLS_H
#define AMIBRIDGE_HTTP_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct http_tls;         /* the certificate and key, shared by the sessions */
struct http_tls_session; /* one connection */

/* NULL with a message in err when the PEM texts cannot be used (not PEM,
 * or the key is not the certificate's). */
struct http_tls *http_tls_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen);
void http_tls_free(struct http_tls *t);

struct http_tls_session *http_tls_session_new(struct http_tls *t, int fd);
/* 1 when the handshake is done, 0 to call again once the socket is ready
 * (*want_write), -1 when it failed. */
int http_tls_handshake(struct http_tls_session *s, int *want_write);
/* > 0 bytes, 0 at the end of the stream, -EAGAIN, or -EIO. */
ssize_t http_tls_recv(struct http_tls_session *s, char *buf, size_t n);
/* Decrypted bytes waiting inside the session (read them before polling). */
size_t http_tls_pending(struct http_tls_session *s);
/* > 0 bytes taken, -EAGAIN (*want_write), or -EIO. */
ssize_t http_tls_send(struct http_tls_session *s, const char *buf, size_t n, int *want_write);
/* Say goodbye if the socket takes it at once, and free. */
void http_tls_session_free(struct http_tls_session *s);

#endif
