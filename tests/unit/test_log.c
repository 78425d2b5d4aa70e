/* test_log.c: log lines (core/log.c): the prefix, the level, the request id,
 * one line per call, and a long message truncated, never split. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "unit.h"

struct line_row {
    const char *name;
    enum proxy_log_level level;
    const char *rid;
    const char *message;
    const char *want;
};

static const struct line_row line_rows[] = {
    {"info, no request", PROXY_LOG_INFO, NULL, "msg=\"serving\"", "openova-flow-fcgi: level=info msg=\"serving\"\n"},
    {"warn with a request id", PROXY_LOG_WARN, "abc", "status=404",
     "openova-flow-fcgi: level=warn rid=abc status=404\n"},
    {"error", PROXY_LOG_ERROR, "r1", "msg=\"x\"", "openova-flow-fcgi: level=error rid=r1 msg=\"x\"\n"},
    {"empty message", PROXY_LOG_INFO, NULL, "", "openova-flow-fcgi: level=info \n"},
};

static void test_log_lines(void **state)
{
    (void)state;
    unsigned failures = 0;
    char dir[] = "/tmp/test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < UNIT_LEN(line_rows); i++) {
        const struct line_row *r = &line_rows[i];
        struct unit_capture c;
        char out[4096], got_esc[512], want_esc[512];
        unit_capture_begin(&c, dir);
        proxy_log(r->level, r->rid, "%s", r->message);
        unit_capture_end(&c, "\n", out, sizeof out);
        if (strcmp(out, r->want) != 0)
            unit_fail(&failures, i, r->name, "wrote \"%s\", want \"%s\"",
                      unit_escape(out, strlen(out), got_esc, sizeof got_esc),
                      unit_escape(r->want, strlen(r->want), want_esc, sizeof want_esc));
    }
    rmdir(dir);
    unit_done(failures);
}

static void test_log_truncates(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    size_t long_len = 10000;
    char *message = malloc(long_len + 1);
    assert_non_null(message);
    memset(message, 'x', long_len);
    message[long_len] = '\0';
    struct unit_capture c;
    char out[16384];
    unit_capture_begin(&c, dir);
    proxy_log(PROXY_LOG_INFO, "rid", "msg=%s", message);
    int lines = unit_capture_end(&c, "\n", out, sizeof out);
    free(message);
    rmdir(dir);
    /* One line, cut short, still ending in its newline. */
    assert_int_equal(lines, 1);
    size_t len = strlen(out);
    assert_true(len < long_len);
    assert_int_equal(out[len - 1], '\n');
    assert_memory_equal(out, "openova-flow-fcgi: level=info rid=rid msg=xxx", 45);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_log_truncates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
