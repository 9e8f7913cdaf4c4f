/* amibridge: flags -> config -> loop -> signals -> drain. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "ami/pool.h"
#include "api/api.h"
#include "core/config.h"
#include "core/log.h"
#include "http/server.h"

#define SHUTDOWN_GRACE_MS 5000 /* longest wait for in-flight requests on SIGTERM */
#define SHUTDOWN_POLL_MS  50

struct app {
    uv_loop_t *loop;
    struct cfg cfg;
    struct ami_pool **pools;
    size_t npools;
    struct api *api;
    struct http_server *http;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain;
    uint64_t drain_started;
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
               "  --help           this text\n\n"
               "Settings come from the environment:\n\n");
    for (const struct cfg_doc *d = cfg_docs; d->env; d++)
        fprintf(f, "  %-36s %s\n  %-36s default: %s\n", d->env, d->help, "",
                d->def[0] ? d->def : "(none)");
}

/* The configuration reference as the README shows it (a test checks that
 * the README holds exactly this table, so the two cannot drift). */
static void config_table(void)
{
    printf("| variable | default | meaning |\n| --- | --- | --- |\n");
    for (const struct cfg_doc *d = cfg_docs; d->env; d++)
        printf("| `%s` | %s%s%s | %s |\n", d->env, d->def[0] && d->def[0] != '(' ? "`" : "",
               d->def[0] ? d->def : "", d->def[0] && d->def[0] != '(' ? "`" : "", d->help);
}

static void version(void)
{
    printf("amibridge %s\n", AMIBRIDGE_VERSION);
    printf("libuv %s, libmicrohttpd %s, jansson %s\n", uv_version_string(), MHD_get_version(),
           JANSSON_VERSION);
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

static void pool_closed(void *arg)
{
    struct app *app = arg;
    if (--app->pools_open == 0) {
        uv_close((uv_handle_t *)&app->sigterm, on_closed);
        uv_close((uv_handle_t *)&app->sigint, on_closed);
        uv_close((uv_handle_t *)&app->drain, on_closed);
    }
}

static void http_closed(void *arg)
{
    struct app *app = arg;
    app->http = NULL;
    app->pools_open = (int)app->npools;
    if (app->npools == 0) {
        app->pools_open = 1;
        pool_closed(app);
        return;
    }
    for (size_t i = 0; i < app->npools; i++)
        ami_pool_close(app->pools[i], pool_closed, app);
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
        for (size_t i = 0; i < app->npools; i++) {
            struct ami_pool *p = app->pools[i];
            app->pools[i] = NULL;
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
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
        {"config-table", no_argument, NULL, 't'}, {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int check_only = 0, opt;
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
    for (size_t i = 0; i < app.npools; i++) {
        app.pools[i] = ami_pool_new(app.loop, &app.cfg.servers[i], app.cfg.instance_id, NULL, NULL);
        if (!app.pools[i]) {
            fprintf(stderr, "amibridge: out of memory\n");
            return 1;
        }
    }
    app.api = api_new(app.loop, &app.cfg, app.pools, app.npools);
    struct http_server_opts ho = {
        .host = app.cfg.listen_host,
        .port = app.cfg.listen_port,
        .max_body = app.cfg.max_body,
        .max_connections = app.cfg.http_max_connections,
        .timeout_s = app.cfg.http_timeout_s,
        .reuseport = app.cfg.http_reuseport,
    };
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

    api_free(app.api);
    free(app.pools);
    cfg_free(&app.cfg);
    uv_loop_close(app.loop);
    log_info("amibridge stopped", NULL);
    return 0;
}
