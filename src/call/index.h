/* call/index: the live calls of one model, by id and oldest first. Not
 * for use outside src/call.
 *
 * Intrusive: the index links the calls through their prev, next and hnext
 * members and owns none of them. Embedded in the model; call_index_init
 * before use, call_index_free after the last call left.
 */
#ifndef AMIBRIDGE_CALL_INDEX_H
#define AMIBRIDGE_CALL_INDEX_H

#include <stddef.h>

#include "call/call.h"

struct call_index {
    struct call *head, *tail; /* oldest first: walk with c->next */
    struct call **buckets;    /* a power of two of them */
    size_t nbuckets, n;
};

/* An empty index. 0 or -ENOMEM. */
int call_index_init(struct call_index *ix);
/* Frees the buckets (not the calls: take them out first). */
void call_index_free(struct call_index *ix);

/* The call of that id, or NULL (also for a NULL id). */
struct call *call_index_find(const struct call_index *ix, const char *id);
/* Room for one more call: call before call_index_add, which cannot fail.
 * 0 or -ENOMEM. */
int call_index_reserve(struct call_index *ix);
/* Append c (newest), its id not in the index yet. */
void call_index_add(struct call_index *ix, struct call *c);
/* Take c out. */
void call_index_remove(struct call_index *ix, struct call *c);

#endif
