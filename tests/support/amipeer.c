#include "support/amipeer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void amipeer_say(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (int)w;
    }
}

const char *amipeer_header(const char *msg, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s: ", key);
    const char *p = strstr(msg, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
    return out;
}

void amipeer_drop(struct amipeer *pe, int i)
{
    if (pe->fds[i] >= 0)
        close(pe->fds[i]);
    pe->fds[i] = -1;
}

static void accept_one(struct amipeer *pe)
{
    int fd = accept(pe->lfd, NULL, NULL);
    if (fd < 0)
        return;
    for (int i = 0; i < pe->max_conns; i++) {
        if (pe->fds[i] < 0) {
            pe->fds[i] = fd;
            pe->nin[i] = 0;
            amipeer_say(fd, "Asterisk Call Manager/9.0.0\r\n");
            return;
        }
    }
    close(fd);
}

/* What session i sent: every whole message to act. */
static void read_one(struct amipeer *pe, int i)
{
    char *in = pe->in[i];
    ssize_t n = recv(pe->fds[i], in + pe->nin[i], sizeof(pe->in[i]) - 1 - pe->nin[i], 0);
    if (n <= 0) {
        amipeer_drop(pe, i);
        return;
    }
    pe->reads++;
    pe->nin[i] += (size_t)n;
    in[pe->nin[i]] = '\0';
    char *end;
    while (pe->fds[i] >= 0 && (end = strstr(in, "\r\n\r\n"))) {
        end[2] = '\0';
        pe->act(pe, pe->fds[i], in, pe->ud);
        size_t used = (size_t)(end + 4 - in);
        memmove(in, in + used, pe->nin[i] - used + 1);
        pe->nin[i] -= used;
    }
    if (pe->nin[i] == sizeof(pe->in[i]) - 1)
        amipeer_drop(pe, i);
}

static void *run(void *arg)
{
    struct amipeer *pe = arg;
    while (!pe->stop) {
        if (pe->tick)
            pe->tick(pe, pe->ud);
        struct pollfd pfd[AMIPEER_CONNS + 1];
        pfd[0] = (struct pollfd){.fd = pe->lfd, .events = POLLIN};
        for (int i = 0; i < AMIPEER_CONNS; i++)
            pfd[i + 1] = (struct pollfd){.fd = pe->fds[i], .events = POLLIN};
        if (poll(pfd, AMIPEER_CONNS + 1, 10) <= 0)
            continue;
        if (pfd[0].revents & POLLIN)
            accept_one(pe);
        for (int i = 0; i < AMIPEER_CONNS; i++)
            if (pe->fds[i] >= 0 && pfd[i + 1].fd == pe->fds[i] &&
                (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                read_one(pe, i);
    }
    return NULL;
}

int amipeer_start(struct amipeer *pe, int max_conns, amipeer_act_fn act, amipeer_tick_fn tick,
                  void *ud)
{
    memset(pe, 0, sizeof(*pe));
    for (int i = 0; i < AMIPEER_CONNS; i++)
        pe->fds[i] = -1;
    pe->max_conns = max_conns > 0 && max_conns <= AMIPEER_CONNS ? max_conns : AMIPEER_CONNS;
    pe->act = act;
    pe->tick = tick;
    pe->ud = ud;
    pe->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (pe->lfd < 0 || bind(pe->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(pe->lfd, 16) ||
        getsockname(pe->lfd, (struct sockaddr *)&a, &len)) {
        if (pe->lfd >= 0)
            close(pe->lfd);
        return -1;
    }
    pe->port = ntohs(a.sin_port);
    if (pthread_create(&pe->th, NULL, run, pe)) {
        close(pe->lfd);
        return -1;
    }
    return 0;
}

void amipeer_stop(struct amipeer *pe)
{
    pe->stop = 1;
    pthread_join(pe->th, NULL);
    for (int i = 0; i < AMIPEER_CONNS; i++)
        amipeer_drop(pe, i);
    close(pe->lfd);
}
