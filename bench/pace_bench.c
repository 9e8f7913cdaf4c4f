/* pace-bench: latency at a fixed request rate, the figure "p99 at half the
 * bare responder's rate" of bench/run-all.sh. Open loop: request i is due
 * at start + i / rate, evenly spaced (a timerfd, not whole milliseconds),
 * whatever the server does; it goes out on an idle keep-alive connection,
 * or waits for one when all `conns` are busy. Its latency runs from the
 * time it was due to the end of its answer, so a server that falls behind
 * shows it (no coordinated omission). Requests are
 * `POST path` with `Authorization: Bearer token` and no body; an answer
 * other than 200 is counted as an error. Idle connections are used in
 * turn (first in, first out), and one the server closed while idle (its
 * keep-alive deadline) is opened again. Answers must carry a
 * Content-Length (no chunked bodies). The first `warmup` seconds are sent
 * but not measured. Prints one JSON line.
 *
 *   pace-bench --port 8080 --path /v1/actions/Ping --token T --rate 35000 \
 *              [--duration 10] [--warmup 1] [--conns 64]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define IN_MAX    16384
#define REQ_MAX   1024

struct conn {
    int fd;
    int busy;        /* a request is on its way or being answered */
    uint64_t due_ns; /* when the request in flight was due */
    int measured;    /* it counts (sent after the warm-up) */
    char in[IN_MAX]; /* the answer so far */
    size_t in_len;
    size_t want; /* head + Content-Length, once the head is whole */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* (Re)open connection i and watch it. 0 or -1 (said on stderr). */
static int open_conn(int ep, int port, struct conn *conns, int i)
{
    struct conn *c = &conns[i];
    c->fd = dial(port);
    c->busy = 0;
    c->in_len = c->want = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (c->fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        fprintf(stderr, "pace-bench: cannot connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
        return -1;
    }
    return 0;
}

/* The answer is whole once the head and Content-Length bytes are in. */
static int answer_whole(struct conn *c, int *status)
{
    if (!c->want) {
        c->in[c->in_len] = '\0';
        char *end = strstr(c->in, "\r\n\r\n");
        if (!end)
            return 0;
        size_t head = (size_t)(end + 4 - c->in), body = 0;
        for (char *l = strstr(c->in, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
            if (!strncasecmp(l + 2, "Content-Length:", 15))
                body = strtoul(l + 17, NULL, 10);
        c->want = head + body;
        if (c->want >= IN_MAX)
            return -1;
    }
    if (c->in_len < c->want)
        return 0;
    *status = atoi(c->in + 9);            /* "HTTP/1.1 200" */
    return c->in_len == c->want ? 1 : -1; /* nothing may follow: one request at a time */
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},     {"path", required_argument, NULL, 'P'},
        {"token", required_argument, NULL, 't'},    {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"conns", required_argument, NULL, 'c'},    {NULL, 0, NULL, 0}};
    int port = 0, nconns = 64, opt;
    double rate = 0, duration = 10, warmup = 1;
    const char *path = "/v1/actions/Ping", *token = "";
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'P':
            path = optarg;
            break;
        case 't':
            token = optarg;
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        default:
            goto usage;
        }
    }
    if (port <= 0 || rate <= 0 || duration <= 0 || warmup < 0 || nconns < 1 || nconns > MAX_CONNS) {
    usage:
        fprintf(stderr,
                "usage: pace-bench --port P --rate R [--path P] [--token T] "
                "[--duration S] [--warmup S] [--conns N (1..%d)]\n",
                MAX_CONNS);
        return 2;
    }
    char req[REQ_MAX];
    int req_len = snprintf(req, sizeof(req),
                           "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                           "%s\r\nContent-Length: 0\r\n\r\n",
                           path, token);
    if (req_len < 0 || req_len >= REQ_MAX)
        goto usage;

    int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
    uint64_t total = (uint64_t)((warmup + duration) * rate);
    uint64_t skip = (uint64_t)(warmup * rate);
    uint64_t *lat = malloc(sizeof(*lat) * (total - skip + 1));
    if (ep < 0 || tfd < 0 || !conns || !lat) {
        perror("pace-bench");
        return 1;
    }
    /* idle connections, a ring: the one idle longest goes first */
    int *idle = malloc(sizeof(int) * (size_t)nconns), nidle = 0, idle_head = 0;
    if (!idle) {
        perror("pace-bench");
        return 1;
    }
    for (int i = 0; i < nconns; i++) {
        if (open_conn(ep, port, conns, i) < 0)
            return 1;
        idle[nidle++] = i;
    }
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    double gap_ns = 1e9 / rate;
    uint64_t start = now_ns() + 10000000u, next = 0, done = 0, nlat = 0, errors = 0;
    uint64_t most_waiting = 0, reopened = 0;
    /* a periodic timer, one tick per request due: set once (re-arming it
     * for each request cost the generator a system call per loop turn, on
     * the cores it shares with the server it measures) */
    uint64_t period = gap_ns < 1 ? 1 : (uint64_t)gap_ns;
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(start / 1000000000u),
                                          .tv_nsec = (long)(start % 1000000000u)},
                             .it_interval = {.tv_sec = (time_t)(period / 1000000000u),
                                             .tv_nsec = (long)(period % 1000000000u)}};
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    while (done < total) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            if (i == UINT32_MAX) {
                uint64_t x; /* the expirations since the last read: all of them */
                if (read(tfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
                    perror("pace-bench: timerfd");
                continue;
            }
            struct conn *c = &conns[i];
            ssize_t r = recv(c->fd, c->in + c->in_len, IN_MAX - 1 - c->in_len, 0);
            if (r <= 0 && !c->busy) { /* closed while idle: open it again */
                close(c->fd);
                if (open_conn(ep, port, conns, (int)i) < 0)
                    return 1;
                reopened++;
                continue;
            }
            if (r <= 0) {
                fprintf(stderr, "pace-bench: connection %u closed or failed with a request on it\n",
                        i);
                return 1;
            }
            uint64_t t = now_ns();
            c->in_len += (size_t)r;
            int status = 0, w = answer_whole(c, &status);
            if (w < 0) {
                fprintf(stderr, "pace-bench: an answer it cannot read on connection %u\n", i);
                return 1;
            }
            if (!w)
                continue;
            if (c->measured)
                lat[nlat++] = t - c->due_ns;
            if (status != 200)
                errors++;
            done++;
            c->busy = 0;
            c->in_len = c->want = 0;
            idle[(idle_head + nidle++) % nconns] = (int)i;
        }
        /* every request due by now goes out, oldest first, while a
         * connection is free; the rest wait, their clock running */
        uint64_t t = now_ns();
        uint64_t due_by_now = t < start ? 0 : (uint64_t)((double)(t - start) / gap_ns) + 1;
        if (due_by_now > total)
            due_by_now = total;
        if (due_by_now > next && due_by_now - next > most_waiting)
            most_waiting = due_by_now - next;
        while (next < due_by_now && nidle) {
            struct conn *c = &conns[idle[idle_head]];
            idle_head = (idle_head + 1) % nconns;
            nidle--;
            c->busy = 1;
            c->due_ns = start + (uint64_t)((double)next * gap_ns);
            c->measured = next >= skip;
            if (send(c->fd, req, (size_t)req_len, MSG_NOSIGNAL) != req_len) {
                fprintf(stderr, "pace-bench: send failed: %s\n", strerror(errno));
                return 1;
            }
            next++;
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    qsort(lat, nlat, sizeof(*lat), cmp_u64);
    printf("{\"rate_wanted\": %.0f, \"rate_done\": %.0f, \"requests\": %llu, \"measured\": %llu, "
           "\"errors\": %llu, \"conns\": %d, \"reopened\": %llu, \"most_waiting\": %llu, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f}\n",
           rate, (double)done / secs, (unsigned long long)done, (unsigned long long)nlat,
           (unsigned long long)errors, nconns, (unsigned long long)reopened,
           (unsigned long long)most_waiting, pct_ms(lat, nlat, 0.5), pct_ms(lat, nlat, 0.9),
           pct_ms(lat, nlat, 0.99), pct_ms(lat, nlat, 0.999),
           nlat ? (double)lat[nlat - 1] / 1e6 : 0);
    return errors ? 1 : 0;
}
