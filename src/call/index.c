/* call/index: see index.h. */
#include "call/index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/list.h"

#define CALL_INDEX_BUCKETS_MIN 64

/* FNV-1a. */
static size_t hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static int grow(struct call_index *ix)
{
    size_t n = ix->nbuckets ? ix->nbuckets * 2 : CALL_INDEX_BUCKETS_MIN;
    struct call **b = calloc(n, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (struct call *c = ix->head; c; c = c->next) {
        size_t i = hash(c->id) & (n - 1);
        c->hnext = b[i];
        b[i] = c;
    }
    free(ix->buckets);
    ix->buckets = b;
    ix->nbuckets = n;
    return 0;
}

int call_index_init(struct call_index *ix)
{
    memset(ix, 0, sizeof(*ix));
    return grow(ix);
}

void call_index_free(struct call_index *ix)
{
    free(ix->buckets);
    ix->buckets = NULL;
    ix->nbuckets = 0;
}

struct call *call_index_find(const struct call_index *ix, const char *id)
{
    if (!id || !ix->nbuckets)
        return NULL;
    for (struct call *c = ix->buckets[hash(id) & (ix->nbuckets - 1)]; c; c = c->hnext)
        if (!strcmp(c->id, id))
            return c;
    return NULL;
}

int call_index_reserve(struct call_index *ix)
{
    return ix->n + 1 > ix->nbuckets ? grow(ix) : 0;
}

void call_index_add(struct call_index *ix, struct call *c)
{
    LIST_PUSH_BACK(ix->head, ix->tail, c);
    size_t i = hash(c->id) & (ix->nbuckets - 1);
    c->hnext = ix->buckets[i];
    ix->buckets[i] = c;
    ix->n++;
}

void call_index_remove(struct call_index *ix, struct call *c)
{
    struct call **pp = &ix->buckets[hash(c->id) & (ix->nbuckets - 1)];
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = c->hnext;
    LIST_UNLINK2(ix->head, ix->tail, c);
    ix->n--;
}
