#include "support/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/testenv.h"

#define NET_READ_CHUNK 65536

int net_connect(struct net_client *c, const char *host, int port, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    strbuf_init(&c->raw, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    if (rc < 0 && errno != EINPROGRESS) {
        rc = -errno;
        goto fail;
    }
    if (rc < 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rc = poll(&p, 1, timeout_ms);
        if (rc <= 0) {
            rc = rc == 0 ? -ETIMEDOUT : -errno;
            goto fail;
        }
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            rc = -err;
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->parser = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    if (!c->parser) {
        rc = -ENOMEM;
        goto fail;
    }
    c->fd = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

void net_close(struct net_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ami_parser_free(c->parser);
    c->parser = NULL;
    strbuf_release(&c->raw);
}

void net_shutdown_write(struct net_client *c)
{
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_WR);
}

int net_send(struct net_client *c, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
                poll(&pf, 1, 1000);
                continue;
            }
            c->error = 1;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int net_sendf(struct net_client *c, const char *fmt, ...)
{
    struct strbuf sb;
    strbuf_init(&sb, 0);
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = net_send(c, sb.data, sb.len);
    strbuf_release(&sb);
    return rc;
}

int net_pump(struct net_client *c, int timeout_ms)
{
    if (c->eof || c->error)
        return -1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    if (rc == 0)
        return 0;
    char buf[NET_READ_CHUNK];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        c->error = 1;
        c->eof_time = testenv_now();
        return -1;
    }
    if (n == 0) {
        c->eof = 1;
        c->eof_time = testenv_now();
        return -1;
    }
    if (c->keep_raw)
        strbuf_append(&c->raw, buf, (size_t)n);
    if (ami_parser_feed(c->parser, buf, (size_t)n) < 0)
        c->error = 1;
    return (int)n;
}

int net_next(struct net_client *c, struct ami_msg **out)
{
    *out = NULL;
    int rc = ami_parser_next(c->parser, out);
    if (rc < 0)
        c->error = 1;
    if (rc == 1)
        c->last_msg_time = testenv_now();
    return rc == 1;
}

int net_read_msg(struct net_client *c, int timeout_ms, struct ami_msg **out)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    for (;;) {
        if (net_next(c, out))
            return 1;
        if (c->error || c->eof)
            return -1;
        long long left = deadline - testenv_now_ms();
        if (left <= 0)
            return 0;
        if (net_pump(c, (int)left) < 0 && !net_next(c, out))
            return -1;
        if (*out)
            return 1;
    }
}

size_t net_read_msgs(struct net_client *c, size_t n, int timeout_ms, struct ami_msg **out)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    size_t got = 0;
    while (got < n) {
        long long left = deadline - testenv_now_ms();
        if (left < 0)
            left = 0;
        if (net_read_msg(c, (int)left, &out[got]) != 1)
            break;
        got++;
    }
    return got;
}

int net_read_until_close(struct net_client *c, int timeout_ms)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    while (!c->eof && !c->error) {
        long long left = deadline - testenv_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        net_pump(c, (int)left);
    }
    struct ami_msg *m;
    while (net_next(c, &m))
        ami_msg_free(m);
    return 0;
}

static int wait_for(struct net_client *c, int want_event, const char *match, int timeout_ms,
                    struct ami_msg **out)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    *out = NULL;
    for (;;) {
        long long left = deadline - testenv_now_ms();
        struct ami_msg *m = NULL;
        int rc = net_read_msg(c, left > 0 ? (int)left : 0, &m);
        if (rc != 1)
            return rc;
        enum ami_msg_kind k = ami_msg_kind(m);
        if (want_event && k == AMI_MSG_EVENT && !strcasecmp(ami_msg_name(m), match)) {
            *out = m;
            return 1;
        }
        if (!want_event && k == AMI_MSG_RESPONSE) {
            const char *id = ami_msg_get(m, "ActionID");
            if ((!match && !id) || (match && id && !strcmp(id, match))) {
                *out = m;
                return 1;
            }
        }
        ami_msg_free(m);
    }
}

int net_wait_response(struct net_client *c, const char *actionid, int timeout_ms,
                      struct ami_msg **out)
{
    return wait_for(c, 0, actionid, timeout_ms, out);
}

int net_wait_event(struct net_client *c, const char *event, int timeout_ms, struct ami_msg **out)
{
    return wait_for(c, 1, event, timeout_ms, out);
}

int net_login(struct net_client *c, const char *user, const char *secret, const char *events,
              int timeout_ms)
{
    struct ami_msg *m = NULL;
    int rc = net_read_msg(c, timeout_ms, &m);
    if (rc != 1)
        return rc == 0 ? -ETIMEDOUT : -EPIPE;
    int banner = ami_msg_kind(m) == AMI_MSG_BANNER;
    ami_msg_free(m);
    if (!banner)
        return -EPROTO;
    if (events)
        rc = net_sendf(c,
                       "Action: Login\r\nActionID: net-login\r\nUsername: %s\r\nSecret: %s\r\n"
                       "Events: %s\r\n\r\n",
                       user, secret, events);
    else
        rc = net_sendf(c,
                       "Action: Login\r\nActionID: net-login\r\nUsername: %s\r\nSecret: %s\r\n\r\n",
                       user, secret);
    if (rc < 0)
        return rc;
    rc = net_wait_response(c, "net-login", timeout_ms, &m);
    if (rc != 1)
        return rc == 0 ? -ETIMEDOUT : -EPIPE;
    int ok = ami_msg_is(m, "Response", "Success");
    ami_msg_free(m);
    return ok ? 0 : -EACCES;
}
