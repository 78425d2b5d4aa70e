/* ring.h: a fixed-capacity ring of the last accepted messages of one flow,
 * each with its sequence number. Pure: no locks, no I/O; the flow's mutex
 * guards it. The held sequence numbers are always one contiguous range
 * [first, last], which is what makes Last-Event-ID resumption a range check. */
#ifndef OPENOVA_DS_RING_H
#define OPENOVA_DS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ds_ring_entry {
    uint64_t seq;
    char *data; /* owned by the ring; NUL-terminated */
    size_t len; /* bytes of data, without the NUL */
};

struct ds_ring {
    struct ds_ring_entry *slots;
    size_t capacity;
    size_t count;      /* entries held, <= capacity */
    size_t head;       /* slot of the oldest entry */
    uint64_t last_seq; /* seq of the newest entry pushed; 0 before the first */
};

/* ds_ring_init: an empty ring that holds at most capacity (>= 1) entries.
 * Returns DS_OK, DS_ERR_ARG for capacity 0, or DS_ERR_NOMEM. On success the
 * caller releases it with ds_ring_free. */
enum ds_err ds_ring_init(struct ds_ring *r, size_t capacity);

/* ds_ring_free: frees every entry and the slots; NULL-safe; the ring is
 * empty (capacity 0) afterwards. */
void ds_ring_free(struct ds_ring *r);

/* ds_ring_push: appends data (len bytes, NUL-terminated, from malloc) as
 * entry seq, dropping the oldest entry when full. seq must be last_seq + 1.
 * On DS_OK the ring owns data; on DS_ERR_ARG (wrong seq) the caller keeps
 * it. Never allocates. */
enum ds_err ds_ring_push(struct ds_ring *r, uint64_t seq, char *data, size_t len);

/* ds_ring_first_seq: seq of the oldest entry held; last_seq + 1 when empty. */
uint64_t ds_ring_first_seq(const struct ds_ring *r);

/* ds_ring_get: the entry with that seq, or NULL when it is not held (never
 * pushed, or dropped). The pointer is valid until the next push or free. */
const struct ds_ring_entry *ds_ring_get(const struct ds_ring *r, uint64_t seq);

/* ds_ring_holds_after: true when every entry after after (seq > after, up
 * to last_seq) is still held, so a reader that has seen after can catch up
 * from the ring alone. True for after == last_seq (nothing missing); false
 * for after > last_seq (a seq this ring never issued). */
bool ds_ring_holds_after(const struct ds_ring *r, uint64_t after);

#endif
