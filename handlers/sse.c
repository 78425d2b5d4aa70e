/* sse.c: SSE frame-boundary tracking. The WHATWG event-stream format ends a
 * line with CRLF, LF or CR, and dispatches an event on an empty line. */
#include "handlers/sse.h"

void sse_tracker_init(struct sse_tracker *t)
{
    t->at_line_start = true;
    t->at_boundary = true;
    t->after_cr = false;
    t->frames = 0;
}

void sse_tracker_feed(struct sse_tracker *t, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n' && t->after_cr) {
            t->after_cr = false; /* the LF of a CRLF: the line already ended */
            continue;
        }
        t->after_cr = false;
        if (c == '\n' || c == '\r') {
            if (t->at_line_start && !t->at_boundary) {
                t->at_boundary = true;
                t->frames++;
            }
            t->at_line_start = true;
            t->after_cr = c == '\r';
        } else {
            t->at_line_start = false;
            t->at_boundary = false;
        }
    }
}

bool sse_tracker_at_boundary(const struct sse_tracker *t)
{
    return t->at_boundary && !t->after_cr;
}
