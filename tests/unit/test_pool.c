/* Unit tests for ami/pool against a scripted AMI peer in this process (a
 * thread with plain sockets): ActionID correlation when replies come out of
 * order, a late reply to a timed-out action (a zombie) recognised and not
 * given to anyone, an event list past AMI_POOL_MAX_LIST_ITEMS refused while
 * the session stays in step, a dropped connection failing what it carried,
 * and events held back (ami_pool_pause_events) then handed out in order,
 * the oldest going through when the hold is full. */
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

#include "ami/message.h"
#include "ami/pool.h"
#include "core/config.h"

/* --- the peer ------------------------------------------------------------------------------ */

#define PEER_CONNS 8

struct held {
    int fd;
    char id[64], tag[16];
};

struct peer {
    int lfd, port;
    pthread_t th;
    volatile int stop;
    int fds[PEER_CONNS];
    char in[PEER_CONNS][65536];
    size_t nin[PEER_CONNS];
    struct held held[4]; /* replies to "Hold" actions, sent when "Release" comes */
    int nheld;
    volatile int event_fd; /* the session that logged in with events on */
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

static const char *header(const char *msg, const char *key, char *out, size_t len)
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

/* One action from the bridge, as the script says. */
static void act(struct peer *pe, int fd, const char *msg)
{
    char action[64] = "", id[64] = "";
    header(msg, "Action", action, sizeof(action));
    header(msg, "ActionID", id, sizeof(id));
    char events[16] = "";
    if (!strcmp(action, "Login") && header(msg, "Events", events, sizeof(events)) &&
        strcmp(events, "off"))
        pe->event_fd = fd;
    if (!strcmp(action, "Emit")) {
        /* Count events on the event session, then the reply */
        char count[16] = "0";
        header(msg, "Count", count, sizeof(count));
        for (int i = 1; i <= atoi(count); i++)
            say(pe->event_fd, "Event: Tick\r\nPrivilege: user,all\r\nN: %d\r\nPad: %s\r\n\r\n", i,
                "................................................................");
        say(fd, "Response: Success\r\nActionID: %s\r\nMessage: emitted\r\n\r\n", id);
    } else if (!strcmp(action, "Challenge")) {
        say(fd, "Response: Success\r\nActionID: %s\r\nChallenge: 123456789\r\n\r\n", id);
    } else if (!strcmp(action, "Hold") && pe->nheld < 4) {
        pe->held[pe->nheld].fd = fd;
        snprintf(pe->held[pe->nheld].id, sizeof(pe->held[0].id), "%s", id);
        if (!header(msg, "Tag", pe->held[pe->nheld].tag, sizeof(pe->held[0].tag)))
            pe->held[pe->nheld].tag[0] = '\0';
        pe->nheld++;
    } else if (!strcmp(action, "Release")) {
        /* the held replies, newest first, then this one */
        for (int i = pe->nheld - 1; i >= 0; i--)
            say(pe->held[i].fd, "Response: Success\r\nActionID: %s\r\nMessage: held %s\r\n\r\n",
                pe->held[i].id, pe->held[i].tag);
        pe->nheld = 0;
        say(fd, "Response: Success\r\nActionID: %s\r\nMessage: released\r\n\r\n", id);
    } else if (!strcmp(action, "BigList")) {
        say(fd, "Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n", id);
        for (int i = 0; i <= AMI_POOL_MAX_LIST_ITEMS; i++)
            say(fd, "Event: Item\r\nActionID: %s\r\nN: %d\r\n\r\n", id, i);
        say(fd, "Event: ItemsComplete\r\nActionID: %s\r\nEventList: Complete\r\n\r\n", id);
    } else if (!strcmp(action, "SmallList")) {
        say(fd, "Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n", id);
        for (int i = 0; i < 3; i++)
            say(fd, "Event: Item\r\nActionID: %s\r\nN: %d\r\n\r\n", id, i);
        say(fd, "Event: ItemsComplete\r\nActionID: %s\r\nEventList: Complete\r\n\r\n", id);
    } else if (!strcmp(action, "Drop")) {
        shutdown(fd, SHUT_RDWR);
    } else if (!strcmp(action, "Ignore")) {
        /* no reply */
    } else {
        say(fd, "Response: Success\r\nActionID: %s\r\nMessage: %s done\r\n\r\n", id, action);
    }
}

static void *peer_run(void *arg)
{
    struct peer *pe = arg;
    while (!pe->stop) {
        struct pollfd pfd[PEER_CONNS + 1];
        pfd[0] = (struct pollfd){.fd = pe->lfd, .events = POLLIN};
        for (int i = 0; i < PEER_CONNS; i++)
            pfd[i + 1] = (struct pollfd){.fd = pe->fds[i], .events = POLLIN};
        if (poll(pfd, PEER_CONNS + 1, 50) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            int fd = accept(pe->lfd, NULL, NULL);
            int slot = -1;
            for (int i = 0; i < PEER_CONNS && slot < 0; i++)
                if (pe->fds[i] < 0)
                    slot = i;
            if (fd >= 0 && slot >= 0) {
                pe->fds[slot] = fd;
                pe->nin[slot] = 0;
                say(fd, "Asterisk Call Manager/9.0.0\r\n");
            } else if (fd >= 0) {
                close(fd);
            }
        }
        for (int i = 0; i < PEER_CONNS; i++) {
            if (pe->fds[i] < 0 || !(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n =
                recv(pe->fds[i], pe->in[i] + pe->nin[i], sizeof(pe->in[i]) - 1 - pe->nin[i], 0);
            if (n <= 0) {
                close(pe->fds[i]);
                pe->fds[i] = -1;
                continue;
            }
            pe->nin[i] += (size_t)n;
            pe->in[i][pe->nin[i]] = '\0';
            char *end;
            while ((end = strstr(pe->in[i], "\r\n\r\n"))) {
                end[2] = '\0';
                act(pe, pe->fds[i], pe->in[i]);
                size_t used = (size_t)(end + 4 - pe->in[i]);
                memmove(pe->in[i], pe->in[i] + used, pe->nin[i] - used + 1);
                pe->nin[i] -= used;
            }
        }
    }
    return NULL;
}

static void peer_start(struct peer *pe)
{
    memset(pe, 0, sizeof(*pe));
    for (int i = 0; i < PEER_CONNS; i++)
        pe->fds[i] = -1;
    pe->event_fd = -1;
    pe->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(pe->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(pe->lfd, 16), 0);
    socklen_t len = sizeof(a);
    getsockname(pe->lfd, (struct sockaddr *)&a, &len);
    pe->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&pe->th, NULL, peer_run, pe), 0);
}

static void peer_stop(struct peer *pe)
{
    pe->stop = 1;
    pthread_join(pe->th, NULL);
    for (int i = 0; i < PEER_CONNS; i++)
        if (pe->fds[i] >= 0)
            close(pe->fds[i]);
    close(pe->lfd);
}

/* --- the pool ------------------------------------------------------------------------------ */

struct got {
    int n;
    enum ami_status status;
    char message[64];
    size_t nevents;
};

static void on_result(void *ud, const struct ami_result *r)
{
    struct got *g = ud;
    g->n++;
    g->status = r->status;
    const char *m = r->response ? ami_msg_get(r->response, "Message") : NULL;
    snprintf(g->message, sizeof(g->message), "%s", m ? m : "");
    g->nevents = r->nevents;
}

/* Events from the event connection: how many, and whether N counted up. */
static int ticks, ticks_out_of_order;
static void on_event(void *ud, const struct ami_msg *m)
{
    (void)ud;
    const char *n = ami_msg_get(m, "N");
    if (!n || strcmp(ami_msg_name(m), "Tick"))
        return;
    if (atoi(n) != ticks + 1)
        ticks_out_of_order++;
    ticks++;
}

static uv_loop_t loop;
static uv_timer_t wake; /* every 10 ms, so that run_until looks at the clock */
static struct cfg cfg;
static struct peer peer;
static struct ami_pool *pool;

static void run_until(int *flag, int want, int timeout_ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)timeout_ms;
    while (*flag < want && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
}

static int actions_up(void)
{
    struct ami_pool_status st;
    ami_pool_status(pool, &st);
    return st.actions_up;
}

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    (void)state;
    peer_start(&peer);
    char port[48], errbuf[256];
    snprintf(port, sizeof(port), "AMIBRIDGE_AMI_PORT=%d", peer.port);
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge",
                   "AMIBRIDGE_AMI_SECRET=s3cret-value",
                   "AMIBRIDGE_AMI_HOST=127.0.0.1",
                   port,
                   "AMIBRIDGE_AMI_POOL_SIZE=1",
                   "AMIBRIDGE_AMI_TIMEOUT_MS=300",
                   "AMIBRIDGE_LOG_LEVEL=error",
                   "AMIBRIDGE_AMI_EVENTS_HOLD_MIB=1",
                   NULL};
    if (cfg_load(&cfg, env, NULL, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s\n", errbuf);
        return -1;
    }
    uv_loop_init(&loop);
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    pool = ami_pool_new(&loop, &cfg.servers[0], "test", on_event, NULL, NULL, 0);
    if (!pool)
        return -1;
    uint64_t end = uv_now(&loop) + 5000;
    struct ami_pool_status st = {0};
    while ((actions_up() < 1 || !st.event_up) && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        ami_pool_status(pool, &st);
    }
    return actions_up() == 1 && st.event_up ? 0 : -1;
}

static int closed;
static void on_closed(void *arg)
{
    (void)arg;
    closed = 1;
}

static int teardown(void **state)
{
    (void)state;
    ami_pool_close(pool, on_closed, NULL);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    peer_stop(&peer);
    cfg_free(&cfg);
    return 0;
}

static int submit_tagged(const char *action, const char *tag, struct got *g)
{
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", action);
    if (tag)
        ami_msg_add(m, "Tag", tag);
    return ami_pool_submit(pool, m, NULL, on_result, g, NULL);
}

static int submit(const char *action, struct got *g)
{
    return submit_tagged(action, NULL, g);
}

static void replies_in_any_order_reach_their_own_request(void **state)
{
    (void)state;
    struct got a = {0}, b = {0}, rel = {0};
    /* one session (AMIBRIDGE_AMI_POOL_SIZE=1): only the ActionID tells them apart */
    assert_int_equal(submit_tagged("Hold", "A", &a), 0);
    assert_int_equal(submit_tagged("Hold", "B", &b), 0);
    run_until(&a.n, 1, 100); /* both sent, neither answered */
    if (a.n + b.n)
        fail_msg("answered before the release: %d %s / %d %s (%s)", a.status, a.message, b.status,
                 b.message, ami_status_name(a.status));
    assert_int_equal(submit("Release", &rel), 0);
    run_until(&rel.n, 1, 2000);
    run_until(&a.n, 1, 2000);
    run_until(&b.n, 1, 2000);
    /* the peer answered b first, then a */
    assert_int_equal(a.n, 1);
    assert_int_equal(b.n, 1);
    assert_int_equal(a.status, AMI_OK);
    assert_string_equal(a.message, "held A");
    assert_string_equal(b.message, "held B");
    assert_string_equal(rel.message, "released");
}

static void a_late_reply_to_a_timed_out_action_goes_to_nobody(void **state)
{
    (void)state;
    struct got h = {0}, p = {0}, rel = {0};
    assert_int_equal(submit("Hold", &h), 0);
    run_until(&h.n, 1, 2000); /* AMIBRIDGE_AMI_TIMEOUT_MS=300 */
    assert_int_equal(h.n, 1);
    assert_int_equal(h.status, AMI_ETIMEDOUT);
    /* its reply comes now: recognised as the zombie's, not handed out */
    assert_int_equal(submit("Release", &rel), 0);
    run_until(&rel.n, 1, 2000);
    assert_int_equal(rel.n, 1);
    assert_string_equal(rel.message, "released");
    assert_int_equal(h.n, 1);
    /* and the sessions are still in step */
    assert_int_equal(submit("Ping", &p), 0);
    run_until(&p.n, 1, 2000);
    assert_string_equal(p.message, "Ping done");
}

static void a_list_past_the_cap_is_refused_and_the_session_stays_in_step(void **state)
{
    (void)state;
    struct got small = {0}, big = {0}, p = {0};
    assert_int_equal(submit("SmallList", &small), 0);
    run_until(&small.n, 1, 2000);
    assert_int_equal(small.status, AMI_OK);
    assert_int_equal(small.nevents, 3);
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", "BigList");
    struct ami_submit_opts o = {.timeout_ms = 20000};
    assert_int_equal(ami_pool_submit(pool, m, &o, on_result, &big, NULL), 0);
    run_until(&big.n, 1, 20000);
    assert_int_equal(big.n, 1);
    assert_int_equal(big.status, AMI_ETOOBIG);
    assert_true(big.nevents <= AMI_POOL_MAX_LIST_ITEMS);
    assert_int_equal(submit("Ping", &p), 0);
    run_until(&p.n, 1, 2000);
    assert_string_equal(p.message, "Ping done");
}

static void a_dropped_connection_fails_what_it_carried_and_comes_back(void **state)
{
    (void)state;
    struct got ig = {0}, dr = {0}, p = {0};
    /* both on the one session, which the peer drops */
    assert_int_equal(submit("Ignore", &ig), 0);
    assert_int_equal(submit("Drop", &dr), 0);
    run_until(&dr.n, 1, 2000);
    run_until(&ig.n, 1, 2000);
    assert_int_equal(dr.n, 1);
    assert_int_equal(ig.n, 1);
    assert_int_equal(dr.status, AMI_ELOST);
    assert_int_equal(ig.status, AMI_ELOST);
    /* the pool logs in again */
    uint64_t end = uv_now(&loop) + 5000;
    while (actions_up() < 1 && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(actions_up(), 1);
    assert_int_equal(submit("Ping", &p), 0);
    run_until(&p.n, 1, 2000);
    assert_string_equal(p.message, "Ping done");
}

/* Run the loop for about `ms`. */
static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

/* With the events held back, have the peer emit `count` Tick events on the
 * event session; returns once it has answered. */
static void emit_held(const char *count, int timeout_ms)
{
    struct got g = {0};
    ticks = ticks_out_of_order = 0;
    ami_pool_pause_events(pool, 1);
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", "Emit");
    ami_msg_add(m, "Count", count);
    assert_int_equal(ami_pool_submit(pool, m, NULL, on_result, &g, NULL), 0);
    run_until(&g.n, 1, timeout_ms);
    assert_int_equal(g.n, 1);
}

static void held_events_come_in_order_once_let_go(void **state)
{
    (void)state;
    emit_held("1000", 2000);
    run_for(200);
    assert_int_equal(ticks, 0); /* read, held, not handed out */
    ami_pool_pause_events(pool, 0);
    run_until(&ticks, 1000, 3000);
    assert_int_equal(ticks, 1000);
    assert_int_equal(ticks_out_of_order, 0);
}

static void a_full_hold_lets_the_oldest_through_in_order(void **state)
{
    (void)state;
    /* 40,000 events of ~110 bytes: 4 MiB against a hold of 1 MiB */
    emit_held("40000", 5000);
    run_for(300);
    int while_held = ticks;
    print_message("%d of 40000 went through a full 1 MiB hold\n", while_held);
    assert_true(while_held > 0 && while_held < 40000);
    ami_pool_pause_events(pool, 0);
    run_until(&ticks, 40000, 5000);
    assert_int_equal(ticks, 40000);
    assert_int_equal(ticks_out_of_order, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replies_in_any_order_reach_their_own_request),
        cmocka_unit_test(a_late_reply_to_a_timed_out_action_goes_to_nobody),
        cmocka_unit_test(a_list_past_the_cap_is_refused_and_the_session_stays_in_step),
        cmocka_unit_test(a_dropped_connection_fails_what_it_carried_and_comes_back),
        cmocka_unit_test(held_events_come_in_order_once_let_go),
        cmocka_unit_test(a_full_hold_lets_the_oldest_through_in_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
