/* test_devserver_flow.c: the flow store: folding (snapshot replaces,
 * upserts insert or replace by key in first-insertion order, deletes remove),
 * snapshot JSON, sequence numbers, purge, and subscribers (snapshot frame,
 * Last-Event-ID replay only with --replay, live wake-up, heartbeats by the
 * clock, lag, purge, shutdown). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../devserver/flow.h"
#include "../../devserver/fold.h"
#include "unit.h"

/* Message builders: node (id, flowId, status), relationship (from, to, type). */
#define N(id, f, st) "{\"id\":\"" id "\",\"flowId\":\"" f "\",\"label\":\"L\",\"status\":\"" st "\"}"
#define R(a, b, t) "{\"fromId\":\"" a "\",\"toId\":\"" b "\",\"type\":\"" t "\"}"
#define FL(id, st) "{\"id\":\"" id "\",\"status\":\"" st "\",\"startedAt\":1}"
#define SNAP(flow, nodes, rels) "{\"type\":\"snapshot\",\"flow\":" flow ",\"nodes\":[" nodes "],\"relationships\":[" rels "]}"
#define UFLOW(flow) "{\"type\":\"upsert-flow\",\"flow\":" flow "}"
#define UNODES(nodes) "{\"type\":\"upsert-nodes\",\"nodes\":[" nodes "]}"
#define URELS(rels) "{\"type\":\"upsert-rels\",\"relationships\":[" rels "]}"
#define DNODES(ids) "{\"type\":\"delete-nodes\",\"ids\":[" ids "]}"
#define DRELS(pairs) "{\"type\":\"delete-rels\",\"pairs\":[" pairs "]}"
/* The expected state, in the snapshot's own words: flow and lists left out
 * when empty, as the reference encodes it. */
#define ST(parts) "{\"type\":\"snapshot\"" parts "}"
#define SF(flow) ",\"flow\":" flow
#define SN(nodes) ",\"nodes\":[" nodes "]"
#define SR(rels) ",\"relationships\":[" rels "]"

#define MAX_MSGS 8

struct fold_row {
    const char *name;
    const char *msgs[MAX_MSGS]; /* applied in order, NULL-terminated */
    const char *state;
};

static const struct fold_row fold_rows[] = {
    {"empty state", {NULL}, ST()},
    {"snapshot sets everything",
     {SNAP(FL("f", "running"), N("a", "f", "ok"), R("a", "b", "contains")), NULL},
     ST(SF(FL("f", "running")) SN(N("a", "f", "ok")) SR(R("a", "b", "contains")))},
    {"snapshot replaces everything",
     {SNAP(FL("f", "running"), N("a", "f", "ok") "," N("b", "f", "ok"), R("a", "b", "contains")),
      SNAP(FL("f", "done"), N("c", "f", "ok"), ""), NULL},
     ST(SF(FL("f", "done")) SN(N("c", "f", "ok")))},
    {"snapshot without arrays clears them",
     {SNAP(FL("f", "running"), N("a", "f", "ok"), R("a", "b", "contains")),
      "{\"type\":\"snapshot\",\"flow\":" FL("f", "x") "}", NULL},
     ST(SF(FL("f", "x")))},
    {"snapshot with duplicate keys: last value, first place",
     {SNAP(FL("f", "r"), N("a", "f", "1") "," N("b", "f", "1") "," N("a", "f", "2"), ""), NULL},
     ST(SF(FL("f", "r")) SN(N("a", "f", "2") "," N("b", "f", "1")))},
    {"upsert-flow replaces the flow only",
     {SNAP(FL("f", "running"), N("a", "f", "ok"), ""), UFLOW(FL("f", "failed")), NULL},
     ST(SF(FL("f", "failed")) SN(N("a", "f", "ok")))},
    {"upsert-flow on an empty state", {UFLOW(FL("f", "running")), NULL}, ST(SF(FL("f", "running")))},
    {"upsert-nodes inserts in order",
     {UNODES(N("a", "f", "1")), UNODES(N("b", "f", "1") "," N("c", "f", "1")), NULL},
     ST(SN(N("a", "f", "1") "," N("b", "f", "1") "," N("c", "f", "1")))},
    {"upsert-nodes replaces in place",
     {UNODES(N("a", "f", "1") "," N("b", "f", "1") "," N("c", "f", "1")), UNODES(N("b", "f", "2")), NULL},
     ST(SN(N("a", "f", "1") "," N("b", "f", "2") "," N("c", "f", "1")))},
    {"upsert replaces the whole node",
     {UNODES("{\"id\":\"a\",\"flowId\":\"f\",\"label\":\"L\",\"status\":\"1\",\"region\":\"fsn1\"}"),
      UNODES(N("a", "f", "2")), NULL},
     ST(SN(N("a", "f", "2")))},
    {"same id in two flows is two nodes",
     {UNODES(N("a", "f1", "1") "," N("a", "f2", "1")), UNODES(N("a", "f2", "2")), NULL},
     ST(SN(N("a", "f1", "1") "," N("a", "f2", "2")))},
    {"keys do not collide across the separator",
     {UNODES(N("c", "ab", "1") "," N("bc", "a", "1")), NULL},
     ST(SN(N("c", "ab", "1") "," N("bc", "a", "1")))},
    {"upsert-rels keyed by from, to and type",
     {URELS(R("a", "b", "contains") "," R("a", "b", "triggers") "," R("b", "a", "contains")),
      URELS("{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\",\"condition\":\"always\"}"), NULL},
     ST(SR("{\"fromId\":\"a\",\"toId\":\"b\",\"type\":\"contains\",\"condition\":\"always\"}," R("a", "b", "triggers") "," R(
               "b", "a", "contains")))},
    {"delete-nodes removes the nodes; relationships stay",
     {SNAP(FL("f", "r"), N("a", "f", "1") "," N("b", "f", "1") "," N("c", "f", "1"),
           R("a", "b", "finish-to-start") "," R("b", "c", "finish-to-start") "," R("a", "c", "contains")),
      DNODES("\"b\""), NULL},
     ST(SF(FL("f", "r")) SN(N("a", "f", "1") "," N("c", "f", "1"))
            SR(R("a", "b", "finish-to-start") "," R("b", "c", "finish-to-start") "," R("a", "c", "contains")))},
    {"delete-nodes matches every flowId",
     {UNODES(N("a", "f1", "1") "," N("a", "f2", "1") "," N("b", "f1", "1")), DNODES("\"a\""), NULL},
     ST(SN(N("b", "f1", "1")))},
    {"delete-nodes of unknown ids changes nothing",
     {UNODES(N("a", "f", "1")), DNODES("\"x\",\"y\""), NULL},
     ST(SN(N("a", "f", "1")))},
    {"delete-nodes of several",
     {UNODES(N("a", "f", "1") "," N("b", "f", "1") "," N("c", "f", "1")), DNODES("\"c\",\"a\""), NULL},
     ST(SN(N("b", "f", "1")))},
    {"delete-rels removes by key only",
     {URELS(R("a", "b", "contains") "," R("a", "b", "triggers")), DRELS(R("a", "b", "contains")), NULL},
     ST(SR(R("a", "b", "triggers")))},
    {"delete-rels of unknown pairs changes nothing",
     {URELS(R("a", "b", "contains")), DRELS(R("b", "a", "contains") "," R("a", "b", "triggers")), NULL},
     ST(SR(R("a", "b", "contains")))},
    {"deleted then upserted goes last",
     {UNODES(N("a", "f", "1") "," N("b", "f", "1")), DNODES("\"a\""), UNODES(N("a", "f", "2")), NULL},
     ST(SN(N("b", "f", "1") "," N("a", "f", "2")))},
    {"every kind in one flow",
     {SNAP(FL("f", "running"), N("a", "f", "pending"), ""), UNODES(N("b", "f", "pending")),
      URELS(R("a", "b", "finish-to-start")), UNODES(N("a", "f", "done")), UFLOW(FL("f", "done")),
      DRELS(R("a", "b", "finish-to-start")), DNODES("\"b\""), NULL},
     ST(SF(FL("f", "done")) SN(N("a", "f", "done")))},
};

static void test_fold(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(fold_rows); i++) {
        const struct fold_row *r = &fold_rows[i];
        struct ds_fold fold;
        if (ds_fold_init(&fold) != DS_OK) {
            unit_fail(&failures, i, r->name, "init failed");
            ds_fold_free(&fold);
            continue;
        }
        bool ok = true;
        for (size_t k = 0; ok && k < MAX_MSGS && r->msgs[k]; k++) {
            struct ds_message m;
            char err[256];
            if (ds_message_parse(r->msgs[k], strlen(r->msgs[k]), DS_VALIDATE_REFERENCE, &m, err, sizeof err) != DS_OK) {
                unit_fail(&failures, i, r->name, "message %zu refused: %s", k, err);
                ok = false;
                break;
            }
            if (ds_fold_apply(&fold, &m) != DS_OK) {
                unit_fail(&failures, i, r->name, "message %zu not folded", k);
                ok = false;
            }
            ds_message_free(&m);
        }
        if (ok) {
            size_t len = 0;
            char *json = ds_fold_snapshot_json(&fold, &len);
            if (!json || strcmp(json, r->state) != 0 || len != strlen(json))
                unit_fail(&failures, i, r->name, "state\n  %s\nwant\n  %s", json ? json : "(null)", r->state);
            free(json);
        }
        ds_fold_free(&fold);
    }
    unit_done(failures);
}

/* ingest: parses and ingests text; returns the seq, 0 on any failure. */
static uint64_t ingest(struct ds_store *s, const char *flow, const char *text)
{
    struct ds_message m;
    char err[256];
    uint64_t seq = 0;
    if (ds_message_parse(text, strlen(text), DS_VALIDATE_REFERENCE, &m, err, sizeof err) != DS_OK)
        return 0;
    if (ds_store_ingest(s, flow, &m, &seq) != DS_OK)
        return 0;
    return seq;
}

#define MSG UNODES(N("a", "f", "x"))

static void test_sequence_numbers(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    assert_non_null(s);
    /* per flow, from 1, one by one, whatever the ring capacity */
    for (uint64_t want = 1; want <= 10; want++)
        assert_int_equal(ingest(s, "f1", MSG), want);
    assert_int_equal(ingest(s, "f2", MSG), 1);
    assert_int_equal(ingest(s, "f1", MSG), 11);
    /* purge forgets the counter with the flow */
    ds_store_purge(s, "f1");
    assert_int_equal(ingest(s, "f1", MSG), 1);
    assert_int_equal(ingest(s, "f2", MSG), 2);
    assert_int_equal(ds_store_flow_count(s), 2);
    ds_store_free(s);
}

static void test_snapshot_and_purge(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    char *json = NULL;
    size_t len = 0;
    assert_non_null(s);
    assert_int_equal(ds_store_snapshot(s, "f", &json, &len), DS_ERR_NOT_FOUND);
    assert_null(json);
    assert_int_equal(ingest(s, "f", SNAP(FL("f", "r"), N("a", "f", "1"), "")), 1);
    assert_int_equal(ds_store_snapshot(s, "f", &json, &len), DS_OK);
    assert_string_equal(json, ST(SF(FL("f", "r")) SN(N("a", "f", "1"))));
    assert_int_equal(len, strlen(json));
    free(json);
    ds_store_purge(s, "f");
    assert_int_equal(ds_store_snapshot(s, "f", &json, &len), DS_ERR_NOT_FOUND);
    ds_store_purge(s, "f"); /* idempotent */
    /* messages that leave nothing: 404, as the reference says */
    assert_int_equal(ingest(s, "d", DNODES("\"a\"")), 1);
    assert_int_equal(ds_store_snapshot(s, "d", &json, &len), DS_ERR_NOT_FOUND);
    assert_int_equal(ingest(s, "d", UNODES(N("a", "f", "1"))), 2);
    assert_int_equal(ds_store_snapshot(s, "d", &json, &len), DS_OK);
    free(json);
    assert_int_equal(ingest(s, "d", DNODES("\"a\"")), 3);
    assert_int_equal(ds_store_snapshot(s, "d", &json, &len), DS_ERR_NOT_FOUND);
    ds_store_purge(s, "d");
    ds_store_purge(s, "never");
    assert_int_equal(ds_store_flow_count(s), 0);
    ds_store_free(s);
}

/* read_frame: exactly one frame (up to "\n\n"), read a byte at a time, as
 * a subscriber may hold several frames at once. Returns its length, or -1
 * when the stream ended first. */
static long read_frame(struct ds_sub *sub, char *buf, size_t cap)
{
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = ds_sub_read(sub, buf + len, 1);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (len >= 2 && buf[len - 2] == '\n' && buf[len - 1] == '\n')
            return (long)len;
    }
    return -1;
}

/* frame_tag: "event:id" of a frame ("heartbeat:" when it has no id). */
static void frame_tag(const char *frame, char *tag, size_t taglen)
{
    char event[32] = "", id[32] = "";
    sscanf(frame, "event: %31[^\n]\nid: %31[^\n]", event, id);
    if (strcmp(event, "heartbeat") == 0)
        id[0] = '\0';
    snprintf(tag, taglen, "%s:%s", event, id);
}

static void test_frame_format(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(8);
    char buf[4096];
    assert_non_null(s);

    /* a flow never ingested: the empty snapshot, id 0 */
    struct ds_sub *sub = ds_sub_open(s, "f", NULL, false, 60000);
    assert_non_null(sub);
    assert_false(ds_sub_replaying(sub));
    assert_true(read_frame(sub, buf, sizeof buf) > 0);
    assert_string_equal(buf, "event: snapshot\nid: 0\ndata: {\"type\":\"snapshot\"}\n\n");
    /* the placeholder is in the table, but no snapshot answers for it */
    assert_int_equal(ds_store_flow_count(s), 1);
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(ds_store_snapshot(s, "f", &json, &len), DS_ERR_NOT_FOUND);

    /* a message as it was accepted, re-serialized on one line */
    assert_int_equal(ingest(s, "f", "{ \"type\" : \"delete-nodes\",\n \"ids\" : [ \"a/b\" ] }"), 1);
    memset(buf, 0, sizeof buf);
    assert_true(ds_sub_read(sub, buf, sizeof buf - 1) > 0); /* one read: the whole frame */
    assert_string_equal(buf, "event: delete-nodes\nid: 1\ndata: {\"type\":\"delete-nodes\",\"ids\":[\"a/b\"]}\n\n");
    ds_sub_close(sub);
    assert_int_equal(ds_store_flow_count(s), 1); /* ingested: it stays */

    /* a populated flow: the snapshot frame carries the current seq */
    assert_int_equal(ingest(s, "f", UNODES(N("a", "f", "1"))), 2);
    sub = ds_sub_open(s, "f", NULL, false, 60000);
    assert_non_null(sub);
    assert_true(read_frame(sub, buf, sizeof buf) > 0);
    assert_string_equal(buf, "event: snapshot\nid: 2\ndata: " ST(SN(N("a", "f", "1"))) "\n\n");
    ds_sub_close(sub);

    /* a placeholder goes with its last subscriber */
    sub = ds_sub_open(s, "g", NULL, false, 60000);
    struct ds_sub *sub2 = ds_sub_open(s, "g", NULL, false, 60000);
    assert_int_equal(ds_store_flow_count(s), 2);
    ds_sub_close(sub);
    assert_int_equal(ds_store_flow_count(s), 2);
    ds_sub_close(sub2);
    assert_int_equal(ds_store_flow_count(s), 1);
    ds_sub_close(NULL);
    ds_store_free(s);
}

struct resume_row {
    const char *name;
    size_t ring;
    unsigned ingested;      /* messages before the subscriber opens */
    const char *last_id;    /* Last-Event-ID, or NULL */
    const char *frames[8];  /* expected "event:id" tags, then a heartbeat */
};

static const struct resume_row resume_rows[] = {
    {"no header", 4, 6, NULL, {"snapshot:6", "heartbeat:"}},
    {"all after 2 held: replay", 4, 6, "2", {"upsert-nodes:3", "upsert-nodes:4", "upsert-nodes:5", "upsert-nodes:6",
                                           "heartbeat:"}},
    {"after 5", 4, 6, "5", {"upsert-nodes:6", "heartbeat:"}},
    {"after the last: nothing to replay", 4, 6, "6", {"heartbeat:"}},
    {"2 is gone: snapshot", 4, 6, "1", {"snapshot:6", "heartbeat:"}},
    {"0 with a wrapped ring", 4, 6, "0", {"snapshot:6", "heartbeat:"}},
    {"0 with a full ring", 8, 6, "0", {"upsert-nodes:1", "upsert-nodes:2", "upsert-nodes:3", "upsert-nodes:4",
                                      "upsert-nodes:5", "upsert-nodes:6", "heartbeat:"}},
    {"a future id: snapshot", 4, 6, "7", {"snapshot:6", "heartbeat:"}},
    {"not a number", 4, 6, "abc", {"snapshot:6", "heartbeat:"}},
    {"negative", 4, 6, "-1", {"snapshot:6", "heartbeat:"}},
    {"empty", 4, 6, "", {"snapshot:6", "heartbeat:"}},
    {"leading space", 4, 6, " 3", {"snapshot:6", "heartbeat:"}},
    {"overflowing", 4, 6, "99999999999999999999", {"snapshot:6", "heartbeat:"}},
    {"never ingested", 4, 0, NULL, {"snapshot:0", "heartbeat:"}},
    {"never ingested, after 0", 4, 0, "0", {"heartbeat:"}},
    {"never ingested, after 3", 4, 0, "3", {"snapshot:0", "heartbeat:"}},
};

static void test_resume(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(resume_rows); i++) {
        const struct resume_row *r = &resume_rows[i];
        struct ds_store *s = ds_store_new(r->ring);
        for (unsigned k = 0; k < r->ingested; k++)
            ingest(s, "f", MSG);
        struct ds_sub *sub = ds_sub_open(s, "f", r->last_id, true, 20);
        if (!sub) {
            unit_fail(&failures, i, r->name, "open failed");
            ds_store_free(s);
            continue;
        }
        bool want_replay = r->frames[0] && strncmp(r->frames[0], "snapshot:", 9) != 0;
        if (ds_sub_replaying(sub) != want_replay)
            unit_fail(&failures, i, r->name, "replaying %d, want %d", ds_sub_replaying(sub), want_replay);
        for (size_t k = 0; k < 8 && r->frames[k]; k++) {
            char buf[4096], tag[64];
            if (read_frame(sub, buf, sizeof buf) < 0) {
                unit_fail(&failures, i, r->name, "stream ended before frame %zu", k);
                break;
            }
            frame_tag(buf, tag, sizeof tag);
            if (strcmp(tag, r->frames[k]) != 0) {
                unit_fail(&failures, i, r->name, "frame %zu is %s, want %s", k, tag, r->frames[k]);
                break;
            }
        }
        /* then live */
        char buf[4096], tag[64], want[64];
        uint64_t seq = ingest(s, "f", MSG);
        snprintf(want, sizeof want, "upsert-nodes:%" PRIu64, seq);
        if (read_frame(sub, buf, sizeof buf) < 0)
            unit_fail(&failures, i, r->name, "no live frame");
        else if (frame_tag(buf, tag, sizeof tag), strcmp(tag, want) != 0)
            unit_fail(&failures, i, r->name, "live frame is %s, want %s", tag, want);
        ds_sub_close(sub);
        ds_store_free(s);
    }
    unit_done(failures);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static void test_heartbeat(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    char buf[256];
    struct ds_sub *sub = ds_sub_open(s, "f", "0", true, 40);
    assert_non_null(sub);
    for (int k = 0; k < 3; k++) {
        double t0 = now_ms();
        assert_true(read_frame(sub, buf, sizeof buf) > 0);
        double waited = now_ms() - t0;
        assert_string_equal(buf, "event: heartbeat\ndata: {}\n\n");
        assert_true(waited >= 35.0);
        assert_true(waited < 1000.0);
    }
    ds_sub_close(sub);
    ds_store_free(s);
}

/* Without --replay the reference's way: a snapshot frame first, whatever
 * Last-Event-ID says. */
static void test_no_replay_without_the_flag(void **state)
{
    (void)state;
    static const char *const ids[] = {NULL, "0", "2", "5", "6", "7"};
    unsigned failures = 0;
    struct ds_store *s = ds_store_new(4);
    for (int k = 0; k < 6; k++)
        ingest(s, "f", MSG);
    for (size_t i = 0; i < UNIT_LEN(ids); i++) {
        struct ds_sub *sub = ds_sub_open(s, "f", ids[i], false, 60000);
        char buf[4096], tag[64];
        if (!sub || read_frame(sub, buf, sizeof buf) < 0) {
            unit_fail(&failures, i, ids[i] ? ids[i] : "(none)", "no first frame");
        } else {
            frame_tag(buf, tag, sizeof tag);
            if (strcmp(tag, "snapshot:6") != 0 || ds_sub_replaying(sub))
                unit_fail(&failures, i, ids[i] ? ids[i] : "(none)", "first frame %s", tag);
        }
        ds_sub_close(sub);
    }
    ds_store_free(s);
    unit_done(failures);
}

/* Heartbeats come by the clock, as the reference's ticker sends them, also
 * while messages flow faster than the interval. */
static void test_heartbeat_by_the_clock(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(64);
    struct ds_sub *sub = ds_sub_open(s, "f", NULL, false, 100);
    char buf[4096], tag[64];
    assert_non_null(sub);
    assert_true(read_frame(sub, buf, sizeof buf) > 0); /* the snapshot */
    double start = now_ms();
    int beats = 0, frames = 0;
    while (now_ms() - start < 450.0) {
        struct timespec pause = {0, 30 * 1000000};
        nanosleep(&pause, NULL);
        ingest(s, "f", MSG);
        /* what is due now: the frame, and a heartbeat when one fell due */
        while (true) {
            assert_true(read_frame(sub, buf, sizeof buf) > 0);
            frame_tag(buf, tag, sizeof tag);
            if (strcmp(tag, "heartbeat:") == 0) {
                beats++;
                continue;
            }
            frames++;
            break;
        }
    }
    /* 4 intervals passed; generous bounds for a loaded machine */
    assert_true(frames >= 5);
    assert_true(beats >= 2);
    assert_true(beats <= 6);
    ds_sub_close(sub);
    ds_store_free(s);
}

static void test_lagging_subscriber_ends(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    char buf[4096];
    struct ds_sub *sub = ds_sub_open(s, "f", NULL, false, 60000);
    assert_non_null(sub);
    assert_true(read_frame(sub, buf, sizeof buf) > 0); /* snapshot, id 0 */
    for (int k = 0; k < 6; k++)
        ingest(s, "f", MSG); /* 1 and 2 leave the ring unread */
    assert_int_equal(ds_sub_read(sub, buf, sizeof buf), -1);
    assert_int_equal(ds_sub_end_reason(sub), DS_ERR_LAGGED);
    assert_int_equal(ds_sub_read(sub, buf, sizeof buf), -1); /* stays ended */
    ds_sub_close(sub);

    /* one that kept up to the edge still gets everything held */
    sub = ds_sub_open(s, "f", "2", true, 60000);
    assert_non_null(sub);
    for (int k = 3; k <= 6; k++) {
        char tag[64], want[64];
        assert_true(read_frame(sub, buf, sizeof buf) > 0);
        frame_tag(buf, tag, sizeof tag);
        snprintf(want, sizeof want, "upsert-nodes:%d", k);
        assert_string_equal(tag, want);
    }
    assert_int_equal(ds_sub_end_reason(sub), DS_OK);
    ds_sub_close(sub);
    ds_store_free(s);
}

static void test_purge_ends_subscribers(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    char buf[4096];
    ingest(s, "f", MSG);
    struct ds_sub *a = ds_sub_open(s, "f", NULL, false, 60000), *b = ds_sub_open(s, "f", "1", true, 60000);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(read_frame(a, buf, sizeof buf) > 0);
    ds_store_purge(s, "f");
    assert_int_equal(ds_store_flow_count(s), 0);
    assert_int_equal(ds_sub_read(a, buf, sizeof buf), -1);
    assert_int_equal(ds_sub_end_reason(a), DS_ERR_PURGED);
    assert_int_equal(ds_sub_read(b, buf, sizeof buf), -1);
    assert_int_equal(ds_sub_end_reason(b), DS_ERR_PURGED);
    /* a new flow under the same id is a new flow */
    assert_int_equal(ingest(s, "f", MSG), 1);
    ds_sub_close(a); /* the purged flow is freed with its last subscriber */
    ds_sub_close(b);
    assert_int_equal(ds_store_flow_count(s), 1);
    ds_store_free(s);
}

/* A reader blocked in ds_sub_read on another thread. */
struct reader {
    struct ds_sub *sub;
    char buf[4096];
    long len;
    double done_ms;
};

static void *read_one(void *arg)
{
    struct reader *r = arg;
    r->len = read_frame(r->sub, r->buf, sizeof r->buf);
    r->done_ms = now_ms();
    return NULL;
}

static void test_blocked_reader_wakes(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    struct reader r = {.sub = ds_sub_open(s, "f", "0", true, 60000)};
    pthread_t t;
    assert_non_null(r.sub);
    assert_int_equal(pthread_create(&t, NULL, read_one, &r), 0);
    struct timespec pause = {0, 50 * 1000000};
    nanosleep(&pause, NULL);
    double sent = now_ms();
    assert_int_equal(ingest(s, "f", MSG), 1);
    pthread_join(t, NULL);
    assert_true(r.len > 0);
    assert_true(strncmp(r.buf, "event: upsert-nodes\nid: 1\n", 26) == 0);
    assert_true(r.done_ms - sent < 500.0);
    ds_sub_close(r.sub);
    ds_store_free(s);
}

static void test_shutdown_ends_blocked_readers(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(4);
    struct reader r1 = {.sub = ds_sub_open(s, "f", "0", true, 60000)};
    struct reader r2 = {.sub = ds_sub_open(s, "g", "0", true, 60000)};
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, read_one, &r1), 0);
    assert_int_equal(pthread_create(&t2, NULL, read_one, &r2), 0);
    struct timespec pause = {0, 50 * 1000000};
    nanosleep(&pause, NULL);
    double stop = now_ms();
    ds_store_shutdown(s);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_int_equal(r1.len, -1);
    assert_int_equal(r2.len, -1);
    assert_int_equal(ds_sub_end_reason(r1.sub), DS_ERR_SHUTDOWN);
    assert_int_equal(ds_sub_end_reason(r2.sub), DS_ERR_SHUTDOWN);
    assert_true(r1.done_ms - stop < 500.0);
    /* and a subscriber opened afterwards ends at once, after its snapshot */
    struct ds_sub *late = ds_sub_open(s, "f", NULL, false, 60000);
    char buf[4096];
    assert_true(read_frame(late, buf, sizeof buf) > 0);
    assert_int_equal(ds_sub_read(late, buf, sizeof buf), -1);
    ds_sub_close(late);
    ds_sub_close(r1.sub);
    ds_sub_close(r2.sub);
    ds_store_free(s);
}

/* Concurrent ingest: every seq handed out once, all of them in the ring. */
struct writer {
    struct ds_store *s;
    uint64_t seqs[200];
};

static void *write_many(void *arg)
{
    struct writer *w = arg;
    for (size_t k = 0; k < 200; k++)
        w->seqs[k] = ingest(w->s, "f", MSG);
    return NULL;
}

static void test_concurrent_ingest(void **state)
{
    (void)state;
    struct ds_store *s = ds_store_new(1000);
    struct writer w[4];
    pthread_t t[4];
    bool seen[801] = {false};
    for (int k = 0; k < 4; k++) {
        w[k].s = s;
        assert_int_equal(pthread_create(&t[k], NULL, write_many, &w[k]), 0);
    }
    for (int k = 0; k < 4; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 4; k++) {
        for (size_t j = 0; j < 200; j++) {
            uint64_t q = w[k].seqs[j];
            assert_true(q >= 1 && q <= 800);
            assert_false(seen[q]);
            seen[q] = true;
            if (j > 0)
                assert_true(q > w[k].seqs[j - 1]); /* each writer sees its own order */
        }
    }
    /* a replay from 0 sees 1..800 in order */
    struct ds_sub *sub = ds_sub_open(s, "f", "0", true, 60000);
    char buf[4096];
    for (int k = 1; k <= 800; k++) {
        char tag[64], want[64];
        assert_true(read_frame(sub, buf, sizeof buf) > 0);
        frame_tag(buf, tag, sizeof tag);
        snprintf(want, sizeof want, "upsert-nodes:%d", k);
        assert_string_equal(tag, want);
    }
    ds_sub_close(sub);
    ds_store_free(s);
}

struct id_row {
    const char *text;
    bool ok;
    uint64_t value;
};

static const struct id_row id_rows[] = {
    {"0", true, 0},
    {"42", true, 42},
    {"18446744073709551615", true, UINT64_MAX},
    {"18446744073709551616", false, 0},
    {"", false, 0},
    {"-1", false, 0},
    {"+1", false, 0},
    {"1 ", false, 0},
    {"0x10", false, 0},
    {NULL, false, 0},
};

static void test_last_event_id(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(id_rows); i++) {
        uint64_t v = 7;
        bool ok = ds_last_event_id_parse(id_rows[i].text, &v);
        const char *name = id_rows[i].text ? id_rows[i].text : "(null)";
        if (ok != id_rows[i].ok)
            unit_fail(&failures, i, name, "parsed %d, want %d", ok, id_rows[i].ok);
        else if (ok && v != id_rows[i].value)
            unit_fail(&failures, i, name, "%" PRIu64 ", want %" PRIu64, v, id_rows[i].value);
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_sequence_numbers),
        cmocka_unit_test(test_snapshot_and_purge),
        cmocka_unit_test(test_frame_format),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_no_replay_without_the_flag),
        cmocka_unit_test(test_heartbeat_by_the_clock),
        cmocka_unit_test(test_lagging_subscriber_ends),
        cmocka_unit_test(test_purge_ends_subscribers),
        cmocka_unit_test(test_blocked_reader_wakes),
        cmocka_unit_test(test_shutdown_ends_blocked_readers),
        cmocka_unit_test(test_concurrent_ingest),
        cmocka_unit_test(test_last_event_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
