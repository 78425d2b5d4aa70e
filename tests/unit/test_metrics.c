/* test_metrics.c: counting and the exposition (core/metrics.c): each count
 * lands in its series, histograms are cumulative with a count and a sum,
 * label values stay in their fixed sets, OpenMetrics names its families as
 * that format wants, and nothing is counted when counting is off. The
 * counters are the process's: each test looks at what it added. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "unit.h"

static const struct metrics_gauges gauges = {
    .streams_open = 3, .streams_max = 1024, .workers = 16, .upstream_up = 1, .version = "9.9.9", .libcurl = "8.0.0"};

static char *render(bool openmetrics)
{
    size_t len = 0;
    char *text = metrics_render(&gauges, openmetrics, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The value of the sample line that starts with series ("name{labels}"),
 * or -1 when there is none. */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return atoll(line + n + 1);
    return -1;
}

struct series_row {
    const char *series;
    long long want;
};

static void check_series(const char *text, const struct series_row *rows, size_t count)
{
    unsigned failures = 0;
    for (size_t i = 0; i < count; i++) {
        long long got = sample(text, rows[i].series);
        if (got != rows[i].want)
            unit_fail(&failures, i, rows[i].series, "%lld, want %lld", got, rows[i].want);
    }
    unit_done(failures);
}

static void test_metrics_counts(void **state)
{
    (void)state;
    metrics_request(METRICS_ROUTE_SNAPSHOT, "GET", 200, 1500);     /* 1.5 ms: the 0.0025 bucket */
    metrics_request(METRICS_ROUTE_SNAPSHOT, "GET", 200, 40000000); /* 40 s: past every bound */
    metrics_request(METRICS_ROUTE_EVENTS, "POST", 413, 100);
    metrics_request(METRICS_ROUTE_NONE, "PATCH", 404, 100);        /* any other method is "other" */
    metrics_request(METRICS_ROUTE_STREAM, "GET", 0, 100);          /* the client left first */
    metrics_request(METRICS_ROUTE_STREAM, "GET", 777, 100);        /* no such status: counted as 0 */
    metrics_upstream_call(METRICS_ROUTE_SNAPSHOT, 2000);
    metrics_upstream_call(METRICS_ROUTE_HEALTH, 2000);             /* no upstream route: ignored */
    metrics_upstream_failure(METRICS_ROUTE_EVENTS, METRICS_UPSTREAM_TLS);
    metrics_auth(METRICS_AUTH_JWT, METRICS_AUTH_ACCEPTED);
    metrics_auth(METRICS_AUTH_NONE, METRICS_AUTH_INVALID_CREDENTIALS);
    metrics_stream_opened();
    metrics_stream_relayed(2, 100);
    metrics_stream_ended(METRICS_END_IDLE, 90000);
    metrics_refusal("not_found");
    metrics_refusal("not_found");
    metrics_worker_busy(1);
    char *text = render(false);
    const struct series_row rows[] = {
        {"openova_flow_requests_total{route=\"snapshot\",method=\"GET\",status=\"200\"}", 2},
        {"openova_flow_requests_total{route=\"events\",method=\"POST\",status=\"413\"}", 1},
        {"openova_flow_requests_total{route=\"none\",method=\"other\",status=\"404\"}", 1},
        {"openova_flow_requests_total{route=\"stream\",method=\"GET\",status=\"0\"}", 2},
        {"openova_flow_request_duration_seconds_bucket{route=\"snapshot\",le=\"0.001\"}", 0},
        {"openova_flow_request_duration_seconds_bucket{route=\"snapshot\",le=\"0.0025\"}", 1},
        {"openova_flow_request_duration_seconds_bucket{route=\"snapshot\",le=\"30.0\"}", 1},
        {"openova_flow_request_duration_seconds_bucket{route=\"snapshot\",le=\"+Inf\"}", 2},
        {"openova_flow_request_duration_seconds_count{route=\"snapshot\"}", 2},
        {"openova_flow_request_duration_seconds_sum{route=\"snapshot\"}", 40}, /* 40.0015 */
        {"openova_flow_upstream_request_duration_seconds_count{route=\"snapshot\"}", 1},
        {"openova_flow_upstream_request_duration_seconds_count{route=\"health\"}", -1},
        {"openova_flow_upstream_failures_total{route=\"events\",reason=\"tls\"}", 1},
        {"openova_flow_upstream_failures_total{route=\"stream\",reason=\"timeout\"}", 0},
        {"openova_flow_upstream_up", 1},
        {"openova_flow_auth_total{method=\"jwt\",outcome=\"accepted\"}", 1},
        {"openova_flow_auth_total{method=\"none\",outcome=\"invalid_credentials\"}", 1},
        {"openova_flow_streams_open", 3},
        {"openova_flow_streams_max", 1024},
        {"openova_flow_streams_opened_total", 1},
        {"openova_flow_stream_frames_total", 2},
        {"openova_flow_stream_bytes_total", 100},
        {"openova_flow_stream_ends_total{reason=\"idle\"}", 1},
        {"openova_flow_stream_duration_seconds_bucket{le=\"60.0\"}", 0},
        {"openova_flow_stream_duration_seconds_bucket{le=\"300.0\"}", 1},
        {"openova_flow_stream_duration_seconds_count", 1},
        {"openova_flow_refusals_total{code=\"not_found\"}", 2},
        {"openova_flow_workers", 16},
        {"openova_flow_workers_busy", 1},
        {"openova_flow_build_info{version=\"9.9.9\",libcurl=\"8.0.0\"}", 1},
    };
    check_series(text, rows, UNIT_LEN(rows));
    assert_non_null(strstr(text, "# TYPE openova_flow_requests_total counter\n"));
    assert_non_null(strstr(text, "# TYPE openova_flow_build_info gauge\n"));
    assert_true(sample(text, "process_open_fds") > 2);
    assert_true(sample(text, "process_max_fds") > 0);
    assert_true(sample(text, "process_threads") >= 1);
    assert_true(sample(text, "process_resident_memory_bytes") > 0);
    assert_true(sample(text, "process_start_time_seconds") > 1700000000LL);
    assert_null(strstr(text, "# EOF"));
    struct metrics_totals t;
    metrics_totals(&t);
    assert_int_equal(t.requests, 6);
    assert_int_equal(t.refusals, 2);
    assert_int_equal(t.upstream_failures, 1);
    assert_int_equal(t.auth_refused, 1);
    assert_int_equal(t.workers_busy, 1);
    metrics_worker_busy(-1);
    free(text);
}

/* OpenMetrics: a counter's family is named without _total, build info is
 * an info family, and the text ends with # EOF. */
static void test_metrics_openmetrics(void **state)
{
    (void)state;
    char *text = render(true);
    assert_non_null(strstr(text, "# TYPE openova_flow_requests counter\n"));
    assert_non_null(strstr(text, "# TYPE openova_flow_build info\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "));
    assert_non_null(strstr(text, "# TYPE openova_flow_streams_open gauge\n"));
    size_t len = strlen(text);
    assert_true(len > 6 && strcmp(text + len - 6, "# EOF\n") == 0);
    free(text);
}

/* Codes get their own series up to the limit, then "other"; never more. */
static void test_metrics_refusal_codes(void **state)
{
    (void)state;
    static char codes[METRICS_REFUSAL_CODES + 5][16];
    for (size_t i = 0; i < UNIT_LEN(codes); i++) {
        snprintf(codes[i], sizeof codes[i], "code_%zu", i);
        metrics_refusal(codes[i]);
    }
    char *text = render(false);
    size_t series = 0;
    for (const char *p = text; (p = strstr(p, "\nopenova_flow_refusals_total{")); p++)
        series++;
    assert_int_equal(series, METRICS_REFUSAL_CODES + 1); /* and the "other" series */
    /* not_found took a slot in the test before: every code after the rest is other. */
    assert_int_equal(sample(text, "openova_flow_refusals_total{code=\"other\"}"), 6);
    free(text);
}

/* Off: nothing moves. */
static void test_metrics_off(void **state)
{
    (void)state;
    struct metrics_totals before, after;
    metrics_totals(&before);
    metrics_enable(false);
    assert_false(metrics_enabled());
    metrics_request(METRICS_ROUTE_SNAPSHOT, "GET", 200, 10);
    metrics_stream_opened();
    metrics_refusal("not_found");
    metrics_enable(true);
    metrics_totals(&after);
    assert_int_equal(after.requests, before.requests);
    assert_int_equal(after.streams_opened, before.streams_opened);
    assert_int_equal(after.refusals, before.refusals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_counts),
        cmocka_unit_test(test_metrics_openmetrics),
        cmocka_unit_test(test_metrics_refusal_codes),
        cmocka_unit_test(test_metrics_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
