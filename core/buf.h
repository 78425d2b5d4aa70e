/* buf.h: a growable byte buffer with a hard maximum, checked on every append.
 * Out-of-memory policy for the whole program: an allocation failure fails the
 * one request that needed it (500 before the head, end of stream after);
 * the process keeps serving. */
#ifndef OPENOVA_BUF_H
#define OPENOVA_BUF_H

#include <stddef.h>

#include "core/error.h"

struct buf {
    char *data;     /* always NUL-terminated when non-NULL, for logging and parsing */
    size_t len;
    size_t cap;
    size_t max;     /* appends that would pass this fail */
};

/* buf_init: an empty buffer that will never hold more than max bytes. */
void buf_init(struct buf *b, size_t max);

/* buf_append: appends len bytes. Returns PROXY_OK, PROXY_ERR_TOO_LARGE
 * when the result would exceed max, or PROXY_ERR_NOMEM (the buffer is
 * unchanged after either). */
enum proxy_err buf_append(struct buf *b, const void *data, size_t len);

/* buf_appendf: printf-style append with the same results. */
enum proxy_err buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* buf_consume: drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

/* buf_truncate: drops what follows the first len bytes (len <= b->len). */
void buf_truncate(struct buf *b, size_t len);

/* buf_reset: empties the buffer but keeps its memory. */
void buf_reset(struct buf *b);

/* buf_free: releases the memory; NULL-safe; the buffer is empty after. */
void buf_free(struct buf *b);

#endif
