/* bus/redis: one Redis connection on the libuv loop, kept up for good.
 *
 * hiredis async with our own small libuv adapter (the one shipped with
 * hiredis 0.14 ignores poll errors, so a dead socket could go unnoticed).
 * The URL is redis://[user:pass@]host:port[/db] or unix:/path/to/socket.
 * After connecting it sends AUTH and SELECT as needed and only then counts
 * as up. A dropped connection fails every pending command (callback with a
 * NULL reply) and reconnects with capped, jittered backoff.
 */
#ifndef AMIBRIDGE_BUS_REDIS_H
#define AMIBRIDGE_BUS_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define BUS_REDIS_BACKOFF_MIN_MS     100
#define BUS_REDIS_BACKOFF_MAX_MS     5000
#define BUS_REDIS_CONNECT_TIMEOUT_MS 3000

struct bus_redis;

/* `reply` is NULL when the command failed (connection lost, closing);
 * borrowed for the duration of the call. */
typedef void (*bus_redis_cb)(void *ud, const redisReply *reply);
/* State changes (up = 1 when logged in and ready, 0 when lost). */
typedef void (*bus_redis_state_cb)(void *ud, int up);

/* Parse the URL and start connecting. NULL with a message in err when the
 * URL is malformed (the message names AMIBRIDGE_REDIS_URL, never the
 * password). */
struct bus_redis *bus_redis_new(uv_loop_t *loop, const char *url, char *err, size_t errlen);
void bus_redis_set_state_cb(struct bus_redis *r, bus_redis_state_cb cb, void *ud);

/* Send a command (hiredis format string, e.g. "SET %s %b NX PX %d").
 * Returns 0 (cb fires once, possibly with NULL) or -ENOTCONN when not up
 * (cb never fires). cb may be NULL. */
int bus_redis_command(struct bus_redis *r, bus_redis_cb cb, void *ud, const char *fmt, ...);
int bus_redis_commandargv(struct bus_redis *r, bus_redis_cb cb, void *ud, int argc,
                          const char **argv, const size_t *argvlen);

/* The same with a command already in RESP (bus_redis_format): no format
 * string to parse and no copy of the arguments but hiredis's own. */
int bus_redis_formatted(struct bus_redis *r, bus_redis_cb cb, void *ud, const char *cmd,
                        size_t len);
/* Append one command in RESP (`*argc`, then `$len` and each argument). */
struct strbuf;
int bus_redis_format(struct strbuf *out, int argc, const char *const *argv, const size_t *argvlen);
/* Make this connection a subscriber: PSUBSCRIBE `pattern` now and after
 * every reconnect, and call cb for each message (channel and payload
 * borrowed for the call). The connection takes no other command after. */
typedef void (*bus_redis_msg_cb)(void *ud, const char *channel, const char *msg, size_t len);
void bus_redis_psubscribe(struct bus_redis *r, const char *pattern, bus_redis_msg_cb cb, void *ud);

int bus_redis_up(const struct bus_redis *r);
/* Why the last attempt or connection ended ("" when none). */
const char *bus_redis_last_error(const struct bus_redis *r);
/* Commands sent and not yet answered. */
size_t bus_redis_pending(const struct bus_redis *r);
uint64_t bus_redis_reconnects(const struct bus_redis *r);

/* Teardown (docs/layout.md, "Teardown"): fail pending commands (their
 * callbacks, and a subscription's, get a NULL reply before `done`: at once,
 * or when the Redis callback this is called from returns), disconnect,
 * free. The state callback does not fire after it; `done` fires once, when
 * the timer and the socket's watcher are closed and the memory is gone. */
void bus_redis_close(struct bus_redis *r, void (*done)(void *arg), void *arg);

/* Parse a Redis URL into its parts (for tests). Returns 0 or -1. The
 * out strings are written into the given buffers. */
struct bus_redis_url {
    char host[256];
    int port;
    char unix_path[256];
    char user[128];
    char pass[256];
    int db;
};
int bus_redis_parse_url(const char *url, struct bus_redis_url *out, char *err, size_t errlen);

#endif
