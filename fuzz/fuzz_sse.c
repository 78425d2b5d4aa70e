/* fuzz_sse.c: libFuzzer harness for SSE frame-boundary tracking (sse_tracker):
 * split-invariant, and in step with a reference model of the WHATWG format;
 * and for the splitter fan-out cuts frames with (sse_splitter): the same
 * frames however the bytes arrive, each one whole. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/sse.h"
#include "fuzz.h"


#define MAX_CHUNK_SIZES 16

/* Whether a comment written after the first n bytes of s lands between
 * frames. The WHATWG event stream ends a line with CRLF, LF or CR, and an
 * empty line ends a frame; nothing sent yet counts as a boundary. A final CR
 * may be the first half of a CRLF whose LF is still to come: not yet. */
static bool reference_at_boundary(const uint8_t *s, size_t n)
{
    if (n == 0)
        return true;
    if (s[n - 1] != '\n')
        return false; /* inside a line, or just after a CR */
    size_t term = n - 1; /* where the line terminator starts */
    if (term > 0 && s[term - 1] == '\r')
        term--;
    /* The line is empty when the terminator is at the start of the stream or
     * right after another terminator (which CR or LF alone ends). */
    return term == 0 || s[term - 1] == '\r' || s[term - 1] == '\n';
}

/* The frames a splitter cut, end to end, and how many. */
struct cut {
    char *bytes;
    size_t len, frames;
};

static enum proxy_err take_frame(void *ctx, const char *frame, size_t len)
{
    struct cut *c = ctx;
    /* one frame: it ends with a line terminator, and a tracker fed it alone
     * completes at least one frame (a CR ending it may leave the tracker
     * waiting for an LF, so its boundary is not asked) */
    CHECK(len > 0 && (frame[len - 1] == '\n' || frame[len - 1] == '\r'));
    struct sse_tracker t;
    sse_tracker_init(&t);
    sse_tracker_feed(&t, frame, len);
    CHECK(t.frames >= 1);
    (void)sse_frame_is_state(frame, len);
    memcpy(c->bytes + c->len, frame, len);
    c->len += len;
    c->frames++;
    return PROXY_OK;
}

/* split_frames: the splitter fed stream in chunks of sizes (or whole). */
static void split_frames(const uint8_t *stream, size_t len, const uint8_t *sizes, size_t nsizes, struct cut *c)
{
    struct sse_splitter sp;
    sse_splitter_init(&sp, len + 1);
    size_t fed = 0;
    for (size_t i = 0; fed < len; i++) {
        size_t chunk = nsizes ? sizes[i % nsizes] : len;
        if (chunk > len - fed)
            chunk = len - fed;
        CHECK(sse_splitter_feed(&sp, (const char *)stream + fed, chunk, take_frame, c) == PROXY_OK);
        fed += chunk;
    }
    /* nothing is invented: what was cut and what waits are no more than the input */
    CHECK(c->len + sp.partial.len <= len);
    sse_splitter_free(&sp);
}

/* Input: one byte k, then k % 16 chunk sizes (one byte each, 0 allowed),
 * then the stream. The stream is fed in chunks of those sizes, in turn. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t nsizes = data[0] % MAX_CHUNK_SIZES;
    if (nsizes > size - 1)
        nsizes = size - 1;
    const uint8_t *sizes = data + 1;
    const uint8_t *stream = data + 1 + nsizes;
    size_t len = size - 1 - nsizes;
    bool any_progress = false;
    for (size_t i = 0; i < nsizes; i++)
        any_progress |= sizes[i] != 0;
    if (!any_progress)
        nsizes = 0; /* all zero: feed it whole */

    struct sse_tracker whole;
    sse_tracker_init(&whole);
    CHECK(sse_tracker_at_boundary(&whole));
    sse_tracker_feed(&whole, (const char *)stream, len);
    CHECK(sse_tracker_at_boundary(&whole) == reference_at_boundary(stream, len));

    struct sse_tracker split;
    sse_tracker_init(&split);
    size_t fed = 0;
    for (size_t i = 0; nsizes && fed < len; i++) {
        size_t chunk = sizes[i % nsizes];
        if (chunk > len - fed)
            chunk = len - fed;
        struct sse_tracker before = split;
        bool was = sse_tracker_at_boundary(&split);
        sse_tracker_feed(&split, (const char *)stream + fed, chunk);
        fed += chunk;
        if (chunk == 0) /* an empty write changes nothing */
            CHECK(sse_tracker_at_boundary(&split) == was && memcmp(&before, &split, sizeof split) == 0);
        CHECK(sse_tracker_at_boundary(&split) == reference_at_boundary(stream, fed));
    }
    if (nsizes) {
        CHECK(sse_tracker_at_boundary(&split) == sse_tracker_at_boundary(&whole));
        CHECK(split.frames == whole.frames); /* the metrics count frames however they arrive */
    }

    /* The splitter: the same frames, byte for byte, however they arrive. */
    struct cut a = {.bytes = malloc(len + 1)}, b = {.bytes = malloc(len + 1)};
    CHECK(a.bytes && b.bytes);
    split_frames(stream, len, NULL, 0, &a);
    split_frames(stream, len, sizes, nsizes, &b);
    CHECK(a.frames == b.frames && a.len == b.len && memcmp(a.bytes, b.bytes, a.len) == 0);
    free(a.bytes);
    free(b.bytes);

    /* The stream loop relies on this: a keepalive comment written at a
     * boundary leaves the stream at a boundary. */
    if (sse_tracker_at_boundary(&whole)) {
        static const char comment[] = ": keepalive\n\n";
        sse_tracker_feed(&whole, comment, sizeof comment - 1);
        CHECK(sse_tracker_at_boundary(&whole));
    }
    return 0;
}
