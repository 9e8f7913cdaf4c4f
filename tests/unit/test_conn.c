/* Unit tests for ami/conn against a scripted AMI peer in this process (a
 * thread with plain sockets): the actions of one loop turn go in one
 * write; a hold (ami_conn_pause) outlives a reconnect, a keepalive reply
 * kept among held bytes does not fail the session, and a connection
 * closed while held still reads the Goodbye. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "ami/conn.h"
#include "ami/message.h"
#include "support/amipeer.h"

/* --- the peer ------------------------------------------------------------------------------ */

/* What the test asks of the peer (support/amipeer), done on its thread. */
static struct {
    volatile int drop;   /* close the session now */
    volatile int events; /* send this many events now */
    volatile int pings;  /* Pings answered */
} script;

static void act(struct amipeer *pe, int fd, const char *msg, void *ud)
{
    (void)pe;
    (void)ud;
    char action[64] = "", id[64] = "";
    amipeer_header(msg, "Action", action, sizeof(action));
    amipeer_header(msg, "ActionID", id, sizeof(id));
    if (!strcmp(action, "Login")) {
        amipeer_say(fd,
                    "Response: Success\r\nActionID: %s\r\nMessage: Authentication accepted\r\n\r\n",
                    id);
    } else if (!strcmp(action, "Ping")) {
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nPing: Pong\r\n\r\n", id);
        script.pings++;
    } else if (!strcmp(action, "Logoff")) {
        amipeer_say(fd, "Response: Goodbye\r\nActionID: %s\r\nMessage: Thanks\r\n\r\n", id);
    } else {
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\n\r\n", id);
    }
}

/* One session at a time (slot 0): drop it or send events when asked. */
static void tick(struct amipeer *pe, void *ud)
{
    (void)ud;
    if (pe->fds[0] >= 0 && script.drop) {
        amipeer_drop(pe, 0);
        script.drop = 0;
    }
    if (pe->fds[0] >= 0 && script.events) {
        int n = script.events;
        script.events = 0;
        for (int i = 0; i < n; i++)
            amipeer_say(pe->fds[0], "Event: Test\r\nN: %d\r\n\r\n", i);
    }
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
static struct amipeer peer;

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
    script.drop = script.events = script.pings = 0;
    assert_int_equal(amipeer_start(&peer, 1, act, tick, NULL), 0);
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
    amipeer_stop(&peer);
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
    script.drop = 1;
    run_until(&s.downs, 1, 3000);
    assert_int_equal(s.downs, 1);
    run_until(&s.ups, 2, 5000);
    assert_int_equal(s.ups, 2);
    script.events = 3;
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
    script.drop = 1;
    run_until(&s.downs, 1, 3000);
    assert_int_equal(s.downs, 1);
    ami_conn_pause(c, 1); /* between sessions */
    run_until(&s.ups, 2, 5000);
    assert_int_equal(s.ups, 2);
    script.events = 2;
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
    assert_true(script.pings >= 1);
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

/* Actions queued in one loop turn reach the PBX in one write, made before
 * the loop waits again (not the first at once and the rest a turn later). */
static void one_turns_actions_go_in_one_write(void **state)
{
    (void)state;
    struct seen s = {0};
    struct ami_conn *c = conn_up(&s, 15000);
    run_for(50); /* the login's bytes are read */
    unsigned reads = peer.reads;
    int pings = script.pings;
    for (int i = 0; i < 3; i++) {
        char a[64];
        int n = snprintf(a, sizeof(a), "Action: Ping\r\nActionID: t-w%d\r\n\r\n", i);
        assert_int_equal(ami_conn_send(c, a, (size_t)n), 0);
    }
    usleep(100 * 1000); /* the peer would read anything written so far */
    assert_int_equal(peer.reads, reads);
    int want = pings + 3;
    run_until((const int *)&script.pings, want, 2000);
    assert_int_equal(script.pings, want);
    assert_int_equal(peer.reads, reads + 1);
    conn_close(c, &s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_turns_actions_go_in_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(a_hold_outlives_a_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(a_hold_asked_for_while_down_applies_once_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_held_ping_reply_keeps_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(closing_a_held_connection_reads_the_goodbye, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
