#include "admit/idem.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis.h"
#include "core/digest.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/strbuf.h"

/* --- memory ---------------------------------------------------------------------- */

struct waiter {
    idem_cb cb;
    void *ud;
    struct waiter *next;
};

struct entry {
    char *id; /* scope "\x1f" key */
    uint64_t hash64;
    unsigned char hash[IDEM_HASH_LEN];
    int done;
    int status;
    char *body;
    size_t len;
    uint64_t expires;
    struct waiter *waiters, *waiters_tail;
    struct entry *chain;         /* same hash64 */
    struct entry *older, *newer; /* creation order, for eviction */
};

struct idem {
    uv_loop_t *loop;
    const struct cfg *cfg;
    struct bus_redis *redis;
    struct idmap map; /* hash64 -> first entry of its chain */
    size_t count;
    struct entry *oldest, *newest;
    uv_timer_t sweep;
    int evict_logged;
    void (*close_done)(void *);
    void *close_arg;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h ? (h == UINT64_MAX ? 1 : h) : 1; /* 0 and ~0 are reserved by idmap */
}

static char *make_id(const char *scope, const char *key)
{
    size_t a = strlen(scope), b = strlen(key);
    char *id = malloc(a + b + 2);
    if (!id)
        return NULL;
    memcpy(id, scope, a);
    id[a] = '\x1f';
    memcpy(id + a + 1, key, b + 1);
    return id;
}

static struct entry *find(struct idem *s, const char *id, uint64_t h)
{
    for (struct entry *e = idmap_get(&s->map, h); e; e = e->chain)
        if (!strcmp(e->id, id))
            return e;
    return NULL;
}

static void unlink_entry(struct idem *s, struct entry *e)
{
    struct entry *head = idmap_get(&s->map, e->hash64);
    if (head == e) {
        idmap_del(&s->map, e->hash64);
        if (e->chain)
            idmap_put(&s->map, e->hash64, e->chain);
    } else {
        for (struct entry *p = head; p; p = p->chain)
            if (p->chain == e) {
                p->chain = e->chain;
                break;
            }
    }
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    s->count--;
}

static void entry_free(struct entry *e)
{
    while (e->waiters) {
        struct waiter *w = e->waiters;
        e->waiters = w->next;
        free(w);
    }
    free(e->id);
    free(e->body);
    free(e);
}

/* Drop expired finished keys; when over the cap, the oldest finished ones. */
static void sweep(struct idem *s, uint64_t now)
{
    struct entry *e = s->oldest;
    while (e) {
        struct entry *next = e->newer;
        int over = s->count > (size_t)s->cfg->idempotency_max;
        if (e->done && (e->expires <= now || over)) {
            if (over && e->expires > now && !s->evict_logged) {
                log_warn("idempotency keys evicted before their TTL: raise "
                         "AMIBRIDGE_IDEMPOTENCY_MAX or configure Redis",
                         "{s:i}", "max", s->cfg->idempotency_max);
                s->evict_logged = 1;
            }
            unlink_entry(s, e);
            entry_free(e);
        } else if (!over && e->expires > now) {
            break; /* creation order is expiry order: the rest is younger */
        }
        e = next;
    }
}

static void on_sweep(uv_timer_t *t)
{
    struct idem *s = t->data;
    sweep(s, uv_now(s->loop));
}

static void mem_begin(struct idem *s, const char *id, const unsigned char hash[IDEM_HASH_LEN],
                      idem_cb cb, void *ud)
{
    uint64_t now = uv_now(s->loop);
    uint64_t h = fnv1a(id);
    struct entry *e = find(s, id, h);
    if (e && e->done && e->expires <= now) {
        unlink_entry(s, e);
        entry_free(e);
        e = NULL;
    }
    if (e) {
        if (memcmp(e->hash, hash, IDEM_HASH_LEN) != 0) {
            cb(ud, IDEM_MISMATCH, NULL);
            return;
        }
        if (e->done) {
            struct idem_reply r = {e->status, e->body, e->len};
            cb(ud, IDEM_REPLAY, &r);
            return;
        }
        struct waiter *w = calloc(1, sizeof(*w));
        if (!w) {
            cb(ud, IDEM_ERROR, NULL);
            return;
        }
        w->cb = cb;
        w->ud = ud;
        if (e->waiters_tail)
            e->waiters_tail->next = w;
        else
            e->waiters = w;
        e->waiters_tail = w;
        return;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->id = strdup(id))) {
        free(e);
        cb(ud, IDEM_ERROR, NULL);
        return;
    }
    e->hash64 = h;
    memcpy(e->hash, hash, IDEM_HASH_LEN);
    e->expires = now + (uint64_t)s->cfg->idempotency_ttl_s * 1000;
    struct entry *head = idmap_get(&s->map, h);
    if (head) {
        e->chain = head->chain;
        head->chain = e;
    } else if (idmap_put(&s->map, h, e) != 0) {
        entry_free(e);
        cb(ud, IDEM_ERROR, NULL);
        return;
    }
    e->older = s->newest;
    if (s->newest)
        s->newest->newer = e;
    else
        s->oldest = e;
    s->newest = e;
    s->count++;
    if (s->count > (size_t)s->cfg->idempotency_max)
        sweep(s, now);
    cb(ud, IDEM_NEW, NULL);
}

static void mem_finish(struct idem *s, const char *id, int status, const char *body, size_t len)
{
    struct entry *e = find(s, id, fnv1a(id));
    if (!e || e->done)
        return;
    e->body = malloc(len + 1);
    if (e->body) {
        memcpy(e->body, body, len);
        e->body[len] = '\0';
        e->len = len;
    }
    e->status = status;
    e->done = 1;
    struct idem_reply r = {status, e->body ? e->body : "", e->body ? len : 0};
    /* waiters may start new requests from their callback: detach first */
    struct waiter *w = e->waiters;
    e->waiters = e->waiters_tail = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->ud, IDEM_REPLAY, &r);
        free(w);
        w = next;
    }
}

static void mem_abandon(struct idem *s, const char *id)
{
    struct entry *e = find(s, id, fnv1a(id));
    if (!e || e->done)
        return;
    struct waiter *w = e->waiters;
    if (!w) {
        unlink_entry(s, e);
        entry_free(e);
        return;
    }
    /* the first waiter takes the key over; the others keep waiting */
    e->waiters = w->next;
    if (!e->waiters)
        e->waiters_tail = NULL;
    w->cb(w->ud, IDEM_NEW, NULL);
    free(w);
}

/* --- Redis ------------------------------------------------------------------------------ *
 *
 * One key per (API key, Idempotency-Key): "<prefix>:idem:<sha256 hex>", the
 * value "P:<body hash>" while the first request runs (a short TTL, so that a
 * replica killed mid-call does not hold the key for a day) and
 * "D:<body hash>:<status>:<reply body>" once it answered. Later requests
 * poll a pending key until it is done or gone.
 */

struct rop {
    struct idem *s;
    char rkey[160];
    char hashhex[2 * IDEM_HASH_LEN + 1];
    idem_cb cb;
    void *ud;
    uv_timer_t timer;
    int tries;
    uint32_t pending_ms;
};

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void redis_key(const struct idem *s, const char *id, char *out, size_t len)
{
    unsigned char d[DIGEST_SHA256_LEN];
    digest_sha256(id, strlen(id), d);
    char h[2 * DIGEST_SHA256_LEN + 1];
    hex(d, sizeof(d), h);
    snprintf(out, len, "%s:idem:%s", s->cfg->redis_prefix, h);
}

static void rop_closed(uv_handle_t *h)
{
    free(h->data);
}

static void rop_done(struct rop *op, enum idem_outcome o, const struct idem_reply *r)
{
    op->cb(op->ud, o, r);
    uv_close((uv_handle_t *)&op->timer, rop_closed);
}

static void rop_claim(struct rop *op);
static void on_poll(uv_timer_t *t);

static void on_get(void *ud, const redisReply *rep)
{
    struct rop *op = ud;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        rop_done(op, IDEM_ERROR, NULL);
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        /* released or expired since: try to own it */
        if (++op->tries > 100) {
            rop_done(op, IDEM_ERROR, NULL);
            return;
        }
        rop_claim(op);
        return;
    }
    if (rep->type != REDIS_REPLY_STRING || rep->len < 2 + 2 * IDEM_HASH_LEN) {
        rop_done(op, IDEM_ERROR, NULL);
        return;
    }
    if (memcmp(rep->str + 2, op->hashhex, 2 * IDEM_HASH_LEN) != 0) {
        rop_done(op, IDEM_MISMATCH, NULL);
        return;
    }
    if (rep->str[0] == 'D') {
        /* D:<hash>:<status>:<body> */
        const char *p = rep->str + 2 + 2 * IDEM_HASH_LEN;
        char *end = NULL;
        long status = *p == ':' ? strtol(p + 1, &end, 10) : 0;
        if (!end || *end != ':') {
            rop_done(op, IDEM_ERROR, NULL);
            return;
        }
        struct idem_reply r = {(int)status, end + 1, rep->len - (size_t)(end + 1 - rep->str)};
        rop_done(op, IDEM_REPLAY, &r);
        return;
    }
    /* still pending on some replica: look again soon */
    uv_timer_start(&op->timer, on_poll, IDEM_POLL_MS, 0);
}

static void on_poll(uv_timer_t *t)
{
    struct rop *op = t->data;
    if (bus_redis_command(op->s->redis, on_get, op, "GET %s", op->rkey) != 0)
        rop_done(op, IDEM_ERROR, NULL);
}

static void on_set(void *ud, const redisReply *rep)
{
    struct rop *op = ud;
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        rop_done(op, IDEM_ERROR, NULL);
        return;
    }
    if (rep->type == REDIS_REPLY_STATUS) { /* OK: ours */
        rop_done(op, IDEM_NEW, NULL);
        return;
    }
    on_poll(&op->timer); /* taken: read what is there */
}

static void rop_claim(struct rop *op)
{
    if (bus_redis_command(op->s->redis, on_set, op, "SET %s P:%s NX PX %d", op->rkey, op->hashhex,
                          (int)op->pending_ms) != 0)
        rop_done(op, IDEM_ERROR, NULL);
}

static void redis_begin(struct idem *s, const char *id, const unsigned char hash[IDEM_HASH_LEN],
                        uint32_t pending_ms, idem_cb cb, void *ud)
{
    struct rop *op = calloc(1, sizeof(*op));
    if (!op) {
        cb(ud, IDEM_ERROR, NULL);
        return;
    }
    op->s = s;
    op->pending_ms = pending_ms ? pending_ms : 1;
    op->cb = cb;
    op->ud = ud;
    redis_key(s, id, op->rkey, sizeof(op->rkey));
    hex(hash, IDEM_HASH_LEN, op->hashhex);
    uv_timer_init(s->loop, &op->timer);
    op->timer.data = op;
    rop_claim(op);
}

static void redis_finish(struct idem *s, const char *id, const unsigned char hash[IDEM_HASH_LEN],
                         int status, const char *body, size_t len)
{
    char rkey[160], hashhex[2 * IDEM_HASH_LEN + 1];
    redis_key(s, id, rkey, sizeof(rkey));
    hex(hash, IDEM_HASH_LEN, hashhex);
    struct strbuf v;
    strbuf_init(&v, 0);
    if (strbuf_printf(&v, "D:%s:%d:", hashhex, status) == 0 && strbuf_append(&v, body, len) == 0 &&
        bus_redis_command(s->redis, NULL, NULL, "SET %s %b PX %lld", rkey, v.data, v.len,
                          (long long)s->cfg->idempotency_ttl_s * 1000) != 0)
        log_warn("idempotency: the reply could not be stored in Redis; a retry with the same "
                 "key will wait for it until the pending mark expires",
                 NULL);
    strbuf_release(&v);
}

static void redis_abandon(struct idem *s, const char *id)
{
    char rkey[160];
    redis_key(s, id, rkey, sizeof(rkey));
    bus_redis_command(s->redis, NULL, NULL, "DEL %s", rkey);
}

/* --- public -------------------------------------------------------------------------- */

struct idem *idem_new(uv_loop_t *loop, const struct cfg *c, struct bus_redis *redis)
{
    struct idem *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->cfg = c;
    s->redis = redis;
    idmap_init(&s->map);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, IDEM_SWEEP_MS, IDEM_SWEEP_MS);
    uv_unref((uv_handle_t *)&s->sweep);
    return s;
}

static void sweep_closed(uv_handle_t *h)
{
    struct idem *s = h->data;
    void (*done)(void *) = s->close_done;
    void *arg = s->close_arg;
    free(s);
    if (done)
        done(arg);
}

void idem_close(struct idem *s, void (*done)(void *arg), void *arg)
{
    s->close_done = done;
    s->close_arg = arg;
    while (s->oldest) {
        struct entry *e = s->oldest;
        unlink_entry(s, e);
        entry_free(e);
    }
    idmap_release(&s->map);
    uv_close((uv_handle_t *)&s->sweep, sweep_closed);
}

int idem_key_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > IDEM_KEY_MAX)
        return 0;
    for (; *key; key++)
        if (*key < 0x21 || *key > 0x7e)
            return 0;
    return 1;
}

size_t idem_count(const struct idem *s)
{
    return s->count;
}

void idem_begin(struct idem *s, const char *scope, const char *key,
                const unsigned char hash[IDEM_HASH_LEN], uint32_t pending_ms, idem_cb cb, void *ud)
{
    char *id = make_id(scope, key);
    if (!id) {
        cb(ud, IDEM_ERROR, NULL);
        return;
    }
    if (s->redis)
        redis_begin(s, id, hash, pending_ms, cb, ud);
    else
        mem_begin(s, id, hash, cb, ud);
    free(id);
}

void idem_finish(struct idem *s, const char *scope, const char *key,
                 const unsigned char hash[IDEM_HASH_LEN], int status, const char *body, size_t len)
{
    char *id = make_id(scope, key);
    if (id && s->redis)
        redis_finish(s, id, hash, status, body, len);
    else if (id)
        mem_finish(s, id, status, body, len);
    free(id);
}

void idem_abandon(struct idem *s, const char *scope, const char *key)
{
    char *id = make_id(scope, key);
    if (id && s->redis)
        redis_abandon(s, id);
    else if (id)
        mem_abandon(s, id);
    free(id);
}
