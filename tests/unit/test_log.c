/* test_log.c: log lines (core/log.c) in logfmt and JSON: the time, level,
 * request id and fields; quoting and escaping of every value that needs
 * it; text that is not UTF-8; long values cut, never the shape of the line;
 * the level filter; one line per call. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/log.h"
#include "unit.h"

/* 2026-12-04T19:10:43.007Z */
#define AT 1796411443007LL

struct line_row {
    const char *name;
    enum proxy_log_level level;
    const char *rid;
    const char *msg;
    struct log_field fields[3];
    size_t count;
    const char *logfmt;
    const char *json;
};

static const struct line_row line_rows[] = {
    {"info, no request", PROXY_LOG_INFO, NULL, "serving", {{0}}, 0,
     "time=2026-12-04T19:10:43.007Z level=info msg=serving\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"info\",\"msg\":\"serving\"}\n"},
    {"request id and numbers", PROXY_LOG_WARN, "abc", "request",
     {LOG_TEXT("route", "snapshot"), LOG_NUMBER("status", 404), LOG_NUMBER("bytes", 0)}, 3,
     "time=2026-12-04T19:10:43.007Z level=warn rid=abc msg=request route=snapshot status=404 bytes=0\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"warn\",\"rid\":\"abc\",\"msg\":\"request\","
     "\"route\":\"snapshot\",\"status\":404,\"bytes\":0}\n"},
    {"a field left out", PROXY_LOG_ERROR, "r1", "x", {LOG_TEXT("user", NULL), LOG_TEXT("end", "client-gone")}, 2,
     "time=2026-12-04T19:10:43.007Z level=error rid=r1 msg=x end=client-gone\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"error\",\"rid\":\"r1\",\"msg\":\"x\",\"end\":\"client-gone\"}\n"},
    {"spaces, quotes, equals, backslash", PROXY_LOG_INFO, NULL, "upstream unreachable",
     {LOG_TEXT("user", "a \"b\"=c\\d")}, 1,
     "time=2026-12-04T19:10:43.007Z level=info msg=\"upstream unreachable\" user=\"a \\\"b\\\"=c\\\\d\"\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"info\",\"msg\":\"upstream unreachable\","
     "\"user\":\"a \\\"b\\\"=c\\\\d\"}\n"},
    {"control characters", PROXY_LOG_INFO, NULL, "a\nb\tc\rd\x01", {{0}}, 0,
     "time=2026-12-04T19:10:43.007Z level=info msg=\"a\\nb\\tc\\rd\\u0001\"\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"info\",\"msg\":\"a\\nb\\tc\\rd\\u0001\"}\n"},
    {"empty value", PROXY_LOG_DEBUG, NULL, "", {LOG_TEXT("user", "")}, 1,
     "time=2026-12-04T19:10:43.007Z level=debug msg=\"\" user=\"\"\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"debug\",\"msg\":\"\",\"user\":\"\"}\n"},
    {"UTF-8 kept, broken bytes replaced", PROXY_LOG_INFO, NULL, "caf\xc3\xa9", {LOG_TEXT("user", "x\xff\xc3y")}, 1,
     "time=2026-12-04T19:10:43.007Z level=info msg=caf\xc3\xa9 user=x??y\n",
     "{\"time\":\"2026-12-04T19:10:43.007Z\",\"level\":\"info\",\"msg\":\"caf\xc3\xa9\",\"user\":\"x??y\"}\n"},
};

static void check_format(enum proxy_log_format format, unsigned *failures)
{
    proxy_log_setup(PROXY_LOG_DEBUG, format);
    for (size_t i = 0; i < UNIT_LEN(line_rows); i++) {
        const struct line_row *r = &line_rows[i];
        const char *want = format == PROXY_LOG_JSON ? r->json : r->logfmt;
        char out[4096], got_esc[1024], want_esc[1024];
        size_t len = proxy_log_format_line(out, sizeof out, AT, r->level, r->rid, r->msg, r->fields, r->count);
        if (len != strlen(out) || strcmp(out, want) != 0)
            unit_fail(failures, i, r->name, "%s: wrote \"%s\", want \"%s\"", proxy_log_format_name(format),
                      unit_escape(out, strlen(out), got_esc, sizeof got_esc),
                      unit_escape(want, strlen(want), want_esc, sizeof want_esc));
    }
    proxy_log_setup(PROXY_LOG_INFO, PROXY_LOG_LOGFMT);
}

static void test_log_lines(void **state)
{
    (void)state;
    unsigned failures = 0;
    check_format(PROXY_LOG_LOGFMT, &failures);
    check_format(PROXY_LOG_JSON, &failures);
    unit_done(failures);
}

/* A value past the limit is cut; the line keeps its fields, its closing
 * quote and its newline, and the JSON still parses. */
static void test_log_cuts_long_values(void **state)
{
    (void)state;
    size_t long_len = 10000;
    char *value = malloc(long_len + 1);
    assert_non_null(value);
    memset(value, 'x', long_len);
    value[long_len] = '\0';
    struct log_field fields[] = {LOG_TEXT("user", value), LOG_NUMBER("status", 200)};
    char out[16384];
    proxy_log_setup(PROXY_LOG_INFO, PROXY_LOG_LOGFMT);
    size_t len = proxy_log_format_line(out, sizeof out, AT, PROXY_LOG_INFO, "rid", "m", fields, 2);
    assert_true(len < 2048);
    assert_int_equal(out[len - 1], '\n');
    assert_non_null(strstr(out, " status=200\n"));
    proxy_log_setup(PROXY_LOG_INFO, PROXY_LOG_JSON);
    len = proxy_log_format_line(out, sizeof out, AT, PROXY_LOG_INFO, "rid", "m", fields, 2);
    proxy_log_setup(PROXY_LOG_INFO, PROXY_LOG_LOGFMT);
    free(value);
    assert_true(len < 2048);
    json_object *o = json_tokener_parse(out);
    assert_non_null(o);
    json_object *status = NULL;
    assert_true(json_object_object_get_ex(o, "status", &status));
    assert_int_equal(json_object_get_int(status), 200);
    json_object_put(o);
}

/* Below the level nothing is written; at it, one line per call. */
static void test_log_level_filter(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct unit_capture c;
    char out[4096];
    proxy_log_setup(PROXY_LOG_WARN, PROXY_LOG_LOGFMT);
    assert_false(proxy_log_enabled(PROXY_LOG_INFO));
    unit_capture_begin(&c, dir);
    proxy_log(PROXY_LOG_DEBUG, NULL, "quiet");
    proxy_log(PROXY_LOG_INFO, NULL, "quiet");
    proxy_log(PROXY_LOG_WARN, "r", "loud %d", 1);
    proxy_log(PROXY_LOG_ERROR, "r", "loud %d", 2);
    int lines = unit_capture_end(&c, "\n", out, sizeof out);
    proxy_log_setup(PROXY_LOG_INFO, PROXY_LOG_LOGFMT);
    rmdir(dir);
    assert_int_equal(lines, 2);
    assert_null(strstr(out, "quiet"));
    assert_non_null(strstr(out, "level=warn rid=r msg=\"loud 1\"\n"));
    assert_non_null(strstr(out, "level=error rid=r msg=\"loud 2\"\n"));
    assert_memory_equal(out, "time=", 5);
}

struct name_row {
    const char *text;
    int level; /* -1: refused */
    int format;
};

static const struct name_row name_rows[] = {
    {"debug", PROXY_LOG_DEBUG, -1}, {"info", PROXY_LOG_INFO, -1}, {"warn", PROXY_LOG_WARN, -1},
    {"error", PROXY_LOG_ERROR, -1}, {"logfmt", -1, PROXY_LOG_LOGFMT}, {"json", -1, PROXY_LOG_JSON},
    {"INFO", -1, -1},              {"warning", -1, -1},            {"", -1, -1},
};

static void test_log_names(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < UNIT_LEN(name_rows); i++) {
        const struct name_row *r = &name_rows[i];
        enum proxy_log_level level;
        enum proxy_log_format format;
        int got_level = proxy_log_level_parse(r->text, &level) == 0 ? (int)level : -1;
        int got_format = proxy_log_format_parse(r->text, &format) == 0 ? (int)format : -1;
        if (got_level != r->level || got_format != r->format)
            unit_fail(&failures, i, r->text, "level %d format %d, want %d %d", got_level, got_format, r->level,
                      r->format);
        if (got_level >= 0 && strcmp(proxy_log_level_name(level), r->text) != 0)
            unit_fail(&failures, i, r->text, "named back %s", proxy_log_level_name(level));
    }
    unit_done(failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_log_cuts_long_values),
        cmocka_unit_test(test_log_level_filter),
        cmocka_unit_test(test_log_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
