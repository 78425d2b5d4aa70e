/* test_sse.c: SSE frame-boundary tracking and frame counting (sse_tracker_*),
 * fed whole, split in two, and byte by byte. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "handlers/sse.h"
#include "unit.h"

struct sse_row {
    const char *bytes;
    size_t len;
    bool at_boundary; /* after all of bytes */
};

#define ROW(s, b) {s, sizeof(s) - 1, b}

/* WHATWG event stream: a line ends with CRLF, LF or CR; an empty line ends
 * a frame. A CR at the very end may be the first half of a CRLF, so the
 * tracker waits for the next byte before it calls that a boundary. */
static const struct sse_row sse_rows[] = {
    ROW("", true),
    ROW("data: x", false),
    ROW("data: x\n", false),
    ROW("data: x\n\n", true),
    ROW("data: x\r\n", false),
    ROW("data: x\r\n\r\n", true),
    ROW("data: x\r\n\n", true),
    ROW("data: x\n\r\n", true),
    ROW("data: x\r", false),
    ROW("data: x\r\r", false),   /* boundary, but the last CR may be half a CRLF: wait */
    ROW("data: x\r\r\n", true),
    ROW("data: x\r\n\r", false), /* same: a following LF may belong to the lone CR */
    ROW("data: x\n\r", false),
    ROW("data: x\r\rdata: y", false),
    ROW("data: x\n\n\r", false),
    ROW("data: x\n\n\r\n", true),
    ROW("data: x\n\n\n", true),
    ROW(": c\n\n", true),
    ROW(": keepalive\n", false),
    ROW(":\n\n", true),
    ROW("\n", true),
    ROW("\r\n", true),
    ROW("\r", false),
    ROW("\n\n\n", true),
    ROW("x", false),
    ROW("data: {\"a\"", false),
    ROW("data: {\"a\":1}\n\n", true),
    ROW("event: e\ndata: 1\n\n", true),
    ROW("event: e\ndata: 1\n\nda", false),
    ROW("event: e\ndata: 1\n\ndata: 2\n", false),
    ROW("id: 7\nretry: 1000\ndata: a\ndata: b\n\n", true),
    ROW("data: a\n\ndata: b\n\n", true),
    ROW("data: \0\n\n", true),     /* a NUL is an ordinary byte */
    ROW("data: \xc3\xa9\n\n", true),
    ROW("data: x\n \n", false),    /* a line of one space is not empty */
    ROW("data: x\n\t\n", false),
};

static bool feed_whole(const struct sse_row *r)
{
    struct sse_tracker t;
    sse_tracker_init(&t);
    sse_tracker_feed(&t, r->bytes, r->len);
    return sse_tracker_at_boundary(&t);
}

static void test_sse_whole(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[256];
    for (size_t i = 0; i < UNIT_LEN(sse_rows); i++) {
        const struct sse_row *r = &sse_rows[i];
        bool got = feed_whole(r);
        if (got != r->at_boundary)
            unit_fail(&failures, i, unit_escape(r->bytes, r->len, esc, sizeof esc), "at_boundary %d, want %d", got,
                      r->at_boundary);
    }
    unit_done(failures);
}

/* Where the transport cuts the bytes must not matter. */
static void test_sse_split(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[256];
    for (size_t i = 0; i < UNIT_LEN(sse_rows); i++) {
        const struct sse_row *r = &sse_rows[i];
        for (size_t cut = 0; cut <= r->len; cut++) {
            struct sse_tracker t;
            sse_tracker_init(&t);
            sse_tracker_feed(&t, r->bytes, cut);
            sse_tracker_feed(&t, r->bytes + cut, r->len - cut);
            bool got = sse_tracker_at_boundary(&t);
            if (got != r->at_boundary)
                unit_fail(&failures, i, unit_escape(r->bytes, r->len, esc, sizeof esc),
                          "split at %zu: at_boundary %d, want %d", cut, got, r->at_boundary);
        }
    }
    unit_done(failures);
}

/* One byte at a time, each prefix agreeing with the prefix fed whole. */
static void test_sse_bytewise(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[256];
    for (size_t i = 0; i < UNIT_LEN(sse_rows); i++) {
        const struct sse_row *r = &sse_rows[i];
        struct sse_tracker t;
        sse_tracker_init(&t);
        for (size_t k = 0; k < r->len; k++) {
            sse_tracker_feed(&t, r->bytes + k, 1);
            struct sse_row prefix = {r->bytes, k + 1, false};
            bool whole = feed_whole(&prefix);
            if (sse_tracker_at_boundary(&t) != whole)
                unit_fail(&failures, i, unit_escape(r->bytes, r->len, esc, sizeof esc),
                          "after byte %zu: bytewise %d, whole %d", k, sse_tracker_at_boundary(&t), whole);
        }
        sse_tracker_feed(&t, r->bytes, 0); /* an empty feed changes nothing */
        if (sse_tracker_at_boundary(&t) != r->at_boundary)
            unit_fail(&failures, i, unit_escape(r->bytes, r->len, esc, sizeof esc), "bytewise at_boundary %d, want %d",
                      sse_tracker_at_boundary(&t), r->at_boundary);
    }
    unit_done(failures);
}

/* Frames completed, as the metrics count them: an empty line after a line
 * with something in it; empty lines alone complete nothing. */
struct frames_row {
    const char *bytes;
    size_t len;
    unsigned long long frames;
};
#define FRAMES(s, n) {s, sizeof(s) - 1, n}

static const struct frames_row frames_rows[] = {
    FRAMES("", 0),
    FRAMES("data: x\n", 0),
    FRAMES("data: x\n\n", 1),
    FRAMES("data: x\r\n\r\n", 1),
    FRAMES("data: x\r\r", 1),
    FRAMES("data: a\n\ndata: b\n\n", 2),
    FRAMES("data: a\n\n\n\n", 1),
    FRAMES("\n\n\n", 0),
    FRAMES(": keepalive\n\n", 1), /* an upstream's comment frame is relayed like any other */
    FRAMES("event: e\nid: 1\ndata: 1\n\nevent: e\nid: 2\ndata: 2\n\nevent: e", 2),
};

static void test_sse_frames(void **state)
{
    (void)state;
    unsigned failures = 0;
    char esc[256];
    for (size_t i = 0; i < UNIT_LEN(frames_rows); i++) {
        const struct frames_row *r = &frames_rows[i];
        for (size_t cut = 0; cut <= r->len; cut++) {
            struct sse_tracker t;
            sse_tracker_init(&t);
            sse_tracker_feed(&t, r->bytes, cut);
            sse_tracker_feed(&t, r->bytes + cut, r->len - cut);
            if (t.frames != r->frames)
                unit_fail(&failures, i, unit_escape(r->bytes, r->len, esc, sizeof esc),
                          "split at %zu: %llu frames, want %llu", cut, t.frames, r->frames);
        }
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_frames),
        cmocka_unit_test(test_sse_whole),
        cmocka_unit_test(test_sse_split),
        cmocka_unit_test(test_sse_bytewise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
