/* ring.c: the per-flow ring of recent messages (see ring.h). */
#include <stdlib.h>

#include "ring.h"

enum ds_err ds_ring_init(struct ds_ring *r, size_t capacity)
{
    r->slots = NULL;
    r->capacity = r->count = r->head = 0;
    r->last_seq = 0;
    if (capacity == 0)
        return DS_ERR_ARG;
    r->slots = calloc(capacity, sizeof *r->slots);
    if (!r->slots)
        return DS_ERR_NOMEM;
    r->capacity = capacity;
    return DS_OK;
}

void ds_ring_free(struct ds_ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->slots[(r->head + i) % r->capacity].data);
    free(r->slots);
    r->slots = NULL;
    r->capacity = r->count = r->head = 0;
}

enum ds_err ds_ring_push(struct ds_ring *r, uint64_t seq, char *data, size_t len)
{
    if (r->capacity == 0 || seq != r->last_seq + 1)
        return DS_ERR_ARG;
    size_t slot;
    if (r->count == r->capacity) {
        /* full: the oldest slot is reused for the newest entry */
        slot = r->head;
        free(r->slots[slot].data);
        r->head = (r->head + 1) % r->capacity;
    } else {
        slot = (r->head + r->count) % r->capacity;
        r->count++;
    }
    r->slots[slot] = (struct ds_ring_entry){.seq = seq, .data = data, .len = len};
    r->last_seq = seq;
    return DS_OK;
}

uint64_t ds_ring_first_seq(const struct ds_ring *r)
{
    return r->last_seq + 1 - r->count;
}

const struct ds_ring_entry *ds_ring_get(const struct ds_ring *r, uint64_t seq)
{
    uint64_t first = ds_ring_first_seq(r);
    if (seq < first || seq > r->last_seq)
        return NULL;
    return &r->slots[(r->head + (size_t)(seq - first)) % r->capacity];
}

bool ds_ring_holds_after(const struct ds_ring *r, uint64_t after)
{
    if (after > r->last_seq)
        return false;
    return after + 1 >= ds_ring_first_seq(r);
}
