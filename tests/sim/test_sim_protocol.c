/* test_sim_protocol: build/ami-sim over real sockets, byte by byte where it
 * matters: banner, logins, permissions, replies, event delivery, pipelining,
 * input limits, every fault knob, SimControl/SimStats, signals and --record.
 * Each test starts its own simulator; its exit code after SIGTERM must be 0
 * (under AMIBRIDGE_TEST_WRAPPER=valgrind that also means no memory errors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ami/message.h"
#include "support/amisim.h"
#include "support/net.h"
#include "support/testenv.h"

#define BANNER      "Asterisk Call Manager/11.0.0\r\n"
#define IO_MS       3000  /* generous timeout for a reply that should come */
#define QUIET_MS    300   /* how long "nothing arrives" is watched */
#define FAST        "0.1" /* --time-scale for tests with calls */
#define MAX_CLIENTS 6
#define MAX_ARGS    24

struct fx {
    struct amisim sim;
    int started;
    int expect_dead; /* the test stopped the simulator itself */
    struct net_client cl[MAX_CLIENTS];
    int ncl;
    char tmp[512];
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    *state = f;
    return 0;
}

/* Clients closed, simulator stopped; a non-zero exit (crash, valgrind error) fails the test. */
static int fx_teardown(void **state)
{
    struct fx *f = *state;
    int rc = 0;
    for (int i = 0; i < f->ncl; i++)
        net_close(&f->cl[i]);
    if (f->started) {
        int code = amisim_stop(&f->sim);
        if (!f->expect_dead && code != 0) {
            fprintf(stderr, "ami-sim exited with %d\n", code);
            rc = -1;
        }
    }
    if (f->tmp[0])
        testenv_rmdir(f->tmp);
    free(f);
    return rc;
}

/* Start the simulator with NULL-terminated extra arguments. */
static void fx_start(struct fx *f, ...)
{
    const char *args[MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start(ap, f);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < MAX_ARGS)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    assert_int_equal(amisim_start(&f->sim, args), 0);
    f->started = 1;
}

/* A raw client; the banner is still unread. */
static struct net_client *fx_connect(struct fx *f)
{
    assert_true(f->ncl < MAX_CLIENTS);
    struct net_client *c = &f->cl[f->ncl];
    assert_int_equal(net_connect(c, "127.0.0.1", f->sim.port, IO_MS), 0);
    f->ncl++;
    return c;
}

static struct net_client *fx_login(struct fx *f, const char *user, const char *secret,
                                   const char *events)
{
    struct net_client *c = fx_connect(f);
    assert_int_equal(net_login(c, user, secret, events, IO_MS), 0);
    return c;
}

/* Send an action and return its response (ActionID must be in `text`). */
static struct ami_msg *ask(struct net_client *c, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct ami_msg *ask(struct net_client *c, const char *id, const char *fmt, ...)
{
    struct strbuf sb;
    strbuf_init(&sb, 0);
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    assert_int_equal(net_send(c, sb.data, sb.len), 0);
    strbuf_release(&sb);
    struct ami_msg *r = NULL;
    assert_int_equal(net_wait_response(c, id, IO_MS, &r), 1);
    return r;
}

/* The keys, all of them, in this order. */
static void assert_keys(const struct ami_msg *m, const char *const keys[])
{
    size_t i = 0;
    for (; keys[i]; i++) {
        assert_true(i < ami_msg_count(m));
        assert_string_equal(ami_msg_key_at(m, i), keys[i]);
    }
    assert_int_equal(ami_msg_count(m), i);
}

static void assert_hdr(const struct ami_msg *m, const char *key, const char *value)
{
    const char *v = ami_msg_get(m, key);
    assert_non_null(v);
    assert_string_equal(v, value);
}

/* No message at all for `ms`. */
static void assert_quiet(struct net_client *c, int ms)
{
    struct ami_msg *m = NULL;
    int rc = net_read_msg(c, ms, &m);
    if (rc == 1)
        fail_msg("unexpected message: %s %s", ami_msg_kind_name(ami_msg_kind(m)), ami_msg_name(m));
}

/* One SimStats counter. */
static long stat_of(struct net_client *c, const char *key)
{
    struct ami_msg *r = ask(c, "stats", "Action: SimStats\r\nActionID: stats\r\n\r\n");
    const char *v = ami_msg_get(r, key);
    long x = v ? atol(v) : -1;
    ami_msg_free(r);
    return x;
}

static void md5_hex(const char *s, char out[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_Digest(s, strlen(s), d, &dl, EVP_md5(), NULL);
    for (unsigned int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Event names received until `last` shows up (or the timeout). */
static int collect_events(struct net_client *c, const char *last, int timeout_ms,
                          struct ami_msg **out, int max)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    int n = 0;
    while (n < max) {
        long long left = deadline - testenv_now_ms();
        struct ami_msg *m = NULL;
        if (left <= 0 || net_read_msg(c, (int)left, &m) != 1)
            break;
        out[n++] = m;
        if (ami_msg_kind(m) == AMI_MSG_EVENT && !strcmp(ami_msg_name(m), last))
            break;
    }
    return n;
}

static void free_msgs(struct ami_msg **v, int n)
{
    for (int i = 0; i < n; i++)
        ami_msg_free(v[i]);
}

/* ---- banner, login ------------------------------------------------------------ */

static void banner_is_exactly_one_line(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    c->keep_raw = 1;
    long long deadline = testenv_now_ms() + IO_MS;
    while (c->raw.len < strlen(BANNER) && testenv_now_ms() < deadline)
        net_pump(c, 100);
    /* nothing else until the client speaks */
    net_pump(c, QUIET_MS);
    assert_int_equal(c->raw.len, strlen(BANNER));
    assert_memory_equal(c->raw.data, BANNER, strlen(BANNER));
}

static void login_plain_events_on_gets_fullybooted_then_successfulauth(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    struct ami_msg *m = NULL;
    assert_int_equal(net_read_msg(c, IO_MS, &m), 1);
    assert_int_equal(ami_msg_kind(m), AMI_MSG_BANNER);
    ami_msg_free(m);
    net_sendf(c, "Action: Login\r\nActionID: login-1\r\nUsername: bridge\r\n"
                 "Secret: bridgesecret\r\n\r\n");
    struct ami_msg *v[3];
    assert_int_equal(net_read_msgs(c, 3, IO_MS, v), 3);
    static const char *const resp_keys[] = {"Response", "ActionID", "Message", NULL};
    assert_keys(v[0], resp_keys);
    assert_hdr(v[0], "Message", "Authentication accepted");
    static const char *const fb_keys[] = {"Event",      "Privilege", "Uptime",
                                          "LastReload", "Status",    NULL};
    assert_keys(v[1], fb_keys);
    assert_hdr(v[1], "Privilege", "system,all");
    static const char *const sa_keys[] = {
        "Event",         "Privilege", "EventTV",   "Severity",     "Service",
        "EventVersion",  "AccountID", "SessionID", "LocalAddress", "RemoteAddress",
        "UsingPassword", "SessionTV", NULL};
    assert_keys(v[2], sa_keys);
    assert_hdr(v[2], "AccountID", "bridge");
    assert_hdr(v[2], "Privilege", "security,all");
    free_msgs(v, 3);
    /* a viewer cannot read system or security: no events after its login */
    struct net_client *viewer = fx_connect(f);
    assert_int_equal(net_login(viewer, "viewer", "viewersecret", "on", IO_MS), 0);
    assert_quiet(viewer, QUIET_MS);
    /* ...but the bridge session sees the viewer's SuccessfulAuth */
    assert_int_equal(net_wait_event(c, "SuccessfulAuth", IO_MS, &m), 1);
    assert_hdr(m, "AccountID", "viewer");
    ami_msg_free(m);
}

static void login_md5_challenge(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    struct ami_msg *r =
        ask(c, "chal", "Action: Challenge\r\nActionID: chal\r\nAuthType: MD5\r\n\r\n");
    static const char *const keys[] = {"Response", "ActionID", "Challenge", NULL};
    assert_keys(r, keys);
    const char *chal = ami_msg_get(r, "Challenge");
    assert_true(strlen(chal) >= 1 && strlen(chal) <= 9);
    assert_true(strspn(chal, "0123456789") == strlen(chal));
    char buf[128], key[33];
    snprintf(buf, sizeof(buf), "%sbridgesecret", chal);
    md5_hex(buf, key);
    ami_msg_free(r);
    r = ask(c, "md5",
            "Action: Login\r\nActionID: md5\r\nAuthType: MD5\r\nUsername: bridge\r\n"
            "Key: %s\r\nEvents: off\r\n\r\n",
            key);
    assert_hdr(r, "Response", "Success");
    assert_hdr(r, "Message", "Authentication accepted");
    ami_msg_free(r);
    /* a wrong key on another session: error after the delay, then close */
    struct net_client *c2 = fx_connect(f);
    r = ask(c2, "chal2", "Action: Challenge\r\nActionID: chal2\r\nAuthType: MD5\r\n\r\n");
    snprintf(buf, sizeof(buf), "%swrong", ami_msg_get(r, "Challenge"));
    md5_hex(buf, key);
    ami_msg_free(r);
    r = ask(c2, "bad",
            "Action: Login\r\nActionID: bad\r\nAuthType: MD5\r\nUsername: bridge\r\n"
            "Key: %s\r\n\r\n",
            key);
    assert_hdr(r, "Message", "Authentication failed");
    ami_msg_free(r);
    assert_int_equal(net_read_until_close(c2, IO_MS), 0);
}

static void wrong_secret_is_answered_after_a_second_then_closed(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    double t = testenv_now();
    struct ami_msg *r = ask(c, "bad",
                            "Action: Login\r\nActionID: bad\r\nUsername: bridge\r\n"
                            "Secret: WRONG\r\n\r\nAction: Ping\r\nActionID: after\r\n\r\n");
    double waited = testenv_now() - t;
    static const char *const keys[] = {"Response", "ActionID", "Message", NULL};
    assert_keys(r, keys);
    assert_hdr(r, "Response", "Error");
    assert_hdr(r, "Message", "Authentication failed");
    ami_msg_free(r);
    assert_true(waited >= 0.8);
    assert_true(waited < 2.0);
    /* the pipelined Ping is never answered: the session is closed */
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
}

static void failed_login_delay_follows_time_scale(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    double t = testenv_now();
    struct ami_msg *r = ask(c, NULL, "Action: Login\r\nUsername: nosuchuser\r\nSecret: x\r\n\r\n");
    double waited = testenv_now() - t;
    assert_null(ami_msg_get(r, "ActionID"));
    assert_hdr(r, "Message", "Authentication failed");
    ami_msg_free(r);
    assert_true(waited >= 0.08);
    assert_true(waited < 0.6);
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
}

/* ---- replies and permissions --------------------------------------------------- */

static void ping_reply_shape(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *r = ask(c, "p1", "Action: Ping\r\nActionID: p1\r\n\r\n");
    static const char *const keys[] = {"Response", "ActionID", "Ping", "Timestamp", NULL};
    assert_keys(r, keys);
    assert_hdr(r, "Response", "Success");
    assert_hdr(r, "Ping", "Pong");
    const char *ts = ami_msg_get(r, "Timestamp");
    const char *dot = strchr(ts, '.');
    assert_non_null(dot);
    assert_int_equal(strlen(dot + 1), 6);
    ami_msg_free(r);
    r = ask(c, NULL, "Action: Ping\r\n\r\n");
    static const char *const keys2[] = {"Response", "Ping", "Timestamp", NULL};
    assert_keys(r, keys2);
    ami_msg_free(r);
}

static void permission_denied_before_login_and_for_viewer(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    struct ami_msg *r = ask(c, "pre", "Action: Ping\r\nActionID: pre\r\n\r\n");
    assert_hdr(r, "Response", "Error");
    assert_hdr(r, "Message", "Permission denied");
    ami_msg_free(r);
    r = ask(c, "pre2", "Action: NoSuchThing\r\nActionID: pre2\r\n\r\n");
    assert_hdr(r, "Message", "Permission denied");
    ami_msg_free(r);
    /* still open: Logoff works */
    r = ask(c, "bye", "Action: Logoff\r\nActionID: bye\r\n\r\n");
    assert_hdr(r, "Response", "Goodbye");
    assert_hdr(r, "Message", "Thanks for all the fish.");
    ami_msg_free(r);
    assert_int_equal(net_read_until_close(c, IO_MS), 0);

    struct net_client *v = fx_login(f, "viewer", "viewersecret", "off");
    static const char *const denied[] = {
        "Action: Originate\r\nActionID: x\r\nChannel: Local/100@demo\r\nContext: demo\r\n"
        "Exten: 100\r\nPriority: 1\r\n\r\n",
        "Action: Command\r\nActionID: x\r\nCommand: core show version\r\n\r\n",
        "Action: Hangup\r\nActionID: x\r\nChannel: Local/100@demo-00000000;1\r\n\r\n",
        "Action: Status\r\nActionID: x\r\n\r\n",
        "Action: SimControl\r\nActionID: x\r\nDelayMs: 5\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        r = ask(v, "x", "%s", denied[i]);
        assert_hdr(r, "Response", "Error");
        assert_hdr(r, "Message", "Permission denied");
        ami_msg_free(r);
    }
    r = ask(v, "q", "Action: QueueStatus\r\nActionID: q\r\n\r\n");
    assert_hdr(r, "Response", "Success");
    assert_hdr(r, "EventList", "start");
    ami_msg_free(r);
    struct ami_msg *done = NULL;
    assert_int_equal(net_wait_event(v, "QueueStatusComplete", IO_MS, &done), 1);
    assert_hdr(done, "ListItems", "5");
    ami_msg_free(done);
}

static void missing_and_unknown_actions(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *r = ask(c, "u", "Action: NoSuchAction\r\nActionID: u\r\n\r\n");
    assert_hdr(r, "Message",
               "Invalid/unknown command: NoSuchAction. Use Action: ListCommands to "
               "show available commands.");
    ami_msg_free(r);
    r = ask(c, "e", "Action: \r\nActionID: e\r\n\r\n");
    assert_hdr(r, "Message", "Missing action in request");
    ami_msg_free(r);
    r = ask(c, "n", "ActionID: n\r\nFoo: bar\r\n\r\n");
    assert_hdr(r, "Message", "Missing action in request");
    ami_msg_free(r);
    /* bare LF and header names in any case */
    r = ask(c, "lf-1", "action: pInG\nactionid: lf-1\n\n");
    assert_hdr(r, "Ping", "Pong");
    ami_msg_free(r);
}

static void users_file_sets_read_and_write_classes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(testenv_tmpdir(f->tmp, sizeof(f->tmp), "simusers"), 0);
    char path[700];
    snprintf(path, sizeof(path), "%s/users", f->tmp);
    FILE *uf = fopen(path, "w");
    assert_non_null(uf);
    fputs("# test users\nalice:pw:call:originate\n", uf);
    fclose(uf);
    fx_start(f, "--users", path, (const char *)NULL);
    struct net_client *bad = fx_connect(f);
    assert_int_equal(net_login(bad, "bridge", "bridgesecret", "off", IO_MS), -EACCES);
    struct net_client *c = fx_login(f, "alice", "pw", "off");
    struct ami_msg *r = ask(c, "cmd",
                            "Action: Command\r\nActionID: cmd\r\nCommand: core show "
                            "version\r\n\r\n");
    assert_hdr(r, "Message", "Permission denied");
    ami_msg_free(r);
    r = ask(c, "o",
            "Action: Originate\r\nActionID: o\r\nChannel: Local/150@demo\r\n"
            "Context: demo\r\nExten: 150\r\nPriority: 1\r\nAsync: true\r\n\r\n");
    assert_hdr(r, "Message", "Originate successfully queued");
    ami_msg_free(r);
}

/* ---- calls and events ------------------------------------------------------------- */

static void async_originate_events_reach_events_on_sessions_only(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *ev = fx_login(f, "bridge", "bridgesecret", "on");
    struct net_client *act = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *m = NULL;
    /* drop the events-on session's login events and the other login's */
    while (net_read_msg(ev, QUIET_MS, &m) == 1)
        ami_msg_free(m);
    struct ami_msg *r = ask(act, "async-1",
                            "Action: Originate\r\nActionID: async-1\r\n"
                            "Channel: Local/100@demo\r\nContext: demo\r\n"
                            "Exten: 100\r\nPriority: 1\r\nAsync: true\r\n\r\n");
    assert_hdr(r, "Message", "Originate successfully queued");
    ami_msg_free(r);
    static const char *const want[] = {"Newchannel",        "Newchannel",       "Newexten",
                                       "LocalBridge",       "DialBegin",        "Newexten",
                                       "Newexten",          "Newstate",         "DeviceStateChange",
                                       "OriginateResponse", "Newstate",         "DialEnd",
                                       "DeviceStateChange", "Newexten",         "Newexten",
                                       "Newexten",          "Newexten",         "SoftHangupRequest",
                                       "Newexten",          "HangupRequest",    "Hangup",
                                       "SoftHangupRequest", "Newexten",         "Hangup",
                                       "DeviceStateChange", "DeviceStateChange"};
    const size_t nwant = sizeof(want) / sizeof(want[0]);
    struct ami_msg *got[64];
    int n = 0;
    long long deadline = testenv_now_ms() + IO_MS;
    while ((size_t)n < nwant && n < 64) {
        long long left = deadline - testenv_now_ms();
        if (left <= 0 || net_read_msg(ev, (int)left, &got[n]) != 1)
            break;
        n++;
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(ami_msg_kind(got[i]), AMI_MSG_EVENT);
        if (strcmp(ami_msg_name(got[i]), want[i]))
            fail_msg("event %d is %s, expected %s", i, ami_msg_name(got[i]), want[i]);
    }
    assert_int_equal((size_t)n, nwant);
    const struct ami_msg *orr = got[9];
    assert_hdr(orr, "ActionID", "async-1");
    assert_hdr(orr, "Response", "Success");
    assert_hdr(orr, "Reason", "4");
    assert_hdr(orr, "Channel", "Local/100@demo-00000000;1");
    assert_hdr(got[0], "Channel", "Local/100@demo-00000000;1");
    assert_hdr(got[1], "Channel", "Local/100@demo-00000000;2");
    assert_hdr(got[20], "Cause-txt", "Normal Clearing");
    free_msgs(got, n);
    /* the originator logged in with events off: no OriginateResponse there */
    assert_quiet(act, QUIET_MS);
}

static void async_originate_failures_report_the_reason(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "call");
    static const struct {
        const char *chan;
        const char *timeout;
        const char *reason;
    } cases[] = {{"Local/300@demo", "10000", "5"},
                 {"Local/301@demo", "10000", "8"},
                 {"Local/302@demo", "2000", "3"},
                 {"Local/100@nosuchcontext", "10000", "0"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ami_msg *r = ask(c, "af",
                                "Action: Originate\r\nActionID: af\r\nChannel: %s\r\n"
                                "Context: demo\r\nExten: 100\r\nPriority: 1\r\n"
                                "Timeout: %s\r\nAsync: true\r\n\r\n",
                                cases[i].chan, cases[i].timeout);
        assert_hdr(r, "Message", "Originate successfully queued");
        ami_msg_free(r);
        struct ami_msg *e = NULL;
        assert_int_equal(net_wait_event(c, "OriginateResponse", IO_MS, &e), 1);
        static const char *const keys[] = {"Event",    "Privilege",   "ActionID",     "Response",
                                           "Channel",  "Context",     "Exten",        "Reason",
                                           "Uniqueid", "CallerIDNum", "CallerIDName", NULL};
        assert_keys(e, keys);
        assert_hdr(e, "Response", "Failure");
        assert_hdr(e, "Channel", cases[i].chan);
        assert_hdr(e, "Reason", cases[i].reason);
        assert_hdr(e, "Uniqueid", "<unknown>");
        ami_msg_free(e);
        /* let the failed call's hangup events pass */
        struct ami_msg *m = NULL;
        while (net_read_msg(c, QUIET_MS, &m) == 1)
            ami_msg_free(m);
    }
    assert_int_equal(stat_of(c, "OriginatesInFlight"), 0);
    assert_int_equal(stat_of(c, "LiveChannels"), 0);
}

static void sync_originate_blocks_the_session(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    double t = testenv_now();
    net_sendf(c, "Action: Originate\r\nActionID: o1\r\nChannel: Local/600@demo\r\nContext: demo\r\n"
                 "Exten: 100\r\nPriority: 1\r\n\r\nAction: Ping\r\nActionID: p1\r\n\r\n"
                 "Action: Ping\r\nActionID: p2\r\n\r\n");
    struct ami_msg *v[3];
    assert_int_equal(net_read_msgs(c, 3, IO_MS, v), 3);
    double took = testenv_now() - t;
    assert_hdr(v[0], "ActionID", "o1");
    assert_hdr(v[0], "Message", "Originate successfully queued");
    assert_hdr(v[1], "ActionID", "p1");
    assert_hdr(v[2], "ActionID", "p2");
    free_msgs(v, 3);
    assert_true(took >= 0.18); /* Local/600 rings 2 s, scaled by 0.1 */
    struct ami_msg *r = ask(c, "busy",
                            "Action: Originate\r\nActionID: busy\r\n"
                            "Channel: Local/300@demo\r\nContext: demo\r\nExten: 100\r\n"
                            "Priority: 1\r\n\r\n");
    static const char *const keys[] = {"Response", "ActionID", "Message", NULL};
    assert_keys(r, keys);
    assert_hdr(r, "Response", "Error");
    assert_hdr(r, "Message", "Originate failed");
    ami_msg_free(r);
}

static void status_lists_the_live_call(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *r = ask(c, "call",
                            "Action: Originate\r\nActionID: call\r\n"
                            "Channel: Local/200@demo\r\nContext: demo\r\nExten: 200\r\n"
                            "Priority: 1\r\nCallerID: \"Long Call\" <5553000>\r\n\r\n");
    assert_hdr(r, "Response", "Success");
    ami_msg_free(r);
    r = ask(c, "st", "Action: Status\r\nActionID: st\r\n\r\n");
    static const char *const start_keys[] = {"Response", "ActionID", "EventList", "Message", NULL};
    assert_keys(r, start_keys);
    assert_hdr(r, "Message", "Channel status will follow");
    ami_msg_free(r);
    struct ami_msg *v[3];
    assert_int_equal(net_read_msgs(c, 3, IO_MS, v), 3);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(ami_msg_name(v[i]), "Status");
        assert_hdr(v[i], "Privilege", "Call");
        assert_hdr(v[i], "CallerIDName", "Long Call");
        assert_string_equal(ami_msg_key_at(v[i], ami_msg_count(v[i]) - 1), "ActionID");
    }
    assert_hdr(v[0], "Channel", "Local/200@demo-00000000;1");
    assert_hdr(v[1], "Channel", "Local/200@demo-00000000;2");
    static const char *const done_keys[] = {"Event",     "ActionID", "EventList",
                                            "ListItems", "Items",    NULL};
    assert_keys(v[2], done_keys);
    assert_hdr(v[2], "ListItems", "2");
    free_msgs(v, 3);
    r = ask(c, "cmd", "Action: Command\r\nActionID: cmd\r\nCommand: core show channels\r\n\r\n");
    assert_int_equal(ami_msg_count_key(r, "Output"), 6);
    assert_string_equal(ami_msg_get_nth(r, "Output", 3), "2 active channels");
    ami_msg_free(r);
}

/* The 14 keys of a channel snapshot with a prefix, as
 * ast_manager_build_channel_state_string_prefix() prints them, appended to keys[*n]. */
static void chan_keys(const char **keys, int *n, const char *prefix, char store[][48])
{
    static const char *const base[] = {"Channel",           "ChannelState", "ChannelStateDesc",
                                       "CallerIDNum",       "CallerIDName", "ConnectedLineNum",
                                       "ConnectedLineName", "Language",     "AccountCode",
                                       "Context",           "Exten",        "Priority",
                                       "Uniqueid",          "Linkedid"};
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        snprintf(store[*n], 48, "%s%s", prefix, base[i]);
        keys[*n] = store[*n];
        (*n)++;
    }
}

static void drain(struct net_client *c)
{
    struct ami_msg *m = NULL;
    while (net_read_msg(c, QUIET_MS, &m) == 1)
        ami_msg_free(m);
}

/* action_blind_transfer(): its errors in manager.c's order, and a channel
 * in no bridge is AST_BRIDGE_TRANSFER_INVALID, with its BlindTransfer event. */
static void blind_transfer_errors_and_a_channel_in_no_bridge(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct net_client *ev = fx_login(f, "bridge", "bridgesecret", "call");
    drain(ev);
    static const char *const err_keys[] = {"Response", "ActionID", "Message", NULL};
    struct ami_msg *r = ask(c, "b1", "Action: BlindTransfer\r\nActionID: b1\r\nExten: 250\r\n\r\n");
    assert_keys(r, err_keys);
    assert_hdr(r, "Response", "Error");
    assert_hdr(r, "Message", "No channel specified");
    ami_msg_free(r);
    r = ask(c, "b2", "Action: BlindTransfer\r\nActionID: b2\r\nChannel: Local/1@demo-1;1\r\n\r\n");
    assert_hdr(r, "Message", "No extension specified");
    ami_msg_free(r);
    r = ask(c, "b3",
            "Action: BlindTransfer\r\nActionID: b3\r\nChannel: Local/nonexistent-0000;1\r\n"
            "Exten: 250\r\n\r\n");
    assert_hdr(r, "Message", "Channel specified does not exist");
    ami_msg_free(r);
    assert_quiet(ev, QUIET_MS);

    r = ask(c, "call",
            "Action: Originate\r\nActionID: call\r\nChannel: Local/200@demo\r\nContext: demo\r\n"
            "Exten: 200\r\nPriority: 1\r\n\r\n");
    assert_hdr(r, "Response", "Success");
    ami_msg_free(r);
    drain(ev);
    /* no Context: the channel's own */
    r = ask(c, "b4",
            "Action: BlindTransfer\r\nActionID: b4\r\nChannel: Local/200@demo-00000000;1\r\n"
            "Exten: 250\r\n\r\n");
    assert_keys(r, err_keys);
    assert_hdr(r, "Message", "Transfer invalid");
    ami_msg_free(r);
    struct ami_msg *e = NULL;
    assert_int_equal(net_wait_event(ev, "BlindTransfer", IO_MS, &e), 1);
    const char *keys[40];
    char store[40][48];
    int n = 0;
    keys[n++] = "Event";
    keys[n++] = "Privilege";
    keys[n++] = "Result";
    chan_keys(keys, &n, "Transferer", store);
    keys[n++] = "IsExternal";
    keys[n++] = "Context";
    keys[n++] = "Extension";
    keys[n] = NULL;
    assert_keys(e, keys);
    assert_hdr(e, "Privilege", "call,all");
    assert_hdr(e, "Result", "Invalid");
    assert_hdr(e, "TransfererChannel", "Local/200@demo-00000000;1");
    assert_hdr(e, "IsExternal", "Yes");
    assert_hdr(e, "Context", "demo");
    assert_hdr(e, "Extension", "250");
    ami_msg_free(e);
    /* nothing moved */
    assert_quiet(ev, QUIET_MS);
}

/* ast_bridge_transfer_blind() in a two-party bridge, in the order of 10a2: the member's leg
 * of a queue call transfers the caller, who leaves the queue call for demo/250 by an async
 * goto. */
static void blind_transfer_sends_the_bridged_peer_to_the_extension(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct net_client *ev = fx_login(f, "bridge", "bridgesecret", "on");
    drain(ev);
    /* Agent200 (Local/200@demo) answers at once; Agent201 rings 2 s */
    struct ami_msg *r = ask(c, "q",
                            "Action: Originate\r\nActionID: q\r\nChannel: Local/400@demo\r\n"
                            "Application: Wait\r\nData: 30\r\nAsync: true\r\n\r\n");
    ami_msg_free(r);
    struct ami_msg *e = NULL;
    assert_int_equal(net_wait_event(ev, "AgentConnect", IO_MS, &e), 1);
    char agent[128], caller[128];
    snprintf(agent, sizeof(agent), "%s", ami_msg_get(e, "DestChannel"));
    snprintf(caller, sizeof(caller), "%s", ami_msg_get(e, "Channel"));
    ami_msg_free(e);
    assert_int_equal(strncmp(agent, "Local/200@demo-", 15), 0);
    assert_int_equal(strncmp(caller, "Local/400@demo-", 15), 0);
    assert_int_equal(net_wait_event(ev, "BridgeEnter", IO_MS, &e), 1);
    ami_msg_free(e);
    assert_int_equal(net_wait_event(ev, "BridgeEnter", IO_MS, &e), 1);
    char bridge[64];
    snprintf(bridge, sizeof(bridge), "%s", ami_msg_get(e, "BridgeUniqueid"));
    ami_msg_free(e);
    drain(ev);

    r = ask(c, "bt",
            "Action: BlindTransfer\r\nActionID: bt\r\nChannel: %s\r\nContext: demo\r\n"
            "Exten: 250\r\n\r\n",
            agent);
    static const char *const ok_keys[] = {"Response", "ActionID", "Message", NULL};
    assert_keys(r, ok_keys);
    assert_hdr(r, "Response", "Success");
    assert_hdr(r, "Message", "Transfer succeeded");
    ami_msg_free(r);

    /* everything up to the caller's first step in demo/250 */
    struct ami_msg *got[128];
    int n = 0;
    long long deadline = testenv_now_ms() + IO_MS;
    while (n < 128) {
        long long left = deadline - testenv_now_ms();
        if (left <= 0 || net_read_msg(ev, (int)left, &got[n]) != 1)
            break;
        const struct ami_msg *m = got[n++];
        if (!strcmp(ami_msg_name(m), "Newexten") && ami_msg_is(m, "Channel", caller) &&
            ami_msg_is(m, "Exten", "250") && ami_msg_is(m, "Application", "Answer"))
            break;
    }
    assert_true(n >= 7);
    /* the transferer comes off hold; set_transfer_variables_all(): the transferer gets its
     * peer's name, the peer the transferer's; the transferer's BRIDGEPEER goes */
    assert_string_equal(ami_msg_name(got[0]), "Unhold");
    assert_hdr(got[0], "Channel", agent);
    assert_string_equal(ami_msg_name(got[1]), "VarSet");
    assert_hdr(got[1], "Channel", agent);
    assert_hdr(got[1], "Variable", "BLINDTRANSFER");
    assert_hdr(got[1], "Value", caller);
    assert_string_equal(ami_msg_name(got[2]), "VarSet");
    assert_hdr(got[2], "Channel", caller);
    assert_hdr(got[2], "Value", agent);
    assert_string_equal(ami_msg_name(got[3]), "VarSet");
    assert_hdr(got[3], "Channel", agent);
    assert_hdr(got[3], "Variable", "BRIDGEPEER");
    assert_hdr(got[3], "Value", "");
    const struct ami_msg *bt = got[4];
    assert_string_equal(ami_msg_name(bt), "BlindTransfer");
    const char *keys[60];
    char store[60][48];
    int k = 0;
    keys[k++] = "Event";
    keys[k++] = "Privilege";
    keys[k++] = "Result";
    chan_keys(keys, &k, "Transferer", store);
    chan_keys(keys, &k, "Transferee", store);
    static const char *const bkeys[] = {
        "BridgeUniqueid", "BridgeType",        "BridgeTechnology",      "BridgeCreator",
        "BridgeName",     "BridgeNumChannels", "BridgeVideoSourceMode", "IsExternal",
        "Context",        "Extension"};
    for (size_t i = 0; i < sizeof(bkeys) / sizeof(bkeys[0]); i++)
        keys[k++] = bkeys[i];
    keys[k] = NULL;
    assert_keys(bt, keys);
    assert_hdr(bt, "Result", "Success");
    assert_hdr(bt, "TransfererChannel", agent);
    assert_hdr(bt, "TransfereeChannel", caller);
    assert_hdr(bt, "BridgeUniqueid", bridge);
    assert_hdr(bt, "BridgeNumChannels", "2");
    assert_hdr(bt, "Context", "demo");
    assert_hdr(bt, "Extension", "250");
    /* the caller's snapshot shows demo/250 at once, still in Queue() (the first priority then
     * publishes nothing new); it leaves the bridge and the queue call (reason transfer) and the
     * member's leg, alone, leaves and hangs up */
    int moved = 0, left = 0, complete = 0;
    for (int i = 5; i < n; i++) {
        const char *name = ami_msg_name(got[i]);
        if (!strcmp(name, "Newexten") && ami_msg_is(got[i], "Channel", caller) &&
            ami_msg_is(got[i], "Exten", "250")) {
            if (!moved) {
                assert_hdr(got[i], "Priority", "1");
                assert_hdr(got[i], "Application", "Queue");
                assert_false(left);
            }
            moved = 1;
        }
        if (!strcmp(name, "BridgeLeave") && !strcmp(ami_msg_get(got[i], "Channel"), caller))
            left = 1;
        if (!strcmp(name, "AgentComplete")) {
            assert_hdr(got[i], "Reason", "transfer");
            complete = 1;
        }
    }
    assert_true(moved && left && complete);
    assert_hdr(got[n - 1], "Priority", "2");
    free_msgs(got, n);
    /* then the member's leg, alone, leaves and the bridge goes */
    assert_int_equal(net_wait_event(ev, "BridgeDestroy", IO_MS, &e), 1);
    ami_msg_free(e);
    /* the member's leg hung up */
    r = ask(c, "csc", "Action: CoreShowChannels\r\nActionID: csc\r\n\r\n");
    ami_msg_free(r);
    struct ami_msg *items[8];
    int ni = collect_events(c, "CoreShowChannelsComplete", IO_MS, items, 8);
    for (int i = 0; i < ni - 1; i++)
        assert_int_equal(strncmp(ami_msg_get(items[i], "Channel"), "Local/200@demo-", 15) != 0, 1);
    free_msgs(items, ni);
}

/* manager_queues_status(): a caller waiting in the queue is a QueueEntry,
 * with "unknown" (no brackets) for a caller id it does not have. */
static void queue_status_lists_waiting_callers(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    for (int i = 200; i <= 201; i++) {
        struct ami_msg *r = ask(c, "p",
                                "Action: QueuePause\r\nActionID: p\r\nQueue: sales\r\n"
                                "Interface: Local/%d@demo\r\nPaused: true\r\n\r\n",
                                i);
        assert_hdr(r, "Response", "Success");
        ami_msg_free(r);
    }
    struct ami_msg *r = ask(c, "q",
                            "Action: Originate\r\nActionID: q\r\nChannel: Local/400@demo\r\n"
                            "Application: Wait\r\nData: 30\r\nAsync: true\r\n\r\n");
    ami_msg_free(r);
    struct ami_msg *v[8];
    int n = 0;
    for (int tries = 0; tries < 40; tries++) {
        r = ask(c, "qs", "Action: QueueStatus\r\nActionID: qs\r\nQueue: sales\r\n\r\n");
        ami_msg_free(r);
        n = collect_events(c, "QueueStatusComplete", IO_MS, v, 8);
        if (n == 5)
            break;
        free_msgs(v, n);
        n = 0;
        testenv_sleep_ms(50);
    }
    assert_int_equal(n, 5);
    static const char *const keys[] = {"Event",
                                       "Queue",
                                       "Position",
                                       "Channel",
                                       "Uniqueid",
                                       "CallerIDNum",
                                       "CallerIDName",
                                       "ConnectedLineNum",
                                       "ConnectedLineName",
                                       "Wait",
                                       "Priority",
                                       "ActionID",
                                       NULL};
    assert_keys(v[3], keys);
    assert_hdr(v[3], "Queue", "sales");
    assert_hdr(v[3], "Position", "1");
    assert_hdr(v[3], "Channel", "Local/400@demo-00000000;2");
    assert_hdr(v[3], "CallerIDNum", "unknown");
    assert_hdr(v[3], "CallerIDName", "unknown");
    assert_hdr(v[3], "Priority", "0");
    assert_hdr(v[4], "ListItems", "4");
    free_msgs(v, n);
}

static void pipelined_actions_answer_in_order(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct strbuf sb;
    strbuf_init(&sb, 0);
    for (int i = 0; i < 50; i++) {
        if (i == 20)
            strbuf_printf(&sb, "Action: CoreStatus\r\nActionID: x%d\r\n\r\n", i);
        else if (i == 30)
            strbuf_printf(
                &sb, "Action: Command\r\nActionID: x%d\r\nCommand: core show uptime\r\n\r\n", i);
        else
            strbuf_printf(&sb, "Action: Ping\r\nActionID: x%d\r\n\r\n", i);
    }
    assert_int_equal(net_send(c, sb.data, sb.len), 0);
    strbuf_release(&sb);
    for (int i = 0; i < 50; i++) {
        struct ami_msg *m = NULL;
        assert_int_equal(net_read_msg(c, IO_MS, &m), 1);
        char id[16];
        snprintf(id, sizeof(id), "x%d", i);
        assert_hdr(m, "ActionID", id);
        ami_msg_free(m);
    }
}

static void long_lines_and_extra_headers_follow_manager_limits(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    /* a 1025-byte line: the action is refused as manager.c does it, with the
     * ActionID that was kept */
    char pad[1100];
    memset(pad, 'a', sizeof(pad));
    struct ami_msg *e =
        ask(c, "long", "Action: Ping\r\nActionID: long\r\nX-Pad: %.*s\r\n\r\n", 1018, pad);
    assert_hdr(e, "Response", "Error");
    assert_hdr(e, "Message", "Failed to parse message: line too long");
    assert_null(ami_msg_get(e, "Ping"));
    ami_msg_free(e);
    /* a line just under the limit is fine */
    struct ami_msg *r =
        ask(c, "ok", "Action: Ping\r\nActionID: ok\r\nX-Pad: %.*s\r\n\r\n", 900, pad);
    assert_hdr(r, "Ping", "Pong");
    ami_msg_free(r);
    /* more than 128 lines: refused; the 129th line (the ActionID) is not kept */
    struct strbuf sb;
    strbuf_init(&sb, 0);
    strbuf_append_str(&sb, "Action: Ping\r\n");
    for (int i = 0; i < 127; i++)
        strbuf_printf(&sb, "X-H%d: v\r\n", i);
    strbuf_append_str(&sb, "ActionID: late\r\n\r\nAction: Ping\r\nActionID: next\r\n\r\n");
    assert_int_equal(net_send(c, sb.data, sb.len), 0);
    strbuf_release(&sb);
    struct ami_msg *v[2];
    assert_int_equal(net_read_msgs(c, 2, IO_MS, v), 2);
    assert_null(ami_msg_get(v[0], "ActionID"));
    assert_hdr(v[0], "Response", "Error");
    assert_hdr(v[0], "Message", "Too many lines in message or allocation failure");
    assert_hdr(v[1], "ActionID", "next");
    free_msgs(v, 2);
}

static void events_mask_filter_and_userevent(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *r = ask(c, "ev", "Action: Events\r\nActionID: ev\r\nEventMask: user\r\n\r\n");
    static const char *const keys[] = {"Response", "ActionID", "Events", NULL};
    assert_keys(r, keys);
    assert_hdr(r, "Events", "On");
    ami_msg_free(r);
    r = ask(c, "flt",
            "Action: Filter\r\nActionID: flt\r\nOperation: Add\r\n"
            "Filter: !UserEvent: skip\r\n\r\n");
    assert_hdr(r, "Message", "Success");
    ami_msg_free(r);
    r = ask(c, "u1", "Action: UserEvent\r\nActionID: u1\r\nUserEvent: skip\r\nA: 1\r\n\r\n");
    assert_hdr(r, "Message", "Event Sent");
    ami_msg_free(r);
    r = ask(c, "u2", "Action: UserEvent\r\nActionID: u2\r\nUserEvent: keep\r\nFoo: bar\r\n\r\n");
    ami_msg_free(r);
    struct ami_msg *e = NULL;
    assert_int_equal(net_read_msg(c, IO_MS, &e), 1);
    static const char *const ukeys[] = {"Event", "Privilege", "UserEvent", "Foo", NULL};
    assert_keys(e, ukeys);
    assert_hdr(e, "UserEvent", "keep");
    assert_hdr(e, "Privilege", "user,all");
    ami_msg_free(e);
    r = ask(c, "off", "Action: Events\r\nActionID: off\r\nEventMask: off\r\n\r\n");
    assert_hdr(r, "Events", "Off");
    ami_msg_free(r);
    r = ask(c, "u3", "Action: UserEvent\r\nActionID: u3\r\nUserEvent: keep\r\n\r\n");
    ami_msg_free(r);
    assert_quiet(c, QUIET_MS);
    r = ask(c, "bad", "Action: Events\r\nActionID: bad\r\n\r\n");
    assert_hdr(r, "Response", "Error");
    assert_hdr(r, "Message", "Invalid event mask");
    ami_msg_free(r);
}

/* ---- fault knobs ------------------------------------------------------------------------ */

static void drop_after_closes_after_n_messages(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--drop-after", "3", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off"); /* message 1 */
    net_sendf(c, "Action: Ping\r\nActionID: a\r\n\r\nAction: Ping\r\nActionID: b\r\n\r\n"
                 "Action: Ping\r\nActionID: c\r\n\r\n");
    struct ami_msg *v[3];
    size_t n = net_read_msgs(c, 3, IO_MS, v);
    assert_int_equal(n, 2);
    assert_hdr(v[0], "ActionID", "a");
    assert_hdr(v[1], "ActionID", "b");
    free_msgs(v, n);
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
}

static void delay_ms_delays_every_reply_in_order(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--delay-ms", "150", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    double t = testenv_now();
    net_sendf(c, "Action: Ping\r\nActionID: a\r\n\r\nAction: Ping\r\nActionID: b\r\n\r\n"
                 "Action: Ping\r\nActionID: c\r\n\r\n");
    struct ami_msg *m = NULL;
    assert_int_equal(net_read_msg(c, IO_MS, &m), 1);
    assert_true(testenv_now() - t >= 0.13);
    assert_hdr(m, "ActionID", "a");
    ami_msg_free(m);
    assert_int_equal(net_read_msg(c, IO_MS, &m), 1);
    assert_hdr(m, "ActionID", "b");
    ami_msg_free(m);
    assert_int_equal(net_read_msg(c, IO_MS, &m), 1);
    assert_hdr(m, "ActionID", "c");
    ami_msg_free(m);
    assert_true(testenv_now() - t >= 0.42);
}

static void garbage_after_sends_non_ami_bytes(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--garbage-after", "2", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    c->keep_raw = 1;
    net_sendf(c, "Action: Ping\r\nActionID: g\r\n\r\n");
    long long deadline = testenv_now_ms() + IO_MS;
    while (testenv_now_ms() < deadline && net_pump(c, 100) >= 0)
        if (c->raw.len > 70000)
            break;
    assert_true(c->raw.len > 70000);
    const char *ping = memmem(c->raw.data, c->raw.len, "ActionID: g\r\n", 13);
    const char *junk = memmem(c->raw.data, c->raw.len, "this line has no colon\r\n", 24);
    assert_non_null(ping);
    assert_non_null(junk);
    assert_true(junk > ping);
    assert_non_null(memchr(junk, '\0', c->raw.len - (size_t)(junk - c->raw.data)));
    /* the project's parser refuses it */
    struct ami_msg *m = NULL;
    while (net_next(c, &m))
        ami_msg_free(m);
    assert_true(c->error);
}

static void stall_read_after_stops_reading(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--stall-read-after", "2", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");        /* action 1 */
    struct ami_msg *r = ask(c, "one", "Action: Ping\r\nActionID: one\r\n\r\n"); /* action 2 */
    ami_msg_free(r);
    net_sendf(c, "Action: Ping\r\nActionID: two\r\n\r\n");
    assert_quiet(c, QUIET_MS);
    /* our writes back up: the kernel buffers fill and send() would block */
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    static char chunk[65536];
    memset(chunk, 'x', sizeof(chunk));
    size_t sent = 0;
    int blocked = 0;
    for (int i = 0; i < 2000 && !blocked; i++) {
        ssize_t n = send(c->fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            testenv_sleep_ms(20);
            n = send(c->fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
            blocked = n < 0 && errno == EAGAIN;
        } else if (n > 0) {
            sent += (size_t)n;
        }
    }
    assert_true(blocked);
    assert_true(sent < 64u * 1024 * 1024);
    /* the simulator itself is fine */
    struct net_client *other = fx_login(f, "bridge", "bridgesecret", "off");
    assert_int_equal(stat_of(other, "ConnectionsNow"), 2);
}

static void flood_emits_gap_free_sequence(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "on");
    struct net_client *off = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *m = NULL;
    while (net_read_msg(c, QUIET_MS, &m) == 1)
        ami_msg_free(m);
    double t = testenv_now();
    struct ami_msg *r = ask(off, "fl",
                            "Action: SimControl\r\nActionID: fl\r\nFlood: 2000\r\n"
                            "FloodCount: 500\r\n\r\n");
    assert_hdr(r, "Response", "Success");
    ami_msg_free(r);
    long expect = 1;
    while (expect <= 500) {
        assert_int_equal(net_read_msg(c, IO_MS, &m), 1);
        static const char *const keys[] = {"Event", "Privilege", "Timestamp", "Seq", NULL};
        assert_keys(m, keys);
        assert_hdr(m, "Event", "SimFlood");
        assert_hdr(m, "Privilege", "user,all");
        /* the wall clock at sending, as timestampevents=yes writes it */
        double ts = strtod(ami_msg_get(m, "Timestamp"), NULL);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        assert_true(fabs((double)now.tv_sec - ts) < 5.0);
        assert_int_equal(atol(ami_msg_get(m, "Seq")), expect);
        ami_msg_free(m);
        expect++;
    }
    assert_true(testenv_now() - t >= 0.2); /* 500 at 2000/s take 0.25 s */
    assert_quiet(c, QUIET_MS);             /* FloodCount reached */
    assert_quiet(off, 50);                 /* events off: nothing */
}

static void flood_from_the_command_line(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--flood", "100", "--flood-count", "100", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "user");
    long prev = 0;
    struct ami_msg *m = NULL;
    while (net_read_msg(c, 600, &m) == 1) {
        if (!strcmp(ami_msg_name(m), "SimFlood")) {
            long seq = atol(ami_msg_get(m, "Seq"));
            if (prev)
                assert_int_equal(seq, prev + 1);
            prev = seq;
        }
        ami_msg_free(m);
    }
    assert_int_equal(prev, 100);
}

static void restart_sends_shutdown_closes_and_listens_again(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", FAST, "--restart-down-ms", "500", (const char *)NULL);
    struct net_client *on = fx_login(f, "bridge", "bridgesecret", "on");
    struct net_client *off = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *r = ask(off, "call",
                            "Action: Originate\r\nActionID: call\r\n"
                            "Channel: Local/200@demo\r\nContext: demo\r\nExten: 200\r\n"
                            "Priority: 1\r\n\r\n");
    ami_msg_free(r);
    struct ami_msg *m = NULL;
    while (net_read_msg(on, QUIET_MS, &m) == 1)
        ami_msg_free(m);
    double t = testenv_now();
    r = ask(off, "rs", "Action: SimControl\r\nActionID: rs\r\nRestart: now\r\n\r\n");
    assert_hdr(r, "Message", "SimControl applied");
    ami_msg_free(r);
    struct ami_msg *v[32];
    int n = collect_events(on, "Shutdown", IO_MS, v, 32);
    assert_true(n >= 2);
    int hangups = 0;
    for (int i = 0; i < n; i++)
        hangups += !strcmp(ami_msg_name(v[i]), "Hangup");
    assert_int_equal(hangups, 2);
    assert_string_equal(ami_msg_name(v[n - 1]), "Shutdown");
    static const char *const keys[] = {"Event", "Privilege", "Shutdown", "Restart", NULL};
    assert_keys(v[n - 1], keys);
    assert_hdr(v[n - 1], "Privilege", "system,all");
    assert_hdr(v[n - 1], "Shutdown", "Cleanly");
    assert_hdr(v[n - 1], "Restart", "True");
    free_msgs(v, n);
    assert_int_equal(net_read_until_close(on, IO_MS), 0);
    /* the events-off session gets no Shutdown, just the close */
    assert_int_equal(net_read_msg(off, IO_MS, &m), -1);
    assert_true(off->eof);
    assert_int_equal(amisim_wait_banner(f->sim.port, 5000), 0);
    assert_true(testenv_now() - t >= 0.45);
    struct net_client *again = fx_login(f, "bridge", "bridgesecret", "off");
    assert_int_equal(stat_of(again, "Restarts"), 1);
    assert_int_equal(stat_of(again, "LiveChannels"), 0);
}

static void sigusr1_restarts_and_restart_after_knob(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--restart-after", "0.5", "--restart-down-ms", "300", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "system");
    struct ami_msg *m = NULL;
    assert_int_equal(net_wait_event(c, "Shutdown", IO_MS, &m), 1);
    assert_hdr(m, "Restart", "True");
    ami_msg_free(m);
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
    assert_int_equal(amisim_wait_banner(f->sim.port, 5000), 0);
    c = fx_login(f, "bridge", "bridgesecret", "system");
    assert_int_equal(proc_signal(&f->sim.proc, SIGUSR1), 0);
    assert_int_equal(net_wait_event(c, "Shutdown", IO_MS, &m), 1);
    ami_msg_free(m);
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
    assert_int_equal(amisim_wait_banner(f->sim.port, 5000), 0);
    c = fx_login(f, "bridge", "bridgesecret", "off");
    assert_int_equal(stat_of(c, "Restarts"), 2);
}

static void sigterm_stops_gracefully(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "on");
    struct net_client *v = fx_login(f, "viewer", "viewersecret", "on");
    struct ami_msg *m = NULL;
    while (net_read_msg(c, QUIET_MS, &m) == 1)
        ami_msg_free(m);
    assert_int_equal(proc_signal(&f->sim.proc, SIGTERM), 0);
    assert_int_equal(net_wait_event(c, "Shutdown", IO_MS, &m), 1);
    assert_hdr(m, "Shutdown", "Cleanly");
    assert_hdr(m, "Restart", "False");
    ami_msg_free(m);
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
    /* the viewer cannot read system events: only the close */
    assert_int_equal(net_read_msg(v, IO_MS, &m), -1);
    assert_int_equal(proc_wait(&f->sim.proc, 10000), 1);
    assert_int_equal(proc_exit_code(&f->sim.proc), 0);
    f->expect_dead = 1;
}

/* ---- SimControl, SimStats, --record, auth limits --------------------------------------- */

static void simcontrol_changes_knobs_at_runtime(void **state)
{
    struct fx *f = *state;
    fx_start(f, (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct ami_msg *r =
        ask(c, "bad", "Action: SimControl\r\nActionID: bad\r\nNoSuchKnob: 1\r\n\r\n");
    assert_hdr(r, "Response", "Error");
    assert_hdr(r, "Message", "Unknown SimControl key: NoSuchKnob");
    ami_msg_free(r);
    r = ask(c, "rl",
            "Action: SimControl\r\nActionID: rl\r\nRejectLogins: true\r\nDropAfter: 2\r\n\r\n");
    assert_hdr(r, "Response", "Success");
    ami_msg_free(r);
    struct net_client *x = fx_connect(f);
    assert_int_equal(net_login(x, "bridge", "bridgesecret", "off", IO_MS), -EACCES);
    r = ask(c, "ok", "Action: SimControl\r\nActionID: ok\r\nRejectLogins: false\r\n\r\n");
    ami_msg_free(r);
    /* DropAfter applies to connections accepted after the change */
    struct net_client *y = fx_login(f, "bridge", "bridgesecret", "off");
    net_sendf(y, "Action: Ping\r\nActionID: y1\r\n\r\nAction: Ping\r\nActionID: y2\r\n\r\n");
    assert_int_equal(net_wait_response(y, "y1", IO_MS, &r), 1);
    ami_msg_free(r);
    assert_int_equal(net_read_until_close(y, IO_MS), 0);
    /* the controlling session itself is untouched */
    r = ask(c, "d", "Action: SimControl\r\nActionID: d\r\nDelayMs: 100\r\nDropAfter: 0\r\n\r\n");
    ami_msg_free(r);
    double t = testenv_now();
    r = ask(c, "late", "Action: Ping\r\nActionID: late\r\n\r\n");
    ami_msg_free(r);
    assert_true(testenv_now() - t >= 0.09);
}

static void simstats_counts(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--time-scale", "0.5", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct net_client *bad = fx_connect(f);
    assert_int_equal(net_login(bad, "bridge", "nope", "off", IO_MS), -EACCES);
    for (int i = 0; i < 3; i++) {
        struct ami_msg *r = ask(c, "p", "Action: Ping\r\nActionID: p\r\n\r\n");
        ami_msg_free(r);
    }
    /* four rings at once: Local/600 answers after 1 s at this scale */
    for (int i = 0; i < 4; i++) {
        struct ami_msg *r = ask(c, "o",
                                "Action: Originate\r\nActionID: o\r\n"
                                "Channel: Local/600@demo\r\nContext: demo\r\nExten: 150\r\n"
                                "Priority: 1\r\nAsync: true\r\n\r\n");
        ami_msg_free(r);
    }
    assert_int_equal(stat_of(c, "OriginatesInFlight"), 4);
    assert_int_equal(stat_of(c, "LiveChannels"), 8);
    testenv_sleep_ms(1500);
    struct ami_msg *r = ask(c, "s", "Action: SimStats\r\nActionID: s\r\n\r\n");
    assert_hdr(r, "LoginsOk", "1");
    assert_hdr(r, "LoginsFailed", "1");
    assert_hdr(r, "OriginatesTotal", "4");
    assert_hdr(r, "OriginatesInFlight", "0");
    assert_hdr(r, "OriginatesInFlightMax", "4");
    assert_hdr(r, "Action-Ping", "3");
    assert_hdr(r, "Action-Originate", "4");
    assert_hdr(r, "Action-SimStats", "3");
    assert_hdr(r, "ConnectionsNow", "1");
    assert_hdr(r, "ConnectionsTotal", "2");
    assert_true(atol(ami_msg_get(r, "ProcessedCalls")) >= 8);
    ami_msg_free(r);
}

static void record_file_has_every_byte_received(void **state)
{
    struct fx *f = *state;
    assert_int_equal(testenv_tmpdir(f->tmp, sizeof(f->tmp), "simrec"), 0);
    char path[700];
    snprintf(path, sizeof(path), "%s/rec", f->tmp);
    fx_start(f, "--record", path, (const char *)NULL);
    struct net_client *c = fx_connect(f);
    const char login[] = "Action: Login\r\nUsername: bridge\r\nSecret: bridgesecret\r\n"
                         "Events: off\r\n\r\n";
    const char ping[] = "Action: Ping\r\nActionID: r\r\n\r\n\x01junk\n";
    net_send(c, login, strlen(login));
    struct ami_msg *r = NULL;
    assert_int_equal(net_wait_response(c, NULL, IO_MS, &r), 1);
    ami_msg_free(r);
    net_send(c, ping, strlen(ping));
    assert_int_equal(net_wait_response(c, "r", IO_MS, &r), 1);
    ami_msg_free(r);
    FILE *rf = fopen(path, "rb");
    assert_non_null(rf);
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf), rf);
    fclose(rf);
    assert_int_equal(n, strlen(login) + strlen(ping));
    assert_memory_equal(buf, login, strlen(login));
    assert_memory_equal(buf + strlen(login), ping, strlen(ping));
}

static void unauthenticated_sessions_time_out(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--auth-timeout-ms", "300", (const char *)NULL);
    struct net_client *c = fx_connect(f);
    double t = testenv_now();
    assert_int_equal(net_read_until_close(c, IO_MS), 0);
    assert_true(testenv_now() - t >= 0.25);
    struct net_client *ok = fx_login(f, "bridge", "bridgesecret", "off");
    testenv_sleep_ms(1500);
    struct ami_msg *r = ask(ok, "alive", "Action: Ping\r\nActionID: alive\r\n\r\n");
    ami_msg_free(r);
}

static void peer_gone_mid_replies_costs_only_that_session(void **state)
{
    struct fx *f = *state;
    fx_start(f, "--delay-ms", "20", (const char *)NULL);
    struct net_client *c = fx_login(f, "bridge", "bridgesecret", "off");
    struct strbuf sb;
    strbuf_init(&sb, 0);
    for (int i = 0; i < 50; i++)
        strbuf_printf(&sb, "Action: Ping\r\nActionID: r%d\r\n\r\n", i);
    assert_int_equal(net_send(c, sb.data, sb.len), 0);
    strbuf_release(&sb);
    /* a plain close with nothing unread: the simulator sees EOF with 50
     * actions still queued, keeps answering, and the peer's RST follows */
    close(c->fd);
    c->fd = -1;
    testenv_sleep_ms(500);
    struct net_client *other = fx_login(f, "bridge", "bridgesecret", "off");
    assert_int_equal(stat_of(other, "ConnectionsNow"), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(banner_is_exactly_one_line),
        T(login_plain_events_on_gets_fullybooted_then_successfulauth),
        T(login_md5_challenge),
        T(wrong_secret_is_answered_after_a_second_then_closed),
        T(failed_login_delay_follows_time_scale),
        T(ping_reply_shape),
        T(permission_denied_before_login_and_for_viewer),
        T(missing_and_unknown_actions),
        T(users_file_sets_read_and_write_classes),
        T(async_originate_events_reach_events_on_sessions_only),
        T(async_originate_failures_report_the_reason),
        T(sync_originate_blocks_the_session),
        T(status_lists_the_live_call),
        T(blind_transfer_errors_and_a_channel_in_no_bridge),
        T(blind_transfer_sends_the_bridged_peer_to_the_extension),
        T(queue_status_lists_waiting_callers),
        T(pipelined_actions_answer_in_order),
        T(long_lines_and_extra_headers_follow_manager_limits),
        T(events_mask_filter_and_userevent),
        T(drop_after_closes_after_n_messages),
        T(delay_ms_delays_every_reply_in_order),
        T(garbage_after_sends_non_ami_bytes),
        T(stall_read_after_stops_reading),
        T(flood_emits_gap_free_sequence),
        T(flood_from_the_command_line),
        T(restart_sends_shutdown_closes_and_listens_again),
        T(sigusr1_restarts_and_restart_after_knob),
        T(sigterm_stops_gracefully),
        T(simcontrol_changes_knobs_at_runtime),
        T(simstats_counts),
        T(record_file_has_every_byte_received),
        T(unauthenticated_sessions_time_out),
        T(peer_gone_mid_replies_costs_only_that_session),
    };
    return cmocka_run_group_tests_name("sim_protocol", tests, NULL, NULL);
}
