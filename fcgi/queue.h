/* queue.h: the bytes of a detached response that wait for the web server
 * by reference instead of by copy: shared stream frames (the same buffer
 * for every client of a fan-out subscription), framed into FastCGI STDOUT
 * records as they are written, and records that had to queue behind them.
 * Pure: no I/O; the response writer (response.h) owns the socket. */
#ifndef OPENOVA_FCGI_QUEUE_H
#define OPENOVA_FCGI_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "core/error.h"
#include "core/rcbuf.h"
#include "fcgi/record.h"

struct fcgi_queue_item {
    struct rcbuf *buf; /* one reference, held by the queue */
    bool framed;       /* buf is body bytes, written as STDOUT records; else it is records already */
};

struct fcgi_queue {
    struct fcgi_queue_item *items; /* a ring of cap slots, allocated with the first item */
    size_t head, count, cap;
    size_t off;       /* bytes of the first item's written form already written */
    size_t bytes;     /* written form of every item, less off: what still waits */
    size_t raw_bytes; /* the part of bytes in items that are records already */
};

/* At most this many records' headers go into one gather. */
#define FCGI_QUEUE_GATHER 32

/* fcgi_queue_written_len: the length of an item's written form: len bytes,
 * plus one record header per FCGI_MAX_LENGTH of them when framed. Pure. */
size_t fcgi_queue_written_len(size_t len, bool framed);

/* fcgi_queue_push: appends buf (taking a reference of its own) whose first
 * off bytes of written form are already written. PROXY_ERR_NOMEM when the
 * ring cannot grow (nothing taken). */
enum proxy_err fcgi_queue_push(struct fcgi_queue *q, struct rcbuf *buf, bool framed, size_t off);

/* fcgi_queue_gather: describes in iov (at most iov_max entries) the next
 * bytes to write, from the head on, building the record headers of framed
 * items with request_id into headers (FCGI_QUEUE_GATHER of them). Returns
 * the entries used (0 when empty). */
int fcgi_queue_gather(const struct fcgi_queue *q, unsigned request_id, struct iovec *iov, int iov_max,
                      unsigned char headers[][FCGI_HEADER_LEN]);

/* fcgi_queue_gather_item: the same for one item alone, written from off
 * (not in any queue): how a frame goes out directly. */
int fcgi_queue_gather_item(const struct fcgi_queue_item *item, size_t off, unsigned request_id, struct iovec *iov,
                           int iov_max, unsigned char headers[][FCGI_HEADER_LEN]);

/* fcgi_queue_advance: n bytes were written: drops the items they finish
 * (releasing their references) and moves off. n <= bytes. */
void fcgi_queue_advance(struct fcgi_queue *q, size_t n);

/* fcgi_queue_clear: releases every item and the ring; NULL-safe. */
void fcgi_queue_clear(struct fcgi_queue *q);

#endif
