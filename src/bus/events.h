/* bus/events: the AMI event stream, shaped once and shared by every outlet.
 *
 * Every event from an event connection passes the include/exclude filters
 * (event name globs) before anything else is done with it, then gets its
 * per-server sequence number and the time the bridge received it, and is
 * encoded once as
 *
 *   {"server":"pbx1","event":"Hangup","seq":1234,"time":"...Z","fields":{...}}
 *
 * The encoded event is reference counted and handed to each sink (Redis,
 * SSE clients, webhooks), which keep a reference for as long as they need
 * it. The last AMIBRIDGE_SSE_REPLAY events are kept for replay.
 */
#ifndef AMIBRIDGE_BUS_EVENTS_H
#define AMIBRIDGE_BUS_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ami/message.h"
#include "core/config.h"

#define BUS_MAX_SINKS      8
#define BUS_EVENT_NAME_MAX 64

struct bus_event {
    int refs;
    size_t server; /* index into cfg->servers */
    const char *server_name;
    char name[BUS_EVENT_NAME_MAX];
    uint64_t seq; /* per server, from 1, no gaps among delivered events */
    char *json;   /* the encoded event, NUL-terminated */
    size_t len;
    struct ami_msg *msg; /* the fields, for filters that look inside */
    int remote;          /* published by the leader, read back from Redis (bus_inject) */
    /* the Redis channel is <channel_prefix>.<server>.<name>; NULL: the
     * configured AMIBRIDGE_REDIS_PREFIX (call events use "calls") */
    const char *channel_prefix;
};

void bus_event_ref(struct bus_event *e);
void bus_event_unref(struct bus_event *e);

/* A sink gets every event; `e` is borrowed (take a reference to keep it). */
typedef void (*bus_sink_fn)(void *ud, struct bus_event *e);

struct bus;

struct bus_stats {
    uint64_t received; /* from AMI, before the filters */
    uint64_t filtered; /* dropped by the filters */
    uint64_t delivered;
};

/* `c` is borrowed and must outlive the bus. */
struct bus *bus_new(const struct cfg *c);
void bus_free(struct bus *b);
/* 0 or -ENOSPC (more than BUS_MAX_SINKS). */
int bus_add_sink(struct bus *b, bus_sink_fn fn, void *ud);

/* A bus of events that are not AMI's (call events): every event's Redis
 * channel is <prefix>.<server>.<name> (`prefix` borrowed, static). */
void bus_set_channel_prefix(struct bus *b, const char *prefix);
/* Publish one such event: its "seq" member is set to the bus's next
 * sequence number of `server`, then it is encoded once; `fields` (may be
 * NULL, copied) is what event filters match. No include/exclude filters. */
void bus_publish_json(struct bus *b, size_t server, const char *name, json_t *event,
                      const struct ami_msg *fields);

/* A follower: one such event as the leader published it (`json`, its
 * "server" and "seq" read from it), with the fields filters match. */
void bus_inject_event(struct bus *b, const char *json, size_t len, const char *name,
                      const struct ami_msg *fields);

/* Feed one AMI event of server `server` (the pool's event callback). */
void bus_publish_ami(struct bus *b, size_t server, const struct ami_msg *m);

/* Replicas: a follower does nothing with its own AMI events (the leader
 * publishes them); its stream is what the leader published, fed back with
 * bus_inject() so that `seq` and Last-Event-ID mean the same on every
 * replica. A replica that becomes leader goes on from the highest seq it
 * has seen. */
void bus_set_follower(struct bus *b, int follower);
/* An event as the leader published it (its JSON). Ignored unless this
 * replica follows. Sinks see it with e->remote set: only the SSE hub
 * takes such events. */
void bus_inject(struct bus *b, const char *json, size_t len);

/* Does the event name pass the include/exclude filters? */
int bus_wants(const struct bus *b, const char *event_name);

/* Call fn for every kept event of `server` with seq > after, oldest first.
 * Returns the seq of the oldest kept event of that server (0 when none), so
 * that a caller can tell a gap from a complete replay. */
uint64_t bus_replay(struct bus *b, size_t server, uint64_t after, bus_sink_fn fn, void *ud);
/* The last seq given out for `server` (0 before the first event). */
uint64_t bus_last_seq(const struct bus *b, size_t server);

void bus_stats(const struct bus *b, struct bus_stats *st);

/* Glob list matching (fnmatch, case-sensitive like AMI event names). */
int bus_glob_any(char *const *globs, size_t n, const char *name);

#endif
