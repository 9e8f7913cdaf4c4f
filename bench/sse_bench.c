/* sse-bench: the client side of the SSE fan-out figure of bench/run-all.sh.
 * Opens `clients` Server-Sent Events streams (GET path, plain HTTP/1.1,
 * chunked), waits until every one has its ": connected" comment, tells the
 * script it is ready, then reads them all from one epoll loop until each
 * has `count` events, has ended, or nothing arrives for `idle-ms`. Per
 * client it checks that the simulator's flood `Seq` arrives 1..count with
 * no gap and in order and that the SSE `id:` only rises; it notes a
 * ": disconnected" comment (the bridge cut it for falling behind). Latency
 * is from the event's `Timestamp` (ami-sim, CLOCK_REALTIME, same machine)
 * to the read that brought it, in a histogram (10 µs buckets up to 1 s).
 * Prints one JSON line.
 *
 *   sse-bench --port 8080 --token T --clients 100 --count 200000 \
 *             --path '/v1/events?events=SimFlood' --ready-file /tmp/ready \
 *             [--idle-ms 3000] [--connect-ms 10000]
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 10000
#define READ_BYTES  (256 * 1024)
#define HEAD_MAX    4096
/* latency histogram: 10 µs steps up to 1 s, then 1 ms steps up to 60 s */
#define HIST_FINE_US   10
#define HIST_FINE      100000
#define HIST_COARSE_US 1000
#define HIST_BUCKETS   (HIST_FINE + 59000)
#define CHUNK_LINE     32

enum chunk_state { CH_SIZE, CH_DATA, CH_CRLF, CH_DONE };

struct client {
    int fd;
    int status;    /* HTTP status; 0 while the head is incomplete */
    int chunked;   /* Transfer-Encoding: chunked */
    int connected; /* the ": connected" comment came */
    int cut;       /* a ": disconnected" comment came */
    int ended;     /* EOF, error or the last chunk */
    char head[HEAD_MAX];
    size_t head_len;
    enum chunk_state cs;
    size_t chunk_left;
    char line[CHUNK_LINE];
    size_t line_len;
    char *body; /* decoded stream not yet split into frames */
    size_t body_len, body_cap;
    long got, gaps, disorder, dup, malformed;
    unsigned long long last_seq, last_id;
};

static uint64_t hist[HIST_BUCKETS];
static double lat_max_ms;

static int64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of the last "key":"..." inside [p, end): its first byte, or
 * NULL. From the end: the flood's fields are the last in the JSON (glibc's
 * memmem was most of this tool's time). */
static const char *json_str(const char *p, const char *end, const char *key, size_t klen)
{
    const char *q = end;
    while ((q = memrchr(p, '"', (size_t)(q - p)))) {
        if ((size_t)(end - q) >= klen && !memcmp(q, key, klen))
            return q + klen;
    }
    return NULL;
}

/* The blank line that ends the frame at p: its first '\n', or NULL. */
static const char *frame_end(const char *p, const char *end)
{
    while ((p = memchr(p, '\n', (size_t)(end - p))) && p + 1 < end) {
        if (p[1] == '\n')
            return p;
        p++;
    }
    return NULL;
}

/* "1796459050.787971" -> µs; -1 when malformed. */
static int64_t parse_ts_us(const char *p, const char *end)
{
    int64_t s = 0, us = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9')
        s = s * 10 + (*p++ - '0');
    if (p == end || *p++ != '.')
        return -1;
    while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
        us = us * 10 + (*p++ - '0');
        digits++;
    }
    while (digits++ < 6)
        us *= 10;
    return s * 1000000 + us;
}

static void record_latency(int64_t us)
{
    if (us < 0)
        us = 0;
    double ms = (double)us / 1000.0;
    if (ms > lat_max_ms)
        lat_max_ms = ms;
    int64_t fine_end = (int64_t)HIST_FINE * HIST_FINE_US;
    size_t b = us < fine_end ? (size_t)(us / HIST_FINE_US)
                             : HIST_FINE + (size_t)((us - fine_end) / HIST_COARSE_US);
    hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
}

static double hist_pct(uint64_t n, double p)
{
    if (!n)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)(n - 1) + 0.5), seen = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen > rank && b + 1 < HIST_BUCKETS) /* the bucket's upper edge */
            return b < HIST_FINE
                       ? (double)((b + 1) * HIST_FINE_US) / 1000.0
                       : (double)(HIST_FINE * HIST_FINE_US + (b + 1 - HIST_FINE) * HIST_COARSE_US) /
                             1000.0;
        if (seen > rank)
            break;
    }
    return lat_max_ms;
}

/* One frame [p, end) without its blank line: comments, id, data. */
static void on_frame(struct client *c, const char *p, const char *end, int64_t now_us)
{
    const char *data = NULL, *data_end = NULL;
    unsigned long long id = 0;
    int has_id = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (*p == ':') {
            if (le - p >= 14 && !memcmp(p, ": disconnected", 14))
                c->cut = 1;
            else if (le - p >= 11 && !memcmp(p, ": connected", 11))
                c->connected = 1;
        } else if (le - p > 4 && !memcmp(p, "id: ", 4)) {
            id = strtoull(p + 4, NULL, 10);
            has_id = 1;
        } else if (le - p > 6 && !memcmp(p, "data: ", 6)) {
            data = p + 6;
            data_end = le;
        }
        p = nl ? nl + 1 : end;
    }
    if (!data)
        return;
    const char *seq_s = json_str(data, data_end, "\"Seq\":\"", 7);
    const char *ts_s = json_str(data, data_end, "\"Timestamp\":\"", 13);
    int64_t ts = ts_s ? parse_ts_us(ts_s, data_end) : -1;
    if (!has_id || !seq_s || ts < 0) {
        c->malformed++;
        return;
    }
    unsigned long long seq = strtoull(seq_s, NULL, 10);
    if (seq == c->last_seq)
        c->dup++;
    else if (seq < c->last_seq)
        c->disorder++;
    else if (seq != c->last_seq + 1)
        c->gaps += (long)(seq - c->last_seq - 1);
    if (c->last_id && id <= c->last_id)
        c->disorder++;
    if (seq > c->last_seq)
        c->last_seq = seq;
    c->last_id = id;
    c->got++;
    record_latency(now_us - ts);
}

static void body_append(struct client *c, const char *p, size_t n)
{
    if (c->body_len + n > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 65536;
        while (cap < c->body_len + n)
            cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b) {
            fprintf(stderr, "sse-bench: out of memory\n");
            exit(1);
        }
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
}

/* Decoded bytes in; every whole frame handled, the rest kept. */
static void on_body(struct client *c, const char *p, size_t n, int64_t now_us)
{
    body_append(c, p, n);
    const char *s = c->body, *end = c->body + c->body_len, *sep;
    while ((sep = frame_end(s, end))) {
        on_frame(c, s, sep, now_us);
        s = sep + 2;
    }
    c->body_len = (size_t)(end - s);
    memmove(c->body, s, c->body_len);
}

/* Chunked transfer coding, decoded as it comes, in any split. */
static void on_wire(struct client *c, const char *p, size_t n, int64_t now_us)
{
    if (!c->chunked) {
        on_body(c, p, n, now_us);
        return;
    }
    const char *end = p + n;
    while (p < end && c->cs != CH_DONE) {
        if (c->cs == CH_SIZE) {
            char ch = *p++;
            if (ch != '\n') {
                if (c->line_len < CHUNK_LINE - 1)
                    c->line[c->line_len++] = ch;
                continue;
            }
            c->line[c->line_len] = 0;
            c->line_len = 0;
            c->chunk_left = strtoul(c->line, NULL, 16);
            c->cs = c->chunk_left ? CH_DATA : CH_DONE;
        } else if (c->cs == CH_DATA) {
            size_t take = (size_t)(end - p) < c->chunk_left ? (size_t)(end - p) : c->chunk_left;
            on_body(c, p, take, now_us);
            p += take;
            c->chunk_left -= take;
            if (!c->chunk_left) {
                c->cs = CH_CRLF;
                c->chunk_left = 2;
            }
        } else { /* CH_CRLF */
            p++;
            if (!--c->chunk_left)
                c->cs = CH_SIZE;
        }
    }
    if (c->cs == CH_DONE)
        c->ended = 1;
}

/* Bytes from the socket: the response head first, then the stream. */
static void on_read(struct client *c, const char *p, size_t n, int64_t now_us)
{
    if (!c->status) {
        size_t take = n < HEAD_MAX - 1 - c->head_len ? n : HEAD_MAX - 1 - c->head_len;
        memcpy(c->head + c->head_len, p, take);
        c->head_len += take;
        c->head[c->head_len] = 0;
        char *e = strstr(c->head, "\r\n\r\n");
        if (!e) {
            if (c->head_len == HEAD_MAX - 1)
                c->ended = 1;
            return;
        }
        c->status = atoi(c->head + 9);
        if (c->status <= 0)
            c->status = -1;
        *e = 0;
        c->chunked = strcasestr(c->head, "\r\nTransfer-Encoding: chunked") != NULL;
        size_t used = (size_t)(e + 4 - c->head) - (c->head_len - take);
        p += used;
        n -= used;
        if (!n)
            return;
    }
    on_wire(c, p, n, now_us);
}

static int open_client(struct client *c, int port, const char *path, const char *token)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     path, token);
    if (n <= 0 || (size_t)n >= sizeof(req) || write(c->fd, req, (size_t)n) != n)
        return -1;
    return 0;
}

/* One pass over what epoll reports ready; returns how many sockets were
 * (0: timeout_ms went by with none). */
static int pump(int ep, struct client *cl, int timeout_ms, int *open)
{
    static char buf[READ_BYTES];
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct client *c = &cl[evs[i].data.u32];
        ssize_t r = read(c->fd, buf, sizeof(buf));
        if (r > 0)
            on_read(c, buf, (size_t)r, real_us());
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) || c->ended) {
            c->ended = 1;
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            (*open)--;
        }
    }
    return n > 0 ? n : 0;
}

int main(int argc, char **argv)
{
    int port = 0, nclients = 100, idle_ms = 3000, connect_ms = 10000;
    long count = 0;
    const char *token = "", *path = "/v1/events?events=SimFlood", *ready = NULL;
    static const struct option opts[] = {{"port", required_argument, NULL, 'p'},
                                         {"token", required_argument, NULL, 't'},
                                         {"clients", required_argument, NULL, 'c'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"path", required_argument, NULL, 'P'},
                                         {"ready-file", required_argument, NULL, 'r'},
                                         {"idle-ms", required_argument, NULL, 'i'},
                                         {"connect-ms", required_argument, NULL, 'C'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p':
            port = atoi(optarg);
            break;
        case 't':
            token = optarg;
            break;
        case 'c':
            nclients = atoi(optarg);
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 'P':
            path = optarg;
            break;
        case 'r':
            ready = optarg;
            break;
        case 'i':
            idle_ms = atoi(optarg);
            break;
        case 'C':
            connect_ms = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: sse-bench --port P --token T --clients N --count N "
                            "[--path P] [--ready-file F] [--idle-ms MS] [--connect-ms MS]\n");
            return 2;
        }
    }
    if (port <= 0 || count <= 0 || nclients <= 0 || nclients > MAX_CLIENTS) {
        fprintf(stderr, "sse-bench: --port, --count and --clients (1..%d) are needed\n",
                MAX_CLIENTS);
        return 2;
    }
    struct client *cl = calloc((size_t)nclients, sizeof(*cl));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cl || ep < 0) {
        fprintf(stderr, "sse-bench: out of memory\n");
        return 1;
    }
    int open = 0;
    for (int i = 0; i < nclients; i++) {
        if (open_client(&cl[i], port, path, token) < 0) {
            fprintf(stderr, "sse-bench: client %d: connect/write: %s\n", i, strerror(errno));
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev);
        open++;
    }

    /* every stream answered and connected, or the ones that were refused ended */
    int64_t deadline = mono_ms() + connect_ms;
    int connected = 0, refused = 0;
    while (mono_ms() < deadline) {
        pump(ep, cl, 50, &open);
        connected = refused = 0;
        for (int i = 0; i < nclients; i++) {
            connected += cl[i].connected;
            refused += cl[i].status && cl[i].status != 200;
        }
        if (connected + refused == nclients)
            break;
    }
    if (ready) {
        FILE *f = fopen(ready, "w");
        if (f) {
            fprintf(f, "%d\n", connected);
            fclose(f);
        }
    }

    /* the flood: until every stream has count events or ended, or all are quiet */
    int64_t t0 = mono_ms(), first = 0, last = 0;
    for (;;) {
        int done = 1;
        for (int i = 0; i < nclients && done; i++)
            done = cl[i].ended || cl[i].got >= count;
        if (done || !open)
            break;
        if (!pump(ep, cl, idle_ms, &open))
            break; /* idle-ms with nothing */
        last = mono_ms();
        if (!first)
            first = last;
    }

    long rmin = -1, rmax = 0, missing = 0, gaps = 0, disorder = 0, dup = 0, bad = 0;
    int cut = 0, ended = 0, complete = 0;
    uint64_t total = 0;
    for (int i = 0; i < nclients; i++) {
        struct client *c = &cl[i];
        if (c->status != 200)
            continue;
        rmin = rmin < 0 || c->got < rmin ? c->got : rmin;
        rmax = c->got > rmax ? c->got : rmax;
        missing += c->got < count ? count - c->got : 0;
        gaps += c->gaps;
        disorder += c->disorder;
        dup += c->dup;
        bad += c->malformed;
        cut += c->cut;
        ended += c->ended && !c->cut;
        complete += c->got == count && !c->gaps && !c->disorder && !c->dup;
        total += (uint64_t)c->got;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double span_s = last > first ? (double)(last - first) / 1000.0 : 0;
    printf("{\"clients\":%d,\"connected\":%d,\"refused\":%d,\"expected_per_client\":%ld,"
           "\"received_min\":%ld,\"received_max\":%ld,\"received_total\":%llu,"
           "\"complete_clients\":%d,\"missing\":%ld,\"seq_gaps\":%ld,\"out_of_order\":%ld,"
           "\"duplicates\":%ld,\"malformed\":%ld,\"cut_slow\":%d,\"ended_early\":%d,"
           "\"events_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,"
           "\"client_cpu_s\":%.2f,\"wall_s\":%.2f}\n",
           nclients, connected, refused, count, rmin < 0 ? 0 : rmin, rmax,
           (unsigned long long)total, complete, missing, gaps, disorder, dup, bad, cut, ended,
           span_s > 0 ? (double)total / span_s : 0.0, hist_pct(total, 0.50), hist_pct(total, 0.99),
           lat_max_ms, cpu_s, (double)(mono_ms() - t0) / 1000.0);
    for (int i = 0; i < nclients; i++) {
        if (cl[i].fd > 0)
            close(cl[i].fd);
        free(cl[i].body);
    }
    free(cl);
    close(ep);
    return 0;
}
