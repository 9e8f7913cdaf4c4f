/* config: the service's settings, from the environment and a JSON file.
 *
 * Environment first (AMIBRIDGE_*), with *_FILE variants for secrets; the
 * optional JSON file (AMIBRIDGE_CONFIG or --config) for what the environment
 * cannot say well: several AMI servers, many keys, deny lists. A bad value
 * stops start-up with a message naming the key; secret values never appear
 * in a message.
 */
#ifndef AMIBRIDGE_CORE_CONFIG_H
#define AMIBRIDGE_CORE_CONFIG_H

#include <stddef.h>

struct netlist_net;

enum cfg_scope {
    CFG_SCOPE_READ = 1 << 0,
    CFG_SCOPE_CALL = 1 << 1,
    CFG_SCOPE_CONTROL = 1 << 2,
    CFG_SCOPE_ACTIONS = 1 << 3,
    CFG_SCOPE_ADMIN = 1 << 4,
};
#define CFG_SCOPE_ALL 0x1f

enum cfg_auth { CFG_AUTH_MD5 = 0, CFG_AUTH_PLAIN };

#define CFG_NAME_MAX            64 /* server and key names */
#define CFG_MAX_SERVERS         32
#define CFG_MAX_KEYS            1024
#define CFG_POOL_SIZE_MAX       64
#define CFG_EVENTS_HOLD_MIB_MAX 16384
#define CFG_TIMEOUT_MS_MIN      100
#define CFG_TIMEOUT_MS_MAX      600000
#define CFG_MAX_BODY_MAX        (16 * 1024 * 1024)
#define CFG_FILE_MAX            (4 * 1024 * 1024)
#define CFG_PEM_MAX             (1024 * 1024)
#define CFG_CALLS_RATE_MAX      10000.0
#define CFG_CALLS_BURST_MAX     100000

struct cfg_server {
    char *name;
    char *host;
    int port;
    char *username;
    char *secret; /* never logged */
    enum cfg_auth auth;
    int pool_size;
    int timeout_ms;
    int max_inflight;          /* per server, all action connections */
    int max_inflight_per_conn; /* per action connection */
    int keepalive_ms;
    int connect_timeout_ms;
    int events_hold_mib; /* AMI events held back while Redis catches up (ami_conn_pause) */
};

/* A per-key dial policy (toll-fraud guard): globs, case-insensitive. An
 * empty allow list allows everything; a deny list wins over allow. */
struct cfg_policy {
    char **allow_channels;
    size_t nallow_channels;
    char **allow_contexts;
    size_t nallow_contexts;
    char **allow_extens;
    size_t nallow_extens;
    char **deny_extens;
    size_t ndeny_extens;
    char **allow_applications; /* Originate applications; with any list set, none by default */
    size_t nallow_applications;
    char **allow_variables; /* variables the key may set; empty: any but the steering ones */
    size_t nallow_variables;
};

struct cfg_api_key {
    char *name;
    char *token; /* never logged */
    unsigned scopes;
    struct cfg_policy policy;
    double calls_per_second; /* 0: the global AMIBRIDGE_CALLS_PER_SECOND */
    int calls_burst;         /* 0: the global AMIBRIDGE_CALLS_BURST */
};

struct cfg {
    char listen_host[80]; /* numeric address */
    int listen_port;
    int listen_loopback; /* the listen address is a loopback address */
    struct cfg_server *servers;
    size_t nservers;
    struct cfg_api_key *keys;
    size_t nkeys;
    char *redis_url;
    char redis_prefix[64]; /* channel and key prefix in Redis */
    int redis_buffer;      /* events held while Redis is slow or down */
    char *redis_stream;    /* XADD target, or NULL */
    int redis_stream_maxlen;
    char **events_include; /* event name globs; empty: all */
    size_t nevents_include;
    char **events_exclude;
    size_t nevents_exclude;
    int events_server_filter; /* also ask Asterisk to filter (Filter action) */
    char **ami_filters;       /* the Filter values that realise it */
    size_t nami_filters;
    char **call_trunks; /* channel globs of trunks, for a call's direction */
    size_t ncall_trunks;
    int call_history_s; /* ended calls answered by GET /v1/calls/{id} */
    int call_max_live;  /* calls followed at once per server */
    int call_max_history;
    int sse_replay; /* events kept for Last-Event-ID */
    int sse_max_clients;
    int sse_max_clients_per_key; /* per API key; per client address without keys */
    int sse_queue;               /* events queued per SSE client before it is cut off */
    int sse_heartbeat_s;
    int metrics_auth; /* /metrics needs a key with scope read */
    int log_level;
    char **deny_actions; /* names refused on the generic route */
    size_t ndeny_actions;
    char **deny_apps; /* Originate Application globs refused */
    size_t ndeny_apps;
    char **deny_funcs; /* dialplan functions never called, globs ("SHELL", "DB_*") */
    size_t ndeny_funcs;
    char **allow_funcs; /* the only dialplan functions a value may call */
    size_t nallow_funcs;
    size_t max_body;
    unsigned http_max_connections;
    unsigned http_timeout_s;
    unsigned http_header_timeout_s;
    unsigned http_request_timeout_s;          /* head and body of one request */
    unsigned http_max_connections_per_client; /* per client address; 0: no limit */
    int http_reuseport;      /* share the port with other processes (SO_REUSEPORT) */
    double calls_per_second; /* originate token bucket, per API key */
    int calls_burst;
    int calls_max_inflight; /* originates waiting for their outcome, per server */
    char **cors_origins;    /* exact origins allowed to call from a browser */
    size_t ncors_origins;
    int idempotency_ttl_s;
    int idempotency_max;      /* entries kept in memory (without Redis) */
    char *webhook_allow_nets; /* networks webhooks may reach despite the SSRF guard */
    int webhook_max_attempts;
    int webhook_max_age_s;
    int webhook_timeout_ms; /* per attempt */
    int webhook_retry_base_ms;
    int webhook_retry_max_ms;
    int webhook_queue; /* deliveries waiting per subscription */
    int webhook_max_subscriptions;
    int webhook_secret_grace_s;       /* an old secret keeps signing this long after a new one */
    char *webhooks_json;              /* static subscriptions from the config file (a JSON array) */
    char *state_dir;                  /* webhook subscriptions without Redis, or NULL */
    struct netlist_net *trusted_nets; /* clients allowed at all (loopback always is); none: all */
    size_t ntrusted_nets;
    struct netlist_net *trusted_proxies; /* peers whose X-Forwarded-For names the client */
    size_t ntrusted_proxies;
    int auth_fail_limit; /* bad tokens per client address per window before it is locked out */
    int auth_fail_window_s;
    int leader_ttl_ms;  /* the leader lease in Redis */
    char *tls_cert_pem; /* HTTPS on the listener: certificate chain and key, PEM */
    char *tls_key_pem;  /* never logged */
    char instance_id[33];
    char *config_path; /* the file used, or NULL */
};

/* One setting as documented, for --help and --config-table (whose output
 * docs/configuration.md holds). */
struct cfg_doc {
    const char *env;  /* AMIBRIDGE_..., or NULL: only in the config file */
    const char *json; /* its key in the config file (in a servers[] entry for the
                       * AMIBRIDGE_AMI_* ones), or NULL: only in the environment */
    const char *def;  /* the default as a variable would hold it; "(...)" describes it */
    const char *help;
};

/* The i-th setting, in the documented order, or NULL past the last. The
 * entry is static: never freed. */
const struct cfg_doc *cfg_doc_at(size_t i);

/* Load from `envp` (an environ-style NULL-terminated array; NULL means the
 * process environment) and the JSON file named by `config_path`, or by
 * AMIBRIDGE_CONFIG when `config_path` is NULL. Returns 0, or -1 with a
 * message naming the bad key in err. On error nothing needs freeing; on
 * success release with cfg_free(). */
int cfg_load(struct cfg *c, char *const *envp, const char *config_path, char *err, size_t errlen);
void cfg_free(struct cfg *c);

/* Parse "read,call" into a scope mask; -1 on an unknown scope name. */
int cfg_parse_scopes(const char *s, unsigned *out, char *bad, size_t badlen);
const char *cfg_scope_name(unsigned scope_bit);

/* The server named `name`, or the first one when name is NULL. */
const struct cfg_server *cfg_server_find(const struct cfg *c, const char *name);

#endif
