#include "support/sub.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "support/testenv.h"

static redisContext *sub_connect(struct sub *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisReply *r = redisCommand(c, "PSUBSCRIBE %s", s->pattern);
    if (!r) {
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

/* Blocking reads, no timeout (a timeout breaks a hiredis context and would
 * lose messages while resubscribing); sub_stop() shuts the socket down. A
 * lost server (the Redis-restart tests) is reconnected to. */
static void *sub_main(void *arg)
{
    struct sub *s = arg;
    redisContext *c = sub_connect(s);
    pthread_mutex_lock(&s->mu);
    s->ctx = c;
    s->failed = !c;
    s->ready = 1;
    pthread_mutex_unlock(&s->mu);
    while (c && !s->stop) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK) {
            pthread_mutex_lock(&s->mu);
            s->ctx = NULL;
            pthread_mutex_unlock(&s->mu);
            redisFree(c);
            c = NULL;
            while (!s->stop && !(c = sub_connect(s)))
                testenv_sleep_ms(50);
            pthread_mutex_lock(&s->mu);
            s->ctx = c;
            if (s->stop && c)
                shutdown(c->fd, SHUT_RDWR);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        redisReply *m = rep;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 4 &&
            !strcmp(m->element[0]->str, "pmessage")) {
            pthread_mutex_lock(&s->mu);
            if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 1024;
                s->v = realloc(s->v, s->cap * sizeof(*s->v));
            }
            s->v[s->n].channel = strdup(m->element[2]->str);
            s->v[s->n].payload = strndup(m->element[3]->str, m->element[3]->len);
            s->n++;
            pthread_mutex_unlock(&s->mu);
        }
        freeReplyObject(m);
    }
    if (c)
        redisFree(c);
    return NULL;
}

int sub_start(struct sub *s, int port, const char *pattern)
{
    memset(s, 0, sizeof(*s));
    s->port = port;
    snprintf(s->pattern, sizeof(s->pattern), "%s", pattern);
    pthread_mutex_init(&s->mu, NULL);
    if (pthread_create(&s->th, NULL, sub_main, s) != 0)
        return -1;
    while (!s->ready)
        testenv_sleep_ms(5);
    return s->failed ? -1 : 0;
}

size_t sub_count(struct sub *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t sub_wait(struct sub *s, size_t n, int timeout_ms)
{
    long long deadline = testenv_now_ms() + timeout_ms;
    size_t got;
    while ((got = sub_count(s)) < n && testenv_now_ms() < deadline)
        testenv_sleep_ms(10);
    return got;
}

void sub_stop(struct sub *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    if (s->ctx)
        shutdown(((redisContext *)s->ctx)->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].channel);
        free(s->v[i].payload);
    }
    free(s->v);
    pthread_mutex_destroy(&s->mu);
}
