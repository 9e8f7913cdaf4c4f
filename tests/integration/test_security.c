/* Integration tests for what guards the door: HTTPS on the listener
 * (a certificate made here with libcrypto), AMIBRIDGE_TRUSTED_NETS, the
 * lockout after wrong API keys, and over raw sockets the HTTP layer's
 * refusals: ambiguous framing, slow heads and bodies, too many connections.
 * The real binary and the real ami-sim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/amisim.h"
#include "support/bridge.h"
#include "support/http.h"
#include "support/net.h"
#include "support/proc.h"
#include "support/testenv.h"

#define ADMIN "tok-admin-0123456789"

/* --- helpers ------------------------------------------------------------------------------ */

/* A self-signed certificate for 127.0.0.1 (P-256), written as PEM. */
static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static long get(const char *url, const char *token, struct http_resp *r)
{
    http_call("GET", url, token, NULL, NULL, 10000, r);
    return r->status;
}

/* A local IPv4 address that is not loopback, or 0 when the machine has none. */
static int local_address(char *out, size_t len)
{
    struct ifaddrs *ifa = NULL, *i;
    int found = 0;
    if (getifaddrs(&ifa) != 0)
        return 0;
    for (i = ifa; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)i->ifa_addr;
        if ((ntohl(in->sin_addr.s_addr) >> 24) == 127)
            continue;
        inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)len);
        found = 1;
    }
    freeifaddrs(ifa);
    return found;
}

/* --- HTTPS --------------------------------------------------------------------------------- */

/* A certificate made in a fresh directory (name) and the environment that
 * makes the bridge serve HTTPS with it on a free port. */
struct tls_setup {
    char dir[256], cert[300], key[300], env_cert[320], env_key[320], listen[64];
    int port;
};

static void tls_setup(struct tls_setup *t, const char *name)
{
    assert_int_equal(testenv_tmpdir(t->dir, sizeof(t->dir), name), 0);
    snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", t->dir);
    snprintf(t->key, sizeof(t->key), "%s/key.pem", t->dir);
    make_cert(t->cert, t->key);
    snprintf(t->env_cert, sizeof(t->env_cert), "AMIBRIDGE_TLS_CERT=%s", t->cert);
    snprintf(t->env_key, sizeof(t->env_key), "AMIBRIDGE_TLS_KEY=%s", t->key);
    t->port = proc_free_port();
    snprintf(t->listen, sizeof(t->listen), "AMIBRIDGE_LISTEN=127.0.0.1:%d", t->port);
}

static void https_is_served_with_the_configured_certificate(void **state)
{
    (void)state;
    struct tls_setup t;
    tls_setup(&t, "tls");
    const char *dir = t.dir, *cert = t.cert, *key = t.key;
    const char *env_cert = t.env_cert, *env_key = t.env_key, *listen = t.listen;
    int port = t.port;
    setenv("AMIBRIDGE_TEST_CA", cert, 1);

    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    struct bridge b;
    const char *env[] = {env_cert, env_key, listen, "AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions",
                         NULL};
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    assert_true(!strncmp(b.url, "https://", 8));
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0);

    /* verified against our CA: the certificate is the one configured */
    struct http_resp r;
    char url[128];
    snprintf(url, sizeof(url), "%s/v1/actions/Ping", b.url);
    http_call("POST", url, ADMIN, "{}", NULL, 10000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_json_str(&r, "response"), "Success");
    http_resp_free(&r);

    /* an unknown CA is refused by the client: TLS really is in the way */
    setenv("AMIBRIDGE_TEST_CA", "/dev/null", 1);
    snprintf(url, sizeof(url), "%s/healthz", b.url);
    assert_int_equal(get(url, NULL, &r), 0);
    http_resp_free(&r);
    unsetenv("AMIBRIDGE_TEST_CA");

    /* plain HTTP on the TLS port gets no HTTP answer */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
    get(url, NULL, &r);
    assert_true(r.status == 0 || r.status >= 400);
    http_resp_free(&r);

    /* the container health probe speaks TLS too */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "AMIBRIDGE_TLS_CERT=%s AMIBRIDGE_TLS_KEY=%s AMIBRIDGE_LISTEN=127.0.0.1:%d "
             "AMIBRIDGE_AMI_USERNAME=u AMIBRIDGE_AMI_SECRET=s %s/amibridge --healthcheck "
             ">/dev/null 2>&1",
             cert, key, port, testenv_build_dir());
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
    bridge_stop(&b, 0);

    /* half a TLS setup stops the start, naming what is missing */
    snprintf(cmd, sizeof(cmd),
             "AMIBRIDGE_TLS_CERT=%s AMIBRIDGE_AMI_USERNAME=u AMIBRIDGE_AMI_SECRET=s "
             "%s/amibridge --check-config 2>&1 | grep -q AMIBRIDGE_TLS_KEY",
             cert, testenv_build_dir());
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof(cmd),
             "AMIBRIDGE_TLS_CERT=/etc/hostname AMIBRIDGE_TLS_KEY=%s AMIBRIDGE_AMI_USERNAME=u "
             "AMIBRIDGE_AMI_SECRET=s %s/amibridge --check-config 2>&1 | grep -q 'not PEM'",
             key, testenv_build_dir());
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
    amisim_stop(&sim);
    testenv_rmdir(dir);
}

/* --- trusted networks ---------------------------------------------------------------------- */

static void clients_outside_the_trusted_networks_are_refused_before_auth(void **state)
{
    (void)state;
    char ip[64];
    if (!local_address(ip, sizeof(ip))) {
        print_message("no non-loopback IPv4 address on this machine: nothing to test from\n");
        skip();
    }
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    int port = proc_free_port();
    char listen[64], nets[128], url[128];
    snprintf(listen, sizeof(listen), "AMIBRIDGE_LISTEN=0.0.0.0:%d", port);
    const char *env[] = {listen, "AMIBRIDGE_API_KEYS=ops:" ADMIN ":read",
                         "AMIBRIDGE_TRUSTED_NETS=203.0.113.0/24 2001:db8::/32", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    struct http_resp r;
    /* from the machine's own address, which is not on the list */
    snprintf(url, sizeof(url), "http://%s:%d/v1/channels", ip, port);
    assert_int_equal(get(url, ADMIN, &r), 403);
    assert_string_equal(http_json_str(&r, "type"), "urn:amibridge:problem:untrusted-network");
    http_resp_free(&r);
    snprintf(url, sizeof(url), "http://%s:%d/healthz", ip, port);
    assert_int_equal(get(url, NULL, &r), 403);
    http_resp_free(&r);
    /* loopback always passes (the container health probe) */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/channels", port);
    assert_int_equal(get(url, ADMIN, &r), 200);
    http_resp_free(&r);
    bridge_stop(&b, 0);

    /* with the address's network on the list it gets as far as auth */
    snprintf(nets, sizeof(nets), "AMIBRIDGE_TRUSTED_NETS=%s/32", ip);
    env[2] = nets;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    snprintf(url, sizeof(url), "http://%s:%d/v1/channels", ip, port);
    assert_int_equal(get(url, NULL, &r), 401);
    http_resp_free(&r);
    assert_int_equal(get(url, ADMIN, &r), 200);
    http_resp_free(&r);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* --- wrong keys ---------------------------------------------------------------------------- */

static double metric(const char *base, const char *series)
{
    return http_metric(base, series);
}

static void wrong_keys_slow_down_then_lock_the_address_out(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_API_KEYS=ops:" ADMIN ":read reader:tok-reader-0123456789:read",
                         "AMIBRIDGE_AUTH_FAIL_LIMIT=6", "AMIBRIDGE_AUTH_FAIL_WINDOW_S=3",
                         "AMIBRIDGE_LOG_LEVEL=info", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    char url[128], detail0[256] = "";
    snprintf(url, sizeof(url), "%s/v1/channels", b.url);
    struct http_resp r;
    double took[6];
    for (int i = 0; i < 6; i++) {
        char bad[64];
        /* near misses and nonsense alike: the answer never says what was wrong */
        snprintf(bad, sizeof(bad), i % 2 ? "tok-admin-012345678%d" : "x%d", i);
        double t0 = testenv_now();
        assert_int_equal(get(url, bad, &r), 401);
        took[i] = testenv_now() - t0;
        if (i == 0)
            snprintf(detail0, sizeof(detail0), "%s", http_json_str(&r, "detail"));
        else
            assert_string_equal(http_json_str(&r, "detail"), detail0);
        http_resp_free(&r);
    }
    print_message("wrong keys answered after %.0f %.0f %.0f %.0f %.0f %.0f ms\n", took[0] * 1000,
                  took[1] * 1000, took[2] * 1000, took[3] * 1000, took[4] * 1000, took[5] * 1000);
    assert_true(took[0] < 0.09 && took[2] < 0.09); /* the first ones at once */
    assert_true(took[3] >= 0.09);                  /* then 100 ms, 200 ms, 400 ms */
    assert_true(took[4] >= 0.19);
    assert_true(took[5] >= 0.39);
    /* locked out: without a valid key 429, with when to come back */
    assert_int_equal(get(url, NULL, &r), 429);
    assert_string_equal(http_json_str(&r, "type"), "urn:amibridge:problem:auth-locked-out");
    char *ra = http_resp_header(&r, "Retry-After");
    assert_non_null(ra);
    assert_true(atoi(ra) >= 1 && atoi(ra) <= 3);
    free(ra);
    http_resp_free(&r);
    /* a wrong key too, and never faster than the slowest wrong key before */
    double t0 = testenv_now();
    assert_int_equal(get(url, "tok-admin-0123456780", &r), 429);
    assert_true(testenv_now() - t0 >= 1.9);
    assert_string_equal(http_json_str(&r, "type"), "urn:amibridge:problem:auth-locked-out");
    http_resp_free(&r);
    /* a valid key is served: others at this address are not locked out by
     * one client's wrong keys */
    assert_int_equal(get(url, ADMIN, &r), 200);
    http_resp_free(&r);
    /* routes that need no key still answer */
    snprintf(url, sizeof(url), "%s/healthz", b.url);
    assert_int_equal(get(url, NULL, &r), 200);
    http_resp_free(&r);
    assert_true(metric(b.url, "amibridge_auth_failures_total{reason=\"invalid\"}") == 6);
    assert_true(metric(b.url, "amibridge_auth_failures_total{reason=\"locked_out\"}") >= 1);
    assert_true(bridge_log_count(&b, "locked out") == 1);
    assert_true(bridge_log_count(&b, ADMIN) == 0); /* keys never reach the log */
    /* the window ends and the right key works again */
    usleep(3200 * 1000);
    snprintf(url, sizeof(url), "%s/v1/channels", b.url);
    assert_int_equal(get(url, ADMIN, &r), 200);
    http_resp_free(&r);
    /* per key: a valid key that keeps asking past its scopes is locked out
     * too, whichever address it comes from; other keys are not */
    snprintf(url, sizeof(url), "%s/v1/webhooks", b.url);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(get(url, "tok-reader-0123456789", &r), 403);
        http_resp_free(&r);
    }
    snprintf(url, sizeof(url), "%s/v1/channels", b.url);
    assert_int_equal(get(url, "tok-reader-0123456789", &r), 429);
    assert_string_equal(http_json_str(&r, "type"), "urn:amibridge:problem:auth-locked-out");
    http_resp_free(&r);
    assert_int_equal(get(url, ADMIN, &r), 200);
    http_resp_free(&r);
    assert_true(bridge_log_count(&b, "beyond its scopes") == 1);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* --- what the HTTP layer refuses ----------------------------------------------------------- */

/* A connection to the bridge from the loopback address `src` (127.0.0.1
 * when NULL): several loopback addresses play several clients. */
static int dial_from(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (src) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &me.sin_addr);
        assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int dial(int port)
{
    return dial_from(port, NULL);
}

/* 1 when the server has closed fd (within timeout_ms), 0 when it is open. */
static int closed_by_server(int fd, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[512];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        ;
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Send `req`, read the answer until the peer closes or 5 s pass; the
 * status (0 when none) and whether the connection was closed. What came
 * back goes to out (NUL-terminated) when out is not NULL. */
static int exchange_buf(int port, const char *req, size_t len, int *closed, char *out,
                        size_t outlen)
{
    int fd = dial(port);
    assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    *closed = 0;
    while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") && !strstr(buf, "Connection: close"))
            break; /* an answer that keeps the connection */
    }
    if (n == 0)
        *closed = 1;
    else if (strstr(buf, "Connection: close") && recv(fd, buf + got, 1, 0) == 0)
        *closed = 1;
    close(fd);
    buf[got] = '\0';
    if (out)
        snprintf(out, outlen, "%s", buf);
    return !strncmp(buf, "HTTP/1.1 ", 9) ? atoi(buf + 9) : 0;
}

static int exchange(int port, const char *req, size_t len, int *closed)
{
    return exchange_buf(port, req, len, closed, NULL, 0);
}

/* Read fd until the server closes it (or 5 s pass) into out,
 * NUL-terminated, and close it; 1 when the server closed it. */
static int read_to_close(int fd, char *out, size_t outlen)
{
    size_t got = 0;
    ssize_t n = -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (got < outlen - 1 && (n = recv(fd, out + got, outlen - 1 - got, 0)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
    return n == 0;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void slow_ambiguous_and_oversized_request_heads_are_refused(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_HTTP_HEADER_TIMEOUT_S=2", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    int closed;
    /* both Content-Length and Transfer-Encoding: 400, and the connection goes */
    const char *smuggle = "POST /v1/actions/Ping HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          "application/json\r\nContent-Length: 2\r\nTransfer-Encoding: "
                          "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    assert_int_equal(exchange(b.port, smuggle, strlen(smuggle), &closed), 400);
    assert_true(closed);
    /* HTTP/1.1 without Host */
    const char *nohost = "GET /healthz HTTP/1.1\r\n\r\n";
    char got[4096];
    assert_int_equal(exchange_buf(b.port, nohost, strlen(nohost), &closed, got, sizeof(got)), 400);
    assert_true(closed);
    /* answered by us, once: MHD's own 400 repeats its header block */
    assert_int_equal(count_of(got, "\r\nDate: "), 1);
    assert_int_equal(count_of(got, "Content-Length:"), 1);
    assert_non_null(strstr(got, "urn:amibridge:problem:bad-request"));
    /* a blank in the request target, path or query */
    const char *blank = "GET /healthz?a=b c HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(exchange(b.port, blank, strlen(blank), &closed), 400);
    assert_true(closed);
    blank = "GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(exchange(b.port, blank, strlen(blank), &closed), 400);
    /* a request head over 8 KiB: 431 */
    char big[12000];
    int n = snprintf(big, sizeof(big), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 10000);
    memcpy(big + n + 10000, "\r\n\r\n", 5);
    assert_int_equal(exchange(b.port, big, strlen(big), &closed), 431);
    /* a client that sends its head a byte at a time is cut at the deadline,
     * while others are served */
    int slow = dial(b.port);
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    double t0 = testenv_now(), cut_at = 0;
    for (size_t i = 0; i < 60 && !cut_at; i++) {
        if (send(slow, head + (i % strlen(head)), 1, MSG_NOSIGNAL) != 1) {
            cut_at = testenv_now() - t0;
            break;
        }
        char c;
        if (recv(slow, &c, 1, MSG_DONTWAIT) == 0) {
            cut_at = testenv_now() - t0;
            break;
        }
        struct http_resp r;
        char url[96];
        snprintf(url, sizeof(url), "%s/healthz", b.url);
        assert_int_equal(get(url, NULL, &r), 200);
        http_resp_free(&r);
        usleep(100 * 1000);
    }
    close(slow);
    print_message("a byte-at-a-time client was cut after %.1f s (deadline 2 s)\n", cut_at);
    assert_true(cut_at >= 1.9 && cut_at < 4.5);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* --- one request is one request -------------------------------------------------------------- */

#define SMUGGLED  "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
#define PING_HEAD "POST /v1/actions/Ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

static void ambiguous_framing_is_refused_and_the_connection_closed(void **state)
{
    (void)state;
    static const char *const cases[] = {
        /* two Content-Length */
        PING_HEAD "Content-Length: 2\r\nContent-Length: 37\r\n\r\n{}" SMUGGLED,
        /* a blank before the colon: MHD would not see Transfer-Encoding */
        PING_HEAD "Transfer-Encoding : chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" SMUGGLED,
        PING_HEAD
        "Content-Length: 52\r\nTransfer-Encoding\t: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" SMUGGLED,
        /* obs-fold: the value on a continuation line */
        PING_HEAD "Transfer-Encoding:\r\n chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" SMUGGLED,
        /* obs-fold: Transfer-Encoding on a line that continues another */
        PING_HEAD
        "Content-Length: 15\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
        "\r\n" SMUGGLED,
        /* two Transfer-Encoding, and a coding MHD cannot frame */
        PING_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
                  "\r\n" SMUGGLED,
        PING_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" SMUGGLED,
    };
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got[4096];
        int closed = 0;
        int st = exchange_buf(b.port, cases[i], strlen(cases[i]), &closed, got, sizeof(got));
        if (st != 400 || !closed || count_of(got, "\r\nDate: ") != 1 ||
            !strstr(got, "urn:amibridge:problem:bad-framing"))
            fail_msg("case %zu: status %d, closed %d, answer:\n%s", i, st, closed, got);
    }
    /* the server is fine afterwards */
    int closed;
    assert_int_equal(exchange(b.port, SMUGGLED, strlen(SMUGGLED), &closed), 200);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* A Content-Length MHD cannot read: refused by us (problem+json, one
 * header block), never by libmicrohttpd's own answer, which repeats its
 * header block; also after a good request on the same connection, and
 * with the line split over several segments. */
static void a_content_length_that_is_no_number_gets_our_answer(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int status;
    } cases[] = {
        {"abc", 400}, {"", 400},   {" ", 400},   {"-1", 400},   {"1 2", 400},
        {"2 ", 400},  {"+2", 400}, {"0x2", 400}, {"2\r2", 400}, {"99999999999999999999999", 413},
    };
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[512], got[4096];
        int closed = 0;
        int n =
            snprintf(req, sizeof(req), PING_HEAD "Content-Length: %s\r\n\r\n{}", cases[i].value);
        int st = exchange_buf(b.port, req, (size_t)n, &closed, got, sizeof(got));
        if (st != cases[i].status || !closed || count_of(got, "\r\nDate: ") != 1 ||
            !strstr(got, "application/problem+json"))
            fail_msg("Content-Length '%s': status %d, closed %d, answer:\n%s", cases[i].value, st,
                     closed, got);
    }

    /* pipelined after a good request, the header line in three segments */
    int fd = dial(b.port);
    const char *parts[] = {SMUGGLED "POST /v1/actions/Ping HTTP/1.1\r\nHost: x\r\nConte",
                           "nt-Length", ": 1x\r", "\n\r\n{}"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(send(fd, parts[i], strlen(parts[i]), MSG_NOSIGNAL),
                         (ssize_t)strlen(parts[i]));
        usleep(50 * 1000);
    }
    char all[8192];
    read_to_close(fd, all, sizeof(all));
    assert_int_equal(count_of(all, "HTTP/1.1 "), 2);
    assert_int_equal(count_of(all, "\r\nDate: "), 2);
    assert_non_null(strstr(all, "HTTP/1.1 200 "));
    const char *second = strstr(all, "HTTP/1.1 400 ");
    assert_non_null(second);
    assert_non_null(strstr(second, "urn:amibridge:problem:bad-framing"));
    /* and a good Content-Length still reads its body */
    int closed;
    const char *good = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 002\r\n\r\n{}";
    assert_int_equal(exchange(b.port, good, strlen(good), &closed), 200);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* Over TLS, parts[] sent as separate records 50 ms apart; what comes back
 * until the server closes (or 5 s pass) goes to out, NUL-terminated. */
static void tls_exchange(int port, const char *ca, const char *const *parts, size_t nparts,
                         char *out, size_t outlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    int fd = dial(port);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    for (size_t i = 0; i < nparts; i++) {
        assert_int_equal(SSL_write(ssl, parts[i], (int)strlen(parts[i])), (int)strlen(parts[i]));
        usleep(50 * 1000);
    }
    size_t got = 0;
    int n;
    while (got < outlen - 1 && (n = SSL_read(ssl, out + got, (int)(outlen - 1 - got))) > 0)
        got += (size_t)n;
    out[got] = '\0';
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
}

/* A handshake offering the versions minv..maxv (and ALPN `alpn`, in wire
 * format, when not NULL): 1 when it succeeds; what ALPN chose goes to
 * proto ("" for nothing). */
static int tls_handshake(int port, const char *ca, int minv, int maxv, const char *alpn,
                         char *proto, size_t protolen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* the client may offer 1.0 and 1.1: it is the server that must refuse */
    SSL_CTX_set_security_level(ctx, 0);
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, minv), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, maxv), 1);
    if (alpn)
        assert_int_equal(
            SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)alpn, (unsigned)strlen(alpn)), 0);
    SSL *ssl = SSL_new(ctx);
    int fd = dial(port);
    SSL_set_fd(ssl, fd);
    int ok = SSL_connect(ssl) == 1;
    if (proto) {
        const unsigned char *p = NULL;
        unsigned n = 0;
        if (ok)
            SSL_get0_alpn_selected(ssl, &p, &n);
        snprintf(proto, protolen, "%.*s", (int)n, p ? (const char *)p : "");
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return ok;
}

/* HTTPS speaks TLS 1.2 and 1.3, not 1.0 or 1.1 (RFC 8996), and names
 * HTTP/1.1 in ALPN to a client that asks; one that offers only h2 is
 * served HTTP/1.1 as if it had not asked. */
static void https_speaks_tls_1_2_and_1_3_and_names_http_1_1(void **state)
{
    (void)state;
    struct tls_setup t;
    tls_setup(&t, "tls-versions");
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    struct bridge b;
    const char *env[] = {t.env_cert, t.env_key, t.listen, NULL};
    setenv("AMIBRIDGE_TEST_CA", t.cert, 1);
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    char proto[32];
    assert_false(tls_handshake(t.port, t.cert, TLS1_VERSION, TLS1_VERSION, NULL, NULL, 0));
    assert_false(tls_handshake(t.port, t.cert, TLS1_1_VERSION, TLS1_1_VERSION, NULL, NULL, 0));
    assert_true(
        tls_handshake(t.port, t.cert, TLS1_2_VERSION, TLS1_2_VERSION, NULL, proto, sizeof(proto)));
    assert_string_equal(proto, "");
    assert_true(tls_handshake(t.port, t.cert, TLS1_3_VERSION, TLS1_3_VERSION, "\x02h2\x08http/1.1",
                              proto, sizeof(proto)));
    assert_string_equal(proto, "http/1.1");
    assert_true(tls_handshake(t.port, t.cert, TLS1_2_VERSION, TLS1_3_VERSION, "\x02h2", proto,
                              sizeof(proto)));
    assert_string_equal(proto, "");
    /* and after all that, still serving */
    assert_true(bridge_wait_status(&b, "/healthz", 200, 5000) >= 0);
    bridge_stop(&b, 0);
    unsetenv("AMIBRIDGE_TEST_CA");
    amisim_stop(&sim);
    testenv_rmdir(t.dir);
}

/* The same over HTTPS, where libmicrohttpd reads through GnuTLS: the
 * framing is followed in the decrypted bytes, also when a record ends in
 * the middle of the Content-Length line. */
static void over_https_a_content_length_that_is_no_number_gets_our_answer_too(void **state)
{
    (void)state;
    struct tls_setup t;
    tls_setup(&t, "tls-framing");
    const char *cert = t.cert;
    int port = t.port;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    struct bridge b;
    const char *env[] = {t.env_cert, t.env_key, t.listen, NULL};
    setenv("AMIBRIDGE_TEST_CA", cert, 1); /* the harness's own requests */
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    char got[8192];
    static const char *const values[] = {"abc", "", "-1", "1 2", "+2", "0x2"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req), PING_HEAD "Content-Length: %s\r\n\r\n{}", values[i]);
        const char *one[] = {req};
        tls_exchange(port, cert, one, 1, got, sizeof(got));
        if (strncmp(got, "HTTP/1.1 400 ", 13) || count_of(got, "\r\nDate: ") != 1 ||
            !strstr(got, "urn:amibridge:problem:bad-framing"))
            fail_msg("Content-Length '%s' over TLS, answer:\n%s", values[i], got);
    }
    /* pipelined after a good request, the header line in three records */
    const char *parts[] = {SMUGGLED "POST /v1/actions/Ping HTTP/1.1\r\nHost: x\r\nConte",
                           "nt-Length", ": 1x\r", "\n\r\n{}"};
    tls_exchange(port, cert, parts, 4, got, sizeof(got));
    assert_int_equal(count_of(got, "HTTP/1.1 "), 2);
    assert_int_equal(count_of(got, "\r\nDate: "), 2);
    assert_non_null(strstr(got, "HTTP/1.1 200 "));
    const char *second = strstr(got, "HTTP/1.1 400 ");
    assert_non_null(second);
    assert_non_null(strstr(second, "urn:amibridge:problem:bad-framing"));
    /* a good Content-Length split the same way still reads its body */
    const char *good[] = {"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConte",
                          "nt-Length", ": 002\r", "\n\r\n{}"};
    tls_exchange(port, cert, good, 4, got, sizeof(got));
    if (strncmp(got, "HTTP/1.1 200 ", 13))
        fail_msg("a good Content-Length over TLS, answer:\n%s", got);
    bridge_stop(&b, 0);
    unsetenv("AMIBRIDGE_TEST_CA");
    amisim_stop(&sim);
    testenv_rmdir(t.dir);
}

/* --- slow bodies, too many connections ----------------------------------------------------- */

/* Send on a kept-alive connection and read one answer with a
 * Content-Length body; its status, 0 when none came. */
static int ka_request(int fd, const char *req)
{
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
        return 0;
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
        got += (size_t)n;
        buf[got] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "Content-Length: ");
        if (end && cl && (size_t)(buf + got - (end + 4)) >= strtoul(cl + 16, NULL, 10))
            break;
    }
    buf[got] = '\0';
    return !strncmp(buf, "HTTP/1.1 ", 9) ? atoi(buf + 9) : 0;
}

static void slow_bodies_are_cut_and_keyless_ones_refused_from_the_head(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S=2",
                         "AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    char health[96], ping[96];
    snprintf(health, sizeof(health), "%s/healthz", b.url);
    snprintf(ping, sizeof(ping), "%s/v1/actions/Ping", b.url);

    /* no key: 401 as soon as the head is in, the body never read */
    int fd = dial(b.port);
    const char *keyless = PING_HEAD "Content-Length: 1000\r\n\r\n{";
    double t0 = testenv_now();
    assert_int_equal(send(fd, keyless, strlen(keyless), MSG_NOSIGNAL), (ssize_t)strlen(keyless));
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_true(!strncmp(buf, "HTTP/1.1 401", 12));
    assert_non_null(strstr(buf, "Connection: close"));
    assert_true(testenv_now() - t0 < 1.0);
    assert_true(closed_by_server(fd, 2000));
    close(fd);

    /* a complete head, then a body a byte at a time (a route that needs no
     * key): cut at the request deadline while others are served */
    int slow = dial(b.port);
    const char *head = "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 1000\r\n\r\n";
    assert_int_equal(send(slow, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    t0 = testenv_now();
    double cut_at = 0;
    for (size_t i = 0; i < 60 && !cut_at; i++) {
        char c;
        if (send(slow, " ", 1, MSG_NOSIGNAL) != 1 || recv(slow, &c, 1, MSG_DONTWAIT) == 0) {
            cut_at = testenv_now() - t0;
            break;
        }
        struct http_resp r;
        assert_int_equal(get(health, NULL, &r), 200);
        http_resp_free(&r);
        http_call("POST", ping, ADMIN, "{}", NULL, 10000, &r);
        assert_int_equal(r.status, 200);
        http_resp_free(&r);
        usleep(100 * 1000);
    }
    close(slow);
    print_message("a byte-at-a-time body was cut after %.1f s (deadline 2 s)\n", cut_at);
    assert_true(cut_at >= 1.5 && cut_at < 4.5);
    assert_true(metric(b.url, "amibridge_http_connections_cut_total{reason=\"request_timeout\"}") ==
                1);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

static void one_address_is_capped_and_a_full_server_makes_room(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    /* 20 connections, 2 of them the reserve; 4 per client address */
    const char *env[] = {"AMIBRIDGE_HTTP_MAX_CONNECTIONS=20",
                         "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=4",
                         "AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    char health[96];
    snprintf(health, sizeof(health), "%s/healthz", b.url);
    struct http_resp r;

    /* a fifth connection from one address is closed at once; others are served */
    int fds[24];
    for (int i = 0; i < 5; i++)
        fds[i] = dial_from(b.port, "127.0.0.2");
    assert_true(closed_by_server(fds[4], 2000));
    for (int i = 0; i < 4; i++)
        assert_false(closed_by_server(fds[i], 100));
    assert_int_equal(get(health, NULL, &r), 200);
    http_resp_free(&r);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    assert_true(metric(b.url, "amibridge_http_connections_refused_total{reason=\"per_client_"
                              "limit\"}") == 1);

    /* a client with a key, kept alive, then the server filled with idle
     * connections from six addresses: the oldest idle ones are cut */
    int authed = dial_from(b.port, "127.0.0.9");
    const char *req = PING_HEAD "Authorization: Bearer " ADMIN "\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal(ka_request(authed, req), 200);
    char src[24];
    for (int i = 0; i < 24; i++) {
        snprintf(src, sizeof(src), "127.0.0.%d", 3 + i / 4);
        fds[i] = dial_from(b.port, src);
        usleep(30 * 1000);
    }
    int cut = 0;
    for (int i = 0; i < 24; i++)
        cut += closed_by_server(fds[i], i < 8 ? 1000 : 50);
    print_message("%d of 24 idle connections cut to keep the reserve\n", cut);
    assert_true(cut >= 6);
    assert_true(closed_by_server(fds[0], 50));
    assert_int_equal(get(health, NULL, &r), 200);
    http_resp_free(&r);
    assert_int_equal(ka_request(authed, req), 200);
    assert_true(metric(b.url, "amibridge_http_connections_cut_total{reason=\"reserve\"}") >= 6);
    /* and said so, once per sweep */
    for (int i = 0; i < 30 && bridge_log_count(&b, "http connections cut") < 1; i++)
        testenv_sleep_ms(100);
    assert_true(bridge_log_count(&b, "http connections cut") >= 1);
    close(authed);
    for (int i = 0; i < 24; i++)
        close(fds[i]);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* Wrong keys whose answers are held back fill every slot: a client with a
 * key and a health check are still served, by cutting a held one (its
 * answer goes nowhere, which is all a guesser was owed). */
static void held_wrong_key_answers_do_not_keep_out_a_valid_key(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_HTTP_MAX_CONNECTIONS=20",
                         "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0",
                         "AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0);
    const char *wrong = PING_HEAD
        "Authorization: Bearer wrong-token-0123456789abcdef\r\nContent-Length: 2\r\n\r\n{}";
    /* nine wrong keys first, answered (the first at once, then slower):
     * from then on every wrong key from the address is held for 2 s */
    int fds[22];
    for (int i = 0; i < 9; i++) {
        fds[i] = dial_from(b.port, "127.0.0.3");
        assert_int_equal(send(fds[i], wrong, strlen(wrong), MSG_NOSIGNAL), (ssize_t)strlen(wrong));
    }
    for (int i = 0; i < 9; i++) {
        char buf[64] = "";
        assert_true(recv(fds[i], buf, sizeof(buf) - 1, 0) > 0);
        assert_non_null(strstr(buf, " 401 "));
        close(fds[i]);
    }
    /* then the server filled with held ones, one after the other (each
     * read and held before the next comes) */
    for (int i = 0; i < 22; i++) {
        fds[i] = dial_from(b.port, "127.0.0.3");
        send(fds[i], wrong, strlen(wrong), MSG_NOSIGNAL);
        testenv_sleep_ms(20);
    }
    double t0 = testenv_now();
    char ping[96], health[96];
    snprintf(ping, sizeof(ping), "%s/v1/actions/Ping", b.url);
    snprintf(health, sizeof(health), "%s/healthz", b.url);
    struct http_resp r;
    http_call("POST", ping, ADMIN, "{}", NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    assert_int_equal(get(health, NULL, &r), 200);
    http_resp_free(&r);
    print_message("served beside 22 held wrong keys in %.2f s\n", testenv_now() - t0);
    assert_true(testenv_now() - t0 < 1.5); /* not after the holds ran out */
    assert_true(metric(b.url, "amibridge_http_connections_cut_total{reason=\"reserve\"}") >= 1);
    for (int i = 0; i < 22; i++)
        close(fds[i]);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* A wrong key whose request declares a body over the limit: its 401 is
 * held back like any wrong key's and must be the one answer (an immediate
 * 413 in its place left the held answer to a request already gone: a
 * use-after-free any client could trigger). A valid key still gets 413. */
static void a_wrong_key_with_an_oversized_body_gets_its_held_answer(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions", "AMIBRIDGE_MAX_BODY=1024",
                         NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    static const char wrong[] =
        "POST /v1/actions/Ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        "tok-wrong-0123456789\r\n"
        "Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n";
    for (int i = 0; i < 6; i++) { /* from the fourth on, the answer is held back */
        int fd = dial(b.port);
        double t0 = testenv_now();
        assert_int_equal(ka_request(fd, wrong), 401);
        if (i == 5)
            assert_true(testenv_now() - t0 >= 0.35);
        close(fd);
    }
    usleep(500 * 1000); /* every held answer has fired */
    char valid[512];
    snprintf(valid, sizeof(valid),
             "POST /v1/actions/Ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n",
             ADMIN);
    int fd = dial(b.port);
    assert_int_equal(ka_request(fd, valid), 413);
    close(fd);
    fd = dial(b.port);
    assert_int_equal(ka_request(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    close(fd);
    assert_int_equal(bridge_stop(&b, 0), 0); /* exits cleanly: nothing was touched after free */
    amisim_stop(&sim);
}

/* --- behind a trusted proxy ----------------------------------------------------------------- */

/* GET path from loopback with an X-Forwarded-For line (NULL: none) and a
 * token (NULL: none); the status. The head and body land in out. */
static int get_via(int port, const char *path, const char *token, const char *xff, char *out,
                   size_t len)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%s%s%s%s\r\n", path,
                     token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
                     xff ? "X-Forwarded-For: " : "", xff ? xff : "", xff ? "\r\n" : "");
    int fd = dial(port);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t got = 0;
    ssize_t k;
    out[0] = '\0';
    while (got < len - 1 && (k = recv(fd, out + got, len - 1 - got, 0)) > 0) {
        got += (size_t)k;
        out[got] = '\0';
        const char *end = strstr(out, "\r\n\r\n");
        const char *cl = strcasestr(out, "\r\nContent-Length:");
        if (end && cl && cl < end && (size_t)(out + got - (end + 4)) >= strtoul(cl + 17, NULL, 10))
            break;
    }
    close(fd);
    return !strncmp(out, "HTTP/1.1 ", 9) ? atoi(out + 9) : 0;
}

static void trusted_proxies_name_the_client_of_the_lock_out_and_the_trusted_nets(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_API_KEYS=ops:" ADMIN ":read",
                         "AMIBRIDGE_AUTH_FAIL_LIMIT=3",
                         "AMIBRIDGE_AUTH_FAIL_WINDOW_S=30",
                         "AMIBRIDGE_TRUSTED_PROXIES=127.0.0.0/8",
                         "AMIBRIDGE_TRUSTED_NETS=198.51.100.0/24",
                         "AMIBRIDGE_LOG_LEVEL=info",
                         "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=2",
                         NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    char buf[4096];
    const char *ch = "/v1/channels", *wrong = "tok-admin-0123456780";
    /* one client behind the proxy guesses and is locked out */
    for (int i = 0; i < 3; i++)
        assert_int_equal(get_via(b.port, ch, wrong, "198.51.100.1", buf, sizeof(buf)), 401);
    assert_int_equal(get_via(b.port, ch, NULL, "198.51.100.1", buf, sizeof(buf)), 429);
    assert_non_null(strstr(buf, "auth-locked-out"));
    assert_non_null(strcasestr(buf, "Retry-After:"));
    double t0 = testenv_now();
    assert_int_equal(get_via(b.port, ch, wrong, "198.51.100.1", buf, sizeof(buf)), 429);
    assert_true(testenv_now() - t0 >= 1.9); /* a guess is not answered faster than before */
    /* its own valid key still works from there */
    assert_int_equal(get_via(b.port, ch, ADMIN, "198.51.100.1", buf, sizeof(buf)), 200);
    /* another client behind the same proxy is not locked out */
    assert_int_equal(get_via(b.port, ch, NULL, "198.51.100.2", buf, sizeof(buf)), 401);
    assert_int_equal(get_via(b.port, ch, wrong, "198.51.100.2", buf, sizeof(buf)), 401);
    assert_int_equal(get_via(b.port, ch, ADMIN, "198.51.100.2", buf, sizeof(buf)), 200);
    /* the right-most address the proxy did not add counts, not the left-most
     * one, which the client wrote itself */
    assert_int_equal(get_via(b.port, ch, NULL, "198.51.100.2, 198.51.100.1", buf, sizeof(buf)),
                     429);
    assert_int_equal(
        get_via(b.port, ch, NULL, "198.51.100.1, 198.51.100.2, 127.0.0.1", buf, sizeof(buf)), 401);
    /* the proxy itself, without the header, is its own client */
    assert_int_equal(get_via(b.port, ch, NULL, NULL, buf, sizeof(buf)), 401);
    /* AMIBRIDGE_TRUSTED_NETS judges the forwarded client, not the proxy */
    assert_int_equal(get_via(b.port, ch, ADMIN, "203.0.113.9", buf, sizeof(buf)), 403);
    assert_non_null(strstr(buf, "untrusted-network"));
    assert_int_equal(get_via(b.port, "/healthz", NULL, NULL, buf, sizeof(buf)), 200);
    /* the per-client cap counts clients: the proxy carries many, it is not capped */
    int held[3];
    for (int i = 0; i < 3; i++)
        held[i] = dial(b.port);
    assert_int_equal(get_via(b.port, "/healthz", NULL, NULL, buf, sizeof(buf)), 200);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    /* logs name the client and the proxy it came through */
    assert_true(bridge_log_count(&b, "\"peer\":\"198.51.100.1\"") >= 1);
    assert_true(bridge_log_count(&b, "\"via\":\"127.0.0.1\"") >= 1);
    assert_true(bridge_log_count(&b, "locked out") == 1);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* --- connections that end, and what they carried ------------------------------------------- */

/* Everything the client sent before it closed its side is answered: two
 * pipelined actions (each waits for AMI), then a half-close. Over TLS, a
 * request that waits for AMI with 15 KiB of pipelined requests behind it
 * in one record (more than the server holds while one waits: the rest
 * stays decrypted inside GnuTLS, where no poll sees it). */
static void pipelined_requests_are_all_answered_also_after_a_half_close_and_over_https(void **state)
{
    (void)state;
    struct tls_setup t;
    tls_setup(&t, "tls-pipelined");
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *keys = "AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions";
    struct bridge b;
    const char *plain_env[] = {keys, NULL};
    assert_int_equal(bridge_start(&b, sim.port, plain_env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0); /* AMI logged in */
    const char *ping = PING_HEAD "Authorization: Bearer " ADMIN "\r\nContent-Length: 2\r\n\r\n{}";
    char two[1024];
    snprintf(two, sizeof(two), "%s%s", ping, ping);
    int fd = dial(b.port);
    assert_int_equal(send(fd, two, strlen(two), MSG_NOSIGNAL), (ssize_t)strlen(two));
    shutdown(fd, SHUT_WR);
    char all[8192];
    /* closed by the server once both were answered */
    assert_true(read_to_close(fd, all, sizeof(all)));
    assert_int_equal(count_of(all, "HTTP/1.1 200 "), 2);
    bridge_stop(&b, 0);

    setenv("AMIBRIDGE_TEST_CA", t.cert, 1); /* the harness's own requests */
    const char *tls_env[] = {t.env_cert, t.env_key, t.listen, keys, NULL};
    assert_int_equal(bridge_start(&b, sim.port, tls_env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0);
    static char req[32 * 1024], out[64 * 1024];
    size_t len = (size_t)snprintf(req, sizeof(req), "%s", ping);
    for (int i = 0; i < 60; i++)
        len +=
            (size_t)snprintf(req + len, sizeof(req) - len,
                             "GET /healthz?n=%02d HTTP/1.1\r\nHost: x\r\nX-Pad: %0180d\r\n%s\r\n",
                             i, 0, i == 59 ? "Connection: close\r\n" : "");
    assert_true(len > 8192 + 4096); /* past what one waiting request holds */
    const char *one[] = {req};
    tls_exchange(t.port, t.cert, one, 1, out, sizeof(out));
    if (count_of(out, "HTTP/1.1 200 ") != 61)
        fail_msg("%d of 61 answers over TLS", count_of(out, "HTTP/1.1 200 "));
    bridge_stop(&b, 0);
    unsetenv("AMIBRIDGE_TEST_CA");
    amisim_stop(&sim);
    testenv_rmdir(t.dir);
}

/* One keep-alive connection that shows several keys (a proxy that pools
 * its connections to the bridge): each request is judged by the key it
 * shows, not by the one that came before on the connection, which the
 * bridge keeps to spare hashing it again (http/auth's memo). */
static void each_request_on_a_connection_is_judged_by_its_own_key(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions "
                         "reader:tok-reader-0123456789:read",
                         NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    assert_true(bridge_wait_status(&b, "/readyz", 200, 5000) >= 0);
#define PING_AS(tok) PING_HEAD "Authorization: Bearer " tok "\r\nContent-Length: 2\r\n\r\n{}"
#define GET_AS(path, tok)                                                                          \
    "GET " path " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " tok "\r\n\r\n"
    /* a refusal from the head of a request with a body ends the
     * connection (the body stays unread), so the refusals here are GETs */
    static const char req[] = PING_AS(ADMIN)                /* 200, kept */
        GET_AS("/v1/channels", "tok-admin-0123456788")      /* 401: a byte off the kept one */
        PING_AS(ADMIN)                                      /* 200 */
        GET_AS("/v1/webhooks", "tok-reader-0123456789")     /* 403: reader lacks admin */
        GET_AS("/v1/channels", "tok-reader-0123456789")     /* 200, kept */
        GET_AS("/v1/webhooks", "tok-reader-0123456789")     /* 403 from the kept key too */
        GET_AS("/v1/channels", "TOK-READER-0123456789")     /* 401: case counts */
        GET_AS("/v1/channels", "tok-reader-0123456789\x7f") /* 401: a byte more */
        PING_HEAD "Authorization: Bearer " ADMIN "\r\nContent-Length: 2\r\n"
                  "Connection: close\r\n\r\n{}"; /* 200 */
#undef PING_AS
#undef GET_AS
    static const int want[] = {200, 401, 200, 403, 200, 403, 401, 401, 200};
    int fd = dial(b.port);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    static char all[16384];
    assert_true(read_to_close(fd, all, sizeof(all)));
    const char *p = all;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *at = strstr(p, "HTTP/1.1 ");
        int status = at ? atoi(at + 9) : 0;
        if (status != want[i])
            fail_msg("answer %zu: %d, wanted %d (0: no answer)", i + 1, status, want[i]);
        p = at ? at + 9 : p;
    }
    assert_null(strstr(p, "HTTP/1.1 "));
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

/* An answer that ends its connection is followed by a graceful close:
 * what the client still sends is read and dropped, but for 2 s in all,
 * not for as long as it keeps sending. HEAD on a stream is its head
 * alone, and the connection goes on. */
static void a_graceful_close_ends_and_head_of_a_stream_is_a_head(void **state)
{
    (void)state;
    struct amisim sim;
    assert_int_equal(amisim_start(&sim, NULL), 0);
    const char *env[] = {"AMIBRIDGE_API_KEYS=ops:" ADMIN ":read,actions", NULL};
    struct bridge b;
    assert_int_equal(bridge_start(&b, sim.port, env), 0);
    int fd = dial(b.port);
    const char *bye = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, bye, strlen(bye), MSG_NOSIGNAL), (ssize_t)strlen(bye));
    double t0 = testenv_now(), closed_at = 0;
    char buf[4096];
    /* the answer and the server's FIN come first; the close itself shows
     * when a send is refused (the server's reset) */
    while (!closed_at && testenv_now() - t0 < 10) {
        while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
            closed_at = testenv_now() - t0;
        else
            usleep(200 * 1000);
    }
    close(fd);
    print_message("a client that kept sending after its last answer was closed after %.1f s\n",
                  closed_at);
    assert_true(closed_at >= 1.5 && closed_at < 4.5);

    fd = dial(b.port);
    const char *head = "HEAD /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " ADMIN
                       "\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    read_to_close(fd, buf, sizeof(buf));
    assert_int_equal(count_of(buf, "HTTP/1.1 200 "), 2);
    assert_non_null(strstr(buf, "text/event-stream"));
    assert_null(strstr(buf, "retry:")); /* no body */
    struct http_resp r;
    char url[96];
    snprintf(url, sizeof(url), "%s/healthz", b.url);
    assert_int_equal(get(url, NULL, &r), 200);
    http_resp_free(&r);
    bridge_stop(&b, 0);
    amisim_stop(&sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(https_is_served_with_the_configured_certificate),
        cmocka_unit_test(clients_outside_the_trusted_networks_are_refused_before_auth),
        cmocka_unit_test(wrong_keys_slow_down_then_lock_the_address_out),
        cmocka_unit_test(slow_ambiguous_and_oversized_request_heads_are_refused),
        cmocka_unit_test(ambiguous_framing_is_refused_and_the_connection_closed),
        cmocka_unit_test(a_content_length_that_is_no_number_gets_our_answer),
        cmocka_unit_test(over_https_a_content_length_that_is_no_number_gets_our_answer_too),
        cmocka_unit_test(slow_bodies_are_cut_and_keyless_ones_refused_from_the_head),
        cmocka_unit_test(one_address_is_capped_and_a_full_server_makes_room),
        cmocka_unit_test(held_wrong_key_answers_do_not_keep_out_a_valid_key),
        cmocka_unit_test(trusted_proxies_name_the_client_of_the_lock_out_and_the_trusted_nets),
        cmocka_unit_test(a_wrong_key_with_an_oversized_body_gets_its_held_answer),
        cmocka_unit_test(
            pipelined_requests_are_all_answered_also_after_a_half_close_and_over_https),
        cmocka_unit_test(a_graceful_close_ends_and_head_of_a_stream_is_a_head),
        cmocka_unit_test(each_request_on_a_connection_is_judged_by_its_own_key),
        cmocka_unit_test(https_speaks_tls_1_2_and_1_3_and_names_http_1_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
