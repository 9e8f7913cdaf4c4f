/* api/convert: AMI replies as the JSON of the channel and queue routes.
 *
 * Pure functions: AMI messages in, new JSON out, no I/O. AMI sends every
 * value as text; here numbers become JSON numbers, flags booleans, and the
 * values Asterisk prints for "nothing" (an empty value, a caller id of
 * `<unknown>`) become null, so that clients need no AMI knowledge.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "core/strbuf.h"
#include "core/utf8.h"

#define STATE_NAME_MAX 32 /* longer than any ast_state2str() text */

/* ast_state2str() codes 0..9, as the API names them. */
static const char *const channel_states[] = {
    "down",    "rsrvd", "offhook", "dialing",         "ring",
    "ringing", "up",    "busy",    "dialing_offhook", "pre_ring",
};
#define NCHANNEL_STATES (sizeof(channel_states) / sizeof(channel_states[0]))

/* enum ast_device_state 0..8, the Status of a queue member. */
static const char *const member_states[] = {
    "unknown",     "not_inuse", "inuse",     "busy",   "invalid",
    "unavailable", "ringing",   "ringinuse", "onhold",
};
#define NMEMBER_STATES (sizeof(member_states) / sizeof(member_states[0]))

/* A decimal integer and nothing else (no blanks, no sign but '-'). */
static int parse_int(const char *v, long long *out)
{
    if (!v || !*v || !(isdigit((unsigned char)*v) || (*v == '-' && isdigit((unsigned char)v[1]))))
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = n;
    return 0;
}

json_t *api_json_text(const char *v)
{
    if (!v || !*v)
        return json_null();
    size_t len = strlen(v);
    if (utf8_valid(v, len))
        return json_stringn(v, len);
    struct strbuf sb;
    strbuf_init(&sb, 0);
    json_t *j = utf8_repair(v, len, &sb) == 0 ? json_stringn(sb.data ? sb.data : "", sb.len) : NULL;
    strbuf_release(&sb);
    return j ? j : json_null();
}

/* Caller id parts: Asterisk prints a missing one as "<unknown>" (channel
 * snapshots) or "unknown" (QueueEntry). */
static json_t *callerid_text(const char *v, int bare_unknown)
{
    if (v && (!strcmp(v, "<unknown>") || (bare_unknown && !strcmp(v, "unknown"))))
        return json_null();
    return api_json_text(v);
}

static json_t *int_value(const char *v)
{
    long long n;
    return parse_int(v, &n) == 0 ? json_integer((json_int_t)n) : json_null();
}

/* A count or a time that is 0 when it never happened: null then. */
static json_t *int_or_null_if_zero(const char *v)
{
    long long n;
    return parse_int(v, &n) == 0 && n != 0 ? json_integer((json_int_t)n) : json_null();
}

static json_t *real_value(const char *v)
{
    if (!v || !*v)
        return json_null();
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    return errno || *end ? json_null() : json_real(d);
}

/* "0"/"1" flags; anything else that is a number counts as true. */
static json_t *bool_value(const char *v)
{
    long long n;
    return json_boolean(parse_int(v, &n) == 0 && n != 0);
}

static json_t *callerid_object(const struct ami_msg *m, const char *num_key, const char *name_key,
                               int bare_unknown)
{
    json_t *o = json_object();
    json_object_set_new(o, "number", callerid_text(ami_msg_get(m, num_key), bare_unknown));
    json_object_set_new(o, "name", callerid_text(ami_msg_get(m, name_key), bare_unknown));
    return o;
}

long api_duration_seconds(const char *hms)
{
    if (!hms)
        return -1;
    long part[3];
    const char *s = hms;
    for (int i = 0; i < 3; i++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end - s > 9 || (i > 0 && (end - s != 2 || n > 59)))
            return -1;
        part[i] = n;
        s = end;
        if (i < 2 && *s++ != ':')
            return -1;
    }
    if (*s)
        return -1;
    return part[0] * 3600 + part[1] * 60 + part[2];
}

const char *api_channel_state_name(const char *desc, const char *code)
{
    if (desc && *desc && strlen(desc) < STATE_NAME_MAX) {
        char norm[STATE_NAME_MAX];
        size_t i = 0;
        for (; desc[i]; i++)
            norm[i] =
                (desc[i] == ' ' || desc[i] == '-') ? '_' : (char)tolower((unsigned char)desc[i]);
        norm[i] = '\0';
        for (size_t k = 0; k < NCHANNEL_STATES; k++)
            if (!strcmp(norm, channel_states[k]))
                return channel_states[k];
    }
    long long n;
    if (parse_int(code, &n) == 0 && n >= 0 && (size_t)n < NCHANNEL_STATES)
        return channel_states[n];
    return "unknown";
}

const char *api_member_state_name(long code)
{
    return code >= 0 && (size_t)code < NMEMBER_STATES ? member_states[code] : "unknown";
}

json_t *api_channel_json(const struct ami_msg *ev)
{
    const char *code = ami_msg_get(ev, "ChannelState");
    long dur = api_duration_seconds(ami_msg_get(ev, "Duration"));
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "channel", api_json_text(ami_msg_get(ev, "Channel")));
    json_object_set_new(
        o, "state", json_string(api_channel_state_name(ami_msg_get(ev, "ChannelStateDesc"), code)));
    json_object_set_new(o, "state_code", int_value(code));
    json_object_set_new(o, "caller_id", callerid_object(ev, "CallerIDNum", "CallerIDName", 0));
    json_object_set_new(o, "connected_line",
                        callerid_object(ev, "ConnectedLineNum", "ConnectedLineName", 0));
    json_object_set_new(o, "context", api_json_text(ami_msg_get(ev, "Context")));
    json_object_set_new(o, "exten", api_json_text(ami_msg_get(ev, "Exten")));
    json_object_set_new(o, "priority", int_value(ami_msg_get(ev, "Priority")));
    json_object_set_new(o, "application", api_json_text(ami_msg_get(ev, "Application")));
    json_object_set_new(o, "application_data", api_json_text(ami_msg_get(ev, "ApplicationData")));
    json_object_set_new(o, "duration_s", dur >= 0 ? json_integer(dur) : json_null());
    json_object_set_new(o, "uniqueid", api_json_text(ami_msg_get(ev, "Uniqueid")));
    json_object_set_new(o, "linkedid", api_json_text(ami_msg_get(ev, "Linkedid")));
    json_object_set_new(o, "bridge_id", api_json_text(ami_msg_get(ev, "BridgeId")));
    json_object_set_new(o, "account", api_json_text(ami_msg_get(ev, "AccountCode")));
    return o;
}

json_t *api_queue_member_json(const struct ami_msg *ev)
{
    long long status = -1;
    const char *st = ami_msg_get(ev, "Status");
    if (parse_int(st, &status) != 0)
        status = -1;
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "interface", api_json_text(ami_msg_get(ev, "Location")));
    json_object_set_new(o, "name", api_json_text(ami_msg_get(ev, "Name")));
    json_object_set_new(o, "state_interface", api_json_text(ami_msg_get(ev, "StateInterface")));
    json_object_set_new(o, "membership", api_json_text(ami_msg_get(ev, "Membership")));
    json_object_set_new(o, "state", json_string(api_member_state_name((long)status)));
    json_object_set_new(o, "state_code", int_value(st));
    json_object_set_new(o, "paused", bool_value(ami_msg_get(ev, "Paused")));
    json_object_set_new(o, "paused_reason", api_json_text(ami_msg_get(ev, "PausedReason")));
    json_object_set_new(o, "penalty", int_value(ami_msg_get(ev, "Penalty")));
    json_object_set_new(o, "calls_taken", int_value(ami_msg_get(ev, "CallsTaken")));
    json_object_set_new(o, "last_call", int_or_null_if_zero(ami_msg_get(ev, "LastCall")));
    json_object_set_new(o, "in_call", bool_value(ami_msg_get(ev, "InCall")));
    return o;
}

json_t *api_queue_caller_json(const struct ami_msg *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "position", int_value(ami_msg_get(ev, "Position")));
    json_object_set_new(o, "channel", api_json_text(ami_msg_get(ev, "Channel")));
    json_object_set_new(o, "uniqueid", api_json_text(ami_msg_get(ev, "Uniqueid")));
    json_object_set_new(o, "caller_id", callerid_object(ev, "CallerIDNum", "CallerIDName", 1));
    json_object_set_new(o, "wait_s", int_value(ami_msg_get(ev, "Wait")));
    return o;
}

/* A QueueParams event as a Queue object with empty member and caller lists
 * and the QueueSummary figures still unknown. */
static json_t *queue_from_params(const struct ami_msg *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "name", api_json_text(ami_msg_get(ev, "Queue")));
    json_object_set_new(o, "strategy", api_json_text(ami_msg_get(ev, "Strategy")));
    json_object_set_new(o, "calls", int_value(ami_msg_get(ev, "Calls")));
    json_object_set_new(o, "holdtime", int_value(ami_msg_get(ev, "Holdtime")));
    json_object_set_new(o, "talktime", int_value(ami_msg_get(ev, "TalkTime")));
    json_object_set_new(o, "completed", int_value(ami_msg_get(ev, "Completed")));
    json_object_set_new(o, "abandoned", int_value(ami_msg_get(ev, "Abandoned")));
    json_object_set_new(o, "service_level", int_value(ami_msg_get(ev, "ServiceLevel")));
    json_object_set_new(o, "service_level_perf", real_value(ami_msg_get(ev, "ServicelevelPerf")));
    json_object_set_new(o, "logged_in", json_null());
    json_object_set_new(o, "available", json_null());
    json_object_set_new(o, "longest_holdtime", json_null());
    json_object_set_new(o, "members", json_array());
    json_object_set_new(o, "callers", json_array());
    return o;
}

/* The queue of this name among those built so far (borrowed), or NULL. */
static json_t *queue_named(json_t *queues, const char *name)
{
    size_t i;
    json_t *q;
    if (!name)
        return NULL;
    json_array_foreach (queues, i, q) {
        const char *n = json_string_value(json_object_get(q, "name"));
        if (n && !strcmp(n, name))
            return q;
    }
    return NULL;
}

static int event_is(const struct ami_msg *m, const char *name)
{
    return ami_msg_kind(m) == AMI_MSG_EVENT && ami_msg_is(m, "Event", name);
}

json_t *api_queues_json(struct ami_msg *const *status, size_t nstatus)
{
    json_t *queues = json_array();
    if (!queues)
        return NULL;
    for (size_t i = 0; i < nstatus; i++) {
        const struct ami_msg *ev = status[i];
        if (event_is(ev, "QueueParams")) {
            json_array_append_new(queues, queue_from_params(ev));
            continue;
        }
        /* members and callers follow their queue's QueueParams */
        json_t *q = queue_named(queues, ami_msg_get(ev, "Queue"));
        if (!q)
            continue;
        if (event_is(ev, "QueueMember"))
            json_array_append_new(json_object_get(q, "members"), api_queue_member_json(ev));
        else if (event_is(ev, "QueueEntry"))
            json_array_append_new(json_object_get(q, "callers"), api_queue_caller_json(ev));
    }
    return queues;
}

void api_queues_add_summary(json_t *queues, struct ami_msg *const *summary, size_t nsummary)
{
    for (size_t i = 0; i < nsummary; i++) {
        const struct ami_msg *ev = summary[i];
        json_t *q =
            event_is(ev, "QueueSummary") ? queue_named(queues, ami_msg_get(ev, "Queue")) : NULL;
        if (!q)
            continue;
        json_object_set_new(q, "logged_in", int_value(ami_msg_get(ev, "LoggedIn")));
        json_object_set_new(q, "available", int_value(ami_msg_get(ev, "Available")));
        json_object_set_new(q, "longest_holdtime", int_value(ami_msg_get(ev, "LongestHoldTime")));
    }
}
