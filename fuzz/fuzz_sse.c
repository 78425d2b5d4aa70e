/* fuzz_sse.c: libFuzzer harness for SSE frame-boundary tracking (sse_tracker):
 * split-invariant, and in step with a reference model of the WHATWG format. */
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

    /* The stream loop relies on this: a keepalive comment written at a
     * boundary leaves the stream at a boundary. */
    if (sse_tracker_at_boundary(&whole)) {
        static const char comment[] = ": keepalive\n\n";
        sse_tracker_feed(&whole, comment, sizeof comment - 1);
        CHECK(sse_tracker_at_boundary(&whole));
    }
    return 0;
}
