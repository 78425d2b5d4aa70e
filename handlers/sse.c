/* sse.c: SSE frame-boundary tracking and frame splitting. The WHATWG
 * event-stream format ends a line with CRLF, LF or CR, and dispatches an
 * event on an empty line. */
#include <string.h>

#include "handlers/sse.h"

/* The partial frame's buffer is kept between frames up to this size. */
#define SSE_SPLITTER_KEEP (64 * 1024)

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

void sse_splitter_init(struct sse_splitter *sp, size_t max_frame)
{
    buf_init(&sp->partial, max_frame);
    sp->line_start = true;
    sp->after_cr = false;
    sp->has_content = false;
}

enum proxy_err sse_splitter_feed(struct sse_splitter *sp, const char *data, size_t len, sse_frame_fn *fn, void *ctx)
{
    size_t run = 0; /* data[run..i) is not in partial yet */
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (sp->after_cr && c == '\n') {
            sp->after_cr = false;
            if (sp->partial.len == 0 && run == i)
                run = i + 1; /* the LF of the CRLF that ended the last frame */
            continue;
        }
        sp->after_cr = false;
        if (c != '\n' && c != '\r') {
            sp->line_start = false;
            sp->has_content = true;
            continue;
        }
        bool empty_line = sp->line_start;
        sp->line_start = true;
        sp->after_cr = c == '\r';
        if (!empty_line)
            continue;
        enum proxy_err err = PROXY_OK;
        if (sp->partial.len == 0) {
            /* whole in this chunk: no copy */
            if (i + 1 - run > sp->partial.max)
                return PROXY_ERR_UPSTREAM_TOO_LARGE;
            if (sp->has_content)
                err = fn(ctx, data + run, i + 1 - run);
        } else {
            if (buf_append(&sp->partial, data + run, i + 1 - run) != PROXY_OK)
                return PROXY_ERR_UPSTREAM_TOO_LARGE;
            if (sp->has_content)
                err = fn(ctx, sp->partial.data, sp->partial.len);
            /* a large frame's memory goes with it */
            if (sp->partial.cap > SSE_SPLITTER_KEEP)
                buf_free(&sp->partial);
            buf_reset(&sp->partial);
        }
        run = i + 1;
        sp->has_content = false;
        if (err)
            return err;
    }
    if (run < len && buf_append(&sp->partial, data + run, len - run) != PROXY_OK)
        return PROXY_ERR_UPSTREAM_TOO_LARGE;
    return PROXY_OK;
}

void sse_splitter_free(struct sse_splitter *sp)
{
    if (sp)
        buf_free(&sp->partial);
}

bool sse_frame_is_state(const char *frame, size_t len)
{
    bool content = false;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && frame[end] != '\n' && frame[end] != '\r')
            end++;
        const char *line = frame + i;
        size_t n = end - i;
        if (n > 0 && line[0] != ':') {
            content = true;
            if (n >= 6 && memcmp(line, "event:", 6) == 0) {
                const char *value = line + 6 + (n > 6 && line[6] == ' ');
                if ((size_t)(line + n - value) == 9 && memcmp(value, "heartbeat", 9) == 0)
                    return false;
            }
        }
        i = end + 1;
    }
    return content;
}
