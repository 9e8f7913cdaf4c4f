/* call/view: see view.h. */
#include "call/view.h"

#include "call/outcome.h"
#include "core/log.h"

static json_t *time_or_null(uint64_t ms)
{
    if (!ms)
        return json_null();
    char buf[40];
    log_iso_ms(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *secs(uint64_t from, uint64_t to)
{
    return from && to >= from ? json_real((double)(to - from) / 1000.0) : json_null();
}

json_t *call_view_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *party(const char *num, const char *name)
{
    return json_pack("{s:o,s:o}", "number", call_view_str(num), "name", call_view_str(name));
}

json_t *call_view(const struct call *c, const char *server)
{
    json_t *legs = json_array();
    for (size_t i = 0; i < c->nlegs; i++) {
        const struct leg *l = &c->legs[i];
        json_array_append_new(legs, json_pack("{s:s,s:s,s:s,s:s}", "id", l->uniqueid, "channel",
                                              l->channel, "role", l->role, "state",
                                              l->gone ? "Hungup" : l->state));
    }
    json_t *ans = json_null();
    if (c->ans_channel)
        ans = json_pack("{s:s,s:o,s:o,s:o}", "channel", c->ans_channel, "number",
                        call_view_str(c->ans_num), "name", call_view_str(c->ans_name),
                        "queue_member", call_view_str(c->ans_member));
    uint64_t end = c->ended_at;
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id",
                  c->id, "server", server, "state", call_state_name(c), "direction", c->direction,
                  "from", party(c->from_num, c->from_name), "to", party(c->dialed, NULL), "dialed",
                  call_view_str(c->dialed), "queue", call_view_str(c->queue), "answered_by", ans,
                  "on_hold", c->held, "legs", legs, "started_at", time_or_null(c->started),
                  "answered_at", time_or_null(c->answered_at), "ended_at", time_or_null(end),
                  "ring_s", secs(c->started, c->answered_at ? c->answered_at : end), "talk_s",
                  c->answered_at ? secs(c->answered_at, end) : json_null(), "duration_s",
                  secs(c->started, end));
    if (!j)
        return NULL;
    if (end) {
        json_object_set_new(j, "outcome", json_string(call_outcome(c)));
        json_object_set_new(j, "hangup",
                            json_pack("{s:i,s:s,s:s}", "cause", c->cause, "cause_text",
                                      c->cause_text, "by", call_hangup_by(c)));
    } else {
        json_object_set_new(j, "outcome", json_null());
        json_object_set_new(j, "hangup", json_null());
    }
    json_object_set_new(j, "transfer", c->transfer ? json_deep_copy(c->transfer) : json_null());
    json_object_set_new(j, "transferred_from", call_view_str(c->transferred_from));
    json_object_set_new(j, "transferred_to", call_view_str(c->transferred_to));
    json_object_set_new(j, "origination",
                        c->origination ? json_deep_copy(c->origination) : json_null());
    json_object_set_new(j, "variables",
                        c->variables ? json_deep_copy(c->variables) : json_object());
    return j;
}
