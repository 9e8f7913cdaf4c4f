/* soak: load and abuse of a running amibridge, one phase per run (driven by
 * tests/soak/run.sh). Raw sockets and epoll, so thousands of connections
 * cost one process and no threads. The bridge's resident memory and open
 * descriptors are read from /proc/PID while it works.
 *
 *   soak mixed     --port P --pid PID [--requests N] [--conns 64] [--token T]
 *   soak idle      --port P --pid PID [--conns 5000] [--hold-s 3]
 *   soak slowloris --port P --pid PID [--conns 1000] [--normal 200] [--interval-ms 50]
 *                  [--byte-ms 100] [--timeout-s 5]
 *   soak slowbody  --port P --pid PID [--conns 1500] [--normal 200] [--interval-ms 50]
 *                  [--byte-ms 100] [--timeout-s 5] [--token T]
 *   soak malformed --port P --pid PID [--token T]
 *
 * Output, for the script to collect:
 *   check PASS|FAIL NAME: detail     one line per check
 *   target MET|MISSED NAME: detail   a figure against its goal (not a failure)
 *   figure NAME VALUE                 one line per measured figure
 * Exit status 1 when a check failed, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "support/stats.h"

#define SOAK_HOST_HEADER      "Host: soak\r\n"
#define SOAK_REQ_TIMEOUT_MS   10000.0 /* a request not answered by then is lost */
#define SOAK_SAMPLE_MS        1000.0  /* /proc sampling period */
#define SOAK_PROGRESS_MS      10000.0 /* progress line period of the mixed phase */
#define SOAK_FD_SETTLE_MS     10000   /* time for the bridge's fds to come back */
#define SOAK_READ_CHUNK       65536
#define SOAK_EPOLL_EVENTS     256
#define SOAK_CONNECTING_MAX   256 /* non-blocking connects in progress at once */
#define SOAK_OPEN_DEADLINE_MS 120000.0
#define SOAK_STUCK_MS         30000.0 /* no answer at all for this long: give up */
#define SOAK_LATENCY_MAX_MS   500.0   /* a normal request under abuse */
#define MIXED_WARMUP_PART     5       /* the first 1/5 of the requests warm up */
#define MIXED_RSS_SLACK_PCT   10
#define MIXED_RSS_SLACK_KIB   2048
#define IDLE_RSS_TARGET_KIB   (64 * 1024)
#define NORMAL_TAG            0x80000000u /* epoll tag of a normal request in slowloris */
#define SLOW_HEADER_BYTES     65536
#define SLOW_GRACE_MS         3000.0 /* past the bridge's timeout, for it to act */
#define MAL_FIRST_BYTE_MS     2000
#define MAL_QUIET_MS          300
#define MAL_SEND_STALL_MS     3000
#define MAL_SEND_CHUNK        65536
#define MAL_BIG_HEADER        (100 * 1024)
#define MAL_HEADERS           1000
#define MAL_DEPTH             10000
#define MAL_BIG_BODY          (10 * 1024 * 1024)
#define MAL_LONG_PATH         (100 * 1024)
#define MAL_NORMAL_TIMEOUT_MS 2000

struct opts {
    int port;
    pid_t pid;
    long requests;
    int conns;
    int hold_s;
    int normal;
    int interval_ms;
    int byte_ms;
    int timeout_s;
    const char *token;
};

static int failures;

/* --- output ------------------------------------------------------------------------ */

static void check(int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(int ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("check %s %s: ", ok ? "PASS" : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok)
        failures++;
}

static void target(int met, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void target(int met, const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("target %s %s: ", met ? "MET" : "MISSED", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void figure(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void figure(const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("figure %s ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* --- time, /proc ------------------------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Resident memory of pid in KiB, or -1 when it is gone. */
static long proc_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    long size = 0, resident = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Open descriptors of pid, or -1 when it is gone. */
static int proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Alive and not a zombie (the script, its parent, reaps it later). */
static int proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Wait until pid has `base` descriptors or fewer; the last count seen. */
static int wait_fds(pid_t pid, int base, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    int n = proc_fds(pid);
    while (n > base && now_ms() < end) {
        sleep_ms(100);
        n = proc_fds(pid);
    }
    return n;
}

/* --- sockets ---------------------------------------------------------------------------- */

/* A TCP connection to 127.0.0.1:port, non-blocking. With `wait` the connect
 * has completed on return; otherwise it may still be in progress. The fd
 * or -errno. */
static int tcp_open(int port, int wait)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (wait ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (wait)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int connect_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

/* Read what is there into in. 1 when the peer closed (or reset), 0 when
 * it would block. */
static int read_some(int fd, struct strbuf *in)
{
    char buf[SOAK_READ_CHUNK];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (strbuf_append(in, buf, (size_t)n) != 0)
                return 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return 1;
    }
}

static int ep_ctl(int ep, int op, int fd, uint32_t events, uint32_t tag)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u32 = tag;
    return epoll_ctl(ep, op, fd, &ev);
}

/* --- HTTP responses --------------------------------------------------------------------- */

struct http_resp {
    int status;
    size_t len; /* bytes of the whole response, head and body */
    int close;  /* Connection: close, or a body that ends with the connection */
};

/* One response at the start of b[0..n). 1 (r filled), 0 when more bytes
 * are needed, -1 when the bytes are not a response (or end early at eof). */
static int resp_parse(const char *b, size_t n, int eof, struct http_resp *r)
{
    int need = eof ? -1 : 0;
    memset(r, 0, sizeof(*r));
    if (n >= 7 && memcmp(b, "HTTP/1.", 7) != 0)
        return -1;
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end)
        return need;
    size_t head = (size_t)(end - b) + 4;
    if (head < 16 || b[8] != ' ' || b[9] < '1' || b[9] > '5')
        return -1;
    r->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    long long cl = -1;
    int chunked = 0;
    const char *p = memchr(b, '\n', head);
    for (p = p ? p + 1 : end; p < end;) {
        const char *e = memchr(p, '\n', (size_t)(end + 2 - p));
        size_t len = (size_t)(e - p);
        if (len > 15 && !strncasecmp(p, "content-length:", 15))
            cl = strtoll(p + 15, NULL, 10);
        else if (len > 18 && !strncasecmp(p, "transfer-encoding:", 18))
            chunked = memmem(p, len, "chunked", 7) != NULL;
        else if (len > 11 && !strncasecmp(p, "connection:", 11))
            r->close = memmem(p, len, "close", 5) != NULL;
        p = e + 1;
    }
    if (r->status / 100 == 1 || r->status == 204 || r->status == 304) {
        r->len = head;
        return 1;
    }
    if (chunked) {
        size_t off = head;
        for (;;) {
            const char *le = memmem(b + off, n - off, "\r\n", 2);
            if (!le)
                return need;
            unsigned long sz = strtoul(b + off, NULL, 16);
            off = (size_t)(le - b) + 2;
            if (sz == 0)
                break;
            if (n - off < sz + 2)
                return need;
            off += sz + 2;
        }
        for (;;) { /* trailers, then the empty line */
            const char *le = memmem(b + off, n - off, "\r\n", 2);
            if (!le)
                return need;
            if (le == b + off) {
                r->len = off + 2;
                return 1;
            }
            off = (size_t)(le - b) + 2;
        }
    }
    if (cl >= 0) {
        if (n - head < (size_t)cl)
            return need;
        r->len = head + (size_t)cl;
        return 1;
    }
    if (!eof)
        return 0;
    r->len = n;
    r->close = 1;
    return 1;
}

/* One request on a new connection, waiting at most timeout_ms: the status,
 * or -1 (no answer, closed, refused). *ms: time to the whole answer. */
static int simple_request(int port, const char *req, size_t len, int timeout_ms, double *ms)
{
    double t0 = now_ms(), end = t0 + timeout_ms;
    int status = -1;
    struct strbuf in;
    strbuf_init(&in, 0);
    int fd = tcp_open(port, 0);
    if (fd < 0)
        goto out;
    size_t off = 0;
    int eof = 0;
    while (now_ms() < end) {
        struct pollfd pfd = {fd, off < len ? POLLOUT : POLLIN, 0};
        int left = (int)(end - now_ms()) + 1;
        if (poll(&pfd, 1, left) <= 0)
            continue;
        if (off < len) {
            ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
            off += n > 0 ? (size_t)n : 0;
            continue;
        }
        eof = read_some(fd, &in);
        struct http_resp r;
        int rc = resp_parse(in.data ? in.data : "", in.len, eof, &r);
        if (rc > 0)
            status = r.status;
        if (rc != 0 || eof)
            break;
    }
    close(fd);
out:
    *ms = now_ms() - t0;
    strbuf_release(&in);
    return status;
}

static int healthz(int port, int timeout_ms, double *ms)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER "\r\n";
    return simple_request(port, req, sizeof(req) - 1, timeout_ms, ms);
}

/* --- phase 1: mixed requests over keep-alive connections -------------------------------- */

enum {
    K_HEALTHZ,
    K_READYZ,
    K_PING,
    K_CHANNELS,
    K_QUEUES,
    K_CALL,
    K_BADCALL,
    K_NOAUTH,
    K_NOTFOUND,
    K_COUNT
};

struct kind {
    const char *name;
    int expect;
    int allow[2]; /* answers of a documented limit (429, 503), 0: none */
    char req[640];
    size_t len;
    long sent, ok, limited, unexpected, lost;
    int last_unexpected;
};

struct mconn {
    int fd;
    int busy;
    int kind;
    int opened; /* connected at least once before */
    double t0;
    size_t off; /* bytes of the request written */
    struct strbuf in;
};

static void kind_set(struct kind *k, const char *name, int expect, int allow0, int allow1,
                     const char *method, const char *path, const char *token, const char *body)
{
    k->name = name;
    k->expect = expect;
    k->allow[0] = allow0;
    k->allow[1] = allow1;
    int n = snprintf(k->req, sizeof(k->req), "%s %s HTTP/1.1\r\n" SOAK_HOST_HEADER, method, path);
    if (token)
        n +=
            snprintf(k->req + n, sizeof(k->req) - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (body)
        n += snprintf(k->req + n, sizeof(k->req) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    else
        n += snprintf(k->req + n, sizeof(k->req) - (size_t)n, "\r\n");
    k->len = (size_t)n;
}

/* The mix: 429 and 503 are accepted only where the bridge documents a limit
 * (the originate guard; too many actions in flight). */
static void kinds_init(struct kind *k, const char *tok)
{
    memset(k, 0, sizeof(*k) * K_COUNT);
    kind_set(&k[K_HEALTHZ], "GET /healthz", 200, 0, 0, "GET", "/healthz", NULL, NULL);
    kind_set(&k[K_READYZ], "GET /readyz", 200, 0, 0, "GET", "/readyz", NULL, NULL);
    kind_set(&k[K_PING], "POST /v1/actions/Ping", 200, 503, 0, "POST", "/v1/actions/Ping", tok,
             "{}");
    kind_set(&k[K_CHANNELS], "GET /v1/channels", 200, 503, 0, "GET", "/v1/channels", tok, NULL);
    kind_set(&k[K_QUEUES], "GET /v1/queues", 200, 503, 0, "GET", "/v1/queues", tok, NULL);
    kind_set(&k[K_CALL], "POST /v1/calls", 202, 429, 503, "POST", "/v1/calls", tok,
             "{\"channel\":\"Local/150@demo\",\"context\":\"demo\",\"exten\":\"150\","
             "\"wait\":false}");
    kind_set(&k[K_BADCALL], "POST /v1/calls {} (400)", 400, 0, 0, "POST", "/v1/calls", tok, "{}");
    kind_set(&k[K_NOAUTH], "GET /v1/channels no key (401)", 401, 0, 0, "GET", "/v1/channels", NULL,
             NULL);
    kind_set(&k[K_NOTFOUND], "GET /soak-nothing-here (404)", 404, 0, 0, "GET", "/soak-nothing-here",
             tok, NULL);
}

static int mconn_open(struct mconn *c, int ep, int port, uint32_t tag)
{
    c->fd = tcp_open(port, 1);
    c->busy = 0;
    strbuf_reset(&c->in);
    if (c->fd < 0)
        return c->fd;
    return ep_ctl(ep, EPOLL_CTL_ADD, c->fd, EPOLLIN | EPOLLRDHUP, tag);
}

static void mconn_close(struct mconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->busy = 0;
}

/* Write what is left of the request; EPOLLOUT only while some is. */
static int mconn_flush(struct mconn *c, int ep, const struct kind *k, uint32_t tag)
{
    while (c->off < k->len) {
        ssize_t n = send(c->fd, k->req + c->off, k->len - c->off, MSG_NOSIGNAL);
        if (n > 0) {
            c->off += (size_t)n;
            if (c->off == k->len)
                ep_ctl(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLRDHUP, tag);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return ep_ctl(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, tag);
        return -1;
    }
    return 0;
}

struct mixed {
    const struct opts *o;
    struct kind kinds[K_COUNT];
    struct mconn *conns;
    double *lat;
    long next, done, answered, lost, unexpected, limited;
    long reconnects;
};

/* A request finished, answered (status) or not (-1). */
static void mixed_finish(struct mixed *m, struct mconn *c, int status)
{
    struct kind *k = &m->kinds[c->kind];
    c->busy = 0;
    m->done++;
    if (status < 0) {
        k->lost++;
        m->lost++;
        return;
    }
    m->lat[m->answered++] = now_ms() - c->t0;
    if (status == k->expect) {
        k->ok++;
    } else if (status == k->allow[0] || status == k->allow[1]) {
        k->limited++;
        m->limited++;
    } else {
        k->unexpected++;
        k->last_unexpected = status;
        m->unexpected++;
    }
}

static void mixed_event(struct mixed *m, int ep, uint32_t i, uint32_t events)
{
    struct mconn *c = &m->conns[i];
    if (c->fd < 0)
        return;
    if ((events & EPOLLOUT) && c->busy && mconn_flush(c, ep, &m->kinds[c->kind], i) < 0) {
        mixed_finish(m, c, -1);
        mconn_close(c);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    int eof = read_some(c->fd, &c->in);
    if (c->busy) {
        struct http_resp r;
        int rc = resp_parse(c->in.data ? c->in.data : "", c->in.len, eof, &r);
        if (rc > 0) {
            mixed_finish(m, c, r.status);
            strbuf_consume(&c->in, r.len);
            if (r.close)
                eof = 1;
        } else if (rc < 0) {
            mixed_finish(m, c, -1);
            eof = 1;
        }
    }
    if (eof) {
        if (c->busy)
            mixed_finish(m, c, -1); /* closed before the answer */
        mconn_close(c);
    }
}

static int run_mixed(const struct opts *o)
{
    struct mixed m;
    memset(&m, 0, sizeof(m));
    m.o = o;
    kinds_init(m.kinds, o->token);
    long n = o->requests;
    int nc = o->conns, rc = 1;
    m.conns = calloc((size_t)nc, sizeof(*m.conns));
    m.lat = calloc((size_t)n, sizeof(*m.lat));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!m.conns || !m.lat || ep < 0) {
        fprintf(stderr, "soak: out of memory\n");
        goto out;
    }
    int fd_base = proc_fds(o->pid);
    long rss_start = proc_rss_kib(o->pid), rss_warm = -1, rss_max = rss_start, rss_peak = 0;
    int fds_max = fd_base;
    figure("mixed.rss_start_kib", "%ld", rss_start);
    figure("mixed.fds_start", "%d", fd_base);
    for (int i = 0; i < nc; i++) {
        strbuf_init(&m.conns[i].in, 0);
        m.conns[i].fd = -1;
    }
    double t0 = now_ms(), next_sample = t0, next_progress = t0 + SOAK_PROGRESS_MS;
    double last_progress = t0;
    long last_done = 0;
    struct epoll_event evs[SOAK_EPOLL_EVENTS];
    while (m.done < n) {
        for (int i = 0; i < nc && m.next < n; i++) {
            struct mconn *c = &m.conns[i];
            if (c->busy)
                continue;
            if (c->fd < 0) {
                if (mconn_open(c, ep, o->port, (uint32_t)i) < 0) {
                    mconn_close(c);
                    continue; /* tried again next round */
                }
                m.reconnects += c->opened;
                c->opened = 1;
            }
            c->busy = 1;
            c->kind = (int)(m.next % K_COUNT);
            c->t0 = now_ms();
            c->off = 0;
            m.kinds[c->kind].sent++;
            m.next++;
            if (mconn_flush(c, ep, &m.kinds[c->kind], (uint32_t)i) < 0) {
                mixed_finish(&m, c, -1);
                mconn_close(c);
            }
        }
        int ne = epoll_wait(ep, evs, SOAK_EPOLL_EVENTS, 100);
        for (int e = 0; e < ne; e++)
            mixed_event(&m, ep, evs[e].data.u32, evs[e].events);
        double t = now_ms();
        for (int i = 0; i < nc; i++)
            if (m.conns[i].busy && t - m.conns[i].t0 > SOAK_REQ_TIMEOUT_MS) {
                mixed_finish(&m, &m.conns[i], -1);
                mconn_close(&m.conns[i]);
            }
        if (m.done != last_done) {
            last_done = m.done;
            last_progress = t;
        } else if (t - last_progress > SOAK_STUCK_MS) {
            break; /* nothing answers, nothing times out: connections refused */
        }
        if (rss_warm < 0 && m.done >= n / MIXED_WARMUP_PART) {
            rss_warm = proc_rss_kib(o->pid);
            rss_max = rss_warm;
        }
        if (t >= next_sample) {
            long rss = proc_rss_kib(o->pid);
            int fds = proc_fds(o->pid);
            if (rss < 0)
                break; /* the bridge is gone */
            if (rss_warm >= 0 && rss > rss_max)
                rss_max = rss;
            rss_peak = rss > rss_peak ? rss : rss_peak;
            fds_max = fds > fds_max ? fds : fds_max;
            next_sample = t + SOAK_SAMPLE_MS;
        }
        if (t >= next_progress) {
            printf("  mixed: %ld/%ld answered, %.0f req/s, rss %ld KiB, fds %d\n", m.done, n,
                   (double)m.done * 1000.0 / (t - t0), proc_rss_kib(o->pid), proc_fds(o->pid));
            fflush(stdout);
            next_progress = t + SOAK_PROGRESS_MS;
        }
    }
    double secs = (now_ms() - t0) / 1000.0;
    for (int i = 0; i < nc; i++)
        mconn_close(&m.conns[i]);
    int alive = proc_alive(o->pid);
    int fds_end = wait_fds(o->pid, fd_base, SOAK_FD_SETTLE_MS);
    long rss_end = proc_rss_kib(o->pid);
    rss_max = rss_end > rss_max ? rss_end : rss_max;
    if (rss_warm < 0)
        rss_warm = rss_end;
    long slack = rss_warm * MIXED_RSS_SLACK_PCT / 100;
    slack = slack > MIXED_RSS_SLACK_KIB ? slack : MIXED_RSS_SLACK_KIB;

    stats_sort(m.lat, (size_t)m.answered);
    printf("\n| request | sent | expected | limited (429/503) | unexpected | unanswered |\n"
           "| --- | --- | --- | --- | --- | --- |\n");
    for (int k = 0; k < K_COUNT; k++) {
        const struct kind *kd = &m.kinds[k];
        printf("| %s | %ld | %ld x %d | %ld | %ld", kd->name, kd->sent, kd->ok, kd->expect,
               kd->limited, kd->unexpected);
        if (kd->unexpected)
            printf(" (last %d)", kd->last_unexpected);
        printf(" | %ld |\n", kd->lost);
    }
    putchar('\n');
    figure("mixed.requests", "%ld", n);
    figure("mixed.connections", "%d", nc);
    figure("mixed.seconds", "%.1f", secs);
    figure("mixed.req_per_s", "%.0f", secs > 0 ? (double)m.done / secs : 0.0);
    figure("mixed.p50_ms", "%.2f", stats_pct(m.lat, (size_t)m.answered, 0.50));
    figure("mixed.p99_ms", "%.2f", stats_pct(m.lat, (size_t)m.answered, 0.99));
    figure("mixed.max_ms", "%.2f", m.answered ? m.lat[m.answered - 1] : 0.0);
    figure("mixed.limited", "%ld", m.limited);
    figure("mixed.reconnects", "%ld", m.reconnects);
    figure("mixed.rss_after_warmup_kib", "%ld", rss_warm);
    figure("mixed.rss_max_after_warmup_kib", "%ld", rss_max);
    figure("mixed.rss_end_kib", "%ld", rss_end);
    figure("mixed.rss_peak_kib", "%ld", rss_peak);
    figure("mixed.fds_max", "%d", fds_max);
    figure("mixed.fds_end", "%d", fds_end);
    check(alive, "mixed.bridge_alive", "pid %d %s", (int)o->pid, alive ? "running" : "GONE");
    check(m.done == n && m.lost == 0, "mixed.all_answered",
          "%ld of %ld answered within %.0f s, %ld unanswered", m.answered, n,
          SOAK_REQ_TIMEOUT_MS / 1000, m.lost + (n - m.done));
    check(m.unexpected == 0, "mixed.statuses",
          "%ld unexpected statuses; %ld documented limits (429/503) reported", m.unexpected,
          m.limited);
    check(rss_end >= 0 && rss_max <= rss_warm + slack, "mixed.rss_flat",
          "after warm-up %ld KiB, max %ld KiB, end %ld KiB (limit +%ld KiB)", rss_warm, rss_max,
          rss_end, slack);
    check(fds_end >= 0 && fds_end <= fd_base, "mixed.fds_back", "start %d, max %d, end %d", fd_base,
          fds_max, fds_end);
    rc = failures ? 1 : 0;
out:
    if (ep >= 0)
        close(ep);
    if (m.conns)
        for (int i = 0; i < nc; i++)
            strbuf_release(&m.conns[i].in);
    free(m.conns);
    free(m.lat);
    return rc;
}

/* --- opening many connections -------------------------------------------------------------- */

enum { C_NONE, C_CONNECTING, C_READING, C_OPEN, C_FAILED, C_CUT };

struct pconn {
    int fd;
    int state;
    double cut_at; /* when the server closed it */
    size_t off;    /* slowloris: header bytes sent */
    double next;   /* slowloris: when the next byte goes */
    struct strbuf in;
};

/* Open n connections, at most SOAK_CONNECTING_MAX in progress. With `req`
 * each sends it and reads the answer (counted in *ok when 200); either way
 * every connection is left open and watched for a close by the server. The
 * number open at the end. */
static int open_many(int ep, int port, struct pconn *c, int n, const char *req, int *ok)
{
    int next = 0, pending = 0, nopen = 0;
    size_t len = req ? strlen(req) : 0;
    double deadline = now_ms() + SOAK_OPEN_DEADLINE_MS;
    struct epoll_event evs[SOAK_EPOLL_EVENTS];
    *ok = 0;
    while ((next < n || pending > 0) && now_ms() < deadline) {
        while (next < n && pending < SOAK_CONNECTING_MAX) {
            struct pconn *p = &c[next];
            strbuf_init(&p->in, 0);
            p->fd = tcp_open(port, 0);
            if (p->fd < 0 || ep_ctl(ep, EPOLL_CTL_ADD, p->fd, EPOLLOUT, (uint32_t)next) < 0) {
                p->state = C_FAILED;
                if (p->fd >= 0)
                    close(p->fd);
                p->fd = -1;
            } else {
                p->state = C_CONNECTING;
                pending++;
            }
            next++;
        }
        int ne = epoll_wait(ep, evs, SOAK_EPOLL_EVENTS, 100);
        for (int e = 0; e < ne; e++) {
            struct pconn *p = &c[evs[e].data.u32];
            int failed = 0;
            if (p->state == C_CONNECTING) {
                if (connect_error(p->fd) != 0 ||
                    (req && send(p->fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)) {
                    failed = 1;
                } else {
                    ep_ctl(ep, EPOLL_CTL_MOD, p->fd, EPOLLIN | EPOLLRDHUP, evs[e].data.u32);
                    p->state = req ? C_READING : C_OPEN;
                    if (!req) {
                        pending--;
                        nopen++;
                    }
                }
            } else if (p->state == C_READING) {
                int eof = read_some(p->fd, &p->in);
                struct http_resp r;
                int rc = resp_parse(p->in.data ? p->in.data : "", p->in.len, eof, &r);
                if (rc > 0 && !eof && !r.close) {
                    *ok += r.status == 200;
                    p->state = C_OPEN;
                    strbuf_release(&p->in);
                    pending--;
                    nopen++;
                } else if (rc != 0 || eof) {
                    failed = 1;
                }
            } else if (p->state == C_OPEN) {
                char b[512];
                ssize_t got = recv(p->fd, b, sizeof(b), 0);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                    p->state = C_CUT;
                    p->cut_at = now_ms();
                    close(p->fd);
                    p->fd = -1;
                    nopen--;
                }
            }
            if (failed) {
                pending--;
                p->state = C_FAILED;
                close(p->fd);
                p->fd = -1;
            }
        }
    }
    return nopen;
}

/* Read what the open connections got: a close by the server counts as a
 * cut (time kept). Returns how many were cut in this call. */
static int watch_cuts(int ep, struct pconn *c, int timeout_ms)
{
    struct epoll_event evs[SOAK_EPOLL_EVENTS];
    int cut = 0;
    int ne = epoll_wait(ep, evs, SOAK_EPOLL_EVENTS, timeout_ms);
    for (int e = 0; e < ne; e++) {
        struct pconn *p = &c[evs[e].data.u32];
        if (p->state != C_OPEN)
            continue;
        int eof = read_some(p->fd, &p->in);
        if (eof) {
            p->state = C_CUT;
            p->cut_at = now_ms();
            close(p->fd);
            p->fd = -1;
            cut++;
        }
    }
    return cut;
}

static void close_many(struct pconn *c, int n)
{
    for (int i = 0; i < n; i++) {
        if (c[i].fd >= 0)
            close(c[i].fd);
        c[i].fd = -1;
        strbuf_release(&c[i].in);
    }
}

/* --- phase 2: thousands of idle keep-alive connections ------------------------------------ */

static int run_idle(const struct opts *o)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER "\r\n";
    int n = o->conns, ok = 0, rc = 1;
    struct pconn *c = calloc((size_t)n, sizeof(*c));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!c || ep < 0) {
        fprintf(stderr, "soak: out of memory\n");
        goto out;
    }
    int fd_base = proc_fds(o->pid);
    long rss_before = proc_rss_kib(o->pid);
    double t0 = now_ms();
    int nopen = open_many(ep, o->port, c, n, req, &ok);
    double open_ms = now_ms() - t0;
    /* idle: nobody sends anything; watch for closes */
    double hold_end = now_ms() + o->hold_s * 1000.0;
    while (now_ms() < hold_end)
        nopen -= watch_cuts(ep, c, 100);
    long rss_open = proc_rss_kib(o->pid);
    int fds_open = proc_fds(o->pid);
    double ms = 0;
    int st = healthz(o->port, (int)SOAK_REQ_TIMEOUT_MS, &ms);
    hold_end = now_ms() + o->hold_s * 1000.0;
    while (now_ms() < hold_end)
        nopen -= watch_cuts(ep, c, 100);
    long rss_open2 = proc_rss_kib(o->pid);
    rss_open = rss_open2 > rss_open ? rss_open2 : rss_open;
    int alive = proc_alive(o->pid);
    close_many(c, n);
    int fds_end = wait_fds(o->pid, fd_base, SOAK_FD_SETTLE_MS);
    long rss_end = proc_rss_kib(o->pid);

    figure("idle.connections", "%d", n);
    figure("idle.open_seconds", "%.1f", open_ms / 1000.0);
    figure("idle.rss_before_kib", "%ld", rss_before);
    figure("idle.rss_with_conns_kib", "%ld", rss_open);
    figure("idle.kib_per_conn", "%.1f", n ? (double)(rss_open - rss_before) / n : 0.0);
    figure("idle.rss_after_close_kib", "%ld", rss_end);
    figure("idle.fds_before", "%d", fd_base);
    figure("idle.fds_with_conns", "%d", fds_open);
    figure("idle.fds_after_close", "%d", fds_end);
    figure("idle.new_conn_ms", "%.2f", ms);
    check(alive, "idle.bridge_alive", "pid %d %s", (int)o->pid, alive ? "running" : "GONE");
    check(ok == n, "idle.all_answered", "%d of %d connections got 200 for GET /healthz", ok, n);
    check(nopen == n, "idle.all_kept_open", "%d of %d still open after %d s idle", nopen, n,
          2 * o->hold_s);
    check(st == 200 && ms < SOAK_LATENCY_MAX_MS, "idle.new_conn_fast",
          "GET /healthz on a new connection: %d in %.1f ms (limit %.0f ms)", st, ms,
          SOAK_LATENCY_MAX_MS);
    target(rss_open >= 0 && rss_open < IDLE_RSS_TARGET_KIB, "idle.rss",
           "%ld KiB with %d idle connections (target < %d KiB)", rss_open, n, IDLE_RSS_TARGET_KIB);
    check(fds_end >= 0 && fds_end <= fd_base, "idle.fds_back", "before %d, open %d, after %d",
          fd_base, fds_open, fds_end);
    rc = failures ? 1 : 0;
out:
    if (ep >= 0)
        close(ep);
    free(c);
    return rc;
}

/* --- phase 3: slowloris --------------------------------------------------------------------- */

struct normal {
    const char *req; /* NULL: GET /healthz */
    int fd;
    int state; /* C_NONE, C_CONNECTING, C_READING, C_OPEN (done), C_FAILED */
    double t0, ms;
    int status;
    struct strbuf in;
};

static const char normal_req[] =
    "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER "Connection: close\r\n\r\n";

static void normal_event(struct normal *q, int ep, uint32_t tag)
{
    if (q->state == C_CONNECTING) {
        const char *req = q->req ? q->req : normal_req;
        size_t len = strlen(req);
        if (connect_error(q->fd) != 0 || send(q->fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
            q->state = C_FAILED;
        } else {
            ep_ctl(ep, EPOLL_CTL_MOD, q->fd, EPOLLIN | EPOLLRDHUP, tag);
            q->state = C_READING;
        }
    } else if (q->state == C_READING) {
        int eof = read_some(q->fd, &q->in);
        struct http_resp r;
        int rc = resp_parse(q->in.data ? q->in.data : "", q->in.len, eof, &r);
        if (rc > 0) {
            q->status = r.status;
            q->ms = now_ms() - q->t0;
            q->state = C_OPEN;
        } else if (rc < 0 || eof) {
            q->state = C_FAILED;
        }
    }
    if (q->state == C_OPEN || q->state == C_FAILED) {
        close(q->fd);
        q->fd = -1;
        strbuf_release(&q->in);
    }
}

/* The never-ending request head every slow connection trickles. */
/* The normal requests timed while an attack runs: how many are in flight. */
static int normals_in_flight(const struct normal *q, int started)
{
    int busy = 0;
    for (int i = 0; i < started; i++)
        busy += q[i].state == C_CONNECTING || q[i].state == C_READING;
    return busy;
}

/* Start the next normal request when its time has come (one every
 * interval_ms from t0) and give up on those past SOAK_REQ_TIMEOUT_MS; the
 * number started so far. */
static int normals_tick(struct normal *q, int nq, int started, int ep, const struct opts *o,
                        double t0, double t)
{
    if (started < nq && t >= t0 + (double)started * o->interval_ms) {
        struct normal *p = &q[started];
        p->t0 = t;
        p->fd = tcp_open(o->port, 0);
        p->state = p->fd >= 0 && ep_ctl(ep, EPOLL_CTL_ADD, p->fd, EPOLLOUT,
                                        NORMAL_TAG | (uint32_t)started) == 0
                       ? C_CONNECTING
                       : C_FAILED;
        started++;
    }
    for (int i = 0; i < started; i++)
        if ((q[i].state == C_CONNECTING || q[i].state == C_READING) &&
            t - q[i].t0 > SOAK_REQ_TIMEOUT_MS) {
            q[i].state = C_FAILED;
            close(q[i].fd);
            q[i].fd = -1;
        }
    return started;
}

/* The bridge's resident memory and descriptors at their highest, sampled
 * every SOAK_SAMPLE_MS. */
struct peaks {
    long rss;
    int fds;
    double next;
};

static void peaks_sample(struct peaks *pk, pid_t pid, double t)
{
    if (t < pk->next)
        return;
    long rss = proc_rss_kib(pid);
    int fds = proc_fds(pid);
    pk->rss = rss > pk->rss ? rss : pk->rss;
    pk->fds = fds > pk->fds ? fds : pk->fds;
    pk->next = t + SOAK_SAMPLE_MS;
}

static void slow_header(struct strbuf *b)
{
    strbuf_append_str(b, "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER);
    for (int i = 0; b->len < SLOW_HEADER_BYTES - 64; i++)
        strbuf_printf(b, "X-Slow-%d: %d\r\n", i, i);
}

/* One byte to every slow connection whose turn it is; a send the server
 * refuses counts as a cut. */
static int slow_trickle(struct pconn *c, int n, const struct strbuf *hdr, double t, int byte_ms)
{
    int cut = 0;
    for (int i = 0; i < n; i++) {
        struct pconn *p = &c[i];
        if (p->state != C_OPEN || p->next > t)
            continue;
        p->next += byte_ms;
        if (p->off >= hdr->len)
            continue;
        ssize_t w = send(p->fd, hdr->data + p->off, 1, MSG_NOSIGNAL);
        if (w == 1) {
            p->off++;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            p->state = C_CUT;
            p->cut_at = t;
            close(p->fd);
            p->fd = -1;
            cut++;
        }
    }
    return cut;
}

static int count_state(const struct pconn *c, int n, int state)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += c[i].state == state;
    return k;
}

static int run_slowloris(const struct opts *o)
{
    int n = o->conns, nq = o->normal, rc = 1, ok = 0;
    struct pconn *c = calloc((size_t)n, sizeof(*c));
    struct normal *q = calloc((size_t)nq, sizeof(*q));
    double *lat = calloc((size_t)nq, sizeof(*lat));
    struct strbuf hdr;
    strbuf_init(&hdr, 0);
    slow_header(&hdr);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!c || !q || !lat || ep < 0 || !hdr.data) {
        fprintf(stderr, "soak: out of memory\n");
        goto out;
    }
    int fd_base = proc_fds(o->pid);
    int nopen = open_many(ep, o->port, c, n, NULL, &ok);
    double t0 = now_ms();
    for (int i = 0; i < n; i++)
        c[i].next = t0 + (double)(i % o->byte_ms); /* spread over one period */
    for (int i = 0; i < nq; i++) {
        q[i].fd = -1;
        strbuf_init(&q[i].in, 0);
    }
    double normal_ms = (double)nq * o->interval_ms;
    double trickle_ms = 3.0 * o->timeout_s * 1000.0;
    trickle_ms = trickle_ms > normal_ms + 1000.0 ? trickle_ms : normal_ms + 1000.0;
    double trickle_end = t0 + trickle_ms;
    double silent_end = trickle_end + o->timeout_s * 1000.0 + SLOW_GRACE_MS;
    int started = 0, cut_trickle = 0, cut_silent = 0;
    struct peaks pk = {0, 0, t0};
    struct epoll_event evs[SOAK_EPOLL_EVENTS];
    for (;;) {
        double t = now_ms();
        int normals_busy = normals_in_flight(q, started);
        if (t >= silent_end && started == nq && !normals_busy)
            break;
        if (t < trickle_end)
            cut_trickle += slow_trickle(c, n, &hdr, t, o->byte_ms);
        started = normals_tick(q, nq, started, ep, o, t0, t);
        peaks_sample(&pk, o->pid, t);
        int ne = epoll_wait(ep, evs, SOAK_EPOLL_EVENTS, 2);
        for (int e = 0; e < ne; e++) {
            uint32_t tag = evs[e].data.u32;
            if (tag & NORMAL_TAG) {
                normal_event(&q[tag & ~NORMAL_TAG], ep, tag);
                continue;
            }
            struct pconn *p = &c[tag];
            if (p->state != C_OPEN)
                continue;
            if (read_some(p->fd, &p->in)) {
                p->state = C_CUT;
                p->cut_at = now_ms();
                close(p->fd);
                p->fd = -1;
                if (p->cut_at < trickle_end)
                    cut_trickle++;
                else
                    cut_silent++;
            }
        }
    }
    int alive = proc_alive(o->pid);
    int answered = 0, still = count_state(c, n, C_OPEN), with_bytes = 0, first_status = 0;
    for (int i = 0; i < nq; i++)
        if (q[i].state == C_OPEN && q[i].status == 200)
            lat[answered++] = q[i].ms;
    for (int i = 0; i < n; i++)
        if (c[i].in.len) {
            struct http_resp r;
            with_bytes++;
            if (!first_status && resp_parse(c[i].in.data, c[i].in.len, 1, &r) > 0)
                first_status = r.status;
        }
    double last_cut = 0;
    for (int i = 0; i < n; i++)
        if (c[i].state == C_CUT && c[i].cut_at >= trickle_end &&
            c[i].cut_at - trickle_end > last_cut)
            last_cut = c[i].cut_at - trickle_end;
    stats_sort(lat, (size_t)answered);
    close_many(c, n);
    int fds_end = wait_fds(o->pid, fd_base, SOAK_FD_SETTLE_MS);
    double p99 = stats_pct(lat, (size_t)answered, 0.99);

    figure("slow.connections", "%d", n);
    figure("slow.opened", "%d", nopen);
    figure("slow.trickle_seconds", "%.1f", trickle_ms / 1000.0);
    figure("slow.cut_while_trickling", "%d", cut_trickle);
    figure("slow.cut_after_silence", "%d", cut_silent);
    figure("slow.last_cut_after_silence_s", "%.1f", last_cut / 1000.0);
    figure("slow.still_open_at_end", "%d", still);
    figure("slow.answered_before_cut", "%d (first status %d)", with_bytes, first_status);
    figure("slow.rss_peak_kib", "%ld", pk.rss);
    figure("slow.fds_peak", "%d", pk.fds);
    figure("slow.normal_p50_ms", "%.2f", stats_pct(lat, (size_t)answered, 0.50));
    figure("slow.normal_p99_ms", "%.2f", p99);
    figure("slow.normal_max_ms", "%.2f", answered ? lat[answered - 1] : 0.0);
    check(alive, "slow.bridge_alive", "pid %d %s", (int)o->pid, alive ? "running" : "GONE");
    check(nopen == n, "slow.all_opened", "%d of %d slow connections opened", nopen, n);
    check(answered == nq, "slow.normal_all_ok", "%d of %d normal requests got 200", answered, nq);
    check(answered > 0 && p99 < SOAK_LATENCY_MAX_MS, "slow.normal_p99", "p99 %.1f ms (limit %.0f)",
          p99, SOAK_LATENCY_MAX_MS);
    printf("info slow connections trickling 1 byte / %d ms for %.0f s: %d of %d cut by the "
           "server while trickling (AMIBRIDGE_HTTP_TIMEOUT_S=%d)\n",
           o->byte_ms, trickle_ms / 1000.0, cut_trickle, n, o->timeout_s);
    check(still == 0, "slow.cut_when_silent",
          "%d of %d cut within %d s + %.0f s of going silent, %d still open", cut_silent,
          n - cut_trickle, o->timeout_s, SLOW_GRACE_MS / 1000.0, still);
    check(fds_end >= 0 && fds_end <= fd_base, "slow.fds_back", "before %d, peak %d, after %d",
          fd_base, pk.fds, fds_end);
    rc = failures ? 1 : 0;
out:
    if (ep >= 0)
        close(ep);
    if (q)
        for (int i = 0; i < nq; i++) {
            if (q[i].fd >= 0)
                close(q[i].fd);
            strbuf_release(&q[i].in);
        }
    free(c);
    free(q);
    free(lat);
    strbuf_release(&hdr);
    return rc;
}

/* --- phase 4: slow bodies ------------------------------------------------------------------ */

#define SLOWBODY_RECONNECT_MS 1000.0      /* a cut slow client comes back after this */
#define KA_TAG                0x40000000u /* epoll tag of the kept-alive client with a key */
#define KA_EVERY_MS           250.0

/* A complete head, then a body that never completes, on a route that
 * needs no key (POST /healthz, 405 once a body is in): nothing refuses it
 * from its head. The length is under AMIBRIDGE_MAX_BODY. */
static const char slowbody_head[] =
    "POST /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER
    "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n";

static void slowbody_open(int ep, int port, struct pconn *p, uint32_t tag)
{
    p->fd = tcp_open(port, 0);
    p->off = 0;
    if (p->fd >= 0 && ep_ctl(ep, EPOLL_CTL_ADD, p->fd, EPOLLOUT, tag) == 0) {
        p->state = C_CONNECTING;
        return;
    }
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->state = C_FAILED;
}

/* The server closed a slow client (or refused it): it comes back a little
 * later while the attack lasts. */
static void slowbody_lost(struct pconn *p, double t, double trickle_end)
{
    close(p->fd);
    p->fd = -1;
    p->cut_at = t;
    strbuf_release(&p->in);
    if (t < trickle_end) {
        p->state = C_NONE;
        p->next = t + SLOWBODY_RECONNECT_MS;
    } else {
        p->state = C_CUT;
    }
}

/* The kept-alive client with a key: one Ping at a time on one connection. */
struct keepalive {
    int fd;
    int busy, lost;
    int sent, ok;
    double t0, next, worst_ms;
    struct strbuf in;
};

static void ka_event(struct keepalive *k)
{
    int eof = read_some(k->fd, &k->in);
    struct http_resp r;
    int rc = resp_parse(k->in.data ? k->in.data : "", k->in.len, eof, &r);
    if (rc > 0) {
        k->ok += r.status == 200;
        double ms = now_ms() - k->t0;
        k->worst_ms = ms > k->worst_ms ? ms : k->worst_ms;
        k->busy = 0;
        strbuf_release(&k->in);
        strbuf_init(&k->in, 0);
    }
    if (rc < 0 || eof || (rc > 0 && r.close)) {
        k->lost = 1;
        k->busy = 0;
    }
}

static int run_slowbody(const struct opts *o)
{
    int n = o->conns, nq = o->normal, rc = 1;
    struct pconn *c = calloc((size_t)n, sizeof(*c));
    struct normal *q = calloc((size_t)nq, sizeof(*q));
    double *lat = calloc((size_t)nq, sizeof(*lat));
    struct keepalive ka = {.fd = -1};
    strbuf_init(&ka.in, 0);
    char ping_close[512], ping_ka[512];
    snprintf(ping_close, sizeof(ping_close),
             "POST /v1/actions/Ping HTTP/1.1\r\n" SOAK_HOST_HEADER "Authorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
             o->token);
    snprintf(ping_ka, sizeof(ping_ka),
             "POST /v1/actions/Ping HTTP/1.1\r\n" SOAK_HOST_HEADER "Authorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
             o->token);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!c || !q || !lat || ep < 0) {
        fprintf(stderr, "soak: out of memory\n");
        goto out;
    }
    int fd_base = proc_fds(o->pid);
    /* the client with a key connects first and stays */
    ka.fd = tcp_open(o->port, 1);
    if (ka.fd < 0 || ep_ctl(ep, EPOLL_CTL_ADD, ka.fd, EPOLLIN | EPOLLRDHUP, KA_TAG) < 0) {
        fprintf(stderr, "soak: cannot connect to port %d\n", o->port);
        goto out;
    }
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        strbuf_init(&c[i].in, 0);
        c[i].state = C_NONE;
        c[i].next = t0 + (double)(i % o->byte_ms); /* spread over one period */
    }
    for (int i = 0; i < nq; i++) {
        q[i].fd = -1;
        q[i].req = i % 2 ? ping_close : NULL; /* with a key, and /healthz */
        strbuf_init(&q[i].in, 0);
    }
    double normal_ms = (double)nq * o->interval_ms;
    double trickle_ms = 3.0 * o->timeout_s * 1000.0;
    trickle_ms = trickle_ms > normal_ms + 1000.0 ? trickle_ms : normal_ms + 1000.0;
    double trickle_end = t0 + trickle_ms;
    double silent_end = trickle_end + o->timeout_s * 1000.0 + SLOW_GRACE_MS;
    int started = 0, lost = 0, opened = 0, max_open = 0;
    struct peaks pk = {0, 0, t0};
    ka.next = t0;
    struct epoll_event evs[SOAK_EPOLL_EVENTS];
    for (;;) {
        double t = now_ms();
        int normals_busy = normals_in_flight(q, started);
        if (t >= silent_end && started == nq && !normals_busy && !ka.busy)
            break;
        int nopen = 0;
        for (int i = 0; i < n; i++) {
            struct pconn *p = &c[i];
            if (p->state == C_NONE && t < trickle_end && p->next <= t) {
                slowbody_open(ep, o->port, p, (uint32_t)i);
                p->next = t + o->byte_ms;
            } else if (p->state == C_OPEN && p->next <= t) {
                p->next += o->byte_ms;
                /* once silent, the request deadline alone must cut it */
                if (t < trickle_end && send(p->fd, " ", 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
                    errno != EINTR) {
                    lost++;
                    slowbody_lost(p, t, trickle_end);
                }
            }
            nopen += p->state == C_OPEN;
        }
        max_open = nopen > max_open ? nopen : max_open;
        if (!ka.busy && !ka.lost && t >= ka.next && t < trickle_end) {
            size_t len = strlen(ping_ka);
            ka.t0 = t;
            ka.next = t + KA_EVERY_MS;
            ka.sent++;
            if (send(ka.fd, ping_ka, len, MSG_NOSIGNAL) == (ssize_t)len)
                ka.busy = 1;
            else
                ka.lost = 1;
        }
        if (ka.busy && t - ka.t0 > SOAK_REQ_TIMEOUT_MS) {
            ka.busy = 0;
            ka.lost = 1;
        }
        started = normals_tick(q, nq, started, ep, o, t0, t);
        peaks_sample(&pk, o->pid, t);
        int ne = epoll_wait(ep, evs, SOAK_EPOLL_EVENTS, 2);
        for (int e = 0; e < ne; e++) {
            uint32_t tag = evs[e].data.u32;
            if (tag & NORMAL_TAG) {
                normal_event(&q[tag & ~NORMAL_TAG], ep, tag);
                continue;
            }
            if (tag == KA_TAG) {
                ka_event(&ka);
                continue;
            }
            struct pconn *p = &c[tag];
            if (p->state == C_CONNECTING) {
                size_t len = sizeof(slowbody_head) - 1;
                if (connect_error(p->fd) != 0 ||
                    send(p->fd, slowbody_head, len, MSG_NOSIGNAL) != (ssize_t)len) {
                    lost++;
                    slowbody_lost(p, now_ms(), trickle_end);
                } else {
                    ep_ctl(ep, EPOLL_CTL_MOD, p->fd, EPOLLIN | EPOLLRDHUP, tag);
                    p->state = C_OPEN;
                    opened++;
                }
            } else if (p->state == C_OPEN && read_some(p->fd, &p->in)) {
                lost++;
                slowbody_lost(p, now_ms(), trickle_end);
            }
        }
    }
    int alive = proc_alive(o->pid);
    int answered = 0, still = count_state(c, n, C_OPEN) + count_state(c, n, C_CONNECTING);
    for (int i = 0; i < nq; i++)
        if (q[i].state == C_OPEN && q[i].status == 200)
            lat[answered++] = q[i].ms;
    double last_cut = 0;
    for (int i = 0; i < n; i++)
        if (c[i].state == C_CUT && c[i].cut_at - trickle_end > last_cut)
            last_cut = c[i].cut_at - trickle_end;
    stats_sort(lat, (size_t)answered);
    close_many(c, n);
    close(ka.fd);
    ka.fd = -1;
    int fds_end = wait_fds(o->pid, fd_base, SOAK_FD_SETTLE_MS);
    double p99 = stats_pct(lat, (size_t)answered, 0.99);

    figure("slowbody.connections", "%d", n);
    figure("slowbody.opened", "%d", opened);
    figure("slowbody.max_open_at_once", "%d", max_open);
    figure("slowbody.closed_by_server", "%d", lost);
    figure("slowbody.last_cut_after_silence_s", "%.1f", last_cut / 1000.0);
    figure("slowbody.rss_peak_kib", "%ld", pk.rss);
    figure("slowbody.fds_peak", "%d", pk.fds);
    figure("slowbody.normal_p50_ms", "%.2f", stats_pct(lat, (size_t)answered, 0.50));
    figure("slowbody.normal_p99_ms", "%.2f", p99);
    figure("slowbody.normal_max_ms", "%.2f", answered ? lat[answered - 1] : 0.0);
    figure("slowbody.keepalive_answered", "%d of %d (slowest %.1f ms)", ka.ok, ka.sent,
           ka.worst_ms);
    check(alive, "slowbody.bridge_alive", "pid %d %s", (int)o->pid, alive ? "running" : "GONE");
    check(answered == nq, "slowbody.normal_all_ok",
          "%d of %d new-connection requests (GET /healthz, POST /v1/actions/Ping with a key) got "
          "200",
          answered, nq);
    check(answered > 0 && p99 < SOAK_LATENCY_MAX_MS, "slowbody.normal_p99",
          "p99 %.1f ms (limit %.0f)", p99, SOAK_LATENCY_MAX_MS);
    check(!ka.lost && ka.sent > 0 && ka.ok == ka.sent, "slowbody.keepalive_served",
          "a kept-alive client with a key: %d of %d answered 200, %s", ka.ok, ka.sent,
          ka.lost ? "LOST its connection" : "never cut");
    check(still == 0, "slowbody.cut_when_silent",
          "%d slow clients still open %d s + %.0f s after going silent (last cut after %.1f s)",
          still, o->timeout_s, SLOW_GRACE_MS / 1000.0, last_cut / 1000.0);
    check(fds_end >= 0 && fds_end <= fd_base, "slowbody.fds_back", "before %d, peak %d, after %d",
          fd_base, pk.fds, fds_end);
    rc = failures ? 1 : 0;
out:
    if (ep >= 0)
        close(ep);
    if (ka.fd >= 0)
        close(ka.fd);
    strbuf_release(&ka.in);
    if (q)
        for (int i = 0; i < nq; i++) {
            if (q[i].fd >= 0)
                close(q[i].fd);
            strbuf_release(&q[i].in);
        }
    if (c)
        close_many(c, n);
    free(c);
    free(q);
    free(lat);
    return rc;
}

/* --- phase 5: malformed HTTP ------------------------------------------------------------- */

static void mal_fill(struct strbuf *b, char ch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        strbuf_append(b, &ch, 1);
}

static void mal_post(struct strbuf *b, const char *tok, const char *extra)
{
    strbuf_printf(b,
                  "POST /v1/actions/Ping HTTP/1.1\r\n" SOAK_HOST_HEADER
                  "Authorization: Bearer %s\r\nContent-Type: application/json\r\n%s\r\n",
                  tok, extra);
}

/* Case i into b: its name, or NULL past the last. *expect: the one status
 * it must get, or 0 for "anything but a 5xx"; *must_close: HTTP/1.1 wants
 * the connection closed after the answer (noted, not failed). */
static const char *mal_build(int i, struct strbuf *b, const char *tok, int *expect, int *must_close)
{
    static const char garbage[] = "\x16\x03\x01\x02\x00garbage \xff\xfe{}\r\n\r\n";
    static const char nul_path[] = "GET /v1/\0\0channels HTTP/1.1\r\n" SOAK_HOST_HEADER "\r\n";
    static const char piped[] = "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER "\r\n"
                                "\x01\x02 garbage \xff\xfe\r\n\r\n";
    *expect = 0;
    *must_close = 0;
    switch (i) {
    case 0:
        strbuf_append_str(b, "BREW / HTTP/1.1\r\n" SOAK_HOST_HEADER "\r\n");
        return "unknown method (BREW / HTTP/1.1)";
    case 1:
        strbuf_append(b, garbage, sizeof(garbage) - 1);
        return "request line garbage";
    case 2:
        strbuf_append_str(b, "GET /healthz HTTP/1.1\r\n\r\n");
        return "HTTP/1.1 without Host";
    case 3:
        strbuf_append_str(b, "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER "X-Big: ");
        mal_fill(b, 'a', MAL_BIG_HEADER);
        strbuf_append_str(b, "\r\n\r\n");
        return "100 KiB header";
    case 4:
        strbuf_append_str(b, "GET /healthz HTTP/1.1\r\n" SOAK_HOST_HEADER);
        for (int h = 0; h < MAL_HEADERS; h++)
            strbuf_printf(b, "X-H-%d: v\r\n", h);
        strbuf_append_str(b, "\r\n");
        return "1,000 headers";
    case 5:
        mal_post(b, tok, "Transfer-Encoding: chunked\r\n");
        strbuf_append_str(b, "zz\r\n{}\r\n0\r\n\r\n");
        return "chunked: bad chunk size";
    case 6:
        mal_post(b, tok, "Transfer-Encoding: chunked\r\n");
        strbuf_append_str(b, "2\r\n{}\r\n");
        return "chunked: no last chunk";
    case 7:
        mal_post(b, tok, "Content-Length: 100\r\n");
        strbuf_append_str(b, "{}");
        return "Content-Length 100, body 2";
    case 8:
        mal_post(b, tok, "Content-Length: 1\r\n");
        strbuf_append_str(b, "{}");
        return "Content-Length 1, body 2";
    case 9:
        mal_post(b, tok, "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n");
        strbuf_append_str(b, "2\r\n{}\r\n0\r\n\r\n");
        *must_close = 1; /* RFC 9112 6.3 */
        return "Content-Length and chunked";
    case 10:
        mal_post(b, tok, "Content-Length: -1\r\n");
        strbuf_append_str(b, "{}");
        return "Content-Length -1";
    case 11:
        mal_post(b, tok, "Content-Length: 99999999999999999999999\r\n");
        strbuf_append_str(b, "{}");
        return "Content-Length 10^23";
    case 12:
        mal_post(b, tok, "Content-Length: 16\r\n");
        strbuf_append(b, "{\"Foo\":\"\xff\xfe\xc3\x28\"}", 14);
        strbuf_append_str(b, "  ");
        return "invalid UTF-8 in the JSON body";
    case 13: {
        char cl[64];
        snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", 2 * MAL_DEPTH + 6);
        mal_post(b, tok, cl);
        strbuf_append_str(b, "{\"a\":");
        mal_fill(b, '[', MAL_DEPTH);
        mal_fill(b, ']', MAL_DEPTH);
        strbuf_append_str(b, "}");
        return "JSON nested 10,000 deep";
    }
    case 14: {
        char cl[64];
        snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", MAL_BIG_BODY);
        mal_post(b, tok, cl);
        mal_fill(b, ' ', MAL_BIG_BODY);
        *expect = 413;
        return "10 MB body, Content-Length";
    }
    case 15:
        mal_post(b, tok, "Transfer-Encoding: chunked\r\n");
        for (int k = 0; k < MAL_BIG_BODY / MAL_SEND_CHUNK; k++) {
            strbuf_printf(b, "%x\r\n", MAL_SEND_CHUNK);
            mal_fill(b, ' ', MAL_SEND_CHUNK);
            strbuf_append_str(b, "\r\n");
        }
        strbuf_append_str(b, "0\r\n\r\n");
        *expect = 413;
        return "10 MB body, chunked";
    case 16:
        strbuf_append(b, nul_path, sizeof(nul_path) - 1);
        return "NUL bytes in the path";
    case 17:
        strbuf_printf(b,
                      "GET /v1/channels/%%00 HTTP/1.1\r\n" SOAK_HOST_HEADER
                      "Authorization: Bearer %s\r\n\r\n",
                      tok);
        return "%00 in the path";
    case 18:
        strbuf_append_str(b, "GET /");
        mal_fill(b, 'a', MAL_LONG_PATH);
        strbuf_append_str(b, " HTTP/1.1\r\n" SOAK_HOST_HEADER "\r\n");
        return "100 KB path";
    case 19:
        strbuf_append_str(b, "GET /healthz\r\n");
        return "HTTP/0.9 request";
    case 20:
        strbuf_append(b, piped, sizeof(piped) - 1);
        return "garbage pipelined after a valid request";
    default:
        return NULL;
    }
}

struct mal_answer {
    char text[96];
    size_t sent;
    int eof;     /* the server closed */
    size_t junk; /* bytes after the last whole response */
    int worst;   /* the highest status seen */
    int statuses[4];
    int nstatus;
};

/* Send b (stopping early when the server answers, resets or stops
 * reading), then read every answer until the server closes or goes quiet;
 * at quiet without an answer, half-close and wait again. */
static void mal_run(int port, const struct strbuf *b, struct mal_answer *a)
{
    memset(a, 0, sizeof(*a));
    struct strbuf in;
    strbuf_init(&in, 0);
    int fd = tcp_open(port, 1), reset = 0, eof = 0, half = 0;
    if (fd < 0) {
        snprintf(a->text, sizeof(a->text), "connect failed: %s", strerror(-fd));
        return;
    }
    while (a->sent < b->len) {
        struct pollfd pfd = {fd, POLLIN | POLLOUT, 0};
        if (poll(&pfd, 1, MAL_SEND_STALL_MS) <= 0 || (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            break; /* not reading, or already answering */
        size_t chunk = b->len - a->sent < MAL_SEND_CHUNK ? b->len - a->sent : MAL_SEND_CHUNK;
        ssize_t n = send(fd, b->data + a->sent, chunk, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            reset = 1;
            break;
        }
        a->sent += n > 0 ? (size_t)n : 0;
    }
    double quiet_until = now_ms() + MAL_FIRST_BYTE_MS;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)(quiet_until - now_ms());
        if (left > 0 && poll(&pfd, 1, left) > 0) {
            size_t before = in.len;
            char buf[SOAK_READ_CHUNK];
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n > 0) {
                strbuf_append(&in, buf, (size_t)n);
                if (in.len > before)
                    quiet_until = now_ms() + MAL_QUIET_MS;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n < 0)
                reset = 1;
            eof = 1;
            break;
        }
        if (in.len || half)
            break;
        shutdown(fd, SHUT_WR); /* nothing yet: the server may wait for more */
        half = 1;
        quiet_until = now_ms() + MAL_FIRST_BYTE_MS;
    }
    close(fd);
    size_t off = 0;
    int o = 0;
    while (off < in.len) {
        struct http_resp r;
        if (resp_parse(in.data + off, in.len - off, eof, &r) <= 0)
            break;
        if (a->nstatus < (int)(sizeof(a->statuses) / sizeof(a->statuses[0])))
            a->statuses[a->nstatus++] = r.status;
        a->worst = r.status > a->worst ? r.status : a->worst;
        o += snprintf(a->text + o, sizeof(a->text) - (size_t)o, "%s%d", o ? " + " : "", r.status);
        off += r.len;
    }
    a->eof = eof;
    a->junk = in.len - off;
    if (off < in.len)
        o += snprintf(a->text + o, sizeof(a->text) - (size_t)o, "%s%zu bytes not HTTP",
                      o ? " + " : "", in.len - off);
    const char *how = reset ? "reset" : eof ? "closed" : "open";
    if (half && !in.len)
        how = eof ? "closed after our half-close" : "no answer, left open";
    snprintf(a->text + o, sizeof(a->text) - (size_t)o, "%s%s%s", o ? " (" : "", how, o ? ")" : "");
    strbuf_release(&in);
}

static int run_malformed(const struct opts *o)
{
    int crashed = 0;
    printf("\n| case | bytes sent | answer | normal request after | note |\n"
           "| --- | --- | --- | --- | --- |\n");
    fflush(stdout);
    struct strbuf lines;
    strbuf_init(&lines, 0);
    for (int i = 0; !crashed; i++) {
        struct strbuf b;
        strbuf_init(&b, 0);
        int expect = 0, must_close = 0;
        const char *name = mal_build(i, &b, o->token, &expect, &must_close);
        if (!name) {
            strbuf_release(&b);
            break;
        }
        struct mal_answer a;
        mal_run(o->port, &b, &a);
        int alive = proc_alive(o->pid);
        double ms = 0;
        int st = alive ? healthz(o->port, MAL_NORMAL_TIMEOUT_MS, &ms) : -1;
        char note[160] = "";
        size_t nl = 0;
        if (a.nstatus && a.statuses[0] < 400)
            nl += (size_t)snprintf(note + nl, sizeof(note) - nl, "accepted (%d), not a 4xx; ",
                                   a.statuses[0]);
        if (a.junk)
            nl +=
                (size_t)snprintf(note + nl, sizeof(note) - nl,
                                 "answer framing broken (%zu bytes past Content-Length); ", a.junk);
        if (must_close && !a.eof)
            nl += (size_t)snprintf(note + nl, sizeof(note) - nl,
                                   "connection left open, HTTP/1.1 says close; ");
        if (nl >= 2 && nl < sizeof(note))
            note[nl - 2] = '\0';
        printf("| %s | %zu of %zu | %s | %d in %.1f ms | %s |\n", name, a.sent, b.len, a.text, st,
               ms, note);
        fflush(stdout);
        int ok_answer = a.worst < 500 && (!expect || (a.nstatus && a.statuses[0] == expect));
        char exp[32] = "";
        if (expect)
            snprintf(exp, sizeof(exp), " (expected %d)", expect);
        strbuf_printf(&lines,
                      "check %s malformed.%02d: %s: %s%s; bridge %s; GET /healthz after: %d%s%s\n",
                      ok_answer && alive && st == 200 ? "PASS" : "FAIL", i, name, a.text, exp,
                      alive ? "alive" : "GONE", st, note[0] ? "; note: " : "", note);
        if (!(ok_answer && alive && st == 200))
            failures++;
        crashed = !alive;
        strbuf_release(&b);
    }
    putchar('\n');
    fputs(lines.data ? lines.data : "", stdout);
    strbuf_release(&lines);
    int alive = proc_alive(o->pid);
    check(alive, "malformed.bridge_alive", "pid %d %s", (int)o->pid, alive ? "running" : "GONE");
    return failures ? 1 : 0;
}

/* --- main ---------------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: soak mixed|idle|slowloris|slowbody|malformed --port P --pid PID\n"
                    "            [--requests N] [--conns N] [--hold-s S] [--normal N]\n"
                    "            [--interval-ms MS] [--byte-ms MS] [--timeout-s S] [--token T]\n");
}

int main(int argc, char **argv)
{
    struct opts o = {.conns = 0,
                     .requests = 50000,
                     .hold_s = 3,
                     .normal = 200,
                     .interval_ms = 50,
                     .byte_ms = 100,
                     .timeout_s = 5,
                     .token = "soak-token-0123456789"};
    static const struct option lo[] = {{"port", required_argument, NULL, 'p'},
                                       {"pid", required_argument, NULL, 'P'},
                                       {"requests", required_argument, NULL, 'n'},
                                       {"conns", required_argument, NULL, 'c'},
                                       {"hold-s", required_argument, NULL, 'h'},
                                       {"normal", required_argument, NULL, 'N'},
                                       {"interval-ms", required_argument, NULL, 'i'},
                                       {"byte-ms", required_argument, NULL, 'b'},
                                       {"timeout-s", required_argument, NULL, 't'},
                                       {"token", required_argument, NULL, 'T'},
                                       {NULL, 0, NULL, 0}};
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *phase = argv[1];
    int ch;
    while ((ch = getopt_long(argc - 1, argv + 1, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            o.port = atoi(optarg);
            break;
        case 'P':
            o.pid = (pid_t)atoi(optarg);
            break;
        case 'n':
            o.requests = atol(optarg);
            break;
        case 'c':
            o.conns = atoi(optarg);
            break;
        case 'h':
            o.hold_s = atoi(optarg);
            break;
        case 'N':
            o.normal = atoi(optarg);
            break;
        case 'i':
            o.interval_ms = atoi(optarg);
            break;
        case 'b':
            o.byte_ms = atoi(optarg);
            break;
        case 't':
            o.timeout_s = atoi(optarg);
            break;
        case 'T':
            o.token = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (o.port <= 0 || o.pid <= 0 || o.requests <= 0 || o.normal <= 0 || o.interval_ms <= 0 ||
        o.byte_ms <= 0 || o.timeout_s <= 0 || o.hold_s < 0 || o.conns < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(phase, "mixed")) {
        o.conns = o.conns ? o.conns : 64;
        return run_mixed(&o);
    }
    if (!strcmp(phase, "idle")) {
        o.conns = o.conns ? o.conns : 5000;
        return run_idle(&o);
    }
    if (!strcmp(phase, "slowloris")) {
        o.conns = o.conns ? o.conns : 1000;
        return run_slowloris(&o);
    }
    if (!strcmp(phase, "slowbody")) {
        o.conns = o.conns ? o.conns : 1500;
        return run_slowbody(&o);
    }
    if (!strcmp(phase, "malformed"))
        return run_malformed(&o);
    usage();
    return 2;
}
