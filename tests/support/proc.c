#include "support/proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROC_MAX_ARGS 64
#define PROC_MAX_ENV  256
#define PROC_POLL_MS  5

extern char **environ;

/* "" means /dev/null; NULL leaves the descriptor alone. */
static int redirect(const char *path, int fd)
{
    if (!path)
        return 0;
    int f = open(*path ? path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (f < 0)
        return -1;
    dup2(f, fd);
    close(f);
    return 0;
}

int proc_spawn(struct proc *p, const char *const argv[], const struct proc_opts *opts)
{
    const char *args[PROC_MAX_ARGS + 1];
    char *wrap_copy = NULL;
    size_t n = 0;
    memset(p, 0, sizeof(*p));
    const char *wrapper = getenv("AMIBRIDGE_TEST_WRAPPER");
    if (opts && opts->use_wrapper && wrapper && *wrapper) {
        wrap_copy = strdup(wrapper);
        if (!wrap_copy)
            return -ENOMEM;
        char *save = NULL;
        for (char *w = strtok_r(wrap_copy, " ", &save); w && n < PROC_MAX_ARGS;
             w = strtok_r(NULL, " ", &save))
            args[n++] = w;
    }
    for (size_t i = 0; argv[i] && n < PROC_MAX_ARGS; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    const char *envp[PROC_MAX_ENV + 1];
    size_t ne = 0;
    for (char **e = environ; *e && ne < PROC_MAX_ENV; e++)
        envp[ne++] = *e;
    if (opts && opts->env)
        for (size_t i = 0; opts->env[i] && ne < PROC_MAX_ENV; i++)
            envp[ne++] = opts->env[i];
    envp[ne] = NULL;
    pid_t parent = getpid();
    /* the death signal follows the forking thread, not the process: only
     * ask for it when that thread is the main one, which outlives them all */
    int main_thread = (pid_t)syscall(SYS_gettid) == parent;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(wrap_copy);
        return -e;
    }
    if (pid == 0) {
        /* a test that dies (a failed assertion, a crash) must not leave its
         * servers running, holding ports and the output pipe of the CI run */
        if (main_thread) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
        }
        setpgid(0, 0);
        if (opts) {
            redirect(opts->stdout_path, STDOUT_FILENO);
            redirect(opts->stderr_path, STDERR_FILENO);
        }
        execve(args[0], (char *const *)args, (char *const *)envp);
        if (strchr(args[0], '/') == NULL)
            execvpe(args[0], (char *const *)args, (char *const *)envp);
        fprintf(stderr, "proc: cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    free(wrap_copy);
    p->pid = pid;
    return 0;
}

int proc_signal(struct proc *p, int sig)
{
    if (!p->pid || p->reaped)
        return -ESRCH;
    if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0)
        return -errno;
    return 0;
}

int proc_wait(struct proc *p, int timeout_ms)
{
    if (!p->pid)
        return -ECHILD;
    if (p->reaped)
        return 1;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == p->pid) {
            p->status = st;
            p->reaped = 1;
            return 1;
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (timeout_ms >= 0 && el >= timeout_ms)
            return 0;
        struct timespec d = {0, PROC_POLL_MS * 1000000L};
        nanosleep(&d, NULL);
    }
}

int proc_exit_code(const struct proc *p)
{
    if (!p->reaped)
        return -ECHILD;
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    if (WIFSIGNALED(p->status))
        return 128 + WTERMSIG(p->status);
    return -EINVAL;
}

int proc_stop(struct proc *p, int timeout_ms)
{
    if (!p->pid)
        return -ECHILD;
    if (!p->reaped) {
        proc_signal(p, SIGTERM);
        if (proc_wait(p, timeout_ms) == 0) {
            proc_signal(p, SIGKILL);
            proc_wait(p, -1);
        }
    }
    return proc_exit_code(p);
}

/* Every port handed out stays bound here, with SO_REUSEADDR and without
 * listening, for as long as the test program runs (or until PROC_HELD_PORTS
 * later picks). The kernel then never gives it to another bind(port 0) nor
 * to an outgoing connection's local end, so test programs running at once
 * cannot pick the same port, and a port a test keeps "closed" stays closed
 * (a connection is refused). The server the port is meant for binds it
 * anyway: redis-server, amibridge, Python's and Node's HTTP servers all set
 * SO_REUSEADDR, which Linux lets share a port with sockets that do not
 * listen. */
#define PROC_HELD_PORTS 256

static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static int held_fd[PROC_HELD_PORTS];
static size_t held_n;

int proc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (!port) {
        close(fd);
        return 0;
    }
    pthread_mutex_lock(&held_mu);
    size_t slot = held_n++ % PROC_HELD_PORTS;
    if (held_n > PROC_HELD_PORTS)
        close(held_fd[slot]);
    held_fd[slot] = fd;
    pthread_mutex_unlock(&held_mu);
    return port;
}
