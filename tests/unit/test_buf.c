/* test_buf.c: bounded byte buffers (core/buf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "unit.h"

/* ---- struct buf ---- */

enum buf_op { END = 0, APPEND, APPENDF, CONSUME, RESET, FREE };

struct buf_step {
    enum buf_op op;
    const char *arg;  /* APPEND: the bytes; APPENDF: "%s|%zu" of arg and n */
    size_t n;         /* APPEND: length; CONSUME: count; APPENDF: the number */
    enum proxy_err rc;         /* APPEND, APPENDF */
    const char *want; /* the whole content after the step; NULL: not checked */
    size_t want_len;
};

/* A literal with its length, NUL bytes included. */
#define W(s) s, sizeof(s) - 1

struct buf_row {
    const char *name;
    size_t max;
    struct buf_step steps[10];
};

static const struct buf_row buf_rows[] = {
    {"append up to max, then past it", 8,
     {{APPEND, "abcd", 4, 0, W("abcd")},
      {APPEND, "efgh", 4, 0, W("abcdefgh")},
      {APPEND, "i", 1, PROXY_ERR_TOO_LARGE, W("abcdefgh")},
      {APPEND, "", 0, 0, W("abcdefgh")},
      {APPENDF, "x", 1, PROXY_ERR_TOO_LARGE, W("abcdefgh")},
      {CONSUME, NULL, 3, 0, W("defgh")},
      {APPEND, "xyz", 3, 0, W("defghxyz")},
      {APPEND, "!", 1, PROXY_ERR_TOO_LARGE, W("defghxyz")}}},
    {"one large append past max", 4, {{APPEND, "abcde", 5, PROXY_ERR_TOO_LARGE, W("")}, {APPEND, "abcd", 4, 0, W("abcd")}}},
    {"huge length refused", 16, {{APPEND, "ab", 2, 0, W("ab")}, {APPEND, "c", SIZE_MAX, PROXY_ERR_TOO_LARGE, W("ab")}}},
    {"appendf", 16,
     {{APPENDF, "a", 1, 0, W("a|1")},
      {APPENDF, "bc", 22, 0, W("a|1bc|22")},
      {APPENDF, "12345678", 9, PROXY_ERR_TOO_LARGE, W("a|1bc|22")},
      {APPENDF, "123456", 7, 0, W("a|1bc|22123456|7")}}},
    {"consume", 32,
     {{APPEND, "hello world", 11, 0, W("hello world")},
      {CONSUME, NULL, 0, 0, W("hello world")},
      {CONSUME, NULL, 6, 0, W("world")},
      {CONSUME, NULL, 5, 0, W("")},
      {APPEND, "again", 5, 0, W("again")},
      {CONSUME, NULL, 100, 0, W("")}}},
    {"reset keeps working", 8,
     {{APPEND, "abcdefgh", 8, 0, W("abcdefgh")},
      {RESET, NULL, 0, 0, W("")},
      {APPEND, "12345678", 8, 0, W("12345678")},
      {RESET, NULL, 0, 0, W("")},
      {RESET, NULL, 0, 0, W("")}}},
    {"free then reuse", 8,
     {{APPEND, "abc", 3, 0, W("abc")},
      {FREE, NULL, 0, 0, W("")},
      {FREE, NULL, 0, 0, W("")},
      {APPEND, "12345678", 8, 0, W("12345678")},
      {APPEND, "9", 1, PROXY_ERR_TOO_LARGE, W("12345678")}}},
    {"max 0", 0, {{APPEND, "", 0, 0, W("")}, {APPEND, "a", 1, PROXY_ERR_TOO_LARGE, W("")}, {APPENDF, "", 0, PROXY_ERR_TOO_LARGE, W("")}}},
    {"binary bytes", 8, {{APPEND, "a\0b", 3, 0, W("a\0b")}, {CONSUME, NULL, 1, 0, W("\0b")}}},
    {"growth past the first allocation", 1024,
     {{APPEND, "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
               "01234567890123456789012345678901234567890123456789012345",
       256, 0, NULL, 0},
      {APPEND, "x", 1, 0, NULL, 0},
      {CONSUME, NULL, 250, 0, W("012345x")}}},
};

static void test_buf(void **state)
{
    (void)state;
    unsigned failures = 0;
    char got_esc[128], want_esc[128];
    for (size_t i = 0; i < UNIT_LEN(buf_rows); i++) {
        const struct buf_row *r = &buf_rows[i];
        struct buf b;
        buf_init(&b, r->max);
        for (size_t k = 0; k < UNIT_LEN(r->steps) && r->steps[k].op != END; k++) {
            const struct buf_step *s = &r->steps[k];
            enum proxy_err rc = PROXY_OK;
            switch (s->op) {
            case APPEND: rc = buf_append(&b, s->arg, s->n); break;
            case APPENDF: rc = buf_appendf(&b, "%s|%zu", s->arg, s->n); break;
            case CONSUME: buf_consume(&b, s->n); break;
            case RESET: buf_reset(&b); break;
            case FREE:
                buf_free(&b);
                if (b.data || b.len)
                    unit_fail(&failures, i, r->name, "step %zu: not empty after free", k);
                break;
            case END: break;
            }
            if (rc != s->rc)
                unit_fail(&failures, i, r->name, "step %zu: returned %d, want %d", k, rc, s->rc);
            if (b.len > b.max)
                unit_fail(&failures, i, r->name, "step %zu: %zu bytes, past the maximum %zu", k, b.len, b.max);
            if (b.data && b.data[b.len] != '\0')
                unit_fail(&failures, i, r->name, "step %zu: not NUL-terminated", k);
            if (!s->want)
                continue;
            size_t wl = s->want_len;
            if (b.len != wl || (wl && memcmp(b.data, s->want, wl) != 0))
                unit_fail(&failures, i, r->name, "step %zu: holds \"%s\", want \"%s\"", k,
                          unit_escape(b.data, b.len, got_esc, sizeof got_esc),
                          unit_escape(s->want, wl, want_esc, sizeof want_esc));
        }
        buf_free(&b);
    }
    buf_free(NULL);
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
