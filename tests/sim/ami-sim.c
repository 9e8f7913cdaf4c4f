/* ami-sim: an Asterisk 22 AMI simulator for tests, demos and benchmarks.
 *
 *   ami-sim --listen 127.0.0.1:0 --ready-file /tmp/port --time-scale 0.1
 *
 * It speaks AMI as the captures in tests/data/transcripts show (banner,
 * plain and MD5 logins, permissions, event lists, Originate with the demo
 * dialplan and queues, errors) and adds fault knobs; see usage() below.
 *
 * Runtime control, simulator-only actions (not in ListCommands):
 *
 *   Action: SimControl            (needs write class "system")
 *     DropAfter: N      close new connections after N messages (0 off)
 *     GarbageAfter: N   new connections get a garbage burst after N messages
 *     StallReadAfter: N new connections stop being read after N actions
 *                       (alias StallRead)
 *     DelayMs: N        delay every action of every session by N ms
 *     Flood: RATE       SimFlood events per second (0 stops; restarts Seq at 1)
 *     FloodCount: N     stop the flood after N events (0 unlimited)
 *     RejectLogins: B   every Login fails like a wrong secret (true/false)
 *     TimeScale: F      new waits use this factor
 *     RestartDownMs: N  how long a restart keeps the port closed
 *     AuthLimit: N, MaxOutbuf: BYTES, WriteTimeout: MS
 *     Restart: now      like 'core restart now'
 *     Shutdown: now     like 'core stop gracefully'
 *   -> "Response: Success / Message: SimControl applied", or an error naming
 *      the first bad key.
 *
 *   Action: SimStats              (any logged-in user)
 *   -> Response: Success, then ConnectionsNow, ConnectionsTotal, LoginsOk,
 *      LoginsFailed, ActionsTotal, OriginatesTotal, OriginatesInFlight,
 *      OriginatesInFlightMax, LiveChannels, ActiveCalls, ProcessedCalls,
 *      EventsGenerated, EventsSent, MessagesSent, BytesIn, BytesOut,
 *      DroppedSlow, Restarts, Uptime, and one "Action-<Name>: count" per
 *      action name seen (Action-Unknown, Action-Missing, Action-Denied for
 *      unknown, empty and pre-login actions).
 *
 * Signals: SIGTERM/SIGINT stop like 'core stop gracefully' (Shutdown event,
 * Restart: False, connections closed, exit 0); SIGUSR1 restarts like
 * 'core restart now'.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/sim.h"

#define SIM_DEFAULT_HOST            "127.0.0.1"
#define SIM_DEFAULT_PORT            5038
#define SIM_DEFAULT_RESTART_DOWN_MS 1200
#define SIM_DEFAULT_AUTH_LIMIT      50    /* manager.conf authlimit */
#define SIM_DEFAULT_AUTH_TIMEOUT_MS 30000 /* manager.conf authtimeout */
#define SIM_DEFAULT_MAX_OUTBUF      (64L * 1024 * 1024)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ami-sim [options]\n"
            "  --listen HOST:PORT       address to listen on (default 127.0.0.1:5038;\n"
            "                           port 0 picks a free port and prints it)\n"
            "  --users FILE             users as 'name:secret:readclasses:writeclasses' lines\n"
            "                           (default: bridge/bridgesecret all/all,\n"
            "                           viewer/viewersecret call,agent,reporting/none)\n"
            "  --time-scale F           multiply dialplan waits, ring times, originate\n"
            "                           timeouts and the failed-login delay (default 1.0)\n"
            "  --drop-after N           close each connection after sending it N messages\n"
            "  --delay-ms N             delay every action by N ms (order kept)\n"
            "  --garbage-after N        after N messages send a burst of non-AMI bytes\n"
            "  --stall-read-after N     stop reading a connection after N actions\n"
            "  --flood RATE             SimFlood events per second to every session\n"
            "  --flood-count N          stop flooding after N events\n"
            "  --restart-after SEC      behave like 'core restart now' after SEC seconds\n"
            "  --restart-down-ms N      not listening for N ms on restart (default 1200)\n"
            "  --auth-limit N           unauthenticated connections at once (default 50, 0 off)\n"
            "  --auth-timeout-ms N      close connections not logged in after N ms (30000)\n"
            "  --max-outbuf BYTES       drop a connection that lets more pile up (64 MiB)\n"
            "  --write-timeout MS       drop a connection whose writes make no progress for\n"
            "                           MS (manager.conf writetimeout; default 0: off)\n"
            "  --channel-seq N          first Local channel number (default 0)\n"
            "  --uniqueid-seq N         first uniqueid counter (default 0)\n"
            "  --devstate DEV=STATE     start with this cached device state, e.g.\n"
            "                           Queue:sales_avail=INUSE (repeatable, up to 8)\n"
            "  --no-features-conf       as without features.conf: Atxfer finds no attended\n"
            "                           transfer feature code (default: atxfer => *2)\n"
            "  --record FILE            append every byte received from clients to FILE\n"
            "  --ready-file FILE        write the bound port to FILE once listening\n"
            "  --quiet                  no log lines\n"
            "  --help\n"
            "runtime: 'Action: SimControl' (DropAfter, GarbageAfter, StallReadAfter, DelayMs,\n"
            "Flood, FloodCount, RejectLogins, TimeScale, RestartDownMs, AuthLimit, MaxOutbuf,\n"
            "WriteTimeout, Restart: now, Shutdown: now) and 'Action: SimStats'.\n");
}

/* Non-negative integers only: a knob of -1 is always a typo. */
static int parse_num(const char *opt, const char *v, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0) {
        fprintf(stderr, "ami-sim: %s needs a non-negative integer, not '%s'\n", opt, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_real(const char *opt, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || x < 0) {
        fprintf(stderr, "ami-sim: %s needs a non-negative number, not '%s'\n", opt, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* DEVICE=STATE with a state name ast_devstate2str() knows. */
static int parse_devstate(const char *v, struct sim_opts *o)
{
    static const char *const states[] = {"UNKNOWN", "NOT_INUSE", "INUSE",
                                         "BUSY",    "INVALID",   "UNAVAILABLE",
                                         "RINGING", "RINGINUSE", "ONHOLD"};
    const char *eq = strrchr(v, '=');
    int known = 0;
    for (size_t i = 0; eq && i < sizeof(states) / sizeof(states[0]); i++)
        known |= !strcmp(eq + 1, states[i]);
    if (!eq || eq == v || !known) {
        fprintf(stderr,
                "ami-sim: --devstate needs DEVICE=STATE (e.g. Queue:sales_avail=INUSE), "
                "not '%s'\n",
                v);
        return -1;
    }
    if (o->ndevstates >= SIM_MAX_DEVSTATES) {
        fprintf(stderr, "ami-sim: at most %d --devstate options\n", SIM_MAX_DEVSTATES);
        return -1;
    }
    o->devstates[o->ndevstates++] = v;
    return 0;
}

/* HOST:PORT, also [v6]:PORT. */
static int parse_listen(const char *v, struct sim_opts *o)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof(o->host)) {
        fprintf(stderr, "ami-sim: --listen needs HOST:PORT, not '%s'\n", v);
        return -1;
    }
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    snprintf(o->host, sizeof(o->host), "%.*s", (int)hl, h);
    long port;
    if (parse_num("--listen", colon + 1, &port) < 0 || port > 65535)
        return -1;
    o->port = (int)port;
    return 0;
}

int main(int argc, char **argv)
{
    struct sim_opts o;
    memset(&o, 0, sizeof(o));
    snprintf(o.host, sizeof(o.host), "%s", SIM_DEFAULT_HOST);
    o.port = SIM_DEFAULT_PORT;
    o.time_scale = 1.0;
    o.restart_down_ms = SIM_DEFAULT_RESTART_DOWN_MS;
    o.auth_limit = SIM_DEFAULT_AUTH_LIMIT;
    o.auth_timeout_ms = SIM_DEFAULT_AUTH_TIMEOUT_MS;
    o.max_outbuf = SIM_DEFAULT_MAX_OUTBUF;

    enum {
        OPT_LISTEN = 256,
        OPT_USERS,
        OPT_TIME_SCALE,
        OPT_DROP_AFTER,
        OPT_DELAY_MS,
        OPT_GARBAGE_AFTER,
        OPT_STALL,
        OPT_FLOOD,
        OPT_FLOOD_COUNT,
        OPT_RESTART_AFTER,
        OPT_RESTART_DOWN,
        OPT_AUTH_LIMIT,
        OPT_AUTH_TIMEOUT,
        OPT_MAX_OUTBUF,
        OPT_WRITE_TIMEOUT,
        OPT_CHANNEL_SEQ,
        OPT_UNIQUEID_SEQ,
        OPT_DEVSTATE,
        OPT_NO_FEATURES,
        OPT_RECORD,
        OPT_READY,
        OPT_QUIET,
        OPT_HELP,
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"users", required_argument, NULL, OPT_USERS},
        {"time-scale", required_argument, NULL, OPT_TIME_SCALE},
        {"drop-after", required_argument, NULL, OPT_DROP_AFTER},
        {"delay-ms", required_argument, NULL, OPT_DELAY_MS},
        {"garbage-after", required_argument, NULL, OPT_GARBAGE_AFTER},
        {"stall-read-after", required_argument, NULL, OPT_STALL},
        {"flood", required_argument, NULL, OPT_FLOOD},
        {"flood-count", required_argument, NULL, OPT_FLOOD_COUNT},
        {"restart-after", required_argument, NULL, OPT_RESTART_AFTER},
        {"restart-down-ms", required_argument, NULL, OPT_RESTART_DOWN},
        {"auth-limit", required_argument, NULL, OPT_AUTH_LIMIT},
        {"auth-timeout-ms", required_argument, NULL, OPT_AUTH_TIMEOUT},
        {"max-outbuf", required_argument, NULL, OPT_MAX_OUTBUF},
        {"write-timeout", required_argument, NULL, OPT_WRITE_TIMEOUT},
        {"channel-seq", required_argument, NULL, OPT_CHANNEL_SEQ},
        {"uniqueid-seq", required_argument, NULL, OPT_UNIQUEID_SEQ},
        {"devstate", required_argument, NULL, OPT_DEVSTATE},
        {"no-features-conf", no_argument, NULL, OPT_NO_FEATURES},
        {"record", required_argument, NULL, OPT_RECORD},
        {"ready-file", required_argument, NULL, OPT_READY},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    long n;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_LISTEN:
            bad = parse_listen(optarg, &o);
            break;
        case OPT_USERS:
            o.users_file = optarg;
            break;
        case OPT_TIME_SCALE:
            bad = parse_real("--time-scale", optarg, &o.time_scale);
            break;
        case OPT_DROP_AFTER:
            bad = parse_num("--drop-after", optarg, &o.drop_after);
            break;
        case OPT_DELAY_MS:
            bad = parse_num("--delay-ms", optarg, &o.delay_ms);
            break;
        case OPT_GARBAGE_AFTER:
            bad = parse_num("--garbage-after", optarg, &o.garbage_after);
            break;
        case OPT_STALL:
            bad = parse_num("--stall-read-after", optarg, &o.stall_read_after);
            break;
        case OPT_FLOOD:
            bad = parse_real("--flood", optarg, &o.flood_rate);
            break;
        case OPT_FLOOD_COUNT:
            bad = parse_num("--flood-count", optarg, &o.flood_count);
            break;
        case OPT_RESTART_AFTER:
            bad = parse_real("--restart-after", optarg, &o.restart_after);
            break;
        case OPT_RESTART_DOWN:
            bad = parse_num("--restart-down-ms", optarg, &o.restart_down_ms);
            break;
        case OPT_AUTH_LIMIT:
            bad = parse_num("--auth-limit", optarg, &o.auth_limit);
            break;
        case OPT_AUTH_TIMEOUT:
            bad = parse_num("--auth-timeout-ms", optarg, &o.auth_timeout_ms);
            break;
        case OPT_MAX_OUTBUF:
            bad = parse_num("--max-outbuf", optarg, &o.max_outbuf);
            break;
        case OPT_WRITE_TIMEOUT:
            bad = parse_num("--write-timeout", optarg, &o.write_timeout_ms);
            break;
        case OPT_CHANNEL_SEQ:
            bad = parse_num("--channel-seq", optarg, &n);
            o.channel_seq = (unsigned long)n;
            break;
        case OPT_UNIQUEID_SEQ:
            bad = parse_num("--uniqueid-seq", optarg, &n);
            o.uniqueid_seq = (unsigned long)n;
            break;
        case OPT_DEVSTATE:
            bad = parse_devstate(optarg, &o);
            break;
        case OPT_NO_FEATURES:
            o.no_features_conf = 1;
            break;
        case OPT_RECORD:
            o.record_file = optarg;
            break;
        case OPT_READY:
            o.ready_file = optarg;
            break;
        case OPT_QUIET:
            o.quiet = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "ami-sim: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (o.time_scale <= 0) {
        fprintf(stderr, "ami-sim: --time-scale must be above 0\n");
        return 2;
    }
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    /* a peer that resets its connection must cost that session, not us */
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sim *sim = sim_new(&loop, &o);
    if (!sim) {
        uv_loop_close(&loop);
        return 1;
    }
    int rc = sim_listen(sim);
    if (rc < 0) {
        fprintf(stderr, "ami-sim: cannot listen on %s:%d: %s\n", o.host, o.port, uv_strerror(rc));
        sim_free(sim);
        uv_loop_close(&loop);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    sim_free(sim);
    rc = uv_loop_close(&loop);
    if (rc < 0 && !o.quiet)
        fprintf(stderr, "ami-sim: loop not empty at exit: %s\n", uv_strerror(rc));
    return 0;
}
