/* stall-probe: how long this machine takes a busy core away. `threads`
 * threads each read the monotonic clock in a loop for `seconds` and note
 * every gap between two reads longer than 1 ms: time the thread was not
 * running although it wanted to (a virtual machine's host running
 * something else, a stolen or throttled core). Run with one thread per
 * core it shows what a benchmark that keeps every core busy meets; with
 * one thread, what a lone busy process meets. Prints one JSON line: the
 * longest gap, the gaps over 1, 10 and 50 ms, and the share of the time
 * lost in them (of the thread that lost most).
 *
 *   stall-probe [--threads 2] [--seconds 5]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define THREADS_MAX 64

struct probe {
    pthread_t t;
    double seconds;
    double longest_ms, lost_ms;
    unsigned over1, over10, over50;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *spin(void *arg)
{
    struct probe *p = arg;
    double start = now_ms(), last = start;
    for (;;) {
        double t = now_ms(), gap = t - last;
        last = t;
        if (gap > 1.0) {
            p->over1++;
            p->over10 += gap > 10.0;
            p->over50 += gap > 50.0;
            p->lost_ms += gap;
            if (gap > p->longest_ms)
                p->longest_ms = gap;
        }
        if (t - start >= p->seconds * 1e3)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 5;
    static const struct option opts[] = {{"threads", required_argument, NULL, 't'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (o == 't')
            threads = atoi(optarg);
        else if (o == 's')
            seconds = atof(optarg);
        else
            return 2;
    }
    if (threads < 1 || threads > THREADS_MAX || !(seconds > 0 && seconds <= 600)) {
        fprintf(stderr, "stall-probe: --threads 1..%d, --seconds in (0, 600]\n", THREADS_MAX);
        return 2;
    }
    static struct probe p[THREADS_MAX];
    for (int i = 0; i < threads; i++) {
        p[i].seconds = seconds;
        if (pthread_create(&p[i].t, NULL, spin, &p[i]) != 0) {
            perror("stall-probe: pthread_create");
            return 1;
        }
    }
    double longest = 0, lost = 0;
    unsigned over1 = 0, over10 = 0, over50 = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(p[i].t, NULL);
        if (p[i].longest_ms > longest)
            longest = p[i].longest_ms;
        if (p[i].lost_ms > lost)
            lost = p[i].lost_ms;
        over1 += p[i].over1;
        over10 += p[i].over10;
        over50 += p[i].over50;
    }
    printf("{\"threads\": %d, \"seconds\": %g, \"longest_ms\": %.1f, \"over_1ms\": %u, "
           "\"over_10ms\": %u, \"over_50ms\": %u, \"lost_pct\": %.1f}\n",
           threads, seconds, longest, over1, over10, over50, 100.0 * lost / (seconds * 1e3));
    return 0;
}
