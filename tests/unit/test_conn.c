/* Unit tests for ami/conn's hold (ami_conn_pause) against a scripted AMI
 * peer in this process (a thread with plain sockets): a hold outlives a
 * reconnect, a keepalive reply kept among held bytes does not fail the
 * session, and a connection closed while held still reads the Goodbye. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ami/conn.h"
#include "ami/message.h"

/* --- the peer ------------------------------------------------------------------------------ */

struct peer {
    int lfd, port, fd;
    pthread_t th;
    volatile int stop;
    volatile int drop;   /* close the session now */
    volatile int events; /* send this many events now */
    volatile int pings;  /* Pings answered */
    char in[65536];
    size_t nin;
};

static void say(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (int off = 0; off < n;) {
        ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (int)w;
    }
}

static void header(const char *msg, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "%s: ", key);
    const char *p = strstr(msg, pat);
    out[0] = '\0';
    if (!p)
        return;
    p += strlen(pat);
    size_t n = strcspn(p, "\r\n");
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
}

static void act(struct peer *pe, const char *msg)
{
    char action[64], id[64];
    header(msg, "Action", action, sizeof(action));
    header(msg, "ActionID", id, sizeof(id));
    if (!strcmp(action, "Login")) {
        say(pe->fd, "Response: Success\r\nActionID: %s\r\nMessage: Authentication accepted\r\n\r\n",
            id);
    } else if (!strcmp(action, "Ping")) {
        say(pe->fd, "Response: Success\r\nActionID: %s\r\nPing: Pong\r\n\r\n", id);
        pe->pings++;
    } else if (!strcmp(action, "Logoff")) {
        say(pe->fd, "Response: Goodbye\r\nActionID: %s\r\nMessage: Thanks\r\n\r\n", id);
    } else {
        say(pe->fd, "Response: Success\r\nActionID: %s\r\n\r\n", id);
    }
}

static void *peer_run(void *arg)
{
    struct peer *pe = arg;
    while (!pe->stop) {
        if (pe->fd >= 0 && pe->drop) {
            close(pe->fd);
            pe->fd = -1;
            pe->drop = 0;
        }
        if (pe->fd >= 0 && pe->events) {
            int n = pe->events;
            pe->events = 0;
            for (int i = 0; i < n; i++)
                say(pe->fd, "Event: Test\r\nN: %d\r\n\r\n", i);
        }
        struct pollfd pfd[2] = {{.fd = pe->lfd, .events = POLLIN},
                                {.fd = pe->fd, .events = POLLIN}};
        if (poll(pfd, 2, 10) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            int fd = accept(pe->lfd, NULL, NULL);
            if (fd >= 0 && pe->fd >= 0) {
                close(fd);
            } else if (fd >= 0) {
                pe->fd = fd;
                pe->nin = 0;
                say(fd, "Asterisk Call Manager/9.0.0\r\n");
            }
        }
        if (pe->fd < 0 || !(pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = recv(pe->fd, pe->in + pe->nin, sizeof(pe->in) - 1 - pe->nin, 0);
        if (n <= 0) {
            close(pe->fd);
            pe->fd = -1;
            continue;
        }
        pe->nin += (size_t)n;
        pe->in[pe->nin] = '\0';
        char *end;
        while ((end = strstr(pe->in, "\r\n\r\n"))) {
            end[2] = '\0';
            act(pe, pe->in);
            size_t used = (size_t)(end + 4 - pe->in);
            memmove(pe->in, pe->in + used, pe->nin - used + 1);
            pe->nin -= used;
        }
    }
    return NULL;
}

static void peer_start(struct peer *pe)
{
    memset(pe, 0, sizeof(*pe));
    pe->fd = -1;
    pe->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(pe->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(pe->lfd, 4), 0);
    socklen_t len = sizeof(a);
    getsockname(pe->lfd, (struct sockaddr *)&a, &len);
    pe->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&pe->th, NULL, peer_run, pe), 0);
}

static void peer_stop(struct peer *pe)
{
    pe->stop = 1;
    pthread_join(pe->th, NULL);
    if (pe->fd >= 0)
        close(pe->fd);
    close(pe->lfd);
}

/* --- the connection ------------------------------------------------------------------------ */

struct seen {
    int ups, downs, events, closed;
};

static void on_up(struct ami_conn *c, void *ud)
{
    (void)c;
    ((struct seen *)ud)->ups++;
}

static void on_down(struct ami_conn *c, void *ud, const char *reason)
{
    (void)c;
    (void)reason;
    ((struct seen *)ud)->downs++;
}

static void on_message(struct ami_conn *c, void *ud, struct ami_msg *m)
{
    (void)c;
    if (ami_msg_kind(m) == AMI_MSG_EVENT)
        ((struct seen *)ud)->events++;
    ami_msg_free(m);
}

static void on_closed(void *arg)
{
    ((struct seen *)arg)->closed = 1;
}

static uv_loop_t loop;
static struct ami_conn *cur; /* the test's connection, closed by teardown if still open */
static uv_timer_t wake;      /* every 10 ms, so that the loops below look at the clock */
static struct peer peer;

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until *flag reaches want or timeout_ms passed. */
static void run_until(const int *flag, int want, int timeout_ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)timeout_ms;
    while (*flag < want && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

static struct ami_conn *conn_up(struct seen *s, int keepalive_ms)
{
    struct ami_conn_opts o = {.host = "127.0.0.1",
                              .port = peer.port,
                              .username = "bridge",
                              .secret = "s3cret",
                              .events = "on",
                              .id_prefix = "t",
                              .server = "pbx",
                              .role = "event",
                              .connect_timeout_ms = 1000,
                              .keepalive_ms = keepalive_ms};
    struct ami_conn_cbs cbs = {.on_up = on_up, .on_down = on_down, .on_message = on_message};
    struct ami_conn *c = ami_conn_new(&loop, &o, &cbs, s);
    assert_non_null(c);
    cur = c;
    ami_conn_start(c);
    run_until(&s->ups, 1, 3000);
    assert_int_equal(s->ups, 1);
    return c;
}

static void conn_close(struct ami_conn *c, struct seen *s)
{
    cur = NULL;
    ami_conn_close(c, on_closed, s);
    run_until(&s->closed, 1, 3000);
    assert_int_equal(s->closed, 1);
}

static int setup(void **state)
{
    (void)state;
    peer_start(&peer);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (cur) { /* a failed test left it open */
        struct seen s = {0};
        ami_conn_close(cur, on_closed, &s);
        cur = NULL;
        while (!s.closed)
            uv_run(&loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    peer_stop(&peer);
    return 0;
}

/* The owner asked to hold events back and has not said otherwise: the
 * session that replaces a lost one holds them back too (nobody asks again). */
static void a_hold_outlives_a_reconnect(void **state)
{
    (void)state;
    struct seen s = {0};
    struct ami_conn *c = conn_up(&s, 15000);
    ami_conn_pause(c, 1);
    peer.drop = 1;
    run_until(&s.downs, 1, 3000);
    assert_int_equal(s.downs, 1);
    run_until(&s.ups, 2, 5000);
    assert_int_equal(s.ups, 2);
    peer.events = 3;
    run_for(300);
    assert_int_equal(s.events, 0);
    assert_true(ami_conn_paused(c));
    ami_conn_pause(c, 0);
    run_until(&s.events, 3, 2000);
    assert_int_equal(s.events, 3);
    conn_close(c, &s);
}

/* A hold asked for while the connection is not up applies once it is. */
static void a_hold_asked_for_while_down_applies_once_up(void **state)
{
    (void)state;
    struct seen s = {0};
    struct ami_conn *c = conn_up(&s, 15000);
    peer.drop = 1;
    run_until(&s.downs, 1, 3000);
    assert_int_equal(s.downs, 1);
    ami_conn_pause(c, 1); /* between sessions */
    run_until(&s.ups, 2, 5000);
    assert_int_equal(s.ups, 2);
    peer.events = 2;
    run_for(300);
    assert_int_equal(s.events, 0);
    ami_conn_pause(c, 0);
    run_until(&s.events, 2, 2000);
    assert_int_equal(s.events, 2);
    conn_close(c, &s);
}

/* While held, the answer to our keepalive Ping sits among the held bytes:
 * a quiet server that did answer is not taken for a dead one. */
static void a_held_ping_reply_keeps_the_session(void **state)
{
    (void)state;
    struct seen s = {0};
    struct ami_conn *c = conn_up(&s, 200);
    ami_conn_pause(c, 1);
    run_for(1500);
    assert_true(peer.pings >= 1);
    assert_int_equal(s.downs, 0);
    ami_conn_pause(c, 0);
    run_for(100);
    assert_int_equal(s.downs, 0);
    conn_close(c, &s);
}

/* Closing a held connection reads Asterisk's Goodbye at once rather than
 * holding it until the Logoff wait runs out. */
static void closing_a_held_connection_reads_the_goodbye(void **state)
{
    (void)state;
    struct seen s = {0};
    struct ami_conn *c = conn_up(&s, 15000);
    ami_conn_pause(c, 1);
    uint64_t t0 = uv_now(&loop);
    conn_close(c, &s);
    assert_true(uv_now(&loop) - t0 < AMI_CONN_LOGOFF_WAIT_MS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_hold_outlives_a_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(a_hold_asked_for_while_down_applies_once_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_held_ping_reply_keeps_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(closing_a_held_connection_reads_the_goodbye, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
