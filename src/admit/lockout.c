#include "admit/lockout.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"

struct entry {
    char peer[64];
    int failures;
    uint64_t window_start;
    uint64_t blocked_until; /* 0: not locked out */
};

struct lockout {
    struct idmap map; /* hash of the address -> entry */
    int limit;
    uint64_t window_ms;
};

/* FNV-1a; 0 and UINT64_MAX are idmap's own. */
static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h == 0 || h == UINT64_MAX ? 1 : h;
}

struct lockout *lockout_new(int limit, int window_s)
{
    struct lockout *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    idmap_init(&l->map);
    l->limit = limit;
    l->window_ms = (uint64_t)window_s * 1000;
    return l;
}

void lockout_free(struct lockout *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->map.cap; i++)
        if (l->map.keys[i] != 0 && l->map.keys[i] != UINT64_MAX)
            free(l->map.vals[i]);
    idmap_release(&l->map);
    free(l);
}

static int expired(const struct lockout *l, const struct entry *e, uint64_t now)
{
    return now >= e->window_start + l->window_ms && now >= e->blocked_until;
}

/* Drop what no longer counts (when the table is full). */
static void prune(struct lockout *l, uint64_t now)
{
    for (size_t i = 0; i < l->map.cap; i++) {
        uint64_t k = l->map.keys[i];
        if (k == 0 || k == UINT64_MAX)
            continue;
        struct entry *e = l->map.vals[i];
        if (expired(l, e, now))
            free(idmap_del(&l->map, k));
    }
}

/* What is counted: an IPv6 client by its /64 (one subscriber holds a
 * whole /64 and may use any address in it), anything else as it is (an
 * IPv4 client a dual-stack listener names ::ffff:a.b.c.d included: the
 * /64 of those is every IPv4 client at once). */
static const char *group(const char *peer, char *buf, size_t len)
{
    unsigned char a[16];
    if (strncmp(peer, "key:", 4) == 0 || !strchr(peer, ':') || inet_pton(AF_INET6, peer, a) != 1 ||
        IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a))
        return peer;
    memset(a + 8, 0, 8);
    char txt[INET6_ADDRSTRLEN];
    if (!inet_ntop(AF_INET6, a, txt, sizeof(txt)))
        return peer;
    snprintf(buf, len, "%s/64", txt);
    return buf;
}

static struct entry *find(struct lockout *l, const char *peer)
{
    struct entry *e = idmap_get(&l->map, hash(peer));
    return e && !strcmp(e->peer, peer) ? e : NULL;
}

int lockout_blocked(struct lockout *l, const char *peer, uint64_t now_ms)
{
    /* asked on every request, twice: nothing recorded is the usual answer,
     * before an IPv6 peer is parsed for its /64 */
    if (!l->map.used)
        return 0;
    char g[64];
    peer = group(peer, g, sizeof(g));
    struct entry *e = find(l, peer);
    if (!e || e->blocked_until <= now_ms)
        return 0;
    return (int)((e->blocked_until - now_ms + 999) / 1000);
}

int lockout_fail(struct lockout *l, const char *peer, uint64_t now_ms, int *locked)
{
    *locked = 0;
    char g[64];
    peer = group(peer, g, sizeof(g));
    struct entry *e = find(l, peer);
    if (!e) {
        if (l->map.used >= LOCKOUT_MAX_ADDRESSES)
            prune(l, now_ms);
        e = calloc(1, sizeof(*e));
        if (!e || l->map.used >= LOCKOUT_MAX_ADDRESSES || idmap_put(&l->map, hash(peer), e) != 0) {
            free(e);
            return l->limit; /* not tracked: treated as at the limit, never as innocent */
        }
        snprintf(e->peer, sizeof(e->peer), "%s", peer);
        e->window_start = now_ms;
    }
    if (now_ms >= e->window_start + l->window_ms) {
        e->window_start = now_ms;
        e->failures = 0;
    }
    e->failures++;
    if (e->failures >= l->limit && e->blocked_until <= now_ms) {
        e->blocked_until = e->window_start + l->window_ms;
        if (e->blocked_until <= now_ms)
            e->blocked_until = now_ms + l->window_ms;
        *locked = 1;
    }
    return e->failures;
}

unsigned lockout_delay_ms(int failures)
{
    if (failures <= LOCKOUT_FREE_FAILURES)
        return 0;
    int shift = failures - LOCKOUT_FREE_FAILURES - 1;
    unsigned d = shift >= 5 ? LOCKOUT_DELAY_MAX_MS : 100u << shift;
    return d > LOCKOUT_DELAY_MAX_MS ? LOCKOUT_DELAY_MAX_MS : d;
}

size_t lockout_count(const struct lockout *l)
{
    return l->map.used;
}
