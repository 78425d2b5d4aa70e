/* rcbuf.c: reference-counted immutable buffers (see rcbuf.h). */
#include <stdlib.h>
#include <string.h>

#include "core/rcbuf.h"

struct rcbuf *rcbuf_alloc(size_t len)
{
    struct rcbuf *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    b->data[len] = '\0';
    return b;
}

struct rcbuf *rcbuf_new(const void *data, size_t len)
{
    struct rcbuf *b = rcbuf_alloc(len);
    if (b && len)
        memcpy(b->data, data, len);
    return b;
}

struct rcbuf *rcbuf_ref(struct rcbuf *b)
{
    b->refs++;
    return b;
}

void rcbuf_unref(struct rcbuf *b)
{
    if (b && --b->refs == 0)
        free(b);
}
