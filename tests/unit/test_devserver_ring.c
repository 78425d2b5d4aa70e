/* test_devserver_ring.c: the per-flow message ring: capacity, wrap-around,
 * lookups, and the "is everything after N still held?" query. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../devserver/ring.h"
#include "unit.h"

/* push_n: pushes seq 1..n, entry text "m<seq>". */
static int push_n(struct ds_ring *r, uint64_t n)
{
    for (uint64_t s = 1; s <= n; s++) {
        char *d = malloc(32);
        if (!d)
            return -1;
        int len = snprintf(d, 32, "m%" PRIu64, s);
        if (ds_ring_push(r, s, d, (size_t)len) != DS_OK) {
            free(d);
            return -1;
        }
    }
    return 0;
}

struct state_row {
    const char *name;
    size_t capacity;
    uint64_t pushed;
    size_t count;       /* entries held */
    uint64_t first;     /* ds_ring_first_seq */
    uint64_t last;      /* last_seq */
};

static const struct state_row state_rows[] = {
    {"empty", 4, 0, 0, 1, 0},
    {"one", 4, 1, 1, 1, 1},
    {"below capacity", 4, 3, 3, 1, 3},
    {"exactly full", 4, 4, 4, 1, 4},
    {"one past full", 4, 5, 4, 2, 5},
    {"wrapped twice", 4, 9, 4, 6, 9},
    {"capacity one", 1, 7, 1, 7, 7},
    {"capacity one empty", 1, 0, 0, 1, 0},
    {"large", 4096, 10000, 4096, 10000 - 4096 + 1, 10000},
};

static void test_ring_state(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(state_rows); i++) {
        const struct state_row *r = &state_rows[i];
        struct ds_ring ring;
        if (ds_ring_init(&ring, r->capacity) != DS_OK || push_n(&ring, r->pushed) != 0) {
            unit_fail(&failures, i, r->name, "setup failed");
            ds_ring_free(&ring);
            continue;
        }
        if (ring.count != r->count)
            unit_fail(&failures, i, r->name, "count %zu, want %zu", ring.count, r->count);
        if (ds_ring_first_seq(&ring) != r->first)
            unit_fail(&failures, i, r->name, "first %" PRIu64 ", want %" PRIu64, ds_ring_first_seq(&ring), r->first);
        if (ring.last_seq != r->last)
            unit_fail(&failures, i, r->name, "last %" PRIu64 ", want %" PRIu64, ring.last_seq, r->last);
        /* every held seq reads back its own text, nothing else is held */
        for (uint64_t s = 0; s <= r->pushed + 1; s++) {
            const struct ds_ring_entry *e = ds_ring_get(&ring, s);
            bool held = s >= r->first && s <= r->last;
            char want[32];
            snprintf(want, sizeof want, "m%" PRIu64, s);
            if (held && (!e || e->seq != s || strcmp(e->data, want) != 0 || e->len != strlen(want)))
                unit_fail(&failures, i, r->name, "get(%" PRIu64 ") wrong", s);
            if (!held && e)
                unit_fail(&failures, i, r->name, "get(%" PRIu64 ") returned an entry not held", s);
        }
        ds_ring_free(&ring);
    }
    unit_done(failures);
}

struct holds_row {
    const char *name;
    size_t capacity;
    uint64_t pushed;
    uint64_t after;
    bool holds;
};

static const struct holds_row holds_rows[] = {
    {"empty ring, after 0", 4, 0, 0, true},
    {"empty ring, after 1 (never issued)", 4, 0, 1, false},
    {"all held, after 0", 4, 3, 0, true},
    {"all held, after 2", 4, 3, 2, true},
    {"after last", 4, 3, 3, true},
    {"after a future seq", 4, 3, 4, false},
    {"full, after 0", 4, 4, 0, true},
    {"wrapped, after the one dropped", 4, 6, 2, true},
    {"wrapped, after one more dropped", 4, 6, 1, false},
    {"wrapped, after 0", 4, 6, 0, false},
    {"wrapped, after last", 4, 6, 6, true},
    {"wrapped, after last - 1", 4, 6, 5, true},
    {"capacity one, after last - 1", 1, 5, 4, true},
    {"capacity one, after last - 2", 1, 5, 3, false},
    {"huge after", 4, 5, UINT64_MAX, false},
};

static void test_ring_holds_after(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(holds_rows); i++) {
        const struct holds_row *r = &holds_rows[i];
        struct ds_ring ring;
        if (ds_ring_init(&ring, r->capacity) != DS_OK || push_n(&ring, r->pushed) != 0) {
            unit_fail(&failures, i, r->name, "setup failed");
            ds_ring_free(&ring);
            continue;
        }
        bool got = ds_ring_holds_after(&ring, r->after);
        if (got != r->holds)
            unit_fail(&failures, i, r->name, "holds_after(%" PRIu64 ") = %d, want %d", r->after, got, r->holds);
        ds_ring_free(&ring);
    }
    unit_done(failures);
}

struct push_row {
    const char *name;
    uint64_t pushed; /* before the push under test */
    uint64_t seq;
    enum ds_err rc;
};

static const struct push_row push_rows[] = {
    {"first is 1", 0, 1, DS_OK},
    {"first is not 0", 0, 0, DS_ERR_ARG},
    {"first is not 2", 0, 2, DS_ERR_ARG},
    {"next", 3, 4, DS_OK},
    {"repeat", 3, 3, DS_ERR_ARG},
    {"gap", 3, 5, DS_ERR_ARG},
    {"after wrap", 9, 10, DS_OK},
};

static void test_ring_push(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(push_rows); i++) {
        const struct push_row *r = &push_rows[i];
        struct ds_ring ring;
        if (ds_ring_init(&ring, 4) != DS_OK || push_n(&ring, r->pushed) != 0) {
            unit_fail(&failures, i, r->name, "setup failed");
            ds_ring_free(&ring);
            continue;
        }
        char *d = strdup("x");
        enum ds_err rc = ds_ring_push(&ring, r->seq, d, 1);
        if (rc != r->rc)
            unit_fail(&failures, i, r->name, "push(%" PRIu64 ") = %s, want %s", r->seq, ds_strerror(rc),
                      ds_strerror(r->rc));
        if (rc != DS_OK)
            free(d); /* refused: still ours */
        uint64_t want_last = rc == DS_OK ? r->seq : r->pushed;
        if (ring.last_seq != want_last)
            unit_fail(&failures, i, r->name, "last %" PRIu64 ", want %" PRIu64, ring.last_seq, want_last);
        ds_ring_free(&ring);
    }
    unit_done(failures);
}

static void test_ring_init(void **state)
{
    (void)state;
    struct ds_ring ring;
    assert_int_equal(ds_ring_init(&ring, 0), DS_ERR_ARG);
    ds_ring_free(&ring);
    ds_ring_free(NULL);
    assert_int_equal(ds_ring_init(&ring, 2), DS_OK);
    assert_null(ds_ring_get(&ring, 0));
    assert_null(ds_ring_get(&ring, 1));
    ds_ring_free(&ring);
    ds_ring_free(&ring); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_state),
        cmocka_unit_test(test_ring_holds_after),
        cmocka_unit_test(test_ring_push),
        cmocka_unit_test(test_ring_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
