/* support/sub: a Redis pattern subscriber on its own thread, collecting
 * every message it gets (channel and payload) for a test to inspect. */
#ifndef AMIBRIDGE_TEST_SUB_H
#define AMIBRIDGE_TEST_SUB_H

#include <pthread.h>
#include <stddef.h>

struct sub_msg {
    char *channel;
    char *payload;
};

struct sub {
    pthread_t th;
    pthread_mutex_t mu;
    int port;
    char pattern[128];
    struct sub_msg *v;
    size_t n, cap;
    int stop;
    void *ctx; /* the hiredis context, for sub_stop */
    int ready; /* subscribed */
    int failed;
};

/* Connect to 127.0.0.1:port, PSUBSCRIBE pattern, collect until sub_stop.
 * Returns once subscribed (0) or -1. */
int sub_start(struct sub *s, int port, const char *pattern);
/* Messages so far. */
size_t sub_count(struct sub *s);
/* Wait until at least n messages arrived or timeout_ms passed; returns the count. */
size_t sub_wait(struct sub *s, size_t n, int timeout_ms);
void sub_stop(struct sub *s);

#endif
