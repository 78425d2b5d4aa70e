/* test_sse.c: SSE frame-boundary tracking and frame counting (sse_tracker_*),
 * fed whole, split in two, and byte by byte; the splitter that cuts a stream
 * into whole frames for fan-out, fed every way; and which frames carry
 * state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
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

/* ---- the splitter ---- */

struct split_row {
    const char *name;
    const char *stream;
    const char *frames[6]; /* what comes out, in order; NULL-terminated */
    const char *partial;   /* what is left waiting */
};

static const struct split_row split_rows[] = {
    {"one frame", "event: a\nid: 1\ndata: {}\n\n", {"event: a\nid: 1\ndata: {}\n\n", NULL}, ""},
    {"two frames and a part", "data: 1\n\ndata: 2\n\ndata: 3\n",
     {"data: 1\n\n", "data: 2\n\n", NULL}, "data: 3\n"},
    {"CRLF: the last LF dropped", "data: 1\r\n\r\ndata: 2\r\n\r\n", {"data: 1\r\n\r", "data: 2\r\n\r", NULL}, ""},
    {"CR alone", "data: 1\r\rdata: 2\r\r", {"data: 1\r\r", "data: 2\r\r", NULL}, ""},
    {"blank lines between frames dropped", "\n\ndata: 1\n\n\n\r\n\ndata: 2\n\n", {"data: 1\n\n", "data: 2\n\n", NULL},
     ""},
    {"a comment frame", ": keepalive\n\ndata: 1\n\n", {": keepalive\n\n", "data: 1\n\n", NULL}, ""},
    {"a NUL is a byte", "data: a\0b\n\n", {"data: a\0b\n\n", NULL}, ""},
    {"nothing complete", "data: 1\ndata: 2", {NULL}, "data: 1\ndata: 2"},
};

struct collected {
    char frames[8][64];
    size_t lens[8];
    size_t count;
};

static enum proxy_err collect(void *ctx, const char *frame, size_t len)
{
    struct collected *c = ctx;
    if (c->count < 8 && len < 64) {
        memcpy(c->frames[c->count], frame, len);
        c->lens[c->count] = len;
    }
    c->count++;
    return PROXY_OK;
}

/* run_split: feeds the row in pieces of step bytes (0: whole); true when
 * the frames and the part left are the row's. */
static bool run_split(const struct split_row *r, size_t len, size_t step, char *why, size_t whylen)
{
    struct sse_splitter sp;
    struct collected c = {.count = 0};
    sse_splitter_init(&sp, 1024);
    for (size_t at = 0; at < len;) {
        size_t n = step && len - at > step ? step : len - at;
        if (sse_splitter_feed(&sp, r->stream + at, n, collect, &c) != PROXY_OK) {
            snprintf(why, whylen, "feed failed at %zu", at);
            sse_splitter_free(&sp);
            return false;
        }
        at += n;
    }
    size_t want = 0;
    while (r->frames[want])
        want++;
    bool ok = c.count == want;
    for (size_t i = 0; ok && i < want; i++) {
        /* the frames hold NULs: lengths from the row's text up to its end marker */
        size_t wlen = strlen(r->frames[i]);
        if (strcmp(r->name, "a NUL is a byte") == 0)
            wlen = 11;
        ok = c.lens[i] == wlen && memcmp(c.frames[i], r->frames[i], wlen) == 0;
    }
    ok = ok && sp.partial.len == strlen(r->partial) && memcmp(sp.partial.data ? sp.partial.data : "", r->partial,
                                                              sp.partial.len) == 0;
    if (!ok)
        snprintf(why, whylen, "step %zu: %zu frames (want %zu), %zu bytes left", step, c.count, want, sp.partial.len);
    sse_splitter_free(&sp);
    return ok;
}

static void test_splitter(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(split_rows); i++) {
        const struct split_row *r = &split_rows[i];
        size_t len = strcmp(r->name, "a NUL is a byte") == 0 ? 11 : strlen(r->stream);
        static const size_t steps[] = {0, 1, 2, 3, 7};
        for (size_t k = 0; k < UNIT_LEN(steps); k++) {
            char why[128];
            if (!run_split(r, len, steps[k], why, sizeof why)) {
                unit_fail(&failures, i, r->name, "%s", why);
                break;
            }
        }
    }
    unit_done(failures);
}

static enum proxy_err refuse_second(void *ctx, const char *frame, size_t len)
{
    (void)frame;
    (void)len;
    return ++*(int *)ctx == 2 ? PROXY_ERR_NOMEM : PROXY_OK;
}

static void test_splitter_limits(void **state)
{
    (void)state;
    struct sse_splitter sp;
    struct collected c = {.count = 0};
    /* a frame past the bound */
    sse_splitter_init(&sp, 16);
    assert_int_equal(sse_splitter_feed(&sp, "data: 0123456789abcdef\n\n", 24, collect, &c),
                     PROXY_ERR_UPSTREAM_TOO_LARGE);
    sse_splitter_free(&sp);
    /* the callback's error stops the feed */
    int calls = 0;
    sse_splitter_init(&sp, 1024);
    assert_int_equal(sse_splitter_feed(&sp, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, refuse_second, &calls),
                     PROXY_ERR_NOMEM);
    assert_int_equal(calls, 2);
    sse_splitter_free(&sp);
    sse_splitter_free(NULL);
}

struct state_row {
    const char *frame;
    bool state;
};

static const struct state_row state_rows[] = {
    {"event: snapshot\nid: 0\ndata: {\"type\":\"snapshot\"}\n\n", true},
    {"event: upsert-nodes\r\nid: 3\r\ndata: {}\r\n\r", true},
    {"data: {}\n\n", true},
    {"event: heartbeat\ndata: {}\n\n", false},
    {"event:heartbeat\ndata: {}\n\n", false},
    {"id: 4\nevent: heartbeat\n\n", false},
    {"event: heartbeats\ndata: {}\n\n", true},
    {": keepalive\n\n", false},
    {":\n:x\n\n", false},
    {"\n\n", false},
};

static void test_frame_is_state(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(state_rows); i++)
        if (sse_frame_is_state(state_rows[i].frame, strlen(state_rows[i].frame)) != state_rows[i].state)
            unit_fail(&failures, i, state_rows[i].frame, "not %d", state_rows[i].state);
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_frames),
        cmocka_unit_test(test_sse_whole),
        cmocka_unit_test(test_sse_split),
        cmocka_unit_test(test_sse_bytewise),
        cmocka_unit_test(test_splitter),
        cmocka_unit_test(test_splitter_limits),
        cmocka_unit_test(test_frame_is_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
