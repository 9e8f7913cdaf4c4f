#include "call/calls.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/redis.h"
#include "call/model.h"
#include "core/log.h"

#define CALLS_LIVE_TTL_S (7 * 86400) /* a live call's Redis copy, renewed by each event */
#define CALLS_KEY_MAX    512

/* every outcome of call/model, in the order calls_per_minute lists them */
static const char *const OUTCOMES[] = {"answered",   "missed", "busy",    "no_answer",
                                       "congestion", "failed", "canceled"};
#define NOUTCOMES (sizeof(OUTCOMES) / sizeof(OUTCOMES[0]))

/* the calls that ended in one minute, by outcome */
struct minute {
    uint64_t minute; /* Unix minutes; 0: nothing counted in this slot */
    uint32_t n[NOUTCOMES];
};

/* An ended call kept for GET /v1/calls/{id}: its JSON text, one allocation
 * (a jansson tree of a call weighs several times its text). */
struct ended {
    struct ended *next; /* newer */
    uint64_t at;
    const char *call; /* compact JSON, after the id */
    char id[];
};

struct server_calls {
    struct calls *cs;
    size_t index;
    struct call_model *model;
};

struct calls {
    const struct cfg *cfg;
    calls_publish_fn publish;
    void *ud;
    struct server_calls *servers;
    size_t nservers;
    struct ended *oldest, *newest; /* the history, oldest first */
    size_t nhistory;
    uint64_t now;                         /* of the event being fed */
    struct bus_redis *redis;              /* the copy every replica reads, or NULL */
    uint64_t counting_since;              /* Unix ms: calls_new */
    struct minute minutes[CALLS_MINUTES]; /* a ring: slot minute % CALLS_MINUTES */
    int follower;                         /* calls_set_follower */
};

/* <prefix>:call:<server>:<id>, the export of one call; <prefix>:calls:<server>, the set of the
 * ids of its live calls. */
static void call_key(const struct calls *cs, size_t server, const char *id, char *out)
{
    snprintf(out, CALLS_KEY_MAX, "%s:call:%s:%s", cs->cfg->redis_prefix,
             cs->cfg->servers[server].name, id);
}

static void live_key(const struct calls *cs, size_t server, char *out)
{
    snprintf(out, CALLS_KEY_MAX, "%s:calls:%s", cs->cfg->redis_prefix,
             cs->cfg->servers[server].name);
}

/* The Redis copy follows each event, in order on the one connection (best
 * effort: while Redis is down the copy misses what happens). */
static void store(struct calls *cs, struct server_calls *sc, const char *type, const char *id)
{
    if (!cs->redis || !id || !bus_redis_up(cs->redis))
        return;
    char key[CALLS_KEY_MAX], live[CALLS_KEY_MAX];
    call_key(cs, sc->index, id, key);
    live_key(cs, sc->index, live);
    int ended = !strcmp(type, "call.ended");
    json_t *x = call_model_export(sc->model, id);
    char *txt = x ? json_dumps(x, JSON_COMPACT) : NULL;
    json_decref(x);
    if (!txt)
        return;
    int ttl = ended ? cs->cfg->call_history_s : CALLS_LIVE_TTL_S;
    if (ended && (ttl <= 0 || cs->cfg->call_max_history <= 0))
        bus_redis_command(cs->redis, NULL, NULL, "DEL %s", key);
    else
        bus_redis_command(cs->redis, NULL, NULL, "SET %s %s EX %d", key, txt, ttl);
    if (!strcmp(type, "call.created")) {
        bus_redis_command(cs->redis, NULL, NULL, "SADD %s %s", live, id);
        bus_redis_command(cs->redis, NULL, NULL, "EXPIRE %s %d", live, CALLS_LIVE_TTL_S);
    } else if (ended)
        bus_redis_command(cs->redis, NULL, NULL, "SREM %s %s", live, id);
    free(txt);
}

/* Forget what is past the history's age or count. */
static void trim(struct calls *cs, uint64_t now)
{
    uint64_t keep_ms = (uint64_t)cs->cfg->call_history_s * 1000;
    while (cs->oldest &&
           (cs->nhistory > (size_t)cs->cfg->call_max_history || now - cs->oldest->at > keep_ms)) {
        struct ended *e = cs->oldest;
        cs->oldest = e->next;
        if (!cs->oldest)
            cs->newest = NULL;
        cs->nhistory--;
        free(e);
    }
}

static void remember(struct calls *cs, json_t *call)
{
    const char *id = json_string_value(json_object_get(call, "id"));
    char *txt = id ? json_dumps(call, JSON_COMPACT) : NULL;
    size_t idlen = id ? strlen(id) + 1 : 0, len = txt ? strlen(txt) + 1 : 0;
    struct ended *e = txt ? malloc(sizeof(*e) + idlen + len) : NULL;
    if (!e) {
        free(txt);
        return;
    }
    memcpy(e->id, id, idlen);
    memcpy(e->id + idlen, txt, len);
    free(txt);
    e->call = e->id + idlen;
    e->next = NULL;
    e->at = cs->now;
    if (cs->newest)
        cs->newest->next = e;
    else
        cs->oldest = e;
    cs->newest = e;
    cs->nhistory++;
    trim(cs, cs->now);
}

/* A call that ended at now_ms, counted in its minute. */
static void count_ended(struct calls *cs, const json_t *call, uint64_t now_ms)
{
    const char *o = json_string_value(json_object_get(call, "outcome"));
    size_t k = 0;
    while (o && k < NOUTCOMES && strcmp(OUTCOMES[k], o))
        k++;
    if (!o || k == NOUTCOMES)
        return;
    uint64_t m = now_ms / 60000;
    struct minute *slot = &cs->minutes[m % CALLS_MINUTES];
    if (slot->minute != m)
        *slot = (struct minute){.minute = m};
    slot->n[k]++;
}

void calls_heard(struct calls *cs, const char *type, const json_t *event, uint64_t now_ms)
{
    if (!strcmp(type, "call.ended"))
        count_ended(cs, json_object_get(event, "call"), now_ms);
}

json_t *calls_per_minute(const struct calls *cs, uint64_t now_ms)
{
    char iso[40];
    log_iso_ms(cs->counting_since, iso, sizeof(iso));
    json_t *minutes = json_array(),
           *body = json_pack("{s:s,s:o}", "since", iso, "minutes", minutes);
    if (!body)
        return NULL;
    uint64_t now = now_ms / 60000;
    for (uint64_t m = now - (CALLS_MINUTES - 1); m <= now; m++) {
        const struct minute *slot = &cs->minutes[m % CALLS_MINUTES];
        json_t *by = json_object();
        uint32_t ended = 0;
        for (size_t k = 0; by && k < NOUTCOMES; k++) {
            uint32_t n = slot->minute == m ? slot->n[k] : 0;
            ended += n;
            json_object_set_new(by, OUTCOMES[k], json_integer(n));
        }
        log_iso_ms(m * 60000, iso, sizeof(iso));
        json_t *one = by ? json_pack("{s:s,s:I,s:o}", "start", iso, "ended", (json_int_t)ended,
                                     "outcomes", by)
                         : NULL;
        if (!one || json_array_append_new(minutes, one)) {
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

static void on_call_event(void *ud, const char *type, json_t *event)
{
    struct server_calls *sc = ud;
    struct calls *cs = sc->cs;
    if (!strcmp(type, "call.ended"))
        count_ended(cs, json_object_get(event, "call"), cs->now);
    if (!strcmp(type, "call.ended") && cs->cfg->call_history_s > 0 && cs->cfg->call_max_history > 0)
        remember(cs, json_object_get(event, "call"));
    store(cs, sc, type, json_string_value(json_object_get(json_object_get(event, "call"), "id")));
    if (cs->publish)
        cs->publish(cs->ud, sc->index, type, event);
}

struct calls *calls_new(const struct cfg *c, calls_publish_fn publish, void *ud)
{
    struct calls *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return NULL;
    cs->cfg = c;
    cs->publish = publish;
    cs->ud = ud;
    cs->counting_since = log_wall_ms();
    cs->servers = calloc(c->nservers ? c->nservers : 1, sizeof(*cs->servers));
    if (!cs->servers) {
        free(cs);
        return NULL;
    }
    for (size_t i = 0; i < c->nservers; i++) {
        struct call_model_opts o = {
            .server = c->servers[i].name,
            .trunks = c->call_trunks,
            .ntrunks = c->ncall_trunks,
            .max_live = (size_t)c->call_max_live,
        };
        cs->servers[i] = (struct server_calls){cs, i, NULL};
        if (!(cs->servers[i].model = call_model_new(&o, on_call_event, &cs->servers[i]))) {
            calls_free(cs);
            return NULL;
        }
        cs->nservers++;
    }
    return cs;
}

void calls_free(struct calls *cs)
{
    if (!cs)
        return;
    for (size_t i = 0; i < cs->nservers; i++)
        call_model_free(cs->servers[i].model);
    free(cs->servers);
    while (cs->oldest) {
        struct ended *e = cs->oldest;
        cs->oldest = e->next;
        free(e);
    }
    free(cs);
}

void calls_feed(struct calls *cs, size_t server, const struct ami_msg *ev, uint64_t now_ms)
{
    if (server >= cs->nservers)
        return;
    cs->now = now_ms;
    call_model_feed(cs->servers[server].model, ev, now_ms);
}

void calls_set_follower(struct calls *cs, int follower)
{
    cs->follower = follower;
}

struct told {
    calls_told_fn fn;
    void *ud;
};

static void on_told(void *ud, const redisReply *reply)
{
    (void)reply; /* taken or not: the call goes on */
    struct told t = *(struct told *)ud;
    free(ud);
    t.fn(t.ud);
}

/* A follower tells the leader (best effort: with Redis down the leader
 * follows the call without it). 1 when fn(ud) will run once Redis has
 * answered, 0 when it will not run. */
static int tell_leader(struct calls *cs, json_t *msg, calls_told_fn fn, void *ud)
{
    char *txt = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    struct told *t = fn && txt ? malloc(sizeof(*t)) : NULL;
    if (t)
        *t = (struct told){fn, ud};
    char channel[CALLS_KEY_MAX];
    snprintf(channel, sizeof(channel), CALLS_EXPECT_CHANNEL, cs->cfg->redis_prefix);
    int rc =
        txt ? bus_redis_command(cs->redis, t ? on_told : NULL, t, "PUBLISH %s %s", channel, txt)
            : -ENOMEM;
    free(txt);
    if (rc != 0 || !t) {
        free(t);
        return 0;
    }
    return 1;
}

static int telling(const struct calls *cs)
{
    return cs->follower && cs->redis && bus_redis_up(cs->redis);
}

int calls_expect(struct calls *cs, size_t server, const char *call_id, json_t *origination,
                 json_t *variables, uint64_t now_ms, calls_told_fn told, void *ud)
{
    if (server >= cs->nservers) {
        json_decref(origination);
        json_decref(variables);
        return -1;
    }
    int later = 0;
    if (telling(cs))
        later = tell_leader(cs,
                            json_pack("{s:s,s:s,s:O,s:O}", "server", cs->cfg->servers[server].name,
                                      "id", call_id, "origination",
                                      origination ? origination : json_null(), "variables",
                                      variables ? variables : json_null()),
                            told, ud);
    int rc = call_model_expect(cs->servers[server].model, call_id, origination, variables, now_ms);
    return later ? 1 : rc;
}

void calls_origination_id(struct calls *cs, size_t server, const char *call_id,
                          const char *action_id)
{
    if (server >= cs->nservers || !call_id || !action_id)
        return;
    if (telling(cs))
        tell_leader(cs,
                    json_pack("{s:s,s:s,s:s}", "server", cs->cfg->servers[server].name, "id",
                              call_id, "origination_id", action_id),
                    NULL, NULL);
    call_model_origination_id(cs->servers[server].model, call_id, action_id);
}

void calls_expect_heard(struct calls *cs, const char *msg, size_t len, uint64_t now_ms)
{
    json_t *o = json_loadb(msg, len, 0, NULL);
    const char *name = json_string_value(json_object_get(o, "server"));
    const char *id = json_string_value(json_object_get(o, "id"));
    size_t i = 0;
    while (name && i < cs->nservers && strcmp(cs->cfg->servers[i].name, name))
        i++;
    if (id && name && i < cs->nservers) {
        const char *action_id = json_string_value(json_object_get(o, "origination_id"));
        json_t *orig = json_object_get(o, "origination");
        json_t *vars = json_object_get(o, "variables");
        if (action_id)
            call_model_origination_id(cs->servers[i].model, id, action_id);
        else if (json_is_object(orig))
            call_model_expect(cs->servers[i].model, id, json_deep_copy(orig),
                              json_is_object(vars) ? json_deep_copy(vars) : NULL, now_ms);
        /* heard after the call began: its Redis copy says so at once (a
         * replica that takes over before its next event goes on with it);
         * a call not live has no copy to write (store finds no export) */
        store(cs, &cs->servers[i], "call.updated", id);
    }
    json_decref(o);
}

void calls_mark(struct calls *cs, size_t server)
{
    if (server < cs->nservers)
        call_model_mark(cs->servers[server].model);
}

void calls_forget_live(struct calls *cs)
{
    for (size_t i = 0; i < cs->nservers; i++)
        call_model_forget(cs->servers[i].model);
}

void calls_snapshot(struct calls *cs, size_t server, struct ami_msg *const *items, size_t n,
                    uint64_t now_ms)
{
    if (server >= cs->nservers)
        return;
    cs->now = now_ms;
    call_model_snapshot(cs->servers[server].model, items, n, now_ms);
}

json_t *calls_live(const struct calls *cs)
{
    json_t *all = json_array();
    for (size_t i = 0; all && i < cs->nservers; i++) {
        json_t *one = call_model_live(cs->servers[i].model);
        json_array_extend(all, one);
        json_decref(one);
    }
    return json_pack("{s:o}", "calls", all ? all : json_array());
}

json_t *calls_get(struct calls *cs, const char *id, uint64_t now_ms)
{
    for (size_t i = 0; i < cs->nservers; i++) {
        json_t *c = call_model_get(cs->servers[i].model, id);
        if (c)
            return c;
    }
    trim(cs, now_ms);
    /* the newest first: an id reused by a later call names that one */
    const struct ended *hit = NULL;
    for (const struct ended *e = cs->oldest; e; e = e->next)
        if (!strcmp(e->id, id))
            hit = e;
    return hit ? json_loads(hit->call, 0, NULL) : NULL;
}

void calls_stats(const struct calls *cs, struct calls_stats *st)
{
    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < cs->nservers; i++) {
        struct call_model_stats ms;
        call_model_stats(cs->servers[i].model, &ms);
        st->live += ms.live;
        st->created += ms.created;
        st->ended += ms.ended;
        st->untracked += ms.untracked;
    }
    st->history = cs->nhistory;
}

/* --- the Redis copy ------------------------------------------------------------------------ */

void calls_set_redis(struct calls *cs, struct bus_redis *redis)
{
    cs->redis = redis;
}

/* The values of an MGET (or the members of an SMEMBERS) as JSON. */
static void each_string(const redisReply *rep, void (*fn)(void *ud, const char *s, size_t len),
                        void *ud)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e && e->type == REDIS_REPLY_STRING)
            fn(ud, e->str, e->len);
    }
}

/* MGET of `keys` (n of them, each CALLS_KEY_MAX). */
static int mget(struct bus_redis *r, char (*keys)[CALLS_KEY_MAX], size_t n, bus_redis_cb cb,
                void *ud)
{
    const char **argv = calloc(n + 1, sizeof(*argv));
    size_t *lens = calloc(n + 1, sizeof(*lens));
    int rc = -ENOMEM;
    if (argv && lens) {
        argv[0] = "MGET";
        lens[0] = 4;
        for (size_t i = 0; i < n; i++) {
            argv[i + 1] = keys[i];
            lens[i + 1] = strlen(keys[i]);
        }
        rc = bus_redis_commandargv(r, cb, ud, (int)n + 1, argv, lens);
    }
    free(argv);
    free(lens);
    return rc;
}

struct restore {
    struct calls *cs;
    size_t server;
    void (*done)(void *ud);
    void *ud;
    size_t imported;
    char **ids; /* asked for, in MGET order */
    size_t nids;
};

static void restore_end(struct restore *rs)
{
    if (rs->imported)
        log_info("calls taken over from Redis", "{s:s,s:i}", "server",
                 rs->cs->cfg->servers[rs->server].name, "calls", (int)rs->imported);
    if (rs->done)
        rs->done(rs->ud);
    for (size_t i = 0; i < rs->nids; i++)
        free(rs->ids[i]);
    free(rs->ids);
    free(rs);
}

static void import_one(void *ud, const char *s, size_t len)
{
    struct restore *rs = ud;
    json_t *x = json_loadb(s, len, 0, NULL);
    if (x && call_model_import(rs->cs->servers[rs->server].model, x) == 0)
        rs->imported++;
    json_decref(x);
}

static void on_restore_values(void *ud, const redisReply *rep)
{
    struct restore *rs = ud;
    each_string(rep, import_one, rs);
    /* a live id whose copy expired (its end was never copied): out of the set */
    char live[CALLS_KEY_MAX];
    live_key(rs->cs, rs->server, live);
    for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements && i < rs->nids;
         i++)
        if (rep->element[i]->type == REDIS_REPLY_NIL)
            bus_redis_command(rs->cs->redis, NULL, NULL, "SREM %s %s", live, rs->ids[i]);
    restore_end(rs);
}

/* MGET the copies of the ids an SMEMBERS of `server`'s live set answered;
 * with `kept`, the ids too, in MGET order. 0, or -1 when nothing was sent. */
static int mget_members(struct calls *cs, size_t server, const redisReply *rep, char ***kept,
                        size_t *nkept, bus_redis_cb cb, void *ud)
{
    size_t n = rep && rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
    char(*keys)[CALLS_KEY_MAX] = n ? calloc(n, sizeof(*keys)) : NULL;
    if (kept)
        *kept = n ? calloc(n, sizeof(**kept)) : NULL;
    size_t k = 0;
    for (size_t i = 0; keys && (!kept || *kept) && i < n; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING || (kept && !((*kept)[k] = strdup(e->str))))
            continue;
        call_key(cs, server, e->str, keys[k++]);
        if (nkept)
            *nkept = k;
    }
    int rc = k ? mget(cs->redis, keys, k, cb, ud) : -1;
    free(keys);
    return rc;
}

static void on_restore_ids(void *ud, const redisReply *rep)
{
    struct restore *rs = ud;
    if (mget_members(rs->cs, rs->server, rep, &rs->ids, &rs->nids, on_restore_values, rs) != 0)
        restore_end(rs);
}

void calls_restore(struct calls *cs, size_t server, void (*done)(void *ud), void *ud)
{
    struct restore *rs = calloc(1, sizeof(*rs));
    char live[CALLS_KEY_MAX];
    if (rs && server < cs->nservers && cs->redis) {
        *rs = (struct restore){cs, server, done, ud, 0, NULL, 0};
        live_key(cs, server, live);
        if (bus_redis_command(cs->redis, on_restore_ids, rs, "SMEMBERS %s", live) == 0)
            return;
    }
    free(rs);
    if (done)
        done(ud);
}

int calls_redis_waiting(const struct calls *cs)
{
    return cs->redis && !bus_redis_up(cs->redis);
}

struct remote {
    struct calls *cs;
    calls_remote_fn fn;
    void *ud;
    char *id;      /* one call, or NULL: the live calls */
    size_t server; /* the live calls: the server being read */
    json_t *found;
};

static void remote_end(struct remote *rq)
{
    rq->fn(rq->ud, rq->found);
    json_decref(rq->found);
    free(rq->id);
    free(rq);
}

static void add_call(void *ud, const char *s, size_t len)
{
    struct remote *rq = ud;
    json_t *x = json_loadb(s, len, 0, NULL), *call = json_object_get(x, "call");
    if (json_is_object(call)) {
        if (rq->id && !rq->found)
            rq->found = json_incref(call);
        else if (!rq->id)
            json_array_append(json_object_get(rq->found, "calls"), call);
    }
    json_decref(x);
}

static void next_live(struct remote *rq);

static void on_remote_values(void *ud, const redisReply *rep)
{
    struct remote *rq = ud;
    each_string(rep, add_call, rq);
    if (rq->id) {
        remote_end(rq);
        return;
    }
    rq->server++;
    next_live(rq);
}

static void on_remote_ids(void *ud, const redisReply *rep)
{
    struct remote *rq = ud;
    if (mget_members(rq->cs, rq->server, rep, NULL, NULL, on_remote_values, rq) != 0) {
        rq->server++;
        next_live(rq);
    }
}

static void next_live(struct remote *rq)
{
    char live[CALLS_KEY_MAX];
    while (rq->server < rq->cs->nservers) {
        live_key(rq->cs, rq->server, live);
        if (bus_redis_command(rq->cs->redis, on_remote_ids, rq, "SMEMBERS %s", live) == 0)
            return;
        rq->server++;
    }
    remote_end(rq);
}

int calls_get_remote(struct calls *cs, const char *id, calls_remote_fn fn, void *ud)
{
    if (!cs->redis || !bus_redis_up(cs->redis) || !cs->nservers)
        return -ENOTCONN;
    struct remote *rq = calloc(1, sizeof(*rq));
    char(*keys)[CALLS_KEY_MAX] = calloc(cs->nservers, sizeof(*keys));
    if (!rq || !keys || !(rq->id = strdup(id))) {
        free(keys);
        if (rq)
            free(rq->id);
        free(rq);
        return -ENOMEM;
    }
    *rq = (struct remote){cs, fn, ud, rq->id, 0, NULL};
    for (size_t i = 0; i < cs->nservers; i++)
        call_key(cs, i, id, keys[i]);
    int rc = mget(cs->redis, keys, cs->nservers, on_remote_values, rq);
    free(keys);
    if (rc != 0) {
        free(rq->id);
        free(rq);
    }
    return rc;
}

int calls_live_remote(struct calls *cs, calls_remote_fn fn, void *ud)
{
    if (!cs->redis || !bus_redis_up(cs->redis))
        return -ENOTCONN;
    struct remote *rq = calloc(1, sizeof(*rq));
    if (!rq || !(rq->found = json_pack("{s:[]}", "calls"))) {
        free(rq);
        return -ENOMEM;
    }
    rq->cs = cs;
    rq->fn = fn;
    rq->ud = ud;
    next_live(rq);
    return 0;
}
