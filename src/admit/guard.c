#include "admit/guard.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct bucket {
    double tokens;
    double rate; /* tokens per second */
    double burst;
    uint64_t at; /* loop time of the last refill */
    int primed;
};

struct guard {
    const struct cfg *cfg;
    struct bucket *buckets; /* one per configured key, then the open-mode one */
    size_t nbuckets;
    size_t *inflight;
    size_t nservers;
};

struct guard *guard_new(const struct cfg *c, size_t nservers)
{
    struct guard *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->cfg = c;
    g->nbuckets = c->nkeys + 1;
    g->buckets = calloc(g->nbuckets, sizeof(*g->buckets));
    g->inflight = calloc(nservers ? nservers : 1, sizeof(*g->inflight));
    g->nservers = nservers;
    if (!g->buckets || !g->inflight) {
        guard_free(g);
        return NULL;
    }
    for (size_t i = 0; i < g->nbuckets; i++) {
        const struct cfg_api_key *k = i < c->nkeys ? &c->keys[i] : NULL;
        g->buckets[i].rate =
            k && k->calls_per_second > 0 ? k->calls_per_second : c->calls_per_second;
        g->buckets[i].burst = k && k->calls_burst > 0 ? k->calls_burst : c->calls_burst;
    }
    return g;
}

void guard_free(struct guard *g)
{
    if (!g)
        return;
    free(g->buckets);
    free(g->inflight);
    free(g);
}

static struct bucket *bucket_of(struct guard *g, const struct cfg_api_key *key)
{
    if (key && key >= g->cfg->keys && key < g->cfg->keys + g->cfg->nkeys)
        return &g->buckets[key - g->cfg->keys];
    return &g->buckets[g->nbuckets - 1];
}

int guard_take(struct guard *g, const struct cfg_api_key *key, uint64_t now_ms,
               struct guard_info *info)
{
    struct bucket *b = bucket_of(g, key);
    if (!b->primed) {
        b->tokens = b->burst;
        b->at = now_ms;
        b->primed = 1;
    }
    if (now_ms > b->at) {
        b->tokens += (double)(now_ms - b->at) / 1000.0 * b->rate;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->at = now_ms;
    }
    int ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    info->limit = (int)b->burst;
    info->remaining = (int)floor(b->tokens);
    info->reset_s = (int)ceil((b->burst - b->tokens) / b->rate);
    info->retry_after_s = ok ? 0 : (int)ceil((1.0 - b->tokens) / b->rate);
    if (!ok && info->retry_after_s < 1)
        info->retry_after_s = 1;
    return ok ? 0 : -EAGAIN;
}

void guard_refund(struct guard *g, const struct cfg_api_key *key, struct guard_info *info)
{
    struct bucket *b = bucket_of(g, key);
    b->tokens += 1.0;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    info->remaining = (int)floor(b->tokens);
    info->reset_s = (int)ceil((b->burst - b->tokens) / b->rate);
}

int guard_acquire(struct guard *g, size_t server)
{
    if (server >= g->nservers)
        return -EINVAL;
    if (g->inflight[server] >= (size_t)g->cfg->calls_max_inflight)
        return -EBUSY;
    g->inflight[server]++;
    return 0;
}

void guard_release(struct guard *g, size_t server)
{
    if (server < g->nservers && g->inflight[server] > 0)
        g->inflight[server]--;
}

void guard_note(struct guard *g, size_t server, int delta)
{
    if (server >= g->nservers)
        return;
    if (delta > 0)
        g->inflight[server] += (size_t)delta;
    else if (g->inflight[server] >= (size_t)-delta)
        g->inflight[server] -= (size_t)-delta;
    else
        g->inflight[server] = 0;
}

size_t guard_inflight(const struct guard *g, size_t server)
{
    return server < g->nservers ? g->inflight[server] : 0;
}

int guard_max_inflight(const struct guard *g)
{
    return g->cfg->calls_max_inflight;
}
