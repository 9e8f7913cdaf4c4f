/* mhd-baseline: the ceiling bench/run-all.sh compares amibridge's action
 * route with: a bare libmicrohttpd JSON responder on one thread, as
 * amibridge ran libmicrohttpd until it served HTTP itself. MHD runs in
 * external epoll mode (MHD_USE_EPOLL, no thread of MHD's own), driven by
 * this process's one thread, which waits on MHD's epoll descriptor for at
 * most MHD_get_timeout() and then calls MHD_run(). The daemon flags are
 * the ones amibridge used, so that the ceiling stays the one of every
 * earlier run; the listen backlog is amibridge's, the per-connection
 * memory its request-head limit. Every request (any method, any path):
 * the body, if any, is read and discarded, then 200 with
 * {"response":"Success","ping":"Pong"} as application/json, at once: no
 * routing, no auth, no AMI round trip, no access log.
 *
 *   mhd-baseline [--listen 127.0.0.1:0] [--ready-file F] [--max-conns N]
 *
 * Writes its port to F once it listens; stops on SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BASELINE_BACKLOG      1024       /* HTTP_LISTEN_BACKLOG in src/http/server.h */
#define BASELINE_MEMORY_LIMIT (8 * 1024) /* H1_HEAD_MAX in src/http/h1.h */

static const char reply[] = "{\"response\":\"Success\",\"ping\":\"Pong\"}";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **req)
{
    static int started;
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (!*req) { /* the head has arrived: ask for the body */
        *req = &started;
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body: read, dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(reply) - 1, (void *)reply, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

/* host:port (IPv4), port 0 for any free one; returns the socket or -1 */
static int open_listener(const char *listen_on, int *port)
{
    char host[64];
    const char *colon = strrchr(listen_on, ':');
    size_t hl = colon ? (size_t)(colon - listen_on) : 0;
    struct sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    if (!colon || hl >= sizeof(host))
        return -1;
    memcpy(host, listen_on, hl);
    host[hl] = '\0';
    in.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &in.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t sl = sizeof(in);
    if (bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(fd, BASELINE_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&in, &sl) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(in.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    const char *listen_on = "127.0.0.1:0", *ready_file = NULL;
    unsigned max_conns = 1000;
    static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
                                       {"ready-file", required_argument, NULL, 'r'},
                                       {"max-conns", required_argument, NULL, 'm'},
                                       {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'l':
            listen_on = optarg;
            break;
        case 'r':
            ready_file = optarg;
            break;
        case 'm':
            max_conns = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr, "usage: mhd-baseline [--listen HOST:PORT] [--ready-file F] "
                            "[--max-conns N]\n");
            return 2;
        }
    }
    int port = 0, fd = open_listener(listen_on, &port);
    if (fd < 0) {
        fprintf(stderr, "mhd-baseline: cannot listen on %s: %s\n", listen_on, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_access,
        NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, max_conns,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)BASELINE_MEMORY_LIMIT, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd-baseline: MHD_start_daemon failed\n");
        close(fd);
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
    struct pollfd pfd = {.fd = di->epoll_fd, .events = POLLIN};
    if (ready_file) {
        FILE *f = fopen(ready_file, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
            fprintf(stderr, "mhd-baseline: cannot write %s\n", ready_file);
            MHD_stop_daemon(d);
            return 1;
        }
    }
    while (!stop) {
        MHD_UNSIGNED_LONG_LONG ms = 0;
        int wait_ms = -1;
        if (MHD_get_timeout(d, &ms) == MHD_YES)
            wait_ms = ms > INT_MAX ? INT_MAX : (int)ms;
        if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
            perror("mhd-baseline: poll");
            break;
        }
        if (!stop)
            MHD_run(d);
    }
    MHD_stop_daemon(d); /* closes the listening socket too */
    return 0;
}
