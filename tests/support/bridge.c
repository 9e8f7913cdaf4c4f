#include "support/bridge.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/http.h"
#include "support/testenv.h"

#define BRIDGE_MAX_ENV       64
#define BRIDGE_STOP_GRACE_MS 5000
#define BRIDGE_POLL_MS       25

static int wrapped(void)
{
    const char *w = getenv("AMIBRIDGE_TEST_WRAPPER");
    return w && *w;
}

int bridge_start(struct bridge *b, int ami_port, const char *const *env)
{
    memset(b, 0, sizeof(*b));
    int rc = testenv_tmpdir(b->dir, sizeof(b->dir), "bridge");
    if (rc < 0)
        return rc;
    snprintf(b->log, sizeof(b->log), "%s/stderr.log", b->dir);
    b->port = proc_free_port();
    snprintf(b->url, sizeof(b->url), "http://127.0.0.1:%d", b->port);
    /* a test that names its own listen address (0.0.0.0:PORT, TLS, ...) is
     * reached on that port, over loopback, with https when it has a cert */
    const char *scheme = "http";
    for (const char *const *e = env; e && *e; e++)
        if (!strncmp(*e, "AMIBRIDGE_TLS_CERT=", 19))
            scheme = "https";
    for (const char *const *e = env; e && *e; e++)
        if (!strncmp(*e, "AMIBRIDGE_LISTEN=", 17)) {
            const char *colon = strrchr(*e, ':');
            b->port = colon ? atoi(colon + 1) : 0;
        }
    snprintf(b->url, sizeof(b->url), "%s://127.0.0.1:%d", scheme, b->port);
    char listen[64], ami[64];
    snprintf(listen, sizeof(listen), "AMIBRIDGE_LISTEN=127.0.0.1:%d", b->port);
    snprintf(ami, sizeof(ami), "AMIBRIDGE_AMI_PORT=%d", ami_port);
    const char *all[BRIDGE_MAX_ENV + 1];
    const char *const defaults[] = {listen,
                                    ami,
                                    "AMIBRIDGE_AMI_USERNAME=bridge",
                                    "AMIBRIDGE_AMI_SECRET=bridgesecret",
                                    "AMIBRIDGE_LOG_LEVEL=warn",
                                    NULL};
    size_t n = 0;
    for (const char *const *e = env; e && *e && n < BRIDGE_MAX_ENV - 6; e++)
        all[n++] = *e;
    /* a default goes in only when the test did not set the variable: with
     * both, which one a process sees depends on what starts it (valgrind
     * keeps the last of duplicate variables, amibridge alone the first) */
    for (const char *const *d = defaults; *d; d++) {
        size_t klen = strcspn(*d, "=") + 1;
        int given = 0;
        for (const char *const *e = env; e && *e; e++)
            given |= !strncmp(*e, *d, klen);
        if (!given)
            all[n++] = *d;
    }
    all[n] = NULL;
    char bin[1024];
    testenv_build_path(bin, sizeof(bin), "amibridge");
    const char *argv[] = {bin, NULL};
    struct proc_opts po = {
        .env = all, .stdout_path = b->log, .stderr_path = b->log, .use_wrapper = 1};
    if ((rc = proc_spawn(&b->proc, argv, &po)) < 0) {
        testenv_rmdir(b->dir);
        return rc;
    }
    long tmo = wrapped() ? BRIDGE_WRAPPED_START_TIMEOUT_MS : BRIDGE_START_TIMEOUT_MS;
    if (bridge_wait_status(b, "/healthz", 200, tmo) < 0) {
        proc_stop(&b->proc, 0);
        return -ETIMEDOUT;
    }
    return 0;
}

int bridge_stop(struct bridge *b, int sig)
{
    if (!b->proc.pid)
        return -ECHILD;
    if (sig && sig != SIGTERM) {
        proc_signal(&b->proc, sig);
        proc_wait(&b->proc, -1);
    }
    int code = proc_stop(&b->proc, BRIDGE_STOP_GRACE_MS * (wrapped() ? 6 : 1));
    testenv_rmdir(b->dir);
    return code;
}

long bridge_wait_status(const struct bridge *b, const char *path, long status, long timeout_ms)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", b->url, path);
    long long t0 = testenv_now_ms();
    for (;;) {
        struct http_resp r;
        http_call("GET", url, NULL, NULL, NULL, 1000, &r);
        long got = r.status;
        http_resp_free(&r);
        if (got == status)
            return (long)(testenv_now_ms() - t0);
        if (testenv_now_ms() - t0 > timeout_ms)
            return -1;
        testenv_sleep_ms(BRIDGE_POLL_MS);
    }
}

int bridge_wait_redis(const struct bridge *b, long timeout_ms)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/readyz", b->url);
    long long t0 = testenv_now_ms();
    for (;;) {
        struct http_resp r;
        http_call("GET", url, NULL, NULL, NULL, 2000, &r);
        json_t *rd = json_object_get(r.json, "redis");
        const char *state = json_string_value(json_object_get(rd, "state"));
        int up = state && !strcmp(state, "up");
        http_resp_free(&r);
        if (up)
            return 0;
        if (testenv_now_ms() - t0 > timeout_ms)
            return -1;
        testenv_sleep_ms(BRIDGE_POLL_MS);
    }
}

int bridge_log_count(const struct bridge *b, const char *needle)
{
    FILE *f = fopen(b->log, "r");
    if (!f)
        return 0;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}
