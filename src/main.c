/* amibridge: flags -> config -> loop -> signals -> drain. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <gnutls/gnutls.h>
#include <nettle/version.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "ami/pool.h"
#include "api/api.h"
#include "bus/events.h"
#include "call/calls.h"
#include "bus/lease.h"
#include "bus/publisher.h"
#include "bus/redis.h"
#include "bus/webhooks.h"
#include "core/metrics.h"
#include "core/config.h"
#include "core/log.h"
#include "http/server.h"

#define SHUTDOWN_GRACE_MS       5000 /* longest wait for in-flight requests on SIGTERM */
#define SHUTDOWN_POLL_MS        50
#define HEALTHCHECK_TIMEOUT_S   3
#define SHUTDOWN_REDIS_FLUSH_MS 2000 /* longest wait for Redis to take buffered events */
#define SHUTDOWN_HELD_MS        5000 /* longest wait for AMI events held back to be passed on */

struct server_ctx {
    struct bus *bus;
    struct calls *calls;
    size_t index;
    struct ami_pool *pool;
    uv_timer_t retry;  /* CoreShowChannels again after a failure */
    int listing;       /* a CoreShowChannels is in flight */
    int relist;        /* AMI events restarted while it was: its list is old */
    int restore_waits; /* waits for Redis before taking the calls over */
};

#define CALLS_LIST_RETRY_MS   1000
#define CALLS_LIST_TIMEOUT_MS 10000

struct app {
    uv_loop_t *loop;
    struct cfg cfg;
    struct ami_pool **pools;
    size_t npools;
    struct server_ctx *servers;
    struct bus *bus;
    struct calls *calls;  /* the call model of every server */
    struct bus *call_bus; /* its events, for every outlet */
    struct bus_publisher *publisher;
    struct api *api;
    struct bus_redis *redis;
    struct bus_redis *redis_sub;        /* the published stream, read back for SSE (not leading) */
    struct bus_redis *redis_calls_sub;  /* and the leader's call events */
    struct bus_redis *redis_expect_sub; /* the calls followers place, for the leader */
    struct bus_redis *redis_lease; /* the lease's own connection: never queued behind bulk work */
    struct webhooks *webhooks;
    struct bus_lease *lease; /* with Redis: who publishes and delivers */
    struct http_server *http;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain;
    uint64_t drain_started;
    uint64_t held_started;
    int stopping;
    int pools_open;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: amibridge [--config FILE] [--check-config] [--version] [--help]\n\n"
               "A REST/JSON bridge to the Asterisk Manager Interface.\n\n"
               "  --config FILE    JSON config file (also AMIBRIDGE_CONFIG)\n"
               "  --check-config   load and validate the configuration, then exit\n"
               "  --version        print the version and the library versions\n"
               "  --config-table   print the settings as a Markdown table\n"
               "  --healthcheck    GET /readyz of the configured listener; exit 0 when ready\n"
               "  --help           this text\n\n"
               "Settings come from the environment:\n\n");
    const struct cfg_doc *d;
    for (size_t i = 0; (d = cfg_doc_at(i)); i++)
        if (d->env)
            fprintf(f, "  %-36s %s\n  %-36s default: %s\n", d->env, d->help, "",
                    d->def[0] ? d->def : "(none)");
}

/* The configuration reference as the README shows it (a test checks that
 * the README holds exactly this table, so the two cannot drift). */
static void config_table(void)
{
    printf("| variable | default | meaning |\n| --- | --- | --- |\n");
    const struct cfg_doc *d;
    for (size_t i = 0; (d = cfg_doc_at(i)); i++)
        if (d->env)
            printf("| `%s` | %s%s%s | %s |\n", d->env, d->def[0] && d->def[0] != '(' ? "`" : "",
                   d->def[0] ? d->def : "", d->def[0] && d->def[0] != '(' ? "`" : "", d->help);
}

/* --healthcheck: GET /readyz on the configured address with a plain
 * socket (container images need no curl). Exit 0 when it answers 200. */
/* libcurl's answer, kept small. */
static size_t health_body(char *p, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), len = size * n, room = 4095 - have;
    memcpy(buf + have, p, len < room ? len : room);
    buf[have + (len < room ? len : room)] = '\0';
    return len;
}

/* With HTTPS on the listener the probe speaks TLS (libcurl, which the
 * image has anyway for webhooks). It talks to this very process on
 * loopback, so the certificate's name is not checked. */
static int healthcheck_tls(const char *host, int port)
{
    char url[128], body[4096] = "";
    snprintf(url, sizeof(url),
             strchr(host, ':') ? "https://[%s]:%d/readyz" : "https://%s:%d/readyz", host, port);
    CURL *e = curl_easy_init();
    long status = 0;
    if (!e)
        return 1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)HEALTHCHECK_TIMEOUT_S);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, health_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)body);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        fprintf(stderr, "healthcheck: %s: %s\n", url, curl_easy_strerror(rc));
        return 1;
    }
    printf("%s\n", body);
    return status == 200 ? 0 : 1;
}

static int healthcheck(const struct cfg *c)
{
    const char *host = c->listen_host;
    if (!strcmp(host, "0.0.0.0"))
        host = "127.0.0.1";
    else if (!strcmp(host, "::"))
        host = "::1";
    if (c->tls_cert_pem)
        return healthcheck_tls(host, c->listen_port);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)c->listen_port);
        sl = sizeof(*in);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)c->listen_port);
        sl = sizeof(*in6);
    } else {
        return 1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {HEALTHCHECK_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        fprintf(stderr, "healthcheck: cannot connect to %s:%d: %s\n", host, c->listen_port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host);
    char buf[4096];
    ssize_t got = 0;
    if (write(fd, req, (size_t)n) == n)
        got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (got <= 0) {
        fprintf(stderr, "healthcheck: no answer from %s:%d\n", host, c->listen_port);
        return 1;
    }
    buf[got] = '\0';
    int ok = !strncmp(buf, "HTTP/1.1 200", 12) || !strncmp(buf, "HTTP/1.0 200", 12);
    const char *body = strstr(buf, "\r\n\r\n");
    printf("%s\n", body ? body + 4 : buf);
    return ok ? 0 : 1;
}

static void version(void)
{
    printf("amibridge %s\n", AMIBRIDGE_VERSION);
    /* the libraries as loaded at run time (hiredis has compile-time numbers only) */
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("libuv %s, GnuTLS %s, jansson %s, hiredis %d.%d.%d, nettle %d.%d, libcurl %s (%s)\n",
           uv_version_string(), gnutls_check_version(NULL), jansson_version_str(), HIREDIS_MAJOR,
           HIREDIS_MINOR, HIREDIS_PATCH, nettle_version_major(), nettle_version_minor(),
           cv->version, cv->ssl_version ? cv->ssl_version : "no TLS");
}

/* Many keep-alive clients need many descriptors: take what the hard limit
 * allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void closed_all(void *arg);

/* Last step: Redis has taken what it would; give the lease up at once (a
 * follower takes over without waiting for it to expire), then close. */
static void flushed(void *arg)
{
    struct app *app = arg;
    if (app->webhooks) {
        /* it goes once Redis has answered what it sent: at the latest when
         * closed_all() closes the connection */
        webhooks_close(app->webhooks, NULL, NULL);
        app->webhooks = NULL;
    }
    if (app->lease && app->redis_lease) {
        bus_lease_release(app->lease, closed_all, app);
        return;
    }
    closed_all(app);
}

static void closed_all(void *arg)
{
    struct app *app = arg;
    if (app->lease) {
        bus_lease_close(app->lease, NULL, NULL);
        app->lease = NULL;
    }
    if (app->publisher) {
        bus_publisher_close(app->publisher, NULL, NULL);
        app->publisher = NULL;
    }
    if (app->redis) {
        bus_redis_close(app->redis, NULL, NULL);
        app->redis = NULL;
    }
    if (app->redis_sub) {
        bus_redis_close(app->redis_sub, NULL, NULL);
        app->redis_sub = NULL;
    }
    if (app->redis_calls_sub) {
        bus_redis_close(app->redis_calls_sub, NULL, NULL);
        app->redis_calls_sub = NULL;
    }
    if (app->redis_expect_sub) {
        bus_redis_close(app->redis_expect_sub, NULL, NULL);
        app->redis_expect_sub = NULL;
    }
    if (app->redis_lease) {
        bus_redis_close(app->redis_lease, NULL, NULL);
        app->redis_lease = NULL;
    }
    uv_close((uv_handle_t *)&app->sigterm, on_closed);
    uv_close((uv_handle_t *)&app->sigint, on_closed);
    uv_close((uv_handle_t *)&app->drain, on_closed);
}

static void pool_closed(void *arg)
{
    struct app *app = arg;
    if (--app->pools_open > 0)
        return;
    /* no more events can come: give Redis a moment for what is buffered */
    if (app->publisher)
        bus_publisher_drain(app->publisher, SHUTDOWN_REDIS_FLUSH_MS, flushed, app);
    else
        flushed(app);
}

/* The buses' webhooks sink: the webhooks close before the buses do. */
static void webhooks_outlet(void *ud, struct bus_event *e)
{
    struct app *app = ud;
    if (app->webhooks)
        webhooks_sink(app->webhooks, e);
}

/* Redis came up or went down: both of its users want to know. */
static void redis_state(void *ud, int up)
{
    struct app *app = ud;
    if (app->publisher)
        bus_publisher_redis_state(app->publisher, up);
    if (app->webhooks)
        webhooks_redis_state(app->webhooks, up);
}

static void lease_redis_state(void *ud, int up)
{
    struct app *app = ud;
    if (app->lease)
        bus_lease_redis_state(app->lease, up);
}

/* This replica took or lost the leader lease. */
static void on_published(void *ud, const char *channel, const char *msg, size_t len);

/* The published stream, read back (PSUBSCRIBE <prefix>.*) for this
 * replica's SSE clients while another replica leads or may lead. The
 * leader has its events first hand: reading them back would cost Redis a
 * second copy of every event and this process a reply to parse. A replica
 * subscribes as soon as it is not sure to lead (UNSURE comes before
 * another replica can take the lease); what a new leader published before
 * that subscription took effect is not in this replica's replay. */
static void stream_sub(struct app *app, int on)
{
    if (!on == !app->redis_sub)
        return;
    if (!on) {
        bus_redis_close(app->redis_sub, NULL, NULL);
        app->redis_sub = NULL;
        return;
    }
    if (app->stopping)
        return;
    char err[256], pattern[96];
    snprintf(pattern, sizeof(pattern), "%s.*", app->cfg.redis_prefix);
    app->redis_sub = bus_redis_new(app->loop, app->cfg.redis_url, err, sizeof(err));
    if (!app->redis_sub) {
        log_error("cannot read the published event stream back", "{s:s}", "error", err);
        return;
    }
    bus_redis_psubscribe(app->redis_sub, pattern, on_published, app);
}

static void leader_changed(void *ud, enum bus_lease_change change)
{
    struct app *app = ud;
    stream_sub(app, change == BUS_LEASE_FOLLOWER || change == BUS_LEASE_UNSURE);
    bus_set_follower(app->bus, change == BUS_LEASE_FOLLOWER);
    bus_set_follower(app->call_bus, change == BUS_LEASE_FOLLOWER);
    /* the calls are the leader's now: this process's copy would go stale
     * (when it leads again it takes them over from Redis) */
    if (change == BUS_LEASE_FOLLOWER)
        calls_forget_live(app->calls);
    calls_set_follower(app->calls, change == BUS_LEASE_FOLLOWER);
    /* only the leader keeps an event connection: a follower's own
     * OriginateResponses come back through the leader's stream */
    for (size_t i = 0; i < app->npools; i++)
        if (app->pools[i])
            ami_pool_set_events(app->pools[i], change != BUS_LEASE_FOLLOWER);
    if (app->publisher)
        bus_publisher_leader(app->publisher, change);
    if (app->webhooks)
        webhooks_leader(app->webhooks, change);
}

/* What the leader published, for this replica's SSE clients. */
static void on_published(void *ud, const char *channel, const char *msg, size_t len)
{
    struct app *app = ud;
    bus_inject(app->bus, msg, len);
    /* the outcome of a call this follower placed */
    if (!strstr(channel, ".OriginateResponse"))
        return;
    json_t *o = json_loadb(msg, len, 0, NULL);
    const char *server = json_string_value(json_object_get(o, "server"));
    struct ami_msg *m = NULL;
    struct ami_error err;
    for (size_t i = 0; server && i < app->npools; i++)
        if (app->pools[i] && !strcmp(app->cfg.servers[i].name, server) &&
            ami_msg_from_json(json_object_get(o, "fields"), &m, &err) == 0) {
            ami_pool_feed_event(app->pools[i], m);
            break;
        }
    json_decref(o);
}

static void on_ami_event(void *ud, const struct ami_msg *m)
{
    struct server_ctx *s = ud;
    /* the call model sees every event, before the event filters */
    if (s->calls)
        calls_feed(s->calls, s->index, m, log_wall_ms());
    bus_publish_ami(s->bus, s->index, m);
}

static void list_channels(struct server_ctx *s);

static void on_list_retry(uv_timer_t *t)
{
    list_channels(t->data);
}

/* The PBX's live channels settle the calls after AMI events (re)started. */
static void on_channels_listed(void *ud, const struct ami_result *r)
{
    struct server_ctx *s = ud;
    s->listing = 0;
    if (r->status == AMI_ESHUTDOWN || !s->pool)
        return;
    if (s->relist) {
        s->relist = 0;
        list_channels(s);
        return;
    }
    if (r->status == AMI_OK && r->response && ami_msg_is(r->response, "Response", "Success")) {
        calls_snapshot(s->calls, s->index, r->events, r->nevents, log_wall_ms());
        return;
    }
    if (r->status == AMI_OK) {
        /* refused (the AMI user lacks the system or reporting class):
         * asking again would not help; calls that ended while AMI was down
         * stay listed until amibridge restarts */
        log_warn(
            "calls: CoreShowChannels refused; calls cannot be settled after a reconnect",
            "{s:s,s:s}", "server", ami_pool_name(s->pool), "message",
            r->response
                ? (ami_msg_get(r->response, "Message") ? ami_msg_get(r->response, "Message") : "")
                : "");
        return;
    }
    uv_timer_start(&s->retry, on_list_retry, CALLS_LIST_RETRY_MS, 0);
}

static void list_channels(struct server_ctx *s)
{
    if (!s->pool)
        return; /* shutting down */
    if (s->listing) {
        s->relist = 1;
        return;
    }
    struct ami_msg *m = ami_msg_new();
    struct ami_submit_opts opts = {.timeout_ms = CALLS_LIST_TIMEOUT_MS};
    if (m && ami_msg_add(m, "Action", "CoreShowChannels") != 0) {
        ami_msg_free(m);
        m = NULL;
    }
    /* the pool takes the action in every case */
    if (m && ami_pool_submit(s->pool, m, &opts, on_channels_listed, s, NULL) == 0) {
        s->listing = 1;
        return;
    }
    /* no action connection yet: soon again */
    uv_timer_start(&s->retry, on_list_retry, CALLS_LIST_RETRY_MS, 0);
}

static void on_calls_restored(void *ud)
{
    list_channels(ud);
}

#define CALLS_RESTORE_WAIT_MS  250
#define CALLS_RESTORE_ATTEMPTS 40 /* 10 s for Redis to come up */

/* The copy in Redis is taken over before the list: wait for Redis a while
 * (the lease has a connection of its own and may come first). */
static void restore_calls(uv_timer_t *t)
{
    struct server_ctx *s = t->data;
    if (!s->pool)
        return;
    if (calls_redis_waiting(s->calls) && ++s->restore_waits < CALLS_RESTORE_ATTEMPTS) {
        uv_timer_start(&s->retry, restore_calls, CALLS_RESTORE_WAIT_MS, 0);
        return;
    }
    if (s->restore_waits >= CALLS_RESTORE_ATTEMPTS)
        log_warn("calls: Redis is not up; live calls not taken over from it", "{s:s}", "server",
                 ami_pool_name(s->pool));
    calls_restore(s->calls, s->index, on_calls_restored, s);
}

/* AMI events (re)started: calls may have ended meanwhile. What Redis kept
 * of them (another leader's, or this process's before a restart) is taken
 * over first, then CoreShowChannels settles them. */
static void on_events_up(void *ud)
{
    struct server_ctx *s = ud;
    calls_mark(s->calls, s->index);
    s->restore_waits = 0;
    restore_calls(&s->retry);
}

/* A call event goes on the call bus: to Redis as calls.<server>.<type>
 * (through the same ordered, and with replicas fenced, outlet as the AMI
 * events), to GET /v1/calls/events and to webhooks. The fields of a call
 * event that stream and webhook filters match: type, id, reference,
 * direction, state, outcome, queue. */
static struct ami_msg *call_fields(const char *type, json_t *event)
{
    json_t *call = json_object_get(event, "call");
    struct ami_msg *f = ami_msg_new();
    if (!f)
        return NULL;
    ami_msg_add(f, "type", type);
    static const char *const keys[] = {"id", "direction", "state", "outcome", "queue"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = json_string_value(json_object_get(call, keys[i]));
        if (v)
            ami_msg_add(f, keys[i], v);
    }
    const char *ref =
        json_string_value(json_object_get(json_object_get(call, "origination"), "reference"));
    if (ref)
        ami_msg_add(f, "reference", ref);
    return f;
}

static void on_call_event(void *ud, size_t server, const char *type, json_t *event)
{
    struct app *app = ud;
    struct ami_msg *f = call_fields(type, event);
    if (!f)
        return;
    bus_publish_json(app->call_bus, server, type, event, f);
    ami_msg_free(f);
}

/* The leader's call events, for this follower's GET /v1/calls/events. */
static void on_call_published(void *ud, const char *channel, const char *msg, size_t len)
{
    (void)channel;
    struct app *app = ud;
    json_t *o = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    struct ami_msg *f = type ? call_fields(type, o) : NULL;
    if (f)
        bus_inject_event(app->call_bus, msg, len, type, f);
    /* counted by the leader when it derived them; a follower counts what it hears */
    if (type && app->lease && bus_lease_follower(app->lease))
        calls_heard(app->calls, type, o, log_wall_ms());
    ami_msg_free(f);
    json_decref(o);
}

/* A call a follower places: the leader follows it. */
static void on_call_expected(void *ud, const char *channel, const char *msg, size_t len)
{
    (void)channel;
    struct app *app = ud;
    if (app->lease && !bus_lease_follower(app->lease))
        calls_expect_heard(app->calls, msg, len, log_wall_ms());
}

/* The pool closes: no more listing of its channels. */
static void forget_pool(struct server_ctx *s)
{
    if (!s->pool)
        return;
    s->pool = NULL;
    uv_close((uv_handle_t *)&s->retry, NULL);
}

/* Backpressure from the Redis outlet: hold back (or go on) reading the
 * AMI event connections. */
static void pause_events(void *ud, int pause)
{
    struct app *app = ud;
    for (size_t i = 0; i < app->npools; i++)
        if (app->pools[i])
            ami_pool_pause_events(app->pools[i], pause);
}

/* The pools are about to close: they read to the end. */
static void stop_pausing(struct app *app)
{
    if (app->publisher)
        bus_publisher_set_pause_cb(app->publisher, NULL, NULL);
}

/* Bytes of AMI events read and held back (Redis was slower), all servers. */
static size_t events_held(const struct app *app)
{
    size_t n = 0;
    for (size_t i = 0; i < app->npools; i++)
        if (app->pools[i])
            n += ami_pool_events_held(app->pools[i]);
    return n;
}

static void close_pools(struct app *app)
{
    stop_pausing(app);
    app->pools_open = (int)app->npools;
    if (app->npools == 0) {
        app->pools_open = 1;
        pool_closed(app);
        return;
    }
    for (size_t i = 0; i < app->npools; i++) {
        struct ami_pool *p = app->pools[i];
        app->pools[i] = NULL; /* gone once closed: nothing may touch it after this */
        forget_pool(&app->servers[i]);
        ami_pool_close(p, pool_closed, app);
    }
}

/* Events held back when the signal came are still to be passed on: the
 * AMI connections stay open (and read) while Redis catches up, at most
 * SHUTDOWN_HELD_MS; what is held after that is dropped, counted in the log. */
static void on_held(uv_timer_t *t)
{
    struct app *app = t->data;
    size_t held = events_held(app);
    if (held && uv_now(app->loop) - app->held_started < SHUTDOWN_HELD_MS)
        return;
    uv_timer_stop(t);
    if (held)
        log_warn("shutdown: AMI events still held back after the wait are dropped", "{s:I,s:i}",
                 "bytes", (json_int_t)held, "waited_ms", SHUTDOWN_HELD_MS);
    else
        log_info("shutdown: the AMI events held back were passed on", "{s:I}", "waited_ms",
                 (json_int_t)(uv_now(app->loop) - app->held_started));
    close_pools(app);
}

static void http_closed(void *arg)
{
    struct app *app = arg;
    app->http = NULL;
    size_t held = events_held(app);
    if (held && app->publisher) {
        log_info("shutdown: waiting for the AMI events held back to reach Redis", "{s:I}", "bytes",
                 (json_int_t)held);
        app->held_started = uv_now(app->loop);
        uv_timer_start(&app->drain, on_held, SHUTDOWN_POLL_MS, SHUTDOWN_POLL_MS);
        return;
    }
    close_pools(app);
}

/* Wait for in-flight requests (bounded), then close AMI (failing whatever
 * is left, which answers those requests), then the HTTP server. */
static void on_drain(uv_timer_t *t)
{
    struct app *app = t->data;
    uint64_t waited = uv_now(app->loop) - app->drain_started;
    if (http_server_waiting(app->http) > 0 && waited < SHUTDOWN_GRACE_MS)
        return;
    uv_timer_stop(&app->drain);
    if (http_server_waiting(app->http) > 0) {
        log_warn("shutdown grace period over; failing requests still waiting", "{s:I}", "waiting",
                 (json_int_t)http_server_waiting(app->http));
        /* closing the pools answers them with 503; give MHD a moment to send */
        if (app->webhooks)
            webhooks_quiesce(app->webhooks);
        stop_pausing(app);
        for (size_t i = 0; i < app->npools; i++) {
            struct ami_pool *p = app->pools[i];
            app->pools[i] = NULL;
            forget_pool(&app->servers[i]);
            ami_pool_close(p, NULL, NULL);
        }
        app->npools = 0;
        uv_timer_start(&app->drain, on_drain, 200, 0);
        return;
    }
    http_server_close(app->http, http_closed, app);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    if (app->stopping) {
        log_warn("second signal: exiting now", "{s:i}", "signal", signum);
        exit(1);
    }
    app->stopping = 1;
    log_info("shutting down", "{s:s}", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    api_set_draining(app->api, 1);
    http_server_quiesce(app->http);
    app->drain_started = uv_now(app->loop);
    uv_timer_start(&app->drain, on_drain, 0, SHUTDOWN_POLL_MS);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"config-table", no_argument, NULL, 't'},
        {"healthcheck", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int check_only = 0, health_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:kvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check_only = 1;
            break;
        case 'v':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case 't':
            config_table();
            return 0;
        case 'H':
            health_only = 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "amibridge: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct app app;
    memset(&app, 0, sizeof(app));
    char err[512];
    if (cfg_load(&app.cfg, NULL, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "amibridge: configuration error: %s\n", err);
        return 2;
    }
    log_set_level((enum log_level)app.cfg.log_level);
    if (health_only) {
        int rc = healthcheck(&app.cfg);
        cfg_free(&app.cfg);
        return rc;
    }
    if (check_only) {
        printf("configuration OK: %zu AMI server(s), %zu API key(s), listen %s:%d\n",
               app.cfg.nservers, app.cfg.nkeys, app.cfg.listen_host, app.cfg.listen_port);
        cfg_free(&app.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    app.loop = uv_default_loop();
    app.npools = app.cfg.nservers;
    app.pools = calloc(app.npools, sizeof(*app.pools));
    if (!app.pools) {
        fprintf(stderr, "amibridge: out of memory\n");
        return 1;
    }
    app.bus = bus_new(&app.cfg);
    app.call_bus = bus_new(&app.cfg);
    if (app.call_bus)
        bus_set_channel_prefix(app.call_bus, "calls");
    app.calls = calls_new(&app.cfg, on_call_event, &app);
    app.servers = calloc(app.npools, sizeof(*app.servers));
    if (!app.bus || !app.call_bus || !app.calls || !app.servers) {
        fprintf(stderr, "amibridge: out of memory\n");
        return 1;
    }
    if (app.cfg.redis_url) {
        app.redis = bus_redis_new(app.loop, app.cfg.redis_url, err, sizeof(err));
        app.publisher = app.redis ? bus_publisher_new(app.loop, &app.cfg, app.redis) : NULL;
        if (!app.redis || !app.publisher) {
            fprintf(stderr, "amibridge: configuration error: %s\n",
                    app.redis ? "out of memory" : err);
            return 2;
        }
        bus_redis_set_state_cb(app.redis, redis_state, &app);
        bus_add_sink(app.bus, bus_publisher_sink, app.publisher);
        bus_add_sink(app.call_bus, bus_publisher_sink, app.publisher);
        calls_set_redis(app.calls, app.redis);
    }
    app.webhooks = webhooks_new(app.loop, &app.cfg, app.redis, err, sizeof(err));
    if (!app.webhooks) {
        fprintf(stderr, "amibridge: configuration error: %s\n", err);
        if (app.publisher)
            bus_publisher_close(app.publisher, NULL, NULL);
        if (app.redis)
            bus_redis_close(app.redis, NULL, NULL);
        uv_run(app.loop, UV_RUN_NOWAIT);
        calls_free(app.calls);
        bus_free(app.call_bus);
        bus_free(app.bus);
        free(app.servers);
        free(app.pools);
        cfg_free(&app.cfg);
        return 2;
    }
    bus_add_sink(app.bus, webhooks_outlet, &app);
    bus_add_sink(app.call_bus, webhooks_outlet, &app);
    if (app.redis) {
        /* renewals on a connection of their own: a backlog of events or
         * deliveries on the main one must not cost the lease */
        app.redis_lease = bus_redis_new(app.loop, app.cfg.redis_url, err, sizeof(err));
        app.lease = app.redis_lease
                        ? bus_lease_new(app.loop, &app.cfg, app.redis_lease, leader_changed, &app)
                        : NULL;
        if (app.redis_lease)
            bus_redis_set_state_cb(app.redis_lease, lease_redis_state, &app);
        if (!app.lease) {
            fprintf(stderr, "amibridge: out of memory\n");
            return 1;
        }
        bus_publisher_set_lease(app.publisher, app.lease);
        webhooks_set_lease(app.webhooks, app.lease);
        /* a follower's SSE stream is the leader's, read back from Redis
         * (until this replica leads: stream_sub()) */
        stream_sub(&app, 1);
        if (!app.redis_sub)
            return 1;
        char pattern[96];
        /* and the leader's call events */
        app.redis_calls_sub = bus_redis_new(app.loop, app.cfg.redis_url, err, sizeof(err));
        if (!app.redis_calls_sub) {
            fprintf(stderr, "amibridge: configuration error: %s\n", err);
            return 2;
        }
        bus_redis_psubscribe(app.redis_calls_sub, "calls.*", on_call_published, &app);
        /* and, to the leader, the calls the followers place */
        app.redis_expect_sub = bus_redis_new(app.loop, app.cfg.redis_url, err, sizeof(err));
        if (!app.redis_expect_sub) {
            fprintf(stderr, "amibridge: configuration error: %s\n", err);
            return 2;
        }
        snprintf(pattern, sizeof(pattern), CALLS_EXPECT_CHANNEL, app.cfg.redis_prefix);
        bus_redis_psubscribe(app.redis_expect_sub, pattern, on_call_expected, &app);
    }
    for (size_t i = 0; i < app.npools; i++) {
        app.servers[i] = (struct server_ctx){.bus = app.bus, .calls = app.calls, .index = i};
        app.pools[i] =
            ami_pool_new(app.loop, &app.cfg.servers[i], app.cfg.instance_id, on_ami_event,
                         &app.servers[i], app.cfg.ami_filters, app.cfg.nami_filters);
        if (!app.pools[i]) {
            fprintf(stderr, "amibridge: out of memory\n");
            return 1;
        }
        app.servers[i].pool = app.pools[i];
        uv_timer_init(app.loop, &app.servers[i].retry);
        app.servers[i].retry.data = &app.servers[i];
        ami_pool_set_events_up_cb(app.pools[i], on_events_up, &app.servers[i]);
    }
    if (app.publisher)
        bus_publisher_set_pause_cb(app.publisher, pause_events, &app);
    metrics_set(METRIC_BUILD_INFO, AMIBRIDGE_VERSION, NULL, NULL, 1);
    app.api = api_new(app.loop, &app.cfg, app.pools, app.npools, app.redis, app.bus, app.publisher,
                      app.webhooks);
    struct http_server_opts ho = {
        .host = app.cfg.listen_host,
        .port = app.cfg.listen_port,
        .max_body = app.cfg.max_body,
        .max_connections = app.cfg.http_max_connections,
        .timeout_s = app.cfg.http_timeout_s,
        .header_timeout_s = app.cfg.http_header_timeout_s,
        .request_timeout_s = app.cfg.http_request_timeout_s,
        .max_connections_per_client = app.cfg.http_max_connections_per_client,
        .head = api_head,
        .reuseport = app.cfg.http_reuseport,
        .tls_cert = app.cfg.tls_cert_pem,
        .tls_key = app.cfg.tls_key_pem,
        .trusted_proxies = app.cfg.trusted_proxies,
        .ntrusted_proxies = app.cfg.ntrusted_proxies,
    };
    if (app.api) {
        api_set_lease(app.api, app.lease);
        if (api_set_calls(app.api, app.calls, app.call_bus) != 0) {
            fprintf(stderr, "amibridge: out of memory\n");
            return 1;
        }
    }
    app.http =
        app.api ? http_server_new(app.loop, &ho, api_handle, app.api, err, sizeof(err)) : NULL;
    if (!app.http) {
        fprintf(stderr, "amibridge: %s\n", app.api ? err : "out of memory");
        return 1;
    }
    log_info("amibridge listening", "{s:s,s:s,s:i,s:i,s:i,s:s,s:b}", "version", AMIBRIDGE_VERSION,
             "host", app.cfg.listen_host, "port", http_server_port(app.http), "servers",
             (int)app.cfg.nservers, "api_keys", (int)app.cfg.nkeys, "instance", app.cfg.instance_id,
             "open_mode", app.cfg.nkeys == 0);
    if (app.cfg.nkeys == 0)
        log_warn("no API keys configured: serving loopback clients without authentication", NULL);

    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    uv_timer_init(app.loop, &app.drain);
    app.sigterm.data = app.sigint.data = app.drain.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    uv_run(app.loop, UV_RUN_DEFAULT);

    api_close(app.api, NULL, NULL);
    uv_run(app.loop, UV_RUN_DEFAULT); /* until its timers are closed and it is gone */
    calls_free(app.calls);
    bus_free(app.call_bus);
    bus_free(app.bus);
    metrics_reset();
    free(app.servers);
    free(app.pools);
    cfg_free(&app.cfg);
    uv_loop_close(app.loop);
    log_info("amibridge stopped", NULL);
    return 0;
}
