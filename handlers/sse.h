/* sse.h: tracks whether the bytes forwarded so far end at an SSE frame
 * boundary, so a keepalive comment is only ever written between frames, and
 * counts the frames completed; and cuts an event stream into whole frames
 * (fan-out shares each frame as one buffer). */
#ifndef OPENOVA_SSE_H
#define OPENOVA_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

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

/* An event stream cut into whole frames (WHATWG: lines end with CRLF, LF
 * or CR; an empty line ends a frame). */
struct sse_splitter {
    struct buf partial; /* the frame being received */
    bool line_start, after_cr, has_content;
};

/* sse_frame_fn: one whole frame, its bytes valid during the call only. A
 * result other than PROXY_OK stops the feed and is returned by it. */
typedef enum proxy_err sse_frame_fn(void *ctx, const char *frame, size_t len);

/* sse_splitter_init: an empty splitter whose frames may be max_frame bytes
 * at most. */
void sse_splitter_init(struct sse_splitter *sp, size_t max_frame);

/* sse_splitter_feed: takes len more bytes and calls fn for every frame they
 * complete, with its terminating empty line. Blank lines between frames
 * carry nothing and are dropped, and so is the LF of a CRLF that ends a
 * frame (the CR ended it already), so no frame starts with a byte of the
 * one before. Returns PROXY_OK, fn's error, or PROXY_ERR_UPSTREAM_TOO_LARGE
 * for a frame past max_frame. */
enum proxy_err sse_splitter_feed(struct sse_splitter *sp, const char *data, size_t len, sse_frame_fn *fn, void *ctx);

/* sse_splitter_free: releases the partial frame; NULL-safe. */
void sse_splitter_free(struct sse_splitter *sp);

/* sse_frame_is_state: whether a frame changes what a client folds: it has
 * a field line (not comments alone) and is not a heartbeat event. Pure. */
bool sse_frame_is_state(const char *frame, size_t len);

#endif
