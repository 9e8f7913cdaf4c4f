#include "support/sse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/testenv.h"

static int fill(struct sse_client *c, int timeout_ms)
{
    struct pollfd p = {c->fd, POLLIN, 0};
    int rc = poll(&p, 1, timeout_ms);
    if (rc <= 0)
        return 0;
    char buf[16384];
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n <= 0) {
        c->eof = 1;
        return -1;
    }
    strbuf_append(&c->raw, buf, (size_t)n);
    return 1;
}

/* Move whole chunks from raw into body. */
static void dechunk(struct sse_client *c)
{
    for (;;) {
        char *nl = memmem(c->raw.data, c->raw.len, "\r\n", 2);
        if (!nl)
            return;
        size_t size = strtoul(c->raw.data, NULL, 16);
        size_t head = (size_t)(nl - c->raw.data) + 2;
        if (size == 0) {
            c->eof = 1;
            strbuf_consume(&c->raw, c->raw.len);
            return;
        }
        if (c->raw.len < head + size + 2)
            return;
        strbuf_append(&c->body, c->raw.data + head, size);
        strbuf_consume(&c->raw, head + size + 2);
    }
}

int sse_open(struct sse_client *c, int port, const char *path, const char *token,
             const char *last_id, int rcvbuf)
{
    memset(c, 0, sizeof(*c));
    strbuf_init(&c->raw, 0);
    strbuf_init(&c->body, 0);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s%s%s"
                     "%s%s%s\r\n",
                     path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", last_id ? "Last-Event-ID: " : "", last_id ? last_id : "",
                     last_id ? "\r\n" : "");
    if (write(c->fd, req, (size_t)n) != n)
        return -1;
    long long deadline = testenv_now_ms() + 5000;
    char *end;
    while (!(end = c->raw.data ? memmem(c->raw.data, c->raw.len, "\r\n\r\n", 4) : NULL)) {
        if (testenv_now_ms() > deadline || fill(c, 100) < 0)
            return -1;
    }
    c->status = atoi(c->raw.data + 9);
    char *ct = strcasestr(c->raw.data, "\r\nContent-Type: ");
    if (ct && ct < end)
        snprintf(c->content_type, sizeof(c->content_type), "%.*s", (int)strcspn(ct + 16, "\r\n"),
                 ct + 16);
    strbuf_consume(&c->raw, (size_t)(end - c->raw.data) + 4);
    return 0;
}

static int parse_frame(struct sse_client *c, struct sse_frame *f)
{
    char *sep = c->body.data ? memmem(c->body.data, c->body.len, "\n\n", 2) : NULL;
    if (!sep)
        return 0;
    memset(f, 0, sizeof(*f));
    size_t flen = (size_t)(sep - c->body.data);
    char *frame = strndup(c->body.data, flen);
    strbuf_consume(&c->body, flen + 2);
    char *save = NULL;
    for (char *line = strtok_r(frame, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == ':') {
            free(f->comment);
            f->comment = strdup(line[1] == ' ' ? line + 2 : line + 1);
        } else if (!strncmp(line, "id: ", 4)) {
            snprintf(f->id, sizeof(f->id), "%s", line + 4);
        } else if (!strncmp(line, "event: ", 7)) {
            snprintf(f->event, sizeof(f->event), "%s", line + 7);
        } else if (!strncmp(line, "data: ", 6)) {
            free(f->data);
            f->data = strdup(line + 6);
        }
    }
    free(frame);
    return 1;
}

int sse_next(struct sse_client *c, int timeout_ms, struct sse_frame *f)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    for (;;) {
        dechunk(c);
        if (parse_frame(c, f))
            return 1;
        if (c->eof)
            return -1;
        long long left = deadline - testenv_now_ms();
        if (left <= 0)
            return 0;
        if (fill(c, (int)(left < 100 ? left : 100)) < 0) {
            dechunk(c);
            if (parse_frame(c, f))
                return 1;
            return -1;
        }
    }
}

void sse_frame_free(struct sse_frame *f)
{
    free(f->data);
    free(f->comment);
    f->data = f->comment = NULL;
}

void sse_close(struct sse_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    strbuf_release(&c->raw);
    strbuf_release(&c->body);
}
