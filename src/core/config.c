#include "core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/netlist.h"
#include "core/log.h"

extern char **environ;

#define ENV_PREFIX "AMIBRIDGE_"

/* Actions that run commands, change the dialplan or configuration, read
 * configuration files or secrets (PJSIP auth objects print passwords, the
 * AstDB keeps PINs), or reprovision phones: an ops key may get some back
 * with AMIBRIDGE_ALLOW_ACTIONS. */
static const char *const default_deny_actions[] = {
    "Command",
    "Shutdown",
    "Restart",
    "UpdateConfig",
    "GetConfig",
    "GetConfigJSON",
    "CreateConfig",
    "ListCategories",
    "ModuleLoad",
    "ModuleUnload",
    "Reload",
    "DBGet",
    "DBGetTree",
    "DBPut",
    "DBDel",
    "DBDelTree",
    "AGI",
    "DialplanExtensionAdd",
    "DialplanExtensionRemove",
    "Monitor",
    "ChangeMonitor",
    "PJSIPNotify",
    "SIPnotify",
    "PJSIPShowAuths",
    "PJSIPShowEndpoint",
    NULL,
};
/* Applications that run programs (System, Exec, AGI, ExternalIVR,
 * MP3Player's player), write or read files where the caller says
 * (MixMonitor, Monitor, Record, Dictate, SendFAX, ReceiveFAX), set variables
 * and functions (Set, MSet), listen in (ChanSpy, ExtenSpy), move other
 * channels (ChannelRedirect) or give a dial tone to dial anything (DISA). */
static const char *const default_deny_apps[] = {
    "*system*", "*exec*",    "*agi*",           "ExternalIVR", "MixMonitor", "Monitor", "Record",
    "Dictate",  "SendFAX",   "ReceiveFAX",      "Set",         "MSet",       "ChanSpy", "ExtenSpy",
    "DISA",     "MP3Player", "ChannelRedirect", NULL};
/* Dialplan functions a value may call (${...}, $[...], a variable name
 * ending in ')'): caller and call data, string and time helpers, audio
 * settings of the call itself. */
static const char *const default_allow_funcs[] = {"CALLERID",
                                                  "CONNECTEDLINE",
                                                  "REDIRECTING",
                                                  "CDR",
                                                  "LEN",
                                                  "ISNULL",
                                                  "EXISTS",
                                                  "IF",
                                                  "IFTIME",
                                                  "STRFTIME",
                                                  "MATH",
                                                  "HASH",
                                                  "QUEUE_MEMBER",
                                                  "EXTENSION_STATE",
                                                  "PJSIP_HEADER",
                                                  "SIP_HEADER",
                                                  "TIMEOUT",
                                                  "JITTERBUFFER",
                                                  "AUDIOHOOK_INHERIT",
                                                  "VOLUME",
                                                  NULL};
/* Never, whatever the allow list says: they run commands (SHELL, SYSTEM),
 * re-evaluate (EVAL), read or write files and configuration (FILE, STAT,
 * AST_CONFIG: manager.conf's secrets), the AstDB (DB*), reach out (CURL*,
 * ODBC, SQL, REALTIME), read the environment (ENV), or touch other channels
 * and global state (GLOBAL, SHARED, IMPORT, MASTER_CHANNEL). */
static const char *const default_deny_funcs[] = {
    "SHELL", "SYSTEM", "EVAL",   "FILE*",  "STAT",           "AST_CONFIG",
    "DB",    "DB_*",   "CURL*",  "ODBC*",  "SQL*",           "REALTIME*",
    "ENV",   "GLOBAL", "SHARED", "IMPORT", "MASTER_CHANNEL", NULL};

const struct cfg_doc cfg_docs[] = {
    {"AMIBRIDGE_LISTEN", "127.0.0.1:8080",
     "HTTP listen address, IP:PORT ([IPv6]:PORT). Anything but loopback requires API keys."},
    {"AMIBRIDGE_AMI_HOST", "127.0.0.1", "Asterisk host (name or address)."},
    {"AMIBRIDGE_AMI_PORT", "5038", "Asterisk AMI port."},
    {"AMIBRIDGE_AMI_USERNAME", "(required)", "AMI user (manager.conf section)."},
    {"AMIBRIDGE_AMI_SECRET", "(required)", "AMI secret. Or AMIBRIDGE_AMI_SECRET_FILE."},
    {"AMIBRIDGE_AMI_SECRET_FILE", "", "File holding the AMI secret (trailing newline ignored)."},
    {"AMIBRIDGE_AMI_NAME", "default", "Name of this AMI server in the API, events and metrics."},
    {"AMIBRIDGE_AMI_AUTH", "md5", "Login method: md5 (challenge, secret never sent) or plain."},
    {"AMIBRIDGE_AMI_POOL_SIZE", "4", "Action connections per server (plus one event connection)."},
    {"AMIBRIDGE_AMI_TIMEOUT_MS", "10000", "Per-action timeout; past it the request gets 504."},
    {"AMIBRIDGE_AMI_MAX_INFLIGHT", "1024", "Actions in flight per server; past it 503."},
    {"AMIBRIDGE_AMI_MAX_INFLIGHT_PER_CONN", "256", "Actions in flight per action connection."},
    {"AMIBRIDGE_AMI_KEEPALIVE_MS", "15000", "Keepalive Ping interval on idle AMI connections."},
    {"AMIBRIDGE_AMI_CONNECT_TIMEOUT_MS", "5000", "Time allowed for connect, banner and login."},
    {"AMIBRIDGE_API_KEYS", "",
     "Space-separated NAME:TOKEN:SCOPES; scopes read,call,control,actions,admin."},
    {"AMIBRIDGE_API_KEYS_FILE", "", "File with more NAME:TOKEN:SCOPES entries, one per line."},
    {"AMIBRIDGE_DENY_ACTIONS",
     "Command Shutdown Restart UpdateConfig GetConfig GetConfigJSON CreateConfig ListCategories "
     "ModuleLoad ModuleUnload Reload DBGet DBGetTree DBPut DBDel DBDelTree AGI "
     "DialplanExtensionAdd DialplanExtensionRemove Monitor ChangeMonitor PJSIPNotify SIPnotify "
     "PJSIPShowAuths PJSIPShowEndpoint",
     "Actions refused on POST /v1/actions (replaces the default list)."},
    {"AMIBRIDGE_ALLOW_ACTIONS", "", "Actions removed from the deny list (e.g. Command for ops)."},
    {"AMIBRIDGE_DENY_ORIGINATE_APPS",
     "*system* *exec* *agi* ExternalIVR MixMonitor Monitor Record Dictate SendFAX ReceiveFAX Set "
     "MSet ChanSpy ExtenSpy DISA MP3Player ChannelRedirect",
     "Originate Application globs refused (case-insensitive), whatever the key."},
    {"AMIBRIDGE_ALLOW_FUNCTIONS",
     "CALLERID CONNECTEDLINE REDIRECTING CDR LEN ISNULL EXISTS IF IFTIME STRFTIME MATH HASH "
     "QUEUE_MEMBER EXTENSION_STATE PJSIP_HEADER SIP_HEADER TIMEOUT JITTERBUFFER AUDIOHOOK_INHERIT "
     "VOLUME",
     "The only dialplan functions a value may call (${...}, $[...], a variable name ending "
     "in ')'); globs, case-insensitive (replaces the default list)."},
    {"AMIBRIDGE_DENY_FUNCTIONS",
     "SHELL SYSTEM EVAL FILE* STAT AST_CONFIG DB DB_* CURL* ODBC* SQL* REALTIME* ENV GLOBAL "
     "SHARED IMPORT MASTER_CHANNEL",
     "Dialplan functions refused even when allowed (globs; a trailing '(' is ignored)."},
    {"AMIBRIDGE_MAX_BODY", "65536", "Largest request body in bytes; past it 413."},
    {"AMIBRIDGE_HTTP_MAX_CONNECTIONS", "2048",
     "Concurrent HTTP connections. The last 10% are a reserve: a new connection that takes one "
     "cuts the connection that has waited longest for its request and never showed a valid "
     "key."},
    {"AMIBRIDGE_HTTP_TIMEOUT_S", "60", "Idle HTTP connection timeout in seconds."},
    {"AMIBRIDGE_HTTP_HEADER_TIMEOUT_S", "10",
     "A connection must send a whole request head within this many seconds of opening or of "
     "its previous answer (slow-header clients and idle keep-alive connections are cut)."},
    {"AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S", "30",
     "A connection must send a whole request, head and body, within this many seconds of "
     "opening or of its previous answer (slow-body clients are cut)."},
    {"AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT", "256",
     "Connections one client address may hold, loopback included; past it new ones are closed "
     "at once. Addresses of AMIBRIDGE_TRUSTED_PROXIES are not capped. 0: no limit."},
    {"AMIBRIDGE_HTTP_REUSEPORT", "0",
     "1: bind with SO_REUSEPORT so several processes share the port (scale up)."},
    {"AMIBRIDGE_CALLS_PER_SECOND", "5",
     "Originates per second per API key (token bucket; also the generic Originate)."},
    {"AMIBRIDGE_CALLS_BURST", "10", "Originates a key may place at once before the rate applies."},
    {"AMIBRIDGE_CALLS_MAX_INFLIGHT", "50",
     "Originates waiting for their outcome per AMI server; past it 429."},
    {"AMIBRIDGE_CORS_ORIGINS", "",
     "Browser origins (exact, space-separated) allowed to call the API, e.g. https://crm.example."},
    {"AMIBRIDGE_IDEMPOTENCY_TTL_S", "86400", "How long an Idempotency-Key is remembered."},
    {"AMIBRIDGE_IDEMPOTENCY_MAX", "100000", "Idempotency keys kept in memory (without Redis)."},
    {"AMIBRIDGE_REDIS_URL", "", "redis://[user:pass@]host:port[/db] or unix:/path."},
    {"AMIBRIDGE_REDIS_PREFIX", "ami", "Prefix of Redis channels (ami.SERVER.EVENT) and keys."},
    {"AMIBRIDGE_REDIS_BUFFER", "10000",
     "Events held while Redis is slow or down; past it the oldest are dropped (counted)."},
    {"AMIBRIDGE_REDIS_STREAM", "", "Also XADD every event to this Redis stream (for replay)."},
    {"AMIBRIDGE_REDIS_STREAM_MAXLEN", "100000", "Approximate length the stream is trimmed to."},
    {"AMIBRIDGE_EVENTS_INCLUDE", "", "Event name globs to publish (empty: all)."},
    {"AMIBRIDGE_EVENTS_EXCLUDE", "VarSet Newexten RTCP*", "Event name globs never published."},
    {"AMIBRIDGE_EVENTS_SERVER_FILTER", "0",
     "1: also send the filters to Asterisk (Filter action) so excluded events never cross the "
     "wire."},
    {"AMIBRIDGE_CALL_TRUNKS", "",
     "Channel globs of trunks (space-separated, e.g. PJSIP/trunk-*): a call whose first channel "
     "is one is inbound, one that dials one is outbound; others are internal."},
    {"AMIBRIDGE_CALL_HISTORY_S", "3600",
     "Seconds an ended call stays readable at GET /v1/calls/{id}."},
    {"AMIBRIDGE_CALL_MAX_HISTORY", "10000",
     "Ended calls kept for GET /v1/calls/{id}; past it the oldest go first."},
    {"AMIBRIDGE_CALL_MAX_LIVE", "10000",
     "Calls followed at once per server; more are counted "
     "(amibridge_calls_total{event=\"untracked\"}), not followed."},
    {"AMIBRIDGE_SSE_REPLAY", "1000", "Events kept in memory for SSE Last-Event-ID replay."},
    {"AMIBRIDGE_SSE_MAX_CLIENTS", "100", "Concurrent SSE clients; past it 503."},
    {"AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY", "10",
     "Concurrent SSE clients per API key (without keys: per client address); past it 429. "
     "Never more than AMIBRIDGE_SSE_MAX_CLIENTS."},
    {"AMIBRIDGE_SSE_QUEUE", "1000",
     "Events queued per SSE client; a client that falls further behind is disconnected."},
    {"AMIBRIDGE_SSE_HEARTBEAT_S", "15", "Seconds between SSE comment heartbeats."},
    {"AMIBRIDGE_WEBHOOK_ALLOW_NETS", "",
     "Networks (CIDR, space-separated) webhooks may reach although the SSRF guard refuses "
     "loopback, private, link-local, CGNAT and unique-local addresses, e.g. 10.20.0.0/16."},
    {"AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS", "12",
     "Attempts per delivery before it is recorded as failed."},
    {"AMIBRIDGE_WEBHOOK_MAX_AGE_S", "86400",
     "A delivery older than this is not retried again (recorded as failed)."},
    {"AMIBRIDGE_WEBHOOK_TIMEOUT_MS", "10000", "Time allowed for one delivery attempt."},
    {"AMIBRIDGE_WEBHOOK_RETRY_BASE_MS", "1000",
     "First retry delay; doubled per attempt, with jitter (a random 50-100% of it)."},
    {"AMIBRIDGE_WEBHOOK_RETRY_MAX_MS", "600000", "Longest retry delay."},
    {"AMIBRIDGE_WEBHOOK_QUEUE", "10000",
     "Deliveries waiting per subscription; past it new events are dropped (counted, logged)."},
    {"AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS", "100", "Webhook subscriptions, static ones included."},
    {"AMIBRIDGE_WEBHOOK_SECRET_GRACE_S", "86400",
     "After a PATCH with a new secret, the old one keeps signing webhook-signature (Standard "
     "Webhooks) this long; a PATCH can say otherwise with secret_grace_s. 0: it stops at once."},
    {"AMIBRIDGE_STATE_DIR", "",
     "Without Redis: directory of the webhook subscriptions file (webhooks.json). Empty: "
     "subscriptions made through the API last until the process ends."},
    {"AMIBRIDGE_TRUSTED_NETS", "",
     "Client networks (CIDR, space-separated) allowed to call at all; others get 403 before "
     "any key is looked at. Loopback is always allowed. Empty: every client."},
    {"AMIBRIDGE_TRUSTED_PROXIES", "",
     "Reverse proxies (CIDR, space-separated) whose X-Forwarded-For names the client: the "
     "right-most address in it that is not such a proxy is the client for lock-outs, "
     "AMIBRIDGE_TRUSTED_NETS, loopback-only mode and logs. Empty: the TCP peer is the client."},
    {"AMIBRIDGE_AUTH_FAIL_LIMIT", "30",
     "Wrong API keys one client address may send per window; past it every request from it "
     "without a valid key gets 429 until the window ends (a valid key is still served). "
     "Earlier failures are answered slower."},
    {"AMIBRIDGE_AUTH_FAIL_WINDOW_S", "60", "The window of AMIBRIDGE_AUTH_FAIL_LIMIT, in seconds."},
    {"AMIBRIDGE_TLS_CERT", "",
     "PEM certificate chain: serve HTTPS on AMIBRIDGE_LISTEN (with AMIBRIDGE_TLS_KEY)."},
    {"AMIBRIDGE_TLS_KEY", "", "PEM private key of AMIBRIDGE_TLS_CERT."},
    {"AMIBRIDGE_LEADER_TTL_MS", "5000",
     "With Redis: the leader lease. One replica publishes events and makes webhook "
     "deliveries; another takes over within 2 x this after it dies."},
    {"AMIBRIDGE_METRICS_AUTH", "0", "1: GET /metrics needs an API key with scope read."},
    {"AMIBRIDGE_INSTANCE_ID", "(random)", "Prefix of every ActionID; unique per replica."},
    {"AMIBRIDGE_LOG_LEVEL", "info", "debug, info, warn or error."},
    {"AMIBRIDGE_CONFIG", "", "JSON config file (servers, api_keys, deny lists, ...)."},
    {NULL, NULL, NULL},
};

struct cfg_ctx {
    char *const *envp;
    char *err;
    size_t errlen;
    const char *file; /* for messages about file keys */
};

static int cfg_fail(struct cfg_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cfg_fail(struct cfg_ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *env_get(struct cfg_ctx *x, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = x->envp; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* Non-empty value of an environment variable, or NULL. */
static const char *env_val(struct cfg_ctx *x, const char *name)
{
    const char *v = env_get(x, name);
    return v && *v ? v : NULL;
}

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

static int env_int(struct cfg_ctx *x, const char *name, long lo, long hi, int *inout)
{
    const char *v = env_val(x, name);
    long n;
    if (!v)
        return 0;
    if (parse_int(v, lo, hi, &n))
        return cfg_fail(x, "%s: must be an integer from %ld to %ld, got '%s'", name, lo, hi, v);
    *inout = (int)n;
    return 0;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CFG_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* Read a small secret file, dropping one trailing newline. */
static char *read_secret_file(struct cfg_ctx *x, const char *key, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfg_fail(x, "%s: cannot read '%s': %s", key, path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big) {
        cfg_fail(x, "%s: '%s' is larger than %zu bytes", key, path, sizeof(buf) - 1);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        cfg_fail(x, "%s: '%s' is empty", key, path);
        return NULL;
    }
    return strdup(buf);
}

/* --- lists ------------------------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -1;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

static int strv_from_defaults(char ***v, size_t *n, const char *const *defs)
{
    for (; *defs; defs++)
        if (strv_push(v, n, *defs))
            return -1;
    return 0;
}

/* Split on spaces and commas into a fresh list (replacing *v). */
static int strv_from_words(char ***v, size_t *n, const char *s)
{
    strv_free(*v, *n);
    *v = NULL;
    *n = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return -1;
    for (char *w = strtok_r(copy, " ,\t\n", &save); w; w = strtok_r(NULL, " ,\t\n", &save))
        if (strv_push(v, n, w)) {
            free(copy);
            return -1;
        }
    free(copy);
    return 0;
}

static void strv_remove_ci(char **v, size_t *n, const char *s)
{
    size_t o = 0;
    for (size_t i = 0; i < *n; i++) {
        if (!strcasecmp(v[i], s)) {
            free(v[i]);
            continue;
        }
        v[o++] = v[i];
    }
    *n = o;
}

/* JSON array of strings into a list (replacing *v). */
static int strv_from_json(struct cfg_ctx *x, const char *key, json_t *arr, char ***v, size_t *n)
{
    if (!json_is_array(arr))
        return cfg_fail(x, "config file %s: %s: must be an array of strings", x->file, key);
    strv_free(*v, *n);
    *v = NULL;
    *n = 0;
    size_t i;
    json_t *it;
    json_array_foreach (arr, i, it) {
        if (!json_is_string(it))
            return cfg_fail(x, "config file %s: %s[%zu]: must be a string", x->file, key, i);
        if (strv_push(v, n, json_string_value(it)))
            return cfg_fail(x, "out of memory");
    }
    return 0;
}

/* --- scopes and keys --------------------------------------------------------- */

static const char *const scope_names[] = {"read", "call", "control", "actions", "admin"};

const char *cfg_scope_name(unsigned bit)
{
    for (unsigned i = 0; i < 5; i++)
        if (bit == (1u << i))
            return scope_names[i];
    return "?";
}

int cfg_parse_scopes(const char *s, unsigned *out, char *bad, size_t badlen)
{
    unsigned mask = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (unsigned i = 0; i < 5; i++)
            if (strlen(scope_names[i]) == n && !strncasecmp(p, scope_names[i], n)) {
                mask |= 1u << i;
                found = 1;
            }
        if (!found && n) {
            snprintf(bad, badlen, "%.*s", (int)n, p);
            return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!mask) {
        snprintf(bad, badlen, "%s", "(none)");
        return -1;
    }
    *out = mask;
    return 0;
}

static int add_key(struct cfg_ctx *x, struct cfg *c, const char *where, const char *name,
                   const char *token, unsigned scopes)
{
    if (!valid_name(name))
        return cfg_fail(x, "%s: key name '%.64s' must be 1-%d of A-Z a-z 0-9 _ -", where, name,
                        CFG_NAME_MAX);
    if (!*token)
        return cfg_fail(x, "%s: key '%s' has an empty token", where, name);
    for (const char *t = token; *t; t++)
        if (isspace((unsigned char)*t) || *t == ':' || !isprint((unsigned char)*t))
            return cfg_fail(x,
                            "%s: the token of key '%s' may not contain spaces, ':' or control "
                            "characters",
                            where, name);
    if (c->nkeys >= CFG_MAX_KEYS)
        return cfg_fail(x, "%s: more than %d API keys", where, CFG_MAX_KEYS);
    for (size_t i = 0; i < c->nkeys; i++) {
        if (!strcmp(c->keys[i].name, name))
            return cfg_fail(x, "%s: API key name '%s' is used twice", where, name);
        if (!strcmp(c->keys[i].token, token))
            return cfg_fail(x, "%s: keys '%s' and '%s' have the same token", where, c->keys[i].name,
                            name);
    }
    struct cfg_api_key *nk = realloc(c->keys, (c->nkeys + 1) * sizeof(*nk));
    if (!nk)
        return cfg_fail(x, "out of memory");
    c->keys = nk;
    nk[c->nkeys].name = strdup(name);
    nk[c->nkeys].token = strdup(token);
    nk[c->nkeys].scopes = scopes;
    memset(&nk[c->nkeys].policy, 0, sizeof(nk[c->nkeys].policy));
    nk[c->nkeys].calls_per_second = 0;
    nk[c->nkeys].calls_burst = 0;
    c->nkeys++;
    if (strlen(token) < 16)
        log_warn("short API key token: use at least 16 random characters", "{s:s}", "key", name);
    return 0;
}

/* "NAME:TOKEN:SCOPES" entries separated by whitespace. */
static int parse_key_list(struct cfg_ctx *x, struct cfg *c, const char *where, const char *s)
{
    char *copy = strdup(s), *save = NULL;
    int rc = 0, idx = 0;
    if (!copy)
        return cfg_fail(x, "out of memory");
    for (char *w = strtok_r(copy, " \t\r\n", &save); w && !rc;
         w = strtok_r(NULL, " \t\r\n", &save), idx++) {
        if (*w == '#') { /* a comment runs to the end of its line in files */
            strtok_r(NULL, "\n", &save);
            continue;
        }
        char *c1 = strchr(w, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2) {
            /* do not echo the entry: it holds a token */
            rc = cfg_fail(x, "%s: entry %d is not NAME:TOKEN:SCOPES", where, idx + 1);
            break;
        }
        *c1 = *c2 = '\0';
        unsigned scopes;
        char bad[32];
        if (cfg_parse_scopes(c2 + 1, &scopes, bad, sizeof(bad))) {
            rc = cfg_fail(x,
                          "%s: key '%.64s' has unknown scope '%s' (use read, call, control, "
                          "actions, admin)",
                          where, w, bad);
            break;
        }
        rc = add_key(x, c, where, w, c1 + 1, scopes);
    }
    free(copy);
    return rc;
}

/* --- addresses ---------------------------------------------------------------- */

static int parse_listen(struct cfg_ctx *x, struct cfg *c, const char *key, const char *v)
{
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

/* --- servers ------------------------------------------------------------------ */

static void server_defaults(struct cfg_server *s)
{
    memset(s, 0, sizeof(*s));
    s->port = 5038;
    s->auth = CFG_AUTH_MD5;
    s->pool_size = 4;
    s->timeout_ms = 10000;
    s->max_inflight = 1024;
    s->max_inflight_per_conn = 256;
    s->keepalive_ms = 15000;
    s->connect_timeout_ms = 5000;
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

static int parse_auth(const char *v, enum cfg_auth *out)
{
    if (!strcasecmp(v, "md5"))
        *out = CFG_AUTH_MD5;
    else if (!strcasecmp(v, "plain"))
        *out = CFG_AUTH_PLAIN;
    else
        return -1;
    return 0;
}

/* Settings every server takes from the environment, also when the servers
 * come from the file (they are defaults there). */
static int server_env_tuning(struct cfg_ctx *x, struct cfg_server *s)
{
    if (env_int(x, "AMIBRIDGE_AMI_POOL_SIZE", 1, CFG_POOL_SIZE_MAX, &s->pool_size) ||
        env_int(x, "AMIBRIDGE_AMI_TIMEOUT_MS", CFG_TIMEOUT_MS_MIN, CFG_TIMEOUT_MS_MAX,
                &s->timeout_ms) ||
        env_int(x, "AMIBRIDGE_AMI_MAX_INFLIGHT", 1, 1000000, &s->max_inflight) ||
        env_int(x, "AMIBRIDGE_AMI_MAX_INFLIGHT_PER_CONN", 1, 100000, &s->max_inflight_per_conn) ||
        env_int(x, "AMIBRIDGE_AMI_KEEPALIVE_MS", 1000, 3600000, &s->keepalive_ms) ||
        env_int(x, "AMIBRIDGE_AMI_CONNECT_TIMEOUT_MS", 100, 600000, &s->connect_timeout_ms))
        return -1;
    const char *auth = env_val(x, "AMIBRIDGE_AMI_AUTH");
    if (auth && parse_auth(auth, &s->auth))
        return cfg_fail(x, "AMIBRIDGE_AMI_AUTH: must be md5 or plain, got '%s'", auth);
    return 0;
}

static int server_from_env(struct cfg_ctx *x, struct cfg *c)
{
    struct cfg_server s;
    server_defaults(&s);
    const char *v;
    s.name = strdup((v = env_val(x, "AMIBRIDGE_AMI_NAME")) ? v : "default");
    s.host = strdup((v = env_val(x, "AMIBRIDGE_AMI_HOST")) ? v : "127.0.0.1");
    if (!valid_name(s.name)) {
        cfg_fail(x, "AMIBRIDGE_AMI_NAME: '%.64s' must be 1-%d of A-Z a-z 0-9 _ -", s.name,
                 CFG_NAME_MAX);
        goto fail;
    }
    if (env_int(x, "AMIBRIDGE_AMI_PORT", 1, 65535, &s.port) || server_env_tuning(x, &s))
        goto fail;
    if (!(v = env_val(x, "AMIBRIDGE_AMI_USERNAME"))) {
        cfg_fail(x, "AMIBRIDGE_AMI_USERNAME: required (the AMI user from manager.conf)");
        goto fail;
    }
    s.username = strdup(v);
    const char *sec = env_val(x, "AMIBRIDGE_AMI_SECRET");
    const char *secfile = env_val(x, "AMIBRIDGE_AMI_SECRET_FILE");
    if (sec && secfile) {
        cfg_fail(x, "AMIBRIDGE_AMI_SECRET and AMIBRIDGE_AMI_SECRET_FILE are both set; use one");
        goto fail;
    }
    if (secfile)
        s.secret = read_secret_file(x, "AMIBRIDGE_AMI_SECRET_FILE", secfile);
    else if (sec)
        s.secret = strdup(sec);
    else
        cfg_fail(x, "AMIBRIDGE_AMI_SECRET: required (or AMIBRIDGE_AMI_SECRET_FILE)");
    if (!s.secret)
        goto fail;
    c->servers = malloc(sizeof(s));
    if (!c->servers) {
        cfg_fail(x, "out of memory");
        goto fail;
    }
    c->servers[0] = s;
    c->nservers = 1;
    return 0;
fail:
    server_free(&s);
    return -1;
}

static int json_int_field(struct cfg_ctx *x, json_t *o, const char *where, const char *k, long lo,
                          long hi, int *out)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return cfg_fail(x, "config file %s: %s.%s: must be an integer from %ld to %ld", x->file,
                        where, k, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
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

static int check_known_keys(struct cfg_ctx *x, json_t *o, const char *where,
                            const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        const char *const *p;
        for (p = known; *p && strcmp(*p, k); p++)
            ;
        if (!*p)
            return cfg_fail(x, "config file %s: %s: unknown key '%.64s'", x->file, where, k);
    }
    return 0;
}

static int servers_from_json(struct cfg_ctx *x, struct cfg *c, json_t *arr)
{
    static const char *const known[] = {"name",
                                        "host",
                                        "port",
                                        "username",
                                        "secret",
                                        "secret_file",
                                        "auth",
                                        "pool_size",
                                        "timeout_ms",
                                        "max_inflight",
                                        "max_inflight_per_conn",
                                        "keepalive_ms",
                                        "connect_timeout_ms",
                                        NULL};
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
        struct cfg_server *s = &c->servers[i];
        server_defaults(s);
        c->nservers = i + 1;
        if (!json_is_object(o))
            return cfg_fail(x, "config file %s: %s: must be an object", x->file, where);
        if (check_known_keys(x, o, where, known) || server_env_tuning(x, s))
            return -1;
        const char *name, *host, *user, *secret, *secret_file, *auth;
        if (json_str_field(x, o, where, "name", &name) ||
            json_str_field(x, o, where, "host", &host) ||
            json_str_field(x, o, where, "username", &user) ||
            json_str_field(x, o, where, "secret", &secret) ||
            json_str_field(x, o, where, "secret_file", &secret_file) ||
            json_str_field(x, o, where, "auth", &auth) ||
            json_int_field(x, o, where, "port", 1, 65535, &s->port) ||
            json_int_field(x, o, where, "pool_size", 1, CFG_POOL_SIZE_MAX, &s->pool_size) ||
            json_int_field(x, o, where, "timeout_ms", CFG_TIMEOUT_MS_MIN, CFG_TIMEOUT_MS_MAX,
                           &s->timeout_ms) ||
            json_int_field(x, o, where, "max_inflight", 1, 1000000, &s->max_inflight) ||
            json_int_field(x, o, where, "max_inflight_per_conn", 1, 100000,
                           &s->max_inflight_per_conn) ||
            json_int_field(x, o, where, "keepalive_ms", 1000, 3600000, &s->keepalive_ms) ||
            json_int_field(x, o, where, "connect_timeout_ms", 100, 600000, &s->connect_timeout_ms))
            return -1;
        if (!name || !valid_name(name))
            return cfg_fail(x, "config file %s: %s.name: required, 1-%d of A-Z a-z 0-9 _ -",
                            x->file, where, CFG_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->servers[j].name, name))
                return cfg_fail(x, "config file %s: %s.name: '%s' is used twice", x->file, where,
                                name);
        if (!user)
            return cfg_fail(x, "config file %s: %s.username: required", x->file, where);
        if (!!secret == !!secret_file)
            return cfg_fail(x, "config file %s: %s: give exactly one of secret and secret_file",
                            x->file, where);
        if (auth && parse_auth(auth, &s->auth))
            return cfg_fail(x, "config file %s: %s.auth: must be md5 or plain", x->file, where);
        s->name = strdup(name);
        s->host = strdup(host ? host : "127.0.0.1");
        s->username = strdup(user);
        if (secret_file) {
            char key[64];
            snprintf(key, sizeof(key), "%s.secret_file", where);
            if (!(s->secret = read_secret_file(x, key, secret_file)))
                return -1;
        } else {
            s->secret = strdup(secret);
        }
    }
    return 0;
}

static void policy_free(struct cfg_policy *p)
{
    strv_free(p->allow_channels, p->nallow_channels);
    strv_free(p->allow_contexts, p->nallow_contexts);
    strv_free(p->allow_extens, p->nallow_extens);
    strv_free(p->deny_extens, p->ndeny_extens);
    strv_free(p->allow_applications, p->nallow_applications);
    strv_free(p->allow_variables, p->nallow_variables);
    memset(p, 0, sizeof(*p));
}

/* The dial policy and call limits of one key from its JSON object. */
static int key_policy_from_json(struct cfg_ctx *x, struct cfg_api_key *k, json_t *o,
                                const char *where)
{
    static const struct {
        const char *name;
        size_t off_v, off_n;
    } lists[] = {
        {"allow_channels", offsetof(struct cfg_policy, allow_channels),
         offsetof(struct cfg_policy, nallow_channels)},
        {"allow_contexts", offsetof(struct cfg_policy, allow_contexts),
         offsetof(struct cfg_policy, nallow_contexts)},
        {"allow_extens", offsetof(struct cfg_policy, allow_extens),
         offsetof(struct cfg_policy, nallow_extens)},
        {"deny_extens", offsetof(struct cfg_policy, deny_extens),
         offsetof(struct cfg_policy, ndeny_extens)},
        {"allow_applications", offsetof(struct cfg_policy, allow_applications),
         offsetof(struct cfg_policy, nallow_applications)},
        {"allow_variables", offsetof(struct cfg_policy, allow_variables),
         offsetof(struct cfg_policy, nallow_variables)},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        json_t *arr = json_object_get(o, lists[i].name);
        if (!arr)
            continue;
        char key[160];
        snprintf(key, sizeof(key), "%s.%s", where, lists[i].name);
        char ***v = (char ***)((char *)&k->policy + lists[i].off_v);
        size_t *n = (size_t *)((char *)&k->policy + lists[i].off_n);
        const char *saved = x->file;
        x->file = "";
        int rc = strv_from_json(x, key, arr, v, n);
        x->file = saved;
        if (rc)
            return -1;
        for (size_t j = 0; j < *n; j++)
            if (!**(*v + j))
                return cfg_fail(x, "%s[%zu]: must not be empty", key, j);
    }
    json_t *rate = json_object_get(o, "calls_per_second");
    if (rate && (!json_is_number(rate) || json_number_value(rate) <= 0 ||
                 json_number_value(rate) > CFG_CALLS_RATE_MAX))
        return cfg_fail(x, "%s.calls_per_second: must be a number above 0, at most %g", where,
                        CFG_CALLS_RATE_MAX);
    if (rate)
        k->calls_per_second = json_number_value(rate);
    json_t *burst = json_object_get(o, "calls_burst");
    if (burst && (!json_is_integer(burst) || json_integer_value(burst) < 1 ||
                  json_integer_value(burst) > CFG_CALLS_BURST_MAX))
        return cfg_fail(x, "%s.calls_burst: must be an integer from 1 to %d", where,
                        CFG_CALLS_BURST_MAX);
    if (burst)
        k->calls_burst = (int)json_integer_value(burst);
    return 0;
}

static int keys_from_json(struct cfg_ctx *x, struct cfg *c, json_t *arr)
{
    static const char *const known[] = {"name",
                                        "token",
                                        "token_file",
                                        "scopes",
                                        "allow_channels",
                                        "allow_contexts",
                                        "allow_extens",
                                        "deny_extens",
                                        "allow_applications",
                                        "allow_variables",
                                        "calls_per_second",
                                        "calls_burst",
                                        NULL};
    if (!json_is_array(arr))
        return cfg_fail(x, "config file %s: api_keys: must be an array of objects", x->file);
    size_t i;
    json_t *o;
    json_array_foreach (arr, i, o) {
        char where[64];
        snprintf(where, sizeof(where), "config file %s: api_keys[%zu]", x->file, i);
        if (!json_is_object(o))
            return cfg_fail(x, "%s: must be an object", where);
        if (check_known_keys(x, o, where, known))
            return -1;
        json_t *name = json_object_get(o, "name"), *token = json_object_get(o, "token");
        json_t *tfile = json_object_get(o, "token_file"), *scopes = json_object_get(o, "scopes");
        if (!json_is_string(name))
            return cfg_fail(x, "%s.name: required string", where);
        if (!!token == !!tfile || (token && !json_is_string(token)) ||
            (tfile && !json_is_string(tfile)))
            return cfg_fail(x, "%s: give exactly one of token and token_file (strings)", where);
        if (!json_is_array(scopes) || json_array_size(scopes) == 0)
            return cfg_fail(x, "%s.scopes: required non-empty array", where);
        unsigned mask = 0;
        size_t j;
        json_t *sc;
        json_array_foreach (scopes, j, sc) {
            unsigned m;
            char bad[32];
            if (!json_is_string(sc) ||
                cfg_parse_scopes(json_string_value(sc), &m, bad, sizeof(bad)))
                return cfg_fail(x, "%s.scopes[%zu]: use read, call, control, actions or admin",
                                where, j);
            mask |= m;
        }
        char *tok = NULL;
        if (tfile) {
            char key[96];
            snprintf(key, sizeof(key), "%s.token_file", where);
            if (!(tok = read_secret_file(x, key, json_string_value(tfile))))
                return -1;
        }
        int rc = add_key(x, c, where, json_string_value(name), tok ? tok : json_string_value(token),
                         mask);
        free(tok);
        if (rc || key_policy_from_json(x, &c->keys[c->nkeys - 1], o, where))
            return -1;
    }
    return 0;
}

/* --- the whole ----------------------------------------------------------------- */

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
    return strv_push(v, n, re);
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

/* The event stream: filters, Redis outlet, SSE. */
static int events_config(struct cfg_ctx *x, struct cfg *c)
{
    const char *v;
    if (strv_from_words(&c->events_exclude, &c->nevents_exclude, "VarSet Newexten RTCP*"))
        return cfg_fail(x, "out of memory");
    if ((v = env_get(x, "AMIBRIDGE_EVENTS_INCLUDE")) &&
        strv_from_words(&c->events_include, &c->nevents_include, v))
        return cfg_fail(x, "out of memory");
    if ((v = env_get(x, "AMIBRIDGE_EVENTS_EXCLUDE")) &&
        strv_from_words(&c->events_exclude, &c->nevents_exclude, v))
        return cfg_fail(x, "out of memory");
    if ((v = env_get(x, "AMIBRIDGE_CALL_TRUNKS")) &&
        strv_from_words(&c->call_trunks, &c->ncall_trunks, v))
        return cfg_fail(x, "out of memory");
    for (size_t i = 0; i < c->nevents_include + c->nevents_exclude; i++) {
        const char *g = i < c->nevents_include ? c->events_include[i]
                                               : c->events_exclude[i - c->nevents_include];
        for (const char *p = g; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("*?[]-_!", *p))
                return cfg_fail(x, "AMIBRIDGE_EVENTS_%s: '%.64s' is not an event name glob",
                                i < c->nevents_include ? "INCLUDE" : "EXCLUDE", g);
    }
    c->redis_buffer = 10000;
    c->redis_stream_maxlen = 100000;
    c->sse_replay = 1000;
    c->call_history_s = 3600;
    c->call_max_history = 10000;
    c->call_max_live = 10000;
    c->sse_max_clients = 100;
    c->sse_max_clients_per_key = 10;
    c->sse_queue = 1000;
    c->sse_heartbeat_s = 15;
    if (env_int(x, "AMIBRIDGE_REDIS_BUFFER", 1, 10000000, &c->redis_buffer) ||
        env_int(x, "AMIBRIDGE_REDIS_STREAM_MAXLEN", 1, 1000000000, &c->redis_stream_maxlen) ||
        env_int(x, "AMIBRIDGE_EVENTS_SERVER_FILTER", 0, 1, &c->events_server_filter) ||
        env_int(x, "AMIBRIDGE_SSE_REPLAY", 0, 1000000, &c->sse_replay) ||
        env_int(x, "AMIBRIDGE_CALL_HISTORY_S", 0, 7 * 86400, &c->call_history_s) ||
        env_int(x, "AMIBRIDGE_CALL_MAX_HISTORY", 0, 1000000, &c->call_max_history) ||
        env_int(x, "AMIBRIDGE_CALL_MAX_LIVE", 1, 1000000, &c->call_max_live) ||
        env_int(x, "AMIBRIDGE_SSE_MAX_CLIENTS", 1, 100000, &c->sse_max_clients) ||
        env_int(x, "AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY", 1, 100000, &c->sse_max_clients_per_key) ||
        env_int(x, "AMIBRIDGE_SSE_QUEUE", 1, 1000000, &c->sse_queue) ||
        env_int(x, "AMIBRIDGE_SSE_HEARTBEAT_S", 1, 3600, &c->sse_heartbeat_s) ||
        env_int(x, "AMIBRIDGE_METRICS_AUTH", 0, 1, &c->metrics_auth))
        return -1;
    if (c->events_server_filter && server_filters(c))
        return cfg_fail(x, "out of memory");
    if ((v = env_val(x, "AMIBRIDGE_REDIS_STREAM"))) {
        if (strlen(v) > 200)
            return cfg_fail(x, "AMIBRIDGE_REDIS_STREAM: at most 200 characters");
        c->redis_stream = strdup(v);
    }
    return 0;
}

/* The originate guard, CORS and idempotency settings. */
static int calls_config(struct cfg_ctx *x, struct cfg *c, json_t *root)
{
    json_t *jv;
    const char *v;
    if (root && (jv = json_object_get(root, "calls_per_second"))) {
        if (!json_is_number(jv) || json_number_value(jv) <= 0 ||
            json_number_value(jv) > CFG_CALLS_RATE_MAX)
            return cfg_fail(x, "config file %s: calls_per_second: must be a number above 0",
                            x->file);
        c->calls_per_second = json_number_value(jv);
    }
    if ((v = env_val(x, "AMIBRIDGE_CALLS_PER_SECOND")) &&
        (parse_double(v, 0.001, CFG_CALLS_RATE_MAX, &c->calls_per_second)))
        return cfg_fail(x,
                        "AMIBRIDGE_CALLS_PER_SECOND: must be a number from 0.001 to %g, got '%s'",
                        CFG_CALLS_RATE_MAX, v);
    if (root && (json_int_field(x, root, "top level", "calls_burst", 1, CFG_CALLS_BURST_MAX,
                                &c->calls_burst) ||
                 json_int_field(x, root, "top level", "calls_max_inflight", 1, 1000000,
                                &c->calls_max_inflight) ||
                 json_int_field(x, root, "top level", "idempotency_ttl_s", 1, 30 * 86400,
                                &c->idempotency_ttl_s)))
        return -1;
    if (env_int(x, "AMIBRIDGE_CALLS_BURST", 1, CFG_CALLS_BURST_MAX, &c->calls_burst) ||
        env_int(x, "AMIBRIDGE_CALLS_MAX_INFLIGHT", 1, 1000000, &c->calls_max_inflight) ||
        env_int(x, "AMIBRIDGE_IDEMPOTENCY_TTL_S", 1, 30 * 86400, &c->idempotency_ttl_s) ||
        env_int(x, "AMIBRIDGE_IDEMPOTENCY_MAX", 1, 10000000, &c->idempotency_max))
        return -1;
    if (root && (jv = json_object_get(root, "cors_origins")) &&
        strv_from_json(x, "cors_origins", jv, &c->cors_origins, &c->ncors_origins))
        return -1;
    if ((v = env_get(x, "AMIBRIDGE_CORS_ORIGINS")) &&
        strv_from_words(&c->cors_origins, &c->ncors_origins, v))
        return cfg_fail(x, "out of memory");
    for (size_t i = 0; i < c->ncors_origins; i++) {
        if (!strcmp(c->cors_origins[i], "*"))
            return cfg_fail(x, "AMIBRIDGE_CORS_ORIGINS: '*' is not allowed: list the exact origins "
                               "(https://crm.example) that may call with an API key");
        if (!valid_origin(c->cors_origins[i]))
            return cfg_fail(x,
                            "AMIBRIDGE_CORS_ORIGINS: '%.100s' is not an origin "
                            "(scheme://host[:port], no path)",
                            c->cors_origins[i]);
    }
    return 0;
}

static int webhooks_config(struct cfg_ctx *x, struct cfg *c, json_t *root)
{
    const char *v;
    json_t *jv;
    c->webhook_max_attempts = 12;
    c->webhook_max_age_s = 86400;
    c->webhook_timeout_ms = 10000;
    c->webhook_retry_base_ms = 1000;
    c->webhook_retry_max_ms = 600000;
    c->webhook_queue = 10000;
    c->webhook_max_subscriptions = 100;
    c->webhook_secret_grace_s = 86400;
    if (env_int(x, "AMIBRIDGE_WEBHOOK_MAX_ATTEMPTS", 1, 1000, &c->webhook_max_attempts) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_MAX_AGE_S", 1, 30 * 86400, &c->webhook_max_age_s) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_TIMEOUT_MS", CFG_TIMEOUT_MS_MIN, CFG_TIMEOUT_MS_MAX,
                &c->webhook_timeout_ms) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS", 10, 3600000, &c->webhook_retry_base_ms) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS", 10, 86400000, &c->webhook_retry_max_ms) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_QUEUE", 1, 1000000, &c->webhook_queue) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_MAX_SUBSCRIPTIONS", 1, 10000,
                &c->webhook_max_subscriptions) ||
        env_int(x, "AMIBRIDGE_WEBHOOK_SECRET_GRACE_S", 0, 30 * 86400, &c->webhook_secret_grace_s))
        return -1;
    if (c->webhook_retry_max_ms < c->webhook_retry_base_ms)
        return cfg_fail(x,
                        "AMIBRIDGE_WEBHOOK_RETRY_MAX_MS: %d is below "
                        "AMIBRIDGE_WEBHOOK_RETRY_BASE_MS (%d)",
                        c->webhook_retry_max_ms, c->webhook_retry_base_ms);
    if ((v = env_val(x, "AMIBRIDGE_WEBHOOK_ALLOW_NETS")) && !(c->webhook_allow_nets = strdup(v)))
        return cfg_fail(x, "out of memory");
    if ((v = env_val(x, "AMIBRIDGE_STATE_DIR")) && !(c->state_dir = strdup(v)))
        return cfg_fail(x, "out of memory");
    if (root && (jv = json_object_get(root, "webhooks"))) {
        if (!json_is_array(jv))
            return cfg_fail(x, "config file %s: webhooks: must be an array of subscriptions",
                            x->file);
        if (!(c->webhooks_json = json_dumps(jv, JSON_COMPACT)))
            return cfg_fail(x, "out of memory");
    }
    return 0;
}

static int security_config(struct cfg_ctx *x, struct cfg *c)
{
    const char *v;
    char err[200];
    c->leader_ttl_ms = 5000;
    if (env_int(x, "AMIBRIDGE_LEADER_TTL_MS", 300, 600000, &c->leader_ttl_ms))
        return -1;
    c->auth_fail_limit = 30;
    c->auth_fail_window_s = 60;
    if (env_int(x, "AMIBRIDGE_AUTH_FAIL_LIMIT", 1, 1000000, &c->auth_fail_limit) ||
        env_int(x, "AMIBRIDGE_AUTH_FAIL_WINDOW_S", 1, 86400, &c->auth_fail_window_s))
        return -1;
    if ((v = env_val(x, "AMIBRIDGE_TRUSTED_NETS")) &&
        netlist_parse(v, &c->trusted_nets, &c->ntrusted_nets, err, sizeof(err)))
        return cfg_fail(x, "AMIBRIDGE_TRUSTED_NETS: %s", err);
    if ((v = env_val(x, "AMIBRIDGE_TRUSTED_PROXIES")) &&
        netlist_parse(v, &c->trusted_proxies, &c->ntrusted_proxies, err, sizeof(err)))
        return cfg_fail(x, "AMIBRIDGE_TRUSTED_PROXIES: %s", err);
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

static int tls_config(struct cfg_ctx *x, struct cfg *c)
{
    const char *cert = env_val(x, "AMIBRIDGE_TLS_CERT"), *key = env_val(x, "AMIBRIDGE_TLS_KEY");
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

static int make_instance_id(struct cfg_ctx *x, struct cfg *c)
{
    const char *v = env_val(x, "AMIBRIDGE_INSTANCE_ID");
    if (v) {
        if (strlen(v) > 32 || !valid_name(v))
            return cfg_fail(x, "AMIBRIDGE_INSTANCE_ID: '%.40s' must be 1-32 of A-Z a-z 0-9 _ -", v);
        snprintf(c->instance_id, sizeof(c->instance_id), "%s", v);
        return 0;
    }
    unsigned char r[4];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return cfg_fail(x, "cannot get random bytes for the instance id: %s", strerror(errno));
    snprintf(c->instance_id, sizeof(c->instance_id), "ab%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    return 0;
}

int cfg_load(struct cfg *c, char *const *envp, const char *config_path, char *err, size_t errlen)
{
    static const char *const known[] = {"listen",
                                        "servers",
                                        "api_keys",
                                        "deny_actions",
                                        "allow_actions",
                                        "deny_originate_apps",
                                        "deny_functions",
                                        "allow_functions",
                                        "redis_url",
                                        "log_level",
                                        "max_body",
                                        "http_max_connections",
                                        "http_timeout_s",
                                        "calls_per_second",
                                        "calls_burst",
                                        "calls_max_inflight",
                                        "idempotency_ttl_s",
                                        "cors_origins",
                                        "webhooks",
                                        NULL};
    struct cfg_ctx x = {envp ? envp : environ, err, errlen, ""};
    json_t *root = NULL;
    const char *v;
    int rc = -1;
    memset(c, 0, sizeof(*c));
    c->log_level = LOG_INFO;
    c->max_body = 65536;
    c->http_max_connections = 2048;
    c->http_timeout_s = 60;
    c->calls_per_second = 5;
    c->calls_burst = 10;
    c->calls_max_inflight = 50;
    c->idempotency_ttl_s = 86400;
    c->idempotency_max = 100000;
    if (strv_from_defaults(&c->deny_actions, &c->ndeny_actions, default_deny_actions) ||
        strv_from_defaults(&c->deny_apps, &c->ndeny_apps, default_deny_apps) ||
        strv_from_defaults(&c->deny_funcs, &c->ndeny_funcs, default_deny_funcs) ||
        strv_from_defaults(&c->allow_funcs, &c->nallow_funcs, default_allow_funcs)) {
        cfg_fail(&x, "out of memory");
        goto out;
    }

    if (!config_path)
        config_path = env_val(&x, "AMIBRIDGE_CONFIG");
    if (config_path) {
        x.file = config_path;
        if (load_file(&x, c, config_path, &root) || check_known_keys(&x, root, "top level", known))
            goto out;
    }

    /* listen: env over file over default */
    json_t *jv;
    const char *listen = "127.0.0.1:8080";
    if (root && (jv = json_object_get(root, "listen"))) {
        if (!json_is_string(jv)) {
            cfg_fail(&x, "config file %s: listen: must be a string", x.file);
            goto out;
        }
        listen = json_string_value(jv);
    }
    if ((v = env_val(&x, "AMIBRIDGE_LISTEN")))
        listen = v;
    if (parse_listen(&x, c, (v ? "AMIBRIDGE_LISTEN" : "listen"), listen))
        goto out;

    /* servers */
    if (root && (jv = json_object_get(root, "servers"))) {
        static const char *const per_server_env[] = {"AMIBRIDGE_AMI_HOST",
                                                     "AMIBRIDGE_AMI_PORT",
                                                     "AMIBRIDGE_AMI_USERNAME",
                                                     "AMIBRIDGE_AMI_SECRET",
                                                     "AMIBRIDGE_AMI_SECRET_FILE",
                                                     "AMIBRIDGE_AMI_NAME",
                                                     NULL};
        for (const char *const *e = per_server_env; *e; e++)
            if (env_val(&x, *e)) {
                cfg_fail(&x, "%s: set, but config file %s defines servers; use one or the other",
                         *e, x.file);
                goto out;
            }
        if (servers_from_json(&x, c, jv))
            goto out;
    } else if (server_from_env(&x, c)) {
        goto out;
    }

    /* API keys: environment, key file and config file together */
    if ((v = env_val(&x, "AMIBRIDGE_API_KEYS")) && parse_key_list(&x, c, "AMIBRIDGE_API_KEYS", v))
        goto out;
    if ((v = env_val(&x, "AMIBRIDGE_API_KEYS_FILE"))) {
        FILE *f = fopen(v, "rb");
        if (!f) {
            cfg_fail(&x, "AMIBRIDGE_API_KEYS_FILE: cannot read '%s': %s", v, strerror(errno));
            goto out;
        }
        struct {
            char b[65536];
        } *buf = malloc(sizeof(*buf));
        size_t n = buf ? fread(buf->b, 1, sizeof(buf->b) - 1, f) : 0;
        int big = buf && !feof(f);
        fclose(f);
        if (!buf || big) {
            free(buf);
            cfg_fail(&x, "AMIBRIDGE_API_KEYS_FILE: '%s' is too large", v);
            goto out;
        }
        buf->b[n] = '\0';
        int krc = parse_key_list(&x, c, "AMIBRIDGE_API_KEYS_FILE", buf->b);
        explicit_bzero(buf, sizeof(*buf));
        free(buf);
        if (krc)
            goto out;
    }
    if (root && (jv = json_object_get(root, "api_keys")) && keys_from_json(&x, c, jv))
        goto out;

    /* deny lists */
    if (root && (jv = json_object_get(root, "deny_actions")) &&
        strv_from_json(&x, "deny_actions", jv, &c->deny_actions, &c->ndeny_actions))
        goto out;
    if ((v = env_get(&x, "AMIBRIDGE_DENY_ACTIONS")) &&
        strv_from_words(&c->deny_actions, &c->ndeny_actions, v))
        goto out;
    if (root && (jv = json_object_get(root, "deny_originate_apps")) &&
        strv_from_json(&x, "deny_originate_apps", jv, &c->deny_apps, &c->ndeny_apps))
        goto out;
    if ((v = env_get(&x, "AMIBRIDGE_DENY_ORIGINATE_APPS")) &&
        strv_from_words(&c->deny_apps, &c->ndeny_apps, v))
        goto out;
    if (root && (jv = json_object_get(root, "deny_functions")) &&
        strv_from_json(&x, "deny_functions", jv, &c->deny_funcs, &c->ndeny_funcs))
        goto out;
    if ((v = env_get(&x, "AMIBRIDGE_DENY_FUNCTIONS")) &&
        strv_from_words(&c->deny_funcs, &c->ndeny_funcs, v))
        goto out;
    if (root && (jv = json_object_get(root, "allow_functions")) &&
        strv_from_json(&x, "allow_functions", jv, &c->allow_funcs, &c->nallow_funcs))
        goto out;
    if ((v = env_get(&x, "AMIBRIDGE_ALLOW_FUNCTIONS")) &&
        strv_from_words(&c->allow_funcs, &c->nallow_funcs, v))
        goto out;
    /* the old spelling "SHELL(" names the function SHELL */
    for (size_t i = 0; i < c->ndeny_funcs; i++) {
        size_t l = strlen(c->deny_funcs[i]);
        if (l > 1 && c->deny_funcs[i][l - 1] == '(')
            c->deny_funcs[i][l - 1] = '\0';
    }
    {
        char **allow = NULL;
        size_t nallow = 0;
        if (root && (jv = json_object_get(root, "allow_actions")) &&
            strv_from_json(&x, "allow_actions", jv, &allow, &nallow)) {
            strv_free(allow, nallow); /* what was taken before the bad entry */
            goto out;
        }
        if ((v = env_val(&x, "AMIBRIDGE_ALLOW_ACTIONS")))
            strv_from_words(&allow, &nallow, v);
        for (size_t i = 0; i < nallow; i++)
            strv_remove_ci(c->deny_actions, &c->ndeny_actions, allow[i]);
        strv_free(allow, nallow);
    }
    for (size_t i = 0; i < c->ndeny_actions; i++)
        if (!valid_name(c->deny_actions[i])) {
            cfg_fail(&x, "deny_actions: '%.64s' is not an action name", c->deny_actions[i]);
            goto out;
        }

    /* scalars */
    {
        int lvl = LOG_INFO, maxbody = (int)c->max_body, maxconn = (int)c->http_max_connections;
        int tmo = (int)c->http_timeout_s, hdr = 10, whole = 30, per_client = 256;
        const char *lv = NULL;
        if (root &&
            (json_str_field(&x, root, "top level", "log_level", &lv) ||
             json_int_field(&x, root, "top level", "max_body", 1, CFG_MAX_BODY_MAX, &maxbody) ||
             json_int_field(&x, root, "top level", "http_max_connections", 1, 1000000, &maxconn) ||
             json_int_field(&x, root, "top level", "http_timeout_s", 1, 86400, &tmo)))
            goto out;
        if ((v = env_val(&x, "AMIBRIDGE_LOG_LEVEL")))
            lv = v;
        if (lv && (lvl = log_level_parse(lv)) < 0) {
            cfg_fail(&x, "AMIBRIDGE_LOG_LEVEL: must be debug, info, warn or error, got '%s'", lv);
            goto out;
        }
        if (env_int(&x, "AMIBRIDGE_MAX_BODY", 1, CFG_MAX_BODY_MAX, &maxbody) ||
            env_int(&x, "AMIBRIDGE_HTTP_MAX_CONNECTIONS", 1, 1000000, &maxconn) ||
            env_int(&x, "AMIBRIDGE_HTTP_TIMEOUT_S", 1, 86400, &tmo) ||
            env_int(&x, "AMIBRIDGE_HTTP_REUSEPORT", 0, 1, &c->http_reuseport) ||
            env_int(&x, "AMIBRIDGE_HTTP_HEADER_TIMEOUT_S", 1, 3600, &hdr) ||
            env_int(&x, "AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S", 1, 86400, &whole) ||
            env_int(&x, "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT", 0, 1000000, &per_client))
            goto out;
        c->log_level = lvl;
        c->max_body = (size_t)maxbody;
        c->http_max_connections = (unsigned)maxconn;
        c->http_timeout_s = (unsigned)tmo;
        c->http_header_timeout_s = (unsigned)hdr;
        c->http_request_timeout_s = (unsigned)whole;
        c->http_max_connections_per_client = (unsigned)per_client;
    }
    const char *redis = NULL;
    if (root && json_str_field(&x, root, "top level", "redis_url", &redis))
        goto out;
    if ((v = env_val(&x, "AMIBRIDGE_REDIS_URL")))
        redis = v;
    if (redis) {
        if (strncmp(redis, "redis://", 8) && strncmp(redis, "unix:", 5)) {
            cfg_fail(&x, "AMIBRIDGE_REDIS_URL: must start with redis:// or unix:");
            goto out;
        }
        c->redis_url = strdup(redis);
    }
    snprintf(c->redis_prefix, sizeof(c->redis_prefix), "ami");
    if ((v = env_val(&x, "AMIBRIDGE_REDIS_PREFIX"))) {
        if (strlen(v) >= sizeof(c->redis_prefix) || !valid_name(v)) {
            cfg_fail(&x, "AMIBRIDGE_REDIS_PREFIX: '%.64s' must be 1-63 of A-Z a-z 0-9 _ -", v);
            goto out;
        }
        snprintf(c->redis_prefix, sizeof(c->redis_prefix), "%s", v);
    }
    if (calls_config(&x, c, root) || events_config(&x, c) || webhooks_config(&x, c, root) ||
        security_config(&x, c) || tls_config(&x, c))
        goto out;
    if (make_instance_id(&x, c))
        goto out;

    if (c->nkeys == 0 && !c->listen_loopback) {
        cfg_fail(&x,
                 "AMIBRIDGE_LISTEN: %s is not a loopback address and no API keys are configured "
                 "(AMIBRIDGE_API_KEYS); refusing to expose the PBX without authentication",
                 c->listen_host);
        goto out;
    }
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
    for (size_t i = 0; i < c->nkeys; i++) {
        free(c->keys[i].name);
        explicit_bzero(c->keys[i].token, strlen(c->keys[i].token));
        free(c->keys[i].token);
        policy_free(&c->keys[i].policy);
    }
    free(c->keys);
    strv_free(c->deny_actions, c->ndeny_actions);
    strv_free(c->deny_apps, c->ndeny_apps);
    strv_free(c->deny_funcs, c->ndeny_funcs);
    strv_free(c->allow_funcs, c->nallow_funcs);
    strv_free(c->cors_origins, c->ncors_origins);
    strv_free(c->events_include, c->nevents_include);
    strv_free(c->call_trunks, c->ncall_trunks);
    strv_free(c->events_exclude, c->nevents_exclude);
    strv_free(c->ami_filters, c->nami_filters);
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
