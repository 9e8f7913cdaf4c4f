/* support/redis: a real redis-server for a test, on a free port, with no
 * persistence, stopped at the end. */
#ifndef AMIBRIDGE_TEST_REDIS_H
#define AMIBRIDGE_TEST_REDIS_H

#include "support/proc.h"

struct redis_srv {
    struct proc proc;
    int port;
    char dir[512];
    char url[64]; /* redis://127.0.0.1:PORT */
};

/* Start redis-server (from PATH) on `port` (0: a free one); waits until it
 * answers PING. 0 or -errno. */
int redis_start(struct redis_srv *s, int port);
int redis_stop(struct redis_srv *s);
/* Run one command with redis-cli and return its output (malloc'd, caller
 * frees), or NULL. */
char *redis_cli(const struct redis_srv *s, const char *const *args);

/* LLEN of `key`; -1 when Redis cannot be asked. */
long redis_llen(const struct redis_srv *s, const char *key);

#endif
