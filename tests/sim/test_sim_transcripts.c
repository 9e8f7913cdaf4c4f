/* test_sim_transcripts: replay every AMI capture (scenarios 01-08 and 10 of
 * tests/data/transcripts) against build/ami-sim and compare what comes back
 * with what the real Asterisk 22.10.1 sent.
 *
 * Each scenario gets its own simulator. All scenarios run at once, one thread
 * each, in the group setup (they only collect bytes); each CMocka test, named
 * after its scenario, then waits for its thread and asserts. The client bytes
 * are replayed verbatim at the capture's relative times (times the factor
 * AMIBRIDGE_TEST_TIME_SCALE, default 1, also passed as --time-scale), except
 * that an MD5 Login's Key is recomputed for the simulator's challenge.
 *
 * What must match, per connection, in the parsed message sequence:
 *  - the kind (banner, response, event) and name of every message, in order;
 *  - the keys of every message, in order;
 *  - every value, except values that differ on every run (timestamps,
 *    session ids, addresses, uptimes, bridge ids (every *BridgeUniqueid),
 *    uniqueid epochs: for uniqueids only the counter after the dot is
 *    compared);
 *  - the arrival time of every response and of the server's close, within
 *    0.25 s + 5 % of the capture's time.
 * The simulator is started with --channel-seq/--uniqueid-seq taken from the
 * capture, so channel names compare exactly.
 *
 * Allowances, each because the capture itself depends on thread timing
 * inside Asterisk:
 *  - OriginateResponse is sent by the originate thread while the other call
 *    events travel through stasis, and DeviceStateChange / QueueMemberStatus
 *    come from the device-state thread: these three may sit up to
 *    FLOAT_WINDOW other events away from where the capture has them
 *    (04c vs 04d show the same flow with OriginateResponse two events apart).
 *  - CoreShowChannel items come from a hash container: 05d/05e list ;2 before
 *    ;1, 05a/05f the other way round; they are compared as a set.
 *  - 08a: CallsTaken/LastCall of Agent200 reflect the 06a queue call the
 *    capture machine had taken before; the simulator starts fresh.
 *  - CLI output lines with counters of the machine's past ("22 calls
 *    processed", "login was 57 secs ago", "System uptime: 1 minute, ...")
 *    are compared with their numbers masked.
 *  - F_THREADS (10d): the ring group's Dial(), the originate's dial and each
 *    Local ;2's dialplan publish at the same moment from their own threads,
 *    and 10d interleaves them otherwise than 06b, the same flow with one
 *    callee (the originated ;1's answer after the bridge instead of before
 *    it; the caller's hangup after its peer's instead of before). So the
 *    fixed messages may sit up to THREAD_WINDOW places from the capture's,
 *    as long as every channel's own messages keep their order (messages
 *    without a channel keep theirs among themselves), and the floating
 *    events get THREAD_WINDOW too (10d needs 8 and 11).
 *  - F_DIALBEGIN_LATE (10a2): Dial()'s DialBegin came out only after the
 *    callee's ;2 had run Ringing() (its Dest* shows the callee Ringing),
 *    and the device state thread read the callee as NOT_INUSE before its
 *    ;2 counted; 10b2, the same flow, has the DialBegin right after the
 *    callee's LocalBridge with the callee Down and reads INUSE, as 06b and
 *    the simulator do. That DialBegin is compared where and as 10b2 has
 *    it, and that first device state of the callee as INUSE.
 * Scenario set-up the README describes but the capture does not contain: for
 * 05a/05b/05d/05e/05f/08a a separate connection first originates the 30 s
 * call Local/200@demo -> demo,200 (CallerID "Long Call" <5553000>); for 05j
 * the QueueAdd/Pause/Remove of 05c is replayed first, because its
 * DeviceStateList shows the device state that history left behind.
 * The 10* captures ran on an Asterisk restarted before 10a (and again
 * before 10b2, for features.conf); the simulator starts in the state 05c
 * left (which 05j and 06a saw), so what differs is given on its command line:
 *  - F_SUPPORT_AVAIL_FREE (10a2, 10b): 10a, just before on the same
 *    Asterisk, had a call to Agent202, which turned Queue:support_avail
 *    to NOT_INUSE (--devstate Queue:support_avail=NOT_INUSE);
 *  - F_SALES_AVAIL_STARTUP (10c): app_queue starts every Queue:NAME_avail
 *    at INUSE and no sales member had changed since the restart
 *    (--devstate Queue:sales_avail=INUSE);
 *  - F_NO_FEATURES (10b): recorded before features.conf was installed, so
 *    there was no atxfer code (--no-features-conf).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "ami/message.h"
#include "support/amisim.h"
#include "support/net.h"
#include "support/testenv.h"
#include "support/transcript.h"

#define TRANSCRIPT_DIR      "transcripts"
#define FLOAT_WINDOW        4    /* see the allowances above */
#define TIME_TOLERANCE_REL  0.05 /* relative part */
#define END_MARGIN_S        5.0  /* wait this long past the capture's end */
#define POLL_SLICE_MS       20
#define CHALLENGE_WAIT_S    3.0
#define SETUP_TIMEOUT_MS    10000
#define RELISTEN_TIMEOUT_MS 8000
#define MAX_MSGS            4096
#define ERR_LEN             4096
/* absolute part of the timing tolerance; under ASan (make asan) every
 * process runs several times slower, and a loaded machine showed 0.3 s */
#ifdef __SANITIZE_ADDRESS__
#define TIME_TOLERANCE_S 0.75
#else
#define TIME_TOLERANCE_S 0.25
#endif

enum setup_kind { SETUP_NONE, SETUP_CALL200, SETUP_QUEUE_HISTORY };
enum trigger_kind { TRIG_NONE, TRIG_RESTART, TRIG_TERM, TRIG_KILL };

#define F_CSC_UNORDERED       (1u << 0)
#define F_IGNORE_CALLS_TAKEN  (1u << 1)
#define F_THREADS             (1u << 2)
#define F_DIALBEGIN_LATE      (1u << 3)
#define F_SUPPORT_AVAIL_FREE  (1u << 4)
#define F_SALES_AVAIL_STARTUP (1u << 5)
#define F_NO_FEATURES         (1u << 6)
#define THREAD_WINDOW         12 /* see the allowances above */

struct scen_def {
    const char *name;
    enum setup_kind setup;
    double setup_lead; /* the setup call was answered this long before t=0 */
    double setup_at;   /* > 0: the setup connection opens at this time instead */
    enum trigger_kind trigger;
    double trigger_at;
    unsigned flags;
};

/* Timings from the README and the captures: 05d/05e saw ;2 reach Wait(30)
 * 0.2 s after login, so the call was answered 0.3 s before; 05a/05f still
 * saw ;2 in Answer. 08a: the setup logged in at +0.908, 'core restart now'
 * at +1.509; 08b: stop at +0.5; 08c: SIGKILL at +0.501. */
static const struct scen_def scen_defs[] = {
    {"01a-banner-login-plain", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"01b-login-wrong-secret", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"01c-login-events-off", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"01d-login-no-actionid-unknown-user", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"01e-action-before-login", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"02a-challenge-md5-login", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"02b-challenge-md5-wrong-key", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"03a-ping", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"03b-unknown-action", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"03c-viewer-permission-denied", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"03d-missing-required-header", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"04a-originate-sync-success", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"04b-originate-sync-busy-failure", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"04c-originate-async-two-connections", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"04d-originate-async-same-connection", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"05a-status-coreshowchannels", SETUP_CALL200, 0.0, 0, TRIG_NONE, 0, F_CSC_UNORDERED},
    {"05b-queuestatus-queuesummary", SETUP_CALL200, 0.0, 0, TRIG_NONE, 0, 0},
    {"05c-queueadd-pause-remove", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"05d-redirect", SETUP_CALL200, 0.3, 0, TRIG_NONE, 0, F_CSC_UNORDERED},
    {"05e-hangup", SETUP_CALL200, 0.3, 0, TRIG_NONE, 0, F_CSC_UNORDERED},
    {"05f-getvar-setvar", SETUP_CALL200, 0.0, 0, TRIG_NONE, 0, F_CSC_UNORDERED},
    {"05g-command", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"05h-events-action", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"05i-logoff", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"05j-misc-actions", SETUP_QUEUE_HISTORY, 0, 0, TRIG_NONE, 0, 0},
    {"06a-queue-call-event-stream", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"06b-dial-call-event-stream", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"07a-pipelined-pings", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"07b-pipelined-with-slow-originate", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"08a-restart", SETUP_CALL200, 0, 0.9, TRIG_RESTART, 1.509, F_IGNORE_CALLS_TAKEN},
    {"08b-stop-gracefully", SETUP_NONE, 0, 0, TRIG_TERM, 0.5, 0},
    {"08c-kill-9", SETUP_NONE, 0, 0, TRIG_KILL, 0.501, 0},
    {"10a-call-blind-transfer", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"10a2-call-blind-transfer-bridged", SETUP_NONE, 0, 0, TRIG_NONE, 0,
     F_SUPPORT_AVAIL_FREE | F_DIALBEGIN_LATE},
    {"10b-call-attended-transfer", SETUP_NONE, 0, 0, TRIG_NONE, 0,
     F_SUPPORT_AVAIL_FREE | F_NO_FEATURES},
    {"10b2-call-attended-transfer-bridged", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"10c-call-queue-abandoned", SETUP_NONE, 0, 0, TRIG_NONE, 0, F_SALES_AVAIL_STARTUP},
    {"10d-call-ring-group", SETUP_NONE, 0, 0, TRIG_NONE, 0, F_THREADS},
    {"10e-originate-async-noanswer-and-congestion", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
    {"10f-originate-channelid", SETUP_NONE, 0, 0, TRIG_NONE, 0, 0},
};

/* What a flag sets on the simulator's command line (the history above). */
static const struct {
    unsigned flag;
    const char *args[2];
} flag_args[] = {
    {F_SUPPORT_AVAIL_FREE, {"--devstate", "Queue:support_avail=NOT_INUSE"}},
    {F_SALES_AVAIL_STARTUP, {"--devstate", "Queue:sales_avail=INUSE"}},
    {F_NO_FEATURES, {"--no-features-conf", NULL}},
};
#define MAX_SIM_ARGS 16
#define NSCEN        (sizeof(scen_defs) / sizeof(scen_defs[0]))

static const char SETUP_LOGIN[] = "Action: Login\r\nActionID: setup-login\r\nUsername: bridge\r\n"
                                  "Secret: bridgesecret\r\nEvents: off\r\n\r\n";
static const char SETUP_CALL[] = "Action: Originate\r\nActionID: setup-call\r\n"
                                 "Channel: Local/200@demo\r\nContext: demo\r\nExten: 200\r\n"
                                 "Priority: 1\r\nCallerID: \"Long Call\" <5553000>\r\n"
                                 "Timeout: 20000\r\n\r\n";
static const char SETUP_QUEUE[] =
    "Action: QueueAdd\r\nActionID: h1\r\nQueue: sales\r\nInterface: Local/202@demo\r\n"
    "Penalty: 2\r\nMemberName: Agent202\r\nPaused: false\r\n\r\n"
    "Action: QueuePause\r\nActionID: h2\r\nQueue: sales\r\nInterface: Local/202@demo\r\n"
    "Paused: true\r\nReason: lunch\r\n\r\n"
    "Action: QueuePause\r\nActionID: h3\r\nQueue: sales\r\nInterface: Local/202@demo\r\n"
    "Paused: false\r\n\r\n"
    "Action: QueueRemove\r\nActionID: h4\r\nQueue: sales\r\nInterface: Local/202@demo\r\n\r\n";

/* One message as it arrived, with the time on the capture's clock. */
struct timed_msg {
    struct ami_msg *m;
    double t;
};

struct conn_rt {
    char suffix[64];
    struct transcript tr;
    int is_setup; /* the set-up connection, not compared */
    struct net_client cl;
    int opened;
    int open_failed;
    double open_t;
    size_t next_chunk;
    struct timed_msg msgs[MAX_MSGS];
    int nmsgs;
    int closed;
    double close_t;
    char challenge[32];
    char md5_secret[64];
};

struct scen_rt {
    const struct scen_def *def;
    struct conn_rt conns[TRANSCRIPT_MAX_CONNS + 1];
    int nconns;
    struct amisim sim;
    int sim_started;
    int sim_exit;
    int sim_exited;
    double scale;
    double t0;
    int relisten_checked;
    int relisten_ok;
    unsigned long chan_seq, uid_seq;
    char error[ERR_LEN];
    pthread_t thread;
    int thread_started;
};

static struct scen_rt g_rts[NSCEN];

/* How many scenarios replay at once: all of them normally; a few under a
 * wrapper such as valgrind (AMIBRIDGE_TEST_JOBS overrides). */
static pthread_mutex_t g_slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_slot_cv = PTHREAD_COND_INITIALIZER;
static int g_slots_free;
static int g_wrapped;

#define WRAPPED_JOBS 3

static void slot_take(void)
{
    pthread_mutex_lock(&g_slot_mu);
    while (g_slots_free <= 0)
        pthread_cond_wait(&g_slot_cv, &g_slot_mu);
    g_slots_free--;
    pthread_mutex_unlock(&g_slot_mu);
}

static void slot_give(void)
{
    pthread_mutex_lock(&g_slot_mu);
    g_slots_free++;
    pthread_cond_signal(&g_slot_cv);
    pthread_mutex_unlock(&g_slot_mu);
}

/* ---- helpers ------------------------------------------------------------------------ */

/* Seconds on the capture's clock (scaled back). */
static double clock_now(const struct scen_rt *rt)
{
    return (testenv_now() - rt->t0) / rt->scale;
}

static void md5_hex(const char *s, char out[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_Digest(s, strlen(s), d, &dl, EVP_md5(), NULL);
    for (unsigned int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A header value from raw "Key: value\r\n" text. */
static int raw_header(const char *text, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (!strncasecmp(p, key, kl) && p[kl] == ':') {
            const char *v = p + kl + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            snprintf(out, len, "%.*s", (int)n, v);
            return 1;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* Which secret gave the capture's MD5 key (bridgesecret, or "wrong" in 02b). */
static void detect_md5_secret(struct conn_rt *c)
{
    char chal[64], key[64];
    if (!raw_header(c->tr.recv, "Challenge", chal, sizeof(chal)) ||
        !raw_header(c->tr.sent, "Key", key, sizeof(key)))
        return;
    static const char *const candidates[] = {"bridgesecret", "viewersecret", "wrong"};
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        char buf[128], hex[33];
        snprintf(buf, sizeof(buf), "%s%s", chal, candidates[i]);
        md5_hex(buf, hex);
        if (!strcmp(hex, key)) {
            snprintf(c->md5_secret, sizeof(c->md5_secret), "%s", candidates[i]);
            return;
        }
    }
}

/* Lowest Local channel number and uniqueid counter the capture shows. */
static void detect_seqs(struct scen_rt *rt)
{
    unsigned long cmin = (unsigned long)-1, umin = (unsigned long)-1;
    for (int i = 0; i < rt->nconns; i++) {
        const char *r = rt->conns[i].tr.recv;
        if (!r)
            continue;
        for (const char *p = strstr(r, "Local/"); p; p = strstr(p + 1, "Local/")) {
            const char *semi = strchr(p, ';');
            const char *nl = strpbrk(p, "\r\n");
            if (!semi || (nl && nl < semi) || semi - p < 10 || semi[-9] != '-')
                continue;
            unsigned long v = strtoul(semi - 8, NULL, 16);
            if (v < cmin)
                cmin = v;
        }
        for (const char *p = strstr(r, "Uniqueid: "); p; p = strstr(p + 1, "Uniqueid: ")) {
            const char *dot = strchr(p, '.');
            const char *nl = strpbrk(p, "\r\n");
            if (!dot || (nl && nl < dot))
                continue;
            unsigned long v = strtoul(dot + 1, NULL, 10);
            if (v < umin)
                umin = v;
        }
    }
    rt->chan_seq = cmin == (unsigned long)-1 ? 0 : cmin;
    rt->uid_seq = umin == (unsigned long)-1 ? 0 : umin;
}

/* Messages as they complete, with their time; remembers an MD5 challenge. */
static void collect(struct scen_rt *rt, struct conn_rt *c)
{
    struct ami_msg *m;
    while (net_next(&c->cl, &m)) {
        if (c->nmsgs < MAX_MSGS) {
            c->msgs[c->nmsgs].m = m;
            c->msgs[c->nmsgs].t = clock_now(rt);
            if (ami_msg_kind(m) == AMI_MSG_RESPONSE && ami_msg_get(m, "Challenge"))
                snprintf(c->challenge, sizeof(c->challenge), "%s", ami_msg_get(m, "Challenge"));
            c->nmsgs++;
        } else {
            ami_msg_free(m);
        }
    }
}

/* Send one captured chunk; an MD5 Login gets the key for our challenge.
 * Returns 0 sent, 1 not yet (waiting for the challenge), -1 error. */
static int send_chunk(struct conn_rt *c, const struct transcript_chunk *ch)
{
    if (c->md5_secret[0] && strstr(ch->data, "AuthType: MD5") && strstr(ch->data, "Key: ")) {
        if (!c->challenge[0])
            return 1;
        char buf[256], hex[33];
        snprintf(buf, sizeof(buf), "%s%s", c->challenge, c->md5_secret);
        md5_hex(buf, hex);
        struct strbuf out;
        strbuf_init(&out, 0);
        const char *k = strstr(ch->data, "Key: ");
        strbuf_append(&out, ch->data, (size_t)(k - ch->data) + 5);
        strbuf_append_str(&out, hex);
        strbuf_append_str(&out, k + 5 + strcspn(k + 5, "\r\n"));
        int rc = net_send(&c->cl, out.data, out.len);
        strbuf_release(&out);
        return rc < 0 ? -1 : 0;
    }
    return net_send(&c->cl, ch->data, ch->len) < 0 ? -1 : 0;
}

/* ---- set-up ------------------------------------------------------------------------- */

static int send_and_wait(struct net_client *c, const char *text, const char *last_id, char *err,
                         size_t elen)
{
    if (net_send(c, text, strlen(text)) < 0) {
        snprintf(err, elen, "set-up: send failed");
        return -1;
    }
    struct ami_msg *r = NULL;
    if (net_wait_response(c, last_id, SETUP_TIMEOUT_MS, &r) != 1) {
        snprintf(err, elen, "set-up: no response to %s", last_id);
        return -1;
    }
    int ok = ami_msg_is(r, "Response", "Success");
    if (!ok)
        snprintf(err, elen, "set-up: %s failed: %s", last_id,
                 ami_msg_get(r, "Message") ? ami_msg_get(r, "Message") : "?");
    ami_msg_free(r);
    return ok ? 0 : -1;
}

/* The state the capture machine had: a 30 s call, or a queue history. */
static int run_setup(struct scen_rt *rt, struct conn_rt *setup)
{
    struct net_client *c = &setup->cl;
    if (net_connect(c, "127.0.0.1", rt->sim.port, 2000) < 0) {
        snprintf(rt->error, sizeof(rt->error), "set-up: cannot connect");
        return -1;
    }
    setup->opened = 1;
    struct ami_msg *b = NULL;
    if (net_read_msg(c, 2000, &b) != 1) {
        snprintf(rt->error, sizeof(rt->error), "set-up: no banner");
        return -1;
    }
    ami_msg_free(b);
    if (send_and_wait(c, SETUP_LOGIN, "setup-login", rt->error, sizeof(rt->error)) < 0)
        return -1;
    if (rt->def->setup == SETUP_CALL200)
        return send_and_wait(c, SETUP_CALL, "setup-call", rt->error, sizeof(rt->error));
    return send_and_wait(c, SETUP_QUEUE, "h4", rt->error, sizeof(rt->error));
}

/* ---- the replay loop ---------------------------------------------------------------- */

/* The connection opens at the capture's first chunk. */
static void open_conn(struct scen_rt *rt, struct conn_rt *c)
{
    c->opened = 1;
    if (net_connect(&c->cl, "127.0.0.1", rt->sim.port, 2000) < 0) {
        c->open_failed = 1;
        c->closed = 1;
        c->close_t = clock_now(rt);
        return;
    }
    c->cl.keep_raw = 1;
}

/* 08a restart (SIGUSR1), 08b stop (SIGTERM), 08c crash (SIGKILL). */
static void fire_trigger(struct scen_rt *rt)
{
    switch (rt->def->trigger) {
    case TRIG_RESTART:
        proc_signal(&rt->sim.proc, SIGUSR1);
        break;
    case TRIG_TERM:
        proc_signal(&rt->sim.proc, SIGTERM);
        break;
    case TRIG_KILL:
        proc_signal(&rt->sim.proc, SIGKILL);
        break;
    default:
        break;
    }
}

/* The last moment any connection of the capture saw something. */
static double capture_end(const struct scen_rt *rt)
{
    double end = 0;
    for (int i = 0; i < rt->nconns; i++) {
        const struct conn_rt *c = &rt->conns[i];
        if (c->is_setup)
            continue;
        if (c->tr.closed && c->tr.close_t > end)
            end = c->tr.close_t;
        if (c->tr.nchunks && c->tr.chunks[c->tr.nchunks - 1].t > end)
            end = c->tr.chunks[c->tr.nchunks - 1].t;
    }
    return end;
}

/* Open, send and read every connection on the capture's schedule until all are closed. */
static void replay(struct scen_rt *rt)
{
    int trigger_done = rt->def->trigger == TRIG_NONE;
    double deadline = capture_end(rt) + END_MARGIN_S;
    for (;;) {
        double now = clock_now(rt);
        int all_closed = 1;
        double next_due = deadline;
        for (int i = 0; i < rt->nconns; i++) {
            struct conn_rt *c = &rt->conns[i];
            if (c->is_setup && !c->tr.nchunks)
                continue;
            if (!c->opened) {
                if (now >= c->open_t)
                    open_conn(rt, c);
                else if (c->open_t < next_due)
                    next_due = c->open_t;
            }
            while (c->opened && !c->open_failed && c->next_chunk < c->tr.nchunks) {
                const struct transcript_chunk *ch = &c->tr.chunks[c->next_chunk];
                if (ch->dir != TRANSCRIPT_SENT) {
                    c->next_chunk++;
                    continue;
                }
                if (now < ch->t) {
                    if (ch->t < next_due)
                        next_due = ch->t;
                    break;
                }
                int rc = send_chunk(c, ch);
                if (rc == 1 && now - ch->t < CHALLENGE_WAIT_S) {
                    next_due = now + 0.005;
                    break;
                }
                c->next_chunk++;
            }
            if (!c->closed && !c->is_setup)
                all_closed = 0;
        }
        if (!trigger_done) {
            if (now >= rt->def->trigger_at) {
                fire_trigger(rt);
                trigger_done = 1;
            } else if (rt->def->trigger_at < next_due) {
                next_due = rt->def->trigger_at;
            }
        }
        if ((all_closed && trigger_done) || now >= deadline)
            break;
        struct pollfd pf[TRANSCRIPT_MAX_CONNS + 1];
        struct conn_rt *who[TRANSCRIPT_MAX_CONNS + 1];
        int n = 0;
        for (int i = 0; i < rt->nconns; i++) {
            struct conn_rt *c = &rt->conns[i];
            if (c->opened && !c->open_failed && !c->closed) {
                pf[n] = (struct pollfd){.fd = c->cl.fd, .events = POLLIN};
                who[n++] = c;
            }
        }
        double wait_s = (next_due - now) * rt->scale;
        int wait_ms = wait_s <= 0 ? 0 : (int)(wait_s * 1000) + 1;
        if (wait_ms > POLL_SLICE_MS)
            wait_ms = POLL_SLICE_MS;
        if (poll(pf, (nfds_t)n, wait_ms) > 0) {
            for (int i = 0; i < n; i++) {
                if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                struct conn_rt *c = who[i];
                int rc = net_pump(&c->cl, 0);
                collect(rt, c);
                if (rc < 0) {
                    c->closed = 1;
                    c->close_t = clock_now(rt);
                }
            }
        }
    }
}

/* Load the capture, start a simulator, set it up, replay. */
static void scenario_run(struct scen_rt *rt)
{
    char dir[1024];
    testenv_data_path(dir, sizeof(dir), TRANSCRIPT_DIR);
    char names[TRANSCRIPT_MAX_CONNS][64];
    int n = transcript_connections(dir, rt->def->name, names, TRANSCRIPT_MAX_CONNS);
    if (n <= 0) {
        snprintf(rt->error, sizeof(rt->error), "no capture files for %s in %s", rt->def->name, dir);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct conn_rt *c = &rt->conns[rt->nconns++];
        memcpy(c->suffix, names[i], sizeof(c->suffix));
        c->suffix[sizeof(c->suffix) - 1] = '\0';
        char full[512];
        if (c->suffix[0])
            snprintf(full, sizeof(full), "%.200s.%.63s", rt->def->name, c->suffix);
        else
            snprintf(full, sizeof(full), "%.200s", rt->def->name);
        int rc = transcript_load(&c->tr, dir, full);
        if (rc < 0) {
            snprintf(rt->error, sizeof(rt->error), "cannot load %s: %s", full, strerror(-rc));
            return;
        }
        c->open_t = transcript_start_time(&c->tr);
        detect_md5_secret(c);
    }
    detect_seqs(rt);
    char scale[32], cseq[32], useq[32];
    snprintf(scale, sizeof(scale), "%g", rt->scale);
    snprintf(cseq, sizeof(cseq), "%lu", rt->chan_seq);
    snprintf(useq, sizeof(useq), "%lu", rt->uid_seq);
    const char *extra[MAX_SIM_ARGS] = {"--time-scale",   scale, "--channel-seq", cseq,
                                       "--uniqueid-seq", useq};
    int nextra = 6;
    for (size_t i = 0; i < sizeof(flag_args) / sizeof(flag_args[0]); i++) {
        if (!(rt->def->flags & flag_args[i].flag))
            continue;
        for (int j = 0; j < 2 && flag_args[i].args[j] && nextra < MAX_SIM_ARGS - 1; j++)
            extra[nextra++] = flag_args[i].args[j];
    }
    extra[nextra] = NULL;
    int rc = amisim_start(&rt->sim, extra);
    if (rc < 0) {
        snprintf(rt->error, sizeof(rt->error), "cannot start ami-sim: %s", strerror(-rc));
        return;
    }
    rt->sim_started = 1;
    struct conn_rt *setup = NULL;
    if (rt->def->setup != SETUP_NONE) {
        setup = &rt->conns[rt->nconns++];
        setup->is_setup = 1;
        snprintf(setup->suffix, sizeof(setup->suffix), "(set-up)");
    }
    if (setup && rt->def->setup_at > 0) {
        /* opens during the scenario: Login and Originate in one write */
        char text[sizeof(SETUP_LOGIN) + sizeof(SETUP_CALL)];
        snprintf(text, sizeof(text), "%s%s", SETUP_LOGIN, SETUP_CALL);
        setup->tr.chunks = calloc(1, sizeof(*setup->tr.chunks));
        if (setup->tr.chunks) {
            setup->tr.chunks[0] = (struct transcript_chunk){.t = rt->def->setup_at,
                                                            .dir = TRANSCRIPT_SENT,
                                                            .data = strdup(text),
                                                            .len = strlen(text)};
            setup->tr.nchunks = setup->tr.chunks[0].data ? 1 : 0;
        }
        setup->open_t = rt->def->setup_at;
        rt->t0 = testenv_now();
    } else if (setup) {
        if (run_setup(rt, setup) < 0)
            return;
        rt->t0 = testenv_now() + rt->def->setup_lead * rt->scale;
        while (testenv_now() < rt->t0)
            testenv_sleep_ms(1);
    } else {
        rt->t0 = testenv_now();
    }
    replay(rt);
    if (rt->def->trigger == TRIG_RESTART) {
        rt->relisten_checked = 1;
        rt->relisten_ok = amisim_wait_banner(rt->sim.port, RELISTEN_TIMEOUT_MS) == 0;
    }
    if (rt->def->trigger == TRIG_TERM || rt->def->trigger == TRIG_KILL) {
        if (proc_wait(&rt->sim.proc, 10000) == 1) {
            rt->sim_exited = 1;
            rt->sim_exit = proc_exit_code(&rt->sim.proc);
        }
    }
    return;
}

static void *scenario_thread(void *arg)
{
    struct scen_rt *rt = arg;
    slot_take();
    scenario_run(rt);
    slot_give();
    return NULL;
}

/* ---- comparison --------------------------------------------------------------------- */

/* Values that differ on every run of a real Asterisk. */
static int key_ignored(const char *k, unsigned flags)
{
    static const char *const ignored[] = {"Timestamp",
                                          "SessionID",
                                          "LocalAddress",
                                          "RemoteAddress",
                                          "EventTV",
                                          "SessionTV",
                                          "Uptime",
                                          "LastReload",
                                          "LoginTime",
                                          "LastPause",
                                          "LastCall",
                                          "Challenge",
                                          "CoreStartupDate",
                                          "CoreStartupTime",
                                          "CoreReloadDate",
                                          "CoreReloadTime",
                                          "CoreProcessedCalls",
                                          "BridgeUniqueid",
                                          "BridgeID",
                                          "BridgeId",
                                          "Seconds",
                                          "Duration",
                                          "HoldTime",
                                          "TalkTime",
                                          "RingTime",
                                          "Wait"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        if (!strcmp(k, ignored[i]))
            return 1;
    /* Orig-, Second-, Dest-, To-, FromBridgeUniqueid: bridge ids too */
    size_t kl = strlen(k);
    if (kl >= 14 && !strcmp(k + kl - 14, "BridgeUniqueid"))
        return 1;
    if ((flags & F_IGNORE_CALLS_TAKEN) && !strcmp(k, "CallsTaken"))
        return 1;
    return 0;
}

static int key_is_uniqueid(const char *k)
{
    size_t l = strlen(k);
    return (l >= 8 && !strcmp(k + l - 8, "Uniqueid")) || (l >= 8 && !strcmp(k + l - 8, "Linkedid"));
}

/* Digits collapsed to one '#'. */
static void mask_digits(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < len; p++) {
        if (isdigit((unsigned char)*p)) {
            if (o == 0 || out[o - 1] != '#')
                out[o++] = '#';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* CLI lines that count the capture machine's history compare without their numbers. */
static int output_equal(const char *e, const char *a)
{
    if (!strncmp(e, "System uptime:", 14) || !strncmp(e, "Last reload:", 12)) {
        size_t l = strcspn(e, ":") + 1;
        return !strncmp(e, a, l);
    }
    if (strstr(e, "calls processed") || strstr(e, "call processed") || strstr(e, "secs ago")) {
        char me[1024], ma[1024];
        mask_digits(e, me, sizeof(me));
        mask_digits(a, ma, sizeof(ma));
        return !strcmp(me, ma);
    }
    return !strcmp(e, a);
}

static int is_time_var(const char *v)
{
    return strstr(v, "TIME") || !strncmp(v, "QUEUEWAIT", 9);
}

static int value_equal(const struct ami_msg *em, const char *k, const char *e, const char *a,
                       unsigned flags)
{
    if (key_ignored(k, flags))
        return 1;
    if (key_is_uniqueid(k)) {
        const char *de = strrchr(e, '.'), *da = strrchr(a, '.');
        if (de && da)
            return !strcmp(de, da);
        return !strcmp(e, a);
    }
    if (!strcmp(k, "Output"))
        return output_equal(e, a);
    if (!strcmp(k, "Value") && ami_msg_get(em, "Variable") &&
        is_time_var(ami_msg_get(em, "Variable")) && *e)
        return *a != '\0';
    return !strcmp(e, a);
}

static void describe(const struct ami_msg *m, struct strbuf *sb)
{
    if (!m) {
        strbuf_append_str(sb, "    (none)\n");
        return;
    }
    for (size_t i = 0; i < ami_msg_count(m); i++)
        strbuf_printf(sb, "    %s: %s\n", ami_msg_key_at(m, i), ami_msg_value_at(m, i));
}

/* 0 when equal; else a sentence in err. */
static int msg_equal(const struct ami_msg *e, const struct ami_msg *a, unsigned flags, char *why,
                     size_t wlen)
{
    if (ami_msg_kind(e) != ami_msg_kind(a)) {
        snprintf(why, wlen, "kind %s, expected %s", ami_msg_kind_name(ami_msg_kind(a)),
                 ami_msg_kind_name(ami_msg_kind(e)));
        return -1;
    }
    if (ami_msg_count(e) != ami_msg_count(a)) {
        snprintf(why, wlen, "%zu headers, expected %zu", ami_msg_count(a), ami_msg_count(e));
        return -1;
    }
    for (size_t i = 0; i < ami_msg_count(e); i++) {
        const char *ek = ami_msg_key_at(e, i), *ak = ami_msg_key_at(a, i);
        if (strcmp(ek, ak)) {
            snprintf(why, wlen, "header %zu is '%s', expected '%s'", i, ak, ek);
            return -1;
        }
        const char *ev = ami_msg_value_at(e, i), *av = ami_msg_value_at(a, i);
        if (ami_msg_kind(e) == AMI_MSG_BANNER ? strcmp(ev, av)
                                              : !value_equal(e, ek, ev, av, flags)) {
            snprintf(why, wlen, "%s is '%s', expected '%s'", ek, av, ev);
            return -1;
        }
    }
    return 0;
}

/* Events whose position in the capture depends on Asterisk's thread timing. */
static int is_float(const struct ami_msg *m)
{
    if (ami_msg_kind(m) != AMI_MSG_EVENT)
        return 0;
    const char *n = ami_msg_name(m);
    if (!strcmp(n, "OriginateResponse") || !strcmp(n, "QueueMemberStatus"))
        return 1;
    /* a broadcast DeviceStateChange, not an item of DeviceStateList */
    return !strcmp(n, "DeviceStateChange") && ami_msg_get(m, "Privilege");
}

static int cmp_by_channel(const void *a, const void *b)
{
    const struct timed_msg *x = a, *y = b;
    const char *cx = ami_msg_get(x->m, "Channel"), *cy = ami_msg_get(y->m, "Channel");
    return strcmp(cx ? cx : "", cy ? cy : "");
}

/* Runs of CoreShowChannel items sorted by channel (hash order in Asterisk). */
static void sort_csc(struct timed_msg *v, int n)
{
    for (int i = 0; i < n;) {
        if (ami_msg_kind(v[i].m) != AMI_MSG_EVENT ||
            strcmp(ami_msg_name(v[i].m), "CoreShowChannel")) {
            i++;
            continue;
        }
        int j = i;
        while (j < n && ami_msg_kind(v[j].m) == AMI_MSG_EVENT &&
               !strcmp(ami_msg_name(v[j].m), "CoreShowChannel"))
            j++;
        qsort(v + i, (size_t)(j - i), sizeof(*v), cmp_by_channel);
        i = j;
    }
}

struct seq {
    struct timed_msg *items;
    int *anchor; /* floats: non-float messages before it */
    int n;
};

/* Fixed messages in order; floating ones with the number of fixed ones before them. */
static void seq_split(const struct timed_msg *all, int n, struct seq *fixed, struct seq *floats)
{
    fixed->items = calloc((size_t)n + 1, sizeof(*fixed->items));
    floats->items = calloc((size_t)n + 1, sizeof(*floats->items));
    floats->anchor = calloc((size_t)n + 1, sizeof(int));
    fixed->n = floats->n = 0;
    for (int i = 0; i < n; i++) {
        if (is_float(all[i].m)) {
            floats->anchor[floats->n] = fixed->n;
            floats->items[floats->n++] = all[i];
        } else {
            fixed->items[fixed->n++] = all[i];
        }
    }
}

static void seq_free(struct seq *s)
{
    free(s->items);
    free(s->anchor);
}

/* The timing tolerance. */
static int within(double expected, double actual)
{
    double tol = TIME_TOLERANCE_S + TIME_TOLERANCE_REL * expected;
    return actual >= expected - tol && actual <= expected + tol;
}

/* Times at which each message of the capture completed. */
static int capture_messages(const struct transcript *tr, struct timed_msg *out, int max)
{
    struct ami_parser *p = ami_parser_new(NULL, AMI_PARSER_EXPECT_BANNER);
    int n = 0;
    for (size_t i = 0; p && i < tr->nchunks; i++) {
        if (tr->chunks[i].dir != TRANSCRIPT_RECV)
            continue;
        if (ami_parser_feed(p, tr->chunks[i].data, tr->chunks[i].len) < 0)
            break;
        struct ami_msg *m;
        while (ami_parser_next(p, &m) == 1) {
            if (n < max) {
                out[n].m = m;
                out[n++].t = tr->chunks[i].t;
            } else {
                ami_msg_free(m);
            }
        }
    }
    int bad = p && ami_parser_error(p) != AMI_PERR_NONE;
    ami_parser_free(p);
    return bad ? -1 : n;
}

static int key_ends_with_channel(const char *k)
{
    size_t l = strlen(k);
    return l >= 7 && !strcmp(k + l - 7, "Channel");
}

/* Whether two messages name a channel in common (any *Channel value); messages that name
 * none count as one more thread of their own. */
static int share_channel(const struct ami_msg *a, const struct ami_msg *b)
{
    int na = 0, nb = 0;
    for (size_t j = 0; j < ami_msg_count(b); j++)
        nb += key_ends_with_channel(ami_msg_key_at(b, j));
    for (size_t i = 0; i < ami_msg_count(a); i++) {
        if (!key_ends_with_channel(ami_msg_key_at(a, i)))
            continue;
        na++;
        for (size_t j = 0; j < ami_msg_count(b); j++)
            if (key_ends_with_channel(ami_msg_key_at(b, j)) &&
                !strcmp(ami_msg_value_at(a, i), ami_msg_value_at(b, j)))
                return 1;
    }
    return na == 0 && nb == 0;
}

/* F_THREADS: every fixed message of the capture matches an equal one at most THREAD_WINDOW
 * places away, and the messages of each channel keep their order. match[i] is the actual
 * index of expected message i. */
static int match_threads(const struct seq *ef, const struct seq *af, unsigned flags, int *match,
                         const char *suffix, struct strbuf *err)
{
    char why[512];
    char *used = calloc((size_t)af->n + 1, 1);
    int rc = -1;
    if (!used)
        return -1;
    for (int i = 0; i < ef->n; i++) {
        int found = -1;
        for (int j = i > THREAD_WINDOW ? i - THREAD_WINDOW : 0;
             j < af->n && j <= i + THREAD_WINDOW && found < 0; j++)
            if (!used[j] && msg_equal(ef->items[i].m, af->items[j].m, flags, why, sizeof(why)) == 0)
                found = j;
        if (found < 0) {
            strbuf_printf(err, "[%s] message %d (%s %s) not found within %d places:\n", suffix, i,
                          ami_msg_kind_name(ami_msg_kind(ef->items[i].m)),
                          ami_msg_name(ef->items[i].m), THREAD_WINDOW);
            describe(ef->items[i].m, err);
            strbuf_append_str(err, "  actual in its place:\n");
            describe(i < af->n ? af->items[i].m : NULL, err);
            goto out;
        }
        used[found] = 1;
        match[i] = found;
    }
    for (int i = 0; i < ef->n; i++) {
        for (int k = i + 1; k < ef->n; k++) {
            if (match[k] < match[i] && share_channel(ef->items[i].m, ef->items[k].m)) {
                strbuf_printf(err,
                              "[%s] messages %d (%s) and %d (%s) of one channel came the other "
                              "way round\n",
                              suffix, i, ami_msg_name(ef->items[i].m), k,
                              ami_msg_name(ef->items[k].m));
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(used);
    return rc;
}

/* F_DIALBEGIN_LATE: a Dial() DialBegin published after its callee rang goes back to right
 * after the callee's LocalBridge, with the callee Down, and the callee's device state read
 * next as NOT_INUSE reads INUSE (see the allowances at the top). */
static void dialbegin_as_10b2(struct timed_msg *v, int n)
{
    for (int i = 0; i < n; i++) {
        struct ami_msg *m = v[i].m;
        if (ami_msg_kind(m) != AMI_MSG_EVENT || strcmp(ami_msg_name(m), "DialBegin") ||
            !ami_msg_get(m, "Channel") || !ami_msg_is(m, "DestChannelStateDesc", "Ringing"))
            continue;
        const char *dest = ami_msg_get(m, "DestChannel");
        int lb = -1;
        for (int j = i - 1; dest && j >= 0 && lb < 0; j--)
            if (ami_msg_kind(v[j].m) == AMI_MSG_EVENT &&
                !strcmp(ami_msg_name(v[j].m), "LocalBridge") &&
                ami_msg_is(v[j].m, "LocalOneChannel", dest))
                lb = j;
        if (lb < 0)
            continue;
        char dev[256];
        snprintf(dev, sizeof(dev), "%s", dest);
        char *dash = strrchr(dev, '-');
        if (dash)
            *dash = '\0';
        ami_msg_set(m, "DestChannelState", "0");
        ami_msg_set(m, "DestChannelStateDesc", "Down");
        for (int j = i + 1; j < n; j++) {
            struct ami_msg *d = v[j].m;
            if (ami_msg_kind(d) == AMI_MSG_EVENT && !strcmp(ami_msg_name(d), "DeviceStateChange") &&
                ami_msg_is(d, "Device", dev)) {
                if (ami_msg_is(d, "State", "NOT_INUSE"))
                    ami_msg_set(d, "State", "INUSE");
                break;
            }
        }
        struct timed_msg moved = v[i];
        memmove(&v[lb + 2], &v[lb + 1], (size_t)(i - lb - 1) * sizeof(*v));
        v[lb + 1] = moved;
    }
}

/* One connection: fixed messages pairwise (or as F_THREADS allows), floats within
 * FLOAT_WINDOW, responses one per action, timing. */
static int compare_conn(const struct scen_rt *rt, struct conn_rt *c, struct strbuf *err)
{
    static struct timed_msg exp[MAX_MSGS];
    int ne = capture_messages(&c->tr, exp, MAX_MSGS);
    int rc = -1;
    struct seq ef = {0}, efl = {0}, af = {0}, afl = {0};
    struct timed_msg *act = calloc((size_t)c->nmsgs + 1, sizeof(*act));
    int *match = calloc((size_t)(ne > 0 ? ne : 0) + 1, sizeof(int));
    unsigned flags = rt->def->flags;
    int window = flags & F_THREADS ? THREAD_WINDOW : FLOAT_WINDOW;
    if (ne < 0 || !act || !match) {
        strbuf_printf(err, "[%s] cannot parse the capture\n", c->suffix);
        goto out;
    }
    memcpy(act, c->msgs, (size_t)c->nmsgs * sizeof(*act));
    if (flags & F_CSC_UNORDERED) {
        sort_csc(exp, ne);
        sort_csc(act, c->nmsgs);
    }
    if (flags & F_DIALBEGIN_LATE)
        dialbegin_as_10b2(exp, ne);
    seq_split(exp, ne, &ef, &efl);
    seq_split(act, c->nmsgs, &af, &afl);
    char why[512];
    int n = ef.n < af.n ? ef.n : af.n;
    for (int i = 0; i < ef.n; i++)
        match[i] = i;
    for (int i = 0; i < n && !(flags & F_THREADS); i++) {
        if (msg_equal(ef.items[i].m, af.items[i].m, flags, why, sizeof(why)) < 0) {
            strbuf_printf(err, "[%s] message %d (%s %s): %s\n  expected:\n", c->suffix, i,
                          ami_msg_kind_name(ami_msg_kind(ef.items[i].m)),
                          ami_msg_name(ef.items[i].m), why);
            describe(ef.items[i].m, err);
            strbuf_append_str(err, "  actual:\n");
            describe(af.items[i].m, err);
            goto out;
        }
    }
    if (ef.n != af.n) {
        strbuf_printf(err, "[%s] %d messages (not counting floating events), expected %d\n",
                      c->suffix, af.n, ef.n);
        strbuf_append_str(err, "  first extra/missing expected:\n");
        describe(n < ef.n ? ef.items[n].m : NULL, err);
        strbuf_append_str(err, "  first extra/missing actual:\n");
        describe(n < af.n ? af.items[n].m : NULL, err);
        goto out;
    }
    if ((flags & F_THREADS) && match_threads(&ef, &af, flags, match, c->suffix, err) < 0)
        goto out;
    /* floating events: same multiset, each within FLOAT_WINDOW (F_THREADS: THREAD_WINDOW)
     * of its place */
    if (efl.n != afl.n) {
        strbuf_printf(err,
                      "[%s] %d floating events (OriginateResponse, DeviceStateChange, "
                      "QueueMemberStatus), expected %d\n",
                      c->suffix, afl.n, efl.n);
        goto out;
    }
    char *used = calloc((size_t)afl.n + 1, 1);
    for (int i = 0; i < efl.n && used; i++) {
        int found = -1;
        for (int j = 0; j < afl.n && found < 0; j++) {
            if (used[j] || abs(efl.anchor[i] - afl.anchor[j]) > window)
                continue;
            if (msg_equal(efl.items[i].m, afl.items[j].m, flags, why, sizeof(why)) == 0)
                found = j;
        }
        if (found < 0) {
            strbuf_printf(err,
                          "[%s] floating event %d not found within %d events of position %d:\n",
                          c->suffix, i, window, efl.anchor[i]);
            describe(efl.items[i].m, err);
            free(used);
            goto out;
        }
        used[found] = 1;
    }
    free(used);
    /* every action gets exactly one Response, in the capture and here */
    char **actions = NULL;
    int nact = transcript_split_actions(c->tr.sent, c->tr.sent_len, &actions);
    int cap_resp = 0, act_resp = 0;
    for (int i = 0; i < ef.n; i++)
        cap_resp += ami_msg_kind(ef.items[i].m) == AMI_MSG_RESPONSE;
    for (int i = 0; i < af.n; i++)
        act_resp += ami_msg_kind(af.items[i].m) == AMI_MSG_RESPONSE;
    for (int i = 0; i < nact; i++)
        free(actions[i]);
    free(actions);
    if (nact <= 0 || cap_resp != nact || act_resp != nact) {
        strbuf_printf(err, "[%s] %d actions sent, %d responses in the capture, %d received\n",
                      c->suffix, nact, cap_resp, act_resp);
        goto out;
    }
    /* timing of responses and of the close; not under a wrapper (valgrind
     * slows the simulator down by an order of magnitude) */
    for (int i = 0; i < ef.n && !g_wrapped; i++) {
        if (ami_msg_kind(ef.items[i].m) != AMI_MSG_RESPONSE)
            continue;
        if (!within(ef.items[i].t, af.items[match[i]].t)) {
            strbuf_printf(
                err, "[%s] response %d (%s) arrived at +%.3f s, capture +%.3f s\n", c->suffix, i,
                ami_msg_get(ef.items[i].m, "ActionID") ? ami_msg_get(ef.items[i].m, "ActionID")
                                                       : "no ActionID",
                af.items[match[i]].t, ef.items[i].t);
            goto out;
        }
    }
    if (c->tr.closed != c->closed) {
        strbuf_printf(err, "[%s] server %s the connection, capture: %s\n", c->suffix,
                      c->closed ? "closed" : "did not close", c->tr.closed ? "closed" : "open");
        goto out;
    }
    if (c->closed && !g_wrapped && !within(c->tr.close_t, c->close_t)) {
        strbuf_printf(err, "[%s] closed at +%.3f s, capture +%.3f s\n", c->suffix, c->close_t,
                      c->tr.close_t);
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < ne; i++)
        ami_msg_free(exp[i].m);
    free(act);
    free(match);
    seq_free(&ef);
    seq_free(&efl);
    seq_free(&af);
    seq_free(&afl);
    return rc;
}

/* ---- CMocka glue ---------------------------------------------------------------------- */

/* The CMocka test of one scenario: wait for its replay, then assert. */
static void scenario_test(void **state)
{
    struct scen_rt *rt = *state;
    if (rt->thread_started) {
        pthread_join(rt->thread, NULL);
        rt->thread_started = 0;
    }
    if (rt->error[0])
        fail_msg("%s: %s", rt->def->name, rt->error);
    int compared = 0;
    struct strbuf err;
    strbuf_init(&err, 0);
    for (int i = 0; i < rt->nconns; i++) {
        struct conn_rt *c = &rt->conns[i];
        if (c->is_setup)
            continue;
        compared++;
        if (compare_conn(rt, c, &err) < 0)
            break;
    }
    if (err.len) {
        fprintf(stderr, "%s\n", err.data);
        strbuf_release(&err);
        fail_msg("%s: replies differ from the capture", rt->def->name);
    }
    strbuf_release(&err);
    assert_true(compared > 0);
    if (rt->relisten_checked)
        assert_true(rt->relisten_ok); /* AMI answers again after the restart */
    if (rt->def->trigger == TRIG_TERM) {
        assert_true(rt->sim_exited);
        assert_int_equal(rt->sim_exit, 0); /* clean exit after 'core stop gracefully' */
    }
    if (rt->def->trigger == TRIG_KILL)
        assert_true(rt->sim_exited);
    if (rt->def->trigger != TRIG_TERM && rt->def->trigger != TRIG_KILL) {
        /* the simulator must stop cleanly (and, under a valgrind wrapper,
         * without memory errors or leaks) */
        int code = amisim_stop(&rt->sim);
        rt->sim_started = 0;
        assert_int_equal(code, 0);
    }
}

static void rt_release(struct scen_rt *rt)
{
    if (rt->thread_started) {
        pthread_join(rt->thread, NULL);
        rt->thread_started = 0;
    }
    for (int i = 0; i < rt->nconns; i++) {
        struct conn_rt *c = &rt->conns[i];
        if (c->opened && !c->open_failed)
            net_close(&c->cl);
        for (int j = 0; j < c->nmsgs; j++)
            ami_msg_free(c->msgs[j].m);
        c->nmsgs = 0;
        transcript_free(&c->tr);
    }
    if (rt->sim_started) {
        int code = amisim_stop(&rt->sim);
        if (!rt->sim_exited && code != 0)
            fprintf(stderr, "%s: ami-sim exited with %d\n", rt->def->name, code);
        rt->sim_started = 0;
    }
}

/* Start every scenario at once (or a few under a wrapper). */
static int group_setup(void **state)
{
    (void)state;
    double scale = testenv_time_scale(1.0);
    const char *w = getenv("AMIBRIDGE_TEST_WRAPPER");
    g_wrapped = w && *w;
    const char *jobs = getenv("AMIBRIDGE_TEST_JOBS");
    g_slots_free = jobs && atoi(jobs) > 0 ? atoi(jobs) : g_wrapped ? WRAPPED_JOBS : (int)NSCEN;
    if (g_wrapped)
        fprintf(stderr,
                "sim_transcripts: under a wrapper: %d scenarios at a time, response "
                "timing not asserted\n",
                g_slots_free);
    for (size_t i = 0; i < NSCEN; i++) {
        g_rts[i].def = &scen_defs[i];
        g_rts[i].scale = scale;
        if (pthread_create(&g_rts[i].thread, NULL, scenario_thread, &g_rts[i]) == 0)
            g_rts[i].thread_started = 1;
        else
            snprintf(g_rts[i].error, sizeof(g_rts[i].error), "cannot start a thread");
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSCEN; i++)
        rt_release(&g_rts[i]);
    return 0;
}

static int test_teardown(void **state)
{
    rt_release(*state);
    return 0;
}

int main(void)
{
    static struct CMUnitTest tests[NSCEN];
    for (size_t i = 0; i < NSCEN; i++) {
        tests[i] = (struct CMUnitTest){.name = scen_defs[i].name,
                                       .test_func = scenario_test,
                                       .setup_func = NULL,
                                       .teardown_func = test_teardown,
                                       .initial_state = &g_rts[i]};
    }
    return _cmocka_run_group_tests("sim_transcripts", tests, NSCEN, group_setup, group_teardown);
}
