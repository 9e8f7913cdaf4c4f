#include "support/redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "support/testenv.h"

#define REDIS_START_TIMEOUT_MS 10000

int redis_start(struct redis_srv *s, int port)
{
    memset(s, 0, sizeof(*s));
    int rc = testenv_tmpdir(s->dir, sizeof(s->dir), "redis");
    if (rc < 0)
        return rc;
    s->port = port ? port : proc_free_port();
    snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%d", s->port);
    char portstr[16], log[600];
    snprintf(portstr, sizeof(portstr), "%d", s->port);
    snprintf(log, sizeof(log), "%s/redis.log", s->dir);
    const char *argv[] = {
        "/usr/bin/redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
        "--appendonly",          "no",     "--dir", s->dir,   "--logfile", log,      NULL};
    if ((rc = proc_spawn(&s->proc, argv, NULL)) < 0)
        return rc;
    long long deadline = testenv_now_ms() + REDIS_START_TIMEOUT_MS;
    while (testenv_now_ms() < deadline) {
        const char *ping[] = {"PING", NULL};
        char *out = redis_cli(s, ping);
        int ok = out && strstr(out, "PONG");
        free(out);
        if (ok)
            return 0;
        testenv_sleep_ms(20);
    }
    proc_stop(&s->proc, 0);
    return -ETIMEDOUT;
}

int redis_stop(struct redis_srv *s)
{
    int rc = proc_stop(&s->proc, 5000);
    testenv_rmdir(s->dir);
    return rc;
}

char *redis_cli(const struct redis_srv *s, const char *const *args)
{
    struct strbuf cmd;
    strbuf_init(&cmd, 0);
    strbuf_printf(&cmd, "redis-cli -h 127.0.0.1 -p %d", s->port);
    for (; *args; args++) {
        strbuf_append_str(&cmd, " '");
        for (const char *c = *args; *c; c++) {
            if (*c == '\'')
                strbuf_append_str(&cmd, "'\\''");
            else
                strbuf_append(&cmd, c, 1);
        }
        strbuf_append_str(&cmd, "'");
    }
    strbuf_append_str(&cmd, " 2>/dev/null");
    FILE *p = popen(cmd.data, "r");
    strbuf_release(&cmd);
    if (!p)
        return NULL;
    struct strbuf out;
    strbuf_init(&out, 0);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        strbuf_append(&out, buf, n);
    pclose(p);
    return strbuf_detach(&out, NULL);
}

long redis_llen(const struct redis_srv *s, const char *key)
{
    const char *args[] = {"LLEN", key, NULL};
    char *out = redis_cli(s, args);
    long n = out ? atol(out) : -1;
    free(out);
    return n;
}
