/* call/export: see export.h. */
#include "call/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "call/view.h"

json_t *call_export(const struct call *c, const char *server)
{
    json_t *legs = json_array();
    for (size_t i = 0; i < c->nlegs; i++)
        json_array_append_new(
            legs, json_pack("{s:b,s:b}", "gone", c->legs[i].gone, "loser", c->legs[i].loser));
    json_t *in =
        json_pack("{s:i,s:b,s:b,s:I,s:I,s:b,s:s,s:i,s:i,s:s,s:o,s:o}", "st", (int)c->state, "held",
                  c->held, "dialled", c->dialled, "pbx", (json_int_t)c->pbx_answered, "snap",
                  (json_int_t)c->snap_answered, "adopted", c->adopted, "dialstatus", c->dialstatus,
                  "orig_reason", c->orig_reason, "cause", c->cause, "cause_text", c->cause_text,
                  "by", call_view_str(c->by), "legs", legs);
    json_t *call = call_view(c, server);
    if (!in || !call) {
        json_decref(in);
        json_decref(call);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "call", call, "model", in);
}

const char *call_export_id(json_t *exported)
{
    json_t *call = json_object_get(exported, "call"), *in = json_object_get(exported, "model");
    const char *id = json_string_value(json_object_get(call, "id"));
    json_t *legs = json_object_get(call, "legs"), *ilegs = json_object_get(in, "legs");
    if (!id || !json_is_object(in) || !json_is_array(legs) || !json_array_size(legs) ||
        json_array_size(legs) != json_array_size(ilegs))
        return NULL;
    return id;
}

/* "2026-12-04T18:00:12.578Z" in Unix milliseconds, 0 when not that. */
static uint64_t parse_time(json_t *v)
{
    const char *s = json_string_value(v);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    unsigned ms = 0;
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? 0 : (uint64_t)t * 1000 + ms % 1000;
}

/* The literal among choices equal to v (the struct keeps literals, not
 * copies), else otherwise. */
static const char *static_of(const char *v, const char *const *choices, const char *otherwise)
{
    for (; v && *choices; choices++)
        if (!strcmp(v, *choices))
            return *choices;
    return otherwise;
}

static char *dup_str(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int call_import(json_t *exported, struct call **out)
{
    json_t *call = json_object_get(exported, "call"), *in = json_object_get(exported, "model");
    json_t *legs = json_object_get(call, "legs"), *ilegs = json_object_get(in, "legs");
    struct call *c = call_new(json_string_value(json_object_get(call, "id")));
    if (!c)
        return -ENOMEM;
    static const char *const dirs[] = {"inbound", "outbound", "internal", "originated", NULL};
    static const char *const roles[] = {"caller", "callee", "agent", "local", NULL};
    static const char *const bys[] = {"caller", "callee", NULL};
    c->direction =
        static_of(json_string_value(json_object_get(call, "direction")), dirs, "internal");
    json_int_t st = json_integer_value(json_object_get(in, "st"));
    c->state = st == ST_ANSWERED ? ST_ANSWERED : st == ST_RINGING ? ST_RINGING : ST_CREATED;
    c->held = json_is_true(json_object_get(in, "held"));
    c->dialled = json_is_true(json_object_get(in, "dialled"));
    c->pbx_answered = (uint64_t)json_integer_value(json_object_get(in, "pbx"));
    c->snap_answered = (uint64_t)json_integer_value(json_object_get(in, "snap"));
    c->adopted = json_is_true(json_object_get(in, "adopted"));
    const char *ds = json_string_value(json_object_get(in, "dialstatus"));
    snprintf(c->dialstatus, sizeof(c->dialstatus), "%s", ds ? ds : "");
    c->orig_reason = (int)json_integer_value(json_object_get(in, "orig_reason"));
    c->cause = (int)json_integer_value(json_object_get(in, "cause"));
    const char *ct = json_string_value(json_object_get(in, "cause_text"));
    snprintf(c->cause_text, sizeof(c->cause_text), "%s", ct ? ct : "");
    c->by = static_of(json_string_value(json_object_get(in, "by")), bys, NULL);
    c->from_num = dup_str(json_object_get(json_object_get(call, "from"), "number"));
    c->from_name = dup_str(json_object_get(json_object_get(call, "from"), "name"));
    c->dialed = dup_str(json_object_get(call, "dialed"));
    c->queue = dup_str(json_object_get(call, "queue"));
    json_t *ans = json_object_get(call, "answered_by");
    c->ans_channel = dup_str(json_object_get(ans, "channel"));
    c->ans_num = dup_str(json_object_get(ans, "number"));
    c->ans_name = dup_str(json_object_get(ans, "name"));
    c->ans_member = dup_str(json_object_get(ans, "queue_member"));
    c->started = parse_time(json_object_get(call, "started_at"));
    c->answered_at = parse_time(json_object_get(call, "answered_at"));
    json_t *o = json_object_get(call, "origination"), *v = json_object_get(call, "variables"),
           *t = json_object_get(call, "transfer");
    c->origination = json_is_object(o) ? json_deep_copy(o) : NULL;
    c->variables = json_is_object(v) && json_object_size(v) ? json_deep_copy(v) : NULL;
    c->transfer = json_is_object(t) ? json_deep_copy(t) : NULL;
    c->transferred_from = dup_str(json_object_get(call, "transferred_from"));
    c->transferred_to = dup_str(json_object_get(call, "transferred_to"));
    c->stale = 1; /* it may have ended while nobody followed it */
    for (size_t i = 0; i < json_array_size(legs); i++) {
        json_t *lj = json_array_get(legs, i), *li = json_array_get(ilegs, i);
        const char *uid = json_string_value(json_object_get(lj, "id"));
        const char *ch = json_string_value(json_object_get(lj, "channel"));
        struct leg *l = uid && ch ? call_add_leg(c, uid, ch, NULL) : NULL;
        if (!l)
            continue;
        const char *state = json_string_value(json_object_get(lj, "state"));
        snprintf(l->state, sizeof(l->state), "%s",
                 state && strcmp(state, "Hungup") ? state : "Down");
        l->role = static_of(json_string_value(json_object_get(lj, "role")), roles, "local");
        l->gone = json_is_true(json_object_get(li, "gone"));
        l->loser = json_is_true(json_object_get(li, "loser"));
        l->stale = 1;
    }
    if (!c->nlegs || !c->started) {
        call_free(c);
        return -EINVAL;
    }
    *out = c;
    return 0;
}
