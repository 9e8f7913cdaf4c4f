/* support/bridge: run build/amibridge for a test, on a free port, against
 * an AMI server, with its stderr (the JSON log) kept in a file. */
#ifndef AMIBRIDGE_TEST_BRIDGE_H
#define AMIBRIDGE_TEST_BRIDGE_H

#include "support/proc.h"

#define BRIDGE_START_TIMEOUT_MS         5000
#define BRIDGE_WRAPPED_START_TIMEOUT_MS 60000

struct bridge {
    struct proc proc;
    int port;
    char url[64]; /* http://127.0.0.1:PORT */
    char dir[512];
    char log[600];
};

/* Start amibridge against 127.0.0.1:ami_port. `env` ("NAME=value", NULL-
 * terminated, may be NULL) goes before the defaults (user bridge, secret
 * bridgesecret, log level warn), so it overrides them. Waits until /healthz
 * answers. 0 or -errno. Runs under $AMIBRIDGE_TEST_WRAPPER when set. */
int bridge_start(struct bridge *b, int ami_port, const char *const *env);
/* Signal (SIGTERM when 0), wait, SIGKILL after a grace period, clean up.
 * Returns the exit code as proc_stop() does. */
int bridge_stop(struct bridge *b, int sig);
/* Wait until GET b->url + path answers `status`; ms waited, or -1. */
long bridge_wait_status(const struct bridge *b, const char *path, long status, long timeout_ms);
/* Poll /readyz until it reports Redis up; 0, or -1 after timeout_ms. */
int bridge_wait_redis(const struct bridge *b, long timeout_ms);
/* Lines of the log that contain `needle`. */
int bridge_log_count(const struct bridge *b, const char *needle);

#endif
