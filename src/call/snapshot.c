/* call/snapshot: what a reconnect to AMI changes (call_model_mark,
 * call_model_snapshot, call_model_forget in model.h). Calls and legs
 * known before the mark are stale until an event or the snapshot (the
 * CoreShowChannel items) shows them alive; the snapshot ends those it does
 * not list, adopts the calls that began meanwhile and catches up on what
 * the listed ones became.
 */
#include <stdio.h>
#include <string.h>

#include "call/model_internal.h"

/* "HH:MM:SS" (CoreShowChannel's Duration) in milliseconds, 0 when not that. */
static uint64_t duration_ms(const char *d)
{
    unsigned h, mi, se;
    if (!d || sscanf(d, "%u:%u:%u", &h, &mi, &se) != 3)
        return 0;
    return ((uint64_t)h * 3600 + mi * 60 + se) * 1000;
}

void call_model_forget(struct call_model *m)
{
    model_drop_all(m);
    model_forget_ended(m);
    m->marked = 0;
}

void call_model_mark(struct call_model *m)
{
    model_forget_ended(m);
    m->marked = 1;
    for (struct call *c = m->calls.head; c; c = c->next) {
        c->stale = 1;
        for (size_t i = 0; i < c->nlegs; i++)
            c->legs[i].stale = 1;
    }
}

/* One CoreShowChannel item: its call (adopted when not known: it began
 * while amibridge was not connected) and its leg are seen. */
static void apply_item(struct call_model *m, const struct ami_msg *it, uint64_t now)
{
    const char *lid = ami_msg_get(it, "Linkedid"), *uid = ami_msg_get(it, "Uniqueid");
    const char *ch = ami_msg_get(it, "Channel"), *st = ami_msg_get(it, "ChannelStateDesc");
    if (!lid || !*lid || !uid || !ch)
        return;
    struct call *c = call_index_find(&m->calls, lid);
    int fresh = 0;
    if (!c && model_ended_since_mark(m, lid))
        return; /* listed, then hung up before the list came */
    if (!c) {
        if (!(c = model_create(m, it, lid, now)))
            return;
        c->adopted = 1;
        fresh = 1;
    }
    c->seen = 1;
    struct leg *l = call_leg_by_uniqueid(c, uid);
    if (l && !l->stale)
        return; /* heard of since the reconnect: newer than this list */
    if (!l)
        l = call_add_leg(c, uid, ch, st);
    if (fresh)
        model_emit(m, c, "call.created", now); /* with its first leg */
    if (!l)
        return;
    l->seen = 1;
    if (st)
        snprintf(l->state, sizeof(l->state), "%s", st);
    /* a call found here started as long ago as its oldest channel */
    uint64_t age = duration_ms(ami_msg_get(it, "Duration"));
    if (c->adopted && age && age < now && now - age < c->started)
        c->started = now - age;
}

/* A listed call as its legs show it now: channels of two parties up are
 * talking. */
static void catch_up(struct call_model *m, struct call *c, uint64_t now)
{
    int ring = 0, two = 0;
    const char *up = NULL;
    for (size_t i = 0; i < c->nlegs; i++) {
        const struct leg *l = &c->legs[i];
        if (l->gone)
            continue;
        ring |= !strcmp(l->state, "Ringing");
        if (!strcmp(l->state, "Up")) {
            if (!up)
                up = l->party;
            else if (strcmp(up, l->party) != 0)
                two = 1;
        }
    }
    if (c->state != ST_ANSWERED && two && c->adopted)
        model_answered(m, c, now); /* nothing better is known of a call found here */
    else if (c->state != ST_ANSWERED && two && !c->snap_answered)
        c->snap_answered = now; /* its answer may still be on its way: see model_end */
    else if (ring)
        model_ringing(m, c, now);
    else if (up)
        model_pbx_answer(c, now);
}

void call_model_snapshot(struct call_model *m, struct ami_msg *const *items, size_t n, uint64_t now)
{
    if (!m->marked)
        call_model_mark(m);
    for (struct call *c = m->calls.head; c; c = c->next) {
        c->seen = 0;
        for (size_t i = 0; i < c->nlegs; i++)
            c->legs[i].seen = 0;
    }
    /* each call's first channel (Uniqueid = Linkedid) first: the caller of
     * a call found here is its first channel, not the first one listed */
    for (size_t k = 0; k < 2 * n; k++) {
        const struct ami_msg *it = items[k % n];
        const char *lid = ami_msg_get(it, "Linkedid"), *uid = ami_msg_get(it, "Uniqueid");
        if (lid && uid && (k < n) != !strcmp(lid, uid))
            continue;
        apply_item(m, it, now);
    }
    struct call *next;
    for (struct call *c = m->calls.head; c; c = next) {
        next = c->next;
        if (!c->seen && c->stale) {
            /* its hang-ups happened while amibridge was not connected */
            c->lost = 1;
            c->cause = 0;
            snprintf(c->cause_text, sizeof(c->cause_text), "%s",
                     "ended while amibridge was not connected to AMI");
            for (size_t i = 0; i < c->nlegs; i++)
                c->legs[i].gone = 1;
            model_end(m, c, now);
            continue;
        }
        if (!c->seen)
            continue; /* heard of since the reconnect, not listed yet */
        for (size_t i = 0; i < c->nlegs; i++)
            if (!c->legs[i].seen && c->legs[i].stale)
                c->legs[i].gone = 1;
        if (call_all_gone(c))
            model_end(m, c, now);
        else
            catch_up(m, c, now);
    }
    m->marked = 0;
    model_forget_ended(m);
}
