#include "admit/sguard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: bucket, in-flight set. ARGV: rate/s, burst, max in flight, slot,
 * hold ms. Returns {verdict (1 ok, 0 rate, -1 in flight), whole tokens
 * left, seconds to wait (refused) or to full (taken)}. Redis' own clock. */
static const char take_script[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local b = redis.call('hmget', KEYS[1], 'tokens', 'ts')\n"
    "local tokens, ts = tonumber(b[1]), tonumber(b[2])\n"
    "if not tokens then tokens, ts = burst, now end\n"
    "tokens = math.min(burst, tokens + (now - ts) * rate / 1000)\n"
    "if tokens < 1 then\n"
    "  return {0, 0, math.ceil((1 - tokens) / rate)}\n"
    "end\n"
    "redis.call('zremrangebyscore', KEYS[2], '-inf', now)\n"
    "if redis.call('zcard', KEYS[2]) >= tonumber(ARGV[3]) then\n"
    "  return {-1, math.floor(tokens), 1}\n"
    "end\n"
    "tokens = tokens - 1\n"
    "redis.call('hset', KEYS[1], 'tokens', tostring(tokens), 'ts', now)\n"
    "redis.call('pexpire', KEYS[1], math.ceil(burst / rate * 1000) + 1000)\n"
    "redis.call('zadd', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])\n"
    "redis.call('pexpire', KEYS[2], tonumber(ARGV[5]) + 1000)\n"
    "return {1, math.floor(tokens), math.ceil((burst - tokens) / rate)}\n";

struct sguard {
    const struct cfg *cfg;
    struct bus_redis *redis;
};

struct pending {
    sguard_cb cb;
    void *ud;
    int burst;
};

struct sguard *sguard_new(const struct cfg *c, struct bus_redis *redis)
{
    struct sguard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->cfg = c;
    g->redis = redis;
    return g;
}

void sguard_free(struct sguard *g)
{
    free(g);
}

int sguard_ready(const struct sguard *g)
{
    return g && bus_redis_up(g->redis);
}

static void on_taken(void *ud, const redisReply *r)
{
    struct pending *p = ud;
    struct guard_info info = {.limit = p->burst};
    enum sguard_verdict v = SGUARD_UNAVAILABLE;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        long long verdict = r->element[0]->integer;
        info.remaining = (int)r->element[1]->integer;
        long long secs = r->element[2]->integer;
        v = verdict == 1 ? SGUARD_OK : verdict == 0 ? SGUARD_RATE : SGUARD_INFLIGHT;
        if (v == SGUARD_OK)
            info.reset_s = (int)secs;
        else
            info.retry_after_s = secs > 0 ? (int)secs : 1;
    }
    p->cb(p->ud, v, &info);
    free(p);
}

int sguard_take(struct sguard *g, const struct cfg_api_key *key, const char *server,
                const char *slot, uint32_t hold_ms, sguard_cb cb, void *ud)
{
    double rate =
        key && key->calls_per_second > 0 ? key->calls_per_second : g->cfg->calls_per_second;
    int burst = key && key->calls_burst > 0 ? key->calls_burst : g->cfg->calls_burst;
    char bucket[192], inflight[192], srate[32], sburst[16], smax[16], shold[16];
    snprintf(bucket, sizeof(bucket), "%s:guard:rate:%s", g->cfg->redis_prefix,
             key ? key->name : "(open)");
    snprintf(inflight, sizeof(inflight), "%s:guard:inflight:%s", g->cfg->redis_prefix, server);
    snprintf(srate, sizeof(srate), "%.6f", rate);
    snprintf(sburst, sizeof(sburst), "%d", burst);
    snprintf(smax, sizeof(smax), "%d", g->cfg->calls_max_inflight);
    snprintf(shold, sizeof(shold), "%u", hold_ms);
    struct pending *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct pending){cb, ud, burst};
    int rc = bus_redis_command(g->redis, on_taken, p, "EVAL %s 2 %s %s %s %s %s %s %s", take_script,
                               bucket, inflight, srate, sburst, smax, slot, shold);
    if (rc) {
        free(p);
        return rc;
    }
    return 0;
}

void sguard_release(struct sguard *g, const char *server, const char *slot)
{
    char inflight[192];
    snprintf(inflight, sizeof(inflight), "%s:guard:inflight:%s", g->cfg->redis_prefix, server);
    bus_redis_command(g->redis, NULL, NULL, "ZREM %s %s", inflight, slot);
}

void sguard_slot_name(char *out, const char *instance)
{
    static uint64_t n;
    snprintf(out, SGUARD_SLOT_MAX, "%.24s-%llu", instance, (unsigned long long)++n);
}
