/* Unit tests for ami/pool against a scripted AMI peer in this process (a
 * thread with plain sockets): ActionID correlation when replies come out of
 * order, a late reply to a timed-out action (a zombie) recognised and not
 * given to anyone, an event list past AMI_POOL_MAX_LIST_ITEMS refused while
 * the session stays in step, a dropped connection failing what it carried,
 * and events held back (ami_pool_pause_events) then handed out in order,
 * the oldest going through when the hold is full; with two sessions, the
 * actions of one loop turn together on one, never behind a running one. */
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

#include "ami/message.h"
#include "ami/pool.h"
#include "core/config.h"
#include "support/amipeer.h"

/* --- the peer ------------------------------------------------------------------------------ */

struct held {
    int fd;
    char id[64], tag[16];
};

/* The peer's (support/amipeer) memory of the script, on its thread. */
static struct {
    struct held held[4]; /* replies to "Hold" actions, sent when "Release" comes */
    int nheld;
    int event_fd;   /* the session that logged in with events on */
    int tag_fd[26]; /* the session each action tagged "a".."z" came on */
} script;

/* One action from the bridge, as the script says. */
static void act(struct amipeer *pe, int fd, const char *msg, void *ud)
{
    (void)pe;
    (void)ud;
    char action[64] = "", id[64] = "";
    amipeer_header(msg, "Action", action, sizeof(action));
    amipeer_header(msg, "ActionID", id, sizeof(id));
    char events[16] = "", tag[16] = "", var[16] = "";
    if (amipeer_header(msg, "Tag", tag, sizeof(tag)) && tag[0] >= 'a' && tag[0] <= 'z')
        __atomic_store_n(&script.tag_fd[tag[0] - 'a'], fd, __ATOMIC_RELEASE);
    if (!strcmp(action, "Login") && amipeer_header(msg, "Events", events, sizeof(events)) &&
        strcmp(events, "off"))
        script.event_fd = fd;
    if (!strcmp(action, "Emit")) {
        /* Count events on the event session, then the reply */
        char count[16] = "0";
        amipeer_header(msg, "Count", count, sizeof(count));
        for (int i = 1; i <= atoi(count); i++)
            amipeer_say(script.event_fd,
                        "Event: Tick\r\nPrivilege: user,all\r\nN: %d\r\nPad: %s\r\n\r\n", i,
                        "................................................................");
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nMessage: emitted\r\n\r\n", id);
    } else if (!strcmp(action, "Challenge")) {
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nChallenge: 123456789\r\n\r\n", id);
    } else if ((!strcmp(action, "Hold") ||
                (!strcmp(action, "Getvar") && amipeer_header(msg, "Variable", var, sizeof(var)) &&
                 !strcmp(var, "HELD"))) &&
               script.nheld < 4) {
        /* a Hold, or a quick action held as if Asterisk were busy */
        script.held[script.nheld].fd = fd;
        snprintf(script.held[script.nheld].id, sizeof(script.held[0].id), "%s", id);
        if (!amipeer_header(msg, "Tag", script.held[script.nheld].tag, sizeof(script.held[0].tag)))
            script.held[script.nheld].tag[0] = '\0';
        script.nheld++;
    } else if (!strcmp(action, "Release")) {
        /* the held replies, newest first, then this one */
        for (int i = script.nheld - 1; i >= 0; i--)
            amipeer_say(script.held[i].fd,
                        "Response: Success\r\nActionID: %s\r\nMessage: held %s\r\n\r\n",
                        script.held[i].id, script.held[i].tag);
        script.nheld = 0;
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nMessage: released\r\n\r\n", id);
    } else if (!strcmp(action, "BigList")) {
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n", id);
        for (int i = 0; i <= AMI_POOL_MAX_LIST_ITEMS; i++)
            amipeer_say(fd, "Event: Item\r\nActionID: %s\r\nN: %d\r\n\r\n", id, i);
        amipeer_say(fd, "Event: ItemsComplete\r\nActionID: %s\r\nEventList: Complete\r\n\r\n", id);
    } else if (!strcmp(action, "SmallList")) {
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nEventList: start\r\n\r\n", id);
        for (int i = 0; i < 3; i++)
            amipeer_say(fd, "Event: Item\r\nActionID: %s\r\nN: %d\r\n\r\n", id, i);
        amipeer_say(fd, "Event: ItemsComplete\r\nActionID: %s\r\nEventList: Complete\r\n\r\n", id);
    } else if (!strcmp(action, "Drop")) {
        shutdown(fd, SHUT_RDWR);
    } else if (!strcmp(action, "Ignore")) {
        /* no reply */
    } else {
        amipeer_say(fd, "Response: Success\r\nActionID: %s\r\nMessage: %s done\r\n\r\n", id,
                    action);
    }
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
static struct amipeer peer;
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

static int setup_pool(char *size)
{
    memset(&script, 0, sizeof(script));
    script.event_fd = -1;
    assert_int_equal(amipeer_start(&peer, AMIPEER_CONNS, act, NULL, NULL), 0);
    char port[48], errbuf[256];
    snprintf(port, sizeof(port), "AMIBRIDGE_AMI_PORT=%d", peer.port);
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge",
                   "AMIBRIDGE_AMI_SECRET=s3cret-value",
                   "AMIBRIDGE_AMI_HOST=127.0.0.1",
                   port,
                   size,
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
    int want = atoi(strchr(size, '=') + 1);
    while ((actions_up() < want || !st.event_up) && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
        ami_pool_status(pool, &st);
    }
    return actions_up() == want && st.event_up ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    return setup_pool("AMIBRIDGE_AMI_POOL_SIZE=1");
}

static int setup2(void **state)
{
    (void)state;
    return setup_pool("AMIBRIDGE_AMI_POOL_SIZE=2");
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
    closed = 0;
    ami_pool_close(pool, on_closed, NULL);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    amipeer_stop(&peer);
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

/* A "Hold" that outlives AMIBRIDGE_AMI_TIMEOUT_MS=300: waits for "Release" */
static int submit_held(const char *tag, struct got *g)
{
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", "Hold");
    ami_msg_add(m, "Tag", tag);
    struct ami_submit_opts o = {.timeout_ms = 5000};
    return ami_pool_submit(pool, m, &o, on_result, g, NULL);
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
    struct ami_pool_status st;
    ami_pool_status(pool, &st);
    assert_int_equal(st.hold_full, 0); /* 1000 events fit */
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
    struct ami_pool_status st;
    ami_pool_status(pool, &st);
    assert_true(st.hold_full > 0); /* counted, for amibridge_events_hold_full_total */
    ami_pool_pause_events(pool, 0);
    run_until(&ticks, 40000, 5000);
    assert_int_equal(ticks, 40000);
    assert_int_equal(ticks_out_of_order, 0);
}

/* The session the action tagged `tag` came on, once the peer has read it
 * (its thread records it; up to 2 s); 0 if it never came. */
static int session_of(char tag)
{
    uint64_t end = uv_now(&loop) + 2000;
    int fd;
    while (!(fd = __atomic_load_n(&script.tag_fd[tag - 'a'], __ATOMIC_ACQUIRE)) &&
           uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    return fd;
}

/* A tagged action with one more header. */
static int submit_with(const char *action, const char *tag, const char *key, const char *value,
                       struct got *g)
{
    struct ami_msg *m = ami_msg_new();
    ami_msg_add(m, "Action", action);
    ami_msg_add(m, "Tag", tag);
    ami_msg_add(m, key, value);
    return ami_pool_submit(pool, m, NULL, on_result, g, NULL);
}

/* The replies of the tests below: static, so that one still due when a
 * test fails (the pool answers it at its close) lands somewhere alive. */
static struct got g_[26], rel_;
#define G(t) (&g_[(t) - 'a'])

static void start_batch_test(void)
{
    memset(g_, 0, sizeof(g_));
    memset(&rel_, 0, sizeof(rel_));
    for (int i = 0; i < 26; i++)
        __atomic_store_n(&script.tag_fd[i], 0, __ATOMIC_RELEASE);
}

/* Let the held ones go, and wait for every reply. */
static void release_all(const char *held)
{
    memset(&rel_, 0, sizeof(rel_));
    assert_int_equal(submit("Release", &rel_), 0);
    for (const char *t = held; *t; t++)
        run_until(&G(*t)->n, 1, 2000);
    run_until(&rel_.n, 1, 2000); /* its reply comes after the held ones' */
    assert_int_equal(rel_.n, 1);
    for (const char *t = held; *t; t++) {
        assert_int_equal(G(*t)->n, 1);
        assert_int_equal(G(*t)->status, AMI_OK);
    }
}

/* Wait for the replies to the actions tagged so, each answered once. */
static void answered(const char *tags)
{
    for (const char *t = tags; *t; t++)
        run_until(&G(*t)->n, 1, 2000);
    for (const char *t = tags; *t; t++) {
        assert_int_equal(G(*t)->n, 1);
        assert_int_equal(G(*t)->status, AMI_OK);
    }
}

/* Two sessions. Actions of one loop turn go out together on one session
 * (one write), and never on the session where an earlier action is still
 * running: Asterisk runs a session's actions one after another. */
static void one_turns_actions_go_together_and_never_behind_a_running_one(void **state)
{
    (void)state;
    start_batch_test();
    assert_int_equal(submit_held("a", G('a')), 0);
    assert_int_not_equal(session_of('a'), 0); /* running on its session */
    assert_int_equal(submit_tagged("Ping", "b", G('b')), 0);
    assert_int_equal(submit_tagged("Ping", "c", G('c')), 0);
    assert_int_equal(submit_tagged("ping", "d", G('d')), 0); /* any case */
    answered("bcd");                                         /* none waited for the held one */
    assert_int_equal(G('a')->n, 0);
    assert_string_equal(G('b')->message, "Ping done");
    assert_int_not_equal(session_of('b'), 0);
    assert_int_equal(session_of('c'), session_of('b'));
    assert_int_equal(session_of('d'), session_of('b'));
    assert_int_not_equal(session_of('b'), session_of('a'));
    release_all("a");
    assert_string_equal(G('a')->message, "held a");
}

/* Only actions Asterisk answers at once share a write: a slow one neither
 * joins the quick ones of its turn nor lets them join it, whichever comes
 * first. Slow: a long timeout (the "Hold"), an action off the quick list
 * (Redirect), a Getvar of a function (CURL() may take seconds), a Hangup
 * of a /regex/ (it walks every channel). */
static void a_slow_action_shares_no_batch(void **state)
{
    (void)state;
    start_batch_test();
    /* the slow one first */
    assert_int_equal(submit_held("e", G('e')), 0);
    assert_int_equal(submit_tagged("Ping", "f", G('f')), 0);
    assert_int_equal(submit_tagged("Ping", "g", G('g')), 0);
    answered("fg");
    assert_int_equal(G('e')->n, 0);
    assert_int_not_equal(session_of('e'), 0);
    assert_int_not_equal(session_of('f'), session_of('e'));
    assert_int_equal(session_of('g'), session_of('f'));
    release_all("e");
    /* the quick one first */
    assert_int_equal(submit_tagged("Ping", "h", G('h')), 0);
    assert_int_equal(submit_held("i", G('i')), 0);
    assert_int_equal(submit_tagged("Ping", "j", G('j')), 0);
    answered("hj");
    assert_int_not_equal(session_of('i'), 0);
    assert_int_not_equal(session_of('i'), session_of('h'));
    assert_int_equal(session_of('j'), session_of('h'));
    release_all("i");
    assert_string_equal(G('i')->message, "held i");
    /* the others, each on the server's own timeout, after a quick one */
    static const struct {
        char slow, quick;
        const char *action, *key, *value;
    } slow[] = {
        {'l', 'm', "Redirect", "Channel", "PJSIP/200-00000001"},
        {'o', 'p', "Getvar", "Variable", "CURL(http://crm.example/slow)"},
        {'r', 's', "Hangup", "Channel", " /^PJSIP\\/.*/"},
    };
    for (size_t n = 0; n < sizeof(slow) / sizeof(slow[0]); n++) {
        char k = (char)(slow[n].slow - 1), q[2] = {slow[n].quick, 0}, t[2] = {slow[n].slow, 0};
        char p[2] = {k, 0};
        assert_int_equal(submit_tagged("Ping", p, G(k)), 0);
        assert_int_equal(
            submit_with(slow[n].action, t, slow[n].key, slow[n].value, G(slow[n].slow)), 0);
        assert_int_equal(submit_with("Getvar", q, "Variable", "CRM_ID", G(slow[n].quick)), 0);
        char all[4] = {k, slow[n].slow, slow[n].quick, 0};
        answered(all);
        assert_int_not_equal(session_of(k), 0);
        if (session_of(slow[n].slow) == session_of(k))
            fail_msg("%s %s shared a batch", slow[n].action, slow[n].value);
        assert_int_equal(session_of(slow[n].quick), session_of(k));
    }
}

/* A quick action that cannot join a batch goes to a session where no slow
 * action is running, even when both have as many replies due: behind a
 * synchronous Originate it would wait as long as the call rings. */
static void a_quick_action_never_waits_behind_a_slow_one(void **state)
{
    (void)state;
    start_batch_test();
    assert_int_equal(submit_held("a", G('a')), 0); /* slow, running on one session */
    assert_int_not_equal(session_of('a'), 0);
    /* a quick one held on the other: one reply due on each session */
    assert_int_equal(submit_with("Getvar", "b", "Variable", "HELD", G('b')), 0);
    assert_int_not_equal(session_of('b'), 0);
    assert_int_not_equal(session_of('b'), session_of('a'));
    for (char t = 'c'; t <= 'f'; t++) { /* each in a turn of its own: no batch to join */
        char tag[2] = {t, 0};
        assert_int_equal(submit_tagged("Ping", tag, G(t)), 0);
        answered(tag);
        if (session_of(t) != session_of('b'))
            fail_msg("Ping %c went behind the slow action", t);
    }
    release_all("ab");
    assert_string_equal(G('a')->message, "held a");
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
    const struct CMUnitTest two[] = {
        cmocka_unit_test(one_turns_actions_go_together_and_never_behind_a_running_one),
        cmocka_unit_test(a_slow_action_shares_no_batch),
        cmocka_unit_test(a_quick_action_never_waits_behind_a_slow_one),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed + cmocka_run_group_tests_name("pool of two", two, setup2, teardown);
}
