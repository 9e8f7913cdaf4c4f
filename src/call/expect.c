/* call/expect: see expect.h. */
#include "call/expect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "call/model.h"

void call_expect_free(struct call_expect *e)
{
    free(e->id);
    json_decref(e->origination);
    json_decref(e->variables);
    free(e);
}

void call_expects_prune(struct call_expects *x, uint64_t now_ms)
{
    size_t n = 0;
    for (struct call_expect **pp = &x->head; *pp;) {
        struct call_expect *e = *pp;
        if (++n >= CALL_EXPECT_MAX || now_ms - e->at > CALL_EXPECT_TTL_MS) {
            *pp = e->next;
            x->n--;
            call_expect_free(e);
        } else {
            pp = &e->next;
        }
    }
}

int call_expects_add(struct call_expects *x, const char *id, json_t *origination, json_t *variables,
                     uint64_t now_ms)
{
    struct call_expect *e = calloc(1, sizeof(*e));
    if (!e || !(e->id = strdup(id))) {
        free(e);
        json_decref(origination);
        json_decref(variables);
        return -ENOMEM;
    }
    e->origination = origination;
    e->variables = variables;
    e->at = now_ms;
    e->next = x->head;
    x->head = e;
    x->n++;
    return 0;
}

struct call_expect *call_expects_take(struct call_expects *x, const char *id)
{
    for (struct call_expect **pp = &x->head; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id)) {
            struct call_expect *e = *pp;
            *pp = e->next;
            x->n--;
            return e;
        }
    return NULL;
}

struct call_expect *call_expects_find(const struct call_expects *x, const char *id)
{
    struct call_expect *found = NULL;
    for (struct call_expect *e = x->head; e; e = e->next)
        if (!strcmp(e->id, id))
            found = e;
    return found;
}

struct call_expect *call_expects_by_action(const struct call_expects *x, const char *action_id)
{
    for (struct call_expect *e = x->head; action_id && e; e = e->next) {
        const char *oid = json_string_value(json_object_get(e->origination, "id"));
        if (oid && !strcmp(oid, action_id))
            return e;
    }
    return NULL;
}

void call_expects_clear(struct call_expects *x)
{
    while (x->head) {
        struct call_expect *e = x->head;
        x->head = e->next;
        call_expect_free(e);
    }
    x->n = 0;
}
