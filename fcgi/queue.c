/* queue.c: a detached response's waiting bytes by reference (see queue.h). */
#include <stdlib.h>

#include "fcgi/queue.h"

static size_t records_of(size_t len)
{
    return (len + FCGI_MAX_LENGTH - 1) / FCGI_MAX_LENGTH;
}

size_t fcgi_queue_written_len(size_t len, bool framed)
{
    return framed ? len + records_of(len) * FCGI_HEADER_LEN : len;
}

enum proxy_err fcgi_queue_push(struct fcgi_queue *q, struct rcbuf *buf, bool framed, size_t off)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        struct fcgi_queue_item *items = malloc(cap * sizeof *items);
        if (!items)
            return PROXY_ERR_NOMEM;
        for (size_t i = 0; i < q->count; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->cap = cap;
        q->head = 0;
    }
    size_t written = fcgi_queue_written_len(buf->len, framed);
    q->items[(q->head + q->count) % q->cap] = (struct fcgi_queue_item){.buf = rcbuf_ref(buf), .framed = framed};
    if (q->count++ == 0)
        q->off = off;
    q->bytes += written - off;
    if (!framed)
        q->raw_bytes += written - off;
    return PROXY_OK;
}

/* gather_item: an item's written form from off, as far as iov_max entries
 * and header_max headers go; *complete says whether all of it fitted. */
static int gather_item(const struct fcgi_queue_item *item, size_t off, unsigned request_id, struct iovec *iov,
                       int iov_max, unsigned char headers[][FCGI_HEADER_LEN], int header_max, int *headers_used,
                       bool *complete)
{
    const struct rcbuf *b = item->buf;
    int n = 0, h = 0;
    *complete = true;
    *headers_used = 0;
    if (!item->framed) {
        if (off < b->len) {
            if (iov_max < 1) {
                *complete = false;
                return 0;
            }
            iov[n++] = (struct iovec){.iov_base = (char *)b->data + off, .iov_len = b->len - off};
        }
        return n;
    }
    /* record r covers data [r*MAX, min(len, (r+1)*MAX)) behind its header */
    size_t pos = 0; /* in the written form */
    for (size_t r = 0, records = records_of(b->len); r < records; r++) {
        size_t start = r * FCGI_MAX_LENGTH;
        size_t part = b->len - start < FCGI_MAX_LENGTH ? b->len - start : FCGI_MAX_LENGTH;
        size_t end = pos + FCGI_HEADER_LEN + part;
        if (off < end) {
            if (n + 2 > iov_max || h == header_max) {
                *complete = false;
                break;
            }
            unsigned char *header = headers[h++];
            fcgi_record_header(header, FCGI_STDOUT, request_id, part);
            size_t skip = off > pos ? off - pos : 0; /* into this record's written form */
            if (skip < FCGI_HEADER_LEN)
                iov[n++] = (struct iovec){.iov_base = header + skip, .iov_len = FCGI_HEADER_LEN - skip};
            size_t data_skip = skip > FCGI_HEADER_LEN ? skip - FCGI_HEADER_LEN : 0;
            iov[n++] = (struct iovec){.iov_base = (char *)b->data + start + data_skip, .iov_len = part - data_skip};
        }
        pos = end;
    }
    *headers_used = h;
    return n;
}

int fcgi_queue_gather_item(const struct fcgi_queue_item *item, size_t off, unsigned request_id, struct iovec *iov,
                           int iov_max, unsigned char headers[][FCGI_HEADER_LEN])
{
    bool complete;
    int used;
    return gather_item(item, off, request_id, iov, iov_max, headers, FCGI_QUEUE_GATHER, &used, &complete);
}

int fcgi_queue_gather(const struct fcgi_queue *q, unsigned request_id, struct iovec *iov, int iov_max,
                      unsigned char headers[][FCGI_HEADER_LEN])
{
    int n = 0, used = 0;
    for (size_t i = 0; i < q->count; i++) {
        const struct fcgi_queue_item *item = &q->items[(q->head + i) % q->cap];
        bool complete;
        int item_headers;
        n += gather_item(item, i == 0 ? q->off : 0, request_id, iov + n, iov_max - n, headers + used,
                         FCGI_QUEUE_GATHER - used, &item_headers, &complete);
        used += item_headers;
        if (!complete)
            break; /* bytes must not overtake: nothing after a partial item */
    }
    return n;
}

void fcgi_queue_advance(struct fcgi_queue *q, size_t n)
{
    q->bytes -= n;
    while (n > 0 && q->count > 0) {
        struct fcgi_queue_item *item = &q->items[q->head];
        size_t left = fcgi_queue_written_len(item->buf->len, item->framed) - q->off;
        size_t take = n < left ? n : left;
        if (!item->framed)
            q->raw_bytes -= take;
        q->off += take;
        n -= take;
        if (take == left) {
            rcbuf_unref(item->buf);
            item->buf = NULL;
            q->head = (q->head + 1) % q->cap;
            q->count--;
            q->off = 0;
        }
    }
}

void fcgi_queue_clear(struct fcgi_queue *q)
{
    if (!q)
        return;
    while (q->count > 0) {
        rcbuf_unref(q->items[q->head].buf);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    free(q->items);
    *q = (struct fcgi_queue){0};
}
