#include "core/idmap.h"

#include <errno.h>
#include <stdlib.h>

#define IDMAP_EMPTY   0
#define IDMAP_DELETED UINT64_MAX
#define IDMAP_MIN_CAP 64

void idmap_init(struct idmap *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->used = m->tomb = 0;
}

void idmap_release(struct idmap *m)
{
    free(m->keys);
    free(m->vals);
    idmap_init(m);
}

static size_t idmap_hash(uint64_t id)
{
    /* splitmix64 finaliser: sequential ids spread over the table */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id;
}

static int idmap_resize(struct idmap *m, size_t ncap)
{
    uint64_t *nk = calloc(ncap, sizeof(*nk));
    void **nv = calloc(ncap, sizeof(*nv));
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        uint64_t k = m->keys[i];
        if (k == IDMAP_EMPTY || k == IDMAP_DELETED)
            continue;
        size_t j = idmap_hash(k) & (ncap - 1);
        while (nk[j] != IDMAP_EMPTY)
            j = (j + 1) & (ncap - 1);
        nk[j] = k;
        nv[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    m->tomb = 0;
    return 0;
}

static size_t idmap_find(const struct idmap *m, uint64_t id)
{
    size_t j = idmap_hash(id) & (m->cap - 1);
    while (m->keys[j] != IDMAP_EMPTY) {
        if (m->keys[j] == id)
            return j;
        j = (j + 1) & (m->cap - 1);
    }
    return (size_t)-1;
}

int idmap_put(struct idmap *m, uint64_t id, void *val)
{
    if (id == IDMAP_EMPTY || id == IDMAP_DELETED)
        return -EINVAL;
    /* keep the load (live + tombstones) under 1/2 */
    if ((m->used + m->tomb + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap : IDMAP_MIN_CAP;
        while ((m->used + 1) * 4 > ncap) /* live load at most 1/4 after a rehash */
            ncap *= 2;
        int rc = idmap_resize(m, ncap);
        if (rc)
            return rc;
    }
    if (idmap_find(m, id) != (size_t)-1)
        return -EEXIST;
    size_t j = idmap_hash(id) & (m->cap - 1);
    while (m->keys[j] != IDMAP_EMPTY && m->keys[j] != IDMAP_DELETED)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == IDMAP_DELETED)
        m->tomb--;
    m->keys[j] = id;
    m->vals[j] = val;
    m->used++;
    return 0;
}

void *idmap_get(const struct idmap *m, uint64_t id)
{
    if (!m->cap || id == IDMAP_EMPTY || id == IDMAP_DELETED)
        return NULL;
    size_t j = idmap_find(m, id);
    return j == (size_t)-1 ? NULL : m->vals[j];
}

void *idmap_del(struct idmap *m, uint64_t id)
{
    if (!m->cap || id == IDMAP_EMPTY || id == IDMAP_DELETED)
        return NULL;
    size_t j = idmap_find(m, id);
    if (j == (size_t)-1)
        return NULL;
    void *v = m->vals[j];
    m->keys[j] = IDMAP_DELETED;
    m->vals[j] = NULL;
    m->used--;
    m->tomb++;
    return v;
}
