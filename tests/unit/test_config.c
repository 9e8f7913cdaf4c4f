/* Unit tests for src/core/config: every key, its defaults, and the errors
 * that must name the key without echoing secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

#define BASE "AMIBRIDGE_AMI_USERNAME=bridge", "AMIBRIDGE_AMI_SECRET=s3cret-value"

static char errbuf[512];

static int load(struct cfg *c, char *const *env)
{
    return cfg_load(c, env, NULL, errbuf, sizeof(errbuf));
}

static void assert_fails_naming(char *const *env, const char *key)
{
    struct cfg c;
    assert_int_equal(load(&c, env), -1);
    if (!strstr(errbuf, key))
        fail_msg("error '%s' does not name '%s'", errbuf, key);
    assert_null(strstr(errbuf, "s3cret-value"));
}

static char *write_tmp(const char *content)
{
    static int n;
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/amibridge-test-%d-%d.json", (int)getpid(), n++);
    FILE *f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
    return path;
}

static void defaults_come_from_the_documented_values(void **state)
{
    (void)state;
    char *env[] = {BASE, NULL};
    struct cfg c;
    assert_int_equal(load(&c, env), 0);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_true(c.listen_loopback);
    assert_int_equal(c.nservers, 1);
    assert_string_equal(c.servers[0].name, "default");
    assert_string_equal(c.servers[0].host, "127.0.0.1");
    assert_int_equal(c.servers[0].port, 5038);
    assert_int_equal(c.servers[0].pool_size, 4);
    assert_int_equal(c.servers[0].timeout_ms, 10000);
    assert_int_equal(c.servers[0].auth, CFG_AUTH_MD5);
    assert_int_equal(c.nkeys, 0);
    assert_int_equal(c.max_body, 65536);
    assert_int_equal(c.http_header_timeout_s, 10);
    assert_int_equal(c.http_request_timeout_s, 30);
    assert_int_equal(c.http_max_connections_per_client, 256);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.ndeny_actions, 27);
    assert_true(strlen(c.instance_id) >= 8);
    /* every documented default that is a plain value matches the code */
    const struct cfg_doc *d;
    for (size_t i = 0; (d = cfg_doc_at(i)); i++)
        assert_non_null(d->help);
    cfg_free(&c);
}

/* The lists' defaults as --config-table (docs/configuration.md) shows them
 * are the ones the code loads, word for word. */
static void assert_list_is_documented(const char *env, char *const *list, size_t n)
{
    const char *doc = NULL;
    const struct cfg_doc *d;
    for (size_t k = 0; (d = cfg_doc_at(k)) && !doc; k++)
        if (d->env && !strcmp(d->env, env))
            doc = d->def;
    assert_non_null(doc);
    char *copy = strdup(doc), *save = NULL;
    size_t i = 0;
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save), i++) {
        if (i >= n || strcmp(w, list[i]))
            fail_msg("%s: the documented default has '%s' where the code has '%s'", env, w,
                     i < n ? list[i] : "(nothing)");
    }
    if (i != n)
        fail_msg("%s: %zu documented, %zu in the code", env, i, n);
    free(copy);
}

static void the_documented_list_defaults_are_the_loaded_ones(void **state)
{
    (void)state;
    char *env[] = {BASE, NULL};
    struct cfg c;
    char err[256];
    assert_int_equal(cfg_load(&c, env, NULL, err, sizeof(err)), 0);
    assert_list_is_documented("AMIBRIDGE_DENY_ACTIONS", c.deny_actions, c.ndeny_actions);
    assert_list_is_documented("AMIBRIDGE_DENY_ORIGINATE_APPS", c.deny_apps, c.ndeny_apps);
    assert_list_is_documented("AMIBRIDGE_DENY_FUNCTIONS", c.deny_funcs, c.ndeny_funcs);
    assert_list_is_documented("AMIBRIDGE_ALLOW_FUNCTIONS", c.allow_funcs, c.nallow_funcs);
    cfg_free(&c);
}

static void environment_sets_every_key(void **state)
{
    (void)state;
    char *env[] = {BASE,
                   "AMIBRIDGE_LISTEN=[::1]:9000",
                   "AMIBRIDGE_AMI_HOST=pbx.example",
                   "AMIBRIDGE_AMI_PORT=15038",
                   "AMIBRIDGE_AMI_NAME=pbx1",
                   "AMIBRIDGE_AMI_AUTH=plain",
                   "AMIBRIDGE_AMI_POOL_SIZE=8",
                   "AMIBRIDGE_AMI_TIMEOUT_MS=2500",
                   "AMIBRIDGE_AMI_MAX_INFLIGHT=50",
                   "AMIBRIDGE_AMI_MAX_INFLIGHT_PER_CONN=7",
                   "AMIBRIDGE_AMI_KEEPALIVE_MS=3000",
                   "AMIBRIDGE_AMI_CONNECT_TIMEOUT_MS=900",
                   "AMIBRIDGE_API_KEYS=crm:c0ffee0123456789:call,read  "
                   "ops:f00d0123456789ab:read,actions,control,admin",
                   "AMIBRIDGE_LOG_LEVEL=warn",
                   "AMIBRIDGE_MAX_BODY=1024",
                   "AMIBRIDGE_HTTP_MAX_CONNECTIONS=77",
                   "AMIBRIDGE_HTTP_TIMEOUT_S=9",
                   "AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S=12",
                   "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=0",
                   "AMIBRIDGE_REDIS_URL=redis://127.0.0.1:6379/2",
                   "AMIBRIDGE_INSTANCE_ID=replica-a",
                   "AMIBRIDGE_ALLOW_ACTIONS=Command,GetConfig",
                   NULL};
    struct cfg c;
    assert_int_equal(load(&c, env), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 9000);
    assert_true(c.listen_loopback);
    struct cfg_server *s = &c.servers[0];
    assert_string_equal(s->name, "pbx1");
    assert_string_equal(s->host, "pbx.example");
    assert_int_equal(s->port, 15038);
    assert_int_equal(s->auth, CFG_AUTH_PLAIN);
    assert_int_equal(s->pool_size, 8);
    assert_int_equal(s->timeout_ms, 2500);
    assert_int_equal(s->max_inflight, 50);
    assert_int_equal(s->max_inflight_per_conn, 7);
    assert_int_equal(s->keepalive_ms, 3000);
    assert_int_equal(s->connect_timeout_ms, 900);
    assert_string_equal(s->secret, "s3cret-value");
    assert_int_equal(c.nkeys, 2);
    assert_string_equal(c.keys[0].name, "crm");
    assert_int_equal(c.keys[0].scopes, CFG_SCOPE_CALL | CFG_SCOPE_READ);
    assert_int_equal(c.keys[1].scopes,
                     CFG_SCOPE_READ | CFG_SCOPE_ACTIONS | CFG_SCOPE_CONTROL | CFG_SCOPE_ADMIN);
    assert_int_equal(c.log_level, LOG_WARN);
    assert_int_equal(c.max_body, 1024);
    assert_int_equal(c.http_max_connections, 77);
    assert_int_equal(c.http_timeout_s, 9);
    assert_int_equal(c.http_request_timeout_s, 12);
    assert_int_equal(c.http_max_connections_per_client, 0);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/2");
    assert_string_equal(c.instance_id, "replica-a");
    assert_int_equal(c.ndeny_actions, 25);
    for (size_t i = 0; i < c.ndeny_actions; i++) {
        assert_string_not_equal(c.deny_actions[i], "Command");
        assert_string_not_equal(c.deny_actions[i], "GetConfig");
    }
    cfg_free(&c);
}

static void bad_values_name_the_key(void **state)
{
    (void)state;
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_PORT=abc", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_PORT");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_PORT=70000", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_PORT");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_POOL_SIZE=0", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_POOL_SIZE");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_TIMEOUT_MS=10", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_TIMEOUT_MS");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_LISTEN=not-an-address", NULL};
        assert_fails_naming(env, "AMIBRIDGE_LISTEN");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_LISTEN=example.com:80", NULL};
        assert_fails_naming(env, "AMIBRIDGE_LISTEN");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S=0", NULL};
        assert_fails_naming(env, "AMIBRIDGE_HTTP_REQUEST_TIMEOUT_S");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT=-1", NULL};
        assert_fails_naming(env, "AMIBRIDGE_HTTP_MAX_CONNECTIONS_PER_CLIENT");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_LOG_LEVEL=loud", NULL};
        assert_fails_naming(env, "AMIBRIDGE_LOG_LEVEL");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_AUTH=sha1", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_AUTH");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_REDIS_URL=http://x", NULL};
        assert_fails_naming(env, "AMIBRIDGE_REDIS_URL");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_NAME=has space", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_NAME");
    }
    {
        char *env[] = {"AMIBRIDGE_AMI_SECRET=s3cret-value", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_USERNAME");
    }
    {
        char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_SECRET");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_AMI_SECRET_FILE=/nonexistent", NULL};
        assert_fails_naming(env, "AMIBRIDGE_AMI_SECRET");
    }
}

static void api_key_errors_never_echo_tokens(void **state)
{
    (void)state;
    {
        char *env[] = {BASE, "AMIBRIDGE_API_KEYS=crm:s3cret-value", NULL};
        assert_fails_naming(env, "AMIBRIDGE_API_KEYS");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_API_KEYS=crm:s3cret-value:call,fly", NULL};
        assert_fails_naming(env, "fly");
    }
    {
        char *env[] = {BASE, "AMIBRIDGE_API_KEYS=a:s3cret-value:read b:s3cret-value:read", NULL};
        assert_fails_naming(env, "same token");
    }
    {
        char *env[] = {
            BASE, "AMIBRIDGE_API_KEYS=a:t1aaaaaaaaaaaaaaaa:read a:t2aaaaaaaaaaaaaaa:read", NULL};
        assert_fails_naming(env, "used twice");
    }
}

static void non_loopback_listen_requires_keys(void **state)
{
    (void)state;
    char *env[] = {BASE, "AMIBRIDGE_LISTEN=0.0.0.0:8080", NULL};
    assert_fails_naming(env, "AMIBRIDGE_LISTEN");
    assert_non_null(strstr(errbuf, "AMIBRIDGE_API_KEYS"));
    char *ok[] = {BASE, "AMIBRIDGE_LISTEN=0.0.0.0:8080",
                  "AMIBRIDGE_API_KEYS=crm:c0ffee0123456789:call", NULL};
    struct cfg c;
    assert_int_equal(load(&c, ok), 0);
    assert_false(c.listen_loopback);
    cfg_free(&c);
}

static void secret_file_is_read_and_trimmed(void **state)
{
    (void)state;
    char *path = write_tmp("from-a-file\n");
    char var[128];
    snprintf(var, sizeof(var), "AMIBRIDGE_AMI_SECRET_FILE=%s", path);
    char *env[] = {"AMIBRIDGE_AMI_USERNAME=bridge", var, NULL};
    struct cfg c;
    assert_int_equal(load(&c, env), 0);
    assert_string_equal(c.servers[0].secret, "from-a-file");
    cfg_free(&c);
    char *both[] = {BASE, var, NULL};
    assert_fails_naming(both, "AMIBRIDGE_AMI_SECRET_FILE");
    unlink(path);
    free(path);
}

static void config_file_gives_several_servers_and_keys(void **state)
{
    (void)state;
    char *path =
        write_tmp("{\"listen\":\"127.0.0.1:0\",\n"
                  " \"servers\":[{\"name\":\"pbx1\",\"host\":\"10.0.0.1\",\"username\":\"u\","
                  "\"secret\":\"s3cret-value\"},\n"
                  "  {\"name\":\"pbx2\",\"port\":5039,\"username\":\"u\",\"secret\":\"x\","
                  "\"auth\":\"plain\",\"pool_size\":2}],\n"
                  " \"api_keys\":[{\"name\":\"crm\",\"token\":\"tok-0123456789abcdef\","
                  "\"scopes\":[\"call\",\"read\"]}],\n"
                  " \"deny_actions\":[\"Originate\"],\n"
                  " \"max_body\":2048}");
    char *env[] = {"AMIBRIDGE_API_KEYS=ops:ops-0123456789abcdef:admin", NULL};
    struct cfg c;
    assert_int_equal(cfg_load(&c, env, path, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(c.nservers, 2);
    assert_string_equal(c.servers[0].name, "pbx1");
    assert_string_equal(c.servers[0].host, "10.0.0.1");
    assert_int_equal(c.servers[1].port, 5039);
    assert_int_equal(c.servers[1].pool_size, 2);
    assert_int_equal(c.servers[1].auth, CFG_AUTH_PLAIN);
    assert_int_equal(c.nkeys, 2);
    assert_int_equal(c.ndeny_actions, 1);
    assert_int_equal(c.max_body, 2048);
    assert_int_equal(c.listen_port, 0);
    assert_ptr_equal(cfg_server_find(&c, "pbx2"), &c.servers[1]);
    assert_null(cfg_server_find(&c, "nope"));
    cfg_free(&c);

    /* the environment may not also describe a server */
    char *clash[] = {"AMIBRIDGE_AMI_HOST=1.2.3.4", NULL};
    assert_int_equal(cfg_load(&c, clash, path, errbuf, sizeof(errbuf)), -1);
    assert_non_null(strstr(errbuf, "AMIBRIDGE_AMI_HOST"));
    unlink(path);
    free(path);
}

static void config_file_errors_name_the_path(void **state)
{
    (void)state;
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"{\"servers\":[{\"name\":\"a\",\"username\":\"u\",\"secret\":\"s3cret-value\","
         "\"port\":\"x\"}]}",
         "servers[0].port"},
        {"{\"servers\":[{\"name\":\"a\",\"username\":\"u\"}]}", "servers[0]"},
        {"{\"servers\":[{\"name\":\"a\",\"username\":\"u\",\"secret\":\"s\"},{\"name\":\"a\","
         "\"username\":\"u\",\"secret\":\"s\"}]}",
         "used twice"},
        {"{\"server\":[]}", "unknown key 'server'"},
        {"{\"servers\":[{\"name\":\"a\",\"username\":\"u\",\"secret\":\"s\",\"colour\":1}]}",
         "unknown key 'colour'"},
        {"{\"api_keys\":[{\"name\":\"k\",\"token\":\"s3cret-value\",\"scopes\":[\"root\"]}]}",
         "api_keys[0].scopes[0]"},
        {"{\"listen\":5}", "listen"},
        {"{ not json", "line 1"},
        /* found by fuzz_config: the entries before the bad one leaked */
        {"{\"allow_actions\":[\"Command\",\"Originate\",7]}", "allow_actions"},
        {"{\"webhooks\":{\"id\":\"crm\"}}", "webhooks"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = write_tmp(cases[i].json);
        /* a file with servers may not be combined with the env's server */
        char *env[] = {BASE, NULL};
        if (strstr(cases[i].json, "\"servers\""))
            env[0] = NULL;
        struct cfg c;
        assert_int_equal(cfg_load(&c, env, path, errbuf, sizeof(errbuf)), -1);
        if (!strstr(errbuf, cases[i].needle))
            fail_msg("case %zu: '%s' does not contain '%s'", i, errbuf, cases[i].needle);
        assert_null(strstr(errbuf, "s3cret-value"));
        unlink(path);
        free(path);
    }
}

static void scopes_parse_and_refuse_unknown_names(void **state)
{
    (void)state;
    unsigned m;
    char bad[32];
    assert_int_equal(cfg_parse_scopes("read,call,control,actions,admin", &m, bad, sizeof(bad)), 0);
    assert_int_equal(m, CFG_SCOPE_ALL);
    assert_int_equal(cfg_parse_scopes("READ", &m, bad, sizeof(bad)), 0);
    assert_int_equal(m, CFG_SCOPE_READ);
    assert_int_equal(cfg_parse_scopes("read,root", &m, bad, sizeof(bad)), -1);
    assert_string_equal(bad, "root");
    assert_int_equal(cfg_parse_scopes("", &m, bad, sizeof(bad)), -1);
    assert_string_equal(cfg_scope_name(CFG_SCOPE_CONTROL), "control");
}

static void call_guard_cors_and_dial_policy_settings(void **state)
{
    (void)state;
    char *env[] = {BASE,
                   "AMIBRIDGE_CALLS_PER_SECOND=0.5",
                   "AMIBRIDGE_CALLS_BURST=3",
                   "AMIBRIDGE_CALLS_MAX_INFLIGHT=7",
                   "AMIBRIDGE_CORS_ORIGINS=https://crm.example http://localhost:3000",
                   "AMIBRIDGE_IDEMPOTENCY_TTL_S=60",
                   "AMIBRIDGE_REDIS_PREFIX=pbx",
                   NULL};
    struct cfg c;
    assert_int_equal(load(&c, env), 0);
    assert_true(c.calls_per_second > 0.49 && c.calls_per_second < 0.51);
    assert_int_equal(c.calls_burst, 3);
    assert_int_equal(c.calls_max_inflight, 7);
    assert_int_equal(c.ncors_origins, 2);
    assert_string_equal(c.cors_origins[1], "http://localhost:3000");
    assert_int_equal(c.idempotency_ttl_s, 60);
    assert_string_equal(c.redis_prefix, "pbx");
    cfg_free(&c);
    {
        char *bad[] = {BASE, "AMIBRIDGE_CORS_ORIGINS=*", NULL};
        assert_fails_naming(bad, "AMIBRIDGE_CORS_ORIGINS");
    }
    {
        char *bad[] = {BASE, "AMIBRIDGE_CORS_ORIGINS=https://crm.example/path", NULL};
        assert_fails_naming(bad, "AMIBRIDGE_CORS_ORIGINS");
    }
    {
        char *bad[] = {BASE, "AMIBRIDGE_CALLS_PER_SECOND=fast", NULL};
        assert_fails_naming(bad, "AMIBRIDGE_CALLS_PER_SECOND");
    }
    {
        char *bad[] = {BASE, "AMIBRIDGE_CALLS_BURST=0", NULL};
        assert_fails_naming(bad, "AMIBRIDGE_CALLS_BURST");
    }
    char *path = write_tmp("{\"api_keys\":[{\"name\":\"crm\",\"token\":\"tok-0123456789abcdef\","
                           "\"scopes\":[\"call\"],\"allow_channels\":[\"PJSIP/1???\"],"
                           "\"deny_extens\":[\"00*\",\"900*\"],\"calls_per_second\":2,"
                           "\"calls_burst\":4}],\"calls_per_second\":1.5,\"calls_burst\":6,"
                           "\"calls_max_inflight\":9,\"idempotency_ttl_s\":120,"
                           "\"cors_origins\":[\"https://crm.example\"]}");
    char *env2[] = {BASE, NULL};
    assert_int_equal(cfg_load(&c, env2, path, errbuf, sizeof(errbuf)), 0);
    assert_true(c.calls_per_second > 1.49 && c.calls_per_second < 1.51);
    assert_int_equal(c.calls_burst, 6);
    assert_int_equal(c.calls_max_inflight, 9);
    assert_int_equal(c.idempotency_ttl_s, 120);
    assert_int_equal(c.ncors_origins, 1);
    assert_int_equal(c.keys[0].policy.nallow_channels, 1);
    assert_string_equal(c.keys[0].policy.allow_channels[0], "PJSIP/1???");
    assert_int_equal(c.keys[0].policy.ndeny_extens, 2);
    assert_int_equal(c.keys[0].calls_burst, 4);
    cfg_free(&c);
    unlink(path);
    free(path);
    path = write_tmp("{\"api_keys\":[{\"name\":\"crm\",\"token\":\"tok-0123456789abcdef\","
                     "\"scopes\":[\"call\"],\"deny_extens\":[\"00*\",5]}]}");
    assert_int_equal(cfg_load(&c, env2, path, errbuf, sizeof(errbuf)), -1);
    assert_non_null(strstr(errbuf, "deny_extens[1]"));
    unlink(path);
    free(path);
}

/* The function lists (env and file) and a key's allow_applications; the
 * old "SHELL(" spelling of a deny entry names the function. */
static void function_lists_and_allowed_applications(void **state)
{
    (void)state;
    char *env[] = {BASE, "AMIBRIDGE_ALLOW_FUNCTIONS=CALLERID LEN",
                   "AMIBRIDGE_DENY_FUNCTIONS=SHELL( DB_*", NULL};
    struct cfg c;
    assert_int_equal(load(&c, env), 0);
    assert_int_equal(c.nallow_funcs, 2);
    assert_string_equal(c.allow_funcs[1], "LEN");
    assert_int_equal(c.ndeny_funcs, 2);
    assert_string_equal(c.deny_funcs[0], "SHELL");
    assert_string_equal(c.deny_funcs[1], "DB_*");
    cfg_free(&c);
    char *base[] = {BASE, NULL};
    assert_int_equal(load(&c, base), 0); /* defaults: both lists set */
    assert_true(c.nallow_funcs > 5 && c.ndeny_funcs > 5);
    cfg_free(&c);
    char *path = write_tmp(
        "{\"allow_functions\":[\"CDR\"],\"api_keys\":[{\"name\":\"crm\","
        "\"token\":\"tok-0123456789abcdef\",\"scopes\":[\"call\"],"
        "\"allow_applications\":[\"Playback\",\"Dial\"],\"allow_variables\":[\"CRM_*\"]}]}");
    assert_int_equal(cfg_load(&c, base, path, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(c.nallow_funcs, 1);
    assert_int_equal(c.keys[0].policy.nallow_applications, 2);
    assert_string_equal(c.keys[0].policy.allow_applications[1], "Dial");
    assert_int_equal(c.keys[0].policy.nallow_variables, 1);
    cfg_free(&c);
    unlink(path);
    free(path);
    path = write_tmp("{\"api_keys\":[{\"name\":\"crm\",\"token\":\"tok-0123456789abcdef\","
                     "\"scopes\":[\"call\"],\"allow_applications\":[\"\"]}]}");
    assert_int_equal(cfg_load(&c, base, path, errbuf, sizeof(errbuf)), -1);
    assert_non_null(strstr(errbuf, "allow_applications[0]"));
    unlink(path);
    free(path);
}

/* Does the Filter set, applied the way manager.c match_filter() does
 * (REG_EXTENDED over the whole event text), let this event through? */
static int filters_pass(const struct cfg *c, const char *event)
{
    char text[160];
    snprintf(text, sizeof(text), "Event: %s\r\nPrivilege: call,all\r\n", event);
    int have_include = 0, included = 0;
    for (size_t i = 0; i < c->nami_filters; i++) {
        const char *f = c->ami_filters[i];
        int exclude = f[0] == '!';
        regex_t re;
        if (regcomp(&re, f + exclude, REG_EXTENDED | REG_NOSUB))
            fail_msg("filter '%s' does not compile", f);
        int hit = regexec(&re, text, 0, NULL, 0) == 0;
        regfree(&re);
        if (exclude && hit)
            return 0;
        if (!exclude) {
            have_include = 1;
            included |= hit;
        }
    }
    return !have_include || included;
}

static void server_filters_match_the_event_globs(void **state)
{
    (void)state;
    char *off[] = {BASE, NULL};
    struct cfg c;
    assert_int_equal(load(&c, off), 0);
    assert_int_equal(c.nami_filters, 0); /* only asked for */
    cfg_free(&c);

    char *env[] = {BASE, "AMIBRIDGE_EVENTS_SERVER_FILTER=1",
                   "AMIBRIDGE_EVENTS_INCLUDE=Newchannel Hangup* Queue[MC]*",
                   "AMIBRIDGE_EVENTS_EXCLUDE=HangupRequest QueueMember[!A]*", NULL};
    assert_int_equal(load(&c, env), 0);
    assert_true(c.nami_filters > 0);
    assert_true(filters_pass(&c, "Newchannel"));
    assert_false(filters_pass(&c, "Newchannelx")); /* a glob names the whole event */
    assert_true(filters_pass(&c, "Hangup"));
    assert_false(filters_pass(&c, "HangupRequest"));
    assert_false(filters_pass(&c, "SoftHangupRequest"));
    assert_true(filters_pass(&c, "QueueCallerJoin"));
    assert_true(filters_pass(&c, "QueueMemberAdded"));
    assert_false(filters_pass(&c, "QueueMemberStatus"));
    assert_false(filters_pass(&c, "QueueEntry"));
    assert_true(filters_pass(&c, "OriginateResponse")); /* calls wait for it */
    assert_false(filters_pass(&c, "VarSet"));
    cfg_free(&c);
}

static void trusted_proxies_and_the_stream_share_per_key(void **state)
{
    (void)state;
    char *none[] = {BASE, NULL};
    struct cfg c;
    assert_int_equal(load(&c, none), 0);
    assert_int_equal(c.ntrusted_proxies, 0);
    assert_int_equal(c.sse_max_clients_per_key, 10);
    assert_true(c.sse_max_clients_per_key < c.sse_max_clients);
    cfg_free(&c);
    char *env[] = {BASE, "AMIBRIDGE_TRUSTED_PROXIES=127.0.0.0/8, 10.0.0.5 ::1/128",
                   "AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY=3", NULL};
    assert_int_equal(load(&c, env), 0);
    assert_int_equal(c.ntrusted_proxies, 3);
    assert_int_equal(c.sse_max_clients_per_key, 3);
    cfg_free(&c);
    char *bad[] = {BASE, "AMIBRIDGE_TRUSTED_PROXIES=10.0.0.1/8", NULL};
    assert_fails_naming(bad, "AMIBRIDGE_TRUSTED_PROXIES");
    char *bad2[] = {BASE, "AMIBRIDGE_TRUSTED_PROXIES=proxy.example", NULL};
    assert_fails_naming(bad2, "AMIBRIDGE_TRUSTED_PROXIES");
    char *bad3[] = {BASE, "AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY=0", NULL};
    assert_fails_naming(bad3, "AMIBRIDGE_SSE_MAX_CLIENTS_PER_KEY");
}

/* The settings table behind --help and --config-table: every row is
 * documented, variables and file keys are unique, and a file key is the
 * variable's name in lower case (without AMIBRIDGE_, or AMIBRIDGE_AMI_ in
 * a servers[] entry). */
static void settings_table_is_consistent(void **state)
{
    (void)state;
    const struct cfg_doc *d, *e;
    size_t n = 0;
    for (size_t i = 0; (d = cfg_doc_at(i)); i++, n++) {
        assert_true(d->env || d->json);
        assert_non_null(d->def);
        assert_non_null(d->help);
        assert_true(strlen(d->help) > 10);
        assert_true(d->help[strlen(d->help) - 1] == '.');
        if (d->env) {
            assert_int_equal(strncmp(d->env, "AMIBRIDGE_", 10), 0);
            for (const char *p = d->env; *p; p++)
                assert_true((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_');
        }
        if (d->env && d->json) {
            int server = !strncmp(d->env, "AMIBRIDGE_AMI_", 14);
            const char *tail = d->env + (server ? 14 : 10);
            char lower[64];
            size_t k;
            for (k = 0; tail[k] && k + 1 < sizeof(lower); k++)
                lower[k] = (char)(tail[k] >= 'A' && tail[k] <= 'Z' ? tail[k] + 32 : tail[k]);
            lower[k] = '\0';
            if (strcmp(lower, d->json))
                fail_msg("%s has the file key '%s', not '%s'", d->env, d->json, lower);
        }
        for (size_t j = 0; j < i; j++) {
            e = cfg_doc_at(j);
            if (d->env && e->env && !strcmp(d->env, e->env))
                fail_msg("%s is in the table twice", d->env);
            if (d->json && e->json && !strcmp(d->json, e->json))
                fail_msg("the file key '%s' is in the table twice", d->json);
        }
    }
    assert_true(n > 60);
    assert_null(cfg_doc_at(n));
}

/* Every key the table gives the file is accepted there: a file that sets
 * each top-level key to a valid value loads. */
static void file_keys_of_the_table_are_known(void **state)
{
    (void)state;
    char *path =
        write_tmp("{\"listen\":\"127.0.0.1:0\",\"servers\":[{\"name\":\"a\",\"host\":\"h\","
                  "\"port\":1,\"username\":\"u\",\"secret\":\"s\",\"auth\":\"md5\",\"pool_size\":1,"
                  "\"timeout_ms\":100,\"max_inflight\":1,\"max_inflight_per_conn\":1,"
                  "\"keepalive_ms\":1000,\"connect_timeout_ms\":100}],\"api_keys\":[],"
                  "\"deny_actions\":[],\"allow_actions\":[],\"deny_originate_apps\":[],"
                  "\"allow_functions\":[],\"deny_functions\":[],\"max_body\":1,"
                  "\"http_max_connections\":1,\"http_timeout_s\":1,\"calls_per_second\":1,"
                  "\"calls_burst\":1,\"calls_max_inflight\":1,\"cors_origins\":[],"
                  "\"idempotency_ttl_s\":1,\"redis_url\":\"redis://r\",\"webhooks\":[],"
                  "\"log_level\":\"info\"}");
    char *env[] = {NULL};
    struct cfg c;
    if (cfg_load(&c, env, path, errbuf, sizeof(errbuf)))
        fail_msg("%s", errbuf);
    cfg_free(&c);
    /* and the table names every one of them */
    static const char *const keys[] = {"listen",    "servers", "api_keys",    "webhooks",
                                       "redis_url", "name",    "secret_file", "connect_timeout_ms"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct cfg_doc *d;
        size_t j;
        for (j = 0; (d = cfg_doc_at(j)) && !(d->json && !strcmp(d->json, keys[i])); j++)
            ;
        if (!d)
            fail_msg("no row has the file key '%s'", keys[i]);
    }
    unlink(path);
    free(path);
}

/* The environment ranks over the file at the top level; in a servers[]
 * entry the file ranks over the environment, whose tuning settings are
 * every entry's defaults. */
static void environment_and_file_rank_as_documented(void **state)
{
    (void)state;
    char *path = write_tmp("{\"max_body\":2048,\"log_level\":\"debug\",\"calls_burst\":6,"
                           "\"deny_actions\":[\"Originate\"],\"servers\":[{\"name\":\"a\","
                           "\"username\":\"u\",\"secret\":\"s\",\"pool_size\":2},"
                           "{\"name\":\"b\",\"username\":\"u\",\"secret\":\"s\"}]}");
    char *env[] = {"AMIBRIDGE_MAX_BODY=99",
                   "AMIBRIDGE_LOG_LEVEL=error",
                   "AMIBRIDGE_DENY_ACTIONS=Command Reload",
                   "AMIBRIDGE_AMI_POOL_SIZE=9",
                   "AMIBRIDGE_AMI_AUTH=plain",
                   NULL};
    struct cfg c;
    if (cfg_load(&c, env, path, errbuf, sizeof(errbuf)))
        fail_msg("%s", errbuf);
    assert_int_equal(c.max_body, 99);
    assert_int_equal(c.log_level, LOG_ERROR);
    assert_int_equal(c.calls_burst, 6);
    assert_int_equal(c.ndeny_actions, 2);
    assert_int_equal(c.servers[0].pool_size, 2);
    assert_int_equal(c.servers[1].pool_size, 9);
    assert_int_equal(c.servers[0].auth, CFG_AUTH_PLAIN);
    assert_string_equal(c.servers[1].host, "127.0.0.1");
    cfg_free(&c);
    /* a bad file value is refused even when the environment overrides it */
    unlink(path);
    free(path);
    path = write_tmp("{\"max_body\":0}");
    char *env2[] = {BASE, "AMIBRIDGE_MAX_BODY=99", NULL};
    assert_int_equal(cfg_load(&c, env2, path, errbuf, sizeof(errbuf)), -1);
    assert_non_null(strstr(errbuf, "max_body"));
    unlink(path);
    free(path);
    /* and a bad default for servers[] entries even when each gives its own */
    path = write_tmp("{\"servers\":[{\"name\":\"a\",\"username\":\"u\",\"secret\":\"s\","
                     "\"auth\":\"md5\"}]}");
    char *env3[] = {"AMIBRIDGE_AMI_AUTH=sha1", NULL};
    assert_int_equal(cfg_load(&c, env3, path, errbuf, sizeof(errbuf)), -1);
    assert_non_null(strstr(errbuf, "AMIBRIDGE_AMI_AUTH"));
    unlink(path);
    free(path);
}

int main(void)
{
    log_set_level(LOG_ERROR); /* short-token warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_come_from_the_documented_values),
        cmocka_unit_test(the_documented_list_defaults_are_the_loaded_ones),
        cmocka_unit_test(environment_sets_every_key),
        cmocka_unit_test(bad_values_name_the_key),
        cmocka_unit_test(api_key_errors_never_echo_tokens),
        cmocka_unit_test(non_loopback_listen_requires_keys),
        cmocka_unit_test(secret_file_is_read_and_trimmed),
        cmocka_unit_test(config_file_gives_several_servers_and_keys),
        cmocka_unit_test(config_file_errors_name_the_path),
        cmocka_unit_test(scopes_parse_and_refuse_unknown_names),
        cmocka_unit_test(call_guard_cors_and_dial_policy_settings),
        cmocka_unit_test(function_lists_and_allowed_applications),
        cmocka_unit_test(server_filters_match_the_event_globs),
        cmocka_unit_test(trusted_proxies_and_the_stream_share_per_key),
        cmocka_unit_test(settings_table_is_consistent),
        cmocka_unit_test(file_keys_of_the_table_are_known),
        cmocka_unit_test(environment_and_file_rank_as_documented),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
