/* call/model: see model.h. This file keeps the live calls and the steps
 * of their lives that are announced (model_internal.h); call/events reads
 * the AMI events, call/snapshot handles reconnects.
 *
 * The answer, settled at the end: a person answered when a real Dial was
 * answered or an agent connected (call/events). When only the PBX
 * answered (the caller leg Up, OriginateResponse Success, the Originate's
 * own DialEnd ANSWER: an application, an IVR, voicemail), the call counts
 * as answered then only if it ends without a Dial or a queue (06a: the
 * queue answers its caller before any agent does; 10f).
 */
#include "call/model_internal.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "call/export.h"
#include "call/view.h"
#include "core/log.h"

#define CALL_MODEL_MAX_LIVE 10000 /* max_live when not given */
#define CALL_ENDED_IDS_MAX  1024

int model_is_trunk(const struct call_model *m, const char *channel)
{
    for (size_t i = 0; channel && i < m->ntrunks; i++)
        if (!fnmatch(m->trunks[i], channel, 0))
            return 1;
    return 0;
}

struct call *model_create(struct call_model *m, const struct ami_msg *ev, const char *id,
                          uint64_t now)
{
    if (m->calls.n >= m->max_live) {
        m->untracked++;
        return NULL;
    }
    if (call_index_reserve(&m->calls) != 0)
        return NULL;
    struct call *c = call_new(id);
    if (!c)
        return NULL;
    const char *ch = ami_msg_get(ev, "Channel");
    call_set_str(&c->from_num, call_known(ami_msg_get(ev, "CallerIDNum")));
    call_set_str(&c->from_name, call_known(ami_msg_get(ev, "CallerIDName")));
    call_set_str(&c->dialed, call_known(ami_msg_get(ev, "Exten")));
    c->started = now;
    c->direction = model_is_trunk(m, ch) ? "inbound" : "internal";
    struct call_expect *e = call_expects_take(&m->expects, id);
    if (e) {
        c->direction = "originated";
        c->origination = e->origination;
        c->variables = e->variables;
        e->origination = e->variables = NULL;
        call_expect_free(e);
    }
    call_index_add(&m->calls, c);
    m->created++;
    return c;
}

void model_emit(struct call_model *m, struct call *c, const char *type, uint64_t now)
{
    char when[40];
    log_iso_ms(now, when, sizeof(when));
    json_t *call = call_view(c, m->server);
    json_t *ev = call ? json_pack("{s:s,s:s,s:I,s:s,s:o}", "type", type, "server", m->server, "seq",
                                  (json_int_t)++m->seq, "time", when, "call", call)
                      : NULL;
    if (ev && m->emit)
        m->emit(m->ud, type, ev);
    json_decref(ev);
}

void model_ringing(struct call_model *m, struct call *c, uint64_t now)
{
    if (c->state != ST_CREATED)
        return;
    c->state = ST_RINGING;
    model_emit(m, c, "call.ringing", now);
}

void model_answered(struct call_model *m, struct call *c, uint64_t now)
{
    if (c->state == ST_ANSWERED)
        return;
    if (c->state == ST_CREATED) /* every answered call rang first, for the listener */
        model_ringing(m, c, now);
    c->state = ST_ANSWERED;
    c->answered_at = now;
    model_emit(m, c, "call.answered", now);
}

void model_pbx_answer(struct call *c, uint64_t now)
{
    if (!c->pbx_answered)
        c->pbx_answered = now;
}

/* Remember that c ended while the snapshot is awaited (it may list it). */
static void note_ended(struct call_model *m, const struct call *c)
{
    if (!m->marked || m->nended_ids >= CALL_ENDED_IDS_MAX)
        return;
    char **v = realloc(m->ended_ids, (m->nended_ids + 1) * sizeof(*v));
    if (v) {
        m->ended_ids = v;
        if ((v[m->nended_ids] = strdup(c->id)))
            m->nended_ids++;
    }
}

void model_end(struct call_model *m, struct call *c, uint64_t now)
{
    if (c->state != ST_ANSWERED && c->snap_answered) {
        /* the list showed two parties up, and the answer itself was lost */
        model_answered(m, c, now);
        c->answered_at = c->snap_answered;
    } else if (c->state != ST_ANSWERED && c->pbx_answered && !c->dialled && !c->queue) {
        model_answered(m, c, now);
        c->answered_at = c->pbx_answered;
    }
    c->ended_at = now;
    m->ended++;
    note_ended(m, c);
    model_emit(m, c, "call.ended", now);
    call_index_remove(&m->calls, c);
    call_free(c);
}

void model_end_unseen(struct call_model *m, const struct ami_msg *ev, const char *id, int reason,
                      uint64_t now)
{
    char *keep = strdup(id);
    if (!keep)
        return;
    struct call *c = model_create(m, ev, id, now); /* takes the expectation */
    if (!c) {
        free(keep);
        return;
    }
    c->orig_reason = reason;
    size_t i = m->unseen_next++ % CALL_UNSEEN_MAX;
    free(m->unseen[i]);
    m->unseen[i] = keep;
    m->unseen_at[i] = now;
    model_emit(m, c, "call.created", now);
    model_end(m, c, now);
}

int model_ended_unseen(const struct call_model *m, const char *id, uint64_t now)
{
    for (size_t i = 0; i < CALL_UNSEEN_MAX; i++)
        if (m->unseen[i] && now - m->unseen_at[i] <= CALL_EXPECT_TTL_MS &&
            !strcmp(m->unseen[i], id))
            return 1;
    return 0;
}

void model_drop_all(struct call_model *m)
{
    while (m->calls.head) {
        struct call *c = m->calls.head;
        call_index_remove(&m->calls, c);
        call_free(c);
    }
}

int model_ended_since_mark(const struct call_model *m, const char *id)
{
    for (size_t i = 0; i < m->nended_ids; i++)
        if (!strcmp(m->ended_ids[i], id))
            return 1;
    return 0;
}

void model_forget_ended(struct call_model *m)
{
    for (size_t i = 0; i < m->nended_ids; i++)
        free(m->ended_ids[i]);
    free(m->ended_ids);
    m->ended_ids = NULL;
    m->nended_ids = 0;
}

/* --- the public API ----------------------------------------------------------------------------
 */

struct call_model *call_model_new(const struct call_model_opts *o, call_emit_fn fn, void *ud)
{
    struct call_model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->server = strdup(o->server ? o->server : "");
    m->max_live = o->max_live ? o->max_live : CALL_MODEL_MAX_LIVE;
    m->emit = fn;
    m->ud = ud;
    if (o->ntrunks && !(m->trunks = calloc(o->ntrunks, sizeof(char *))))
        goto fail;
    for (size_t i = 0; i < o->ntrunks; i++) {
        if (!(m->trunks[i] = strdup(o->trunks[i])))
            goto fail;
        m->ntrunks++;
    }
    if (!m->server || call_index_init(&m->calls) != 0)
        goto fail;
    return m;
fail:
    call_model_free(m);
    return NULL;
}

void call_model_free(struct call_model *m)
{
    if (!m)
        return;
    model_drop_all(m);
    call_expects_clear(&m->expects);
    model_forget_ended(m);
    for (size_t i = 0; i < CALL_UNSEEN_MAX; i++)
        free(m->unseen[i]);
    for (size_t i = 0; i < m->ntrunks; i++)
        free(m->trunks[i]);
    free(m->trunks);
    call_index_free(&m->calls);
    free(m->server);
    free(m);
}

int call_model_expect(struct call_model *m, const char *id, json_t *origination, json_t *variables,
                      uint64_t now_ms)
{
    call_expects_prune(&m->expects, now_ms);
    /* heard after the call's first event (from another replica): its next
     * events carry it */
    struct call *c = call_index_find(&m->calls, id);
    if (c) {
        if (c->origination || !origination) {
            json_decref(origination);
            json_decref(variables);
            return 0;
        }
        c->direction = "originated";
        c->origination = origination;
        json_decref(c->variables);
        c->variables = variables;
        return 0;
    }
    return call_expects_add(&m->expects, id, origination, variables, now_ms);
}

void call_model_origination_id(struct call_model *m, const char *call_id, const char *id)
{
    struct call *c = call_index_find(&m->calls, call_id);
    struct call_expect *e = c ? NULL : call_expects_find(&m->expects, call_id);
    json_t *o = c ? c->origination : e ? e->origination : NULL;
    if (json_is_object(o) && !json_is_string(json_object_get(o, "id")))
        json_object_set_new(o, "id", json_string(id));
}

json_t *call_model_export(const struct call_model *m, const char *id)
{
    const struct call *c = call_index_find(&m->calls, id);
    return c ? call_export(c, m->server) : NULL;
}

int call_model_import(struct call_model *m, json_t *exported)
{
    const char *id = call_export_id(exported);
    if (!id)
        return -EINVAL;
    if (call_index_find(&m->calls, id))
        return 0; /* heard of already: what the events say is newer */
    if (m->calls.n >= m->max_live) {
        m->untracked++;
        return -ENOSPC;
    }
    if (call_index_reserve(&m->calls) != 0)
        return -ENOMEM;
    struct call *c;
    int rc = call_import(exported, &c);
    if (rc != 0)
        return rc;
    call_index_add(&m->calls, c);
    return 0;
}

json_t *call_model_live(const struct call_model *m)
{
    json_t *a = json_array();
    for (const struct call *c = m->calls.head; a && c; c = c->next)
        json_array_append_new(a, call_view(c, m->server));
    return a;
}

json_t *call_model_get(const struct call_model *m, const char *id)
{
    const struct call *c = call_index_find(&m->calls, id);
    return c ? call_view(c, m->server) : NULL;
}

void call_model_stats(const struct call_model *m, struct call_model_stats *st)
{
    st->live = m->calls.n;
    st->created = m->created;
    st->ended = m->ended;
    st->untracked = m->untracked;
}
