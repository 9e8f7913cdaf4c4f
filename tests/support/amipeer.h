/* support/amipeer: a scripted AMI peer inside the test process, for unit
 * tests of ami/conn and ami/pool that need a server doing exactly what the
 * test says (answer out of order, hold a reply, drop the session).
 *
 *   static void act(struct amipeer *pe, int fd, const char *msg, void *ud)
 *   {   char id[64] = "";
 *       amipeer_header(msg, "ActionID", id, sizeof(id));
 *       amipeer_say(fd, "Response: Success\r\nActionID: %s\r\n\r\n", id); }
 *   struct amipeer pe;
 *   if (amipeer_start(&pe, 8, act, NULL, NULL)) ...fail...;
 *   ... connect to 127.0.0.1:pe.port ...
 *   amipeer_stop(&pe);
 *
 * One thread with plain blocking-free sockets polled every 10 ms at most:
 * it greets each accepted session with the Asterisk banner, cuts what
 * arrives into messages at the blank line and hands each (the final CRLF
 * pair cut off) to `act` on that thread; `tick`, if set, runs on every turn
 * (e.g. to send events or drop a session the test asked for through its
 * own volatile flags). Past `max_conns` sessions, new ones are closed at
 * once. A message longer than AMIPEER_INPUT bytes closes its session.
 */
#ifndef AMIBRIDGE_TEST_AMIPEER_H
#define AMIBRIDGE_TEST_AMIPEER_H

#include <pthread.h>
#include <stddef.h>

#define AMIPEER_CONNS 8
#define AMIPEER_INPUT 65536

struct amipeer;
typedef void (*amipeer_act_fn)(struct amipeer *pe, int fd, const char *msg, void *ud);
typedef void (*amipeer_tick_fn)(struct amipeer *pe, void *ud);

struct amipeer {
    int port;                /* on 127.0.0.1 */
    int fds[AMIPEER_CONNS];  /* the sessions, -1 for a free slot (the peer's thread only) */
    volatile unsigned reads; /* recv() calls that brought bytes, all sessions */
    /* private */
    int lfd, max_conns;
    pthread_t th;
    volatile int stop;
    char in[AMIPEER_CONNS][AMIPEER_INPUT];
    size_t nin[AMIPEER_CONNS];
    amipeer_act_fn act;
    amipeer_tick_fn tick;
    void *ud;
};

/* Listen on a free loopback port and start the thread; 0 or -1. */
int amipeer_start(struct amipeer *pe, int max_conns, amipeer_act_fn act, amipeer_tick_fn tick,
                  void *ud);
/* Stop the thread, close every session and the listener. */
void amipeer_stop(struct amipeer *pe);
/* Close session slot i (from act or tick). */
void amipeer_drop(struct amipeer *pe, int i);
/* printf-style bytes to fd, all of them (up to 1 KiB), or none on error. */
void amipeer_say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The value of `key: ` in msg into out; out, or NULL (out untouched) when absent. */
const char *amipeer_header(const char *msg, const char *key, char *out, size_t len);

#endif
