/* ami-bench: raw AMI Ping rate on one connection, the baseline amibridge
 * is compared against. Logs in (Events: off), then keeps `window` Pings in
 * flight until `count` have been answered; prints the rate and latency
 * percentiles as one JSON line.
 *
 *   ami-bench --port 5038 --count 200000 --window 64
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ami/parser.h"
#include "core/strbuf.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read until one message arrives; returns it (caller frees) or NULL. */
static struct ami_msg *read_msg(int fd, struct ami_parser *p)
{
    char buf[65536];
    struct ami_msg *m;
    for (;;) {
        int rc = ami_parser_next(p, &m);
        if (rc == 1)
            return m;
        if (rc < 0)
            return NULL;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0 || ami_parser_feed(p, buf, (size_t)n) < 0)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *user = "bridge", *secret = "bridgesecret";
    int port = 5038;
    long count = 100000, window = 64;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"user", required_argument, NULL, 'u'},
        {"secret", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'u':
            user = optarg;
            break;
        case 's':
            secret = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 'w':
            window = atol(optarg);
            break;
        default:
            fprintf(stderr, "usage: ami-bench [--host H] [--port P] [--user U] [--secret S] "
                            "[--count N] [--window W]\n");
            return 2;
        }
    }
    if (count < 1 || window < 1)
        return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    struct ami_msg *m = read_msg(fd, p);
    ami_msg_free(m);
    char login[512];
    snprintf(login, sizeof(login),
             "Action: Login\r\nActionID: L\r\nUsername: %s\r\nSecret: %s\r\nEvents: off\r\n\r\n",
             user, secret);
    send_all(fd, login, strlen(login));
    m = read_msg(fd, p);
    if (!m || !ami_msg_is(m, "Response", "Success")) {
        fprintf(stderr, "login failed\n");
        return 1;
    }
    ami_msg_free(m);

    uint64_t *sent_at = calloc((size_t)count, sizeof(*sent_at));
    uint64_t *lat = calloc((size_t)count, sizeof(*lat));
    long next = 0, done = 0;
    struct strbuf out;
    strbuf_init(&out, 0);
    uint64_t t0 = now_ns();
    char buf[65536];
    while (done < count) {
        strbuf_reset(&out);
        while (next < count && next - done < window) {
            strbuf_printf(&out, "Action: Ping\r\nActionID: %ld\r\n\r\n", next);
            sent_at[next++] = now_ns();
        }
        if (out.len && send_all(fd, out.data, out.len) < 0) {
            fprintf(stderr, "write failed\n");
            return 1;
        }
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0 || ami_parser_feed(p, buf, (size_t)n) < 0) {
            fprintf(stderr, "read failed\n");
            return 1;
        }
        uint64_t t = now_ns();
        while (ami_parser_next(p, &m) == 1) {
            const char *id = ami_msg_get(m, "ActionID");
            long i = id ? atol(id) : -1;
            if (i >= 0 && i < count && sent_at[i]) {
                lat[done++] = t - sent_at[i];
                sent_at[i] = 0;
            }
            ami_msg_free(m);
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, (size_t)count, sizeof(*lat), cmp_u64);
    printf("{\"tool\":\"ami-bench\",\"requests\":%ld,\"window\":%ld,\"seconds\":%.3f,"
           "\"req_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
           count, window, secs, (double)count / secs, (double)lat[count / 2] / 1e6,
           (double)lat[(size_t)((double)count * 0.99)] / 1e6);
    send_all(fd, "Action: Logoff\r\n\r\n", 18);
    close(fd);
    strbuf_release(&out);
    ami_parser_free(p);
    free(sent_at);
    free(lat);
    return 0;
}
