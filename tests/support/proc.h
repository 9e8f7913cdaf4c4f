/* proc: child processes for integration tests (the binaries under test,
 * ami-sim, redis-server, ...).
 *
 *   struct proc p;
 *   const char *argv[] = {"build/ami-sim", "--listen", "127.0.0.1:0", NULL};
 *   proc_spawn(&p, argv, NULL, NULL);
 *   ...
 *   int status = proc_stop(&p, 3000);   // SIGTERM, then SIGKILL after 3 s
 *
 * A child lives in its own process group so a signal reaches a wrapper
 * (valgrind) and what it runs. Nothing here is global but the ports
 * proc_free_port keeps; the functions may be used from several threads for
 * different children.
 */
#ifndef AMIBRIDGE_TEST_PROC_H
#define AMIBRIDGE_TEST_PROC_H

#include <sys/types.h>

struct proc {
    pid_t pid;  /* 0 when nothing runs */
    int status; /* wait status once reaped */
    int reaped;
};

/* Options for proc_spawn; NULL means all defaults. */
struct proc_opts {
    const char *const *env;  /* extra "KEY=value" entries, NULL-terminated */
    const char *stdout_path; /* NULL: inherit; "" : /dev/null */
    const char *stderr_path;
    int use_wrapper; /* prefix argv with $AMIBRIDGE_TEST_WRAPPER (words split on spaces) */
};

/* Start argv[0] (a path) with argv. 0 or -errno. */
int proc_spawn(struct proc *p, const char *const argv[], const struct proc_opts *opts);
/* Send a signal to the child (its process group). 0 or -errno. */
int proc_signal(struct proc *p, int sig);
/* Wait up to timeout_ms (-1 forever) for the child to exit. Returns 1 when
 * it exited (p->status holds the wait status), 0 on timeout, -errno. */
int proc_wait(struct proc *p, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL and reap. Returns the exit
 * code (0..255), 128+signal when killed by a signal, or -errno. */
int proc_stop(struct proc *p, int timeout_ms);
/* Exit code as proc_stop reports it, from p->status. */
int proc_exit_code(const struct proc *p);

/* A free TCP port on 127.0.0.1, kept reserved for this process (bound, not
 * listening; a server with SO_REUSEADDR can still bind it): no other
 * bind(port 0) or outgoing connection gets it meanwhile. 0 on error. */
int proc_free_port(void);

#endif
