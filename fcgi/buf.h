/* buf.h: a growable byte buffer with a hard maximum, checked on every append.
 * Out-of-memory policy for the whole program: an allocation failure fails the
 * one request that needed it (500 before the head, end of stream after);
 * the process keeps serving. */
#ifndef OPENOVA_BUF_H
#define OPENOVA_BUF_H

#include <stddef.h>

struct fcgi_buf {
    char *data;     /* always NUL-terminated when non-NULL, for logging and parsing */
    size_t len;
    size_t cap;
    size_t max;     /* appends that would pass this fail */
};

/* fcgi_buf_init: an empty buffer that will never hold more than max bytes. */
void fcgi_buf_init(struct fcgi_buf *b, size_t max);

/* fcgi_buf_append: appends len bytes. Returns 0, -1 when the result would
 * exceed max (buffer unchanged), or -2 when out of memory. */
int fcgi_buf_append(struct fcgi_buf *b, const void *data, size_t len);

/* fcgi_buf_appendf: printf-style append with the same results. */
int fcgi_buf_appendf(struct fcgi_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fcgi_buf_consume: drops the first n bytes (n <= len). */
void fcgi_buf_consume(struct fcgi_buf *b, size_t n);

/* fcgi_buf_reset: empties the buffer but keeps its memory. */
void fcgi_buf_reset(struct fcgi_buf *b);

/* fcgi_buf_free: releases the memory; NULL-safe; the buffer is empty after. */
void fcgi_buf_free(struct fcgi_buf *b);

#endif
