#include "bus/lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"

/* Take the lease when nobody holds it, or when an earlier run of this very
 * instance does (a replica restarted with its AMIBRIDGE_INSTANCE_ID after a
 * crash need not wait for its own lease to expire): the value carries a
 * fresh fencing number. Returns {1, value} when taken, {0, holder, pttl}
 * otherwise. */
static const char acquire_script[] = "local v = redis.call('get', KEYS[1])\n"
                                     "local mine = ARGV[1] .. ':'\n"
                                     "if v and string.sub(v, 1, string.len(mine)) ~= mine then\n"
                                     "  return {0, v, redis.call('pttl', KEYS[1])}\n"
                                     "end\n"
                                     "local n = redis.call('incr', KEYS[2])\n"
                                     "v = ARGV[1] .. ':' .. n\n"
                                     "redis.call('set', KEYS[1], v, 'PX', ARGV[2])\n"
                                     "return {1, v, tonumber(ARGV[2])}\n";

/* Renew when still ours: 1; the holder when another holds it; 0 when
 * nobody does (expired, or Redis lost it). */
static const char renew_script[] = "local v = redis.call('get', KEYS[1])\n"
                                   "if v == ARGV[1] then\n"
                                   "  return redis.call('pexpire', KEYS[1], ARGV[2])\n"
                                   "end\n"
                                   "if v then return v end\n"
                                   "return 0\n";

/* Give it up when still ours. */
static const char release_script[] = "if redis.call('get', KEYS[1]) == ARGV[1] then\n"
                                     "  return redis.call('del', KEYS[1])\n"
                                     "end\n"
                                     "return 0\n";

const char bus_lease_fence_script[] =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return -1 end\n"
    "local n, err = 0, nil\n"
    "for i = 4, #ARGV - 1, 2 do\n"
    "  redis.call('publish', ARGV[i], ARGV[i + 1])\n"
    "  if ARGV[2] ~= '' then\n"
    "    local r = redis.pcall('xadd', ARGV[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[i + "
    "1])\n"
    "    if type(r) == 'table' and r.err and not err then err = r end\n"
    "  end\n"
    "  n = n + 1\n"
    "end\n"
    "if err then return err end\n"
    "return n\n";

enum role { ROLE_UNSURE = 0, ROLE_LEADER, ROLE_FOLLOWER };

struct bus_lease {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct bus_redis *redis;
    bus_lease_cb cb;
    void *ud;
    uv_timer_t timer;
    char key[128], fence_key[160];
    char token[LEASE_VALUE_MAX];  /* ours, while leader */
    char holder[LEASE_VALUE_MAX]; /* as last seen */
    enum role role;
    long long last_fence; /* the fencing number of our last lease, 0 before the first */
    int asking;           /* a command is on its way */
    uint64_t renewed_at;  /* loop time of the last renew (or the take-over) that Redis took */
    uint64_t holder_seen; /* loop time holder/holder_since were read */
    int64_t holder_pttl;  /* the lease's remaining time then */
    uint64_t changes;
    void (*release_done)(void *);
    void *release_arg;
    int releasing;      /* the release is on its way */
    int closing;        /* bus_lease_close() was called */
    int closes_pending; /* the timer, and each command on its way */
    void (*close_done)(void *);
    void *close_arg;
};

static void lease_unhold(struct bus_lease *l);

static void become(struct bus_lease *l, enum role role, enum bus_lease_change ch, const char *why)
{
    if (l->role == role)
        return;
    int was_leader = l->role == ROLE_LEADER;
    l->role = role;
    if (role == ROLE_LEADER || was_leader) {
        l->changes++;
        metrics_inc(METRIC_LEADER_CHANGES, NULL, NULL, 1);
    }
    if (role == ROLE_LEADER)
        log_info("leader: this replica publishes the event stream now", "{s:s,s:s,s:b}", "lease",
                 l->token, "instance", l->cfg->instance_id, "resumes", ch == BUS_LEASE_LEADER);
    else if (was_leader)
        log_warn("leader: this replica stepped down", "{s:s,s:s}", "reason", why, "instance",
                 l->cfg->instance_id);
    if (role != ROLE_LEADER)
        l->token[0] = '\0';
    metrics_set(METRIC_LEADER, NULL, NULL, NULL, role == ROLE_LEADER);
    if (l->cb)
        l->cb(l->ud, ch);
}

static void on_timer(uv_timer_t *t);

static long long fence_of(const char *value)
{
    const char *colon = strrchr(value, ':');
    return colon ? atoll(colon + 1) : 0;
}

static void on_acquire(void *ud, const redisReply *r)
{
    struct bus_lease *l = ud;
    l->asking = 0;
    if (l->closing) {
        lease_unhold(l);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return;
    snprintf(l->holder, sizeof(l->holder), "%s", r->element[1]->str);
    l->holder_seen = uv_now(l->loop);
    l->holder_pttl = r->element[2]->type == REDIS_REPLY_INTEGER ? r->element[2]->integer : -1;
    if (r->element[0]->integer == 1) {
        long long n = fence_of(r->element[1]->str);
        /* ours again with the very next number, or the first number of a
         * Redis that came back empty: nobody led in between */
        int first = l->last_fence == 0 && l->role == ROLE_UNSURE;
        int next = l->last_fence && (n == l->last_fence + 1 || n == 1);
        enum bus_lease_change ch = first || next ? BUS_LEASE_LEADER : BUS_LEASE_LEADER_FRESH;
        snprintf(l->token, sizeof(l->token), "%s", r->element[1]->str);
        l->last_fence = n;
        l->renewed_at = uv_now(l->loop);
        become(l, ROLE_LEADER, ch, "took the lease");
    } else {
        become(l, ROLE_FOLLOWER, BUS_LEASE_FOLLOWER, "the lease is held by another replica");
    }
}

static void on_renew(void *ud, const redisReply *r)
{
    struct bus_lease *l = ud;
    l->asking = 0;
    if (l->closing) {
        lease_unhold(l);
        return;
    }
    if (!r || l->role != ROLE_LEADER)
        return; /* Redis down: the local deadline decides */
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        l->renewed_at = uv_now(l->loop);
        l->holder_seen = l->renewed_at;
        l->holder_pttl = l->cfg->leader_ttl_ms;
        snprintf(l->holder, sizeof(l->holder), "%s", l->token);
    } else if (r->type == REDIS_REPLY_STRING) {
        snprintf(l->holder, sizeof(l->holder), "%s", r->str);
        become(l, ROLE_FOLLOWER, BUS_LEASE_FOLLOWER, "another replica took the lease");
    } else {
        /* nobody holds it (Redis restarted, or it expired): try again now */
        become(l, ROLE_UNSURE, BUS_LEASE_UNSURE, "the lease vanished from Redis");
        uv_timer_start(&l->timer, on_timer, 0, (uint64_t)l->cfg->leader_ttl_ms / 3);
    }
}

static void tick(struct bus_lease *l)
{
    uint64_t now = uv_now(l->loop);
    /* a leader that could not renew for a whole ttl is no leader any more,
     * whatever Redis says later: step down before anything else runs */
    if (l->role == ROLE_LEADER && now - l->renewed_at >= (uint64_t)l->cfg->leader_ttl_ms)
        become(l, ROLE_UNSURE, BUS_LEASE_UNSURE, "could not renew the lease in time");
    if (l->asking || !bus_redis_up(l->redis))
        return;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", l->cfg->leader_ttl_ms);
    int rc;
    if (l->role == ROLE_LEADER)
        rc = bus_redis_command(l->redis, on_renew, l, "EVAL %s 1 %s %s %s", renew_script, l->key,
                               l->token, ttl);
    else
        rc = bus_redis_command(l->redis, on_acquire, l, "EVAL %s 2 %s %s %s %s", acquire_script,
                               l->key, l->fence_key, l->cfg->instance_id, ttl);
    l->asking = rc == 0;
}

static void on_timer(uv_timer_t *t)
{
    tick(t->data);
}

struct bus_lease *bus_lease_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis,
                                bus_lease_cb cb, void *ud)
{
    struct bus_lease *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->loop = loop;
    l->cfg = c;
    l->redis = redis;
    l->cb = cb;
    l->ud = ud;
    l->holder_pttl = -1;
    snprintf(l->key, sizeof(l->key), "%s:leader", c->redis_prefix);
    snprintf(l->fence_key, sizeof(l->fence_key), "%s:leader:fence", c->redis_prefix);
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uint64_t every = (uint64_t)c->leader_ttl_ms / 3;
    uv_timer_start(&l->timer, on_timer, every, every);
    metrics_set(METRIC_LEADER, NULL, NULL, NULL, 0);
    return l;
}

void bus_lease_redis_state(void *ud, int up)
{
    struct bus_lease *l = ud;
    if (l->closing)
        return;
    if (!up) {
        l->asking = 0; /* the pending command failed with the connection */
        return;
    }
    tick(l);
}

int bus_lease_is_leader(const struct bus_lease *l)
{
    return l->role == ROLE_LEADER;
}

int bus_lease_follower(const struct bus_lease *l)
{
    return l->role == ROLE_FOLLOWER;
}

const char *bus_lease_token(const struct bus_lease *l)
{
    return l->token;
}

const char *bus_lease_key(const struct bus_lease *l)
{
    return l->key;
}

const char *bus_lease_holder(const struct bus_lease *l)
{
    return l->holder;
}

int64_t bus_lease_age_ms(const struct bus_lease *l)
{
    if (!l->holder[0] || l->holder_pttl < 0)
        return -1;
    /* age = ttl - remaining, as of when it was read, plus the time since */
    int64_t age = (int64_t)l->cfg->leader_ttl_ms - l->holder_pttl +
                  (int64_t)(uv_now(l->loop) - l->holder_seen);
    return age < 0 ? 0 : age;
}

uint64_t bus_lease_changes(const struct bus_lease *l)
{
    return l->changes;
}

static void on_released(void *ud, const redisReply *r)
{
    (void)r;
    struct bus_lease *l = ud;
    int sent = l->releasing;
    l->releasing = 0;
    if (l->closing) {
        if (sent)
            lease_unhold(l);
        return;
    }
    void (*done)(void *) = l->release_done;
    l->release_done = NULL;
    if (done)
        done(l->release_arg);
}

void bus_lease_release(struct bus_lease *l, void (*done)(void *), void *arg)
{
    uv_timer_stop(&l->timer);
    int was = l->role == ROLE_LEADER;
    char token[LEASE_VALUE_MAX];
    snprintf(token, sizeof(token), "%s", l->token);
    if (was)
        become(l, ROLE_UNSURE, BUS_LEASE_UNSURE, "shutting down");
    l->release_done = done;
    l->release_arg = arg;
    if (was && bus_redis_command(l->redis, on_released, l, "EVAL %s 1 %s %s", release_script,
                                 l->key, token) == 0) {
        l->releasing = 1;
        log_info("leader: lease released", "{s:s}", "lease", token);
        return;
    }
    on_released(l, NULL);
}

/* One of the things closing has ended: the last one frees. */
static void lease_unhold(struct bus_lease *l)
{
    if (--l->closes_pending > 0)
        return;
    void (*done)(void *) = l->close_done;
    void *arg = l->close_arg;
    free(l);
    if (done)
        done(arg);
}

static void lease_closed(uv_handle_t *h)
{
    lease_unhold(h->data);
}

/* Commands on their way name the lease: it is freed when each has been
 * answered (or failed, as bus_redis_close() fails them). */
void bus_lease_close(struct bus_lease *l, void (*done)(void *arg), void *arg)
{
    l->closing = 1;
    l->close_done = done;
    l->close_arg = arg;
    l->cb = NULL;
    l->release_done = NULL;
    l->closes_pending = 1 + l->asking + l->releasing;
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, lease_closed);
}
