/* idmap: an open-addressing hash map from 64-bit ids to pointers.
 *
 * Used to find a pending AMI request from the sequence number in its
 * ActionID in O(1), whatever the number in flight. Id 0 is reserved.
 */
#ifndef AMIBRIDGE_CORE_IDMAP_H
#define AMIBRIDGE_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
    uint64_t *keys; /* 0 = empty, UINT64_MAX = deleted */
    void **vals;
    size_t cap;  /* power of two */
    size_t used; /* live entries */
    size_t tomb; /* deleted slots */
};

void idmap_init(struct idmap *m);
void idmap_release(struct idmap *m);
/* 0, -EEXIST or -ENOMEM. id must not be 0 or UINT64_MAX. */
int idmap_put(struct idmap *m, uint64_t id, void *val);
void *idmap_get(const struct idmap *m, uint64_t id);
/* Remove and return the value, or NULL when absent. */
void *idmap_del(struct idmap *m, uint64_t id);

#endif
