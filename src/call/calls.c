#include "call/calls.h"

#include <stdlib.h>
#include <string.h>

#include "call/model.h"

struct ended {
    char *id;
    json_t *call;
    uint64_t at;
    struct ended *next; /* newer */
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
    uint64_t now; /* of the event being fed */
};

static void ended_free(struct ended *e)
{
    free(e->id);
    json_decref(e->call);
    free(e);
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
        ended_free(e);
    }
}

static void remember(struct calls *cs, json_t *call)
{
    const char *id = json_string_value(json_object_get(call, "id"));
    struct ended *e = calloc(1, sizeof(*e));
    if (!e || !id || !(e->id = strdup(id))) {
        free(e);
        return;
    }
    e->call = json_incref(call);
    e->at = cs->now;
    if (cs->newest)
        cs->newest->next = e;
    else
        cs->oldest = e;
    cs->newest = e;
    cs->nhistory++;
    trim(cs, cs->now);
}

static void on_call_event(void *ud, const char *type, json_t *event)
{
    struct server_calls *sc = ud;
    struct calls *cs = sc->cs;
    if (!strcmp(type, "call.ended") && cs->cfg->call_history_s > 0 && cs->cfg->call_max_history > 0)
        remember(cs, json_object_get(event, "call"));
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
        ended_free(e);
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

int calls_expect(struct calls *cs, size_t server, const char *call_id, json_t *origination,
                 json_t *variables, uint64_t now_ms)
{
    if (server >= cs->nservers) {
        json_decref(origination);
        json_decref(variables);
        return -1;
    }
    return call_model_expect(cs->servers[server].model, call_id, origination, variables, now_ms);
}

void calls_origination_id(struct calls *cs, size_t server, const char *call_id,
                          const char *action_id)
{
    if (server < cs->nservers && call_id && action_id)
        call_model_origination_id(cs->servers[server].model, call_id, action_id);
}

void calls_mark(struct calls *cs, size_t server)
{
    if (server < cs->nservers)
        call_model_mark(cs->servers[server].model);
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
    return hit ? json_deep_copy(hit->call) : NULL;
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
