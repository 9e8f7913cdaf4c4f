/* call/call: see call.h. */
#include "call/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct call *call_new(const char *id)
{
    struct call *c = calloc(1, sizeof(*c));
    if (!c || !(c->id = strdup(id))) {
        free(c);
        return NULL;
    }
    c->orig_reason = -1;
    return c;
}

void call_free(struct call *c)
{
    for (size_t i = 0; i < c->nlegs; i++) {
        free(c->legs[i].uniqueid);
        free(c->legs[i].channel);
        free(c->legs[i].party);
        free(c->legs[i].member);
    }
    free(c->legs);
    free(c->id);
    free(c->from_num);
    free(c->from_name);
    free(c->dialed);
    free(c->queue);
    free(c->ans_channel);
    free(c->ans_num);
    free(c->ans_name);
    free(c->ans_member);
    json_decref(c->origination);
    json_decref(c->variables);
    json_decref(c->transfer);
    free(c->transferred_from);
    free(c->transferred_to);
    free(c);
}

/* The party of a channel: a Local channel's two halves are one. */
static char *party_of(const char *channel)
{
    const char *semi = !strncmp(channel, "Local/", 6) ? strrchr(channel, ';') : NULL;
    return semi ? strndup(channel, (size_t)(semi - channel)) : strdup(channel);
}

struct leg *call_leg_by_uniqueid(struct call *c, const char *uid)
{
    for (size_t i = 0; uid && i < c->nlegs; i++)
        if (!strcmp(c->legs[i].uniqueid, uid))
            return &c->legs[i];
    return NULL;
}

struct leg *call_leg_by_channel(struct call *c, const char *ch)
{
    for (size_t i = 0; ch && i < c->nlegs; i++)
        if (!strcmp(c->legs[i].channel, ch))
            return &c->legs[i];
    return NULL;
}

struct leg *call_add_leg(struct call *c, const char *uid, const char *channel, const char *state)
{
    struct leg *l = call_leg_by_uniqueid(c, uid);
    if (l)
        return l;
    if (c->nlegs >= CALL_LEGS_MAX)
        return NULL; /* a queue ringing its agents for an hour: not followed past this */
    if (c->nlegs == c->caplegs) {
        size_t n = c->caplegs ? c->caplegs * 2 : 4;
        struct leg *nl = realloc(c->legs, n * sizeof(*nl));
        if (!nl)
            return NULL;
        c->legs = nl;
        c->caplegs = n;
    }
    l = &c->legs[c->nlegs];
    memset(l, 0, sizeof(*l));
    l->uniqueid = strdup(uid);
    l->channel = strdup(channel);
    l->party = party_of(channel);
    if (!l->uniqueid || !l->channel || !l->party) {
        free(l->uniqueid);
        free(l->channel);
        free(l->party);
        return NULL;
    }
    snprintf(l->state, sizeof(l->state), "%s", state ? state : "Down");
    /* the caller; the other half of a Local channel; callee and agent
     * are given by DialBegin and AgentConnect */
    l->role = c->nlegs == 0 ? "caller" : "local";
    c->nlegs++;
    return l;
}

int call_all_gone(const struct call *c)
{
    for (size_t i = 0; i < c->nlegs; i++)
        if (!c->legs[i].gone)
            return 0;
    return c->nlegs > 0;
}

void call_mark_party_loser(struct call *c, const char *party)
{
    for (size_t i = 0; party && i < c->nlegs; i++)
        if (!strcmp(c->legs[i].party, party))
            c->legs[i].loser = 1;
}

const char *call_known(const char *s)
{
    if (!s || !*s || !strcmp(s, "<unknown>") || !strcmp(s, "s"))
        return NULL;
    return s;
}

void call_set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? strdup(v) : NULL;
}
