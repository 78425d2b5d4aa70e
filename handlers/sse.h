/* sse.h: tracks whether the bytes forwarded so far end at an SSE frame
 * boundary, so a keepalive comment is only ever written between frames, and
 * counts the frames completed. */
#ifndef OPENOVA_SSE_H
#define OPENOVA_SSE_H

#include <stdbool.h>
#include <stddef.h>

struct sse_tracker {
    bool at_line_start; /* the last byte ended a line (or nothing was sent) */
    bool at_boundary;   /* the last line ended was empty: a frame is complete */
    bool after_cr;      /* a CR ended the last line; a following LF belongs to it */
    unsigned long long frames; /* frames completed: an empty line after a non-empty one */
};

/* sse_tracker_init: the state before any byte: a boundary. */
void sse_tracker_init(struct sse_tracker *t);

/* sse_tracker_feed: advances over len forwarded bytes. Pure. */
void sse_tracker_feed(struct sse_tracker *t, const char *data, size_t len);

/* sse_tracker_at_boundary: true when writing a comment now cannot land inside
 * a frame. After a lone CR the next byte may be the LF of a CRLF: the WHATWG
 * parser would then read our comment's first byte as a line, so wait. */
bool sse_tracker_at_boundary(const struct sse_tracker *t);

#endif
