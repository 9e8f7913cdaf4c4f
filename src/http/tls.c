#include "http/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1; GnuTLS's NORMAL
 * still offers them), otherwise GnuTLS's defaults. */
#define HTTP_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct http_tls {
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t prio;
};

struct http_tls_session {
    gnutls_session_t s;
    int again; /* the last send returned GNUTLS_E_AGAIN: the next one resumes it */
};

struct http_tls *http_tls_new(const char *cert_pem, const char *key_pem, char *err, size_t errlen)
{
    struct http_tls *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int rc = gnutls_certificate_allocate_credentials(&t->creds);
    if (rc == GNUTLS_E_SUCCESS) {
        gnutls_datum_t c = {(unsigned char *)(uintptr_t)cert_pem, (unsigned)strlen(cert_pem)};
        gnutls_datum_t k = {(unsigned char *)(uintptr_t)key_pem, (unsigned)strlen(key_pem)};
        rc = gnutls_certificate_set_x509_key_mem(t->creds, &c, &k, GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            snprintf(err, errlen,
                     "AMIBRIDGE_TLS_CERT / AMIBRIDGE_TLS_KEY cannot be used (is AMIBRIDGE_TLS_KEY "
                     "the key of AMIBRIDGE_TLS_CERT?): %s",
                     gnutls_strerror(rc));
    } else {
        t->creds = NULL;
        snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
    }
    if (rc >= 0 && (rc = gnutls_priority_init(&t->prio, HTTP_TLS_PRIORITY, NULL)) < 0)
        snprintf(err, errlen, "TLS: %s", gnutls_strerror(rc));
    if (rc < 0) {
        http_tls_free(t);
        return NULL;
    }
    return t;
}

void http_tls_free(struct http_tls *t)
{
    if (!t)
        return;
    if (t->prio)
        gnutls_priority_deinit(t->prio);
    if (t->creds)
        gnutls_certificate_free_credentials(t->creds);
    free(t);
}

struct http_tls_session *http_tls_session_new(struct http_tls *t, int fd)
{
    struct http_tls_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (gnutls_init(&s->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
        free(s);
        return NULL;
    }
    if (gnutls_priority_set(s->s, t->prio) < 0 ||
        gnutls_credentials_set(s->s, GNUTLS_CRD_CERTIFICATE, t->creds) < 0) {
        gnutls_deinit(s->s);
        free(s);
        return NULL;
    }
    /* ALPN: HTTP/1.1, the one protocol served; a client that offers only
     * others (h2) is not refused for it, it gets HTTP/1.1 as without ALPN */
    static const gnutls_datum_t http11 = {(unsigned char *)(uintptr_t) "http/1.1", 8};
    if (gnutls_alpn_set_protocols(s->s, &http11, 1, 0) < 0) {
        gnutls_deinit(s->s);
        free(s);
        return NULL;
    }
    gnutls_certificate_server_set_request(s->s, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int(s->s, fd);
    return s;
}

int http_tls_handshake(struct http_tls_session *s, int *want_write)
{
    *want_write = 0;
    int rc = gnutls_handshake(s->s);
    if (rc == GNUTLS_E_SUCCESS)
        return 1;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(rc)) {
        *want_write = gnutls_record_get_direction(s->s) == 1;
        return 0;
    }
    return -1;
}

ssize_t http_tls_recv(struct http_tls_session *s, char *buf, size_t n)
{
    ssize_t rc = gnutls_record_recv(s->s, buf, n);
    if (rc >= 0)
        return rc;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
        return -EAGAIN;
    if (rc == GNUTLS_E_PREMATURE_TERMINATION)
        return 0; /* the client closed without close_notify: an end all the same */
    return -EIO;
}

size_t http_tls_pending(struct http_tls_session *s)
{
    return gnutls_record_check_pending(s->s);
}

ssize_t http_tls_send(struct http_tls_session *s, const char *buf, size_t n, int *want_write)
{
    *want_write = 0;
    /* after GNUTLS_E_AGAIN the record is already built: NULL, 0 sends it */
    ssize_t rc = s->again ? gnutls_record_send(s->s, NULL, 0) : gnutls_record_send(s->s, buf, n);
    if (rc >= 0) {
        s->again = 0;
        return rc;
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        s->again = 1;
        *want_write = 1;
        return -EAGAIN;
    }
    return -EIO;
}

void http_tls_session_free(struct http_tls_session *s)
{
    if (!s)
        return;
    gnutls_bye(s->s, GNUTLS_SHUT_WR); /* non-blocking: sent if there is room, else skipped */
    gnutls_deinit(s->s);
    free(s);
}
