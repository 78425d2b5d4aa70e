/* rcbuf.h: an immutable byte buffer shared by reference count, so that one
 * stream frame reaches many clients without a copy for each. The counts are
 * not atomic: a buffer lives on the one thread that made it (the stream
 * loop's). */
#ifndef OPENOVA_RCBUF_H
#define OPENOVA_RCBUF_H

#include <stddef.h>

struct rcbuf {
    unsigned refs;
    size_t len;
    char data[]; /* len bytes and a NUL, for logging */
};

/* rcbuf_new: a buffer holding a copy of len bytes of data, with one
 * reference for the caller. NULL when out of memory. */
struct rcbuf *rcbuf_new(const void *data, size_t len);

/* rcbuf_alloc: a buffer of len bytes for the caller to fill before it is
 * shared, with one reference. NULL when out of memory. */
struct rcbuf *rcbuf_alloc(size_t len);

/* rcbuf_ref: one more reference; returns b. */
struct rcbuf *rcbuf_ref(struct rcbuf *b);

/* rcbuf_unref: drops a reference; the last one frees b. NULL-safe. */
void rcbuf_unref(struct rcbuf *b);

#endif
