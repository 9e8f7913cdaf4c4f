#include "support/amisim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/net.h"
#include "support/testenv.h"

#define AMISIM_MAX_ARGS              48
#define AMISIM_POLL_MS               10
#define AMISIM_STOP_GRACE_MS         5000
#define AMISIM_WRAPPED_STOP_GRACE_MS 30000
#define AMISIM_BANNER_TRY_MS         500

int amisim_read_port(const struct amisim *s)
{
    FILE *f = fopen(s->ready_file, "r");
    if (!f)
        return 0;
    int port = 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

/* Wrapped runs (valgrind) start and stop much more slowly. */
static int wrapped(void)
{
    const char *w = getenv("AMIBRIDGE_TEST_WRAPPER");
    return w && *w;
}

int amisim_start(struct amisim *s, const char *const extra[])
{
    memset(s, 0, sizeof(*s));
    int rc = testenv_tmpdir(s->dir, sizeof(s->dir), "amisim");
    if (rc < 0)
        return rc;
    snprintf(s->ready_file, sizeof(s->ready_file), "%s/port", s->dir);
    char bin[1024];
    testenv_build_path(bin, sizeof(bin), "ami-sim");
    const char *argv[AMISIM_MAX_ARGS + 1];
    size_t n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--ready-file";
    argv[n++] = s->ready_file;
    argv[n++] = "--quiet";
    for (size_t i = 0; extra && extra[i] && n < AMISIM_MAX_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    struct proc_opts po = {.use_wrapper = 1};
    rc = proc_spawn(&s->proc, argv, &po);
    if (rc < 0) {
        testenv_rmdir(s->dir);
        return rc;
    }
    long long deadline =
        testenv_now_ms() + (wrapped() ? AMISIM_WRAPPED_START_TIMEOUT_MS : AMISIM_START_TIMEOUT_MS);
    while (testenv_now_ms() < deadline) {
        if ((s->port = amisim_read_port(s)) > 0)
            return 0;
        if (proc_wait(&s->proc, 0) == 1)
            break;
        testenv_sleep_ms(AMISIM_POLL_MS);
    }
    proc_stop(&s->proc, 0);
    testenv_rmdir(s->dir);
    return -ETIMEDOUT;
}

int amisim_stop(struct amisim *s)
{
    if (!s->proc.pid)
        return -ECHILD;
    int code = proc_stop(&s->proc, wrapped() ? AMISIM_WRAPPED_STOP_GRACE_MS : AMISIM_STOP_GRACE_MS);
    testenv_rmdir(s->dir);
    return code;
}

int amisim_wait_banner(int port, int timeout_ms)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    while (testenv_now_ms() < deadline) {
        struct net_client c;
        if (net_connect(&c, "127.0.0.1", port, AMISIM_BANNER_TRY_MS) == 0) {
            struct ami_msg *m = NULL;
            int rc = net_read_msg(&c, AMISIM_BANNER_TRY_MS, &m);
            int ok = rc == 1 && ami_msg_kind(m) == AMI_MSG_BANNER;
            ami_msg_free(m);
            net_close(&c);
            if (ok)
                return 0;
        }
        testenv_sleep_ms(AMISIM_POLL_MS * 5);
    }
    return -ETIMEDOUT;
}
