#include "core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/config_internal.h"
#include "core/log.h"
#include "core/netlist.h"

extern char **environ;

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

/* A PEM file, whole (certificate chains are longer than a secret). */
static char *read_pem_file(struct cfg_ctx *x, const char *key, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfg_fail(x, "%s: cannot read '%s': %s", key, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CFG_PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, CFG_PEM_MAX, f) : 0;
    int big = buf && !feof(f);
    fclose(f);
    if (!buf || big || !n) {
        if (buf)
            explicit_bzero(buf, n);
        free(buf);
        cfg_fail(x, "%s: '%s' is %s", key, path,
                 !buf  ? "not readable (out of memory)"
                 : big ? "larger than 1 MiB"
                       : "empty");
        return NULL;
    }
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        explicit_bzero(buf, n);
        free(buf);
        cfg_fail(x, "%s: '%s' is not PEM (no -----BEGIN line)", key, path);
        return NULL;
    }
    return buf;
}
static int json_str_field(struct cfg_ctx *x, json_t *o, const char *where, const char *k,
                          const char **out)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v) || !*json_string_value(v))
        return cfg_fail(x, "config file %s: %s.%s: must be a non-empty string", x->file, where, k);
    *out = json_string_value(v);
    return 0;
}

static int load_file(struct cfg_ctx *x, struct cfg *c, const char *path, json_t **out)
{
    json_error_t je;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_fail(x, "AMIBRIDGE_CONFIG: cannot read '%s': %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    if (sz > CFG_FILE_MAX)
        return cfg_fail(x, "AMIBRIDGE_CONFIG: '%s' is larger than %d bytes", path, CFG_FILE_MAX);
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return cfg_fail(x, "config file %s: line %d: %s", path, je.line, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return cfg_fail(x, "config file %s: must hold a JSON object", path);
    }
    c->config_path = strdup(path);
    *out = root;
    return 0;
}

/* An exact origin: scheme://host[:port], nothing after. */
static int valid_origin(const char *o)
{
    const char *p;
    if (!strncmp(o, "https://", 8))
        p = o + 8;
    else if (!strncmp(o, "http://", 7))
        p = o + 7;
    else
        return 0;
    if (!*p)
        return 0;
    for (; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != ':' && *p != '[' &&
            *p != ']')
            return 0;
    return 1;
}

/* An event name glob as the POSIX regex Asterisk's Filter takes, anchored
 * on the event's first line: "RTCP*" -> "^Event: RTCP.*[[:space:]]". */
static int glob_filter(const char *glob, int exclude, char ***v, size_t *n)
{
    char re[256];
    size_t o = (size_t)snprintf(re, sizeof(re), "%s^Event: ", exclude ? "!" : "");
    for (const char *g = glob; *g && o + 16 < sizeof(re); g++) {
        if (*g == '*') {
            re[o++] = '.';
            re[o++] = '*';
        } else if (*g == '?') {
            re[o++] = '.';
        } else if (*g == '[' && g[1] != ']' && !(g[1] == '!' && g[2] == ']') && strchr(g, ']')) {
            /* a bracket class carries over; fnmatch's [!..] is regex [^..] */
            re[o++] = *g++;
            if (*g == '!') {
                re[o++] = '^';
                g++;
            }
            while (*g != ']' && o + 16 < sizeof(re))
                re[o++] = *g++;
            re[o++] = ']';
        } else if (isalnum((unsigned char)*g) || *g == '_' || *g == '-') {
            re[o++] = *g;
        } else {
            re[o++] = '\\';
            re[o++] = *g;
        }
    }
    snprintf(re + o, sizeof(re) - o, "[[:space:]]");
    return cfg_strv_push(v, n, re);
}

/* The Filter actions for the event connection. OriginateResponse always
 * passes: calls wait for it. */
static int server_filters(struct cfg *c)
{
    for (size_t i = 0; i < c->nevents_include; i++)
        if (glob_filter(c->events_include[i], 0, &c->ami_filters, &c->nami_filters))
            return -1;
    if (c->nevents_include &&
        glob_filter("OriginateResponse", 0, &c->ami_filters, &c->nami_filters))
        return -1;
    for (size_t i = 0; i < c->nevents_exclude; i++)
        if (fnmatch(c->events_exclude[i], "OriginateResponse", 0) != 0 &&
            glob_filter(c->events_exclude[i], 1, &c->ami_filters, &c->nami_filters))
            return -1;
    return 0;
}

/* --- the settings table ---------------------------------------------------------
 *
 * Every setting is one row of cfg_settings[]: its variable, its key in the
 * config file, how its value is read, its bounds, its default (as the text
 * a variable would hold) and its documentation. The row drives reading the
 * environment and the file, the defaults, the file's known-keys check,
 * --help and --config-table. What a row cannot say (a value that needs
 * another: the secret pair, the allow list that edits the deny list, the
 * loopback rule) is in the named functions the rows point at and in
 * cfg_rules(). */

/* How a row's value is read and where it goes (off, and off_n for a count). */
enum cfg_kind {
    CFG_INT,   /* int from lo to hi */
    CFG_UINT,  /* unsigned from lo to hi */
    CFG_SIZE,  /* size_t from lo to hi */
    CFG_RATE,  /* double; the environment lo to hi, the file any number above 0 up to hi */
    CFG_STR,   /* char *, a copy; at most hi characters when hi is set */
    CFG_TEXT,  /* text that `parse` reads and stores */
    CFG_WORDS, /* char ** and its count: words split on spaces and commas, in the file an
                * array of strings; a variable set to nothing empties the list */
    CFG_NETS,  /* struct netlist_net * and its count: networks, CIDR (core/netlist) */
    CFG_OWN,   /* `load` reads it, and the rows that go with it, from every source */
    CFG_DOC,   /* documented here, read by another row's `load` or before the table */
};

enum {
    CFG_F_SERVER = 1 << 0,        /* a field of struct cfg_server; in the file, a servers[] key */
    CFG_F_TUNING = 1 << 1,        /* the variable is also every servers[] entry's default */
    CFG_F_NAMED_IN_FILE = 1 << 2, /* a servers[] entry must give it: no default there */
};

struct cfg_setting;
/* Reads a row's text (the winning one: environment over file over default,
 * for servers[] entries file over environment) into base; a message names key. */
typedef int cfg_parse_fn(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                         const char *v, void *base);
/* Reads a row (CFG_OWN) from the environment and the file's top level. */
typedef int cfg_load_fn(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c,
                        json_t *root);
/* Checks or tidies a row's value once every source is read. */
typedef int cfg_check_fn(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c);

struct cfg_setting {
    struct cfg_doc doc; /* variable, file key, default as text ("(...)": none), help */
    enum cfg_kind kind;
    unsigned flags; /* CFG_F_* */
    double lo, hi;  /* bounds of the numbers, longest CFG_STR */
    size_t off;     /* the field in struct cfg (struct cfg_server with CFG_F_SERVER) */
    size_t off_n;   /* the count of a list */
    cfg_parse_fn *parse;
    cfg_load_fn *load;
    cfg_check_fn *check;
};

#define TOP(f)                    offsetof(struct cfg, f)
#define SRV(f)                    offsetof(struct cfg_server, f)
#define DOC(env, json, def, help) .doc = {env, json, def, help}

static cfg_parse_fn parse_listen, parse_server_name, parse_auth, parse_redis_url,
    parse_redis_prefix, parse_instance_id, parse_log_level;
static cfg_load_fn servers_load, api_keys_load, allow_actions_load, webhooks_load, tls_load;
static cfg_check_fn deny_funcs_check, cors_origins_check, event_globs_check, instance_id_check;

static const struct cfg_setting cfg_settings[] = {
    {DOC("AMIBRIDGE_LISTEN", "listen", "127.0.0.1:8080",
         "HTTP listen address, IP:PORT ([IPv6]:PORT). Anything but loopback requires API keys."),
     .kind = CFG_TEXT, .parse = parse_listen},
    {DOC(NULL, "servers", "",
         "AMI servers, an array of objects with the keys of the AMIBRIDGE_AMI_* settings (name, "
         "username, and one of secret and secret_file, required); instead of the environment's "
         "one."),
     .kind = CFG_OWN, .load = servers_load},
    /* One AMI server from the environment; in the file, each servers[] entry
     * has these keys, and the settings marked CFG_F_TUNING from the
     * environment are its defaults. */
    {DOC("AMIBRIDGE_AMI_HOST", "host", "127.0.0.1", "Asterisk host (name or address)."),
     .kind = CFG_STR, .flags = CFG_F_SERVER, .off = SRV(host)},
    {DOC("AMIBRIDGE_AMI_PORT", "port", "5038", "Asterisk AMI port."), .kind = CFG_INT,
     .flags = CFG_F_SERVER, .lo = 1, .hi = 65535, .off = SRV(port)},
    {DOC("AMIBRIDGE_AMI_USERNAME", "username", "(required)", "AMI user (manager.conf section)."),
     .kind = CFG_STR, .flags = CFG_F_SERVER, .off = SRV(username)},
    {DOC("AMIBRIDGE_AMI_SECRET", "secret", "(required)",
         "AMI secret. Or AMIBRIDGE_AMI_SECRET_FILE."),
     .kind = CFG_DOC, .flags = CFG_F_SERVER},
    {DOC("AMIBRIDGE_AMI_SECRET_FILE", "secret_file", "",
         "File holding the AMI secret (trailing newline ignored)."),
     .kind = CFG_DOC, .flags = CFG_F_SERVER},
    {DOC("AMIBRIDGE_AMI_NAME", "name", "default",
         "Name of this AMI server in the API, events and metrics."),
     .kind = CFG_TEXT, .flags = CFG_F_SERVER | CFG_F_NAMED_IN_FILE, .parse = parse_server_name},
    {DOC("AMIBRIDGE_AMI_AUTH", "auth", "md5",
         "Login method: md5 (challenge, secret never sent) or plain."),
     .kind = CFG_TEXT, .flags = CFG_F_SERVER | CFG_F_TUNING, .parse = parse_auth},
    {DOC("AMIBRIDGE_AMI_POOL_SIZE", "pool_size", "4",
         "Action connections per server (plus one event connection)."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = 1, .hi = CFG_POOL_SIZE_MAX,
     .off = SRV(pool_size)},
    {DOC("AMIBRIDGE_AMI_TIMEOUT_MS", "timeout_ms", "10000",
         "Per-action timeout; past it the request gets 504."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = CFG_TIMEOUT_MS_MIN,
     .hi = CFG_TIMEOUT_MS_MAX, .off = SRV(timeout_ms)},
    {DOC("AMIBRIDGE_AMI_MAX_INFLIGHT", "max_inflight", "1024",
         "Actions in flight per server; past it 503."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = 1, .hi = 1000000,
     .off = SRV(max_inflight)},
    {DOC("AMIBRIDGE_AMI_MAX_INFLIGHT_PER_CONN", "max_inflight_per_conn", "256",
         "Actions in flight per action connection."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = 1, .hi = 100000,
     .off = SRV(max_inflight_per_conn)},
    {DOC("AMIBRIDGE_AMI_KEEPALIVE_MS", "keepalive_ms", "15000",
         "Keepalive Ping interval on idle AMI connections."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = 1000, .hi = 3600000,
     .off = SRV(keepalive_ms)},
    {DOC("AMIBRIDGE_AMI_CONNECT_TIMEOUT_MS", "connect_timeout_ms", "5000",
         "Time allowed for connect, banner and login."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = 100, .hi = 600000,
     .off = SRV(connect_timeout_ms)},
    {DOC("AMIBRIDGE_AMI_EVENTS_HOLD_MIB", "events_hold_mib", "256",
         "MiB of AMI events held back while Redis catches up; past it the oldest are dropped; "
         "0: none held."),
     .kind = CFG_INT, .flags = CFG_F_SERVER | CFG_F_TUNING, .lo = 0, .hi = CFG_EVENTS_HOLD_MIB_MAX,
     .off = SRV(events_hold_mib)},
    {DOC("AMIBRIDGE_API_KEYS", "api_keys", "",
         "Space-separated NAME:TOKEN:SCOPES; scopes read,call,control,actions,admin."),
     .kind = CFG_OWN, .load = api_keys_load},
    {DOC("AMIBRIDGE_API_KEYS_FILE", NULL, "",
         "File with more NAME:TOKEN:SCOPES entries, one per line."),
     .kind = CFG_DOC},
    /* Actions that run commands, change the dialplan or configuration, read
     * configuration files or secrets (PJSIP auth objects print passwords, the
     * AstDB keeps PINs), or reprovision phones: an ops key may get some back
     * with AMIBRIDGE_ALLOW_ACTIONS. */
    {DOC("AMIBRIDGE_DENY_ACTIONS", "deny_actions",
         "Command Shutdown Restart UpdateConfig GetConfig GetConfigJSON CreateConfig "
         "ListCategories ModuleLoad ModuleUnload Reload DBGet DBGetTree DBPut DBDel DBDelTree AGI "
         "DialplanExtensionAdd DialplanExtensionRemove Monitor ChangeMonitor PJSIPNotify SIPnotify "
         "PJSIPShowAuths PJSIPShowEndpoint ConfbridgeStartRecord DAHDIDialOffhook",
         "Actions refused on POST /v1/actions (replaces the default list)."),
     .kind = CFG_WORDS, .off = TOP(deny_actions), .off_n = TOP(ndeny_actions)},
    {DOC("AMIBRIDGE_ALLOW_ACTIONS", "allow_actions", "",
         "Actions removed from the deny list (e.g. Command for ops)."),
     .kind = CFG_OWN, .load = allow_actions_load},
    /* Applications that run programs (System, Exec, AGI, ExternalIVR,
     * MP3Player's player), write or read files where the caller says
     * (MixMonitor, Monitor, Record, Dictate, SendFAX, ReceiveFAX), set variables
     * and functions (Set, MSet), listen in or barge (ChanSpy, ExtenSpy,
     * BridgeAdd, DAHDIBarge), move, take or hang up other people's channels
     * (ChannelRedirect, Bridge, Pickup, PickupChan, ParkedCall, SoftHangup:
     * a call key is not a control key) or give a dial tone to dial anything
     * (DISA). */
    {DOC("AMIBRIDGE_DENY_ORIGINATE_APPS", "deny_originate_apps",
         "*system* *exec* *agi* ExternalIVR MixMonitor Monitor Record Dictate SendFAX ReceiveFAX "
         "Set MSet ChanSpy ExtenSpy DISA MP3Player ChannelRedirect BridgeAdd DAHDIBarge Bridge "
         "Pickup PickupChan ParkedCall SoftHangup DAHDIScan",
         "Originate Application globs refused (case-insensitive), whatever the key."),
     .kind = CFG_WORDS, .off = TOP(deny_apps), .off_n = TOP(ndeny_apps)},
    /* Dialplan functions a value may call (${...}, $[...], a variable name
     * ending in ')'): caller and call data, string and time helpers, audio
     * settings of the call itself. */
    {DOC("AMIBRIDGE_ALLOW_FUNCTIONS", "allow_functions",
         "CALLERID CONNECTEDLINE REDIRECTING CDR LEN ISNULL EXISTS IF IFTIME STRFTIME MATH HASH "
         "QUEUE_MEMBER EXTENSION_STATE PJSIP_HEADER SIP_HEADER TIMEOUT JITTERBUFFER "
         "AUDIOHOOK_INHERIT VOLUME",
         "The only dialplan functions a value may call (${...}, $[...], a variable name ending in "
         "')'); globs, case-insensitive (replaces the default list)."),
     .kind = CFG_WORDS, .off = TOP(allow_funcs), .off_n = TOP(nallow_funcs)},
    /* Never, whatever the allow list says: they run commands (SHELL, SYSTEM),
     * re-evaluate (EVAL), read or write files and configuration (FILE, STAT,
     * AST_CONFIG: manager.conf's secrets), the AstDB (DB*), reach out (CURL*,
     * ODBC, SQL, REALTIME), read the environment (ENV), or touch other channels
     * and global state (GLOBAL, SHARED, IMPORT, MASTER_CHANNEL). */
    {DOC("AMIBRIDGE_DENY_FUNCTIONS", "deny_functions",
         "SHELL SYSTEM EVAL FILE* STAT AST_CONFIG DB DB_* CURL* ODBC* SQL* REALTIME* ENV GLOBAL "
         "SHARED IMPORT MASTER_CHANNEL",
         "Dialplan functions refused even when allowed (globs; a trailing '(' is ignored)."),
     .kind = CFG_WORDS, .off = TOP(deny_funcs), .off_n = TOP(ndeny_funcs),
     .check = deny_funcs_check},
    {DOC("AMIBRIDGE_MAX_BODY", "max_body", "65536", "Largest request body in bytes; past it 413."),
     .kind = CFG_SIZE, .lo = 1, .hi = CFG_MAX_BODY_MAX, .off = TOP(max_body)},
    {DOC("AMIBRIDGE_HTTP_MAX_CONNECTIONS", "http_max_connections", "2048",
         "Concurrent HTTP connections. The last 10% are a reserve: a new connection that takes one "
         "cuts the connection that has waited longest for its request and never showed a valid "
         "key."),
     .kind = CFG_UINT, .lo = 1, .hi = 1000000, .off = TOP(http_max_connections)},
    {DOC("AMIBRIDGE_HTTP_TIMEOUT_S", "http_timeout_s", "60",
         "A connection with nothing read or sent for this many seconds is cut (a stream whose "
         "client stopped reading, too); not while its request is being handled or its stream "
         "has nothing to send."),
     .kind = CFG_UINT, .lo = 1, .hi = 86400, .off = TOP(http_timeout_s)},
    {DOC("AMIBRIDGE_HTTP_HEADER_TIMEOUT_S", NULL, "10",
         "A connection must send a whole request head within this many seconds of opening or of "
         "its previous answer (slow-header clients and idle keep-alive connections are cut)."),
     .kind = CFG_UINT, .lo = 1, .hi = 3600, .off = TOP(http_header_timeout_s)},
    {DOC("AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S", NULL, "30",
         "A connection must send a whole request, head and body, within this many seconds of "
         "opening or of its previous answer (slow-body clients are cut)."),
     .kind = CFG_UINT, .lo = 1, .hi = 86400, .off = TOP(http_request_timeout_s)},
    {DOC("AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT", NULL, "256",
         "Connections one client address may hold, loopback included; past it new ones are closed "
         "at once. Addresses of AMIBRIDGE_TRUSTED_PROXIES are not capped. 0: no limit."),
     .kind = CFG_UINT, .lo = 0, .hi = 1000000, .off = TOP(http_max_connections_per_client)},
    {DOC("AMIBRIDGE_HTTP_REUSEPORT", NULL, "0",
         "1: bind with SO_REUSEPORT so several processes share the port (scale up)."),
     .kind = CFG_INT, .lo = 0, .hi = 1, .off = TOP(http_reuseport)},
    {DOC("AMIBRIDGE_CALLS_PER_SECOND", "calls_per_second", "5",
         "Originates per second per API key (token bucket; also the generic Originate)."),
     .kind = CFG_RATE, .lo = 0.001, .hi = CFG_CALLS_RATE_MAX, .off = TOP(calls_per_second)},
    {DOC("AMIBRIDGE_CALLS_BURST", "calls_burst", "10",
         "Originates a key may place at once before the rate applies."),
     .kind = CFG_INT, .lo = 1, .hi = CFG_CALLS_BURST_MAX, .off = TOP(calls_burst)},
    {DOC("AMIBRIDGE_CALLS_MAX_INFLIGHT", "calls_max_inflight", "50",
         "Originates waiting for their outcome per AMI server; past it 429."),
     .kind = CFG_INT, .lo = 1, .hi = 1000000, .off = TOP(calls_max_inflight)},
    {DOC("AMIBRIDGE_CORS_ORIGINS", "cors_origins", "",
         "Browser origins (exact, space-separated) allowed to call the API, e.g. "
         "https://crm.example."),
     .kind = CFG_WORDS, .off = TOP(cors_origins), .off_n = TOP(ncors_origins),
     .check = cors_origins_check},
    {DOC("AMIBRIDGE_IDEMPOTENCY_TTL_S", "idempotency_ttl_s", "86400",
         "How long an Idempotency-Key is remembered."),
     .kind = CFG_INT, .lo = 1, .hi = 30 * 86400, .off = TOP(idempotency_ttl_s)},
    {DOC("AMIBRIDGE_IDEMPOTENCY_MAX", NULL, "100000",
         "Idempotency keys kept in memory (without Redis)."),
     .kind = CFG_INT, .lo = 1, .hi = 10000000, .off = TOP(idempotency_max)},
    {DOC("AMIBRIDGE_REDIS_URL", "redis_url", "",
         "redis://[user:pass@]host:port[/db] or unix:/path."),
     .kind = CFG_TEXT, .parse = parse_redis_url},
    {DOC("AMIBRIDGE_REDIS_PREFIX", NULL, "ami",
         "Prefix of Redis channels (ami.SERVER.EVENT) and keys."),
     .kind = CFG_TEXT, .parse = parse_redis_prefix},
    {DOC("AMIBRIDGE_REDIS_BUFFER", NULL, "10000",
         "Events held while Redis is slow or down; past it the oldest are dropped (counted)."),
     .kind = CFG_INT, .lo = 1, .hi = 10000000, .off = TOP(redis_buffer)},
    {DOC("AMIBRIDGE_REDIS_STREAM", NULL, "",
         "Also XADD every event to this Redis stream (for replay)."),
     .kind = CFG_STR, .hi = 200, .off = TOP(redis_stream)},
    {DOC("AMIBRIDGE_REDIS_STREAM_MAXLEN", NULL, "100000",
         "Approximate length the stream is trimmed to."),
     .kind = CFG_INT, .lo = 1, .hi = 1000000000, .off = TOP(redis_stream_maxlen)},
    {DOC("AMIBRIDGE_EVENTS_INCLUDE", NULL, "", "Event name globs to publish (empty: all)."),
     .kind = CFG_WORDS, .off = TOP(events_include), .off_n = TOP(nevents_include),
     .check = event_globs_check},
    {DOC("AMIBRIDGE_EVENTS_EXCLUDE", NULL, "VarSet Newexten RTCP*",
         "Event name globs never published."),
     .kind = CFG_WORDS, .off = TOP(events_exclude), .off_n = TOP(nevents_exclude),
     .check = event_globs_check},
    {DOC("AMIBRIDGE_EVENTS_SERVER_FILTER", NULL, "0",
         "1: also send the filters to Asterisk (Filter action) so excluded events never cross the "
         "wire."),
     .kind = CFG_INT, .lo = 0, .hi = 1, .off = TOP(events_server_filter)},
    {DOC("AMIBRIDGE_CALL_TRUNKS", NULL, "",
         "Channel globs of trunks (space-separated, e.g. PJSIP/trunk-*): a call whose first "
         "channel is one is inbound, one that dials one is outbound; others are internal."),
     .kind = CFG_WORDS, .off = TOP(call_trunks), .off_n = TOP(ncall_trunks)},
    {DOC("AMIBRIDGE_CALL_HISTORY_S", NULL, "3600",
         "Seconds an ended call stays readable at GET /v1/calls/{id}."),
     .kind = CFG_INT, .lo = 0, .hi = 7 * 86400, .off = TOP(call_history_s)},
    {DOC("AMIBRIDGE_CALL_MAX_HISTORY", NULL, "10000",
         "Ended calls kept for GET /v1/calls/{id}; past it the oldest go first."),
     .kind = CFG_INT, .lo = 0, .hi = 1000000, .off = TOP(call_max_history)},
    {DOC("AMIBRIDGE_CALL_MAX_LIVE", NULL, "10000",
         "Calls followed at once per server; more are counted "
         "(amibridge_calls_total{event=\"untracked\"}), not followed."),
     .kind = CFG_INT, .lo = 1, .hi = 1000000, .off = TOP(call_max_live)},
    {DOC("AMIBRIDGE_SSE_REPLAY", NULL, "1000",
         "Events kept in memory for SSE Last-Event-ID replay."),
     .kind = CFG_INT, .lo = 0, .hi = 1000000, .off = TOP(sse_replay)},
    {DOC("AMIBRIDGE_SSE_MAX_CLIENTS", NULL, "100", "Concurrent SSE clients; past it 503."),
     .kind = CFG_INT, .lo = 1, .hi = 100000, .off = TOP(sse_max_clients)},
    {DOC("AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY", NULL, "10",
         "Concurrent SSE clients per API key (without keys: per client address); past it 429. "
         "Never more than AMIBRIDGE_SSE_MAX_CLIENTS."),
     .kind = CFG_INT, .lo = 1, .hi = 100000, .off = TOP(sse_max_clients_per_key)},
    {DOC("AMIBRIDGE_SSE_QUEUE", NULL, "1000",
         "Events queued per SSE client; a client that falls further behind is disconnected."),
     .kind = CFG_INT, .lo = 1, .hi = 1000000, .off = TOP(sse_queue)},
    {DOC("AMIBRIDGE_SSE_HEARTBEAT_S", NULL, "15", "Seconds between SSE comment heartbeats."),
     .kind = CFG_INT, .lo = 1, .hi = 3600, .off = TOP(sse_heartbeat_s)},
    {DOC("AMIBRIDGE_WEBHOOK_ALLOW_NETS", NULL, "",
         "Networks (CIDR, space-separated) webhooks may reach although the SSRF guard refuses "
         "loopback, private, link-local, CGNAT and unique-local addresses, e.g. 10.20.0.0/16."),
     .kind = CFG_STR, .off = TOP(webhook_allow_nets)},
    {DOC("AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS", NULL, "12",
         "Attempts per delivery before it is recorded as failed."),
     .kind = CFG_INT, .lo = 1, .hi = 1000, .off = TOP(webhook_max_attempts)},
    {DOC("AMIBRIDGE_WEBHOOK_MAX_AGE_S", NULL, "86400",
         "A delivery older than this is not retried again (recorded as failed)."),
     .kind = CFG_INT, .lo = 1, .hi = 30 * 86400, .off = TOP(webhook_max_age_s)},
    {DOC("AMIBRIDGE_WEBHOOK_TIMEOUT_MS", NULL, "10000", "Time allowed for one delivery attempt."),
     .kind = CFG_INT, .lo = CFG_TIMEOUT_MS_MIN, .hi = CFG_TIMEOUT_MS_MAX,
     .off = TOP(webhook_timeout_ms)},
    {DOC("AMIBRIDGE_WEBHOOK_RETRY_BASE_MS", NULL, "1000",
         "First retry delay; doubled per attempt, with jitter (a random 50-100% of it)."),
     .kind = CFG_INT, .lo = 10, .hi = 3600000, .off = TOP(webhook_retry_base_ms)},
    {DOC("AMIBRIDGE_WEBHOOK_RETRY_MAX_MS", NULL, "600000", "Longest retry delay."), .kind = CFG_INT,
     .lo = 10, .hi = 86400000, .off = TOP(webhook_retry_max_ms)},
    {DOC("AMIBRIDGE_WEBHOOK_QUEUE", NULL, "10000",
         "Deliveries waiting per subscription; past it new events are dropped (counted, logged)."),
     .kind = CFG_INT, .lo = 1, .hi = 1000000, .off = TOP(webhook_queue)},
    {DOC("AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS", NULL, "100",
         "Webhook subscriptions, static ones included."),
     .kind = CFG_INT, .lo = 1, .hi = 10000, .off = TOP(webhook_max_subscriptions)},
    {DOC("AMIBRIDGE_WEBHOOK_SECRET_GRACE_S", NULL, "86400",
         "After a PATCH with a new secret, the old one keeps signing webhook-signature (Standard "
         "Webhooks) this long; a PATCH can say otherwise with secret_grace_s. 0: it stops at "
         "once."),
     .kind = CFG_INT, .lo = 0, .hi = 30 * 86400, .off = TOP(webhook_secret_grace_s)},
    {DOC(NULL, "webhooks", "", "Static webhook subscriptions (read-only), an array of objects."),
     .kind = CFG_OWN, .load = webhooks_load},
    {DOC("AMIBRIDGE_STATE_DIR", NULL, "",
         "Without Redis: directory of the webhook subscriptions file (webhooks.json). Empty: "
         "subscriptions made through the API last until the process ends."),
     .kind = CFG_STR, .off = TOP(state_dir)},
    {DOC("AMIBRIDGE_TRUSTED_NETS", NULL, "",
         "Client networks (CIDR, space-separated) allowed to call at all; others get 403 before "
         "any key is looked at. Loopback is always allowed. Empty: every client."),
     .kind = CFG_NETS, .off = TOP(trusted_nets), .off_n = TOP(ntrusted_nets)},
    {DOC("AMIBRIDGE_TRUSTED_PROXIES", NULL, "",
         "Reverse proxies (CIDR, space-separated) whose X-Forwarded-For names the client: the "
         "right-most address in it that is not such a proxy is the client for lock-outs, "
         "AMIBRIDGE_TRUSTED_NETS, loopback-only mode and logs. Empty: the TCP peer is the client."),
     .kind = CFG_NETS, .off = TOP(trusted_proxies), .off_n = TOP(ntrusted_proxies)},
    {DOC("AMIBRIDGE_AUTH_FAIL_LIMIT", NULL, "30",
         "Wrong API keys one client address may send per window; past it every request from it "
         "without a valid key gets 429 until the window ends (a valid key is still served). "
         "Earlier failures are answered slower."),
     .kind = CFG_INT, .lo = 1, .hi = 1000000, .off = TOP(auth_fail_limit)},
    {DOC("AMIBRIDGE_AUTH_FAIL_WINDOW_S", NULL, "60",
         "The window of AMIBRIDGE_AUTH_FAIL_LIMIT, in seconds."),
     .kind = CFG_INT, .lo = 1, .hi = 86400, .off = TOP(auth_fail_window_s)},
    {DOC("AMIBRIDGE_TLS_CERT", NULL, "",
         "PEM certificate chain: serve HTTPS on AMIBRIDGE_LISTEN (with AMIBRIDGE_TLS_KEY)."),
     .kind = CFG_OWN, .load = tls_load},
    {DOC("AMIBRIDGE_TLS_KEY", NULL, "", "PEM private key of AMIBRIDGE_TLS_CERT."), .kind = CFG_DOC},
    {DOC("AMIBRIDGE_LEADER_TTL_MS", NULL, "5000",
         "With Redis: the leader lease. One replica publishes events and makes webhook deliveries; "
         "another takes over within 2 x this after it dies."),
     .kind = CFG_INT, .lo = 300, .hi = 600000, .off = TOP(leader_ttl_ms)},
    {DOC("AMIBRIDGE_METRICS_AUTH", NULL, "0", "1: GET /metrics needs an API key with scope read."),
     .kind = CFG_INT, .lo = 0, .hi = 1, .off = TOP(metrics_auth)},
    {DOC("AMIBRIDGE_INSTANCE_ID", NULL, "(random)",
         "Prefix of every ActionID; unique per replica."),
     .kind = CFG_TEXT, .parse = parse_instance_id, .check = instance_id_check},
    {DOC("AMIBRIDGE_LOG_LEVEL", "log_level", "info", "debug, info, warn or error."),
     .kind = CFG_TEXT, .parse = parse_log_level},
    {DOC("AMIBRIDGE_CONFIG", NULL, "", "JSON config file (servers, api_keys, deny lists, ...)."),
     .kind = CFG_DOC},
};

#define CFG_NSETTINGS (sizeof(cfg_settings) / sizeof(cfg_settings[0]))

const struct cfg_doc *cfg_doc_at(size_t i)
{
    return i < CFG_NSETTINGS ? &cfg_settings[i].doc : NULL;
}

/* A default in parentheses describes one ("(required)"); empty is none. */
static int has_default(const char *def)
{
    return def && def[0] && def[0] != '(';
}

static int is_text(const struct cfg_setting *s)
{
    return s->kind == CFG_STR || s->kind == CFG_TEXT;
}

static void store_int(const struct cfg_setting *s, void *f, long v)
{
    if (s->kind == CFG_UINT)
        *(unsigned *)f = (unsigned)v;
    else if (s->kind == CFG_SIZE)
        *(size_t *)f = (size_t)v;
    else
        *(int *)f = (int)v;
}

/* One text (a variable's value or a default) into a row's field. */
static int from_text(struct cfg_ctx *x, const struct cfg_setting *s, const char *key, const char *v,
                     void *base)
{
    void *f = (char *)base + s->off;
    size_t *n = (size_t *)((char *)base + s->off_n);
    long l;
    char err[200];
    switch (s->kind) {
    case CFG_INT:
    case CFG_UINT:
    case CFG_SIZE:
        if (parse_int(v, (long)s->lo, (long)s->hi, &l))
            return cfg_fail(x, "%s: must be an integer from %ld to %ld, got '%s'", key, (long)s->lo,
                            (long)s->hi, v);
        store_int(s, f, l);
        return 0;
    case CFG_RATE:
        if (parse_double(v, s->lo, s->hi, f))
            return cfg_fail(x, "%s: must be a number from %g to %g, got '%s'", key, s->lo, s->hi,
                            v);
        return 0;
    case CFG_STR:
        if (s->hi > 0 && strlen(v) > (size_t)s->hi)
            return cfg_fail(x, "%s: at most %ld characters", key, (long)s->hi);
        free(*(char **)f);
        if (!(*(char **)f = strdup(v)))
            return cfg_fail(x, "out of memory");
        return 0;
    case CFG_TEXT:
        return s->parse(x, s, key, v, base);
    case CFG_WORDS:
        if (cfg_strv_from_words(f, n, v))
            return cfg_fail(x, "out of memory");
        return 0;
    case CFG_NETS:
        if (netlist_parse(v, f, n, err, sizeof(err)))
            return cfg_fail(x, "%s: %s", key, err);
        return 0;
    default:
        return 0;
    }
}

/* A row's value in the file: numbers and lists are stored; the text of
 * CFG_STR and CFG_TEXT is handed back in *text (it may yet be overridden). */
static int from_json(struct cfg_ctx *x, const struct cfg_setting *s, const char *key, json_t *jv,
                     void *base, const char **text)
{
    void *f = (char *)base + s->off;
    switch (s->kind) {
    case CFG_INT:
    case CFG_UINT:
    case CFG_SIZE:
        if (!json_is_integer(jv) || json_integer_value(jv) < (long)s->lo ||
            json_integer_value(jv) > (long)s->hi)
            return cfg_fail(x, "%s: must be an integer from %ld to %ld", key, (long)s->lo,
                            (long)s->hi);
        store_int(s, f, (long)json_integer_value(jv));
        return 0;
    case CFG_RATE:
        if (!json_is_number(jv) || json_number_value(jv) <= 0 || json_number_value(jv) > s->hi)
            return cfg_fail(x, "%s: must be a number above 0, at most %g", key, s->hi);
        *(double *)f = json_number_value(jv);
        return 0;
    case CFG_STR:
    case CFG_TEXT:
        if (!json_is_string(jv) || !*json_string_value(jv))
            return cfg_fail(x, "%s: must be a non-empty string", key);
        *text = json_string_value(jv);
        return 0;
    case CFG_WORDS:
        return cfg_strv_from_json(x, s->doc.json, jv, f, (size_t *)((char *)base + s->off_n));
    default:
        return cfg_fail(x, "%s: cannot be set in the file", key);
    }
}

/* Where a row is read from: the file's object for it (or NULL), named
 * `where` in messages; in a servers[] entry the file ranks over the
 * environment, which only gives the CFG_F_TUNING rows. */
struct cfg_src {
    json_t *obj;
    const char *where;
    int server_entry;
};

/* One row from its default, the file and the environment. Numbers and
 * lists take each source in turn, so a bad value is refused wherever it
 * is; a text is read once, the one that wins, but a variable that is a
 * servers[] entry's default is read even when the entry overrides it. */
static int setting_load(struct cfg_ctx *x, const struct cfg_setting *s, void *base,
                        const struct cfg_src *src)
{
    const char *env = s->doc.env, *ev = NULL, *text = NULL, *tkey = env;
    json_t *jv = src->obj && s->doc.json ? json_object_get(src->obj, s->doc.json) : NULL;
    char jkey[512];
    if (s->kind == CFG_DOC || s->kind == CFG_OWN)
        return 0;
    if (env && (!src->server_entry || (s->flags & CFG_F_TUNING)))
        ev = s->kind == CFG_WORDS ? cfg_env_get(x, env) : cfg_env_val(x, env);
    if (jv)
        snprintf(jkey, sizeof(jkey), "config file %s: %s.%s", x->file, src->where, s->doc.json);
    if (has_default(s->doc.def) && !(src->server_entry && (s->flags & CFG_F_NAMED_IN_FILE))) {
        if (is_text(s))
            text = s->doc.def;
        else if (from_text(x, s, env, s->doc.def, base))
            return -1;
    }
    for (int step = 0; step < 2; step++) {
        int file = step == 0 ? !src->server_entry : src->server_entry;
        if (file) {
            const char *t = NULL;
            if (!jv)
                continue;
            if (from_json(x, s, jkey, jv, base, &t))
                return -1;
            if (t) {
                text = t;
                tkey = jkey;
            }
        } else if (ev) { /* the environment; as a servers[] entry's default it is read anyway */
            if (is_text(s) && !src->server_entry) {
                text = ev;
                tkey = env;
            } else if (from_text(x, s, env, ev, base)) {
                return -1;
            } else {
                text = NULL; /* read: the default no longer applies */
            }
        }
    }
    return is_text(s) && text ? from_text(x, s, tkey, text, base) : 0;
}

/* Keys of an object of the file (the top level, or a servers[] entry)
 * that no row names. */
static int check_known_keys(struct cfg_ctx *x, json_t *o, const char *where, unsigned server)
{
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        size_t i;
        for (i = 0; i < CFG_NSETTINGS; i++)
            if ((cfg_settings[i].flags & CFG_F_SERVER) == server && cfg_settings[i].doc.json &&
                !strcmp(cfg_settings[i].doc.json, k))
                break;
        if (i == CFG_NSETTINGS)
            return cfg_fail(x, "config file %s: %s: unknown key '%.64s'", x->file, where, k);
    }
    return 0;
}
/* --- addresses ---------------------------------------------------------------- */

static int parse_listen(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                        const char *v, void *base)
{
    struct cfg *c = base;
    (void)s;
    char host[80];
    const char *port;
    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - v - 1) >= sizeof(host))
            return cfg_fail(x, "%s: '%s' is not [IPv6]:PORT", key, v);
        snprintf(host, sizeof(host), "%.*s", (int)(rb - v - 1), v + 1);
        port = rb + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (!colon || (size_t)(colon - v) >= sizeof(host))
            return cfg_fail(x, "%s: '%s' is not IP:PORT", key, v);
        snprintf(host, sizeof(host), "%.*s", (int)(colon - v), v);
        port = colon + 1;
    }
    long p;
    if (parse_int(port, 0, 65535, &p))
        return cfg_fail(x, "%s: port '%s' must be 0-65535", key, port);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");
    if (!*host)
        snprintf(host, sizeof(host), "0.0.0.0");
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) {
        c->listen_loopback = a[0] == 127;
    } else if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char lo6[16] = {[15] = 1};
        c->listen_loopback = !memcmp(a, lo6, 16);
    } else {
        return cfg_fail(x, "%s: '%s' is not an IP address", key, host);
    }
    snprintf(c->listen_host, sizeof(c->listen_host), "%s", host);
    c->listen_port = (int)p;
    return 0;
}
static void server_free(struct cfg_server *s)
{
    free(s->name);
    free(s->host);
    free(s->username);
    if (s->secret)
        explicit_bzero(s->secret, strlen(s->secret));
    free(s->secret);
}

static int parse_auth(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                      const char *v, void *base)
{
    struct cfg_server *srv = base;
    (void)s;
    if (!strcasecmp(v, "md5"))
        srv->auth = CFG_AUTH_MD5;
    else if (!strcasecmp(v, "plain"))
        srv->auth = CFG_AUTH_PLAIN;
    else
        return cfg_fail(x, "%s: must be md5 or plain, got '%s'", key, v);
    return 0;
}

static int parse_server_name(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                             const char *v, void *base)
{
    struct cfg_server *srv = base;
    (void)s;
    if (!cfg_valid_name(v))
        return cfg_fail(x, "%s: '%.64s' must be 1-%d of A-Z a-z 0-9 _ -", key, v, CFG_NAME_MAX);
    free(srv->name);
    if (!(srv->name = strdup(v)))
        return cfg_fail(x, "out of memory");
    return 0;
}

static int parse_redis_url(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                           const char *v, void *base)
{
    struct cfg *c = base;
    (void)s;
    /* the URL is not echoed: it may hold a password */
    if (strncmp(v, "redis://", 8) && strncmp(v, "unix:", 5))
        return cfg_fail(x, "%s: must start with redis:// or unix:", key);
    if (!(c->redis_url = strdup(v)))
        return cfg_fail(x, "out of memory");
    return 0;
}

static int parse_redis_prefix(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                              const char *v, void *base)
{
    struct cfg *c = base;
    (void)s;
    if (strlen(v) >= sizeof(c->redis_prefix) || !cfg_valid_name(v))
        return cfg_fail(x, "%s: '%.64s' must be 1-63 of A-Z a-z 0-9 _ -", key, v);
    snprintf(c->redis_prefix, sizeof(c->redis_prefix), "%s", v);
    return 0;
}

static int parse_instance_id(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                             const char *v, void *base)
{
    struct cfg *c = base;
    (void)s;
    if (strlen(v) >= sizeof(c->instance_id) || !cfg_valid_name(v))
        return cfg_fail(x, "%s: '%.40s' must be 1-32 of A-Z a-z 0-9 _ -", key, v);
    snprintf(c->instance_id, sizeof(c->instance_id), "%s", v);
    return 0;
}

static int parse_log_level(struct cfg_ctx *x, const struct cfg_setting *s, const char *key,
                           const char *v, void *base)
{
    struct cfg *c = base;
    (void)s;
    if ((c->log_level = log_level_parse(v)) < 0)
        return cfg_fail(x, "%s: must be debug, info, warn or error, got '%s'", key, v);
    return 0;
}

/* The old spelling "SHELL(" names the function SHELL. */
static int deny_funcs_check(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c)
{
    (void)x;
    (void)s;
    for (size_t i = 0; i < c->ndeny_funcs; i++) {
        size_t l = strlen(c->deny_funcs[i]);
        if (l > 1 && c->deny_funcs[i][l - 1] == '(')
            c->deny_funcs[i][l - 1] = '\0';
    }
    return 0;
}

static int cors_origins_check(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c)
{
    for (size_t i = 0; i < c->ncors_origins; i++) {
        if (!strcmp(c->cors_origins[i], "*"))
            return cfg_fail(x,
                            "%s: '*' is not allowed: list the exact origins "
                            "(https://crm.example) that may call with an API key",
                            s->doc.env);
        if (!valid_origin(c->cors_origins[i]))
            return cfg_fail(x, "%s: '%.100s' is not an origin (scheme://host[:port], no path)",
                            s->doc.env, c->cors_origins[i]);
    }
    return 0;
}

/* AMIBRIDGE_EVENTS_INCLUDE and _EXCLUDE hold event name globs. */
static int event_globs_check(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c)
{
    char **v = *(char ***)((char *)c + s->off);
    size_t n = *(size_t *)((char *)c + s->off_n);
    for (size_t i = 0; i < n; i++)
        for (const char *p = v[i]; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("*?[]-_!", *p))
                return cfg_fail(x, "%s: '%.64s' is not an event name glob", s->doc.env, v[i]);
    return 0;
}

/* Without AMIBRIDGE_INSTANCE_ID, a random one. */
static int instance_id_check(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c)
{
    unsigned char r[4];
    (void)s;
    if (c->instance_id[0])
        return 0;
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return cfg_fail(x, "cannot get random bytes for the instance id: %s", strerror(errno));
    snprintf(c->instance_id, sizeof(c->instance_id), "ab%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    return 0;
}

/* --- servers ------------------------------------------------------------------ */

/* What a server's rows cannot say: the required ones, unique names, and
 * its secret (given, or read from a file, never both). `o` is its servers[]
 * entry, or NULL for the server of the environment. */
static int server_rules(struct cfg_ctx *x, struct cfg *c, struct cfg_server *s, json_t *o,
                        const char *where)
{
    const char *sec, *secfile;
    if (!o) {
        if (!s->username)
            return cfg_fail(x, "AMIBRIDGE_AMI_USERNAME: required (the AMI user from manager.conf)");
        sec = cfg_env_val(x, "AMIBRIDGE_AMI_SECRET");
        secfile = cfg_env_val(x, "AMIBRIDGE_AMI_SECRET_FILE");
        if (sec && secfile)
            return cfg_fail(
                x, "AMIBRIDGE_AMI_SECRET and AMIBRIDGE_AMI_SECRET_FILE are both set; use one");
        if (secfile)
            s->secret = cfg_read_secret_file(x, "AMIBRIDGE_AMI_SECRET_FILE", secfile);
        else if (sec && !(s->secret = strdup(sec)))
            return cfg_fail(x, "out of memory");
        else if (!sec)
            return cfg_fail(x, "AMIBRIDGE_AMI_SECRET: required (or AMIBRIDGE_AMI_SECRET_FILE)");
        return s->secret ? 0 : -1;
    }
    if (!s->name)
        return cfg_fail(x, "config file %s: %s.name: required, 1-%d of A-Z a-z 0-9 _ -", x->file,
                        where, CFG_NAME_MAX);
    for (struct cfg_server *p = c->servers; p < s; p++)
        if (!strcmp(p->name, s->name))
            return cfg_fail(x, "config file %s: %s.name: '%s' is used twice", x->file, where,
                            s->name);
    if (!s->username)
        return cfg_fail(x, "config file %s: %s.username: required", x->file, where);
    if (json_str_field(x, o, where, "secret", &sec) ||
        json_str_field(x, o, where, "secret_file", &secfile))
        return -1;
    if (!!sec == !!secfile)
        return cfg_fail(x, "config file %s: %s: give exactly one of secret and secret_file",
                        x->file, where);
    if (secfile) {
        char key[64];
        snprintf(key, sizeof(key), "%s.secret_file", where);
        s->secret = cfg_read_secret_file(x, key, secfile);
    } else if (!(s->secret = strdup(sec))) {
        return cfg_fail(x, "out of memory");
    }
    return s->secret ? 0 : -1;
}

/* One server from its rows (CFG_F_SERVER), then its rules. */
static int server_load(struct cfg_ctx *x, struct cfg *c, struct cfg_server *s, json_t *o,
                       const char *where)
{
    struct cfg_src src = {o, where, o != NULL};
    for (size_t i = 0; i < CFG_NSETTINGS; i++)
        if ((cfg_settings[i].flags & CFG_F_SERVER) && setting_load(x, &cfg_settings[i], s, &src))
            return -1;
    return server_rules(x, c, s, o, where);
}

/* The servers of the file, or else the one of the environment. The
 * environment may not describe a server next to the file's. */
static int servers_load(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c, json_t *root)
{
    json_t *arr = root ? json_object_get(root, s->doc.json) : NULL;
    if (!arr) {
        if (!(c->servers = calloc(1, sizeof(*c->servers))))
            return cfg_fail(x, "out of memory");
        c->nservers = 1;
        return server_load(x, c, &c->servers[0], NULL, "");
    }
    for (size_t i = 0; i < CFG_NSETTINGS; i++) {
        const struct cfg_setting *t = &cfg_settings[i];
        if ((t->flags & CFG_F_SERVER) && !(t->flags & CFG_F_TUNING) && cfg_env_val(x, t->doc.env))
            return cfg_fail(x, "%s: set, but config file %s defines servers; use one or the other",
                            t->doc.env, x->file);
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > CFG_MAX_SERVERS)
        return cfg_fail(x, "config file %s: servers: must be an array of 1 to %d objects", x->file,
                        CFG_MAX_SERVERS);
    c->servers = calloc(json_array_size(arr), sizeof(*c->servers));
    if (!c->servers)
        return cfg_fail(x, "out of memory");
    size_t i;
    json_t *o;
    json_array_foreach (arr, i, o) {
        char where[32];
        snprintf(where, sizeof(where), "servers[%zu]", i);
        c->nservers = i + 1;
        if (!json_is_object(o))
            return cfg_fail(x, "config file %s: %s: must be an object", x->file, where);
        if (check_known_keys(x, o, where, CFG_F_SERVER) ||
            server_load(x, c, &c->servers[i], o, where))
            return -1;
    }
    return 0;
}

/* --- rows that read themselves ------------------------------------------------ */

/* API keys: the environment, the key file and the config file together
 * (core/config_keys.c). */
static int api_keys_load(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c,
                         json_t *root)
{
    return cfg_keys_load(x, c, root ? json_object_get(root, s->doc.json) : NULL);
}

/* Actions taken off the deny list (case-insensitive); the environment's
 * list replaces the file's. */
static int allow_actions_load(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c,
                              json_t *root)
{
    char **allow = NULL;
    size_t nallow = 0;
    const char *v;
    json_t *jv;
    int rc = 0;
    if (root && (jv = json_object_get(root, s->doc.json)) &&
        cfg_strv_from_json(x, s->doc.json, jv, &allow, &nallow))
        rc = -1; /* what was taken before the bad entry is freed below */
    else if ((v = cfg_env_val(x, s->doc.env)) && cfg_strv_from_words(&allow, &nallow, v))
        rc = cfg_fail(x, "out of memory");
    for (size_t i = 0; !rc && i < nallow; i++)
        cfg_strv_remove_ci(c->deny_actions, &c->ndeny_actions, allow[i]);
    cfg_strv_free(allow, nallow);
    return rc;
}

/* Static subscriptions, kept as JSON for the webhook module to read. */
static int webhooks_load(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c,
                         json_t *root)
{
    json_t *jv = root ? json_object_get(root, s->doc.json) : NULL;
    if (!jv)
        return 0;
    if (!json_is_array(jv))
        return cfg_fail(x, "config file %s: webhooks: must be an array of subscriptions", x->file);
    if (!(c->webhooks_json = json_dumps(jv, JSON_COMPACT)))
        return cfg_fail(x, "out of memory");
    return 0;
}

/* HTTPS needs both the certificate and the key. */
static int tls_load(struct cfg_ctx *x, const struct cfg_setting *s, struct cfg *c, json_t *root)
{
    (void)s;
    (void)root;
    const char *cert = cfg_env_val(x, "AMIBRIDGE_TLS_CERT"),
               *key = cfg_env_val(x, "AMIBRIDGE_TLS_KEY");
    if (!cert && !key)
        return 0;
    if (!cert || !key)
        return cfg_fail(x, "%s: set, but %s is not: HTTPS needs both",
                        cert ? "AMIBRIDGE_TLS_CERT" : "AMIBRIDGE_TLS_KEY",
                        cert ? "AMIBRIDGE_TLS_KEY" : "AMIBRIDGE_TLS_CERT");
    if (!(c->tls_cert_pem = read_pem_file(x, "AMIBRIDGE_TLS_CERT", cert)) ||
        !(c->tls_key_pem = read_pem_file(x, "AMIBRIDGE_TLS_KEY", key)))
        return -1;
    return 0;
}

/* --- the whole ----------------------------------------------------------------- */

/* Rules between settings, once every row is read. */
static int cfg_rules(struct cfg_ctx *x, struct cfg *c)
{
    for (size_t i = 0; i < c->ndeny_actions; i++)
        if (!cfg_valid_name(c->deny_actions[i]))
            return cfg_fail(x, "deny_actions: '%.64s' is not an action name", c->deny_actions[i]);
    if (c->events_server_filter && server_filters(c))
        return cfg_fail(x, "out of memory");
    if (c->webhook_retry_max_ms < c->webhook_retry_base_ms)
        return cfg_fail(x,
                        "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS: %d is below "
                        "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS (%d)",
                        c->webhook_retry_max_ms, c->webhook_retry_base_ms);
    if (c->nkeys == 0 && !c->listen_loopback)
        return cfg_fail(x,
                        "AMIBRIDGE_LISTEN: %s is not a loopback address and no API keys are "
                        "configured (AMIBRIDGE_API_KEYS); refusing to expose the PBX without "
                        "authentication",
                        c->listen_host);
    return 0;
}

int cfg_load(struct cfg *c, char *const *envp, const char *config_path, char *err, size_t errlen)
{
    struct cfg_ctx x = {envp ? envp : environ, err, errlen, ""};
    json_t *root = NULL;
    int rc = -1;
    memset(c, 0, sizeof(*c));
    if (!config_path)
        config_path = cfg_env_val(&x, "AMIBRIDGE_CONFIG");
    if (config_path) {
        x.file = config_path;
        if (load_file(&x, c, config_path, &root) || check_known_keys(&x, root, "top level", 0))
            goto out;
    }
    struct cfg_src src = {root, "top level", 0};
    for (size_t i = 0; i < CFG_NSETTINGS; i++) {
        const struct cfg_setting *s = &cfg_settings[i];
        if (s->flags & CFG_F_SERVER)
            continue; /* servers_load reads them */
        if (s->load ? s->load(&x, s, c, root) : setting_load(&x, s, c, &src))
            goto out;
        if (s->check && s->check(&x, s, c))
            goto out;
    }
    if (cfg_rules(&x, c))
        goto out;
    rc = 0;
out:
    json_decref(root);
    if (rc)
        cfg_free(c);
    return rc;
}

void cfg_free(struct cfg *c)
{
    for (size_t i = 0; i < c->nservers; i++)
        server_free(&c->servers[i]);
    free(c->servers);
    cfg_keys_free(c);
    cfg_strv_free(c->deny_actions, c->ndeny_actions);
    cfg_strv_free(c->deny_apps, c->ndeny_apps);
    cfg_strv_free(c->deny_funcs, c->ndeny_funcs);
    cfg_strv_free(c->allow_funcs, c->nallow_funcs);
    cfg_strv_free(c->cors_origins, c->ncors_origins);
    cfg_strv_free(c->events_include, c->nevents_include);
    cfg_strv_free(c->call_trunks, c->ncall_trunks);
    cfg_strv_free(c->events_exclude, c->nevents_exclude);
    cfg_strv_free(c->ami_filters, c->nami_filters);
    free(c->redis_stream);
    free(c->redis_url);
    free(c->webhook_allow_nets);
    if (c->webhooks_json)
        explicit_bzero(c->webhooks_json, strlen(c->webhooks_json)); /* static secrets */
    free(c->webhooks_json);
    free(c->state_dir);
    free(c->trusted_nets);
    free(c->trusted_proxies);
    free(c->tls_cert_pem);
    if (c->tls_key_pem)
        explicit_bzero(c->tls_key_pem, strlen(c->tls_key_pem));
    free(c->tls_key_pem);
    free(c->config_path);
    memset(c, 0, sizeof(*c));
}

const struct cfg_server *cfg_server_find(const struct cfg *c, const char *name)
{
    if (!name)
        return c->nservers ? &c->servers[0] : NULL;
    for (size_t i = 0; i < c->nservers; i++)
        if (!strcmp(c->servers[i].name, name))
            return &c->servers[i];
    return NULL;
}
