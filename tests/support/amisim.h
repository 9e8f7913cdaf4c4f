/* amisim: run build/ami-sim for a test.
 *
 *   struct amisim sim;
 *   const char *extra[] = {"--time-scale", "0.1", NULL};
 *   if (amisim_start(&sim, extra) == 0) { ... connect to sim.port ... }
 *   int code = amisim_stop(&sim);      // 0 after a clean SIGTERM exit
 *
 * The simulator listens on 127.0.0.1 on a port it picks itself and reports
 * through --ready-file, so parallel tests never race for a port. It runs
 * under $AMIBRIDGE_TEST_WRAPPER when that is set (e.g. valgrind).
 */
#ifndef AMIBRIDGE_TEST_AMISIM_H
#define AMIBRIDGE_TEST_AMISIM_H

#include "support/proc.h"

#define AMISIM_START_TIMEOUT_MS         10000
#define AMISIM_WRAPPED_START_TIMEOUT_MS 60000

struct amisim {
    struct proc proc;
    int port;
    char dir[512];
    char ready_file[600];
};

/* Start the simulator with `extra` arguments (NULL-terminated, may be NULL)
 * and wait until it listens. 0, or -errno / -ETIMEDOUT (then nothing runs). */
int amisim_start(struct amisim *s, const char *const extra[]);
/* Stop with SIGTERM (SIGKILL after a grace period), clean up; returns the
 * exit code as proc_stop() does. */
int amisim_stop(struct amisim *s);
/* Re-read the ready file (after a restart the port stays the same). */
int amisim_read_port(const struct amisim *s);
/* Connect repeatedly until the banner arrives or timeout_ms passes. 0 or
 * -ETIMEDOUT. */
int amisim_wait_banner(int port, int timeout_ms);

#endif
